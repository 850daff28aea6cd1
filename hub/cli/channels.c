/* Channels of `hub serve`: the "channels" section of the configuration
 * file, or one default channel from the flat settings. */
#include "internal.h"
#include "channels.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char *str_or(json_t *o, const char *k, const char *def) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : def;
}

static const char *const CHANNEL_KEYS[] = {
    "name", "host", "port", "tls_cert", "tls_key", "tls_client_ca", "identity",
    "profile", "validate", "policy", "allow", "max_frame", "idle_timeout",
    "max_connections", "ack_mode", "map", "local_codes", NULL};

static hub_status load_one(hub_serve_channels *cs, size_t i, json_t *o,
                           const hub_cfg *cfg, hub_v2_profset *profiles,
                           hub_err *err) {
    char where[48];
    snprintf(where, sizeof where, "channels[%zu]", i);
    if (!json_is_object(o))
        return hub_err_set(err, HUB_E_CONFIG, where, "a channel is an object");
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        bool known = false;
        for (int j = 0; CHANNEL_KEYS[j]; j++)
            if (strcmp(CHANNEL_KEYS[j], k) == 0) known = true;
        if (!known)
            return hub_err_set(err, HUB_E_CONFIG, where, "unknown key '%s'", k);
    }
    hub_mllp_channel_cfg *m = &cs->mllp[i];
    hub_ingest_channel *g = &cs->ingest[i];
    const char *name = str_or(o, "name", NULL);
    if (name == NULL || !*name)
        return hub_err_set(err, HUB_E_CONFIG, where, "'name' is required");
    for (size_t j = 0; j < i; j++)
        if (strcmp(cs->mllp[j].name, name) == 0)
            return hub_err_set(err, HUB_E_CONFIG, where, "channel '%s' twice", name);
    json_t *port = json_object_get(o, "port");
    if (!json_is_integer(port) || json_integer_value(port) < 0 ||
        json_integer_value(port) > 65535)
        return hub_err_set(err, HUB_E_CONFIG, where,
                           "'port' must be a number from 0 to 65535");
    m->name = name;
    m->host = str_or(o, "host", cfg->mllp_host);
    m->port = (int)json_integer_value(port);
    m->tls_cert = str_or(o, "tls_cert", cfg->tls_cert[0] ? cfg->tls_cert : NULL);
    m->tls_key = str_or(o, "tls_key", cfg->tls_key[0] ? cfg->tls_key : NULL);
    m->tls_client_ca =
        str_or(o, "tls_client_ca", cfg->tls_client_ca[0] ? cfg->tls_client_ca : NULL);
    if ((m->tls_cert && !m->tls_key) || (!m->tls_cert && m->tls_key))
        return hub_err_set(err, HUB_E_CONFIG, where,
                           "TLS needs both 'tls_cert' and 'tls_key'");
    json_t *mf = json_object_get(o, "max_frame");
    m->max_frame = (size_t)cfg->mllp_max_frame;
    if (mf) {
        int64_t sz = 0;
        if (json_is_integer(mf)) sz = json_integer_value(mf);
        else if (!json_is_string(mf) || hub_parse_size(json_string_value(mf), &sz))
            sz = -1;
        if (sz < 1024)
            return hub_err_set(err, HUB_E_CONFIG, where,
                               "'max_frame' wants a size of at least 1024 bytes");
        m->max_frame = (size_t)sz;
    }
    json_t *it = json_object_get(o, "idle_timeout");
    m->idle_timeout_ms = cfg->mllp_idle_timeout * 1000;
    if (it) {
        if (!json_is_integer(it) || json_integer_value(it) < 1)
            return hub_err_set(err, HUB_E_CONFIG, where,
                               "'idle_timeout' wants seconds (at least 1)");
        m->idle_timeout_ms = (int)json_integer_value(it) * 1000;
    }
    json_t *mc = json_object_get(o, "max_connections");
    m->max_connections = cfg->mllp_max_connections;
    if (mc) {
        if (!json_is_integer(mc) || json_integer_value(mc) < 1)
            return hub_err_set(err, HUB_E_CONFIG, where,
                               "'max_connections' wants a number of at least 1");
        m->max_connections = (int)json_integer_value(mc);
    }
    json_t *allow = json_object_get(o, "allow");
    if (allow) {
        if (!json_is_array(allow))
            return hub_err_set(err, HUB_E_CONFIG, where,
                               "'allow' is a list of addresses or CIDRs");
        size_t na = json_array_size(allow);
        const char **list = hub_calloc(na ? na : 1, sizeof *list);
        if (list == NULL) return HUB_E_NOMEM;
        cs->allow[i] = list;
        for (size_t j = 0; j < na; j++) {
            json_t *e = json_array_get(allow, j);
            if (!json_is_string(e))
                return hub_err_set(err, HUB_E_CONFIG, where,
                                   "'allow' entries are strings");
            list[j] = json_string_value(e);
        }
        m->allow = list;
        m->n_allow = na;
    }
    g->name = name;
    g->identity = str_or(o, "identity", NULL);
    json_t *val = json_object_get(o, "validate");
    g->validate = val ? json_is_true(val) : true;
    json_t *mp = json_object_get(o, "map");
    if (mp && !json_is_boolean(mp))
        return hub_err_set(err, HUB_E_CONFIG, where, "'map' is true or false");
    g->map = mp ? json_is_true(mp) : true;
    json_t *lc = json_object_get(o, "local_codes");
    if (lc) {
        if (!json_is_array(lc))
            return hub_err_set(err, HUB_E_CONFIG, where,
                               "'local_codes' is a list of local-code table names");
        size_t nl = json_array_size(lc);
        const char **list = hub_calloc(nl ? nl : 1, sizeof *list);
        if (list == NULL) return hub_err_set(err, HUB_E_NOMEM, where, "out of memory");
        cs->locals[i] = list;
        for (size_t q = 0; q < nl; q++) {
            list[q] = json_string_value(json_array_get(lc, q));
            if (list[q] == NULL)
                return hub_err_set(err, HUB_E_CONFIG, where, "'local_codes' entries are strings");
        }
        g->local_codes = list;
        g->nlocal = nl;
    }
    const char *am = str_or(o, "ack_mode", "auto");
    if (strcmp(am, "auto") == 0) {
        g->force_original = false;
    } else if (strcmp(am, "original") == 0) {
        g->force_original = true;
    } else {
        return hub_err_set(err, HUB_E_CONFIG, where,
                           "'ack_mode' is 'auto' (MSH-15/16 decide) or 'original'");
    }
    const char *prof = str_or(o, "profile", NULL);
    if (prof) {
        hub_v2_site *site = NULL;
        hub_status rc = hub_v2_site_load(profiles, prof, &site, err);
        if (rc) return rc;
        cs->sites[i] = site;
        g->site = site;
        hub_v2_site_policy(site, &g->policy);
    }
    json_t *pol = json_object_get(o, "policy");
    if (pol) {
        if (!json_is_object(pol))
            return hub_err_set(err, HUB_E_CONFIG, where,
                               "'policy' maps rule names to error, warning, "
                               "info or off");
        const char *rk;
        json_t *rv;
        json_object_foreach(pol, rk, rv) {
            if (!json_is_string(rv) ||
                hub_v2_policy_set(&g->policy, rk, json_string_value(rv), err))
                return hub_err_set(err, HUB_E_CONFIG, where,
                                   "policy '%s': unknown rule or severity", rk);
        }
    }
    return HUB_OK;
}

hub_status hub__channels_load(hub_serve_channels *cs, const hub_cfg *cfg,
                              hub_v2_profset *profiles, hub_err *err) {
    memset(cs, 0, sizeof *cs);
    json_t *arr = cfg->file_json ? json_object_get(cfg->file_json, "channels") : NULL;
    size_t n = arr ? json_array_size(arr) : 0;
    if (arr && (!json_is_array(arr) || n == 0))
        return hub_err_set(err, HUB_E_CONFIG, "channels",
                           "'channels' is a non-empty list");
    if (n > HUB_SERVE_MAX_CHANNELS)
        return hub_err_set(err, HUB_E_CONFIG, "channels", "more than %d channels",
                           HUB_SERVE_MAX_CHANNELS);
    for (size_t i = 0; i < (n ? n : 1); i++) hub_v2_policy_default(&cs->ingest[i].policy);
    if (n == 0) {
        hub_mllp_channel_cfg *m = &cs->mllp[0];
        m->name = "default";
        m->host = cfg->mllp_host;
        m->port = cfg->mllp_port;
        m->tls_cert = cfg->tls_cert[0] ? cfg->tls_cert : NULL;
        m->tls_key = cfg->tls_key[0] ? cfg->tls_key : NULL;
        m->tls_client_ca = cfg->tls_client_ca[0] ? cfg->tls_client_ca : NULL;
        m->max_frame = (size_t)cfg->mllp_max_frame;
        m->idle_timeout_ms = cfg->mllp_idle_timeout * 1000;
        m->max_connections = cfg->mllp_max_connections;
        cs->ingest[0].name = "default";
        cs->ingest[0].validate = true;
        cs->ingest[0].map = true;
        cs->n = 1;
        if ((m->tls_cert == NULL) != (m->tls_key == NULL))
            return hub_err_set(err, HUB_E_CONFIG, "tls",
                               "TLS needs both --tls-cert and --tls-key");
        return HUB_OK;
    }
    for (size_t i = 0; i < n; i++) {
        hub_status rc = load_one(cs, i, json_array_get(arr, i), cfg, profiles, err);
        cs->n = i + 1;
        if (rc) return rc;
    }
    return HUB_OK;
}

void hub__channels_release(hub_serve_channels *cs) {
    for (size_t i = 0; i < HUB_SERVE_MAX_CHANNELS; i++) {
        hub_v2_site_free(cs->sites[i]);
        hub_free((void *)cs->allow[i]);
        hub_free((void *)cs->locals[i]);
    }
    memset(cs, 0, sizeof *cs);
}
