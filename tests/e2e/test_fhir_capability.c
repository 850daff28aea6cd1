/* The CapabilityStatement at /fhir/metadata against what the server really
 * does: each listed interaction of each listed type is done once over HTTP
 * (for every type whose minimal resource {"resourceType": T} is valid; the
 * others must at least be known to the server), each system interaction
 * too, and interactions it does not list are refused. */
#include "fhir_test.h"
#include "hub_test.h"
#include "hub/fhir.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_CT "Content-Type: application/fhir+json\r\n"
#define PATCH_CT "Content-Type: application/json-patch+json\r\n"

static int P(void) { return hub_test_http_port(); }

/* ---- a minimal valid instance of any type, from the element table -------
 *
 * Required elements get a value of their first type; a required binding's
 * code is the first its value set lists (conformance valuesets.tsv); an
 * element left empty gets an extension, which every element may have. */
static hub_fhir_defs *defs;
static json_t *vsets; /* url -> [system, first code] */

static void load_tables(void) {
    hub_err err;
    cr_assert_eq(hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &defs, &err), HUB_OK,
                 "%s", err.msg);
    vsets = json_object();
    size_t n;
    char *t = hub_test_read_file(HUB_SOURCE_DIR "/conformance/fhir/r4/valuesets.tsv", &n);
    cr_assert_not_null(t);
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char *f[4] = {0};
        int k = 0;
        for (char *p = line; k < 4 && p; k++) {
            f[k] = p;
            p = strchr(p, '\t');
            if (p) *p++ = '\0';
        }
        if (k == 4 && f[3] && *f[3] && !json_object_get(vsets, f[0])) {
            char *tab = strchr(f[3], '\t');
            if (tab) *tab = '\0';
            json_object_set_new(vsets, f[0], json_pack("[s,s]", f[2], f[3]));
        }
    }
    hub_free(t);
}

static json_t *minimal_of(const char *key, int depth);

static json_t *extension(void) {
    return json_pack("[{s:s, s:s}]", "url", "http://example.org/x", "valueString", "x");
}

static json_t *value_of(const hub_fhir_elem *e, const char *type, int depth) {
    json_t *vs = NULL;
    if (e->binding) {
        char url[256];
        snprintf(url, sizeof url, "%s", e->binding);
        char *bar = strchr(url, '|');
        if (bar) *bar = '\0';
        vs = json_object_get(vsets, url);
    }
    const char *sys = json_string_value(json_array_get(vs, 0));
    const char *code = json_string_value(json_array_get(vs, 1));
    if (strcmp(type, "code") == 0) return json_string(code ? code : "x");
    if (strcmp(type, "Coding") == 0)
        return code ? json_pack("{s:s, s:s}", "system", sys, "code", code)
                    : json_pack("{s:s}", "code", "x");
    if (strcmp(type, "CodeableConcept") == 0)
        return code ? json_pack("{s:[{s:s, s:s}]}", "coding", "system", sys, "code", code)
                    : json_pack("{s:s}", "text", "x");
    if (strcmp(type, "boolean") == 0) return json_true();
    if (!strcmp(type, "integer") || !strcmp(type, "unsignedInt") || !strcmp(type, "positiveInt"))
        return json_integer(1);
    if (strcmp(type, "decimal") == 0) return json_real(1.5);
    if (strcmp(type, "date") == 0) return json_string("2020-01-01");
    if (!strcmp(type, "dateTime") || !strcmp(type, "instant"))
        return json_string("2020-01-01T00:00:00Z");
    if (strcmp(type, "time") == 0) return json_string("12:00:00");
    if (!strcmp(type, "uri") || !strcmp(type, "url") || !strcmp(type, "canonical"))
        return json_string("http://example.org/x");
    if (strcmp(type, "oid") == 0) return json_string("urn:oid:1.2.3");
    if (strcmp(type, "uuid") == 0) return json_string("urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0");
    if (strcmp(type, "id") == 0) return json_string("x1");
    if (strcmp(type, "base64Binary") == 0) return json_string("AAAA");
    if (strcmp(type, "xhtml") == 0)
        return json_string("<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>");
    if (hub_fhir_is_primitive(defs, type)) return json_string("x");
    if (strcmp(type, "Reference") == 0) return json_pack("{s:s}", "display", "x");
    if (strcmp(type, "Resource") == 0)
        return json_pack("{s:s, s:{s:s}}", "resourceType", "Basic", "code", "text", "x");
    const char *key = e->children_key && !e->choice ? e->children_key : type;
    if (strcmp(key, "BackboneElement") == 0 || strcmp(key, "Element") == 0) key = e->path;
    return minimal_of(key, depth + 1);
}

static json_t *minimal_of(const char *key, int depth) {
    json_t *o = json_object();
    size_t n = 0;
    const hub_fhir_elem *ch = depth < 8 ? hub_fhir_children(defs, key, &n) : NULL;
    for (size_t i = 0; i < n; i++) {
        const hub_fhir_elem *e = &ch[i];
        if (e->min < 1 || e->ntypes == 0) continue;
        const char *type = e->types[0];
        char name[128];
        if (e->choice)
            snprintf(name, sizeof name, "%s%c%s", e->name, type[0] & ~0x20, type + 1);
        else
            snprintf(name, sizeof name, "%s", e->name);
        json_t *v = value_of(e, type, depth);
        if (e->max > 1) v = json_pack("[o]", v);
        json_object_set_new(o, name, v);
    }
    if (json_object_size(o) == 0 && depth > 0) json_object_set_new(o, "extension", extension());
    return o;
}

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
static bool do_interaction(const char *type, const char *id, const char *made,
                           const char *code, char *why, size_t cap) {
    char path[256];
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
        json_t *u = json_loads(made, 0, NULL);
        json_object_set_new(u, "id", json_string(id));
        json_object_set_new(u, "language", json_string("de"));
        char *ub = json_dumps(u, JSON_COMPACT);
        json_decref(u);
        st = ft_req(P(), "PUT", path, JSON_CT, ub, strlen(ub), &r);
        free(ub);
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
    } else if (strcmp(code, "search-type") == 0) {
        /* The resource is found by its id, as a searchset match. */
        snprintf(path, sizeof path, "/fhir/%s?_id=%s", type, id);
        st = ft_req(P(), "GET", path, NULL, NULL, 0, &r);
        if (st == 200 && !strstr(r.body.p, "\"searchset\"")) st = -2;
        if (st == 200 && !strstr(r.body.p, id)) st = -3;
    } else if (strcmp(code, "create") == 0) {
        snprintf(path, sizeof path, "/fhir/%s", type);
        st = ft_req(P(), "POST", path, JSON_CT, made, strlen(made), &r);
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

/* This test sends a few thousand requests as fast as the server answers
 * them: over the default per-client rate once the server is fast enough,
 * which is not what it checks. */
static void up_unthrottled(void) {
    const char *more[] = {"--set", "http.rate_limit=10000000", "--set",
                          "http.rate_burst=10000000", NULL};
    hub_test_start(&hub_test_current, more);
}

Test(fhir_capability, statement_matches_behaviour, .init = up_unthrottled,
     .fini = hub_test_down, .timeout = 600) {
    load_tables();
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
        char *made = strdup(body);
        int st = ft_req(P(), "POST", path, JSON_CT, body, strlen(body), &r);
        if (st != 201) {
            /* Required elements: a minimal instance from the tables. */
            ft_release(&r);
            json_t *m = minimal_of(type, 0);
            json_object_set_new(m, "resourceType", json_string(type));
            if (strcmp(type, "Subscription") == 0) {
                /* the router takes only criteria and channels it can serve */
                json_object_set_new(m, "criteria", json_string("Patient"));
                json_object_set_new(m, "channel",
                                    json_pack("{s:s, s:s}", "type", "rest-hook", "endpoint",
                                              "https://subscriber.invalid/hook"));
            }
            free(made);
            made = json_dumps(m, JSON_COMPACT);
            json_decref(m);
            st = ft_req(P(), "POST", path, JSON_CT, made, strlen(made), &r);
            if (st != 201) cr_log_warn("%s: minimal %s: %d %s", type, made, st, r.body.p);
        }
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
            free(made);
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
                                            "search-type", "create", "delete"};
        size_t k;
        json_t *v;
        json_array_foreach(ia, k, v) {
            const char *code = json_string_value(json_object_get(v, "code"));
            bool has_test = false;
            for (size_t o = 0; o < sizeof order / sizeof order[0]; o++)
                has_test |= strcmp(order[o], code) == 0;
            cr_assert(has_test, "%s lists '%s', which this test cannot check", type, code);
        }
        /* Every search parameter listed for the type is accepted (under
         * strict handling: an unknown one would be a 400); their results
         * are checked against a brute-force filter in tests/search. */
        json_t *sp;
        json_array_foreach(json_object_get(t, "searchParam"), k, sp) {
            char q[256];
            snprintf(q, sizeof q, "/fhir/%s?%s:missing=false&_count=1",
                     type, json_string_value(json_object_get(sp, "name")));
            int sst = ft_req(P(), "GET", q, "Prefer: handling=strict\r\n", NULL, 0, &r);
            cr_assert_eq(sst, 200, "%s: %s", q, r.body.p);
            ft_release(&r);
        }
        for (size_t o = 0; o < sizeof order / sizeof order[0]; o++) {
            if (!listed(ia, order[o])) continue;
            char why[300];
            cr_assert(do_interaction(type, id, made, order[o], why, sizeof why), "%s", why);
        }
        free(made);
        full++;
    }
    cr_log_info("capabilities: %d types through every interaction, %d known only", full,
                known_only);
    cr_assert_eq(known_only, 0, "%d types could not be created (see the warnings)", known_only);

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

    /* Type search and system search are listed and answer. */
    json_t *pat = NULL;
    json_array_foreach(types, i, t) {
        if (strcmp(json_string_value(json_object_get(t, "type")), "Patient") == 0) pat = t;
    }
    cr_assert_not_null(pat);
    cr_assert(listed(json_object_get(pat, "interaction"), "search-type"));
    cr_assert_gt(json_array_size(json_object_get(pat, "searchParam")), 20);
    cr_assert_eq(ft_req(P(), "GET", "/fhir/Patient?name=x", NULL, NULL, 0, &r), 200);
    ft_release(&r);
    cr_assert(listed(sys, "search-system"));
    cr_assert_eq(ft_req(P(), "GET", "/fhir?_type=Patient", NULL, NULL, 0, &r), 200);
    cr_assert(strstr(r.body.p, "\"searchset\""));
    ft_release(&r);
    cr_assert_eq(ft_req(P(), "PUT", "/fhir", NULL, NULL, 0, &r), 405);
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
    json_decref(vsets);
    hub_fhir_defs_free(defs);
}
