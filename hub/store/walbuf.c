/* The write connection's VFS: the default one, except that appends to the
 * WAL are gathered in a buffer and written with one pwrite per commit.
 *
 * SQLite writes each WAL frame as two writes (a 24-byte header, then the
 * page), so a journal commit of six pages made twelve pwrite calls, each
 * paying the system call, the file's locks and its time update; measured
 * on journal-only ingest at one connection, 13.9 pwrite per message and
 * more than half of the hub's CPU in the kernel.
 *
 * When the buffer is written matters, for it must be in the file before
 * anyone can read what it holds:
 * - before an xSync of the WAL (durable commits sync before they publish);
 * - before the commit is published: SQLite writes the wal-index header
 *   twice with a memory barrier between the copies (walIndexWriteHdr), and
 *   readers take a header only when both copies agree; the barrier comes
 *   through the database file's xShmBarrier, which writes the buffer of
 *   the WAL linked to that database file;
 * - before any other access to the WAL from this handle (a read, a
 *   truncate, its size, a write elsewhere in the file, closing it).
 * Readers on other connections (or processes) read only frames the
 * published header names, so they never need what is still buffered.
 *
 * A failed write in the barrier cannot fail the commit SQLite is
 * publishing, so the error sticks: the WAL answers every later call with
 * it, and hub__walbuf_failed lets the store turn that commit into a
 * failure (no ACK, no 2xx). After a restart, recovery drops the frames that
 * never reached the file. */
#include "internal.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#define WALBUF_VFS "hub-walbuf"
/* The unix VFS writes at most 0x1ffff bytes a call (seekAndWrite masks
 * the count, and a multiple of 128 KiB would be written as nothing): the
 * buffer stays below that, 31 pages of 4 KiB with their frame headers. */
#define WALBUF_CAP 0x1f000u
/* A private file-control opcode: asks a database file for the sticky error
 * of its WAL. Far above SQLite's own opcodes. */
#define WALBUF_FCNTL_FAILED 0x48554231

typedef struct wb_file wb_file;
struct wb_file {
    sqlite3_file base;
    sqlite3_file *real; /* the default VFS's file, right after this struct */
    wb_file *wal;       /* on a database file: its WAL, while open */
    wb_file *db;        /* on a WAL file: its database file */
    bool is_wal;
    int failed;         /* sticky error of a failed buffered write */
    char *buf;
    size_t n;
    sqlite3_int64 off; /* where buf[0] goes in the file */
};

static sqlite3_vfs *orig_vfs;
static sqlite3_vfs wb_vfs;
static pthread_once_t wb_once = PTHREAD_ONCE_INIT;
static int wb_reg_rc = SQLITE_ERROR;

static int wb_flush(wb_file *w) {
    if (w->failed) return w->failed;
    if (w->n == 0) return SQLITE_OK;
    int rc = w->real->pMethods->xWrite(w->real, w->buf, (int)w->n, w->off);
    w->n = 0;
    if (rc != SQLITE_OK) w->failed = rc;
    return rc;
}

static int wb_close(sqlite3_file *f) {
    wb_file *w = (wb_file *)f;
    int rc = w->is_wal ? wb_flush(w) : SQLITE_OK;
    if (w->is_wal && w->db) w->db->wal = NULL;
    if (!w->is_wal && w->wal) w->wal->db = NULL;
    sqlite3_free(w->buf);
    w->buf = NULL;
    int rc2 = w->real->pMethods->xClose(w->real);
    return rc ? rc : rc2;
}

static int wb_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off) {
    wb_file *w = (wb_file *)f;
    if (w->is_wal) {
        int rc = wb_flush(w);
        if (rc) return rc;
    }
    return w->real->pMethods->xRead(w->real, p, n, off);
}

/* Appends that continue the buffer are copied; anything else writes the
 * buffer first, so the file sees the writes in SQLite's order. */
static int wb_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off) {
    wb_file *w = (wb_file *)f;
    if (!w->is_wal || w->buf == NULL)
        return w->real->pMethods->xWrite(w->real, p, n, off);
    if (w->failed) return w->failed;
    if (w->n && off == w->off + (sqlite3_int64)w->n && w->n + (size_t)n <= WALBUF_CAP) {
        memcpy(w->buf + w->n, p, (size_t)n);
        w->n += (size_t)n;
        return SQLITE_OK;
    }
    int rc = wb_flush(w);
    if (rc) return rc;
    if ((size_t)n > WALBUF_CAP) return w->real->pMethods->xWrite(w->real, p, n, off);
    memcpy(w->buf, p, (size_t)n);
    w->n = (size_t)n;
    w->off = off;
    return SQLITE_OK;
}

static int wb_truncate(sqlite3_file *f, sqlite3_int64 size) {
    wb_file *w = (wb_file *)f;
    int rc = w->is_wal ? wb_flush(w) : SQLITE_OK;
    return rc ? rc : w->real->pMethods->xTruncate(w->real, size);
}

static int wb_sync(sqlite3_file *f, int flags) {
    wb_file *w = (wb_file *)f;
    int rc = w->is_wal ? wb_flush(w) : SQLITE_OK;
    return rc ? rc : w->real->pMethods->xSync(w->real, flags);
}

static int wb_file_size(sqlite3_file *f, sqlite3_int64 *size) {
    wb_file *w = (wb_file *)f;
    int rc = w->is_wal ? wb_flush(w) : SQLITE_OK;
    return rc ? rc : w->real->pMethods->xFileSize(w->real, size);
}

static int wb_lock(sqlite3_file *f, int level) {
    sqlite3_file *r = ((wb_file *)f)->real;
    return r->pMethods->xLock(r, level);
}

static int wb_unlock(sqlite3_file *f, int level) {
    sqlite3_file *r = ((wb_file *)f)->real;
    return r->pMethods->xUnlock(r, level);
}

static int wb_check_reserved(sqlite3_file *f, int *out) {
    sqlite3_file *r = ((wb_file *)f)->real;
    return r->pMethods->xCheckReservedLock(r, out);
}

static int wb_file_control(sqlite3_file *f, int op, void *arg) {
    wb_file *w = (wb_file *)f;
    if (op == WALBUF_FCNTL_FAILED) {
        *(int *)arg = w->wal ? w->wal->failed : 0;
        return SQLITE_OK;
    }
    if (w->is_wal) {
        int rc = wb_flush(w);
        if (rc) return rc;
    }
    return w->real->pMethods->xFileControl(w->real, op, arg);
}

static int wb_sector_size(sqlite3_file *f) {
    sqlite3_file *r = ((wb_file *)f)->real;
    return r->pMethods->xSectorSize(r);
}

static int wb_device_chars(sqlite3_file *f) {
    sqlite3_file *r = ((wb_file *)f)->real;
    return r->pMethods->xDeviceCharacteristics(r);
}

static int wb_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp) {
    sqlite3_file *r = ((wb_file *)f)->real;
    if (r->pMethods->iVersion < 2) return SQLITE_IOERR;
    return r->pMethods->xShmMap(r, pg, pgsz, extend, pp);
}

static int wb_shm_lock(sqlite3_file *f, int off, int n, int flags) {
    sqlite3_file *r = ((wb_file *)f)->real;
    if (r->pMethods->iVersion < 2) return SQLITE_IOERR;
    return r->pMethods->xShmLock(r, off, n, flags);
}

/* The commit is about to become visible: its frames go to the file first. */
static void wb_shm_barrier(sqlite3_file *f) {
    wb_file *w = (wb_file *)f;
    if (w->wal) wb_flush(w->wal);
    if (w->real->pMethods->iVersion >= 2) w->real->pMethods->xShmBarrier(w->real);
}

static int wb_shm_unmap(sqlite3_file *f, int del) {
    sqlite3_file *r = ((wb_file *)f)->real;
    if (r->pMethods->iVersion < 2) return SQLITE_OK;
    return r->pMethods->xShmUnmap(r, del);
}

static int wb_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp) {
    sqlite3_file *r = ((wb_file *)f)->real;
    if (r->pMethods->iVersion < 3) {
        *pp = NULL;
        return SQLITE_OK;
    }
    return r->pMethods->xFetch(r, off, n, pp);
}

static int wb_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
    sqlite3_file *r = ((wb_file *)f)->real;
    if (r->pMethods->iVersion < 3) return SQLITE_OK;
    return r->pMethods->xUnfetch(r, off, p);
}

static const sqlite3_io_methods wb_methods = {
    3,           wb_close,         wb_read,        wb_write,        wb_truncate,
    wb_sync,     wb_file_size,     wb_lock,        wb_unlock,       wb_check_reserved,
    wb_file_control, wb_sector_size, wb_device_chars, wb_shm_map,   wb_shm_lock,
    wb_shm_barrier, wb_shm_unmap,  wb_fetch,       wb_unfetch};

/* A WAL is linked to its database file (opened through this VFS by the
 * same connection, before it) so that the database's barrier reaches it. */
static void link_wal(wb_file *w, const char *name) {
    sqlite3_file *db = sqlite3_database_file_object(name);
    if (db == NULL || db->pMethods != &wb_methods) return;
    wb_file *d = (wb_file *)db;
    w->buf = sqlite3_malloc(WALBUF_CAP);
    if (w->buf == NULL) return; /* unbuffered: correct, only slower */
    w->db = d;
    d->wal = w;
}

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
                   int *out_flags) {
    (void)vfs;
    wb_file *w = (wb_file *)f;
    memset(w, 0, sizeof *w);
    w->real = (sqlite3_file *)(w + 1);
    int rc = orig_vfs->xOpen(orig_vfs, name, w->real, flags, out_flags);
    if (w->real->pMethods == NULL) {
        f->pMethods = NULL;
        return rc;
    }
    f->pMethods = &wb_methods;
    if (rc == SQLITE_OK && (flags & SQLITE_OPEN_WAL) && name) {
        w->is_wal = true;
        link_wal(w, name);
    }
    return rc;
}

static void wb_register(void) {
    orig_vfs = sqlite3_vfs_find(NULL);
    if (orig_vfs == NULL) return;
    wb_vfs = *orig_vfs;
    wb_vfs.pNext = NULL;
    wb_vfs.zName = WALBUF_VFS;
    wb_vfs.szOsFile = (int)sizeof(wb_file) + orig_vfs->szOsFile;
    wb_vfs.xOpen = wb_open;
    wb_reg_rc = sqlite3_vfs_register(&wb_vfs, 0);
}

const char *hub__walbuf_vfs(void) {
    pthread_once(&wb_once, wb_register);
    return wb_reg_rc == SQLITE_OK ? WALBUF_VFS : NULL;
}

int hub__walbuf_failed(sqlite3 *db) {
    int failed = 0;
    if (sqlite3_file_control(db, "main", WALBUF_FCNTL_FAILED, &failed) != SQLITE_OK) return 0;
    return failed;
}
