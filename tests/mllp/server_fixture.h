/* A test handler for the MLLP server: ACKs every frame (AA), or defers the
 * replies for the test to send; records what it saw. Each Criterion test
 * runs in its own process, so one global fixture is enough. */
#ifndef MLLP_SERVER_FIXTURE_H
#define MLLP_SERVER_FIXTURE_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hub/mllp.h"
#include "mllp_test.h"

enum { MODE_ACK, MODE_DEFER };

typedef struct {
    uint64_t conn, seq;
    char msg[512];
} deferred;

typedef struct {
    int mode;
    pthread_mutex_t lk;
    atomic_int frames, oversize, opens, closes;
    size_t oversize_len;
    char subject[256];
    bool had_subject;
    char close_reason[32];
    char prefix[16];
    char peer[64];
    deferred def[64];
    int ndef;
} fixture;

static fixture FX = {.lk = PTHREAD_MUTEX_INITIALIZER};
static hub_mllp_server *SRV;

static void fx_reply(uint64_t conn, uint64_t seq, const char *msg, size_t n, const char *code,
                     bool close_after) {
    char ack[512];
    mt_ack_for(msg, n, code, ack, sizeof ack);
    hub_buf b;
    hub_buf_init(&b);
    hub_mllp_frame_append(&b, ack, strlen(ack));
    cr_assert_eq(hub_mllp_server_reply(SRV, conn, seq, b.p, b.n, close_after), HUB_OK);
    hub_buf_release(&b);
}

static void fx_on_frame(void *ud, const hub_mllp_frame_ctx *ctx, const char *f, size_t n) {
    (void)ud;
    atomic_fetch_add(&FX.frames, 1);
    pthread_mutex_lock(&FX.lk);
    FX.had_subject = ctx->tls_subject != NULL;
    snprintf(FX.peer, sizeof FX.peer, "%s", ctx->peer);
    if (ctx->tls_subject) snprintf(FX.subject, sizeof FX.subject, "%s", ctx->tls_subject);
    if (ctx->oversize) {
        FX.oversize_len = n;
        snprintf(FX.prefix, sizeof FX.prefix, "%.*s", (int)(n < 15 ? n : 15), f);
        pthread_mutex_unlock(&FX.lk);
        atomic_fetch_add(&FX.oversize, 1);
        fx_reply(ctx->conn_id, ctx->seq, f, n, "AR", false);
        return;
    }
    hub_slice id;
    bool noack = hub_mllp_field(hub_slice_of(f, n), "MSH", 10, &id) &&
                 hub_slice_eq_cstr(id, "NOACK");
    if (FX.mode == MODE_DEFER) { /* the test replies; the first 64 are recorded */
        if (FX.ndef < 64) {
            deferred *d = &FX.def[FX.ndef++];
            d->conn = ctx->conn_id;
            d->seq = ctx->seq;
            snprintf(d->msg, sizeof d->msg, "%.*s", (int)n, f);
        }
        pthread_mutex_unlock(&FX.lk);
        return;
    }
    pthread_mutex_unlock(&FX.lk);
    /* control ids starting AE or AR get that answer */
    const char *code = "AA";
    hub_slice cid;
    if (hub_mllp_field(hub_slice_of(f, n), "MSH", 10, &cid) && cid.n >= 2) {
        if (memcmp(cid.p, "AE", 2) == 0) code = "AE";
        if (memcmp(cid.p, "AR", 2) == 0) code = "AR";
    }
    if (!noack) fx_reply(ctx->conn_id, ctx->seq, f, n, code, false);
}

static void fx_on_open(void *ud, const hub_mllp_frame_ctx *ctx) {
    (void)ud;
    (void)ctx;
    atomic_fetch_add(&FX.opens, 1);
}

static void fx_on_close(void *ud, const hub_mllp_frame_ctx *ctx, const char *why) {
    (void)ud;
    (void)ctx;
    pthread_mutex_lock(&FX.lk);
    snprintf(FX.close_reason, sizeof FX.close_reason, "%s", why);
    pthread_mutex_unlock(&FX.lk);
    atomic_fetch_add(&FX.closes, 1);
}

/* Waits up to 2 s for the server to have counted `n` opened connections:
 * a client's connection that carried nothing may close before the server's
 * loop accepts it, so the count can trail the client's summary. */
static inline int fx_opens_reach(int n) {
    for (int i = 0; i < 200 && atomic_load(&FX.opens) < n; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&FX.opens);
}

/* Starts the server with one channel; returns its port. */
static inline int fx_start(hub_mllp_channel_cfg *ch) {
    hub_mllp_server_cfg cfg = {.channels = ch, .n_channels = 1};
    hub_mllp_callbacks cb = {.on_frame = fx_on_frame, .on_open = fx_on_open,
                             .on_close = fx_on_close};
    hub_err err;
    hub_status st = hub_mllp_server_start(&cfg, &cb, &SRV, &err);
    cr_assert_eq(st, HUB_OK, "start: %s %s", err.where, err.msg);
    int port = hub_mllp_server_port(SRV, 0);
    cr_assert_gt(port, 0);
    return port;
}

static inline void fx_stop(void) {
    hub_mllp_server_free(SRV);
    SRV = NULL;
}

/* Sends message `id` on fd and expects an ACK with `code` naming it. */
static inline void fx_roundtrip(int fd, const char *id, const char *code) {
    char msg[512], ack[1024], got[3];
    mt_message(msg, sizeof msg, id);
    cr_assert(mt_write_frame(fd, msg));
    cr_assert_gt(mt_read_frame(fd, ack, sizeof ack, 5000), 0, "no ACK for %s", id);
    cr_assert(mt_ack_code(ack, got));
    cr_assert_str_eq(got, code);
    hub_slice f;
    cr_assert(hub_mllp_field(hub_slice_cstr(ack), "MSA", 2, &f));
    cr_assert(hub_slice_eq_cstr(f, id), "ACK names another message");
}

/* A roundtrip on server `s` (fx_on_frame replies through SRV). */
static inline void fx_roundtrip_on(hub_mllp_server *s, int fd) {
    hub_mllp_server *saved = SRV;
    SRV = s;
    fx_roundtrip(fd, "NOMEM", "AA");
    SRV = saved;
}

static inline void fx_sleep_ms(int ms) { usleep((useconds_t)ms * 1000); }

#endif
