/* make_model.c - placeholder until the command lands. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_make_model(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "ferry: 'make_model' is not built yet\n");
    return 1;
}
