/* route: what goes to a subscriber. Notification Bundles (type history,
 * led by a SubscriptionStatus: the Backport IG's R4 Parameters shape),
 * written as text straight into the body with the stored resources'
 * JSON copied in as it is (no parse, no re-encode). */
#include "internal.h"

#include <string.h>

hub_status hub__json_str(hub_buf *b, const char *s) {
    if (hub_buf_append(b, "\"", 1)) return HUB_E_NOMEM;
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        if (hub_buf_append(b, run, (size_t)(s - run))) return HUB_E_NOMEM;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            if (hub_buf_append(b, e, 2)) return HUB_E_NOMEM;
        } else if (hub_buf_printf(b, "\\u%04x", c)) {
            return HUB_E_NOMEM;
        }
        run = s + 1;
    }
    if (hub_buf_append(b, run, (size_t)(s - run))) return HUB_E_NOMEM;
    return hub_buf_append(b, "\"", 1) ? HUB_E_NOMEM : HUB_OK;
}

/* "<base>/" or "" */
static hub_status ref_prefix(hub_buf *b, const char *base) {
    if (!base || !*base) return HUB_OK;
    if (hub_buf_append_cstr(b, base)) return HUB_E_NOMEM;
    size_t n = strlen(base);
    return base[n - 1] == '/' ? HUB_OK : hub_buf_append(b, "/", 1) ? HUB_E_NOMEM : HUB_OK;
}

static hub_status param_str(hub_buf *b, const char *name, const char *vkey, const char *v) {
    if (hub_buf_printf(b, ",{\"name\":\"%s\",\"%s\":", name, vkey)) return HUB_E_NOMEM;
    if (hub__json_str(b, v)) return HUB_E_NOMEM;
    return hub_buf_append(b, "}", 1) ? HUB_E_NOMEM : HUB_OK;
}

hub_status hub__status_params(hub_buf *b, const char *base, const hub__status_info *si,
                              const hub_route_event *evs, size_t nev) {
    char uuid[37], ts[32], n[32];
    hub_uuid(uuid);
    if (hub_buf_printf(b,
                       "{\"resourceType\":\"Parameters\",\"id\":\"%s\",\"meta\":{\"profile\":[\""
                       HUB_BACKPORT "backport-subscription-status-r4\"]},\"parameter\":["
                       "{\"name\":\"subscription\",\"valueReference\":{\"reference\":\"",
                       uuid))
        return HUB_E_NOMEM;
    if (ref_prefix(b, base) || hub_buf_append_cstr(b, "Subscription/") ||
        hub_buf_append_cstr(b, si->sub_id) || hub_buf_append(b, "\"}}", 3))
        return HUB_E_NOMEM;
    if (si->topic && param_str(b, "topic", "valueCanonical", si->topic)) return HUB_E_NOMEM;
    if (param_str(b, "status", "valueCode", si->status) ||
        param_str(b, "type", "valueCode", si->type))
        return HUB_E_NOMEM;
    snprintf(n, sizeof n, "%lld", (long long)si->events_since_start);
    if (param_str(b, "events-since-subscription-start", "valueString", n)) return HUB_E_NOMEM;
    for (size_t i = 0; i < nev; i++) {
        const hub_route_event *e = &evs[i];
        hub_time_iso(e->created_ms, ts);
        if (hub_buf_printf(b,
                           ",{\"name\":\"notification-event\",\"part\":["
                           "{\"name\":\"event-number\",\"valueString\":\"%lld\"},"
                           "{\"name\":\"timestamp\",\"valueInstant\":\"%s\"}",
                           (long long)e->seq, ts))
            return HUB_E_NOMEM;
        if (e->type) {
            if (hub_buf_append_cstr(b, ",{\"name\":\"focus\",\"valueReference\":{\"reference\":\"") ||
                ref_prefix(b, base) ||
                hub_buf_printf(b, "%s/%s/_history/%lld\"}}", e->type, e->id,
                               (long long)e->version))
                return HUB_E_NOMEM;
        }
        if (hub_buf_append(b, "]}", 2)) return HUB_E_NOMEM;
    }
    if (si->error && *si->error) {
        if (hub_buf_append_cstr(b, ",{\"name\":\"error\",\"valueCodeableConcept\":{\"text\":") ||
            hub__json_str(b, si->error) || hub_buf_append(b, "}}", 2))
            return HUB_E_NOMEM;
    }
    return hub_buf_append(b, "]}", 2) ? HUB_E_NOMEM : HUB_OK;
}

hub_status hub__bundle_begin(hub_buf *b, const char *base, const hub__status_info *si,
                             const hub_route_event *evs, size_t nev) {
    char uuid[37], ts[32], u2[37];
    hub_uuid(uuid);
    hub_uuid(u2);
    hub_time_iso(hub_now_ms(), ts);
    if (hub_buf_printf(b,
                       "{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"type\":\"history\","
                       "\"timestamp\":\"%s\",\"entry\":[{\"fullUrl\":\"urn:uuid:%s\",\"resource\":",
                       uuid, ts, u2))
        return HUB_E_NOMEM;
    if (hub__status_params(b, base, si, evs, nev)) return HUB_E_NOMEM;
    if (hub_buf_append_cstr(b, ",\"request\":{\"method\":\"GET\",\"url\":\"") ||
        hub_buf_printf(b, "Subscription/%s/$status\"},\"response\":{\"status\":\"200\"}}",
                       si->sub_id))
        return HUB_E_NOMEM;
    return HUB_OK;
}

typedef struct {
    hub_buf *b;
} resctx;

static hub_status put_json(void *ud, const hub_store_version *v) {
    resctx *c = ud;
    return hub_buf_append(c->b, v->json, v->json_len) ? HUB_E_NOMEM : HUB_OK;
}

hub_status hub__bundle_entry(hub_route *r, hub_buf *b, const char *base,
                             const hub_route_event *ev, hub_rpay payload) {
    if (payload == HUB_RPAY_EMPTY) return HUB_OK;
    if (hub_buf_append_cstr(b, ",{\"fullUrl\":\"") || ref_prefix(b, base) ||
        hub_buf_printf(b, "%s/%s\"", ev->type, ev->id))
        return HUB_E_NOMEM;
    if (payload == HUB_RPAY_FULL && !ev->deleted) {
        if (hub_buf_append_cstr(b, ",\"resource\":")) return HUB_E_NOMEM;
        size_t mark = b->n;
        resctx c = {b};
        hub_err err;
        hub_status rc = hub_store_res_read(r->store, ev->type, ev->id, ev->version, put_json, &c,
                                           &err);
        if (rc == HUB_E_NOMEM) return rc;
        if (rc) {
            /* The version is gone (a purge): say so instead of a resource. */
            b->n = mark - strlen(",\"resource\":");
        }
    }
    const char *method = ev->deleted ? "DELETE" : ev->version == 1 ? "POST" : "PUT";
    if (hub_buf_printf(b, ",\"request\":{\"method\":\"%s\",\"url\":\"%s/%s\"},"
                          "\"response\":{\"status\":\"%s\"}}",
                       method, ev->type, ev->id,
                       ev->deleted ? "204" : ev->version == 1 ? "201" : "200"))
        return HUB_E_NOMEM;
    return HUB_OK;
}

hub_status hub__bundle_end(hub_buf *b) {
    return hub_buf_append(b, "]}", 2) ? HUB_E_NOMEM : HUB_OK;
}
