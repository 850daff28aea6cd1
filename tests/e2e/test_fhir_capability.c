/* The CapabilityStatement at /fhir/metadata against what the server really
 * does: each listed interaction of each listed type is done once over HTTP
 * (for every type whose minimal resource {"resourceType": T} is valid; the
 * others must at least be known to the server), each system interaction
 * too, and interactions it does not list are refused. */
#include "fhir_test.h"
#include "hub_test.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define JSON_CT "Content-Type: application/fhir+json\r\n"
#define PATCH_CT "Content-Type: application/json-patch+json\r\n"

static int P(void) { return hub_test_http_port(); }

static bool listed(json_t *arr, const char *code) {
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (strcmp(json_string_value(json_object_get(v, "code")), code) == 0) return true;
    }
    return false;
}

/* Does `code` on a resource of `type` whose id is `id`; returns whether it
 * did what the specification says. `why` gets a reason otherwise. */
static bool do_interaction(const char *type, const char *id, const char *code, char *why,
                           size_t cap) {
    char path[256], body[256];
    ft_resp r;
    int st = -1, want = 200;
    if (strcmp(code, "read") == 0) {
        snprintf(path, sizeof path, "/fhir/%s/%s", type, id);
        st = ft_req(P(), "GET", path, NULL, NULL, 0, &r);
    } else if (strcmp(code, "vread") == 0) {
        snprintf(path, sizeof path, "/fhir/%s/%s/_history/1", type, id);
        st = ft_req(P(), "GET", path, NULL, NULL, 0, &r);
    } else if (strcmp(code, "update") == 0) {
        snprintf(path, sizeof path, "/fhir/%s/%s", type, id);
        snprintf(body, sizeof body, "{\"resourceType\":\"%s\",\"id\":\"%s\",\"language\":\"de\"}",
                 type, id);
        st = ft_req(P(), "PUT", path, JSON_CT, body, strlen(body), &r);
    } else if (strcmp(code, "patch") == 0) {
        snprintf(path, sizeof path, "/fhir/%s/%s", type, id);
        static const char p[] = "[{\"op\":\"add\",\"path\":\"/language\",\"value\":\"en\"}]";
        st = ft_req(P(), "PATCH", path, PATCH_CT, p, sizeof p - 1, &r);
    } else if (strcmp(code, "history-instance") == 0) {
        snprintf(path, sizeof path, "/fhir/%s/%s/_history", type, id);
        st = ft_req(P(), "GET", path, NULL, NULL, 0, &r);
    } else if (strcmp(code, "history-type") == 0) {
        snprintf(path, sizeof path, "/fhir/%s/_history", type);
        st = ft_req(P(), "GET", path, NULL, NULL, 0, &r);
    } else if (strcmp(code, "create") == 0) {
        snprintf(path, sizeof path, "/fhir/%s", type);
        snprintf(body, sizeof body, "{\"resourceType\":\"%s\"}", type);
        st = ft_req(P(), "POST", path, JSON_CT, body, strlen(body), &r);
        want = 201;
    } else if (strcmp(code, "delete") == 0) {
        snprintf(path, sizeof path, "/fhir/%s/%s", type, id);
        st = ft_req(P(), "DELETE", path, NULL, NULL, 0, &r);
        if (st == 200) want = 200;
        else want = 204;
    } else {
        snprintf(why, cap, "no test for interaction '%s'", code);
        return false;
    }
    bool ok = st == want;
    if (ok && st == 200 && r.body.n) {
        json_t *j = ft_json(&r);
        ok = j != NULL;
        json_decref(j);
    }
    if (!ok) snprintf(why, cap, "%s %s: status %d, want %d", code, path, st, want);
    ft_release(&r);
    return ok;
}

Test(fhir_capability, statement_matches_behaviour, .init = hub_test_up,
     .fini = hub_test_down, .timeout = 600) {
    ft_resp r;
    cr_assert_eq(ft_req(P(), "GET", "/fhir/metadata", NULL, NULL, 0, &r), 200);
    json_t *cs = ft_json(&r);
    ft_release(&r);
    cr_assert_not_null(cs);
    json_t *rest = json_array_get(json_object_get(cs, "rest"), 0);
    json_t *types = json_object_get(rest, "resource");
    cr_assert(json_array_size(types) > 100);
    int full = 0, known_only = 0;
    size_t i;
    json_t *t;
    json_array_foreach(types, i, t) {
        const char *type = json_string_value(json_object_get(t, "type"));
        json_t *ia = json_object_get(t, "interaction");
        cr_assert(listed(ia, "create") && listed(ia, "read"), "%s", type);
        char path[160], body[160];
        snprintf(path, sizeof path, "/fhir/%s", type);
        snprintf(body, sizeof body, "{\"resourceType\":\"%s\"}", type);
        int st = ft_req(P(), "POST", path, JSON_CT, body, strlen(body), &r);
        if (st != 201) {
            /* Required elements: the type is still known (a validation
             * answer, not 404 or 405). */
            cr_assert(st == 400 || st == 422, "%s: create of a minimal one: %d", type, st);
            ft_release(&r);
            snprintf(path, sizeof path, "/fhir/%s/no-such-id", type);
            cr_assert_eq(ft_req(P(), "GET", path, NULL, NULL, 0, &r), 404, "%s", type);
            cr_assert_str_eq(ft_issue(&r, "code"), "not-found", "%s", type);
            ft_release(&r);
            known_only++;
            continue;
        }
        json_t *c = ft_json(&r);
        ft_release(&r);
        char id[72];
        snprintf(id, sizeof id, "%s", json_string_value(json_object_get(c, "id")));
        json_decref(c);
        /* In an order where each one has something to act on; delete
         * last. */
        static const char *const order[] = {"read",  "vread",           "update",
                                            "patch", "history-instance", "history-type",
                                            "create", "delete"};
        size_t k;
        json_t *v;
        json_array_foreach(ia, k, v) {
            const char *code = json_string_value(json_object_get(v, "code"));
            bool has_test = false;
            for (size_t o = 0; o < sizeof order / sizeof order[0]; o++)
                has_test |= strcmp(order[o], code) == 0;
            cr_assert(has_test, "%s lists '%s', which this test cannot check", type, code);
        }
        for (size_t o = 0; o < sizeof order / sizeof order[0]; o++) {
            if (!listed(ia, order[o])) continue;
            char why[300];
            cr_assert(do_interaction(type, id, order[o], why, sizeof why), "%s", why);
        }
        full++;
    }
    cr_log_info("capabilities: %d types through every interaction, %d known only", full,
                known_only);
    cr_assert(full > 50, "%d", full);

    /* System interactions. */
    json_t *sys = json_object_get(rest, "interaction");
    cr_assert(listed(sys, "transaction") && listed(sys, "batch") && listed(sys, "history-system"));
    static const char tx[] =
        "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"resource\":"
        "{\"resourceType\":\"Patient\"},\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}}]}";
    cr_assert_eq(ft_req(P(), "POST", "/fhir", JSON_CT, tx, sizeof tx - 1, &r), 200, "%s",
                 r.body.p);
    ft_release(&r);
    static const char batch[] =
        "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[{\"resource\":"
        "{\"resourceType\":\"Patient\"},\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}}]}";
    cr_assert_eq(ft_req(P(), "POST", "/fhir", JSON_CT, batch, sizeof batch - 1, &r), 200);
    ft_release(&r);
    cr_assert_eq(ft_req(P(), "GET", "/fhir/_history", NULL, NULL, 0, &r), 200);
    ft_release(&r);

    /* Not listed, so refused: search (type and system). */
    json_t *pat = NULL;
    json_array_foreach(types, i, t) {
        if (strcmp(json_string_value(json_object_get(t, "type")), "Patient") == 0) pat = t;
    }
    cr_assert_not_null(pat);
    cr_assert_not(listed(json_object_get(pat, "interaction"), "search-type"));
    cr_assert_eq(ft_req(P(), "GET", "/fhir/Patient?name=x", NULL, NULL, 0, &r), 405);
    ft_release(&r);
    cr_assert_not(listed(sys, "search-system"));
    cr_assert_eq(ft_req(P(), "GET", "/fhir?_type=Patient", NULL, NULL, 0, &r), 405);
    ft_release(&r);

    /* The formats it lists are the ones it speaks. */
    json_t *fmts = json_object_get(cs, "format");
    cr_assert_eq(json_array_size(fmts), 4);
    json_t *pf = json_object_get(cs, "patchFormat");
    cr_assert_str_eq(json_string_value(json_array_get(pf, 0)), "application/json-patch+json");
    cr_assert_eq(ft_req(P(), "GET", "/fhir/metadata", "Accept: application/fhir+xml\r\n", NULL,
                        0, &r), 200);
    cr_assert(strstr(r.body.p, "<CapabilityStatement"));
    ft_release(&r);
    json_decref(cs);
}
