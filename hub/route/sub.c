/* route: checking a Subscription, the hub's topics, compiling criteria. */
#include "internal.h"

#include <ctype.h>
#include <jansson.h>
#include <string.h>

/* ---- topics ------------------------------------------------------------------ */

/* Each leg: the type, when it fires (mode), the query the new version
 * must match, the care-coordination attribution, and whether a delete
 * fires it: NULL no, else the query the deleted resource's last version
 * must match ("" any). Deletes fire where the subscriber holds something
 * a delete takes away (Backport IG: resourceTrigger supportedInteraction
 * delete): a care plan, goal or care team removed; an appointment not yet
 * cancelled is cancelled by its delete; an active medication is stopped
 * by it; a result is withdrawn. Encounters do not: an encounter ends with
 * a status (finished), and deleting one corrects the record (entered in
 * error) rather than starting, ending or moving anyone. Booked, changed
 * and started are not said by a delete either. */
#define APPT_OPEN "status=proposed,pending,booked,arrived,checked-in,waitlist"
#define RESULT_ST "status=preliminary,final,amended,corrected"
static const hub__topic TOPICS[] = {
    {"encounter-start", "Encounter started (admission, ED visit)", 1,
     {{"Encounter", HUB__LEG_ENTER, "status=in-progress", 0, NULL}}, false},
    {"encounter-end", "Encounter ended (discharge)", 1,
     {{"Encounter", HUB__LEG_ENTER, "status=finished", 0, NULL}}, false},
    {"encounter-transfer", "Encounter changed while in progress (transfer)", 1,
     {{"Encounter", HUB__LEG_UPDATE, "status=in-progress", 0, NULL}}, false},
    {"result", "New, corrected or withdrawn result", 2,
     {{"Observation", HUB__LEG_ANY, RESULT_ST, 0, RESULT_ST},
      {"DiagnosticReport", HUB__LEG_ANY, RESULT_ST, 0, RESULT_ST}},
     false},
    {"care-plan", "Care plan, goal or care team created, changed or removed", 3,
     {{"CarePlan", HUB__LEG_ANY, NULL, 0, ""},
      {"Goal", HUB__LEG_ANY, NULL, 0, ""},
      {"CareTeam", HUB__LEG_ANY, NULL, 0, ""}},
     false},
    {"appointment-booked", "Appointment booked", 1,
     {{"Appointment", HUB__LEG_ENTER, "status=booked", 0, NULL}}, false},
    {"appointment-changed", "Appointment changed", 1,
     {{"Appointment", HUB__LEG_UPDATE, NULL, 0, NULL}}, false},
    {"appointment-cancelled", "Appointment cancelled (or deleted before it took place)", 1,
     {{"Appointment", HUB__LEG_ENTER, "status=cancelled", 0, APPT_OPEN}}, false},
    {"medication-start", "Medication started", 1,
     {{"MedicationRequest", HUB__LEG_ENTER, "status=active", 0, NULL}}, false},
    {"medication-stop", "Medication stopped (or an active one deleted)", 1,
     {{"MedicationRequest", HUB__LEG_ENTER, "status=stopped,completed,cancelled", 0,
       "status=active,on-hold"}},
     false},
    /* Care coordination (the CMS event-notification case): admissions,
     * discharges and ED visits of the patients attributed to the
     * subscriber (Patient.generalPractitioner, CareTeam participant), and
     * the care plans, goals and appointments of the patients whose care
     * team it is in (removals included). Filter: attributed=Organization/x
     * (PractitionerRole/x, Practitioner/x). */
    {"care-coordination", "Events of the patients attributed to a provider", 5,
     {{"Encounter", HUB__LEG_ENTER, "status=in-progress", HUB__ATTR_GP | HUB__ATTR_TEAM, NULL},
      {"Encounter", HUB__LEG_ENTER, "status=finished", HUB__ATTR_GP | HUB__ATTR_TEAM, NULL},
      {"CarePlan", HUB__LEG_ANY, NULL, HUB__ATTR_TEAM, ""},
      {"Goal", HUB__LEG_ANY, NULL, HUB__ATTR_TEAM, ""},
      {"Appointment", HUB__LEG_ANY, NULL, HUB__ATTR_TEAM, ""}},
     true},
};

const hub__topic *hub__topics(size_t *n) {
    *n = sizeof TOPICS / sizeof TOPICS[0];
    return TOPICS;
}

const hub__topic *hub__topic_find(const char *canonical) {
    size_t nb = strlen(HUB_ROUTE_TOPIC_BASE);
    if (strncmp(canonical, HUB_ROUTE_TOPIC_BASE, nb) != 0) return NULL;
    for (size_t i = 0; i < sizeof TOPICS / sizeof TOPICS[0]; i++)
        if (strcmp(canonical + nb, TOPICS[i].code) == 0) return &TOPICS[i];
    return NULL;
}

/* The generic filters (patient, organization, practitioner, code) on each
 * type a topic watches; any other name is the type's own parameter. */
static const struct {
    const char *type, *organization, *practitioner, *code;
} FILTERS[] = {
    {"Encounter", "service-provider", "practitioner", "type"},
    {"Observation", "performer", "performer", "code"},
    {"DiagnosticReport", "performer", "performer", "code"},
    {"CarePlan", NULL, "performer", "category"},
    {"Goal", NULL, NULL, "category"},
    {"CareTeam", "participant", "participant", "category"},
    {"Appointment", "actor", "practitioner", "service-type"},
    {"MedicationRequest", "intended-performer", "requester", "code"},
};

const char *hub__topic_param(const char *type, const char *name) {
    if (strcmp(name, "patient") == 0) return "patient";
    for (size_t i = 0; i < sizeof FILTERS / sizeof FILTERS[0]; i++) {
        if (strcmp(FILTERS[i].type, type) != 0) continue;
        if (strcmp(name, "organization") == 0) return FILTERS[i].organization;
        if (strcmp(name, "practitioner") == 0) return FILTERS[i].practitioner;
        if (strcmp(name, "code") == 0) return FILTERS[i].code;
    }
    return name;
}

/* ---- checking --------------------------------------------------------------------- */

static const char *adup(hub_arena *a, const char *s) {
    return hub_arena_strndup(a, s, strlen(s));
}

static const char *ext_string(const json_t *holder, const char *url, const char *key) {
    const json_t *exts = json_object_get(holder, "extension");
    size_t i;
    const json_t *e;
    json_array_foreach(exts, i, e) {
        const char *u = json_string_value(json_object_get(e, "url"));
        if (u && strcmp(u, url) == 0) return json_string_value(json_object_get(e, key));
    }
    return NULL;
}

static bool has_ctl(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

static hub_status endpoint_rest(const char *ep, bool allow_http, hub_route_sub_def *d,
                                hub_err *err) {
    const char *host;
    if (strncmp(ep, "https://", 8) == 0) {
        d->tls = true;
        host = ep + 8;
    } else if (strncmp(ep, "http://", 7) == 0) {
        if (!allow_http)
            return hub_err_set(err, HUB_E_INVALID, "Subscription.channel.endpoint",
                               "rest-hook endpoint must use https (http:// is not allowed here)");
        host = ep + 7;
    } else {
        return hub_err_set(err, HUB_E_INVALID, "Subscription.channel.endpoint",
                           "rest-hook endpoint must be an https URL");
    }
    if (*host == '\0' || *host == '/' || *host == ':' || strchr(ep, ' ') || has_ctl(ep) ||
        strchr(host, '@'))
        return hub_err_set(err, HUB_E_INVALID, "Subscription.channel.endpoint",
                           "rest-hook endpoint is not a valid URL");
    return HUB_OK;
}

static hub_status endpoint_mllp(const char *ep, hub_route_sub_def *d, hub_err *err) {
    const char *rest;
    if (strncmp(ep, "mllps://", 8) == 0) {
        d->tls = true;
        rest = ep + 8;
    } else if (strncmp(ep, "mllp://", 7) == 0) {
        rest = ep + 7;
    } else {
        return hub_err_set(err, HUB_E_INVALID, "Subscription.channel.endpoint",
                           "message endpoint must be mllp://host:port or mllps://host:port");
    }
    const char *colon = strrchr(rest, ':');
    size_t hn = colon ? (size_t)(colon - rest) : 0;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || hn == 0 || hn >= sizeof d->host || !end || *end != '\0' || port < 1 ||
        port > 65535 || has_ctl(rest) || strchr(rest, '/'))
        return hub_err_set(err, HUB_E_INVALID, "Subscription.channel.endpoint",
                           "message endpoint must be mllp://host:port or mllps://host:port");
    memcpy(d->host, rest, hn);
    d->host[hn] = '\0';
    if (d->host[0] == '[' && hn > 2 && d->host[hn - 1] == ']') {
        memmove(d->host, d->host + 1, hn - 2);
        d->host[hn - 2] = '\0';
    }
    d->port = (int)port;
    return HUB_OK;
}

static hub_status parse_json(const json_t *root, bool allow_http, hub_arena *a,
                             hub_route_sub_def *d, hub_err *err) {
    const char *status = json_string_value(json_object_get(root, "status"));
    if (!status)
        return hub_err_set(err, HUB_E_INVALID, "Subscription.status", "status is required");
    if (strcmp(status, "requested") == 0) d->status = HUB_RSUB_REQUESTED;
    else if (strcmp(status, "active") == 0) d->status = HUB_RSUB_ACTIVE;
    else if (strcmp(status, "error") == 0) d->status = HUB_RSUB_ERROR;
    else if (strcmp(status, "off") == 0) d->status = HUB_RSUB_OFF;
    else
        return hub_err_set(err, HUB_E_INVALID, "Subscription.status",
                           "status must be requested, active, error or off");

    const char *crit = json_string_value(json_object_get(root, "criteria"));
    if (!crit || !*crit)
        return hub_err_set(err, HUB_E_INVALID, "Subscription.criteria", "criteria is required");
    if (strlen(crit) > 4096 || has_ctl(crit))
        return hub_err_set(err, HUB_E_INVALID, "Subscription.criteria", "criteria is malformed");
    d->criteria = adup(a, crit);
    if (!d->criteria) return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
    if (strncmp(crit, "http://", 7) == 0 || strncmp(crit, "https://", 8) == 0) {
        const hub__topic *t = hub__topic_find(crit);
        if (!t)
            return hub_err_set(err, HUB_E_INVALID, "Subscription.criteria",
                               "unknown SubscriptionTopic (see the hub's topics)");
        d->topic = d->criteria;
        /* Backport: filters on _criteria's backport-filter-criteria. */
        const json_t *uc = json_object_get(root, "_criteria");
        const json_t *exts = json_object_get(uc, "extension");
        size_t nx = json_array_size(exts);
        if (nx > 16)
            return hub_err_set(err, HUB_E_LIMIT, "Subscription._criteria", "over 16 filters");
        d->filters = hub_arena_calloc(a, (nx + 1) * sizeof *d->filters);
        if (!d->filters) return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
        for (size_t i = 0; i < nx; i++) {
            const json_t *e = json_array_get(exts, i);
            const char *u = json_string_value(json_object_get(e, "url"));
            if (!u || strcmp(u, HUB_BACKPORT "backport-filter-criteria") != 0) continue;
            const char *v = json_string_value(json_object_get(e, "valueString"));
            if (!v || !*v || strlen(v) > 2048 || has_ctl(v))
                return hub_err_set(err, HUB_E_INVALID, "Subscription._criteria.extension",
                                   "filter criteria must be a non-empty string");
            if (!(d->filters[d->nfilters++] = adup(a, v)))
                return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
        }
        d->type = t->legs[0].type;
        d->query = "";
    } else {
        const char *q = strchr(crit, '?');
        size_t tn = q ? (size_t)(q - crit) : strlen(crit);
        if (tn == 0 || tn > 63)
            return hub_err_set(err, HUB_E_INVALID, "Subscription.criteria",
                               "criteria must be Type?parameters");
        for (size_t i = 0; i < tn; i++)
            if (!isalpha((unsigned char)crit[i]))
                return hub_err_set(err, HUB_E_INVALID, "Subscription.criteria",
                                   "criteria must be Type?parameters");
        d->type = hub_arena_strndup(a, crit, tn);
        d->query = q ? d->criteria + tn + 1 : "";
        if (!d->type) return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
    }

    const json_t *ch = json_object_get(root, "channel");
    if (!json_is_object(ch))
        return hub_err_set(err, HUB_E_INVALID, "Subscription.channel", "channel is required");
    const char *ctype = json_string_value(json_object_get(ch, "type"));
    if (!ctype)
        return hub_err_set(err, HUB_E_INVALID, "Subscription.channel.type",
                           "channel type is required");
    const char *ep = json_string_value(json_object_get(ch, "endpoint"));
    if (strcmp(ctype, "rest-hook") == 0) d->chan = HUB_RCHAN_REST;
    else if (strcmp(ctype, "message") == 0) d->chan = HUB_RCHAN_MLLP;
    else
        return hub_err_set(err, HUB_E_INVALID, "Subscription.channel.type",
                           "channel type is not supported (rest-hook, message)");
    if (!ep || !*ep)
        return hub_err_set(err, HUB_E_INVALID, "Subscription.channel.endpoint",
                           "endpoint is required");
    if (strlen(ep) > 2048)
        return hub_err_set(err, HUB_E_INVALID, "Subscription.channel.endpoint",
                           "endpoint over 2048 bytes");
    hub_status rc = d->chan == HUB_RCHAN_REST ? endpoint_rest(ep, allow_http, d, err)
                                              : endpoint_mllp(ep, d, err);
    if (rc) return rc;
    if (!(d->endpoint = adup(a, ep))) return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");

    const char *pay = json_string_value(json_object_get(ch, "payload"));
    const char *content = ext_string(json_object_get(ch, "_payload"),
                                     HUB_BACKPORT "backport-payload-content", "valueCode");
    if (!pay) {
        d->payload = HUB_RPAY_EMPTY;
    } else if (strcmp(pay, "application/fhir+json") == 0 || strcmp(pay, "application/json") == 0 ||
               strcmp(pay, "application/json+fhir") == 0) {
        d->payload = HUB_RPAY_FULL;
    } else if (strcmp(pay, "application/hl7-v2") == 0 ||
               strcmp(pay, "x-application/hl7-v2+er7") == 0) {
        if (d->chan != HUB_RCHAN_MLLP)
            return hub_err_set(err, HUB_E_INVALID, "Subscription.channel.payload",
                               "an HL7 v2 payload needs a message (MLLP) channel");
        d->payload = HUB_RPAY_V2;
    } else {
        return hub_err_set(err, HUB_E_INVALID, "Subscription.channel.payload",
                           "payload must be application/fhir+json or application/hl7-v2");
    }
    if (content && d->payload != HUB_RPAY_V2) {
        if (strcmp(content, "empty") == 0) d->payload = HUB_RPAY_EMPTY;
        else if (strcmp(content, "id-only") == 0) d->payload = HUB_RPAY_ID;
        else if (strcmp(content, "full-resource") == 0) d->payload = HUB_RPAY_FULL;
        else
            return hub_err_set(err, HUB_E_INVALID, "Subscription.channel._payload.extension",
                               "payload content must be empty, id-only or full-resource");
    }

    const json_t *hdrs = json_object_get(ch, "header");
    size_t nh = json_array_size(hdrs);
    if (hdrs && !json_is_array(hdrs))
        return hub_err_set(err, HUB_E_INVALID, "Subscription.channel.header",
                           "header must be a list of strings");
    if (nh > 16)
        return hub_err_set(err, HUB_E_LIMIT, "Subscription.channel.header", "over 16 headers");
    d->headers = hub_arena_calloc(a, (nh + 1) * sizeof *d->headers);
    if (!d->headers) return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
    for (size_t i = 0; i < nh; i++) {
        const char *h = json_string_value(json_array_get(hdrs, i));
        const char *colon = h ? strchr(h, ':') : NULL;
        bool ok = colon && colon > h && strlen(h) <= 1024 && !has_ctl(h);
        for (const char *p = h; ok && p < colon; p++)
            if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') ok = false;
        if (ok && (strncasecmp(h, "content-type:", 13) == 0 ||
                   strncasecmp(h, "content-length:", 15) == 0 ||
                   strncasecmp(h, "host:", 5) == 0 ||
                   strncasecmp(h, "x-hub-signature-256:", 20) == 0))
            ok = false;
        if (!ok) {
            char where[48];
            snprintf(where, sizeof where, "Subscription.channel.header[%zu]", i);
            return hub_err_set(err, HUB_E_INVALID, where,
                               "header must be 'Name: value' (and not one the hub sets)");
        }
        if (!(d->headers[d->nheaders++] = adup(a, h)))
            return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
    }
    const json_t *exts = json_object_get(ch, "extension");
    size_t i;
    const json_t *e;
    json_array_foreach(exts, i, e) {
        const char *u = json_string_value(json_object_get(e, "url"));
        if (u && strcmp(u, HUB_BACKPORT "backport-heartbeat-period") == 0) {
            json_int_t v = json_integer_value(json_object_get(e, "valueUnsignedInt"));
            if (v < 1 || v > 86400)
                return hub_err_set(err, HUB_E_INVALID, "Subscription.channel.extension",
                                   "heartbeat period must be 1..86400 seconds");
            d->heartbeat_s = (int)v;
        }
    }
    const char *secret = ext_string(root, HUB_ROUTE_EXT_SECRET, "valueString");
    if (secret) {
        size_t sn = strlen(secret);
        if (sn < 16 || sn > 128 || has_ctl(secret))
            return hub_err_set(err, HUB_E_INVALID, "Subscription.extension",
                               "secret must be 16 to 128 characters");
        if (!(d->secret = adup(a, secret)))
            return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
    }
    return HUB_OK;
}

hub_status hub_route_sub_parse(const char *json, size_t n, bool allow_http, hub_arena *a,
                               hub_route_sub_def *d, hub_err *err) {
    memset(d, 0, sizeof *d);
    json_error_t je;
    json_t *root = json_loadb(json, n, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return hub_err_set(err, HUB_E_INVALID, "Subscription", "not a JSON object");
    }
    const char *rt = json_string_value(json_object_get(root, "resourceType"));
    hub_status rc = rt && strcmp(rt, "Subscription") == 0
                        ? parse_json(root, allow_http, a, d, err)
                        : hub_err_set(err, HUB_E_INVALID, "Subscription", "not a Subscription");
    json_decref(root);
    return rc;
}

/* ---- compiling ---------------------------------------------------------------------- */

/* The first issue of oo into err. */
static hub_status oo_err(hub_oo *oo, const char *fallback_where, hub_err *err) {
    json_t *j = hub_oo_json(oo);
    const json_t *is = json_array_get(json_object_get(j, "issue"), 0);
    const char *msg = json_string_value(json_object_get(is, "diagnostics"));
    const char *ex = json_string_value(json_array_get(json_object_get(is, "expression"), 0));
    char where[48];
    if (ex) snprintf(where, sizeof where, "%s", fallback_where);
    else snprintf(where, sizeof where, "%s", fallback_where);
    hub_err_set(err, HUB_E_INVALID, where, "criteria: %s%s%s", msg ? msg : "invalid",
                ex ? " at " : "", ex ? ex : "");
    json_decref(j);
    return HUB_E_INVALID;
}

/* Clause kinds matched in memory: index rows, _id, _lastUpdated, :missing. */
static bool query_ok(const hub_store_query *q) {
    for (size_t i = 0; i < q->nclauses; i++) {
        const hub_store_qclause *c = &q->clauses[i];
        if (c->kind == HUB_QC_HAS || c->kind == HUB_QC_IN || c->kind == HUB_QC_REFBY)
            return false;
        for (size_t k = 0; k < c->nvals; k++)
            if (c->vals[k].chain) return false;
    }
    return true;
}

/* Appends "&name=value" pieces of `filter` ("[Type?]a=1&b=2") that apply
 * to `type`, generic names mapped to the type's parameters. */
static hub_status add_filter(hub_buf *q, const char *type, const char *filter, bool *skip,
                             hub_err *err) {
    const char *f = filter, *qm = strchr(filter, '?');
    *skip = false;
    if (qm) {
        size_t tn = (size_t)(qm - filter);
        if (strlen(type) != tn || strncmp(type, filter, tn) != 0) {
            *skip = true;
            return HUB_OK;
        }
        f = qm + 1;
    }
    while (*f) {
        const char *amp = strchr(f, '&');
        size_t pn = amp ? (size_t)(amp - f) : strlen(f);
        const char *eq = memchr(f, '=', pn);
        if (!eq || eq == f)
            return hub_err_set(err, HUB_E_INVALID, "Subscription._criteria.extension",
                               "filter must be name=value");
        char name[64];
        size_t nn = (size_t)(eq - f);
        if (nn >= sizeof name)
            return hub_err_set(err, HUB_E_INVALID, "Subscription._criteria.extension",
                               "filter name too long");
        memcpy(name, f, nn);
        name[nn] = '\0';
        char *colon = strchr(name, ':');
        char mod[32] = "";
        if (colon) {
            snprintf(mod, sizeof mod, "%s", colon);
            *colon = '\0';
        }
        const char *param = hub__topic_param(type, name);
        if (!param)
            return hub_err_set(err, HUB_E_INVALID, "Subscription._criteria.extension",
                               "filter '%s' does not apply to this topic", name);
        if (hub_buf_printf(q, "%s%s%s=%.*s", q->n ? "&" : "", param, mod,
                           (int)(pn - nn - 1), eq + 1))
            return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
        f += pn;
        if (*f == '&') f++;
    }
    return HUB_OK;
}

/* A Patient named in the criteria is matched as written: a golden
 * Patient stands for its linked source records when a change is matched
 * (route.c, add_golden_rows), not here, so links made later count. */
static hub_status compile_query(hub_route *r, hub__rsub *s, const char *type, const char *query,
                                hub_store_query **q, hub_err *err) {
    hub_oo *oo = hub_oo_new();
    if (!oo) return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
    int st = hub_record_criteria(r->rec, &s->a, type, query, q, oo);
    if (st) {
        hub_status rc = st >= 500 ? hub_err_set(err, HUB_E_NOMEM, "route", "out of memory")
                       : oo_err(oo, "Subscription.criteria", err);
        hub_oo_free(oo);
        return rc;
    }
    hub_oo_free(oo);
    if (!query_ok(*q))
        return hub_err_set(err, HUB_E_INVALID, "Subscription.criteria",
                           "chains, _has and _include are not supported in subscription criteria");
    return HUB_OK;
}

/* A leg: the query a version must match and, when deletes fire it,
 * the query the deleted resource's last version must match (`delq`, the
 * same filters). */
static hub_status compile_leg(hub_route *r, hub__rsub *s, const char *type, const char *query,
                              const char *delq, hub__leg_mode mode, hub_err *err) {
    hub__leg *l = &s->legs[s->nlegs];
    memset(l, 0, sizeof *l);
    hub_status rc = compile_query(r, s, type, query, &l->q, err);
    if (rc) return rc;
    if (mode == HUB__LEG_PLAIN) l->dq = l->q;
    else if (delq && (rc = compile_query(r, s, type, delq, &l->dq, err)))
        return rc;
    l->type = type;
    l->mode = mode;
    s->nlegs++;
    return HUB_OK;
}

/* The query of a topic leg: `base` (the topic's own condition, or NULL)
 * and the subscriber's filters that apply to the leg's type; *applies
 * false when a Type? filter names another of the topic's types. */
static hub_status topic_query(const hub__rsub *s, const hub__topic *t, const hub__topic_leg *tl,
                              const char *base, hub_buf *q, bool *applies, hub_err *err) {
    hub_status rc = HUB_OK;
    if (base && *base && hub_buf_append_cstr(q, base)) rc = HUB_E_NOMEM;
    for (size_t k = 0; !rc && !t->attributed && k < s->d.nfilters; k++) {
        bool skip;
        rc = add_filter(q, tl->type, s->d.filters[k], &skip, err);
        /* a Type? filter naming another type leaves this one out */
        if (skip && t->nlegs > 1) *applies = false;
        else if (skip)
            rc = hub_err_set(err, HUB_E_INVALID, "Subscription._criteria.extension",
                             "filter names a type the topic does not watch");
    }
    if (!rc && hub_buf_append(q, "", 1)) rc = HUB_E_NOMEM;
    if (rc == HUB_E_NOMEM) hub_err_set(err, rc, "route", "out of memory");
    return rc;
}

void hub__rsub_free(hub__rsub *s) {
    if (!s) return;
    hub_arena_release(&s->a);
    hub_free(s);
}

static const char *const MLLP_TYPES[] = {"Patient", "Encounter", "Observation",
                                         "DiagnosticReport"};

hub_status hub__rsub_build(hub_route *r, const char *id, const char *json, size_t n,
                           hub__rsub **out, hub_err *err) {
    hub__rsub *s = hub_calloc(1, sizeof *s);
    if (!s) return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
    hub_arena_init(&s->a, 2048);
    snprintf(s->id, sizeof s->id, "%s", id);
    hub_status rc = hub_route_sub_parse(json, n, r->cfg.allow_http, &s->a, &s->d, err);
    if (rc) goto fail;
    if (s->d.topic) {
        const hub__topic *t = hub__topic_find(s->d.topic);
        if (t->attributed) {
            /* one filter: attributed=Type/id */
            const char *f = s->d.nfilters == 1 ? s->d.filters[0] : "";
            const char *v = strncmp(f, "attributed=", 11) == 0 ? f + 11 : NULL;
            const char *slash = v ? strchr(v, '/') : NULL;
            bool ok = slash && slash > v && slash[1] && !strchr(slash + 1, '/') &&
                      !strchr(v, '&') && !strchr(v, ',') && strlen(v) < 120;
            if (!ok) {
                rc = hub_err_set(err, HUB_E_INVALID, "Subscription._criteria.extension",
                                 "care coordination needs one filter attributed=Type/id");
                goto fail;
            }
            s->attributed = v;
        }
        for (size_t i = 0; i < t->nlegs; i++) {
            const hub__topic_leg *tl = &t->legs[i];
            hub_buf q, dq;
            hub_buf_init(&q);
            hub_buf_init(&dq);
            bool applies = true;
            rc = topic_query(s, t, tl, tl->current, &q, &applies, err);
            if (!rc && applies && tl->deleted)
                rc = topic_query(s, t, tl, tl->deleted, &dq, &applies, err);
            if (!rc && applies) {
                rc = compile_leg(r, s, tl->type, q.p, tl->deleted ? dq.p : NULL, tl->mode, err);
                if (!rc) s->legs[s->nlegs - 1].attr = tl->attr;
            }
            hub_buf_release(&q);
            hub_buf_release(&dq);
            if (rc) goto fail;
        }
        if (s->nlegs == 0) {
            rc = hub_err_set(err, HUB_E_INVALID, "Subscription._criteria.extension",
                             "the filters leave none of the topic's types");
            goto fail;
        }
    } else {
        if (!hub_fhir_is_resource(r->defs, s->d.type)) {
            rc = hub_err_set(err, HUB_E_INVALID, "Subscription.criteria",
                             "criteria names an unknown resource type");
            goto fail;
        }
        rc = compile_leg(r, s, s->d.type, s->d.query, NULL, HUB__LEG_PLAIN, err);
        if (rc) goto fail;
    }
    if (s->attributed && s->d.chan == HUB_RCHAN_MLLP) {
        /* a v2 partner gets the ADT part of care coordination */
        size_t k = 0;
        for (size_t i = 0; i < s->nlegs; i++)
            if (strcmp(s->legs[i].type, "Encounter") == 0) s->legs[k++] = s->legs[i];
        s->nlegs = k;
    }
    if (s->d.chan == HUB_RCHAN_MLLP && s->d.payload != HUB_RPAY_V2) {
        for (size_t i = 0; i < s->nlegs; i++) {
            bool ok = false;
            for (size_t k = 0; k < sizeof MLLP_TYPES / sizeof *MLLP_TYPES; k++)
                ok |= strcmp(s->legs[i].type, MLLP_TYPES[k]) == 0;
            if (!ok) {
                rc = hub_err_set(err, HUB_E_INVALID, "Subscription.criteria",
                                 "a message (MLLP) channel carries Patient, Encounter, "
                                 "Observation or DiagnosticReport changes");
                goto fail;
            }
        }
    }
    s->secret = s->d.secret;
    *out = s;
    return HUB_OK;
fail:
    hub__rsub_free(s);
    return rc;
}
