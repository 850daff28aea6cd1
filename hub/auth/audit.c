/* The audit trail. Writes are audited by a record listener, in the very
 * transaction that writes the version; reads, searches and refusals are
 * copied into a queue (no store work on the request's thread) that a
 * flusher thread writes as one writer job per batch. After each batch the
 * flusher tails the table (id > the last one sent) and sends each new row
 * as an RFC 5424 syslog line: only committed rows go out, in order, and
 * the rows the listener wrote in other transactions go out too. */
#include "hub/auth.h"
#include "hub/record.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* One queued event, its strings copied (the request is gone by the time
 * it is written). */
typedef struct {
    hub_audit_kind kind;
    int outcome;
    int64_t at_ms;
    char client[128], subject[160], peer[64], channel[64], sender[128], entity_type[64],
        entity_id[72], query[160], detail[96];
} qev;

/* The queue is striped: each thread appends to its own stripe (threads
 * are dealt stripes in turn), so request threads do not contend for one
 * lock; on this VM a contended futex costs more than the append itself. */
#define STRIPES 8
typedef struct {
    pthread_mutex_t mu;
    qev *q;
    size_t n, cap;
    qev *spare;      /* the flusher's: the last written batch's buffer */
    size_t spare_cap;
    char pad[64];
} stripe;
static _Atomic unsigned next_stripe;
static _Thread_local int my_stripe = -1;

struct hub_audit {
    hub_audit_cfg cfg;
    char syslog[256], app[48], host[128];
    pthread_mutex_t mu;
    pthread_cond_t cv, flushed;
    stripe st[STRIPES];
    bool stopping;
    int64_t gen_asked, gen_done; /* flush requests and completions */
    pthread_t th;
    bool running;
    _Atomic int64_t dropped;
    int64_t last_sent;  /* the last row id sent to syslog */
    int fd;             /* syslog socket, -1 when none/closed */
    bool tcp;
    hub_metric *m_rows, *m_events, *m_dropped, *m_syslog_fail;
};

static void cp(char *dst, size_t cap, const char *s) {
    if (s == NULL) {
        dst[0] = '\0';
        return;
    }
    size_t n = strnlen(s, cap - 1);
    memcpy(dst, s, n);
    dst[n] = '\0';
}

void hub_audit_record(hub_audit *a, const hub_audit_event *ev) {
    if (a == NULL) return;
    if (my_stripe < 0) my_stripe = (int)(atomic_fetch_add(&next_stripe, 1) % STRIPES);
    stripe *sp = &a->st[my_stripe];
    pthread_mutex_lock(&sp->mu);
    if (sp->n == sp->cap) {
        size_t nc = sp->cap ? sp->cap * 2 : 256;
        qev *q = nc <= (size_t)a->cfg.queue_max / STRIPES ? hub_realloc(sp->q, nc * sizeof *q) : NULL;
        if (q == NULL) {
            pthread_mutex_unlock(&sp->mu);
            atomic_fetch_add(&a->dropped, 1);
            hub_metric_add(a->m_dropped, 1);
            return;
        }
        sp->q = q;
        sp->cap = nc;
    }
    qev *e = &sp->q[sp->n++];
    e->kind = ev->kind;
    e->outcome = ev->outcome;
    e->at_ms = ev->at_ms ? ev->at_ms : hub_now_ms();
    cp(e->client, sizeof e->client, ev->client);
    cp(e->subject, sizeof e->subject, ev->subject);
    cp(e->peer, sizeof e->peer, ev->peer);
    cp(e->channel, sizeof e->channel, ev->channel);
    cp(e->sender, sizeof e->sender, ev->sender);
    cp(e->entity_type, sizeof e->entity_type, ev->entity_type);
    cp(e->entity_id, sizeof e->entity_id, ev->entity_id);
    cp(e->query, sizeof e->query, ev->query);
    cp(e->detail, sizeof e->detail, ev->detail);
    bool big = sp->n == 4096; /* a big batch is worth writing before the timer */
    pthread_mutex_unlock(&sp->mu);
    if (big) pthread_cond_signal(&a->cv);
}

void hub_audit_refused(hub_audit *a, const char *channel, const char *peer, const char *why) {
    hub_audit_event ev = {.kind = HUB_AUDIT_LOGIN_FAIL, .outcome = 12, .channel = channel,
                          .peer = peer, .detail = why};
    hub_audit_record(a, &ev);
}

int64_t hub_audit_dropped(const hub_audit *a) {
    return a ? atomic_load(&((hub_audit *)a)->dropped) : 0;
}

hub_status hub_audit_record_tx(hub_audit *a, hub_store_tx *tx, const hub_audit_event *ev,
                               hub_err *err) {
    (void)a;
    return hub_audit_insert_tx(tx, ev, err);
}

/* ---- the batch job ------------------------------------------------------------ */

/* Reads, searches and refusals are grouped before they are written: the
 * events of one batch that differ only in their time, entity id and peer
 * port (one client's reads of Patients from one address with one outcome,
 * say) make one row, with the first and last time, the count, and the ids
 * read (each with how many times). A row costs the writer about as much as
 * a read costs the server, while a group's ids cost a few bytes each.
 * Nothing is lost but the time of each read inside the batch window (the
 * row keeps the window's first and last) and the peer's port; a crash
 * loses what a crash lost before, the events still queued (those since the
 * last batch committed, about flush_ms of them). */
#define GROUP_IDS_MAX 4000  /* bytes of ids in one row; more starts a row */

typedef struct {
    const qev *e;
    int64_t first, last, count;
    size_t seq;           /* its first event's place in the batch */
    size_t ids_at;        /* offset of its ids in the batch's text, or SIZE_MAX */
} row_out;

typedef struct {
    hub_store_job job;
    row_out *rows;
    size_t n;
    hub_buf ids;          /* every group's ids, NUL-separated */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    hub_status rc;
} batch_job;

/* Grouping: a group is the fields of its first event; an ident one id
 * read in one group (how often, when), chained per group in the order
 * first seen. Both are found through open-addressing tables of indexes
 * (0 empty, else index + 1), sized for the batch. */
typedef struct {
    const qev *e;
    uint64_t key;
    size_t head, tail;    /* its idents, SIZE_MAX none */
} group;
typedef struct {
    const char *id;
    uint64_t h;
    size_t g, next;
    int64_t first, last, count;
    size_t seq;
} ident;
typedef struct {
    group *g;
    ident *id;
    size_t ng, nid;
    uint32_t *gtab, *itab;
    size_t mask;
} grouping;

static const char *nz(const char *s) { return s[0] ? s : NULL; }

static uint64_t fnv(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (h ^ 0xff) * 1099511628211u; /* a separator: ("ab","") != ("a","b") */
}

/* Reads, searches and refusals are grouped (a peer refused again and again
 * is one row with a count, not a flood), and only with ids of FHIR's id
 * charset (so that the list's separators cannot appear in one). */
static bool groupable(const qev *e) {
    if (e->kind != HUB_AUDIT_READ && e->kind != HUB_AUDIT_SEARCH &&
        e->kind != HUB_AUDIT_LOGIN_FAIL)
        return false;
    for (const char *p = e->entity_id; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.'))
            return false;
    return true;
}

/* The peer's address without its port ("ip:port"): a client that opens a
 * connection per request is one party (the trail shows the address). */
static size_t addr_len(const char *peer) {
    const char *colon = strrchr(peer, ':');
    return colon ? (size_t)(colon - peer) : strlen(peer);
}

static uint64_t group_key(const qev *e) {
    uint64_t h = 14695981039346656037u ^ (uint64_t)e->kind;
    h = (h ^ (uint64_t)(unsigned)e->outcome) * 1099511628211u;
    for (size_t i = 0, n = addr_len(e->peer); i < n; i++)
        h = (h ^ (unsigned char)e->peer[i]) * 1099511628211u;
    const char *const f[] = {e->client, e->subject, e->channel, e->sender,
                             e->entity_type, e->query, e->detail};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) h = fnv(h, f[i]);
    return h;
}

static bool same_group(const qev *a, const qev *b) {
    size_t pa = addr_len(a->peer);
    return a->kind == b->kind && a->outcome == b->outcome && !strcmp(a->client, b->client) &&
           !strcmp(a->subject, b->subject) && pa == addr_len(b->peer) &&
           !memcmp(a->peer, b->peer, pa) &&
           !strcmp(a->channel, b->channel) && !strcmp(a->sender, b->sender) &&
           !strcmp(a->entity_type, b->entity_type) && !strcmp(a->query, b->query) &&
           !strcmp(a->detail, b->detail);
}

static size_t group_of(grouping *G, const qev *e) {
    uint64_t k = group_key(e);
    size_t i = (size_t)k & G->mask;
    for (; G->gtab[i]; i = (i + 1) & G->mask) {
        group *g = &G->g[G->gtab[i] - 1];
        if (g->key == k && same_group(g->e, e)) return G->gtab[i] - 1;
    }
    G->g[G->ng] = (group){.e = e, .key = k, .head = SIZE_MAX, .tail = SIZE_MAX};
    G->gtab[i] = (uint32_t)++G->ng;
    return G->ng - 1;
}

static void ident_add(grouping *G, size_t g, const qev *e, size_t seq) {
    uint64_t h = fnv((uint64_t)g * 0x9e3779b97f4a7c15u, e->entity_id);
    size_t i = (size_t)h & G->mask;
    for (; G->itab[i]; i = (i + 1) & G->mask) {
        ident *d = &G->id[G->itab[i] - 1];
        if (d->h == h && d->g == g && !strcmp(d->id, e->entity_id)) {
            d->count++;
            if (e->at_ms < d->first) d->first = e->at_ms;
            if (e->at_ms > d->last) d->last = e->at_ms;
            return;
        }
    }
    G->id[G->nid] = (ident){.id = e->entity_id, .h = h, .g = g, .next = SIZE_MAX,
                            .first = e->at_ms, .last = e->at_ms, .count = 1, .seq = seq};
    group *gr = &G->g[g];
    if (gr->tail == SIZE_MAX) gr->head = G->nid;
    else G->id[gr->tail].next = G->nid;
    gr->tail = G->nid;
    G->itab[i] = (uint32_t)++G->nid;
}

static hub_status add_row(batch_job *b, size_t *cap, const qev *e, size_t seq, size_t ids_at) {
    if (b->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        row_out *r = hub_realloc(b->rows, nc * sizeof *r);
        if (r == NULL) return HUB_E_NOMEM;
        b->rows = r;
        *cap = nc;
    }
    b->rows[b->n++] = (row_out){.e = e, .first = e->at_ms, .last = e->at_ms, .count = 1,
                                .seq = seq, .ids_at = ids_at};
    return HUB_OK;
}

/* A group's rows: its idents as "id" or "id*N", separated by spaces, a
 * new row of the group whenever the list is full. */
static hub_status group_rows(batch_job *b, size_t *cap, const grouping *G, const group *g) {
    row_out *row = NULL;
    hub_status rc = HUB_OK;
    for (size_t k = g->head; k != SIZE_MAX && !rc; k = G->id[k].next) {
        const ident *d = &G->id[k];
        if (row == NULL || (d->id[0] && b->ids.n - row->ids_at + strlen(d->id) + 24 > GROUP_IDS_MAX)) {
            rc = hub_buf_append(&b->ids, "", 1);
            if (!rc) rc = add_row(b, cap, g->e, d->seq, b->ids.n);
            if (rc) break;
            row = &b->rows[b->n - 1];
            *row = (row_out){.e = g->e, .first = INT64_MAX, .last = INT64_MIN,
                             .seq = SIZE_MAX, .ids_at = b->ids.n};
        }
        if (d->first < row->first) row->first = d->first;
        if (d->last > row->last) row->last = d->last;
        if (d->seq < row->seq) row->seq = d->seq;
        row->count += d->count;
        if (!d->id[0]) continue;
        if (b->ids.n > row->ids_at) rc = hub_buf_append(&b->ids, " ", 1);
        if (!rc) rc = hub_buf_append_cstr(&b->ids, d->id);
        if (!rc && d->count > 1) rc = hub_buf_printf(&b->ids, "*%" PRId64, d->count);
    }
    return rc;
}

/* Rows are written in the order of their first events. */
static int row_cmp(const void *x, const void *y) {
    const row_out *a = x, *b = y;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* The rows of a batch: events that cannot be grouped one row each, the
 * others one row per group. */
static hub_status build_rows(batch_job *b, const qev *const *evs, const size_t *ns, int nq) {
    size_t total = 0, cap = 0;
    for (int q = 0; q < nq; q++) total += ns[q];
    size_t tn = 16;
    while (tn < total * 2) tn <<= 1;
    grouping G = {.g = hub_malloc((total + 1) * sizeof *G.g),
                  .id = hub_malloc((total + 1) * sizeof *G.id),
                  .gtab = hub_calloc(tn, sizeof *G.gtab),
                  .itab = hub_calloc(tn, sizeof *G.itab),
                  .mask = tn - 1};
    hub_status rc = G.g && G.id && G.gtab && G.itab ? HUB_OK : HUB_E_NOMEM;
    size_t seq = 0;
    for (int q = 0; q < nq && !rc; q++)
        for (size_t i = 0; i < ns[q] && !rc; i++, seq++) {
            const qev *e = &evs[q][i];
            if (groupable(e)) ident_add(&G, group_of(&G, e), e, seq);
            else rc = add_row(b, &cap, e, seq, SIZE_MAX);
        }
    for (size_t g = 0; g < G.ng && !rc; g++) rc = group_rows(b, &cap, &G, &G.g[g]);
    if (!rc) rc = hub_buf_append(&b->ids, "", 1); /* ids.p is not NULL */
    if (!rc && b->n > 1) qsort(b->rows, b->n, sizeof *b->rows, row_cmp);
    hub_free(G.g);
    hub_free(G.id);
    hub_free(G.gtab);
    hub_free(G.itab);
    return rc;
}

static hub_status batch_run(hub_store_tx *tx, hub_store_job *sj, hub_err *err) {
    batch_job *b = (batch_job *)sj;
    for (size_t i = 0; i < b->n; i++) {
        const row_out *o = &b->rows[i];
        const qev *e = o->e;
        const char *ids = o->ids_at == SIZE_MAX ? "" : b->ids.p + o->ids_at;
        /* A group of one id keeps it in entity_id, as a single read does. */
        bool one_id = ids[0] && strchr(ids, ' ') == NULL;
        char id[72], addr[64];
        snprintf(id, sizeof id, "%.*s", (int)strcspn(ids, "*"), ids);
        /* A group of many requests has its peer's address, not a port. */
        snprintf(addr, sizeof addr, "%.*s", (int)addr_len(e->peer), e->peer);
        hub_audit_event ev = {.kind = e->kind,
                              .outcome = e->outcome,
                              .at_ms = o->first,
                              .client = nz(e->client),
                              .subject = nz(e->subject),
                              .peer = nz(o->count > 1 ? addr : e->peer),
                              .channel = nz(e->channel),
                              .sender = nz(e->sender),
                              .entity_type = nz(e->entity_type),
                              .entity_id = o->ids_at == SIZE_MAX ? nz(e->entity_id)
                                           : one_id         ? id
                                                            : NULL,
                              .query = nz(e->query),
                              .detail = nz(e->detail)};
        hub_status rc = hub_audit_insert_group_tx(tx, &ev, o->last, o->count, nz(ids), err);
        if (rc) return rc;
    }
    return HUB_OK;
}

static void batch_done(hub_store_job *sj, hub_status rc, const hub_err *err) {
    batch_job *b = (batch_job *)sj;
    if (rc) HUB_LOG_ERROR("audit", "batch not written rows=%zu err='%s'", b->n, err ? err->msg : "?");
    pthread_mutex_lock(&b->mu);
    b->rc = rc;
    b->done = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static int64_t events_of(const batch_job *b) {
    int64_t n = 0;
    for (size_t i = 0; i < b->n; i++) n += b->rows[i].count;
    return n;
}

static void write_batch(hub_audit *a, const qev *const *evs, const size_t *ns, int nq) {
    batch_job b;
    memset(&b, 0, sizeof b);
    hub_buf_init(&b.ids);
    b.job.run = batch_run;
    b.job.done = batch_done;
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    hub_err err;
    hub_status rc = build_rows(&b, evs, ns, nq);
    if (rc) hub_err_set(&err, rc, "audit", "out of memory grouping a batch");
    else if (b.n == 0) goto out;
    else rc = hub_store_submit(a->cfg.store, &b.job, &err);
    if (rc == HUB_OK) {
        pthread_mutex_lock(&b.mu);
        while (!b.done) pthread_cond_wait(&b.cv, &b.mu);
        pthread_mutex_unlock(&b.mu);
        if (b.rc == HUB_OK) {
            hub_metric_add(a->m_rows, (int64_t)b.n);
            hub_metric_add(a->m_events, events_of(&b));
        }
    } else {
        size_t n = 0;
        for (int q = 0; q < nq; q++) n += ns[q];
        HUB_LOG_ERROR("audit", "batch not queued events=%zu err='%s'", n, err.msg);
        atomic_fetch_add(&a->dropped, (int64_t)n);
    }
out:
    hub_free(b.rows);
    hub_buf_release(&b.ids);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
}

/* ---- syslog ----------------------------------------------------------------------- */

static void syslog_close(hub_audit *a) {
    if (a->fd >= 0) close(a->fd);
    a->fd = -1;
}

static bool syslog_open(hub_audit *a) {
    if (a->fd >= 0) return true;
    const char *u = a->syslog;
    bool tcp = strncmp(u, "tcp://", 6) == 0;
    const char *hp = u + 6;
    char host[200], port[16];
    const char *colon = strrchr(hp, ':');
    if (colon == NULL || (size_t)(colon - hp) >= sizeof host) return false;
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    snprintf(port, sizeof port, "%s", colon + 1);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = tcp ? SOCK_STREAM : SOCK_DGRAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) return false;
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    a->fd = fd;
    a->tcp = tcp;
    return fd >= 0;
}

static bool syslog_send(hub_audit *a, const char *p, size_t n) {
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!syslog_open(a)) return false;
        bool ok;
        if (a->tcp) {
            /* RFC 6587 octet counting: "LEN SP MSG". */
            char pre[24];
            int pn = snprintf(pre, sizeof pre, "%zu ", n);
            ok = send(a->fd, pre, (size_t)pn, MSG_NOSIGNAL) == pn &&
                 send(a->fd, p, n, MSG_NOSIGNAL) == (ssize_t)n;
        } else {
            ok = send(a->fd, p, n, 0) == (ssize_t)n;
        }
        if (ok) return true;
        syslog_close(a);
    }
    return false;
}

typedef struct {
    hub_audit *a;
    hub_buf line;
    int64_t last;
    bool failed;
} tail_ctx;

static hub_status tail_row(void *ud, const hub_audit_row *row) {
    tail_ctx *t = ud;
    t->line.n = 0;
    if (hub_audit_syslog_line(row, t->a->host, t->a->app, &t->line) != HUB_OK) return HUB_E_NOMEM;
    if (!syslog_send(t->a, t->line.p, t->line.n)) {
        t->failed = true;
        return HUB_E_IO;
    }
    t->last = row->id;
    return HUB_OK;
}

static void syslog_tail(hub_audit *a) {
    if (!a->syslog[0]) return;
    tail_ctx t = {.a = a, .last = a->last_sent};
    hub_buf_init(&t.line);
    for (int pages = 0; pages < 100; pages++) {
        hub_audit_filter f = {.oldest_first = true, .after_id = t.last, .kind = -1, .limit = 1000};
        int64_t before = t.last;
        hub_err err;
        hub_status rc = hub_audit_list(a->cfg.store, &f, tail_row, &t, NULL, &err);
        if (rc || t.last == before) break;
    }
    if (t.failed) hub_metric_add(a->m_syslog_fail, 1);
    a->last_sent = t.last;
    hub_buf_release(&t.line);
}

/* ---- the flusher ------------------------------------------------------------------- */

static void *flusher(void *arg) {
    hub_audit *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        if (!a->stopping && a->gen_asked == a->gen_done) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ns = ts.tv_nsec + (int64_t)a->cfg.flush_ms * 1000000;
            ts.tv_sec += ns / 1000000000;
            ts.tv_nsec = ns % 1000000000;
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
        }
        int64_t gen = a->gen_asked;
        bool stop = a->stopping;
        pthread_mutex_unlock(&a->mu);
        /* Swap each stripe's queue for its spare: request threads keep
         * appending while this batch is written, in one transaction. */
        const qev *evs[STRIPES];
        size_t ns[STRIPES], caps[STRIPES];
        for (int i = 0; i < STRIPES; i++) {
            stripe *sp = &a->st[i];
            pthread_mutex_lock(&sp->mu);
            evs[i] = sp->q;
            ns[i] = sp->n;
            caps[i] = sp->cap;
            sp->q = sp->spare;
            sp->cap = sp->spare_cap;
            sp->n = 0;
            pthread_mutex_unlock(&sp->mu);
        }
        write_batch(a, evs, ns, STRIPES);
        for (int i = 0; i < STRIPES; i++) {
            a->st[i].spare = (qev *)evs[i];
            a->st[i].spare_cap = caps[i];
        }
        syslog_tail(a);
        pthread_mutex_lock(&a->mu);
        a->gen_done = gen;
        pthread_cond_broadcast(&a->flushed);
        if (stop) break;
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

void hub_audit_flush(hub_audit *a) {
    if (a == NULL || !a->running) return;
    pthread_mutex_lock(&a->mu);
    int64_t want = ++a->gen_asked;
    pthread_cond_signal(&a->cv);
    while (a->gen_done < want) pthread_cond_wait(&a->flushed, &a->mu);
    pthread_mutex_unlock(&a->mu);
}

/* ---- the write listener ------------------------------------------------------------- */

static hub_status on_change(void *ud, hub_store_tx *tx, const hub_record_change *ch, hub_err *err) {
    (void)ud;
    const hub_actor *ac = ch->actor;
    char mid[24];
    if (ac && ac->message_id) snprintf(mid, sizeof mid, "message/%" PRId64, ac->message_id);
    hub_audit_event ev = {
        .kind = ch->deleted ? HUB_AUDIT_DELETE : ch->created ? HUB_AUDIT_CREATE : HUB_AUDIT_UPDATE,
        .at_ms = ch->last_updated_ms,
        .client = ac ? ac->client : NULL,
        .subject = ac ? ac->subject : NULL,
        .peer = ac ? ac->peer : NULL,
        .channel = ac ? ac->channel : NULL,
        .sender = ac ? ac->sender : NULL,
        .entity_type = ch->type,
        .entity_id = ch->id,
        .detail = ac && ac->message_id ? mid : NULL};
    return hub_audit_insert_tx(tx, &ev, err);
}

hub_status hub_audit_listen(hub_audit *a, hub_record *r, hub_err *err) {
    hub_status rc = hub_record_listen(r, on_change, a);
    if (rc) return hub_err_set(err, rc, "audit", "cannot listen to the record");
    return HUB_OK;
}

static hub_status newest_id(void *ud, const hub_audit_row *row) {
    *(int64_t *)ud = row->id;
    return HUB_OK;
}

/* ---- life ---------------------------------------------------------------------------- */

hub_status hub_audit_new(const hub_audit_cfg *c, hub_audit **out, hub_err *err) {
    hub_audit *a = hub_calloc(1, sizeof *a);
    if (a == NULL) return hub_err_set(err, HUB_E_NOMEM, "audit", "out of memory");
    a->cfg = *c;
    if (a->cfg.flush_ms <= 0) a->cfg.flush_ms = 200;
    if (a->cfg.queue_max <= 0) a->cfg.queue_max = 65536;
    a->fd = -1;
    cp(a->syslog, sizeof a->syslog, c->syslog);
    cp(a->app, sizeof a->app, c->app_name && *c->app_name ? c->app_name : "hub");
    if (gethostname(a->host, sizeof a->host) != 0 || !a->host[0]) snprintf(a->host, sizeof a->host, "-");
    a->host[sizeof a->host - 1] = '\0';
    if (a->syslog[0] && strncmp(a->syslog, "udp://", 6) != 0 && strncmp(a->syslog, "tcp://", 6) != 0) {
        hub_free(a);
        return hub_err_set(err, HUB_E_CONFIG, "audit.syslog",
                           "'%.100s' is not udp://host:port or tcp://host:port", c->syslog);
    }
    a->m_rows = hub_metric_get(HUB_METRIC_COUNTER, "hub_audit_rows_total", NULL,
                               "Audit rows written in batches (reads, searches, refusals).");
    a->m_events = hub_metric_get(HUB_METRIC_COUNTER, "hub_audit_batched_events_total", NULL,
                                 "Audit events written in batches (a grouped row holds many).");
    a->m_dropped = hub_metric_get(HUB_METRIC_COUNTER, "hub_audit_dropped_total", NULL,
                                  "Audit events lost because the queue was full.");
    a->m_syslog_fail = hub_metric_get(HUB_METRIC_COUNTER, "hub_audit_syslog_failures_total", NULL,
                                      "Syslog sends that failed (retried on the next batch).");
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    for (int i = 0; i < STRIPES; i++) pthread_mutex_init(&a->st[i].mu, NULL);
    pthread_cond_init(&a->flushed, NULL);
    /* Syslog starts after the newest row already there: a restart does not
     * resend the whole trail. */
    if (a->syslog[0]) {
        hub_audit_filter f = {.kind = -1, .limit = 1};
        hub_err e2;
        if (hub_audit_list(c->store, &f, newest_id, &a->last_sent, NULL, &e2) != HUB_OK)
            HUB_LOG_WARN("audit", "newest row unknown err='%s'", e2.msg);
    }
    if (pthread_create(&a->th, NULL, flusher, a) != 0) {
        hub_audit_free(a);
        return hub_err_set(err, HUB_E_NOMEM, "audit", "cannot start the flusher");
    }
    a->running = true;
    *out = a;
    return HUB_OK;
}

void hub_audit_free(hub_audit *a) {
    if (a == NULL) return;
    if (a->running) {
        pthread_mutex_lock(&a->mu);
        a->stopping = true;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->th, NULL);
    }
    syslog_close(a);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    pthread_cond_destroy(&a->flushed);
    for (int i = 0; i < STRIPES; i++) {
        pthread_mutex_destroy(&a->st[i].mu);
        hub_free(a->st[i].q);
        hub_free(a->st[i].spare);
    }
    hub_free(a);
}
