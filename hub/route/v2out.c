/* route: HL7 v2 for MLLP subscribers. The original message when the change
 * came in as v2 and the subscriber asked for it (payload application/hl7-v2);
 * else a message built from the changed resource: ADT for Patient and
 * Encounter (A01 admit, A03 discharge, A08 update), ORU^R01 for
 * Observation and DiagnosticReport. Values are escaped; the message is
 * small by design (identifiers, codes, states), the subscriber queries
 * FHIR for the rest. */
#include "internal.h"

#include <jansson.h>
#include <string.h>

#include "hub/v2.h"

typedef struct {
    hub_buf *out;
    hub_status rc;
} bodyctx;

static hub_status journal_body(void *ud, const hub_journal_row *row) {
    bodyctx *c = ud;
    if (!row->body || row->body_len == 0) return HUB_E_NOTFOUND;
    return hub_buf_append(c->out, row->body, row->body_len) ? HUB_E_NOMEM : HUB_OK;
}

static hub_status res_json(void *ud, const hub_store_version *v) {
    json_t **out = ud;
    *out = json_loadb(v->json, v->json_len, 0, NULL);
    return *out ? HUB_OK : HUB_E_NOMEM;
}

static void esc(hub_buf *b, const char *s) {
    if (!s) return;
    hub_v2_delims d = hub_v2_delims_default();
    hub_v2_escape(hub_slice_cstr(s), &d, b);
}

/* The id part of a reference "Patient/123" (or the whole). */
static const char *ref_id(const json_t *ref) {
    const char *s = json_string_value(json_object_get(ref, "reference"));
    if (!s) return NULL;
    const char *slash = strrchr(s, '/');
    return slash ? slash + 1 : s;
}

static const json_t *first_coding(const json_t *cc) {
    return json_array_get(json_object_get(cc, "coding"), 0);
}

static void coded(hub_buf *b, const json_t *cc) {
    const json_t *c = first_coding(cc);
    if (!c) {
        esc(b, json_string_value(json_object_get(cc, "text")));
        return;
    }
    esc(b, json_string_value(json_object_get(c, "code")));
    hub_buf_append(b, "^", 1);
    esc(b, json_string_value(json_object_get(c, "display")));
    hub_buf_append(b, "^", 1);
    esc(b, json_string_value(json_object_get(c, "system")));
}

static void msh(hub_buf *b, const char *type, const char *ctrl) {
    char ts[32], iso[32];
    hub_time_iso(hub_now_ms(), iso);
    /* 2026-11-25T11:32:02.123Z -> 20261125113202 */
    size_t k = 0;
    for (size_t i = 0; iso[i] && i < 19 && k < sizeof ts - 1; i++)
        if (iso[i] >= '0' && iso[i] <= '9') ts[k++] = iso[i];
    ts[k] = '\0';
    hub_buf_printf(b, "MSH|^~\\&|HUB|HUB|||%s||%s|%s|P|2.5.1\r", ts, type, ctrl);
}

static void pid(hub_buf *b, const char *patient_id, const json_t *pat) {
    hub_buf_append_cstr(b, "PID|1||");
    esc(b, patient_id);
    hub_buf_append_cstr(b, "^^^HUB^PI||");
    if (pat) {
        const json_t *n = json_array_get(json_object_get(pat, "name"), 0);
        esc(b, json_string_value(json_object_get(n, "family")));
        hub_buf_append(b, "^", 1);
        esc(b, json_string_value(json_array_get(json_object_get(n, "given"), 0)));
        hub_buf_append(b, "||", 2);
        const char *bd = json_string_value(json_object_get(pat, "birthDate"));
        for (const char *p = bd; p && *p; p++)
            if (*p >= '0' && *p <= '9') hub_buf_append(b, p, 1);
        hub_buf_append(b, "|", 1);
        const char *g = json_string_value(json_object_get(pat, "gender"));
        if (g) hub_buf_append(b, g[0] == 'm' ? "M" : g[0] == 'f' ? "F" : g[0] == 'o' ? "O" : "U", 1);
    }
    hub_buf_append(b, "\r", 1);
}

hub_status hub__v2_for_event(hub_route *r, const hub_route_event *ev, hub_rpay payload,
                             hub_buf *out, hub_err *err) {
    if (payload == HUB_RPAY_V2 && ev->message_id > 0) {
        bodyctx c = {out, HUB_OK};
        hub_status rc = hub_journal_get(r->store, ev->message_id, journal_body, &c, err);
        if (rc == HUB_OK) return HUB_OK;
        if (rc == HUB_E_NOMEM) return rc;
        /* the journal row is gone: build one instead */
    }
    if (ev->deleted)
        return hub_err_set(err, HUB_E_UNSUPPORTED, "route", "a delete has no v2 message");
    json_t *res = NULL;
    hub_status rc = hub_store_res_read(r->store, ev->type, ev->id, ev->version, res_json, &res, err);
    if (rc) return rc;
    char ctrl[40];
    /* control ids must be unique per subscriber: the event number is */
    snprintf(ctrl, sizeof ctrl, "R%.16s%lld", ev->sub, (long long)ev->seq);
    const char *status = json_string_value(json_object_get(res, "status"));
    if (strcmp(ev->type, "Patient") == 0) {
        msh(out, "ADT^A08^ADT_A01", ctrl);
        hub_buf_append_cstr(out, "EVN|A08\r");
        pid(out, ev->id, res);
        hub_buf_append_cstr(out, "PV1|1|N\r");
    } else if (strcmp(ev->type, "Encounter") == 0) {
        const char *evn = status && strcmp(status, "finished") == 0      ? "A03"
                          : status && strcmp(status, "in-progress") == 0 && ev->version == 1 ? "A01"
                                                                          : "A08";
        char t[32];
        snprintf(t, sizeof t, "ADT^%s^ADT_A%s", evn, strcmp(evn, "A03") == 0 ? "03" : "01");
        msh(out, t, ctrl);
        hub_buf_printf(out, "EVN|%s\r", evn);
        pid(out, ref_id(json_object_get(res, "subject")), NULL);
        const json_t *cls = json_object_get(res, "class");
        hub_buf_append_cstr(out, "PV1|1|");
        esc(out, json_string_value(json_object_get(cls, "code")));
        hub_buf_append_cstr(out, "|||||||||||||||||");
        esc(out, ev->id);
        hub_buf_append(out, "\r", 1);
    } else { /* Observation, DiagnosticReport */
        msh(out, "ORU^R01^ORU_R01", ctrl);
        pid(out, ref_id(json_object_get(res, "subject")), NULL);
        hub_buf_append_cstr(out, "OBR|1||");
        esc(out, ev->id);
        hub_buf_append_cstr(out, "^HUB|");
        coded(out, json_object_get(res, "code"));
        hub_buf_append(out, "\r", 1);
        const char *rs = !status                       ? "F"
                         : strcmp(status, "preliminary") == 0 ? "P"
                         : strcmp(status, "corrected") == 0 ||
                                 strcmp(status, "amended") == 0
                             ? "C"
                             : "F";
        if (strcmp(ev->type, "Observation") == 0) {
            const json_t *q = json_object_get(res, "valueQuantity");
            const char *vs = json_string_value(json_object_get(res, "valueString"));
            const json_t *vc = json_object_get(res, "valueCodeableConcept");
            hub_buf_printf(out, "OBX|1|%s|", q ? "NM" : vc ? "CWE" : "ST");
            coded(out, json_object_get(res, "code"));
            hub_buf_append_cstr(out, "||");
            if (q) {
                char num[64];
                snprintf(num, sizeof num, "%.15g", json_number_value(json_object_get(q, "value")));
                hub_buf_append_cstr(out, num);
                hub_buf_append(out, "|", 1);
                esc(out, json_string_value(json_object_get(q, "unit")));
            } else if (vc) {
                coded(out, vc);
                hub_buf_append(out, "|", 1);
            } else {
                esc(out, vs);
                hub_buf_append(out, "|", 1);
            }
            hub_buf_printf(out, "|||||%s\r", rs);
        }
    }
    json_decref(res);
    if (out->n == 0 || out->p == NULL) return hub_err_set(err, HUB_E_NOMEM, "route", "out of memory");
    return HUB_OK;
}
