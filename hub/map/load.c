/* Loading the mapping tables: one file per table, line-oriented, cells
 * separated by '|' (mappings/README.md). Everything lives in one arena;
 * references between tables are resolved once, after every file is read,
 * so running a table never looks a name up. */
#include "internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CELLS 8

typedef struct {
    hub_map *m;
    mtable *t;
    const char *file;
    int line;
    hub_err *err;
} lctx;

static hub_status bad(lctx *c, const char *fmt, const char *what)
    __attribute__((format(printf, 2, 0)));
static hub_status bad(lctx *c, const char *fmt, const char *what) {
    char where[48];
    snprintf(where, sizeof where, "%.30s:%d", c->file, c->line % 1000000);
    char msg[160];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(msg, sizeof msg, fmt, what);
#pragma GCC diagnostic pop
    return hub_err_set(c->err, HUB_E_CONFIG, where, "%s", msg);
}

static char *sdup(lctx *c, const char *p, size_t n) {
    return hub_arena_strndup(&c->m->arena, p, n);
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

/* Splits a row at '|' outside double quotes (in place). */
static size_t split_cells(char *line, char *cells[MAX_CELLS]) {
    size_t n = 0;
    bool q = false;
    cells[n++] = line;
    for (char *p = line; *p; p++) {
        if (*p == '"') q = !q;
        else if (*p == '\\' && q && p[1]) p++;
        else if (*p == '|' && !q) {
            *p = 0;
            if (n == MAX_CELLS) break;
            cells[n++] = p + 1;
        }
    }
    for (size_t i = 0; i < n; i++) cells[i] = trim(cells[i]);
    return n;
}

/* "PID-3(2).4.1", "3", "3.2", "MSH-9.2". */
static bool parse_pos(const char *s, mpos *p, bool seg_table) {
    memset(p, 0, sizeof *p);
    const char *q = s;
    if (isupper((unsigned char)q[0]) && q[1] && q[2] && q[3] == '-') {
        for (int i = 0; i < 3; i++) {
            if (!isupper((unsigned char)q[i]) && !isdigit((unsigned char)q[i])) return false;
            p->seg[i] = q[i];
        }
        q += 4;
        char *e;
        long f = strtol(q, &e, 10);
        if (e == q || f < 1 || f > HUB_MAX_FIELDS) return false;
        p->field = (uint16_t)f;
        q = e;
        if (*q == '(') {
            long r = strtol(q + 1, &e, 10);
            if (e == q + 1 || *e != ')' || r < 1 || r > HUB_MAX_REPS) return false;
            p->rep = (uint16_t)r;
            q = e + 1;
        }
        if (*q == '.') q++;
        else if (*q) return false;
    } else if (seg_table) {
        return false;
    }
    if (*q == 0) return p->field != 0;
    char *e;
    long c = strtol(q, &e, 10);
    if (e == q || c < 1 || c > HUB_MAX_COMPONENTS) return false;
    p->comp = (uint16_t)c;
    if (*e == '.') {
        const char *s2 = e + 1;
        long sc = strtol(s2, &e, 10);
        if (e == s2 || sc < 1 || sc > HUB_MAX_SUBCOMPONENTS) return false;
        p->sub = (uint16_t)sc;
    }
    return *e == 0;
}

/* A literal: "text" with \" and \\ escapes. */
static char *unquote(lctx *c, const char *s, size_t n) {
    char *o = hub_arena_alloc(&c->m->arena, n + 1);
    if (o == NULL) return NULL;
    size_t k = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        if (s[i] == '\\' && i + 2 < n) i++;
        o[k++] = s[i];
    }
    o[k] = 0;
    return o;
}

/* Copies `n` items of `size` bytes into the map's arena (NULL for none). */
static void *keep(lctx *c, const void *p, size_t n, size_t size) {
    if (n == 0) return NULL;
    void *o = hub_arena_alloc(&c->m->arena, n * size);
    if (o) memcpy(o, p, n * size);
    return o;
}

static hub_status nomem(lctx *c) { return hub_err_set(c->err, HUB_E_NOMEM, "map", "out of memory"); }

static hub_status parse_src(lctx *c, char *s, msrc *out, bool seg_table) {
    memset(out, 0, sizeof *out);
    if (*s == 0 || strcmp(s, ".") == 0) {
        out->self = true;
        return HUB_OK;
    }
    mterm terms[8];
    size_t nt = 0;
    /* Terms joined by " + ". */
    char *p = s;
    while (*p) {
        while (*p == ' ') p++;
        if (nt == 8) return bad(c, "source of more than 8 terms%s", "");
        mterm *tm = &terms[nt];
        memset(tm, 0, sizeof *tm);
        char *start = p;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) p++;
                p++;
            }
            if (*p != '"') return bad(c, "unterminated literal in source%s", "");
            p++;
            tm->lit = true;
            tm->text = unquote(c, start, (size_t)(p - start));
        } else {
            while (*p && *p != ' ' && *p != '+') p++;
            char save = *p;
            *p = 0;
            if (!parse_pos(start, &tm->pos, seg_table)) {
                *p = save;
                return bad(c, "bad source '%.60s'", start);
            }
            *p = save;
        }
        nt++;
        while (*p == ' ') p++;
        if (*p == '+') p++;
        else if (*p) return bad(c, "bad source '%.60s'", s);
    }
    if ((out->terms = keep(c, terms, nt, sizeof *terms)) == NULL) return nomem(c);
    out->nterms = (uint8_t)nt;
    return HUB_OK;
}

/* Clauses of one condition: the IG's XTN value rows test six positions. */
#define MAP_MAX_CLAUSES 6

/* "PID-29 valued and PID-8 in (M, F) and 2 = \"X\"". */
static hub_status parse_cond(lctx *c, char *s, mcond *out, bool seg_table) {
    memset(out, 0, sizeof *out);
    if (*s == 0) return HUB_OK;
    mclause cls[MAP_MAX_CLAUSES];
    const char *vals[MAP_MAX_CLAUSES][12];
    size_t ncl = 0;
    char *p = s;
    while (*p) {
        if (ncl == MAP_MAX_CLAUSES) return bad(c, "more than 6 clauses in '%.60s'", s);
        mclause *cl = &cls[ncl];
        memset(cl, 0, sizeof *cl);
        cl->vals = vals[ncl];
        ncl++;
        while (*p == ' ') p++;
        char *w = p;
        while (*p && *p != ' ') p++;
        char save = *p;
        *p = 0;
        if (strcmp(w, ".") == 0) cl->self = true;
        else if (!parse_pos(w, &cl->pos, seg_table)) {
            *p = save;
            return bad(c, "bad condition '%.60s'", s);
        }
        *p = save;
        while (*p == ' ') p++;
        if (strncmp(p, "valued", 6) == 0) {
            cl->op = C_VALUED;
            p += 6;
        } else if (strncmp(p, "not valued", 10) == 0) {
            cl->op = C_NOT_VALUED;
            p += 10;
        } else {
            if (strncmp(p, "!=", 2) == 0) { cl->op = C_NE; p += 2; }
            else if (*p == '=') { cl->op = C_EQ; p += 1; }
            else if (strncmp(p, "not in", 6) == 0) { cl->op = C_NOT_IN; p += 6; }
            else if (strncmp(p, "in", 2) == 0) { cl->op = C_IN; p += 2; }
            else return bad(c, "unknown operator in '%.60s'", s);
            while (*p == ' ') p++;
            bool list = (cl->op == C_IN || cl->op == C_NOT_IN);
            if (list) {
                if (*p != '(') return bad(c, "'in' wants (a, b) in '%.60s'", s);
                p++;
            }
            for (;;) {
                while (*p == ' ') p++;
                char *v = p;
                size_t n;
                if (*p == '"') {
                    p++;
                    while (*p && *p != '"') p++;
                    if (*p != '"') return bad(c, "unterminated literal in '%.60s'", s);
                    p++;
                    n = (size_t)(p - v);
                    if (cl->nvals == 12) return bad(c, "more than 12 values in '%.60s'", s);
                    cl->vals[cl->nvals++] = unquote(c, v, n);
                } else {
                    while (*p && *p != ' ' && *p != ',' && *p != ')') p++;
                    n = (size_t)(p - v);
                    if (n == 0) return bad(c, "missing value in '%.60s'", s);
                    if (cl->nvals == 12) return bad(c, "more than 12 values in '%.60s'", s);
                    cl->vals[cl->nvals++] = sdup(c, v, n);
                }
                while (*p == ' ') p++;
                if (!list) break;
                if (*p == ',') { p++; continue; }
                if (*p == ')') { p++; break; }
                return bad(c, "bad list in '%.60s'", s);
            }
        }
        while (*p == ' ') p++;
        if (*p == 0) break;
        if (strncmp(p, "and ", 4) != 0) return bad(c, "conditions join with 'and': '%.60s'", s);
        p += 4;
    }
    for (size_t i = 0; i < ncl; i++)
        if (cls[i].nvals && (cls[i].vals = keep(c, vals[i], cls[i].nvals, sizeof *vals[i])) == NULL)
            return nomem(c);
    if ((out->c = keep(c, cls, ncl, sizeof *cls)) == NULL) return nomem(c);
    out->n = (uint8_t)ncl;
    return HUB_OK;
}

/* "identifier[]", "type.coding[0].code", "extension[url=http://x/y].valueString". */
static hub_status parse_target(lctx *c, char *s, mrow *r) {
    mstep tmp[16];
    size_t n = 0;
    char *p = s;
    if (*p == 0) return HUB_OK; /* no target: the row maps into the value itself */
    while (*p) {
        if (n == 16) return bad(c, "target deeper than 16 in '%.60s'", s);
        mstep *st = &tmp[n++];
        memset(st, 0, sizeof *st);
        char *nm = p;
        while (*p && *p != '.' && *p != '[') {
            if (!isalnum((unsigned char)*p) && *p != '_') return bad(c, "bad target '%.60s'", s);
            p++;
        }
        if (p == nm) return bad(c, "bad target '%.60s'", s);
        if ((size_t)(p - nm) > UINT16_MAX) return bad(c, "bad target '%.60s'", s);
        st->name = sdup(c, nm, (size_t)(p - nm));
        st->nlen = (uint16_t)(p - nm);
        if (*p == '[') {
            char *b = ++p;
            while (*p && *p != ']') p++;
            if (*p != ']') return bad(c, "unclosed [ in target '%.60s'", s);
            size_t bl = (size_t)(p - b);
            p++;
            char *eq = memchr(b, '=', bl);
            if (bl == 0 || (bl == 1 && *b == '+')) {
                st->ix = IX_APPEND;
            } else if (eq) {
                st->ix = IX_SELECT;
                st->key = sdup(c, b, (size_t)(eq - b));
                st->val = sdup(c, eq + 1, bl - (size_t)(eq - b) - 1);
            } else {
                /* [N]: that element; [N+]: a new one for every value, the
                 * first at N at the earliest (elements before it padded). */
                bool from = b[bl - 1] == '+';
                char *e;
                long at = strtol(b, &e, 10);
                if (e != b + bl - from || at < 0 || at > 100) return bad(c, "bad index in target '%.60s'", s);
                st->ix = from ? IX_APPEND : IX_AT;
                st->at = (unsigned)at;
            }
        }
        if (*p == '.') p++;
        else if (*p) return bad(c, "bad target '%.60s'", s);
    }
    r->steps = hub_arena_alloc(&c->m->arena, n * sizeof *r->steps);
    if (r->steps == NULL) return hub_err_set(c->err, HUB_E_NOMEM, "map", "out of memory");
    memcpy(r->steps, tmp, n * sizeof *tmp);
    r->nsteps = (uint8_t)n;
    return HUB_OK;
}

static const struct { const char *name; prim p; } prims[] = {
    {"string", P_STRING}, {"code", P_CODE}, {"id", P_ID}, {"uri", P_URI},
    {"date", P_DATE}, {"dateTime", P_DATETIME}, {"instant", P_INSTANT},
    {"timestamp", P_TIMESTAMP},
    {"time", P_TIME}, {"decimal", P_DECIMAL}, {"integer", P_INTEGER},
    {"positiveInt", P_POSINT}, {"unsignedInt", P_UNSIGNED},
    {"boolean", P_BOOLEAN}, {"markdown", P_MARKDOWN}, {"system", P_SYSTEM},
    {"base64", P_BASE64}, {"base64Binary", P_B64BIN}, {"base64Hex", P_B64HEX},
};

static hub_status parse_mapping(lctx *c, char *s, mrow *r) {
    if (*s == 0) {
        r->kind = MK_PRIM;
        r->prim = P_STRING;
        return HUB_OK;
    }
    if (*s == '=') {
        s = trim(s + 1);
        json_error_t je;
        r->fixed = json_loads(s, JSON_DECODE_ANY, &je);
        if (r->fixed == NULL) return bad(c, "fixed value is not JSON: '%.60s'", s);
        r->fixed_mj = hub__mj_from_json(&c->m->fixed, r->fixed);
        if (r->fixed_mj == NULL) return nomem(c);
        r->kind = MK_FIXED;
        return HUB_OK;
    }
    if (strncmp(s, "ref ", 4) == 0) {
        r->kind = MK_REF;
        r->ref = sdup(c, trim(s + 4), strlen(trim(s + 4)));
        return HUB_OK;
    }
    size_t sl = strlen(s);
    if (sl > 1 && s[sl - 1] == '!') {
        r->strict = true;
        s[--sl] = 0;
    }
    for (size_t i = 0; i < sizeof prims / sizeof prims[0]; i++) {
        if (strcmp(s, prims[i].name) == 0) {
            r->kind = MK_PRIM;
            r->prim = prims[i].p;
            return HUB_OK;
        }
    }
    r->kind = MK_TABLE;
    r->table_name = sdup(c, s, strlen(s));
    return HUB_OK;
}

static hub_status parse_links(lctx *c, char *s, mrow *r) {
    mlink links[6];
    size_t nl = 0;
    char *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        if (*tok == 0) continue;
        if (nl == 6) return bad(c, "more than 6 links%s", "");
        char *eq = strchr(tok, '=');
        if (eq == NULL) return bad(c, "link wants elem=name: '%.60s'", tok);
        *eq = 0;
        char *l = trim(tok), *rr = trim(eq + 1);
        mlink *lk = &links[nl++];
        memset(lk, 0, sizeof *lk);
        if (strcmp(rr, "self") == 0) {
            /* name.elem=self: the named resource points at this one. */
            char *dot = strchr(l, '.');
            if (dot == NULL) return bad(c, "back link wants name.elem=self: '%.60s'", l);
            *dot = 0;
            lk->back = true;
            lk->name = sdup(c, l, strlen(l));
            l = dot + 1;
        } else {
            lk->name = sdup(c, rr, strlen(rr));
        }
        mrow tmp;
        memset(&tmp, 0, sizeof tmp);
        hub_status rc = parse_target(c, l, &tmp);
        if (rc) return rc;
        if (tmp.nsteps == 0) return bad(c, "link without element%s", "");
        lk->steps = tmp.steps;
        lk->nsteps = tmp.nsteps;
    }
    if (nl && (r->links = keep(c, links, nl, sizeof *links)) == NULL) return nomem(c);
    r->nlinks = (uint8_t)nl;
    return HUB_OK;
}

static hub_status parse_row(lctx *c, char *line) {
    mtable *t = c->t;
    char *cells[MAX_CELLS];
    size_t n = split_cells(line, cells);
    for (size_t i = n; i < MAX_CELLS; i++) cells[i] = "";
    /* load_file sized rows[] to the file's line count. */
    if (t->nrows == t->cap) return hub_err_set(c->err, HUB_E_LIMIT, "map", "more rows than lines");
    mrow *r = &t->rows[t->nrows];
    memset(r, 0, sizeof *r);
    r->line = c->line;
    hub_status rc = HUB_OK;
    switch (t->kind) {
    case TK_SEGMENT:
    case TK_DATATYPE: {
        bool segt = t->kind == TK_SEGMENT;
        if ((rc = parse_src(c, cells[0], &r->src, segt))) return rc;
        if ((rc = parse_cond(c, cells[1], &r->cond, segt))) return rc;
        if ((rc = parse_target(c, cells[2], r))) return rc;
        if ((rc = parse_mapping(c, cells[3], r))) return rc;
        if (cells[4][0]) r->vocab_name = sdup(c, cells[4], strlen(cells[4]));
        if (r->nsteps == 0 && r->kind != MK_TABLE)
            return bad(c, "a row without target must map through a table%s", "");
        for (size_t i = 0; i < r->nsteps; i++)
            if (r->steps[i].ix == IX_APPEND) r->each = true;
        if (r->src.nterms == 1 && !r->src.terms[0].lit && r->src.terms[0].pos.rep) r->each = false;
        break;
    }
    case TK_MESSAGE: {
        char *seg = cells[0];
        char *slash = strrchr(seg, '/');
        char *gt = strrchr(seg, '>');
        if (gt && (!slash || gt > slash)) {
            /* GROUP>SEG: GROUP must be the innermost one (kept as ">GROUP"). */
            *gt = 0;
            r->group = hub_arena_sprintf(&c->m->arena, ">%s", seg);
            seg = gt + 1;
        } else if (slash) {
            r->group = sdup(c, seg, (size_t)(slash - seg));
            seg = slash + 1;
        }
        if (strlen(seg) != 3) return bad(c, "bad segment id '%.20s'", seg);
        memcpy(r->seg, seg, 3);
        if ((rc = parse_cond(c, cells[1], &r->cond, true))) return rc;
        char *res = cells[2];
        if (*res == '@') {
            r->into = true;
            res++;
            r->name = sdup(c, res, strlen(res));
        } else {
            if (*res == 0) return bad(c, "missing resource type%s", "");
            r->rtype = sdup(c, res, strlen(res));
            r->name = sdup(c, cells[3][0] ? cells[3] : res, strlen(cells[3][0] ? cells[3] : res));
        }
        if (cells[4][0] == 0) return bad(c, "missing segment table%s", "");
        r->table_name = sdup(c, cells[4], strlen(cells[4]));
        r->key = cells[5][0] ? sdup(c, cells[5], strlen(cells[5])) : "message";
        if ((rc = parse_links(c, cells[6], r))) return rc;
        break;
    }
    case TK_VOCAB:
    case TK_LOCAL:
        if (cells[0][0] == 0) return bad(c, "missing source code%s", "");
        r->from = sdup(c, cells[0], strlen(cells[0]));
        r->code = cells[1][0] ? sdup(c, cells[1], strlen(cells[1])) : NULL;
        r->display = cells[2][0] ? sdup(c, cells[2], strlen(cells[2])) : NULL;
        r->system = cells[3][0] ? sdup(c, cells[3], strlen(cells[3])) : NULL;
        if (r->code == NULL) return bad(c, "missing target code%s", "");
        break;
    }
    t->nrows++;
    c->m->nrows++;
    return HUB_OK;
}

static hub_status parse_header(lctx *c, char *line) {
    mtable *t = c->t;
    char *sp = line + 1;
    while (*sp && *sp != ' ' && *sp != '\t') sp++;
    char *val = trim(sp);
    size_t kl = (size_t)(sp - line - 1);
    char key[24];
    if (kl >= sizeof key) return bad(c, "unknown header '%.20s'", line);
    memcpy(key, line + 1, kl);
    key[kl] = 0;
    char *v = sdup(c, val, strlen(val));
    if (strcmp(key, "table") == 0) t->name = v;
    else if (strcmp(key, "kind") == 0) {
        static const char *kinds[] = {"message", "segment", "datatype", "vocab", "local"};
        size_t i;
        for (i = 0; i < 5 && strcmp(v, kinds[i]); i++) {}
        if (i == 5) return bad(c, "unknown kind '%.20s'", v);
        t->kind = (table_kind)i;
    } else if (strcmp(key, "resource") == 0) t->resource = v;
    else if (strcmp(key, "key") == 0) t->key = v;
    else if (strcmp(key, "system") == 0 || strcmp(key, "target-system") == 0) t->system = v;
    else if (strcmp(key, "source-system") == 0) t->source_system = v;
    else if (strcmp(key, "extends") == 0) t->extends = v;
    else if (strcmp(key, "structure") == 0 || strcmp(key, "events") == 0) {
        bool ev = key[0] == 'e';
        char *save = NULL;
        for (char *tok = strtok_r(v, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
            if (ev ? t->nevents == 32 : t->nstructures == 16) return bad(c, "too many %s", key);
            if (ev) t->events[t->nevents++] = tok;
            else t->structures[t->nstructures++] = tok;
        }
    } else {
        return bad(c, "unknown header '@%.20s'", key);
    }
    return HUB_OK;
}

/* The rows live in the map's arena; their fixed values are jansson's. */
static void table_free(mtable *t) {
    for (size_t k = 0; k < t->nrows; k++) json_decref(t->rows[k].fixed);
    t->rows = NULL;
    t->nrows = 0;
}

static int row_cmp(const void *a, const void *b) {
    return strcmp(((const mrow *)a)->from, ((const mrow *)b)->from);
}

static hub_status load_file(hub_map *m, const char *path, const char *label,
                            hub_err *err) {
    char *buf = NULL;
    size_t n = 0;
    hub_status rc = hub_file_read(path, 4u << 20, &buf, &n, err);
    if (rc) return rc;
    mtable *t = hub_arena_calloc(&m->arena, sizeof *t);
    if (t == NULL) {
        hub_free(buf);
        return hub_err_set(err, HUB_E_NOMEM, "map", "out of memory");
    }
    t->file = hub_arena_strndup(&m->arena, label, strlen(label));
    t->kind = (table_kind)-1;
    /* One row at most per line: the rows in one piece of the arena, no
     * regrowing. */
    size_t lines = 1;
    for (const char *q = buf; (q = memchr(q, '\n', (size_t)(buf + n - q))) != NULL; q++) lines++;
    t->rows = hub_arena_alloc(&m->arena, lines * sizeof *t->rows);
    if (t->file == NULL || t->rows == NULL) {
        hub_free(buf);
        return hub_err_set(err, HUB_E_NOMEM, "map", "out of memory");
    }
    t->cap = lines;
    lctx c = {m, t, t->file, 0, err};
    char *save = NULL;
    /* strtok_r would skip blank lines' numbers: walk by hand. */
    char *p = buf;
    (void)save;
    while (p && *p) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        c.line++;
        char *line = trim(p);
        p = nl ? nl + 1 : NULL;
        if (*line == 0 || *line == '#') continue;
        if (*line == '@') {
            if ((rc = parse_header(&c, line))) break;
            continue;
        }
        if (t->name == NULL || (int)t->kind < 0) {
            rc = bad(&c, "rows before @table and @kind%s", "");
            break;
        }
        if ((rc = parse_row(&c, line))) break;
    }
    hub_free(buf);
    if (rc) {
        table_free(t);
        return rc;
    }
    if (t->name == NULL || (int)t->kind < 0) {
        table_free(t);
        c.line = 1;
        return bad(&c, "no @table or @kind%s", "");
    }
    if ((t->kind == TK_VOCAB || t->kind == TK_LOCAL) && t->nrows) {
        qsort(t->rows, t->nrows, sizeof *t->rows, row_cmp);
        t->sorted = true;
    }
    /* A later table of the same name and kind (the site's) replaces it. */
    for (size_t i = 0; i < m->ntables; i++) {
        if (m->tables[i]->kind == t->kind && strcmp(m->tables[i]->name, t->name) == 0) {
            table_free(m->tables[i]);
            m->tables[i] = t;
            return HUB_OK;
        }
    }
    if (m->ntables == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        mtable **nt = hub_realloc(m->tables, nc * sizeof *nt);
        if (nt == NULL) {
            table_free(t);
            return hub_err_set(err, HUB_E_NOMEM, "map", "out of memory");
        }
        m->tables = nt;
        m->cap = nc;
    }
    m->tables[m->ntables++] = t;
    return HUB_OK;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.map file of `dir` (sorted, so loading is deterministic); `sub`
 * prefixes the labels. A missing directory is fine when `optional`. */
static hub_status load_dir(hub_map *m, const char *dir, const char *sub,
                           bool optional, hub_err *err) {
    char path[1024];
    snprintf(path, sizeof path, "%s%s%s", dir, sub[0] ? "/" : "", sub);
    DIR *d = opendir(path);
    if (d == NULL) {
        if (optional && errno == ENOENT) return HUB_OK;
        return hub_err_set(err, HUB_E_IO, "map", "cannot open directory '%.100s': %s",
                           path, strerror(errno));
    }
    char **names = NULL;
    size_t nn = 0, cap = 0;
    hub_status rc = HUB_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".map") != 0 || e->d_name[0] == '.') continue;
        if (nn == cap) {
            cap = cap ? cap * 2 : 64;
            char **nw = hub_realloc(names, cap * sizeof *nw);
            if (nw == NULL) { rc = hub_err_set(err, HUB_E_NOMEM, "map", "out of memory"); break; }
            names = nw;
        }
        if ((names[nn] = hub_strdup(e->d_name)) == NULL) {
            rc = hub_err_set(err, HUB_E_NOMEM, "map", "out of memory");
            break;
        }
        nn++;
    }
    closedir(d);
    if (rc == HUB_OK && nn) qsort(names, nn, sizeof *names, name_cmp);
    for (size_t i = 0; i < nn && rc == HUB_OK; i++) {
        char full[1400], label[300];
        snprintf(full, sizeof full, "%s/%s", path, names[i]);
        snprintf(label, sizeof label, "%s%s%s", sub[0] ? sub : "site", "/", names[i]);
        rc = load_file(m, full, label, err);
    }
    for (size_t i = 0; i < nn; i++) hub_free(names[i]);
    hub_free(names);
    return rc;
}

const mtable *hub__map_find(const hub_map *m, const char *name, int kind) {
    for (size_t i = 0; i < m->ntables; i++)
        if ((kind < 0 || (int)m->tables[i]->kind == kind) &&
            strcmp(m->tables[i]->name, name) == 0)
            return m->tables[i];
    return NULL;
}

static const mrow *vocab_bsearch(const mtable *t, const char *code, size_t n) {
    size_t lo = 0, hi = t->nrows;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *f = t->rows[mid].from;
        int c = strncmp(f, code, n);
        if (c == 0 && f[n] != 0) c = 1;
        if (c == 0) return &t->rows[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static uint64_t code_hash(const char *p, size_t n) {
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

/* A vocabulary's codes hashed at load: a lookup per coded value is a
 * probe or two, not a binary search of strncmp calls. Each code maps to
 * the row the binary search finds, so the answers are the same. No
 * memory for it: lookups search as before. */
static void vocab_index(hub_map *m, mtable *t) {
    size_t cap = 16;
    while (cap < 2 * t->nrows) cap <<= 1;
    if (cap > UINT32_MAX) return;
    uint32_t *ix = hub_arena_calloc(&m->arena, cap * sizeof *ix);
    if (ix == NULL) return;
    for (size_t i = 0; i < t->nrows; i++) {
        const char *f = t->rows[i].from;
        size_t n = strlen(f);
        const mrow *hit = vocab_bsearch(t, f, n);
        if (hit == NULL) continue;
        size_t h = code_hash(f, n) & (cap - 1);
        while (ix[h] && strcmp(t->rows[ix[h] - 1].from, f) != 0) h = (h + 1) & (cap - 1);
        if (ix[h] == 0) ix[h] = (uint32_t)(hit - t->rows) + 1;
    }
    t->hidx = ix;
    t->hmask = cap - 1;
}

const mrow *hub__map_vocab(const mtable *t, const char *code, size_t n) {
    if (t->hidx == NULL) return vocab_bsearch(t, code, n);
    for (size_t h = code_hash(code, n) & t->hmask; t->hidx[h]; h = (h + 1) & t->hmask) {
        const mrow *r = &t->rows[t->hidx[h] - 1];
        if (strncmp(r->from, code, n) == 0 && r->from[n] == 0) return r;
    }
    return NULL;
}

/* Gives each clause of a segment or datatype table the slot of its
 * position (the first MAP_SLOTS distinct positions; the rest read theirs
 * each time). Message tables run their conditions once per segment: no
 * slots. */
static bool clause_alike(const mclause *a, const mclause *b) {
    if (a->self != b->self || a->op != b->op || a->nvals != b->nvals ||
        (!a->self && memcmp(&a->pos, &b->pos, sizeof a->pos) != 0))
        return false;
    for (size_t i = 0; i < a->nvals; i++)
        if (strcmp(a->vals[i], b->vals[i]) != 0) return false;
    return true;
}

/* ... and each clause the result slot of the first one like it. */
static void assign_result_slots(mtable *t) {
    const mclause *seen[64];
    size_t nseen = 0;
    for (size_t k = 0; k < t->nrows; k++) {
        mcond *cd = &t->rows[k].cond;
        for (size_t i = 0; i < cd->n; i++) {
            mclause *cl = (mclause *)&cd->c[i];
            cl->rslot = MAP_NO_SLOT;
            if (t->kind == TK_MESSAGE) continue;
            size_t s = 0;
            while (s < nseen && !clause_alike(seen[s], cl)) s++;
            if (s == nseen && nseen < 64) seen[nseen++] = cl;
            if (s < nseen) cl->rslot = (uint8_t)s;
        }
    }
}

static void assign_slots(mtable *t) {
    assign_result_slots(t);
    mpos seen[MAP_SLOTS];
    size_t nseen = 0;
    for (size_t k = 0; k < t->nrows; k++) {
        mcond *cd = &t->rows[k].cond;
        for (size_t i = 0; i < cd->n; i++) {
            mclause *cl = (mclause *)&cd->c[i]; /* the map's own arena */
            cl->slot = MAP_NO_SLOT;
            if (cl->self || t->kind == TK_MESSAGE) continue;
            size_t s = 0;
            while (s < nseen && memcmp(&seen[s], &cl->pos, sizeof cl->pos) != 0) s++;
            if (s == nseen && nseen < MAP_SLOTS) seen[nseen++] = cl->pos;
            if (s < nseen) cl->slot = (uint8_t)s;
        }
    }
}

/* Table references resolved once; a dangling one is a configuration
 * error at start, never a surprise per message. */
static hub_status resolve(hub_map *m, hub_err *err) {
    /* A site's message table may extend a shipped one (a Z-segment row):
     * its rows run after the shipped rows. */
    for (size_t i = 0; i < m->ntables; i++) {
        mtable *t = m->tables[i];
        if (t->extends == NULL) continue;
        mtable *base = (mtable *)hub__map_find(m, t->extends, t->kind);
        if (base == NULL || base == t)
            return hub_err_set(err, HUB_E_CONFIG, t->file, "@extends names no table '%.60s'",
                               t->extends);
        if (base->nrows + t->nrows > base->cap) {
            size_t nc = base->nrows + t->nrows;
            mrow *nr = hub_arena_alloc(&m->arena, nc * sizeof *nr);
            if (nr == NULL) return hub_err_set(err, HUB_E_NOMEM, "map", "out of memory");
            if (base->nrows) memcpy(nr, base->rows, base->nrows * sizeof *nr);
            base->rows = nr;
            base->cap = nc;
        }
        if (t->nrows) memcpy(base->rows + base->nrows, t->rows, t->nrows * sizeof *t->rows);
        base->nrows += t->nrows;
        /* The rows (and their fixed values) belong to base now. */
        t->nrows = 0;
    }
    for (size_t i = 0; i < m->ntables; i++) {
        mtable *t = m->tables[i];
        for (size_t k = 0; k < t->nrows; k++) {
            mrow *r = &t->rows[k];
            if (r->table_name) {
                int want = t->kind == TK_MESSAGE ? TK_SEGMENT : TK_DATATYPE;
                r->table = (mtable *)hub__map_find(m, r->table_name, want);
                if (r->table == NULL && t->kind != TK_MESSAGE)
                    r->table = (mtable *)hub__map_find(m, r->table_name, TK_SEGMENT);
                if (r->table == NULL) {
                    char where[48];
                    snprintf(where, sizeof where, "%.30s:%d", t->file, r->line % 1000000);
                    return hub_err_set(err, HUB_E_CONFIG, where, "unknown table '%.60s'",
                                       r->table_name);
                }
            }
            if (r->vocab_name) {
                r->vocab = (mtable *)hub__map_find(m, r->vocab_name, TK_VOCAB);
                if (r->vocab == NULL) {
                    char where[48];
                    snprintf(where, sizeof where, "%.30s:%d", t->file, r->line % 1000000);
                    return hub_err_set(err, HUB_E_CONFIG, where,
                                       "unknown vocabulary '%.60s'", r->vocab_name);
                }
            }
        }
    }
    for (size_t i = 0; i < m->ntables; i++) {
        mtable *t = m->tables[i];
        if (t->kind == TK_VOCAB || t->kind == TK_LOCAL) vocab_index(m, t);
        else assign_slots(t);
    }
    m->coding_systems = hub__map_find(m, "CodingSystem", TK_VOCAB);
    return HUB_OK;
}

hub_status hub_map_load(const hub_map_cfg *c, hub_map **out, hub_err *err) {
    hub_map *m = hub_calloc(1, sizeof *m);
    if (m == NULL) return hub_err_set(err, HUB_E_NOMEM, "map", "out of memory");
    hub_arena_init(&m->arena, 64 * 1024);
    m->fixed = (mj_heap){&m->arena, NULL, NULL};
    hub_status rc = HUB_OK;
    static const char *subs[] = {"vocab", "local", "datatypes", "segments", "messages"};
    if (c->dir && c->dir[0])
        for (size_t i = 0; i < 5 && rc == HUB_OK; i++)
            rc = load_dir(m, c->dir, subs[i], i == 1, err);
    if (rc == HUB_OK && c->site_dir && c->site_dir[0]) rc = load_dir(m, c->site_dir, "", false, err);
    if (rc == HUB_OK) rc = resolve(m, err);
    if (rc) {
        hub_map_free(m);
        return rc;
    }
    *out = m;
    return HUB_OK;
}

void hub_map_free(hub_map *m) {
    if (m == NULL) return;
    for (size_t i = 0; i < m->ntables; i++) table_free(m->tables[i]);
    hub_free(m->tables);
    hub_arena_release(&m->arena);
    hub_free(m);
}

size_t hub_map_table_count(const hub_map *m, size_t *rows) {
    if (rows) *rows = m->nrows;
    return m->ntables;
}

bool hub_map_has_local(const hub_map *m, const char *name) {
    return hub__map_find(m, name, TK_LOCAL) != NULL;
}
