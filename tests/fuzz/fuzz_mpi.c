/* libFuzzer target for the patient index's reading of outside input: a
 * Patient (any JSON a client or the v2 mapping sends) turned into match
 * features, their stored text form, comparisons, scores and blocking keys;
 * and the name functions on raw bytes. Invariants: features encode and
 * decode to themselves; a record compares exactly with itself on every
 * field it has (a postal code alone: partly); scores are finite; keys are NUL-terminated and in bounds;
 * NYSIIS codes are at most 8 lower-case letters; Jaro-Winkler is in [0, 1]
 * and symmetric; a fingerprint's bound is never below the score of the
 * pair it bounds (the record with itself, and with its first `contained`
 * resource read as a second Patient). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/mpi.h"

#define CHECK(c)           \
    do {                   \
        if (!(c)) abort(); \
    } while (0)

static void names(const uint8_t *d, size_t n) {
    char a[128], b[128], na[64], nb[64], code[16];
    size_t h = n / 2;
    size_t la = h < sizeof a - 1 ? h : sizeof a - 1, lb = n - h < sizeof b - 1 ? n - h : sizeof b - 1;
    memcpy(a, d, la);
    a[la] = '\0';
    memcpy(b, d + h, lb);
    b[lb] = '\0';
    hub_mpi_norm_name(a, na, sizeof na);
    hub_mpi_norm_name(b, nb, sizeof nb);
    hub_mpi_nysiis(na, code, sizeof code);
    CHECK(strlen(code) <= 8);
    for (const char *c = code; *c; c++) CHECK(*c >= 'a' && *c <= 'z');
    double x = hub_mpi_jaro_winkler(na, nb), y = hub_mpi_jaro_winkler(nb, na);
    CHECK(x >= 0.0 && x <= 1.0 + 1e-9);
    CHECK(fabs(x - y) < 1e-9);
    (void)hub_mpi_nickname(na, nb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    names(data, n);
    json_error_t je;
    json_t *p = json_loadb((const char *)data, n, 0, &je);
    if (p == NULL) return 0;
    hub_mpi_feat f, g;
    hub_mpi_feat_of(p, &f);
    char text[HUB_MPI_FEAT_TEXT];
    hub_mpi_feat_encode(&f, text);
    hub_mpi_feat_decode(text, &g);
    /* a tab cannot appear in a feature (normalization drops it) */
    CHECK(memcmp(&f, &g, sizeof f) == 0);
    int8_t lv[HUB_MPI__F_COUNT];
    hub_mpi_compare(&f, &f, lv);
    /* (an address of a postal code alone agrees only partly, even with itself) */
    for (int i = 0; i < HUB_MPI__F_COUNT; i++)
        CHECK(lv[i] == HUB_MPI_MISSING || lv[i] == HUB_MPI_EXACT ||
              (i == HUB_MPI_F_ADDRESS && lv[i] == HUB_MPI_PARTIAL));
    hub_mpi_weights w;
    hub_mpi_weights_default(&w);
    double c[HUB_MPI__F_COUNT];
    CHECK(isfinite(hub_mpi_score(&w, lv, c)));
    hub_mpi_feat o;
    hub_mpi_feat_of(json_array_get(json_object_get(p, "contained"), 0), &o);
    const hub_mpi_feat *pairs[3][2] = {{&f, &f}, {&f, &o}, {&o, &f}};
    for (int i = 0; i < 3; i++) {
        hub_mpi_compare(pairs[i][0], pairs[i][1], lv);
        uint64_t fp = hub_mpi_fingerprint(pairs[i][1], "X^ONE");
        CHECK(fp != 0);
        CHECK(hub_mpi_bound(&w, pairs[i][0], fp) >= hub_mpi_score(&w, lv, NULL));
    }
    char keys[12][96];
    size_t k = hub_mpi_block_keys(&f, keys, 12);
    CHECK(k <= 12);
    for (size_t i = 0; i < k; i++) CHECK(memchr(keys[i], '\0', 96) != NULL);
    json_decref(p);
    return 0;
}
