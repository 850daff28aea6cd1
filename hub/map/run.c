/* The interpreter: runs a message table over a parsed message, segment
 * tables over segments, datatype tables over fields and components, and
 * builds the transaction Bundle. Values are read as slices of the message
 * and decoded only when they become FHIR values. The Bundle is built in the
 * interpreter's own tree (tree.c) in a scratch arena, then written as JSON
 * text or converted to jansson, as the caller asks. */
#include "internal.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A value being mapped: a field repetition (level 0: components split at
 * '^'), a component (1: sub-components at '&') or a sub-component (2). */
typedef struct {
    hub_slice raw;
    int level;
    size_t seg;
    uint16_t field, rep, comp, sub;
} mval;

/* A resource the message makes. */
typedef struct {
    const char *type;
    const char *name;
    mj *res;
    mj *clears;          /* top-level elements a `""` cleared */
    const mtable *table; /* its segment or datatype table */
    const mrow *mrow;    /* its message-table row (links), or NULL */
    const char *key;
    size_t seg;
    int alias;           /* merged into another entry: its index, else -1 */
    char url[48];        /* urn:uuid:... */
    char id[72];
    char *criteria;
    size_t ord;
} mres;

typedef struct {
    const hub_map *map;
    const hub_v2_msg *msg;
    const hub_map_opts *o;
    hub_map_result *out;
    hub_err *err;
    hub_arena *a;       /* the thread's scratch arena (scratch()) */
    mj_heap h;          /* the Bundle's nodes, in a */
    hub_v2_delims d;
    hub_v2_groups groups;
    bool have_groups;
    mres *res;
    size_t nres, cap;
    const mtable *locals[16];
    size_t nlocal;
    char tz[8];
    char sender[200], control[200];
    uint64_t h0;
    hub_buf *ex; /* explain, or NULL */
    int kdepth;  /* content keys being computed for references */
    /* Every {"reference": url} string made, so that the references to an
     * entry merged into another are repointed without walking every
     * resource. */
    mj **refs;
    size_t nrefs, refcap;
    /* The last value split at the component and at the sub-component
     * separator: a datatype table's rows each read a component of the
     * same value, and splitting it again for each cost more than the
     * rest of reading it. */
    struct split_cache {
        const char *p;
        size_t n;
        char sep;
        uint16_t count; /* parts; 0: not cached */
        hub_slice part[24];
    } split[2];
    /* The last field repetition read: a row's condition and its source
     * are often the same field. */
    struct field_cache {
        bool valid;
        size_t seg;
        uint16_t field, rep;
        hub_slice raw;
    } field;
} rctx;

/* ---- small helpers --------------------------------------------------------- */

/* Reading a position runs for every row of every table: inlined, its
 * calls and the values they return by copy cost a tenth of a conversion
 * (callgrind), and the compiler would not inline them on its own. */
#define ALWAYS_INLINE static inline __attribute__((always_inline))

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Ids and urls are made per resource: by hand, not snprintf. */
static void hex_id(uint64_t a, uint64_t b, char out[33]) {
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[i] = hx[(a >> (60 - 4 * i)) & 15];
        out[16 + i] = hx[(b >> (60 - 4 * i)) & 15];
    }
    out[32] = '\0';
}

static void uuid_of(uint64_t a, uint64_t b, char out[48]) {
    char h[33];
    hex_id(a, b, h);
    /* urn:uuid:xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx */
    char *o = out;
    memcpy(o, "urn:uuid:", 9), o += 9;
    memcpy(o, h, 8), o += 8;
    *o++ = '-';
    memcpy(o, h + 8, 4), o += 4;
    memcpy(o, "-4", 2), o += 2;
    memcpy(o, h + 13, 3), o += 3;
    memcpy(o, "-8", 2), o += 2;
    memcpy(o, h + 17, 3), o += 3;
    *o++ = '-';
    memcpy(o, h + 20, 12), o += 12;
    *o = '\0';
}

/* x y z in the arena (NULL: out of memory). */
static char *join3(hub_arena *a, const char *x, const char *y, const char *z) {
    size_t nx = strlen(x), ny = strlen(y), nz = strlen(z);
    char *o = hub_arena_alloc(a, nx + ny + nz + 1);
    if (o == NULL) return NULL;
    memcpy(o, x, nx);
    memcpy(o + nx, y, ny);
    memcpy(o + nx + ny, z, nz + 1);
    return o;
}

/* Two names of the tables (resource types, resource names): mostly the
 * same pointer, else they differ in their first two bytes. */
static inline bool same_name(const char *a, const char *b) {
    if (a == b) return true;
    if (a[0] != b[0]) return false;
    return a[0] == 0 || (a[1] == b[1] && strcmp(a, b) == 0);
}

static hub_status nomem(rctx *c) {
    return hub_err_set(c->err, HUB_E_NOMEM, "map", "out of memory");
}

static void loc_of(const rctx *c, const mval *v, hub_v2_loc *l) {
    memset(l, 0, sizeof *l);
    hub_slice id = hub_v2_seg_id(c->msg, v->seg);
    if (id.p && id.n == 3) memcpy(l->seg_id, id.p, 3);
    l->seg = (uint32_t)v->seg;
    l->seg_seq = hub_v2_seg_seq(c->msg, v->seg);
    l->field = v->field;
    l->rep = v->rep;
    l->comp = v->comp;
    l->sub = v->sub;
}

static void where_of(const rctx *c, const mval *v, char *out, size_t n) {
    hub_v2_loc l;
    loc_of(c, v, &l);
    hub_v2_loc_format(&l, out, n);
}

static hub_status fail(rctx *c, const mval *v, int code, hub_status st,
                       const char *what) {
    char w[48];
    where_of(c, v, w, sizeof w);
    loc_of(c, v, &c->out->loc);
    c->out->v2_code = code;
    return hub_err_set(c->err, st, w, "%s", what);
}

/* Splits raw at sep into the cache; false when it has more parts than
 * the cache holds. Short values (most) are scanned in a loop: a call to
 * memchr per part cost more than the bytes. */
static bool split_fill(struct split_cache *k, hub_slice raw, char sep) {
    k->count = 0;
    const char *p = raw.p, *end = raw.p + raw.n;
    uint16_t n = 0;
    for (;;) {
        const char *q;
        if (end - p < 64) {
            for (q = p; q < end && *q != sep; q++) {}
            if (q == end) q = NULL;
        } else {
            q = memchr(p, sep, (size_t)(end - p));
        }
        if (n == 24) return false;
        k->part[n++] = (hub_slice){p, (size_t)((q ? q : end) - p)};
        if (q == NULL) break;
        p = q + 1;
    }
    k->p = raw.p;
    k->n = raw.n;
    k->sep = sep;
    k->count = n;
    return true;
}

/* Part i (from 1) of raw split at sep: hub_v2_split's answer, from the
 * cache when raw was the last value split there. A value of more parts
 * than the cache holds is split each time. */
static inline hub_slice part_of(rctx *c, int which, hub_slice raw, char sep, uint16_t i) {
    struct split_cache *k = &c->split[which];
    if (raw.p == NULL) return raw;
    if (sep == 0) return hub_v2_split(raw, sep, i, NULL);
    if ((k->count == 0 || k->p != raw.p || k->n != raw.n || k->sep != sep) &&
        !split_fill(k, raw, sep))
        return hub_v2_split(raw, sep, i, NULL);
    return i >= 1 && i <= k->count ? k->part[i - 1] : (hub_slice){NULL, 0};
}

/* Component `comp` (sub-component `sub`) of a value, absent when it has
 * none. comp 0: the value itself. */
ALWAYS_INLINE mval sub_of(rctx *c, const mval *v, uint16_t comp, uint16_t sub) {
    mval r = *v;
    if (comp == 0) return r;
    if (v->raw.p == NULL) return r;
    if (v->level == 0) {
        r.raw = part_of(c, 0, v->raw, c->d.comp, comp);
        r.level = 1;
        r.comp = comp;
        if (sub && c->d.sub) {
            r.raw = part_of(c, 1, r.raw, c->d.sub, sub);
            r.level = 2;
            r.sub = sub;
        } else if (sub > 1) {
            r.raw = (hub_slice){NULL, 0};
        }
    } else if (v->level == 1) {
        if (c->d.sub) r.raw = part_of(c, 1, v->raw, c->d.sub, comp);
        else if (comp > 1) r.raw = (hub_slice){NULL, 0};
        r.level = 2;
        r.sub = comp;
    } else if (comp > 1) {
        r.raw = (hub_slice){NULL, 0};
    }
    return r;
}

/* True when the group definition holds a segment `id` of its own (not
 * inside one of its groups). */
static bool def_holds(const hub_v2_struct_node *d, const char *id) {
    for (size_t i = 0; i < d->nchildren; i++)
        if (!d->children[i].is_group && strcmp(d->children[i].name, id) == 0) return true;
    return false;
}

/* The segment `id` of group `g` for a position read from segment `from`:
 * among the group's own segments, the nearest one before `from`, else the
 * first after it. A message that does not follow the structure may have
 * had it put in the group before (ORC, PRT, OBX, OBR in a v2.5.1 ORU: the
 * OBX ends the first order group, the OBR starts another): it is still
 * this group's when no segment like the group's first lies between. */
static size_t seg_of_group(const rctx *c, const hub_v2_group *g, const char *id, size_t from) {
    size_t before = SIZE_MAX, after = SIZE_MAX;
    const hub_v2_group *head = NULL;
    for (const hub_v2_group *k = g->first_child; k; k = k->next) {
        if (!k->is_segment) continue;
        if (head == NULL && k->def) head = k;
        if (strcmp(k->name, id) != 0) continue;
        if (k->seg <= from) before = k->seg;
        else if (after == SIZE_MAX) after = k->seg;
    }
    if (before != SIZE_MAX || after != SIZE_MAX) return before != SIZE_MAX ? before : after;
    if (head == NULL) return SIZE_MAX;
    for (size_t s = head->seg; s-- > 0;) {
        hub_slice sid = hub_v2_seg_id(c->msg, s);
        if (sid.n != 3) continue;
        if (memcmp(sid.p, id, 3) == 0) return s;
        if (memcmp(sid.p, head->name, 3) == 0) return SIZE_MAX;
    }
    return SIZE_MAX;
}

/* The segment a position in another segment names. With the message's
 * groups known, it is the one of the nearest group around `from` whose
 * definition holds such a segment (an OBR's ORC is the one of its own
 * order group: an order sent without an ORC has none, not the order's
 * before it). A segment no group around `from` holds (an OBX reading PID,
 * which the PATIENT group holds), and any segment without groups: the
 * nearest one before `from` in the message, else the first after it. */
static size_t other_seg(const rctx *c, const char *id, size_t from) {
    const hub_v2_group *g = c->have_groups ? c->groups.seg_node[from] : NULL;
    for (g = g ? g->parent : NULL; g; g = g->parent)
        if (g->def && def_holds(g->def, id)) return seg_of_group(c, g, id, from);
    for (size_t s = from + 1; s-- > 0;) {
        hub_slice sid = hub_v2_seg_id(c->msg, s);
        if (sid.n == 3 && memcmp(sid.p, id, 3) == 0) return s;
    }
    return hub_v2_seg_find(c->msg, id, from, 1);
}

/* The value at a position, relative to `v`. A field without a repetition
 * number means its first repetition. */
ALWAYS_INLINE mval at_pos(rctx *c, const mval *v, const mpos *p, uint16_t rep) {
    if (p->field == 0) return sub_of(c, v, p->comp, p->sub);
    mval r = {.seg = v->seg};
    if (p->seg[0]) {
        hub_slice id = hub_v2_seg_id(c->msg, v->seg);
        if (!(id.n == 3 && memcmp(id.p, p->seg, 3) == 0)) r.seg = other_seg(c, p->seg, v->seg);
    }
    if (r.seg == SIZE_MAX) return (mval){.raw = {NULL, 0}, .seg = v->seg};
    r.field = p->field;
    r.rep = rep ? rep : (p->rep ? p->rep : 1);
    struct field_cache *fc = &c->field;
    if (!(fc->valid && fc->seg == r.seg && fc->field == r.field && fc->rep == r.rep)) {
        fc->raw = hub_v2_at(c->msg, r.seg, p->field, r.rep, 0, 0);
        fc->seg = r.seg;
        fc->field = r.field;
        fc->rep = r.rep;
        fc->valid = true;
    }
    r.raw = fc->raw;
    r.level = 0;
    /* MSH-1/MSH-2 and single values split like any other. */
    return sub_of(c, &r, p->comp, p->sub);
}

/* Present, not the null "", and not only spaces (senders pad empty
 * fields: `| |` carries no value). */
static bool valued(hub_slice s) {
    if (!s.p || !s.n || hub_v2_is_null(s)) return false;
    for (size_t i = 0; i < s.n; i++)
        if (s.p[i] != ' ') return true;
    return false;
}

static const char *text(rctx *c, hub_slice raw) {
    /* Most values hold no escape: copy without decoding. An absent value
     * (p NULL, n 0) is "" (memchr must not see the NULL). */
    if (c->d.esc == 0 || raw.n == 0 || memchr(raw.p, c->d.esc, raw.n) == NULL) {
        char *t = hub_arena_strndup(c->a, raw.p, raw.n);
        return t;
    }
    return hub_v2_text(c->a, c->msg, raw);
}

/* A literal equal to a value without escapes. */
static bool eq_lit(hub_slice s, const char *lit) {
    for (size_t i = 0; i < s.n; i++)
        if (lit[i] == 0 || lit[i] != s.p[i]) return false;
    return lit[s.n] == 0;
}

/* The positions a table's conditions read, each read once per value the
 * table runs over (see mclause.slot). */
typedef struct {
    uint32_t have;
    hub_slice v[MAP_SLOTS];
    uint64_t known, result; /* clause results, by rslot */
} cmemo;

static hub_slice clause_value(rctx *c, const mclause *cl, const mval *v, cmemo *memo) {
    if (memo == NULL || cl->slot == MAP_NO_SLOT) return at_pos(c, v, &cl->pos, 0).raw;
    uint32_t bit = 1u << cl->slot;
    if (!(memo->have & bit)) {
        memo->v[cl->slot] = at_pos(c, v, &cl->pos, 0).raw;
        memo->have |= bit;
    }
    return memo->v[cl->slot];
}

static bool clause_ok(rctx *c, const mclause *cl, const mval *v, cmemo *memo) {
    /* A component condition on a value: its first component. */
    hub_slice s = cl->self ? v->raw : clause_value(c, cl, v, memo);
    switch (cl->op) {
    case C_VALUED: return valued(s);
    case C_NOT_VALUED: return !valued(s);
    case C_EQ:
    case C_IN:
    case C_NE:
    case C_NOT_IN: {
        if (cl->self && v->level == 0) s = hub_v2_split(s, c->d.comp, 1, NULL);
        /* Escapes are decoded only when the value has one. */
        if (s.p && c->d.esc && memchr(s.p, c->d.esc, s.n)) {
            const char *t = hub_v2_text(c->a, c->msg, s);
            if (t == NULL) return cl->op == C_NE || cl->op == C_NOT_IN;
            s = (hub_slice){t, strlen(t)};
        }
        bool any = false;
        for (size_t k = 0; k < cl->nvals && !any; k++) any = eq_lit(s, cl->vals[k]);
        return (cl->op == C_EQ || cl->op == C_IN) ? any : !any;
    }
    default: return false;
    }
}

/* The rows of a table repeat clauses (an OBX's `OBX-2 = "SN"` heads a
 * dozen rows): a clause's result is kept for the value the table runs
 * over. */
static bool cond_ok(rctx *c, const mcond *cd, const mval *v, cmemo *memo) {
    for (size_t i = 0; i < cd->n; i++) {
        const mclause *cl = &cd->c[i];
        bool ok;
        if (memo && cl->rslot != MAP_NO_SLOT) {
            uint64_t bit = 1ULL << cl->rslot;
            if (!(memo->known & bit)) {
                if (clause_ok(c, cl, v, memo)) memo->result |= bit;
                memo->known |= bit;
            }
            ok = (memo->result & bit) != 0;
        } else {
            ok = clause_ok(c, cl, v, memo);
        }
        if (!ok) return false;
    }
    return true;
}

/* ---- placing values -------------------------------------------------------- */

/* The index the final step of an array path will take, for explain. */
static void path_of(const mj *obj, const mstep *st, size_t n, hub_buf *b) {
    const mj *cur = obj;
    for (size_t i = 0; i < n; i++) {
        hub_buf_printf(b, ".%s", st[i].name);
        const mj *child = cur ? hub__mj_get(cur, st[i].name) : NULL;
        bool arr = child && child->kind == MJ_ARR;
        size_t idx = 0;
        if (st[i].ix == IX_NONE) {
            cur = child;
            continue;
        }
        if (st[i].ix == IX_APPEND) idx = hub__mj_size(child) > st[i].at ? hub__mj_size(child) : st[i].at;
        else if (st[i].ix == IX_AT) idx = st[i].at;
        else {
            idx = hub__mj_size(child);
            size_t k = 0;
            for (const mj *e = arr ? child->u.k.head : NULL; e; e = e->next, k++) {
                const char *kv = hub__mj_sval(hub__mj_get(e, st[i].key));
                if (kv && strcmp(kv, st[i].val) == 0) {
                    idx = k;
                    break;
                }
            }
        }
        hub_buf_printf(b, "[%zu]", idx);
        cur = arr ? hub__mj_at(child, idx) : NULL;
    }
}

/* Sets member s->name of `cur` to v; `had` is the member it has (NULL:
 * none, so v is appended without a search). */
static void set_step(mj *cur, const mstep *s, const mj *had, mj *v) {
    if (had == NULL) hub__mj_addk(cur, s->name, s->nlen, v);
    else hub__mj_setk(cur, s->name, s->nlen, v);
}

/* Walks `st` from `obj`, creating what is missing, and stores `val`
 * (taken) at the last step. Returns the stored value (borrowed) or NULL. */
static mj *place(rctx *c, mj *obj, const mstep *st, size_t n, mj *val) {
    if (val == NULL) return NULL;
    if (n == 0) {
        /* No target: an object is merged into the element itself (a
         * resource table's Reference, beside what other rows put there). */
        if (val->kind != MJ_OBJ || obj->kind != MJ_OBJ) return NULL;
        hub__mj_update(obj, val);
        return obj;
    }
    mj *cur = obj;
    for (size_t i = 0; i < n; i++) {
        bool last = i + 1 == n;
        const mstep *s = &st[i];
        mj *child = hub__mj_get(cur, s->name);
        if (s->ix == IX_NONE) {
            if (last) {
                if (child && child->kind == MJ_OBJ && val->kind == MJ_OBJ) {
                    hub__mj_update(child, val);
                    return child;
                }
                set_step(cur, s, child, val);
                return val;
            }
            if (!child || child->kind != MJ_OBJ) {
                mj *o = hub__mj_obj(&c->h);
                set_step(cur, s, child, o);
                child = o;
            }
            cur = child;
            continue;
        }
        if (!child || child->kind != MJ_ARR) {
            mj *arr = hub__mj_arr(&c->h);
            set_step(cur, s, child, arr);
            child = arr;
        }
        mj *elem = NULL;
        if (s->ix == IX_AT || s->ix == IX_APPEND) {
            /* Pad, so that [1] is the second element even when [0] is
             * still empty (pruned at the end if it stays so); [N+] appends
             * at N at the earliest. */
            if (s->at)
                while (hub__mj_size(child) < s->at) hub__mj_append(child, hub__mj_obj(&c->h));
            if (s->ix == IX_AT) elem = hub__mj_at(child, s->at);
        } else if (s->ix == IX_SELECT) {
            for (mj *e = child ? child->u.k.head : NULL; e; e = e->next) {
                const char *kv = hub__mj_sval(hub__mj_get(e, s->key));
                if (kv && strcmp(kv, s->val) == 0) {
                    elem = e;
                    break;
                }
            }
        }
        if (last) {
            if (elem && elem->kind == MJ_OBJ && val->kind == MJ_OBJ) {
                hub__mj_update(elem, val);
                return elem;
            }
            if (elem && s->ix == IX_AT) {
                hub__mj_set_at(child, s->at, val);
                return val;
            }
            hub__mj_append(child, val);
            return val;
        }
        if (elem == NULL) {
            elem = hub__mj_obj(&c->h);
            if (s->ix == IX_SELECT) hub__mj_set(elem, s->key, hub__mj_str(&c->h, s->val));
            hub__mj_append(child, elem);
        }
        cur = elem;
    }
    return NULL;
}

static void explain(rctx *c, const mres *r, const char *prefix, const mstep *st,
                    size_t n, const mj *obj, const mval *v, const char *trail) {
    if (!c->ex) return;
    char w[48] = "";
    if (v) where_of(c, v, w, sizeof w);
    hub_buf_printf(c->ex, "%s(%s)%s", r->type, r->name, prefix);
    path_of(obj, st, n, c->ex);
    hub_buf_printf(c->ex, " <- %s  %s\n", w[0] ? w : "(fixed)", trail);
}

/* ---- primitives ------------------------------------------------------------- */

static const char *coding_system(rctx *c, const char *t) {
    const mtable *cs = c->map->coding_systems;
    const mrow *r = cs ? hub__map_vocab(cs, t, strlen(t)) : NULL;
    if (r) return r->code;
    if (strchr(t, ':') && !strpbrk(t, " \"<>\\^`{|}")) return t;
    hub_buf b;
    hub_buf_init(&b);
    hub_buf_append_cstr(&b, "urn:id:");
    for (const char *p = t; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (isalnum(ch) || strchr("-._~", ch)) hub_buf_append(&b, p, 1);
        else hub_buf_printf(&b, "%%%02X", ch);
    }
    const char *u = hub_arena_strndup(c->a, b.p ? b.p : "", b.n);
    hub_buf_release(&b);
    return u;
}

/* A value its type refuses: a strict row fails the message; any other
 * leaves the element out and records a warning. */
static hub_status soft(rctx *c, const mrow *row, const mval *v, const char *what) {
    if (row->strict) return fail(c, v, HUB_V2_E_DATA_TYPE, HUB_E_INVALID, what);
    hub_map_result *o = c->out;
    if (o->nwarnings < 16) {
        hub_v2_finding *f = &o->warnings[o->nwarnings];
        memset(f, 0, sizeof *f);
        loc_of(c, v, &f->loc);
        f->code = HUB_V2_E_DATA_TYPE;
        f->severity = HUB_V2_SEV_WARNING;
        f->text = what;
        f->offset = SIZE_MAX;
    }
    o->nwarnings++;
    return HUB_OK;
}

/* n bytes as base64 text; NULL when out of memory. */
static mj *base64_of(rctx *c, const unsigned char *u, size_t n) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = hub_arena_alloc(c->a, (n + 2) / 3 * 4 + 1);
    if (o == NULL) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)u[i] << 16 | (i + 1 < n ? (uint32_t)u[i + 1] << 8 : 0) |
                     (i + 2 < n ? u[i + 2] : 0);
        o[k++] = b64[w >> 18 & 63];
        o[k++] = b64[w >> 12 & 63];
        o[k++] = i + 1 < n ? b64[w >> 6 & 63] : '=';
        o[k++] = i + 2 < n ? b64[w & 63] : '=';
    }
    o[k] = '\0';
    return hub__mj_strn(&c->h, o, k);
}

static int hex_digit(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* The bytes hexadecimal text names, into o (strlen(t) / 2 bytes at most;
 * spaces and line breaks between digits skipped); false when it is not an
 * even, non-empty run of hex digits. */
static bool hex_bytes(const char *t, unsigned char *o, size_t *n) {
    size_t k = 0;
    int hi = -1;
    for (const char *q = t; *q; q++) {
        if (*q == ' ' || *q == '\r' || *q == '\n' || *q == '\t') continue;
        int d = hex_digit(*q);
        if (d < 0) return false;
        if (hi < 0) hi = d;
        else o[k++] = (unsigned char)(hi << 4 | d), hi = -1;
    }
    *n = k;
    return hi < 0 && k > 0;
}

/* The FHIR value of a primitive row; NULL when there is none (empty).
 * A value the type refuses fails the message. */
static hub_status prim_value(rctx *c, const mrow *row, const mval *v, mj **out) {
    *out = NULL;
    hub_slice raw = v->raw;
    /* A primitive from a composite value: its first component. */
    bool whole = row->prim == P_STRING || row->prim == P_MARKDOWN || row->prim == P_BASE64;
    if (v->level == 0 && !whole) raw = hub_v2_split(raw, c->d.comp, 1, NULL);
    if (v->level == 1 && c->d.sub && !whole)
        raw = hub_v2_split(raw, c->d.sub, 1, NULL);
    if (!valued(raw)) return HUB_OK;
    const char *t = text(c, raw);
    if (t == NULL) return nomem(c);
    char buf[40];
    switch (row->prim) {
    case P_URI:
        /* "urn:oid:" + a namespace that is no OID, a name with spaces:
         * no URI. */
        for (const char *q = t; *q; q++)
            if (*q == ' ' || *q == '\t' || *q == '"' || *q == '<' || *q == '>')
                return soft(c, row, v, "not a valid URI");
        *out = hub__mj_str(&c->h, t);
        break;
    case P_STRING:
    case P_MARKDOWN:
    case P_ID:
        *out = hub__mj_str(&c->h, t);
        break;
    case P_CODE: {
        /* Codes carry no surrounding spaces. */
        while (*t == ' ') t++;
        size_t n = strlen(t);
        while (n && t[n - 1] == ' ') n--;
        if (n == 0) return HUB_OK;
        ((char *)t)[n] = '\0'; /* text() made it: the arena's copy */
        *out = hub__mj_strn(&c->h, t, n);
        break;
    }
    case P_SYSTEM:
        *out = hub__mj_str(&c->h, coding_system(c, t));
        break;
    case P_DATE:
    case P_DATETIME:
    case P_TIMESTAMP:
    case P_INSTANT: {
        char k = row->prim == P_DATE ? 'D' : row->prim == P_INSTANT ? 'I' : 'T';
        /* TS: the time is its first component. */
        size_t n = strlen(t);
        /* timestamp: a dateTime only when the value has a time of day
         * (PID-7's birth time); a bare date makes nothing. */
        if (row->prim == P_TIMESTAMP && strspn(t, "0123456789") <= 8) return HUB_OK;
        if (!hub_map_dtm(t, n, k, c->tz, buf))
            return soft(c, row, v,
                        k == 'D' ? "not a valid date" : "not a valid date/time");
        *out = hub__mj_strdup(&c->h, buf, strlen(buf));
        break;
    }
    case P_TIME: {
        size_t n = strlen(t);
        if (n < 2 || n > 16) return soft(c, row, v, "not a valid time");
        snprintf(buf, sizeof buf, "%.2s:%.2s:%.2s", t, n >= 4 ? t + 2 : "00", n >= 6 ? t + 4 : "00");
        *out = hub__mj_strdup(&c->h, buf, strlen(buf));
        break;
    }
    case P_DECIMAL:
    case P_INTEGER:
    case P_POSINT:
    case P_UNSIGNED: {
        char *e;
        while (*t == ' ') t++;
        if (row->prim == P_DECIMAL) {
            double d = strtod(t, &e);
            /* strtod also reads "inf", "nan" and 1e999: no FHIR decimal. */
            if (e == t || *e || !isfinite(d)) return soft(c, row, v, "not a number");
            /* Whole numbers stay integers (no "5.0") when a long long holds
             * them; a larger one stays a real (converting it was undefined). */
            bool integral = !strchr(t, '.') && !strchr(t, 'e') && !strchr(t, 'E');
            if (integral && d > -9.2e18 && d < 9.2e18) *out = hub__mj_int(&c->h, (long long)d);
            else *out = hub__mj_real(&c->h, d);
        } else {
            long long l = strtoll(t, &e, 10);
            if (e == t || *e || (row->prim == P_POSINT && l < 1) || (row->prim == P_UNSIGNED && l < 0))
                return soft(c, row, v, "not an integer");
            *out = hub__mj_int(&c->h, l);
        }
        break;
    }
    case P_BASE64:
        *out = base64_of(c, (const unsigned char *)t, strlen(t));
        break;
    case P_B64HEX: {
        size_t n = 0;
        unsigned char *bytes = hub_arena_alloc(c->a, strlen(t) / 2 + 1);
        if (bytes == NULL) return nomem(c);
        if (!hex_bytes(t, bytes, &n)) return soft(c, row, v, "not hexadecimal");
        *out = base64_of(c, bytes, n);
        break;
    }
    case P_B64BIN: {
        /* Kept as sent when it is base64 (line breaks and spaces removed). */
        size_t n = strlen(t), k = 0, pad = 0;
        char *o = hub_arena_alloc(c->a, n + 1);
        if (o == NULL) return nomem(c);
        for (size_t i = 0; i < n; i++) {
            char ch = t[i];
            if (ch == ' ' || ch == '\r' || ch == '\n' || ch == '\t') continue;
            bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                      ch == '+' || ch == '/';
            if (ch == '=') pad++;
            else if (!ok || pad) return soft(c, row, v, "not base64");
            o[k++] = ch;
        }
        if (k == 0 || k % 4 != 0 || pad > 2) return soft(c, row, v, "not base64");
        o[k] = '\0';
        *out = hub__mj_strn(&c->h, o, k);
        break;
    }
    case P_BOOLEAN:
        if (strcmp(t, "Y") == 0 || strcmp(t, "y") == 0 || strcmp(t, "1") == 0) *out = hub__mj_bool(&c->h, true);
        else if (strcmp(t, "N") == 0 || strcmp(t, "n") == 0 || strcmp(t, "0") == 0) *out = hub__mj_bool(&c->h, false);
        else return soft(c, row, v, "not a yes/no value");
        break;
    }
    if (*out == NULL) return nomem(c);
    return HUB_OK;
}

/* ---- vocabulary ------------------------------------------------------------- */

static mj *unmapped_ext(rctx *c, const char *table) {
    mj *e = hub__mj_obj(&c->h);
    MJ_SET_LIT(e, "url", MJ_PLAIN_LIT(&c->h, HUB_MAP_UNMAPPED_URL));
    MJ_SET_LIT(e, "valueString", hub__mj_str(&c->h, table));
    return e;
}

static mj *coding_of(rctx *c, const char *system, const char *code, const char *display) {
    mj *cd = hub__mj_obj(&c->h);
    if (system) MJ_SET_LIT(cd, "system", hub__mj_str(&c->h, system));
    MJ_SET_LIT(cd, "code", hub__mj_str(&c->h, code));
    if (display) MJ_SET_LIT(cd, "display", hub__mj_str(&c->h, display));
    return cd;
}

/* The "extension" array of `o`, made when it has none. */
static mj *extensions(rctx *c, mj *o) {
    mj *ext = hub__mj_get(o, "extension");
    if (ext == NULL || ext->kind != MJ_ARR) MJ_SET_LIT(o, "extension", ext = hub__mj_arr(&c->h));
    return ext;
}

/* A CodeableConcept (or Coding) just made from a coded value: the row's
 * vocabulary adds the FHIR coding in front; the sender's local tables add
 * the standard coding they know; a code that a table covering it does not
 * know keeps its coding, flagged. */
static void apply_vocab(rctx *c, const mrow *row, const mval *v, mj *obj) {
    mj *codings = hub__mj_get(obj, "coding");
    bool is_cc = codings && codings->kind == MJ_ARR;
    if (!is_cc && !hub__mj_get(obj, "code")) return;
    mval cm = sub_of(c, v, v->level < 2 ? 1 : 0, 0);
    mval sm = sub_of(c, v, v->level < 2 ? 3 : 0, 0);
    if (v->level == 2) sm.raw = (hub_slice){NULL, 0};
    if (!valued(cm.raw)) return;
    const char *code = text(c, cm.raw);
    const char *sys = valued(sm.raw) ? text(c, sm.raw) : "";
    if (code == NULL || sys == NULL) return;
    mj *orig = is_cc ? hub__mj_at(codings, 0) : obj;
    for (size_t i = 0; i < c->nlocal; i++) {
        const mtable *lt = c->locals[i];
        if (!(strcmp(lt->source_system ? lt->source_system : "*", "*") == 0 ||
              strcmp(lt->source_system, sys) == 0))
            continue;
        const mrow *hit = hub__map_vocab(lt, code, strlen(code));
        if (hit) {
            if (is_cc)
                hub__mj_append(codings, coding_of(c, hit->system ? hit->system : lt->system,
                                                  hit->code, hit->display));
            break;
        }
        if (orig) {
            hub__mj_append(extensions(c, orig), unmapped_ext(c, lt->name));
            c->out->nunmapped++;
        }
        break;
    }
    if (row->vocab) {
        const mrow *hit = hub__map_vocab(row->vocab, code, strlen(code));
        const char *system = hit && hit->system ? hit->system : row->vocab->system;
        if (hit && is_cc) {
            hub__mj_prepend(codings, coding_of(c, system, hit->code, hit->display));
        } else if (hit) {
            MJ_SET_LIT(obj, "system", hub__mj_str(&c->h, system));
            MJ_SET_LIT(obj, "code", hub__mj_str(&c->h, hit->code));
            if (hit->display) MJ_SET_LIT(obj, "display", hub__mj_str(&c->h, hit->display));
        } else if (orig) {
            hub__mj_append(extensions(c, orig), unmapped_ext(c, row->vocab->name));
            c->out->nunmapped++;
        }
    }
}

/* ---- tables ------------------------------------------------------------------- */

static hub_status run_table(rctx *c, const mtable *t, const mval *v, mj *obj,
                            mres *r, const char *prefix, const char *trail,
                            bool top, int depth);

static hub_status new_res(rctx *c, const char *type, const char *name, const mtable *t,
                          size_t seg, mres **out) {
    if (c->nres == HUB_MAP_MAX_RESOURCES)
        return hub_err_set(c->err, HUB_E_LIMIT, "message", "more than %d resources",
                           HUB_MAP_MAX_RESOURCES);
    if (c->nres == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        mres *nr = hub_realloc(c->res, nc * sizeof *nr);
        if (nr == NULL) return nomem(c);
        c->res = nr;
        c->cap = nc;
    }
    mres *r = &c->res[c->nres];
    memset(r, 0, sizeof *r);
    r->type = type;
    r->name = name;
    r->table = t;
    r->seg = seg;
    r->alias = -1;
    r->ord = c->nres;
    r->res = hub__mj_obj(&c->h);
    if (r->res == NULL) return nomem(c);
    MJ_SET_LIT(r->res, "resourceType", hub__mj_str(&c->h, type));
    uuid_of(fnv(c->h0, &r->ord, sizeof r->ord), fnv(c->h0 ^ 0x9e3779b97f4a7c15ULL, &r->ord, sizeof r->ord),
            r->url);
    c->nres++;
    *out = r;
    return HUB_OK;
}

static mres *find_res(rctx *c, const char *name, size_t seg) {
    mres *best = NULL;
    for (size_t i = 0; i < c->nres; i++) {
        mres *r = &c->res[i];
        if (!same_name(r->name, name)) continue;
        if (r->seg <= seg) best = r; /* the nearest one before */
        else if (best == NULL) return r;
        else break;
    }
    while (best && best->alias >= 0) best = &c->res[best->alias];
    return best;
}

/* `@a,b` (a message row writing into one of several resources): the one
 * of those names nearest before the segment, else the first after it. An
 * NTE is the note of the order or the result it follows. */
static mres *find_res_any(rctx *c, const char *names, size_t seg) {
    if (strchr(names, ',') == NULL) return find_res(c, names, seg);
    mres *best = NULL;
    char one[64];
    for (const char *p = names; *p;) {
        size_t n = strcspn(p, ",");
        snprintf(one, sizeof one, "%.*s", (int)(n < sizeof one ? n : sizeof one - 1), p);
        mres *r = find_res(c, one, seg);
        bool before = r && r->seg <= seg, best_before = best && best->seg <= seg;
        if (r && (best == NULL || (before && (!best_before || r->seg > best->seg)) ||
                  (!before && !best_before && r->seg < best->seg)))
            best = r;
        p += n + (p[n] == ',');
    }
    return best;
}

static void note_ref(rctx *c, mj *s) {
    if (s == NULL) return;
    if (c->nrefs == c->refcap) {
        size_t nc = c->refcap ? c->refcap * 2 : 64;
        mj **nr = hub_arena_grow(c->a, c->refs, c->refcap * sizeof *nr, nc * sizeof *nr);
        if (nr == NULL) return; /* out of memory: reported by what fails next */
        c->refs = nr;
        c->refcap = nc;
    }
    c->refs[c->nrefs++] = s;
}

/* The references inside a copied subtree. */
static void note_refs_below(rctx *c, mj *v, int depth) {
    if (depth > 64 || (v->kind != MJ_OBJ && v->kind != MJ_ARR)) return;
    for (mj *it = v->u.k.head; it; it = it->next) {
        if (it->kind == MJ_STR && v->kind == MJ_OBJ && strcmp(it->key, "reference") == 0)
            note_ref(c, it);
        else
            note_refs_below(c, it, depth + 1);
    }
}

/* Adds r's elements q lacks. A choice element (value[x]: valueQuantity,
 * valueString) that q already has under another type is not added: one
 * resource holds one value[x]. */
static bool has_choice(const mj *q, const char *k) {
    size_t b = 1;
    while (k[b] && !(k[b] >= 'A' && k[b] <= 'Z')) b++;
    if (k[b] == 0) return false;
    for (const mj *m = q->u.k.head; m; m = m->next)
        if (strncmp(m->key, k, b) == 0 && m->key[b] >= 'A' && m->key[b] <= 'Z') return true;
    return false;
}
static void merge_missing(rctx *c, mj *q, const mj *r) {
    for (const mj *m = r->u.k.head; m; m = m->next) {
        if (hub__mj_get(q, m->key) || has_choice(q, m->key)) continue;
        mj *cp = hub__mj_copy(&c->h, m);
        if (cp == NULL) continue;
        if (cp->kind == MJ_STR && strcmp(cp->key, "reference") == 0) note_ref(c, cp);
        else note_refs_below(c, cp, 0);
        hub__mj_set_keyed(q, cp);
    }
}

/* A resource as an index into c->res, which moves when rows add
 * resources; SIZE_MAX for none (a table run for no resource). */
static size_t res_index(const rctx *c, const mres *r) {
    return r ? (size_t)(r - c->res) : SIZE_MAX;
}
static mres *res_at(rctx *c, size_t i) { return i == SIZE_MAX ? NULL : &c->res[i]; }

/* Strings of an mres are copied: c->res moves when it grows. */
static mj *ref_to(rctx *c, const mres *r) {
    mj *o = hub__mj_obj(&c->h);
    size_t n = strlen(r->url);
    const char *u = hub_arena_strndup(c->a, r->url, n);
    mj *s = u ? hub__mj_plain(&c->h, u, n) : NULL; /* urn:uuid:<hex> */
    MJ_SET_LIT(o, "reference", s);
    note_ref(c, s);
    return o;
}

/* One row over one value. */
static hub_status run_value(rctx *c, const mrow *row, const mtable *t, const mval *sv,
                            mj *obj, mres *r, const char *prefix, const char *trail,
                            bool top, int depth) {
    char tr[256];
    if (c->ex) snprintf(tr, sizeof tr, "%s%s%s:%d", trail, trail[0] ? " > " : "", t->file, row->line);
    else tr[0] = 0;
    if (row->kind == MK_FIXED) {
        if (c->ex) explain(c, r, prefix, row->steps, row->nsteps, obj, NULL, tr);
        place(c, obj, row->steps, row->nsteps, hub__mj_copy(&c->h, row->fixed_mj));
        return HUB_OK;
    }
    if (row->kind == MK_REF) {
        mres *to = find_res(c, row->ref, sv->seg);
        if (to == NULL) return HUB_OK;
        if (c->ex) explain(c, r, prefix, row->steps, row->nsteps, obj, sv, tr);
        place(c, obj, row->steps, row->nsteps, ref_to(c, to));
        return HUB_OK;
    }
    if (row->kind == MK_PRIM) {
        mj *val;
        hub_status rc = prim_value(c, row, sv, &val);
        if (rc) return rc;
        if (val == NULL) return HUB_OK;
        if (row->vocab) {
            const char *code = hub__mj_sval(val);
            const mrow *hit = code ? hub__map_vocab(row->vocab, code, strlen(code)) : NULL;
            if (hit) {
                val = hub__mj_str(&c->h, hit->code);
            } else if (row->nsteps && row->steps[row->nsteps - 1].ix == IX_NONE) {
                /* Unmapped: the element stays out, the code is kept in its
                 * extension and flagged. */
                mj *holder = hub__mj_obj(&c->h);
                mj *ext = hub__mj_arr(&c->h);
                mj *e = unmapped_ext(c, row->vocab->name);
                MJ_SET_LIT(e, "valueCode", val);
                hub__mj_del(e, "valueString");
                hub__mj_append(ext, e);
                MJ_SET_LIT(holder, "extension", ext);
                mstep st[16];
                memcpy(st, row->steps, row->nsteps * sizeof *st);
                const char *nm = hub_arena_sprintf(c->a, "_%.78s", st[row->nsteps - 1].name);
                if (nm == NULL) return nomem(c);
                st[row->nsteps - 1].name = nm;
                st[row->nsteps - 1].nlen = (uint16_t)strlen(nm);
                place(c, obj, st, row->nsteps, holder);
                c->out->nunmapped++;
                return HUB_OK;
            }
        }
        if (c->ex) explain(c, r, prefix, row->steps, row->nsteps, obj, sv, tr);
        place(c, obj, row->steps, row->nsteps, val);
        return HUB_OK;
    }
    /* A datatype (or segment) table. */
    const mtable *sub = row->table;
    if (depth > 12) return hub_err_set(c->err, HUB_E_CONFIG, t->file, "tables nest deeper than 12");
    if (sub->resource && sub->kind == TK_DATATYPE) {
        /* The table makes a resource of its own (an XCN's Practitioner):
         * the element refers to it. */
        mres *nr;
        size_t ri = res_index(c, r);
        hub_status rc = new_res(c, sub->resource, sub->name, sub, sv->seg, &nr);
        if (rc) return rc;
        r = res_at(c, ri);
        size_t ni = c->nres - 1;
        nr->key = sub->key ? sub->key : "identifier/content";
        rc = run_table(c, sub, sv, nr->res, nr, "", tr, true, depth + 1);
        if (rc) return rc;
        r = res_at(c, ri);
        /* Its own rows may have made resources after it (a Location's
         * partOf): it is the one made here, not the last one. */
        nr = &c->res[ni];
        if (hub__mj_size(nr->res) <= 1 && ni == c->nres - 1) {
            c->nres--;
            return HUB_OK;
        }
        place(c, obj, row->steps, row->nsteps, ref_to(c, nr));
        return HUB_OK;
    }
    mj *o = row->nsteps ? hub__mj_obj(&c->h) : obj;
    if (o == NULL) return nomem(c);
    hub_buf pre;
    hub_buf_init(&pre);
    if (c->ex) {
        hub_buf_append_cstr(&pre, prefix);
        path_of(obj, row->steps, row->nsteps, &pre);
        hub_buf_append(&pre, "", 1);
    }
    size_t ri = res_index(c, r);
    hub_status rc = run_table(c, sub, sv, o, r, c->ex ? pre.p : "", tr, false, depth + 1);
    r = res_at(c, ri);
    hub_buf_release(&pre);
    if (rc) return rc;
    if (row->vocab || c->nlocal) apply_vocab(c, row, sv, o);
    if (o != obj && hub__mj_size(o) > 0) place(c, obj, row->steps, row->nsteps, o);
    (void)top;
    return HUB_OK;
}

/* Which parts of `v` hold something: bit i is set when part i + 1
 * (a component of a field repetition, a sub-component of a component) is
 * present and not empty. All bits when the value has more parts than the
 * split cache keeps. */
static uint64_t parts_present(rctx *c, const mval *v) {
    if (v->raw.p == NULL) return 0;
    if (v->level == 0 && v->field == 0) return UINT64_MAX; /* a segment: rows read fields */
    if (v->level == 2) return v->raw.n ? 1 : 0;
    char sep = v->level == 0 ? c->d.comp : c->d.sub;
    if (sep == 0) return v->raw.n ? 1 : 0;
    (void)part_of(c, v->level, v->raw, sep, 1);
    const struct split_cache *k = &c->split[v->level];
    if (k->count == 0 || k->p != v->raw.p || k->n != v->raw.n) return UINT64_MAX;
    uint64_t bits = 0;
    for (uint16_t i = 0; i < k->count; i++)
        if (k->part[i].n) bits |= 1ULL << i;
    return bits;
}

/* True when a row's source is a single position that is empty in this
 * value or segment: the row would map neither a value nor a `""`, so it
 * is skipped before its condition is looked at (most rows of a table read
 * a component or field the message does not have). */
static bool row_idle(const rctx *c, const mrow *row, const mval *v, uint64_t parts) {
    if (row->src.self || row->src.nterms != 1 || row->src.terms[0].lit) return false;
    const mpos *p = &row->src.terms[0].pos;
    if (p->field == 0) return p->comp >= 1 && p->comp <= 64 && !(parts >> (p->comp - 1) & 1);
    hub_slice id = hub_v2_seg_id(c->msg, v->seg);
    if (!(id.n == 3 && memcmp(id.p, p->seg, 3) == 0)) return false;
    return hub_v2_at(c->msg, v->seg, p->field, 0, 0, 0).n == 0;
}

static hub_status run_table(rctx *c, const mtable *t, const mval *v, mj *obj,
                            mres *r, const char *prefix, const char *trail,
                            bool top, int depth) {
    size_t ri = res_index(c, r);
    uint64_t parts = parts_present(c, v);
    cmemo memo;
    memo.have = 0;
    memo.known = memo.result = 0;
    for (size_t i = 0; i < t->nrows; i++) {
        const mrow *row = &t->rows[i];
        r = res_at(c, ri);
        if (row_idle(c, row, v, parts)) continue;
        if (row->cond.n && !cond_ok(c, &row->cond, v, &memo)) continue;
        hub_status rc;
        if (row->src.self) {
            if (row->kind != MK_FIXED && row->kind != MK_REF && !valued(v->raw)) continue;
            rc = run_value(c, row, t, v, obj, r, prefix, trail, top, depth);
            if (rc) return rc;
            continue;
        }
        if (row->src.nterms > 1 || row->src.terms[0].lit) {
            /* A concatenation: one text value. */
            hub_buf b;
            hub_buf_init(&b);
            bool any = false;
            mval first = *v;
            for (size_t k = 0; k < row->src.nterms; k++) {
                if (row->src.terms[k].lit) {
                    hub_buf_append_cstr(&b, row->src.terms[k].text);
                    continue;
                }
                mval x = at_pos(c, v, &row->src.terms[k].pos, 0);
                if (!any) first = x;
                if (valued(x.raw)) {
                    const char *tx = text(c, x.raw);
                    if (tx) hub_buf_append_cstr(&b, tx);
                    any = true;
                }
            }
            if (any) {
                first.raw = (hub_slice){hub_arena_strndup(c->a, b.p ? b.p : "", b.n), b.n};
                first.level = 2;
                /* The joined text is decoded already: no escape left. */
                hub_v2_delims sd = c->d;
                c->d.esc = 0;
                rc = first.raw.p ? run_value(c, row, t, &first, obj, r, prefix, trail, top, depth)
                                 : nomem(c);
                c->d = sd;
                hub_buf_release(&b);
                if (rc) return rc;
            } else {
                hub_buf_release(&b);
            }
            continue;
        }
        const mpos *p = &row->src.terms[0].pos;
        size_t nreps = 1;
        if (row->each && p->field && p->rep == 0) {
            mval probe = at_pos(c, v, p, 1);
            nreps = hub_v2_rep_count(c->msg, probe.seg, p->field);
            if (nreps == 0) nreps = 1;
        }
        for (size_t k = 1; k <= nreps; k++) {
            r = res_at(c, ri); /* the last repetition may have added resources */
            mval sv = at_pos(c, v, p, p->field ? (uint16_t)k : 0);
            if (row->kind == MK_FIXED || row->kind == MK_REF) {
                if (!valued(sv.raw)) continue;
            } else if (sv.raw.p && hub_v2_is_null(sv.raw)) {
                /* `""`: delete the stored value (top-level elements). */
                if (top && row->nsteps) {
                    if (r->clears == NULL) r->clears = hub__mj_arr(&c->h);
                    hub__mj_append(r->clears, hub__mj_str(&c->h, row->steps[0].name));
                }
                continue;
            } else if (!valued(sv.raw)) {
                continue;
            }
            rc = run_value(c, row, t, &sv, obj, r, prefix, trail, top, depth);
            if (rc) return rc;
        }
    }
    return HUB_OK;
}

/* ---- the message ---------------------------------------------------------------- */

static const mtable *message_table(const hub_map *m, const hub_v2_msg *msg, char *sname,
                                   size_t sn) {
    const hub_v2_msh *h = hub_v2_msg_msh(msg);
    char ev[40];
    snprintf(ev, sizeof ev, "%.*s^%.*s", (int)(h->msg_code.n < 8 ? h->msg_code.n : 8),
             h->msg_code.p ? h->msg_code.p : "", (int)(h->trigger.n < 8 ? h->trigger.n : 8),
             h->trigger.p ? h->trigger.p : "");
    hub_v2_struct_name(msg, sname, sn);
    for (size_t i = 0; i < m->ntables; i++) {
        const mtable *t = m->tables[i];
        if (t->kind != TK_MESSAGE) continue;
        for (size_t k = 0; k < t->nevents; k++)
            if (strcmp(t->events[k], ev) == 0) return t;
    }
    for (size_t i = 0; i < m->ntables; i++) {
        const mtable *t = m->tables[i];
        if (t->kind != TK_MESSAGE) continue;
        for (size_t k = 0; k < t->nstructures; k++)
            if (strcmp(t->structures[k], sname) == 0) return t;
    }
    return NULL;
}

/* `GROUP/SEG`: the segment is somewhere inside GROUP; `GROUP>SEG` (the
 * group stored with a leading '>'): GROUP is the segment's innermost group
 * (an ORDER_OBSERVATION's own NTE, not its OBSERVATION's). */
static bool in_group(const rctx *c, size_t seg, const char *group) {
    if (!c->have_groups) return true;
    bool direct = group[0] == '>';
    if (direct) group++;
    const hub_v2_group *g = c->groups.seg_node[seg];
    for (g = g ? g->parent : NULL; g; g = g->parent) {
        if (g->name && strcmp(g->name, group) == 0) return true;
        if (direct) return false;
    }
    return false;
}

/* URL-encodes the characters a query value cannot hold. */
static bool qsafe(unsigned char ch) {
    return isalnum(ch) || (ch && strchr("-._~:/@!$'()*,;", ch));
}

static void qenc(hub_buf *b, const char *s) {
    static const char hx[] = "0123456789ABCDEF";
    while (*s) {
        const char *run = s;
        while (*s && qsafe((unsigned char)*s)) s++;
        if (s > run) hub_buf_append(b, run, (size_t)(s - run));
        if (*s == 0) break;
        unsigned char ch = (unsigned char)*s++;
        char e[3] = {'%', hx[ch >> 4], hx[ch & 15]};
        hub_buf_append(b, e, 3);
    }
}

static hub_status key_of(rctx *c, mres *r);

/* A content key is two FNV-1a hashes of the resource, with two seeds:
 * both are computed in one walk of the tree (two lanes), not two. */
typedef struct {
    uint64_t a, b;
} hash2;

static void fnv2(hash2 *h, const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t a = h->a, b = h->b;
    for (size_t i = 0; i < n; i++) {
        a ^= s[i];
        a *= 1099511628211ULL;
        b ^= s[i];
        b *= 1099511628211ULL;
    }
    h->a = a;
    h->b = b;
}

/* A reference to a resource of this message (urn:uuid:..., which changes
 * with every message) hashes as that resource's key, so a content key
 * stays the same from one message to the next (a bed partOf its room). */
static void hash_string(rctx *c, hash2 *h, const char *s, size_t n) {
    if (n == 45 && memcmp(s, "urn:uuid:", 9) == 0 && c->kdepth < 8) {
        for (size_t i = 0; i < c->nres; i++) {
            mres *o = &c->res[i];
            if (memcmp(o->url, s, n) != 0 || o->url[n] != '\0') continue;
            if (o->criteria == NULL && o->id[0] == '\0') {
                c->kdepth++; /* a chain of references, never a cycle: bounded anyway */
                hub_status rc = key_of(c, o);
                c->kdepth--;
                if (rc != HUB_OK) break;
            }
            const char *k = o->criteria ? o->criteria : o->id;
            fnv2(h, "R", 1);
            fnv2(h, k, strlen(k));
            return;
        }
    }
    fnv2(h, "s", 1);
    fnv2(h, s, n);
}

static void hash_json(rctx *c, hash2 *h, const mj *v) {
    switch ((mj_kind)v->kind) {
    case MJ_OBJ:
        fnv2(h, "{", 1);
        for (const mj *x = v->u.k.head; x; x = x->next) {
            fnv2(h, x->key, strlen(x->key) + 1);
            hash_json(c, h, x);
        }
        fnv2(h, "}", 1);
        return;
    case MJ_ARR:
        fnv2(h, "[", 1);
        for (const mj *x = v->u.k.head; x; x = x->next) hash_json(c, h, x);
        fnv2(h, "]", 1);
        return;
    case MJ_STR:
        hash_string(c, h, v->u.s.p, v->u.s.n);
        return;
    case MJ_INT: {
        long long i = v->u.i;
        fnv2(h, "i", 1);
        fnv2(h, &i, sizeof i);
        return;
    }
    case MJ_REAL: {
        double d = v->u.d;
        fnv2(h, "r", 1);
        fnv2(h, &d, sizeof d);
        return;
    }
    case MJ_TRUE: fnv2(h, "T", 1); return;
    case MJ_FALSE: fnv2(h, "F", 1); return;
    default: fnv2(h, "N", 1); return;
    }
}

/* Key `of NAME`: the resource belongs to the one called NAME (the specimen
 * an OBR describes belongs to its report), so its id is a hash of that
 * one's key and its own name: a corrected message (a new control id)
 * updates it instead of making another. Without NAME: keyed by message. */
static hub_status key_of_owner(rctx *c, mres *r, const char *name, int depth) {
    mres *o = find_res(c, name, r->seg);
    if (o == NULL || o == r || depth > 4) return HUB_E_NOTFOUND;
    if (o->criteria == NULL && o->id[0] == '\0') {
        hub_status rc = o->key && strncmp(o->key, "of ", 3) == 0
                            ? key_of_owner(c, o, o->key + 3, depth + 1)
                            : key_of(c, o);
        if (rc) return rc;
    }
    const char *k = o->criteria ? o->criteria : o->id;
    uint64_t a = fnv(fnv(14695981039346656037ULL, k, strlen(k)), r->name, strlen(r->name));
    uint64_t b = fnv(fnv(0x84222325cbf29ce4ULL, r->type, strlen(r->type)), k, strlen(k));
    hex_id(a, b, r->id);
    return HUB_OK;
}

static hub_status key_of(rctx *c, mres *r) {
    const char *key = r->key ? r->key : "message";
    if (strncmp(key, "of ", 3) == 0) {
        hub_status rc = key_of_owner(c, r, key + 3, 0);
        if (rc != HUB_E_NOTFOUND) return rc;
        key = "message";
    }
    bool required = key[strlen(key) - 1] == '!';
    if (strncmp(key, "identifier", 10) == 0) {
        const mj *ids = hub__mj_get(r->res, "identifier");
        for (const mj *id = ids && ids->kind == MJ_ARR ? ids->u.k.head : NULL; id; id = id->next) {
            const char *val = hub__mj_sval(hub__mj_get(id, "value"));
            const char *sys = hub__mj_sval(hub__mj_get(id, "system"));
            if (val == NULL) continue;
            hub_buf b;
            hub_buf_init(&b);
            hub_buf_append_cstr(&b, r->type);
            hub_buf_append_cstr(&b, "?identifier=");
            if (sys) {
                qenc(&b, sys);
                hub_buf_append(&b, "|", 1);
            }
            qenc(&b, val);
            hub_buf_append(&b, "", 1);
            r->criteria = hub_arena_strndup(c->a, b.p, b.n);
            hub_buf_release(&b);
            return r->criteria ? HUB_OK : nomem(c);
        }
        if (strstr(key, "/content")) {
            key = "content";
            goto hashed;
        }
        if (required) {
            /* Name the field the identifier comes from. */
            mval v = {.seg = r->seg};
            for (size_t i = 0; r->table && i < r->table->nrows; i++) {
                const mrow *row = &r->table->rows[i];
                if (row->nsteps && strcmp(row->steps[0].name, "identifier") == 0 &&
                    !row->src.self && !row->src.terms[0].lit) {
                    v.field = row->src.terms[0].pos.field;
                    break;
                }
            }
            return fail(c, &v, HUB_V2_E_REQUIRED_MISSING, HUB_E_INVALID,
                        "no identifier to key the resource on");
        }
        key = "message";
    }
hashed:;
    uint64_t a, b2;
    if (strncmp(key, "content", 7) == 0) {
        /* The tables build a resource in a fixed order, so the same
         * content walks the same way: no sorting or encoding needed. */
        hash2 h = {14695981039346656037ULL, 0x84222325cbf29ce4ULL};
        hash_json(c, &h, r->res);
        a = h.a;
        b2 = h.b;
    } else {
        a = fnv(c->h0, r->name, strlen(r->name));
        a = fnv(a, &r->ord, sizeof r->ord);
        b2 = fnv(a ^ 0x9e3779b97f4a7c15ULL, r->type, strlen(r->type));
    }
    hex_id(a, b2, r->id);
    return HUB_OK;
}

/* {"system": system, "code": code} in a one-element array under "coding". */
static mj *codeable(rctx *c, const char *system, const char *code) {
    mj *cd = hub__mj_obj(&c->h), *codings = hub__mj_arr(&c->h), *cc = hub__mj_obj(&c->h);
    MJ_SET_LIT(cd, "system", hub__mj_str(&c->h, system));
    MJ_SET_LIT(cd, "code", hub__mj_str(&c->h, code));
    hub__mj_append(codings, cd);
    MJ_SET_LIT(cc, "coding", codings);
    return cc;
}

/* One element in a new array; NULL when the element is (a sender name
 * that is no UTF-8 leaves the element out, as before). */
static mj *one(rctx *c, mj *v) {
    if (v == NULL) return NULL;
    mj *arr = hub__mj_arr(&c->h);
    hub__mj_append(arr, v);
    return arr;
}

static hub_status provenance(rctx *c, mj *entries) {
    hub_arena *a = c->a;
    mj *p = hub__mj_obj(&c->h);
    if (p == NULL) return nomem(c);
    MJ_SET_LIT(p, "resourceType", hub__mj_str(&c->h, "Provenance"));
    mj *targets = hub__mj_arr(&c->h);
    for (size_t i = 0; i < c->nres; i++)
        if (c->res[i].alias < 0) hub__mj_append(targets, ref_to(c, &c->res[i]));
    MJ_SET_LIT(p, "target", targets);
    char iso[32];
    hub_time_iso(c->o && c->o->now_ms ? c->o->now_ms : hub_now_ms(), iso);
    MJ_SET_LIT(p, "recorded", hub__mj_strdup(&c->h, iso, strlen(iso)));
    hub__mj_set(p, "activity",
                codeable(c, "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "UPDATE"));
    mj *who = hub__mj_strdup(&c->h, c->sender, strlen(c->sender));
    if (who) {
        mj *agent = hub__mj_obj(&c->h), *w = hub__mj_obj(&c->h);
        hub__mj_set(agent, "type",
                    codeable(c, "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                             "author"));
        MJ_SET_LIT(w, "display", who);
        MJ_SET_LIT(agent, "who", w);
        MJ_SET_LIT(p, "agent", one(c, agent));
    }
    char *val = hub_arena_sprintf(a, "%.199s|%.199s", c->sender, c->control);
    mj *vs = val ? hub__mj_str(&c->h, val) : NULL;
    if (vs) {
        mj *ent = hub__mj_obj(&c->h), *what = hub__mj_obj(&c->h), *idf = hub__mj_obj(&c->h);
        MJ_SET_LIT(ent, "role", hub__mj_str(&c->h, "source"));
        MJ_SET_LIT(idf, "system", hub__mj_str(&c->h, "urn:hub:v2-message"));
        MJ_SET_LIT(idf, "value", vs);
        MJ_SET_LIT(what, "identifier", idf);
        MJ_SET_LIT(what, "display", hub__mj_str(&c->h, "HL7 v2 message in the hub's journal"));
        MJ_SET_LIT(ent, "what", what);
        MJ_SET_LIT(p, "entity", one(c, ent));
    }
    char id[33];
    hex_id(fnv(c->h0, "prov", 4), fnv(c->h0 ^ 7, "prov", 4), id);
    MJ_SET_LIT(p, "id", hub__mj_strdup(&c->h, id, strlen(id)));
    char url[48];
    uuid_of(fnv(c->h0, "provurl", 7), fnv(c->h0 ^ 3, "provurl", 7), url);
    mj *e = hub__mj_obj(&c->h), *req = hub__mj_obj(&c->h);
    if (e == NULL || req == NULL) return nomem(c);
    MJ_SET_LIT(e, "fullUrl", hub__mj_strdup(&c->h, url, strlen(url)));
    MJ_SET_LIT(e, "resource", p);
    MJ_SET_LIT(req, "method", hub__mj_str(&c->h, "PUT"));
    MJ_SET_LIT(req, "url", hub__mj_str(&c->h, join3(a, "Provenance", "/", id)));
    MJ_SET_LIT(e, "request", req);
    hub__mj_append(entries, e);
    return HUB_OK;
}

/* Drops empty objects and arrays left by rows whose values were empty. */
static bool prune(mj *v) { return hub__mj_prune(v); }

/* References made to an entry merged into another (a practitioner both
 * attending and admitting) point at the one kept: they would name an
 * entry the Bundle does not have. `old[i]` is the url entry i had before
 * it was merged (empty for the others). */
static void repoint_refs(rctx *c, char (*old)[48]) {
    for (size_t k = 0; k < c->nrefs; k++) {
        mj *it = c->refs[k];
        for (size_t i = 0; i < c->nres; i++) {
            if (old[i][0] && strcmp(old[i], it->u.s.p) == 0) {
                const char *u = hub_arena_strndup(c->a, c->res[i].url, strlen(c->res[i].url));
                if (u) it->u.s.p = u, it->u.s.n = strlen(u);
                break;
            }
        }
    }
}

static hub_status link_res(rctx *c, mres *r) {
    const mrow *mr = r->mrow;
    if (mr == NULL) return HUB_OK;
    for (size_t i = 0; i < mr->nlinks; i++) {
        const mlink *lk = &mr->links[i];
        mres *to = find_res(c, lk->name, r->seg);
        if (to == NULL || to == r) continue;
        if (lk->back) place(c, to->res, lk->steps, lk->nsteps, ref_to(c, r));
        else place(c, r->res, lk->steps, lk->nsteps, ref_to(c, to));
    }
    return HUB_OK;
}

/* The Bundle entry of resource r: a conditional upsert on its criteria,
 * else a PUT of the id its key hashed to; merged with what is stored, and
 * naming the top-level elements a `""` cleared. */
static hub_status add_entry(rctx *c, mres *r, mj *entries) {
    hub_arena *a = c->a;
    mj *req = hub__mj_obj(&c->h), *ext = hub__mj_arr(&c->h), *e = hub__mj_obj(&c->h), *merge = hub__mj_obj(&c->h);
    if (req == NULL || ext == NULL || e == NULL || merge == NULL) return nomem(c);
    MJ_SET_LIT(req, "method", MJ_PLAIN_LIT(&c->h, "PUT"));
    if (r->criteria) {
        /* Checked: qenc() encoded its values, but its type is a table's. */
        MJ_SET_LIT(req, "url", hub__mj_str(&c->h, r->criteria));
    } else {
        size_t idn = strlen(r->id);
        const char *id = hub_arena_strndup(a, r->id, idn);
        MJ_SET_LIT(r->res, "id", id ? hub__mj_plain(&c->h, id, idn) : NULL); /* hex */
        MJ_SET_LIT(req, "url", hub__mj_str(&c->h, join3(a, r->type, "/", r->id)));
    }
    MJ_SET_LIT(merge, "url", MJ_PLAIN_LIT(&c->h, HUB_MAP_MERGE_URL));
    MJ_SET_LIT(merge, "valueBoolean", hub__mj_bool(&c->h, true));
    hub__mj_append(ext, merge);
    for (const mj *k = r->clears ? r->clears->u.k.head : NULL; k; k = k->next) {
        const char *nm = k->u.s.p;
        if (hub__mj_get(r->res, nm)) continue; /* another row set it */
        mj *cl = hub__mj_obj(&c->h);
        MJ_SET_LIT(cl, "url", MJ_PLAIN_LIT(&c->h, HUB_MAP_CLEAR_URL));
        MJ_SET_LIT(cl, "valueString", hub__mj_str(&c->h, nm));
        hub__mj_append(ext, cl);
    }
    MJ_SET_LIT(req, "extension", ext);
    size_t un = strlen(r->url);
    const char *u = hub_arena_strndup(a, r->url, un);
    MJ_SET_LIT(e, "fullUrl", u ? hub__mj_plain(&c->h, u, un) : NULL); /* urn:uuid:<hex> */
    MJ_SET_LIT(e, "resource", r->res);
    MJ_SET_LIT(e, "request", req);
    hub__mj_append(entries, e);
    return HUB_OK;
}

/* The Bundle in the forms the caller asked for. */
static hub_status hand_out(rctx *c, const mj *bundle) {
    unsigned form = c->o->out ? c->o->out : HUB_MAP_OUT_JANSSON;
    if ((form & HUB_MAP_OUT_TEXT) && hub__mj_dump(bundle, &c->out->json) != HUB_OK)
        return nomem(c);
    if (form & HUB_MAP_OUT_JANSSON) {
        c->out->bundle = hub__mj_to_json(bundle);
        if (c->out->bundle == NULL) return nomem(c);
    }
    return HUB_OK;
}

/* Each thread keeps its scratch arena from one message to the next: a
 * message's tree takes 100 to 300 KB, and asking malloc for that anew,
 * in blocks, for every message cost a fifth of a conversion. The arenas
 * hang on a list (so that none looks leaked) and are freed when their
 * thread exits. */
typedef struct scratch_arena {
    hub_arena a;
    struct scratch_arena *next, **prev;
} scratch_arena;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t scratch_mu = PTHREAD_MUTEX_INITIALIZER;
static scratch_arena *scratch_list;

static void scratch_free(void *p) {
    scratch_arena *s = p;
    pthread_mutex_lock(&scratch_mu);
    *s->prev = s->next;
    if (s->next) s->next->prev = s->prev;
    pthread_mutex_unlock(&scratch_mu);
    hub_arena_release(&s->a);
    hub_free(s);
}

static void scratch_init(void) { (void)pthread_key_create(&scratch_key, scratch_free); }

static hub_arena *scratch(void) {
    pthread_once(&scratch_once, scratch_init);
    scratch_arena *s = pthread_getspecific(scratch_key);
    if (s) return &s->a;
    if ((s = hub_malloc(sizeof *s)) == NULL) return NULL;
    hub_arena_init(&s->a, 256u << 10);
    if (pthread_setspecific(scratch_key, s) != 0) {
        hub_free(s);
        return NULL;
    }
    pthread_mutex_lock(&scratch_mu);
    s->next = scratch_list;
    s->prev = &scratch_list;
    if (scratch_list) scratch_list->prev = &s->next;
    scratch_list = s;
    pthread_mutex_unlock(&scratch_mu);
    return &s->a;
}

hub_status hub_map_message(const hub_map *map, const hub_v2_msg *msg,
                           const hub_map_opts *opts, hub_map_result *out,
                           hub_err *err) {
    memset(out, 0, sizeof out->loc);
    out->bundle = NULL;
    out->nresources = out->nunmapped = 0;
    out->table = NULL;
    out->v2_code = 0;
    out->nwarnings = 0;
    memset(&out->loc, 0, sizeof out->loc);
    hub_buf_init(&out->explain);
    hub_buf_init(&out->json);
    hub_map_opts defo = {0};
    if (opts == NULL) opts = &defo;
    rctx c;
    memset(&c, 0, sizeof c);
    c.map = map;
    c.msg = msg;
    c.o = opts;
    c.out = out;
    c.err = err;
    c.d = hub_v2_msg_delims(msg);
    c.ex = opts->explain ? &out->explain : NULL;
    c.a = scratch();
    if (c.a == NULL) return hub_err_set(err, HUB_E_NOMEM, "map", "out of memory");
    c.h.a = c.a;
    hub_status rc = HUB_OK;
    const hub_v2_msh *h = hub_v2_msg_msh(msg);

    /* Sender and control id: the ids and the Provenance stand on them. */
    if (opts->sender) {
        snprintf(c.sender, sizeof c.sender, "%s", opts->sender);
    } else {
        const char *a1 = text(&c, hub_v2_split(h->sending_app, c.d.comp, 1, NULL));
        const char *f1 = text(&c, hub_v2_split(h->sending_fac, c.d.comp, 1, NULL));
        snprintf(c.sender, sizeof c.sender, "%s^%s", a1 ? a1 : "", f1 ? f1 : "");
    }
    {
        const char *ct = h->control_id.p ? text(&c, h->control_id) : "";
        snprintf(c.control, sizeof c.control, "%s", ct ? ct : "");
    }
    c.h0 = fnv(fnv(14695981039346656037ULL, c.sender, strlen(c.sender)), "|", 1);
    c.h0 = fnv(c.h0, c.control, strlen(c.control));
    /* Times without an offset are the sender's local time: MSH-7's offset. */
    if (h->datetime.p) {
        hub_slice ts = hub_v2_split(h->datetime, c.d.comp, 1, NULL);
        for (size_t i = 0; i < ts.n; i++)
            if ((ts.p[i] == '+' || ts.p[i] == '-') && ts.n - i == 5) {
                snprintf(c.tz, sizeof c.tz, "%.5s", ts.p + i);
                break;
            }
    }
    for (size_t i = 0; i < opts->nlocal && c.nlocal < 16; i++) {
        const mtable *lt = hub__map_find(map, opts->local[i], TK_LOCAL);
        if (lt) c.locals[c.nlocal++] = lt;
    }

    char sname[40];
    const mtable *mt = message_table(map, msg, sname, sizeof sname);
    if (mt == NULL) {
        memset(&out->loc, 0, sizeof out->loc);
        snprintf(out->loc.seg_id, sizeof out->loc.seg_id, "MSH");
        out->loc.seg_seq = 1;
        out->loc.field = 9;
        out->v2_code = HUB_V2_E_UNSUPPORTED_MSG_TYPE;
        rc = hub_err_set(err, HUB_E_UNSUPPORTED, "MSH-9", "no mapping table for message type");
        goto done;
    }
    out->table = mt->name;
    const hub_v2_struct_def *def = opts->structure ? opts->structure : hub_v2_struct_builtin(sname);
    if (def) {
        if ((rc = hub_v2_group_match(c.a, msg, def, &c.groups, err))) goto done;
        c.have_groups = true;
    }

    size_t nseg = hub_v2_seg_count(msg);
    for (size_t s = 0; s < nseg; s++) {
        hub_slice sid = hub_v2_seg_id(msg, s);
        if (sid.n != 3) continue;
        for (size_t k = 0; k < mt->nrows; k++) {
            const mrow *row = &mt->rows[k];
            if (memcmp(row->seg, sid.p, 3) != 0) continue;
            if (row->group && !in_group(&c, s, row->group)) continue;
            mval sv = {.raw = hub_v2_seg_raw(msg, s), .level = 0, .seg = s};
            if (row->cond.n && !cond_ok(&c, &row->cond, &sv, NULL)) continue;
            mres *r;
            if (row->into) {
                r = find_res_any(&c, row->name, s);
                if (r == NULL) continue;
            } else {
                if ((rc = new_res(&c, row->rtype, row->name, row->table, s, &r))) goto done;
                r->key = row->key;
                r->mrow = row;
            }
            size_t ri = (size_t)(r - c.res);
            char tr[128] = "";
            if (c.ex) snprintf(tr, sizeof tr, "%s:%d", mt->file, row->line);
            if ((rc = run_table(&c, row->table, &sv, r->res, r, "", tr, true, 0))) goto done;
            r = &c.res[ri];
            (void)r;
        }
    }
    /* Links, keys, and one entry per resource (the same key twice in one
     * message is one resource). */
    for (size_t i = 0; i < c.nres; i++) prune(c.res[i].res);
    for (size_t i = 0; i < c.nres; i++) {
        mres *r = &c.res[i];
        if (r->criteria == NULL && r->id[0] == '\0' && (rc = key_of(&c, r))) goto done;
    }
    char(*old)[48] = hub_arena_alloc(c.a, (c.nres ? c.nres : 1) * sizeof *old);
    if (old == NULL) {
        rc = nomem(&c);
        goto done;
    }
    bool merged = false;
    for (size_t i = 0; i < c.nres; i++) {
        mres *r = &c.res[i];
        old[i][0] = '\0';
        for (size_t k = 0; k < i; k++) {
            mres *q = &c.res[k];
            if (q->alias >= 0 || !same_name(q->type, r->type)) continue;
            bool same = (r->criteria && q->criteria && strcmp(r->criteria, q->criteria) == 0) ||
                        (!r->criteria && !q->criteria && strcmp(r->id, q->id) == 0);
            if (same) {
                merge_missing(&c, q->res, r->res);
                r->alias = (int)k;
                /* References made to r point at q now. */
                memcpy(old[i], r->url, sizeof old[i]);
                memcpy(r->url, q->url, sizeof r->url);
                merged = true;
                break;
            }
        }
    }
    if (merged) repoint_refs(&c, old);
    for (size_t i = 0; i < c.nres; i++)
        if (c.res[i].alias < 0 && (rc = link_res(&c, &c.res[i]))) goto done;

    mj *bundle = hub__mj_obj(&c.h), *entries = hub__mj_arr(&c.h);
    if (bundle == NULL || entries == NULL) {
        rc = nomem(&c);
        goto done;
    }
    MJ_SET_LIT(bundle, "resourceType", MJ_PLAIN_LIT(&c.h, "Bundle"));
    MJ_SET_LIT(bundle, "type", MJ_PLAIN_LIT(&c.h, "transaction"));
    MJ_SET_LIT(bundle, "entry", entries);
    for (size_t i = 0; i < c.nres; i++) {
        mres *r = &c.res[i];
        if (r->alias >= 0) continue;
        if ((rc = add_entry(&c, r, entries))) goto done;
        out->nresources++;
    }
    /* A message that made nothing (an MSH alone) has no Provenance: its
     * target would be empty. */
    if (out->nresources > 0) {
        if ((rc = provenance(&c, entries))) goto done;
        out->nresources++;
    } else {
        hub__mj_del(bundle, "entry"); /* FHIR has no empty arrays */
    }
    rc = hand_out(&c, bundle);
done:
    hub_free(c.res);
    hub_arena_reset(c.a);
    return rc;
}

void hub_map_result_release(hub_map_result *r) {
    if (r == NULL) return;
    json_decref(r->bundle);
    r->bundle = NULL;
    hub_buf_release(&r->json);
    hub_buf_release(&r->explain);
}
