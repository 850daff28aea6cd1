/* libFuzzer target for JSON Patch (RFC 6902). The input is a document and
 * a patch, separated by the first NUL byte. Invariants: the answer is OK,
 * PARSE or CONFLICT (or NOMEM); a failure comes with an issue; a patch of
 * only `test` operations never changes the document; the patched document
 * still encodes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/fhir.h"

#define CHECK(c)           \
    do {                   \
        if (!(c)) abort(); \
    } while (0)

static bool only_tests(const json_t *patch) {
    size_t i;
    const json_t *o;
    json_array_foreach(patch, i, o) {
        const char *op = json_string_value(json_object_get(o, "op"));
        if (op == NULL || strcmp(op, "test") != 0) return false;
    }
    return json_is_array(patch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const uint8_t *nul = memchr(data, '\0', n);
    if (nul == NULL) return 0;
    json_error_t je;
    json_t *doc = json_loadb((const char *)data, (size_t)(nul - data), 0, &je);
    if (doc == NULL) return 0;
    json_t *patch = json_loadb((const char *)nul + 1, n - (size_t)(nul - data) - 1,
                               JSON_DECODE_ANY, &je);
    if (patch == NULL) {
        json_decref(doc);
        return 0;
    }
    json_t *before = json_deep_copy(doc);
    hub_oo *oo = hub_oo_new();
    CHECK(oo && before);
    hub_status rc = hub_json_patch(doc, patch, oo);
    CHECK(rc == HUB_OK || rc == HUB_E_PARSE || rc == HUB_E_CONFLICT || rc == HUB_E_NOMEM);
    if (rc != HUB_OK) {
        CHECK(hub_oo_count(oo, HUB_OO_ERROR) > 0);
    } else {
        if (only_tests(patch)) CHECK(json_equal(doc, before));
        char *s = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
        CHECK(s != NULL);
        free(s);
    }
    hub_oo_free(oo);
    json_decref(before);
    json_decref(doc);
    json_decref(patch);
    return 0;
}
