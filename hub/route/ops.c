/* route: $status and $events on Subscription (Backport IG), so a
 * subscriber finds out what it missed and replays it. */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "hub/http.h"

#define MAX_EVENTS 1000

static void fail(hub_fhir_op_result *out, int status, const char *code, const char *expr,
                 const char *msg) {
    out->status = status;
    out->outcome = hub_oo_new();
    if (out->outcome) hub_oo_add(out->outcome, HUB_OO_ERROR, code, expr, "%s", msg);
}

typedef struct {
    char status[16];
    char error[160];
    int64_t events, delivered;
    bool found;
} stctx;

static hub_status got_state(void *ud, const hub_route_state *st) {
    stctx *c = ud;
    snprintf(c->status, sizeof c->status, "%s", st->status);
    snprintf(c->error, sizeof c->error, "%s", st->error);
    c->events = st->events;
    c->delivered = st->delivered;
    c->found = true;
    return HUB_OK;
}

/* A parameter: from the query (GET) or a Parameters body (POST). */
static const char *param(const hub_fhir_op_call *call, const char *name, char buf[64]) {
    if (!call->post) return hub_http_req_query(call->req, name);
    const json_t *ps = json_object_get(call->body, "parameter");
    size_t i;
    const json_t *p;
    json_array_foreach(ps, i, p) {
        const char *n = json_string_value(json_object_get(p, "name"));
        if (!n || strcmp(n, name) != 0) continue;
        const char *keys[] = {"valueString", "valueCode", "valueInteger64", "valueInteger",
                              "valueUnsignedInt", "valuePositiveInt"};
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
            const json_t *v = json_object_get(p, keys[k]);
            if (json_is_string(v)) return json_string_value(v);
            if (json_is_integer(v)) {
                snprintf(buf, 64, "%lld", (long long)json_integer_value(v));
                return buf;
            }
        }
        return "";
    }
    return NULL;
}

static bool num_param(const char *s, int64_t *out) {
    if (!s) return true;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < 0) return false;
    *out = v;
    return true;
}

/* Loads the state and the registry's view; false (out set) when none. */
static bool lookup(hub_route *r, const hub_fhir_op_call *call, stctx *st, char topic[256],
                   hub_rpay *payload, hub_fhir_op_result *out) {
    memset(st, 0, sizeof *st);
    hub_err err;
    if (!call->id) {
        fail(out, 400, "required", NULL, "$status and $events need a Subscription id");
        return false;
    }
    hub_status rc = hub_route_store_get(r->store, call->id, got_state, st, &err);
    if (rc == HUB_E_NOTFOUND || (rc == HUB_OK && !st->found)) {
        fail(out, 404, "not-found", NULL, "no Subscription with that id");
        return false;
    }
    if (rc) {
        fail(out, 500, "exception", NULL, "the store failed");
        return false;
    }
    topic[0] = '\0';
    *payload = HUB_RPAY_FULL;
    pthread_mutex_lock(&r->lock);
    hub__rsub *s = hub__reg_get(r, call->id);
    if (s) {
        if (s->d.topic) snprintf(topic, 256, "%s", s->d.topic);
        *payload = s->d.payload == HUB_RPAY_V2 ? HUB_RPAY_ID : s->d.payload;
    }
    pthread_mutex_unlock(&r->lock);
    return true;
}

static void send_text(hub_buf *b, hub_fhir_op_result *out) {
    json_error_t je;
    out->body = json_loadb(b->p, b->n, 0, &je);
    if (!out->body) fail(out, 500, "exception", NULL, "the response could not be built");
}

static void op_status(void *ud, const hub_fhir_op_call *call, hub_fhir_op_result *out) {
    hub_route *r = ud;
    stctx st;
    char topic[256];
    hub_rpay pay;
    if (!lookup(r, call, &st, topic, &pay, out)) return;
    hub__status_info si = {.sub_id = call->id,
                           .status = st.status,
                           .topic = topic[0] ? topic : NULL,
                           .type = "query-status",
                           .events_since_start = st.events,
                           .error = st.error};
    hub_buf b;
    hub_buf_init(&b);
    if (hub__bundle_begin(&b, r->cfg.base_url ? r->cfg.base_url : call->base, &si, NULL, 0) ||
        hub__bundle_end(&b))
        fail(out, 500, "exception", NULL, "out of memory");
    else
        send_text(&b, out);
    hub_buf_release(&b);
}

typedef struct {
    hub_route_event *v;
    size_t n;
    hub_arena *a;
} evlist;

static hub_status got_event(void *ud, const hub_route_event *ev) {
    evlist *l = ud;
    hub_route_event *e = &l->v[l->n++];
    *e = *ev;
    e->sub = NULL;
    e->type = hub_arena_strndup(l->a, ev->type, strlen(ev->type));
    e->id = hub_arena_strndup(l->a, ev->id, strlen(ev->id));
    return e->type && e->id ? HUB_OK : HUB_E_NOMEM;
}

static void op_events(void *ud, const hub_fhir_op_call *call, hub_fhir_op_result *out) {
    hub_route *r = ud;
    stctx st;
    char topic[256], b1[64], b2[64], b3[64];
    hub_rpay pay;
    if (!lookup(r, call, &st, topic, &pay, out)) return;
    int64_t from = 1, to = st.events;
    if (!num_param(param(call, "eventsSinceNumber", b1), &from)) {
        fail(out, 400, "value", "eventsSinceNumber", "eventsSinceNumber must be a number");
        return;
    }
    if (!num_param(param(call, "eventsUntilNumber", b2), &to)) {
        fail(out, 400, "value", "eventsUntilNumber", "eventsUntilNumber must be a number");
        return;
    }
    const char *content = param(call, "content", b3);
    if (content) {
        if (strcmp(content, "empty") == 0) pay = HUB_RPAY_EMPTY;
        else if (strcmp(content, "id-only") == 0) pay = HUB_RPAY_ID;
        else if (strcmp(content, "full-resource") == 0) pay = HUB_RPAY_FULL;
        else {
            fail(out, 400, "value", "content", "content must be empty, id-only or full-resource");
            return;
        }
    }
    /* Delivered events older than the retention are pruned: a range that
     * reaches before what is kept is refused, not answered short. */
    int64_t first = 0;
    hub_err ferr;
    if (hub_route_store_first(r->store, call->id, &first, &ferr) != HUB_OK) {
        fail(out, 500, "exception", NULL, "the store failed");
        return;
    }
    if (first == 0) first = st.events + 1; /* none kept */
    if (!param(call, "eventsSinceNumber", b1) && from < first) from = first;
    if (from < 1) from = 1;
    if (to > st.events) to = st.events;
    if (from < first && to >= from) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "events before %lld were pruned (delivered events are kept "
                 "route.retention_days = %d days): ask from eventsSinceNumber %lld",
                 (long long)first, r->cfg.retention_days, (long long)first);
        fail(out, 410, "deleted", "eventsSinceNumber", msg);
        return;
    }
    if (to >= from && to - from + 1 > MAX_EVENTS) {
        fail(out, 400, "too-costly", "eventsUntilNumber",
             "at most 1000 events per request: page with eventsSinceNumber");
        return;
    }
    hub_arena a;
    hub_arena_init(&a, 4096);
    evlist l = {NULL, 0, &a};
    hub_err err;
    hub_buf b;
    hub_buf_init(&b);
    size_t cap = to >= from ? (size_t)(to - from + 1) : 0;
    l.v = cap ? hub_arena_alloc(&a, cap * sizeof *l.v) : NULL;
    if ((cap && !l.v) ||
        (cap && hub_route_store_events(r->store, call->id, from, to, got_event, &l, &err))) {
        fail(out, 500, "exception", NULL, "the store failed");
        goto done;
    }
    const char *base = r->cfg.base_url ? r->cfg.base_url : call->base;
    hub__status_info si = {.sub_id = call->id,
                           .status = st.status,
                           .topic = topic[0] ? topic : NULL,
                           .type = "query-event",
                           .events_since_start = st.events,
                           .error = st.error};
    /* without a payload the events are named, not their focus */
    if (pay == HUB_RPAY_EMPTY)
        for (size_t i = 0; i < l.n; i++) l.v[i].type = NULL;
    hub_status rc = hub__bundle_begin(&b, base, &si, l.v, l.n);
    if (pay != HUB_RPAY_EMPTY)
        for (size_t i = 0; !rc && i < l.n; i++) rc = hub__bundle_entry(r, &b, base, &l.v[i], pay);
    if (!rc) rc = hub__bundle_end(&b);
    if (rc) fail(out, 500, "exception", NULL, "out of memory");
    else send_text(&b, out);
done:
    hub_buf_release(&b);
    hub_arena_release(&a);
}

typedef struct {
    char secret[160];
    bool found;
} secctx;

static hub_status got_secret(void *ud, const hub_route_state *st) {
    secctx *c = ud;
    snprintf(c->secret, sizeof c->secret, "%s", st->secret ? st->secret : "");
    c->found = true;
    return HUB_OK;
}

/* The HMAC secret of a subscription, for its owner (who may read the
 * Subscription: the auth module's scopes decide who that is). */
static void op_secret(void *ud, const hub_fhir_op_call *call, hub_fhir_op_result *out) {
    hub_route *r = ud;
    secctx c = {.found = false};
    hub_err err;
    if (!call->id) {
        fail(out, 400, "required", NULL, "$secret needs a Subscription id");
        return;
    }
    hub_status rc = hub_route_store_get(r->store, call->id, got_secret, &c, &err);
    if (rc == HUB_E_NOTFOUND || (rc == HUB_OK && !c.found)) {
        fail(out, 404, "not-found", NULL, "no Subscription with that id");
        return;
    }
    if (rc) {
        fail(out, 500, "exception", NULL, "the store failed");
        return;
    }
    out->body = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}]}", "resourceType", "Parameters",
                          "parameter", "name", "secret", "valueString", c.secret, "name",
                          "header", "valueString", "X-Hub-Signature-256");
    if (!out->body) fail(out, 500, "exception", NULL, "out of memory");
}

hub_status hub_route_add_ops(hub_route *r, hub_http_fhir *f, hub_err *err) {
    if (hub_http_fhir_add_op(f, "Subscription", "secret", HUB_OP_INSTANCE, false, NULL, op_secret,
                             r))
        return hub_err_set(err, HUB_E_LIMIT, "route", "cannot register $secret");
    if (hub_http_fhir_add_op(f, "Subscription", "status", HUB_OP_INSTANCE, false,
                             "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
                             "backport-subscription-status",
                             op_status, r) ||
        hub_http_fhir_add_op(f, "Subscription", "events", HUB_OP_INSTANCE, false,
                             "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
                             "backport-subscription-events",
                             op_events, r))
        return hub_err_set(err, HUB_E_LIMIT, "route", "cannot register $status/$events");
    return HUB_OK;
}
