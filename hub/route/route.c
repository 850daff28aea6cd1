/* route: the subscription registry, matching changes in memory, and the
 * change listener that writes outbox rows in the change's transaction. */
#include "internal.h"

#include "hub/mpi.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <string.h>

/* ---- the index: string key -> list of subscriptions ---------------------- */

static uint64_t hash_key(const char *k) {
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++) {
        h ^= (unsigned char)*k;
        h *= 1099511628211ull;
    }
    return h;
}

static hub__slot *ix_find(hub__index *ix, const char *key) {
    if (ix->cap == 0) return NULL;
    for (size_t i = hash_key(key) & (ix->cap - 1);; i = (i + 1) & (ix->cap - 1)) {
        hub__slot *s = &ix->slots[i];
        if (!s->key) return NULL;
        if (strcmp(s->key, key) == 0) return s;
    }
}

static hub_status ix_grow(hub__index *ix) {
    size_t cap = ix->cap ? ix->cap * 2 : 64;
    hub__slot *ns = hub_calloc(cap, sizeof *ns);
    if (!ns) return HUB_E_NOMEM;
    for (size_t i = 0; i < ix->cap; i++) {
        hub__slot *o = &ix->slots[i];
        if (!o->key) continue;
        size_t k = hash_key(o->key) & (cap - 1);
        while (ns[k].key) k = (k + 1) & (cap - 1);
        ns[k] = *o;
    }
    hub_free(ix->slots);
    ix->slots = ns;
    ix->cap = cap;
    return HUB_OK;
}

/* Slots are never removed (an emptied list stays, for the next one). */
static hub_status ix_add(hub__index *ix, const char *key, hub__rsub *s) {
    hub__slot *sl = ix_find(ix, key);
    if (!sl) {
        if ((ix->used + 1) * 10 >= ix->cap * 7 && ix_grow(ix)) return HUB_E_NOMEM;
        size_t k = hash_key(key) & (ix->cap - 1);
        while (ix->slots[k].key) k = (k + 1) & (ix->cap - 1);
        sl = &ix->slots[k];
        if (!(sl->key = hub_strdup(key))) return HUB_E_NOMEM;
        ix->used++;
    }
    for (size_t i = 0; i < sl->n; i++)
        if (sl->v[i] == s) return HUB_OK;
    if (sl->n == sl->cap) {
        size_t cap = sl->cap ? sl->cap * 2 : 4;
        hub__rsub **nv = hub_realloc(sl->v, cap * sizeof *nv);
        if (!nv) return HUB_E_NOMEM;
        sl->v = nv;
        sl->cap = cap;
    }
    sl->v[sl->n++] = s;
    return HUB_OK;
}

static void ix_del(hub__index *ix, const char *key, hub__rsub *s) {
    hub__slot *sl = ix_find(ix, key);
    if (!sl) return;
    for (size_t i = 0; i < sl->n; i++)
        if (sl->v[i] == s) {
            sl->v[i] = sl->v[--sl->n];
            return;
        }
}

static void ix_free(hub__index *ix) {
    for (size_t i = 0; i < ix->cap; i++) {
        hub_free(ix->slots[i].key);
        hub_free(ix->slots[i].v);
    }
    hub_free(ix->slots);
    memset(ix, 0, sizeof *ix);
}

/* ---- keys of a subscription ---------------------------------------------------- */

/* A leg is indexed by one of its clauses whose values are exact tokens or
 * references (patient=Patient/1, code=x|y), or by _id; else it is scanned
 * for every change of its type. */
typedef void (*key_fn)(void *ud, const char *key);

static void query_keys(const hub__rsub *s, const hub__leg *l, const hub_store_query *q,
                       key_fn fn, void *ud);

/* A leg is found through its query's keys and, when a delete fires it on
 * another condition (an appointment cancelled by deleting a booked one),
 * its delete query's keys too. */
static void leg_keys(const hub__rsub *s, const hub__leg *l, key_fn fn, void *ud) {
    query_keys(s, l, l->q, fn, ud);
    if (l->dq && l->dq != l->q) query_keys(s, l, l->dq, fn, ud);
}

static void query_keys(const hub__rsub *s, const hub__leg *l, const hub_store_query *q,
                       key_fn fn, void *ud) {
    char key[512];
    if (s->attributed) {
        /* found through the patient's GP and care teams, not its rows */
        if (l->attr & HUB__ATTR_GP) {
            snprintf(key, sizeof key, "%s\x1f@gp\x1f%s", l->type, s->attributed);
            fn(ud, key);
        }
        if (l->attr & HUB__ATTR_TEAM) {
            snprintf(key, sizeof key, "%s\x1f@team\x1f%s", l->type, s->attributed);
            fn(ud, key);
        }
        return;
    }
    /* A selective clause first (a reference, an identifier: few
     * subscriptions per value), then any token clause (a status), then _id.
     * A clause over several row names (an alias: Observation's patient is
     * its subject rows) is found under each. */
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < q->nclauses; i++) {
            const hub_store_qclause *c = &q->clauses[i];
            bool ok = !c->negate && c->nvals > 0;
            ok = ok && (pass < 2 ? (c->kind == HUB_QC_INDEX && c->ix == HUB_IX_TOKEN &&
                                    (pass == 1 || c->selective))
                                 : c->kind == HUB_QC_ID);
            for (size_t k = 0; ok && k < c->nvals; k++)
                ok = c->vals[k].value && c->vals[k].op == HUB_SQ_EQ && !c->vals[k].chain &&
                     !c->vals[k].param;
            if (!ok) continue;
            size_t np = pass < 2 && c->nparams ? c->nparams : 1;
            for (size_t j = 0; j < np; j++)
                for (size_t k = 0; k < c->nvals; k++) {
                    const char *name = pass == 2 ? "_id" : c->nparams ? c->params[j] : c->param;
                    snprintf(key, sizeof key, "%s\x1f%s\x1f%s", l->type, name, c->vals[k].value);
                    fn(ud, key);
                }
            return;
        }
    }
    snprintf(key, sizeof key, "%s\x1f", l->type);
    fn(ud, key);
}

typedef struct {
    hub_route *r;
    hub__rsub *s;
    hub_status rc;
    bool add;
} keyctx;

static void key_apply(void *ud, const char *key) {
    keyctx *k = ud;
    if (k->add) {
        if (!k->rc && ix_add(&k->r->ix, key, k->s)) k->rc = HUB_E_NOMEM;
    } else {
        ix_del(&k->r->ix, key, k->s);
    }
}

hub__rsub *hub__reg_get(hub_route *r, const char *id) {
    hub__slot *sl = ix_find(&r->byid, id);
    return sl && sl->n ? sl->v[0] : NULL;
}

/* Takes the registry lock. Replaces any earlier subscription of that id. */
static void reg_remove_locked(hub_route *r, const char *id) {
    hub__rsub *old = hub__reg_get(r, id);
    if (!old) return;
    keyctx k = {r, old, HUB_OK, false};
    for (size_t i = 0; i < old->nlegs; i++) leg_keys(old, &old->legs[i], key_apply, &k);
    ix_del(&r->byid, id, old);
    r->nsubs--;
    if (old->attributed) r->nattributed--;
    hub__rsub_free(old);
}

static hub_status reg_put(hub_route *r, hub__rsub *s) {
    pthread_mutex_lock(&r->lock);
    hub__rsub *old = hub__reg_get(r, s->id);
    if (old) s->last_sent_ms = old->last_sent_ms;
    reg_remove_locked(r, s->id);
    keyctx k = {r, s, HUB_OK, true};
    for (size_t i = 0; i < s->nlegs; i++) leg_keys(s, &s->legs[i], key_apply, &k);
    if (!k.rc && ix_add(&r->byid, s->id, s)) k.rc = HUB_E_NOMEM;
    if (k.rc) {
        k.add = false;
        for (size_t i = 0; i < s->nlegs; i++) leg_keys(s, &s->legs[i], key_apply, &k);
        ix_del(&r->byid, s->id, s);
        pthread_mutex_unlock(&r->lock);
        hub__rsub_free(s);
        return HUB_E_NOMEM;
    }
    r->nsubs++;
    if (s->attributed) r->nattributed++;
    pthread_mutex_unlock(&r->lock);
    return HUB_OK;
}

size_t hub_route_count(hub_route *r) {
    pthread_mutex_lock(&r->lock);
    size_t n = r->nsubs;
    pthread_mutex_unlock(&r->lock);
    return n;
}

static char *sdup(const char *s) { return s ? hub_strdup(s) : NULL; }

bool hub__reg_copy(hub_route *r, const char *id, hub__subcfg *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->lock);
    hub__rsub *s = hub__reg_get(r, id);
    bool ok = s != NULL;
    if (ok) {
        snprintf(out->id, sizeof out->id, "%s", id);
        out->chan = s->d.chan;
        out->payload = s->d.payload;
        out->tls = s->d.tls;
        out->port = s->d.port;
        out->heartbeat_s = s->d.heartbeat_s;
        snprintf(out->host, sizeof out->host, "%s", s->d.host);
        out->endpoint = sdup(s->d.endpoint);
        out->secret = sdup(s->secret);
        out->topic = sdup(s->d.topic);
        out->headers = hub_calloc(s->d.nheaders + 1, sizeof *out->headers);
        ok = out->endpoint && (!s->secret || out->secret) && (!s->d.topic || out->topic) &&
             out->headers;
        for (size_t i = 0; ok && i < s->d.nheaders; i++) {
            out->headers[i] = sdup(s->d.headers[i]);
            ok = out->headers[i] != NULL;
            out->nheaders++;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (!ok) hub__subcfg_release(out);
    return ok;
}

void hub__subcfg_release(hub__subcfg *c) {
    hub_free(c->endpoint);
    hub_free(c->secret);
    hub_free(c->topic);
    for (size_t i = 0; c->headers && i < c->nheaders; i++) hub_free(c->headers[i]);
    hub_free(c->headers);
    memset(c, 0, sizeof *c);
}

/* ---- matching in memory ------------------------------------------------------------ */

/* Subscriptions looked at for changes: what the index saves shows here
 * (a change should cost its few candidates, whatever the number held). */
static hub_metric *m_candidates;

static bool prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static bool tok_val(const hub_store_token *t, const hub_store_qval *v) {
    if (v->value) {
        switch (v->op) {
        case HUB_SQ_PREFIX:
        case HUB_SQ_BELOW:
            if (!prefix(t->value, v->value)) return false;
            break;
        case HUB_SQ_CONTAINS:
            if (!strstr(t->value, v->value)) return false;
            break;
        case HUB_SQ_EXACT:
            if (strcmp(t->system, v->value) != 0) return false;
            break;
        case HUB_SQ_ABOVE:
            if (!prefix(v->value, t->value)) return false;
            break;
        default:
            if (strcmp(t->value, v->value) != 0) return false;
        }
    }
    if (v->system && v->op != HUB_SQ_EXACT && strcmp(t->system, v->system) != 0) return false;
    return true;
}

/* The store's date and number predicates (hub/store/search.c), in C. */
static bool date_val(int64_t lo, int64_t hi, const hub_store_qval *v) {
    switch (v->op) {
    case HUB_SQ_NE: return !(lo >= v->lo && hi <= v->hi);
    case HUB_SQ_GT: return hi > v->hi;
    case HUB_SQ_LT: return lo < v->lo;
    case HUB_SQ_GE: return hi > v->hi || (lo >= v->lo && hi <= v->hi);
    case HUB_SQ_LE: return lo < v->lo || (lo >= v->lo && hi <= v->hi);
    case HUB_SQ_SA: return lo >= v->hi;
    case HUB_SQ_EB: return hi <= v->lo;
    case HUB_SQ_AP: {
        int64_t now = hub_now_ms();
        int64_t d = (v->lo > now ? v->lo - now : now - v->lo) / 10;
        if (d < 86400000) d = 86400000;
        return lo < v->hi + d && hi > v->lo - d;
    }
    default: return lo >= v->lo && hi <= v->hi;
    }
}

static bool num_val(const hub_store_token *t, const hub_store_qval *v) {
    double n = t->num;
    bool ok;
    switch (v->op) {
    case HUB_SQ_NE: ok = !(n >= v->num_lo && n < v->num_hi); break;
    case HUB_SQ_GT:
    case HUB_SQ_SA: ok = n > v->num; break;
    case HUB_SQ_LT:
    case HUB_SQ_EB: ok = n < v->num; break;
    case HUB_SQ_GE: ok = n >= v->num; break;
    case HUB_SQ_LE: ok = n <= v->num; break;
    case HUB_SQ_AP: {
        double d = v->num * 0.1;
        if (d < 0) d = -d;
        ok = n >= v->num - d && n <= v->num + d;
        break;
    }
    default: ok = n >= v->num_lo && n < v->num_hi;
    }
    if (ok && v->value && strcmp(t->value, v->value) != 0) ok = false;
    if (ok && v->system && strcmp(t->system, v->system) != 0) ok = false;
    return ok;
}

static bool row_param(const hub_store_token *t, const hub_store_qclause *c) {
    if (t->kind != c->ix) return false;
    if (c->nparams == 0) return c->param && strcmp(t->param, c->param) == 0;
    for (size_t i = 0; i < c->nparams; i++)
        if (strcmp(t->param, c->params[i]) == 0) return true;
    return false;
}

typedef struct {
    const char *id;
    int64_t last_updated_ms;
    const hub_store_token *toks;
    size_t ntoks;
} view;

/* Whether row t is one value v names (a composite's: by its own name, or
 * its name's start) and, for a composite paired from two parameters, the
 * resource also has the first's row (the store's with_row). */
static bool val_row(const hub_store_token *t, const hub_store_qval *v, const view *w) {
    if (v->param_prefix ? !prefix(t->param, v->param) : strcmp(t->param, v->param) != 0)
        return false;
    if (!v->with_param) return true;
    for (size_t i = 0; i < w->ntoks; i++) {
        const hub_store_token *o = &w->toks[i];
        if (o->kind != HUB_IX_TOKEN || strcmp(o->param, v->with_param) != 0) continue;
        if (v->with_value ? strcmp(o->value, v->with_value) != 0 : !o->value[0]) continue;
        if (v->with_system && strcmp(o->system, v->with_system) != 0) continue;
        return true;
    }
    return false;
}

static bool clause_match(const hub_store_qclause *c, const view *v) {
    bool any = false;
    switch (c->kind) {
    case HUB_QC_ID:
        for (size_t i = 0; !any && i < c->nvals; i++)
            any = c->vals[i].value && strcmp(c->vals[i].value, v->id) == 0;
        return c->negate ? !any : any;
    case HUB_QC_UPDATED:
        for (size_t i = 0; !any && i < c->nvals; i++)
            any = date_val(v->last_updated_ms, v->last_updated_ms + 1, &c->vals[i]);
        return any;
    case HUB_QC_MISSING:
        for (size_t i = 0; !any && i < v->ntoks; i++) {
            const hub_store_token *t = &v->toks[i];
            if (c->nvals > 0 && c->vals[0].param) { /* a composite's */
                for (size_t k = 0; !any && k < c->nvals; k++)
                    any = t->kind == c->ix && val_row(t, &c->vals[k], v);
            } else {
                any = row_param(t, c);
            }
        }
        return c->negate ? any : !any;
    case HUB_QC_INDEX:
        for (size_t i = 0; !any && i < v->ntoks; i++) {
            const hub_store_token *t = &v->toks[i];
            bool own = c->nvals > 0 && c->vals[0].param; /* the values name their rows */
            if (own ? t->kind != c->ix : !row_param(t, c)) continue;
            if (c->nvals == 0) any = true;
            for (size_t k = 0; !any && k < c->nvals; k++) {
                const hub_store_qval *qv = &c->vals[k];
                if (qv->param && !val_row(t, qv, v)) continue;
                any = c->ix == HUB_IX_DATE     ? date_val(t->lo, t->hi, qv)
                      : c->ix == HUB_IX_NUMBER ? num_val(t, qv)
                                               : tok_val(t, qv);
            }
        }
        return c->negate ? !any : any;
    default:
        return false; /* refused when the subscription was written */
    }
}

static bool query_match(const hub_store_query *q, const view *v) {
    for (size_t i = 0; i < q->nclauses; i++)
        if (!clause_match(&q->clauses[i], v)) return false;
    return true;
}

/* ---- a golden patient stands for its linked records ------------------------------- */

/* The golden Patient of source `id` as the patient index links it now, in
 * this transaction (a link made earlier in the same Bundle counts), or
 * NULL when it has none (no index, a golden itself, unlinked). */
static const char *golden_of(hub_store_tx *tx, hub_arena *a, const char *id) {
    hub_mpi_st_link l;
    hub_err err;
    if (hub_mpi_st_link_get(tx, id, &l, &err) != HUB_OK || !l.golden[0] ||
        strcmp(l.golden, id) == 0)
        return NULL;
    return hub_arena_strndup(a, l.golden, strlen(l.golden));
}

/* Every row of v that references a source Patient gets a twin naming its
 * golden Patient, so a subscription on the golden patient (criteria or a
 * topic's patient filter) matches its sources' changes. Resolved at match
 * time, not when the subscription is written: links made later count at
 * once, an unlink stops them at once, and the cost is one lookup per
 * Patient the change names (few), whatever the number of subscriptions. */
#define MAX_SOURCES 8
static void add_golden_rows(hub_store_tx *tx, hub_arena *a, view *v) {
    const char *src[MAX_SOURCES], *gold[MAX_SOURCES];
    size_t nsrc = 0, extra = 0;
    for (size_t i = 0; i < v->ntoks; i++) {
        const hub_store_token *t = &v->toks[i];
        if (t->kind != HUB_IX_TOKEN || strcmp(t->system, "Patient") != 0 || !t->value[0] ||
            strchr(t->value, '/'))
            continue;
        size_t k = 0;
        while (k < nsrc && strcmp(src[k], t->value) != 0) k++;
        if (k == nsrc) {
            if (nsrc == MAX_SOURCES) continue;
            src[nsrc] = t->value;
            gold[nsrc++] = golden_of(tx, a, t->value);
        }
        if (gold[k]) extra++;
    }
    if (extra == 0) return;
    hub_store_token *rows = hub_arena_alloc(a, (v->ntoks + extra) * sizeof *rows);
    if (!rows) return;
    memcpy(rows, v->toks, v->ntoks * sizeof *rows);
    size_t n = v->ntoks;
    for (size_t i = 0; i < v->ntoks; i++) {
        const hub_store_token *t = &v->toks[i];
        if (t->kind != HUB_IX_TOKEN || strcmp(t->system, "Patient") != 0) continue;
        for (size_t k = 0; k < nsrc; k++)
            if (gold[k] && strcmp(src[k], t->value) == 0) {
                rows[n] = *t;
                rows[n++].value = gold[k];
                break;
            }
    }
    v->toks = rows;
    v->ntoks = n;
}

/* ---- the listener ------------------------------------------------------------------- */

/* The previous version's index rows (updates of topics that look at the
 * state before; deletes, matched as the resource was). Loaded once per
 * change, only when a candidate needs it. */
typedef struct {
    bool tried, have;
    view v;
    hub_arena a;
    json_t *j; /* the rows borrow its strings */
} prev_rows;

static void prev_load(hub_route *r, hub_store_tx *tx, const hub_record_change *ch, prev_rows *p) {
    if (p->tried) return;
    p->tried = true;
    if (ch->version <= 1) return;
    hub_store_version sv;
    hub_err err;
    if (hub_store_res_get(tx, ch->type, ch->id, ch->version - 1, &sv, &err) != HUB_OK ||
        sv.deleted || !sv.json)
        return;
    p->j = json_loadb(sv.json, sv.json_len, 0, NULL);
    if (!p->j) return;
    hub_arena_init(&p->a, 4096);
    hub_store_token *rows = NULL;
    size_t n = 0;
    if (hub_record_extract(r->defs, r->sps, &p->a, ch->type, p->j, &rows, &n) == HUB_OK) {
        p->have = true;
        p->v = (view){ch->id, sv.last_updated_ms, rows, n};
        add_golden_rows(tx, &p->a, &p->v);
    }
}

static void prev_release(prev_rows *p) {
    if (p->j) {
        json_decref(p->j);
        hub_arena_release(&p->a);
    }
}

/* Does this version fire leg l? */
static bool leg_fires(hub_route *r, hub_store_tx *tx, const hub_record_change *ch,
                      const hub__leg *l, const view *cur, prev_rows *prev) {
    if (ch->deleted) {
        /* A delete fires plain criteria the resource matched before, and
         * the topic legs whose trigger includes delete (sub.c, TOPICS). */
        if (!l->dq) return false;
        prev_load(r, tx, ch, prev);
        return prev->have && query_match(l->dq, &prev->v);
    }
    if (!query_match(l->q, cur)) return false;
    switch (l->mode) {
    case HUB__LEG_PLAIN:
    case HUB__LEG_ANY: return true;
    case HUB__LEG_ENTER:
        if (ch->created) return true;
        prev_load(r, tx, ch, prev);
        return !prev->have || !query_match(l->q, &prev->v);
    case HUB__LEG_UPDATE:
        if (ch->created) return false;
        prev_load(r, tx, ch, prev);
        return prev->have && query_match(l->q, &prev->v);
    }
    return false;
}

static void wake_run_done(hub_store_job *job, hub_status rc, const hub_err *err) {
    (void)rc;
    (void)err;
    hub_route *r = job->ud;
    r->wake_queued = false; /* writer thread: the next change queues it again */
    hub__deliver_ready(r, r->touched, r->ntouched);
    r->ntouched = 0;
    hub__deliver_wake(r);
}

static hub_status wake_run(hub_store_tx *tx, hub_store_job *job, hub_err *err) {
    (void)tx;
    (void)job;
    (void)err;
    return HUB_OK;
}

/* Wakes the workers once the current transaction has committed. A job
 * queued now runs in this commit group or a later one, and its done()
 * comes after that group's COMMIT. One wake job at a time (it is one
 * struct): while it is queued or in the group being run, its done() is
 * still to come after this change's commit, so a change that finds it
 * queued needs no other. Writer thread only, like done(). */
static void wake_after_commit(hub_route *r, const char *id) {
    /* the workers look at these first (a full scan runs now and then) */
    if (id && (r->ntouched == 0 || strcmp(r->touched[r->ntouched - 1], id) != 0)) {
        if (r->ntouched == r->touched_cap) {
            size_t cap = r->touched_cap ? r->touched_cap * 2 : 64;
            char (*nt)[72] = hub_realloc(r->touched, cap * sizeof *nt);
            if (nt) {
                r->touched = nt;
                r->touched_cap = cap;
            }
        }
        if (r->ntouched < r->touched_cap)
            snprintf(r->touched[r->ntouched++], 72, "%s", id);
    }
    if (r->wake_queued) return;
    r->wake_job = (hub_store_job){.run = wake_run, .done = wake_run_done, .ud = r};
    hub_err err;
    if (hub_store_submit(r->store, &r->wake_job, &err) == HUB_OK) r->wake_queued = true;
}

/* ---- care coordination: who the patient is attributed to ------------------- */

typedef struct {
    char **keys;
    size_t n, cap;
    hub_arena *a;
    const char *type;
} attrkeys;

static void attr_add(attrkeys *k, const char *kind, const char *ref) {
    if (!ref || !strchr(ref, '/') || strlen(ref) > 200) return;
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 16;
        char **nk = hub_arena_alloc(k->a, cap * sizeof *nk);
        if (!nk) return;
        if (k->n) memcpy(nk, k->keys, k->n * sizeof *nk);
        k->keys = nk;
        k->cap = cap;
    }
    char *key = hub_arena_sprintf(k->a, "%s\x1f%s\x1f%s", k->type, kind, ref);
    if (key) k->keys[k->n++] = key;
}

typedef struct {
    char ids[32][72];
    int n;
} idlist;

static hub_status collect_id(void *ud, const char *id) {
    idlist *l = ud;
    if (l->n < 32) snprintf(l->ids[l->n++], 72, "%s", id);
    return HUB_OK;
}

/* The keys "type\x1f@gp\x1fOrganization/1" (the patient's general
 * practitioners) and "type\x1f@team\x1f..." (participants of the active
 * care teams of the patient) of the change's patient. */
static void attributed_keys(hub_store_tx *tx, const view *cur, attrkeys *k) {
    const char *pat = NULL;
    for (size_t i = 0; i < cur->ntoks && !pat; i++) {
        const hub_store_token *t = &cur->toks[i];
        if (t->kind == HUB_IX_TOKEN && strcmp(t->system, "Patient") == 0 &&
            (strcmp(t->param, "patient") == 0 || strcmp(t->param, "subject") == 0))
            pat = t->value;
    }
    if (!pat) return;
    char pid[72];
    snprintf(pid, sizeof pid, "%s", pat);
    hub_store_version sv;
    hub_err err;
    if (hub_store_res_get(tx, "Patient", pid, 0, &sv, &err) == HUB_OK && !sv.deleted && sv.json) {
        json_t *p = json_loadb(sv.json, sv.json_len, 0, NULL);
        size_t i;
        json_t *gp;
        json_array_foreach(json_object_get(p, "generalPractitioner"), i, gp)
            attr_add(k, "@gp", json_string_value(json_object_get(gp, "reference")));
        json_decref(p);
    }
    idlist teams = {.n = 0};
    int n = 0;
    /* CareTeam.patient is an alias of subject (its Patient references):
     * the store keeps the subject rows only. */
    if (hub_store_res_find(tx, "CareTeam", "subject", "Patient", pid, 32, collect_id, &teams, &n,
                           &err) != HUB_OK)
        return;
    for (int t = 0; t < teams.n; t++) {
        if (hub_store_res_get(tx, "CareTeam", teams.ids[t], 0, &sv, &err) != HUB_OK ||
            sv.deleted || !sv.json)
            continue;
        json_t *ct = json_loadb(sv.json, sv.json_len, 0, NULL);
        const char *st = json_string_value(json_object_get(ct, "status"));
        if (!st || strcmp(st, "active") == 0) {
            size_t i;
            json_t *pp;
            json_array_foreach(json_object_get(ct, "participant"), i, pp)
                attr_add(k, "@team", json_string_value(json_object_get(
                                         json_object_get(pp, "member"), "reference")));
        }
        json_decref(ct);
    }
}

static bool attr_type(const char *type) {
    return strcmp(type, "Encounter") == 0 || strcmp(type, "CarePlan") == 0 ||
           strcmp(type, "Goal") == 0 || strcmp(type, "Appointment") == 0;
}

static hub_status match_change(hub_route *r, hub_store_tx *tx, const hub_record_change *ch,
                               hub_err *err) {
    view cur = {ch->id, ch->last_updated_ms, ch->toks, ch->ntoks};
    prev_rows prev = {0};
    hub__rsub *hits[64];
    size_t nhits = 0;
    int64_t ncand = 0;
    hub_status rc = HUB_OK;
    char key[512];
    bool more = true;
    /* Deletes carry no rows: their candidates come from the previous
     * version's rows. */
    if (ch->deleted) {
        prev_load(r, tx, ch, &prev);
        if (prev.have) cur = prev.v;
    }
    hub_arena aa;
    hub_arena_init(&aa, 1024);
    if (!ch->deleted) add_golden_rows(tx, &aa, &cur);
    attrkeys ak = {NULL, 0, 0, &aa, ch->type};
    if (r->nattributed > 0 && attr_type(ch->type)) attributed_keys(tx, &cur, &ak);
    size_t ai = 0;
    /* Candidates are collected under the lock in rounds of 64 (rows are
     * usually few and lists short); matched ones get an event after the
     * lock is dropped, which keeps the registry free while we write. */
    pthread_mutex_lock(&r->lock);
    uint64_t stamp = ++r->stamp;
    pthread_mutex_unlock(&r->lock);
    size_t row = 0, slot_i = 0;
    int phase = 0; /* 0 scan list, 1 _id, 2 rows, 3 attributed */
    while (more && rc == HUB_OK) {
        nhits = 0;
        pthread_mutex_lock(&r->lock);
        while (nhits < 64) {
            if (phase == 0) snprintf(key, sizeof key, "%s\x1f", ch->type);
            else if (phase == 1) snprintf(key, sizeof key, "%s\x1f_id\x1f%s", ch->type, ch->id);
            else if (phase == 2 && row < cur.ntoks) {
                const hub_store_token *t = &cur.toks[row];
                if (t->kind != HUB_IX_TOKEN) {
                    row++;
                    continue;
                }
                snprintf(key, sizeof key, "%s\x1f%s\x1f%s", ch->type, t->param, t->value);
            } else if (phase == 2) {
                phase = 3;
                continue;
            } else if (ai < ak.n) {
                snprintf(key, sizeof key, "%s", ak.keys[ai]);
            } else {
                more = false;
                break;
            }
            hub__slot *sl = ix_find(&r->ix, key);
            for (; sl && slot_i < sl->n && nhits < 64; slot_i++) {
                hub__rsub *s = sl->v[slot_i];
                if (s->seen == stamp || s->d.status == HUB_RSUB_OFF) continue;
                s->seen = stamp;
                ncand++;
                for (size_t i = 0; i < s->nlegs; i++) {
                    if (strcmp(s->legs[i].type, ch->type) != 0) continue;
                    if (leg_fires(r, tx, ch, &s->legs[i], &cur, &prev)) {
                        hits[nhits++] = s;
                        break;
                    }
                }
            }
            if (sl && slot_i < sl->n) break; /* round full: resume this slot */
            slot_i = 0;
            if (phase < 2) phase++;
            else if (phase == 2) row++;
            else ai++;
        }
        /* ids only: the subscription may be replaced once the lock drops */
        char ids[64][72];
        for (size_t i = 0; i < nhits; i++) snprintf(ids[i], sizeof ids[i], "%s", hits[i]->id);
        pthread_mutex_unlock(&r->lock);
        for (size_t i = 0; i < nhits && rc == HUB_OK; i++) {
            hub_route_event ev = {.sub = ids[i],
                                  .type = ch->type,
                                  .id = ch->id,
                                  .version = ch->version,
                                  .message_id = ch->actor ? ch->actor->message_id : 0,
                                  .created_ms = ch->last_updated_ms,
                                  .deleted = ch->deleted};
            int64_t seq;
            rc = hub_route_store_event(tx, &ev, &seq, err);
            /* A subscription the store does not know (its write rolled
             * back): nothing to number. */
            if (rc == HUB_E_NOTFOUND) rc = HUB_OK;
            else if (rc == HUB_OK) wake_after_commit(r, ids[i]);
        }
    }
    hub_metric_add(m_candidates, ncand);
    prev_release(&prev);
    hub_arena_release(&aa);
    return rc;
}

/* ---- Subscription writes -------------------------------------------------------------- */

static void gen_secret(char out[65]) {
    unsigned char b[32];
    if (RAND_bytes(b, sizeof b) != 1) {
        /* No entropy source: a v4 UUID pair is still unguessable enough
         * to keep the hub from running without signatures. */
        char u1[37], u2[37];
        hub_uuid(u1);
        hub_uuid(u2);
        snprintf(out, 65, "%.32s%.32s", u1, u2);
        return;
    }
    for (size_t i = 0; i < sizeof b; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static const char *status_name(hub_rsub_status s) {
    static const char *const N[] = {"requested", "active", "error", "off"};
    return N[s];
}

/* Sets status (and the secret extension, when given) on the stored
 * resource `j` and writes it as the route. */
static hub_status write_sub(hub_route *r, hub_store_tx *tx, const char *id, json_t *j,
                            const char *status, const char *error, const char *secret,
                            hub_err *err) {
    json_object_set_new(j, "status", json_string(status));
    if (error && *error) json_object_set_new(j, "error", json_string(error));
    else json_object_del(j, "error");
    if (secret) {
        json_t *exts = json_object_get(j, "extension");
        if (!json_is_array(exts)) {
            exts = json_array();
            json_object_set_new(j, "extension", exts);
        }
        json_array_append_new(exts, json_pack("{s:s, s:s}", "url", HUB_ROUTE_EXT_SECRET,
                                              "valueString", secret));
    }
    return hub_record_put_tx(r->rec, tx, "Subscription", id, j, false, &r->self, 0, NULL, err);
}

hub_status hub__sub_set_status(hub_route *r, hub_store_tx *tx, const char *id,
                               const char *status, const char *error, hub_err *err) {
    hub_store_version sv;
    hub_status rc = hub_store_res_get(tx, "Subscription", id, 0, &sv, err);
    if (rc == HUB_E_NOTFOUND) return HUB_OK;
    if (rc) return rc;
    if (sv.deleted || !sv.json) return HUB_OK;
    json_t *j = json_loadb(sv.json, sv.json_len, 0, NULL);
    if (!j) return hub_err_set(err, HUB_E_NOMEM, "route", "stored Subscription unreadable");
    const char *cur = json_string_value(json_object_get(j, "status"));
    if (cur && strcmp(cur, "off") == 0) { /* the owner turned it off meanwhile */
        json_decref(j);
        return HUB_OK;
    }
    rc = write_sub(r, tx, id, j, status, error, NULL, err);
    json_decref(j);
    return rc;
}

static hub_status sub_change(hub_route *r, hub_store_tx *tx, const hub_record_change *ch,
                             hub_err *err) {
    if (ch->deleted) {
        pthread_mutex_lock(&r->lock);
        reg_remove_locked(r, ch->id);
        pthread_mutex_unlock(&r->lock);
        return hub_route_store_sub(tx, ch->id, "off", NULL, err);
    }
    hub__rsub *s = NULL;
    hub_err perr;
    hub_err_clear(&perr);
    hub_status rc = hub__rsub_build(r, ch->id, ch->json, ch->json_len, &s, &perr);
    if (ch->actor == &r->self) {
        /* The route's own write (status, secret): already checked. */
        if (rc) {
            HUB_LOG_WARN("route", "sub=%s own write does not parse err='%s'", ch->id, perr.msg);
            return HUB_OK;
        }
        return reg_put(r, s) ? hub_err_set(err, HUB_E_NOMEM, "route", "out of memory") : HUB_OK;
    }
    if (rc == HUB_E_NOMEM) return hub_err_set(err, rc, "route", "out of memory");
    if (rc) {
        *err = perr;
        err->code = HUB_E_INVALID;
        return HUB_E_INVALID;
    }
    /* The client's write: requested and active both mean "start (again)":
     * a handshake first; error and off stop delivery (events of an errored
     * subscription keep being numbered). */
    const char *status = s->d.status == HUB_RSUB_OFF     ? "off"
                         : s->d.status == HUB_RSUB_ERROR ? "error"
                                                         : "requested";
    /* The secret: the subscriber's, else the one it has, else a new one;
     * kept with the delivery state, not written on the resource. */
    char secret[160];
    const char *new_secret = s->d.secret;
    if (!new_secret) {
        rc = hub_route_store_secret(tx, ch->id, secret, err);
        if (rc && rc != HUB_E_NOTFOUND) {
            hub__rsub_free(s);
            return rc;
        }
        if (!secret[0]) {
            gen_secret(secret);
            new_secret = secret;
        }
    }
    bool rewrite = strcmp(status, status_name(s->d.status)) != 0;
    rc = hub_route_store_sub(tx, ch->id, status, new_secret, err);
    if (rc) {
        hub__rsub_free(s);
        return rc;
    }
    if (!rewrite) {
        if (reg_put(r, s)) return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
    } else {
        hub__rsub_free(s);
        json_t *j = json_loadb(ch->json, ch->json_len, 0, NULL);
        if (!j) return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
        rc = write_sub(r, tx, ch->id, j, status, NULL, NULL, err);
        json_decref(j);
        if (rc) return rc;
    }
    HUB_LOG_INFO("route", "subscription id=%s status=%s", ch->id, status);
    wake_after_commit(r, ch->id);
    return HUB_OK;
}

/* Care coordination: an Organization or PractitionerRole that names an
 * Endpoint gets a Subscription of its own ("cc-org-<id>", "cc-role-<id>")
 * to the care-coordination topic, attributed to it, delivered to the
 * Endpoint's address: the provider registers once and writes no criteria.
 * The Subscription is written as a client's would be, so a bad Endpoint
 * refuses the Organization's write with the reason. */
static hub_status care_register(hub_route *r, hub_store_tx *tx, const hub_record_change *ch,
                                hub_err *err) {
    json_t *org = json_loadb(ch->json, ch->json_len, 0, NULL);
    const char *eref =
        json_string_value(json_object_get(json_array_get(json_object_get(org, "endpoint"), 0),
                                          "reference"));
    char eid[72] = "";
    if (eref && strncmp(eref, "Endpoint/", 9) == 0 && strlen(eref + 9) < sizeof eid)
        snprintf(eid, sizeof eid, "%s", eref + 9);
    json_decref(org);
    if (!eid[0] || strlen(ch->id) > 55) return HUB_OK;
    hub_store_version sv;
    if (hub_store_res_get(tx, "Endpoint", eid, 0, &sv, err) != HUB_OK || sv.deleted || !sv.json)
        return hub_err_set(err, HUB_E_INVALID, "Organization.endpoint",
                           "the endpoint named is not an Endpoint the hub holds");
    json_t *ep = json_loadb(sv.json, sv.json_len, 0, NULL);
    const char *ctype = json_string_value(
        json_object_get(json_object_get(ep, "connectionType"), "code"));
    const char *addr = json_string_value(json_object_get(ep, "address"));
    const char *mime =
        json_string_value(json_array_get(json_object_get(ep, "payloadMimeType"), 0));
    const char *chan = ctype && strcmp(ctype, "hl7v2-mllp") == 0 ? "message" : "rest-hook";
    char sid[72], ref[140], filter[160];
    snprintf(sid, sizeof sid, "cc-%s-%s", strcmp(ch->type, "Organization") == 0 ? "org" : "role",
             ch->id);
    snprintf(ref, sizeof ref, "%s/%s", ch->type, ch->id);
    snprintf(filter, sizeof filter, "attributed=%s", ref);
    json_t *sub = json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:[{s:s, s:s}]}, s:{s:s, s:s}}", "resourceType", "Subscription",
        "status", "requested", "reason", "care coordination", "criteria",
        HUB_ROUTE_TOPIC_BASE "care-coordination", "_criteria", "extension", "url",
        HUB_BACKPORT "backport-filter-criteria", "valueString", filter, "channel", "type", chan,
        "endpoint", addr ? addr : "");
    json_t *chn = json_object_get(sub, "channel");
    if (mime) json_object_set_new(chn, "payload", json_string(mime));
    else if (strcmp(chan, "rest-hook") == 0)
        json_object_set_new(chn, "payload", json_string("application/fhir+json"));
    json_t *hdr = json_object_get(ep, "header");
    if (json_is_array(hdr) && json_array_size(hdr)) json_object_set(chn, "header", hdr);
    if (ctype && strcmp(ctype, "hl7v2-mllp") != 0 && strcmp(ctype, "hl7-fhir-rest") != 0)
        json_object_set_new(chn, "type", json_string(ctype)); /* refused below, with why */
    json_decref(ep);
    /* unchanged registration: nothing to do (a write would handshake again) */
    hub_status rc = hub_store_res_get(tx, "Subscription", sid, 0, &sv, err);
    if (rc == HUB_OK && !sv.deleted && sv.json) {
        json_t *old = json_loadb(sv.json, sv.json_len, 0, NULL);
        json_t *oc = json_deep_copy(json_object_get(old, "channel"));
        const char *ost = json_string_value(json_object_get(old, "status"));
        bool same = oc && json_equal(json_object_get(old, "_criteria"),
                                     json_object_get(sub, "_criteria"));
        if (same) {
            json_object_del(oc, "extension");
            same = json_equal(oc, chn) && ost && strcmp(ost, "off") != 0;
        }
        json_decref(oc);
        json_decref(old);
        if (same) {
            json_decref(sub);
            return HUB_OK;
        }
    } else if (rc && rc != HUB_E_NOTFOUND) {
        json_decref(sub);
        return rc;
    }
    hub_err_clear(err);
    rc = hub_record_put_tx(r->rec, tx, "Subscription", sid, sub, false, &r->care, ch->depth, NULL,
                           err);
    json_decref(sub);
    if (rc == HUB_OK)
        HUB_LOG_INFO("route", "care coordination for=%s subscription=%s", ref, sid);
    return rc;
}

static hub_status on_change(void *ud, hub_store_tx *tx, const hub_record_change *ch,
                            hub_err *err) {
    hub_route *r = ud;
    if (strcmp(ch->type, "Subscription") == 0) return sub_change(r, tx, ch, err);
    if (!ch->deleted && ch->actor != &r->self &&
        (strcmp(ch->type, "Organization") == 0 || strcmp(ch->type, "PractitionerRole") == 0)) {
        hub_status rc = care_register(r, tx, ch, err);
        if (rc) return rc;
    }
    if (r->nsubs == 0) return HUB_OK; /* a racy read is fine: writer-side only */
    return match_change(r, tx, ch, err);
}

/* ---- start-up ------------------------------------------------------------------------ */

typedef struct {
    hub_route *r;
    size_t loaded, failed;
} loadctx;

static hub_status load_version(void *ud, const hub_store_version *v) {
    loadctx *c = ud;
    hub__rsub *s = NULL;
    hub_err err;
    if (v->deleted || !v->json) return HUB_OK;
    if (hub__rsub_build(c->r, v->id, v->json, v->json_len, &s, &err) != HUB_OK) {
        HUB_LOG_WARN("route", "sub=%s not loaded err='%s'", v->id, err.msg);
        c->failed++;
        return HUB_OK;
    }
    if (reg_put(c->r, s) == HUB_OK) c->loaded++;
    return HUB_OK;
}

static hub_status load_state(void *ud, const hub_route_state *st) {
    loadctx *c = ud;
    if (strcmp(st->status, "off") == 0) return HUB_OK;
    hub_err err;
    hub_status rc = hub_store_res_read(c->r->store, "Subscription", st->id, 0, load_version, c,
                                       &err);
    if (rc && rc != HUB_E_NOTFOUND) return rc;
    return HUB_OK;
}

hub_status hub_route_open(const hub_route_cfg *c, hub_route **out, hub_err *err) {
    if (!c->record) return hub_err_set(err, HUB_E_ARG, "route", "no record");
    hub_route *r = hub_calloc(1, sizeof *r);
    if (!r) return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
    r->cfg = *c;
    if (r->cfg.max_failures <= 0) r->cfg.max_failures = 10;
    if (r->cfg.retry_min_ms <= 0) r->cfg.retry_min_ms = 500;
    if (r->cfg.retry_max_ms <= 0) r->cfg.retry_max_ms = 300000;
    if (r->cfg.retry_max_ms < r->cfg.retry_min_ms) r->cfg.retry_max_ms = r->cfg.retry_min_ms;
    if (r->cfg.timeout_ms <= 0) r->cfg.timeout_ms = 10000;
    if (r->cfg.prune_interval_ms <= 0) r->cfg.prune_interval_ms = 60000;
    r->cfg.ca_file = sdup(c->ca_file && *c->ca_file ? c->ca_file : NULL);
    r->cfg.client_cert = sdup(c->client_cert && *c->client_cert ? c->client_cert : NULL);
    r->cfg.client_key = sdup(c->client_key && *c->client_key ? c->client_key : NULL);
    r->cfg.base_url = sdup(c->base_url && *c->base_url ? c->base_url : NULL);
    r->rec = c->record;
    r->store = hub_record_store(c->record);
    r->defs = hub_record_defs(c->record);
    r->sps = hub_record_sps(c->record);
    r->self = (hub_actor){.channel = "route", .subject = "hub-route"};
    r->care = (hub_actor){.channel = "route", .subject = "hub-route-care"};
    pthread_mutex_init(&r->lock, NULL);
    m_candidates = hub_metric_get(HUB_METRIC_COUNTER, "hub_route_match_candidates_total", NULL,
                                  "subscriptions checked against a change (the index's pick)");
    loadctx lc = {r, 0, 0};
    hub_status rc = hub_route_store_due(r->store, 0, true, load_state, &lc, err);
    if (rc == HUB_OK) rc = hub_record_listen(r->rec, on_change, r);
    if (rc == HUB_OK && !c->no_delivery) rc = hub__deliver_start(r, err);
    if (rc == HUB_OK && !c->no_delivery) rc = hub__prune_start(r, err);
    if (rc) {
        hub_route_close(r);
        return rc;
    }
    HUB_LOG_INFO("route", "open subscriptions=%zu unreadable=%zu delivery=%s retention_days=%d",
                 lc.loaded, lc.failed, c->no_delivery ? "off" : "on", r->cfg.retention_days);
    *out = r;
    return HUB_OK;
}

/* Waits until every job queued on the writer before now is done (the
 * wake job holds a pointer to r). No-op once the store is closing. */
void hub_route_close(hub_route *r) {
    if (!r) return;
    hub__prune_stop(r);
    if (r->store) hub_store_drain(r->store);
    hub__deliver_stop(r);
    for (size_t i = 0; i < r->byid.cap; i++) {
        hub__slot *sl = &r->byid.slots[i];
        for (size_t k = 0; k < sl->n; k++) hub__rsub_free(sl->v[k]);
    }
    ix_free(&r->byid);
    ix_free(&r->ix);
    hub_free(r->touched);
    hub_free((char *)r->cfg.ca_file);
    hub_free((char *)r->cfg.client_cert);
    hub_free((char *)r->cfg.client_key);
    hub_free((char *)r->cfg.base_url);
    pthread_mutex_destroy(&r->lock);
    hub_free(r);
}
