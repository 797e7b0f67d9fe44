/*
 * deob_cmd_int.h - private to the cmd.exe decoders (deob_cmd*.c): the
 * emulator's limits and state, and the functions its files share:
 *   deob_cmd.c      %VAR:mod% and caret decoders; variable modifiers
 *   deob_cmd_emu.c  the emulator: expansion, command sequences, commands
 *   deob_cmd_ctl.c  FOR and IF
 * An emulator (struct emu) lives for one deob_cmd_emulate call and is
 * used by one thread (the context's).
 */
#ifndef SP_DEOB_CMD_INT_H
#define SP_DEOB_CMD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deob_int.h"

#define CMD_MAX_VARS   4096
#define CMD_MAX_VALUE  32768
#define CMD_MAX_STEPS  200000u
#define CMD_MAX_DEPTH  16

/* techniques the emulated line used (struct emu.techs) */
#define T_SET     0x1
#define T_DELAYED 0x2
#define T_FORF    0x4
#define T_NESTED  0x8

struct cvar {
    char *name;
    size_t n;
    char *val;       /* NULL: deleted */
    size_t vn;
    bool exported;   /* shown in front of a command that reads env:NAME */
};

struct emu {
    struct deob_ctx *ctx;
    struct cvar *vars;
    size_t nvars, cap;
    bool delayed;
    struct sp_buf out;
    struct sp_buf *capture;  /* stdout of the left side of a pipe */
    uint64_t seen[256];      /* hashes of recorded lines */
    size_t nseen;
    unsigned techs;
    size_t steps;
    int depth;
    bool abort;
};

/* ---- deob_cmd.c --------------------------------------------------------- */

/* Parses a cmd.exe integer at s[*i] (blanks around it skipped, at most 9
 * digits); advances *i.  False if there is no number. */
bool sp_deob_cmd_parse_int(const char *s, size_t n, size_t *i, long *out);
/* Applies a modifier (the text after ':', "~a,b" or "x=y") to val,
 * appending to out; false if malformed. */
bool sp_deob_cmd_apply_mod(const char *val, size_t vn, const char *spec,
                           size_t sn, struct sp_buf *out);

/* ---- deob_cmd_emu.c ----------------------------------------------------- */

/* Counts one emulation step; false (and e->abort) once the step, time or
 * output budget is spent. */
bool sp_deob_cmd_tick(struct emu *e);
/* A variable the line set (val NULL once deleted), or NULL. */
struct cvar *sp_deob_cmd_var_find(struct emu *e, const char *name, size_t n);
/* Value of a variable: the line's own, else the Windows default (borrowed,
 * valid until the variable is set again). */
bool sp_deob_cmd_var_get(struct emu *e, const char *name, size_t n,
                         const char **val, size_t *vn);
/* Phase 2 for a command's text: carets outside quotes, into out. */
void sp_deob_cmd_caret_pass(const char *s, size_t n, struct sp_buf *out);
/* Argument delimiters (blank , ; = VT FF) and FOR /F / find ones
 * (blank , ;). */
bool sp_deob_cmd_is_delim(char c);
bool sp_deob_cmd_is_fdelim(char c);
/* First word at s[i] (carets skipped), lower case, into w[cap]. */
void sp_deob_cmd_word_at(const char *s, size_t n, size_t i, char *w,
                         size_t cap);
/* End of the current block from i: an unmatched ')', a newline or n. */
size_t sp_deob_cmd_block_end(const char *s, size_t n, size_t i);
/* Runs a command sequence (after percent expansion); in/inn: what a pipe
 * feeds it, or NULL. */
void sp_deob_cmd_exec_seq(struct emu *e, const char *s, size_t n,
                          const char *in, size_t inn);
/* Lines worth emulating: obfuscation only cmd.exe's rules resolve. */
bool sp_deob_cmd_emulation_worthy(const char *s, size_t n);

/* ---- deob_cmd_ctl.c ----------------------------------------------------- */

/* Runs a FOR or IF statement s[0..n) (from its keyword to the end of its
 * block). */
void sp_deob_cmd_exec_for(struct emu *e, const char *s, size_t n,
                          const char *in, size_t inn);
void sp_deob_cmd_exec_if(struct emu *e, const char *s, size_t n,
                         const char *in, size_t inn);

#endif /* SP_DEOB_CMD_INT_H */
