/* serve.c - placeholder until the command lands. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "ferry: 'serve' is not built yet\n");
    return 1;
}
