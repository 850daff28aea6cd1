/* Golden output of the validator and the ACK builder, to prove that an
 * optimisation does not change any answer. For every message prints the
 * findings (location, seg index, code, severity, text, offset) and the ACK
 * (fixed control id and timestamp), once with the default policy and once
 * with the example site profile.
 *
 *   bench_v2_golden [--corpus FILE --messages N] [FILE...] > out.txt
 *
 * --corpus reads one message per line (segments joined by CR); each FILE
 * is parsed as a batch (one or more messages). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/v2.h"

static hub_v2_profset *ps;
static hub_v2_site *site;
static hub_arena va;
static hub_buf ack;

static void dump(const char *name, size_t k, const hub_v2_msg *m) {
    hub_err err;
    hub_v2_policy pol;
    hub_v2_policy_default(&pol);
    for (int pass = 0; pass < 2; pass++) {
        hub_v2_validate_opts vo = {.site = pass ? site : NULL,
                                   .policy = pass ? NULL : &pol, .max = 0};
        hub_v2_findings out;
        hub_arena_reset(&va);
        printf("== %s #%zu pass %d\n", name, k, pass);
        if (hub_v2_validate(&va, ps, m, &vo, &out, &err) != HUB_OK) {
            printf("validate failed: %s %s\n", err.where, err.msg);
            continue;
        }
        printf("version %s structure %s n %zu E %zu W %zu I %zu trunc %d\n",
               out.version ? out.version : "-", out.structure ? out.structure : "-", out.n,
               out.nerrors, out.nwarnings, out.ninfos, (int)out.truncated);
        for (size_t i = 0; i < out.n; i++) {
            const hub_v2_finding *fi = &out.items[i];
            char loc[64];
            hub_v2_loc_format(&fi->loc, loc, sizeof loc);
            printf("%s|%s|%u|%u|%u.%u.%u.%u|%d|%c|%s|%zd\n", loc, fi->loc.seg_id,
                   (unsigned)fi->loc.seg, (unsigned)fi->loc.seg_seq, fi->loc.field,
                   fi->loc.rep, fi->loc.comp, fi->loc.sub, fi->code, fi->severity,
                   fi->text ? fi->text : "(null)", (ssize_t)fi->offset);
        }
        hub_v2_ack_req req;
        memset(&req, 0, sizeof req);
        req.status = out.nerrors ? HUB_V2_ACK_ERROR : HUB_V2_ACK_ACCEPT;
        req.findings = out.items;
        req.nfindings = out.n;
        req.control_id = "ACK1";
        req.timestamp = "20260101000000";
        ack.n = 0;
        if (hub_v2_ack_build(m, &req, &ack, &err) != HUB_OK) {
            printf("ack failed: %s %s\n", err.where, err.msg);
            continue;
        }
        for (size_t i = 0; i < ack.n; i++)
            putchar(ack.p[i] == '\r' ? '\n' : ack.p[i]);
    }
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = (size_t)size;
    return buf;
}

int main(int argc, char **argv) {
    hub_err err;
    if (hub_v2_profset_open(HUB_SOURCE_DIR "/conformance/v2", &ps, &err) != HUB_OK ||
        hub_v2_site_load(ps, HUB_SOURCE_DIR "/conformance/v2/site/example-lab.json", &site,
                         &err) != HUB_OK) {
        fprintf(stderr, "bench_v2_golden: %s: %s\n", err.where, err.msg);
        return 1;
    }
    hub_arena_init(&va, 1 << 16);
    hub_buf_init(&ack);
    hub_arena a;
    hub_arena_init(&a, 1 << 16);
    size_t want = 20000;
    const char *corpus = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--corpus") == 0 && i + 1 < argc) {
            corpus = argv[++i];
        } else if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc) {
            want = (size_t)strtoul(argv[++i], NULL, 10);
        }
    }
    if (corpus) {
        size_t size;
        char *buf = slurp(corpus, &size);
        if (!buf) {
            perror(corpus);
            return 1;
        }
        size_t k = 0;
        for (char *p = buf, *end = buf + size; p < end && k < want;) {
            char *q = memchr(p, '\n', (size_t)(end - p));
            if (!q) q = end;
            if (q > p) {
                hub_arena_reset(&a);
                hub_v2_msg *m;
                k++;
                if (hub_v2_parse(&a, p, (size_t)(q - p), NULL, &m, &err) != HUB_OK)
                    printf("== corpus #%zu parse failed: %s %s\n", k, err.where, err.msg);
                else
                    dump("corpus", k, m);
            }
            p = q + 1;
        }
        free(buf);
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--corpus") == 0 || strcmp(argv[i], "--messages") == 0) {
            i++;
            continue;
        }
        size_t size;
        char *buf = slurp(argv[i], &size);
        if (!buf) {
            perror(argv[i]);
            return 1;
        }
        hub_arena_reset(&a);
        hub_v2_batch b;
        if (hub_v2_batch_parse(&a, buf, size, NULL, &b, &err) != HUB_OK) {
            printf("== %s batch failed: %s %s\n", argv[i], err.where, err.msg);
        } else {
            for (size_t k = 0; k < b.nmsgs; k++) {
                if (b.msgs[k] == NULL)
                    printf("== %s #%zu parse failed: %s %s\n", argv[i], k, b.msg_errs[k].where,
                           b.msg_errs[k].msg);
                else
                    dump(argv[i], k, b.msgs[k]);
            }
        }
        free(buf);
    }
    hub_buf_release(&ack);
    hub_arena_release(&a);
    hub_arena_release(&va);
    hub_v2_site_free(site);
    hub_v2_profset_close(ps);
    return 0;
}
