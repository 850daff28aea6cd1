/* patient index internals shared by mpi.c and mpi_ops.c. */
#ifndef HUB_RECORD_MPI_INTERNAL_H
#define HUB_RECORD_MPI_INTERNAL_H

#include "hub/mpi.h"

struct hub_mpi {
    hub_record *record;
    hub_store *store;
    hub_mpi_weights w;
    double auto_link, review;
    int block_limit;
    bool source_links; /* write Patient.link refer on the sources */
    char trusted_types[8][128];
    int ntypes;
    char trusted_systems[8][128];
    int nsystems;
    char trusted_sources[8][128];
    int nsources;
    /* On the writer, during the pre-write hook: the source about to be
     * written (its link is amended, not written) and whether it was. */
    const char *pending;
    bool pending_amended;
    hub_mpi_stats stats; /* on the writer */
};

/* One candidate person: its golden, the best-scoring source, why. */
typedef struct {
    char golden[72];
    char source[72];
    double score;
    double contrib[HUB_MPI__F_COUNT];
    int8_t lv[HUB_MPI__F_COUNT];
    bool certain;  /* an identifier key found it */
    bool conflict; /* the same sender holds another record of that person */
    bool veto;     /* given name or birth date disagree: never automatic */
} person_score;

hub_status hub__mpi_prewrite(void *ud, hub_store_tx *tx, hub_record_pending *pw,
                             bool *changed, hub_err *err);
hub_status hub__mpi_listener(void *ud, hub_store_tx *tx, const hub_record_change *ch,
                             hub_err *err);
bool hub__mpi_is_golden(const json_t *p);
const char *hub__mpi_ref_id(const char *ref);
hub_status hub__mpi_candidates(hub_mpi *m, hub_store_tx *tx, const char *self,
                               const hub_mpi_feat *f, const char *sender, char (*keys)[96],
                               size_t nkeys, size_t nid, person_score *out, size_t cap,
                               size_t *n, hub_err *err);
size_t hub__mpi_identifier_keys(const hub_mpi *m, const json_t *p, char (*keys)[96],
                                size_t cap);
hub_status hub__mpi_golden_refresh(hub_mpi *m, hub_store_tx *tx, const char *gid,
                                   const char *into, const hub_actor *actor, hub_err *err);
hub_status hub__mpi_link_to(hub_mpi *m, hub_store_tx *tx, const char *id, json_t *p,
                            const char *gid, const char *how, double score, const char *detail,
                            const hub_actor *actor, hub_err *err);
hub_status hub__mpi_process(hub_mpi *m, hub_store_tx *tx, const char *id, json_t *p,
                            const char *sender, bool reeval, const hub_actor *actor,
                            hub_err *err);
hub_status hub__mpi_unindex(hub_mpi *m, hub_store_tx *tx, const char *id,
                            const hub_actor *actor, hub_err *err);
hub_status hub__mpi_load_patient(hub_store_tx *tx, const char *id, json_t **out,
                                 int64_t *updated_ms, hub_err *err);
void hub__mpi_detail_json(const double *contrib, const int8_t *lv, char *out, size_t cap);
void hub__mpi_actor_text(const hub_actor *a, char *out, size_t cap);

/* Runs fn(tx, ud) as a writer job and waits; returns the job's status. */
hub_status hub__mpi_run(hub_mpi *m, hub_status (*fn)(hub_store_tx *tx, void *ud, hub_err *err),
                        void *ud, hub_err *err);

#endif
