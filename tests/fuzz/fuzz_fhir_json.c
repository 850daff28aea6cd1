/* libFuzzer target for FHIR JSON: hub_fhir_parse_json, then the validator
 * (strict and lenient), then the OperationOutcome. Invariants: parse either
 * gives an object or adds an issue; validation's answer agrees with the
 * error count of its outcome; lenient never finds more errors than strict;
 * every issue has a severity, a code and a diagnostic. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/fhir.h"

#define CHECK(c)           \
    do {                   \
        if (!(c)) abort(); \
    } while (0)

static hub_fhir_defs *defs;

static void check_oo(const hub_oo *oo) {
    json_t *j = hub_oo_json(oo);
    CHECK(j != NULL);
    size_t i;
    json_t *is;
    CHECK(json_array_size(json_object_get(j, "issue")) > 0);
    json_array_foreach(json_object_get(j, "issue"), i, is) {
        CHECK(json_is_string(json_object_get(is, "severity")));
        CHECK(json_is_string(json_object_get(is, "code")));
        const json_t *d = json_object_get(is, "diagnostics");
        CHECK(json_is_string(d) && json_string_length(d) > 0);
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (!defs) CHECK(hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &defs,
                                        NULL) == HUB_OK);
    hub_oo *oo = hub_oo_new();
    CHECK(oo != NULL);
    json_t *res = NULL;
    hub_status rc = hub_fhir_parse_json((const char *)data, n, &res, oo);
    if (rc != HUB_OK) {
        CHECK(res == NULL);
        CHECK(hub_oo_count(oo, HUB_OO_ERROR) > 0);
        check_oo(oo);
        hub_oo_free(oo);
        return 0;
    }
    CHECK(json_is_object(res));
    rc = hub_fhir_validate(defs, res, NULL, oo);
    size_t strict = hub_oo_count(oo, HUB_OO_ERROR);
    CHECK((rc == HUB_OK) == (strict == 0));
    CHECK(rc == HUB_OK || rc == HUB_E_INVALID);
    check_oo(oo);
    hub_oo *lo = hub_oo_new();
    hub_fhir_validate_opts lenient = {.lenient = true};
    rc = hub_fhir_validate(defs, res, &lenient, lo);
    CHECK(hub_oo_count(lo, HUB_OO_ERROR) <= strict);
    CHECK((rc == HUB_OK) == (hub_oo_count(lo, HUB_OO_ERROR) == 0));
    check_oo(lo);
    hub_oo_free(lo);
    hub_oo_free(oo);
    json_decref(res);
    return 0;
}
