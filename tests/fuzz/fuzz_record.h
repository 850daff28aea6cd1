/* The record the record-level fuzz targets drive: the R4 tables, the
 * search parameters, and a real store (not durable) in a temporary
 * directory whose files go with the process. */
#ifndef HUB_FUZZ_RECORD_H
#define HUB_FUZZ_RECORD_H

#include <stdio.h>
#include <stdlib.h>
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

static void fz_record_close(void) {
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

/* Opens defs, sps, store and rec in /tmp/hub-fuzz-NAME-XXXXXX. */
static void fz_record_open(const char *name) {
    CHECK(hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &defs, NULL) == HUB_OK);
    CHECK(hub_fhir_sps_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &sps, NULL) == HUB_OK);
    snprintf(dir, sizeof dir, "/tmp/hub-fuzz-%s-XXXXXX", name);
    CHECK(mkdtemp(dir) != NULL);
    atexit(fz_record_close);
    hub_store_cfg sc = {.dir = dir, .durable = false};
    CHECK(hub_store_open(&sc, &store, NULL) == HUB_OK);
    hub_record_cfg rc = {.store = store, .defs = defs, .search = sps, .max_bundle_entries = 50};
    CHECK(hub_record_open(&rc, &rec, NULL) == HUB_OK);
}

#endif
