/* The SQLite store: schema, the writer thread with grouped commits, the
 * reader pool, and the message journal. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>

#define READER_POOL 64

/* The writer's transaction control, prepared once: parsing these for
 * every message would cost as much as the insert. */
enum { TX_BEGIN, TX_COMMIT, TX_ROLLBACK, TX_SAVEPOINT, TX_RELEASE, TX_ROLLBACK_TO,
       TX_SP_IN, TX_SP_RELEASE, TX_SP_ROLLBACK, TX__N };
static const char *const TX_SQL[TX__N] = {"BEGIN IMMEDIATE", "COMMIT", "ROLLBACK",
                                          "SAVEPOINT job", "RELEASE job",
                                          "ROLLBACK TO job", "SAVEPOINT part",
                                          "RELEASE part", "ROLLBACK TO part"};

/* The writer's resource statements. */
enum {
    WR_CUR,      /* current row, no JSON */
    WR_CUR_JSON, /* current row with its JSON */
    WR_VER,      /* a given version with its JSON */
    WR_HIST_INS,
    WR_RES_UPSERT,
    WR_RES_INS,
    WR_TOK_DEL,
    WR_FIND,
    WR_DATE_DEL,
    WR_NUM_DEL,
    WR_PID,
    WR_PID_INS,
    WR__N
};
static const char *const WR_SQL[WR__N] = {
    "SELECT version, last_updated, deleted, seq FROM resources WHERE type=?1 "
    "AND id=?2",
    "SELECT r.version, r.last_updated, r.deleted, r.seq, h.json FROM "
    "resources r JOIN history h ON h.seq=r.seq WHERE r.type=?1 AND r.id=?2",
    "SELECT version, last_updated, deleted, seq, json FROM history WHERE "
    "type=?1 AND id=?2 AND version=?3",
    "INSERT INTO history(type, id, version, last_updated, deleted, json) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    /* A new resource's key (rid) is the seq of its first version; an
     * update keeps it. */
    "INSERT INTO resources(type, id, version, last_updated, deleted, seq, rid) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT(type, id) DO UPDATE SET "
    "version=excluded.version, last_updated=excluded.last_updated, "
    "deleted=excluded.deleted, seq=excluded.seq RETURNING rid",
    /* Version 1 has no current row yet (its history row would conflict
     * first): a plain insert, without the upsert's conflict branch and
     * RETURNING's temporary table (37k instructions a row, callgrind). */
    "INSERT INTO resources(type, id, version, last_updated, deleted, seq, rid) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    "DELETE FROM ix_tok WHERE rid=?1",
    /* +rid: without statistics the planner would read the (rid) index to
     * have the keys in order for DISTINCT, scanning every row; this way it
     * seeks the key (pid, value). */
    "SELECT DISTINCT r.id FROM ix_tok t CROSS JOIN resources r INDEXED BY resources_cur ON "
    "r.rid = +t.rid WHERE t.pid = (SELECT pid FROM params WHERE type=?1 AND name=?2) AND "
    "t.value=?3 AND (?4 IS NULL OR t.system=?4) LIMIT ?5",
    "DELETE FROM ix_date WHERE rid=?1",
    "DELETE FROM ix_num WHERE rid=?1",
    "SELECT pid FROM params WHERE type=?1 AND name=?2",
    "INSERT INTO params(type, name) VALUES(?1, ?2)",
};

/* Statements of generated SQL (searches, conditional matches), keyed by
 * their text: the same query shape with other values is the same text
 * (values are bound), and preparing it again cost 9.5% of the writer's
 * CPU in mapped ingest (perf, ORU messages: every conditional upsert is a
 * search). Replaced round robin when full. */
#define DYN_CACHE 32
typedef struct {
    char *sql[DYN_CACHE];
    size_t len[DYN_CACHE];
    sqlite3_stmt *st[DYN_CACHE];
    int n, next;
} dyn_cache;

/* The writer's map of index parameter names (type and name, a
 * composite's name with its first component) to their params.pid: index
 * rows carry the integer, not the two strings. An entry can name a params
 * row a rollback undid, so any rollback empties it. */
typedef struct {
    char *key; /* type, NUL, name */
    size_t len;
    int64_t pid;
} pid_ent;
#define PID_CAP 8192 /* a power of two; emptied when half full */

/* A statement's fixed cost (begin, halt, cursors) was a third of an index
 * row's insert: rows go in by up to this many per statement. */
#define ROWS_PER_INSERT 16

struct hub_store_tx {
    sqlite3 *db;
    pid_ent *pids; /* PID_CAP slots, open addressing */
    size_t npids;
    sqlite3_stmt *find_dup, *insert, *update;
    sqlite3_stmt *tx[TX__N];
    sqlite3_stmt *wr[WR__N];
    /* index rows, several per statement: ins[kind][n - 1] inserts n rows */
    sqlite3_stmt *ins[3][ROWS_PER_INSERT];
    sqlite3_stmt *last_read; /* reset before the next read on this tx */
    hub__stmt_cache cache;   /* the module files' statements */
    dyn_cache dyn;           /* generated statements */
};

/* The reader side's resource statements, prepared once per pooled
 * connection (a read is then one bind and one step). */
enum {
    RD_CUR,
    RD_VER,
    RD_HIST_SYS,
    RD_HIST_TYPE,
    RD_HIST_INST,
    RD_COUNT_SYS,
    RD_COUNT_TYPE,
    RD_COUNT_INST,
    RD__N
};
#define HIST_COLS "type, id, version, last_updated, deleted, seq, json"
#define HIST_PAGE " AND last_updated >= ?3 AND (?4 = 0 OR seq < ?4) ORDER BY seq DESC LIMIT ?5"
static const char *const RD_SQL[RD__N] = {
    "SELECT r.version, r.last_updated, r.deleted, r.seq, h.json FROM "
    "resources r JOIN history h ON h.seq=r.seq WHERE r.type=?1 AND r.id=?2",
    "SELECT version, last_updated, deleted, seq, json FROM history WHERE "
    "type=?1 AND id=?2 AND version=?3",
    "SELECT " HIST_COLS " FROM history WHERE ?1 IS NULL AND ?2 IS NULL" HIST_PAGE,
    "SELECT " HIST_COLS " FROM history WHERE type=?1 AND ?2 IS NULL" HIST_PAGE,
    "SELECT " HIST_COLS " FROM history WHERE type=?1 AND id=?2" HIST_PAGE,
    "SELECT count(*) FROM history WHERE ?1 IS NULL AND ?2 IS NULL AND "
    "last_updated >= ?3",
    "SELECT count(*) FROM history WHERE type=?1 AND ?2 IS NULL AND "
    "last_updated >= ?3",
    "SELECT count(*) FROM history WHERE type=?1 AND id=?2 AND last_updated >= ?3",
};

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *st[RD__N];
    hub__stmt_cache cache;
    dyn_cache dyn;
} reader;

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
    bool busy; /* a group is running (writer thread or hub_store_run) */
    hub_store_stats stats;

    pthread_mutex_t rlock;
    reader *readers[READER_POOL];
    int nreaders;

    int dbfd; /* the database file, to start its writeback at close (not durable); -1 none */
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
    /* (An index on received_ms was dropped: see schema_journal.) */
    /* Version 2: FHIR resources. `history` holds every version (the JSON
     * as sent on reads, a NULL for a delete marker); `resources` is the
     * small current-version row pointing at its history row, so the JSON
     * is written once and a read is one primary-key seek plus one rowid
     * fetch. `res_tokens` is the index of search values (identifier today;
     * search adds the other parameters through the same rows). */
    "CREATE TABLE IF NOT EXISTS history("
    "  seq INTEGER PRIMARY KEY,"
    "  type TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  last_updated INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL,"
    "  json BLOB);"
    "CREATE UNIQUE INDEX IF NOT EXISTS history_version ON history(type, id, "
    "version);"
    "CREATE INDEX IF NOT EXISTS history_type ON history(type, seq);"
    "CREATE TABLE IF NOT EXISTS resources("
    "  type TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  last_updated INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  PRIMARY KEY(type, id)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS res_tokens("
    "  type TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  param TEXT NOT NULL,"
    "  system TEXT NOT NULL,"
    "  value TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS res_tokens_value ON res_tokens(type, param, "
    "value, system);"
    "CREATE INDEX IF NOT EXISTS res_tokens_res ON res_tokens(type, id, param);"
    /* Version 3: search. Dates as [lo, hi) ms ranges (a value's precision:
     * 2024-05 is the whole month), numbers and quantities with their unit.
     * Each table is looked up by (type, param, value) for search and by
     * (type, id) when a resource's rows are replaced or sorted on. */
    /* Token-like rows in a table clustered on the search key (no rowid
     * table beside the two indexes: a third less to write per row); the
     * version-2 rows move over. */
    "CREATE TABLE IF NOT EXISTS res_tok("
    "  type TEXT NOT NULL,"
    "  param TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  system TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  PRIMARY KEY(type, param, value, system, id)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS res_tok_res ON res_tok(type, id);"
    "INSERT OR IGNORE INTO res_tok(type, param, value, system, id) SELECT type, param, "
    "value, system, id FROM res_tokens;"
    "DROP TABLE res_tokens;"
    "CREATE TABLE IF NOT EXISTS res_dates("
    "  type TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  param TEXT NOT NULL,"
    "  lo INTEGER NOT NULL,"
    "  hi INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS res_dates_lo ON res_dates(type, param, lo);"
    "CREATE INDEX IF NOT EXISTS res_dates_hi ON res_dates(type, param, hi);"
    "CREATE INDEX IF NOT EXISTS res_dates_res ON res_dates(type, id, param);"
    "CREATE TABLE IF NOT EXISTS res_nums("
    "  type TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  param TEXT NOT NULL,"
    "  num REAL NOT NULL,"
    "  system TEXT NOT NULL,"
    "  value TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS res_nums_value ON res_nums(type, param, num);"
    "CREATE INDEX IF NOT EXISTS res_nums_res ON res_nums(type, id, param);"
    /* Version 4: dates and numbers clustered by resource (WITHOUT ROWID,
     * keyed (type, id, ...)): a resource's rows are replaced, probed and
     * sorted on by that key, and the separate (type, id) index and the
     * rowid table of version 3 are gone (two fewer trees to write per
     * row). Searches by value use the (type, param, value) indexes. */
    "CREATE TABLE IF NOT EXISTS res_date("
    "  type TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  param TEXT NOT NULL,"
    "  lo INTEGER NOT NULL,"
    "  hi INTEGER NOT NULL,"
    "  PRIMARY KEY(type, id, param, lo, hi)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS res_date_lo ON res_date(type, param, lo);"
    "CREATE INDEX IF NOT EXISTS res_date_hi ON res_date(type, param, hi);"
    "INSERT OR IGNORE INTO res_date SELECT type, id, param, lo, hi FROM res_dates;"
    "DROP TABLE res_dates;"
    "CREATE TABLE IF NOT EXISTS res_num("
    "  type TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  param TEXT NOT NULL,"
    "  num REAL NOT NULL,"
    "  system TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY(type, id, param, num, system, value)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS res_num_value ON res_num(type, param, num);"
    "INSERT OR IGNORE INTO res_num SELECT type, id, param, num, system, value FROM res_nums;"
    "DROP TABLE res_nums;"
    /* Version 5: index rows keyed by integers. A resource's key (rid) is
     * the seq of its first version; a parameter's (pid) names its type
     * and name in `params`. A token row was the type, the parameter name
     * and the 36-character id around its value, in both of its trees
     * (about 90 bytes; now about 40); the resources table keeps the id
     * once. Rows move over; a store of version 4 keeps every resource. */
    "ALTER TABLE resources ADD COLUMN rid INTEGER;"
    "UPDATE resources SET rid = (SELECT min(h.seq) FROM history h WHERE h.type = "
    "resources.type AND h.id = resources.id);"
    "CREATE UNIQUE INDEX IF NOT EXISTS resources_rid ON resources(rid);"
    "CREATE TABLE IF NOT EXISTS params("
    "  pid INTEGER PRIMARY KEY,"
    "  type TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  UNIQUE(type, name));"
    "INSERT OR IGNORE INTO params(type, name) SELECT DISTINCT type, param FROM res_tok;"
    "INSERT OR IGNORE INTO params(type, name) SELECT DISTINCT type, param FROM res_date;"
    "INSERT OR IGNORE INTO params(type, name) SELECT DISTINCT type, param FROM res_num;"
    "CREATE TABLE IF NOT EXISTS ix_tok("
    "  pid INTEGER NOT NULL,"
    "  value TEXT NOT NULL,"
    "  system TEXT NOT NULL,"
    "  rid INTEGER NOT NULL,"
    "  PRIMARY KEY(pid, value, system, rid)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS ix_tok_rid ON ix_tok(rid, pid);"
    "INSERT OR IGNORE INTO ix_tok SELECT p.pid, t.value, t.system, r.rid FROM res_tok t "
    "JOIN params p ON p.type = t.type AND p.name = t.param "
    "JOIN resources r ON r.type = t.type AND r.id = t.id;"
    "DROP TABLE res_tok;"
    "CREATE TABLE IF NOT EXISTS ix_date("
    "  rid INTEGER NOT NULL,"
    "  pid INTEGER NOT NULL,"
    "  lo INTEGER NOT NULL,"
    "  hi INTEGER NOT NULL,"
    "  PRIMARY KEY(rid, pid, lo, hi)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS ix_date_lo ON ix_date(pid, lo);"
    "CREATE INDEX IF NOT EXISTS ix_date_hi ON ix_date(pid, hi);"
    "INSERT OR IGNORE INTO ix_date SELECT r.rid, p.pid, t.lo, t.hi FROM res_date t "
    "JOIN params p ON p.type = t.type AND p.name = t.param "
    "JOIN resources r ON r.type = t.type AND r.id = t.id;"
    "DROP TABLE res_date;"
    "CREATE TABLE IF NOT EXISTS ix_num("
    "  rid INTEGER NOT NULL,"
    "  pid INTEGER NOT NULL,"
    "  num REAL NOT NULL,"
    "  system TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY(rid, pid, num, system, value)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS ix_num_value ON ix_num(pid, num);"
    "INSERT OR IGNORE INTO ix_num SELECT r.rid, p.pid, t.num, t.system, t.value FROM res_num t "
    "JOIN params p ON p.type = t.type AND p.name = t.param "
    "JOIN resources r ON r.type = t.type AND r.id = t.id;"
    "DROP TABLE res_num;"
    "INSERT OR REPLACE INTO meta(key, value) VALUES('schema', '5');"
    "PRAGMA user_version=5;";

/* The schema version this code writes; start-up skips the schema (and its
 * fsync) when the file already has it. Every statement above is
 * idempotent, so a version-1 journal migrates by running it: the journal's
 * tables stay as they are and the resource tables are added. */
#define SCHEMA_VERSION 5

static int user_version(sqlite3 *db) {
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

/* The modules' own tables (hub/store/<module>.c): each is run when the
 * meta row 'schema.<name>' is older than its version, in one transaction
 * (so a start-up on a current store reads one row per module and writes
 * nothing). */
/* The journal's changes since version 1 of the main schema. v1: no index
 * on received_ms. No query used it (listings walk ids newest first, and
 * --since filters them), and every commit wrote one more page for it: 1 of
 * 7.5 WAL frames per single-message commit (measured on the WAL of 300
 * ingested messages). */
static const hub__schema schema_journal = {
    "journal", 1, "DROP INDEX IF EXISTS messages_received;"};

/* The resources' changes since version 5 of the main schema. v1: an index
 * on rid that carries what a search reads of the current version (seq,
 * deleted, version, last_updated; every entry holds the key, type and id),
 * so a match goes from its index row to its history row without a seek
 * of the resources table. At 1M resources a _revinclude of a patient's 20
 * Observations read 124 pages from the file per search before, 81 after
 * (pread64 calls, strace), and its server CPU fell from 352 to 278 us
 * (medians of three runs). It replaces the (rid) index of version 5: rid
 * is unique by construction (the seq of the first version), so nothing
 * needs the index to say it. An update rewrites its entry (seq changes).
 * v2: date rows keep a (pid, hi) entry only when longer than a day or
 * backwards (ix_date_long, partial), instead of all of them (ix_date_hi):
 * a dateTime or a date is found by lo, since its hi is at most a day
 * further (hub/store/search.c, date_rows_pred). An Observation create
 * writes one B-tree entry fewer, at a random place of a tree that grows
 * with the store. The old indexes are dropped by drop_old_indexes,
 * outside this transaction. */
static const hub__schema schema_resources = {
    "resources", 2,
    "CREATE INDEX IF NOT EXISTS resources_cur ON resources(rid, seq, deleted, version, "
    "last_updated);"
    "CREATE INDEX IF NOT EXISTS ix_date_long ON ix_date(pid, hi) WHERE hi - lo NOT BETWEEN 0 "
    "AND " HUB__DATE_SHORT_SQL ";"};

static const hub__schema *const MODULE_SCHEMAS[] = {
    &schema_journal,
    &schema_resources,
    &hub__schema_mpi,
    &hub__schema_route,
    &hub__schema_auth,
};

static int module_version(sqlite3 *db, const char *name) {
    sqlite3_stmt *st;
    int v = 0;
    char key[64];
    snprintf(key, sizeof key, "schema.%s", name);
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key=?1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

static hub_status module_schemas(sqlite3 *db, hub_err *err) {
    for (size_t i = 0; i < sizeof MODULE_SCHEMAS / sizeof MODULE_SCHEMAS[0]; i++) {
        const hub__schema *m = MODULE_SCHEMAS[i];
        if (m->sql == NULL || m->sql[0] == '\0') continue;
        if (module_version(db, m->name) >= m->version) continue;
        hub_status rc = exec(db, "BEGIN IMMEDIATE", err);
        if (!rc) rc = exec(db, m->sql, err);
        if (!rc) {
            char sql[160];
            snprintf(sql, sizeof sql,
                     "INSERT OR REPLACE INTO meta(key, value) VALUES('schema.%s', '%d')",
                     m->name, m->version);
            rc = exec(db, sql, err);
        }
        if (!rc) rc = exec(db, "COMMIT", err);
        if (rc) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
    }
    return HUB_OK;
}

/* Indexes a module schema replaced, dropped each in a transaction of its
 * own: inside the migration's transaction a DROP needs a statement
 * journal, and with secure_delete (Debian's default) it holds every freed
 * page, zeroed; past the spill size (set_spill) SQLite 3.40 then fails the
 * migration with "database or disk is full" (a 1M-resource store: 16k
 * pages). Without the index this is a lookup in the schema, no write. */
static hub_status drop_old_indexes(sqlite3 *db, hub_err *err) {
    hub_status rc = exec(db, "DROP INDEX IF EXISTS resources_rid;", err);
    if (!rc) rc = exec(db, "DROP INDEX IF EXISTS ix_date_hi;", err);
    return rc;
}

/* Savepoint journals in memory, in one allocation each: SQLite keeps the
 * before-image of every page a job's savepoint changes, and in memory
 * (temp_store=MEMORY) it writes them in 1 KiB chunks, five mallocs a page
 * (a tenth of a create's instructions). A spill size of 8 MiB makes the
 * journal one chunk of that size, spilled to a temporary file only past
 * 2,048 pages. The setting is the process's and is only taken before
 * SQLite starts; when it is not (something opened a database first), the
 * journals stay in memory as before. */
static pthread_once_t spill_once = PTHREAD_ONCE_INIT;
static bool spill_set;

static void set_spill(void) {
    spill_set = sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, 8 << 20) == SQLITE_OK;
}

static hub_status open_db(hub_store *s, bool writer, sqlite3 **out,
                          hub_err *err) {
    pthread_once(&spill_once, set_spill);
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_NOMUTEX |
                ((writer && !s->read_only)
                     ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                     : SQLITE_OPEN_READONLY);
    /* The writer gathers its WAL writes (walbuf.c); readers only read. */
    const char *vfs = writer ? hub__walbuf_vfs() : NULL;
    if (sqlite3_open_v2(s->path, &db, flags, vfs) != SQLITE_OK) {
        hub_status rc = db_err(err, db, "store");
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, 10000);
    hub_status rc = HUB_OK;
    /* Readers read pages with pread, not through a mapping: a reader that
     * finds the WAL changed since its last transaction (every audit batch,
     * every write) unmaps its whole mapping, and at 1M resources the
     * munmap, the page faults after it and the mapping lock they share
     * between threads cost more than the copies (measured at 1M
     * Observations, CPU per search: identifier 48 -> 53 us, patient+code
     * +date 291 -> 191, chain 490 -> 229, _revinclude 1066 -> 478; reads
     * by id of a small store the same either way). */
    if (!writer) rc = exec(db, "PRAGMA mmap_size=0;", err);
    /* The writer's lookups (conditional upserts by identifier, current
     * versions for merges) must not re-read pages from the file each time:
     * a page cache of 64 MiB keeps the indexes' hot pages. */
    if (writer && !rc) rc = exec(db, "PRAGMA cache_size=-65536;", err);
    /* Every job runs in a savepoint, and SQLite keeps the rollback copy of
     * each page a savepoint changes in a statement journal: a temp file
     * by default, which cost more pwrite than the WAL itself (measured:
     * 250 MB of /var/tmp/etilqs_* writes against 117 MB of WAL for 200
     * ORU messages, about 1.25 MB a message). In memory it is a copy,
     * freed at RELEASE: in one 8 MiB chunk when the spill size could be set
     * (set_spill; then temp_store stays FILE, which that size needs), in
     * 1 KiB chunks otherwise. */
    if (writer && !rc && !spill_set) rc = exec(db, "PRAGMA temp_store=MEMORY;", err);
    /* Checkpoint every 10,000 WAL pages (40 MB) instead of 1,000: a page
     * that many commits change (the right edge of an index, a hot code's
     * run) is copied to the database once per checkpoint, so fewer
     * checkpoints copy less. Measured on mapped ORU ingest (8 connections,
     * durable): 1,266-1,299 KiB written and 6.9-7.0 ms CPU per message at
     * 1,000; 1,026-1,039 KiB, 5.9-6.2 ms at 4,000; 897-911 KiB, 5.5-6.0 ms
     * at 10,000; 800-822 KiB but no less CPU at 30,000, with readers
     * searching a longer WAL index. A writer mmap did not help (kept for
     * readers only). page_size 1024 or 2048 wrote more, not less. */
    if (writer && !rc) rc = exec(db, "PRAGMA wal_autocheckpoint=10000;", err);
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
        if (!rc) rc = module_schemas(db, err);
        if (!rc) rc = drop_old_indexes(db, err);
        if (!rc && hub__walbuf_failed(db))
            rc = hub_err_set(err, HUB_E_STORE, "store", "write to the WAL failed (%s)",
                             sqlite3_errstr(hub__walbuf_failed(db)));
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
static void enqueue(hub_store *s, hub_store_job *jobs);
static void tx_last_reset(hub_store_tx *tx);
static void pids_clear(hub_store_tx *tx);

static void dyn_free(dyn_cache *c) {
    for (int i = 0; i < c->n; i++) {
        sqlite3_finalize(c->st[i]);
        hub_free(c->sql[i]);
    }
    c->n = c->next = 0;
}

/* The statement of sql[0..len) on db, prepared on first use; give it back
 * with dyn_done. NULL with err set when it does not prepare. One still
 * running (the same search from inside a row callback) is not reused: a
 * statement of its own is made, *temp set, and finalized by dyn_done. */
static sqlite3_stmt *dyn_stmt(sqlite3 *db, dyn_cache *c, const char *sql, size_t len,
                              bool *temp, hub_err *err) {
    *temp = false;
    sqlite3_stmt *st = NULL;
    for (int i = 0; i < c->n; i++) {
        if (c->len[i] != len || memcmp(c->sql[i], sql, len) != 0) continue;
        if (!sqlite3_stmt_busy(c->st[i])) return c->st[i];
        *temp = true;
        if (sqlite3_prepare_v2(db, sql, (int)len, &st, NULL) == SQLITE_OK) return st;
        db_err(err, db, "search");
        return NULL;
    }
    char *copy = hub_malloc(len + 1);
    if (copy == NULL) {
        hub_err_set(err, HUB_E_NOMEM, "store", "out of memory");
        return NULL;
    }
    memcpy(copy, sql, len);
    copy[len] = '\0';
    if (sqlite3_prepare_v3(db, copy, (int)len, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        db_err(err, db, "search");
        hub_free(copy);
        return NULL;
    }
    int slot = c->n < DYN_CACHE ? c->n++ : c->next;
    if (slot == c->next && c->n == DYN_CACHE && c->st[slot] != NULL) {
        sqlite3_finalize(c->st[slot]);
        hub_free(c->sql[slot]);
    }
    if (c->n == DYN_CACHE) c->next = (slot + 1) % DYN_CACHE;
    c->sql[slot] = copy;
    c->len[slot] = len;
    c->st[slot] = st;
    return st;
}

static void dyn_done(sqlite3_stmt *st, bool temp) {
    if (st == NULL) return;
    if (temp) {
        sqlite3_finalize(st);
        return;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static void reader_free(reader *r) {
    if (r == NULL) return;
    hub__stmt_cache_free(&r->cache);
    dyn_free(&r->dyn);
    for (int i = 0; i < RD__N; i++) sqlite3_finalize(r->st[i]);
    sqlite3_close(r->db);
    hub_free(r);
}

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
    s->dbfd = -1;

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
                         "ack_code, ack, errors FROM messages INDEXED BY "
                         "messages_dedup WHERE sender=?1 "
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
        if (!rc && !s->durable) s->dbfd = open(s->path, O_RDONLY | O_CLOEXEC);
        for (int i = 0; i < TX__N && !rc; i++)
            rc = prepare(s->w.db, TX_SQL[i], &s->w.tx[i], err);
        for (int i = 0; i < WR__N && !rc; i++)
            rc = prepare(s->w.db, WR_SQL[i], &s->w.wr[i], err);
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
    for (int i = 0; i < WR__N; i++) sqlite3_finalize(s->w.wr[i]);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < ROWS_PER_INSERT; i++) sqlite3_finalize(s->w.ins[k][i]);
    hub__stmt_cache_free(&s->w.cache);
    pids_clear(&s->w);
    hub_free(s->w.pids);
    dyn_free(&s->w.dyn);
    if (s->w.db) {
        /* Fold the WAL back so the database file alone is complete. */
        sqlite3_wal_checkpoint_v2(s->w.db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
                                  NULL, NULL);
        sqlite3_close(s->w.db);
    }
    if (s->dbfd >= 0) {
        /* A store that is not durable (synchronous=OFF) checkpoints without
         * fsync, and the kernel writes those pages back once they are 30 s
         * old, all at once: a 1M-resource load left 0.7 GB dirty at its
         * close, and the burst came in the middle of the first searches
         * after it (their p99 went from ~40 to ~200 ms while 2.7 GB were
         * written). So the close starts that writeback now: it does not
         * wait for the disk, and promises nothing synchronous=OFF did not.
         * (Not after each checkpoint: the call blocks on the device's
         * queue, 9-77 ms for 40 MB here, which the writer must not.) */
        sync_file_range(s->dbfd, 0, 0, SYNC_FILE_RANGE_WRITE);
        close(s->dbfd);
    }
    for (int i = 0; i < s->nreaders; i++) reader_free(s->readers[i]);
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
    enqueue(s, job);
    pthread_mutex_unlock(&s->lock);
    return HUB_OK;
}

/* An empty job: its done callback says the writer got past it. */
typedef struct {
    hub_store_job job;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} drain_job;

static hub_status drain_run(hub_store_tx *tx, hub_store_job *job, hub_err *err) {
    (void)tx;
    (void)job;
    (void)err;
    return HUB_OK;
}

static void drain_done(hub_store_job *job, hub_status rc, const hub_err *err) {
    (void)rc;
    (void)err;
    drain_job *d = job->ud;
    pthread_mutex_lock(&d->mu);
    d->done = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void hub_store_drain(hub_store *s) {
    drain_job d = {.job = {.run = drain_run, .done = drain_done}, .done = false};
    d.job.ud = &d;
    pthread_mutex_init(&d.mu, NULL);
    pthread_cond_init(&d.cv, NULL);
    hub_err err;
    if (s && hub_store_submit(s, &d.job, &err) == HUB_OK) {
        pthread_mutex_lock(&d.mu);
        while (!d.done) pthread_cond_wait(&d.cv, &d.mu);
        pthread_mutex_unlock(&d.mu);
    }
    pthread_cond_destroy(&d.cv);
    pthread_mutex_destroy(&d.mu);
}

void hub_store_get_stats(hub_store *s, hub_store_stats *out) {
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->lock);
}

static hub_status tx_step(hub_store *s, int which, hub_err *err) {
    if (which == TX_ROLLBACK || which == TX_ROLLBACK_TO) pids_clear(&s->w);
    sqlite3_stmt *st = s->w.tx[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return db_err(err, s->w.db, TX_SQL[which]);
    /* A WAL write that failed while the commit was published: its jobs
     * are not stored (walbuf.c), and nothing after it will be. */
    if (which == TX_COMMIT && hub__walbuf_failed(s->w.db))
        return hub_err_set(err, HUB_E_STORE, "store", "write to the WAL failed (%s)",
                           sqlite3_errstr(hub__walbuf_failed(s->w.db)));
    return HUB_OK;
}

static hub_status tx_step_w(hub_store_tx *w, int which, hub_err *err) {
    tx_last_reset(w);
    if (which == TX_SP_ROLLBACK) pids_clear(w);
    sqlite3_stmt *st = w->tx[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return db_err(err, w->db, TX_SQL[which]);
    return HUB_OK;
}

hub_status hub_store_sp_begin(hub_store_tx *tx, hub_err *err) {
    return tx_step_w(tx, TX_SP_IN, err);
}

hub_status hub_store_sp_end(hub_store_tx *tx, bool keep, hub_err *err) {
    if (!keep) {
        hub_status rc = tx_step_w(tx, TX_SP_ROLLBACK, err);
        if (rc) return rc;
    }
    return tx_step_w(tx, TX_SP_RELEASE, err);
}

static bool all_rerunnable(const hub_store_job *jobs) {
    for (; jobs; jobs = jobs->next)
        if (!jobs->rerunnable) return false;
    return true;
}

/* Runs every job in the open transaction without savepoints. On the first
 * failure, rolls the transaction back and returns false. */
static bool run_bare(hub_store *s, hub_store_job *jobs) {
    for (hub_store_job *j = jobs; j; j = j->next) {
        hub_err e;
        hub_status rc = j->run(&s->w, j, &e);
        tx_last_reset(&s->w);
        if (rc) {
            hub_err tmp;
            if (tx_step(s, TX_ROLLBACK, &tmp) != HUB_OK)
                HUB_LOG_ERROR("store", "rollback failed: %s", tmp.msg);
            return false;
        }
    }
    return true;
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

    /* A job alone needs no savepoint of its own: the transaction is its.
     * (The savepoint's statements and its copies of changed pages cost
     * about a tenth of a one-message commit.) Jobs that may run again run
     * without savepoints too; if one of them fails, all are rolled back and
     * run again one savepoint each. */
    bool solo = jobs && jobs->next == NULL;
    bool undone = false, bare = false;
    if (!grc && !solo && all_rerunnable(jobs)) {
        bare = run_bare(s, jobs);
        if (!bare) grc = tx_step(s, TX_BEGIN, &gerr); /* run_bare rolled back */
    }
    for (hub_store_job *j = jobs; j; j = j->next, n++) {
        if (bare) {
            if (n < MAXG) rcs[n] = HUB_OK;
            continue;
        }
        hub_err *e = errs ? &errs[n] : &gerr;
        hub_status rc = grc;
        if (!rc && !solo) rc = tx_step(s, TX_SAVEPOINT, e);
        if (!rc) {
            rc = j->run(&s->w, j, e);
            tx_last_reset(&s->w); /* no read left open across RELEASE */
            hub_err tmp;
            if (solo) {
                /* Nothing of it is committed, whatever the rollback says. */
                if (rc) undone = true;
                if (rc && tx_step(s, TX_ROLLBACK, &tmp) != HUB_OK)
                    HUB_LOG_ERROR("store", "rollback failed: %s", tmp.msg);
            } else {
                if (rc) tx_step(s, TX_ROLLBACK_TO, &tmp);
                tx_step(s, TX_RELEASE, &tmp);
            }
        } else if (e != &gerr) {
            *e = gerr;
        }
        if (rc) failed++;
        if (n < MAXG) rcs[n] = rc;
    }
    if (!grc && !undone) {
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
    pthread_setname_np(pthread_self(), "hub-writer"); /* for top and perf */
    pthread_mutex_lock(&s->lock);
    for (;;) {
        /* hub_store_run may hold the connection: wait until it is free. */
        while (s->busy || (s->head == NULL && !s->closing))
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->head == NULL) break; /* closing, nothing left */
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
        s->busy = true;
        pthread_mutex_unlock(&s->lock);
        run_group(s, first);
        pthread_mutex_lock(&s->lock);
        s->busy = false;
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Appends a list of jobs to the queue; s->lock held. */
static void enqueue(hub_store *s, hub_store_job *jobs) {
    hub_store_job *last = jobs;
    while (last->next) last = last->next;
    if (s->tail) s->tail->next = jobs;
    else s->head = jobs;
    s->tail = last;
    pthread_cond_signal(&s->cond);
}

/* Takes the queue's lock for new jobs: HUB_OK with the lock held, or an
 * error (read-only or closing store) without it. */
static hub_status lock_for_jobs(hub_store *s, hub_err *err) {
    if (s->read_only)
        return hub_err_set(err, HUB_E_STATE, "store", "store is read-only");
    pthread_mutex_lock(&s->lock);
    if (s->closing) {
        pthread_mutex_unlock(&s->lock);
        return hub_err_set(err, HUB_E_STATE, "store", "store is closing");
    }
    return HUB_OK;
}

hub_status hub_store_queue(hub_store *s, hub_store_job *jobs, hub_err *err) {
    if (jobs == NULL) return HUB_OK;
    hub_status rc = lock_for_jobs(s, err);
    if (rc) return rc;
    enqueue(s, jobs);
    pthread_mutex_unlock(&s->lock);
    return HUB_OK;
}

hub_status hub_store_run(hub_store *s, hub_store_job *jobs, hub_err *err) {
    if (jobs == NULL) return HUB_OK;
    hub_status rc = lock_for_jobs(s, err);
    if (rc) return rc;
    if (s->busy || s->head) {
        /* The writer is at work: these join the queue, and its next group. */
        enqueue(s, jobs);
        pthread_mutex_unlock(&s->lock);
        return HUB_OK;
    }
    s->busy = true;
    pthread_mutex_unlock(&s->lock);
    while (jobs) {
        hub_store_job *first = jobs, *last = jobs;
        for (int n = 1; last->next && n < s->batch_max && n < 4096; n++) last = last->next;
        jobs = last->next;
        last->next = NULL;
        run_group(s, first);
    }
    pthread_mutex_lock(&s->lock);
    s->busy = false;
    if (s->head || s->closing) pthread_cond_signal(&s->cond); /* the writer waits for it */
    pthread_mutex_unlock(&s->lock);
    return HUB_OK;
}

/* ---- readers ------------------------------------------------------------ */

static hub_status reader_take(hub_store *s, reader **out, hub_err *err) {
    pthread_mutex_lock(&s->rlock);
    if (s->nreaders > 0) {
        *out = s->readers[--s->nreaders];
        pthread_mutex_unlock(&s->rlock);
        return HUB_OK;
    }
    pthread_mutex_unlock(&s->rlock);
    reader *r = hub_calloc(1, sizeof *r);
    if (r == NULL) return hub_err_set(err, HUB_E_NOMEM, "store", "out of memory");
    hub_status rc = open_db(s, false, &r->db, err);
    if (rc) {
        hub_free(r);
        return rc;
    }
    *out = r;
    return HUB_OK;
}

static void reader_give(hub_store *s, reader *r) {
    pthread_mutex_lock(&s->rlock);
    if (s->nreaders < READER_POOL) {
        s->readers[s->nreaders++] = r;
        r = NULL;
    }
    pthread_mutex_unlock(&s->rlock);
    reader_free(r);
}

/* The reader's statement `which`, prepared on first use. */
static hub_status reader_stmt(reader *r, int which, sqlite3_stmt **out,
                              hub_err *err) {
    if (r->st[which] == NULL) {
        hub_status rc = prepare(r->db, RD_SQL[which], &r->st[which], err);
        if (rc) return rc;
    }
    *out = r->st[which];
    return HUB_OK;
}

/* ---- the module files' access ------------------------------------------ */

void hub__stmt_cache_free(hub__stmt_cache *c) {
    for (int i = 0; i < c->n; i++) sqlite3_finalize(c->st[i]);
    c->n = 0;
}

sqlite3_stmt *hub__stmt(sqlite3 *db, hub__stmt_cache *c, const char *sql,
                        hub_err *err) {
    for (int i = 0; i < c->n; i++) {
        if (c->sql[i] == sql) {
            sqlite3_reset(c->st[i]);
            sqlite3_clear_bindings(c->st[i]);
            return c->st[i];
        }
    }
    sqlite3_stmt *st = NULL;
    if (prepare(db, sql, &st, err)) return NULL;
    if (c->n == HUB__STMT_CACHE) {
        /* Full: the oldest goes (the caches are sized for every statement
         * of the modules, so this is a safety valve, not a policy). */
        sqlite3_finalize(c->st[0]);
        memmove(c->st, c->st + 1, (HUB__STMT_CACHE - 1) * sizeof c->st[0]);
        memmove(c->sql, c->sql + 1, (HUB__STMT_CACHE - 1) * sizeof c->sql[0]);
        c->n--;
    }
    c->sql[c->n] = sql;
    c->st[c->n++] = st;
    return st;
}

sqlite3 *hub__tx_db(hub_store_tx *tx) { return tx->db; }

sqlite3_stmt *hub__tx_stmt(hub_store_tx *tx, const char *sql, hub_err *err) {
    tx_last_reset(tx);
    return hub__stmt(tx->db, &tx->cache, sql, err);
}

hub_status hub__reader_take(hub_store *s, hub__reader **out, hub_err *err) {
    reader *r;
    hub_status rc = reader_take(s, &r, err);
    if (rc) return rc;
    *out = (hub__reader *)r;
    return HUB_OK;
}

sqlite3_stmt *hub__reader_stmt(hub__reader *rd, const char *sql, hub_err *err) {
    reader *r = (reader *)rd;
    return hub__stmt(r->db, &r->cache, sql, err);
}

void hub__reader_give(hub_store *s, hub__reader *rd) {
    reader *r = (reader *)rd;
    for (int i = 0; i < r->cache.n; i++) sqlite3_reset(r->cache.st[i]);
    reader_give(s, r);
}

hub_status hub__store_db_err(hub_err *err, sqlite3 *db, const char *where) {
    return db_err(err, db, where);
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
    reader *rd;
    hub_status rc = reader_take(s, &rd, err);
    if (rc) return rc;
    sqlite3 *db = rd->db;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = db_err(err, db, "journal");
        reader_give(s, rd);
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
    reader_give(s, rd);
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
    reader *rd;
    hub_status rc = reader_take(s, &rd, err);
    if (rc) return rc;
    sqlite3 *db = rd->db;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT status, count(*) FROM messages GROUP BY status",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_err(err, db, "journal");
        reader_give(s, rd);
        return rc;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        int k = sqlite3_column_int(st, 0);
        if (k >= 0 && k < 4) counts[k] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    reader_give(s, rd);
    return HUB_OK;
}

/* ---- resources ------------------------------------------------------------ */

/* Columns: version, last_updated, deleted, seq[, json]. */
static void version_from(sqlite3_stmt *st, int first, bool json,
                         hub_store_version *v) {
    v->version = sqlite3_column_int64(st, first);
    v->last_updated_ms = sqlite3_column_int64(st, first + 1);
    v->deleted = sqlite3_column_int(st, first + 2) != 0;
    v->seq = sqlite3_column_int64(st, first + 3);
    v->json = NULL;
    v->json_len = 0;
    if (json && sqlite3_column_type(st, first + 4) != SQLITE_NULL) {
        v->json = sqlite3_column_blob(st, first + 4);
        v->json_len = (size_t)sqlite3_column_bytes(st, first + 4);
        if (v->json == NULL) v->json = "";
    }
}

static void tx_last_reset(hub_store_tx *tx) {
    if (tx->last_read) {
        sqlite3_reset(tx->last_read);
        tx->last_read = NULL;
    }
}

static hub_status wr_lookup(hub_store_tx *tx, int which, const char *type,
                            const char *id, int64_t version,
                            hub_store_version *out, hub_err *err) {
    tx_last_reset(tx);
    sqlite3_stmt *st = tx->wr[which];
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    if (which == WR_VER) sqlite3_bind_int64(st, 3, version);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        out->type = type;
        out->id = id;
        version_from(st, 0, which != WR_CUR, out);
        tx->last_read = st; /* the JSON stays valid until the next read */
        return HUB_OK;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) return HUB_E_NOTFOUND;
    return db_err(err, tx->db, "resources");
}

hub_status hub_store_res_current(hub_store_tx *tx, const char *type,
                                 const char *id, bool want_json,
                                 hub_store_version *cur, hub_err *err) {
    return wr_lookup(tx, want_json ? WR_CUR_JSON : WR_CUR, type, id, 0, cur,
                     err);
}

hub_status hub_store_res_get(hub_store_tx *tx, const char *type,
                             const char *id, int64_t version,
                             hub_store_version *out, hub_err *err) {
    if (version <= 0) return wr_lookup(tx, WR_CUR_JSON, type, id, 0, out, err);
    return wr_lookup(tx, WR_VER, type, id, version, out, err);
}

static hub_status step_done(hub_store_tx *tx, sqlite3_stmt *st,
                            const char *where, hub_err *err) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) return HUB_OK;
    if (rc == SQLITE_CONSTRAINT)
        return hub_err_set(err, HUB_E_CONFLICT, where, "version exists already");
    return db_err(err, tx->db, where);
}

static hub_status put_rows(hub_store_tx *tx, const char *type, int64_t rid, bool drop,
                           const hub_store_token *toks, size_t ntoks, hub_err *err);

hub_status hub_store_res_put(hub_store_tx *tx, const hub_store_version *v,
                             const hub_store_token *toks, size_t ntoks,
                             hub_err *err) {
    tx_last_reset(tx);
    sqlite3_stmt *st = tx->wr[WR_HIST_INS];
    sqlite3_bind_text(st, 1, v->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, v->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, v->version);
    sqlite3_bind_int64(st, 4, v->last_updated_ms);
    sqlite3_bind_int(st, 5, v->deleted);
    if (v->deleted || v->json == NULL)
        sqlite3_bind_null(st, 6);
    else
        sqlite3_bind_blob(st, 6, v->json, (int)v->json_len, SQLITE_STATIC);
    hub_status rc = step_done(tx, st, "history", err);
    if (rc) return rc;
    int64_t seq = sqlite3_last_insert_rowid(tx->db);

    bool first = v->version == 1;
    st = tx->wr[first ? WR_RES_INS : WR_RES_UPSERT];
    sqlite3_bind_text(st, 1, v->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, v->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, v->version);
    sqlite3_bind_int64(st, 4, v->last_updated_ms);
    sqlite3_bind_int(st, 5, v->deleted);
    sqlite3_bind_int64(st, 6, seq);
    int step = sqlite3_step(st);
    int64_t rid = first ? seq : step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (step == SQLITE_ROW) step = sqlite3_step(st);
    sqlite3_reset(st);
    if (step != SQLITE_DONE || rid == 0) return db_err(err, tx->db, "resources");

    /* A new resource has no index rows yet: skip the delete. */
    return put_rows(tx, v->type, rid, v->version > 1, v->deleted ? NULL : toks,
                    v->deleted ? 0 : ntoks, err);
}

static int64_t rid_of(hub_store_tx *tx, const char *type, const char *id, hub_err *err) {
    sqlite3_stmt *st = hub__tx_stmt(tx, "SELECT rid FROM resources WHERE type=?1 AND id=?2", err);
    if (st == NULL) return -1;
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    int64_t rid = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        db_err(err, tx->db, "resources");
        return -1;
    }
    return rid;
}

hub_status hub_store_res_index(hub_store_tx *tx, const char *type, const char *id,
                               const hub_store_token *toks, size_t ntoks, hub_err *err) {
    tx_last_reset(tx);
    int64_t rid = rid_of(tx, type, id, err);
    if (rid < 0) return HUB_E_STORE;
    if (rid == 0) return hub_err_set(err, HUB_E_NOTFOUND, "index", "no such resource");
    return put_rows(tx, type, rid, true, toks, ntoks, err);
}

/* ---- parameter keys ------------------------------------------------------- */

static void pids_clear(hub_store_tx *tx) {
    if (tx->pids == NULL) return;
    for (size_t i = 0; i < PID_CAP; i++) {
        hub_free(tx->pids[i].key);
        tx->pids[i].key = NULL;
    }
    tx->npids = 0;
}

static uint64_t pid_hash(const char *k, size_t n) {
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ULL;
    return h;
}

/* params.pid of (type, name), a row added when there is none. */
static hub_status pid_of(hub_store_tx *tx, const char *type, const char *name, int64_t *pid,
                         hub_err *err) {
    char key[512];
    size_t tl = strlen(type), nl = strlen(name);
    if (tl + nl + 2 > sizeof key)
        return hub_err_set(err, HUB_E_LIMIT, "index", "parameter name too long");
    memcpy(key, type, tl + 1);
    memcpy(key + tl + 1, name, nl + 1);
    size_t len = tl + 1 + nl;
    if (tx->pids == NULL && (tx->pids = hub_calloc(PID_CAP, sizeof *tx->pids)) == NULL)
        return hub_err_set(err, HUB_E_NOMEM, "index", "out of memory");
    size_t i = pid_hash(key, len) & (PID_CAP - 1);
    for (; tx->pids[i].key; i = (i + 1) & (PID_CAP - 1)) {
        if (tx->pids[i].len == len && memcmp(tx->pids[i].key, key, len) == 0) {
            *pid = tx->pids[i].pid;
            return HUB_OK;
        }
    }
    sqlite3_stmt *st = tx->wr[WR_PID];
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    *pid = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) return db_err(err, tx->db, "params");
    if (step == SQLITE_DONE) {
        st = tx->wr[WR_PID_INS];
        sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        hub_status rc = step_done(tx, st, "params", err);
        if (rc) return rc;
        *pid = sqlite3_last_insert_rowid(tx->db);
    }
    if (tx->npids >= PID_CAP / 2) {
        pids_clear(tx); /* composites' names are open-ended: start again */
        i = pid_hash(key, len) & (PID_CAP - 1);
    }
    tx->pids[i].key = hub_malloc(len);
    if (tx->pids[i].key == NULL) return HUB_OK; /* not cached: looked up again next time */
    memcpy(tx->pids[i].key, key, len);
    tx->pids[i].len = len;
    tx->pids[i].pid = *pid;
    tx->npids++;
    return HUB_OK;
}

/* The statement inserting n index rows of kind k (prepared on first use). */
static sqlite3_stmt *ins_stmt(hub_store_tx *tx, hub_ix_kind k, size_t n, hub_err *err) {
    sqlite3_stmt **st = &tx->ins[k][n - 1];
    if (*st) return *st;
    static const char *const HEAD[3] = {
        "INSERT OR IGNORE INTO ix_tok(pid, value, system, rid) VALUES",
        "INSERT OR IGNORE INTO ix_date(rid, pid, lo, hi) VALUES",
        "INSERT OR IGNORE INTO ix_num(rid, pid, num, system, value) VALUES"};
    static const char *const ROW[3] = {"(?,?,?,?)", "(?,?,?,?)", "(?,?,?,?,?)"};
    char sql[64 + ROWS_PER_INSERT * 12];
    size_t len = (size_t)snprintf(sql, sizeof sql, "%s", HEAD[k]);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(sql + len, sizeof sql - len, "%s%s", i ? "," : "", ROW[k]);
    if (prepare(tx->db, sql, st, err)) return NULL;
    return *st;
}

/* Binds row t (parameter pid) as the i-th row of a statement of its kind. */
static void bind_row(sqlite3_stmt *st, int i, const hub_store_token *t, int64_t rid,
                     int64_t pid) {
    const char *sys = t->system ? t->system : "", *val = t->value ? t->value : "";
    if (t->kind == HUB_IX_DATE) {
        int b = i * 4;
        sqlite3_bind_int64(st, b + 1, rid);
        sqlite3_bind_int64(st, b + 2, pid);
        sqlite3_bind_int64(st, b + 3, t->lo);
        sqlite3_bind_int64(st, b + 4, t->hi);
    } else if (t->kind == HUB_IX_NUMBER) {
        int b = i * 5;
        sqlite3_bind_int64(st, b + 1, rid);
        sqlite3_bind_int64(st, b + 2, pid);
        sqlite3_bind_double(st, b + 3, t->num);
        sqlite3_bind_text(st, b + 4, sys, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, b + 5, val, -1, SQLITE_STATIC);
    } else {
        int b = i * 4;
        sqlite3_bind_int64(st, b + 1, pid);
        sqlite3_bind_text(st, b + 2, val, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, b + 3, sys, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, b + 4, rid);
    }
}

/* Inserts the stored rows of kind k among toks, up to ROWS_PER_INSERT per
 * statement. */
static hub_status put_kind(hub_store_tx *tx, const char *type, int64_t rid, hub_ix_kind k,
                           const hub_store_token *toks, size_t ntoks, hub_err *err) {
    const hub_store_token *batch[ROWS_PER_INSERT];
    int64_t pids[ROWS_PER_INSERT];
    size_t n = 0;
    for (size_t i = 0; i <= ntoks; i++) {
        if (i < ntoks) {
            const hub_store_token *t = &toks[i];
            if (t->shadow || t->kind != k) continue;
            hub_status rc = pid_of(tx, type, t->param, &pids[n], err);
            if (rc) return rc;
            batch[n++] = t;
            if (n < ROWS_PER_INSERT) continue;
        }
        if (n == 0) continue;
        sqlite3_stmt *st = ins_stmt(tx, k, n, err);
        if (!st) return HUB_E_STORE;
        for (size_t j = 0; j < n; j++) bind_row(st, (int)j, batch[j], rid, pids[j]);
        hub_status rc = step_done(tx, st, "index", err);
        if (rc) return rc;
        n = 0;
    }
    return HUB_OK;
}

/* Replaces (drop first) or writes the index rows of the resource rid. */
static hub_status put_rows(hub_store_tx *tx, const char *type, int64_t rid, bool drop,
                           const hub_store_token *toks, size_t ntoks, hub_err *err) {
    if (drop) {
        static const int DEL[3] = {WR_TOK_DEL, WR_DATE_DEL, WR_NUM_DEL};
        for (int k = 0; k < 3; k++) {
            sqlite3_stmt *st = tx->wr[DEL[k]];
            sqlite3_bind_int64(st, 1, rid);
            hub_status rc = step_done(tx, st, "index", err);
            if (rc) return rc;
        }
    }
    static const hub_ix_kind KINDS[3] = {HUB_IX_TOKEN, HUB_IX_DATE, HUB_IX_NUMBER};
    for (int k = 0; k < 3; k++) {
        hub_status rc = put_kind(tx, type, rid, KINDS[k], toks, ntoks, err);
        if (rc) return rc;
    }
    return HUB_OK;
}

hub_status hub_store_res_find(hub_store_tx *tx, const char *type,
                              const char *param, const char *system,
                              const char *value, int limit,
                              hub_store_id_fn fn, void *ud, int *n,
                              hub_err *err) {
    tx_last_reset(tx);
    *n = 0;
    sqlite3_stmt *st = tx->wr[WR_FIND];
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, param, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, value, -1, SQLITE_STATIC);
    if (system)
        sqlite3_bind_text(st, 4, system, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 4);
    sqlite3_bind_int(st, 5, limit + 1);
    int step;
    hub_status rc = HUB_OK;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        (*n)++;
        if (*n > limit || fn == NULL) continue;
        rc = fn(ud, (const char *)sqlite3_column_text(st, 0));
        if (rc) break;
    }
    if (!rc && step != SQLITE_DONE) rc = db_err(err, tx->db, "res_tokens");
    sqlite3_reset(st);
    return rc;
}

hub_status hub_store_res_read(hub_store *s, const char *type, const char *id,
                              int64_t version, hub_store_version_fn fn,
                              void *ud, hub_err *err) {
    reader *rd;
    hub_status rc = reader_take(s, &rd, err);
    if (rc) return rc;
    sqlite3_stmt *st;
    rc = reader_stmt(rd, version > 0 ? RD_VER : RD_CUR, &st, err);
    if (rc) {
        reader_give(s, rd);
        return rc;
    }
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    if (version > 0) sqlite3_bind_int64(st, 3, version);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        hub_store_version v;
        memset(&v, 0, sizeof v);
        v.type = type;
        v.id = id;
        version_from(st, 0, true, &v);
        rc = fn(ud, &v);
    } else if (step == SQLITE_DONE) {
        rc = HUB_E_NOTFOUND;
    } else {
        rc = db_err(err, rd->db, "resources");
    }
    sqlite3_reset(st);
    reader_give(s, rd);
    return rc;
}

/* A reader's read transaction and the newest seq, through its cached
 * statements: parsing "BEGIN", "COMMIT" and the max(seq) query on every
 * search cost more than an identifier search's own query. */
static const char BEGIN_SQL[] = "BEGIN", COMMIT_SQL[] = "COMMIT",
                  MAX_SEQ_SQL[] = "SELECT max(seq) FROM history";

static void reader_exec(reader *r, const char *sql) {
    hub_err err;
    sqlite3_stmt *st = hub__stmt(r->db, &r->cache, sql, &err);
    if (st == NULL) return;
    sqlite3_step(st);
    sqlite3_reset(st);
}

static int64_t max_seq(reader *r) {
    hub_err err;
    sqlite3_stmt *st = hub__stmt(r->db, &r->cache, MAX_SEQ_SQL, &err);
    int64_t v = 0;
    if (st && sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    if (st) sqlite3_reset(st);
    return v;
}

hub_status hub_store_res_history(hub_store *s, const hub_store_history_q *q,
                                 hub_store_version_fn fn, void *ud,
                                 int64_t *next_cursor, int64_t *total,
                                 hub_err *err) {
    *next_cursor = 0;
    *total = 0;
    if (q->id && !q->type)
        return hub_err_set(err, HUB_E_ARG, "history", "id without type");
    int count = q->count < 1 ? 1 : q->count > 1000 ? 1000 : q->count;
    int kind = q->type == NULL ? 0 : q->id == NULL ? 1 : 2;
    reader *rd;
    hub_status rc = reader_take(s, &rd, err);
    if (rc) return rc;
    sqlite3_stmt *cnt, *st;
    rc = reader_stmt(rd, RD_COUNT_SYS + kind, &cnt, err);
    if (!rc) rc = reader_stmt(rd, RD_HIST_SYS + kind, &st, err);
    if (rc) {
        reader_give(s, rd);
        return rc;
    }
    /* Both statements run in one read transaction, so the total and the
     * page agree. */
    reader_exec(rd, BEGIN_SQL);
    sqlite3_stmt *both[2] = {cnt, st};
    for (int i = 0; i < 2; i++) {
        if (q->type)
            sqlite3_bind_text(both[i], 1, q->type, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(both[i], 1);
        if (q->id)
            sqlite3_bind_text(both[i], 2, q->id, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(both[i], 2);
        sqlite3_bind_int64(both[i], 3, q->since_ms);
    }
    int step = sqlite3_step(cnt);
    if (step == SQLITE_ROW) *total = sqlite3_column_int64(cnt, 0);
    else rc = db_err(err, rd->db, "history");
    sqlite3_reset(cnt);

    if (!rc) {
        sqlite3_bind_int64(st, 4, q->cursor);
        sqlite3_bind_int(st, 5, count + 1);
        int seen = 0;
        int64_t last_seq = 0;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            if (++seen > count) {
                *next_cursor = last_seq;
                continue;
            }
            hub_store_version v;
            memset(&v, 0, sizeof v);
            v.type = (const char *)sqlite3_column_text(st, 0);
            v.id = (const char *)sqlite3_column_text(st, 1);
            version_from(st, 2, true, &v);
            last_seq = v.seq;
            rc = fn(ud, &v);
            if (rc) break;
        }
        if (!rc && step != SQLITE_DONE) rc = db_err(err, rd->db, "history");
        sqlite3_reset(st);
    }
    reader_exec(rd, COMMIT_SQL);
    reader_give(s, rd);
    return rc;
}

/* ---- search ------------------------------------------------------------------ */

static void bind_all(sqlite3_stmt *st, const hub__sq *b) {
    int n = sqlite3_bind_parameter_count(st);
    for (int i = 1; i <= n && (size_t)i <= b->nbinds; i++) {
        const hub__bind *v = &b->binds[i - 1];
        if (v->kind == HUB__B_TEXT) sqlite3_bind_text(st, i, v->s, -1, SQLITE_STATIC);
        else if (v->kind == HUB__B_INT) sqlite3_bind_int64(st, i, v->i);
        else sqlite3_bind_double(st, i, v->d);
    }
}


/* The paging cursor of the current row of st (sort keys in columns 6...). */
static void row_cursor(sqlite3_stmt *st, const hub_store_query *q, int64_t snap, bool backward,
                       const char *id, char *out, size_t cap) {
    const char *keys[4];
    int types[4];
    char kb[4][32];
    for (size_t k = 0; k < q->nsort; k++) {
        int col = 6 + (int)k;
        int ct = sqlite3_column_type(st, col);
        if (ct == SQLITE_INTEGER) {
            snprintf(kb[k], sizeof kb[k], "%lld", (long long)sqlite3_column_int64(st, col));
            keys[k] = kb[k];
            types[k] = 'i';
        } else if (ct == SQLITE_FLOAT) {
            snprintf(kb[k], sizeof kb[k], "%.17g", sqlite3_column_double(st, col));
            keys[k] = kb[k];
            types[k] = 'r';
        } else {
            keys[k] = (const char *)sqlite3_column_text(st, col);
            types[k] = 's';
        }
    }
    if (hub__store_cursor(q, snap, backward, keys, types, id, out, cap) != HUB_OK) out[0] = '\0';
}

/* A row of a backwards page, kept until the page is turned around. */
typedef struct {
    hub_store_version v;
} held_row;

hub_status hub_store_search(hub_store *s, const hub_store_query *q,
                            hub_store_version_fn fn, void *ud,
                            hub_store_page *page, hub_err *err) {
    page->total = -1;
    page->next[0] = '\0';
    page->prev[0] = '\0';
    int count = q->count < 0 ? 0 : q->count > 1000 ? 1000 : q->count;
    reader *rd;
    hub_status rc = reader_take(s, &rd, err);
    if (rc) return rc;
    hub__sq b = {0};
    hub_buf_init(&b.sql);
    hub_arena_init(&b.arena, 1024);
    reader_exec(rd, BEGIN_SQL);
    int64_t snap = q->cursor ? 0 : q->snapshot > 0 ? q->snapshot : max_seq(rd);
    if (snap == 0 && !q->cursor) snap = 1; /* an empty store: nothing to see yet */
    size_t page_len = 0;
    rc = hub__store_search_sql(q, snap, false, count, &b, &page_len, err);
    page->snapshot = b.snapshot;
    sqlite3_stmt *st = NULL;
    bool temp = false;
    if (!rc && q->want_total) {
        const char *csql = b.sql.p + page_len + 1;
        st = dyn_stmt(rd->db, &rd->dyn, csql, strlen(csql), &temp, err);
        if (st == NULL) {
            rc = HUB_E_STORE;
        } else {
            bind_all(st, &b);
            if (sqlite3_step(st) == SQLITE_ROW) page->total = sqlite3_column_int64(st, 0);
            else rc = db_err(err, rd->db, "search");
        }
        dyn_done(st, temp);
        st = NULL;
    }
    held_row *held = NULL;
    size_t nheld = 0;
    hub_arena ha;
    hub_arena_init(&ha, 4096);
    if (!rc && count > 0) {
        st = dyn_stmt(rd->db, &rd->dyn, b.sql.p, page_len, &temp, err);
        if (st == NULL) {
            rc = HUB_E_STORE;
        } else {
            bind_all(st, &b);
            int seen = 0, step;
            if (b.backward) held = hub_arena_alloc(&ha, (size_t)count * sizeof *held);
            if (b.backward && !held) rc = hub_err_set(err, HUB_E_NOMEM, "search", "out of memory");
            while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
                /* One more row than the page: there is a page beyond. */
                if (++seen > count) break;
                hub_store_version v;
                memset(&v, 0, sizeof v);
                v.type = q->type;
                v.id = (const char *)sqlite3_column_text(st, 0);
                version_from(st, 1, true, &v);
                if (b.backward) {
                    /* Read newest-first from the cursor: the first row read
                     * is the page's last (next starts after it), the last
                     * read its first (prev ends before it). */
                    if (seen == 1) row_cursor(st, q, b.snapshot, false, v.id, page->next, sizeof page->next);
                    row_cursor(st, q, b.snapshot, true, v.id, page->prev, sizeof page->prev);
                    held_row *h = &held[nheld++];
                    h->v = v;
                    h->v.id = hub_arena_strndup(&ha, v.id, strlen(v.id));
                    h->v.json = v.json ? hub_arena_strndup(&ha, v.json, v.json_len) : NULL;
                    if (!h->v.id || (v.json && !h->v.json))
                        rc = hub_err_set(err, HUB_E_NOMEM, "search", "out of memory");
                    continue;
                }
                if (seen == 1 && q->cursor)
                    row_cursor(st, q, b.snapshot, true, v.id, page->prev, sizeof page->prev);
                row_cursor(st, q, b.snapshot, false, v.id, page->next, sizeof page->next);
                rc = fn(ud, &v);
                if (rc) break;
            }
            if (b.backward) {
                if (seen <= count) page->prev[0] = '\0';
                for (size_t k = nheld; k-- > 0 && !rc;) rc = fn(ud, &held[k].v);
            } else if (seen <= count) {
                page->next[0] = '\0';
            }
            if (!rc && step != SQLITE_ROW && step != SQLITE_DONE)
                rc = db_err(err, rd->db, "search");
        }
        dyn_done(st, temp);
    }
    hub_arena_release(&ha);
    reader_exec(rd, COMMIT_SQL);
    hub__sq_release(&b);
    reader_give(s, rd);
    return rc;
}

hub_status hub_store_types(hub_store *s, hub_store_type_fn fn, void *ud, hub_err *err) {
    reader *rd;
    hub_status rc = reader_take(s, &rd, err);
    if (rc) return rc;
    /* One seek per type (a loose index scan), not a scan of every row. */
    static const char SQL[] =
        "WITH RECURSIVE t(x) AS (SELECT min(type) FROM resources UNION ALL "
        "SELECT (SELECT min(type) FROM resources WHERE type > t.x) FROM t WHERE t.x IS NOT NULL) "
        "SELECT x FROM t WHERE x IS NOT NULL";
    sqlite3_stmt *st = hub__stmt(rd->db, &rd->cache, SQL, err);
    if (!st) rc = HUB_E_STORE;
    int step = SQLITE_DONE;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = fn(ud, (const char *)sqlite3_column_text(st, 0));
    if (!rc && step != SQLITE_DONE) rc = db_err(err, rd->db, "resources");
    if (st) sqlite3_reset(st);
    reader_give(s, rd);
    return rc;
}

hub_status hub_store_res_scan(hub_store *s, const char *type, const char *after_type,
                              const char *after_id, int limit, hub_store_version_fn fn,
                              void *ud, hub_err *err) {
    reader *rd;
    hub_status rc = reader_take(s, &rd, err);
    if (rc) return rc;
    static const char SQL[] =
        "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.seq, h.json FROM resources r "
        "JOIN history h ON h.seq = r.seq WHERE (?1 IS NULL OR r.type = ?1) AND "
        "(r.type, r.id) > (?2, ?3) AND r.deleted = 0 ORDER BY r.type, r.id LIMIT ?4";
    sqlite3_stmt *st = hub__stmt(rd->db, &rd->cache, SQL, err);
    if (!st) rc = HUB_E_STORE;
    int step = SQLITE_DONE;
    if (!rc) {
        if (type) sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, after_type ? after_type : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, after_id ? after_id : "", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, limit < 1 ? 1 : limit > 1000 ? 1000 : limit);
    }
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        hub_store_version v;
        memset(&v, 0, sizeof v);
        v.type = (const char *)sqlite3_column_text(st, 0);
        v.id = (const char *)sqlite3_column_text(st, 1);
        version_from(st, 2, true, &v);
        rc = fn(ud, &v);
    }
    if (!rc && step != SQLITE_DONE) rc = db_err(err, rd->db, "resources");
    if (st) sqlite3_reset(st);
    reader_give(s, rd);
    return rc;
}

hub_status hub_store_search_tx(hub_store_tx *tx, const hub_store_query *q,
                               int limit, hub_store_id_fn fn, void *ud, int *n,
                               hub_err *err) {
    tx_last_reset(tx);
    *n = 0;
    hub__sq b = {0};
    hub_buf_init(&b.sql);
    hub_arena_init(&b.arena, 1024);
    size_t page_len = 0;
    /* The writer sees everything: no snapshot bound. */
    hub_status rc = hub__store_search_sql(q, INT64_MAX, true, limit, &b, &page_len, err);
    sqlite3_stmt *st = NULL;
    bool temp = false;
    if (!rc && (st = dyn_stmt(tx->db, &tx->dyn, b.sql.p, page_len, &temp, err)) == NULL)
        rc = HUB_E_STORE;
    if (!rc) {
        bind_all(st, &b);
        int step;
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            (*n)++;
            if (*n > limit || fn == NULL) continue;
            rc = fn(ud, (const char *)sqlite3_column_text(st, 0));
            if (rc) break;
        }
        if (!rc && step != SQLITE_DONE) rc = db_err(err, tx->db, "search");
    }
    dyn_done(st, temp);
    hub__sq_release(&b);
    return rc;
}
