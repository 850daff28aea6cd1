/* auth: who may do what, and the record of what they did.
 *
 *  - SMART Backend Services: registered clients (a JWKS of public keys, the
 *    scopes they may ask for, optionally the one patient they are bound to),
 *    POST /auth/token (client_credentials with a client_assertion JWT signed
 *    RS384 or ES384, verified with OpenSSL), short-lived access tokens of
 *    our own format (HMAC-SHA256 over a compact payload: verified without a
 *    store read), /fhir/.well-known/smart-configuration.
 *  - Scopes: SMART v1 (system/Observation.read, .write, .*) and v2
 *    (system/Observation.rs, system/ *.cruds) in the patient/, user/ and
 *    system/ contexts, and `admin` (the audit trail).
 *  - Audit: an AuditEvent row for every read, search, write, delete, token
 *    request, MLLP message and notification; writes in the same
 *    transaction as the change (a record listener), reads queued and
 *    written in batches by a writer job, the reads and searches of one
 *    party alike but for their ids grouped into one row per batch; /fhir/AuditEvent maps the table
 *    onto FHIR; every row also goes out as an RFC 5424 syslog line.
 *  - Limits: request rate per client (token bucket; 429 + Retry-After).
 *
 * Threads: everything here may be called from any thread unless noted. */
#ifndef HUB_AUTH_H
#define HUB_AUTH_H

#include "hub/core.h"
#include "hub/store.h"

struct hub_record;
struct hub_http_server;
struct json_t;

/* ---- base64url and JWT (sans-I/O: bytes in, results out) ------------------ */

/* Decodes unpadded base64url (padding tolerated). HUB_E_PARSE on a bad
 * character or length; `out` needs (n * 3) / 4 + 3 bytes. */
hub_status hub_b64url_decode(const char *in, size_t n, unsigned char *out, size_t *outn);
/* Encodes without padding; `out` needs (n + 2) / 3 * 4 + 1 bytes (NUL added). */
size_t hub_b64url_encode(const unsigned char *in, size_t n, char *out);

typedef enum { HUB_JWT_RS384, HUB_JWT_ES384, HUB_JWT_OTHER } hub_jwt_alg;

/* A compact JWS taken apart. The strings are heap copies (release). */
typedef struct {
    hub_jwt_alg alg;
    char kid[128];
    struct json_t *payload;      /* the claims (owned) */
    unsigned char *sig;          /* decoded signature (heap) */
    size_t sig_len;
    const char *signing_input;   /* header.payload, borrowed from the input */
    size_t signing_len;
} hub_jwt;

#define HUB_MAX_JWT 8192  /* bytes of one client assertion */

/* Parses header.payload.signature: header JSON with "alg" (RS384/ES384;
 * anything else is HUB_JWT_OTHER) and optional "kid", payload a JSON
 * object. HUB_E_PARSE (err.msg says which part, never its content),
 * HUB_E_LIMIT over HUB_MAX_JWT. */
hub_status hub_jwt_parse(const char *s, size_t n, hub_jwt *out, hub_err *err);
void hub_jwt_release(hub_jwt *j);

/* Verifies j's signature with the JWKS (a JSON text with "keys"): the key
 * with j's kid (or, without a kid, each key of the alg's type) must
 * verify. RSA keys need kty RSA with n and e (2048 bits at least); EC
 * keys kty EC, crv P-384, x and y. HUB_OK, HUB_E_INVALID (no key verifies),
 * HUB_E_PARSE (a malformed JWKS). */
hub_status hub_jwt_verify(const hub_jwt *j, const char *jwks, size_t jwks_len, hub_err *err);

/* Checks a JWKS given at registration: every key a usable public RSA
 * (2048+ bits) or EC P-384 key, no private key material. *nkeys counts
 * them. HUB_E_PARSE / HUB_E_INVALID naming the key's position. */
hub_status hub_jwks_check(const char *jwks, size_t n, size_t *nkeys, hub_err *err);

/* ---- scopes ------------------------------------------------------------- */

enum {
    HUB_PERM_C = 1, HUB_PERM_R = 2, HUB_PERM_U = 4, HUB_PERM_D = 8, HUB_PERM_S = 16,
    HUB_PERM_ALL = 31
};

#define HUB_MAX_SCOPES 32

typedef struct {
    char ctx;         /* 'p' patient/, 'u' user/, 's' system/ */
    char type[64];    /* resource type or "*" */
    unsigned perms;   /* HUB_PERM_* */
    bool v1;          /* asked as .read/.write/.* (granted back the same way) */
} hub_scope;

typedef struct {
    size_t n;
    hub_scope s[HUB_MAX_SCOPES];
    bool admin;       /* the `admin` scope: the audit trail */
} hub_scopes;

/* Parses a space-separated scope string. Unknown forms (openid, launch,
 * fhirUser, online_access...) are skipped; `strict` makes them an error
 * instead. HUB_E_PARSE naming the scope's position, HUB_E_LIMIT over
 * HUB_MAX_SCOPES. */
hub_status hub_scopes_parse(const char *text, bool strict, hub_scopes *out, hub_err *err);
/* True when one of the scopes grants every bit of `perms` on `type`. */
bool hub_scopes_allow(const hub_scopes *s, const char *type, unsigned perms);
/* The requested scopes that `allowed` covers (each requested scope's
 * permissions reduced to those granted), as text in out (cap bytes).
 * Returns the number of scopes granted. */
size_t hub_scopes_grant(const hub_scopes *requested, const hub_scopes *allowed,
                        hub_scopes *granted, char *out, size_t cap);

/* ---- clients (the store) ---------------------------------------------- */

typedef struct {
    const char *name;     /* the client_id, also the JWT's iss and sub */
    const char *jwks;     /* JSON text */
    const char *scope;    /* space-separated scopes it may be granted */
    const char *patient;  /* bound patient id, or NULL / "" */
    /* The subject DN (RFC 4514, as the hub prints it) of the TLS client
     * certificate the client's requests must come with, or NULL / "":
     * its token requests and its tokens are refused over a connection
     * without that certificate (sender-constrained, RFC 8705's idea). */
    const char *cert_subject;
    bool revoked;
    int64_t created_ms;
} hub_auth_client;

/* Writer side (in a job): inserts or replaces a client (un-revoking it). */
hub_status hub_auth_client_put_tx(hub_store_tx *tx, const hub_auth_client *c, hub_err *err);
/* Writer side: marks a client revoked; HUB_E_NOTFOUND when no such one. */
hub_status hub_auth_client_revoke_tx(hub_store_tx *tx, const char *name, hub_err *err);
/* Writer side: records a used jti (kept until exp_ms); HUB_E_DUP when the
 * client used it before. Drops expired ones. */
hub_status hub_auth_jti_use_tx(hub_store_tx *tx, const char *client, const char *jti,
                               int64_t exp_ms, hub_err *err);
/* Reader side: one client (strings valid during the call). HUB_E_NOTFOUND. */
typedef hub_status (*hub_auth_client_fn)(void *ud, const hub_auth_client *c);
hub_status hub_auth_client_get(hub_store *s, const char *name, hub_auth_client_fn fn, void *ud,
                               hub_err *err);
/* Reader side: every client, by name. */
hub_status hub_auth_client_list(hub_store *s, hub_auth_client_fn fn, void *ud, hub_err *err);
/* The token-signing key (32 bytes) kept in the store, made on first use,
 * so tokens survive a restart and work on every node of one store. */
hub_status hub_auth_key_get(hub_store *s, unsigned char key[32], hub_err *err);

/* ---- audit -------------------------------------------------------------- */

typedef enum {
    HUB_AUDIT_READ,      /* read, vread, history: rest / read */
    HUB_AUDIT_SEARCH,    /* search, operations that query */
    HUB_AUDIT_CREATE,
    HUB_AUDIT_UPDATE,    /* update, patch */
    HUB_AUDIT_DELETE,
    HUB_AUDIT_TOKEN,     /* a token request, granted or refused */
    HUB_AUDIT_MLLP,      /* an HL7 v2 message received (or rejected) */
    HUB_AUDIT_NOTIFY,    /* a notification delivered (or failed) */
    HUB_AUDIT_LOGIN_FAIL /* a request refused for no or a bad token */
} hub_audit_kind;

/* One event. Strings borrowed for the call; any may be NULL. Never the
 * contents of a resource or message: type and id only. */
typedef struct {
    hub_audit_kind kind;
    int outcome;             /* 0 success, 4 minor failure (4xx), 8 serious
                                (5xx), 12 major (refused for security) */
    int64_t at_ms;           /* 0: now */
    const char *client;      /* OAuth client id */
    const char *subject;     /* TLS subject or channel sender identity */
    const char *peer;        /* "ip:port" */
    const char *channel;     /* MLLP channel, "http", a subscription id */
    const char *sender;      /* MSH-3^MSH-4 */
    const char *entity_type; /* resource type, "Message" for v2 */
    const char *entity_id;   /* resource id, or journal row, or NULL */
    const char *query;       /* a search's parameter names (no values) */
    const char *detail;      /* short text: why refused, HTTP status... */
} hub_audit_event;

typedef struct hub_audit hub_audit;

typedef struct {
    hub_store *store;
    /* Syslog destination: "udp://host:port", "tcp://host:port" or ""
     * (none). Rows are sent after they commit, in order. */
    const char *syslog;
    const char *app_name;     /* RFC 5424 APP-NAME, default "hub" */
    int flush_ms;             /* read-audit batch interval, default 200 */
    int queue_max;            /* queued read events before they are written
                                 at once / dropped-and-counted, default 65536 */
} hub_audit_cfg;

hub_status hub_audit_new(const hub_audit_cfg *c, hub_audit **out, hub_err *err);
/* Registers the record listener: every version written gets its audit row
 * in the same transaction (actor from the change). */
hub_status hub_audit_listen(hub_audit *a, struct hub_record *r, hub_err *err);
/* Queues an event; written by the next batch (reads, searches, refused
 * requests, tokens, notifications). Never blocks on the store. */
void hub_audit_record(hub_audit *a, const hub_audit_event *ev);
/* A connection refused before any request or message (a TLS client
 * certificate that does not verify, an MLLP peer not on its channel's
 * allow-list): queued like other refusals, as a login failure (outcome
 * 12) with the channel, the peer and why (a few words, never contents). */
void hub_audit_refused(hub_audit *a, const char *channel, const char *peer, const char *why);
/* Writer side: writes an event in tx now (MLLP messages with their journal
 * row, the router's deliveries with their outbox update). */
hub_status hub_audit_record_tx(hub_audit *a, hub_store_tx *tx, const hub_audit_event *ev,
                               hub_err *err);
/* Writes everything queued and waits for the commit (tests, shutdown). */
void hub_audit_flush(hub_audit *a);
/* Stops the flusher (writing what is queued) and frees. NULL is a no-op.
 * Before the store closes. */
void hub_audit_free(hub_audit *a);
/* Events queued but dropped because the queue was full (counted). */
int64_t hub_audit_dropped(const hub_audit *a);

/* Store side of the audit trail. */
hub_status hub_audit_insert_tx(hub_store_tx *tx, const hub_audit_event *ev, hub_err *err);
/* One row for `count` events alike but for their time and entity id (reads
 * or searches of one party over one batch): ev->at_ms the first one's
 * time, last_ms the last one's, `entities` the ids as "id" or "id*N" (N
 * reads of it) separated by spaces, or NULL (searches). count 1 is a plain
 * row. */
hub_status hub_audit_insert_group_tx(hub_store_tx *tx, const hub_audit_event *ev,
                                     int64_t last_ms, int64_t count, const char *entities,
                                     hub_err *err);
typedef struct {
    int64_t id;
    hub_audit_event ev;   /* strings valid during the callback */
    int64_t count;        /* events the row stands for (1, or a group's) */
    int64_t last_ms;      /* a group's last event, else 0 */
    const char *entities; /* a group's ids ("id" / "id*N", spaces), or NULL */
} hub_audit_row;
typedef hub_status (*hub_audit_row_fn)(void *ud, const hub_audit_row *row);
typedef struct {
    bool oldest_first;     /* rows with id > after_id, oldest first; or */
    int64_t after_id;
    int64_t before_id;     /* rows with id < before_id (newest first); 0 = newest */
    int64_t id;            /* one row (> 0) */
    int64_t since_ms, until_ms; /* 0: no bound */
    const char *client;    /* exact, or NULL */
    const char *entity_type;
    const char *entity_id;
    int kind;              /* -1 any */
    int limit;             /* 1..1000 */
} hub_audit_filter;
hub_status hub_audit_list(hub_store *s, const hub_audit_filter *f, hub_audit_row_fn fn,
                          void *ud, int64_t *total, hub_err *err);
/* The AuditEvent resource of a row (new reference). */
struct json_t *hub_audit_to_fhir(const hub_audit_row *row);
/* One RFC 5424 line in out (the IHE ATNA shape: facility authpriv,
 * severity notice or warning by outcome, MSGID "AuditEvent", structured
 * data [hub@32473 ...] with kind, outcome, client and entity, and the
 * FHIR AuditEvent JSON as MSG); `host` the HOSTNAME field. */
hub_status hub_audit_syslog_line(const hub_audit_row *row, const char *host,
                                 const char *app, hub_buf *out);

/* ---- the token service ------------------------------------------------- */

typedef struct hub_auth hub_auth;

typedef struct {
    hub_store *store;
    hub_audit *audit;           /* may be NULL */
    const char *token_url;      /* the aud client assertions must carry;
                                   "" derives it from the Host header */
    int token_ttl_s;            /* access token lifetime, default 300 */
    int assertion_max_s;        /* the longest exp - now accepted, 300 */
    double rate;                /* requests per second per client (0: no
                                   limit) */
    int burst;                  /* bucket size */
} hub_auth_cfg;

/* What a verified access token says. */
typedef struct {
    char client[128];
    char patient[72];           /* "" unless patient-restricted */
    char cert_subject[160];     /* "" unless the client is bound to one */
    int64_t exp_ms;
    hub_scopes scopes;
} hub_auth_token;

hub_status hub_auth_new(const hub_auth_cfg *c, hub_auth **out, hub_err *err);
void hub_auth_free(hub_auth *a);
hub_audit *hub_auth_audit(hub_auth *a);

/* Adds POST /auth/token and GET /fhir/.well-known/smart-configuration
 * (before the FHIR routes). `fhir_base` "" derives it from the Host. */
hub_status hub_auth_add_routes(hub_auth *a, struct hub_http_server *s, hub_err *err);

/* An access token (the part after "Bearer ") checked: signature, expiry,
 * and that its client is not revoked (looked up at most once per second
 * per client). HUB_OK and *out filled; HUB_E_INVALID (bad, expired or
 * revoked; err.msg says which). Cheap: per-thread cache of the last
 * token. */
hub_status hub_auth_check(hub_auth *a, const char *token, hub_auth_token *out, hub_err *err);
/* Makes an access token for a client (the token endpoint, tests). */
hub_status hub_auth_issue(hub_auth *a, const char *client, const char *patient,
                          const char *scope, int64_t exp_ms, char *out, size_t cap,
                          hub_err *err);
/* Rate limit: true when `key` (client id or peer address) may make one
 * more request now; else *retry_after_s is when to try again. */
bool hub_auth_rate_ok(hub_auth *a, const char *key, int *retry_after_s);

#endif
