/* hub serve and the CLI frame, over real sockets and real processes. */
#include "hub_test.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int run(const char *const *argv, hub_buf *out, hub_buf *err) {
    hub_buf_init(out);
    hub_buf_init(err);
    return hub_test_run(argv, NULL, out, err);
}

Test(cli, help_and_version) {
    hub_buf out, err;
    const char *a1[] = {HUB_BIN, "version", NULL};
    cr_assert_eq(run(a1, &out, &err), 0);
    cr_assert(strstr(out.p, "hub " HUB_VERSION));
    hub_buf_release(&out); hub_buf_release(&err);
    const char *a2[] = {HUB_BIN, "help", NULL};
    cr_assert_eq(run(a2, &out, &err), 0);
    cr_assert(strstr(out.p, "serve"));
    hub_buf_release(&out); hub_buf_release(&err);
    const char *a3[] = {HUB_BIN, "serve", "--help", NULL};
    cr_assert_eq(run(a3, &out, &err), 0);
    cr_assert(strstr(out.p, "--mllp-port"));
    cr_assert(strstr(out.p, "--config"));
    hub_buf_release(&out); hub_buf_release(&err);
}

Test(cli, unknown_command_and_flag) {
    hub_buf out, err;
    const char *a1[] = {HUB_BIN, "frobnicate", NULL};
    cr_assert_eq(run(a1, &out, &err), 2);
    cr_assert(strstr(err.p, "unknown command 'frobnicate'"));
    hub_buf_release(&out); hub_buf_release(&err);
    const char *a2[] = {HUB_BIN, "serve", "--bogus", NULL};
    cr_assert_eq(run(a2, &out, &err), 2);
    cr_assert_str_eq(err.p, "hub serve: unknown flag '--bogus'\n");
    hub_buf_release(&out); hub_buf_release(&err);
}

Test(cli, bad_port) {
    hub_buf out, err;
    const char *a1[] = {HUB_BIN, "serve", "--mllp-port", "99999", NULL};
    cr_assert_eq(run(a1, &out, &err), 2);
    cr_assert(strstr(err.p, "--mllp-port"), "%s", err.p);
    cr_assert(strstr(err.p, "between 0 and 65535"), "%s", err.p);
    cr_assert_eq(strchr(err.p, '\n'), err.p + err.n - 1, "one line");
    hub_buf_release(&out); hub_buf_release(&err);
    const char *a2[] = {HUB_BIN, "serve", "--http-port", "abc", NULL};
    cr_assert_eq(run(a2, &out, &err), 2);
    cr_assert(strstr(err.p, "--http-port"), "%s", err.p);
    hub_buf_release(&out); hub_buf_release(&err);
    const char *a3[] = {HUB_BIN, "serve", "--http-port", NULL};
    cr_assert_eq(run(a3, &out, &err), 2);
    cr_assert(strstr(err.p, "needs a value"), "%s", err.p);
    hub_buf_release(&out); hub_buf_release(&err);
}

Test(cli, unwritable_data_dir) {
    char tmp[256];
    hub_test_tmpdir(tmp);
    char file[300], data[320];
    snprintf(file, sizeof file, "%s/plainfile", tmp);
    FILE *f = fopen(file, "w");
    fputs("x", f);
    fclose(f);
    snprintf(data, sizeof data, "%s/data", file); /* parent is a file */
    hub_buf out, err;
    const char *a[] = {HUB_BIN, "serve", "--data", data, "--mllp-port", "0",
                       "--http-port", "0", NULL};
    cr_assert_eq(run(a, &out, &err), 1);
    cr_assert(strstr(err.p, "cannot create data directory"), "%s", err.p);
    hub_buf_release(&out); hub_buf_release(&err);
    hub_test_rmtree(tmp);
}

Test(cli, bad_config_file) {
    char tmp[256];
    hub_test_tmpdir(tmp);
    char cfgp[300];
    snprintf(cfgp, sizeof cfgp, "%s/hub.json", tmp);
    FILE *f = fopen(cfgp, "w");
    fputs("{\"mllp\": {\"port\": \"high\"}}", f);
    fclose(f);
    hub_buf out, err;
    const char *a[] = {HUB_BIN, "serve", "--config", cfgp, NULL};
    cr_assert_eq(run(a, &out, &err), 2);
    cr_assert(strstr(err.p, "mllp.port"), "%s", err.p);
    hub_buf_release(&out); hub_buf_release(&err);
    hub_test_rmtree(tmp);
}

Test(e2e_serve, healthz_json, .init = hub_test_up, .fini = hub_test_down) {
    hub_buf body;
    hub_buf_init(&body);
    int st = hub_test_http(hub_test_http_port(), "GET", "/healthz", NULL, NULL, 0,
                           &body, NULL);
    cr_assert_eq(st, 200);
    json_t *j = json_loadb(body.p, body.n, 0, NULL);
    cr_assert_not_null(j, "healthz is JSON: %s", body.p);
    cr_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
    cr_assert_str_eq(json_string_value(json_object_get(j, "version")), HUB_VERSION);
    cr_assert(json_is_number(json_object_get(j, "uptime_s")));
    cr_assert(strstr(json_string_value(json_object_get(j, "store")),
                     hub_test_current.dir));
    json_decref(j);
    hub_buf_release(&body);
}

Test(e2e_serve, metrics_prometheus, .init = hub_test_up, .fini = hub_test_down) {
    hub_buf body, hdr;
    hub_buf_init(&body);
    hub_buf_init(&hdr);
    int st = hub_test_http(hub_test_http_port(), "GET", "/metrics", NULL, NULL, 0,
                           &body, &hdr);
    cr_assert_eq(st, 200);
    cr_assert(strcasestr(hdr.p, "content-type: text/plain; version=0.0.4"));
    cr_assert(strstr(body.p, "# TYPE hub_uptime_seconds gauge"));
    cr_assert(strstr(body.p, "hub_journal_messages{status=\"accepted\"} 0"));
    hub_buf_release(&body);
    hub_buf_release(&hdr);
}

Test(e2e_serve, unknown_route_404_and_method_405, .init = hub_test_up,
     .fini = hub_test_down) {
    cr_assert_eq(hub_test_http(hub_test_http_port(), "GET", "/nope", NULL, NULL,
                               0, NULL, NULL),
                 404);
    cr_assert_eq(hub_test_http(hub_test_http_port(), "POST", "/healthz",
                               "text/plain", "x", 1, NULL, NULL),
                 405);
}

Test(e2e_serve, sigterm_and_sigint_exit_zero) {
    hub_test_hub h = {0};
    hub_test_start(&h, NULL);
    cr_assert_eq(hub_test_http(h.http_port, "GET", "/healthz", NULL, NULL, 0,
                               NULL, NULL),
                 200);
    cr_assert_eq(hub_test_signal_wait(&h, SIGTERM), 0);
    /* Restart on the same data: the store reopens. */
    hub_test_restart(&h, NULL);
    cr_assert_eq(hub_test_signal_wait(&h, SIGINT), 0);
    size_t n;
    char *log = hub_test_read_file(h.log, &n);
    cr_assert_not_null(log);
    /* JSON lines, one per event. */
    cr_assert(strstr(log, "\"level\":\"info\",\"module\":\"serve\",\"msg\":\"ready"));
    cr_assert(strstr(log, "stopping signal=SIGINT"));
    cr_assert(strstr(log, "\"msg\":\"stopped\""));
    hub_free(log);
    hub_test_stop(&h);
}

Test(e2e_serve, port_in_use_is_an_error) {
    hub_test_hub h = {0};
    hub_test_start(&h, NULL);
    char port[16];
    snprintf(port, sizeof port, "%d", h.http_port);
    char tmp[256];
    hub_test_tmpdir(tmp);
    hub_buf out, err;
    const char *a[] = {HUB_BIN, "serve", "--data", tmp, "--mllp-port", "0",
                       "--http-port", port, "--log-format", "text", NULL};
    cr_assert_eq(run(a, &out, &err), 1);
    cr_assert(strstr(err.p, "cannot listen"), "%s", err.p);
    hub_buf_release(&out); hub_buf_release(&err);
    hub_test_rmtree(tmp);
    hub_test_stop(&h);
}
