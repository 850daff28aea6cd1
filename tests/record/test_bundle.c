/* record: batch and transaction Bundles, our own and the public test
 * Bundles of the Microsoft FHIR server (read from the shared corpus at run
 * time, skipped when it is absent). */
#include "record_test.h"

#include <dirent.h>
#include <stdlib.h>

static json_t *run_bundle(const char *text, int *http, hub_oo **oo, hub_status *rc) {
    json_t *b = rt_json(text);
    json_t *resp = NULL;
    hub_err err;
    *rc = hub_record_bundle(rt_rec, b, &resp, oo, http, &err);
    json_decref(b);
    return resp;
}

static const char *entry_status(const json_t *resp, size_t i) {
    return json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(resp, "entry"), i), "response"), "status"));
}

static const json_t *entry_resp(const json_t *resp, size_t i) {
    return json_object_get(json_array_get(json_object_get(resp, "entry"), i), "response");
}

static char *oo_text(hub_oo *oo) {
    json_t *j = hub_oo_json(oo);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static int64_t total_versions(void) {
    hub_err err;
    int64_t next, total;
    hub_history_query q = {.count = 1};
    static int dummy;
    hub_status cb(void *ud, const hub_resource *r);
    cr_assert_eq(hub_record_history(rt_rec, &q, cb, &dummy, &next, &total, &err), HUB_OK);
    return total;
}
hub_status cb(void *ud, const hub_resource *r) {
    (void)ud;
    (void)r;
    return HUB_OK;
}

#define TX(entries) "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[" entries "]}"
#define BATCH(entries) "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[" entries "]}"

Test(bundle, transaction_response_and_urn_references, .init = rt_up, .fini = rt_down) {
    int http;
    hub_oo *oo;
    hub_status rc;
    json_t *resp = run_bundle(TX(
        "{\"fullUrl\":\"urn:uuid:0c3a4c4e-1111-4a4a-9b9b-000000000001\","
        " \"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
        "  \"subject\":{\"reference\":\"urn:uuid:0c3a4c4e-1111-4a4a-9b9b-000000000002\"},"
        "  \"extension\":[{\"url\":\"http://e\",\"valueReference\":{\"reference\":"
        "   \"urn:uuid:0c3a4c4e-1111-4a4a-9b9b-000000000002\"}}]},"
        " \"request\":{\"method\":\"POST\",\"url\":\"Observation\"}},"
        "{\"fullUrl\":\"urn:uuid:0c3a4c4e-1111-4a4a-9b9b-000000000002\","
        " \"resource\":{\"resourceType\":\"Patient\",\"id\":\"ignored\"},"
        " \"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
        "{\"fullUrl\":\"http://example.org/fhir/Patient/p9\","
        " \"resource\":{\"resourceType\":\"Patient\",\"id\":\"p9\"},"
        " \"request\":{\"method\":\"PUT\",\"url\":\"Patient/p9\"}}"),
        &http, &oo, &rc);
    cr_assert_eq(rc, HUB_OK);
    cr_assert_eq(http, 200);
    cr_assert_null(oo);
    cr_assert_str_eq(json_string_value(json_object_get(resp, "type")), "transaction-response");
    cr_assert_eq(json_array_size(json_object_get(resp, "entry")), 3);
    for (int i = 0; i < 3; i++) cr_assert_str_eq(entry_status(resp, i), "201 Created");
    const json_t *r1 = entry_resp(resp, 1);
    const char *loc = json_string_value(json_object_get(r1, "location"));
    cr_assert(loc && strncmp(loc, "Patient/", 8) == 0 && strstr(loc, "/_history/1"), "%s", loc);
    cr_assert_str_eq(json_string_value(json_object_get(r1, "etag")), "W/\"1\"");
    const char *lm = json_string_value(json_object_get(r1, "lastModified"));
    cr_assert(lm && strlen(lm) == 24 && lm[23] == 'Z');
    cr_assert_str_eq(json_string_value(json_object_get(entry_resp(resp, 2), "location")),
                     "Patient/p9/_history/1");
    /* the Observation's references now name the new Patient */
    const json_t *pat = json_object_get(json_array_get(json_object_get(resp, "entry"), 1), "resource");
    char want[128];
    snprintf(want, sizeof want, "Patient/%s", json_string_value(json_object_get(pat, "id")));
    cr_assert_str_neq(json_string_value(json_object_get(pat, "id")), "ignored");
    const json_t *obs = json_object_get(json_array_get(json_object_get(resp, "entry"), 0), "resource");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(obs, "subject"), "reference")), want);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(
                         json_object_get(obs, "extension"), 0), "valueReference"), "reference")), want);
    /* and so does the stored version */
    hub_resource rd;
    hub_err err;
    cr_assert_eq(hub_record_read(rt_rec, "Observation", json_string_value(json_object_get(obs, "id")),
                                 0, &rd, &err), HUB_OK);
    cr_assert_null(strstr(rd.json, "urn:uuid"));
    cr_assert(strstr(rd.json, want));
    hub_resource_release(&rd);
    json_decref(resp);
}

Test(bundle, transaction_failing_in_last_entry_writes_nothing, .init = rt_up, .fini = rt_down) {
    int http;
    hub_oo *oo;
    hub_status rc;
    json_t *resp = run_bundle(TX(
        "{\"resource\":{\"resourceType\":\"Patient\"},\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
        "{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"a\"},\"request\":{\"method\":\"PUT\",\"url\":\"Patient/a\"}},"
        "{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"b\"},\"request\":{\"method\":\"PUT\","
        "  \"url\":\"Patient/b\",\"ifMatch\":\"W/\\\"7\\\"\"}}"),
        &http, &oo, &rc);
    cr_assert_null(resp);
    cr_assert_eq(rc, HUB_E_CONFLICT);
    cr_assert_eq(http, 412);
    cr_assert_not_null(oo);
    char *t = oo_text(oo);
    cr_assert(strstr(t, "Bundle.entry[2]"), "%s", t);
    cr_assert(strstr(t, "nothing was written"), "%s", t);
    free(t);
    hub_oo_free(oo);
    cr_assert_eq(total_versions(), 0);
}

Test(bundle, bundle_level_errors, .init = rt_up, .fini = rt_down) {
    struct {
        const char *text;
        int http;
        const char *diag;
    } cases[] = {
        {"{\"resourceType\":\"Patient\"}", 400, "not a Bundle"},
        {"{\"resourceType\":\"Bundle\"}", 400, "batch or transaction"},
        {"{\"resourceType\":\"Bundle\",\"type\":\"collection\"}", 400, "batch or transaction"},
        {"{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":{}}", 400, "must be an array"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int http;
        hub_oo *oo;
        hub_status rc;
        json_t *resp = run_bundle(cases[i].text, &http, &oo, &rc);
        cr_assert_null(resp);
        cr_assert_neq(rc, HUB_OK);
        cr_assert_eq(http, cases[i].http, "case %zu", i);
        char *t = oo_text(oo);
        cr_assert(strstr(t, cases[i].diag), "case %zu: %s", i, t);
        free(t);
        hub_oo_free(oo);
    }
    /* over max_bundle_entries (100 in the fixture): 413 */
    hub_buf b;
    hub_buf_init(&b);
    hub_buf_append_cstr(&b, "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[");
    for (int i = 0; i < 101; i++)
        hub_buf_printf(&b, "%s{\"request\":{\"method\":\"GET\",\"url\":\"Patient/x\"}}", i ? "," : "");
    hub_buf_append(&b, "]}", 3);
    int http;
    hub_oo *oo;
    hub_status rc;
    json_t *resp = run_bundle(b.p, &http, &oo, &rc);
    cr_assert_null(resp);
    cr_assert_eq(rc, HUB_E_LIMIT);
    cr_assert_eq(http, 413);
    hub_oo_free(oo);
    hub_buf_release(&b);
    /* an empty batch is fine */
    resp = run_bundle("{\"resourceType\":\"Bundle\",\"type\":\"batch\"}", &http, &oo, &rc);
    cr_assert_eq(rc, HUB_OK);
    cr_assert_eq(json_array_size(json_object_get(resp, "entry")), 0);
    json_decref(resp);
}

Test(bundle, batch_entries_and_their_statuses, .init = rt_up, .fini = rt_down) {
    cr_assert_eq(rt_update("Patient", "r1", "{\"resourceType\":\"Patient\",\"id\":\"r1\"}", NULL, NULL), 201);
    cr_assert_eq(rt_update("Patient", "r1", "{\"resourceType\":\"Patient\",\"id\":\"r1\",\"active\":true}",
                           NULL, NULL), 200);
    int http;
    hub_oo *oo;
    hub_status rc;
    json_t *resp = run_bundle(BATCH(
        /* 0 */ "{\"request\":{\"method\":\"GET\",\"url\":\"Patient/r1\"}},"
        /* 1 */ "{\"request\":{\"method\":\"GET\",\"url\":\"Patient/r1/_history/1\"}},"
        /* 2 */ "{\"request\":{\"method\":\"GET\",\"url\":\"Patient/r1\",\"ifNoneMatch\":\"W/\\\"2\\\"\"}},"
        /* 3 */ "{\"request\":{\"method\":\"GET\",\"url\":\"Patient?name=x\"}},"
        /* 4 */ "{\"request\":{\"method\":\"GET\",\"url\":\"Patient/none\"}},"
        /* 5 */ "{\"request\":{\"method\":\"POST\",\"url\":\"Patient/$match\"},\"resource\":{\"resourceType\":\"Parameters\"}},"
        /* 6 */ "{\"request\":{\"method\":\"DELETE\",\"url\":\"Patient/r1\"}},"
        /* 7 */ "{\"request\":{\"method\":\"TRACE\",\"url\":\"Patient/r1\"}},"
        /* 8 */ "{\"request\":{\"method\":\"PUT\",\"url\":\"Patient/\"},\"resource\":{\"resourceType\":\"Patient\"}},"
        /* 9 */ "{\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
        /* 10 */ "{\"resource\":{\"resourceType\":\"Patient\"}},"
        /* 11 */ "{\"request\":{\"method\":\"PUT\",\"url\":\"Patient?birthdate=2000\"},\"resource\":{\"resourceType\":\"Patient\"}},"
        /* 12 */ "{\"request\":{\"method\":\"GET\",\"url\":\"Patient/r1/_history/9\"}},"
        /* 13 */ "{\"request\":{\"method\":\"GET\",\"url\":\"patient/r1\"}},"
        /* 14 */ "{\"request\":{\"method\":\"POST\",\"url\":\"Patient\"},\"resource\":{\"resourceType\":\"Patient\"}}"),
        &http, &oo, &rc);
    cr_assert_eq(rc, HUB_OK);
    cr_assert_eq(http, 200);
    cr_assert_str_eq(json_string_value(json_object_get(resp, "type")), "batch-response");
    const char *want[] = {"200 OK", "200 OK", "304 Not Modified", "400 Bad Request",
                          "404 Not Found", "400 Bad Request", "204 No Content",
                          "400 Bad Request", "400 Bad Request", "400 Bad Request",
                          "400 Bad Request", "400 Bad Request", "404 Not Found",
                          "400 Bad Request", "201 Created"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_str_eq(entry_status(resp, i), want[i], "entry %zu", i);
    /* reads carry the resource; errors an outcome */
    const json_t *e0 = json_array_get(json_object_get(resp, "entry"), 0);
    cr_assert_not_null(json_object_get(e0, "resource"));
    cr_assert_str_eq(json_string_value(json_object_get(entry_resp(resp, 0), "etag")), "W/\"2\"");
    const json_t *e1 = json_array_get(json_object_get(resp, "entry"), 1);
    cr_assert_null(json_object_get(json_object_get(e1, "resource"), "active"), "version 1");
    cr_assert_null(json_object_get(json_array_get(json_object_get(resp, "entry"), 2), "resource"));
    const json_t *o3 = json_object_get(entry_resp(resp, 3), "outcome");
    cr_assert_not_null(o3);
    char *s = json_dumps(o3, 0);
    cr_assert(strstr(s, "search is not supported"), "%s", s);
    free(s);
    s = json_dumps(json_object_get(entry_resp(resp, 11), "outcome"), 0);
    cr_assert(strstr(s, "'birthdate' is not supported for conditional"), "%s", s);
    free(s);
    json_decref(resp);
}

Test(bundle, transaction_rules, .init = rt_up, .fini = rt_down) {
    struct {
        const char *text;
        int http;
        const char *diag;
    } cases[] = {
        {TX("{\"fullUrl\":\"urn:uuid:1\",\"resource\":{\"resourceType\":\"Patient\"},\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
            "{\"fullUrl\":\"urn:uuid:1\",\"resource\":{\"resourceType\":\"Patient\"},\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}}"),
         400, "same fullUrl"},
        {TX("{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"x\"},\"request\":{\"method\":\"PUT\",\"url\":\"Patient/x\"}},"
            "{\"request\":{\"method\":\"DELETE\",\"url\":\"Patient/x\"}}"),
         400, "change the same resource"},
        {TX("{\"resource\":{\"resourceType\":\"Patient\"},\"request\":{\"method\":\"PUT\",\"url\":\"Patient?identifier=a|1\"}},"
            "{\"resource\":{\"resourceType\":\"Patient\"},\"request\":{\"method\":\"POST\",\"url\":\"Patient\",\"ifNoneExist\":\"identifier=a|1\"}}"),
         400, "change the same resource"}, /* both would create the one Patient */
        {TX("{\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},\"subject\":{\"reference\":\"urn:uuid:nowhere\"}},"
            "\"request\":{\"method\":\"POST\",\"url\":\"Observation\"}}"),
         400, "not an entry of the transaction"},
        {TX("{\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},\"subject\":{\"reference\":\"Patient?identifier=s|404\"}},"
            "\"request\":{\"method\":\"POST\",\"url\":\"Observation\"}}"),
         400, "matches nothing"},
        {TX("{\"request\":{\"method\":\"GET\",\"url\":\"Patient?name=a\"}}"), 400, "search is not supported"},
        {TX("{\"request\":{\"method\":\"GET\",\"url\":\"Patient/gone\"}}"), 404, "no Patient with that id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int http;
        hub_oo *oo;
        hub_status rc;
        json_t *resp = run_bundle(cases[i].text, &http, &oo, &rc);
        cr_assert_eq(http, cases[i].http, "case %zu", i);
        if (cases[i].diag) {
            cr_assert_null(resp);
            char *t = oo_text(oo);
            cr_assert(strstr(t, cases[i].diag), "case %zu: %s", i, t);
            free(t);
            hub_oo_free(oo);
        } else {
            cr_assert_eq(rc, HUB_OK);
            json_decref(resp);
        }
    }
}

Test(bundle, conditional_reference_to_many_is_412, .init = rt_up, .fini = rt_down) {
    const char *p = "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"s\",\"value\":\"dup\"}]}";
    cr_assert_eq(rt_create("Patient", p, NULL), 201);
    cr_assert_eq(rt_create("Patient", p, NULL), 201);
    int http;
    hub_oo *oo;
    hub_status rc;
    json_t *resp = run_bundle(TX(
        "{\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},\"subject\":{\"reference\":\"Patient?identifier=s|dup\"}},"
        "\"request\":{\"method\":\"POST\",\"url\":\"Observation\"}}"), &http, &oo, &rc);
    cr_assert_null(resp);
    cr_assert_eq(http, 412);
    cr_assert_eq(rc, HUB_E_CONFLICT);
    hub_oo_free(oo);
}

Test(bundle, patch_entry_in_a_binary, .init = rt_up, .fini = rt_down) {
    cr_assert_eq(rt_update("Patient", "pp", "{\"resourceType\":\"Patient\",\"id\":\"pp\"}", NULL, NULL), 201);
    /* [{"op":"add","path":"/active","value":true}] */
    int http;
    hub_oo *oo;
    hub_status rc;
    json_t *resp = run_bundle(BATCH(
        "{\"resource\":{\"resourceType\":\"Binary\",\"contentType\":\"application/json-patch+json\","
        "\"data\":\"W3sib3AiOiJhZGQiLCJwYXRoIjoiL2FjdGl2ZSIsInZhbHVlIjp0cnVlfV0=\"},"
        "\"request\":{\"method\":\"PATCH\",\"url\":\"Patient/pp\"}},"
        "{\"resource\":{\"resourceType\":\"Binary\",\"contentType\":\"application/json-patch+json\","
        "\"data\":\"!!!\"},\"request\":{\"method\":\"PATCH\",\"url\":\"Patient/pp\"}},"
        "{\"resource\":{\"resourceType\":\"Parameters\"},\"request\":{\"method\":\"PATCH\",\"url\":\"Patient/pp\"}}"),
        &http, &oo, &rc);
    cr_assert_eq(rc, HUB_OK);
    cr_assert_str_eq(entry_status(resp, 0), "200 OK");
    cr_assert_str_eq(entry_status(resp, 1), "400 Bad Request");
    cr_assert_str_eq(entry_status(resp, 2), "400 Bad Request");
    const json_t *r = json_object_get(json_array_get(json_object_get(resp, "entry"), 0), "resource");
    cr_assert(json_is_true(json_object_get(r, "active")));
    json_decref(resp);
}

/* ---- the Microsoft FHIR server's test Bundles -------------------------------------- */

#define MS "fhir/ms-fhir-server-testfiles/"
#define MAXE 12

typedef struct {
    const char *file;
    const char *setup; /* a resource (JSON) created first, or NULL */
    int http;          /* overall: 200, a transaction's failure status, or -1 unparsable */
    int entries[MAXE]; /* per entry on success (0 ends) */
    const char *why;
} ms_case;

#define PAT_234234 "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"http:/example.org/fhir/ids\",\"value\":\"234234\"}]}"
#define PAT_12345 "{\"resourceType\":\"Patient\",\"identifier\":[{\"value\":\"12345\"}]}"

static const ms_case ms_cases[] = {
    /* batches: each entry on its own */
    {"Bundle-Batch.json", NULL, 200, {201, 201, 201, 201, 412, 204, 204, 400, 400, 404},
     "If-Match W/\"3a\" never matches; $lookup and search are not supported; Patient/12334 is absent"},
    {"Bundle-BatchWithConditionalUpdateByIdentifier.json", NULL, 200, {400, 400, 400, 400},
     "each Patient has identifier.system \"\": FHIR forbids empty strings"},
    {"Bundle-BatchWithDuplicatedItems.json", NULL, 200, {201, 201, 400, 400, 204, 204, 400, 400, 404},
     "FHIRPath Patch (Parameters) is not supported"},
    {"Bundle-BatchWithInvalidEleEnums.json", NULL, 200, {400, 201, 400, 201, 400, 204, 204, 400, 400, 404},
     "unknown elements (gender1, birthDate1, use1) are errors: entries 0, 2 and 4"},
    {"Bundle-BinaryPatch.json", NULL, 200, {201, 200}, "JSON Patch in a Binary"},
    {"Bundle-FhirPatch.json", NULL, 200, {201, 400, 400}, "FHIRPath Patch is not supported"},
    {"Bundle-MissingIdentifier.json", NULL, 200, {400}, "PUT Location/ has no id"},
    /* Bundle-level */
    {"Bundle-InvalidBundleType.json", NULL, 400, {0}, "type must be batch or transaction"},
    {"Bundle-TypeMissing.json", NULL, 400, {0}, "type is required"},
    /* transactions: all or nothing */
    {"Bundle-Transaction.json", NULL, 400, {0}, "$lookup in a transaction"},
    {"Bundle-TransactionForRollBack.json", NULL, 404, {0}, "GET of a missing Patient rolls back the POST"},
    {"Bundle-TransactionForRollBackWithDelete.json", NULL, 400, {0},
     "entry 2's resource id differs from its request url (checked before its If-Match)"},
    {"Bundle-TransactionWithAllValidRoutes.json", NULL, 400, {0}, "search GETs are not supported yet"},
    {"Bundle-TransactionWithConditionalCreateAndReference.json", NULL, 400, {0},
     "the Patient has identifier.system \"\" (see conditional_targets_resolve_references)"},
    {"Bundle-TransactionWithConditionalReferenceInResourceBody.json", NULL, 400, {0},
     "the conditional reference matches nothing"},
    {"Bundle-TransactionWithConditionalReferenceInResourceBody.json", PAT_12345, 200, {201, 201},
     "the conditional reference matches one Patient"},
    {"Bundle-TransactionWithConditionalReferenceReferringToSameResource.json", NULL, 400, {0},
     "two entries with the same conditional criteria"},
    {"Bundle-TransactionWithConditionalUpdateAndReference.json", NULL, 400, {0},
     "the Patient has identifier.system \"\" (see conditional_targets_resolve_references)"},
    {"Bundle-TransactionWithForeignReferenceInResourceBody.json", NULL, 400, {0},
     "urn:uuid reference to no entry"},
    {"Bundle-TransactionWithInvalidBundleEntry.json", NULL, -1, {0}, "not JSON"},
    {"Bundle-TransactionWithInvalidProcessingRecord.json", NULL, 400, {0},
     "PUT Binary/null without an id in the resource"},
    {"Bundle-TransactionWithInvalidProcessingRoutes.json", NULL, 400, {0}, "$lookup"},
    {"Bundle-TransactionWithInvalidResourceType.json", NULL, 400, {0},
     "conditional reference to the unknown type Patientt"},
    {"Bundle-TransactionWithMetaHistory.json", NULL, 400, {0}, "url parameters on PUT Type/id"},
    {"Bundle-TransactionWithMultipleEntriesModifyingSameResource.json", NULL, 400, {0},
     "PUT and DELETE of Patient/123"},
    {"Bundle-TransactionWithMultipleResourcesWithSameFullUrl.json", NULL, 400, {0}, "same fullUrl"},
    {"Bundle-TransactionWithPOSTFullUrlMatchesWithPUTRequestUrl.json", NULL, 400, {0},
     "POST fullUrl names the resource the PUT changes"},
    {"Bundle-TransactionWithValidBundleEntry.json", NULL, 200, {201, 201, 201, 201}, NULL},
    {"R4-Bundle-TransactionWithReferenceInResourceBody.json", NULL, 400, {0},
     "its conditional reference matches nothing in an empty store"},
    {"R4-Bundle-TransactionWithReferenceInResourceBody.json", PAT_234234, 200,
     {201, 201, 201, 201, 201, 201}, "with the referenced Patient present"},
};

static void ms_one(const ms_case *c) {
    char path[512], rel[256];
    snprintf(rel, sizeof rel, MS "%s", c->file);
    cr_assert(hub_test_corpus(rel, path));
    size_t n;
    char *text = hub_test_read_file(path, &n);
    cr_assert_not_null(text);
    const char *p = text;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) { /* a UTF-8 BOM */
        p += 3;
        n -= 3;
    }
    json_error_t je;
    json_t *b = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    hub_free(text);
    if (c->http == -1) {
        cr_assert_null(b, "%s: expected to be unparsable", c->file);
        return;
    }
    cr_assert_not_null(b, "%s: %s", c->file, je.text);
    if (c->setup) cr_assert_eq(rt_create("Patient", c->setup, NULL), 201);
    int64_t before = total_versions();
    json_t *resp = NULL;
    hub_oo *oo = NULL;
    int http = 0;
    hub_err err;
    hub_status rc = hub_record_bundle(rt_rec, b, &resp, &oo, &http, &err);
    char *why = oo ? oo_text(oo) : NULL;
    cr_assert_eq(http, c->http, "%s (%s): http %d %s", c->file, c->why ? c->why : "",
                 http, why ? why : "");
    if (c->http != 200) {
        cr_assert_neq(rc, HUB_OK);
        cr_assert_null(resp);
        cr_assert_not_null(oo, "%s: an OperationOutcome", c->file);
        cr_assert_eq(total_versions(), before, "%s: nothing written", c->file);
    } else {
        cr_assert_eq(rc, HUB_OK);
        size_t ne = json_array_size(json_object_get(resp, "entry"));
        size_t want = 0;
        while (want < MAXE && c->entries[want]) want++;
        cr_assert_eq(ne, want, "%s: %zu entries", c->file, ne);
        for (size_t i = 0; i < ne; i++) {
            const char *st = entry_status(resp, i);
            char *eo = json_dumps(json_object_get(entry_resp(resp, i), "outcome"), JSON_COMPACT);
            cr_assert_eq(atoi(st), c->entries[i], "%s entry %zu: %s %s", c->file, i, st,
                         eo ? eo : "");
            free(eo);
            const json_t *res = json_object_get(json_array_get(json_object_get(resp, "entry"), i),
                                                "resource");
            if (res) {
                char *s = json_dumps(res, JSON_COMPACT);
                const char *rt = json_string_value(json_object_get(b, "type"));
                if (strcmp(rt, "transaction") == 0)
                    cr_assert_null(strstr(s, "urn:uuid:"), "%s entry %zu: unresolved urn", c->file, i);
                free(s);
            }
        }
    }
    free(why);
    hub_oo_free(oo);
    json_decref(resp);
    json_decref(b);
}

Test(bundle, ms_fhir_server_testfiles, .init = rt_up, .fini = rt_down) {
    char path[512];
    if (!hub_test_corpus(MS "Bundle-Batch.json", path))
        cr_skip("shared corpus absent: " MS);
    /* every Bundle file of the set has a row */
    char *slash = strrchr(path, '/');
    *slash = '\0';
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "Bundle-", 7) != 0 && strncmp(de->d_name, "R4-Bundle-", 10) != 0)
            continue;
        if (!strstr(de->d_name, ".json")) continue;
        bool found = false;
        for (size_t i = 0; i < sizeof ms_cases / sizeof ms_cases[0]; i++)
            found |= strcmp(ms_cases[i].file, de->d_name) == 0;
        cr_assert(found, "no expectation for %s", de->d_name);
        files++;
    }
    closedir(d);
    cr_assert_geq(files, 28);
    for (size_t i = 0; i < sizeof ms_cases / sizeof ms_cases[0]; i++) {
        /* a fresh store per file: the expectations assume an empty record */
        rt_down();
        rt_up();
        ms_one(&ms_cases[i]);
    }
}

Test(bundle, conditional_targets_resolve_references, .init = rt_up, .fini = rt_down) {
    char existing[72];
    cr_assert_eq(rt_create("Patient", "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"s\","
                           "\"value\":\"c1\"}]}", existing), 201);
    int http;
    hub_oo *oo;
    hub_status rc;
    /* conditional create that finds the Patient: references to its
     * fullUrl name the existing one */
    json_t *resp = run_bundle(TX(
        "{\"fullUrl\":\"urn:uuid:9a0e8d36-0000-4000-8000-00000000000a\","
        " \"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"s\",\"value\":\"c1\"}]},"
        " \"request\":{\"method\":\"POST\",\"url\":\"Patient\",\"ifNoneExist\":\"identifier=s|c1\"}},"
        "{\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
        "  \"subject\":{\"reference\":\"urn:uuid:9a0e8d36-0000-4000-8000-00000000000a\"}},"
        " \"request\":{\"method\":\"POST\",\"url\":\"Observation\"}}"), &http, &oo, &rc);
    cr_assert_eq(rc, HUB_OK);
    cr_assert_str_eq(entry_status(resp, 0), "200 OK");
    cr_assert_str_eq(entry_status(resp, 1), "201 Created");
    char want[128];
    snprintf(want, sizeof want, "Patient/%s", existing);
    const json_t *obs = json_object_get(json_array_get(json_object_get(resp, "entry"), 1), "resource");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(obs, "subject"), "reference")), want);
    json_decref(resp);

    /* conditional update: the POST (processed first) still points at the
     * id the PUT resolves to */
    resp = run_bundle(TX(
        "{\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
        "  \"subject\":{\"reference\":\"urn:uuid:9a0e8d36-0000-4000-8000-00000000000b\"}},"
        " \"request\":{\"method\":\"POST\",\"url\":\"Observation\"}},"
        "{\"fullUrl\":\"urn:uuid:9a0e8d36-0000-4000-8000-00000000000b\","
        " \"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"s\",\"value\":\"c1\"}],"
        "  \"active\":true},"
        " \"request\":{\"method\":\"PUT\",\"url\":\"Patient?identifier=s|c1\"}}"), &http, &oo, &rc);
    cr_assert_eq(rc, HUB_OK);
    cr_assert_str_eq(entry_status(resp, 0), "201 Created");
    cr_assert_str_eq(entry_status(resp, 1), "200 OK");
    cr_assert_str_eq(json_string_value(json_object_get(entry_resp(resp, 1), "location")) + 0,
                     (snprintf(want, sizeof want, "Patient/%s/_history/2", existing), want));
    obs = json_object_get(json_array_get(json_object_get(resp, "entry"), 0), "resource");
    snprintf(want, sizeof want, "Patient/%s", existing);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(obs, "subject"), "reference")), want);
    json_decref(resp);
}
