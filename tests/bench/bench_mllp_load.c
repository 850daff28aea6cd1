/* MLLP load generator: N connections, one message in flight per connection
 * (as real senders do), messages from a gen_v2_corpus.py file (one message
 * per line, segments joined by CR). Reports ACKed messages/s and p50/p99
 * ACK latency.
 *
 *   bench_mllp_load HOST:PORT CORPUS [-c N] [-n COUNT] [-w WARMUP] [-s START]
 *   bench_mllp_load --self CORPUS [-c N] [-n COUNT]
 *   bench_mllp_load --self-thread CORPUS [-c N] [-n COUNT]
 *
 * --self starts the hub's MLLP server in-process on port 0 with a handler
 * that answers AA at once (no store): the listener's own ceiling.
 * --self-thread hands each frame to a worker thread that replies, as the
 * ingest pipeline does (queue + hub_mllp_server_reply from another thread).
 * COUNT is the total number of messages (default: the corpus size); the
 * corpus is reused round-robin when COUNT is larger. START is the corpus
 * line to begin at (default 0): a warm-up run from a later line sends
 * control ids the measured run does not repeat, so none is a duplicate. */
#include "hub/mllp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    const char *p;
    size_t n;
} msg;

static msg *msgs;
static size_t nmsgs;
static char host[256];
static int port;
static size_t total, warmup, start;
static atomic_size_t next_i;
static int64_t *lat;
static atomic_size_t acked, failed;

static int dial(void) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &res) != 0) return -1;
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    int one = 1;
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void *worker(void *arg) {
    (void)arg;
    int fd = dial();
    if (fd < 0) {
        fprintf(stderr, "bench: cannot connect to %s:%d\n", host, port);
        return NULL;
    }
    hub_buf out, in;
    hub_buf_init(&out);
    hub_buf_init(&in);
    hub_mllp_reader rd;
    hub_mllp_reader_init(&rd, 0);
    for (;;) {
        size_t i = atomic_fetch_add(&next_i, 1);
        if (i >= total + warmup) break;
        const msg *m = &msgs[(start + i) % nmsgs];
        out.n = 0;
        hub_mllp_frame_append(&out, m->p, m->n);
        int64_t t0 = hub_mono_ns();
        size_t off = 0;
        bool ok = true;
        while (off < out.n) {
            ssize_t w = send(fd, out.p + off, out.n - off, MSG_NOSIGNAL);
            if (w <= 0) {
                ok = false;
                break;
            }
            off += (size_t)w;
        }
        bool got = false;
        while (ok && !got) {
            if (in.n) {
                hub_slice f;
                hub_status st = hub_mllp_next(&rd, hub_slice_of(in.p, in.n), &f, NULL);
                if (st == HUB_OK) {
                    hub_slice code;
                    got = hub_mllp_field(f, "MSA", 1, &code) &&
                          (hub_slice_eq_cstr(code, "AA") || hub_slice_eq_cstr(code, "CA"));
                    hub_buf_consume(&in, rd.consumed);
                    if (!got) ok = false;
                    break;
                }
                hub_buf_consume(&in, rd.consumed);
            }
            hub_buf_reserve(&in, 65536);
            ssize_t r = recv(fd, in.p + in.n, in.cap - in.n, 0);
            if (r <= 0) {
                ok = false;
                break;
            }
            in.n += (size_t)r;
        }
        if (i >= warmup) {
            if (got) {
                lat[i - warmup] = hub_mono_ns() - t0;
                atomic_fetch_add(&acked, 1);
            } else {
                lat[i - warmup] = -1;
                atomic_fetch_add(&failed, 1);
            }
        }
        if (!ok) break;
    }
    close(fd);
    hub_buf_release(&out);
    hub_buf_release(&in);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* --self: answers AA at once. */
static hub_mllp_server *self_srv;
static void self_frame(void *ud, const hub_mllp_frame_ctx *ctx, const char *f, size_t n) {
    (void)ud;
    hub_slice id = {"", 0};
    hub_mllp_field(hub_slice_of(f, n), "MSH", 10, &id);
    char ack[256];
    int k = snprintf(ack, sizeof ack,
                     "\x0bMSH|^~\\&|HUB|HUB|||20260101||ACK|%.*s|P|2.5\rMSA|AA|%.*s\r\x1c\r",
                     (int)(id.n > 60 ? 60 : id.n), id.p, (int)(id.n > 60 ? 60 : id.n), id.p);
    hub_mllp_server_reply(self_srv, ctx->conn_id, ctx->seq, ack, (size_t)k, false);
}

/* --self-thread: frames go to a worker thread through a locked queue. */
typedef struct job {
    uint64_t conn, seq;
    struct job *next;
    size_t n;
    char ack[];
} job;
static pthread_mutex_t jlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jcond = PTHREAD_COND_INITIALIZER;
static job *jhead, *jtail;
static bool jstop;

static void thread_frame(void *ud, const hub_mllp_frame_ctx *ctx, const char *f, size_t n) {
    (void)ud;
    hub_slice id = {"", 0};
    hub_mllp_field(hub_slice_of(f, n), "MSH", 10, &id);
    job *j = malloc(sizeof *j + 256);
    int k = snprintf(j->ack, 256,
                     "\x0bMSH|^~\\&|HUB|HUB|||20260101||ACK|%.*s|P|2.5\rMSA|AA|%.*s\r\x1c\r",
                     (int)(id.n > 60 ? 60 : id.n), id.p, (int)(id.n > 60 ? 60 : id.n), id.p);
    j->n = (size_t)k;
    j->conn = ctx->conn_id;
    j->seq = ctx->seq;
    j->next = NULL;
    pthread_mutex_lock(&jlock);
    if (jtail) jtail->next = j;
    else jhead = j;
    jtail = j;
    pthread_cond_signal(&jcond);
    pthread_mutex_unlock(&jlock);
}

static void *reply_worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&jlock);
        while (!jhead && !jstop) pthread_cond_wait(&jcond, &jlock);
        job *j = jhead;
        jhead = jtail = NULL;
        bool stop = jstop;
        pthread_mutex_unlock(&jlock);
        while (j) {
            job *nx = j->next;
            hub_mllp_server_reply(self_srv, j->conn, j->seq, j->ack, j->n, false);
            free(j);
            j = nx;
        }
        if (stop) return NULL;
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST:PORT|--self CORPUS [-c N] [-n COUNT] [-w WARMUP] [-s START]\n",
                argv[0]);
        return 2;
    }
    int conns = 1;
    long count = 0;
    warmup = 0;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-c") == 0) conns = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-n") == 0) count = atol(argv[i + 1]);
        else if (strcmp(argv[i], "-w") == 0) warmup = (size_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "-s") == 0) start = (size_t)atol(argv[i + 1]);
        else {
            fprintf(stderr, "bench: unknown flag '%s'\n", argv[i]);
            return 2;
        }
    }
    if (conns < 1 || conns > 1024) {
        fprintf(stderr, "bench: -c wants 1..1024\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "bench: cannot read '%s'\n", argv[2]);
        return 2;
    }
    hub_buf data;
    hub_buf_init(&data);
    char chunk[1 << 16];
    size_t g;
    while ((g = fread(chunk, 1, sizeof chunk, f)) > 0) hub_buf_append(&data, chunk, g);
    fclose(f);
    size_t cap = 1024;
    msgs = malloc(cap * sizeof *msgs);
    for (size_t i = 0; i < data.n;) {
        const char *nl = memchr(data.p + i, '\n', data.n - i);
        size_t e = nl ? (size_t)(nl - data.p) : data.n;
        if (e > i) {
            if (nmsgs == cap) msgs = realloc(msgs, (cap *= 2) * sizeof *msgs);
            msgs[nmsgs++] = (msg){data.p + i, e - i};
        }
        i = e + 1;
    }
    if (nmsgs == 0) {
        fprintf(stderr, "bench: no messages in '%s'\n", argv[2]);
        return 2;
    }
    total = count > 0 ? (size_t)count : nmsgs;
    bool threaded = strcmp(argv[1], "--self-thread") == 0;
    pthread_t rw;
    if (threaded) pthread_create(&rw, NULL, reply_worker, NULL);
    if (strcmp(argv[1], "--self") == 0 || threaded) {
        hub_log_setup(HUB_LOG_WARN, HUB_LOGFMT_TEXT, 2);
        hub_mllp_channel_cfg ch = {.name = "bench", .host = "127.0.0.1", .port = 0};
        hub_mllp_server_cfg cfg = {.channels = &ch, .n_channels = 1};
        hub_mllp_callbacks cb = {.on_frame = threaded ? thread_frame : self_frame};
        hub_err err;
        if (hub_mllp_server_start(&cfg, &cb, &self_srv, &err) != HUB_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return 1;
        }
        snprintf(host, sizeof host, "127.0.0.1");
        port = hub_mllp_server_port(self_srv, 0);
    } else {
        const char *colon = strrchr(argv[1], ':');
        if (!colon) {
            fprintf(stderr, "bench: want HOST:PORT\n");
            return 2;
        }
        snprintf(host, sizeof host, "%.*s", (int)(colon - argv[1]), argv[1]);
        port = atoi(colon + 1);
    }
    lat = calloc(total, sizeof *lat);
    pthread_t th[1024];
    int64_t t0 = hub_mono_ns();
    for (int i = 0; i < conns; i++) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < conns; i++) pthread_join(th[i], NULL);
    double secs = (double)(hub_mono_ns() - t0) / 1e9;
    size_t n = 0;
    for (size_t i = 0; i < total; i++)
        if (lat[i] > 0) lat[n++] = lat[i];
    qsort(lat, n, sizeof *lat, cmp);
    double p50 = n ? (double)lat[(n - 1) / 2] / 1e6 : 0, p99 = n ? (double)lat[(n - 1) * 99 / 100] / 1e6 : 0;
    printf("connections=%d messages=%zu acked=%zu failed=%zu elapsed=%.3fs rate=%.0f/s "
           "p50=%.3fms p99=%.3fms\n",
           conns, total, atomic_load(&acked), atomic_load(&failed), secs,
           (double)atomic_load(&acked) / secs, p50, p99);
    if (self_srv) hub_mllp_server_stop(self_srv, 0);
    if (threaded) {
        pthread_mutex_lock(&jlock);
        jstop = true;
        pthread_cond_signal(&jcond);
        pthread_mutex_unlock(&jlock);
        pthread_join(rw, NULL);
    }
    if (self_srv) hub_mllp_server_free(self_srv);
    free(lat);
    free(msgs);
    hub_buf_release(&data);
    return atomic_load(&acked) == total ? 0 : 1;
}
