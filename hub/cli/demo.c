/* The demo feed of `hub serve --demo`: a sender thread that makes up
 * patients and sends them, as ADT and ORU messages, to the hub's own MLLP
 * port, so a newcomer sees data flow. Every name and number is invented. */
#include "demo.h"
#include "hub/mllp.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct hub_demo {
    pthread_t th;
    atomic_bool stop;
    int port, interval_ms;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

static const char *const FAMILY[] = {"RIVERA", "OKAFOR", "NGUYEN", "KOWALSKI",
                                     "HANSEN", "MORALES", "TANAKA", "SILVA"};
static const char *const GIVEN[] = {"ALEX", "MARIA", "SAMUEL", "PRIYA",
                                    "JONAS", "LEILA", "OMAR", "GRACE"};
static const struct {
    const char *code, *name, *unit, *range;
    int lo, hi;
} TESTS[] = {{"2345-7", "Glucose", "mg/dL", "70-99", 60, 240},
             {"4548-4", "Hemoglobin A1c", "%", "4.0-5.6", 4, 11},
             {"2160-0", "Creatinine", "mg/dL", "0.6-1.3", 1, 3},
             {"2951-2", "Sodium", "mmol/L", "135-145", 128, 150}};

static unsigned next_rand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

static void build(char *out, size_t cap, unsigned n, unsigned *seed) {
    char ts[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y%m%d%H%M%S", &tm);
    unsigned pat = next_rand(seed) % 40;
    const char *fam = FAMILY[pat % 8], *giv = GIVEN[(pat / 8 + pat) % 8];
    int year = 1940 + (int)(pat * 7 % 60), month = 1 + (int)(pat % 12),
        day = 1 + (int)(pat % 28);
    const char *sex = pat % 2 ? "F" : "M";
    int kind = (int)(n % 3);
    int o = snprintf(out, cap,
                     "MSH|^~\\&|DEMO-EHR|DEMO-HOSP|HUB|HUB|%s||%s|DEMO%06u|P|2.5.1\r",
                     ts, kind == 2 ? "ORU^R01^ORU_R01"
                         : kind == 1 ? "ADT^A08^ADT_A01" : "ADT^A01^ADT_A01",
                     n);
    if (kind != 2)
        o += snprintf(out + o, cap - (size_t)o, "EVN|%s|%s\r",
                      kind == 1 ? "A08" : "A01", ts);
    o += snprintf(out + o, cap - (size_t)o,
                  "PID|1||MRN%05u^^^DEMO-HOSP^MR||%s^%s||%04d%02d%02d|%s|||"
                  "%u MAIN ST^^SPRINGFIELD^IL^62701||(217)555-%04u\r",
                  pat, fam, giv, year, month, day, sex, 100 + pat, 1000 + pat);
    o += snprintf(out + o, cap - (size_t)o,
                  "PV1|1|%s|MED^%u^1^DEMO-HOSP||||1234^WELBY^MARCUS^^^DR|||MED"
                  "|||||||||V%06u\r",
                  kind == 2 ? "O" : "I", 100 + pat % 20, n);
    if (kind == 2) {
        unsigned t = next_rand(seed) % 4;
        int v = TESTS[t].lo + (int)(next_rand(seed) % (unsigned)(TESTS[t].hi - TESTS[t].lo + 1));
        o += snprintf(out + o, cap - (size_t)o,
                      "ORC|RE|ORD%06u|FIL%06u\r"
                      "OBR|1|ORD%06u|FIL%06u|%s^%s^LN|||%s\r"
                      "OBX|1|NM|%s^%s^LN||%d|%s|%s|N|||F|||%s\r",
                      n, n, n, n, TESTS[t].code, TESTS[t].name, ts,
                      TESTS[t].code, TESTS[t].name, v, TESTS[t].unit,
                      TESTS[t].range, ts);
    }
    (void)o;
}

static void *demo_main(void *arg) {
    hub_demo *d = arg;
    hub_mllp_client_cfg cc = {.host = "127.0.0.1", .port = d->port,
                              .ack_timeout_ms = 10000, .max_attempts = 3};
    hub_mllp_client *c = NULL;
    hub_err err;
    if (hub_mllp_client_new(&cc, &c, &err) != HUB_OK) {
        HUB_LOG_ERROR("demo", "cannot start err='%s'", err.msg);
        return NULL;
    }
    unsigned seed = (unsigned)time(NULL);
    hub_buf ack;
    hub_buf_init(&ack);
    char msg[2048];
    for (unsigned n = 1; !atomic_load(&d->stop); n++) {
        build(msg, sizeof msg, n, &seed);
        int64_t t0 = hub_mono_ns();
        hub_status rc = hub_mllp_client_send(c, msg, strlen(msg), &ack, &err);
        double ms = (double)(hub_mono_ns() - t0) / 1e6;
        if (rc == HUB_OK) {
            hub_slice code = {0};
            hub_mllp_field((hub_slice){ack.p, ack.n}, "MSA", 1, &code);
            HUB_LOG_INFO("demo", "sent type=%s control_id=DEMO%06u ack=%.*s ms=%.2f",
                         n % 3 == 2 ? "ORU^R01" : n % 3 == 1 ? "ADT^A08" : "ADT^A01",
                         n, (int)code.n, code.p ? code.p : "", ms);
        } else if (!atomic_load(&d->stop)) {
            HUB_LOG_WARN("demo", "send failed control_id=DEMO%06u err='%s'", n, err.msg);
        }
        pthread_mutex_lock(&d->lock);
        if (!atomic_load(&d->stop)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += d->interval_ms / 1000;
            ts.tv_nsec += (long)(d->interval_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&d->cond, &d->lock, &ts);
        }
        pthread_mutex_unlock(&d->lock);
    }
    hub_buf_release(&ack);
    hub_mllp_client_free(c);
    return NULL;
}

hub_status hub_demo_start(int port, int interval_ms, hub_demo **out, hub_err *err) {
    hub_demo *d = hub_calloc(1, sizeof *d);
    if (d == NULL) return hub_err_set(err, HUB_E_NOMEM, "demo", "out of memory");
    d->port = port;
    d->interval_ms = interval_ms;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    if (pthread_create(&d->th, NULL, demo_main, d) != 0) {
        hub_free(d);
        return hub_err_set(err, HUB_E_STATE, "demo", "cannot start thread");
    }
    *out = d;
    return HUB_OK;
}

void hub_demo_stop(hub_demo *d) {
    if (d == NULL) return;
    pthread_mutex_lock(&d->lock);
    atomic_store(&d->stop, true);
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->th, NULL);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    hub_free(d);
}
