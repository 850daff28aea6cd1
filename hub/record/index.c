/* Index extraction: the one function that turns a resource into its index
 * rows (hub_store_token), driven by the search-parameter table. The writer
 * stores the rows; subscription matching will run the same function. */
#include "internal.h"

#include <string.h>

typedef struct {
    hub_arena *a;       /* the rows and the strings they need */
    hub_arena *scratch; /* the evaluator's collections: reset per parameter */
    hub_store_token *rows;
    size_t n, cap;
    const hub_fhir_sp *sp;
    const char *param; /* the row name (sp->code, or a composite's) */
    bool nomem, over;
    bool shadow; /* the parameter is an alias: its rows are not stored */
    bool in_comp; /* a composite's component: no derived rows */
} sink;

static hub_store_token *row(sink *k, const char *param, hub_ix_kind kind) {
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 32;
        if (cap > HUB__RECORD_MAX_ROWS) {
            k->over = true;
            return NULL;
        }
        hub_store_token *p = hub_arena_grow(k->a, k->rows, k->cap * sizeof *p, cap * sizeof *p);
        if (!p) {
            k->nomem = true;
            return NULL;
        }
        k->rows = p;
        k->cap = cap;
    }
    hub_store_token *t = &k->rows[k->n++];
    memset(t, 0, sizeof *t);
    t->param = param;
    t->system = "";
    t->value = "";
    t->kind = kind;
    t->shadow = k->shadow;
    return t;
}

static const char *sget(const json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k));
}

/* a, sep and b joined in the rows' arena (a printf per derived row was a
 * sixth of the extraction's cost). */
static const char *join3(sink *k, const char *a, char sep, const char *b, char sep2,
                         const char *c) {
    size_t na = strlen(a), nb = strlen(b), nc = c ? strlen(c) : 0;
    char *s = hub_arena_alloc(k->a, na + nb + nc + 3);
    if (!s) {
        k->nomem = true;
        return NULL;
    }
    char *p = s;
    memcpy(p, a, na);
    p += na;
    *p++ = sep;
    memcpy(p, b, nb);
    p += nb;
    if (c) {
        *p++ = sep2;
        memcpy(p, c, nc);
        p += nc;
    }
    *p = '\0';
    return s;
}

static const char *derived(sink *k, const char *suffix) {
    return join3(k, k->param, ':', suffix, 0, NULL);
}

static void token(sink *k, const char *param, const char *system, const char *code) {
    if (!code) return;
    hub_store_token *t = row(k, param, HUB_IX_TOKEN);
    if (!t) return;
    t->system = system ? system : "";
    t->value = code;
}

static void text_row(sink *k, const char *param, const char *text) {
    if (!text) return;
    size_t n = strlen(text);
    char *norm = hub_arena_alloc(k->a, n * 2 + 1);
    if (!norm) {
        k->nomem = true;
        return;
    }
    hub_fhir_str_norm(text, n, norm, n * 2 + 1);
    hub_store_token *t = row(k, param, HUB_IX_TOKEN);
    if (!t) return;
    t->system = text;
    t->value = norm;
}

/* The ":text" row of a coded value (none for a composite's component). */
static void text_of(sink *k, const char *text) {
    if (!text || k->in_comp) return;
    const char *p = derived(k, "text");
    if (p) text_row(k, p, text);
}

static void date_row(sink *k, const char *s, int64_t lo_default, int64_t hi_default,
                     const char *end) {
    int64_t lo = lo_default, hi = hi_default, l2, h2;
    if (s && hub_fhir_date_range(s, strlen(s), &lo, &hi) != HUB_OK) return;
    if (end) {
        if (hub_fhir_date_range(end, strlen(end), &l2, &h2) != HUB_OK) return;
        hi = h2;
    }
    hub_store_token *t = row(k, k->param, HUB_IX_DATE);
    if (!t) return;
    t->lo = lo;
    t->hi = hi;
}

static void num_row(sink *k, double v, const char *system, const char *code) {
    hub_store_token *t = row(k, k->param, HUB_IX_NUMBER);
    if (!t) return;
    t->num = v;
    t->system = system ? system : "";
    t->value = code ? code : "";
}

#define TIME_MIN INT64_MIN / 4
#define TIME_MAX INT64_MAX / 4

static void ref_rows(sink *k, const json_t *v) {
    const char *ref = sget(v, "reference");
    const json_t *ident = json_object_get(v, "identifier");
    if (json_is_object(ident)) {
        const char *p = derived(k, "identifier");
        if (p) token(k, p, sget(ident, "system"), sget(ident, "value"));
    }
    if (!ref || ref[0] == '#') return;
    const char *q = strchr(ref, '?');
    if (q) return; /* a conditional reference left unresolved */
    /* Type/id (relative), or an absolute URL: kept whole, and split into
     * type and id when it ends in Type/id so that either form matches. */
    const char *slash = strrchr(ref, '/');
    const char *hist = strstr(ref, "/_history/");
    if (hist) {
        /* Type/id/_history/n: the version is not part of the match. */
        const char *e = hist;
        const char *s = e;
        while (s > ref && s[-1] != '/') s--;
        const char *ts = s > ref ? s - 1 : ref;
        while (ts > ref && ts[-1] != '/') ts--;
        char *type = hub_arena_strndup(k->a, ts, (size_t)(s - 1 - ts));
        char *id = hub_arena_strndup(k->a, s, (size_t)(e - s));
        if (!type || !id) {
            k->nomem = true;
            return;
        }
        token(k, k->param, s > ref ? type : "", id);
        return;
    }
    bool absolute = strstr(ref, "://") != NULL;
    if (slash) {
        const char *ts = slash;
        while (ts > ref && ts[-1] != '/') ts--;
        char *type = hub_arena_strndup(k->a, ts, (size_t)(slash - ts));
        if (!type) {
            k->nomem = true;
            return;
        }
        token(k, k->param, type, slash + 1);
    }
    if (absolute) token(k, k->param, "", ref);
}

/* One value of a parameter, by the parameter's type and the value's. */
static void value_rows(sink *k, hub_sp_type pt, const json_t *v, const char *type) {
    const char *t = type ? type : "";
    switch (pt) {
    case HUB_SP_TOKEN:
        if (json_is_string(v)) {
            token(k, k->param, "", json_string_value(v));
        } else if (json_is_boolean(v)) {
            token(k, k->param, "", json_is_true(v) ? "true" : "false");
        } else if (strcmp(t, "Coding") == 0) {
            token(k, k->param, sget(v, "system"), sget(v, "code"));
            text_of(k, sget(v, "display"));
        } else if (strcmp(t, "CodeableConcept") == 0) {
            size_t i;
            const json_t *c;
            json_array_foreach(json_object_get(v, "coding"), i, c) {
                token(k, k->param, sget(c, "system"), sget(c, "code"));
                text_of(k, sget(c, "display"));
            }
            text_of(k, sget(v, "text"));
        } else if (strcmp(t, "Identifier") == 0) {
            token(k, k->param, sget(v, "system"), sget(v, "value"));
            /* :of-type: the identifier type's system|code with the value. */
            size_t i;
            const json_t *c;
            json_array_foreach(json_object_get(json_object_get(v, "type"), "coding"), i, c) {
                const char *code = sget(c, "code");
                const char *val = sget(v, "value");
                if (!code || !val) continue;
                const char *ov = join3(k, code, '|', val, 0, NULL);
                const char *p = derived(k, "of-type");
                if (!ov || !p) return;
                token(k, p, sget(c, "system"), ov);
            }
            text_of(k, sget(json_object_get(v, "type"), "text"));
        } else if (strcmp(t, "ContactPoint") == 0) {
            token(k, k->param, sget(v, "system"), sget(v, "value"));
        } else if (json_is_object(v) && sget(v, "code")) {
            /* Quantity and the like used as tokens. */
            token(k, k->param, sget(v, "system"), sget(v, "code"));
        }
        return;
    case HUB_SP_STRING:
        if (json_is_string(v)) {
            text_row(k, k->param, json_string_value(v));
        } else if (strcmp(t, "HumanName") == 0) {
            if (sget(v, "text")) text_row(k, k->param, sget(v, "text"));
            if (sget(v, "family")) text_row(k, k->param, sget(v, "family"));
            static const char *const parts[] = {"given", "prefix", "suffix"};
            for (int p = 0; p < 3; p++) {
                size_t i;
                const json_t *g;
                json_array_foreach(json_object_get(v, parts[p]), i, g)
                    if (json_is_string(g)) text_row(k, k->param, json_string_value(g));
            }
        } else if (strcmp(t, "Address") == 0) {
            static const char *const parts[] = {"text", "city", "district", "state",
                                                "postalCode", "country"};
            for (int p = 0; p < 6; p++)
                if (sget(v, parts[p])) text_row(k, k->param, sget(v, parts[p]));
            size_t i;
            const json_t *g;
            json_array_foreach(json_object_get(v, "line"), i, g)
                if (json_is_string(g)) text_row(k, k->param, json_string_value(g));
        } else if (json_is_object(v) && sget(v, "text")) {
            text_row(k, k->param, sget(v, "text"));
        }
        return;
    case HUB_SP_URI:
        if (json_is_string(v)) token(k, k->param, "", json_string_value(v));
        return;
    case HUB_SP_REFERENCE:
        if (json_is_object(v) && strcmp(t, "Attachment") != 0) {
            if (json_object_get(v, "resourceType")) {
                /* Bundle.entry[0].resource: the resource itself. */
                token(k, k->param, sget(v, "resourceType"), sget(v, "id"));
            } else {
                ref_rows(k, v);
            }
        } else if (json_is_string(v)) {
            /* canonical / uri references */
            token(k, k->param, "", json_string_value(v));
        }
        return;
    case HUB_SP_DATE:
        if (json_is_string(v)) {
            date_row(k, json_string_value(v), 0, 0, NULL);
        } else if (strcmp(t, "Period") == 0) {
            const char *s = sget(v, "start"), *e = sget(v, "end");
            if (!s && !e) return;
            int64_t lo = TIME_MIN, hi = TIME_MAX, l2, h2;
            if (s && hub_fhir_date_range(s, strlen(s), &lo, &h2)) return;
            if (e && hub_fhir_date_range(e, strlen(e), &l2, &hi)) return;
            hub_store_token *r = row(k, k->param, HUB_IX_DATE);
            if (r) {
                r->lo = lo;
                r->hi = hi;
            }
        } else if (strcmp(t, "Timing") == 0) {
            size_t i;
            const json_t *ev;
            json_array_foreach(json_object_get(v, "event"), i, ev)
                if (json_is_string(ev)) date_row(k, json_string_value(ev), 0, 0, NULL);
        }
        return;
    case HUB_SP_NUMBER:
        if (json_is_number(v)) num_row(k, json_number_value(v), NULL, NULL);
        return;
    case HUB_SP_QUANTITY:
        if (json_is_object(v) && json_is_number(json_object_get(v, "value"))) {
            double n = json_number_value(json_object_get(v, "value"));
            const char *code = sget(v, "code") ? sget(v, "code") : sget(v, "unit");
            num_row(k, n, sget(v, "system"), code);
        } else if (strcmp(t, "Range") == 0) {
            /* A range contributes its bounds. */
            value_rows(k, pt, json_object_get(v, "low"), "Quantity");
            value_rows(k, pt, json_object_get(v, "high"), "Quantity");
        }
        return;
    default:
        return;
    }
}

typedef struct {
    sink *k;
    hub_sp_type pt;
} cb_ctx;

static hub_status on_value(void *ud, const json_t *v, const char *type, const char *key) {
    cb_ctx *c = ud;
    (void)key;
    value_rows(c->k, c->pt, v, type);
    return c->k->nomem ? HUB_E_NOMEM : HUB_OK;
}

/* A composite's values: for each item the expression finds, the first
 * component's codes (system, code) and the second component's rows; each
 * pair is one row of the second's kind named "<param>$<code>|<system>",
 * so a composite search is one lookup by name (and value) like any other
 * parameter. Two components only (the R4 definitions with three are
 * MolecularSequence's coordinates). */
typedef struct {
    sink *k;
    const hub_fhir_defs *d;
    const hub_fhir_sp *sp;
    const char *rtype;
    const json_t *res;
} comp_ctx;

static hub_status on_comp_item(void *ud, const json_t *v, const char *type,
                               const char *key) {
    comp_ctx *c = ud;
    sink *k = c->k;
    static const char FIRST[] = "$0", SECOND[] = "$1";
    size_t before = k->n;
    /* Component expressions are relative to the item: evaluated with the
     * item as a resource of the item's type. The second (a value of one
     * type) first: for most items of most composites it is empty, and
     * the first (codes) is not needed. Derived rows (":text") are not
     * components: the sink skips them. */
    k->in_comp = true;
    k->param = SECOND;
    cb_ctx c1 = {k, c->sp->comp_type[1]};
    hub_status rc = hub_fhirpath_eval_at(c->d, c->sp->comp_path[1], k->scratch, type, key, v,
                                         c->rtype, c->res, on_value, &c1);
    size_t mid = k->n;
    k->param = FIRST;
    cb_ctx c0 = {k, c->sp->comp_type[0]};
    if (!rc && mid > before)
        rc = hub_fhirpath_eval_at(c->d, c->sp->comp_path[0], k->scratch, type, key, v, c->rtype,
                                  c->res, on_value, &c0);
    size_t end = k->n;
    k->param = c->sp->code;
    k->in_comp = false;
    if (rc) return rc;
    if (k->over || k->nomem) return k->nomem ? HUB_E_NOMEM : HUB_OK;
    /* The rows just made are scratch: move them aside, then write the
     * pairs. */
    size_t n1 = mid - before, n0 = end - mid;
    if (n0 == 0) {
        k->n = before;
        return HUB_OK;
    }
    hub_store_token *tmp = hub_arena_alloc(k->scratch, (n0 + n1) * sizeof *tmp);
    if (!tmp) return HUB_E_NOMEM;
    memcpy(tmp, &k->rows[before], (n0 + n1) * sizeof *tmp);
    k->n = before;
    const hub_store_token *seconds = tmp, *firsts = tmp + n1;
    for (size_t i = 0; i < n0; i++) {
        if (firsts[i].param != FIRST || !firsts[i].value[0]) continue;
        const char *name = join3(k, c->sp->code, '$', firsts[i].value, '|', firsts[i].system);
        if (!name) return HUB_E_NOMEM;
        for (size_t j = 0; j < n1; j++) {
            if (seconds[j].param != SECOND) continue;
            hub_store_token *t = row(k, name, seconds[j].kind);
            if (!t) return k->nomem ? HUB_E_NOMEM : HUB_OK;
            *t = seconds[j];
            t->param = name;
            t->shadow = k->shadow;
        }
    }
    return HUB_OK;
}

/* A composite over the resource whose components are two other
 * parameters' values (sp->pair): the rows on_comp_item would make, each
 * row of the first (a code) with each of the second, from the rows those
 * parameters already have (k->rows[0, n)). Not stored: a search for it
 * reads those parameters' rows (hub_store_qval with_param). */
static void pair_rows(sink *k, const hub_fhir_sp *sp, size_t n) {
    k->param = sp->code;
    k->shadow = true;
    for (size_t i = 0; i < n && !k->nomem && !k->over; i++) {
        const hub_store_token first = k->rows[i];
        if (strcmp(first.param, sp->pair[0]) != 0 || first.kind != HUB_IX_TOKEN ||
            !first.value[0])
            continue;
        const char *name = join3(k, sp->code, '$', first.value, '|', first.system);
        if (!name) return;
        for (size_t j = 0; j < n; j++) {
            if (strcmp(k->rows[j].param, sp->pair[1]) != 0) continue;
            hub_store_token second = k->rows[j]; /* row() may move the rows */
            hub_store_token *t = row(k, name, second.kind);
            if (!t) return;
            *t = second;
            t->param = name;
            t->shadow = true;
        }
    }
}

static hub_status extract(const hub_fhir_defs *d, const hub_fhir_sps *sps, hub_arena *a,
                          const char *type, const json_t *res, bool stored_only,
                          hub_store_token **rows, size_t *n) {
    /* The evaluator's intermediate collections go to a scratch arena
     * reused for every parameter: in `a` (a whole Bundle's arena) they
     * were most of the extraction's cost, one malloc per 4 KiB block. */
    hub_arena scratch;
    hub_arena_init(&scratch, 32768);
    sink k = {.a = a, .scratch = &scratch};
    *rows = NULL;
    *n = 0;
    if (sps == NULL) {
        /* No table (tests of the record's own logic): identifiers only. */
        const json_t *ids = json_object_get(res, "identifier");
        k.param = "identifier";
        if (json_is_object(ids)) value_rows(&k, HUB_SP_TOKEN, ids, "Identifier");
        size_t i;
        const json_t *it;
        json_array_foreach(ids, i, it) value_rows(&k, HUB_SP_TOKEN, it, "Identifier");
    } else {
        /* Most of a type's parameters read elements this resource does not
         * have: their expressions are not evaluated at all. */
        const char *keys[64];
        size_t nkeys = 0;
        bool many = false;
        const char *key;
        const json_t *kv;
        json_object_foreach((json_t *)res, key, kv) {
            if (nkeys == 64) {
                many = true;
                break;
            }
            keys[nkeys++] = key;
        }
        uint64_t kbits = hub_fhirpath_key_bits(keys, nkeys);
        size_t nown = 0;
        const hub_fhir_sp *const *own = hub_fhir_sp_list(sps, type, &nown);
        for (int pass = 0; pass < 2 && !k.nomem; pass++) {
            size_t np = nown;
            const hub_fhir_sp *const *ps = own;
            if (pass) ps = hub_fhir_sp_list(sps, "Resource", &np);
            for (size_t i = 0; i < np; i++) {
                const hub_fhir_sp *sp = ps[i];
                if (!sp->path || (stored_only && sp->nsame)) continue;
                if (!many && (!hub_fhirpath_bits_may_match(sp->path, kbits) ||
                              !hub_fhirpath_keys_may_match(sp->path, keys, nkeys)))
                    continue;
                /* _id and _lastUpdated are columns of the resource row. */
                if (sp->code[0] == '_' &&
                    (strcmp(sp->code, "_id") == 0 || strcmp(sp->code, "_lastUpdated") == 0))
                    continue;
                if (sp->pair[0]) continue; /* after every other one */
                k.sp = sp;
                k.param = sp->code;
                k.shadow = sp->nsame > 0;
                hub_status rc;
                if (sp->type == HUB_SP_COMPOSITE) {
                    if (sp->ncomp != 2 || !sp->comp_path[0] || !sp->comp_path[1]) continue;
                    comp_ctx cc = {&k, d, sp, type, res};
                    rc = hub_fhirpath_eval(d, sp->path, &scratch, type, res, on_comp_item, &cc);
                } else {
                    cb_ctx cc = {&k, sp->type};
                    rc = hub_fhirpath_eval(d, sp->path, &scratch, type, res, on_value, &cc);
                }
                hub_arena_reset(&scratch);
                if (rc == HUB_E_NOMEM) k.nomem = true;
                if (k.nomem) break;
            }
        }
        size_t nrows = k.n;
        for (size_t i = 0; i < nown && !k.nomem && !stored_only; i++)
            if (own[i]->pair[0]) pair_rows(&k, own[i], nrows);
    }
    hub_arena_release(&scratch);
    if (k.nomem) return HUB_E_NOMEM;
    if (k.over) return HUB_E_LIMIT;
    *rows = k.rows;
    *n = k.n;
    return HUB_OK;
}

hub_status hub_record_extract(const hub_fhir_defs *d, const hub_fhir_sps *sps,
                              hub_arena *a, const char *type, const json_t *res,
                              hub_store_token **rows, size_t *n) {
    return extract(d, sps, a, type, res, false, rows, n);
}

hub_status hub__record_extract_stored(const hub_fhir_defs *d, const hub_fhir_sps *sps,
                                      hub_arena *a, const char *type, const json_t *res,
                                      hub_store_token **rows, size_t *n) {
    return extract(d, sps, a, type, res, true, rows, n);
}
