/* libFuzzer target for batch/transaction Bundles: hub_record_bundle on a
 * record over a real store (a temporary directory, not durable) with the
 * R4 tables and the search parameters (so every written resource goes
 * through the index extraction and its rows into the store). Invariants: either a response Bundle (200) with one entry per
 * request entry, each with a "NNN Reason" status, or no response and an
 * OperationOutcome with a 4xx/5xx status. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (rec == NULL) fz_record_open("bundle");
    json_error_t je;
    json_t *b = json_loadb((const char *)data, n, JSON_REJECT_DUPLICATES, &je);
    if (b == NULL) return 0;
    json_t *resp = NULL;
    hub_oo *oo = NULL;
    int http = 0;
    hub_err err;
    hub_status rc = hub_record_bundle(rec, b, &resp, &oo, &http, &err);
    if (rc == HUB_OK) {
        CHECK(resp != NULL && http == 200 && oo == NULL);
        const json_t *req = json_object_get(b, "entry");
        const json_t *got = json_object_get(resp, "entry");
        CHECK(json_array_size(got) == json_array_size(req));
        size_t i;
        const json_t *e;
        json_array_foreach(got, i, e) {
            const char *st = json_string_value(json_object_get(json_object_get(e, "response"), "status"));
            CHECK(st && strlen(st) > 4 && st[3] == ' ' && st[0] >= '1' && st[0] <= '5');
        }
    } else {
        CHECK(resp == NULL && oo != NULL && http >= 400 && http <= 599);
        json_t *j = hub_oo_json(oo);
        CHECK(j != NULL);
        json_decref(j);
    }
    json_decref(resp);
    hub_oo_free(oo);
    json_decref(b);
    return 0;
}
