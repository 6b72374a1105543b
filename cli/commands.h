/* One function per subcommand; each parses its own options (argv[0] is the command name),
 * prints its own --help, and returns the process exit code (an nq_status value). */
#ifndef NUPES_COMMANDS_H
#define NUPES_COMMANDS_H

int cmd_quantize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_verify(int argc, char **argv);

#endif
