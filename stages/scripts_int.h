/*
 * scripts_int.h - private to the scripts stage (stages/scripts.c): the
 * analysis cache's slot and its hit test, declared here so that the unit
 * tests can check the hit test on a slot they fill themselves.
 *
 * Engine thread only, like the stage.
 */
#ifndef SP_SCRIPTS_INT_H
#define SP_SCRIPTS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One extracted indicator kept in the cache. */
struct cached_ioc {
    uint8_t type;            /* enum sp_ioc_type */
    char *value;
};

struct cache_slot {
    uint64_t hash;
    char *cmd;               /* the command line analysed: a hit compares it
                                whole, the hash only picks the slot */
    size_t cmd_len;
    char *json;              /* the analysis fields, serialised object body */
    size_t json_len;
    char *small;             /* the same within SCRIPTS_SMALL_MAX, or NULL
                                when json is no larger */
    size_t small_len;
    struct cached_ioc *iocs;
    size_t n_iocs;
    unsigned risk;
};

/* The cache's hash of a command line. */
uint64_t scripts_hash(const char *cmd, size_t len);

/* Does slot hold the analysis of cmd[0..len) (whose hash is h)?  The
 * bytes are compared: the cache is shared by every tenant, and a command
 * line crafted to collide with a benign one's 64-bit hash must not be
 * answered with its analysis. */
bool scripts_slot_holds(const struct cache_slot *slot, uint64_t h,
                        const char *cmd, size_t len);

#endif /* SP_SCRIPTS_INT_H */
