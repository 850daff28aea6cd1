/* Index extraction: what a resource contributes to the token table. This is
 * the seam search will widen to every search parameter (driven by the
 * SearchParameter table); the writer only ever sees the rows. */
#include "internal.h"

#include <string.h>

static bool add(hub_store_token *out, size_t max, size_t *n, const char *param,
                const char *system, const char *value) {
    if (*n < max) {
        out[*n].param = param;
        out[*n].system = system ? system : "";
        out[*n].value = value;
    }
    (*n)++;
    return true;
}

size_t hub__record_index(const char *type, const json_t *res,
                         hub_store_token *out, size_t max) {
    (void)type;
    size_t n = 0;
    const json_t *ids = json_object_get(res, "identifier");
    if (json_is_object(ids)) {
        /* A few resources (e.g. Bundle, QuestionnaireResponse) have a
         * single identifier. */
        const json_t *v = json_object_get(ids, "value");
        if (json_is_string(v))
            add(out, max, &n, "identifier",
                json_string_value(json_object_get(ids, "system")),
                json_string_value(v));
        return n;
    }
    size_t i;
    const json_t *it;
    json_array_foreach(ids, i, it) {
        const json_t *v = json_object_get(it, "value");
        if (!json_is_string(v)) continue;
        const json_t *sys = json_object_get(it, "system");
        add(out, max, &n, "identifier",
            json_is_string(sys) ? json_string_value(sys) : "",
            json_string_value(v));
    }
    return n;
}
