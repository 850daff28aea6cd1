/* Reindex: every current resource's index rows rebuilt from its stored
 * JSON by the one extraction function, in writer jobs of a batch each
 * (the store's v2 -> v3 migration left older resources without their
 * date and number rows; a new search table or extraction needs the same). */
#include "internal.h"

#include <pthread.h>
#include <string.h>

#define BATCH 256

typedef struct {
    char type[64];
    char id[72];
    char *json;
    size_t len;
} item;

typedef struct {
    hub_store_job job;
    hub_record *r;
    item items[BATCH];
    size_t n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool finished;
    hub_status rc;
    hub_err err;
} batch;

static hub_status collect(void *ud, const hub_store_version *v) {
    batch *b = ud;
    item *it = &b->items[b->n];
    if (strlen(v->type) >= sizeof it->type || strlen(v->id) >= sizeof it->id) return HUB_OK;
    snprintf(it->type, sizeof it->type, "%s", v->type);
    snprintf(it->id, sizeof it->id, "%s", v->id);
    it->json = hub_malloc(v->json_len + 1);
    if (!it->json) return HUB_E_NOMEM;
    memcpy(it->json, v->json, v->json_len);
    it->json[v->json_len] = '\0';
    it->len = v->json_len;
    b->n++;
    return HUB_OK;
}

static hub_status run(hub_store_tx *tx, hub_store_job *job, hub_err *err) {
    batch *b = job->ud;
    hub_arena a;
    hub_arena_init(&a, 16384);
    hub_status rc = HUB_OK;
    for (size_t i = 0; i < b->n && !rc; i++) {
        json_error_t je;
        json_t *res = json_loadb(b->items[i].json, b->items[i].len, 0, &je);
        if (!res) continue; /* not ours to judge: left as it is */
        hub_store_token *rows;
        size_t nrows;
        rc = hub__record_extract_stored(b->r->defs, b->r->search, &a, b->items[i].type, res,
                                        &rows, &nrows);
        if (rc == HUB_E_LIMIT) rc = HUB_OK, nrows = 0, rows = NULL;
        if (!rc) rc = hub_store_res_index(tx, b->items[i].type, b->items[i].id, rows, nrows, err);
        else if (rc == HUB_E_NOMEM) hub_err_set(err, rc, "reindex", "out of memory");
        json_decref(res);
        hub_arena_reset(&a);
    }
    hub_arena_release(&a);
    return rc;
}

static void done(hub_store_job *job, hub_status rc, const hub_err *err) {
    batch *b = job->ud;
    pthread_mutex_lock(&b->mu);
    b->rc = rc;
    if (rc && err) b->err = *err;
    b->finished = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

hub_status hub_record_reindex(hub_record *r, const char *type, int64_t *n, hub_err *err) {
    *n = 0;
    batch *b = hub_calloc(1, sizeof *b);
    if (!b) return hub_err_set(err, HUB_E_NOMEM, "reindex", "out of memory");
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->r = r;
    char after_type[64] = "", after_id[72] = "";
    hub_status rc = HUB_OK;
    for (;;) {
        b->n = 0;
        rc = hub_store_res_scan(r->store, type, after_type, after_id, BATCH, collect, b, err);
        if (rc == HUB_E_NOMEM) hub_err_set(err, rc, "reindex", "out of memory");
        if (rc) {
            for (size_t i = 0; i < b->n; i++) hub_free(b->items[i].json);
            break;
        }
        if (b->n == 0) break;
        snprintf(after_type, sizeof after_type, "%s", b->items[b->n - 1].type);
        snprintf(after_id, sizeof after_id, "%s", b->items[b->n - 1].id);
        b->finished = false;
        b->job = (hub_store_job){.run = run, .done = done, .ud = b};
        rc = hub_store_submit(r->store, &b->job, err);
        if (!rc) {
            pthread_mutex_lock(&b->mu);
            while (!b->finished) pthread_cond_wait(&b->cv, &b->mu);
            pthread_mutex_unlock(&b->mu);
            rc = b->rc;
            if (rc && err) *err = b->err;
        }
        for (size_t i = 0; i < b->n; i++) hub_free(b->items[i].json);
        if (rc) break;
        *n += (int64_t)b->n;
        if (b->n < BATCH) break;
    }
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    hub_free(b);
    return rc;
}
