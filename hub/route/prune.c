/* route: retention. Delivered events older than route.retention_days, and
 * the attempts that delivered them, are pruned by a background thread in
 * small writer jobs (a few hundred rows each, then the queue is free for
 * deliveries and changes again). Undelivered events are never pruned:
 * they are what a subscriber in error resumes from. $events answers for a
 * pruned range with an OperationOutcome (ops.c). */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define PRUNE_ROWS 256 /* rows of each kind per writer job */

struct hub__pruner {
    hub_route *r;
    pthread_t th;
    bool up;
    pthread_mutex_t lk;
    pthread_cond_t cv;
    bool stop;
    /* one job at a time; its state lives here */
    hub_store_job job;
    bool job_done;
    hub_status job_rc;
    int64_t cutoff_ms;
    char sub_after[72];    /* the pass over subscriptions so far */
    bool subs_end;         /* ... is over */
    int64_t att_after;     /* attempts looked at so far */
    int64_t events, attempts; /* rows pruned by the job */
    int64_t total_events, total_attempts;
};

static hub_status prune_run(hub_store_tx *tx, hub_store_job *job, hub_err *err) {
    hub__pruner *p = job->ud;
    char next[72];
    bool end;
    hub_status rc = hub_route_store_prune_events(tx, p->sub_after, p->cutoff_ms, PRUNE_ROWS, next,
                                                 &end, &p->events, err);
    if (rc) return rc;
    int64_t att_next;
    rc = hub_route_store_prune_attempts(tx, p->att_after, p->cutoff_ms, PRUNE_ROWS, &att_next,
                                        &p->attempts, err);
    if (rc) return rc;
    snprintf(p->sub_after, sizeof p->sub_after, "%s", next);
    p->subs_end = end;
    p->att_after = att_next;
    return HUB_OK;
}

static void prune_done(hub_store_job *job, hub_status rc, const hub_err *err) {
    hub__pruner *p = job->ud;
    if (rc) HUB_LOG_WARN("route", "prune failed err='%s'", err ? err->msg : "");
    pthread_mutex_lock(&p->lk);
    p->job_rc = rc;
    p->job_done = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lk);
}

/* Sleeps ms (false when told to stop). Holds p->lk. */
static bool nap(hub__pruner *p, int64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (!p->stop && pthread_cond_timedwait(&p->cv, &p->lk, &ts) != ETIMEDOUT) {
    }
    return !p->stop;
}

/* One writer job; false when the store refused it or we are stopping.
 * Holds p->lk. */
static bool one_job(hub__pruner *p) {
    p->job = (hub_store_job){.run = prune_run, .done = prune_done, .ud = p};
    p->job_done = false;
    p->events = p->attempts = 0;
    hub_err err;
    if (hub_store_submit(p->r->store, &p->job, &err) != HUB_OK) return false;
    /* the job's done() comes even when we are told to stop meanwhile */
    while (!p->job_done) pthread_cond_wait(&p->cv, &p->lk);
    p->total_events += p->events;
    p->total_attempts += p->attempts;
    return p->job_rc == HUB_OK;
}

/* A pass: jobs until both the subscriptions and the attempts are gone
 * through, a short pause between jobs so deliveries and changes queue in
 * between. */
static void pass(hub__pruner *p) {
    int64_t day = 86400000;
    p->cutoff_ms = hub_now_ms() - (int64_t)p->r->cfg.retention_days * day;
    p->sub_after[0] = '\0';
    p->subs_end = false;
    p->total_events = p->total_attempts = 0;
    for (;;) {
        int64_t att_before = p->att_after;
        if (!one_job(p)) return;
        bool more = !p->subs_end || p->att_after != att_before;
        if (!more || !nap(p, 5)) break;
    }
    if (p->total_events || p->total_attempts)
        HUB_LOG_INFO("route", "pruned events=%lld attempts=%lld retention_days=%d",
                     (long long)p->total_events, (long long)p->total_attempts,
                     p->r->cfg.retention_days);
}

static void *prune_main(void *arg) {
    hub__pruner *p = arg;
    pthread_mutex_lock(&p->lk);
    while (nap(p, p->r->cfg.prune_interval_ms)) pass(p);
    pthread_mutex_unlock(&p->lk);
    return NULL;
}

hub_status hub__prune_start(hub_route *r, hub_err *err) {
    if (r->cfg.retention_days < 0) return HUB_OK;
    hub__pruner *p = hub_calloc(1, sizeof *p);
    if (!p) return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
    p->r = r;
    pthread_mutex_init(&p->lk, NULL);
    pthread_cond_init(&p->cv, NULL);
    r->pruner = p;
    p->up = pthread_create(&p->th, NULL, prune_main, p) == 0;
    if (!p->up) return hub_err_set(err, HUB_E_STATE, "route", "cannot start the pruning thread");
    return HUB_OK;
}

void hub__prune_stop(hub_route *r) {
    hub__pruner *p = r->pruner;
    if (!p) return;
    pthread_mutex_lock(&p->lk);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lk);
    if (p->up) pthread_join(p->th, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->lk);
    hub_free(p);
    r->pruner = NULL;
}
