/* The outbound client against the in-process server: ACK, timeout,
 * reconnect with backoff, order. */
#include "server_fixture.h"

static hub_mllp_channel_cfg plain(void) {
    return (hub_mllp_channel_cfg){.name = "c", .host = "127.0.0.1", .port = 0};
}

static hub_status send_id(hub_mllp_client *c, const char *id, char code[3], hub_err *err) {
    char msg[256];
    mt_message(msg, sizeof msg, id);
    hub_buf ack;
    hub_buf_init(&ack);
    hub_status st = hub_mllp_client_send(c, msg, strlen(msg), &ack, err);
    if (st == HUB_OK) {
        hub_buf_append(&ack, "", 1);
        cr_assert(mt_ack_code(ack.p, code));
        hub_slice f;
        cr_assert(hub_mllp_field(hub_slice_cstr(ack.p), "MSA", 2, &f));
        cr_assert(hub_slice_eq_cstr(f, id), "ACK for another message");
    }
    hub_buf_release(&ack);
    return st;
}

Test(mllp_client, sends_in_order_on_one_connection, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    hub_mllp_client_cfg cc = {.host = "127.0.0.1", .port = port};
    hub_mllp_client *c;
    hub_err err;
    cr_assert_eq(hub_mllp_client_new(&cc, &c, &err), HUB_OK);
    for (int i = 0; i < 50; i++) {
        char id[16], code[3];
        snprintf(id, sizeof id, "K%d", i);
        cr_assert_eq(send_id(c, id, code, &err), HUB_OK, "%s", err.msg);
        cr_assert_str_eq(code, "AA");
    }
    cr_assert_eq(hub_mllp_client_connects(c), 1);
    hub_mllp_client_free(c);
}

Test(mllp_client, ack_timeout_then_reconnects, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    hub_mllp_client_cfg cc = {.host = "127.0.0.1", .port = port, .ack_timeout_ms = 300};
    hub_mllp_client *c;
    hub_err err;
    cr_assert_eq(hub_mllp_client_new(&cc, &c, &err), HUB_OK);
    char code[3];
    int64_t t0 = hub_mono_ns();
    cr_assert_eq(send_id(c, "NOACK", code, &err), HUB_E_TIMEOUT);
    int64_t ms = (hub_mono_ns() - t0) / 1000000;
    cr_assert_geq(ms, 290);
    cr_assert_lt(ms, 2000);
    cr_assert_str_eq(err.msg, "timed out waiting for the ACK");
    cr_assert_eq(send_id(c, "AFTER", code, &err), HUB_OK, "%s", err.msg);
    cr_assert_str_eq(code, "AA");
    cr_assert_eq(hub_mllp_client_connects(c), 2, "a timed-out connection is not reused");
    hub_mllp_client_free(c);
}

Test(mllp_client, server_closing_connection_is_transparent, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    ch.idle_timeout_ms = 150;
    int port = fx_start(&ch);
    hub_mllp_client_cfg cc = {.host = "127.0.0.1", .port = port, .max_attempts = 3,
                              .backoff_min_ms = 20};
    hub_mllp_client *c;
    hub_err err;
    cr_assert_eq(hub_mllp_client_new(&cc, &c, &err), HUB_OK);
    char code[3];
    cr_assert_eq(send_id(c, "R1", code, &err), HUB_OK);
    fx_sleep_ms(500); /* the server closes the idle connection */
    cr_assert_eq(send_id(c, "R2", code, &err), HUB_OK, "%s", err.msg);
    cr_assert_str_eq(code, "AA");
    cr_assert_eq(hub_mllp_client_connects(c), 2);
    hub_mllp_client_free(c);
}

Test(mllp_client, refused_with_backoff) {
    /* a port nobody listens on: bind one, close it */
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    fx_stop();
    hub_mllp_client_cfg cc = {.host = "127.0.0.1", .port = port, .max_attempts = 4,
                              .backoff_min_ms = 40, .backoff_max_ms = 80};
    hub_mllp_client *c;
    hub_err err;
    cr_assert_eq(hub_mllp_client_new(&cc, &c, &err), HUB_OK);
    char code[3];
    int64_t t0 = hub_mono_ns();
    cr_assert_eq(send_id(c, "X", code, &err), HUB_E_IO);
    int64_t ms = (hub_mono_ns() - t0) / 1000000;
    /* waits 40, 80, 80 between the four attempts */
    cr_assert_geq(ms, 195, "backoff too short: %lld ms", (long long)ms);
    cr_assert_lt(ms, 1500);
    cr_assert(strstr(err.msg, "Connection refused") != NULL, "%s", err.msg);
    cr_assert_eq(hub_mllp_client_connects(c), 0);
    hub_mllp_client_free(c);
}

static int late_port;
static void *start_late(void *arg) {
    (void)arg;
    fx_sleep_ms(250);
    hub_mllp_channel_cfg ch = plain();
    ch.port = late_port;
    fx_start(&ch);
    return NULL;
}

Test(mllp_client, reconnects_when_server_comes_up, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    late_port = fx_start(&ch);
    fx_stop();
    pthread_t th;
    pthread_create(&th, NULL, start_late, NULL);
    hub_mllp_client_cfg cc = {.host = "127.0.0.1", .port = late_port, .max_attempts = 20,
                              .backoff_min_ms = 20, .backoff_max_ms = 100};
    hub_mllp_client *c;
    hub_err err;
    cr_assert_eq(hub_mllp_client_new(&cc, &c, &err), HUB_OK);
    char code[3];
    cr_assert_eq(send_id(c, "LATE", code, &err), HUB_OK, "%s", err.msg);
    cr_assert_str_eq(code, "AA");
    pthread_join(th, NULL);
    hub_mllp_client_free(c);
}

Test(mllp_client, bad_arguments) {
    hub_mllp_client *c = NULL;
    hub_err err;
    hub_mllp_client_cfg cc = {.host = "127.0.0.1", .port = 0};
    cr_assert_eq(hub_mllp_client_new(&cc, &c, &err), HUB_E_ARG);
    cr_assert_str_eq(err.msg, "port 0 out of range");
    cc.port = 1;
    cc.host = "";
    cr_assert_eq(hub_mllp_client_new(&cc, &c, &err), HUB_E_ARG);
    cc.host = "127.0.0.1";
    cc.tls = true;
    cc.ca_file = "/nonexistent.pem";
    cr_assert_eq(hub_mllp_client_new(&cc, &c, &err), HUB_E_TLS);
    cr_assert_str_eq(err.where, "--ca");
    cr_assert_null(c);
    cc.tls = false;
    cc.host = "no-such-host.invalid";
    cr_assert_eq(hub_mllp_client_new(&cc, &c, &err), HUB_OK);
    char code[3];
    cr_assert_eq(send_id(c, "X", code, &err), HUB_E_IO);
    cr_assert(strstr(err.msg, "cannot resolve") != NULL, "%s", err.msg);
    hub_mllp_client_free(c);
}

Test(mllp_client, reply_over_limit, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = plain();
    int port = fx_start(&ch);
    hub_mllp_client_cfg cc = {.host = "127.0.0.1", .port = port, .max_frame = 16};
    hub_mllp_client *c;
    hub_err err;
    cr_assert_eq(hub_mllp_client_new(&cc, &c, &err), HUB_OK);
    char code[3];
    cr_assert_eq(send_id(c, "BIGACK", code, &err), HUB_E_LIMIT);
    hub_mllp_client_free(c);
}

Test(mllp_client, ipv6_loopback, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = {.name = "v6", .host = "::1", .port = 0};
    hub_mllp_server_cfg cfg = {.channels = &ch, .n_channels = 1};
    hub_mllp_callbacks cb = {.on_frame = fx_on_frame, .on_open = fx_on_open};
    hub_err err;
    hub_status st = hub_mllp_server_start(&cfg, &cb, &SRV, &err);
    if (st != HUB_OK) cr_skip("no IPv6 loopback here: %s", err.msg);
    hub_mllp_client_cfg cc = {.host = "::1", .port = hub_mllp_server_port(SRV, 0)};
    hub_mllp_client *c;
    cr_assert_eq(hub_mllp_client_new(&cc, &c, &err), HUB_OK);
    char code[3];
    cr_assert_eq(send_id(c, "V6", code, &err), HUB_OK, "%s", err.msg);
    cr_assert_str_eq(code, "AA");
    cr_assert(strncmp(FX.peer, "[::1]:", 6) == 0, "peer '%s'", FX.peer);
    hub_mllp_client_free(c);
}
