/* The mapping interpreter over the shipped tables: datatypes, events,
 * keys, "" vs empty, vocabulary, site tables, failures. */
#include "hub/fhir.h"
#include "hub/map.h"
#include "hub_test.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static hub_map *g_map;
static hub_arena g_arena;
static hub_map_result g_res;

static void load_with_site(const char *site) {
    hub_err err;
    hub_map_cfg c = {.dir = HUB_SOURCE_DIR "/mappings", .site_dir = site};
    cr_assert_eq(hub_map_load(&c, &g_map, &err), HUB_OK, "%s: %s", err.where, err.msg);
    hub_arena_init(&g_arena, 16384);
    memset(&g_res, 0, sizeof g_res);
}
static void up(void) { load_with_site(NULL); }
static void down(void) {
    hub_map_result_release(&g_res);
    hub_map_free(g_map);
    hub_arena_release(&g_arena);
}

#define MSH_A01 "MSH|^~\\&|ADM|HOSP|HUB|HUB|20240102101500-0500||ADT^A01^ADT_A01|C1|P|2.5.1\r"

/* Maps `msg` ('\r' separated); returns the status; the Bundle is in g_res. */
static hub_status conv_opts(const char *msg, const hub_map_opts *o, hub_err *err) {
    hub_v2_msg *m = NULL;
    hub_map_result_release(&g_res);
    hub_arena_reset(&g_arena);
    cr_assert_eq(hub_v2_parse(&g_arena, msg, strlen(msg), NULL, &m, err), HUB_OK);
    return hub_map_message(g_map, m, o, &g_res, err);
}
static hub_status conv(const char *msg, hub_err *err) { return conv_opts(msg, NULL, err); }

/* A segment from (field, value) pairs: seg("PID", 3, "1^^^H", 5, "X", 0). */
static const char *seg(const char *id, ...) {
    static char bufs[4][2048];
    static int which;
    char *b = bufs[which++ % 4];
    const char *vals[100] = {0};
    int max = 0;
    va_list ap;
    va_start(ap, id);
    for (;;) {
        int f = va_arg(ap, int);
        if (f == 0) break;
        vals[f] = va_arg(ap, const char *);
        if (f > max) max = f;
    }
    va_end(ap);
    int o = snprintf(b, 2048, "%s", id);
    for (int f = 1; f <= max; f++) o += snprintf(b + o, 2048 - (size_t)o, "|%s", vals[f] ? vals[f] : "");
    snprintf(b + o, 2048 - (size_t)o, "\r");
    return b;
}

static char g_msg[8192];
static const char *msg2(const char *a, const char *b) {
    snprintf(g_msg, sizeof g_msg, "%s%s%s", MSH_A01, a, b ? b : "");
    return g_msg;
}

/* The resource of the first entry of `type`. */
static json_t *res_of(const char *type, int nth) {
    json_t *e = json_object_get(g_res.bundle, "entry");
    for (size_t i = 0; i < json_array_size(e); i++) {
        json_t *r = json_object_get(json_array_get(e, i), "resource");
        if (strcmp(json_string_value(json_object_get(r, "resourceType")), type) == 0 && nth-- == 0)
            return r;
    }
    return NULL;
}
static json_t *req_of(const char *type) {
    json_t *e = json_object_get(g_res.bundle, "entry");
    for (size_t i = 0; i < json_array_size(e); i++) {
        json_t *en = json_array_get(e, i);
        json_t *r = json_object_get(en, "resource");
        if (strcmp(json_string_value(json_object_get(r, "resourceType")), type) == 0)
            return json_object_get(en, "request");
    }
    return NULL;
}
static const char *str_at(json_t *v, const char *path) {
    /* "a.b[1].c" */
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
    return json_is_string(v) ? json_string_value(v) : NULL;
}
#define ASSERT_AT(v, path, want)                                                     \
    do {                                                                             \
        const char *got_ = str_at((v), (path));                                      \
        cr_assert(got_ && strcmp(got_, (want)) == 0, "%s: got '%s', want '%s'", (path), \
                  got_ ? got_ : "(absent)", (want));                                 \
    } while (0)

TestSuite(map, .init = up, .fini = down);

Test(map, tables_load_fast) {
    size_t rows = 0;
    cr_assert_gt(hub_map_table_count(g_map, &rows), 30);
    cr_assert_gt(rows, 500);
    int64_t t0 = hub_mono_ns();
    hub_map *m2 = NULL;
    hub_err err;
    hub_map_cfg c = {.dir = HUB_SOURCE_DIR "/mappings"};
    cr_assert_eq(hub_map_load(&c, &m2, &err), HUB_OK);
    double ms = (double)(hub_mono_ns() - t0) / 1e6;
    hub_map_free(m2);
    printf("map: %zu rows loaded in %.2f ms\n", rows, ms);
    cr_assert_lt(ms, 500.0, "tables took %.1f ms to load", ms); /* ASan on a busy box */
}

Test(map, cx_identifier_keys_the_patient) {
    hub_err err;
    cr_assert_eq(conv(MSH_A01 "PID|1||123^^^HOSP&1.2.3&ISO^MR~456^^^LAB^PI||Doe^Jane\rPV1|1|I|||||||||||||||||V9^^^HOSP&1.2.3&ISO^VN\r",
                      &err), HUB_OK, "%s", err.msg);
    json_t *p = res_of("Patient", 0);
    ASSERT_AT(p, "identifier[0].value", "123");
    ASSERT_AT(p, "identifier[0].system", "urn:oid:1.2.3");
    ASSERT_AT(p, "identifier[0].type.coding[0].code", "MR");
    ASSERT_AT(p, "identifier[1].value", "456");
    ASSERT_AT(p, "identifier[1].system", "urn:id:LAB");
    ASSERT_AT(req_of("Patient"), "url", "Patient?identifier=urn:oid:1.2.3|123");
    ASSERT_AT(req_of("Patient"), "method", "PUT");
    ASSERT_AT(req_of("Encounter"), "url", "Encounter?identifier=urn:oid:1.2.3|V9");
    /* Encounter.subject is the Patient's entry. */
    json_t *e0 = json_array_get(json_object_get(g_res.bundle, "entry"), 0);
    ASSERT_AT(res_of("Encounter", 0), "subject.reference",
              json_string_value(json_object_get(e0, "fullUrl")));
}

Test(map, xpn_xad_xtn) {
    hub_err err;
    cr_assert_eq(conv(msg2(seg("PID", 3, "1^^^H", 5, "Doe&van^Jane^Q^Jr^Dr^^L~Smith^J^^^^^M", 11,
                               "1 Main St^Apt 2^Town^ST^12345^USA^H~9 Side Rd^^City^^^^B", 13,
                               "^PRN^PH^^^555^1234567~^NET^Internet^a@b.org", 14,
                               "^^PH^^^555^7654321", 0), NULL),
                      &err),
                 HUB_OK, "%s", err.msg);
    json_t *p = res_of("Patient", 0);
    ASSERT_AT(p, "name[0].family", "Doe");
    ASSERT_AT(p, "name[0].given[0]", "Jane");
    ASSERT_AT(p, "name[0].given[1]", "Q");
    ASSERT_AT(p, "name[0].suffix[0]", "Jr");
    ASSERT_AT(p, "name[0].prefix[0]", "Dr");
    ASSERT_AT(p, "name[0].use", "official");
    ASSERT_AT(p, "name[1].use", "maiden");
    ASSERT_AT(p, "address[0].line[0]", "1 Main St");
    ASSERT_AT(p, "address[0].line[1]", "Apt 2");
    ASSERT_AT(p, "address[0].city", "Town");
    ASSERT_AT(p, "address[0].use", "home");
    ASSERT_AT(p, "address[1].use", "work");
    /* The IG's XTN: area and local number assembled, and kept as extensions. */
    ASSERT_AT(p, "telecom[0].value", "555 1234567");
    ASSERT_AT(p, "telecom[0].extension[0].valueString", "555");
    ASSERT_AT(p, "telecom[0].extension[1].url",
              "http://hl7.org/fhir/StructureDefinition/contactpoint-local");
    ASSERT_AT(p, "name[0]._family.extension[0].url",
              "http://hl7.org/fhir/StructureDefinition/humanname-own-prefix");
    ASSERT_AT(p, "name[0]._family.extension[0].valueString", "van");
    ASSERT_AT(p, "telecom[0].system", "phone");
    ASSERT_AT(p, "telecom[0].use", "home");
    ASSERT_AT(p, "telecom[1].value", "a@b.org");
    ASSERT_AT(p, "telecom[1].system", "email");
    ASSERT_AT(p, "telecom[2].use", "work"); /* PID-14 without XTN-2 */
}

Test(map, cwe_coding_systems_and_vocabulary) {
    hub_err err;
    cr_assert_eq(conv(MSH_A01 "PID|1||1^^^H||X^Y||19700101|F||||||||M^Married^HL70002\rPV1|1|E\rOBX|1|NM|8302-2^Height^LN||180|cm^centimeter^UCUM|||||F\r", &err),
                 HUB_OK, "%s", err.msg);
    json_t *p = res_of("Patient", 0);
    ASSERT_AT(p, "gender", "female");
    ASSERT_AT(p, "birthDate", "1970-01-01");
    ASSERT_AT(p, "maritalStatus.coding[0].system", "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus");
    ASSERT_AT(p, "maritalStatus.coding[0].code", "M");
    ASSERT_AT(p, "maritalStatus.coding[1].system", "http://terminology.hl7.org/CodeSystem/v2-0002");
    ASSERT_AT(res_of("Encounter", 0), "class.code", "EMER");
    json_t *o = res_of("Observation", 0);
    ASSERT_AT(o, "code.coding[0].system", "http://loinc.org");
    ASSERT_AT(o, "code.coding[0].code", "8302-2");
    ASSERT_AT(o, "valueQuantity.unit", "centimeter");
    ASSERT_AT(o, "valueQuantity.system", "http://unitsofmeasure.org");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "valueQuantity"), "value")), 180);
    ASSERT_AT(o, "status", "final");
    cr_assert_eq(g_res.nunmapped, 0);
}

Test(map, dtm_precision_and_offset) {
    hub_err err;
    static const struct { const char *v, *want; } cases[] = {
        {"2023", "2023"}, {"202311", "2023-11"}, {"20231102", "2023-11-02"},
        {"2023110211", "2023-11-02T11:00:00-05:00"}, {"202311021104", "2023-11-02T11:04:00-05:00"},
        {"20231102110405", "2023-11-02T11:04:05-05:00"},
        {"20231102110405.678", "2023-11-02T11:04:05.678-05:00"},
        {"20231102110405+0100", "2023-11-02T11:04:05+01:00"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(conv(msg2(seg("PID", 3, "1^^^H", 5, "X", 29, cases[i].v, 0), NULL), &err),
                     HUB_OK, "%s", err.msg);
        ASSERT_AT(res_of("Patient", 0), "deceasedDateTime", cases[i].want);
    }
    char out[40];
    cr_assert(!hub_map_dtm("20231302", 8, 'T', NULL, out));   /* month 13 */
    cr_assert(!hub_map_dtm("20230230", 8, 'D', NULL, out));   /* 30 February */
    cr_assert(hub_map_dtm("20240229", 8, 'D', NULL, out));    /* leap day */
    cr_assert(!hub_map_dtm("2024022", 7, 'D', NULL, out));
    cr_assert(hub_map_dtm("202402291230", 12, 'T', NULL, out));
    cr_assert_str_eq(out, "2024-02-29T12:30:00Z");
}

Test(map, null_clears_empty_leaves) {
    hub_err err;
    cr_assert_eq(conv(msg2(seg("PID", 3, "1^^^H", 5, "Doe^J", 7, "\"\"", 11, "\"\"", 0), NULL), &err),
                 HUB_OK, "%s", err.msg);
    json_t *p = res_of("Patient", 0);
    cr_assert_null(json_object_get(p, "birthDate"));
    cr_assert_null(json_object_get(p, "gender")); /* PID-8 empty: left alone */
    json_t *ext = json_object_get(req_of("Patient"), "extension");
    bool merge = false, clr_birth = false, clr_addr = false, clr_gender = false;
    for (size_t i = 0; i < json_array_size(ext); i++) {
        json_t *x = json_array_get(ext, i);
        const char *u = json_string_value(json_object_get(x, "url"));
        const char *v = json_string_value(json_object_get(x, "valueString"));
        if (strcmp(u, HUB_MAP_MERGE_URL) == 0) merge = json_is_true(json_object_get(x, "valueBoolean"));
        if (strcmp(u, HUB_MAP_CLEAR_URL) == 0 && strcmp(v, "birthDate") == 0) clr_birth = true;
        if (strcmp(u, HUB_MAP_CLEAR_URL) == 0 && strcmp(v, "address") == 0) clr_addr = true;
        if (strcmp(u, HUB_MAP_CLEAR_URL) == 0 && strcmp(v, "gender") == 0) clr_gender = true;
    }
    cr_assert(merge);
    cr_assert(clr_birth, "PID-7 \"\" clears birthDate");
    cr_assert(clr_addr, "PID-11 \"\" clears address");
    cr_assert(!clr_gender, "an empty PID-8 clears nothing");
}

Test(map, unmapped_code_is_kept_and_flagged) {
    hub_err err;
    cr_assert_eq(conv(MSH_A01 "PID|1||1^^^H||X|||Q||||||||Z^Zed^HL70002\r", &err), HUB_OK, "%s", err.msg);
    json_t *p = res_of("Patient", 0);
    cr_assert_null(json_object_get(p, "gender"));
    ASSERT_AT(p, "_gender.extension[0].url", HUB_MAP_UNMAPPED_URL);
    ASSERT_AT(p, "_gender.extension[0].valueCode", "Q");
    ASSERT_AT(p, "maritalStatus.coding[0].code", "Z");
    ASSERT_AT(p, "maritalStatus.coding[0].extension[0].url", HUB_MAP_UNMAPPED_URL);
    cr_assert_eq(g_res.nunmapped, 2);
}

Test(map, events_set_encounter_status) {
    static const struct { const char *ev, *pv1, *want; } cases[] = {
        {"A01", "PV1|1|I", "in-progress"},
        {"A03", "PV1|1|I", "finished"},
        {"A08", NULL, "finished"},
        {"A11", "PV1|1|I", "cancelled"},
        {"A13", "PV1|1|I", "in-progress"},
        {"A05", "PV1|1|P", "planned"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[600];
        snprintf(msg, sizeof msg,
                 "MSH|^~\\&|ADM|HOSP|HUB|HUB|20240102||ADT^%s|C%zu|P|2.5.1\rPID|1||1^^^H||X\r%s\r",
                 cases[i].ev, i,
                 cases[i].pv1 ? cases[i].pv1 : seg("PV1", 1, "1", 2, "I", 45, "20240103", 0));
        hub_err err;
        cr_assert_eq(conv(msg, &err), HUB_OK, "%s: %s", cases[i].ev, err.msg);
        ASSERT_AT(res_of("Encounter", 0), "status", cases[i].want);
    }
}

Test(map, a40_merge_marks_the_old_patient) {
    hub_err err;
    cr_assert_eq(conv("MSH|^~\\&|ADM|HOSP|HUB|HUB|20240102||ADT^A40^ADT_A39|M1|P|2.5.1\rEVN|A40\rPID|1||NEW^^^H||X\rMRG|OLD^^^H\r", &err),
                 HUB_OK, "%s", err.msg);
    json_t *survivor = res_of("Patient", 0), *merged = res_of("Patient", 1);
    cr_assert_not_null(merged);
    ASSERT_AT(survivor, "identifier[0].value", "NEW");
    ASSERT_AT(merged, "identifier[0].value", "OLD");
    cr_assert(json_is_false(json_object_get(merged, "active")));
    ASSERT_AT(merged, "link[0].type", "replaced-by");
    json_t *e0 = json_array_get(json_object_get(g_res.bundle, "entry"), 0);
    ASSERT_AT(merged, "link[0].other.reference", json_string_value(json_object_get(e0, "fullUrl")));
}

Test(map, a47_changes_the_identifier_list_of_one_patient) {
    hub_err err;
    cr_assert_eq(conv("MSH|^~\\&|ADM|HOSP|HUB|HUB|20240102||ADT^A47^ADT_A30|C1|P|2.5.1\rEVN|A47\r"
                      "PID|1||NEW^^^H||X\rMRG|OLD^^^H\r", &err),
                 HUB_OK, "%s", err.msg);
    json_t *p = res_of("Patient", 0);
    cr_assert_not_null(p);
    cr_assert_null(res_of("Patient", 1), "one Patient, not two");
    ASSERT_AT(p, "identifier[0].value", "OLD");
    ASSERT_AT(p, "identifier[0].use", "old");
    ASSERT_AT(p, "identifier[1].value", "NEW");
    cr_assert_null(json_object_get(p, "name"), "only the identifiers change");
    json_t *e0 = json_array_get(json_object_get(g_res.bundle, "entry"), 0);
    ASSERT_AT(e0, "request.url", "Patient?identifier=urn:id:H|OLD");
    /* without MRG-1 there is no Patient to change: 101 naming it */
    cr_assert_eq(conv("MSH|^~\\&|ADM|HOSP|HUB|HUB|20240102||ADT^A47^ADT_A30|C2|P|2.5.1\rEVN|A47\r"
                      "PID|1||NEW^^^H||X\rMRG|\r", &err),
                 HUB_E_INVALID);
    cr_assert_eq(g_res.v2_code, 101);
}

Test(map, bad_date_fails_naming_the_field) {
    hub_err err;
    cr_assert_eq(conv(MSH_A01 "PID|1||1^^^H||X||19701340\r", &err), HUB_E_INVALID);
    cr_assert_str_eq(err.where, "PID-7");
    cr_assert_eq(g_res.v2_code, 102);
    cr_assert_str_eq(g_res.loc.seg_id, "PID");
    cr_assert_eq(g_res.loc.field, 7);
    cr_assert_null(strstr(err.msg, "1970"), "no value in the error");
}

Test(map, lenient_row_leaves_value_out_with_a_warning) {
    hub_err err;
    cr_assert_eq(conv(msg2(seg("PID", 3, "1^^^H", 5, "X", 30, "maybe", 0), NULL), &err), HUB_OK,
                 "%s", err.msg);
    cr_assert_null(json_object_get(res_of("Patient", 0), "deceasedBoolean"));
    cr_assert_eq(g_res.nwarnings, 1);
    cr_assert_eq(g_res.warnings[0].loc.field, 30);
    cr_assert_eq(g_res.warnings[0].severity, 'W');
}

Test(map, patient_without_identifier_fails_101) {
    hub_err err;
    cr_assert_eq(conv(MSH_A01 "PID|1||||X\r", &err), HUB_E_INVALID);
    cr_assert_str_eq(err.where, "PID-3");
    cr_assert_eq(g_res.v2_code, 101);
}

Test(map, unknown_message_type_is_200) {
    hub_err err;
    cr_assert_eq(conv("MSH|^~\\&|A|B|C|D|20240101||ZZZ^Z99|1|P|2.5.1\rPID|1||1\r", &err),
                 HUB_E_UNSUPPORTED);
    cr_assert_str_eq(err.where, "MSH-9");
    cr_assert_eq(g_res.v2_code, 200);
}

Test(map, resend_maps_to_the_same_ids) {
    hub_err err;
    const char *msg = MSH_A01 "PID|1||1^^^H||X\rNK1|1|Doe^Mum|MTH\rPV1|1|I|W1^R1^B1\r";
    cr_assert_eq(conv(msg, &err), HUB_OK);
    char *a = json_dumps(g_res.bundle, JSON_COMPACT | JSON_SORT_KEYS);
    hub_map_opts o = {.now_ms = 0};
    cr_assert_eq(conv_opts(msg, &o, &err), HUB_OK);
    /* Everything but Provenance.recorded is the same. */
    json_t *e = json_object_get(g_res.bundle, "entry");
    json_object_del(json_object_get(json_array_get(e, json_array_size(e) - 1), "resource"), "recorded");
    json_t *ja = json_loads(a, 0, NULL);
    json_t *ea = json_object_get(ja, "entry");
    json_object_del(json_object_get(json_array_get(ea, json_array_size(ea) - 1), "resource"), "recorded");
    cr_assert(json_equal(ja, g_res.bundle));
    json_decref(ja);
    free(a);
}

/* Whether every urn: reference in v names an entry's fullUrl. */
static bool refs_resolve(json_t *v, json_t *entries) {
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!refs_resolve(json_array_get(v, i), entries)) return false;
        return true;
    }
    if (!json_is_object(v)) return true;
    const char *k;
    json_t *it;
    json_object_foreach(v, k, it) {
        if (strcmp(k, "reference") == 0 && json_is_string(it) &&
            strncmp(json_string_value(it), "urn:", 4) == 0) {
            bool found = false;
            for (size_t i = 0; i < json_array_size(entries) && !found; i++)
                found = json_equal(json_object_get(json_array_get(entries, i), "fullUrl"), it);
            if (!found) return false;
        } else if (!refs_resolve(it, entries)) {
            return false;
        }
    }
    return true;
}

/* The same practitioner attending and admitting is one entry, and both
 * participants reference it (a reference to the merged-away copy named
 * no entry, and made a new version on every resend). */
Test(map, one_practitioner_twice_is_referenced_by_both) {
    hub_err err;
    cr_assert_eq(conv(msg2("PID|1||1^^^H||X\r",
                           seg("PV1", 2, "I", 7, "1234^Doe^Ann^^^^^^NPI", 17,
                               "1234^Doe^Ann^^^^^^NPI", 0)),
                      &err),
                 HUB_OK, "%s: %s", err.where, err.msg);
    json_t *entries = json_object_get(g_res.bundle, "entry");
    cr_assert_not_null(res_of("Practitioner", 0));
    cr_assert_null(res_of("Practitioner", 1), "one entry for one practitioner");
    json_t *enc = res_of("Encounter", 0);
    cr_assert_not_null(enc);
    cr_assert_eq(json_array_size(json_object_get(enc, "participant")), 2);
    for (size_t i = 0; i < json_array_size(entries); i++) {
        json_t *r = json_object_get(json_array_get(entries, i), "resource");
        cr_assert(refs_resolve(r, entries), "%s has a reference to no entry",
                  json_string_value(json_object_get(r, "resourceType")));
    }
}

/* The specimen an OBR describes (no SPM) belongs to its report: a
 * corrected message, under a new control id, updates it instead of adding
 * another Specimen. */
Test(map, obr_specimen_follows_its_report_across_control_ids) {
    hub_err err;
    char ids[2][80];
    for (int i = 0; i < 2; i++) {
        char m[1024];
        snprintf(m, sizeof m,
                 "MSH|^~\\&|LAB|HOSP|HUB|HUB|20240102101500||ORU^R01^ORU_R01|R%d|P|2.5.1\r"
                 "PID|1||1^^^H||X\rOBR|1|P1|F1^LAB|2345-7^Glucose^LN|||20240102090000\r"
                 "OBX|1|NM|2345-7^Glucose^LN||95|mg/dL|||||F\r",
                 i);
        cr_assert_eq(conv(m, &err), HUB_OK, "%s: %s", err.where, err.msg);
        json_t *req = req_of("Specimen");
        cr_assert_not_null(req);
        snprintf(ids[i], sizeof ids[i], "%s", str_at(req, "url"));
        cr_assert_not_null(str_at(res_of("DiagnosticReport", 0), "specimen[0].reference"));
    }
    cr_assert_str_eq(ids[0], ids[1]);
}

Test(map, provenance_names_the_message) {
    hub_err err;
    cr_assert_eq(conv(MSH_A01 "PID|1||1^^^H||X\r", &err), HUB_OK);
    json_t *p = res_of("Provenance", 0);
    ASSERT_AT(p, "entity[0].what.identifier.value", "ADM^HOSP|C1");
    ASSERT_AT(p, "entity[0].role", "source");
    /* The Patient and its identifier's assigner (PID-3.4, an Organization). */
    cr_assert_eq(json_array_size(json_object_get(p, "target")), 2);
    ASSERT_AT(res_of("Organization", 0), "identifier[0].value", "H");
}

Test(map, explain_names_field_and_rows) {
    hub_err err;
    hub_map_opts o = {.explain = true};
    cr_assert_eq(conv_opts(MSH_A01 "PID|1||123^^^H||Doe\r", &o, &err), HUB_OK);
    cr_assert_not_null(g_res.explain.p);
    char *s = hub_strndup(g_res.explain.p, g_res.explain.n);
    cr_assert_not_null(strstr(s, "Patient(patient).identifier[0].value <- PID-3.1  messages/ADT_A01.map:"), "%s", s);
    cr_assert_not_null(strstr(s, "segments/PID.map:"));
    cr_assert_not_null(strstr(s, "datatypes/CX.map:"));
    hub_free(s);
}

/* ---- site tables ---------------------------------------------------------- */

static char g_site[256];

static void write_file(const char *dir, const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void site_up(void) {
    hub_test_tmpdir(g_site);
    write_file(g_site, "zpd.map",
               "@table ZPD[Patient]\n@kind segment\n@resource Patient\n"
               "ZPD-2 | | extension[url=http://example.org/fhir/vip].valueBoolean | boolean\n"
               "ZPD-3 | | extension[url=http://example.org/fhir/church].valueString | string\n");
    write_file(g_site, "adt-z.map",
               "@table ADT_A01-site\n@kind message\n@extends ADT_A01\n"
               "ZPD | | @patient | | ZPD[Patient]\n");
    write_file(g_site, "lab-a.map",
               "@table lab-a\n@kind local\n@source-system L\n@target-system http://loinc.org\n"
               "GLU | 2345-7 | Glucose [Mass/volume] in Serum or Plasma\n");
    load_with_site(g_site);
}
static void site_down(void) {
    down();
    hub_test_rmtree(g_site);
}

Test(map_site, z_segment_table_from_the_site_directory, .init = site_up, .fini = site_down) {
    hub_err err;
    cr_assert_eq(conv(MSH_A01 "PID|1||1^^^H||X\rZPD|1|Y|St Mary\r", &err), HUB_OK, "%s", err.msg);
    json_t *p = res_of("Patient", 0);
    json_t *ext = json_object_get(p, "extension");
    cr_assert_eq(json_array_size(ext), 2);
    ASSERT_AT(p, "extension[0].url", "http://example.org/fhir/vip");
    cr_assert(json_is_true(json_object_get(json_array_get(ext, 0), "valueBoolean")));
    ASSERT_AT(p, "extension[1].valueString", "St Mary");
}

Test(map_site, local_codes_translate_or_flag, .init = site_up, .fini = site_down) {
    hub_err err;
    const char *loc[] = {"lab-a"};
    hub_map_opts o = {.local = loc, .nlocal = 1};
    cr_assert(hub_map_has_local(g_map, "lab-a"));
    cr_assert_eq(conv_opts(MSH_A01 "PID|1||1^^^H||X\rOBX|1|NM|GLU^Glucose^L||5.5|mmol/L\rOBX|2|NM|XYZ^Other^L||1\r", &o, &err),
                 HUB_OK, "%s", err.msg);
    json_t *o1 = res_of("Observation", 0), *o2 = res_of("Observation", 1);
    ASSERT_AT(o1, "code.coding[0].code", "GLU");
    ASSERT_AT(o1, "code.coding[1].system", "http://loinc.org");
    ASSERT_AT(o1, "code.coding[1].code", "2345-7");
    ASSERT_AT(o2, "code.coding[0].code", "XYZ");
    ASSERT_AT(o2, "code.coding[0].extension[0].url", HUB_MAP_UNMAPPED_URL);
    ASSERT_AT(o2, "code.coding[0].extension[0].valueString", "lab-a");
    cr_assert_eq(g_res.nunmapped, 1);
    /* Without the channel's local tables, nothing is added or flagged. */
    cr_assert_eq(conv(MSH_A01 "PID|1||1^^^H||X\rOBX|1|NM|GLU^Glucose^L||5.5\r", &err), HUB_OK);
    cr_assert_eq(json_array_size(json_object_get(json_object_get(res_of("Observation", 0), "code"), "coding")), 1);
}

/* The tables are compiled at load: vocabularies hashed, a table's alike
 * clauses evaluated once per value, rows over an empty source skipped.
 * The answers must be the rows' own: codes that are prefixes of one
 * another, a shared clause true and false, an empty component. */
static void compiled_up(void) {
    hub_test_tmpdir(g_site);
    char vocab[4096];
    int o = snprintf(vocab, sizeof vocab,
                     "@table ZCodes\n@kind vocab\n@system http://example.org/z\n"
                     "A | a\nAB | ab\nABC | abc\n");
    for (int i = 0; i < 40; i++) o += snprintf(vocab + o, sizeof vocab - (size_t)o, "F%02d | f%02d\n", i, i);
    write_file(g_site, "zcodes.map", vocab);
    write_file(g_site, "zpx.map",
               "@table ZPX[Patient]\n@kind segment\n@resource Patient\n"
               "ZPX-2 | | extension[url=http://example.org/z2].valueCode | code | ZCodes\n"
               "ZPX-3 | ZPX-2 = \"A\" | extension[url=http://example.org/z3].valueString | string\n"
               "ZPX-4 | ZPX-2 = \"A\" | extension[url=http://example.org/z4].valueString | string\n"
               "ZPX-5 | ZPX-2 != \"A\" | extension[url=http://example.org/z5].valueString | string\n"
               "ZPX-6.2 | | extension[url=http://example.org/z6].valueString | string\n");
    write_file(g_site, "adt-z.map",
               "@table ADT_A01-site\n@kind message\n@extends ADT_A01\n"
               "ZPX | | @patient | | ZPX[Patient]\n");
    load_with_site(g_site);
}

Test(map_site, compiled_tables_answer_as_their_rows, .init = compiled_up, .fini = site_down) {
    hub_err err;
    cr_assert_eq(conv(MSH_A01 "PID|1||1^^^H||X\rZPX|1|AB|x|y|z|p^q\r", &err), HUB_OK, "%s", err.msg);
    json_t *p = res_of("Patient", 0);
    cr_assert_eq(json_array_size(json_object_get(p, "extension")), 3);
    ASSERT_AT(p, "extension[0].valueCode", "ab");
    ASSERT_AT(p, "extension[1].url", "http://example.org/z5");
    ASSERT_AT(p, "extension[1].valueString", "z");
    ASSERT_AT(p, "extension[2].valueString", "q");

    cr_assert_eq(conv(MSH_A01 "PID|1||1^^^H||X\rZPX|1|A|x|y|z|p\r", &err), HUB_OK, "%s", err.msg);
    p = res_of("Patient", 0);
    cr_assert_eq(json_array_size(json_object_get(p, "extension")), 3);
    ASSERT_AT(p, "extension[0].valueCode", "a");
    ASSERT_AT(p, "extension[1].valueString", "x");
    ASSERT_AT(p, "extension[2].valueString", "y");

    cr_assert_eq(conv(MSH_A01 "PID|1||1^^^H||X\rZPX|1|F39\r", &err), HUB_OK, "%s", err.msg);
    ASSERT_AT(res_of("Patient", 0), "extension[0].valueCode", "f39");
    cr_assert_eq(g_res.nunmapped, 0);

    /* A code the vocabulary lacks (a longer one than it has) is flagged. */
    cr_assert_eq(conv(MSH_A01 "PID|1||1^^^H||X\rZPX|1|ABCD\r", &err), HUB_OK, "%s", err.msg);
    cr_assert_eq(g_res.nunmapped, 1);
    cr_assert_null(json_object_get(json_array_get(json_object_get(res_of("Patient", 0), "extension"), 0),
                                   "valueCode"));
}

Test(map_load, bad_rows_name_file_and_line) {
    static const struct { const char *text, *where, *msg; } cases[] = {
        {"@table X\n@kind segment\n\nPID-x | | a | string\n", "site/t.map:4", "bad source"},
        {"@table X\n@kind segment\nPID-3 | PID-3 maybe | a | string\n", "site/t.map:3", "unknown operator"},
        {"@table X\n@kind segment\nPID-3 | | a[ | string\n", "site/t.map:3", "unclosed"},
        {"@table X\n@kind segment\nPID-3 | | a[x+] | string\n", "site/t.map:3", "bad index"},
        {"@table X\n@kind segment\nPID-3 | | a[2+1] | string\n", "site/t.map:3", "bad index"},
        {"@table X\n@kind segment\nPID-3 | | a | NoSuch[Table]\n", "site/t.map:3", "unknown table"},
        {"@table X\n@kind segment\nPID-3 | | a | = {bad json\n", "site/t.map:3", "not JSON"},
        {"@table X\n@kind nonsense\n", "site/t.map:2", "unknown kind"},
        {"PID-3 | | a\n", "site/t.map:1", "rows before"},
        {"@table X\n@kind segment\nPID-3 | | a | string | NoVocab\n", "site/t.map:3", "unknown vocabulary"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[256];
        hub_test_tmpdir(dir);
        write_file(dir, "t.map", cases[i].text);
        hub_map *m = NULL;
        hub_err err;
        hub_map_cfg c = {.dir = HUB_SOURCE_DIR "/mappings", .site_dir = dir};
        cr_assert_eq(hub_map_load(&c, &m, &err), HUB_E_CONFIG, "case %zu", i);
        cr_assert_str_eq(err.where, cases[i].where, "case %zu: %s", i, err.msg);
        cr_assert_not_null(strstr(err.msg, cases[i].msg), "case %zu: %s", i, err.msg);
        hub_test_rmtree(dir);
    }
    hub_map *m = NULL;
    hub_err err;
    hub_map_cfg c = {.dir = "/nonexistent/mappings"};
    cr_assert_eq(hub_map_load(&c, &m, &err), HUB_E_IO);
}

/* The IG's test messages: map_orders::ig_messages_convert_and_validate. */

Test(map, identifier_types_get_their_display_and_visits_are_vn) {
    hub_err err;
    cr_assert_eq(conv(msg2(seg("PID", 3, "M1^^^H^MR", 5, "X", 19, "123-45-6789", 20,
                               "D123^MI^20300101", 0),
                           seg("PV1", 1, "1", 2, "P", 3, "W1^1^A", 4, "E", 5, "PRE1^^^H", 19,
                               "V9^^^H", 42, "W2^2^B", 0)),
                      &err),
                 HUB_OK, "%s", err.msg);
    json_t *p = res_of("Patient", 0);
    ASSERT_AT(p, "identifier[0].type.coding[0].system",
              "http://terminology.hl7.org/CodeSystem/v2-0203");
    ASSERT_AT(p, "identifier[0].type.coding[0].display", "Medical record number");
    ASSERT_AT(p, "identifier[1].type.coding[0].code", "SS");
    ASSERT_AT(p, "identifier[2].value", "D123");
    ASSERT_AT(p, "identifier[2].type.coding[0].code", "DL");
    ASSERT_AT(p, "identifier[2].period.end", "2030-01-01");
    json_t *e = res_of("Encounter", 0);
    ASSERT_AT(e, "identifier[0].value", "V9");
    ASSERT_AT(e, "identifier[0].type.coding[0].code", "VN");
    ASSERT_AT(e, "hospitalization.preAdmissionIdentifier.value", "PRE1");
    ASSERT_AT(e, "type[0].coding[0].system", "http://terminology.hl7.org/CodeSystem/v2-0007");
    ASSERT_AT(e, "type[0].coding[0].display", "Emergency");
    /* PV1-3 of a preadmitted patient is planned; PV1-42 (pending) too. */
    ASSERT_AT(e, "location[0].status", "planned");
    ASSERT_AT(e, "location[1].status", "planned");
}

Test(map, a60_iam_is_an_allergy_and_p12_pr1_a_procedure) {
    hub_err err;
    cr_assert_eq(conv("MSH|^~\\&|ADM|HOSP|HUB|HUB|20240102||ADT^A60^ADT_A60|C60|P|2.5.1\r"
                      "PID|1||1^^^H||X\r"
                      "IAM|1|FA^Food allergy^HL70127|P1^Peanut^L|SV|Hives||A9^^H||||20180501\r",
                      &err),
                 HUB_OK, "%s", err.msg);
    json_t *a = res_of("AllergyIntolerance", 0);
    cr_assert_not_null(a);
    ASSERT_AT(a, "category[0]", "food");
    ASSERT_AT(a, "code.coding[0].code", "P1");
    ASSERT_AT(a, "reaction[0].manifestation[0].text", "Hives");
    ASSERT_AT(a, "identifier[0].value", "A9");
    ASSERT_AT(a, "onsetDateTime", "2018-05-01");
    cr_assert_eq(conv("MSH|^~\\&|ADM|HOSP|HUB|HUB|20240102||BAR^P12^BAR_P12|C12|P|2.5.1\r"
                      "PID|1||1^^^H||X\rPV1|1|I\r"
                      "PR1|1||76164006^Biopsy of colon^SCT||20050125||||||||||||||PR9\r",
                      &err),
                 HUB_OK, "%s", err.msg);
    json_t *pr = res_of("Procedure", 0);
    cr_assert_not_null(pr);
    ASSERT_AT(pr, "status", "unknown");
    ASSERT_AT(pr, "code.coding[0].system", "http://snomed.info/sct");
    ASSERT_AT(pr, "performedDateTime", "2005-01-25");
    ASSERT_AT(pr, "identifier[0].value", "PR9");
}

Test(map, a_repeating_obx5_is_one_component_per_value) {
    hub_err err;
    cr_assert_eq(conv(msg2(seg("PID", 3, "1^^^H", 5, "X", 0),
                           seg("OBX", 1, "1", 2, "NM", 3, "8867-4^Heart rate^LN", 5, "60~120", 6,
                               "/min^^UCUM", 7, "50-100", 11, "F", 0)),
                      &err),
                 HUB_OK, "%s", err.msg);
    json_t *o = res_of("Observation", 0);
    cr_assert_null(json_object_get(o, "valueQuantity"), "the values are the components");
    cr_assert_eq(json_array_size(json_object_get(o, "component")), 2);
    ASSERT_AT(o, "component[0].code.coding[0].code", "8867-4");
    ASSERT_AT(o, "component[1].code.coding[0].code", "8867-4");
    json_t *v1 = json_object_get(json_object_get(json_array_get(json_object_get(o, "component"), 1),
                                                 "valueQuantity"),
                                 "value");
    cr_assert(json_is_number(v1) && json_number_value(v1) == 120.0);
    /* one value: valueQuantity as before */
    cr_assert_eq(conv(msg2(seg("PID", 3, "1^^^H", 5, "X", 0),
                           seg("OBX", 1, "1", 2, "NM", 3, "8867-4^Heart rate^LN", 5, "60", 11,
                               "F", 0)),
                      &err),
                 HUB_OK, "%s", err.msg);
    o = res_of("Observation", 0);
    cr_assert_not_null(json_object_get(o, "valueQuantity"));
    cr_assert_null(json_object_get(o, "component"));
}

/* The resource an entry's fullUrl names, or NULL. */
static json_t *entry_by_url(const char *url) {
    json_t *e = json_object_get(g_res.bundle, "entry");
    for (size_t i = 0; url && i < json_array_size(e); i++) {
        json_t *en = json_array_get(e, i);
        if (strcmp(json_string_value(json_object_get(en, "fullUrl")), url) == 0) return en;
    }
    return NULL;
}
static json_t *deref(json_t *r, const char *path) {
    json_t *en = entry_by_url(str_at(r, path));
    cr_assert_not_null(en, "%s names no entry", path);
    return json_object_get(en, "resource");
}

/* PL as the IG's hierarchy: the Encounter names the bed, partOf its room,
 * partOf the facility (levels not sent are skipped); the same PL in
 * another message is the same Locations, the same bed name in two rooms
 * two beds. */
Test(map, location_hierarchy_bed_room_facility) {
    hub_err err;
    const char *pv1 = "PV1|1|I|^Room 10^Bed 1^Hosp&1.2.3&ISO\r";
    cr_assert_eq(conv(msg2("PID|1||1^^^H||X\r", pv1), &err), HUB_OK, "%s", err.msg);
    json_t *bed = deref(res_of("Encounter", 0), "location[0].location.reference");
    ASSERT_AT(bed, "name", "Bed 1");
    ASSERT_AT(bed, "physicalType.coding[0].code", "bd");
    ASSERT_AT(bed, "mode", "instance");
    json_t *room = deref(bed, "partOf.reference");
    ASSERT_AT(room, "identifier[0].value", "Room 10");
    ASSERT_AT(room, "physicalType.coding[0].code", "ro");
    json_t *site = deref(room, "partOf.reference");
    ASSERT_AT(site, "name", "Hosp");
    ASSERT_AT(site, "identifier[1].value", "1.2.3");
    ASSERT_AT(site, "identifier[1].type.coding[0].code", "ISO");
    ASSERT_AT(site, "physicalType.coding[0].code", "si");
    cr_assert_null(json_object_get(site, "partOf"));
    char bed_id[80];
    snprintf(bed_id, sizeof bed_id, "%s", json_string_value(json_object_get(bed, "id")));

    /* Another message (another control id): the same bed. */
    char other[600];
    snprintf(other, sizeof other,
             "MSH|^~\\&|ADM|HOSP|HUB|HUB|20240103||ADT^A01^ADT_A01|C2|P|2.5.1\r"
             "PID|1||1^^^H||X\r%s",
             pv1);
    cr_assert_eq(conv(other, &err), HUB_OK, "%s", err.msg);
    bed = deref(res_of("Encounter", 0), "location[0].location.reference");
    cr_assert_str_eq(json_string_value(json_object_get(bed, "id")), bed_id);

    /* Bed 1 of room 11: another bed. */
    cr_assert_eq(conv(msg2("PID|1||1^^^H||X\r", "PV1|1|I|^Room 11^Bed 1^Hosp&1.2.3&ISO\r"), &err),
                 HUB_OK, "%s", err.msg);
    bed = deref(res_of("Encounter", 0), "location[0].location.reference");
    cr_assert_str_neq(json_string_value(json_object_get(bed, "id")), bed_id);
}

Test(map, location_without_a_bed_is_its_most_granular_level) {
    hub_err err;
    cr_assert_eq(conv(msg2("PID|1||1^^^H||X\r", "PV1|1|I|ICU^^^^^^^Floor 3\r"), &err), HUB_OK,
                 "%s", err.msg);
    json_t *floor = deref(res_of("Encounter", 0), "location[0].location.reference");
    ASSERT_AT(floor, "name", "Floor 3");
    ASSERT_AT(floor, "physicalType.coding[0].code", "lvl");
    json_t *poc = deref(floor, "partOf.reference");
    ASSERT_AT(poc, "name", "ICU");
    cr_assert_null(json_object_get(poc, "partOf"));
}

/* IN1 as the IG's IN1[Coverage]: the insurance company (IN1-3 id, IN1-4
 * name, IN1-5 address) is the one payor, the insured's employer (IN1-10,
 * IN1-11) the policy holder, the insured (IN1-16) a RelatedPerson of the
 * patient unless IN1-17 says the patient (SEL); IN1-15 the type. */
Test(map, insurance_payor_employer_and_insured) {
    hub_err err;
    const char *in1 = seg("IN1", 1, "1", 2, "PPO^Gold Plan", 3, "INS7^^^H", 4, "Acme Health",
                          5, "1 Pay St^^Payville^TX^79998", 8, "G12", 9, "Group Name", 10,
                          "E42^^^H", 11, "Widgets Inc", 15, "HMO", 16, "Roe^Ann", 17, "SPO",
                          18, "19700722", 36, "POL9", 0);
    cr_assert_eq(conv(msg2("PID|1||1^^^H||X\r", in1), &err), HUB_OK, "%s", err.msg);
    json_t *cov = res_of("Coverage", 0);
    ASSERT_AT(cov, "type.coding[0].code", "HMO");
    ASSERT_AT(cov, "class[0].type.coding[0].code", "plan");
    ASSERT_AT(cov, "class[0].value", "PPO");
    ASSERT_AT(cov, "class[1].type.coding[0].code", "group");
    ASSERT_AT(cov, "class[1].name", "Group Name");
    cr_assert_eq(json_array_size(json_object_get(cov, "payor")), 1, "one payor");
    json_t *payor = deref(cov, "payor[0].reference");
    ASSERT_AT(payor, "name", "Acme Health");
    ASSERT_AT(payor, "identifier[0].value", "INS7");
    ASSERT_AT(payor, "address[0].city", "Payville");
    json_t *holder = deref(cov, "policyHolder.reference");
    ASSERT_AT(holder, "name", "Widgets Inc");
    ASSERT_AT(holder, "identifier[0].value", "E42");
    json_t *insured = deref(cov, "subscriber.reference");
    ASSERT_AT(insured, "resourceType", "RelatedPerson");
    ASSERT_AT(insured, "name[0].family", "Roe");
    ASSERT_AT(insured, "birthDate", "1970-07-22");
    json_t *pat = deref(insured, "patient.reference");
    ASSERT_AT(pat, "resourceType", "Patient");

    /* The patient insured: the subscriber is the Patient, no RelatedPerson. */
    const char *self = seg("IN1", 1, "1", 4, "Acme Health", 16, "X", 17, "SEL", 36, "POL9", 0);
    cr_assert_eq(conv(msg2("PID|1||1^^^H||X\r", self), &err), HUB_OK, "%s", err.msg);
    ASSERT_AT(deref(res_of("Coverage", 0), "subscriber.reference"), "resourceType", "Patient");
    cr_assert_null(res_of("RelatedPerson", 0));
    cr_assert_null(json_object_get(res_of("Coverage", 0), "policyHolder"));
}

/* PD1 as the IG's PD1[Patient]: every primary facility a general
 * practitioner, every place of worship a congregation (its name, else its
 * identifier). */
Test(map, pd1_facilities_and_congregations_each_repetition) {
    hub_err err;
    const char *pd1 = seg("PD1", 3, "Clinic A^^^^^^^^^CA1~Clinic B^^^^^^^^^CB1", 14,
                          "First Church~^^^^^^^^^ORG2", 0);
    cr_assert_eq(conv(msg2("PID|1||1^^^H||X\r", pd1), &err), HUB_OK, "%s", err.msg);
    json_t *p = res_of("Patient", 0);
    cr_assert_null(json_object_get(p, "managingOrganization"));
    ASSERT_AT(deref(p, "generalPractitioner[0].reference"), "name", "Clinic A");
    ASSERT_AT(deref(p, "generalPractitioner[1].reference"), "name", "Clinic B");
    ASSERT_AT(p, "extension[0].url", "http://hl7.org/fhir/StructureDefinition/patient-congregation");
    ASSERT_AT(p, "extension[0].valueString", "First Church");
    ASSERT_AT(p, "extension[1].valueString", "ORG2");
}

/* DLD-1 is the discharge Location's type (the IG's DLD[Location-Discharge]);
 * PL-10 names its assigner as an Organization (EI[Identifier-Organization]). */
Test(map, discharge_location_type_and_location_identifier_assigner) {
    hub_err err;
    const char *pv1 = seg("PV1", 1, "1", 2, "I", 3, "^^^Hosp^^^^^^E7&NS&1.2.9&ISO", 37,
                          "HOM&Home&HL70113^20240105", 0);
    cr_assert_eq(conv(msg2("PID|1||1^^^H||X\r", pv1), &err), HUB_OK, "%s", err.msg);
    json_t *enc = res_of("Encounter", 0);
    json_t *dest = deref(enc, "hospitalization.destination.reference");
    ASSERT_AT(dest, "type[0].coding[0].code", "HOM");
    ASSERT_AT(dest, "name", "Home");
    json_t *site = deref(enc, "location[0].location.reference");
    ASSERT_AT(site, "identifier[1].value", "E7");
    json_t *org = deref(site, "identifier[1].assigner.reference");
    ASSERT_AT(org, "identifier[0].value", "1.2.9");
    ASSERT_AT(org, "identifier[0].type.coding[0].code", "ISO");
    ASSERT_AT(org, "identifier[1].value", "NS");
}

/* PID-21 names the mother: a RelatedPerson of this patient (MTH) the
 * Patient links to, one per identifier sent; PID-40 is another telecom. */
Test(map, mother_identifier_is_a_linked_related_person) {
    hub_err err;
    const char *pid = seg("PID", 1, "1", 3, "1^^^H", 5, "X", 21, "M77^^^H^MR~123456789^^^SSA^SS",
                          40, "^PRN^PH^^1^555^1234567", 0);
    cr_assert_eq(conv(msg2(pid, NULL), &err), HUB_OK, "%s", err.msg);
    json_t *p = res_of("Patient", 0);
    ASSERT_AT(p, "link[0].type", "seealso");
    json_t *mom = deref(p, "link[0].other.reference");
    ASSERT_AT(mom, "resourceType", "RelatedPerson");
    ASSERT_AT(mom, "identifier[0].value", "M77");
    ASSERT_AT(mom, "relationship[0].coding[0].code", "MTH");
    cr_assert_eq(deref(mom, "patient.reference"), p);
    ASSERT_AT(deref(p, "link[1].other.reference"), "identifier[0].value", "123456789");
    ASSERT_AT(p, "telecom[0].system", "phone");
    ASSERT_AT(p, "telecom[0].value", "+1 555 1234567");
}
