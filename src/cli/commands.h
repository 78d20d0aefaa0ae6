/* Subcommands of the `ssd` program: each takes the arguments after its name and returns the
 * process exit status (0 success, 1 runtime error, 2 usage error). */
#ifndef SSD_CLI_COMMANDS_H
#define SSD_CLI_COMMANDS_H

int ssd_cmd_train(int argc, char **argv);
int ssd_cmd_eval(int argc, char **argv);
int ssd_cmd_detect(int argc, char **argv);
int ssd_cmd_step(int argc, char **argv);
int ssd_cmd_cocoeval(int argc, char **argv);
int ssd_cmd_bench(int argc, char **argv);
int ssd_cmd_convert(int argc, char **argv);
int ssd_cmd_synth(int argc, char **argv);
int ssd_cmd_batch(int argc, char **argv);

#endif
