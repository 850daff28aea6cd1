/* record internals shared by record.c, bundle.c and index.c. */
#ifndef HUB_RECORD_INTERNAL_H
#define HUB_RECORD_INTERNAL_H

#include "hub/record.h"

/* Stored resources as last parsed by a merge (stored.c). */
typedef struct hub__stored hub__stored;
hub__stored *hub__stored_new(void); /* NULL when out of memory: no cache */
void hub__stored_free(hub__stored *c); /* NULL is a no-op */
/* The parse of `json` (type/id's current bytes, len of them) when it is
 * the one kept: a new reference, not to be changed. Else NULL. */
json_t *hub__stored_get(hub__stored *c, const char *type, const char *id,
                        const char *json, size_t len);
/* Keeps doc (a reference) as the parse of json, replacing what the slot
 * held; doc must not be changed afterwards. */
void hub__stored_put(hub__stored *c, const char *type, const char *id, const char *json,
                     size_t len, json_t *doc);

struct hub_record {
    hub_store *store;
    hub__stored *stored; /* the writer's; may be NULL */
    const hub_fhir_defs *defs;
    const hub_fhir_sps *search;
    hub_fhir_validate_opts vopts;
    int max_bundle_entries;
    struct {
        hub_record_listener fn;
        void *ud;
    } listeners[8];
    int nlisteners;
    struct {
        const char *type;
        hub_record_prewrite_fn fn;
        void *ud;
    } prewrites[4];
    int nprewrites;
    hub_record_patient_ids_fn patient_ids;
    void *patient_ids_ud;
};

/* Tells the listeners about a version written (record.c). */
hub_status hub__record_notify(hub_record *r, hub_store_tx *tx, const hub_record_change *ch,
                              hub_err *err);

/* Runs the pre-write hooks of pw->type; *changed when one amended
 * pw->res (record.c). */
hub_status hub__record_prewrite(hub_record *r, hub_store_tx *tx, hub_record_pending *pw,
                                bool *changed, hub_err *err);

/* Resource ids: [A-Za-z0-9-.]{1,64}. */
bool hub__record_id_ok(const char *id);

/* Index rows a resource may have (hub_record_extract's limit). */
#define HUB__RECORD_MAX_ROWS 8192

/* hub_record_extract without the rows of alias parameters (hub_fhir_sp
 * same): the rows the store keeps, which is all a write needs. Queries
 * name an alias's rows by the parameters it repeats (search.c), so
 * neither a search nor a subscription reads them; extracting them cost
 * 36k of a create's 469k instructions (bench_search_load, callgrind). */
hub_status hub__record_extract_stored(const hub_fhir_defs *d, const hub_fhir_sps *sps,
                                      hub_arena *a, const char *type, const json_t *res,
                                      hub_store_token **rows, size_t *n);

/* hub_record_apply; `bundle` says the ops are a Bundle's entries (then a
 * transaction's urn:uuid/urn:oid references must name one of them). */
hub_status hub__record_apply(hub_record *r, hub_record_op *ops, size_t n,
                             bool atomic, bool bundle, hub_err *err);

/* Sets op->status and adds one error issue to op->outcome. Returns the
 * status. */
int hub__op_fail(hub_record_op *op, int status, const char *code,
                 const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Conditional criteria into a store query (strict: an unknown parameter
 * is a 400); strings in `a`. 0 or the HTTP status, with issues in oo. */
int hub__search_criteria(hub_record *r, hub_arena *a, const char *type, const char *criteria,
                         hub_store_query **q, hub_oo *oo);

/* bundle.c -> record.c: prepares `ops` (n of them; `owner` holds what
 * they point into and is freed with owner_free by hub_record_txn_free, or
 * at once on allocation failure). On a failing op, *failed_at is its index
 * and *out is still set (free it). */
hub_status hub__txn_prepare(hub_record *r, hub_record_op *ops, size_t n,
                            void *owner, void (*owner_free)(void *),
                            hub_record_txn **out, int *failed_at, hub_err *err);
hub_record_op *hub__txn_ops(hub_record_txn *t, size_t *n);

#endif
