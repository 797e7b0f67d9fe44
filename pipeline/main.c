/*
 * main.c - the `socpilot` command: dispatches to a subcommand.
 *
 * Each subcommand lives next to the module it drives (cli.c for the
 * engine's, stages/normalize_cli.c, stages/script/script_cli.c,
 * stages/correlate_cli.c) and returns the exit status.
 */
#include "cli.h"
#include "sp.h"

#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static int cmd_version(int argc, char **argv)
{
    SP_UNUSED(argc);
    SP_UNUSED(argv);
    printf("socpilot %s (alert schema %s)\n", SP_VERSION, "1");
    return 0;
}

static const struct command commands[] = {
    {"run", sp_cmd_run, "run the pipeline against Kafka (and Redis, LLM...)"},
    {"demo", sp_cmd_demo, "the embedded default: mock Kafka, sample alerts, results"},
    {"normalize", sp_cmd_normalize, "print normalized alerts for JSON input, no Kafka"},
    {"analyze-script", sp_cmd_analyze_script, "deobfuscate a command line: layers, indicators, ATT&CK"},
    {"incident", sp_cmd_incident, "show, list, explain, close or reopen incidents"},
    {"analyze", sp_cmd_analyze, "LLM summary and impact analysis of an incident (--dry-run, --estimate)"},
    {"check-config", sp_cmd_check_config, "validate a config, print effective settings"},
    {"mock-kafka", sp_cmd_mock_kafka, "run librdkafka's mock cluster standalone"},
    {"replay", sp_cmd_replay, "produce alert files into a topic"},
    {"version", cmd_version, "print the version"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: socpilot <command> [options]   (socpilot <command> --help)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < SP_ARRAY_SIZE(commands); i++)
        fprintf(out, "  %-15s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(0, NULL);
    for (size_t i = 0; i < SP_ARRAY_SIZE(commands); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "socpilot: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
