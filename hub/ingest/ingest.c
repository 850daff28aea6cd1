/* The ingest path. A job owns a copy of the frame, an arena for the parse,
 * the findings and the ACK; the loop thread builds it, the writer thread
 * journals it, and its `done` callback queues the reply and frees it. */
#include "hub/ingest.h"
#include "hub/auth.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* Jobs kept for reuse, with their arena block and buffers: a message then
 * costs no malloc of its own. Bounded, and a job that grew past the
 * limits below is freed rather than kept. */
#define JOB_POOL_MAX 64
#define JOB_ARENA_BLOCK (32u << 10)
#define JOB_KEEP_BYTES (64u << 10)

struct hub_ingest {
    hub_ingest_cfg cfg;
    hub_mllp_server *srv;
    /* Jobs built in this round of the loop, in arrival order (loop thread
     * only): handed to the store together by hub_ingest_on_round. */
    hub_store_job *batch, **batch_tail;
    atomic_llong in_flight;
    /* Answered jobs, given back by the loop thread (spent_free) at its next
     * round with frames, or by hub_ingest_free: a mapped job's Bundle and
     * prepared transaction took 0.7M instructions a message to free,
     * which the writer thread, the busier of the two, no longer spends.
     * Only the jobs answered since that round wait here. */
    _Atomic(struct ingest_job *) spent;
    hub_metric *m_accepted, *m_errored, *m_rejected, *m_dup, *m_failed;
    hub_metric *m_mapped, *m_map_failed, *m_unmapped;
    /* Finished jobs for reuse (job_get, job_put): the loop thread takes
     * them and gives them back (spent_free); hub_ingest_free empties it. */
    pthread_mutex_t pool_mu;
    struct ingest_job *pool;
    size_t npool;
};

typedef struct ingest_job {
    hub_store_job job;
    struct ingest_job *spent_next;
    hub_ingest *in;
    struct ingest_job *pool_next;
    size_t frame_cap;  /* bytes allocated at frame */
    uint64_t conn_id, seq;
    bool close_after;
    int64_t t0_ns;
    hub_arena arena;
    char *frame;
    size_t n;
    hub_journal_row row;
    hub_buf ack;   /* framed? no: the bare ACK message */
    bool send_ack; /* false when MSH-15/16 ask for no ACK */
    bool dup;      /* answered from the journal */
    hub_buf dup_ack;
    hub_v2_msg *msg;       /* parsed (in arena), NULL when it did not parse */
    json_t *bundle;        /* the mapped Bundle */
    hub_record_txn *txn;   /* prepared for the writer */
    bool apply_failed;     /* the record refused it (set by the writer) */
    hub_actor actor;       /* who the mapped changes come from */
    bool force_original;
    char channel[64], peer[64], identity[256], sender[160], control_id[200],
        msg_type[80], version[16], ack_code[4];
} ingest_job;

hub_status hub_ingest_new(const hub_ingest_cfg *c, hub_ingest **out,
                          hub_err *err) {
    hub_ingest *in = hub_calloc(1, sizeof *in);
    if (in == NULL) return hub_err_set(err, HUB_E_NOMEM, "ingest", "out of memory");
    in->cfg = *c;
    in->batch_tail = &in->batch;
    pthread_mutex_init(&in->pool_mu, NULL);
    if (in->cfg.ack_app == NULL) in->cfg.ack_app = "HUB";
    if (in->cfg.ack_facility == NULL) in->cfg.ack_facility = "HUB";
    in->m_accepted = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_messages_total",
                                    "result=\"accepted\"", "MLLP messages by result.");
    in->m_errored = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_messages_total",
                                   "result=\"errored\"", "MLLP messages by result.");
    in->m_rejected = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_messages_total",
                                    "result=\"rejected\"", "MLLP messages by result.");
    in->m_dup = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_messages_total",
                               "result=\"duplicate\"", "MLLP messages by result.");
    in->m_failed = hub_metric_get(HUB_METRIC_COUNTER, "hub_mllp_messages_total",
                                  "result=\"store_failed\"", "MLLP messages by result.");
    in->m_mapped = hub_metric_get(HUB_METRIC_COUNTER, "hub_map_messages_total",
                                  "result=\"applied\"", "Messages mapped to FHIR, by result.");
    in->m_map_failed = hub_metric_get(HUB_METRIC_COUNTER, "hub_map_messages_total",
                                      "result=\"failed\"", "Messages mapped to FHIR, by result.");
    in->m_unmapped = hub_metric_get(HUB_METRIC_COUNTER, "hub_map_unmapped_codes_total", NULL,
                                    "Codes kept and flagged because no table mapped them.");
    *out = in;
    return HUB_OK;
}

void hub_ingest_set_server(hub_ingest *in, hub_mllp_server *srv) { in->srv = srv; }

int64_t hub_ingest_in_flight(const hub_ingest *in) {
    return atomic_load(&((hub_ingest *)in)->in_flight);
}

static void job_free(ingest_job *j) {
    hub_record_txn_free(j->txn);
    json_decref(j->bundle);
    hub_arena_release(&j->arena);
    hub_buf_release(&j->ack);
    hub_buf_release(&j->dup_ack);
    hub_free(j->frame);
    hub_free((char *)j->row.errors); /* malloc'd by jansson or hub_strdup */
    hub_free(j);
}

/* A job as new (zeroed, arena and buffers empty), from the pool if it has
 * one; NULL when out of memory. */
static ingest_job *job_get(hub_ingest *in) {
    pthread_mutex_lock(&in->pool_mu);
    ingest_job *j = in->pool;
    if (j) {
        in->pool = j->pool_next;
        in->npool--;
    }
    pthread_mutex_unlock(&in->pool_mu);
    if (j == NULL) {
        j = hub_calloc(1, sizeof *j);
        if (j == NULL) return NULL;
        hub_arena_init(&j->arena, JOB_ARENA_BLOCK);
        hub_buf_init(&j->ack);
        hub_buf_init(&j->dup_ack);
        return j;
    }
    hub_arena arena = j->arena;
    hub_buf ack = j->ack, dup_ack = j->dup_ack;
    char *frame = j->frame;
    size_t frame_cap = j->frame_cap;
    memset(j, 0, sizeof *j);
    j->arena = arena;
    j->ack = ack;
    j->ack.n = 0;
    j->dup_ack = dup_ack;
    j->dup_ack.n = 0;
    j->frame = frame;
    j->frame_cap = frame_cap;
    return j;
}

/* Gives a finished job back: kept for reuse unless the pool is full or
 * the job holds more than a usual message needs. */
static void job_put(hub_ingest *in, ingest_job *j) {
    if (j->frame_cap > JOB_KEEP_BYTES || j->ack.cap > JOB_KEEP_BYTES ||
        j->dup_ack.cap > JOB_KEEP_BYTES) {
        job_free(j);
        return;
    }
    hub_record_txn_free(j->txn);
    j->txn = NULL;
    json_decref(j->bundle);
    j->bundle = NULL;
    hub_free((char *)j->row.errors);
    j->row.errors = NULL;
    hub_arena_reset(&j->arena); /* keeps one block, frees the rest */
    pthread_mutex_lock(&in->pool_mu);
    bool keep = in->npool < JOB_POOL_MAX;
    if (keep) {
        j->pool_next = in->pool;
        in->pool = j;
        in->npool++;
    }
    pthread_mutex_unlock(&in->pool_mu);
    if (!keep) job_free(j);
}

/* An answered job, to be freed by spent_free (any thread). */
static void spent_push(hub_ingest *in, ingest_job *j) {
    ingest_job *head = atomic_load(&in->spent);
    do {
        j->spent_next = head;
    } while (!atomic_compare_exchange_weak(&in->spent, &head, j));
}

/* Gives the answered jobs back to the pool (the loop thread, each round;
 * the last at hub_ingest_free). */
static void spent_free(hub_ingest *in) {
    ingest_job *j = atomic_exchange(&in->spent, NULL);
    while (j) {
        ingest_job *next = j->spent_next;
        job_put(in, j);
        j = next;
    }
}

void hub_ingest_free(hub_ingest *in) {
    if (in == NULL) return;
    spent_free(in);
    while (in->pool) {
        ingest_job *j = in->pool;
        in->pool = j->pool_next;
        job_free(j);
    }
    pthread_mutex_destroy(&in->pool_mu);
    hub_free(in);
}

/* Copies a decoded value into a fixed field, dropping control bytes so a
 * journal line always stays one line. */
static void copy_text(char *dst, size_t cap, const char *src) {
    size_t o = 0;
    for (; src && *src && o + 1 < cap; src++)
        dst[o++] = (unsigned char)*src < 0x20 ? ' ' : *src;
    dst[o] = '\0';
}

/* The first non-empty component of an HD (namespace id, else universal id). */
static const char *hd_name(hub_arena *a, const hub_v2_msg *m, hub_slice hd) {
    hub_v2_delims d = hub_v2_msg_delims(m);
    for (size_t i = 1; i <= 2; i++) {
        hub_slice c = hub_v2_split(hd, d.comp, i, NULL);
        if (c.p && c.n) return hub_v2_text(a, m, c);
    }
    return "";
}

/* Appends n bytes of p (up to a NUL among them) to the NUL-terminated
 * text in dst[cap] at *k, truncating: what snprintf's "%.*s" writes. */
static void put_text(char *dst, size_t cap, size_t *k, const char *p, size_t n) {
    if (*k + 1 >= cap) return;
    n = p ? strnlen(p, n) : 0;
    if (n > cap - 1 - *k) n = cap - 1 - *k;
    if (n) memcpy(dst + *k, p, n);
    *k += n;
    dst[*k] = '\0';
}

/* The ACK code (MSA-1) of an ACK built by hub_v2_ack_build, whose MSA
 * follows the MSH; any other layout is searched for. */
static void ack_code_of(const hub_buf *ack, char out[4]) {
    out[0] = '\0';
    hub_slice code = {NULL, 0};
    const char *cr = ack->n > 8 ? memchr(ack->p, '\r', ack->n) : NULL;
    size_t at = cr ? (size_t)(cr - ack->p) + 1 : 0;
    char fs = ack->n > 3 ? ack->p[3] : '|';
    if (cr && at + 4 < ack->n && memcmp(ack->p + at, "MSA", 3) == 0 && ack->p[at + 3] == fs) {
        const char *v = ack->p + at + 4, *end = ack->p + ack->n;
        const char *e = v;
        while (e < end && *e != fs && *e != '\r') e++;
        code = (hub_slice){v, (size_t)(e - v)};
    } else if (!hub_mllp_field((hub_slice){ack->p, ack->n}, "MSA", 1, &code)) {
        return;
    }
    size_t k = 0;
    put_text(out, 4, &k, code.p, code.n < 3 ? code.n : 3);
}

/* Bytes a JSON string cannot hold as they are: controls, '"' and '\\'. */
static const bool json_special[256] = {
    [0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
    [0x07] = 1, [0x08] = 1, [0x09] = 1, [0x0a] = 1, [0x0b] = 1, [0x0c] = 1, [0x0d] = 1,
    [0x0e] = 1, [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1,
    [0x15] = 1, [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1,
    [0x1c] = 1, [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, ['"'] = 1, ['\\'] = 1,
};

/* Appends `t` as a JSON string body (no quotes), copying runs of bytes
 * that need no escape at once. */
static void json_escape(hub_buf *b, const char *t) {
    static const char hex[] = "0123456789abcdef";
    if (t == NULL) return;
    for (;;) {
        const char *run = t;
        while (!json_special[(unsigned char)*t]) t++;
        if (t > run) hub_buf_append(b, run, (size_t)(t - run));
        unsigned char c = (unsigned char)*t;
        if (c == '\0') return;
        t++;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            hub_buf_append(b, e, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            hub_buf_append(b, e, 6);
        }
    }
}

/* Decimal digits of v into out[16]; returns the first. */
static const char *dec(char out[16], unsigned v) {
    size_t n = 15;
    out[n] = '\0';
    do {
        out[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n);
    return out + n;
}

/* Findings as a JSON array for the journal: location, code, severity and
 * diagnosis, never values. Written by hand: this runs for every message.
 * Heap-allocated (hub_malloc); NULL when there are none. */
static char *findings_json(const hub_v2_finding *f, size_t n) {
    if (n == 0) return NULL;
    hub_buf b;
    hub_buf_init(&b);
    hub_buf_reserve(&b, 128 * (n < 200 ? n : 200));
    hub_buf_append(&b, "[", 1);
    for (size_t i = 0; i < n && i < 200; i++) {
        char loc[64], num[16];
        hub_v2_loc_format(&f[i].loc, loc, sizeof loc);
        hub_buf_append_cstr(&b, i ? ",{\"location\":\"" : "{\"location\":\"");
        json_escape(&b, loc);
        hub_buf_append_cstr(&b, "\",\"code\":");
        hub_buf_append_cstr(&b, f[i].code < 0 ? "-" : "");
        hub_buf_append_cstr(&b, dec(num, f[i].code < 0 ? 0u - (unsigned)f[i].code
                                                        : (unsigned)f[i].code));
        char sev[] = ",\"severity\":\"E\",\"text\":\"";
        sev[13] = f[i].severity ? f[i].severity : 'E';
        hub_buf_append(&b, sev, sizeof sev - 1);
        json_escape(&b, f[i].text);
        hub_buf_append(&b, "\"}", 2);
    }
    if (hub_buf_append(&b, "]", 1) != HUB_OK) {
        hub_buf_release(&b);
        return NULL;
    }
    return b.p;
}

/* The record refused the mapped Bundle (on the writer: rare). The message
 * stays journaled as errored with an AE naming what failed, without the
 * values. */
static void refused(ingest_job *j, hub_oo *oo) {
    j->apply_failed = true;
    j->row.status = HUB_MSG_ERRORED;
    char text[200] = "the record refused the mapped resources";
    json_t *oj = oo ? hub_oo_json(oo) : NULL;
    const char *expr = json_string_value(
        json_array_get(json_object_get(json_array_get(json_object_get(oj, "issue"), 0),
                                       "expression"),
                       0));
    if (expr) snprintf(text, sizeof text, "the record refused the mapped resources at %.140s", expr);
    json_decref(oj);
    hub_v2_finding f = {.code = HUB_V2_E_INTERNAL, .severity = HUB_V2_SEV_ERROR,
                        .text = text, .offset = SIZE_MAX};
    f.loc.seg = UINT32_MAX;
    hub_free((char *)j->row.errors);
    j->row.errors = findings_json(&f, 1);
    if (j->msg) {
        hub_buf_release(&j->ack);
        hub_buf_init(&j->ack);
        hub_v2_ack_req req = {.status = HUB_V2_ACK_ERROR, .findings = &f, .nfindings = 1,
                              .app = j->in->cfg.ack_app, .facility = j->in->cfg.ack_facility,
                              .force_original = j->force_original};
        hub_v2_ack_build(j->msg, &req, &j->ack, NULL);
        j->send_ack = req.force_original || hub_v2_ack_wanted(j->msg, req.status);
        j->row.ack = j->ack.p;
        j->row.ack_len = j->ack.n;
        snprintf(j->ack_code, sizeof j->ack_code, "%s",
                 hub_v2_msg_ack_mode(j->msg) == HUB_V2_ACKMODE_ENHANCED && !j->force_original
                     ? "CE" : "AE");
    }
}

static hub_status job_run_inner(hub_store_tx *tx, hub_store_job *sj, hub_err *err);

/* The audit row of a message commits with its journal row. */
static hub_status job_run(hub_store_tx *tx, hub_store_job *sj, hub_err *err) {
    ingest_job *j = (ingest_job *)sj;
    hub_status rc = job_run_inner(tx, sj, err);
    if (rc || j->in->cfg.audit == NULL || j->dup) return rc;
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)j->row.id);
    hub_audit_event ev = {.kind = HUB_AUDIT_MLLP,
                          .outcome = j->row.status == HUB_MSG_REJECTED  ? 8
                                     : j->row.status == HUB_MSG_ERRORED ? 4
                                                                        : 0,
                          .at_ms = j->row.received_ms,
                          .subject = j->row.identity && *j->row.identity ? j->row.identity : NULL,
                          .peer = j->row.peer,
                          .channel = j->row.channel,
                          .sender = j->row.sender && *j->row.sender ? j->row.sender : NULL,
                          .entity_type = "Message",
                          .entity_id = id,
                          .detail = j->msg_type[0] ? j->msg_type : NULL};
    return hub_audit_record_tx(j->in->cfg.audit, tx, &ev, err);
}

/* A resend (the sender lost our ACK) is answered with the ACK we sent, and
 * nothing is processed: HUB_OK with j->dup set. Otherwise `none`, with err
 * as it was, or the lookup's error. */
static hub_status answer_dup(hub_store_tx *tx, ingest_job *j, hub_status none,
                             hub_err *err) {
    hub_journal_row dup;
    hub_err ferr;
    hub_status rc = hub_journal_find_dup(tx, j->row.sender, j->row.control_id, &dup, &ferr);
    if (rc == HUB_E_NOTFOUND) return none;
    if (rc != HUB_OK) {
        if (err) *err = ferr;
        return rc;
    }
    j->dup = true;
    hub_buf_append(&j->dup_ack, dup.ack ? dup.ack : "", dup.ack_len);
    return HUB_OK;
}

static hub_status job_run_inner(hub_store_tx *tx, hub_store_job *sj, hub_err *err) {
    ingest_job *j = (ingest_job *)sj;
    /* A journal-only job may run again after a rollback (rerunnable). */
    j->dup = false;
    j->dup_ack.n = 0;
    if (j->row.status == HUB_MSG_ACCEPTED && j->txn == NULL) {
        /* Journal-only: the insert itself finds a resend, through the
         * unique index on sender and control id, so the common case (not
         * a resend) costs no lookup of its own (5.7k instructions a
         * message, measured). */
        hub_status rc = hub_journal_insert(tx, &j->row, err);
        if (rc != HUB_E_DUP) return rc;
        return answer_dup(tx, j, rc, err);
    }
    if (j->row.status == HUB_MSG_ACCEPTED) {
        hub_status rc = answer_dup(tx, j, HUB_E_NOTFOUND, err);
        if (rc != HUB_E_NOTFOUND) return rc;
    }
    if (j->txn) {
        /* The mapped Bundle and the journal row commit together; a Bundle
         * the record refuses is undone alone and the row says so. The row
         * goes first so that the changes can name the message they came
         * from (provenance, audit, the router's original-message
         * delivery). */
        j->row.status = HUB_MSG_PROCESSED;
        hub_status rc = hub_journal_insert(tx, &j->row, err);
        if (rc) return rc;
        j->actor = (hub_actor){.subject = j->row.identity,
                               .peer = j->row.peer,
                               .channel = j->row.channel,
                               .sender = j->row.sender,
                               .message_id = j->row.id};
        hub_record_txn_set_actor(j->txn, &j->actor);
        rc = hub_store_sp_begin(tx, err);
        if (rc) return rc;
        hub_oo *oo = NULL;
        hub_err aerr;
        hub_err_clear(&aerr);
        rc = hub_record_bundle_tx(j->txn, tx, &oo, &aerr);
        if (rc == HUB_E_STORE || rc == HUB_E_NOMEM || rc == HUB_E_STATE) {
            hub_oo_free(oo);
            if (err) *err = aerr;
            hub_store_sp_end(tx, false, NULL);
            return rc;
        }
        hub_status rc2 = hub_store_sp_end(tx, rc == HUB_OK, err);
        if (rc2) {
            hub_oo_free(oo);
            return rc2;
        }
        if (rc == HUB_OK) {
            hub_oo_free(oo);
            return HUB_OK;
        }
        refused(j, oo);
        hub_oo_free(oo);
        return hub_journal_update(tx, j->row.id, j->row.status, j->ack_code, j->row.ack,
                                  j->row.ack_len, j->row.errors, err);
    }
    return hub_journal_insert(tx, &j->row, err);
}

static void reply(ingest_job *j, const char *ack, size_t n) {
    hub_buf framed;
    hub_buf_init(&framed);
    if (n && hub_mllp_frame_append(&framed, ack, n) != HUB_OK) {
        hub_buf_release(&framed);
        return;
    }
    if (j->in->srv)
        hub_mllp_server_reply(j->in->srv, j->conn_id, j->seq, framed.p, framed.n,
                              j->close_after);
    hub_buf_release(&framed);
}

static void job_done(hub_store_job *sj, hub_status rc, const hub_err *err) {
    ingest_job *j = (ingest_job *)sj;
    hub_ingest *in = j->in;
    double ms = (double)(hub_mono_ns() - j->t0_ns) / 1e6;
    if (rc != HUB_OK) {
        /* Not stored: the sender must not think it was. AE (or CE) with
         * code 207 asks it to resend later. */
        hub_metric_add(in->m_failed, 1);
        HUB_LOG_ERROR("ingest", "store failed conn=%llu control_id='%s' err='%s'",
                      (unsigned long long)j->conn_id, j->control_id,
                      err ? err->msg : "?");
        hub_v2_finding f = {.code = HUB_V2_E_INTERNAL,
                            .severity = HUB_V2_SEV_ERROR,
                            .text = "message could not be stored; resend later",
                            .offset = SIZE_MAX};
        f.loc.seg = UINT32_MAX;
        hub_buf nack;
        hub_buf_init(&nack);
        hub_v2_msg *m = NULL;
        hub_arena_reset(&j->arena);
        hub_v2_ack_req req = {.status = HUB_V2_ACK_ERROR, .findings = &f,
                              .nfindings = 1, .app = in->cfg.ack_app,
                              .facility = in->cfg.ack_facility};
        if (hub_v2_parse(&j->arena, j->frame, j->n, NULL, &m, NULL) == HUB_OK)
            hub_v2_ack_build(m, &req, &nack, NULL);
        else
            hub_v2_ack_build_raw(j->frame, j->n, &req, &nack, NULL);
        reply(j, nack.p, nack.n);
        hub_buf_release(&nack);
    } else if (j->dup) {
        hub_metric_add(in->m_dup, 1);
        HUB_LOG_INFO("ingest", "duplicate conn=%llu channel=%s sender='%s' "
                               "control_id='%s' action=resend-ack",
                     (unsigned long long)j->conn_id, j->channel, j->sender,
                     j->control_id);
        reply(j, j->dup_ack.p, j->dup_ack.n);
    } else {
        hub_metric_add(j->row.status == HUB_MSG_ACCEPTED || j->row.status == HUB_MSG_PROCESSED
                           ? in->m_accepted
                       : j->row.status == HUB_MSG_ERRORED ? in->m_errored
                                                         : in->m_rejected,
                       1);
        if (j->row.status == HUB_MSG_PROCESSED) hub_metric_add(in->m_mapped, 1);
        if (j->apply_failed) hub_metric_add(in->m_map_failed, 1);
        HUB_LOG(j->row.status == HUB_MSG_ACCEPTED ? HUB_LOG_DEBUG : HUB_LOG_INFO,
                "ingest",
                "journaled id=%lld conn=%llu channel=%s sender='%s' type=%s "
                "control_id='%s' status=%s ack=%s ms=%.2f",
                (long long)j->row.id, (unsigned long long)j->conn_id, j->channel,
                j->sender, j->msg_type, j->control_id,
                hub_msg_status_name(j->row.status), j->ack_code, ms);
        reply(j, j->send_ack ? j->ack.p : "", j->send_ack ? j->ack.n : 0);
    }
    /* Handed back before in_flight drops: once it is 0 the ingest may be
     * freed. */
    spent_push(in, j);
    atomic_fetch_sub(&in->in_flight, 1);
}

/* The message structure for segment groups: the profile's, when known. */
static const hub_v2_struct_def *structure_of(hub_ingest *in, const hub_v2_msg *m) {
    if (in->cfg.profiles == NULL) return NULL;
    const hub_v2_msh *h = hub_v2_msg_msh(m);
    char ver[32];
    if (hub_v2_profset_pick(in->cfg.profiles, h->version, ver, sizeof ver) < 0) return NULL;
    const hub_v2_profile *p = NULL;
    if (hub_v2_profset_get(in->cfg.profiles, ver, &p, NULL) != HUB_OK) return NULL;
    const char *sn = hub_v2_profile_struct_for(p, h->msg_code, h->trigger, h->structure);
    return sn ? hub_v2_profile_struct_def(p, sn) : NULL;
}

/* Maps an accepted message and prepares its Bundle for the writer. A
 * mapping failure turns the answer into AE with one ERR naming the field;
 * the mapper's warnings (values left out) join the ACK's findings. */
static void map_message(hub_ingest *in, ingest_job *j, const hub_ingest_channel *ch,
                        const hub_v2_msg *m, hub_v2_ack_req *req) {
    hub_map_opts o = {.sender = j->sender, .local = ch->local_codes, .nlocal = ch->nlocal,
                      .structure = structure_of(in, m)};
    hub_map_result r;
    hub_err err;
    hub_err_clear(&err);
    hub_v2_finding *all = NULL;
    hub_status rc = hub_map_message(in->cfg.map, m, &o, &r, &err);
    if (rc == HUB_OK) {
        hub_metric_add(in->m_unmapped, (int64_t)r.nunmapped);
        hub_oo *oo = NULL;
        j->bundle = r.bundle;
        r.bundle = NULL;
        rc = hub_record_bundle_prepare(in->cfg.record, j->bundle, &j->txn, &oo, &err);
        if (rc == HUB_OK) {
            size_t nw = r.nwarnings < 16 ? r.nwarnings : 16;
            if (nw) {
                all = hub_arena_alloc(&j->arena, (req->nfindings + nw) * sizeof *all);
                if (all) {
                    if (req->nfindings) memcpy(all, req->findings, req->nfindings * sizeof *all);
                    memcpy(all + req->nfindings, r.warnings, nw * sizeof *all);
                    req->findings = all;
                    req->nfindings += nw;
                }
            }
            hub_map_result_release(&r);
            return;
        }
        /* The mapped resources are not valid FHIR: the tables are wrong
         * for this message. Say where, without values. */
        json_t *oj = oo ? hub_oo_json(oo) : NULL;
        const char *expr = json_string_value(json_array_get(
            json_object_get(json_array_get(json_object_get(oj, "issue"), 0), "expression"), 0));
        const char *why = json_string_value(
            json_object_get(json_array_get(json_object_get(oj, "issue"), 0), "diagnostics"));
        char *t = hub_arena_sprintf(&j->arena, "mapped resources are not valid: %.80s (%.60s)",
                                    expr ? expr : "Bundle", why ? why : "invalid");
        json_decref(oj);
        hub_oo_free(oo);
        memset(&r.loc, 0, sizeof r.loc);
        r.loc.seg = UINT32_MAX;
        r.v2_code = HUB_V2_E_INTERNAL;
        snprintf(err.msg, sizeof err.msg, "%s", t ? t : "mapped resources are not valid");
    }
    hub_metric_add(in->m_map_failed, 1);
    HUB_LOG_INFO("ingest", "map failed sender='%s' control_id='%s' where=%s err='%s'",
                 j->sender, j->control_id, err.where, err.msg);
    all = hub_arena_alloc(&j->arena, (req->nfindings + 1) * sizeof *all);
    if (all) {
        if (req->nfindings) memcpy(all, req->findings, req->nfindings * sizeof *all);
        hub_v2_finding *f = &all[req->nfindings];
        memset(f, 0, sizeof *f);
        f->loc = r.loc;
        if (f->loc.seg_id[0] == 0) f->loc.seg = UINT32_MAX;
        f->code = r.v2_code ? r.v2_code : HUB_V2_E_INTERNAL;
        f->severity = HUB_V2_SEV_ERROR;
        f->text = hub_arena_strndup(&j->arena, err.msg, strlen(err.msg));
        f->offset = SIZE_MAX;
        req->findings = all;
        req->nfindings++;
    }
    req->status = HUB_V2_ACK_ERROR;
    j->row.status = HUB_MSG_ERRORED;
    hub_record_txn_free(j->txn);
    j->txn = NULL;
    hub_map_result_release(&r);
}

/* Builds the job: parse, validate, decide, build the ACK. */
static void prepare(hub_ingest *in, ingest_job *j, const hub_mllp_frame_ctx *ctx) {
    const hub_ingest_channel *ch =
        ctx->channel_index < in->cfg.nchannels ? &in->cfg.channels[ctx->channel_index]
                                               : NULL;
    hub_arena *a = &j->arena;
    hub_err perr;
    hub_err_clear(&perr);
    hub_v2_msg *m = NULL;
    hub_v2_ack_req req = {.app = in->cfg.ack_app, .facility = in->cfg.ack_facility,
                          .force_original = ch && ch->force_original};
    hub_v2_finding one = {.severity = HUB_V2_SEV_ERROR, .offset = SIZE_MAX};
    one.loc.seg = UINT32_MAX;
    hub_status prc = ctx->oversize ? HUB_E_LIMIT
                                   : hub_v2_parse(a, j->frame, j->n, NULL, &m, &perr);
    j->force_original = ch && ch->force_original;
    if (prc == HUB_OK) {
        j->msg = m;
        const hub_v2_msh *h = hub_v2_msg_msh(m);
        const char *app = hd_name(a, m, h->sending_app), *fac = hd_name(a, m, h->sending_fac);
        size_t k = 0;
        j->sender[0] = '\0';
        put_text(j->sender, sizeof j->sender, &k, app, strlen(app));
        put_text(j->sender, sizeof j->sender, &k, "^", 1);
        put_text(j->sender, sizeof j->sender, &k, fac, strlen(fac));
        copy_text(j->control_id, sizeof j->control_id, hub_v2_text(a, m, h->control_id));
        char type[80];
        k = 0;
        type[0] = '\0';
        put_text(type, sizeof type, &k, h->msg_code.p, h->msg_code.p ? h->msg_code.n : 0);
        put_text(type, sizeof type, &k, "^", 1);
        put_text(type, sizeof type, &k, h->trigger.p, h->trigger.p ? h->trigger.n : 0);
        if (h->structure.p && h->structure.n) {
            put_text(type, sizeof type, &k, "^", 1);
            put_text(type, sizeof type, &k, h->structure.p, h->structure.n);
        }
        copy_text(j->msg_type, sizeof j->msg_type, type);
        copy_text(j->version, sizeof j->version, hub_v2_text(a, m, h->version));

        hub_v2_findings fs = {0};
        bool validated = false;
        if (ch && ch->validate && in->cfg.profiles) {
            hub_v2_validate_opts vo = {.site = ch->site, .policy = &ch->policy};
            if (hub_v2_validate(a, in->cfg.profiles, m, &vo, &fs, &perr) == HUB_OK)
                validated = true;
        }
        if (!validated) {
            size_t nw = 0;
            const hub_v2_finding *w = hub_v2_msg_warnings(m, &nw);
            fs.items = (hub_v2_finding *)w;
            fs.n = nw;
            fs.nerrors = 0;
            for (size_t i = 0; i < nw; i++)
                if (w[i].severity == HUB_V2_SEV_ERROR) fs.nerrors++;
        }
        /* MSH-9 and MSH-10 are what an ACK and the journal stand on. */
        if (h->control_id.n == 0 || h->msg_code.n == 0) {
            one.code = HUB_V2_E_REQUIRED_MISSING;
            snprintf(one.loc.seg_id, sizeof one.loc.seg_id, "MSH");
            one.loc.seg = 0;
            one.loc.seg_seq = 1;
            one.loc.field = h->control_id.n == 0 ? 10 : 9;
            one.text = h->control_id.n == 0 ? "message control id (MSH-10) is empty"
                                            : "message type (MSH-9) is empty";
            req.status = HUB_V2_ACK_REJECT;
            req.findings = &one;
            req.nfindings = 1;
            j->row.status = HUB_MSG_REJECTED;
        } else {
            req.status = fs.nerrors ? HUB_V2_ACK_ERROR : HUB_V2_ACK_ACCEPT;
            req.findings = fs.items;
            req.nfindings = fs.n;
            j->row.status = fs.nerrors ? HUB_MSG_ERRORED : HUB_MSG_ACCEPTED;
            if (!fs.nerrors && ch && ch->map && in->cfg.map && in->cfg.record)
                map_message(in, j, ch, m, &req);
        }
        j->row.errors = findings_json(req.findings, req.nfindings);
        hub_v2_ack_build(m, &req, &j->ack, NULL);
        j->send_ack = req.force_original || hub_v2_ack_wanted(m, req.status);
    } else {
        /* Oversize or a broken MSH: the best ACK the bytes allow. */
        one.code = prc == HUB_E_LIMIT ? HUB_V2_E_INTERNAL : HUB_V2_E_SEGMENT_SEQUENCE;
        one.text = prc == HUB_E_LIMIT ? "frame over the size limit"
                                      : "message header (MSH) could not be parsed";
        if (prc != HUB_E_LIMIT) snprintf(one.loc.seg_id, sizeof one.loc.seg_id, "MSH");
        req.status = HUB_V2_ACK_REJECT;
        req.findings = &one;
        req.nfindings = 1;
        hub_v2_ack_build_raw(j->frame, j->n, &req, &j->ack, NULL);
        j->send_ack = true;
        j->row.status = HUB_MSG_REJECTED;
        char ej[400];
        snprintf(ej, sizeof ej,
                 "[{\"location\":\"%s\",\"code\":%d,\"severity\":\"E\","
                 "\"text\":\"%s\",\"detail\":\"%s\"}]",
                 one.loc.seg_id, one.code, one.text,
                 prc == HUB_E_LIMIT ? "" : perr.where);
        j->row.errors = hub_strdup(ej);
        /* Salvage what identifies it for the journal. */
        hub_slice v;
        if (hub_mllp_field((hub_slice){j->frame, j->n}, "MSH", 10, &v))
            snprintf(j->control_id, sizeof j->control_id, "%.*s",
                     (int)(v.n < 80 ? v.n : 80), v.p);
        if (hub_mllp_field((hub_slice){j->frame, j->n}, "MSH", 9, &v))
            snprintf(j->msg_type, sizeof j->msg_type, "%.*s",
                     (int)(v.n < 60 ? v.n : 60), v.p);
        for (char *p = j->control_id; *p; p++) if ((unsigned char)*p < 0x20) *p = ' ';
        for (char *p = j->msg_type; *p; p++) if ((unsigned char)*p < 0x20) *p = ' ';
    }
    /* The ACK code, for the journal. */
    ack_code_of(&j->ack, j->ack_code);
}

void hub_ingest_on_frame(void *ud, const hub_mllp_frame_ctx *ctx,
                         const char *frame, size_t n) {
    hub_ingest *in = ud;
    ingest_job *j = job_get(in);
    if (j && j->frame_cap < (n ? n : 1)) {
        hub_free(j->frame);
        j->frame_cap = n > 4096 ? n : 4096;
        j->frame = hub_malloc(j->frame_cap);
        if (j->frame == NULL) j->frame_cap = 0;
    }
    char *copy = j ? j->frame : NULL;
    if (j == NULL || copy == NULL) {
        /* Out of memory: refuse this one and close, so the sender retries. */
        if (j) job_free(j);
        static const char nack[] = "\x0bMSH|^~\\&|HUB|HUB|||||ACK||P|2.5\rMSA|AR|\x1c\r";
        if (in->srv)
            hub_mllp_server_reply(in->srv, ctx->conn_id, ctx->seq, nack,
                                  sizeof nack - 1, true);
        return;
    }
    memcpy(copy, frame, n);
    j->frame = copy;
    j->n = n;
    j->in = in;
    j->conn_id = ctx->conn_id;
    j->seq = ctx->seq;
    j->close_after = ctx->oversize;
    j->t0_ns = hub_mono_ns();
    copy_text(j->channel, sizeof j->channel, ctx->channel);
    copy_text(j->peer, sizeof j->peer, ctx->peer);
    const hub_ingest_channel *ch =
        ctx->channel_index < in->cfg.nchannels ? &in->cfg.channels[ctx->channel_index]
                                               : NULL;
    copy_text(j->identity, sizeof j->identity,
              ctx->tls_subject ? ctx->tls_subject
                               : (ch && ch->identity ? ch->identity : ""));

    prepare(in, j, ctx);

    hub_journal_row *r = &j->row;
    r->received_ms = hub_now_ms();
    r->channel = j->channel;
    r->peer = j->peer;
    r->identity = j->identity;
    r->sender = j->sender;
    r->control_id = j->control_id;
    r->msg_type = j->msg_type;
    r->version = j->version;
    r->ack_code = j->ack_code;
    r->ack = j->ack.p;
    r->ack_len = j->ack.n;
    r->body = j->frame;
    r->body_len = j->n;
    j->job.run = job_run;
    j->job.done = job_done;
    j->job.next = NULL;
    /* Without a mapped Bundle the job's run keeps nothing it cannot redo:
     * the duplicate check, the row, the audit row. */
    j->job.rerunnable = j->txn == NULL;
    atomic_fetch_add(&in->in_flight, 1);
    *in->batch_tail = &j->job;
    in->batch_tail = &j->job.next;
}

void hub_ingest_on_round(void *ud) {
    hub_ingest *in = ud;
    spent_free(in);
    hub_store_job *jobs = in->batch;
    in->batch = NULL;
    in->batch_tail = &in->batch;
    if (jobs == NULL) return;
    /* Journal-only jobs cost less to commit than a hand-off to the writer
     * thread and back; a mapped job's apply costs milliseconds, which the
     * writer spends while this thread reads and maps the next messages
     * (measured, 8 connections, mapped: 45-49 msg/s handed off, 25-30 run
     * here). */
    bool heavy = false;
    for (hub_store_job *j = jobs; j && !heavy; j = j->next)
        heavy = ((ingest_job *)j)->txn != NULL;
    hub_err err;
    hub_status rc = heavy ? hub_store_queue(in->cfg.store, jobs, &err)
                          : hub_store_run(in->cfg.store, jobs, &err);
    if (rc == HUB_OK) return;
    /* Shutting down: the store takes nothing more, so each sender gets an
     * error ACK and will resend. job_done frees the job. */
    while (jobs) {
        hub_store_job *next = jobs->next;
        job_done(jobs, HUB_E_STATE, &err);
        jobs = next;
    }
}
