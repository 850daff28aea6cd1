/* The MLLP server over real sockets on port 0, with a test handler. */
#include "server_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

static hub_mllp_channel_cfg plain(void) {
    return (hub_mllp_channel_cfg){.name = "t", .host = "127.0.0.1", .port = 0};
}

Test(mllp_server, one_message_gets_aa, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    int fd = mt_dial(port);
    cr_assert_geq(fd, 0);
    fx_roundtrip(fd, "C1", "AA");
    fx_roundtrip(fd, "C2", "AA");
    close(fd);
}

Test(mllp_server, pipelined_frames_in_one_write, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    int fd = mt_dial(port);
    hub_buf b;
    hub_buf_init(&b);
    char msg[256];
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof id, "P%d", i);
        mt_message(msg, sizeof msg, id);
        hub_mllp_frame_append(&b, msg, strlen(msg));
    }
    cr_assert(mt_write(fd, b.p, b.n));
    hub_buf_release(&b);
    for (int i = 0; i < 20; i++) {
        char ack[512], want[16];
        cr_assert_gt(mt_read_frame(fd, ack, sizeof ack, 5000), 0);
        hub_slice f;
        cr_assert(hub_mllp_field(hub_slice_cstr(ack), "MSA", 2, &f));
        snprintf(want, sizeof want, "P%d", i);
        cr_assert(hub_slice_eq_cstr(f, want), "ACK %d out of order", i);
    }
    close(fd);
}

Test(mllp_server, frame_split_across_reads, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    int fd = mt_dial(port);
    char msg[256];
    mt_message(msg, sizeof msg, "SPLIT");
    hub_buf b;
    hub_buf_init(&b);
    hub_mllp_frame_append(&b, msg, strlen(msg));
    /* byte by byte, with pauses so each byte is its own read */
    for (size_t i = 0; i < b.n; i++) {
        cr_assert(mt_write(fd, b.p + i, 1));
        if (i % 16 == 0 || i + 2 >= b.n) fx_sleep_ms(2);
    }
    hub_buf_release(&b);
    char ack[512], code[3];
    cr_assert_gt(mt_read_frame(fd, ack, sizeof ack, 5000), 0);
    cr_assert(mt_ack_code(ack, code));
    cr_assert_str_eq(code, "AA");
    cr_assert_eq(atomic_load(&FX.frames), 1);
    close(fd);
}

Test(mllp_server, oversize_gets_nack_then_close, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    ch.max_frame = 1024;
    int port = fx_start(&ch);
    int fd = mt_dial(port);
    fx_roundtrip(fd, "BEFORE", "AA");
    size_t n = 8192;
    char *big = malloc(n + 1);
    mt_message(big, n, "BIG");
    size_t l = strlen(big);
    memset(big + l, 'X', n - l);
    big[n] = '\0';
    hub_buf b;
    hub_buf_init(&b);
    hub_mllp_frame_append(&b, big, n);
    cr_assert(mt_write(fd, b.p, b.n));
    char ack[512], code[3];
    cr_assert_gt(mt_read_frame(fd, ack, sizeof ack, 5000), 0);
    cr_assert(mt_ack_code(ack, code));
    cr_assert_str_eq(code, "AR");
    hub_slice f;
    cr_assert(hub_mllp_field(hub_slice_cstr(ack), "MSA", 2, &f));
    cr_assert(hub_slice_eq_cstr(f, "BIG"), "the NACK names the oversize message");
    cr_assert(mt_wait_closed(fd, 3000), "connection not closed after the NACK");
    cr_assert_eq(atomic_load(&FX.oversize), 1);
    cr_assert_str_eq(FX.prefix, "MSH|^~\\&|SND|FA");
    cr_assert_gt(FX.oversize_len, 1024);
    cr_assert_leq(FX.oversize_len, HUB_MLLP_OVERSIZE_PREFIX);
    for (int i = 0; i < 50 && atomic_load(&FX.closes) == 0; i++) fx_sleep_ms(10);
    cr_assert_str_eq(FX.close_reason, "oversize");
    hub_buf_release(&b);
    free(big);
    close(fd);
    /* other connections are unaffected */
    fd = mt_dial(port);
    fx_roundtrip(fd, "AFTER", "AA");
    close(fd);
}

Test(mllp_server, garbage_between_frames_skipped, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    ch.name = "garbage";
    int port = fx_start(&ch);
    hub_metric *m = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_skipped_bytes_total",
                                   "channel=\"garbage\"", "x");
    int fd = mt_dial(port);
    cr_assert(mt_write(fd, "hello\r\n", 7));
    fx_roundtrip(fd, "G1", "AA");
    cr_assert(mt_write(fd, "\x1c\x0d junk", 7));
    fx_roundtrip(fd, "G2", "AA");
    cr_assert_eq(hub_metric_value(m), 14);
    close(fd);
}

Test(mllp_server, empty_frame_is_ignored, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    int fd = mt_dial(port);
    cr_assert(mt_write(fd, "\x0b\x1c\x0d", 3));
    fx_roundtrip(fd, "E1", "AA");
    cr_assert_eq(atomic_load(&FX.frames), 1);
    close(fd);
}

Test(mllp_server, connection_limit_refuses_new_keeps_old, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    ch.name = "limit";
    ch.max_connections = 2;
    int port = fx_start(&ch);
    int a = mt_dial(port), b = mt_dial(port);
    fx_roundtrip(a, "A1", "AA");
    fx_roundtrip(b, "B1", "AA");
    int c = mt_dial(port);
    cr_assert_geq(c, 0);
    cr_assert(mt_wait_closed(c, 3000), "third connection not refused");
    close(c);
    fx_roundtrip(a, "A2", "AA");
    fx_roundtrip(b, "B2", "AA");
    hub_metric *m = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_refused_total",
                                   "channel=\"limit\",reason=\"limit\"", "x");
    cr_assert_eq(hub_metric_value(m), 1);
    /* once one closes, a new one fits */
    close(a);
    for (int i = 0; i < 100 && hub_mllp_server_conn_count(SRV) > 1; i++) fx_sleep_ms(10);
    int d = mt_dial(port);
    fx_roundtrip(d, "D1", "AA");
    close(d);
    close(b);
}

Test(mllp_server, idle_timeout_closes, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    ch.idle_timeout_ms = 500;
    int port = fx_start(&ch);
    int fd = mt_dial(port);
    /* activity keeps it open well past the timeout */
    for (int i = 0; i < 8; i++) {
        char id[16];
        snprintf(id, sizeof id, "I%d", i);
        fx_roundtrip(fd, id, "AA");
        fx_sleep_ms(100);
    }
    int64_t t0 = hub_mono_ns();
    cr_assert(mt_wait_closed(fd, 3000), "idle connection not closed");
    int64_t ms = (hub_mono_ns() - t0) / 1000000;
    cr_assert_geq(ms, 300, "closed too early (%lld ms)", (long long)ms);
    for (int i = 0; i < 50 && atomic_load(&FX.closes) == 0; i++) fx_sleep_ms(10);
    cr_assert_str_eq(FX.close_reason, "idle");
    close(fd);
}

static void *reply_reversed(void *arg) {
    int n = *(int *)arg;
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&FX.lk);
        int got = FX.ndef;
        pthread_mutex_unlock(&FX.lk);
        if (got >= n) break;
        fx_sleep_ms(5);
    }
    for (int i = n - 1; i >= 0; i--) {
        deferred *d = &FX.def[i];
        fx_reply(d->conn, d->seq, d->msg, strlen(d->msg), "AA", false);
        fx_sleep_ms(5);
    }
    return NULL;
}

Test(mllp_server, out_of_order_replies_written_in_order, .fini = fx_stop) {
    FX.mode = MODE_DEFER;
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    int fd = mt_dial(port);
    int n = 6;
    for (int i = 0; i < n; i++) {
        char msg[256], id[16];
        snprintf(id, sizeof id, "O%d", i);
        mt_message(msg, sizeof msg, id);
        cr_assert(mt_write_frame(fd, msg));
    }
    pthread_t th;
    pthread_create(&th, NULL, reply_reversed, &n);
    for (int i = 0; i < n; i++) {
        char ack[512], want[16];
        cr_assert_gt(mt_read_frame(fd, ack, sizeof ack, 5000), 0);
        hub_slice f;
        cr_assert(hub_mllp_field(hub_slice_cstr(ack), "MSA", 2, &f));
        snprintf(want, sizeof want, "O%d", i);
        cr_assert(hub_slice_eq_cstr(f, want), "ACK %d out of order", i);
    }
    pthread_join(th, NULL);
    close(fd);
}

Test(mllp_server, reply_to_closed_connection_is_dropped, .fini = fx_stop) {
    FX.mode = MODE_DEFER;
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    int fd = mt_dial(port);
    char msg[256];
    mt_message(msg, sizeof msg, "GONE");
    cr_assert(mt_write_frame(fd, msg));
    for (int i = 0; i < 200 && FX.ndef == 0; i++) fx_sleep_ms(5);
    cr_assert_eq(FX.ndef, 1);
    /* RST: the server closes at once despite the owed reply */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    for (int i = 0; i < 200 && hub_mllp_server_conn_count(SRV) > 0; i++) fx_sleep_ms(5);
    cr_assert_eq(hub_mllp_server_conn_count(SRV), 0);
    fx_reply(FX.def[0].conn, FX.def[0].seq, msg, strlen(msg), "AA", false);
    /* unknown ids and seqs are dropped as well */
    cr_assert_eq(hub_mllp_server_reply(SRV, 999999, 1, "x", 1, false), HUB_OK);
    fd = mt_dial(port);
    FX.mode = MODE_ACK;
    fx_roundtrip(fd, "NEXT", "AA");
    close(fd);
}

Test(mllp_server, half_close_still_gets_owed_reply, .fini = fx_stop) {
    FX.mode = MODE_DEFER;
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    int fd = mt_dial(port);
    char msg[256];
    mt_message(msg, sizeof msg, "HALF");
    cr_assert(mt_write_frame(fd, msg));
    shutdown(fd, SHUT_WR);
    int one = 1;
    reply_reversed(&one);
    char ack[512], code[3];
    cr_assert_gt(mt_read_frame(fd, ack, sizeof ack, 5000), 0);
    cr_assert(mt_ack_code(ack, code));
    cr_assert_str_eq(code, "AA");
    cr_assert(mt_wait_closed(fd, 3000));
    close(fd);
}

Test(mllp_server, close_after_reply, .fini = fx_stop) {
    FX.mode = MODE_DEFER;
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    int fd = mt_dial(port);
    char msg[256];
    mt_message(msg, sizeof msg, "BYE");
    cr_assert(mt_write_frame(fd, msg));
    for (int i = 0; i < 200 && FX.ndef == 0; i++) fx_sleep_ms(5);
    fx_reply(FX.def[0].conn, FX.def[0].seq, msg, strlen(msg), "AE", true);
    char ack[512], code[3];
    cr_assert_gt(mt_read_frame(fd, ack, sizeof ack, 5000), 0);
    cr_assert(mt_ack_code(ack, code));
    cr_assert_str_eq(code, "AE");
    cr_assert(mt_wait_closed(fd, 3000));
    close(fd);
}

Test(mllp_server, allow_list, .fini = fx_stop) {
    const char *deny[] = {"10.0.0.0/8", "::1"};
    hub_mllp_channel_cfg ch = plain();
    ch.name = "allow";
    ch.allow = deny;
    ch.n_allow = 2;
    int port = fx_start(&ch);
    int fd = mt_dial(port);
    cr_assert(mt_wait_closed(fd, 3000), "127.0.0.1 not refused");
    close(fd);
    hub_metric *m = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_refused_total",
                                   "channel=\"allow\",reason=\"address\"", "x");
    cr_assert_eq(hub_metric_value(m), 1);
    fx_stop();
    const char *ok[] = {"10.0.0.0/8", "127.0.0.0/8"};
    ch.allow = ok;
    port = fx_start(&ch);
    fd = mt_dial(port);
    fx_roundtrip(fd, "OK", "AA");
    close(fd);
}

Test(mllp_server, bad_configuration) {
    hub_mllp_callbacks cb = {.on_frame = fx_on_frame};
    hub_err err;
    hub_mllp_server *s = NULL;
    const char *bad[] = {"10.0.0.0/33"};
    hub_mllp_channel_cfg ch = plain();
    ch.allow = bad;
    ch.n_allow = 1;
    hub_mllp_server_cfg cfg = {.channels = &ch, .n_channels = 1};
    cr_assert_eq(hub_mllp_server_start(&cfg, &cb, &s, &err), HUB_E_CONFIG);
    cr_assert_str_eq(err.where, "mllp.t.allow");
    cr_assert_str_eq(err.msg, "bad prefix length in '10.0.0.0/33'");
    const char *bad2[] = {"example.org"};
    ch.allow = bad2;
    cr_assert_eq(hub_mllp_server_start(&cfg, &cb, &s, &err), HUB_E_CONFIG);
    cr_assert_str_eq(err.msg, "'example.org' is not an IP address or CIDR");
    ch = plain();
    ch.tls_cert = "/nonexistent/cert.pem";
    cr_assert_eq(hub_mllp_server_start(&cfg, &cb, &s, &err), HUB_E_TLS);
    cr_assert_str_eq(err.where, "tls.cert");
    ch = plain();
    ch.tls_client_ca = "/x.pem";
    cr_assert_eq(hub_mllp_server_start(&cfg, &cb, &s, &err), HUB_E_CONFIG);
    cfg.n_channels = 0;
    cr_assert_eq(hub_mllp_server_start(&cfg, &cb, &s, &err), HUB_E_CONFIG);
    /* a port in use */
    ch = plain();
    cfg.n_channels = 1;
    cr_assert_eq(hub_mllp_server_start(&cfg, &cb, &s, &err), HUB_OK);
    hub_mllp_channel_cfg ch2 = plain();
    ch2.port = hub_mllp_server_port(s, 0);
    hub_mllp_server_cfg cfg2 = {.channels = &ch2, .n_channels = 1};
    hub_mllp_server *s2 = NULL;
    cr_assert_eq(hub_mllp_server_start(&cfg2, &cb, &s2, &err), HUB_E_IO);
    cr_assert_str_eq(err.where, "mllp.t");
    cr_assert_null(s2);
    hub_mllp_server_free(s);
}

Test(mllp_server, two_channels_one_thread, .fini = fx_stop) {
    hub_mllp_channel_cfg chs[2] = {plain(), plain()};
    chs[0].name = "one";
    chs[1].name = "two";
    hub_mllp_server_cfg cfg = {.channels = chs, .n_channels = 2};
    hub_mllp_callbacks cb = {.on_frame = fx_on_frame};
    hub_err err;
    cr_assert_eq(hub_mllp_server_start(&cfg, &cb, &SRV, &err), HUB_OK);
    int p0 = hub_mllp_server_port(SRV, 0), p1 = hub_mllp_server_port(SRV, 1);
    cr_assert_neq(p0, p1);
    cr_assert_eq(hub_mllp_server_port(SRV, 2), -1);
    int a = mt_dial(p0), b = mt_dial(p1);
    fx_roundtrip(a, "X1", "AA");
    fx_roundtrip(b, "Y1", "AA");
    close(a);
    close(b);
}

static void *stop_thread(void *arg) {
    (void)arg;
    hub_mllp_server_stop(SRV, 3000);
    return NULL;
}

Test(mllp_server, stop_writes_owed_replies_within_grace, .fini = fx_stop) {
    FX.mode = MODE_DEFER;
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    int fd = mt_dial(port);
    int idle = mt_dial(port);
    char msg[256];
    mt_message(msg, sizeof msg, "LAST");
    cr_assert(mt_write_frame(fd, msg));
    for (int i = 0; i < 200 && FX.ndef == 0; i++) fx_sleep_ms(5);
    pthread_t th;
    pthread_create(&th, NULL, stop_thread, NULL);
    fx_sleep_ms(100);
    /* the idle connection is closed at once, the listener is gone */
    cr_assert(mt_wait_closed(idle, 2000));
    cr_assert_lt(mt_dial(port), 0, "still accepting after stop");
    fx_reply(FX.def[0].conn, FX.def[0].seq, msg, strlen(msg), "AA", false);
    char ack[512], code[3];
    cr_assert_gt(mt_read_frame(fd, ack, sizeof ack, 5000), 0);
    cr_assert(mt_ack_code(ack, code));
    cr_assert_str_eq(code, "AA");
    pthread_join(th, NULL);
    cr_assert_eq(hub_mllp_server_reply(SRV, 1, 1, "x", 1, false), HUB_E_STATE);
    close(fd);
    close(idle);
}

Test(mllp_server, open_close_callbacks, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    for (int i = 0; i < 3; i++) {
        int fd = mt_dial(port);
        fx_roundtrip(fd, "CB", "AA");
        close(fd);
    }
    for (int i = 0; i < 100 && atomic_load(&FX.closes) < 3; i++) fx_sleep_ms(10);
    cr_assert_eq(atomic_load(&FX.opens), 3);
    cr_assert_eq(atomic_load(&FX.closes), 3);
    cr_assert_str_eq(FX.close_reason, "peer");
}

Test(mllp_server, many_connections_interleaved, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    int fds[40];
    for (int i = 0; i < 40; i++) fds[i] = mt_dial(port);
    for (int r = 0; r < 5; r++)
        for (int i = 0; i < 40; i++) {
            char id[16];
            snprintf(id, sizeof id, "M%d-%d", i, r);
            fx_roundtrip(fds[i], id, "AA");
        }
    for (int i = 0; i < 40; i++) close(fds[i]);
    cr_assert_eq(atomic_load(&FX.frames), 200);
}

Test(mllp_server, python_hl7_mllp_send, .fini = fx_stop) {
    if (access("/usr/bin/mllp_send", X_OK) != 0) cr_skip("python3-hl7's mllp_send is not installed");
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    char path[] = "/tmp/hub-mllp-py-XXXXXX";
    int tf = mkstemp(path);
    char msg[256];
    mt_message(msg, sizeof msg, "PY1");
    cr_assert_eq(write(tf, msg, strlen(msg)), (ssize_t)strlen(msg));
    close(tf);
    char out[] = "/tmp/hub-mllp-pyout-XXXXXX";
    close(mkstemp(out));
    int rc = mt_sh("/usr/bin/mllp_send --loose --port %d --file %s 127.0.0.1 > %s 2>&1", port, path,
                   out);
    unlink(path);
    cr_assert_eq(rc, 0, "mllp_send failed");
    FILE *f = fopen(out, "r");
    char buf[1024] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(out);
    cr_assert(strstr(buf, "MSA|AA|PY1") != NULL, "mllp_send printed: %s", buf);
    cr_assert_eq(atomic_load(&FX.frames), 1);
}

typedef struct {
    int fd;
    hub_buf *b;
    bool ok;
} writer_arg;

static void *writer(void *arg) {
    writer_arg *w = arg;
    w->ok = mt_write(w->fd, w->b->p, w->b->n);
    return NULL;
}

/* Replies with a 64 KiB ACK (MSA-3 padded) so a few thousand fill every
 * buffer between the server and a peer that does not read. */
#define PAD 65536
static void big_reply_frame(void *ud, const hub_mllp_frame_ctx *ctx, const char *f, size_t n) {
    (void)ud;
    atomic_fetch_add(&FX.frames, 1);
    static char ack[PAD + 600];
    char small[512];
    mt_ack_for(f, n, "AA", small, sizeof small);
    size_t l = strlen(small);
    memcpy(ack + 1, small, l - 1); /* drop the final CR, add MSA-3 */
    ack[0] = 0x0b;
    ack[l] = '|';
    memset(ack + l + 1, 'p', PAD);
    memcpy(ack + l + 1 + PAD, "\r\x1c\r", 3);
    hub_mllp_server_reply(SRV, ctx->conn_id, ctx->seq, ack, l + 1 + PAD + 3, false);
}

Test(mllp_server, slow_reader_backpressure_keeps_every_reply, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    ch.name = "slow";
    hub_mllp_server_cfg cfg = {.channels = &ch, .n_channels = 1, .max_output = 65536};
    hub_mllp_callbacks cb = {.on_frame = big_reply_frame};
    hub_err err;
    cr_assert_eq(hub_mllp_server_start(&cfg, &cb, &SRV, &err), HUB_OK);
    int port = hub_mllp_server_port(SRV, 0);
    int fd = mt_dial(port);
    /* 3000 pipelined messages, each answered with 64 KiB, while reading nothing: the ACKs overflow the
     * socket buffers and the server's output cap, so it stops reading */
    enum { N = 3000 };
    hub_buf b;
    hub_buf_init(&b);
    for (int i = 0; i < N; i++) {
        char msg[256], id[16];
        snprintf(id, sizeof id, "W%d", i);
        mt_message(msg, sizeof msg, id);
        hub_mllp_frame_append(&b, msg, strlen(msg));
    }
    writer_arg w = {fd, &b, false};
    pthread_t th;
    pthread_create(&th, NULL, writer, &w);
    /* wait until the server stops taking frames */
    int seen = -1;
    for (int i = 0; i < 50; i++) {
        fx_sleep_ms(200);
        int now = atomic_load(&FX.frames);
        if (now == seen) break;
        seen = now;
    }
    cr_assert_lt(seen, N, "server kept reading from a peer that does not read");
    fx_sleep_ms(200);
    cr_assert_eq(atomic_load(&FX.frames), seen, "reading did not pause");
    /* now read everything: all replies, in order */
    hub_buf in;
    hub_buf_init(&in);
    hub_mllp_reader rd;
    hub_mllp_reader_init(&rd, 0);
    int got = 0;
    while (got < N) {
        hub_slice f;
        hub_status st = in.n ? hub_mllp_next(&rd, hub_slice_of(in.p, in.n), &f, NULL) : HUB_AGAIN;
        if (st == HUB_OK) {
            char want[16];
            snprintf(want, sizeof want, "W%d", got);
            hub_slice id;
            cr_assert(hub_mllp_field(f, "MSA", 2, &id));
            cr_assert(hub_slice_eq_cstr(id, want), "ACK %d out of order", got);
            cr_assert_gt(f.n, PAD);
            got++;
        }
        if (in.n) hub_buf_consume(&in, rd.consumed);
        if (st == HUB_OK) continue;
        hub_buf_reserve(&in, 1 << 16);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert_eq(poll(&p, 1, 5000), 1, "ACK %d missing (frames seen %d)", got, atomic_load(&FX.frames));
        ssize_t r = recv(fd, in.p + in.n, in.cap - in.n, 0);
        cr_assert_gt(r, 0, "connection closed at ACK %d", got);
        in.n += (size_t)r;
    }
    hub_buf_release(&in);
    pthread_join(th, NULL);
    cr_assert(w.ok);
    cr_assert_eq(atomic_load(&FX.frames), N);
    hub_buf_release(&b);
    close(fd);
}

Test(mllp_server, start_out_of_memory_fails_cleanly) {
    hub_mllp_callbacks cb = {.on_frame = fx_on_frame};
    const char *allow[] = {"127.0.0.1"};
    hub_mllp_channel_cfg ch = plain();
    ch.allow = allow;
    ch.n_allow = 1;
    hub_mllp_server_cfg cfg = {.channels = &ch, .n_channels = 1};
    hub_err err;
    int failures = 0;
    for (long n = 1; n < 50; n++) {
        hub_mllp_server *s = NULL;
        hub_mem_fail_after(n);
        hub_status st = hub_mllp_server_start(&cfg, &cb, &s, &err);
        hub_mem_fail_after(0);
        if (st == HUB_OK) {
            int fd = mt_dial(hub_mllp_server_port(s, 0));
            fx_roundtrip_on(s, fd);
            close(fd);
            hub_mllp_server_free(s);
            break;
        }
        cr_assert_eq(st, HUB_E_NOMEM, "allocation %ld: %s", n, err.msg);
        cr_assert_null(s);
        failures++;
    }
    cr_assert_geq(failures, 3);
}

Test(mllp_server, client_new_out_of_memory_fails_cleanly) {
    hub_mllp_client_cfg cc = {.host = "127.0.0.1", .port = 1, .ca_file = "x"};
    hub_err err;
    int failures = 0;
    for (long n = 1; n < 20; n++) {
        hub_mllp_client *c = NULL;
        hub_mem_fail_after(n);
        hub_status st = hub_mllp_client_new(&cc, &c, &err);
        hub_mem_fail_after(0);
        if (st == HUB_OK) {
            hub_mllp_client_free(c);
            break;
        }
        cr_assert_eq(st, HUB_E_NOMEM);
        cr_assert_null(c);
        failures++;
    }
    cr_assert_geq(failures, 2);
}

Test(mllp_server, inflight_cap_pauses_reading_until_replies, .fini = fx_stop) {
    FX.mode = MODE_DEFER;
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    int fd = mt_dial(port);
    hub_buf b;
    hub_buf_init(&b);
    for (int i = 0; i < 1100; i++) {
        char msg[256], id[16];
        snprintf(id, sizeof id, "F%d", i);
        mt_message(msg, sizeof msg, id);
        hub_mllp_frame_append(&b, msg, strlen(msg));
    }
    cr_assert(mt_write(fd, b.p, b.n));
    hub_buf_release(&b);
    for (int i = 0; i < 300 && atomic_load(&FX.frames) < 1024; i++) fx_sleep_ms(10);
    fx_sleep_ms(150);
    /* 1024 frames owed: the rest wait in the buffers */
    cr_assert_eq(atomic_load(&FX.frames), 1024, "frames %d", atomic_load(&FX.frames));
    /* only the first 64 were recorded; answer all by seq */
    FX.mode = MODE_ACK; /* frames after the pause get answered at once */
    for (uint64_t seq = 1; seq <= 1024; seq++) {
        char m[256], id[16];
        snprintf(id, sizeof id, "F%d", (int)seq - 1);
        mt_message(m, sizeof m, id);
        fx_reply(FX.def[0].conn, seq, m, strlen(m), "AA", false);
    }
    for (int i = 0; i < 100 && atomic_load(&FX.frames) < 1100; i++) fx_sleep_ms(10);
    cr_assert_eq(atomic_load(&FX.frames), 1100);
    char ack[512];
    int got = 0;
    while (got < 1100 && mt_read_frame(fd, ack, sizeof ack, 3000) > 0) got++;
    cr_assert_eq(got, 1100);
    close(fd);
}

Test(mllp_server, out_of_descriptors_refuses_and_survives, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    int keep = mt_dial(port);
    fx_roundtrip(keep, "K1", "AA");
    /* client sockets first, then no descriptor left for the server */
    int fds[8];
    for (int i = 0; i < 8; i++) fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int probe = dup(0);
    close(probe);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    struct rlimit low = {(rlim_t)probe, rl.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(connect(fds[i], (struct sockaddr *)&a, sizeof a), 0);
    int closed = 0, n = 8;
    for (int i = 0; i < 8; i++)
        if (mt_wait_closed(fds[i], 1000)) closed++;
    for (int i = 0; i < 8; i++) close(fds[i]);
    cr_assert_eq(closed, n, "only %d of %d refused", closed, n);
    setrlimit(RLIMIT_NOFILE, &rl);
    fx_sleep_ms(100);
    fx_roundtrip(keep, "K2", "AA");
    int again = mt_dial(port);
    fx_roundtrip(again, "K3", "AA");
    close(again);
    close(keep);
}
