/* The mapping benchmark: conversions/s on one core over a
 * gen_v2_corpus.py corpus (one message per line, segments joined by CR):
 * parse + map to the transaction Bundle in each of its two forms: compact
 * JSON text (HUB_MAP_OUT_TEXT) and the jansson tree the record applies
 * (HUB_MAP_OUT_JANSSON, what ingest asks for). Messages of a type without
 * a table are counted apart, as failing fast. Time is the thread's CPU
 * time; wall time is printed too. Median of N runs.
 *
 *   bench_map CORPUS [--runs N] [--count N] [--dump FILE] [--only text|jansson]
 *
 * --dump writes each message's Bundle (json_dumps of the jansson form,
 * compact, one line each; a failure as "error WHERE: MSG") from the
 * untimed pass, and checks that the text form is hub_json_dumps's text of
 * the jansson form: two builds' dumps compared with cmp show that a
 * change kept the output.
 *
 * Also prints the tables' load time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_corpus.h"
#include "bench_util.h"
#include "hub/fhir.h"
#include "hub/map.h"

/* Times `runs` passes over the messages with the Bundle in `form`:
 * median thread CPU and wall seconds; returns the text bytes of a pass.
 * Not inlined: callgrind --toggle-collect='time_form*' counts the timed
 * passes alone. */
__attribute__((noinline)) static size_t time_form(const hub_map *map, const hub_slice *conv,
                                                  size_t ok, int runs, unsigned form,
                                                  hub_arena *a, double *cpu, double *wall_s) {
    double *t = malloc((size_t)runs * sizeof *t), *wall = malloc((size_t)runs * sizeof *wall);
    size_t bytes = 0;
    hub_err err;
    for (int r = 0; r < runs; r++) {
        bytes = 0;
        int64_t w0 = hub_mono_ns();
        double t0 = bench_cpu_s();
        for (size_t i = 0; i < ok; i++) {
            hub_arena_reset(a);
            hub_v2_msg *m;
            hub_v2_parse(a, conv[i].p, conv[i].n, NULL, &m, NULL);
            hub_map_opts o = {.now_ms = 1, .out = form};
            hub_map_result res;
            if (hub_map_message(map, m, &o, &res, &err) == HUB_OK) bytes += res.json.n;
            hub_map_result_release(&res);
        }
        t[r] = bench_cpu_s() - t0;
        wall[r] = (double)(hub_mono_ns() - w0) / 1e9;
    }
    *cpu = bench_median(t, runs);
    *wall_s = bench_median(wall, runs);
    free(t);
    free(wall);
    return bytes;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_map CORPUS [--runs N] [--count N]\n");
        return 2;
    }
    int runs = 3;
    size_t want = 0;
    const char *dump_path = NULL, *only = "";
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) want = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc) dump_path = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr, "bench_map: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (runs < 1 || runs > 99) runs = 3;
    int64_t l0 = hub_mono_ns();
    hub_map *map = NULL;
    hub_err err;
    hub_map_cfg mc = {.dir = HUB_SOURCE_DIR "/mappings"};
    if (hub_map_load(&mc, &map, &err) != HUB_OK) {
        fprintf(stderr, "bench_map: tables: %s: %s\n", err.where, err.msg);
        return 1;
    }
    double load_ms = (double)(hub_mono_ns() - l0) / 1e6;
    bench_corpus corpus;
    if (bench_corpus_load(argv[1], want, &corpus) != 0) return 1;
    FILE *dump = dump_path ? fopen(dump_path, "w") : NULL;
    if (dump_path && dump == NULL) {
        perror(dump_path);
        return 1;
    }
    hub_arena a;
    hub_arena_init(&a, 1 << 16);
    /* Untimed pass: which messages have a table (ORU has none until the
     * order/result tables land); the timed runs convert those. */
    size_t ok = 0, unsupported = 0, failed = 0, entries = 0, bytes = 0, text_differs = 0;
    hub_slice *conv = calloc(corpus.n ? corpus.n : 1, sizeof *conv);
    for (size_t i = 0; i < corpus.n; i++) {
        hub_arena_reset(&a);
        hub_v2_msg *m;
        if (hub_v2_parse(&a, corpus.msg[i].p, corpus.msg[i].n, NULL, &m, NULL) != HUB_OK) {
            failed++;
            continue;
        }
        hub_map_opts o = {.now_ms = 1, .out = HUB_MAP_OUT_JANSSON | HUB_MAP_OUT_TEXT};
        hub_map_result res;
        hub_status rc = hub_map_message(map, m, &o, &res, &err);
        if (dump && rc == HUB_OK) {
            char *js = json_dumps(res.bundle, JSON_COMPACT);
            fprintf(dump, "%s\n", js ? js : "(null)");
            free(js);
            js = hub_json_dumps(res.bundle, JSON_COMPACT);
            if (!js || strlen(js) != res.json.n || memcmp(js, res.json.p, res.json.n) != 0) {
                fprintf(stderr, "bench_map: message %zu: the text form differs\n", i + 1);
                text_differs++;
            }
            free(js);
        } else if (dump) {
            fprintf(dump, "error %s: %s\n", err.where, err.msg);
        }
        if (rc == HUB_OK) {
            conv[ok++] = corpus.msg[i];
            entries += res.nresources;
        } else if (rc == HUB_E_UNSUPPORTED) {
            unsupported++;
        } else {
            failed++;
        }
        hub_map_result_release(&res);
    }
    if (dump) fclose(dump);
    /* --only: one form (callgrind counts one at a time). */
    double text_cpu = 0, text_wall = 0, tree_cpu = 0, tree_wall = 0;
    if (strcmp(only, "jansson") != 0)
        bytes = time_form(map, conv, ok, runs, HUB_MAP_OUT_TEXT, &a, &text_cpu, &text_wall);
    if (strcmp(only, "text") != 0)
        time_form(map, conv, ok, runs, HUB_MAP_OUT_JANSSON, &a, &tree_cpu, &tree_wall);
    printf("tables loaded in %.2f ms\n", load_ms);
    printf("messages %zu: converted %zu, no table yet %zu, failed %zu\n", corpus.n, ok, unsupported,
           failed);
    printf("%.0f conversions/s per core (parse + map + Bundle as JSON text; median CPU %.3f s, "
           "wall %.3f s for %zu messages), %.1f entries and %.0f bytes of Bundle per message\n",
           text_cpu > 0 ? (double)ok / text_cpu : 0, text_cpu, text_wall, ok,
           ok ? (double)entries / (double)ok : 0, ok ? (double)bytes / (double)ok : 0);
    printf("%.0f conversions/s per core (parse + map + Bundle as jansson, ingest's form; median "
           "CPU %.3f s, wall %.3f s)\n",
           tree_cpu > 0 ? (double)ok / tree_cpu : 0, tree_cpu, tree_wall);
    if (dump_path) printf("dump: %zu bundle(s) whose text form differs\n", text_differs);
    free(conv);
    hub_arena_release(&a);
    bench_corpus_release(&corpus);
    hub_map_free(map);
    return 0;
}
