/* The per-message bump allocator. */
#include "hub/core.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

struct hub__arena_block {
    hub__arena_block *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
};

#define ALIGN16(n) (((n) + 15u) & ~(size_t)15u)

void hub_arena_init(hub_arena *a, size_t block) {
    a->head = NULL;
    a->spare = NULL;
    a->block = block ? block : 16384;
    a->used_total = 0;
}

/* A large block's pages are asked of the kernel in one call rather than
 * one fault at a time as they are first written: on the VMs the hub runs
 * on a fault costs microseconds, and start-up's tables (mapping tables,
 * profiles) fill blocks of 64 KiB from end to end. Linux 5.14+; elsewhere,
 * or when it fails, the pages come on first touch as before. */
static void populate(void *p, size_t n) {
#ifdef MADV_POPULATE_WRITE
    uintptr_t pg = 4096, a = ((uintptr_t)p + pg - 1) & ~(pg - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~(pg - 1);
    if (e > a + 4 * pg) (void)madvise((void *)a, e - a, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)n;
#endif
}

static hub__arena_block *block_new(size_t cap) {
    if (cap > SIZE_MAX - sizeof(hub__arena_block)) return NULL;
    hub__arena_block *b = hub_malloc(sizeof *b + cap);
    if (b == NULL) return NULL;
    if (cap >= 65536) populate(b->data, cap);
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    return b;
}

void *hub_arena_alloc(hub_arena *a, size_t n) {
    size_t need = ALIGN16(n ? n : 1);
    if (need < n) return NULL; /* overflow */
    hub__arena_block *b = a->head;
    if (b == NULL || b->cap - b->used < need) {
        if (a->spare != NULL && a->spare->cap >= need) {
            b = a->spare;
            a->spare = b->next;
            b->used = 0;
        } else {
            b = block_new(need > a->block ? need : a->block);
            if (b == NULL) return NULL;
        }
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->used_total += need;
    return p;
}

void *hub_arena_calloc(hub_arena *a, size_t n) {
    void *p = hub_arena_alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

void *hub_arena_grow(hub_arena *a, void *p, size_t old, size_t n) {
    if (n <= old) return p;
    hub__arena_block *b = a->head;
    size_t old_al = ALIGN16(old ? old : 1);
    if (p != NULL && b != NULL &&
        (unsigned char *)p + old_al == b->data + b->used) {
        size_t new_al = ALIGN16(n);
        size_t off = (size_t)((unsigned char *)p - b->data);
        if (new_al >= n && b->cap - off >= new_al) {
            b->used = off + new_al;
            a->used_total += new_al - old_al;
            return p;
        }
    }
    void *q = hub_arena_alloc(a, n);
    if (q == NULL) return NULL;
    if (p != NULL && old) memcpy(q, p, old);
    return q;
}

char *hub_arena_strndup(hub_arena *a, const char *s, size_t n) {
    char *d = hub_arena_alloc(a, n + 1);
    if (d == NULL) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *hub_arena_sprintf(hub_arena *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) return NULL;
    char *d = hub_arena_alloc(a, (size_t)need + 1);
    if (d == NULL) return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)need + 1, fmt, ap);
    va_end(ap);
    return d;
}

static void free_chain(hub__arena_block *b) {
    while (b) {
        hub__arena_block *n = b->next;
        hub_free(b);
        b = n;
    }
}

void hub_arena_reset(hub_arena *a) {
    /* Keep the largest default-sized block for the next message; a message
     * that needed a huge block does not pin it forever. */
    hub__arena_block *keep = NULL, *b = a->head;
    while (b) {
        hub__arena_block *n = b->next;
        if (keep == NULL && b->cap == a->block) {
            keep = b;
            keep->next = NULL;
            keep->used = 0;
        } else {
            hub_free(b);
        }
        b = n;
    }
    free_chain(a->spare);
    a->spare = NULL;
    a->head = keep;
    a->used_total = 0;
}

void hub_arena_release(hub_arena *a) {
    free_chain(a->head);
    free_chain(a->spare);
    a->head = a->spare = NULL;
    a->used_total = 0;
}
