/* libFuzzer target for the validator and site profiles. Input starting
 * with '{' is a site profile (parsed, then used on a fixed message);
 * anything else is a message (batch-parsed, each message validated against
 * its base profile, the example site profile and a strict policy, then
 * ACKed from the findings). Invariants: validation never fails except out
 * of memory; every finding has a text, a 0357 code and a severity; the ACK
 * built from the findings parses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/v2.h"
#include "hub/v2.h"

#define CHECK(c)            \
    do {                    \
        if (!(c)) abort();  \
    } while (0)

static hub_v2_profset *set;
static hub_v2_site *example;

static void setup(void) {
    if (set) return;
    CHECK(hub_v2_profset_open(HUB_SOURCE_DIR "/conformance/v2", &set, NULL) == HUB_OK);
    CHECK(hub_v2_site_load(set, HUB_SOURCE_DIR "/conformance/v2/site/example-lab.json",
                           &example, NULL) == HUB_OK);
}

static void check(const hub_v2_findings *fs) {
    size_t e = 0, w = 0, i2 = 0;
    for (size_t i = 0; i < fs->n; i++) {
        const hub_v2_finding *f = &fs->items[i];
        CHECK(f->text != NULL && f->text[0] != '\0');
        CHECK(f->code >= 100 && f->code <= 207);
        CHECK(f->severity == 'E' || f->severity == 'W' || f->severity == 'I');
        CHECK(strlen(f->loc.seg_id) <= 3);
        e += f->severity == 'E';
        w += f->severity == 'W';
        i2 += f->severity == 'I';
        char p[64];
        hub_v2_loc_format(&f->loc, p, sizeof p);
    }
    CHECK(e == fs->nerrors && w == fs->nwarnings && i2 == fs->ninfos);
}

static void validate_msg(hub_arena *a, hub_v2_msg *m) {
    hub_v2_policy strict;
    hub_v2_policy_default(&strict);
    for (int r = 0; r < HUB_V2R__COUNT; r++) strict.sev[r] = 'E';
    hub_v2_validate_opts opts[3] = {
        {NULL, NULL, 0}, {example, NULL, 0}, {NULL, &strict, 5}};
    for (int k = 0; k < 3; k++) {
        hub_v2_findings fs;
        CHECK(hub_v2_validate(a, set, m, &opts[k], &fs, NULL) == HUB_OK);
        check(&fs);
        if (k == 2) CHECK(fs.n <= 5);
        if (k == 0) {
            hub_v2_ack_req req = {0};
            req.status = fs.nerrors ? HUB_V2_ACK_ERROR : HUB_V2_ACK_ACCEPT;
            req.findings = fs.items;
            req.nfindings = fs.n;
            req.timestamp = "20260101";
            req.control_id = "X";
            hub_buf ack;
            hub_buf_init(&ack);
            CHECK(hub_v2_ack_build(m, &req, &ack, NULL) == HUB_OK);
            hub_v2_msg *am;
            CHECK(hub_v2_parse(a, ack.p, ack.n, NULL, &am, NULL) == HUB_OK);
            hub_buf_release(&ack);
        }
    }
}

static const char FIXED[] =
    "MSH|^~\\&|S|F|R|F|20230115120000||ADT^A01^ADT_A01|1|P|2.5.1\r"
    "EVN|A01|20230115120000\rPID|1||1^^^H^MR~2^^^^MR||D^J||20230231|M\rZPI|1\rPV1|1|I\r";

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    setup();
    hub_arena a;
    hub_arena_init(&a, 1 << 14);
    if (n > 0 && d[0] == '{') {
        hub_v2_site *s = NULL;
        hub_err err;
        if (hub_v2_site_parse(set, (const char *)d, n, "fuzz", &s, &err) == HUB_OK) {
            hub_v2_msg *m;
            CHECK(hub_v2_parse(&a, FIXED, sizeof FIXED - 1, NULL, &m, NULL) == HUB_OK);
            hub_v2_validate_opts o = {s, NULL, 0};
            hub_v2_findings fs;
            CHECK(hub_v2_validate(&a, set, m, &o, &fs, NULL) == HUB_OK);
            check(&fs);
            hub_v2_site_free(s);
        } else {
            CHECK(s == NULL && err.code != HUB_OK);
        }
    } else {
        hub_v2_batch b;
        if (hub_v2_batch_parse(&a, (const char *)d, n, NULL, &b, NULL) == HUB_OK) {
            for (size_t k = 0; k < b.nmsgs && k < 8; k++)
                if (b.msgs[k]) validate_msg(&a, b.msgs[k]);
        }
    }
    hub_arena_release(&a);
    return 0;
}
