/* The FHIR XML benchmark: over the JSON examples of a directory (default:
 * the shared corpus's r4-spec-examples and us-core-examples), convert each
 * to XML (JSON -> XML) and the XML back (XML -> JSON), and print
 * conversions/s and MB/s each way. Single core, median of N runs, thread
 * CPU time (CLOCK_THREAD_CPUTIME_ID) so that other processes do not count.
 *
 *   bench_fhir_xml [DIR...] [--runs N] [--pretty]
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "hub/fhir.h"

#define SHARED HUB_SOURCE_DIR "/../shared/corpus/fhir"

typedef struct {
    json_t **res;
    char **xml;
    size_t *xml_n;
    size_t n, cap, json_bytes, xml_bytes;
} set;

static int load_dir(const hub_fhir_defs *d, const char *dir, bool pretty, set *s) {
    DIR *dh = opendir(dir);
    if (dh == NULL) {
        fprintf(stderr, "bench_fhir_xml: cannot open %s\n", dir);
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        char *text;
        size_t tn;
        hub_err err;
        if (hub_file_read(path, 64 << 20, &text, &tn, &err) != HUB_OK) continue;
        json_t *j = json_loadb(text, tn, JSON_REJECT_DUPLICATES, NULL);
        hub_free(text);
        if (j == NULL) continue;
        hub_buf b;
        hub_buf_init(&b);
        if (hub_fhir_json_to_xml(d, j, pretty, &b, &err) != HUB_OK) {
            fprintf(stderr, "bench_fhir_xml: skipped %s: %s\n", de->d_name, err.msg);
            json_decref(j);
            hub_buf_release(&b);
            continue;
        }
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 256;
            s->res = realloc(s->res, s->cap * sizeof *s->res);
            s->xml = realloc(s->xml, s->cap * sizeof *s->xml);
            s->xml_n = realloc(s->xml_n, s->cap * sizeof *s->xml_n);
            if (!s->res || !s->xml || !s->xml_n) return -1;
        }
        char *compact = json_dumps(j, JSON_COMPACT);
        s->json_bytes += compact ? strlen(compact) : 0;
        free(compact);
        s->res[s->n] = j;
        s->xml[s->n] = b.p;
        s->xml_n[s->n] = b.n;
        s->xml_bytes += b.n;
        s->n++;
    }
    closedir(dh);
    return 0;
}

int main(int argc, char **argv) {
    int runs = 5;
    bool pretty = false;
    const char *dirs[16];
    int nd = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--pretty") == 0) {
            pretty = true;
        } else if (argv[i][0] != '-' && nd < 16) {
            dirs[nd++] = argv[i];
        } else {
            fprintf(stderr, "usage: bench_fhir_xml [DIR...] [--runs N] [--pretty]\n");
            return 2;
        }
    }
    if (nd == 0) {
        dirs[nd++] = SHARED "/r4-spec-examples";
        dirs[nd++] = SHARED "/us-core-examples";
    }
    if (runs < 1 || runs > 99) runs = 5;

    hub_fhir_defs *d;
    hub_err err;
    if (hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &d, &err) != HUB_OK) {
        fprintf(stderr, "bench_fhir_xml: tables: %s\n", err.msg);
        return 1;
    }
    set s = {0};
    for (int i = 0; i < nd; i++)
        if (load_dir(d, dirs[i], pretty, &s) != 0) return 1;
    if (s.n == 0) {
        fprintf(stderr, "bench_fhir_xml: no examples\n");
        return 1;
    }
    /* enough rounds per run for ~0.3 s of work */
    int rounds = (int)(4000 / s.n) + 1;

    double *tj = malloc((size_t)runs * sizeof *tj), *tx = malloc((size_t)runs * sizeof *tx);
    hub_buf b;
    hub_buf_init(&b);
    size_t failed = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = bench_cpu_s();
        for (int k = 0; k < rounds; k++)
            for (size_t i = 0; i < s.n; i++) {
                b.n = 0;
                if (hub_fhir_json_to_xml(d, s.res[i], pretty, &b, &err) != HUB_OK) failed++;
            }
        double t1 = bench_cpu_s();
        for (int k = 0; k < rounds; k++)
            for (size_t i = 0; i < s.n; i++) {
                json_t *j = NULL;
                if (hub_fhir_xml_to_json(d, s.xml[i], s.xml_n[i], &j, NULL) != HUB_OK) failed++;
                json_decref(j);
            }
        double t2 = bench_cpu_s();
        tj[r] = t1 - t0;
        tx[r] = t2 - t1;
    }
    qsort(tj, (size_t)runs, sizeof *tj, bench_cmp_double);
    qsort(tx, (size_t)runs, sizeof *tx, bench_cmp_double);
    double mj = tj[runs / 2], mx = tx[runs / 2];
    double conv = (double)s.n * rounds;
    printf("examples: %zu (JSON %.1f KiB compact, XML %.1f KiB%s), %d rounds x %d runs\n", s.n,
           s.json_bytes / 1024.0, s.xml_bytes / 1024.0, pretty ? " pretty" : "", rounds, runs);
    printf("json->xml: %.0f conversions/s, %.1f MB/s of XML out (median %.3f s)\n", conv / mj,
           s.xml_bytes * (double)rounds / mj / 1e6, mj);
    printf("xml->json: %.0f conversions/s, %.1f MB/s of XML in (median %.3f s)\n", conv / mx,
           s.xml_bytes * (double)rounds / mx / 1e6, mx);
    if (failed) printf("FAILED conversions: %zu\n", failed);
    hub_buf_release(&b);
    for (size_t i = 0; i < s.n; i++) {
        json_decref(s.res[i]);
        hub_free(s.xml[i]);
    }
    free(s.res);
    free(s.xml);
    free(s.xml_n);
    free(tj);
    free(tx);
    hub_fhir_defs_free(d);
    return failed ? 1 : 0;
}
