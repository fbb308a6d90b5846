/* cli.h - the ferry command's subcommands; each returns the process exit code. */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

int cmd_info(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_make_model(int argc, char **argv);

/* Path of the bundled default model (models/mlp-s.onnx next to the binary's
 * build tree, or $FERRY_MODEL), or NULL if none is found. */
const char *cli_default_model(void);

#endif
