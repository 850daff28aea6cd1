/* record: create, read, update, delete, conditional forms, If-Match,
 * history, concurrency, through a real store in a temp dir. */
#include "record_test.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <time.h>

#define PAT "{\"resourceType\":\"Patient\",\"active\":true}"

static json_t *read_json(const char *type, const char *id, int64_t version,
                         hub_resource *res) {
    hub_err err;
    cr_assert_eq(hub_record_read(rt_rec, type, id, version, res, &err), HUB_OK,
                 "%s", err.msg);
    if (res->deleted) return NULL;
    json_error_t je;
    json_t *j = json_loadb(res->json, res->json_len, 0, &je);
    cr_assert_not_null(j);
    return j;
}

static bool iso_ms_z(const char *s) {
    /* 2026-11-25T11:32:02.123Z */
    if (s == NULL || strlen(s) != 24) return false;
    return s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[19] == '.' && s[23] == 'Z';
}

Test(record, create_then_read_sends_the_stored_bytes, .init = rt_up, .fini = rt_down) {
    json_t *res = rt_json("{\"resourceType\":\"Patient\",\"id\":\"client-id\","
                          "\"meta\":{\"profile\":[\"http://x/p\"]},\"active\":true}");
    hub_record_op op = {.kind = HUB_OP_CREATE, .type = "Patient", .resource = res};
    cr_assert_eq(rt_apply1(&op), 201);
    cr_assert(op.created);
    cr_assert_eq(op.res.version, 1);
    cr_assert_not_null(op.res.json);
    cr_assert_str_neq(op.res.id, "client-id", "create ignores the client's id");
    cr_assert_eq(strlen(op.res.id), 36);
    /* compact, with meta inside */
    cr_assert_null(strchr(op.res.json, '\n'));
    cr_assert_null(strstr(op.res.json, ": "));
    json_t *j = rt_json(op.res.json);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), op.res.id);
    json_t *meta = json_object_get(j, "meta");
    cr_assert_str_eq(json_string_value(json_object_get(meta, "versionId")), "1");
    cr_assert(iso_ms_z(json_string_value(json_object_get(meta, "lastUpdated"))));
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(meta, "profile"), 0)),
                     "http://x/p", "client meta kept");
    /* the caller's resource got the same id and meta */
    cr_assert_str_eq(json_string_value(json_object_get(res, "id")), op.res.id);
    cr_assert(json_equal(j, res));

    hub_resource rd;
    json_t *back = read_json("Patient", op.res.id, 0, &rd);
    cr_assert_eq(rd.json_len, op.res.json_len);
    cr_assert_eq(memcmp(rd.json, op.res.json, rd.json_len), 0, "bytes as stored");
    cr_assert_eq(rd.version, 1);
    cr_assert_eq(rd.last_updated_ms, op.res.last_updated_ms);
    hub_resource_release(&rd);
    json_decref(back);
    json_decref(j);
    hub_record_op_release(&op);
    json_decref(res);
}

Test(record, read_missing_and_bad_ids, .init = rt_up, .fini = rt_down) {
    hub_resource rd;
    hub_err err;
    cr_assert_eq(hub_record_read(rt_rec, "Patient", "nope", 0, &rd, &err), HUB_E_NOTFOUND);
    cr_assert_eq(hub_record_read(rt_rec, "Patient", "a/b", 0, &rd, &err), HUB_E_NOTFOUND);
    cr_assert_eq(hub_record_read(rt_rec, "Patient", "", 0, &rd, &err), HUB_E_NOTFOUND);
    cr_assert_eq(hub_record_read(rt_rec, "patient", "x", 0, &rd, &err), HUB_E_NOTFOUND);
    char id[72];
    cr_assert_eq(rt_create("Patient", PAT, id), 201);
    cr_assert_eq(hub_record_read(rt_rec, "Patient", id, 2, &rd, &err), HUB_E_NOTFOUND);
    cr_assert_eq(hub_record_read(rt_rec, "Observation", id, 0, &rd, &err), HUB_E_NOTFOUND);
}

Test(record, update_existing_and_vread, .init = rt_up, .fini = rt_down) {
    char id[72], body[256];
    cr_assert_eq(rt_create("Patient", PAT, id), 201);
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"active\":false}", id);
    int64_t v;
    cr_assert_eq(rt_update("Patient", id, body, NULL, &v), 200);
    cr_assert_eq(v, 2);
    hub_resource rd;
    json_t *j = read_json("Patient", id, 0, &rd);
    cr_assert(json_is_false(json_object_get(j, "active")));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "meta"), "versionId")), "2");
    json_decref(j);
    hub_resource_release(&rd);
    j = read_json("Patient", id, 1, &rd);
    cr_assert(json_is_true(json_object_get(j, "active")), "vread 1");
    json_decref(j);
    hub_resource_release(&rd);
}

Test(record, update_creates_with_client_id, .init = rt_up, .fini = rt_down) {
    int64_t v;
    cr_assert_eq(rt_update("Patient", "pat-1.a", "{\"resourceType\":\"Patient\",\"id\":\"pat-1.a\"}",
                           NULL, &v), 201);
    cr_assert_eq(v, 1);
    hub_resource rd;
    json_t *j = read_json("Patient", "pat-1.a", 0, &rd);
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "pat-1.a");
    json_decref(j);
    hub_resource_release(&rd);
}

Test(record, update_bad_requests, .init = rt_up, .fini = rt_down) {
    char txt[1024];
    struct {
        const char *id, *body;
        int status;
        const char *diag;
    } cases[] = {
        {"p1", "{\"resourceType\":\"Patient\"}", 400, "needs the id"},
        {"p1", "{\"resourceType\":\"Patient\",\"id\":\"p2\"}", 400, "does not match the request"},
        {"p1", "{\"resourceType\":\"Observation\",\"id\":\"p1\"}", 400, "resourceType"},
        {"p1", "{\"id\":\"p1\"}", 400, "without resourceType"},
        {"p1", "{\"resourceType\":\"Patient\",\"id\":7}", 400, "id must be a string"},
        {"bad/id", "{\"resourceType\":\"Patient\",\"id\":\"bad/id\"}", 400, "invalid resource id"},
        {"0123456789012345678901234567890123456789012345678901234567890123456789",
         "{\"resourceType\":\"Patient\",\"id\":\"x\"}", 400, "invalid resource id"},
        {"p1", "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"meta\":[]}", 400, "meta"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *res = rt_json(cases[i].body);
        hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .id = cases[i].id,
                            .resource = res};
        cr_assert_eq(rt_apply1(&op), cases[i].status, "case %zu", i);
        rt_outcome_text(&op, txt, sizeof txt);
        cr_assert(strstr(txt, cases[i].diag), "case %zu: %s", i, txt);
        hub_record_op_release(&op);
        json_decref(res);
    }
    hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .id = "p1"};
    cr_assert_eq(rt_apply1(&op), 400, "no body");
    hub_record_op_release(&op);
    hub_record_op op2 = {.kind = HUB_OP_CREATE, .type = "", .resource = NULL};
    cr_assert_eq(rt_apply1(&op2), 400, "no type");
    hub_record_op_release(&op2);
    hub_resource rd;
    hub_err err;
    cr_assert_eq(hub_record_read(rt_rec, "Patient", "p1", 0, &rd, &err), HUB_E_NOTFOUND,
                 "nothing written");
}

Test(record, delete_keeps_history_and_update_recreates, .init = rt_up, .fini = rt_down) {
    char id[72], body[256];
    cr_assert_eq(rt_create("Patient", PAT, id), 201);
    hub_record_op del = {.kind = HUB_OP_DELETE, .type = "Patient", .id = id};
    cr_assert_eq(rt_apply1(&del), 204);
    cr_assert_eq(del.res.version, 2);
    cr_assert(del.res.deleted);
    hub_record_op_release(&del);

    hub_resource rd;
    hub_err err;
    cr_assert_eq(hub_record_read(rt_rec, "Patient", id, 0, &rd, &err), HUB_OK);
    cr_assert(rd.deleted);
    cr_assert_null(rd.json);
    cr_assert_eq(rd.version, 2);
    json_t *j = read_json("Patient", id, 1, &rd);
    cr_assert_not_null(j, "version 1 still readable");
    json_decref(j);
    hub_resource_release(&rd);

    /* deleting again changes nothing */
    hub_record_op del2 = {.kind = HUB_OP_DELETE, .type = "Patient", .id = id};
    cr_assert_eq(rt_apply1(&del2), 204);
    cr_assert_eq(del2.res.version, 0, "no new version");
    hub_record_op_release(&del2);
    /* deleting what never existed: 204 as well */
    hub_record_op del3 = {.kind = HUB_OP_DELETE, .type = "Patient", .id = "never"};
    cr_assert_eq(rt_apply1(&del3), 204);
    hub_record_op_release(&del3);

    snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"id\":\"%s\"}", id);
    int64_t v;
    cr_assert_eq(rt_update("Patient", id, body, NULL, &v), 201, "re-created");
    cr_assert_eq(v, 3);
    cr_assert_eq(hub_record_read(rt_rec, "Patient", id, 0, &rd, &err), HUB_OK);
    cr_assert_not(rd.deleted);
    hub_resource_release(&rd);
}

Test(record, if_match, .init = rt_up, .fini = rt_down) {
    char id[72], body[256], txt[1024];
    cr_assert_eq(rt_create("Patient", PAT, id), 201);
    snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"id\":\"%s\"}", id);
    int64_t v;
    cr_assert_eq(rt_update("Patient", id, body, "W/\"1\"", &v), 200);
    cr_assert_eq(v, 2);
    cr_assert_eq(rt_update("Patient", id, body, "W/\"1\"", NULL), 412, "stale");
    /* each update below changes the resource, so each makes a version */
    snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"active\":true}", id);
    cr_assert_eq(rt_update("Patient", id, body, "\"2\"", NULL), 200, "plain quoted etag");
    snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"active\":false}", id);
    cr_assert_eq(rt_update("Patient", id, body, "3", NULL), 200, "bare number");
    cr_assert_eq(rt_update("Patient", id, body, "W/\"3a\"", NULL), 412, "garbage never matches");
    /* missing resource with If-Match: 412 (RFC 7232: no current representation) */
    json_t *res = rt_json("{\"resourceType\":\"Patient\",\"id\":\"ghost\"}");
    hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .id = "ghost",
                        .resource = res, .if_match = "W/\"1\""};
    cr_assert_eq(rt_apply1(&op), 412);
    rt_outcome_text(&op, txt, sizeof txt);
    cr_assert(strstr(txt, "does not exist"), "%s", txt);
    hub_record_op_release(&op);
    json_decref(res);
    /* delete with a stale If-Match */
    hub_record_op del = {.kind = HUB_OP_DELETE, .type = "Patient", .id = id, .if_match = "W/\"1\""};
    cr_assert_eq(rt_apply1(&del), 412);
    hub_record_op_release(&del);
    hub_record_op del2 = {.kind = HUB_OP_DELETE, .type = "Patient", .id = id, .if_match = "W/\"4\""};
    cr_assert_eq(rt_apply1(&del2), 204);
    hub_record_op_release(&del2);
}

#define PAT_ID(sys, val)                                                        \
    "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"" sys         \
    "\",\"value\":\"" val "\"}]}"

Test(record, conditional_create, .init = rt_up, .fini = rt_down) {
    char id1[72];
    json_t *res = rt_json(PAT_ID("urn:sys", "A1"));
    hub_record_op op = {.kind = HUB_OP_CREATE, .type = "Patient", .resource = res,
                        .if_none_exist = "identifier=urn:sys|A1"};
    cr_assert_eq(rt_apply1(&op), 201, "0 matches: created");
    snprintf(id1, sizeof id1, "%s", op.res.id);
    hub_record_op_release(&op);
    json_decref(res);

    res = rt_json(PAT_ID("urn:sys", "A1"));
    hub_record_op op2 = {.kind = HUB_OP_CREATE, .type = "Patient", .resource = res,
                         .if_none_exist = "identifier=urn%3Asys%7CA1"};
    cr_assert_eq(rt_apply1(&op2), 200, "1 match: the existing one");
    cr_assert_str_eq(op2.res.id, id1);
    cr_assert_eq(op2.res.version, 1);
    cr_assert_not_null(op2.res.json);
    cr_assert_not(op2.created);
    hub_record_op_release(&op2);
    json_decref(res);

    cr_assert_eq(rt_create("Patient", PAT_ID("urn:sys", "A1"), NULL), 201);
    res = rt_json(PAT_ID("urn:sys", "A1"));
    hub_record_op op3 = {.kind = HUB_OP_CREATE, .type = "Patient", .resource = res,
                         .if_none_exist = "identifier=A1"};
    cr_assert_eq(rt_apply1(&op3), 412, "2 matches");
    hub_record_op_release(&op3);
    json_decref(res);
}

Test(record, identifier_forms, .init = rt_up, .fini = rt_down) {
    char a[72], b[72];
    cr_assert_eq(rt_create("Patient", PAT_ID("urn:s1", "V"), a), 201);
    cr_assert_eq(rt_create("Patient", "{\"resourceType\":\"Patient\",\"identifier\":[{\"value\":\"V\"}]}", b), 201);
    struct {
        const char *q;
        int status;
        const char *id;
    } cases[] = {
        {"identifier=urn:s1|V", 200, a},
        {"identifier=|V", 200, b},
        {"identifier=V", 412, NULL},
        {"identifier=urn:s2|V", 201, NULL},
        {"_id=", 400, NULL},
        {"_id=X", 201, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char q[128];
        snprintf(q, sizeof q, "%s", cases[i].q);
        if (strcmp(q, "_id=X") == 0) snprintf(q, sizeof q, "_id=%s&identifier=urn:s2|V", a);
        json_t *res = rt_json(PAT);
        hub_record_op op = {.kind = HUB_OP_CREATE, .type = "Patient", .resource = res,
                            .if_none_exist = q};
        cr_assert_eq(rt_apply1(&op), cases[i].status, "case %zu", i);
        if (cases[i].id) cr_assert_str_eq(op.res.id, cases[i].id);
        hub_record_op_release(&op);
        json_decref(res);
    }
    /* _id alone, and ANDed with identifier */
    char q[160];
    snprintf(q, sizeof q, "_id=%s&identifier=urn:s1|V", a);
    json_t *res = rt_json(PAT);
    hub_record_op op = {.kind = HUB_OP_CREATE, .type = "Patient", .resource = res, .if_none_exist = q};
    cr_assert_eq(rt_apply1(&op), 200);
    cr_assert_str_eq(op.res.id, a);
    hub_record_op_release(&op);
    json_decref(res);
}

Test(record, unsupported_criteria_are_400, .init = rt_up, .fini = rt_down) {
    const char *qs[] = {"name=peter", "identifier:exact=x", "_lastUpdated=gt2020",
                        "identifier=a&birthdate=2000", "", "identifier", "identifier=%zz"};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        char txt[1024];
        json_t *res = rt_json(PAT);
        hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .resource = res,
                            .criteria = qs[i]};
        cr_assert_eq(rt_apply1(&op), 400, "case %zu", i);
        rt_outcome_text(&op, txt, sizeof txt);
        if (i < 4) cr_assert(strstr(txt, "not supported for conditional"), "%zu: %s", i, txt);
        hub_record_op_release(&op);
        json_decref(res);
    }
}

Test(record, conditional_update, .init = rt_up, .fini = rt_down) {
    json_t *res = rt_json(PAT_ID("urn:s", "U1"));
    hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .resource = res,
                        .criteria = "identifier=urn:s|U1"};
    cr_assert_eq(rt_apply1(&op), 201, "0 matches, no id: created");
    char id[72];
    snprintf(id, sizeof id, "%s", op.res.id);
    hub_record_op_release(&op);
    json_decref(res);

    res = rt_json(PAT_ID("urn:s", "U1"));
    hub_record_op same = {.kind = HUB_OP_UPDATE, .type = "Patient", .resource = res,
                          .criteria = "identifier=urn:s|U1"};
    cr_assert_eq(rt_apply1(&same), 200, "1 match, same content: nothing written");
    cr_assert_str_eq(same.res.id, id);
    cr_assert_eq(same.res.version, 1);
    hub_record_op_release(&same);
    json_decref(res);

    res = rt_json(PAT_ID("urn:s", "U1"));
    json_object_set_new(res, "active", json_true());
    hub_record_op op2 = {.kind = HUB_OP_UPDATE, .type = "Patient", .resource = res,
                         .criteria = "identifier=urn:s|U1"};
    cr_assert_eq(rt_apply1(&op2), 200, "1 match: updated");
    cr_assert_str_eq(op2.res.id, id);
    cr_assert_eq(op2.res.version, 2);
    hub_record_op_release(&op2);
    json_decref(res);

    /* one match but a different id in the body */
    res = rt_json("{\"resourceType\":\"Patient\",\"id\":\"other\"}");
    hub_record_op op3 = {.kind = HUB_OP_UPDATE, .type = "Patient", .resource = res,
                         .criteria = "identifier=urn:s|U1"};
    cr_assert_eq(rt_apply1(&op3), 400);
    hub_record_op_release(&op3);
    json_decref(res);

    /* no match, id in the body: created with that id */
    res = rt_json("{\"resourceType\":\"Patient\",\"id\":\"given\"}");
    hub_record_op op4 = {.kind = HUB_OP_UPDATE, .type = "Patient", .resource = res,
                         .criteria = "identifier=urn:s|NONE"};
    cr_assert_eq(rt_apply1(&op4), 201);
    cr_assert_str_eq(op4.res.id, "given");
    hub_record_op_release(&op4);
    json_decref(res);
    /* no match, id in the body already taken: 409 */
    res = rt_json("{\"resourceType\":\"Patient\",\"id\":\"given\"}");
    hub_record_op op5 = {.kind = HUB_OP_UPDATE, .type = "Patient", .resource = res,
                         .criteria = "identifier=urn:s|NONE"};
    cr_assert_eq(rt_apply1(&op5), 409);
    hub_record_op_release(&op5);
    json_decref(res);

    cr_assert_eq(rt_create("Patient", PAT_ID("urn:s", "U1"), NULL), 201);
    res = rt_json(PAT_ID("urn:s", "U1"));
    hub_record_op op6 = {.kind = HUB_OP_UPDATE, .type = "Patient", .resource = res,
                         .criteria = "identifier=urn:s|U1"};
    cr_assert_eq(rt_apply1(&op6), 412, "2 matches");
    hub_record_op_release(&op6);
    json_decref(res);
}

Test(record, conditional_delete, .init = rt_up, .fini = rt_down) {
    hub_record_op op = {.kind = HUB_OP_DELETE, .type = "Patient", .criteria = "identifier=urn:s|D"};
    cr_assert_eq(rt_apply1(&op), 204, "0 matches");
    hub_record_op_release(&op);
    char id[72];
    cr_assert_eq(rt_create("Patient", PAT_ID("urn:s", "D"), id), 201);
    hub_record_op op2 = {.kind = HUB_OP_DELETE, .type = "Patient", .criteria = "identifier=urn:s|D"};
    cr_assert_eq(rt_apply1(&op2), 204);
    cr_assert_str_eq(op2.res.id, id);
    cr_assert(op2.res.deleted);
    hub_record_op_release(&op2);
    /* deleted resources no longer match */
    hub_record_op op3 = {.kind = HUB_OP_DELETE, .type = "Patient", .criteria = "identifier=urn:s|D"};
    cr_assert_eq(rt_apply1(&op3), 204);
    cr_assert_eq(op3.res.version, 0);
    hub_record_op_release(&op3);
    cr_assert_eq(rt_create("Patient", PAT_ID("urn:s", "D"), NULL), 201);
    cr_assert_eq(rt_create("Patient", PAT_ID("urn:s", "D"), NULL), 201);
    hub_record_op op4 = {.kind = HUB_OP_DELETE, .type = "Patient", .criteria = "identifier=D"};
    cr_assert_eq(rt_apply1(&op4), 412, "2 matches");
    hub_record_op_release(&op4);
}

Test(record, patch, .init = rt_up, .fini = rt_down) {
    char id[72], txt[1024];
    cr_assert_eq(rt_create("Patient", PAT_ID("urn:s", "P"), id), 201);
    json_t *p = rt_json("[{\"op\":\"add\",\"path\":\"/active\",\"value\":false},"
                        "{\"op\":\"add\",\"path\":\"/gender\",\"value\":\"female\"}]");
    hub_record_op op = {.kind = HUB_OP_PATCH, .type = "Patient", .id = id, .patch = p,
                        .if_match = "W/\"1\""};
    { int st_ = rt_apply1(&op); char t_[1024]; rt_outcome_text(&op, t_, sizeof t_); cr_assert_eq(st_, 200, "%d %s", st_, t_); }
    cr_assert_eq(op.res.version, 2);
    json_t *j = rt_json(op.res.json);
    cr_assert(json_is_false(json_object_get(j, "active")));
    cr_assert_str_eq(json_string_value(json_object_get(j, "gender")), "female");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "meta"), "versionId")), "2");
    json_decref(j);
    hub_record_op_release(&op);
    /* stale If-Match */
    hub_record_op op2 = {.kind = HUB_OP_PATCH, .type = "Patient", .id = id, .patch = p,
                         .if_match = "W/\"1\""};
    cr_assert_eq(rt_apply1(&op2), 412);
    hub_record_op_release(&op2);
    json_decref(p);

    struct {
        const char *patch;
        int status;
        const char *diag;
    } cases[] = {
        {"[{\"op\":\"test\",\"path\":\"/gender\",\"value\":\"male\"}]", 422, "test failed"},
        {"[{\"op\":\"remove\",\"path\":\"/nothing\"}]", 422, "does not exist"},
        {"[{\"op\":\"jump\",\"path\":\"/x\"}]", 400, "unknown 'op'"},
        {"{\"op\":\"add\"}", 400, "array of operations"},
        {"[{\"op\":\"replace\",\"path\":\"/id\",\"value\":\"other\"}]", 422, "resourceType or id"},
        {"[{\"op\":\"replace\",\"path\":\"/resourceType\",\"value\":\"Group\"}]", 422, "resourceType or id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        p = rt_json(cases[i].patch);
        hub_record_op o = {.kind = HUB_OP_PATCH, .type = "Patient", .id = id, .patch = p};
        cr_assert_eq(rt_apply1(&o), cases[i].status, "case %zu", i);
        rt_outcome_text(&o, txt, sizeof txt);
        cr_assert(strstr(txt, cases[i].diag), "case %zu: %s", i, txt);
        hub_record_op_release(&o);
        json_decref(p);
    }
    hub_resource rd;
    hub_err err;
    cr_assert_eq(hub_record_read(rt_rec, "Patient", id, 0, &rd, &err), HUB_OK);
    cr_assert_eq(rd.version, 2, "failed patches wrote nothing");
    hub_resource_release(&rd);

    /* missing, deleted, conditional */
    p = rt_json("[{\"op\":\"add\",\"path\":\"/active\",\"value\":true}]");
    hub_record_op m = {.kind = HUB_OP_PATCH, .type = "Patient", .id = "nope", .patch = p};
    cr_assert_eq(rt_apply1(&m), 404);
    hub_record_op_release(&m);
    hub_record_op c = {.kind = HUB_OP_PATCH, .type = "Patient", .criteria = "identifier=urn:s|P",
                       .patch = p};
    cr_assert_eq(rt_apply1(&c), 200);
    cr_assert_str_eq(c.res.id, id);
    cr_assert_eq(c.res.version, 3);
    hub_record_op_release(&c);
    hub_record_op c0 = {.kind = HUB_OP_PATCH, .type = "Patient", .criteria = "identifier=urn:s|Q",
                        .patch = p};
    cr_assert_eq(rt_apply1(&c0), 404);
    hub_record_op_release(&c0);
    hub_record_op d = {.kind = HUB_OP_DELETE, .type = "Patient", .id = id};
    cr_assert_eq(rt_apply1(&d), 204);
    hub_record_op_release(&d);
    hub_record_op g = {.kind = HUB_OP_PATCH, .type = "Patient", .id = id, .patch = p};
    cr_assert_eq(rt_apply1(&g), 410);
    hub_record_op_release(&g);
    json_decref(p);
}

/* ---- history ---------------------------------------------------------------------- */

typedef struct {
    int n;
    char ids[64][72];
    int64_t versions[64];
    bool deleted[64];
} hist_out;

static hub_status hist_cb(void *ud, const hub_resource *r) {
    hist_out *h = ud;
    if (h->n < 64) {
        snprintf(h->ids[h->n], 72, "%s", r->id);
        h->versions[h->n] = r->version;
        h->deleted[h->n] = r->deleted;
        cr_assert_eq(r->deleted, r->json == NULL);
    }
    h->n++;
    return HUB_OK;
}

Test(record, history, .init = rt_up, .fini = rt_down) {
    char a[72], b[72], body[256];
    cr_assert_eq(rt_create("Patient", PAT, a), 201);
    cr_assert_eq(rt_create("Observation", "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"}}", b), 201);
    snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"id\":\"%s\"}", a);
    cr_assert_eq(rt_update("Patient", a, body, NULL, NULL), 200);
    hub_record_op del = {.kind = HUB_OP_DELETE, .type = "Patient", .id = a};
    cr_assert_eq(rt_apply1(&del), 204);
    hub_record_op_release(&del);

    hub_err err;
    int64_t next, total;
    hist_out h = {0};
    hub_history_query q = {.type = "Patient", .id = a, .count = 10};
    cr_assert_eq(hub_record_history(rt_rec, &q, hist_cb, &h, &next, &total, &err), HUB_OK);
    cr_assert_eq(h.n, 3);
    cr_assert_eq(total, 3);
    cr_assert_eq(next, 0);
    cr_assert_eq(h.versions[0], 3, "newest first");
    cr_assert(h.deleted[0]);
    cr_assert_eq(h.versions[2], 1);

    memset(&h, 0, sizeof h);
    hub_history_query qt = {.type = "Observation", .count = 10};
    cr_assert_eq(hub_record_history(rt_rec, &qt, hist_cb, &h, &next, &total, &err), HUB_OK);
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h.ids[0], b);

    memset(&h, 0, sizeof h);
    hub_history_query qs = {.count = 10};
    cr_assert_eq(hub_record_history(rt_rec, &qs, hist_cb, &h, &next, &total, &err), HUB_OK);
    cr_assert_eq(h.n, 4);
    cr_assert_eq(total, 4);

    /* _since in the future: nothing */
    memset(&h, 0, sizeof h);
    hub_history_query qf = {.since_ms = hub_now_ms() + 60000, .count = 10};
    cr_assert_eq(hub_record_history(rt_rec, &qf, hist_cb, &h, &next, &total, &err), HUB_OK);
    cr_assert_eq(h.n, 0);
    cr_assert_eq(total, 0);

    /* bad arguments */
    cr_assert_eq(hub_record_history(rt_rec, &(hub_history_query){.count = 0}, hist_cb, &h,
                                    &next, &total, &err), HUB_E_ARG);
    cr_assert_eq(hub_record_history(rt_rec, &(hub_history_query){.type = "Patient", .id = "a/b", .count = 5},
                                    hist_cb, &h, &next, &total, &err), HUB_E_NOTFOUND);
}

Test(record, history_paging_is_stable_under_inserts, .init = rt_up, .fini = rt_down) {
    for (int i = 0; i < 25; i++) cr_assert_eq(rt_create("Patient", PAT, NULL), 201);
    hub_err err;
    int64_t cursor = 0, total;
    char seen[64][72];
    int nseen = 0, pages = 0;
    do {
        hist_out h = {0};
        hub_history_query q = {.type = "Patient", .count = 10, .cursor = cursor};
        cr_assert_eq(hub_record_history(rt_rec, &q, hist_cb, &h, &cursor, &total, &err), HUB_OK);
        if (pages == 0) {
            cr_assert_eq(total, 25);
            /* new versions arrive between pages: they are newer than the
             * cursor, so the next pages neither repeat nor skip */
            for (int i = 0; i < 5; i++) cr_assert_eq(rt_create("Patient", PAT, NULL), 201);
        }
        for (int i = 0; i < h.n; i++) {
            for (int k = 0; k < nseen; k++) cr_assert_str_neq(seen[k], h.ids[i], "repeat");
            snprintf(seen[nseen++], 72, "%s", h.ids[i]);
        }
        pages++;
    } while (cursor != 0 && pages < 10);
    cr_assert_eq(nseen, 25);
    cr_assert_eq(pages, 3);
}

/* ---- concurrency -------------------------------------------------------------------- */

typedef struct {
    const char *id;
    int wins, losses;
} racer;

static void *race(void *arg) {
    racer *r = arg;
    for (int i = 0; i < 40; i++) {
        hub_resource cur;
        hub_err err;
        if (hub_record_read(rt_rec, "Patient", r->id, 0, &cur, &err) != HUB_OK) abort();
        json_t *j = json_loadb(cur.json, cur.json_len, 0, NULL);
        json_int_t n = json_integer_value(json_object_get(j, "multipleBirthInteger"));
        json_object_set_new(j, "multipleBirthInteger", json_integer(n + 1));
        char etag[32];
        snprintf(etag, sizeof etag, "W/\"%lld\"", (long long)cur.version);
        hub_resource_release(&cur);
        hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .id = r->id,
                            .resource = j, .if_match = etag};
        if (hub_record_apply(rt_rec, &op, 1, false, &err) != HUB_OK) abort();
        if (op.status == 200) r->wins++;
        else if (op.status == 412) r->losses++;
        else abort();
        hub_record_op_release(&op);
        json_decref(j);
    }
    return NULL;
}

Test(record, concurrent_if_match_loses_no_update, .init = rt_up, .fini = rt_down) {
    cr_assert_eq(rt_update("Patient", "race", "{\"resourceType\":\"Patient\",\"id\":\"race\","
                           "\"multipleBirthInteger\":0}", NULL, NULL), 201);
    enum { T = 6 };
    pthread_t th[T];
    racer rs[T];
    for (int i = 0; i < T; i++) {
        rs[i] = (racer){"race", 0, 0};
        pthread_create(&th[i], NULL, race, &rs[i]);
    }
    int wins = 0, losses = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        wins += rs[i].wins;
        losses += rs[i].losses;
    }
    cr_assert_eq(wins + losses, T * 40);
    cr_assert_gt(wins, 0);
    hub_resource cur;
    hub_err err;
    cr_assert_eq(hub_record_read(rt_rec, "Patient", "race", 0, &cur, &err), HUB_OK);
    json_t *j = json_loadb(cur.json, cur.json_len, 0, NULL);
    /* every win incremented exactly the value it read: no lost update */
    cr_assert_eq(json_integer_value(json_object_get(j, "multipleBirthInteger")), wins);
    cr_assert_eq(cur.version, wins + 1);
    json_decref(j);
    hub_resource_release(&cur);
}

/* ---- transactions through apply ------------------------------------------------------ */

Test(record, transaction_failing_in_last_entry_writes_nothing, .init = rt_up, .fini = rt_down) {
    json_t *r1 = rt_json(PAT_ID("urn:t", "1"));
    json_t *r2 = rt_json("{\"resourceType\":\"Patient\",\"id\":\"t2\"}");
    hub_record_op ops[3] = {
        {.kind = HUB_OP_CREATE, .type = "Patient", .resource = r1},
        {.kind = HUB_OP_UPDATE, .type = "Patient", .id = "t2", .resource = r2},
        {.kind = HUB_OP_DELETE, .type = "Patient", .id = "t2", .if_match = "W/\"9\""},
    };
    hub_err err;
    /* DELETE is processed first (spec order), so make the failure the
     * last processed: a read of a missing resource. */
    ops[2] = (hub_record_op){.kind = HUB_OP_READ, .type = "Patient", .id = "missing"};
    cr_assert_eq(hub_record_apply(rt_rec, ops, 3, true, &err), HUB_E_NOTFOUND);
    cr_assert_eq(ops[2].status, 404);
    hub_resource rd;
    cr_assert_eq(hub_record_read(rt_rec, "Patient", "t2", 0, &rd, &err), HUB_E_NOTFOUND);
    int64_t next, total;
    hist_out h = {0};
    hub_history_query q = {.count = 10};
    cr_assert_eq(hub_record_history(rt_rec, &q, hist_cb, &h, &next, &total, &err), HUB_OK);
    cr_assert_eq(total, 0, "nothing written");
    for (int i = 0; i < 3; i++) hub_record_op_release(&ops[i]);
    json_decref(r1);
    json_decref(r2);
}

Test(record, transaction_resolves_full_urls_and_conditional_refs, .init = rt_up, .fini = rt_down) {
    char org[72];
    cr_assert_eq(rt_create("Organization", "{\"resourceType\":\"Organization\",\"identifier\":"
                           "[{\"system\":\"urn:o\",\"value\":\"1\"}]}", org), 201);
    json_t *pat = rt_json("{\"resourceType\":\"Patient\",\"managingOrganization\":"
                          "{\"reference\":\"Organization?identifier=urn:o|1\"}}");
    json_t *obs = rt_json("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},\"subject\":{\"reference\":"
                          "\"urn:uuid:aaaa\"},\"extension\":[{\"url\":\"http://x\","
                          "\"valueReference\":{\"reference\":\"urn:uuid:aaaa\"}}]}");
    hub_record_op ops[2] = {
        {.kind = HUB_OP_CREATE, .type = "Observation", .resource = obs, .full_url = "urn:uuid:bbbb"},
        {.kind = HUB_OP_CREATE, .type = "Patient", .resource = pat, .full_url = "urn:uuid:aaaa"},
    };
    hub_err err;
    cr_assert_eq(hub_record_apply(rt_rec, ops, 2, true, &err), HUB_OK, "%s", err.msg);
    cr_assert_eq(ops[0].status, 201);
    cr_assert_eq(ops[1].status, 201);
    char want[128];
    snprintf(want, sizeof want, "Patient/%s", ops[1].res.id);
    json_t *o = rt_json(ops[0].res.json);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "subject"), "reference")), want);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(
                         json_object_get(o, "extension"), 0), "valueReference"), "reference")), want);
    json_t *p = rt_json(ops[1].res.json);
    snprintf(want, sizeof want, "Organization/%s", org);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(p, "managingOrganization"),
                                                       "reference")), want);
    json_decref(o);
    json_decref(p);
    for (int i = 0; i < 2; i++) hub_record_op_release(&ops[i]);
    json_decref(pat);
    json_decref(obs);

    /* a conditional reference that matches nothing fails the transaction */
    json_t *bad = rt_json("{\"resourceType\":\"Patient\",\"managingOrganization\":"
                          "{\"reference\":\"Organization?identifier=urn:o|2\"}}");
    hub_record_op op = {.kind = HUB_OP_CREATE, .type = "Patient", .resource = bad};
    cr_assert_eq(hub_record_apply(rt_rec, &op, 1, true, &err), HUB_E_INVALID);
    cr_assert_eq(op.status, 400);
    hub_record_op_release(&op);
    json_decref(bad);
}

Test(record, transaction_same_resource_twice_is_400, .init = rt_up, .fini = rt_down) {
    json_t *r1 = rt_json("{\"resourceType\":\"Patient\",\"id\":\"same\"}");
    json_t *r2 = rt_json("{\"resourceType\":\"Patient\",\"id\":\"same\"}");
    hub_record_op ops[2] = {
        {.kind = HUB_OP_UPDATE, .type = "Patient", .id = "same", .resource = r1},
        {.kind = HUB_OP_UPDATE, .type = "Patient", .id = "same", .resource = r2},
    };
    hub_err err;
    cr_assert_eq(hub_record_apply(rt_rec, ops, 2, true, &err), HUB_E_INVALID);
    cr_assert_eq(ops[1].status, 400);
    for (int i = 0; i < 2; i++) hub_record_op_release(&ops[i]);
    json_decref(r1);
    json_decref(r2);
}

Test(record, batch_ops_are_independent, .init = rt_up, .fini = rt_down) {
    json_t *r1 = rt_json(PAT);
    json_t *r2 = rt_json("{\"resourceType\":\"Patient\",\"id\":\"x\"}");
    hub_record_op ops[3] = {
        {.kind = HUB_OP_CREATE, .type = "Patient", .resource = r1},
        {.kind = HUB_OP_UPDATE, .type = "Patient", .id = "y", .resource = r2},
        {.kind = HUB_OP_READ, .type = "Patient", .id = "nope"},
    };
    hub_err err;
    cr_assert_eq(hub_record_apply(rt_rec, ops, 3, false, &err), HUB_OK);
    cr_assert_eq(ops[0].status, 201);
    cr_assert_eq(ops[1].status, 400);
    cr_assert_eq(ops[2].status, 404);
    hub_resource rd;
    cr_assert_eq(hub_record_read(rt_rec, "Patient", ops[0].res.id, 0, &rd, &err), HUB_OK);
    hub_resource_release(&rd);
    for (int i = 0; i < 3; i++) hub_record_op_release(&ops[i]);
    json_decref(r1);
    json_decref(r2);
}

Test(record, identifiers_follow_updates_and_deletes, .init = rt_up, .fini = rt_down) {
    int64_t v;
    cr_assert_eq(rt_update("Patient", "idx", PAT_ID("urn:s", "OLD") , NULL, &v), 400, "needs id");
    cr_assert_eq(rt_update("Patient", "idx", "{\"resourceType\":\"Patient\",\"id\":\"idx\","
                           "\"identifier\":[{\"system\":\"urn:s\",\"value\":\"OLD\"}]}", NULL, &v), 201);
    cr_assert_eq(rt_update("Patient", "idx", "{\"resourceType\":\"Patient\",\"id\":\"idx\","
                           "\"identifier\":[{\"system\":\"urn:s\",\"value\":\"NEW\"}]}", NULL, &v), 200);
    json_t *res = rt_json(PAT);
    hub_record_op op = {.kind = HUB_OP_CREATE, .type = "Patient", .resource = res,
                        .if_none_exist = "identifier=urn:s|OLD"};
    cr_assert_eq(rt_apply1(&op), 201, "the old identifier no longer matches");
    hub_record_op_release(&op);
    hub_record_op op2 = {.kind = HUB_OP_CREATE, .type = "Patient", .resource = res,
                         .if_none_exist = "identifier=urn:s|NEW"};
    cr_assert_eq(rt_apply1(&op2), 200);
    cr_assert_str_eq(op2.res.id, "idx");
    hub_record_op_release(&op2);
    json_decref(res);
}

/* ---- schema migration -------------------------------------------------------------------- */

Test(record, version_1_journal_migrates) {
    char dir[256], path[300];
    hub_test_tmpdir(dir);
    snprintf(path, sizeof path, "%s/hub.db", dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    /* the version-1 schema as it shipped, with one journaled message */
    cr_assert_eq(sqlite3_exec(db,
        "PRAGMA journal_mode=WAL;"
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
        "CREATE TABLE messages(id INTEGER PRIMARY KEY, received_ms INTEGER NOT NULL,"
        " channel TEXT NOT NULL, peer TEXT NOT NULL DEFAULT '', identity TEXT NOT NULL DEFAULT '',"
        " sender TEXT NOT NULL DEFAULT '', control_id TEXT NOT NULL DEFAULT '',"
        " msg_type TEXT NOT NULL DEFAULT '', version TEXT NOT NULL DEFAULT '',"
        " status INTEGER NOT NULL, ack_code TEXT NOT NULL DEFAULT '', ack BLOB, errors TEXT,"
        " body BLOB NOT NULL);"
        "CREATE UNIQUE INDEX messages_dedup ON messages(sender, control_id) WHERE status IN (0, 3)"
        " AND control_id <> '';"
        "INSERT INTO meta VALUES('schema','1');"
        "INSERT INTO messages(received_ms, channel, sender, control_id, status, body)"
        " VALUES(1, 'default', 'A^B', 'C1', 0, 'MSH|^~\\&|');"
        "PRAGMA user_version=1;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    hub_err err;
    hub_store_cfg sc = {.dir = dir};
    cr_assert_eq(hub_store_open(&sc, &rt_store, &err), HUB_OK, "%s", err.msg);
    int64_t counts[4];
    cr_assert_eq(hub_journal_counts(rt_store, counts, &err), HUB_OK);
    cr_assert_eq(counts[0], 1, "the journal survived");
    hub_record_cfg rc = {.store = rt_store};
    cr_assert_eq(hub_record_open(&rc, &rt_rec, &err), HUB_OK);
    char id[72];
    cr_assert_eq(rt_create("Patient", PAT, id), 201);
    hub_record_close(rt_rec);
    hub_store_close(rt_store);

    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), 5); /* the current schema (5: integer keys in the index) */
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* reopening a version-3 file keeps the data */
    cr_assert_eq(hub_store_open(&sc, &rt_store, &err), HUB_OK);
    rc.store = rt_store;
    cr_assert_eq(hub_record_open(&rc, &rt_rec, &err), HUB_OK);
    hub_resource rd;
    cr_assert_eq(hub_record_read(rt_rec, "Patient", id, 0, &rd, &err), HUB_OK);
    hub_resource_release(&rd);
    hub_record_close(rt_rec);
    hub_store_close(rt_store);
    hub_test_rmtree(dir);
}

Test(record, a_single_write_keeps_urn_references, .init = rt_up, .fini = rt_down) {
    /* Outside a transaction Bundle a urn reference names nothing of ours:
     * it is stored as sent. */
    json_t *res = rt_json("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"t\"},"
                          "\"subject\":{\"reference\":\"urn:uuid:0a0b0c0d-0000-4000-8000-000000000001\"}}");
    hub_record_op op = {.kind = HUB_OP_CREATE, .type = "Observation", .resource = res};
    hub_err err;
    cr_assert_eq(hub_record_apply(rt_rec, &op, 1, true, &err), HUB_OK);
    cr_assert_eq(op.status, 201);
    cr_assert(strstr(op.res.json, "urn:uuid:0a0b0c0d-0000-4000-8000-000000000001"));
    hub_record_op_release(&op);
    json_decref(res);
}

Test(record, server_ids_are_random_and_time_ordered, .init = rt_up_bare, .fini = rt_down) {
    char a[72], b[72], c[72];
    cr_assert_eq(rt_create("Patient", PAT, a), 201);
    struct timespec ts = {0, 3000000};
    nanosleep(&ts, NULL);
    cr_assert_eq(rt_create("Patient", PAT, b), 201);
    cr_assert_eq(rt_create("Patient", PAT, c), 201);
    cr_assert_lt(strcmp(a, b), 0, "later ids sort after earlier ones: %s %s", a, b);
    cr_assert_str_neq(b, c);
    for (const char *p = a; *p; p++) cr_assert(strchr("0123456789abcdef-", *p));
    cr_assert_eq(strlen(a), 36);
    cr_assert_eq(a[14], '7', "UUID version 7 layout");
    cr_assert(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b', "RFC 4122 variant");
    cr_assert_neq(memcmp(b + 24, c + 24, 12), 0, "random tail");
}

Test(record, id_length_bounds, .init = rt_up_bare, .fini = rt_down) {
    char id64[65], id65[66], body[256];
    memset(id64, 'a', 64);
    id64[64] = '\0';
    memset(id65, 'b', 65);
    id65[65] = '\0';
    snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"id\":\"%s\"}", id64);
    cr_assert_eq(rt_update("Patient", id64, body, NULL, NULL), 201, "64 characters");
    snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"id\":\"%s\"}", id65);
    cr_assert_eq(rt_update("Patient", id65, body, NULL, NULL), 400, "65 characters");
    cr_assert_eq(rt_update("Patient", "a b", "{\"resourceType\":\"Patient\",\"id\":\"a b\"}", NULL, NULL), 400);
    cr_assert_eq(rt_update("Patient", "a_b", "{\"resourceType\":\"Patient\",\"id\":\"a_b\"}", NULL, NULL), 400);
    cr_assert_eq(rt_update("Patient", "A-z.9", "{\"resourceType\":\"Patient\",\"id\":\"A-z.9\"}", NULL, NULL), 201);
}

/* One merge update of the Patient with identifier urn:m|M1: the status and
 * the version it leaves. */
static int merge1(const char *body, const char *clear, int64_t *version) {
    json_t *res = rt_json(body);
    json_t *cl = clear ? json_pack("[s]", clear) : NULL;
    hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .resource = res,
                        .criteria = "identifier=urn:m|M1", .merge = true, .clear = cl};
    int st = rt_apply1(&op);
    *version = op.res.version;
    hub_record_op_release(&op);
    json_decref(res);
    json_decref(cl);
    return st;
}

#define MPAT(rest) "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:m\"," \
                   "\"value\":\"M1\"}]" rest "}"

Test(record, merge_writes_a_version_only_for_a_change, .init = rt_up, .fini = rt_down) {
    int64_t v;
    cr_assert_eq(merge1(MPAT(",\"gender\":\"female\",\"deceasedBoolean\":false,"
                             "\"birthDate\":\"1980-01-01\",\"_birthDate\":{\"extension\":[{\"url\":\"urn:x\","
                             "\"valueString\":\"y\"}]}"), NULL, &v), 201);
    cr_assert_eq(v, 1);
    /* Fewer elements, all as stored: nothing to write. */
    cr_assert_eq(merge1(MPAT(",\"gender\":\"female\""), NULL, &v), 200);
    cr_assert_eq(v, 1, "a resend changes nothing");
    /* Another choice of deceased[x] replaces the stored one. */
    cr_assert_eq(merge1(MPAT(",\"deceasedDateTime\":\"2020-01-01\""), NULL, &v), 200);
    cr_assert_eq(v, 2);
    /* The same birthDate, but without its extensions (_birthDate): the
     * value and its extensions go together, so that is a change. */
    cr_assert_eq(merge1(MPAT(",\"birthDate\":\"1980-01-01\""), NULL, &v), 200);
    cr_assert_eq(v, 3);
    cr_assert_eq(merge1(MPAT(",\"birthDate\":\"1980-01-01\""), NULL, &v), 200);
    cr_assert_eq(v, 3);
    /* Clearing what is not there changes nothing; clearing what is does. */
    cr_assert_eq(merge1(MPAT(""), "active", &v), 200);
    cr_assert_eq(v, 3);
    cr_assert_eq(merge1(MPAT(""), "gender", &v), 200);
    cr_assert_eq(v, 4);
    hub_resource rd;
    hub_err err;
    json_t *ids = NULL;
    char id[72];
    {
        hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient",
                            .resource = ids = rt_json(MPAT("")),
                            .criteria = "identifier=urn:m|M1", .merge = true};
        cr_assert_eq(rt_apply1(&op), 200);
        snprintf(id, sizeof id, "%s", op.res.id);
        hub_record_op_release(&op);
        json_decref(ids);
    }
    cr_assert_eq(hub_record_read(rt_rec, "Patient", id, 0, &rd, &err), HUB_OK);
    json_t *p = rt_json(rd.json);
    cr_assert_null(json_object_get(p, "gender"));
    cr_assert_null(json_object_get(p, "deceasedBoolean"));
    cr_assert_null(json_object_get(p, "_birthDate"));
    cr_assert_str_eq(json_string_value(json_object_get(p, "deceasedDateTime")), "2020-01-01");
    cr_assert_str_eq(json_string_value(json_object_get(p, "birthDate")), "1980-01-01");
    json_decref(p);
    hub_resource_release(&rd);
}

/* A merge keeps the parse of the stored resource it found unchanged
 * (stored.c); a version written since, by any path, must not be mistaken
 * for it. */
Test(record, merge_sees_a_version_written_since, .init = rt_up, .fini = rt_down) {
    int64_t v;
    cr_assert_eq(merge1(MPAT(",\"gender\":\"female\""), NULL, &v), 201);
    cr_assert_eq(merge1(MPAT(",\"gender\":\"female\""), NULL, &v), 200);
    cr_assert_eq(v, 1, "unchanged: its parse is kept");
    /* A plain update (no merge) changes the gender. */
    json_t *res = rt_json(MPAT(",\"gender\":\"male\""));
    hub_record_op op = {.kind = HUB_OP_UPDATE, .type = "Patient", .resource = res,
                        .criteria = "identifier=urn:m|M1"};
    cr_assert_eq(rt_apply1(&op), 200);
    cr_assert_eq(op.res.version, 2);
    hub_record_op_release(&op);
    json_decref(res);
    /* The first content again is a change from what is stored now. */
    cr_assert_eq(merge1(MPAT(",\"gender\":\"female\""), NULL, &v), 200);
    cr_assert_eq(v, 3);
    cr_assert_eq(merge1(MPAT(",\"gender\":\"female\""), NULL, &v), 200);
    cr_assert_eq(v, 3);
}
