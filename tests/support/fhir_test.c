/* FHIR REST helpers for the e2e tests. */
#include "fhir_test.h"
#include "hub_test.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int ft_req(int port, const char *method, const char *path, const char *hdrs,
           const char *body, size_t n, ft_resp *out) {
    memset(out, 0, sizeof *out);
    hub_buf_init(&out->headers);
    hub_buf_init(&out->body);
    out->status = -1;
    int fd = hub_test_dial(port);
    hub_buf req;
    hub_buf_init(&req);
    hub_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n",
                   method, path, port);
    if (hdrs) hub_buf_append_cstr(&req, hdrs);
    if (body) hub_buf_printf(&req, "Content-Length: %zu\r\n", n);
    hub_buf_append_cstr(&req, "\r\n");
    int wrc = write_all(fd, req.p, req.n);
    if (!wrc && body) wrc = write_all(fd, body, n);
    hub_buf_release(&req);
    hub_buf in;
    hub_buf_init(&in);
    char tmp[65536];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 30000) <= 0) break;
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r <= 0) break;
        hub_buf_append(&in, tmp, (size_t)r);
    }
    close(fd);
    hub_buf_append(&in, "", 1);
    in.n--;
    int status = -1;
    if (in.n > 12 && sscanf(in.p, "HTTP/1.%*d %d", &status) == 1) {
        char *sep = strstr(in.p, "\r\n\r\n");
        if (sep) {
            hub_buf_append(&out->headers, in.p, (size_t)(sep - in.p) + 2);
            const char *b = sep + 4;
            size_t bn = in.n - (size_t)(b - in.p);
            char *te = strcasestr(in.p, "transfer-encoding: chunked");
            if (te && te < sep) {
                const char *q = b, *end = b + bn;
                while (q < end) {
                    unsigned long len = strtoul(q, NULL, 16);
                    const char *crlf = strstr(q, "\r\n");
                    if (!crlf || len == 0) break;
                    q = crlf + 2;
                    if (q + len <= end) hub_buf_append(&out->body, q, len);
                    q += len + 2;
                }
            } else {
                hub_buf_append(&out->body, b, bn);
            }
        }
    }
    hub_buf_append(&out->headers, "", 1);
    out->headers.n--;
    hub_buf_append(&out->body, "", 1);
    out->body.n--;
    hub_buf_release(&in);
    out->status = wrc ? -1 : status;
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
