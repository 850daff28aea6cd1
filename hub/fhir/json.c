/* JSON text out. jansson prints a real with 17 significant digits, so 98.6
 * becomes 98.599999999999994 and 0.1 becomes 0.10000000000000001: wrong in
 * a clinical record. This writer prints each real in the shortest form that
 * reads back to the same double, and is otherwise what json_dumps writes
 * (key order kept, same escapes, compact or indented). */
#include "hub/fhir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static hub_status put(hub_buf *b, const char *p, size_t n) {
    return hub_buf_append(b, p, n);
}

int hub_json_real_text(double v, char s[40]) {
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(s, 37, "%.*g", prec, v);
        if (strtod(s, NULL) == v) break;
    }
    if (strpbrk(s, ".eEn") == NULL) { /* keep it a real: 1 -> 1.0 */
        memcpy(s + n, ".0", 3);
        n += 2;
    }
    return n;
}

static hub_status put_real(hub_buf *b, double v) {
    char s[40];
    int n = hub_json_real_text(v, s);
    return put(b, s, (size_t)n);
}

static hub_status put_string(hub_buf *b, const char *p, size_t n) {
    hub_status st = hub_buf_reserve(b, n + 2);
    if (st != HUB_OK) return st;
    b->p[b->n++] = '"';
    size_t run = 0; /* bytes copied as they are, pending */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        if (run && (st = put(b, p + i - run, run)) != HUB_OK) return st;
        run = 0;
        char esc[8];
        const char *e = esc;
        size_t en = 2;
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        default: en = (size_t)snprintf(esc, sizeof esc, "\\u%04X", c); break;
        }
        if ((st = put(b, e, en)) != HUB_OK) return st;
    }
    if (run && (st = put(b, p + n - run, run)) != HUB_OK) return st;
    return put(b, "\"", 1);
}

static hub_status newline(hub_buf *b, int indent, int depth) {
    if (indent == 0) return HUB_OK;
    hub_status st = hub_buf_reserve(b, 1 + (size_t)(indent * depth));
    if (st != HUB_OK) return st;
    b->p[b->n++] = '\n';
    memset(b->p + b->n, ' ', (size_t)(indent * depth));
    b->n += (size_t)(indent * depth);
    return HUB_OK;
}

static hub_status dump(const json_t *j, int indent, bool compact, int depth,
                       hub_buf *b) {
    hub_status st = HUB_OK;
    const char *sep = compact ? "," : ", ";
    const char *colon = compact ? ":" : ": ";
    if (indent) sep = ",";
    switch (json_typeof(j)) {
    case JSON_NULL: return put(b, "null", 4);
    case JSON_TRUE: return put(b, "true", 4);
    case JSON_FALSE: return put(b, "false", 5);
    case JSON_INTEGER: {
        char s[32];
        int n = snprintf(s, sizeof s, "%" JSON_INTEGER_FORMAT,
                         json_integer_value(j));
        return put(b, s, (size_t)n);
    }
    case JSON_REAL: return put_real(b, json_real_value(j));
    case JSON_STRING:
        return put_string(b, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        if (n == 0) return put(b, "[]", 2);
        if ((st = put(b, "[", 1)) != HUB_OK) return st;
        for (size_t i = 0; i < n && st == HUB_OK; i++) {
            if (i && (st = put(b, sep, strlen(sep))) != HUB_OK) break;
            if ((st = newline(b, indent, depth + 1)) != HUB_OK) break;
            st = dump(json_array_get(j, i), indent, compact, depth + 1, b);
        }
        if (st == HUB_OK) st = newline(b, indent, depth);
        return st == HUB_OK ? put(b, "]", 1) : st;
    }
    case JSON_OBJECT: {
        if (json_object_size(j) == 0) return put(b, "{}", 2);
        if ((st = put(b, "{", 1)) != HUB_OK) return st;
        bool first = true;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            if (!first && (st = put(b, sep, strlen(sep))) != HUB_OK) return st;
            first = false;
            if ((st = newline(b, indent, depth + 1)) != HUB_OK) return st;
            if ((st = put_string(b, k, strlen(k))) != HUB_OK) return st;
            if ((st = put(b, colon, strlen(colon))) != HUB_OK) return st;
            if ((st = dump(v, indent, compact, depth + 1, b)) != HUB_OK)
                return st;
        }
        if ((st = newline(b, indent, depth)) != HUB_OK) return st;
        return put(b, "}", 1);
    }
    }
    return HUB_E_ARG;
}

hub_status hub_json_dump_buf(const json_t *j, size_t flags, hub_buf *out) {
    if (j == NULL) return HUB_E_ARG;
    return dump(j, (int)(flags & 0x1F), (flags & JSON_COMPACT) != 0, 0, out);
}

char *hub_json_dumps(const json_t *j, size_t flags) {
    hub_buf b;
    hub_buf_init(&b);
    if (hub_json_dump_buf(j, flags, &b) != HUB_OK ||
        hub_buf_append(&b, "", 1) != HUB_OK) {
        hub_buf_release(&b);
        return NULL;
    }
    /* Callers free() what json_dumps returned; keep that contract. */
    char *s = malloc(b.n);
    if (s != NULL) memcpy(s, b.p, b.n);
    hub_buf_release(&b);
    return s;
}
