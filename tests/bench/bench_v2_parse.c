/* The v2 parse benchmark: over a corpus of one message per line (segments
 * joined by CR), parse every message (the full field index), and read
 * PID-3, PID-5 and every OBX-5 decoded. Single core, median of N runs.
 *
 *   bench_v2_parse CORPUS [--runs N]
 *
 * Time is the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so that a busy
 * shared machine does not count other processes' time; wall time is
 * printed too. Prints MB/s and messages/s; tests/bench/v2_parse.sh runs the same work
 * with python3-hl7 and npm parsers and prints the ratios. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_corpus.h"
#include "bench_util.h"
#include "hub/v2.h"


int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_v2_parse CORPUS [--runs N]\n");
        return 2;
    }
    int runs = 5;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else {
            fprintf(stderr, "bench_v2_parse: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (runs < 1 || runs > 99) runs = 5;
    bench_corpus corpus;
    if (bench_corpus_load(argv[1], 0, &corpus) != 0) return 1;
    const hub_slice *lines = corpus.msg;
    size_t nl = corpus.n, bytes = corpus.bytes;

    hub_arena a;
    hub_arena_init(&a, 1 << 16);
    double *t = malloc((size_t)runs * sizeof *t);
    double *wall = malloc((size_t)runs * sizeof *wall);
    size_t check = 0, fields = 0, failed = 0;
    for (int r = 0; r < runs; r++) {
        size_t c = 0, nf = 0, bad = 0;
        int64_t w0 = hub_mono_ns();
        double t0 = bench_cpu_s();
        for (size_t i = 0; i < nl; i++) {
            hub_arena_reset(&a);
            hub_v2_msg *m;
            if (hub_v2_parse(&a, lines[i].p, lines[i].n, NULL, &m, NULL) != HUB_OK) {
                bad++;
                continue;
            }
            size_t ns = hub_v2_seg_count(m);
            for (size_t s = 0; s < ns; s++) {
                hub_slice id = hub_v2_seg_id(m, s);
                nf += hub_v2_field_count(m, s);
                if (id.p[0] == 'P' && id.p[1] == 'I' && id.p[2] == 'D') {
                    hub_v2_text_out o;
                    hub_v2_decode(&a, m, hub_v2_at(m, s, 3, 0, 0, 0), &o, NULL);
                    c += o.text.n;
                    hub_v2_decode(&a, m, hub_v2_at(m, s, 5, 0, 0, 0), &o, NULL);
                    c += o.text.n;
                } else if (id.p[0] == 'O' && id.p[1] == 'B' && id.p[2] == 'X') {
                    hub_v2_text_out o;
                    hub_v2_decode(&a, m, hub_v2_at(m, s, 5, 0, 0, 0), &o, NULL);
                    c += o.text.n;
                }
            }
        }
        t[r] = bench_cpu_s() - t0;
        wall[r] = (double)(hub_mono_ns() - w0) / 1e9;
        check = c;
        fields = nf;
        failed = bad;
    }
    qsort(t, (size_t)runs, sizeof *t, bench_cmp_double);
    qsort(wall, (size_t)runs, sizeof *wall, bench_cmp_double);
    double med = t[runs / 2];
    printf("{\"parser\": \"hub\", \"messages\": %zu, \"bytes\": %zu, \"seconds\": %.6f, "
           "\"wall_seconds\": %.6f, "
           "\"mb_s\": %.1f, \"msg_s\": %.0f, \"fields\": %zu, \"failed\": %zu, "
           "\"check\": %zu}\n",
           nl, bytes, med, wall[runs / 2], (double)bytes / 1e6 / med, (double)nl / med, fields, failed,
           check);
    hub_arena_release(&a);
    free(t);
    free(wall);
    bench_corpus_release(&corpus);
    return failed ? 1 : 0;
}
