/* The crash test: under continuous load from several connections, the hub
 * is killed with SIGKILL at random moments, 20 times, and restarted. Then
 * every message that got an AA is in the journal exactly once, and every
 * journal row is whole (message and ACK both there and matching). Senders
 * resend what was in flight at a crash, as real senders do, so resends are
 * checked to be stored once. */
#include "hub_test.h"
#include "hub/store.h"
#include "hub/v2.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { SENDERS = 4, ROUNDS = 20, MAX_IDS = 200000 };

typedef struct {
    int id;
    int port;
    atomic_bool *stop;
    unsigned next;        /* next message number */
    bool pending;         /* a message without ACK to resend first */
    unsigned pending_n;
} sender;

static atomic_int acked_count;
static char (*acked)[32];

static void *sender_main(void *arg) {
    sender *s = arg;
    int fd = hub_test_dial(s->port);
    hub_buf ack;
    hub_buf_init(&ack);
    while (!atomic_load(s->stop)) {
        unsigned n = s->pending ? s->pending_n : s->next++;
        char ctl[32], msg[600];
        snprintf(ctl, sizeof ctl, "S%d-%06u", s->id, n);
        snprintf(msg, sizeof msg,
                 "MSH|^~\\&|CRASH|TEST|HUB|HUB|20261125101500||ADT^A01^ADT_A01|%s|P|2.5.1\r"
                 "EVN|A01|20261125101500\r"
                 "PID|1||MRN%u^^^TEST^MR||DOE^JANE||19800101|F\r"
                 "PV1|1|I\r",
                 ctl, n);
        s->pending = true;
        s->pending_n = n;
        if (hub_test_send_frame(fd, msg) != 0) break;
        if (hub_test_read_frame(fd, &ack, 5000) != 0) break;
        if (strcmp(hub_test_ack_code(ack.p), "AA") == 0) {
            int k = atomic_fetch_add(&acked_count, 1);
            if (k < MAX_IDS) snprintf(acked[k], 32, "%s", ctl);
        }
        s->pending = false;
    }
    close(fd);
    hub_buf_release(&ack);
    return NULL;
}

typedef struct {
    int rows, bad;
    int64_t min_id;
    char (*ids)[32];
    int cap;
} scan_ctx;

static hub_status scan_row(void *ud, const hub_journal_row *r) {
    scan_ctx *c = ud;
    /* Whole: body parses, ACK present and answers this control id. */
    hub_arena a;
    hub_arena_init(&a, 4096);
    hub_v2_msg *m;
    hub_err err;
    bool ok = r->body_len > 0 &&
              hub_v2_parse(&a, r->body, r->body_len, NULL, &m, &err) == HUB_OK;
    if (ok) {
        char want[48];
        snprintf(want, sizeof want, "MSA|AA|%s", r->control_id);
        ok = r->ack_len > 0 && memmem(r->ack, r->ack_len, want, strlen(want)) != NULL &&
             (r->status == HUB_MSG_ACCEPTED || r->status == HUB_MSG_PROCESSED);
    }
    if (!ok) c->bad++;
    if (c->rows < c->cap) snprintf(c->ids[c->rows], 32, "%s", r->control_id);
    c->rows++;
    if (c->min_id == 0 || r->id < c->min_id) c->min_id = r->id;
    hub_arena_release(&a);
    return HUB_OK;
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

Test(e2e_crash, kill9_loses_no_acked_message, .timeout = 600) {
    acked = calloc(MAX_IDS, sizeof *acked);
    hub_test_hub h = {0};
    hub_test_start(&h, NULL);
    sender ss[SENDERS];
    memset(ss, 0, sizeof ss);
    for (int i = 0; i < SENDERS; i++) ss[i].id = i;
    srand((unsigned)time(NULL));
    for (int round = 0; round < ROUNDS; round++) {
        atomic_bool stop = false;
        pthread_t th[SENDERS];
        for (int i = 0; i < SENDERS; i++) {
            ss[i].port = h.mllp_port;
            ss[i].stop = &stop;
            pthread_create(&th[i], NULL, sender_main, &ss[i]);
        }
        /* Under load (sanitizers, a busy machine) a round may start
         * slowly: kill only once this round has seen ACKs, then at a random
         * moment after that. */
        int before = atomic_load(&acked_count);
        for (int w = 0; w < 1000 && atomic_load(&acked_count) < before + 5; w++)
            sleep_ms(10);
        sleep_ms(rand() % 400);
        cr_assert_eq(hub_test_signal_wait(&h, SIGKILL), 128 + SIGKILL);
        atomic_store(&stop, true);
        for (int i = 0; i < SENDERS; i++) pthread_join(th[i], NULL);
        hub_test_restart(&h, NULL);
    }
    /* A last round without a crash delivers what was still pending. */
    atomic_bool stop = false;
    pthread_t th[SENDERS];
    for (int i = 0; i < SENDERS; i++) {
        ss[i].port = h.mllp_port;
        ss[i].stop = &stop;
        pthread_create(&th[i], NULL, sender_main, &ss[i]);
    }
    sleep_ms(300);
    atomic_store(&stop, true);
    for (int i = 0; i < SENDERS; i++) pthread_join(th[i], NULL);
    cr_assert_eq(hub_test_signal_wait(&h, SIGTERM), 0);

    int nacked = atomic_load(&acked_count);
    cr_assert_gt(nacked, 100, "load was real: %d ACKs", nacked);
    hub_store *st;
    hub_err err;
    hub_store_cfg c = {.dir = h.dir, .read_only = true};
    cr_assert_eq(hub_store_open(&c, &st, &err), HUB_OK, "%s", err.msg);
    scan_ctx sc = {.ids = calloc(MAX_IDS, 32), .cap = MAX_IDS};
    hub_journal_filter f = {.status = -1, .limit = 1000, .with_body = true};
    for (;;) {
        int before = sc.rows;
        cr_assert_eq(hub_journal_list(st, &f, scan_row, &sc, &err), HUB_OK);
        if (sc.rows - before < 1000) break;
        f.before_id = sc.min_id; /* newest first: continue below it */
    }
    hub_store_close(st);
    cr_assert_lt(sc.rows, MAX_IDS);
    cr_assert_eq(sc.bad, 0, "%d journal rows are not whole", sc.bad);
    qsort(sc.ids, (size_t)sc.rows < (size_t)sc.cap ? (size_t)sc.rows : (size_t)sc.cap,
          32, cmp_id);
    for (int i = 1; i < sc.rows; i++)
        cr_assert_str_neq(sc.ids[i - 1], sc.ids[i], "stored twice: %s", sc.ids[i]);
    for (int i = 0; i < nacked && i < MAX_IDS; i++)
        cr_assert_not_null(bsearch(acked[i], sc.ids, (size_t)sc.rows, 32, cmp_id),
                           "ACKed but not journaled: %s", acked[i]);
    cr_log_info("crash test: %d rounds, %d ACKed, %d journaled, all once", ROUNDS,
                nacked, sc.rows);
    free(sc.ids);
    free(acked);
    hub_test_stop(&h);
}
