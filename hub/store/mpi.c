/* store: the patient index (MPI) module's tables and statements (see internal.h).
 *
 *   mpi_person   one row per source Patient: its match features (one line
 *                of text, hub_mpi_feat_encode), the sender it came from,
 *                its blocking keys and (a copy of its link) its golden
 *   mpi_block    blocking keys -> source ids; `seq` orders a key's rows so
 *                that the newest are read first and a common key costs a
 *                bounded read (the limit), whatever the table's size
 *   mpi_link     source -> golden, how and with what score; `detail` is the
 *                per-field contributions (JSON)
 *   mpi_nomatch  "not the same person" pairs, both ways
 *   mpi_review   possible matches waiting for a person
 *   mpi_history  every link, unlink, merge and decision, with who and why */
#include "internal.h"
#include "hub/mpi.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bump the version when the SQL changes. The SQL runs whole, in one
 * transaction, on a store whose module version is older (a new store
 * too), so every statement must hold from any older version:
 *   2: a person's blocking keys are listed in its row (mpi_person.keys:
 *      "<seq>:<bytes>:<key>" one after the other), not found through an
 *      index on mpi_block(source): one B-tree fewer to write per key.
 *   3: the person row also names its golden (mpi_person.golden, "" while
 *      unlinked), so that a candidate is one read in one table, not a
 *      join with mpi_link. The row is rebuilt, its key list from the
 *      blocking rows as version 2 built it, so that a version 1 and a
 *      version 2 store migrate by the same statements.
 *   4: every blocking row carries its source's fingerprint
 *      (hub_mpi_fingerprint; NULL in rows written before), so that a
 *      candidate whose score cannot reach the review threshold is not
 *      read; the person row keeps it too, to know when it changes. */
const hub__schema hub__schema_mpi = {
    "mpi", 4,
    "CREATE TABLE IF NOT EXISTS mpi_person(source TEXT PRIMARY KEY, sender TEXT NOT NULL,"
    " feat TEXT NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS mpi_block(key TEXT NOT NULL, seq INTEGER NOT NULL,"
    " source TEXT NOT NULL, PRIMARY KEY(key, seq, source)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS mpi_link(source TEXT PRIMARY KEY, golden TEXT NOT NULL,"
    " how TEXT NOT NULL, score REAL NOT NULL, detail TEXT, updated_ms INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS mpi_link_golden ON mpi_link(golden);"
    "CREATE TABLE IF NOT EXISTS mpi_nomatch(a TEXT NOT NULL, b TEXT NOT NULL,"
    " PRIMARY KEY(a, b)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS mpi_review(id INTEGER PRIMARY KEY, source TEXT NOT NULL,"
    " golden TEXT NOT NULL, score REAL NOT NULL, detail TEXT, status TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, closed_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS mpi_review_open ON mpi_review(status, id);"
    "CREATE INDEX IF NOT EXISTS mpi_review_source ON mpi_review(source);"
    "CREATE TABLE IF NOT EXISTS mpi_history(id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL,"
    " action TEXT NOT NULL, source TEXT NOT NULL, golden TEXT NOT NULL, score REAL,"
    " detail TEXT, actor TEXT);"
    "CREATE INDEX IF NOT EXISTS mpi_history_source ON mpi_history(source);"
    "CREATE INDEX IF NOT EXISTS mpi_history_golden ON mpi_history(golden);"
    /* 3 (and 2) */
    "CREATE TABLE mpi_person_3(source TEXT PRIMARY KEY, sender TEXT NOT NULL,"
    " feat TEXT NOT NULL, updated_ms INTEGER NOT NULL, keys TEXT NOT NULL,"
    " golden TEXT NOT NULL) WITHOUT ROWID;"
    "INSERT INTO mpi_person_3 SELECT p.source, p.sender, p.feat, p.updated_ms,"
    " coalesce(k.keys, ''), coalesce(l.golden, '') FROM mpi_person p"
    " LEFT JOIN (SELECT source, group_concat(seq || ':' || length(CAST(key AS BLOB)) || ':'"
    " || key, '') AS keys FROM mpi_block GROUP BY source) k ON k.source=p.source"
    " LEFT JOIN mpi_link l ON l.source=p.source;"
    "DROP TABLE mpi_person;"
    "ALTER TABLE mpi_person_3 RENAME TO mpi_person;"
    "DROP INDEX IF EXISTS mpi_block_source;"
    /* 4 */
    "ALTER TABLE mpi_block ADD COLUMN fp INTEGER;"
    "ALTER TABLE mpi_person ADD COLUMN fp INTEGER;"};

static hub_status step_done(hub_store_tx *tx, sqlite3_stmt *st, const char *where,
                            hub_err *err) {
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return hub__store_db_err(err, hub__tx_db(tx), where);
    sqlite3_reset(st);
    return HUB_OK;
}

static void copy_col(sqlite3_stmt *st, int i, char *out, size_t cap) {
    const char *t = (const char *)sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", t ? t : "");
}

static const char *col(sqlite3_stmt *st, int i) {
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? t : "";
}

/* ---- persons and blocking keys ----------------------------------------------- */

/* A new person row names the golden its source is linked to already (a
 * source linked by hand before it was indexed); link_put and link_del
 * keep it so afterwards. */
static const char SQL_PERSON_PUT[] =
    "INSERT INTO mpi_person(source, sender, feat, updated_ms, keys, fp, golden) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, coalesce((SELECT golden FROM mpi_link WHERE source=?1), "
    "'')) ON CONFLICT(source) DO UPDATE SET sender=excluded.sender, feat=excluded.feat, "
    "updated_ms=excluded.updated_ms, keys=excluded.keys, fp=excluded.fp";
static const char SQL_PERSON_GET[] = "SELECT feat, sender FROM mpi_person WHERE source=?1";
static const char SQL_PERSON_KEYS[] = "SELECT keys, fp FROM mpi_person WHERE source=?1";
static const char SQL_PERSON_DEL[] = "DELETE FROM mpi_person WHERE source=?1";
/* New keys, KEYS_INS at a time (unused rows stay NULL: OR IGNORE skips
 * them as it skips a key written twice). */
#define KEYS_INS 8
static const char SQL_BLOCK_INS[] =
    "INSERT OR IGNORE INTO mpi_block(key, seq, source, fp) VALUES(?1, ?9, ?10, ?11), "
    "(?2, ?9, ?10, ?11), (?3, ?9, ?10, ?11), (?4, ?9, ?10, ?11), (?5, ?9, ?10, ?11), "
    "(?6, ?9, ?10, ?11), (?7, ?9, ?10, ?11), (?8, ?9, ?10, ?11)";
static const char SQL_BLOCK_FP[] =
    "UPDATE mpi_block SET fp=?4 WHERE key=?1 AND seq=?2 AND source=?3";
static const char SQL_BLOCK_DEL1[] =
    "DELETE FROM mpi_block WHERE key=?1 AND seq=?2 AND source=?3";
static const char SQL_BLOCK_FIND[] =
    "SELECT source, fp FROM mpi_block WHERE key=?1 ORDER BY seq DESC LIMIT ?2";

/* The keys a source has (a record has fewer than 24). */
#define KEYS_MAX 32
typedef struct {
    char key[KEYS_MAX][96];
    int64_t seq[KEYS_MAX];
    bool keep[KEYS_MAX];
    size_t n;
    uint64_t fp; /* the fingerprint in the rows (0: none) */
} key_list;

/* Parses mpi_person.keys; false when it is not what key_list_text wrote. */
static bool key_list_parse(const char *t, key_list *o) {
    o->n = 0;
    while (*t) {
        char *e;
        long long seq = strtoll(t, &e, 10);
        if (*e != ':') return false;
        unsigned long len = strtoul(e + 1, &e, 10);
        if (*e != ':' || len >= sizeof o->key[0] || strnlen(e + 1, len) < len ||
            o->n == KEYS_MAX)
            return false;
        memcpy(o->key[o->n], e + 1, len);
        o->key[o->n][len] = '\0';
        o->seq[o->n] = seq;
        o->keep[o->n] = false;
        o->n++;
        t = e + 1 + len;
    }
    return true;
}

/* Writes the decimal digits of v at p; returns their count. */
static size_t put_uint(char *p, unsigned long long v) {
    char d[24];
    size_t n = 0;
    do d[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (size_t i = 0; i < n; i++) p[i] = d[n - 1 - i];
    return n;
}

/* out holds at least KEYS_TEXT bytes. (seq is a time in ms: positive.) */
#define KEYS_TEXT (KEYS_MAX * 128)
static void key_list_text(const key_list *o, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < o->n; i++) {
        size_t len = strlen(o->key[i]);
        k += put_uint(out + k, (unsigned long long)o->seq[i]);
        out[k++] = ':';
        k += put_uint(out + k, len);
        out[k++] = ':';
        memcpy(out + k, o->key[i], len);
        k += len;
    }
    out[k] = '\0';
}

/* A key of at most 95 bytes into a key_list slot. */
static void key_copy(char dst[96], const char *src) {
    size_t n = strnlen(src, 95);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The keys stored with `source` (none when it has no row). */
static hub_status keys_of(hub_store_tx *tx, const char *source, key_list *o, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_PERSON_KEYS, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    o->n = 0;
    o->fp = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 1) : 0;
    bool ok = rc != SQLITE_ROW || key_list_parse(col(st, 0), o);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return hub__store_db_err(err, hub__tx_db(tx), "mpi person");
    if (!ok) return hub_err_set(err, HUB_E_STORE, "mpi person", "blocking keys unreadable");
    return HUB_OK;
}

static hub_status key_del(hub_store_tx *tx, const char *key, int64_t seq, const char *source,
                          hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_BLOCK_DEL1, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
    return step_done(tx, st, "mpi block", err);
}

/* A kept row's fingerprint, when the source's changed. */
static hub_status key_fp(hub_store_tx *tx, const char *key, int64_t seq, const char *source,
                         uint64_t fp, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_BLOCK_FP, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)fp);
    return step_done(tx, st, "mpi block", err);
}

/* Inserts keys[0..n) with one seq and fingerprint, KEYS_INS per statement. */
static hub_status keys_ins(hub_store_tx *tx, const char *const *keys, size_t n, int64_t seq,
                           const char *source, uint64_t fp, hub_err *err) {
    hub_status rc = HUB_OK;
    for (size_t k0 = 0; !rc && k0 < n; k0 += KEYS_INS) {
        sqlite3_stmt *st = hub__tx_stmt(tx, SQL_BLOCK_INS, err);
        if (st == NULL) return HUB_E_STORE;
        for (size_t i = 0; i < KEYS_INS && k0 + i < n; i++)
            sqlite3_bind_text(st, (int)i + 1, keys[k0 + i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, KEYS_INS + 1, seq);
        sqlite3_bind_text(st, KEYS_INS + 2, source, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, KEYS_INS + 3, (int64_t)fp);
        rc = step_done(tx, st, "mpi block", err);
    }
    return rc;
}

/* Turns the old keys `o` into `keys`, writing only what changed: a key the
 * source keeps keeps its row (and its place among the key's newest; its
 * fingerprint is rewritten when fp differs), a key it lost is deleted, a
 * new one is inserted. `o` becomes the new list. */
static hub_status keys_update(hub_store_tx *tx, const char *source, key_list *o,
                              char (*keys)[96], size_t n, uint64_t fp, hub_err *err) {
    key_list nw;
    nw.n = 0;
    nw.fp = fp;
    /* seq: the time the keys were written, so that a key's newest rows come
     * first (ms resolution is enough; ties fall back to the source id). */
    int64_t seq = hub_now_ms();
    const char *ins[KEYS_MAX];
    size_t nins = 0;
    for (size_t i = 0; i < n && nw.n < KEYS_MAX; i++) {
        bool dup = false;
        for (size_t k = 0; k < nw.n && !dup; k++) dup = !strcmp(nw.key[k], keys[i]);
        if (dup) continue;
        size_t j = 0;
        while (j < o->n && (o->keep[j] || strcmp(o->key[j], keys[i]))) j++;
        key_copy(nw.key[nw.n], keys[i]);
        if (j < o->n) {
            o->keep[j] = true;
            nw.seq[nw.n] = o->seq[j];
        } else {
            nw.seq[nw.n] = seq;
            ins[nins++] = keys[i];
        }
        nw.n++;
    }
    hub_status rc = keys_ins(tx, ins, nins, seq, source, fp, err);
    for (size_t j = 0; !rc && j < o->n; j++) {
        if (!o->keep[j])
            rc = key_del(tx, o->key[j], o->seq[j], source, err);
        else if (o->fp != fp)
            rc = key_fp(tx, o->key[j], o->seq[j], source, fp, err);
    }
    if (!rc) *o = nw;
    return rc;
}

hub_status hub_mpi_st_person_put(hub_store_tx *tx, const char *source, const char *sender,
                                 const char *feat, uint64_t fp, char (*keys)[96], size_t n,
                                 int64_t updated_ms, hub_err *err) {
    key_list o;
    hub_status rc = keys_of(tx, source, &o, err);
    if (!rc) rc = keys_update(tx, source, &o, keys, n, fp, err);
    if (rc) return rc;
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_PERSON_PUT, err);
    if (st == NULL) return HUB_E_STORE;
    char text[KEYS_TEXT];
    key_list_text(&o, text);
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, sender ? sender : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, feat, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, updated_ms);
    sqlite3_bind_text(st, 5, text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (int64_t)fp);
    return step_done(tx, st, "mpi person", err);
}

hub_status hub_mpi_st_person_get(hub_store_tx *tx, const char *source, char *feat,
                                 size_t feat_cap, char *sender, size_t sender_cap,
                                 hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_PERSON_GET, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return HUB_E_NOTFOUND;
    }
    if (rc != SQLITE_ROW) return hub__store_db_err(err, hub__tx_db(tx), "mpi person");
    if (feat) copy_col(st, 0, feat, feat_cap);
    if (sender) copy_col(st, 1, sender, sender_cap);
    sqlite3_reset(st);
    return HUB_OK;
}

hub_status hub_mpi_st_person_del(hub_store_tx *tx, const char *source, hub_err *err) {
    key_list o;
    hub_status rc = keys_of(tx, source, &o, err);
    if (!rc) rc = keys_update(tx, source, &o, NULL, 0, o.fp, err);
    if (rc) return rc;
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_PERSON_DEL, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    return step_done(tx, st, "mpi person", err);
}

hub_status hub_mpi_st_block_find(hub_store_tx *tx, const char *key, int limit,
                                 hub_mpi_st_block_fn fn, void *ud, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_BLOCK_FIND, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, limit);
    int rc;
    hub_status s = HUB_OK;
    while (s == HUB_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        s = fn(ud, col(st, 0), (uint64_t)sqlite3_column_int64(st, 1));
    if (s == HUB_OK && rc != SQLITE_DONE)
        s = hub__store_db_err(err, hub__tx_db(tx), "mpi block");
    sqlite3_reset(st);
    return s;
}

/* Candidates in one statement per HUB_MPI_ST_BATCH ids (a common name's
 * blocks bring dozens): their features, sender and golden, all in the
 * person row (schema 3: not joined with mpi_link). SQLite builds a
 * sorted list of an IN list's every element, bound or not, which costs
 * more than a few point reads (callgrind: about 38k instructions for a
 * list of 4 against 13k per read), so under 4 ids each is read alone, and
 * the list is the smallest of 8, 16 or 32 that holds them; unused
 * parameters stay NULL, which no source equals. */
static const int CAND_SIZES[] = {1, 8, 16, HUB_MPI_ST_BATCH};
#define NSIZES (sizeof CAND_SIZES / sizeof CAND_SIZES[0])
static char sql_cands[NSIZES][128 + 5 * HUB_MPI_ST_BATCH];
static pthread_once_t sql_cands_once = PTHREAD_ONCE_INIT;

static void sql_cands_make(void) {
    for (size_t i = 0; i < NSIZES; i++) {
        char *q = sql_cands[i];
        size_t cap = sizeof sql_cands[i];
        size_t k = (size_t)snprintf(q, cap, "SELECT source, feat, sender, golden FROM mpi_person "
                                            "WHERE golden<>'' AND source IN (");
        for (int j = 1; j <= CAND_SIZES[i]; j++)
            k += (size_t)snprintf(q + k, cap - k, "%s?%d", j > 1 ? "," : "", j);
        snprintf(q + k, cap - k, ")");
    }
}

static hub_status cands_read(hub_store_tx *tx, const char *sql, const char *const *ids,
                             size_t n, hub_mpi_st_cand_fn fn, void *ud, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, sql, err);
    if (st == NULL) return HUB_E_STORE;
    for (size_t i = 0; i < n; i++) sqlite3_bind_text(st, (int)i + 1, ids[i], -1, SQLITE_STATIC);
    int rc;
    hub_status s = HUB_OK;
    while (s == HUB_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        s = fn(ud, col(st, 0), col(st, 1), col(st, 2), col(st, 3));
    if (s == HUB_OK && rc != SQLITE_DONE)
        s = hub__store_db_err(err, hub__tx_db(tx), "mpi candidate");
    sqlite3_reset(st);
    return s;
}

hub_status hub_mpi_st_candidates(hub_store_tx *tx, const char *const *ids, size_t n,
                                 hub_mpi_st_cand_fn fn, void *ud, hub_err *err) {
    pthread_once(&sql_cands_once, sql_cands_make);
    if (n > HUB_MPI_ST_BATCH) n = HUB_MPI_ST_BATCH;
    hub_status s = HUB_OK;
    if (n < 4) {
        for (size_t i = 0; s == HUB_OK && i < n; i++)
            s = cands_read(tx, sql_cands[0], ids + i, 1, fn, ud, err);
        return s;
    }
    size_t v = 1;
    while ((size_t)CAND_SIZES[v] < n) v++;
    return cands_read(tx, sql_cands[v], ids, n, fn, ud, err);
}

/* ---- links ------------------------------------------------------------------ */

static const char SQL_LINK_GET[] = "SELECT golden, how, score FROM mpi_link WHERE source=?1";
static const char SQL_LINK_PUT[] =
    "INSERT INTO mpi_link(source, golden, how, score, detail, updated_ms) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(source) DO UPDATE SET "
    "golden=excluded.golden, how=excluded.how, score=excluded.score, "
    "detail=excluded.detail, updated_ms=excluded.updated_ms";
static const char SQL_LINK_DEL[] = "DELETE FROM mpi_link WHERE source=?1";
static const char SQL_PERSON_GOLDEN[] = "UPDATE mpi_person SET golden=?2 WHERE source=?1";
static const char SQL_SOURCES[] = "SELECT source FROM mpi_link WHERE golden=?1 ORDER BY source";
static const char SQL_GOLDEN_OF[] = "SELECT golden FROM mpi_link WHERE source=?1";

/* The person row's copy of its link (the candidate read takes it there). */
static hub_status person_golden(hub_store_tx *tx, const char *source, const char *golden,
                                hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_PERSON_GOLDEN, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, golden, -1, SQLITE_STATIC);
    return step_done(tx, st, "mpi person", err);
}

hub_status hub_mpi_st_link_get(hub_store_tx *tx, const char *source, hub_mpi_st_link *out,
                               hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_LINK_GET, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return HUB_E_NOTFOUND;
    }
    if (rc != SQLITE_ROW) return hub__store_db_err(err, hub__tx_db(tx), "mpi link");
    copy_col(st, 0, out->golden, sizeof out->golden);
    copy_col(st, 1, out->how, sizeof out->how);
    out->score = sqlite3_column_double(st, 2);
    sqlite3_reset(st);
    return HUB_OK;
}

hub_status hub_mpi_st_link_put(hub_store_tx *tx, const char *source, const char *golden,
                               const char *how, double score, const char *detail,
                               hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_LINK_PUT, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, golden, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, how, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, score);
    if (detail)
        sqlite3_bind_text(st, 5, detail, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_int64(st, 6, hub_now_ms());
    hub_status rc = step_done(tx, st, "mpi link", err);
    return rc ? rc : person_golden(tx, source, golden, err);
}

hub_status hub_mpi_st_link_del(hub_store_tx *tx, const char *source, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_LINK_DEL, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    hub_status rc = step_done(tx, st, "mpi link", err);
    return rc ? rc : person_golden(tx, source, "", err);
}

hub_status hub_mpi_st_sources_tx(hub_store_tx *tx, const char *golden, hub_mpi_st_id_fn fn,
                                 void *ud, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_SOURCES, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, golden, -1, SQLITE_STATIC);
    int rc;
    hub_status s = HUB_OK;
    while (s == HUB_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) s = fn(ud, col(st, 0));
    if (s == HUB_OK && rc != SQLITE_DONE)
        s = hub__store_db_err(err, hub__tx_db(tx), "mpi link");
    sqlite3_reset(st);
    return s;
}

hub_status hub_mpi_st_sources(hub_store *s, const char *golden, hub_arena *a,
                              const char ***ids, size_t *n, hub_err *err) {
    hub__reader *rd;
    hub_status rc = hub__reader_take(s, &rd, err);
    if (rc) return rc;
    sqlite3_stmt *st = hub__reader_stmt(rd, SQL_SOURCES, err);
    if (st == NULL) {
        hub__reader_give(s, rd);
        return HUB_E_STORE;
    }
    sqlite3_bind_text(st, 1, golden, -1, SQLITE_STATIC);
    size_t cap = 8, k = 0;
    const char **v = hub_arena_alloc(a, cap * sizeof *v);
    int r = SQLITE_DONE;
    while (v && (r = sqlite3_step(st)) == SQLITE_ROW) {
        if (k == cap) {
            const char **nv = hub_arena_alloc(a, 2 * cap * sizeof *nv);
            if (nv) memcpy(nv, v, k * sizeof *v);
            v = nv;
            cap *= 2;
            if (v == NULL) break;
        }
        const char *t = col(st, 0);
        v[k] = hub_arena_strndup(a, t, strlen(t));
        if (v[k] == NULL) {
            v = NULL;
            break;
        }
        k++;
    }
    if (v == NULL)
        rc = hub_err_set(err, HUB_E_NOMEM, "mpi", "out of memory");
    else if (r != SQLITE_DONE && r != SQLITE_ROW)
        rc = hub_err_set(err, HUB_E_STORE, "mpi", "%s", "link read failed");
    hub__reader_give(s, rd);
    if (rc) return rc;
    *ids = v;
    *n = k;
    return HUB_OK;
}

hub_status hub_mpi_st_golden_of(hub_store *s, const char *source, char golden[72],
                                hub_err *err) {
    hub__reader *rd;
    hub_status rc = hub__reader_take(s, &rd, err);
    if (rc) return rc;
    sqlite3_stmt *st = hub__reader_stmt(rd, SQL_GOLDEN_OF, err);
    if (st == NULL) {
        hub__reader_give(s, rd);
        return HUB_E_STORE;
    }
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        copy_col(st, 0, golden, 72);
    else if (r == SQLITE_DONE)
        rc = HUB_E_NOTFOUND;
    else
        rc = hub_err_set(err, HUB_E_STORE, "mpi", "link read failed");
    hub__reader_give(s, rd);
    return rc;
}

/* ---- not the same person ------------------------------------------------------- */

static const char SQL_NOMATCH_PUT[] =
    "INSERT OR IGNORE INTO mpi_nomatch(a, b) VALUES(?1, ?2), (?2, ?1)";
static const char SQL_NOMATCH_HAS[] = "SELECT 1 FROM mpi_nomatch WHERE a=?1 AND b=?2";
static const char SQL_NOMATCH_OF[] = "SELECT b FROM mpi_nomatch WHERE a=?1";

hub_status hub_mpi_st_nomatch_put(hub_store_tx *tx, const char *a, const char *b,
                                  hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_NOMATCH_PUT, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    return step_done(tx, st, "mpi nomatch", err);
}

hub_status hub_mpi_st_nomatch_has(hub_store_tx *tx, const char *a, const char *b,
                                  bool *out, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_NOMATCH_HAS, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return hub__store_db_err(err, hub__tx_db(tx), "mpi nomatch");
    *out = rc == SQLITE_ROW;
    sqlite3_reset(st);
    return HUB_OK;
}

hub_status hub_mpi_st_nomatch_of(hub_store_tx *tx, const char *a, hub_mpi_st_id_fn fn,
                                 void *ud, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_NOMATCH_OF, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    int rc;
    hub_status s = HUB_OK;
    while (s == HUB_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) s = fn(ud, col(st, 0));
    if (s == HUB_OK && rc != SQLITE_DONE)
        s = hub__store_db_err(err, hub__tx_db(tx), "mpi nomatch");
    sqlite3_reset(st);
    return s;
}

/* ---- history ---------------------------------------------------------------------- */

static const char SQL_HIST_ADD[] =
    "INSERT INTO mpi_history(at_ms, action, source, golden, score, detail, actor) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char SQL_HIST_OF[] =
    "SELECT at_ms, action, source, golden, score, detail, actor FROM mpi_history "
    "WHERE source=?1 UNION ALL SELECT at_ms, action, source, golden, score, detail, actor "
    "FROM mpi_history WHERE golden=?1 AND source<>?1 ORDER BY 1 DESC LIMIT ?2";
static const char SQL_LINKS_OF[] =
    "SELECT source, golden, how, score, detail, updated_ms FROM mpi_link WHERE source=?1 "
    "UNION ALL SELECT source, golden, how, score, detail, updated_ms FROM mpi_link "
    "WHERE golden=?1 AND source<>?1";

hub_status hub_mpi_st_history_add(hub_store_tx *tx, const char *action, const char *source,
                                  const char *golden, double score, const char *detail,
                                  const char *actor, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_HIST_ADD, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_int64(st, 1, hub_now_ms());
    sqlite3_bind_text(st, 2, action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, golden ? golden : "", -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, score);
    if (detail)
        sqlite3_bind_text(st, 6, detail, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
    if (actor)
        sqlite3_bind_text(st, 7, actor, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 7);
    return step_done(tx, st, "mpi history", err);
}

hub_status hub_mpi_st_history_of(hub_store_tx *tx, const char *id, int limit,
                                 hub_mpi_st_row_fn fn, void *ud, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_HIST_OF, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, limit);
    int rc;
    hub_status s = HUB_OK;
    while (s == HUB_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        hub_mpi_st_row r = {.at_ms = sqlite3_column_int64(st, 0),
                            .action = col(st, 1),
                            .source = col(st, 2),
                            .golden = col(st, 3),
                            .score = sqlite3_column_double(st, 4),
                            .detail = sqlite3_column_type(st, 5) == SQLITE_NULL ? NULL
                                                                                 : col(st, 5),
                            .actor = sqlite3_column_type(st, 6) == SQLITE_NULL ? NULL
                                                                                : col(st, 6)};
        s = fn(ud, &r);
    }
    if (s == HUB_OK && rc != SQLITE_DONE)
        s = hub__store_db_err(err, hub__tx_db(tx), "mpi history");
    sqlite3_reset(st);
    return s;
}

hub_status hub_mpi_st_links_of(hub_store_tx *tx, const char *id, hub_mpi_st_row_fn fn,
                               void *ud, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_LINKS_OF, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc;
    hub_status s = HUB_OK;
    while (s == HUB_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        hub_mpi_st_row r = {.source = col(st, 0),
                            .golden = col(st, 1),
                            .how = col(st, 2),
                            .score = sqlite3_column_double(st, 3),
                            .detail = sqlite3_column_type(st, 4) == SQLITE_NULL ? NULL
                                                                                 : col(st, 4),
                            .at_ms = sqlite3_column_int64(st, 5)};
        s = fn(ud, &r);
    }
    if (s == HUB_OK && rc != SQLITE_DONE)
        s = hub__store_db_err(err, hub__tx_db(tx), "mpi link");
    sqlite3_reset(st);
    return s;
}

/* ---- review queue --------------------------------------------------------------------- */

static const char SQL_REVIEW_ADD[] =
    "INSERT INTO mpi_review(source, golden, score, detail, status, created_ms) "
    "VALUES(?1, ?2, ?3, ?4, 'open', ?5)";
static const char SQL_REVIEW_LIST_OPEN[] =
    "SELECT id, source, golden, score, detail, status, created_ms FROM mpi_review "
    "WHERE status='open' ORDER BY id LIMIT ?1";
static const char SQL_REVIEW_LIST_ALL[] =
    "SELECT id, source, golden, score, detail, status, created_ms FROM mpi_review "
    "ORDER BY id DESC LIMIT ?1";
static const char SQL_REVIEW_GET[] =
    "SELECT id, source, golden, score, detail, status, created_ms FROM mpi_review "
    "WHERE id=?1";
static const char SQL_REVIEW_CLOSE[] =
    "UPDATE mpi_review SET status=?2, closed_ms=?3 WHERE id=?1";
static const char SQL_REVIEW_DROP[] =
    "UPDATE mpi_review SET status='superseded', closed_ms=?2 WHERE source=?1 AND "
    "status='open'";

static void review_row(sqlite3_stmt *st, hub_mpi_st_review *r) {
    r->id = sqlite3_column_int64(st, 0);
    copy_col(st, 1, r->source, sizeof r->source);
    copy_col(st, 2, r->golden, sizeof r->golden);
    r->score = sqlite3_column_double(st, 3);
    r->detail = sqlite3_column_type(st, 4) == SQLITE_NULL ? NULL : col(st, 4);
    copy_col(st, 5, r->status, sizeof r->status);
    r->created_ms = sqlite3_column_int64(st, 6);
}

hub_status hub_mpi_st_review_add(hub_store_tx *tx, const char *source, const char *golden,
                                 double score, const char *detail, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_REVIEW_ADD, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, golden, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, score);
    if (detail)
        sqlite3_bind_text(st, 4, detail, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_int64(st, 5, hub_now_ms());
    return step_done(tx, st, "mpi review", err);
}

hub_status hub_mpi_st_review_list(hub_store_tx *tx, bool open_only, int limit,
                                  hub_mpi_st_review_fn fn, void *ud, hub_err *err) {
    sqlite3_stmt *st =
        hub__tx_stmt(tx, open_only ? SQL_REVIEW_LIST_OPEN : SQL_REVIEW_LIST_ALL, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_int(st, 1, limit);
    int rc;
    hub_status s = HUB_OK;
    while (s == HUB_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        hub_mpi_st_review r;
        review_row(st, &r);
        s = fn(ud, &r);
    }
    if (s == HUB_OK && rc != SQLITE_DONE)
        s = hub__store_db_err(err, hub__tx_db(tx), "mpi review");
    sqlite3_reset(st);
    return s;
}

hub_status hub_mpi_st_review_get(hub_store_tx *tx, int64_t id, hub_mpi_st_review *out,
                                 hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_REVIEW_GET, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return HUB_E_NOTFOUND;
    }
    if (rc != SQLITE_ROW) return hub__store_db_err(err, hub__tx_db(tx), "mpi review");
    review_row(st, out);
    out->detail = NULL; /* not kept past the reset */
    sqlite3_reset(st);
    return HUB_OK;
}

hub_status hub_mpi_st_review_close(hub_store_tx *tx, int64_t id, const char *status,
                                   hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_REVIEW_CLOSE, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, hub_now_ms());
    return step_done(tx, st, "mpi review", err);
}

hub_status hub_mpi_st_review_drop(hub_store_tx *tx, const char *source, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, SQL_REVIEW_DROP, err);
    if (st == NULL) return HUB_E_STORE;
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, hub_now_ms());
    return step_done(tx, st, "mpi review", err);
}
