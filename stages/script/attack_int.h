/*
 * attack_int.h - private to the attack module: the rule table layout
 * shared by attack_rules.c (the data) and attack_scan.c (the engine).
 *
 * A condition is a small boolean expression over a lower-cased scope
 * string (a program's arguments, or a whole layer for keyword rules):
 *
 *     cond  := alt ('|' alt)*         any alternative holds ("" = always)
 *     alt   := term ('+' term)*       every term holds
 *     term  := '!' term               negation
 *            | '~' text               substring
 *            | '^' text               the scope starts with text
 *            | '-' name               a flag: -name, /name or --name as a
 *                                     token, optionally followed by : or =
 *            | '@url' | '@unc' | '@ads' | '@nix' | '@win' | '@exe' | '@args'
 *            | word                   whole-word substring
 *
 * @url: an http/https/ftp URL; @unc: a \\host\share path; @ads: a
 * file:stream alternate data stream; @nix: a Unix system path; @win: a
 * cmd.exe %VARIABLE% reference; @exe: the
 * program was written with its .exe suffix; @args: non-empty arguments.
 *
 * Not thread-related: read-only data.
 */
#ifndef SP_ATTACK_INT_H
#define SP_ATTACK_INT_H

#include <stddef.h>

/* Program rule flag: the name is distinctive enough to count anywhere in
 * a segment (not only as its first word, after a launcher like cmd /c,
 * or written with a path or .exe). */
#define SP_PROG_ANY 0x1
/* The program alone does not make a command line worth analysing (the
 * prefilter ignores it): browsers, Electron apps, the console host and
 * explorer start all day long with arguments no rule cares about. */
#define SP_PROG_QUIET 0x2

struct sp_attack_prog_rule {
    const char *prog;     /* lower-case basename without .exe */
    unsigned flags;
    const char *cond;
    const char *tech;
    const char *what;
};

struct sp_attack_kw_rule {
    const char *kw;       /* lower-case; whole-word at alphanumeric ends */
    const char *cond;     /* over the whole layer */
    const char *tech;
    const char *what;
};

/* The engine keeps per-scan state for each keyword rule. */
#define SP_ATTACK_MAX_KW_RULES 512

extern const struct sp_attack_prog_rule sp_attack_prog_rules[];
extern const size_t sp_attack_n_prog_rules;
extern const struct sp_attack_kw_rule sp_attack_kw_rules[];
extern const size_t sp_attack_n_kw_rules;

#endif /* SP_ATTACK_INT_H */
