/* The FHIR REST API's header and parameter parsers, each bad input to its
 * exact answer. */
#include <criterion/criterion.h>
#include <string.h>

#include "../../hub/http/internal.h"

Test(fhir_parse, media_types) {
    static const struct { const char *s; int want; } cases[] = {
        {"application/fhir+json", 0}, {"application/fhir+json; charset=utf-8", 0},
        {" APPLICATION/JSON ", 0},    {"json", 0},
        {"application/fhir json", 0}, {"application/fhir+xml;fhirVersion=4.0", 1},
        {"application/xml", 1},       {"xml", 1},
        {"text/xml", 1},              {"text/plain", -1},
        {"", -1},                     {"application/fhir+jsonx", -1},
        {"text/html", -1},            {"application/json-patch+json", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(hub__fhir_media_format(cases[i].s, strlen(cases[i].s)), cases[i].want,
                     "%s", cases[i].s);
}

Test(fhir_parse, accept) {
    cr_assert_eq(hub__fhir_accept(NULL, 1), 1);
    cr_assert_eq(hub__fhir_accept("", 0), 0);
    cr_assert_eq(hub__fhir_accept("application/fhir+xml", 0), 1);
    cr_assert_eq(hub__fhir_accept("text/html, application/xml;q=0.9, */*;q=0.8", 0), 1);
    cr_assert_eq(hub__fhir_accept("text/html, */*;q=0.8", 1), 1, "a wildcard keeps the default");
    cr_assert_eq(hub__fhir_accept("application/fhir+xml;q=0, application/json", 1), 0);
    cr_assert_eq(hub__fhir_accept("text/plain", 0), -1);
    cr_assert_eq(hub__fhir_accept("text/plain, image/png", 0), -1);
    cr_assert_eq(hub__fhir_accept("application/*", 1), 1);
    cr_assert_eq(hub__fhir_accept(",,, ,", 0), -1);
}

Test(fhir_parse, etag) {
    cr_assert_eq(hub__fhir_parse_etag("W/\"3\""), 3);
    cr_assert_eq(hub__fhir_parse_etag("\"12\""), 12);
    cr_assert_eq(hub__fhir_parse_etag("7"), 7);
    cr_assert_eq(hub__fhir_parse_etag(" W/\"5\" "), 5);
    cr_assert_eq(hub__fhir_parse_etag("W/\"3a\""), -1);
    cr_assert_eq(hub__fhir_parse_etag("W/\"0\""), -1);
    cr_assert_eq(hub__fhir_parse_etag("W/\"-1\""), -1);
    cr_assert_eq(hub__fhir_parse_etag("W/\"3"), -1);
    cr_assert_eq(hub__fhir_parse_etag(""), -1);
    cr_assert_eq(hub__fhir_parse_etag("W/\"99999999999999999999999\""), -1);
}

Test(fhir_parse, http_date) {
    char out[40];
    hub__fhir_http_date(784111777000, out);
    cr_assert_str_eq(out, "Sun, 06 Nov 1994 08:49:37 GMT");
    cr_assert_eq(hub__fhir_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777000);
    cr_assert_eq(hub__fhir_parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), -1);
    cr_assert_eq(hub__fhir_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT trailing"), -1);
    cr_assert_eq(hub__fhir_parse_http_date(""), -1);
}

Test(fhir_parse, instant) {
    cr_assert_eq(hub__fhir_parse_instant("1994-11-06T08:49:37Z"), 784111777000);
    cr_assert_eq(hub__fhir_parse_instant("1994-11-06T08:49:37.250Z"), 784111777250);
    cr_assert_eq(hub__fhir_parse_instant("1994-11-06T10:49:37+02:00"), 784111777000);
    cr_assert_eq(hub__fhir_parse_instant("1994-11-06"), 784080000000);
    cr_assert_eq(hub__fhir_parse_instant("1994-11"), 783648000000);
    cr_assert_eq(hub__fhir_parse_instant("1994"), 757382400000);
    cr_assert_eq(hub__fhir_parse_instant("1994-11-06T08:49:37"), -1, "a time needs a zone");
    cr_assert_eq(hub__fhir_parse_instant("1994-13-01"), -1);
    cr_assert_eq(hub__fhir_parse_instant("1994-11-06T25:00:00Z"), -1);
    cr_assert_eq(hub__fhir_parse_instant("1994-11-06T08:49:37.Z"), -1);
    cr_assert_eq(hub__fhir_parse_instant("yesterday"), -1);
    cr_assert_eq(hub__fhir_parse_instant(""), -1);
}

Test(fhir_parse, ids) {
    cr_assert(hub__fhir_valid_id("Patient-1.a", 11));
    cr_assert_not(hub__fhir_valid_id("", 0));
    cr_assert_not(hub__fhir_valid_id("a b", 3));
    cr_assert_not(hub__fhir_valid_id("a/b", 3));
    char long_id[66];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    cr_assert(hub__fhir_valid_id(long_id, 64));
    cr_assert_not(hub__fhir_valid_id(long_id, 65));
}
