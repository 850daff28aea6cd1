/* The validator: checks a parsed message against its base profile and an
 * optional site profile, and reports findings with HL7 table 0357 codes.
 * Diagnoses name positions, field names, datatypes and table numbers, never
 * values (the MSH-9/-11/-12 protocol ids excepted). */
#include "internal.h"
#include "profile_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    int code;
} rule_code[HUB_V2R__COUNT] = {
#define HUB__V2R_CODE(id, name, code, sev) {code},
    HUB_V2_RULE_LIST(HUB__V2R_CODE)
#undef HUB__V2R_CODE
};

typedef struct {
    hub_v2_finding f;
    uint64_t key; /* sort: segment index, then order of discovery */
} vitem;

typedef struct {
    hub_arena *a;
    const hub_v2_msg *m;
    const hub_v2_profile *p;
    const hub_v2_site *site;
    hub_v2_policy pol;
    hub_v2_delims d;
    bool utf8;
    bool convert; /* values are decoded before their length is counted */
    int vnum;
    bool fallback_older; /* validated with an older version than declared */
    vitem *items;      /* arena array */
    size_t n, cap, max, order;
    bool truncated, nomem;
    uint32_t *seq;     /* per segment: ERL-2 occurrence, NULL: computed */
    bool maybe_esc;    /* a value may hold the escape character */
    bool maybe_sub;    /* a value may hold the sub-component separator */
    bool whole;        /* every value is a slice of a segment's raw bytes */
    /* The same two, for the segment being checked (check_segment). */
    bool seg_esc, seg_sub;
} vctx;

enum { LV_FIELD, LV_COMP, LV_SUB };

/* ---- findings ----------------------------------------------------------------- */

/* Whether a finding of rule r is kept; makes room for it. */
static bool admit(vctx *c, hub_v2_rule r) {
    if (c->pol.sev[r] == 0 || c->nomem) return false;
    if (c->n >= c->max) {
        c->truncated = true;
        return false;
    }
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 32;
        vitem *ni = hub_arena_grow(c->a, c->items, c->cap * sizeof *ni, nc * sizeof *ni);
        if (ni == NULL) {
            c->nomem = true;
            return false;
        }
        c->items = ni;
        c->cap = nc;
    }
    return true;
}

/* Appends an admitted finding; `t` is a literal or arena text. */
static void push(vctx *c, hub_v2_rule r, const hub_v2_loc *loc, size_t sortseg,
                 size_t offset, const char *t) {
    char sev = c->pol.sev[r];
    vitem *it = &c->items[c->n++];
    it->f.loc = *loc;
    it->f.code = rule_code[r].code;
    if (r == HUB_V2R_TOO_LONG && c->vnum < 20700) it->f.code = 102; /* 104 is v2.7+ */
    it->f.severity = sev;
    it->f.text = t;
    it->f.offset = offset;
    it->key = ((uint64_t)(sortseg > 0xffffffu ? 0xffffffu : sortseg) << 40) | c->order++;
}

static void addv(vctx *c, hub_v2_rule r, const hub_v2_loc *loc, size_t sortseg,
                 size_t offset, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));
static void addv(vctx *c, hub_v2_rule r, const hub_v2_loc *loc, size_t sortseg,
                 size_t offset, const char *fmt, va_list ap) {
    if (!admit(c, r)) return;
    char text[200];
    vsnprintf(text, sizeof text, fmt, ap);
    char *t = hub_arena_strndup(c->a, text, strlen(text));
    if (t == NULL) {
        c->nomem = true;
        return;
    }
    push(c, r, loc, sortseg, offset, t);
}

/* The hot findings, without printf: a literal text as is... */
static void add_lit(vctx *c, hub_v2_rule r, const hub_v2_loc *loc, size_t sortseg,
                    const char *lit) {
    if (admit(c, r)) push(c, r, loc, sortseg, SIZE_MAX, lit);
}

/* ...or up to five pieces (NULL: none) joined into the arena, at most 199
 * bytes as the printf form. */
static void add_cat(vctx *c, hub_v2_rule r, const hub_v2_loc *loc, size_t sortseg,
                    const char *p0, const char *p1, const char *p2, const char *p3,
                    const char *p4) {
    if (!admit(c, r)) return;
    const char *parts[5] = {p0, p1, p2, p3, p4};
    size_t len[5], total = 0;
    for (int i = 0; i < 5; i++) {
        len[i] = parts[i] ? strlen(parts[i]) : 0;
        total += len[i];
    }
    if (total > 199) total = 199;
    char *t = hub_arena_alloc(c->a, total + 1);
    if (t == NULL) {
        c->nomem = true;
        return;
    }
    size_t k = 0;
    for (int i = 0; i < 5 && k < total; i++) {
        size_t n = len[i] < total - k ? len[i] : total - k;
        memcpy(t + k, parts[i], n);
        k += n;
    }
    t[k] = '\0';
    push(c, r, loc, sortseg, SIZE_MAX, t);
}

/* Decimal digits of v, at least `minw`, NUL-terminated into out[24]. */
static const char *udec(char *out, uint64_t v, int minw) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < minw) tmp[n++] = '0';
    for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return out;
}

static void add(vctx *c, hub_v2_rule r, const hub_v2_loc *loc, size_t sortseg,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void add(vctx *c, hub_v2_rule r, const hub_v2_loc *loc, size_t sortseg,
                const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    addv(c, r, loc, sortseg, SIZE_MAX, fmt, ap);
    va_end(ap);
}

static hub_v2_loc loc_seg(const vctx *c, size_t seg) {
    hub_v2_loc l;
    memset(&l, 0, sizeof l);
    hub_slice id = hub_v2_seg_id(c->m, seg);
    if (id.p && id.n == 3) memcpy(l.seg_id, id.p, 3);
    l.seg = (uint32_t)seg;
    l.seg_seq = c->seq && seg < c->m->nseg ? c->seq[seg] : hub_v2_seg_seq(c->m, seg);
    return l;
}

static hub_v2_loc loc_missing(const char *id) {
    hub_v2_loc l;
    memset(&l, 0, sizeof l);
    snprintf(l.seg_id, sizeof l.seg_id, "%.3s", id);
    l.seg = UINT32_MAX;
    return l;
}

/* ---- value checks ------------------------------------------------------------------- */

static int dig2(const char *p) { return (p[0] - '0') * 10 + (p[1] - '0'); }

static size_t ndigits(hub_slice v, size_t from) {
    size_t i = from;
    while (i < v.n && v.p[i] >= '0' && v.p[i] <= '9') i++;
    return i - from;
}

static int days_in(int y, int mo) {
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return d[mo - 1];
}

/* Fractional seconds and a time-zone offset after position i. */
static int check_tail(hub_slice v, size_t i, bool secs, const char **why) {
    if (i < v.n && v.p[i] == '.') {
        size_t nf = ndigits(v, i + 1);
        if (!secs || nf < 1 || nf > 4) {
            *why = "malformed fraction of a second";
            return HUB_V2R_DATE_FORMAT;
        }
        i += 1 + nf;
    }
    if (i < v.n && (v.p[i] == '+' || v.p[i] == '-')) {
        if (ndigits(v, i + 1) != 4 || i + 5 != v.n) {
            *why = "malformed time-zone offset";
            return HUB_V2R_DATE_FORMAT;
        }
        int hh = dig2(v.p + i + 1), mm = dig2(v.p + i + 3);
        if (hh > 14 || mm > 59) {
            *why = "impossible time-zone offset";
            return HUB_V2R_DATE_IMPOSSIBLE;
        }
        i += 5;
    }
    if (i != v.n) {
        *why = "malformed date/time";
        return HUB_V2R_DATE_FORMAT;
    }
    return 0;
}

static int check_time(hub_slice v, size_t at, size_t nd, const char **why) {
    /* nd digits of HH[MM[SS]] at v.p + at */
    const char *t = v.p + at;
    if (nd >= 2 && dig2(t) > 23) { *why = "impossible time"; return HUB_V2R_DATE_IMPOSSIBLE; }
    if (nd >= 4 && dig2(t + 2) > 59) { *why = "impossible time"; return HUB_V2R_DATE_IMPOSSIBLE; }
    if (nd >= 6 && dig2(t + 4) > 59) { *why = "impossible time"; return HUB_V2R_DATE_IMPOSSIBLE; }
    return 0;
}

static int check_date(hub_slice v, size_t nd, const char **why) {
    int y = (v.p[0] - '0') * 1000 + (v.p[1] - '0') * 100 + dig2(v.p + 2);
    (void)y;
    if (nd >= 6) {
        int mo = dig2(v.p + 4);
        if (mo < 1 || mo > 12) { *why = "impossible date"; return HUB_V2R_DATE_IMPOSSIBLE; }
        if (nd >= 8) {
            int dd = dig2(v.p + 6);
            if (dd < 1 || dd > days_in(y, mo)) { *why = "impossible date"; return HUB_V2R_DATE_IMPOSSIBLE; }
        }
    }
    return 0;
}

static int check_dtm(hub_slice v, const char **why) {
    size_t nd = ndigits(v, 0);
    if (nd != 4 && nd != 6 && nd != 8 && nd != 10 && nd != 12 && nd != 14) {
        *why = "malformed date/time";
        return HUB_V2R_DATE_FORMAT;
    }
    int r = check_date(v, nd, why);
    if (r) return r;
    if (nd > 8 && (r = check_time(v, 8, nd - 8, why))) return r;
    return check_tail(v, nd, nd == 14, why);
}

static int check_dt(hub_slice v, const char **why) {
    size_t nd = ndigits(v, 0);
    if ((nd != 4 && nd != 6 && nd != 8) || nd != v.n) {
        *why = "malformed date";
        return HUB_V2R_DATE_FORMAT;
    }
    return check_date(v, nd, why);
}

static int check_tm(hub_slice v, const char **why) {
    size_t nd = ndigits(v, 0);
    if (nd != 2 && nd != 4 && nd != 6) {
        *why = "malformed time";
        return HUB_V2R_DATE_FORMAT;
    }
    int r = check_time(v, 0, nd, why);
    if (r) return r;
    return check_tail(v, nd, nd == 6, why);
}

static int check_nm(hub_slice v, const char **why) {
    size_t i = 0, digits = 0;
    if (i < v.n && (v.p[i] == '+' || v.p[i] == '-')) i++;
    size_t d1 = ndigits(v, i);
    digits += d1;
    i += d1;
    if (i < v.n && v.p[i] == '.') {
        size_t d2 = ndigits(v, i + 1);
        digits += d2;
        i += 1 + d2;
    }
    if (digits == 0 || i != v.n) {
        *why = "not a number";
        return HUB_V2R_NUMBER;
    }
    return 0;
}

static int check_si(hub_slice v, const char **why) {
    if (v.n == 0 || ndigits(v, 0) != v.n) {
        *why = "not a sequence id (non-negative integer)";
        return HUB_V2R_NUMBER;
    }
    return 0;
}

int hub__check_kind(int kind, hub_slice v, const char **why) {
    static const char *none = "";
    *why = none;
    if (v.p == NULL || v.n == 0) return 0;
    switch (kind) {
    case HUB__VK_DTM: return check_dtm(v, why);
    case HUB__VK_DT: return check_dt(v, why);
    case HUB__VK_TM: return check_tm(v, why);
    case HUB__VK_NM: return check_nm(v, why);
    case HUB__VK_SI: return check_si(v, why);
    default: return 0;
    }
}

int hub_v2_check_value(const char *dt, hub_slice v, const char **why) {
    return hub__check_kind(hub__value_kind(dt), v, why);
}

/* ---- structure ------------------------------------------------------------------------ */

#define MAXD 24

typedef struct {
    const hub__pnode *g;
    int idx;      /* current child, -1 before the first */
    uint32_t cnt; /* occurrences of the current child */
} frame;

static uint32_t slice_key(hub_slice id) {
    return id.n == 3 ? hub__seg_key(id.p) : UINT32_MAX; /* no id has that key */
}

static bool key_in(const uint32_t *set, uint32_t n, uint32_t key) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set[mid] == key) return true;
        if (set[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

static bool node_is(const hub__pnode *n, hub_slice id) {
    uint32_t key = slice_key(id);
    if (n->kind == HUB__PN_SEG) return n->key == key;
    if (n->kind == HUB__PN_CHOICE) {
        for (uint32_t i = 0; i < n->nkids; i++)
            if (n->kids[i].key == key) return true;
    }
    return false;
}

/* Whether segment `id` can open node n (for a group: its first segments
 * up to the first required one); resolved when the structure was parsed. */
static bool can_start(const hub__pnode *n, hub_slice id) {
    if (n->kind != HUB__PN_GROUP) return node_is(n, id);
    return key_in(n->starts, n->nstarts, slice_key(id));
}

static bool contains(const hub__pnode *n, hub_slice id) {
    if (n->kind != HUB__PN_GROUP) return node_is(n, id);
    return key_in(n->ids, n->nids, slice_key(id));
}

/* The first required segment of a node (for "group missing"). */
static const char *first_required(const hub__pnode *n) {
    if (n->kind == HUB__PN_SEG) return n->name;
    if (n->kind == HUB__PN_CHOICE) return n->nkids ? n->kids[0].name : "";
    for (uint32_t i = 0; i < n->nkids; i++)
        if (n->kids[i].min >= 1) return first_required(&n->kids[i]);
    return n->nkids ? first_required(&n->kids[0]) : "";
}

typedef struct {
    const hub__pnode *missing[64];
    size_t n;
    bool more;
} pend;

static void pend_add(pend *pd, const hub__pnode *n) {
    if (pd->n < 64) pd->missing[pd->n++] = n;
    else pd->more = true;
}

static void pend_rest(pend *pd, const frame *fr, int from) {
    for (uint32_t j = (uint32_t)from; j < fr->g->nkids; j++)
        if (fr->g->kids[j].min >= 1) pend_add(pd, &fr->g->kids[j]);
}

/* Enters group child `j` of st[*depth-1] and places `id` inside it. */
static bool place_in(frame *st, int *depth, int level, hub_slice id, pend *pd);

static bool scan_from(frame *st, int *depth, int level, int from, hub_slice id,
                      pend *pd) {
    frame *fr = &st[level];
    for (uint32_t j = (uint32_t)from; j < fr->g->nkids; j++) {
        const hub__pnode *k = &fr->g->kids[j];
        if (k->kind != HUB__PN_GROUP ? node_is(k, id) : can_start(k, id)) {
            fr->idx = (int)j;
            fr->cnt = 1;
            *depth = level + 1;
            if (k->kind == HUB__PN_GROUP) return place_in(st, depth, level, id, pd);
            return true;
        }
        if (k->min >= 1) pend_add(pd, k);
    }
    return false;
}

static bool place_in(frame *st, int *depth, int level, hub_slice id, pend *pd) {
    if (level + 1 >= MAXD) return false;
    const hub__pnode *g = &st[level].g->kids[st[level].idx];
    st[level + 1] = (frame){g, -1, 0};
    *depth = level + 2;
    return scan_from(st, depth, level + 1, 0, id, pd);
}

/* Finds the place of segment `id` after the current position; on success
 * updates the stack and lists the required nodes passed over. */
static bool place(frame *st, int *depth, hub_slice id, pend *pd) {
    for (int level = *depth - 1; level >= 0; level--) {
        frame *fr = &st[level];
        if (fr->idx >= 0) {
            const hub__pnode *c = &fr->g->kids[fr->idx];
            if (c->unbounded && c->kind != HUB__PN_GROUP && node_is(c, id)) {
                fr->cnt++;
                *depth = level + 1;
                return true;
            }
            if (c->unbounded && c->kind == HUB__PN_GROUP && level < *depth - 1 &&
                can_start(c, id)) {
                fr->cnt++;
                *depth = level + 1;
                return place_in(st, depth, level, id, pd);
            }
        }
        /* On failure scan_from listed the rest of this group instance as
         * missing: the segment, if it fits further up, closes it. */
        if (scan_from(st, depth, level, fr->idx + 1, id, pd)) return true;
    }
    return false;
}

static bool z_listed(const hub_v2_site *site, hub_slice id) {
    return hub__codes_has(site->z_ids, site->nz, id);
}

static void report_missing(vctx *c, const pend *pd, size_t at) {
    for (size_t i = 0; i < pd->n; i++) {
        const hub__pnode *n = pd->missing[i];
        hub_v2_loc l = loc_missing(first_required(n));
        if (n->kind == HUB__PN_GROUP)
            add(c, HUB_V2R_SEG_MISSING, &l, at, "required group '%.40s' missing (segment '%s')",
                n->name, l.seg_id);
        else if (n->kind == HUB__PN_CHOICE)
            add(c, HUB_V2R_SEG_MISSING, &l, at, "required segment (one of %.40s) missing", n->name);
        else
            add(c, HUB_V2R_SEG_MISSING, &l, at, "required segment '%s' missing", l.seg_id);
    }
    if (pd->more) {
        hub_v2_loc l = loc_missing("");
        add(c, HUB_V2R_SEG_MISSING, &l, at, "more required segments missing");
    }
}

static void check_structure(vctx *c, const hub__pnode *root) {
    frame st[MAXD];
    int depth = 1;
    st[0] = (frame){root, -1, 0};
    size_t nseg = hub_v2_seg_count(c->m);
    for (size_t i = 0; i < nseg; i++) {
        hub_slice id = hub_v2_seg_id(c->m, i);
        if (id.p == NULL || id.n != 3) continue;
        bool declared = contains(root, id);
        if (id.p[0] == 'Z' && !declared) {
            int zm = c->site ? c->site->z_mode : HUB__Z_ANYWHERE;
            if (zm == HUB__Z_ANYWHERE || (zm == HUB__Z_LISTED && z_listed(c->site, id)))
                continue;
            hub_v2_loc l = loc_seg(c, i);
            add(c, HUB_V2R_SEG_Z, &l, i, "Z-segment '%.3s' not allowed by the profile", l.seg_id);
            continue;
        }
        frame save[MAXD];
        int sdepth = depth;
        memcpy(save, st, sizeof st);
        pend pd; /* missing[] is written before it is read */
        pd.n = 0;
        pd.more = false;
        if (place(st, &depth, id, &pd)) {
            report_missing(c, &pd, i);
            continue;
        }
        memcpy(st, save, sizeof st);
        depth = sdepth;
        hub_v2_loc l = loc_seg(c, i);
        if (declared)
            add(c, HUB_V2R_SEG_UNEXPECTED, &l, i,
                "segment '%.3s' not expected here (out of order or repeated)", l.seg_id);
        else if (c->fallback_older && hub__profile_seg(c->p, l.seg_id) == NULL)
            add(c, HUB_V2R_SEG_NEWER, &l, i,
                "segment '%.3s' unknown to v%s, older than the message's version", l.seg_id,
                c->p->version);
        else
            add(c, HUB_V2R_SEG_UNEXPECTED, &l, i, "segment '%.3s' not in the message structure",
                l.seg_id);
    }
    /* End of message: whatever is still required is missing. */
    pend pd = {.n = 0, .more = false};
    for (int level = depth - 1; level >= 0; level--) pend_rest(&pd, &st[level], st[level].idx + 1);
    report_missing(c, &pd, nseg);
}

/* ---- fields ------------------------------------------------------------------------- */

static const hub__srule *find_rule(const vctx *c, const char *seg, unsigned f,
                                   unsigned comp, unsigned sub) {
    if (c->site == NULL) return NULL;
    for (size_t i = 0; i < c->site->nrules; i++) {
        const hub__srule *r = &c->site->rules[i];
        if (r->field == f && r->comp == comp && r->sub == sub && strcmp(r->seg, seg) == 0)
            return r;
    }
    return NULL;
}

static bool is_null(hub_slice v) { return v.n == 2 && v.p[0] == '"' && v.p[1] == '"'; }

/* The first `sep` in [p, end), or NULL: most values are short, and a loop
 * beats a call to memchr on them. */
static inline const char *find_sep(const char *p, const char *end, char sep) {
    if (end - p >= 16) return memchr(p, sep, (size_t)(end - p));
    for (; p < end; p++)
        if (*p == sep) return p;
    return NULL;
}

/* Walks the pieces of a value split at `sep`, left to right. */
typedef struct {
    const char *p, *end;
    char sep;
    bool done;
} splitter;

static splitter split_init(hub_slice v, char sep) {
    return (splitter){v.p, v.p ? v.p + v.n : NULL, sep, v.p == NULL};
}

/* The next piece; absent (p == NULL) after the last. */
static inline __attribute__((always_inline)) hub_slice split_next(splitter *s) {
    if (s->done) return (hub_slice){NULL, 0};
    const char *q = s->sep ? find_sep(s->p, s->end, s->sep) : NULL;
    const char *e = q ? q : s->end;
    hub_slice out = {s->p, (size_t)(e - s->p)};
    if (q) s->p = q + 1;
    else s->done = true;
    return out;
}

/* Characters (not bytes) of a value after escape decoding. */
static size_t value_len(vctx *c, hub_slice raw) {
    hub_slice v = raw;
    bool utf8 = c->utf8;
    if ((c->d.esc && memchr(raw.p, c->d.esc, raw.n)) || c->convert) {
        hub_v2_text_out t;
        hub_err e;
        if (hub_v2_decode(c->a, c->m, raw, &t, &e) == HUB_OK) {
            v = t.text;
            utf8 = true; /* decoded text is UTF-8 */
        }
    }
    if (!utf8) return v.n; /* one byte, one character */
    size_t n = 0;
    for (size_t i = 0; i < v.n; i++)
        n += ((unsigned char)v.p[i] & 0xC0) != 0x80;
    return n;
}


typedef struct {
    const char *seg;
    size_t segi;
    hub_v2_loc loc;
    bool skip_tables; /* MSH-9, -11, -12 have their own checks */
} fctx;

static void check_item(vctx *c, fctx *fc, const hub_v2_item_def *def,
                       const hub__pres *res, hub_slice raw, int level);

static const hub__srule *rule_at(const vctx *c, const fctx *fc) {
    if (c->site == NULL) return NULL;
    return find_rule(c, fc->seg, fc->loc.field, fc->loc.comp, fc->loc.sub);
}

/* The first piece of v split at sep (v present). */
static inline hub_slice first_piece(hub_slice v, char sep) {
    const char *q = find_sep(v.p, v.p + v.n, sep);
    return q ? (hub_slice){v.p, (size_t)(q - v.p)} : v;
}

static void check_leaf_value(vctx *c, fctx *fc, const hub__pres *res, unsigned table,
                             hub_slice v, const hub__srule *rule) {
    const char *why;
    int r = res->leaf_check ? hub__check_kind(res->leaf_check, v, &why) : 0;
    if (r) {
        if (r == HUB_V2R_DATE_IMPOSSIBLE)
            add_lit(c, HUB_V2R_DATE_IMPOSSIBLE, &fc->loc, fc->segi, why);
        else
            add_cat(c, (hub_v2_rule)r, &fc->loc, fc->segi, why, " (", res->leaf, ")", NULL);
        return;
    }
    if (rule && rule->codes) {
        if (!hub__codes_has(rule->codes, rule->ncodes, v))
            add_lit(c, HUB_V2R_TABLE_SITE, &fc->loc, fc->segi,
                    "code not allowed by the site profile");
        return;
    }
    if (fc->skip_tables || table == 0) return;
    if (res->leaf_kind == HUB__LK_OTHER) return;
    bool is_id = res->leaf_kind == HUB__LK_ID;
    if (table == 396 && (v.n >= 2 && ((v.p[0] == '9' && v.p[1] == '9') || v.p[0] == 'L')))
        return; /* local coding systems 99zzz and L are allowed by 0396 */
    if (table == 396 && v.n == 7 && memcmp(v.p, "HL7", 3) == 0 && ndigits(v, 3) == 4)
        return; /* 0396 names HL7's own tables as HL7nnnn; the source lists none */
    /* HL7 tables that realm guides routinely extend (coding systems,
     * universal id types, identifier types) are judged as user-defined. */
    bool open = table == 396 || table == 301 || table == 203;
    if (res->table && !hub__table_has(res->table, v)) {
        char num[24];
        add_cat(c, is_id && !open ? HUB_V2R_TABLE_HL7 : HUB_V2R_TABLE_USER, &fc->loc, fc->segi,
                "code not in ",
                open ? "HL7 table (extensible) " : is_id ? "HL7 table " : "user-defined table ",
                udec(num, table, 4), NULL, NULL);
    }
}

/* True when check_item would find nothing in a (present) value: a leaf
 * with neither value check nor table, within its length, no site rules. */
static inline bool nothing_to_check(const vctx *c, const hub_v2_item_def *def,
                                    const hub__pres *res, hub_slice v, int level) {
    return c->site == NULL && res->leaf_plain && (!res->composite || level == LV_SUB) &&
           (def->max_len == 0 || (v.n <= def->max_len && !c->seg_esc));
}

/* A present value's length against its limit (the site's, else the
 * definition's). */
static inline void check_len(vctx *c, fctx *fc, const hub_v2_item_def *def,
                             const hub__srule *rule, hub_slice raw) {
    uint32_t lim = rule && rule->max_len ? rule->max_len : def->max_len;
    /* Without escapes a value has at most as many characters as bytes. */
    if (lim && (raw.n > lim || (c->seg_esc && memchr(raw.p, c->d.esc, raw.n)))) {
        size_t len = value_len(c, raw);
        if (len > lim) {
            char a[24], b[24];
            add_cat(c, HUB_V2R_TOO_LONG, &fc->loc, fc->segi, "value too long (",
                    udec(a, len, 1), " > ", udec(b, lim, 1), ")");
        }
    }
}

/* The separator that splits a value at `level`, 0 below sub-components. */
static inline char level_sep(const vctx *c, int level) {
    return level == LV_FIELD ? c->d.comp : level == LV_COMP ? c->d.sub : 0;
}

/* Whether a value at `level` is checked as a primitive: a primitive
 * datatype, or a composite squeezed into a sub-component. */
static inline bool as_leaf(const vctx *c, const hub__pres *res, int level) {
    return !res->composite || level == LV_SUB || level_sep(c, level) == 0;
}

/* A present value checked as its leading primitive: the first piece, if
 * anything in it can be checked. */
static void check_leaf(vctx *c, fctx *fc, const hub_v2_item_def *def, const hub__pres *res,
                       hub_slice raw, int level, const hub__srule *rule) {
    if (rule == NULL && res->leaf_check == HUB__VK_NONE &&
        (def->table == 0 || res->leaf_kind == HUB__LK_OTHER))
        return;
    /* The separator to look for: none when the segment has none. */
    char scan = level == LV_COMP && !c->seg_sub ? 0 : level_sep(c, level);
    hub_slice v = scan ? first_piece(raw, scan) : raw;
    check_leaf_value(c, fc, res, def->table, v, rule);
}

/* The code (piece 1) and coding system (piece 3) of a coded value. */
static void coded_parts(hub_slice v, char sep, hub_slice *code, hub_slice *sys) {
    const char *end = v.p + v.n;
    const char *q1 = memchr(v.p, sep, v.n);
    *code = (hub_slice){v.p, q1 ? (size_t)(q1 - v.p) : v.n};
    *sys = (hub_slice){NULL, 0};
    if (q1 == NULL) return;
    const char *q2 = memchr(q1 + 1, sep, (size_t)(end - q1 - 1));
    if (q2 == NULL) return;
    const char *q3 = memchr(q2 + 1, sep, (size_t)(end - q2 - 1));
    *sys = (hub_slice){q2 + 1, (size_t)((q3 ? q3 : end) - (q2 + 1))};
}

static void check_composite(vctx *c, fctx *fc, const hub_v2_item_def *def,
                            const hub__pres *res, hub_slice raw, int level,
                            const hub__srule *rule);

static void check_item(vctx *c, fctx *fc, const hub_v2_item_def *def,
                       const hub__pres *res, hub_slice raw, int level) {
    if (raw.p == NULL || raw.n == 0 || is_null(raw)) return;
    const hub__srule *rule = rule_at(c, fc);
    check_len(c, fc, def, rule, raw);
    if (as_leaf(c, res, level)) check_leaf(c, fc, def, res, raw, level, rule);
    else check_composite(c, fc, def, res, raw, level, rule);
}

/* The components (or sub-components) of a present composite value, for a
 * channel without a site profile: only present pieces and the required
 * ones are looked at. */
static size_t check_pieces_plain(vctx *c, fctx *fc, const hub_v2_item_def *def,
                                 const hub__pres *res, hub_slice raw, int level,
                                 char scan) {
    const hub__pdt *pdt = res->pdt;
    uint16_t *at = level == LV_FIELD ? &fc->loc.comp : &fc->loc.sub;
    splitter sp = split_init(raw, scan);
    size_t k;
    for (k = 1; k <= HUB_MAX_COMPONENTS; k++) {
        hub_slice pv = split_next(&sp);
        if (pv.p == NULL) break;
        if (k > pdt->n) continue;
        const hub_v2_item_def *cd = &pdt->items[k - 1];
        *at = (uint16_t)k;
        if (pv.n == 0) {
            if (cd->usage == 'R')
                add_cat(c, HUB_V2R_COMP_MISSING, &fc->loc, fc->segi,
                        "required component missing: ", cd->name, NULL, NULL, NULL);
            continue;
        }
        if (cd->usage == 'X') {
            add_lit(c, HUB_V2R_FIELD_UNSUPPORTED, &fc->loc, fc->segi,
                    "component not supported by the site profile");
            continue;
        }
        const hub__pres *cres = &pdt->res[k - 1];
        if (level == LV_FIELD && res->bound_res && def->table_comp == k) {
            cd = res->bound_def; /* the field binds this component's table */
            cres = res->bound_res;
        }
        if (nothing_to_check(c, cd, cres, pv, level + 1) || is_null(pv)) continue;
        check_len(c, fc, cd, NULL, pv);
        if (as_leaf(c, cres, level + 1)) check_leaf(c, fc, cd, cres, pv, level + 1, NULL);
        else check_composite(c, fc, cd, cres, pv, level + 1, NULL);
    }
    return k;
}

/* The same with site rules: every piece up to the definition's. */
static size_t check_pieces_site(vctx *c, fctx *fc, const hub_v2_item_def *def,
                                const hub__pres *res, hub_slice raw, int level,
                                char scan) {
    const hub__pdt *pdt = res->pdt;
    splitter sp = split_init(raw, scan);
    size_t k;
    for (k = 1; k <= HUB_MAX_COMPONENTS; k++) {
        hub_slice pv = split_next(&sp);
        if (pv.p == NULL && k > pdt->n) break;
        if (level == LV_FIELD) fc->loc.comp = (uint16_t)k;
        else fc->loc.sub = (uint16_t)k;
        const hub_v2_item_def *cd = k <= pdt->n ? &pdt->items[k - 1] : NULL;
        const hub__srule *cr = rule_at(c, fc);
        char usage = cr && cr->usage ? cr->usage : cd ? cd->usage : 'O';
        bool empty = pv.p == NULL || pv.n == 0;
        if (empty) {
            if (usage == 'R') {
                if (cr && cr->usage == 'R')
                    add_cat(c, HUB_V2R_FIELD_MISSING, &fc->loc, fc->segi,
                            "component required by the site profile missing",
                            cd ? ": " : "", cd ? cd->name : "", NULL, NULL);
                else
                    add_cat(c, HUB_V2R_COMP_MISSING, &fc->loc, fc->segi,
                            "required component missing: ", cd ? cd->name : "?", NULL, NULL,
                            NULL);
            }
            continue;
        }
        if (usage == 'X') {
            add_lit(c, HUB_V2R_FIELD_UNSUPPORTED, &fc->loc, fc->segi,
                    "component not supported by the site profile");
            continue;
        }
        if (cd == NULL) continue;
        const hub__pres *cres = &pdt->res[k - 1];
        if (level == LV_FIELD && res->bound_res && def->table_comp == k) {
            cd = res->bound_def;
            cres = res->bound_res;
        }
        check_item(c, fc, cd, cres, pv, level + 1);
    }
    return k;
}

static void check_composite(vctx *c, fctx *fc, const hub_v2_item_def *def,
                            const hub__pres *res, hub_slice raw, int level,
                            const hub__srule *rule) {
    char sep = level_sep(c, level);
    /* The separator to look for: none when the segment has none. */
    char scan = level == LV_COMP && !c->seg_sub ? 0 : sep;
    const hub__pdt *pdt = res->pdt;
    unsigned table = def->table;
    /* A site list of codes on a coded field applies to its identifier. */
    if (rule && rule->codes) {
        hub_slice v = first_piece(raw, sep);
        if (v.n && !is_null(v) && !hub__codes_has(rule->codes, rule->ncodes, v))
            add_lit(c, HUB_V2R_TABLE_SITE, &fc->loc, fc->segi,
                    "code not allowed by the site profile");
    } else if (table && res->coded && !fc->skip_tables) {
        /* CE/CWE/CNE: checked when the coding system says it is HL7's. */
        hub_slice code, sys;
        coded_parts(raw, sep, &code, &sys);
        if (code.n && sys.n >= 3 && memcmp(sys.p, "HL7", 3) == 0 && res->table &&
            !hub__table_has(res->table, code)) {
            char num[24];
            add_cat(c, HUB_V2R_TABLE_CODED, &fc->loc, fc->segi, "code not in HL7 table ",
                    udec(num, table, 4), NULL, NULL, NULL);
        }
    }
    hub_v2_loc saved = fc->loc;
    /* Components up to the definition's, and any beyond that are present. */
    size_t k = c->site ? check_pieces_site(c, fc, def, res, raw, level, scan)
                       : check_pieces_plain(c, fc, def, res, raw, level, scan);
    if (c->site == NULL) {
        /* Past the last component present only the required ones matter. */
        for (size_t j = 0; j < pdt->nreq; j++) {
            size_t rk = pdt->req[j];
            if (rk < k || rk > HUB_MAX_COMPONENTS) continue;
            if (level == LV_FIELD) fc->loc.comp = (uint16_t)rk;
            else fc->loc.sub = (uint16_t)rk;
            add_cat(c, HUB_V2R_COMP_MISSING, &fc->loc, fc->segi, "required component missing: ",
                    pdt->items[rk - 1].name, NULL, NULL, NULL);
        }
    }
    fc->loc = saved;
}

static void check_segment(vctx *c, size_t i) {
    const hub__v2_seg *seg = &c->m->segs[i];
    hub_slice sid = seg->fields[0];
    if (sid.p == NULL || sid.n != 3) return;
    char id[4] = {sid.p[0], sid.p[1], sid.p[2], 0};
    const hub__pseg *ps = hub__profile_seg(c->p, id);
    if (ps == NULL) return; /* Z-segments and segments the version lacks */
    bool msh = hub__v2_is_header(sid);
    size_t nf = seg->nfields - 1;
    size_t upto = nf > ps->n ? nf : ps->n;
    bool extra_told = false;
    fctx fc;
    fc.seg = id;
    fc.segi = i;
    const hub_v2_loc sloc = loc_seg(c, i);
    size_t first = msh ? 3 : 1;
    /* Which delimiters the segment's values can hold: a scan of its bytes
     * saves one per value (most segments have no escape, repetition or
     * sub-component). */
    hub_slice sr = seg->raw;
    c->seg_esc = c->maybe_esc && (!c->whole || memchr(sr.p, c->d.esc, sr.n) != NULL);
    c->seg_sub = c->maybe_sub && (!c->whole || memchr(sr.p, c->d.sub, sr.n) != NULL);
    char rep = c->d.rep && (!c->whole || memchr(sr.p, c->d.rep, sr.n) != NULL) ? c->d.rep : 0;
    if (c->site == NULL && upto > nf) {
        /* Past the last field present only required fields matter. */
        upto = nf;
    }
    for (size_t f = first; f <= upto && f <= HUB_MAX_FIELDS; f++) {
        /* The field's bytes from the parser's index (hub_v2_at). */
        hub_slice raw = f < seg->nfields ? seg->fields[f] : (hub_slice){NULL, 0};
        bool empty = raw.p == NULL || raw.n == 0;
        const hub_v2_item_def *def = f <= ps->n ? &ps->items[f - 1] : NULL;
        if (def == NULL) {
            if (!empty && !extra_told) {
                fc.loc = sloc;
                fc.loc.field = (uint16_t)f;
                add_lit(c, HUB_V2R_FIELD_EXTRA, &fc.loc, i, "field beyond the segment definition");
                extra_told = true;
            }
            continue;
        }
        if (empty && def->usage != 'R' && c->site == NULL) continue; /* the common case */
        fc.loc = sloc;
        fc.loc.field = (uint16_t)f;
        fc.skip_tables = msh && (f == 9 || f == 11 || f == 12);
        const hub__srule *rule = c->site ? find_rule(c, id, (unsigned)f, 0, 0) : NULL;
        char usage = rule && rule->usage ? rule->usage : def->usage;
        if (empty) {
            if (usage == 'R') {
                if (rule && rule->usage == 'R')
                    add_cat(c, HUB_V2R_FIELD_MISSING, &fc.loc, i,
                            "field required by the site profile missing: ", def->name, NULL,
                            NULL, NULL);
                else
                    add_cat(c, HUB_V2R_FIELD_MISSING, &fc.loc, i, "required field missing: ",
                            def->name, NULL, NULL, NULL);
            }
            continue;
        }
        if (usage == 'X') {
            add_lit(c, HUB_V2R_FIELD_UNSUPPORTED, &fc.loc, i,
                    "field not supported by the site profile");
            continue;
        }
        if (is_null(raw)) continue;
        /* A field the version withdrew; a site rule's usage overrides. */
        if (usage == 'W') {
            add_lit(c, HUB_V2R_FIELD_UNSUPPORTED, &fc.loc, i, "field withdrawn in this version");
            continue;
        }
        const hub__pres *res = &ps->res[f - 1];
        splitter sp = split_init(raw, rep);
        for (size_t r = 1; r <= HUB_MAX_REPS; r++) {
            hub_slice rv = split_next(&sp);
            if (rv.p == NULL) break;
            fc.loc.rep = (uint16_t)r;
            fc.loc.comp = fc.loc.sub = 0;
            if (r == 2 && !def->repeats && rv.n > 0) {
                add_cat(c, HUB_V2R_FIELD_REPEAT, &fc.loc, i, "field does not repeat: ",
                        def->name, NULL, NULL, NULL);
            }
            if (!nothing_to_check(c, def, res, rv, LV_FIELD)) check_item(c, &fc, def, res, rv, LV_FIELD);
        }
    }
    if (c->site != NULL) return;
    for (size_t k = 0; k < ps->nreq; k++) {
        size_t f = ps->req[k];
        if (f <= upto || f < first || f > HUB_MAX_FIELDS) continue;
        fc.loc = sloc;
        fc.loc.field = (uint16_t)f;
        add_cat(c, HUB_V2R_FIELD_MISSING, &fc.loc, i, "required field missing: ",
                ps->items[f - 1].name, NULL, NULL, NULL);
    }
}

/* ---- message header ------------------------------------------------------------------ */

/* Protocol ids may be quoted in diagnoses; anything else is replaced. */
static void safe_id(char *out, size_t size, hub_slice v) {
    size_t k = 0;
    for (size_t i = 0; v.p && i < v.n && k + 1 < size && i < 20; i++) {
        char ch = v.p[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_';
        out[k++] = ok ? ch : '?';
    }
    out[k] = '\0';
}

static bool site_accepts(const hub_v2_site *site, const char *code, const char *ev,
                         bool *code_known) {
    char key[40];
    *code_known = false;
    snprintf(key, sizeof key, "%s^%s", code, ev);
    if (hub__codes_has(site->messages, site->nmessages, hub_slice_cstr(key))) return true;
    if (hub__codes_has(site->messages, site->nmessages, hub_slice_cstr(code))) return true;
    size_t cl = strlen(code);
    for (size_t i = 0; i < site->nmessages; i++)
        if (strncmp(site->messages[i], code, cl) == 0 && site->messages[i][cl] == '^')
            *code_known = true;
    return false;
}

/* Picks the structure; NULL when the message cannot be checked further. */
static const hub__pnode *check_header(vctx *c, hub_v2_findings *out) {
    const hub_v2_msh *h = hub_v2_msg_msh(c->m);
    size_t msh = 0;
    hub_v2_loc l = loc_seg(c, msh);
    char code[12], ev[12], st[24];
    safe_id(code, sizeof code, h->msg_code);
    safe_id(ev, sizeof ev, h->trigger);
    safe_id(st, sizeof st, h->structure);

    /* MSH-11: processing id (table 0103). */
    if (h->processing_id.p && h->processing_id.n > 0) {
        hub_slice pid = h->processing_id;
        if (!(pid.n == 1 && (pid.p[0] == 'P' || pid.p[0] == 'D' || pid.p[0] == 'T'))) {
            l.field = 11;
            l.comp = 1;
            add(c, HUB_V2R_PROCESSING_ID, &l, msh, "unsupported processing id (not P, D or T)");
        }
    }
    if (h->msg_code.p == NULL || h->msg_code.n == 0) return NULL; /* MSH-9: 101 */

    l = loc_seg(c, msh);
    l.field = 9;
    if (c->site && c->site->messages) {
        bool known;
        if (!site_accepts(c->site, code, ev, &known)) {
            l.comp = known ? 2 : 1;
            if (known)
                add(c, HUB_V2R_EVENT_UNKNOWN, &l, msh,
                    "event '%s' of '%s' not accepted by the site profile", ev, code);
            else
                add(c, HUB_V2R_MSG_TYPE_UNKNOWN, &l, msh,
                    "message type '%s' not accepted by the site profile", code);
            return NULL;
        }
    }
    const char *sname = NULL;
    const hub__pstruct *ps = NULL;
    /* A site structure named by MSH-9.3 or the event replaces the base one. */
    const char *base_name = hub_v2_profile_struct_for(c->p, h->msg_code, h->trigger, h->structure);
    if (c->site) {
        const char *want[3] = {st, base_name, NULL};
        char evkey[28];
        snprintf(evkey, sizeof evkey, "%s_%s", code, ev);
        want[2] = evkey;
        for (int k = 0; k < 3 && !ps; k++) {
            if (want[k] == NULL || want[k][0] == '\0') continue;
            for (size_t i = 0; i < c->site->nstructs; i++)
                if (strcmp(c->site->structs[i].name, want[k]) == 0) ps = &c->site->structs[i];
        }
    }
    if (ps) {
        out->structure = ps->name;
        return &ps->root;
    }
    if (base_name == NULL) {
        if (!hub_v2_profile_knows_code(c->p, h->msg_code)) {
            l.comp = 1;
            add(c, HUB_V2R_MSG_TYPE_UNKNOWN, &l, msh, "unsupported message type '%s' in v%s",
                code, c->p->version);
        } else if (h->structure.n > 0) {
            l.comp = 3;
            add(c, HUB_V2R_STRUCT_UNKNOWN, &l, msh, "unknown message structure '%s' in v%s", st,
                c->p->version);
        } else {
            l.comp = 2;
            add(c, HUB_V2R_EVENT_UNKNOWN, &l, msh, "unsupported event '%s' for '%s' in v%s", ev,
                code, c->p->version);
        }
        return NULL;
    }
    sname = base_name;
    if (h->structure.n > 0 && strcmp(st, sname) != 0) {
        l.comp = 3;
        add(c, HUB_V2R_STRUCT_MISMATCH, &l, msh,
            "message structure '%s' unknown in v%s or not that of the event; validated as '%s'",
            st, c->p->version, sname);
    }
    ps = hub__profile_struct(c->p, sname);
    if (ps == NULL) return NULL;
    out->structure = ps->name;
    return &ps->root;
}

/* ---- entry ------------------------------------------------------------------------------- */

/* The bytes of a parsed message after MSH-2, which hold every value the
 * validator reads; absent when m was changed or built in code. */
static hub_slice body_of(const hub_v2_msg *m) {
    hub_slice none = {NULL, 0};
    if (m->in == NULL || m->nseg == 0 || m->segs[0].nfields < 3) return none;
    for (size_t i = 0; i < m->nseg; i++)
        if (m->segs[i].dirty) return none;
    hub_slice enc = m->segs[0].fields[2];
    const char *end = m->in + m->n;
    if (enc.p == NULL || enc.p < m->in || enc.p + enc.n > end) return none;
    return (hub_slice){enc.p + enc.n, (size_t)(end - (enc.p + enc.n))};
}

/* Whether byte `ch` may occur in a value of m. */
static bool body_has(hub_slice body, char ch) {
    return body.p == NULL || memchr(body.p, ch, body.n) != NULL;
}

/* Whether a value of m may hold a byte >= 0x80. */
static bool body_high(hub_slice body) {
    if (body.p == NULL) return true;
    size_t i = 0;
    uint64_t acc = 0;
    for (; i + 8 <= body.n; i += 8) {
        uint64_t w;
        memcpy(&w, body.p + i, 8);
        acc |= w;
    }
    for (; i < body.n; i++) acc |= (unsigned char)body.p[i];
    return (acc & 0x8080808080808080ull) != 0;
}

/* ERL-2 of every segment in one pass (hub_v2_seg_seq scans from the start
 * for each): a small open-addressing map of segment ids to counts. Leaves
 * c->seq NULL when out of memory or for odd ids (then computed per call). */
static void seg_seqs(vctx *c) {
    size_t n = c->m->nseg;
    if (n == 0) return;
    uint32_t size = 64;
    while (size < 2 * n) size *= 2;
    uint32_t *seq = hub_arena_alloc(c->a, n * sizeof *seq);
    uint32_t *keys = hub_arena_calloc(c->a, size * sizeof *keys);
    uint32_t *cnt = hub_arena_alloc(c->a, size * sizeof *cnt);
    if (seq == NULL || keys == NULL || cnt == NULL) return;
    for (size_t i = 0; i < n; i++) {
        hub_slice id = c->m->segs[i].fields[0];
        if (id.p == NULL || id.n != 3) return; /* not from the parser: no map */
        uint32_t key = 1u << 24 | (uint32_t)(unsigned char)id.p[0] << 16 |
                       (uint32_t)(unsigned char)id.p[1] << 8 | (uint32_t)(unsigned char)id.p[2];
        uint32_t h = ((key * 2654435761u) >> 8) & (size - 1);
        while (keys[h] != 0 && keys[h] != key) h = (h + 1) & (size - 1);
        if (keys[h] == 0) {
            keys[h] = key;
            cnt[h] = 0;
        }
        seq[i] = ++cnt[h];
    }
    c->seq = seq;
}

static int cmp_vitem(const void *a, const void *b) {
    const vitem *x = a, *y = b;
    return (x->key > y->key) - (x->key < y->key);
}

hub_status hub_v2_validate(hub_arena *a, hub_v2_profset *s, const hub_v2_msg *m,
                           const hub_v2_validate_opts *opts,
                           hub_v2_findings *out, hub_err *err) {
    memset(out, 0, sizeof *out);
    vctx c;
    memset(&c, 0, sizeof c);
    c.a = a;
    c.m = m;
    c.site = opts ? opts->site : NULL;
    c.max = opts && opts->max ? opts->max : 1000;
    if (opts && opts->policy) c.pol = *opts->policy;
    else hub_v2_policy_default(&c.pol);
    if (c.site && !(opts && opts->policy)) hub_v2_site_policy(c.site, &c.pol);
    c.d = hub_v2_msg_delims(m);
    hub_v2_charset mcs = hub_v2_msg_charset(m);
    c.utf8 = mcs != HUB_V2_CS_LATIN1;
    /* Sets read through iconv (or ISO 2022 escapes): bytes are not
     * characters, so lengths are counted on the decoded text. */
    c.convert = (mcs >= HUB_V2_CS_8859_2 && mcs != HUB_V2_CS_WIDE) || m->iso2022;
    seg_seqs(&c);
    hub_slice body = body_of(m);
    c.maybe_esc = c.d.esc != 0 && body_has(body, c.d.esc);
    c.maybe_sub = c.d.sub != 0 && body_has(body, c.d.sub);
    c.whole = body.p != NULL;

    const hub_v2_msh *h = hub_v2_msg_msh(m);
    hub_v2_loc l = loc_seg(&c, 0);
    l.field = 12;
    char ver[16] = "";
    char vs[16];
    safe_id(vs, sizeof vs, h->version);
    int pick = hub_v2_profset_pick(s, h->version, ver, sizeof ver);
    c.vnum = hub__version_num(h->version);
    if (pick < 0) {
        if (h->version.p && h->version.n > 0)
            add(&c, HUB_V2R_VERSION_UNKNOWN, &l, 0, "unsupported version id '%s'", vs);
        /* else MSH-12 is reported missing by the field checks */
        size_t nv;
        const char *const *all = hub_v2_profset_versions(s, &nv);
        if (nv) snprintf(ver, sizeof ver, "%s", all[nv - 1]);
    }
    if (c.site && c.site->base[0]) {
        snprintf(ver, sizeof ver, "%s", c.site->base);
    } else if (pick == 1) {
        c.fallback_older = hub__version_num(hub_slice_cstr(ver)) < c.vnum;
        add(&c, HUB_V2R_VERSION_FALLBACK, &l, 0, "no profile for version '%s'; validated as %s",
            vs, ver);
    }
    if (c.vnum < 0) c.vnum = hub__version_num(hub_slice_cstr(ver));

    const hub_v2_profile *p = NULL;
    hub_err lerr;
    if (ver[0] == '\0' || hub_v2_profset_get(s, ver, &p, &lerr) != HUB_OK) {
        hub_v2_loc ml = loc_seg(&c, 0);
        /* Not a policy matter: without a profile nothing was checked. */
        char keep = c.pol.sev[HUB_V2R_VERSION_UNKNOWN];
        c.pol.sev[HUB_V2R_VERSION_UNKNOWN] = 'E';
        add(&c, HUB_V2R_VERSION_UNKNOWN, &ml, 0, "base profile for v%s cannot be loaded", ver);
        c.pol.sev[HUB_V2R_VERSION_UNKNOWN] = keep;
        if (c.n) c.items[c.n - 1].f.code = HUB_V2_E_INTERNAL;
    } else {
        c.p = p;
        out->version = p->version;
        const hub__pnode *root = check_header(&c, out);
        if (root) check_structure(&c, root);
        size_t nseg = hub_v2_seg_count(m);
        for (size_t i = 0; i < nseg && !c.nomem; i++) check_segment(&c, i);
    }

    /* The parser's warnings (charset, delimiters) and bytes that contradict
     * the declared charset. */
    if (c.pol.sev[HUB_V2R_CHARSET]) {
        size_t nw = 0;
        const hub_v2_finding *w = hub_v2_msg_warnings(m, &nw);
        hub_v2_finding *cs = NULL;
        /* Only escapes and bytes over 0x7F can contradict the charset. */
        size_t ncs = c.maybe_esc || body_high(body) ? hub_v2_charset_check(a, m, &cs, 100) : 0;
        for (size_t pass = 0; pass < 2; pass++) {
            const hub_v2_finding *arr = pass ? cs : w;
            size_t cnt = pass ? ncs : nw;
            for (size_t i = 0; arr && i < cnt; i++) {
                size_t sortseg = arr[i].loc.seg == UINT32_MAX ? 0 : arr[i].loc.seg;
                size_t before = c.n;
                add(&c, HUB_V2R_CHARSET, &arr[i].loc, sortseg, "%s",
                    arr[i].text ? arr[i].text : "charset problem");
                if (c.n > before) {
                    c.items[c.n - 1].f.code = arr[i].code ? arr[i].code : 102;
                    c.items[c.n - 1].f.offset = arr[i].offset;
                }
            }
        }
    }

    if (c.nomem) return hub_err_set(err, HUB_E_NOMEM, "validate", "out of memory");
    bool sorted = true;
    for (size_t i = 1; i < c.n && sorted; i++) sorted = c.items[i - 1].key < c.items[i].key;
    if (!sorted) qsort(c.items, c.n, sizeof *c.items, cmp_vitem);
    out->items = hub_arena_alloc(a, (c.n ? c.n : 1) * sizeof *out->items);
    if (out->items == NULL) return hub_err_set(err, HUB_E_NOMEM, "validate", "out of memory");
    for (size_t i = 0; i < c.n; i++) {
        out->items[i] = c.items[i].f;
        switch (c.items[i].f.severity) {
        case 'E': out->nerrors++; break;
        case 'W': out->nwarnings++; break;
        default: out->ninfos++; break;
        }
    }
    out->n = c.n;
    out->truncated = c.truncated;
    return HUB_OK;
}
