/* A real FHIR client from npm (fhir-kit-client, tests/e2e/node) drives the
 * main interactions against a spawned hub. Skipped only when node is not
 * installed; its packages come from `npm ci` (.ci/install-deps). */
#include "hub_test.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NODE_DIR HUB_SOURCE_DIR "/tests/e2e/node"

static const char *find_node(void) {
    static const char *const cands[] = {"/usr/bin/node", "/usr/local/bin/node",
                                        "/usr/bin/nodejs"};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
        if (access(cands[i], X_OK) == 0) return cands[i];
    return NULL;
}

Test(fhir_client, fhir_kit_client_drives_the_api, .init = hub_test_up, .fini = hub_test_down,
     .timeout = 120) {
    const char *node = find_node();
    if (node == NULL) cr_skip("node is not installed: the fhir-kit-client test needs it");
    struct stat st;
    cr_assert_eq(stat(NODE_DIR "/node_modules/fhir-kit-client", &st), 0,
                 "fhir-kit-client is not installed: run .ci/install-deps (npm ci in "
                 "tests/e2e/node)");
    char base[128];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/fhir", hub_test_http_port());
    const char *argv[] = {node, NODE_DIR "/fhir_client.mjs", base, NULL};
    hub_buf out, err;
    hub_buf_init(&out);
    hub_buf_init(&err);
    int rc = hub_test_run(argv, NULL, &out, &err);
    hub_buf_append(&out, "", 1);
    hub_buf_append(&err, "", 1);
    cr_assert_eq(rc, 0, "fhir-kit-client run failed (%d):\n%s\n%s", rc, out.p, err.p);
    cr_assert(strstr(out.p, "checks passed"), "%s", out.p);
    cr_log_info("%s", out.p);
    hub_buf_release(&out);
    hub_buf_release(&err);
}
