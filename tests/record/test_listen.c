/* record: change listeners (what the patient index, the router and the
 * audit trail hang on) and writes from inside the transaction. */
#include "record_test.h"

#include <stdlib.h>

typedef struct {
    int calls;
    char type[64], id[72];
    int64_t version;
    bool created, deleted;
    size_t ntoks;
    bool saw_identifier;
    char client[64];
    int depth;
    char json_head[64];
    /* behaviour */
    bool echo;       /* on a Patient at depth 0, write a Basic pointing at it */
    bool fail;       /* fail every call (as a store failure would) */
    int chain_depth; /* rewrite whatever was written, to test the depth cap */
} seen;

static hub_status listener(void *ud, hub_store_tx *tx, const hub_record_change *ch,
                           hub_err *err) {
    seen *s = ud;
    s->calls++;
    snprintf(s->type, sizeof s->type, "%s", ch->type);
    snprintf(s->id, sizeof s->id, "%s", ch->id);
    s->version = ch->version;
    s->created = ch->created;
    s->deleted = ch->deleted;
    s->ntoks = ch->ntoks;
    s->depth = ch->depth;
    for (size_t i = 0; i < ch->ntoks; i++)
        if (strcmp(ch->toks[i].param, "identifier") == 0 &&
            strcmp(ch->toks[i].value, "m-1") == 0)
            s->saw_identifier = true;
    snprintf(s->client, sizeof s->client, "%s",
             ch->actor && ch->actor->client ? ch->actor->client : "");
    snprintf(s->json_head, sizeof s->json_head, "%.40s", ch->json ? ch->json : "");
    if (s->fail) return hub_err_set(err, HUB_E_STORE, "test", "listener failed");
    if (s->echo && ch->depth == 0 && strcmp(ch->type, "Patient") == 0) {
        json_t *b = json_pack("{s:s, s:{s:s}}", "resourceType", "Basic", "subject",
                              "reference", "Patient/x");
        hub_resource out;
        hub_status rc = hub_record_put_tx(rt_rec, tx, "Basic", NULL, b, false, ch->actor,
                                          ch->depth, &out, err);
        json_decref(b);
        if (rc == HUB_OK) hub_resource_release(&out);
        return rc;
    }
    if (s->chain_depth) {
        json_t *b = json_pack("{s:s}", "resourceType", "Basic");
        hub_status rc = hub_record_put_tx(rt_rec, tx, "Basic", "chained", b, false, NULL,
                                          ch->depth, NULL, err);
        json_decref(b);
        return rc;
    }
    return HUB_OK;
}

Test(listen, a_listener_sees_each_version_with_its_index_rows_and_actor, .init = rt_up,
     .fini = rt_down) {
    seen s = {0};
    cr_assert_eq(hub_record_listen(rt_rec, listener, &s), HUB_OK);
    json_t *res = rt_json("{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":"
                          "\"urn:s\",\"value\":\"m-1\"}]}");
    hub_actor who = {.client = "app-1", .peer = "127.0.0.1:9"};
    hub_record_op op = {.kind = HUB_OP_CREATE, .type = "Patient", .resource = res,
                        .actor = &who};
    cr_assert_eq(rt_apply1(&op), 201);
    cr_assert_eq(s.calls, 1);
    cr_assert_str_eq(s.type, "Patient");
    cr_assert_str_eq(s.id, op.res.id);
    cr_assert_eq(s.version, 1);
    cr_assert(s.created);
    cr_assert_not(s.deleted);
    cr_assert(s.saw_identifier, "the version's index rows come with it");
    cr_assert_str_eq(s.client, "app-1");
    cr_assert_eq(s.depth, 0);
    cr_assert_eq(strncmp(s.json_head, "{\"resourceType\":\"Patient\"", 25), 0, "%s",
                 s.json_head);
    char id[72];
    snprintf(id, sizeof id, "%s", op.res.id);
    hub_record_op_release(&op);
    json_decref(res);

    hub_record_op del = {.kind = HUB_OP_DELETE, .type = "Patient", .id = id};
    cr_assert_eq(rt_apply1(&del), 204);
    hub_record_op_release(&del);
    cr_assert_eq(s.calls, 2);
    cr_assert(s.deleted);
    cr_assert_eq(s.version, 2);
    cr_assert_eq(s.ntoks, 0);
    cr_assert_str_eq(s.json_head, "");
}

/* An update that changes nothing (a resent message) writes no version, so
 * no listener hears of it; one that changes something does. */
Test(listen, an_update_that_changes_nothing_is_not_a_change, .init = rt_up, .fini = rt_down) {
    seen s = {0};
    cr_assert_eq(hub_record_listen(rt_rec, listener, &s), HUB_OK);
    static const char *const bodies[3] = {
        "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:s\",\"value\":\"u-1\"}]}",
        "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:s\",\"value\":\"u-1\"}]}",
        "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:s\",\"value\":\"u-1\"}],"
        "\"active\":true}",
    };
    static const int status[3] = {201, 200, 200};
    static const int64_t version[3] = {1, 1, 2};
    static const int calls[3] = {1, 1, 2};
    for (int i = 0; i < 3; i++) {
        json_t *res = rt_json(bodies[i]);
        hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .resource = res,
                            .criteria = "identifier=urn:s|u-1"};
        cr_assert_eq(rt_apply1(&op), status[i], "update %d", i);
        cr_assert_eq(op.res.version, version[i], "update %d", i);
        cr_assert_eq(s.calls, calls[i], "update %d", i);
        cr_assert_not_null(op.res.json, "the current version answers");
        hub_record_op_release(&op);
        json_decref(res);
    }
}

Test(listen, a_listener_writes_in_the_same_transaction, .init = rt_up, .fini = rt_down) {
    seen s = {.echo = true};
    cr_assert_eq(hub_record_listen(rt_rec, listener, &s), HUB_OK);
    char id[72];
    cr_assert_eq(rt_create("Patient", "{\"resourceType\":\"Patient\"}", id), 201);
    /* The listener saw the Patient, wrote a Basic, and saw that too (depth 1). */
    cr_assert_eq(s.calls, 2);
    cr_assert_str_eq(s.type, "Basic");
    cr_assert_eq(s.depth, 1);
    cr_assert(s.created);
    hub_resource rd;
    hub_err err;
    cr_assert_eq(hub_record_read(rt_rec, "Basic", s.id, 0, &rd, &err), HUB_OK, "%s",
                 err.msg);
    cr_assert_eq(rd.version, 1);
    cr_assert_not_null(strstr(rd.json, "\"versionId\":\"1\""));
    hub_resource_release(&rd);
}

Test(listen, a_failing_listener_undoes_the_change, .init = rt_up, .fini = rt_down) {
    seen s = {.fail = true};
    cr_assert_eq(hub_record_listen(rt_rec, listener, &s), HUB_OK);
    json_t *res = rt_json("{\"resourceType\":\"Patient\",\"id\":\"p1\"}");
    hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .id = "p1",
                        .resource = res};
    hub_err err;
    hub_status rc = hub_record_apply(rt_rec, &op, 1, true, &err);
    cr_assert_neq(rc, HUB_OK, "the store failure reaches the caller");
    hub_record_op_release(&op);
    json_decref(res);
    hub_resource rd;
    cr_assert_eq(hub_record_read(rt_rec, "Patient", "p1", 0, &rd, &err), HUB_E_NOTFOUND,
                 "nothing of the change stays");
}

Test(listen, listeners_feeding_each_other_stop_at_the_depth_cap, .init = rt_up,
     .fini = rt_down) {
    seen s = {.chain_depth = 1};
    cr_assert_eq(hub_record_listen(rt_rec, listener, &s), HUB_OK);
    json_t *res = rt_json("{\"resourceType\":\"Patient\",\"id\":\"p1\"}");
    hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .id = "p1",
                        .resource = res};
    hub_err err;
    cr_assert_neq(hub_record_apply(rt_rec, &op, 1, true, &err), HUB_OK);
    hub_record_op_release(&op);
    json_decref(res);
    cr_assert_eq(s.calls, 6, "depth 0..5: the sixth write is refused (%d)", s.calls);
}

Test(listen, at_most_eight_listeners, .init = rt_up_bare, .fini = rt_down) {
    seen s = {0};
    for (int i = 0; i < 8; i++) cr_assert_eq(hub_record_listen(rt_rec, listener, &s), HUB_OK);
    cr_assert_eq(hub_record_listen(rt_rec, listener, &s), HUB_E_LIMIT);
}

Test(listen, put_tx_refuses_a_bad_id, .init = rt_up_bare, .fini = rt_down) {
    /* Runs inside a job: the listener path with an id the record refuses. */
    hub_err err;
    cr_assert_eq(hub_record_put_tx(rt_rec, NULL, "Basic", "bad id", NULL, true, NULL, 0,
                                   NULL, &err),
                 HUB_E_ARG);
    cr_assert_eq(hub_record_put_tx(rt_rec, NULL, "Basic", NULL, NULL, false, NULL, 0, NULL,
                                   &err),
                 HUB_E_ARG, "no resource");
}

static hub_status two_ids(void *ud, const char *id, hub_arena *a, const char ***ids,
                          size_t *n, hub_err *err) {
    (void)ud;
    (void)err;
    const char **v = hub_arena_alloc(a, 2 * sizeof *v);
    v[0] = hub_arena_strndup(a, id, strlen(id));
    v[1] = "linked";
    *ids = v;
    *n = 2;
    return HUB_OK;
}

Test(listen, patient_ids_default_to_the_patient_itself, .init = rt_up_bare, .fini = rt_down) {
    hub_arena a;
    hub_arena_init(&a, 256);
    const char **ids;
    size_t n;
    hub_err err;
    cr_assert_eq(hub_record_patient_ids(rt_rec, "p9", &a, &ids, &n, &err), HUB_OK);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(ids[0], "p9");
    hub_record_set_patient_ids(rt_rec, two_ids, NULL);
    cr_assert_eq(hub_record_patient_ids(rt_rec, "p9", &a, &ids, &n, &err), HUB_OK);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(ids[1], "linked");
    hub_arena_release(&a);
}

/* ---- pre-write hooks -------------------------------------------------------- */

typedef struct {
    int calls;
    int64_t version;
    int depth;
    hub_op_kind kind;
    bool refuse;
} pre_seen;

/* Adds identifier urn:s|m-1 to the Patient about to be written. */
static hub_status stamp(void *ud, hub_store_tx *tx, hub_record_pending *pw, bool *changed,
                        hub_err *err) {
    (void)tx;
    pre_seen *p = ud;
    p->calls++;
    p->version = pw->version;
    p->depth = pw->depth;
    p->kind = pw->kind;
    if (p->refuse) return hub_err_set(err, HUB_E_INVALID, "Patient.name", "no name");
    json_object_set_new(pw->res, "identifier",
                        json_pack("[{s:s, s:s}]", "system", "urn:s", "value", "m-1"));
    *changed = true;
    return HUB_OK;
}

static void assert_stamped(const char *id, int64_t version) {
    hub_resource rd;
    hub_err err;
    cr_assert_eq(hub_record_read(rt_rec, "Patient", id, 0, &rd, &err), HUB_OK, "%s", err.msg);
    cr_assert_eq(rd.version, version);
    cr_assert_not_null(strstr(rd.json, "\"value\":\"m-1\""), "%s", rd.json);
    hub_resource_release(&rd);
}

Test(prewrite, a_hook_amends_the_one_version_written_and_its_index_rows, .init = rt_up,
     .fini = rt_down) {
    pre_seen p = {0};
    seen s = {0};
    cr_assert_eq(hub_record_prewrite(rt_rec, "Patient", stamp, &p), HUB_OK);
    cr_assert_eq(hub_record_listen(rt_rec, listener, &s), HUB_OK);
    char id[72];
    cr_assert_eq(rt_create("Patient", "{\"resourceType\":\"Patient\"}", id), 201);
    cr_assert_eq(p.calls, 1);
    cr_assert_eq(p.version, 1);
    cr_assert_eq(p.kind, HUB_OP_CREATE);
    cr_assert_eq(s.calls, 1, "one version, the amended one");
    cr_assert(s.saw_identifier, "its index rows are the amended resource's");
    assert_stamped(id, 1);

    /* an update, a conditional update (encoded on the writer) and a patch */
    char body[200];
    snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"active\":false}",
             id);
    json_t *res = rt_json(body);
    hub_record_op up = {.kind = HUB_OP_UPDATE, .type = "Patient", .id = id, .resource = res,
                        .if_match = "W/\"1\""};
    cr_assert_eq(rt_apply1(&up), 200);
    hub_record_op_release(&up);
    json_decref(res);
    cr_assert_eq(p.version, 2);
    assert_stamped(id, 2);
    /* The same body again differs from what is stored only by what the
     * hook gives back: no change, so no version and no listener. */
    res = rt_json(body);
    hub_record_op same = {.kind = HUB_OP_UPDATE, .type = "Patient", .id = id, .resource = res};
    cr_assert_eq(rt_apply1(&same), 200);
    hub_record_op_release(&same);
    json_decref(res);
    cr_assert_eq(p.calls, 3);
    cr_assert_eq(p.version, 3, "the hook is told the version that would be written");
    cr_assert_eq(s.calls, 2);
    assert_stamped(id, 2);
    res = rt_json("{\"resourceType\":\"Patient\",\"active\":true}");
    hub_record_op cu = {.kind = HUB_OP_UPDATE, .type = "Patient", .criteria = "identifier=m-1",
                        .resource = res};
    cr_assert_eq(rt_apply1(&cu), 200);
    hub_record_op_release(&cu);
    json_decref(res);
    assert_stamped(id, 3);
    json_t *patch = rt_json("[{\"op\":\"remove\",\"path\":\"/identifier\"}]");
    hub_record_op pa = {.kind = HUB_OP_PATCH, .type = "Patient", .id = id, .patch = patch};
    cr_assert_eq(rt_apply1(&pa), 200);
    hub_record_op_release(&pa);
    json_decref(patch);
    cr_assert_eq(p.kind, HUB_OP_PATCH);
    assert_stamped(id, 4);
    cr_assert_eq(p.calls, 5);
    cr_assert_eq(s.calls, 4);
}

Test(prewrite, hooks_run_for_their_type_and_for_listener_writes, .init = rt_up,
     .fini = rt_down) {
    pre_seen p = {0};
    cr_assert_eq(hub_record_prewrite(rt_rec, "Basic", stamp, &p), HUB_OK);
    seen s = {.echo = true};
    cr_assert_eq(hub_record_listen(rt_rec, listener, &s), HUB_OK);
    char id[72];
    cr_assert_eq(rt_create("Patient", "{\"resourceType\":\"Patient\"}", id), 201);
    cr_assert_eq(p.calls, 1, "not for the Patient; for the listener's Basic");
    cr_assert_eq(p.depth, 1);
    hub_resource rd;
    hub_err err;
    cr_assert_eq(hub_record_read(rt_rec, "Basic", s.id, 0, &rd, &err), HUB_OK, "%s", err.msg);
    cr_assert_not_null(strstr(rd.json, "\"value\":\"m-1\""), "%s", rd.json);
    hub_resource_release(&rd);
}

Test(prewrite, a_refusing_hook_is_a_400_and_writes_nothing, .init = rt_up, .fini = rt_down) {
    pre_seen p = {.refuse = true};
    cr_assert_eq(hub_record_prewrite(rt_rec, "Patient", stamp, &p), HUB_OK);
    json_t *res = rt_json("{\"resourceType\":\"Patient\",\"id\":\"p1\"}");
    hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .id = "p1", .resource = res};
    cr_assert_eq(rt_apply1(&op), 400);
    cr_assert_not_null(op.outcome);
    hub_record_op_release(&op);
    json_decref(res);
    hub_resource rd;
    hub_err err;
    cr_assert_eq(hub_record_read(rt_rec, "Patient", "p1", 0, &rd, &err), HUB_E_NOTFOUND);
}

Test(prewrite, at_most_four_hooks, .init = rt_up_bare, .fini = rt_down) {
    pre_seen p = {0};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(hub_record_prewrite(rt_rec, "Patient", stamp, &p), HUB_OK);
    cr_assert_eq(hub_record_prewrite(rt_rec, "Patient", stamp, &p), HUB_E_LIMIT);
}
