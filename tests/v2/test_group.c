/* Message-structure groups: OBX and NTE attached to the right parent. */
#include "v2_test.h"

static hub_arena A;
static void setup(void) { hub_arena_init(&A, 4096); }
static void teardown(void) { hub_arena_release(&A); }
TestSuite(v2_group, .init = setup, .fini = teardown);

#define ORU                                   \
    "MSH|^~\\&|L||||||ORU^R01|1|P|2.5.1\r"    \
    "PID|1\r"   /* 1 */                       \
    "PV1|1\r"   /* 2 */                       \
    "ORC|1\r"   /* 3 */                       \
    "OBR|1\r"   /* 4 */                       \
    "NTE|1\r"   /* 5: note on the order */    \
    "OBX|1\r"   /* 6 */                       \
    "NTE|2\r"   /* 7: note on OBX 1 */        \
    "OBX|2\r"   /* 8 */                       \
    "OBR|2\r"   /* 9: a second order */       \
    "OBX|3\r"   /* 10 */                      \
    "ZXX|1\r"   /* 11: unknown Z-segment */   \
    "SPM|1\r"   /* 12 */                      \
    "OBX|4\r"   /* 13: OBX under SPECIMEN */

static hub_v2_groups match(const hub_v2_msg *m) {
    char name[32];
    hub_v2_struct_name(m, name, sizeof name);
    const hub_v2_struct_def *def = hub_v2_struct_builtin(name);
    cr_assert_not_null(def, "no built-in %s", name);
    hub_v2_groups g;
    cr_assert_eq(hub_v2_group_match(&A, m, def, &g, NULL), HUB_OK);
    return g;
}

static void parent_is(const hub_v2_groups *g, size_t seg, const char *name, unsigned occ) {
    const hub_v2_group *p = hub_v2_group_parent(g, seg);
    cr_assert_not_null(p);
    cr_assert_str_eq(p->name, name, "seg %zu", seg);
    cr_assert_eq(p->occ, occ, "seg %zu occ %u", seg, p->occ);
}

Test(v2_group, oru_parents) {
    hub_v2_msg *m = v2_parse_ok(&A, ORU);
    hub_v2_groups g = match(m);
    parent_is(&g, 0, "ORU_R01", 1);
    parent_is(&g, 1, "PATIENT", 1);
    parent_is(&g, 2, "VISIT", 1);
    parent_is(&g, 4, "ORDER_OBSERVATION", 1);
    parent_is(&g, 5, "ORDER_OBSERVATION", 1);
    parent_is(&g, 6, "OBSERVATION", 1);
    parent_is(&g, 7, "OBSERVATION", 1);
    parent_is(&g, 8, "OBSERVATION", 2);
    parent_is(&g, 9, "ORDER_OBSERVATION", 2);
    parent_is(&g, 10, "OBSERVATION", 1);
    parent_is(&g, 11, "OBSERVATION", 1); /* Z-segment stays where it is */
    parent_is(&g, 12, "SPECIMEN", 1);
    parent_is(&g, 13, "SPECIMEN", 1);
    cr_assert_eq(g.nunexpected, 1);
    cr_assert_eq(g.unexpected[0], 11);
    cr_assert_null(g.seg_node[11]->def);
    const hub_v2_group *oo = hub_v2_group_parent(&g, 9);
    cr_assert_eq(oo->first_seg, 9);
    cr_assert_eq(oo->end_seg, 14);
    cr_assert_str_eq(oo->parent->name, "PATIENT_RESULT");
}

Test(v2_group, group_paths) {
    hub_v2_msg *m = v2_parse_ok(&A, ORU);
    hub_v2_groups g = match(m);
    hub_v2_path p;
    cr_assert_eq(hub_v2_path_parse("PATIENT_RESULT(1)/ORDER_OBSERVATION(2)/OBX(1)-1", &p, NULL), HUB_OK);
    v2_assert_slice(hub_v2_group_get(&g, m, &p), "3");
    cr_assert_eq(hub_v2_path_parse("PATIENT_RESULT(1)/ORDER_OBSERVATION(1)/NTE(2)-1", &p, NULL), HUB_OK);
    v2_assert_slice(hub_v2_group_get(&g, m, &p), "2");
    cr_assert_eq(hub_v2_path_parse("PATIENT_RESULT(1)/ORDER_OBSERVATION(3)/OBX-1", &p, NULL), HUB_OK);
    cr_assert_eq(hub_v2_group_find_seg(&g, m, &p), SIZE_MAX);
    cr_assert_eq(hub_v2_path_parse("OBX(4)-1", &p, NULL), HUB_OK);
    v2_assert_slice(hub_v2_group_get(&g, m, &p), "4");
}

Test(v2_group, adt_with_insurance_and_z) {
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~\\&|A||||||ADT^A04|1|P|2.5\rEVN|A04\rPID|1\r"
                                    "PV1|1\rZPD|1\rIN1|1\rIN2|1\rIN1|2\rROL|1\r");
    hub_v2_groups g = match(m);
    parent_is(&g, 2, "ADT_A01", 1);
    parent_is(&g, 4, "ADT_A01", 1);
    parent_is(&g, 5, "INSURANCE", 1);
    parent_is(&g, 6, "INSURANCE", 1);
    parent_is(&g, 7, "INSURANCE", 2);
    parent_is(&g, 8, "INSURANCE", 2);
    cr_assert_eq(g.nunexpected, 1);
}

Test(v2_group, struct_names) {
    char n[32];
    hub_v2_struct_name(v2_parse_ok(&A, "MSH|^~\\&|||||||ADT^A04^ADT_A01\r"), n, sizeof n);
    cr_assert_str_eq(n, "ADT_A01");
    hub_v2_struct_name(v2_parse_ok(&A, "MSH|^~\\&|||||||ORU^R01\r"), n, sizeof n);
    cr_assert_str_eq(n, "ORU_R01");
    hub_v2_struct_name(v2_parse_ok(&A, "MSH|^~\\&\r"), n, sizeof n);
    cr_assert_str_eq(n, "");
    cr_assert_null(hub_v2_struct_builtin("SIU_S12"));
}

Test(v2_group, custom_definition) {
    static const hub_v2_struct_node item[] = {{"ZI1", false, 1, 1, NULL, 0},
                                              {"NTE", false, 0, 0, NULL, 0}};
    static const hub_v2_struct_node top[] = {{"MSH", false, 1, 1, NULL, 0},
                                             {"ITEM", true, 1, 0, item, 2}};
    static const hub_v2_struct_def def = {"ZZZ_Z01", NULL, {"ZZZ_Z01", true, 1, 1, top, 2}};
    hub_v2_msg *m = v2_parse_ok(&A, "MSH|^~\\&\rZI1|1\rNTE|a\rZI1|2\rNTE|b\rNTE|c\r");
    hub_v2_groups g;
    cr_assert_eq(hub_v2_group_match(&A, m, &def, &g, NULL), HUB_OK);
    parent_is(&g, 2, "ITEM", 1);
    parent_is(&g, 5, "ITEM", 2);
    cr_assert_eq(g.nunexpected, 0);
}
