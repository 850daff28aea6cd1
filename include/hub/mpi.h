/* mpi: the patient index. One person, one golden Patient.
 *
 * Every source keeps its own Patient, untouched but for one element: a
 * Patient.link of type `refer` to the person's golden Patient. The golden
 * Patient is the hub's own: it carries the meta.tag
 *     system HUB_MPI_TAG_SYSTEM, code "golden"
 * (see docs/mpi.md), a `seealso` link to each source, every identifier of
 * the sources, and the other elements chosen per element from the sources
 * (survivorship: most trusted source, then most complete, then most
 * recent).
 *
 * Matching runs in the writer's transaction on every Patient write that a
 * client made (depth 0; never for golden Patients): deterministic first
 * (the same identifier system and value; trusted identifier types such as
 * SSN across sources), then Fellegi-Sunter scoring of the candidates found
 * through blocking keys. Three outcomes: auto-link, possible match (a new
 * golden plus an entry in the review queue) or no match (a new golden).
 *
 * The comparison functions (normalization, phonetics, Jaro-Winkler,
 * nicknames, per-field comparators, weights, EM) are public so that tests
 * and the benchmark can use them directly. */
#ifndef HUB_MPI_H
#define HUB_MPI_H

#include <jansson.h>

#include "hub/core.h"
#include "hub/record.h"
#include "hub/store.h"

#define HUB_MPI_TAG_SYSTEM "https://hub.example.org/fhir/CodeSystem/mpi"
#define HUB_MPI_TAG_GOLDEN "golden"

/* ---- features and comparators ------------------------------------------------ */

/* What matching looks at, normalized: lower-case ASCII letters for names
 * (accents folded, punctuation dropped), digits for phones (last 10),
 * YYYY-MM-DD for the birth date. "" when absent. */
typedef struct {
    char family[48], given[48], middle[48];
    char family_ph[16], given_ph[16]; /* NYSIIS codes */
    char birth[11];
    char sex;                         /* 'm' 'f' 'o' 'u' or 0 */
    char line[80], zip[12], city[40];
    char phone[12];
    char email[80];
} hub_mpi_feat;

/* Features of a Patient resource (JSON object). */
void hub_mpi_feat_of(const json_t *patient, hub_mpi_feat *f);
/* One line of text (tab-separated), for the store, and back. `out` has at
 * least HUB_MPI_FEAT_TEXT bytes. */
#define HUB_MPI_FEAT_TEXT 512
void hub_mpi_feat_encode(const hub_mpi_feat *f, char *out);
void hub_mpi_feat_decode(const char *text, hub_mpi_feat *f);

/* Lower-case ASCII letters only (Latin-1 accents in UTF-8 folded). */
void hub_mpi_norm_name(const char *in, char *out, size_t cap);
/* NYSIIS code of a normalized name (at most 8 letters kept). */
void hub_mpi_nysiis(const char *name, char *out, size_t cap);
/* Jaro-Winkler similarity in [0, 1]. */
double hub_mpi_jaro_winkler(const char *a, const char *b);
/* True when a and b (normalized given names) are nicknames of each other
 * or of one formal name (the table loaded by hub_mpi_nicknames_load). */
bool hub_mpi_nickname(const char *a, const char *b);
/* Loads the nickname table (tab-separated: formal name, then its
 * nicknames; '#' comments). Process-wide, at start-up. HUB_E_IO,
 * HUB_E_NOMEM. Without it no names are nicknames. */
hub_status hub_mpi_nicknames_load(const char *path, hub_err *err);
void hub_mpi_nicknames_free(void);

/* The fields compared and their agreement levels. */
typedef enum {
    HUB_MPI_F_FAMILY, HUB_MPI_F_GIVEN, HUB_MPI_F_BIRTH, HUB_MPI_F_SEX,
    HUB_MPI_F_ADDRESS, HUB_MPI_F_PHONE, HUB_MPI_F_EMAIL, HUB_MPI__F_COUNT
} hub_mpi_field;
typedef enum {
    HUB_MPI_MISSING = -1, /* either side absent: weight 0 */
    HUB_MPI_DIFF = 0,
    HUB_MPI_PARTIAL = 1,  /* initial; zip only */
    HUB_MPI_CLOSE = 2,    /* phonetic, edit distance, nickname, day/month swap,
                             one digit */
    HUB_MPI_EXACT = 3,
    HUB_MPI__L_COUNT = 4
} hub_mpi_level;
const char *hub_mpi_field_name(hub_mpi_field f);

/* The comparison vector of two records (names transposed are detected:
 * family against given both ways). */
void hub_mpi_compare(const hub_mpi_feat *a, const hub_mpi_feat *b,
                     int8_t lv[HUB_MPI__F_COUNT]);

/* m and u probabilities per field and level. */
typedef struct {
    double m[HUB_MPI__F_COUNT][HUB_MPI__L_COUNT];
    double u[HUB_MPI__F_COUNT][HUB_MPI__L_COUNT];
} hub_mpi_weights;
/* The configured defaults. */
void hub_mpi_weights_default(hub_mpi_weights *w);
/* log2(m/u) of one field at one level; 0 for MISSING. */
double hub_mpi_weight(const hub_mpi_weights *w, hub_mpi_field f, int level);
/* The total score; contributions per field in `contrib` (may be NULL). */
double hub_mpi_score(const hub_mpi_weights *w, const int8_t lv[HUB_MPI__F_COUNT],
                     double contrib[HUB_MPI__F_COUNT]);

/* Estimates m and u (and the match proportion *p) from comparison vectors
 * of candidate pairs by expectation-maximization (two latent classes,
 * fields conditionally independent), starting from *w; at most `iters`
 * rounds. Levels that never occur keep a small floor. */
void hub_mpi_em(const int8_t (*vecs)[HUB_MPI__F_COUNT], size_t n, int iters,
                hub_mpi_weights *w, double *p);

/* A record's fingerprint, kept with each of its blocking rows (never 0;
 * a row written before fingerprints existed reads 0): hashes of its name
 * codes, zip, address line, phone, email and sender, its birth date and
 * sex, in 64 bits. Enough to bound the score of a pair without reading
 * the candidate's row. */
uint64_t hub_mpi_fingerprint(const hub_mpi_feat *f, const char *sender);
/* An upper bound of hub_mpi_score(w, hub_mpi_compare(a, b)) over every
 * record b whose fingerprint is fp (a hash that collides only loosens
 * it); +INFINITY for fp 0. */
double hub_mpi_bound(const hub_mpi_weights *w, const hub_mpi_feat *a, uint64_t fp);
/* False when the record of fingerprint fp certainly did not come from
 * `sender` (a non-empty sender whose hash differs). */
bool hub_mpi_fingerprint_sender(uint64_t fp, const char *sender);

/* Blocking keys of a record (plus its identifier keys, see mpi.c):
 * written to `keys` (each NUL-terminated, at most 96 bytes), the count
 * returned (at most `cap`). */
size_t hub_mpi_block_keys(const hub_mpi_feat *f, char (*keys)[96], size_t cap);

/* ---- the index ------------------------------------------------------------------- */

typedef struct hub_mpi hub_mpi;

typedef struct {
    hub_record *record;
    /* The "mpi" object of the configuration file, or NULL (defaults):
     *   auto_link   score at or above which records link (default 15)
     *   review      score at or above which a pair goes to review (10)
     *   trusted_types  identifier type codes (v2-0203) that link across
     *                  sources by value: ["SS", "NI"] by default
     *   trusted_systems identifier systems treated the same way
     *                  (default the US SSN system)
     *   trusted_sources senders (MSH-3^MSH-4, or "http"), most trusted
     *                  first, for survivorship
     *   weights     {"family": {"m": [diff, partial, close, exact],
     *                "u": [...]}, ...} overriding the defaults
     *   block_limit candidates read per blocking key (default 32) */
    const json_t *conf;
    const char *nicknames; /* the nickname table's path, or NULL */
} hub_mpi_cfg;

/* Registers the listener and the patient-id expansion on cfg->record.
 * HUB_E_CONFIG for a bad "mpi" section (err names the key). */
hub_status hub_mpi_open(const hub_mpi_cfg *c, hub_mpi **out, hub_err *err);
void hub_mpi_close(hub_mpi *m); /* NULL is a no-op */

/* The weights in use (tests, the EM command). */
hub_mpi_weights *hub_mpi_weights_of(hub_mpi *m);

/* Candidates a feature key brought since hub_mpi_open (the benchmark's
 * figures): read and scored, skipped on their fingerprint's bound, kept
 * aside for the same-sender veto (cand_skip in mpi.c). Counted on the
 * writer; read when it is idle. */
typedef struct {
    uint64_t read, skipped, aside;
} hub_mpi_stats;
void hub_mpi_stats_of(const hub_mpi *m, hub_mpi_stats *out);

/* One scored candidate of hub_mpi_match. */
typedef struct {
    char golden[72];  /* the person's golden Patient */
    char source[72];  /* the best-scoring source Patient of that person */
    double score;
    double contrib[HUB_MPI__F_COUNT];
    bool certain;     /* an identifier decided it */
} hub_mpi_candidate;

/* Candidates for `patient` (a Patient JSON object), best first, at most
 * `cap`, each person once: what Patient/$match answers. Runs as a writer
 * job and waits. */
hub_status hub_mpi_match(hub_mpi *m, const json_t *patient, hub_mpi_candidate *out,
                         size_t cap, size_t *n, hub_err *err);

/* Merges the person of source Patient `from` into the person of `into`
 * (both source or golden ids): every source of from's golden moves to
 * into's golden, the emptied golden becomes inactive with a replaced-by
 * link. Inside a writer job (ADT^A40 and $merge use it). */
hub_status hub_mpi_merge_tx(hub_mpi *m, hub_store_tx *tx, const char *from,
                            const char *into, const hub_actor *actor, hub_err *err);

/* Registers Patient/$match, $merge, $mpi-link, $mpi-unlink,
 * $mpi-not-same, $mpi-links and $mpi-review (docs/mpi.md). */
struct hub_http_fhir;
hub_status hub_mpi_add_ops(hub_mpi *m, struct hub_http_fhir *f, hub_err *err);

/* ---- store calls (hub/store/mpi.c) ------------------------------------------------ */

/* The person row of a source: features, the sender it came from, and its
 * blocking keys (n of them; only the key rows that changed are written).
 * The row also names the source's golden (kept by link_put and link_del),
 * which hub_mpi_st_candidates reads with the features. */
/* `fp` (hub_mpi_fingerprint) goes into every blocking row; kept rows are
 * rewritten when it changes. */
hub_status hub_mpi_st_person_put(hub_store_tx *tx, const char *source, const char *sender,
                                 const char *feat, uint64_t fp, char (*keys)[96], size_t n,
                                 int64_t updated_ms, hub_err *err);
/* HUB_E_NOTFOUND when absent; feat/sender copied into the buffers. */
hub_status hub_mpi_st_person_get(hub_store_tx *tx, const char *source, char *feat,
                                 size_t feat_cap, char *sender, size_t sender_cap,
                                 hub_err *err);
/* The person row and its blocking keys. */
hub_status hub_mpi_st_person_del(hub_store_tx *tx, const char *source, hub_err *err);
typedef hub_status (*hub_mpi_st_id_fn)(void *ud, const char *id);
/* Sources with blocking key `key`, newest first, at most `limit`, each
 * with the fingerprint its row holds (0: none). */
typedef hub_status (*hub_mpi_st_block_fn)(void *ud, const char *id, uint64_t fp);
hub_status hub_mpi_st_block_find(hub_store_tx *tx, const char *key, int limit,
                                 hub_mpi_st_block_fn fn, void *ud, hub_err *err);
/* The features, sender and golden of up to HUB_MPI_ST_BATCH candidate
 * sources, in one read: fn once per source that is indexed and linked (in
 * no particular order; strings borrowed during the call). */
#define HUB_MPI_ST_BATCH 32
typedef hub_status (*hub_mpi_st_cand_fn)(void *ud, const char *source, const char *feat,
                                         const char *sender, const char *golden);
hub_status hub_mpi_st_candidates(hub_store_tx *tx, const char *const *ids, size_t n,
                                 hub_mpi_st_cand_fn fn, void *ud, hub_err *err);

/* A link: source -> golden, with how it was made and why. */
typedef struct {
    char golden[72];
    char how[16];     /* identifier, trusted, score, manual, merge, new */
    double score;
} hub_mpi_st_link;
hub_status hub_mpi_st_link_get(hub_store_tx *tx, const char *source, hub_mpi_st_link *out,
                               hub_err *err);
hub_status hub_mpi_st_link_put(hub_store_tx *tx, const char *source, const char *golden,
                               const char *how, double score, const char *detail,
                               hub_err *err);
hub_status hub_mpi_st_link_del(hub_store_tx *tx, const char *source, hub_err *err);
/* The sources of a golden (writer side). */
hub_status hub_mpi_st_sources_tx(hub_store_tx *tx, const char *golden, hub_mpi_st_id_fn fn,
                                 void *ud, hub_err *err);
/* Reader side: the sources of a golden, into `a`. */
hub_status hub_mpi_st_sources(hub_store *s, const char *golden, hub_arena *a,
                              const char ***ids, size_t *n, hub_err *err);
/* Reader side: the golden of a source; HUB_E_NOTFOUND when none. */
hub_status hub_mpi_st_golden_of(hub_store *s, const char *source, char golden[72],
                                hub_err *err);

/* "Not the same person" pairs (stored both ways). */
hub_status hub_mpi_st_nomatch_put(hub_store_tx *tx, const char *a, const char *b,
                                  hub_err *err);
hub_status hub_mpi_st_nomatch_has(hub_store_tx *tx, const char *a, const char *b,
                                  bool *out, hub_err *err);
/* Every source declared not the same person as `a`. */
hub_status hub_mpi_st_nomatch_of(hub_store_tx *tx, const char *a, hub_mpi_st_id_fn fn,
                                 void *ud, hub_err *err);

/* The link history: what happened, to which source and golden, why. */
hub_status hub_mpi_st_history_add(hub_store_tx *tx, const char *action, const char *source,
                                  const char *golden, double score, const char *detail,
                                  const char *actor, hub_err *err);

/* Review queue. */
typedef struct {
    int64_t id;
    char source[72], golden[72], status[16];
    double score;
    const char *detail; /* borrowed during the callback */
    int64_t created_ms;
} hub_mpi_st_review;
hub_status hub_mpi_st_review_add(hub_store_tx *tx, const char *source, const char *golden,
                                 double score, const char *detail, hub_err *err);
/* status NULL: open items only. */
typedef hub_status (*hub_mpi_st_review_fn)(void *ud, const hub_mpi_st_review *r);
hub_status hub_mpi_st_review_list(hub_store_tx *tx, bool open_only, int limit,
                                  hub_mpi_st_review_fn fn, void *ud, hub_err *err);
hub_status hub_mpi_st_review_get(hub_store_tx *tx, int64_t id, hub_mpi_st_review *out,
                                 hub_err *err);
hub_status hub_mpi_st_review_close(hub_store_tx *tx, int64_t id, const char *status,
                                   hub_err *err);
/* Closes the open items naming `source`. */
hub_status hub_mpi_st_review_drop(hub_store_tx *tx, const char *source, hub_err *err);

/* Link rows with their detail, and history rows, of a source or golden. */
typedef struct {
    const char *source, *golden, *how, *detail, *action, *actor;
    double score;
    int64_t at_ms;
} hub_mpi_st_row;
typedef hub_status (*hub_mpi_st_row_fn)(void *ud, const hub_mpi_st_row *r);
hub_status hub_mpi_st_links_of(hub_store_tx *tx, const char *id, hub_mpi_st_row_fn fn,
                               void *ud, hub_err *err);
hub_status hub_mpi_st_history_of(hub_store_tx *tx, const char *id, int limit,
                                 hub_mpi_st_row_fn fn, void *ud, hub_err *err);

#endif
