/* JSON Patch (RFC 6902): the behaviours of the RFC's appendix A, written
 * as our own cases, and malformed patches. */

#include "hub/fhir.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static json_t *J(const char *s) {
    json_error_t je;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &je);
    cr_assert_not_null(j, "bad test JSON '%s': %s", s, je.text);
    return j;
}

typedef struct {
    const char *name, *doc, *patch, *want; /* want NULL: an error */
    hub_status rc;
} pcase;

static void run(const pcase *c) {
    json_t *doc = J(c->doc), *patch = J(c->patch);
    hub_oo *oo = hub_oo_new();
    hub_status rc = hub_json_patch(doc, patch, oo);
    cr_assert_eq(rc, c->rc, "%s: rc %d", c->name, rc);
    if (c->want) {
        json_t *want = J(c->want);
        char *got = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        cr_assert(json_equal(doc, want), "%s: got %s", c->name, got);
        free(got);
        json_decref(want);
        cr_assert_eq(hub_oo_count(oo, HUB_OO_ERROR), 0);
    } else {
        cr_assert_gt(hub_oo_count(oo, HUB_OO_ERROR), 0, "%s: an issue", c->name);
    }
    hub_oo_free(oo);
    json_decref(doc);
    json_decref(patch);
}

Test(patch, rfc6902_operations) {
    static const pcase cases[] = {
        {"add a member", "{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/b\",\"value\":2}]",
         "{\"a\":1,\"b\":2}", HUB_OK},
        {"add into an array", "{\"l\":[\"x\",\"z\"]}",
         "[{\"op\":\"add\",\"path\":\"/l/1\",\"value\":\"y\"}]", "{\"l\":[\"x\",\"y\",\"z\"]}", HUB_OK},
        {"add at the end with -", "{\"l\":[1]}", "[{\"op\":\"add\",\"path\":\"/l/-\",\"value\":[2]}]",
         "{\"l\":[1,[2]]}", HUB_OK},
        {"add at index == size", "{\"l\":[1]}", "[{\"op\":\"add\",\"path\":\"/l/1\",\"value\":2}]",
         "{\"l\":[1,2]}", HUB_OK},
        {"add replaces an existing member", "{\"a\":1}",
         "[{\"op\":\"add\",\"path\":\"/a\",\"value\":{\"n\":true}}]", "{\"a\":{\"n\":true}}", HUB_OK},
        {"add a nested object", "{\"a\":{}}", "[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":{\"c\":[1]}}]",
         "{\"a\":{\"b\":{\"c\":[1]}}}", HUB_OK},
        {"remove a member", "{\"a\":1,\"b\":2}", "[{\"op\":\"remove\",\"path\":\"/b\"}]",
         "{\"a\":1}", HUB_OK},
        {"remove an array element", "{\"l\":[1,2,3]}", "[{\"op\":\"remove\",\"path\":\"/l/1\"}]",
         "{\"l\":[1,3]}", HUB_OK},
        {"replace a value", "{\"a\":1,\"b\":2}", "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":9}]",
         "{\"a\":9,\"b\":2}", HUB_OK},
        {"replace the root", "{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":{\"b\":2}}]",
         "{\"b\":2}", HUB_OK},
        {"move a value", "{\"a\":{\"x\":1},\"b\":{}}",
         "[{\"op\":\"move\",\"from\":\"/a/x\",\"path\":\"/b/y\"}]", "{\"a\":{},\"b\":{\"y\":1}}", HUB_OK},
        {"move an array element", "{\"l\":[1,2,3,4]}",
         "[{\"op\":\"move\",\"from\":\"/l/1\",\"path\":\"/l/3\"}]", "{\"l\":[1,3,4,2]}", HUB_OK},
        {"copy a value", "{\"a\":[1]}", "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/b\"}]",
         "{\"a\":[1],\"b\":[1]}", HUB_OK},
        {"test passes", "{\"a\":[1,{\"b\":\"c\"}]}",
         "[{\"op\":\"test\",\"path\":\"/a\",\"value\":[1,{\"b\":\"c\"}]}]", "{\"a\":[1,{\"b\":\"c\"}]}", HUB_OK},
        {"test with member order ignored", "{\"a\":{\"x\":1,\"y\":2}}",
         "[{\"op\":\"test\",\"path\":\"/a\",\"value\":{\"y\":2,\"x\":1}}]", "{\"a\":{\"x\":1,\"y\":2}}", HUB_OK},
        {"escapes ~1 and ~0", "{\"a/b\":1,\"m~n\":2}",
         "[{\"op\":\"test\",\"path\":\"/a~1b\",\"value\":1},{\"op\":\"test\",\"path\":\"/m~0n\",\"value\":2},"
         "{\"op\":\"remove\",\"path\":\"/m~0n\"}]", "{\"a/b\":1}", HUB_OK},
        {"~01 is ~1, not /", "{\"~1\":1}", "[{\"op\":\"remove\",\"path\":\"/~01\"}]", "{}", HUB_OK},
        {"empty key", "{\"\":1}", "[{\"op\":\"replace\",\"path\":\"/\",\"value\":2}]", "{\"\":2}", HUB_OK},
        {"value null", "{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/b\",\"value\":null}]",
         "{\"a\":1,\"b\":null}", HUB_OK},
        {"extra members ignored", "{}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":1,\"x\":\"y\"}]",
         "{\"a\":1}", HUB_OK},
        {"empty patch", "{\"a\":1}", "[]", "{\"a\":1}", HUB_OK},
        {"numbers compare by value", "{\"a\":1}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":1.0}]",
         "{\"a\":1}", HUB_OK},
        {"move to itself", "{\"a\":1}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a\"}]", "{\"a\":1}", HUB_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run(&cases[i]);
}

Test(patch, errors) {
    static const pcase cases[] = {
        {"test fails", "{\"a\":\"x\"}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":\"y\"}]", NULL, HUB_E_CONFLICT},
        {"test string vs number", "{\"a\":\"1\"}", "[{\"op\":\"test\",\"path\":\"/a\",\"value\":1}]", NULL, HUB_E_CONFLICT},
        {"remove missing", "{}", "[{\"op\":\"remove\",\"path\":\"/a\"}]", NULL, HUB_E_CONFLICT},
        {"replace missing", "{}", "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":1}]", NULL, HUB_E_CONFLICT},
        {"add to a missing parent", "{}", "[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":1}]", NULL, HUB_E_CONFLICT},
        {"add past the end", "{\"l\":[1]}", "[{\"op\":\"add\",\"path\":\"/l/3\",\"value\":1}]", NULL, HUB_E_CONFLICT},
        {"leading zero index", "{\"l\":[1,2]}", "[{\"op\":\"remove\",\"path\":\"/l/01\"}]", NULL, HUB_E_CONFLICT},
        {"- on remove", "{\"l\":[1]}", "[{\"op\":\"remove\",\"path\":\"/l/-\"}]", NULL, HUB_E_CONFLICT},
        {"index into a scalar", "{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/a/0\",\"value\":1}]", NULL, HUB_E_CONFLICT},
        {"move into own child", "{\"a\":{\"b\":{}}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a/b/c\"}]",
         NULL, HUB_E_CONFLICT},
        {"copy from missing", "{}", "[{\"op\":\"copy\",\"from\":\"/x\",\"path\":\"/y\"}]", NULL, HUB_E_CONFLICT},
        {"root must stay an object", "{}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":[1]}]", NULL, HUB_E_CONFLICT},
        {"remove the root", "{}", "[{\"op\":\"remove\",\"path\":\"\"}]", NULL, HUB_E_CONFLICT},
        {"not an array", "{}", "{\"op\":\"add\",\"path\":\"/a\",\"value\":1}", NULL, HUB_E_PARSE},
        {"op not an object", "{}", "[1]", NULL, HUB_E_PARSE},
        {"missing op", "{}", "[{\"path\":\"/a\",\"value\":1}]", NULL, HUB_E_PARSE},
        {"op not a string", "{}", "[{\"op\":1,\"path\":\"/a\"}]", NULL, HUB_E_PARSE},
        {"unknown op", "{}", "[{\"op\":\"merge\",\"path\":\"/a\",\"value\":1}]", NULL, HUB_E_PARSE},
        {"missing path", "{}", "[{\"op\":\"add\",\"value\":1}]", NULL, HUB_E_PARSE},
        {"missing value", "{}", "[{\"op\":\"add\",\"path\":\"/a\"}]", NULL, HUB_E_PARSE},
        {"missing from", "{}", "[{\"op\":\"move\",\"path\":\"/a\"}]", NULL, HUB_E_PARSE},
        {"path without /", "{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"a\"}]", NULL, HUB_E_PARSE},
        {"bad escape", "{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/~2\"}]", NULL, HUB_E_PARSE},
        {"dangling ~", "{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/a~\"}]", NULL, HUB_E_PARSE},
        {"from without /", "{\"a\":1}", "[{\"op\":\"copy\",\"from\":\"a\",\"path\":\"/b\"}]", NULL, HUB_E_PARSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run(&cases[i]);
}

Test(patch, ops_apply_in_order_and_stop_at_the_first_failure) {
    json_t *doc = J("{\"a\":1}");
    json_t *p = J("[{\"op\":\"add\",\"path\":\"/b\",\"value\":2},"
                  "{\"op\":\"test\",\"path\":\"/b\",\"value\":2},"
                  "{\"op\":\"remove\",\"path\":\"/zz\"},"
                  "{\"op\":\"add\",\"path\":\"/c\",\"value\":3}]");
    hub_oo *oo = hub_oo_new();
    cr_assert_eq(hub_json_patch(doc, p, oo), HUB_E_CONFLICT);
    cr_assert_not_null(json_object_get(doc, "b"), "earlier ops applied (callers patch a copy)");
    cr_assert_null(json_object_get(doc, "c"), "later ops not applied");
    json_t *oj = hub_oo_json(oo);
    char *s = json_dumps(oj, 0);
    cr_assert(strstr(s, "patch operation 2"), "%s", s);
    free(s);
    json_decref(oj);
    hub_oo_free(oo);
    json_decref(doc);
    json_decref(p);
}

Test(patch, added_values_are_copies) {
    json_t *doc = J("{}");
    json_t *p = J("[{\"op\":\"add\",\"path\":\"/a\",\"value\":{\"x\":1}}]");
    cr_assert_eq(hub_json_patch(doc, p, NULL), HUB_OK);
    json_object_set_new(json_object_get(doc, "a"), "x", json_integer(2));
    const json_t *pv = json_object_get(json_array_get(p, 0), "value");
    cr_assert_eq(json_integer_value(json_object_get(pv, "x")), 1, "the patch is not changed");
    json_decref(doc);
    json_decref(p);
}
