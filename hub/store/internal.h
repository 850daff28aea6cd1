/* store internals shared by sqlite.c and search.c. */
#ifndef HUB_STORE_INTERNAL_H
#define HUB_STORE_INTERNAL_H

#include <sqlite3.h>

#include "hub/store.h"

/* ---- for the module files (hub/store/mpi.c, route.c, auth.c) ------------
 * Each module keeps its SQL in its own file of hub/store and reaches the
 * connections through these; nothing outside hub/store sees SQL. */

/* A module's tables: `sql` is run (in one transaction) when the store's
 * recorded version of `name` is below `version`; every statement must be
 * idempotent (CREATE ... IF NOT EXISTS, or guarded), since an older store
 * runs it again after an upgrade. An empty `sql` is skipped. */
typedef struct {
    const char *name;
    int version;
    const char *sql;
} hub__schema;
extern const hub__schema hub__schema_mpi;   /* hub/store/mpi.c */
extern const hub__schema hub__schema_route; /* hub/store/route.c */
extern const hub__schema hub__schema_auth;  /* hub/store/auth.c */

/* Date index rows (ix_date) from 0 to this long (ms: a day, so any value
 * of day precision or finer) have no entry in the (pid, hi) index,
 * ix_date_long, whose condition is `hi - lo NOT BETWEEN 0 AND ` this;
 * searches find them by lo (hub/store/search.c). A row that ends before
 * it starts (a Period backwards: nothing checks) is a long one. The SQL
 * spells the length HUB__DATE_SHORT_SQL. */
#define HUB__DATE_SHORT_MS 86400000
#define HUB__DATE_SHORT_SQL "86400000"

/* Prepared statements cached per connection, keyed by the SQL text's
 * address (pass string literals or static arrays, never a built string). */
#define HUB__STMT_CACHE 96
typedef struct {
    const char *sql[HUB__STMT_CACHE];
    sqlite3_stmt *st[HUB__STMT_CACHE];
    int n;
} hub__stmt_cache;
/* The statement for `sql` on db, prepared on first use, reset and with
 * its bindings cleared; NULL with err set when it does not prepare. */
sqlite3_stmt *hub__stmt(sqlite3 *db, hub__stmt_cache *c, const char *sql, hub_err *err);
void hub__stmt_cache_free(hub__stmt_cache *c);

/* Inside a writer job: the write connection, and a cached statement on
 * it (the previous borrowed read on tx is reset first). */
sqlite3 *hub__tx_db(hub_store_tx *tx);
sqlite3_stmt *hub__tx_stmt(hub_store_tx *tx, const char *sql, hub_err *err);

/* Reader side, any thread: take a pooled read connection, use cached
 * statements on it, give it back (its statements are reset then). */
typedef struct hub__reader hub__reader;
hub_status hub__reader_take(hub_store *s, hub__reader **out, hub_err *err);
sqlite3_stmt *hub__reader_stmt(hub__reader *rd, const char *sql, hub_err *err);
void hub__reader_give(hub_store *s, hub__reader *rd);

/* The write connection's VFS (hub/store/walbuf.c): the default VFS with
 * the WAL's appends written once per commit. Its name, or NULL when it
 * could not be registered (then the default VFS serves). */
const char *hub__walbuf_vfs(void);
/* Non-zero (SQLite's error code) when a buffered WAL write of db failed:
 * the last commit did not reach the file, whatever COMMIT returned. */
int hub__walbuf_failed(sqlite3 *db);

/* HUB_E_STORE with sqlite's message for db. */
hub_status hub__store_db_err(hub_err *err, sqlite3 *db, const char *where);

/* One bound parameter of a generated statement. */
typedef struct {
    enum { HUB__B_TEXT, HUB__B_INT, HUB__B_REAL } kind;
    const char *s;
    int64_t i;
    double d;
} hub__bind;

typedef struct {
    hub_buf sql;
    hub__bind *binds;
    size_t nbinds, cap;
    hub_arena arena; /* strings the binds need */
    int64_t snapshot;
    bool backward; /* the cursor was a prev cursor */
    /* the cursor's key values, when paging */
    size_t nkeys;
} hub__sq;

/* Builds the page statement (count == 0: none) and the count statement
 * (want_total) of q into b (sql texts separated by a NUL: the page first,
 * then the count; b->binds apply to both, positional by ?NNN). The
 * snapshot is bound as ?1; `snapshot` is the cursor's or the given one.
 * HUB_E_ARG for a malformed cursor or query. */
hub_status hub__store_search_sql(const hub_store_query *q, int64_t snapshot,
                                 bool ids_only, int limit, hub__sq *b,
                                 size_t *page_len, hub_err *err);
void hub__sq_release(hub__sq *b);

/* The next cursor from the last row's sort-key values (column texts). */
hub_status hub__store_cursor(const hub_store_query *q, int64_t snapshot, bool backward,
                             const char *const *keys, const int *key_types,
                             const char *id, char *out, size_t cap);

#endif
