/* Encoding: byte-identical round trips, changes escaped with the message's
 * own delimiters, messages built in code. */
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
TestSuite(v2_encode, .init = setup, .fini = teardown);

static const char *enc(const hub_v2_msg *m) {
    B.n = 0;
    cr_assert_eq(hub_v2_encode(m, &B, NULL), HUB_OK);
    return B.p;
}

Test(v2_encode, unmodified_is_identical) {
    const char *cases[] = {
        "MSH|^~\\&|A\rPID|1||x^y~z||\"\"|||\r",
        "\xEF\xBB\xBFMSH|^~\\&|A\nPID|1\n\n",
        "MSH#!@%*#A\r\nPID#1#a!b\r\n",
        "MSH|^~\\&#|A||||||||P|2.7\rNTE|1||trunc#",
        "\r\nMSH|^~|A\r \rPID|\r",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hub_v2_msg *m = v2_parse_ok(&A, cases[i]);
        cr_assert_str_eq(enc(m), cases[i], "case %zu", i);
    }
}

Test(v2_encode, set_component_escapes) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~\\&|A\nPID|1||123^^^MRN||DOE^JOHN\nPV1|1\n");
    hub_err err;
    cr_assert_eq(hub_v2_set(&A, m, 1, 5, 1, 2, 0, "J|O^H~N&\\", &err), HUB_OK);
    cr_assert_str_eq(enc(m), "MSH|^~\\&|A\nPID|1||123^^^MRN||DOE^J\\F\\O\\S\\H\\R\\N\\T\\\\E\\\nPV1|1\n");
    hub_v2_msg *back = v2_parse_ok(&A, hub_arena_strndup(&A, B.p, B.n));
    cr_assert_str_eq(hub_v2_text(&A, back, hub_v2_get(back, "PID-5.2")), "J|O^H~N&\\");
}

Test(v2_encode, set_with_custom_delims) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH#!@%*#A\rPID#1\r");
    cr_assert_eq(hub_v2_set_path(&A, m, "PID-3(2).4.2", "a#b|c", NULL), HUB_OK);
    cr_assert_str_eq(enc(m), "MSH#!@%*#A\rPID#1##@!!!*a%F%b|c\r");
}

Test(v2_encode, set_creates_fields_reps_components) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~\\&|A\rPID|1\r");
    cr_assert_eq(hub_v2_set(&A, m, 1, 3, 2, 4, 2, "X", NULL), HUB_OK);
    cr_assert_str_eq(enc(m), "MSH|^~\\&|A\rPID|1||~^^^&X\r");
    cr_assert_eq(hub_v2_rep_count(m, 1, 3), 2);
    v2_assert_slice(hub_v2_get(m, "PID-3(2).4.2"), "X");
}

Test(v2_encode, set_null_and_empty) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~\\&|A\rPID|1|old\r");
    cr_assert_eq(hub_v2_set(&A, m, 1, 2, 0, 0, 0, NULL, NULL), HUB_OK);
    cr_assert(hub_v2_is_null(hub_v2_get(m, "PID-2")));
    cr_assert_eq(hub_v2_set(&A, m, 1, 4, 0, 0, 0, "", NULL), HUB_OK);
    cr_assert_str_eq(enc(m), "MSH|^~\\&|A\rPID|1|\"\"||\r");
}

Test(v2_encode, set_msh_refreshes_header) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~\\&|A||||||ADT^A01|C1|P|2.5\r");
    cr_assert_eq(hub_v2_set_path(&A, m, "MSH-10", "C2", NULL), HUB_OK);
    v2_assert_slice(hub_v2_msg_msh(m)->control_id, "C2");
    cr_assert_str_eq(enc(m), "MSH|^~\\&|A||||||ADT^A01|C2|P|2.5\r");
}

Test(v2_encode, set_errors) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~|A\rPID|1\r");
    hub_err err;
    cr_assert_eq(hub_v2_set(&A, m, 0, 1, 0, 0, 0, "x", &err), HUB_E_ARG);
    cr_assert_eq(hub_v2_set(&A, m, 0, 2, 0, 0, 0, "x", &err), HUB_E_ARG);
    cr_assert_eq(hub_v2_set(&A, m, 1, 0, 0, 0, 0, "x", &err), HUB_E_ARG);
    cr_assert_eq(hub_v2_set(&A, m, 5, 1, 0, 0, 0, "x", &err), HUB_E_ARG);
    cr_assert_eq(hub_v2_set(&A, m, 1, 3, 1, 1, 2, "x", &err), HUB_E_ARG); /* no sub sep */
    cr_assert_eq(hub_v2_set(&A, m, 1, 3, 1, 1, 0, "a^b", &err), HUB_E_ARG); /* no escape */
    cr_assert_str_eq(err.where, "PID-3");
    cr_assert_eq(hub_v2_set(&A, m, 1, 3, 1, 1, 0, "a\\b&c", &err), HUB_OK);
    /* nothing is escaped without an escape character: written as it is */
    v2_assert_slice(hub_v2_at(m, 1, 3, 1, 1, 0), "a\\b&c");
    cr_assert_str_eq(hub_v2_text(&A, m, hub_v2_at(m, 1, 3, 1, 1, 0)), "a\\b&c");
    cr_assert_eq(hub_v2_set(&A, m, 1, HUB_MAX_FIELDS + 1, 0, 0, 0, "x", &err), HUB_E_LIMIT);
    cr_assert_eq(hub_v2_set_path(&A, m, "OBX-5", "x", &err), HUB_E_NOTFOUND);
    cr_assert_eq(hub_v2_set_path(&A, m, "PID", "x", &err), HUB_E_ARG);
    cr_assert_eq(hub_v2_set_path(&A, m, "P!D-1", "x", &err), HUB_E_ARG);
}

Test(v2_encode, build_from_scratch) {
    hub_v2_msg *m;
    size_t seg;
    cr_assert_eq(hub_v2_msg_new(&A, NULL, &m, NULL), HUB_OK);
    cr_assert_eq(hub_v2_seg_add(&A, m, "MSH", &seg, NULL), HUB_OK);
    cr_assert_eq(seg, 0);
    cr_assert_eq(hub_v2_set_path(&A, m, "MSH-9.1", "ADT", NULL), HUB_OK);
    cr_assert_eq(hub_v2_set_path(&A, m, "MSH-9.2", "A01", NULL), HUB_OK);
    cr_assert_eq(hub_v2_set_path(&A, m, "MSH-10", "X1", NULL), HUB_OK);
    cr_assert_eq(hub_v2_set_path(&A, m, "MSH-12", "2.5.1", NULL), HUB_OK);
    cr_assert_eq(hub_v2_seg_add(&A, m, "PID", &seg, NULL), HUB_OK);
    cr_assert_eq(hub_v2_set(&A, m, seg, 5, 1, 1, 0, "O'Brien & Sons", NULL), HUB_OK);
    cr_assert_eq(hub_v2_set_raw(&A, m, seg, 8, HUB_SLICE_LIT("F"), NULL), HUB_OK);
    cr_assert_str_eq(enc(m), "MSH|^~\\&|||||||ADT^A01|X1||2.5.1\rPID|||||O'Brien \\T\\ Sons|||F\r");
    v2_assert_slice(hub_v2_msg_msh(m)->trigger, "A01");
    /* what was built parses back to the same values */
    hub_v2_msg *back = v2_parse_ok(&A, hub_arena_strndup(&A, B.p, B.n));
    cr_assert_str_eq(hub_v2_text(&A, back, hub_v2_get(back, "PID-5")), "O'Brien & Sons");
    cr_assert_eq(hub_v2_seg_add(&A, m, "pid", NULL, NULL), HUB_E_ARG);
    cr_assert_eq(hub_v2_seg_add(&A, m, "PIDX", NULL, NULL), HUB_E_ARG);
}

Test(v2_encode, build_with_truncation_delims) {
    hub_v2_delims d = {'|', '^', '~', '\\', '&', '#'};
    hub_v2_msg *m;
    cr_assert_eq(hub_v2_msg_new(&A, &d, &m, NULL), HUB_OK);
    cr_assert_eq(hub_v2_seg_add(&A, m, "MSH", NULL, NULL), HUB_OK);
    cr_assert_eq(hub_v2_seg_add(&A, m, "NTE", NULL, NULL), HUB_OK);
    cr_assert_eq(hub_v2_set(&A, m, 1, 3, 0, 0, 0, "#1", NULL), HUB_OK);
    cr_assert_str_eq(enc(m), "MSH|^~\\&#\rNTE|||\\P\\1\r");
}
