/* v2prof: HL7 v2 conformance profiles and the validator.
 *
 * (To be folded into hub/v2.h at merge; kept apart so that the v2 core and
 * the profiles can be written in parallel.)
 *
 * Base profiles, one per HL7 version, are generated into
 * conformance/v2/base/ (see conformance/v2/README.md): message structures,
 * trigger-event to structure map, segments, datatypes, and one shared file
 * of HL7 tables. A profile set opens that directory and loads each version
 * on first use, so start-up costs nothing; tables load with the first
 * version.
 *
 * A site profile is a JSON file bound to a sender by configuration. It
 * names a base version (or follows the message's MSH-12), and tightens
 * rules: field and component usage, allowed codes, lengths, extra or
 * replaced message structures, Z-segment handling and severity overrides.
 * Format: conformance/v2/README.md; example: conformance/v2/site/.
 *
 * The validator reports hub_v2_finding values (hub/v2.h): location, HL7
 * table 0357 code, severity from a policy, and a diagnosis that never
 * quotes patient data. The same findings feed hub_v2_ack_build. */
#ifndef HUB_V2PROF_H
#define HUB_V2PROF_H

#include "hub/core.h"
#include "hub/v2.h"

/* ---- profile set (base profiles) ----------------------------------------- */

typedef struct hub_v2_profset hub_v2_profset;
typedef struct hub_v2_profile hub_v2_profile; /* one base version */

/* Opens the base profiles under `dir` (a directory holding base/ such as
 * HUB_SOURCE_DIR "/conformance/v2"). Reads only base/versions.txt; each
 * version's file is read on first use. Thread-safe after open.
 * Errors: HUB_E_IO (where = the file) when versions.txt cannot be read,
 * HUB_E_NOMEM. */
hub_status hub_v2_profset_open(const char *dir, hub_v2_profset **out,
                               hub_err *err);
void hub_v2_profset_close(hub_v2_profset *s); /* NULL is a no-op */

/* The base profile of `version` ("2.5.1"), loaded on first call; borrowed
 * until the set is closed. Errors: HUB_E_NOTFOUND (version not shipped),
 * HUB_E_IO / HUB_E_PARSE (file missing or malformed; where = file name),
 * HUB_E_NOMEM. */
hub_status hub_v2_profset_get(hub_v2_profset *s, const char *version,
                              const hub_v2_profile **out, hub_err *err);
/* The shipped versions, oldest first; *n receives the count. Borrowed. */
const char *const *hub_v2_profset_versions(const hub_v2_profset *s, size_t *n);

/* Picks the version whose base profile validates a message declaring
 * `declared` (MSH-12.1): itself when shipped; the newest shipped version
 * for a newer 2.x (e.g. 2.8 -> 2.7.1); the oldest for an older 2.x.
 * Writes it to out[size]; returns 0 for an exact match, 1 for a fallback,
 * -1 when `declared` is not a 2.x version id (nothing written). */
int hub_v2_profset_pick(const hub_v2_profset *s, hub_slice declared,
                        char *out, size_t size);

/* Profile queries (used by the validator, tests and tools). */
const char *hub_v2_profile_version(const hub_v2_profile *p);
size_t hub_v2_profile_nstructs(const hub_v2_profile *p);
/* The structure for MSH-9 parts (any may be absent): `structure` (MSH-9.3)
 * when known, else the one the event map names for code^trigger, else
 * code alone ("ACK"). NULL when none. Borrowed. */
const char *hub_v2_profile_struct_for(const hub_v2_profile *p, hub_slice code,
                                      hub_slice trigger, hub_slice structure);
/* The structure `name` as the v2 engine's definition type, for
 * hub_v2_group_match (navigation by group, `hub inspect`). A choice of
 * segments (<OBR|RXO>) becomes a group named "<OBR|RXO>" whose
 * alternatives are each optional. NULL when unknown. Borrowed until the
 * set is closed. */
const hub_v2_struct_def *hub_v2_profile_struct_def(const hub_v2_profile *p,
                                                   const char *name);
/* True when the profile defines any event of message code `code`. */
bool hub_v2_profile_knows_code(const hub_v2_profile *p, hub_slice code);

/* A field or component definition. */
typedef struct {
    const char *name;     /* "Patient Identifier List" */
    const char *datatype; /* "CX" */
    char usage;           /* 'R' required, 'O' optional, 'C' conditional,
                           * 'B' backward compatible, 'X' not supported */
    bool repeats;         /* fields only */
    uint32_t max_len;     /* 0: no limit known */
    uint16_t table;       /* HL7 table number, 0: none */
} hub_v2_item_def;

/* Definition of field `field` (1-based) of segment `seg_id`, or NULL. */
const hub_v2_item_def *hub_v2_profile_field(const hub_v2_profile *p,
                                            const char *seg_id, size_t field);
/* Component `comp` (1-based) of datatype `dt`, or NULL (also for
 * primitive datatypes). */
const hub_v2_item_def *hub_v2_profile_comp(const hub_v2_profile *p,
                                           const char *dt, size_t comp);
/* True when `code` is in HL7 table `table`; -1 when the table is unknown
 * or has no codes (nothing to check). */
int hub_v2_profile_table_has(const hub_v2_profile *p, unsigned table,
                             hub_slice code);

/* ---- policy: which findings are errors -------------------------------------- */

/* Every kind of finding the validator makes; each has a default severity
 * (see hub_v2_policy_default and conformance/v2/README.md). */
#define HUB_V2_RULE_LIST(X)                                                 \
    X(VERSION_UNKNOWN, "version_unknown", 203, 'E')                         \
    X(VERSION_FALLBACK, "version_fallback", 203, 'W')                       \
    X(MSG_TYPE_UNKNOWN, "msg_type_unknown", 200, 'E')                       \
    X(EVENT_UNKNOWN, "event_unknown", 201, 'E')                             \
    X(STRUCT_UNKNOWN, "struct_unknown", 200, 'E')                           \
    X(STRUCT_MISMATCH, "struct_mismatch", 200, 'W')                         \
    X(PROCESSING_ID, "processing_id", 202, 'E')                             \
    X(SEG_MISSING, "seg_missing", 100, 'E')                                 \
    X(SEG_UNEXPECTED, "seg_unexpected", 100, 'W')                           \
    X(SEG_Z, "seg_z", 100, 'E')                                             \
    X(SEG_NEWER, "seg_newer", 100, 'W')                                     \
    X(FIELD_MISSING, "field_missing", 101, 'E')                             \
    X(COMP_MISSING, "comp_missing", 101, 'W')                               \
    X(FIELD_REPEAT, "field_repeat", 102, 'W')                               \
    X(FIELD_UNSUPPORTED, "field_unsupported", 102, 'W')                     \
    X(FIELD_EXTRA, "field_extra", 102, 'I')                                 \
    X(DATE_IMPOSSIBLE, "date_impossible", 102, 'E')                         \
    X(DATE_FORMAT, "date_format", 102, 'E')                                 \
    X(NUMBER, "number", 102, 'E')                                           \
    X(TABLE_HL7, "table_hl7", 103, 'W')                                     \
    X(TABLE_USER, "table_user", 103, 'W')                                   \
    X(TABLE_CODED, "table_coded", 103, 'W')                                 \
    X(TABLE_SITE, "table_site", 103, 'E')                                   \
    X(TOO_LONG, "too_long", 104, 'W')                                       \
    X(CHARSET, "charset", 102, 'W')

typedef enum {
#define HUB__V2R_ENUM(id, name, code, sev) HUB_V2R_##id,
    HUB_V2_RULE_LIST(HUB__V2R_ENUM)
#undef HUB__V2R_ENUM
    HUB_V2R__COUNT
} hub_v2_rule;

/* Severity per rule: 'E', 'W', 'I', or 0 (the check is off). */
typedef struct {
    char sev[HUB_V2R__COUNT];
} hub_v2_policy;

void hub_v2_policy_default(hub_v2_policy *p);
/* "too_long" etc.; NULL for an out-of-range rule. */
const char *hub_v2_rule_name(hub_v2_rule r);
/* Sets rule `name` to `sev` ("error", "warning", "info", "off").
 * Errors: HUB_E_ARG (where = the rule name or "severity"). */
hub_status hub_v2_policy_set(hub_v2_policy *p, const char *name,
                             const char *sev, hub_err *err);

/* ---- site profiles ------------------------------------------------------- */

typedef struct hub_v2_site hub_v2_site;

/* Loads a site profile from `path` (JSON, at most HUB_MAX_CONFIG_FILE
 * bytes). Its base version, when given, must be in `s`.
 * Errors: HUB_E_IO (cannot read; where = path), HUB_E_PARSE (not JSON;
 * msg has line and column), HUB_E_CONFIG (a bad key or value; where =
 * the key, e.g. "fields.PID-3.4"), HUB_E_NOTFOUND (unknown base version),
 * HUB_E_NOMEM. */
hub_status hub_v2_site_load(hub_v2_profset *s, const char *path,
                            hub_v2_site **out, hub_err *err);
/* The same from JSON text in memory (`p`/`n`, need not be NUL-terminated);
 * `where` names it in errors. */
hub_status hub_v2_site_parse(hub_v2_profset *s, const char *p, size_t n,
                             const char *where, hub_v2_site **out,
                             hub_err *err);
void hub_v2_site_free(hub_v2_site *site); /* NULL is a no-op */
/* Applies the site profile's own "policy" overrides to `p`. */
void hub_v2_site_policy(const hub_v2_site *site, hub_v2_policy *p);
/* A structure the site profile defines (as hub_v2_profile_struct_def),
 * or NULL. */
const hub_v2_struct_def *hub_v2_site_struct_def(const hub_v2_site *site,
                                                const char *name);
/* The profile's "name"; borrowed. */
const char *hub_v2_site_name(const hub_v2_site *site);

/* ---- validate -------------------------------------------------------------- */

typedef struct {
    hub_v2_finding *items; /* arena array */
    size_t n;
    size_t nerrors, nwarnings, ninfos;
    bool truncated;        /* more than `max` findings: the rest dropped */
    const char *version;   /* base version used (borrowed), NULL if none */
    const char *structure; /* structure validated against, NULL if none */
} hub_v2_findings;

typedef struct {
    const hub_v2_site *site;     /* NULL: base profile only */
    const hub_v2_policy *policy; /* NULL: the defaults with the site's
                                  * own overrides; else used as is */
    size_t max;                  /* findings kept; 0 means 1000 */
} hub_v2_validate_opts;

/* Validates parsed message `m`: version (MSH-12), message type and event
 * (MSH-9), processing id (MSH-11), structure (segment order, groups,
 * cardinality, Z-segments), required fields and components, datatypes
 * (DTM/DT/TM, NM, SI), coded values (ID, IS, CE/CWE/CNE with an HL7 coding
 * system), lengths, and the parser's charset warnings. Findings are
 * allocated in `a` and sorted by segment. A failure to load the base
 * profile is a finding (207), not an error.
 * Errors: HUB_E_NOMEM only. */
hub_status hub_v2_validate(hub_arena *a, hub_v2_profset *s,
                           const hub_v2_msg *m,
                           const hub_v2_validate_opts *opts,
                           hub_v2_findings *out, hub_err *err);

/* Checks one value against a datatype, as the validator does: 0 when
 * valid, else the rule it breaks (HUB_V2R_DATE_IMPOSSIBLE,
 * HUB_V2R_DATE_FORMAT or HUB_V2R_NUMBER) with a literal reason in *why.
 * Known datatypes: DTM, TS (first component), DT, TM, NM, SI. */
int hub_v2_check_value(const char *datatype, hub_slice v, const char **why);

#endif
