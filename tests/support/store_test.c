/* Writer jobs run to completion from a test thread. */
#include "store_test.h"

#include "hub_test.h"

#include <criterion/criterion.h>
#include <pthread.h>

typedef struct {
    hub_store_job job;
    hub_test_job_fn body;
    void *arg;
    hub_status rc;
    bool done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} sync_job;

static hub_status sj_run(hub_store_tx *tx, hub_store_job *j, hub_err *err) {
    sync_job *s = (sync_job *)j;
    return s->body(tx, s->arg, err);
}

static void sj_done(hub_store_job *j, hub_status rc, const hub_err *err) {
    (void)err;
    sync_job *s = (sync_job *)j;
    pthread_mutex_lock(&s->mu);
    s->rc = rc;
    s->done = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

hub_status hub_test_in_job(hub_store *st, hub_test_job_fn body, void *arg) {
    sync_job s = {.job = {.run = sj_run, .done = sj_done}, .body = body, .arg = arg};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    hub_err err;
    cr_assert_eq(hub_store_submit(st, &s.job, &err), HUB_OK, "%s", err.msg);
    pthread_mutex_lock(&s.mu);
    while (!s.done) pthread_cond_wait(&s.cv, &s.mu);
    pthread_mutex_unlock(&s.mu);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    return s.rc;
}

hub_store *hub_test_store_open(char dir[256]) {
    hub_test_tmpdir(dir);
    hub_store_cfg c = {.dir = dir, .durable = false};
    hub_store *st = NULL;
    hub_err err;
    cr_assert_eq(hub_store_open(&c, &st, &err), HUB_OK, "%s", err.msg);
    return st;
}

void hub_test_store_close(hub_store *st, const char *dir) {
    hub_store_close(st);
    hub_test_rmtree(dir);
}
