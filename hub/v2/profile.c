/* Conformance profiles: the generated base profiles (one JSON file per HL7
 * version, loaded on first use) and site profiles that tighten them. */
#include "profile_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hub_v2_profset {
    char dir[512];
    pthread_mutex_t mu;
    size_t nver;
    char (*vers)[16];
    const char **verp;
    hub_v2_profile **profs;
    hub_err *load_err; /* per version: why the last load failed */
    hub_arena tarena;  /* tables */
    hub__ptables tables;
    bool tables_loaded;
};

/* ---- small helpers --------------------------------------------------------- */

int hub__version_num(hub_slice v) {
    int part[3] = {0, 0, 0};
    size_t i = 0, k = 0;
    bool digit = false;
    if (v.p == NULL || v.n == 0 || v.n > 12) return -1;
    for (; i < v.n; i++) {
        char c = v.p[i];
        if (c >= '0' && c <= '9') {
            part[k] = part[k] * 10 + (c - '0');
            if (part[k] > 99) return -1;
            digit = true;
        } else if (c == '.' && digit && k < 2) {
            k++;
            digit = false;
        } else {
            return -1;
        }
    }
    if (!digit || k == 0) return -1;
    return part[0] * 10000 + part[1] * 100 + part[2];
}

static int cmp_slice_cstr(hub_slice a, const char *b) {
    size_t bn = strlen(b);
    size_t m = a.n < bn ? a.n : bn;
    int c = m ? memcmp(a.p, b, m) : 0;
    if (c) return c;
    return a.n < bn ? -1 : a.n > bn ? 1 : 0;
}

bool hub__codes_has(const char *const *codes, size_t n, hub_slice code) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_slice_cstr(code, codes[mid]);
        if (c == 0) return true;
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return false;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}
static int cmp_struct(const void *a, const void *b) {
    return strcmp(((const hub__pstruct *)a)->name, ((const hub__pstruct *)b)->name);
}
static int cmp_event(const void *a, const void *b) {
    return strcmp(((const hub__pevent *)a)->key, ((const hub__pevent *)b)->key);
}
static int cmp_seg(const void *a, const void *b) {
    return strcmp(((const hub__pseg *)a)->id, ((const hub__pseg *)b)->id);
}
static int cmp_dt(const void *a, const void *b) {
    return strcmp(((const hub__pdt *)a)->name, ((const hub__pdt *)b)->name);
}
static int cmp_table(const void *a, const void *b) {
    const hub__ptable *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Binary search over an array of structs whose first member is a name. */
#define FIND_BY_NAME(arr, n, field, key)                                     \
    do {                                                                     \
        size_t lo_ = 0, hi_ = (n);                                           \
        while (lo_ < hi_) {                                                  \
            size_t mid_ = lo_ + (hi_ - lo_) / 2;                             \
            int c_ = strcmp((key), (arr)[mid_].field);                       \
            if (c_ == 0) return &(arr)[mid_];                                \
            if (c_ < 0) hi_ = mid_;                                          \
            else lo_ = mid_ + 1;                                             \
        }                                                                    \
        return NULL;                                                         \
    } while (0)

const hub__pstruct *hub__profile_struct(const hub_v2_profile *p,
                                        const char *name) {
    FIND_BY_NAME(p->structs, p->nstructs, name, name);
}
const hub__pdt *hub__profile_dt(const hub_v2_profile *p, const char *name) {
    FIND_BY_NAME(p->dts, p->ndts, name, name);
}
static uint32_t seg_key(const char *id) {
    return (uint32_t)(unsigned char)id[0] << 16 | (uint32_t)(unsigned char)id[1] << 8 |
           (uint32_t)(unsigned char)id[2];
}
static uint32_t seg_hash(uint32_t key) { return (key * 2654435761u) >> 7; }

const hub__pseg *hub__profile_seg(const hub_v2_profile *p, const char *id) {
    if (id[0] == '\0' || id[1] == '\0' || id[2] == '\0' || id[3] != '\0') return NULL;
    if (p->seg_slots == NULL) FIND_BY_NAME(p->segs, p->nsegs, id, id);
    uint32_t key = seg_key(id);
    for (uint32_t h = seg_hash(key) & p->seg_mask;; h = (h + 1) & p->seg_mask) {
        uint16_t k = p->seg_slots[h];
        if (k == 0) return NULL;
        if (seg_key(p->segs[k - 1].id) == key) return &p->segs[k - 1];
    }
}

/* FNV-1a over a table id and a code. */
static uint32_t code_hash(hub_slice code) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < code.n; i++) h = (h ^ (unsigned char)code.p[i]) * 16777619u;
    return h;
}

bool hub__table_has(const hub__ptable *t, hub_slice code) {
    if (t->slots == NULL) return hub__codes_has(t->codes, t->n, code);
    if (code.p == NULL) code.n = 0;
    for (uint32_t h = code_hash(code) & t->mask;; h = (h + 1) & t->mask) {
        uint32_t k = t->slots[h];
        if (k == 0) return false;
        if (t->lens[k - 1] == code.n && (code.n == 0 || memcmp(t->codes[k - 1], code.p, code.n) == 0))
            return true;
    }
}

/* Builds the hash set of a sorted table; false when out of memory. */
static bool table_index(hub_arena *a, hub__ptable *t) {
    uint32_t size = 8;
    while (size < 2 * t->n + 2) size *= 2;
    t->lens = hub_arena_alloc(a, (t->n ? t->n : 1) * sizeof *t->lens);
    t->slots = hub_arena_calloc(a, size * sizeof *t->slots);
    if (t->lens == NULL || t->slots == NULL) {
        t->slots = NULL;
        return false;
    }
    t->mask = size - 1;
    for (size_t i = 0; i < t->n; i++) {
        size_t len = strlen(t->codes[i]);
        if (len > UINT16_MAX) { /* cannot be indexed: binary search */
            t->slots = NULL;
            return true;
        }
        t->lens[i] = (uint16_t)len;
        uint32_t h = code_hash(hub_slice_of(t->codes[i], len)) & t->mask;
        while (t->slots[h] != 0) h = (h + 1) & t->mask;
        t->slots[h] = (uint32_t)i + 1;
    }
    return true;
}

int hub__value_kind(const char *dt) {
    if (strcmp(dt, "DTM") == 0 || strcmp(dt, "TS") == 0) return HUB__VK_DTM;
    if (strcmp(dt, "DT") == 0) return HUB__VK_DT;
    if (strcmp(dt, "TM") == 0) return HUB__VK_TM;
    if (strcmp(dt, "NM") == 0) return HUB__VK_NM;
    if (strcmp(dt, "SI") == 0) return HUB__VK_SI;
    return HUB__VK_NONE;
}

static const hub__ptable *table_find(const hub__ptables *t, unsigned table) {
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->items[mid].id == table) return &t->items[mid];
        if (t->items[mid].id > table) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

/* Resolves what the validator needs of each item (after the arrays are
 * sorted: it keeps pointers into them). */
static bool resolve_items(hub_v2_profile *p, const hub_v2_item_def *items, size_t n,
                          hub__pres **out) {
    hub__pres *r = hub_arena_calloc(&p->arena, (n ? n : 1) * sizeof *r);
    if (r == NULL) return false;
    for (size_t i = 0; i < n; i++) {
        const char *dt = items[i].datatype;
        const hub__pdt *pdt = hub__profile_dt(p, dt);
        r[i].pdt = pdt;
        r[i].composite = pdt && pdt->n > 0 && strcmp(dt, "TS") != 0;
        r[i].coded = strcmp(dt, "CE") == 0 || strcmp(dt, "CWE") == 0 || strcmp(dt, "CNE") == 0;
        /* The leading primitive, as the validator descends to it. */
        const char *leaf = dt;
        const hub__pdt *d = pdt;
        for (int guard = 0; d && d->n > 0 && strcmp(leaf, "TS") != 0 && guard < 4; guard++) {
            leaf = d->items[0].datatype;
            d = hub__profile_dt(p, leaf);
        }
        r[i].leaf = leaf;
        r[i].leaf_check = (uint8_t)hub__value_kind(leaf);
        r[i].leaf_kind = strcmp(leaf, "ID") == 0   ? HUB__LK_ID
                         : strcmp(leaf, "IS") == 0 ? HUB__LK_IS
                                                   : HUB__LK_OTHER;
        const hub__ptable *t = items[i].table ? table_find(p->tables, items[i].table) : NULL;
        r[i].table = t && t->n > 0 ? t : NULL;
        r[i].leaf_plain = r[i].leaf_check == HUB__VK_NONE &&
                          (items[i].table == 0 || r[i].leaf_kind == HUB__LK_OTHER);
    }
    *out = r;
    return true;
}

static bool resolve_profile(hub_v2_profile *p) {
    for (size_t i = 0; i < p->nsegs; i++) {
        hub__pseg *sg = &p->segs[i];
        if (!resolve_items(p, sg->items, sg->n, &sg->res)) return false;
        sg->req = hub_arena_alloc(&p->arena, (sg->n ? sg->n : 1) * sizeof *sg->req);
        if (sg->req == NULL) return false;
        sg->nreq = 0;
        for (size_t f = 0; f < sg->n && f < UINT16_MAX; f++)
            if (sg->items[f].usage == 'R') sg->req[sg->nreq++] = (uint16_t)(f + 1);
    }
    for (size_t i = 0; i < p->ndts; i++) {
        hub__pdt *d = &p->dts[i];
        if (!resolve_items(p, d->items, d->n, &d->res)) return false;
        d->req = hub_arena_alloc(&p->arena, (d->n ? d->n : 1) * sizeof *d->req);
        if (d->req == NULL) return false;
        d->nreq = 0;
        for (size_t k = 0; k < d->n && k < UINT16_MAX; k++)
            if (d->items[k].usage == 'R') d->req[d->nreq++] = (uint16_t)(k + 1);
    }
    /* Tables bound to a component of a field (after the datatypes, whose
     * resolutions they copy). */
    for (size_t i = 0; i < p->nsegs; i++) {
        hub__pseg *sg = &p->segs[i];
        for (size_t f = 0; f < sg->n; f++) {
            const hub_v2_item_def *it = &sg->items[f];
            hub__pres *r = &sg->res[f];
            if (it->table_comp == 0 || r->pdt == NULL || it->table_comp > r->pdt->n) continue;
            hub_v2_item_def *cd = hub_arena_alloc(&p->arena, sizeof *cd);
            hub__pres *cr = hub_arena_alloc(&p->arena, sizeof *cr);
            if (cd == NULL || cr == NULL) return false;
            *cd = r->pdt->items[it->table_comp - 1];
            *cr = r->pdt->res[it->table_comp - 1];
            cd->table = it->table;
            const hub__ptable *t = table_find(p->tables, it->table);
            cr->table = t && t->n > 0 ? t : NULL;
            cr->leaf_plain = cr->leaf_check == HUB__VK_NONE && cr->leaf_kind == HUB__LK_OTHER;
            r->bound_def = cd;
            r->bound_res = cr;
        }
    }
    uint32_t size = 16;
    while (size < 4 * p->nsegs) size *= 2;
    if (p->nsegs >= UINT16_MAX) return true; /* binary search */
    p->seg_slots = hub_arena_calloc(&p->arena, size * sizeof *p->seg_slots);
    if (p->seg_slots == NULL) return false;
    p->seg_mask = size - 1;
    for (size_t i = 0; i < p->nsegs; i++) {
        uint32_t h = seg_hash(seg_key(p->segs[i].id)) & p->seg_mask;
        while (p->seg_slots[h] != 0) h = (h + 1) & p->seg_mask;
        p->seg_slots[h] = (uint16_t)(i + 1);
    }
    return true;
}
static const hub__pevent *find_event(const hub_v2_profile *p, const char *key) {
    FIND_BY_NAME(p->events, p->nevents, key, key);
}

static char *adup(hub_arena *a, const char *s) {
    return hub_arena_strndup(a, s, strlen(s));
}

/* ---- structures ---------------------------------------------------------------- */

/* "PID" "PD1?" "NTE*" "OBX+": name and cardinality. */
static hub_status parse_card(hub_arena *a, const char *s, const char *where,
                             hub__pnode *n, hub_err *err) {
    size_t len = strlen(s);
    n->min = 1;
    n->unbounded = false;
    if (len > 0) {
        char c = s[len - 1];
        if (c == '?') { n->min = 0; len--; }
        else if (c == '*') { n->min = 0; n->unbounded = true; len--; }
        else if (c == '+') { n->unbounded = true; len--; }
    }
    if (len == 0 || len > 64)
        return hub_err_set(err, HUB_E_CONFIG, where, "bad structure element");
    char *name = hub_arena_strndup(a, s, len);
    if (name == NULL) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
    n->name = name;
    return HUB_OK;
}

static bool is_seg_id(const char *s) {
    if (strlen(s) != 3) return false;
    for (int i = 0; i < 3; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
    }
    return true;
}

static hub_status parse_elem(hub_arena *a, json_t *e, const char *where,
                             int depth, hub__pnode *n, hub_err *err);

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sorted, without duplicates, into the arena; NULL when out of memory. */
static uint32_t *key_set(hub_arena *a, uint32_t *tmp, uint32_t n, uint32_t *out_n) {
    qsort(tmp, n, sizeof *tmp, cmp_u32);
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (k == 0 || tmp[k - 1] != tmp[i]) tmp[k++] = tmp[i];
    uint32_t *set = hub_arena_alloc(a, (k ? k : 1) * sizeof *set);
    if (set == NULL) return NULL;
    if (k) memcpy(set, tmp, k * sizeof *set);
    *out_n = k;
    return set;
}

/* The segment ids of a non-group node (itself or its alternatives). */
static uint32_t leaf_keys(const hub__pnode *k, uint32_t *out) {
    if (k->kind == HUB__PN_SEG) {
        out[0] = k->key;
        return 1;
    }
    for (uint32_t j = 0; j < k->nkids; j++) out[j] = k->kids[j].key;
    return k->nkids;
}

/* Fills a group's ids and starts from its children (already indexed). */
static bool index_group(hub_arena *a, hub__pnode *n) {
    uint32_t total = 0;
    for (uint32_t i = 0; i < n->nkids; i++) {
        const hub__pnode *k = &n->kids[i];
        total += k->kind == HUB__PN_GROUP ? k->nids : k->kind == HUB__PN_SEG ? 1 : k->nkids;
    }
    uint32_t *tmp = hub_malloc((total ? total : 1) * sizeof *tmp);
    if (tmp == NULL) return false;
    uint32_t m = 0;
    for (uint32_t i = 0; i < n->nkids; i++) {
        const hub__pnode *k = &n->kids[i];
        if (k->kind == HUB__PN_GROUP) {
            if (k->nids) memcpy(tmp + m, k->ids, k->nids * sizeof *tmp);
            m += k->nids;
        } else {
            m += leaf_keys(k, tmp + m);
        }
    }
    n->ids = key_set(a, tmp, m, &n->nids);
    /* As the validator's can_start: children up to the first required. */
    m = 0;
    for (uint32_t i = 0; i < n->nkids; i++) {
        const hub__pnode *k = &n->kids[i];
        if (k->kind == HUB__PN_GROUP) {
            if (k->nstarts) memcpy(tmp + m, k->starts, k->nstarts * sizeof *tmp);
            m += k->nstarts;
        } else {
            m += leaf_keys(k, tmp + m);
        }
        if (k->min >= 1) break;
    }
    n->starts = key_set(a, tmp, m, &n->nstarts);
    hub_free(tmp);
    return n->ids != NULL && n->starts != NULL;
}

static hub_status parse_items(hub_arena *a, json_t *arr, size_t from,
                              const char *where, int depth, hub__pnode *n,
                              hub_err *err) {
    size_t cnt = json_array_size(arr) - from;
    n->nkids = (uint32_t)cnt;
    n->kids = hub_arena_calloc(a, (cnt ? cnt : 1) * sizeof *n->kids);
    if (n->kids == NULL) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        hub_status rc = parse_elem(a, json_array_get(arr, from + i), where,
                                   depth + 1, &n->kids[i], err);
        if (rc != HUB_OK) return rc;
    }
    if (!index_group(a, n)) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
    return HUB_OK;
}

static hub_status parse_elem(hub_arena *a, json_t *e, const char *where,
                             int depth, hub__pnode *n, hub_err *err) {
    if (depth > 16)
        return hub_err_set(err, HUB_E_CONFIG, where, "structure nested too deep");
    memset(n, 0, sizeof *n);
    if (json_is_string(e)) {
        const char *s = json_string_value(e);
        if (s[0] == '<') {
            /* A choice: "<OBR|RXO|RXE>*". */
            const char *close = strchr(s, '>');
            if (close == NULL)
                return hub_err_set(err, HUB_E_CONFIG, where, "bad choice element");
            if (strlen(close + 1) > 1 || (close[1] && !strchr("?*+", close[1])))
                return hub_err_set(err, HUB_E_CONFIG, where, "bad choice element");
            /* parse_card reads the cardinality after a name: lend it one */
            char tmp[4] = {'x', close[1], 0, 0};
            hub_status rc = parse_card(a, tmp, where, n, err);
            if (rc != HUB_OK) return rc;
            n->kind = HUB__PN_CHOICE;
            char *alts = hub_arena_strndup(a, s + 1, (size_t)(close - s - 1));
            if (alts == NULL) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
            n->name = alts;
            uint32_t cnt = 1;
            for (const char *q = alts; *q; q++) cnt += *q == '|';
            n->kids = hub_arena_calloc(a, cnt * sizeof *n->kids);
            if (n->kids == NULL) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
            const char *q = alts;
            for (uint32_t i = 0; i < cnt; i++) {
                const char *bar = strchr(q, '|');
                size_t l = bar ? (size_t)(bar - q) : strlen(q);
                char *id = hub_arena_strndup(a, q, l);
                if (id == NULL) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
                if (!is_seg_id(id))
                    return hub_err_set(err, HUB_E_CONFIG, where, "bad segment id in choice");
                n->kids[i] = (hub__pnode){HUB__PN_SEG, 1, false, id, NULL, 0,
                                          hub__seg_key(id), 0, 0, NULL, NULL};
                q = bar ? bar + 1 : q + l;
            }
            n->nkids = cnt;
            return HUB_OK;
        }
        hub_status rc = parse_card(a, s, where, n, err);
        if (rc != HUB_OK) return rc;
        if (!is_seg_id(n->name))
            return hub_err_set(err, HUB_E_CONFIG, where, "bad segment id '%.8s'", n->name);
        n->kind = HUB__PN_SEG;
        n->key = hub__seg_key(n->name);
        return HUB_OK;
    }
    if (json_is_array(e) && json_array_size(e) >= 2 &&
        json_is_string(json_array_get(e, 0))) {
        hub_status rc = parse_card(a, json_string_value(json_array_get(e, 0)),
                                   where, n, err);
        if (rc != HUB_OK) return rc;
        n->kind = HUB__PN_GROUP;
        return parse_items(a, e, 1, where, depth, n, err);
    }
    return hub_err_set(err, HUB_E_CONFIG, where, "bad structure element");
}

hub_status hub__pstruct_parse(hub_arena *a, json_t *arr, const char *where,
                              hub__pnode *out, hub_err *err) {
    memset(out, 0, sizeof *out);
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return hub_err_set(err, HUB_E_CONFIG, where, "structure is not a list");
    out->kind = HUB__PN_GROUP;
    out->min = 1;
    out->name = "";
    return parse_items(a, arr, 0, where, 0, out, err);
}

/* The engine's node type for one of ours; children in `a`. */
static bool to_def(hub_arena *a, const hub__pnode *n, hub_v2_struct_node *d) {
    d->name = n->name;
    d->is_group = n->kind != HUB__PN_SEG;
    d->min = n->min;
    d->max = n->unbounded ? 0 : 1;
    d->children = NULL;
    d->nchildren = 0;
    if (!d->is_group) return true;
    hub_v2_struct_node *kids = hub_arena_calloc(a, (n->nkids ? n->nkids : 1) * sizeof *kids);
    if (kids == NULL) return false;
    for (uint32_t i = 0; i < n->nkids; i++) {
        if (!to_def(a, &n->kids[i], &kids[i])) return false;
        if (n->kind == HUB__PN_CHOICE) kids[i].min = 0;
    }
    d->children = kids;
    d->nchildren = n->nkids;
    return true;
}

static hub_status struct_def(hub_arena *a, hub__pstruct *ps, const char *version,
                             const char *where, hub_err *err) {
    ps->def.name = ps->name;
    ps->def.version = version;
    if (!to_def(a, &ps->root, &ps->def.root))
        return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
    ps->def.root.name = ps->name;
    return HUB_OK;
}

const hub_v2_struct_def *hub_v2_profile_struct_def(const hub_v2_profile *p,
                                                   const char *name) {
    const hub__pstruct *ps = hub__profile_struct(p, name);
    return ps ? &ps->def : NULL;
}

/* ---- field and component rows --------------------------------------------- */

/* Field: [name, datatype, usage, repeat, maxlen, table?, component?];
 * component: [name, datatype, usage, maxlen, table?]. */
static hub_status parse_row(hub_arena *a, json_t *row, bool is_field,
                            const char *where, hub_v2_item_def *d,
                            hub_err *err) {
    size_t need = is_field ? 5 : 4;
    if (!json_is_array(row) || json_array_size(row) < need)
        return hub_err_set(err, HUB_E_CONFIG, where, "bad definition row");
    json_t *name = json_array_get(row, 0), *dt = json_array_get(row, 1),
           *use = json_array_get(row, 2);
    size_t k = 3;
    json_t *rep = is_field ? json_array_get(row, k++) : NULL;
    json_t *len = json_array_get(row, k++);
    json_t *tbl = json_array_get(row, k);
    if (!json_is_string(name) || !json_is_string(dt) || !json_is_string(use) ||
        (rep && !json_is_string(rep)) || !json_is_integer(len))
        return hub_err_set(err, HUB_E_CONFIG, where, "bad definition row");
    d->name = adup(a, json_string_value(name));
    d->datatype = adup(a, json_string_value(dt));
    if (d->name == NULL || d->datatype == NULL)
        return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
    d->usage = json_string_value(use)[0];
    d->repeats = rep && strcmp(json_string_value(rep), "1") != 0;
    json_int_t l = json_integer_value(len);
    d->max_len = l > 0 && l < 100000000 ? (uint32_t)l : 0;
    d->table = 0;
    d->table_comp = 0;
    if (json_is_string(tbl)) d->table = (uint16_t)atoi(json_string_value(tbl));
    json_t *tc = is_field ? json_array_get(row, k + 1) : NULL;
    if (tc) {
        json_int_t c = json_is_integer(tc) ? json_integer_value(tc) : 0;
        if (d->table == 0 || c < 1 || c > HUB_MAX_COMPONENTS || c > UINT8_MAX)
            return hub_err_set(err, HUB_E_CONFIG, where, "bad table component");
        d->table_comp = (uint8_t)c;
    }
    return HUB_OK;
}

static hub_status parse_rows(hub_arena *a, json_t *arr, bool is_field,
                             const char *where, hub_v2_item_def **out,
                             size_t *n, hub_err *err) {
    if (!json_is_array(arr))
        return hub_err_set(err, HUB_E_CONFIG, where, "definition is not a list");
    *n = json_array_size(arr);
    *out = hub_arena_calloc(a, (*n ? *n : 1) * sizeof **out);
    if (*out == NULL) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
    for (size_t i = 0; i < *n; i++) {
        hub_status rc = parse_row(a, json_array_get(arr, i), is_field, where,
                                  &(*out)[i], err);
        if (rc != HUB_OK) return rc;
    }
    return HUB_OK;
}

/* ---- loading a base version ------------------------------------------------- */

/* Reads a whole file and parses it: json_load_file reads byte by byte,
 * which costs more than the parse. NULL with *why set: HUB_E_IO when the
 * file cannot be read, HUB_E_NOMEM, HUB_E_PARSE. */
static json_t *load_json(const char *path, hub_status *why, json_error_t *je) {
    *why = HUB_E_PARSE;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *why = HUB_E_IO;
        memset(je, 0, sizeof *je);
        return NULL;
    }
    size_t cap = 256 << 10, n = 0;
    char *buf = hub_malloc(cap);
    json_t *root = NULL;
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap || ferror(f)) break;
        if (cap >= (64u << 20)) { /* no base profile is this big */
            hub_free(buf);
            buf = NULL;
            break;
        }
        char *nb = hub_realloc(buf, cap * 2);
        if (nb == NULL) {
            hub_free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    bool bad = ferror(f);
    fclose(f);
    if (buf && !bad) root = json_loadb(buf, n, 0, je);
    else memset(je, 0, sizeof *je);
    if (bad) *why = HUB_E_IO;
    else if (buf == NULL) *why = HUB_E_NOMEM;
    hub_free(buf);
    return root;
}

static hub_status load_tables(hub_v2_profset *s, hub_err *err) {
    char path[600];
    snprintf(path, sizeof path, "%s/base/tables.json", s->dir);
    json_error_t je;
    hub_status why;
    json_t *root = load_json(path, &why, &je);
    if (root == NULL)
        return hub_err_set(err, why, "tables.json", "cannot load: line %d column %d",
                           je.line, je.column);
    hub_status rc = HUB_OK;
    if (!json_is_object(root)) {
        rc = hub_err_set(err, HUB_E_PARSE, "tables.json", "not an object");
        goto out;
    }
    size_t n = json_object_size(root), i = 0;
    s->tables.items = hub_arena_calloc(&s->tarena, (n ? n : 1) * sizeof *s->tables.items);
    if (s->tables.items == NULL) {
        rc = hub_err_set(err, HUB_E_NOMEM, "tables.json", "out of memory");
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        json_t *codes = json_object_get(val, "codes");
        if (!json_is_array(codes)) continue;
        hub__ptable *t = &s->tables.items[i];
        t->id = (uint16_t)atoi(key);
        t->n = json_array_size(codes);
        t->codes = hub_arena_alloc(&s->tarena, (t->n ? t->n : 1) * sizeof *t->codes);
        if (t->codes == NULL) {
            rc = hub_err_set(err, HUB_E_NOMEM, "tables.json", "out of memory");
            goto out;
        }
        size_t k = 0;
        for (size_t j = 0; j < t->n; j++) {
            json_t *c = json_array_get(codes, j);
            if (!json_is_string(c)) continue;
            t->codes[k] = adup(&s->tarena, json_string_value(c));
            if (t->codes[k] == NULL) {
                rc = hub_err_set(err, HUB_E_NOMEM, "tables.json", "out of memory");
                goto out;
            }
            k++;
        }
        t->n = k;
        qsort(t->codes, t->n, sizeof *t->codes, cmp_str);
        if (!table_index(&s->tarena, t)) {
            rc = hub_err_set(err, HUB_E_NOMEM, "tables.json", "out of memory");
            goto out;
        }
        i++;
    }
    s->tables.n = i;
    qsort(s->tables.items, s->tables.n, sizeof *s->tables.items, cmp_table);
    s->tables_loaded = true;
out:
    json_decref(root);
    return rc;
}

/* A version's "tables" section: {"0085": {"name": "...", "added": [codes]}},
 * codes the version adds to the set's tables (or whole tables it
 * introduces). The profile gets its own table list: the set's entries,
 * shared, with those tables replaced by merged copies in its arena. */
static hub_status own_tables(hub_v2_profile *p, json_t *tj, const char *where,
                             hub_err *err) {
    const hub__ptables *sh = p->tables;
    hub_arena *a = &p->arena;
    if (!json_is_object(tj)) return hub_err_set(err, HUB_E_PARSE, where, "bad tables section");
    size_t extra = json_object_size(tj);
    p->own.items = hub_arena_calloc(a, (sh->n + extra + 1) * sizeof *p->own.items);
    if (p->own.items == NULL) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
    memcpy(p->own.items, sh->items, sh->n * sizeof *sh->items);
    size_t n = sh->n;
    const char *key;
    json_t *val;
    json_object_foreach(tj, key, val) {
        json_t *add = json_object_get(val, "added");
        int id = atoi(key);
        if (!json_is_array(add) || id <= 0 || id > UINT16_MAX)
            return hub_err_set(err, HUB_E_PARSE, where, "bad table '%.8s'", key);
        hub__ptable *t = NULL;
        for (size_t i = 0; i < sh->n; i++)
            if (p->own.items[i].id == id) t = &p->own.items[i];
        if (t == NULL) {
            t = &p->own.items[n++];
            memset(t, 0, sizeof *t);
            t->id = (uint16_t)id;
        }
        size_t na = json_array_size(add);
        const char **codes = hub_arena_alloc(a, (t->n + na + 1) * sizeof *codes);
        if (codes == NULL) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
        if (t->n) memcpy(codes, t->codes, t->n * sizeof *codes);
        size_t k = t->n;
        for (size_t j = 0; j < na; j++) {
            json_t *c = json_array_get(add, j);
            if (!json_is_string(c))
                return hub_err_set(err, HUB_E_PARSE, where, "bad code in table '%.8s'", key);
            if (hub__codes_has(t->codes, t->n, hub_slice_cstr(json_string_value(c))))
                continue;
            codes[k] = adup(a, json_string_value(c));
            if (codes[k] == NULL) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
            k++;
        }
        qsort(codes, k, sizeof *codes, cmp_str);
        t->codes = codes;
        t->n = k;
        t->slots = NULL;
        if (!table_index(a, t)) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
    }
    p->own.n = n;
    qsort(p->own.items, n, sizeof *p->own.items, cmp_table);
    p->tables = &p->own;
    return HUB_OK;
}

static hub_status load_version(hub_v2_profset *s, const char *ver,
                               hub_v2_profile **out, hub_err *err) {
    char path[600], where[48];
    snprintf(path, sizeof path, "%s/base/v%s.json", s->dir, ver);
    snprintf(where, sizeof where, "v%s.json", ver);
    if (!s->tables_loaded) {
        hub_status rc = load_tables(s, err);
        if (rc != HUB_OK) return rc;
    }
    json_error_t je;
    hub_status why;
    json_t *root = load_json(path, &why, &je);
    if (root == NULL)
        return hub_err_set(err, why, where, "cannot load: line %d column %d", je.line,
                           je.column);
    hub_v2_profile *p = hub_calloc(1, sizeof *p);
    if (p == NULL) {
        json_decref(root);
        return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
    }
    hub_arena_init(&p->arena, 64 << 10);
    snprintf(p->version, sizeof p->version, "%s", ver);
    p->tables = &s->tables;
    hub_status rc = HUB_OK;
    hub_arena *a = &p->arena;
    json_t *events = json_object_get(root, "events");
    json_t *structs = json_object_get(root, "structures");
    json_t *segs = json_object_get(root, "segments");
    json_t *dts = json_object_get(root, "datatypes");
    if (!json_is_object(events) || !json_is_object(structs) ||
        !json_is_object(segs) || !json_is_object(dts)) {
        rc = hub_err_set(err, HUB_E_PARSE, where, "missing section");
        goto fail;
    }
    const char *key;
    json_t *val;
    size_t i;

    p->nevents = json_object_size(events);
    p->events = hub_arena_calloc(a, (p->nevents + 1) * sizeof *p->events);
    p->nstructs = json_object_size(structs);
    p->structs = hub_arena_calloc(a, (p->nstructs + 1) * sizeof *p->structs);
    p->nsegs = json_object_size(segs);
    p->segs = hub_arena_calloc(a, (p->nsegs + 1) * sizeof *p->segs);
    p->ndts = json_object_size(dts);
    p->dts = hub_arena_calloc(a, (p->ndts + 1) * sizeof *p->dts);
    if (!p->events || !p->structs || !p->segs || !p->dts) {
        rc = hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
        goto fail;
    }
    i = 0;
    json_object_foreach(events, key, val) {
        if (!json_is_string(val)) {
            rc = hub_err_set(err, HUB_E_PARSE, where, "bad event entry");
            goto fail;
        }
        p->events[i].key = adup(a, key);
        p->events[i].structure = adup(a, json_string_value(val));
        if (!p->events[i].key || !p->events[i].structure) {
            rc = hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
            goto fail;
        }
        i++;
    }
    i = 0;
    json_object_foreach(structs, key, val) {
        p->structs[i].name = adup(a, key);
        if (p->structs[i].name == NULL) {
            rc = hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
            goto fail;
        }
        rc = hub__pstruct_parse(a, val, where, &p->structs[i].root, err);
        if (rc == HUB_OK) rc = struct_def(a, &p->structs[i], p->version, where, err);
        if (rc != HUB_OK) goto fail;
        i++;
    }
    i = 0;
    json_object_foreach(segs, key, val) {
        if (!is_seg_id(key)) {
            rc = hub_err_set(err, HUB_E_PARSE, where, "bad segment id");
            goto fail;
        }
        memcpy(p->segs[i].id, key, 4);
        rc = parse_rows(a, val, true, where, &p->segs[i].items, &p->segs[i].n, err);
        if (rc != HUB_OK) goto fail;
        i++;
    }
    i = 0;
    json_object_foreach(dts, key, val) {
        p->dts[i].name = adup(a, key);
        if (p->dts[i].name == NULL) {
            rc = hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
            goto fail;
        }
        rc = parse_rows(a, val, false, where, &p->dts[i].items, &p->dts[i].n, err);
        if (rc != HUB_OK) goto fail;
        i++;
    }
    json_t *tj = json_object_get(root, "tables");
    if (tj && (rc = own_tables(p, tj, where, err)) != HUB_OK) goto fail;
    qsort(p->events, p->nevents, sizeof *p->events, cmp_event);
    qsort(p->structs, p->nstructs, sizeof *p->structs, cmp_struct);
    qsort(p->segs, p->nsegs, sizeof *p->segs, cmp_seg);
    qsort(p->dts, p->ndts, sizeof *p->dts, cmp_dt);
    if (!resolve_profile(p)) {
        rc = hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
        goto fail;
    }
    json_decref(root);
    *out = p;
    return HUB_OK;
fail:
    if (rc == HUB_E_CONFIG) rc = err->code = HUB_E_PARSE;
    json_decref(root);
    hub_arena_release(&p->arena);
    hub_free(p);
    return rc;
}

/* ---- profile set --------------------------------------------------------------- */

hub_status hub_v2_profset_open(const char *dir, hub_v2_profset **out,
                               hub_err *err) {
    *out = NULL;
    if (strlen(dir) >= 480)
        return hub_err_set(err, HUB_E_ARG, "conformance", "directory name too long");
    char path[600];
    snprintf(path, sizeof path, "%s/base/versions.txt", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return hub_err_set(err, HUB_E_IO, "versions.txt", "cannot open: %s",
                           strerror(errno));
    hub_v2_profset *s = hub_calloc(1, sizeof *s);
    if (s == NULL) {
        fclose(f);
        return hub_err_set(err, HUB_E_NOMEM, "profiles", "out of memory");
    }
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    pthread_mutex_init(&s->mu, NULL);
    hub_arena_init(&s->tarena, 64 << 10);
    char line[64];
    size_t cap = 0;
    hub_status rc = HUB_OK;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') continue;
        if (hub__version_num(hub_slice_cstr(line)) < 0 || strlen(line) >= 16) {
            rc = hub_err_set(err, HUB_E_PARSE, "versions.txt", "bad version line");
            break;
        }
        if (s->nver == cap) {
            size_t nc = cap ? cap * 2 : 16;
            void *nv = hub_realloc(s->vers, nc * sizeof *s->vers);
            if (nv == NULL) {
                rc = hub_err_set(err, HUB_E_NOMEM, "profiles", "out of memory");
                break;
            }
            s->vers = nv;
            cap = nc;
        }
        /* The length was checked above; memcpy keeps -Wformat-truncation
         * quiet at every optimisation level. */
        memcpy(s->vers[s->nver++], line, strlen(line) + 1);
    }
    fclose(f);
    if (rc == HUB_OK) {
        s->verp = hub_calloc(s->nver + 1, sizeof *s->verp);
        s->profs = hub_calloc(s->nver + 1, sizeof *s->profs);
        s->load_err = hub_calloc(s->nver + 1, sizeof *s->load_err);
        if (!s->verp || !s->profs || !s->load_err)
            rc = hub_err_set(err, HUB_E_NOMEM, "profiles", "out of memory");
        else
            for (size_t i = 0; i < s->nver; i++) s->verp[i] = s->vers[i];
    }
    if (rc != HUB_OK) {
        hub_v2_profset_close(s);
        return rc;
    }
    *out = s;
    return HUB_OK;
}

void hub_v2_profset_close(hub_v2_profset *s) {
    if (s == NULL) return;
    for (size_t i = 0; s->profs && i < s->nver; i++) {
        if (s->profs[i]) {
            hub_arena_release(&s->profs[i]->arena);
            hub_free(s->profs[i]);
        }
    }
    hub_free(s->profs);
    hub_free(s->load_err);
    hub_free(s->verp);
    hub_free(s->vers);
    hub_arena_release(&s->tarena);
    pthread_mutex_destroy(&s->mu);
    hub_free(s);
}

hub_status hub_v2_profset_get(hub_v2_profset *s, const char *version,
                              const hub_v2_profile **out, hub_err *err) {
    *out = NULL;
    size_t i;
    for (i = 0; i < s->nver; i++)
        if (strcmp(s->vers[i], version) == 0) break;
    if (i == s->nver)
        return hub_err_set(err, HUB_E_NOTFOUND, "MSH-12",
                           "no base profile for version '%.12s'", version);
    pthread_mutex_lock(&s->mu);
    hub_status rc = HUB_OK;
    if (s->profs[i] == NULL) {
        /* Loaded once; a failed load is retried on the next call. */
        rc = load_version(s, s->vers[i], &s->profs[i], err);
    }
    if (rc == HUB_OK) *out = s->profs[i];
    pthread_mutex_unlock(&s->mu);
    return rc;
}

const char *const *hub_v2_profset_versions(const hub_v2_profset *s, size_t *n) {
    *n = s->nver;
    return s->verp;
}

int hub_v2_profset_pick(const hub_v2_profset *s, hub_slice declared, char *out,
                        size_t size) {
    int want = hub__version_num(declared);
    if (want < 20000 || want >= 30000 || s->nver == 0) return -1;
    int best_lo = -1, best_hi = -1; /* newest <= want, oldest >= want */
    size_t ilo = 0, ihi = 0;
    for (size_t i = 0; i < s->nver; i++) {
        int v = hub__version_num(hub_slice_cstr(s->vers[i]));
        if (v == want) {
            snprintf(out, size, "%s", s->vers[i]);
            return 0;
        }
        if (v < want && v > best_lo) { best_lo = v; ilo = i; }
        if (v > want && (best_hi < 0 || v < best_hi)) { best_hi = v; ihi = i; }
    }
    /* A version between two shipped ones (2.3.2?) or newer than all: the
     * nearest older one; older than all: the oldest. */
    snprintf(out, size, "%s", best_lo >= 0 ? s->vers[ilo] : s->vers[ihi]);
    return 1;
}

/* ---- profile queries ------------------------------------------------------------- */

const char *hub_v2_profile_version(const hub_v2_profile *p) { return p->version; }
size_t hub_v2_profile_nstructs(const hub_v2_profile *p) { return p->nstructs; }

static void slice_to(char *buf, size_t size, hub_slice s) {
    size_t n = s.p ? (s.n < size - 1 ? s.n : size - 1) : 0;
    if (n) memcpy(buf, s.p, n);
    buf[n] = '\0';
}

const char *hub_v2_profile_struct_for(const hub_v2_profile *p, hub_slice code,
                                      hub_slice trigger, hub_slice structure) {
    char key[32];
    if (structure.p && structure.n > 0 && structure.n < 16) {
        slice_to(key, sizeof key, structure);
        const hub__pstruct *st = hub__profile_struct(p, key);
        if (st) return st->name;
    }
    if (code.p == NULL || code.n == 0 || code.n > 8) return NULL;
    if (trigger.p && trigger.n > 0 && trigger.n <= 8) {
        char c[12], t[12];
        slice_to(c, sizeof c, code);
        slice_to(t, sizeof t, trigger);
        snprintf(key, sizeof key, "%s^%s", c, t);
        const hub__pevent *e = find_event(p, key);
        if (e) return e->structure;
    }
    slice_to(key, sizeof key, code);
    const hub__pevent *e = find_event(p, key);
    return e ? e->structure : NULL;
}

bool hub_v2_profile_knows_code(const hub_v2_profile *p, hub_slice code) {
    if (code.p == NULL || code.n == 0 || code.n > 8) return false;
    for (size_t i = 0; i < p->nevents; i++) {
        const char *k = p->events[i].key;
        if (strncmp(k, code.p, code.n) == 0 && (k[code.n] == '^' || k[code.n] == '\0'))
            return true;
    }
    return false;
}

const hub_v2_item_def *hub_v2_profile_field(const hub_v2_profile *p,
                                            const char *seg_id, size_t field) {
    const hub__pseg *s = hub__profile_seg(p, seg_id);
    if (s == NULL || field == 0 || field > s->n) return NULL;
    return &s->items[field - 1];
}

const hub_v2_item_def *hub_v2_profile_comp(const hub_v2_profile *p,
                                           const char *dt, size_t comp) {
    const hub__pdt *d = hub__profile_dt(p, dt);
    if (d == NULL || comp == 0 || comp > d->n) return NULL;
    return &d->items[comp - 1];
}

int hub_v2_profile_table_has(const hub_v2_profile *p, unsigned table,
                             hub_slice code) {
    const hub__ptables *t = p->tables;
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->items[mid].id == table) {
            const hub__ptable *tb = &t->items[mid];
            if (tb->n == 0) return -1;
            return hub__table_has(tb, code) ? 1 : 0;
        }
        if (t->items[mid].id > table) hi = mid;
        else lo = mid + 1;
    }
    return -1;
}

/* ---- policy ----------------------------------------------------------------------- */

static const struct {
    const char *name;
    int code;
    char sev;
} rules[HUB_V2R__COUNT] = {
#define HUB__V2R_ROW(id, name, code, sev) {name, code, sev},
    HUB_V2_RULE_LIST(HUB__V2R_ROW)
#undef HUB__V2R_ROW
};

void hub_v2_policy_default(hub_v2_policy *p) {
    for (int i = 0; i < HUB_V2R__COUNT; i++) p->sev[i] = rules[i].sev;
}

const char *hub_v2_rule_name(hub_v2_rule r) {
    if ((int)r < 0 || r >= HUB_V2R__COUNT) return NULL;
    return rules[r].name;
}

static int sev_parse(const char *s) {
    if (strcmp(s, "error") == 0 || strcmp(s, "E") == 0) return 'E';
    if (strcmp(s, "warning") == 0 || strcmp(s, "W") == 0) return 'W';
    if (strcmp(s, "info") == 0 || strcmp(s, "I") == 0) return 'I';
    if (strcmp(s, "off") == 0) return 0;
    return -1;
}

static int rule_find(const char *name) {
    for (int i = 0; i < HUB_V2R__COUNT; i++)
        if (strcmp(rules[i].name, name) == 0) return i;
    return -1;
}

hub_status hub_v2_policy_set(hub_v2_policy *p, const char *name,
                             const char *sev, hub_err *err) {
    int r = rule_find(name);
    if (r < 0) return hub_err_set(err, HUB_E_ARG, "policy", "unknown rule '%.40s'", name);
    int s = sev_parse(sev);
    if (s < 0)
        return hub_err_set(err, HUB_E_ARG, "severity",
                           "'%.20s' is not error, warning, info or off", sev);
    p->sev[r] = (char)s;
    return HUB_OK;
}

/* ---- site profiles ------------------------------------------------------------------ */

/* "PID-3", "PID-3.4", "PID-3.4.1". */
static bool parse_rule_key(const char *k, hub__srule *r) {
    if (strlen(k) < 5 || k[3] != '-') return false;
    char id[4] = {k[0], k[1], k[2], 0};
    if (!is_seg_id(id)) return false;
    memcpy(r->seg, id, 4);
    unsigned v[3] = {0, 0, 0};
    int n = 0;
    const char *q = k + 4;
    while (n < 3) {
        if (*q < '0' || *q > '9') return false;
        unsigned x = 0;
        while (*q >= '0' && *q <= '9') {
            x = x * 10 + (unsigned)(*q++ - '0');
            if (x > HUB_MAX_FIELDS) return false;
        }
        if (x == 0) return false;
        v[n++] = x;
        if (*q == '\0') break;
        if (*q != '.') return false;
        q++;
    }
    if (*q != '\0') return false;
    r->field = (uint16_t)v[0];
    r->comp = (uint16_t)v[1];
    r->sub = (uint16_t)v[2];
    return true;
}

static hub_status str_list(hub_arena *a, json_t *arr, const char *where,
                           const char ***out, size_t *n, hub_err *err) {
    if (!json_is_array(arr))
        return hub_err_set(err, HUB_E_CONFIG, where, "expected a list of strings");
    *n = json_array_size(arr);
    *out = hub_arena_calloc(a, (*n ? *n : 1) * sizeof **out);
    if (*out == NULL) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
    for (size_t i = 0; i < *n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v))
            return hub_err_set(err, HUB_E_CONFIG, where, "expected a list of strings");
        (*out)[i] = adup(a, json_string_value(v));
        if ((*out)[i] == NULL) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
    }
    qsort(*out, *n, sizeof **out, cmp_str);
    return HUB_OK;
}

static hub_status site_from_json(hub_v2_profset *s, json_t *root,
                                 hub_v2_site *site, hub_err *err) {
    hub_arena *a = &site->arena;
    char where[48];
    if (!json_is_object(root))
        return hub_err_set(err, HUB_E_CONFIG, "profile", "not a JSON object");
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "name") == 0 || strcmp(key, "description") == 0 ||
            strcmp(key, "base") == 0 || strcmp(key, "z_segments") == 0 ||
            strcmp(key, "messages") == 0 || strcmp(key, "fields") == 0 ||
            strcmp(key, "structures") == 0 || strcmp(key, "policy") == 0)
            continue;
        return hub_err_set(err, HUB_E_CONFIG, "profile", "unknown key '%.40s'", key);
    }
    json_t *name = json_object_get(root, "name");
    if (!json_is_string(name) || json_string_length(name) == 0 ||
        json_string_length(name) > 64)
        return hub_err_set(err, HUB_E_CONFIG, "name", "missing or over 64 characters");
    site->name = adup(a, json_string_value(name));
    if (site->name == NULL) return hub_err_set(err, HUB_E_NOMEM, "name", "out of memory");

    json_t *base = json_object_get(root, "base");
    if (base) {
        if (!json_is_string(base) || json_string_length(base) >= sizeof site->base)
            return hub_err_set(err, HUB_E_CONFIG, "base", "expected a version such as \"2.5.1\"");
        const char *bv = json_string_value(base);
        size_t nv;
        const char *const *vs = hub_v2_profset_versions(s, &nv);
        size_t i;
        for (i = 0; i < nv; i++)
            if (strcmp(vs[i], bv) == 0) break;
        if (i == nv)
            return hub_err_set(err, HUB_E_NOTFOUND, "base", "no base profile for version '%.12s'", bv);
        snprintf(site->base, sizeof site->base, "%s", bv);
    }

    json_t *z = json_object_get(root, "z_segments");
    site->z_mode = HUB__Z_ANYWHERE;
    if (json_is_string(z)) {
        const char *zs = json_string_value(z);
        if (strcmp(zs, "anywhere") == 0) site->z_mode = HUB__Z_ANYWHERE;
        else if (strcmp(zs, "declared") == 0) site->z_mode = HUB__Z_DECLARED;
        else
            return hub_err_set(err, HUB_E_CONFIG, "z_segments",
                               "expected \"anywhere\", \"declared\" or a list of ids");
    } else if (json_is_array(z)) {
        site->z_mode = HUB__Z_LISTED;
        hub_status rc = str_list(a, z, "z_segments", &site->z_ids, &site->nz, err);
        if (rc != HUB_OK) return rc;
        for (size_t i = 0; i < site->nz; i++)
            if (!is_seg_id(site->z_ids[i]) || site->z_ids[i][0] != 'Z')
                return hub_err_set(err, HUB_E_CONFIG, "z_segments", "'%.8s' is not a Z-segment id",
                                   site->z_ids[i]);
    } else if (z) {
        return hub_err_set(err, HUB_E_CONFIG, "z_segments",
                           "expected \"anywhere\", \"declared\" or a list of ids");
    }

    json_t *msgs = json_object_get(root, "messages");
    if (msgs) {
        hub_status rc = str_list(a, msgs, "messages", &site->messages, &site->nmessages, err);
        if (rc != HUB_OK) return rc;
    }

    json_t *structs = json_object_get(root, "structures");
    if (structs) {
        if (!json_is_object(structs))
            return hub_err_set(err, HUB_E_CONFIG, "structures", "expected an object");
        site->nstructs = json_object_size(structs);
        site->structs = hub_arena_calloc(a, (site->nstructs + 1) * sizeof *site->structs);
        if (site->structs == NULL) return hub_err_set(err, HUB_E_NOMEM, "structures", "out of memory");
        size_t i = 0;
        json_object_foreach(structs, key, val) {
            snprintf(where, sizeof where, "structures.%.30s", key);
            site->structs[i].name = adup(a, key);
            if (site->structs[i].name == NULL) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
            hub_status rc = hub__pstruct_parse(a, val, where, &site->structs[i].root, err);
            if (rc == HUB_OK) rc = struct_def(a, &site->structs[i], NULL, where, err);
            if (rc != HUB_OK) return rc;
            i++;
        }
        qsort(site->structs, site->nstructs, sizeof *site->structs, cmp_struct);
    }

    json_t *fields = json_object_get(root, "fields");
    if (fields) {
        if (!json_is_object(fields))
            return hub_err_set(err, HUB_E_CONFIG, "fields", "expected an object");
        site->nrules = json_object_size(fields);
        site->rules = hub_arena_calloc(a, (site->nrules + 1) * sizeof *site->rules);
        if (site->rules == NULL) return hub_err_set(err, HUB_E_NOMEM, "fields", "out of memory");
        size_t i = 0;
        json_object_foreach(fields, key, val) {
            snprintf(where, sizeof where, "fields.%.30s", key);
            hub__srule *r = &site->rules[i++];
            if (!parse_rule_key(key, r))
                return hub_err_set(err, HUB_E_CONFIG, where, "expected a path such as PID-3.4");
            if (!json_is_object(val))
                return hub_err_set(err, HUB_E_CONFIG, where, "expected an object");
            const char *k2;
            json_t *v2;
            json_object_foreach(val, k2, v2) {
                if (strcmp(k2, "usage") == 0) {
                    const char *u = json_is_string(v2) ? json_string_value(v2) : "";
                    if (strlen(u) != 1 || !strchr("RXO", u[0]))
                        return hub_err_set(err, HUB_E_CONFIG, where, "usage must be R, O or X");
                    r->usage = u[0];
                } else if (strcmp(k2, "max_len") == 0) {
                    if (!json_is_integer(v2) || json_integer_value(v2) < 1 ||
                        json_integer_value(v2) > (json_int_t)HUB_MAX_FIELD)
                        return hub_err_set(err, HUB_E_CONFIG, where, "max_len must be a positive integer");
                    r->max_len = (uint32_t)json_integer_value(v2);
                } else if (strcmp(k2, "codes") == 0) {
                    hub_status rc = str_list(a, v2, where, &r->codes, &r->ncodes, err);
                    if (rc != HUB_OK) return rc;
                } else {
                    return hub_err_set(err, HUB_E_CONFIG, where, "unknown key '%.20s'", k2);
                }
            }
        }
    }

    json_t *pol = json_object_get(root, "policy");
    if (pol) {
        if (!json_is_object(pol))
            return hub_err_set(err, HUB_E_CONFIG, "policy", "expected an object");
        json_object_foreach(pol, key, val) {
            snprintf(where, sizeof where, "policy.%.30s", key);
            int r = rule_find(key);
            if (r < 0) return hub_err_set(err, HUB_E_CONFIG, where, "unknown rule");
            int sv = json_is_string(val) ? sev_parse(json_string_value(val)) : -1;
            if (sv < 0)
                return hub_err_set(err, HUB_E_CONFIG, where, "expected error, warning, info or off");
            site->pol_sev[r] = (char)sv;
            site->pol_set[r] = true;
        }
    }
    return HUB_OK;
}

hub_status hub_v2_site_parse(hub_v2_profset *s, const char *p, size_t n,
                             const char *where, hub_v2_site **out,
                             hub_err *err) {
    *out = NULL;
    if (n > HUB_MAX_CONFIG_FILE)
        return hub_err_set(err, HUB_E_LIMIT, where, "profile over %u bytes",
                           HUB_MAX_CONFIG_FILE);
    json_error_t je;
    json_t *root = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return hub_err_set(err, HUB_E_PARSE, where, "bad JSON at line %d column %d",
                           je.line, je.column);
    hub_v2_site *site = hub_calloc(1, sizeof *site);
    if (site == NULL) {
        json_decref(root);
        return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
    }
    hub_arena_init(&site->arena, 8192);
    hub_status rc = site_from_json(s, root, site, err);
    json_decref(root);
    if (rc != HUB_OK) {
        hub_v2_site_free(site);
        return rc;
    }
    *out = site;
    return HUB_OK;
}

hub_status hub_v2_site_load(hub_v2_profset *s, const char *path,
                            hub_v2_site **out, hub_err *err) {
    *out = NULL;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return hub_err_set(err, HUB_E_IO, base, "cannot open: %s", strerror(errno));
    char *buf = hub_malloc(HUB_MAX_CONFIG_FILE + 1);
    if (buf == NULL) {
        fclose(f);
        return hub_err_set(err, HUB_E_NOMEM, base, "out of memory");
    }
    size_t n = fread(buf, 1, HUB_MAX_CONFIG_FILE + 1, f);
    bool bad = ferror(f);
    fclose(f);
    hub_status rc;
    if (bad) rc = hub_err_set(err, HUB_E_IO, base, "read failed");
    else rc = hub_v2_site_parse(s, buf, n, base, out, err);
    hub_free(buf);
    return rc;
}

void hub_v2_site_free(hub_v2_site *site) {
    if (site == NULL) return;
    hub_arena_release(&site->arena);
    hub_free(site);
}

void hub_v2_site_policy(const hub_v2_site *site, hub_v2_policy *p) {
    for (int r = 0; r < HUB_V2R__COUNT; r++)
        if (site->pol_set[r]) p->sev[r] = site->pol_sev[r];
}

const hub_v2_struct_def *hub_v2_site_struct_def(const hub_v2_site *site,
                                                const char *name) {
    for (size_t i = 0; i < site->nstructs; i++)
        if (strcmp(site->structs[i].name, name) == 0) return &site->structs[i].def;
    return NULL;
}

const char *hub_v2_site_name(const hub_v2_site *site) { return site->name; }
