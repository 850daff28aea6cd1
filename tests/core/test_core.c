/* core: arena, buffer, errors, config table, metrics, allocation failures. */
#include "hub/core.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Test(core_arena, alloc_is_aligned_and_reset_reuses) {
    hub_arena a;
    hub_arena_init(&a, 1024);
    for (int i = 1; i < 200; i++) {
        char *p = hub_arena_alloc(&a, (size_t)i);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % 16, 0);
        memset(p, 'x', (size_t)i);
    }
    cr_assert_gt(a.used_total, 0);
    hub_arena_reset(&a);
    cr_assert_eq(a.used_total, 0);
    char *big = hub_arena_alloc(&a, 100000); /* larger than a block */
    cr_assert_not_null(big);
    memset(big, 0, 100000);
    hub_arena_release(&a);
}

Test(core_arena, grow_in_place_and_copy) {
    hub_arena a;
    hub_arena_init(&a, 256);
    char *p = hub_arena_alloc(&a, 10);
    memcpy(p, "abcdefghij", 10);
    char *q = hub_arena_grow(&a, p, 10, 40);
    cr_assert_eq(p, q, "last allocation grows in place");
    char *r = hub_arena_grow(&a, q, 40, 1000);
    cr_assert_not_null(r);
    cr_assert_eq(memcmp(r, "abcdefghij", 10), 0);
    char *s = hub_arena_sprintf(&a, "%s-%d", "x", 42);
    cr_assert_str_eq(s, "x-42");
    hub_arena_release(&a);
}

Test(core_arena, allocation_failure_is_null) {
    hub_arena a;
    hub_arena_init(&a, 256);
    hub_mem_fail_after(1);
    cr_assert_null(hub_arena_alloc(&a, 10));
    hub_mem_fail_after(0);
    cr_assert_not_null(hub_arena_alloc(&a, 10));
    hub_arena_release(&a);
}

Test(core_buf, append_printf_consume) {
    hub_buf b;
    hub_buf_init(&b);
    for (int i = 0; i < 1000; i++) hub_buf_printf(&b, "%d,", i);
    cr_assert_eq(strncmp(b.p, "0,1,2,", 6), 0);
    hub_buf_consume(&b, 2);
    cr_assert_eq(strncmp(b.p, "1,2,", 4), 0);
    hub_buf_release(&b);
    cr_assert_null(b.p);
}

/* Formatting fills the room left when it fits, grows the buffer when it
 * does not, and on failure keeps the text before it, NUL-terminated. */
Test(core_buf, printf_fits_grows_and_fails_cleanly) {
    hub_buf b;
    hub_buf_init(&b);
    cr_assert_eq(hub_buf_printf(&b, "%s", "abc"), HUB_OK);
    size_t cap = b.cap;
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    /* exactly the room left but the NUL: must grow */
    size_t room = cap - b.n;
    cr_assert_eq(hub_buf_printf(&b, "%.*s", (int)(room - 1), big), HUB_OK);
    cr_assert_eq(b.n, cap - 1);
    cr_assert_eq(b.p[b.n], '\0');
    cr_assert_eq(hub_buf_printf(&b, "%s", "yz"), HUB_OK);
    cr_assert_gt(b.cap, cap);
    cr_assert_eq(b.n, cap + 1);
    cr_assert_str_eq(b.p + b.n - 2, "yz");
    cr_assert_eq(strncmp(b.p, "abcxxx", 6), 0);
    size_t n = b.n;
    hub_mem_fail_after(1);
    cr_assert_eq(hub_buf_printf(&b, "%s%s", big, big), HUB_E_NOMEM);
    hub_mem_fail_after(0);
    cr_assert_eq(b.n, n);
    cr_assert_eq(b.p[n], '\0');
    cr_assert_str_eq(b.p + n - 2, "yz");
    hub_buf_release(&b);
}

Test(core_buf, nomem_reported) {
    hub_buf b;
    hub_buf_init(&b);
    hub_mem_fail_after(1);
    cr_assert_eq(hub_buf_append_cstr(&b, "x"), HUB_E_NOMEM);
    hub_mem_fail_after(0);
    hub_buf_release(&b);
}

Test(core_err, set_and_names) {
    hub_err e;
    cr_assert_eq(hub_err_set(&e, HUB_E_LIMIT, "PID-5", "field over %d bytes", 10),
                 HUB_E_LIMIT);
    cr_assert_str_eq(e.where, "PID-5");
    cr_assert_str_eq(e.msg, "field over 10 bytes");
    cr_assert_str_eq(hub_status_name(HUB_E_LIMIT), "HUB_E_LIMIT");
    cr_assert_str_eq(hub_status_name((hub_status)999), "?");
    cr_assert_eq(hub_err_set(NULL, HUB_E_IO, "x", "y"), HUB_E_IO);
}

Test(core_config, defaults_are_valid) {
    hub_cfg c;
    hub_cfg_defaults(&c);
    for (size_t i = 0; i < hub_cfg_table_len; i++) {
        hub_err e;
        cr_assert_eq(hub_cfg_set(&c, hub_cfg_table[i].key, hub_cfg_table[i].def,
                                 "test", &e),
                     HUB_OK, "default of %s: %s", hub_cfg_table[i].key, e.msg);
    }
    cr_assert_eq(c.mllp_port, 2575);
    cr_assert_eq(c.http_port, 8080);
    cr_assert_str_eq(c.data_dir, "./hub-data");
    cr_assert_eq(c.mllp_max_frame, 16 << 20);
    cr_assert(c.durable);
}

Test(core_config, bad_values_named) {
    hub_cfg c;
    hub_cfg_defaults(&c);
    hub_err e;
    cr_assert_eq(hub_cfg_set(&c, "mllp.port", "70000", "--mllp-port", &e), HUB_E_CONFIG);
    cr_assert_str_eq(e.where, "--mllp-port");
    cr_assert(strstr(e.msg, "between 0 and 65535"));
    cr_assert_eq(hub_cfg_set(&c, "mllp.port", "12x", "f", &e), HUB_E_CONFIG);
    cr_assert_eq(hub_cfg_set(&c, "nope", "1", "f", &e), HUB_E_CONFIG);
    cr_assert(strstr(e.msg, "unknown setting 'nope'"));
    cr_assert_eq(hub_cfg_set(&c, "store.durable", "maybe", "f", &e), HUB_E_CONFIG);
    cr_assert_eq(hub_cfg_set(&c, "mllp.max_frame", "2GiB", "f", &e), HUB_E_CONFIG);
    cr_assert_eq(hub_cfg_set(&c, "mllp.max_frame", "1MiB", "f", &e), HUB_OK);
    cr_assert_eq(c.mllp_max_frame, 1 << 20);
}

Test(core_config, file_nested_and_dotted_env_overrides) {
    char path[] = "/tmp/hubcfg.XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *j = "{\"mllp\": {\"port\": 3000, \"idle_timeout\": 20},"
                    " \"http.port\": 9000, \"store\": {\"durable\": false},"
                    " \"channels\": [{\"name\": \"lab\"}]}";
    cr_assert_eq(write(fd, j, strlen(j)), (ssize_t)strlen(j));
    close(fd);
    hub_cfg c;
    hub_cfg_defaults(&c);
    hub_err e;
    cr_assert_eq(hub_cfg_load_file(&c, path, &e), HUB_OK, "%s", e.msg);
    cr_assert_eq(c.mllp_port, 3000);
    cr_assert_eq(c.mllp_idle_timeout, 20);
    cr_assert_eq(c.http_port, 9000);
    cr_assert(!c.durable);
    cr_assert_not_null(c.file_json);
    setenv("HUB_MLLP_PORT", "3001", 1);
    cr_assert_eq(hub_cfg_load_env(&c, &e), HUB_OK);
    cr_assert_eq(c.mllp_port, 3001);
    setenv("HUB_HTTP_PORT", "x", 1);
    cr_assert_eq(hub_cfg_load_env(&c, &e), HUB_E_CONFIG);
    cr_assert_str_eq(e.where, "HUB_HTTP_PORT");
    unsetenv("HUB_HTTP_PORT");
    unsetenv("HUB_MLLP_PORT");
    hub_cfg_release(&c);
    unlink(path);
}

/* The patient index is on unless its section says "enabled": false; the
 * rest of the section is the index's own (hub_mpi_open checks it). */
static hub_status load_text(hub_cfg *c, const char *j, hub_err *e) {
    char path[] = "/tmp/hubcfg.XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, j, strlen(j)), (ssize_t)strlen(j));
    close(fd);
    hub_status rc = hub_cfg_load_file(c, path, e);
    unlink(path);
    return rc;
}

Test(core_config, mpi_on_by_default_off_by_its_section) {
    hub_cfg c;
    hub_cfg_defaults(&c);
    hub_err e;
    cr_assert(c.mpi_enabled);
    cr_assert_eq(load_text(&c, "{\"mpi\": {\"auto_link\": 12}}", &e), HUB_OK, "%s", e.msg);
    cr_assert(c.mpi_enabled);
    cr_assert_eq(load_text(&c, "{\"mpi\": {\"enabled\": false}}", &e), HUB_OK, "%s", e.msg);
    cr_assert_not(c.mpi_enabled);
    cr_assert_eq(load_text(&c, "{\"mpi.enabled\": true}", &e), HUB_OK, "%s", e.msg);
    cr_assert(c.mpi_enabled);
    cr_assert_eq(load_text(&c, "{\"mpi\": {\"enabled\": \"no\"}}", &e), HUB_E_CONFIG);
    cr_assert_str_eq(e.msg, "'mpi.enabled' wants true or false");
    setenv("HUB_MPI_ENABLED", "false", 1);
    cr_assert_eq(hub_cfg_load_env(&c, &e), HUB_OK);
    cr_assert_not(c.mpi_enabled);
    unsetenv("HUB_MPI_ENABLED");
    hub_cfg_release(&c);
}

Test(core_config, file_errors_have_line) {
    char path[] = "/tmp/hubcfg.XXXXXX";
    int fd = mkstemp(path);
    const char *j = "{\n\"mllp\": {\"port\": 1,}\n}";
    cr_assert_eq(write(fd, j, strlen(j)), (ssize_t)strlen(j));
    close(fd);
    hub_cfg c;
    hub_cfg_defaults(&c);
    hub_err e;
    cr_assert_eq(hub_cfg_load_file(&c, path, &e), HUB_E_CONFIG);
    cr_assert(strstr(e.where, ":2"), "where=%s", e.where);
    hub_cfg_release(&c);
    unlink(path);
}

Test(core_config, sizes) {
    int64_t v;
    cr_assert_eq(hub_parse_size("16MiB", &v), HUB_OK);
    cr_assert_eq(v, 16 << 20);
    cr_assert_eq(hub_parse_size("64k", &v), HUB_OK);
    cr_assert_eq(v, 65536);
    cr_assert_eq(hub_parse_size("12", &v), HUB_OK);
    cr_assert_eq(hub_parse_size("x", &v), HUB_E_ARG);
    cr_assert_eq(hub_parse_size("5TB", &v), HUB_E_ARG);
    cr_assert_eq(hub_parse_size("-5", &v), HUB_E_ARG);
}

Test(core_metrics, render_prometheus) {
    hub_metric *a = hub_metric_get(HUB_METRIC_COUNTER, "hub_test_total",
                                   "channel=\"a\"", "Test counter.");
    hub_metric *b = hub_metric_get(HUB_METRIC_COUNTER, "hub_test_total",
                                   "channel=\"b\"", "Test counter.");
    cr_assert_eq(a, hub_metric_get(HUB_METRIC_COUNTER, "hub_test_total",
                                   "channel=\"a\"", "Test counter."));
    hub_metric_add(a, 3);
    hub_metric_add(b, 4);
    hub_buf out;
    hub_buf_init(&out);
    cr_assert_eq(hub_metrics_render(&out), HUB_OK);
    cr_assert(strstr(out.p, "# TYPE hub_test_total counter\n"));
    cr_assert(strstr(out.p, "hub_test_total{channel=\"a\"} 3\n"));
    cr_assert(strstr(out.p, "hub_test_total{channel=\"b\"} 4\n"));
    hub_buf_release(&out);
}

Test(core_time, iso_and_uuid) {
    char ts[32];
    hub_time_iso(0, ts);
    cr_assert_str_eq(ts, "1970-01-01T00:00:00.000Z");
    char u1[37], u2[37];
    hub_uuid(u1);
    hub_uuid(u2);
    cr_assert_eq(strlen(u1), 36);
    cr_assert_eq(u1[14], '4');
    cr_assert_str_neq(u1, u2);
}

Test(core_file, read_whole_missing_and_limit) {
    char path[] = "/tmp/hubfile.XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    char big[200000];
    memset(big, 'a', sizeof big);
    cr_assert_eq(write(fd, big, sizeof big), (ssize_t)sizeof big);
    close(fd);
    char *buf;
    size_t n;
    hub_err e;
    cr_assert_eq(hub_file_read(path, 1 << 20, &buf, &n, &e), HUB_OK);
    cr_assert_eq(n, sizeof big);
    cr_assert_eq(buf[n], '\0');
    hub_free(buf);
    cr_assert_eq(hub_file_read(path, 1000, &buf, &n, &e), HUB_E_LIMIT);
    cr_assert_null(buf);
    cr_assert_eq(hub_file_read("/tmp/no/such/file", 10, &buf, &n, &e), HUB_E_IO);
    cr_assert(strstr(e.msg, "No such file"), "%s", e.msg);
    hub_mem_fail_after(1);
    cr_assert_eq(hub_file_read(path, 1 << 20, &buf, &n, &e), HUB_E_NOMEM);
    hub_mem_fail_after(0);
    unlink(path);
}
