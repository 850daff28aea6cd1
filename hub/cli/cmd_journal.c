/* hub journal: the message journal, read-only, from the CLI. */
#include "internal.h"
#include "hub/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char USAGE[] =
    "usage: hub journal [--data DIR] [--status S] [--sender X] [--control-id ID]\n"
    "                   [--channel NAME] [--since T] [--limit N]\n"
    "       hub journal show ID [--data DIR]\n"
    "\n"
    "Lists journaled messages, newest first, one line each: time, channel,\n"
    "sender, type, control id, status, ACK code. `show` prints one message with\n"
    "its ACK and errors.\n"
    "\n"
    "  --status S   accepted, rejected, errored or processed\n"
    "  --sender X   part of MSH-3^MSH-4\n"
    "  --since T    2026-11-25, 2026-11-25T10:00:00 (UTC), or an age: 30m, 2h, 7d\n"
    "  --limit N    rows to print (default 50, at most 1000)\n";

/* Parses --since: an absolute UTC date/time or an age. */
static bool parse_since(const char *s, int64_t *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end != s && end[0] && !end[1] && v >= 0) {
        int64_t unit = end[0] == 's' ? 1000 : end[0] == 'm' ? 60000
                     : end[0] == 'h' ? 3600000 : end[0] == 'd' ? 86400000 : 0;
        if (unit) {
            *out = hub_now_ms() - v * unit;
            return true;
        }
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *r = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (r == NULL || *r) {
        memset(&tm, 0, sizeof tm);
        r = strptime(s, "%Y-%m-%dT%H:%M", &tm);
    }
    if (r == NULL || *r) {
        memset(&tm, 0, sizeof tm);
        r = strptime(s, "%Y-%m-%d", &tm);
    }
    if (r == NULL || *r) return false;
    *out = (int64_t)timegm(&tm) * 1000;
    return true;
}

static hub_status print_row(void *ud, const hub_journal_row *r) {
    (void)ud;
    char ts[32];
    hub_time_iso(r->received_ms, ts);
    printf("%-6lld %s %-10s %-24s %-16s %-20s %-9s %s\n", (long long)r->id, ts,
           r->channel, r->sender[0] ? r->sender : "-",
           r->msg_type[0] ? r->msg_type : "-",
           r->control_id[0] ? r->control_id : "-",
           hub_msg_status_name(r->status), r->ack_code);
    return HUB_OK;
}

static void print_segments(const char *p, size_t n) {
    /* Segments on their own lines, whatever the separator was. */
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\r') {
            putchar('\n');
            if (i + 1 < n && p[i + 1] == '\n') i++;
        } else {
            putchar(c);
        }
    }
    if (n && p[n - 1] != '\r' && p[n - 1] != '\n') putchar('\n');
}

static hub_status print_full(void *ud, const hub_journal_row *r) {
    (void)ud;
    char ts[32];
    hub_time_iso(r->received_ms, ts);
    printf("id:         %lld\nreceived:   %s\nchannel:    %s\npeer:       %s\n"
           "identity:   %s\nsender:     %s\ntype:       %s\nversion:    %s\n"
           "control id: %s\nstatus:     %s\nack code:   %s\n",
           (long long)r->id, ts, r->channel, r->peer,
           r->identity[0] ? r->identity : "-", r->sender, r->msg_type,
           r->version, r->control_id, hub_msg_status_name(r->status),
           r->ack_code);
    printf("errors:     %s\n\n-- message --\n", r->errors ? r->errors : "[]");
    print_segments(r->body, r->body_len);
    printf("\n-- ack --\n");
    print_segments(r->ack, r->ack_len);
    return HUB_OK;
}

int hub__cmd_journal(int argc, char **argv) {
    const char *cmd = "journal";
    const char *data = "./hub-data";
    hub_journal_filter f = {.status = -1, .limit = 50};
    const char *show = NULL;
    int i = 1;
    if (argc > 1 && strcmp(argv[1], "show") == 0) {
        if (argc < 3 || argv[2][0] == '-')
            return hub__cli_usage_error(cmd, "show needs a message id");
        show = argv[2];
        i = 3;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v;
        if (hub__cli_is_help(a)) {
            fputs(USAGE, stdout);
            return 0;
        }
#define FLAG(name) (strncmp(a, name, strlen(name)) == 0 && \
                    (a[strlen(name)] == '\0' || a[strlen(name)] == '='))
        if (FLAG("--data")) {
            if (!(v = hub__cli_flag_value(cmd, argc, argv, &i, "--data"))) return 2;
            data = v;
        } else if (show) {
            return hub__cli_usage_error(cmd, "unknown flag '%s'", a);
        } else if (FLAG("--status")) {
            if (!(v = hub__cli_flag_value(cmd, argc, argv, &i, "--status"))) return 2;
            hub_msg_status st;
            if (hub_msg_status_parse(v, &st) != HUB_OK)
                return hub__cli_usage_error(cmd, "--status: '%s' is not one of "
                                            "accepted, rejected, errored, processed", v);
            f.status = (int)st;
        } else if (FLAG("--sender")) {
            if (!(v = hub__cli_flag_value(cmd, argc, argv, &i, "--sender"))) return 2;
            f.sender = v;
        } else if (FLAG("--control-id")) {
            if (!(v = hub__cli_flag_value(cmd, argc, argv, &i, "--control-id"))) return 2;
            f.control_id = v;
        } else if (FLAG("--channel")) {
            if (!(v = hub__cli_flag_value(cmd, argc, argv, &i, "--channel"))) return 2;
            f.channel = v;
        } else if (FLAG("--since")) {
            if (!(v = hub__cli_flag_value(cmd, argc, argv, &i, "--since"))) return 2;
            if (!parse_since(v, &f.since_ms))
                return hub__cli_usage_error(cmd, "--since: '%s' is not a date "
                                            "(2026-11-25T10:00:00) or an age (2h)", v);
        } else if (FLAG("--limit")) {
            if (!(v = hub__cli_flag_value(cmd, argc, argv, &i, "--limit"))) return 2;
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 1000)
                return hub__cli_usage_error(cmd, "--limit: '%s' is not between 1 and 1000", v);
            f.limit = (int)n;
        } else if (a[0] == '-') {
            return hub__cli_usage_error(cmd, "unknown flag '%s'", a);
        } else {
            return hub__cli_usage_error(cmd, "unexpected argument '%s'", a);
        }
#undef FLAG
    }
    int64_t id = 0;
    if (show) {
        char *end;
        id = strtoll(show, &end, 10);
        if (*end || id <= 0)
            return hub__cli_usage_error(cmd, "'%s' is not a message id", show);
    }
    hub_store *s;
    hub_err err;
    hub_store_cfg c = {.dir = data, .read_only = true};
    if (hub_store_open(&c, &s, &err) != HUB_OK) {
        fprintf(stderr, "hub journal: %s\n", err.msg);
        return 1;
    }
    hub_status rc;
    if (show) {
        rc = hub_journal_get(s, id, print_full, NULL, &err);
    } else {
        rc = hub_journal_list(s, &f, print_row, NULL, &err);
    }
    hub_store_close(s);
    if (rc) {
        fprintf(stderr, "hub journal: %s\n", err.msg);
        return 1;
    }
    return 0;
}
