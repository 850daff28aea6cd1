/* Public FHIR material against the REST API (skipped when
 * ../shared/corpus is absent; nothing of it is copied here):
 *   - every JSON example of us-core-examples and r4-spec-examples is
 *     created (PUT with its id, else POST), read back equal (meta aside),
 *     and read as XML and converted back equal;
 *   - every file of ms-fhir-server-testfiles gets the outcome the table
 *     below says, from its name. */
#include "fhir_test.h"
#include "hub_test.h"
#include "hub/fhir.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_CT "Content-Type: application/fhir+json\r\n"

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json files of a directory, sorted; NULL-terminated, heap. */
static char **list_json(const char *dir, size_t *n) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    char **v = NULL;
    size_t cap = 0;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0) continue;
        if (*n + 2 > cap) v = realloc(v, (cap = cap * 2 + 16) * sizeof *v);
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (v) {
        qsort(v, *n, sizeof *v, cmp_str);
        v[*n] = NULL;
    }
    return v;
}

static void free_list(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* File bytes without a UTF-8 byte order mark. */
static char *read_nobom(const char *path, size_t *n) {
    char *p = hub_test_read_file(path, n);
    cr_assert_not_null(p, "%s", path);
    if (*n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        memmove(p, p + 3, *n - 3);
        *n -= 3;
        p[*n] = '\0';
    }
    return p;
}

/* Writes one resource: PUT Type/id when it has an id, else POST Type.
 * Returns the status; *id_out gets the id the server reports. */
static int write_resource(const char *body, size_t n, json_t *res, char id_out[128],
                          ft_resp *r) {
    const char *type = json_string_value(json_object_get(res, "resourceType"));
    const char *id = json_string_value(json_object_get(res, "id"));
    char path[256];
    int st;
    if (id) {
        snprintf(path, sizeof path, "/fhir/%s/%s", type ? type : "", id);
        st = ft_req(hub_test_http_port(), "PUT", path, JSON_CT, body, n, r);
    } else {
        snprintf(path, sizeof path, "/fhir/%s", type && *type ? type : "Unknown");
        st = ft_req(hub_test_http_port(), "POST", path, JSON_CT, body, n, r);
    }
    id_out[0] = '\0';
    json_t *j = ft_json(r);
    const char *got = json_string_value(json_object_get(j, "id"));
    if (got) snprintf(id_out, 128, "%s", got);
    json_decref(j);
    return st;
}

static hub_fhir_defs *defs;

static void load_defs(void) {
    hub_err err;
    cr_assert_eq(hub_fhir_defs_load(HUB_SOURCE_DIR "/conformance/fhir/r4", &defs, &err), HUB_OK,
                 "%s", err.msg);
}

/* Examples of the corpus that are not what R4 allows, and what they get
 * instead: `create_4xx` is refused on create; otherwise only the XML step
 * is expected to fail (406). */
static const struct {
    const char *file;
    bool create_4xx;
    const char *why;
} KNOWN[] = {
    {"diagnosticreport-cbc.json", true, "text has no div (Narrative.div is 1..1)"},
    {"plandefinition-example.json", false,
     "its narrative is cut short in the corpus (not one XHTML div): no XML for it"},
};

static int known(const char *file) {
    for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++)
        if (strcmp(KNOWN[i].file, file) == 0) return (int)i;
    return -1;
}

/* Create, read back, read as XML and convert back, for every example of
 * one corpus folder. Failures are collected and reported together. */
static void round_trip_folder(const char *rel) {
    char dir[512];
    if (!hub_test_corpus(rel, dir)) cr_skip("corpus %s absent (../shared/corpus)", rel);
    hub_test_up();
    load_defs();
    size_t n;
    char **files = list_json(dir, &n);
    cr_assert(n > 0);
    hub_buf fails;
    hub_buf_init(&fails);
    int nfail = 0;
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        size_t len;
        char *body = read_nobom(path, &len);
        json_t *src = json_loadb(body, len, 0, NULL);
        cr_assert_not_null(src, "%s is not JSON", files[i]);
        const char *type = json_string_value(json_object_get(src, "resourceType"));
        ft_resp r;
        char id[128];
        int st = write_resource(body, len, src, id, &r);
        const char *why = NULL;
        int kn = known(files[i]);
        if (kn >= 0 && KNOWN[kn].create_4xx) {
            if (st < 400 || st >= 500) why = "a known invalid example was not refused";
            ft_release(&r);
            if (why) {
                nfail++;
                hub_buf_printf(&fails, "\n  %s: %s (%d)", files[i], why, st);
            }
            json_decref(src);
            hub_free(body);
            continue;
        }
        if (st != 200 && st != 201) why = "create";
        ft_release(&r);
        char rp[300];
        snprintf(rp, sizeof rp, "/fhir/%s/%s", type, id);
        json_t *back = NULL;
        if (!why) {
            if (ft_req(hub_test_http_port(), "GET", rp, NULL, NULL, 0, &r) != 200) why = "read";
            else back = ft_json(&r);
            ft_release(&r);
        }
        if (!why) {
            json_t *a = ft_strip_meta(src, true), *b = ft_strip_meta(back, true);
            /* A Patient comes back with the patient index's link to its
             * golden record, and otherwise as sent. */
            if (!strcmp(type, "Patient") && ft_drop_golden_link(b) == NULL)
                why = "a Patient without its one link to a golden record";
            else if (!json_equal(a, b))
                why = "read back differs";
            json_decref(a);
            json_decref(b);
        }
        if (!why) {
            char xp[320];
            snprintf(xp, sizeof xp, "%s?_format=xml", rp);
            int xs = ft_req(hub_test_http_port(), "GET", xp, NULL, NULL, 0, &r);
            if (kn >= 0) {
                if (xs != 406) why = "a known example without XML form: not 406";
            } else if (xs != 200) {
                why = "read as xml";
            } else {
                hub_oo *oo = hub_oo_new();
                json_t *fromxml = NULL;
                if (hub_fhir_xml_to_json(defs, r.body.p, r.body.n, &fromxml, oo) != HUB_OK)
                    why = "xml does not convert back";
                else if (!json_equal(fromxml, back))
                    why = "xml converted back differs";
                json_decref(fromxml);
                hub_oo_free(oo);
            }
            ft_release(&r);
        }
        if (why) {
            nfail++;
            if (fails.n < 3000) hub_buf_printf(&fails, "\n  %s: %s (%d)", files[i], why, st);
        }
        json_decref(back);
        json_decref(src);
        hub_free(body);
    }
    cr_log_info("%s: %zu examples, %d failed", rel, n, nfail);
    cr_assert_eq(nfail, 0, "%d of %zu examples failed:%s", nfail, n, fails.p ? fails.p : "");
    hub_buf_release(&fails);
    free_list(files, n);
    hub_fhir_defs_free(defs);
    hub_test_down();
}

Test(fhir_corpus, us_core_examples, .timeout = 600) {
    round_trip_folder("fhir/us-core-examples");
}

Test(fhir_corpus, r4_spec_examples, .timeout = 600) {
    round_trip_folder("fhir/r4-spec-examples");
}

/* ---- ms-fhir-server-testfiles: the outcome each file's name says ---------
 *
 * `status` is what POST /fhir answers for batch/transaction Bundles, and
 * what the create (PUT Type/id, else POST Type) answers for the rest. 4 is
 * "any 4xx"; 2 is "200 or 201". For a batch, `entry_fail` is how many of
 * its entries must fail (-1: not checked). */
typedef struct {
    const char *file;
    int status;
    int entry_fail;
    const char *why;
} expect;

/* Files whose content cannot say where they go. */
static const char *post_to(const char *file) {
    if (strcmp(file, "PatientMissingResourceType.json") == 0) return "/fhir/Patient";
    return NULL;
}

static const expect TABLE[] = {
    /* First: its conditional references must match exactly the one Patient
     * created before the table is run (later files make more). */
    {"R4-Bundle-TransactionWithReferenceInResourceBody.json", 200, -1,
     "conditional references match the Patient the test creates first"},
    {"Appointment.json", 2, -1, "valid"},
    {"BloodGlucose.json", 2, -1, "valid"},
    {"BloodPressure.json", 2, -1, "valid"},
    {"Bundle-Batch.json", 200, -1, "a batch answers 200, each entry its own status"},
    {"Bundle-BatchWithConditionalUpdateByIdentifier.json", 200, 4,
     "each Patient has identifier.system \"\": FHIR forbids empty strings"},
    {"Bundle-BatchWithDuplicatedItems.json", 200, -1, "a batch answers 200"},
    {"Bundle-BatchWithInvalidEleEnums.json", 200, -1, "invalid codes fail their entries only"},
    {"Bundle-BinaryPatch.json", 200, 0, "a JSON Patch in a Binary: both entries succeed"},
    {"Bundle-FhirPatch.json", 200, 2, "FHIRPath Patch is not supported: both patches fail"},
    {"Bundle-InvalidBundleType.json", 400, -1, "Bundle.type is not batch or transaction"},
    {"Bundle-MissingIdentifier.json", 200, 1, "PUT Location/ has no id: the entry fails"},
    {"Bundle-Transaction.json", 4, -1,
     "its If-Match names a version that does not exist, and it holds an operation"},
    {"Bundle-TransactionForRollBack.json", 4, -1, "GET of a missing Patient fails it all"},
    {"Bundle-TransactionForRollBackWithDelete.json", 4, -1, "If-Match on missing resources"},
    {"Bundle-TransactionWithAllValidRoutes.json", 4, -1,
     "its GET entries are searches, which this server does not have yet"},
    {"Bundle-TransactionWithConditionalCreateAndReference.json", 400, -1,
     "its Patient has identifier.system \"\": FHIR forbids empty strings"},
    {"Bundle-TransactionWithConditionalReferenceInResourceBody.json", 4, -1,
     "the conditional reference matches nothing"},
    {"Bundle-TransactionWithConditionalReferenceReferringToSameResource.json", 4, -1,
     "two entries resolve to the same resource"},
    {"Bundle-TransactionWithConditionalUpdateAndReference.json", 400, -1,
     "its Patient has identifier.system \"\": FHIR forbids empty strings"},
    {"Bundle-TransactionWithForeignReferenceInResourceBody.json", 4, -1,
     "a urn:uuid reference to no entry of the Bundle"},
    {"Bundle-TransactionWithInvalidBundleEntry.json", 400, -1, "not well-formed JSON"},
    {"Bundle-TransactionWithInvalidProcessingRecord.json", 4, -1,
     "PUT Binary/null and a fullUrl that is no UUID"},
    {"Bundle-TransactionWithInvalidProcessingRoutes.json", 4, -1,
     "an operation ($lookup) in a transaction"},
    {"Bundle-TransactionWithInvalidResourceType.json", 4, -1,
     "an entry's resource does not match its request"},
    {"Bundle-TransactionWithMetaHistory.json", 400, -1,
     "parameters (_meta-history) on a PUT Type/id url are not understood"},
    {"Bundle-TransactionWithMultipleEntriesModifyingSameResource.json", 4, -1,
     "two entries change Patient/123"},
    {"Bundle-TransactionWithMultipleResourcesWithSameFullUrl.json", 4, -1,
     "two entries with one fullUrl"},
    {"Bundle-TransactionWithPOSTFullUrlMatchesWithPUTRequestUrl.json", 4, -1,
     "a POST's fullUrl is another entry's PUT url"},
    {"Bundle-TransactionWithValidBundleEntry.json", 200, -1, "valid"},
    {"Bundle-TypeMissing.json", 400, -1, "Bundle.type is required"},
    {"CompositeCustomTokenStringSearchParameter.json", 2, -1, "valid"},
    {"Coverage.json", 2, -1, "valid"},
    {"Flag.json", 2, -1, "valid"},
    {"Includes-TestResources.json", 200, 10,
     "the ten DiagnosticReports have result as an object (R4: an array)"},
    {"InvalidObservation.json", 4, -1, "text is a string, not a Narrative"},
    {"Medication.json", 2, -1, "valid"},
    {"MoneyWithWrongDecimal.json", 404, -1, "Money is a datatype, not a resource type"},
    {"Observation-For-Patient-f001.json", 4, -1, "interpretation is an object (STU3); R4 has an array"},
    {"ObservationWithBloodPressure.json", 4, -1, "interpretation is an object (STU3); R4 has an array"},
    {"ObservationWithInvalidDecimalSpecification.json", 4, -1, "a decimal that is not one"},
    {"ObservationWithInvalidStatus.json", 4, -1, "status outside its required value set"},
    {"ObservationWithNoCode.json", 4, -1, "Observation.code is required"},
    {"ObservationWithTemperature.json", 4, -1, "interpretation is an object (STU3); R4 has an array"},
    {"Parameter-Convert-Data.json", 2, -1, "a valid Parameters resource"},
    {"Patient-f001.json", 2, -1, "valid"},
    {"Patient.json", 4, -1, "meta.lastUpdated has no time zone: not an instant"},
    {"PatientMissingResourceType.json", 400, -1, "resourceType is empty"},
    {"PatientWithMinimalData.json", 2, -1, "valid"},
    {"PatientWithUnknownElements.json", 4, -1, "unknown elements are refused (not lenient)"},
    {"Practitioner.json", 2, -1, "valid"},
    {"ProvenanceHeader.json", 4, -1, "made for a header: Provenance.target (1..*) is missing"},
    {"R4-CarePlan.json", 2, -1, "valid"},
    {"R4-CommunicationAttachment.json", 2, -1, "valid"},
    {"R4-Condition-For-Patient-f001.json", 2, -1, "valid"},
    {"R4-Encounter-For-Patient-f001.json", 2, -1, "valid"},
    {"R4-Immunization.json", 2, -1, "valid"},
    {"R4-Location-example-hq.json", 2, -1, "valid"},
    {"R4-Organization.json", 2, -1, "valid"},
    {"SearchDataBatch.json", 200, 5,
     "generalPractitioner and result as objects (R4: arrays), an AuditEvent without type"},
    {"SearchParameter-AppointmentStatus.json", 2, -1, "valid"},
    {"SearchParameter-Patient-foo.json", 2, -1, "valid"},
    {"SearchParameter-SpecimenStatus.json", 2, -1, "valid"},
    {"SearchParameterBadSyntax.json", 2, -1,
     "structurally valid: FHIRPath expressions are not checked (no search yet)"},
    {"SearchParameterInvalidBase.json", 4, -1, "base 'foo' is no resource type (required)"},
    {"SearchParameterInvalidType.json", 4, -1, "type 'foo' outside its required value set"},
    {"SearchParameterMissingBase.json", 4, -1, "an empty array is not valid FHIR JSON"},
    {"SearchParameterMissingExpression.json", 4, -1, "an empty string is not valid FHIR JSON"},
    {"SearchParameterMissingType.json", 4, -1, "type is required; \"\" is not a code"},
    {"SearchParameterUnsupportedType.json", 2, -1,
     "structurally valid: type against expression is not checked (no search yet)"},
    {"Specimen.json", 2, -1, "valid"},
    {"Subscription-Backport.json", 4, -1, "end has no time zone: not an instant"},
    {"SubscriptionForEncounter.json", 4, -1, "end has no time zone: not an instant"},
    {"SubscriptionForObservationReferenceToPatient.json", 4, -1,
     "end has no time zone: not an instant"},
    {"SubscriptionForPatientName.json", 4, -1, "end has no time zone: not an instant"},
    {"ValidCompartmentDefinition.json", 2, -1, "a collection Bundle stored as a resource"},
    {"Weight.json", 2, -1, "valid"},
    {"WeightInGrams.json", 4, -1, "a Narrative without its required div"},
};
#define NTABLE (sizeof TABLE / sizeof TABLE[0])

static bool status_ok(int want, int got) {
    if (want == 2) return got == 200 || got == 201;
    if (want == 4) return got >= 400 && got < 500;
    return want == got;
}

Test(fhir_corpus, ms_testfiles_outcomes, .timeout = 600) {
    char dir[512];
    if (!hub_test_corpus("fhir/ms-fhir-server-testfiles", dir))
        cr_skip("corpus fhir/ms-fhir-server-testfiles absent (../shared/corpus)");
    hub_test_up();
    /* Every JSON file has its row: a new file fails until it gets one. */
    size_t n;
    char **files = list_json(dir, &n);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t k = 0; k < NTABLE && !found; k++) found = strcmp(TABLE[k].file, files[i]) == 0;
        cr_expect(found, "no expectation for %s", files[i]);
    }
    free_list(files, n);
    /* The Patient R4-Bundle-TransactionWithReferenceInResourceBody refers
     * to by identifier. */
    ft_resp r;
    static const char pat[] =
        "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":"
        "\"http:/example.org/fhir/ids\",\"value\":\"234234\"}]}";
    cr_assert_eq(ft_req(hub_test_http_port(), "POST", "/fhir/Patient", JSON_CT, pat,
                        strlen(pat), &r), 201);
    ft_release(&r);

    hub_buf fails;
    hub_buf_init(&fails);
    int nfail = 0;
    for (size_t k = 0; k < NTABLE; k++) {
        const expect *x = &TABLE[k];
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, x->file);
        size_t len;
        char *body = read_nobom(path, &len);
        json_t *j = json_loadb(body, len, 0, NULL);
        const char *rt = json_string_value(json_object_get(j, "resourceType"));
        const char *ty = json_string_value(json_object_get(j, "type"));
        bool bundle_post = strncmp(x->file, "Bundle-", 7) == 0 ||
                           (rt && strcmp(rt, "Bundle") == 0 && ty &&
                            (strcmp(ty, "batch") == 0 || strcmp(ty, "transaction") == 0));
        int st;
        char id[128];
        if (post_to(x->file))
            st = ft_req(hub_test_http_port(), "POST", post_to(x->file), JSON_CT, body, len, &r);
        else if (bundle_post || j == NULL)
            st = ft_req(hub_test_http_port(), "POST", "/fhir", JSON_CT, body, len, &r);
        else
            st = write_resource(body, len, j, id, &r);
        const char *why = NULL;
        if (!status_ok(x->status, st)) why = "status";
        if (st >= 400 && st < 500) {
            json_t *oo = ft_json(&r);
            if (!oo || strcmp(json_string_value(json_object_get(oo, "resourceType")) ?: "",
                              "OperationOutcome") != 0)
                why = "no OperationOutcome";
            json_decref(oo);
        }
        if (!why && x->entry_fail >= 0) {
            json_t *b = ft_json(&r), *e;
            size_t i;
            int failed = 0;
            json_array_foreach(json_object_get(b, "entry"), i, e) {
                const char *s = json_string_value(
                    json_object_get(json_object_get(e, "response"), "status"));
                if (!s || s[0] != '2') failed++;
            }
            if (failed != x->entry_fail) why = "failed entries";
            json_decref(b);
        }
        if (why) {
            nfail++;
            hub_buf_printf(&fails, "\n  %s: %s (got %d, want %d%s; %s)", x->file, why, st,
                           x->status, x->status < 10 ? "xx" : "", x->why);
        }
        ft_release(&r);
        json_decref(j);
        hub_free(body);
    }
    /* The XML twins of invalid resources are refused the same way. */
    static const char *const xml_invalid[] = {"ObservationWithInvalidStatus.xml",
                                              "ObservationWithNoCode.xml"};
    for (size_t k = 0; k < 2; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, xml_invalid[k]);
        size_t len;
        char *body = hub_test_read_file(path, &len);
        if (body == NULL) continue;
        int st = ft_req(hub_test_http_port(), "POST", "/fhir/Observation",
                        "Content-Type: application/fhir+xml\r\n", body, len, &r);
        if (st < 400 || st >= 500) {
            nfail++;
            hub_buf_printf(&fails, "\n  %s: status %d, want 4xx", xml_invalid[k], st);
        }
        ft_release(&r);
        hub_free(body);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/Patient.xml", dir);
    size_t len;
    char *body = hub_test_read_file(path, &len);
    if (body) {
        int st = ft_req(hub_test_http_port(), "PUT", "/fhir/Patient/example",
                        "Content-Type: application/fhir+xml\r\n", body, len, &r);
        if (st != 200 && st != 201) {
            nfail++;
            hub_buf_printf(&fails, "\n  Patient.xml: status %d, want 2xx", st);
        }
        ft_release(&r);
        hub_free(body);
    }
    cr_assert_eq(nfail, 0, "%d files did not get their outcome:%s", nfail,
                 fails.p ? fails.p : "");
    hub_buf_release(&fails);
    hub_test_down();
}
