/* An audit row as a FHIR R4 AuditEvent, and as an RFC 5424 syslog line. */
#include "hub/auth.h"
#include "hub/fhir.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DCM "http://dicom.nema.org/resources/ontology/DCM"
#define REST_TYPE "http://terminology.hl7.org/CodeSystem/audit-event-type"
#define REST_SUB "http://hl7.org/fhir/restful-interaction"

static const struct {
    const char *type_system, *type_code, *type_display;
    const char *sub_system, *sub_code;
    const char *action;
} KINDS[] = {
    [HUB_AUDIT_READ] = {REST_TYPE, "rest", "RESTful Operation", REST_SUB, "read", "R"},
    [HUB_AUDIT_SEARCH] = {REST_TYPE, "rest", "RESTful Operation", REST_SUB, "search-type", "E"},
    [HUB_AUDIT_CREATE] = {REST_TYPE, "rest", "RESTful Operation", REST_SUB, "create", "C"},
    [HUB_AUDIT_UPDATE] = {REST_TYPE, "rest", "RESTful Operation", REST_SUB, "update", "U"},
    [HUB_AUDIT_DELETE] = {REST_TYPE, "rest", "RESTful Operation", REST_SUB, "delete", "D"},
    [HUB_AUDIT_TOKEN] = {DCM, "110114", "User Authentication", DCM, "110122", "E"},
    [HUB_AUDIT_MLLP] = {DCM, "110107", "Import", NULL, NULL, "C"},
    [HUB_AUDIT_NOTIFY] = {DCM, "110106", "Export", NULL, NULL, "R"},
    [HUB_AUDIT_LOGIN_FAIL] = {DCM, "110114", "User Authentication", DCM, "110122", "E"},
};
#define NKINDS (sizeof KINDS / sizeof KINDS[0])

static const char *kind_name(hub_audit_kind k) {
    static const char *const N[] = {"read", "search", "create", "update", "delete",
                                    "token", "mllp", "notify", "login-fail"};
    return (size_t)k < sizeof N / sizeof N[0] ? N[k] : "other";
}

/* Parameter names only (never values); base64 as the element's type
 * requires. */
static json_t *base64_of(const char *s) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s);
    char *b = hub_malloc(n * 4 / 3 + 8);
    if (b == NULL) return NULL;
    const unsigned char *q = (const unsigned char *)s;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)q[i] << 16 | (uint32_t)q[i + 1] << 8 | q[i + 2];
        b[o++] = A[v >> 18], b[o++] = A[(v >> 12) & 63], b[o++] = A[(v >> 6) & 63],
        b[o++] = A[v & 63];
    }
    if (n - i) {
        uint32_t v = (uint32_t)q[i] << 16 | (n - i == 2 ? (uint32_t)q[i + 1] << 8 : 0);
        b[o++] = A[v >> 18], b[o++] = A[(v >> 12) & 63];
        b[o++] = n - i == 2 ? A[(v >> 6) & 63] : '=';
        b[o++] = '=';
    }
    b[o] = '\0';
    json_t *j = json_string(b);
    hub_free(b);
    return j;
}

/* One entity: what (Type/id, or a journal row), its type, a search's
 * parameter names, the sender; `count` > 1 is how many events of the row
 * touched it (a detail "count"). */
static json_t *entity_of(const hub_audit_event *e, const char *id, int64_t count) {
    json_t *ent = json_object();
    if (e->entity_type && id && strcmp(e->entity_type, "Message") != 0) {
        char ref[160];
        snprintf(ref, sizeof ref, "%s/%s", e->entity_type, id);
        json_object_set_new(ent, "what", json_pack("{s:s}", "reference", ref));
    } else if (id) {
        json_object_set_new(ent, "what", json_pack("{s:{s:s, s:s}}", "identifier", "system",
                                                   "urn:hub:journal", "value", id));
    }
    if (e->entity_type)
        json_object_set_new(ent, "type", json_pack("{s:s, s:s}", "system",
                                                   "http://hl7.org/fhir/resource-types", "code",
                                                   e->entity_type));
    if (e->query) json_object_set_new(ent, "query", base64_of(e->query));
    if (e->sender) json_object_set_new(ent, "name", json_string(e->sender));
    if (count > 1) {
        char n[24];
        snprintf(n, sizeof n, "%" PRId64, count);
        json_object_set_new(ent, "detail", json_pack("[{s:s, s:s}]", "type", "count",
                                                     "valueString", n));
    }
    return ent;
}

/* A grouped row's ids ("id" or "id*N", spaces): one entity each. */
static void add_group_entities(json_t *ae, const hub_audit_row *row) {
    json_t *ents = json_array();
    for (const char *p = row->entities; *p;) {
        size_t n = strcspn(p, " ");
        char id[80];
        snprintf(id, sizeof id, "%.*s", (int)(n < 79 ? n : 79), p);
        int64_t count = 1;
        char *star = strchr(id, '*');
        if (star) {
            *star = '\0';
            count = strtoll(star + 1, NULL, 10);
        }
        json_array_append_new(ents, entity_of(&row->ev, id, count));
        p += n;
        while (*p == ' ') p++;
    }
    json_object_set_new(ae, "entity", ents);
}

json_t *hub_audit_to_fhir(const hub_audit_row *row) {
    const hub_audit_event *e = &row->ev;
    size_t k = (size_t)e->kind < NKINDS ? (size_t)e->kind : HUB_AUDIT_READ;
    char id[24], when[32], oc[4];
    snprintf(id, sizeof id, "%" PRId64, row->id);
    hub_time_iso(e->at_ms, when);
    snprintf(oc, sizeof oc, "%d", e->outcome);
    json_t *ae = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:s, s:s, s:s}", "resourceType",
                           "AuditEvent", "id", id, "type", "system", KINDS[k].type_system, "code",
                           KINDS[k].type_code, "display", KINDS[k].type_display, "action",
                           KINDS[k].action, "recorded", when, "outcome", oc);
    if (ae == NULL) return NULL;
    if (KINDS[k].sub_code)
        json_object_set_new(ae, "subtype", json_pack("[{s:s, s:s}]", "system", KINDS[k].sub_system,
                                                     "code", KINDS[k].sub_code));
    if (e->detail) json_object_set_new(ae, "outcomeDesc", json_string(e->detail));
    /* Who: the OAuth client, else the certificate subject or the channel's
     * sender identity, else the peer. */
    json_t *agent = json_pack("{s:b}", "requestor", 1);
    json_t *who = json_object();
    if (e->client)
        json_object_set_new(who, "identifier",
                            json_pack("{s:s, s:s}", "system", "urn:hub:client", "value", e->client));
    const char *display = e->client ? e->client : e->subject ? e->subject : e->sender;
    if (display) json_object_set_new(who, "display", json_string(display));
    json_object_set_new(agent, "who", who);
    if (e->subject) json_object_set_new(agent, "altId", json_string(e->subject));
    if (e->channel) json_object_set_new(agent, "name", json_string(e->channel));
    if (e->peer) {
        char ip[64];
        snprintf(ip, sizeof ip, "%s", e->peer);
        char *colon = strrchr(ip, ':');
        if (colon && row->count <= 1) *colon = '\0'; /* "ip:port"; a group's is the ip */
        json_object_set_new(agent, "network", json_pack("{s:s, s:s}", "address", ip, "type", "2"));
    }
    json_object_set_new(ae, "agent", json_pack("[o]", agent));
    json_object_set_new(
        ae, "source",
        json_pack("{s:{s:s}, s:[{s:s, s:s}]}", "observer", "display", "hub", "type", "system",
                  "http://terminology.hl7.org/CodeSystem/security-source-type", "code", "4"));
    if (row->entities && row->entities[0]) add_group_entities(ae, row);
    else if (e->entity_type || e->query || e->sender || row->count > 1) /* a count at least */
        json_object_set_new(ae, "entity", json_pack("[o]", entity_of(e, e->entity_id, row->count)));
    if (row->count > 1) {
        char last[32];
        hub_time_iso(row->last_ms, last);
        json_object_set_new(ae, "period", json_pack("{s:s, s:s}", "start", when, "end", last));
    }
    return ae;
}

/* SD-PARAM values escape '"', '\' and ']' (RFC 5424 6.3.3). */
static void sd_value(hub_buf *b, const char *s) {
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\' || *s == ']') hub_buf_append(b, "\\", 1);
        if ((unsigned char)*s >= 0x20) hub_buf_append(b, s, 1);
    }
}

hub_status hub_audit_syslog_line(const hub_audit_row *row, const char *host, const char *app,
                                 hub_buf *out) {
    const hub_audit_event *e = &row->ev;
    /* authpriv (10); notice (5) on success, warning (4) otherwise. */
    int pri = 10 * 8 + (e->outcome == 0 ? 5 : 4);
    char when[32];
    hub_time_iso(e->at_ms, when);
    hub_status rc = hub_buf_printf(out, "<%d>1 %s %s %s - AuditEvent [hub@32473 id=\"%" PRId64
                                        "\" kind=\"%s\" outcome=\"%d\"",
                                   pri, when, host && *host ? host : "-", app, row->id,
                                   kind_name(e->kind), e->outcome);
    if (rc) return rc;
    if (e->client) {
        hub_buf_append_cstr(out, " client=\"");
        sd_value(out, e->client);
        hub_buf_append_cstr(out, "\"");
    }
    if (e->entity_type) {
        hub_buf_append_cstr(out, " entity=\"");
        sd_value(out, e->entity_type);
        if (e->entity_id) {
            hub_buf_append_cstr(out, "/");
            sd_value(out, e->entity_id);
        }
        hub_buf_append_cstr(out, "\"");
    }
    if (row->count > 1) hub_buf_printf(out, " count=\"%" PRId64 "\"", row->count);
    hub_buf_append_cstr(out, "] ");
    json_t *j = hub_audit_to_fhir(row);
    if (j == NULL) return HUB_E_NOMEM;
    rc = hub_json_dump_buf(j, JSON_COMPACT, out);
    json_decref(j);
    return rc;
}
