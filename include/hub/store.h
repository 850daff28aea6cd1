/* store: the storage interface. SQLite is the embedded default; a
 * PostgreSQL backend implements the same calls later, so nothing above this
 * header speaks SQL.
 *
 * Threads: one write connection, used by one thread at a time: the writer
 * thread, which groups commits (many jobs, one transaction, one fsync), or
 * a caller of hub_store_run that found the writer idle (the MLLP loop, so
 * that a message costs no thread hand-off). Readers use connections of
 * their own, taken from a small pool, from any thread. */
#ifndef HUB_STORE_H
#define HUB_STORE_H

#include "hub/core.h"

typedef struct hub_store hub_store;

typedef struct {
    const char *dir;      /* data directory; created if missing */
    bool durable;         /* synchronous=FULL (fsync per commit group) */
    int commit_batch_max; /* most jobs in one commit group */
    bool read_only;       /* CLI readers: no writer thread, no schema change */
} hub_store_cfg;

/* Opens (creating schema as needed) and, unless read_only, starts the
 * writer thread. Errors: HUB_E_IO (directory not creatable or writable),
 * HUB_E_STORE (database unusable). */
hub_status hub_store_open(const hub_store_cfg *c, hub_store **out, hub_err *err);
/* Finishes every queued job, stops the writer, closes. NULL is a no-op. */
void hub_store_close(hub_store *s);
/* The database file's path. Borrowed: valid until close. */
const char *hub_store_path(const hub_store *s);

/* ---- the writer -------------------------------------------------------- */

/* A unit of work run inside a commit group, by whichever thread holds the
 * write connection (see above; never two at once). `run` executes inside
 * its own savepoint: returning non-OK rolls back this job only. `done` is
 * called after the group's COMMIT returned (rc is the commit's outcome if
 * the job itself succeeded), on the thread that ran the group; it must not
 * block. The job struct is owned by the caller and must stay valid
 * until `done` runs. */
typedef struct hub_store_tx hub_store_tx; /* the writer's transaction view */
typedef struct hub_store_job hub_store_job;
struct hub_store_job {
    hub_status (*run)(hub_store_tx *tx, hub_store_job *job, hub_err *err);
    void (*done)(hub_store_job *job, hub_status rc, const hub_err *err);
    void *ud;
    hub_store_job *next; /* queue link: the store's */
    /* `run` may be called again after its transaction was rolled back (it
     * keeps no state of a run it cannot redo). A group of such jobs first
     * runs without a savepoint per job, which costs a copy of every page
     * an earlier job of the group changed; if one fails, the group is
     * rolled back and run again one savepoint each, as other groups are. */
    bool rerunnable;
};

/* Inside a job: a nested savepoint, so that a part of the job can be
 * undone while the rest of it stays (ingest keeps the journal row when
 * the record refuses the mapped Bundle). Not nestable further. */
hub_status hub_store_sp_begin(hub_store_tx *tx, hub_err *err);
/* keep: release the savepoint; else roll back to it, then release. */
hub_status hub_store_sp_end(hub_store_tx *tx, bool keep, hub_err *err);

/* Queues a job. HUB_E_STATE once the store is closing. Thread-safe. */
hub_status hub_store_submit(hub_store *s, hub_store_job *job, hub_err *err);

/* Jobs (a list linked by `next`) as one commit group: when the writer is
 * idle and nothing is queued, run on the calling thread, which then holds
 * the write connection until their `done` callbacks have returned (groups
 * of at most commit_batch_max); otherwise queued in order, as many
 * hub_store_submit calls. HUB_E_STATE (no job taken) once the store is
 * closing. Thread-safe; not from inside a job. */
hub_status hub_store_run(hub_store *s, hub_store_job *jobs, hub_err *err);
/* Jobs (a list linked by `next`) queued in order for the writer thread,
 * with one wake-up: for jobs heavy enough that the caller should go on
 * while they run. HUB_E_STATE (no job taken) once the store is closing. */
hub_status hub_store_queue(hub_store *s, hub_store_job *jobs, hub_err *err);

/* Waits until every job queued before the call has run and its done
 * callback has returned (the writer takes jobs in order). Returns at once
 * when the store takes no more jobs (read-only, closing). Not from the
 * writer thread, nor from a job or its done callback. */
void hub_store_drain(hub_store *s);

/* Commit groups and jobs so far (for metrics and tests). */
typedef struct {
    int64_t commits, jobs, failed_jobs;
} hub_store_stats;
void hub_store_get_stats(hub_store *s, hub_store_stats *out);

/* ---- the message journal ------------------------------------------------ */

typedef enum {
    HUB_MSG_ACCEPTED,  /* stored, AA/CA sent */
    HUB_MSG_REJECTED,  /* AR/CR: could not be taken at all (broken MSH...) */
    HUB_MSG_ERRORED,   /* AE/CE: failed validation or mapping; replayable */
    HUB_MSG_PROCESSED, /* accepted and its results applied to the record */
} hub_msg_status;

const char *hub_msg_status_name(hub_msg_status s);
hub_status hub_msg_status_parse(const char *s, hub_msg_status *out);

/* One journal row. Strings are borrowed from whoever filled the struct. */
typedef struct {
    int64_t id;           /* assigned on insert */
    int64_t received_ms;
    const char *channel;
    const char *peer;     /* ip:port */
    const char *identity; /* TLS subject or configured sender identity */
    const char *sender;   /* MSH-3^MSH-4 as sent (app^facility), may be "" */
    const char *control_id; /* MSH-10, may be "" */
    const char *msg_type; /* MSH-9 e.g. "ADT^A01^ADT_A01" */
    const char *version;  /* MSH-12 */
    hub_msg_status status;
    const char *ack_code; /* AA AE AR CA CE CR */
    const char *ack;      /* the ACK bytes sent */
    size_t ack_len;
    const char *errors;   /* JSON array of findings, or NULL */
    const char *body;     /* the message as received */
    size_t body_len;
} hub_journal_row;

/* Inside a writer job: looks up an accepted or processed message with the
 * same sender and control id. HUB_OK and fills *row (strings valid until
 * the job returns) when found; HUB_E_NOTFOUND when not. */
hub_status hub_journal_find_dup(hub_store_tx *tx, const char *sender,
                                const char *control_id, hub_journal_row *row,
                                hub_err *err);
/* Inside a writer job: inserts the row; sets row->id. HUB_E_DUP (and no
 * row) when an accepted or processed message with the same sender and
 * non-empty control id is journaled: the insert is also the resend check. */
hub_status hub_journal_insert(hub_store_tx *tx, hub_journal_row *row,
                              hub_err *err);
/* Inside a writer job: changes a row's status, ACK and errors. */
hub_status hub_journal_update(hub_store_tx *tx, int64_t id,
                              hub_msg_status status, const char *ack_code,
                              const char *ack, size_t ack_len,
                              const char *errors, hub_err *err);

typedef struct {
    int status;             /* -1 for any, else a hub_msg_status */
    const char *sender;     /* substring of MSH-3^MSH-4, or NULL */
    const char *control_id; /* exact, or NULL */
    const char *channel;    /* exact, or NULL */
    int64_t since_ms;       /* 0 for no bound */
    int64_t before_id;      /* paging: rows with id < before_id; 0 = newest */
    int limit;              /* 1..1000 */
    bool with_body;         /* fill body (only `show` and replay need it) */
} hub_journal_filter;

/* Calls `fn` for each matching row, newest first. The row's strings are
 * valid only during the call. Stops early when `fn` returns non-OK and
 * returns that. Any thread. */
typedef hub_status (*hub_journal_fn)(void *ud, const hub_journal_row *row);
hub_status hub_journal_list(hub_store *s, const hub_journal_filter *f,
                            hub_journal_fn fn, void *ud, hub_err *err);
/* One row by id; HUB_E_NOTFOUND if none. */
hub_status hub_journal_get(hub_store *s, int64_t id, hub_journal_fn fn,
                           void *ud, hub_err *err);
/* Counts by status (indexed by hub_msg_status). */
hub_status hub_journal_counts(hub_store *s, int64_t counts[4], hub_err *err);

/* ---- resources (FHIR) ----------------------------------------------------- */

/* One stored version of one resource. Strings are borrowed: from the
 * caller (writes) or from the store (reads: valid only during the
 * callback, or until the next call on the same writer transaction). */
typedef struct {
    const char *type;
    const char *id;
    int64_t version;
    int64_t last_updated_ms;
    bool deleted;       /* a delete marker: json NULL */
    const char *json;   /* compact JSON text, not NUL-terminated by contract */
    size_t json_len;
    int64_t seq;        /* history position (reads): the paging cursor */
} hub_store_version;

/* One index row of a resource: a search parameter's value, produced by
 * hub_record_extract (the one extraction function). Three kinds, each its
 * own table:
 *   HUB_IX_TOKEN   token (system, code), uri (value), reference (system =
 *                  target type or "", value = id or the absolute URL),
 *                  string (value = lower case, accents folded; system = the
 *                  exact text). Derived rows use "param:text" (a token's
 *                  display text, normalized) and "param:identifier" (a
 *                  reference's identifier).
 *   HUB_IX_DATE    [lo, hi) in ms since the epoch: the value's whole
 *                  precision range (2024-05 is the month).
 *   HUB_IX_NUMBER  number and quantity: num, system (unit system), value
 *                  (unit code); "" when none. */
typedef enum { HUB_IX_TOKEN, HUB_IX_DATE, HUB_IX_NUMBER } hub_ix_kind;
typedef struct {
    const char *param;  /* "identifier" */
    const char *system; /* "" when the value has none */
    const char *value;
    hub_ix_kind kind;
    int64_t lo, hi;
    double num;
    bool shadow;        /* not stored: a row of an alias parameter, whose
                           values other parameters' rows hold (hub_fhir_sp
                           same). hub_record_extract gives them; writes
                           (and so listeners) do without: queries name
                           the rows an alias repeats */
} hub_store_token;

/* Writer side (inside a job). The current version of type/id: HUB_OK and
 * fills *cur (json only when want_json; borrowed until the next call on
 * tx), HUB_E_NOTFOUND when the resource never existed. A deleted resource
 * is HUB_OK with cur->deleted. */
hub_status hub_store_res_current(hub_store_tx *tx, const char *type,
                                 const char *id, bool want_json,
                                 hub_store_version *cur, hub_err *err);
/* Writer side: a given version (version > 0) or the current one (0), with
 * its JSON. HUB_E_NOTFOUND when absent. Borrowed as above. */
hub_status hub_store_res_get(hub_store_tx *tx, const char *type,
                             const char *id, int64_t version,
                             hub_store_version *out, hub_err *err);
/* Writer side: writes a new version (history row and current row) and
 * replaces the resource's index rows with `toks` (a delete marker drops
 * them). v->version must be the next version (1 for a new resource):
 * HUB_E_CONFLICT when that version exists already. */
hub_status hub_store_res_put(hub_store_tx *tx, const hub_store_version *v,
                             const hub_store_token *toks, size_t ntoks,
                             hub_err *err);
/* Writer side: ids of live resources of `type` with an index row for
 * `param` and `value`; `system` NULL matches any system, "" only rows
 * without one. Calls fn for each (at most `limit`); *n gets the number of
 * matches seen (stops counting at limit + 1, so callers can tell one from
 * many). */
typedef hub_status (*hub_store_id_fn)(void *ud, const char *id);
hub_status hub_store_res_find(hub_store_tx *tx, const char *type,
                              const char *param, const char *system,
                              const char *value, int limit,
                              hub_store_id_fn fn, void *ud, int *n,
                              hub_err *err);

/* Reader side (any thread): the current version (version 0) or a given
 * one. Calls fn once with the row (borrowed during the call) and returns
 * what fn returns; HUB_E_NOTFOUND when there is no such row. */
typedef hub_status (*hub_store_version_fn)(void *ud,
                                           const hub_store_version *v);
hub_status hub_store_res_read(hub_store *s, const char *type, const char *id,
                              int64_t version, hub_store_version_fn fn,
                              void *ud, hub_err *err);

/* Reader side: history, newest first. type NULL = whole system; id NULL =
 * the whole type. since_ms 0 = no bound. cursor 0 = first page, else the
 * *next_cursor of the previous page (a history position: stable while new
 * versions are written). count 1..1000. *total counts every version that
 * matches (ignoring the cursor). */
typedef struct {
    const char *type;
    const char *id;
    int64_t since_ms;
    int count;
    int64_t cursor;
} hub_store_history_q;
hub_status hub_store_res_history(hub_store *s, const hub_store_history_q *q,
                                 hub_store_version_fn fn, void *ud,
                                 int64_t *next_cursor, int64_t *total,
                                 hub_err *err);

/* ---- search ----------------------------------------------------------------- */

/* A search, as a structure (the store builds its own SQL from it; nothing
 * above this header writes SQL). The record module fills it from the
 * FHIR query string. */
typedef enum {
    HUB_SQ_EQ, HUB_SQ_NE, HUB_SQ_LT, HUB_SQ_GT, HUB_SQ_LE, HUB_SQ_GE,
    HUB_SQ_SA, HUB_SQ_EB, HUB_SQ_AP,
    HUB_SQ_PREFIX,   /* string: value starts with (the default) */
    HUB_SQ_CONTAINS, /* string: value contains */
    HUB_SQ_EXACT,    /* string: the exact text (system column) */
    HUB_SQ_BELOW,    /* uri: starts with */
    HUB_SQ_ABOVE,    /* uri: is a prefix of the value */
} hub_sq_op;

typedef struct hub_store_query hub_store_query;

/* One value of a clause (a clause's values are ORed). */
typedef struct {
    hub_sq_op op;
    const char *system; /* token/reference/quantity: NULL any, "" none */
    const char *value;  /* code, normalized text, uri, id; NULL any */
    int64_t lo, hi;     /* date: [lo, hi) */
    double num, num_lo, num_hi; /* number: the value and its precision range */
    /* reference chain: the referenced resource (of type chain->type, whose
     * id is in the row's value) must match this query; system must then
     * be chain->type. */
    const hub_store_query *chain;
    /* This value's own row name instead of the clause's (composites: the
     * first component is part of the name); with param_prefix the name
     * only starts with it. */
    const char *param;
    bool param_prefix;
    /* And the same resource has a token row of with_param with with_value
     * (NULL: any value but "") and with_system (NULL: any): a composite
     * over the resource itself (hub_fhir_sp pair), whose values are those
     * of two parameters: this value's row is the second's. */
    const char *with_param, *with_system, *with_value;
} hub_store_qval;

typedef enum {
    HUB_QC_INDEX,    /* rows of `param` in the table of `kind` */
    HUB_QC_ID,       /* the resource id (token values) */
    HUB_QC_UPDATED,  /* lastUpdated (date values) */
    HUB_QC_MISSING,  /* :missing=true (missing) or false */
    HUB_QC_HAS,      /* _has: a resource of has->type whose index row
                        `param` (a reference) names this resource */
    HUB_QC_IN,       /* the resource is one of vals[].value (ids) */
    HUB_QC_REFBY,    /* the resource is referenced by index row `param`
                        of a resource of type ref_type whose id is one of
                        vals[].value (_include) */
} hub_qc_kind;

typedef struct {
    hub_qc_kind kind;
    const char *param;
    hub_ix_kind ix;     /* the table */
    bool negate;        /* :not, :missing=false-of-missing */
    size_t nvals;
    const hub_store_qval *vals; /* ORed */
    const hub_store_query *has;
    const char *ref_type;       /* HUB_QC_REFBY */
    size_t nparams;             /* > 0: rows of any of these params */
    const char *const *params;  /* (the compartment's) instead of `param` */
    bool selective;             /* few rows per value (identifier, a
                                   reference): the search may start here */
} hub_store_qclause;

typedef struct {
    const char *param;  /* "_id", "_lastUpdated", or an index row name */
    hub_ix_kind ix;
    bool desc;
} hub_store_qsort;

struct hub_store_query {
    const char *type;
    size_t nclauses;
    const hub_store_qclause *clauses; /* ANDed */
    size_t nsort;
    hub_store_qsort sort[4];
    int count;          /* page size, 0..1000 (0: only the total) */
    bool want_total;
    const char *cursor; /* a previous page's next or prev cursor, or NULL */
    int64_t snapshot;   /* no cursor: see the data as of this history
                           position (a page's `snapshot`); 0 = now */
};

/* A page's outcome. */
typedef struct {
    int64_t total;      /* -1 unless want_total */
    char next[1024];    /* the cursor of the next page, "" when none */
    char prev[1024];    /* the cursor of the page before, "" when none */
    int64_t snapshot;   /* the history position the page saw */
} hub_store_page;

/* Reader side: the current versions of the resources matching q, in the
 * sort order (then id), at most q->count. Pages after the first see the
 * data as of the first page (resources written later are left out), so
 * paging stays stable while data changes, forwards (next) and backwards
 * (prev: the page ending just before this one's first row). HUB_E_ARG
 * for a malformed cursor or query. */
hub_status hub_store_search(hub_store *s, const hub_store_query *q,
                            hub_store_version_fn fn, void *ud,
                            hub_store_page *page, hub_err *err);
/* Reader side: the resource types that have current rows, in order
 * (system search without _type). */
typedef hub_status (*hub_store_type_fn)(void *ud, const char *type);
hub_status hub_store_types(hub_store *s, hub_store_type_fn fn, void *ud, hub_err *err);

/* Reindex: the current, live versions of `type` (NULL: every type) after
 * (after_type, after_id) in (type, id) order ("" to start), at most
 * `limit` (1..1000), with their JSON (borrowed during the call). */
hub_status hub_store_res_scan(hub_store *s, const char *type, const char *after_type,
                              const char *after_id, int limit, hub_store_version_fn fn,
                              void *ud, hub_err *err);
/* Writer side: replaces the index rows of type/id's current version with
 * `toks` (no new version). */
hub_status hub_store_res_index(hub_store_tx *tx, const char *type, const char *id,
                               const hub_store_token *toks, size_t ntoks, hub_err *err);

/* Writer side (conditional operations): ids of the resources matching q,
 * at most `limit` to fn; *n the matches seen (stops at limit + 1). */
hub_status hub_store_search_tx(hub_store_tx *tx, const hub_store_query *q,
                               int limit, hub_store_id_fn fn, void *ud, int *n,
                               hub_err *err);

#endif
