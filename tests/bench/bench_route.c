/* Routing benchmark: latency from a change's commit (the moment an MLLP
 * sender would get its AA: ingest ACKs after the commit) to the subscriber
 * receiving the notification, at a paced rate, with N subscriptions; and
 * notifications/s in a burst.
 *
 *   bench_route [-s SUBS] [-r RATE] [-d SECONDS] [-t THREADS] [-b BURST]
 *
 * In-process: the store (durable, as `hub serve` runs it), the record and
 * the router; the subscriber is a libmicrohttpd server in this process on
 * 127.0.0.1 (plain HTTP, route.allow_http). SUBS subscriptions
 * Observation?patient=Patient/p<k>, each to its own path; message i is an
 * Observation for patient p<i % SUBS>, so each message matches exactly one
 * subscription among SUBS. Latency is measured per message (the commit's
 * return on the writing thread to the handler seeing its event). */
#include "hub/fhir.h"
#include "hub/http.h"
#include "hub/record.h"
#include "hub/route.h"
#include "hub/store.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int nsubs = 1000, rate = 1000, seconds = 10, threads = 32, burst = 20000;
static hub_record *rec;
static int64_t *sent_ns, *recv_ns; /* per message */
static atomic_long handshakes, received;
static long total;

static void on_hook(void *ud, const hub_http_req *req, hub_http_resp *resp) {
    (void)ud;
    int64_t now = hub_mono_ns();
    hub_slice b = hub_http_req_body(req);
    /* focus references "Observation/b<i>/_history/1"; a handshake has none */
    const char *p = b.p, *end = b.p + b.n;
    bool any = false;
    while (p && p < end) {
        const char *f = memmem(p, (size_t)(end - p), "Observation/b", 13);
        if (!f) break;
        long i = strtol(f + 13, NULL, 10);
        if (i >= 0 && i < total && recv_ns[i] == 0) {
            recv_ns[i] = now;
            atomic_fetch_add(&received, 1);
        }
        any = true;
        p = f + 13;
    }
    if (!any) atomic_fetch_add(&handshakes, 1);
    hub_http_resp_set(resp, 200, "text/plain", "", 0);
}

typedef struct {
    int k;
    long from, to;
    bool paced;
    int64_t t0;
} sender;

static void *send_main(void *arg) {
    sender *s = arg;
    char id[32], pat[32];
    for (long i = s->from + s->k; i < s->to; i += threads) {
        if (s->paced) {
            int64_t due = s->t0 + (int64_t)((double)(i - s->from) * 1e9 / rate);
            int64_t now = hub_mono_ns();
            if (due > now) {
                struct timespec ts = {(due - now) / 1000000000, (due - now) % 1000000000};
                nanosleep(&ts, NULL);
            }
        }
        snprintf(id, sizeof id, "b%ld", i);
        snprintf(pat, sizeof pat, "Patient/p%ld", i % nsubs);
        json_t *o = json_pack("{s:s, s:s, s:s, s:{s:[{s:s, s:s}]}, s:{s:s}, s:{s:f, s:s}}",
                              "resourceType", "Observation", "id", id, "status", "final", "code",
                              "coding", "system", "http://loinc.org", "code", "2345-7", "subject",
                              "reference", pat, "valueQuantity", "value", 5.4, "unit", "mmol/L");
        hub_record_op op;
        memset(&op, 0, sizeof op);
        op.kind = HUB_OP_UPDATE;
        op.type = "Observation";
        op.id = id;
        op.resource = o;
        hub_err err;
        if (hub_record_apply(rec, &op, 1, true, &err) != HUB_OK || op.status >= 300)
            fprintf(stderr, "write %ld failed: %d %s\n", i, op.status, err.msg);
        sent_ns[i] = hub_mono_ns();
        hub_record_op_release(&op);
        json_decref(o);
    }
    return NULL;
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void run(long from, long to, bool paced, const char *label) {
    pthread_t th[64];
    sender s[64];
    int64_t t0 = hub_mono_ns();
    for (int k = 0; k < threads; k++) {
        s[k] = (sender){k, from, to, paced, t0};
        pthread_create(&th[k], NULL, send_main, &s[k]);
    }
    for (int k = 0; k < threads; k++) pthread_join(th[k], NULL);
    int64_t t_sent = hub_mono_ns();
    long want = to;
    for (int w = 0; w < 6000 && atomic_load(&received) < want; w++) usleep(10000);
    int64_t t_done = hub_mono_ns();
    long n = 0;
    int64_t *lat = malloc(sizeof *lat * (size_t)(to - from));
    int64_t last = 0;
    for (long i = from; i < to; i++) {
        if (!recv_ns[i]) continue;
        lat[n++] = recv_ns[i] > sent_ns[i] ? recv_ns[i] - sent_ns[i] : 0;
        if (recv_ns[i] > last) last = recv_ns[i];
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp64);
    double secs_in = (double)(t_sent - t0) / 1e9;
    double secs_all = (double)((last ? last : t_done) - t0) / 1e9;
    printf("%-6s subs=%d messages=%ld received=%ld write_rate=%.0f/s notifications=%.0f/s "
           "p50=%.2fms p99=%.2fms max=%.2fms\n",
           label, nsubs, to - from, n, (double)(to - from) / secs_in, (double)n / secs_all,
           n ? (double)lat[n / 2] / 1e6 : 0, n ? (double)lat[(n * 99) / 100] / 1e6 : 0,
           n ? (double)lat[n - 1] / 1e6 : 0);
    fflush(stdout);
    free(lat);
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "s:r:d:t:b:")) != -1) {
        switch (opt) {
        case 's': nsubs = atoi(optarg); break;
        case 'r': rate = atoi(optarg); break;
        case 'd': seconds = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'b': burst = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: bench_route [-s SUBS] [-r RATE] [-d SECONDS] [-t THREADS] "
                            "[-b BURST]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 64 || nsubs < 1 || rate < 1) return 2;
    hub_log_setup(HUB_LOG_WARN, HUB_LOGFMT_TEXT, 2);
    hub_err err;
    hub_fhir_defs *defs;
    hub_fhir_sps *sps;
    if (hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &defs, &err) ||
        hub_fhir_sps_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &sps, &err)) {
        fprintf(stderr, "tables: %s\n", err.msg);
        return 1;
    }
    char dir[] = "/tmp/bench_route.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    hub_store *store;
    hub_store_cfg sc = {.dir = dir, .durable = true, .commit_batch_max = 512};
    if (hub_store_open(&sc, &store, &err)) {
        fprintf(stderr, "store: %s\n", err.msg);
        return 1;
    }
    hub_record_cfg rc = {.store = store, .defs = defs, .search = sps};
    hub_route *route;
    if (hub_record_open(&rc, &rec, &err)) return 1;
    hub_route_cfg rtc = {.record = rec, .allow_http = true, .retry_min_ms = 100,
                         .retention_days = 30};
    if (hub_route_open(&rtc, &route, &err)) {
        fprintf(stderr, "route: %s\n", err.msg);
        return 1;
    }
    hub_http_server *srv;
    hub_http_cfg hc = {.host = "127.0.0.1", .port = 0, .threads = 2, .max_connections = 512,
                       .max_body = 16 << 20, .timeout_s = 60};
    if (hub_http_server_new(&hc, &srv, &err) || hub_http_route(srv, "POST", "/hook/*", on_hook, NULL) ||
        hub_http_server_start(srv, &err)) {
        fprintf(stderr, "receiver: %s\n", err.msg);
        return 1;
    }
    int port = hub_http_server_port(srv);

    /* the subscriptions, 500 per transaction */
    int64_t ts = hub_mono_ns();
    for (int k = 0; k < nsubs; k += 500) {
        int n = nsubs - k < 500 ? nsubs - k : 500;
        hub_record_op *ops = calloc((size_t)n, sizeof *ops);
        json_t **res = calloc((size_t)n, sizeof *res);
        for (int i = 0; i < n; i++) {
            char crit[64], ep[96];
            snprintf(crit, sizeof crit, "Observation?patient=Patient/p%d", k + i);
            snprintf(ep, sizeof ep, "http://127.0.0.1:%d/hook/%d", port, k + i);
            res[i] = json_pack(
                "{s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:{s:[{s:s, s:s}]}}}", "resourceType",
                "Subscription", "status", "requested", "reason", "bench", "criteria", crit,
                "channel", "type", "rest-hook", "endpoint", ep, "payload",
                "application/fhir+json", "_payload", "extension", "url",
                HUB_BACKPORT "backport-payload-content", "valueCode", "id-only");
            ops[i].kind = HUB_OP_CREATE;
            ops[i].type = "Subscription";
            ops[i].resource = res[i];
        }
        if (hub_record_apply(rec, ops, (size_t)n, true, &err) != HUB_OK) {
            fprintf(stderr, "subscriptions: %s\n", err.msg);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            hub_record_op_release(&ops[i]);
            json_decref(res[i]);
        }
        free(ops);
        free(res);
    }
    for (int w = 0; w < 12000 && atomic_load(&handshakes) < nsubs; w++) usleep(10000);
    printf("setup  subs=%d active_after=%.2fs handshakes=%ld\n", nsubs,
           (double)(hub_mono_ns() - ts) / 1e9, atomic_load(&handshakes));
    long paced = (long)rate * seconds;
    total = paced + burst;
    sent_ns = calloc((size_t)total, sizeof *sent_ns);
    recv_ns = calloc((size_t)total, sizeof *recv_ns);
    run(0, paced, true, "paced");
    run(paced, total, false, "burst");

    hub_http_server_free(srv);
    hub_route_close(route);
    hub_record_close(rec);
    hub_store_close(store);
    hub_fhir_defs_free(defs);
    hub_fhir_sps_free(sps);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return 1;
    free(sent_ns);
    free(recv_ns);
    return 0;
}
