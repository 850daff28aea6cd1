/* http: libmicrohttpd glue. Routes requests by method and path prefix to
 * handlers; the FHIR REST API, the dashboard's API, /healthz and /metrics
 * are all routes. Handlers run on libmicrohttpd's worker threads. */
#ifndef HUB_HTTP_H
#define HUB_HTTP_H

#include "hub/core.h"

typedef struct hub_http_server hub_http_server;
typedef struct hub_http_req hub_http_req;

typedef struct {
    const char *host; /* bind address */
    int port;         /* 0 picks a free one */
    int threads;
    /* Most threads of the blocking pool that runs the non-GET requests of
     * hub_http_route_raw routes (FHIR writes wait for their commit there),
     * started as requests need them; 0 runs them on libmicrohttpd's
     * threads. */
    int blocking_threads;
    int max_connections;
    int64_t max_body;
    int timeout_s; /* idle connection timeout */
    int max_per_ip; /* concurrent connections per client address; 0 none */
    const char *tls_cert; /* PEM chain; HTTPS when set (with tls_key) */
    const char *tls_key;
    /* PEM CAs: with HTTPS, every connection must present a client
     * certificate that chains to one of them (verified once, at its first
     * request); a connection without one gets 401 to every request. */
    const char *tls_client_ca;
    /* Called (from libmicrohttpd's threads) once per connection refused
     * for its client certificate: peer "ip:port", why in a few words (no
     * certificate contents). May be NULL. */
    void (*on_cert_refused)(void *ud, const char *peer, const char *why);
    void *on_cert_refused_ud;
} hub_http_cfg;

#define HUB_HTTP_MAX_HEADERS 16

/* What a handler fills. `body` is owned by the response and freed after
 * it is sent. Header names and values are copied. */
typedef struct {
    int status;
    char content_type[96];
    hub_buf body;
    int nheaders;
    char headers[HUB_HTTP_MAX_HEADERS][2][256];
} hub_http_resp;

typedef void (*hub_http_handler)(void *ud, const hub_http_req *req,
                                 hub_http_resp *resp);

/* Creation, then routes, then start. */
hub_status hub_http_server_new(const hub_http_cfg *c, hub_http_server **out,
                               hub_err *err);
/* `method` NULL matches any. `path` matches exactly, or as a prefix when it
 * ends in '/' or '*' (the '*' is not part of the prefix). Routes are tried
 * in the order added. */
hub_status hub_http_route(hub_http_server *s, const char *method,
                          const char *path, hub_http_handler fn, void *ud);
/* Like hub_http_route, but the handler also gets requests whose body went
 * over http.max_body (hub_http_req_too_large is then true and the body is
 * empty), so it can answer 413 in its own format; and its requests other
 * than GET and HEAD run on the blocking pool (the handler may wait). */
hub_status hub_http_route_raw(hub_http_server *s, const char *method,
                              const char *path, hub_http_handler fn, void *ud);
hub_status hub_http_server_start(hub_http_server *s, hub_err *err);
int hub_http_server_port(const hub_http_server *s);
/* Stops accepting, finishes requests in flight, frees. NULL is a no-op. */
void hub_http_server_free(hub_http_server *s);

/* Request accessors; strings are borrowed until the handler returns. */
const char *hub_http_req_method(const hub_http_req *r);
const char *hub_http_req_path(const hub_http_req *r);
/* A query parameter's (first) value, or NULL. */
const char *hub_http_req_query(const hub_http_req *r, const char *key);
const char *hub_http_req_header(const hub_http_req *r, const char *name);
/* The query string as sent (still percent-encoded), without the '?'; ""
 * when there is none. */
const char *hub_http_req_query_string(const hub_http_req *r);
bool hub_http_req_too_large(const hub_http_req *r);
/* True when the request came over HTTPS. */
bool hub_http_req_tls(const hub_http_req *r);
hub_slice hub_http_req_body(const hub_http_req *r);
/* The peer address "ip:port". */
const char *hub_http_req_peer(const hub_http_req *r);
/* The subject DN (RFC 4514) of the verified client certificate, or NULL
 * when the server asks for none. */
const char *hub_http_req_tls_subject(const hub_http_req *r);

void hub_http_resp_header(hub_http_resp *resp, const char *name,
                          const char *value);
/* Sets status, content type and a copy of `body`. */
void hub_http_resp_set(hub_http_resp *resp, int status, const char *ctype,
                       const char *body, size_t n);
/* Sets a JSON error body {"error": msg} with the status. */
void hub_http_resp_error(hub_http_resp *resp, int status, const char *msg);

/* ---- operations routes ------------------------------------------------- */

struct hub_store;
typedef struct {
    struct hub_store *store;
    int64_t started_ms;
    const char *store_path;
    /* Extra fields for /healthz, e.g. the bound ports; may be NULL. */
    int mllp_port;
    int http_port;
    /* The FHIR base path ("/fhir") and version, or NULL when FHIR is off. */
    const char *fhir_base;
    const char *fhir_version;
    /* With enforce, /api/messages needs a token with the admin scope. */
    struct hub_auth *auth;
    bool enforce;
} hub_http_ops;

/* Adds GET /healthz, GET /metrics, GET /api/messages, GET
 * /api/messages/<id>. `ops` is borrowed for the server's life. */
hub_status hub_http_add_ops_routes(hub_http_server *s, hub_http_ops *ops);

/* ---- the FHIR REST API ------------------------------------------------- */

struct hub_record;
struct hub_fhir_defs;
typedef struct hub_http_fhir hub_http_fhir;

typedef struct {
    struct hub_record *record;
    const struct hub_fhir_defs *defs;
    /* Absolute base for Location headers and Bundle links, e.g.
     * "https://hub.example.org/fhir"; "" derives it from the Host header. */
    const char *base_url;
    int max_bundle_entries; /* stated in the CapabilityStatement */
    /* Security (hub/auth.h); all may be 0/NULL. With `enforce`, every
     * request but /metadata needs a Bearer token of `auth` whose scopes
     * allow the interaction (401 / 403 otherwise). `audit` gets an event
     * for every read, search and refused request (writes are audited by
     * its record listener); `auth` also limits the request rate. */
    struct hub_auth *auth;
    bool enforce;
    struct hub_audit *audit;
    int max_search_params;  /* a search with more is a 400; 0: 64 */
    int max_includes;       /* _include + _revinclude; 0: 16 */
    int max_count;          /* a larger _count is a 400; 0: 1000 */
} hub_http_fhir_cfg;

/* Adds the FHIR R4 REST API under /fhir (read, vread, create, update,
 * patch, delete, their conditional forms, history, batch/transaction,
 * capabilities). The CapabilityStatement is built from the tables on the
 * first /metadata (or hub_http_fhir_capabilities call). `*out`
 * lives until hub_http_fhir_free, which is called after the server is
 * freed. */
hub_status hub_http_add_fhir_routes(hub_http_server *s,
                                    const hub_http_fhir_cfg *c,
                                    hub_http_fhir **out, hub_err *err);
void hub_http_fhir_free(hub_http_fhir *f);
/* ---- FHIR operations ($name) --------------------------------------------------
 *
 * Modules add their operations ($match, $merge, $everything, $status,
 * $events...) here; the FHIR layer routes [base]/$op, [base]/Type/$op and
 * [base]/Type/id/$op, parses a POST body (JSON or XML, a Parameters or any
 * resource), encodes the result in the negotiated format, and lists the
 * operations in the CapabilityStatement. */
typedef struct {
    const char *name;        /* without the '$' */
    const char *type;        /* the URL's resource type; NULL at system level */
    const char *id;          /* instance level; else NULL */
    bool post;               /* POST (else GET: parameters in the query) */
    const struct json_t *body; /* POST: the parsed body, NULL when empty */
    const hub_http_req *req; /* query parameters, headers, peer */
    const char *base;        /* this request's absolute FHIR base */
} hub_fhir_op_call;

typedef struct {
    int status;              /* 200 unless set */
    struct json_t *body;     /* the response resource (owned; sent in the
                                client's format), or NULL */
    struct hub_oo *outcome;  /* an error instead (owned): sent with status
                                (a 4xx/5xx) */
    char location[256];      /* a Location header, or "" */
} hub_fhir_op_result;

typedef void (*hub_fhir_op_fn)(void *ud, const hub_fhir_op_call *call,
                               hub_fhir_op_result *out);

enum { HUB_OP_SYSTEM = 1, HUB_OP_TYPE = 2, HUB_OP_INSTANCE = 4 };

/* Registers $name for `type` (NULL: any type; a system-level operation
 * needs levels HUB_OP_SYSTEM) at the given levels. `definition` is the
 * OperationDefinition's canonical URL for the CapabilityStatement (may
 * be NULL). GET is refused (405) when `affects_state`. Before the server
 * starts. HUB_E_LIMIT beyond 32 operations. */
hub_status hub_http_fhir_add_op(hub_http_fhir *f, const char *type, const char *name,
                                unsigned levels, bool affects_state,
                                const char *definition, hub_fhir_op_fn fn, void *ud);

/* The CapabilityStatement served at /fhir/metadata (compact JSON; built
 * on the first call; NULL when out of memory). */
const char *hub_http_fhir_capabilities(hub_http_fhir *f);

#endif
