/* Fuzzes the FHIR REST API's parsers of request headers and parameters
 * (Accept, media types, ETags, HTTP dates, instants, ids). The first byte
 * picks the parser, the rest is the value. Invariants: results stay in
 * their ranges, and what a formatter writes parses back to the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../hub/http/internal.h"

static void check(int ok) {
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    if (n == 0) return 0;
    char *s = malloc(n);
    if (s == NULL) return 0;
    memcpy(s, d + 1, n - 1);
    s[n - 1] = '\0';
    switch (d[0] % 6) {
    case 0: {
        int k = hub__fhir_accept(s, 0);
        check(k >= -1 && k <= 1);
        check(hub__fhir_accept(s, 1) == k || hub__fhir_accept(s, 1) == 1);
        break;
    }
    case 1: {
        int k = hub__fhir_media_format(s, n - 1);
        check(k >= -1 && k <= 1);
        break;
    }
    case 2: {
        int64_t v = hub__fhir_parse_etag(s);
        check(v == -1 || v >= 1);
        break;
    }
    case 3: {
        int64_t t = hub__fhir_parse_http_date(s);
        if (t >= 0 && t < 253402300800000) { /* before year 10000 */
            char out[40];
            hub__fhir_http_date(t, out);
            check(hub__fhir_parse_http_date(out) == t);
        }
        break;
    }
    case 4:
        (void)hub__fhir_parse_instant(s);
        break;
    case 5: {
        bool ok = hub__fhir_valid_id(s, strlen(s));
        check(!ok || (strlen(s) >= 1 && strlen(s) <= 64));
        break;
    }
    }
    free(s);
    return 0;
}
