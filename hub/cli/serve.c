/* hub serve: placeholder until the listeners land in this same series. */
#include "internal.h"
#include <stdio.h>
int hub__cmd_serve(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "hub serve: not built yet\n");
    return 1;
}
