/* The FHIR element tables: loading conformance/fhir/r4/ (the .tsv files) and lookups.
 *
 * Start-up matters, so loading is one pass per file: each file is read into
 * one heap block and tokenized in place (tabs and newlines become NULs), so
 * every string of the tables lives in three blocks and nothing is copied.
 * Lookups go through open-addressing hash tables built at load time; choice
 * elements get one entry per type ("valueQuantity", "valueString", ...) so
 * that resolving a JSON property name is a single probe. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILE (16u << 20)
#define MAX_FIELDS 4096

enum { F_TYPES, F_ELEMS, F_VS };
static const char *const FILES[3] = {"types.tsv", "elements.tsv", "valuesets.tsv"};

/* ---- hashing --------------------------------------------------------------- */

#define FNV_INIT 2166136261u
static inline uint32_t fnv(uint32_t h, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 16777619u;
    }
    return h;
}
static inline uint32_t fnv_byte(uint32_t h, unsigned char c) {
    return (h ^ c) * 16777619u;
}
static inline uint32_t mix(uint32_t h, uint32_t v) {
    h ^= v * 0x9E3779B1u;
    h ^= h >> 15;
    h *= 0x85EBCA77u;
    h ^= h >> 13;
    return h;
}

/* Open addressing at a load of at most 3/4. */
static uint32_t table_size(size_t n) {
    uint32_t s = 64;
    while ((size_t)s * 3 < n * 4) s <<= 1;
    return s;
}

/* Fresh memory costs a page fault per page on first touch; asking the
 * kernel to populate a large table in one call is cheaper (Linux 5.14+;
 * elsewhere a no-op). */
static void prefault(void *p, size_t n) {
#ifdef MADV_POPULATE_WRITE
    uintptr_t pg = 4096, a = ((uintptr_t)p + pg - 1) & ~(pg - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~(pg - 1);
    if (e > a + 16 * pg) (void)madvise((void *)a, e - a, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)n;
#endif
}

static bool streq_n(const char *s, const char *p, size_t n) {
    return strncmp(s, p, n) == 0 && s[n] == '\0';
}

/* ---- lookups ----------------------------------------------------------------- */

const hub__fhir_type *hub__fhir_type_get(const hub_fhir_defs *d, const char *name,
                                         size_t n) {
    uint32_t h = fnv(FNV_INIT, name, n);
    for (uint32_t i = h & d->type_mask;; i = (i + 1) & d->type_mask) {
        uint32_t v = d->type_slots[i];
        if (v == 0) return NULL;
        const hub__fhir_type *t = &d->types[v - 1];
        if (streq_n(t->name, name, n)) return t;
    }
}

uint32_t hub__fhir_group_get(const hub_fhir_defs *d, const char *key, size_t n) {
    uint32_t h = fnv(FNV_INIT, key, n);
    for (uint32_t i = h & d->group_mask;; i = (i + 1) & d->group_mask) {
        uint32_t v = d->group_slots[i];
        if (v == 0) return HUB__FHIR_NONE;
        const hub__fhir_group *g = &d->groups[v - 1];
        if (g->keylen == n && memcmp(g->key, key, n) == 0) return v - 1;
    }
}

/* Does `name` spell stem + the type with its first letter upper-cased? */
static bool choice_name_eq(const char *stem, const char *type, const char *p,
                           size_t n) {
    size_t sl = strlen(stem), tl = strlen(type);
    if (sl + tl != n || memcmp(stem, p, sl) != 0) return false;
    char c = type[0];
    if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
    return p[sl] == c && memcmp(type + 1, p + sl + 1, tl - 1) == 0;
}

static uint32_t child_hash(uint32_t g, const char *p, size_t n) {
    return mix(fnv(FNV_INIT, p, n), g);
}

uint32_t hub__fhir_child_get(const hub_fhir_defs *d, uint32_t g, const char *p,
                             size_t n, uint32_t *tidx) {
    uint32_t h = child_hash(g, p, n);
    uint16_t hh = (uint16_t)(h >> 16);
    for (uint32_t i = h & d->child_mask;; i = (i + 1) & d->child_mask) {
        const hub__fhir_child_slot *s = &d->child_slots[i];
        if (s->elem == HUB__FHIR_SLOT_EMPTY) return HUB__FHIR_NONE;
        if (s->hash != hh || s->group != g) continue;
        const hub_fhir_elem *e = &d->elems[s->elem];
        bool eq = e->choice ? choice_name_eq(e->name, e->types[s->tidx], p, n)
                            : streq_n(e->name, p, n);
        if (eq) {
            if (tidx) *tidx = s->tidx;
            return s->elem;
        }
    }
}

/* ---- public lookups -------------------------------------------------------------- */

const char *hub_fhir_defs_version(const hub_fhir_defs *d) { return d->version; }

size_t hub_fhir_resource_count(const hub_fhir_defs *d) { return d->nresources; }

const char *hub_fhir_resource_name(const hub_fhir_defs *d, size_t i) {
    return i < d->nresources ? d->resources[i] : NULL;
}

bool hub_fhir_is_resource(const hub_fhir_defs *d, const char *type) {
    const hub__fhir_type *t = hub__fhir_type_get(d, type, strlen(type));
    return t && t->kind == HUB__FK_RESOURCE;
}

bool hub_fhir_is_primitive(const hub_fhir_defs *d, const char *type) {
    const hub__fhir_type *t = hub__fhir_type_get(d, type, strlen(type));
    return t && t->kind == HUB__FK_PRIMITIVE;
}

hub_fhir_json_kind hub_fhir_type_json(const hub_fhir_defs *d, const char *type) {
    const hub__fhir_type *t = hub__fhir_type_get(d, type, strlen(type));
    return t ? (hub_fhir_json_kind)t->json : HUB_FHIR_JSON_NONE;
}

const hub_fhir_elem *hub_fhir_children(const hub_fhir_defs *d, const char *key,
                                       size_t *n) {
    uint32_t g = hub__fhir_group_get(d, key, strlen(key));
    if (g == HUB__FHIR_NONE) {
        *n = 0;
        return NULL;
    }
    *n = d->groups[g].n;
    return &d->elems[d->groups[g].start];
}

const hub_fhir_elem *hub_fhir_children_of_type(const hub_fhir_defs *d,
                                               const hub_fhir_elem *e,
                                               const char *type, size_t *n) {
    *n = 0;
    uint32_t g = d->elem_group[hub__fhir_elem_index(d, e)];
    if (g == HUB__FHIR_NONE && type) {
        const hub__fhir_type *t = hub__fhir_type_get(d, type, strlen(type));
        if (t && t->kind != HUB__FK_PRIMITIVE) g = t->group;
    }
    if (g == HUB__FHIR_NONE) return NULL;
    *n = d->groups[g].n;
    return &d->elems[d->groups[g].start];
}

const hub_fhir_elem *hub_fhir_child(const hub_fhir_defs *d, const char *key,
                                    const char *name, const char **type) {
    uint32_t g = hub__fhir_group_get(d, key, strlen(key));
    if (g == HUB__FHIR_NONE) return NULL;
    uint32_t t = 0;
    uint32_t i = hub__fhir_child_get(d, g, name, strlen(name), &t);
    if (i == HUB__FHIR_NONE) return NULL;
    if (type) *type = d->elems[i].types[t];
    return &d->elems[i];
}

hub_status hub_fhir_vs_contains(const hub_fhir_defs *d, const char *url,
                                const char *system, const char *code) {
    size_t ul = strcspn(url, "|");
    uint32_t h = fnv(FNV_INIT, url, ul);
    uint32_t vs = HUB__FHIR_NONE;
    for (uint32_t i = h & d->vs_mask;; i = (i + 1) & d->vs_mask) {
        uint32_t v = d->vs_slots[i];
        if (v == 0) break;
        if (streq_n(d->vs[v - 1].url, url, ul)) {
            vs = v - 1;
            break;
        }
    }
    if (vs == HUB__FHIR_NONE) return HUB_E_UNSUPPORTED;
    size_t cl = strlen(code);
    h = mix(fnv(FNV_INIT, code, cl), vs);
    for (uint32_t i = h & d->code_mask;; i = (i + 1) & d->code_mask) {
        const hub__fhir_code_slot *s = &d->code_slots[i];
        if (s->code == NULL) break;
        if (s->hash == h && s->vs == vs && strcmp(s->code, code) == 0 &&
            (system == NULL || strcmp(system, s->system) == 0))
            return HUB_OK;
    }
    return d->vs[vs].complete ? HUB_E_NOTFOUND : HUB_E_UNSUPPORTED;
}

/* ---- loading ------------------------------------------------------------------------ */

static hub_status nomem(hub_err *err) {
    return hub_err_set(err, HUB_E_NOMEM, "fhir defs", "out of memory");
}

/* One read into a block of the file's size (+ NUL): no growth, no copy. */
static hub_status read_all(const char *path, const char *name, char **out, size_t *n,
                           hub_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        hub_status rc = hub_err_set(err, HUB_E_IO, "fhir defs", "%s: %s", name,
                                    strerror(errno));
        if (fd >= 0) close(fd);
        return rc;
    }
    if ((uint64_t)st.st_size > MAX_FILE) {
        close(fd);
        return hub_err_set(err, HUB_E_CONFIG, "fhir defs", "%s: over %u bytes", name,
                           MAX_FILE);
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *p = hub_malloc(size + 1);
    if (!p) {
        close(fd);
        return nomem(err);
    }
    prefault(p, size);
    while (got < size) {
        ssize_t k = read(fd, p + got, size - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(fd);
    p[got] = '\0';
    *out = p;
    *n = got;
    return HUB_OK;
}

typedef struct {
    const char *file;
    char *p, *end;
    unsigned line;
    char *f[MAX_FIELDS];
    size_t nf;
} reader;

/* The next data line, split into fields in place; false at the end. Header
 * lines (#) are skipped, except "#fhir <version>", which is returned with
 * f[0] "#fhir". */
static bool next_row(reader *r) {
    while (r->p < r->end) {
        char *s = r->p;
        char *nl = memchr(s, '\n', (size_t)(r->end - s));
        if (!nl) nl = r->end;
        *nl = '\0';
        r->p = nl + (nl < r->end);
        r->line++;
        if (s == nl) continue;
        if (s[0] == '#' && strncmp(s, "#fhir\t", 6) != 0) continue;
        r->nf = 0;
        for (;;) {
            char *tab = memchr(s, '\t', (size_t)(nl - s));
            if (r->nf == MAX_FIELDS) break;
            r->f[r->nf++] = s;
            if (!tab) break;
            *tab = '\0';
            s = tab + 1;
        }
        return true;
    }
    return false;
}

static hub_status bad(hub_err *err, const reader *r, const char *what) {
    return hub_err_set(err, HUB_E_CONFIG, "fhir defs", "%s line %u: %s", r->file,
                       r->line, what);
}


static size_t count_lines(const char *p, const char *end) {
    size_t n = 1;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

static const struct {
    const char *name;
    hub__fhir_prim prim;
} PRIMS[] = {
    {"boolean", HUB__FP_BOOLEAN},     {"integer", HUB__FP_INTEGER},
    {"unsignedInt", HUB__FP_UNSIGNED}, {"positiveInt", HUB__FP_POSITIVE},
    {"decimal", HUB__FP_DECIMAL},     {"string", HUB__FP_STRING},
    {"markdown", HUB__FP_MARKDOWN},   {"uri", HUB__FP_URI},
    {"url", HUB__FP_URL},             {"canonical", HUB__FP_CANONICAL},
    {"base64Binary", HUB__FP_BASE64}, {"instant", HUB__FP_INSTANT},
    {"date", HUB__FP_DATE},           {"dateTime", HUB__FP_DATETIME},
    {"time", HUB__FP_TIME},           {"code", HUB__FP_CODE},
    {"oid", HUB__FP_OID},             {"id", HUB__FP_ID},
    {"uuid", HUB__FP_UUID},           {"xhtml", HUB__FP_XHTML},
};

static hub_status load_types(hub_fhir_defs *d, reader *r, hub_err *err) {
    size_t cap = count_lines(r->p, r->end);
    d->types = hub_calloc(cap, sizeof *d->types);
    d->type_mask = table_size(cap) - 1;
    d->type_slots = hub_calloc((size_t)d->type_mask + 1, sizeof(uint32_t));
    d->resources = hub_calloc(cap, sizeof(char *));
    if (!d->types || !d->type_slots || !d->resources) return nomem(err);
    while (next_row(r)) {
        if (strcmp(r->f[0], "#fhir") == 0) {
            if (r->nf < 2 || strlen(r->f[1]) >= sizeof d->version)
                return bad(err, r, "bad version line");
            strcpy(d->version, r->f[1]);
            continue;
        }
        if (r->nf < 3) return bad(err, r, "too few fields");
        hub__fhir_type *t = &d->types[d->ntypes];
        t->name = r->f[0];
        t->group = HUB__FHIR_NONE;
        const char *k = r->f[1], *j = r->f[2];
        if (strcmp(k, "resource") == 0) t->kind = HUB__FK_RESOURCE;
        else if (strcmp(k, "abstract-resource") == 0) t->kind = HUB__FK_ABSTRACT_RESOURCE;
        else if (strcmp(k, "complex") == 0) t->kind = HUB__FK_COMPLEX;
        else if (strcmp(k, "abstract-complex") == 0) t->kind = HUB__FK_ABSTRACT_COMPLEX;
        else if (strcmp(k, "primitive") == 0) t->kind = HUB__FK_PRIMITIVE;
        else return bad(err, r, "unknown kind");
        if (strcmp(j, "object") == 0) t->json = HUB_FHIR_JSON_OBJECT;
        else if (strcmp(j, "string") == 0) t->json = HUB_FHIR_JSON_STRING;
        else if (strcmp(j, "number") == 0) t->json = HUB_FHIR_JSON_NUMBER;
        else if (strcmp(j, "boolean") == 0) t->json = HUB_FHIR_JSON_BOOLEAN;
        else return bad(err, r, "unknown json kind");
        t->prim = HUB__FP_NONE;
        if (t->kind == HUB__FK_PRIMITIVE) {
            t->prim = HUB__FP_OTHER;
            for (size_t i = 0; i < sizeof PRIMS / sizeof PRIMS[0]; i++)
                if (strcmp(PRIMS[i].name, t->name) == 0) t->prim = (uint8_t)PRIMS[i].prim;
        }
        size_t n = strlen(t->name);
        if (hub__fhir_type_get(d, t->name, n)) return bad(err, r, "duplicate type");
        uint32_t h = fnv(FNV_INIT, t->name, n);
        uint32_t i = h & d->type_mask;
        while (d->type_slots[i]) i = (i + 1) & d->type_mask;
        d->type_slots[i] = (uint32_t)++d->ntypes;
        if (t->kind == HUB__FK_RESOURCE) d->resources[d->nresources++] = t->name;
    }
    if (d->version[0] == '\0') return bad(err, r, "no #fhir version line");
    if (d->nresources == 0) return bad(err, r, "no resource types");
    return HUB_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static uint32_t group_add(hub_fhir_defs *d, const char *key, size_t n) {
    uint32_t g = hub__fhir_group_get(d, key, n);
    if (g != HUB__FHIR_NONE) return g;
    if (d->ngroups == d->capgroups) return HUB__FHIR_NONE; /* sized up front */
    hub__fhir_group *x = &d->groups[d->ngroups];
    x->key = key;
    x->keylen = (uint32_t)n;
    x->start = x->n = 0;
    uint32_t h = fnv(FNV_INIT, key, n);
    uint32_t i = h & d->group_mask;
    while (d->group_slots[i]) i = (i + 1) & d->group_mask;
    d->group_slots[i] = (uint32_t)++d->ngroups;
    return (uint32_t)(d->ngroups - 1);
}

static bool parse_u32(const char *s, uint32_t *out) {
    if (strcmp(s, "*") == 0) {
        *out = HUB_FHIR_MAX_UNBOUNDED;
        return true;
    }
    if (!*s) return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000) return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = (uint32_t)v;
    return true;
}

static void child_add(hub_fhir_defs *d, uint32_t g, uint32_t ei, uint32_t ti,
                      uint32_t h) {
    uint32_t i = h & d->child_mask;
    while (d->child_slots[i].elem != HUB__FHIR_SLOT_EMPTY) i = (i + 1) & d->child_mask;
    d->child_slots[i] = (hub__fhir_child_slot){(uint16_t)(h >> 16), (uint16_t)g,
                                               (uint16_t)ei, (uint16_t)ti};
}

/* What the first pass keeps of a row: where it starts (its fields are
 * NUL-separated by then), its line and its group. */
typedef struct {
    char *p;
    uint32_t line, group;
} row;

/* Two passes: the first splits the rows and counts each group's children,
 * the second fills each row into its group's place, so that a key's
 * children are contiguous and in definition order. */
static hub_status load_elems(hub_fhir_defs *d, reader *r, hub_err *err) {
    size_t cap = count_lines(r->p, r->end);
    row *rows = hub_malloc(cap * sizeof *rows);
    d->capgroups = cap + d->ntypes;
    d->groups = hub_calloc(d->capgroups, sizeof *d->groups);
    d->group_mask = table_size(d->capgroups) - 1;
    d->group_slots = hub_calloc((size_t)d->group_mask + 1, sizeof(uint32_t));
    hub_status rc = HUB_OK;
    if (!rows || !d->groups || !d->group_slots) {
        rc = nomem(err);
        goto out;
    }
    size_t nrows = 0, ntypenames = 0;
    while (next_row(r)) {
        if (r->f[0][0] == '#') continue;
        if (r->nf < 9) {
            rc = bad(err, r, "too few fields");
            goto out;
        }
        const char *path = r->f[0];
        const char *dot = strrchr(path, '.');
        if (!dot || !*r->f[1] || !*r->f[5]) {
            rc = bad(err, r, "bad path, name or types");
            goto out;
        }
        for (const char *c = r->f[5]; c; c = strchr(c + 1, ',')) ntypenames++;
        uint32_t g = group_add(d, path, (size_t)(dot - path));
        d->groups[g].n++;
        rows[nrows++] = (row){r->f[0], r->line, g};
    }
    d->elems = hub_calloc(nrows ? nrows : 1, sizeof *d->elems);
    d->elem_group = hub_calloc(nrows ? nrows : 1, sizeof(uint32_t));
    d->typenames = hub_calloc(ntypenames ? ntypenames : 1, sizeof(char *));
    d->elemtype = hub_calloc(ntypenames ? ntypenames : 1, sizeof(void *));
    d->child_mask = table_size(ntypenames) - 1;
    d->child_slots = hub_malloc(((size_t)d->child_mask + 1) * sizeof *d->child_slots);
    if (!d->elems || !d->elem_group || !d->typenames || !d->elemtype ||
        !d->child_slots) {
        rc = nomem(err);
        goto out;
    }
    /* The compact child slots index elements and groups in 16 bits. */
    if (nrows >= HUB__FHIR_SLOT_EMPTY || d->ngroups >= HUB__FHIR_SLOT_EMPTY) {
        rc = bad(err, r, "too many elements");
        goto out;
    }
    prefault(d->elems, nrows * sizeof *d->elems);
    memset(d->child_slots, 0xff, ((size_t)d->child_mask + 1) * sizeof *d->child_slots);
    uint32_t at = 0;
    for (size_t g = 0; g < d->ngroups; g++) {
        d->groups[g].start = at;
        at += d->groups[g].n;
        d->groups[g].n = 0;
    }
    size_t tn = 0;
    for (size_t i = 0; i < nrows; i++) {
        row *w = &rows[i];
        char *f[9];
        f[0] = w->p;
        for (int k = 1; k < 9; k++) f[k] = f[k - 1] + strlen(f[k - 1]) + 1;
        r->line = w->line;
        hub__fhir_group *g = &d->groups[w->group];
        uint32_t ei = g->start + g->n++;
        hub_fhir_elem *e = &d->elems[ei];
        e->path = f[0];
        e->name = f[1];
        e->choice = f[2][0] == '1';
        if (!parse_u32(f[3], &e->min) || !parse_u32(f[4], &e->max)) {
            rc = bad(err, r, "bad cardinality");
            goto out;
        }
        e->children_key = *f[6] ? f[6] : NULL;
        e->binding = *f[7] ? f[7] : NULL;
        e->summary = strchr(f[8], 'S') != NULL;
        e->modifier = strchr(f[8], 'M') != NULL;
        /* Types: split in place, resolved to the interned type names. */
        e->types = &d->typenames[tn];
        for (char *c = f[5]; c;) {
            char *comma = strchr(c, ',');
            if (comma) *comma = '\0';
            const hub__fhir_type *t = hub__fhir_type_get(d, c, strlen(c));
            if (!t) {
                rc = bad(err, r, "unknown type");
                goto out;
            }
            d->typenames[tn] = t->name;
            d->elemtype[tn] = t;
            tn++;
            e->ntypes++;
            c = comma ? comma + 1 : NULL;
        }
        if (!e->choice && e->ntypes != 1) {
            rc = bad(err, r, "several types on a non-choice element");
            goto out;
        }
        /* The JSON names: one, or one per type of a choice. */
        if (!e->choice) {
            size_t nl = strlen(e->name);
            if (hub__fhir_child_get(d, w->group, e->name, nl, NULL) != HUB__FHIR_NONE) {
                rc = bad(err, r, "duplicate element name");
                goto out;
            }
            child_add(d, w->group, ei, 0, child_hash(w->group, e->name, nl));
        } else {
            size_t sl = strlen(e->name);
            for (uint32_t k = 0; k < e->ntypes; k++) {
                const char *tname = e->types[k];
                uint32_t h = fnv(FNV_INIT, e->name, sl);
                char c = tname[0];
                if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
                h = fnv_byte(h, (unsigned char)c);
                h = fnv(h, tname + 1, strlen(tname + 1));
                child_add(d, w->group, ei, k, mix(h, w->group));
            }
        }
    }
    /* Children keys resolve to groups; types find their own group. */
    for (size_t i = 0; i < nrows; i++) {
        hub_fhir_elem *e = &d->elems[i];
        d->elem_group[i] = HUB__FHIR_NONE;
        if (!e->children_key) continue;
        uint32_t g = hub__fhir_group_get(d, e->children_key, strlen(e->children_key));
        if (g == HUB__FHIR_NONE) {
            rc = hub_err_set(err, HUB_E_CONFIG, "fhir defs",
                             "%s: children key of '%s' unknown", r->file, e->path);
            goto out;
        }
        d->elem_group[i] = g;
    }
    for (size_t i = 0; i < d->ntypes; i++) {
        hub__fhir_type *t = &d->types[i];
        t->group = hub__fhir_group_get(d, t->name, strlen(t->name));
    }
    d->nelems = nrows;
out:
    hub_free(rows);
    return rc;
}

static uint32_t vs_add(hub_fhir_defs *d, const char *url, bool complete) {
    size_t n = strlen(url);
    uint32_t h = fnv(FNV_INIT, url, n);
    uint32_t i = h & d->vs_mask;
    for (; d->vs_slots[i]; i = (i + 1) & d->vs_mask)
        if (strcmp(d->vs[d->vs_slots[i] - 1].url, url) == 0) return d->vs_slots[i] - 1;
    if (d->nvs == d->capvs) return HUB__FHIR_NONE;
    d->vs[d->nvs] = (hub__fhir_vs){url, complete};
    d->vs_slots[i] = (uint32_t)++d->nvs;
    return (uint32_t)(d->nvs - 1);
}

static hub_status load_vs(hub_fhir_defs *d, reader *r, hub_err *err) {
    size_t lines = count_lines(r->p, r->end);
    /* Codes are at most one per tab. */
    size_t ncodes = 0;
    for (const char *p = r->p; (p = memchr(p, '\t', (size_t)(r->end - p))) != NULL; p++)
        ncodes++;
    d->capvs = lines;
    d->vs = hub_calloc(lines, sizeof *d->vs);
    d->vs_mask = table_size(lines) - 1;
    d->vs_slots = hub_calloc((size_t)d->vs_mask + 1, sizeof(uint32_t));
    d->code_mask = table_size(ncodes) - 1;
    d->code_slots = hub_calloc((size_t)d->code_mask + 1, sizeof *d->code_slots);
    if (!d->vs || !d->vs_slots || !d->code_slots) return nomem(err);
    while (next_row(r)) {
        if (r->f[0][0] == '#') continue;
        if (r->nf < 3) return bad(err, r, "too few fields");
        bool complete = strcmp(r->f[1], "complete") == 0;
        if (!complete && strcmp(r->f[1], "partial") != 0)
            return bad(err, r, "completeness is not complete or partial");
        uint32_t vs = vs_add(d, r->f[0], complete);
        if (vs == HUB__FHIR_NONE) return bad(err, r, "too many value sets");
        if (d->vs[vs].complete != complete) return bad(err, r, "completeness differs");
        const char *sys = r->f[2];
        for (size_t k = 3; k < r->nf; k++) {
            const char *code = r->f[k];
            uint32_t h = mix(fnv(FNV_INIT, code, strlen(code)), vs);
            uint32_t i = h & d->code_mask;
            while (d->code_slots[i].code) i = (i + 1) & d->code_mask;
            d->code_slots[i] = (hub__fhir_code_slot){h, vs, code, sys};
        }
    }
    return HUB_OK;
}

hub_status hub_fhir_defs_load(const char *dir, hub_fhir_defs **out, hub_err *err) {
    *out = NULL;
    hub_fhir_defs *d = hub_calloc(1, sizeof *d);
    if (!d) return nomem(err);
    hub_status rc = HUB_OK;
    reader *r = hub_malloc(sizeof *r);
    if (!r) {
        rc = nomem(err);
        goto fail;
    }
    for (int f = 0; f < 3; f++) {
        char path[1024];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, FILES[f]) >= sizeof path) {
            rc = hub_err_set(err, HUB_E_IO, "fhir defs", "directory name too long");
            goto fail;
        }
        size_t n = 0;
        rc = read_all(path, FILES[f], &d->text[f], &n, err);
        if (rc) goto fail;
        r->file = FILES[f];
        r->p = d->text[f];
        r->end = d->text[f] + n;
        r->line = 0;
        rc = f == F_TYPES ? load_types(d, r, err)
             : f == F_ELEMS ? load_elems(d, r, err)
                            : load_vs(d, r, err);
        if (rc) goto fail;
    }
    qsort(d->resources, d->nresources, sizeof *d->resources, cmp_str);
    hub_free(r);
    *out = d;
    return HUB_OK;
fail:
    hub_free(r);
    hub_fhir_defs_free(d);
    return rc;
}

void hub_fhir_defs_free(hub_fhir_defs *d) {
    if (!d) return;
    for (int f = 0; f < 3; f++) hub_free(d->text[f]);
    hub_free(d->elems);
    hub_free(d->elem_group);
    hub_free(d->typenames);
    hub_free(d->elemtype);
    hub_free(d->types);
    hub_free(d->type_slots);
    hub_free(d->resources);
    hub_free(d->groups);
    hub_free(d->group_slots);
    hub_free(d->child_slots);
    hub_free(d->vs);
    hub_free(d->vs_slots);
    hub_free(d->code_slots);
    hub_free(d);
}
