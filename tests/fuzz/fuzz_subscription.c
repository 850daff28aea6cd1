/* libFuzzer target for checking a Subscription (hub_route_sub_parse): the
 * input is a JSON resource. Invariants: HUB_OK gives a definition whose
 * strings are set and bounded (endpoint of the channel's scheme, headers
 * "Name: value", a known payload), anything else is HUB_E_INVALID /
 * HUB_E_LIMIT with the element named in err.where; both with and without
 * the http:// allowance. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/route.h"

#define CHECK(c)           \
    do {                   \
        if (!(c)) abort(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
    for (int allow = 0; allow < 2; allow++) {
        hub_arena a;
        hub_arena_init(&a, 1024);
        hub_route_sub_def def;
        hub_err err;
        hub_err_clear(&err);
        hub_status rc = hub_route_sub_parse((const char *)d, n, allow != 0, &a, &def, &err);
        if (rc == HUB_OK) {
            CHECK(def.criteria && def.type && def.endpoint);
            CHECK(def.query || def.topic);
            CHECK(def.status <= HUB_RSUB_OFF && def.payload <= HUB_RPAY_V2);
            if (def.chan == HUB_RCHAN_REST) {
                CHECK(strncmp(def.endpoint, "https://", 8) == 0 ||
                      (allow && strncmp(def.endpoint, "http://", 7) == 0));
            } else {
                CHECK(def.port >= 1 && def.port <= 65535 && def.host[0]);
            }
            for (size_t i = 0; i < def.nheaders; i++)
                CHECK(strchr(def.headers[i], ':') && !strchr(def.headers[i], '\r') &&
                      !strchr(def.headers[i], '\n'));
            CHECK(def.nheaders <= 16 && def.nfilters <= 16);
        } else {
            CHECK(rc == HUB_E_INVALID || rc == HUB_E_LIMIT || rc == HUB_E_NOMEM);
            CHECK(strncmp(err.where, "Subscription", 12) == 0 || rc == HUB_E_NOMEM);
        }
        hub_arena_release(&a);
    }
    return 0;
}
