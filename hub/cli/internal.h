/* cli internals: one function per subcommand, one shared flag parser. */
#ifndef HUB_CLI_INTERNAL_H
#define HUB_CLI_INTERNAL_H

#include "hub/core.h"

/* A subcommand: argv[0] is its name. Returns the process exit code:
 * 0 success, 1 failure of the work, 2 bad usage. */
typedef int (*hub_cli_fn)(int argc, char **argv);

typedef struct {
    const char *name;
    hub_cli_fn fn;
    const char *summary;
} hub_cli_cmd;

extern const hub_cli_cmd hub__cli_cmds[];

/* Prints "hub CMD: MSG" to stderr and returns 2. */
int hub__cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* True for --help and -h. */
bool hub__cli_is_help(const char *arg);
/* Reads a flag's value: "--x=v" or "--x v". Advances *i past a separate
 * value. NULL (and a printed error) when the value is missing. */
const char *hub__cli_flag_value(const char *cmd, int argc, char **argv, int *i,
                                const char *flag);
/* Applies a flag that names a configuration setting (from hub_cfg_table)
 * and also accepts --set KEY=VALUE. Returns 1 if argv[*i] was such a flag,
 * 0 if not, -1 on a bad value (error printed). */
int hub__cli_cfg_flag(const char *cmd, hub_cfg *cfg, int argc, char **argv,
                      int *i);

int hub__cmd_serve(int argc, char **argv);
int hub__cmd_journal(int argc, char **argv);
int hub__cmd_send(int argc, char **argv);
int hub__cmd_validate(int argc, char **argv);
int hub__cmd_version(int argc, char **argv);
int hub__cmd_convert(int argc, char **argv);
int hub__cmd_replay(int argc, char **argv);
int hub__cmd_reindex(int argc, char **argv);
int hub__cmd_get(int argc, char **argv);
int hub__cmd_inspect(int argc, char **argv);
int hub__cmd_help(int argc, char **argv);
int hub__cmd_clients(int argc, char **argv);
/* Builds the configuration of serve-like commands from flags, file and
 * environment; sets up logging. Returns 0, or 2 after printing an error. */
int hub__serve_config(const char *cmd, int argc, char **argv, hub_cfg *cfg,
                      bool *help);

#endif
