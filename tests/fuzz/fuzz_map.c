/* libFuzzer target for the mapping interpreter over the shipped tables:
 * any message that parses maps to a Bundle or fails with a located error,
 * never crashes, leaks or reads out of bounds. Invariants: a Bundle is a
 * transaction whose every entry has a fullUrl, a resource and a PUT; a
 * failure names where; the explain text is one line per element; the
 * Bundle's text form (HUB_MAP_OUT_TEXT) is hub_json_dumps's text of its
 * jansson form. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/fhir.h"
#include "hub/map.h"

#define CHECK(c)            \
    do {                    \
        if (!(c)) abort();  \
    } while (0)

static hub_map *g_map;

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    if (g_map == NULL) {
        hub_map_cfg c = {.dir = HUB_SOURCE_DIR "/mappings"};
        if (hub_map_load(&c, &g_map, NULL) != HUB_OK) abort();
    }
    hub_arena a;
    hub_arena_init(&a, 8192);
    hub_v2_msg *m = NULL;
    if (hub_v2_parse(&a, (const char *)d, n, NULL, &m, NULL) == HUB_OK) {
        for (int explain = 0; explain < 2; explain++) {
            hub_map_opts o = {.explain = explain != 0, .now_ms = 1,
                              .out = HUB_MAP_OUT_JANSSON | HUB_MAP_OUT_TEXT};
            hub_map_result r;
            hub_err err;
            hub_err_clear(&err);
            hub_status rc = hub_map_message(g_map, m, &o, &r, &err);
            if (rc == HUB_OK) {
                CHECK(json_is_object(r.bundle));
                json_t *e = json_object_get(r.bundle, "entry");
                CHECK(json_array_size(e) == r.nresources);
                for (size_t i = 0; i < json_array_size(e); i++) {
                    json_t *en = json_array_get(e, i);
                    CHECK(json_is_string(json_object_get(en, "fullUrl")));
                    CHECK(json_is_object(json_object_get(en, "resource")));
                    CHECK(strcmp(json_string_value(json_object_get(
                                     json_object_get(en, "request"), "method")),
                                 "PUT") == 0);
                }
                if (explain && r.explain.n) CHECK(r.explain.p[r.explain.n - 1] == '\n');
                char *js = hub_json_dumps(r.bundle, JSON_COMPACT);
                CHECK(js && strlen(js) == r.json.n && memcmp(js, r.json.p, r.json.n) == 0);
                free(js);
            } else {
                CHECK(err.where[0] != '\0');
                CHECK(r.bundle == NULL && r.json.n == 0);
            }
            hub_map_result_release(&r);
        }
    }
    hub_arena_release(&a);
    return 0;
}
