/* MLLP and HTTPS over TLS through a real `hub serve`: server-only TLS,
 * mutual TLS whose certificate subject becomes the journaled identity (and
 * the audit trail's), client certificates on HTTPS checked with curl and
 * openssl s_client, and protocol versions checked with openssl s_client. */
#include "fhir_test.h"
#include "hub_test.h"
#include "mllp_test.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char certs[8][512];
static const char *tls_file(int slot, const char *name) {
    const char *d = mt_tls_dir();
    cr_assert_not_null(d, "could not make test certificates with openssl");
    snprintf(certs[slot], sizeof certs[slot], "%s/%s", d, name);
    return certs[slot];
}

static int https_get(int port, const char *path, const char *cert, const char *key,
                     hub_buf *out);

static void write_msg(char out[300], const char *ctl) {
    char tmp[256];
    hub_test_tmpdir(tmp);
    snprintf(out, 300, "%s/m.hl7", tmp);
    FILE *f = fopen(out, "w");
    fprintf(f, "MSH|^~\\&|TLSAPP|TLSFAC|HUB|HUB|20261125||ADT^A01^ADT_A01|%s|P|2.5.1\r"
               "EVN|A01|20261125\rPID|1||M1^^^TLSFAC^MR||DOE^JANE||19800101|F\rPV1|1|I\r",
            ctl);
    fclose(f);
}

static int hub_send(int port, const char *file, const char *cert, const char *key,
                    hub_buf *out) {
    char hp[64];
    snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
    const char *argv[16];
    int n = 0;
    argv[n++] = HUB_BIN;
    argv[n++] = "send";
    argv[n++] = hp;
    argv[n++] = file;
    argv[n++] = "--tls";
    argv[n++] = "--ca";
    argv[n++] = tls_file(0, "ca.pem");
    argv[n++] = "--server-name";
    argv[n++] = "localhost";
    if (cert) {
        argv[n++] = "--cert";
        argv[n++] = cert;
        argv[n++] = "--key";
        argv[n++] = key;
    }
    argv[n] = NULL;
    hub_buf_init(out);
    hub_buf err;
    hub_buf_init(&err);
    int rc = hub_test_run(argv, NULL, out, &err);
    hub_buf_append(out, err.p, err.n);
    hub_buf_release(&err);
    return rc;
}

Test(e2e_tls, server_tls_and_versions) {
    hub_test_hub h = {0};
    const char *extra[] = {"--tls-cert", tls_file(1, "server.pem"), "--tls-key",
                           tls_file(2, "server.key"), NULL};
    hub_test_start(&h, extra);
    char file[300];
    write_msg(file, "TLS-1");
    hub_buf out;
    cr_assert_eq(hub_send(h.mllp_port, file, NULL, NULL, &out), 0, "%s", out.p);
    cr_assert(strstr(out.p, "AA/CA     1"), "%s", out.p);
    hub_buf_release(&out);
    /* TLS 1.2 and 1.3 are spoken; 1.1 is refused. */
    cr_assert_eq(mt_sh("echo | timeout 10 openssl s_client -connect 127.0.0.1:%d "
                       "-tls1_2 >/dev/null 2>&1", h.mllp_port), 0);
    cr_assert_eq(mt_sh("echo | timeout 10 openssl s_client -connect 127.0.0.1:%d "
                       "-tls1_3 >/dev/null 2>&1", h.mllp_port), 0);
    cr_assert_neq(mt_sh("echo | timeout 10 openssl s_client -connect 127.0.0.1:%d "
                        "-tls1_1 -cipher DEFAULT@SECLEVEL=0 >/dev/null 2>&1",
                        h.mllp_port), 0);
    /* HTTPS on the HTTP listener, with the same certificate; TLS 1.1 and
     * plain HTTP are refused. */
    cr_assert_eq(mt_sh("curl -sf --cacert %s --resolve localhost:%d:127.0.0.1 "
                       "https://localhost:%d/healthz >/dev/null",
                       tls_file(3, "ca.pem"), h.http_port, h.http_port), 0);
    cr_assert_neq(mt_sh("curl -sf --cacert %s --resolve localhost:%d:127.0.0.1 "
                        "--tlsv1.1 --tls-max 1.1 https://localhost:%d/healthz "
                        ">/dev/null 2>&1",
                        tls_file(3, "ca.pem"), h.http_port, h.http_port), 0);
    cr_assert_neq(mt_sh("curl -sf --max-time 5 http://127.0.0.1:%d/healthz >/dev/null 2>&1",
                        h.http_port), 0);
    /* A client-initiated renegotiation (TLS 1.2; 1.3 has none) is refused
     * on both listeners: the connection ends instead of a new handshake. */
    for (int i = 0; i < 2; i++)
        cr_assert_eq(mt_sh("(sleep 1; echo R; sleep 2) | timeout 10 openssl s_client "
                           "-connect 127.0.0.1:%d -tls1_2 -CAfile %s 2>&1 | "
                           "sed -n '/^RENEGOTIATING/,$p' | grep -q 'error:'",
                           i ? h.mllp_port : h.http_port, tls_file(3, "ca.pem")),
                     0, "renegotiation accepted on port %d", i ? h.mllp_port : h.http_port);
    /* Plain MLLP to a TLS port gets no ACK. */
    int fd = hub_test_dial(h.mllp_port);
    hub_test_send_frame(fd, "MSH|^~\\&|A|B|C|D|20261125||ADT^A01|X|P|2.5\r");
    hub_buf ack;
    hub_buf_init(&ack);
    cr_assert_neq(hub_test_read_frame(fd, &ack, 2000), 0);
    close(fd);
    hub_buf_release(&ack);
    hub_test_stop(&h);
}

Test(e2e_tls, mutual_tls_identity_is_journaled) {
    hub_test_hub h = {0};
    const char *extra[] = {"--tls-cert", tls_file(1, "server.pem"), "--tls-key",
                           tls_file(2, "server.key"), "--tls-client-ca",
                           tls_file(3, "ca.pem"),
                           /* the journal API needs an admin token when
                            * auth is on (it is, with TLS); this test is
                            * about the MLLP identity */
                           "--no-auth", NULL};
    hub_test_start(&h, extra);
    char file[300];
    write_msg(file, "MTLS-1");
    hub_buf out;
    /* Without a client certificate: refused. */
    cr_assert_neq(hub_send(h.mllp_port, file, NULL, NULL, &out), 0, "%s", out.p);
    hub_buf_release(&out);
    /* A certificate from another CA: refused. */
    cr_assert_neq(hub_send(h.mllp_port, file, tls_file(4, "rogue.pem"),
                           tls_file(5, "rogue.key"), &out), 0, "%s", out.p);
    hub_buf_release(&out);
    cr_assert_eq(hub_send(h.mllp_port, file, tls_file(4, "client.pem"),
                          tls_file(5, "client.key"), &out), 0, "%s", out.p);
    hub_buf_release(&out);
    /* The API is HTTPS now, like the MLLP channel. */
    char resolve[64], url[128];
    snprintf(resolve, sizeof resolve, "localhost:%d:127.0.0.1", h.http_port);
    snprintf(url, sizeof url, "https://localhost:%d/api/messages?control_id=MTLS-1",
             h.http_port);
    /* ... with client certificates required there too. */
    const char *curl[] = {"/usr/bin/curl", "-sf", "--cacert", tls_file(3, "ca.pem"),
                          "--cert", tls_file(4, "client.pem"), "--key", tls_file(5, "client.key"),
                          "--resolve", resolve, url, NULL};
    hub_buf body, cerr;
    hub_buf_init(&body);
    hub_buf_init(&cerr);
    cr_assert_eq(hub_test_run(curl, NULL, &body, &cerr), 0, "%s", cerr.p);
    hub_buf_release(&cerr);
    json_t *j = json_loadb(body.p, body.n, 0, NULL);
    json_t *m = json_array_get(json_object_get(j, "messages"), 0);
    cr_assert_not_null(m, "%s", body.p);
    cr_assert(strstr(json_string_value(json_object_get(m, "identity")), "hub-test-client"),
              "identity: %s", body.p);
    json_decref(j);
    hub_buf_release(&body);
    /* The two refused handshakes are on the audit trail, with why. */
    hub_buf r;
    cr_assert_eq(https_get(h.http_port, "/fhir/AuditEvent?_count=100", tls_file(4, "client.pem"),
                           tls_file(5, "client.key"), &r),
                 200, "%s", r.p);
    cr_assert(strstr(r.p, "\"outcomeDesc\":\"tls handshake failed: ") != NULL, "%s", r.p);
    cr_assert(strstr(r.p, "\"name\":\"default\"") != NULL, "%s", r.p);
    cr_assert(strstr(r.p, "DOE") == NULL);
    hub_buf_release(&r);
    hub_test_stop(&h);
}

/* curl to the HTTPS listener: the status, the body in out. cert/key NULL:
 * none. */
static int https_get(int port, const char *path, const char *cert, const char *key,
                     hub_buf *out) {
    char resolve[64], url[256];
    snprintf(resolve, sizeof resolve, "localhost:%d:127.0.0.1", port);
    snprintf(url, sizeof url, "https://localhost:%d%s", port, path);
    const char *argv[16];
    int n = 0;
    argv[n++] = "/usr/bin/curl";
    argv[n++] = "-s";
    argv[n++] = "-w";
    argv[n++] = "\n%{http_code}";
    argv[n++] = "--cacert";
    argv[n++] = tls_file(6, "ca.pem");
    argv[n++] = "--resolve";
    argv[n++] = resolve;
    if (cert) {
        argv[n++] = "--cert";
        argv[n++] = cert;
        argv[n++] = "--key";
        argv[n++] = key;
    }
    argv[n++] = url;
    argv[n] = NULL;
    return hub_test_curl(argv, out);
}

Test(e2e_tls, https_requires_a_client_certificate) {
    hub_test_hub h = {0};
    const char *extra[] = {"--tls-cert", tls_file(1, "server.pem"), "--tls-key",
                           tls_file(2, "server.key"), "--tls-client-ca", tls_file(3, "ca.pem"),
                           /* tokens are e2e_auth's; this is the certificate */
                           "--no-auth", NULL};
    hub_test_start(&h, extra);
    hub_buf r;
    /* None, or one from another CA: 401 on every route, and nothing else. */
    cr_assert_eq(https_get(h.http_port, "/fhir/Patient", NULL, NULL, &r), 401, "%s", r.p);
    cr_assert(strstr(r.p, "client certificate"), "%s", r.p);
    hub_buf_release(&r);
    cr_assert_eq(https_get(h.http_port, "/healthz", tls_file(4, "rogue.pem"),
                           tls_file(5, "rogue.key"), &r),
                 401, "%s", r.p);
    hub_buf_release(&r);
    /* openssl s_client: the handshake asks for a certificate; without one
     * the request is refused, with one it is served. */
    cr_assert_eq(mt_sh("printf 'GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | "
                       "timeout 10 openssl s_client -quiet -connect 127.0.0.1:%d -CAfile %s 2>&1 | "
                       "grep -q '^HTTP/1.1 401'",
                       h.http_port, tls_file(3, "ca.pem")),
                 0);
    cr_assert_eq(mt_sh("printf 'GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | "
                       "timeout 10 openssl s_client -quiet -connect 127.0.0.1:%d -CAfile %s "
                       "-cert %s -key %s 2>&1 | grep -q '^HTTP/1.1 200'",
                       h.http_port, tls_file(3, "ca.pem"), tls_file(4, "client.pem"),
                       tls_file(5, "client.key")),
                 0);
    cr_assert_eq(mt_sh("echo | timeout 10 openssl s_client -connect 127.0.0.1:%d -CAfile %s "
                       "2>/dev/null | grep -q 'Acceptable client certificate CA names'",
                       h.http_port, tls_file(3, "ca.pem")),
                 0);
    /* With the right one: served, and the trail names its subject. */
    cr_assert_eq(https_get(h.http_port, "/fhir/Patient/nobody", tls_file(4, "client.pem"),
                           tls_file(5, "client.key"), &r),
                 404, "%s", r.p);
    hub_buf_release(&r);
    cr_assert_eq(https_get(h.http_port, "/fhir/AuditEvent?_count=100", tls_file(4, "client.pem"),
                           tls_file(5, "client.key"), &r),
                 200, "%s", r.p);
    json_t *b = json_loads(r.p, 0, NULL);
    cr_assert_not_null(b, "%s", r.p);
    int subject_read = 0, no_cert = 0, other_ca = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(b, "entry"), i, e) {
        json_t *ae = json_object_get(e, "resource");
        json_t *ag = json_array_get(json_object_get(ae, "agent"), 0);
        const char *alt = json_string_value(json_object_get(ag, "altId"));
        const char *desc = json_string_value(json_object_get(ae, "outcomeDesc"));
        const char *oc = json_string_value(json_object_get(ae, "outcome"));
        const char *ref = json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(ae, "entity"), 0), "what"), "reference"));
        if (alt && strstr(alt, "CN=hub-test-client") && ref && !strcmp(ref, "Patient/nobody"))
            subject_read++;
        /* Refusals of one address within one audit batch are one row
         * whose entity counts them. */
        int n = ft_audit_events(ae);
        if (desc && !strcmp(desc, "no client certificate") && oc && !strcmp(oc, "12"))
            no_cert += n;
        if (desc && strstr(desc, "unknown CA") && oc && !strcmp(oc, "12")) other_ca += n;
    }
    cr_assert_eq(subject_read, 1, "%s", r.p);
    cr_assert_geq(no_cert, 2, "%s", r.p); /* curl's and s_client's */
    cr_assert_eq(other_ca, 1, "%s", r.p);
    json_decref(b);
    hub_buf_release(&r);
    hub_test_stop(&h);
}
