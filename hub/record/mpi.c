/* The patient index: the change listener that matches every Patient a
 * client writes, golden records and their survivorship, links, merges,
 * unlinks and the review queue. Everything here runs on the writer thread
 * inside the transaction of the change (or of an operation's own job), so
 * a link commits with the Patient that caused it or not at all.
 *
 * Cost per Patient write: a handful of indexed reads (blocking keys, the
 * candidates' stored features and links, read in batches) and the writes
 * of the person row, its changed blocking keys, the golden and the
 * source's link; never a scan. */
#include "hub/mpi.h"
#include "internal.h"
#include "mpi_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 24
#define MAX_CANDS 256
#define MAX_LATER 64
#define MAX_SOURCES 64

/* ---- configuration ---------------------------------------------------------- */

static hub_status conf_strings(const json_t *conf, const char *key, char (*out)[128],
                               int cap, int *n, hub_err *err) {
    const json_t *a = json_object_get(conf, key);
    if (a == NULL) return HUB_OK;
    if (!json_is_array(a) || (int)json_array_size(a) > cap)
        return hub_err_set(err, HUB_E_CONFIG, "mpi", "'mpi.%s' must be an array of at most %d "
                                                     "strings", key, cap);
    *n = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v) {
        if (!json_is_string(v))
            return hub_err_set(err, HUB_E_CONFIG, "mpi", "'mpi.%s' must hold strings", key);
        snprintf(out[(*n)++], 128, "%s", json_string_value(v));
    }
    return HUB_OK;
}

static hub_status conf_number(const json_t *conf, const char *key, double *out, hub_err *err) {
    const json_t *v = json_object_get(conf, key);
    if (v == NULL) return HUB_OK;
    if (!json_is_number(v))
        return hub_err_set(err, HUB_E_CONFIG, "mpi", "'mpi.%s' must be a number", key);
    *out = json_number_value(v);
    return HUB_OK;
}

static hub_status conf_weights(const json_t *conf, hub_mpi_weights *w, hub_err *err) {
    const json_t *ws = json_object_get(conf, "weights");
    if (ws == NULL) return HUB_OK;
    if (!json_is_object(ws))
        return hub_err_set(err, HUB_E_CONFIG, "mpi", "'mpi.weights' must be an object");
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)ws, k, v) {
        int f = 0;
        while (f < HUB_MPI__F_COUNT && strcmp(hub_mpi_field_name((hub_mpi_field)f), k)) f++;
        if (f == HUB_MPI__F_COUNT)
            return hub_err_set(err, HUB_E_CONFIG, "mpi", "'mpi.weights.%s': unknown field", k);
        for (int mu = 0; mu < 2; mu++) {
            const json_t *a = json_object_get(v, mu ? "u" : "m");
            if (a == NULL) continue;
            if (!json_is_array(a) || json_array_size(a) != HUB_MPI__L_COUNT)
                return hub_err_set(err, HUB_E_CONFIG, "mpi",
                                   "'mpi.weights.%s.%s' must be 4 numbers (diff, partial, "
                                   "close, exact)", k, mu ? "u" : "m");
            for (int l = 0; l < HUB_MPI__L_COUNT; l++) {
                const json_t *x = json_array_get(a, (size_t)l);
                double d = json_number_value(x);
                if (!json_is_number(x) || d < 0.0 || d > 1.0)
                    return hub_err_set(err, HUB_E_CONFIG, "mpi",
                                       "'mpi.weights.%s.%s' values must be in [0, 1]", k,
                                       mu ? "u" : "m");
                if (mu)
                    w->u[f][l] = d;
                else
                    w->m[f][l] = d;
            }
        }
    }
    return HUB_OK;
}

static hub_status patient_ids(void *ud, const char *id, hub_arena *a, const char ***ids,
                              size_t *n, hub_err *err) {
    hub_mpi *m = ud;
    const char **src = NULL;
    size_t ns = 0;
    hub_status rc = hub_mpi_st_sources(m->store, id, a, &src, &ns, err);
    if (rc) return rc;
    const char **v = hub_arena_alloc(a, (ns + 1) * sizeof *v);
    char *self = v ? hub_arena_strndup(a, id, strlen(id)) : NULL;
    if (self == NULL) return hub_err_set(err, HUB_E_NOMEM, "mpi", "out of memory");
    v[0] = self;
    for (size_t i = 0; i < ns; i++) v[i + 1] = src[i];
    *ids = v;
    *n = ns + 1;
    return HUB_OK;
}

hub_status hub_mpi_open(const hub_mpi_cfg *c, hub_mpi **out, hub_err *err) {
    *out = NULL;
    if (c == NULL || c->record == NULL)
        return hub_err_set(err, HUB_E_ARG, "mpi", "no record");
    if (c->conf && !json_is_object(c->conf))
        return hub_err_set(err, HUB_E_CONFIG, "mpi", "'mpi' must be an object");
    hub_mpi *m = hub_calloc(1, sizeof *m);
    if (m == NULL) return hub_err_set(err, HUB_E_NOMEM, "mpi", "out of memory");
    m->record = c->record;
    m->store = hub_record_store(c->record);
    hub_mpi_weights_default(&m->w);
    m->auto_link = 15.0;
    m->review = 10.0;
    double bl = 32;
    snprintf(m->trusted_types[0], 128, "SS");
    snprintf(m->trusted_types[1], 128, "NI");
    m->ntypes = 2;
    snprintf(m->trusted_systems[0], 128, "http://hl7.org/fhir/sid/us-ssn");
    m->nsystems = 1;
    hub_status rc = HUB_OK;
    if (c->conf) {
        rc = conf_number(c->conf, "auto_link", &m->auto_link, err);
        if (!rc) rc = conf_number(c->conf, "review", &m->review, err);
        if (!rc) rc = conf_number(c->conf, "block_limit", &bl, err);
        if (!rc) rc = conf_strings(c->conf, "trusted_types", m->trusted_types, 8, &m->ntypes, err);
        if (!rc)
            rc = conf_strings(c->conf, "trusted_systems", m->trusted_systems, 8, &m->nsystems,
                              err);
        if (!rc)
            rc = conf_strings(c->conf, "trusted_sources", m->trusted_sources, 8, &m->nsources,
                              err);
        if (!rc) rc = conf_weights(c->conf, &m->w, err);
        if (!rc && (m->review > m->auto_link || bl < 1 || bl > 1000))
            rc = hub_err_set(err, HUB_E_CONFIG, "mpi",
                             "'mpi.review' must not exceed 'mpi.auto_link'; 'mpi.block_limit' "
                             "in 1..1000");
    }
    m->block_limit = (int)bl;
    m->source_links = true;
    const json_t *sl = c->conf ? json_object_get(c->conf, "source_links") : NULL;
    if (!rc && sl && !json_is_boolean(sl))
        rc = hub_err_set(err, HUB_E_CONFIG, "mpi", "'mpi.source_links' must be true or false");
    if (sl && json_is_false(sl)) m->source_links = false;
    if (!rc && c->nicknames) rc = hub_mpi_nicknames_load(c->nicknames, err);
    if (!rc) rc = hub_record_prewrite(c->record, "Patient", hub__mpi_prewrite, m);
    if (!rc) rc = hub_record_listen(c->record, hub__mpi_listener, m);
    if (rc == HUB_E_LIMIT) rc = hub_err_set(err, HUB_E_LIMIT, "mpi", "too many listeners");
    if (rc) {
        hub_free(m);
        return rc;
    }
    hub_record_set_patient_ids(c->record, patient_ids, m);
    *out = m;
    return HUB_OK;
}

void hub_mpi_close(hub_mpi *m) {
    if (m == NULL) return;
    hub_mpi_nicknames_free();
    hub_free(m);
}

hub_mpi_weights *hub_mpi_weights_of(hub_mpi *m) { return &m->w; }

void hub_mpi_stats_of(const hub_mpi *m, hub_mpi_stats *out) { *out = m->stats; }

/* ---- small helpers -------------------------------------------------------------- */

/* src, cut to cap - 1 bytes, into dst. */
static void copy_str(char *dst, size_t cap, const char *src) {
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

bool hub__mpi_is_golden(const json_t *p) {
    size_t i;
    const json_t *t;
    json_array_foreach(json_object_get(json_object_get(p, "meta"), "tag"), i, t) {
        const char *s = json_string_value(json_object_get(t, "system"));
        const char *c = json_string_value(json_object_get(t, "code"));
        if (s && c && !strcmp(s, HUB_MPI_TAG_SYSTEM) && !strcmp(c, HUB_MPI_TAG_GOLDEN))
            return true;
    }
    return false;
}

/* "Patient/<id>" (relative, or absolute ending so) -> id; NULL otherwise. */
const char *hub__mpi_ref_id(const char *ref) {
    if (ref == NULL) return NULL;
    const char *p = strstr(ref, "Patient/");
    if (p == NULL || (p != ref && p[-1] != '/')) return NULL;
    p += 8;
    if (*p == '\0' || strchr(p, '/')) return NULL;
    return p;
}

void hub__mpi_actor_text(const hub_actor *a, char *out, size_t cap) {
    if (a == NULL) {
        snprintf(out, cap, "system");
        return;
    }
    snprintf(out, cap, "%s%s%s%s%s", a->channel ? a->channel : "",
             a->sender && a->sender[0] ? " sender=" : "", a->sender ? a->sender : "",
             a->client && a->client[0] ? " client=" : "", a->client ? a->client : "");
}

void hub__mpi_detail_json(const double *contrib, const int8_t *lv, char *out, size_t cap) {
    static const char *const LV[] = {"diff", "partial", "close", "exact"};
    size_t k = (size_t)snprintf(out, cap, "{");
    bool first = true;
    for (int f = 0; f < HUB_MPI__F_COUNT && k < cap; f++) {
        if (lv[f] < 0) continue;
        k += (size_t)snprintf(out + k, cap - k, "%s\"%s\":{\"level\":\"%s\",\"weight\":%.2f}",
                              first ? "" : ",", hub_mpi_field_name((hub_mpi_field)f),
                              LV[lv[f]], contrib[f]);
        first = false;
    }
    if (k < cap) snprintf(out + k, cap - k, "}");
}

/* Loads the current JSON of Patient/id (parsed; NULL when absent or
 * deleted). */
hub_status hub__mpi_load_patient(hub_store_tx *tx, const char *id, json_t **out,
                               int64_t *updated_ms, hub_err *err) {
    *out = NULL;
    hub_store_version v;
    hub_status rc = hub_store_res_get(tx, "Patient", id, 0, &v, err);
    if (rc == HUB_E_NOTFOUND) return HUB_OK;
    if (rc) return rc;
    if (v.deleted || v.json == NULL) return HUB_OK;
    if (updated_ms) *updated_ms = v.last_updated_ms;
    *out = json_loadb(v.json, v.json_len, 0, NULL);
    if (*out == NULL) return hub_err_set(err, HUB_E_NOMEM, "mpi", "stored Patient unreadable");
    return HUB_OK;
}

/* ---- identifiers and keys --------------------------------------------------------- */

static bool trusted_identifier(const hub_mpi *m, const json_t *ident) {
    const char *sys = json_string_value(json_object_get(ident, "system"));
    for (int i = 0; sys && i < m->nsystems; i++)
        if (!strcmp(sys, m->trusted_systems[i])) return true;
    size_t k;
    const json_t *c;
    json_array_foreach(json_object_get(json_object_get(ident, "type"), "coding"), k, c) {
        const char *code = json_string_value(json_object_get(c, "code"));
        for (int i = 0; code && i < m->ntypes; i++)
            if (!strcmp(code, m->trusted_types[i])) return true;
    }
    return false;
}

/* Identifier keys: "i|system|value" for every identifier (the same
 * identifier is the same person), "s|value" for trusted types (SSN:
 * whichever system a source names it with). Returns the count added. */
size_t hub__mpi_identifier_keys(const hub_mpi *m, const json_t *p, char (*keys)[96], size_t cap) {
    size_t k = 0, i;
    const json_t *id;
    json_array_foreach(json_object_get(p, "identifier"), i, id) {
        const char *sys = json_string_value(json_object_get(id, "system"));
        const char *val = json_string_value(json_object_get(id, "value"));
        if (val == NULL || val[0] == '\0') continue;
        const char *use = json_string_value(json_object_get(id, "use"));
        if (use && !strcmp(use, "old")) continue;
        if (sys && sys[0] && k < cap) snprintf(keys[k++], 96, "i|%.60s|%.30s", sys, val);
        if (trusted_identifier(m, id) && k < cap) {
            char digits[40];
            size_t n = 0;
            for (const char *c = val; *c && n + 1 < sizeof digits; c++)
                if (*c != '-' && *c != ' ') digits[n++] = *c;
            digits[n] = '\0';
            snprintf(keys[k++], 96, "s|%s", digits);
        }
    }
    return k;
}

/* ---- candidates ------------------------------------------------------------------- */

typedef struct {
    char id[72];
    unsigned kinds; /* 1: identifier key, 2: feature key */
} cand;

typedef struct {
    cand *v;
    size_t n, cap;
    const char *self;
    unsigned kind;
    /* what a feature key's candidate is bounded against (see cand_skip) */
    const hub_mpi_weights *w;
    const hub_mpi_feat *f;
    const char *sender;
    double floor;
    /* candidates below the floor that may be the record's own sender's:
     * looked at only for a person that could link (own_sender_vetoes) */
    char (*later)[72];
    size_t nlater, later_cap;
    uint64_t skipped;
} cand_set;

static bool in_list(char (*ids)[72], size_t n, const char *id) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(ids[i], id)) return true;
    return false;
}

/* A candidate that a feature key brings, whose score cannot reach `floor`
 * (the review threshold: below it a candidate changes no outcome)
 * whatever its row says, is not read: its row's fingerprint bounds the
 * score (hub_mpi_bound). One that may come from the record's own sender
 * can still veto a link to its person: it is kept aside instead. */
static bool cand_skip(cand_set *s, const char *id, uint64_t fp) {
    if (s->kind != 2u || s->w == NULL || hub_mpi_bound(s->w, s->f, fp) >= s->floor) return false;
    if (!hub_mpi_fingerprint_sender(fp, s->sender)) {
        s->skipped++;
        return true;
    }
    if (in_list(s->later, s->nlater, id)) return true;
    if (s->nlater == s->later_cap) return false; /* read like the others */
    copy_str(s->later[s->nlater++], 72, id);
    return true;
}

static hub_status cand_add(void *ud, const char *id, uint64_t fp) {
    cand_set *s = ud;
    if (s->self && !strcmp(id, s->self)) return HUB_OK;
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].id, id)) {
            s->v[i].kinds |= s->kind;
            return HUB_OK;
        }
    if (s->n == s->cap || cand_skip(s, id, fp)) return HUB_OK;
    copy_str(s->v[s->n].id, sizeof s->v[s->n].id, id);
    s->v[s->n].kinds = s->kind;
    s->n++;
    return HUB_OK;
}

/* Is a a better candidate person than b? Certain first, then score. */
static bool ranks_before(const person_score *a, const person_score *b) {
    return (a->certain && !b->certain) || (a->certain == b->certain && a->score > b->score);
}

/* The rows of one batch of candidates, kept in the order the blocks found
 * them (that order breaks ties between equal scores, as it always has). */
typedef struct {
    const cand *v;
    size_t n;
    hub_mpi_feat feat[HUB_MPI_ST_BATCH];
    char sender[HUB_MPI_ST_BATCH][160];
    char golden[HUB_MPI_ST_BATCH][72];
    bool found[HUB_MPI_ST_BATCH];
} cand_rows;

static hub_status cand_row(void *ud, const char *source, const char *feat, const char *sender,
                           const char *golden) {
    cand_rows *r = ud;
    for (size_t i = 0; i < r->n; i++) {
        if (r->found[i] || strcmp(r->v[i].id, source)) continue;
        hub_mpi_feat_decode(feat, &r->feat[i]);
        copy_str(r->sender[i], sizeof r->sender[i], sender);
        copy_str(r->golden[i], sizeof r->golden[i], golden);
        r->found[i] = true;
        break;
    }
    return HUB_OK;
}

/* The sources `self` was declared not to be (few: a person's decisions). */
typedef struct {
    char (*ids)[72];
    size_t n, cap;
    bool more; /* over cap: asked per candidate instead */
} nomatch_set;

static hub_status nomatch_add(void *ud, const char *id) {
    nomatch_set *s = ud;
    if (s->n < s->cap)
        snprintf(s->ids[s->n++], 72, "%s", id);
    else
        s->more = true;
    return HUB_OK;
}

static hub_status is_nomatch(hub_store_tx *tx, const nomatch_set *s, const char *self,
                             const char *id, bool *out, hub_err *err) {
    *out = false;
    for (size_t i = 0; i < s->n && !*out; i++) *out = !strcmp(s->ids[i], id);
    if (*out || !s->more) return HUB_OK;
    return hub_mpi_st_nomatch_has(tx, self, id, out, err);
}

/* Scores one candidate source and keeps the best `cap` persons in out. */
static void cand_score(hub_mpi *m, const hub_mpi_feat *f, const char *sender, const cand *c,
                       const hub_mpi_feat *cf, const char *csender, const char *cgolden,
                       person_score *out, size_t cap, size_t *n) {
    person_score ps;
    memset(&ps, 0, sizeof ps);
    copy_str(ps.golden, sizeof ps.golden, cgolden);
    memcpy(ps.source, c->id, sizeof ps.source);
    ps.source[sizeof ps.source - 1] = '\0';
    hub_mpi_compare(f, cf, ps.lv);
    ps.score = hub_mpi_score(&m->w, ps.lv, ps.contrib);
    ps.certain = (c->kinds & 1u) != 0;
    ps.conflict = sender && sender[0] && !strcmp(sender, csender);
    /* Twins share all but their given name (and often their sex);
     * strangers with a common name differ in their birth date: those
     * disagreements keep a pair from linking by itself, whatever the
     * rest adds up to. */
    ps.veto = ps.lv[HUB_MPI_F_GIVEN] == HUB_MPI_DIFF || ps.lv[HUB_MPI_F_BIRTH] == HUB_MPI_DIFF ||
              ps.lv[HUB_MPI_F_SEX] == HUB_MPI_DIFF;
    /* keep the best per person */
    size_t j = 0;
    while (j < *n && strcmp(out[j].golden, ps.golden)) j++;
    if (j < *n) {
        person_score *o = &out[j];
        bool conflict = o->conflict || ps.conflict;
        if (ranks_before(&ps, o)) *o = ps;
        o->conflict = conflict;
    } else if (*n < cap) {
        out[(*n)++] = ps;
    } else {
        /* Full: the best `cap` persons stay, whichever key found them (a
         * large block read first must not crowd out the person a precise
         * key finds later). */
        size_t w = 0;
        for (size_t k = 1; k < *n; k++)
            if (ranks_before(&out[w], &out[k])) w = k;
        if (ranks_before(&ps, &out[w])) out[w] = ps;
    }
}

/* The candidates kept aside (cand_skip) that are sources of one golden. */
typedef struct {
    const cand_set *s;
    char hit[4][72];
    size_t n;
} later_hits;

static hub_status later_hit(void *ud, const char *id) {
    later_hits *h = ud;
    if (h->n < 4 && in_list(h->s->later, h->s->nlater, id)) copy_str(h->hit[h->n++], 72, id);
    return HUB_OK;
}

/* What reading the kept-aside candidates would have said: a person that
 * could link (certain, or scoring auto_link without a veto) is vetoed when
 * one of them is its source from the record's own sender (and not
 * declared another person). Only such persons are looked at: one read of
 * their sources each, and a person row per hit. */
static hub_status own_sender_vetoes(hub_mpi *m, hub_store_tx *tx, const cand_set *s,
                                    const nomatch_set *nm, person_score *out, size_t n,
                                    hub_err *err) {
    hub_status rc = HUB_OK;
    for (size_t i = 0; !rc && s->nlater && i < n; i++) {
        person_score *ps = &out[i];
        if (ps->veto || ps->conflict || (!ps->certain && ps->score < m->auto_link)) continue;
        later_hits h = {.s = s};
        rc = hub_mpi_st_sources_tx(tx, ps->golden, later_hit, &h, err);
        for (size_t k = 0; !rc && k < h.n && !ps->conflict; k++) {
            char sender[160] = "";
            bool no = false;
            rc = is_nomatch(tx, nm, s->self, h.hit[k], &no, err);
            hub_status r2 = rc || no ? HUB_E_NOTFOUND
                                     : hub_mpi_st_person_get(tx, h.hit[k], NULL, 0, sender,
                                                             sizeof sender, err);
            if (r2 == HUB_OK) ps->conflict = !strcmp(sender, s->sender);
            else if (r2 != HUB_E_NOTFOUND) rc = r2;
        }
    }
    return rc;
}

/* Scores the candidates of a record (features f, sender, keys: identifier
 * keys first, nid of them) per person; results best first in out (at most
 * cap), *n of them. `self` (may be NULL) is never a candidate. The
 * candidates' rows are read HUB_MPI_ST_BATCH at a time. */
hub_status hub__mpi_candidates(hub_mpi *m, hub_store_tx *tx, const char *self,
                               const hub_mpi_feat *f, const char *sender, char (*keys)[96],
                               size_t nkeys, size_t nid, person_score *out, size_t cap,
                               size_t *n, hub_err *err) {
    cand buf[MAX_CANDS];
    char later[MAX_LATER][72];
    cand_set s = {buf,     0, MAX_CANDS, self, 0, &m->w, f, sender, m->review,
                  later, 0, MAX_LATER, 0};
    hub_status rc = HUB_OK;
    *n = 0;
    for (size_t i = 0; !rc && i < nkeys; i++) {
        s.kind = i < nid ? 1u : 2u;
        rc = hub_mpi_st_block_find(tx, keys[i], i < nid ? 16 : m->block_limit, cand_add, &s,
                                   err);
    }
    char nm_ids[8][72];
    nomatch_set nm = {nm_ids, 0, 8, false};
    if (!rc && self && s.n) rc = hub_mpi_st_nomatch_of(tx, self, nomatch_add, &nm, err);
    cand_rows *rows = rc || s.n == 0 ? NULL : hub_malloc(sizeof *rows);
    if (!rc && s.n && rows == NULL) rc = hub_err_set(err, HUB_E_NOMEM, "mpi", "out of memory");
    for (size_t i0 = 0; !rc && i0 < s.n; i0 += HUB_MPI_ST_BATCH) {
        rows->v = buf + i0;
        rows->n = s.n - i0 < HUB_MPI_ST_BATCH ? s.n - i0 : HUB_MPI_ST_BATCH;
        const char *ids[HUB_MPI_ST_BATCH];
        for (size_t i = 0; i < rows->n; i++) {
            ids[i] = buf[i0 + i].id;
            rows->found[i] = false;
        }
        rc = hub_mpi_st_candidates(tx, ids, rows->n, cand_row, rows, err);
        for (size_t i = 0; !rc && i < rows->n; i++) {
            bool no = false;
            /* not found: not indexed yet (its own change is later in this
             * job) */
            if (!rows->found[i]) continue;
            rc = is_nomatch(tx, &nm, self, ids[i], &no, err);
            if (!rc && !no)
                cand_score(m, f, sender, &buf[i0 + i], &rows->feat[i], rows->sender[i],
                           rows->golden[i], out, cap, n);
        }
    }
    hub_free(rows);
    m->stats.read += s.n;
    m->stats.skipped += s.skipped;
    m->stats.aside += s.nlater;
    if (!rc) rc = own_sender_vetoes(m, tx, &s, &nm, out, *n, err);
    if (rc) return rc;
    /* best first: certain, then score */
    for (size_t i = 1; i < *n; i++)
        for (size_t j = i; j > 0; j--) {
            person_score *a = &out[j - 1], *b = &out[j];
            if (!ranks_before(b, a)) break;
            person_score t = *a;
            *a = *b;
            *b = t;
        }
    return HUB_OK;
}

/* ---- golden records ------------------------------------------------------------------ */

typedef struct {
    const char *id;
    json_t *p;
    int trust;   /* 0 best */
    int64_t updated;
    bool writing; /* the source whose change is being written now */
} src_rec;

static int trust_of(const hub_mpi *m, const char *sender) {
    for (int i = 0; sender && i < m->nsources; i++)
        if (!strcmp(sender, m->trusted_sources[i])) return i;
    return m->nsources;
}

/* Is a better than b for an element with completeness ca, cb? */
static bool better(const src_rec *a, int ca, const src_rec *b, int cb) {
    if (a->trust != b->trust) return a->trust < b->trust;
    if (ca != cb) return ca > cb;
    /* lastUpdated is in ms: of two in the same millisecond, the one being
     * written now is the newer */
    if (a->updated != b->updated) return a->updated > b->updated;
    return a->writing && !b->writing;
}

static int name_completeness(const json_t *name) {
    if (name == NULL) return -1;
    int c = json_string_length(json_object_get(name, "family")) > 1 ? 2 : 0;
    size_t i;
    const json_t *g;
    json_array_foreach(json_object_get(name, "given"), i, g) c += json_string_length(g) > 1 ? 2 : 1;
    return c;
}

static json_t *pick_name_json(const json_t *names) {
    json_t *best = NULL;
    int rank = 99;
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n) {
        const char *use = json_string_value(json_object_get(n, "use"));
        int r = !use ? 2 : !strcmp(use, "official") ? 0 : !strcmp(use, "usual") ? 1
                : (!strcmp(use, "old") || !strcmp(use, "maiden")) ? 9 : 3;
        if (r < rank) {
            best = n;
            rank = r;
        }
    }
    return best;
}

/* Adds the elements of `arr` to `out` unless an equal key is there. */
static void union_by(json_t *out, const json_t *arr, const char *k1, const char *k2) {
    size_t i, j;
    const json_t *x, *y;
    json_array_foreach(arr, i, x) {
        const char *a1 = json_string_value(json_object_get(x, k1));
        const char *a2 = json_string_value(json_object_get(x, k2));
        if (a2 == NULL) continue;
        bool dup = false;
        json_array_foreach(out, j, y) {
            const char *b1 = json_string_value(json_object_get(y, k1));
            const char *b2 = json_string_value(json_object_get(y, k2));
            if (b2 && !strcmp(a2, b2) && ((!a1 && !b1) || (a1 && b1 && !strcmp(a1, b1)))) {
                dup = true;
                break;
            }
        }
        if (!dup) json_array_append_new(out, json_deep_copy(x));
    }
}

/* The golden Patient of the given sources (survivorship per element). */
static json_t *golden_build(src_rec *s, size_t n) {
    json_t *g = json_pack("{s:s, s:{s:[{s:s, s:s, s:s}]}, s:b}", "resourceType", "Patient",
                          "meta", "tag", "system", HUB_MPI_TAG_SYSTEM, "code",
                          HUB_MPI_TAG_GOLDEN, "display", "golden record (patient index)",
                          "active", 1);
    if (g == NULL) return NULL;
    /* every identifier: most trusted sources first */
    json_t *ids = json_array();
    json_t *tel = json_array();
    json_t *links = json_array();
    size_t order[MAX_SOURCES];
    for (size_t i = 0; i < n; i++) order[i] = i;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && better(&s[order[j]], 0, &s[order[j - 1]], 0); j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (size_t k = 0; k < n; k++) {
        const src_rec *r = &s[order[k]];
        union_by(ids, json_object_get(r->p, "identifier"), "system", "value");
        union_by(tel, json_object_get(r->p, "telecom"), "system", "value");
    }
    /* name: most trusted, then most complete, then most recent */
    const src_rec *bn = NULL;
    json_t *name = NULL;
    int cn = -1;
    const src_rec *bb = NULL, *bg = NULL, *ba = NULL, *bd = NULL, *bm = NULL;
    int cb = -1;
    for (size_t i = 0; i < n; i++) {
        src_rec *r = &s[i];
        json_t *nm = pick_name_json(json_object_get(r->p, "name"));
        int c = name_completeness(nm);
        if (nm && (bn == NULL || better(r, c, bn, cn))) {
            bn = r;
            cn = c;
            name = nm;
        }
        const char *bd_s = json_string_value(json_object_get(r->p, "birthDate"));
        int c2 = bd_s ? (int)strlen(bd_s) : -1;
        if (bd_s && (bb == NULL || better(r, c2, bb, cb))) {
            bb = r;
            cb = c2;
        }
        if (json_object_get(r->p, "gender") && (bg == NULL || better(r, 0, bg, 0))) bg = r;
        if (json_array_size(json_object_get(r->p, "address")) > 0 &&
            (ba == NULL || better(r, 0, ba, 0)))
            ba = r;
        if ((json_object_get(r->p, "deceasedBoolean") ||
             json_object_get(r->p, "deceasedDateTime")) &&
            (bd == NULL || better(r, 0, bd, 0)))
            bd = r;
        if (json_object_get(r->p, "maritalStatus") && (bm == NULL || better(r, 0, bm, 0))) bm = r;
    }
    for (size_t k = 0; k < n; k++) {
        char ref[96];
        snprintf(ref, sizeof ref, "Patient/%s", s[order[k]].id);
        json_array_append_new(links, json_pack("{s:{s:s}, s:s}", "other", "reference", ref,
                                               "type", "seealso"));
    }
    if (json_array_size(ids)) json_object_set(g, "identifier", ids);
    if (name) json_object_set_new(g, "name", json_pack("[O]", name));
    if (json_array_size(tel)) json_object_set(g, "telecom", tel);
    if (bg) json_object_set(g, "gender", json_object_get(bg->p, "gender"));
    if (bb) json_object_set(g, "birthDate", json_object_get(bb->p, "birthDate"));
    if (bd) {
        const json_t *v = json_object_get(bd->p, "deceasedBoolean");
        if (v)
            json_object_set(g, "deceasedBoolean", (json_t *)v);
        else
            json_object_set(g, "deceasedDateTime", json_object_get(bd->p, "deceasedDateTime"));
    }
    if (ba) json_object_set_new(g, "address", json_deep_copy(json_object_get(ba->p, "address")));
    if (bm) json_object_set(g, "maritalStatus", json_object_get(bm->p, "maritalStatus"));
    json_object_set(g, "link", links);
    json_decref(ids);
    json_decref(tel);
    json_decref(links);
    return g;
}

typedef struct {
    char (*ids)[72];
    size_t n, cap;
} id_list;

static hub_status id_add(void *ud, const char *id) {
    id_list *l = ud;
    if (l->n < l->cap) snprintf(l->ids[l->n++], 72, "%s", id);
    return HUB_OK;
}

/* Writes `g` as Patient/id unless the stored one has the same content. */
static hub_status put_if_changed(hub_mpi *m, hub_store_tx *tx, const char *id, json_t *g,
                                 const hub_actor *actor, hub_err *err) {
    json_t *cur = NULL;
    hub_status rc = hub__mpi_load_patient(tx, id, &cur, NULL, err);
    if (rc) return rc;
    if (cur) {
        json_t *meta = json_object_get(cur, "meta");
        json_object_del(meta, "versionId");
        json_object_del(meta, "lastUpdated");
        json_object_del(cur, "id");
        bool same = json_equal(cur, g);
        json_decref(cur);
        if (same) return HUB_OK;
    }
    return hub_record_put_tx(m->record, tx, "Patient", id, g, false, actor, 1, NULL, err);
}

static hub_status golden_refresh2(hub_mpi *m, hub_store_tx *tx, const char *gid,
                                  const char *into, const hub_actor *actor, const char *known_id,
                                  json_t *known_p, bool fresh, hub_err *err);

/* Rebuilds golden `gid` from its linked sources; with none left, the
 * golden is retired: inactive, with a replaced-by link to `into` when
 * given. */
hub_status hub__mpi_golden_refresh(hub_mpi *m, hub_store_tx *tx, const char *gid,
                                   const char *into, const hub_actor *actor, hub_err *err) {
    return golden_refresh2(m, tx, gid, into, actor, NULL, NULL, false, err);
}

/* known_id/known_p: a source whose current JSON the caller holds (not read
 * again); fresh: the golden is new or certainly changes (nothing to
 * compare). */
static hub_status golden_refresh2(hub_mpi *m, hub_store_tx *tx, const char *gid,
                                  const char *into, const hub_actor *actor, const char *known_id,
                                  json_t *known_p, bool fresh, hub_err *err) {
    char ids[MAX_SOURCES][72];
    id_list l = {ids, 0, MAX_SOURCES};
    hub_status rc = hub_mpi_st_sources_tx(tx, gid, id_add, &l, err);
    if (rc) return rc;
    src_rec s[MAX_SOURCES];
    size_t n = 0;
    for (size_t i = 0; !rc && i < l.n; i++) {
        json_t *p = NULL;
        int64_t upd = 0;
        if (known_id && !strcmp(known_id, ids[i])) {
            p = json_incref(known_p);
            upd = hub_now_ms();
        } else {
            rc = hub__mpi_load_patient(tx, ids[i], &p, &upd, err);
        }
        if (rc || p == NULL) continue;
        /* the sender only ranks sources when some are trusted more */
        char sender[160] = "";
        hub_status r2 = m->nsources == 0 ? HUB_OK
                        : hub_mpi_st_person_get(tx, ids[i], NULL, 0, sender, sizeof sender, err);
        if (r2 && r2 != HUB_E_NOTFOUND) {
            json_decref(p);
            rc = r2;
            break;
        }
        s[n].id = ids[i];
        s[n].p = p;
        s[n].trust = trust_of(m, sender);
        s[n].updated = upd;
        s[n].writing = known_id && !strcmp(known_id, ids[i]);
        n++;
    }
    json_t *g = NULL;
    if (!rc) {
        if (n > 0) {
            g = golden_build(s, n);
        } else {
            g = json_pack("{s:s, s:{s:[{s:s, s:s, s:s}]}, s:b}", "resourceType", "Patient",
                          "meta", "tag", "system", HUB_MPI_TAG_SYSTEM, "code",
                          HUB_MPI_TAG_GOLDEN, "display", "golden record (patient index)",
                          "active", 0);
            if (g && into) {
                char ref[96];
                snprintf(ref, sizeof ref, "Patient/%s", into);
                json_object_set_new(g, "link",
                                    json_pack("[{s:{s:s}, s:s}]", "other", "reference", ref,
                                              "type", "replaced-by"));
            }
        }
        if (g == NULL) rc = hub_err_set(err, HUB_E_NOMEM, "mpi", "out of memory");
    }
    if (!rc && fresh)
        rc = hub_record_put_tx(m->record, tx, "Patient", gid, g, false, actor, 1, NULL, err);
    else if (!rc)
        rc = put_if_changed(m, tx, gid, g, actor, err);
    json_decref(g);
    for (size_t i = 0; i < n; i++) json_decref(s[i].p);
    return rc;
}

/* Makes the source's Patient.link say `refer` golden (and nothing else
 * refer); writes a version only when it changes. `p` is the source's
 * current JSON (modified), or the version about to be written (the
 * pre-write hook's): then it is only amended. */
static hub_status source_link(hub_mpi *m, hub_store_tx *tx, const char *id, json_t *p,
                              const char *golden, const hub_actor *actor, hub_err *err) {
    char ref[96];
    snprintf(ref, sizeof ref, "Patient/%s", golden ? golden : "");
    json_t *links = json_object_get(p, "link");
    bool ok = golden == NULL, other_refer = false;
    size_t i;
    json_t *l;
    json_array_foreach(links, i, l) {
        const char *t = json_string_value(json_object_get(l, "type"));
        if (t == NULL || strcmp(t, "refer")) continue;
        const char *r = json_string_value(json_object_get(json_object_get(l, "other"),
                                                          "reference"));
        if (golden && r && !strcmp(r, ref) && !ok)
            ok = true;
        else
            other_refer = true;
    }
    if (ok && !other_refer) return HUB_OK;
    if (!m->source_links) return HUB_OK;
    json_t *nl = json_array();
    json_array_foreach(links, i, l) {
        const char *t = json_string_value(json_object_get(l, "type"));
        if (t && !strcmp(t, "refer")) continue;
        json_array_append(nl, l);
    }
    if (golden)
        json_array_append_new(nl, json_pack("{s:{s:s}, s:s}", "other", "reference", ref, "type",
                                            "refer"));
    if (json_array_size(nl))
        json_object_set_new(p, "link", nl);
    else {
        json_decref(nl);
        json_object_del(p, "link");
    }
    if (m->pending && !strcmp(id, m->pending)) {
        m->pending_amended = true; /* the record writes it, link and all */
        return HUB_OK;
    }
    return hub_record_put_tx(m->record, tx, "Patient", id, p, false, actor, 1, NULL, err);
}

/* ---- matching one source --------------------------------------------------------------- */

/* A golden's id: a UUID whose first 48 bits are the millisecond clock (the
 * version-7 layout, as the record gives its own new resources), so that the
 * goldens made in one commit group sit together at the right edge of every
 * index keyed by id (resources, versions, index rows, mpi_link's golden)
 * instead of each dirtying a random page. The rest stays random. */
static void new_golden_id(char out[72]) {
    char u[37];
    hub_uuid(u);
    static const char hex[] = "0123456789abcdef";
    static const int pos[12] = {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12};
    uint64_t ms = (uint64_t)hub_now_ms();
    for (int i = 11; i >= 0; i--) {
        u[pos[i]] = hex[ms & 15];
        ms >>= 4;
    }
    u[14] = '7';
    snprintf(out, 72, "%s", u);
}

/* Links `id` (whose current JSON is p) to golden gid and brings both up
 * to date; the source's previous golden (if another) is refreshed. */
hub_status hub__mpi_link_to(hub_mpi *m, hub_store_tx *tx, const char *id, json_t *p,
                            const char *gid, const char *how, double score, const char *detail,
                            const hub_actor *actor, hub_err *err) {
    hub_mpi_st_link old;
    hub_status rc = hub_mpi_st_link_get(tx, id, &old, err);
    bool had = rc == HUB_OK;
    if (rc && rc != HUB_E_NOTFOUND) return rc;
    rc = hub_mpi_st_link_put(tx, id, gid, how, score, detail, err);
    char who[256];
    hub__mpi_actor_text(actor, who, sizeof who);
    if (!rc) rc = hub_mpi_st_history_add(tx, "link", id, gid, score, detail, who, err);
    /* A golden that gains a source changes (one more seealso link): write
     * it without reading the stored one to compare. */
    bool gains = !had || strcmp(old.golden, gid) != 0;
    if (!rc) rc = golden_refresh2(m, tx, gid, NULL, actor, id, p, gains, err);
    if (!rc && had && strcmp(old.golden, gid))
        rc = hub__mpi_golden_refresh(m, tx, old.golden, gid, actor, err);
    if (!rc) rc = source_link(m, tx, id, p, gid, actor, err);
    return rc;
}

/* Matches source `id` (current JSON p) and links it. `reeval`: even when
 * linked already. */
hub_status hub__mpi_process(hub_mpi *m, hub_store_tx *tx, const char *id, json_t *p,
                            const char *sender, bool reeval, const hub_actor *actor,
                            hub_err *err) {
    hub_mpi_feat f;
    hub_mpi_feat_of(p, &f);
    char keys[MAX_KEYS][96];
    size_t nid = hub__mpi_identifier_keys(m, p, keys, MAX_KEYS);
    size_t nk = nid + hub_mpi_block_keys(&f, keys + nid, MAX_KEYS - nid);
    char text[HUB_MPI_FEAT_TEXT];
    hub_mpi_feat_encode(&f, text);
    hub_status rc = hub_mpi_st_person_put(tx, id, sender, text, hub_mpi_fingerprint(&f, sender),
                                          keys, nk, hub_now_ms(), err);
    if (rc) return rc;

    /* Linked already: links are sticky (a person decided, or the record
     * shares its golden with others); only a record alone in its golden
     * is matched again, since what it says now may find its person. */
    hub_mpi_st_link cur;
    rc = hub_mpi_st_link_get(tx, id, &cur, err);
    bool linked = rc == HUB_OK;
    if (rc && rc != HUB_E_NOTFOUND) return rc;
    if (linked && !reeval) {
        char ids[2][72];
        id_list l = {ids, 0, 2};
        rc = hub_mpi_st_sources_tx(tx, cur.golden, id_add, &l, err);
        if (rc) return rc;
        if (l.n > 1 || !strcmp(cur.how, "manual") || !strcmp(cur.how, "merge")) {
            rc = golden_refresh2(m, tx, cur.golden, NULL, actor, id, p, false, err);
            if (!rc) rc = source_link(m, tx, id, p, cur.golden, actor, err);
            return rc;
        }
    }

    person_score best[16];
    size_t nb = 0;
    rc = hub__mpi_candidates(m, tx, id, &f, sender, keys, nk, nid, best, 16, &nb, err);
    if (rc) return rc;
    /* The first candidate person that qualifies, best first (the golden
     * this record is alone in is no candidate of itself). */
    char detail[600];
    size_t b = nb, rev = nb;
    for (size_t i = 0; i < nb; i++) {
        if (linked && !strcmp(best[i].golden, cur.golden)) continue;
        if (best[i].certain ||
            (best[i].score >= m->auto_link && !best[i].veto && !best[i].conflict)) {
            b = i;
            break;
        }
        if (rev == nb && best[i].score >= m->review) rev = i;
    }
    if (b < nb) {
        person_score *ps = &best[b];
        hub__mpi_detail_json(ps->contrib, ps->lv, detail, sizeof detail);
        rc = hub__mpi_link_to(m, tx, id, p, ps->golden, ps->certain ? "identifier" : "score",
                              ps->score, detail, actor, err);
        /* New evidence: another person that this record matches as well,
         * alone in its golden (a record that missed this person before),
         * joins it. Only lone records move, so one bad link cannot drag a
         * whole person along. */
        for (size_t i = 0; !rc && i < nb; i++) {
            if (i == b || !strcmp(best[i].golden, ps->golden) || best[i].veto ||
                best[i].conflict || (!best[i].certain && best[i].score < m->auto_link))
                continue;
            char ids[2][72];
            id_list l = {ids, 0, 2};
            rc = hub_mpi_st_sources_tx(tx, best[i].golden, id_add, &l, err);
            if (rc || l.n != 1) continue;
            hub_mpi_st_link ol;
            rc = hub_mpi_st_link_get(tx, ids[0], &ol, err);
            if (rc || strcmp(ol.how, "new")) continue;
            json_t *op = NULL;
            rc = hub__mpi_load_patient(tx, ids[0], &op, NULL, err);
            if (!rc && op) {
                char d2[600];
                hub__mpi_detail_json(best[i].contrib, best[i].lv, d2, sizeof d2);
                rc = hub__mpi_link_to(m, tx, ids[0], op, ps->golden, "score", best[i].score, d2,
                                      actor, err);
                if (!rc) rc = hub_mpi_st_review_drop(tx, ids[0], err);
            }
            json_decref(op);
        }
        return rc;
    }
    b = rev;
    if (b < nb) hub__mpi_detail_json(best[b].contrib, best[b].lv, detail, sizeof detail);
    /* its own golden (a new one, or the one it is alone in) */
    char gid[72];
    if (linked)
        snprintf(gid, sizeof gid, "%s", cur.golden);
    else
        new_golden_id(gid);
    rc = hub__mpi_link_to(m, tx, id, p, gid, "new", 0.0, NULL, actor, err);
    if (!rc && b < nb && best[b].score >= m->review) {
        rc = hub_mpi_st_review_drop(tx, id, err);
        if (!rc) rc = hub_mpi_st_review_add(tx, id, best[b].golden, best[b].score, detail, err);
        char who[256];
        hub__mpi_actor_text(actor, who, sizeof who);
        if (!rc)
            rc = hub_mpi_st_history_add(tx, "possible-match", id, best[b].golden, best[b].score,
                                        detail, who, err);
    }
    return rc;
}

/* ---- merges -------------------------------------------------------------------------------- */

/* The golden of a Patient id: itself when it is a golden, else its link
 * (the record is matched first when it has none yet). *gid "" when the
 * Patient does not exist. */
static hub_status golden_of_tx(hub_mpi *m, hub_store_tx *tx, const char *id, char gid[72],
                               const hub_actor *actor, hub_err *err) {
    gid[0] = '\0';
    hub_mpi_st_link l;
    hub_status rc = hub_mpi_st_link_get(tx, id, &l, err);
    if (rc == HUB_OK) {
        snprintf(gid, 72, "%s", l.golden);
        return HUB_OK;
    }
    if (rc != HUB_E_NOTFOUND) return rc;
    json_t *p = NULL;
    rc = hub__mpi_load_patient(tx, id, &p, NULL, err);
    if (rc || p == NULL) return rc;
    if (hub__mpi_is_golden(p)) {
        snprintf(gid, 72, "%s", id);
    } else {
        rc = hub__mpi_process(m, tx, id, p, "", false, actor, err);
        if (!rc) rc = hub_mpi_st_link_get(tx, id, &l, err);
        if (!rc) snprintf(gid, 72, "%s", l.golden);
    }
    json_decref(p);
    return rc;
}

hub_status hub_mpi_merge_tx(hub_mpi *m, hub_store_tx *tx, const char *from, const char *into,
                            const hub_actor *actor, hub_err *err) {
    char gf[72], gi[72];
    hub_status rc = golden_of_tx(m, tx, from, gf, actor, err);
    if (!rc) rc = golden_of_tx(m, tx, into, gi, actor, err);
    if (rc) return rc;
    if (!gf[0] || !gi[0])
        return hub_err_set(err, HUB_E_NOTFOUND, "mpi", "no such Patient");
    if (!strcmp(gf, gi)) return HUB_OK;
    char ids[MAX_SOURCES][72];
    id_list l = {ids, 0, MAX_SOURCES};
    rc = hub_mpi_st_sources_tx(tx, gf, id_add, &l, err);
    char who[256];
    hub__mpi_actor_text(actor, who, sizeof who);
    for (size_t i = 0; !rc && i < l.n; i++) {
        rc = hub_mpi_st_link_put(tx, ids[i], gi, "merge", 0.0, NULL, err);
        if (!rc) rc = hub_mpi_st_history_add(tx, "merge", ids[i], gi, 0.0, NULL, who, err);
        if (!rc) rc = hub_mpi_st_review_drop(tx, ids[i], err);
        json_t *p = NULL;
        if (!rc) rc = hub__mpi_load_patient(tx, ids[i], &p, NULL, err);
        if (!rc && p) rc = source_link(m, tx, ids[i], p, gi, actor, err);
        json_decref(p);
    }
    if (!rc) rc = hub__mpi_golden_refresh(m, tx, gi, NULL, actor, err);
    if (!rc) rc = hub__mpi_golden_refresh(m, tx, gf, gi, actor, err);
    return rc;
}

/* ---- the listener ------------------------------------------------------------------------ */

/* The source system a change comes from: the v2 sender (MSH-3^MSH-4), else
 * the OAuth client, else the MLLP channel. A FHIR request without a token
 * names no source ("http" is every REST client at once), so it vetoes no
 * link as "the same sender". */
static const char *sender_of(const hub_actor *a) {
    if (a == NULL) return "";
    if (a->sender && a->sender[0]) return a->sender;
    if (a->client && a->client[0]) return a->client;
    if (a->channel && strcmp(a->channel, "http") != 0) return a->channel;
    return "";
}

hub_status hub__mpi_unindex(hub_mpi *m, hub_store_tx *tx, const char *id, const hub_actor *actor,
                            hub_err *err) {
    hub_mpi_st_link l;
    hub_status rc = hub_mpi_st_link_get(tx, id, &l, err);
    if (rc == HUB_E_NOTFOUND) return hub_mpi_st_person_del(tx, id, err);
    if (rc) return rc;
    rc = hub_mpi_st_link_del(tx, id, err);
    char who[256];
    hub__mpi_actor_text(actor, who, sizeof who);
    if (!rc) rc = hub_mpi_st_history_add(tx, "deleted", id, l.golden, 0.0, NULL, who, err);
    if (!rc) rc = hub_mpi_st_review_drop(tx, id, err);
    if (!rc) rc = hub_mpi_st_person_del(tx, id, err);
    if (!rc) rc = hub__mpi_golden_refresh(m, tx, l.golden, NULL, actor, err);
    return rc;
}

/* Before a client's Patient version is written: match it and put its
 * `refer` link in, so that the client's write is the one version made
 * (a create is version 1 with its link; an update that drops the link
 * gets it back). The golden is written here too, by the index. */
/* True when `a` and `b` say the same apart from meta and link (what the
 * record and the index write themselves). */
static bool same_content(const json_t *a, const json_t *b) {
    json_t *x = json_copy((json_t *)a), *y = json_copy((json_t *)b);
    bool same = false;
    if (x && y) {
        json_object_del(x, "meta");
        json_object_del(x, "link");
        json_object_del(y, "meta");
        json_object_del(y, "link");
        same = json_equal(x, y);
    }
    json_decref(x);
    json_decref(y);
    return same;
}

/* An update that repeats the linked source as it is stored (an A08 that
 * sends the patient again, a client's unchanged PUT) changes nothing the
 * index reads: no features, keys or survivorship input. It only needs its
 * `refer` link back; matching it again would find what it found before,
 * since every record that arrived since was matched against it. Sets
 * *done when that is the case. */
static hub_status unchanged_source(hub_mpi *m, hub_store_tx *tx, hub_record_pending *pw,
                                   bool *done, hub_err *err) {
    *done = false;
    if (pw->kind == HUB_OP_CREATE) return HUB_OK;
    hub_mpi_st_link cur;
    hub_status rc = hub_mpi_st_link_get(tx, pw->id, &cur, err);
    if (rc == HUB_E_NOTFOUND) return HUB_OK;
    if (rc) return rc;
    json_t *stored = NULL;
    rc = hub__mpi_load_patient(tx, pw->id, &stored, NULL, err);
    if (rc || stored == NULL) return rc;
    bool same = same_content(stored, pw->res);
    json_decref(stored);
    if (!same) return HUB_OK;
    *done = true;
    return source_link(m, tx, pw->id, pw->res, cur.golden, pw->actor, err);
}

hub_status hub__mpi_prewrite(void *ud, hub_store_tx *tx, hub_record_pending *pw, bool *changed,
                             hub_err *err) {
    hub_mpi *m = ud;
    *changed = false;
    if (pw->depth != 0 || hub__mpi_is_golden(pw->res)) return HUB_OK;
    m->pending = pw->id;
    m->pending_amended = false;
    bool done = false;
    hub_status rc = unchanged_source(m, tx, pw, &done, err);
    if (!rc && !done)
        rc = hub__mpi_process(m, tx, pw->id, pw->res, sender_of(pw->actor), false, pw->actor,
                              err);
    *changed = m->pending_amended;
    m->pending = NULL;
    return rc;
}

/* The Patient a replaced-by link names (into, cap 72), "" when none. */
static void replaced_by(const json_t *p, char into[72]) {
    into[0] = '\0';
    size_t i;
    const json_t *l;
    json_array_foreach(json_object_get(p, "link"), i, l) {
        const char *t = json_string_value(json_object_get(l, "type"));
        const char *id = hub__mpi_ref_id(
            json_string_value(json_object_get(json_object_get(l, "other"), "reference")));
        if (t && !strcmp(t, "replaced-by") && id) snprintf(into, 72, "%s", id);
    }
}

/* After a client's Patient version is written: a delete leaves the index;
 * ADT^A40/A39/A34 (the mapping marks the merged Patient inactive,
 * replaced-by the survivor) and any client doing the same merge. */
hub_status hub__mpi_listener(void *ud, hub_store_tx *tx, const hub_record_change *ch,
                             hub_err *err) {
    hub_mpi *m = ud;
    if (ch->depth != 0 || strcmp(ch->type, "Patient")) return HUB_OK;
    if (ch->deleted) return hub__mpi_unindex(m, tx, ch->id, ch->actor, err);
    if (memmem(ch->json, ch->json_len, "replaced-by", 11) == NULL) return HUB_OK;
    json_t *p = json_loadb(ch->json, ch->json_len, 0, NULL);
    if (p == NULL) return HUB_OK; /* the record wrote it: cannot happen */
    hub_status rc = HUB_OK;
    char into[72];
    replaced_by(p, into);
    if (!hub__mpi_is_golden(p) && into[0] && strcmp(into, ch->id)) {
        rc = hub_mpi_merge_tx(m, tx, ch->id, into, ch->actor, err);
        if (rc == HUB_E_NOTFOUND) rc = HUB_OK; /* names no Patient we know: kept as is */
    }
    json_decref(p);
    return rc;
}
