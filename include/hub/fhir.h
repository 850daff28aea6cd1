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

/* ---- JSON text out ------------------------------------------------------------ */

/* What json_dumps writes (flags: JSON_COMPACT, JSON_INDENT(n)), except that
 * each real is printed in the shortest form that reads back to the same
 * double: 98.6 stays 98.6 (jansson writes 98.599999999999994). Use these,
 * never json_dumps, for anything stored or sent. hub_json_dumps returns a
 * malloc'd string (free() it, as json_dumps's) or NULL; hub_json_dump_buf
 * appends to `out`. */
char *hub_json_dumps(const json_t *j, size_t flags);
hub_status hub_json_dump_buf(const json_t *j, size_t flags, hub_buf *out);
/* A real as those write it: the shortest form that reads back to the same
 * double, and always a real (1 -> "1.0"). Writes into s (NUL-terminated)
 * and returns the length. */
int hub_json_real_text(double v, char s[40]);

/* ---- JSON Patch (RFC 6902) ------------------------------------------------------- */

/* Applies `patch` (an array of operations) to `doc` in place. On failure
 * `doc` may be partly changed (callers patch a copy), issues go to `oo`:
 * HUB_E_PARSE (malformed patch), HUB_E_CONFLICT (a failed test op or a
 * missing path). */
hub_status hub_json_patch(json_t *doc, const json_t *patch, hub_oo *oo);

/* ---- FHIRPath (the subset search parameters use) ------------------------------ */

/* Paths, `|`, parentheses, indexers, where(resolve() is X), where(a='b'),
 * ofType(T), `as T`, `is T`, exists(), first(), extension('url'), `and`,
 * `=`, `!=`. Compiled once, evaluated on any number of resources from any
 * thread. */
typedef struct hub_fhirpath hub_fhirpath;
/* HUB_E_UNSUPPORTED when the expression leaves the subset. */
hub_status hub_fhirpath_compile(const char *expr, hub_fhirpath **out,
                                hub_err *err);
void hub_fhirpath_free(hub_fhirpath *fp);
/* Called for each value of the result: the JSON value (borrowed from the
 * resource, or jansson's true/false), its FHIR type ("CodeableConcept",
 * "dateTime", ...; NULL when the element table does not say) and where its
 * children are defined (a type or backbone path such as
 * "Observation.component", for hub_fhirpath_eval_at). */
typedef hub_status (*hub_fhirpath_fn)(void *ud, const json_t *v,
                                      const char *type, const char *key);
/* Evaluates `fp` on `res` (of type `rtype`); temporaries go to `a`. `d` may
 * be NULL (then values carry no type and choice elements are not found).
 * Returns what fn returns, or HUB_E_NOMEM. */
hub_status hub_fhirpath_eval(const hub_fhir_defs *d, const hub_fhirpath *fp,
                             hub_arena *a, const char *rtype, const json_t *res,
                             hub_fhirpath_fn fn, void *ud);

/* The same on any value v of the resource `res` (for %resource): `type`
 * and `key` as the callback gave them (composite components are evaluated
 * on the composite's items). */
hub_status hub_fhirpath_eval_at(const hub_fhir_defs *d, const hub_fhirpath *fp,
                                hub_arena *a, const char *type, const char *key,
                                const json_t *v, const char *rtype, const json_t *res,
                                hub_fhirpath_fn fn, void *ud);

/* Whether `fp` can find anything in an object with the property names
 * keys[0, n) (a choice's valueQuantity counts for value): false means the
 * result is empty, because the expression reads first properties the object
 * does not have. hub_fhirpath_eval_at checks it itself; hub_fhirpath_eval
 * does not (a caller that evaluates many expressions on one resource
 * collects its keys once and skips the calls it rules out). Either way the
 * results are the same. */
bool hub_fhirpath_keys_may_match(const hub_fhirpath *fp, const char *const *keys, size_t n);
/* A summary of an object's keys (computed once per object), and a quick
 * first test with it: false when hub_fhirpath_keys_may_match(fp, keys)
 * would be false too for every key set with that summary; true says
 * nothing (ask hub_fhirpath_keys_may_match). */
uint64_t hub_fhirpath_key_bits(const char *const *keys, size_t n);
bool hub_fhirpath_bits_may_match(const hub_fhirpath *fp, uint64_t bits);

/* ---- search values ------------------------------------------------------------ */

/* A FHIR date, dateTime or instant ("2024", "2024-05", "2024-05-17",
 * "2024-05-17T10:30", "...:15", "...:15.250", with Z or +hh:mm; no zone
 * means UTC) as the range [*lo, *hi) in ms its precision covers.
 * HUB_E_PARSE when malformed. */
hub_status hub_fhir_date_range(const char *s, size_t n, int64_t *lo, int64_t *hi);
/* A string search value: lower case, Latin accents folded (é -> e, ß ->
 * ss), written to `out` (at most `cap` bytes with the NUL; longer input is
 * cut at a character boundary). Returns the length. */
size_t hub_fhir_str_norm(const char *s, size_t n, char *out, size_t cap);

/* ---- search parameters --------------------------------------------------------- */

typedef enum {
    HUB_SP_NUMBER,
    HUB_SP_DATE,
    HUB_SP_STRING,
    HUB_SP_TOKEN,
    HUB_SP_REFERENCE,
    HUB_SP_COMPOSITE,
    HUB_SP_QUANTITY,
    HUB_SP_URI,
    HUB_SP_SPECIAL,
} hub_sp_type;

/* One search parameter of one resource type (a row of
 * conformance/fhir/r4/searchparams.tsv). Strings live as long as the
 * table. */
typedef struct {
    const char *base;       /* "Observation", or "Resource" for _id etc. */
    const char *code;       /* "patient" */
    hub_sp_type type;
    const char *expression; /* the FHIRPath, cut to this base's terms */
    const hub_fhirpath *path; /* compiled; NULL when outside the subset */
    size_t ntargets;
    const char *const *targets; /* reference targets, sorted */
    size_t ncomp;           /* composite: the components */
    const char *comp_code[3];
    hub_sp_type comp_type[3];
    const hub_fhirpath *comp_path[3];
    const char *comp_expr[3];
    /* An alias: its values are exactly those of other parameters of the
     * base, so the index keeps only theirs (set at load). "X | Y" where X
     * and Y are the expressions of `same` (combo-code = code |
     * component-code); "X.where(resolve() is T)" where X is same[0]'s (then
     * same_type is T: patient = subject's Patient references). */
    size_t nsame;
    const char *same[2];
    const char *same_type;
    /* A composite whose items are the resource itself and whose components
     * give exactly the values of two other parameters of the base
     * (Observation code-value-quantity: code and value-quantity): their
     * codes, set at load. Its rows are those parameters' rows paired, so
     * the index makes them from those rows instead of evaluating it. */
    const char *pair[2];
} hub_fhir_sp;

typedef struct hub_fhir_sps hub_fhir_sps;

/* Loads searchparams.tsv and compartment-patient.tsv from `dir` and
 * compiles every expression. Errors: HUB_E_IO, HUB_E_CONFIG (malformed
 * row), HUB_E_NOMEM. An expression outside the FHIRPath subset is not an
 * error: its parameter has path NULL (hub_fhir_sps_stats counts them). */
hub_status hub_fhir_sps_load(const char *dir, hub_fhir_sps **out, hub_err *err);
void hub_fhir_sps_free(hub_fhir_sps *t);
/* Rows loaded and rows whose expression compiled. */
void hub_fhir_sps_stats(const hub_fhir_sps *t, size_t *rows, size_t *compiled);
/* The parameter `code` of `type` (its own, else Resource's). NULL if none. */
const hub_fhir_sp *hub_fhir_sp_find(const hub_fhir_sps *t, const char *type,
                                    const char *code);
/* The parameters `type` declares itself, sorted by code (Resource's _id,
 * _lastUpdated, ... are the list of "Resource"). NULL and 0 when none. */
const hub_fhir_sp *const *hub_fhir_sp_list(const hub_fhir_sps *t,
                                           const char *type, size_t *n);
/* The Patient compartment: the parameters that put a resource of `type` in
 * a patient's compartment ("subject", "performer"...), NULL when the type
 * is not in it. */
const char *const *hub_fhir_compartment_params(const hub_fhir_sps *t,
                                               const char *type, size_t *n);
/* The i-th type of the Patient compartment (in the table's order), NULL
 * past the last one. */
const char *hub_fhir_compartment_type(const hub_fhir_sps *t, size_t i);

#endif
