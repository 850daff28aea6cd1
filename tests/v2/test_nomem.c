/* Out of memory: every allocation of each operation fails in turn; the
 * answer is HUB_E_NOMEM (never a crash, never a leak under ASan). */
#include "v2_test.h"

#define MSG                                                            \
    "MSH|^~\\&|LAB|H|||20260101||ORU^R01|C9|P|2.5.1\r"                  \
    "PID|1||111^^^A~222^^^B||DOE^JANE\rOBR|1\rOBX|1|ST|X||a\\T\\b\r"     \
    "NTE|1||x\rOBX|2|NM|Y||2.5\r"

typedef hub_status (*op_fn)(hub_arena *a, hub_v2_msg *m, hub_buf *b);

static void each_failure(op_fn op, const char *name) {
    long k;
    for (k = 1; k < 500; k++) {
        hub_arena a;
        hub_arena_init(&a, 64); /* tiny blocks: most requests allocate */
        hub_v2_msg *m = NULL;
        if (op != NULL) {
            cr_assert_eq(hub_v2_parse(&a, MSG, strlen(MSG), NULL, &m, NULL), HUB_OK);
        }
        hub_buf b;
        hub_buf_init(&b);
        hub_mem_fail_after(k);
        hub_status rc;
        if (op == NULL) {
            rc = hub_v2_parse(&a, MSG, strlen(MSG), NULL, &m, NULL);
        } else {
            rc = op(&a, m, &b);
        }
        hub_mem_fail_after(0);
        hub_buf_release(&b);
        hub_arena_release(&a);
        cr_assert(rc == HUB_OK || rc == HUB_E_NOMEM, "%s: k=%ld rc=%s", name, k,
                  hub_status_name(rc));
        if (rc == HUB_OK) break;
    }
    cr_assert_lt(k, 500, "%s never succeeded", name);
    cr_assert_gt(k, 1, "%s allocated nothing: the test proves nothing", name);
}

static hub_status op_batch(hub_arena *a, hub_v2_msg *m, hub_buf *b) {
    (void)m;
    (void)b;
    static const char s[] = "BHS|^~\\&\r" MSG MSG "BTS|2\r";
    hub_v2_batch bt;
    return hub_v2_batch_parse(a, s, sizeof s - 1, NULL, &bt, NULL);
}
static hub_status op_decode(hub_arena *a, hub_v2_msg *m, hub_buf *b) {
    (void)b;
    hub_v2_text_out t;
    return hub_v2_decode(a, m, hub_v2_get(m, "OBX-5"), &t, NULL);
}
static hub_status op_ack(hub_arena *a, hub_v2_msg *m, hub_buf *b) {
    (void)a;
    hub_v2_finding f = {{"PID", 1, 1, 3, 0, 0, 0}, 101, 'E', "missing", SIZE_MAX};
    hub_v2_ack_req r = {0};
    r.findings = &f;
    r.nfindings = 1;
    r.status = HUB_V2_ACK_ERROR;
    return hub_v2_ack_build(m, &r, b, NULL);
}
static hub_status op_ack_raw(hub_arena *a, hub_v2_msg *m, hub_buf *b) {
    (void)a;
    (void)m;
    return hub_v2_ack_build_raw("MSH||A|B", 8, NULL, b, NULL);
}
static hub_status op_set(hub_arena *a, hub_v2_msg *m, hub_buf *b) {
    (void)b;
    return hub_v2_set(a, m, 1, 40, 2, 3, 2, "a|b", NULL);
}
static hub_status op_encode(hub_arena *a, hub_v2_msg *m, hub_buf *b) {
    (void)a;
    return hub_v2_encode(m, b, NULL);
}
static hub_status op_groups(hub_arena *a, hub_v2_msg *m, hub_buf *b) {
    (void)b;
    hub_v2_groups g;
    return hub_v2_group_match(a, m, hub_v2_struct_builtin("ORU_R01"), &g, NULL);
}
static hub_status op_build(hub_arena *a, hub_v2_msg *m, hub_buf *b) {
    (void)m;
    hub_v2_msg *n;
    hub_status rc = hub_v2_msg_new(a, NULL, &n, NULL);
    if (rc == HUB_OK) rc = hub_v2_seg_add(a, n, "MSH", NULL, NULL);
    if (rc == HUB_OK) rc = hub_v2_seg_add(a, n, "PID", NULL, NULL);
    if (rc == HUB_OK) rc = hub_v2_set_path(a, n, "PID-5.2", "X", NULL);
    if (rc == HUB_OK) rc = hub_v2_encode(n, b, NULL);
    return rc;
}

Test(v2_nomem, parse) { each_failure(NULL, "parse"); }
Test(v2_nomem, batch) { each_failure(op_batch, "batch"); }
Test(v2_nomem, decode) { each_failure(op_decode, "decode"); }
Test(v2_nomem, ack) { each_failure(op_ack, "ack"); }
Test(v2_nomem, ack_raw) { each_failure(op_ack_raw, "ack_raw"); }
Test(v2_nomem, set) { each_failure(op_set, "set"); }
Test(v2_nomem, encode) { each_failure(op_encode, "encode"); }
Test(v2_nomem, groups) { each_failure(op_groups, "groups"); }
Test(v2_nomem, build) { each_failure(op_build, "build"); }
