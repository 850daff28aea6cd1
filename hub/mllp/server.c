/* The MLLP server: one epoll thread for every connection of every channel.
 *
 * The loop thread owns every connection. Other threads reach it only through
 * the reply queue (a mutex-protected list plus an eventfd). A connection is
 * never freed while something up the stack may still use it: closing marks
 * it dead and puts it on a graveyard list that is emptied after each round
 * of events. */
#include "internal.h"

#include "hub/limits.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define HASH_BUCKETS 4096
#define READ_CHUNK (64u << 10)
/* Frames handed to the handler and not yet answered, per connection; at
 * this many the connection is not read until replies go out. */
#define MAX_INFLIGHT 1024
#define SWEEP_MS 100

enum { TAG_WAKE = 1, TAG_LISTEN = 2, TAG_CONN = 3 };

typedef struct {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int prefix;
} allow_rule;

enum {
    R_PEER, R_IDLE, R_OVERSIZE, R_REPLY, R_ERROR, R_STOP, R_TLS, R__COUNT
};
static const char *const reason_names[R__COUNT] = {
    "peer", "idle", "oversize", "reply", "error", "stop", "tls"};

typedef struct {
    int tag; /* TAG_LISTEN: first member */
    size_t index;
    char *name;
    int fd;
    int port;
    SSL_CTX *tls;
    bool mtls;
    size_t max_frame;
    int idle_ms;
    int max_conns;
    allow_rule *allow;
    size_t n_allow;
    int nconns;
    hub_metric *m_open, *m_accepted, *m_refused_limit, *m_refused_addr,
        *m_frames, *m_bytes_in, *m_bytes_out, *m_skipped, *m_oversize,
        *m_closed[R__COUNT];
} channel;

/* A reply on its way: queued by any thread, then kept on the connection
 * (sorted by seq) until every earlier reply has been written. */
typedef struct reply_item {
    uint64_t conn_id;
    uint64_t seq;
    bool close_after;
    size_t n;
    struct reply_item *next;
    char bytes[];
} reply_item;
typedef reply_item pending;

typedef struct conn {
    int tag; /* TAG_CONN: first member */
    uint64_t id;
    struct conn *hnext;        /* hash chain */
    struct conn *prev, *next;  /* all connections */
    struct conn *gnext;        /* graveyard */
    struct conn *dnext;        /* dirty list (replies to flush) */
    channel *ch;
    hub__io io;
    char peer[64];
    char subject[256];
    bool has_subject;
    bool handshaking, opened;
    int hs_want, rd_want, wr_want;
    hub_buf in;
    hub_mllp_reader rd;
    hub_buf out;
    size_t out_pos;
    uint64_t seq_in;  /* frames handed to the handler */
    uint64_t seq_out; /* replies written to the output buffer */
    uint64_t oversize_seq; /* close after this reply (oversize frame) */
    pending *pend;    /* replies that arrived early, by seq */
    int64_t last_io_ns;
    bool read_closed; /* peer ended, or we stopped reading for good */
    bool paused;      /* backpressure */
    bool closing;     /* close once the output is written */
    int closing_reason;
    bool dead, dirty;
    int dead_reason;
    uint32_t ev;
} conn;

struct hub_mllp_server {
    int wake_tag;
    channel *ch;
    size_t nch;
    int ep, evfd, spare_fd;
    size_t max_output;
    hub_mllp_callbacks cb;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t stop_lock; /* serializes hub_mllp_server_stop */
    bool joined;

    pthread_mutex_t qlock;
    reply_item *qhead, *qtail;
    bool wake_pending;
    bool stop_requested;
    int grace_ms;
    atomic_bool finished;

    conn *buckets[HASH_BUCKETS];
    conn *all;
    conn *graveyard;
    conn *dirty;
    bool delivered; /* on_frame was called in this round */
    atomic_int nconns;
    uint64_t next_id;
    bool stopping;
    int64_t stop_deadline_ns;
};

/* The server whose loop runs on this thread (NULL elsewhere). */
static _Thread_local hub_mllp_server *tl_loop;

/* ---- helpers --------------------------------------------------------- */

static size_t bucket_of(uint64_t id) { return (size_t)(id % HASH_BUCKETS); }

static conn *conn_find(hub_mllp_server *s, uint64_t id) {
    for (conn *c = s->buckets[bucket_of(id)]; c; c = c->hnext)
        if (c->id == id) return c;
    return NULL;
}

static uint64_t owed(const conn *c) { return c->seq_in - c->seq_out; }
static size_t out_pending(const conn *c) { return c->out.n - c->out_pos; }

static void ctx_of(const conn *c, hub_mllp_frame_ctx *ctx) {
    memset(ctx, 0, sizeof *ctx);
    ctx->conn_id = c->id;
    ctx->channel = c->ch->name;
    ctx->channel_index = c->ch->index;
    ctx->peer = c->peer;
    ctx->tls_subject = c->has_subject ? c->subject : NULL;
}

static void conn_close(hub_mllp_server *s, conn *c, int reason) {
    if (c->dead) return;
    c->dead = true;
    c->dead_reason = reason;
    c->gnext = s->graveyard;
    s->graveyard = c;
}

static void conn_destroy(hub_mllp_server *s, conn *c) {
    /* unlink from the hash and the list */
    conn **pp = &s->buckets[bucket_of(c->id)];
    while (*pp && *pp != c) pp = &(*pp)->hnext;
    if (*pp) *pp = c->hnext;
    if (c->prev) c->prev->next = c->next;
    else s->all = c->next;
    if (c->next) c->next->prev = c->prev;

    epoll_ctl(s->ep, EPOLL_CTL_DEL, c->io.fd, NULL);
    if (c->io.ssl) {
        if (!c->handshaking) SSL_shutdown(c->io.ssl); /* best effort close_notify */
        SSL_free(c->io.ssl);
        ERR_clear_error();
    }
    close(c->io.fd);
    channel *ch = c->ch;
    ch->nconns--;
    atomic_fetch_sub(&s->nconns, 1);
    hub_metric_add(ch->m_open, -1);
    hub_metric_add(ch->m_closed[c->dead_reason], 1);
    HUB_LOG_INFO("mllp", "close conn=%llu peer=%s channel=%s reason=%s frames=%llu",
                 (unsigned long long)c->id, c->peer, ch->name,
                 reason_names[c->dead_reason], (unsigned long long)c->seq_in);
    if (c->opened && s->cb.on_close) {
        hub_mllp_frame_ctx ctx;
        ctx_of(c, &ctx);
        s->cb.on_close(s->cb.ud, &ctx, reason_names[c->dead_reason]);
    }
    while (c->pend) {
        pending *p = c->pend;
        c->pend = p->next;
        hub_free(p);
    }
    hub_buf_release(&c->in);
    hub_buf_release(&c->out);
    hub_free(c);
}

static void bury(hub_mllp_server *s) {
    while (s->graveyard) {
        conn *c = s->graveyard;
        s->graveyard = c->gnext;
        conn_destroy(s, c);
    }
}

static void update_events(hub_mllp_server *s, conn *c) {
    if (c->dead) return;
    uint32_t ev = 0;
    if (c->handshaking) {
        ev = c->hs_want == HUB__WANT_WRITE ? EPOLLOUT : EPOLLIN;
    } else {
        if ((!c->read_closed && !c->paused) || c->wr_want == HUB__WANT_READ)
            ev |= EPOLLIN;
        if ((out_pending(c) && c->wr_want != HUB__WANT_READ) ||
            c->rd_want == HUB__WANT_WRITE)
            ev |= EPOLLOUT;
    }
    if (ev == c->ev) return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->io.fd, &e) == 0) c->ev = ev;
    else conn_close(s, c, R_ERROR);
}

/* ---- output ---------------------------------------------------------- */

static void maybe_finish(hub_mllp_server *s, conn *c) {
    if (c->dead || out_pending(c)) return;
    if (c->closing) conn_close(s, c, c->closing_reason);
    else if (c->read_closed && owed(c) == 0) conn_close(s, c, s->stopping ? R_STOP : R_PEER);
}

static void process_input(hub_mllp_server *s, conn *c);
static void do_read(hub_mllp_server *s, conn *c);

static void set_pause(hub_mllp_server *s, conn *c) {
    bool want = out_pending(c) >= s->max_output || owed(c) >= MAX_INFLIGHT;
    if (c->paused && !want && out_pending(c) < s->max_output / 2) {
        c->paused = false;
        /* Complete frames may wait in the input buffer (and in TLS's). */
        process_input(s, c);
        do_read(s, c);
    } else if (want) {
        c->paused = true;
    }
}

static void flush(hub_mllp_server *s, conn *c) {
    while (!c->dead && out_pending(c)) {
        int want;
        ssize_t w = hub__io_write(&c->io, c->out.p + c->out_pos, out_pending(c), &want);
        if (w > 0) {
            c->out_pos += (size_t)w;
            c->last_io_ns = hub_mono_ns();
            hub_metric_add(c->ch->m_bytes_out, w);
            c->wr_want = HUB__WANT_NONE;
        } else if (w == -1) {
            c->wr_want = want;
            break;
        } else {
            conn_close(s, c, R_ERROR);
            return;
        }
    }
    if (!out_pending(c)) {
        c->out.n = 0;
        c->out_pos = 0;
    } else if (c->out_pos > (64u << 10) && c->out_pos > c->out.n / 2) {
        hub_buf_consume(&c->out, c->out_pos);
        c->out_pos = 0;
    }
    maybe_finish(s, c);
    if (!c->dead) set_pause(s, c);
}

/* Moves replies that are next in seq order into the output buffer. */
static void emit(hub_mllp_server *s, conn *c) {
    while (c->pend && c->pend->seq == c->seq_out + 1 && !c->closing) {
        pending *p = c->pend;
        c->pend = p->next;
        if (hub_buf_append(&c->out, p->bytes, p->n) != HUB_OK) {
            hub_free(p);
            HUB_LOG_ERROR("mllp", "conn=%llu peer=%s reply dropped: out of memory",
                          (unsigned long long)c->id, c->peer);
            conn_close(s, c, R_ERROR);
            return;
        }
        c->seq_out++;
        if (p->close_after || p->seq == c->oversize_seq) {
            c->closing = true;
            c->closing_reason = p->seq == c->oversize_seq ? R_OVERSIZE : R_REPLY;
            c->read_closed = true;
        }
        hub_free(p);
    }
}

static void drain_replies(hub_mllp_server *s) {
    pthread_mutex_lock(&s->qlock);
    reply_item *q = s->qhead;
    s->qhead = s->qtail = NULL;
    s->wake_pending = false;
    pthread_mutex_unlock(&s->qlock);
    while (q) {
        reply_item *it = q;
        q = it->next;
        conn *c = conn_find(s, it->conn_id);
        if (c == NULL || c->dead || c->closing) {
            hub_free(it);
            continue;
        }
        if (it->seq <= c->seq_out || it->seq > c->seq_in) {
            HUB_LOG_WARN("mllp", "conn=%llu peer=%s reply for seq=%llu dropped: "
                         "not owed", (unsigned long long)c->id, c->peer,
                         (unsigned long long)it->seq);
            hub_free(it);
            continue;
        }
        pending *p = it;
        pending **pp = &c->pend;
        while (*pp && (*pp)->seq < p->seq) pp = &(*pp)->next;
        if (*pp && (*pp)->seq == p->seq) { /* a second reply to one frame */
            hub_free(p);
            continue;
        }
        p->next = *pp;
        *pp = p;
        if (!c->dirty) {
            c->dirty = true;
            c->dnext = s->dirty;
            s->dirty = c;
        }
    }
    while (s->dirty) {
        conn *c = s->dirty;
        s->dirty = c->dnext;
        c->dirty = false;
        if (c->dead) continue;
        emit(s, c);
        if (!c->dead) flush(s, c);
        update_events(s, c);
    }
}

/* ---- input ----------------------------------------------------------- */

static void deliver(hub_mllp_server *s, conn *c, hub_slice fr, bool oversize) {
    hub_mllp_frame_ctx ctx;
    ctx_of(c, &ctx);
    ctx.seq = ++c->seq_in;
    ctx.oversize = oversize;
    hub_metric_add(c->ch->m_frames, 1);
    HUB_LOG_DEBUG("mllp", "frame conn=%llu peer=%s seq=%llu bytes=%zu%s",
                  (unsigned long long)c->id, c->peer, (unsigned long long)ctx.seq,
                  fr.n, oversize ? " oversize=1" : "");
    HUB_LOG_TRACE("mllp", "frame conn=%llu body='%.*s'", (unsigned long long)c->id,
                  (int)fr.n, fr.p);
    s->delivered = true;
    s->cb.on_frame(s->cb.ud, &ctx, fr.p, fr.n);
}

/* Hands the round's frames on (the handler may commit them here). */
static void end_round(hub_mllp_server *s) {
    if (!s->delivered) return;
    s->delivered = false;
    if (s->cb.on_round) s->cb.on_round(s->cb.ud);
}

static void process_input(hub_mllp_server *s, conn *c) {
    size_t pos = 0;
    while (!c->dead && !c->read_closed && !c->paused && pos < c->in.n &&
           owed(c) < MAX_INFLIGHT) {
        hub_slice fr;
        hub_err err;
        uint64_t skipped = c->rd.skipped;
        hub_status st = hub_mllp_next(&c->rd, hub_slice_of(c->in.p + pos, c->in.n - pos),
                                      &fr, &err);
        if (c->rd.skipped > skipped) {
            uint64_t k = c->rd.skipped - skipped;
            hub_metric_add(c->ch->m_skipped, (int64_t)k);
            HUB_LOG_WARN("mllp", "conn=%llu peer=%s skipped bytes=%llu outside a frame",
                         (unsigned long long)c->id, c->peer, (unsigned long long)k);
        }
        if (st == HUB_OK) {
            if (fr.n == 0) {
                HUB_LOG_WARN("mllp", "conn=%llu peer=%s empty frame ignored",
                             (unsigned long long)c->id, c->peer);
            } else {
                deliver(s, c, fr, false);
            }
            pos += c->rd.consumed;
        } else if (st == HUB_AGAIN) {
            pos += c->rd.consumed;
            break;
        } else if (st == HUB_E_LIMIT) {
            hub_metric_add(c->ch->m_oversize, 1);
            HUB_LOG_WARN("mllp", "conn=%llu peer=%s frame over limit bytes>=%zu max=%zu",
                         (unsigned long long)c->id, c->peer, c->rd.oversize_total,
                         c->ch->max_frame);
            /* Read no more: the reply to this frame is the last. */
            c->read_closed = true;
            c->oversize_seq = c->seq_in + 1;
            deliver(s, c, fr, true);
            pos = c->in.n;
            break;
        } else {
            conn_close(s, c, R_ERROR);
            return;
        }
    }
    if (pos >= c->in.n) {
        c->in.n = 0;
    } else if (pos > 0) {
        hub_buf_consume(&c->in, pos);
    }
    if (!c->dead) set_pause(s, c);
}

static void do_read(hub_mllp_server *s, conn *c) {
    while (!c->dead && !c->read_closed && !c->paused) {
        if (c->in.cap - c->in.n < READ_CHUNK / 4 &&
            hub_buf_reserve(&c->in, READ_CHUNK) != HUB_OK) {
            conn_close(s, c, R_ERROR);
            return;
        }
        int want;
        size_t space = c->in.cap - c->in.n;
        ssize_t r = hub__io_read(&c->io, c->in.p + c->in.n, space, &want);
        if (r > 0) {
            c->rd_want = HUB__WANT_NONE;
            c->in.n += (size_t)r;
            c->last_io_ns = hub_mono_ns();
            hub_metric_add(c->ch->m_bytes_in, r);
            process_input(s, c);
            /* A short plain read drained the socket: epoll (level-triggered)
             * reports the next bytes, so skip the read that would only say
             * EAGAIN. TLS may hold decrypted bytes, so it reads on. */
            if (!c->io.ssl && (size_t)r < space) return;
            continue;
        }
        if (r == 0) {
            if (!hub_mllp_reader_idle(&c->rd) || c->in.n)
                HUB_LOG_WARN("mllp", "conn=%llu peer=%s ended inside a frame",
                             (unsigned long long)c->id, c->peer);
            c->read_closed = true;
            maybe_finish(s, c);
            return;
        }
        if (r == -1) {
            c->rd_want = want;
            return;
        }
        conn_close(s, c, R_ERROR);
        return;
    }
}

static void open_done(hub_mllp_server *s, conn *c) {
    c->opened = true;
    HUB_LOG_INFO("mllp", "open conn=%llu peer=%s channel=%s%s%s",
                 (unsigned long long)c->id, c->peer, c->ch->name,
                 c->has_subject ? " subject=" : "", c->has_subject ? c->subject : "");
    if (s->cb.on_open) {
        hub_mllp_frame_ctx ctx;
        ctx_of(c, &ctx);
        s->cb.on_open(s->cb.ud, &ctx);
    }
}

static void refused(hub_mllp_server *s, const channel *ch, const char *peer, const char *why) {
    if (s->cb.on_refused == NULL) return;
    hub_mllp_frame_ctx ctx = {.channel = ch->name, .channel_index = ch->index, .peer = peer};
    s->cb.on_refused(s->cb.refused_ud, &ctx, why);
}

static void handshake(hub_mllp_server *s, conn *c) {
    hub_err err;
    int r = hub__io_handshake(&c->io, &c->hs_want, &err);
    if (r == 0) return;
    if (r < 0) {
        HUB_LOG_WARN("mllp", "conn=%llu peer=%s tls handshake failed: %s",
                     (unsigned long long)c->id, c->peer, err.msg);
        char why[96];
        snprintf(why, sizeof why, "tls handshake failed: %.70s", err.msg);
        refused(s, c->ch, c->peer, why);
        conn_close(s, c, R_TLS);
        return;
    }
    c->handshaking = false;
    c->last_io_ns = hub_mono_ns();
    if (c->ch->mtls) c->has_subject = hub__tls_subject(c->io.ssl, c->subject, sizeof c->subject);
    open_done(s, c);
    do_read(s, c);
}

static void on_conn_event(hub_mllp_server *s, conn *c, uint32_t events) {
    if (events & EPOLLERR) {
        conn_close(s, c, R_ERROR);
        return;
    }
    if (c->handshaking) {
        handshake(s, c);
    } else {
        if (out_pending(c)) flush(s, c);
        if (!c->dead && !c->read_closed && !c->paused) do_read(s, c);
        if (!c->dead && (events & EPOLLHUP) && c->read_closed)
            conn_close(s, c, R_PEER); /* both directions gone */
    }
    update_events(s, c);
}

/* ---- accept ---------------------------------------------------------- */

static bool allowed(const channel *ch, const struct sockaddr_storage *ss) {
    if (ch->n_allow == 0) return true;
    int fam = ss->ss_family;
    const unsigned char *a;
    unsigned char v4[4];
    if (fam == AF_INET) {
        a = (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr;
    } else {
        const struct in6_addr *x = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(x)) {
            memcpy(v4, x->s6_addr + 12, 4);
            a = v4;
            fam = AF_INET;
        } else {
            a = x->s6_addr;
        }
    }
    for (size_t i = 0; i < ch->n_allow; i++) {
        const allow_rule *r = &ch->allow[i];
        if (r->family != fam) continue;
        int bits = r->prefix, k = 0;
        while (bits >= 8 && a[k] == r->addr[k]) {
            bits -= 8;
            k++;
        }
        if (bits >= 8) continue;
        if (bits == 0) return true;
        unsigned char mask = (unsigned char)(0xFF << (8 - bits));
        if ((a[k] & mask) == (r->addr[k] & mask)) return true;
    }
    return false;
}

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t cap) {
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(out, cap, "%s:%d", ip, port);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            inet_ntop(AF_INET, a->sin6_addr.s6_addr + 12, ip, sizeof ip);
            snprintf(out, cap, "%s:%d", ip, ntohs(a->sin6_port));
        } else {
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
            snprintf(out, cap, "[%s]:%d", ip, ntohs(a->sin6_port));
        }
    }
}

static void on_accept(hub_mllp_server *s, channel *ch) {
    for (int k = 0; k < 64; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(ch->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if ((errno == EMFILE || errno == ENFILE) && s->spare_fd >= 0) {
                /* Out of descriptors: accept with the spare and close, so the
                 * peer learns at once and the listener does not spin. */
                close(s->spare_fd);
                int x = accept(ch->fd, NULL, NULL);
                if (x >= 0) close(x);
                s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                hub_metric_add(ch->m_refused_limit, 1);
                HUB_LOG_ERROR("mllp", "channel=%s refused a connection: out of file descriptors",
                              ch->name);
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                HUB_LOG_WARN("mllp", "channel=%s accept failed: %s", ch->name, strerror(errno));
            return;
        }
        char peer[64];
        format_peer(&ss, peer, sizeof peer);
        if (!allowed(ch, &ss)) {
            hub_metric_add(ch->m_refused_addr, 1);
            HUB_LOG_WARN("mllp", "refuse peer=%s channel=%s reason=address", peer, ch->name);
            refused(s, ch, peer, "address not allowed");
            close(fd);
            continue;
        }
        if (ch->nconns >= ch->max_conns || s->stopping) {
            hub_metric_add(ch->m_refused_limit, 1);
            HUB_LOG_WARN("mllp", "refuse peer=%s channel=%s reason=%s max=%d", peer,
                         ch->name, s->stopping ? "stopping" : "limit", ch->max_conns);
            if (!s->stopping) refused(s, ch, peer, "connection limit");
            close(fd);
            continue;
        }
        conn *c = hub_calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            HUB_LOG_ERROR("mllp", "refuse peer=%s channel=%s reason=nomem", peer, ch->name);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->tag = TAG_CONN;
        c->id = ++s->next_id;
        c->ch = ch;
        c->io.fd = fd;
        snprintf(c->peer, sizeof c->peer, "%s", peer);
        hub_buf_init(&c->in);
        hub_buf_init(&c->out);
        hub_mllp_reader_init(&c->rd, ch->max_frame);
        c->last_io_ns = hub_mono_ns();
        if (ch->tls) {
            c->io.ssl = SSL_new(ch->tls);
            if (c->io.ssl == NULL || SSL_set_fd(c->io.ssl, fd) != 1) {
                if (c->io.ssl) SSL_free(c->io.ssl);
                ERR_clear_error();
                close(fd);
                hub_free(c);
                HUB_LOG_ERROR("mllp", "refuse peer=%s channel=%s reason=tls-setup", peer,
                              ch->name);
                continue;
            }
            SSL_set_accept_state(c->io.ssl);
            c->handshaking = true;
            c->hs_want = HUB__WANT_READ;
        }
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
            if (c->io.ssl) SSL_free(c->io.ssl);
            close(fd);
            hub_free(c);
            continue;
        }
        c->ev = EPOLLIN;
        size_t b = bucket_of(c->id);
        c->hnext = s->buckets[b];
        s->buckets[b] = c;
        c->next = s->all;
        if (s->all) s->all->prev = c;
        s->all = c;
        ch->nconns++;
        atomic_fetch_add(&s->nconns, 1);
        hub_metric_add(ch->m_open, 1);
        hub_metric_add(ch->m_accepted, 1);
        if (!c->io.ssl) open_done(s, c);
    }
}

/* ---- the loop -------------------------------------------------------- */

static void sweep(hub_mllp_server *s, int64_t now) {
    for (conn *c = s->all; c; c = c->next) {
        if (c->dead) continue;
        int idle = c->ch->idle_ms;
        if (idle > 0 && owed(c) == 0 && now - c->last_io_ns > (int64_t)idle * 1000000) {
            HUB_LOG_INFO("mllp", "conn=%llu peer=%s idle for %d ms",
                         (unsigned long long)c->id, c->peer, idle);
            conn_close(s, c, R_IDLE);
        }
    }
}

static void begin_stop(hub_mllp_server *s, int grace_ms) {
    s->stopping = true;
    s->stop_deadline_ns = hub_mono_ns() + (int64_t)grace_ms * 1000000;
    for (size_t i = 0; i < s->nch; i++) {
        if (s->ch[i].fd >= 0) {
            epoll_ctl(s->ep, EPOLL_CTL_DEL, s->ch[i].fd, NULL);
            close(s->ch[i].fd);
            s->ch[i].fd = -1;
        }
    }
    for (conn *c = s->all; c; c = c->next) {
        if (c->dead) continue;
        if (c->handshaking || owed(c) == 0) {
            if (!out_pending(c)) conn_close(s, c, R_STOP);
            else {
                c->closing = true;
                c->closing_reason = R_STOP;
            }
        }
        c->read_closed = true;
        update_events(s, c);
    }
}

static void *loop_main(void *arg) {
    hub_mllp_server *s = arg;
    struct epoll_event evs[128];
    int64_t last_sweep = hub_mono_ns();
    tl_loop = s;
    for (;;) {
        /* Replies queued on this thread since the last drain (from on_frame
         * called while flushing) did not write the eventfd: do not sleep. */
        pthread_mutex_lock(&s->qlock);
        bool queued = s->qhead != NULL;
        pthread_mutex_unlock(&s->qlock);
        int n = epoll_wait(s->ep, evs, 128, queued ? 0 : s->stopping ? 10 : SWEEP_MS);
        bool wake = false;
        for (int i = 0; i < n; i++) {
            int tag = *(int *)evs[i].data.ptr;
            if (tag == TAG_WAKE) {
                uint64_t v;
                ssize_t r = read(s->evfd, &v, sizeof v);
                (void)r;
                wake = true;
            } else if (tag == TAG_LISTEN) {
                if (!s->stopping) on_accept(s, (channel *)evs[i].data.ptr);
            } else {
                conn *c = evs[i].data.ptr;
                if (!c->dead) on_conn_event(s, c, evs[i].events);
            }
        }
        bury(s);
        bool stop_now = false;
        int grace = 0;
        if (wake) {
            pthread_mutex_lock(&s->qlock);
            stop_now = s->stop_requested;
            grace = s->grace_ms;
            pthread_mutex_unlock(&s->qlock);
        }
        end_round(s);
        drain_replies(s);
        /* Writing replies can resume a paused connection, whose waiting
         * frames are then delivered: hand those on too. */
        while (s->delivered) {
            end_round(s);
            drain_replies(s);
        }
        if (stop_now && !s->stopping) begin_stop(s, grace);
        int64_t now = hub_mono_ns();
        if (now - last_sweep >= (int64_t)SWEEP_MS * 1000000) {
            sweep(s, now);
            last_sweep = now;
        }
        if (s->stopping) {
            for (conn *c = s->all; c; c = c->next) {
                if (c->dead) continue;
                if (now >= s->stop_deadline_ns) conn_close(s, c, R_STOP);
                else if (owed(c) == 0 && !out_pending(c)) conn_close(s, c, R_STOP);
            }
        }
        bury(s);
        if (s->stopping && s->all == NULL) break;
    }
    atomic_store(&s->finished, true);
    /* Replies that raced with the end. */
    drain_replies(s);
    return NULL;
}

/* ---- public ---------------------------------------------------------- */

hub_status hub_mllp_server_reply(hub_mllp_server *s, uint64_t conn_id,
                                 uint64_t seq, const void *bytes, size_t n,
                                 bool close_after) {
    if (atomic_load(&s->finished)) return HUB_E_STATE;
    reply_item *it = hub_malloc(sizeof *it + n);
    if (it == NULL) return HUB_E_NOMEM;
    it->conn_id = conn_id;
    it->seq = seq;
    it->close_after = close_after;
    it->n = n;
    it->next = NULL;
    if (n) memcpy(it->bytes, bytes, n);
    pthread_mutex_lock(&s->qlock);
    if (s->qtail) s->qtail->next = it;
    else s->qhead = it;
    s->qtail = it;
    /* The loop drains the queue after every round of events, so a reply
     * queued on the loop thread itself (inside on_frame) needs no wake-up. */
    bool wake = !s->wake_pending && tl_loop != s;
    s->wake_pending = true;
    pthread_mutex_unlock(&s->qlock);
    if (wake) {
        uint64_t one = 1;
        ssize_t w = write(s->evfd, &one, sizeof one);
        (void)w;
    }
    return HUB_OK;
}

static hub_status parse_allow(const char *chname, const char *txt, allow_rule *r,
                              hub_err *err) {
    char buf[64];
    char where[48];
    snprintf(where, sizeof where, "mllp.%s.allow", chname);
    if (strlen(txt) >= sizeof buf)
        return hub_err_set(err, HUB_E_CONFIG, where, "address too long");
    snprintf(buf, sizeof buf, "%s", txt);
    char *slash = strchr(buf, '/');
    if (slash) *slash = '\0';
    memset(r, 0, sizeof *r);
    int maxp;
    if (inet_pton(AF_INET, buf, r->addr) == 1) {
        r->family = AF_INET;
        maxp = 32;
    } else if (inet_pton(AF_INET6, buf, r->addr) == 1) {
        r->family = AF_INET6;
        maxp = 128;
    } else {
        return hub_err_set(err, HUB_E_CONFIG, where, "'%s' is not an IP address or CIDR", txt);
    }
    r->prefix = maxp;
    if (slash) {
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || p < 0 || p > maxp)
            return hub_err_set(err, HUB_E_CONFIG, where, "bad prefix length in '%s'", txt);
        r->prefix = (int)p;
    }
    return HUB_OK;
}

static hub_status bind_channel(channel *ch, const char *host, int port, hub_err *err) {
    char where[48];
    snprintf(where, sizeof where, "mllp.%s", ch->name);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host && host[0] ? host : "0.0.0.0", portstr, &hints, &res);
    if (rc != 0)
        return hub_err_set(err, HUB_E_CONFIG, where, "cannot resolve host: %s", gai_strerror(rc));
    int saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 511) == 0) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            getsockname(fd, (struct sockaddr *)&ss, &sl);
            ch->port = ntohs(ss.ss_family == AF_INET
                                 ? ((struct sockaddr_in *)&ss)->sin_port
                                 : ((struct sockaddr_in6 *)&ss)->sin6_port);
            ch->fd = fd;
            freeaddrinfo(res);
            return HUB_OK;
        }
        saved = errno;
        close(fd);
    }
    freeaddrinfo(res);
    return hub_err_set(err, HUB_E_IO, where, "cannot listen on port %d: %s", port,
                       strerror(saved));
}

static void channel_metrics(channel *ch) {
    char lb[96];
    snprintf(lb, sizeof lb, "channel=\"%.60s\"", ch->name);
    ch->m_open = hub_metric_get(HUB_METRIC_GAUGE, "hub_mllp_connections_open", lb,
                                "MLLP connections open now");
    ch->m_accepted = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_connections_total", lb,
                                    "MLLP connections accepted");
    ch->m_frames = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_frames_total", lb,
                                  "MLLP frames received");
    ch->m_bytes_in = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_bytes_in_total", lb,
                                    "MLLP bytes received");
    ch->m_bytes_out = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_bytes_out_total", lb,
                                     "MLLP bytes sent");
    ch->m_skipped = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_skipped_bytes_total", lb,
                                   "MLLP bytes skipped outside a frame");
    ch->m_oversize = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_oversize_frames_total",
                                    lb, "MLLP frames over the size limit");
    snprintf(lb, sizeof lb, "channel=\"%.60s\",reason=\"limit\"", ch->name);
    ch->m_refused_limit = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_refused_total", lb,
                                         "MLLP connections refused at accept");
    snprintf(lb, sizeof lb, "channel=\"%.60s\",reason=\"address\"", ch->name);
    ch->m_refused_addr = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_refused_total", lb,
                                        "MLLP connections refused at accept");
    for (int r = 0; r < R__COUNT; r++) {
        snprintf(lb, sizeof lb, "channel=\"%.60s\",reason=\"%s\"", ch->name, reason_names[r]);
        ch->m_closed[r] = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_closed_total", lb,
                                         "MLLP connections closed, by reason");
    }
}

static void server_release(hub_mllp_server *s) {
    for (size_t i = 0; i < s->nch; i++) {
        channel *ch = &s->ch[i];
        if (ch->fd >= 0) close(ch->fd);
        if (ch->tls) SSL_CTX_free(ch->tls);
        hub_free(ch->name);
        hub_free(ch->allow);
    }
    hub_free(s->ch);
    while (s->qhead) {
        reply_item *it = s->qhead;
        s->qhead = it->next;
        hub_free(it);
    }
    if (s->ep >= 0) close(s->ep);
    if (s->evfd >= 0) close(s->evfd);
    if (s->spare_fd >= 0) close(s->spare_fd);
    pthread_mutex_destroy(&s->qlock);
    pthread_mutex_destroy(&s->stop_lock);
    hub_free(s);
}

hub_status hub_mllp_server_start(const hub_mllp_server_cfg *cfg,
                                 const hub_mllp_callbacks *cb,
                                 hub_mllp_server **out, hub_err *err) {
    *out = NULL;
    if (cfg == NULL || cfg->n_channels == 0)
        return hub_err_set(err, HUB_E_CONFIG, "mllp", "no channel configured");
    if (cb == NULL || cb->on_frame == NULL)
        return hub_err_set(err, HUB_E_ARG, "mllp", "on_frame callback missing");
    hub_mllp_server *s = hub_calloc(1, sizeof *s);
    if (s == NULL) return hub_err_set(err, HUB_E_NOMEM, "mllp", "out of memory");
    s->wake_tag = TAG_WAKE;
    s->ep = s->evfd = s->spare_fd = -1;
    pthread_mutex_init(&s->qlock, NULL);
    pthread_mutex_init(&s->stop_lock, NULL);
    s->cb = *cb;
    s->max_output = cfg->max_output ? cfg->max_output : (4u << 20);
    s->ch = hub_calloc(cfg->n_channels, sizeof *s->ch);
    hub_status st;
    if (s->ch == NULL) {
        st = hub_err_set(err, HUB_E_NOMEM, "mllp", "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_channels; i++) s->ch[i].fd = -1;
    s->nch = cfg->n_channels;
    for (size_t i = 0; i < cfg->n_channels; i++) {
        const hub_mllp_channel_cfg *cc = &cfg->channels[i];
        channel *ch = &s->ch[i];
        ch->tag = TAG_LISTEN;
        ch->index = i;
        ch->name = hub_strdup(cc->name && cc->name[0] ? cc->name : "default");
        if (ch->name == NULL) {
            st = hub_err_set(err, HUB_E_NOMEM, "mllp", "out of memory");
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(s->ch[j].name, ch->name) == 0) {
                st = hub_err_set(err, HUB_E_CONFIG, "mllp", "channel '%.60s' defined twice",
                                 ch->name);
                goto fail;
            }
        }
        ch->max_frame = cc->max_frame ? cc->max_frame : HUB_MAX_FRAME;
        ch->idle_ms = cc->idle_timeout_ms > 0 ? cc->idle_timeout_ms : 0;
        ch->max_conns = cc->max_connections > 0 ? cc->max_connections : HUB_MAX_MLLP_CONNS;
        if (cc->port < 0 || cc->port > 65535) {
            st = hub_err_set(err, HUB_E_CONFIG, "mllp", "channel '%.60s': port %d out of range",
                             ch->name, cc->port);
            goto fail;
        }
        if (cc->n_allow) {
            ch->allow = hub_calloc(cc->n_allow, sizeof *ch->allow);
            if (ch->allow == NULL) {
                st = hub_err_set(err, HUB_E_NOMEM, "mllp", "out of memory");
                goto fail;
            }
            ch->n_allow = cc->n_allow;
            for (size_t k = 0; k < cc->n_allow; k++) {
                st = parse_allow(ch->name, cc->allow[k], &ch->allow[k], err);
                if (st != HUB_OK) goto fail;
            }
        }
        if (cc->tls_cert && cc->tls_cert[0]) {
            st = hub__tls_server_ctx(cc->tls_cert, cc->tls_key, cc->tls_client_ca, &ch->tls, err);
            if (st != HUB_OK) goto fail;
            ch->mtls = cc->tls_client_ca && cc->tls_client_ca[0];
        } else if ((cc->tls_key && cc->tls_key[0]) || (cc->tls_client_ca && cc->tls_client_ca[0])) {
            st = hub_err_set(err, HUB_E_CONFIG, "mllp",
                             "channel '%.60s': TLS key or client CA without a certificate",
                             ch->name);
            goto fail;
        }
        st = bind_channel(ch, cc->host, cc->port, err);
        if (st != HUB_OK) goto fail;
        channel_metrics(ch);
    }
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (s->ep < 0 || s->evfd < 0) {
        st = hub_err_set(err, HUB_E_IO, "mllp", "epoll/eventfd: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &s->wake_tag};
    epoll_ctl(s->ep, EPOLL_CTL_ADD, s->evfd, &e);
    for (size_t i = 0; i < s->nch; i++) {
        struct epoll_event le = {.events = EPOLLIN, .data.ptr = &s->ch[i]};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->ch[i].fd, &le) != 0) {
            st = hub_err_set(err, HUB_E_IO, "mllp", "epoll_ctl: %s", strerror(errno));
            goto fail;
        }
    }
    if (pthread_create(&s->thread, NULL, loop_main, s) != 0) {
        st = hub_err_set(err, HUB_E_IO, "mllp", "cannot start the loop thread");
        goto fail;
    }
    s->thread_started = true;
    for (size_t i = 0; i < s->nch; i++)
        HUB_LOG_INFO("mllp", "listen channel=%s port=%d tls=%s", s->ch[i].name, s->ch[i].port,
                     s->ch[i].tls ? (s->ch[i].mtls ? "mutual" : "on") : "off");
    *out = s;
    return HUB_OK;
fail:
    server_release(s);
    return st;
}

int hub_mllp_server_port(const hub_mllp_server *s, size_t channel_index) {
    if (s == NULL || channel_index >= s->nch) return -1;
    return s->ch[channel_index].port;
}

int hub_mllp_server_conn_count(const hub_mllp_server *s) {
    return atomic_load(&((hub_mllp_server *)s)->nconns);
}

void hub_mllp_server_stop(hub_mllp_server *s, int grace_ms) {
    if (s == NULL) return;
    pthread_mutex_lock(&s->stop_lock);
    if (s->thread_started && !s->joined) {
        pthread_mutex_lock(&s->qlock);
        s->stop_requested = true;
        s->grace_ms = grace_ms < 0 ? 0 : grace_ms;
        pthread_mutex_unlock(&s->qlock);
        uint64_t one = 1;
        ssize_t w = write(s->evfd, &one, sizeof one);
        (void)w;
        pthread_join(s->thread, NULL);
        s->joined = true;
        HUB_LOG_INFO("mllp", "stopped");
    }
    pthread_mutex_unlock(&s->stop_lock);
}

void hub_mllp_server_free(hub_mllp_server *s) {
    if (s == NULL) return;
    hub_mllp_server_stop(s, 0);
    server_release(s);
}
