/* hub_fhir_parse_json: bytes to a jansson value, with the checks FHIR input
 * needs and jansson lacks, and diagnostics that never echo the input.
 *
 * jansson parses first (duplicate keys rejected; its own depth guard, 2048,
 * keeps the recursion bounded). A second pass then walks the bytes, now
 * known to be valid JSON, tracking the property path, to enforce our depth
 * limit and the precision of numbers: jansson keeps numbers as doubles, so a
 * decimal with more significant digits than FHIR requires implementations
 * to keep (18) would silently lose them. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#define MAX_DIGITS 18

typedef struct {
    const char *key; /* property name in an object, NULL in an array */
    size_t keylen;
    long index; /* position in an array */
} frame;

typedef struct {
    frame st[HUB_FHIR_MAX_DEPTH + 1];
    int depth;
    unsigned line, col;
} scan;

/* The FHIRPath-like location of the value being scanned:
 * "Observation.valueQuantity.value", "Patient.name[0].given[1]". */
static void scan_path(const scan *s, const char *root, char *out, size_t cap) {
    size_t n = (size_t)snprintf(out, cap, "%s", root);
    for (int i = 0; i < s->depth && n < cap; i++) {
        const frame *f = &s->st[i];
        if (f->key) {
            int k = (int)(f->keylen > 64 ? 64 : f->keylen);
            n += (size_t)snprintf(out + n, cap - n, "%s%.*s", n ? "." : "", k, f->key);
        } else if (f->index >= 0) {
            n += (size_t)snprintf(out + n, cap - n, "[%ld]", f->index);
        }
    }
}

/* Significant digits of a JSON number: leading zeros do not count, trailing
 * ones do (they state precision). */
static int sig_digits(const char *p, const char *end) {
    int n = 0;
    bool lead = true;
    if (p < end && *p == '-') p++;
    for (; p < end && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') continue;
        if (lead && *p == '0') continue;
        lead = false;
        n++;
    }
    return n;
}

/* Walks valid JSON; false with an issue added on the first violation. */
static bool scan_json(const char *p, const char *end, const char *root, hub_oo *oo) {
    scan sc, *s = &sc; /* 1.5 KB of stack */
    s->depth = 0;
    s->line = 1;
    const char *line_start = p;
    bool want_key = false, ok = true;
    char path[512];
    while (p < end && ok) {
        char c = *p;
        switch (c) {
        case '\n':
            s->line++;
            line_start = p + 1;
            p++;
            break;
        case '{':
        case '[':
            if (s->depth == HUB_FHIR_MAX_DEPTH) {
                scan_path(s, root, path, sizeof path);
                hub_oo_add(oo, HUB_OO_ERROR, "structure", path,
                           "JSON nested deeper than %d levels (line %u, column %u)",
                           HUB_FHIR_MAX_DEPTH, s->line, (unsigned)(p - line_start) + 1);
                ok = false;
                break;
            }
            s->st[s->depth++] = (frame){NULL, 0, c == '[' ? 0 : -1};
            want_key = c == '{';
            p++;
            break;
        case '}':
        case ']':
            if (s->depth > 0) s->depth--;
            want_key = false;
            p++;
            break;
        case ',':
            if (s->depth > 0) {
                frame *f = &s->st[s->depth - 1];
                if (f->index >= 0) f->index++;
                else want_key = true;
            }
            p++;
            break;
        case '"': {
            const char *q = ++p;
            while (p < end && *p != '"') p += *p == '\\' ? 2 : 1;
            if (want_key && s->depth > 0) {
                frame *f = &s->st[s->depth - 1];
                f->key = q;
                f->keylen = (size_t)(p - q);
                want_key = false;
            }
            p++;
            break;
        }
        default:
            if (c == '-' || (c >= '0' && c <= '9')) {
                const char *q = p;
                while (p < end && (*p == '-' || *p == '+' || *p == '.' || *p == 'e' ||
                                   *p == 'E' || (*p >= '0' && *p <= '9')))
                    p++;
                if (sig_digits(q, p) > MAX_DIGITS) {
                    scan_path(s, root, path, sizeof path);
                    hub_oo_add(oo, HUB_OO_ERROR, "value", path,
                               "number has more than %d significant digits (line %u, "
                               "column %u)",
                               MAX_DIGITS, s->line, (unsigned)(q - line_start) + 1);
                    ok = false;
                }
            } else {
                p++;
            }
        }
    }
    return ok;
}

static const char *jansson_reason(enum json_error_code c) {
    switch (c) {
    case json_error_invalid_utf8: return "invalid UTF-8";
    case json_error_premature_end_of_input: return "unexpected end of input";
    case json_error_end_of_input_expected: return "text after the JSON value";
    case json_error_null_character:
    case json_error_null_byte_in_key: return "NUL character";
    case json_error_duplicate_key: return "duplicate property name";
    case json_error_numeric_overflow: return "number out of range";
    case json_error_stack_overflow: return "JSON nested too deep";
    default: return "invalid JSON syntax";
    }
}

hub_status hub_fhir_parse_json(const char *p, size_t n, json_t **out, hub_oo *oo) {
    *out = NULL;
    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) { /* a UTF-8 BOM */
        p += 3;
        n -= 3;
    }
    size_t ws = 0;
    while (ws < n && (p[ws] == ' ' || p[ws] == '\t' || p[ws] == '\r' || p[ws] == '\n'))
        ws++;
    if (ws == n) {
        hub_oo_add(oo, HUB_OO_ERROR, "structure", NULL, "empty body: a resource is expected");
        return HUB_E_PARSE;
    }
    json_error_t je;
    json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        enum json_error_code c = json_error_code(&je);
        if (c == json_error_out_of_memory) {
            hub_oo_add(oo, HUB_OO_FATAL, "exception", NULL, "out of memory");
            return HUB_E_NOMEM;
        }
        hub_oo_add(oo, HUB_OO_ERROR, "structure",
                   NULL, "%s at line %d, column %d", jansson_reason(c), je.line,
                   je.column);
        return HUB_E_PARSE;
    }
    if (!json_is_object(j)) {
        hub_oo_add(oo, HUB_OO_ERROR, "structure", NULL,
                   "the body is a JSON %s, not an object",
                   json_is_array(j) ? "array" : json_is_string(j) ? "string" : "scalar");
        json_decref(j);
        return HUB_E_PARSE;
    }
    json_t *rt = json_object_get(j, "resourceType");
    const char *root = "$";
    if (!rt) {
        hub_oo_add(oo, HUB_OO_ERROR, "required", "resourceType",
                   "the resource has no resourceType");
    } else if (!json_is_string(rt)) {
        hub_oo_add(oo, HUB_OO_ERROR, "structure", "resourceType",
                   "resourceType is not a string");
    } else if (json_string_length(rt) == 0) {
        hub_oo_add(oo, HUB_OO_ERROR, "required", "resourceType", "resourceType is empty");
    } else {
        /* Only a name-like resourceType goes into expressions. */
        const char *name = json_string_value(rt);
        size_t i = 0;
        for (; name[i] && i <= 64; i++) {
            char ch = name[i];
            if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9')))
                break;
        }
        if (name[i] == '\0') root = name;
        if (!scan_json(p, p + n, root, oo)) {
            json_decref(j);
            return HUB_E_PARSE;
        }
        *out = j;
        return HUB_OK;
    }
    json_decref(j);
    return HUB_E_PARSE;
}
