/* record: the unified patient record. One function applies a change (a
 * single REST interaction, or a batch/transaction Bundle from REST or from
 * the v2 mapping) in one store transaction: conditional references resolved,
 * new versions and history written, (later) index rows, MPI links and outbox
 * rows. Reads come from the store's reader connections.
 *
 * Nothing here speaks SQL: versions, history and lookups are calls of the
 * storage interface (hub/store.h). */
#ifndef HUB_RECORD_H
#define HUB_RECORD_H

#include <jansson.h>

#include "hub/core.h"
#include "hub/fhir.h"
#include "hub/store.h"

typedef struct hub_record hub_record;

typedef struct {
    hub_store *store;
    const hub_fhir_defs *defs;
    /* The search-parameter table: what is indexed. NULL indexes only
     * identifiers (tests of the record's own logic). Borrowed. */
    const hub_fhir_sps *search;
    hub_fhir_validate_opts validate;
    int max_bundle_entries; /* a larger Bundle is refused (413); <= 0: 1000 */
} hub_record_cfg;
/* defs may be NULL (tests of the record's own logic): then nothing is
 * validated and any capitalised name is a resource type. */

hub_status hub_record_open(const hub_record_cfg *c, hub_record **out,
                           hub_err *err);
void hub_record_close(hub_record *r);

/* ---- stored versions -------------------------------------------------------- */

/* One version of one resource as stored: the compact JSON, with id,
 * meta.versionId and meta.lastUpdated already in it, so a read sends these
 * bytes as they are. */
typedef struct {
    char type[64];
    char id[72];
    int64_t version;
    int64_t last_updated_ms;
    bool deleted; /* a delete marker: no JSON */
    char *json;   /* heap (hub_free), NUL-terminated; NULL when deleted */
    size_t json_len;
} hub_resource;

void hub_resource_release(hub_resource *r);

/* Current version (version 0) or a given one. HUB_E_NOTFOUND when the type
 * has no such id or version; HUB_OK with deleted=true for a deleted
 * resource (the REST layer answers 410). Any thread. */
hub_status hub_record_read(hub_record *r, const char *type, const char *id,
                           int64_t version, hub_resource *out, hub_err *err);

/* History: instance (type and id), type (id NULL), system (type NULL).
 * Newest first; `since_ms` 0 for no bound; `before` is a paging cursor
 * (0 to start; the callback's versions carry what the next page needs
 * in hub_history_page.next). */
typedef struct {
    const char *type;
    const char *id;
    int64_t since_ms;
    int count;         /* 1..1000 */
    int64_t cursor;    /* 0 = first page; else a value from a previous page */
} hub_history_query;

/* In the callback, res->json is borrowed (valid during the call only; do
 * not release it): history pages are not copied. */
typedef hub_status (*hub_resource_fn)(void *ud, const hub_resource *res);
/* Calls `fn` for each version; sets *next_cursor (0 when no more) and
 * *total (the number of versions matching, for Bundle.total). */
hub_status hub_record_history(hub_record *r, const hub_history_query *q,
                              hub_resource_fn fn, void *ud,
                              int64_t *next_cursor, int64_t *total,
                              hub_err *err);

/* ---- index extraction ---------------------------------------------------------- */

/* The one function that turns a resource into its index rows (search,
 * conditional operations, and later subscription matching): every search
 * parameter of `type` in `sps` evaluated on `res`. Rows (and any string
 * they need: normalized text, split references) are in `a`; the other
 * strings are borrowed from `res`. `d` gives the values' types (may be
 * NULL). HUB_E_LIMIT over 8192 rows, HUB_E_NOMEM. */
hub_status hub_record_extract(const hub_fhir_defs *d, const hub_fhir_sps *sps,
                              hub_arena *a, const char *type, const json_t *res,
                              hub_store_token **rows, size_t *n);

/* ---- search ------------------------------------------------------------------------ */

/* A search request: GET [base]/Type?query, POST [base]/Type/_search (the
 * form body as `query`), compartment search [base]/Patient/<id>/Type. */
typedef struct {
    const char *type;         /* NULL: a system search (_type, or every type) */
    const char *query;        /* the raw query string (no '?'), may be NULL */
    const char *base;         /* absolute base URL for fullUrl and links */
    const char *path;         /* "Observation" or "Patient/1/Observation": links */
    const char *compartment;  /* a Patient id: the Patient compartment, or NULL */
    bool strict;              /* Prefer: handling=strict */
} hub_search_req;

/* Runs a search: the searchset Bundle as compact JSON text in *out (appended),
 * with self/next links (next carries an opaque _cursor), entries with
 * search.mode match or include, and an OperationOutcome entry (mode outcome)
 * listing ignored parameters when lenient. Returns HUB_OK with
 * *http_status 200, or a 4xx in *http_status with *outcome (owned by the
 * caller): 400 for an unknown parameter under strict handling, a malformed
 * value, an unsupported modifier; the expression names the
 * parameter. HUB_E_STORE etc. when the store failed. */
hub_status hub_record_search(hub_record *r, const hub_search_req *req, hub_buf *out,
                             int *http_status, hub_oo **outcome, hub_err *err);

/* Patient/$everything: the Patient (with the records the patient index
 * links to it: hub_record_patient_ids) and every resource in their Patient
 * compartments, as a searchset Bundle like hub_record_search's, paged
 * (next links carry an opaque _cursor). */
typedef struct {
    const char *id;      /* the Patient */
    const char *since;   /* _since: only resources updated at or after, or NULL */
    const char *types;   /* _type: comma-separated types, or NULL for all */
    int count;           /* _count: page size (0: the default, 20) */
    const char *cursor;  /* _cursor of a next link, or NULL */
    const char *base;    /* absolute base URL */
} hub_everything_req;
/* *http_status 200, or 404 (no such Patient), 410 (deleted), 400 (bad
 * _since, _type or cursor) with *outcome (owned by the caller). */
hub_status hub_record_everything(hub_record *r, const hub_everything_req *req, hub_buf *out,
                                 int *http_status, hub_oo **outcome, hub_err *err);

/* Rebuilds the index rows of every current resource (type NULL) or of one
 * type from its stored JSON with the record's search table (after the
 * table or the extraction changed: resources written before keep their old
 * rows until then). *n gets the number of resources reindexed. Runs writer
 * jobs of a few hundred resources each, so the hub may keep serving. */
hub_status hub_record_reindex(hub_record *r, const char *type, int64_t *n, hub_err *err);

/* The search parameters that work for `type` (for the CapabilityStatement):
 * calls fn for each with its code, type and the definition's canonical URL. */
typedef void (*hub_search_param_fn)(void *ud, const char *code, const char *type,
                                    const char *url);
void hub_record_search_params(hub_record *r, const char *type, hub_search_param_fn fn,
                              void *ud);

/* ---- changes ------------------------------------------------------------------ */

/* Who made a change, or asked for data: carried from the adapter (the
 * MLLP channel, the HTTP request and its token) to the record, and from
 * there to the audit trail and the router. Strings borrowed; any may be
 * NULL. */
typedef struct {
    const char *client;   /* the OAuth client id of the token */
    const char *subject;  /* TLS client-certificate subject, or the
                             channel's configured sender identity */
    const char *peer;     /* "ip:port" */
    const char *channel;  /* the MLLP channel's name, or "http" */
    const char *sender;   /* MSH-3^MSH-4 of the v2 message behind it */
    int64_t message_id;   /* that message's journal row, 0 when none */
} hub_actor;

typedef enum {
    HUB_OP_READ,   /* GET in a Bundle */
    HUB_OP_CREATE, /* POST Type (If-None-Exist: conditional create) */
    HUB_OP_UPDATE, /* PUT Type/id, or PUT Type?criteria (conditional) */
    HUB_OP_PATCH,  /* PATCH Type/id or Type?criteria, JSON Patch */
    HUB_OP_DELETE, /* DELETE Type/id, or Type?criteria (conditional) */
} hub_op_kind;

/* One interaction. The caller fills the request part; apply fills the
 * result part. Strings are borrowed for the call. */
typedef struct {
    /* request */
    hub_op_kind kind;
    const char *type;
    const char *id;            /* NULL for create and conditional forms */
    int64_t version;           /* READ of a given version (vread), else 0 */
    const char *criteria;      /* conditional: query string, or NULL */
    const char *if_match;      /* ETag, W/"3" or "3", or NULL */
    const char *if_none_exist; /* conditional create's query, or NULL */
    json_t *resource;          /* CREATE/UPDATE body (borrowed; apply may
                                  set id and meta on it) */
    const json_t *patch;       /* PATCH body */
    const char *full_url;      /* Bundle entry fullUrl (urn:uuid:...) */
    const hub_actor *actor;    /* who asked (audit, provenance), or NULL */
    /* UPDATE only: overlay the body on the stored resource instead of
     * replacing it (the v2 mapping's upserts, mappings/README.md): each
     * top-level element of the body replaces the stored one (a choice
     * element replaces every form of it, `x` and `_x` go together), stored
     * elements the body lacks are kept, and the names in `clear` (a JSON
     * array of strings, borrowed) are removed. A Bundle entry asks for it
     * with request.extension v2-merge (valueBoolean true) and v2-clear
     * (valueString, repeatable). */
    bool merge;
    const json_t *clear;

    /* result */
    int status;         /* HTTP status: 200 201 204 400 404 409 410 412 422 */
    hub_resource res;   /* the version written or read (release it) */
    bool created;       /* update-as-create, or create */
    hub_oo *outcome;    /* issues (owned by the op after apply; may be NULL) */
} hub_record_op;

/* Statuses apply() sets (op->status):
 *   READ    200; 404 no such resource/version; 410 deleted (res says which
 *           version).
 *   CREATE  201 (server-assigned random id, the body's id is ignored);
 *           If-None-Exist: 0 matches 201, 1 match 200 with the existing
 *           resource in res, >1 412.
 *   UPDATE  200; 201 when it creates (new id from the client, or a deleted
 *           resource re-created as a new version); body without id or with
 *           another id 400; conditional: 0 matches create (the body's id if
 *           any, 409 if that id is taken), 1 match update it (400 if the
 *           body's id differs), >1 412.
 *   PATCH   200; 404 missing, 410 deleted, 400 malformed patch, 422 a failed
 *           test/missing path or an invalid result, conditional 0 -> 404,
 *           >1 -> 412. Runs on the writer (it needs the stored version).
 *   DELETE  204 (a delete marker version; history kept); 204 with no new
 *           version when the resource is missing or already deleted
 *           (idempotent); conditional 0 -> 204, 1 -> delete, >1 -> 412.
 *   If-Match (W/"n", "n" or n): stale 412; given for a missing resource
 *           412 (RFC 7232: no current representation to match).
 *   Conditional criteria: a search (hub_record_search's parameters, strict
 *           handling: an unknown parameter or modifier is a 400) when the
 *           record has the search table (cfg.search); without it only `_id`
 *           and `identifier` (system|value, |value, value), ANDed.
 *   Invalid resource (hub_fhir_validate) 400 with its issues; resourceType
 *   not matching op->type 400; unknown type 404 (400 when empty).
 * In a transaction, references equal to another entry's fullUrl become
 * Type/id of that entry's target; "Type?criteria" references are resolved
 * (0 matches 400, >1 412); a urn:uuid/urn:oid reference naming no entry is
 * 400; one resource changed by two entries 400. */

/* Applies `ops` in one store transaction and waits for the commit.
 * atomic: a transaction (all or nothing; entries processed in the order
 * the specification prescribes: DELETE, POST, PUT/PATCH, GET; urn:uuid and
 * conditional references resolved between entries). Not atomic: a batch,
 * each op independent (its own savepoint). Every resource written is
 * validated first. Returns HUB_OK when the commit happened (look at each
 * op's status), HUB_E_INVALID/HUB_E_CONFLICT/... when an atomic apply
 * failed (the failing op's status and outcome say why; nothing written),
 * HUB_E_STORE/HUB_E_STATE when the store failed. */
hub_status hub_record_apply(hub_record *r, hub_record_op *ops, size_t n,
                            bool atomic, hub_err *err);
void hub_record_op_release(hub_record_op *op);

/* A batch or transaction Bundle in, its response Bundle out (a new
 * reference in *response). Per-entry errors are in the response; a failed
 * transaction returns non-OK with *outcome set (the caller answers with its
 * status: *http_status). */
hub_status hub_record_bundle(hub_record *r, const json_t *bundle,
                             json_t **response, hub_oo **outcome,
                             int *http_status, hub_err *err);

/* The same, the entries' changes attributed to `actor` (borrowed for the
 * call; may be NULL). */
hub_status hub_record_bundle_as(hub_record *r, const json_t *bundle, const hub_actor *actor,
                                json_t **response, hub_oo **outcome,
                                int *http_status, hub_err *err);

/* ---- applying inside another writer job ----------------------------------- */

/* A transaction Bundle prepared on the caller's thread (entries parsed,
 * resources validated and encoded as far as can be done without the
 * store), to be applied inside a writer job that does more in the same
 * transaction (ingest: the journal row and the mapped Bundle commit
 * together, so an AA means the record has it). */
typedef struct hub_record_txn hub_record_txn;

/* Prepares `bundle` (type transaction; the Bundle must outlive the txn).
 * The entries' resources are used in place, not copied: the txn changes
 * them (id, meta, resolved references), so the caller hands the Bundle
 * over and reads nothing of it while the txn lives.
 * Errors: HUB_E_INVALID / HUB_E_NOTFOUND / HUB_E_CONFLICT / HUB_E_LIMIT
 * with *outcome (owned by the caller) saying which entry and why;
 * HUB_E_NOMEM. */
hub_status hub_record_bundle_prepare(hub_record *r, json_t *bundle,
                                     hub_record_txn **out, hub_oo **outcome,
                                     hub_err *err);
/* Inside a writer job: applies the prepared Bundle on `tx`. HUB_OK when
 * every entry succeeded. An entry that fails (412 several matches, 409,
 * 400 a reference naming no entry) returns HUB_E_INVALID/HUB_E_CONFLICT
 * with *outcome set (owned by the caller) after writing nothing the caller
 * must keep: the caller rolls back (hub_store_sp_end(tx, false)). A store
 * failure returns HUB_E_STORE. Call once. */
hub_status hub_record_bundle_tx(hub_record_txn *t, hub_store_tx *tx,
                                hub_oo **outcome, hub_err *err);
/* Entries (the Provenance included) applied; 0 before bundle_tx. */
size_t hub_record_txn_count(const hub_record_txn *t);
/* Who the prepared entries come from (set before bundle_tx; borrowed
 * until then). */
void hub_record_txn_set_actor(hub_record_txn *t, const hub_actor *actor);
void hub_record_txn_free(hub_record_txn *t); /* NULL is a no-op */

/* ---- change listeners ------------------------------------------------------ */

/* A version just written, inside the writer's transaction (before the
 * commit). Strings borrowed for the call. */
typedef struct {
    hub_op_kind kind;         /* CREATE, UPDATE, PATCH or DELETE */
    const char *type;
    const char *id;
    int64_t version;
    int64_t last_updated_ms;
    bool created;             /* version 1, or a re-create after delete */
    bool deleted;             /* a delete marker (json NULL) */
    const char *json;         /* the compact JSON stored, NUL-terminated */
    size_t json_len;
    const hub_store_token *toks; /* its stored index rows (none when deleted;
                                    no alias rows) */
    size_t ntoks;
    const hub_actor *actor;   /* NULL when unknown */
    int depth;                /* 0: the client's own change; n: written by
                                 a listener handling a depth n-1 change */
} hub_record_change;

/* Called on the writer thread, in the transaction, after each version is
 * written: the patient index links patients, the router writes outbox
 * rows, the audit trail its rows, so that all of them commit with the
 * change or not at all. A listener may read (hub_store_res_get) and write
 * (hub_record_put_tx) on tx. Non-OK fails the job: the whole transaction
 * (atomic) or that entry (batch) is rolled back, and the caller sees a
 * store failure (500), so return non-OK only when the store failed;
 * except HUB_E_INVALID for a client's own change (depth 0): the listener
 * refuses the resource, and the op fails with 400 and an issue made of
 * err (where: the FHIRPath, msg: the text; no values). */
typedef hub_status (*hub_record_listener)(void *ud, hub_store_tx *tx,
                                          const hub_record_change *ch, hub_err *err);

/* Registers a listener (at start-up, before the record is used; called in
 * registration order). HUB_E_LIMIT beyond 8. */
hub_status hub_record_listen(hub_record *r, hub_record_listener fn, void *ud);

/* A version about to be written, inside the writer's transaction, after
 * the preconditions (If-Match, conditional criteria) passed and before
 * anything of it is stored. `res` is the resource as it will be stored
 * (id set; meta.versionId/lastUpdated may still be placeholders). The
 * hook may amend `res` (never its resourceType, id or meta) and sets
 * *changed when it did: the record then encodes and indexes it again, so
 * the amended resource is the one version written (the patient index puts
 * the source's `refer` link in this way). Deletes have no body and run no
 * hook. Strings borrowed for the call. */
typedef struct {
    hub_op_kind kind;         /* CREATE, UPDATE or PATCH */
    const char *type;
    const char *id;
    int64_t version;          /* the version it will be */
    json_t *res;
    const hub_actor *actor;   /* NULL when unknown */
    int depth;                /* as in hub_record_change */
} hub_record_pending;

/* A hook may read and write on tx (hub_record_put_tx of other resources,
 * never of the pending one). Non-OK fails the write as a listener's does
 * (HUB_E_INVALID at depth 0: a 400 made of err; else a store failure). */
typedef hub_status (*hub_record_prewrite_fn)(void *ud, hub_store_tx *tx,
                                             hub_record_pending *pw, bool *changed,
                                             hub_err *err);

/* Registers a pre-write hook for resources of `type` (borrowed: a string
 * that outlives the record), at start-up, before the record is used;
 * called in registration order. HUB_E_LIMIT beyond 4. */
hub_status hub_record_prewrite(hub_record *r, const char *type, hub_record_prewrite_fn fn,
                               void *ud);

/* Inside a writer job (a listener, or a module's own job): writes a new
 * version of type/id from `res` (borrowed; its id and meta.versionId/
 * lastUpdated are set) with its index rows, without validation (the
 * caller builds it), and tells the listeners with depth + 1. id NULL
 * creates a resource with a new server id. `deleted` writes a delete
 * marker instead (res NULL). When `out` is given it gets the version
 * written (release it). HUB_E_LIMIT when depth is over 4 (listeners
 * feeding each other), HUB_E_CONFLICT / HUB_E_STORE from the store. */
hub_status hub_record_put_tx(hub_record *r, hub_store_tx *tx, const char *type,
                             const char *id, json_t *res, bool deleted,
                             const hub_actor *actor, int depth, hub_resource *out,
                             hub_err *err);

/* ---- one person, several records ---------------------------------------------

 * The patient index (MPI) answers which Patient ids hold one person's data:
 * for a golden Patient, itself and every source Patient linked to it; for
 * any other id, that id alone. Search uses it wherever a Patient is named
 * (the compartment, Patient/$everything, a reference parameter that
 * targets Patient: Observation?patient=<golden>). Called on reader threads.
 * The ids (and the array) go in `a`. Without an index registered, a patient
 * is only itself. */
typedef hub_status (*hub_record_patient_ids_fn)(void *ud, const char *id, hub_arena *a,
                                                const char ***ids, size_t *n,
                                                hub_err *err);
/* At start-up, before use. */
void hub_record_set_patient_ids(hub_record *r, hub_record_patient_ids_fn fn, void *ud);
/* The ids for `id` (the registered function, or {id}). */
hub_status hub_record_patient_ids(hub_record *r, const char *id, hub_arena *a,
                                  const char ***ids, size_t *n, hub_err *err);

/* Search criteria ("code=x&patient=Patient/1", no '?') on `type` into a
 * store query (strict: an unknown parameter or modifier is refused), for
 * modules that match resources in memory (the router). Returns 0, or the
 * 4xx with an issue in oo (its expression names the parameter). The query
 * and its strings live in `a`. */
int hub_record_criteria(hub_record *r, hub_arena *a, const char *type, const char *criteria,
                        hub_store_query **q, hub_oo *oo);

/* The record's tables (for listeners and operations that need them). */
const hub_fhir_defs *hub_record_defs(const hub_record *r);
const hub_fhir_sps *hub_record_sps(const hub_record *r);
hub_store *hub_record_store(const hub_record *r);

#endif
