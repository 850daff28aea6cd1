/* The interpreter's JSON: a tree of nodes in the message's arena. Building
 * a Bundle in jansson cost a malloc per value, per object and per member
 * (and a hash table per object), and as much again to free it; the tables
 * look members up by name in objects of a few members, which a list walk
 * does as fast. The tree keeps jansson's behaviour where the interpreter
 * relies on it: members in insertion order, a member set again keeps its
 * place, strings that are not UTF-8 are refused (NULL), and setting NULL
 * does nothing. It is written as JSON text directly, or converted to
 * jansson for a consumer that wants json_t. */
#include "internal.h"
#include "hub/fhir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MJ_SLAB 64

static mj *node(mj_heap *h, mj_kind k) {
    if (h->next == h->end) {
        mj *slab = hub_arena_alloc(h->a, MJ_SLAB * sizeof *slab);
        if (slab == NULL) return NULL;
        h->next = slab;
        h->end = slab + MJ_SLAB;
    }
    mj *n = h->next++;
    n->kind = (uint8_t)k;
    n->flags = 0;
    n->klen = 0;
    n->n = 0;
    n->key = NULL;
    n->next = NULL;
    n->u.k.head = n->u.k.tail = NULL;
    return n;
}

mj *hub__mj_obj(mj_heap *h) { return node(h, MJ_OBJ); }
mj *hub__mj_arr(mj_heap *h) { return node(h, MJ_ARR); }

mj *hub__mj_bool(mj_heap *h, bool v) { return node(h, v ? MJ_TRUE : MJ_FALSE); }

mj *hub__mj_int(mj_heap *h, long long v) {
    mj *n = node(h, MJ_INT);
    if (n) n->u.i = v;
    return n;
}

mj *hub__mj_real(mj_heap *h, double v) {
    if (!isfinite(v)) return NULL; /* JSON has no NaN or infinity */
    mj *n = node(h, MJ_REAL);
    if (n) n->u.d = v;
    return n;
}

/* True when one of the 8 bytes of w is a control character, '"' or '\\'
 * (the "has a zero byte" test on each; exact: a borrow only starts at a
 * byte that is one). */
static inline bool needs_escape8(uint64_t w) {
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    return ((((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high) != 0;
}

/* Bytes a JSON string escapes: control characters, '"' and '\\'. */
static const unsigned char esc_byte[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, ['\\'] = 1,
};

/* The word p[0..n) reads as, for n from 1 to 16, with every byte of the
 * string in it at least once (two overlapping loads, or three for n < 4:
 * the way memcpy does small sizes; every load stays inside p[0..n)). */
static inline uint64_t short_word(const unsigned char *p, size_t n) {
    if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, p, 8);
        memcpy(&b, p + n - 8, 8);
        return a | b;
    }
    if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, p, 4);
        memcpy(&y, p + n - 4, 4);
        return (uint64_t)x | (uint64_t)y << 32;
    }
    /* 1 to 3 bytes: first, middle and last, the rest of the word spaces
     * (which neither escape nor fail the ASCII test). */
    return (uint64_t)p[0] | (uint64_t)p[n / 2] << 8 | (uint64_t)p[n - 1] << 16 |
           0x2020202020000000ULL;
}

/* RFC 3629 UTF-8: no overlongs, no surrogates, nothing past U+10FFFF.
 * Sets *plain when JSON writes the bytes as they are (no control
 * character, '"' or '\\'): the writer then copies the string without
 * looking at it again. */
static bool utf8_ok(const unsigned char *s, size_t n, bool *plain) {
    if (n >= 1 && n <= 16) { /* most values: checked as one or two words */
        uint64_t w = short_word(s, n);
        if ((w & 0x8080808080808080ULL) == 0) {
            /* The OR of two words can hide no escape byte from the
             * ASCII test, but it can from the escape test: test each. */
            if (n >= 8) {
                uint64_t a, b;
                memcpy(&a, s, 8);
                memcpy(&b, s + n - 8, 8);
                *plain = !needs_escape8(a) && !needs_escape8(b);
            } else if (n >= 4) {
                uint32_t x, y;
                memcpy(&x, s, 4);
                memcpy(&y, s + n - 4, 4);
                *plain = !needs_escape8((uint64_t)x | (uint64_t)y << 32);
            } else {
                bool esc = false;
                for (size_t i = 0; i < n; i++) esc |= esc_byte[s[i]] != 0;
                *plain = !esc;
            }
            return true;
        }
    }
    if (n > 16) {
        /* Longer values (urls, texts): eight bytes at a time, the last
         * eight overlapping; the escape tests of the words are ORed and
         * looked at once (each word's is exact, so their OR is). */
        const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
        uint64_t hi = 0, esc = 0, w;
        for (size_t i = 0;; i += 8) {
            if (i + 8 > n) i = n - 8;
            memcpy(&w, s + i, 8);
            uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
            hi |= w;
            esc |= ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b);
            if (i + 8 == n) break;
        }
        if ((hi & high) == 0) {
            *plain = (esc & high) == 0;
            return true;
        }
    }
    bool esc = false;
    size_t i = 0;
    while (i < n) {
        /* Eight ASCII bytes at a time: most values are ASCII. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL) break;
            esc |= needs_escape8(w);
            i += 8;
        }
        if (i == n) break;
        unsigned c = s[i];
        if (c < 0x80) {
            esc |= esc_byte[c] != 0;
            i++;
            continue;
        }
        size_t len;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
        else return false;
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += len;
    }
    *plain = !esc;
    return true;
}

mj *hub__mj_strn(mj_heap *h, const char *p, size_t n) {
    bool plain = false;
    if (p == NULL || !utf8_ok((const unsigned char *)p, n, &plain)) return NULL;
    mj *s = node(h, MJ_STR);
    if (s == NULL) return NULL;
    s->flags = plain ? MJ_STR_PLAIN : 0;
    s->u.s.p = p;
    s->u.s.n = n;
    return s;
}

mj *hub__mj_plain(mj_heap *h, const char *p, size_t n) {
    mj *s = node(h, MJ_STR);
    if (s == NULL) return NULL;
    s->flags = MJ_STR_PLAIN;
    s->u.s.p = p;
    s->u.s.n = n;
    return s;
}

mj *hub__mj_str(mj_heap *h, const char *p) {
    return p ? hub__mj_strn(h, p, strlen(p)) : NULL;
}

mj *hub__mj_strdup(mj_heap *h, const char *p, size_t n) {
    if (p == NULL) return NULL;
    char *d = hub_arena_strndup(h->a, p, n);
    return d ? hub__mj_strn(h, d, n) : NULL;
}

/* A string's text (NUL-terminated: every string the interpreter makes
 * is), or NULL for anything else. */
const char *hub__mj_sval(const mj *v) {
    return v && v->kind == MJ_STR ? v->u.s.p : NULL;
}

/* Names of one object mostly differ in their first two bytes (a second
 * byte read is safe: a first byte that matches is not the NUL). */
static inline bool key_eq(const char *a, const char *b) {
    if (a == b) return true;
    if (a[0] != b[0]) return false;
    return a[0] == 0 || (a[1] == b[1] && strcmp(a, b) == 0);
}

mj *hub__mj_get(const mj *o, const char *k) {
    if (o == NULL || o->kind != MJ_OBJ) return NULL;
    for (mj *c = o->u.k.head; c; c = c->next)
        if (key_eq(c->key, k)) return c;
    return NULL;
}

static void link_after(mj *parent, mj *prev, mj *v) {
    if (prev == NULL) {
        v->next = parent->u.k.head;
        parent->u.k.head = v;
    } else {
        v->next = prev->next;
        prev->next = v;
    }
    if (v->next == NULL) parent->u.k.tail = v;
    parent->n++;
}

static void unlink_after(mj *parent, mj *prev, mj *v) {
    if (prev) prev->next = v->next;
    else parent->u.k.head = v->next;
    if (parent->u.k.tail == v) parent->u.k.tail = prev;
    v->next = NULL;
    parent->n--;
}

/* Sets v under its own key: replaced where a member of that name stands,
 * as jansson does, else appended. */
static void set_member(mj *o, mj *v) {
    const char *k = v->key;
    mj *prev = NULL;
    for (mj *c = o->u.k.head; c; prev = c, c = c->next) {
        if (!key_eq(c->key, k)) continue;
        v->next = c->next;
        if (prev) prev->next = v;
        else o->u.k.head = v;
        if (o->u.k.tail == c) o->u.k.tail = v;
        return;
    }
    link_after(o, o->u.k.tail, v);
}

void hub__mj_set(mj *o, const char *k, mj *v) {
    if (o == NULL || v == NULL || o->kind != MJ_OBJ) return;
    v->key = k;
    v->flags &= (uint8_t)~MJ_KEY_PLAIN;
    set_member(o, v);
}

/* A member name from the tables: its length is known and it needs no
 * escaping, so the writer copies it as it is (when its length fits). */
static void name_plain(mj *v, const char *k, size_t klen) {
    v->key = k;
    if (klen <= UINT16_MAX) {
        v->flags |= MJ_KEY_PLAIN;
        v->klen = (uint16_t)klen;
    } else {
        v->flags &= (uint8_t)~MJ_KEY_PLAIN;
    }
}

void hub__mj_setk(mj *o, const char *k, size_t klen, mj *v) {
    if (o == NULL || v == NULL || o->kind != MJ_OBJ) return;
    name_plain(v, k, klen);
    set_member(o, v);
}

void hub__mj_addk(mj *o, const char *k, size_t klen, mj *v) {
    if (o == NULL || v == NULL || o->kind != MJ_OBJ) return;
    name_plain(v, k, klen);
    link_after(o, o->u.k.tail, v);
}

void hub__mj_set_keyed(mj *o, mj *v) {
    if (o == NULL || v == NULL || o->kind != MJ_OBJ || v->key == NULL) return;
    set_member(o, v);
}

void hub__mj_del(mj *o, const char *k) {
    if (o == NULL || o->kind != MJ_OBJ) return;
    mj *prev = NULL;
    for (mj *c = o->u.k.head; c; prev = c, c = c->next) {
        if (strcmp(c->key, k) == 0) {
            unlink_after(o, prev, c);
            return;
        }
    }
}

void hub__mj_update(mj *dst, mj *src) {
    if (dst == NULL || src == NULL || dst->kind != MJ_OBJ || src->kind != MJ_OBJ) return;
    for (mj *c = src->u.k.head, *nx; c; c = nx) {
        nx = c->next;
        set_member(dst, c);
    }
    src->u.k.head = src->u.k.tail = NULL;
    src->n = 0;
}

void hub__mj_append(mj *arr, mj *v) {
    if (arr == NULL || v == NULL || arr->kind != MJ_ARR) return;
    v->key = NULL;
    v->flags &= (uint8_t)~MJ_KEY_PLAIN;
    link_after(arr, arr->u.k.tail, v);
}

void hub__mj_prepend(mj *arr, mj *v) {
    if (arr == NULL || v == NULL || arr->kind != MJ_ARR) return;
    v->key = NULL;
    v->flags &= (uint8_t)~MJ_KEY_PLAIN;
    link_after(arr, NULL, v);
}

mj *hub__mj_at(const mj *arr, size_t i) {
    if (arr == NULL || arr->kind != MJ_ARR || i >= arr->n) return NULL;
    mj *c = arr->u.k.head;
    while (i--) c = c->next;
    return c;
}

void hub__mj_set_at(mj *arr, size_t i, mj *v) {
    if (arr == NULL || v == NULL || arr->kind != MJ_ARR || i >= arr->n) return;
    mj *prev = NULL, *c = arr->u.k.head;
    for (size_t k = 0; k < i; k++) prev = c, c = c->next;
    v->key = NULL;
    v->flags &= (uint8_t)~MJ_KEY_PLAIN;
    v->next = c->next;
    if (prev) prev->next = v;
    else arr->u.k.head = v;
    if (arr->u.k.tail == c) arr->u.k.tail = v;
}

size_t hub__mj_size(const mj *v) {
    return v && (v->kind == MJ_OBJ || v->kind == MJ_ARR) ? v->n : 0;
}

mj *hub__mj_copy(mj_heap *h, const mj *v) {
    if (v == NULL) return NULL;
    mj *n = node(h, MJ_NULL);
    if (n == NULL) return NULL;
    *n = *v;
    n->next = NULL;
    if (v->kind != MJ_OBJ && v->kind != MJ_ARR) return n;
    n->u.k.head = n->u.k.tail = NULL;
    n->n = 0;
    for (const mj *c = v->u.k.head; c; c = c->next) {
        mj *cc = hub__mj_copy(h, c);
        if (cc == NULL) return NULL;
        cc->key = c->key;
        link_after(n, n->u.k.tail, cc);
    }
    return n;
}

bool hub__mj_prune(mj *v) {
    if (v == NULL || (v->kind != MJ_OBJ && v->kind != MJ_ARR)) return false;
    mj *prev = NULL;
    for (mj *c = v->u.k.head, *nx; c; c = nx) {
        nx = c->next;
        bool box = c->kind == MJ_OBJ || c->kind == MJ_ARR; /* leaves stay */
        if (box && hub__mj_prune(c)) unlink_after(v, prev, c);
        else prev = c;
    }
    return v->n == 0;
}

/* ---- jansson in and out -------------------------------------------------------- */

mj *hub__mj_from_json(mj_heap *h, const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        mj *o = hub__mj_obj(h);
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)j, k, x) {
            mj *c = hub__mj_from_json(h, x);
            char *kk = hub_arena_strndup(h->a, k, strlen(k));
            if (o == NULL || c == NULL || kk == NULL) return NULL;
            hub__mj_set(o, kk, c);
        }
        return o;
    }
    case JSON_ARRAY: {
        mj *arr = hub__mj_arr(h);
        for (size_t i = 0; arr && i < json_array_size(j); i++) {
            mj *c = hub__mj_from_json(h, json_array_get(j, i));
            if (c == NULL) return NULL;
            hub__mj_append(arr, c);
        }
        return arr;
    }
    case JSON_STRING:
        return hub__mj_strdup(h, json_string_value(j), json_string_length(j));
    case JSON_INTEGER: return hub__mj_int(h, json_integer_value(j));
    case JSON_REAL: return hub__mj_real(h, json_real_value(j));
    case JSON_TRUE: return hub__mj_bool(h, true);
    case JSON_FALSE: return hub__mj_bool(h, false);
    default: return node(h, MJ_NULL);
    }
}

json_t *hub__mj_to_json(const mj *v) {
    switch ((mj_kind)v->kind) {
    case MJ_OBJ: {
        json_t *o = json_object();
        for (const mj *c = v->u.k.head; o && c; c = c->next) {
            if (json_object_set_new_nocheck(o, c->key, hub__mj_to_json(c)) != 0) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    case MJ_ARR: {
        json_t *arr = json_array();
        for (const mj *c = v->u.k.head; arr && c; c = c->next) {
            if (json_array_append_new(arr, hub__mj_to_json(c)) != 0) {
                json_decref(arr);
                return NULL;
            }
        }
        return arr;
    }
    case MJ_STR: return json_stringn_nocheck(v->u.s.p, v->u.s.n);
    case MJ_INT: return json_integer(v->u.i);
    case MJ_REAL: return json_real(v->u.d);
    case MJ_TRUE: return json_true();
    case MJ_FALSE: return json_false();
    case MJ_NULL: return json_null();
    }
    return NULL;
}

/* ---- JSON text ------------------------------------------------------------------ */

/* What hub_json_dumps writes (compact): the same escapes, reals in the
 * shortest form that reads back to the same double. The writer keeps its
 * own cursor into the buffer and checks the room once per piece (a
 * member's name and value, a scalar): hub_buf_append per piece cost more
 * than the text. A failed reserve is remembered; the rest is skipped. */
typedef struct {
    hub_buf *b;
    char *o, *end; /* the cursor and the end of the room (a NUL's byte kept) */
    hub_status st;
} wr;

static bool grow(wr *w, size_t n) {
    if (w->st != HUB_OK) return false;
    w->b->n = (size_t)(w->o - w->b->p);
    if ((w->st = hub_buf_reserve(w->b, n)) != HUB_OK) return false;
    w->o = w->b->p + w->b->n;
    w->end = w->b->p + w->b->cap - 1;
    return true;
}

static inline bool room(wr *w, size_t n) {
    return (size_t)(w->end - w->o) >= n || grow(w, n);
}

/* Writes p[0..n) escaped at o, which has room for 6n bytes; returns the
 * end. */
static char *escaped(char *o, const char *p, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!esc_byte[c]) {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            memcpy(o, "u00", 3);
            o[3] = hex[c >> 4];
            o[4] = hex[c & 15];
            o += 5;
            break;
        }
    }
    return o;
}

/* Writes p[0..n) as a JSON string body at o (room for 6n bytes). Most
 * names and values are short: up to 16 bytes they are checked and copied
 * as two overlapping words (the way memcpy does small sizes), never a
 * byte at a time; longer ones are checked eight bytes at a time and
 * copied whole. Every load stays inside p[0..n). */
static inline char *body(char *o, const char *p, size_t n) {
    uint64_t a, b;
    if (n >= 8 && n <= 16) {
        memcpy(&a, p, 8);
        memcpy(&b, p + n - 8, 8);
        if (needs_escape8(a) || needs_escape8(b)) return escaped(o, p, n);
        memcpy(o, &a, 8);
        memcpy(o + n - 8, &b, 8);
        return o + n;
    }
    if (n >= 4 && n < 8) {
        uint32_t x, y;
        memcpy(&x, p, 4);
        memcpy(&y, p + n - 4, 4);
        if (needs_escape8((uint64_t)x | (uint64_t)y << 32)) return escaped(o, p, n);
        memcpy(o, &x, 4);
        memcpy(o + n - 4, &y, 4);
        return o + n;
    }
    if (n < 4) return escaped(o, p, n);
    for (size_t i = 0; i + 8 <= n; i += 8) {
        memcpy(&a, p + i, 8);
        if (needs_escape8(a)) return escaped(o, p, n);
    }
    memcpy(&a, p + n - 8, 8);
    if (needs_escape8(a)) return escaped(o, p, n);
    memcpy(o, p, n);
    return o + n;
}

/* A string, with `before` (',' or 0) in front and `after` (':' or 0)
 * behind: an object's member name is written in one reservation. */
static inline void put_string(wr *w, char before, const char *p, size_t n, char after) {
    if (n > (SIZE_MAX - 4) / 6) {
        w->st = HUB_E_NOMEM;
        return;
    }
    if (!room(w, 6 * n + 4)) return;
    char *o = w->o;
    if (before) *o++ = before;
    *o++ = '"';
    o = body(o, p, n);
    *o++ = '"';
    if (after) *o++ = after;
    w->o = o;
}

/* Copies n bytes the way body() reads them: short sizes as two
 * overlapping words, not a call to memcpy. */
static inline void copy_short(char *o, const char *p, size_t n) {
    if (n > 16) {
        memcpy(o, p, n);
    } else if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, p, 8);
        memcpy(&b, p + n - 8, 8);
        memcpy(o, &a, 8);
        memcpy(o + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, p, 4);
        memcpy(&y, p + n - 4, 4);
        memcpy(o, &x, 4);
        memcpy(o + n - 4, &y, 4);
    } else {
        for (size_t i = 0; i < n; i++) o[i] = p[i];
    }
}

/* A member name known to need no escape (MJ_KEY_PLAIN). */
static inline void put_plain_key(wr *w, char before, const char *k, size_t n) {
    if (!room(w, n + 4)) return;
    char *o = w->o;
    if (before) *o++ = before;
    *o++ = '"';
    copy_short(o, k, n);
    o += n;
    *o++ = '"';
    *o++ = ':';
    w->o = o;
}

/* A string known to need no escape (MJ_STR_PLAIN). */
static inline void put_plain_string(wr *w, const char *p, size_t n) {
    if (!room(w, n + 2)) return;
    char *o = w->o;
    *o++ = '"';
    copy_short(o, p, n);
    o += n;
    *o++ = '"';
    w->o = o;
}

static inline void put(wr *w, const char *p, size_t n) {
    if (!room(w, n)) return;
    memcpy(w->o, p, n);
    w->o += n;
}

static inline void put1(wr *w, char ch) {
    if (room(w, 1)) *w->o++ = ch;
}

static void put_real(wr *w, double v) {
    char s[40];
    int n = hub_json_real_text(v, s);
    put(w, s, (size_t)n);
}

static void put_int(wr *w, long long v) {
    char s[24], *e = s + sizeof s, *p = e;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0) *--p = '-';
    put(w, p, (size_t)(e - p));
}

/* Writes a member or element that is a plain string under a plain key
 * (most leaves) in one reservation: separator, key and value; false when
 * c is no such leaf. */
static inline bool plain_leaf(wr *w, bool obj, char sep, const mj *c) {
    if (c->kind != MJ_STR || !(c->flags & MJ_STR_PLAIN)) return false;
    if (obj && !(c->flags & MJ_KEY_PLAIN)) return false;
    size_t kn = obj ? c->klen : 0, n = c->u.s.n;
    if (!room(w, kn + n + 6)) return true;
    char *o = w->o;
    if (sep) *o++ = sep;
    if (obj) {
        *o++ = '"';
        copy_short(o, c->key, kn);
        o += kn;
        *o++ = '"';
        *o++ = ':';
    }
    *o++ = '"';
    copy_short(o, c->u.s.p, n);
    o += n;
    *o++ = '"';
    w->o = o;
    return true;
}

static void dump(wr *w, const mj *v) {
    switch ((mj_kind)v->kind) {
    case MJ_NULL: put(w, "null", 4); return;
    case MJ_TRUE: put(w, "true", 4); return;
    case MJ_FALSE: put(w, "false", 5); return;
    case MJ_INT: put_int(w, v->u.i); return;
    case MJ_REAL: put_real(w, v->u.d); return;
    case MJ_STR:
        if (v->flags & MJ_STR_PLAIN) put_plain_string(w, v->u.s.p, v->u.s.n);
        else put_string(w, 0, v->u.s.p, v->u.s.n, 0);
        return;
    case MJ_ARR:
    case MJ_OBJ: {
        bool obj = v->kind == MJ_OBJ;
        put1(w, obj ? '{' : '[');
        for (const mj *c = v->u.k.head; c && w->st == HUB_OK; c = c->next) {
            char sep = c != v->u.k.head ? ',' : 0;
            if (plain_leaf(w, obj, sep, c)) continue;
            if (obj && (c->flags & MJ_KEY_PLAIN)) put_plain_key(w, sep, c->key, c->klen);
            else if (obj) put_string(w, sep, c->key, strlen(c->key), ':');
            else if (sep) put1(w, sep);
            dump(w, c);
        }
        put1(w, obj ? '}' : ']');
        return;
    }
    }
}

hub_status hub__mj_dump(const mj *v, hub_buf *out) {
    wr w = {out, NULL, NULL, HUB_OK};
    /* A Bundle is some tens of KB: one allocation rather than a chain of
     * doubling reallocs. */
    if (!grow(&w, 32u << 10)) return w.st;
    dump(&w, v);
    if (w.st != HUB_OK) return w.st;
    out->n = (size_t)(w.o - out->p);
    out->p[out->n] = '\0'; /* the byte room() keeps */
    return HUB_OK;
}
