/* The patient index's operations: Patient/$match, Patient/$merge (R5
 * shape), and the hub's own $mpi-link, $mpi-unlink, $mpi-not-same,
 * $mpi-links, $mpi-review, $mpi-review-resolve (docs/mpi.md). Each runs
 * its reads and writes as one writer job and answers from what it found;
 * bad input is an OperationOutcome naming the parameter, never a value. */
#include "hub/http.h"
#include "internal.h"
#include "mpi_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- running a job and waiting ---------------------------------------------- */

typedef struct {
    hub_store_job job;
    hub_status (*fn)(hub_store_tx *tx, void *ud, hub_err *err);
    void *ud;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    hub_status rc;
    hub_err err;
} wait_job;

static hub_status wj_run(hub_store_tx *tx, hub_store_job *j, hub_err *err) {
    wait_job *w = (wait_job *)j;
    return w->fn(tx, w->ud, err);
}

static void wj_done(hub_store_job *j, hub_status rc, const hub_err *err) {
    wait_job *w = (wait_job *)j;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    if (rc && err) w->err = *err;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

hub_status hub__mpi_run(hub_mpi *m, hub_status (*fn)(hub_store_tx *tx, void *ud, hub_err *err),
                        void *ud, hub_err *err) {
    wait_job w;
    memset(&w, 0, sizeof w);
    w.job.run = wj_run;
    w.job.done = wj_done;
    w.fn = fn;
    w.ud = ud;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    hub_status rc = hub_store_submit(m->store, &w.job, err);
    if (rc == HUB_OK) {
        pthread_mutex_lock(&w.mu);
        while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = w.rc;
        if (rc && err) *err = w.err;
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return rc;
}

/* ---- $match ------------------------------------------------------------------------ */

typedef struct {
    hub_mpi *m;
    const json_t *patient;
    hub_mpi_candidate *out;
    size_t cap, n;
} match_job;

static hub_status match_run(hub_store_tx *tx, void *ud, hub_err *err) {
    match_job *j = ud;
    hub_mpi_feat f;
    hub_mpi_feat_of(j->patient, &f);
    char keys[24][96];
    size_t nid = hub__mpi_identifier_keys(j->m, j->patient, keys, 24);
    size_t nk = nid + hub_mpi_block_keys(&f, keys + nid, 24 - nid);
    person_score ps[32];
    size_t n = 0;
    hub_status rc = hub__mpi_candidates(j->m, tx, NULL, &f, NULL, keys, nk, nid, ps, 32, &n, err);
    if (rc) return rc;
    j->n = 0;
    for (size_t i = 0; i < n && j->n < j->cap; i++) {
        if (!ps[i].certain && ps[i].score < j->m->review) continue;
        hub_mpi_candidate *c = &j->out[j->n++];
        memset(c, 0, sizeof *c);
        memcpy(c->golden, ps[i].golden, sizeof c->golden);
        memcpy(c->source, ps[i].source, sizeof c->source);
        c->score = ps[i].score;
        c->certain = ps[i].certain;
        memcpy(c->contrib, ps[i].contrib, sizeof c->contrib);
    }
    return HUB_OK;
}

hub_status hub_mpi_match(hub_mpi *m, const json_t *patient, hub_mpi_candidate *out, size_t cap,
                         size_t *n, hub_err *err) {
    match_job j = {m, patient, out, cap, 0};
    hub_status rc = hub__mpi_run(m, match_run, &j, err);
    *n = rc ? 0 : j.n;
    return rc;
}

/* ---- parameters -------------------------------------------------------------------------- */

static const json_t *param(const json_t *body, const char *name) {
    size_t i;
    const json_t *p;
    json_array_foreach(json_object_get(body, "parameter"), i, p) {
        const char *n = json_string_value(json_object_get(p, "name"));
        if (n && !strcmp(n, name)) return p;
    }
    return NULL;
}

static void fail(hub_fhir_op_result *out, int status, const char *code, const char *expr,
                 const char *msg) {
    out->status = status;
    out->outcome = hub_oo_new();
    if (out->outcome) hub_oo_add(out->outcome, HUB_OO_ERROR, code, expr, "%s", msg);
}

static void fail_store(hub_fhir_op_result *out, const hub_err *err) {
    fail(out, 500, "exception", NULL, "the patient index failed");
    HUB_LOG_ERROR("mpi", "operation failed where='%s' err='%s'", err->where, err->msg);
}

static bool is_params(const hub_fhir_op_call *call, hub_fhir_op_result *out) {
    const char *rt = json_string_value(json_object_get(call->body, "resourceType"));
    if (call->body == NULL || rt == NULL || strcmp(rt, "Parameters")) {
        fail(out, 400, "invalid", NULL, "the body must be a Parameters resource");
        return false;
    }
    return true;
}

/* A Patient reference parameter's id (valueReference, or valueString
 * "Patient/x"); NULL when absent or not a Patient reference. */
static const char *param_patient(const json_t *body, const char *name, bool *present) {
    const json_t *p = param(body, name);
    *present = p != NULL;
    if (p == NULL) return NULL;
    const char *ref = json_string_value(json_object_get(json_object_get(p, "valueReference"),
                                                        "reference"));
    if (ref == NULL) ref = json_string_value(json_object_get(p, "valueString"));
    return hub__mpi_ref_id(ref);
}

static json_t *part_str(const char *name, const char *kind, const char *v) {
    return json_pack("{s:s, s:s}", "name", name, kind, v);
}

static json_t *ref_part(const char *name, const char *id) {
    char ref[96];
    snprintf(ref, sizeof ref, "Patient/%s", id);
    return json_pack("{s:s, s:{s:s}}", "name", name, "valueReference", "reference", ref);
}

/* ---- $match --------------------------------------------------------------------------- */

static double probability(const hub_mpi *m, const hub_mpi_candidate *c) {
    if (c->certain) return 1.0;
    /* the score on a logistic curve centred between the thresholds */
    double mid = (m->auto_link + m->review) / 2.0;
    double p = 1.0 / (1.0 + exp2(-(c->score - mid) / 2.0));
    return floor(p * 1000.0 + 0.5) / 1000.0;
}

static void op_match(void *ud, const hub_fhir_op_call *call, hub_fhir_op_result *out) {
    hub_mpi *m = ud;
    if (!is_params(call, out)) return;
    const json_t *rp = param(call->body, "resource");
    const json_t *pat = json_object_get(rp, "resource");
    const char *rt = json_string_value(json_object_get(pat, "resourceType"));
    if (rt == NULL || strcmp(rt, "Patient")) {
        fail(out, 400, "required", "Parameters.parameter.where(name = 'resource')",
             "'resource' must be a Patient");
        return;
    }
    const json_t *only = param(call->body, "onlyCertainMatches");
    bool only_certain = json_is_true(json_object_get(only, "valueBoolean"));
    const json_t *cnt = param(call->body, "count");
    int count = 10;
    if (cnt) {
        const json_t *v = json_object_get(cnt, "valueInteger");
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100) {
            fail(out, 400, "value", "Parameters.parameter.where(name = 'count')",
                 "'count' must be an integer in 1..100");
            return;
        }
        count = (int)json_integer_value(v);
    }
    hub_mpi_candidate c[100];
    size_t n = 0;
    hub_err err = {0};
    if (hub_mpi_match(m, pat, c, (size_t)count, &n, &err)) {
        fail_store(out, &err);
        return;
    }
    json_t *entries = json_array();
    for (size_t i = 0; i < n; i++) {
        bool probable = c[i].certain || c[i].score >= m->auto_link;
        if (only_certain && !c[i].certain) continue;
        hub_resource r;
        memset(&r, 0, sizeof r);
        if (hub_record_read(m->record, "Patient", c[i].golden, 0, &r, &err) || r.deleted) {
            hub_resource_release(&r);
            continue;
        }
        json_t *res = json_loadb(r.json, r.json_len, 0, NULL);
        hub_resource_release(&r);
        if (res == NULL) continue;
        char url[512], gid[72];
        memcpy(gid, c[i].golden, sizeof gid);
        gid[sizeof gid - 1] = '\0';
        snprintf(url, sizeof url, "%.400s/Patient/%.71s", call->base, gid);
        json_t *ext = json_pack("[{s:s, s:s}]", "url",
                                "http://hl7.org/fhir/StructureDefinition/match-grade",
                                "valueCode", c[i].certain ? "certain"
                                             : probable   ? "probable"
                                                          : "possible");
        json_array_append_new(entries,
                              json_pack("{s:s, s:o, s:{s:s, s:f, s:o}}", "fullUrl", url,
                                        "resource", res, "search", "mode", "match", "score",
                                        probability(m, &c[i]), "extension", ext));
    }
    out->body = json_pack("{s:s, s:s, s:I, s:o}", "resourceType", "Bundle", "type",
                          "searchset", "total", (json_int_t)json_array_size(entries), "entry",
                          entries);
}

/* ---- $merge (R5 shape) -------------------------------------------------------------------- */

typedef struct {
    hub_mpi *m;
    const json_t *body;
    const char *source, *target;
    char source_id[72], target_id[72];
    const json_t *source_ident, *target_ident;
    const json_t *result;
    bool preview;
    hub_actor actor;
    /* answer */
    int status;
    const char *code, *expr, *msg;
    json_t *target_out;
} merge_job;

typedef struct {
    char v[4][72];
    size_t n;
} few_ids;

static hub_status few_add(void *ud, const char *id) {
    few_ids *f = ud;
    if (f->n < 4) snprintf(f->v[f->n++], 72, "%s", id);
    return HUB_OK;
}

/* Resolves a reference or an identifier to one Patient id; sets the job's
 * error answer when it cannot. */
static hub_status resolve(merge_job *j, hub_store_tx *tx, const char *ref, const json_t *ident,
                          const char *pname, char out[72], hub_err *err) {
    out[0] = '\0';
    if (ref) {
        snprintf(out, 72, "%s", ref);
        return HUB_OK;
    }
    const char *sys = json_string_value(json_object_get(ident, "system"));
    const char *val = json_string_value(json_object_get(ident, "value"));
    if (val == NULL) {
        j->status = 400;
        j->code = "required";
        j->expr = pname;
        j->msg = "the identifier has no value";
        return HUB_OK;
    }
    int found = 0, n = 0;
    few_ids f = {.n = 0};
    hub_status rc = hub_store_res_find(tx, "Patient", "identifier", sys, val, 3, few_add, &f,
                                       &found, err);
    if (rc) return rc;
    /* golden records carry their sources' identifiers: not merge targets */
    for (size_t i = 0; i < f.n; i++) {
        json_t *p = NULL;
        rc = hub__mpi_load_patient(tx, f.v[i], &p, NULL, err);
        if (rc) return rc;
        if (p && !hub__mpi_is_golden(p)) {
            if (n++ == 0) snprintf(out, 72, "%s", f.v[i]);
        }
        json_decref(p);
    }
    if (found > 3) n = 2;
    if (n != 1) {
        out[0] = '\0';
        j->status = n == 0 ? 404 : 412;
        j->code = n == 0 ? "not-found" : "multiple-matches";
        j->expr = pname;
        j->msg = n == 0 ? "no Patient has this identifier" : "several Patients have this identifier";
    }
    return HUB_OK;
}

static hub_status merge_run(hub_store_tx *tx, void *ud, hub_err *err) {
    merge_job *j = ud;
    static const char SRC[] = "Parameters.parameter.where(name = 'source-patient')";
    static const char TGT[] = "Parameters.parameter.where(name = 'target-patient')";
    hub_status rc = resolve(j, tx, j->source, j->source_ident, SRC, j->source_id, err);
    if (!rc && !j->status) rc = resolve(j, tx, j->target, j->target_ident, TGT, j->target_id, err);
    if (rc || j->status) return rc;
    if (!strcmp(j->source_id, j->target_id)) {
        j->status = 400;
        j->code = "invalid";
        j->expr = TGT;
        j->msg = "source and target are the same Patient";
        return HUB_OK;
    }
    json_t *src = NULL, *tgt = NULL;
    rc = hub__mpi_load_patient(tx, j->source_id, &src, NULL, err);
    if (!rc) rc = hub__mpi_load_patient(tx, j->target_id, &tgt, NULL, err);
    if (!rc && (src == NULL || tgt == NULL)) {
        j->status = 404;
        j->code = "not-found";
        j->expr = src == NULL ? SRC : TGT;
        j->msg = src == NULL ? "no such source Patient" : "no such target Patient";
    } else if (!rc && (hub__mpi_is_golden(src) || hub__mpi_is_golden(tgt))) {
        j->status = 422;
        j->code = "business-rule";
        j->expr = hub__mpi_is_golden(src) ? SRC : TGT;
        j->msg = "golden records are merged through their sources";
    } else if (!rc && j->result) {
        const char *rid = json_string_value(json_object_get(j->result, "id"));
        const char *rt = json_string_value(json_object_get(j->result, "resourceType"));
        if (rt == NULL || strcmp(rt, "Patient") || rid == NULL || strcmp(rid, j->target_id)) {
            j->status = 400;
            j->code = "invalid";
            j->expr = "Parameters.parameter.where(name = 'result-patient')";
            j->msg = "'result-patient' must be the target Patient (same id)";
        }
    }
    if (rc || j->status) {
        json_decref(src);
        json_decref(tgt);
        return rc;
    }
    /* target: the result if given, with a `replaces` link to the source */
    json_t *t = j->result ? json_deep_copy(j->result) : json_incref(tgt);
    char ref[96];
    snprintf(ref, sizeof ref, "Patient/%s", j->source_id);
    json_t *tl = json_object_get(t, "link");
    if (!json_is_array(tl)) {
        tl = json_array();
        json_object_set_new(t, "link", tl);
    }
    bool has = false;
    size_t i;
    json_t *l;
    json_array_foreach(tl, i, l) {
        const char *r = json_string_value(json_object_get(json_object_get(l, "other"), "reference"));
        if (r && !strcmp(r, ref)) has = true;
    }
    if (!has)
        json_array_append_new(tl, json_pack("{s:{s:s}, s:s}", "other", "reference", ref, "type",
                                            "replaces"));
    /* the source: inactive, replaced-by the target */
    snprintf(ref, sizeof ref, "Patient/%s", j->target_id);
    json_object_set_new(src, "active", json_false());
    json_t *sl = json_object_get(src, "link");
    if (!json_is_array(sl)) {
        sl = json_array();
        json_object_set_new(src, "link", sl);
    }
    json_array_append_new(sl, json_pack("{s:{s:s}, s:s}", "other", "reference", ref, "type",
                                        "replaced-by"));
    if (j->preview) {
        j->target_out = t;
        json_decref(src);
        json_decref(tgt);
        return HUB_OK;
    }
    /* Written as the client's own changes (depth 0 for the listeners): the
     * index sees the replaced-by link and merges the two persons. */
    rc = hub_record_put_tx(j->m->record, tx, "Patient", j->target_id, t, false, &j->actor, -1,
                           NULL, err);
    if (!rc)
        rc = hub_record_put_tx(j->m->record, tx, "Patient", j->source_id, src, false, &j->actor,
                               -1, NULL, err);
    json_decref(t);
    json_decref(src);
    json_decref(tgt);
    if (!rc) rc = hub__mpi_load_patient(tx, j->target_id, &j->target_out, NULL, err);
    return rc;
}

static void op_merge(void *ud, const hub_fhir_op_call *call, hub_fhir_op_result *out) {
    hub_mpi *m = ud;
    if (!is_params(call, out)) return;
    merge_job j;
    memset(&j, 0, sizeof j);
    j.m = m;
    j.body = call->body;
    j.actor.channel = "http";
    bool sp, tp;
    j.source = param_patient(call->body, "source-patient", &sp);
    j.target = param_patient(call->body, "target-patient", &tp);
    j.source_ident = json_object_get(param(call->body, "source-patient-identifier"),
                                     "valueIdentifier");
    j.target_ident = json_object_get(param(call->body, "target-patient-identifier"),
                                     "valueIdentifier");
    j.result = json_object_get(param(call->body, "result-patient"), "resource");
    j.preview = json_is_true(json_object_get(param(call->body, "preview"), "valueBoolean"));
    if ((sp && !j.source) || (!sp && !j.source_ident)) {
        fail(out, 400, sp ? "invalid" : "required",
             "Parameters.parameter.where(name = 'source-patient')",
             sp ? "'source-patient' must reference a Patient"
                : "'source-patient' or 'source-patient-identifier' is required");
        return;
    }
    if ((tp && !j.target) || (!tp && !j.target_ident)) {
        fail(out, 400, tp ? "invalid" : "required",
             "Parameters.parameter.where(name = 'target-patient')",
             tp ? "'target-patient' must reference a Patient"
                : "'target-patient' or 'target-patient-identifier' is required");
        return;
    }
    hub_err err = {0};
    if (hub__mpi_run(m, merge_run, &j, &err)) {
        json_decref(j.target_out);
        fail_store(out, &err);
        return;
    }
    if (j.status) {
        fail(out, j.status, j.code, j.expr, j.msg);
        return;
    }
    hub_oo *oo = hub_oo_new();
    if (oo)
        hub_oo_add(oo, HUB_OO_INFORMATION, "informational", NULL, "%s",
                   j.preview ? "preview only: nothing was changed" : "the Patients were merged");
    json_t *ooj = oo ? hub_oo_json(oo) : NULL;
    hub_oo_free(oo);
    out->body = json_pack("{s:s, s:[{s:s, s:O}, {s:s, s:o}, {s:s, s:o}]}", "resourceType",
                          "Parameters", "parameter", "name", "input", "resource", call->body,
                          "name", "outcome", "resource", ooj, "name", "result", "resource",
                          j.target_out);
}

/* ---- link, unlink, not the same person -------------------------------------------------------- */

typedef struct {
    hub_mpi *m;
    const char *id;    /* the instance (a source Patient) */
    const char *other; /* golden (link) or other source (not-same) */
    int kind;          /* 0 link, 1 unlink, 2 not-same */
    hub_actor actor;
    int status;
    const char *code, *expr, *msg;
    char golden[72];
} link_job;

/* Source ids of a golden. */
typedef struct {
    char v[64][72];
    size_t n;
} coll;

static hub_status collect(void *ud, const char *s) {
    coll *c = ud;
    if (c->n < 64) snprintf(c->v[c->n++], 72, "%s", s);
    return HUB_OK;
}

static hub_status unlink_tx(hub_mpi *m, hub_store_tx *tx, const char *id, json_t *p,
                            const hub_actor *actor, hub_err *err) {
    hub_mpi_st_link l;
    hub_status rc = hub_mpi_st_link_get(tx, id, &l, err);
    if (rc) return rc;
    /* not the same person as anyone in that golden: re-evaluation must
     * not link it back */
    coll *c = hub_malloc(sizeof *c);
    if (c == NULL) return hub_err_set(err, HUB_E_NOMEM, "mpi", "out of memory");
    c->n = 0;
    rc = hub_mpi_st_sources_tx(tx, l.golden, collect, c, err);
    for (size_t i = 0; !rc && i < c->n; i++)
        if (strcmp(c->v[i], id)) rc = hub_mpi_st_nomatch_put(tx, id, c->v[i], err);
    hub_free(c);
    char who[256];
    hub__mpi_actor_text(actor, who, sizeof who);
    if (!rc) rc = hub_mpi_st_history_add(tx, "unlink", id, l.golden, 0.0, NULL, who, err);
    if (!rc) rc = hub_mpi_st_link_del(tx, id, err);
    if (!rc) rc = hub__mpi_golden_refresh(m, tx, l.golden, NULL, actor, err);
    char sender[160] = "";
    if (!rc) {
        hub_status r2 = hub_mpi_st_person_get(tx, id, NULL, 0, sender, sizeof sender, err);
        if (r2 && r2 != HUB_E_NOTFOUND) rc = r2;
    }
    if (!rc) rc = hub__mpi_process(m, tx, id, p, sender, true, actor, err);
    return rc;
}

static hub_status link_run(hub_store_tx *tx, void *ud, hub_err *err) {
    link_job *j = ud;
    static const char OTHER[] = "Parameters.parameter.where(name = 'other')";
    json_t *p = NULL, *o = NULL;
    hub_status rc = hub__mpi_load_patient(tx, j->id, &p, NULL, err);
    if (!rc && j->other) rc = hub__mpi_load_patient(tx, j->other, &o, NULL, err);
    if (rc) goto out;
    if (p == NULL || (j->other && o == NULL)) {
        j->status = 404;
        j->code = "not-found";
        j->expr = p == NULL ? NULL : OTHER;
        j->msg = p == NULL ? "no such Patient" : "no such other Patient";
        goto out;
    }
    if (hub__mpi_is_golden(p)) {
        j->status = 422;
        j->code = "business-rule";
        j->msg = "the operation applies to source Patients, not golden records";
        goto out;
    }
    hub_mpi_st_link cur;
    rc = hub_mpi_st_link_get(tx, j->id, &cur, err);
    if (rc == HUB_E_NOTFOUND) {
        /* not indexed yet (written before the index existed) */
        rc = hub__mpi_process(j->m, tx, j->id, p, "", false, &j->actor, err);
        if (!rc) rc = hub_mpi_st_link_get(tx, j->id, &cur, err);
    }
    if (rc) goto out;
    char who[256];
    hub__mpi_actor_text(&j->actor, who, sizeof who);
    if (j->kind == 0) {
        if (!hub__mpi_is_golden(o)) {
            j->status = 422;
            j->code = "business-rule";
            j->expr = OTHER;
            j->msg = "'other' must be a golden record";
            goto out;
        }
        rc = hub__mpi_link_to(j->m, tx, j->id, p, j->other, "manual", 0.0, NULL, &j->actor, err);
        if (!rc) rc = hub_mpi_st_review_drop(tx, j->id, err);
    } else if (j->kind == 1) {
        rc = unlink_tx(j->m, tx, j->id, p, &j->actor, err);
    } else {
        if (hub__mpi_is_golden(o)) {
            j->status = 422;
            j->code = "business-rule";
            j->expr = OTHER;
            j->msg = "'other' must be a source Patient";
            goto out;
        }
        rc = hub_mpi_st_nomatch_put(tx, j->id, j->other, err);
        if (!rc) rc = hub_mpi_st_history_add(tx, "not-same", j->id, j->other, 0.0, NULL, who, err);
        hub_mpi_st_link ol;
        if (!rc) rc = hub_mpi_st_link_get(tx, j->other, &ol, err);
        if (rc == HUB_E_NOTFOUND) rc = HUB_OK;
        else if (!rc && !strcmp(ol.golden, cur.golden))
            rc = unlink_tx(j->m, tx, j->id, p, &j->actor, err);
    }
    if (!rc) {
        hub_mpi_st_link now;
        rc = hub_mpi_st_link_get(tx, j->id, &now, err);
        if (!rc) snprintf(j->golden, sizeof j->golden, "%s", now.golden);
    }
out:
    json_decref(p);
    json_decref(o);
    return rc;
}

static void op_link_common(hub_mpi *m, const hub_fhir_op_call *call, hub_fhir_op_result *out,
                           int kind) {
    link_job j;
    memset(&j, 0, sizeof j);
    j.m = m;
    j.id = call->id;
    j.kind = kind;
    j.actor.channel = "http";
    if (kind != 1) {
        if (!is_params(call, out)) return;
        bool present;
        j.other = param_patient(call->body, "other", &present);
        if (j.other == NULL) {
            fail(out, 400, present ? "invalid" : "required",
                 "Parameters.parameter.where(name = 'other')",
                 "'other' must reference a Patient");
            return;
        }
    }
    hub_err err = {0};
    if (hub__mpi_run(m, link_run, &j, &err)) {
        fail_store(out, &err);
        return;
    }
    if (j.status) {
        fail(out, j.status, j.code, j.expr, j.msg);
        return;
    }
    out->body = json_pack("{s:s, s:[o]}", "resourceType", "Parameters", "parameter",
                          ref_part("golden", j.golden));
}

static void op_link(void *ud, const hub_fhir_op_call *call, hub_fhir_op_result *out) {
    op_link_common(ud, call, out, 0);
}
static void op_unlink(void *ud, const hub_fhir_op_call *call, hub_fhir_op_result *out) {
    op_link_common(ud, call, out, 1);
}
static void op_not_same(void *ud, const hub_fhir_op_call *call, hub_fhir_op_result *out) {
    op_link_common(ud, call, out, 2);
}

/* ---- $mpi-links: links and history of a Patient ------------------------------------------------- */

typedef struct {
    const char *id;
    json_t *params;
    bool found;
} links_job;

static json_t *row_part(const char *name, const hub_mpi_st_row *r) {
    json_t *parts = json_array();
    json_array_append_new(parts, ref_part("source", r->source));
    if (r->golden[0]) json_array_append_new(parts, ref_part("golden", r->golden));
    if (r->how) json_array_append_new(parts, part_str("how", "valueCode", r->how));
    if (r->action) json_array_append_new(parts, part_str("action", "valueCode", r->action));
    json_array_append_new(parts, json_pack("{s:s, s:f}", "name", "score", "valueDecimal",
                                           floor(r->score * 100.0 + 0.5) / 100.0));
    if (r->detail) json_array_append_new(parts, part_str("detail", "valueString", r->detail));
    if (r->actor) json_array_append_new(parts, part_str("actor", "valueString", r->actor));
    char iso[32];
    hub_time_iso(r->at_ms, iso);
    json_array_append_new(parts, part_str("at", "valueInstant", iso));
    return json_pack("{s:s, s:o}", "name", name, "part", parts);
}

static hub_status link_row(void *ud, const hub_mpi_st_row *r) {
    links_job *j = ud;
    j->found = true;
    json_array_append_new(j->params, row_part("link", r));
    return HUB_OK;
}
static hub_status hist_row(void *ud, const hub_mpi_st_row *r) {
    links_job *j = ud;
    json_array_append_new(j->params, row_part("history", r));
    return HUB_OK;
}

static hub_status links_run(hub_store_tx *tx, void *ud, hub_err *err) {
    links_job *j = ud;
    hub_status rc = hub_mpi_st_links_of(tx, j->id, link_row, j, err);
    if (!rc) rc = hub_mpi_st_history_of(tx, j->id, 100, hist_row, j, err);
    return rc;
}

static void op_links(void *ud, const hub_fhir_op_call *call, hub_fhir_op_result *out) {
    hub_mpi *m = ud;
    links_job j = {call->id, json_array(), false};
    hub_err err = {0};
    if (hub__mpi_run(m, links_run, &j, &err)) {
        json_decref(j.params);
        fail_store(out, &err);
        return;
    }
    if (!j.found) {
        json_decref(j.params);
        fail(out, 404, "not-found", NULL, "the patient index has no link for this Patient");
        return;
    }
    out->body = json_pack("{s:s, s:o}", "resourceType", "Parameters", "parameter", j.params);
}

/* ---- the review queue --------------------------------------------------------------------- */

typedef struct {
    hub_mpi *m;
    json_t *params;
    bool all;
    int64_t item;
    bool same;
    hub_actor actor;
    int status;
    const char *code, *expr, *msg;
} review_job;

static hub_status review_row(void *ud, const hub_mpi_st_review *r) {
    review_job *j = ud;
    json_t *parts = json_array();
    json_array_append_new(parts, json_pack("{s:s, s:I}", "name", "item", "valueInteger",
                                           (json_int_t)r->id));
    json_array_append_new(parts, ref_part("source", r->source));
    json_array_append_new(parts, ref_part("golden", r->golden));
    json_array_append_new(parts, json_pack("{s:s, s:f}", "name", "score", "valueDecimal",
                                           floor(r->score * 100.0 + 0.5) / 100.0));
    json_array_append_new(parts, part_str("status", "valueCode", r->status));
    if (r->detail) json_array_append_new(parts, part_str("detail", "valueString", r->detail));
    char iso[32];
    hub_time_iso(r->created_ms, iso);
    json_array_append_new(parts, part_str("created", "valueInstant", iso));
    json_array_append_new(j->params, json_pack("{s:s, s:o}", "name", "review", "part", parts));
    return HUB_OK;
}

static hub_status review_list_run(hub_store_tx *tx, void *ud, hub_err *err) {
    review_job *j = ud;
    return hub_mpi_st_review_list(tx, !j->all, 200, review_row, j, err);
}

static void op_review(void *ud, const hub_fhir_op_call *call, hub_fhir_op_result *out) {
    review_job j;
    memset(&j, 0, sizeof j);
    j.m = ud;
    j.params = json_array();
    const char *st = hub_http_req_query(call->req, "status");
    j.all = st && !strcmp(st, "all");
    hub_err err = {0};
    if (hub__mpi_run(j.m, review_list_run, &j, &err)) {
        json_decref(j.params);
        fail_store(out, &err);
        return;
    }
    out->body = json_pack("{s:s, s:o}", "resourceType", "Parameters", "parameter", j.params);
}

static hub_status review_resolve_run(hub_store_tx *tx, void *ud, hub_err *err) {
    review_job *j = ud;
    hub_mpi_st_review r;
    hub_status rc = hub_mpi_st_review_get(tx, j->item, &r, err);
    if (rc == HUB_E_NOTFOUND) {
        j->status = 404;
        j->code = "not-found";
        j->expr = "Parameters.parameter.where(name = 'item')";
        j->msg = "no such review item";
        return HUB_OK;
    }
    if (rc) return rc;
    if (strcmp(r.status, "open")) {
        j->status = 409;
        j->code = "conflict";
        j->expr = "Parameters.parameter.where(name = 'item')";
        j->msg = "the review item is closed already";
        return HUB_OK;
    }
    char who[256];
    hub__mpi_actor_text(&j->actor, who, sizeof who);
    json_t *p = NULL;
    rc = hub__mpi_load_patient(tx, r.source, &p, NULL, err);
    if (rc) return rc;
    if (p == NULL) {
        rc = hub_mpi_st_review_close(tx, j->item, "superseded", err);
        return rc;
    }
    if (j->same) {
        rc = hub__mpi_link_to(j->m, tx, r.source, p, r.golden, "manual", r.score, NULL, &j->actor,
                              err);
        if (!rc) rc = hub_mpi_st_review_close(tx, j->item, "same", err);
    } else {
        coll *c = hub_malloc(sizeof *c);
        if (c == NULL) {
            json_decref(p);
            return hub_err_set(err, HUB_E_NOMEM, "mpi", "out of memory");
        }
        c->n = 0;
        rc = hub_mpi_st_sources_tx(tx, r.golden, collect, c, err);
        for (size_t i = 0; !rc && i < c->n; i++)
            rc = hub_mpi_st_nomatch_put(tx, r.source, c->v[i], err);
        hub_free(c);
        if (!rc)
            rc = hub_mpi_st_history_add(tx, "not-same", r.source, r.golden, r.score, NULL, who,
                                        err);
        if (!rc) rc = hub_mpi_st_review_close(tx, j->item, "different", err);
    }
    json_decref(p);
    return rc;
}

static void op_review_resolve(void *ud, const hub_fhir_op_call *call, hub_fhir_op_result *out) {
    review_job j;
    memset(&j, 0, sizeof j);
    j.m = ud;
    j.actor.channel = "http";
    if (!is_params(call, out)) return;
    const json_t *item = json_object_get(param(call->body, "item"), "valueInteger");
    if (!json_is_integer(item)) {
        fail(out, 400, "required", "Parameters.parameter.where(name = 'item')",
             "'item' (valueInteger) is required");
        return;
    }
    const char *d = json_string_value(json_object_get(param(call->body, "decision"), "valueCode"));
    if (d == NULL || (strcmp(d, "same") && strcmp(d, "different"))) {
        fail(out, 400, "code-invalid", "Parameters.parameter.where(name = 'decision')",
             "'decision' must be 'same' or 'different'");
        return;
    }
    j.item = json_integer_value(item);
    j.same = !strcmp(d, "same");
    hub_err err = {0};
    if (hub__mpi_run(j.m, review_resolve_run, &j, &err)) {
        fail_store(out, &err);
        return;
    }
    if (j.status) {
        fail(out, j.status, j.code, j.expr, j.msg);
        return;
    }
    out->body = json_pack("{s:s, s:[{s:s, s:s}]}", "resourceType", "Parameters", "parameter",
                          "name", "status", "valueCode", j.same ? "same" : "different");
}

/* ---- registration ------------------------------------------------------------------------------ */

hub_status hub_mpi_add_ops(hub_mpi *m, struct hub_http_fhir *f, hub_err *err) {
    static const char DOCS[] = "https://hub.example.org/fhir/OperationDefinition/";
    static char defs[6][128];
    static const char *const NAMES[6] = {"mpi-link", "mpi-unlink", "mpi-not-same", "mpi-links",
                                         "mpi-review", "mpi-review-resolve"};
    for (int i = 0; i < 6; i++) snprintf(defs[i], sizeof defs[i], "%s%s", DOCS, NAMES[i]);
    hub_status rc = hub_http_fhir_add_op(f, "Patient", "match", HUB_OP_TYPE, false,
                                         "http://hl7.org/fhir/OperationDefinition/Patient-match",
                                         op_match, m);
    if (!rc)
        rc = hub_http_fhir_add_op(f, "Patient", "merge", HUB_OP_TYPE, true,
                                  "http://hl7.org/fhir/OperationDefinition/Patient-merge",
                                  op_merge, m);
    if (!rc) rc = hub_http_fhir_add_op(f, "Patient", "mpi-link", HUB_OP_INSTANCE, true, defs[0],
                                       op_link, m);
    if (!rc) rc = hub_http_fhir_add_op(f, "Patient", "mpi-unlink", HUB_OP_INSTANCE, true,
                                       defs[1], op_unlink, m);
    if (!rc) rc = hub_http_fhir_add_op(f, "Patient", "mpi-not-same", HUB_OP_INSTANCE, true,
                                       defs[2], op_not_same, m);
    if (!rc) rc = hub_http_fhir_add_op(f, "Patient", "mpi-links", HUB_OP_INSTANCE, false,
                                       defs[3], op_links, m);
    if (!rc) rc = hub_http_fhir_add_op(f, "Patient", "mpi-review", HUB_OP_TYPE, false, defs[4],
                                       op_review, m);
    if (!rc) rc = hub_http_fhir_add_op(f, "Patient", "mpi-review-resolve", HUB_OP_TYPE, true,
                                       defs[5], op_review_resolve, m);
    if (rc) return hub_err_set(err, rc, "mpi", "cannot register the operations");
    return HUB_OK;
}
