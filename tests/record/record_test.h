/* Shared fixture of the record tests: a real store in a temp dir and a
 * record on it. Criterion runs each test in its own process. */
#ifndef RECORD_TEST_H
#define RECORD_TEST_H

#include "hub/record.h"
#include "hub_test.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static char rt_dir[256];
static hub_store *rt_store;
static hub_record *rt_rec;
static hub_fhir_defs *rt_defs;

static inline void rt_open(bool with_defs) {
    hub_err err;
    hub_test_tmpdir(rt_dir);
    hub_store_cfg sc = {.dir = rt_dir, .durable = false, .commit_batch_max = 512};
    cr_assert_eq(hub_store_open(&sc, &rt_store, &err), HUB_OK, "%s", err.msg);
    rt_defs = NULL;
    if (with_defs)
        cr_assert_eq(hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4",
                                        &rt_defs, &err),
                     HUB_OK, "%s", err.msg);
    hub_record_cfg rc = {.store = rt_store, .defs = rt_defs, .max_bundle_entries = 100};
    cr_assert_eq(hub_record_open(&rc, &rt_rec, &err), HUB_OK, "%s", err.msg);
}

/* Every write validated against the R4 tables, as the hub runs. */
static inline void rt_up(void) { rt_open(true); }
/* No tables: the record's own logic alone (the JSON stays minimal). */
static inline void rt_up_bare(void) { rt_open(false); }

static inline void rt_down(void) {
    hub_record_close(rt_rec);
    hub_store_close(rt_store);
    hub_fhir_defs_free(rt_defs);
    rt_defs = NULL;
    hub_test_rmtree(rt_dir);
}

static inline json_t *rt_json(const char *s) {
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    cr_assert_not_null(j, "bad test JSON: %s", je.text);
    return j;
}

/* One op through apply; returns its status. The op keeps its results
 * (release with hub_record_op_release). */
static inline int rt_apply1(hub_record_op *op) {
    hub_err err;
    hub_err_clear(&err);
    hub_status rc = hub_record_apply(rt_rec, op, 1, false, &err);
    cr_assert_eq(rc, HUB_OK, "apply: %s", err.msg);
    return op->status;
}

/* Creates `body` (a JSON text) as `type`; fills id. */
static inline int rt_create(const char *type, const char *body, char id[72]) {
    json_t *res = rt_json(body);
    hub_record_op op = {.kind = HUB_OP_CREATE, .type = type, .resource = res};
    int st = rt_apply1(&op);
    if (id) snprintf(id, 72, "%s", op.res.id);
    hub_record_op_release(&op);
    json_decref(res);
    return st;
}

static inline int rt_update(const char *type, const char *id, const char *body,
                            const char *if_match, int64_t *version) {
    json_t *res = rt_json(body);
    hub_record_op op = {.kind = HUB_OP_UPDATE, .type = type, .id = id,
                        .resource = res, .if_match = if_match};
    int st = rt_apply1(&op);
    if (version) *version = op.res.version;
    hub_record_op_release(&op);
    json_decref(res);
    return st;
}

/* The issue diagnostics of an op's outcome, joined (for asserts). */
static inline void rt_outcome_text(const hub_record_op *op, char *out, size_t n) {
    out[0] = '\0';
    if (op->outcome == NULL) return;
    json_t *oo = hub_oo_json(op->outcome);
    char *s = json_dumps(oo, JSON_COMPACT);
    snprintf(out, n, "%s", s ? s : "");
    free(s);
    json_decref(oo);
}

#endif
