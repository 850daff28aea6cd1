/* The FHIR element tables: facts of R4 as the loader gives them back. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "hub/fhir.h"
#include "hub_test.h"

#define DEFS_DIR HUB_SOURCE_DIR "/conformance/fhir/r4"

static hub_fhir_defs *defs;

static void setup(void) {
    hub_err err = {0};
    hub_status rc = hub_fhir_defs_load(DEFS_DIR, &defs, &err);
    cr_assert_eq(rc, HUB_OK, "load: %s", err.msg);
}
static void teardown(void) { hub_fhir_defs_free(defs); }

TestSuite(fhir_defs, .init = setup, .fini = teardown);

Test(fhir_defs, version_and_resources) {
    cr_assert_str_eq(hub_fhir_defs_version(defs), "4.0.1");
    size_t n = hub_fhir_resource_count(defs);
    cr_assert_eq(n, 146, "R4 has 146 resource types, got %zu", n);
    for (size_t i = 1; i < n; i++)
        cr_assert(strcmp(hub_fhir_resource_name(defs, i - 1),
                         hub_fhir_resource_name(defs, i)) < 0);
    cr_assert_str_eq(hub_fhir_resource_name(defs, 0), "Account");
    cr_assert_null(hub_fhir_resource_name(defs, n));
    cr_assert(hub_fhir_is_resource(defs, "Patient"));
    cr_assert(hub_fhir_is_resource(defs, "Parameters"));
    cr_assert(hub_fhir_is_resource(defs, "Bundle"));
    cr_assert(!hub_fhir_is_resource(defs, "DomainResource"), "abstract");
    cr_assert(!hub_fhir_is_resource(defs, "Resource"), "abstract");
    cr_assert(!hub_fhir_is_resource(defs, "HumanName"));
    cr_assert(!hub_fhir_is_resource(defs, "patient"));
    cr_assert(!hub_fhir_is_resource(defs, "SubscriptionStatus"), "R4B, not R4");
    cr_assert(!hub_fhir_is_resource(defs, ""));
}

Test(fhir_defs, primitives) {
    static const char *const prims[] = {
        "boolean", "integer", "string", "decimal", "uri", "url", "canonical",
        "base64Binary", "instant", "date", "dateTime", "time", "code", "oid",
        "id", "markdown", "unsignedInt", "positiveInt", "uuid", "xhtml"};
    for (size_t i = 0; i < sizeof prims / sizeof prims[0]; i++)
        cr_assert(hub_fhir_is_primitive(defs, prims[i]), "%s", prims[i]);
    cr_assert(!hub_fhir_is_primitive(defs, "Quantity"));
    cr_assert(!hub_fhir_is_primitive(defs, "Patient"));
    cr_assert(!hub_fhir_is_primitive(defs, "String"));
    cr_assert_eq(hub_fhir_type_json(defs, "integer"), HUB_FHIR_JSON_NUMBER);
    cr_assert_eq(hub_fhir_type_json(defs, "positiveInt"), HUB_FHIR_JSON_NUMBER);
    cr_assert_eq(hub_fhir_type_json(defs, "unsignedInt"), HUB_FHIR_JSON_NUMBER);
    cr_assert_eq(hub_fhir_type_json(defs, "decimal"), HUB_FHIR_JSON_NUMBER);
    cr_assert_eq(hub_fhir_type_json(defs, "boolean"), HUB_FHIR_JSON_BOOLEAN);
    cr_assert_eq(hub_fhir_type_json(defs, "dateTime"), HUB_FHIR_JSON_STRING);
    cr_assert_eq(hub_fhir_type_json(defs, "xhtml"), HUB_FHIR_JSON_STRING);
    cr_assert_eq(hub_fhir_type_json(defs, "HumanName"), HUB_FHIR_JSON_OBJECT);
    cr_assert_eq(hub_fhir_type_json(defs, "Nope"), HUB_FHIR_JSON_NONE);
}

Test(fhir_defs, observation_value_choice) {
    const char *type = NULL;
    const hub_fhir_elem *e = hub_fhir_child(defs, "Observation", "valueQuantity", &type);
    cr_assert_not_null(e);
    cr_assert_str_eq(e->path, "Observation.value[x]");
    cr_assert_str_eq(e->name, "value");
    cr_assert(e->choice);
    cr_assert_str_eq(type, "Quantity");
    cr_assert_eq(e->min, 0);
    cr_assert_eq(e->max, 1);
    cr_assert_eq(e->ntypes, 11);
    static const char *const want[] = {"Quantity", "CodeableConcept", "string",
                                       "boolean", "integer", "Range", "Ratio",
                                       "SampledData", "time", "dateTime", "Period"};
    for (size_t i = 0; i < 11; i++) cr_assert_str_eq(e->types[i], want[i]);
    cr_assert_null(e->children_key);
    cr_assert(e->summary);

    cr_assert_eq(hub_fhir_child(defs, "Observation", "valueString", &type), e);
    cr_assert_str_eq(type, "string");
    cr_assert_eq(hub_fhir_child(defs, "Observation", "valueDateTime", &type), e);
    cr_assert_str_eq(type, "dateTime");
    cr_assert_null(hub_fhir_child(defs, "Observation", "valueReference", &type));
    cr_assert_null(hub_fhir_child(defs, "Observation", "value", &type));
    cr_assert_null(hub_fhir_child(defs, "Observation", "valuestring", &type));
    cr_assert_null(hub_fhir_child(defs, "Observation", "value[x]", &type));

    size_t n;
    const hub_fhir_elem *kids = hub_fhir_children_of_type(defs, e, "Quantity", &n);
    cr_assert_not_null(kids);
    cr_assert_str_eq(kids[0].path, "Quantity.id");
    cr_assert_null(hub_fhir_children_of_type(defs, e, "string", &n));
    cr_assert_eq(n, 0);
}

Test(fhir_defs, observation_facts) {
    const char *type;
    const hub_fhir_elem *e = hub_fhir_child(defs, "Observation", "status", &type);
    cr_assert_not_null(e);
    cr_assert_eq(e->min, 1);
    cr_assert_eq(e->max, 1);
    cr_assert_str_eq(type, "code");
    cr_assert(e->modifier);
    cr_assert_str_eq(e->binding, "http://hl7.org/fhir/ValueSet/observation-status");
    e = hub_fhir_child(defs, "Observation", "code", &type);
    cr_assert_eq(e->min, 1);
    cr_assert_str_eq(e->children_key, "CodeableConcept");
    e = hub_fhir_child(defs, "Observation", "component", &type);
    cr_assert_eq(e->max, HUB_FHIR_MAX_UNBOUNDED);
    cr_assert_str_eq(e->children_key, "Observation.component");
    cr_assert_str_eq(type, "BackboneElement");
    e = hub_fhir_child(defs, "Observation.component", "referenceRange", &type);
    cr_assert_not_null(e);
    cr_assert_str_eq(e->children_key, "Observation.referenceRange", "content reference");
}

Test(fhir_defs, patient_contact_children) {
    size_t n;
    const hub_fhir_elem *k = hub_fhir_children(defs, "Patient.contact", &n);
    cr_assert_not_null(k);
    static const char *const want[] = {"id", "extension", "modifierExtension",
                                       "relationship", "name", "telecom",
                                       "address", "gender", "organization",
                                       "period"};
    cr_assert_eq(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n; i++) cr_assert_str_eq(k[i].name, want[i]);
    cr_assert_str_eq(k[4].children_key, "HumanName");
    cr_assert_eq(k[4].max, 1);
    cr_assert_eq(k[5].max, HUB_FHIR_MAX_UNBOUNDED);
    cr_assert_str_eq(k[7].binding, "http://hl7.org/fhir/ValueSet/administrative-gender");

    const char *type;
    const hub_fhir_elem *c = hub_fhir_child(defs, "Patient", "contact", &type);
    cr_assert_str_eq(c->children_key, "Patient.contact");
    const hub_fhir_elem *k2 = hub_fhir_children_of_type(defs, c, type, &n);
    cr_assert_eq(k2, k);
}

Test(fhir_defs, patient_definition_order) {
    size_t n;
    const hub_fhir_elem *k = hub_fhir_children(defs, "Patient", &n);
    cr_assert_not_null(k);
    cr_assert_str_eq(k[0].name, "id");
    cr_assert_str_eq(k[0].types[0], "id", "Resource.id is typed id");
    cr_assert_str_eq(k[1].name, "meta");
    cr_assert_str_eq(k[2].name, "implicitRules");
    cr_assert_str_eq(k[3].name, "language");
    cr_assert_str_eq(k[4].name, "text");
    cr_assert_str_eq(k[5].name, "contained");
    cr_assert_str_eq(k[5].types[0], "Resource");
    cr_assert_str_eq(k[n - 1].name, "link");
    const char *type;
    const hub_fhir_elem *d = hub_fhir_child(defs, "Patient", "deceasedBoolean", &type);
    cr_assert_str_eq(type, "boolean");
    cr_assert(d->modifier);
    cr_assert_not_null(hub_fhir_child(defs, "Patient", "multipleBirthInteger", &type));
    cr_assert_null(hub_fhir_child(defs, "Patient", "resourceType", &type));
    cr_assert_null(hub_fhir_child(defs, "Nope", "id", &type));
    cr_assert_null(hub_fhir_children(defs, "Nope", &n));
    cr_assert_eq(n, 0);
}

Test(fhir_defs, questionnaire_item_content_reference) {
    const char *type;
    const hub_fhir_elem *e = hub_fhir_child(defs, "Questionnaire.item", "item", &type);
    cr_assert_not_null(e);
    cr_assert_str_eq(e->path, "Questionnaire.item.item");
    cr_assert_str_eq(e->children_key, "Questionnaire.item");
    cr_assert_str_eq(type, "BackboneElement");
    cr_assert_eq(e->max, HUB_FHIR_MAX_UNBOUNDED);
    size_t n;
    const hub_fhir_elem *k = hub_fhir_children_of_type(defs, e, type, &n);
    cr_assert_eq(k, hub_fhir_children(defs, "Questionnaire.item", &n));
    e = hub_fhir_child(defs, "Questionnaire.item", "linkId", &type);
    cr_assert_eq(e->min, 1);
    cr_assert_str_eq(type, "string");
}

Test(fhir_defs, datatypes) {
    size_t n;
    const hub_fhir_elem *k = hub_fhir_children(defs, "Element", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(k[0].name, "id");
    cr_assert_str_eq(k[1].name, "extension");
    const char *type;
    const hub_fhir_elem *e = hub_fhir_child(defs, "Extension", "url", &type);
    cr_assert_eq(e->min, 1);
    cr_assert_str_eq(type, "uri");
    e = hub_fhir_child(defs, "Extension", "valueCodeableConcept", &type);
    cr_assert_str_eq(e->path, "Extension.value[x]");
    cr_assert_str_eq(type, "CodeableConcept");
    cr_assert_not_null(hub_fhir_child(defs, "Extension", "valueBase64Binary", &type));
    cr_assert_str_eq(type, "base64Binary");
    e = hub_fhir_child(defs, "HumanName", "given", &type);
    cr_assert_eq(e->max, HUB_FHIR_MAX_UNBOUNDED);
    cr_assert_str_eq(type, "string");
    cr_assert_null(e->children_key);
    e = hub_fhir_child(defs, "Quantity", "comparator", &type);
    cr_assert_str_eq(e->binding, "http://hl7.org/fhir/ValueSet/quantity-comparator");
    /* The _element form of a primitive: id and extension. */
    k = hub_fhir_children(defs, "string", &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(k[1].name, "extension");
    /* Medplum's additions are not R4. */
    cr_assert_null(hub_fhir_child(defs, "Meta", "project", &type));
    cr_assert_null(hub_fhir_child(defs, "Binary", "url", &type));
    e = hub_fhir_child(defs, "EvidenceVariable.characteristic", "definitionReference", &type);
    cr_assert_not_null(e, "the R4 definition[x]");
    cr_assert_eq(e->min, 1);
    cr_assert_null(hub_fhir_child(defs, "EvidenceVariable.characteristic", "linkId", &type));
}

Test(fhir_defs, bundle_and_parameters) {
    const char *type;
    const hub_fhir_elem *e = hub_fhir_child(defs, "Bundle.entry", "resource", &type);
    cr_assert_str_eq(type, "Resource");
    e = hub_fhir_child(defs, "Parameters.parameter", "part", &type);
    cr_assert_str_eq(e->children_key, "Parameters.parameter");
    e = hub_fhir_child(defs, "Bundle", "type", &type);
    cr_assert_eq(e->min, 1);
}

Test(fhir_defs, value_sets) {
    const char *g = "http://hl7.org/fhir/ValueSet/administrative-gender";
    cr_assert_eq(hub_fhir_vs_contains(defs, g, NULL, "female"), HUB_OK);
    cr_assert_eq(hub_fhir_vs_contains(defs, g, "http://hl7.org/fhir/administrative-gender",
                                      "unknown"), HUB_OK);
    cr_assert_eq(hub_fhir_vs_contains(defs, g, NULL, "Female"), HUB_E_NOTFOUND);
    cr_assert_eq(hub_fhir_vs_contains(defs, g, "http://example.org", "female"),
                 HUB_E_NOTFOUND);
    cr_assert_eq(hub_fhir_vs_contains(defs, "http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1",
                                      NULL, "male"), HUB_OK);
    const char *os = "http://hl7.org/fhir/ValueSet/observation-status";
    cr_assert_eq(hub_fhir_vs_contains(defs, os, NULL, "final"), HUB_OK);
    cr_assert_eq(hub_fhir_vs_contains(defs, os, NULL, "entered-in-error"), HUB_OK);
    cr_assert_eq(hub_fhir_vs_contains(defs, os, NULL, "done"), HUB_E_NOTFOUND);
    /* Nested concepts of a code system count. */
    const char *bt = "http://hl7.org/fhir/ValueSet/bundle-type";
    cr_assert_eq(hub_fhir_vs_contains(defs, bt, NULL, "transaction-response"), HUB_OK);
    /* Mime types cannot be enumerated: nothing claimed. */
    const char *mt = "http://hl7.org/fhir/ValueSet/mimetypes";
    cr_assert_eq(hub_fhir_vs_contains(defs, mt, NULL, "text/plain"), HUB_E_UNSUPPORTED);
    cr_assert_eq(hub_fhir_vs_contains(defs, "http://example.org/vs", NULL, "x"),
                 HUB_E_UNSUPPORTED);
}

Test(fhir_defs, every_children_key_resolves) {
    /* Walk every resource's tree: each element's children exist. */
    for (size_t r = 0; r < hub_fhir_resource_count(defs); r++) {
        size_t n;
        const hub_fhir_elem *k = hub_fhir_children(defs, hub_fhir_resource_name(defs, r), &n);
        cr_assert_not_null(k, "%s", hub_fhir_resource_name(defs, r));
        for (size_t i = 0; i < n; i++) {
            cr_assert_gt(k[i].ntypes, 0, "%s", k[i].path);
            if (k[i].children_key) {
                size_t m;
                cr_assert_not_null(hub_fhir_children(defs, k[i].children_key, &m),
                                   "%s", k[i].path);
            }
            cr_assert(k[i].max >= k[i].min, "%s", k[i].path);
        }
    }
}

/* Loading the tables from a directory of our own: broken files. */
static void write_file(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static const char TYPES[] =
    "#fhir\t4.0.1\n#name\tkind\tjson\tregex\tbase\n"
    "Element\tabstract-complex\tobject\t-\t-\n"
    "Extension\tcomplex\tobject\t-\tElement\n"
    "string\tprimitive\tstring\t-\tElement\n"
    "uri\tprimitive\tstring\t-\tElement\n"
    "Thing\tresource\tobject\t-\t-\n";
static const char ELEMS[] =
    "#fhir\t4.0.1\n"
    "Element.id\tid\t0\t0\t1\tstring\t\t\t-\n"
    "Element.extension\textension\t0\t0\t*\tExtension\tExtension\t\t-\n"
    "Extension.url\turl\t0\t1\t1\turi\t\t\t-\n"
    "Thing.name\tname\t0\t0\t*\tstring\t\t\tS\n";
static const char VS[] = "#fhir\t4.0.1\nhttp://x/vs\tcomplete\thttp://x/cs\ta\tb\n";

static hub_status load_with(const char *types, const char *elems, const char *vs,
                            hub_err *err) {
    char dir[256];
    hub_test_tmpdir(dir);
    if (types) write_file(dir, "types.tsv", types);
    if (elems) write_file(dir, "elements.tsv", elems);
    if (vs) write_file(dir, "valuesets.tsv", vs);
    hub_fhir_defs *d = NULL;
    hub_status rc = hub_fhir_defs_load(dir, &d, err);
    if (rc == HUB_OK) {
        cr_assert_eq(hub_fhir_resource_count(d), 1);
        cr_assert_eq(hub_fhir_vs_contains(d, "http://x/vs", NULL, "b"), HUB_OK);
        cr_assert_eq(hub_fhir_vs_contains(d, "http://x/vs", NULL, "c"), HUB_E_NOTFOUND);
    } else {
        cr_assert_null(d);
    }
    hub_fhir_defs_free(d);
    hub_test_rmtree(dir);
    return rc;
}

Test(fhir_defs_load, small_tables) {
    hub_err err = {0};
    cr_assert_eq(load_with(TYPES, ELEMS, VS, &err), HUB_OK, "%s", err.msg);
}

Test(fhir_defs_load, missing_file) {
    hub_err err = {0};
    cr_assert_eq(load_with(TYPES, NULL, VS, &err), HUB_E_IO);
    cr_assert(strstr(err.msg, "elements.tsv"), "%s", err.msg);
    cr_assert_eq(load_with(NULL, ELEMS, VS, &err), HUB_E_IO);
    cr_assert(strstr(err.msg, "types.tsv"), "%s", err.msg);
}

Test(fhir_defs_load, malformed) {
    hub_err err = {0};
    cr_assert_eq(load_with(TYPES, "#fhir\t4.0.1\nThing.name\tname\t0\t0\n", VS, &err),
                 HUB_E_CONFIG);
    cr_assert_str_eq(err.msg, "elements.tsv line 2: too few fields");
    cr_assert_eq(load_with(TYPES, "#fhir\t4.0.1\nThing.name\tname\t0\tx\t1\tstring\t\t\t-\n",
                           VS, &err), HUB_E_CONFIG);
    cr_assert_eq(load_with(TYPES, "Thing.name\tname\t0\t0\t1\tNope\t\t\t-\n", VS, &err),
                 HUB_E_CONFIG);
    cr_assert_str_eq(err.msg, "elements.tsv line 1: unknown type");
    cr_assert_eq(load_with(TYPES, "Thing.name\tname\t0\t0\t1\tstring\tNope\t\t-\n", VS, &err),
                 HUB_E_CONFIG);
    cr_assert_eq(load_with(TYPES,
                           "Thing.name\tname\t0\t0\t1\tstring\t\t\t-\n"
                           "Thing.name\tname\t0\t0\t1\tstring\t\t\t-\n", VS, &err),
                 HUB_E_CONFIG);
    cr_assert_str_eq(err.msg, "elements.tsv line 2: duplicate element name");
    cr_assert_eq(load_with("Thing\tresource\tobject\n", ELEMS, VS, &err), HUB_E_CONFIG);
    cr_assert_eq(load_with("#fhir\t4.0.1\nThing\tweird\tobject\t-\t-\n", ELEMS, VS, &err),
                 HUB_E_CONFIG);
    cr_assert_eq(load_with(TYPES, ELEMS, "http://x/vs\tmaybe\ts\ta\n", &err), HUB_E_CONFIG);
}

Test(fhir_defs_load, out_of_memory) {
    /* Every allocation of the load fails in turn; each comes back as NOMEM. */
    for (long i = 1; i < 40; i++) {
        hub_fhir_defs *d = NULL;
        hub_err err = {0};
        hub_mem_fail_after(i);
        hub_status rc = hub_fhir_defs_load(DEFS_DIR, &d, &err);
        hub_mem_fail_after(0);
        if (rc == HUB_OK) {
            hub_fhir_defs_free(d);
            break;
        }
        cr_assert_eq(rc, HUB_E_NOMEM, "allocation %ld: %s", i, err.msg);
        cr_assert_null(d);
    }
}

Test(fhir_defs_load, load_time) {
    /* Start-up budget: the full R4 tables load in a few ms (bench_fhir_validate
     * prints the figure); the bound is loose enough for a sanitizer build on
     * a busy machine and still catches a load gone quadratic. */
    int64_t t0 = hub_mono_ns();
    hub_fhir_defs *d = NULL;
    hub_err err = {0};
    int runs = 10;
    for (int i = 0; i < runs; i++) {
        cr_assert_eq(hub_fhir_defs_load(DEFS_DIR, &d, &err), HUB_OK);
        hub_fhir_defs_free(d);
    }
    double ms = (double)(hub_mono_ns() - t0) / 1e6 / runs;
    cr_log_info("fhir defs load: %.2f ms", ms);
    cr_assert_lt(ms, 250.0);
}

/* Every JSON name of every element resolves back to that element (and a
 * choice name to its type): no choice expansion shadows another element. */
Test(fhir_defs, every_json_name_resolves) {
    size_t checked = 0;
    for (size_t r = 0; r < hub_fhir_resource_count(defs); r++) {
        /* The resource and its backbone elements, depth first. */
        const char *stack[256];
        size_t top = 0;
        stack[top++] = hub_fhir_resource_name(defs, r);
        while (top) {
            const char *key = stack[--top];
            size_t n;
            const hub_fhir_elem *k = hub_fhir_children(defs, key, &n);
            for (size_t i = 0; i < n; i++) {
                const hub_fhir_elem *e = &k[i];
                for (size_t t = 0; t < e->ntypes; t++) {
                    char name[160];
                    if (e->choice) {
                        snprintf(name, sizeof name, "%s%c%s", e->name,
                                 e->types[t][0] >= 'a' ? e->types[t][0] - 32 : e->types[t][0],
                                 e->types[t] + 1);
                    } else {
                        snprintf(name, sizeof name, "%s", e->name);
                    }
                    const char *type = NULL;
                    cr_assert_eq(hub_fhir_child(defs, key, name, &type), e, "%s %s", key, name);
                    cr_assert_str_eq(type, e->types[t], "%s %s", key, name);
                    checked++;
                }
                /* Nested backbones of this resource (not content references). */
                if (e->children_key && strcmp(e->children_key, e->path) == 0 && top < 256)
                    stack[top++] = e->children_key;
            }
        }
    }
    cr_assert_gt(checked, 5000, "%zu", checked);
}
