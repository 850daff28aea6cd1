/* Loader for the search benchmark (tests/bench/fhir_search.sh): creates
 * NPAT Patients and NOBS Observations (realistic LOINC vital-sign and lab
 * codes, dates over five years, one patient per observation at random)
 * through hub_record_apply in batches of 5000, into the store at DIR.
 *
 *   bench_search_load DIR NPAT NOBS [--no-index]
 *
 * Prints creates/s and the process's CPU time (user+sys, all threads) per
 * create, the figure to compare on a shared machine; --no-index loads with identifiers only indexed (the
 * record without the search table), so the two runs give the cost of
 * index maintenance. Patient i has identifier urn:bench:mrn|P<i> and
 * server-independent id pat-<i>; names come from small lists, so
 * Patient?name= and subject.name= select a few hundred. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "hub/record.h"

#define BATCH 5000

static const char *const FAMILY[] = {"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia",
    "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson",
    "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson",
    "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young",
    "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams",
    "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "M\xc3\xbcller",
    "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann"};
static const char *const GIVEN[] = {"James", "Mary", "John", "Patricia", "Robert", "Jennifer",
    "Michael", "Linda", "William", "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph",
    "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Zo\xc3\xab", "Ren\xc3\xa9"};
static const struct {
    const char *code, *display, *unit;
    double lo, hi;
} CODES[] = {
    {"8867-4", "Heart rate", "/min", 45, 140},
    {"8310-5", "Body temperature", "Cel", 35.5, 40},
    {"8480-6", "Systolic blood pressure", "mm[Hg]", 90, 180},
    {"8462-4", "Diastolic blood pressure", "mm[Hg]", 50, 110},
    {"29463-7", "Body weight", "kg", 3, 150},
    {"8302-2", "Body height", "cm", 50, 200},
    {"9279-1", "Respiratory rate", "/min", 10, 30},
    {"2708-6", "Oxygen saturation", "%", 85, 100},
    {"2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 60, 300},
    {"718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 8, 18},
    {"2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.4, 3},
    {"4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4, 12},
};
#define N(a) (sizeof a / sizeof a[0])

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s DIR NPAT NOBS [--no-index]\n", argv[0]);
        return 2;
    }
    long npat = atol(argv[2]), nobs = atol(argv[3]);
    bool index = !(argc > 4 && strcmp(argv[4], "--no-index") == 0);
    hub_err err;
    hub_fhir_defs *defs;
    hub_fhir_sps *sps = NULL;
    if (hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &defs, &err) ||
        (index && hub_fhir_sps_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &sps, &err))) {
        fprintf(stderr, "tables: %s\n", err.msg);
        return 1;
    }
    hub_store *store;
    hub_store_cfg sc = {.dir = argv[1], .durable = false, .commit_batch_max = 512};
    if (hub_store_open(&sc, &store, &err)) {
        fprintf(stderr, "store: %s\n", err.msg);
        return 1;
    }
    hub_record *rec;
    hub_record_cfg rc = {.store = store, .defs = defs, .search = sps, .max_bundle_entries = BATCH};
    if (hub_record_open(&rc, &rec, &err)) {
        fprintf(stderr, "record: %s\n", err.msg);
        return 1;
    }
    static hub_record_op ops[BATCH];
    static json_t *res[BATCH];
    static char ids[BATCH][32];
    int64_t t0 = hub_mono_ns();
    long total = npat + nobs, done = 0;
    while (done < total) {
        size_t n = 0;
        for (; n < BATCH && done + (long)n < total; n++) {
            long i = done + (long)n;
            char buf[1024];
            if (i < npat) {
                snprintf(ids[n], sizeof ids[n], "pat-%ld", i);
                snprintf(buf, sizeof buf,
                         "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:bench:mrn\","
                         "\"value\":\"P%ld\"}],\"name\":[{\"family\":\"%s\",\"given\":[\"%s\"]}],"
                         "\"gender\":\"%s\",\"birthDate\":\"%04d-%02d-%02d\",\"address\":[{\"city\":"
                         "\"City%02d\",\"postalCode\":\"%05d\"}]}",
                         i, FAMILY[rnd() % N(FAMILY)], GIVEN[rnd() % N(GIVEN)],
                         rnd() % 2 ? "female" : "male", 1930 + (int)(rnd() % 90),
                         1 + (int)(rnd() % 12), 1 + (int)(rnd() % 28), (int)(rnd() % 50),
                         (int)(rnd() % 99999));
                res[n] = json_loads(buf, 0, NULL);
                ops[n] = (hub_record_op){.kind = HUB_OP_UPDATE, .type = "Patient", .id = ids[n],
                                         .resource = res[n]};
                json_object_set_new(res[n], "id", json_string(ids[n]));
            } else {
                long p = (long)(rnd() % (uint64_t)npat);
                unsigned c = (unsigned)(rnd() % N(CODES));
                double v = CODES[c].lo + (CODES[c].hi - CODES[c].lo) * (double)(rnd() % 1000) / 1000.0;
                int day = (int)(rnd() % 1826);
                /* 2020-01-01 + day, as y-m-d via the C library */
                time_t tt = (time_t)(1577836800 + (int64_t)day * 86400 + (int64_t)(rnd() % 86400));
                struct tm tm;
                gmtime_r(&tt, &tm);
                snprintf(buf, sizeof buf,
                         "{\"resourceType\":\"Observation\",\"status\":\"final\",\"category\":[{"
                         "\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
                         "observation-category\",\"code\":\"%s\"}]}],\"code\":{\"coding\":[{"
                         "\"system\":\"http://loinc.org\",\"code\":\"%s\",\"display\":\"%s\"}]},"
                         "\"subject\":{\"reference\":\"Patient/pat-%ld\"},\"effectiveDateTime\":"
                         "\"%04d-%02d-%02dT%02d:%02d:%02dZ\",\"valueQuantity\":{\"value\":%.1f,"
                         "\"unit\":\"%s\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"%s\"}}",
                         c < 8 ? "vital-signs" : "laboratory", CODES[c].code, CODES[c].display, p,
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, v, CODES[c].unit, CODES[c].unit);
                res[n] = json_loads(buf, 0, NULL);
                ops[n] = (hub_record_op){.kind = HUB_OP_CREATE, .type = "Observation",
                                         .resource = res[n]};
            }
            if (!res[n]) {
                fprintf(stderr, "bad generated JSON\n");
                return 1;
            }
        }
        if (hub_record_apply(rec, ops, n, false, &err)) {
            fprintf(stderr, "apply: %s\n", err.msg);
            return 1;
        }
        for (size_t k = 0; k < n; k++) {
            if (ops[k].status != 201 && ops[k].status != 200) {
                fprintf(stderr, "op %ld: status %d\n", done + (long)k, ops[k].status);
                return 1;
            }
            hub_record_op_release(&ops[k]);
            json_decref(res[k]);
        }
        done += (long)n;
        if (done % 100000 < BATCH)
            fprintf(stderr, "  %ld/%ld %.0f creates/s\n", done, total,
                    (double)done / ((double)(hub_mono_ns() - t0) / 1e9));
    }
    double secs = (double)(hub_mono_ns() - t0) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    printf("RESULT creates=%ld seconds=%.1f creates_per_s=%.0f cpu_us_per_create=%.1f index=%s\n",
           total, secs, (double)total / secs, cpu * 1e6 / (double)total,
           index ? "full" : "identifier-only");
    hub_record_close(rec);
    hub_store_close(store);
    hub_fhir_sps_free(sps);
    hub_fhir_defs_free(defs);
    return 0;
}
