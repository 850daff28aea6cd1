/* store: the auth (clients, tokens, audit) module's tables and statements (see internal.h). */
#include "internal.h"
#include "hub/auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

/* Bump the version when the SQL changes; every statement idempotent. */
const hub__schema hub__schema_auth = {
    "auth", 2,
    "CREATE TABLE IF NOT EXISTS auth_client("
    " name TEXT PRIMARY KEY, jwks TEXT NOT NULL, scope TEXT NOT NULL,"
    " patient TEXT NOT NULL DEFAULT '', revoked INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS auth_jti("
    " client TEXT NOT NULL, jti TEXT NOT NULL, exp_ms INTEGER NOT NULL,"
    " PRIMARY KEY(client, jti)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS auth_jti_exp ON auth_jti(exp_ms);"
    "CREATE TABLE IF NOT EXISTS auth_key(id INTEGER PRIMARY KEY, k BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit("
    " id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, kind INTEGER NOT NULL,"
    " outcome INTEGER NOT NULL, client TEXT, subject TEXT, peer TEXT, channel TEXT,"
    " sender TEXT, entity_type TEXT, entity_id TEXT, query TEXT, detail TEXT);"
    /* No index on at_ms: ids grow with time, and every read adds a row,
     * so a second B-tree per row costs every read; date filters scan. */
    "DROP INDEX IF EXISTS audit_at;"
    /* v2: a row that stands for many reads or searches of one kind by one
     * party over one batch (hub/auth/audit.c): their count, the last
     * one's time (at_ms is the first's) and the ids read, each as "id" or
     * "id*count", separated by spaces. A table of its own, so that a v1
     * store takes it with an idempotent statement. */
    "CREATE TABLE IF NOT EXISTS audit_group("
    " id INTEGER PRIMARY KEY, last_ms INTEGER NOT NULL, n INTEGER NOT NULL,"
    " entities TEXT);"
    /* v2: the client certificate a client is bound to (hub clients add
     * --cert-subject); a table of its own for the same reason. */
    "CREATE TABLE IF NOT EXISTS auth_client_cert("
    " name TEXT PRIMARY KEY, subject TEXT NOT NULL) WITHOUT ROWID;"};

static const char SQL_CLIENT_PUT[] =
    "INSERT OR REPLACE INTO auth_client(name, jwks, scope, patient, revoked, created_ms)"
    " VALUES(?1, ?2, ?3, ?4, 0, ?5)";
static const char SQL_CLIENT_REVOKE[] = "UPDATE auth_client SET revoked = 1 WHERE name = ?1";
static const char SQL_JTI_GC[] = "DELETE FROM auth_jti WHERE exp_ms < ?1";
static const char SQL_JTI_PUT[] =
    "INSERT OR IGNORE INTO auth_jti(client, jti, exp_ms) VALUES(?1, ?2, ?3)";
static const char SQL_CERT_DEL[] = "DELETE FROM auth_client_cert WHERE name = ?1";
static const char SQL_CERT_PUT[] = "INSERT INTO auth_client_cert(name, subject) VALUES(?1, ?2)";
static const char SQL_CLIENT_GET[] =
    "SELECT c.name, jwks, scope, patient, revoked, created_ms, k.subject FROM auth_client c"
    " LEFT JOIN auth_client_cert k ON k.name = c.name WHERE c.name = ?1";
static const char SQL_CLIENT_LIST[] =
    "SELECT c.name, jwks, scope, patient, revoked, created_ms, k.subject FROM auth_client c"
    " LEFT JOIN auth_client_cert k ON k.name = c.name ORDER BY c.name";
static const char SQL_KEY_GET[] = "SELECT k FROM auth_key WHERE id = 1";
static const char SQL_AUDIT_PUT[] =
    "INSERT INTO audit(at_ms, kind, outcome, client, subject, peer, channel, sender,"
    " entity_type, entity_id, query, detail) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
    " ?10, ?11, ?12)";

static const char SQL_AUDIT_GROUP_PUT[] =
    "INSERT INTO audit_group(id, last_ms, n, entities) VALUES(?1, ?2, ?3, ?4)";

static void bind_opt(sqlite3_stmt *st, int i, const char *s) {
    if (s && *s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

static hub_status step_done(sqlite3_stmt *st, hub_store_tx *tx, const char *where,
                            hub_err *err) {
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        hub_status r = hub__store_db_err(err, hub__tx_db(tx), where);
        sqlite3_reset(st);
        return r;
    }
    sqlite3_reset(st);
    return HUB_OK;
}

hub_status hub_auth_client_put_tx(hub_store_tx *tx, const hub_auth_client *c, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_CLIENT_PUT, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->jwks, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->scope ? c->scope : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->patient ? c->patient : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, c->created_ms ? c->created_ms : hub_now_ms());
    hub_status rc = step_done(st, tx, "auth_client", err);
    if (rc) return rc;
    /* A client added again is bound as this call says (or no longer). */
    if ((st = hub__tx_stmt(tx, SQL_CERT_DEL, err)) == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
    if ((rc = step_done(st, tx, "auth_client_cert", err)) || !c->cert_subject ||
        !*c->cert_subject)
        return rc;
    if ((st = hub__tx_stmt(tx, SQL_CERT_PUT, err)) == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->cert_subject, -1, SQLITE_STATIC);
    return step_done(st, tx, "auth_client_cert", err);
}

hub_status hub_auth_client_revoke_tx(hub_store_tx *tx, const char *name, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_CLIENT_REVOKE, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    hub_status rc = step_done(st, tx, "auth_client", err);
    if (rc) return rc;
    if (sqlite3_changes(hub__tx_db(tx)) == 0)
        return hub_err_set(err, HUB_E_NOTFOUND, "auth_client", "no client '%.64s'", name);
    return HUB_OK;
}

hub_status hub_auth_jti_use_tx(hub_store_tx *tx, const char *client, const char *jti,
                               int64_t exp_ms, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_JTI_GC, err);
    if (st == NULL) return HUB_E_STORE;
    /* Kept a minute past their expiry: a clock a little behind cannot
     * make an expired assertion usable again. */
    sqlite3_bind_int64(st, 1, hub_now_ms() - 60000);
    hub_status rc = step_done(st, tx, "auth_jti", err);
    if (rc) return rc;
    st = hub__tx_stmt(tx, SQL_JTI_PUT, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, jti, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, exp_ms);
    rc = step_done(st, tx, "auth_jti", err);
    if (rc) return rc;
    if (sqlite3_changes(hub__tx_db(tx)) == 0)
        return hub_err_set(err, HUB_E_DUP, "jti", "jti already used");
    return HUB_OK;
}

static const char *col(sqlite3_stmt *st, int i) {
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? t : "";
}

static hub_status clients(hub_store *s, const char *sql, const char *name,
                          hub_auth_client_fn fn, void *ud, hub_err *err) {
    hub__reader *rd;
    hub_status rc = hub__reader_take(s, &rd, err);
    if (rc) return rc;
    sqlite3_stmt *st = hub__reader_stmt(rd, sql, err);
    if (st == NULL) {
        hub__reader_give(s, rd);
        return HUB_E_STORE;
    }
    if (name) sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int found = 0, r;
    rc = HUB_OK;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        hub_auth_client c = {.name = col(st, 0),
                             .jwks = col(st, 1),
                             .scope = col(st, 2),
                             .patient = col(st, 3),
                             .revoked = sqlite3_column_int(st, 4) != 0,
                             .created_ms = sqlite3_column_int64(st, 5),
                             .cert_subject = col(st, 6)};
        found++;
        rc = fn(ud, &c);
        if (rc) break;
    }
    if (!rc && r != SQLITE_ROW && r != SQLITE_DONE)
        rc = hub__store_db_err(err, sqlite3_db_handle(st), "auth_client");
    hub__reader_give(s, rd);
    if (!rc && name && !found)
        return hub_err_set(err, HUB_E_NOTFOUND, "auth_client", "no client '%.64s'", name);
    return rc;
}

hub_status hub_auth_client_get(hub_store *s, const char *name, hub_auth_client_fn fn, void *ud,
                               hub_err *err) {
    return clients(s, SQL_CLIENT_GET, name, fn, ud, err);
}

hub_status hub_auth_client_list(hub_store *s, hub_auth_client_fn fn, void *ud, hub_err *err) {
    return clients(s, SQL_CLIENT_LIST, NULL, fn, ud, err);
}

/* ---- the signing key ---------------------------------------------------------- */

typedef struct {
    hub_store_job job;
    unsigned char key[32];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    hub_status rc;
    hub_err err;
} key_job;

static hub_status key_run(hub_store_tx *tx, hub_store_job *sj, hub_err *err) {
    key_job *k = (key_job *)sj;
    /* Another node may have made one meanwhile: keep the first. */
    sqlite3_stmt *st = hub__tx_stmt(tx, "INSERT OR IGNORE INTO auth_key(id, k) VALUES(1, ?1)", err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_blob(st, 1, k->key, 32, SQLITE_STATIC);
    return step_done(st, tx, "auth_key", err);
}

static void key_done(hub_store_job *sj, hub_status rc, const hub_err *err) {
    key_job *k = (key_job *)sj;
    pthread_mutex_lock(&k->mu);
    k->rc = rc;
    if (err) k->err = *err;
    k->done = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

static hub_status key_read(hub_store *s, unsigned char key[32], hub_err *err) {
    hub__reader *rd;
    hub_status rc = hub__reader_take(s, &rd, err);
    if (rc) return rc;
    sqlite3_stmt *st = hub__reader_stmt(rd, SQL_KEY_GET, err);
    rc = HUB_E_NOTFOUND;
    if (st == NULL) rc = HUB_E_STORE;
    else if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
        memcpy(key, sqlite3_column_blob(st, 0), 32);
        rc = HUB_OK;
    }
    hub__reader_give(s, rd);
    return rc;
}

hub_status hub_auth_key_get(hub_store *s, unsigned char key[32], hub_err *err) {
    hub_status rc = key_read(s, key, err);
    if (rc != HUB_E_NOTFOUND) return rc;
    key_job k;
    memset(&k, 0, sizeof k);
    if (RAND_bytes(k.key, 32) != 1)
        return hub_err_set(err, HUB_E_IO, "auth", "no random bytes for the token key");
    pthread_mutex_init(&k.mu, NULL);
    pthread_cond_init(&k.cv, NULL);
    k.job.run = key_run;
    k.job.done = key_done;
    rc = hub_store_submit(s, &k.job, err);
    if (!rc) {
        pthread_mutex_lock(&k.mu);
        while (!k.done) pthread_cond_wait(&k.cv, &k.mu);
        pthread_mutex_unlock(&k.mu);
        rc = k.rc;
        if (rc && err) *err = k.err;
    }
    pthread_mutex_destroy(&k.mu);
    pthread_cond_destroy(&k.cv);
    OPENSSL_cleanse(k.key, sizeof k.key);
    if (rc) return rc;
    return key_read(s, key, err) == HUB_OK
               ? HUB_OK
               : hub_err_set(err, HUB_E_STORE, "auth_key", "token key not stored");
}

/* ---- the audit trail ------------------------------------------------------------ */

hub_status hub_audit_insert_tx(hub_store_tx *tx, const hub_audit_event *ev, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_AUDIT_PUT, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_int64(st, 1, ev->at_ms ? ev->at_ms : hub_now_ms());
    sqlite3_bind_int(st, 2, (int)ev->kind);
    sqlite3_bind_int(st, 3, ev->outcome);
    bind_opt(st, 4, ev->client);
    bind_opt(st, 5, ev->subject);
    bind_opt(st, 6, ev->peer);
    bind_opt(st, 7, ev->channel);
    bind_opt(st, 8, ev->sender);
    bind_opt(st, 9, ev->entity_type);
    bind_opt(st, 10, ev->entity_id);
    bind_opt(st, 11, ev->query);
    bind_opt(st, 12, ev->detail);
    return step_done(st, tx, "audit", err);
}

hub_status hub_audit_insert_group_tx(hub_store_tx *tx, const hub_audit_event *ev,
                                     int64_t last_ms, int64_t count, const char *entities,
                                     hub_err *err) {
    hub_status rc = hub_audit_insert_tx(tx, ev, err);
    if (rc || count <= 1) return rc;
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_AUDIT_GROUP_PUT, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_int64(st, 1, sqlite3_last_insert_rowid(hub__tx_db(tx)));
    sqlite3_bind_int64(st, 2, last_ms);
    sqlite3_bind_int64(st, 3, count);
    bind_opt(st, 4, entities);
    return step_done(st, tx, "audit_group", err);
}

static const char *colz(sqlite3_stmt *st, int i) {
    return (const char *)sqlite3_column_text(st, i);
}

/* The list query: every filter is a bound value that may be NULL, so one
 * statement text (cached) serves them all. A grouped row matches a date
 * range its period overlaps, and an entity among its ids. */
#define AUDIT_COLS                                                                          \
    "SELECT a.id, at_ms, kind, outcome, client, subject, peer, channel, sender, entity_type," \
    " entity_id, query, detail, g.last_ms, g.n, g.entities FROM audit a"                    \
    " LEFT JOIN audit_group g ON g.id = a.id"
#define AUDIT_WHERE                                                                         \
    " (?2 = 0 OR a.id = ?2) AND (?3 = 0 OR coalesce(g.last_ms, at_ms) >= ?3)"                \
    " AND (?4 = 0 OR at_ms < ?4) AND (?5 IS NULL OR client = ?5)"                            \
    " AND (?6 IS NULL OR entity_type = ?6)"                                                  \
    " AND (?7 IS NULL OR entity_id = ?7 OR instr(' ' || g.entities || ' ', ' ' || ?7 || ' ')" \
    " OR instr(' ' || g.entities, ' ' || ?7 || '*')) AND (?8 < 0 OR kind = ?8)"
static const char SQL_AUDIT_NEWEST[] =
    AUDIT_COLS " WHERE (?1 = 0 OR a.id < ?1) AND" AUDIT_WHERE " ORDER BY a.id DESC LIMIT ?9";
static const char SQL_AUDIT_AFTER[] =
    AUDIT_COLS " WHERE a.id > ?1 AND" AUDIT_WHERE " ORDER BY a.id LIMIT ?9";
static const char SQL_AUDIT_COUNT[] =
    "SELECT count(*) FROM audit a LEFT JOIN audit_group g ON g.id = a.id WHERE" AUDIT_WHERE;

static void bind_filter(sqlite3_stmt *st, const hub_audit_filter *f, bool after) {
    sqlite3_bind_int64(st, 1, after ? f->after_id : f->before_id);
    sqlite3_bind_int64(st, 2, f->id);
    sqlite3_bind_int64(st, 3, f->since_ms);
    sqlite3_bind_int64(st, 4, f->until_ms);
    bind_opt(st, 5, f->client);
    bind_opt(st, 6, f->entity_type);
    bind_opt(st, 7, f->entity_id);
    sqlite3_bind_int(st, 8, f->kind);
    sqlite3_bind_int(st, 9, f->limit < 1 ? 1 : f->limit > 1000 ? 1000 : f->limit);
}

hub_status hub_audit_list(hub_store *s, const hub_audit_filter *f, hub_audit_row_fn fn,
                          void *ud, int64_t *total, hub_err *err) {
    hub__reader *rd;
    hub_status rc = hub__reader_take(s, &rd, err);
    if (rc) return rc;
    bool after = f->oldest_first;
    sqlite3_stmt *st = hub__reader_stmt(rd, after ? SQL_AUDIT_AFTER : SQL_AUDIT_NEWEST, err);
    if (st == NULL) {
        hub__reader_give(s, rd);
        return HUB_E_STORE;
    }
    bind_filter(st, f, after);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        hub_audit_row row = {.id = sqlite3_column_int64(st, 0)};
        row.ev.at_ms = sqlite3_column_int64(st, 1);
        row.ev.kind = (hub_audit_kind)sqlite3_column_int(st, 2);
        row.ev.outcome = sqlite3_column_int(st, 3);
        row.ev.client = colz(st, 4);
        row.ev.subject = colz(st, 5);
        row.ev.peer = colz(st, 6);
        row.ev.channel = colz(st, 7);
        row.ev.sender = colz(st, 8);
        row.ev.entity_type = colz(st, 9);
        row.ev.entity_id = colz(st, 10);
        row.ev.query = colz(st, 11);
        row.ev.detail = colz(st, 12);
        row.last_ms = sqlite3_column_int64(st, 13);
        row.count = sqlite3_column_type(st, 14) == SQLITE_NULL ? 1 : sqlite3_column_int64(st, 14);
        row.entities = colz(st, 15);
        rc = fn(ud, &row);
        if (rc) break;
    }
    if (!rc && r != SQLITE_ROW && r != SQLITE_DONE)
        rc = hub__store_db_err(err, sqlite3_db_handle(st), "audit");
    if (!rc && total) {
        sqlite3_stmt *ct = hub__reader_stmt(rd, SQL_AUDIT_COUNT, err);
        if (ct == NULL) rc = HUB_E_STORE;
        else {
            bind_filter(ct, f, false);
            *total = sqlite3_step(ct) == SQLITE_ROW ? sqlite3_column_int64(ct, 0) : 0;
        }
    }
    hub__reader_give(s, rd);
    return rc;
}
