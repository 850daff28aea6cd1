/* route internals shared by route.c (registry, matching), sub.c (checking
 * Subscriptions), deliver.c (workers) and ops.c ($status, $events). */
#ifndef HUB_ROUTE_INTERNAL_H
#define HUB_ROUTE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "hub/fhir.h"
#include "hub/record.h"
#include "hub/route.h"

/* One resource type a subscription watches, with its query. A topic may
 * watch several types (CarePlan, Goal, CareTeam). */
typedef enum {
    HUB__LEG_PLAIN, /* criteria: every version that matches */
    HUB__LEG_ENTER, /* topic: created matching, or updated from not matching */
    HUB__LEG_ANY,   /* topic: created or updated, matching */
    HUB__LEG_UPDATE /* topic: updated (not created), matching before and after */
} hub__leg_mode;

/* Care coordination: a leg of an attributed subscription fires for the
 * patients whose general practitioner (GP) or care team member (TEAM) the
 * subscriber is. */
enum { HUB__ATTR_GP = 1, HUB__ATTR_TEAM = 2 };

typedef struct {
    const char *type;
    hub_store_query *q;
    hub_store_query *dq; /* a delete fires the leg when the resource's last
                            version matched this; NULL: deletes do not */
    hub__leg_mode mode;
    unsigned attr;
} hub__leg;

typedef struct hub__rsub {
    char id[72];
    hub_arena a;           /* everything below */
    hub_route_sub_def d;
    const char *secret;    /* never NULL once registered */
    hub__leg legs[6];
    size_t nlegs;
    const char *attributed; /* "Organization/1": care coordination, or NULL */
    uint64_t seen;         /* matching: the change it was last checked for */
    int64_t last_sent_ms;  /* delivery thread: heartbeat */
} hub__rsub;

/* A string-keyed table of subscription lists (the match index). */
typedef struct {
    char *key;
    hub__rsub **v;
    size_t n, cap;
} hub__slot;
typedef struct {
    hub__slot *slots;
    size_t cap, used;
} hub__index;

typedef struct hub__deliver hub__deliver;
typedef struct hub__pruner hub__pruner;

struct hub_route {
    hub_route_cfg cfg;
    hub_record *rec;
    hub_store *store;
    const hub_fhir_defs *defs;
    const hub_fhir_sps *sps;
    hub_actor self;        /* the actor of the route's own writes */
    hub_actor care;        /* care-coordination Subscriptions it writes */
    pthread_mutex_t lock;  /* the registry */
    hub__index ix;         /* "type\x1fparam\x1fvalue", "type\x1f" (scan) */
    hub__index byid;       /* id -> its one subscription */
    size_t nsubs;
    size_t nattributed;    /* care-coordination subscriptions */
    uint64_t stamp;
    /* waking the workers after a commit */
    bool wake_queued;      /* writer thread only */
    hub_store_job wake_job;
    char (*touched)[72];   /* subscriptions given work by this commit group */
    size_t ntouched, touched_cap;
    hub__deliver *dl;
    hub__pruner *pruner;
    char *strs;            /* copies of cfg strings */
};

/* A hub topic: what fires it, per resource type. */
typedef struct {
    const char *type;
    hub__leg_mode mode;
    const char *current;    /* the query the version must match, or NULL */
    unsigned attr;          /* care coordination: GP and/or TEAM */
    const char *deleted;    /* a delete fires it when the last version
                               matched this ("" any); NULL: deletes do not */
} hub__topic_leg;
typedef struct {
    const char *code;       /* after HUB_ROUTE_TOPIC_BASE */
    const char *title;
    size_t nlegs;
    hub__topic_leg legs[6];
    bool attributed;        /* needs the attributed=Type/id filter */
} hub__topic;

const hub__topic *hub__topic_find(const char *canonical);
const hub__topic *hub__topics(size_t *n);
/* A generic topic filter name on `type` into its search parameter. */
const char *hub__topic_param(const char *type, const char *name);

/* Parses and compiles a Subscription (sub.c): the definition, its legs.
 * HUB_E_INVALID with err (where, msg) for a bad one. */
hub_status hub__rsub_build(hub_route *r, const char *id, const char *json, size_t n,
                           hub__rsub **out, hub_err *err);
void hub__rsub_free(hub__rsub *s);

/* Registry (route.c); with r->lock held. */
hub__rsub *hub__reg_get(hub_route *r, const char *id);

/* A copy of what delivery needs of a subscription (deliver.c asks route.c
 * under the lock). */
typedef struct {
    char id[72];
    hub_rchan chan;
    hub_rpay payload;
    bool tls;
    int port;
    int heartbeat_s;
    char host[256];
    char *endpoint, *secret, *topic;
    char **headers;
    size_t nheaders;
} hub__subcfg;
bool hub__reg_copy(hub_route *r, const char *id, hub__subcfg *out);
void hub__subcfg_release(hub__subcfg *c);

/* Writes the Subscription's status (and error text) on tx as the route
 * itself; keeps the rest of the stored resource. */
hub_status hub__sub_set_status(hub_route *r, hub_store_tx *tx, const char *id,
                               const char *status, const char *error, hub_err *err);

/* prune.c: the retention thread (none when retention_days < 0). */
hub_status hub__prune_start(hub_route *r, hub_err *err);
void hub__prune_stop(hub_route *r);

/* deliver.c */
hub_status hub__deliver_start(hub_route *r, hub_err *err);
void hub__deliver_stop(hub_route *r);
void hub__deliver_wake(hub_route *r);
/* After a commit: these subscriptions have new work (writer thread). */
void hub__deliver_ready(hub_route *r, char (*ids)[72], size_t n);

/* Notification Bundles (deliver.c, ops.c). `type` is the SubscriptionStatus
 * type: handshake, heartbeat, event-notification, query-status,
 * query-event. Events' resources per payload. */
typedef struct {
    const char *sub_id;
    const char *status;
    const char *topic;
    const char *type;
    int64_t events_since_start;
    const char *error;
} hub__status_info;
hub_status hub__bundle_begin(hub_buf *b, const char *base, const hub__status_info *si,
                             const hub_route_event *evs, size_t nev);
hub_status hub__bundle_entry(hub_route *r, hub_buf *b, const char *base,
                             const hub_route_event *ev, hub_rpay payload);
hub_status hub__bundle_end(hub_buf *b);
hub_status hub__json_str(hub_buf *b, const char *s);
/* The SubscriptionStatus (Parameters) as JSON text. */
hub_status hub__status_params(hub_buf *b, const char *base, const hub__status_info *si,
                              const hub_route_event *evs, size_t nev);

#endif
