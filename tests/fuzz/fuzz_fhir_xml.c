/* libFuzzer target for FHIR XML <-> JSON (hub/fhir/xml.c). The input is
 * read as XML, and also as JSON when it parses as such. Invariants:
 * - XML -> JSON either gives a resource object or fails with no result and
 *   at least one error issue;
 * - what XML -> JSON gives always converts back to XML, and that XML reads
 *   again as an equal JSON value;
 * - JSON -> XML either succeeds, and then its XML reads back and writes the
 *   very same XML again, or fails and writes nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/fhir.h"

#define CHECK(c)            \
    do {                    \
        if (!(c)) abort();  \
    } while (0)

static hub_fhir_defs *defs;

static void load_defs(void) {
    if (defs) return;
    hub_err err;
    CHECK(hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &defs, &err) == HUB_OK);
}

/* XML -> JSON; on success returns the value, else checks the failure. */
static json_t *read_xml(const char *p, size_t n) {
    hub_oo *oo = hub_oo_new();
    CHECK(oo != NULL);
    json_t *j = (json_t *)&j; /* must be reset */
    hub_status rc = hub_fhir_xml_to_json(defs, p, n, &j, oo);
    if (rc == HUB_OK) {
        CHECK(json_is_object(j));
        CHECK(json_is_string(json_object_get(j, "resourceType")));
    } else {
        CHECK(j == NULL);
        CHECK(hub_oo_count(oo, HUB_OO_ERROR) >= 1);
    }
    hub_oo_free(oo);
    return rc == HUB_OK ? j : NULL;
}

static void from_json(const json_t *j, bool must) {
    hub_buf x1, x2;
    hub_buf_init(&x1);
    hub_buf_init(&x2);
    hub_err err;
    hub_status rc = hub_fhir_json_to_xml(defs, j, false, &x1, &err);
    CHECK(!must || rc == HUB_OK);
    if (rc != HUB_OK) {
        CHECK(x1.n == 0 && err.msg[0] != '\0');
    } else {
        json_t *back = read_xml(x1.p, x1.n);
        CHECK(back != NULL);
        if (must) CHECK(json_equal(back, j));
        CHECK(hub_fhir_json_to_xml(defs, back, false, &x2, &err) == HUB_OK);
        CHECK(x2.n == x1.n && memcmp(x1.p, x2.p, x1.n) == 0);
        hub_buf pretty;
        hub_buf_init(&pretty);
        CHECK(hub_fhir_json_to_xml(defs, back, true, &pretty, &err) == HUB_OK);
        json_t *again = read_xml(pretty.p, pretty.n);
        CHECK(again != NULL && json_equal(again, back));
        json_decref(again);
        hub_buf_release(&pretty);
        json_decref(back);
    }
    hub_buf_release(&x1);
    hub_buf_release(&x2);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    load_defs();
    json_t *j = read_xml((const char *)d, n);
    if (j) {
        from_json(j, true);
        json_decref(j);
    }
    json_error_t je;
    json_t *jj = json_loadb((const char *)d, n, JSON_REJECT_DUPLICATES, &je);
    if (jj) {
        from_json(jj, false);
        json_decref(jj);
    }
    return 0;
}
