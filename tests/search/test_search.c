/* FHIR search over a fixed data set: every parameter type, prefix and
 * modifier, dates at every precision and with time zones, chains, _has,
 * includes, paging while inserting, compartments, errors; the FHIRPath
 * coverage of the official definitions; every search parameter the
 * CapabilityStatement lists checked against a brute-force filter. */
#include "hub/record.h"
#include "hub_test.h"

#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define R4 HUB_SOURCE_DIR "/conformance/fhir/r4"

static char dir[256];
static hub_store *store;
static hub_record *rec;
static hub_fhir_defs *defs;
static hub_fhir_sps *sps;

static void put(const char *type, const char *id, const char *body) {
    json_error_t je;
    json_t *res = json_loads(body, 0, &je);
    cr_assert_not_null(res, "bad fixture %s/%s: %s", type, id, je.text);
    json_object_set_new(res, "id", json_string(id));
    hub_record_op op = {.kind = HUB_OP_UPDATE, .type = type, .id = id, .resource = res};
    hub_err err;
    cr_assert_eq(hub_record_apply(rec, &op, 1, false, &err), HUB_OK, "%s", err.msg);
    cr_assert(op.status == 201 || op.status == 200, "%s/%s: %d", type, id, op.status);
    hub_record_op_release(&op);
    json_decref(res);
}

static const char *const FIXTURES[][3] = {
    {"Practitioner", "dr1", "{\"resourceType\":\"Practitioner\",\"name\":[{\"family\":\"Doctor\",\"given\":[\"Carl\"]}]}"},
    {"Patient", "p1",
     "{\"resourceType\":\"Patient\",\"active\":true,\"identifier\":[{\"type\":{\"coding\":[{\"system\":"
     "\"http://terminology.hl7.org/CodeSystem/v2-0203\",\"code\":\"MR\"}]},\"system\":\"urn:mrn\","
     "\"value\":\"M1\"}],\"name\":[{\"family\":\"M\xc3\xbcller\",\"given\":[\"Ann\"]}],\"gender\":"
     "\"female\",\"birthDate\":\"1970-05-03\",\"telecom\":[{\"system\":\"phone\",\"value\":"
     "\"555-1234\"}],\"address\":[{\"city\":\"Berlin\"}],\"deceasedBoolean\":false}"},
    {"Patient", "p2",
     "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn\",\"value\":\"M2\"}],"
     "\"name\":[{\"family\":\"Smith\",\"given\":[\"Bob\"]}],\"gender\":\"male\",\"birthDate\":"
     "\"1980-01\",\"generalPractitioner\":[{\"reference\":\"Practitioner/dr1\"}],"
     "\"deceasedDateTime\":\"2020-02-02\"}"},
    {"Patient", "p3",
     "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:other\",\"value\":\"M1\"}],"
     "\"name\":[{\"family\":\"\xc3\x85ngstr\xc3\xb6m\",\"given\":[\"Zo\xc3\xab\"]}],\"gender\":"
     "\"female\",\"birthDate\":\"1970\"}"},
    {"Patient", "p4",
     "{\"resourceType\":\"Patient\",\"meta\":{\"tag\":[{\"system\":\"urn:tag\",\"code\":\"vip\"}],"
     "\"profile\":[\"http://example.org/fhir/StructureDefinition/my-patient\"]},\"name\":[{\"text\":"
     "\"Anna Annaberg\"}],\"gender\":\"other\"}"},
    {"Observation", "o1",
     "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":"
     "\"http://loinc.org\",\"code\":\"8867-4\",\"display\":\"Heart rate\"}]},\"subject\":{"
     "\"reference\":\"Patient/p1\"},\"effectiveDateTime\":\"2024-05-17T10:30:00+02:00\","
     "\"valueQuantity\":{\"value\":72,\"unit\":\"/min\",\"system\":\"http://unitsofmeasure.org\","
     "\"code\":\"/min\"}}"},
    {"Observation", "o2",
     "{\"resourceType\":\"Observation\",\"status\":\"amended\",\"category\":[{\"coding\":[{"
     "\"system\":\"http://terminology.hl7.org/CodeSystem/observation-category\",\"code\":"
     "\"vital-signs\"}]}],\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":"
     "\"8310-5\"}]},\"subject\":{\"reference\":\"Patient/p1\"},\"effectiveDateTime\":\"2024-05-18\","
     "\"valueQuantity\":{\"value\":37.5,\"system\":\"http://unitsofmeasure.org\",\"code\":\"Cel\"}}"},
    {"Observation", "o3",
     "{\"resourceType\":\"Observation\",\"status\":\"preliminary\",\"code\":{\"coding\":[{"
     "\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}]},\"subject\":{\"reference\":"
     "\"Patient/p2\"},\"performer\":[{\"reference\":\"Practitioner/dr1\"}],\"effectivePeriod\":{"
     "\"start\":\"2024-06-01T00:00:00Z\",\"end\":\"2024-06-30T23:59:00Z\"},\"valueQuantity\":{"
     "\"value\":100,\"system\":\"http://unitsofmeasure.org\",\"code\":\"/min\"}}"},
    {"Observation", "o4",
     "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":"
     "\"http://loinc.org\",\"code\":\"29463-7\"}]},\"subject\":{\"reference\":\"Patient/p3\"},"
     "\"effectiveDateTime\":\"2023\",\"valueQuantity\":{\"value\":80,\"system\":"
     "\"http://unitsofmeasure.org\",\"code\":\"kg\"}}"},
    {"Observation", "o5",
     "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":"
     "\"http://loinc.org\",\"code\":\"8867-4\"}]},\"subject\":{\"reference\":\"Group/g1\"},"
     "\"effectiveInstant\":\"2024-05-17T08:30:00.000Z\",\"valueString\":\"hello\"}"},
    /* a blood pressure: the values are in components */
    {"Observation", "o6",
     "{\"resourceType\":\"Observation\",\"status\":\"cancelled\",\"code\":{\"coding\":[{\"system\":"
     "\"http://loinc.org\",\"code\":\"85354-9\"}]},\"subject\":{\"reference\":\"Patient/p2\"},"
     "\"component\":[{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8480-6\"}]},"
     "\"valueQuantity\":{\"value\":120,\"system\":\"http://unitsofmeasure.org\",\"code\":\"mm[Hg]\"}},"
     "{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8462-4\"}]},"
     "\"valueQuantity\":{\"value\":80,\"system\":\"http://unitsofmeasure.org\",\"code\":\"mm[Hg]\"}}]}"},
};
#define NFIX (sizeof FIXTURES / sizeof FIXTURES[0])

static void up(void) {
    hub_err err;
    hub_test_tmpdir(dir);
    hub_store_cfg sc = {.dir = dir, .commit_batch_max = 512};
    cr_assert_eq(hub_store_open(&sc, &store, &err), HUB_OK, "%s", err.msg);
    cr_assert_eq(hub_fhir_defs_load(R4, &defs, &err), HUB_OK, "%s", err.msg);
    cr_assert_eq(hub_fhir_sps_load(R4, &sps, &err), HUB_OK, "%s", err.msg);
    hub_record_cfg rc = {.store = store, .defs = defs, .search = sps, .max_bundle_entries = 100};
    cr_assert_eq(hub_record_open(&rc, &rec, &err), HUB_OK, "%s", err.msg);
    for (size_t i = 0; i < NFIX; i++) put(FIXTURES[i][0], FIXTURES[i][1], FIXTURES[i][2]);
}

static void down(void) {
    hub_record_close(rec);
    hub_store_close(store);
    hub_fhir_sps_free(sps);
    hub_fhir_defs_free(defs);
    hub_test_rmtree(dir);
}

/* Runs a search; returns the Bundle (or the OperationOutcome) and sets
 * *status. */
static json_t *search(const char *type, const char *q, const char *compartment, bool strict,
                      int *status) {
    hub_search_req req = {.type = type, .query = q, .base = "http://h/fhir", .path = type ? type : "",
                          .compartment = compartment, .strict = strict};
    hub_buf out;
    hub_buf_init(&out);
    hub_oo *oo = NULL;
    hub_err err;
    cr_assert_eq(hub_record_search(rec, &req, &out, status, &oo, &err), HUB_OK, "%s", err.msg);
    json_t *j;
    if (*status != 200) {
        cr_assert_not_null(oo);
        j = hub_oo_json(oo);
        hub_oo_free(oo);
    } else {
        json_error_t je;
        j = json_loadb(out.p, out.n, 0, &je);
        cr_assert_not_null(j, "bundle is not JSON: %s", je.text);
    }
    hub_buf_release(&out);
    return j;
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The match ids of a Bundle, sorted, comma-joined. */
static void ids_of(const json_t *b, const char *mode, char *out, size_t cap) {
    const char *ids[200];
    size_t n = 0, i;
    const json_t *e;
    json_array_foreach(json_object_get(b, "entry"), i, e) {
        const char *m = json_string_value(json_object_get(json_object_get(e, "search"), "mode"));
        if (m && strcmp(m, mode) == 0 && n < 200)
            ids[n++] = json_string_value(json_object_get(json_object_get(e, "resource"), "id"));
    }
    qsort(ids, n, sizeof *ids, cmp);
    out[0] = '\0';
    size_t o = 0;
    for (size_t k = 0; k < n; k++) o += (size_t)snprintf(out + o, cap - o, "%s%s", k ? "," : "", ids[k]);
}

static const struct {
    const char *type, *query, *expect;
} CASES[] = {
    /* token */
    {"Patient", "identifier=urn:mrn|M1", "p1"},
    {"Patient", "identifier=M1", "p1,p3"},
    {"Patient", "identifier=urn:mrn|", "p1,p2"},
    {"Patient", "identifier=|M1", ""},
    {"Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|M1", "p1"},
    {"Patient", "gender=female", "p1,p3"},
    {"Patient", "gender:not=female", "p2,p4"},
    {"Patient", "gender=female,male", "p1,p2,p3"},
    {"Patient", "gender=female&identifier=urn:other|", "p3"},
    {"Patient", "phone=555-1234", "p1"},
    {"Patient", "deceased=true", "p2"},
    {"Patient", "deceased=false", "p1"},
    {"Patient", "active=true", "p1"},
    {"Patient", "_tag=urn:tag|vip", "p4"},
    {"Patient", "_id=p1,p2", "p1,p2"},
    {"Observation", "code=http://loinc.org|8867-4", "o1,o3,o5"},
    {"Observation", "code=8867-4&code=8310-5", ""},
    {"Observation", "code:text=heart", "o1"},
    {"Observation", "code:missing=true", ""},
    {"Observation", "category=vital-signs", "o2"},
    {"Observation", "category:missing=true", "o1,o3,o4,o5,o6"},
    {"Observation", "status=final,amended", "o1,o2,o4,o5"},
    /* string */
    {"Patient", "name=ann", "p1,p4"},
    {"Patient", "name:exact=Ann", "p1"},
    {"Patient", "name:exact=ann", ""},
    {"Patient", "name:contains=str", "p3"},
    {"Patient", "name=ANGSTROM", "p3"},
    {"Patient", "name=zoe", "p3"},
    /* phonetic has name's expression: an alias, read from name's rows */
    {"Patient", "phonetic=ann", "p1,p4"},
    {"Patient", "phonetic:exact=Ann", "p1"},
    {"Patient", "phonetic:missing=true", ""},
    {"Patient", "phonetic:missing=false", "p1,p2,p3,p4"},
    {"Patient", "family=muller", "p1"},
    {"Patient", "address-city=berlin", "p1"},
    {"Observation", "value-string=hel", "o5"},
    {"Practitioner", "name=doc", "dr1"},
    /* date */
    {"Patient", "birthdate=1970", "p1,p3"},
    {"Patient", "birthdate=1970-05", "p1"},
    {"Patient", "birthdate=1970-05-03", "p1"},
    {"Patient", "birthdate=ne1970-05-03", "p2,p3"},
    {"Patient", "birthdate=lt1975", "p1,p3"},
    {"Patient", "birthdate=gt1975", "p2"},
    {"Patient", "birthdate=ge1970-05-03", "p1,p2,p3"},
    {"Patient", "birthdate=le1970-05-03", "p1,p3"},
    {"Patient", "birthdate=sa1970-12-31", "p2"},
    {"Patient", "birthdate=eb1975", "p1,p3"},
    {"Patient", "birthdate:missing=true", "p4"},
    {"Patient", "birthdate=1980", "p2"},
    {"Patient", "birthdate=1980-01-15", ""},
    {"Observation", "date=2024-05-17", "o1,o5"},
    {"Observation", "date=2024-05-17T08:30Z", "o1,o5"},
    {"Observation", "date=2024-05-17T10:30:00%2B02:00", "o1,o5"},
    {"Observation", "date=2024-05-17T10:30:00-02:00", ""},
    {"Observation", "date=2024-05-17T08:30:00.000Z", "o5"},
    {"Observation", "date=2024-06", "o3"},
    {"Observation", "date=2024-06-15", ""},
    {"Observation", "date=lt2024", "o4"},
    {"Observation", "date=ge2024-06", "o3"},
    {"Observation", "date=gt2024-05-17&date=lt2024-06", "o2"},
    {"Patient", "_lastUpdated=gt2000", "p1,p2,p3,p4"},
    {"Patient", "_lastUpdated=lt2000", ""},
    /* reference */
    {"Observation", "patient=Patient/p1", "o1,o2"},
    {"Observation", "patient=p1", "o1,o2"},
    {"Observation", "subject=Group/g1", "o5"},
    {"Observation", "subject:Patient=p1", "o1,o2"},
    {"Observation", "subject=Patient/p1,Patient/p2", "o1,o2,o3,o6"},
    {"Patient", "general-practitioner=Practitioner/dr1", "p2"},
    {"Observation", "code=8867-4&patient=p1", "o1"},
    /* quantity, number */
    {"Observation", "value-quantity=72", "o1"},
    {"Observation", "value-quantity=gt75", "o3,o4"},
    {"Observation", "value-quantity=le72", "o1,o2"},
    {"Observation", "value-quantity=gt75|http://unitsofmeasure.org|kg", "o4"},
    {"Observation", "value-quantity=37.5|http://unitsofmeasure.org|Cel", "o2"},
    {"Observation", "value-quantity=37|http://unitsofmeasure.org|Cel", ""},
    {"Observation", "value-quantity=ap99", "o3"},
    /* uri */
    {"Patient", "_profile=http://example.org/fhir/StructureDefinition/my-patient", "p4"},
    {"Patient", "_profile:below=http://example.org/fhir", "p4"},
    {"Patient", "_profile:above=http://example.org/fhir/StructureDefinition/my-patient/x", "p4"},
    {"Patient", "_profile=http://example.org/fhir", ""},
    /* chains, reverse chains */
    {"Observation", "subject.name=smith", "o3,o6"},
    {"Observation", "subject:Patient.name=smith", "o3,o6"},
    {"Observation", "patient.identifier=urn:mrn|M1", "o1,o2"},
    {"Observation", "patient.birthdate=1970", "o1,o2,o4"},
    {"Observation", "performer.name=carl", "o3"},
    {"Observation", "patient.general-practitioner.name=doctor", "o3,o6"},
    {"Patient", "_has:Observation:patient:code=29463-7", "p3"},
    {"Patient", "_has:Observation:patient:status=final", "p1,p3"},
    /* composites: the two values of one item (the resource, a component) */
    {"Observation", "code-value-quantity=http://loinc.org|8867-4$gt75", "o3"},
    {"Observation", "code-value-quantity=8867-4$lt80", "o1"},
    {"Observation", "code-value-quantity=|8867-4$lt80", ""},
    {"Observation", "code-value-quantity=8310-5$37.5|http://unitsofmeasure.org|Cel", "o2"},
    {"Observation", "code-value-quantity=29463-7$gt75,8867-4$gt75", "o3,o4"},
    {"Observation", "code-value-quantity=8310-5$gt75", ""},
    {"Observation", "code-value-string=8867-4$hel", "o5"},
    {"Observation", "combo-code-value-quantity=8867-4$100", "o3"},
    {"Observation", "combo-code-value-quantity=8480-6$120", "o6"},
    {"Observation", "component-code-value-quantity=http://loinc.org|8480-6$gt100", "o6"},
    {"Observation", "code-value-quantity:missing=false", "o1,o2,o3,o4"},
    {"Observation", "code-value-quantity:missing=true", "o5,o6"},
    {"Observation", "combo-code-value-quantity:missing=false", "o1,o2,o3,o4,o6"},
    {"Observation", "combo-code-value-quantity:missing=true", "o5"},
    {"Observation", "combo-code-value-quantity=http://loinc.org|8867-4$gt75", "o3"},
    {"Observation", "code-value-concept:missing=false", ""},
    {"Observation", "component-code-value-quantity=8462-4$gt100", ""},
    {"Observation", "component-code-value-quantity=8462-4$80|http://unitsofmeasure.org|mm[Hg]", "o6"},
    {"Observation", "component-code-value-quantity:missing=false", "o6"},
    {"Observation", "component-code-value-quantity=8480-6$gt100&patient=p2", "o6"},
};

Test(search, table, .init = up, .fini = down) {
    char got[2048];
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        int st;
        json_t *b = search(CASES[i].type, CASES[i].query, NULL, true, &st);
        cr_assert_eq(st, 200, "%s?%s: %d %s", CASES[i].type, CASES[i].query, st,
                     json_dumps(b, JSON_COMPACT));
        ids_of(b, "match", got, sizeof got);
        const char *exp = CASES[i].expect;
        cr_expect_str_eq(got, exp, "%s?%s", CASES[i].type, CASES[i].query);
        json_int_t total = json_integer_value(json_object_get(b, "total"));
        size_t n = got[0] ? 1 : 0;
        for (const char *p = got; *p; p++) n += *p == ',';
        cr_expect_eq((size_t)total, n, "%s?%s total", CASES[i].type, CASES[i].query);
        json_decref(b);
    }
}

static const struct {
    const char *type, *query;
    int status;
    const char *expr;
} ERRORS[] = {
    {"Patient", "foo=1", 400, "foo"},
    {"Patient", "birthdate=1970-13", 400, "birthdate"},
    {"Patient", "birthdate=yesterday", 400, "birthdate"},
    {"Patient", "name:below=x", 400, "name"},
    {"Patient", "gender:missing=maybe", 400, "gender"},
    {"Observation", "value-quantity=abc", 400, "value-quantity"},
    {"Observation", "code-value-quantity=8867-4", 400, "code-value-quantity"},
    {"Observation", "code-value-quantity=8867-4$abc", 400, "code-value-quantity"},
    {"Observation", "code-value-quantity:exact=8867-4$1", 400, "code-value-quantity"},
    {"Observation", "subject.foo=1", 400, "subject"},
    {"Observation", "code.name=x", 400, "code"},
    {"Patient", "_sort=foo", 400, "_sort"},
    {"Patient", "_count=-1", 400, "_count"},
    {"Patient", "_summary=maybe", 400, "_summary"},
    {"Patient", "_include=Patient:name", 400, "_include"},
    {"Patient", "_has:Observation:code:status=final", 400, "_has"},
    {"Patient", "name=%zz", 400, NULL},
    {"Patient", "_cursor=garbage", 400, "_cursor"},
};

Test(search, errors_name_the_parameter, .init = up, .fini = down) {
    for (size_t i = 0; i < sizeof ERRORS / sizeof ERRORS[0]; i++) {
        int st;
        json_t *o = search(ERRORS[i].type, ERRORS[i].query, NULL, true, &st);
        cr_expect_eq(st, ERRORS[i].status, "%s?%s: %d", ERRORS[i].type, ERRORS[i].query, st);
        cr_expect_str_eq(json_string_value(json_object_get(o, "resourceType")), "OperationOutcome");
        json_t *issue = json_array_get(json_object_get(o, "issue"), 0);
        if (ERRORS[i].expr)
            cr_expect_str_eq(json_string_value(json_array_get(json_object_get(issue, "expression"), 0)),
                             ERRORS[i].expr, "%s?%s", ERRORS[i].type, ERRORS[i].query);
        /* never the value itself */
        char *t = json_dumps(o, 0);
        if (strstr(ERRORS[i].query, "yesterday")) cr_expect_null(strstr(t, "yesterday"));
        free(t);
        json_decref(o);
    }
}

Test(search, lenient_reports_unknown_in_the_bundle, .init = up, .fini = down) {
    int st;
    json_t *b = search("Patient", "foo=1&gender=male", NULL, false, &st);
    cr_assert_eq(st, 200);
    char got[256];
    ids_of(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "p2");
    size_t i;
    json_t *e;
    bool outcome = false;
    json_array_foreach(json_object_get(b, "entry"), i, e) {
        const char *m = json_string_value(json_object_get(json_object_get(e, "search"), "mode"));
        if (strcmp(m, "outcome") == 0) {
            outcome = true;
            json_t *iss = json_array_get(json_object_get(json_object_get(e, "resource"), "issue"), 0);
            cr_expect_str_eq(json_string_value(json_array_get(json_object_get(iss, "expression"), 0)),
                             "foo");
        }
    }
    cr_expect(outcome);
    json_decref(b);
}

Test(search, include_and_revinclude, .init = up, .fini = down) {
    int st;
    char got[256];
    json_t *b = search("Observation", "code=8867-4&_include=Observation:patient", NULL, true, &st);
    cr_assert_eq(st, 200);
    ids_of(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "o1,o3,o5");
    ids_of(b, "include", got, sizeof got);
    cr_expect_str_eq(got, "p1,p2");
    json_decref(b);
    b = search("Patient", "gender=female&_revinclude=Observation:subject", NULL, true, &st);
    ids_of(b, "include", got, sizeof got);
    cr_expect_str_eq(got, "o1,o2,o4");
    json_decref(b);
    b = search("Observation", "_id=o3&_include=Observation:performer:Practitioner", NULL, true, &st);
    ids_of(b, "include", got, sizeof got);
    cr_expect_str_eq(got, "dr1");
    json_decref(b);
}

/* A search that starts from one index key (system|value of one parameter)
 * reads no DISTINCT; one whose key can name a resource twice (no system,
 * several values, several parameters) still gives each resource once. */
Test(search, each_resource_once_from_any_driver, .init = up, .fini = down) {
    put("Patient", "p9",
        "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"X9\"},"
        "{\"system\":\"urn:b\",\"value\":\"X9\"}]}");
    put("Observation", "o9",
        "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{"
        "\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}]},\"subject\":{\"reference\":"
        "\"Patient/p9\"},\"performer\":[{\"reference\":\"Patient/p9\"}]}");
    static const struct {
        const char *type, *query;
        int n;
    } cases[] = {
        {"Patient", "identifier=urn:a|X9&_count=1", 1},
        {"Patient", "identifier=X9&_count=1", 1},
        {"Patient", "identifier=urn:a|X9,urn:b|X9&_count=1", 1},
        {"Observation", "subject=Patient/p9&_count=1", 1},
        {"Observation", "patient=p9&code=http://loinc.org|8867-4&_count=1", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st;
        json_t *b = search(cases[i].type, cases[i].query, NULL, true, &st);
        cr_assert_eq(st, 200, "%s", cases[i].query);
        cr_expect_eq(json_array_size(json_object_get(b, "entry")), (size_t)cases[i].n, "%s",
                     cases[i].query);
        /* a second row of the same resource would make a second page */
        size_t k;
        json_t *l;
        json_array_foreach(json_object_get(b, "link"), k, l)
            cr_expect_str_neq(json_string_value(json_object_get(l, "relation")), "next", "%s",
                              cases[i].query);
        json_decref(b);
    }
    int st;
    json_t *b = search("Observation", "_count=1", "p9", true, &st);
    cr_assert_eq(st, 200);
    cr_expect_eq(json_array_size(json_object_get(b, "entry")), 1, "compartment: o9 once");
    json_decref(b);
}

/* The self link carries the query as sent: quotes, backslashes and
 * control characters in it are escaped, and the Bundle stays JSON. */
Test(search, self_link_escapes_the_query, .init = up, .fini = down) {
    int st;
    json_t *b = search("Patient", "name=a\"b\\c\td", NULL, false, &st);
    cr_assert_eq(st, 200);
    const char *url = NULL;
    size_t k;
    json_t *l;
    json_array_foreach(json_object_get(b, "link"), k, l)
        if (strcmp(json_string_value(json_object_get(l, "relation")), "self") == 0)
            url = json_string_value(json_object_get(l, "url"));
    cr_assert_not_null(url);
    cr_expect(strstr(url, "name=a\"b\\c\td") != NULL, "%s", url);
    json_decref(b);
}

Test(search, sort_count_summary_elements, .init = up, .fini = down) {
    int st;
    json_t *b = search("Patient", "_sort=-birthdate,_id", NULL, true, &st);
    cr_assert_eq(st, 200);
    const char *order[4];
    for (size_t i = 0; i < 4; i++)
        order[i] = json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(b, "entry"), i), "resource"), "id"));
    /* p2 1980-01, p3 1970 (its year ends last of the 1970s: MAX(hi)), p1,
     * then p4 without a birth date */
    cr_expect_str_eq(order[0], "p2");
    cr_expect_str_eq(order[1], "p3");
    cr_expect_str_eq(order[2], "p1");
    cr_expect_str_eq(order[3], "p4");
    json_decref(b);
    b = search("Patient", "_sort=family", NULL, true, &st);
    cr_expect_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(json_object_get(b, "entry"), 0), "resource"), "id")),
                     "p3"); /* folded: angstrom < muller < smith */
    json_decref(b);

    b = search("Observation", "_summary=count", NULL, true, &st);
    cr_expect_eq(json_integer_value(json_object_get(b, "total")), 6);
    cr_expect_null(json_object_get(b, "entry"));
    json_decref(b);

    b = search("Patient", "_id=p1&_elements=gender", NULL, true, &st);
    json_t *r = json_object_get(json_array_get(json_object_get(b, "entry"), 0), "resource");
    cr_expect_str_eq(json_string_value(json_object_get(r, "gender")), "female");
    cr_expect_null(json_object_get(r, "name"));
    cr_expect_str_eq(json_string_value(json_object_get(r, "id")), "p1");
    json_decref(b);

    b = search("Patient", "_id=p1&_summary=true", NULL, true, &st);
    r = json_object_get(json_array_get(json_object_get(b, "entry"), 0), "resource");
    cr_expect_not_null(json_object_get(r, "name")); /* a summary element */
    json_t *tag = json_array_get(json_object_get(json_object_get(r, "meta"), "tag"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(tag, "code")), "SUBSETTED");
    json_decref(b);

    b = search("Patient", "_total=none", NULL, true, &st);
    cr_expect_null(json_object_get(b, "total"));
    json_decref(b);
}

Test(search, compartment, .init = up, .fini = down) {
    int st;
    char got[256];
    json_t *b = search("Observation", NULL, "p1", true, &st);
    cr_assert_eq(st, 200);
    ids_of(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "o1,o2");
    json_decref(b);
    b = search("Observation", "code=8310-5", "p1", true, &st);
    ids_of(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "o2");
    json_decref(b);
    b = search("Practitioner", NULL, "p1", true, &st);
    cr_expect_eq(st, 400);
    json_decref(b);
}

/* The next link's _cursor, or NULL. */
static char *next_cursor(const json_t *b) {
    size_t i;
    const json_t *l;
    json_array_foreach(json_object_get(b, "link"), i, l) {
        if (strcmp(json_string_value(json_object_get(l, "relation")), "next") == 0) {
            const char *u = strstr(json_string_value(json_object_get(l, "url")), "?");
            return strdup(u + 1);
        }
    }
    return NULL;
}

Test(search, paging_is_stable_while_inserting, .init = up, .fini = down) {
    int st;
    /* 12 more patients, then page by 5 while adding one per page */
    for (int i = 0; i < 12; i++) {
        char id[16], body[128];
        snprintf(id, sizeof id, "q%02d", i);
        snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"gender\":\"%s\"}",
                 i % 2 ? "male" : "female");
        put("Patient", id, body);
    }
    json_t *b = search("Patient", "_count=5&_sort=gender", NULL, true, &st);
    cr_assert_eq(st, 200);
    cr_expect_eq(json_integer_value(json_object_get(b, "total")), 16);
    char seen[64][16];
    size_t nseen = 0;
    for (int page = 0; page < 10; page++) {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(b, "entry"), i, e) {
            const char *id = json_string_value(json_object_get(json_object_get(e, "resource"), "id"));
            for (size_t k = 0; k < nseen; k++) cr_expect_str_neq(seen[k], id, "%s twice", id);
            cr_assert_lt(nseen, 64);
            snprintf(seen[nseen++], 16, "%s", id);
        }
        char *nq = next_cursor(b);
        json_decref(b);
        if (!nq) break;
        char id[16];
        snprintf(id, sizeof id, "new%d", page);
        put("Patient", id, "{\"resourceType\":\"Patient\",\"gender\":\"female\"}");
        b = search("Patient", nq, NULL, true, &st);
        cr_assert_eq(st, 200, "page %d", page);
        free(nq);
    }
    cr_expect_eq(nseen, 16, "every resource of the first page's snapshot once");
}

Test(search, fhirpath_covers_every_definition) {
    hub_err err;
    hub_fhir_sps *t;
    cr_assert_eq(hub_fhir_sps_load(R4, &t, &err), HUB_OK, "%s", err.msg);
    size_t rows, compiled;
    hub_fhir_sps_stats(t, &rows, &compiled);
    cr_log_info("search parameters: %zu rows (definition x base), %zu compiled", rows, compiled);
    cr_expect_eq(compiled, rows, "%zu of %zu expressions outside the FHIRPath subset",
                 rows - compiled, rows);
    cr_expect_gt(rows, 1377);
    hub_fhir_sps_free(t);
}

typedef struct {
    int n;
    const char *type;
    bool last_true;
} fp_got;

static hub_status on_fp(void *ud, const json_t *v, const char *type, const char *key) {
    fp_got *g = ud;
    (void)key;
    g->n++;
    g->type = type;
    g->last_true = json_is_true(v);
    return HUB_OK;
}

Test(search, fhirpath_subset) {
    hub_err err;
    hub_fhir_defs *d;
    cr_assert_eq(hub_fhir_defs_load(R4, &d, &err), HUB_OK);
    json_error_t je;
    json_t *obs = json_loads(
        "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
        "\"subject\":{\"reference\":\"http://x/fhir/Patient/1/_history/2\"},\"valueQuantity\":{"
        "\"value\":1},\"component\":[{\"code\":{\"text\":\"a\"},\"valueString\":\"s\"},{\"code\":{"
        "\"text\":\"b\"},\"valueQuantity\":{\"value\":2}}],\"extension\":[{\"url\":\"u\","
        "\"valueString\":\"e\"}]}",
        0, &je);
    static const struct {
        const char *expr;
        int n;
        const char *type;
    } C[] = {
        {"Observation.subject.where(resolve() is Patient)", 1, "Reference"},
        {"Observation.subject.where(resolve() is Group)", 0, NULL},
        {"Observation.value.ofType(Quantity)", 1, "Quantity"},
        {"Observation.value as Quantity", 1, "Quantity"},
        {"(Observation.value.ofType(string))", 0, NULL},
        {"Observation.component.value.ofType(Quantity) | Observation.value", 2, "Quantity"},
        {"Observation.component[1].code", 1, "CodeableConcept"},
        {"Observation.component.code.first()", 1, "CodeableConcept"},
        {"Observation.component.where(code.text='b').value", 1, "Quantity"},
        {"Observation.extension('u').value", 1, "string"},
        {"Observation.value.exists()", 1, "boolean"},
        {"Observation.status != 'draft'", 1, "boolean"},
        {"Observation.value is Quantity", 1, "boolean"},
        {"Patient.name", 0, NULL},
        /* a choice read by its typed name (valueString), the type's case
         * as the definitions write it, on items other than the resource,
         * and an element that is no choice */
        {"Observation.component.value.ofType(string)", 1, "string"},
        {"Observation.component.value.ofType(String)", 1, "string"},
        {"Observation.component.value.ofType(CodeableConcept)", 0, NULL},
        {"Observation.extension.value as string", 1, "string"},
        {"Observation.code.ofType(CodeableConcept)", 1, "CodeableConcept"},
        {"Observation.code.ofType(Coding)", 0, NULL},
        {"Observation.valueQuantity.ofType(Quantity)", 1, "Quantity"},
    };
    hub_arena a;
    hub_arena_init(&a, 4096);
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        hub_fhirpath *fp;
        cr_assert_eq(hub_fhirpath_compile(C[i].expr, &fp, &err), HUB_OK, "%s", C[i].expr);
        fp_got got = {0, NULL, false};
        cr_assert_eq(hub_fhirpath_eval(d, fp, &a, "Observation", obs, on_fp, &got), HUB_OK);
        hub_fhirpath_free(fp);
        cr_expect_eq(got.n, C[i].n, "%s: %d values", C[i].expr, got.n);
        if (C[i].type) cr_expect_str_eq(got.type ? got.type : "(none)", C[i].type, "%s", C[i].expr);
        if (C[i].type && strcmp(C[i].type, "boolean") == 0)
            cr_expect(got.last_true, "%s is true", C[i].expr);
    }
    hub_arena_release(&a);
    json_decref(obs);
    hub_fhir_defs_free(d);
    hub_fhirpath *fp;
    cr_expect_eq(hub_fhirpath_compile("Observation.where(", &fp, &err), HUB_E_UNSUPPORTED);
    cr_expect_eq(hub_fhirpath_compile("Observation.code.memberOf('x')", &fp, &err), HUB_E_UNSUPPORTED);
}

/* An expression that reads elements an object does not have is not
 * evaluated: hub_fhirpath_keys_may_match says so from the object's keys,
 * a choice's stem matching its typed names, and a choice read through
 * ofType(T) only its name of type T (or the name itself). */
Test(search, fhirpath_knows_what_it_reads_first) {
    hub_err err;
    static const char *const OBS[] = {"resourceType", "status", "code", "valueQuantity",
                                      "extension"};
    static const struct {
        const char *expr;
        bool may; /* on OBS */
        bool any; /* on any object, even an empty one */
    } C[] = {
        {"Observation.value.ofType(Quantity)", true, false}, /* valueQuantity */
        {"(Observation.value.ofType(string))", false, false}, /* another type */
        {"Observation.value.ofType(string) | Observation.value.ofType(Quantity)", true, false},
        {"Observation.value", true, false},                    /* the stem: any type */
        {"Observation.code.ofType(CodeableConcept)", true, false}, /* the name itself */
        {"Observation.status.value.ofType(Quantity)", true, false}, /* not a head */
        {"Observation.extension.ofType(Extension)", true, false},
        {"Observation.basedOn", false, false},
        {"Observation.component.code | Observation.specimen", false, false},
        {"Observation.code | Observation.specimen", true, false},
        {"Observation.extension('u').value", true, false},
        {"Observation.subject.where(resolve() is Patient)", false, false},
        {"Observation.valueQuantityX", false, false}, /* no type name after the stem */
        {"Observation", true, true},                  /* the resource itself */
        {"Observation | Observation.component", true, true},
        {"Observation.where(status = 'final')", true, true}, /* a test on the input */
        {"%resource.code", true, true},
        {"Observation.basedOn.exists()", true, true}, /* false is a value */
    };
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        hub_fhirpath *fp;
        cr_assert_eq(hub_fhirpath_compile(C[i].expr, &fp, &err), HUB_OK, "%s", C[i].expr);
        cr_expect_eq(hub_fhirpath_keys_may_match(fp, OBS, 5), C[i].may, "%s", C[i].expr);
        /* the quick test never rules out what the full one lets through */
        if (C[i].may)
            cr_expect(hub_fhirpath_bits_may_match(fp, hub_fhirpath_key_bits(OBS, 5)), "%s",
                      C[i].expr);
        if (C[i].any) cr_expect(hub_fhirpath_bits_may_match(fp, 0), "%s on {}", C[i].expr);
        cr_expect_eq(hub_fhirpath_keys_may_match(fp, NULL, 0), C[i].any, "%s on {}", C[i].expr);
        hub_fhirpath_free(fp);
    }
}

/* Observation's code-value composites are the code rows paired with the
 * value rows (their items are the resource itself and their components
 * exactly those parameters' values), so the index pairs those rows
 * instead of evaluating them. code-value-string's second component is not
 * all of value-string (which also reads a CodeableConcept's text): it is
 * evaluated, like the composites over components. */
Test(search, composites_over_the_resource_pair_other_rows) {
    hub_err err;
    hub_fhir_defs *d;
    hub_fhir_sps *t;
    cr_assert_eq(hub_fhir_defs_load(R4, &d, &err), HUB_OK);
    cr_assert_eq(hub_fhir_sps_load(R4, &t, &err), HUB_OK, "%s", err.msg);
    static const char *const C[][3] = {
        {"code-value-quantity", "code", "value-quantity"},
        {"code-value-concept", "code", "value-concept"},
        {"code-value-date", "code", "value-date"},
        {"code-value-string", NULL, NULL},
        {"combo-code-value-quantity", NULL, NULL},
        {"component-code-value-quantity", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        const hub_fhir_sp *sp = hub_fhir_sp_find(t, "Observation", C[i][0]);
        cr_assert(sp, "%s", C[i][0]);
        cr_expect_str_eq(sp->pair[0] ? sp->pair[0] : "-", C[i][1] ? C[i][1] : "-", "%s", C[i][0]);
        cr_expect_str_eq(sp->pair[1] ? sp->pair[1] : "-", C[i][2] ? C[i][2] : "-", "%s", C[i][0]);
    }
    cr_expect_null(hub_fhir_sp_find(t, "ValueSet", "context-type-quantity")->pair[0]);
    json_t *obs = json_loads(
        "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":["
        "{\"system\":\"http://loinc.org\",\"code\":\"8480-6\"},{\"code\":\"sbp\"},"
        "{\"system\":\"urn:x\",\"code\":\"\"}]},\"valueQuantity\":{\"value\":120,"
        "\"unit\":\"mm[Hg]\"},\"component\":[{\"code\":{\"text\":\"c\"},"
        "\"valueString\":\"s\"}]}",
        0, NULL);
    cr_assert(obs);
    hub_arena a;
    hub_arena_init(&a, 4096);
    hub_store_token *rows;
    size_t n, got = 0;
    cr_assert_eq(hub_record_extract(d, t, &a, "Observation", obs, &rows, &n), HUB_OK);
    static const char *const WANT[] = {"code-value-quantity$8480-6|http://loinc.org",
                                       "code-value-quantity$sbp|"};
    for (size_t k = 0; k < n; k++) {
        if (strncmp(rows[k].param, "code-value-", 11) != 0) continue;
        cr_assert_lt(got, 2, "extra row %s", rows[k].param);
        cr_expect_str_eq(rows[k].param, WANT[got]);
        cr_expect_eq(rows[k].kind, HUB_IX_NUMBER);
        cr_expect(rows[k].num == 120 && strcmp(rows[k].value, "mm[Hg]") == 0);
        cr_expect(rows[k].shadow); /* searches read code and value-quantity rows */
        got++;
    }
    cr_expect_eq(got, 2);
    hub_arena_release(&a);
    json_decref(obs);
    hub_fhir_sps_free(t);
    hub_fhir_defs_free(d);
}

/* More index rows than one insert statement takes (16): every one is
 * stored, and an update replaces them all. */
Test(search, many_rows_of_one_resource, .init = up, .fini = down) {
    char body[8192];
    size_t o = (size_t)snprintf(body, sizeof body,
                                "{\"resourceType\":\"Patient\",\"identifier\":[");
    for (int i = 0; i < 40; i++)
        o += (size_t)snprintf(body + o, sizeof body - o, "%s{\"system\":\"urn:many\",\"value\":\"m%d\"}",
                              i ? "," : "", i);
    snprintf(body + o, sizeof body - o, "]}");
    put("Patient", "many", body);
    char ids[256], q[64];
    int status;
    static const int PROBE[] = {0, 15, 16, 17, 31, 32, 39};
    for (size_t i = 0; i < sizeof PROBE / sizeof PROBE[0]; i++) {
        snprintf(q, sizeof q, "identifier=urn:many|m%d", PROBE[i]);
        json_t *b = search("Patient", q, NULL, false, &status);
        ids_of(b, "match", ids, sizeof ids);
        cr_expect_str_eq(ids, "many", "%s", q);
        json_decref(b);
    }
    put("Patient", "many",
        "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:many\",\"value\":\"m39\"}]}");
    json_t *b = search("Patient", "identifier=urn:many|m20", NULL, false, &status);
    ids_of(b, "match", ids, sizeof ids);
    cr_expect_str_eq(ids, "", "a replaced row is gone");
    json_decref(b);
    b = search("Patient", "identifier=urn:many|m39", NULL, false, &status);
    ids_of(b, "match", ids, sizeof ids);
    cr_expect_str_eq(ids, "many");
    json_decref(b);
}

Test(search, conditional_operations_use_any_parameter, .init = up, .fini = down) {
    json_error_t je;
    /* conditional update by name and birth date: one match -> updated */
    json_t *res = json_loads("{\"resourceType\":\"Patient\",\"gender\":\"female\",\"active\":false}", 0, &je);
    hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .criteria = "family=muller&birthdate=1970-05",
                        .resource = res};
    hub_err err;
    cr_assert_eq(hub_record_apply(rec, &op, 1, false, &err), HUB_OK);
    cr_expect_eq(op.status, 200);
    cr_expect_str_eq(op.res.id, "p1");
    hub_record_op_release(&op);
    /* two matches -> 412 */
    hub_record_op op2 = {.kind = HUB_OP_UPDATE, .type = "Patient", .criteria = "gender=female",
                         .resource = res};
    cr_assert_eq(hub_record_apply(rec, &op2, 1, false, &err), HUB_OK);
    cr_expect_eq(op2.status, 412);
    hub_record_op_release(&op2);
    /* an unknown parameter -> 400, not ignored */
    hub_record_op op3 = {.kind = HUB_OP_DELETE, .type = "Patient", .criteria = "foo=bar"};
    cr_assert_eq(hub_record_apply(rec, &op3, 1, false, &err), HUB_OK);
    cr_expect_eq(op3.status, 400);
    hub_record_op_release(&op3);
    /* conditional create: If-None-Exist by a chain */
    json_t *obs = json_loads("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"}}", 0, &je);
    hub_record_op op4 = {.kind = HUB_OP_CREATE, .type = "Observation", .resource = obs,
                         .if_none_exist = "subject.name=smith&code=8867-4"};
    cr_assert_eq(hub_record_apply(rec, &op4, 1, false, &err), HUB_OK);
    cr_expect_eq(op4.status, 200);
    cr_expect_str_eq(op4.res.id, "o3");
    hub_record_op_release(&op4);
    json_decref(obs);
    json_decref(res);
}

/* ---- every listed search parameter against a brute-force filter ---------------- */

typedef struct {
    const char *code;
    char type[16];
} listed;

typedef struct {
    listed p[256];
    size_t n;
} listed_set;

static void on_listed(void *ud, const char *code, const char *type, const char *url) {
    listed_set *s = ud;
    (void)url;
    if (s->n < 256) {
        s->p[s->n].code = code;
        snprintf(s->p[s->n].type, sizeof s->p[s->n].type, "%s", type);
        s->n++;
    }
}

/* A query value for `row` of a parameter of type `t`, and whether another
 * row matches the same query (the brute-force filter). */
static bool value_for(const char *t, const hub_store_token *row, char *q, size_t cap) {
    const char *sys = row->system ? row->system : "";
    const char *val = row->value ? row->value : "";
    if (strpbrk(val, ",|\\$&=%+#") || strpbrk(sys, ",|\\$&=%+#")) return false;
    if (!strcmp(t, "token")) snprintf(q, cap, "%s|%s", sys, val);
    else if (!strcmp(t, "reference")) {
        if (*sys) snprintf(q, cap, "%s/%s", sys, val);
        else snprintf(q, cap, "%s", val);
    } else if (!strcmp(t, "string")) {
        size_t k = 0;
        while (val[k] && k < 3 && (unsigned char)val[k] < 0x80) k++;
        if (k == 0) return false;
        snprintf(q, cap, "%.*s", (int)k, val);
    } else if (!strcmp(t, "uri")) snprintf(q, cap, "%s", val);
    else if (!strcmp(t, "number") || !strcmp(t, "quantity")) snprintf(q, cap, "%.17g", row->num);
    else if (!strcmp(t, "date")) {
        char iso[32];
        hub_time_iso(row->lo, iso);
        snprintf(q, cap, "ge%s", iso);
    } else return false;
    return true;
}

/* Whether index row `r` is one of parameter `code` (a composite's rows
 * are named "<code>$<first component>"). */
static bool row_of(const hub_store_token *r, const char *code, const char *type) {
    if (strcmp(type, "composite") != 0) return strcmp(r->param, code) == 0;
    size_t n = strlen(code);
    return strncmp(r->param, code, n) == 0 && r->param[n] == '$';
}

static bool brute_match(const char *t, const hub_store_token *want, const hub_store_token *r) {
    if (!strcmp(t, "token")) return !strcmp(r->system, want->system) && !strcmp(r->value, want->value);
    if (!strcmp(t, "reference")) {
        if (*want->system) return !strcmp(r->system, want->system) && !strcmp(r->value, want->value);
        return !strcmp(r->value, want->value);
    }
    if (!strcmp(t, "string")) {
        size_t k = 0;
        while (want->value[k] && k < 3 && (unsigned char)want->value[k] < 0x80) k++;
        return strncmp(r->value, want->value, k) == 0;
    }
    if (!strcmp(t, "uri")) return !strcmp(r->value, want->value);
    if (!strcmp(t, "number") || !strcmp(t, "quantity")) return r->num == want->num;
    if (!strcmp(t, "date")) {
        int64_t slo = want->lo, shi = want->lo + 1;
        return r->hi > shi || (r->lo >= slo && r->hi <= shi);
    }
    return false;
}

Test(search, every_listed_parameter_matches_a_brute_force_filter, .init = up, .fini = down) {
    static const char *const TYPES[] = {"Patient", "Observation", "Practitioner"};
    size_t checked = 0, with_data = 0;
    for (size_t ti = 0; ti < 3; ti++) {
        const char *type = TYPES[ti];
        listed_set ls = {.n = 0};
        hub_record_search_params(rec, type, on_listed, &ls);
        cr_assert_gt(ls.n, 5, "%s lists its parameters", type);
        /* every resource of the type, with its rows */
        json_t *all[NFIX];
        hub_store_token *rows[NFIX];
        size_t nrows[NFIX], nres = 0;
        hub_arena a;
        hub_arena_init(&a, 65536);
        for (size_t f = 0; f < NFIX; f++) {
            if (strcmp(FIXTURES[f][0], type)) continue;
            json_error_t je;
            all[nres] = json_loads(FIXTURES[f][2], 0, &je);
            json_object_set_new(all[nres], "id", json_string(FIXTURES[f][1]));
            cr_assert_eq(hub_record_extract(defs, sps, &a, type, all[nres], &rows[nres], &nrows[nres]),
                         HUB_OK);
            nres++;
        }
        for (size_t i = 0; i < ls.n; i++) {
            const listed *p = &ls.p[i];
            if (!strcmp(p->code, "_id") || !strcmp(p->code, "_lastUpdated")) continue;
            const hub_store_token *want = NULL;
            for (size_t r = 0; r < nres && !want; r++)
                for (size_t k = 0; k < nrows[r]; k++)
                    if (row_of(&rows[r][k], p->code, p->type)) {
                        want = &rows[r][k];
                        break;
                    }
            char val[512], q[700];
            bool by_value = want && value_for(p->type, want, val, sizeof val);
            if (by_value) {
                with_data++;
                /* percent-encode what a query string cannot carry */
                size_t o = 0;
                o += (size_t)snprintf(q, sizeof q, "%s=", p->code);
                for (const char *c = val; *c && o + 4 < sizeof q; c++)
                    o += (size_t)snprintf(q + o, sizeof q - o, (*c == ' ' || *c == ':' || *c == '/') ? "%%%02X" : "%c",
                                          (unsigned char)*c);
            } else {
                snprintf(q, sizeof q, "%s:missing=false", p->code);
            }
            int st;
            json_t *b = search(type, q, NULL, true, &st);
            cr_assert_eq(st, 200, "%s?%s: %d", type, q, st);
            char got[1024], exp[1024];
            ids_of(b, "match", got, sizeof got);
            json_decref(b);
            const char *eids[NFIX];
            size_t ne = 0;
            for (size_t r = 0; r < nres; r++) {
                bool m = false;
                for (size_t k = 0; k < nrows[r] && !m; k++) {
                    if (!row_of(&rows[r][k], p->code, p->type)) continue;
                    m = by_value ? brute_match(p->type, want, &rows[r][k]) : true;
                }
                if (m) eids[ne++] = json_string_value(json_object_get(all[r], "id"));
            }
            qsort(eids, ne, sizeof *eids, cmp);
            size_t o = 0;
            exp[0] = '\0';
            for (size_t k = 0; k < ne; k++) o += (size_t)snprintf(exp + o, sizeof exp - o, "%s%s", k ? "," : "", eids[k]);
            cr_expect_str_eq(got, exp, "%s?%s", type, q);
            checked++;
        }
        for (size_t r = 0; r < nres; r++) json_decref(all[r]);
        hub_arena_release(&a);
    }
    cr_log_info("listed parameters run: %zu (%zu with a value from the data)", checked, with_data);
    cr_expect_gt(with_data, 25);
}

/* ---- system search, iterate, previous links, linked patients, $everything,
 * reindex ------------------------------------------------------------------- */

/* The match ids of a Bundle as "Type/id", sorted, comma-joined. */
static void refs_of(const json_t *b, const char *mode, char *out, size_t cap) {
    char ids[200][96];
    const char *p[200];
    size_t n = 0, i;
    const json_t *e;
    json_array_foreach(json_object_get(b, "entry"), i, e) {
        const char *m = json_string_value(json_object_get(json_object_get(e, "search"), "mode"));
        const json_t *res = json_object_get(e, "resource");
        if (m && strcmp(m, mode) == 0 && n < 200) {
            snprintf(ids[n], sizeof ids[n], "%s/%s",
                     json_string_value(json_object_get(res, "resourceType")),
                     json_string_value(json_object_get(res, "id")));
            p[n] = ids[n];
            n++;
        }
    }
    qsort(p, n, sizeof *p, cmp);
    out[0] = '\0';
    size_t o = 0;
    for (size_t k = 0; k < n; k++) o += (size_t)snprintf(out + o, cap - o, "%s%s", k ? "," : "", p[k]);
}

static const struct {
    const char *query, *expect;
} SYSTEM[] = {
    {"_type=Patient,Practitioner&name=doc", "Practitioner/dr1"},
    {"_id=p1,dr1,o2", "Observation/o2,Patient/p1,Practitioner/dr1"},
    {"_type=Patient&_id=p1,dr1", "Patient/p1"},
    {"_type=Observation,Patient&_tag=urn:tag|vip", "Patient/p4"},
    {"_type=Patient,Observation&_lastUpdated=lt2000", ""},
};

Test(search, system_search, .init = up, .fini = down) {
    char got[2048];
    for (size_t i = 0; i < sizeof SYSTEM / sizeof SYSTEM[0]; i++) {
        int st;
        json_t *b = search(NULL, SYSTEM[i].query, NULL, true, &st);
        cr_assert_eq(st, 200, "?%s: %d", SYSTEM[i].query, st);
        refs_of(b, "match", got, sizeof got);
        cr_expect_str_eq(got, SYSTEM[i].expect, "?%s", SYSTEM[i].query);
        size_t n = got[0] ? 1 : 0;
        for (const char *p = got; *p; p++) n += *p == ',';
        cr_expect_eq(json_integer_value(json_object_get(b, "total")), (json_int_t)n, "?%s total",
                     SYSTEM[i].query);
        json_decref(b);
    }
    int st;
    json_t *o = search(NULL, "_type=Nothing", NULL, true, &st);
    cr_expect_eq(st, 400);
    json_decref(o);
    o = search(NULL, "_type=Patient,Observation&gender=male", NULL, true, &st);
    cr_expect_eq(st, 400, "gender is not a parameter of Observation");
    json_decref(o);
    o = search(NULL, "_type=Patient&_sort=gender", NULL, true, &st);
    cr_expect_eq(st, 400);
    json_decref(o);
}

/* Follows next links from `q` (page size 3 or so), collecting Type/id. */
static size_t page_through(const char *type, const char *q, char seen[][96], size_t cap,
                           bool insert) {
    int st;
    json_t *b = search(type, q, NULL, true, &st);
    cr_assert_eq(st, 200, "%s", q);
    size_t n = 0;
    for (int page = 0; page < 40 && b; page++) {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(b, "entry"), i, e) {
            const json_t *res = json_object_get(e, "resource");
            char r[96];
            snprintf(r, sizeof r, "%s/%s", json_string_value(json_object_get(res, "resourceType")),
                     json_string_value(json_object_get(res, "id")));
            for (size_t k = 0; k < n; k++) cr_expect_str_neq(seen[k], r, "%s twice", r);
            cr_assert_lt(n, cap);
            snprintf(seen[n++], 96, "%s", r);
        }
        char *nq = next_cursor(b);
        json_decref(b);
        b = NULL;
        if (!nq) break;
        if (insert) {
            char id[16];
            snprintf(id, sizeof id, "late%d", page);
            put("Observation", id, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":"
                                   "{\"text\":\"x\"}}");
        }
        b = search(type, nq, NULL, true, &st);
        cr_assert_eq(st, 200, "page %d: %s", page, nq);
        free(nq);
    }
    return n;
}

Test(search, system_search_pages_across_types, .init = up, .fini = down) {
    char seen[64][96];
    size_t n = page_through(NULL, "_type=Patient,Observation&_count=4", seen, 64, true);
    cr_expect_eq(n, 10, "4 Patients and 6 Observations, each once (got %zu)", n);
    n = page_through(NULL, "_type=Patient,Observation&_count=3", seen, 64, false);
    /* the two written while paging (after pages 1 and 2) are there now */
    cr_expect_eq(n, 12, "a new search sees what was written: %zu", n);
}

Test(search, include_iterate, .init = up, .fini = down) {
    static const struct {
        const char *type, *query, *match, *include;
    } C[] = {
        {"Observation", "_id=o3&_include=Observation:patient", "Observation/o3", "Patient/p2"},
        {"Observation", "_id=o3&_include=Observation:patient&_include:iterate=Patient:general-practitioner",
         "Observation/o3", "Patient/p2,Practitioner/dr1"},
        /* dr1 is both o3's performer and p2's practitioner: once */
        {"Observation", "_id=o3&_include=Observation:performer&_include=Observation:patient"
                        "&_include:iterate=Patient:general-practitioner",
         "Observation/o3", "Patient/p2,Practitioner/dr1"},
        {"Practitioner", "_revinclude=Patient:general-practitioner", "Practitioner/dr1", "Patient/p2"},
        {"Practitioner", "_revinclude=Patient:general-practitioner&_revinclude:iterate=Observation:patient",
         "Practitioner/dr1", "Observation/o3,Observation/o6,Patient/p2"},
        {"Observation", "_id=o1&_include=Observation:patient&_revinclude:iterate=Observation:patient",
         "Observation/o1", "Observation/o2,Patient/p1"},
    };
    char got[1024];
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        int st;
        json_t *b = search(C[i].type, C[i].query, NULL, true, &st);
        cr_assert_eq(st, 200, "%s", C[i].query);
        refs_of(b, "match", got, sizeof got);
        cr_expect_str_eq(got, C[i].match, "%s", C[i].query);
        refs_of(b, "include", got, sizeof got);
        cr_expect_str_eq(got, C[i].include, "%s", C[i].query);
        json_decref(b);
    }
}

static char *link_query(const json_t *b, const char *rel) {
    size_t i;
    const json_t *l;
    json_array_foreach(json_object_get(b, "link"), i, l) {
        if (strcmp(json_string_value(json_object_get(l, "relation")), rel) == 0)
            return strdup(strchr(json_string_value(json_object_get(l, "url")), '?') + 1);
    }
    return NULL;
}

Test(search, previous_links_page_back, .init = up, .fini = down) {
    for (int i = 0; i < 7; i++) {
        char id[16];
        snprintf(id, sizeof id, "q%d", i);
        put("Patient", id, "{\"resourceType\":\"Patient\",\"gender\":\"male\"}");
    }
    /* 11 Patients by gender then id, 3 a page: walk forwards, then back */
    const char *first = "_count=3&_sort=-gender";
    int st;
    char pages[5][256];
    json_t *b = search("Patient", first, NULL, true, &st);
    cr_assert_null(link_query(b, "previous"), "the first page has no previous");
    int np = 0;
    char *q = NULL;
    for (;;) {
        ids_of(b, "match", pages[np], sizeof pages[np]);
        np++;
        free(q);
        q = link_query(b, "next");
        if (!q) break;
        json_decref(b);
        b = search("Patient", q, NULL, true, &st);
        cr_assert_eq(st, 200);
    }
    cr_assert_eq(np, 4);
    /* writes in between change nothing for this snapshot */
    put("Patient", "a0", "{\"resourceType\":\"Patient\",\"gender\":\"male\"}");
    for (int k = np - 2; k >= 0; k--) {
        char *pq = link_query(b, "previous");
        cr_assert_not_null(pq, "page %d has a previous link", k + 1);
        json_decref(b);
        b = search("Patient", pq, NULL, true, &st);
        cr_assert_eq(st, 200, "%s", pq);
        free(pq);
        char got[256];
        ids_of(b, "match", got, sizeof got);
        cr_expect_str_eq(got, pages[k], "page %d going back", k);
        char *nq = link_query(b, "next");
        cr_expect_not_null(nq, "a page gone back to has a next");
        free(nq);
    }
    cr_expect_null(link_query(b, "previous"), "back at the first page");
    json_decref(b);
}

/* The patient index of these tests: p1 is a golden record for p1 and p3. */
static hub_status golden(void *ud, const char *id, hub_arena *a, const char ***ids, size_t *n,
                         hub_err *err) {
    (void)ud;
    (void)err;
    const char **v = hub_arena_alloc(a, 2 * sizeof *v);
    v[0] = id;
    v[1] = "p3";
    *ids = v;
    *n = strcmp(id, "p1") == 0 ? 2 : 1;
    return HUB_OK;
}

Test(search, a_golden_patient_stands_for_its_linked_records, .init = up, .fini = down) {
    hub_record_set_patient_ids(rec, golden, NULL);
    static const struct {
        const char *type, *query, *expect;
    } C[] = {
        {"Observation", "patient=p1", "o1,o2,o4"},
        {"Observation", "patient=Patient/p1", "o1,o2,o4"},
        {"Observation", "subject=Patient/p1&code=29463-7", "o4"},
        {"Observation", "subject=Group/p1", ""},
        {"Observation", "patient=p2", "o3,o6"},
    };
    char got[512];
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        int st;
        json_t *b = search(C[i].type, C[i].query, NULL, true, &st);
        cr_assert_eq(st, 200);
        ids_of(b, "match", got, sizeof got);
        cr_expect_str_eq(got, C[i].expect, "%s?%s", C[i].type, C[i].query);
        json_decref(b);
    }
    int st;
    json_t *b = search("Observation", NULL, "p1", true, &st);
    ids_of(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "o1,o2,o4", "the compartment of a golden record");
    json_decref(b);
    /* conditional criteria name exactly what they match */
    hub_arena a;
    hub_arena_init(&a, 1024);
    hub_oo *oo = hub_oo_new();
    hub_record_op op = {.kind = HUB_OP_DELETE, .type = "Observation",
                        .criteria = "patient=p1&code=29463-7"};
    hub_err err;
    cr_assert_eq(hub_record_apply(rec, &op, 1, false, &err), HUB_OK);
    hub_record_op_release(&op);
    b = search("Observation", "_id=o4", NULL, true, &st);
    ids_of(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "o4", "o4 is p3's: not deleted by criteria naming p1");
    json_decref(b);
    hub_oo_free(oo);
    hub_arena_release(&a);
}

static json_t *everything(const char *id, const char *since, const char *types, int count,
                          const char *cursor, int *status) {
    hub_everything_req req = {.id = id, .since = since, .types = types, .count = count,
                              .cursor = cursor, .base = "http://h/fhir"};
    hub_buf out;
    hub_buf_init(&out);
    hub_oo *oo = NULL;
    hub_err err;
    cr_assert_eq(hub_record_everything(rec, &req, &out, status, &oo, &err), HUB_OK, "%s", err.msg);
    json_t *j;
    if (*status != 200) {
        cr_assert_not_null(oo);
        j = hub_oo_json(oo);
        hub_oo_free(oo);
    } else {
        json_error_t je;
        j = json_loadb(out.p, out.n, 0, &je);
        cr_assert_not_null(j, "%s", je.text);
    }
    hub_buf_release(&out);
    return j;
}

Test(search, patient_everything, .init = up, .fini = down) {
    int st;
    char got[1024];
    json_t *b = everything("p1", NULL, NULL, 0, NULL, &st);
    cr_assert_eq(st, 200);
    refs_of(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "Observation/o1,Observation/o2,Patient/p1");
    cr_expect_eq(json_integer_value(json_object_get(b, "total")), 3);
    json_decref(b);
    b = everything("p1", NULL, "Observation", 0, NULL, &st);
    refs_of(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "Observation/o1,Observation/o2");
    json_decref(b);
    b = everything("p1", NULL, "Practitioner", 0, NULL, &st);
    cr_expect_eq(st, 200, "a type outside the compartment: nothing");
    cr_expect_eq(json_integer_value(json_object_get(b, "total")), 0);
    json_decref(b);
    b = everything("p1", "2999-01-01T00:00:00Z", NULL, 0, NULL, &st);
    cr_expect_eq(st, 200);
    cr_expect_eq(json_integer_value(json_object_get(b, "total")), 0);
    json_decref(b);
    b = everything("p1", "2000-01-01T00:00:00+02:00", NULL, 0, NULL, &st);
    cr_expect_eq(json_integer_value(json_object_get(b, "total")), 3);
    char *self = link_query(b, "self");
    cr_expect_not_null(strstr(self, "_since=2000-01-01T00:00:00%2B02:00"), "%s", self);
    free(self);
    json_decref(b);

    /* the linked records too */
    hub_record_set_patient_ids(rec, golden, NULL);
    b = everything("p1", NULL, NULL, 0, NULL, &st);
    refs_of(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "Observation/o1,Observation/o2,Observation/o4,Patient/p1,Patient/p3");
    json_decref(b);

    /* paging: one a page, through next links */
    char seen[16][96];
    size_t n = 0;
    char *cursor = NULL;
    for (int page = 0; page < 10; page++) {
        b = everything("p1", NULL, NULL, 2, cursor, &st);
        cr_assert_eq(st, 200, "page %d", page);
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(b, "entry"), i, e) {
            const json_t *res = json_object_get(e, "resource");
            snprintf(seen[n++], 96, "%s/%s", json_string_value(json_object_get(res, "resourceType")),
                     json_string_value(json_object_get(res, "id")));
        }
        free(cursor);
        cursor = NULL;
        char *nq = link_query(b, "next");
        json_decref(b);
        if (!nq) break;
        cr_assert_not_null(strstr(nq, "_count=2"));
        char *c = strstr(nq, "_cursor=");
        cursor = strdup(c + 8);
        free(nq);
    }
    cr_expect_eq(n, 5, "every resource once over the pages: %zu", n);

    static const struct {
        const char *id, *since, *types, *cursor;
        int status;
    } BAD[] = {
        {"nobody", NULL, NULL, NULL, 404},
        {"p1", "yesterday", NULL, NULL, 400},
        {"p1", NULL, "Nothing", NULL, 400},
        {"p1", NULL, NULL, "junk", 400},
        {"p1", NULL, NULL, "999~1~", 400},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        b = everything(BAD[i].id, BAD[i].since, BAD[i].types, 0, BAD[i].cursor, &st);
        cr_expect_eq(st, BAD[i].status, "case %zu: %d", i, st);
        cr_expect_str_eq(json_string_value(json_object_get(b, "resourceType")), "OperationOutcome");
        char *t = json_dumps(b, 0);
        cr_expect_null(strstr(t, "yesterday"), "no value in the outcome");
        free(t);
        json_decref(b);
    }
}

Test(search, reindex_rebuilds_rows, .init = up, .fini = down) {
    /* A record without the search table writes identifier rows only (as
     * the resources written before a migration have fewer rows). */
    hub_record *bare;
    hub_err err;
    hub_record_cfg rc = {.store = store, .defs = defs, .max_bundle_entries = 100};
    cr_assert_eq(hub_record_open(&rc, &bare, &err), HUB_OK);
    json_t *res = json_pack("{s:s,s:s,s:s,s:s}", "resourceType", "Patient", "id", "old1",
                            "gender", "unknown", "birthDate", "1901-02-03");
    hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .id = "old1", .resource = res};
    cr_assert_eq(hub_record_apply(bare, &op, 1, false, &err), HUB_OK);
    hub_record_op_release(&op);
    json_decref(res);
    hub_record_close(bare);
    int st;
    char got[256];
    json_t *b = search("Patient", "birthdate=1901", NULL, true, &st);
    ids_of(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "", "no date rows yet");
    json_decref(b);
    int64_t n = 0;
    cr_assert_eq(hub_record_reindex(rec, "Patient", &n, &err), HUB_OK, "%s", err.msg);
    cr_expect_eq(n, 5);
    b = search("Patient", "birthdate=1901&gender=unknown", NULL, true, &st);
    ids_of(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "old1");
    json_decref(b);
    /* everything, and the other resources' rows are unchanged */
    hub_record_op del = {.kind = HUB_OP_DELETE, .type = "Patient", .id = "old1"};
    cr_assert_eq(hub_record_apply(rec, &del, 1, false, &err), HUB_OK);
    hub_record_op_release(&del);
    cr_assert_eq(hub_record_reindex(rec, NULL, &n, &err), HUB_OK, "%s", err.msg);
    cr_expect_eq(n, (int64_t)NFIX, "deleted resources are not reindexed");
    char all[2048];
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        b = search(CASES[i].type, CASES[i].query, NULL, true, &st);
        ids_of(b, "match", all, sizeof all);
        cr_expect_str_eq(all, CASES[i].expect, "after reindex: %s?%s", CASES[i].type, CASES[i].query);
        json_decref(b);
    }
}

/* ---- migration of a version-4 store ------------------------------------------------ */

/* The version-4 resource tables as they shipped (history, current rows,
 * index rows keyed by type and id strings). */
static const char V4_SCHEMA[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE messages(id INTEGER PRIMARY KEY, received_ms INTEGER NOT NULL,"
    " channel TEXT NOT NULL, peer TEXT NOT NULL DEFAULT '', identity TEXT NOT NULL DEFAULT '',"
    " sender TEXT NOT NULL DEFAULT '', control_id TEXT NOT NULL DEFAULT '',"
    " msg_type TEXT NOT NULL DEFAULT '', version TEXT NOT NULL DEFAULT '',"
    " status INTEGER NOT NULL, ack_code TEXT NOT NULL DEFAULT '', ack BLOB, errors TEXT,"
    " body BLOB NOT NULL);"
    "CREATE TABLE history(seq INTEGER PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL,"
    " version INTEGER NOT NULL, last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL, json BLOB);"
    "CREATE UNIQUE INDEX history_version ON history(type, id, version);"
    "CREATE INDEX history_type ON history(type, seq);"
    "CREATE TABLE resources(type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,"
    " last_updated INTEGER NOT NULL, deleted INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " PRIMARY KEY(type, id)) WITHOUT ROWID;"
    "CREATE TABLE res_tok(type TEXT NOT NULL, param TEXT NOT NULL, value TEXT NOT NULL,"
    " system TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY(type, param, value, system, id))"
    " WITHOUT ROWID;"
    "CREATE INDEX res_tok_res ON res_tok(type, id);"
    "CREATE TABLE res_date(type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,"
    " lo INTEGER NOT NULL, hi INTEGER NOT NULL, PRIMARY KEY(type, id, param, lo, hi)) WITHOUT ROWID;"
    "CREATE INDEX res_date_lo ON res_date(type, param, lo);"
    "CREATE INDEX res_date_hi ON res_date(type, param, hi);"
    "CREATE TABLE res_num(type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,"
    " num REAL NOT NULL, system TEXT NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY(type, id, param, num, system, value)) WITHOUT ROWID;"
    "CREATE INDEX res_num_value ON res_num(type, param, num);"
    "INSERT INTO meta VALUES('schema', '4');"
    "PRAGMA user_version=4;";

/* Writes the fixture `i` into a version-4 store the way version 4 did:
 * its one version, its current row and its index rows. */
static void v4_put(sqlite3 *db, size_t i, int64_t seq) {
    json_t *res = json_loads(FIXTURES[i][2], 0, NULL);
    cr_assert_not_null(res);
    json_object_set_new(res, "id", json_string(FIXTURES[i][1]));
    json_t *meta = json_object_get(res, "meta");
    if (meta == NULL) json_object_set_new(res, "meta", meta = json_object());
    json_object_set_new(meta, "versionId", json_string("1"));
    json_object_set_new(meta, "lastUpdated", json_string("2024-01-01T00:00:00.000Z"));
    char *js = json_dumps(res, JSON_COMPACT);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO history VALUES(?1, ?2, ?3, 1, 1704067200000, 0, ?4)",
                                    -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, seq);
    sqlite3_bind_text(st, 2, FIXTURES[i][0], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, FIXTURES[i][1], -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, js, (int)strlen(js), SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO resources VALUES(?1, ?2, 1, 1704067200000, 0, ?3)",
                                    -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, FIXTURES[i][0], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, FIXTURES[i][1], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, seq);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    hub_arena a;
    hub_arena_init(&a, 4096);
    hub_store_token *rows;
    size_t n;
    cr_assert_eq(hub_record_extract(defs, sps, &a, FIXTURES[i][0], res, &rows, &n), HUB_OK);
    for (size_t k = 0; k < n; k++) {
        const hub_store_token *t = &rows[k];
        if (t->shadow) continue;
        const char *sql = t->kind == HUB_IX_DATE     ? "INSERT OR IGNORE INTO res_date VALUES(?1, ?2, ?3, ?4, ?5)"
                          : t->kind == HUB_IX_NUMBER ? "INSERT OR IGNORE INTO res_num VALUES(?1, ?2, ?3, ?4, ?5, ?6)"
                                                     : "INSERT OR IGNORE INTO res_tok VALUES(?1, ?3, ?5, ?4, ?2)";
        cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        sqlite3_bind_text(st, 1, FIXTURES[i][0], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, FIXTURES[i][1], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, t->param, -1, SQLITE_STATIC);
        if (t->kind == HUB_IX_DATE) {
            sqlite3_bind_int64(st, 4, t->lo);
            sqlite3_bind_int64(st, 5, t->hi);
        } else if (t->kind == HUB_IX_NUMBER) {
            sqlite3_bind_double(st, 4, t->num);
            sqlite3_bind_text(st, 5, t->system ? t->system : "", -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 6, t->value ? t->value : "", -1, SQLITE_STATIC);
        } else {
            sqlite3_bind_text(st, 4, t->system ? t->system : "", -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 5, t->value ? t->value : "", -1, SQLITE_STATIC);
        }
        cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
    }
    hub_arena_release(&a);
    free(js);
    json_decref(res);
}

/* Opens the store in dir again (migrating it) and checks every case of
 * CASES finds what it found before. */
static void reopen_searching_the_same(void) {
    hub_err err;
    hub_store_cfg sc = {.dir = dir};
    cr_assert_eq(hub_store_open(&sc, &store, &err), HUB_OK, "%s", err.msg);
    hub_record_cfg rc = {.store = store, .defs = defs, .search = sps, .max_bundle_entries = 100};
    cr_assert_eq(hub_record_open(&rc, &rec, &err), HUB_OK, "%s", err.msg);
    char got[2048];
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        int st;
        json_t *b = search(CASES[i].type, CASES[i].query, NULL, true, &st);
        cr_assert_eq(st, 200, "%s?%s", CASES[i].type, CASES[i].query);
        ids_of(b, "match", got, sizeof got);
        cr_expect_str_eq(got, CASES[i].expect, "migrated: %s?%s", CASES[i].type, CASES[i].query);
        json_decref(b);
    }
}

/* A store written by version 4 (index rows keyed by type and id strings)
 * migrates to integer keys when opened, and every search of the table
 * finds what it finds on a store written by this version; writes go on. */
Test(search, a_version_4_store_migrates_and_searches_the_same) {
    hub_err err;
    hub_test_tmpdir(dir);
    cr_assert_eq(hub_fhir_defs_load(R4, &defs, &err), HUB_OK, "%s", err.msg);
    cr_assert_eq(hub_fhir_sps_load(R4, &sps, &err), HUB_OK, "%s", err.msg);
    char path[300];
    snprintf(path, sizeof path, "%s/hub.db", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, V4_SCHEMA, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    for (size_t i = 0; i < NFIX; i++) v4_put(db, i, (int64_t)(i + 1) * 3);
    cr_assert_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    reopen_searching_the_same();
    /* updates replace the migrated rows; new resources get rows too */
    put("Patient", "p1", "{\"resourceType\":\"Patient\",\"gender\":\"unknown\"}");
    put("Patient", "new1", "{\"resourceType\":\"Patient\",\"gender\":\"unknown\"}");
    int st;
    char got[2048];
    json_t *b = search("Patient", "gender=unknown", NULL, true, &st);
    ids_of(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "new1,p1");
    json_decref(b);

    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(db, "SELECT (SELECT value FROM meta WHERE key = 'schema'), "
                           "(SELECT count(*) FROM sqlite_schema WHERE name = 'res_tok'), "
                           "(SELECT group_concat(name) FROM sqlite_schema WHERE type = 'index' "
                           "AND tbl_name = 'resources')", -1, &q, NULL);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_expect_str_eq((const char *)sqlite3_column_text(q, 0), "5");
    cr_expect_eq(sqlite3_column_int(q, 1), 0, "the version-4 tables are gone");
    /* version 5's (rid) index gave way to the one searches read (seq...) */
    cr_expect_str_eq((const char *)sqlite3_column_text(q, 2), "resources_cur");
    sqlite3_finalize(q);
    sqlite3_close(db);
    down();
}

/* ---- dates found through ix_date_lo and the partial ix_date_long ------- */

/* Observation dates of every shape: precisions from the year to the
 * millisecond, periods short and long, open at either end, backwards. */
static const char *const DATE_SHAPES[][2] = {
    {"dy", "\"effectiveDateTime\":\"2024\""},
    {"dm", "\"effectiveDateTime\":\"2024-05\""},
    {"dd", "\"effectiveDateTime\":\"2024-05-17\""},
    {"ds", "\"effectiveDateTime\":\"2024-05-17T08:30:00Z\""},
    {"dms", "\"effectiveDateTime\":\"2024-05-17T08:30:00.250Z\""},
    {"dz", "\"effectiveDateTime\":\"2024-05-17T23:30:00-05:00\""},
    {"dbefore", "\"effectiveDateTime\":\"2024-05-16T23:59:59Z\""},
    {"dafter", "\"effectiveDateTime\":\"2024-05-18T00:00:00Z\""},
    {"dold", "\"effectiveDateTime\":\"2023-12-31\""},
    {"dnew", "\"effectiveDateTime\":\"2025-01-01T00:00:00Z\""},
    {"pshort", "\"effectivePeriod\":{\"start\":\"2024-05-17T08:00:00Z\",\"end\":\"2024-05-17T09:00:00Z\"}"},
    {"pday", "\"effectivePeriod\":{\"start\":\"2024-05-17\",\"end\":\"2024-05-17\"}"},
    {"plong", "\"effectivePeriod\":{\"start\":\"2024-05-10T00:00:00Z\",\"end\":\"2024-05-20T00:00:00Z\"}"},
    {"popenend", "\"effectivePeriod\":{\"start\":\"2024-05-18\"}"},
    {"popenstart", "\"effectivePeriod\":{\"end\":\"2024-05-16\"}"},
    {"pdays", "\"effectivePeriod\":{\"start\":\"2024-05-16T12:00:00Z\",\"end\":\"2024-05-17T12:00:01Z\"}"},
    {"pback", "\"effectivePeriod\":{\"start\":\"2024-05-18\",\"end\":\"2024-05-16\"}"},
};
#define NSHAPES (sizeof DATE_SHAPES / sizeof DATE_SHAPES[0])

/* The specification's prefix semantics on one row, written out here as
 * the oracle: the resource's [lo, hi) against the search's [l, h). */
static bool date_row_matches(int64_t lo, int64_t hi, const char *prefix, int64_t l, int64_t h) {
    if (!strcmp(prefix, "ne")) return !(lo >= l && hi <= h);
    if (!strcmp(prefix, "gt")) return hi > h;
    if (!strcmp(prefix, "lt")) return lo < l;
    if (!strcmp(prefix, "ge")) return hi > h || (lo >= l && hi <= h);
    if (!strcmp(prefix, "le")) return lo < l || (lo >= l && hi <= h);
    if (!strcmp(prefix, "sa")) return lo >= h;
    if (!strcmp(prefix, "eb")) return hi <= l;
    if (!strcmp(prefix, "ap")) {
        int64_t now = hub_now_ms();
        int64_t d = (l > now ? l - now : now - l) / 10;
        if (d < 86400000) d = 86400000;
        return lo < h + d && hi > l - d;
    }
    return lo >= l && hi <= h;
}

/* The ids whose date rows match, from the rows the index extraction makes
 * (sorted, as ids_of). */
static void dates_brute(const char *prefix, const char *value, char *out, size_t cap) {
    int64_t l, h;
    cr_assert_eq(hub_fhir_date_range(value, strlen(value), &l, &h), HUB_OK, "%s", value);
    out[0] = '\0';
    size_t o = 0;
    const char *ids[NSHAPES];
    size_t n = 0;
    for (size_t i = 0; i < NSHAPES; i++) {
        char body[512];
        snprintf(body, sizeof body, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},%s}",
                 DATE_SHAPES[i][1]);
        json_t *res = json_loads(body, 0, NULL);
        hub_arena a;
        hub_arena_init(&a, 4096);
        hub_store_token *rows;
        size_t nrows;
        cr_assert_eq(hub_record_extract(defs, sps, &a, "Observation", res, &rows, &nrows), HUB_OK);
        bool hit = false;
        for (size_t k = 0; k < nrows && !hit; k++)
            hit = rows[k].kind == HUB_IX_DATE && !strcmp(rows[k].param, "date") &&
                  date_row_matches(rows[k].lo, rows[k].hi, prefix, l, h);
        if (hit) ids[n++] = DATE_SHAPES[i][0];
        hub_arena_release(&a);
        json_decref(res);
    }
    qsort(ids, n, sizeof *ids, cmp);
    for (size_t k = 0; k < n; k++) o += (size_t)snprintf(out + o, cap - o, "%s%s", k ? "," : "", ids[k]);
}

/* Rows up to a day long have no entry in the (pid, hi) index: every
 * prefix, at every precision of the search's value, finds what the
 * prefix's definition finds on the extracted rows, whichever index a
 * search reads (alone, the date drives; with a status, it is probed). */
Test(search, dates_short_and_long_match_every_prefix) {
    hub_err err;
    hub_test_tmpdir(dir);
    hub_store_cfg sc = {.dir = dir};
    cr_assert_eq(hub_store_open(&sc, &store, &err), HUB_OK, "%s", err.msg);
    cr_assert_eq(hub_fhir_defs_load(R4, &defs, &err), HUB_OK, "%s", err.msg);
    cr_assert_eq(hub_fhir_sps_load(R4, &sps, &err), HUB_OK, "%s", err.msg);
    hub_record_cfg rc = {.store = store, .defs = defs, .search = sps, .max_bundle_entries = 100};
    cr_assert_eq(hub_record_open(&rc, &rec, &err), HUB_OK, "%s", err.msg);
    for (size_t i = 0; i < NSHAPES; i++) {
        char body[512];
        snprintf(body, sizeof body, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},%s}",
                 DATE_SHAPES[i][1]);
        put("Observation", DATE_SHAPES[i][0], body);
    }
    static const char *const PREFIXES[] = {"", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"};
    static const char *const VALUES[] = {"2024", "2024-05", "2024-05-17", "2024-05-16",
                                         "2024-05-18", "2024-05-17T08:30:00Z",
                                         "2024-05-17T08:30:00.250Z", "2024-05-16T23:00:00Z",
                                         "2024-05-17T10:30:00%2B02:00"};
    int nonempty = 0, checked = 0;
    for (size_t p = 0; p < sizeof PREFIXES / sizeof PREFIXES[0]; p++) {
        for (size_t v = 0; v < sizeof VALUES / sizeof VALUES[0]; v++) {
            char value[64], q[160], got[512], want[512];
            snprintf(value, sizeof value, "%s", VALUES[v]);
            char *plus = strstr(value, "%2B");
            if (plus) memmove(plus + 1, plus + 3, strlen(plus + 3) + 1), *plus = '+';
            dates_brute(PREFIXES[p][0] ? PREFIXES[p] : "eq", value, want, sizeof want);
            nonempty += want[0] != '\0';
            for (int probed = 0; probed < 2; probed++) {
                snprintf(q, sizeof q, "date=%s%s%s", PREFIXES[p], VALUES[v],
                         probed ? "&status=final" : "");
                int st;
                json_t *b = search("Observation", q, NULL, true, &st);
                cr_assert_eq(st, 200, "%s", q);
                ids_of(b, "match", got, sizeof got);
                cr_expect_str_eq(got, want, "Observation?%s", q);
                json_decref(b);
                checked++;
            }
        }
    }
    cr_expect_gt(nonempty, 60, "the grid finds something for most queries (%d)", nonempty);
    cr_expect_eq(checked, 180);
    down();
}

/* A store of the previous resources schema (every date row in a (pid, hi)
 * index) moves to the partial index when opened, and searches the same. */
Test(search, a_store_with_every_date_in_the_hi_index_migrates) {
    up();
    hub_record_close(rec);
    hub_store_close(store);
    char path[300];
    snprintf(path, sizeof path, "%s/hub.db", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "DROP INDEX ix_date_long;"
                              "CREATE INDEX ix_date_hi ON ix_date(pid, hi);"
                              "UPDATE meta SET value = '1' WHERE key = 'schema.resources';",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
    reopen_searching_the_same();
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(db, "SELECT (SELECT value FROM meta WHERE key = 'schema.resources'), "
                           "(SELECT group_concat(name) FROM (SELECT name FROM sqlite_schema "
                           "WHERE type = 'index' AND tbl_name = 'ix_date' ORDER BY name))",
                       -1, &q, NULL);
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    cr_expect_str_eq((const char *)sqlite3_column_text(q, 0), "2");
    cr_expect_str_eq((const char *)sqlite3_column_text(q, 1), "ix_date_lo,ix_date_long");
    sqlite3_finalize(q);
    sqlite3_close(db);
    down();
}
