/* route: retention in the store. Delivered events older than the cutoff
 * go, oldest first, in batches; undelivered or recent ones stay; attempts
 * of delivered events, handshakes and heartbeats older than the cutoff go,
 * those of undelivered events stay; the first event kept is known. */
#include "hub/route.h"
#include "hub/store.h"
#include "hub_test.h"
#include "store_test.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static hub_store *st;
static char dir[256];

/* One writer job on the test's store, run to its commit. */
static hub_status in_job(hub_test_job_fn body, void *arg) {
    return hub_test_in_job(st, body, arg);
}

static void up(void) { st = hub_test_store_open(dir); }
static void down(void) { hub_test_store_close(st, dir); }

/* Subscription "a": events 1..10 created at 1000 * seq, 1..8 delivered
 * (attempts for each, a handshake at 500). Subscription "b": events 1..3,
 * old, never delivered (a failed attempt each). */
static hub_status fill(hub_store_tx *tx, void *arg, hub_err *err) {
    (void)arg;
    char status[16];
    hub_status rc = hub_route_store_sub(tx, "a", "active", NULL, err);
    if (!rc) rc = hub_route_store_sub(tx, "b", "active", NULL, err);
    for (int i = 1; !rc && i <= 10; i++) {
        hub_route_event ev = {.sub = "a", .type = "Observation", .id = "o", .version = i,
                              .created_ms = 1000 * i};
        int64_t seq;
        rc = hub_route_store_event(tx, &ev, &seq, err);
    }
    for (int i = 1; !rc && i <= 3; i++) {
        hub_route_event ev = {.sub = "b", .type = "Observation", .id = "o", .version = i,
                              .created_ms = 1};
        int64_t seq;
        rc = hub_route_store_event(tx, &ev, &seq, err);
    }
    if (!rc) rc = hub_route_store_attempt(tx, "a", 0, true, 200, 1, NULL, 10, 0, status, err);
    for (int i = 1; !rc && i <= 8; i++)
        rc = hub_route_store_attempt(tx, "a", i, true, 200, 1, NULL, 10, 0, status, err);
    for (int i = 1; !rc && i <= 3; i++)
        rc = hub_route_store_attempt(tx, "b", 1, false, 503, 1, "503", 1000, 0, status, err);
    return rc;
}

typedef struct {
    int64_t cutoff;
    int max_rows;
    char after[72];
    bool end;
    int64_t pruned;
    int64_t att_after, att_pruned;
} prune_args;

static hub_status prune(hub_store_tx *tx, void *arg, hub_err *err) {
    prune_args *p = arg;
    char next[72];
    hub_status rc = hub_route_store_prune_events(tx, p->after, p->cutoff, p->max_rows, next,
                                                 &p->end, &p->pruned, err);
    if (rc) return rc;
    snprintf(p->after, sizeof p->after, "%s", next);
    int64_t an;
    rc = hub_route_store_prune_attempts(tx, p->att_after, p->cutoff, 100, &an, &p->att_pruned, err);
    p->att_after = an;
    return rc;
}

static int64_t first_of(const char *sub) {
    int64_t f = -1;
    hub_err err;
    cr_assert_eq(hub_route_store_first(st, sub, &f, &err), HUB_OK);
    return f;
}

static hub_status count_attempt(void *ud, const hub_route_attempt *at) {
    (void)at;
    (*(int *)ud)++;
    return HUB_OK;
}

static int attempts_of(const char *sub) {
    int n = 0;
    hub_err err;
    cr_assert_eq(hub_route_store_attempts(st, sub, 1000, count_attempt, &n, &err), HUB_OK);
    return n;
}

Test(route_prune, delivered_and_old_only, .init = up, .fini = down) {
    cr_assert_eq(in_job(fill, NULL), HUB_OK);
    cr_assert_eq(first_of("a"), 1);
    /* before 6500: events 1..6 of a are delivered and old enough; b's
     * are old but undelivered */
    prune_args p = {.cutoff = 6500, .max_rows = 256};
    cr_assert_eq(in_job(prune, &p), HUB_OK);
    cr_assert_eq(p.pruned, 6);
    cr_assert(p.end, "two subscriptions: one batch");
    cr_assert_eq(first_of("a"), 7, "7..10 kept, one run");
    cr_assert_eq(first_of("b"), 1, "undelivered: never pruned");
    /* attempts are made now: none is older than 6500 ms since the epoch */
    cr_assert_eq(p.att_pruned, 0);
    cr_assert_eq(attempts_of("a"), 9);

    /* a later cutoff: 7 and 8 (delivered) go, 9 and 10 (not delivered) stay */
    prune_args q = {.cutoff = 1LL << 60, .max_rows = 256};
    cr_assert_eq(in_job(prune, &q), HUB_OK);
    cr_assert_eq(q.pruned, 2);
    cr_assert_eq(first_of("a"), 9);
    cr_assert_eq(first_of("b"), 1);
    cr_assert_eq(q.att_pruned, 9, "the handshake and the 8 delivered events' attempts");
    cr_assert_eq(attempts_of("a"), 0);
    cr_assert_eq(attempts_of("b"), 3, "attempts of undelivered events stay");
}

Test(route_prune, in_batches_of_max_rows, .init = up, .fini = down) {
    cr_assert_eq(in_job(fill, NULL), HUB_OK);
    prune_args p = {.cutoff = 1LL << 60, .max_rows = 3};
    cr_assert_eq(in_job(prune, &p), HUB_OK);
    cr_assert_eq(p.pruned, 3);
    cr_assert_not(p.end, "a has more: the pass goes on");
    cr_assert_str_eq(p.after, "", "and starts with a again");
    cr_assert_eq(first_of("a"), 4);
    cr_assert_eq(in_job(prune, &p), HUB_OK);
    cr_assert_eq(p.pruned, 3);
    cr_assert_eq(in_job(prune, &p), HUB_OK);
    cr_assert_eq(p.pruned, 2, "up to the delivered 8");
    cr_assert(p.end);
    cr_assert_eq(first_of("a"), 9);
}

Test(route_prune, first_is_zero_when_none_kept, .init = up, .fini = down) {
    cr_assert_eq(first_of("nobody"), 0);
}
