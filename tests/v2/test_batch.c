/* Batches: every envelope shape, trailer counts, broken envelopes. */
#include "v2_test.h"

static hub_arena A;
static void setup(void) { hub_arena_init(&A, 4096); }
static void teardown(void) { hub_arena_release(&A); }
TestSuite(v2_batch, .init = setup, .fini = teardown);

#define M1 "MSH|^~\\&|A||||||ADT^A04|1|P|2.5\rPID|1\r"
#define M2 "MSH|^~\\&|A||||||ADT^A04|2|P|2.5\rPID|2\r"
#define M3 "MSH|^~\\&|A||||||ADT^A04|3|P|2.5\rPID|3\r"

static hub_v2_batch parse_ok(const char *s) {
    hub_v2_batch b;
    hub_err err;
    hub_status rc = hub_v2_batch_parse(&A, s, strlen(s), NULL, &b, &err);
    cr_assert_eq(rc, HUB_OK, "%s %s: %s", hub_status_name(rc), err.where, err.msg);
    for (size_t i = 0; i < b.nmsgs; i++) {
        /* every message round-trips to its own bytes */
        if (b.msgs[i] == NULL) continue;
        hub_buf o;
        hub_buf_init(&o);
        cr_assert_eq(hub_v2_encode(b.msgs[i], &o, NULL), HUB_OK);
        cr_assert_eq(o.n, b.msg_raw[i].n);
        cr_assert_eq(memcmp(o.p, b.msg_raw[i].p, o.n), 0);
        hub_buf_release(&o);
    }
    return b;
}

static void parse_bad(const char *s, hub_status code, const char *where) {
    hub_v2_batch b;
    hub_err err;
    cr_assert_eq(hub_v2_batch_parse(&A, s, strlen(s), NULL, &b, &err), code, "%s: %s",
                 err.where, err.msg);
    cr_assert_str_eq(err.where, where);
}

Test(v2_batch, single_message) {
    hub_v2_batch b = parse_ok(M1);
    cr_assert_eq(b.nmsgs, 1);
    cr_assert_eq(b.nenv, 0);
    cr_assert_eq(b.nfindings, 0);
}

Test(v2_batch, messages_without_envelope) {
    hub_v2_batch b = parse_ok(M1 M2 M3);
    cr_assert_eq(b.nmsgs, 3);
    v2_assert_slice(hub_v2_msg_msh(b.msgs[2])->control_id, "3");
    cr_assert_eq(b.nenv, 0);
}

Test(v2_batch, bhs_bts) {
    hub_v2_batch b = parse_ok("BHS|^~\\&|A\r" M1 M2 "BTS|2\r");
    cr_assert_eq(b.nmsgs, 2);
    cr_assert_eq(b.nenv, 1);
    cr_assert_not(b.env[0].is_file);
    cr_assert_eq(b.env[0].nmsgs, 2);
    v2_assert_slice(b.env[0].trailer, "BTS|2");
    cr_assert_eq(b.nfindings, 0);
}

Test(v2_batch, fhs_bhs_bts_fts) {
    hub_v2_batch b = parse_ok("FHS|^~\\&|A\rBHS|^~\\&|A\r" M1 "BTS|1\rFTS|1\r");
    cr_assert_eq(b.nmsgs, 1);
    cr_assert_eq(b.nenv, 2);
    cr_assert(b.env[0].is_file);
    cr_assert_eq(b.env[1].parent, 0);
    cr_assert_eq(b.env[0].nchildren, 1);
    cr_assert_eq(b.nfindings, 0);
}

Test(v2_batch, fhs_two_batches) {
    hub_v2_batch b = parse_ok("FHS|^~\\&\rBHS|^~\\&\r" M1 M2 "BTS|2\rBHS|^~\\&\r" M3
                              "BTS|1\rFTS|2\r");
    cr_assert_eq(b.nmsgs, 3);
    cr_assert_eq(b.nenv, 3);
    cr_assert_eq(b.env[2].first_msg, 2);
    cr_assert_eq(b.nfindings, 0);
}

Test(v2_batch, fhs_fts_without_bhs) {
    hub_v2_batch b = parse_ok("FHS|^~\\&\r" M1 M2 "FTS|1\r");
    cr_assert_eq(b.nmsgs, 2);
    cr_assert_eq(b.nfindings, 0);
}

Test(v2_batch, nested_bhs) {
    hub_v2_batch b = parse_ok("BHS|^~\\&\r" M1 "BHS|^~\\&\r" M2 "BTS|1\rBTS|1\r");
    cr_assert_eq(b.nenv, 2);
    cr_assert_eq(b.env[1].parent, 0);
    cr_assert_eq(b.env[0].nmsgs, 1);
    cr_assert_eq(b.env[1].nmsgs, 1);
    cr_assert_eq(b.nfindings, 0);
}

Test(v2_batch, custom_delimiters_and_lf) {
    hub_v2_batch b = parse_ok("BHS#!@%*\nMSH#!@%*#A\nPID#1\nBTS#1\n");
    cr_assert_eq(b.nmsgs, 1);
    cr_assert_eq(b.nfindings, 0);
}

Test(v2_batch, count_mismatch) {
    hub_v2_batch b = parse_ok("BHS|^~\\&\r" M1 M2 "BTS|3\r");
    cr_assert_eq(b.nfindings, 1);
    cr_assert_str_eq(b.findings[0].loc.seg_id, "BTS");
    cr_assert_eq(b.findings[0].loc.field, 1);
    cr_assert_eq(b.findings[0].code, HUB_V2_E_DATA_TYPE);
    b = parse_ok("FHS|^~\\&\rBHS|^~\\&\r" M1 "BTS|1\rFTS|2\r");
    cr_assert_eq(b.nfindings, 1);
    cr_assert_str_eq(b.findings[0].loc.seg_id, "FTS");
    b = parse_ok("BHS|^~\\&\r" M1 "BTS|one\r");
    cr_assert_eq(b.nfindings, 1);
    cr_assert_str_eq(b.findings[0].text, "trailer count is not a number");
    b = parse_ok("BHS|^~\\&\r" M1 "BTS\r");
    cr_assert_eq(b.nfindings, 0); /* no count given: nothing to check */
}

Test(v2_batch, missing_trailers) {
    hub_v2_batch b = parse_ok("FHS|^~\\&\rBHS|^~\\&\r" M1 "FTS|1\r");
    cr_assert_eq(b.nfindings, 1);
    cr_assert_str_eq(b.findings[0].text, "BHS without BTS");
    cr_assert_eq(b.findings[0].code, HUB_V2_E_SEGMENT_SEQUENCE);
    b = parse_ok("BHS|^~\\&\r" M1);
    cr_assert_eq(b.nfindings, 1);
    cr_assert_str_eq(b.findings[0].text, "BHS without BTS");
    b = parse_ok("FHS|^~\\&\r" M1);
    cr_assert_str_eq(b.findings[0].text, "FHS without FTS");
}

Test(v2_batch, trailers_without_headers) {
    hub_v2_batch b = parse_ok(M1 "BTS|1\r");
    cr_assert_eq(b.nfindings, 1);
    cr_assert_str_eq(b.findings[0].text, "BTS without BHS");
    b = parse_ok(M1 "FTS|1\r");
    cr_assert_str_eq(b.findings[0].text, "FTS without FHS");
}

Test(v2_batch, broken_message_does_not_stop_the_rest) {
    hub_v2_batch b = parse_ok("BHS|^~\\&\r" M1 "MSH|^^|A\rPID|1\r" M2 "BTS|3\r");
    cr_assert_eq(b.nmsgs, 3);
    cr_assert_null(b.msgs[1]);
    cr_assert_eq(b.msg_errs[1].code, HUB_E_PARSE);
    cr_assert_str_eq(b.msg_errs[1].where, "MSH-2");
    cr_assert_not_null(b.msgs[2]);
    cr_assert_eq(b.nfindings, 0);
}

Test(v2_batch, rejected_shapes) {
    parse_bad("", HUB_E_PARSE, "file");
    parse_bad("\r\n", HUB_E_PARSE, "file");
    parse_bad("PID|1\r", HUB_E_PARSE, "file");
    parse_bad("BHS|^~\\&\rEVN|1\rBTS|1\r", HUB_E_PARSE, "seg 2");
    parse_bad("FHS|^~\\&\rFHS|^~\\&\r" M1 "FTS|1\r", HUB_E_PARSE, "FHS");
    parse_bad("BHS|^~\\&\rBTS|0\r", HUB_E_PARSE, "file");
    parse_bad("BHS\r" M1, HUB_E_PARSE, "BHS-1");
    parse_bad("BHS|^\r" M1, HUB_E_PARSE, "BHS-2");
}

Test(v2_batch, depth_limit) {
    char s[512] = "";
    for (int i = 0; i <= HUB_MAX_BATCH_DEPTH; i++) strcat(s, "BHS|^~\\&\r");
    strcat(s, M1);
    parse_bad(s, HUB_E_LIMIT, "BHS");
}
