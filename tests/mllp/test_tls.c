/* TLS on the listener: server-only TLS, mutual TLS (subject becomes the
 * sender identity), refused client certificates, and protocol versions
 * checked with the openssl CLI. Certificates are made at test time. */
#include "server_fixture.h"

static char path_buf[8][512];
static const char *tp(int slot, const char *name) {
    const char *d = mt_tls_dir();
    cr_assert_not_null(d, "could not make test certificates with openssl");
    snprintf(path_buf[slot], sizeof path_buf[slot], "%s/%s", d, name);
    return path_buf[slot];
}

static hub_mllp_channel_cfg tls_channel(bool mutual) {
    hub_mllp_channel_cfg ch = {.name = "tls", .host = "127.0.0.1", .port = 0};
    ch.tls_cert = tp(0, "server.pem");
    ch.tls_key = tp(1, "server.key");
    if (mutual) ch.tls_client_ca = tp(2, "ca.pem");
    return ch;
}

static hub_status client_send(int port, const char *cert, const char *key, const char *ca,
                              const char *id, char code[3], hub_err *err) {
    hub_mllp_client_cfg cc = {.host = "127.0.0.1", .port = port, .tls = true,
                              .ca_file = ca, .cert_file = cert, .key_file = key,
                              .ack_timeout_ms = 5000};
    hub_mllp_client *c;
    hub_status st = hub_mllp_client_new(&cc, &c, err);
    if (st != HUB_OK) return st;
    char msg[256];
    mt_message(msg, sizeof msg, id);
    hub_buf ack;
    hub_buf_init(&ack);
    st = hub_mllp_client_send(c, msg, strlen(msg), &ack, err);
    if (st == HUB_OK) {
        hub_buf_append(&ack, "", 1);
        cr_assert(mt_ack_code(ack.p, code));
    }
    hub_buf_release(&ack);
    hub_mllp_client_free(c);
    return st;
}

Test(mllp_tls, server_tls_without_client_cert, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = tls_channel(false);
    int port = fx_start(&ch);
    char code[3];
    hub_err err;
    hub_status st = client_send(port, NULL, NULL, tp(3, "ca.pem"), "T1", code, &err);
    cr_assert_eq(st, HUB_OK, "%s", err.msg);
    cr_assert_str_eq(code, "AA");
    cr_assert_not(FX.had_subject, "no client certificate, no subject");
}

Test(mllp_tls, plain_client_on_tls_channel_gets_nothing, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = tls_channel(false);
    int port = fx_start(&ch);
    int fd = mt_dial(port);
    char msg[256];
    mt_message(msg, sizeof msg, "PLAIN");
    mt_write_frame(fd, msg);
    cr_assert(mt_wait_closed(fd, 3000));
    close(fd);
    cr_assert_eq(atomic_load(&FX.frames), 0);
}

Test(mllp_tls, client_rejects_unknown_server_ca, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = tls_channel(false);
    int port = fx_start(&ch);
    char code[3];
    hub_err err;
    hub_status st = client_send(port, NULL, NULL, tp(3, "other-ca.pem"), "T2", code, &err);
    cr_assert_eq(st, HUB_E_TLS);
    cr_assert(strstr(err.msg, "certificate verification failed") != NULL, "%s", err.msg);
}

Test(mllp_tls, mutual_tls_subject_is_sender_identity, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = tls_channel(true);
    int port = fx_start(&ch);
    char code[3];
    hub_err err;
    hub_status st = client_send(port, tp(4, "client.pem"), tp(5, "client.key"),
                                tp(3, "ca.pem"), "M1", code, &err);
    cr_assert_eq(st, HUB_OK, "%s", err.msg);
    cr_assert_str_eq(code, "AA");
    cr_assert(FX.had_subject);
    cr_assert_str_eq(FX.subject, "CN=hub-test-client,O=Hub Test");
}

Test(mllp_tls, mutual_tls_without_client_cert_refused, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = tls_channel(true);
    ch.name = "mtls-nocert";
    int port = fx_start(&ch);
    char code[3];
    hub_err err;
    hub_status st = client_send(port, NULL, NULL, tp(3, "ca.pem"), "M2", code, &err);
    cr_assert_neq(st, HUB_OK);
    cr_assert_eq(atomic_load(&FX.frames), 0);
    hub_metric *m = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_closed_total",
                                   "channel=\"mtls-nocert\",reason=\"tls\"", "x");
    for (int i = 0; i < 100 && hub_metric_value(m) == 0; i++) fx_sleep_ms(10);
    cr_assert_eq(hub_metric_value(m), 1);
}

Test(mllp_tls, mutual_tls_foreign_client_cert_refused, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = tls_channel(true);
    int port = fx_start(&ch);
    char code[3];
    hub_err err;
    hub_status st = client_send(port, tp(4, "rogue.pem"), tp(5, "rogue.key"),
                                tp(3, "ca.pem"), "M3", code, &err);
    cr_assert_neq(st, HUB_OK);
    cr_assert_eq(atomic_load(&FX.frames), 0);
}

/* Runs openssl s_client with `proto`; returns its exit status and whether
 * the handshake produced a session with that protocol. */
static int s_client(int port, const char *proto, const char *extra) {
    return mt_sh("echo | OPENSSL_CONF=/dev/null timeout 10 openssl s_client -connect 127.0.0.1:%d %s %s "
                 "-CAfile %s >/tmp/hub-sclient-%d.log 2>&1 </dev/null",
                 port, proto, extra, tp(3, "ca.pem"), port);
}

static bool log_has(int port, const char *needle) {
    char p[64], buf[65536];
    snprintf(p, sizeof p, "/tmp/hub-sclient-%d.log", port);
    FILE *f = fopen(p, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strstr(buf, needle) != NULL;
}

Test(mllp_tls, tls11_refused_tls12_tls13_accepted, .fini = fx_stop) {
    /* Without the system's openssl.cnf (Debian sets MinProtocol there), so
     * only the hub's own minimum refuses TLS 1.1 on either side. This test
     * process has not initialized OpenSSL yet. */
    setenv("OPENSSL_CONF", "/dev/null", 1);
    hub_mllp_channel_cfg ch = tls_channel(false);
    int port = fx_start(&ch);
    /* SECLEVEL=0 lets this client offer TLS 1.1, so a refusal is the
     * server's doing. */
    int rc11 = s_client(port, "-tls1_1", "-cipher DEFAULT@SECLEVEL=0");
    cr_assert_neq(rc11, 0, "TLS 1.1 handshake succeeded");
    /* the server answers with a protocol_version alert (70) */
    cr_assert(log_has(port, "alert protocol version"), "no protocol_version alert");
    cr_assert(log_has(port, "Cipher is (NONE)"), "a TLS 1.1 session was made");
    cr_assert_eq(s_client(port, "-tls1_2", ""), 0, "TLS 1.2 failed");
    cr_assert(log_has(port, "TLSv1.2"));
    cr_assert(log_has(port, "Verify return code: 0 (ok)"));
    cr_assert_eq(s_client(port, "-tls1_3", ""), 0, "TLS 1.3 failed");
    cr_assert(log_has(port, "TLSv1.3"));
    char p[64];
    snprintf(p, sizeof p, "/tmp/hub-sclient-%d.log", port);
    unlink(p);
}

Test(mllp_tls, pipelined_over_tls, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = tls_channel(false);
    int port = fx_start(&ch);
    hub_mllp_client_cfg cc = {.host = "localhost", .port = port, .tls = true,
                              .ca_file = tp(3, "ca.pem")};
    hub_mllp_client *c;
    hub_err err;
    cr_assert_eq(hub_mllp_client_new(&cc, &c, &err), HUB_OK);
    hub_buf ack;
    hub_buf_init(&ack);
    /* a large message crosses several TLS records */
    size_t n = 200000;
    char *big = malloc(n + 1);
    mt_message(big, n, "LARGE");
    size_t l = strlen(big);
    memset(big + l, 'Z', n - l);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(hub_mllp_client_send(c, big, n, &ack, &err), HUB_OK, "%s", err.msg);
        hub_buf_append(&ack, "", 1);
        char code[3];
        cr_assert(mt_ack_code(ack.p, code));
        cr_assert_str_eq(code, "AA");
    }
    cr_assert_eq(hub_mllp_client_connects(c), 1);
    free(big);
    hub_buf_release(&ack);
    hub_mllp_client_free(c);
}

Test(mllp_tls, silent_client_closed_by_idle_timeout_during_handshake, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = tls_channel(false);
    ch.idle_timeout_ms = 200;
    int port = fx_start(&ch);
    int fd = mt_dial(port); /* connects, never says hello */
    int64_t t0 = hub_mono_ns();
    cr_assert(mt_wait_closed(fd, 3000), "a silent TLS client is never closed");
    cr_assert_geq((hub_mono_ns() - t0) / 1000000, 100);
    cr_assert_eq(atomic_load(&FX.opens), 0, "on_open before the handshake");
    close(fd);
}

Test(mllp_tls, garbage_handshake_closes_only_that_connection, .fini = fx_stop) {
    hub_mllp_channel_cfg ch = tls_channel(false);
    int port = fx_start(&ch);
    int bad = mt_dial(port);
    cr_assert(mt_write(bad, "GET / HTTP/1.0\r\n\r\n", 18));
    cr_assert(mt_wait_closed(bad, 3000));
    close(bad);
    char code[3];
    hub_err err;
    cr_assert_eq(client_send(port, NULL, NULL, tp(3, "ca.pem"), "AFTER", code, &err), HUB_OK,
                 "%s", err.msg);
    cr_assert_str_eq(code, "AA");
}
