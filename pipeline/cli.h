/*
 * cli.h - the `socpilot` subcommands and what they share: option parsing
 * for -c/-s/--help, and building a validated config with every component's
 * keys declared.
 *
 * Commands run on the main thread and return the process exit status
 * (0 ok, 1 failure, 2 usage error).
 */
#ifndef SP_CLI_H
#define SP_CLI_H

#include "config.h"

#include <stdio.h>

/* Options every config-reading command takes. */
struct sp_cli_common {
    const char *config_path;     /* -c FILE */
    const char **sets;           /* -s key=value, in order */
    int n_sets;
};

/*
 * Parses -c/--config and -s/--set out of argv (removing them; argv keeps
 * the rest in order, argv[0] first).  Returns the new argc, or -1 on a
 * usage error (message printed).
 */
int sp_cli_parse_common(int argc, char **argv, struct sp_cli_common *co);

/* Registers every secret of cfg (borrowed) with the logger, which masks
 * them in every line from now on. */
void sp_cli_mask_secrets(const struct sp_config *cfg);

/* Sets the logger up from cfg's log.level and log.format (to stderr) and
 * masks cfg's secrets: what every command does once its config is
 * valid. */
void sp_cli_log_setup(const struct sp_config *cfg);

/* Declares all keys, loads the file (if any), applies -s, validates.
 * Prints the error (naming key and line) and returns NULL on failure;
 * new config otherwise.  Also sets up logging from log.* and registers
 * every secret with the logger. */
struct sp_config *sp_cli_config(const struct sp_cli_common *co,
                                const char *const *extra_sets, size_t n_extra);

int sp_cmd_run(int argc, char **argv);
int sp_cmd_demo(int argc, char **argv);
int sp_cmd_check_config(int argc, char **argv);
int sp_cmd_mock_kafka(int argc, char **argv);
int sp_cmd_replay(int argc, char **argv);

/* Produces each file into topic: a *.jsonl file one message per non-empty
 * line, any other file as one message (bytes as they are).  Every file is
 * checked first: one that cannot be read (missing, a directory, no
 * permission) means nothing is produced.  Returns the number of messages
 * produced and acknowledged, or -1 (error printed). */
long sp_replay_files(const char *brokers, const char *topic,
                     char *const *files, size_t n_files, FILE *log);

/* Implemented next to their modules. */
int sp_cmd_normalize(int argc, char **argv);
int sp_cmd_analyze_script(int argc, char **argv);
int sp_cmd_incident(int argc, char **argv);
int sp_cmd_analyze(int argc, char **argv);

#endif /* SP_CLI_H */
