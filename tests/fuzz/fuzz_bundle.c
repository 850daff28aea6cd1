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

#include "hub/record.h"

#define CHECK(c)           \
    do {                   \
        if (!(c)) abort(); \
    } while (0)

static hub_fhir_defs *defs;
static hub_fhir_sps *sps;
static hub_store *store;
static hub_record *rec;

static char dir[64];

/* The store's files go with the process. */
static void teardown(void) {
    hub_record_close(rec);
    hub_store_close(store);
    hub_fhir_sps_free(sps);
    hub_fhir_defs_free(defs);
    const char *const files[] = {"hub.db", "hub.db-wal", "hub.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void setup(void) {
    CHECK(hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &defs, NULL) == HUB_OK);
    CHECK(hub_fhir_sps_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &sps, NULL) == HUB_OK);
    char tmpl[] = "/tmp/hub-fuzz-bundle-XXXXXX";
    CHECK(mkdtemp(tmpl) != NULL);
    snprintf(dir, sizeof dir, "%s", tmpl);
    atexit(teardown);
    hub_store_cfg sc = {.dir = dir, .durable = false};
    CHECK(hub_store_open(&sc, &store, NULL) == HUB_OK);
    hub_record_cfg rc = {.store = store, .defs = defs, .search = sps, .max_bundle_entries = 50};
    CHECK(hub_record_open(&rc, &rec, NULL) == HUB_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (rec == NULL) setup();
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
