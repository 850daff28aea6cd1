/* hub_fhir_validate: a resource (a jansson value) against the element table.
 *
 * One recursive walk over the JSON: each property is resolved to its element
 * with one hash probe (choice names included), its JSON kind and cardinality
 * checked, primitives checked against their lexical form, required bindings
 * against the value set table; after an object's properties, its required
 * elements. The FHIRPath of the current element is kept in one buffer that
 * grows and shrinks with the walk, so valid input allocates nothing. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#define PATH_MAX_LEN 1024
#define MAX_STRING (1u << 20) /* FHIR: strings SHALL NOT exceed 1 MB */

typedef struct {
    const hub_fhir_defs *d;
    hub_oo *oo;
    bool lenient;
    int depth;
    size_t errors;
    size_t plen;
    char path[PATH_MAX_LEN];
} vctx;

/* ---- the path ------------------------------------------------------------- */

static size_t path_push(vctx *c, const char *name, size_t n) {
    size_t old = c->plen;
    if (c->plen + n + 2 < sizeof c->path) {
        if (c->plen) c->path[c->plen++] = '.';
        memcpy(c->path + c->plen, name, n);
        c->plen += n;
        c->path[c->plen] = '\0';
    }
    return old;
}

static size_t path_index(vctx *c, size_t i) {
    size_t old = c->plen;
    char tmp[24];
    size_t k = sizeof tmp;
    do {
        tmp[--k] = (char)('0' + i % 10);
        i /= 10;
    } while (i);
    size_t digits = sizeof tmp - k;
    if (c->plen + digits + 3 < sizeof c->path) {
        c->path[c->plen++] = '[';
        memcpy(c->path + c->plen, tmp + k, digits);
        c->plen += digits;
        c->path[c->plen++] = ']';
        c->path[c->plen] = '\0';
    }
    return old;
}

static void path_pop(vctx *c, size_t old) {
    c->plen = old;
    c->path[old] = '\0';
}

#define ISSUE(c, sev, code, ...)                                              \
    do {                                                                      \
        if ((sev) <= HUB_OO_ERROR) (c)->errors++;                             \
        hub_oo_add((c)->oo, (sev), (code), (c)->path, __VA_ARGS__);           \
    } while (0)

/* A property name for a diagnostic: names are not values, but they come
 * from outside, so only a bounded, printable form is shown. */
static const char *safe_name(const char *k, char buf[72]) {
    size_t i = 0;
    for (; k[i] && i < 64; i++) {
        unsigned char ch = (unsigned char)k[i];
        buf[i] = (ch >= 0x20 && ch < 0x7f && ch != '\'') ? (char)ch : '?';
    }
    if (k[i]) {
        buf[i++] = '.';
        buf[i++] = '.';
    }
    buf[i] = '\0';
    return buf;
}

/* ---- lexical forms ----------------------------------------------------------- */

static bool is_ws(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' ||
           ch == '\v';
}
static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static bool digits(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i])) return false;
    return true;
}
static int num2(const char *s) { return (s[0] - '0') * 10 + (s[1] - '0'); }

static int days_in(int y, int m) {
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dm[m - 1];
}

/* YYYY, YYYY-MM or YYYY-MM-DD at s; returns bytes used (0: bad) and how many
 * parts were given. */
static size_t lex_date(const char *s, size_t n, int *parts) {
    if (n < 4 || !digits(s, 4)) return 0;
    int y = (s[0] - '0') * 1000 + num2(s + 1) * 10 + (s[3] - '0');
    if (y == 0) return 0;
    *parts = 1;
    if (n == 4 || s[4] != '-') return 4;
    if (n < 7 || !digits(s + 5, 2)) return 0;
    int m = num2(s + 5);
    if (m < 1 || m > 12) return 0;
    *parts = 2;
    if (n == 7 || s[7] != '-') return 7;
    if (n < 10 || !digits(s + 8, 2)) return 0;
    int d = num2(s + 8);
    if (d < 1 || d > days_in(y, m)) return 0;
    *parts = 3;
    return 10;
}

/* hh:mm:ss(.f+)? at s; bytes used or 0. */
static size_t lex_time(const char *s, size_t n) {
    if (n < 8 || !digits(s, 2) || s[2] != ':' || !digits(s + 3, 2) || s[5] != ':' ||
        !digits(s + 6, 2))
        return 0;
    if (num2(s) > 23 || num2(s + 3) > 59 || num2(s + 6) > 60) return 0;
    size_t i = 8;
    if (i < n && s[i] == '.') {
        size_t j = ++i;
        while (i < n && is_digit(s[i])) i++;
        if (i == j) return 0;
    }
    return i;
}

/* Z or (+|-)hh:mm, with hours 00-13 or 14:00. */
static bool lex_tz(const char *s, size_t n) {
    if (n == 1 && s[0] == 'Z') return true;
    if (n != 6 || (s[0] != '+' && s[0] != '-') || !digits(s + 1, 2) || s[3] != ':' ||
        !digits(s + 4, 2))
        return false;
    int h = num2(s + 1), m = num2(s + 4);
    return (h <= 13 && m <= 59) || (h == 14 && m == 0);
}

static bool check_datetime(const char *s, size_t n, bool instant) {
    int parts = 0;
    size_t i = lex_date(s, n, &parts);
    if (!i) return false;
    if (i == n) return !instant;
    if (parts != 3 || s[i] != 'T') return false;
    i++;
    size_t t = lex_time(s + i, n - i);
    if (!t) return false;
    i += t;
    return lex_tz(s + i, n - i);
}

static bool check_base64(const char *s, size_t n) {
    size_t k = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (is_ws(ch)) continue;
        if (ch == '=') {
            pad++;
        } else if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || is_digit(ch) ||
                   ch == '+' || ch == '/') {
            if (pad) return false; /* data after padding */
        } else {
            return false;
        }
        k++;
    }
    return k > 0 && k % 4 == 0 && pad <= 2;
}

static bool check_code(const char *s, size_t n) {
    if (is_ws(s[0]) || is_ws(s[n - 1])) return false;
    for (size_t i = 1; i < n; i++)
        if (is_ws(s[i]) && is_ws(s[i - 1])) return false;
    return true;
}

static bool check_id(const char *s, size_t n) {
    if (n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || is_digit(ch) ||
              ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

static bool check_oid(const char *s, size_t n) {
    if (n < 10 || memcmp(s, "urn:oid:", 8) != 0) return false;
    size_t i = 8;
    if (s[i] < '0' || s[i] > '2') return false;
    i++;
    bool arcs = false;
    while (i < n) {
        if (s[i] != '.' || i + 1 >= n || !is_digit(s[i + 1])) return false;
        i++;
        if (s[i] == '0' && i + 1 < n && is_digit(s[i + 1])) return false;
        while (i < n && is_digit(s[i])) i++;
        arcs = true;
    }
    return arcs;
}

static bool check_uuid(const char *s, size_t n) {
    if (n != 45 || memcmp(s, "urn:uuid:", 9) != 0) return false;
    for (size_t i = 9; i < n; i++) {
        size_t k = i - 9;
        if (k == 8 || k == 13 || k == 18 || k == 23) {
            if (s[i] != '-') return false;
        } else if (!(is_digit(s[i]) || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

static bool no_ws(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (is_ws(s[i])) return false;
    return true;
}

static bool all_ws(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_ws(s[i])) return false;
    return true;
}

static bool has_nocase(const char *s, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++) {
        size_t j = 0;
        while (j < k && (s[i + j] | 0x20) == needle[j]) j++;
        if (j == k) return true;
    }
    return false;
}

/* ---- primitives ------------------------------------------------------------------- */

static const char *kind_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static void check_binding(vctx *c, const hub_fhir_elem *e, const char *system,
                          const char *code) {
    if (!e->binding || !code) return;
    if (hub_fhir_vs_contains(c->d, e->binding, system, code) == HUB_E_NOTFOUND)
        ISSUE(c, HUB_OO_ERROR, "code-invalid",
              "the code is not in the required value set %s", e->binding);
}

static void check_primitive(vctx *c, const hub_fhir_elem *e, const hub__fhir_type *t,
                            const json_t *v) {
    const char *want = t->json == HUB_FHIR_JSON_NUMBER    ? "a number"
                       : t->json == HUB_FHIR_JSON_BOOLEAN ? "a boolean"
                                                          : "a string";
    bool kind_ok = t->json == HUB_FHIR_JSON_NUMBER    ? json_is_number(v)
                   : t->json == HUB_FHIR_JSON_BOOLEAN ? json_is_boolean(v)
                                                      : json_is_string(v);
    if (!kind_ok) {
        ISSUE(c, HUB_OO_ERROR, "structure", "%s is %s, %s (%s) is expected", e->name,
              kind_name(v), want, t->name);
        return;
    }
    if (t->json == HUB_FHIR_JSON_NUMBER) {
        if (t->prim == HUB__FP_DECIMAL) return; /* JSON's number grammar is FHIR's */
        if (!json_is_integer(v)) {
            ISSUE(c, HUB_OO_ERROR, "value", "%s is not a whole number (%s)", e->name,
                  t->name);
            return;
        }
        json_int_t x = json_integer_value(v);
        json_int_t lo = t->prim == HUB__FP_POSITIVE ? 1 : t->prim == HUB__FP_UNSIGNED ? 0
                                                                                 : INT32_MIN;
        if (x < lo || x > INT32_MAX)
            ISSUE(c, HUB_OO_ERROR, "value", "%s is out of the range of %s", e->name,
                  t->name);
        return;
    }
    if (t->json != HUB_FHIR_JSON_STRING) return;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0) {
        ISSUE(c, HUB_OO_ERROR, "value", "%s is an empty string", e->name);
        return;
    }
    if (n > MAX_STRING) {
        ISSUE(c, HUB_OO_ERROR, "too-long", "%s is longer than 1 MB", e->name);
        return;
    }
    bool ok = true;
    const char *form = t->name;
    switch ((hub__fhir_prim)t->prim) {
    case HUB__FP_STRING:
    case HUB__FP_MARKDOWN:
        if (all_ws(s, n)) {
            ISSUE(c, HUB_OO_ERROR, "value", "%s has only whitespace", e->name);
            return;
        }
        break;
    case HUB__FP_URI:
    case HUB__FP_URL:
    case HUB__FP_CANONICAL: ok = no_ws(s, n); break;
    case HUB__FP_BASE64: ok = check_base64(s, n); break;
    case HUB__FP_INSTANT: ok = check_datetime(s, n, true); break;
    case HUB__FP_DATETIME: ok = check_datetime(s, n, false); break;
    case HUB__FP_DATE: {
        int parts;
        ok = lex_date(s, n, &parts) == n;
        break;
    }
    case HUB__FP_TIME: ok = lex_time(s, n) == n; break;
    case HUB__FP_CODE: ok = check_code(s, n); break;
    case HUB__FP_OID: ok = check_oid(s, n); break;
    case HUB__FP_ID: ok = check_id(s, n); break;
    case HUB__FP_UUID: ok = check_uuid(s, n); break;
    case HUB__FP_XHTML: {
        size_t i = 0;
        while (i < n && is_ws(s[i])) i++;
        if (n - i < 4 || memcmp(s + i, "<div", 4) != 0 ||
            (n - i > 4 && s[i + 4] != '>' && !is_ws(s[i + 4]))) {
            ISSUE(c, HUB_OO_ERROR, "value", "%s: the narrative must be a <div> element",
                  e->name);
            return;
        }
        if (has_nocase(s, n, "<script")) {
            ISSUE(c, HUB_OO_ERROR, "value", "%s: the narrative contains a script",
                  e->name);
            return;
        }
        break;
    }
    default: break;
    }
    if (!ok) {
        ISSUE(c, HUB_OO_ERROR, "value", "%s is not a valid %s", e->name, form);
        return;
    }
    if (t->prim == HUB__FP_CODE) check_binding(c, e, NULL, s);
}

/* ---- objects ----------------------------------------------------------------------- */

static void check_object(vctx *c, const json_t *obj, uint32_t g, bool resource_root);
static void check_resource(vctx *c, const json_t *obj, bool root);

static void check_coding_binding(vctx *c, const hub_fhir_elem *e, const json_t *coding) {
    const json_t *code = json_object_get(coding, "code");
    const json_t *sys = json_object_get(coding, "system");
    if (!json_is_string(code)) return;
    check_binding(c, e, json_is_string(sys) ? json_string_value(sys) : NULL,
                  json_string_value(code));
}

static void check_cc_binding(vctx *c, const hub_fhir_elem *e, const json_t *cc) {
    const json_t *codings = json_object_get(cc, "coding");
    if (!json_is_array(codings) || json_array_size(codings) == 0) return;
    size_t i;
    const json_t *cd;
    bool unknown = false;
    json_array_foreach(codings, i, cd) {
        const json_t *code = json_object_get(cd, "code");
        const json_t *sys = json_object_get(cd, "system");
        if (!json_is_string(code)) continue;
        hub_status rc = hub_fhir_vs_contains(c->d, e->binding,
                                             json_is_string(sys) ? json_string_value(sys) : NULL,
                                             json_string_value(code));
        if (rc == HUB_OK) return;
        if (rc != HUB_E_NOTFOUND) unknown = true;
    }
    if (!unknown)
        ISSUE(c, HUB_OO_ERROR, "code-invalid",
              "no coding is in the required value set %s", e->binding);
}

/* One value of element e with type t (an item of an array, or the value). */
static void check_value(vctx *c, const hub_fhir_elem *e, uint32_t ti, const json_t *v) {
    const hub_fhir_defs *d = c->d;
    size_t ei = hub__fhir_elem_index(d, e);
    const hub__fhir_type *t = d->elemtype[(size_t)(e->types - d->typenames) + ti];
    if (t->kind == HUB__FK_PRIMITIVE) {
        check_primitive(c, e, t, v);
        return;
    }
    if (!json_is_object(v)) {
        ISSUE(c, HUB_OO_ERROR, "structure", "%s is %s, an object (%s) is expected", e->name,
              kind_name(v), t->name);
        return;
    }
    if (json_object_size(v) == 0) {
        ISSUE(c, HUB_OO_ERROR, "structure", "%s is an empty object", e->name);
        return;
    }
    if (t->kind == HUB__FK_ABSTRACT_RESOURCE || t->kind == HUB__FK_RESOURCE) {
        check_resource(c, v, false);
        return;
    }
    uint32_t g = e->choice ? t->group : d->elem_group[ei];
    if (g == HUB__FHIR_NONE) g = t->group;
    if (g == HUB__FHIR_NONE) return;
    check_object(c, v, g, false);
    if (e->binding) {
        if (strcmp(t->name, "CodeableConcept") == 0) check_cc_binding(c, e, v);
        else if (strcmp(t->name, "Coding") == 0) check_coding_binding(c, e, v);
    }
}

/* The _name companion of a primitive: an object with id/extension, or an
 * array of such objects or nulls, aligned with the value array. */
static void check_companion(vctx *c, const hub_fhir_elem *e, uint32_t ti,
                            const json_t *ext, const json_t *val) {
    const hub_fhir_defs *d = c->d;
    const hub__fhir_type *t = d->elemtype[(size_t)(e->types - d->typenames) + ti];
    if (t->kind != HUB__FK_PRIMITIVE) {
        ISSUE(c, HUB_OO_ERROR, "structure", "_%s is given for an element that is not a "
              "primitive", e->name);
        return;
    }
    uint32_t g = t->group;
    if (e->max <= 1) {
        if (!json_is_object(ext)) {
            ISSUE(c, HUB_OO_ERROR, "structure", "_%s is %s, an object is expected", e->name,
                  kind_name(ext));
            return;
        }
        if (json_object_size(ext) == 0) {
            ISSUE(c, HUB_OO_ERROR, "structure", "_%s is an empty object", e->name);
            return;
        }
        if (g != HUB__FHIR_NONE) check_object(c, ext, g, false);
        return;
    }
    if (!json_is_array(ext)) {
        ISSUE(c, HUB_OO_ERROR, "structure", "_%s is %s, an array is expected", e->name,
              kind_name(ext));
        return;
    }
    size_t n = json_array_size(ext);
    if (val && json_is_array(val) && json_array_size(val) != n) {
        ISSUE(c, HUB_OO_ERROR, "structure",
              "_%s has %zu items, %s has %zu: they must align", e->name, n, e->name,
              json_array_size(val));
        return;
    }
    if (n == 0) {
        ISSUE(c, HUB_OO_ERROR, "structure", "_%s is an empty array", e->name);
        return;
    }
    size_t i;
    const json_t *x;
    bool any = false;
    json_array_foreach(ext, i, x) {
        size_t old = path_index(c, i);
        if (json_is_null(x)) {
            if (!val) ISSUE(c, HUB_OO_ERROR, "structure", "_%s item is null and %s has no "
                            "value there", e->name, e->name);
        } else if (!json_is_object(x)) {
            ISSUE(c, HUB_OO_ERROR, "structure", "_%s item is %s, an object or null is "
                  "expected", e->name, kind_name(x));
        } else if (json_object_size(x) == 0) {
            ISSUE(c, HUB_OO_ERROR, "structure", "_%s item is an empty object", e->name);
        } else {
            any = true;
            if (g != HUB__FHIR_NONE) check_object(c, x, g, false);
        }
        path_pop(c, old);
    }
    if (!any && !val)
        ISSUE(c, HUB_OO_ERROR, "structure", "_%s has only nulls", e->name);
}

/* The property `key` with value v of an object whose children are group g. */
static void check_property(vctx *c, const json_t *obj, uint32_t g, const char *key,
                           size_t klen, const json_t *v, uint64_t *seen) {
    const hub_fhir_defs *d = c->d;
    bool companion = key[0] == '_';
    const char *name = companion ? key + 1 : key;
    size_t nlen = companion ? klen - 1 : klen;
    uint32_t ti = 0;
    uint32_t ei = nlen ? hub__fhir_child_get(d, g, name, nlen, &ti) : HUB__FHIR_NONE;
    size_t old = path_push(c, key, klen);
    if (ei == HUB__FHIR_NONE) {
        char buf[72];
        if (c->lenient)
            ISSUE(c, HUB_OO_WARNING, "structure", "unknown element '%s'", safe_name(key, buf));
        else
            ISSUE(c, HUB_OO_ERROR, "structure", "unknown element '%s'", safe_name(key, buf));
        path_pop(c, old);
        return;
    }
    const hub_fhir_elem *e = &d->elems[ei];
    const hub__fhir_group *grp = &d->groups[g];
    if (!companion && e->choice && grp->n <= 64) {
        uint64_t bit = (uint64_t)1 << (ei - grp->start);
        if (*seen & bit)
            ISSUE(c, HUB_OO_ERROR, "structure", "%s[x] is given more than once", e->name);
        *seen |= bit;
    }
    if (companion) {
        /* The value it extends, if given (by the same JSON name). */
        const json_t *val = json_object_getn(obj, name, nlen);
        check_companion(c, e, ti, v, val);
        path_pop(c, old);
        return;
    }
    if (e->max > 1) {
        if (!json_is_array(v)) {
            ISSUE(c, HUB_OO_ERROR, "structure", "%s is %s, an array is expected", e->name,
                  kind_name(v));
        } else if (json_array_size(v) == 0) {
            ISSUE(c, HUB_OO_ERROR, "structure", "%s is an empty array", e->name);
        } else {
            size_t n = json_array_size(v);
            if (e->max != HUB_FHIR_MAX_UNBOUNDED && n > e->max)
                ISSUE(c, HUB_OO_ERROR, "structure", "%s has %zu items, at most %u allowed",
                      e->name, n, e->max);
            if (n < e->min)
                ISSUE(c, HUB_OO_ERROR, "required", "%s has %zu items, at least %u required",
                      e->name, n, e->min);
            /* null items stand for values given only in _name. */
            char ckey[128];
            const json_t *ext = NULL;
            if (klen + 1 < sizeof ckey) {
                ckey[0] = '_';
                memcpy(ckey + 1, key, klen);
                ext = json_object_getn(obj, ckey, klen + 1);
            }
            size_t i;
            const json_t *x;
            json_array_foreach(v, i, x) {
                size_t o2 = path_index(c, i);
                if (json_is_null(x)) {
                    const json_t *xe = json_is_array(ext) ? json_array_get(ext, i) : NULL;
                    if (!e->choice && d->elemtype[e->types - d->typenames]->kind !=
                                          HUB__FK_PRIMITIVE)
                        ISSUE(c, HUB_OO_ERROR, "structure", "%s item is null", e->name);
                    else if (!json_is_object(xe))
                        ISSUE(c, HUB_OO_ERROR, "structure",
                              "%s item is null without a matching _%s item", e->name,
                              e->name);
                } else {
                    check_value(c, e, ti, x);
                }
                path_pop(c, o2);
            }
        }
    } else if (json_is_array(v)) {
        ISSUE(c, HUB_OO_ERROR, "structure", "%s is an array, it allows one value", e->name);
    } else if (json_is_null(v)) {
        ISSUE(c, HUB_OO_ERROR, "structure", "%s is null", e->name);
    } else {
        check_value(c, e, ti, v);
    }
    path_pop(c, old);
}

/* Is element e given in obj, by its name, a choice name or its _name? */
static bool present(const hub_fhir_defs *d, const json_t *obj, uint32_t g,
                    const hub_fhir_elem *e) {
    if (!e->choice) {
        if (json_object_get(obj, e->name)) return true;
        char k[128];
        size_t n = strlen(e->name);
        if (n + 2 > sizeof k) return false;
        k[0] = '_';
        memcpy(k + 1, e->name, n + 1);
        return json_object_get(obj, k) != NULL;
    }
    const char *key;
    const json_t *v;
    size_t el = hub__fhir_elem_index(d, e);
    json_object_foreach((json_t *)obj, key, v) {
        const char *nm = key[0] == '_' ? key + 1 : key;
        if (hub__fhir_child_get(d, g, nm, strlen(nm), NULL) == el) return true;
    }
    return false;
}

static void check_object(vctx *c, const json_t *obj, uint32_t g, bool resource_root) {
    if (++c->depth > HUB_FHIR_MAX_DEPTH) {
        ISSUE(c, HUB_OO_ERROR, "structure", "nested deeper than %d levels",
              HUB_FHIR_MAX_DEPTH);
        c->depth--;
        return;
    }
    const hub_fhir_defs *d = c->d;
    const hub__fhir_group *grp = &d->groups[g];
    uint64_t seen = 0;
    const char *key;
    json_t *v;
    void *it = json_object_iter((json_t *)obj);
    for (; it; it = json_object_iter_next((json_t *)obj, it)) {
        key = json_object_iter_key(it);
        v = json_object_iter_value(it);
        size_t klen = json_object_iter_key_len(it);
        /* resourceType names the resource at its root; ExampleScenario's
         * instance has an element of that name. */
        if (klen == 12 && memcmp(key, "resourceType", 12) == 0 &&
            hub__fhir_child_get(d, g, key, klen, NULL) == HUB__FHIR_NONE) {
            if (!resource_root) {
                size_t old = path_push(c, key, klen);
                ISSUE(c, HUB_OO_ERROR, "structure",
                      "resourceType is only allowed at the root of a resource (in %.*s)",
                      (int)grp->keylen, grp->key);
                path_pop(c, old);
            }
            continue;
        }
        check_property(c, obj, g, key, klen, v, &seen);
    }
    /* Required elements. */
    for (uint32_t i = 0; i < grp->n; i++) {
        const hub_fhir_elem *e = &d->elems[grp->start + i];
        if (e->min == 0) continue;
        if (e->choice && grp->n <= 64 && (seen & ((uint64_t)1 << i))) continue;
        if (present(d, obj, g, e)) continue;
        size_t old = path_push(c, e->name, strlen(e->name));
        ISSUE(c, HUB_OO_ERROR, "required", "%s%s is required (min %u) in %.*s", e->name,
              e->choice ? "[x]" : "", e->min, (int)grp->keylen, grp->key);
        path_pop(c, old);
    }
    c->depth--;
}

static void check_resource(vctx *c, const json_t *obj, bool root) {
    const json_t *rt = json_object_get(obj, "resourceType");
    size_t old = c->plen;
    if (!json_is_string(rt) || json_string_length(rt) == 0) {
        size_t o2 = path_push(c, "resourceType", 12);
        ISSUE(c, HUB_OO_ERROR, rt ? "structure" : "required",
              rt ? "resourceType must be a non-empty string" : "resourceType is missing");
        path_pop(c, o2);
        return;
    }
    const char *name = json_string_value(rt);
    const hub__fhir_type *t = hub__fhir_type_get(c->d, name, json_string_length(rt));
    if (!t || t->kind != HUB__FK_RESOURCE || t->group == HUB__FHIR_NONE) {
        size_t o2 = path_push(c, "resourceType", 12);
        char buf[72];
        ISSUE(c, HUB_OO_ERROR, "not-supported", "'%s' is not an R4 resource type",
              safe_name(name, buf));
        path_pop(c, o2);
        return;
    }
    if (root) path_push(c, t->name, strlen(t->name));
    check_object(c, obj, t->group, true);
    path_pop(c, old);
}

hub_status hub_fhir_validate(const hub_fhir_defs *d, const json_t *res,
                             const hub_fhir_validate_opts *opts, hub_oo *oo) {
    vctx ctx, *c = &ctx; /* on the stack: a valid resource allocates nothing */
    c->d = d;
    c->oo = oo;
    c->lenient = opts && opts->lenient;
    c->depth = 0;
    c->errors = 0;
    c->plen = 0;
    c->path[0] = '\0';
    if (!json_is_object(res)) {
        ISSUE(c, HUB_OO_ERROR, "structure", "a resource must be a JSON object, not %s",
              res ? kind_name(res) : "nothing");
    } else {
        check_resource(c, res, true);
    }
    return c->errors ? HUB_E_INVALID : HUB_OK;
}
