/* fhir: FHIR R4 (4.0.1) resources as jansson values, the element table
 * generated from the official StructureDefinitions (conformance/fhir/r4/),
 * validation, OperationOutcome, JSON <-> XML, JSON Patch.
 *
 * Everything here is data-driven: what the hub knows of FHIR's elements,
 * types, cardinalities and required bindings comes from the generated
 * tables, never from code. All functions are thread-safe once the tables are
 * loaded (the tables are read-only after hub_fhir_defs_load). */
#ifndef HUB_FHIR_H
#define HUB_FHIR_H

#include <jansson.h>

#include "hub/core.h"

/* ---- the element table --------------------------------------------------- */

typedef struct hub_fhir_defs hub_fhir_defs;

/* Loads the generated tables from `dir` (normally
 * <conformance_dir>/fhir/r4). Errors: HUB_E_IO (missing file),
 * HUB_E_CONFIG (malformed table, msg names the file and entry). */
hub_status hub_fhir_defs_load(const char *dir, hub_fhir_defs **out,
                              hub_err *err);
void hub_fhir_defs_free(hub_fhir_defs *d);

/* The FHIR version the tables describe, "4.0.1". */
const char *hub_fhir_defs_version(const hub_fhir_defs *d);

/* Every concrete resource type (sorted), and a lookup. */
size_t hub_fhir_resource_count(const hub_fhir_defs *d);
const char *hub_fhir_resource_name(const hub_fhir_defs *d, size_t i);
bool hub_fhir_is_resource(const hub_fhir_defs *d, const char *type);
/* True for FHIR primitive types: boolean, integer, string, decimal, uri,
 * url, canonical, base64Binary, instant, date, dateTime, time, code, oid,
 * id, markdown, unsignedInt, positiveInt, uuid, xhtml. */
bool hub_fhir_is_primitive(const hub_fhir_defs *d, const char *type);

#define HUB_FHIR_MAX_UNBOUNDED UINT32_MAX

/* One element definition: a row of the table. */
typedef struct {
    const char *path;  /* "Observation.value[x]", "Patient.contact.name" */
    const char *name;  /* JSON/XML name; a choice's stem: "value" */
    bool choice;       /* a [x] element: valueQuantity, valueString, ... */
    uint32_t min, max; /* max HUB_FHIR_MAX_UNBOUNDED for "*" */
    size_t ntypes;
    const char *const *types; /* "Quantity", "string", "BackboneElement" */
    /* Where the children of this element are defined: a type name
     * ("HumanName"), or a path for backbone elements ("Patient.contact") and
     * content references ("Questionnaire.item"). NULL for primitives. For a
     * choice element, use hub_fhir_children_of_type with the chosen type. */
    const char *children_key;
    const char *binding;       /* required value set's canonical URL, or NULL */
    bool summary;              /* isSummary */
    bool modifier;             /* isModifier */
} hub_fhir_elem;

/* The children of a type or a backbone path, in definition order (the
 * order XML needs). `key` is a type name ("Patient", "HumanName",
 * "Element") or a backbone path ("Patient.contact"). NULL when unknown. */
const hub_fhir_elem *hub_fhir_children(const hub_fhir_defs *d, const char *key,
                                       size_t *n);
/* The child of `key` that a JSON property name denotes, resolving choice
 * names: for key "Observation" and name "valueQuantity" returns the
 * value[x] element and sets *type to "Quantity". NULL when no such child.
 * *type is the single type for non-choice elements. */
const hub_fhir_elem *hub_fhir_child(const hub_fhir_defs *d, const char *key,
                                    const char *name, const char **type);

/* The children of element `e` when it holds a value of `type` (one of
 * e->types): e's own children_key, or for a choice element the children of
 * the chosen type. NULL when there are none (a primitive's value). */
const hub_fhir_elem *hub_fhir_children_of_type(const hub_fhir_defs *d,
                                               const hub_fhir_elem *e,
                                               const char *type, size_t *n);

/* How a value of `type` appears in JSON: primitives as a string, number or
 * boolean (integer, decimal, positiveInt, unsignedInt are numbers), every
 * other type as an object. HUB_FHIR_JSON_NONE when the type is unknown. */
typedef enum {
    HUB_FHIR_JSON_NONE,
    HUB_FHIR_JSON_OBJECT,
    HUB_FHIR_JSON_STRING,
    HUB_FHIR_JSON_NUMBER,
    HUB_FHIR_JSON_BOOLEAN
} hub_fhir_json_kind;
hub_fhir_json_kind hub_fhir_type_json(const hub_fhir_defs *d, const char *type);

/* Is `code` (with `system`, which may be NULL) in the value set `url`
 * (a required binding's)? HUB_OK yes, HUB_E_NOTFOUND no, HUB_E_UNSUPPORTED
 * when the table cannot enumerate that value set (then nothing is
 * claimed). */
hub_status hub_fhir_vs_contains(const hub_fhir_defs *d, const char *url,
                                const char *system, const char *code);

/* ---- OperationOutcome ------------------------------------------------------ */

typedef enum {
    HUB_OO_FATAL,
    HUB_OO_ERROR,
    HUB_OO_WARNING,
    HUB_OO_INFORMATION
} hub_oo_severity;

/* An OperationOutcome being built. Diagnostics never carry a value of the
 * message or resource (PHI): they name elements, types and limits. */
typedef struct hub_oo hub_oo;

hub_oo *hub_oo_new(void);
void hub_oo_free(hub_oo *oo);
/* `code` is from the IssueType value set (invalid, structure, required,
 * value, invariant, code-invalid, not-found, deleted, conflict, too-long,
 * not-supported, processing, exception, informational, ...). `expression`
 * is the FHIRPath of the element ("Patient.name[0].given[1]") or NULL. */
void hub_oo_add(hub_oo *oo, hub_oo_severity sev, const char *code,
                const char *expression, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Issues at `sev` or worse. */
size_t hub_oo_count(const hub_oo *oo, hub_oo_severity worst);
/* The OperationOutcome resource (a new reference). An empty outcome gets
 * one informational "All OK" issue, as the specification asks. */
json_t *hub_oo_json(const hub_oo *oo);

/* ---- parsing, validation ---------------------------------------------------- */

/* Parses a JSON resource: depth limit HUB_FHIR_MAX_DEPTH, duplicate keys
 * rejected, must be an object with a string resourceType. On failure adds
 * issues to `oo` (with the line and column) and returns HUB_E_PARSE
 * (HUB_E_NOMEM when out of memory). A leading UTF-8 BOM is skipped. Numbers
 * with more than 18 significant digits (the precision FHIR asks
 * implementations to keep; jansson holds numbers as doubles) are rejected,
 * the expression naming the element. Diagnostics never quote the
 * input. */
#define HUB_FHIR_MAX_DEPTH 64
hub_status hub_fhir_parse_json(const char *p, size_t n, json_t **out,
                               hub_oo *oo);

typedef struct {
    bool lenient; /* unknown elements are warnings, not errors */
} hub_fhir_validate_opts;

/* Validates one resource of any R4 type (contained resources and Bundle
 * entries' resources too): known resourceType, known elements with the right
 * JSON kind and type, cardinality, required elements, primitive formats
 * (date, dateTime, instant, time, id, decimal, uri, code, base64Binary, ...),
 * the _element form, required bindings. Issues go to `oo` with FHIRPath
 * expressions. HUB_OK when no error-level issue, HUB_E_INVALID otherwise. */
hub_status hub_fhir_validate(const hub_fhir_defs *d, const json_t *res,
                             const hub_fhir_validate_opts *opts, hub_oo *oo);

/* ---- XML ---------------------------------------------------------------------- */

/* FHIR XML -> the JSON form, driven by the element table: arrays where max >
 * 1, primitives' id/extension into the _element form, choice names, xhtml
 * narrative as a string. libxml2 with no DTD, no entity expansion, no
 * network. Errors go to `oo`: HUB_E_PARSE (not well-formed, DTD, entity,
 * not UTF-8), HUB_E_INVALID (an element or attribute the table does not
 * know, elements out of definition order, a value its type refuses; every
 * such issue is reported, with its FHIRPath), HUB_E_LIMIT (over HUB_MAX_HTTP_BODY bytes or
 * HUB_MAX_XML_DEPTH levels), HUB_E_NOMEM. The narrative is the exact text
 * of the div element. A decimal becomes a JSON integer when its text has
 * no '.' or exponent, a real otherwise (jansson keeps no lexical form:
 * "1.50" reads as 1.5). */
hub_status hub_fhir_xml_to_json(const hub_fhir_defs *d, const char *p, size_t n,
                                json_t **out, hub_oo *oo);
/* The JSON form -> FHIR XML, elements in definition order, appended to
 * `out` (nothing appended on failure). No XML declaration; the root
 * declares the FHIR namespace. Reals are written in the shortest form that
 * reads back the same double. Errors: HUB_E_INVALID (unknown element, wrong
 * JSON kind, a narrative that is not one well-formed XHTML div, a character
 * XML cannot carry; err->where is the FHIRPath), HUB_E_LIMIT, HUB_E_NOMEM. */
hub_status hub_fhir_json_to_xml(const hub_fhir_defs *d, const json_t *res,
                                bool pretty, hub_buf *out, hub_err *err);

/* ---- JSON Patch (RFC 6902) ------------------------------------------------------- */

/* Applies `patch` (an array of operations) to `doc` in place. On failure
 * `doc` may be partly changed (callers patch a copy), issues go to `oo`:
 * HUB_E_PARSE (malformed patch), HUB_E_CONFLICT (a failed test op or a
 * missing path). */
hub_status hub_json_patch(json_t *doc, const json_t *patch, hub_oo *oo);

#endif
