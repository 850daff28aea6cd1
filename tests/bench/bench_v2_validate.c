/* The v2 validation benchmark: over a corpus of one message per line
 * (segments joined by CR), for each message reset the arena, parse it,
 * validate it with the default policy against the base profiles, and build
 * the ACK with one ERR per finding. Single thread, median of N passes.
 *
 *   bench_v2_validate CORPUS [--messages N] [--runs N]
 *
 * Corpus: python3 /work/shared/bench/gen_v2_corpus.py --count 100000
 * --seed 42 --out FILE. Defaults: the first 20000 messages, 5 passes
 * (after one warm-up pass that also loads the profiles). Time is the
 * process's CPU time (CLOCK_PROCESS_CPUTIME_ID, robust on a shared
 * machine); wall time is printed too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_corpus.h"
#include "bench_util.h"
#include "hub/v2.h"


int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_v2_validate CORPUS [--messages N] [--runs N]\n");
        return 2;
    }
    int runs = 5;
    size_t want = 20000;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc) {
            want = (size_t)strtoul(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "bench_v2_validate: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (runs < 1 || runs > 99) runs = 5;
    bench_corpus corpus;
    if (bench_corpus_load(argv[1], want, &corpus) != 0) return 1;
    const hub_slice *lines = corpus.msg;
    size_t nl = corpus.n, bytes = corpus.bytes;
    hub_err err;
    hub_v2_profset *ps = NULL;
    if (hub_v2_profset_open(HUB_SOURCE_DIR "/conformance/v2", &ps, &err) != HUB_OK) {
        fprintf(stderr, "bench_v2_validate: profiles: %s: %s\n", err.where, err.msg);
        return 1;
    }
    hub_v2_policy pol;
    hub_v2_policy_default(&pol);
    hub_v2_validate_opts vo = {.site = NULL, .policy = &pol, .max = 0};
    hub_arena a;
    hub_arena_init(&a, 1 << 16);
    hub_buf ack;
    hub_buf_init(&ack);

    double *cpu = malloc((size_t)runs * sizeof *cpu);
    double *wall = malloc((size_t)runs * sizeof *wall);
    size_t findings = 0, failed = 0, ackbytes = 0;
    for (int r = -1; r < runs; r++) { /* r == -1: warm-up */
        size_t nf = 0, nfail = 0, nack = 0;
        double w0 = bench_clock_s(CLOCK_MONOTONIC), c0 = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID);
        for (size_t i = 0; i < nl; i++) {
            hub_arena_reset(&a);
            hub_v2_msg *m = NULL;
            if (hub_v2_parse(&a, lines[i].p, lines[i].n, NULL, &m, &err) != HUB_OK) {
                nfail++;
                continue;
            }
            hub_v2_findings out;
            if (hub_v2_validate(&a, ps, m, &vo, &out, &err) != HUB_OK) {
                nfail++;
                continue;
            }
            nf += out.n;
            hub_v2_ack_req req;
            memset(&req, 0, sizeof req);
            req.status = out.nerrors ? HUB_V2_ACK_ERROR : HUB_V2_ACK_ACCEPT;
            req.findings = out.items;
            req.nfindings = out.n;
            ack.n = 0;
            if (hub_v2_ack_build(m, &req, &ack, &err) != HUB_OK) {
                nfail++;
                continue;
            }
            nack += ack.n;
        }
        double c1 = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID), w1 = bench_clock_s(CLOCK_MONOTONIC);
        if (r >= 0) {
            cpu[r] = c1 - c0;
            wall[r] = w1 - w0;
        }
        findings = nf;
        failed = nfail;
        ackbytes = nack;
    }
    double c = bench_median(cpu, runs), w = bench_median(wall, runs);
    double n = (double)nl;
    printf("bench_v2_validate: %zu messages, %.1f MB, %d passes (median), "
           "parse+validate+ack, single thread\n",
           nl, (double)bytes / 1e6, runs);
    printf("  cpu : %10.0f msg/s  %8.1f MB/s  %7.2f us/msg\n", n / c,
           (double)bytes / 1e6 / c, c / n * 1e6);
    printf("  wall: %10.0f msg/s  %8.1f MB/s  %7.2f us/msg\n", n / w,
           (double)bytes / 1e6 / w, w / n * 1e6);
    printf("  findings/msg %.2f  ack bytes/msg %.0f  failed %zu\n", (double)findings / n,
           (double)ackbytes / n, failed);
    hub_buf_release(&ack);
    hub_arena_release(&a);
    hub_v2_profset_close(ps);
    free(cpu);
    free(wall);
    bench_corpus_release(&corpus);
    return 0;
}
