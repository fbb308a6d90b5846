/* main.c - `ferry`: dispatch to subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "ferry.h"

static void usage(FILE *f)
{
    fprintf(f,
            "ferry %s - high-throughput ONNX inference on CPUs and NVIDIA GPUs\n"
            "\n"
            "usage: ferry <command> [options]\n"
            "\n"
            "commands:\n"
            "  info MODEL             inputs, outputs, operators, parameters, the fused plan,\n"
            "                         backends built and devices seen\n"
            "  run MODEL -i IN.npy -o OUT.npy   run a model on a .npy batch\n"
            "  bench [MODEL]          batch-size sweep, batching vs threading, optimization stack\n"
            "  serve MODEL.onnx       KServe v2 / Open Inference Protocol HTTP server\n"
            "  make-model mlp ...     write a seeded MLP as ONNX\n"
            "\n"
            "options:\n"
            "  -h, --help             this text\n"
            "  --version              print the version (\"ferry %s\") and exit\n"
            "\n"
            "examples (from the repository root, after `make`):\n"
            "  ./build/ferry info build/models/mlp-s.onnx\n"
            "  ./build/ferry run build/models/mlp-s.onnx --random 8 -o out.npy\n"
            "  ./build/ferry bench --batch-sizes 1,32,256 --sweep\n"
            "\n"
            "`ferry <command> --help` explains each command's options and defaults.\n",
            FERRY_VERSION, FERRY_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("ferry %s\n", FERRY_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "info"))
        return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "make-model"))
        return cmd_make_model(argc - 1, argv + 1);
    fprintf(stderr, "ferry: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
