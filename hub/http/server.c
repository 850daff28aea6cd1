/* libmicrohttpd glue. The response is queued on the second call of the
 * access handler at the earliest: queuing on the first makes libmicrohttpd
 * answer `Connection: close`, which costs keep-alive clients dearly. */
#include "hub/http.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#define MAX_ROUTES 64
#define HTTP_CONN_MEMORY (16u << 10)

typedef struct {
    char method[16];
    char path[128];
    bool prefix;
    bool oversize; /* also gets requests whose body went over the limit */
    bool blocking; /* its non-GET requests run on the blocking pool */
    hub_http_handler fn;
    void *ud;
} route;

struct hub_http_server {
    hub_http_cfg cfg;
    char host[64];
    char *cert, *key; /* PEM text for libmicrohttpd, kept while it runs */
    char *client_ca;  /* PEM CAs of client certificates, or NULL */
    struct MHD_Daemon *d;
    route routes[MAX_ROUTES];
    int nroutes;
    int port;
    /* The blocking pool: requests whose handler waits (a FHIR write waits
     * for its commit group) run here on a suspended connection, so that
     * libmicrohttpd's threads keep serving reads and many writes can share
     * one commit. Its threads start when requests need them (up to
     * maxworkers), not at start-up: a thread costs ~0.3 ms to create on
     * the VMs we run on, and 32 of them were a third of start-up. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hub_http_req *qhead, *qtail;
    bool stopping;
    pthread_t *workers;
    int nworkers, maxworkers, nidle, nqueued; /* under mu */
};

struct hub_http_req {
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    char *query; /* the raw query string after '?', or NULL */
    hub_buf body;
    bool started; /* the first call of the access handler has happened */
    const route *rt;      /* a request on the blocking pool: its route */
    hub_http_resp *done;  /* ... and, once run, its response */
    bool finished;        /* the pool is done with it */
    hub_http_req *qnext;
    bool too_large;
    char peer[64];
    const struct conn_tls *tls; /* its connection's client certificate */
};

/* A connection's client certificate, verified at its first request (a
 * verification is public-key work; keep-alive requests reuse it). */
typedef struct conn_tls {
    int state;         /* 0 not yet, 1 verified, -1 refused */
    char subject[160];
} conn_tls;

hub_status hub_http_server_new(const hub_http_cfg *c, hub_http_server **out,
                               hub_err *err) {
    hub_http_server *s = hub_calloc(1, sizeof *s);
    if (s == NULL) return hub_err_set(err, HUB_E_NOMEM, "http", "out of memory");
    s->cfg = *c;
    snprintf(s->host, sizeof s->host, "%s", c->host ? c->host : "0.0.0.0");
    s->cfg.host = s->host;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    *out = s;
    return HUB_OK;
}

static hub_status add_route(hub_http_server *s, const char *method,
                            const char *path, bool oversize, bool blocking,
                            hub_http_handler fn, void *ud) {
    if (s->nroutes >= MAX_ROUTES) return HUB_E_LIMIT;
    route *r = &s->routes[s->nroutes++];
    snprintf(r->method, sizeof r->method, "%s", method ? method : "");
    size_t n = strlen(path);
    r->prefix = n > 0 && (path[n - 1] == '/' || path[n - 1] == '*');
    if (n > 0 && path[n - 1] == '*') n--;
    snprintf(r->path, sizeof r->path, "%.*s", (int)n, path);
    r->oversize = oversize;
    r->blocking = blocking;
    r->fn = fn;
    r->ud = ud;
    return HUB_OK;
}

hub_status hub_http_route(hub_http_server *s, const char *method,
                          const char *path, hub_http_handler fn, void *ud) {
    return add_route(s, method, path, false, false, fn, ud);
}

hub_status hub_http_route_raw(hub_http_server *s, const char *method,
                              const char *path, hub_http_handler fn, void *ud) {
    return add_route(s, method, path, true, true, fn, ud);
}

const char *hub_http_req_method(const hub_http_req *r) { return r->method; }
const char *hub_http_req_path(const hub_http_req *r) { return r->path; }
const char *hub_http_req_query(const hub_http_req *r, const char *key) {
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}
const char *hub_http_req_header(const hub_http_req *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}
const char *hub_http_req_query_string(const hub_http_req *r) {
    return r->query ? r->query : "";
}
bool hub_http_req_too_large(const hub_http_req *r) { return r->too_large; }
bool hub_http_req_tls(const hub_http_req *r) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_PROTOCOL);
    return ci != NULL && ci->protocol != 0;
}
hub_slice hub_http_req_body(const hub_http_req *r) {
    return (hub_slice){r->body.p ? r->body.p : "", r->body.n};
}
/* Decimal digits of v at p; returns the end. */
static char *put_uint(char *p, unsigned v) {
    char d[10];
    int n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = d[--n];
    return p;
}

/* "a.b.c.d:port" of an IPv4 peer without printf or inet_ntop: every
 * audited request names its peer, and the two showed as a tenth of a
 * read's instructions. IPv6 peers take the library's way. */
static void format_peer(const struct sockaddr *sa, char out[64]) {
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        const unsigned char *a = (const unsigned char *)&in->sin_addr;
        char *p = out;
        for (int i = 0; i < 4; i++) {
            p = put_uint(p, a[i]);
            *p++ = i < 3 ? '.' : ':';
        }
        *put_uint(p, ntohs(in->sin_port)) = '\0';
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        char ip[INET6_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(out, 64, "%s:%d", ip, ntohs(in6->sin6_port));
    }
}

/* The peer's address is formatted on first use only: most requests never
 * ask for it. */
const char *hub_http_req_peer(const hub_http_req *cr) {
    hub_http_req *r = (hub_http_req *)cr;
    if (r->peer[0]) return r->peer;
    r->peer[0] = '?';
    r->peer[1] = '\0';
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) format_peer(ci->client_addr, r->peer);
    return r->peer;
}

const char *hub_http_req_tls_subject(const hub_http_req *r) {
    return r->tls && r->tls->state == 1 ? r->tls->subject : NULL;
}

void hub_http_resp_header(hub_http_resp *resp, const char *name,
                          const char *value) {
    if (resp->nheaders >= HUB_HTTP_MAX_HEADERS) return;
    char(*h)[256] = resp->headers[resp->nheaders];
    size_t n = strnlen(name, 255), v = strnlen(value, 255);
    memcpy(h[0], name, n);
    h[0][n] = '\0';
    memcpy(h[1], value, v);
    h[1][v] = '\0';
    resp->nheaders++;
}

void hub_http_resp_set(hub_http_resp *resp, int status, const char *ctype,
                       const char *body, size_t n) {
    resp->status = status;
    snprintf(resp->content_type, sizeof resp->content_type, "%s", ctype);
    resp->body.n = 0;
    if (hub_buf_append(&resp->body, body, n) != HUB_OK) resp->status = 500;
}

void hub_http_resp_error(hub_http_resp *resp, int status, const char *msg) {
    resp->status = status;
    snprintf(resp->content_type, sizeof resp->content_type, "application/json");
    resp->body.n = 0;
    hub_buf_append_cstr(&resp->body, "{\"error\":\"");
    for (const char *p = msg; *p; p++) {
        if (*p == '"' || *p == '\\') hub_buf_append(&resp->body, "\\", 1);
        if ((unsigned char)*p >= 0x20) hub_buf_append(&resp->body, p, 1);
    }
    hub_buf_append_cstr(&resp->body, "\"}\n");
}

static const route *find_route(hub_http_server *s, const char *method,
                               const char *path, bool *method_mismatch) {
    *method_mismatch = false;
    for (int i = 0; i < s->nroutes; i++) {
        const route *r = &s->routes[i];
        bool match = r->prefix ? strncmp(path, r->path, strlen(r->path)) == 0
                               : strcmp(path, r->path) == 0;
        if (!match) continue;
        if (r->method[0] && strcmp(r->method, method) != 0) {
            *method_mismatch = true;
            continue;
        }
        return r;
    }
    return NULL;
}

static enum MHD_Result queue(struct MHD_Connection *conn, hub_http_resp *resp) {
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback(
        resp->body.n, resp->body.p, hub_free);
    if (r == NULL) {
        hub_buf_release(&resp->body);
        return MHD_NO;
    }
    resp->body.p = NULL; /* now the response's */
    if (resp->content_type[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                resp->content_type);
    for (int i = 0; i < resp->nheaders; i++)
        MHD_add_response_header(r, resp->headers[i][0], resp->headers[i][1]);
    enum MHD_Result ret =
        MHD_queue_response(conn, (unsigned)(resp->status ? resp->status : 500), r);
    MHD_destroy_response(r);
    return ret;
}

static void *worker_main(void *arg);

/* The peer's certificate chain checked against the client CAs (and for
 * the TLS client purpose when it names purposes); its subject in t. */
static const char *verify_peer(struct MHD_Connection *conn, conn_tls *t) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci == NULL || ci->tls_session == NULL) return "not a TLS connection";
    gnutls_session_t ss = (gnutls_session_t)ci->tls_session;
    unsigned n = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(ss, &n);
    if (chain == NULL || n == 0) return "no client certificate";
    gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
                                     .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT};
    unsigned status = 0;
    if (gnutls_certificate_verify_peers(ss, &purpose, 1, &status) < 0 || status != 0)
        return status & GNUTLS_CERT_EXPIRED ? "client certificate expired"
               : status & GNUTLS_CERT_SIGNER_NOT_FOUND ? "client certificate from an unknown CA"
                                                       : "client certificate not valid";
    gnutls_x509_crt_t crt;
    gnutls_datum_t dn = {NULL, 0};
    if (gnutls_x509_crt_init(&crt) < 0) return "out of memory";
    if (gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) == 0 &&
        gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0)
        snprintf(t->subject, sizeof t->subject, "%.*s", (int)dn.size, (const char *)dn.data);
    gnutls_free(dn.data);
    gnutls_x509_crt_deinit(crt);
    return t->subject[0] ? NULL : "client certificate without a subject";
}

/* Verifies the connection's client certificate once; false when it is
 * refused (told to the refusal hook the first time). */
static bool cert_ok(hub_http_server *s, struct MHD_Connection *conn, hub_http_req *req) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_tls *t = ci ? ci->socket_context : NULL;
    if (t == NULL) return false; /* no state: out of memory at accept */
    req->tls = t;
    if (t->state == 0) {
        const char *why = verify_peer(conn, t);
        t->state = why ? -1 : 1;
        if (why) {
            HUB_LOG_WARN("http", "refused peer=%s reason='%s'", hub_http_req_peer(req), why);
            if (s->cfg.on_cert_refused)
                s->cfg.on_cert_refused(s->cfg.on_cert_refused_ud, hub_http_req_peer(req), why);
        }
    }
    return t->state == 1;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    (void)cls;
    (void)conn;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = hub_calloc(1, sizeof(conn_tls));
    } else {
        hub_free(*socket_context);
        *socket_context = NULL;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    hub_http_server *s = cls;
    hub_http_req *req = *con_cls;
    if (req == NULL) return MHD_NO; /* the URI callback could not allocate */
    if (!req->started) {
        req->started = true;
        req->conn = conn;
        if (s->client_ca && !cert_ok(s, conn, req)) {
            hub_http_resp resp = {.status = 0};
            hub_buf_init(&resp.body);
            hub_http_resp_error(&resp, 401,
                                "a client certificate from a trusted authority is required");
            hub_http_resp_header(&resp, "Connection", "close");
            return queue(conn, &resp);
        }
        /* A declared length over the limit is refused before any byte of
         * the body is read into memory. */
        const char *cl = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoll(cl, NULL, 10) > s->cfg.max_body) req->too_large = true;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!req->too_large &&
            (int64_t)(req->body.n + *upload_size) > s->cfg.max_body)
            req->too_large = true;
        if (!req->too_large &&
            hub_buf_append(&req->body, upload, *upload_size) != HUB_OK)
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->done) { /* back from the blocking pool */
        enum MHD_Result ret = queue(conn, req->done);
        hub_free(req->done);
        req->done = NULL;
        return ret;
    }
    if (req->finished) return MHD_NO; /* the pool could not allocate */
    if (req->rt) return MHD_YES;      /* still running there */
    req->conn = conn;
    req->method = method;
    req->path = url;
    bool mismatch;
    const route *r = find_route(s, method, url, &mismatch);
    if (r && r->blocking && s->maxworkers > 0 && strcmp(method, "GET") != 0 &&
        strcmp(method, "HEAD") != 0) {
        pthread_mutex_lock(&s->mu);
        bool ok = !s->stopping;
        /* No idle worker left for this one (or none yet): one more, while
         * under the cap. */
        if (ok && s->nqueued >= s->nidle && s->nworkers < s->maxworkers &&
            pthread_create(&s->workers[s->nworkers], NULL, worker_main, s) == 0)
            s->nworkers++;
        ok = ok && s->nworkers > 0;
        if (ok) {
            req->rt = r;
            MHD_suspend_connection(conn);
            if (s->qtail) s->qtail->qnext = req;
            else s->qhead = req;
            s->qtail = req;
            s->nqueued++;
            pthread_cond_signal(&s->cv);
        }
        pthread_mutex_unlock(&s->mu);
        if (ok) return MHD_YES;
    }
    /* Only the scalars are cleared: the header table is 8 KiB, and clearing
     * it on every request showed in profiles of the read path. */
    hub_http_resp resp;
    resp.status = 0;
    resp.content_type[0] = '\0';
    resp.nheaders = 0;
    hub_buf_init(&resp.body);
    if (req->too_large && (r == NULL || !r->oversize))
        hub_http_resp_error(&resp, 413, "request body over the limit");
    else if (r)
        r->fn(r->ud, req, &resp);
    else if (mismatch)
        hub_http_resp_error(&resp, 405, "method not allowed");
    else
        hub_http_resp_error(&resp, 404, "not found");
    return queue(conn, &resp);
}

static void *worker_main(void *arg) {
    hub_http_server *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->qhead == NULL && !s->stopping) {
            s->nidle++;
            pthread_cond_wait(&s->cv, &s->mu);
            s->nidle--;
        }
        hub_http_req *req = s->qhead;
        if (req == NULL) break; /* stopping, and nothing left */
        s->qhead = req->qnext;
        s->nqueued--;
        if (s->qhead == NULL) s->qtail = NULL;
        req->qnext = NULL;
        pthread_mutex_unlock(&s->mu);
        hub_http_resp *resp = hub_calloc(1, sizeof *resp);
        if (resp) {
            hub_buf_init(&resp->body);
            req->rt->fn(req->rt->ud, req, resp);
        }
        /* On allocation failure the connection is closed on resume. */
        req->done = resp;
        req->finished = true;
        MHD_resume_connection(req->conn);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    hub_http_req *req = *con_cls;
    if (req) {
        if (req->done) {
            hub_buf_release(&req->done->body);
            hub_free(req->done);
        }
        hub_buf_release(&req->body);
        hub_free(req->query);
        hub_free(req);
        *con_cls = NULL;
    }
}

/* Called once per request before anything else, with the URI as sent: the
 * request's state starts here so that the raw query string (which
 * conditional FHIR interactions pass on as criteria) is kept. What it
 * returns is the request's *con_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    (void)cls;
    (void)conn;
    hub_http_req *req = hub_calloc(1, sizeof *req);
    if (req == NULL) return NULL;
    hub_buf_init(&req->body);
    const char *q = strchr(uri, '?');
    if (q && q[1] && (req->query = hub_strdup(q + 1)) == NULL) {
        hub_free(req);
        return NULL;
    }
    return req;
}

/* libmicrohttpd hands us its own format strings. */
__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    HUB_LOG_DEBUG("http", "mhd='%s'", msg);
}

/* TLS 1.2 and 1.3 only, in GnuTLS's priority syntax (libmicrohttpd's TLS
 * is GnuTLS). */
static const char TLS_PRIORITIES[] =
    "SECURE:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:"
    "+AES-128-GCM:+CHACHA20-POLY1305:%SAFE_RENEGOTIATION";

hub_status hub_http_server_start(hub_http_server *s, hub_err *err) {
    bool tls = s->cfg.tls_cert && *s->cfg.tls_cert;
    if (tls) {
        size_t n;
        hub_status rc = hub_file_read(s->cfg.tls_cert, 1 << 20, &s->cert, &n, err);
        if (!rc) rc = hub_file_read(s->cfg.tls_key, 1 << 20, &s->key, &n, err);
        if (rc)
            return hub_err_set(err, rc, "http.tls", "cannot read certificate or key: %s",
                               err->msg);
        if (s->cfg.tls_client_ca && *s->cfg.tls_client_ca &&
            (rc = hub_file_read(s->cfg.tls_client_ca, 1 << 20, &s->client_ca, &n, err)))
            return hub_err_set(err, rc, "http.tls_client_ca", "cannot read the client CAs: %s",
                               err->msg);
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)s->cfg.port);
    if (inet_pton(AF_INET, s->host, &addr.sin_addr) != 1)
        return hub_err_set(err, HUB_E_CONFIG, "http.host",
                           "'%s' is not an IPv4 address", s->host);
    /* The blocking pool's threads start on demand (on_request); its size is
     * set before libmicrohttpd's threads can read it. */
    int nw = s->cfg.blocking_threads > 0 ? s->cfg.blocking_threads : 0;
    if (nw > 0 && s->workers == NULL &&
        (s->workers = hub_calloc((size_t)nw, sizeof *s->workers)) == NULL)
        nw = 0;
    s->maxworkers = nw;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                     MHD_USE_ERROR_LOG | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME |
                     (tls ? MHD_USE_TLS : 0);
    s->d = MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, on_request, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(s->cfg.threads > 0 ? s->cfg.threads : 1),
        MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(s->cfg.max_connections > 0 ? s->cfg.max_connections : 1024),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)(s->cfg.max_per_ip > 0 ? s->cfg.max_per_ip : 0),
        /* Each connection's memory (request line, headers, the read
         * buffer, the response's header) is a pool that libmicrohttpd
         * zeroes after every request: at its default of 32 KiB, zeroing
         * it and its read buffer cost a twentieth of a read's CPU. 16 KiB
         * still takes a request line and headers of 8 KiB (more is a 431
         * or 414, as with most servers); bodies stream through it. */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
        MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(s->cfg.timeout_s > 0 ? s->cfg.timeout_s : 60),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_NOTIFY_CONNECTION, s->client_ca ? on_connection : NULL, s,
        tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, s->cert,
        MHD_OPTION_HTTPS_MEM_KEY, s->key,
        MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES,
        /* With client CAs libmicrohttpd asks for a client certificate and
         * gives GnuTLS the CAs to verify it with; cert_ok() refuses a
         * connection that sent none or one that does not verify. */
        s->client_ca ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, s->client_ca,
        MHD_OPTION_END);
    if (s->d == NULL)
        return hub_err_set(err, HUB_E_IO, "http",
                           tls ? "cannot listen on %s:%d (port in use, or the "
                                 "certificate and key do not load?)"
                               : "cannot listen on %s:%d (port in use?)",
                           s->host, s->cfg.port);
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->cfg.port;
    return HUB_OK;
}

int hub_http_server_port(const hub_http_server *s) { return s->port; }

void hub_http_server_free(hub_http_server *s) {
    if (s == NULL) return;
    /* The pool finishes what it holds (resuming those connections) before
     * the daemon stops: libmicrohttpd must not stop with a suspended one. */
    if (s->maxworkers > 0) {
        /* No worker starts once stopping is set. */
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        int nw = s->nworkers;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < nw; i++) pthread_join(s->workers[i], NULL);
    }
    hub_free(s->workers);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    if (s->d) MHD_stop_daemon(s->d);
    hub_free(s->cert);
    hub_free(s->key);
    hub_free(s->client_ca);
    hub_free(s);
}
