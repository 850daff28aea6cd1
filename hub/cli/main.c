/* The `hub` binary: one entry point, subcommands from a table. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        char *help[] = {"help", NULL};
        hub__cmd_help(1, help);
        return 2;
    }
    const char *name = argv[1];
    if (hub__cli_is_help(name)) name = "help";
    if (strcmp(name, "--version") == 0) name = "version";
    for (const hub_cli_cmd *c = hub__cli_cmds; c->name; c++) {
        if (strcmp(c->name, name) == 0) return c->fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "hub: unknown command '%s' (try 'hub help')\n", argv[1]);
    return 2;
}
