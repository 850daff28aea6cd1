/* hub_json_dumps: what json_dumps writes, with reals in their shortest
 * round-trip form. Checked against jansson itself on documents without
 * reals (the corpus examples, skipped when absent) and on hand-written
 * reals, escapes and indentation. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/fhir.h"
#include "hub_test.h"

static char *dumps(const char *text, size_t flags) {
    json_error_t e;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, &e);
    cr_assert_not_null(j, "fixture: %s", e.text);
    char *s = hub_json_dumps(j, flags);
    cr_assert_not_null(s);
    json_decref(j);
    return s;
}

Test(fhir_json, reals_are_shortest_round_trip) {
    static const struct { const char *in, *out; } cases[] = {
        {"[98.6]", "[98.6]"},
        {"[0.1]", "[0.1]"},
        {"[1.50]", "[1.5]"},
        {"[1.0]", "[1.0]"},
        {"[-0.0]", "[-0.0]"},
        {"[120.3,0.30000000000000004]", "[120.3,0.30000000000000004]"},
        {"[1e300]", "[1e+300]"},
        {"[5e-324]", "[4.94065645841247e-324]"},
        {"[123456789012.5]", "[123456789012.5]"},
        {"[-7]", "[-7]"},
        {"[9223372036854775807]", "[9223372036854775807]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = dumps(cases[i].in, JSON_COMPACT);
        cr_expect_str_eq(s, cases[i].out, "%s", cases[i].in);
        /* and it reads back to the same value */
        json_t *a = json_loads(cases[i].in, 0, NULL), *b = json_loads(s, 0, NULL);
        cr_expect(json_equal(a, b), "%s round trip", cases[i].in);
        json_decref(a);
        json_decref(b);
        free(s);
    }
}

Test(fhir_json, same_text_as_jansson_without_reals) {
    static const char *docs[] = {
        "{}", "[]", "{\"a\":[],\"b\":{}}", "[null,true,false,0,-1]",
        "{\"s\":\"q\\\" b\\\\ \\/ \\b\\f\\n\\r\\t \\u0001 \\u001f \\u007f\"}",
        "{\"u\":\"\\u00e9 \\u4e2d \\ud83d\\ude00\",\"z\":\"a\\u0000b\"}",
        "{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",\"B\"]}],"
        "\"active\":true,\"x\":{\"y\":[1,[2,{}],{\"k\":null}]}}",
    };
    size_t flags[] = {JSON_COMPACT, 0, JSON_INDENT(2), JSON_INDENT(4) | JSON_COMPACT};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++) {
            json_t *j = json_loads(docs[i], JSON_ALLOW_NUL, NULL);
            cr_assert_not_null(j, "fixture %zu", i);
            char *ours = hub_json_dumps(j, flags[f]);
            char *theirs = json_dumps(j, flags[f] | JSON_PRESERVE_ORDER);
            cr_expect_str_eq(ours, theirs, "doc %zu flags %zx", i, flags[f]);
            free(ours);
            free(theirs);
            json_decref(j);
        }
}

Test(fhir_json, dump_buf_appends) {
    hub_buf b;
    hub_buf_init(&b);
    hub_buf_append_cstr(&b, "x=");
    json_t *j = json_pack("{s:f}", "v", 98.6);
    cr_assert_eq(hub_json_dump_buf(j, JSON_COMPACT, &b), HUB_OK);
    cr_expect_eq(b.n, strlen("x={\"v\":98.6}"));
    cr_expect(memcmp(b.p, "x={\"v\":98.6}", b.n) == 0);
    cr_expect_eq(hub_json_dump_buf(NULL, 0, &b), HUB_E_ARG);
    json_decref(j);
    hub_buf_release(&b);
}

/* Every corpus example: reads back equal; where jansson's own text has no
 * real in it, byte-identical to jansson's. */
Test(fhir_json, corpus_examples) {
    const char *dirs[] = {HUB_SHARED_DIR "/corpus/fhir/r4-spec-examples",
                          HUB_SHARED_DIR "/corpus/fhir/us-core-examples"};
    int seen = 0, identical = 0;
    for (size_t d = 0; d < 2; d++) {
        DIR *dir = opendir(dirs[d]);
        if (dir == NULL) cr_skip_test("corpus absent: %s", dirs[d]);
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (strstr(e->d_name, ".json") == NULL) continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dirs[d], e->d_name);
            json_t *j = json_load_file(path, 0, NULL);
            if (j == NULL) continue;
            char *ours = hub_json_dumps(j, JSON_COMPACT);
            char *theirs = json_dumps(j, JSON_COMPACT);
            json_t *back = json_loads(ours, 0, NULL);
            cr_expect(json_equal(j, back), "%s round trip", e->d_name);
            if (strcmp(ours, theirs) == 0) identical++;
            seen++;
            json_decref(back);
            free(ours);
            free(theirs);
            json_decref(j);
        }
        closedir(dir);
    }
    cr_log_info("%d examples round-trip, %d byte-identical to jansson", seen,
                identical);
    cr_expect_gt(seen, 200);
    cr_expect_gt(identical, seen / 2);
}
