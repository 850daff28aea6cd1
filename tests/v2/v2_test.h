/* Helpers shared by the v2 tests. */
#ifndef V2_TEST_H
#define V2_TEST_H

#include <criterion/criterion.h>
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

#endif
