/* FHIR XML <-> JSON: hand-written fixtures, the shared corpus round trip,
 * and every kind of bad XML with its defined answer. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hub/fhir.h"
#include "hub/limits.h"
#include "hub_test.h"

#define DEFS_DIR HUB_SOURCE_DIR "/conformance/fhir/r4"
#define CORPUS HUB_SHARED_DIR "/corpus/fhir"
#define NS " xmlns=\"http://hl7.org/fhir\""
#define XNS " xmlns=\"http://www.w3.org/1999/xhtml\""

static hub_fhir_defs *defs;

static void setup(void) {
    hub_err err = {0};
    cr_assert_eq(hub_fhir_defs_load(DEFS_DIR, &defs, &err), HUB_OK, "load: %s", err.msg);
}
static void teardown(void) { hub_fhir_defs_free(defs); }

TestSuite(fhir_xml, .init = setup, .fini = teardown);

/* ---- helpers ------------------------------------------------------------- */

static json_t *jparse(const char *s) {
    json_error_t e;
    json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, &e);
    cr_assert_not_null(j, "fixture JSON: %s (line %d)", e.text, e.line);
    return j;
}

static char *jdump(const json_t *j) { return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS); }

/* XML -> JSON must succeed and equal `expect` (JSON text). */
static json_t *x2j_ok(const char *xml) {
    hub_oo *oo = hub_oo_new();
    json_t *out = NULL;
    hub_status rc = hub_fhir_xml_to_json(defs, xml, strlen(xml), &out, oo);
    if (rc != HUB_OK) {
        json_t *o = hub_oo_json(oo);
        char *t = json_dumps(o, 0);
        cr_log_error("issues: %s", t);
        free(t);
        json_decref(o);
    }
    cr_assert_eq(rc, HUB_OK, "xml_to_json: %s", hub_status_name(rc));
    cr_assert_not_null(out);
    hub_oo_free(oo);
    return out;
}

static void assert_json_eq(const json_t *got, const char *expect) {
    json_t *e = jparse(expect);
    char *g = jdump(got), *w = jdump(e);
    cr_assert(json_equal(got, e), "got  %s\nwant %s", g, w);
    free(g);
    free(w);
    json_decref(e);
}

static void x2j_expect(const char *xml, const char *expect) {
    json_t *j = x2j_ok(xml);
    assert_json_eq(j, expect);
    json_decref(j);
}

/* JSON -> XML (compact) must succeed; returns heap text. */
static char *j2x_ok(const json_t *j, bool pretty) {
    hub_buf b;
    hub_buf_init(&b);
    hub_err err = {0};
    hub_status rc = hub_fhir_json_to_xml(defs, j, pretty, &b, &err);
    cr_assert_eq(rc, HUB_OK, "json_to_xml: %s at %s: %s", hub_status_name(rc), err.where,
                 err.msg);
    char *s = strndup(b.p, b.n);
    hub_buf_release(&b);
    return s;
}

static hub_status j2x_err(const char *json, hub_err *err) {
    json_t *j = jparse(json);
    hub_buf b;
    hub_buf_init(&b);
    hub_status rc = hub_fhir_json_to_xml(defs, j, false, &b, err);
    cr_assert_eq(b.n, 0, "nothing written on failure");
    hub_buf_release(&b);
    json_decref(j);
    return rc;
}

/* JSON -> XML -> JSON gives back an equal value. */
static void roundtrip_json(const char *json) {
    json_t *j = jparse(json);
    char *xml = j2x_ok(j, false);
    json_t *back = x2j_ok(xml);
    char *g = jdump(back), *w = jdump(j);
    cr_assert(json_equal(back, j), "xml %s\ngot  %s\nwant %s", xml, g, w);
    free(g);
    free(w);
    free(xml);
    json_decref(back);
    json_decref(j);
}

/* XML -> JSON fails with `rc`; an issue has `code` and (if given) the
 * expression. Returns nothing; asserts. */
static void x2j_fail(const char *xml, size_t n, hub_status want, const char *code,
                     const char *expr) {
    hub_oo *oo = hub_oo_new();
    json_t *out = (json_t *)1;
    hub_status rc = hub_fhir_xml_to_json(defs, xml, n, &out, oo);
    json_t *o = hub_oo_json(oo);
    char *t = json_dumps(o, 0);
    cr_assert_eq(rc, want, "want %s, got %s; issues %s", hub_status_name(want),
                 hub_status_name(rc), t);
    cr_assert_null(out, "no result on failure");
    cr_assert_geq(hub_oo_count(oo, HUB_OO_ERROR), 1, "an error issue: %s", t);
    bool found = false;
    size_t i;
    json_t *is;
    json_array_foreach(json_object_get(o, "issue"), i, is) {
        const char *c = json_string_value(json_object_get(is, "code"));
        const char *e = json_string_value(json_array_get(json_object_get(is, "expression"), 0));
        if (c && strcmp(c, code) == 0 && (expr == NULL || (e && strcmp(e, expr) == 0)))
            found = true;
    }
    cr_assert(found, "no issue code=%s expression=%s in %s", code, expr ? expr : "-", t);
    free(t);
    json_decref(o);
    hub_oo_free(oo);
}
#define X2J_FAIL(xml, rc, code, expr) x2j_fail((xml), strlen(xml), (rc), (code), (expr))

/* ---- XML -> JSON ---------------------------------------------------------- */

Test(fhir_xml, primitives_and_types) {
    x2j_expect("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<Patient" NS ">\n"
               "  <id value=\"p1\"/>\n"
               "  <active value=\"true\"/>\n"
               "  <name><family value=\"Doe\"/><given value=\"Jane\"/></name>\n"
               "  <gender value=\"female\"/>\n"
               "  <birthDate value=\"1970-03-30\"/>\n"
               "  <multipleBirthInteger value=\"2\"/>\n"
               "</Patient>\n",
               "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"active\":true,"
               "\"name\":[{\"family\":\"Doe\",\"given\":[\"Jane\"]}],"
               "\"gender\":\"female\",\"birthDate\":\"1970-03-30\","
               "\"multipleBirthInteger\":2}");
}

Test(fhir_xml, primitive_id_and_extensions) {
    x2j_expect("<Patient" NS ">"
               "<birthDate id=\"bd\" value=\"1970-03-30\">"
               "<extension url=\"http://hl7.org/fhir/StructureDefinition/patient-birthTime\">"
               "<valueDateTime value=\"1970-03-30T14:35:45-05:00\"/></extension>"
               "</birthDate>"
               "<deceasedBoolean id=\"d\"><extension url=\"http://x/absent\">"
               "<valueCode value=\"unknown\"/></extension></deceasedBoolean>"
               "</Patient>",
               "{\"resourceType\":\"Patient\",\"birthDate\":\"1970-03-30\","
               "\"_birthDate\":{\"id\":\"bd\",\"extension\":[{\"url\":"
               "\"http://hl7.org/fhir/StructureDefinition/patient-birthTime\","
               "\"valueDateTime\":\"1970-03-30T14:35:45-05:00\"}]},"
               "\"_deceasedBoolean\":{\"id\":\"d\",\"extension\":[{\"url\":\"http://x/absent\","
               "\"valueCode\":\"unknown\"}]}}");
}

Test(fhir_xml, repeating_primitives_aligned_with_nulls) {
    x2j_expect("<Patient" NS "><name>"
               "<given value=\"A\"/>"
               "<given id=\"g2\"><extension url=\"http://x/e\"><valueString value=\"v\"/>"
               "</extension></given>"
               "<given value=\"C\"/>"
               "</name></Patient>",
               "{\"resourceType\":\"Patient\",\"name\":[{"
               "\"given\":[\"A\",null,\"C\"],"
               "\"_given\":[null,{\"id\":\"g2\",\"extension\":[{\"url\":\"http://x/e\","
               "\"valueString\":\"v\"}]},null]}]}");
    /* only extensions: the value array is left out */
    x2j_expect("<Patient" NS "><name><given id=\"a\"/><given id=\"b\"/></name></Patient>",
               "{\"resourceType\":\"Patient\",\"name\":[{\"_given\":[{\"id\":\"a\"},"
               "{\"id\":\"b\"}]}]}");
}

Test(fhir_xml, choice_types) {
    x2j_expect("<Observation" NS ">"
               "<status value=\"final\"/>"
               "<code><text value=\"weight\"/></code>"
               "<effectiveDateTime value=\"2020-01-01\"/>"
               "<valueQuantity><value value=\"72.5\"/><unit value=\"kg\"/>"
               "<system value=\"http://unitsofmeasure.org\"/><code value=\"kg\"/></valueQuantity>"
               "<component><code><text value=\"a\"/></code><valueString value=\"s\"/></component>"
               "<component><code><text value=\"b\"/></code><valueBoolean value=\"false\"/>"
               "</component>"
               "</Observation>",
               "{\"resourceType\":\"Observation\",\"status\":\"final\","
               "\"code\":{\"text\":\"weight\"},\"effectiveDateTime\":\"2020-01-01\","
               "\"valueQuantity\":{\"value\":72.5,\"unit\":\"kg\","
               "\"system\":\"http://unitsofmeasure.org\",\"code\":\"kg\"},"
               "\"component\":[{\"code\":{\"text\":\"a\"},\"valueString\":\"s\"},"
               "{\"code\":{\"text\":\"b\"},\"valueBoolean\":false}]}");
}

Test(fhir_xml, contained_resources) {
    x2j_expect("<Patient" NS ">"
               "<contained><Organization><id value=\"o1\"/><name value=\"Acme\"/>"
               "</Organization></contained>"
               "<contained><Practitioner><id value=\"pr\"/></Practitioner></contained>"
               "<managingOrganization><reference value=\"#o1\"/></managingOrganization>"
               "</Patient>",
               "{\"resourceType\":\"Patient\",\"contained\":["
               "{\"resourceType\":\"Organization\",\"id\":\"o1\",\"name\":\"Acme\"},"
               "{\"resourceType\":\"Practitioner\",\"id\":\"pr\"}],"
               "\"managingOrganization\":{\"reference\":\"#o1\"}}");
}

Test(fhir_xml, bundle_and_parameters_hold_resources) {
    x2j_expect("<Bundle" NS "><type value=\"transaction\"/>"
               "<entry><fullUrl value=\"urn:uuid:1\"/>"
               "<resource><Patient><name id=\"n\"><text value=\"x\"/></name></Patient></resource>"
               "<request><method value=\"POST\"/><url value=\"Patient\"/></request></entry>"
               "<entry><resource><Bundle><type value=\"collection\"/><entry><resource>"
               "<Basic><code><text value=\"deep\"/></code></Basic></resource></entry></Bundle>"
               "</resource><request><method value=\"POST\"/><url value=\"Bundle\"/></request>"
               "</entry></Bundle>",
               "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
               "{\"fullUrl\":\"urn:uuid:1\",\"resource\":{\"resourceType\":\"Patient\","
               "\"name\":[{\"id\":\"n\",\"text\":\"x\"}]},"
               "\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
               "{\"resource\":{\"resourceType\":\"Bundle\",\"type\":\"collection\","
               "\"entry\":[{\"resource\":{\"resourceType\":\"Basic\",\"code\":{\"text\":"
               "\"deep\"}}}]},\"request\":{\"method\":\"POST\",\"url\":\"Bundle\"}}]}");
    x2j_expect("<Parameters" NS "><parameter><name value=\"p\"/>"
               "<resource><Patient><id value=\"x\"/></Patient></resource></parameter>"
               "<parameter><name value=\"n\"/><valueInteger value=\"-3\"/></parameter>"
               "</Parameters>",
               "{\"resourceType\":\"Parameters\",\"parameter\":["
               "{\"name\":\"p\",\"resource\":{\"resourceType\":\"Patient\",\"id\":\"x\"}},"
               "{\"name\":\"n\",\"valueInteger\":-3}]}");
}

Test(fhir_xml, narrative_is_the_exact_div_text) {
    const char *div = "<div" XNS " class=\"n\">\n  <p>a &lt; b &amp;&amp; c &gt; d, "
                      "&#xE9;t&#233; &quot;q&quot;</p><br/>"
                      "<table><tr><td><b>x</b><i>y<span>z</span></i></td></tr></table>"
                      "<!-- note --><img src=\"a.png\" alt='single'/></div>";
    char xml[2048];
    snprintf(xml, sizeof xml,
             "<Patient" NS "><text><status value=\"generated\"/>%s</text>"
             "<active value=\"false\"/></Patient>",
             div);
    json_t *j = x2j_ok(xml);
    const char *got = json_string_value(json_object_get(json_object_get(j, "text"), "div"));
    cr_assert_str_eq(got, div);
    cr_assert(json_is_false(json_object_get(j, "active")), "after the div, parsing goes on");
    /* and back: the same text in the XML */
    char *back = j2x_ok(j, false);
    cr_assert_not_null(strstr(back, div), "%s", back);
    free(back);
    json_decref(j);
}

/* The narrative's offsets hold where the parser has long moved its buffer
 * on (a megabyte before it, a large div). */
Test(fhir_xml, narrative_in_a_large_document) {
    hub_buf b, div;
    hub_buf_init(&b);
    hub_buf_init(&div);
    hub_buf_append_cstr(&b, "<Patient" NS "><meta>");
    for (int i = 0; i < 20000; i++)
        hub_buf_printf(&b, "<tag><code value=\"id-%d &amp; more\"/></tag>\n", i);
    hub_buf_append_cstr(&b, "</meta>");
    hub_buf_append_cstr(&div, "<div" XNS ">");
    for (int i = 0; i < 5000; i++)
        hub_buf_printf(&div, "<p class=\"c%d\">row %d &lt;&#233;&gt;</p>\n", i, i);
    hub_buf_append_cstr(&div, "</div>");
    hub_buf_append_cstr(&b, "<text><status value=\"generated\"/>");
    hub_buf_append(&b, div.p, div.n);
    hub_buf_append_cstr(&b, "</text></Patient>");
    json_t *j = NULL;
    hub_oo *oo = hub_oo_new();
    cr_assert_eq(hub_fhir_xml_to_json(defs, b.p, b.n, &j, oo), HUB_OK);
    json_t *d = json_object_get(json_object_get(j, "text"), "div");
    cr_assert_eq(json_string_length(d), div.n);
    cr_assert_eq(memcmp(json_string_value(d), div.p, div.n), 0);
    cr_assert_eq(json_array_size(json_object_get(json_object_get(j, "meta"), "tag")), 20000);
    json_decref(j);
    hub_oo_free(oo);
    hub_buf_release(&b);
    hub_buf_release(&div);
}

Test(fhir_xml, narrative_empty_cdata_and_pi) {
    x2j_expect("<Patient" NS "><text><status value=\"empty\"/><div" XNS "/></text></Patient>",
               "{\"resourceType\":\"Patient\",\"text\":{\"status\":\"empty\",\"div\":"
               "\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"/>\"}}");
    x2j_expect("<Patient" NS "><text><status value=\"generated\"/><div" XNS
               "><![CDATA[a < b]]><?pi x?></div ></text></Patient>",
               "{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":"
               "\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><![CDATA[a < b]]><?pi x?></div >\"}}");
    roundtrip_json("{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":"
                   "\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><![CDATA[a < b]]></div>\"}}");
}

Test(fhir_xml, narrative_namespace_inherited_is_declared) {
    json_t *j = x2j_ok("<Patient" NS " xmlns:h=\"http://www.w3.org/1999/xhtml\"><text>"
                       "<status value=\"generated\"/><h:div><h:p>hi</h:p></h:div></text></Patient>");
    const char *got = json_string_value(json_object_get(json_object_get(j, "text"), "div"));
    cr_assert_str_eq(got, "<h:div xmlns:h=\"http://www.w3.org/1999/xhtml\"><h:p>hi</h:p></h:div>");
    char *text = json_dumps(j, 0);
    roundtrip_json(text);
    free(text);
    json_decref(j);
}

Test(fhir_xml, decimals_keep_their_value) {
    json_t *j = x2j_ok("<Observation" NS "><status value=\"final\"/><code><text value=\"c\"/>"
                       "</code><component><code><text value=\"a\"/></code>"
                       "<valueQuantity><value value=\"1.50\"/></valueQuantity></component>"
                       "<component><code><text value=\"b\"/></code>"
                       "<valueQuantity><value value=\"1e3\"/></valueQuantity></component>"
                       "<component><code><text value=\"c\"/></code>"
                       "<valueQuantity><value value=\"100\"/></valueQuantity></component>"
                       "<component><code><text value=\"d\"/></code>"
                       "<valueQuantity><value value=\"-0.000001\"/></valueQuantity></component>"
                       "</Observation>");
    json_t *comp = json_object_get(j, "component");
    json_t *v0 = json_object_get(json_object_get(json_array_get(comp, 0), "valueQuantity"), "value");
    json_t *v1 = json_object_get(json_object_get(json_array_get(comp, 1), "valueQuantity"), "value");
    json_t *v2 = json_object_get(json_object_get(json_array_get(comp, 2), "valueQuantity"), "value");
    json_t *v3 = json_object_get(json_object_get(json_array_get(comp, 3), "valueQuantity"), "value");
    cr_assert(json_is_real(v0) && json_real_value(v0) == 1.5);
    cr_assert(json_is_real(v1) && json_real_value(v1) == 1000.0);
    cr_assert(json_is_integer(v2) && json_integer_value(v2) == 100);
    cr_assert(json_is_real(v3) && json_real_value(v3) == -0.000001);
    char *xml = j2x_ok(j, false);
    cr_assert_not_null(strstr(xml, "<value value=\"1.5\"/>"), "%s", xml);
    cr_assert_not_null(strstr(xml, "<value value=\"1000.0\"/>"), "%s", xml);
    cr_assert_not_null(strstr(xml, "<value value=\"100\"/>"), "%s", xml);
    cr_assert_not_null(strstr(xml, "<value value=\"-1e-06\"/>"), "%s", xml);
    free(xml);
    json_decref(j);
    /* JSON reals that print long keep all their digits */
    roundtrip_json("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":"
                   "\"c\"},\"valueQuantity\":{\"value\":0.1},\"component\":[{\"code\":{\"text\":"
                   "\"x\"},\"valueQuantity\":{\"value\":123456789.123456789}},{\"code\":{\"text\":"
                   "\"y\"},\"valueQuantity\":{\"value\":1e300}},{\"code\":{\"text\":\"z\"},"
                   "\"valueQuantity\":{\"value\":-0.0}}]}");
}

Test(fhir_xml, unicode_and_escapes) {
    x2j_expect("<Patient" NS "><name><family value=\"M&#252;ller &amp; S&#xF6;hne &lt;&gt;\"/>"
               "<given value=\"\xE5\xBC\xA0\xE4\xB8\x89 \xF0\x9F\x98\x80\"/>"
               "<given value=\"tab&#9;nl&#10;cr&#13;q&quot;a&apos;\"/></name></Patient>",
               "{\"resourceType\":\"Patient\",\"name\":[{\"family\":"
               "\"M\xC3\xBCller & S\xC3\xB6hne <>\",\"given\":[\"\xE5\xBC\xA0\xE4\xB8\x89 "
               "\xF0\x9F\x98\x80\",\"tab\\tnl\\ncr\\rq\\\"a'\"]}]}");
    roundtrip_json("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"a&b<c>d\\\"e'f\","
                   "\"given\":[\"tab\\there\",\"nl\\nand\\rcr\",\"\\u00e9\\u4e2d\\ud83d\\ude00\"]}]}");
}

Test(fhir_xml, bom_and_schema_location_accepted) {
    x2j_expect("\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
               "<Patient" NS " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\""
               " xsi:schemaLocation=\"http://hl7.org/fhir ../../schema/patient.xsd\">"
               "<!-- a comment --><?pi x?><id value=\"1\"/></Patient>",
               "{\"resourceType\":\"Patient\",\"id\":\"1\"}");
}

Test(fhir_xml, element_ids_are_attributes) {
    x2j_expect("<Patient" NS "><id value=\"res\"/><contact id=\"c1\"><name id=\"n1\">"
               "<family value=\"X\"/></name></contact></Patient>",
               "{\"resourceType\":\"Patient\",\"id\":\"res\",\"contact\":[{\"id\":\"c1\","
               "\"name\":{\"id\":\"n1\",\"family\":\"X\"}}]}");
}

Test(fhir_xml, recursive_content_reference) {
    roundtrip_json("{\"resourceType\":\"Questionnaire\",\"status\":\"draft\",\"item\":[{"
                   "\"linkId\":\"1\",\"type\":\"group\",\"item\":[{\"linkId\":\"1.1\","
                   "\"type\":\"group\",\"item\":[{\"linkId\":\"1.1.1\",\"type\":\"string\","
                   "\"enableWhen\":[{\"question\":\"1\",\"operator\":\"exists\","
                   "\"answerBoolean\":true}]}]}]}]}");
}

Test(fhir_xml, prefixed_fhir_namespace) {
    x2j_expect("<f:Patient xmlns:f=\"http://hl7.org/fhir\"><f:id value=\"1\"/><f:name>"
               "<f:family value=\"X\"/></f:name></f:Patient>",
               "{\"resourceType\":\"Patient\",\"id\":\"1\",\"name\":[{\"family\":\"X\"}]}");
}

/* Conversions share nothing but the read-only tables: threads at once. */
static void *convert_loop(void *arg) {
    const char *xml = arg;
    for (int i = 0; i < 200; i++) {
        json_t *j = NULL;
        if (hub_fhir_xml_to_json(defs, xml, strlen(xml), &j, NULL) != HUB_OK) return (void *)1;
        hub_buf b;
        hub_buf_init(&b);
        hub_err err;
        hub_status rc = hub_fhir_json_to_xml(defs, j, i % 2, &b, &err);
        json_decref(j);
        hub_buf_release(&b);
        if (rc != HUB_OK) return (void *)1;
    }
    return NULL;
}

Test(fhir_xml, threads) {
    const char *xml = "<Patient" NS "><text><status value=\"generated\"/><div" XNS ">x</div>"
                      "</text><name><given value=\"a\"/><given id=\"b\"/></name></Patient>";
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, convert_loop, (void *)xml);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        cr_assert_null(r, "thread %d", i);
    }
}

/* ---- JSON -> XML ----------------------------------------------------------- */

Test(fhir_xml, json_to_xml_in_definition_order) {
    json_t *j = jparse("{\"gender\":\"male\",\"name\":[{\"given\":[\"B\",\"A\"],\"family\":\"F\","
                       "\"use\":\"official\"}],\"extension\":[{\"valueString\":\"v\","
                       "\"url\":\"http://x\"}],\"id\":\"p\",\"resourceType\":\"Patient\","
                       "\"_gender\":{\"extension\":[{\"url\":\"http://y\",\"valueBoolean\":true}]},"
                       "\"meta\":{\"versionId\":\"1\"},\"contact\":[{\"id\":\"c\",\"gender\":\"other\"}]}");
    char *xml = j2x_ok(j, false);
    cr_assert_str_eq(xml,
                     "<Patient" NS "><id value=\"p\"/><meta><versionId value=\"1\"/></meta>"
                     "<extension url=\"http://x\"><valueString value=\"v\"/></extension>"
                     "<name><use value=\"official\"/><family value=\"F\"/><given value=\"B\"/>"
                     "<given value=\"A\"/></name>"
                     "<gender value=\"male\"><extension url=\"http://y\"><valueBoolean "
                     "value=\"true\"/></extension></gender>"
                     "<contact id=\"c\"><gender value=\"other\"/></contact></Patient>");
    free(xml);
    json_decref(j);
}

Test(fhir_xml, json_to_xml_pretty) {
    json_t *j = jparse("{\"resourceType\":\"Patient\",\"id\":\"p\",\"name\":[{\"family\":\"F\"}],"
               "\"text\":{\"status\":\"generated\",\"div\":\"<div xmlns=\\\"http"
               "://www.w3.org/1999/xhtml\\\">x</div>\"}}");
    char *xml = j2x_ok(j, true);
    cr_assert_str_eq(xml, "<Patient" NS ">\n"
                          "  <id value=\"p\"/>\n"
                          "  <text>\n"
                          "    <status value=\"generated\"/>\n"
                          "    <div" XNS ">x</div>\n"
                          "  </text>\n"
                          "  <name>\n"
                          "    <family value=\"F\"/>\n"
                          "  </name>\n"
                          "</Patient>\n");
    json_t *back = x2j_ok(xml);
    cr_assert(json_equal(back, j));
    json_decref(back);
    free(xml);
    json_decref(j);
}

Test(fhir_xml, json_to_xml_appends_to_buffer) {
    json_t *j = jparse("{\"resourceType\":\"Basic\",\"code\":{\"text\":\"t\"}}");
    hub_buf b;
    hub_buf_init(&b);
    hub_buf_append_cstr(&b, "prefix:");
    hub_err err = {0};
    cr_assert_eq(hub_fhir_json_to_xml(defs, j, false, &b, &err), HUB_OK);
    cr_assert_eq(b.n, strlen("prefix:<Basic" NS "><code><text value=\"t\"/></code></Basic>"));
    cr_assert_eq(memcmp(b.p, "prefix:<Basic", 13), 0);
    hub_buf_release(&b);
    json_decref(j);
}

Test(fhir_xml, json_to_xml_bad_input) {
    hub_err err = {0};
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"foo\":1}", &err), HUB_E_INVALID);
    cr_assert_str_eq(err.where, "Patient");
    cr_assert_not_null(strstr(err.msg, "'foo'"), "%s", err.msg);

    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"a\"],\"x\":1}]}",
                         &err), HUB_E_INVALID);
    cr_assert_str_eq(err.where, "Patient.name[0]");

    cr_assert_eq(j2x_err("{\"resourceType\":\"Nope\"}", &err), HUB_E_INVALID);
    cr_assert_eq(j2x_err("{\"id\":\"x\"}", &err), HUB_E_INVALID);
    cr_assert_eq(j2x_err("[1]", &err), HUB_E_INVALID);
    /* kinds */
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"active\":\"yes\"}", &err), HUB_E_INVALID);
    cr_assert_str_eq(err.where, "Patient.active");
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"gender\":1}", &err), HUB_E_INVALID);
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"name\":{\"family\":\"x\"}}", &err),
                 HUB_E_INVALID);
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"gender\":[\"male\"]}", &err),
                 HUB_E_INVALID);
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"multipleBirthInteger\":1.5}", &err),
                 HUB_E_INVALID);
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"name\":[]}", &err), HUB_E_INVALID);
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[null]}]}", &err),
                 HUB_E_INVALID);
    cr_assert_str_eq(err.where, "Patient.name[0].given[0]");
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"a\",\"b\"],"
                         "\"_given\":[null]}]}", &err), HUB_E_INVALID);
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"_name\":{}}", &err), HUB_E_INVALID);
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"_gender\":{\"value\":1}}", &err),
                 HUB_E_INVALID);
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"contained\":[{\"id\":\"x\"}]}", &err),
                 HUB_E_INVALID);
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"deceasedBoolean\":true,"
                         "\"deceasedDateTime\":\"2000\"}", &err), HUB_E_INVALID);
    cr_assert_str_eq(err.where, "Patient");
    /* characters XML 1.0 cannot carry */
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"gender\":\"a\\u0001b\"}", &err),
                 HUB_E_INVALID);
    cr_assert_eq(j2x_err("{\"resourceType\":\"Patient\",\"gender\":\"a\\uffffb\"}", &err),
                 HUB_E_INVALID);
}

Test(fhir_xml, json_to_xml_narrative_cannot_inject) {
    hub_err err = {0};
    const char *bad[] = {
        "<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">a</div><evil/>",
        "<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">a</div></text><evil>",
        "<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">a<b></div>",
        "<p xmlns=\\\"http://www.w3.org/1999/xhtml\\\">a</p>",
        "<div xmlns=\\\"http://hl7.org/fhir\\\">a</div>",
        "<?xml version=\\\"1.0\\\"?><div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">a</div>",
        "<!DOCTYPE div [<!ENTITY e \\\"x\\\">]><div>&e;</div>",
        "<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">&e;</div>",
        "<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">a</div><!-- x -->",
        " <div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">a</div>",
        "plain text",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\","
                 "\"div\":\"%s\"}}",
                 bad[i]);
        cr_assert_eq(j2x_err(json, &err), HUB_E_INVALID, "case %zu", i);
        cr_assert_str_eq(err.where, "Patient.text.div", "case %zu", i);
    }
    /* a div without the namespace gets it */
    json_t *j = jparse("{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\","
                       "\"div\":\"<div><p>x</p></div>\"}}");
    char *xml = j2x_ok(j, false);
    cr_assert_not_null(strstr(xml, "<div" XNS "><p>x</p></div>"), "%s", xml);
    free(xml);
    json_decref(j);
}

/* ---- bad XML ------------------------------------------------------------- */

Test(fhir_xml, doctype_rejected) {
    X2J_FAIL("<?xml version=\"1.0\"?><!DOCTYPE Patient><Patient" NS "/>", HUB_E_PARSE,
             "security", NULL);
    X2J_FAIL("<!DOCTYPE Patient SYSTEM \"http://example.org/x.dtd\"><Patient" NS "/>",
             HUB_E_PARSE, "security", NULL);
}

Test(fhir_xml, external_entity_rejected) {
    X2J_FAIL("<?xml version=\"1.0\"?>\n<!DOCTYPE Patient [\n"
             "<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n"
             "<Patient" NS "><id value=\"&xxe;\"/></Patient>",
             HUB_E_PARSE, "security", NULL);
    X2J_FAIL("<!DOCTYPE Patient [<!ENTITY % p SYSTEM \"http://example.org/p\"> %p;]>"
             "<Patient" NS "/>",
             HUB_E_PARSE, "security", NULL);
}

Test(fhir_xml, billion_laughs_rejected) {
    X2J_FAIL("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n"
             " <!ENTITY lol \"lol\">\n"
             " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
             " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
             " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
             " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
             " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
             " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
             " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
             " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
             " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
             "]>\n<Patient" NS "><id value=\"&lol9;\"/></Patient>",
             HUB_E_PARSE, "security", NULL);
}

Test(fhir_xml, undeclared_entity_rejected) {
    X2J_FAIL("<Patient" NS "><id value=\"&nbsp;\"/></Patient>", HUB_E_PARSE, "security", NULL);
    X2J_FAIL("<Patient" NS "><text><status value=\"generated\"/><div" XNS ">&nbsp;</div>"
             "</text></Patient>",
             HUB_E_PARSE, "security", NULL);
}

Test(fhir_xml, not_well_formed) {
    X2J_FAIL("<Patient" NS "><id value=\"1\"></Patient>", HUB_E_PARSE, "structure", NULL);
    X2J_FAIL("<Patient" NS "><id value=\"1\"/>", HUB_E_PARSE, "structure", NULL);
    X2J_FAIL("<Patient" NS "><id value=1/></Patient>", HUB_E_PARSE, "structure", NULL);
    X2J_FAIL("<Patient" NS "/><Patient" NS "/>", HUB_E_PARSE, "structure", NULL);
    X2J_FAIL("not xml at all", HUB_E_PARSE, "structure", NULL);
    X2J_FAIL("<Patient" NS "><x:id value=\"1\"/></Patient>", HUB_E_PARSE, "structure", NULL);
    X2J_FAIL("", HUB_E_PARSE, "structure", NULL);
    X2J_FAIL("<?xml version=\"1.0\"?>", HUB_E_PARSE, "structure", NULL);
    x2j_fail("<Patient" NS "><id value=\"a\0b\"/></Patient>", 40, HUB_E_PARSE, "structure",
             NULL);
}

Test(fhir_xml, not_utf8_rejected) {
    X2J_FAIL("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Patient" NS "><id value=\"\xe9\"/>"
             "</Patient>",
             HUB_E_PARSE, "structure", NULL);
    /* UTF-16LE with a BOM */
    const char u16[] = "\xFF\xFE<\0P\0/\0>\0";
    x2j_fail(u16, sizeof u16 - 1, HUB_E_PARSE, "structure", NULL);
    /* UCS-4, broken: a conversion error libxml2 reports without a parser */
    const char u32[] = "\0\0\0<\0\0\0P\0\0\0\0\0\0\0\0";
    x2j_fail(u32, sizeof u32 - 1, HUB_E_PARSE, "structure", NULL);
}

Test(fhir_xml, unknown_element_has_expression) {
    X2J_FAIL("<Patient" NS "><id value=\"1\"/><foo value=\"x\"/></Patient>", HUB_E_INVALID,
             "structure", "Patient.foo");
    X2J_FAIL("<Patient" NS "><name><given value=\"a\"/></name><name><family value=\"b\"/>"
             "<nick value=\"c\"/></name></Patient>",
             HUB_E_INVALID, "structure", "Patient.name[1].nick");
    X2J_FAIL("<Patient" NS "><birthDate value=\"2000\"><foo/></birthDate></Patient>",
             HUB_E_INVALID, "structure", "Patient.birthDate.foo");
    X2J_FAIL("<Observation" NS "><valueFoo value=\"1\"/></Observation>", HUB_E_INVALID,
             "structure", "Observation.valueFoo");
    X2J_FAIL("<Patient" NS "><contained><Organization><bogus/></Organization></contained>"
             "</Patient>",
             HUB_E_INVALID, "structure", "Patient.contained[0].bogus");
    /* elements of another namespace, and the attribute-only ones as elements */
    X2J_FAIL("<Patient" NS "><active xmlns=\"urn:other\" value=\"true\"/></Patient>",
             HUB_E_INVALID, "structure", "Patient.active");
    X2J_FAIL("<Patient" NS "><name><id value=\"x\"/></name></Patient>", HUB_E_INVALID,
             "structure", "Patient.name[0].id");
    X2J_FAIL("<Patient" NS "><extension><url value=\"x\"/></extension></Patient>",
             HUB_E_INVALID, "structure", "Patient.extension[0].url");
    /* the narrative's text must stand on its own in JSON */
    X2J_FAIL("<Patient" NS " xmlns:o=\"urn:other\"><text><status value=\"generated\"/>"
             "<div" XNS "><o:p>x</o:p></div></text></Patient>",
             HUB_E_INVALID, "structure", "Patient.text.div");
    X2J_FAIL("<Patient" NS " xmlns:o=\"urn:other\"><text><status value=\"generated\"/>"
             "<div" XNS "><p o:a=\"1\">x</p></div></text></Patient>",
             HUB_E_INVALID, "structure", "Patient.text.div");
    x2j_expect("<Patient" NS "><text><status value=\"generated\"/>"
               "<div" XNS " xmlns:o=\"urn:o\" xml:lang=\"en\"><o:p>x</o:p></div></text></Patient>",
               "{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\",\"div\":"
               "\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\" xmlns:o=\\\"urn:o\\\" "
               "xml:lang=\\\"en\\\"><o:p>x</o:p></div>\"}}");
    /* the narrative must be XHTML */
    X2J_FAIL("<Patient" NS "><text><status value=\"generated\"/><div>x</div></text></Patient>",
             HUB_E_INVALID, "structure", "Patient.text.div");
}

Test(fhir_xml, unknown_attribute_has_expression) {
    X2J_FAIL("<Patient" NS "><active value=\"true\" foo=\"1\"/></Patient>", HUB_E_INVALID,
             "structure", "Patient.active");
    X2J_FAIL("<Patient" NS " id=\"x\"/>", HUB_E_INVALID, "structure", "Patient");
    X2J_FAIL("<Patient" NS "><name use=\"official\"/></Patient>", HUB_E_INVALID, "structure",
             "Patient.name[0]");
}

Test(fhir_xml, wrong_root) {
    X2J_FAIL("<Foo" NS "/>", HUB_E_INVALID, "structure", NULL);
    X2J_FAIL("<Patient/>", HUB_E_INVALID, "structure", NULL);
    X2J_FAIL("<HumanName" NS "/>", HUB_E_INVALID, "structure", NULL);
    X2J_FAIL("<Resource" NS "/>", HUB_E_INVALID, "structure", NULL);
    X2J_FAIL("<Patient xmlns=\"http://hl7.org/fhir/\"/>", HUB_E_INVALID, "structure", NULL);
}

Test(fhir_xml, structure_errors) {
    /* text in FHIR elements */
    X2J_FAIL("<Patient" NS "><active value=\"true\">yes</active></Patient>", HUB_E_INVALID,
             "structure", "Patient.active");
    /* a single element twice; two types of one choice */
    X2J_FAIL("<Patient" NS "><gender value=\"male\"/><gender value=\"female\"/></Patient>",
             HUB_E_INVALID, "structure", "Patient.gender");
    X2J_FAIL("<Patient" NS "><deceasedBoolean value=\"true\"/><deceasedDateTime value=\"2000\"/>"
             "</Patient>",
             HUB_E_INVALID, "structure", "Patient.deceasedDateTime");
    /* definition order, and repeats side by side */
    X2J_FAIL("<Patient" NS "><gender value=\"male\"/><active value=\"true\"/></Patient>",
             HUB_E_INVALID, "structure", "Patient.active");
    X2J_FAIL("<Patient" NS "><name><given value=\"a\"/><family value=\"b\"/></name></Patient>",
             HUB_E_INVALID, "structure", "Patient.name[0].family");
    X2J_FAIL("<Patient" NS "><name><given value=\"a\"/><prefix value=\"b\"/><given value=\"c\"/>"
             "</name></Patient>",
             HUB_E_INVALID, "structure", "Patient.name[0].given");
    X2J_FAIL("<Patient" NS "><active value=\"true\"/><extension url=\"u\"><valueString "
             "value=\"x\"/></extension></Patient>",
             HUB_E_INVALID, "structure", "Patient.extension");
    /* primitives: no value and no extension; values their type refuses */
    X2J_FAIL("<Patient" NS "><active/></Patient>", HUB_E_INVALID, "required", "Patient.active");
    X2J_FAIL("<Patient" NS "><active value=\"yes\"/></Patient>", HUB_E_INVALID, "value",
             "Patient.active");
    X2J_FAIL("<Patient" NS "><multipleBirthInteger value=\"1.0\"/></Patient>", HUB_E_INVALID,
             "value", "Patient.multipleBirthInteger");
    X2J_FAIL("<Patient" NS "><multipleBirthInteger value=\"99999999999999999999\"/></Patient>",
             HUB_E_INVALID, "value", "Patient.multipleBirthInteger");
    X2J_FAIL("<Observation" NS "><valueQuantity><value value=\"1.\"/></valueQuantity>"
             "</Observation>",
             HUB_E_INVALID, "value", "Observation.valueQuantity.value");
    X2J_FAIL("<Observation" NS "><valueQuantity><value value=\"0.1234567890123456789\"/>"
             "</valueQuantity></Observation>",
             HUB_E_INVALID, "value", "Observation.valueQuantity.value");
    x2j_expect("<Observation" NS "><valueQuantity><value value=\"0.000123456789012345678\"/>"
               "</valueQuantity></Observation>",
               "{\"resourceType\":\"Observation\",\"valueQuantity\":{\"value\":"
               "0.000123456789012345678}}");
    X2J_FAIL("<Observation" NS "><valueQuantity><value value=\" 1\"/></valueQuantity>"
             "</Observation>",
             HUB_E_INVALID, "value", "Observation.valueQuantity.value");
    /* resource holders: empty, two resources, not a resource */
    X2J_FAIL("<Patient" NS "><contained/></Patient>", HUB_E_INVALID, "required",
             "Patient.contained[0]");
    X2J_FAIL("<Patient" NS "><contained><Basic/><Basic/></contained></Patient>", HUB_E_INVALID,
             "structure", "Patient.contained[0]");
    X2J_FAIL("<Patient" NS "><contained><HumanName/></contained></Patient>", HUB_E_INVALID,
             "structure", "Patient.contained[0]");
}

Test(fhir_xml, limits) {
    /* nesting over HUB_MAX_XML_DEPTH */
    hub_buf b;
    hub_buf_init(&b);
    hub_buf_append_cstr(&b, "<Questionnaire" NS ">");
    for (int i = 0; i < HUB_MAX_XML_DEPTH; i++) hub_buf_append_cstr(&b, "<item>");
    for (int i = 0; i < HUB_MAX_XML_DEPTH; i++) hub_buf_append_cstr(&b, "</item>");
    hub_buf_append_cstr(&b, "</Questionnaire>");
    x2j_fail(b.p, b.n, HUB_E_LIMIT, "too-costly", NULL);
    hub_buf_release(&b);
    /* size */
    x2j_fail("<", (size_t)HUB_MAX_HTTP_BODY + 1, HUB_E_LIMIT, "too-costly", NULL);
}

Test(fhir_xml, many_issues_reported_together) {
    hub_oo *oo = hub_oo_new();
    json_t *out = NULL;
    const char *xml = "<Patient" NS "><a/><name><b/></name><c/></Patient>";
    cr_assert_eq(hub_fhir_xml_to_json(defs, xml, strlen(xml), &out, oo), HUB_E_INVALID);
    cr_assert_eq(hub_oo_count(oo, HUB_OO_ERROR), 3);
    hub_oo_free(oo);
}

Test(fhir_xml, no_values_in_diagnostics) {
    hub_oo *oo = hub_oo_new();
    json_t *out = NULL;
    const char *xml = "<Patient" NS "><active value=\"SECRET-1\"/><multipleBirthInteger "
                      "value=\"SECRET-2\"/><name><given value=\"SECRET-3\">SECRET-4</given>"
                      "</name></Patient>";
    cr_assert_eq(hub_fhir_xml_to_json(defs, xml, strlen(xml), &out, oo), HUB_E_INVALID);
    json_t *o = hub_oo_json(oo);
    char *t = json_dumps(o, 0);
    cr_assert_null(strstr(t, "SECRET"), "%s", t);
    free(t);
    json_decref(o);
    hub_oo_free(oo);
}

/* Each allocation of ours failing in turn gives HUB_E_NOMEM (or success
 * when the failing one was not needed) and leaks nothing (ASan checks). */
Test(fhir_xml, allocation_failures) {
    const char *xml = "<Patient" NS "><text><status value=\"generated\"/><h:div xmlns:h="
                      "\"http://www.w3.org/1999/xhtml\">x</h:div></text><name><given value=\"a\"/>"
                      "<given id=\"b\"/></name></Patient>";
    json_t *good = x2j_ok(xml);
    int ok = 0, nomem = 0;
    for (long i = 1; i < 40; i++) {
        hub_oo *oo = hub_oo_new();
        json_t *out = NULL;
        hub_mem_fail_after(i);
        hub_status rc = hub_fhir_xml_to_json(defs, xml, strlen(xml), &out, oo);
        hub_mem_fail_after(0);
        cr_assert(rc == HUB_OK || rc == HUB_E_NOMEM, "%ld: %s", i, hub_status_name(rc));
        if (rc == HUB_OK) {
            cr_assert(json_equal(out, good));
            ok++;
        } else {
            cr_assert_null(out);
            nomem++;
        }
        json_decref(out);
        hub_oo_free(oo);

        hub_buf b;
        hub_buf_init(&b);
        hub_err err = {0};
        hub_mem_fail_after(i);
        rc = hub_fhir_json_to_xml(defs, good, i % 2 == 0, &b, &err);
        hub_mem_fail_after(0);
        cr_assert(rc == HUB_OK || rc == HUB_E_NOMEM, "%ld: %s", i, hub_status_name(rc));
        if (rc != HUB_OK) cr_assert_eq(b.n, 0);
        hub_buf_release(&b);
    }
    cr_assert_gt(nomem, 0);
    cr_assert_gt(ok, 0);
    json_decref(good);
}

/* ---- the shared corpus ------------------------------------------------------ */

/* Official examples that no XML can carry, each with the reason; the test
 * checks that they fail exactly so. */
static const struct {
    const char *file, *where, *msg;
} known_bad[] = {
    /* its narrative string is cut short: it ends in "<p></p>\n" with no
     * closing </div>, so it is not well-formed XHTML */
    {"plandefinition-example.json", "PlanDefinition.text.div",
     "narrative is not one well-formed XHTML div element"},
};

static int known_bad_seen;

static int roundtrip_dir(const char *dir, int *count, char *fails, size_t cap) {
    DIR *dh = opendir(dir);
    if (dh == NULL) return -1;
    struct dirent *de;
    int bad = 0;
    while ((de = readdir(dh)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        json_error_t je;
        json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
        cr_assert_not_null(j, "%s: %s", path, je.text);
        (*count)++;
        hub_buf b;
        hub_buf_init(&b);
        hub_err err = {0};
        hub_status rc = hub_fhir_json_to_xml(defs, j, (*count % 2) == 0, &b, &err);
        json_t *back = NULL;
        char why[256] = "";
        const char *expect_where = NULL, *expect_msg = NULL;
        for (size_t i = 0; i < sizeof known_bad / sizeof *known_bad; i++)
            if (strcmp(de->d_name, known_bad[i].file) == 0) {
                expect_where = known_bad[i].where;
                expect_msg = known_bad[i].msg;
            }
        if (expect_where) {
            if (rc != HUB_E_INVALID || strcmp(err.where, expect_where) != 0 ||
                strcmp(err.msg, expect_msg) != 0)
                snprintf(why, sizeof why, "known bad, but: %s %s: %s", hub_status_name(rc),
                         err.where, err.msg);
            else
                (*count)--, known_bad_seen++;
        } else if (rc != HUB_OK) {
            snprintf(why, sizeof why, "to xml: %s: %s", err.where, err.msg);
        } else {
            hub_oo *oo = hub_oo_new();
            rc = hub_fhir_xml_to_json(defs, b.p, b.n, &back, oo);
            if (rc != HUB_OK) {
                json_t *o = hub_oo_json(oo);
                char *t = json_dumps(o, JSON_COMPACT);
                snprintf(why, sizeof why, "to json: %.200s", t);
                free(t);
                json_decref(o);
            } else if (!json_equal(back, j)) {
                snprintf(why, sizeof why, "round trip differs");
            }
            hub_oo_free(oo);
        }
        if (why[0]) {
            bad++;
            size_t k = strlen(fails);
            snprintf(fails + k, cap - k, "%s: %s\n", de->d_name, why);
        }
        json_decref(back);
        json_decref(j);
        hub_buf_release(&b);
    }
    closedir(dh);
    return bad;
}

Test(fhir_xml, corpus_json_round_trip, .timeout = 120) {
    struct stat st;
    if (stat(CORPUS "/r4-spec-examples", &st) != 0)
        cr_skip_test("corpus absent at %s: skipped", CORPUS);
    static char fails[65536];
    int count = 0, bad = 0;
    bad += roundtrip_dir(CORPUS "/r4-spec-examples", &count, fails, sizeof fails);
    bad += roundtrip_dir(CORPUS "/us-core-examples", &count, fails, sizeof fails);
    fprintf(stderr,
            "fhir_xml corpus round trip: %d of %d JSON examples equal (+%d known not "
            "representable)\n",
            count - bad, count, known_bad_seen);
    cr_assert_eq(known_bad_seen, (int)(sizeof known_bad / sizeof *known_bad));
    cr_assert_geq(count, 200, "expected the corpus examples, found %d", count);
    cr_assert_eq(bad, 0, "%d of %d failed:\n%s", bad, count, fails);
}

Test(fhir_xml, corpus_ms_xml_files_parse) {
    const char *files[] = {"Patient.xml", "ObservationWithNoCode.xml",
                           "ObservationWithInvalidStatus.xml"};
    struct stat st;
    if (stat(CORPUS "/ms-fhir-server-testfiles", &st) != 0)
        cr_skip_test("corpus absent at %s: skipped", CORPUS);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[512];
        snprintf(path, sizeof path, CORPUS "/ms-fhir-server-testfiles/%s", files[i]);
        char *p;
        size_t n;
        hub_err err = {0};
        cr_assert_eq(hub_file_read(path, 1 << 24, &p, &n, &err), HUB_OK, "%s", err.msg);
        hub_oo *oo = hub_oo_new();
        json_t *j = NULL;
        hub_status rc = hub_fhir_xml_to_json(defs, p, n, &j, oo);
        cr_assert_eq(rc, HUB_OK, "%s: %s", files[i], hub_status_name(rc));
        const char *rt = json_string_value(json_object_get(j, "resourceType"));
        cr_assert(rt && strncmp(files[i], rt, strlen(rt)) == 0, "%s", files[i]);
        /* and back to XML, and again to the same JSON */
        hub_buf b;
        hub_buf_init(&b);
        cr_assert_eq(hub_fhir_json_to_xml(defs, j, true, &b, &err), HUB_OK, "%s", err.msg);
        json_t *again = NULL;
        cr_assert_eq(hub_fhir_xml_to_json(defs, b.p, b.n, &again, oo), HUB_OK);
        cr_assert(json_equal(j, again), "%s", files[i]);
        json_decref(again);
        hub_buf_release(&b);
        json_decref(j);
        hub_oo_free(oo);
        hub_free(p);
    }
}

Test(fhir_xml, corpus_ms_patient_details) {
    struct stat st;
    if (stat(CORPUS "/ms-fhir-server-testfiles/Patient.xml", &st) != 0)
        cr_skip_test("corpus absent at %s: skipped", CORPUS);
    char *p;
    size_t n;
    hub_err err = {0};
    cr_assert_eq(hub_file_read(CORPUS "/ms-fhir-server-testfiles/Patient.xml", 1 << 24, &p, &n,
                               &err), HUB_OK);
    json_t *j = x2j_ok(p);
    cr_assert(json_is_true(json_object_get(j, "active")));
    json_t *name0 = json_array_get(json_object_get(j, "name"), 0);
    cr_assert_eq(json_array_size(json_object_get(name0, "given")), 2);
    const char *div = json_string_value(json_object_get(json_object_get(j, "text"), "div"));
    cr_assert(div && strncmp(div, "<div xmlns=\"http://www.w3.org/1999/xhtml\">", 42) == 0);
    cr_assert_not_null(strstr(div, "(&quot;Jim&quot;)"), "entities kept as written");
    json_decref(j);
    hub_free(p);
}
