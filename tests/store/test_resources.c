/* store: the resource calls (writer side inside jobs, reader side from
 * any thread), as a backend must implement them. */
#include "hub/store.h"
#include "hub_test.h"
#include "store_test.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


static char dir[256];
static hub_store *st;

static void up(void) { st = hub_test_store_open(dir); }
static void down(void) { hub_test_store_close(st, dir); }

static hub_status put_three(hub_store_tx *tx, void *arg, hub_err *err) {
    (void)arg;
    hub_store_token t1[] = {{.param = "identifier", .system = "urn:a", .value = "1"}, {.param = "identifier", .system = "", .value = "2"}};
    hub_store_version v = {"Patient", "p1", 1, 1000, false, "{\"v\":1}", 7, 0};
    hub_status rc = hub_store_res_put(tx, &v, t1, 2, err);
    if (rc) return rc;
    hub_store_token t2[] = {{.param = "identifier", .system = "urn:b", .value = "1"}};
    v = (hub_store_version){"Patient", "p1", 2, 2000, false, "{\"v\":2}", 7, 0};
    rc = hub_store_res_put(tx, &v, t2, 1, err);
    if (rc) return rc;
    v = (hub_store_version){"Patient", "p2", 1, 3000, false, "{\"w\":1}", 7, 0};
    return hub_store_res_put(tx, &v, t2, 1, err);
}

typedef struct {
    int n;
    char ids[8][72];
} ids;

static hub_status add_id(void *ud, const char *id) {
    ids *s = ud;
    snprintf(s->ids[s->n++], 72, "%s", id);
    return HUB_OK;
}

static hub_status checks(hub_store_tx *tx, void *arg, hub_err *err) {
    (void)arg;
    hub_store_version cur;
    cr_assert_eq(hub_store_res_current(tx, "Patient", "p1", false, &cur, err), HUB_OK);
    cr_assert_eq(cur.version, 2);
    cr_assert_null(cur.json);
    cr_assert_eq(hub_store_res_current(tx, "Patient", "p1", true, &cur, err), HUB_OK);
    cr_assert_eq(cur.json_len, 7);
    cr_assert_eq(memcmp(cur.json, "{\"v\":2}", 7), 0);
    cr_assert_eq(hub_store_res_get(tx, "Patient", "p1", 1, &cur, err), HUB_OK);
    cr_assert_eq(memcmp(cur.json, "{\"v\":1}", 7), 0);
    cr_assert_eq(hub_store_res_current(tx, "Patient", "zz", false, &cur, err), HUB_E_NOTFOUND);
    cr_assert_eq(hub_store_res_get(tx, "Patient", "p1", 3, &cur, err), HUB_E_NOTFOUND);
    /* index rows follow the current version only */
    ids s = {0};
    int n;
    cr_assert_eq(hub_store_res_find(tx, "Patient", "identifier", "urn:a", "1", 5, add_id, &s, &n, err), HUB_OK);
    cr_assert_eq(n, 0, "v1's identifiers were replaced");
    cr_assert_eq(hub_store_res_find(tx, "Patient", "identifier", NULL, "1", 5, add_id, &s, &n, err), HUB_OK);
    cr_assert_eq(n, 2, "any system");
    memset(&s, 0, sizeof s);
    cr_assert_eq(hub_store_res_find(tx, "Patient", "identifier", "urn:b", "1", 1, add_id, &s, &n, err), HUB_OK);
    cr_assert_eq(n, 2, "counts one past the limit");
    cr_assert_eq(s.n, 1, "calls back at most limit times");
    cr_assert_eq(hub_store_res_find(tx, "Patient", "identifier", "", "1", 5, NULL, NULL, &n, err), HUB_OK);
    cr_assert_eq(n, 0, "\"\" matches rows without a system only");
    cr_assert_eq(hub_store_res_find(tx, "Observation", "identifier", NULL, "1", 5, NULL, NULL, &n, err), HUB_OK);
    cr_assert_eq(n, 0, "per type");
    /* the same version twice is a conflict */
    hub_store_version v = {"Patient", "p1", 2, 9, false, "{}", 2, 0};
    cr_assert_eq(hub_store_res_put(tx, &v, NULL, 0, err), HUB_E_CONFLICT);
    /* a delete marker drops the index rows */
    v = (hub_store_version){"Patient", "p2", 2, 4000, true, NULL, 0, 0};
    cr_assert_eq(hub_store_res_put(tx, &v, NULL, 0, err), HUB_OK);
    cr_assert_eq(hub_store_res_find(tx, "Patient", "identifier", "urn:b", "1", 5, NULL, NULL, &n, err), HUB_OK);
    cr_assert_eq(n, 1);
    return HUB_OK;
}

typedef struct {
    int n;
    int64_t versions[16], seqs[16];
    char ids[16][72];
    bool deleted[16];
} seen;

static hub_status on_version(void *ud, const hub_store_version *v) {
    seen *s = ud;
    s->versions[s->n] = v->version;
    s->seqs[s->n] = v->seq;
    s->deleted[s->n] = v->deleted;
    snprintf(s->ids[s->n], 72, "%s", v->id);
    s->n++;
    return HUB_OK;
}

Test(store_resources, writer_and_reader_calls, .init = up, .fini = down) {
    cr_assert_eq(hub_test_in_job(st, put_three, NULL), HUB_OK);
    cr_assert_eq(hub_test_in_job(st, checks, NULL), HUB_OK);
    hub_err err;
    seen s = {0};
    cr_assert_eq(hub_store_res_read(st, "Patient", "p1", 0, on_version, &s, &err), HUB_OK);
    cr_assert_eq(s.versions[0], 2);
    cr_assert_eq(hub_store_res_read(st, "Patient", "p1", 1, on_version, &s, &err), HUB_OK);
    cr_assert_eq(s.versions[1], 1);
    cr_assert_eq(hub_store_res_read(st, "Patient", "p2", 0, on_version, &s, &err), HUB_OK);
    cr_assert(s.deleted[2]);
    cr_assert_eq(hub_store_res_read(st, "Patient", "p9", 0, on_version, &s, &err), HUB_E_NOTFOUND);

    int64_t next, total;
    memset(&s, 0, sizeof s);
    hub_store_history_q q = {.count = 2};
    cr_assert_eq(hub_store_res_history(st, &q, on_version, &s, &next, &total, &err), HUB_OK);
    cr_assert_eq(total, 4);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.ids[0], "p2");
    cr_assert(s.deleted[0]);
    cr_assert_neq(next, 0);
    q.cursor = next;
    cr_assert_eq(hub_store_res_history(st, &q, on_version, &s, &next, &total, &err), HUB_OK);
    cr_assert_eq(s.n, 4);
    cr_assert_eq(next, 0, "last page");
    cr_assert_gt(s.seqs[1], s.seqs[2], "newest first across pages");
    memset(&s, 0, sizeof s);
    hub_store_history_q qi = {.type = "Patient", .id = "p1", .since_ms = 1500, .count = 10};
    cr_assert_eq(hub_store_res_history(st, &qi, on_version, &s, &next, &total, &err), HUB_OK);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(total, 1);
    cr_assert_eq(s.versions[0], 2);
    hub_store_history_q bad = {.id = "p1", .count = 10};
    cr_assert_eq(hub_store_res_history(st, &bad, on_version, &s, &next, &total, &err), HUB_E_ARG);
}

/* 50 versions of a 100 KB resource: about 1,250 WAL pages a job. */
static hub_status put_big_versions(hub_store_tx *tx, void *arg, hub_err *err) {
    int *next = arg;
    static char json[100 * 1024];
    memset(json, 'x', sizeof json - 1);
    for (int i = 0; i < 50; i++, (*next)++) {
        hub_store_version v = {"Binary", "b1", *next, 1000 + *next, false, json, sizeof json - 1, 0};
        hub_status rc = hub_store_res_put(tx, &v, NULL, 0, err);
        if (rc) return rc;
    }
    return HUB_OK;
}

/* A store that is not durable folds its WAL back at 10,000 pages: after
 * 20,000 pages it is about 40 MB, not 80 (and its close starts the
 * database file's writeback). */
Test(store_resources, non_durable_store_checkpoints_its_wal, .init = up, .fini = down) {
    int version = 1;
    for (int j = 0; j < 16; j++) cr_assert_eq(hub_test_in_job(st, put_big_versions, &version), HUB_OK);
    char wal[300];
    snprintf(wal, sizeof wal, "%s/hub.db-wal", dir);
    struct stat sb;
    cr_assert_eq(stat(wal, &sb), 0);
    cr_expect_lt(sb.st_size, 50L << 20, "WAL of %lld bytes: no checkpoint", (long long)sb.st_size);
    hub_err err;
    seen s = {0};
    cr_assert_eq(hub_store_res_read(st, "Binary", "b1", 0, on_version, &s, &err), HUB_OK);
    cr_assert_eq(s.versions[0], 800);
}
