/* store: the routing (subscriptions, outbox) module's tables and statements (see internal.h). */
#include "internal.h"
#include "hub/route.h"

#include <stdio.h>
#include <string.h>

/* Bump the version when the SQL changes; every statement idempotent.
 *   route_sub      a subscription's delivery state (the resource itself is
 *                  a Subscription in the record)
 *   route_outbox   its events, numbered from 1, written with the change
 *   route_attempt  every delivery attempt */
const hub__schema hub__schema_route = {
    "route", 1,
    "CREATE TABLE IF NOT EXISTS route_sub ("
    " id TEXT PRIMARY KEY, status TEXT NOT NULL, events INTEGER NOT NULL DEFAULT 0,"
    " delivered INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0,"
    " next_ms INTEGER NOT NULL DEFAULT 0, secret TEXT, error TEXT NOT NULL DEFAULT '',"
    " updated_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS route_outbox ("
    " sub TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, rid TEXT NOT NULL,"
    " version INTEGER NOT NULL, message_id INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (sub, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS route_attempt ("
    " id INTEGER PRIMARY KEY, sub TEXT NOT NULL, seq INTEGER NOT NULL, at_ms INTEGER NOT NULL,"
    " status INTEGER NOT NULL, latency_ms REAL NOT NULL, error TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS route_attempt_sub ON route_attempt (sub, id);"
    /* what the delivery scan asks for, without reading every subscription */
    "CREATE INDEX IF NOT EXISTS route_sub_due ON route_sub (next_ms) WHERE"
    " status = 'requested' OR (status = 'active' AND delivered < events);"};

static const char *col_text(sqlite3_stmt *st, int i) {
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

static const char SQL_SUB_UPSERT[] =
    "INSERT INTO route_sub (id, status, secret, updated_ms) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (id) DO UPDATE SET status = ?2, secret = coalesce(?3, secret),"
    " failures = 0, next_ms = 0, error = CASE WHEN ?2 = 'error' THEN error ELSE '' END,"
    " updated_ms = ?4";

hub_status hub_route_store_sub(hub_store_tx *tx, const char *id, const char *status,
                               const char *secret, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_SUB_UPSERT, err);
    if (!st) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    if (secret) sqlite3_bind_text(st, 3, secret, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, hub_now_ms());
    if (sqlite3_step(st) != SQLITE_DONE) return hub__store_db_err(err, hub__tx_db(tx), "route_sub");
    return HUB_OK;
}

static const char SQL_SECRET[] = "SELECT coalesce(secret, '') FROM route_sub WHERE id = ?1";

hub_status hub_route_store_secret(hub_store_tx *tx, const char *id, char out[160], hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_SECRET, err);
    if (!st) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    out[0] = '\0';
    if (rc == SQLITE_DONE) return HUB_E_NOTFOUND;
    if (rc != SQLITE_ROW) return hub__store_db_err(err, hub__tx_db(tx), "route_sub");
    snprintf(out, 160, "%s", col_text(st, 0));
    sqlite3_reset(st);
    return HUB_OK;
}

static const char SQL_NEXT_SEQ[] =
    "UPDATE route_sub SET events = events + 1 WHERE id = ?1 RETURNING events";
static const char SQL_OUTBOX_INSERT[] =
    "INSERT INTO route_outbox (sub, seq, type, rid, version, message_id, created_ms, deleted)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

hub_status hub_route_store_event(hub_store_tx *tx, const hub_route_event *ev,
                                 int64_t *seq, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_NEXT_SEQ, err);
    if (!st) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, ev->sub, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return hub_err_set(err, HUB_E_NOTFOUND, "route_sub", "no state for subscription");
    if (rc != SQLITE_ROW) return hub__store_db_err(err, hub__tx_db(tx), "route_sub");
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    st = hub__tx_stmt(tx, SQL_OUTBOX_INSERT, err);
    if (!st) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, ev->sub, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, n);
    sqlite3_bind_text(st, 3, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, ev->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, ev->version);
    sqlite3_bind_int64(st, 6, ev->message_id);
    sqlite3_bind_int64(st, 7, ev->created_ms);
    sqlite3_bind_int(st, 8, ev->deleted);
    if (sqlite3_step(st) != SQLITE_DONE)
        return hub__store_db_err(err, hub__tx_db(tx), "route_outbox");
    *seq = n;
    return HUB_OK;
}

static const char SQL_ATTEMPT_INSERT[] =
    "INSERT INTO route_attempt (sub, seq, at_ms, status, latency_ms, error)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/* A success moves `delivered` forward only (a duplicate of an older event,
 * after a restart, does not move it back). */
static const char SQL_ATTEMPT_OK[] =
    "UPDATE route_sub SET delivered = max(delivered, ?2), failures = 0, next_ms = 0,"
    " error = '' WHERE id = ?1 RETURNING status";
static const char SQL_ATTEMPT_FAIL[] =
    "UPDATE route_sub SET failures = failures + 1, next_ms = ?2, error = ?3,"
    " status = CASE WHEN failures + 1 >= ?4 AND status IN ('active', 'requested')"
    " THEN 'error' ELSE status END WHERE id = ?1 RETURNING status";

hub_status hub_route_store_attempt(hub_store_tx *tx, const char *sub, int64_t seq,
                                   bool ok, int http_status, double latency_ms,
                                   const char *error, int max_failures, int64_t next_ms,
                                   char new_status[16], hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_ATTEMPT_INSERT, err);
    if (!st) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, sub, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_int64(st, 3, hub_now_ms());
    sqlite3_bind_int(st, 4, http_status);
    sqlite3_bind_double(st, 5, latency_ms);
    sqlite3_bind_text(st, 6, error ? error : "", -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return hub__store_db_err(err, hub__tx_db(tx), "route_attempt");
    st = hub__tx_stmt(tx, ok ? SQL_ATTEMPT_OK : SQL_ATTEMPT_FAIL, err);
    if (!st) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, sub, -1, SQLITE_STATIC);
    if (ok) {
        sqlite3_bind_int64(st, 2, seq);
    } else {
        sqlite3_bind_int64(st, 2, next_ms);
        sqlite3_bind_text(st, 3, error ? error : "", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, max_failures);
    }
    int rc = sqlite3_step(st);
    new_status[0] = '\0';
    if (rc == SQLITE_ROW) snprintf(new_status, 16, "%s", col_text(st, 0));
    else if (rc != SQLITE_DONE) return hub__store_db_err(err, hub__tx_db(tx), "route_sub");
    sqlite3_reset(st);
    return HUB_OK;
}

static void fill_state(sqlite3_stmt *st, hub_route_state *s) {
    s->id = col_text(st, 0);
    s->status = col_text(st, 1);
    s->events = sqlite3_column_int64(st, 2);
    s->delivered = sqlite3_column_int64(st, 3);
    s->failures = sqlite3_column_int(st, 4);
    s->next_ms = sqlite3_column_int64(st, 5);
    s->secret = sqlite3_column_type(st, 6) == SQLITE_NULL ? NULL : col_text(st, 6);
    s->error = col_text(st, 7);
}

#define STATE_COLS "id, status, events, delivered, failures, next_ms, secret, error"
static const char SQL_SUB_GET[] = "SELECT " STATE_COLS " FROM route_sub WHERE id = ?1";
static const char SQL_SUB_DUE[] =
    "SELECT " STATE_COLS " FROM route_sub INDEXED BY route_sub_due WHERE next_ms <= ?1 AND"
    " (status = 'requested' OR (status = 'active' AND delivered < events))";
static const char SQL_SUB_ALL[] = "SELECT " STATE_COLS " FROM route_sub";

hub_status hub_route_store_get(hub_store *s, const char *id, hub_route_state_fn fn,
                               void *ud, hub_err *err) {
    hub__reader *rd;
    hub_status rc = hub__reader_take(s, &rd, err);
    if (rc) return rc;
    sqlite3_stmt *st = hub__reader_stmt(rd, SQL_SUB_GET, err);
    if (!st) {
        hub__reader_give(s, rd);
        return HUB_E_STORE;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int sr = sqlite3_step(st);
    if (sr == SQLITE_ROW) {
        hub_route_state state;
        fill_state(st, &state);
        rc = fn(ud, &state);
    } else if (sr == SQLITE_DONE) {
        rc = hub_err_set(err, HUB_E_NOTFOUND, "route_sub", "no such subscription");
    } else {
        rc = hub_err_set(err, HUB_E_STORE, "route_sub", "read failed");
    }
    hub__reader_give(s, rd);
    return rc;
}

hub_status hub_route_store_due(hub_store *s, int64_t now_ms, bool all,
                               hub_route_state_fn fn, void *ud, hub_err *err) {
    hub__reader *rd;
    hub_status rc = hub__reader_take(s, &rd, err);
    if (rc) return rc;
    sqlite3_stmt *st = hub__reader_stmt(rd, all ? SQL_SUB_ALL : SQL_SUB_DUE, err);
    if (!st) {
        hub__reader_give(s, rd);
        return HUB_E_STORE;
    }
    if (!all) sqlite3_bind_int64(st, 1, now_ms);
    int sr;
    while (rc == HUB_OK && (sr = sqlite3_step(st)) == SQLITE_ROW) {
        hub_route_state state;
        fill_state(st, &state);
        rc = fn(ud, &state);
    }
    if (rc == HUB_OK && sr != SQLITE_DONE)
        rc = hub_err_set(err, HUB_E_STORE, "route_sub", "read failed");
    hub__reader_give(s, rd);
    return rc;
}

static const char SQL_EVENTS[] =
    "SELECT sub, seq, type, rid, version, message_id, created_ms, deleted FROM route_outbox"
    " WHERE sub = ?1 AND seq >= ?2 AND seq <= ?3 ORDER BY seq";

hub_status hub_route_store_events(hub_store *s, const char *sub, int64_t from, int64_t to,
                                  hub_route_event_fn fn, void *ud, hub_err *err) {
    hub__reader *rd;
    hub_status rc = hub__reader_take(s, &rd, err);
    if (rc) return rc;
    sqlite3_stmt *st = hub__reader_stmt(rd, SQL_EVENTS, err);
    if (!st) {
        hub__reader_give(s, rd);
        return HUB_E_STORE;
    }
    sqlite3_bind_text(st, 1, sub, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, from);
    sqlite3_bind_int64(st, 3, to);
    int sr;
    while (rc == HUB_OK && (sr = sqlite3_step(st)) == SQLITE_ROW) {
        hub_route_event ev = {.sub = col_text(st, 0),
                              .seq = sqlite3_column_int64(st, 1),
                              .type = col_text(st, 2),
                              .id = col_text(st, 3),
                              .version = sqlite3_column_int64(st, 4),
                              .message_id = sqlite3_column_int64(st, 5),
                              .created_ms = sqlite3_column_int64(st, 6),
                              .deleted = sqlite3_column_int(st, 7) != 0};
        rc = fn(ud, &ev);
    }
    if (rc == HUB_OK && sr != SQLITE_DONE)
        rc = hub_err_set(err, HUB_E_STORE, "route_outbox", "read failed");
    hub__reader_give(s, rd);
    return rc;
}

static const char SQL_ATTEMPTS[] =
    "SELECT seq, at_ms, status, latency_ms, error FROM route_attempt WHERE sub = ?1"
    " ORDER BY id DESC LIMIT ?2";

hub_status hub_route_store_attempts(hub_store *s, const char *sub, int limit,
                                    hub_route_attempt_fn fn, void *ud, hub_err *err) {
    hub__reader *rd;
    hub_status rc = hub__reader_take(s, &rd, err);
    if (rc) return rc;
    sqlite3_stmt *st = hub__reader_stmt(rd, SQL_ATTEMPTS, err);
    if (!st) {
        hub__reader_give(s, rd);
        return HUB_E_STORE;
    }
    sqlite3_bind_text(st, 1, sub, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, limit);
    int sr;
    while (rc == HUB_OK && (sr = sqlite3_step(st)) == SQLITE_ROW) {
        hub_route_attempt at = {.seq = sqlite3_column_int64(st, 0),
                                .at_ms = sqlite3_column_int64(st, 1),
                                .status = sqlite3_column_int(st, 2),
                                .latency_ms = sqlite3_column_double(st, 3),
                                .error = col_text(st, 4)};
        rc = fn(ud, &at);
    }
    if (rc == HUB_OK && sr != SQLITE_DONE)
        rc = hub_err_set(err, HUB_E_STORE, "route_attempt", "read failed");
    hub__reader_give(s, rd);
    return rc;
}

/* ---- pruning ------------------------------------------------------------------------- */

static const char SQL_PRUNE_SUBS[] =
    "SELECT id, delivered FROM route_sub WHERE id > ?1 ORDER BY id LIMIT 64";
/* The oldest events of one subscription, by the primary key. */
static const char SQL_PRUNE_HEAD[] =
    "SELECT seq, created_ms FROM route_outbox WHERE sub = ?1 ORDER BY seq LIMIT ?2";
static const char SQL_PRUNE_DEL[] = "DELETE FROM route_outbox WHERE sub = ?1 AND seq <= ?2";

/* The last seq of the run of sub's oldest events that may go: delivered
 * (seq <= delivered) and created before the cutoff; 0 when none. */
static hub_status prune_head(hub_store_tx *tx, const char *sub, int64_t delivered,
                             int64_t cutoff_ms, int max_rows, int64_t *upto, hub_err *err) {
    *upto = 0;
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_PRUNE_HEAD, err);
    if (!st) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, sub, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, max_rows);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        if (seq > delivered || sqlite3_column_int64(st, 1) >= cutoff_ms) break;
        *upto = seq;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return hub__store_db_err(err, hub__tx_db(tx), "route_outbox");
    sqlite3_reset(st);
    return HUB_OK;
}

hub_status hub_route_store_prune_events(hub_store_tx *tx, const char *after, int64_t cutoff_ms,
                                        int max_rows, char next[72], bool *end,
                                        int64_t *pruned, hub_err *err) {
    *pruned = 0;
    *end = false;
    snprintf(next, 72, "%s", after);
    /* the subscriptions first (two statements cannot share one cursor) */
    char ids[64][72];
    int64_t dv[64];
    int n = 0, rc = SQLITE_DONE;
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_PRUNE_SUBS, err);
    if (!st) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, after, -1, SQLITE_TRANSIENT);
    while (n < 64 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        snprintf(ids[n], sizeof ids[n], "%s", col_text(st, 0));
        dv[n++] = sqlite3_column_int64(st, 1);
    }
    if (n < 64 && rc != SQLITE_DONE) return hub__store_db_err(err, hub__tx_db(tx), "route_sub");
    sqlite3_reset(st);
    for (int i = 0; i < n; i++) {
        int64_t upto;
        hub_status hs = prune_head(tx, ids[i], dv[i], cutoff_ms, max_rows - (int)*pruned, &upto,
                                   err);
        if (hs) return hs;
        if (upto > 0) {
            st = hub__tx_stmt(tx, SQL_PRUNE_DEL, err);
            if (!st) return HUB_E_STORE;
            sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 2, upto);
            if (sqlite3_step(st) != SQLITE_DONE)
                return hub__store_db_err(err, hub__tx_db(tx), "route_outbox");
            *pruned += sqlite3_changes(hub__tx_db(tx));
            /* rows left over: this subscription again next time */
            if (*pruned >= max_rows) return HUB_OK;
        }
        memcpy(next, ids[i], sizeof ids[i]);
    }
    *end = n < 64;
    return HUB_OK;
}

static const char SQL_PRUNE_ATT[] =
    "SELECT a.id, a.at_ms, (a.seq = 0 OR s.id IS NULL OR a.seq <= s.delivered)"
    " FROM route_attempt a LEFT JOIN route_sub s ON s.id = a.sub"
    " WHERE a.id > ?1 ORDER BY a.id LIMIT ?2";
static const char SQL_PRUNE_ATT_DEL[] = "DELETE FROM route_attempt WHERE id = ?1";

hub_status hub_route_store_prune_attempts(hub_store_tx *tx, int64_t after, int64_t cutoff_ms,
                                          int limit, int64_t *next, int64_t *pruned,
                                          hub_err *err) {
    *pruned = 0;
    *next = after;
    if (limit > 1024) limit = 1024;
    int64_t ids[1024];
    int n = 0, rc;
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_PRUNE_ATT, err);
    if (!st) return HUB_E_STORE;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int(st, 2, limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_int64(st, 1) >= cutoff_ms) break; /* the rest are newer */
        *next = sqlite3_column_int64(st, 0);
        if (sqlite3_column_int(st, 2)) ids[n++] = *next;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return hub__store_db_err(err, hub__tx_db(tx), "route_attempt");
    sqlite3_reset(st);
    for (int i = 0; i < n; i++) {
        st = hub__tx_stmt(tx, SQL_PRUNE_ATT_DEL, err);
        if (!st) return HUB_E_STORE;
        sqlite3_bind_int64(st, 1, ids[i]);
        if (sqlite3_step(st) != SQLITE_DONE)
            return hub__store_db_err(err, hub__tx_db(tx), "route_attempt");
        sqlite3_reset(st);
        (*pruned)++;
    }
    return HUB_OK;
}

static const char SQL_FIRST[] = "SELECT min(seq) FROM route_outbox WHERE sub = ?1";

hub_status hub_route_store_first(hub_store *s, const char *sub, int64_t *first, hub_err *err) {
    hub__reader *rd;
    *first = 0;
    hub_status rc = hub__reader_take(s, &rd, err);
    if (rc) return rc;
    sqlite3_stmt *st = hub__reader_stmt(rd, SQL_FIRST, err);
    if (!st) {
        hub__reader_give(s, rd);
        return HUB_E_STORE;
    }
    sqlite3_bind_text(st, 1, sub, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) *first = sqlite3_column_int64(st, 0);
    else rc = hub_err_set(err, HUB_E_STORE, "route_outbox", "read failed");
    hub__reader_give(s, rd);
    return rc;
}
