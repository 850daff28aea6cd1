/* The FHIR REST API over real sockets against a spawned `hub serve`: every
 * interaction, header and error status of issue 5. */
#include "fhir_test.h"
#include "hub_test.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define JSON_CT "Content-Type: application/fhir+json\r\n"
#define XML_CT "Content-Type: application/fhir+xml\r\n"

static int P(void) { return hub_test_http_port(); }

static int req(const char *method, const char *path, const char *hdrs, const char *body,
               ft_resp *r) {
    return ft_req(P(), method, path, hdrs, body, body ? strlen(body) : 0, r);
}

/* Creates a resource; its id into `id`. */
static void create(const char *type, const char *body, char id[72]) {
    char path[128];
    snprintf(path, sizeof path, "/fhir/%s", type);
    ft_resp r;
    cr_assert_eq(req("POST", path, JSON_CT, body, &r), 201, "%s", r.body.p);
    json_t *j = ft_json(&r);
    cr_assert_not_null(j);
    snprintf(id, 72, "%s", json_string_value(json_object_get(j, "id")));
    cr_assert(id[0]);
    json_decref(j);
    ft_release(&r);
}

static const char PATIENT[] =
    "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:test:mrn\","
    "\"value\":\"M-1\"}],\"name\":[{\"family\":\"Testperson\",\"given\":[\"Ann\"]}],"
    "\"gender\":\"female\",\"birthDate\":\"1980-02-03\"}";

/* meta.versionId of a resource (NULL when absent). */
static const char *version_of(const json_t *j) {
    return json_string_value(json_object_get(json_object_get(j, "meta"), "versionId"));
}

static void assert_oo(const ft_resp *r) {
    json_t *j = ft_json(r);
    cr_assert_not_null(j, "not JSON: %s", r->body.p);
    cr_assert_str_eq(json_string_value(json_object_get(j, "resourceType")),
                     "OperationOutcome", "%s", r->body.p);
    cr_assert(json_array_size(json_object_get(j, "issue")) > 0);
    json_decref(j);
}

TestSuite(fhir_rest, .init = hub_test_up, .fini = hub_test_down, .timeout = 120);

Test(fhir_rest, metadata) {
    ft_resp r;
    cr_assert_eq(req("GET", "/fhir/metadata", NULL, NULL, &r), 200);
    char ct[128];
    cr_assert_not_null(ft_header(&r, "Content-Type", ct, sizeof ct));
    cr_assert(strstr(ct, "application/fhir+json"), "%s", ct);
    json_t *j = ft_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "resourceType")),
                     "CapabilityStatement");
    cr_assert_str_eq(json_string_value(json_object_get(j, "fhirVersion")), "4.0.1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "kind")), "instance");
    json_t *rest = json_array_get(json_object_get(j, "rest"), 0);
    cr_assert(json_array_size(json_object_get(rest, "resource")) >= 140,
              "every R4 resource type");
    json_decref(j);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/metadata?_format=xml", NULL, NULL, &r), 200);
    cr_assert(strstr(r.body.p, "<CapabilityStatement"), "%s", r.body.p);
    ft_release(&r);
    cr_assert_eq(req("POST", "/fhir/metadata", JSON_CT, "{}", &r), 405);
    assert_oo(&r);
    ft_release(&r);
}

Test(fhir_rest, unknown_operations_are_404_with_an_outcome) {
    ft_resp r;
    cr_assert_eq(req("GET", "/fhir/$nope", NULL, NULL, &r), 404);
    assert_oo(&r);
    cr_assert(strstr(ft_issue(&r, "diagnostics"), "$nope"));
    ft_release(&r);
    cr_assert_eq(req("POST", "/fhir/Patient/$nope", JSON_CT, "{}", &r), 404);
    assert_oo(&r);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/Patient/p1/$nope", NULL, NULL, &r), 404);
    assert_oo(&r);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/NoSuchType/$nope", NULL, NULL, &r), 404);
    assert_oo(&r);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/Patient/bad%20id/$nope", NULL, NULL, &r), 400);
    assert_oo(&r);
    ft_release(&r);
}

Test(fhir_rest, create_read_headers) {
    ft_resp r;
    cr_assert_eq(req("POST", "/fhir/Patient", JSON_CT, PATIENT, &r), 201, "%s", r.body.p);
    char loc[256], etag[64], lm[64];
    cr_assert_not_null(ft_header(&r, "Location", loc, sizeof loc));
    cr_assert_not_null(ft_header(&r, "ETag", etag, sizeof etag));
    cr_assert_not_null(ft_header(&r, "Last-Modified", lm, sizeof lm));
    cr_assert_str_eq(etag, "W/\"1\"");
    cr_assert(strstr(lm, " GMT"), "%s", lm);
    json_t *c = ft_json(&r);
    const char *id = json_string_value(json_object_get(c, "id"));
    cr_assert_not_null(id);
    char want[256];
    snprintf(want, sizeof want, "http://127.0.0.1:%d/fhir/Patient/%s/_history/1", P(), id);
    cr_assert_str_eq(loc, want);
    cr_assert_str_eq(version_of(c), "1");
    cr_assert_not_null(json_object_get(json_object_get(c, "meta"), "lastUpdated"));
    ft_release(&r);

    char path[160];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    cr_assert_eq(req("GET", path, NULL, NULL, &r), 200);
    json_t *g = ft_json(&r);
    cr_assert(json_equal(g, c), "read back equals the created one");
    cr_assert_not_null(ft_header(&r, "ETag", etag, sizeof etag));
    cr_assert_str_eq(etag, "W/\"1\"");
    cr_assert_not_null(ft_header(&r, "Last-Modified", lm, sizeof lm));
    json_t *a = ft_strip_meta(g, true), *b0 = json_loads(PATIENT, 0, NULL);
    /* Version 1 is the body as sent plus the patient index's link to the
     * person's golden record (in the same write: no second version). */
    const char *golden = ft_drop_golden_link(a);
    cr_assert_not_null(golden, "one refer link to a golden Patient");
    cr_assert(json_equal(a, b0), "the body as sent, meta, id and that link aside");
    snprintf(path, sizeof path, "/fhir/%s", golden);
    ft_resp gr;
    cr_assert_eq(req("GET", path, NULL, NULL, &gr), 200, "the golden exists");
    ft_release(&gr);
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    json_decref(a);
    json_decref(b0);
    json_decref(g);
    ft_release(&r);

    /* An id in a create's body is ignored: the server assigns one. */
    cr_assert_eq(req("POST", "/fhir/Patient", JSON_CT,
                     "{\"resourceType\":\"Patient\",\"id\":\"mine\"}", &r), 201);
    json_t *m = ft_json(&r);
    cr_assert_str_neq(json_string_value(json_object_get(m, "id")), "mine");
    json_decref(m);
    ft_release(&r);
    json_decref(c);
}

Test(fhir_rest, update_and_create_on_update) {
    char id[72];
    create("Patient", PATIENT, id);
    char path[160], body[512];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"gender\":\"male\"}", id);
    ft_resp r;
    cr_assert_eq(req("PUT", path, JSON_CT, body, &r), 200, "%s", r.body.p);
    char etag[64], cl[256];
    cr_assert_str_eq(ft_header(&r, "ETag", etag, sizeof etag), "W/\"2\"");
    cr_assert_not_null(ft_header(&r, "Content-Location", cl, sizeof cl));
    cr_assert(strstr(cl, "/_history/2"), "%s", cl);
    json_t *j = ft_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "gender")), "male");
    cr_assert_null(json_object_get(j, "name"), "an update replaces the whole resource");
    json_decref(j);
    ft_release(&r);

    /* PUT with a client id that does not exist yet creates it. */
    cr_assert_eq(req("PUT", "/fhir/Patient/client-chosen-1", JSON_CT,
                     "{\"resourceType\":\"Patient\",\"id\":\"client-chosen-1\"}", &r),
                 201, "%s", r.body.p);
    char loc[256];
    cr_assert_not_null(ft_header(&r, "Location", loc, sizeof loc));
    cr_assert(strstr(loc, "/fhir/Patient/client-chosen-1/_history/1"), "%s", loc);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/Patient/client-chosen-1", NULL, NULL, &r), 200);
    ft_release(&r);
}

Test(fhir_rest, vread_and_history_instance) {
    char id[72];
    create("Patient", PATIENT, id);
    char path[200], body[256];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"active\":true}", id);
    ft_resp r;
    cr_assert_eq(req("PUT", path, JSON_CT, body, &r), 200);
    ft_release(&r);
    snprintf(path, sizeof path, "/fhir/Patient/%s/_history/1", id);
    cr_assert_eq(req("GET", path, NULL, NULL, &r), 200);
    json_t *j = ft_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "gender")), "female");
    cr_assert_str_eq(version_of(j), "1");
    char etag[64];
    cr_assert_str_eq(ft_header(&r, "ETag", etag, sizeof etag), "W/\"1\"");
    json_decref(j);
    ft_release(&r);
    snprintf(path, sizeof path, "/fhir/Patient/%s/_history/7", id);
    cr_assert_eq(req("GET", path, NULL, NULL, &r), 404);
    assert_oo(&r);
    ft_release(&r);
    snprintf(path, sizeof path, "/fhir/Patient/%s/_history/x", id);
    cr_assert_eq(req("GET", path, NULL, NULL, &r), 404);
    ft_release(&r);

    snprintf(path, sizeof path, "/fhir/Patient/%s/_history", id);
    cr_assert_eq(req("GET", path, NULL, NULL, &r), 200);
    j = ft_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "history");
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 2);
    json_t *e = json_object_get(j, "entry");
    cr_assert_eq(json_array_size(e), 2);
    json_t *first = json_object_get(json_array_get(e, 0), "resource");
    cr_assert_str_eq(version_of(first), "2", "newest first");
    json_decref(j);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/Patient/never-was/_history", NULL, NULL, &r), 404);
    assert_oo(&r);
    ft_release(&r);
}

/* Practitioners, not Patients: a Patient write also writes its golden
 * record's version (the patient index; tests/e2e/test_mpi.c counts those). */
Test(fhir_rest, history_paging_since_type_system) {
    char id[72];
    for (int i = 0; i < 5; i++)
        create("Practitioner",
               "{\"resourceType\":\"Practitioner\",\"name\":[{\"family\":\"Osler\"}]}", id);
    create("Observation",
           "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"}}", id);
    ft_resp r;
    cr_assert_eq(req("GET", "/fhir/Practitioner/_history?_count=2", NULL, NULL, &r), 200);
    json_t *j = ft_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "entry")), 2);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 5);
    /* Follow the next links to the end: 5 versions, each once. */
    int seen = 2, pages = 1;
    for (;;) {
        const char *next = NULL;
        json_t *l;
        size_t k;
        json_array_foreach(json_object_get(j, "link"), k, l) {
            if (strcmp(json_string_value(json_object_get(l, "relation")), "next") == 0)
                next = json_string_value(json_object_get(l, "url"));
        }
        if (next == NULL) break;
        const char *rel = strstr(next, "/fhir/");
        cr_assert_not_null(rel, "%s", next);
        ft_resp r2;
        cr_assert_eq(req("GET", rel, NULL, NULL, &r2), 200);
        json_decref(j);
        j = ft_json(&r2);
        ft_release(&r2);
        seen += (int)json_array_size(json_object_get(j, "entry"));
        cr_assert(++pages < 10);
    }
    cr_assert_eq(seen, 5);
    cr_assert_eq(pages, 3);
    json_decref(j);
    ft_release(&r);

    cr_assert_eq(req("GET", "/fhir/_history", NULL, NULL, &r), 200);
    j = ft_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "total")), 6);
    json_decref(j);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/_history?_since=2999-01-01T00:00:00Z", NULL, NULL, &r), 200);
    j = ft_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "entry")), 0);
    json_decref(j);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/_history?_since=2000-01-01", NULL, NULL, &r), 200);
    j = ft_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "entry")), 6);
    json_decref(j);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/_history?_since=yesterday", NULL, NULL, &r), 400);
    cr_assert_str_eq(ft_issue(&r, "expression"), "_since");
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/_history?_count=-1", NULL, NULL, &r), 400);
    ft_release(&r);
}

Test(fhir_rest, if_match) {
    char id[72];
    create("Patient", PATIENT, id);
    char path[160], body[256];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"active\":true}", id);
    ft_resp r;
    cr_assert_eq(req("PUT", path, JSON_CT "If-Match: W/\"1\"\r\n", body, &r), 200, "%s", r.body.p);
    ft_release(&r);
    cr_assert_eq(req("PUT", path, JSON_CT "If-Match: W/\"1\"\r\n", body, &r), 412, "%s", r.body.p);
    assert_oo(&r);
    ft_release(&r);
    cr_assert_eq(req("DELETE", path, "If-Match: W/\"1\"\r\n", NULL, &r), 412);
    ft_release(&r);
    cr_assert_eq(req("PATCH", path,
                     "Content-Type: application/json-patch+json\r\nIf-Match: W/\"9\"\r\n",
                     "[{\"op\":\"replace\",\"path\":\"/active\",\"value\":false}]", &r), 412);
    ft_release(&r);
    cr_assert_eq(req("GET", path, NULL, NULL, &r), 200);
    char etag[64];
    cr_assert_str_eq(ft_header(&r, "ETag", etag, sizeof etag), "W/\"2\"", "nothing changed");
    ft_release(&r);
}

Test(fhir_rest, conditional_reads) {
    char id[72];
    create("Patient", PATIENT, id);
    char path[160];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    ft_resp r;
    cr_assert_eq(req("GET", path, "If-None-Match: W/\"1\"\r\n", NULL, &r), 304);
    cr_assert_eq(r.body.n, 0);
    ft_release(&r);
    cr_assert_eq(req("GET", path, "If-None-Match: W/\"2\"\r\n", NULL, &r), 200);
    ft_release(&r);
    cr_assert_eq(req("GET", path, "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n",
                     NULL, &r), 304);
    ft_release(&r);
    cr_assert_eq(req("GET", path, "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n",
                     NULL, &r), 200);
    char lm[64], hdr[128];
    cr_assert_not_null(ft_header(&r, "Last-Modified", lm, sizeof lm));
    ft_release(&r);
    /* Its own Last-Modified: not modified since. */
    snprintf(hdr, sizeof hdr, "If-Modified-Since: %s\r\n", lm);
    cr_assert_eq(req("GET", path, hdr, NULL, &r), 304);
    ft_release(&r);
}

Test(fhir_rest, prefer) {
    ft_resp r;
    cr_assert_eq(req("POST", "/fhir/Patient", JSON_CT "Prefer: return=minimal\r\n", PATIENT, &r),
                 201);
    cr_assert_eq(r.body.n, 0, "%s", r.body.p);
    char loc[256];
    cr_assert_not_null(ft_header(&r, "Location", loc, sizeof loc));
    ft_release(&r);
    cr_assert_eq(req("POST", "/fhir/Patient", JSON_CT "Prefer: return=OperationOutcome\r\n",
                     PATIENT, &r), 201);
    assert_oo(&r);
    ft_release(&r);
    cr_assert_eq(req("POST", "/fhir/Patient", JSON_CT "Prefer: return=representation\r\n",
                     PATIENT, &r), 201);
    json_t *j = ft_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "resourceType")), "Patient");
    json_decref(j);
    ft_release(&r);
}

Test(fhir_rest, delete) {
    char id[72];
    create("Patient", PATIENT, id);
    char path[160];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    ft_resp r;
    int st = req("DELETE", path, NULL, NULL, &r);
    cr_assert(st == 204 || st == 200, "%d", st);
    ft_release(&r);
    cr_assert_eq(req("GET", path, NULL, NULL, &r), 410);
    assert_oo(&r);
    cr_assert_str_eq(ft_issue(&r, "code"), "deleted");
    ft_release(&r);
    /* The versions stay in history, the delete on top. */
    char hp[200];
    snprintf(hp, sizeof hp, "%s/_history", path);
    cr_assert_eq(req("GET", hp, NULL, NULL, &r), 200);
    json_t *j = ft_json(&r);
    json_t *e = json_object_get(j, "entry");
    cr_assert_eq(json_array_size(e), 2, "%s", r.body.p);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(e, 0), "request"), "method")),
                     "DELETE");
    json_decref(j);
    ft_release(&r);
    snprintf(hp, sizeof hp, "%s/_history/1", path);
    cr_assert_eq(req("GET", hp, NULL, NULL, &r), 200, "an old version stays readable");
    ft_release(&r);
    /* A deleted resource can be brought back with an update. */
    char body[256];
    snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"id\":\"%s\"}", id);
    st = req("PUT", path, JSON_CT, body, &r);
    cr_assert(st == 200 || st == 201, "%d %s", st, r.body.p);
    ft_release(&r);
    cr_assert_eq(req("DELETE", "/fhir/Patient", NULL, NULL, &r), 405);
    assert_oo(&r);
    char allow[64];
    cr_assert_not_null(ft_header(&r, "Allow", allow, sizeof allow));
    ft_release(&r);
}

Test(fhir_rest, patch) {
    char id[72];
    create("Patient", PATIENT, id);
    char path[160];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    ft_resp r;
    cr_assert_eq(req("PATCH", path, "Content-Type: application/json-patch+json\r\n",
                     "[{\"op\":\"replace\",\"path\":\"/gender\",\"value\":\"male\"},"
                     "{\"op\":\"add\",\"path\":\"/name/0/given/-\",\"value\":\"Beth\"}]", &r),
                 200, "%s", r.body.p);
    json_t *j = ft_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "gender")), "male");
    cr_assert_eq(json_array_size(json_object_get(
                     json_array_get(json_object_get(j, "name"), 0), "given")), 2);
    cr_assert_str_eq(version_of(j), "2");
    json_decref(j);
    ft_release(&r);
    /* Wrong media type, malformed patch, a failing test, an invalid result. */
    cr_assert_eq(req("PATCH", path, JSON_CT, "[]", &r), 415);
    assert_oo(&r);
    ft_release(&r);
    cr_assert_eq(req("PATCH", path, "Content-Type: application/json-patch+json\r\n",
                     "{\"op\":\"x\"}", &r), 400);
    assert_oo(&r);
    ft_release(&r);
    int st = req("PATCH", path, "Content-Type: application/json-patch+json\r\n",
                 "[{\"op\":\"test\",\"path\":\"/gender\",\"value\":\"female\"}]", &r);
    cr_assert(st == 409 || st == 422 || st == 412, "%d", st);
    assert_oo(&r);
    ft_release(&r);
    st = req("PATCH", path, "Content-Type: application/json-patch+json\r\n",
             "[{\"op\":\"add\",\"path\":\"/gender\",\"value\":\"not-a-gender\"}]", &r);
    cr_assert(st == 400 || st == 422, "%d %s", st, r.body.p);
    assert_oo(&r);
    ft_release(&r);
    cr_assert_eq(req("PATCH", "/fhir/Patient/never-was",
                     "Content-Type: application/json-patch+json\r\n", "[]", &r), 404);
    ft_release(&r);
    /* Not JSON: the answer names where, never what was sent. */
    cr_assert_eq(req("PATCH", path, "Content-Type: application/json-patch+json\r\n",
                     "[{\"op\":Chalmers1970}]", &r), 400);
    assert_oo(&r);
    cr_expect(strstr(r.body.p, "Chalmers") == NULL, "%s", r.body.p);
    ft_release(&r);
}

Test(fhir_rest, conditional_create_update_delete) {
    static const char body[] =
        "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:test:mrn\","
        "\"value\":\"C-9\"}],\"active\":true}";
    ft_resp r;
    cr_assert_eq(req("POST", "/fhir/Patient",
                     JSON_CT "If-None-Exist: identifier=urn:test:mrn|C-9\r\n", body, &r),
                 201, "%s", r.body.p);
    json_t *j = ft_json(&r);
    char id[72];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    ft_release(&r);
    cr_assert_eq(req("POST", "/fhir/Patient",
                     JSON_CT "If-None-Exist: identifier=urn:test:mrn|C-9\r\n", body, &r),
                 200, "the existing one: %s", r.body.p);
    j = ft_json(&r);
    if (r.body.n) cr_assert_str_eq(json_string_value(json_object_get(j, "id")), id);
    json_decref(j);
    ft_release(&r);

    /* Conditional update with what is stored already: nothing to write,
     * the current version answers. */
    cr_assert_eq(req("PUT", "/fhir/Patient?identifier=urn:test:mrn%7CC-9", JSON_CT, body, &r),
                 200, "%s", r.body.p);
    j = ft_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), id);
    cr_assert_str_eq(version_of(j), "1");
    json_decref(j);
    ft_release(&r);
    /* Conditional update: one match is updated. */
    cr_assert_eq(req("PUT", "/fhir/Patient?identifier=urn:test:mrn%7CC-9", JSON_CT,
                     "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":"
                     "\"urn:test:mrn\",\"value\":\"C-9\"}],\"active\":true,\"gender\":\"female\"}",
                     &r),
                 200, "%s", r.body.p);
    j = ft_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), id);
    cr_assert_str_eq(version_of(j), "2");
    json_decref(j);
    ft_release(&r);
    /* No match: created. */
    cr_assert_eq(req("PUT", "/fhir/Patient?identifier=urn:test:mrn%7CC-10", JSON_CT,
                     "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":"
                     "\"urn:test:mrn\",\"value\":\"C-10\"}]}", &r),
                 201, "%s", r.body.p);
    ft_release(&r);
    /* Conditional patch, then delete. */
    cr_assert_eq(req("PATCH", "/fhir/Patient?identifier=urn:test:mrn%7CC-9",
                     "Content-Type: application/json-patch+json\r\n",
                     "[{\"op\":\"replace\",\"path\":\"/active\",\"value\":false}]", &r),
                 200, "%s", r.body.p);
    ft_release(&r);
    int st = req("DELETE", "/fhir/Patient?identifier=urn:test:mrn%7CC-9", NULL, NULL, &r);
    cr_assert(st == 200 || st == 204, "%d %s", st, r.body.p);
    ft_release(&r);
    char path[160];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    cr_assert_eq(req("GET", path, NULL, NULL, &r), 410);
    ft_release(&r);
    /* PUT on the type without criteria is not an interaction. */
    cr_assert_eq(req("PUT", "/fhir/Patient", JSON_CT, body, &r), 405);
    assert_oo(&r);
    ft_release(&r);
}

Test(fhir_rest, transaction_and_batch) {
    static const char tx[] =
        "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
        "{\"fullUrl\":\"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0\","
        "\"resource\":{\"resourceType\":\"Patient\",\"active\":true},"
        "\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
        "{\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\","
        "\"code\":{\"text\":\"t\"},\"subject\":{\"reference\":"
        "\"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0\"}},"
        "\"request\":{\"method\":\"POST\",\"url\":\"Observation\"}}]}";
    ft_resp r;
    cr_assert_eq(req("POST", "/fhir", JSON_CT, tx, &r), 200, "%s", r.body.p);
    json_t *j = ft_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "transaction-response");
    json_t *e = json_object_get(j, "entry");
    cr_assert_eq(json_array_size(e), 2);
    const char *loc = json_string_value(
        json_object_get(json_object_get(json_array_get(e, 1), "response"), "location"));
    cr_assert_not_null(loc);
    const char *rel = strstr(loc, "Observation/");
    cr_assert_not_null(rel, "%s", loc);
    char path[200];
    snprintf(path, sizeof path, "/fhir/%.*s", (int)strcspn(rel, "/") + 1 +
             (int)strcspn(rel + strcspn(rel, "/") + 1, "/"), rel);
    ft_resp g;
    cr_assert_eq(req("GET", path, NULL, NULL, &g), 200, "%s", path);
    json_t *o = ft_json(&g);
    const char *ref = json_string_value(
        json_object_get(json_object_get(o, "subject"), "reference"));
    cr_assert(ref && strncmp(ref, "Patient/", 8) == 0, "resolved: %s", ref ? ref : "");
    json_decref(o);
    ft_release(&g);
    json_decref(j);
    ft_release(&r);

    /* All or nothing: a bad entry leaves nothing written. */
    static const char bad[] =
        "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
        "{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"tx-keep-out\",\"active\":true},"
        "\"request\":{\"method\":\"PUT\",\"url\":\"Patient/tx-keep-out\"}},"
        "{\"resource\":{\"resourceType\":\"Patient\",\"gender\":\"nope\"},"
        "\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}}]}";
    int st = req("POST", "/fhir", JSON_CT, bad, &r);
    cr_assert(st == 400 || st == 422, "%d %s", st, r.body.p);
    assert_oo(&r);
    cr_assert(strstr(ft_issue(&r, "expression"), "gender"), "the failing entry: %s", r.body.p);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/Patient/tx-keep-out", NULL, NULL, &r), 404);
    ft_release(&r);

    static const char batch[] =
        "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":["
        "{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"batch-ok\",\"active\":true},"
        "\"request\":{\"method\":\"PUT\",\"url\":\"Patient/batch-ok\"}},"
        "{\"resource\":{\"resourceType\":\"Patient\",\"gender\":\"nope\"},"
        "\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
        "{\"request\":{\"method\":\"GET\",\"url\":\"Patient/never-was\"}}]}";
    cr_assert_eq(req("POST", "/fhir", JSON_CT, batch, &r), 200, "%s", r.body.p);
    j = ft_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "batch-response");
    e = json_object_get(j, "entry");
    cr_assert_eq(json_array_size(e), 3);
    const char *s0 = json_string_value(
        json_object_get(json_object_get(json_array_get(e, 0), "response"), "status"));
    const char *s2 = json_string_value(
        json_object_get(json_object_get(json_array_get(e, 2), "response"), "status"));
    cr_assert(s0 && s0[0] == '2', "%s", s0 ? s0 : "");
    cr_assert(s2 && strncmp(s2, "404", 3) == 0, "%s", s2 ? s2 : "");
    json_decref(j);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/Patient/batch-ok", NULL, NULL, &r), 200);
    ft_release(&r);

    cr_assert_eq(req("POST", "/fhir", JSON_CT,
                     "{\"resourceType\":\"Bundle\",\"type\":\"collection\"}", &r), 400);
    assert_oo(&r);
    ft_release(&r);
    cr_assert_eq(req("POST", "/fhir", JSON_CT, PATIENT, &r), 400);
    assert_oo(&r);
    ft_release(&r);
}

Test(fhir_rest, formats) {
    char id[72];
    create("Patient", PATIENT, id);
    char path[200];
    ft_resp r;
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    cr_assert_eq(req("GET", path, "Accept: application/fhir+xml\r\n", NULL, &r), 200);
    char ct[128];
    cr_assert(strstr(ft_header(&r, "Content-Type", ct, sizeof ct), "application/fhir+xml"));
    cr_assert(strstr(r.body.p, "<Patient xmlns=\"http://hl7.org/fhir\""), "%s", r.body.p);
    cr_assert(strstr(r.body.p, "<family value=\"Testperson\"/>"), "%s", r.body.p);
    /* The XML back in: an update from XML. */
    hub_buf x;
    hub_buf_init(&x);
    hub_buf_append(&x, r.body.p, r.body.n + 1);
    ft_release(&r);
    cr_assert_eq(req("PUT", path, XML_CT "Accept: application/fhir+json\r\n", x.p, &r), 200,
                 "%s", r.body.p);
    json_t *j = ft_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "birthDate")), "1980-02-03");
    json_decref(j);
    ft_release(&r);
    hub_buf_release(&x);
    /* Content-Type picks the answer's format when nothing else does. */
    cr_assert_eq(req("POST", "/fhir/Patient", XML_CT,
                     "<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"/></Patient>",
                     &r), 201, "%s", r.body.p);
    cr_assert(strstr(r.body.p, "<Patient"), "%s", r.body.p);
    ft_release(&r);

    char p2[260];
    snprintf(p2, sizeof p2, "%s?_format=xml", path);
    cr_assert_eq(req("GET", p2, NULL, NULL, &r), 200);
    cr_assert(strstr(r.body.p, "<Patient"));
    ft_release(&r);
    snprintf(p2, sizeof p2, "%s?_format=application/fhir%%2Bjson", path);
    cr_assert_eq(req("GET", p2, "Accept: application/fhir+xml\r\n", NULL, &r), 200);
    cr_assert_eq(r.body.p[0], '{', "_format wins over Accept");
    ft_release(&r);
    snprintf(p2, sizeof p2, "%s?_format=json&_pretty=true", path);
    cr_assert_eq(req("GET", p2, NULL, NULL, &r), 200);
    cr_assert(strstr(r.body.p, "\n  \"resourceType\""), "%s", r.body.p);
    ft_release(&r);
    snprintf(p2, sizeof p2, "%s?_format=text/turtle", path);
    cr_assert_eq(req("GET", p2, NULL, NULL, &r), 406);
    assert_oo(&r);
    ft_release(&r);
    cr_assert_eq(req("GET", path, "Accept: text/turtle\r\n", NULL, &r), 406);
    ft_release(&r);
    cr_assert_eq(req("GET", path, "Accept: text/html, */*;q=0.8\r\n", NULL, &r), 200);
    cr_assert_eq(r.body.p[0], '{');
    ft_release(&r);
    cr_assert_eq(req("GET", path, "Accept: application/json\r\n", NULL, &r), 200);
    ft_release(&r);
    cr_assert_eq(req("GET", path, "Accept: application/xml;q=0.9, text/plain;q=0\r\n", NULL, &r),
                 200);
    cr_assert_eq(r.body.p[0], '<');
    ft_release(&r);
    cr_assert_eq(req("POST", "/fhir/Patient", "Content-Type: text/plain\r\n", PATIENT, &r), 415);
    assert_oo(&r);
    ft_release(&r);
    cr_assert_eq(req("POST", "/fhir/Patient", NULL, PATIENT, &r), 415);
    ft_release(&r);
    cr_assert_eq(req("POST", "/fhir/Patient", "Content-Type: application/json\r\n", PATIENT, &r),
                 201);
    ft_release(&r);
    /* An error in XML when XML was asked for. */
    cr_assert_eq(req("GET", "/fhir/Patient/never-was", "Accept: application/fhir+xml\r\n", NULL,
                     &r), 404);
    cr_assert(strstr(r.body.p, "<OperationOutcome"), "%s", r.body.p);
    ft_release(&r);
}

Test(fhir_rest, errors) {
    ft_resp r;
    cr_assert_eq(req("GET", "/fhir/NoSuchType/1", NULL, NULL, &r), 404);
    assert_oo(&r);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/Patient/never-was", NULL, NULL, &r), 404);
    assert_oo(&r);
    cr_assert_str_eq(ft_issue(&r, "code"), "not-found");
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/Patient/bad%20id", NULL, NULL, &r), 400);
    assert_oo(&r);
    ft_release(&r);
    /* Malformed JSON: a 400 that does not echo the body. */
    cr_assert_eq(req("POST", "/fhir/Patient", JSON_CT,
                     "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Secretname\"", &r),
                 400);
    assert_oo(&r);
    cr_assert_null(strstr(r.body.p, "Secretname"), "%s", r.body.p);
    ft_release(&r);
    cr_assert_eq(req("POST", "/fhir/Patient", JSON_CT, "", &r), 400);
    ft_release(&r);
    cr_assert_eq(req("POST", "/fhir/Patient", JSON_CT, "[1,2]", &r), 400);
    assert_oo(&r);
    ft_release(&r);
    cr_assert_eq(req("POST", "/fhir/Patient", XML_CT "Accept: application/fhir+json\r\n",
                     "<Patient><oops></Patient>", &r), 400);
    assert_oo(&r);
    ft_release(&r);
    cr_assert_eq(req("POST", "/fhir/Patient", XML_CT "Accept: application/fhir+json\r\n",
                     "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e \"boom\">]>"
                     "<Patient xmlns=\"http://hl7.org/fhir\"><gender value=\"&e;\"/></Patient>",
                     &r), 400, "no DTD, no entities");
    assert_oo(&r);
    ft_release(&r);
    /* Type and id of the URL against the body. */
    cr_assert_eq(req("POST", "/fhir/Observation", JSON_CT, PATIENT, &r), 400);
    cr_assert_str_eq(ft_issue(&r, "expression"), "resourceType");
    ft_release(&r);
    cr_assert_eq(req("PUT", "/fhir/Patient/a1", JSON_CT,
                     "{\"resourceType\":\"Patient\",\"id\":\"b2\"}", &r), 400);
    cr_assert_str_eq(ft_issue(&r, "expression"), "id");
    ft_release(&r);
    cr_assert_eq(req("PUT", "/fhir/Patient/a1", JSON_CT, "{\"resourceType\":\"Patient\"}", &r),
                 400);
    ft_release(&r);
    /* Invalid content: the element's path, not its value. */
    int st = req("POST", "/fhir/Patient", JSON_CT,
                 "{\"resourceType\":\"Patient\",\"birthDate\":\"Secret-not-a-date\"}", &r);
    cr_assert(st == 400 || st == 422, "%d", st);
    assert_oo(&r);
    cr_assert(strstr(ft_issue(&r, "expression"), "Patient.birthDate"), "%s", r.body.p);
    cr_assert_null(strstr(r.body.p, "Secret-not-a-date"), "%s", r.body.p);
    ft_release(&r);
    st = req("POST", "/fhir/Patient", JSON_CT,
             "{\"resourceType\":\"Patient\",\"favouriteColour\":\"blue\"}", &r);
    cr_assert(st == 400 || st == 422, "unknown elements are refused: %d", st);
    ft_release(&r);
    /* Search is a searchset (tests/search and e2e_test_fhir_search); an
     * unknown parameter under handling=strict is a 400. */
    cr_assert_eq(req("GET", "/fhir/Patient?foo=1", "Prefer: handling=strict\r\n", NULL, &r), 400);
    assert_oo(&r);
    ft_release(&r);
    /* Interactions this server does not have. */
    cr_assert_eq(req("PUT", "/fhir/Patient/_search", JSON_CT, PATIENT, &r), 405);
    ft_release(&r);
    cr_assert_eq(req("DELETE", "/fhir", NULL, NULL, &r), 405); /* GET is system search */
    ft_release(&r);
    cr_assert_eq(req("POST", "/fhir/Patient/x1", JSON_CT, PATIENT, &r), 405);
    ft_release(&r);
    cr_assert_eq(req("DELETE", "/fhir/_history", NULL, NULL, &r), 405);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/Patient/x/y", NULL, NULL, &r), 404);
    assert_oo(&r);
    ft_release(&r);
}

/* A request line and headers of 8 KiB are served (a long search, a large
 * token); past the connection's memory (16 KiB) a header block is a 431,
 * a request line a 414, not a dropped connection. */
Test(fhir_rest, long_headers_and_urls) {
    char id[72];
    create("Patient", PATIENT, id);
    static char big[20000], hdr[20100], path[20200];
    memset(big, 'a', 8000);
    big[8000] = '\0';
    snprintf(hdr, sizeof hdr, "X-Padding: %s\r\n", big);
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    ft_resp r;
    cr_assert_eq(req("GET", path, hdr, NULL, &r), 200);
    ft_release(&r);
    snprintf(path, sizeof path, "/fhir/Patient?family=%s", big);
    cr_assert_eq(req("GET", path, NULL, NULL, &r), 200);
    ft_release(&r);
    memset(big, 'a', 19000);
    big[19000] = '\0';
    snprintf(hdr, sizeof hdr, "X-Padding: %s\r\n", big);
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    cr_assert_eq(req("GET", path, hdr, NULL, &r), 431);
    ft_release(&r);
    snprintf(path, sizeof path, "/fhir/Patient?family=%s", big);
    cr_assert_eq(req("GET", path, NULL, NULL, &r), 414);
    ft_release(&r);
}

Test(fhir_rest_limits, body_over_limit) {
    const char *extra[] = {"--set", "http.max_body=2048", NULL};
    hub_test_start(&hub_test_current, extra);
    hub_buf b;
    hub_buf_init(&b);
    hub_buf_append_cstr(&b, "{\"resourceType\":\"Patient\",\"name\":[");
    for (int i = 0; i < 200; i++) hub_buf_append_cstr(&b, "{\"family\":\"Longname\"},");
    hub_buf_append_cstr(&b, "{}]}");
    ft_resp r;
    cr_assert_eq(ft_req(P(), "POST", "/fhir/Patient", JSON_CT, b.p, b.n, &r), 413);
    assert_oo(&r);
    cr_assert_str_eq(ft_issue(&r, "code"), "too-long");
    ft_release(&r);
    hub_buf_release(&b);
    cr_assert_eq(ft_req(P(), "POST", "/fhir/Patient", JSON_CT, PATIENT, strlen(PATIENT), &r),
                 201);
    ft_release(&r);
    hub_test_stop(&hub_test_current);
}

Test(fhir_rest_limits, lenient_and_base_url) {
    const char *extra[] = {"--fhir-lenient", "--fhir-base-url", "https://hub.example.org/fhir",
                           NULL};
    hub_test_start(&hub_test_current, extra);
    ft_resp r;
    static const char odd[] = "{\"resourceType\":\"Patient\",\"favouriteColour\":\"blue\"}";
    int st = ft_req(P(), "POST", "/fhir/Patient", JSON_CT, odd, sizeof odd - 1, &r);
    cr_assert_eq(st, 201, "lenient: unknown elements are warnings (%s)", r.body.p);
    char loc[256];
    cr_assert_not_null(ft_header(&r, "Location", loc, sizeof loc));
    cr_assert_eq(strncmp(loc, "https://hub.example.org/fhir/Patient/", 37), 0, "%s", loc);
    ft_release(&r);
    cr_assert_eq(ft_req(P(), "GET", "/healthz", NULL, NULL, 0, &r), 200);
    json_t *j = ft_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "fhir"), "base")),
                     "https://hub.example.org/fhir");
    json_decref(j);
    ft_release(&r);
    hub_test_stop(&hub_test_current);
}

/* Concurrent writers, each read-modify-write with If-Match and a retry on
 * 412: no update is lost. Each adds one to a counter kept in the resource. */
#define WRITERS 6
#define ROUNDS 15

static void *writer(void *arg) {
    (void)arg;
    int done = 0;
    while (done < ROUNDS) {
        ft_resp r;
        if (ft_req(P(), "GET", "/fhir/Patient/counter", NULL, NULL, 0, &r) != 200) {
            ft_release(&r);
            return (void *)-1;
        }
        char etag[64], hdr[128];
        ft_header(&r, "ETag", etag, sizeof etag);
        json_t *j = ft_json(&r);
        ft_release(&r);
        json_int_t n = json_integer_value(json_object_get(j, "multipleBirthInteger"));
        json_object_set_new(j, "multipleBirthInteger", json_integer(n + 1));
        json_object_del(j, "meta");
        char *body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        snprintf(hdr, sizeof hdr, JSON_CT "If-Match: %s\r\n", etag);
        int st = ft_req(P(), "PUT", "/fhir/Patient/counter", hdr, body, strlen(body), &r);
        free(body);
        ft_release(&r);
        if (st == 200) done++;
        else if (st != 412 && st != 409) return (void *)-2;
    }
    return NULL;
}

Test(fhir_rest, concurrent_if_match_loses_nothing) {
    ft_resp r;
    cr_assert_eq(req("PUT", "/fhir/Patient/counter", JSON_CT,
                     "{\"resourceType\":\"Patient\",\"id\":\"counter\","
                     "\"multipleBirthInteger\":0}", &r), 201, "%s", r.body.p);
    ft_release(&r);
    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++) pthread_create(&t[i], NULL, writer, NULL);
    for (int i = 0; i < WRITERS; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        cr_assert_null(rv, "writer %d failed (%ld)", i, (long)rv);
    }
    cr_assert_eq(req("GET", "/fhir/Patient/counter", NULL, NULL, &r), 200);
    json_t *j = ft_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "multipleBirthInteger")),
                 WRITERS * ROUNDS);
    char v[16];
    snprintf(v, sizeof v, "%d", WRITERS * ROUNDS + 1);
    cr_assert_str_eq(version_of(j), v);
    json_decref(j);
    ft_release(&r);
}

/* Every kind of request once, then SIGTERM: the hub exits 0 (under ASan
 * that is also: no leak, no error in any of these paths). */
Test(fhir_rest_limits, clean_exit_after_every_kind_of_request) {
    hub_test_start(&hub_test_current, NULL);
    char id[72], path[200];
    create("Patient", PATIENT, id);
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    static const struct {
        const char *method, *suffix, *hdrs, *body;
    } reqs[] = {
        {"GET", "?_format=xml&_pretty=true", NULL, NULL},
        {"GET", "?_pretty=true", NULL, NULL},
        {"GET", "/_history?_count=1", NULL, NULL},
        {"GET", "/_history/1", "Accept: application/fhir+xml\r\n", NULL},
        {"PATCH", "", "Content-Type: application/json-patch+json\r\n",
         "[{\"op\":\"replace\",\"path\":\"/gender\",\"value\":\"male\"}]"},
        {"PATCH", "", "Content-Type: application/json-patch+json\r\n", "[{\"op\":"},
        {"PUT", "", JSON_CT "If-Match: W/\"1\"\r\n", "{\"resourceType\":\"Patient\"}"},
        {"GET", "", "If-None-Match: W/\"2\"\r\n", NULL},
        {"DELETE", "", NULL, NULL},
        {"GET", "", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        char p[300];
        snprintf(p, sizeof p, "%s%s", path, reqs[i].suffix);
        ft_resp r;
        cr_assert(req(reqs[i].method, p, reqs[i].hdrs, reqs[i].body, &r) > 0);
        ft_release(&r);
    }
    static const char *const base_reqs[][4] = {
        {"GET", "/fhir/metadata?_format=xml", NULL, NULL},
        {"GET", "/fhir/_history?_count=2", NULL, NULL},
        {"POST", "/fhir/Patient", XML_CT,
         "<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"/></Patient>"},
        {"POST", "/fhir/Patient", XML_CT, "<Patient xmlns=\"http://hl7.org/fhir\"><x"},
        {"POST", "/fhir/Patient", JSON_CT, "{\"resourceType\":\"Patient\",\"gender\":\"x\"}"},
        {"POST", "/fhir/Patient", JSON_CT, "{\"resourceType\":"},
        {"POST", "/fhir", JSON_CT,
         "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"fullUrl\":"
         "\"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0\",\"resource\":{\"resourceType\":"
         "\"Patient\"},\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}}]}"},
        {"POST", "/fhir", JSON_CT,
         "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[{\"request\":"
         "{\"method\":\"GET\",\"url\":\"Patient/nope\"}}]}"},
        {"PUT", "/fhir/Patient?identifier=a%7Cb", JSON_CT, "{\"resourceType\":\"Patient\"}"},
        {"GET", "/fhir/Nope/1", "Accept: text/plain\r\n", NULL},
    };
    for (size_t i = 0; i < sizeof base_reqs / sizeof base_reqs[0]; i++) {
        ft_resp r;
        cr_assert(req(base_reqs[i][0], base_reqs[i][1], base_reqs[i][2], base_reqs[i][3], &r) > 0,
                  "%s %s", base_reqs[i][0], base_reqs[i][1]);
        ft_release(&r);
    }
    cr_assert_eq(hub_test_signal_wait(&hub_test_current, SIGTERM), 0, "see the hub's log: %s",
                 hub_test_current.log);
    hub_test_current.pid = 0;
    hub_test_stop(&hub_test_current);
}

/* Decimals come back as they were written, in JSON and in XML: the stored
 * text never carries jansson's 17-digit form (98.6 -> 98.599999999999994). */
Test(fhir_rest, decimals_read_back_as_written) {
    static const char OBS[] =
        "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":"
        "\"temp\"},\"valueQuantity\":{\"value\":98.6,\"unit\":\"F\"},"
        "\"component\":[{\"code\":{\"text\":\"a\"},\"valueQuantity\":{\"value\":0.1}},"
        "{\"code\":{\"text\":\"b\"},\"valueQuantity\":{\"value\":120.3}}]}";
    char id[72], path[160];
    create("Observation", OBS, id);
    snprintf(path, sizeof path, "/fhir/Observation/%s", id);
    ft_resp r;
    cr_assert_eq(req("GET", path, NULL, NULL, &r), 200);
    cr_expect(strstr(r.body.p, "\"value\":98.6,") != NULL, "%s", r.body.p);
    cr_expect(strstr(r.body.p, "\"value\":0.1}") != NULL, "%s", r.body.p);
    cr_expect(strstr(r.body.p, "\"value\":120.3}") != NULL, "%s", r.body.p);
    cr_expect(strstr(r.body.p, "99999") == NULL, "%s", r.body.p);
    ft_release(&r);
    cr_assert_eq(req("GET", path, "Accept: application/fhir+xml\r\n", NULL, &r), 200);
    cr_expect(strstr(r.body.p, "<value value=\"98.6\"/>") != NULL, "%s", r.body.p);
    ft_release(&r);
}
