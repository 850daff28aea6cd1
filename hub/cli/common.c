/* The subcommand table and the flag helpers every subcommand shares. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

const hub_cli_cmd hub__cli_cmds[] = {
    {"serve", hub__cmd_serve, "run the hub: MLLP and HTTP listeners, store"},
    {"journal", hub__cmd_journal, "list journaled messages, or show one"},
    {"get", hub__cmd_get, "print decoded values of HL7 v2 messages by terse path"},
    {"inspect", hub__cmd_inspect, "print HL7 v2 messages as an indented tree"},
    {"send", hub__cmd_send, "send HL7 v2 files over MLLP and summarize the ACKs"},
    {"validate", hub__cmd_validate, "check HL7 v2 files against conformance profiles"},
    {"convert", hub__cmd_convert, "map HL7 v2 files to FHIR transaction Bundles"},
    {"replay", hub__cmd_replay, "re-run journaled messages through the current mapping tables"},
    {"reindex", hub__cmd_reindex, "rebuild the search index rows of the stored resources"},
    {"clients", hub__cmd_clients, "register, list and revoke OAuth clients (SMART Backend Services)"},
    {"version", hub__cmd_version, "print the version"},
    {"help", hub__cmd_help, "list the commands, or explain one"},
    {NULL, NULL, NULL},
};

int hub__cli_usage_error(const char *cmd, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "hub %s: %s\n", cmd, msg);
    return 2;
}

bool hub__cli_is_help(const char *arg) {
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

const char *hub__cli_flag_value(const char *cmd, int argc, char **argv, int *i,
                                const char *flag) {
    const char *a = argv[*i];
    size_t fl = strlen(flag);
    if (strncmp(a, flag, fl) == 0 && a[fl] == '=') return a + fl + 1;
    if (*i + 1 >= argc) {
        hub__cli_usage_error(cmd, "flag '%s' needs a value", flag);
        return NULL;
    }
    (*i)++;
    return argv[*i];
}

int hub__cli_cfg_flag(const char *cmd, hub_cfg *cfg, int argc, char **argv,
                      int *i) {
    const char *a = argv[*i];
    char flag[64];
    const char *eq = strchr(a, '=');
    size_t fl = eq ? (size_t)(eq - a) : strlen(a);
    if (fl >= sizeof flag) return 0;
    memcpy(flag, a, fl);
    flag[fl] = '\0';
    hub_err err;
    if (strcmp(flag, "--set") == 0) {
        const char *kv = hub__cli_flag_value(cmd, argc, argv, i, "--set");
        if (kv == NULL) return -1;
        const char *e = strchr(kv, '=');
        if (e == NULL) {
            hub__cli_usage_error(cmd, "--set wants KEY=VALUE, got '%s'", kv);
            return -1;
        }
        char key[96];
        snprintf(key, sizeof key, "%.*s", (int)(e - kv), kv);
        if (hub_cfg_set(cfg, key, e + 1, "--set", &err) != HUB_OK) {
            hub__cli_usage_error(cmd, "%s: %s", err.where, err.msg);
            return -1;
        }
        return 1;
    }
    const hub_cfg_entry *ent = hub_cfg_find_flag(flag);
    if (ent == NULL) return 0;
    const char *v;
    if (ent->type == HUB_CFG_BOOL && eq == NULL) {
        v = "true"; /* a bare boolean flag turns the setting on */
    } else {
        v = hub__cli_flag_value(cmd, argc, argv, i, flag);
        if (v == NULL) return -1;
    }
    if (hub_cfg_set(cfg, ent->key, v, flag, &err) != HUB_OK) {
        hub__cli_usage_error(cmd, "%s: %s", err.where, err.msg);
        return -1;
    }
    return 1;
}

int hub__cmd_version(int argc, char **argv) {
    (void)argv;
    if (argc > 1 && hub__cli_is_help(argv[1])) {
        printf("usage: hub version\n\nPrints the hub's version.\n");
        return 0;
    }
    if (argc > 1) return hub__cli_usage_error("version", "unknown flag '%s'", argv[1]);
    printf("hub %s\n", HUB_VERSION);
    return 0;
}

int hub__cmd_help(int argc, char **argv) {
    if (argc > 1) {
        for (const hub_cli_cmd *c = hub__cli_cmds; c->name; c++) {
            if (strcmp(c->name, argv[1]) == 0) {
                char *args[] = {(char *)c->name, "--help", NULL};
                return c->fn(2, args);
            }
        }
        return hub__cli_usage_error("help", "unknown command '%s'", argv[1]);
    }
    printf("hub %s: HL7 v2 and FHIR R4 integration hub\n\n"
           "usage: hub COMMAND [FLAGS]\n\ncommands:\n",
           HUB_VERSION);
    for (const hub_cli_cmd *c = hub__cli_cmds; c->name; c++)
        printf("  %-10s %s\n", c->name, c->summary);
    printf("\n'hub COMMAND --help' explains one command.\n");
    return 0;
}
