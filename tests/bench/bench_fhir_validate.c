/* The FHIR validation benchmark: every JSON file of the corpus directories
 * (read at run time, parsed once), validated again and again; and, apart,
 * parse + validate from the bytes. Single thread, median of N passes, CPU
 * time (CLOCK_PROCESS_CPUTIME_ID, robust on a shared machine). Also times
 * loading the element tables.
 *
 *   bench_fhir_validate [DIR...] [--runs N]
 *
 * Default directories: ../shared/corpus/fhir/{r4-spec-examples,us-core-examples}
 * next to the source tree; the benchmark says so and exits 0 when they are
 * absent. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "hub/fhir.h"

typedef struct {
    char *text;
    size_t n;
    json_t *json;
} doc;

static size_t load_dir(const char *dir, doc **docs, size_t n, size_t *cap) {
    DIR *dp = opendir(dir);
    if (!dp) return n;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        doc d = {0};
        hub_err err;
        if (hub_file_read(path, 64u << 20, &d.text, &d.n, &err) != HUB_OK) continue;
        if (n == *cap) {
            *cap = *cap ? *cap * 2 : 256;
            *docs = realloc(*docs, *cap * sizeof **docs);
        }
        (*docs)[n++] = d;
    }
    closedir(dp);
    return n;
}

int main(int argc, char **argv) {
    int runs = 5;
    const char *dirs[16];
    int ndirs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) runs = atoi(argv[++i]);
        else if (ndirs < 16) dirs[ndirs++] = argv[i];
    }
    if (runs < 1 || runs > 99) runs = 5;
    if (ndirs == 0) {
        dirs[ndirs++] = HUB_SOURCE_DIR "/../shared/corpus/fhir/r4-spec-examples";
        dirs[ndirs++] = HUB_SOURCE_DIR "/../shared/corpus/fhir/us-core-examples";
    }
    doc *docs = NULL;
    size_t n = 0, cap = 0, bytes = 0;
    for (int i = 0; i < ndirs; i++) n = load_dir(dirs[i], &docs, n, &cap);
    if (n == 0) {
        printf("bench_fhir_validate: no corpus (%s ...): skipped\n", dirs[0]);
        return 0;
    }

    hub_err err;
    hub_fhir_defs *defs = NULL;
    double *load = malloc((size_t)runs * sizeof *load);
    for (int r = 0; r < runs; r++) {
        double w0 = bench_clock_s(CLOCK_MONOTONIC);
        if (hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &defs, &err) != HUB_OK) {
            fprintf(stderr, "bench_fhir_validate: %s\n", err.msg);
            return 1;
        }
        load[r] = bench_clock_s(CLOCK_MONOTONIC) - w0;
        if (r + 1 < runs) hub_fhir_defs_free(defs);
    }

    size_t invalid = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += docs[i].n;
        hub_oo *oo = hub_oo_new();
        if (hub_fhir_parse_json(docs[i].text, docs[i].n, &docs[i].json, oo) != HUB_OK ||
            hub_fhir_validate(defs, docs[i].json, NULL, oo) != HUB_OK)
            invalid++;
        hub_oo_free(oo);
    }

    /* Enough repetitions per pass for a stable figure. */
    int reps = (int)(20000 / n) + 1;
    double *cv = malloc((size_t)runs * sizeof *cv), *cp = malloc((size_t)runs * sizeof *cp);
    for (int r = -1; r < runs; r++) {
        double c0 = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID);
        for (int k = 0; k < reps; k++) {
            for (size_t i = 0; i < n; i++) {
                if (!docs[i].json) continue;
                hub_oo *oo = hub_oo_new();
                (void)hub_fhir_validate(defs, docs[i].json, NULL, oo);
                hub_oo_free(oo);
            }
        }
        double c1 = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID);
        for (size_t i = 0; i < n; i++) {
            hub_oo *oo = hub_oo_new();
            json_t *j = NULL;
            if (hub_fhir_parse_json(docs[i].text, docs[i].n, &j, oo) == HUB_OK)
                (void)hub_fhir_validate(defs, j, NULL, oo);
            json_decref(j);
            hub_oo_free(oo);
        }
        double c2 = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID);
        if (r >= 0) {
            cv[r] = (c1 - c0) / reps;
            cp[r] = c2 - c1;
        }
    }
    double v = bench_median(cv, runs), p = bench_median(cp, runs), l = bench_median(load, runs);
    printf("bench_fhir_validate: %zu resources (%zu invalid), %.1f MB, %d passes (median), "
           "single thread\n", n, invalid, (double)bytes / 1e6, runs);
    printf("  validate       : %10.0f res/s  %8.1f MB/s  %7.2f us/res\n", (double)n / v,
           (double)bytes / 1e6 / v, v / (double)n * 1e6);
    printf("  parse+validate : %10.0f res/s  %8.1f MB/s  %7.2f us/res\n", (double)n / p,
           (double)bytes / 1e6 / p, p / (double)n * 1e6);
    printf("  table load     : %7.2f ms (wall)\n", l * 1e3);
    for (size_t i = 0; i < n; i++) {
        json_decref(docs[i].json);
        hub_free(docs[i].text);
    }
    free(docs);
    free(cv);
    free(cp);
    free(load);
    hub_fhir_defs_free(defs);
    return 0;
}
