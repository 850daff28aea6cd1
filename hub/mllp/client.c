/* The outbound MLLP client: one frame in flight, so order is kept. Sockets
 * are non-blocking and every wait is a poll(2) with a deadline, so no call
 * blocks longer than its timeout. */
#include "internal.h"

#include "hub/limits.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct hub_mllp_client {
    char *host, *ca, *cert, *key, *sni;
    int port;
    bool tls, insecure;
    int connect_ms, ack_ms, bmin, bmax, attempts;
    size_t max_frame;
    SSL_CTX *ctx;
    hub__io io;
    hub_buf in, out;
    hub_mllp_reader rd;
    unsigned connects;
    int fails; /* consecutive failed attempts, drives the backoff */
};

static int64_t ms_left(int64_t deadline_ns) {
    int64_t d = deadline_ns - hub_mono_ns();
    if (d <= 0) return 0;
    return (d + 999999) / 1000000;
}

/* Waits until the fd is ready for `want`; HUB_E_TIMEOUT at the deadline. */
static hub_status wait_fd(int fd, int want, int64_t deadline_ns, hub_err *err,
                          const char *what) {
    for (;;) {
        int64_t left = ms_left(deadline_ns);
        if (left == 0)
            return hub_err_set(err, HUB_E_TIMEOUT, "mllp", "timed out waiting for %s", what);
        struct pollfd p = {.fd = fd, .events = want == HUB__WANT_WRITE ? POLLOUT : POLLIN};
        int r = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
        if (r > 0) return HUB_OK;
        if (r < 0 && errno != EINTR)
            return hub_err_set(err, HUB_E_IO, "mllp", "poll: %s", strerror(errno));
    }
}

void hub_mllp_client_close(hub_mllp_client *c) {
    if (c == NULL) return;
    if (c->io.ssl) {
        SSL_free(c->io.ssl);
        c->io.ssl = NULL;
        ERR_clear_error();
    }
    if (c->io.fd >= 0) close(c->io.fd);
    c->io.fd = -1;
    c->in.n = 0;
    hub_mllp_reader_init(&c->rd, c->max_frame);
}

static hub_status connect_once(hub_mllp_client *c, hub_err *err) {
    int64_t deadline = hub_mono_ns() + (int64_t)c->connect_ms * 1000000;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", c->port);
    int rc = getaddrinfo(c->host, portstr, &hints, &res);
    if (rc != 0)
        return hub_err_set(err, HUB_E_IO, "mllp", "cannot resolve '%.60s': %s", c->host,
                           gai_strerror(rc));
    hub_status st = hub_err_set(err, HUB_E_IO, "mllp", "no address for '%.60s'", c->host);
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        if (errno == EINPROGRESS) {
            st = wait_fd(fd, HUB__WANT_WRITE, deadline, err, "the connection");
            if (st == HUB_OK) {
                int e = 0;
                socklen_t el = sizeof e;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
                if (e == 0) break;
                st = hub_err_set(err, HUB_E_IO, "mllp", "connect to %.60s:%d: %s", c->host,
                                 c->port, strerror(e));
            }
        } else {
            st = hub_err_set(err, HUB_E_IO, "mllp", "connect to %.60s:%d: %s", c->host,
                             c->port, strerror(errno));
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return st;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->io.fd = fd;
    c->io.ssl = NULL;
    if (c->tls) {
        SSL *ssl = SSL_new(c->ctx);
        if (ssl == NULL) {
            hub_mllp_client_close(c);
            return hub__tls_err(err, "tls", "cannot create a session");
        }
        c->io.ssl = ssl;
        SSL_set_fd(ssl, fd);
        SSL_set_connect_state(ssl);
        const char *name = c->sni ? c->sni : c->host;
        unsigned char tmp[16];
        bool literal = inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1;
        if (!literal) SSL_set_tlsext_host_name(ssl, name);
        if (!c->insecure) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
            if (literal) X509_VERIFY_PARAM_set1_ip_asc(vp, name);
            else SSL_set1_host(ssl, name);
        }
        for (;;) {
            int want;
            int r = hub__io_handshake(&c->io, &want, err);
            if (r == 1) break;
            if (r < 0) {
                hub_mllp_client_close(c);
                return HUB_E_TLS;
            }
            st = wait_fd(fd, want, deadline, err, "the TLS handshake");
            if (st != HUB_OK) {
                hub_mllp_client_close(c);
                return st;
            }
        }
    }
    c->connects++;
    hub_mllp_reader_init(&c->rd, c->max_frame);
    c->in.n = 0;
    return HUB_OK;
}

/* Checks an idle connection before reuse. The peer may have closed it
 * (EOF, reset): then it is stale. A TLS 1.3 peer may have sent session
 * tickets, which are no reason to reconnect. Application bytes nobody asked
 * for cannot belong to the next message: they are dropped. */
static bool stale(hub_mllp_client *c) {
    for (int round = 0; round < 16; round++) {
        struct pollfd p = {.fd = c->io.fd, .events = POLLIN};
        if (poll(&p, 1, 0) <= 0 && !(c->io.ssl && SSL_pending(c->io.ssl) > 0)) return false;
        if (hub_buf_reserve(&c->in, 16384) != HUB_OK) return true;
        int want;
        ssize_t r = hub__io_read(&c->io, c->in.p, c->in.cap, &want);
        if (r == -1) return false; /* only TLS records without data */
        if (r <= 0) return true;   /* EOF or error */
        HUB_LOG_DEBUG("mllp", "host=%s port=%d dropped %zd unsolicited bytes", c->host,
                      c->port, r);
        c->in.n = 0;
        hub_mllp_reader_init(&c->rd, c->max_frame);
    }
    return true;
}

static void backoff_sleep(hub_mllp_client *c) {
    if (c->fails <= 0) return;
    int64_t d = c->bmin;
    for (int i = 1; i < c->fails && d < c->bmax; i++) d *= 2;
    if (d > c->bmax) d = c->bmax;
    struct timespec ts = {.tv_sec = d / 1000, .tv_nsec = (d % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static hub_status write_all(hub_mllp_client *c, const char *p, size_t n,
                            int64_t deadline, hub_err *err) {
    while (n) {
        int want;
        ssize_t w = hub__io_write(&c->io, p, n, &want);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w == -1) {
            hub_status st = wait_fd(c->io.fd, want, deadline, err, "the peer to read");
            if (st != HUB_OK) return st;
        } else {
            return hub_err_set(err, HUB_E_IO, "mllp", "send failed: %s",
                               errno ? strerror(errno) : "connection closed");
        }
    }
    return HUB_OK;
}

static hub_status read_reply(hub_mllp_client *c, hub_buf *ack, int64_t deadline,
                             hub_err *err) {
    /* The reply cannot be there yet unless bytes are buffered: wait first,
     * which saves a read that would only say "would block". */
    if (c->in.n == 0 && !(c->io.ssl && SSL_pending(c->io.ssl) > 0)) {
        hub_status st = wait_fd(c->io.fd, HUB__WANT_READ, deadline, err, "the ACK");
        if (st != HUB_OK) return st;
    }
    for (;;) {
        if (c->in.n) {
            hub_slice fr;
            hub_status st = hub_mllp_next(&c->rd, hub_slice_of(c->in.p, c->in.n), &fr, err);
            if (st == HUB_OK) {
                ack->n = 0;
                if (hub_buf_append(ack, fr.p, fr.n) != HUB_OK)
                    return hub_err_set(err, HUB_E_NOMEM, "mllp", "out of memory");
                hub_buf_consume(&c->in, c->rd.consumed);
                return HUB_OK;
            }
            if (st == HUB_E_LIMIT) return st;
            hub_buf_consume(&c->in, c->rd.consumed);
        }
        if (hub_buf_reserve(&c->in, 16384) != HUB_OK)
            return hub_err_set(err, HUB_E_NOMEM, "mllp", "out of memory");
        int want;
        ssize_t r = hub__io_read(&c->io, c->in.p + c->in.n, c->in.cap - c->in.n, &want);
        if (r > 0) {
            c->in.n += (size_t)r;
        } else if (r == 0) {
            return hub_err_set(err, HUB_E_IO, "mllp", "connection closed before the ACK");
        } else if (r == -1) {
            hub_status st = wait_fd(c->io.fd, want, deadline, err, "the ACK");
            if (st != HUB_OK) return st;
        } else {
            return hub_err_set(err, HUB_E_IO, "mllp", "receive failed: %s",
                               errno ? strerror(errno) : "connection reset");
        }
    }
}

hub_status hub_mllp_client_send(hub_mllp_client *c, const char *msg, size_t n,
                                hub_buf *ack, hub_err *err) {
    c->out.n = 0;
    if (hub_mllp_frame_append(&c->out, msg, n) != HUB_OK)
        return hub_err_set(err, HUB_E_NOMEM, "mllp", "out of memory");
    hub_status st = HUB_E_IO;
    for (int a = 0; a < c->attempts; a++) {
        if (c->io.fd >= 0 && stale(c)) hub_mllp_client_close(c);
        if (c->io.fd < 0) {
            backoff_sleep(c);
            st = connect_once(c, err);
            if (st != HUB_OK) {
                c->fails++;
                HUB_LOG_DEBUG("mllp", "connect host=%s port=%d attempt=%d failed: %s",
                              c->host, c->port, a + 1, err ? err->msg : "");
                continue;
            }
        }
        int64_t deadline = hub_mono_ns() + (int64_t)c->ack_ms * 1000000;
        errno = 0;
        st = write_all(c, c->out.p, c->out.n, deadline, err);
        if (st == HUB_OK) st = read_reply(c, ack, deadline, err);
        if (st == HUB_OK) {
            c->fails = 0;
            return HUB_OK;
        }
        hub_mllp_client_close(c);
        if (st == HUB_E_TIMEOUT || st == HUB_E_LIMIT || st == HUB_E_NOMEM) return st;
        c->fails++;
    }
    return st;
}

hub_status hub_mllp_client_connect(hub_mllp_client *c, hub_err *err) {
    if (c->io.fd >= 0 && !stale(c)) return HUB_OK;
    hub_mllp_client_close(c);
    hub_status st = HUB_E_IO;
    for (int a = 0; a < c->attempts; a++) {
        backoff_sleep(c);
        st = connect_once(c, err);
        if (st == HUB_OK) {
            c->fails = 0;
            return HUB_OK;
        }
        c->fails++;
    }
    return st;
}

unsigned hub_mllp_client_connects(const hub_mllp_client *c) { return c->connects; }

void hub_mllp_client_free(hub_mllp_client *c) {
    if (c == NULL) return;
    hub_mllp_client_close(c);
    if (c->ctx) SSL_CTX_free(c->ctx);
    hub_buf_release(&c->in);
    hub_buf_release(&c->out);
    hub_free(c->host);
    hub_free(c->ca);
    hub_free(c->cert);
    hub_free(c->key);
    hub_free(c->sni);
    hub_free(c);
}

static char *dup_opt(const char *s, bool *bad) {
    if (s == NULL || s[0] == '\0') return NULL;
    char *d = hub_strdup(s);
    if (d == NULL) *bad = true;
    return d;
}

hub_status hub_mllp_client_new(const hub_mllp_client_cfg *cfg,
                               hub_mllp_client **out, hub_err *err) {
    *out = NULL;
    if (cfg->host == NULL || cfg->host[0] == '\0')
        return hub_err_set(err, HUB_E_ARG, "mllp", "no host");
    if (cfg->port <= 0 || cfg->port > 65535)
        return hub_err_set(err, HUB_E_ARG, "mllp", "port %d out of range", cfg->port);
    hub_mllp_client *c = hub_calloc(1, sizeof *c);
    if (c == NULL) return hub_err_set(err, HUB_E_NOMEM, "mllp", "out of memory");
    c->io.fd = -1;
    bool bad = false;
    c->host = dup_opt(cfg->host, &bad);
    c->ca = dup_opt(cfg->ca_file, &bad);
    c->cert = dup_opt(cfg->cert_file, &bad);
    c->key = dup_opt(cfg->key_file, &bad);
    c->sni = dup_opt(cfg->server_name, &bad);
    hub_buf_init(&c->in);
    hub_buf_init(&c->out);
    if (bad) {
        hub_mllp_client_free(c);
        return hub_err_set(err, HUB_E_NOMEM, "mllp", "out of memory");
    }
    c->port = cfg->port;
    c->tls = cfg->tls;
    c->insecure = cfg->insecure;
    c->connect_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 5000;
    c->ack_ms = cfg->ack_timeout_ms > 0 ? cfg->ack_timeout_ms : 30000;
    c->bmin = cfg->backoff_min_ms > 0 ? cfg->backoff_min_ms : 100;
    c->bmax = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 30000;
    if (c->bmax < c->bmin) c->bmax = c->bmin;
    c->attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 1;
    c->max_frame = cfg->max_frame ? cfg->max_frame : HUB_MAX_FRAME;
    hub_mllp_reader_init(&c->rd, c->max_frame);
    if (c->tls) {
        hub_status st = hub__tls_client_ctx(c->ca, c->cert, c->key, c->insecure, &c->ctx, err);
        if (st != HUB_OK) {
            hub_mllp_client_free(c);
            return st;
        }
    }
    *out = c;
    return HUB_OK;
}
