/* route: subscriptions, topics, the outbox and the delivery workers.
 *
 * Subscriptions are FHIR R4 Subscription resources written through the
 * record (REST or a Bundle). A change listener sees each one, checks it
 * (criteria, channel, endpoint: a bad one is refused with a 400 and an
 * OperationOutcome) and keeps it in an in-memory registry indexed by
 * resource type and filter value. Every other version written is matched
 * against the registry in the writer's transaction and an outbox row is
 * written per matching subscription, numbered per subscription
 * (eventsSinceSubscriptionStart), so a change and its notifications commit
 * together. Delivery workers send the outbox in order per subscription,
 * at least once: rest-hook with libcurl (signed with HMAC-SHA256 in
 * X-Hub-Signature-256) and MLLP with the outbound client.
 *
 * Lifecycle: requested (or active written by the client) -> handshake ->
 * active; failures past route.max_failures -> error, events kept and still
 * numbered; a client writing status requested again resumes where delivery
 * stopped; off stops matching. */
#ifndef HUB_ROUTE_H
#define HUB_ROUTE_H

#include "hub/core.h"
#include "hub/store.h"

struct hub_record;
struct hub_http_fhir;

/* The extension carrying a subscription's HMAC secret: the subscriber may
 * give one; else the hub generates one, kept with the delivery state (the
 * resource is not changed), which the owner reads with
 * Subscription/<id>/$secret. */
#define HUB_ROUTE_EXT_SECRET "http://hl7hub.org/fhir/StructureDefinition/subscription-secret"
/* Backport IG extensions the hub reads on Subscription. */
#define HUB_BACKPORT "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
/* The hub's own SubscriptionTopics. */
#define HUB_ROUTE_TOPIC_BASE "http://hl7hub.org/fhir/SubscriptionTopic/"

typedef struct hub_route hub_route;

typedef struct {
    struct hub_record *record;
    bool allow_http;       /* http:// rest-hooks (tests, local use) */
    int max_failures;      /* consecutive failures before error; <=0: 10 */
    int retry_min_ms;      /* first retry delay; <=0: 500 */
    int retry_max_ms;      /* largest delay; <=0: 300000 */
    int timeout_ms;        /* one delivery; <=0: 10000 */
    const char *ca_file;   /* CAs for rest-hook TLS; NULL: the system's */
    const char *client_cert; /* client certificate for rest-hooks, or NULL */
    const char *client_key;
    const char *base_url;  /* absolute FHIR base in notifications; NULL:
                              "urn:hub" style relative references */
    struct hub_audit *audit; /* every delivery attempt is audited (in the
                                transaction that records it); may be NULL */
    bool no_delivery;      /* match and number events only, deliver nothing
                              (hub replay: the next hub serve delivers what
                              the durable outbox holds); no pruning either */
    int retention_days;    /* a delivered event is pruned once older than
                              this (undelivered ones never are); 0: at the
                              next pass; <0: never */
    int prune_interval_ms; /* the pruning pass; <=0: 60000 */
} hub_route_cfg;

/* Registers the change listener, loads the subscriptions the store has
 * and starts the delivery workers (which resume where delivery stopped).
 * At start-up, before the record takes writes. */
hub_status hub_route_open(const hub_route_cfg *c, hub_route **out, hub_err *err);
/* Adds $status, $events and $secret (Subscription, instance level). */
hub_status hub_route_add_ops(hub_route *r, struct hub_http_fhir *f, hub_err *err);
/* Stops the workers (deliveries in flight are finished or left pending:
 * nothing is lost) and frees. Before the store closes. NULL is a no-op. */
void hub_route_close(hub_route *r);

/* Subscriptions in the registry (for tests and metrics). */
size_t hub_route_count(hub_route *r);

/* ---- checking a Subscription (sans-I/O; also the fuzz target's entry) ---- */

/* A parsed Subscription. Strings and the query live in `a`. */
typedef enum { HUB_RSUB_REQUESTED, HUB_RSUB_ACTIVE, HUB_RSUB_ERROR, HUB_RSUB_OFF } hub_rsub_status;
typedef enum { HUB_RCHAN_REST, HUB_RCHAN_MLLP } hub_rchan;
typedef enum { HUB_RPAY_EMPTY, HUB_RPAY_ID, HUB_RPAY_FULL, HUB_RPAY_V2 } hub_rpay;

typedef struct {
    hub_rsub_status status;
    hub_rchan chan;
    hub_rpay payload;
    const char *criteria;    /* as written */
    const char *type;        /* the resource type matched */
    const char *query;       /* the query part (may be "") */
    const char *topic;       /* canonical of a topic subscription, or NULL */
    const char **filters;    /* topic filters ("patient=Patient/1"), ANDed */
    size_t nfilters;
    const char *endpoint;
    const char *secret;      /* NULL when none given */
    const char **headers;    /* "Name: value" */
    size_t nheaders;
    int heartbeat_s;         /* 0: none */
    bool tls;                /* https / mllps */
    char host[256];          /* MLLP */
    int port;
} hub_route_sub_def;

/* Checks a Subscription resource (JSON) into *d. HUB_OK, or HUB_E_INVALID
 * with err->where naming the element (Subscription.criteria,
 * Subscription.channel.type, Subscription.channel.endpoint, ...) and
 * err->msg saying why (never a value). Does not parse the criteria's query
 * (the record does: hub_record_criteria); HUB_E_NOMEM. */
hub_status hub_route_sub_parse(const char *json, size_t n, bool allow_http, hub_arena *a,
                               hub_route_sub_def *d, hub_err *err);

/* ---- the route's tables (hub/store/route.c) ------------------------------ */

/* A subscription's delivery state. Strings borrowed from the store (valid
 * during the callback). */
typedef struct {
    const char *id;
    const char *status;   /* requested active error off */
    int64_t events;       /* events numbered so far */
    int64_t delivered;    /* highest event delivered (in order) */
    int failures;         /* consecutive failures */
    int64_t next_ms;      /* not before (backoff) */
    const char *secret;
    const char *error;    /* last failure, or "" */
} hub_route_state;

typedef struct {
    const char *sub;
    int64_t seq;          /* event number */
    const char *type;
    const char *id;
    int64_t version;
    int64_t message_id;   /* the v2 message behind the change, 0 */
    int64_t created_ms;
    bool deleted;
} hub_route_event;

/* Writer side. Creates the state row if missing (secret kept if present);
 * sets status and, when not NULL, secret; resets failures and next_ms. */
hub_status hub_route_store_sub(hub_store_tx *tx, const char *id, const char *status,
                               const char *secret, hub_err *err);
/* Writer side: the subscription's secret into out ("" when none);
 * HUB_E_NOTFOUND without a state row. */
hub_status hub_route_store_secret(hub_store_tx *tx, const char *id, char out[160], hub_err *err);
/* Writer side: the next event number of `sub` and its outbox row. */
hub_status hub_route_store_event(hub_store_tx *tx, const hub_route_event *ev,
                                 int64_t *seq, hub_err *err);
/* Writer side: one delivery attempt of event `seq` (0: the handshake or a
 * heartbeat). ok: the event is delivered (delivered = seq), failures reset;
 * else failures + 1 and next_ms; *new_status gets "error" when failures
 * reached max_failures (else the status unchanged). */
hub_status hub_route_store_attempt(hub_store_tx *tx, const char *sub, int64_t seq,
                                   bool ok, int http_status, double latency_ms,
                                   const char *error, int max_failures, int64_t next_ms,
                                   char new_status[16], hub_err *err);
/* Reader side: one subscription's state; HUB_E_NOTFOUND when none. */
typedef hub_status (*hub_route_state_fn)(void *ud, const hub_route_state *st);
hub_status hub_route_store_get(hub_store *s, const char *id, hub_route_state_fn fn,
                               void *ud, hub_err *err);
/* Reader side: every subscription with work due at now_ms (requested, or
 * active with undelivered events), and (all) every state row. */
hub_status hub_route_store_due(hub_store *s, int64_t now_ms, bool all,
                               hub_route_state_fn fn, void *ud, hub_err *err);
/* Reader side: events [from, to] of sub, in order. */
typedef hub_status (*hub_route_event_fn)(void *ud, const hub_route_event *ev);
hub_status hub_route_store_events(hub_store *s, const char *sub, int64_t from, int64_t to,
                                  hub_route_event_fn fn, void *ud, hub_err *err);
/* Writer side, pruning (small batches, so the writer is never held
 * long). Subscriptions after `after` (by id, "" from the first), at most
 * 64 of them: of each, the oldest events that are delivered and created
 * before cutoff_ms are deleted, oldest first, so what stays is always one
 * run [first, events]; at most max_rows rows in all. *next gets the
 * `after` of the next call, *end whether the pass is over; *pruned the
 * rows deleted. */
hub_status hub_route_store_prune_events(hub_store_tx *tx, const char *after, int64_t cutoff_ms,
                                        int max_rows, char next[72], bool *end,
                                        int64_t *pruned, hub_err *err);
/* Writer side: attempts after id `after` (oldest first, at most limit
 * looked at) made before cutoff_ms whose event is delivered (or a
 * handshake or heartbeat, or of a subscription without state) are
 * deleted; *next gets the id to go on after (it stops at the first attempt
 * not old enough), *pruned the rows deleted. */
hub_status hub_route_store_prune_attempts(hub_store_tx *tx, int64_t after, int64_t cutoff_ms,
                                          int limit, int64_t *next, int64_t *pruned,
                                          hub_err *err);
/* Reader side: the first event of sub the outbox still holds (events
 * before it were pruned); *first = 0 when it holds none. */
hub_status hub_route_store_first(hub_store *s, const char *sub, int64_t *first, hub_err *err);
/* Reader side: attempts recorded for sub (newest first, at most limit). */
typedef struct {
    int64_t seq, at_ms;
    int status;
    double latency_ms;
    const char *error;
} hub_route_attempt;
typedef hub_status (*hub_route_attempt_fn)(void *ud, const hub_route_attempt *at);
hub_status hub_route_store_attempts(hub_store *s, const char *sub, int limit,
                                    hub_route_attempt_fn fn, void *ud, hub_err *err);

#endif
