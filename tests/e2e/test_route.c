/* Routing end to end: a real `hub serve`, a real HTTP subscriber
 * (tests/e2e/route/receiver.py, checking the HMAC signature) and a real
 * MLLP subscriber (the hub's own MLLP server in this process, answering AA
 * or AE). Changes come in through FHIR and through MLLP (v2 mapped to
 * FHIR); notifications must arrive signed, numbered and in order, survive a
 * subscriber that is down, a kill -9 of the hub, and be replayable with
 * $events. */
#include "fhir_test.h"
#include "hub_test.h"
#include "hub/mllp.h"
#include "hub/mpi.h"
#include "mllp_test.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define SECRET "route-test-secret-0123456789"
#define CT "Content-Type: application/fhir+json\r\n"

/* ---- the HTTP subscriber ----------------------------------------------------- */

typedef struct {
    pid_t pid;
    int port;
    char dir[256];
    char log[300];
} receiver;

static const char *g_secret = SECRET;
static const char *g_tls[3]; /* cert, key, client CA: an HTTPS receiver */

static void recv_start(receiver *rv, int port, int status) {
    if (rv->dir[0] == '\0') hub_test_tmpdir(rv->dir);
    snprintf(rv->log, sizeof rv->log, "%s/notes.jsonl", rv->dir);
    char portfile[300], ports[16], sts[16];
    snprintf(portfile, sizeof portfile, "%s/port", rv->dir);
    unlink(portfile);
    snprintf(ports, sizeof ports, "%d", port);
    snprintf(sts, sizeof sts, "%d", status);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        /* dies with the test, even when an assertion ends it early */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execlp("python3", "python3", HUB_SOURCE_DIR "/tests/e2e/route/receiver.py", portfile,
               rv->log, g_secret, ports, sts, g_tls[0], g_tls[1], g_tls[2], (char *)NULL);
        _exit(127);
    }
    rv->pid = pid;
    for (int i = 0; i < 200; i++) {
        size_t n;
        char *p = hub_test_read_file(portfile, &n);
        if (p) {
            rv->port = atoi(p);
            hub_free(p);
            return;
        }
        usleep(25000);
    }
    cr_assert_fail("receiver did not start");
}

static void recv_stop(receiver *rv) {
    if (rv->pid > 0) {
        kill(rv->pid, SIGTERM);
        while (waitpid(rv->pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    rv->pid = 0;
}

/* The notifications received so far (a JSON array of the log's lines). */
static json_t *notes(receiver *rv) {
    json_t *a = json_array();
    size_t n;
    char *p = hub_test_read_file(rv->log, &n);
    if (!p) return a;
    for (char *line = strtok(p, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *j = json_loads(line, 0, NULL);
        if (j) json_array_append_new(a, j);
    }
    hub_free(p);
    return a;
}

/* Event numbers received, in arrival order, in out (count returned). */
static size_t events_of(receiver *rv, int *out, size_t cap, bool *all_signed) {
    json_t *a = notes(rv);
    size_t k = 0, i;
    json_t *n;
    *all_signed = true;
    json_array_foreach(a, i, n) {
        if (!json_is_true(json_object_get(n, "sig_ok"))) *all_signed = false;
        size_t e;
        json_t *ev;
        json_array_foreach(json_object_get(n, "events"), e, ev) {
            if (k < cap) out[k++] = (int)json_integer_value(ev);
        }
    }
    json_decref(a);
    return k;
}

/* Waits until at least `want` events arrived (or timeout); the count. */
static size_t wait_events(receiver *rv, size_t want, int timeout_ms, int *out, size_t cap) {
    size_t k = 0;
    bool sig;
    for (int t = 0; t < timeout_ms; t += 50) {
        k = events_of(rv, out, cap, &sig);
        if (k >= want) break;
        usleep(50000);
    }
    return k;
}

/* ---- the hub ------------------------------------------------------------------------ */

static char g_tmp[256];
static const char *const *g_extra; /* the flags, for a restart */
/* the configuration file's text */
#define CONF_PLAIN "{\"channels\": [{\"name\": \"ehr\", \"port\": 0, \"validate\": false}]}"
#define CONF_MPI                                                                      \
    "{\"channels\": [{\"name\": \"ehr\", \"port\": 0, \"validate\": false}],"            \
    " \"mpi\": {\"enabled\": true}}"
static const char *g_conf = CONF_PLAIN;

static void up_with(const char *const *more) {
    hub_test_tmpdir(g_tmp);
    char cfgp[300];
    snprintf(cfgp, sizeof cfgp, "%s/hub.json", g_tmp);
    FILE *f = fopen(cfgp, "w");
    cr_assert_not_null(f);
    fputs(g_conf, f);
    fclose(f);
    static char cfgarg[300];
    snprintf(cfgarg, sizeof cfgarg, "%s", cfgp);
    static const char *extra[24];
    const char *base[] = {"--config", cfgarg, "--set", "route.allow_http=true",
                             "--set", "route.retry_min_ms=50", "--set", "route.retry_max_ms=200"};
    size_t n = 8;
    memcpy(extra, base, sizeof base);
    for (size_t i = 0; more && more[i] && n < 23; i++) extra[n++] = more[i];
    extra[n] = NULL;
    g_extra = extra;
    memset(&hub_test_current, 0, sizeof hub_test_current);
    hub_test_start(&hub_test_current, extra);
}
static void up(void) { up_with(NULL); }
static void down(void) {
    hub_test_down();
    hub_test_rmtree(g_tmp);
}

static int post(const char *path, const char *body, ft_resp *r) {
    return ft_req(hub_test_http_port(), "POST", path, CT, body, strlen(body), r);
}

/* Creates a Subscription; returns its id (static storage). */
static const char *subscribe(const char *criteria, const char *channel, const char *endpoint,
                             const char *extra_channel) {
    static char id[80];
    char body[4096];
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Subscription\",\"status\":\"requested\",\"reason\":\"test\","
             "\"criteria\":\"%s\",\"extension\":[{\"url\":"
             "\"http://hl7hub.org/fhir/StructureDefinition/subscription-secret\","
             "\"valueString\":\"" SECRET "\"}],"
             "\"channel\":{\"type\":\"%s\",\"endpoint\":\"%s\"%s}}",
             criteria, channel, endpoint, extra_channel ? extra_channel : "");
    ft_resp r;
    int st = post("/fhir/Subscription", body, &r);
    cr_assert_eq(st, 201, "subscription created: %d %s", st, r.body.p);
    json_t *j = ft_json(&r);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    ft_release(&r);
    return id;
}

/* $status: status and events since start. */
static void sub_status(const char *id, char status[16], long *events) {
    char path[200];
    snprintf(path, sizeof path, "/fhir/Subscription/%s/$status", id);
    ft_resp r;
    cr_assert_eq(ft_req(hub_test_http_port(), "GET", path, NULL, NULL, 0, &r), 200);
    json_t *j = ft_json(&r);
    json_t *ps = json_object_get(json_object_get(json_array_get(json_object_get(j, "entry"), 0),
                                                 "resource"),
                                 "parameter");
    size_t i;
    json_t *p;
    status[0] = '\0';
    *events = -1;
    json_array_foreach(ps, i, p) {
        const char *n = json_string_value(json_object_get(p, "name"));
        if (strcmp(n, "status") == 0)
            snprintf(status, 16, "%s", json_string_value(json_object_get(p, "valueCode")));
        if (strcmp(n, "events-since-subscription-start") == 0)
            *events = atol(json_string_value(json_object_get(p, "valueString")));
    }
    json_decref(j);
    ft_release(&r);
}

static bool wait_status(const char *id, const char *want, int timeout_ms) {
    char st[16];
    long ev;
    for (int t = 0; t < timeout_ms; t += 50) {
        sub_status(id, st, &ev);
        if (strcmp(st, want) == 0) return true;
        usleep(50000);
    }
    return false;
}

static void observation(const char *code, const char *patient) {
    char body[1024];
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":"
             "[{\"system\":\"http://loinc.org\",\"code\":\"%s\"}]},\"subject\":{\"reference\":"
             "\"Patient/%s\"},\"valueQuantity\":{\"value\":5.4,\"unit\":\"mmol/L\"}}",
             code, patient);
    ft_resp r;
    cr_assert_eq(post("/fhir/Observation", body, &r), 201);
    ft_release(&r);
}

static char *endpoint_of(const receiver *rv) {
    static char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d/hook", rv->port);
    return ep;
}

#define MSH(type, ctl) "MSH|^~\\&|LAB|GENHOSP|HUB|HUB|20261125101500||" type "|" ctl "|P|2.5.1\r"
#define PID_DOE "PID|1||MRN1^^^GENHOSP&1.2.3&ISO^MR||DOE^JANE||19800101|F\r"
#define ORU(ctl, code)                                                                     \
    MSH("ORU^R01^ORU_R01", ctl) PID_DOE "OBR|1||F" ctl "^LAB|" code "^Glucose^LN\r"         \
                                        "OBX|1|NM|" code "^Glucose^LN||5.4|mmol/L|||||F\r"
#define ADT_A01(ctl)                                                                       \
    MSH("ADT^A01^ADT_A01", ctl) "EVN|A01|20261125101500\r" PID_DOE                          \
        "PV1|1|I|MED^101^1||||||||||||||||V" ctl "^^^GENHOSP&1.2.3&ISO^VN\r"

static void send_v2(const char *msg) {
    int fd = hub_test_dial(hub_test_mllp_port());
    hub_buf ack;
    hub_buf_init(&ack);
    cr_assert_eq(hub_test_send_frame(fd, msg), 0);
    cr_assert_eq(hub_test_read_frame(fd, &ack, 10000), 0);
    cr_assert_str_eq(hub_test_ack_code(ack.p), "AA", "ack: %s", ack.p);
    hub_buf_release(&ack);
    close(fd);
}

/* ---- rest-hook ---------------------------------------------------------------------- */

Test(e2e_route, rest_hook_fhir_and_v2_signed_in_order, .init = up, .fini = down) {
    receiver rv = {0};
    recv_start(&rv, 0, 200);
    const char *id = subscribe("Observation?code=http://loinc.org|2345-7", "rest-hook",
                               endpoint_of(&rv),
                               ",\"payload\":\"application/fhir+json\",\"header\":[\"X-Custom: yes\"]");
    cr_assert(wait_status(id, "active", 5000), "handshake made it active");
    observation("2345-7", "p1");
    observation("9999-9", "p1"); /* another code: no event */
    send_v2(ORU("ORU1", "2345-7"));
    observation("2345-7", "p2");
    int ev[16];
    size_t n = wait_events(&rv, 3, 10000, ev, 16);
    cr_assert_eq(n, 3, "three events, got %zu", n);
    for (int i = 0; i < 3; i++) cr_assert_eq(ev[i], i + 1, "in order");
    json_t *a = notes(&rv);
    size_t i;
    json_t *note;
    json_array_foreach(a, i, note) {
        cr_assert(json_is_true(json_object_get(note, "sig_ok")), "signed");
        cr_assert_str_eq(json_string_value(json_object_get(note, "custom")), "yes");
        cr_assert_str_eq(json_string_value(json_object_get(note, "bundle_type")), "history");
    }
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 0), "type")), "handshake");
    json_t *last = json_array_get(a, json_array_size(a) - 1);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(last, "resources"), 0)),
                     "Observation", "full resource");
    json_decref(a);
    char st[16];
    long events;
    sub_status(id, st, &events);
    cr_assert_str_eq(st, "active");
    cr_assert_eq(events, 3);
    /* Every delivery is on the audit trail (the subscription, the events'
     * span, the outcome), never the payload. */
    char q[160];
    snprintf(q, sizeof q, "/fhir/AuditEvent?entity-type=Subscription&entity=Subscription/%s", id);
    ft_resp r;
    cr_assert_eq(ft_req(hub_test_http_port(), "GET", q, NULL, NULL, 0, &r), 200, "%s", r.body.p);
    json_t *b = ft_json(&r);
    cr_assert(json_array_size(json_object_get(b, "entry")) >= 2, "handshake and events: %s",
              r.body.p);
    cr_assert(strstr(r.body.p, "2345-7") == NULL, "no payload on the trail");
    json_decref(b);
    ft_release(&r);
    recv_stop(&rv);
    hub_test_rmtree(rv.dir);
}

/* Composite criteria are matched in memory as the store searches them:
 * code-value-quantity is the Observation's code row with its
 * value-quantity row. */
Test(e2e_route, composite_criteria_pair_code_and_value, .init = up, .fini = down) {
    receiver rv = {0};
    recv_start(&rv, 0, 200);
    const char *id = subscribe("Observation?code-value-quantity=http://loinc.org|2345-7$gt5",
                               "rest-hook", endpoint_of(&rv),
                               ",\"payload\":\"application/fhir+json\"");
    cr_assert(wait_status(id, "active", 5000), "handshake made it active");
    observation("9999-9", "p1"); /* another code, the same value: no event */
    observation("2345-7", "p1"); /* 5.4 > 5 */
    int ev[4];
    size_t n = wait_events(&rv, 1, 10000, ev, 4);
    cr_assert_eq(n, 1, "one event, got %zu", n);
    char st[16];
    long events;
    sub_status(id, st, &events);
    cr_assert_str_eq(st, "active");
    cr_assert_eq(events, 1);
    recv_stop(&rv);
    hub_test_rmtree(rv.dir);
}

Test(e2e_route, topics_encounter_start_and_care_plan, .init = up, .fini = down) {
    receiver rv = {0};
    recv_start(&rv, 0, 200);
    const char *enc = subscribe("http://hl7hub.org/fhir/SubscriptionTopic/encounter-start",
                                "rest-hook", endpoint_of(&rv),
                                ",\"payload\":\"application/fhir+json\"");
    char enc_id[80];
    snprintf(enc_id, sizeof enc_id, "%s", enc);
    cr_assert(wait_status(enc_id, "active", 5000));
    receiver rv2 = {0};
    recv_start(&rv2, 0, 200);
    /* care-plan topic, filtered on one patient */
    char body[2048];
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Subscription\",\"status\":\"requested\",\"reason\":\"t\","
             "\"criteria\":\"http://hl7hub.org/fhir/SubscriptionTopic/care-plan\","
             "\"_criteria\":{\"extension\":[{\"url\":\"http://hl7.org/fhir/uv/"
             "subscriptions-backport/StructureDefinition/backport-filter-criteria\","
             "\"valueString\":\"patient=Patient/cp1\"}]},"
             "\"extension\":[{\"url\":\"http://hl7hub.org/fhir/StructureDefinition/"
             "subscription-secret\",\"valueString\":\"" SECRET "\"}],"
             "\"channel\":{\"type\":\"rest-hook\",\"endpoint\":\"%s\",\"payload\":"
             "\"application/fhir+json\",\"_payload\":{\"extension\":[{\"url\":\"http://hl7.org/"
             "fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content\","
             "\"valueCode\":\"id-only\"}]}}}",
             endpoint_of(&rv2));
    ft_resp r;
    cr_assert_eq(post("/fhir/Subscription", body, &r), 201, "%s", r.body.p);
    ft_release(&r);
    send_v2(ADT_A01("ADT1")); /* an admission: encounter started */
    const char *cp = "{\"resourceType\":\"CarePlan\",\"status\":\"active\",\"intent\":\"plan\","
                     "\"subject\":{\"reference\":\"Patient/cp1\"}}";
    const char *cp_other = "{\"resourceType\":\"CarePlan\",\"status\":\"active\",\"intent\":"
                           "\"plan\",\"subject\":{\"reference\":\"Patient/other\"}}";
    for (int t = 0; t < 100; t++) { /* the second subscription's handshake */
        bool sig;
        int tmp[4];
        json_t *seen = notes(&rv2);
        bool handshaken = events_of(&rv2, tmp, 4, &sig) == 0 && json_array_size(seen) > 0;
        json_decref(seen);
        if (handshaken) break;
        usleep(50000);
    }
    cr_assert_eq(post("/fhir/CarePlan", cp_other, &r), 201);
    ft_release(&r);
    cr_assert_eq(post("/fhir/CarePlan", cp, &r), 201);
    ft_release(&r);
    int ev[8];
    cr_assert_eq(wait_events(&rv, 1, 10000, ev, 8), 1, "the admission notified");
    cr_assert_eq(wait_events(&rv2, 1, 10000, ev, 8), 1, "one care plan (the filtered patient)");
    usleep(300000);
    cr_assert_eq(wait_events(&rv2, 2, 100, ev, 8), 1, "the other patient's care plan is not sent");
    json_t *a = notes(&rv2);
    json_t *last = json_array_get(a, json_array_size(a) - 1);
    cr_assert_eq(json_array_size(json_object_get(last, "resources")), 0, "id-only: no resource");
    cr_assert_eq(json_array_size(json_object_get(last, "focus")), 1, "id-only: the focus");
    json_decref(a);
    recv_stop(&rv);
    recv_stop(&rv2);
    hub_test_rmtree(rv.dir);
    hub_test_rmtree(rv2.dir);
}

static void up_patient(void) {
    const char *more[] = {"--set", "route.max_failures=100000", NULL};
    up_with(more);
}

Test(e2e_route, receiver_down_then_up_gets_all_in_order, .init = up_patient, .fini = down) {
    receiver rv = {0};
    recv_start(&rv, 0, 200);
    int port = rv.port;
    const char *id = subscribe("Observation?code=http://loinc.org|2345-7", "rest-hook",
                               endpoint_of(&rv), NULL);
    char sid[80];
    snprintf(sid, sizeof sid, "%s", id);
    cr_assert(wait_status(sid, "active", 5000));
    recv_stop(&rv);
    for (int i = 0; i < 8; i++) observation("2345-7", "p1");
    usleep(500000); /* some failed attempts */
    recv_start(&rv, port, 200);
    int ev[64];
    size_t n = wait_events(&rv, 8, 15000, ev, 64);
    cr_assert_eq(n, 8, "all eight after the receiver came back, got %zu", n);
    for (int i = 0; i < 8; i++) cr_assert_eq(ev[i], i + 1, "in order");
    recv_stop(&rv);
    hub_test_rmtree(rv.dir);
}

static void up_fail3(void) {
    const char *more[] = {"--set", "route.max_failures=3", NULL};
    up_with(more);
}

Test(e2e_route, failures_put_it_in_error_and_it_resumes, .init = up_fail3, .fini = down) {
    receiver rv = {0};
    recv_start(&rv, 0, 200);
    int port = rv.port;
    const char *id = subscribe("Observation?code=http://loinc.org|2345-7", "rest-hook",
                               endpoint_of(&rv), NULL);
    char sid[80];
    snprintf(sid, sizeof sid, "%s", id);
    cr_assert(wait_status(sid, "active", 5000));
    recv_stop(&rv);
    recv_start(&rv, port, 500); /* answers 500: every attempt fails */
    observation("2345-7", "p1");
    observation("2345-7", "p1");
    cr_assert(wait_status(sid, "error", 10000), "error after three failures");
    /* the error is on the Subscription too, and events keep being numbered */
    observation("2345-7", "p1");
    char st[16];
    long events;
    sub_status(sid, st, &events);
    cr_assert_eq(events, 3);
    char path[200];
    snprintf(path, sizeof path, "/fhir/Subscription/%s", sid);
    ft_resp r;
    cr_assert_eq(ft_req(hub_test_http_port(), "GET", path, NULL, NULL, 0, &r), 200);
    json_t *sub = ft_json(&r);
    ft_release(&r);
    cr_assert_str_eq(json_string_value(json_object_get(sub, "status")), "error");
    cr_assert_not_null(json_object_get(sub, "error"), "error says why");
    /* the receiver is fixed; the owner asks for it again */
    recv_stop(&rv);
    recv_start(&rv, port, 200);
    json_object_set_new(sub, "status", json_string("requested"));
    json_object_del(sub, "error");
    char *txt = json_dumps(sub, JSON_COMPACT);
    cr_assert_eq(ft_req(hub_test_http_port(), "PUT", path, CT, txt, strlen(txt), &r), 200);
    ft_release(&r);
    free(txt);
    json_decref(sub);
    int ev[16];
    bool sig;
    for (int t = 0; t < 200; t++) {
        size_t k = events_of(&rv, ev, 16, &sig);
        if (k >= 3 && ev[k - 1] == 3) break;
        usleep(50000);
    }
    size_t k = events_of(&rv, ev, 16, &sig);
    cr_assert_geq(k, 3);
    cr_assert_eq(ev[k - 3], 1);
    cr_assert_eq(ev[k - 2], 2);
    cr_assert_eq(ev[k - 1], 3, "resumed where it stopped");
    cr_assert(wait_status(sid, "active", 2000));
    recv_stop(&rv);
    hub_test_rmtree(rv.dir);
}

Test(e2e_route, kill9_mid_delivery_loses_nothing, .init = up_patient, .fini = down) {
    receiver rv = {0};
    recv_start(&rv, 0, 200);
    int port = rv.port;
    const char *id = subscribe("Observation?code=http://loinc.org|2345-7", "rest-hook",
                               endpoint_of(&rv), NULL);
    char sid[80];
    snprintf(sid, sizeof sid, "%s", id);
    cr_assert(wait_status(sid, "active", 5000));
    for (int i = 0; i < 30; i++) {
        observation("2345-7", "p1");
        if (i == 10) recv_stop(&rv); /* part delivered, the rest pending */
    }
    cr_assert_eq(hub_test_signal_wait(&hub_test_current, SIGKILL), 128 + SIGKILL);
    recv_start(&rv, port, 200);
    hub_test_restart(&hub_test_current, g_extra);
    int ev[256];
    bool sig;
    size_t n = 0;
    for (int t = 0; t < 300; t++) {
        n = events_of(&rv, ev, 256, &sig);
        bool seen[31] = {false};
        int distinct = 0;
        for (size_t i = 0; i < n; i++)
            if (ev[i] >= 1 && ev[i] <= 30 && !seen[ev[i]]) seen[ev[i]] = true, distinct++;
        if (distinct == 30) break;
        usleep(50000);
    }
    /* every event at least once; first arrivals in order */
    bool seen[31] = {false};
    int next = 1;
    for (size_t i = 0; i < n; i++) {
        cr_assert(ev[i] >= 1 && ev[i] <= 30, "event number %d", ev[i]);
        if (!seen[ev[i]]) {
            cr_assert_eq(ev[i], next, "first arrivals in order");
            seen[ev[i]] = true;
            next++;
        }
    }
    cr_assert_eq(next, 31, "all 30 events arrived (got %d)", next - 1);
    cr_assert(sig, "all signed");
    recv_stop(&rv);
    hub_test_rmtree(rv.dir);
}

Test(e2e_route, events_replays_a_gap, .init = up, .fini = down) {
    receiver rv = {0};
    recv_start(&rv, 0, 200);
    const char *id = subscribe("Observation?code=http://loinc.org|2345-7", "rest-hook",
                               endpoint_of(&rv), ",\"payload\":\"application/fhir+json\"");
    char sid[80];
    snprintf(sid, sizeof sid, "%s", id);
    cr_assert(wait_status(sid, "active", 5000));
    for (int i = 0; i < 5; i++) observation("2345-7", "p1");
    int ev[8];
    cr_assert_eq(wait_events(&rv, 5, 10000, ev, 8), 5);
    char path[256];
    snprintf(path, sizeof path,
             "/fhir/Subscription/%s/$events?eventsSinceNumber=2&eventsUntilNumber=4", sid);
    ft_resp r;
    cr_assert_eq(ft_req(hub_test_http_port(), "GET", path, NULL, NULL, 0, &r), 200);
    json_t *b = ft_json(&r);
    ft_release(&r);
    json_t *entries = json_object_get(b, "entry");
    cr_assert_eq(json_array_size(entries), 4, "status + three events");
    json_t *ps = json_object_get(json_object_get(json_array_get(entries, 0), "resource"),
                                 "parameter");
    int nums[8], k = 0;
    size_t i;
    json_t *p;
    json_array_foreach(ps, i, p) {
        if (strcmp(json_string_value(json_object_get(p, "name")), "type") == 0)
            cr_assert_str_eq(json_string_value(json_object_get(p, "valueCode")), "query-event");
        if (strcmp(json_string_value(json_object_get(p, "name")), "notification-event") != 0)
            continue;
        nums[k++] = atoi(json_string_value(
            json_object_get(json_array_get(json_object_get(p, "part"), 0), "valueString")));
    }
    cr_assert_eq(k, 3);
    cr_assert(nums[0] == 2 && nums[1] == 3 && nums[2] == 4);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(entries, 1), "resource"), "resourceType")),
                     "Observation");
    json_decref(b);
    /* a bad number is a 400 naming the parameter */
    snprintf(path, sizeof path, "/fhir/Subscription/%s/$events?eventsSinceNumber=x", sid);
    cr_assert_eq(ft_req(hub_test_http_port(), "GET", path, NULL, NULL, 0, &r), 400);
    cr_assert_str_eq(ft_issue(&r, "expression"), "eventsSinceNumber");
    ft_release(&r);
    cr_assert_eq(ft_req(hub_test_http_port(), "GET", "/fhir/Subscription/nope/$status", NULL,
                        NULL, 0, &r),
                 404);
    ft_release(&r);
    recv_stop(&rv);
    hub_test_rmtree(rv.dir);
}

/* ---- bad input ------------------------------------------------------------------------ */

static void refused(const char *criteria, const char *type, const char *endpoint,
                    const char *where) {
    char body[2048];
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Subscription\",\"status\":\"requested\",\"reason\":\"t\","
             "\"criteria\":\"%s\",\"channel\":{\"type\":\"%s\",\"endpoint\":\"%s\"}}",
             criteria, type, endpoint);
    ft_resp r;
    int st = post("/fhir/Subscription", body, &r);
    cr_assert_eq(st, 400, "%s / %s / %s: %d", criteria, type, endpoint, st);
    cr_assert_str_eq(ft_issue(&r, "expression"), where, "%s", r.body.p);
    ft_release(&r);
}

Test(e2e_route, bad_subscriptions_get_operation_outcomes, .init = up, .fini = down) {
    refused("Observation?nosuch=1", "rest-hook", "https://example.org/h", "Subscription.criteria");
    refused("Nosuch?code=1", "rest-hook", "https://example.org/h", "Subscription.criteria");
    refused("Observation?subject.name=x", "rest-hook", "https://example.org/h",
            "Subscription.criteria");
    refused("Observation?date=notadate", "rest-hook", "https://example.org/h",
            "Subscription.criteria");
    refused("http://hl7hub.org/fhir/SubscriptionTopic/nosuch", "rest-hook",
            "https://example.org/h", "Subscription.criteria");
    refused("Observation?code=1", "email", "mailto:a@example.org", "Subscription.channel.type");
    refused("Observation?code=1", "rest-hook", "ftp://example.org/h",
            "Subscription.channel.endpoint");
    refused("Observation?code=1", "rest-hook", "https://", "Subscription.channel.endpoint");
    refused("Observation?code=1", "message", "mllp://host", "Subscription.channel.endpoint");
    refused("CarePlan?status=active", "message", "mllp://127.0.0.1:2575",
            "Subscription.criteria");
    /* nothing was stored */
    ft_resp r;
    cr_assert_eq(ft_req(hub_test_http_port(), "GET", "/fhir/Subscription", NULL, NULL, 0, &r),
                 200);
    json_t *b = ft_json(&r);
    cr_assert_eq(json_array_size(json_object_get(b, "entry")), 0);
    json_decref(b);
    ft_release(&r);
}

static void up_strict(void) {
    hub_test_tmpdir(g_tmp);
    memset(&hub_test_current, 0, sizeof hub_test_current);
    hub_test_start(&hub_test_current, NULL);
}

Test(e2e_route, http_endpoint_refused_without_allowance, .init = up_strict, .fini = down) {
    refused("Observation?code=1", "rest-hook", "http://127.0.0.1:9/h",
            "Subscription.channel.endpoint");
}

/* ---- the MLLP subscriber ----------------------------------------------------------------- */

typedef struct {
    pthread_mutex_t lk;
    hub_mllp_server *srv;
    char msgs[64][512];
    int n;
    bool nack;
} mllp_rx;

static mllp_rx g_rx = {.lk = PTHREAD_MUTEX_INITIALIZER};

static void rx_frame(void *ud, const hub_mllp_frame_ctx *ctx, const char *frame, size_t n) {
    mllp_rx *rx = ud;
    pthread_mutex_lock(&rx->lk);
    if (rx->n < 64) snprintf(rx->msgs[rx->n++], 512, "%.*s", (int)n, frame);
    bool nack = rx->nack;
    pthread_mutex_unlock(&rx->lk);
    hub_slice ctl = {0};
    hub_mllp_field(hub_slice_of(frame, n), "MSH", 10, &ctl);
    char ack[256];
    int k = snprintf(ack, sizeof ack, "MSH|^~\\&|RX|RX|HUB|HUB|20261125||ACK|A%.*s|P|2.5.1\rMSA|%s|%.*s\r",
                     (int)ctl.n, ctl.p, nack ? "AE" : "AA", (int)ctl.n, ctl.p);
    hub_buf b;
    hub_buf_init(&b);
    hub_mllp_frame_append(&b, ack, (size_t)k);
    hub_mllp_server_reply(rx->srv, ctx->conn_id, ctx->seq, b.p, b.n, false);
    hub_buf_release(&b);
}

static int rx_start(void) {
    hub_mllp_channel_cfg ch = {.name = "rx", .host = "127.0.0.1", .port = 0};
    hub_mllp_server_cfg c = {.channels = &ch, .n_channels = 1};
    hub_mllp_callbacks cb = {.ud = &g_rx, .on_frame = rx_frame};
    hub_err err;
    cr_assert_eq(hub_mllp_server_start(&c, &cb, &g_rx.srv, &err), HUB_OK, "%s", err.msg);
    return hub_mllp_server_port(g_rx.srv, 0);
}

static int rx_count(void) {
    pthread_mutex_lock(&g_rx.lk);
    int n = g_rx.n;
    pthread_mutex_unlock(&g_rx.lk);
    return n;
}

static bool rx_wait(int want, int timeout_ms) {
    for (int t = 0; t < timeout_ms; t += 50) {
        if (rx_count() >= want) return true;
        usleep(50000);
    }
    return false;
}

Test(e2e_route, mllp_subscriber_gets_v2_and_a_nack_fails, .init = up, .fini = down) {
    int port = rx_start();
    char ep[64];
    snprintf(ep, sizeof ep, "mllp://127.0.0.1:%d", port);
    /* the original message for v2 changes, a built one for FHIR ones */
    const char *id = subscribe("Observation?code=2345-7", "message", ep,
                               ",\"payload\":\"application/hl7-v2\"");
    char sid[80];
    snprintf(sid, sizeof sid, "%s", id);
    cr_assert(wait_status(sid, "active", 5000));
    send_v2(ORU("ORUMLLP1", "2345-7"));
    cr_assert(rx_wait(1, 10000), "the ORU reached the MLLP subscriber");
    cr_assert(strstr(g_rx.msgs[0], "|ORUMLLP1|") != NULL, "the original message: %s",
              g_rx.msgs[0]);
    observation("2345-7", "p9");
    cr_assert(rx_wait(2, 10000));
    cr_assert(strstr(g_rx.msgs[1], "ORU^R01") != NULL, "built ORU: %s", g_rx.msgs[1]);
    cr_assert(strstr(g_rx.msgs[1], "OBX|1|NM|2345-7") != NULL, "with the result: %s",
              g_rx.msgs[1]);
    cr_assert(strstr(g_rx.msgs[1], "PID|1||p9^") != NULL, "the patient: %s", g_rx.msgs[1]);
    /* a NACK is a failed delivery: retried, the event stays undelivered */
    pthread_mutex_lock(&g_rx.lk);
    g_rx.nack = true;
    pthread_mutex_unlock(&g_rx.lk);
    observation("2345-7", "p9");
    cr_assert(rx_wait(4, 10000), "retried after the NACK");
    pthread_mutex_lock(&g_rx.lk);
    g_rx.nack = false;
    int before = g_rx.n;
    pthread_mutex_unlock(&g_rx.lk);
    cr_assert(rx_wait(before + 1, 10000), "delivered once ACKed");
    usleep(300000);
    int after = rx_count();
    cr_assert_eq(after, before + 1, "no more resends once ACKed");
    hub_mllp_server_free(g_rx.srv);
}

/* ---- many subscriptions ------------------------------------------------------------------ */

/* hub_route_match_candidates_total from /metrics. */
static long candidates(void) {
    ft_resp r;
    cr_assert_eq(ft_req(hub_test_http_port(), "GET", "/metrics", NULL, NULL, 0, &r), 200);
    const char *p = strstr(r.body.p, "\nhub_route_match_candidates_total ");
    long v = p ? atol(p + strlen("\nhub_route_match_candidates_total ")) : -1;
    ft_release(&r);
    cr_assert(v >= 0, "the metric is served");
    return v;
}

Test(e2e_route, ten_thousand_subscriptions, .init = up, .fini = down, .timeout = 240) {
    int port = rx_start();
    enum { N = 10000, PER = 500 };
    /* 10k subscriptions, one per patient, written as transactions */
    hub_buf b;
    hub_buf_init(&b);
    for (int k = 0; k < N / PER; k++) {
        b.n = 0;
        hub_buf_printf(&b, "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[");
        for (int i = 0; i < PER; i++)
            hub_buf_printf(&b,
                           "%s{\"resource\":{\"resourceType\":\"Subscription\",\"status\":"
                           "\"requested\",\"reason\":\"t\",\"criteria\":\"Observation?patient="
                           "Patient/p%d\",\"channel\":{\"type\":\"message\",\"endpoint\":"
                           "\"mllp://127.0.0.1:%d\"}},\"request\":{\"method\":\"POST\",\"url\":"
                           "\"Subscription\"}}",
                           i ? "," : "", k * PER + i, port);
        hub_buf_printf(&b, "]}");
        ft_resp r;
        int st = ft_req(hub_test_http_port(), "POST", "/fhir", CT, b.p, b.n, &r);
        cr_assert_eq(st, 200, "bundle %d: %d", k, st);
        ft_release(&r);
    }
    hub_buf_release(&b);
    /* a change for one patient reaches that patient's subscription only,
     * and the index hands the matcher that one, not the 10k */
    long c0 = candidates();
    int64_t t0 = hub_mono_ns();
    for (int i = 0; i < 20; i++) observation("2345-7", "p4321");
    double ms = (double)(hub_mono_ns() - t0) / 1e6 / 20;
    long c1 = candidates();
    cr_assert(c1 - c0 >= 20 && c1 - c0 <= 40, "candidates per change: %ld in 20", c1 - c0);
    cr_assert(rx_wait(20, 60000), "twenty ORUs to the one subscriber (got %d)", rx_count());
    usleep(500000);
    cr_assert_eq(rx_count(), 20, "no other subscription fired");
    cr_log_info("10k subscriptions: %.2f ms per Observation write", ms);
    hub_mllp_server_free(g_rx.srv);
}

/* ---- care coordination -------------------------------------------------------------- */

static const char *create(const char *type, const char *body) {
    static char id[80];
    char path[64];
    snprintf(path, sizeof path, "/fhir/%s", type);
    ft_resp r;
    int st = post(path, body, &r);
    cr_assert_eq(st, 201, "%s: %d %s", type, st, r.body.p);
    json_t *j = ft_json(&r);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    ft_release(&r);
    return id;
}

static void put_res(const char *type, const char *id, const char *body) {
    char path[128];
    snprintf(path, sizeof path, "/fhir/%s/%s", type, id);
    ft_resp r;
    int st = ft_req(hub_test_http_port(), "PUT", path, CT, body, strlen(body), &r);
    cr_assert(st == 200 || st == 201, "%s: %d %s", path, st, r.body.p);
    ft_release(&r);
}

Test(e2e_route, care_coordination_without_criteria, .init = up_patient, .fini = down) {
    receiver rv = {0};
    recv_start(&rv, 0, 200);
    int port = rv.port;
    char body[1024], org[80], sid[96];
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Endpoint\",\"status\":\"active\",\"connectionType\":"
             "{\"system\":\"http://terminology.hl7.org/CodeSystem/endpoint-connection-type\","
             "\"code\":\"hl7-fhir-rest\"},\"payloadType\":[{\"text\":\"notifications\"}],"
             "\"payloadMimeType\":[\"application/fhir+json\"],"
             "\"address\":\"http://127.0.0.1:%d/hook\"}",
             port);
    const char *ep = create("Endpoint", body);
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Organization\",\"name\":\"Clinic\",\"endpoint\":"
             "[{\"reference\":\"Endpoint/%s\"}]}",
             ep);
    snprintf(org, sizeof org, "%s", create("Organization", body));
    snprintf(sid, sizeof sid, "cc-org-%s", org);
    cr_assert(wait_status(sid, "active", 10000), "registered and handshaken");
    /* the generated secret is its owner's to read */
    char path[160];
    snprintf(path, sizeof path, "/fhir/Subscription/%s/$secret", sid);
    ft_resp r;
    cr_assert_eq(ft_req(hub_test_http_port(), "GET", path, NULL, NULL, 0, &r), 200);
    json_t *ps = ft_json(&r);
    ft_release(&r);
    static char secret[160];
    snprintf(secret, sizeof secret, "%s",
             json_string_value(json_object_get(
                 json_array_get(json_object_get(ps, "parameter"), 0), "valueString")));
    json_decref(ps);
    cr_assert_geq(strlen(secret), 32, "a generated secret");
    recv_stop(&rv);
    unlink(rv.log); /* the handshake went to a receiver without the secret */
    g_secret = secret;
    recv_start(&rv, port, 200);
    /* attributed by GP; and by care team membership */
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Patient\",\"id\":\"gp1\",\"generalPractitioner\":"
             "[{\"reference\":\"Organization/%s\"}]}",
             org);
    put_res("Patient", "gp1", body);
    snprintf(body, sizeof body,
             "{\"resourceType\":\"CareTeam\",\"status\":\"active\",\"subject\":"
             "{\"reference\":\"Patient/ct1\"},\"participant\":[{\"member\":{\"reference\":"
             "\"Organization/%s\"}}]}",
             org);
    create("CareTeam", body);
#define ENC                                                                                \
    "{\"resourceType\":\"Encounter\",\"status\":\"in-progress\",\"class\":{\"system\":"          \
    "\"http://terminology.hl7.org/CodeSystem/v3-ActCode\",\"code\":\"EMER\"},\"subject\":"       \
    "{\"reference\":\"Patient/%s\"}}"
    snprintf(body, sizeof body, ENC, "someone-else");
    create("Encounter", body); /* not attributed: nothing */
    snprintf(body, sizeof body, ENC, "gp1");
    create("Encounter", body); /* the GP's patient: the ED visit */
#define CP                                                                                 \
    "{\"resourceType\":\"CarePlan\",\"status\":\"active\",\"intent\":\"plan\",\"subject\":"     \
    "{\"reference\":\"Patient/%s\"}}"
    snprintf(body, sizeof body, CP, "gp1");
    create("CarePlan", body); /* GP only, not its care team: no care plans */
    snprintf(body, sizeof body, CP, "ct1");
    create("CarePlan", body); /* its care team's patient */
    int ev[16];
    size_t n = wait_events(&rv, 2, 10000, ev, 16);
    usleep(400000);
    bool sig;
    n = events_of(&rv, ev, 16, &sig);
    cr_assert_eq(n, 2, "the ED visit and the care plan, got %zu", n);
    cr_assert(ev[0] == 1 && ev[1] == 2);
    cr_assert(sig, "signed with the generated secret");
    json_t *a = notes(&rv);
    json_t *last = json_array_get(a, json_array_size(a) - 1);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(last, "resources"), 0)),
                     "CarePlan");
    json_decref(a);
    /* a bad Endpoint refuses the registration, with the reason */
    const char *bad = create("Endpoint",
                             "{\"resourceType\":\"Endpoint\",\"status\":\"active\","
                             "\"connectionType\":{\"code\":\"hl7-fhir-rest\"},\"payloadType\":"
                             "[{\"text\":\"n\"}],\"address\":\"ftp://example.org/x\"}");
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Organization\",\"name\":\"Bad\",\"endpoint\":"
             "[{\"reference\":\"Endpoint/%s\"}]}",
             bad);
    cr_assert_eq(post("/fhir/Organization", body, &r), 400, "%s", r.body.p);
    cr_assert_str_eq(ft_issue(&r, "expression"), "Subscription.channel.endpoint");
    ft_release(&r);
    recv_stop(&rv);
    hub_test_rmtree(rv.dir);
}

Test(e2e_route, heartbeat_when_idle, .init = up, .fini = down) {
    receiver rv = {0};
    recv_start(&rv, 0, 200);
    const char *id = subscribe(
        "Observation?code=http://loinc.org|2345-7", "rest-hook", endpoint_of(&rv),
        ",\"extension\":[{\"url\":\"http://hl7.org/fhir/uv/subscriptions-backport/"
        "StructureDefinition/backport-heartbeat-period\",\"valueUnsignedInt\":1}]");
    char sid[80];
    snprintf(sid, sizeof sid, "%s", id);
    cr_assert(wait_status(sid, "active", 5000));
    bool got = false;
    for (int t = 0; t < 100 && !got; t++) {
        json_t *a = notes(&rv);
        size_t i;
        json_t *n;
        json_array_foreach(a, i, n) {
            const char *ty = json_string_value(json_object_get(n, "type"));
            if (ty && strcmp(ty, "heartbeat") == 0) {
                got = true;
                cr_assert(json_is_true(json_object_get(n, "sig_ok")));
            }
        }
        json_decref(a);
        usleep(50000);
    }
    cr_assert(got, "a heartbeat within 5 s of a 1 s period");
    recv_stop(&rv);
    hub_test_rmtree(rv.dir);
}

/* ---- TLS ------------------------------------------------------------------------------ */

static char g_ca[512], g_cert[512], g_key[512], g_ccert[512], g_ckey[512];

static void tls_files(void) {
    const char *d = mt_tls_dir();
    cr_assert_not_null(d, "could not make test certificates with openssl");
    snprintf(g_ca, sizeof g_ca, "%s/ca.pem", d);
    snprintf(g_cert, sizeof g_cert, "%s/server.pem", d);
    snprintf(g_key, sizeof g_key, "%s/server.key", d);
    snprintf(g_ccert, sizeof g_ccert, "%s/client.pem", d);
    snprintf(g_ckey, sizeof g_ckey, "%s/client.key", d);
    g_tls[0] = g_cert;
    g_tls[1] = g_key;
    g_tls[2] = g_ca; /* the receiver wants the hub's client certificate */
}

static void up_tls(void) {
    tls_files();
    static char a[600], b[600], c[600];
    snprintf(a, sizeof a, "route.ca_file=%s", g_ca);
    snprintf(b, sizeof b, "route.client_cert=%s", g_ccert);
    snprintf(c, sizeof c, "route.client_key=%s", g_ckey);
    const char *more[] = {"--set", a, "--set", b, "--set", c, NULL};
    up_with(more);
}

static void up_tls_untrusted(void) {
    tls_files();
    const char *more[] = {"--set", "route.max_failures=2", NULL};
    up_with(more);
}

Test(e2e_route, https_verified_with_client_certificate, .init = up_tls, .fini = down) {
    receiver rv = {0};
    recv_start(&rv, 0, 200);
    char ep[96];
    snprintf(ep, sizeof ep, "https://127.0.0.1:%d/hook", rv.port);
    const char *id = subscribe("Observation?code=http://loinc.org|2345-7", "rest-hook", ep, NULL);
    char sid[80];
    snprintf(sid, sizeof sid, "%s", id);
    cr_assert(wait_status(sid, "active", 10000), "TLS handshake, certificate verified");
    observation("2345-7", "p1");
    int ev[4];
    cr_assert_eq(wait_events(&rv, 1, 10000, ev, 4), 1);
    recv_stop(&rv);
    hub_test_rmtree(rv.dir);
}

Test(e2e_route, https_untrusted_certificate_fails, .init = up_tls_untrusted, .fini = down) {
    receiver rv = {0};
    recv_start(&rv, 0, 200);
    char ep[96];
    snprintf(ep, sizeof ep, "https://127.0.0.1:%d/hook", rv.port);
    const char *id = subscribe("Observation?code=http://loinc.org|2345-7", "rest-hook", ep, NULL);
    char sid[80];
    snprintf(sid, sizeof sid, "%s", id);
    cr_assert(wait_status(sid, "error", 10000), "a certificate the hub cannot verify: error");
    json_t *a = notes(&rv);
    cr_assert_eq(json_array_size(a), 0, "nothing was sent to it");
    json_decref(a);
    recv_stop(&rv);
    hub_test_rmtree(rv.dir);
}

/* ---- a golden patient, the patient index on ----------------------------------------- */

static void up_mpi(void) {
    g_conf = CONF_MPI;
    up_with(NULL);
}

static const char *jstr(const json_t *o, const char *k) {
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

/* The source Patient with identifier sys|value (not the golden, which
 * carries its sources' identifiers too) and its golden ("" when none). */
static void source_and_golden(const char *sys, const char *value, char src[72], char gold[72]) {
    char path[256];
    snprintf(path, sizeof path, "/fhir/Patient?identifier=%s%%7C%s", sys, value);
    ft_resp r;
    cr_assert_eq(ft_req(hub_test_http_port(), "GET", path, NULL, NULL, 0, &r), 200);
    json_t *b = ft_json(&r);
    ft_release(&r);
    src[0] = gold[0] = '\0';
    size_t i, k;
    json_t *e, *l;
    json_array_foreach(json_object_get(b, "entry"), i, e) {
        json_t *p = json_object_get(e, "resource");
        bool golden = false;
        json_array_foreach(json_object_get(json_object_get(p, "meta"), "tag"), k, l)
            golden |= strcmp(jstr(l, "code"), "golden") == 0;
        if (golden) continue;
        snprintf(src, 72, "%s", jstr(p, "id"));
        json_array_foreach(json_object_get(p, "link"), k, l) {
            const char *ref = jstr(json_object_get(l, "other"), "reference");
            if (strcmp(jstr(l, "type"), "refer") == 0 && strncmp(ref, "Patient/", 8) == 0)
                snprintf(gold, 72, "%s", ref + 8);
        }
    }
    json_decref(b);
    cr_assert(src[0], "a source Patient with identifier %s|%s", sys, value);
}

#define MSH_FROM(app, fac, type, ctl)                                                      \
    "MSH|^~\\&|" app "|" fac "|HUB|HUB|20261125101500||" type "|" ctl "|P|2.5.1\r"
#define PID_SMITH_EHR                                                                      \
    "PID|1||MRN7^^^GENHOSP&1.2.3&ISO^MR||SMITH^JOHN^Q||19800506|M|||"                      \
    "12 Oak St^^Springfield^IL^62701||^PRN^PH^^^217^5550101\r"
#define PID_SMITH_LAB                                                                      \
    "PID|1||L-77^^^LABCO&9.9.9&ISO^MR||SMITH^JON||19800506|M|||"                           \
    "12 OAK STREET^^SPRINGFIELD^IL^62701||^PRN^PH^^^217^5550101\r"
#define ORU_LAB(ctl)                                                                       \
    MSH_FROM("LAB", "LABCO", "ORU^R01^ORU_R01", ctl) PID_SMITH_LAB                         \
    "OBR|1||F" ctl "^LAB|2345-7^Glucose^LN\r"                                              \
    "OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L|||||F\r"

static const char *topic_sub(const char *topic, const char *filter, const receiver *rv) {
    static char id[80];
    char body[2048], flt[600] = "";
    if (filter)
        snprintf(flt, sizeof flt,
                 "\"_criteria\":{\"extension\":[{\"url\":\"http://hl7.org/fhir/uv/"
                 "subscriptions-backport/StructureDefinition/backport-filter-criteria\","
                 "\"valueString\":\"%s\"}]},",
                 filter);
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Subscription\",\"status\":\"requested\",\"reason\":\"t\","
             "\"criteria\":\"http://hl7hub.org/fhir/SubscriptionTopic/%s\",%s"
             "\"extension\":[{\"url\":\"http://hl7hub.org/fhir/StructureDefinition/"
             "subscription-secret\",\"valueString\":\"" SECRET "\"}],"
             "\"channel\":{\"type\":\"rest-hook\",\"endpoint\":\"%s\",\"payload\":"
             "\"application/fhir+json\"}}",
             topic, flt, endpoint_of(rv));
    ft_resp r;
    cr_assert_eq(post("/fhir/Subscription", body, &r), 201, "%s", r.body.p);
    json_t *j = ft_json(&r);
    snprintf(id, sizeof id, "%s", jstr(j, "id"));
    json_decref(j);
    ft_release(&r);
    cr_assert(wait_status(id, "active", 5000), "handshake of %s", topic);
    return id;
}

/* Subscribed on the golden patient before the lab's record of the same
 * person exists: the lab's result, from another sender, links to the
 * golden and is notified (criteria and topic filter alike); after an
 * unlink, the lab's next result is not. */
Test(e2e_route, golden_patient_follows_links_made_later, .init = up_mpi, .fini = down) {
    send_v2(MSH_FROM("EHR", "GENHOSP", "ADT^A04^ADT_A01", "E-1") PID_SMITH_EHR);
    char ehr[72], gold[72], lab[72], lab_gold[72];
    source_and_golden("urn:oid:1.2.3", "MRN7", ehr, gold);
    cr_assert(gold[0], "the EHR's Patient has a golden");
    receiver rv = {0}, rv2 = {0};
    recv_start(&rv, 0, 200);
    recv_start(&rv2, 0, 200);
    char crit[160];
    snprintf(crit, sizeof crit, "Observation?patient=Patient/%s", gold);
    char sid[80];
    snprintf(sid, sizeof sid, "%s", subscribe(crit, "rest-hook", endpoint_of(&rv),
                                                ",\"payload\":\"application/fhir+json\""));
    cr_assert(wait_status(sid, "active", 5000));
    char flt[120];
    snprintf(flt, sizeof flt, "patient=Patient/%s", gold);
    topic_sub("result", flt, &rv2);

    send_v2(ORU_LAB("L-1"));
    source_and_golden("urn:oid:9.9.9", "L-77", lab, lab_gold);
    cr_assert_str_eq(lab_gold, gold, "the lab's record links to the same golden");
    int ev[8];
    cr_assert_eq(wait_events(&rv, 1, 10000, ev, 8), 1, "criteria on the golden: notified");
    cr_assert_eq(wait_events(&rv2, 1, 10000, ev, 8), 1, "topic filter on the golden: notified");
    json_t *a = notes(&rv);
    json_t *last = json_array_get(a, json_array_size(a) - 1);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(last, "resources"), 0)),
                     "Observation");
    json_decref(a);

    char path[160];
    snprintf(path, sizeof path, "/fhir/Patient/%s/$mpi-unlink", lab);
    ft_resp r;
    cr_assert_eq(post(path, "{\"resourceType\":\"Parameters\"}", &r), 200, "%s", r.body.p);
    ft_release(&r);
    source_and_golden("urn:oid:9.9.9", "L-77", lab, lab_gold);
    cr_assert(strcmp(lab_gold, gold) != 0, "unlinked");
    send_v2(ORU_LAB("L-2"));
    observation("2345-7", ehr); /* the EHR's own record still counts */
    cr_assert_eq(wait_events(&rv, 2, 10000, ev, 8), 2);
    usleep(300000);
    cr_assert_eq(wait_events(&rv, 3, 100, ev, 8), 2, "the unlinked record's result is not sent");
    cr_assert_eq(wait_events(&rv2, 2, 10000, ev, 8), 2);
    cr_assert_eq(wait_events(&rv2, 3, 100, ev, 8), 2);
    char st[16];
    long events;
    sub_status(sid, st, &events);
    cr_assert_eq(events, 2, "two events numbered");
    recv_stop(&rv);
    recv_stop(&rv2);
    hub_test_rmtree(rv.dir);
    hub_test_rmtree(rv2.dir);
}

/* ---- deletes fire the topics whose trigger includes delete -------------------------- */

static void delete_res(const char *type, const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/fhir/%s/%s", type, id);
    ft_resp r;
    int st = ft_req(hub_test_http_port(), "DELETE", path, NULL, NULL, 0, &r);
    cr_assert(st == 200 || st == 204, "DELETE %s: %d", path, st);
    ft_release(&r);
}

/* The last notification's focus and its request method as a list. */
static size_t last_focus(receiver *rv, char *out, size_t cap) {
    json_t *a = notes(rv);
    json_t *last = json_array_get(a, json_array_size(a) - 1);
    snprintf(out, cap, "%s", json_string_value(json_array_get(json_object_get(last, "focus"), 0))
                                 ?: "");
    size_t n = json_array_size(json_object_get(last, "resources"));
    json_decref(a);
    return n;
}

Test(e2e_route, deletes_fire_topics_that_include_delete, .init = up, .fini = down) {
    receiver appt = {0}, plan = {0}, enc = {0}, med = {0};
    recv_start(&appt, 0, 200);
    recv_start(&plan, 0, 200);
    recv_start(&enc, 0, 200);
    recv_start(&med, 0, 200);
    topic_sub("appointment-cancelled", "patient=Patient/d1", &appt);
    topic_sub("care-plan", "patient=Patient/d1", &plan);
    topic_sub("encounter-start", NULL, &enc);
    topic_sub("medication-stop", NULL, &med);

    char a1[80], a2[80], cp[80], e1[80], m1[80], m2[80];
    snprintf(a1, sizeof a1, "%s", create("Appointment",
        "{\"resourceType\":\"Appointment\",\"status\":\"booked\",\"participant\":[{\"actor\":"
        "{\"reference\":\"Patient/d1\"},\"status\":\"accepted\"}]}"));
    snprintf(a2, sizeof a2, "%s", create("Appointment",
        "{\"resourceType\":\"Appointment\",\"status\":\"fulfilled\",\"participant\":[{\"actor\":"
        "{\"reference\":\"Patient/d1\"},\"status\":\"accepted\"}]}"));
    snprintf(cp, sizeof cp, "%s", create("CarePlan",
        "{\"resourceType\":\"CarePlan\",\"status\":\"active\",\"intent\":\"plan\","
        "\"subject\":{\"reference\":\"Patient/d1\"}}"));
    snprintf(e1, sizeof e1, "%s", create("Encounter",
        "{\"resourceType\":\"Encounter\",\"status\":\"in-progress\",\"class\":{\"system\":"
        "\"http://terminology.hl7.org/CodeSystem/v3-ActCode\",\"code\":\"IMP\"},"
        "\"subject\":{\"reference\":\"Patient/d1\"}}"));
#define MEDREQ(st)                                                                         \
    "{\"resourceType\":\"MedicationRequest\",\"status\":\"" st "\",\"intent\":\"order\","         \
    "\"medicationCodeableConcept\":{\"text\":\"metformin\"},"                                  \
    "\"subject\":{\"reference\":\"Patient/d1\"}}"
    snprintf(m1, sizeof m1, "%s", create("MedicationRequest", MEDREQ("active")));
    snprintf(m2, sizeof m2, "%s", create("MedicationRequest", MEDREQ("completed")));
    int ev[8];
    cr_assert_eq(wait_events(&plan, 1, 10000, ev, 8), 1, "care plan created");
    cr_assert_eq(wait_events(&enc, 1, 10000, ev, 8), 1, "encounter started");
    cr_assert_eq(wait_events(&med, 1, 10000, ev, 8), 1, "the completed order: stopped");

    delete_res("Appointment", a1); /* booked, deleted: cancelled */
    delete_res("Appointment", a2); /* already took place: not a cancellation */
    delete_res("CarePlan", cp);    /* removed */
    delete_res("Encounter", e1);   /* a correction, not an encounter event */
    delete_res("MedicationRequest", m1); /* active, deleted: stopped */
    delete_res("MedicationRequest", m2); /* already stopped: nothing new */
    cr_assert_eq(wait_events(&appt, 1, 10000, ev, 8), 1, "the booked appointment's delete");
    cr_assert_eq(wait_events(&plan, 2, 10000, ev, 8), 2, "the care plan's delete");
    cr_assert_eq(wait_events(&med, 2, 10000, ev, 8), 2, "the active order's delete");
    usleep(400000);
    cr_assert_eq(wait_events(&appt, 2, 100, ev, 8), 1, "a fulfilled appointment's delete: none");
    cr_assert_eq(wait_events(&enc, 2, 100, ev, 8), 1, "an encounter's delete: none");
    cr_assert_eq(wait_events(&med, 3, 100, ev, 8), 2, "a completed order's delete: none");
    char focus[160], want[160];
    cr_assert_eq(last_focus(&appt, focus, sizeof focus), 0, "a delete carries no resource");
    snprintf(want, sizeof want, "Appointment/%s", a1);
    cr_assert(strstr(focus, want), "the focus is the deleted appointment: %s", focus);
    receiver *all[] = {&appt, &plan, &enc, &med};
    for (size_t i = 0; i < 4; i++) {
        recv_stop(all[i]);
        hub_test_rmtree(all[i]->dir);
    }
}

/* ---- hub replay starts the listeners hub serve does ---------------------------------- */

/* A message the mapping could not take (no table for A24: AE, journaled
 * as errored) is replayed while the hub is stopped, with a site table
 * that maps it: the replayed Patient is linked by the patient index,
 * audited, and its notification waits in the outbox until hub serve
 * starts again and delivers it. */
Test(e2e_route, replay_while_stopped_is_delivered_by_the_next_serve, .init = up_mpi,
     .fini = down) {
    receiver rv = {0};
    recv_start(&rv, 0, 200);
    char sid[80];
    snprintf(sid, sizeof sid, "%s",
             subscribe("Patient?family=replayed&_tag:not=" HUB_MPI_TAG_SYSTEM "|golden", "rest-hook", endpoint_of(&rv),
                       ",\"payload\":\"application/fhir+json\""));
    cr_assert(wait_status(sid, "active", 5000));
    int fd = hub_test_dial(hub_test_mllp_port());
    hub_buf ack;
    hub_buf_init(&ack);
    cr_assert_eq(hub_test_send_frame(fd, MSH_FROM("EHR", "GENHOSP", "ADT^A24^ADT_A24", "R-1")
                                             "PID|1||MRN-R^^^GENHOSP&1.2.3&ISO^MR||REPLAYED^ANN||"
                                             "19700101|F\r"),
                 0);
    cr_assert_eq(hub_test_read_frame(fd, &ack, 10000), 0);
    cr_assert_str_eq(hub_test_ack_code(ack.p), "AE", "no table for A24 yet: %s", ack.p);
    hub_buf_release(&ack);
    close(fd);
    cr_assert_eq(hub_test_signal_wait(&hub_test_current, SIGTERM), 0, "the hub stops");

    char site[256], path[400];
    hub_test_tmpdir(site);
    snprintf(path, sizeof path, "%s/a24.map", site);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("@table ADT_A24\n@kind message\n@events ADT^A24\n"
          "PID | | Patient | patient | PID[Patient] | identifier! |\n", f);
    fclose(f);
    /* the same configuration as the hub's (file and flags) */
    const char *rp[32] = {HUB_BIN, "replay", "--data", hub_test_current.dir, "--status",
                          "errored", "--map-site", site};
    size_t n = 8;
    for (size_t i = 0; g_extra[i] && n < 31; i++) rp[n++] = g_extra[i];
    rp[n] = NULL;
    hub_buf out, err;
    hub_buf_init(&out);
    hub_buf_init(&err);
    cr_assert_eq(hub_test_run(rp, NULL, &out, &err), 0, "%s %s", out.p, err.p);
    cr_assert(strstr(out.p, "1 processed"), "%s", out.p);
    hub_buf_release(&out);
    hub_buf_release(&err);
    int ev[8];
    cr_assert_eq(wait_events(&rv, 1, 300, ev, 8), 0, "nothing is delivered while stopped");

    hub_test_restart(&hub_test_current, g_extra);
    /* the replayed Patient, its patient index link in its one version */
    size_t got = wait_events(&rv, 1, 10000, ev, 8);
    cr_assert_eq(got, 1, "the next serve delivers it: %zu", got);
    cr_assert_eq(ev[0], 1, "numbered from 1");
    cr_assert_eq(wait_events(&rv, 2, 500, ev, 8), 1, "and nothing more");
    char src[72], gold[72], want[100];
    source_and_golden("urn:oid:1.2.3", "MRN-R", src, gold);
    cr_assert(gold[0], "the patient index linked the replayed Patient");
    snprintf(want, sizeof want, "Patient/%s/", src);
    json_t *a = notes(&rv);
    json_t *last = json_array_get(a, json_array_size(a) - 1);
    size_t i;
    json_t *fo;
    json_array_foreach(json_object_get(last, "focus"), i, fo) {
        char v[200];
        snprintf(v, sizeof v, "%s_history/%zu", want, i + 1);
        cr_assert_str_eq(json_string_value(fo), v, "versions in order");
    }
    json_decref(a);
    char q[200];
    snprintf(q, sizeof q, "/fhir/AuditEvent?entity-type=Patient&entity=Patient/%s", src);
    ft_resp r;
    cr_assert_eq(ft_req(hub_test_http_port(), "GET", q, NULL, NULL, 0, &r), 200, "%s", r.body.p);
    json_t *b = ft_json(&r);
    cr_assert(json_array_size(json_object_get(b, "entry")) >= 1, "the replay is audited: %s",
              r.body.p);
    cr_assert(strstr(r.body.p, "replay"), "as the replay: %s", r.body.p);
    json_decref(b);
    ft_release(&r);
    recv_stop(&rv);
    hub_test_rmtree(rv.dir);
    hub_test_rmtree(site);
}

/* ---- retention ------------------------------------------------------------------------ */

static void up_retention(void) {
    const char *more[] = {"--set", "route.retention_days=0", "--set",
                          "route.prune_interval_ms=100", "--set", "route.max_failures=100000",
                          NULL};
    up_with(more);
}

#define FULL ",\"payload\":\"application/fhir+json\""

/* $events of sub since `since`: the HTTP status; the events in *n. */
static int events_since(const char *sub, int since, ft_resp *r, int *n) {
    char path[200];
    snprintf(path, sizeof path, "/fhir/Subscription/%s/$events?eventsSinceNumber=%d", sub, since);
    int st = ft_req(hub_test_http_port(), "GET", path, NULL, NULL, 0, r);
    *n = 0;
    if (st == 200) {
        json_t *b = ft_json(r);
        *n = (int)json_array_size(json_object_get(b, "entry")) - 1;
        json_decref(b);
    }
    return st;
}

/* Retention 0: delivered events are pruned at the next pass, and $events
 * for them answers 410 with an OperationOutcome saying from where it can
 * replay; a subscriber that is down keeps every event. */
Test(e2e_route, delivered_events_pruned_undelivered_kept, .init = up_retention, .fini = down) {
    receiver rv = {0};
    recv_start(&rv, 0, 200);
    char up_id[80], down_id[80];
    snprintf(up_id, sizeof up_id, "%s",
             subscribe("Observation?code=http://loinc.org|2345-7", "rest-hook", endpoint_of(&rv),
                       FULL));
    cr_assert(wait_status(up_id, "active", 5000));
    /* nobody listens on port 1: every delivery fails */
    snprintf(down_id, sizeof down_id, "%s",
             subscribe("Observation?code=http://loinc.org|2345-7", "rest-hook",
                       "http://127.0.0.1:1/hook", FULL));
    for (int i = 0; i < 3; i++) observation("2345-7", "p1");
    int ev[8];
    cr_assert_eq(wait_events(&rv, 3, 10000, ev, 8), 3);
    ft_resp r;
    int n = 0, st = 0;
    for (int t = 0; t < 100; t++) {
        st = events_since(up_id, 1, &r, &n);
        if (st == 410) break;
        ft_release(&r);
        usleep(50000);
    }
    cr_assert_eq(st, 410, "delivered and pruned: %d", st);
    cr_assert(strstr(r.body.p, "OperationOutcome") && strstr(r.body.p, "pruned"), "%s",
              r.body.p);
    cr_assert_str_eq(ft_issue(&r, "expression"), "eventsSinceNumber");
    cr_assert_str_eq(ft_issue(&r, "code"), "deleted");
    ft_release(&r);
    char sts[16];
    long events;
    sub_status(up_id, sts, &events);
    cr_assert_eq(events, 3, "still numbered from the start");
    /* without a range: what is kept (nothing), not an error */
    cr_assert_eq(events_since(up_id, 4, &r, &n), 200, "%s", r.body.p);
    cr_assert_eq(n, 0);
    ft_release(&r);
    /* the subscriber that was never reached keeps all three */
    cr_assert_eq(events_since(down_id, 1, &r, &n), 200, "%s", r.body.p);
    cr_assert_eq(n, 3, "undelivered events are never pruned");
    ft_release(&r);
    recv_stop(&rv);
    hub_test_rmtree(rv.dir);
}
