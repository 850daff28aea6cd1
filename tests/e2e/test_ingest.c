/* MLLP ingest through a real `hub serve`: ACK codes, the journal, resends,
 * framing edge cases, limits, and a real third-party MLLP client. */
#include "hub_test.h"
#include "hub/store.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#define ADT(ctl) \
    "MSH|^~\\&|EHR|GENHOSP|HUB|HUB|20261125101500||ADT^A01^ADT_A01|" ctl "|P|2.5.1\r" \
    "EVN|A01|20261125101500\r" \
    "PID|1||MRN123^^^GENHOSP^MR||DOE^JANE||19800101|F\r" \
    "PV1|1|I|MED^101^1^GENHOSP\r"

static json_t *api(const char *path) {
    hub_buf b;
    hub_buf_init(&b);
    int st = hub_test_http(hub_test_http_port(), "GET", path, NULL, NULL, 0, &b, NULL);
    cr_assert_eq(st, 200, "GET %s -> %d", path, st);
    json_t *j = json_loadb(b.p, b.n, 0, NULL);
    cr_assert_not_null(j);
    hub_buf_release(&b);
    return j;
}

static json_t *messages(const char *query) {
    char path[256];
    snprintf(path, sizeof path, "/api/messages%s", query);
    return api(path);
}

static const char *send_recv(int fd, const char *msg, hub_buf *ack) {
    cr_assert_eq(hub_test_send_frame(fd, msg), 0);
    cr_assert_eq(hub_test_read_frame(fd, ack, 10000), 0, "an ACK arrives");
    return hub_test_ack_code(ack->p);
}

Test(e2e_ingest, a01_gets_aa_after_it_is_journaled, .init = hub_test_up,
     .fini = hub_test_down) {
    int fd = hub_test_dial(hub_test_mllp_port());
    hub_buf ack;
    hub_buf_init(&ack);
    cr_assert_str_eq(send_recv(fd, ADT("CTL-A1"), &ack), "AA");
    cr_assert(strstr(ack.p, "MSA|AA|CTL-A1"), "MSA-2 echoes MSH-10: %s", ack.p);
    cr_assert(strstr(ack.p, "|ACK^A01^ACK|"), "%s", ack.p);
    json_t *j = messages("?control_id=CTL-A1");
    json_t *arr = json_object_get(j, "messages");
    cr_assert_eq(json_array_size(arr), 1);
    json_t *m = json_array_get(arr, 0);
    /* Mapped and applied to the record in the same commit (issue 7). */
    cr_assert_str_eq(json_string_value(json_object_get(m, "status")), "processed");
    cr_assert_str_eq(json_string_value(json_object_get(m, "ack_code")), "AA");
    cr_assert_str_eq(json_string_value(json_object_get(m, "sender")), "EHR^GENHOSP");
    cr_assert_str_eq(json_string_value(json_object_get(m, "type")), "ADT^A01^ADT_A01");
    cr_assert_str_eq(json_string_value(json_object_get(m, "version")), "2.5.1");
    json_decref(j);
    close(fd);
    hub_buf_release(&ack);
}

Test(e2e_ingest, broken_msh_gets_ar_and_is_journaled_rejected, .init = hub_test_up,
     .fini = hub_test_down) {
    int fd = hub_test_dial(hub_test_mllp_port());
    hub_buf ack;
    hub_buf_init(&ack);
    /* No MSH at all. */
    cr_assert_str_eq(send_recv(fd, "PID|1||X\r", &ack), "AR");
    cr_assert(strstr(ack.p, "ERR|"), "%s", ack.p);
    /* MSH without MSH-10. */
    cr_assert_str_eq(
        send_recv(fd, "MSH|^~\\&|EHR|H|HUB|HUB|20261125||ADT^A01||P|2.5\rPID|1\r", &ack),
        "AR");
    cr_assert(strstr(ack.p, "MSH^1^10"), "ERR-2 names MSH-10: %s", ack.p);
    json_t *j = messages("?status=rejected");
    cr_assert_eq(json_array_size(json_object_get(j, "messages")), 2);
    json_decref(j);
    /* The connection is still good. */
    cr_assert_str_eq(send_recv(fd, ADT("CTL-B2"), &ack), "AA");
    close(fd);
    hub_buf_release(&ack);
}

Test(e2e_ingest, invalid_message_gets_ae_with_err_segments, .init = hub_test_up,
     .fini = hub_test_down) {
    int fd = hub_test_dial(hub_test_mllp_port());
    hub_buf ack;
    hub_buf_init(&ack);
    const char *bad =
        "MSH|^~\\&|EHR|GENHOSP|HUB|HUB|20261125101500||ADT^A01^ADT_A01|CTL-E1|P|2.5.1\r"
        "EVN|A01|20261125101500\r"
        "PID|1||MRN9^^^GENHOSP^MR||DOE^JOHN||20230231|M\r"
        "PV1|1|I\r";
    cr_assert_str_eq(send_recv(fd, bad, &ack), "AE");
    cr_assert(strstr(ack.p, "ERR|"), "%s", ack.p);
    cr_assert(strstr(ack.p, "PID^1^7"), "ERR-2 locates PID-7: %s", ack.p);
    cr_assert(strstr(ack.p, "102^"), "ERR-3 data type error: %s", ack.p);
    cr_assert_null(strstr(ack.p, "DOE"), "no patient data in the ACK");
    json_t *j = messages("?status=errored");
    json_t *m = json_array_get(json_object_get(j, "messages"), 0);
    cr_assert_not_null(m);
    json_t *errs = json_object_get(m, "errors");
    cr_assert_geq(json_array_size(errs), 1);
    bool found = false;
    for (size_t i = 0; i < json_array_size(errs); i++) {
        json_t *e = json_array_get(errs, i);
        if (strcmp(json_string_value(json_object_get(e, "location")), "PID-7") == 0 &&
            json_integer_value(json_object_get(e, "code")) == 102)
            found = true;
    }
    cr_assert(found, "journal keeps the finding");
    json_decref(j);
    /* The error queue shows the full message for the operator. */
    close(fd);
    hub_buf_release(&ack);
}

Test(e2e_ingest, resend_gets_same_ack_and_is_not_stored_twice, .init = hub_test_up,
     .fini = hub_test_down) {
    int fd = hub_test_dial(hub_test_mllp_port());
    hub_buf a1, a2;
    hub_buf_init(&a1);
    hub_buf_init(&a2);
    cr_assert_str_eq(send_recv(fd, ADT("CTL-D1"), &a1), "AA");
    close(fd);
    fd = hub_test_dial(hub_test_mllp_port()); /* the sender reconnects */
    cr_assert_str_eq(send_recv(fd, ADT("CTL-D1"), &a2), "AA");
    cr_assert_str_eq(a1.p, a2.p, "the very same ACK");
    json_t *j = messages("?control_id=CTL-D1");
    cr_assert_eq(json_array_size(json_object_get(j, "messages")), 1);
    json_decref(j);
    /* Another sender may use the same control id. */
    const char *other =
        "MSH|^~\\&|LAB|OTHERHOSP|HUB|HUB|20261125101500||ADT^A01^ADT_A01|CTL-D1|P|2.5.1\r"
        "EVN|A01|20261125101500\rPID|1||M1^^^OTHERHOSP^MR||ROE^RICHARD||19700101|M\r"
        "PV1|1|O\r";
    cr_assert_str_eq(send_recv(fd, other, &a2), "AA");
    j = messages("?control_id=CTL-D1");
    cr_assert_eq(json_array_size(json_object_get(j, "messages")), 2);
    json_decref(j);
    close(fd);
    hub_buf_release(&a1);
    hub_buf_release(&a2);
}

/* An ADT^A01 with control id `ctl` for patient MRN<n>. */
static void adt_numbered(char *out, size_t cap, const char *ctl, int n) {
    snprintf(out, cap,
             "MSH|^~\\&|EHR|GENHOSP|HUB|HUB|20261125101500||ADT^A01^ADT_A01|%s|P|2.5.1\r"
             "EVN|A01|20261125101500\rPID|1||MRN%d^^^GENHOSP^MR||DOE^JANE||19800101|F\r"
             "PV1|1|I\r",
             ctl, n);
}

static void write_raw(int fd, const char *p, size_t n) {
    cr_assert_eq(write(fd, p, n), (ssize_t)n);
}

Test(e2e_ingest, split_and_pipelined_frames_keep_order, .init = hub_test_up,
     .fini = hub_test_down) {
    int fd = hub_test_dial(hub_test_mllp_port());
    hub_buf all;
    hub_buf_init(&all);
    const char *ids[] = {"CTL-P1", "CTL-P2", "CTL-P3"};
    for (int i = 0; i < 3; i++) {
        char msg[512];
        adt_numbered(msg, sizeof msg, ids[i], i);
        hub_buf_append(&all, "garbage-before-frame\n", 21); /* skipped */
        hub_buf_append(&all, "\x0b", 1);
        hub_buf_append_cstr(&all, msg);
        hub_buf_append(&all, "\x1c\r", 2);
    }
    /* Frame 1 split in three writes, then frames 2 and 3 in one. */
    size_t first_end = (size_t)(strstr(all.p, "\x1c\r") - all.p) + 2;
    write_raw(fd, all.p, 30);
    usleep(50000);
    write_raw(fd, all.p + 30, first_end - 31);
    usleep(50000);
    write_raw(fd, all.p + first_end - 1, all.n - (first_end - 1));
    hub_buf ack;
    hub_buf_init(&ack);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(hub_test_read_frame(fd, &ack, 10000), 0);
        char want[32];
        snprintf(want, sizeof want, "MSA|AA|%s", ids[i]);
        cr_assert(strstr(ack.p, want), "ACK %d in order: %s", i, ack.p);
    }
    close(fd);
    hub_buf_release(&ack);
    hub_buf_release(&all);
}

/* hub_store_commits_total from /metrics. */
static long long commits_total(void) {
    hub_buf b;
    hub_buf_init(&b);
    cr_assert_eq(hub_test_http(hub_test_http_port(), "GET", "/metrics", NULL, NULL, 0, &b, NULL),
                 200);
    const char *p = strstr(b.p, "\nhub_store_commits_total ");
    cr_assert_not_null(p);
    long long v = atoll(p + strlen("\nhub_store_commits_total "));
    hub_buf_release(&b);
    return v;
}

/* Frames that arrive together are handled in one round of the loop and
 * committed as one group: each still gets its own AA, in order, after the
 * commit, and is journaled once. */
Test(e2e_ingest, pipelined_frames_share_a_commit, .init = hub_test_up,
     .fini = hub_test_down) {
    enum { N = 20 };
    int fd = hub_test_dial(hub_test_mllp_port());
    hub_buf all, ack;
    hub_buf_init(&all);
    hub_buf_init(&ack);
    for (int i = 0; i < N; i++) {
        char msg[512], ctl[32];
        snprintf(ctl, sizeof ctl, "CTL-G%d", i);
        adt_numbered(msg, sizeof msg, ctl, 100 + i);
        hub_buf_append(&all, "\x0b", 1);
        hub_buf_append_cstr(&all, msg);
        hub_buf_append(&all, "\x1c\r", 2);
    }
    long long before = commits_total();
    write_raw(fd, all.p, all.n);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(hub_test_read_frame(fd, &ack, 10000), 0);
        char want[32];
        snprintf(want, sizeof want, "MSA|AA|CTL-G%d\r", i);
        cr_assert(strstr(ack.p, want), "ACK %d in order: %s", i, ack.p);
    }
    long long commits = commits_total() - before;
    cr_assert_lt(commits, N / 2, "%lld commits for %d frames sent together", commits, N);
    json_t *j = messages("?control_id=CTL-G7");
    cr_assert_eq(json_array_size(json_object_get(j, "messages")), 1);
    json_decref(j);
    close(fd);
    hub_buf_release(&ack);
    hub_buf_release(&all);
}

Test(e2e_ingest, oversize_frame_gets_nack_and_close) {
    hub_test_hub h = {0};
    const char *extra[] = {"--mllp-max-frame", "2048", NULL};
    hub_test_start(&h, extra);
    int fd = hub_test_dial(h.mllp_port);
    hub_buf big;
    hub_buf_init(&big);
    hub_buf_append_cstr(&big, "MSH|^~\\&|EHR|GENHOSP|HUB|HUB|20261125||ADT^A01|CTL-BIG|P|2.5.1\rNTE|1||");
    for (int i = 0; i < 5000; i++) hub_buf_append(&big, "x", 1);
    hub_buf_append(&big, "\r", 1);
    cr_assert_eq(hub_test_send_frame(fd, big.p), 0);
    hub_buf ack;
    hub_buf_init(&ack);
    cr_assert_eq(hub_test_read_frame(fd, &ack, 10000), 0);
    cr_assert_str_eq(hub_test_ack_code(ack.p), "AR");
    cr_assert(strstr(ack.p, "MSA|AR|CTL-BIG"), "%s", ack.p);
    /* Then the connection is closed. */
    char c;
    struct pollfd p = {fd, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, 5000), 1);
    cr_assert_eq(read(fd, &c, 1), 0, "closed after the NACK");
    close(fd);
    /* Others are unaffected. */
    fd = hub_test_dial(h.mllp_port);
    cr_assert_eq(hub_test_send_frame(fd, ADT("CTL-AFTER")), 0);
    cr_assert_eq(hub_test_read_frame(fd, &ack, 10000), 0);
    cr_assert_str_eq(hub_test_ack_code(ack.p), "AA");
    close(fd);
    hub_buf_release(&ack);
    hub_buf_release(&big);
    hub_test_stop(&h);
}

Test(e2e_ingest, connection_limit_refuses_new_keeps_old) {
    hub_test_hub h = {0};
    char cfgp[400];
    char tmp[256];
    hub_test_tmpdir(tmp);
    snprintf(cfgp, sizeof cfgp, "%s/hub.json", tmp);
    FILE *f = fopen(cfgp, "w");
    fputs("{\"mllp\": {\"max_connections\": 2}}", f);
    fclose(f);
    const char *extra[] = {"--config", cfgp, NULL};
    hub_test_start(&h, extra);
    int a = hub_test_dial(h.mllp_port), b = hub_test_dial(h.mllp_port);
    hub_buf ack;
    hub_buf_init(&ack);
    cr_assert_eq(hub_test_send_frame(a, ADT("CTL-L1")), 0);
    cr_assert_eq(hub_test_read_frame(a, &ack, 10000), 0);
    int c = hub_test_dial(h.mllp_port); /* the third: refused */
    char ch;
    struct pollfd p = {c, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, 5000), 1);
    cr_assert_leq(read(c, &ch, 1), 0, "third connection closed at once");
    close(c);
    cr_assert_eq(hub_test_send_frame(b, ADT("CTL-L2")), 0);
    cr_assert_eq(hub_test_read_frame(b, &ack, 10000), 0, "old ones unaffected");
    cr_assert_str_eq(hub_test_ack_code(ack.p), "AA");
    close(a);
    close(b);
    hub_buf_release(&ack);
    hub_test_stop(&h);
    hub_test_rmtree(tmp);
}

Test(e2e_ingest, idle_connection_is_closed) {
    hub_test_hub h = {0};
    const char *extra[] = {"--set", "mllp.idle_timeout=1", NULL};
    hub_test_start(&h, extra);
    int fd = hub_test_dial(h.mllp_port);
    char ch;
    struct pollfd p = {fd, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, 5000), 1, "closed within the timeout");
    cr_assert_eq(read(fd, &ch, 1), 0);
    close(fd);
    hub_test_stop(&h);
}

Test(e2e_ingest, python_hl7_mllp_send_is_acked, .init = hub_test_up,
     .fini = hub_test_down) {
    if (access("/usr/bin/mllp_send", X_OK) != 0)
        cr_skip("python3-hl7's mllp_send is not installed");
    char tmp[256], file[300], port[16];
    hub_test_tmpdir(tmp);
    snprintf(file, sizeof file, "%s/msgs.hl7", tmp);
    FILE *f = fopen(file, "w");
    /* mllp_send reads a stream of MLLP-framed messages. */
    fputs("\x0b" ADT("PY-1") "\x1c\r\x0b" ADT("PY-2") "\x1c\r", f);
    fclose(f);
    snprintf(port, sizeof port, "%d", hub_test_mllp_port());
    const char *argv[] = {"/usr/bin/mllp_send", "--port", port, "--file", file,
                          "127.0.0.1", NULL};
    hub_buf out, err;
    hub_buf_init(&out);
    hub_buf_init(&err);
    cr_assert_eq(hub_test_run(argv, NULL, &out, &err), 0, "%s", err.p);
    cr_assert(strstr(out.p, "MSA|AA|PY-1"), "%s", out.p);
    cr_assert(strstr(out.p, "MSA|AA|PY-2"), "%s", out.p);
    json_t *j = messages("?sender=EHR");
    cr_assert_eq(json_array_size(json_object_get(j, "messages")), 2);
    json_decref(j);
    hub_buf_release(&out);
    hub_buf_release(&err);
    hub_test_rmtree(tmp);
}

Test(e2e_ingest, hub_send_and_hub_journal, .init = hub_test_up, .fini = hub_test_down) {
    char tmp[256], file[300], hp[64];
    hub_test_tmpdir(tmp);
    snprintf(file, sizeof file, "%s/batch.hl7", tmp);
    FILE *f = fopen(file, "w");
    fputs("BHS|^~\\&|EHR|GENHOSP\r" ADT("HS-1") ADT("HS-2") "BTS|2\r", f);
    fclose(f);
    snprintf(hp, sizeof hp, "127.0.0.1:%d", hub_test_mllp_port());
    const char *send[] = {HUB_BIN, "send", hp, file, NULL};
    hub_buf out, err;
    hub_buf_init(&out);
    hub_buf_init(&err);
    cr_assert_eq(hub_test_run(send, NULL, &out, &err), 0, "%s%s", out.p, err.p);
    hub_buf_release(&out);
    hub_buf_release(&err);
    hub_buf_init(&out);
    hub_buf_init(&err);
    const char *jl[] = {HUB_BIN, "journal", "--data", hub_test_current.dir,
                        "--sender", "EHR", NULL};
    cr_assert_eq(hub_test_run(jl, NULL, &out, &err), 0, "%s", err.p);
    cr_assert(strstr(out.p, "HS-1") && strstr(out.p, "HS-2"), "%s", out.p);
    cr_assert(strstr(out.p, "processed AA"), "%s", out.p);
    hub_buf_release(&out);
    hub_buf_release(&err);
    hub_buf_init(&out);
    hub_buf_init(&err);
    const char *js[] = {HUB_BIN, "journal", "show", "1", "--data",
                        hub_test_current.dir, NULL};
    cr_assert_eq(hub_test_run(js, NULL, &out, &err), 0, "%s", err.p);
    cr_assert(strstr(out.p, "-- ack --"), "%s", out.p);
    cr_assert(strstr(out.p, "MSA|AA|HS-1"), "%s", out.p);
    hub_buf_release(&out);
    hub_buf_release(&err);
    hub_test_rmtree(tmp);
}

#define ENH(ctl, ack15) \
    "MSH|^~\\&|EHR|GENHOSP|HUB|HUB|20261125101500||ADT^A01^ADT_A01|" ctl "|P|2.5.1|||" ack15 "|NE\r" \
    "EVN|A01|20261125101500\r" \
    "PID|1||MRN123^^^GENHOSP^MR||DOE^JANE||19800101|F\r" \
    "PV1|1|I\r"

Test(e2e_ingest, enhanced_mode_and_channel_ack_mode) {
    char tmp[256], cfgp[300];
    hub_test_tmpdir(tmp);
    snprintf(cfgp, sizeof cfgp, "%s/hub.json", tmp);
    FILE *f = fopen(cfgp, "w");
    fputs("{\"channels\": [{\"name\": \"auto\", \"port\": 0},"
          " {\"name\": \"orig\", \"port\": 0, \"ack_mode\": \"original\"}]}", f);
    fclose(f);
    hub_test_hub h = {0};
    const char *extra[] = {"--config", cfgp, NULL};
    hub_test_start(&h, extra);
    /* The first channel's port is in serve.json; the second from /healthz
     * is not published, so read the log line of each channel. */
    int ports[2] = {0, 0};
    /* The second line may come after serve.json (seen under ASan at load
     * 30): read the log again until both are there. */
    for (int tries = 0; tries < 100 && !(ports[0] > 0 && ports[1] > 0); tries++) {
        if (tries) usleep(50000);
        size_t n;
        char *log = hub_test_read_file(h.log, &n);
        const char *p = log;
        for (int i = 0; i < 2 && p; i++) {
            p = strstr(p, "channel name=");
            if (!p) break;
            const char *q = strstr(p, "port=");
            if (!q) break;
            ports[i] = atoi(q + 5);
            p = q;
        }
        hub_free(log);
    }
    cr_assert(ports[0] > 0 && ports[1] > 0);
    hub_buf ack;
    hub_buf_init(&ack);
    /* MSH-15 AL: an accept ACK, CA. */
    int fd = hub_test_dial(ports[0]);
    cr_assert_str_eq(send_recv(fd, ENH("ENH-1", "AL"), &ack), "CA");
    /* MSH-15 NE: no ACK at all (the message is still stored). */
    cr_assert_eq(hub_test_send_frame(fd, ENH("ENH-2", "NE")), 0);
    cr_assert_neq(hub_test_read_frame(fd, &ack, 1000), 0, "no accept ACK for NE");
    close(fd);
    /* The "original" channel answers AA whatever MSH-15 says. */
    fd = hub_test_dial(ports[1]);
    cr_assert_str_eq(send_recv(fd, ENH("ENH-3", "NE"), &ack), "AA");
    close(fd);
    hub_buf body;
    hub_buf_init(&body);
    cr_assert_eq(hub_test_http(h.http_port, "GET", "/api/messages?control_id=ENH-2",
                               NULL, NULL, 0, &body, NULL), 200);
    cr_assert(strstr(body.p, "\"status\":\"processed\""), "%s", body.p);
    cr_assert(strstr(body.p, "\"channel\":\"auto\""), "%s", body.p);
    hub_buf_release(&body);
    hub_buf_release(&ack);
    hub_test_stop(&h);
    hub_test_rmtree(tmp);
}

/* On a channel that only journals, the insert of a resend is what finds
 * it (the dedup index): a resend after a reconnect, and one in the same
 * commit group as its original (both frames in one write), each get the
 * original's ACK, and the journal keeps one row. */
Test(e2e_ingest, journal_only_resends_get_the_same_ack) {
    char tmp[256], cfgp[300];
    hub_test_tmpdir(tmp);
    snprintf(cfgp, sizeof cfgp, "%s/hub.json", tmp);
    FILE *f = fopen(cfgp, "w");
    fputs("{\"channels\": [{\"name\": \"journal\", \"port\": 0, \"map\": false}]}", f);
    fclose(f);
    hub_test_hub h = {0};
    const char *extra[] = {"--config", cfgp, NULL};
    hub_test_start(&h, extra);
    hub_buf a1, a2, two;
    hub_buf_init(&a1);
    hub_buf_init(&a2);
    hub_buf_init(&two);
    int fd = hub_test_dial(h.mllp_port);
    cr_assert_str_eq(send_recv(fd, ADT("CTL-J1"), &a1), "AA");
    close(fd);
    fd = hub_test_dial(h.mllp_port);
    cr_assert_str_eq(send_recv(fd, ADT("CTL-J1"), &a2), "AA");
    cr_assert_str_eq(a1.p, a2.p, "the very same ACK");
    for (int i = 0; i < 2; i++) {
        hub_buf_append(&two, "\x0b", 1);
        hub_buf_append_cstr(&two, ADT("CTL-J2"));
        hub_buf_append(&two, "\x1c\r", 2);
    }
    write_raw(fd, two.p, two.n);
    cr_assert_eq(hub_test_read_frame(fd, &a1, 10000), 0);
    cr_assert_eq(hub_test_read_frame(fd, &a2, 10000), 0);
    cr_assert(strstr(a1.p, "MSA|AA|CTL-J2\r"), "%s", a1.p);
    cr_assert_str_eq(a1.p, a2.p, "the resend in the same group gets the same ACK");
    close(fd);
    for (int k = 1; k <= 2; k++) {
        char path[80];
        snprintf(path, sizeof path, "/api/messages?control_id=CTL-J%d", k);
        hub_buf body;
        hub_buf_init(&body);
        cr_assert_eq(hub_test_http(h.http_port, "GET", path, NULL, NULL, 0, &body, NULL), 200);
        json_t *j = json_loadb(body.p, body.n, 0, NULL);
        cr_assert_eq(json_array_size(json_object_get(j, "messages")), 1, "%s", body.p);
        cr_assert(strstr(body.p, "\"status\":\"accepted\""), "%s", body.p);
        json_decref(j);
        hub_buf_release(&body);
    }
    hub_buf_release(&a1);
    hub_buf_release(&a2);
    hub_buf_release(&two);
    hub_test_stop(&h);
    hub_test_rmtree(tmp);
}

Test(cli_channels, bad_channel_config_is_named) {
    char tmp[256], cfgp[300];
    hub_test_tmpdir(tmp);
    snprintf(cfgp, sizeof cfgp, "%s/hub.json", tmp);
    FILE *f = fopen(cfgp, "w");
    fputs("{\"channels\": [{\"name\": \"a\", \"port\": 0, \"ack_mode\": \"sometimes\"}]}", f);
    fclose(f);
    char data[300];
    snprintf(data, sizeof data, "%s/data", tmp);
    const char *argv[] = {HUB_BIN, "serve", "--config", cfgp, "--data", data, NULL};
    hub_buf out, err;
    hub_buf_init(&out);
    hub_buf_init(&err);
    cr_assert_eq(hub_test_run(argv, NULL, &out, &err), 2);
    cr_assert(strstr(err.p, "channels[0]") && strstr(err.p, "ack_mode"), "%s", err.p);
    hub_buf_release(&out);
    hub_buf_release(&err);
    f = fopen(cfgp, "w");
    fputs("{\"channels\": [{\"name\": \"a\", \"port\": 0, \"prot\": 1}]}", f);
    fclose(f);
    hub_buf_init(&out);
    hub_buf_init(&err);
    cr_assert_eq(hub_test_run(argv, NULL, &out, &err), 2);
    cr_assert(strstr(err.p, "unknown key 'prot'"), "%s", err.p);
    hub_buf_release(&out);
    hub_buf_release(&err);
    hub_test_rmtree(tmp);
}

Test(e2e_api, messages_api_bad_input_and_paging, .init = hub_test_up, .fini = hub_test_down) {
    int fd = hub_test_dial(hub_test_mllp_port());
    hub_buf ack;
    hub_buf_init(&ack);
    const char *ids[] = {"PG-1", "PG-2", "PG-3"};
    for (int i = 0; i < 3; i++) {
        char msg[512];
        adt_numbered(msg, sizeof msg, ids[i], i);
        cr_assert_str_eq(send_recv(fd, msg, &ack), "AA");
    }
    close(fd);
    hub_buf_release(&ack);
    int port = hub_test_http_port();
    hub_buf b;
    hub_buf_init(&b);
    cr_assert_eq(hub_test_http(port, "GET", "/api/messages?status=maybe", NULL, NULL, 0, &b, NULL), 400);
    cr_assert(strstr(b.p, "status must be"), "%s", b.p);
    cr_assert_eq(hub_test_http(port, "GET", "/api/messages?limit=0", NULL, NULL, 0, NULL, NULL), 400);
    cr_assert_eq(hub_test_http(port, "GET", "/api/messages?limit=5000", NULL, NULL, 0, NULL, NULL), 400);
    cr_assert_eq(hub_test_http(port, "GET", "/api/messages?since=yesterday", NULL, NULL, 0, NULL, NULL), 400);
    cr_assert_eq(hub_test_http(port, "GET", "/api/messages/999999", NULL, NULL, 0, NULL, NULL), 404);
    cr_assert_eq(hub_test_http(port, "GET", "/api/messages/abc", NULL, NULL, 0, NULL, NULL), 404);
    /* Two per page: newest first, then the rest through next_before. */
    json_t *p1 = messages("?limit=2");
    json_t *arr = json_object_get(p1, "messages");
    cr_assert_eq(json_array_size(arr), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "control_id")), "PG-3");
    const char *next = json_string_value(json_object_get(p1, "next_before"));
    cr_assert_not_null(next);
    char q[64];
    snprintf(q, sizeof q, "?limit=2&before=%s", next);
    json_t *p2 = messages(q);
    json_t *arr2 = json_object_get(p2, "messages");
    cr_assert_eq(json_array_size(arr2), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(arr2, 0), "control_id")), "PG-1");
    cr_assert(json_is_null(json_object_get(p2, "next_before")));
    /* One message in full: body and ACK for the operator. */
    char one[64];
    snprintf(one, sizeof one, "/api/messages/%lld",
             (long long)json_integer_value(json_object_get(json_array_get(arr2, 0), "id")));
    json_t *m = api(one);
    cr_assert(strstr(json_string_value(json_object_get(m, "body")), "PG-1"));
    cr_assert(strstr(json_string_value(json_object_get(m, "ack")), "MSA|AA|PG-1"));
    json_decref(m);
    json_decref(p1);
    json_decref(p2);
    hub_buf_release(&b);
}

/* The row of the journaled message with control id `ctl`, in full. */
static json_t *message_full(const char *ctl) {
    char q[96];
    snprintf(q, sizeof q, "?control_id=%s", ctl);
    json_t *list = messages(q);
    json_t *arr = json_object_get(list, "messages");
    cr_assert_eq(json_array_size(arr), 1, "one row for %s", ctl);
    char one[64];
    snprintf(one, sizeof one, "/api/messages/%lld",
             (long long)json_integer_value(json_object_get(json_array_get(arr, 0), "id")));
    json_decref(list);
    return api(one);
}

/* Jobs are reused (with their frame buffer, arena and ACK buffers): a big
 * message, then one with errors, then a small clean one must each be
 * journaled as sent, with only their own findings and ACK. */
Test(e2e_ingest, reused_jobs_carry_nothing_over, .init = hub_test_up, .fini = hub_test_down) {
    int fd = hub_test_dial(hub_test_mllp_port());
    hub_buf ack, big;
    hub_buf_init(&ack);
    hub_buf_init(&big);
    /* About 20 KB: past the frame buffer a new job starts with. */
    hub_buf_append_cstr(&big, ADT("REUSE-1"));
    for (int i = 0; i < 200; i++)
        hub_buf_append_cstr(&big, "NK1|1|DOE^JOHN|SPO^Spouse^HL70063||^PRN^PH^^1^555^5550100\r");
    cr_assert_str_eq(send_recv(fd, big.p, &ack), "AA");
    const char *bad =
        "MSH|^~\\&|EHR|GENHOSP|HUB|HUB|20261125101500||ADT^A01^ADT_A01|REUSE-2|P|2.5.1\r"
        "EVN|A01|20261125101500\r"
        "PID|1||MRN9^^^GENHOSP^MR||DOE^JOHN||20230231|M\r"
        "PV1|1|I\r";
    cr_assert_str_eq(send_recv(fd, bad, &ack), "AE");
    cr_assert_str_eq(send_recv(fd, ADT("REUSE-3"), &ack), "AA");
    cr_assert_null(strstr(ack.p, "ERR|"), "no ERR of the message before: %s", ack.p);
    /* A resend is answered from the journal; the next message is not. */
    cr_assert_str_eq(send_recv(fd, ADT("REUSE-3"), &ack), "AA");
    cr_assert_str_eq(send_recv(fd, ADT("REUSE-4"), &ack), "AA");
    cr_assert(strstr(ack.p, "MSA|AA|REUSE-4"), "its own ACK: %s", ack.p);
    json_t *m4 = message_full("REUSE-4");
    cr_assert_str_eq(json_string_value(json_object_get(m4, "body")), ADT("REUSE-4"));
    json_decref(m4);

    json_t *m1 = message_full("REUSE-1");
    cr_assert_str_eq(json_string_value(json_object_get(m1, "body")), big.p);
    json_t *m2 = message_full("REUSE-2");
    cr_assert_str_eq(json_string_value(json_object_get(m2, "body")), bad);
    cr_assert_str_eq(json_string_value(json_object_get(m2, "ack_code")), "AE");
    cr_assert_gt(json_array_size(json_object_get(m2, "errors")), 0);
    json_t *m3 = message_full("REUSE-3");
    cr_assert_str_eq(json_string_value(json_object_get(m3, "body")), ADT("REUSE-3"));
    cr_assert_str_eq(json_string_value(json_object_get(m3, "ack_code")), "AA");
    cr_assert_str_eq(json_string_value(json_object_get(m3, "sender")), "EHR^GENHOSP");
    cr_assert_str_eq(json_string_value(json_object_get(m3, "type")), "ADT^A01^ADT_A01");
    cr_assert_eq(json_array_size(json_object_get(m3, "errors")), 0, "no findings carried over");
    cr_assert(strstr(json_string_value(json_object_get(m3, "ack")), "MSA|AA|REUSE-3"));
    json_decref(m1);
    json_decref(m2);
    json_decref(m3);
    close(fd);
    hub_buf_release(&ack);
    hub_buf_release(&big);
}
