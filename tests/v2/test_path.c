/* Terse paths: every form, canonical formatting, errors and limits. */
#include "v2_test.h"

#include <stdio.h>

static hub_arena A;
static hub_v2_msg *M;
static void setup(void) {
    hub_arena_init(&A, 4096);
    M = v2_parse_ok(&A,
                    "MSH|^~\\&|SND|FAC|||20260101||ORU^R01^ORU_R01|C1|P|2.5.1\r"
                    "PID|1||111^^^A&1.2&ISO^MR~222^^^B&3.4&ISO^SS^X&Y||DOE^JANE\r"
                    "OBR|1\r"
                    "OBX|1|NM|A||1.5\r"
                    "OBX|2|NM|B||2.5\r"
                    "OBX|3|ST|C||thr\\S\\ee\r");
}
static void teardown(void) { hub_arena_release(&A); }
TestSuite(v2_path, .init = setup, .fini = teardown);

static void expect(const char *path, const char *want) {
    v2_assert_slice(hub_v2_get(M, path), want);
}

Test(v2_path, segment_only) { expect("OBR", "OBR|1"); }
Test(v2_path, field) { expect("PID-5", "DOE^JANE"); }
Test(v2_path, field_all_reps) { expect("PID-3", "111^^^A&1.2&ISO^MR~222^^^B&3.4&ISO^SS^X&Y"); }
Test(v2_path, field_rep) { expect("PID-3(2)", "222^^^B&3.4&ISO^SS^X&Y"); }
Test(v2_path, field_rep_component) { expect("PID-3(2).5", "SS"); }
Test(v2_path, field_rep_component_sub) { expect("PID-3(2).4.2", "3.4"); }
Test(v2_path, component_of_first_rep) { expect("PID-3.4.1", "A"); }
Test(v2_path, segment_occurrence) { expect("OBX(3)-5", "thr\\S\\ee"); }
Test(v2_path, segment_occurrence_one) { expect("OBX(1)-3", "A"); }
Test(v2_path, msh_component) { expect("MSH-9.2", "R01"); }
Test(v2_path, msh_1_and_2) {
    expect("MSH-1", "|");
    expect("MSH-2", "^~\\&");
    expect("MSH-2.2", NULL);
}
Test(v2_path, dash_components_and_brackets) {
    expect("PID-3-4-2", "1.2");
    expect("PID-3[2]-5", "SS");
    expect("/PID-5-2", "JANE");
}
Test(v2_path, missing_things_are_absent) {
    expect("OBX(4)-5", NULL);
    expect("PID-30", NULL);
    expect("PID-3(3)", NULL);
    expect("PID-5.7", NULL);
    expect("NTE-1", NULL);
}
Test(v2_path, decoded_read) {
    cr_assert_str_eq(hub_v2_text(&A, M, hub_v2_get(M, "OBX(3)-5")), "thr^ee");
}

static void bad(const char *path, hub_status code) {
    hub_v2_path p;
    hub_err err;
    cr_assert_eq(hub_v2_path_parse(path, &p, &err), code, "path '%s'", path);
    cr_assert_str_eq(err.where, "path");
    v2_assert_slice(hub_v2_get(M, path), NULL);
}

Test(v2_path, errors) {
    bad("", HUB_E_ARG);
    bad("PI", HUB_E_ARG);
    bad("PIDX-1", HUB_E_ARG);
    bad("pid-3", HUB_E_ARG);
    bad("1ID-3", HUB_E_ARG);
    bad("PID-0", HUB_E_ARG);
    bad("PID-3(0)", HUB_E_ARG);
    bad("PID-3(2", HUB_E_ARG);
    bad("PID-3.", HUB_E_ARG);
    bad("PID-3.0", HUB_E_ARG);
    bad("PID-3x", HUB_E_ARG);
    bad("PID-3.1.1.1", HUB_E_ARG);
    bad("OBX(0)-5", HUB_E_ARG);
    bad("PID+3", HUB_E_ARG);
}

Test(v2_path, limits) {
    bad("PID-1001", HUB_E_LIMIT);
    bad("PID-1(10001)", HUB_E_LIMIT);
    bad("PID-1.1001", HUB_E_LIMIT);
    bad("PID-1.1.1001", HUB_E_LIMIT);
    char longp[HUB_MAX_PATH + 8];
    memset(longp, 'A', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    bad(longp, HUB_E_LIMIT);
}

Test(v2_path, groups_parsed) {
    hub_v2_path p;
    cr_assert_eq(hub_v2_path_parse("PATIENT_RESULT(1)/ORDER_OBSERVATION(2)/OBX(3)-5.1", &p, NULL),
                 HUB_OK);
    cr_assert_eq(p.ngroups, 2);
    cr_assert_str_eq(p.groups[0].name, "PATIENT_RESULT");
    cr_assert_eq(p.groups[1].occ, 2);
    cr_assert_str_eq(p.seg_id, "OBX");
    cr_assert_eq(p.seg_occ, 3);
    cr_assert_eq(p.field, 5);
    cr_assert_eq(p.comp, 1);
    bad("A/B/C/D/E/OBX-1", HUB_E_ARG);
}

Test(v2_path, canonical_format) {
    const char *in[] = {"PID-3[2]-4-2", "OBX(3)-5", "MSH-9.2", "PID", "PID-3(1)",
                        "G(2)/OBX-5"};
    const char *out[] = {"PID-3(2).4.2", "OBX(3)-5", "MSH-9.2", "PID", "PID-3(1)",
                         "G(2)/OBX-5"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        hub_v2_path p;
        char buf[HUB_MAX_PATH];
        cr_assert_eq(hub_v2_path_parse(in[i], &p, NULL), HUB_OK);
        hub_v2_path_format(&p, buf, sizeof buf);
        cr_assert_str_eq(buf, out[i]);
    }
}

/* A short buffer keeps the path's start, always NUL-terminated. */
Test(v2_path, format_truncates) {
    hub_v2_path p;
    cr_assert_eq(hub_v2_path_parse("G(12)/OBX(3)-5(2).10.4", &p, NULL), HUB_OK);
    char full[HUB_MAX_PATH];
    hub_v2_path_format(&p, full, sizeof full);
    cr_assert_str_eq(full, "G(12)/OBX(3)-5(2).10.4");
    for (size_t size = 1; size <= strlen(full) + 1; size++) {
        char buf[HUB_MAX_PATH];
        memset(buf, 'x', sizeof buf);
        hub_v2_path_format(&p, buf, size);
        cr_assert_eq(strlen(buf), size - 1);
        cr_assert_eq(strncmp(buf, full, size - 1), 0);
    }
}

Test(v2_path, loc_format) {
    char buf[64];
    hub_v2_loc l = {"PID", 1, 1, 3, 2, 1, 0};
    hub_v2_loc_format(&l, buf, sizeof buf);
    cr_assert_str_eq(buf, "PID-3(2).1");
    l = (hub_v2_loc){"OBX", 7, 3, 5, 0, 0, 0};
    hub_v2_loc_format(&l, buf, sizeof buf);
    cr_assert_str_eq(buf, "OBX(3)-5");
    l = (hub_v2_loc){"ZPD", 2, 1, 0, 0, 0, 0};
    hub_v2_loc_format(&l, buf, sizeof buf);
    cr_assert_str_eq(buf, "ZPD");
    l = (hub_v2_loc){"", UINT32_MAX, 0, 0, 0, 0, 0};
    hub_v2_loc_format(&l, buf, sizeof buf);
    cr_assert_str_eq(buf, "");
}
