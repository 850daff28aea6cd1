/* The record benchmark: creates per second through hub_record_apply from
 * 32 threads (durable: fsync per commit group, and not durable), with the
 * commit groups the writer formed, then reads by id per second from 2
 * threads. Every create is validated against the R4 tables, as the hub
 * does (--no-validate to leave the tables out).
 *
 *   bench_record [--seconds S] [--threads N] [--readers N] [--no-validate]
 *
 * Wall-clock figures on a shared machine: run it a few times. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/record.h"

static const char PATIENT[] =
    "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:oid:1.2.36.146.595.217.0.1\","
    "\"value\":\"12345\"}],\"active\":true,\"name\":[{\"use\":\"official\",\"family\":\"Chalmers\","
    "\"given\":[\"Peter\",\"James\"]}],\"gender\":\"male\",\"birthDate\":\"1974-12-25\","
    "\"address\":[{\"use\":\"home\",\"line\":[\"534 Erewhon St\"],\"city\":\"PleasantVille\","
    "\"postalCode\":\"3999\"}]}";

static hub_record *rec;
static atomic_bool stop;
static atomic_long done_ops;
static char (*ids)[72];
static long nids;
static long nfilled; /* ids[0..nfilled) are created resources */

static void *creator(void *arg) {
    (void)arg;
    json_error_t je;
    json_t *tmpl = json_loads(PATIENT, 0, &je);
    while (!atomic_load(&stop)) {
        json_t *res = json_deep_copy(tmpl);
        hub_record_op op = {.kind = HUB_OP_CREATE, .type = "Patient", .resource = res};
        hub_err err;
        if (hub_record_apply(rec, &op, 1, false, &err) != HUB_OK || op.status != 201) {
            fprintf(stderr, "create failed: %d %s\n", op.status, err.msg);
            exit(1);
        }
        long k = atomic_fetch_add(&done_ops, 1);
        if (k < nids) snprintf(ids[k], 72, "%s", op.res.id);
        hub_record_op_release(&op);
        json_decref(res);
    }
    json_decref(tmpl);
    return NULL;
}

static void *reader(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    long have = nfilled;
    while (!atomic_load(&stop)) {
        seed = seed * 1103515245u + 12345u;
        hub_resource r;
        hub_err err;
        if (hub_record_read(rec, "Patient", ids[(seed >> 8) % (unsigned long)have], 0, &r,
                            &err) != HUB_OK) {
            fprintf(stderr, "read failed: %s\n", err.msg);
            exit(1);
        }
        hub_resource_release(&r);
        atomic_fetch_add(&done_ops, 1);
    }
    return NULL;
}

static double run(void *(*fn)(void *), int threads, double secs) {
    pthread_t th[256];
    atomic_store(&stop, false);
    long before = atomic_load(&done_ops);
    int64_t t0 = hub_mono_ns();
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, fn, (void *)(uintptr_t)(i + 1));
    usleep((useconds_t)(secs * 1e6));
    atomic_store(&stop, true);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    double el = (double)(hub_mono_ns() - t0) / 1e9;
    return (double)(atomic_load(&done_ops) - before) / el;
}

static void rmstore(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

int main(int argc, char **argv) {
    double secs = 3;
    int threads = 32, readers = 2;
    bool validate = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) secs = atof(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--readers") == 0 && i + 1 < argc) readers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-validate") == 0) validate = false;
        else {
            fprintf(stderr, "usage: bench_record [--seconds S] [--threads N] [--readers N] [--no-validate]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || readers < 1 || readers > 256) return 2;
    hub_fhir_defs *defs = NULL;
    hub_err err;
    if (validate &&
        hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &defs, &err) != HUB_OK) {
        fprintf(stderr, "tables: %s\n", err.msg);
        return 1;
    }
    nids = 1 << 20;
    ids = calloc((size_t)nids, sizeof *ids);
    printf("record: %d writer threads, %d readers, %.0f s each, validation %s\n", threads,
           readers, secs, validate ? "on" : "off");
    for (int durable = 1; durable >= 0; durable--) {
        char dir[] = "/tmp/hub-bench-record-XXXXXX";
        if (!mkdtemp(dir)) return 1;
        hub_store *st;
        hub_store_cfg sc = {.dir = dir, .durable = durable, .commit_batch_max = 512};
        if (hub_store_open(&sc, &st, &err) != HUB_OK) {
            fprintf(stderr, "store: %s\n", err.msg);
            return 1;
        }
        hub_record_cfg rc = {.store = st, .defs = defs, .max_bundle_entries = 1000};
        hub_record_open(&rc, &rec, &err);
        atomic_store(&done_ops, 0);
        double cps = run(creator, threads, secs);
        hub_store_stats stats;
        hub_store_get_stats(st, &stats);
        printf("creates/s (%s): %8.0f   commits %lld, jobs %lld, %.1f jobs per commit\n",
               durable ? "durable" : "not durable", cps, (long long)stats.commits,
               (long long)stats.jobs, stats.commits ? (double)stats.jobs / (double)stats.commits : 0);
        if (!durable) {
            long have = atomic_load(&done_ops);
            nfilled = have < nids ? have : nids; /* readers pick among these ids */
            double rps = run(reader, readers, secs);
            printf("reads/s by id (%d threads): %8.0f   over %ld resources\n", readers, rps,
                   have < nids ? have : nids);
        }
        hub_record_close(rec);
        hub_store_close(st);
        rmstore(dir);
    }
    hub_fhir_defs_free(defs);
    free(ids);
    return 0;
}
