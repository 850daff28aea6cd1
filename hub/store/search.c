/* Search: a hub_store_query (a structure) into SQLite SQL and its bound
 * values. Every clause is an `r.rid IN (SELECT rid FROM <index table> ...)`
 * over the (pid, value) indexes, so SQLite drives the result from
 * the most selective index and probes the rest; chains nest the same form
 * for the referenced type. */
#include "internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 4

/* Index rows (ix_tok, ix_date, ix_num) carry integer keys: the
 * resource's rid (resources.rid) and the parameter's pid (params: type and
 * name). */
/* Index choices SQLite cannot make without statistics: a lookup by value
 * goes through the token table's primary key (pid, value, ...) (the key
 * is selected as +t.rid, or SQLite reads the (rid) index to have them in
 * order for DISTINCT); a probe of one resource's rows through the (rid)
 * indexes. */
static const char *const BY_VALUE[3] = {"ix_tok t", "ix_date t", "ix_num t"};
/* dates and numbers are clustered by (rid, pid): their primary key */
static const char *const BY_ID[3] = {"ix_tok t INDEXED BY ix_tok_rid", "ix_date t",
                                     "ix_num t"};

static hub_status nomem(hub_err *err) {
    return hub_err_set(err, HUB_E_NOMEM, "search", "out of memory");
}

static int bind(hub__sq *b, hub__bind v) {
    if (b->nbinds == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32;
        hub__bind *p = hub_realloc(b->binds, cap * sizeof *p);
        if (!p) return -1;
        b->binds = p;
        b->cap = cap;
    }
    b->binds[b->nbinds++] = v;
    return (int)b->nbinds; /* ?NNN, 1-based */
}

static int btext(hub__sq *b, const char *s) { return bind(b, (hub__bind){HUB__B_TEXT, s, 0, 0}); }
static int bint(hub__sq *b, int64_t i) { return bind(b, (hub__bind){HUB__B_INT, NULL, i, 0}); }
static int breal(hub__sq *b, double d) { return bind(b, (hub__bind){HUB__B_REAL, NULL, 0, d}); }

typedef struct {
    hub__sq *b;
    hub_buf *o;
    bool bad;
    hub_err *err;
    /* per depth: a driver gives few candidates, so each clause probes
     * the candidate's own rows (and a chain the one resource it names)
     * instead of collecting every match first */
    bool correlated[MAX_DEPTH + 2];
    /* With a driver, the top level's candidates come from `d`: a clause
     * that needs only the candidate's rid names d.rid, so SQLite tests it
     * on the driver's row, before it seeks the resource and its JSON (a
     * patient's Observations probed for a code: a third of the CPU). */
    bool driven;
} gen;

/* The column holding the rid of `alias` at `depth`. */
static const char *rid_col(const gen *g, const char *alias, int depth, char buf[24]) {
    if (depth == 0 && g->driven) return "d.rid";
    snprintf(buf, 24, "%s.rid", alias);
    return buf;
}

static void out(gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(gen *g, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp || hub_buf_append(g->o, tmp, (size_t)n)) g->bad = true;
}

/* ?N of a text bind, or marks the build failed. */
static int T(gen *g, const char *s) {
    int k = btext(g->b, s);
    if (k < 0) g->bad = true;
    return k;
}
static int I(gen *g, int64_t v) {
    int k = bint(g->b, v);
    if (k < 0) g->bad = true;
    return k;
}
static int R(gen *g, double v) {
    int k = breal(g->b, v);
    if (k < 0) g->bad = true;
    return k;
}

/* "t.pid = <the parameter's key>" and its list and prefix forms. */
static void pid_eq(gen *g, const char *col, const char *type, const char *name) {
    out(g, "%s = (SELECT pid FROM params WHERE type = ?%d AND name = ?%d)", col, T(g, type),
        T(g, name));
}
static void pid_in(gen *g, const char *col, const char *type, const char *const *names, size_t n) {
    out(g, "%s IN (SELECT pid FROM params WHERE type = ?%d AND name IN (", col, T(g, type));
    for (size_t i = 0; i < n; i++) out(g, "%s?%d", i ? ", " : "", T(g, names[i]));
    out(g, "))");
}
static const char *prefix_hi(gen *g, const char *p);
static void pid_prefix(gen *g, const char *col, const char *type, const char *prefix) {
    out(g, "%s IN (SELECT pid FROM params WHERE type = ?%d AND name >= ?%d AND name <= ?%d)", col,
        T(g, type), T(g, prefix), T(g, prefix_hi(g, prefix)));
}
static void pid_type(gen *g, const char *col, const char *type) {
    out(g, "%s IN (SELECT pid FROM params WHERE type = ?%d)", col, T(g, type));
}

static void where_query(gen *g, const hub_store_query *q, const char *alias, int depth);

/* " INDEXED BY resources_cur" for q's resources when they are not probed
 * one by one (no driver) and a clause finds them by `rid IN (...)`:
 * without statistics SQLite would rather scan every row of the type
 * through the (type, id) key than seek each key of the list. */
static const char *by_rid(const hub_store_query *q) {
    for (size_t i = 0; i < q->nclauses; i++)
        if (q->clauses[i].kind == HUB_QC_INDEX && !q->clauses[i].negate)
            return " INDEXED BY resources_cur";
    return "";
}
static void index_select(gen *g, const hub_store_query *q, const hub_store_qclause *c, int depth);

/* The upper bound of "starts with p": p followed by U+10FFFF. */
static const char *prefix_hi(gen *g, const char *p) {
    char *s = hub_arena_sprintf(&g->b->arena, "%s\xf4\x8f\xbf\xbf", p);
    if (!s) g->bad = true;
    return s ? s : "";
}

static const char *like_of(gen *g, const char *p) {
    size_t n = strlen(p);
    char *s = hub_arena_alloc(&g->b->arena, 2 * n + 3);
    if (!s) {
        g->bad = true;
        return "";
    }
    size_t o = 0;
    s[o++] = '%';
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%' || p[i] == '_' || p[i] == '\\') s[o++] = '\\';
        s[o++] = p[i];
    }
    s[o++] = '%';
    s[o] = '\0';
    return s;
}

/* ap's margin: 10% of the distance to now, at least a day, on either
 * side. */
static int64_t ap_margin(const hub_store_qval *v) {
    int64_t now = hub_now_ms();
    int64_t d = (v->lo > now ? v->lo - now : now - v->lo) / 10;
    return d < 86400000 ? 86400000 : d;
}

/* Date predicates: the resource's [c.lo, c.hi) against the search's
 * [lo, hi) with the specification's prefix semantics. */
static void date_pred(gen *g, const char *lo_col, const char *hi_col, const hub_store_qval *v) {
    int l = I(g, v->lo), h = I(g, v->hi);
    switch (v->op) {
    case HUB_SQ_NE:
        out(g, "NOT (%s >= ?%d AND %s <= ?%d)", lo_col, l, hi_col, h);
        break;
    case HUB_SQ_GT: out(g, "%s > ?%d", hi_col, h); break;
    case HUB_SQ_LT: out(g, "%s < ?%d", lo_col, l); break;
    case HUB_SQ_GE:
        out(g, "(%s > ?%d OR (%s >= ?%d AND %s <= ?%d))", hi_col, h, lo_col, l, hi_col, h);
        break;
    case HUB_SQ_LE:
        out(g, "(%s < ?%d OR (%s >= ?%d AND %s <= ?%d))", lo_col, l, lo_col, l, hi_col, h);
        break;
    case HUB_SQ_SA: out(g, "%s >= ?%d", lo_col, h); break;
    case HUB_SQ_EB: out(g, "%s <= ?%d", hi_col, l); break;
    case HUB_SQ_AP: {
        int64_t d = ap_margin(v);
        out(g, "(%s < ?%d AND %s > ?%d)", lo_col, I(g, v->hi + d), hi_col, I(g, v->lo - d));
        break;
    }
    default: /* eq: the resource's range inside the search's */
        out(g, "(%s >= ?%d AND %s <= ?%d)", lo_col, l, hi_col, h);
        break;
    }
}

/* Starts a branch of a date predicate on index rows: "(" and the
 * parameter's condition (pidc, text already bound) when the clause moved
 * it into the branches (date_rows_pred). */
static void branch(gen *g, const char *pidc) {
    out(g, "(");
    if (pidc && (hub_buf_append(g->o, pidc, strlen(pidc)) || hub_buf_append(g->o, " AND ", 5)))
        g->bad = true;
}

/* The condition of ix_date_long, spelled as its CREATE INDEX does: SQLite
 * reads a partial index only for a branch that names its condition. */
#define LONG_ROW "t.hi - t.lo NOT BETWEEN 0 AND " HUB__DATE_SHORT_SQL

/* "t.hi > ?x (AND more)" on index rows. Only rows longer than a day (or
 * backwards) have an entry in (pid, hi) (ix_date_long); any other row
 * with hi > x has lo > x - a day, which ix_date_lo finds. So the condition
 * is two branches, each of which SQLite reads through an index. */
static void hi_above(gen *g, const char *pidc, int64_t x, const char *more) {
    int xb = I(g, x), lb = I(g, x - HUB__DATE_SHORT_MS);
    branch(g, pidc);
    out(g, "t.lo > ?%d AND t.hi > ?%d%s) OR ", lb, xb, more);
    branch(g, pidc);
    out(g, LONG_ROW " AND t.hi > ?%d%s)", xb, more);
}

/* The date predicates on index rows (ix_date), written so that every
 * branch bounds t.lo or names ix_date_long's condition. pidc, when given,
 * is the parameter's condition, repeated in every branch: the caller made
 * the clause's own copy unusable for an index (+t.pid), or SQLite would
 * read every row of the parameter through (pid) rather than each branch
 * through its range (it has no statistics to tell). */
static void date_rows_pred(gen *g, const hub_store_qval *v, const char *pidc) {
    int l = I(g, v->lo), h = I(g, v->hi);
    char more[48];
    out(g, "(");
    switch (v->op) {
    case HUB_SQ_NE:
        branch(g, pidc);
        out(g, "NOT (t.lo >= ?%d AND t.hi <= ?%d))", l, h);
        break;
    case HUB_SQ_GT: hi_above(g, pidc, v->hi, ""); break;
    case HUB_SQ_LT:
        branch(g, pidc);
        out(g, "t.lo < ?%d)", l);
        break;
    case HUB_SQ_GE:
        hi_above(g, pidc, v->hi, "");
        out(g, " OR ");
        branch(g, pidc);
        out(g, "t.lo >= ?%d AND t.hi <= ?%d)", l, h);
        break;
    case HUB_SQ_LE:
        branch(g, pidc);
        out(g, "t.lo < ?%d) OR ", l);
        branch(g, pidc);
        out(g, "t.lo >= ?%d AND t.hi <= ?%d)", l, h);
        break;
    case HUB_SQ_SA:
        branch(g, pidc);
        out(g, "t.lo >= ?%d)", h);
        break;
    case HUB_SQ_EB: /* hi <= l: a row that is not long starts before it ends */
        branch(g, pidc);
        out(g, "t.lo <= ?%d AND t.hi <= ?%d) OR ", l, l);
        branch(g, pidc);
        out(g, LONG_ROW " AND t.hi <= ?%d)", l);
        break;
    case HUB_SQ_AP: {
        int64_t d = ap_margin(v);
        snprintf(more, sizeof more, " AND t.lo < ?%d", I(g, v->hi + d));
        hi_above(g, pidc, v->lo - d, more);
        break;
    }
    default:
        branch(g, pidc);
        out(g, "t.lo >= ?%d AND t.hi <= ?%d)", l, h);
        break;
    }
    out(g, ")");
}

static void num_pred(gen *g, const hub_store_qval *v) {
    switch (v->op) {
    case HUB_SQ_NE: out(g, "NOT (t.num >= ?%d AND t.num < ?%d)", R(g, v->num_lo), R(g, v->num_hi)); break;
    case HUB_SQ_GT: out(g, "t.num > ?%d", R(g, v->num)); break;
    case HUB_SQ_LT: out(g, "t.num < ?%d", R(g, v->num)); break;
    case HUB_SQ_GE: out(g, "t.num >= ?%d", R(g, v->num)); break;
    case HUB_SQ_LE: out(g, "t.num <= ?%d", R(g, v->num)); break;
    case HUB_SQ_SA: out(g, "t.num > ?%d", R(g, v->num)); break;
    case HUB_SQ_EB: out(g, "t.num < ?%d", R(g, v->num)); break;
    case HUB_SQ_AP: {
        double d = v->num * 0.1;
        if (d < 0) d = -d;
        out(g, "(t.num >= ?%d AND t.num <= ?%d)", R(g, v->num - d), R(g, v->num + d));
        break;
    }
    default: out(g, "(t.num >= ?%d AND t.num < ?%d)", R(g, v->num_lo), R(g, v->num_hi)); break;
    }
    if (v->value) out(g, " AND t.value = ?%d", T(g, v->value));
    if (v->system) out(g, " AND t.system = ?%d", T(g, v->system));
}

static void token_pred(gen *g, const hub_store_qval *v, int depth) {
    bool any = true;
    if (v->chain) {
        if (depth >= MAX_DEPTH) {
            g->bad = true;
            return;
        }
        char alias[16];
        snprintf(alias, sizeof alias, "c%d", depth);
        if (g->correlated[depth]) {
            /* probing one resource's rows: the resource its row names
             * must match, its own clauses probed the same way */
            out(g, "t.system = ?%d AND EXISTS (SELECT 1 FROM resources c%d WHERE c%d.type = ?%d "
                   "AND c%d.id = t.value AND ",
                T(g, v->chain->type), depth, depth, T(g, v->chain->type), depth);
            g->correlated[depth + 1] = true;
            where_query(g, v->chain, alias, depth + 1);
            g->correlated[depth + 1] = false;
            out(g, ")");
            return;
        }
        out(g, "t.system = ?%d AND t.value IN (SELECT c%d.id FROM resources c%d%s WHERE ",
            T(g, v->chain->type), depth, depth, by_rid(v->chain));
        where_query(g, v->chain, alias, depth + 1);
        out(g, ")");
        return;
    }
    if (v->value) {
        any = false;
        switch (v->op) {
        case HUB_SQ_PREFIX:
        case HUB_SQ_BELOW:
            out(g, "t.value >= ?%d AND t.value <= ?%d", T(g, v->value), T(g, prefix_hi(g, v->value)));
            break;
        case HUB_SQ_CONTAINS:
            out(g, "t.value LIKE ?%d ESCAPE '\\'", T(g, like_of(g, v->value)));
            break;
        case HUB_SQ_EXACT: out(g, "t.system = ?%d", T(g, v->value)); break;
        case HUB_SQ_ABOVE: {
            int k = T(g, v->value);
            out(g, "t.value <= ?%d AND substr(?%d, 1, length(t.value)) = t.value", k, k);
            break;
        }
        default: out(g, "t.value = ?%d", T(g, v->value)); break;
        }
    }
    if (v->system && v->op != HUB_SQ_EXACT) {
        out(g, "%st.system = ?%d", any ? "" : " AND ", T(g, v->system));
        any = false;
    }
    if (any) out(g, "1");
}

/* " AND the resource of row t has a token row of v->with_param (with its
 * code and system)": a composite paired from two parameters' rows. Probing
 * one resource's rows, an EXISTS by rid; collecting the clause's rows, the
 * first's rows drive (t.rid IN: the rows of the code, each looked up by
 * (rid, pid) in t's table), not every row of the second in the value's
 * range. */
static void with_row(gen *g, const char *type, const hub_store_qval *v, bool probe) {
    if (!v->with_param) return;
    if (probe)
        out(g, " AND EXISTS (SELECT 1 FROM ix_tok w INDEXED BY ix_tok_rid WHERE w.rid = t.rid AND ");
    else
        out(g, " AND t.rid IN (SELECT w.rid FROM ix_tok w WHERE ");
    pid_eq(g, "w.pid", type, v->with_param);
    if (v->with_value) out(g, " AND w.value = ?%d", T(g, v->with_value));
    else out(g, " AND w.value <> ''");
    if (v->with_system) out(g, " AND w.system = ?%d", T(g, v->with_system));
    out(g, ")");
}

/* SELECT t.rid FROM <table> t WHERE <the clause's rows>: an index clause's
 * resources (also the driving subquery of a search). */
static void index_where(gen *g, const char *type, const hub_store_qclause *c, int depth,
                        bool probe);
static void index_select(gen *g, const hub_store_query *q, const hub_store_qclause *c, int depth) {
    out(g, "SELECT +t.rid AS rid FROM %s WHERE ", BY_VALUE[c->ix]);
    index_where(g, q->type, c, depth, false);
}

/* Where the parameter's condition of a date clause starts: a date clause
 * not probed by rid repeats it in each branch of its predicates
 * (date_rows_pred) and keeps this copy out of SQLite's index choice. */
static size_t pid_mark(gen *g, bool spread) {
    if (spread) out(g, "+");
    return g->o->n;
}

/* The condition written since `at`, for the branches (NULL unless spread). */
static const char *pid_taken(gen *g, size_t at, bool spread) {
    if (!spread || g->bad) return NULL;
    char *s = hub_arena_alloc(&g->b->arena, g->o->n - at + 1);
    if (!s) {
        g->bad = true;
        return NULL;
    }
    memcpy(s, g->o->p + at, g->o->n - at);
    s[g->o->n - at] = '\0';
    return s;
}

/* The param and value conditions on index rows `t` of resources of
 * `type`. */
static void index_where(gen *g, const char *type, const hub_store_qclause *c, int depth,
                        bool probe) {
    bool own = false; /* every value names its own parameter */
    for (size_t i = 0; i < c->nvals; i++) own = i == 0 ? c->vals[i].param != NULL : own && c->vals[i].param;
    bool spread = c->ix == HUB_IX_DATE && !probe && c->nvals > 0;
    const char *pidc = NULL;
    size_t at;
    if (c->nparams) {
        at = pid_mark(g, spread);
        pid_in(g, "t.pid", type, c->params, c->nparams);
        pidc = pid_taken(g, at, spread);
        out(g, " AND (");
    } else if (c->param) {
        at = pid_mark(g, spread);
        pid_eq(g, "t.pid", type, c->param);
        pidc = pid_taken(g, at, spread);
        out(g, " AND (");
    } else if (!own) {
        at = pid_mark(g, spread);
        pid_type(g, "t.pid", type);
        pidc = pid_taken(g, at, spread);
        out(g, " AND (");
    } else {
        out(g, "(");
    }
    for (size_t i = 0; i < c->nvals; i++) {
        out(g, "%s(", i ? " OR " : "");
        const hub_store_qval *v = &c->vals[i];
        if (v->param && v->param_prefix) {
            pid_prefix(g, "t.pid", type, v->param);
            out(g, " AND ");
        } else if (v->param) {
            pid_eq(g, "t.pid", type, v->param);
            out(g, " AND ");
        }
        if (c->ix == HUB_IX_DATE) date_rows_pred(g, &c->vals[i], pidc);
        else if (c->ix == HUB_IX_NUMBER) num_pred(g, &c->vals[i]);
        else token_pred(g, &c->vals[i], depth);
        with_row(g, type, v, probe);
        out(g, ")");
    }
    if (c->nvals == 0) out(g, "1");
    out(g, ")");
}


static void clause(gen *g, const hub_store_query *q, const hub_store_qclause *c,
                   const char *alias, int depth) {
    char ridb[24];
    switch (c->kind) {
    case HUB_QC_ID:
    case HUB_QC_IN:
        out(g, "%s%s.id IN (", c->negate ? "NOT " : "", alias);
        for (size_t i = 0; i < c->nvals; i++)
            out(g, "%s?%d", i ? ", " : "", T(g, c->vals[i].value ? c->vals[i].value : ""));
        out(g, ")");
        return;
    case HUB_QC_UPDATED: {
        out(g, "(");
        char lo[32], hi[32];
        snprintf(lo, sizeof lo, "%s.last_updated", alias);
        snprintf(hi, sizeof hi, "(%s.last_updated + 1)", alias);
        for (size_t i = 0; i < c->nvals; i++) {
            if (i) out(g, " OR ");
            date_pred(g, lo, hi, &c->vals[i]);
        }
        out(g, ")");
        return;
    }
    case HUB_QC_MISSING:
        /* negate = missing=false: the resource has a row */
        out(g, "%s EXISTS (SELECT 1 FROM %s WHERE t.rid = %s AND ", c->negate ? "" : "NOT",
            BY_ID[c->ix], rid_col(g, alias, depth, ridb));
        if (c->nvals > 0 && c->vals[0].param) {
            /* rows whose name starts with (or is) one of the values' (a
             * composite's) */
            out(g, "(");
            for (size_t i = 0; i < c->nvals; i++) {
                const hub_store_qval *v = &c->vals[i];
                out(g, "%s(", i ? " OR " : "");
                if (v->param_prefix) pid_prefix(g, "t.pid", q->type, v->param);
                else pid_eq(g, "t.pid", q->type, v->param);
                with_row(g, q->type, v, true);
                out(g, ")");
            }
            out(g, "))");
            return;
        }
        if (c->nparams) pid_in(g, "t.pid", q->type, c->params, c->nparams);
        else pid_eq(g, "t.pid", q->type, c->param);
        out(g, ")");
        return;
    case HUB_QC_HAS:
        if (depth >= MAX_DEPTH || !c->has) {
            g->bad = true;
            return;
        }
        /* ids referenced from the other type's rows of `param` */
        out(g, "%s.id IN (SELECT t.value FROM ix_tok t JOIN resources h%d INDEXED BY resources_cur "
               "ON h%d.rid = t.rid WHERE ", alias, depth, depth);
        pid_eq(g, "t.pid", c->has->type, c->param);
        out(g, " AND t.system = ?%d AND ", T(g, q->type));
        char a2[16];
        snprintf(a2, sizeof a2, "h%d", depth);
        where_query(g, c->has, a2, depth + 1);
        out(g, ")");
        return;
    case HUB_QC_REFBY:
        out(g, "%s.id IN (SELECT t.value FROM ix_tok t WHERE ", alias);
        pid_eq(g, "t.pid", c->ref_type, c->param);
        out(g, " AND t.system = ?%d AND t.rid IN (SELECT rid FROM resources WHERE type = ?%d AND id IN (",
            T(g, q->type), T(g, c->ref_type));
        for (size_t i = 0; i < c->nvals; i++)
            out(g, "%s?%d", i ? ", " : "", T(g, c->vals[i].value ? c->vals[i].value : ""));
        out(g, ")))");
        return;
    case HUB_QC_INDEX:
        break;
    }
    if (g->correlated[depth]) {
        /* Few candidate rows (a driver picked them): look each one's index
         * rows up by (type, id) instead of collecting every match of this
         * clause first. */
        out(g, "%sEXISTS (SELECT 1 FROM %s WHERE t.rid = %s AND ", c->negate ? "NOT " : "",
            BY_ID[c->ix], rid_col(g, alias, depth, ridb));
        index_where(g, q->type, c, depth, true);
        out(g, ")");
        return;
    }
    out(g, "%s%s.rid IN (", c->negate ? "NOT " : "", alias);
    index_select(g, q, c, depth);
    out(g, ")");
}

/* The conditions on the current row `alias` of q->type (live, in the
 * snapshot, every clause). */
static void where_skip(gen *g, const hub_store_query *q, const char *alias, int depth, size_t skip) {
    out(g, "%s.type = ?%d AND %s.deleted = 0", alias, T(g, q->type), alias);
    for (size_t i = 0; i < q->nclauses && !g->bad; i++) {
        if (i == skip) continue;
        out(g, " AND ");
        clause(g, q, &q->clauses[i], alias, depth);
    }
}

static void where_query(gen *g, const hub_store_query *q, const char *alias, int depth) {
    where_skip(g, q, alias, depth, SIZE_MAX);
}


/* The clause that drives the search (SQLite has no statistics to pick
 * one): a selective one (identifier, a reference, the compartment) that
 * is a plain positive index lookup; SIZE_MAX when none. */
static size_t driver_of(const hub_store_query *q) {
    /* a plain lookup first; a chain (its referenced resources first) next */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < q->nclauses; i++) {
            const hub_store_qclause *c = &q->clauses[i];
            if (c->kind == HUB_QC_INDEX && c->selective && !c->negate && c->nvals > 0 &&
                (c->vals[0].chain != NULL) == (pass == 1))
                return i;
        }
    return SIZE_MAX;
}

/* Whether the driving clause names each resource once: one parameter,
 * one value with both system and value, plain equality. Its rows are then
 * one key of ix_tok's primary key (pid, value, system, rid), a rid at most
 * once, and need no DISTINCT (a temporary B-tree per search: a sixth of
 * an identifier search). */
static bool driver_unique(const hub_store_qclause *c) {
    if (c->ix != HUB_IX_TOKEN || c->nvals != 1 || c->nparams > 1) return false;
    if (c->nparams == 0 && c->param == NULL) return false;
    const hub_store_qval *v = &c->vals[0];
    return v->op == HUB_SQ_EQ && v->chain == NULL && v->param == NULL && v->value != NULL &&
           v->system != NULL;
}

/* FROM: the driving clause's ids first (CROSS JOIN keeps SQLite from
 * reordering), then the resource rows. */
static void from_clause(gen *g, const hub_store_query *q, size_t drv) {
    if (drv == SIZE_MAX) {
        out(g, " FROM resources r%s", by_rid(q));
        return;
    }
    out(g, " FROM (SELECT %srid FROM (", driver_unique(&q->clauses[drv]) ? "" : "DISTINCT ");
    index_select(g, q, &q->clauses[drv], 0);
    out(g, ")) d CROSS JOIN resources r INDEXED BY resources_cur ON r.rid = d.rid");
}

/* A sort key's SQL: never NULL (missing values sort last ascending and
 * first... last descending too, by the sentinel's side). */
static void sort_key(gen *g, const hub_store_query *q, const hub_store_qsort *k) {
    if (strcmp(k->param, "_id") == 0) {
        out(g, "r.id");
    } else if (strcmp(k->param, "_lastUpdated") == 0) {
        out(g, "r.last_updated");
    } else if (k->ix == HUB_IX_DATE) {
        out(g, "COALESCE((SELECT %s(%s) FROM ix_date s WHERE s.rid = r.rid AND ",
            k->desc ? "MAX" : "MIN", k->desc ? "hi" : "lo");
        pid_eq(g, "s.pid", q->type, k->param);
        out(g, "), %s)", k->desc ? "-9223372036854775807" : "9223372036854775807");
    } else if (k->ix == HUB_IX_NUMBER) {
        out(g, "COALESCE((SELECT %s(num) FROM ix_num s WHERE s.rid = r.rid AND ",
            k->desc ? "MAX" : "MIN");
        pid_eq(g, "s.pid", q->type, k->param);
        out(g, "), %s)", k->desc ? "-1e308" : "1e308");
    } else {
        out(g, "COALESCE((SELECT %s(value) FROM ix_tok s INDEXED BY ix_tok_rid WHERE s.rid = r.rid "
               "AND ", k->desc ? "MAX" : "MIN");
        pid_eq(g, "s.pid", q->type, k->param);
        out(g, "), %s)", k->desc ? "''" : "char(1114111)");
    }
}

/* Cursor: "<snapshot>" then ".<kind><text>" per sort key and the id,
 * kind i (integer), r (real), s (text, hex). */
static hub_status parse_cursor(const char *c, size_t nkeys, int64_t *snap, hub__bind *keys,
                               bool *backward, hub_arena *a, hub_err *err) {
    char *end;
    *backward = *c == 'p';
    if (*backward) c++;
    if (!isdigit((unsigned char)*c)) return hub_err_set(err, HUB_E_ARG, "_cursor", "malformed cursor");
    long long v = strtoll(c, &end, 10);
    if (end == c || v <= 0) return hub_err_set(err, HUB_E_ARG, "_cursor", "malformed cursor");
    *snap = v;
    c = end;
    for (size_t i = 0; i < nkeys + 1; i++) {
        /* a '.' then a kind letter: a cursor cut short after the '.' must
         * not be read past its end */
        if (*c != '.' || c[1] == '\0')
            return hub_err_set(err, HUB_E_ARG, "_cursor", "malformed cursor");
        char kind = c[1];
        c += 2;
        const char *e = strchr(c, '.');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (kind == 'i') {
            keys[i] = (hub__bind){HUB__B_INT, NULL, strtoll(c, NULL, 10), 0};
        } else if (kind == 'r') {
            keys[i] = (hub__bind){HUB__B_REAL, NULL, 0, strtod(c, NULL)};
        } else if (kind == 's' && n % 2 == 0) {
            char *s = hub_arena_alloc(a, n / 2 + 1);
            if (!s) return nomem(err);
            for (size_t k = 0; k < n / 2; k++) {
                unsigned x;
                if (sscanf(c + 2 * k, "%2x", &x) != 1)
                    return hub_err_set(err, HUB_E_ARG, "_cursor", "malformed cursor");
                s[k] = (char)x;
            }
            s[n / 2] = '\0';
            keys[i] = (hub__bind){HUB__B_TEXT, s, 0, 0};
        } else {
            return hub_err_set(err, HUB_E_ARG, "_cursor", "malformed cursor");
        }
        c += n;
    }
    if (*c) return hub_err_set(err, HUB_E_ARG, "_cursor", "malformed cursor");
    return HUB_OK;
}

hub_status hub__store_cursor(const hub_store_query *q, int64_t snapshot, bool backward,
                             const char *const *keys, const int *key_types,
                             const char *id, char *outp, size_t cap) {
    hub_buf b;
    hub_buf_init(&b);
    hub_status rc = hub_buf_printf(&b, "%s%" PRId64, backward ? "p" : "", snapshot);
    for (size_t i = 0; i <= q->nsort && !rc; i++) {
        const char *v = i < q->nsort ? keys[i] : id;
        int t = i < q->nsort ? key_types[i] : 's';
        if (!v) v = "";
        if (t == 'i' || t == 'r') {
            rc = hub_buf_printf(&b, ".%c%s", t, v);
        } else {
            static const char HEX[] = "0123456789abcdef";
            size_t n = strlen(v);
            rc = hub_buf_reserve(&b, 2 + 2 * n);
            if (!rc) {
                char *o = b.p + b.n;
                *o++ = '.';
                *o++ = 's';
                for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
                    *o++ = HEX[*p >> 4];
                    *o++ = HEX[*p & 15];
                }
                *o = '\0';
                b.n = (size_t)(o - b.p);
            }
        }
    }
    if (!rc && b.n + 1 > cap) rc = HUB_E_LIMIT;
    if (!rc) {
        memcpy(outp, b.p, b.n);
        outp[b.n] = '\0';
    }
    hub_buf_release(&b);
    return rc;
}

hub_status hub__store_search_sql(const hub_store_query *q, int64_t snapshot,
                                 bool ids_only, int limit, hub__sq *b,
                                 size_t *page_len, hub_err *err) {
    gen g = {b, &b->sql, false, err, {false}, false};
    b->snapshot = snapshot;
    hub__bind keys[5];
    if (q->nsort > 4) return hub_err_set(err, HUB_E_ARG, "_sort", "more than 4 sort keys");
    b->backward = false;
    if (q->cursor) {
        hub_status rc = parse_cursor(q->cursor, q->nsort, &b->snapshot, keys, &b->backward,
                                     &b->arena, err);
        if (rc) return rc;
    }
    /* Backwards (a prev cursor): the rows before the cursor, read in the
     * reverse order; the caller turns the page around. */
    bool rev = b->backward;
    /* ?1 is the snapshot. */
    if (I(&g, b->snapshot) != 1) return nomem(err);

    /* The page. */
    if (ids_only) {
        size_t drv = driver_of(q);
        out(&g, "SELECT r.id");
        from_clause(&g, q, drv);
        out(&g, " WHERE r.seq <= ?1 AND ");
        g.correlated[0] = g.driven = drv != SIZE_MAX;
        where_skip(&g, q, "r", 0, drv);
        out(&g, " LIMIT %d", limit + 1);
    } else {
        out(&g, "SELECT r.id, r.version, r.last_updated, r.deleted, r.seq, h.json");
        for (size_t i = 0; i < q->nsort; i++) {
            out(&g, ", ");
            sort_key(&g, q, &q->sort[i]);
        }
        size_t drv = driver_of(q);
        from_clause(&g, q, drv);
        out(&g, " JOIN history h ON h.seq = r.seq WHERE r.seq <= ?1 AND ");
        g.correlated[0] = g.driven = drv != SIZE_MAX;
        where_skip(&g, q, "r", 0, drv);
        if (q->cursor) {
            /* Keyset: rows after the cursor's keys in the sort order. */
            out(&g, " AND (");
            for (size_t i = 0; i <= q->nsort; i++) {
                out(&g, "%s(", i ? " OR " : "");
                for (size_t j = 0; j < i; j++) {
                    sort_key(&g, q, &q->sort[j]);
                    out(&g, " = ?%d AND ", bind(b, keys[j]));
                }
                if (i < q->nsort) {
                    sort_key(&g, q, &q->sort[i]);
                    out(&g, " %s ?%d)", q->sort[i].desc != rev ? "<" : ">", bind(b, keys[i]));
                } else {
                    out(&g, "r.id %s ?%d)", rev ? "<" : ">", bind(b, keys[i]));
                }
            }
            out(&g, ")");
        }
        out(&g, " ORDER BY ");
        for (size_t i = 0; i < q->nsort; i++) {
            sort_key(&g, q, &q->sort[i]);
            out(&g, "%s, ", q->sort[i].desc != rev ? " DESC" : "");
        }
        out(&g, "r.id%s LIMIT %d", rev ? " DESC" : "", limit + 1);
    }
    *page_len = b->sql.n;
    if (hub_buf_append(&b->sql, "", 1)) g.bad = true;
    if (!ids_only && q->want_total) {
        size_t drv = driver_of(q);
        out(&g, "SELECT count(*)");
        from_clause(&g, q, drv);
        out(&g, " WHERE r.seq <= ?1 AND ");
        g.correlated[0] = g.driven = drv != SIZE_MAX;
        where_skip(&g, q, "r", 0, drv);
    }
    if (hub_buf_append(&b->sql, "", 1)) g.bad = true;
    if (g.bad) return hub_err_set(err, HUB_E_ARG, "search", "query too complex or out of memory");
    return HUB_OK;
}

void hub__sq_release(hub__sq *b) {
    hub_buf_release(&b->sql);
    hub_free(b->binds);
    hub_arena_release(&b->arena);
}
