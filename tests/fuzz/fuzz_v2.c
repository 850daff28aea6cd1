/* libFuzzer target for the v2 engine: parse, read every value, navigate by
 * path, match groups, change and encode, batch-parse, and build ACKs (also
 * from the raw bytes). Invariants: a parsed message encodes back to exactly
 * its input; ACKs always build and parse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/v2.h"

#define CHECK(c)            \
    do {                    \
        if (!(c)) abort();  \
    } while (0)

/* Non-ASCII text written into segment seg reads back the same, whatever
 * the message's charset: as its bytes, as UTF-8, or escaped. */
static void set_non_ascii(hub_arena *a, hub_v2_msg *m, size_t seg) {
    const char *val = "M\xC3\xBCller \xE2\x82\xAC \xD0\x9F \xE5\xB1\xB1|";
    hub_status rc = hub_v2_set(a, m, seg, 3, 1, 0, 0, val, NULL);
    if (rc != HUB_OK) {
        CHECK(rc == HUB_E_ARG || rc == HUB_E_LIMIT);
        return;
    }
    hub_buf o;
    hub_buf_init(&o);
    CHECK(hub_v2_encode(m, &o, NULL) == HUB_OK);
    hub_v2_msg *m2;
    if (hub_v2_parse(a, o.p, o.n, NULL, &m2, NULL) == HUB_OK &&
        hub_v2_msg_charset(m2) == hub_v2_msg_charset(m)) {
        hub_v2_text_out t;
        CHECK(hub_v2_decode(a, m2, hub_v2_at(m2, seg, 3, 1, 0, 0), &t, NULL) == HUB_OK);
        CHECK(strcmp(t.text.p, val) == 0);
    }
    hub_buf_release(&o);
}

static void exercise_msg(hub_arena *a, hub_v2_msg *m, const uint8_t *d, size_t n) {
    /* round trip */
    hub_buf out;
    hub_buf_init(&out);
    CHECK(hub_v2_encode(m, &out, NULL) == HUB_OK);
    CHECK(out.n == n && memcmp(out.p, d, n) == 0);
    hub_buf_release(&out);

    /* every value, at every level */
    size_t ns = hub_v2_seg_count(m);
    for (size_t s = 0; s < ns && s < 64; s++) {
        size_t nf = hub_v2_field_count(m, s);
        for (size_t f = 0; f <= nf && f < 64; f++) {
            hub_v2_text_out t;
            CHECK(hub_v2_decode(a, m, hub_v2_at(m, s, f, 0, 0, 0), &t, NULL) == HUB_OK);
            CHECK(t.text.p[t.text.n] == '\0');
            size_t nr = hub_v2_rep_count(m, s, f);
            for (size_t r = 1; r <= nr && r < 8; r++) {
                size_t nc = hub_v2_comp_count(m, s, f, r);
                for (size_t c = 1; c <= nc && c < 8; c++) {
                    size_t nsub = hub_v2_sub_count(m, s, f, r, c);
                    for (size_t k = 1; k <= nsub && k < 8; k++) {
                        hub_slice v = hub_v2_at(m, s, f, r, c, k);
                        CHECK(v.p != NULL);
                        (void)hub_v2_text(a, m, v);
                    }
                }
            }
        }
    }
    hub_v2_finding *cf;
    (void)hub_v2_charset_check(a, m, &cf, 16);

    /* groups with the built-in structures */
    const char *names[] = {"ORU_R01", "ADT_A01"};
    for (int i = 0; i < 2; i++) {
        hub_v2_groups g;
        CHECK(hub_v2_group_match(a, m, hub_v2_struct_builtin(names[i]), &g, NULL) == HUB_OK);
        hub_v2_path p;
        CHECK(hub_v2_path_parse("PATIENT_RESULT(1)/ORDER_OBSERVATION(1)/OBX(1)-5", &p, NULL) ==
              HUB_OK);
        (void)hub_v2_group_get(&g, m, &p);
    }

    /* ACKs in every status */
    for (int st = 0; st < 3; st++) {
        hub_v2_finding f = {{"PID", 1, 1, 3, 1, 1, 0}, 101, 'E', "required", SIZE_MAX};
        hub_v2_ack_req req = {0};
        req.status = (hub_v2_ack_status)st;
        req.findings = &f;
        req.nfindings = 1;
        req.timestamp = "20260101";
        req.control_id = "X";
        hub_buf ack;
        hub_buf_init(&ack);
        CHECK(hub_v2_ack_build(m, &req, &ack, NULL) == HUB_OK);
        hub_v2_msg *am;
        CHECK(hub_v2_parse(a, ack.p, ack.n, NULL, &am, NULL) == HUB_OK);
        hub_v2_text_out t;
        CHECK(hub_v2_decode(a, am, hub_v2_get(am, "MSA-2"), &t, NULL) == HUB_OK);
        hub_buf_release(&ack);
    }
    (void)hub_v2_ack_wanted(m, HUB_V2_ACK_ACCEPT);

    /* changes: the result parses again with the same value */
    if (ns > 1) {
        hub_v2_delims dl = hub_v2_msg_delims(m);
        const char *val = "a|b^c~d\\e&f#g";
        hub_status rc = hub_v2_set(a, m, ns - 1, 2, 2, 2, dl.sub ? 2 : 0, val, NULL);
        /* without an escape character, text holding a delimiter is refused */
        bool holds_delim = false;
        for (const char *c = val; *c; c++)
            holds_delim |= *c == dl.field || *c == dl.comp || *c == dl.rep ||
                           (dl.sub && *c == dl.sub);
        if (dl.esc == 0 && holds_delim) {
            CHECK(rc == HUB_E_ARG);
            return;
        }
        CHECK(rc == HUB_OK);
        hub_buf o2;
        hub_buf_init(&o2);
        CHECK(hub_v2_encode(m, &o2, NULL) == HUB_OK);
        hub_v2_msg *m2;
        if (hub_v2_parse(a, o2.p, o2.n, NULL, &m2, NULL) == HUB_OK) {
            hub_slice v = hub_v2_at(m2, ns - 1, 2, 2, 2, dl.sub ? 2 : 0);
            const char *t = hub_v2_text(a, m2, v);
            /* the same, unless the charset rewrote bytes: val is ASCII */
            CHECK(t != NULL && strcmp(t, val) == 0);
        }
        hub_buf_release(&o2);
        set_non_ascii(a, m, ns - 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    hub_arena a;
    hub_arena_init(&a, 16384);
    hub_v2_msg *m = NULL;
    hub_err err;
    if (hub_v2_parse(&a, (const char *)d, n, NULL, &m, &err) == HUB_OK) {
        exercise_msg(&a, m, d, n);
        /* VALIDATE HOOK: once the profiles branch is merged, validate m
         * against its profile here and feed the findings to the ACK. */
    } else {
        CHECK(err.msg[0] != '\0');
    }

    /* the best ACK from raw bytes, always */
    hub_buf ack;
    hub_buf_init(&ack);
    CHECK(hub_v2_ack_build_raw((const char *)d, n, NULL, &ack, NULL) == HUB_OK);
    hub_v2_msg *am;
    CHECK(hub_v2_parse(&a, ack.p, ack.n, NULL, &am, NULL) == HUB_OK);
    hub_slice code = hub_v2_get(am, "MSA-1");
    CHECK(hub_slice_eq_cstr(code, "AR") || hub_slice_eq_cstr(code, "CR"));
    hub_buf_release(&ack);

    /* batches */
    hub_v2_batch b;
    if (hub_v2_batch_parse(&a, (const char *)d, n, NULL, &b, NULL) == HUB_OK) {
        for (size_t i = 0; i < b.nmsgs && i < 8; i++) {
            if (b.msgs[i] == NULL) continue;
            hub_buf o;
            hub_buf_init(&o);
            CHECK(hub_v2_encode(b.msgs[i], &o, NULL) == HUB_OK);
            CHECK(o.n == b.msg_raw[i].n && memcmp(o.p, b.msg_raw[i].p, o.n) == 0);
            hub_buf_release(&o);
        }
    }

    /* paths from the input's first line */
    char path[64];
    size_t k = 0;
    while (k < n && k < sizeof path - 1 && d[k] != '\r' && d[k] != '\n') {
        path[k] = (char)d[k];
        k++;
    }
    path[k] = '\0';
    hub_v2_path p;
    if (hub_v2_path_parse(path, &p, NULL) == HUB_OK) {
        char back[HUB_MAX_PATH + 64];
        hub_v2_path_format(&p, back, sizeof back);
        hub_v2_path q;
        CHECK(hub_v2_path_parse(back, &q, NULL) == HUB_OK);
        CHECK(strcmp(q.seg_id, p.seg_id) == 0 && q.field == p.field && q.comp == p.comp &&
              q.sub == p.sub && q.seg_occ == p.seg_occ);
        if (m) (void)hub_v2_get_path(m, &p);
    }
    hub_arena_release(&a);
    return 0;
}
