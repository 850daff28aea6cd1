/* Heap wrappers with a failure-injection hook for tests. */
#include "hub/core.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Allocations left before failures start; negative means never fail. */
static atomic_long fail_countdown = -1;

void hub_mem_fail_after(long n) {
    atomic_store(&fail_countdown, n > 0 ? n - 1 : -1);
}

static bool should_fail(void) {
    long v = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (v < 0) return false;
    if (v == 0) return true;
    atomic_fetch_sub(&fail_countdown, 1);
    return false;
}

void *hub_malloc(size_t n) {
    if (should_fail()) return NULL;
    return malloc(n ? n : 1);
}

void *hub_calloc(size_t count, size_t size) {
    if (should_fail()) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *hub_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

void hub_free(void *p) { free(p); }

char *hub_strndup(const char *s, size_t n) {
    char *d = hub_malloc(n + 1);
    if (d == NULL) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *hub_strdup(const char *s) { return hub_strndup(s, strlen(s)); }
