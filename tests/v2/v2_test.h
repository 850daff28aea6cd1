/* Helpers shared by the v2 tests. */
#ifndef V2_TEST_H
#define V2_TEST_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "hub/v2.h"

/* Parses a literal; asserts success. */
static inline hub_v2_msg *v2_parse_ok(hub_arena *a, const char *s) {
    hub_v2_msg *m = NULL;
    hub_err err;
    hub_err_clear(&err);
    hub_status rc = hub_v2_parse(a, s, strlen(s), NULL, &m, &err);
    cr_assert_eq(rc, HUB_OK, "parse failed: %s %s: %s", hub_status_name(rc), err.where,
                 err.msg);
    cr_assert_not_null(m);
    return m;
}

/* Asserts a raw slice equals a C string (absent equals NULL). */
#define v2_assert_slice(s, lit)                                                    \
    do {                                                                           \
        hub_slice s_ = (s);                                                        \
        const char *l_ = (lit);                                                    \
        if (l_ == NULL) {                                                          \
            cr_assert_null(s_.p, "expected absent");                               \
        } else {                                                                   \
            cr_assert_not_null(s_.p, "expected '%s', got absent", l_);             \
            cr_assert(hub_slice_eq_cstr(s_, l_), "expected '%s', got '%.*s'", l_,  \
                      (int)s_.n, s_.p);                                            \
        }                                                                          \
    } while (0)

/* ---- validation findings -------------------------------------------------- */

static inline void v2_findings_dump(const hub_v2_findings *fs) {
    for (size_t i = 0; i < fs->n; i++) {
        char p[64];
        hub_v2_loc_format(&fs->items[i].loc, p, sizeof p);
        fprintf(stderr, "  %s %c %d %s\n", p, fs->items[i].severity, fs->items[i].code,
                fs->items[i].text);
    }
}

/* The finding at `path` (terse form) with `code`, or NULL. */
static inline const hub_v2_finding *v2_finding(const hub_v2_findings *fs,
                                               const char *path, int code) {
    for (size_t i = 0; i < fs->n; i++) {
        char p[64];
        hub_v2_loc_format(&fs->items[i].loc, p, sizeof p);
        if (strcmp(p, path) == 0 && fs->items[i].code == code) return &fs->items[i];
    }
    return NULL;
}

/* That finding, which must be there with severity `sev`. */
static inline const hub_v2_finding *v2_finding_must(const hub_v2_findings *fs,
                                                    const char *path, int code,
                                                    char sev) {
    const hub_v2_finding *f = v2_finding(fs, path, code);
    if (f == NULL) v2_findings_dump(fs);
    cr_assert_not_null(f, "no %d at %s", code, path);
    cr_assert_eq(f->severity, sev, "%s: severity %c, want %c", path, f->severity, sev);
    return f;
}

#endif
