/* Acknowledgements: original and enhanced mode, ERR segments, and ACKs for
 * messages whose MSH is broken. */
#include "v2_test.h"

static hub_arena A;
static hub_buf B;
static void setup(void) {
    hub_arena_init(&A, 4096);
    hub_buf_init(&B);
}
static void teardown(void) {
    hub_arena_release(&A);
    hub_buf_release(&B);
}
TestSuite(v2_ack, .init = setup, .fini = teardown);

#define ORIG "MSH|^~\\&|LAB|HOSP|HUB|HUBFAC|20260101||ORU^R01^ORU_R01|CTL-42|P|2.5.1\rPID|1\r"
#define ENH(f15, f16)                                                            \
    "MSH|^~\\&|LAB|HOSP|HUB|HUBFAC|20260101||ORU^R01^ORU_R01|CTL-42|P|2.5.1|||" f15 \
    "|" f16 "\rPID|1\r"

static hub_v2_ack_req req_of(hub_v2_ack_status st) {
    hub_v2_ack_req r = {0};
    r.status = st;
    r.control_id = "ACK1";
    r.timestamp = "20260102030405";
    return r;
}

/* Builds the ACK and parses it back. */
static hub_v2_msg *ack_for(const char *msg, const hub_v2_ack_req *r) {
    hub_v2_msg *m = v2_parse_ok(&A, msg);
    B.n = 0;
    cr_assert_eq(hub_v2_ack_build(m, r, &B, NULL), HUB_OK);
    return v2_parse_ok(&A, hub_arena_strndup(&A, B.p, B.n));
}

static void expect_code(const char *msg, hub_v2_ack_status st, const char *code) {
    hub_v2_ack_req r = req_of(st);
    hub_v2_msg *a = ack_for(msg, &r);
    v2_assert_slice(hub_v2_get(a, "MSA-1"), code);
    v2_assert_slice(hub_v2_get(a, "MSA-2"), "CTL-42");
}

Test(v2_ack, original_aa) {
    hub_v2_ack_req r = req_of(HUB_V2_ACK_ACCEPT);
    hub_v2_msg *m = v2_parse_ok(&A, ORIG);
    cr_assert_eq(hub_v2_msg_ack_mode(m), HUB_V2_ACKMODE_ORIGINAL);
    cr_assert_eq(hub_v2_ack_build(m, &r, &B, NULL), HUB_OK);
    cr_assert_str_eq(B.p, "MSH|^~\\&|HUB|HUBFAC|LAB|HOSP|20260102030405||ACK^R01^ACK|ACK1|P|2.5.1\r"
                          "MSA|AA|CTL-42\r");
}
Test(v2_ack, original_ae) { expect_code(ORIG, HUB_V2_ACK_ERROR, "AE"); }
Test(v2_ack, original_ar) { expect_code(ORIG, HUB_V2_ACK_REJECT, "AR"); }
Test(v2_ack, enhanced_ca) {
    expect_code(ENH("AL", "NE"), HUB_V2_ACK_ACCEPT, "CA");
    hub_v2_ack_req r = req_of(HUB_V2_ACK_ACCEPT);
    hub_v2_msg *a = ack_for(ENH("AL", "NE"), &r);
    /* the ACK itself asks for no acknowledgement */
    v2_assert_slice(hub_v2_get(a, "MSH-15"), "NE");
    v2_assert_slice(hub_v2_get(a, "MSH-16"), "NE");
}
Test(v2_ack, enhanced_ce) { expect_code(ENH("AL", "AL"), HUB_V2_ACK_ERROR, "CE"); }
Test(v2_ack, enhanced_cr) { expect_code(ENH("", "AL"), HUB_V2_ACK_REJECT, "CR"); }
Test(v2_ack, enhanced_forced_original) {
    hub_v2_ack_req r = req_of(HUB_V2_ACK_ACCEPT);
    r.force_original = true;
    v2_assert_slice(hub_v2_get(ack_for(ENH("AL", "AL"), &r), "MSA-1"), "AA");
}

Test(v2_ack, msh15_decides_whether_to_ack) {
    struct { const char *f15; bool acc, err; } cases[] = {
        {"AL", true, true}, {"NE", false, false}, {"ER", false, true},
        {"SU", true, false}, {"XX", true, true}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = hub_arena_sprintf(&A, "MSH|^~\\&|A||||||ADT^A01|1|P|2.5|||%s|AL\r",
                                    cases[i].f15);
        hub_v2_msg *m = v2_parse_ok(&A, s);
        cr_assert_eq(hub_v2_msg_ack_mode(m), HUB_V2_ACKMODE_ENHANCED);
        cr_assert_eq(hub_v2_ack_wanted(m, HUB_V2_ACK_ACCEPT), cases[i].acc, "%s", cases[i].f15);
        cr_assert_eq(hub_v2_ack_wanted(m, HUB_V2_ACK_REJECT), cases[i].err, "%s", cases[i].f15);
    }
    cr_assert(hub_v2_ack_wanted(v2_parse_ok(&A, ORIG), HUB_V2_ACK_ACCEPT));
}

Test(v2_ack, err_segments_v25) {
    hub_v2_finding f[2] = {
        {{"PID", 1, 1, 3, 0, 0, 0}, HUB_V2_E_REQUIRED_MISSING, 'E',
         "PID-3 is required | but empty", SIZE_MAX},
        {{"OBX", 3, 2, 5, 1, 2, 0}, HUB_V2_E_TABLE_VALUE, 'W', NULL, SIZE_MAX}};
    hub_v2_ack_req r = req_of(HUB_V2_ACK_ERROR);
    r.findings = f;
    r.nfindings = 2;
    hub_v2_msg *a = ack_for(ORIG, &r);
    v2_assert_slice(hub_v2_get(a, "MSA-1"), "AE");
    v2_assert_slice(hub_v2_get(a, "ERR-2"), "PID^1^3");
    v2_assert_slice(hub_v2_get(a, "ERR-3"), "101^Required field missing^HL70357");
    v2_assert_slice(hub_v2_get(a, "ERR-4"), "E");
    cr_assert_str_eq(hub_v2_text(&A, a, hub_v2_get(a, "ERR-8")), "PID-3 is required | but empty");
    v2_assert_slice(hub_v2_get(a, "ERR(2)-2"), "OBX^2^5^1^2");
    v2_assert_slice(hub_v2_get(a, "ERR(2)-3.1"), "103");
    v2_assert_slice(hub_v2_get(a, "ERR(2)-4"), "W");
    v2_assert_slice(hub_v2_get(a, "ERR(2)-8"), NULL);
}

Test(v2_ack, err_segment_v23_uses_err1) {
    const char *msg = "MSH|^~\\&|A|B|C|D|2026||ADT^A01|X9|P|2.3\rPID|1\r";
    hub_v2_finding f = {{"PID", 1, 1, 3, 0, 0, 0}, 101, 'E', "missing", SIZE_MAX};
    hub_v2_ack_req r = req_of(HUB_V2_ACK_ERROR);
    r.findings = &f;
    r.nfindings = 1;
    hub_v2_msg *a = ack_for(msg, &r);
    v2_assert_slice(hub_v2_get(a, "ERR-1"), "PID^1^3^101&missing&HL70357");
    v2_assert_slice(hub_v2_get(a, "ERR-2"), NULL);
}

Test(v2_ack, at_most_max_errors) {
    hub_v2_finding f[HUB_MAX_ACK_ERRORS + 5];
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        f[i] = (hub_v2_finding){{"OBX", 1, 1, 5, 0, 0, 0}, 102, 'E', "bad", SIZE_MAX};
    hub_v2_ack_req r = req_of(HUB_V2_ACK_ERROR);
    r.findings = f;
    r.nfindings = sizeof f / sizeof f[0];
    hub_v2_msg *a = ack_for(ORIG, &r);
    cr_assert_eq(hub_v2_seg_count(a), 2 + HUB_MAX_ACK_ERRORS);
}

Test(v2_ack, uses_message_delimiters) {
    hub_v2_ack_req r = req_of(HUB_V2_ACK_ACCEPT);
    r.text = "ok#done";
    hub_v2_msg *a = ack_for("MSH#!@%*#S#F#R#RF#2026##ADT!A01#C7#P#2.5\r", &r);
    cr_assert_eq(hub_v2_msg_delims(a).field, '#');
    v2_assert_slice(hub_v2_get(a, "MSA-2"), "C7");
    v2_assert_slice(hub_v2_get(a, "MSH-9.2"), "A01");
    cr_assert_str_eq(hub_v2_text(&A, a, hub_v2_get(a, "MSA-3")), "ok#done");
}

Test(v2_ack, generated_control_id_and_time) {
    hub_v2_ack_req r = {0};
    hub_v2_msg *a = ack_for(ORIG, &r);
    hub_slice id = hub_v2_get(a, "MSH-10");
    cr_assert_eq(id.n, 20);
    cr_assert_eq(hub_v2_get(a, "MSH-7").n, 19);
}

/* ---- broken MSH ---- */

static hub_v2_msg *raw_ack(const char *p, size_t n) {
    B.n = 0;
    hub_v2_ack_req r = req_of(HUB_V2_ACK_ACCEPT); /* ignored: always a reject */
    cr_assert_eq(hub_v2_ack_build_raw(p, n, &r, &B, NULL), HUB_OK);
    return v2_parse_ok(&A, hub_arena_strndup(&A, B.p, B.n));
}

Test(v2_ack, raw_empty_input) {
    hub_v2_msg *a = raw_ack(NULL, 0);
    v2_assert_slice(hub_v2_get(a, "MSA-1"), "AR");
    v2_assert_slice(hub_v2_get(a, "MSA-2"), "");
    v2_assert_slice(hub_v2_get(a, "MSH-3"), "HUB");
    B.n = 0;
    cr_assert_eq(hub_v2_ack_build_raw("", 0, NULL, &B, NULL), HUB_OK);
    cr_assert_not_null(strstr(B.p, "MSA|AR|"));
}

Test(v2_ack, raw_garbage) {
    const char g[] = "\x00\xff\r\n|||^^^garbage";
    hub_v2_msg *a = raw_ack(g, sizeof g - 1);
    v2_assert_slice(hub_v2_get(a, "MSA-1"), "AR");
}

Test(v2_ack, raw_missing_msh2) {
    const char *s = "MSH||SND^x^DNS|SFAC|RCV|RFAC|2026||ORM^O01|111111|D|2.5.1\r";
    hub_v2_msg *a = raw_ack(s, strlen(s));
    v2_assert_slice(hub_v2_get(a, "MSA-1"), "AR");
    v2_assert_slice(hub_v2_get(a, "MSA-2"), "111111");
    v2_assert_slice(hub_v2_get(a, "MSH-5.1"), "SND");
    v2_assert_slice(hub_v2_get(a, "MSH-9.2"), "O01");
    v2_assert_slice(hub_v2_get(a, "MSH-12"), "2.5.1");
}

Test(v2_ack, raw_msh_only) {
    hub_v2_msg *a = raw_ack("MSH|", 4);
    v2_assert_slice(hub_v2_get(a, "MSA-1"), "AR");
}

Test(v2_ack, raw_missing_msh9_and_msh10) {
    const char *s = "MSH|^~\\&|S|F|R|RF|2026||||P|2.5.1|||AL|NE\r";
    hub_v2_msg *a = raw_ack(s, strlen(s));
    v2_assert_slice(hub_v2_get(a, "MSA-1"), "CR"); /* MSH-15 set: enhanced */
    v2_assert_slice(hub_v2_get(a, "MSA-2"), "");
    v2_assert_slice(hub_v2_get(a, "MSH-9"), "ACK");
}

Test(v2_ack, raw_with_finding_and_custom_delims) {
    const char *s = "MSH#!@%*#S#F#R#RF#2026##ADT!A01#C7#P#2.4\rPIDX#1\r";
    hub_v2_finding f = {{"", UINT32_MAX, 0, 0, 0, 0, 0}, 100, 'E', "bad segment id", SIZE_MAX};
    hub_v2_ack_req r = req_of(HUB_V2_ACK_REJECT);
    r.findings = &f;
    r.nfindings = 1;
    cr_assert_eq(hub_v2_ack_build_raw(s, strlen(s), &r, &B, NULL), HUB_OK);
    hub_v2_msg *a = v2_parse_ok(&A, hub_arena_strndup(&A, B.p, B.n));
    v2_assert_slice(hub_v2_get(a, "MSA-2"), "C7");
    v2_assert_slice(hub_v2_get(a, "ERR-1"), "!!!100*bad segment id*HL70357");
}

Test(v2_ack, raw_control_chars_stripped) {
    const char s[] = "MSH|^~\\&|S\x01X|F|R|RF|2026||ADT^A01|C\x7F" "1|P|2.5\r";
    hub_v2_msg *a = raw_ack(s, sizeof s - 1);
    v2_assert_slice(hub_v2_get(a, "MSA-2"), "C1");
    v2_assert_slice(hub_v2_get(a, "MSH-5"), "SX");
}

Test(v2_ack, errcode_texts) {
    cr_assert_str_eq(hub_v2_errcode_text(0), "Message accepted");
    cr_assert_str_eq(hub_v2_errcode_text(207), "Application internal error");
    cr_assert_str_eq(hub_v2_errcode_text(999), "Unknown error");
}
