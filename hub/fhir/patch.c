/* JSON Patch (RFC 6902) over jansson values, with JSON Pointer (RFC 6901)
 * paths. Malformed operations are HUB_E_PARSE; operations that cannot apply
 * to this document (a missing path, a failed test) are HUB_E_CONFLICT.
 * Diagnostics name the operation's index and the problem, never a value. */
#include "hub/fhir.h"
#include "hub/limits.h"

#include <stdlib.h>
#include <string.h>

#define MAX_TOKEN 256
#define MAX_PATCH_OPS 10000

/* One reference token, unescaped (~1 -> '/', ~0 -> '~'). Advances *p past
 * it. Returns false on a bad escape or an over-long token. */
static bool next_token(const char **p, char out[MAX_TOKEN], size_t *len) {
    const char *s = *p; /* at the '/' */
    s++;
    size_t n = 0;
    while (*s && *s != '/') {
        char ch = *s++;
        if (ch == '~') {
            if (*s == '0')
                ch = '~';
            else if (*s == '1')
                ch = '/';
            else
                return false;
            s++;
        }
        if (n + 1 >= MAX_TOKEN) return false;
        out[n++] = ch;
    }
    out[n] = '\0';
    *len = n;
    *p = s;
    return true;
}

/* An array index per RFC 6901: "0" or digits without a leading zero. */
static bool parse_index(const char *t, size_t n, size_t *out) {
    if (n == 0 || n > 9) return false;
    if (n > 1 && t[0] == '0') return false;
    size_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] < '0' || t[i] > '9') return false;
        v = v * 10 + (size_t)(t[i] - '0');
    }
    *out = v;
    return true;
}

typedef enum { PTR_OK, PTR_SYNTAX, PTR_MISSING } ptr_rc;

/* Resolves `path` to its parent container and last token. For the root
 * ("") *parent is NULL. */
static ptr_rc resolve_parent(json_t *doc, const char *path, json_t **parent,
                             char last[MAX_TOKEN], size_t *last_len) {
    *parent = NULL;
    if (*path == '\0') return PTR_OK;
    if (*path != '/') return PTR_SYNTAX;
    json_t *cur = doc;
    const char *p = path;
    char tok[MAX_TOKEN];
    size_t n;
    int depth = 0;
    for (;;) {
        if (!next_token(&p, tok, &n)) return PTR_SYNTAX;
        if (*p == '\0') {
            memcpy(last, tok, n + 1);
            *last_len = n;
            *parent = cur;
            return PTR_OK;
        }
        if (++depth > HUB_MAX_JSON_DEPTH) return PTR_MISSING;
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, tok, n);
        } else if (json_is_array(cur)) {
            size_t i;
            if (!parse_index(tok, n, &i)) return PTR_MISSING;
            cur = json_array_get(cur, i);
        } else {
            cur = NULL;
        }
        if (cur == NULL) return PTR_MISSING;
    }
}

/* The value at `path` (borrowed), or NULL. */
static ptr_rc get_at(json_t *doc, const char *path, json_t **out) {
    json_t *parent;
    char last[MAX_TOKEN];
    size_t n = 0;
    *out = NULL;
    ptr_rc rc = resolve_parent(doc, path, &parent, last, &n);
    if (rc) return rc;
    if (parent == NULL) {
        *out = doc;
        return PTR_OK;
    }
    if (json_is_object(parent)) {
        *out = json_object_getn(parent, last, n);
    } else if (json_is_array(parent)) {
        size_t i;
        if (parse_index(last, n, &i)) *out = json_array_get(parent, i);
    }
    return *out ? PTR_OK : PTR_MISSING;
}

static hub_status fail(hub_oo *oo, hub_status rc, size_t i, const char *what) {
    if (oo)
        hub_oo_add(oo, HUB_OO_ERROR,
                   rc == HUB_E_PARSE ? "structure" : "processing", NULL,
                   "patch operation %zu: %s", i, what);
    return rc;
}

static hub_status ptr_fail(hub_oo *oo, ptr_rc rc, size_t i, const char *which) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s %s", which,
             rc == PTR_SYNTAX ? "is not a valid JSON Pointer" : "does not exist");
    return fail(oo, rc == PTR_SYNTAX ? HUB_E_PARSE : HUB_E_CONFLICT, i, msg);
}

/* Replaces the whole document in place (a root add/replace). A resource
 * stays an object, so the new value must be one too. */
static hub_status set_root(json_t *doc, json_t *value, hub_oo *oo, size_t i) {
    if (!json_is_object(doc) || !json_is_object(value))
        return fail(oo, HUB_E_CONFLICT, i, "the document root must stay an object");
    json_t *copy = json_deep_copy(value);
    if (copy == NULL) return fail(oo, HUB_E_NOMEM, i, "out of memory");
    json_object_clear(doc);
    int e = json_object_update(doc, copy);
    json_decref(copy);
    return e ? fail(oo, HUB_E_NOMEM, i, "out of memory") : HUB_OK;
}

/* add: `value` is taken (a new reference). */
static hub_status do_add(json_t *doc, const char *path, json_t *value,
                         hub_oo *oo, size_t i) {
    json_t *parent;
    char last[MAX_TOKEN];
    size_t n = 0;
    ptr_rc prc = resolve_parent(doc, path, &parent, last, &n);
    if (prc) {
        json_decref(value);
        return ptr_fail(oo, prc, i, "path");
    }
    if (parent == NULL) {
        hub_status rc = set_root(doc, value, oo, i);
        json_decref(value);
        return rc;
    }
    if (json_is_object(parent)) {
        if (json_object_setn_new(parent, last, n, value))
            return fail(oo, HUB_E_NOMEM, i, "out of memory");
        return HUB_OK;
    }
    if (json_is_array(parent)) {
        size_t size = json_array_size(parent), idx;
        if (n == 1 && last[0] == '-') {
            idx = size;
        } else if (!parse_index(last, n, &idx)) {
            json_decref(value);
            return fail(oo, HUB_E_CONFLICT, i, "path has a bad array index");
        }
        if (idx > size) {
            json_decref(value);
            return fail(oo, HUB_E_CONFLICT, i, "array index out of range");
        }
        if (json_array_insert_new(parent, idx, value))
            return fail(oo, HUB_E_NOMEM, i, "out of memory");
        return HUB_OK;
    }
    json_decref(value);
    return fail(oo, HUB_E_CONFLICT, i, "path's parent is not a container");
}

/* remove; *removed (optional) gets the removed value (a new reference). */
static hub_status do_remove(json_t *doc, const char *path, json_t **removed,
                            hub_oo *oo, size_t i, const char *which) {
    json_t *parent;
    char last[MAX_TOKEN];
    size_t n = 0;
    if (removed) *removed = NULL;
    ptr_rc prc = resolve_parent(doc, path, &parent, last, &n);
    if (prc) return ptr_fail(oo, prc, i, which);
    if (parent == NULL) return fail(oo, HUB_E_CONFLICT, i, "cannot remove the root");
    if (json_is_object(parent)) {
        json_t *v = json_object_getn(parent, last, n);
        if (v == NULL) return ptr_fail(oo, PTR_MISSING, i, which);
        if (removed) *removed = json_incref(v);
        json_object_deln(parent, last, n);
        return HUB_OK;
    }
    if (json_is_array(parent)) {
        size_t idx;
        if (!parse_index(last, n, &idx) || idx >= json_array_size(parent))
            return ptr_fail(oo, PTR_MISSING, i, which);
        if (removed) *removed = json_incref(json_array_get(parent, idx));
        json_array_remove(parent, idx);
        return HUB_OK;
    }
    return ptr_fail(oo, PTR_MISSING, i, which);
}

/* JSON equality for `test`: numbers compare by value (1 equals 1.0),
 * objects ignore member order (jansson's json_equal, except numbers). */
static bool values_equal(const json_t *a, const json_t *b, int depth) {
    if (depth > HUB_MAX_JSON_DEPTH) return false;
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b)) return false;
    if (json_is_array(a)) {
        size_t n = json_array_size(a);
        if (n != json_array_size(b)) return false;
        for (size_t i = 0; i < n; i++)
            if (!values_equal(json_array_get(a, i), json_array_get(b, i), depth + 1))
                return false;
        return true;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) return false;
        const char *k;
        size_t kl;
        const json_t *v;
        json_object_keylen_foreach((json_t *)a, k, kl, v) {
            const json_t *w = json_object_getn(b, k, kl);
            if (w == NULL || !values_equal(v, w, depth + 1)) return false;
        }
        return true;
    }
    return json_equal(a, b);
}

static bool is_prefix_path(const char *from, const char *path) {
    size_t n = strlen(from);
    return strncmp(from, path, n) == 0 && path[n] == '/';
}

hub_status hub_json_patch(json_t *doc, const json_t *patch, hub_oo *oo) {
    if (!json_is_array(patch))
        return fail(oo, HUB_E_PARSE, 0, "a JSON Patch is an array of operations");
    if (json_array_size(patch) > MAX_PATCH_OPS)
        return fail(oo, HUB_E_PARSE, 0, "too many operations");
    size_t i;
    const json_t *o;
    json_array_foreach(patch, i, o) {
        if (!json_is_object(o)) return fail(oo, HUB_E_PARSE, i, "not an object");
        const char *op = json_string_value(json_object_get(o, "op"));
        const char *path = json_string_value(json_object_get(o, "path"));
        json_t *value = json_object_get(o, "value");
        const char *from = json_string_value(json_object_get(o, "from"));
        if (op == NULL) return fail(oo, HUB_E_PARSE, i, "missing 'op'");
        if (path == NULL) return fail(oo, HUB_E_PARSE, i, "missing 'path'");
        if (*path && *path != '/') return ptr_fail(oo, PTR_SYNTAX, i, "path");
        hub_status rc;
        if (strcmp(op, "add") == 0 || strcmp(op, "replace") == 0 ||
            strcmp(op, "test") == 0) {
            if (value == NULL) return fail(oo, HUB_E_PARSE, i, "missing 'value'");
        } else if (strcmp(op, "move") == 0 || strcmp(op, "copy") == 0) {
            if (from == NULL) return fail(oo, HUB_E_PARSE, i, "missing 'from'");
            if (*from && *from != '/') return ptr_fail(oo, PTR_SYNTAX, i, "from");
        } else if (strcmp(op, "remove") != 0) {
            return fail(oo, HUB_E_PARSE, i, "unknown 'op'");
        }

        if (strcmp(op, "add") == 0) {
            json_t *v = json_deep_copy(value);
            if (v == NULL) return fail(oo, HUB_E_NOMEM, i, "out of memory");
            rc = do_add(doc, path, v, oo, i);
        } else if (strcmp(op, "remove") == 0) {
            rc = do_remove(doc, path, NULL, oo, i, "path");
        } else if (strcmp(op, "replace") == 0) {
            json_t *cur;
            ptr_rc prc = get_at(doc, path, &cur);
            if (prc) return ptr_fail(oo, prc, i, "path");
            if (*path == '\0') {
                rc = set_root(doc, value, oo, i);
            } else {
                json_t *v = json_deep_copy(value);
                if (v == NULL) return fail(oo, HUB_E_NOMEM, i, "out of memory");
                rc = do_remove(doc, path, NULL, oo, i, "path");
                if (!rc) rc = do_add(doc, path, v, oo, i);
                else json_decref(v);
            }
        } else if (strcmp(op, "move") == 0) {
            if (strcmp(from, path) == 0) continue; /* a no-op */
            if (is_prefix_path(from, path))
                return fail(oo, HUB_E_CONFLICT, i,
                            "cannot move a value into one of its children");
            json_t *v;
            rc = do_remove(doc, from, &v, oo, i, "from");
            if (!rc) rc = do_add(doc, path, v, oo, i);
        } else if (strcmp(op, "copy") == 0) {
            json_t *src;
            ptr_rc prc = get_at(doc, from, &src);
            if (prc) return ptr_fail(oo, prc, i, "from");
            json_t *v = json_deep_copy(src);
            if (v == NULL) return fail(oo, HUB_E_NOMEM, i, "out of memory");
            rc = do_add(doc, path, v, oo, i);
        } else { /* test */
            json_t *cur;
            ptr_rc prc = get_at(doc, path, &cur);
            if (prc) return ptr_fail(oo, prc, i, "path");
            rc = values_equal(cur, value, 0) ? HUB_OK
                                        : fail(oo, HUB_E_CONFLICT, i,
                                               "test failed: the value differs");
        }
        if (rc) return rc;
    }
    return HUB_OK;
}
