/* Validation of FHIR JSON resources and OperationOutcome: the corpus
 * (../shared/corpus/fhir, skipped when absent) and hand-written bad input,
 * each asserted to the FHIRPath expression of its issue. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/fhir.h"
#include "hub_test.h"

#define DEFS_DIR HUB_SOURCE_DIR "/conformance/fhir/r4"

static hub_fhir_defs *defs;

static void setup(void) {
    hub_err err = {0};
    cr_assert_eq(hub_fhir_defs_load(DEFS_DIR, &defs, &err), HUB_OK, "%s", err.msg);
}
static void teardown(void) { hub_fhir_defs_free(defs); }

TestSuite(fhir_validate, .init = setup, .fini = teardown);
TestSuite(fhir_corpus, .init = setup, .fini = teardown);
TestSuite(fhir_oo);

/* Parses and validates `text`; the outcome's JSON goes to *out. */
static hub_status run(const char *text, size_t n, bool lenient, json_t **out) {
    hub_oo *oo = hub_oo_new();
    cr_assert_not_null(oo);
    json_t *j = NULL;
    hub_status rc = hub_fhir_parse_json(text, n, &j, oo);
    if (rc == HUB_OK) {
        hub_fhir_validate_opts o = {.lenient = lenient};
        rc = hub_fhir_validate(defs, j, &o, oo);
        json_decref(j);
    }
    *out = hub_oo_json(oo);
    hub_oo_free(oo);
    return rc;
}

static bool has_issue(const json_t *oo, const char *sev, const char *code,
                      const char *expr) {
    size_t i;
    const json_t *is;
    json_array_foreach(json_object_get(oo, "issue"), i, is) {
        const json_t *ex = json_array_get(json_object_get(is, "expression"), 0);
        if (sev && strcmp(json_string_value(json_object_get(is, "severity")), sev) != 0)
            continue;
        if (code && strcmp(json_string_value(json_object_get(is, "code")), code) != 0)
            continue;
        if (expr == NULL ? ex == NULL : (ex && strcmp(json_string_value(ex), expr) == 0))
            return true;
    }
    return false;
}

static char *dump(const json_t *j) {
    static char buf[4096];
    char *s = json_dumps(j, JSON_COMPACT);
    snprintf(buf, sizeof buf, "%s", s ? s : "?");
    free(s);
    return buf;
}

/* The resource must fail with an error at `expr` (code may be NULL). */
static void bad(const char *text, const char *code, const char *expr) {
    json_t *oo;
    hub_status rc = run(text, strlen(text), false, &oo);
    cr_expect(rc == HUB_E_INVALID || rc == HUB_E_PARSE, "accepted: %s", text);
    cr_expect(has_issue(oo, "error", code, expr), "want %s at %s for %s, got %s",
              code ? code : "*", expr ? expr : "(none)", text, dump(oo));
    json_decref(oo);
}

static void good(const char *text) {
    json_t *oo;
    hub_status rc = run(text, strlen(text), false, &oo);
    cr_expect_eq(rc, HUB_OK, "rejected: %s: %s", text, dump(oo));
    json_decref(oo);
}

/* ---- OperationOutcome ------------------------------------------------------- */

Test(fhir_oo, empty_is_all_ok) {
    hub_oo *oo = hub_oo_new();
    cr_assert_eq(hub_oo_count(oo, HUB_OO_INFORMATION), 0);
    json_t *j = hub_oo_json(oo);
    cr_assert_str_eq(json_string_value(json_object_get(j, "resourceType")), "OperationOutcome");
    json_t *is = json_array_get(json_object_get(j, "issue"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(is, "severity")), "information");
    cr_assert_str_eq(json_string_value(json_object_get(is, "code")), "informational");
    cr_assert_str_eq(json_string_value(json_object_get(is, "diagnostics")), "All OK");
    json_decref(j);
    hub_oo_free(oo);
    hub_oo_free(NULL);
}

Test(fhir_oo, issues_and_counts) {
    hub_oo *oo = hub_oo_new();
    hub_oo_add(oo, HUB_OO_ERROR, "required", "Patient.name[0].given[1]", "x %d", 1);
    hub_oo_add(oo, HUB_OO_WARNING, "structure", NULL, "w");
    hub_oo_add(oo, HUB_OO_FATAL, "exception", NULL, "f");
    cr_assert_eq(hub_oo_count(oo, HUB_OO_FATAL), 1);
    cr_assert_eq(hub_oo_count(oo, HUB_OO_ERROR), 2);
    cr_assert_eq(hub_oo_count(oo, HUB_OO_WARNING), 3);
    json_t *j = hub_oo_json(oo);
    json_t *is = json_array_get(json_object_get(j, "issue"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(is, "severity")), "error");
    cr_assert_str_eq(json_string_value(json_object_get(is, "code")), "required");
    cr_assert_str_eq(json_string_value(json_object_get(is, "diagnostics")), "x 1");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(is, "expression"), 0)),
                     "Patient.name[0].given[1]");
    cr_assert_null(json_object_get(json_array_get(json_object_get(j, "issue"), 1),
                                   "expression"));
    json_decref(j);
    hub_oo_free(oo);
}

Test(fhir_oo, capped) {
    hub_oo *oo = hub_oo_new();
    for (int i = 0; i < 500; i++) hub_oo_add(oo, HUB_OO_ERROR, "value", "X", "e");
    cr_assert_eq(hub_oo_count(oo, HUB_OO_ERROR), 500);
    json_t *j = hub_oo_json(oo);
    json_t *issues = json_object_get(j, "issue");
    cr_assert_eq(json_array_size(issues), 101);
    json_t *last = json_array_get(issues, 100);
    cr_assert_str_eq(json_string_value(json_object_get(last, "diagnostics")),
                     "400 more issues not listed");
    json_decref(j);
    hub_oo_free(oo);
}

/* ---- parsing ------------------------------------------------------------------- */

Test(fhir_validate, parse_errors) {
    bad("", "structure", NULL);
    bad("   \n", "structure", NULL);
    bad("[1,2]", "structure", NULL);
    bad("\"Patient\"", "structure", NULL);
    bad("42", "structure", NULL);
    bad("null", "structure", NULL);
    bad("{\"resourceType\":\"Patient\",", "structure", NULL);
    bad("{\"resourceType\":\"Patient\"} x", "structure", NULL);
    bad("{\"resourceType\":\"Patient\",\"active\":tru}", "structure", NULL);
    bad("{\"resourceType\":\"Patient\",\"id\":\"a\",\"id\":\"b\"}", "structure", NULL);
    bad("{\"id\":\"a\"}", "required", "resourceType");
    bad("{\"resourceType\":7}", "structure", "resourceType");
    bad("{\"resourceType\":\"\"}", "required", "resourceType");
    bad("{\"resourceType\":\"Patient\",\"id\":\"a\xff\"}", "structure", NULL);
}

Test(fhir_validate, parse_line_column_and_no_value) {
    const char *t = "{\n  \"resourceType\": \"Patient\",\n  \"name\": [{\"family\": SECRETNAME}]\n}";
    json_t *oo;
    cr_assert_eq(run(t, strlen(t), false, &oo), HUB_E_PARSE);
    const char *msg = json_string_value(
        json_object_get(json_array_get(json_object_get(oo, "issue"), 0), "diagnostics"));
    cr_assert(strstr(msg, "line 3"), "%s", msg);
    cr_assert(strstr(msg, "column"), "%s", msg);
    cr_assert_null(strstr(dump(oo), "SECRET"), "a value leaked: %s", dump(oo));
    json_decref(oo);
}

Test(fhir_validate, bom_is_skipped) {
    good("\xEF\xBB\xBF{\"resourceType\":\"Patient\"}");
}

Test(fhir_validate, depth_limit) {
    /* 70 nested extensions: valid FHIR shape, too deep for the hub. */
    char buf[8192];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"resourceType\":\"Patient\"");
    for (int i = 0; i < 70; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, ",\"extension\":[{\"url\":\"http://x\"");
    for (int i = 0; i < 70; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "}]");
    snprintf(buf + n, sizeof buf - n, "}");
    json_t *oo;
    cr_assert_eq(run(buf, strlen(buf), false, &oo), HUB_E_PARSE);
    cr_assert(strstr(dump(oo), "deeper than 64"), "%s", dump(oo));
    cr_assert(strstr(dump(oo), "Patient.extension[0].extension[0]"), "%s", dump(oo));
    json_decref(oo);
    /* Far deeper than jansson's own guard: still a clean answer. */
    static char deep[100000];
    memset(deep, '[', 50000);
    deep[50000] = '\0';
    cr_assert_eq(run(deep, 50000, false, &oo), HUB_E_PARSE);
    json_decref(oo);
}

Test(fhir_validate, decimal_precision) {
    bad("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
        "\"valueQuantity\":{\"value\":1234567890.1234567890}}",
        "value", "Observation.valueQuantity.value");
    good("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
         "\"valueQuantity\":{\"value\":0.000000000000000000012345}}");
    good("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
         "\"valueQuantity\":{\"value\":123456789012345678}}");
}

/* ---- structure -------------------------------------------------------------------- */

#define OBS_HEAD "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"}"

Test(fhir_validate, minimal_resources) {
    good("{\"resourceType\":\"Patient\"}");
    good(OBS_HEAD "}");
    good("{\"resourceType\":\"Bundle\",\"type\":\"collection\"}");
}

Test(fhir_validate, unknown_resource_type) {
    bad("{\"resourceType\":\"Money\",\"value\":1}", "not-supported", "resourceType");
    bad("{\"resourceType\":\"patient\"}", "not-supported", "resourceType");
    bad("{\"resourceType\":\"DomainResource\"}", "not-supported", "resourceType");
    bad("{\"resourceType\":\"HumanName\"}", "not-supported", "resourceType");
}

Test(fhir_validate, unknown_elements) {
    bad("{\"resourceType\":\"Patient\",\"name1\":[]}", "structure", "Patient.name1");
    bad("{\"resourceType\":\"Patient\",\"name\":[{\"use1\":\"official\"}]}", "structure",
        "Patient.name[0].use1");
    bad("{\"resourceType\":\"Patient\",\"deceasedString\":\"x\"}", "structure",
        "Patient.deceasedString");
    bad("{\"resourceType\":\"Patient\",\"deceased\":true}", "structure", "Patient.deceased");
    bad("{\"resourceType\":\"Patient\",\"_\":{}}", "structure", "Patient._");
    bad("{\"resourceType\":\"Patient\",\"\":1}", "structure", "Patient.");
}

Test(fhir_validate, lenient_mode) {
    const char *t = "{\"resourceType\":\"Patient\",\"name1\":[{\"x\":1}],\"active\":true}";
    json_t *oo;
    cr_assert_eq(run(t, strlen(t), true, &oo), HUB_OK);
    cr_assert(has_issue(oo, "warning", "structure", "Patient.name1"), "%s", dump(oo));
    json_decref(oo);
    /* Other errors stay errors. */
    t = "{\"resourceType\":\"Patient\",\"name1\":1,\"active\":\"yes\"}";
    cr_assert_eq(run(t, strlen(t), true, &oo), HUB_E_INVALID);
    cr_assert(has_issue(oo, "error", "structure", "Patient.active"), "%s", dump(oo));
    json_decref(oo);
}

Test(fhir_validate, json_kinds) {
    bad("{\"resourceType\":\"Patient\",\"name\":{\"family\":\"x\"}}", "structure",
        "Patient.name");
    bad("{\"resourceType\":\"Patient\",\"gender\":[\"male\"]}", "structure", "Patient.gender");
    bad("{\"resourceType\":\"Patient\",\"active\":\"true\"}", "structure", "Patient.active");
    bad("{\"resourceType\":\"Patient\",\"active\":1}", "structure", "Patient.active");
    bad("{\"resourceType\":\"Patient\",\"birthDate\":19740101}", "structure",
        "Patient.birthDate");
    bad("{\"resourceType\":\"Patient\",\"maritalStatus\":\"M\"}", "structure",
        "Patient.maritalStatus");
    bad("{\"resourceType\":\"Patient\",\"name\":[\"x\"]}", "structure", "Patient.name[0]");
    bad("{\"resourceType\":\"Patient\",\"name\":[{\"given\":\"x\"}]}", "structure",
        "Patient.name[0].given");
    bad(OBS_HEAD ",\"valueQuantity\":{\"value\":\"1.5\"}}", "structure",
        "Observation.valueQuantity.value");
    bad("{\"resourceType\":\"Patient\",\"active\":null}", "structure", "Patient.active");
    bad("{\"resourceType\":\"Patient\",\"name\":[null]}", "structure", "Patient.name[0]");
}

Test(fhir_validate, empty_things) {
    bad("{\"resourceType\":\"Patient\",\"name\":[]}", "structure", "Patient.name");
    bad("{\"resourceType\":\"Patient\",\"name\":[{}]}", "structure", "Patient.name[0]");
    bad("{\"resourceType\":\"Patient\",\"maritalStatus\":{}}", "structure",
        "Patient.maritalStatus");
    bad("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\"}]}", "value",
        "Patient.name[0].family");
    bad("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"a\",\"\"]}]}", "value",
        "Patient.name[0].given[1]");
    bad("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\" \\n\\t\"}]}", "value",
        "Patient.name[0].family");
}

Test(fhir_validate, cardinality_and_required) {
    bad("{\"resourceType\":\"Observation\",\"status\":\"final\"}", "required",
        "Observation.code");
    bad("{\"resourceType\":\"Observation\",\"code\":{\"text\":\"t\"}}", "required",
        "Observation.status");
    bad("{\"resourceType\":\"Bundle\"}", "required", "Bundle.type");
    bad("{\"resourceType\":\"Patient\",\"link\":[{\"type\":\"seealso\"}]}", "required",
        "Patient.link[0].other");
    bad("{\"resourceType\":\"Patient\",\"extension\":[{\"valueString\":\"x\"}]}", "required",
        "Patient.extension[0].url");
    bad("{\"resourceType\":\"Patient\",\"multipleBirthBoolean\":true,"
        "\"multipleBirthInteger\":2}", "structure", "Patient.multipleBirthInteger");
    /* A choice counts once, whichever type. */
    bad("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
        "\"component\":[{\"valueString\":\"x\"}]}", "required", "Observation.component[0].code");
    good("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
         "\"component\":[{\"code\":{\"text\":\"c\"},\"valueString\":\"x\"}]}");
    /* A required choice: Extension? no; SampledData.origin is required. */
    bad(OBS_HEAD ",\"valueSampledData\":{\"period\":1,\"dimensions\":1}}", "required",
        "Observation.valueSampledData.origin");
    /* A required primitive given only by its _element form is present. */
    good("{\"resourceType\":\"Observation\",\"code\":{\"text\":\"t\"},\"_status\":{"
         "\"extension\":[{\"url\":\"http://x\",\"valueString\":\"y\"}]}}");
}

Test(fhir_validate, required_bindings) {
    bad("{\"resourceType\":\"Patient\",\"gender\":\"Male\"}", "code-invalid", "Patient.gender");
    good("{\"resourceType\":\"Patient\",\"gender\":\"unknown\"}");
    bad("{\"resourceType\":\"Observation\",\"status\":\"done\",\"code\":{\"text\":\"t\"}}",
        "code-invalid", "Observation.status");
    bad("{\"resourceType\":\"Bundle\",\"type\":\"message-response\"}", "code-invalid",
        "Bundle.type");
    /* Coding and CodeableConcept with a required binding. */
    bad("{\"resourceType\":\"Patient\",\"contact\":[{\"name\":{\"family\":\"x\"},"
        "\"gender\":\"nope\"}]}", "code-invalid", "Patient.contact[0].gender");
    good("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
         "\"valueQuantity\":{\"value\":1,\"comparator\":\"<=\"}}");
    bad(OBS_HEAD ",\"valueQuantity\":{\"value\":1,\"comparator\":\"=\"}}", "code-invalid",
        "Observation.valueQuantity.comparator");
    /* A mime type cannot be enumerated: not claimed invalid. */
    good("{\"resourceType\":\"Binary\",\"contentType\":\"application/x-whatever\"}");
}

Test(fhir_validate, element_form) {
    good("{\"resourceType\":\"Patient\",\"birthDate\":\"1970-01-01\","
         "\"_birthDate\":{\"extension\":[{\"url\":\"http://x\",\"valueTime\":\"10:00:00\"}]}}");
    good("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"a\",null],"
         "\"_given\":[null,{\"id\":\"g2\"}]}]}");
    good("{\"resourceType\":\"Patient\",\"name\":[{\"_given\":[{\"id\":\"g1\"}]}]}");
    bad("{\"resourceType\":\"Patient\",\"_birthDate\":[{\"id\":\"x\"}]}", "structure",
        "Patient._birthDate");
    bad("{\"resourceType\":\"Patient\",\"_birthDate\":\"x\"}", "structure", "Patient._birthDate");
    bad("{\"resourceType\":\"Patient\",\"_birthDate\":{}}", "structure", "Patient._birthDate");
    bad("{\"resourceType\":\"Patient\",\"_birthDate\":{\"value\":\"x\"}}", "structure",
        "Patient._birthDate.value");
    bad("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"a\"],\"_given\":{}}]}",
        "structure", "Patient.name[0]._given");
    bad("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"a\",\"b\"],"
        "\"_given\":[null]}]}", "structure", "Patient.name[0]._given");
    bad("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"a\",null],"
        "\"_given\":[null,null]}]}", "structure", "Patient.name[0].given[1]");
    bad("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"a\"],\"_given\":[7]}]}",
        "structure", "Patient.name[0]._given[0]");
    bad("{\"resourceType\":\"Patient\",\"name\":[{\"_given\":[null]}]}", "structure",
        "Patient.name[0]._given");
    bad("{\"resourceType\":\"Patient\",\"_name\":[{\"id\":\"x\"}]}", "structure",
        "Patient._name");
}

Test(fhir_validate, resource_type_placement) {
    bad("{\"resourceType\":\"Patient\",\"name\":[{\"resourceType\":\"HumanName\"}]}",
        "structure", "Patient.name[0].resourceType");
    /* ExampleScenario.instance has an element named resourceType. */
    good("{\"resourceType\":\"ExampleScenario\",\"status\":\"draft\",\"instance\":[{"
         "\"resourceId\":\"a\",\"resourceType\":\"Patient\"}]}");
    bad("{\"resourceType\":\"ExampleScenario\",\"status\":\"draft\",\"instance\":[{"
        "\"resourceId\":\"a\",\"resourceType\":\"Nope\"}]}", "code-invalid",
        "ExampleScenario.instance[0].resourceType");
}

Test(fhir_validate, nested_resources) {
    good("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\","
         "\"id\":\"o1\",\"name\":\"x\"}],\"managingOrganization\":{\"reference\":\"#o1\"}}");
    bad("{\"resourceType\":\"Patient\",\"contained\":[{\"id\":\"o1\"}]}", "required",
        "Patient.contained[0].resourceType");
    bad("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Organization\","
        "\"nam\":\"x\"}]}", "structure", "Patient.contained[0].nam");
    bad("{\"resourceType\":\"Patient\",\"contained\":[{\"resourceType\":\"Thing\"}]}",
        "not-supported", "Patient.contained[0].resourceType");
    good("{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"fullUrl\":"
         "\"urn:uuid:0f4b5a4e-2bd3-4a33-9f6b-4b0b0b0b0b0b\",\"resource\":{\"resourceType\":"
         "\"Patient\",\"active\":true}}]}");
    bad("{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[{\"resource\":{"
        "\"resourceType\":\"Observation\",\"status\":\"final\"}}]}", "required",
        "Bundle.entry[0].resource.code");
    bad("{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"p\",\"resource\":{"
        "\"resourceType\":\"Patient\",\"gender\":\"x\"}}]}", "code-invalid",
        "Parameters.parameter[0].resource.gender");
    good("{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"p\",\"part\":[{"
         "\"name\":\"q\",\"valueInteger\":3}]}]}");
    bad("{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"p\",\"part\":[{"
        "\"valueInteger\":3}]}]}", "required", "Parameters.parameter[0].part[0].name");
    bad("{\"resourceType\":\"Questionnaire\",\"status\":\"draft\",\"item\":[{\"linkId\":\"1\","
        "\"type\":\"group\",\"item\":[{\"type\":\"string\"}]}]}", "required",
        "Questionnaire.item[0].item[0].linkId");
}

Test(fhir_validate, narrative) {
    good("{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":"
         "\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">x</div>\"}}");
    bad("{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":"
        "\"<p>x</p>\"}}", "value", "Patient.text.div");
    bad("{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":"
        "\"<div><SCRIPT>alert(1)</SCRIPT></div>\"}}", "value", "Patient.text.div");
    bad("{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\"}}", "required",
        "Patient.text.div");
    bad("{\"resourceType\":\"Patient\",\"text\":\"x\"}", "structure", "Patient.text");
}

/* ---- primitive formats ---------------------------------------------------------- */

/* `tmpl` has one %s where the JSON value goes. */
static void prim(const char *tmpl, const char *value, bool ok, const char *expr) {
    char buf[2048];
    const char *at = strstr(tmpl, "%s");
    cr_assert_not_null(at);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - tmpl), tmpl, value, at + 2);
    if (ok) good(buf);
    else bad(buf, NULL, expr);
}

#define P_BIRTH "{\"resourceType\":\"Patient\",\"birthDate\":%s}"
#define P_EFF OBS_HEAD ",\"effectiveDateTime\":%s}"
#define P_ISSUED OBS_HEAD ",\"issued\":%s}"
#define P_TIME OBS_HEAD ",\"valueTime\":%s}"
#define P_INT OBS_HEAD ",\"valueInteger\":%s}"
#define P_DEC OBS_HEAD ",\"valueQuantity\":{\"value\":%s}}"
#define P_ID "{\"resourceType\":\"Patient\",\"id\":%s}"
#define P_URI "{\"resourceType\":\"Patient\",\"implicitRules\":%s}"
#define P_URL "{\"resourceType\":\"Patient\",\"photo\":[{\"url\":%s}]}"
#define P_CANON "{\"resourceType\":\"Patient\",\"meta\":{\"profile\":[%s]}}"
#define P_SIZE "{\"resourceType\":\"Patient\",\"photo\":[{\"size\":%s}]}"
#define P_DATA "{\"resourceType\":\"Patient\",\"photo\":[{\"data\":%s}]}"
#define P_POS "{\"resourceType\":\"Appointment\",\"status\":\"booked\",\"participant\":[{" \
              "\"status\":\"accepted\",\"type\":[{\"text\":\"x\"}]}],\"minutesDuration\":%s}"
#define P_CODE "{\"resourceType\":\"Patient\",\"maritalStatus\":{\"coding\":[{\"code\":%s}]}}"
#define P_EXT(t) "{\"resourceType\":\"Patient\",\"extension\":[{\"url\":\"http://x\",\"value" t "\":%s}]}"
#define P_BOOL "{\"resourceType\":\"Patient\",\"active\":%s}"

Test(fhir_validate, date) {
    const char *e = "Patient.birthDate";
    prim(P_BIRTH, "\"1974-12-25\"", true, e);
    prim(P_BIRTH, "\"1974-12\"", true, e);
    prim(P_BIRTH, "\"1974\"", true, e);
    prim(P_BIRTH, "\"2000-02-29\"", true, e);
    prim(P_BIRTH, "\"1900-02-29\"", false, e);
    prim(P_BIRTH, "\"2020-02-30\"", false, e);
    prim(P_BIRTH, "\"2020-13-01\"", false, e);
    prim(P_BIRTH, "\"2020-00\"", false, e);
    prim(P_BIRTH, "\"0000\"", false, e);
    prim(P_BIRTH, "\"20200101\"", false, e);
    prim(P_BIRTH, "\"2020-1-01\"", false, e);
    prim(P_BIRTH, "\"2020-01-01T10:00:00Z\"", false, e);
    prim(P_BIRTH, "\"74\"", false, e);
}

Test(fhir_validate, date_time) {
    const char *e = "Observation.effectiveDateTime";
    prim(P_EFF, "\"2016-03-28\"", true, e);
    prim(P_EFF, "\"2016\"", true, e);
    prim(P_EFF, "\"2016-03-28T10:11:12Z\"", true, e);
    prim(P_EFF, "\"2016-03-28T10:11:12.1234+05:30\"", true, e);
    prim(P_EFF, "\"2016-03-28T23:59:60-14:00\"", true, e);
    prim(P_EFF, "\"2016-03-28T10:11:12\"", false, e);
    prim(P_EFF, "\"2016-03-28T10:11Z\"", false, e);
    prim(P_EFF, "\"2016-03-28T24:00:00Z\"", false, e);
    prim(P_EFF, "\"2016-03-28 10:11:12Z\"", false, e);
    prim(P_EFF, "\"2016-03T10:11:12Z\"", false, e);
    prim(P_EFF, "\"2016-03-28T10:11:12+15:00\"", false, e);
    prim(P_EFF, "\"2016-03-28T10:11:12.Z\"", false, e);
}

Test(fhir_validate, instant) {
    const char *e = "Observation.issued";
    prim(P_ISSUED, "\"2015-02-07T13:28:17.239+02:00\"", true, e);
    prim(P_ISSUED, "\"2015-02-07T13:28:17Z\"", true, e);
    prim(P_ISSUED, "\"2015-02-07\"", false, e);
    prim(P_ISSUED, "\"2015-02-07T13:28:17\"", false, e);
    prim(P_ISSUED, "\"2015-02-07T13:28:17+14:01\"", false, e);
}

Test(fhir_validate, time) {
    const char *e = "Observation.valueTime";
    prim(P_TIME, "\"10:00:00\"", true, e);
    prim(P_TIME, "\"23:59:59.999\"", true, e);
    prim(P_TIME, "\"10:00\"", false, e);
    prim(P_TIME, "\"25:00:00\"", false, e);
    prim(P_TIME, "\"10:60:00\"", false, e);
    prim(P_TIME, "\"10:00:00Z\"", false, e);
}

Test(fhir_validate, integers) {
    const char *e = "Observation.valueInteger";
    prim(P_INT, "0", true, e);
    prim(P_INT, "-2147483648", true, e);
    prim(P_INT, "2147483647", true, e);
    prim(P_INT, "2147483648", false, e);
    prim(P_INT, "-2147483649", false, e);
    prim(P_INT, "1.5", false, e);
    prim(P_INT, "1.0", false, e);
    prim(P_INT, "1e3", false, e);
    prim(P_INT, "\"1\"", false, e);
    prim(P_POS, "1", true, "Appointment.minutesDuration");
    prim(P_POS, "0", false, "Appointment.minutesDuration");
    prim(P_POS, "-3", false, "Appointment.minutesDuration");
    prim(P_SIZE, "0", true, "Patient.photo[0].size");
    prim(P_SIZE, "-1", false, "Patient.photo[0].size");
    prim(P_SIZE, "\"12\"", false, "Patient.photo[0].size");
}

Test(fhir_validate, decimal) {
    const char *e = "Observation.valueQuantity.value";
    prim(P_DEC, "1", true, e);
    prim(P_DEC, "-0.5", true, e);
    prim(P_DEC, "1.50", true, e);
    prim(P_DEC, "6.02e23", true, e);
    prim(P_DEC, "\"1.5\"", false, e);
    prim(P_DEC, "true", false, e);
}

Test(fhir_validate, identifiers) {
    prim(P_ID, "\"a-B.9\"", true, "Patient.id");
    prim(P_ID, "\"a_b\"", false, "Patient.id");
    prim(P_ID, "\"a b\"", false, "Patient.id");
    prim(P_ID, "\"0123456789012345678901234567890123456789012345678901234567890123\"", true,
         "Patient.id");
    prim(P_ID, "\"01234567890123456789012345678901234567890123456789012345678901234\"", false,
         "Patient.id");
    prim(P_EXT("Oid"), "\"urn:oid:1.2.840.113619\"", true, NULL);
    prim(P_EXT("Oid"), "\"1.2.3\"", false, "Patient.extension[0].valueOid");
    prim(P_EXT("Oid"), "\"urn:oid:3.1\"", false, "Patient.extension[0].valueOid");
    prim(P_EXT("Oid"), "\"urn:oid:1.02\"", false, "Patient.extension[0].valueOid");
    prim(P_EXT("Oid"), "\"urn:oid:1\"", false, "Patient.extension[0].valueOid");
    prim(P_EXT("Uuid"), "\"urn:uuid:c757873d-ec9a-4326-a141-556f43239520\"", true, NULL);
    prim(P_EXT("Uuid"), "\"urn:uuid:C757873D-EC9A-4326-A141-556F43239520\"", false,
         "Patient.extension[0].valueUuid");
    prim(P_EXT("Uuid"), "\"c757873d-ec9a-4326-a141-556f43239520\"", false,
         "Patient.extension[0].valueUuid");
    prim(P_EXT("Uuid"), "\"urn:uuid:c757873d-ec9a-4326-a141\"", false,
         "Patient.extension[0].valueUuid");
}

Test(fhir_validate, uris_and_codes) {
    prim(P_URI, "\"http://example.org/rules\"", true, NULL);
    prim(P_URI, "\"http://example.org/a b\"", false, "Patient.implicitRules");
    prim(P_URL, "\"http://example.org/photo.png\"", true, NULL);
    prim(P_URL, "\"http://example.org/ photo\"", false, "Patient.photo[0].url");
    prim(P_CANON, "\"http://hl7.org/fhir/StructureDefinition/Patient|4.0.1\"", true, NULL);
    prim(P_CANON, "\"http://x y\"", false, "Patient.meta.profile[0]");
    prim(P_CODE, "\"M\"", true, NULL);
    prim(P_CODE, "\"a b\"", true, NULL);
    prim(P_CODE, "\" M\"", false, "Patient.maritalStatus.coding[0].code");
    prim(P_CODE, "\"M \"", false, "Patient.maritalStatus.coding[0].code");
    prim(P_CODE, "\"a  b\"", false, "Patient.maritalStatus.coding[0].code");
    prim(P_CODE, "\"\"", false, "Patient.maritalStatus.coding[0].code");
}

Test(fhir_validate, base64_markdown_boolean) {
    prim(P_DATA, "\"aGVsbG8=\"", true, NULL);
    prim(P_DATA, "\"aGVs bG8=\"", true, NULL);
    prim(P_DATA, "\"aGVsbG8\"", false, "Patient.photo[0].data");
    prim(P_DATA, "\"aGV=bG8=\"", false, "Patient.photo[0].data");
    prim(P_DATA, "\"aGV$bG8=\"", false, "Patient.photo[0].data");
    prim(P_EXT("Markdown"), "\"# title\"", true, NULL);
    prim(P_EXT("Markdown"), "\"  \"", false, "Patient.extension[0].valueMarkdown");
    prim(P_BOOL, "true", true, NULL);
    prim(P_BOOL, "false", true, NULL);
    prim(P_BOOL, "\"true\"", false, "Patient.active");
    prim(P_BOOL, "0", false, "Patient.active");
}

Test(fhir_validate, no_values_in_diagnostics) {
    const char *t = "{\"resourceType\":\"Patient\",\"gender\":\"SECRET1\","
                    "\"birthDate\":\"SECRET2\",\"active\":\"SECRET3\","
                    "\"name\":[{\"family\":\"   \"}],\"id\":\"SECRET_4\"}";
    json_t *oo;
    cr_assert_eq(run(t, strlen(t), false, &oo), HUB_E_INVALID);
    cr_assert_eq(json_array_size(json_object_get(oo, "issue")), 5, "%s", dump(oo));
    cr_assert_null(strstr(dump(oo), "SECRET"), "%s", dump(oo));
    json_decref(oo);
}

Test(fhir_validate, validate_api_edges) {
    hub_oo *oo = hub_oo_new();
    cr_assert_eq(hub_fhir_validate(defs, NULL, NULL, oo), HUB_E_INVALID);
    json_t *arr = json_array();
    cr_assert_eq(hub_fhir_validate(defs, arr, NULL, oo), HUB_E_INVALID);
    json_decref(arr);
    /* A resource built in code, too deep for the walk. */
    json_t *root = json_pack("{s:s}", "resourceType", "Patient");
    json_t *cur = root;
    for (int i = 0; i < 80; i++) {
        json_t *ext = json_pack("{s:s}", "url", "http://x");
        json_object_set_new(cur, "extension", json_pack("[o]", ext));
        cur = ext;
    }
    cr_assert_eq(hub_fhir_validate(defs, root, NULL, oo), HUB_E_INVALID);
    json_decref(root);
    hub_oo_free(oo);
}

/* ---- the corpus ------------------------------------------------------------------------ */

static char *read_all(const char *path, size_t *n) {
    char *buf = NULL;
    hub_err err;
    if (hub_file_read(path, 64u << 20, &buf, n, &err) != HUB_OK) return NULL;
    return buf;
}

/* Every JSON file of a corpus directory validates, except `known` (file
 * names, each with the reason it is invalid per the specification). */
static void corpus_all_valid(const char *rel, const char *const *known) {
    char dir[512];
    if (!hub_test_corpus(rel, dir)) cr_skip("corpus %s absent", rel);
    DIR *dp = opendir(dir);
    cr_assert_not_null(dp);
    struct dirent *de;
    int files = 0, failed = 0;
    while ((de = readdir(dp)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0) continue;
        bool expect_bad = false;
        for (const char *const *k = known; k && *k; k += 2)
            if (strcmp(*k, de->d_name) == 0) expect_bad = true;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t n;
        char *buf = read_all(path, &n);
        cr_assert_not_null(buf, "%s", path);
        json_t *oo;
        hub_status rc = run(buf, n, false, &oo);
        files++;
        if (expect_bad) {
            cr_expect_neq(rc, HUB_OK, "%s is listed as invalid but passes", de->d_name);
        } else if (rc != HUB_OK) {
            failed++;
            cr_expect_eq(rc, HUB_OK, "%s: %s", de->d_name, dump(oo));
        }
        json_decref(oo);
        hub_free(buf);
    }
    closedir(dp);
    cr_assert_gt(files, 0);
    cr_log_info("%s: %d files, %d failed", rel, files, failed);
}

Test(fhir_corpus, r4_spec_examples_valid) {
    corpus_all_valid("fhir/r4-spec-examples", NULL);
}

Test(fhir_corpus, us_core_examples_valid) {
    static const char *const known[] = {
        "diagnosticreport-cbc.json",
        "text has no div: Narrative.div is 1..1 (the R4 spec and us-core's own "
        "validator report it)",
        NULL};
    corpus_all_valid("fhir/us-core-examples", known);
}

static void ms_invalid(const char *file, hub_status want, const char *code,
                       const char *expr) {
    char dir[512];
    if (!hub_test_corpus("fhir/ms-fhir-server-testfiles", dir))
        cr_skip("corpus fhir/ms-fhir-server-testfiles absent");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t n;
    char *buf = read_all(path, &n);
    cr_assert_not_null(buf, "%s", path);
    json_t *oo;
    cr_expect_eq(run(buf, n, false, &oo), want, "%s", file);
    cr_expect(has_issue(oo, "error", code, expr), "%s: want %s at %s, got %s", file, code,
              expr, dump(oo));
    json_decref(oo);
    hub_free(buf);
}

Test(fhir_corpus, ms_invalid_observation) {
    ms_invalid("InvalidObservation.json", HUB_E_INVALID, "structure", "Observation.text");
}
Test(fhir_corpus, ms_invalid_status) {
    ms_invalid("ObservationWithInvalidStatus.json", HUB_E_INVALID, "code-invalid",
               "Observation.status");
}
Test(fhir_corpus, ms_no_code) {
    ms_invalid("ObservationWithNoCode.json", HUB_E_INVALID, "required", "Observation.code");
}
Test(fhir_corpus, ms_invalid_decimal) {
    ms_invalid("ObservationWithInvalidDecimalSpecification.json", HUB_E_PARSE, "value",
               "Observation.valueQuantity.value");
}
Test(fhir_corpus, ms_money_wrong_decimal) {
    ms_invalid("MoneyWithWrongDecimal.json", HUB_E_INVALID, "not-supported", "resourceType");
}
Test(fhir_corpus, ms_missing_resource_type) {
    ms_invalid("PatientMissingResourceType.json", HUB_E_PARSE, "required", "resourceType");
}
Test(fhir_corpus, ms_unknown_elements) {
    ms_invalid("PatientWithUnknownElements.json", HUB_E_INVALID, "structure",
               "Patient.name1");
}
