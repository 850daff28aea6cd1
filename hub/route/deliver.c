/* route: the delivery workers.
 *
 * One thread drives every rest-hook delivery on libcurl's multi interface;
 * one thread sends to MLLP subscribers with the outbound client (one frame
 * in flight, so blocking is the protocol). Each subscription has at most
 * one notification in flight, which keeps its events in order; a
 * notification carries up to BATCH consecutive events. The outbox is the
 * truth: what is due comes from the store (the delivered mark, next_ms),
 * results go back through writer jobs, and a restart resumes from the
 * store. A subscription is free again only after its result committed. */
#include "internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "hub/mllp.h"
#include "hub/auth.h"

#define BATCH 50
#define SCAN_MS 200
#define MAX_RESPONSE (64u << 10)

typedef struct dl_job dl_job;
struct dl_job {
    hub_store_job job;
    hub_route *r;
    hub__subcfg cfg;
    bool handshake, heartbeat;
    hub_route_event *evs; /* owned copies */
    size_t nev;
    int64_t events_total;
    int failures;
    char status_before[16];
    hub_buf body;
    struct curl_slist *hdrs;
    CURL *easy;
    size_t resp_bytes;
    int64_t t0;
    /* result */
    bool ok;
    int http_status;
    int64_t acked;        /* MLLP: last event ACKed (partial progress) */
    double latency_ms;
    char error[200];
    char new_status[16];
    dl_job *next;         /* MLLP queue; rest: the list in flight */
    dl_job *prev;
};

struct hub__deliver {
    hub_route *r;
    pthread_t th, mth;
    bool th_up, mth_up;
    CURLM *m;
    atomic_bool stop;
    atomic_bool dirty;
    pthread_mutex_t lk;    /* inflight, the MLLP queue */
    pthread_cond_t mcond;
    hub__index inflight;   /* sub id -> (marker) */
    dl_job *rest;          /* rest-hook deliveries in flight (worker only) */
    char (*ready)[72];     /* subscriptions with new committed work */
    size_t nready, ready_cap;
    dl_job *mhead, *mtail;
    size_t pending_jobs;   /* result jobs submitted, not yet done */
    pthread_cond_t jcond;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static hub_metric *m_ok, *m_fail, *m_events;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* The inflight set reuses the index type: a slot with n > 0 is busy. */

static bool inflight_try(hub__deliver *d, const char *id) {
    pthread_mutex_lock(&d->lk);
    hub__slot *sl = NULL;
    /* linear probing lookup, as route.c's index */
    uint64_t h = 1469598103934665603ull;
    for (const char *k = id; *k; k++) {
        h ^= (unsigned char)*k;
        h *= 1099511628211ull;
    }
    bool busy = false;
    if (d->inflight.cap) {
        for (size_t i = h & (d->inflight.cap - 1);; i = (i + 1) & (d->inflight.cap - 1)) {
            if (!d->inflight.slots[i].key) break;
            if (strcmp(d->inflight.slots[i].key, id) == 0) {
                sl = &d->inflight.slots[i];
                break;
            }
        }
    }
    if (sl && sl->n) busy = true;
    if (!busy) {
        if (sl) {
            sl->n = 1;
        } else {
            /* grow when 70% full */
            if ((d->inflight.used + 1) * 10 >= d->inflight.cap * 7) {
                size_t cap = d->inflight.cap ? d->inflight.cap * 2 : 64;
                hub__slot *ns = hub_calloc(cap, sizeof *ns);
                if (!ns) {
                    pthread_mutex_unlock(&d->lk);
                    return false;
                }
                for (size_t i = 0; i < d->inflight.cap; i++) {
                    hub__slot *o = &d->inflight.slots[i];
                    if (!o->key) continue;
                    uint64_t hh = 1469598103934665603ull;
                    for (const char *k = o->key; *k; k++) {
                        hh ^= (unsigned char)*k;
                        hh *= 1099511628211ull;
                    }
                    size_t k = hh & (cap - 1);
                    while (ns[k].key) k = (k + 1) & (cap - 1);
                    ns[k] = *o;
                }
                hub_free(d->inflight.slots);
                d->inflight.slots = ns;
                d->inflight.cap = cap;
            }
            size_t k = h & (d->inflight.cap - 1);
            while (d->inflight.slots[k].key) k = (k + 1) & (d->inflight.cap - 1);
            char *key = hub_strdup(id);
            if (!key) {
                pthread_mutex_unlock(&d->lk);
                return false;
            }
            d->inflight.slots[k].key = key;
            d->inflight.slots[k].n = 1;
            d->inflight.used++;
        }
    }
    pthread_mutex_unlock(&d->lk);
    return !busy;
}

static void inflight_done(hub__deliver *d, const char *id) {
    pthread_mutex_lock(&d->lk);
    uint64_t h = 1469598103934665603ull;
    for (const char *k = id; *k; k++) {
        h ^= (unsigned char)*k;
        h *= 1099511628211ull;
    }
    if (d->inflight.cap) {
        for (size_t i = h & (d->inflight.cap - 1);; i = (i + 1) & (d->inflight.cap - 1)) {
            if (!d->inflight.slots[i].key) break;
            if (strcmp(d->inflight.slots[i].key, id) == 0) {
                d->inflight.slots[i].n = 0;
                break;
            }
        }
    }
    pthread_mutex_unlock(&d->lk);
}

void hub__deliver_ready(hub_route *r, char (*ids)[72], size_t n) {
    hub__deliver *d = r->dl;
    if (!d || n == 0) return;
    pthread_mutex_lock(&d->lk);
    if (d->nready + n > d->ready_cap) {
        size_t cap = d->ready_cap ? d->ready_cap : 64;
        while (cap < d->nready + n) cap *= 2;
        char (*nr)[72] = hub_realloc(d->ready, cap * sizeof *nr);
        if (nr) {
            d->ready = nr;
            d->ready_cap = cap;
        }
    }
    /* when it cannot grow the full scan finds them */
    if (d->nready + n <= d->ready_cap) {
        memcpy(d->ready + d->nready, ids, n * sizeof *ids);
        d->nready += n;
    }
    pthread_mutex_unlock(&d->lk);
}

void hub__deliver_wake(hub_route *r) {
    hub__deliver *d = r->dl;
    if (!d) return;
    atomic_store(&d->dirty, true);
    if (d->m) curl_multi_wakeup(d->m);
}

static void job_free(dl_job *j) {
    if (!j) return;
    if (j->easy) curl_easy_cleanup(j->easy);
    curl_slist_free_all(j->hdrs);
    hub_buf_release(&j->body);
    for (size_t i = 0; i < j->nev; i++) {
        hub_free((char *)j->evs[i].type);
        hub_free((char *)j->evs[i].id);
    }
    hub_free(j->evs);
    hub__subcfg_release(&j->cfg);
    hub_free(j);
}

/* ---- results, on the writer ------------------------------------------------------ */

static int64_t backoff_ms(const hub_route *r, int failures) {
    int64_t d = r->cfg.retry_min_ms;
    for (int i = 0; i < failures && d < r->cfg.retry_max_ms; i++) d *= 2;
    if (d > r->cfg.retry_max_ms) d = r->cfg.retry_max_ms;
    /* jitter: 50..100% of the delay, so subscribers that failed together
     * do not come back together */
    return d / 2 + (int64_t)((double)rand() / RAND_MAX * (double)(d / 2));
}

static hub_status result_run(hub_store_tx *tx, hub_store_job *job, hub_err *err) {
    dl_job *j = job->ud;
    hub_route *r = j->r;
    const char *id = j->cfg.id;
    hub_status rc;
    int64_t last = j->nev ? j->evs[j->nev - 1].seq : 0;
    if (!j->ok && j->acked > 0) {
        rc = hub_route_store_attempt(tx, id, j->acked, true, j->http_status, j->latency_ms, NULL,
                                     r->cfg.max_failures, 0, j->new_status, err);
        if (rc) return rc;
    }
    int64_t next = hub_now_ms() + backoff_ms(r, j->failures);
    rc = hub_route_store_attempt(tx, id, j->ok ? last : (j->acked ? j->acked + 1 : j->nev ? j->evs[0].seq : 0),
                                 j->ok, j->http_status, j->latency_ms, j->ok ? NULL : j->error,
                                 r->cfg.max_failures, next, j->new_status, err);
    if (rc) return rc;
    if (r->cfg.audit) {
        /* The audit trail's row of this delivery: who (the subscription),
         * what (the events' span), outcome; never the payload. */
        char span[64], status[32];
        snprintf(span, sizeof span, "events %lld-%lld",
                 (long long)(j->nev ? j->evs[0].seq : 0), (long long)last);
        snprintf(status, sizeof status, "status %d", j->http_status);
        hub_audit_event ev = {.kind = HUB_AUDIT_NOTIFY,
                              .outcome = j->ok ? 0 : 8,
                              .channel = id,
                              .entity_type = "Subscription",
                              .entity_id = id,
                              .query = span,
                              .detail = j->ok ? status : j->error};
        rc = hub_audit_record_tx(r->cfg.audit, tx, &ev, err);
        if (rc) return rc;
    }
    if (j->handshake && j->ok) {
        rc = hub_route_store_sub(tx, id, "active", NULL, err);
        if (!rc) rc = hub__sub_set_status(r, tx, id, "active", NULL, err);
        if (rc) return rc;
    } else if (!j->ok && strcmp(j->new_status, "error") == 0 &&
               strcmp(j->status_before, "error") != 0) {
        HUB_LOG_WARN("route", "subscription id=%s status=error failures=%d err='%s'", id,
                     j->failures + 1, j->error);
        rc = hub__sub_set_status(r, tx, id, "error", j->error, err);
        if (rc) return rc;
    }
    return HUB_OK;
}

static void result_done(hub_store_job *job, hub_status rc, const hub_err *err) {
    dl_job *j = job->ud;
    hub_route *r = j->r;
    hub__deliver *d = r->dl;
    if (rc)
        HUB_LOG_WARN("route", "sub=%s result not recorded err='%s' (resent later)", j->cfg.id,
                     err ? err->msg : "");
    inflight_done(d, j->cfg.id);
    /* events that came while it was in flight go next */
    char id[1][72];
    snprintf(id[0], sizeof id[0], "%s", j->cfg.id);
    hub__deliver_ready(r, id, 1);
    job_free(j);
    pthread_mutex_lock(&d->lk);
    d->pending_jobs--;
    pthread_cond_broadcast(&d->jcond);
    pthread_mutex_unlock(&d->lk);
    hub__deliver_wake(r);
}

static void finish(hub__deliver *d, dl_job *j) {
    j->latency_ms = (double)(hub_mono_ns() - j->t0) / 1e6;
    hub_metric_add(j->ok ? m_ok : m_fail, 1);
    if (j->ok) hub_metric_add(m_events, (int64_t)j->nev);
    if (j->heartbeat) {
        /* Heartbeats are not events: recorded as attempts of event 0. */
    }
    if (j->ok)
        HUB_LOG_DEBUG("route", "delivered sub=%s events=%zu ms=%.1f", j->cfg.id, j->nev,
                      j->latency_ms);
    else
        HUB_LOG_INFO("route", "delivery failed sub=%s status=%d err='%s'", j->cfg.id,
                     j->http_status, j->error);
    j->job = (hub_store_job){.run = result_run, .done = result_done, .ud = j};
    pthread_mutex_lock(&d->lk);
    d->pending_jobs++;
    pthread_mutex_unlock(&d->lk);
    hub_err err;
    if (hub_store_submit(d->r->store, &j->job, &err) != HUB_OK) {
        /* closing: leave it pending in the outbox; the next start resends */
        pthread_mutex_lock(&d->lk);
        d->pending_jobs--;
        pthread_mutex_unlock(&d->lk);
        inflight_done(d, j->cfg.id);
        job_free(j);
    }
}

/* ---- building a notification ------------------------------------------------------ */

typedef struct {
    dl_job *j;
    hub_status rc;
} evctx;

static hub_status copy_event(void *ud, const hub_route_event *ev) {
    evctx *c = ud;
    dl_job *j = c->j;
    hub_route_event *e = &j->evs[j->nev];
    *e = *ev;
    e->sub = j->cfg.id;
    e->type = hub_strdup(ev->type);
    e->id = hub_strdup(ev->id);
    if (!e->type || !e->id) {
        hub_free((char *)e->type);
        hub_free((char *)e->id);
        return HUB_E_NOMEM;
    }
    j->nev++;
    return HUB_OK;
}

static void sign(const char *secret, const hub_buf *body, char out[80]) {
    unsigned char mac[32];
    unsigned int n = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body->p, body->n, mac,
         &n);
    strcpy(out, "sha256=");
    for (unsigned i = 0; i < n; i++) snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
}

static size_t discard(char *p, size_t sz, size_t n, void *ud) {
    dl_job *j = ud;
    (void)p;
    j->resp_bytes += sz * n;
    return j->resp_bytes > MAX_RESPONSE ? 0 : sz * n;
}

static hub_status build_body(hub_route *r, dl_job *j) {
    const char *type = j->handshake ? "handshake" : j->heartbeat ? "heartbeat" : "event-notification";
    hub__status_info si = {.sub_id = j->cfg.id,
                           .status = j->handshake ? "requested" : "active",
                           .topic = j->cfg.topic,
                           .type = type,
                           .events_since_start = j->nev ? j->evs[j->nev - 1].seq : j->events_total};
    /* Without a payload the notification still names the events; with
     * id-only and full-resource it names their focus. */
    hub_route_event *evs = j->evs;
    hub_route_event tmp[BATCH];
    if (j->cfg.payload == HUB_RPAY_EMPTY) {
        for (size_t i = 0; i < j->nev; i++) {
            tmp[i] = j->evs[i];
            tmp[i].type = NULL;
        }
        evs = tmp;
    }
    hub_status rc = hub__bundle_begin(&j->body, r->cfg.base_url, &si, evs, j->nev);
    for (size_t i = 0; !rc && i < j->nev; i++)
        rc = hub__bundle_entry(r, &j->body, r->cfg.base_url, &j->evs[i], j->cfg.payload);
    if (!rc) rc = hub__bundle_end(&j->body);
    return rc;
}

static hub_status start_rest(hub__deliver *d, dl_job *j) {
    hub_route *r = d->r;
    if (build_body(r, j)) return HUB_E_NOMEM;
    char sig[80], h[160];
    sign(j->cfg.secret, &j->body, sig);
    snprintf(h, sizeof h, "X-Hub-Signature-256: %s", sig);
    struct curl_slist *t;
#define ADD(s)                                                                              \
    do {                                                                                    \
        t = curl_slist_append(j->hdrs, (s));                                                \
        if (!t) goto nomem;                                                                 \
        j->hdrs = t;                                                                        \
    } while (0)
    ADD("Content-Type: application/fhir+json");
    ADD(h);
    snprintf(h, sizeof h, "X-Hub-Subscription: %s", j->cfg.id);
    ADD(h);
    ADD("Expect:");
    for (size_t i = 0; i < j->cfg.nheaders; i++) ADD(j->cfg.headers[i]);
#undef ADD
    CURL *e = curl_easy_init();
    if (!e) goto nomem;
    j->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, j->cfg.endpoint);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, r->cfg.allow_http ? "http,https" : "https");
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body.p);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body.n);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->hdrs);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->cfg.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(r->cfg.timeout_ms < 5000 ? r->cfg.timeout_ms : 5000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (r->cfg.ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, r->cfg.ca_file);
    if (r->cfg.client_cert) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, r->cfg.client_cert);
        if (r->cfg.client_key) curl_easy_setopt(e, CURLOPT_SSLKEY, r->cfg.client_key);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    j->t0 = hub_mono_ns();
    if (curl_multi_add_handle(d->m, e) != CURLM_OK) goto nomem;
    j->next = d->rest;
    if (d->rest) d->rest->prev = j;
    d->rest = j;
    return HUB_OK;
nomem:
    return HUB_E_NOMEM;
}

static void rest_done(hub__deliver *d, CURL *e, CURLcode cc) {
    dl_job *j = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&j);
    curl_multi_remove_handle(d->m, e);
    if (j->prev) j->prev->next = j->next;
    else d->rest = j->next;
    if (j->next) j->next->prev = j->prev;
    j->next = j->prev = NULL;
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    j->http_status = (int)code;
    if (cc != CURLE_OK) {
        snprintf(j->error, sizeof j->error, "%s", curl_easy_strerror(cc));
    } else if (code < 200 || code > 299) {
        snprintf(j->error, sizeof j->error, "http status %ld", code);
    } else {
        j->ok = true;
    }
    finish(d, j);
}

/* ---- MLLP ------------------------------------------------------------------------------- */

hub_status hub__v2_for_event(hub_route *r, const hub_route_event *ev, hub_rpay payload,
                             hub_buf *out, hub_err *err);

typedef struct {
    char endpoint[2100];
    hub_mllp_client *c;
} mclient;

static void *mllp_main(void *arg) {
    hub__deliver *d = arg;
    hub_route *r = d->r;
    pthread_setname_np(pthread_self(), "hub-route-mllp");
    mclient cache[16];
    memset(cache, 0, sizeof cache);
    size_t ncache = 0, victim = 0;
    for (;;) {
        pthread_mutex_lock(&d->lk);
        while (!d->mhead && !atomic_load(&d->stop)) pthread_cond_wait(&d->mcond, &d->lk);
        dl_job *j = d->mhead;
        if (j) {
            d->mhead = j->next;
            if (!d->mhead) d->mtail = NULL;
        }
        pthread_mutex_unlock(&d->lk);
        if (!j) break; /* stopping, queue drained */
        if (atomic_load(&d->stop)) {
            inflight_done(d, j->cfg.id);
            job_free(j);
            continue;
        }
        hub_mllp_client *c = NULL;
        for (size_t i = 0; i < ncache; i++)
            if (strcmp(cache[i].endpoint, j->cfg.endpoint) == 0) c = cache[i].c;
        hub_err err;
        hub_err_clear(&err);
        if (!c) {
            hub_mllp_client_cfg mc = {.host = j->cfg.host,
                                      .port = j->cfg.port,
                                      .tls = j->cfg.tls,
                                      .ca_file = r->cfg.ca_file,
                                      .cert_file = r->cfg.client_cert,
                                      .key_file = r->cfg.client_key,
                                      .connect_timeout_ms = 3000,
                                      .ack_timeout_ms = r->cfg.timeout_ms,
                                      .max_attempts = 1};
            size_t slot = ncache < 16 ? ncache++ : (victim++ % 16);
            hub_mllp_client_free(cache[slot].c);
            cache[slot].c = NULL;
            if (hub_mllp_client_new(&mc, &cache[slot].c, &err) == HUB_OK) {
                snprintf(cache[slot].endpoint, sizeof cache[slot].endpoint, "%s", j->cfg.endpoint);
                c = cache[slot].c;
            } else {
                cache[slot].endpoint[0] = '\0';
            }
        }
        j->t0 = hub_mono_ns();
        if (!c) {
            snprintf(j->error, sizeof j->error, "mllp client: %.150s", err.msg);
        } else if (j->handshake || j->heartbeat) {
            if (hub_mllp_client_connect(c, &err) == HUB_OK) j->ok = true;
            else snprintf(j->error, sizeof j->error, "connect: %.150s", err.msg);
        } else {
            hub_buf msg, ack;
            hub_buf_init(&msg);
            hub_buf_init(&ack);
            j->ok = true;
            for (size_t i = 0; i < j->nev && j->ok; i++) {
                msg.n = 0;
                if (hub__v2_for_event(r, &j->evs[i], j->cfg.payload, &msg, &err) != HUB_OK) {
                    snprintf(j->error, sizeof j->error, "event %lld: %.150s",
                             (long long)j->evs[i].seq, err.msg);
                    j->ok = false;
                    break;
                }
                if (hub_mllp_client_send(c, msg.p, msg.n, &ack, &err) != HUB_OK) {
                    snprintf(j->error, sizeof j->error, "send: %.150s", err.msg);
                    j->ok = false;
                    break;
                }
                hub_slice code;
                if (!hub_mllp_field(hub_slice_of(ack.p, ack.n), "MSA", 1, &code) ||
                    !(hub_slice_eq_cstr(code, "AA") || hub_slice_eq_cstr(code, "CA"))) {
                    snprintf(j->error, sizeof j->error, "negative ack '%.*s'",
                             (int)(code.n < 4 ? code.n : 4), code.p ? code.p : "");
                    j->ok = false;
                    break;
                }
                j->acked = j->evs[i].seq;
            }
            hub_buf_release(&msg);
            hub_buf_release(&ack);
        }
        finish(d, j);
    }
    for (size_t i = 0; i < ncache; i++) hub_mllp_client_free(cache[i].c);
    return NULL;
}

/* ---- the scan ------------------------------------------------------------------------------ */

typedef struct {
    char id[72];
    char status[16];
    int64_t events, delivered, next_ms;
    int failures;
    char secret[160];
} due;

typedef struct {
    due *v;
    size_t n, cap;
} duelist;

static hub_status due_fn(void *ud, const hub_route_state *st) {
    duelist *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        due *nv = hub_realloc(l->v, cap * sizeof *nv);
        if (!nv) return HUB_E_NOMEM;
        l->v = nv;
        l->cap = cap;
    }
    due *u = &l->v[l->n++];
    snprintf(u->id, sizeof u->id, "%s", st->id);
    snprintf(u->status, sizeof u->status, "%s", st->status);
    u->events = st->events;
    u->delivered = st->delivered;
    u->failures = st->failures;
    u->next_ms = st->next_ms;
    snprintf(u->secret, sizeof u->secret, "%s", st->secret ? st->secret : "");
    return HUB_OK;
}

static void start_one(hub__deliver *d, const due *u0, bool heartbeat) {
    hub_route *r = d->r;
    if (!inflight_try(d, u0->id)) return;
    /* The scan's row may predate a result that committed since (and freed
     * the subscription): read the state again now that it is ours, or an
     * event delivered meanwhile would go out twice. */
    due fresh;
    const due *u = &fresh;
    duelist one = {&fresh, 0, 1};
    hub_err gerr;
    if (hub_route_store_get(r->store, u0->id, due_fn, &one, &gerr) != HUB_OK || one.n != 1) {
        inflight_done(d, u0->id);
        return;
    }
    bool work = (heartbeat || u->next_ms <= hub_now_ms()) &&
                (strcmp(u->status, "requested") == 0 ||
                (strcmp(u->status, "active") == 0 && (heartbeat || u->delivered < u->events)));
    if (!work) {
        inflight_done(d, u0->id);
        return;
    }
    dl_job *j = hub_calloc(1, sizeof *j);
    if (!j || !hub__reg_copy(r, u->id, &j->cfg)) {
        hub_free(j);
        inflight_done(d, u->id);
        return;
    }
    j->r = r;
    hub_buf_init(&j->body);
    /* the delivery state's secret is the one in force */
    if (u->secret[0]) {
        hub_free(j->cfg.secret);
        j->cfg.secret = hub_strdup(u->secret);
    }
    if (!j->cfg.secret) {
        HUB_LOG_WARN("route", "sub=%s not sent reason='no secret'", u->id);
        inflight_done(d, u->id);
        job_free(j);
        return;
    }
    j->failures = u->failures;
    j->events_total = u->events;
    snprintf(j->status_before, sizeof j->status_before, "%.15s", u->status);
    j->handshake = strcmp(u->status, "requested") == 0;
    j->heartbeat = heartbeat;
    hub_err err;
    if (!j->handshake && !heartbeat) {
        int64_t to = u->events < u->delivered + BATCH ? u->events : u->delivered + BATCH;
        j->evs = hub_calloc(BATCH, sizeof *j->evs);
        evctx c = {j, HUB_OK};
        if (!j->evs ||
            hub_route_store_events(r->store, u->id, u->delivered + 1, to, copy_event, &c, &err) !=
                HUB_OK ||
            j->nev == 0) {
            inflight_done(d, u->id);
            job_free(j);
            return;
        }
    }
    /* the heartbeat clock restarts with every send */
    pthread_mutex_lock(&r->lock);
    hub__rsub *s = hub__reg_get(r, u->id);
    if (s) s->last_sent_ms = hub_now_ms();
    pthread_mutex_unlock(&r->lock);
    if (j->cfg.chan == HUB_RCHAN_MLLP) {
        pthread_mutex_lock(&d->lk);
        if (d->mtail) d->mtail->next = j;
        else d->mhead = j;
        d->mtail = j;
        pthread_cond_signal(&d->mcond);
        pthread_mutex_unlock(&d->lk);
        return;
    }
    if (start_rest(d, j) != HUB_OK) {
        HUB_LOG_WARN("route", "sub=%s delivery not started reason='out of memory'", u->id);
        inflight_done(d, u->id);
        job_free(j);
    }
}

static void scan(hub__deliver *d, int64_t now) {
    duelist l = {0};
    hub_err err;
    if (hub_route_store_due(d->r->store, now, false, due_fn, &l, &err) != HUB_OK)
        HUB_LOG_WARN("route", "scan failed err='%s'", err.msg);
    for (size_t i = 0; i < l.n && !atomic_load(&d->stop); i++) start_one(d, &l.v[i], false);
    hub_free(l.v);
}

/* Active subscriptions with a heartbeat period and nothing sent for that
 * long get a heartbeat. */
static void heartbeats(hub__deliver *d, int64_t now) {
    hub_route *r = d->r;
    duelist l = {0};
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->byid.cap; i++) {
        hub__slot *sl = &r->byid.slots[i];
        if (!sl->n) continue;
        hub__rsub *s = sl->v[0];
        if (s->d.heartbeat_s <= 0 || s->d.status != HUB_RSUB_ACTIVE) continue;
        if (s->last_sent_ms == 0) s->last_sent_ms = now;
        if (now - s->last_sent_ms < (int64_t)s->d.heartbeat_s * 1000) continue;
        hub_route_state st = {.id = s->id, .status = "active"};
        if (due_fn(&l, &st)) break;
    }
    pthread_mutex_unlock(&r->lock);
    for (size_t i = 0; i < l.n; i++) start_one(d, &l.v[i], true);
    hub_free(l.v);
}

static void *deliver_main(void *arg) {
    hub__deliver *d = arg;
    pthread_setname_np(pthread_self(), "hub-route");
    int64_t next_scan = 0, next_hb = 0;
    while (!atomic_load(&d->stop)) {
        int64_t now = hub_now_ms();
        bool dirty = atomic_exchange(&d->dirty, false);
        if (now >= next_scan) {
            scan(d, now);
            next_scan = now + SCAN_MS;
        } else if (dirty) {
            /* the subscriptions that got events (or a handshake to do) */
            pthread_mutex_lock(&d->lk);
            char(*ids)[72] = d->ready;
            size_t n = d->nready;
            d->ready = NULL;
            d->nready = d->ready_cap = 0;
            pthread_mutex_unlock(&d->lk);
            for (size_t i = 0; i < n && !atomic_load(&d->stop); i++) {
                due u = {.next_ms = 0};
                snprintf(u.id, sizeof u.id, "%s", ids[i]);
                start_one(d, &u, false);
            }
            hub_free(ids);
        }
        if (now >= next_hb) {
            heartbeats(d, now);
            next_hb = now + 1000;
        }
        int running = 0;
        curl_multi_perform(d->m, &running);
        CURLMsg *msg;
        int q;
        while ((msg = curl_multi_info_read(d->m, &q)))
            if (msg->msg == CURLMSG_DONE) rest_done(d, msg->easy_handle, msg->data.result);
        if (atomic_load(&d->dirty)) continue;
        curl_multi_poll(d->m, NULL, 0, SCAN_MS, NULL);
    }
    return NULL;
}

hub_status hub__deliver_start(hub_route *r, hub_err *err) {
    pthread_once(&curl_once, curl_init);
    m_ok = hub_metric_get(HUB_METRIC_COUNTER, "hub_route_deliveries_total", "result=\"ok\"",
                          "notifications sent to subscribers (handshakes, heartbeats included)");
    m_fail = hub_metric_get(HUB_METRIC_COUNTER, "hub_route_deliveries_total",
                            "result=\"failed\"",
                            "notifications sent to subscribers (handshakes, heartbeats included)");
    m_events = hub_metric_get(HUB_METRIC_COUNTER, "hub_route_events_delivered_total", NULL,
                              "events delivered (each event once per subscription)");
    hub__deliver *d = hub_calloc(1, sizeof *d);
    if (!d) return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
    d->r = r;
    pthread_mutex_init(&d->lk, NULL);
    pthread_cond_init(&d->mcond, NULL);
    pthread_cond_init(&d->jcond, NULL);
    atomic_init(&d->stop, false);
    atomic_init(&d->dirty, true);
    d->m = curl_multi_init();
    r->dl = d;
    if (!d->m) return hub_err_set(err, HUB_E_NOMEM, "route", "curl multi handle");
    /* Thousands of subscribers due at once queue inside curl instead of
     * opening thousands of sockets; connections are kept for reuse. */
    curl_multi_setopt(d->m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 64L);
    curl_multi_setopt(d->m, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
    curl_multi_setopt(d->m, CURLMOPT_MAXCONNECTS, 128L);
    if (pthread_create(&d->th, NULL, deliver_main, d) != 0)
        return hub_err_set(err, HUB_E_IO, "route", "cannot start the delivery thread");
    d->th_up = true;
    if (pthread_create(&d->mth, NULL, mllp_main, d) != 0)
        return hub_err_set(err, HUB_E_IO, "route", "cannot start the MLLP delivery thread");
    d->mth_up = true;
    return HUB_OK;
}

void hub__deliver_stop(hub_route *r) {
    hub__deliver *d = r->dl;
    if (!d) return;
    atomic_store(&d->stop, true);
    pthread_mutex_lock(&d->lk);
    pthread_cond_broadcast(&d->mcond);
    pthread_mutex_unlock(&d->lk);
    if (d->m) curl_multi_wakeup(d->m);
    if (d->th_up) pthread_join(d->th, NULL);
    if (d->mth_up) pthread_join(d->mth, NULL);
    /* Deliveries in flight are dropped unrecorded: still pending in the
     * outbox, so the next start sends them again (at least once). */
    for (dl_job *j = d->rest, *n; j; j = n) {
        n = j->next;
        curl_multi_remove_handle(d->m, j->easy);
        job_free(j);
    }
    d->rest = NULL;
    /* Every result job and the wake job queued so far are done (their
     * callbacks use d); the count covers a store that no longer takes
     * jobs, whose queued ones still finish. */
    hub_store_drain(r->store);
    pthread_mutex_lock(&d->lk);
    while (d->pending_jobs > 0) pthread_cond_wait(&d->jcond, &d->lk);
    pthread_mutex_unlock(&d->lk);
    for (dl_job *j = d->mhead, *n; j; j = n) {
        n = j->next;
        job_free(j);
    }
    r->dl = NULL;
    if (d->m) curl_multi_cleanup(d->m);
    for (size_t i = 0; i < d->inflight.cap; i++) hub_free(d->inflight.slots[i].key);
    hub_free(d->inflight.slots);
    hub_free(d->ready);
    pthread_mutex_destroy(&d->lk);
    pthread_cond_destroy(&d->mcond);
    pthread_cond_destroy(&d->jcond);
    hub_free(d);
}
