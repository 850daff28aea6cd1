/* The order, result, pharmacy, immunization, scheduling and document
 * tables: every message type converts, values land where they belong,
 * keys make a resend or a correction update instead of duplicate. */
#include "hub/fhir.h"
#include "hub/map.h"
#include "hub_test.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hub_map *g_map;
static hub_v2_profset *g_profiles; /* conformance/v2: message structures */
static hub_arena g_arena;
static hub_map_result g_res;

static void up(void) {
    hub_err err;
    hub_map_cfg c = {.dir = HUB_SOURCE_DIR "/mappings"};
    cr_assert_eq(hub_map_load(&c, &g_map, &err), HUB_OK, "%s: %s", err.where, err.msg);
    cr_assert_eq(hub_v2_profset_open(HUB_SOURCE_DIR "/conformance/v2", &g_profiles, &err), HUB_OK);
    hub_arena_init(&g_arena, 16384);
    memset(&g_res, 0, sizeof g_res);
}
static void down(void) {
    hub_map_result_release(&g_res);
    hub_map_free(g_map);
    hub_v2_profset_close(g_profiles);
    hub_arena_release(&g_arena);
}

/* The structure that groups `m`, as `hub convert` finds it. */
static const hub_v2_struct_def *structure_of(const hub_v2_msg *m) {
    const hub_v2_msh *h = hub_v2_msg_msh(m);
    char ver[32];
    const hub_v2_profile *p = NULL;
    if (hub_v2_profset_pick(g_profiles, h->version, ver, sizeof ver) < 0 ||
        hub_v2_profset_get(g_profiles, ver, &p, NULL) != HUB_OK)
        return NULL;
    const char *sn = hub_v2_profile_struct_for(p, h->msg_code, h->trigger, h->structure);
    return sn ? hub_v2_profile_struct_def(p, sn) : NULL;
}

/* Maps `msg` ('\r' separated) as `hub convert` does; the Bundle is in g_res. */
static hub_status conv(const char *msg, hub_err *err) {
    hub_v2_msg *m = NULL;
    hub_map_result_release(&g_res);
    hub_arena_reset(&g_arena);
    cr_assert_eq(hub_v2_parse(&g_arena, msg, strlen(msg), NULL, &m, err), HUB_OK);
    hub_map_opts o = {.structure = structure_of(m), .out = HUB_MAP_OUT_JANSSON};
    return hub_map_message(g_map, m, &o, &g_res, err);
}
static void conv_ok(const char *msg) {
    hub_err err;
    hub_status rc = conv(msg, &err);
    cr_assert_eq(rc, HUB_OK, "%s: %s", err.where, err.msg);
}

static json_t *entry_of(const char *type, int nth) {
    json_t *e = json_object_get(g_res.bundle, "entry");
    for (size_t i = 0; i < json_array_size(e); i++) {
        json_t *en = json_array_get(e, i);
        json_t *r = json_object_get(en, "resource");
        if (strcmp(json_string_value(json_object_get(r, "resourceType")), type) == 0 && nth-- == 0)
            return en;
    }
    return NULL;
}
static json_t *res_of(const char *type, int nth) {
    return json_object_get(entry_of(type, nth), "resource");
}
static size_t count_of(const char *type) {
    size_t n = 0;
    while (entry_of(type, (int)n)) n++;
    return n;
}
static const char *url_of(const char *type, int nth) {
    return json_string_value(json_object_get(json_object_get(entry_of(type, nth), "request"), "url"));
}
/* "a.b[1].c" -> the JSON value there. */
static json_t *at(json_t *v, const char *path) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, ".")) {
        char *br = strchr(tok, '[');
        if (br) {
            *br = 0;
            v = json_array_get(json_object_get(v, tok), (size_t)atoi(br + 1));
        } else {
            v = json_object_get(v, tok);
        }
    }
    return v;
}
#define ASSERT_STR(v, path, want)                                                    \
    do {                                                                             \
        json_t *j_ = at((v), (path));                                                \
        const char *got_ = json_is_string(j_) ? json_string_value(j_) : NULL;        \
        cr_assert(got_ && strcmp(got_, (want)) == 0, "%s: got '%s', want '%s'", (path), \
                  got_ ? got_ : "(absent)", (want));                                 \
    } while (0)
#define ASSERT_NUM(v, path, want)                                                    \
    do {                                                                             \
        json_t *j_ = at((v), (path));                                                \
        cr_assert(json_is_number(j_), "%s: not a number", (path));                   \
        cr_assert_float_eq(json_number_value(j_), (want), 1e-9, "%s", (path));       \
    } while (0)
#define ASSERT_ABSENT(v, path) cr_assert_null(at((v), (path)), "%s: present", (path))

/* Every reference of `r` at `path` resolves to an entry of the Bundle. */
static json_t *target_of(json_t *r, const char *path) {
    const char *ref = json_string_value(at(r, path));
    cr_assert_not_null(ref, "%s: no reference", path);
    json_t *e = json_object_get(g_res.bundle, "entry");
    for (size_t i = 0; i < json_array_size(e); i++) {
        json_t *en = json_array_get(e, i);
        if (strcmp(json_string_value(json_object_get(en, "fullUrl")), ref) == 0)
            return json_object_get(en, "resource");
    }
    cr_assert_fail("%s: %s names no entry", path, ref);
    return NULL;
}

TestSuite(map_orders, .init = up, .fini = down);

#define MSH(type, ctl) "MSH|^~\\&|LAB|HOSP|HUB|HUB|20240102101500-0500||" type "|" ctl "|P|2.5.1\r"
#define PID "PID|1||555^^^HOSP^MR||Doe^Jane||19800101|F\r"
#define PV1 "PV1|1|I|W^1^2||||||||||||||||V77^^^HOSP^VN\r"

static char g_msg[16384];

/* Converts the message printf-formatted from fmt (kept in g_msg), which
 * must succeed. */
static void conv_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void conv_msg(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < sizeof g_msg, "message too long for g_msg");
    conv_ok(g_msg);
}

/* ---- ORU^R01: values of every type ------------------------------------------- */

static const char *oru(const char *ctl, const char *status) {
    snprintf(g_msg, sizeof g_msg,
             MSH("ORU^R01^ORU_R01", "%s") PID PV1
             "ORC|RE|PL1^ORD^1.2.3^ISO|FL1^LAB^9.8.7^ISO||CM\r"
             "OBR|1|PL1^ORD^1.2.3^ISO|FL1^LAB^9.8.7^ISO|24331-1^Lipid panel^LN|||20240102083000|||||||||"
             "77^Smith^Ann||||||20240102100000|||F\r"
             "NTE|1||Fasting sample\r"
             "OBX|1|NM|2093-3^Cholesterol^LN||190|mg/dL^mg/dL^UCUM|<200|N|||%s|||20240102090000\r"
             "NTE|1||Repeat in a year\r"
             "OBX|2|SN|2085-9^HDL^LN||>^60|mg/dL|||||F\r"
             "OBX|3|SN|X1^Range^L||^10^-^20|mg/dL|||||F\r"
             "OBX|4|SN|X2^Titer^L||^1^:^128||||||F\r"
             "OBX|5|ST|X3^Remark^L||hemolyzed||||||F\r"
             "OBX|6|FT|X4^Report^L||line one\\.br\\line two||||||F\r"
             "OBX|7|CWE|X5^Culture^L||260373001^Detected^SCT||||||F\r"
             "OBX|8|DT|X6^Onset^L||20231215||||||F\r"
             "OBX|9|TM|X7^Time^L||0830||||||F\r"
             "OBX|10|ED|X8^Scan^L||^AP^PDF^Base64^SGVsbG8=||||||F\r"
             "OBX|11|CQ|X9^Volume^L||250^mL&milliliter&UCUM||||||F\r"
             "OBX|12|NA|X10^Wave^L||1^2^3||||||F\r"
             "OBX|13|NR|X11^Bounds^L||3.5^5.5||||||F\r"
             "OBX|14|DR|X12^Stay^L||20240101^20240103||||||F\r"
             "OBX|15|TX|X13^Text^L||free text||||||F\r"
             "SPM|1|SP1&LAB&9.8.7&ISO||SER^Serum^HL70487|||VENIP^Venipuncture^HL70488|||||2^mL&&UCUM|||||"
             "20240102080000|20240102083000||Y\r",
             ctl, status);
    return g_msg;
}

Test(map_orders, oru_makes_order_report_observations_specimen) {
    conv_ok(oru("R1", "F"));
    cr_assert_str_eq(g_res.table, "ORU_R01");
    cr_assert_eq(count_of("ServiceRequest"), 1, "ORC and OBR are one order");
    cr_assert_eq(count_of("DiagnosticReport"), 2, "the OBR's report and the ED OBX's");
    cr_assert_eq(count_of("Observation"), 15);
    cr_assert_eq(count_of("Specimen"), 1);

    json_t *sr = res_of("ServiceRequest", 0);
    ASSERT_STR(sr, "status", "completed");
    ASSERT_STR(sr, "intent", "order");
    ASSERT_STR(sr, "note[0].text", "Fasting sample");
    cr_assert_str_eq(url_of("ServiceRequest", 0), "ServiceRequest?identifier=urn:oid:1.2.3|PL1");

    json_t *dr = res_of("DiagnosticReport", 0);
    cr_assert_str_eq(url_of("DiagnosticReport", 0), "DiagnosticReport?identifier=urn:oid:9.8.7|FL1");
    ASSERT_STR(dr, "status", "final");
    ASSERT_STR(dr, "code.coding[0].system", "http://loinc.org");
    ASSERT_STR(dr, "effectiveDateTime", "2024-01-02T08:30:00-05:00");
    ASSERT_STR(dr, "issued", "2024-01-02T10:00:00-05:00");
    cr_assert_eq(json_array_size(json_object_get(dr, "result")), 15);
    cr_assert_eq(target_of(dr, "basedOn[0].reference"), sr);
    cr_assert_eq(target_of(dr, "specimen[0].reference"), res_of("Specimen", 0));
    ASSERT_STR(target_of(dr, "subject.reference"), "resourceType", "Patient");

    json_t *o = res_of("Observation", 0);
    cr_assert_str_eq(url_of("Observation", 0), "Observation?identifier=urn:oid:9.8.7|FL1-1-2093-3");
    ASSERT_STR(o, "status", "final");
    ASSERT_NUM(o, "valueQuantity.value", 190);
    ASSERT_STR(o, "valueQuantity.code", "mg/dL");
    ASSERT_STR(o, "valueQuantity.system", "http://unitsofmeasure.org");
    ASSERT_STR(o, "referenceRange[0].text", "<200");
    ASSERT_STR(o, "interpretation[0].coding[0].code", "N");
    ASSERT_STR(o, "effectiveDateTime", "2024-01-02T09:00:00-05:00");
    ASSERT_STR(o, "note[0].text", "Repeat in a year");
    cr_assert_eq(target_of(o, "basedOn[0].reference"), sr);

    o = res_of("Observation", 1); /* SN >^60 */
    ASSERT_STR(o, "valueQuantity.comparator", ">");
    ASSERT_NUM(o, "valueQuantity.value", 60);
    ASSERT_ABSENT(o, "note");
    o = res_of("Observation", 2); /* SN range */
    ASSERT_NUM(o, "valueRange.low.value", 10);
    ASSERT_NUM(o, "valueRange.high.value", 20);
    ASSERT_STR(o, "valueRange.high.unit", "mg/dL");
    o = res_of("Observation", 3); /* SN ratio */
    ASSERT_NUM(o, "valueRatio.numerator.value", 1);
    ASSERT_NUM(o, "valueRatio.denominator.value", 128);
    ASSERT_STR(res_of("Observation", 4), "valueString", "hemolyzed");
    ASSERT_STR(res_of("Observation", 5), "valueString", "line one\nline two");
    o = res_of("Observation", 6);
    ASSERT_STR(o, "valueCodeableConcept.coding[0].code", "260373001");
    ASSERT_STR(o, "valueCodeableConcept.coding[0].system", "http://snomed.info/sct");
    ASSERT_STR(res_of("Observation", 7), "valueDateTime", "2023-12-15");
    ASSERT_STR(res_of("Observation", 8), "valueTime", "08:30:00");
    /* The ED OBX: its Observation holds no copy of the data; a report of
     * its own presents it (R4's Observation has no valueAttachment). */
    o = res_of("Observation", 9);
    ASSERT_ABSENT(o, "extension");
    ASSERT_ABSENT(o, "valueString");
    json_t *pdf = res_of("DiagnosticReport", 1);
    cr_assert_str_eq(url_of("DiagnosticReport", 1), "DiagnosticReport?identifier=urn:oid:9.8.7|FL1-10-X8");
    ASSERT_STR(pdf, "code.coding[0].code", "X8");
    ASSERT_STR(pdf, "status", "final");
    ASSERT_STR(pdf, "presentedForm[0].contentType", "application/pdf");
    ASSERT_STR(pdf, "presentedForm[0].data", "SGVsbG8=");
    ASSERT_STR(pdf, "effectiveDateTime", "2024-01-02T08:30:00-05:00");
    ASSERT_STR(pdf, "issued", "2024-01-02T10:00:00-05:00");
    cr_assert_eq(json_array_size(json_object_get(pdf, "result")), 1);
    cr_assert_eq(target_of(pdf, "result[0].reference"), o);
    cr_assert_eq(target_of(pdf, "basedOn[0].reference"), sr);
    cr_assert_eq(target_of(dr, "result[9].reference"), o, "still one of the order's results");
    o = res_of("Observation", 10);
    ASSERT_NUM(o, "valueQuantity.value", 250);
    ASSERT_STR(o, "valueQuantity.unit", "milliliter");
    ASSERT_STR(res_of("Observation", 11), "valueString", "1^2^3");
    o = res_of("Observation", 12);
    ASSERT_NUM(o, "valueRange.low.value", 3.5);
    ASSERT_NUM(o, "valueRange.high.value", 5.5);
    o = res_of("Observation", 13);
    ASSERT_STR(o, "valuePeriod.start", "2024-01-01");
    ASSERT_STR(o, "valuePeriod.end", "2024-01-03");
    ASSERT_STR(res_of("Observation", 14), "valueString", "free text");

    json_t *sp = res_of("Specimen", 0);
    cr_assert_str_eq(url_of("Specimen", 0), "Specimen?identifier=urn:oid:9.8.7|SP1");
    ASSERT_STR(sp, "type.coding[0].code", "SER");
    ASSERT_STR(sp, "collection.method.coding[0].code", "VENIP");
    ASSERT_NUM(sp, "collection.quantity.value", 2);
    ASSERT_STR(sp, "collection.collectedDateTime", "2024-01-02T08:00:00-05:00");
    ASSERT_STR(sp, "status", "available");
}

Test(map_orders, corrected_result_updates_the_same_observation) {
    conv_ok(oru("R1", "F"));
    char first[256];
    snprintf(first, sizeof first, "%s", url_of("Observation", 0));
    char report[256];
    snprintf(report, sizeof report, "%s", url_of("DiagnosticReport", 0));
    /* A correction, another control id. */
    conv_ok(oru("R2", "C"));
    cr_assert_str_eq(url_of("Observation", 0), first);
    cr_assert_str_eq(url_of("DiagnosticReport", 0), report);
    ASSERT_STR(res_of("Observation", 0), "status", "corrected");
    /* Every Observation has its own key. */
    for (int i = 0; i < 15; i++)
        for (int k = 0; k < i; k++)
            cr_assert_str_neq(url_of("Observation", i), url_of("Observation", k));
}

Test(map_orders, bad_number_is_left_out_with_a_warning) {
    conv_msg(MSH("ORU^R01^ORU_R01", "R3") PID "OBR|1||F9^LAB|1^T^L\rOBX|1|NM|1^T^L||abc||||||F\r");
    ASSERT_ABSENT(res_of("Observation", 0), "valueQuantity");
    cr_assert_geq(g_res.nwarnings, 1);
    cr_assert_eq(g_res.warnings[0].loc.field, 5);
}

/* A whole number no long long holds stays a real (its conversion was
 * undefined: UBSan, fuzz_map); inf and nan are no decimal. */
Test(map_orders, huge_and_infinite_numbers) {
    conv_msg(MSH("ORU^R01^ORU_R01", "R4") PID
             "OBR|1||F9^LAB|1^T^L\rOBX|1|NM|1^T^L||188888888888888888888888888888||||||F\r"
             "OBX|2|NM|2^T^L||-9300000000000000000||||||F\rOBX|3|NM|3^T^L||inf||||||F\r"
             "OBX|4|NM|4^T^L||1e999||||||F\r");
    json_t *v = at(res_of("Observation", 0), "valueQuantity.value");
    cr_assert(json_is_real(v));
    cr_assert_float_eq(json_real_value(v), 1.88888888888888888e29, 1e15);
    cr_assert(json_is_real(at(res_of("Observation", 1), "valueQuantity.value")));
    cr_assert_lt(json_real_value(at(res_of("Observation", 1), "valueQuantity.value")), -9.2e18);
    ASSERT_ABSENT(res_of("Observation", 2), "valueQuantity");
    ASSERT_ABSENT(res_of("Observation", 3), "valueQuantity");
    cr_assert_eq(g_res.nwarnings, 2);
}

/* ---- orders ----------------------------------------------------------------- */

Test(map_orders, orm_order_and_priority) {
    conv_msg(MSH("ORM^O01^ORM_O01", "O1") PID PV1
             "ORC|NW|PO5^ORD||||||||||88^Jones^Ed\r"
             "OBR|1|PO5^ORD||80048^BMP^CPT|S|20240102090000\r"
             "NTE|1||call with results\r");
    cr_assert_eq(count_of("ServiceRequest"), 1);
    json_t *sr = res_of("ServiceRequest", 0);
    cr_assert_str_eq(url_of("ServiceRequest", 0), "ServiceRequest?identifier=urn:id:ORD|PO5");
    ASSERT_STR(sr, "status", "active");
    ASSERT_STR(sr, "priority", "stat");
    ASSERT_STR(sr, "code.coding[0].code", "80048");
    ASSERT_STR(sr, "occurrenceDateTime", "2024-01-02T09:00:00-05:00");
    ASSERT_STR(sr, "note[0].text", "call with results");
    ASSERT_STR(target_of(sr, "requester.reference"), "name[0].family", "Jones");
    ASSERT_STR(target_of(sr, "subject.reference"), "resourceType", "Patient");
    /* A cancel of the same order: the same ServiceRequest, revoked. */
    conv_msg(MSH("ORM^O01^ORM_O01", "O2") PID "ORC|CA|PO5^ORD\rOBR|1|PO5^ORD||80048^BMP^CPT\r");
    cr_assert_str_eq(url_of("ServiceRequest", 0), "ServiceRequest?identifier=urn:id:ORD|PO5");
    ASSERT_STR(res_of("ServiceRequest", 0), "status", "revoked");
}

Test(map_orders, oml_order_with_timing_and_specimen) {
    conv_msg(MSH("OML^O21^OML_O21", "L1") PID
             "ORC|NW|PL9^ORD\r"
             "TQ1|1||||||20240105080000|20240105090000|R||Come fasting\r"
             "OBR|1|PL9^ORD||1558-6^Glucose^LN\r"
             "SPM|1|S9&ORD||BLD^Blood^HL70487\r");
    json_t *sr = res_of("ServiceRequest", 0);
    /* TQ1-11 (text instruction) is a note, as the IG's TQ1[ServiceRequest]. */
    ASSERT_STR(sr, "note[0].text", "Come fasting");
    ASSERT_STR(sr, "occurrencePeriod.start", "2024-01-05T08:00:00-05:00");
    ASSERT_STR(sr, "occurrencePeriod.end", "2024-01-05T09:00:00-05:00");
    ASSERT_ABSENT(sr, "occurrenceDateTime");
    ASSERT_STR(sr, "priority", "routine");
    cr_assert_eq(target_of(sr, "specimen[0].reference"), res_of("Specimen", 0));
    ASSERT_STR(res_of("Specimen", 0), "type.coding[0].code", "BLD");
}

Test(map_orders, rde_medication_request) {
    conv_msg(MSH("RDE^O11^RDE_O11", "P1") PID
             "ORC|NW|RX1^PHARM|||||||20240102100000|||44^Kim^Lee\r"
             "RXE||00904-5165^Aspirin 81 mg^NDC|1||TAB^tablet^UCUM|||||30|TAB^tablet|2\r"
             "RXR|PO^Oral^HL70162\r"
             "RXC|B|D5W^Dextrose 5%%^L|100|mL\r");
    json_t *mr = res_of("MedicationRequest", 0);
    cr_assert_str_eq(url_of("MedicationRequest", 0), "MedicationRequest?identifier=urn:id:PHARM|RX1");
    ASSERT_STR(mr, "status", "active");
    ASSERT_STR(mr, "intent", "order");
    ASSERT_STR(mr, "medicationCodeableConcept.coding[0].code", "00904-5165");
    ASSERT_NUM(mr, "dosageInstruction[0].doseAndRate[0].doseQuantity.value", 1);
    ASSERT_STR(mr, "dosageInstruction[0].doseAndRate[0].doseQuantity.code", "TAB");
    ASSERT_STR(mr, "dosageInstruction[0].route.coding[0].code", "PO");
    ASSERT_NUM(mr, "dispenseRequest.quantity.value", 30);
    ASSERT_NUM(mr, "dispenseRequest.numberOfRepeatsAllowed", 2);
    ASSERT_STR(mr, "authoredOn", "2024-01-02T10:00:00-05:00");
    ASSERT_STR(target_of(mr, "requester.reference"), "name[0].family", "Kim");
    json_t *med = target_of(mr, "supportingInformation[0].reference");
    ASSERT_STR(med, "code.coding[0].code", "D5W");
    ASSERT_NUM(med, "ingredient[0].strength.numerator.value", 100);
}

Test(map_orders, ras_medication_administration) {
    conv_msg(MSH("RAS^O17^RAS_O17", "A1") PID
             "ORC|RE|RX1^PHARM|F1^PHARM\r"
             "RXA|0|1|20240102120000||00904-5165^Aspirin^NDC|81|mg^mg^UCUM||||||||||||CP\r"
             "RXR|PO^Oral^HL70162\r");
    json_t *ma = res_of("MedicationAdministration", 0);
    cr_assert_str_eq(url_of("MedicationAdministration", 0),
                     "MedicationAdministration?identifier=urn:id:PHARM|F1-0-1");
    ASSERT_STR(ma, "status", "completed");
    ASSERT_STR(ma, "effectiveDateTime", "2024-01-02T12:00:00-05:00");
    ASSERT_NUM(ma, "dosage.dose.value", 81);
    ASSERT_STR(ma, "dosage.route.coding[0].code", "PO");
    ASSERT_STR(target_of(ma, "subject.reference"), "resourceType", "Patient");
}

/* ---- immunization ------------------------------------------------------------ */

Test(map_orders, vxu_immunizations_one_per_dose) {
    conv_msg(MSH("VXU^V04^VXU_V04", "V1") PID
             "ORC|RE||IZ1^CLINIC\r"
             "RXA|0|1|20240102||08^HepB^CVX|0.5|mL^mL^UCUM||00^New^NIP001|9^Nurse^Ann|||||L123|20251231|MSD^Merck^MVX|||CP|A\r"
             "RXR|C28161^IM^NCIT|LD^Left Deltoid^HL70163\r"
             "OBX|1|CE|64994-7^Eligibility^LN|1|V01^Not VFC^HL70064||||||F\r"
             "ORC|RE||IZ1^CLINIC\r"
             "RXA|0|1|20230101||88^Flu^CVX|999||||||||||||||CP\r"
             "ORC|RE||IZ1^CLINIC\r"
             "RXA|0|1|20220101||88^Flu^CVX|999||||||||||||||RE\r");
    cr_assert_eq(count_of("Immunization"), 3, "doses of one order stay apart");
    json_t *im = res_of("Immunization", 0);
    cr_assert_str_eq(url_of("Immunization", 0), "Immunization?identifier=urn:id:CLINIC|IZ1-08-20240102");
    ASSERT_STR(im, "status", "completed");
    ASSERT_STR(im, "vaccineCode.coding[0].system", "http://hl7.org/fhir/sid/cvx");
    ASSERT_STR(im, "occurrenceDateTime", "2024-01-02");
    ASSERT_NUM(im, "doseQuantity.value", 0.5);
    ASSERT_STR(im, "lotNumber", "L123");
    ASSERT_STR(im, "expirationDate", "2025-12-31");
    ASSERT_STR(im, "route.coding[0].code", "C28161");
    ASSERT_STR(im, "site.coding[0].code", "LD");
    cr_assert(json_is_true(json_object_get(im, "primarySource")));
    ASSERT_STR(im, "performer[0].function.coding[0].code", "AP");
    ASSERT_STR(target_of(im, "manufacturer.reference"), "name", "Merck");
    ASSERT_ABSENT(res_of("Immunization", 1), "doseQuantity");
    ASSERT_STR(res_of("Immunization", 2), "status", "not-done");
    json_t *o = res_of("Observation", 0);
    cr_assert_eq(target_of(o, "partOf[0].reference"), im);
}

/* ---- scheduling -------------------------------------------------------------- */

static const char *siu(const char *event, const char *ctl, const char *status) {
    snprintf(g_msg, sizeof g_msg,
             "MSH|^~\\&|SCHED|HOSP|HUB|HUB|20240102101500-0500||SIU^%s^SIU_S12|%s|P|2.5.1\r"
             "SCH|P77^SCHED|F77^SCHED||||CHK^Checkup^L|ROUTINE^Routine^L|FU^Follow-up^L|30|min|^^30^20240110090000^20240110093000"
             "||||||||||||||%s\r" PID
             "RGS|1|A\r"
             "AIS|1||99213^Office visit^CPT\r"
             "AIG|1||ROOM1^Room 1\r"
             "AIL|1||CLINIC^^^^^^^^Main Clinic\r"
             "AIP|1||55^Ray^Sam|ATND^Attending||||||||Booked\r",
             event, ctl, status);
    return g_msg;
}

Test(map_orders, siu_appointment_and_its_participants) {
    conv_ok(siu("S12", "S1", "Booked"));
    cr_assert_str_eq(g_res.table, "SIU_S12");
    json_t *ap = res_of("Appointment", 0);
    cr_assert_str_eq(url_of("Appointment", 0), "Appointment?identifier=urn:id:SCHED|F77");
    ASSERT_STR(ap, "status", "booked");
    ASSERT_STR(ap, "start", "2024-01-10T09:00:00-05:00");
    ASSERT_STR(ap, "end", "2024-01-10T09:30:00-05:00");
    ASSERT_NUM(ap, "minutesDuration", 30);
    ASSERT_STR(ap, "appointmentType.coding[0].code", "FU");
    ASSERT_STR(ap, "serviceType[0].coding[0].code", "99213");
    json_t *parts = json_object_get(ap, "participant");
    cr_assert_eq(json_array_size(parts), 4, "the patient, AIG, AIL, AIP");
    ASSERT_STR(target_of(ap, "participant[0].actor.reference"), "resourceType", "Patient");
    ASSERT_STR(ap, "participant[1].type[0].coding[0].code", "ROOM1");
    ASSERT_STR(target_of(ap, "participant[2].actor.reference"), "resourceType", "Location");
    ASSERT_STR(target_of(ap, "participant[3].actor.reference"), "name[0].family", "Ray");
    ASSERT_STR(ap, "participant[3].status", "accepted");
    for (size_t i = 0; i < json_array_size(parts); i++)
        cr_assert_not_null(json_object_get(json_array_get(parts, i), "status"), "participant %zu", i);
    /* S15 cancels the same appointment. */
    conv_ok(siu("S15", "S2", ""));
    cr_assert_str_eq(url_of("Appointment", 0), "Appointment?identifier=urn:id:SCHED|F77");
    ASSERT_STR(res_of("Appointment", 0), "status", "cancelled");
    conv_ok(siu("S14", "S3", "Cancelled"));
    ASSERT_STR(res_of("Appointment", 0), "status", "cancelled");
}

/* ---- documents --------------------------------------------------------------- */

Test(map_orders, mdm_document_reference_with_content) {
    conv_msg(MSH("MDM^T02^MDM_T02", "D1") PID
             "TXA|1|DS^Discharge summary^L|TX|20240102080000||20240102081500||||||DOC42^HIS|||||AU||AV\r"
             "OBX|1|TX|DS^Summary^L||Patient stable.||||||F\r"
             "OBX|2|FT|DS^Summary^L||Line A\\.br\\Line B||||||F\r"
             "OBX|3|ED|PDF^Scan^L||^AP^PDF^Base64^SGk=||||||F\r");
    json_t *d = res_of("DocumentReference", 0);
    cr_assert_str_eq(url_of("DocumentReference", 0), "DocumentReference?identifier=urn:id:HIS|DOC42");
    ASSERT_STR(d, "status", "current");
    ASSERT_STR(d, "docStatus", "final");
    ASSERT_STR(d, "type.coding[0].code", "DS");
    ASSERT_STR(d, "date", "2024-01-02T08:15:00-05:00");
    cr_assert_eq(json_array_size(json_object_get(d, "content")), 3);
    /* base64("Patient stable.") and base64("Line A\nLine B") */
    ASSERT_STR(d, "content[0].attachment.data", "UGF0aWVudCBzdGFibGUu");
    ASSERT_STR(d, "content[0].attachment.contentType", "text/plain");
    ASSERT_STR(d, "content[1].attachment.data", "TGluZSBBCkxpbmUgQg==");
    ASSERT_STR(d, "content[2].attachment.data", "SGk=");
    ASSERT_STR(d, "content[2].attachment.contentType", "application/pdf");
    ASSERT_STR(target_of(d, "subject.reference"), "resourceType", "Patient");
    /* Data that is not base64 is left out, with a warning naming OBX-5. */
    conv_msg(MSH("MDM^T02^MDM_T02", "D2") PID "TXA|1|DS||||||||||DOC42^HIS\r"
             "OBX|1|ED|PDF^Scan^L||^AP^PDF^Base64^<not base64>||||||F\r");
    ASSERT_ABSENT(res_of("DocumentReference", 0), "content[0].attachment.data");
    cr_assert_geq(g_res.nwarnings, 1);
}

/* ---- the IG's test messages: every one converts and validates -------------- */

Test(map_orders, ig_messages_convert_and_validate) {
    char dir[512];
    if (!hub_test_corpus("hl7v2/hl7-v2-to-fhir-ig", dir)) cr_skip("corpus absent: %s", dir);
    hub_fhir_defs *defs = NULL;
    hub_err err;
    cr_assert_eq(hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &defs, &err), HUB_OK);
    static const char *files[] = {"IG-test-conversion-ADT_A01.hl7", "IG-test-conversion-SIU_S12.hl7",
                                  "IG-test-conversion-ORM_O01.hl7", "IG-test-conversion-OML_O21.hl7",
                                  "IG-test-conversion-ORU_R01.hl7", "IG-test-conversion-MDM_T02.hl7",
                                  "IG-test-conversion-VXU_V04.hl7", "IG-sample-MDM_T02.hl7"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        size_t n;
        char *buf = hub_test_read_file(p, &n);
        cr_assert_not_null(buf, "%s", p);
        hub_v2_msg *m = NULL;
        hub_map_result_release(&g_res);
        hub_arena_reset(&g_arena);
        cr_assert_eq(hub_v2_parse(&g_arena, buf, n, NULL, &m, &err), HUB_OK, "%s", files[i]);
        hub_status rc = hub_map_message(g_map, m, NULL, &g_res, &err);
        cr_assert_eq(rc, HUB_OK, "%s: %s: %s", files[i], err.where, err.msg);
        hub_oo *oo = hub_oo_new();
        hub_fhir_validate_opts vo = {0};
        if (hub_fhir_validate(defs, g_res.bundle, &vo, oo) != HUB_OK) {
            char *js = json_dumps(hub_oo_json(oo), JSON_COMPACT);
            cr_assert_fail("%s: the Bundle does not validate: %s", files[i], js);
        }
        hub_oo_free(oo);
        hub_free(buf);
    }
    hub_fhir_defs_free(defs);
}

/* ---- engine additions the tables rely on ------------------------------------ */

Test(map_orders, message_without_resources_is_an_empty_bundle) {
    /* An ORU whose only segment is the MSH: no entry, no Provenance. */
    conv_ok(MSH("ORU^R01^ORU_R01", "E1"));
    cr_assert_eq(g_res.nresources, 0);
    cr_assert_null(json_object_get(g_res.bundle, "entry"));
}

Test(map_orders, namespace_that_is_no_oid_is_no_uri) {
    conv_msg(MSH("ORU^R01^ORU_R01", "E2") PID "OBR|1||F1^LAB^Not An Oid^ISO|1^T^L\r");
    json_t *dr = res_of("DiagnosticReport", 0);
    /* The namespace id stays the system; the bad OID is left out, warned. */
    ASSERT_STR(dr, "identifier[0].system", "urn:id:LAB");
    cr_assert_geq(g_res.nwarnings, 1);
}

Test(map_orders, same_key_twice_keeps_one_value) {
    /* Two OBX with the same set id and code: one Observation, one value[x]. */
    conv_msg(MSH("ORU^R01^ORU_R01", "E3") PID "OBR|1||F1^LAB|1^T^L\r"
             "OBX|1|NM|2^X^L||5||||||F\rOBX|1|ST|2^X^L||five||||||F\r");
    cr_assert_eq(count_of("Observation"), 1);
    json_t *o = res_of("Observation", 0);
    ASSERT_NUM(o, "valueQuantity.value", 5);
    ASSERT_ABSENT(o, "valueString");
}

Test(map_orders, oru_group_notes_go_to_their_owner) {
    /* ORDER_OBSERVATION>NTE: the order's note; OBSERVATION>NTE: the result's. */
    conv_msg(MSH("ORU^R01^ORU_R01", "E4") PID "OBR|1||F1^LAB|1^T^L\rNTE|1||order note\r"
             "OBX|1|ST|2^X^L||v||||||F\rNTE|1||result note\r");
    json_t *sr = res_of("ServiceRequest", 0);
    json_t *o = res_of("Observation", 0);
    cr_assert_eq(json_array_size(json_object_get(sr, "note")), 1);
    ASSERT_STR(sr, "note[0].text", "order note");
    cr_assert_eq(json_array_size(json_object_get(o, "note")), 1);
    ASSERT_STR(o, "note[0].text", "result note");
}

/* ---- specimen-oriented results and general orders ---------------------------- */

Test(map_orders, oul_obr_before_its_orc_is_one_order) {
    conv_msg(MSH("OUL^R22^OUL_R22", "U1") PID
             "SPM|1|S5&LAB||BLD^Blood^HL70487\r"
             "OBR|1|PL5^ORD|FL5^LAB|1558-6^Glucose^LN\r"
             "ORC|SC|PL5^ORD|FL5^LAB||CM\r"
             "OBX|1|NM|1558-6^Glucose^LN||98|mg/dL||||||F\r");
    cr_assert_eq(count_of("ServiceRequest"), 1);
    ASSERT_STR(res_of("ServiceRequest", 0), "status", "completed");
    json_t *dr = res_of("DiagnosticReport", 0);
    cr_assert_eq(target_of(dr, "specimen[0].reference"), res_of("Specimen", 0));
    cr_assert_eq(target_of(dr, "result[0].reference"), res_of("Observation", 0));
    cr_assert_str_eq(url_of("Observation", 0), "Observation?identifier=urn:id:LAB|FL5-1-1558-6");
}

Test(map_orders, omg_order) {
    conv_msg(MSH("OMG^O19^OMG_O19", "G1") PID "ORC|NW|PG1^ORD\rOBR|1|PG1^ORD||71045^Chest X-ray^CPT\r");
    cr_assert_str_eq(g_res.table, "OMG_O19");
    json_t *sr = res_of("ServiceRequest", 0);
    ASSERT_STR(sr, "status", "active");
    ASSERT_STR(sr, "code.coding[0].code", "71045");
}

Test(map_orders, second_obr_without_orc_is_its_own_order_and_report) {
    /* The second OBR has no ORC of its own: ORC-n names none (not the first
     * order's ORC), so its own OBR-2/3 key it, or the two orders would be
     * one. */
    conv_msg(MSH("ORU^R01^ORU_R01", "R9") PID
             "ORC|RE|PL1^ORD|FL1^LAB\r"
             "OBR|1|PL1^ORD|FL1^LAB|1558-6^Glucose^LN|||20240102\r"
             "OBX|1|NM|1558-6^Glucose^LN||98|mg/dL||||||F\r"
             "OBR|2|PL2^ORD|FL2^LAB|2345-7^Glucose^LN|||20240102\r"
             "OBX|1|NM|2345-7^Glucose^LN||99|mg/dL||||||F\r");
    cr_assert_eq(count_of("ServiceRequest"), 2);
    cr_assert_eq(count_of("DiagnosticReport"), 2);
    cr_assert_str_eq(url_of("DiagnosticReport", 1), "DiagnosticReport?identifier=urn:id:LAB|FL2");
    json_t *ids = json_object_get(res_of("ServiceRequest", 1), "identifier");
    cr_assert_eq(json_array_size(ids), 2);
    ASSERT_STR(json_array_get(ids, 0), "value", "PL2");
    ASSERT_STR(json_array_get(ids, 1), "value", "FL2");
}

Test(map_orders, orc_order_numbers_win_in_their_own_order_group) {
    /* The IG takes OBR-2/3 only when the ORC of the same order leaves them
     * empty. The first order's ORC and OBR disagree: the ORC's numbers key
     * the order and the report. The second order has no ORC: its OBR's. */
    conv_msg(MSH("ORU^R01^ORU_R01", "R10") PID
             "ORC|RE|PLO^ORD|FLO^LAB|||||||||||||^^^^^^^^Redo\r"
             "OBR|1|PLB^ORD|FLB^LAB|1558-6^Glucose^LN\r"
             "OBR|2|PL2^ORD|FL2^LAB|2345-7^Glucose^LN\r");
    cr_assert_str_eq(url_of("ServiceRequest", 0), "ServiceRequest?identifier=urn:id:ORD|PLO");
    cr_assert_str_eq(url_of("DiagnosticReport", 0), "DiagnosticReport?identifier=urn:id:LAB|FLO");
    cr_assert_str_eq(url_of("ServiceRequest", 1), "ServiceRequest?identifier=urn:id:ORD|PL2");
    cr_assert_str_eq(url_of("DiagnosticReport", 1), "DiagnosticReport?identifier=urn:id:LAB|FL2");
    /* ORC-16 is the report's status reason (the IG's ORC[DiagnosticReport]);
     * the second order has none. */
    ASSERT_STR(res_of("DiagnosticReport", 0), "extension[0].valueCodeableConcept.text", "Redo");
    ASSERT_ABSENT(res_of("DiagnosticReport", 1), "extension");

    /* A v2.5.1 ORU with an OBX between the ORC and its OBR (as some senders
     * write one) does not follow the structure: the OBR still has that
     * ORC, since no other OBR lies between them. */
    conv_msg(MSH("ORU^R01^ORU_R01", "R11") PID "ORC|RE|PLX^ORD|FLX^LAB\r"
             "OBX|1|ST|1^A^L||a||||||F\r"
             "OBR|1|||1558-6^Glucose^LN\r");
    cr_assert_str_eq(url_of("ServiceRequest", 0), "ServiceRequest?identifier=urn:id:ORD|PLX");
    cr_assert_str_eq(url_of("DiagnosticReport", 0), "DiagnosticReport?identifier=urn:id:LAB|FLX");
}

Test(map_orders, placer_group_number_is_an_ei_but_in_v2_8_an_eip) {
    /* ORC-4 is an EI (its second component a namespace) in every version
     * but v2.8, where it is an EIP (placer and filler parts): the report
     * gets a PGN identifier, and an FGN one only from an EIP; the order
     * gets it as its requisition, typed PGN. */
    conv_msg(MSH("ORU^R01^ORU_R01", "R12") PID "ORC|RE|PL12^ORD|FL12^LAB|G12^GRP\r"
             "OBR|1|||1558-6^Glucose^LN\r");
    json_t *ids = json_object_get(res_of("DiagnosticReport", 0), "identifier");
    cr_assert_eq(json_array_size(ids), 3);
    ASSERT_STR(json_array_get(ids, 2), "value", "G12");
    ASSERT_STR(json_array_get(ids, 2), "system", "urn:id:GRP");
    ASSERT_STR(json_array_get(ids, 2), "type.coding[0].code", "PGN");
    json_t *sr = res_of("ServiceRequest", 0);
    ASSERT_STR(sr, "requisition.value", "G12");
    ASSERT_STR(sr, "requisition.type.coding[0].code", "PGN");

    conv_msg("MSH|^~\\&|LAB|HOSP|HUB|HUB|20240102101500-0500||ORU^R01^ORU_R01|R13|P|2.8\r" PID
             "ORC|RE|PL13^ORD|FL13^LAB|G13&GRP^F13&LAB\r"
             "OBR|1|||1558-6^Glucose^LN\r");
    ids = json_object_get(res_of("DiagnosticReport", 0), "identifier");
    cr_assert_eq(json_array_size(ids), 4);
    ASSERT_STR(json_array_get(ids, 2), "value", "G13");
    ASSERT_STR(json_array_get(ids, 3), "value", "F13");
    ASSERT_STR(json_array_get(ids, 3), "type.coding[0].code", "FGN");
    ASSERT_STR(res_of("ServiceRequest", 0), "requisition.value", "G13");
}

Test(map_orders, alternate_placer_numbers_follow_the_order_numbers) {
    /* ORC-33 repeats: every alternate placer number is a PLAC identifier
     * after the placer's and the filler's, here after OBR-2 alone (the
     * filler's place left empty is dropped). */
    conv_msg(MSH("ORM^O01^ORM_O01", "P6") PID
             "ORC|NW||||||||||||||||||||||||||||||||ALT1^^^ORD~ALT2^^^ORD\r"
             "OBR|1|PR6^ORD||1558-6^Glucose^LN\r");
    cr_assert_str_eq(url_of("ServiceRequest", 0), "ServiceRequest?identifier=urn:id:ORD|PR6");
    json_t *ids = json_object_get(res_of("ServiceRequest", 0), "identifier");
    cr_assert_eq(json_array_size(ids), 3);
    ASSERT_STR(json_array_get(ids, 0), "value", "PR6");
    ASSERT_STR(json_array_get(ids, 1), "value", "ALT1");
    ASSERT_STR(json_array_get(ids, 2), "value", "ALT2");
    for (size_t i = 0; i < 3; i++)
        ASSERT_STR(json_array_get(ids, i), "type.coding[0].code", "PLAC");

    /* OBR-53 gives them instead when it is sent. */
    conv_msg(MSH("ORM^O01^ORM_O01", "P7") PID
             "ORC|NW|PR7^ORD|||||||||||||||||||||||||||||||ALT1^^^ORD\r"
             "OBR|1|PR7^ORD||1558-6^Glucose^LN|||||||||||||||||||||||||||||||||||||||||||||||||"
             "ALT9^^^ORD\r");
    ids = json_object_get(res_of("ServiceRequest", 0), "identifier");
    cr_assert_eq(json_array_size(ids), 2);
    ASSERT_STR(json_array_get(ids, 1), "value", "ALT9");
}

Test(map_orders, identifier_sent_as_its_authority_alone_keeps_its_type) {
    /* The IG types SPM-2's placer part (EIP-1) PGN when it is sent, also
     * when it holds only a namespace. */
    conv_msg(MSH("OML^O21^OML_O21", "L9") PID "ORC|NW|PL9^ORD\rOBR|1|PL9^ORD\r"
             "SPM|1|&LAB||BLD^Blood^HL70487\r");
    json_t *sp = res_of("Specimen", 0);
    ASSERT_STR(sp, "identifier[0].type.coding[0].code", "PGN");
    ASSERT_ABSENT(sp, "identifier[0].value");
}

/* ---- ED and RP results: reports presenting them --------------------------- */

/* The Bundle in g_res validates against FHIR R4. */
static void assert_valid_bundle(void) {
    hub_fhir_defs *defs = NULL;
    hub_err err;
    cr_assert_eq(hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &defs, &err), HUB_OK);
    hub_oo *oo = hub_oo_new();
    hub_fhir_validate_opts vo = {0};
    if (hub_fhir_validate(defs, g_res.bundle, &vo, oo) != HUB_OK) {
        char *js = json_dumps(hub_oo_json(oo), JSON_COMPACT);
        cr_assert_fail("the Bundle does not validate: %s", js);
    }
    hub_oo_free(oo);
    hub_fhir_defs_free(defs);
}

Test(map_orders, ed_and_rp_results_are_reports_presenting_them) {
    conv_msg(MSH("ORU^R01^ORU_R01", "A1") PID
             "OBR|1|PL1^ORD|FL1^LAB|11502-2^Lab report^LN|||20240102083000\r"
             "OBX|1|NM|1558-6^Glucose^LN||98|mg/dL||||||F\r"
             "OBX|2|RP|SLIDE^Slide^L||http://img.example/view?case=7\\T\\slide=3^^IM^MRXS||||||P|||"
             "20240102090000|||||||SL77^SCANNER\r"
             "NTE|1||Stained HE\r"
             "OBX|3|RP|PIC^Picture^L||http://img.example/p.jpg^^IM^JPEG||||||F\r"
             "OBX|4|ED|PDF^Report^L||^AP^PDF^Base64^not base64!||||||F\r"
             "OBX|5|ED|HEX^Hex^L||^AP^PDF^Hex^48 65 6C 6c 6F||||||F\r"
             "OBX|6|ED|ODD^Odd^L||^AP^PDF^Hex^486||||||F\r"
             "OBX|7|ED|NONE^No data^L||^AP^PDF^Base64^||||||F\r");
    cr_assert_eq(count_of("DiagnosticReport"), 6, "the OBR's and one per ED or RP OBX with data");
    cr_assert_eq(count_of("Observation"), 7);
    json_t *dr = res_of("DiagnosticReport", 0);
    cr_assert_eq(json_array_size(json_object_get(dr, "result")), 7);

    json_t *slide = res_of("DiagnosticReport", 1), *o = res_of("Observation", 1);
    cr_assert_str_eq(url_of("DiagnosticReport", 1), "DiagnosticReport?identifier=urn:id:LAB|FL1-2-SLIDE");
    ASSERT_STR(slide, "code.coding[0].code", "SLIDE");
    ASSERT_STR(slide, "status", "preliminary");
    ASSERT_STR(slide, "effectiveDateTime", "2024-01-02T09:00:00-05:00");
    ASSERT_STR(slide, "presentedForm[0].url", "http://img.example/view?case=7&slide=3");
    /* A subtype no table knows still makes a MIME type with the type of
     * data, and is flagged. */
    ASSERT_STR(slide, "presentedForm[0].contentType", "image/MRXS");
    ASSERT_STR(slide, "presentedForm[0]._contentType.extension[0].valueCode", "MRXS");
    ASSERT_STR(slide, "identifier[1].value", "SL77");
    ASSERT_STR(slide, "identifier[1].type.coding[0].code", "FILL");
    cr_assert_eq(target_of(slide, "result[0].reference"), o);
    ASSERT_ABSENT(o, "valueString");
    ASSERT_STR(o, "note[0].text", "Stained HE");

    json_t *pic = res_of("DiagnosticReport", 2);
    ASSERT_STR(pic, "presentedForm[0].contentType", "image/jpeg");
    ASSERT_ABSENT(pic, "presentedForm[0]._contentType");
    /* Data that is not base64 is left out, with a warning. */
    json_t *pdf = res_of("DiagnosticReport", 3);
    ASSERT_STR(pdf, "presentedForm[0].contentType", "application/pdf");
    ASSERT_ABSENT(pdf, "presentedForm[0].data");
    /* Hex (ED-4) is decoded to its bytes: "Hello"; an odd digit is refused. */
    ASSERT_STR(res_of("DiagnosticReport", 4), "presentedForm[0].data", "SGVsbG8=");
    ASSERT_ABSENT(res_of("DiagnosticReport", 5), "presentedForm[0].data");
    cr_assert_geq(g_res.nwarnings, 2);
    assert_valid_bundle();
    /* Every table that maps OBX[Observation] makes the report: a VXU's. */
    conv_msg(MSH("VXU^V04^VXU_V04", "A2") PID "ORC|RE||IZ1^REG\r"
             "RXA|0|1|20240102||08^HepB^CVX|0.5|mL\r"
             "OBX|1|ED|CERT^Certificate^L||^AP^PDF^Base64^SGk=||||||F\r");
    cr_assert_eq(count_of("DiagnosticReport"), 1);
    ASSERT_STR(res_of("DiagnosticReport", 0), "presentedForm[0].data", "SGk=");
    cr_assert_eq(target_of(res_of("DiagnosticReport", 0), "result[0].reference"), res_of("Observation", 0));
}

Test(map_orders, order_with_results_to_follow_is_their_report) {
    /* ORC-1 RE (observations to follow: the ORU's control code) in an order
     * or charge message: the OBR is also the report of its OBX; another
     * order's OBX stay the order's supporting information. */
    conv_msg(MSH("DFT^P03^DFT_P03", "F1") "EVN|P03|20240102\r" PID PV1
             "ORC|RE|PL1^ORD|FL1^LAB||CM\r"
             "OBR|1|PL1^ORD|FL1^LAB|57698-3^Lipid panel^LN|||20240102083000\r"
             "OBX|1|NM|2093-3^Cholesterol^LN||190|mg/dL||||||F\r"
             "FT1|1|||20240102||CG|80061^Lipid panel^CPT\r"
             "ORC|NW|PL2^ORD\r"
             "OBR|1|PL2^ORD||71045^Chest X-ray^CPT\r"
             "OBX|1|ST|Q1^Question^L||yes||||||F\r"
             "FT1|2|||20240102||CG|71045^Chest X-ray^CPT\r");
    cr_assert_eq(count_of("ServiceRequest"), 2);
    cr_assert_eq(count_of("DiagnosticReport"), 1);
    json_t *dr = res_of("DiagnosticReport", 0);
    cr_assert_str_eq(url_of("DiagnosticReport", 0), "DiagnosticReport?identifier=urn:id:LAB|FL1");
    ASSERT_STR(dr, "code.coding[0].code", "57698-3");
    cr_assert_eq(json_array_size(json_object_get(dr, "result")), 1);
    cr_assert_eq(target_of(dr, "result[0].reference"), res_of("Observation", 0));
    cr_assert_eq(target_of(dr, "basedOn[0].reference"), res_of("ServiceRequest", 0));
    cr_assert_eq(target_of(res_of("Observation", 0), "basedOn[0].reference"), res_of("ServiceRequest", 0));
    cr_assert_eq(target_of(res_of("ServiceRequest", 1), "supportingInfo[0].reference"),
                 res_of("Observation", 1));
    ASSERT_ABSENT(res_of("ServiceRequest", 0), "supportingInfo");
    assert_valid_bundle();
}

Test(map_orders, result_without_value_says_why) {
    /* X: cannot be obtained; final without a value: unknown; a value: none. */
    conv_msg(MSH("ORU^R01^ORU_R01", "D1") PID "OBR|1||F1^LAB|1^T^L\r"
             "OBX|1|ST|2^X^L||||||||X\rOBX|2|ST|3^Y^L||||||||F\r"
             "OBX|3|ST|4^Z^L||seen||||||F\rOBX|4|ST|5^W^L||||||||I\r");
    cr_assert_eq(count_of("Observation"), 4);
    ASSERT_STR(res_of("Observation", 0), "dataAbsentReason.coding[0].code", "cannot-be-obtained");
    ASSERT_STR(res_of("Observation", 1), "dataAbsentReason.coding[0].code", "unknown");
    ASSERT_ABSENT(res_of("Observation", 2), "dataAbsentReason");
    ASSERT_ABSENT(res_of("Observation", 3), "dataAbsentReason");
}

Test(map_orders, specimen_parent_is_a_specimen_with_its_identifiers) {
    conv_msg(MSH("ORU^R01^ORU_R01", "S1") PID "OBR|1||F1^LAB|1^T^L\r"
             "SPM|1|CH1&LAB|PA1&ORD^PA2&LAB|SER^Serum^HL70487"
             "|||||||||||||||||||||||||||O1~O2|SH1\r");
    cr_assert_eq(count_of("Specimen"), 2, "the specimen and its parent");
    json_t *child = res_of("Specimen", 0);
    json_t *parent = target_of(child, "parent[0].reference");
    ASSERT_STR(parent, "identifier[0].value", "PA1");
    ASSERT_STR(parent, "identifier[0].type.coding[0].code", "PGN");
    ASSERT_STR(parent, "identifier[1].value", "PA2");
    ASSERT_STR(parent, "identifier[1].type.coding[0].code", "FGN");
    ASSERT_STR(child, "identifier[1].value", "O1");
    ASSERT_STR(child, "identifier[2].value", "O2");
    ASSERT_STR(child, "identifier[3].value", "SH1");
    ASSERT_STR(child, "identifier[3].type.coding[0].code", "SHIP");
}

/* A participation naming a device (PRT-10) after an OBX is a Device the
 * Observation refers to, keyed by that identifier (the IG's PRT[Device]). */
Test(map_orders, prt_device_is_the_observations_device) {
    conv_msg(MSH("ORU^R01^ORU_R01", "V1") PID "OBR|1||F1^LAB|1^T^L\r"
             "OBX|1|NM|2^X^L||5||||||F\r"
             "PRT|1|AD||EQUIP||||||AN7^LAB^1.2.3^ISO||||||UDI9|20210501|20250501|LOT1|SER2||"
             "ANALYZER^Analyzer^L\r");
    cr_assert_eq(count_of("Device"), 1);
    json_t *dev = target_of(res_of("Observation", 0), "device.reference");
    ASSERT_STR(dev, "udiCarrier[0].deviceIdentifier", "AN7");
    ASSERT_STR(dev, "udiCarrier[1].deviceIdentifier", "UDI9");
    ASSERT_STR(dev, "manufactureDate", "2021-05-01");
    ASSERT_STR(dev, "lotNumber", "LOT1");
    ASSERT_STR(dev, "serialNumber", "SER2");
    ASSERT_STR(dev, "type.coding[0].code", "ANALYZER");
    cr_assert_str_eq(url_of("Device", 0), "Device?identifier=urn:oid:1.2.3|AN7");
}

/* OBX-23/24/25 as the IG maps them: the performing organization with its
 * address performs; with a medical director it is that director's
 * PractitionerRole's organization. */
Test(map_orders, performing_organization_and_its_medical_director) {
    conv_msg(MSH("ORU^R01^ORU_R01", "W1") PID "OBR|1||F1^LAB|1^T^L\r"
             "OBX|1|NM|2^X^L||5||||||F||||||||||||Lab One^^^^^^^^^L1|9 Lab Rd^^Labtown^ST^12345\r"
             "OBX|2|NM|3^Y^L||6||||||F||||||||||||Lab One^^^^^^^^^L1|9 Lab Rd^^Labtown^ST^12345|"
             "D1^Head^Doc\r");
    json_t *org = target_of(res_of("Observation", 0), "performer[0].reference");
    ASSERT_STR(org, "resourceType", "Organization");
    ASSERT_STR(org, "name", "Lab One");
    ASSERT_STR(org, "address[0].city", "Labtown");
    json_t *role = target_of(res_of("Observation", 1), "performer[0].reference");
    ASSERT_STR(role, "resourceType", "PractitionerRole");
    ASSERT_STR(role, "code[0].coding[0].code", "MDIR");
    ASSERT_STR(target_of(role, "practitioner.reference"), "name[0].family", "Head");
    cr_assert_eq(target_of(role, "organization.reference"), org, "one laboratory, named twice");
}

/* NDL (OBR-32..35) is a PractitionerRole at its Location; a technician or
 * transcriptionist reference carries the performer's function beside it. */
Test(map_orders, ndl_is_a_practitioner_role_at_its_location) {
    conv_msg(MSH("ORU^R01^ORU_R01", "N1") PID
             "OBR|1||F1^LAB|1^T^L|||||||||||||||||||||F|||||||"
             "7&Reader&Rita^20240101^20240201|||9&Typist&Tom^^^POC^Room 1^Bed 2^Hosp^active\r");
    json_t *dr = res_of("DiagnosticReport", 0);
    json_t *reader = target_of(dr, "resultsInterpreter[0].reference");
    ASSERT_STR(reader, "resourceType", "PractitionerRole");
    ASSERT_STR(reader, "period.start", "2024-01-01");
    ASSERT_STR(target_of(reader, "practitioner.reference"), "name[0].family", "Reader");
    ASSERT_ABSENT(reader, "location");
    json_t *typist = target_of(dr, "performer[0].reference");
    ASSERT_STR(dr, "performer[0].extension[0].valueCodeableConcept.coding[0].code", "TRANS");
    json_t *bed = target_of(typist, "location[0].reference");
    ASSERT_STR(bed, "name", "Bed 2");
    ASSERT_STR(bed, "status", "active");
    ASSERT_STR(bed, "physicalType.coding[0].code", "bd");
    json_t *room = target_of(bed, "partOf.reference");
    ASSERT_STR(room, "name", "Room 1");
    ASSERT_STR(target_of(room, "partOf.reference"), "name", "POC");
}

/* SN with a suffix other than : / - + is a quantity keeping the whole value
 * as its original text; the <> comparator is text (the IG's OBX-5 rows). */
Test(map_orders, sn_quantity_with_a_suffix_keeps_its_text) {
    conv_msg(MSH("ORU^R01^ORU_R01", "Q1") PID "OBR|1||F1^LAB|1^T^L\r"
             "OBX|1|SN|2^X^L||>^1^.^3|mL|||||F\rOBX|2|SN|3^Y^L||<>^5||||||F\r");
    json_t *q = res_of("Observation", 0);
    ASSERT_NUM(q, "valueQuantity.value", 1);
    ASSERT_STR(q, "valueQuantity.comparator", ">");
    ASSERT_STR(q, "valueQuantity.extension[0].valueString", "> 1 . 3");
    ASSERT_STR(res_of("Observation", 1), "valueString", "<>5");
    ASSERT_ABSENT(res_of("Observation", 1), "valueQuantity");
}

Test(map_orders, ordering_facility_makes_the_requester_a_practitioner_role) {
    conv_msg(MSH("ORM^O01^ORM_O01", "P1") PID
             "ORC|NW|PR1^ORD||||||||||77^Jones^Al|||||||||Main Lab^^^^^^^^^L1|1 Lab St^^Town^ST^12345"
             "|^WPN^PH^^1^555^1234567|9 Doc Rd^^Docville^ST^12345\r"
             "OBR|1|PR1^ORD||1558-6^Glucose^LN\r");
    json_t *sr = res_of("ServiceRequest", 0);
    json_t *role = target_of(sr, "requester.reference");
    ASSERT_STR(role, "resourceType", "PractitionerRole");
    /* ORC-24 is the ordering provider's address (the IG's
     * requester(PractitionerRole.practitioner(Practitioner.address))). */
    json_t *doc = target_of(role, "practitioner.reference");
    ASSERT_STR(doc, "name[0].family", "Jones");
    ASSERT_STR(doc, "address[0].city", "Docville");
    json_t *org = target_of(role, "organization.reference");
    ASSERT_STR(org, "name", "Main Lab");
    ASSERT_STR(org, "address[0].city", "Town");
    ASSERT_STR(org, "telecom[0].system", "phone");

    /* Without a facility the requester is the Practitioner itself. */
    conv_msg(MSH("ORM^O01^ORM_O01", "P2") PID "ORC|NW|PR2^ORD||||||||||77^Jones^Al"
             "||||||||||||9 Doc Rd^^Docville^ST^12345~2 Other St^^Elsewhere\r"
             "OBR|1|PR2^ORD||1558-6^Glucose^LN\r");
    cr_assert_eq(count_of("PractitionerRole"), 0);
    doc = target_of(res_of("ServiceRequest", 0), "requester.reference");
    ASSERT_STR(doc, "resourceType", "Practitioner");
    ASSERT_STR(doc, "identifier[0].value", "77");
    ASSERT_STR(doc, "address[0].city", "Docville");
    ASSERT_STR(doc, "address[1].city", "Elsewhere");

    /* OBR-16 stands in for ORC-12; ORC-24 is still its address. */
    conv_msg(MSH("ORM^O01^ORM_O01", "P8") PID "ORC|NW|PR8^ORD||||||||||||||||||||||9 Doc Rd^^Docville\r"
             "OBR|1|PR8^ORD||1558-6^Glucose^LN||||||||||||88^Black^Bo\r");
    doc = target_of(res_of("ServiceRequest", 0), "requester.reference");
    ASSERT_STR(doc, "name[0].family", "Black");
    ASSERT_STR(doc, "address[0].city", "Docville");
}

Test(map_orders, requester_with_an_assigning_authority_is_the_practitioner) {
    /* XCN-9 makes an Organization inside the Practitioner's table: the
     * requester still names the Practitioner, not the last resource made. */
    conv_msg(MSH("ORM^O01^ORM_O01", "P3") PID
             "ORC|NW|PR3^ORD||||||||||77^Jones^Al^^^^^^NPI&2.16.840.1.113883.4.6&ISO\r"
             "OBR|1|PR3^ORD||1558-6^Glucose^LN\r");
    json_t *pr = target_of(res_of("ServiceRequest", 0), "requester.reference");
    ASSERT_STR(pr, "resourceType", "Practitioner");
    ASSERT_STR(target_of(pr, "identifier[0].assigner.reference"), "resourceType", "Organization");
}

/* ---- result status, result notes, accident and death (agree-fc) -------------- */

Test(map_orders, status_the_ig_leaves_unmapped_is_unknown_and_kept) {
    /* The IG's concept map has no FHIR status for S or I: unknown, with the
     * sent code flagged on _status; F maps. In ADT, an OBX without OBX-11
     * is final, one with an unmapped code unknown. */
    conv_msg(MSH("ORU^R01^ORU_R01", "T1") PID "OBR|1||F1^LAB|1^T^L\r"
             "OBX|1|ST|2^X^L||a||||||S\rOBX|2|ST|3^Y^L||b||||||I\rOBX|3|ST|4^Z^L||c||||||F\r");
    json_t *s = res_of("Observation", 0);
    ASSERT_STR(s, "status", "unknown");
    ASSERT_STR(s, "_status.extension[0].valueCode", "S");
    ASSERT_STR(res_of("Observation", 1), "status", "unknown");
    ASSERT_STR(res_of("Observation", 2), "status", "final");
    ASSERT_ABSENT(res_of("Observation", 2), "_status");
    conv_msg(MSH("ADT^A01^ADT_A01", "T2") "EVN|A01\r" PID PV1
             "OBX|1|NM|8302-2^Height^LN||180|cm|||||S\rOBX|2|NM|29463-7^Weight^LN||80|kg\r");
    ASSERT_STR(res_of("Observation", 0), "status", "unknown");
    ASSERT_STR(res_of("Observation", 1), "status", "final");
}

Test(map_orders, result_notes_are_the_observations_in_every_order_message) {
    /* OML: the OBR's NTE is the order's, the OBX's the result's. */
    conv_msg(MSH("OML^O21^OML_O21", "N1") PID "ORC|NW|PN1^ORD\r"
             "OBR|1|PN1^ORD||1^T^L\rNTE|1||order note\r"
             "OBX|1|ST|2^X^L||v||||||F\rNTE|1||result note|||20240102101500\r");
    json_t *sr = res_of("ServiceRequest", 0), *o = res_of("Observation", 0);
    cr_assert_eq(json_array_size(json_object_get(sr, "note")), 1);
    ASSERT_STR(sr, "note[0].text", "order note");
    cr_assert_eq(json_array_size(json_object_get(o, "note")), 1);
    ASSERT_STR(o, "note[0].text", "result note");
    ASSERT_STR(o, "note[0].time", "2024-01-02T10:15:00-05:00");
    /* REF: RESULTS_NOTES' NTE is the result's. */
    conv_msg(MSH("REF^I12^REF_I12", "N2") "RF1|P^Pending^HL70283\r" PID
             "OBR|1|PR1^ORD||1^T^L\rNTE|||referral test\r"
             "OBX|1|ST|2^X^L||positive||||||F\rNTE|||see the clinic\r"
             "PV1|1|O\rNTE|||the referral's note\r");
    /* The message's own NTE (REF_I12>NTE, after PV1): the order's. */
    ASSERT_STR(res_of("ServiceRequest", 0), "note[0].text", "referral test");
    ASSERT_STR(res_of("ServiceRequest", 0), "note[1].text", "the referral's note");
    ASSERT_STR(res_of("Observation", 0), "note[0].text", "see the clinic");
    cr_assert_eq(json_array_size(json_object_get(res_of("Observation", 0), "note")), 1);
    /* The referral's results are a report of its order. */
    json_t *dr = res_of("DiagnosticReport", 0);
    cr_assert_not_null(dr);
    cr_assert_eq(target_of(dr, "result[0].reference"), res_of("Observation", 0));
    cr_assert_eq(target_of(dr, "basedOn[0].reference"), res_of("ServiceRequest", 0));
    /* VXU: an NTE follows its OBX. */
    conv_msg(MSH("VXU^V04^VXU_V04", "N3") PID "ORC|RE||IZ1^REG\r"
             "RXA|0|1|20240101|20240101|08^HepB^CVX|1|mL\r"
             "OBX|1|CWE|64994-7^Eligibility^LN||V02^VFC^HL70064||||||F\rNTE|1||eligible\r");
    ASSERT_STR(res_of("Observation", 0), "note[0].text", "eligible");
    ASSERT_ABSENT(res_of("Immunization", 0), "note");
}

Test(map_orders, siu_patient_observation) {
    conv_msg(MSH("SIU^S12^SIU_S12", "A1") "SCH|AP1^SCHED|AF1^SCHED\r" PID
             "OBX|1|NM|8867-4^Heart rate^LN||72|/min^^UCUM|||||F\r");
    json_t *o = res_of("Observation", 0);
    cr_assert_not_null(o);
    ASSERT_NUM(o, "valueQuantity.value", 72);
    cr_assert_eq(target_of(o, "subject.reference"), res_of("Patient", 0));
}

static json_t *observation_coded(const char *code) {
    for (int i = 0; res_of("Observation", i); i++) {
        json_t *c = at(res_of("Observation", i), "code.coding[0].code");
        if (c && strcmp(json_string_value(c), code) == 0) return res_of("Observation", i);
    }
    return NULL;
}

Test(map_orders, accident_is_an_injury_incident_observation_of_the_visit) {
    const char *acc = "ACC|20240101|||TX|Y|N||fell from a ladder||Y\r";
    conv_msg(MSH("ADT^A01^ADT_A01", "C1") "EVN|A01\r" PID PV1 "%s", acc);
    json_t *o = observation_coded("11374-6");
    cr_assert_not_null(o, "no injury incident Observation");
    ASSERT_STR(o, "status", "final");
    ASSERT_STR(o, "code.coding[0].system", "http://loinc.org");
    ASSERT_STR(o, "effectiveDateTime", "2024-01-01");
    ASSERT_STR(o, "valueString", "fell from a ladder");
    cr_assert_eq(json_array_size(json_object_get(o, "component")), 3);
    ASSERT_STR(o, "component[0].code.text", "Accident job related indicator");
    ASSERT_STR(o, "component[0].valueCodeableConcept.coding[0].code", "Y");
    ASSERT_STR(o, "component[0].valueCodeableConcept.coding[0].display", "Yes");
    ASSERT_STR(o, "component[0].valueCodeableConcept.coding[0].system",
               "http://terminology.hl7.org/CodeSystem/v2-0136");
    ASSERT_STR(o, "component[1].code.text", "Accident death indicator");
    ASSERT_STR(o, "component[1].valueCodeableConcept.coding[0].display", "No");
    ASSERT_STR(o, "component[2].code.text", "Police notified indicator");
    cr_assert_eq(target_of(o, "encounter.reference"), res_of("Encounter", 0));
    /* The same visit's update (another control id) updates it. */
    char first[128];
    snprintf(first, sizeof first, "%s", url_of("Observation", 0));
    conv_msg(MSH("ADT^A08^ADT_A01", "C2") "EVN|A08\r" PID PV1 "%s", acc);
    cr_assert_str_eq(url_of("Observation", 0), first);
}

Test(map_orders, death_and_autopsy_are_observations_of_the_patient) {
    conv_msg(MSH("ADT^A03^ADT_A03", "P1") "EVN|A03\r" PID PV1
             "PDA|||Y|20240105120000|55^Coroner^Cal|Y|20240106^20240107|66^Path^Pat|U\r");
    cr_assert_eq(count_of("Observation"), 3);
    json_t *cert = res_of("Observation", 0);
    ASSERT_STR(cert, "code.text", "Death certified indicator");
    ASSERT_STR(cert, "valueCodeableConcept.coding[0].code", "Y");
    ASSERT_STR(cert, "effectiveDateTime", "2024-01-05T12:00:00-05:00");
    ASSERT_STR(target_of(cert, "performer[0].reference"), "name[0].family", "Coroner");
    json_t *aut = observation_coded("85699-7");
    cr_assert_not_null(aut);
    ASSERT_STR(aut, "effectivePeriod.start", "2024-01-06");
    ASSERT_STR(target_of(aut, "performer[0].reference"), "name[0].family", "Path");
    /* U is no code of table 0136: kept and flagged, never dropped. */
    json_t *cor = observation_coded("74497-9");
    cr_assert_not_null(cor);
    ASSERT_STR(cor, "valueCodeableConcept.coding[0]._code.extension[0].valueCode", "U");
    ASSERT_ABSENT(cor, "valueCodeableConcept.coding[0].system");
    cr_assert_gt(g_res.nunmapped, 0);
    /* Only the indicators sent make Observations. */
    conv_msg(MSH("ADT^A03^ADT_A03", "P2") "EVN|A03\r" PID PV1 "PDA||||||N\r");
    cr_assert_eq(count_of("Observation"), 1);
    ASSERT_STR(res_of("Observation", 0), "valueCodeableConcept.coding[0].display", "No");
}
