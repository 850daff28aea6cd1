/* libFuzzer target for FHIR search: the input is "Type?query" (first line)
 * run by hub_record_search over a real store holding a few resources, with
 * the R4 and search-parameter tables; "?query" (no type) is a system
 * search, "$everything?query" Patient/p1/$everything with the query's
 * _since, _type, _count and _cursor. Also feeds the same bytes to the
 * FHIRPath compiler and the date parser. Invariants: a 200 is a Bundle of
 * JSON text, anything else a 4xx with an OperationOutcome. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_record.h"

static void put(const char *type, const char *body) {
    json_error_t je;
    json_t *res = json_loads(body, 0, &je);
    CHECK(res);
    hub_record_op op = {.kind = HUB_OP_CREATE, .type = type, .resource = res};
    CHECK(hub_record_apply(rec, &op, 1, false, NULL) == HUB_OK);
    hub_record_op_release(&op);
    json_decref(res);
}

static void setup(void) {
    fz_record_open("search");
    put("Patient", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"A\"}],\"birthDate\":\"1970\","
                   "\"identifier\":[{\"system\":\"s\",\"value\":\"1\"}]}");
    json_t *p1 = json_pack("{s:s,s:s}", "resourceType", "Patient", "id", "p1");
    CHECK(p1);
    hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .id = "p1", .resource = p1};
    CHECK(hub_record_apply(rec, &op, 1, false, NULL) == HUB_OK);
    hub_record_op_release(&op);
    json_decref(p1);
    put("Observation", "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":"
                       "[{\"system\":\"l\",\"code\":\"c\"}]},\"subject\":{\"reference\":\"Patient/p1\"},"
                       "\"valueQuantity\":{\"value\":2,\"code\":\"kg\"}}");
    put("Observation", "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                       "\"valueQuantity\":{\"value\":1.5,\"code\":\"kg\"},\"effectiveDateTime\":\"2024\"}");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (rec == NULL) setup();
    if (n > 4096) return 0;
    char *s = malloc(n + 1);
    CHECK(s);
    memcpy(s, data, n);
    s[n] = '\0';
    if (strlen(s) != n) { /* an embedded NUL: the HTTP layer never passes one */
        free(s);
        return 0;
    }
    /* FHIRPath and dates on the same bytes */
    hub_fhirpath *fp = NULL;
    if (hub_fhirpath_compile(s, &fp, NULL) == HUB_OK) hub_fhirpath_free(fp);
    int64_t lo, hi;
    if (hub_fhir_date_range(s, n, &lo, &hi) == HUB_OK) CHECK(lo < hi);

    char *q = strchr(s, '?');
    const char *type = "Patient";
    bool everything = false;
    if (q) {
        *q++ = '\0';
        if (hub_fhir_is_resource(defs, s)) type = s;
        else if (*s == '\0') type = NULL;
        else everything = strcmp(s, "$everything") == 0;
    } else {
        q = s;
    }
    hub_buf out;
    hub_buf_init(&out);
    int st = 0;
    hub_oo *oo = NULL;
    hub_err err;
    hub_status rc;
    if (everything) {
        hub_everything_req er = {.id = "p1", .base = "http://h/fhir"};
        for (char *kv = strtok(q, "&"); kv; kv = strtok(NULL, "&")) {
            char *eq = strchr(kv, '=');
            if (!eq) continue;
            *eq++ = '\0';
            if (!strcmp(kv, "_since")) er.since = eq;
            else if (!strcmp(kv, "_type")) er.types = eq;
            else if (!strcmp(kv, "_count")) er.count = atoi(eq);
            else if (!strcmp(kv, "_cursor")) er.cursor = eq;
        }
        rc = hub_record_everything(rec, &er, &out, &st, &oo, &err);
    } else {
        hub_search_req req = {.type = type, .query = q, .base = "http://h/fhir",
                              .path = type ? type : "", .strict = n % 2 == 0};
        rc = hub_record_search(rec, &req, &out, &st, &oo, &err);
    }
    if (rc == HUB_OK && st == 200) {
        json_error_t je;
        json_t *b = json_loadb(out.p, out.n, 0, &je);
        CHECK(b && json_object_get(b, "resourceType"));
        json_decref(b);
    } else if (rc == HUB_OK) {
        CHECK(st >= 400 && st < 600 && oo);
    }
    hub_oo_free(oo);
    hub_buf_release(&out);
    free(s);
    return 0;
}
