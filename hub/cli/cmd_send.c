/* hub send HOST:PORT PATH...: sends HL7 v2 messages over MLLP and reports
 * what came back.
 *
 * Input files: one message, a batch (FHS/BHS ... BTS/FTS around MSH
 * messages), or one message per line with segments joined by CR (the
 * corpus format of gen_v2_corpus.py); MLLP-framed files work too. Segments
 * may end in CR, LF or CRLF; they are sent ending in CR. Directories are
 * walked in name order. */
#include "internal.h"

#include "hub/mllp.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CMD "send"
#define MAX_SHOWN_ERRORS 10

typedef struct {
    size_t off, n;   /* into the message buffer */
    int file;        /* index into the file list */
} msg_ref;

enum { RES_NONE, RES_AA, RES_AE, RES_AR, RES_TIMEOUT, RES_ERROR };

typedef struct {
    /* input */
    hub_buf data;
    msg_ref *msgs;
    size_t nmsgs, capmsgs;
    char **files;
    size_t nfiles, capfiles;
    int bad_files;
    /* options */
    char host[256];
    int port;
    int conns;
    int timeout_ms;
    bool tls;
    const char *ca, *cert, *key, *sni;
    /* run */
    atomic_size_t next;
    atomic_size_t done;
    atomic_bool abort;
    unsigned char *result;
    int64_t *lat_ns;
    atomic_int shown;
    atomic_int conn_errors; /* connections that could not be opened */
    int nthreads;
    bool tty; /* stderr is a terminal: progress bar on */
    pthread_mutex_t out_lock;
} send_run;

static void report(send_run *r, size_t i, const char *what) {
    int k = atomic_fetch_add(&r->shown, 1);
    if (k >= MAX_SHOWN_ERRORS) return;
    hub_slice id = {"", 0};
    hub_mllp_field(hub_slice_of(r->data.p + r->msgs[i].off, r->msgs[i].n), "MSH", 10, &id);
    pthread_mutex_lock(&r->out_lock);
    /* on a terminal, start at column 0 over the progress bar */
    fprintf(stderr, "%shub send: message %zu (control id '%.*s', %s): %s\n",
            r->tty ? "\r\033[K" : "", i + 1,
            (int)(id.n > 40 ? 40 : id.n), id.p, r->files[r->msgs[i].file], what);
    if (k + 1 == MAX_SHOWN_ERRORS) fprintf(stderr, "hub send: further problems not shown\n");
    pthread_mutex_unlock(&r->out_lock);
}

/* ---- input ------------------------------------------------------------ */

static int add_file_name(send_run *r, const char *path) {
    if (r->nfiles == r->capfiles) {
        size_t cap = r->capfiles ? r->capfiles * 2 : 16;
        char **f = hub_realloc(r->files, cap * sizeof *f);
        if (f == NULL) return -1;
        r->files = f;
        r->capfiles = cap;
    }
    r->files[r->nfiles] = hub_strdup(path);
    if (r->files[r->nfiles] == NULL) return -1;
    return (int)r->nfiles++;
}

static bool is_header(const char *s, size_t n, const char *name) {
    return n >= 3 && memcmp(s, name, 3) == 0 && (n == 3 || s[3] < '0' ||
                                                 (s[3] > '9' && s[3] < 'A') ||
                                                 (s[3] > 'Z' && s[3] < 'a') || s[3] > 'z');
}

/* Splits a file's bytes into messages appended to r. Returns the number of
 * messages, or -1 with a problem printed. */
static long split_messages(send_run *r, int file, const char *p, size_t n) {
    long count = 0;
    bool open = false;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] != '\r' && p[j] != '\n' && p[j] != 0x0B && p[j] != 0x1C) j++;
        size_t len = j - i;
        const char *seg = p + i;
        i = j + 1;
        if (len == 0) continue;
        if (is_header(seg, len, "FHS") || is_header(seg, len, "BHS") ||
            is_header(seg, len, "BTS") || is_header(seg, len, "FTS")) {
            open = false;
            continue;
        }
        if (len >= 4 && memcmp(seg, "MSH", 3) == 0) {
            if (r->nmsgs == r->capmsgs) {
                size_t cap = r->capmsgs ? r->capmsgs * 2 : 1024;
                msg_ref *m = hub_realloc(r->msgs, cap * sizeof *m);
                if (m == NULL) return -1;
                r->msgs = m;
                r->capmsgs = cap;
            }
            r->msgs[r->nmsgs++] = (msg_ref){r->data.n, 0, file};
            open = true;
            count++;
        } else if (!open) {
            fprintf(stderr, "hub send: '%s': segment before the first MSH at byte %zu\n",
                    r->files[file], (size_t)(seg - p));
            return -1;
        }
        if (hub_buf_append(&r->data, seg, len) != HUB_OK ||
            hub_buf_append(&r->data, "\r", 1) != HUB_OK)
            return -1;
        r->msgs[r->nmsgs - 1].n += len + 1;
    }
    if (count == 0) {
        fprintf(stderr, "hub send: '%s': no MSH segment\n", r->files[file]);
        return -1;
    }
    return count;
}

static void load_file(send_run *r, const char *path) {
    int file = add_file_name(r, path);
    if (file < 0) {
        r->bad_files++;
        return;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "hub send: cannot read '%s': %s\n", path, strerror(errno));
        r->bad_files++;
        return;
    }
    hub_buf b;
    hub_buf_init(&b);
    char chunk[65536];
    size_t got;
    bool ok = true;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (hub_buf_append(&b, chunk, got) != HUB_OK) ok = false;
    if (ferror(f)) ok = false;
    fclose(f);
    if (!ok) {
        fprintf(stderr, "hub send: cannot read '%s'\n", path);
        r->bad_files++;
    } else if (split_messages(r, file, b.p ? b.p : "", b.n) < 0) {
        r->bad_files++;
    }
    hub_buf_release(&b);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_path(send_run *r, const char *path, int depth) {
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "hub send: cannot read '%s': %s\n", path, strerror(errno));
        r->bad_files++;
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        load_file(r, path);
        return;
    }
    if (depth > 16) return;
    DIR *d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "hub send: cannot read '%s': %s\n", path, strerror(errno));
        r->bad_files++;
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **x = hub_realloc(names, cap * sizeof *x);
            if (x == NULL) break;
            names = x;
        }
        size_t l = strlen(path) + strlen(e->d_name) + 2;
        names[n] = hub_malloc(l);
        if (names[n] == NULL) break;
        snprintf(names[n], l, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        load_path(r, names[i], depth + 1);
        hub_free(names[i]);
    }
    hub_free(names);
}

/* ---- sending ---------------------------------------------------------- */

static void classify(send_run *r, size_t i, const hub_buf *ack) {
    hub_slice code, id, want = {"", 0};
    hub_slice a = hub_slice_of(ack->p, ack->n);
    hub_mllp_field(hub_slice_of(r->data.p + r->msgs[i].off, r->msgs[i].n), "MSH", 10, &want);
    if (!hub_mllp_field(a, "MSA", 1, &code)) {
        r->result[i] = RES_ERROR;
        report(r, i, "reply without MSA");
        return;
    }
    if (hub_mllp_field(a, "MSA", 2, &id) && !hub_slice_eq(id, want)) {
        r->result[i] = RES_ERROR;
        report(r, i, "ACK names another control id");
        return;
    }
    if (hub_slice_eq_cstr(code, "AA") || hub_slice_eq_cstr(code, "CA")) {
        r->result[i] = RES_AA;
    } else if (hub_slice_eq_cstr(code, "AE") || hub_slice_eq_cstr(code, "CE")) {
        r->result[i] = RES_AE;
        report(r, i, "AE");
    } else if (hub_slice_eq_cstr(code, "AR") || hub_slice_eq_cstr(code, "CR")) {
        r->result[i] = RES_AR;
        report(r, i, "AR");
    } else {
        r->result[i] = RES_ERROR;
        report(r, i, "unknown acknowledgment code");
    }
}

static void *sender_main(void *arg) {
    send_run *r = arg;
    hub_mllp_client_cfg cc = {
        .host = r->host, .port = r->port, .tls = r->tls, .ca_file = r->ca,
        .cert_file = r->cert, .key_file = r->key, .server_name = r->sni,
        .connect_timeout_ms = r->timeout_ms < 5000 ? r->timeout_ms : 5000,
        .ack_timeout_ms = r->timeout_ms, .backoff_min_ms = 100, .backoff_max_ms = 2000,
        .max_attempts = 3};
    hub_mllp_client *c;
    hub_err err;
    if (hub_mllp_client_new(&cc, &c, &err) != HUB_OK) {
        if (!atomic_exchange(&r->abort, true))
            fprintf(stderr, "hub send: %s: %s\n", err.where, err.msg);
        return NULL;
    }
    /* Every connection is opened up front, as --connections promises. */
    if (hub_mllp_client_connect(c, &err) != HUB_OK) {
        /* The others carry on; when none could connect, the run stops. */
        int k = atomic_fetch_add(&r->conn_errors, 1);
        if (k == 0) fprintf(stderr, "hub send: cannot connect: %s\n", err.msg);
        if (k + 1 == r->nthreads) atomic_store(&r->abort, true);
        hub_mllp_client_free(c);
        return NULL;
    }
    hub_buf ack;
    hub_buf_init(&ack);
    while (!atomic_load(&r->abort)) {
        size_t i = atomic_fetch_add(&r->next, 1);
        if (i >= r->nmsgs) break;
        int64_t t0 = hub_mono_ns();
        hub_status st = hub_mllp_client_send(c, r->data.p + r->msgs[i].off, r->msgs[i].n,
                                             &ack, &err);
        r->lat_ns[i] = hub_mono_ns() - t0;
        if (st == HUB_OK) {
            classify(r, i, &ack);
        } else if (st == HUB_E_TIMEOUT) {
            r->result[i] = RES_TIMEOUT;
            report(r, i, "no ACK before the timeout");
        } else {
            r->result[i] = RES_ERROR;
            report(r, i, err.msg);
            /* Nothing connects: stop rather than try every message. */
            if (hub_mllp_client_connects(c) == 0) atomic_store(&r->abort, true);
        }
        atomic_fetch_add(&r->done, 1);
    }
    hub_buf_release(&ack);
    hub_mllp_client_free(c);
    return NULL;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void progress(send_run *r, double secs, bool final) {
    size_t done = atomic_load(&r->done);
    int width = 30;
    int fill = r->nmsgs ? (int)((double)done / (double)r->nmsgs * width) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    pthread_mutex_lock(&r->out_lock);
    fprintf(stderr, "\r[%s] %zu/%zu  %.0f msg/s%s", bar, done, r->nmsgs,
            secs > 0 ? (double)done / secs : 0.0, final ? "\n" : "");
    fflush(stderr);
    pthread_mutex_unlock(&r->out_lock);
}

static int usage(void) {
    printf("usage: hub send HOST:PORT PATH... [flags]\n\n"
           "Sends HL7 v2 messages over MLLP and waits for each ACK. A PATH is a file\n"
           "with one message, a batch file (FHS/BHS), a file with one message per\n"
           "line, or a directory of such files. Segments may end in CR, LF or CRLF.\n\n"
           "flags:\n"
           "  --connections N   parallel connections (default 1)\n"
           "  --timeout MS      wait this long for each ACK (default 10000)\n"
           "  --tls             use TLS\n"
           "  --ca FILE         CA certificates to verify the server with\n"
           "  --cert FILE       client certificate (mutual TLS)\n"
           "  --key FILE        client private key\n"
           "  --server-name N   name expected in the server certificate\n\n"
           "Exit status: 0 when every message got AA/CA, 1 otherwise, 2 on bad usage.\n");
    return 0;
}

static bool parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_target(const char *s, char *host, size_t cap, int *port) {
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s) return false;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']') return false;
        h++;
        hl -= 2;
    }
    if (hl >= cap) return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    long p;
    if (!parse_int(colon + 1, 1, 65535, &p)) return false;
    *port = (int)p;
    return true;
}

int hub__cmd_send(int argc, char **argv) {
    send_run r;
    memset(&r, 0, sizeof r);
    r.conns = 1;
    r.timeout_ms = 10000;
    const char *target = NULL;
    const char **paths = calloc((size_t)argc, sizeof *paths);
    int npaths = 0;
    int rc = 2;
    if (paths == NULL) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        const char *val;
        if (hub__cli_is_help(a)) {
            free(paths);
            return usage();
        }
#define FLAG(name) (strcmp(a, name) == 0 || (strncmp(a, name "=", sizeof(name)) == 0))
        if (FLAG("--connections")) {
            if (!(val = hub__cli_flag_value(CMD, argc, argv, &i, "--connections"))) goto out;
            if (!parse_int(val, 1, 1024, &v)) {
                hub__cli_usage_error(CMD, "--connections wants 1..1024, got '%s'", val);
                goto out;
            }
            r.conns = (int)v;
        } else if (FLAG("--timeout")) {
            if (!(val = hub__cli_flag_value(CMD, argc, argv, &i, "--timeout"))) goto out;
            if (!parse_int(val, 1, 3600000, &v)) {
                hub__cli_usage_error(CMD, "--timeout wants milliseconds 1..3600000, got '%s'", val);
                goto out;
            }
            r.timeout_ms = (int)v;
        } else if (strcmp(a, "--tls") == 0) {
            r.tls = true;
        } else if (FLAG("--ca")) {
            if (!(r.ca = hub__cli_flag_value(CMD, argc, argv, &i, "--ca"))) goto out;
        } else if (FLAG("--cert")) {
            if (!(r.cert = hub__cli_flag_value(CMD, argc, argv, &i, "--cert"))) goto out;
        } else if (FLAG("--key")) {
            if (!(r.key = hub__cli_flag_value(CMD, argc, argv, &i, "--key"))) goto out;
        } else if (FLAG("--server-name")) {
            if (!(r.sni = hub__cli_flag_value(CMD, argc, argv, &i, "--server-name"))) goto out;
        } else if (a[0] == '-' && a[1] != '\0') {
            hub__cli_usage_error(CMD, "unknown flag '%s'", a);
            goto out;
        } else if (target == NULL) {
            target = a;
        } else {
            paths[npaths++] = a;
        }
#undef FLAG
    }
    if (target == NULL) {
        hub__cli_usage_error(CMD, "missing HOST:PORT (try 'hub send --help')");
        goto out;
    }
    if (!parse_target(target, r.host, sizeof r.host, &r.port)) {
        hub__cli_usage_error(CMD, "bad address '%s' (want HOST:PORT)", target);
        goto out;
    }
    if (npaths == 0) {
        hub__cli_usage_error(CMD, "no file or directory to send");
        goto out;
    }
    if (!r.tls && (r.ca || r.cert || r.key || r.sni)) {
        hub__cli_usage_error(CMD, "flag '%s' needs --tls",
                             r.ca ? "--ca" : r.cert ? "--cert" : r.key ? "--key" : "--server-name");
        goto out;
    }
    if (r.key && !r.cert) {
        hub__cli_usage_error(CMD, "flag '--key' needs --cert");
        goto out;
    }
    for (int i = 0; i < npaths; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            hub__cli_usage_error(CMD, "cannot read '%s': %s", paths[i], strerror(errno));
            goto out;
        }
    }

    rc = 1;
    hub_buf_init(&r.data);
    pthread_mutex_init(&r.out_lock, NULL);
    for (int i = 0; i < npaths; i++) load_path(&r, paths[i], 0);
    r.result = calloc(r.nmsgs ? r.nmsgs : 1, 1);
    r.lat_ns = calloc(r.nmsgs ? r.nmsgs : 1, sizeof *r.lat_ns);
    if (r.result == NULL || r.lat_ns == NULL) {
        fprintf(stderr, "hub send: out of memory\n");
        goto done;
    }
    int nthreads = r.conns < (int)r.nmsgs ? r.conns : (int)r.nmsgs;
    r.nthreads = nthreads;
    pthread_t *th = calloc((size_t)(nthreads > 0 ? nthreads : 1), sizeof *th);
    bool tty = isatty(2);
    r.tty = tty;
    int64_t t0 = hub_mono_ns();
    int started = 0;
    for (int i = 0; th && i < nthreads; i++)
        if (pthread_create(&th[i], NULL, sender_main, &r) == 0) started++;
    if (tty && started) {
        while (atomic_load(&r.done) < r.nmsgs && !atomic_load(&r.abort)) {
            struct timespec ts = {0, 200 * 1000000};
            nanosleep(&ts, NULL);
            progress(&r, (double)(hub_mono_ns() - t0) / 1e9, false);
        }
    }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    double secs = (double)(hub_mono_ns() - t0) / 1e9;
    if (tty && started) progress(&r, secs, true);

    size_t n[6] = {0};
    size_t nl = 0;
    for (size_t i = 0; i < r.nmsgs; i++) {
        n[r.result[i]]++;
        if (r.result[i] != RES_NONE && r.result[i] != RES_TIMEOUT && r.result[i] != RES_ERROR)
            r.lat_ns[nl++] = r.lat_ns[i];
    }
    qsort(r.lat_ns, nl, sizeof *r.lat_ns, cmp_i64);
    double p50 = nl ? (double)r.lat_ns[(nl - 1) * 50 / 100] / 1e6 : 0;
    double p99 = nl ? (double)r.lat_ns[(nl - 1) * 99 / 100] / 1e6 : 0;
    size_t sent = r.nmsgs - n[RES_NONE];
    printf("sent      %zu of %zu messages from %zu files over %d connection%s\n", sent,
           r.nmsgs, r.nfiles, nthreads, nthreads == 1 ? "" : "s");
    printf("AA/CA     %zu\nAE/CE     %zu\nAR/CR     %zu\ntimeouts  %zu\nerrors    %zu\n",
           n[RES_AA], n[RES_AE], n[RES_AR], n[RES_TIMEOUT], n[RES_ERROR] + (size_t)r.bad_files + (size_t)atomic_load(&r.conn_errors));
    printf("elapsed   %.3f s\nrate      %.0f messages/s\n", secs, secs > 0 ? (double)sent / secs : 0);
    printf("latency   p50 %.3f ms, p99 %.3f ms\n", p50, p99);
    if (n[RES_AA] == r.nmsgs && r.bad_files == 0 && r.nmsgs > 0) rc = 0;
done:
    for (size_t i = 0; i < r.nfiles; i++) hub_free(r.files[i]);
    hub_free(r.files);
    hub_free(r.msgs);
    hub_buf_release(&r.data);
    free(r.result);
    free(r.lat_ns);
    pthread_mutex_destroy(&r.out_lock);
out:
    free(paths);
    return rc;
}
