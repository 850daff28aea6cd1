/* SMART scopes, v1 and v2: context/Type.permissions. */
#include "hub/auth.h"

#include <stdio.h>
#include <string.h>

static unsigned v2_perms(const char *p, size_t n) {
    static const char ORDER[] = "cruds";
    unsigned bits = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *k = memchr(ORDER + at, p[i], sizeof ORDER - 1 - at);
        if (k == NULL) return 0; /* unknown letter, repeated, or out of order */
        at = (size_t)(k - ORDER) + 1;
        bits |= 1u << (k - ORDER);
    }
    return bits;
}

/* One scope; false when it is not a resource scope we know. */
static bool parse_one(const char *s, size_t n, hub_scope *out) {
    memset(out, 0, sizeof *out);
    const char *slash = memchr(s, '/', n);
    if (slash == NULL) return false;
    size_t cn = (size_t)(slash - s);
    if (cn == 7 && memcmp(s, "patient", 7) == 0) out->ctx = 'p';
    else if (cn == 4 && memcmp(s, "user", 4) == 0) out->ctx = 'u';
    else if (cn == 6 && memcmp(s, "system", 6) == 0) out->ctx = 's';
    else return false;
    const char *t = slash + 1, *end = s + n;
    const char *dot = memchr(t, '.', (size_t)(end - t));
    if (dot == NULL || dot == t || (size_t)(dot - t) >= sizeof out->type) return false;
    for (const char *p = t; p < dot; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p == '*' && dot - t == 1)))
            return false;
    memcpy(out->type, t, (size_t)(dot - t));
    const char *p = dot + 1;
    size_t pn = (size_t)(end - p);
    /* v2 scopes may narrow with ?param=value; we cannot enforce that
     * narrowing, so such a scope is not understood (never over-granted). */
    if (memchr(p, '?', pn)) return false;
    if (pn == 4 && memcmp(p, "read", 4) == 0) out->perms = HUB_PERM_R | HUB_PERM_S, out->v1 = true;
    else if (pn == 5 && memcmp(p, "write", 5) == 0)
        out->perms = HUB_PERM_C | HUB_PERM_U | HUB_PERM_D, out->v1 = true;
    else if (pn == 1 && *p == '*') out->perms = HUB_PERM_ALL, out->v1 = true;
    else out->perms = v2_perms(p, pn);
    return out->perms != 0;
}

hub_status hub_scopes_parse(const char *text, bool strict, hub_scopes *out, hub_err *err) {
    memset(out, 0, sizeof *out);
    const char *p = text ? text : "";
    int pos = 0;
    while (*p) {
        while (*p == ' ') p++;
        if (!*p) break;
        size_t n = strcspn(p, " ");
        pos++;
        if (n == 5 && memcmp(p, "admin", 5) == 0) {
            out->admin = true;
        } else {
            hub_scope sc;
            if (parse_one(p, n, &sc)) {
                if (out->n == HUB_MAX_SCOPES)
                    return hub_err_set(err, HUB_E_LIMIT, "scope", "more than %d scopes",
                                       HUB_MAX_SCOPES);
                out->s[out->n++] = sc;
            } else if (strict) {
                return hub_err_set(err, HUB_E_PARSE, "scope", "scope %d is not understood", pos);
            }
        }
        p += n;
    }
    return HUB_OK;
}

bool hub_scopes_allow(const hub_scopes *s, const char *type, unsigned perms) {
    unsigned have = 0;
    for (size_t i = 0; i < s->n; i++) {
        const hub_scope *k = &s->s[i];
        if (k->type[0] == '*' || (type && strcmp(k->type, type) == 0)) have |= k->perms;
        if ((have & perms) == perms) return true;
    }
    return false;
}

static void v2_text(unsigned perms, char *out) {
    static const char ORDER[] = "cruds";
    int n = 0;
    for (int i = 0; i < 5; i++)
        if (perms & (1u << i)) out[n++] = ORDER[i];
    out[n] = '\0';
}

size_t hub_scopes_grant(const hub_scopes *req, const hub_scopes *allowed, hub_scopes *granted,
                        char *out, size_t cap) {
    memset(granted, 0, sizeof *granted);
    size_t len = 0;
    if (cap) out[0] = '\0';
    for (size_t i = 0; i < req->n; i++) {
        const hub_scope *r = &req->s[i];
        unsigned perms = 0;
        for (size_t k = 0; k < allowed->n; k++) {
            const hub_scope *a = &allowed->s[k];
            if (a->ctx != r->ctx) continue;
            if (a->type[0] == '*' || (r->type[0] != '*' && strcmp(a->type, r->type) == 0))
                perms |= a->perms;
        }
        perms &= r->perms;
        if (perms == 0) continue;
        hub_scope g = *r;
        g.perms = perms;
        granted->s[granted->n++] = g;
        const char *ctx = r->ctx == 'p' ? "patient" : r->ctx == 'u' ? "user" : "system";
        char p[8];
        if (r->v1 && perms == r->perms)
            snprintf(p, sizeof p, "%s", perms == HUB_PERM_ALL                       ? "*"
                                        : perms == (HUB_PERM_R | HUB_PERM_S) ? "read"
                                                                             : "write");
        else
            v2_text(perms, p);
        int w = snprintf(out + len, cap - len, "%s%s/%s.%s", len ? " " : "", ctx, r->type, p);
        if (w > 0 && (size_t)w < cap - len) len += (size_t)w;
    }
    if (req->admin && allowed->admin) {
        granted->admin = true;
        int w = snprintf(out + len, cap - len, "%sadmin", len ? " " : "");
        if (w > 0 && (size_t)w < cap - len) len += (size_t)w;
    }
    return granted->n + (granted->admin ? 1 : 0);
}
