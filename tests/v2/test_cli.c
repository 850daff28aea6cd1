/* `hub get` and `hub inspect`, run as the binary. */
#include "v2_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs `hub ARGS` with stdout captured into out; returns the exit code. */
static int run(const char *args, char *out, size_t size) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>/dev/null", HUB_BIN, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char dir[64];
static char path[128];
static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/hub-v2-cli-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.hl7", dir);
    FILE *f = fopen(path, "wb");
    fputs("MSH|^~\\&|LAB|H|||20260101||ORU^R01^ORU_R01|C9|P|2.5.1\r"
          "PID|1||111^^^A~222^^^B||DOE^JANE\r"
          "OBR|1\rOBX|1|ST|X||a\\T\\b\rNTE|1||note\\.br\\two\r"
          "OBX|2|NM|Y||2.5\r", f);
    fclose(f);
}
static void teardown(void) {
    unlink(path);
    rmdir(dir);
}
TestSuite(v2_cli, .init = setup, .fini = teardown);

Test(v2_cli, get_values_decoded) {
    char out[4096], args[512];
    snprintf(args, sizeof args, "get %s 'PID-3(2).1' PID-5.2 'OBX(1)-5' OBX-99 MSH-9.2", path);
    cr_assert_eq(run(args, out, sizeof out), 0);
    cr_assert_str_eq(out, "222\nJANE\na&b\n\nR01\n");
}

Test(v2_cli, get_group_path_and_segment) {
    char out[4096], args[512];
    snprintf(args, sizeof args,
             "get %s 'PATIENT_RESULT(1)/ORDER_OBSERVATION(1)/OBX(2)-5' OBR", path);
    cr_assert_eq(run(args, out, sizeof out), 0);
    cr_assert_str_eq(out, "2.5\nOBR|1\n");
}

Test(v2_cli, get_usage_errors) {
    char out[4096], args[512];
    cr_assert_eq(run("get", out, sizeof out), 2);
    snprintf(args, sizeof args, "get %s", path);
    cr_assert_eq(run(args, out, sizeof out), 2);
    snprintf(args, sizeof args, "get %s 'PID-0'", path);
    cr_assert_eq(run(args, out, sizeof out), 2);
    cr_assert_eq(run("get /nonexistent/x.hl7 PID-3", out, sizeof out), 1);
    cr_assert_eq(run("get --help", out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "usage: hub get"));
}

Test(v2_cli, get_unparsable_file) {
    char bad[160], out[256], args[512];
    snprintf(bad, sizeof bad, "%s/bad.hl7", dir);
    FILE *f = fopen(bad, "wb");
    fputs("PID|1\r", f);
    fclose(f);
    snprintf(args, sizeof args, "get %s PID-1", bad);
    cr_assert_eq(run(args, out, sizeof out), 1);
    unlink(bad);
}

Test(v2_cli, inspect_tree_with_groups) {
    char out[8192], args[512];
    snprintf(args, sizeof args, "inspect %s", path);
    cr_assert_eq(run(args, out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "message 1: ORU_R01 (v2.5.1, 6 segments)"), "%s", out);
    cr_assert_not_null(strstr(out, "  PATIENT_RESULT(1)\n    PATIENT(1)\n      PID\n"), "%s", out);
    cr_assert_not_null(strstr(out, "      OBSERVATION(1)\n        OBX\n"), "%s", out);
    cr_assert_not_null(strstr(out, "NTE-3  note\\ntwo"), "%s", out);
    cr_assert_not_null(strstr(out, "OBSERVATION(2)"), "%s", out);
}

Test(v2_cli, inspect_usage) {
    char out[4096];
    cr_assert_eq(run("inspect", out, sizeof out), 2);
    cr_assert_eq(run("inspect a b", out, sizeof out), 2);
    cr_assert_eq(run("inspect --help", out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "usage: hub inspect"));
    cr_assert_eq(run("help get", out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "usage: hub get"));
}

Test(v2_cli, inspect_groups_from_the_base_profile) {
    /* DEO^O45 is a 2.8 structure the engine has no built-in for: its
     * groups come from conformance/v2/base/v2.8.json */
    char file[160], out[8192], args[512];
    snprintf(file, sizeof file, "%s/deo.hl7", dir);
    FILE *f = fopen(file, "wb");
    fputs("MSH|^~\\&|BANK|BC|LIS|H|20260101||DEO^O45|C1|P|2.8\r"
          "PID|1||D1^^^BC^MR\rPV1|1|O\r"
          "OBR|1|ORD1\rOBX|1|NM|HGB||14\rNTE|1||ok\r", f);
    fclose(f);
    snprintf(args, sizeof args, "inspect %s", file);
    cr_assert_eq(run(args, out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "message 1: DEO_O45 (v2.8, 6 segments)"), "%s", out);
    cr_assert_not_null(strstr(out, "  DONOR(1)\n    PID\n"), "%s", out);
    cr_assert_not_null(strstr(out, "    DONOR_REGISTRATION(1)\n      PV1\n"), "%s", out);
    cr_assert_not_null(strstr(out, "  DONATION_ORDER(1)\n    OBR\n"), "%s", out);
    cr_assert_not_null(strstr(out, "    DONATION_OBSERVATION(1)\n      OBX\n"), "%s", out);
    cr_assert_null(strstr(out, "not in the structure"), "%s", out);
    snprintf(args, sizeof args, "get %s 'DONATION_ORDER/DONATION_OBSERVATION/OBX-5'", file);
    cr_assert_eq(run(args, out, sizeof out), 0);
    cr_assert_str_eq(out, "14\n");
    unlink(file);
}
