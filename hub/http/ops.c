/* Operations routes: health, metrics, and the journal API the dashboard's
 * message list and error queue read. */
#include "hub/http.h"
#include "hub/auth.h"
#include <strings.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/fhir.h"
#include "hub/store.h"

static void send_json(hub_http_resp *resp, int status, json_t *j) {
    char *text = hub_json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text == NULL) {
        hub_http_resp_error(resp, 500, "out of memory");
        return;
    }
    hub_http_resp_set(resp, status, "application/json", text, strlen(text));
    hub_buf_append(&resp->body, "\n", 1);
    free(text);
}

static void on_healthz(void *ud, const hub_http_req *req, hub_http_resp *resp) {
    (void)req;
    hub_http_ops *ops = ud;
    int64_t now = hub_now_ms();
    json_t *j = json_pack("{s:s, s:s, s:f, s:s, s:i, s:i}", "status", "ok",
                          "version", HUB_VERSION, "uptime_s",
                          (double)(now - ops->started_ms) / 1000.0, "store",
                          ops->store_path, "mllp_port", ops->mllp_port,
                          "http_port", ops->http_port);
    if (j && ops->fhir_base)
        json_object_set_new(j, "fhir", json_pack("{s:s, s:s}", "base", ops->fhir_base,
                                                 "version", ops->fhir_version));
    send_json(resp, 200, j);
}

static void on_metrics(void *ud, const hub_http_req *req, hub_http_resp *resp) {
    (void)req;
    hub_http_ops *ops = ud;
    hub_buf b;
    hub_buf_init(&b);
    hub_status rc = hub_metrics_render(&b);
    if (!rc && ops->store) {
        int64_t c[4];
        hub_err err;
        if (hub_journal_counts(ops->store, c, &err) == HUB_OK) {
            hub_buf_printf(&b, "# HELP hub_journal_messages Messages in the journal by status.\n"
                               "# TYPE hub_journal_messages gauge\n");
            for (int i = 0; i < 4; i++)
                hub_buf_printf(&b, "hub_journal_messages{status=\"%s\"} %lld\n",
                               hub_msg_status_name((hub_msg_status)i),
                               (long long)c[i]);
        }
        hub_store_stats st;
        hub_store_get_stats(ops->store, &st);
        hub_buf_printf(&b,
                       "# HELP hub_store_commits_total Commit groups written.\n"
                       "# TYPE hub_store_commits_total counter\n"
                       "hub_store_commits_total %lld\n"
                       "# HELP hub_store_jobs_total Jobs run by the writer.\n"
                       "# TYPE hub_store_jobs_total counter\n"
                       "hub_store_jobs_total %lld\n",
                       (long long)st.commits, (long long)st.jobs);
    }
    hub_buf_printf(&b,
                   "# HELP hub_uptime_seconds Seconds since the hub started.\n"
                   "# TYPE hub_uptime_seconds gauge\nhub_uptime_seconds %.3f\n",
                   (double)(hub_now_ms() - ops->started_ms) / 1000.0);
    resp->status = 200;
    snprintf(resp->content_type, sizeof resp->content_type,
             "text/plain; version=0.0.4; charset=utf-8");
    resp->body = b;
}

static json_t *row_json(const hub_journal_row *r, bool full) {
    char ts[32];
    hub_time_iso(r->received_ms, ts);
    json_t *j = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id",
        (json_int_t)r->id, "received", ts, "channel", r->channel, "peer",
        r->peer, "identity", r->identity, "sender", r->sender, "control_id",
        r->control_id, "type", r->msg_type, "version", r->version, "status",
        hub_msg_status_name(r->status), "ack_code", r->ack_code);
    if (j == NULL) return NULL;
    if (full) {
        json_object_set_new(j, "ack", json_stringn_nocheck(r->ack ? r->ack : "", r->ack_len));
        json_object_set_new(j, "body", json_stringn_nocheck(r->body ? r->body : "", r->body_len));
    }
    if (r->errors) {
        json_t *e = json_loads(r->errors, 0, NULL);
        json_object_set_new(j, "errors", e ? e : json_array());
    } else {
        json_object_set_new(j, "errors", json_array());
    }
    return j;
}

typedef struct {
    json_t *arr;
    int64_t last_id;
    bool full;
} list_ctx;

static hub_status add_row(void *ud, const hub_journal_row *r) {
    list_ctx *c = ud;
    json_t *j = row_json(r, c->full);
    if (j == NULL) return HUB_E_NOMEM;
    json_array_append_new(c->arr, j);
    c->last_id = r->id;
    return HUB_OK;
}

static bool parse_i64(const char *s, int64_t *out) {
    if (s == NULL || *s == '\0') return false;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end) return false;
    *out = v;
    return true;
}

static void on_messages(void *ud, const hub_http_req *req, hub_http_resp *resp) {
    /* The journal holds whole messages: with tokens required, only an
     * admin token reads it. */
    hub_http_ops *o = ud;
    if (o->auth && o->enforce) {
        const char *h = hub_http_req_header(req, "Authorization");
        hub_auth_token tok;
        hub_err err;
        if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0 ||
            hub_auth_check(o->auth, h + 7, &tok, &err) != HUB_OK) {
            hub_http_resp_error(resp, 401, "an admin access token is required");
            hub_http_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"hub\"");
            return;
        }
        if (!tok.scopes.admin) {
            hub_http_resp_error(resp, 403, "the token has no admin scope");
            return;
        }
    }
    hub_http_ops *ops = ud;
    const char *path = hub_http_req_path(req);
    hub_err err;
    if (strcmp(path, "/api/messages") != 0) {
        int64_t id;
        if (strncmp(path, "/api/messages/", 14) != 0 || !parse_i64(path + 14, &id)) {
            hub_http_resp_error(resp, 404, "not found");
            return;
        }
        list_ctx c = {json_array(), 0, true};
        hub_status rc = hub_journal_get(ops->store, id, add_row, &c, &err);
        if (rc == HUB_E_NOTFOUND) {
            json_decref(c.arr);
            hub_http_resp_error(resp, 404, "no such message");
            return;
        }
        if (rc || json_array_size(c.arr) != 1) {
            json_decref(c.arr);
            hub_http_resp_error(resp, 500, "journal unavailable");
            return;
        }
        json_t *one = json_incref(json_array_get(c.arr, 0));
        json_decref(c.arr);
        send_json(resp, 200, one);
        return;
    }
    hub_journal_filter f = {.status = -1, .limit = 50};
    const char *v;
    if ((v = hub_http_req_query(req, "status")) != NULL) {
        hub_msg_status st;
        if (hub_msg_status_parse(v, &st) != HUB_OK) {
            hub_http_resp_error(resp, 400, "status must be accepted, rejected, errored or processed");
            return;
        }
        f.status = (int)st;
    }
    f.sender = hub_http_req_query(req, "sender");
    f.control_id = hub_http_req_query(req, "control_id");
    f.channel = hub_http_req_query(req, "channel");
    if ((v = hub_http_req_query(req, "since")) != NULL &&
        !parse_i64(v, &f.since_ms)) {
        hub_http_resp_error(resp, 400, "since must be milliseconds since the epoch");
        return;
    }
    if ((v = hub_http_req_query(req, "before")) != NULL &&
        !parse_i64(v, &f.before_id)) {
        hub_http_resp_error(resp, 400, "before must be a message id");
        return;
    }
    int64_t lim = 50;
    if ((v = hub_http_req_query(req, "limit")) != NULL &&
        (!parse_i64(v, &lim) || lim < 1 || lim > 1000)) {
        hub_http_resp_error(resp, 400, "limit must be between 1 and 1000");
        return;
    }
    f.limit = (int)lim;
    list_ctx c = {json_array(), 0, false};
    if (hub_journal_list(ops->store, &f, add_row, &c, &err) != HUB_OK) {
        json_decref(c.arr);
        hub_http_resp_error(resp, 500, "journal unavailable");
        return;
    }
    json_t *out = json_object();
    size_t n = json_array_size(c.arr);
    json_object_set_new(out, "messages", c.arr);
    if ((int)n == f.limit && c.last_id > 1) {
        char next[64];
        snprintf(next, sizeof next, "%lld", (long long)c.last_id);
        json_object_set_new(out, "next_before", json_string(next));
    } else {
        json_object_set_new(out, "next_before", json_null());
    }
    send_json(resp, 200, out);
}

hub_status hub_http_add_ops_routes(hub_http_server *s, hub_http_ops *ops) {
    hub_status rc = hub_http_route(s, "GET", "/healthz", on_healthz, ops);
    if (!rc) rc = hub_http_route(s, "GET", "/metrics", on_metrics, ops);
    if (!rc && ops->store)
        rc = hub_http_route(s, "GET", "/api/messages*", on_messages, ops);
    return rc;
}
