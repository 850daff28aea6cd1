/* `hub send` (the real binary, HUB_BIN) against the in-process server:
 * file formats, summary, exit codes, usage errors, TLS. */
#include "server_fixture.h"

#include <stdlib.h>
#include <sys/stat.h>

static char dir[64];
static char out_txt[65536], err_txt[65536];

static void mkdir_tmp(void) {
    snprintf(dir, sizeof dir, "/tmp/hub-send-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
    fx_stop();
    if (dir[0]) mt_sh("rm -rf %s", dir);
}

static void put(const char *name, const char *content) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    mkdir(p, 0700);
    *slash = '/';
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    fwrite(content, 1, strlen(content), f);
    fclose(f);
}

static void slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    buf[0] = '\0';
    if (!f) return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Runs `hub send ARGS` (ARGS already shell-quoted); captures output. */
static int hub_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int hub_send(const char *fmt, ...) {
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int rc = mt_sh("cd %s && %s send %s >%s/out.txt 2>%s/err.txt </dev/null", dir, HUB_BIN,
                   args, dir, dir);
    char p[128];
    snprintf(p, sizeof p, "%s/out.txt", dir);
    slurp(p, out_txt, sizeof out_txt);
    snprintf(p, sizeof p, "%s/err.txt", dir);
    slurp(p, err_txt, sizeof err_txt);
    return rc;
}

static void expect_line(const char *line) {
    cr_assert(strstr(out_txt, line) != NULL, "no '%s' in:\n%s\nstderr:\n%s", line, out_txt,
              err_txt);
}

static int start_plain(void) {
    mkdir_tmp();
    hub_mllp_channel_cfg ch = {.name = "send", .host = "127.0.0.1", .port = 0};
    return fx_start(&ch);
}

#define MSG(id) "MSH|^~\\&|SND|FAC|HUB|HUB|20260101||ADT^A01|" id "|P|2.5"

Test(mllp_send, one_message_crlf, .fini = teardown) {
    int port = start_plain();
    put("one.hl7", MSG("S1") "\r\nPID|1||S1\r\n");
    cr_assert_eq(hub_send("127.0.0.1:%d one.hl7", port), 0, "%s", err_txt);
    expect_line("sent      1 of 1 messages");
    expect_line("AA/CA     1\n");
    expect_line("errors    0\n");
    expect_line("latency   p50 ");
    cr_assert_eq(atomic_load(&FX.frames), 1);
}

Test(mllp_send, batch_file_lf, .fini = teardown) {
    int port = start_plain();
    put("batch.hl7", "FHS|^~\\&|SND\nBHS|^~\\&|SND\n" MSG("B1") "\nPID|1\n" MSG("B2") "\nPID|2\n"
                     MSG("B3") "\nBTS|3\nFTS|1\n");
    cr_assert_eq(hub_send("127.0.0.1:%d batch.hl7", port), 0, "%s", err_txt);
    expect_line("AA/CA     3\n");
    cr_assert_eq(atomic_load(&FX.frames), 3);
}

Test(mllp_send, directory_and_line_format, .fini = teardown) {
    int port = start_plain();
    put("d/a.hl7", MSG("D1") "\rPID|1\r");
    put("d/b.hl7", MSG("D2") "\rPID|1\r" MSG("D3") "\rPID|1\r");
    put("d/sub/c.txt", MSG("L1") "\rPID|1\n" MSG("L2") "\rPID|2\n");
    cr_assert_eq(hub_send("127.0.0.1:%d d", port), 0, "%s", err_txt);
    expect_line("sent      5 of 5 messages from 3 files");
    expect_line("AA/CA     5\n");
}

Test(mllp_send, nacks_and_exit_code, .fini = teardown) {
    int port = start_plain();
    put("m.hl7", MSG("OK1") "\r" MSG("AE1") "\r" MSG("AR1") "\r" MSG("AR2") "\r");
    cr_assert_eq(hub_send("127.0.0.1:%d m.hl7", port), 1);
    expect_line("AA/CA     1\n");
    expect_line("AE/CE     1\n");
    expect_line("AR/CR     2\n");
    cr_assert(strstr(err_txt, "control id 'AE1'") != NULL, "%s", err_txt);
}

Test(mllp_send, timeout_counted, .fini = teardown) {
    int port = start_plain();
    put("t.hl7", MSG("NOACK") "\r" MSG("T2") "\r");
    cr_assert_eq(hub_send("127.0.0.1:%d --timeout 300 t.hl7", port), 1);
    expect_line("timeouts  1\n");
    expect_line("AA/CA     1\n");
}

Test(mllp_send, several_connections, .fini = teardown) {
    int port = start_plain();
    char big[40 * 80] = "";
    for (int i = 0; i < 40; i++) {
        char line[80];
        snprintf(line, sizeof line, "MSH|^~\\&|S|F|H|H|2026||ADT^A01|N%d|P|2.5\rPID|1\n", i);
        strcat(big, line);
    }
    put("n.txt", big);
    cr_assert_eq(hub_send("127.0.0.1:%d --connections 4 n.txt", port), 0, "%s", err_txt);
    expect_line("AA/CA     40\n");
    expect_line("over 4 connections");
    cr_assert_eq(fx_opens_reach(4), 4);
}

Test(mllp_send, usage_errors, .fini = teardown) {
    int port = start_plain();
    put("x.hl7", MSG("U1") "\r");
    cr_assert_eq(hub_send("127.0.0.1:%d --bogus x.hl7", port), 2);
    cr_assert_str_eq(err_txt, "hub send: unknown flag '--bogus'\n");
    cr_assert_eq(hub_send("127.0.0.1:%d --connections 0 x.hl7", port), 2);
    cr_assert_str_eq(err_txt, "hub send: --connections wants 1..1024, got '0'\n");
    cr_assert_eq(hub_send("127.0.0.1:%d --timeout x x.hl7", port), 2);
    cr_assert_str_eq(err_txt, "hub send: --timeout wants milliseconds 1..3600000, got 'x'\n");
    cr_assert_eq(hub_send("localhost x.hl7"), 2);
    cr_assert_str_eq(err_txt, "hub send: bad address 'localhost' (want HOST:PORT)\n");
    cr_assert_eq(hub_send("127.0.0.1:99999 x.hl7"), 2);
    cr_assert_eq(hub_send("127.0.0.1:%d", port), 2);
    cr_assert_str_eq(err_txt, "hub send: no file or directory to send\n");
    cr_assert_eq(hub_send("127.0.0.1:%d missing.hl7", port), 2);
    cr_assert_str_eq(err_txt, "hub send: cannot read 'missing.hl7': No such file or directory\n");
    cr_assert_eq(hub_send("127.0.0.1:%d --ca x.pem x.hl7", port), 2);
    cr_assert_str_eq(err_txt, "hub send: flag '--ca' needs --tls\n");
    cr_assert_eq(hub_send("127.0.0.1:%d x.hl7 --timeout", port), 2);
    cr_assert_str_eq(err_txt, "hub send: flag '--timeout' needs a value\n");
    cr_assert_eq(hub_send("--help"), 0);
    cr_assert(strstr(out_txt, "usage: hub send HOST:PORT PATH...") != NULL);
    cr_assert_eq(atomic_load(&FX.frames), 0);
}

Test(mllp_send, bad_file_content, .fini = teardown) {
    int port = start_plain();
    put("good.hl7", MSG("G1") "\r");
    put("bad.hl7", "PID|1\r" MSG("G2") "\r");
    put("empty.hl7", "\r\n");
    cr_assert_eq(hub_send("127.0.0.1:%d good.hl7 bad.hl7 empty.hl7", port), 1);
    expect_line("AA/CA     1\n");
    expect_line("errors    2\n");
    cr_assert(strstr(err_txt, "'bad.hl7': segment before the first MSH at byte 0") != NULL,
              "%s", err_txt);
    cr_assert(strstr(err_txt, "'empty.hl7': no MSH segment") != NULL, "%s", err_txt);
}

Test(mllp_send, connection_refused, .fini = teardown) {
    int port = start_plain();
    fx_stop();
    put("r.hl7", MSG("R1") "\r" MSG("R2") "\r");
    int64_t t0 = hub_mono_ns();
    cr_assert_eq(hub_send("127.0.0.1:%d r.hl7", port), 1);
    cr_assert_lt((hub_mono_ns() - t0) / 1000000, 5000);
    expect_line("sent      0 of 2 messages");
    expect_line("errors    1\n");
    cr_assert(strstr(err_txt, "Connection refused") != NULL, "%s", err_txt);
}

Test(mllp_send, mutual_tls, .fini = teardown) {
    mkdir_tmp();
    const char *d = mt_tls_dir();
    cr_assert_not_null(d);
    char cert[256], key[256], ca[256];
    snprintf(cert, sizeof cert, "%s/server.pem", d);
    snprintf(key, sizeof key, "%s/server.key", d);
    snprintf(ca, sizeof ca, "%s/ca.pem", d);
    hub_mllp_channel_cfg ch = {.name = "send-tls", .host = "127.0.0.1", .tls_cert = cert,
                               .tls_key = key, .tls_client_ca = ca};
    int port = fx_start(&ch);
    put("m.hl7", MSG("TLS1") "\r");
    cr_assert_eq(hub_send("localhost:%d --tls --ca %s --cert %s/client.pem --key %s/client.key "
                          "m.hl7", port, ca, d, d), 0, "%s", err_txt);
    expect_line("AA/CA     1\n");
    cr_assert_str_eq(FX.subject, "CN=hub-test-client,O=Hub Test");
    /* without the client certificate the server refuses */
    cr_assert_eq(hub_send("localhost:%d --tls --ca %s m.hl7", port, ca), 1);
    expect_line("AA/CA     0\n");
}

Test(mllp_send, generated_corpus, .fini = teardown) {
    const char *gen = HUB_SHARED_DIR "/bench/gen_v2_corpus.py";
    if (access(gen, R_OK) != 0) cr_skip("gen_v2_corpus.py not found at %s", gen);
    int port = start_plain();
    cr_assert_eq(mt_sh("python3 %s --count 300 --seed 7 --out %s/c.hl7 >/dev/null 2>&1", gen, dir),
                 0);
    cr_assert_eq(hub_send("127.0.0.1:%d --connections 2 c.hl7", port), 0, "%s", err_txt);
    expect_line("AA/CA     300\n");
    cr_assert_eq(atomic_load(&FX.frames), 300);
}

Test(mllp_send, mllp_framed_file, .fini = teardown) {
    int port = start_plain();
    put("f.mllp", "\x0b" MSG("F1") "\rPID|1\r\x1c\r\x0b" MSG("F2") "\rPID|2\r\x1c\r");
    cr_assert_eq(hub_send("127.0.0.1:%d f.mllp", port), 0, "%s", err_txt);
    expect_line("AA/CA     2\n");
}

Test(mllp_send, progress_bar_only_on_a_terminal, .fini = teardown) {
    if (access("/usr/bin/script", X_OK) != 0) cr_skip("script(1) is not installed");
    int port = start_plain();
    put("p.hl7", MSG("P1") "\r" MSG("P2") "\r");
    /* no terminal: no bar */
    cr_assert_eq(hub_send("127.0.0.1:%d p.hl7", port), 0);
    cr_assert(strstr(err_txt, "msg/s") == NULL, "progress bar without a terminal");
    /* a pseudo-terminal: the bar appears (on stderr, merged by script) */
    int rc = mt_sh("cd %s && /usr/bin/script -qec '%s send 127.0.0.1:%d p.hl7' /dev/null "
                   ">%s/tty.txt 2>&1 </dev/null", dir, HUB_BIN, port, dir);
    cr_assert_eq(rc, 0);
    char p[128];
    snprintf(p, sizeof p, "%s/tty.txt", dir);
    slurp(p, out_txt, sizeof out_txt);
    cr_assert(strstr(out_txt, "] 2/2") != NULL, "no progress bar on a terminal:\n%s", out_txt);
    cr_assert(strstr(out_txt, "msg/s") != NULL);
}
