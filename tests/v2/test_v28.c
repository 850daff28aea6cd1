/* The v2.8 base profile (generated 2.7.1 + gen/v2.8-delta.json): a 2.8
 * message is validated with it, without the version fallback, and the
 * 2.8 differences the delta carries show up as findings or their
 * absence, against the same message declared 2.7.1. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hub/v2.h"
#include "v2_test.h"

#define CONF HUB_SOURCE_DIR "/conformance/v2"

static hub_v2_profset *set;
static hub_arena arena;

static void up(void) {
    hub_err err;
    cr_assert_eq(hub_v2_profset_open(CONF, &set, &err), HUB_OK, "%s", err.msg);
    hub_arena_init(&arena, 1 << 16);
}

static void down(void) {
    hub_arena_release(&arena);
    hub_v2_profset_close(set);
}

static const hub_v2_profile *get(const char *v) {
    const hub_v2_profile *p = NULL;
    hub_err err;
    cr_assert_eq(hub_v2_profset_get(set, v, &p, &err), HUB_OK, "%s: %s", err.where, err.msg);
    return p;
}

/* A pharmacy encoded order; CDO (v2.8) follows RXC in the ORDER group. */
#define MSH_RDE(ver) \
    "MSH|^~\\&|PHA|HOSP|EHR|HOSP|20230115120000||RDE^O11^RDE_O11|MSG3|P|" ver "\r"
#define RDE_BODY_TO_RXC                       \
    "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r" \
    "ORC|NW|ORD1\r"                           \
    "RXE||1234^DRUG^LOCAL|10||mg^mg^UCUM\r"   \
    "TQ1|1\r"                                 \
    "RXR|PO^Oral^LOCAL\r"                     \
    "RXC|B|5678^BASE^LOCAL|100|mL^mL^UCUM\r"
#define CDO "CDO|1|A|500^mg&mg&UCUM|1^d&day&UCUM\r"

static hub_v2_findings run(const char *text, const hub_v2_policy *pol) {
    hub_v2_msg *m = NULL;
    hub_err err;
    cr_assert_eq(hub_v2_parse(&arena, text, strlen(text), NULL, &m, &err), HUB_OK,
                 "parse: %s %s", err.where, err.msg);
    hub_v2_findings fs;
    hub_v2_validate_opts o = {.policy = pol};
    cr_assert_eq(hub_v2_validate(&arena, set, m, &o, &fs, &err), HUB_OK);
    return fs;
}

/* A result declared `ver` whose OBX carries `tail` from OBX-27 on. */
static const char *oru(const char *ver, const char *tail) {
    char *out = hub_arena_alloc(&arena, 512);
    cr_assert_not_null(out);
    snprintf(out, 512,
             "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20230115120000||ORU^R01^ORU_R01|MSG2|P|%s\r"
             "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r"
             "OBR|1||ORD1|1234-5^GLUCOSE^LN|||20230115110000\r"
             "OBX|1|NM|1234-5^GLUCOSE^LN||95|mg/dL|70-100|N|||C" /* OBX-11 */
             "||||||||||||||||%s\r",
             ver, tail);
    return out;
}


static void clean(const hub_v2_findings *fs) {
    if (fs->n) v2_findings_dump(fs);
    cr_assert_eq(fs->n, 0, "%zu findings", fs->n);
}

static const hub_v2_policy *strict_order(void) {
    static hub_v2_policy p;
    hub_v2_policy_default(&p);
    hub_err e;
    hub_v2_policy_set(&p, "seg_unexpected", "error", &e);
    return &p;
}

/* ---- the profile ----------------------------------------------------------------- */

Test(v2_v28, profile_is_271_plus_delta, .init = up, .fini = down) {
    const hub_v2_profile *p = get("2.8"), *o = get("2.7.1");
    cr_assert_str_eq(hub_v2_profile_version(p), "2.8");
    /* the delta adds the 16 structures table 0354 dates 2.8 and changes four */
    cr_assert_eq(hub_v2_profile_nstructs(p), hub_v2_profile_nstructs(o) + 16);
    cr_assert_not_null(hub_v2_profile_struct_def(p, "DPR_O48"));
    cr_assert_null(hub_v2_profile_struct_def(o, "DPR_O48"));
    /* CDO: a segment of 2.8, not of 2.7.1 */
    const hub_v2_item_def *f = hub_v2_profile_field(p, "CDO", 2);
    cr_assert_not_null(f);
    cr_assert_str_eq(f->name, "Action Code");
    cr_assert_eq(f->table, 206);
    cr_assert_null(hub_v2_profile_field(p, "CDO", 5));
    cr_assert_null(hub_v2_profile_field(o, "CDO", 1));
    /* OBX-27 and OBX-28 are new in 2.8 */
    f = hub_v2_profile_field(p, "OBX", 27);
    cr_assert_str_eq(f->name, "Root Cause");
    cr_assert_str_eq(f->datatype, "CWE");
    cr_assert_eq(f->table, 914);
    cr_assert(hub_v2_profile_field(p, "OBX", 28)->repeats);
    cr_assert_null(hub_v2_profile_field(p, "OBX", 29));
    cr_assert_null(hub_v2_profile_field(o, "OBX", 27));
    /* PID-35 renamed in 2.8, same datatype and table */
    cr_assert_str_eq(hub_v2_profile_field(p, "PID", 35)->name, "Taxonomic Classification Code");
    cr_assert_str_eq(hub_v2_profile_field(o, "PID", 35)->name, "Species Code");
    cr_assert_eq(hub_v2_profile_field(p, "PID", 35)->table, 446);
    /* table 0914 (Root Cause) is new in 2.8 */
    cr_assert_eq(hub_v2_profile_table_has(p, 914, hub_slice_cstr("L")), 1);
    cr_assert_eq(hub_v2_profile_table_has(p, 914, hub_slice_cstr("ZZ")), 0);
    cr_assert_eq(hub_v2_profile_table_has(o, 914, hub_slice_cstr("L")), -1);
    /* more fields new in 2.8 */
    cr_assert_str_eq(hub_v2_profile_field(p, "ORC", 34)->name, "Order Workflow Profile");
    cr_assert_null(hub_v2_profile_field(o, "ORC", 34));
    cr_assert_str_eq(hub_v2_profile_field(p, "RXA", 29)->datatype, "EI");
    cr_assert_str_eq(hub_v2_profile_field(p, "RXD", 35)->name, "Dispense Tag Identifier");
    cr_assert_str_eq(hub_v2_profile_field(p, "RXG", 33)->name, "Dispense Units");
    cr_assert_null(hub_v2_profile_field(o, "RXG", 31));
    cr_assert_eq(hub_v2_profile_field(p, "IN1", 55)->table, 206);
    cr_assert_null(hub_v2_profile_field(o, "IN1", 55));
    /* changed: ORC-4 is an EIP, PV1-50 repeats */
    cr_assert_str_eq(hub_v2_profile_field(p, "ORC", 4)->datatype, "EIP");
    cr_assert_str_eq(hub_v2_profile_field(o, "ORC", 4)->datatype, "EI");
    cr_assert(hub_v2_profile_field(p, "PV1", 50)->repeats);
    cr_assert_not(hub_v2_profile_field(o, "PV1", 50)->repeats);
    /* withdrawn: RXE-8 was a backward-compatible field in 2.7.1 */
    cr_assert_eq(hub_v2_profile_field(p, "RXE", 8)->usage, 'W');
    cr_assert_eq(hub_v2_profile_field(o, "RXE", 8)->usage, 'B');
    cr_assert_eq(hub_v2_profile_field(p, "RXA", 11)->usage, 'W');
    cr_assert_str_eq(hub_v2_profile_field(o, "RXA", 11)->datatype, "LA2");
    /* unchanged parts are 2.7.1's */
    cr_assert_str_eq(hub_v2_profile_field(p, "PID", 3)->name, "Patient Identifier List");
    cr_assert_eq(hub_v2_profile_field(p, "PID", 3)->usage, 'R');
}

/* ---- version selection --------------------------------------------------------- */

Test(v2_v28, message_28_uses_28_without_fallback, .init = up, .fini = down) {
    hub_v2_findings fs = run(MSH_RDE("2.8") RDE_BODY_TO_RXC CDO, NULL);
    cr_assert_str_eq(fs.version, "2.8");
    cr_assert_null(v2_finding(&fs, "MSH-12", 203));
    clean(&fs);
}

Test(v2_v28, message_281_falls_back_to_28, .init = up, .fini = down) {
    hub_v2_findings fs = run(MSH_RDE("2.8.1") RDE_BODY_TO_RXC CDO, NULL);
    cr_assert_str_eq(fs.version, "2.8");
    const hub_v2_finding *f = v2_finding_must(&fs, "MSH-12", 203, 'W');
    cr_assert(strstr(f->text, "2.8"));
    cr_assert_eq(fs.nerrors, 0);
    /* CDO is known to 2.8: nothing but the fallback */
    cr_assert_eq(fs.n, 1);
}

/* ---- a segment: CDO -------------------------------------------------------------- */

Test(v2_v28, cdo_in_place_in_28_unexpected_in_271, .init = up, .fini = down) {
    hub_v2_findings fs = run(MSH_RDE("2.8") RDE_BODY_TO_RXC CDO, strict_order());
    clean(&fs);
    /* the same message declared 2.7.1: CDO is no segment of that version */
    fs = run(MSH_RDE("2.7.1") RDE_BODY_TO_RXC CDO, NULL);
    v2_finding_must(&fs, "CDO", 100, 'W');
    fs = run(MSH_RDE("2.7.1") RDE_BODY_TO_RXC CDO, strict_order());
    v2_finding_must(&fs, "CDO", 100, 'E');
    /* without CDO the 2.7.1 message is clean: the finding is CDO's */
    fs = run(MSH_RDE("2.7.1") RDE_BODY_TO_RXC, NULL);
    clean(&fs);
}

Test(v2_v28, cdo_only_where_28_places_it, .init = up, .fini = down) {
    /* 2.8 puts CDO in pharmacy orders, not in ADT_A01 */
    const char *m = "MSH|^~\\&|SND|SFAC|RCV|RFAC|20230115120000||ADT^A01^ADT_A01|MSG1|P|2.8\r"
                    "EVN|A01|20230115120000\r"
                    "PID|1||12345^^^HOSP^MR||DOE^JOHN^^^^^L||19800101|M\r" CDO
                    "PV1|1|I\r";
    hub_v2_findings fs = run(m, strict_order());
    v2_finding_must(&fs, "CDO", 100, 'E');
    cr_assert_eq(fs.nerrors, 1);
    /* and after the observations of RDE_O11 it is out of place */
    fs = run(MSH_RDE("2.8") RDE_BODY_TO_RXC "OBX|1|NM|1234-5^GLUCOSE^LN||95||||||F\r" CDO,
             strict_order());
    v2_finding_must(&fs, "CDO", 100, 'E');
}

Test(v2_v28, cdo_fields_are_checked, .init = up, .fini = down) {
    /* CDO-2 Action Code: ID, HL7 table 0206 (A, D, U, X) */
    hub_v2_findings fs =
        run(MSH_RDE("2.8") RDE_BODY_TO_RXC "CDO|1|Q|500^mg&mg&UCUM\r", NULL);
    v2_finding_must(&fs, "CDO-2", 103, 'W');
    /* CDO-1 Set ID: SI */
    fs = run(MSH_RDE("2.8") RDE_BODY_TO_RXC "CDO|x|A\r", NULL);
    v2_finding_must(&fs, "CDO-1", 102, 'E');
}

/* ---- fields: OBX-27 / OBX-28, and table 0914 -------------------------------------- */

Test(v2_v28, obx27_is_a_field_of_28, .init = up, .fini = down) {
    hub_v2_findings fs = run(oru("2.8", "L^Laboratory^HL70914"), NULL);
    clean(&fs);
    /* 2.7.1 ends OBX at field 26: OBX-27 is beyond the definition */
    fs = run(oru("2.7.1", "L^Laboratory^HL70914"), NULL);
    v2_finding_must(&fs, "OBX-27", 102, 'I');
    cr_assert_eq(fs.n, 1);
}

Test(v2_v28, obx27_root_cause_table_0914, .init = up, .fini = down) {
    /* codes of 0914 pass, others are a table_coded warning */
    const char *ok[] = {"AP^x^HL70914", "IM^x^HL70914", "L^x^HL70914", "NA^x^HL70914",
                        "PD^x^HL70914"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        hub_v2_findings fs = run(oru("2.8", ok[i]), NULL);
        cr_assert_eq(fs.n, 0, "%s", ok[i]);
    }
    hub_v2_findings fs = run(oru("2.8", "ZZ^Other^HL70914"), NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "OBX-27", 103, 'W');
    cr_assert(strstr(f->text, "0914"));
    /* no PHI (the code) in the diagnosis */
    cr_assert_null(strstr(f->text, "ZZ"));
    /* a local coding system is not checked against the HL7 table */
    fs = run(oru("2.8", "ZZ^Other^LOCAL"), NULL);
    clean(&fs);
    /* in 2.7.1 the same value is only an extra field, no table check */
    fs = run(oru("2.7.1", "ZZ^Other^HL70914"), NULL);
    cr_assert_null(v2_finding(&fs, "OBX-27", 103));
}

Test(v2_v28, obx28_repeats, .init = up, .fini = down) {
    /* OBX-28 Local Process Control repeats; OBX-27 does not */
    hub_v2_findings fs = run(oru("2.8", "|A^x^LOCAL~B^y^LOCAL"), NULL);
    clean(&fs);
    fs = run(oru("2.8", "L^x^HL70914~AP^y^HL70914"), NULL);
    v2_finding_must(&fs, "OBX-27(2)", 102, 'W');
}

/* ---- withdrawn fields ------------------------------------------------------------ */

#define MSH_ADT(ver) \
    "MSH|^~\\&|SND|SFAC|RCV|RFAC|20230115120000||ADT^A01^ADT_A01|MSG1|P|" ver "\r"
#define ADT_BODY(pid2)                                                    \
    "EVN|A01|20230115120000\r"                                            \
    "PID|1|" pid2 "|12345^^^HOSP^MR||DOE^JOHN^^^^^L||19800101|M\r"        \
    "PV1|1|I\r"

Test(v2_v28, withdrawn_field_valued_is_a_finding, .init = up, .fini = down) {
    hub_v2_findings fs = run(MSH_ADT("2.8") ADT_BODY("OLD123"), NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "PID-2", 102, 'W');
    cr_assert(strstr(f->text, "withdrawn"));
    cr_assert_null(strstr(f->text, "OLD123"));
    cr_assert_eq(fs.n, 1);
    /* empty or an explicit null: nothing to say */
    fs = run(MSH_ADT("2.8") ADT_BODY(""), NULL);
    clean(&fs);
    fs = run(MSH_ADT("2.8") ADT_BODY("\"\""), NULL);
    clean(&fs);
    /* 2.7.1 shows PID-2 as backward-compatible: no finding */
    fs = run(MSH_ADT("2.7.1") ADT_BODY("OLD123"), NULL);
    clean(&fs);
    /* the policy decides the severity, as for any field_unsupported */
    hub_v2_policy pol;
    hub_v2_policy_default(&pol);
    hub_err err;
    cr_assert_eq(hub_v2_policy_set(&pol, "field_unsupported", "error", &err), HUB_OK);
    fs = run(MSH_ADT("2.8") ADT_BODY("OLD123"), &pol);
    v2_finding_must(&fs, "PID-2", 102, 'E');
}

Test(v2_v28, site_rule_can_allow_a_withdrawn_field, .init = up, .fini = down) {
    const char *json = "{\"name\": \"legacy\", \"fields\": {\"PID-2\": {\"usage\": \"O\"}}}";
    hub_v2_site *site = NULL;
    hub_err err;
    cr_assert_eq(hub_v2_site_parse(set, json, strlen(json), "test", &site, &err), HUB_OK,
                 "%s: %s", err.where, err.msg);
    const char *m = MSH_ADT("2.8") ADT_BODY("OLD123");
    hub_v2_msg *msg = NULL;
    cr_assert_eq(hub_v2_parse(&arena, m, strlen(m), NULL, &msg, &err), HUB_OK);
    hub_v2_findings fs;
    hub_v2_validate_opts o = {.site = site};
    cr_assert_eq(hub_v2_validate(&arena, set, msg, &o, &fs, &err), HUB_OK);
    clean(&fs);
    hub_v2_site_free(site);
}

Test(v2_v28, rxe8_withdrawn_in_28, .init = up, .fini = down) {
    /* RXE-8 Deliver-to Location: backward-compatible in 2.7.1, withdrawn in 2.8 */
    const char *tail = "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r"
                       "ORC|NW|ORD1\r"
                       "RXE||1234^DRUG^LOCAL|10||mg^mg^UCUM|||WARD1\r"
                       "TQ1|1\r"
                       "RXR|PO^Oral^LOCAL\r";
    char m[512];
    snprintf(m, sizeof m, "%s%s", MSH_RDE("2.8"), tail);
    hub_v2_findings fs = run(m, NULL);
    v2_finding_must(&fs, "RXE-8", 102, 'W');
    cr_assert_eq(fs.n, 1);
    snprintf(m, sizeof m, "%s%s", MSH_RDE("2.7.1"), tail);
    fs = run(m, NULL);
    clean(&fs);
}

/* ---- a field that repeats from 2.8 on --------------------------------------------- */

Test(v2_v28, pv1_50_repeats_in_28, .init = up, .fini = down) {
    /* PV1-50 Alternate Visit ID */
    char pv1[128];
    snprintf(pv1, sizeof pv1, "PV1|1|I%.*s|V1^^^HOSP^VN~V2^^^HOSP^VN\r", 47,
             "||||||||||||||||||||||||||||||||||||||||||||||||");
    char m[512];
    snprintf(m, sizeof m, "%s%s%s", MSH_ADT("2.8"),
             "EVN|A01|20230115120000\rPID|1||12345^^^HOSP^MR||DOE^JOHN||19800101|M\r", pv1);
    hub_v2_findings fs = run(m, NULL);
    clean(&fs);
    snprintf(m, sizeof m, "%s%s%s", MSH_ADT("2.7.1"),
             "EVN|A01|20230115120000\rPID|1||12345^^^HOSP^MR||DOE^JOHN||19800101|M\r", pv1);
    fs = run(m, NULL);
    v2_finding_must(&fs, "PV1-50(2)", 102, 'W');
}

/* ---- donation: DON and BUI (v2.8, chapter 4), in DPR^O48 -------------------------- */

#define MSH_DPR(ver) \
    "MSH|^~\\&|BANK|BC|LIS|HOSP|20230115120000||DPR^O48^DPR_O48|MSG5|P|" ver "\r"
#define DPR_HEAD                                              \
    "PID|1||D12345^^^BC^MR||DONOR^DAN||19800101|M\r"          \
    "OBR|1|ORD9||DON^Whole blood donation^LOCAL\r"
/* DON with every field 2.8 requires; `f12` is DON-12 (Process Interruption). */
#define DON_WITH(f12)                                                              \
    "DON|W1234567890123^BC|0^Whole^LOCAL|20230115100000|20230115101000|10|"            \
    "min^minute^UCUM|WBL^Whole blood^HL70933|WBL^Whole blood^HL70933|Y|"           \
    "WBL^Whole blood^HL70933|20230115|" f12 "|NRG^None^HL70935|"                   \
    "NAD^No adverse^HL70925|N|DOE^JANE|19700101|General Hospital|20230120|"        \
    "SMITH^JOHN|SUC^Successful^HL70926|L^Left^HL70927|PHL^ONE|PHL^TWO|Trima|"      \
    "SN123|N|REV^ONE|20230115110000|3|S1^BC~S2^BC|123^ACCEPT^ANNA|124^REVIEW^RAY\r"
#define DON DON_WITH("NIN^Not interrupted^HL70923")
#define BUI_WITH(f3)                                                               \
    "BUI|1|W1234567890123^BC|" f3 "|450|g^gram^UCUM|500|mL^milliliter^UCUM|CAT1|"  \
    "LOT1|Maker Inc|1^6|Cel^degree Celsius^UCUM\r"
#define BUI BUI_WITH("WBL^Whole blood^HL70566")

Test(v2_v28, don_and_bui_are_segments_of_28, .init = up, .fini = down) {
    const hub_v2_profile *p = get("2.8"), *o = get("2.7.1");
    const hub_v2_item_def *f = hub_v2_profile_field(p, "DON", 1);
    cr_assert_str_eq(f->name, "Donation Identification Number - DIN");
    cr_assert_str_eq(f->datatype, "EI");
    cr_assert_eq(f->usage, 'O');
    f = hub_v2_profile_field(p, "DON", 3);
    cr_assert_str_eq(f->datatype, "DTM");
    cr_assert_eq(f->usage, 'R');
    cr_assert(hub_v2_profile_field(p, "DON", 7)->repeats);
    cr_assert_eq(hub_v2_profile_field(p, "DON", 12)->table, 923);
    cr_assert_str_eq(hub_v2_profile_field(p, "DON", 33)->datatype, "XCN");
    cr_assert_null(hub_v2_profile_field(p, "DON", 34));
    f = hub_v2_profile_field(p, "BUI", 11);
    cr_assert_str_eq(f->name, "Transport Temperature");
    cr_assert_str_eq(f->datatype, "NR");
    cr_assert_null(hub_v2_profile_field(p, "BUI", 13));
    cr_assert_null(hub_v2_profile_field(o, "DON", 1));
    cr_assert_null(hub_v2_profile_field(o, "BUI", 1));
}

Test(v2_v28, don_segment_validates, .init = up, .fini = down) {
    hub_v2_findings fs = run(MSH_DPR("2.8") DPR_HEAD DON BUI, NULL);
    cr_assert_str_eq(fs.version, "2.8");
    clean(&fs);
    /* DON and BUI sit in the DONATION and BLOOD_UNIT groups */
    hub_v2_msg *m = NULL;
    hub_err err;
    const char *t = MSH_DPR("2.8") DPR_HEAD DON BUI;
    cr_assert_eq(hub_v2_parse(&arena, t, strlen(t), NULL, &m, &err), HUB_OK);
    hub_v2_groups g;
    cr_assert_eq(hub_v2_group_match(&arena, m, hub_v2_profile_struct_def(get("2.8"), "DPR_O48"),
                                    &g, &err), HUB_OK);
    cr_assert_eq(g.nunexpected, 0);
    cr_assert_str_eq(hub_v2_group_parent(&g, 3)->name, "DONATION");
    cr_assert_str_eq(hub_v2_group_parent(&g, 4)->name, "BLOOD_UNIT");
    hub_v2_path p;
    cr_assert_eq(hub_v2_path_parse("DONATION/BLOOD_UNIT/BUI-9", &p, NULL), HUB_OK);
    v2_assert_slice(hub_v2_group_get(&g, m, &p), "LOT1");
}

Test(v2_v28, dpr_o48_is_unknown_to_271, .init = up, .fini = down) {
    hub_v2_findings fs = run(MSH_DPR("2.7.1") DPR_HEAD DON BUI, NULL);
    v2_finding_must(&fs, "MSH-9.1", 200, 'E');
    cr_assert_gt(fs.nerrors, 0);
}

Test(v2_v28, don_required_fields, .init = up, .fini = down) {
    /* DON-3 (phlebotomy start) is required; DON-1 (DIN) is not */
    hub_v2_findings fs = run(MSH_DPR("2.8") DPR_HEAD
                             "DON||0^Whole^LOCAL||20230115101000|10|min^minute^UCUM|"
                             "WBL^x^HL70933|WBL^x^HL70933|Y|WBL^x^HL70933|20230115|"
                             "NIN^x^HL70923|NRG^x^HL70935|NAD^x^HL70925|N|DOE^JANE|19700101|"
                             "H|20230120|SMITH^JOHN|SUC^x^HL70926|L^x^HL70927|P^A|P^B|T|S|N|"
                             "R^O|20230115110000|3|S1|1^A^B|2^C^D\r",
                             NULL);
    v2_finding_must(&fs, "DON-3", 101, 'E');
    cr_assert_null(v2_finding(&fs, "DON-1", 101));
    cr_assert_eq(fs.nerrors, 1);
    /* and its datatypes are checked: an impossible DTM, a bad NM */
    fs = run(MSH_DPR("2.8") DPR_HEAD
             "DON|W1^BC|0^W^LOCAL|20230231100000|20230115101000|ten|min^minute^UCUM|"
             "WBL^x^HL70933|WBL^x^HL70933|Y|WBL^x^HL70933|20230115|NIN^x^HL70923|"
             "NRG^x^HL70935|NAD^x^HL70925|N|DOE^JANE|19700101|H|20230120|SMITH^JOHN|"
             "SUC^x^HL70926|L^x^HL70927|P^A|P^B|T|S|N|R^O|20230115110000|3|S1|1^A^B|2^C^D\r",
             NULL);
    v2_finding_must(&fs, "DON-3", 102, 'E');
    v2_finding_must(&fs, "DON-5", 102, 'E');
}

Test(v2_v28, don_codes_from_the_28_tables, .init = up, .fini = down) {
    /* table 0923 is new in 2.8: its codes pass, others are a finding */
    const char *ok[] = {"ABR^x^HL70923", "NIN^x^HL70923", "WOT^x^HL70923"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s%s%s", MSH_DPR("2.8") DPR_HEAD,
                 "DON|W1^BC|0^W^LOCAL|20230115100000|20230115101000|10|min^minute^UCUM|"
                 "WBL^x^HL70933|WBL^x^HL70933|Y|WBL^x^HL70933|20230115|", ok[i]);
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof buf - n, "%s",
                 "|NRG^x^HL70935|NAD^x^HL70925|N|DOE^JANE|19700101|H|20230120|SMITH^JOHN|"
                 "SUC^x^HL70926|L^x^HL70927|P^A|P^B|T|S|N|R^O|20230115110000|3|S1|1^A^B|"
                 "2^C^D\r");
        hub_v2_findings fs = run(buf, NULL);
        clean(&fs);
    }
    hub_v2_findings fs = run(MSH_DPR("2.8") DPR_HEAD DON_WITH("XX^Other^HL70923"), NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "DON-12", 103, 'W');
    cr_assert(strstr(f->text, "0923"));
    cr_assert_null(strstr(f->text, "XX"));
    /* DON-9 is an ID of HL7 table 0136 (Y/N) */
    fs = run(MSH_DPR("2.8") DPR_HEAD
             "DON|W1^BC|0^W^LOCAL|20230115100000|20230115101000|10|min^minute^UCUM|"
             "WBL^x^HL70933|WBL^x^HL70933|Q|WBL^x^HL70933|20230115|NIN^x^HL70923|"
             "NRG^x^HL70935|NAD^x^HL70925|N|DOE^JANE|19700101|H|20230120|SMITH^JOHN|"
             "SUC^x^HL70926|L^x^HL70927|P^A|P^B|T|S|N|R^O|20230115110000|3|S1|1^A^B|2^C^D\r",
             NULL);
    v2_finding_must(&fs, "DON-9", 103, 'W');
    /* BUI-3: table 0566, whose blood unit types 2.8 adds */
    fs = run(MSH_DPR("2.8") DPR_HEAD DON BUI_WITH("ZZZ^x^HL70566"), NULL);
    v2_finding_must(&fs, "BUI-3", 103, 'W');
    fs = run(MSH_DPR("2.8") DPR_HEAD DON BUI_WITH("PLT^Platelets^HL70566"), NULL);
    clean(&fs);
}

/* ---- table 0924: CDO-4's units ------------------------------------------------------ */

Test(v2_v28, cdo4_units_table_0924, .init = up, .fini = down) {
    const hub_v2_profile *p = get("2.8");
    const hub_v2_item_def *f = hub_v2_profile_field(p, "CDO", 4);
    cr_assert_eq(f->table, 924);
    cr_assert_eq(f->table_comp, 2); /* CQ.2, the units */
    const char *ok[] = {"A", "D", "M", "O", "PL", "WK"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s%sCDO|1|A|500^mg&mg&UCUM|1^%s&x&HL70924\r",
                 MSH_RDE("2.8"), RDE_BODY_TO_RXC, ok[i]);
        hub_v2_findings fs = run(buf, NULL);
        clean(&fs);
    }
    hub_v2_findings fs = run(MSH_RDE("2.8") RDE_BODY_TO_RXC
                             "CDO|1|A|500^mg&mg&UCUM|1^XX&x&HL70924\r", NULL);
    const hub_v2_finding *e = v2_finding_must(&fs, "CDO-4.2", 103, 'W');
    cr_assert(strstr(e->text, "0924"));
    cr_assert_null(strstr(e->text, "XX"));
    cr_assert_eq(fs.n, 1);
    /* the binding is CDO-4's: the same units in CDO-3 are not checked */
    fs = run(MSH_RDE("2.8") RDE_BODY_TO_RXC "CDO|1|A|500^XX&x&HL70924\r", NULL);
    clean(&fs);
    /* UCUM units (not HL7's table) are not checked against it */
    fs = run(MSH_RDE("2.8") RDE_BODY_TO_RXC "CDO|1|A|500^mg&mg&UCUM|1^wk&week&UCUM\r", NULL);
    clean(&fs);
}

/* ---- codes 2.8 adds to tables 2.7.1 has ------------------------------------------------ */

Test(v2_v28, added_code_accepted_in_28_not_in_271, .init = up, .fini = down) {
    const hub_v2_profile *p = get("2.8"), *o = get("2.7.1");
    /* 0085 (observation result status) gains A, B, V in 2.8 */
    cr_assert_eq(hub_v2_profile_table_has(p, 85, hub_slice_cstr("A")), 1);
    cr_assert_eq(hub_v2_profile_table_has(o, 85, hub_slice_cstr("A")), 0);
    cr_assert_eq(hub_v2_profile_table_has(p, 85, hub_slice_cstr("F")), 1); /* the old ones stay */
    cr_assert_eq(hub_v2_profile_table_has(p, 85, hub_slice_cstr("ZZ")), 0);
    /* 0119 (order control) gains CP */
    cr_assert_eq(hub_v2_profile_table_has(p, 119, hub_slice_cstr("CP")), 1);
    cr_assert_eq(hub_v2_profile_table_has(o, 119, hub_slice_cstr("CP")), 0);

    static const char obx11_a[] =
        "PID|1||12345^^^HOSP^MR||DOE^JANE||19800101|F\r"
        "OBR|1||ORD1|1234-5^GLUCOSE^LN|||20230115110000\r"
        "OBX|1|NM|1234-5^GLUCOSE^LN||95|mg/dL|70-100|N|||A\r";
    char buf[1024];
    snprintf(buf, sizeof buf,
             "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20230115120000||ORU^R01^ORU_R01|MSG2|P|2.8\r%s",
             obx11_a);
    hub_v2_findings fs = run(buf, NULL);
    clean(&fs);
    snprintf(buf, sizeof buf,
             "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20230115120000||ORU^R01^ORU_R01|MSG2|P|2.7.1\r%s",
             obx11_a);
    fs = run(buf, NULL);
    const hub_v2_finding *f = v2_finding_must(&fs, "OBX-11", 103, 'W');
    cr_assert(strstr(f->text, "0085"));
    cr_assert_eq(fs.n, 1);
    /* a 2.8.1 message, validated with 2.8, gets 2.8's codes too */
    snprintf(buf, sizeof buf,
             "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20230115120000||ORU^R01^ORU_R01|MSG2|P|2.8.1\r%s",
             obx11_a);
    fs = run(buf, NULL);
    cr_assert_null(v2_finding(&fs, "OBX-11", 103));
}

/* ---- a version file's tables and bindings are checked when it loads ---------------- */

/* A one-version conformance dir whose version file has `extra` after its
 * (empty) sections; loading 2.8 from it gives the status returned. */
static hub_status load_with(const char *extra, const char *seg_rows, hub_err *err) {
    char dir[] = "/tmp/hub_v28prof_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/base", dir);
    mkdir(path, 0700);
    const char *names[] = {"versions.txt", "tables.json", "v2.8.json"};
    char body[1024];
    snprintf(body, sizeof body,
             "{\"events\": {}, \"structures\": {}, \"segments\": {\"ZZZ\": %s},"
             " \"datatypes\": {\"CQ\": [[\"Quantity\",\"NM\",\"O\",0],[\"Units\",\"CWE\",\"O\",0]]}%s}",
             seg_rows, extra);
    const char *texts[] = {"2.8\n", "{\"0085\": {\"name\": \"x\", \"codes\": [\"F\"]}}", body};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/base/%s", dir, names[i]);
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        fputs(texts[i], f);
        fclose(f);
    }
    hub_v2_profset *s = NULL;
    cr_assert_eq(hub_v2_profset_open(dir, &s, err), HUB_OK);
    const hub_v2_profile *p = NULL;
    hub_status rc = hub_v2_profset_get(s, "2.8", &p, err);
    if (rc == HUB_OK) {
        cr_assert_eq(hub_v2_profile_table_has(p, 85, hub_slice_cstr("F")), 1);
        cr_assert_eq(hub_v2_profile_table_has(p, 85, hub_slice_cstr("A")), 1);
        cr_assert_eq(hub_v2_profile_table_has(p, 924, hub_slice_cstr("WK")), 1);
    }
    hub_v2_profset_close(s);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/base/%s", dir, names[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/base", dir);
    rmdir(path);
    rmdir(dir);
    return rc;
}

#define GOOD_TABLES ", \"tables\": {\"0085\": {\"name\": \"x\", \"added\": [\"A\", \"F\"]}," \
                    " \"0924\": {\"name\": \"y\", \"added\": [\"WK\"]}}"
#define ROW_0924 "[[\"Interval\",\"CQ\",\"O\",\"1\",0,\"0924\",2]]"

Test(v2_v28, version_tables_merge_and_bad_ones_are_refused) {
    hub_err err;
    cr_assert_eq(load_with(GOOD_TABLES, ROW_0924, &err), HUB_OK, "%s", err.msg);
    cr_assert_eq(load_with(", \"tables\": [1]", ROW_0924, &err), HUB_E_PARSE);
    cr_assert_eq(load_with(", \"tables\": {\"0085\": {\"added\": \"A\"}}", ROW_0924, &err),
                 HUB_E_PARSE);
    cr_assert_eq(load_with(", \"tables\": {\"x\": {\"added\": []}}", ROW_0924, &err), HUB_E_PARSE);
    cr_assert_eq(load_with(", \"tables\": {\"0085\": {\"added\": [7]}}", ROW_0924, &err),
                 HUB_E_PARSE);
    /* a component binding needs a table and a component number */
    cr_assert_eq(load_with(GOOD_TABLES, "[[\"I\",\"CQ\",\"O\",\"1\",0,\"0924\",0]]", &err),
                 HUB_E_PARSE);
    cr_assert_eq(load_with(GOOD_TABLES, "[[\"I\",\"CQ\",\"O\",\"1\",0,\"0924\",\"2\"]]", &err),
                 HUB_E_PARSE);
    cr_assert_eq(load_with(GOOD_TABLES, "[[\"I\",\"CQ\",\"O\",\"1\",0,\"\",2]]", &err),
                 HUB_E_PARSE);
    cr_assert_str_eq(err.where, "v2.8.json");
}

/* ---- the other structures 2.8 adds (table 0354, "added v2.8") --------------------- */

#define PID_D "PID|1||D1^^^BC^MR||DONOR^DAN||19800101|M\r"
#define DON_MIN DON_WITH("NIN^Not interrupted^HL70923")

/* A sample of each new structure: its MSH-9 (without MSH-9.3, so the event
 * map is what finds the structure), its body, where one segment sits
 * (1-based segment index in the message, and the group that holds it),
 * and the same body with two segments swapped. */
static const struct {
    const char *msh9, *structure, *body;
    size_t seg;
    const char *group;
    const char *swapped;
} samples[] = {
    {"DBU^O42", "DBC_O42", PID_D "OBX|1|ST|X||y\rAL1|1||PEN^Penicillin^LOCAL\r", 3, "DONOR",
     "AL1|1||PEN^Penicillin^LOCAL\r" PID_D},
    {"DRG^O43", "DRG_O43", PID_D "PV1|1|O\rNTE|1||registered\r", 3, "DONOR_REGISTRATION",
     "PV1|1|O\r" PID_D},
    {"DER^O44", "DER_O44", PID_D "OBR|1|ORD1||DON^Donation^LOCAL\rNTE|1||n\r", 3,
     "DONATION_ORDER", "OBR|1|ORD1||DON^Donation^LOCAL\r" PID_D},
    {"DEO^O45", "DEO_O45",
     PID_D "OBR|1|ORD1||DON^Donation^LOCAL\rOBX|1|NM|HGB^Hemoglobin^LOCAL||14|g/dL\r", 3,
     "DONATION_OBSERVATION", "OBX|1|NM|HGB^Hemoglobin^LOCAL||14|g/dL\rOBR|1|ORD1||DON^D^L\r"},
    {"DEL^O46", "DEL_O46", PID_D DON_MIN "NTE|1||eligible\r", 2, "DEL_O46",
     DON_MIN PID_D},
    {"DRC^O47", "DRC_O47", PID_D "OBR|1|ORD1||DON^Donation^LOCAL\r", 2, "DONATION_ORDER",
     "OBR|1|ORD1||DON^Donation^LOCAL\r" PID_D},
    {"OSU^O41", "OSU_O41", "MSA|AA|M1\rPID|1||P1^^^H^MR\rORC|SC|ORD1\rORC|SC|ORD2\r", 4,
     "ORDER_STATUS", "ORC|SC|ORD1\rMSA|AA|M1\r"},
    {"OMQ^O42", "OMQ_O42",
     "PID|1||P1^^^H^MR\rPV1|1|O\rORC|NW|ORD1\rOBX|1|ST|DOC^Doc^L||x\rTXA|1|CN|TX\r"
     "SPM|1|S1\rOBX|2|ST|Q^q^L||y\r",
     7, "SPECIMEN_OBSERVATION", "ORC|NW|ORD1\rPID|1||P1^^^H^MR\rOBX|1|ST|D^D^L||x\rTXA|1|CN|TX\r"},
    {"ORX^O43", "ORX_O43", "MSA|AA|M1\rPID|1||P1^^^H^MR\rORC|OK|ORD1\rTXA|1|CN|TX\r", 3,
     "ORDER", "MSA|AA|M1\rTXA|1|CN|TX\rORC|OK|ORD1\r"},
    {"QBP^Q33", "QBP_O33", "QPD|Q33^Donor candidates^HL70471|T1\rRCP|I\r", 1, "QBP_O33",
     "RCP|I\rQPD|Q33^Donor candidates^HL70471|T1\r"},
    {"RSP^K33", "RSP_O33", "MSA|AA|M1\rQAK|T1|OK\rQPD|Q33^x^HL70471|T1\r" PID_D, 4, "DONOR",
     "QAK|T1|OK\rMSA|AA|M1\rQPD|Q33^x^HL70471|T1\r"},
    {"QBP^Q34", "QBP_O34", "QPD|Q34^Donor record^HL70471|T2\rRCP|I\r", 2, "QBP_O34",
     "RCP|I\rQPD|Q34^Donor record^HL70471|T2\r"},
    {"RSP^K34", "RSP_O34", "MSA|AA|M1\rQAK|T2|OK\rQPD|Q34^x^HL70471|T2\r" PID_D DON_MIN, 5,
     "DONATION", "MSA|AA|M1\rQAK|T2|OK\rQPD|Q34^x^HL70471|T2\r" DON_MIN PID_D},
    {"ORA^R41", "ORA_R41", "MSA|AA|M1\rERR||OBX^1|207^x^HL70357|W\r", 1, "ORA_R41",
     "ERR||OBX^1|207^x^HL70357|W\rMSA|AA|M1\r"},
};

static char *sample_msg(const char *ver, const char *msh9, const char *body) {
    char *out = hub_arena_sprintf(&arena,
                                  "MSH|^~\\&|BANK|BC|LIS|HOSP|20230115120000||%s|M9|P|%s\r%s",
                                  msh9, ver, body);
    cr_assert_not_null(out);
    return out;
}

Test(v2_v28, new_structures_parse_validate_and_group, .init = up, .fini = down) {
    const hub_v2_profile *p = get("2.8");
    for (size_t i = 0; i < sizeof samples / sizeof *samples; i++) {
        const char *t = sample_msg("2.8", samples[i].msh9, samples[i].body);
        hub_v2_msg *m = v2_parse_ok(&arena, t);
        const hub_v2_msh *h = hub_v2_msg_msh(m);
        const char *name = hub_v2_profile_struct_for(p, h->msg_code, h->trigger, h->structure);
        cr_assert_not_null(name, "%s: no structure", samples[i].msh9);
        cr_assert_str_eq(name, samples[i].structure);
        /* no structural finding: nothing missing, nothing out of place */
        hub_v2_findings fs = run(t, strict_order());
        for (size_t k = 0; k < fs.n; k++)
            cr_assert_neq(fs.items[k].code, 100, "%s: %s", samples[i].msh9, fs.items[k].text);
        cr_assert_null(v2_finding(&fs, "MSH-9.2", 201), "%s", samples[i].msh9);
        /* its groups are navigable */
        hub_v2_groups g;
        hub_err err;
        cr_assert_eq(hub_v2_group_match(&arena, m, hub_v2_profile_struct_def(p, name), &g, &err),
                     HUB_OK);
        cr_assert_eq(g.nunexpected, 0, "%s", samples[i].msh9);
        cr_assert_str_eq(hub_v2_group_parent(&g, samples[i].seg)->name, samples[i].group,
                         "%s seg %zu", samples[i].msh9, samples[i].seg);
    }
}

Test(v2_v28, new_structures_report_wrong_order, .init = up, .fini = down) {
    for (size_t i = 0; i < sizeof samples / sizeof *samples; i++) {
        hub_v2_findings fs = run(sample_msg("2.8", samples[i].msh9, samples[i].swapped), NULL);
        bool structural = false;
        for (size_t k = 0; k < fs.n; k++) structural |= fs.items[k].code == 100;
        if (!structural) v2_findings_dump(&fs);
        cr_assert(structural, "%s: swapped order not reported", samples[i].msh9);
    }
}

Test(v2_v28, new_structures_unknown_to_271, .init = up, .fini = down) {
    /* the donation messages are new types; OSU, OMQ, ORX too; QBP^Q33 and
     * ORA^R41 are new events of known types */
    hub_v2_findings fs = run(sample_msg("2.7.1", "DBU^O42", samples[0].body), NULL);
    v2_finding_must(&fs, "MSH-9.1", 200, 'E');
    fs = run(sample_msg("2.7.1", "QBP^Q33", samples[9].body), NULL);
    v2_finding_must(&fs, "MSH-9.2", 201, 'E');
}

Test(v2_v28, donor_queries_by_event_and_structure_suffix, .init = up, .fini = down) {
    /* table 0003 names the events Q33/K33 and Q34/K34; the structures are
     * QBP_O33 ... RSP_O34, and some senders write O33/O34 as the event */
    const hub_v2_profile *p = get("2.8");
    const char *pairs[][3] = {{"QBP", "Q33", "QBP_O33"}, {"QBP", "O33", "QBP_O33"},
                              {"RSP", "K33", "RSP_O33"}, {"RSP", "O33", "RSP_O33"},
                              {"QBP", "Q34", "QBP_O34"}, {"QBP", "O34", "QBP_O34"},
                              {"RSP", "K34", "RSP_O34"}, {"RSP", "O34", "RSP_O34"},
                              {"ORU", "R40", "ORU_R01"}, {"ORA", "R41", "ORA_R41"}};
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        const char *n = hub_v2_profile_struct_for(p, hub_slice_cstr(pairs[i][0]),
                                                  hub_slice_cstr(pairs[i][1]), hub_slice_of(NULL, 0));
        cr_assert_not_null(n, "%s^%s", pairs[i][0], pairs[i][1]);
        cr_assert_str_eq(n, pairs[i][2]);
    }
}

Test(v2_v28, bui_unit_tables_are_user_defined, .init = up, .fini = down) {
    /* 0929-0932 have no codes in any source the generator reads (THO keeps
     * them as UCUM value sets): bound, but any unit passes */
    const hub_v2_profile *p = get("2.8");
    cr_assert_eq(hub_v2_profile_field(p, "BUI", 5)->table, 929);
    cr_assert_eq(hub_v2_profile_table_has(p, 929, hub_slice_cstr("kg")), -1);
    cr_assert_eq(hub_v2_profile_table_has(p, 932, hub_slice_cstr("min")), -1);
    hub_v2_findings fs = run(MSH_DPR("2.8") DPR_HEAD DON
                             "BUI|1|W1^BC|WBL^Whole blood^HL70566|450|zz^odd^HL70929|500|"
                             "qq^odd^HL70930|CAT1|LOT1|Maker Inc|1^6|xx^odd^HL70931\r",
                             NULL);
    clean(&fs);
}
