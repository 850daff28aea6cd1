/* FHIR search: the query string into a hub_store_query (the store runs
 * it), then the searchset Bundle: matches, _include/_revinclude, links,
 * _summary/_elements, the OperationOutcome of ignored parameters. */
#include "internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
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
        char *bar = strchr(s, '|');
        if (bar) {
            *bar = '\0';
            v->system = s;
            v->value = bar[1] ? bar + 1 : NULL;
        } else {
            v->value = s;
        }
        return true;
    }
    case HUB_SP_REFERENCE: {
        if (mod && strcmp(mod, "identifier") == 0) {
            char *bar = strchr(s, '|');
            if (bar) {
                *bar = '\0';
                v->system = s;
                v->value = bar[1] ? bar + 1 : NULL;
            } else {
                v->value = s;
            }
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
        return true;
    }
    if (sp->type == HUB_SP_COMPOSITE || sp->type == HUB_SP_SPECIAL) {
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
        return true;
    }
    char *vals[MAX_VALUES];
    size_t nv = split_values(c, value, vals, MAX_VALUES);
    hub_store_qval *vs = aalloc(c, nv * sizeof *vs);
    if (!vs) return false;
    for (size_t i = 0; i < nv; i++)
        if (!parse_value(c, sp, mod, vals[i], &vs[i], expr, cl)) return false;
    cl->vals = vs;
    cl->nvals = nv;
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
    *cl = (hub_store_qclause){.kind = HUB_QC_HAS, .param = ref->code, .has = q};
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

typedef struct {
    hub_store_query *q;
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

static int parse_request(pctx *c, const hub_search_req *req, request *rq) {
    char *names[MAX_PARAMS], *values[MAX_PARAMS];
    size_t n = 0;
    rq->count = DEFAULT_COUNT;
    rq->total = true;
    const char *qs = req->query ? req->query : "";
    hub_store_qsort sort[4];
    size_t nsort = 0;
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
                        const hub_fhir_sp *sp = hub_fhir_sp_find(c->r->search, req->type, k);
                        if (!sp || !sp->path || sp->type == HUB_SP_COMPOSITE ||
                            sp->type == HUB_SP_SPECIAL)
                            return fail(c, 400, "not-supported", "_sort",
                                        "cannot sort %s by '%s'", req->type, k);
                        s->param = sp->code;
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
    rq->q = parse_params(c, req->type, names, values, n, 0, NULL);
    if (!rq->q) return c->status ? c->status : 500;
    rq->q->nsort = nsort;
    memcpy(rq->q->sort, sort, sizeof sort);
    rq->q->count = rq->summary == SUM_COUNT ? 0 : rq->count;
    rq->q->want_total = rq->summary == SUM_COUNT || (rq->total && !rq->cursor);
    rq->q->cursor = rq->cursor;
    if (req->compartment) {
        size_t np = 0;
        const char *const *ps = hub_fhir_compartment_params(c->r->search, req->type, &np);
        if (!ps && strcmp(req->type, "Patient") != 0)
            return fail(c, 400, "not-supported", NULL, "%s is not in the Patient compartment",
                        req->type);
        hub_store_qclause *cls = aalloc(c, (rq->q->nclauses + 1) * sizeof *cls);
        hub_store_qval *v = aalloc(c, sizeof *v);
        if (!cls || !v) return 500;
        memcpy(cls, rq->q->clauses, rq->q->nclauses * sizeof *cls);
        v->system = "Patient";
        v->value = req->compartment;
        if (ps && strcmp(req->type, "Patient") != 0) {
            cls[rq->q->nclauses++] = (hub_store_qclause){.kind = HUB_QC_INDEX, .ix = HUB_IX_TOKEN,
                                                          .nvals = 1, .vals = v, .nparams = np,
                                                          .params = ps, .selective = true};
        } else {
            cls[rq->q->nclauses++] = (hub_store_qclause){.kind = HUB_QC_ID, .nvals = 1, .vals = v};
        }
        rq->q->clauses = cls;
    }
    return 0;
}

/* ---- the Bundle ------------------------------------------------------------------ */

typedef struct {
    hub_record *r;
    const hub_search_req *req;
    request *rq;
    hub_buf *out;
    size_t nentries;
    const char *mode;
    hub_arena *a;
    /* ids of the page's matches (for includes), in the arena */
    const char **ids;
    size_t nids, capids;
    hub_status err;
} bctx;

static hub_status json_str(hub_buf *b, const char *s) {
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

static hub_status add_entry(void *ud, const hub_store_version *v) {
    bctx *c = ud;
    hub_buf *b = c->out;
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
    if (!rc && strcmp(c->mode, "match") == 0) {
        if (c->nids == c->capids) {
            size_t cap = c->capids ? c->capids * 2 : 64;
            const char **p = hub_arena_grow(c->a, c->ids, c->capids * sizeof *p, cap * sizeof *p);
            if (!p) return HUB_E_NOMEM;
            c->ids = p;
            c->capids = cap;
        }
        char *id = hub_arena_strndup(c->a, v->id, strlen(v->id));
        if (!id) return HUB_E_NOMEM;
        c->ids[c->nids++] = id;
    }
    return rc;
}

/* _include and _revinclude: one store query per target type, for all the
 * page's matches at once. */
static hub_status run_includes(bctx *c, hub_err *err) {
    request *rq = c->rq;
    if (!rq->ninc || !c->nids) return HUB_OK;
    hub_store_qval *ids = hub_arena_calloc(c->a, c->nids * sizeof *ids);
    if (!ids) return HUB_E_NOMEM;
    for (size_t i = 0; i < c->nids; i++) ids[i].value = c->ids[i];
    c->mode = "include";
    for (size_t k = 0; k < rq->ninc; k++) {
        include *in = &rq->inc[k];
        hub_store_page page;
        if (!in->rev) {
            if (strcmp(in->type, c->req->type) != 0) continue;
            const hub_fhir_sp *sp = hub_fhir_sp_find(c->r->search, in->type, in->param);
            for (size_t t = 0; sp && t < sp->ntargets; t++) {
                if (in->target && strcmp(in->target, sp->targets[t]) != 0) continue;
                hub_store_qclause cl = {.kind = HUB_QC_REFBY, .param = sp->code,
                                        .ref_type = in->type, .nvals = c->nids, .vals = ids};
                hub_store_query q = {.type = sp->targets[t], .nclauses = 1, .clauses = &cl,
                                     .count = MAX_COUNT};
                hub_status rc = hub_store_search(c->r->store, &q, add_entry, c, &page, err);
                if (rc) return rc;
            }
        } else {
            /* Type:param pointing at the page's resources. */
            hub_store_qval *vs = hub_arena_calloc(c->a, c->nids * sizeof *vs);
            if (!vs) return HUB_E_NOMEM;
            for (size_t i = 0; i < c->nids; i++) {
                vs[i].system = c->req->type;
                vs[i].value = c->ids[i];
            }
            const hub_fhir_sp *sp = hub_fhir_sp_find(c->r->search, in->type, in->param);
            if (!sp) continue;
            hub_store_qclause cl = {.kind = HUB_QC_INDEX, .param = sp->code, .ix = HUB_IX_TOKEN,
                                    .nvals = c->nids, .vals = vs, .selective = true};
            hub_store_query q = {.type = in->type, .nclauses = 1, .clauses = &cl, .count = MAX_COUNT};
            hub_status rc = hub_store_search(c->r->store, &q, add_entry, c, &page, err);
            if (rc) return rc;
        }
    }
    return HUB_OK;
}

hub_status hub_record_search(hub_record *r, const hub_search_req *req, hub_buf *out,
                             int *http_status, hub_oo **outcome, hub_err *err) {
    *http_status = 200;
    *outcome = NULL;
    hub_oo *oo = hub_oo_new();
    if (!oo) return hub_err_set(err, HUB_E_NOMEM, "search", "out of memory");
    hub_arena a;
    hub_arena_init(&a, 8192);
    pctx c = {r, &a, oo, req->strict, 0, false};
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
        goto done;
    }
    if (rc) goto done;

    size_t start = out->n;
    bctx b = {r, req, &rq, out, 0, "match", &a, NULL, 0, 0, HUB_OK};
    char id[37];
    hub_uuid(id);
    char now[32];
    hub_time_iso(hub_now_ms(), now);
    rc = hub_buf_printf(out, "{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"meta\":{\"lastUpdated\":"
                             "\"%s\"},\"type\":\"searchset\"", id, now);
    size_t entries_at = 0;
    hub_store_page page = {.total = -1};
    hub_buf ent;
    hub_buf_init(&ent);
    b.out = &ent;
    if (!rc) rc = hub_store_search(r->store, rq.q, add_entry, &b, &page, err);
    if (rc == HUB_E_ARG) {
        *http_status = 400;
        hub_oo_add(oo, HUB_OO_ERROR, "invalid", err->where, "%s", err->msg);
        *outcome = oo;
        oo = NULL;
        out->n = start;
        hub_buf_release(&ent);
        rc = HUB_OK;
        goto done;
    }
    if (!rc) rc = run_includes(&b, err);
    if (!rc && page.total >= 0) rc = hub_buf_printf(out, ",\"total\":%" PRId64, page.total);
    if (!rc) {
        rc = hub_buf_printf(out, ",\"link\":[{\"relation\":\"self\",\"url\":");
        char *u = hub_arena_sprintf(&a, "%s/%s%s%.*s", req->base, req->path, rq.self.n ? "?" : "",
                                    (int)rq.self.n, rq.self.p ? rq.self.p : "");
        if (!u) rc = HUB_E_NOMEM;
        if (!rc) rc = json_str(out, u);
        if (!rc) rc = hub_buf_append_cstr(out, "}");
        if (!rc && page.next[0]) {
            u = hub_arena_sprintf(&a, "%s/%s?%.*s%s_count=%d&_cursor=%s", req->base, req->path,
                                  (int)rq.self.n, rq.self.p ? rq.self.p : "", rq.self.n ? "&" : "",
                                  rq.count, page.next);
            if (!u) rc = HUB_E_NOMEM;
            if (!rc) rc = hub_buf_append_cstr(out, ",{\"relation\":\"next\",\"url\":");
            if (!rc) rc = json_str(out, u);
            if (!rc) rc = hub_buf_append_cstr(out, "}");
        }
        if (!rc) rc = hub_buf_append_cstr(out, "]");
    }
    (void)entries_at;
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
            if (!sp->path || sp->type == HUB_SP_COMPOSITE || sp->type == HUB_SP_SPECIAL) continue;
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
    pctx c = {r, a, oo, true, 0, false};
    request rq;
    memset(&rq, 0, sizeof rq);
    hub_buf_init(&rq.self);
    hub_search_req req = {.type = type, .query = criteria, .strict = true};
    int st = parse_request(&c, &req, &rq);
    hub_buf_release(&rq.self);
    if (c.nomem) return 500;
    if (st) return st;
    *q = rq.q;
    return 0;
}

int hub_record_criteria(hub_record *r, hub_arena *a, const char *type, const char *criteria,
                        hub_store_query **q, hub_oo *oo) {
    return hub__search_criteria(r, a, type, criteria, q, oo);
}
