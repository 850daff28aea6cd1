/* store: the write connection's buffered WAL (hub/store/walbuf.c). */
#include "../../hub/store/internal.h"
#include "hub/store.h"
#include "hub_test.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

static sqlite3 *open_conn(const char *path, const char *vfs) {
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    cr_assert_eq(sqlite3_open_v2(path, &db, flags, vfs), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    return db;
}

static void run_sql(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql,
                 msg ? msg : "?");
}

static int64_t one_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Inserts `rows` rows of `size` bytes each (byte i of row r is (r + i) & 255)
 * in one transaction. */
static void insert_rows(sqlite3 *db, int64_t first, int rows, int size) {
    unsigned char *b = malloc((size_t)size);
    sqlite3_stmt *st;
    run_sql(db, "BEGIN IMMEDIATE");
    cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO t(id, b) VALUES(?1, ?2)", -1, &st, NULL),
                 SQLITE_OK);
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < size; i++) b[i] = (unsigned char)(first + r + i);
        sqlite3_bind_int64(st, 1, first + r);
        sqlite3_bind_blob(st, 2, b, size, SQLITE_TRANSIENT);
        cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    run_sql(db, "COMMIT");
    free(b);
}

/* Every row as insert_rows wrote it, read through db. */
static void check_rows(sqlite3 *db, int64_t want) {
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT id, b FROM t ORDER BY id", -1, &st, NULL),
                 SQLITE_OK);
    int64_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const unsigned char *b = sqlite3_column_blob(st, 1);
        int size = sqlite3_column_bytes(st, 1);
        for (int i = 0; i < size; i++)
            cr_assert_eq(b[i], (unsigned char)(id + i), "row %lld byte %d", (long long)id, i);
        n++;
    }
    sqlite3_finalize(st);
    cr_assert_eq(n, want);
}

/* A reader on its own connection (the default VFS, as the store's readers)
 * sees each commit whole, whatever its size: one page, a buffer's worth
 * and more, a page rewritten in the same transaction, and after the WAL
 * restarts from its beginning. */
Test(walbuf, readers_see_each_commit_whole) {
    char dir[256], path[300];
    hub_test_tmpdir(dir);
    snprintf(path, sizeof path, "%s/w.db", dir);
    cr_assert_not_null(hub__walbuf_vfs());
    sqlite3 *w = open_conn(path, hub__walbuf_vfs());
    run_sql(w, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"
               "PRAGMA wal_autocheckpoint=0;"
               "CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);"
               "CREATE TABLE c(k INTEGER PRIMARY KEY, n INTEGER);"
               "INSERT INTO c VALUES(1, 0);");
    sqlite3 *r = open_conn(path, NULL);
    static const int shapes[][2] = {{1, 100},  {1, 3000},  {40, 3000}, {7, 200000},
                                    {300, 50}, {1, 131072}, {64, 2048}};
    int64_t n = 0;
    for (int round = 0; round < 2; round++) {
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            insert_rows(w, n, shapes[k][0], shapes[k][1]);
            n += shapes[k][0];
            check_rows(r, n);
            /* The same page written again in one transaction. */
            run_sql(w, "BEGIN IMMEDIATE; UPDATE c SET n = n + 1; UPDATE c SET n = n + 1;"
                       "COMMIT;");
            cr_assert_eq(one_int(r, "SELECT n FROM c"), 2 * (int64_t)(k + 1 + round * 7));
        }
        /* Copy the WAL into the database and start it again from 0. */
        cr_assert_eq(sqlite3_wal_checkpoint_v2(w, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
                                               NULL),
                     SQLITE_OK);
    }
    sqlite3_close(r);
    sqlite3_close(w);
    sqlite3 *again = open_conn(path, NULL);
    check_rows(again, n);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(again, "PRAGMA integrity_check", -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(again);
}

typedef struct {
    hub_store_job job;
    hub_journal_row row;
    char ctl[32];
    hub_status rc;
} wjob;

static hub_status wjob_run(hub_store_tx *tx, hub_store_job *j, hub_err *err) {
    return hub_journal_insert(tx, &((wjob *)j)->row, err);
}

static void wjob_done(hub_store_job *j, hub_status rc, const hub_err *err) {
    (void)err;
    ((wjob *)j)->rc = rc;
}

/* Journals one message of `size` body bytes and returns how its commit
 * ended. */
static hub_status journal_one(hub_store *s, int n, size_t size) {
    wjob j;
    memset(&j, 0, sizeof j);
    char *body = malloc(size);
    memset(body, 'x', size);
    memcpy(body, "MSH|", 4);
    snprintf(j.ctl, sizeof j.ctl, "CTL%d", n);
    j.row = (hub_journal_row){.received_ms = hub_now_ms(), .channel = "default",
                              .peer = "127.0.0.1:1", .sender = "LAB^HOSP",
                              .control_id = j.ctl, .msg_type = "ADT^A01",
                              .version = "2.5.1", .status = HUB_MSG_ACCEPTED,
                              .ack_code = "AA", .ack = "MSH|^~\\&|ACK", .ack_len = 12,
                              .body = body, .body_len = size};
    j.job.run = wjob_run;
    j.job.done = wjob_done;
    j.rc = HUB_E_STATE;
    hub_err err;
    cr_assert_eq(hub_store_run(s, &j.job, &err), HUB_OK, "%s", err.msg);
    free(body);
    return j.rc;
}

static hub_status count_row(void *ud, const hub_journal_row *row) {
    (void)row;
    (*(int *)ud)++;
    return HUB_OK;
}

static bool journaled(hub_store *s, int n) {
    char ctl[32];
    snprintf(ctl, sizeof ctl, "CTL%d", n);
    hub_journal_filter f = {.status = -1, .control_id = ctl, .limit = 10};
    int found = 0;
    hub_err err;
    cr_assert_eq(hub_journal_list(s, &f, count_row, &found, &err), HUB_OK, "%s", err.msg);
    return found > 0;
}

/* A failed WAL write fails its commit and every commit after it (so no ACK
 * goes out for them), and a restart finds the journal without them. The
 * write fails for real: the file-size limit stops the WAL's growth. */
static void failed_write(bool durable) {
    char dir[256], wal[300];
    hub_test_tmpdir(dir);
    snprintf(wal, sizeof wal, "%s/hub.db-wal", dir);
    hub_store_cfg c = {.dir = dir, .durable = durable, .commit_batch_max = 512};
    hub_store *s;
    hub_err err;
    cr_assert_eq(hub_store_open(&c, &s, &err), HUB_OK, "%s", err.msg);
    cr_assert_eq(journal_one(s, 1, 2000), HUB_OK);
    struct stat st;
    cr_assert_eq(stat(wal, &st), 0);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit was, lim;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &was), 0);
    lim = was;
    lim.rlim_cur = (rlim_t)st.st_size + 8192;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    cr_assert_eq(journal_one(s, 2, 60000), HUB_E_STORE);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &was), 0);
    cr_assert_eq(journal_one(s, 3, 100), HUB_E_STORE);
    hub_store_close(s);

    cr_assert_eq(hub_store_open(&c, &s, &err), HUB_OK, "%s", err.msg);
    cr_assert(journaled(s, 1));
    cr_assert_not(journaled(s, 2));
    cr_assert_not(journaled(s, 3));
    cr_assert_eq(journal_one(s, 4, 2000), HUB_OK);
    cr_assert(journaled(s, 4));
    hub_store_close(s);
}

/* Non-durable: the commit is published (in the barrier) before the
 * buffered write fails, and the store must still call it failed. */
Test(walbuf, a_failed_write_fails_the_commit_and_the_rest) { failed_write(false); }

/* Durable: the write fails in the sync, before the commit is published. */
Test(walbuf, a_failed_write_fails_a_durable_commit_and_the_rest) { failed_write(true); }
