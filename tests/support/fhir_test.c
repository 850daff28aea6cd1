/* FHIR REST helpers for the e2e tests. */
#include "fhir_test.h"
#include "hub_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int ft_req(int port, const char *method, const char *path, const char *hdrs,
           const char *body, size_t n, ft_resp *out) {
    memset(out, 0, sizeof *out);
    hub_buf_init(&out->headers);
    hub_buf_init(&out->body);
    out->status = hub_test_http_raw(port, method, path, hdrs, body, n, &out->body,
                                    &out->headers);
    /* NUL-terminated for strstr and printing; the NUL is not counted. */
    hub_buf_append(&out->headers, "", 1);
    out->headers.n--;
    hub_buf_append(&out->body, "", 1);
    out->body.n--;
    return out->status;
}

void ft_release(ft_resp *r) {
    hub_buf_release(&r->headers);
    hub_buf_release(&r->body);
}

const char *ft_header(const ft_resp *r, const char *name, char *out, size_t cap) {
    size_t nl = strlen(name);
    for (const char *p = r->headers.p; p && *p;) {
        const char *e = strstr(p, "\r\n");
        if (e == NULL) break;
        if ((size_t)(e - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') v++;
            snprintf(out, cap, "%.*s", (int)(e - v), v);
            return out;
        }
        p = e + 2;
    }
    return NULL;
}

json_t *ft_json(const ft_resp *r) {
    return json_loadb(r->body.p ? r->body.p : "", r->body.n, 0, NULL);
}

const char *ft_issue(const ft_resp *r, const char *field) {
    static char out[512];
    out[0] = '\0';
    json_t *j = ft_json(r);
    json_t *is = json_array_get(json_object_get(j, "issue"), 0);
    json_t *v = json_object_get(is, field);
    if (json_is_array(v)) v = json_array_get(v, 0);
    if (json_is_string(v)) snprintf(out, sizeof out, "%s", json_string_value(v));
    json_decref(j);
    return out;
}

json_t *ft_strip_meta(const json_t *res, bool drop_id) {
    json_t *c = json_deep_copy(res);
    json_object_del(c, "meta");
    if (drop_id) json_object_del(c, "id");
    return c;
}

const char *ft_drop_golden_link(json_t *res) {
    static char ref[160];
    json_t *links = json_object_get(res, "link");
    size_t at = 0, n = 0;
    for (size_t i = 0; i < json_array_size(links); i++) {
        json_t *l = json_array_get(links, i);
        const char *t = json_string_value(json_object_get(l, "type"));
        const char *r = json_string_value(json_object_get(json_object_get(l, "other"), "reference"));
        if (t && strcmp(t, "refer") == 0 && r && strncmp(r, "Patient/", 8) == 0) {
            snprintf(ref, sizeof ref, "%s", r);
            at = i;
            n++;
        }
    }
    if (n != 1) return NULL;
    json_array_remove(links, at);
    if (json_array_size(links) == 0) json_object_del(res, "link");
    return ref;
}

int ft_audit_events(const json_t *ae) {
    json_t *ent = json_array_get(json_object_get(ae, "entity"), 0);
    json_t *d;
    size_t i;
    json_array_foreach(json_object_get(ent, "detail"), i, d) {
        const char *t = json_string_value(json_object_get(d, "type"));
        const char *v = json_string_value(json_object_get(d, "valueString"));
        if (t && v && !strcmp(t, "count")) return atoi(v);
    }
    return 1;
}
