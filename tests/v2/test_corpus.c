/* The shared corpus: every message in HUB_SHARED_DIR/corpus/hl7v2 parses
 * (and round-trips byte-identical), or is rejected for the reason named in
 * the table below. Skips when the corpus is absent. */
#include "v2_test.h"

#include <stdio.h>
#include <stdlib.h>

#define CORPUS HUB_SHARED_DIR "/corpus/hl7v2"

/* Files that must be rejected, and why: the status and err.where of the
 * file (batch parse) or of its first failing message. */
static const struct {
    const char *file;
    hub_status code;
    const char *where;
    const char *why;
} rejects[] = {
    {"cdc-trusted-intermediary/Test-Message/empty.hl7", HUB_E_PARSE, "file", "empty file"},
    {"cdc-trusted-intermediary/Test-Message/msh_present_but_missing_all_fields.hl7",
     HUB_E_PARSE, "MSH-2", "MSH has no encoding characters"},
    {"cdc-trusted-intermediary/Test-Message/msh_present_but_missing_msh-2.hl7", HUB_E_PARSE,
     "MSH-2", "MSH-2 empty"},
    {"cdc-trusted-intermediary/TX/001_TX_OML_O21.hl7", HUB_E_PARSE, "seg 6",
     "a raw LF inside OBR-4 splits the segment"},
    {"python-hl7/python-hl7-invalid-batch-BHS-without-MSH.hl7", HUB_E_PARSE, "seg 2",
     "segments after BHS with no MSH"},
    {"python-hl7/python-hl7-invalid-batch-nested-BHS.hl7", HUB_E_PARSE, "seg 5",
     "BHS in the middle of a message leaves segments outside any message"},
    {"python-hl7/python-hl7-invalid-file-BHS-without-MSH.hl7", HUB_E_PARSE, "seg 3",
     "segments after BHS with no MSH"},
    {"python-hl7/python-hl7-invalid-file-nested-FHS.hl7", HUB_E_PARSE, "FHS",
     "FHS inside a file"},
    {"rethinkhealth-hl7v2/invalid-missing-msh.hl7", HUB_E_PARSE, "file", "no MSH"},
    {"rethinkhealth-hl7v2/invalid-segment-header-length.hl7", HUB_E_PARSE, "seg 2",
     "segment id of 4 characters"},
};

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}

/* Column `col` (0-based) of a tab-separated line, into out. */
static void column(const char *line, int col, char *out, size_t size) {
    const char *p = line;
    for (int i = 0; i < col && p; i++) {
        p = strchr(p, '\t');
        if (p) p++;
    }
    size_t k = 0;
    while (p && *p && *p != '\t' && *p != '\n' && k + 1 < size) out[k++] = *p++;
    out[k] = '\0';
}

Test(v2_corpus, every_message) {
    FILE *idx = fopen(CORPUS "/INDEX.tsv", "r");
    if (idx == NULL) cr_skip_test("corpus absent at %s: skipped", CORPUS);
    char line[4096];
    size_t files = 0, accepted = 0, msgs = 0, rejected = 0, charset_findings = 0;
    bool header = true;
    while (fgets(line, sizeof line, idx)) {
        if (header) {
            header = false;
            continue;
        }
        char file[512], msh9[128], msh12[32], msh_count[16];
        column(line, 0, file, sizeof file);
        column(line, 6, msh9, sizeof msh9);
        column(line, 7, msh12, sizeof msh12);
        column(line, 10, msh_count, sizeof msh_count);
        if (!file[0]) continue;
        files++;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", CORPUS, file);
        size_t n;
        char *buf = slurp(path, &n);
        cr_assert_not_null(buf, "cannot read %s", path);
        hub_arena a;
        hub_arena_init(&a, 65536);
        hub_v2_batch b;
        hub_err err;
        hub_err_clear(&err);
        hub_status rc = hub_v2_batch_parse(&a, buf, n, NULL, &b, &err);
        if (rc == HUB_OK) {
            for (size_t i = 0; i < b.nmsgs; i++) {
                if (b.msgs[i] == NULL) {
                    rc = b.msg_errs[i].code;
                    err = b.msg_errs[i];
                    break;
                }
            }
        }
        int want = -1;
        for (size_t r = 0; r < sizeof rejects / sizeof rejects[0]; r++)
            if (strcmp(rejects[r].file, file) == 0) want = (int)r;
        if (want >= 0) {
            cr_expect_eq(rc, rejects[want].code, "%s should be rejected (%s), got %s", file,
                         rejects[want].why, hub_status_name(rc));
            cr_expect_str_eq(err.where, rejects[want].where, "%s: %s", file, err.msg);
            /* even so, an ACK can be built */
            hub_buf ack;
            hub_buf_init(&ack);
            cr_expect_eq(hub_v2_ack_build_raw(buf, n, NULL, &ack, NULL), HUB_OK);
            cr_expect(strstr(ack.p, "MSA|AR|") || strstr(ack.p, "MSA|CR|"), "%s", file);
            hub_buf_release(&ack);
            rejected++;
        } else {
            cr_expect_eq(rc, HUB_OK, "%s: %s %s: %s", file, hub_status_name(rc), err.where,
                         err.msg);
            if (rc == HUB_OK) {
                accepted++;
                cr_expect_eq(b.nmsgs, (size_t)atol(msh_count), "%s: %zu messages", file,
                             b.nmsgs);
                const hub_v2_msh *h = hub_v2_msg_msh(b.msgs[0]);
                hub_slice m9 = hub_v2_at(b.msgs[0], 0, 9, 0, 0, 0);
                cr_expect(hub_slice_eq_cstr(m9, msh9), "%s: MSH-9", file);
                cr_expect(hub_slice_eq_cstr(hub_v2_at(b.msgs[0], 0, 12, 0, 0, 0), msh12) ||
                              hub_slice_eq_cstr(h->version, msh12),
                          "%s: MSH-12", file);
                for (size_t i = 0; i < b.nmsgs; i++) {
                    hub_v2_msg *m = b.msgs[i];
                    msgs++;
                    hub_buf o;
                    hub_buf_init(&o);
                    cr_expect_eq(hub_v2_encode(m, &o, NULL), HUB_OK);
                    cr_expect(o.n == b.msg_raw[i].n &&
                                  memcmp(o.p, b.msg_raw[i].p, o.n) == 0,
                              "%s: message %zu does not round-trip", file, i + 1);
                    hub_buf_release(&o);
                    /* every value decodes; the ACK builds */
                    for (size_t s = 0; s < hub_v2_seg_count(m); s++)
                        for (size_t f = 1; f <= hub_v2_field_count(m, s); f++)
                            cr_expect_not_null(hub_v2_text(&a, m, hub_v2_at(m, s, f, 0, 0, 0)));
                    hub_v2_finding *cf;
                    size_t ncf = hub_v2_charset_check(&a, m, &cf, 100);
                    for (size_t c = 0; c < ncf; c++)
                        cr_expect_lt(cf[c].offset, b.msg_raw[i].n, "%s: offset", file);
                    charset_findings += ncf;
                    /* 8859/1 declared while the bytes are UTF-8 (the README
                     * says so): a warning with the position, not garbage. */
                    if (strstr(file, "elims_29_5065302"))
                        cr_expect_gt(ncf, 0, "%s: no charset warning", file);
                    hub_buf ack;
                    hub_buf_init(&ack);
                    hub_v2_ack_req req = {0};
                    cr_expect_eq(hub_v2_ack_build(m, &req, &ack, NULL), HUB_OK);
                    hub_v2_msg *am;
                    cr_expect_eq(hub_v2_parse(&a, ack.p, ack.n, NULL, &am, NULL), HUB_OK,
                                 "%s: ACK does not parse", file);
                    hub_buf_release(&ack);
                }
            }
        }
        hub_arena_release(&a);
        free(buf);
    }
    fclose(idx);
    cr_log_info("corpus: %zu files, %zu accepted (%zu messages), %zu rejected, "
                "%zu charset warnings",
                files, accepted, msgs, rejected, charset_findings);
    cr_assert_gt(files, 250, "INDEX.tsv lists too few files");
    cr_assert_eq(rejected, sizeof rejects / sizeof rejects[0]);
    cr_assert_eq(accepted + rejected, files);
}
