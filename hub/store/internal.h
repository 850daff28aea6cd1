/* store internals shared by sqlite.c and search.c. */
#ifndef HUB_STORE_INTERNAL_H
#define HUB_STORE_INTERNAL_H

#include "hub/store.h"

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
hub_status hub__store_cursor(const hub_store_query *q, int64_t snapshot,
                             const char *const *keys, const int *key_types,
                             const char *id, char *out, size_t cap);

#endif
