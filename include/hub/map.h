/* map: HL7 v2 to FHIR R4 through mapping tables.
 *
 * The tables (mappings/README.md gives their format) say, per message
 * structure, which segments make which resources; per segment and per
 * datatype, which field or component goes to which FHIR element, under
 * which condition, through which datatype table or vocabulary. The
 * interpreter here runs them over a parsed message (hub/v2.h) and builds a
 * transaction Bundle of conditional upserts keyed by business identifiers,
 * plus a Provenance naming the source message.
 *
 * Tables are loaded once (hub_map_load) and read-only afterwards: any
 * number of threads may map with one hub_map. */
#ifndef HUB_MAP_H
#define HUB_MAP_H

#include <jansson.h>

#include "hub/core.h"
#include "hub/v2.h"

typedef struct hub_map hub_map;

typedef struct {
    const char *dir;      /* the shipped tables: a directory holding
                           * messages/ segments/ datatypes/ vocab/ local/ */
    const char *site_dir; /* a site's own tables (Z-segments, local codes,
                           * overrides), every *.map file in it, or NULL */
} hub_map_cfg;

/* Loads every table. A table of the site directory with the name of a
 * shipped one replaces it. Errors: HUB_E_IO (a directory or file that
 * cannot be read; where = the path), HUB_E_CONFIG (a malformed table:
 * where = "file:line", msg says what), HUB_E_NOMEM. */
hub_status hub_map_load(const hub_map_cfg *c, hub_map **out, hub_err *err);
void hub_map_free(hub_map *m); /* NULL is a no-op */
/* Number of tables loaded, and of their rows (for logs and tests). */
size_t hub_map_table_count(const hub_map *m, size_t *rows);
/* True when a local-code table of that name is loaded. */
bool hub_map_has_local(const hub_map *m, const char *name);

/* The forms a Bundle is handed back in: a jansson tree (what the record
 * applies), or compact JSON text (hub_json_dumps's form), which costs a
 * fraction of it: the interpreter builds its own tree in an arena and
 * writes the text from that. */
#define HUB_MAP_OUT_JANSSON 1u
#define HUB_MAP_OUT_TEXT 2u

/* Per message. */
typedef struct {
    const char *sender;  /* MSH-3^MSH-4 as the journal keys it; NULL: taken
                          * from the message */
    const char *const *local; /* the sender's local-code tables (names) */
    size_t nlocal;
    /* The message structure for segment groups; NULL: the v2 engine's
     * built-in one when there is one, else none (segments are then
     * scoped by order only). */
    const hub_v2_struct_def *structure;
    bool explain;        /* fill hub_map_result.explain */
    unsigned out;        /* the forms of the Bundle wanted (HUB_MAP_OUT_*
                          * bits); 0: HUB_MAP_OUT_JANSSON */
    int64_t now_ms;      /* Provenance.recorded; 0: now */
} hub_map_opts;

typedef struct {
    json_t *bundle;      /* the transaction Bundle (a new reference), with
                          * HUB_MAP_OUT_JANSSON; else NULL */
    hub_buf json;        /* with HUB_MAP_OUT_TEXT: the Bundle as compact
                          * JSON text (heap; not NUL-terminated; released
                          * by hub_map_result_release) */
    size_t nresources;   /* entries, the Provenance included */
    size_t nunmapped;    /* codes kept and flagged as unmapped */
    const char *table;   /* the message table used (borrowed from the map) */
    /* On failure: where it failed as ERR-2 wants it, and the HL7 error
     * code (table 0357) for ERR-3. */
    hub_v2_loc loc;
    int v2_code;
    /* Values a lenient row could not convert: the element was left out.
     * Severity W, code 102, text a literal; at most 16 kept, nwarnings
     * counts all. */
    hub_v2_finding warnings[16];
    size_t nwarnings;
    /* With opts.explain: one line per FHIR element produced,
     *   Patient/patient.identifier[0].value <- PID-3(1).1  segments/PID.map:12 > datatypes/CX.map:3
     * (heap; hub_buf_release via hub_map_result_release). */
    hub_buf explain;
} hub_map_result;

/* Maps message `msg`. Errors (err->where is the terse path of the field,
 * out->loc and out->v2_code are filled for the ERR segment):
 *   HUB_E_UNSUPPORTED  no message table for the message's structure or
 *                      event (v2 code 200/201);
 *   HUB_E_INVALID      a value a row cannot convert (a date that is no
 *                      date: 102), or a resource whose key is required and
 *                      absent (101);
 *   HUB_E_LIMIT        more than HUB_MAP_MAX_RESOURCES resources;
 *   HUB_E_NOMEM.
 * Nothing in err or the result quotes message content. */
#define HUB_MAP_MAX_RESOURCES 5000
hub_status hub_map_message(const hub_map *map, const hub_v2_msg *msg,
                           const hub_map_opts *opts, hub_map_result *out,
                           hub_err *err);
void hub_map_result_release(hub_map_result *r);

/* The extension that flags a coding or code the tables could not map
 * (the original is kept). */
#define HUB_MAP_UNMAPPED_URL "https://hub.example.org/fhir/StructureDefinition/v2-unmapped-code"
/* Bundle.entry.request extensions that ask record to merge with the
 * stored resource (see mappings/README.md, "Updates"). */
#define HUB_MAP_MERGE_URL "https://hub.example.org/fhir/StructureDefinition/v2-merge"
#define HUB_MAP_CLEAR_URL "https://hub.example.org/fhir/StructureDefinition/v2-clear"

/* HL7 v2 DTM/TS/DT text to FHIR: kind 'D' date, 'T' dateTime, 'I' instant.
 * Precision is kept (a dateTime with only hours gets ":00" minutes and
 * seconds, as FHIR requires); a time without an offset takes `tz`
 * ("+0100", "Z"; NULL: "Z"). Writes into out[40]; false when `v` is no
 * valid DTM (or an instant lacks seconds precision... it is then padded). */
bool hub_map_dtm(const char *v, size_t n, char kind, const char *tz,
                 char out[40]);

#endif
