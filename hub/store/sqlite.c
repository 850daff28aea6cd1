/* The SQLite store: schema, the writer thread with grouped commits, the
 * reader pool, and the message journal. */
#include "hub/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>

#define READER_POOL 16

/* The writer's transaction control, prepared once: parsing these for
 * every message would cost as much as the insert. */
enum { TX_BEGIN, TX_COMMIT, TX_ROLLBACK, TX_SAVEPOINT, TX_RELEASE, TX_ROLLBACK_TO, TX__N };
static const char *const TX_SQL[TX__N] = {"BEGIN IMMEDIATE", "COMMIT", "ROLLBACK",
                                          "SAVEPOINT job", "RELEASE job",
                                          "ROLLBACK TO job"};

struct hub_store_tx {
    sqlite3 *db;
    sqlite3_stmt *find_dup, *insert, *update;
    sqlite3_stmt *tx[TX__N];
};

struct hub_store {
    char dir[512];
    char path[600];
    bool durable, read_only;
    int batch_max;

    hub_store_tx w; /* the writer's connection and statements */
    pthread_t writer;
    bool writer_running;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    hub_store_job *head, *tail;
    bool closing;
    hub_store_stats stats;

    pthread_mutex_t rlock;
    sqlite3 *readers[READER_POOL];
    int nreaders;
};

static const char *const status_names[] = {"accepted", "rejected", "errored",
                                           "processed"};

const char *hub_msg_status_name(hub_msg_status s) {
    return (unsigned)s < 4 ? status_names[s] : "?";
}

hub_status hub_msg_status_parse(const char *s, hub_msg_status *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, status_names[i]) == 0) {
            *out = (hub_msg_status)i;
            return HUB_OK;
        }
    }
    return HUB_E_ARG;
}

static hub_status db_err(hub_err *err, sqlite3 *db, const char *where) {
    return hub_err_set(err, HUB_E_STORE, where, "sqlite: %s",
                       db ? sqlite3_errmsg(db) : "cannot open");
}

static hub_status exec(sqlite3 *db, const char *sql, hub_err *err) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        hub_status rc = hub_err_set(err, HUB_E_STORE, "store", "sqlite: %s",
                                    msg ? msg : "?");
        sqlite3_free(msg);
        return rc;
    }
    return HUB_OK;
}

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS messages("
    "  id INTEGER PRIMARY KEY,"
    "  received_ms INTEGER NOT NULL,"
    "  channel TEXT NOT NULL,"
    "  peer TEXT NOT NULL DEFAULT '',"
    "  identity TEXT NOT NULL DEFAULT '',"
    "  sender TEXT NOT NULL DEFAULT '',"
    "  control_id TEXT NOT NULL DEFAULT '',"
    "  msg_type TEXT NOT NULL DEFAULT '',"
    "  version TEXT NOT NULL DEFAULT '',"
    "  status INTEGER NOT NULL,"
    "  ack_code TEXT NOT NULL DEFAULT '',"
    "  ack BLOB,"
    "  errors TEXT,"
    "  body BLOB NOT NULL);"
    /* Resends are recognised by sender and control id among the messages
     * that were taken (accepted or processed); a rejected message may be
     * fixed and resent under the same id. */
    "CREATE UNIQUE INDEX IF NOT EXISTS messages_dedup ON messages(sender, "
    "control_id) WHERE status IN (0, 3) AND control_id <> '';"
    "CREATE INDEX IF NOT EXISTS messages_status ON messages(status, id);"
    "CREATE INDEX IF NOT EXISTS messages_received ON messages(received_ms);"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('schema', '1');"
    "PRAGMA user_version=1;";

/* The schema version this code writes; start-up skips the schema (and its
 * fsync) when the file already has it. */
#define SCHEMA_VERSION 1

static int user_version(sqlite3 *db) {
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

static hub_status open_db(hub_store *s, bool writer, sqlite3 **out,
                          hub_err *err) {
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_NOMUTEX |
                ((writer && !s->read_only)
                     ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                     : SQLITE_OPEN_READONLY);
    if (sqlite3_open_v2(s->path, &db, flags, NULL) != SQLITE_OK) {
        hub_status rc = db_err(err, db, "store");
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, 10000);
    hub_status rc = HUB_OK;
    if (writer && !s->read_only) {
        rc = exec(db, "PRAGMA journal_mode=WAL;", err);
        if (!rc)
            rc = exec(db, s->durable ? "PRAGMA synchronous=FULL;"
                                     : "PRAGMA synchronous=OFF;",
                      err);
        if (!rc) rc = exec(db, "PRAGMA foreign_keys=ON;", err);
        if (!rc && user_version(db) < SCHEMA_VERSION) {
            rc = exec(db, "BEGIN IMMEDIATE", err);
            if (!rc) rc = exec(db, SCHEMA, err);
            if (!rc) rc = exec(db, "COMMIT", err);
        }
    }
    if (rc) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return HUB_OK;
}

static hub_status prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st,
                          hub_err *err) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) !=
        SQLITE_OK)
        return db_err(err, db, "store");
    return HUB_OK;
}

static void *writer_main(void *arg);

static hub_status ensure_dir(const char *dir, hub_err *err) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return hub_err_set(err, HUB_E_IO, "store",
                               "data path '%s' is not a directory", dir);
    } else if (mkdir(dir, 0700) != 0) {
        return hub_err_set(err, HUB_E_IO, "store",
                           "cannot create data directory '%s': %s", dir,
                           strerror(errno));
    }
    if (access(dir, W_OK | X_OK) != 0)
        return hub_err_set(err, HUB_E_IO, "store",
                           "data directory '%s' is not writable", dir);
    return HUB_OK;
}

hub_status hub_store_open(const hub_store_cfg *c, hub_store **out,
                          hub_err *err) {
    *out = NULL;
    if (strlen(c->dir) >= 500)
        return hub_err_set(err, HUB_E_ARG, "store", "data path too long");
    if (!c->read_only) {
        hub_status rc = ensure_dir(c->dir, err);
        if (rc) return rc;
    }
    hub_store *s = hub_calloc(1, sizeof *s);
    if (s == NULL) return hub_err_set(err, HUB_E_NOMEM, "store", "out of memory");
    snprintf(s->dir, sizeof s->dir, "%s", c->dir);
    snprintf(s->path, sizeof s->path, "%s/hub.db", c->dir);
    s->durable = c->durable;
    s->read_only = c->read_only;
    s->batch_max = c->commit_batch_max > 0 ? c->commit_batch_max : 512;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_mutex_init(&s->rlock, NULL);

    if (c->read_only && access(s->path, R_OK) != 0) {
        hub_store_close(s);
        return hub_err_set(err, HUB_E_NOTFOUND, "store",
                           "no store at '%s'", c->dir);
    }
    if (!c->read_only) {
        hub_status rc = open_db(s, true, &s->w.db, err);
        if (!rc)
            rc = prepare(s->w.db,
                         "SELECT id, received_ms, channel, peer, identity, "
                         "sender, control_id, msg_type, version, status, "
                         "ack_code, ack, errors FROM messages WHERE sender=?1 "
                         "AND control_id=?2 AND status IN (0, 3) AND control_id <> '' "
                         "LIMIT 1",
                         &s->w.find_dup, err);
        if (!rc)
            rc = prepare(s->w.db,
                         "INSERT INTO messages(received_ms, channel, peer, "
                         "identity, sender, control_id, msg_type, version, "
                         "status, ack_code, ack, errors, body) VALUES(?1, ?2, "
                         "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                         &s->w.insert, err);
        if (!rc)
            rc = prepare(s->w.db,
                         "UPDATE messages SET status=?2, ack_code=?3, ack=?4, "
                         "errors=?5 WHERE id=?1",
                         &s->w.update, err);
        for (int i = 0; i < TX__N && !rc; i++)
            rc = prepare(s->w.db, TX_SQL[i], &s->w.tx[i], err);
        if (!rc && pthread_create(&s->writer, NULL, writer_main, s) != 0)
            rc = hub_err_set(err, HUB_E_STORE, "store", "cannot start writer");
        if (rc) {
            hub_store_close(s);
            return rc;
        }
        s->writer_running = true;
    }
    *out = s;
    return HUB_OK;
}

const char *hub_store_path(const hub_store *s) { return s->path; }

void hub_store_close(hub_store *s) {
    if (s == NULL) return;
    pthread_mutex_lock(&s->lock);
    s->closing = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (s->writer_running) pthread_join(s->writer, NULL);
    sqlite3_finalize(s->w.find_dup);
    sqlite3_finalize(s->w.insert);
    sqlite3_finalize(s->w.update);
    for (int i = 0; i < TX__N; i++) sqlite3_finalize(s->w.tx[i]);
    if (s->w.db) {
        /* Fold the WAL back so the database file alone is complete. */
        sqlite3_wal_checkpoint_v2(s->w.db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
                                  NULL, NULL);
        sqlite3_close(s->w.db);
    }
    for (int i = 0; i < s->nreaders; i++) sqlite3_close(s->readers[i]);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->rlock);
    hub_free(s);
}

hub_status hub_store_submit(hub_store *s, hub_store_job *job, hub_err *err) {
    if (s->read_only)
        return hub_err_set(err, HUB_E_STATE, "store", "store is read-only");
    job->next = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->closing) {
        pthread_mutex_unlock(&s->lock);
        return hub_err_set(err, HUB_E_STATE, "store", "store is closing");
    }
    if (s->tail)
        s->tail->next = job;
    else
        s->head = job;
    s->tail = job;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return HUB_OK;
}

void hub_store_get_stats(hub_store *s, hub_store_stats *out) {
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->lock);
}

static hub_status tx_step(hub_store *s, int which, hub_err *err) {
    sqlite3_stmt *st = s->w.tx[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return db_err(err, s->w.db, TX_SQL[which]);
    return HUB_OK;
}

/* Runs one commit group: every job in its own savepoint, one COMMIT. */
static void run_group(hub_store *s, hub_store_job *jobs) {
    hub_err gerr;
    hub_err_clear(&gerr);
    hub_status grc = tx_step(s, TX_BEGIN, &gerr);
    int n = 0, failed = 0;
    enum { MAXG = 4096 };
    hub_status rcs[MAXG];
    hub_err *errs = NULL;
    int cap = 0;
    for (hub_store_job *j = jobs; j; j = j->next) cap++;
    errs = hub_calloc((size_t)cap, sizeof *errs);

    for (hub_store_job *j = jobs; j; j = j->next, n++) {
        hub_err *e = errs ? &errs[n] : &gerr;
        hub_status rc = grc;
        if (!rc) rc = tx_step(s, TX_SAVEPOINT, e);
        if (!rc) {
            rc = j->run(&s->w, j, e);
            if (rc) {
                hub_err tmp;
                tx_step(s, TX_ROLLBACK_TO, &tmp);
            }
            hub_err tmp;
            tx_step(s, TX_RELEASE, &tmp);
        } else if (e != &gerr) {
            *e = gerr;
        }
        if (rc) failed++;
        if (n < MAXG) rcs[n] = rc;
    }
    if (!grc) {
        grc = tx_step(s, TX_COMMIT, &gerr);
        if (grc) {
            hub_err tmp;
            tx_step(s, TX_ROLLBACK, &tmp);
        }
    }
    pthread_mutex_lock(&s->lock);
    s->stats.commits++;
    s->stats.jobs += n;
    s->stats.failed_jobs += failed;
    pthread_mutex_unlock(&s->lock);

    n = 0;
    for (hub_store_job *j = jobs, *next; j; j = next, n++) {
        next = j->next; /* `done` may free the job */
        hub_status rc = n < MAXG ? rcs[n] : HUB_OK;
        const hub_err *e = errs ? &errs[n] : &gerr;
        if (!rc && grc) {
            rc = grc;
            e = &gerr;
        }
        if (j->done) j->done(j, rc, e);
    }
    hub_free(errs);
}

static void *writer_main(void *arg) {
    hub_store *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (s->head == NULL && !s->closing)
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->head == NULL && s->closing) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        /* Take up to batch_max jobs: whatever queued while the last commit
         * was in fsync goes into this one. */
        hub_store_job *first = s->head, *last = first;
        int n = 1;
        while (last->next && n < s->batch_max && n < 4096) {
            last = last->next;
            n++;
        }
        s->head = last->next;
        if (s->head == NULL) s->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&s->lock);
        run_group(s, first);
    }
    return NULL;
}

/* ---- readers ------------------------------------------------------------ */

static hub_status reader_take(hub_store *s, sqlite3 **db, hub_err *err) {
    pthread_mutex_lock(&s->rlock);
    if (s->nreaders > 0) {
        *db = s->readers[--s->nreaders];
        pthread_mutex_unlock(&s->rlock);
        return HUB_OK;
    }
    pthread_mutex_unlock(&s->rlock);
    return open_db(s, false, db, err);
}

static void reader_give(hub_store *s, sqlite3 *db) {
    pthread_mutex_lock(&s->rlock);
    if (s->nreaders < READER_POOL) {
        s->readers[s->nreaders++] = db;
        db = NULL;
    }
    pthread_mutex_unlock(&s->rlock);
    if (db) sqlite3_close(db);
}

/* ---- journal ------------------------------------------------------------ */

static const char *col_text(sqlite3_stmt *st, int i) {
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? t : "";
}

/* Columns: id, received_ms, channel, peer, identity, sender, control_id,
 * msg_type, version, status, ack_code, ack, errors[, body]. */
static void row_from(sqlite3_stmt *st, hub_journal_row *r, bool body) {
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    r->received_ms = sqlite3_column_int64(st, 1);
    r->channel = col_text(st, 2);
    r->peer = col_text(st, 3);
    r->identity = col_text(st, 4);
    r->sender = col_text(st, 5);
    r->control_id = col_text(st, 6);
    r->msg_type = col_text(st, 7);
    r->version = col_text(st, 8);
    r->status = (hub_msg_status)sqlite3_column_int(st, 9);
    r->ack_code = col_text(st, 10);
    r->ack = sqlite3_column_blob(st, 11);
    r->ack_len = (size_t)sqlite3_column_bytes(st, 11);
    r->errors = (const char *)sqlite3_column_text(st, 12);
    if (body) {
        r->body = sqlite3_column_blob(st, 13);
        r->body_len = (size_t)sqlite3_column_bytes(st, 13);
    }
}

hub_status hub_journal_find_dup(hub_store_tx *tx, const char *sender,
                                const char *control_id, hub_journal_row *row,
                                hub_err *err) {
    if (control_id == NULL || *control_id == '\0') return HUB_E_NOTFOUND;
    sqlite3_stmt *st = tx->find_dup;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, sender ? sender : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, control_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        row_from(st, row, false);
        return HUB_OK; /* valid until the statement is reset by the next call */
    }
    if (rc == SQLITE_DONE) return HUB_E_NOTFOUND;
    return db_err(err, tx->db, "journal");
}

hub_status hub_journal_insert(hub_store_tx *tx, hub_journal_row *r,
                              hub_err *err) {
    sqlite3_stmt *st = tx->insert;
    sqlite3_reset(st);
#define T(i, v) sqlite3_bind_text(st, i, (v) ? (v) : "", -1, SQLITE_STATIC)
    sqlite3_bind_int64(st, 1, r->received_ms);
    T(2, r->channel);
    T(3, r->peer);
    T(4, r->identity);
    T(5, r->sender);
    T(6, r->control_id);
    T(7, r->msg_type);
    T(8, r->version);
    sqlite3_bind_int(st, 9, (int)r->status);
    T(10, r->ack_code);
#undef T
    sqlite3_bind_blob(st, 11, r->ack ? r->ack : "", (int)r->ack_len,
                      SQLITE_STATIC);
    if (r->errors)
        sqlite3_bind_text(st, 12, r->errors, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 12);
    sqlite3_bind_blob(st, 13, r->body ? r->body : "", (int)r->body_len,
                      SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_CONSTRAINT)
        return hub_err_set(err, HUB_E_DUP, "journal", "message already journaled");
    if (rc != SQLITE_DONE) return db_err(err, tx->db, "journal");
    r->id = sqlite3_last_insert_rowid(tx->db);
    return HUB_OK;
}

hub_status hub_journal_update(hub_store_tx *tx, int64_t id,
                              hub_msg_status status, const char *ack_code,
                              const char *ack, size_t ack_len,
                              const char *errors, hub_err *err) {
    sqlite3_stmt *st = tx->update;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, (int)status);
    sqlite3_bind_text(st, 3, ack_code ? ack_code : "", -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, ack ? ack : "", (int)ack_len, SQLITE_STATIC);
    if (errors)
        sqlite3_bind_text(st, 5, errors, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_CONSTRAINT)
        return hub_err_set(err, HUB_E_DUP, "journal", "message already journaled");
    if (rc != SQLITE_DONE) return db_err(err, tx->db, "journal");
    return HUB_OK;
}

static hub_status list_query(hub_store *s, const char *sql, int64_t id,
                             const hub_journal_filter *f, hub_journal_fn fn,
                             void *ud, bool body, bool *any, hub_err *err) {
    sqlite3 *db;
    hub_status rc = reader_take(s, &db, err);
    if (rc) return rc;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = db_err(err, db, "journal");
        reader_give(s, db);
        return rc;
    }
    if (f) {
        sqlite3_bind_int(st, 1, f->status);
        if (f->sender) sqlite3_bind_text(st, 2, f->sender, -1, SQLITE_STATIC);
        if (f->control_id)
            sqlite3_bind_text(st, 3, f->control_id, -1, SQLITE_STATIC);
        if (f->channel) sqlite3_bind_text(st, 4, f->channel, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, f->since_ms);
        sqlite3_bind_int64(st, 6, f->before_id);
        int lim = f->limit < 1 ? 50 : f->limit > 1000 ? 1000 : f->limit;
        sqlite3_bind_int(st, 7, lim);
    } else {
        sqlite3_bind_int64(st, 1, id);
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        hub_journal_row r;
        row_from(st, &r, body);
        *any = true;
        rc = fn(ud, &r);
        if (rc) break;
    }
    if (!rc && step != SQLITE_DONE) rc = db_err(err, db, "journal");
    sqlite3_finalize(st);
    reader_give(s, db);
    return rc;
}

#define COLS                                                                 \
    "id, received_ms, channel, peer, identity, sender, control_id, "         \
    "msg_type, version, status, ack_code, ack, errors"

hub_status hub_journal_list(hub_store *s, const hub_journal_filter *f,
                            hub_journal_fn fn, void *ud, hub_err *err) {
    static const char sql_nobody[] =
        "SELECT " COLS " FROM messages WHERE (?1 < 0 OR status = ?1) "
        "AND (?2 IS NULL OR instr(sender, ?2) > 0) "
        "AND (?3 IS NULL OR control_id = ?3) AND (?4 IS NULL OR channel = ?4) "
        "AND received_ms >= ?5 AND (?6 = 0 OR id < ?6) ORDER BY id DESC LIMIT ?7";
    static const char sql_body[] =
        "SELECT " COLS ", body FROM messages WHERE (?1 < 0 OR status = ?1) "
        "AND (?2 IS NULL OR instr(sender, ?2) > 0) "
        "AND (?3 IS NULL OR control_id = ?3) AND (?4 IS NULL OR channel = ?4) "
        "AND received_ms >= ?5 AND (?6 = 0 OR id < ?6) ORDER BY id DESC LIMIT ?7";
    bool any = false;
    return list_query(s, f->with_body ? sql_body : sql_nobody, 0, f, fn, ud,
                      f->with_body, &any, err);
}

hub_status hub_journal_get(hub_store *s, int64_t id, hub_journal_fn fn,
                           void *ud, hub_err *err) {
    bool any = false;
    hub_status rc = list_query(
        s, "SELECT " COLS ", body FROM messages WHERE id = ?1", id, NULL, fn,
        ud, true, &any, err);
    if (!rc && !any)
        return hub_err_set(err, HUB_E_NOTFOUND, "journal", "no message %lld",
                           (long long)id);
    return rc;
}

hub_status hub_journal_counts(hub_store *s, int64_t counts[4], hub_err *err) {
    memset(counts, 0, 4 * sizeof counts[0]);
    sqlite3 *db;
    hub_status rc = reader_take(s, &db, err);
    if (rc) return rc;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT status, count(*) FROM messages GROUP BY status",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_err(err, db, "journal");
        reader_give(s, db);
        return rc;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        int k = sqlite3_column_int(st, 0);
        if (k >= 0 && k < 4) counts[k] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    reader_give(s, db);
    return HUB_OK;
}
