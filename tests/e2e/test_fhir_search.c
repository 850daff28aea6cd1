/* Search over real sockets against a spawned `hub serve`: system search
 * (GET and POST _search), Patient/$everything (GET and POST Parameters,
 * paging by its next links, errors), composite parameters, previous links
 * and _include:iterate, in JSON and XML. */
#include "fhir_test.h"
#include "hub_test.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_CT "Content-Type: application/fhir+json\r\n"
#define FORM_CT "Content-Type: application/x-www-form-urlencoded\r\n"

static int P(void) { return hub_test_http_port(); }

static int req(const char *method, const char *path, const char *hdrs, const char *body,
               ft_resp *r) {
    return ft_req(P(), method, path, hdrs, body, body ? strlen(body) : 0, r);
}

static void put(const char *type, const char *id, const char *body) {
    char path[160];
    snprintf(path, sizeof path, "/fhir/%s/%s", type, id);
    ft_resp r;
    int st = req("PUT", path, JSON_CT, body, &r);
    cr_assert(st == 201 || st == 200, "%s: %d %s", path, st, r.body.p);
    ft_release(&r);
}

static void data(void) {
    put("Patient", "e1", "{\"resourceType\":\"Patient\",\"id\":\"e1\",\"gender\":\"female\","
                         "\"generalPractitioner\":[{\"reference\":\"Practitioner/d1\"}]}");
    put("Patient", "e2", "{\"resourceType\":\"Patient\",\"id\":\"e2\",\"gender\":\"male\"}");
    put("Practitioner", "d1", "{\"resourceType\":\"Practitioner\",\"id\":\"d1\","
                              "\"name\":[{\"family\":\"Doe\"}]}");
    for (int i = 0; i < 5; i++) {
        char id[16], body[512];
        snprintf(id, sizeof id, "eo%d", i);
        snprintf(body, sizeof body,
                 "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"status\":\"final\",\"code\":"
                 "{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8867-4\"}]},\"subject\":"
                 "{\"reference\":\"Patient/%s\"},\"valueQuantity\":{\"value\":%d,\"system\":"
                 "\"http://unitsofmeasure.org\",\"code\":\"/min\"}}",
                 id, i < 4 ? "e1" : "e2", 60 + 10 * i);
        put("Observation", id, body);
    }
    put("Condition", "ec1", "{\"resourceType\":\"Condition\",\"id\":\"ec1\",\"subject\":"
                            "{\"reference\":\"Patient/e1\"}}");
}

/* "Type/id" of the entries of `mode`, sorted, comma-joined. */
static int cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}
static void refs(const json_t *b, const char *mode, char *out, size_t cap) {
    static char ids[64][96];
    const char *p[64];
    size_t n = 0, i;
    const json_t *e;
    json_array_foreach(json_object_get(b, "entry"), i, e) {
        const char *m = json_string_value(json_object_get(json_object_get(e, "search"), "mode"));
        const json_t *res = json_object_get(e, "resource");
        if (m && strcmp(m, mode) == 0 && n < 64) {
            snprintf(ids[n], 96, "%s/%s", json_string_value(json_object_get(res, "resourceType")),
                     json_string_value(json_object_get(res, "id")));
            p[n] = ids[n];
            n++;
        }
    }
    qsort(p, n, sizeof *p, cmp);
    size_t o = 0;
    out[0] = '\0';
    for (size_t k = 0; k < n; k++) o += (size_t)snprintf(out + o, cap - o, "%s%s", k ? "," : "", p[k]);
}

/* The path (from /fhir on) of a link, or NULL. */
static char *link_path(const json_t *b, const char *rel) {
    size_t i;
    const json_t *l;
    json_array_foreach(json_object_get(b, "link"), i, l) {
        if (strcmp(json_string_value(json_object_get(l, "relation")), rel) == 0) {
            const char *u = strstr(json_string_value(json_object_get(l, "url")), "/fhir");
            return u ? strdup(u) : NULL;
        }
    }
    return NULL;
}

static json_t *get(const char *path, int want) {
    ft_resp r;
    int st = req("GET", path, NULL, NULL, &r);
    cr_assert_eq(st, want, "%s: %d %s", path, st, r.body.p);
    json_t *j = ft_json(&r);
    cr_assert_not_null(j, "%s", path);
    ft_release(&r);
    return j;
}

TestSuite(fhir_search, .init = hub_test_up, .fini = hub_test_down, .timeout = 120);

Test(fhir_search, system_search) {
    data();
    char got[1024];
    json_t *b = get("/fhir?_type=Patient,Practitioner&_id=e1,d1,eo1", 200);
    refs(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "Patient/e1,Practitioner/d1");
    json_decref(b);
    b = get("/fhir?_id=e1,d1,eo1", 200);
    refs(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "Observation/eo1,Patient/e1,Practitioner/d1");
    cr_expect_eq(json_integer_value(json_object_get(b, "total")), 3);
    json_decref(b);
    ft_resp r;
    cr_assert_eq(req("POST", "/fhir/_search", FORM_CT, "_type=Observation&_id=eo2", &r), 200);
    json_t *j = ft_json(&r);
    refs(j, "match", got, sizeof got);
    cr_expect_str_eq(got, "Observation/eo2");
    json_decref(j);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir?_type=NoSuchType", NULL, NULL, &r), 400);
    cr_expect_str_eq(ft_issue(&r, "expression"), "_type");
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir?_type=Patient&foo=1", "Prefer: handling=strict\r\n", NULL, &r), 400);
    ft_release(&r);
    /* XML too */
    cr_assert_eq(req("GET", "/fhir?_type=Patient&_id=e2", "Accept: application/fhir+xml\r\n", NULL, &r),
                 200);
    cr_expect(strstr(r.body.p, "<Bundle") && strstr(r.body.p, "<id value=\"e2\"/>"), "%s", r.body.p);
    ft_release(&r);
}

Test(fhir_search, patient_everything) {
    data();
    char got[1024];
    json_t *b = get("/fhir/Patient/e1/$everything", 200);
    refs(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "Condition/ec1,Observation/eo0,Observation/eo1,Observation/eo2,"
                          "Observation/eo3,Patient/e1");
    cr_expect_eq(json_integer_value(json_object_get(b, "total")), 6);
    json_decref(b);
    b = get("/fhir/Patient/e1/$everything?_type=Condition", 200);
    refs(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "Condition/ec1");
    json_decref(b);

    /* paging by the next links: every resource once */
    char *path = strdup("/fhir/Patient/e1/$everything?_count=2");
    size_t n = 0;
    int pages = 0;
    while (path && pages < 10) {
        b = get(path, 200);
        n += json_array_size(json_object_get(b, "entry"));
        free(path);
        path = link_path(b, "next");
        json_decref(b);
        pages++;
    }
    free(path);
    cr_expect_eq(n, 6);
    cr_expect_eq(pages, 3);

    /* POST with a Parameters body */
    static const char params[] =
        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"_type\",\"valueString\":"
        "\"Observation\"},{\"name\":\"_count\",\"valueInteger\":10}]}";
    ft_resp r;
    cr_assert_eq(req("POST", "/fhir/Patient/e1/$everything", JSON_CT, params, &r), 200, "%s",
                 r.body.p);
    json_t *j = ft_json(&r);
    refs(j, "match", got, sizeof got);
    cr_expect_str_eq(got, "Observation/eo0,Observation/eo1,Observation/eo2,Observation/eo3");
    json_decref(j);
    ft_release(&r);

    /* errors */
    cr_assert_eq(req("GET", "/fhir/Patient/nobody/$everything", NULL, NULL, &r), 404);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/Patient/e1/$everything?_since=notadate", NULL, NULL, &r), 400);
    cr_expect_str_eq(ft_issue(&r, "expression"), "_since");
    cr_expect_null(strstr(r.body.p, "notadate"));
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/Patient/e1/$everything?_count=x", NULL, NULL, &r), 400);
    ft_release(&r);
    cr_assert_eq(req("GET", "/fhir/Observation/eo1/$everything", NULL, NULL, &r), 404);
    ft_release(&r);
    cr_assert_eq(req("DELETE", "/fhir/Patient/e1/$everything", NULL, NULL, &r), 405);
    ft_release(&r);
    /* listed in the CapabilityStatement */
    cr_assert_eq(req("GET", "/fhir/metadata", NULL, NULL, &r), 200);
    cr_expect(strstr(r.body.p, "OperationDefinition/Patient-everything"));
    ft_release(&r);
}

Test(fhir_search, composite_iterate_previous) {
    data();
    char got[1024];
    json_t *b = get("/fhir/Observation?code-value-quantity=http://loinc.org%7C8867-4$gt85", 200);
    refs(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "Observation/eo3,Observation/eo4");
    json_decref(b);
    b = get("/fhir/Observation?_id=eo0&_include=Observation:patient"
            "&_include:iterate=Patient:general-practitioner", 200);
    refs(b, "include", got, sizeof got);
    cr_expect_str_eq(got, "Patient/e1,Practitioner/d1");
    json_decref(b);

    /* forwards to the last page, then back to the first by previous links */
    b = get("/fhir/Observation?_count=2&_sort=value-quantity", 200);
    char first[256];
    refs(b, "match", first, sizeof first);
    for (char *p; (p = link_path(b, "next")) != NULL; free(p)) {
        json_decref(b);
        b = get(p, 200);
    }
    int back = 0;
    for (char *p; (p = link_path(b, "previous")) != NULL; free(p)) {
        json_decref(b);
        b = get(p, 200);
        back++;
    }
    cr_expect_eq(back, 2);
    refs(b, "match", got, sizeof got);
    cr_expect_str_eq(got, first);
    json_decref(b);
    ft_resp r;
    cr_assert_eq(req("GET", "/fhir/Observation?code-value-quantity=8867-4", NULL, NULL, &r), 400);
    cr_expect_str_eq(ft_issue(&r, "expression"), "code-value-quantity");
    ft_release(&r);
}

Test(fhir_search, hub_reindex_while_serving) {
    data();
    hub_buf out, err;
    hub_buf_init(&out);
    hub_buf_init(&err);
    const char *argv[] = {HUB_BIN, "reindex", "--data", hub_test_current.dir, "--type", "Observation",
                          NULL};
    cr_assert_eq(hub_test_run(argv, NULL, &out, &err), 0, "%s %s", out.p, err.p);
    cr_expect(strstr(out.p, "reindexed 5 resources of Observation"), "%s", out.p);
    hub_buf_release(&out);
    hub_buf_release(&err);
    hub_buf_init(&out);
    hub_buf_init(&err);
    const char *all[] = {HUB_BIN, "reindex", "--data", hub_test_current.dir, NULL};
    cr_assert_eq(hub_test_run(all, NULL, &out, &err), 0, "%s %s", out.p, err.p);
    /* the 9 data() wrote and the golden records of its 2 Patients */
    cr_expect(strstr(out.p, "reindexed 11 resources"), "%s", out.p);
    hub_buf_release(&out);
    hub_buf_release(&err);
    hub_buf_init(&out);
    hub_buf_init(&err);
    const char *bad[] = {HUB_BIN, "reindex", "--data", hub_test_current.dir, "--type", "Nope", NULL};
    cr_expect_eq(hub_test_run(bad, NULL, &out, &err), 2);
    cr_expect(strstr(err.p, "unknown resource type"), "%s", err.p);
    hub_buf_release(&out);
    hub_buf_release(&err);
    /* the server still answers from the rebuilt rows */
    char got[256];
    json_t *b = get("/fhir/Observation?code-value-quantity=8867-4$lt75&patient=e1", 200);
    refs(b, "match", got, sizeof got);
    cr_expect_str_eq(got, "Observation/eo0,Observation/eo1");
    json_decref(b);
}
