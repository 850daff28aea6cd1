/* FHIR search: the query string into a hub_store_query (the store runs
 * it), then the searchset Bundle: matches, _include/_revinclude, links,
 * _summary/_elements, the OperationOutcome of ignored parameters. */
#include "internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARAMS 64
#define MAX_VALUES 100
#define MAX_INCLUDES 8
#define DEFAULT_COUNT 20
#define MAX_COUNT 1000

static int hexv(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static char *decode(hub_arena *a, const char *p, size_t n) {
    char *out = hub_arena_alloc(a, n + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%') {
            if (i + 2 >= n) return NULL;
            int h = hexv((unsigned char)p[i + 1]), l = hexv((unsigned char)p[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0)) return NULL;
            out[k++] = (char)(h * 16 + l);
            i += 2;
        } else {
            out[k++] = p[i] == '+' ? ' ' : p[i];
        }
    }
    out[k] = '\0';
    return out;
}

typedef struct {
    hub_record *r;
    hub_arena *a;
    hub_oo *oo;
    bool strict;
    int status; /* 0, or the 4xx */
    bool nomem;
    bool expand; /* a Patient named in a reference stands for its linked
                    records (hub_record_patient_ids); not in conditional
                    criteria, which must name exactly what they match */
} pctx;

static int fail(pctx *c, int status, const char *code, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(pctx *c, int status, const char *code, const char *expr, const char *fmt, ...) {
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hub_oo_add(c->oo, HUB_OO_ERROR, code, expr, "%s", msg);
    if (!c->status) c->status = status;
    return status;
}

static void *aalloc(pctx *c, size_t n) {
    void *p = hub_arena_calloc(c->a, n);
    if (!p) c->nomem = true;
    return p;
}

/* Splits a value list at unescaped commas, unescaping "\,", "\|", "\$",
 * "\\". */
static size_t split_values(pctx *c, char *v, char **out, size_t max) {
    size_t n = 0;
    char *w = v, *start = v;
    for (char *p = v;; p++) {
        if (*p == '\\' && (p[1] == ',' || p[1] == '$' || p[1] == '\\')) {
            *w++ = *++p;
            continue;
        }
        if (*p == ',' || *p == '\0') {
            bool end = *p == '\0';
            *w++ = '\0';
            if (n < max) out[n++] = start;
            else fail(c, 400, "too-costly", NULL, "more than %d values in one parameter", MAX_VALUES);
            start = w;
            if (end) break;
            continue;
        }
        *w++ = *p;
    }
    return n;
}

static const struct {
    const char *p;
    hub_sq_op op;
} PREFIXES[] = {{"eq", HUB_SQ_EQ}, {"ne", HUB_SQ_NE}, {"lt", HUB_SQ_LT}, {"gt", HUB_SQ_GT},
                {"le", HUB_SQ_LE}, {"ge", HUB_SQ_GE}, {"sa", HUB_SQ_SA}, {"eb", HUB_SQ_EB},
                {"ap", HUB_SQ_AP}};

static hub_sq_op prefix_of(const char **v) {
    for (size_t i = 0; i < sizeof PREFIXES / sizeof *PREFIXES; i++)
        if (strncmp(*v, PREFIXES[i].p, 2) == 0 && ((*v)[2] == '-' || isdigit((unsigned char)(*v)[2]))) {
            *v += 2;
            return PREFIXES[i].op;
        }
    return HUB_SQ_EQ;
}

static bool parse_number(const char *s, double *v, double *lo, double *hi) {
    char *end;
    if (!*s) return false;
    *v = strtod(s, &end);
    if (*end || !isfinite(*v)) return false;
    /* Precision: half a unit of the last significant digit given. */
    const char *dot = strchr(s, '.');
    const char *e = strpbrk(s, "eE");
    int dec = 0;
    if (dot) dec = (int)((e ? e : s + strlen(s)) - dot - 1);
    int exp = e ? atoi(e + 1) : 0;
    double half = 0.5 * pow(10.0, exp - dec);
    *lo = *v - half;
    *hi = *v + half;
    return true;
}

static hub_ix_kind ix_of(hub_sp_type t) {
    return t == HUB_SP_DATE ? HUB_IX_DATE
           : (t == HUB_SP_NUMBER || t == HUB_SP_QUANTITY) ? HUB_IX_NUMBER : HUB_IX_TOKEN;
}

static const char *sp_type_name(hub_sp_type t) {
    static const char *const N[] = {"number", "date", "string", "token", "reference",
                                     "composite", "quantity", "uri", "special"};
    return N[t];
}

static hub_store_query *parse_params(pctx *c, const char *type, char **names, char **values,
                                     size_t n, int depth, const char *expr_prefix);

/* "system|value", "|value" (no system), "system|" (any value) or "value". */
static void split_system(char *s, hub_store_qval *v) {
    char *bar = strchr(s, '|');
    if (bar) {
        *bar = '\0';
        v->system = s;
        v->value = bar[1] ? bar + 1 : NULL;
    } else {
        v->value = s;
    }
}

/* One value of a parameter of type sp->type into v. */
static bool parse_value(pctx *c, const hub_fhir_sp *sp, const char *mod, char *s,
                        hub_store_qval *v, const char *pname, hub_store_qclause *cl) {
    v->op = HUB_SQ_EQ;
    switch (sp->type) {
    case HUB_SP_DATE: {
        const char *p = s;
        v->op = prefix_of(&p);
        if (hub_fhir_date_range(p, strlen(p), &v->lo, &v->hi)) {
            fail(c, 400, "value", pname, "invalid date in parameter '%s'", pname);
            return false;
        }
        return true;
    }
    case HUB_SP_NUMBER:
    case HUB_SP_QUANTITY: {
        const char *p = s;
        v->op = prefix_of(&p);
        char *num = hub_arena_strndup(c->a, p, strlen(p));
        if (!num) {
            c->nomem = true;
            return false;
        }
        char *bar = strchr(num, '|');
        if (bar) {
            if (sp->type == HUB_SP_NUMBER) {
                fail(c, 400, "value", pname, "invalid number in parameter '%s'", pname);
                return false;
            }
            *bar = '\0';
            char *sys = bar + 1, *bar2 = strchr(sys, '|');
            if (!bar2) {
                fail(c, 400, "value", pname, "quantity needs number|system|code in '%s'", pname);
                return false;
            }
            *bar2 = '\0';
            if (*sys) v->system = sys;
            if (bar2[1]) v->value = bar2 + 1;
        }
        if (!parse_number(num, &v->num, &v->num_lo, &v->num_hi)) {
            fail(c, 400, "value", pname, "invalid number in parameter '%s'", pname);
            return false;
        }
        return true;
    }
    case HUB_SP_STRING: {
        size_t n = strlen(s);
        char *norm = hub_arena_alloc(c->a, 2 * n + 1);
        if (!norm) {
            c->nomem = true;
            return false;
        }
        hub_fhir_str_norm(s, n, norm, 2 * n + 1);
        if (mod && strcmp(mod, "exact") == 0) {
            v->op = HUB_SQ_EXACT;
            v->value = s;
        } else if (mod && strcmp(mod, "contains") == 0) {
            v->op = HUB_SQ_CONTAINS;
            v->value = norm;
        } else {
            v->op = HUB_SQ_PREFIX;
            v->value = norm;
        }
        return true;
    }
    case HUB_SP_URI:
        v->value = s;
        if (mod && strcmp(mod, "below") == 0) v->op = HUB_SQ_BELOW;
        if (mod && strcmp(mod, "above") == 0) v->op = HUB_SQ_ABOVE;
        return true;
    case HUB_SP_TOKEN: {
        if (mod && strcmp(mod, "text") == 0) {
            size_t n = strlen(s);
            char *norm = hub_arena_alloc(c->a, 2 * n + 1);
            if (!norm) {
                c->nomem = true;
                return false;
            }
            hub_fhir_str_norm(s, n, norm, 2 * n + 1);
            v->op = HUB_SQ_PREFIX;
            v->value = norm;
            return true;
        }
        if (mod && strcmp(mod, "of-type") == 0) {
            /* system|code|value: the row is (system, "code|value"). */
            char *b1 = strchr(s, '|');
            char *b2 = b1 ? strchr(b1 + 1, '|') : NULL;
            if (!b2) {
                fail(c, 400, "value", pname, ":of-type needs system|code|value in '%s'", pname);
                return false;
            }
            *b1 = '\0';
            v->system = s;
            v->value = b1 + 1;
            return true;
        }
        split_system(s, v);
        return true;
    }
    case HUB_SP_REFERENCE: {
        if (mod && strcmp(mod, "identifier") == 0) {
            split_system(s, v);
            return true;
        }
        char *slash = strrchr(s, '/');
        if (strstr(s, "://")) {
            /* An absolute URL: matched as stored (a stored absolute
             * reference keeps its whole URL in a row of its own). */
            v->value = s;
            v->system = "";
            return true;
        }
        if (slash) {
            *slash = '\0';
            v->system = s;
            v->value = slash + 1;
        } else {
            v->value = s;
            if (mod && *mod) v->system = mod; /* subject:Patient=123 */
        }
        (void)cl;
        return true;
    }
    default:
        fail(c, 400, "not-supported", pname, "search by '%s' (a %s parameter) is not supported",
             pname, sp_type_name(sp->type));
        return false;
    }
}

static bool mod_ok(hub_sp_type t, const char *mod) {
    if (!mod) return true;
    if (strcmp(mod, "missing") == 0) return true;
    switch (t) {
    case HUB_SP_STRING: return !strcmp(mod, "exact") || !strcmp(mod, "contains");
    case HUB_SP_TOKEN:
        return !strcmp(mod, "not") || !strcmp(mod, "text") || !strcmp(mod, "of-type");
    case HUB_SP_URI: return !strcmp(mod, "below") || !strcmp(mod, "above");
    case HUB_SP_REFERENCE: return true; /* :identifier, :Type */
    default: return false;
    }
}

/* The row name a parameter's values are stored under (an alias reads
 * the rows of the parameter it repeats). */
static const char *row_name(const hub_fhir_sp *sp) {
    return sp->nsame ? sp->same[0] : sp->code;
}

/* An alias's row names: each of `same` with `suffix` (":text"...). */
static bool alias_params(pctx *c, const hub_fhir_sp *sp, const char *suffix, hub_store_qclause *cl) {
    const char **ps = aalloc(c, sp->nsame * sizeof *ps);
    if (!ps) return false;
    for (size_t i = 0; i < sp->nsame; i++) {
        ps[i] = *suffix ? hub_arena_sprintf(c->a, "%s%s", sp->same[i], suffix) : sp->same[i];
        if (!ps[i]) return c->nomem = true, false;
    }
    cl->params = ps;
    cl->nparams = sp->nsame;
    cl->param = ps[0];
    return true;
}

static bool targets_patient(const hub_fhir_sp *sp) {
    for (size_t i = 0; i < sp->ntargets; i++)
        if (strcmp(sp->targets[i], "Patient") == 0) return true;
    return false;
}

/* Patient ids of one person: each id value of the clause that names a
 * Patient (Patient/x, or a bare x) becomes the ids of the person's
 * records (a golden Patient and its linked sources). */
static bool expand_patients(pctx *c, hub_store_qclause *cl) {
    size_t total = 0;
    const char **ids[MAX_VALUES];
    size_t nids[MAX_VALUES];
    for (size_t i = 0; i < cl->nvals; i++) {
        const hub_store_qval *v = &cl->vals[i];
        ids[i] = NULL;
        nids[i] = 1;
        if (v->value && !v->chain && (!v->system || strcmp(v->system, "Patient") == 0) &&
            !strstr(v->value, "://")) {
            hub_err err;
            if (hub_record_patient_ids(c->r, v->value, c->a, &ids[i], &nids[i], &err)) {
                c->nomem = true;
                return false;
            }
            if (nids[i] == 0) nids[i] = 1, ids[i] = NULL;
        }
        total += nids[i];
    }
    if (total == cl->nvals) return true;
    hub_store_qval *vs = aalloc(c, total * sizeof *vs);
    if (!vs) return false;
    size_t k = 0;
    for (size_t i = 0; i < cl->nvals; i++)
        for (size_t j = 0; j < nids[i]; j++) {
            vs[k] = cl->vals[i];
            if (ids[i]) vs[k].value = ids[i][j];
            k++;
        }
    cl->vals = vs;
    cl->nvals = total;
    return true;
}

/* The k-th row name of composite sp (its own, or the k-th it repeats)
 * and, when that composite pairs two parameters' rows (hub_fhir_sp pair),
 * those parameters. */
static const hub_fhir_sp *comp_name(pctx *c, const char *type, const hub_fhir_sp *sp, size_t k,
                                    const char **name) {
    *name = sp->nsame ? sp->same[k] : sp->code;
    const hub_fhir_sp *o = sp->nsame ? hub_fhir_sp_find(c->r->search, type, *name) : sp;
    return o && o->pair[0] ? o : NULL;
}

/* A composite (code-value-quantity=http://loinc.org|8480-6$gt100): the
 * first component is folded into the row name the index gives it
 * ("<code>$<code>|<system>", hub_record_extract), the second is an
 * ordinary value of its type. Two components only (the R4 definitions
 * with three are MolecularSequence's coordinates). A composite over the
 * resource that pairs two parameters has no rows of its own: the second's
 * row, with a row of the first for the code on the same resource. */
static bool parse_composite(pctx *c, const char *type, const hub_fhir_sp *sp, const char *mod,
                            char *value, hub_store_qclause *cl, const char *expr) {
    if (sp->ncomp != 2 || !sp->comp_path[0] || !sp->comp_path[1]) {
        fail(c, 400, "not-supported", expr, "search by the composite '%s' is not supported",
             sp->code);
        return false;
    }
    if (mod) {
        fail(c, 400, "not-supported", expr, "modifier ':%s' is not supported on '%s'", mod,
             sp->code);
        return false;
    }
    char *vals[MAX_VALUES];
    size_t nv = split_values(c, value, vals, MAX_VALUES);
    size_t names = sp->nsame ? sp->nsame : 1;
    hub_store_qval *vs = aalloc(c, nv * names * sizeof *vs);
    if (!vs) return false;
    hub_fhir_sp second = {.base = sp->base, .code = sp->comp_code[1], .type = sp->comp_type[1]};
    for (size_t i = 0; i < nv; i++) {
        char *dollar = strchr(vals[i], '$');
        if (!dollar || dollar == vals[i] || !dollar[1]) {
            fail(c, 400, "value", expr, "'%s' takes first$second", sp->code);
            return false;
        }
        *dollar = '\0';
        char *first = vals[i], *bar = strchr(first, '|');
        const char *param, *code = first, *system = NULL;
        hub_store_qval one = {0};
        if (bar) {
            *bar = '\0';
            if (!bar[1]) {
                fail(c, 400, "value", expr, "'%s': the first component needs a code", sp->code);
                return false;
            }
            code = bar + 1;
            system = first;
            param = hub_arena_sprintf(c->a, "$%s|%s", bar + 1, first);
        } else {
            param = hub_arena_sprintf(c->a, "$%s|", first);
            one.param_prefix = true;
        }
        if (!param) {
            c->nomem = true;
            return false;
        }
        if (!parse_value(c, &second, NULL, dollar + 1, &one, expr, cl)) return false;
        /* the row names: the parameter's, or each of those it repeats */
        for (size_t k = names; k-- > 0;) {
            hub_store_qval *v = &vs[i * names + k];
            *v = one;
            const char *name;
            const hub_fhir_sp *pair = comp_name(c, type, sp, k, &name);
            if (pair) {
                v->param = pair->pair[1];
                v->param_prefix = false;
                v->with_param = pair->pair[0];
                v->with_system = system;
                v->with_value = code;
                continue;
            }
            v->param = hub_arena_sprintf(c->a, "%s%s", name, param);
            if (!v->param) return c->nomem = true, false;
        }
    }
    *cl = (hub_store_qclause){.kind = HUB_QC_INDEX, .ix = ix_of(sp->comp_type[1]),
                              .nvals = nv * names, .vals = vs};
    return true;
}

/* Whether q has a clause that selects few resources (an identifier, a
 * reference, ids). */
static bool query_selective(const hub_store_query *q) {
    for (size_t i = 0; i < q->nclauses; i++) {
        const hub_store_qclause *c = &q->clauses[i];
        if (c->negate || c->nvals == 0) continue;
        if (c->kind == HUB_QC_ID || (c->kind == HUB_QC_INDEX && c->selective)) return true;
    }
    return false;
}

/* One parameter (name with modifier/chain, raw value) into clause cl of a
 * query on `type`. Returns false when it failed (c->status set) or was
 * ignored (unknown, lenient: *ignored). */
static bool parse_param(pctx *c, const char *type, char *name, char *value,
                        hub_store_qclause *cl, bool *ignored, int depth) {
    *ignored = false;
    char *chain = strchr(name, '.');
    if (chain) *chain++ = '\0';
    char *mod = strchr(name, ':');
    if (mod) *mod++ = '\0';
    char expr[128];
    snprintf(expr, sizeof expr, "%s", name);

    if (strcmp(name, "_id") == 0 && !chain) {
        char *vals[MAX_VALUES];
        size_t nv = split_values(c, value, vals, MAX_VALUES);
        hub_store_qval *vs = aalloc(c, nv * sizeof *vs);
        if (!vs) return false;
        for (size_t i = 0; i < nv; i++) vs[i].value = vals[i];
        *cl = (hub_store_qclause){.kind = HUB_QC_ID, .nvals = nv, .vals = vs,
                                  .negate = mod && strcmp(mod, "not") == 0};
        return true;
    }
    const hub_fhir_sp *sp = c->r->search ? hub_fhir_sp_find(c->r->search, type, name) : NULL;
    if (!sp || (!sp->path && strcmp(name, "_lastUpdated") != 0)) {
        if (c->strict || depth > 0) {
            fail(c, 400, "not-supported", expr, "unknown search parameter '%s' for %s", name, type);
            return false;
        }
        hub_oo_add(c->oo, HUB_OO_WARNING, "not-supported", expr,
                   "unknown search parameter '%s' for %s: ignored", name, type);
        *ignored = true;
        return false;
    }
    if (!mod_ok(sp->type, mod) && !(sp->type == HUB_SP_REFERENCE)) {
        fail(c, 400, "not-supported", expr, "modifier ':%s' is not supported on '%s'", mod, name);
        return false;
    }
    if (mod && strcmp(mod, "missing") == 0) {
        if (strcmp(value, "true") && strcmp(value, "false")) {
            fail(c, 400, "value", expr, ":missing takes true or false");
            return false;
        }
        *cl = (hub_store_qclause){.kind = HUB_QC_MISSING, .param = sp->code, .ix = ix_of(sp->type),
                                  .negate = strcmp(value, "false") == 0};
        if (sp->type == HUB_SP_COMPOSITE) {
            /* the composite's rows are "<code>$...": any of them */
            size_t names = sp->nsame ? sp->nsame : 1;
            hub_store_qval *v = aalloc(c, names * sizeof *v);
            if (!v) return false;
            for (size_t k = 0; k < names; k++) {
                const char *rn;
                const hub_fhir_sp *pair = comp_name(c, type, sp, k, &rn);
                if (pair) {
                    /* a row of the second with a row of the first */
                    v[k] = (hub_store_qval){.param = pair->pair[1], .with_param = pair->pair[0]};
                    continue;
                }
                v[k].param = hub_arena_sprintf(c->a, "%s$", rn);
                v[k].param_prefix = true;
                if (!v[k].param) return c->nomem = true, false;
            }
            cl->ix = ix_of(sp->ncomp > 1 ? sp->comp_type[1] : HUB_SP_TOKEN);
            cl->nvals = names;
            cl->vals = v;
        } else if (sp->nsame && !alias_params(c, sp, "", cl)) {
            return false;
        }
        return true;
    }
    if (sp->type == HUB_SP_COMPOSITE) return parse_composite(c, type, sp, mod, value, cl, expr);
    if (sp->type == HUB_SP_SPECIAL) {
        fail(c, 400, "not-supported", expr, "search by '%s' (a %s parameter) is not supported",
             name, sp_type_name(sp->type));
        return false;
    }
    if (strcmp(name, "_lastUpdated") == 0) {
        char *vals[MAX_VALUES];
        size_t nv = split_values(c, value, vals, MAX_VALUES);
        hub_store_qval *vs = aalloc(c, nv * sizeof *vs);
        if (!vs) return false;
        for (size_t i = 0; i < nv; i++)
            if (!parse_value(c, sp, NULL, vals[i], &vs[i], expr, cl)) return false;
        *cl = (hub_store_qclause){.kind = HUB_QC_UPDATED, .nvals = nv, .vals = vs};
        return true;
    }
    *cl = (hub_store_qclause){.kind = HUB_QC_INDEX, .param = sp->code, .ix = ix_of(sp->type),
                              .selective = (sp->type == HUB_SP_REFERENCE && !chain) ||
                                           strcmp(sp->code, "identifier") == 0};
    if (sp->type == HUB_SP_TOKEN && mod && (strcmp(mod, "text") == 0 || strcmp(mod, "of-type") == 0)) {
        cl->param = hub_arena_sprintf(c->a, "%s:%s", sp->code, mod);
    } else if (sp->type == HUB_SP_TOKEN && mod && strcmp(mod, "not") == 0) {
        cl->negate = true;
    } else if (sp->type == HUB_SP_REFERENCE && mod && strcmp(mod, "identifier") == 0) {
        cl->param = hub_arena_sprintf(c->a, "%s:identifier", sp->code);
    } else if (sp->type == HUB_SP_REFERENCE && mod && !hub_fhir_is_resource(c->r->defs, mod)) {
        fail(c, 400, "not-supported", expr, "modifier ':%s' is not supported on '%s'", mod, name);
        return false;
    }
    if (!cl->param) {
        c->nomem = true;
        return false;
    }
    if (sp->nsame && !alias_params(c, sp, cl->param + strlen(sp->code), cl)) return false;
    if (chain) {
        if (sp->type != HUB_SP_REFERENCE) {
            fail(c, 400, "invalid", expr, "'%s' is not a reference: it cannot be chained", name);
            return false;
        }
        if (depth >= 3) {
            fail(c, 400, "too-costly", expr, "chains deeper than 3 are not supported");
            return false;
        }
        /* The target types: the :Type, else every target that has the
         * chained parameter. */
        char *rest_name = chain;
        hub_store_qval *vs = aalloc(c, (sp->ntargets + 1) * sizeof *vs);
        if (!vs) return false;
        size_t nv = 0;
        char *sub = strchr(rest_name, '.');
        char *submod = strchr(rest_name, ':');
        size_t head = sub && (!submod || sub < submod) ? (size_t)(sub - rest_name)
                      : submod ? (size_t)(submod - rest_name) : strlen(rest_name);
        char *first = hub_arena_strndup(c->a, rest_name, head);
        if (!first) {
            c->nomem = true;
            return false;
        }
        for (size_t i = 0; i < sp->ntargets; i++) {
            const char *tt = sp->targets[i];
            if (mod && strcmp(mod, tt) != 0) continue;
            if (strcmp(first, "_id") != 0 && !hub_fhir_sp_find(c->r->search, tt, first)) continue;
            char *nm = hub_arena_strndup(c->a, rest_name, strlen(rest_name));
            char *vv = hub_arena_strndup(c->a, value, strlen(value));
            if (!nm || !vv) {
                c->nomem = true;
                return false;
            }
            hub_store_query *q = parse_params(c, tt, &nm, &vv, 1, depth + 1, expr);
            if (!q) return false;
            vs[nv].chain = q;
            nv++;
        }
        if (nv == 0) {
            fail(c, 400, "not-supported", expr, "no target of '%s' has the search parameter '%s'",
                 name, first);
            return false;
        }
        cl->vals = vs;
        cl->nvals = nv;
        /* A chain whose every target query has a selective start
         * (subject.identifier=...) starts the search well too: the few
         * referenced resources, then the rows naming them. */
        cl->selective = true;
        for (size_t i = 0; i < nv; i++) cl->selective &= query_selective(vs[i].chain);
        return true;
    }
    char *vals[MAX_VALUES];
    size_t nv = split_values(c, value, vals, MAX_VALUES);
    hub_store_qval *vs = aalloc(c, nv * sizeof *vs);
    if (!vs) return false;
    for (size_t i = 0; i < nv; i++) {
        if (!parse_value(c, sp, mod, vals[i], &vs[i], expr, cl)) return false;
        /* patient=x: subject's rows of Patient references */
        if (sp->same_type && !(mod && strcmp(mod, "identifier") == 0) &&
            !(vs[i].system && !vs[i].system[0])) {
            if (vs[i].system && strcmp(vs[i].system, sp->same_type) != 0)
                vs[i].system = "-"; /* another type: no such rows */
            else
                vs[i].system = sp->same_type;
        }
    }
    cl->vals = vs;
    cl->nvals = nv;
    if (c->expand && sp->type == HUB_SP_REFERENCE && !(mod && strcmp(mod, "identifier") == 0) &&
        targets_patient(sp))
        return expand_patients(c, cl);
    return true;
}

/* _has:Type:refparam:param=value (nested _has allowed: param may be
 * another _has). */
static bool parse_has(pctx *c, const char *type, char *name, char *value,
                      hub_store_qclause *cl, int depth) {
    char *t = name + 5, *p1 = t ? strchr(t, ':') : NULL;
    char *p2 = p1 ? strchr(p1 + 1, ':') : NULL;
    if (!p1 || !p2 || depth >= 3) {
        fail(c, 400, "invalid", "_has", "_has needs _has:Type:reference:parameter");
        return false;
    }
    *p1 = '\0';
    *p2 = '\0';
    if (!hub_fhir_is_resource(c->r->defs, t)) {
        fail(c, 400, "invalid", "_has", "_has names an unknown resource type");
        return false;
    }
    const hub_fhir_sp *ref = hub_fhir_sp_find(c->r->search, t, p1 + 1);
    if (!ref || ref->type != HUB_SP_REFERENCE) {
        fail(c, 400, "invalid", "_has", "_has: '%s' is not a reference parameter of %s", p1 + 1, t);
        return false;
    }
    char *nm = p2 + 1;
    hub_store_query *q = parse_params(c, t, &nm, &value, 1, depth + 1, "_has");
    if (!q) return false;
    (void)type;
    *cl = (hub_store_qclause){.kind = HUB_QC_HAS, .param = row_name(ref), .has = q};
    return true;
}

static hub_store_query *parse_params(pctx *c, const char *type, char **names, char **values,
                                     size_t n, int depth, const char *expr_prefix) {
    (void)expr_prefix;
    hub_store_query *q = aalloc(c, sizeof *q);
    hub_store_qclause *cls = aalloc(c, (n + 1) * sizeof *cls);
    if (!q || !cls) return NULL;
    q->type = type;
    q->clauses = cls;
    for (size_t i = 0; i < n; i++) {
        bool ignored = false, ok;
        if (strncmp(names[i], "_has:", 5) == 0)
            ok = parse_has(c, type, names[i], values[i], &cls[q->nclauses], depth);
        else
            ok = parse_param(c, type, names[i], values[i], &cls[q->nclauses], &ignored, depth);
        if (ok) q->nclauses++;
        else if (!ignored || c->status || c->nomem) return NULL;
    }
    return q;
}

/* ---- the request --------------------------------------------------------------- */

typedef enum { SUM_NONE, SUM_TRUE, SUM_DATA, SUM_COUNT, SUM_TEXT } summary_mode;

typedef struct {
    char *type, *param, *target; /* Type:param[:target] */
    bool rev, iterate;
} include;

/* One type's share of a search: a type search has one part; a system
 * search (_type) and Patient/$everything one per type, paged through in
 * order. */
typedef struct {
    const char *type;
    hub_store_query *q;
} part;

typedef struct {
    part *parts;
    size_t nparts;
    bool multi;     /* paged as parts even when there is one */
    int count;
    bool total;
    summary_mode summary;
    char *elements; /* comma list, or NULL */
    include inc[MAX_INCLUDES];
    size_t ninc;
    const char *cursor;
    hub_buf self;   /* the query as understood, for links */
} request;

/* Result parameters (_count, _sort, ...) as opposed to the search
 * parameters that start with '_' (_id, _lastUpdated, _tag, _has, ...). */
static bool is_control(const char *n) {
    if (n[0] != '_' || strncmp(n, "_has:", 5) == 0) return false;
    static const char *const SEARCH[] = {"_id", "_lastUpdated", "_tag", "_profile",
                                         "_security", "_source"};
    size_t len = strcspn(n, ":.");
    for (size_t i = 0; i < sizeof SEARCH / sizeof *SEARCH; i++)
        if (strlen(SEARCH[i]) == len && strncmp(n, SEARCH[i], len) == 0) return false;
    return true;
}

static bool parse_include(pctx *c, char *v, include *in, const char *name) {
    char *p1 = strchr(v, ':');
    if (!p1) {
        fail(c, 400, "invalid", name, "%s needs Type:parameter", name);
        return false;
    }
    *p1 = '\0';
    char *p2 = strchr(p1 + 1, ':');
    if (p2) *p2 = '\0';
    in->type = v;
    in->param = p1 + 1;
    in->target = p2 ? p2 + 1 : NULL;
    const hub_fhir_sp *sp = hub_fhir_is_resource(c->r->defs, v) || !c->r->defs
                                ? hub_fhir_sp_find(c->r->search, v, in->param) : NULL;
    if (!sp || sp->type != HUB_SP_REFERENCE) {
        fail(c, 400, "invalid", name, "%s: '%s' is not a reference parameter of the type", name,
             in->param);
        return false;
    }
    return true;
}

typedef struct {
    pctx *c;
    const char **types;
    size_t n, cap;
} type_list;

static hub_status add_type(void *ud, const char *type) {
    type_list *l = ud;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        const char **p = hub_arena_grow(l->c->a, l->types, l->cap * sizeof *p, cap * sizeof *p);
        if (!p) return HUB_E_NOMEM;
        l->types = p;
        l->cap = cap;
    }
    char *t = hub_arena_strndup(l->c->a, type, strlen(type));
    if (!t) return HUB_E_NOMEM;
    l->types[l->n++] = t;
    return HUB_OK;
}

/* A fresh copy of the parameters (parsing cuts them up in place). */
static bool copy_params(pctx *c, char **names, char **values, size_t n, char **cn, char **cv) {
    for (size_t i = 0; i < n; i++) {
        cn[i] = hub_arena_strndup(c->a, names[i], strlen(names[i]));
        cv[i] = hub_arena_strndup(c->a, values[i], strlen(values[i]));
        if (!cn[i] || !cv[i]) return c->nomem = true, false;
    }
    return true;
}

/* Adds the Patient-compartment clause for `ids` (a person's Patient ids)
 * to q: the Patient itself by id, another type by its compartment
 * parameters. false when the type is not in the compartment. */
static bool add_compartment(pctx *c, hub_store_query *q, const char *const *ids, size_t nids) {
    size_t np = 0;
    const char *const *cps = hub_fhir_compartment_params(c->r->search, q->type, &np);
    bool patient = strcmp(q->type, "Patient") == 0;
    if (!cps && !patient) return false;
    /* the parameters' row names (an alias reads another's rows) */
    const char **ps = cps ? aalloc(c, np * sizeof *ps) : NULL;
    if (cps && !ps) return false;
    for (size_t i = 0; i < np; i++) {
        const hub_fhir_sp *sp = hub_fhir_sp_find(c->r->search, q->type, cps[i]);
        ps[i] = sp ? row_name(sp) : cps[i];
    }
    hub_store_qclause *cls = aalloc(c, (q->nclauses + 1) * sizeof *cls);
    hub_store_qval *v = aalloc(c, nids * sizeof *v);
    if (!cls || !v) return false;
    if (q->nclauses) memcpy(cls, q->clauses, q->nclauses * sizeof *cls);
    for (size_t i = 0; i < nids; i++) {
        v[i].system = "Patient";
        v[i].value = ids[i];
    }
    if (!patient) {
        cls[q->nclauses++] = (hub_store_qclause){.kind = HUB_QC_INDEX, .ix = HUB_IX_TOKEN,
                                                 .nvals = nids, .vals = v, .nparams = np,
                                                 .params = ps, .selective = true};
    } else {
        /* A Patient's compartment holds itself (and, for a golden record,
         * the linked ones); Patient's own link parameter would add the
         * Patients that point at it. */
        cls[q->nclauses++] = (hub_store_qclause){.kind = HUB_QC_ID, .nvals = nids, .vals = v};
    }
    q->clauses = cls;
    return true;
}

static int parse_request(pctx *c, const hub_search_req *req, request *rq) {
    char *names[MAX_PARAMS], *values[MAX_PARAMS];
    size_t n = 0;
    rq->count = DEFAULT_COUNT;
    rq->total = true;
    const char *qs = req->query ? req->query : "";
    hub_store_qsort sort[4];
    size_t nsort = 0;
    char *types = NULL;
    while (*qs) {
        const char *amp = strchr(qs, '&');
        size_t len = amp ? (size_t)(amp - qs) : strlen(qs);
        if (len) {
            const char *eq = memchr(qs, '=', len);
            size_t nl = eq ? (size_t)(eq - qs) : len;
            char *name = decode(c->a, qs, nl);
            char *val = eq ? decode(c->a, eq + 1, len - nl - 1) : hub_arena_strndup(c->a, "", 0);
            if (!name || !val) {
                if (!c->nomem) return fail(c, 400, "invalid", NULL, "bad percent-encoding in the query");
                return 500;
            }
            if (!is_control(name)) {
                if (n == MAX_PARAMS)
                    return fail(c, 400, "too-costly", NULL, "more than %d search parameters", MAX_PARAMS);
                names[n] = name;
                values[n++] = val;
                hub_buf_printf(&rq->self, "%s%.*s", rq->self.n ? "&" : "", (int)len, qs);
            } else if (strcmp(name, "_count") == 0) {
                char *end;
                long v = strtol(val, &end, 10);
                if (*end || end == val || v < 0)
                    return fail(c, 400, "value", "_count", "_count must be a number >= 0");
                rq->count = v > MAX_COUNT ? MAX_COUNT : (int)v;
            } else if (strcmp(name, "_type") == 0 && !req->type) {
                types = val;
                hub_buf_printf(&rq->self, "%s%.*s", rq->self.n ? "&" : "", (int)len, qs);
            } else if (strcmp(name, "_total") == 0) {
                if (strcmp(val, "none") && strcmp(val, "estimate") && strcmp(val, "accurate"))
                    return fail(c, 400, "value", "_total", "_total is none, estimate or accurate");
                rq->total = strcmp(val, "none") != 0;
                hub_buf_printf(&rq->self, "%s_total=%s", rq->self.n ? "&" : "", val);
            } else if (strcmp(name, "_summary") == 0) {
                if (!strcmp(val, "true")) rq->summary = SUM_TRUE;
                else if (!strcmp(val, "data")) rq->summary = SUM_DATA;
                else if (!strcmp(val, "count")) rq->summary = SUM_COUNT;
                else if (!strcmp(val, "text")) rq->summary = SUM_TEXT;
                else if (!strcmp(val, "false")) rq->summary = SUM_NONE;
                else return fail(c, 400, "value", "_summary", "_summary is true, false, text, data or count");
                hub_buf_printf(&rq->self, "%s_summary=%s", rq->self.n ? "&" : "", val);
            } else if (strcmp(name, "_elements") == 0) {
                rq->elements = val;
                hub_buf_printf(&rq->self, "%s%.*s", rq->self.n ? "&" : "", (int)len, qs);
            } else if (strncmp(name, "_include", 8) == 0 || strncmp(name, "_revinclude", 11) == 0) {
                bool rev = name[1] == 'r';
                const char *m = name + (rev ? 11 : 8);
                if (*m && strcmp(m, ":iterate") && strcmp(m, ":recurse"))
                    return fail(c, 400, "not-supported", name, "unknown modifier on %s", name);
                if (rq->ninc == MAX_INCLUDES)
                    return fail(c, 400, "too-costly", name, "more than %d includes", MAX_INCLUDES);
                include *in = &rq->inc[rq->ninc];
                in->rev = rev;
                in->iterate = *m != '\0';
                if (!parse_include(c, val, in, rev ? "_revinclude" : "_include")) return c->status;
                rq->ninc++;
                hub_buf_printf(&rq->self, "%s%.*s", rq->self.n ? "&" : "", (int)len, qs);
            } else if (strcmp(name, "_sort") == 0) {
                char *keys[8];
                size_t nk = split_values(c, val, keys, 8);
                for (size_t i = 0; i < nk; i++) {
                    if (nsort == 4) return fail(c, 400, "too-costly", "_sort", "more than 4 sort keys");
                    bool desc = keys[i][0] == '-';
                    const char *k = keys[i] + desc;
                    hub_store_qsort *s = &sort[nsort];
                    s->desc = desc;
                    if (!strcmp(k, "_id") || !strcmp(k, "_lastUpdated")) {
                        s->param = k;
                        s->ix = HUB_IX_TOKEN;
                    } else {
                        const hub_fhir_sp *sp =
                            req->type ? hub_fhir_sp_find(c->r->search, req->type, k) : NULL;
                        if (!sp || !sp->path || sp->type == HUB_SP_COMPOSITE ||
                            sp->type == HUB_SP_SPECIAL)
                            return fail(c, 400, "not-supported", "_sort",
                                        "cannot sort %s by '%s'", req->type ? req->type : "a system search", k);
                        s->param = row_name(sp);
                        s->ix = ix_of(sp->type);
                    }
                    nsort++;
                }
                hub_buf_printf(&rq->self, "%s%.*s", rq->self.n ? "&" : "", (int)len, qs);
            } else if (strcmp(name, "_cursor") == 0) {
                rq->cursor = val;
            } else if (strcmp(name, "_format") == 0 || strcmp(name, "_pretty") == 0) {
                /* the REST layer's */
            } else if (c->strict) {
                return fail(c, 400, "not-supported", name, "unknown search parameter '%s'", name);
            } else {
                hub_oo_add(c->oo, HUB_OO_WARNING, "not-supported", name,
                           "search parameter '%s' is not supported: ignored", name);
            }
        }
        if (!amp) break;
        qs = amp + 1;
    }

    /* The types searched: the request's, or a system search's _type (else
     * every type the store holds). */
    type_list tl = {c, NULL, 0, 0};
    if (req->type) {
        if (add_type(&tl, req->type)) return c->nomem = true, 500;
    } else if (types) {
        char *tv[MAX_VALUES];
        size_t nt = split_values(c, types, tv, MAX_VALUES);
        for (size_t i = 0; i < nt; i++) {
            if (!hub_fhir_is_resource(c->r->defs, tv[i]))
                return fail(c, 400, "value", "_type", "_type names an unknown resource type");
            bool dup = false;
            for (size_t k = 0; k < tl.n; k++) dup |= strcmp(tl.types[k], tv[i]) == 0;
            if (!dup && add_type(&tl, tv[i])) return c->nomem = true, 500;
        }
    } else {
        hub_err err;
        hub_status rc = hub_store_types(c->r->store, add_type, &tl, &err);
        if (rc == HUB_E_NOMEM) return c->nomem = true, 500;
        if (rc) return fail(c, 500, "exception", NULL, "the store failed");
    }
    rq->parts = aalloc(c, (tl.n ? tl.n : 1) * sizeof *rq->parts);
    if (!rq->parts) return 500;
    const char **pids = NULL;
    size_t npids = 0;
    if (req->compartment) {
        hub_err err;
        if (hub_record_patient_ids(c->r, req->compartment, c->a, &pids, &npids, &err))
            return c->nomem = true, 500;
    }
    for (size_t t = 0; t < tl.n; t++) {
        char *cn[MAX_PARAMS], *cv[MAX_PARAMS];
        if (!copy_params(c, names, values, n, cn, cv)) return 500;
        /* A system search's parameters are checked against each type; the
         * warnings of lenient handling are said once. */
        hub_oo *keep = c->oo, *scratch = NULL;
        if (t > 0 && !c->strict) {
            scratch = hub_oo_new();
            if (!scratch) return c->nomem = true, 500;
            c->oo = scratch;
        }
        hub_store_query *q = parse_params(c, tl.types[t], cn, cv, n, 0, NULL);
        if (scratch) {
            if (c->status)
                hub_oo_add(keep, HUB_OO_ERROR, "not-supported", NULL,
                           "a parameter is not valid for %s", tl.types[t]);
            hub_oo_free(scratch);
            c->oo = keep;
        }
        if (!q) return c->status ? c->status : 500;
        q->nsort = nsort;
        memcpy(q->sort, sort, sizeof sort);
        q->count = rq->summary == SUM_COUNT ? 0 : rq->count;
        q->want_total = rq->summary == SUM_COUNT || (rq->total && !rq->cursor);
        if (req->compartment && !add_compartment(c, q, pids, npids)) {
            if (c->nomem) return 500;
            return fail(c, 400, "not-supported", NULL, "%s is not in the Patient compartment",
                        tl.types[t]);
        }
        rq->parts[rq->nparts++] = (part){tl.types[t], q};
    }
    return 0;
}

/* ---- the Bundle ------------------------------------------------------------------ */

/* A resource in the Bundle (for includes and to say each one once). */
typedef struct {
    const char *type, *id;
} ref;

typedef struct {
    hub_record *r;
    const hub_search_req *req;
    request *rq;
    hub_buf *out;
    size_t nentries;
    const char *mode;
    hub_arena *a;
    /* the page's matches, then its includes */
    ref *refs;
    size_t nrefs, caprefs;
    /* open-addressing set of "type/id" over refs (index + 1) */
    uint32_t *set;
    size_t setcap;
    size_t nmatches; /* matches added by the current store search */
    hub_status err;
} bctx;

/* s as a JSON string. ASCII (the links: a base URL and a query kept
 * percent-encoded) is escaped here; anything else goes through jansson,
 * which also refuses text that is not UTF-8. */
static hub_status json_str(hub_buf *b, const char *s) {
    size_t n = strlen(s);
    bool ascii = true;
    for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
    if (ascii) {
        if (hub_buf_reserve(b, 2 + 6 * n)) return HUB_E_NOMEM;
        char *o = b->p + b->n;
        *o++ = '"';
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)s[i];
            if (ch == '"' || ch == '\\') {
                *o++ = '\\';
                *o++ = (char)ch;
            } else if (ch < 0x20) {
                static const char HEX[] = "0123456789abcdef";
                memcpy(o, "\\u00", 4);
                o[4] = HEX[ch >> 4];
                o[5] = HEX[ch & 15];
                o += 6;
            } else {
                *o++ = (char)ch;
            }
        }
        *o++ = '"';
        *o = '\0';
        b->n = (size_t)(o - b->p);
        return HUB_OK;
    }
    json_t *j = json_string(s);
    if (!j) return HUB_E_NOMEM;
    char *t = hub_json_dumps(j, JSON_ENCODE_ANY);
    json_decref(j);
    if (!t) return HUB_E_NOMEM;
    hub_status rc = hub_buf_append_cstr(b, t);
    free(t);
    return rc;
}

/* _summary / _elements: the resource cut down (a new reference). */
static json_t *subset(bctx *c, const char *type, json_t *res) {
    summary_mode m = c->rq->summary;
    json_t *outj = json_object();
    if (!outj) return NULL;
    const char *k;
    json_t *v;
    json_object_foreach(res, k, v) {
        bool keep = false;
        const char *name = k[0] == '_' ? k + 1 : k;
        if (!strcmp(name, "resourceType") || !strcmp(name, "id") || !strcmp(name, "meta")) {
            keep = true;
        } else if (c->rq->elements) {
            const char *e = c->rq->elements;
            size_t nl = strlen(name);
            while (*e) {
                const char *comma = strchr(e, ',');
                size_t l = comma ? (size_t)(comma - e) : strlen(e);
                if (l == nl && strncmp(e, name, l) == 0) keep = true;
                /* choice: value[x] given as "value" keeps valueQuantity */
                if (!keep && l < nl && strncmp(e, name, l) == 0 && isupper((unsigned char)name[l]))
                    keep = true;
                e += l + (comma ? 1 : 0);
                if (!comma) break;
            }
        } else if (m == SUM_DATA) {
            keep = strcmp(name, "text") != 0;
        } else if (m == SUM_TEXT) {
            keep = !strcmp(name, "text");
        } else if (m == SUM_TRUE) {
            const char *t = NULL;
            const hub_fhir_elem *el = c->r->defs ? hub_fhir_child(c->r->defs, type, name, &t) : NULL;
            keep = el && el->summary;
        } else {
            keep = true;
        }
        if (keep && json_object_set(outj, k, v)) {
            json_decref(outj);
            return NULL;
        }
    }
    /* Mark it: meta.tag SUBSETTED. */
    json_t *meta = json_object_get(outj, "meta");
    json_t *nm = meta ? json_deep_copy(meta) : json_object();
    json_t *tags = nm ? json_object_get(nm, "tag") : NULL;
    if (nm && !tags) {
        tags = json_array();
        json_object_set_new(nm, "tag", tags);
    }
    if (tags)
        json_array_append_new(tags, json_pack("{s:s,s:s}", "system",
                                              "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                                              "code", "SUBSETTED"));
    if (nm) json_object_set_new(outj, "meta", nm);
    return outj;
}

static uint32_t ref_hash(const char *type, const char *id) {
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)type; *p; p++) h = (h ^ *p) * 16777619u;
    h = (h ^ '/') * 16777619u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 16777619u;
    return h;
}

/* Remembers type/id; false when it is in the Bundle already. HUB_E_NOMEM
 * in c->err. */
static bool ref_add(bctx *c, const char *type, const char *id) {
    if ((c->nrefs + 1) * 2 > c->setcap) {
        size_t cap = c->setcap ? c->setcap * 2 : 128;
        uint32_t *set = hub_arena_calloc(c->a, cap * sizeof *set);
        if (!set) return c->err = HUB_E_NOMEM, false;
        for (size_t i = 0; i < c->nrefs; i++) {
            size_t k = ref_hash(c->refs[i].type, c->refs[i].id) & (cap - 1);
            while (set[k]) k = (k + 1) & (cap - 1);
            set[k] = (uint32_t)i + 1;
        }
        c->set = set;
        c->setcap = cap;
    }
    size_t k = ref_hash(type, id) & (c->setcap - 1);
    while (c->set[k]) {
        const ref *r = &c->refs[c->set[k] - 1];
        if (strcmp(r->id, id) == 0 && strcmp(r->type, type) == 0) return false;
        k = (k + 1) & (c->setcap - 1);
    }
    if (c->nrefs == c->caprefs) {
        size_t cap = c->caprefs ? c->caprefs * 2 : 64;
        ref *p = hub_arena_grow(c->a, c->refs, c->caprefs * sizeof *p, cap * sizeof *p);
        if (!p) return c->err = HUB_E_NOMEM, false;
        c->refs = p;
        c->caprefs = cap;
    }
    char *t = hub_arena_strndup(c->a, type, strlen(type));
    char *i = hub_arena_strndup(c->a, id, strlen(id));
    if (!t || !i) return c->err = HUB_E_NOMEM, false;
    c->refs[c->nrefs] = (ref){t, i};
    c->set[k] = (uint32_t)++c->nrefs;
    return true;
}

static hub_status add_entry(void *ud, const hub_store_version *v) {
    bctx *c = ud;
    hub_buf *b = c->out;
    if (!ref_add(c, v->type, v->id)) return c->err; /* included twice: once */
    c->nmatches++;
    hub_status rc = hub_buf_append_cstr(b, c->nentries++ ? "," : "");
    if (!rc) rc = hub_buf_printf(b, "{\"fullUrl\":\"%s/%s/%s\",\"resource\":", c->req->base, v->type, v->id);
    if (rc) return rc;
    if (c->rq->summary != SUM_NONE || c->rq->elements) {
        json_error_t je;
        json_t *res = json_loadb(v->json, v->json_len, 0, &je);
        json_t *sub = res ? subset(c, v->type, res) : NULL;
        char *t = sub ? hub_json_dumps(sub, JSON_COMPACT) : NULL;
        json_decref(res);
        json_decref(sub);
        if (!t) return HUB_E_NOMEM;
        rc = hub_buf_append_cstr(b, t);
        free(t);
    } else {
        rc = hub_buf_append(b, v->json, v->json_len);
    }
    if (!rc) rc = hub_buf_printf(b, ",\"search\":{\"mode\":\"%s\"}}", c->mode);
    return rc;
}

static hub_status count_only(void *ud, const hub_store_version *v) {
    (void)v;
    ((bctx *)ud)->nmatches++;
    return HUB_OK;
}

/* _include and _revinclude of the resources refs[from, to): one store
 * query per include and target type for all of them at once. */
static hub_status include_round(bctx *c, size_t from, size_t to, bool iterate_only,
                                hub_err *err) {
    request *rq = c->rq;
    c->mode = "include";
    for (size_t k = 0; k < rq->ninc; k++) {
        include *in = &rq->inc[k];
        if (iterate_only && !in->iterate) continue;
        hub_store_page page;
        /* The resources of the round this include starts from. */
        const char *want = in->rev ? NULL : in->type;
        size_t nv = 0;
        hub_store_qval *vs = hub_arena_calloc(c->a, (to - from + 1) * sizeof *vs);
        if (!vs) return HUB_E_NOMEM;
        const hub_fhir_sp *sp = hub_fhir_sp_find(c->r->search, in->type, in->param);
        if (!sp) continue;
        if (!in->rev) {
            for (size_t i = from; i < to; i++)
                if (strcmp(c->refs[i].type, want) == 0) vs[nv++].value = c->refs[i].id;
            if (!nv) continue;
            for (size_t t = 0; t < sp->ntargets; t++) {
                if (in->target && strcmp(in->target, sp->targets[t]) != 0) continue;
                for (size_t off = 0; off < nv; off += MAX_VALUES) {
                    size_t m = nv - off < MAX_VALUES ? nv - off : MAX_VALUES;
                    hub_store_qclause cl = {.kind = HUB_QC_REFBY, .param = row_name(sp),
                                            .ref_type = in->type, .nvals = m, .vals = vs + off};
                    hub_store_query q = {.type = sp->targets[t], .nclauses = 1, .clauses = &cl,
                                         .count = MAX_COUNT};
                    hub_status rc = hub_store_search(c->r->store, &q, add_entry, c, &page, err);
                    if (rc) return rc;
                }
            }
        } else {
            /* Type:param pointing at the round's resources, by their type. */
            for (size_t t = 0; t < sp->ntargets; t++) {
                nv = 0;
                for (size_t i = from; i < to; i++)
                    if (strcmp(c->refs[i].type, sp->targets[t]) == 0) {
                        vs[nv].system = c->refs[i].type;
                        vs[nv++].value = c->refs[i].id;
                    }
                if (in->target && strcmp(in->target, sp->targets[t]) != 0) continue;
                for (size_t off = 0; off < nv; off += MAX_VALUES) {
                    size_t m = nv - off < MAX_VALUES ? nv - off : MAX_VALUES;
                    hub_store_qclause cl = {.kind = HUB_QC_INDEX, .param = row_name(sp),
                                            .ix = HUB_IX_TOKEN, .nvals = m, .vals = vs + off,
                                            .selective = true};
                    hub_store_query q = {.type = in->type, .nclauses = 1, .clauses = &cl,
                                         .count = MAX_COUNT};
                    hub_status rc = hub_store_search(c->r->store, &q, add_entry, c, &page, err);
                    if (rc) return rc;
                }
            }
        }
    }
    return HUB_OK;
}

/* The page's includes, then (:iterate) the includes of what was included,
 * until a round adds nothing (at most 4 rounds, each resource once). */
#define MAX_ITERATE 4
static hub_status run_includes(bctx *c, hub_err *err) {
    if (!c->rq->ninc || !c->nrefs) return HUB_OK;
    size_t from = 0, to = c->nrefs;
    for (int round = 0; round <= MAX_ITERATE && from < to; round++) {
        hub_status rc = include_round(c, from, to, round > 0, err);
        if (rc) return rc;
        from = to;
        to = c->nrefs;
    }
    return HUB_OK;
}

/* The page of a multi-part search: cursor "<part>~<snapshot>~<the part's
 * store cursor>". Parts run in order until the page is full; the totals
 * of all of them are added on the first page. */
static hub_status run_parts(bctx *c, hub_store_page *outp, bool *bad_cursor, hub_err *err) {
    request *rq = c->rq;
    size_t k0 = 0;
    int64_t snap = 0;
    const char *sc = NULL;
    *bad_cursor = false;
    if (rq->cursor) {
        char *e1, *e2;
        unsigned long long k = strtoull(rq->cursor, &e1, 10);
        if (e1 == rq->cursor || *e1 != '~') return *bad_cursor = true, HUB_OK;
        long long sn = strtoll(e1 + 1, &e2, 10);
        if (e2 == e1 + 1 || *e2 != '~' || k >= rq->nparts || sn <= 0)
            return *bad_cursor = true, HUB_OK;
        k0 = (size_t)k;
        snap = sn;
        sc = e2[1] ? e2 + 1 : NULL;
    }
    int remaining = rq->summary == SUM_COUNT ? 0 : rq->count;
    outp->next[0] = outp->prev[0] = '\0';
    if (rq->nparts == 0) { /* $everything?_type= of types outside the compartment */
        outp->total = 0;
        return HUB_OK;
    }
    bool want_total = rq->parts[0].q->want_total;
    outp->total = want_total ? 0 : -1;
    outp->next[0] = outp->prev[0] = '\0';
    bool full = false;
    for (size_t k = k0; k < rq->nparts; k++) {
        hub_store_query *q = rq->parts[k].q;
        hub_store_page page;
        q->snapshot = snap;
        q->cursor = k == k0 ? sc : NULL;
        c->nmatches = 0;
        if (!full && remaining > 0) {
            q->count = remaining;
            q->want_total = want_total;
            c->mode = "match";
            hub_status rc = hub_store_search(c->r->store, q, add_entry, c, &page, err);
            if (rc) return rc;
            remaining -= (int)c->nmatches;
            if (page.next[0]) {
                char tmp[sizeof page.next + 48];
                int len = snprintf(tmp, sizeof tmp, "%zu~%" PRId64 "~%s", k, page.snapshot,
                                   page.next);
                if (len > 0 && (size_t)len < sizeof outp->next) memcpy(outp->next, tmp, (size_t)len + 1);
                full = true;
            } else if (remaining <= 0) {
                full = true;
            }
        } else if (want_total) {
            q->count = 0;
            q->want_total = true;
            hub_status rc = hub_store_search(c->r->store, q, count_only, c, &page, err);
            if (rc) return rc;
            if (page.total > 0 && !outp->next[0] && rq->summary != SUM_COUNT)
                snprintf(outp->next, sizeof outp->next, "%zu~%" PRId64 "~", k, page.snapshot);
        } else if (!outp->next[0]) {
            /* Is there anything after the full page? */
            q->count = 1;
            q->want_total = false;
            hub_status rc = hub_store_search(c->r->store, q, count_only, c, &page, err);
            if (rc) return rc;
            if (c->nmatches)
                snprintf(outp->next, sizeof outp->next, "%zu~%" PRId64 "~", k, page.snapshot);
        } else {
            break;
        }
        if (snap == 0) snap = page.snapshot;
        if (want_total && page.total > 0) outp->total += page.total;
    }
    return HUB_OK;
}

static hub_status link(hub_buf *out, hub_arena *a, const char *rel, const hub_search_req *req,
                       const request *rq, const char *cursor) {
    char *u;
    if (cursor)
        u = hub_arena_sprintf(a, "%s/%s?%.*s%s_count=%d&_cursor=%s", req->base, req->path,
                              (int)rq->self.n, rq->self.p ? rq->self.p : "", rq->self.n ? "&" : "",
                              rq->count, cursor);
    else
        u = hub_arena_sprintf(a, "%s/%s%s%.*s", req->base, req->path, rq->self.n ? "?" : "",
                              (int)rq->self.n, rq->self.p ? rq->self.p : "");
    if (!u) return HUB_E_NOMEM;
    hub_status rc = hub_buf_printf(out, "%s{\"relation\":\"%s\",\"url\":", strcmp(rel, "self") ? "," : "", rel);
    if (!rc) rc = json_str(out, u);
    if (!rc) rc = hub_buf_append_cstr(out, "}");
    return rc;
}

/* Runs the parsed request and writes the searchset Bundle. */
static hub_status run_request(hub_record *r, const hub_search_req *req, request *rq, hub_arena *a,
                              hub_oo *oo, hub_buf *out, int *http_status, hub_oo **outcome,
                              hub_err *err) {
    size_t start = out->n;
    bctx b = {.r = r, .req = req, .rq = rq, .mode = "match", .a = a};
    char id[37];
    hub_uuid(id);
    char now[32];
    hub_time_iso(hub_now_ms(), now);
    hub_status rc = hub_buf_printf(out, "{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"meta\":{\"lastUpdated\":"
                                        "\"%s\"},\"type\":\"searchset\"", id, now);
    hub_store_page page = {.total = -1};
    hub_buf ent;
    hub_buf_init(&ent);
    b.out = &ent;
    bool bad_cursor = false;
    if (!rc && rq->nparts == 1 && !rq->multi) {
        rq->parts[0].q->cursor = rq->cursor;
        rc = hub_store_search(r->store, rq->parts[0].q, add_entry, &b, &page, err);
    } else if (!rc) {
        rc = run_parts(&b, &page, &bad_cursor, err);
        if (!rc && bad_cursor) rc = hub_err_set(err, HUB_E_ARG, "_cursor", "malformed cursor");
    }
    if (rc == HUB_E_ARG) {
        *http_status = 400;
        hub_oo_add(oo, HUB_OO_ERROR, "invalid", err->where, "%s", err->msg);
        *outcome = oo;
        out->n = start;
        hub_buf_release(&ent);
        return HUB_OK;
    }
    if (!rc) rc = run_includes(&b, err);
    if (!rc && page.total >= 0) rc = hub_buf_printf(out, ",\"total\":%" PRId64, page.total);
    if (!rc) rc = hub_buf_append_cstr(out, ",\"link\":[");
    if (!rc) rc = link(out, a, "self", req, rq, NULL);
    if (!rc && page.prev[0]) rc = link(out, a, "previous", req, rq, page.prev);
    if (!rc && page.next[0]) rc = link(out, a, "next", req, rq, page.next);
    if (!rc) rc = hub_buf_append_cstr(out, "]");
    bool warn = hub_oo_count(oo, HUB_OO_WARNING) > 0;
    if (!rc && (ent.n || warn)) {
        rc = hub_buf_append_cstr(out, ",\"entry\":[");
        if (!rc && ent.n) rc = hub_buf_append(out, ent.p, ent.n);
        if (!rc && warn) {
            json_t *o = hub_oo_json(oo);
            char *t = o ? hub_json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
            if (!t) rc = HUB_E_NOMEM;
            if (!rc) rc = hub_buf_printf(out, "%s{\"resource\":%s,\"search\":{\"mode\":\"outcome\"}}",
                                         ent.n ? "," : "", t);
            free(t);
        }
        if (!rc) rc = hub_buf_append_cstr(out, "]");
    }
    if (!rc) rc = hub_buf_append_cstr(out, "}");
    hub_buf_release(&ent);
    if (rc == HUB_E_NOMEM) hub_err_set(err, rc, "search", "out of memory");
    if (rc) out->n = start;
    return rc;
}

hub_status hub_record_search(hub_record *r, const hub_search_req *req, hub_buf *out,
                             int *http_status, hub_oo **outcome, hub_err *err) {
    *http_status = 200;
    *outcome = NULL;
    hub_oo *oo = hub_oo_new();
    if (!oo) return hub_err_set(err, HUB_E_NOMEM, "search", "out of memory");
    hub_arena a;
    hub_arena_init(&a, 8192);
    pctx c = {r, &a, oo, req->strict, 0, false, true};
    request rq;
    memset(&rq, 0, sizeof rq);
    hub_buf_init(&rq.self);
    hub_status rc = HUB_OK;
    if (!r->search) {
        fail(&c, 501, "not-supported", NULL, "search is not configured");
    } else {
        parse_request(&c, req, &rq);
    }
    if (c.nomem) rc = hub_err_set(err, HUB_E_NOMEM, "search", "out of memory");
    if (!rc && c.status) {
        *http_status = c.status;
        *outcome = oo;
        oo = NULL;
    } else if (!rc && rq.nparts == 0) {
        /* a system search of an empty store */
        rq.parts = aalloc(&c, sizeof *rq.parts);
        rc = HUB_OK;
        size_t start = out->n;
        char id[37];
        hub_uuid(id);
        rc = hub_buf_printf(out, "{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"type\":\"searchset\","
                                 "\"total\":0,\"link\":[", id);
        if (!rc) rc = link(out, &a, "self", req, &rq, NULL);
        if (!rc) rc = hub_buf_append_cstr(out, "]}");
        if (rc) out->n = start;
    } else if (!rc) {
        rc = run_request(r, req, &rq, &a, oo, out, http_status, outcome, err);
        if (*outcome == oo) oo = NULL;
    }
    hub_buf_release(&rq.self);
    hub_arena_release(&a);
    hub_oo_free(oo);
    return rc;
}

/* ---- Patient/$everything ---------------------------------------------------------- */

/* name=value (percent-encoded: "+02:00" must come back as it went) into
 * the self link's query. */
static void self_param(hub_buf *b, const char *name, const char *v) {
    hub_buf_printf(b, "%s%s=", b->n ? "&" : "", name);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (isalnum(*p) || strchr("-._~:,", *p)) hub_buf_append(b, (const char *)p, 1);
        else hub_buf_printf(b, "%%%02X", *p);
    }
}

hub_status hub_record_everything(hub_record *r, const hub_everything_req *req, hub_buf *out,
                                 int *http_status, hub_oo **outcome, hub_err *err) {
    *http_status = 200;
    *outcome = NULL;
    hub_oo *oo = hub_oo_new();
    if (!oo) return hub_err_set(err, HUB_E_NOMEM, "everything", "out of memory");
    hub_arena a;
    hub_arena_init(&a, 8192);
    pctx c = {r, &a, oo, true, 0, false, true};
    request rq;
    memset(&rq, 0, sizeof rq);
    hub_buf_init(&rq.self);
    rq.count = req->count > 0 ? (req->count > MAX_COUNT ? MAX_COUNT : req->count) : DEFAULT_COUNT;
    rq.total = true;
    rq.cursor = req->cursor;
    hub_status rc = HUB_OK;
    const char **pids = NULL;
    size_t npids = 0;
    size_t ntypes = 0;
    while (r->search && hub_fhir_compartment_type(r->search, ntypes)) ntypes++;
    hub_resource pat = {0};
    if (!r->search) {
        fail(&c, 501, "not-supported", NULL, "search is not configured");
        goto answer;
    }
    rc = hub_record_read(r, "Patient", req->id, 0, &pat, err);
    if (rc == HUB_E_NOTFOUND || (!rc && pat.deleted)) {
        fail(&c, rc ? 404 : 410, rc ? "not-found" : "deleted", NULL, "Patient/%s is %s", req->id,
             rc ? "not known" : "deleted");
        rc = HUB_OK;
        goto answer;
    }
    hub_resource_release(&pat);
    if (rc) goto done;
    rc = hub_record_patient_ids(r, req->id, &a, &pids, &npids, err);
    if (rc) goto done;
    /* The types asked for (_type), each checked. */
    char *want[MAX_VALUES];
    size_t nwant = 0;
    if (req->types && *req->types) {
        char *tv = hub_arena_strndup(&a, req->types, strlen(req->types));
        if (!tv) {
            c.nomem = true;
            goto answer;
        }
        nwant = split_values(&c, tv, want, MAX_VALUES);
        for (size_t i = 0; i < nwant; i++)
            if (!hub_fhir_is_resource(r->defs, want[i])) {
                fail(&c, 400, "value", "_type", "_type names an unknown resource type");
                goto answer;
            }
        self_param(&rq.self, "_type", req->types);
    }
    int64_t since_lo = 0, since_hi = 0;
    if (req->since && *req->since) {
        if (hub_fhir_date_range(req->since, strlen(req->since), &since_lo, &since_hi)) {
            fail(&c, 400, "value", "_since", "_since is not a valid instant");
            goto answer;
        }
        self_param(&rq.self, "_since", req->since);
    }
    rq.parts = aalloc(&c, (ntypes + 1) * sizeof *rq.parts);
    if (!rq.parts) goto answer;
    /* The Patient(s) first, then the compartment's types in the table's
     * order: a stable order for paging. */
    for (size_t t = 0; t <= ntypes; t++) {
        const char *type = t == 0 ? "Patient" : hub_fhir_compartment_type(r->search, t - 1);
        if (t > 0 && strcmp(type, "Patient") == 0) continue;
        bool ok = nwant == 0;
        for (size_t i = 0; i < nwant && !ok; i++) ok = strcmp(want[i], type) == 0;
        if (!ok) continue;
        hub_store_query *q = aalloc(&c, sizeof *q);
        if (!q) goto answer;
        q->type = type;
        if (!add_compartment(&c, q, pids, npids)) {
            if (c.nomem) goto answer;
            continue;
        }
        if (req->since && *req->since) {
            hub_store_qclause *cls = aalloc(&c, (q->nclauses + 1) * sizeof *cls);
            hub_store_qval *v = aalloc(&c, sizeof *v);
            if (!cls || !v) goto answer;
            memcpy(cls, q->clauses, q->nclauses * sizeof *cls);
            v->op = HUB_SQ_GE;
            v->lo = since_lo;
            v->hi = since_lo + 1;
            cls[q->nclauses++] = (hub_store_qclause){.kind = HUB_QC_UPDATED, .nvals = 1, .vals = v};
            q->clauses = cls;
        }
        q->count = rq.count;
        q->want_total = !rq.cursor;
        rq.parts[rq.nparts++] = (part){type, q};
    }
answer:
    if (c.nomem) rc = hub_err_set(err, HUB_E_NOMEM, "everything", "out of memory");
    if (!rc && c.status) {
        *http_status = c.status;
        *outcome = oo;
        oo = NULL;
    } else if (!rc) {
        char path[200];
        snprintf(path, sizeof path, "Patient/%s/$everything", req->id);
        hub_search_req sr = {.type = "Patient", .base = req->base, .path = path};
        rq.multi = true;
        rc = run_request(r, &sr, &rq, &a, oo, out, http_status, outcome, err);
        if (*outcome == oo) oo = NULL;
    }
done:
    hub_buf_release(&rq.self);
    hub_arena_release(&a);
    hub_oo_free(oo);
    return rc;
}

void hub_record_search_params(hub_record *r, const char *type, hub_search_param_fn fn,
                              void *ud) {
    if (!r->search) return;
    for (int pass = 0; pass < 2; pass++) {
        size_t n = 0;
        const hub_fhir_sp *const *ps = hub_fhir_sp_list(r->search, pass ? "Resource" : type, &n);
        for (size_t i = 0; i < n; i++) {
            const hub_fhir_sp *sp = ps[i];
            if (!sp->path || sp->type == HUB_SP_SPECIAL) continue;
            if (sp->type == HUB_SP_COMPOSITE &&
                (sp->ncomp != 2 || !sp->comp_path[0] || !sp->comp_path[1]))
                continue;
            if (pass && strcmp(sp->code, "_id") && strcmp(sp->code, "_lastUpdated") &&
                strcmp(sp->code, "_tag") && strcmp(sp->code, "_profile") &&
                strcmp(sp->code, "_security") && strcmp(sp->code, "_source"))
                continue;
            char url[200];
            snprintf(url, sizeof url, "http://hl7.org/fhir/SearchParameter/%s-%s", sp->base, sp->code);
            fn(ud, sp->code, sp_type_name(sp->type), url);
        }
    }
}

/* For the conditional operations: criteria into a query (the caller owns
 * the arena). 0 or the 4xx, with an issue in oo. */
int hub__search_criteria(hub_record *r, hub_arena *a, const char *type, const char *criteria,
                         hub_store_query **q, hub_oo *oo) {
    pctx c = {r, a, oo, true, 0, false, false};
    request rq;
    memset(&rq, 0, sizeof rq);
    hub_buf_init(&rq.self);
    hub_search_req req = {.type = type, .query = criteria, .strict = true};
    int st = parse_request(&c, &req, &rq);
    hub_buf_release(&rq.self);
    if (c.nomem) return 500;
    if (st) return st;
    /* With a patient index, conditional operations on Patient (the v2
     * mapping's upserts by identifier) target the sources: the golden
     * Patients carry every identifier of their sources too. */
    if (r->patient_ids && strcmp(type, "Patient") == 0 && rq.parts[0].q->nclauses > 0) {
        hub_store_qclause *cls = hub_arena_alloc(a, (rq.parts[0].q->nclauses + 1) * sizeof *cls);
        hub_store_qval *v = hub_arena_calloc(a, sizeof *v);
        if (!cls || !v) return 500;
        memcpy(cls, rq.parts[0].q->clauses, rq.parts[0].q->nclauses * sizeof *cls);
        v->op = HUB_SQ_EQ;
        v->system = "https://hub.example.org/fhir/CodeSystem/mpi"; /* HUB_MPI_TAG_SYSTEM */
        v->value = "golden";
        cls[rq.parts[0].q->nclauses++] = (hub_store_qclause){
            .kind = HUB_QC_INDEX, .param = "_tag", .ix = HUB_IX_TOKEN, .negate = true,
            .nvals = 1, .vals = v};
        rq.parts[0].q->clauses = cls;
    }
    *q = rq.parts[0].q;
    return 0;
}

int hub_record_criteria(hub_record *r, hub_arena *a, const char *type, const char *criteria,
                        hub_store_query **q, hub_oo *oo) {
    return hub__search_criteria(r, a, type, criteria, q, oo);
}
