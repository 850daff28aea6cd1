/* Terse paths: PID-3(2).4.2, OBX(3)-5, MSH-9.2, GROUP(n)/SEG(n)-f. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static bool is_name_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           (c >= 'a' && c <= 'z');
}

/* Reads a positive number at *s; 0 on error (none, zero, or too many
 * digits). *big is set when it exceeds `max`. */
static unsigned long read_num(const char **s, unsigned long max, bool *big) {
    const char *p = *s;
    unsigned long v = 0;
    size_t k = 0;
    while (*p >= '0' && *p <= '9') {
        if (v < 100000000ul) v = v * 10 + (unsigned long)(*p - '0');
        p++;
        k++;
    }
    *s = p;
    if (k == 0 || v == 0) return 0;
    if (v > max) *big = true;
    return v;
}

/* "(n)" or "[n]" at *s, if present. Returns -1 on a malformed one, 0 when
 * absent, 1 when read. */
static int read_index(const char **s, unsigned long max, unsigned long *out,
                      bool *big) {
    char open = **s;
    if (open != '(' && open != '[') return 0;
    char close = open == '(' ? ')' : ']';
    const char *p = *s + 1;
    unsigned long v = read_num(&p, max, big);
    if (v == 0 || *p != close) return -1;
    *s = p + 1;
    *out = v;
    return 1;
}

hub_status hub_v2_path_parse(const char *text, hub_v2_path *out, hub_err *err) {
    memset(out, 0, sizeof *out);
    out->seg_occ = 1;
    if (text == NULL) return hub_err_set(err, HUB_E_ARG, "path", "empty path");
    size_t len = strnlen(text, HUB_MAX_PATH + 1);
    if (len > HUB_MAX_PATH)
        return hub_err_set(err, HUB_E_LIMIT, "path", "path over %d bytes", HUB_MAX_PATH);
    const char *s = text;
    bool big = false;
    if (*s == '/') s++;
#define BAD(what) \
    return hub_err_set(err, HUB_E_ARG, "path", "%s at column %d", what, (int)(s - text) + 1)
    for (;;) {
        const char *name = s;
        while (is_name_char(*s)) s++;
        size_t nlen = (size_t)(s - name);
        if (nlen == 0) BAD("expected a segment or group name");
        unsigned long occ = 1;
        if (read_index(&s, UINT32_MAX, &occ, &big) < 0) BAD("bad occurrence");
        if (*s == '/') {
            if (out->ngroups >= 4) BAD("more than 4 groups");
            if (nlen >= sizeof out->groups[0].name) BAD("group name too long");
            memcpy(out->groups[out->ngroups].name, name, nlen);
            out->groups[out->ngroups].name[nlen] = '\0';
            out->groups[out->ngroups].occ = (uint32_t)occ;
            out->ngroups++;
            s++;
            continue;
        }
        if (nlen != 3) {
            s = name;
            BAD("segment id is not 3 characters");
        }
        for (size_t i = 0; i < 3; i++) {
            char c = name[i];
            if (!((c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9'))) {
                s = name + i;
                BAD("segment id is not upper-case letters or digits");
            }
        }
        memcpy(out->seg_id, name, 3);
        out->seg_id[3] = '\0';
        out->seg_occ = (uint32_t)occ;
        break;
    }
    if (*s == '\0') goto done;
    if (*s != '-' && *s != '.') BAD("expected '-' before the field");
    s++;
    out->field = (uint16_t)read_num(&s, HUB_MAX_FIELDS, &big);
    if (out->field == 0 && !big) BAD("expected a field number");
    unsigned long v;
    int r = read_index(&s, HUB_MAX_REPS, &v, &big);
    if (r < 0) BAD("bad repetition");
    if (r > 0) {
        out->rep = (uint16_t)(v > UINT16_MAX ? UINT16_MAX : v);
        out->rep_given = true;
    }
    if (*s == '\0') goto done;
    if (*s != '.' && *s != '-') BAD("expected '.' before the component");
    s++;
    v = read_num(&s, HUB_MAX_COMPONENTS, &big);
    if (v == 0 && !big) BAD("expected a component number");
    out->comp = (uint16_t)(v > UINT16_MAX ? UINT16_MAX : v);
    if (*s == '\0') goto done;
    if (*s != '.' && *s != '-') BAD("expected '.' before the sub-component");
    s++;
    v = read_num(&s, HUB_MAX_SUBCOMPONENTS, &big);
    if (v == 0 && !big) BAD("expected a sub-component number");
    out->sub = (uint16_t)(v > UINT16_MAX ? UINT16_MAX : v);
    if (*s != '\0') BAD("unexpected text after the path");
done:
    if (big)
        return hub_err_set(err, HUB_E_LIMIT, "path", "index over the limits");
    return HUB_OK;
#undef BAD
}

/* Appends text to out[size] at *k, truncating; *k counts what was wanted. */
static void put_str(char *out, size_t size, size_t *k, const char *t, size_t n) {
    if (*k + 1 < size) {
        size_t room = size - 1 - *k;
        memcpy(out + *k, t, n < room ? n : room);
    }
    *k += n;
}

/* Appends `pre`, the decimal v, then `post` (each "" for none). Written by
 * hand: every finding of every message is formatted (journal, ACK). */
static void put_num(char *out, size_t size, size_t *k, const char *pre, unsigned v,
                    const char *post) {
    char d[16];
    size_t n = sizeof d;
    do {
        d[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put_str(out, size, k, pre, strlen(pre));
    put_str(out, size, k, d + n, sizeof d - n);
    put_str(out, size, k, post, strlen(post));
}

void hub_v2_path_format(const hub_v2_path *p, char *out, size_t size) {
    size_t k = 0;
    if (size == 0) return;
    for (unsigned i = 0; i < p->ngroups; i++) {
        put_str(out, size, &k, p->groups[i].name, strlen(p->groups[i].name));
        put_num(out, size, &k, "(", (unsigned)p->groups[i].occ, ")/");
    }
    put_str(out, size, &k, p->seg_id, strlen(p->seg_id));
    if (p->seg_occ > 1) put_num(out, size, &k, "(", (unsigned)p->seg_occ, ")");
    if (p->field) {
        put_num(out, size, &k, "-", p->field, "");
        if (p->rep_given || p->rep > 1) put_num(out, size, &k, "(", p->rep ? p->rep : 1u, ")");
        if (p->comp) {
            put_num(out, size, &k, ".", p->comp, "");
            if (p->sub) put_num(out, size, &k, ".", p->sub, "");
        }
    }
    out[k < size ? k : size - 1] = '\0';
}

void hub_v2_loc_format(const hub_v2_loc *l, char *out, size_t size) {
    if (size == 0) return;
    out[0] = '\0';
    if (l->seg_id[0] == '\0') return;
    /* hub_v2_path_format of the location as a path without groups, written
     * directly: this runs for every finding journaled. */
    size_t k = 0;
    put_str(out, size, &k, l->seg_id, strnlen(l->seg_id, 3));
    uint32_t occ = l->seg_seq ? l->seg_seq : 1;
    if (occ > 1) put_num(out, size, &k, "(", (unsigned)occ, ")");
    if (l->field) {
        put_num(out, size, &k, "-", l->field, "");
        if (l->rep > 1) put_num(out, size, &k, "(", l->rep, ")");
        if (l->comp) {
            put_num(out, size, &k, ".", l->comp, "");
            if (l->sub) put_num(out, size, &k, ".", l->sub, "");
        }
    }
    out[k < size ? k : size - 1] = '\0';
}

size_t hub_v2_path_seg(const hub_v2_msg *m, const hub_v2_path *path) {
    return hub_v2_seg_find(m, path->seg_id, 0, path->seg_occ);
}

hub_slice hub_v2_get_path(const hub_v2_msg *m, const hub_v2_path *path) {
    size_t seg = hub_v2_path_seg(m, path);
    if (seg == SIZE_MAX) return (hub_slice){NULL, 0};
    if (path->field == 0) return hub_v2_seg_raw(m, seg);
    return hub_v2_at(m, seg, path->field, path->rep, path->comp, path->sub);
}

hub_slice hub_v2_get(const hub_v2_msg *m, const char *text) {
    hub_v2_path path;
    if (hub_v2_path_parse(text, &path, NULL) != HUB_OK) return (hub_slice){NULL, 0};
    return hub_v2_get_path(m, &path);
}
