/* info.c - placeholder until the command lands. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_info(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "ferry: 'info' is not built yet\n");
    return 1;
}

const char *cli_default_model(void) { return NULL; }
