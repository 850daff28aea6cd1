/* store: the writer's grouped commits and the message journal. */
#include "hub/store.h"
#include "hub_test.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    hub_store_job job;
    hub_journal_row row;
    char ctl[32];
    bool fail;           /* make run() fail after inserting */
    hub_status done_rc;
    atomic_int *done_count;
    pthread_t run_thread, done_thread;
    int runs;
} ins_job;

static hub_status ins_run(hub_store_tx *tx, hub_store_job *j, hub_err *err) {
    ins_job *ij = (ins_job *)j;
    ij->run_thread = pthread_self();
    ij->runs++;
    hub_journal_row dup;
    if (hub_journal_find_dup(tx, ij->row.sender, ij->row.control_id, &dup, err) == HUB_OK)
        return hub_err_set(err, HUB_E_DUP, "test", "dup of %lld", (long long)dup.id);
    hub_status rc = hub_journal_insert(tx, &ij->row, err);
    if (rc) return rc;
    if (ij->fail) return hub_err_set(err, HUB_E_INVALID, "test", "asked to fail");
    return HUB_OK;
}

static void ins_done(hub_store_job *j, hub_status rc, const hub_err *err) {
    (void)err;
    ins_job *ij = (ins_job *)j;
    ij->done_rc = rc;
    ij->done_thread = pthread_self();
    atomic_fetch_add(ij->done_count, 1);
}

static void fill(ins_job *j, const char *sender, int n, hub_msg_status st,
                 atomic_int *cnt) {
    memset(j, 0, sizeof *j);
    snprintf(j->ctl, sizeof j->ctl, "CTL%d", n);
    j->row.received_ms = hub_now_ms();
    j->row.channel = "default";
    j->row.peer = "127.0.0.1:1";
    j->row.sender = sender;
    j->row.control_id = j->ctl;
    j->row.msg_type = "ADT^A01";
    j->row.version = "2.5.1";
    j->row.status = st;
    j->row.ack_code = st == HUB_MSG_ACCEPTED ? "AA" : "AE";
    j->row.ack = "MSH|^~\\&|ACK";
    j->row.ack_len = strlen(j->row.ack);
    j->row.body = "MSH|^~\\&|X";
    j->row.body_len = strlen(j->row.body);
    j->job.run = ins_run;
    j->job.done = ins_done;
    j->done_count = cnt;
}

static hub_store *open_tmp(char dir[256]) {
    hub_test_tmpdir(dir);
    hub_store_cfg c = {.dir = dir, .durable = true, .commit_batch_max = 512};
    hub_store *s;
    hub_err err;
    cr_assert_eq(hub_store_open(&c, &s, &err), HUB_OK, "%s", err.msg);
    return s;
}

/* The journal's accepted messages. */
static int64_t accepted_of(hub_store *s) {
    int64_t counts[4];
    hub_err err;
    cr_assert_eq(hub_journal_counts(s, counts, &err), HUB_OK, "%s", err.msg);
    return counts[HUB_MSG_ACCEPTED];
}

static void close_tmp(hub_store *s, const char *dir) {
    hub_store_close(s);
    hub_test_rmtree(dir);
}

static void wait_for(atomic_int *n, int want) {
    for (int i = 0; i < 2000 && atomic_load(n) < want; i++) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(atomic_load(n), want);
}

Test(store_journal, commits_are_grouped) {
    char dir[256];
    hub_store *s = open_tmp(dir);
    enum { N = 300 };
    static ins_job jobs[N];
    atomic_int done = 0;
    hub_err err;
    for (int i = 0; i < N; i++) {
        fill(&jobs[i], "LAB^HOSP", i, HUB_MSG_ACCEPTED, &done);
        cr_assert_eq(hub_store_submit(s, &jobs[i].job, &err), HUB_OK);
    }
    wait_for(&done, N);
    for (int i = 0; i < N; i++) cr_assert_eq(jobs[i].done_rc, HUB_OK);
    hub_store_stats st;
    hub_store_get_stats(s, &st);
    cr_assert_eq(st.jobs, N);
    cr_assert_lt(st.commits, N / 2, "grouped: %lld commits for %d jobs",
                 (long long)st.commits, N);
    cr_assert_eq(accepted_of(s), N);
    close_tmp(s, dir);
}

Test(store_journal, duplicate_found_and_failed_job_rolled_back_alone) {
    char dir[256];
    hub_store *s = open_tmp(dir);
    atomic_int done = 0;
    static ins_job a, b, c, d;
    hub_err err;
    fill(&a, "EHR^H", 1, HUB_MSG_ACCEPTED, &done);
    fill(&b, "EHR^H", 1, HUB_MSG_ACCEPTED, &done); /* same sender + id */
    fill(&c, "EHR^H", 2, HUB_MSG_ACCEPTED, &done);
    c.fail = true;
    fill(&d, "OTHER^H", 1, HUB_MSG_ACCEPTED, &done); /* other sender */
    hub_store_submit(s, &a.job, &err);
    hub_store_submit(s, &b.job, &err);
    hub_store_submit(s, &c.job, &err);
    hub_store_submit(s, &d.job, &err);
    wait_for(&done, 4);
    cr_assert_eq(a.done_rc, HUB_OK);
    cr_assert_eq(b.done_rc, HUB_E_DUP);
    cr_assert_eq(c.done_rc, HUB_E_INVALID);
    cr_assert_eq(d.done_rc, HUB_OK);
    cr_assert_eq(accepted_of(s), 2, "c rolled back, b never inserted");
    close_tmp(s, dir);
}

Test(store_journal, errored_message_may_be_resent_under_same_id) {
    char dir[256];
    hub_store *s = open_tmp(dir);
    atomic_int done = 0;
    static ins_job a, b;
    hub_err err;
    fill(&a, "EHR^H", 7, HUB_MSG_ERRORED, &done);
    fill(&b, "EHR^H", 7, HUB_MSG_ACCEPTED, &done);
    hub_store_submit(s, &a.job, &err);
    hub_store_submit(s, &b.job, &err);
    wait_for(&done, 2);
    cr_assert_eq(a.done_rc, HUB_OK);
    cr_assert_eq(b.done_rc, HUB_OK);
    close_tmp(s, dir);
}

typedef struct {
    int n;
    int64_t ids[64];
    char body[64];
} collect;

static hub_status collect_fn(void *ud, const hub_journal_row *r) {
    collect *c = ud;
    if (c->n < 64) c->ids[c->n] = r->id;
    c->n++;
    if (r->body) snprintf(c->body, sizeof c->body, "%.*s", (int)r->body_len, r->body);
    return HUB_OK;
}

Test(store_journal, list_filters_and_paging) {
    char dir[256];
    hub_store *s = open_tmp(dir);
    atomic_int done = 0;
    static ins_job j[20];
    hub_err err;
    for (int i = 0; i < 20; i++) {
        fill(&j[i], i % 2 ? "LAB^A" : "EHR^B", i,
             i % 5 == 0 ? HUB_MSG_ERRORED : HUB_MSG_ACCEPTED, &done);
        hub_store_submit(s, &j[i].job, &err);
    }
    wait_for(&done, 20);
    collect c = {0};
    hub_journal_filter f = {.status = -1, .limit = 1000};
    cr_assert_eq(hub_journal_list(s, &f, collect_fn, &c, &err), HUB_OK);
    cr_assert_eq(c.n, 20);
    cr_assert_gt(c.ids[0], c.ids[1], "newest first");
    memset(&c, 0, sizeof c);
    f.status = HUB_MSG_ERRORED;
    hub_journal_list(s, &f, collect_fn, &c, &err);
    cr_assert_eq(c.n, 4);
    memset(&c, 0, sizeof c);
    f.status = -1;
    f.sender = "LAB";
    hub_journal_list(s, &f, collect_fn, &c, &err);
    cr_assert_eq(c.n, 10);
    memset(&c, 0, sizeof c);
    f.sender = NULL;
    f.control_id = "CTL3";
    hub_journal_list(s, &f, collect_fn, &c, &err);
    cr_assert_eq(c.n, 1);
    /* Paging: 7 at a time covers all 20 once. */
    f.control_id = NULL;
    f.limit = 7;
    int total = 0;
    int64_t before = 0;
    for (int page = 0; page < 5; page++) {
        memset(&c, 0, sizeof c);
        f.before_id = before;
        hub_journal_list(s, &f, collect_fn, &c, &err);
        total += c.n;
        if (c.n < 7) break;
        before = c.ids[c.n - 1];
    }
    cr_assert_eq(total, 20);
    memset(&c, 0, sizeof c);
    cr_assert_eq(hub_journal_get(s, j[3].row.id, collect_fn, &c, &err), HUB_OK);
    cr_assert_str_eq(c.body, "MSH|^~\\&|X");
    cr_assert_eq(hub_journal_get(s, 99999, collect_fn, &c, &err), HUB_E_NOTFOUND);
    close_tmp(s, dir);
}

Test(store_journal, close_finishes_queued_jobs_then_refuses) {
    char dir[256];
    hub_store *s = open_tmp(dir);
    atomic_int done = 0;
    static ins_job j[50];
    hub_err err;
    for (int i = 0; i < 50; i++) {
        fill(&j[i], "A^B", i, HUB_MSG_ACCEPTED, &done);
        hub_store_submit(s, &j[i].job, &err);
    }
    hub_store_close(s);
    cr_assert_eq(atomic_load(&done), 50);
    /* Reopen read-only: everything is there. */
    hub_store_cfg rc = {.dir = dir, .read_only = true};
    cr_assert_eq(hub_store_open(&rc, &s, &err), HUB_OK, "%s", err.msg);
    cr_assert_eq(accepted_of(s), 50);
    cr_assert_eq(hub_store_submit(s, &j[0].job, &err), HUB_E_STATE);
    close_tmp(s, dir);
}

/* hub_store_run on an idle store: one group, run and acknowledged on the
 * calling thread before it returns; a failing job is rolled back alone. */
Test(store_journal, run_on_idle_store_commits_on_the_caller) {
    char dir[256];
    hub_store *s = open_tmp(dir);
    atomic_int done = 0;
    static ins_job j[4];
    for (int i = 0; i < 4; i++) fill(&j[i], "LAB^H", i, HUB_MSG_ACCEPTED, &done);
    fill(&j[3], "LAB^H", 1, HUB_MSG_ACCEPTED, &done); /* a resend of j[1] */
    j[2].fail = true;
    for (int i = 0; i < 3; i++) j[i].job.next = &j[i + 1].job;
    hub_err err;
    hub_store_stats before, after;
    hub_store_get_stats(s, &before);
    cr_assert_eq(hub_store_run(s, &j[0].job, &err), HUB_OK);
    cr_assert_eq(atomic_load(&done), 4, "every done ran before hub_store_run returned");
    hub_store_get_stats(s, &after);
    cr_assert_eq(after.commits - before.commits, 1);
    cr_assert_eq(after.jobs - before.jobs, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert(pthread_equal(j[i].run_thread, pthread_self()));
        cr_assert(pthread_equal(j[i].done_thread, pthread_self()));
    }
    cr_assert_eq(j[0].done_rc, HUB_OK);
    cr_assert_eq(j[1].done_rc, HUB_OK);
    cr_assert_eq(j[2].done_rc, HUB_E_INVALID);
    cr_assert_eq(j[3].done_rc, HUB_E_DUP, "the group's earlier insert is seen");
    cr_assert_eq(accepted_of(s), 2);
    cr_assert_eq(hub_store_run(s, NULL, &err), HUB_OK, "an empty list is nothing to do");
    close_tmp(s, dir);
}

/* A group of one job runs without a savepoint: when it fails, nothing of
 * it is committed, and the next group starts clean. */
Test(store_journal, failed_job_alone_leaves_nothing) {
    char dir[256];
    hub_store *s = open_tmp(dir);
    atomic_int done = 0;
    static ins_job a, b;
    fill(&a, "LAB^H", 1, HUB_MSG_ACCEPTED, &done);
    a.fail = true; /* fails after its insert */
    fill(&b, "LAB^H", 1, HUB_MSG_ACCEPTED, &done);
    hub_err err;
    cr_assert_eq(hub_store_run(s, &a.job, &err), HUB_OK);
    cr_assert_eq(a.done_rc, HUB_E_INVALID);
    cr_assert_eq(hub_store_run(s, &b.job, &err), HUB_OK);
    cr_assert_eq(b.done_rc, HUB_OK, "a's row was undone: b is no resend");
    cr_assert_eq(accepted_of(s), 1);
    close_tmp(s, dir);
}

/* Rerunnable jobs run once, without savepoints, when all succeed; when
 * one fails, the group is rolled back and run again one savepoint each:
 * the failing job alone is undone and each of the others is committed
 * once. */
Test(store_journal, rerunnable_group_runs_again_when_one_fails) {
    char dir[256];
    hub_store *s = open_tmp(dir);
    atomic_int done = 0;
    static ins_job ok[3], bad[4];
    for (int i = 0; i < 3; i++) {
        fill(&ok[i], "LAB^H", i, HUB_MSG_ACCEPTED, &done);
        ok[i].job.rerunnable = true;
        if (i) ok[i - 1].job.next = &ok[i].job;
    }
    for (int i = 0; i < 4; i++) {
        fill(&bad[i], "LAB^H", 10 + i, HUB_MSG_ACCEPTED, &done);
        bad[i].job.rerunnable = true;
        if (i) bad[i - 1].job.next = &bad[i].job;
    }
    bad[2].fail = true;
    hub_err err;
    cr_assert_eq(hub_store_run(s, &ok[0].job, &err), HUB_OK);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ok[i].done_rc, HUB_OK);
        cr_assert_eq(ok[i].runs, 1);
    }
    cr_assert_eq(hub_store_run(s, &bad[0].job, &err), HUB_OK);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(bad[i].done_rc, i == 2 ? HUB_E_INVALID : HUB_OK, "job %d", i);
        cr_assert_eq(bad[i].runs, i == 3 ? 1 : 2, "job %d ran %d times", i, bad[i].runs);
    }
    cr_assert_eq(accepted_of(s), 6, "3 + 3: the failing job's row undone");
    close_tmp(s, dir);
}

/* A job that holds the writer until it is let go. */
typedef struct {
    hub_store_job job;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running, go;
} gate_job;

static hub_status gate_run(hub_store_tx *tx, hub_store_job *job, hub_err *err) {
    (void)tx;
    (void)err;
    gate_job *g = (gate_job *)job;
    pthread_mutex_lock(&g->mu);
    g->running = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->go) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return HUB_OK;
}

/* While the writer is busy, hub_store_run queues: the jobs run after it,
 * on the writer, in order, and the caller does not wait. */
Test(store_journal, run_while_writer_busy_queues_in_order) {
    char dir[256];
    hub_store *s = open_tmp(dir);
    static gate_job g = {.job = {.run = gate_run}};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    hub_err err;
    cr_assert_eq(hub_store_submit(s, &g.job, &err), HUB_OK);
    pthread_mutex_lock(&g.mu);
    while (!g.running) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);

    atomic_int done = 0;
    static ins_job j[3];
    for (int i = 0; i < 3; i++) fill(&j[i], "LAB^H", i, HUB_MSG_ACCEPTED, &done);
    j[0].job.next = &j[1].job;
    cr_assert_eq(hub_store_run(s, &j[0].job, &err), HUB_OK);
    cr_assert_eq(hub_store_run(s, &j[2].job, &err), HUB_OK);
    cr_assert_eq(atomic_load(&done), 0, "queued behind the busy writer");

    pthread_mutex_lock(&g.mu);
    g.go = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    wait_for(&done, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(j[i].done_rc, HUB_OK);
        cr_assert_not(pthread_equal(j[i].run_thread, pthread_self()));
        if (i) cr_assert_gt(j[i].row.id, j[i - 1].row.id, "in the order given");
    }
    hub_store_close(s);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
    hub_test_rmtree(dir);
}

/* hub_store_queue hands a list to the writer thread, in order. */
Test(store_journal, queue_runs_on_the_writer_in_order) {
    char dir[256];
    hub_store *s = open_tmp(dir);
    atomic_int done = 0;
    static ins_job j[5];
    for (int i = 0; i < 5; i++) {
        fill(&j[i], "LAB^H", i, HUB_MSG_ACCEPTED, &done);
        if (i) j[i - 1].job.next = &j[i].job;
    }
    hub_err err;
    cr_assert_eq(hub_store_queue(s, &j[0].job, &err), HUB_OK);
    wait_for(&done, 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(j[i].done_rc, HUB_OK);
        cr_assert_not(pthread_equal(j[i].run_thread, pthread_self()));
        if (i) cr_assert_gt(j[i].row.id, j[i - 1].row.id);
    }
    cr_assert_eq(hub_store_queue(s, NULL, &err), HUB_OK);
    close_tmp(s, dir);
}

Test(store_journal, run_refused_by_a_read_only_store) {
    char dir[256];
    hub_store *s = open_tmp(dir);
    hub_store_close(s);
    hub_store_cfg rc = {.dir = dir, .read_only = true};
    hub_err err;
    cr_assert_eq(hub_store_open(&rc, &s, &err), HUB_OK, "%s", err.msg);
    atomic_int done = 0;
    static ins_job j;
    fill(&j, "A^B", 1, HUB_MSG_ACCEPTED, &done);
    cr_assert_eq(hub_store_run(s, &j.job, &err), HUB_E_STATE);
    cr_assert_eq(hub_store_queue(s, &j.job, &err), HUB_E_STATE);
    cr_assert_eq(atomic_load(&done), 0);
    close_tmp(s, dir);
}

Test(store_journal, bad_dirs) {
    hub_store *s;
    hub_err err;
    hub_store_cfg c = {.dir = "/proc/hub-no-such/x", .durable = true};
    cr_assert_eq(hub_store_open(&c, &s, &err), HUB_E_IO);
    cr_assert(strstr(err.msg, "cannot create data directory"));
    hub_store_cfg r = {.dir = "/tmp/hub-no-such-store-dir", .read_only = true};
    cr_assert_eq(hub_store_open(&r, &s, &err), HUB_E_NOTFOUND);
}
