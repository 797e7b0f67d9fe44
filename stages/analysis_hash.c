/*
 * analysis_hash.c - the content hash of an incident: SHA-256 over a
 * canonical form of what an analysis reads (alerts sorted by id, entities
 * by key, script analyses by their text; object members sorted by name;
 * snapshot bookkeeping such as versions, update times, fetch times, raw
 * documents and the analysis/guidance/ticket sections left out).  The job
 * runner compares it with the last analysed hash so that an unchanged
 * incident is never sent again.
 *
 * SHA-256 is written from FIPS 180-4 (no crypto library is linked).
 * Pure functions; any thread.
 */
#include <stdlib.h>
#include <string.h>

#include "analysis_int.h"

/* ---- content hash ------------------------------------------------------- */

static bool volatile_key(const char *k)
{
    static const char *const skip[] = {
        "version", "incident_version", "updated", "last_updated", "ingested",
        "received_at", "analysis", "guidance", "ticket", "raw", "fetched",
        "fetched_at", "cached_at", "expires", "expires_at", "ttl"};
    for (size_t i = 0; i < SP_ARRAY_SIZE(skip); i++)
        if (strcmp(k, skip[i]) == 0)
            return true;
    return false;
}

static int member_cmp(const void *a, const void *b)
{
    const struct sp_json *x = *(const struct sp_json *const *)a;
    const struct sp_json *y = *(const struct sp_json *const *)b;
    return strcmp(x->key, y->key);
}

/* Canonical JSON: members sorted by name, bookkeeping members dropped. */
static void canon(struct sp_buf *b, struct sp_arena *a, const struct sp_json *v,
                  int depth)
{
    if (depth > 64)
        return;
    switch (v->type) {
    case SP_JSON_NULL: sp_buf_puts(b, "null"); return;
    case SP_JSON_TRUE: sp_buf_puts(b, "true"); return;
    case SP_JSON_FALSE: sp_buf_puts(b, "false"); return;
    case SP_JSON_NUMBER: sp_buf_put(b, v->u.s, v->n); return;
    case SP_JSON_STRING: sp_json_escape(b, v->u.s, v->n); return;
    case SP_JSON_ARRAY:
        sp_buf_putc(b, '[');
        sp_json_foreach(v, it) {
            if (it != v->u.child)
                sp_buf_putc(b, ',');
            canon(b, a, it, depth + 1);
        }
        sp_buf_putc(b, ']');
        return;
    case SP_JSON_OBJECT: {
        const struct sp_json **m = sp_arena_alloc(a, (v->n + 1) * sizeof(*m));
        if (!m) {
            b->overflow = true;
            return;
        }
        size_t n = 0;
        sp_json_foreach(v, it) if (!volatile_key(it->key)) m[n++] = it;
        qsort(m, n, sizeof(*m), member_cmp);
        sp_buf_putc(b, '{');
        for (size_t i = 0; i < n; i++) {
            if (i)
                sp_buf_putc(b, ',');
            sp_json_escape(b, m[i]->key, m[i]->key_len);
            sp_buf_putc(b, ':');
            canon(b, a, m[i], depth + 1);
        }
        sp_buf_putc(b, '}');
        return;
    }
    }
}

struct canon_item {
    const char *sort;
    const char *text;
};

static int canon_item_cmp(const void *a, const void *b)
{
    const struct canon_item *x = a, *y = b;
    int c = strcmp(x->sort, y->sort);
    return c ? c : strcmp(x->text, y->text);
}

/* The items of an array, canonicalised and sorted by `by` (or text). */
static void canon_set(struct sp_buf *out, struct sp_arena *a,
                      const char *name, const struct sp_json *arr,
                      const char *by)
{
    sp_buf_puts(out, name);
    sp_buf_putc(out, '\n');
    if (!arr || arr->type != SP_JSON_ARRAY)
        return;
    struct canon_item *items = sp_arena_alloc(a, (arr->n + 1) * sizeof(*items));
    if (!items) {
        out->overflow = true;
        return;
    }
    size_t n = 0;
    struct sp_buf b;
    sp_buf_init(&b, AN_CORPUS_MAX);
    sp_json_foreach(arr, it) {
        sp_buf_reset(&b);
        canon(&b, a, it, 0);
        const char *text = sp_arena_strndup(a, b.data ? b.data : "", b.len);
        const char *key = by ? sp_json_str(it, by) : NULL;
        if (!text || b.overflow) {
            out->overflow = true;
            break;
        }
        items[n].text = text;
        items[n].sort = key ? key : text;
        n++;
    }
    sp_buf_fini(&b);
    qsort(items, n, sizeof(*items), canon_item_cmp);
    for (size_t i = 0; i < n; i++) {
        sp_buf_puts(out, items[i].text);
        sp_buf_putc(out, '\n');
    }
}

enum sp_err sp_analysis_content_hash(const struct sp_json *inc, char out[65])
{
    out[0] = '\0';
    if (!inc || inc->type != SP_JSON_OBJECT)
        return SP_ERR_INVALID;
    struct sp_arena a;
    sp_arena_init(&a, (size_t)256 << 20);
    struct sp_buf b;
    sp_buf_init(&b, (size_t)64 << 20);
    canon_set(&b, &a, "alerts", sp_json_get(inc, "alerts"), "id");
    canon_set(&b, &a, "entities", sp_json_get(inc, "entities"), "key");
    canon_set(&b, &a, "scripts", sp_json_get(inc, "scripts"), NULL);
    enum sp_err e = b.overflow ? SP_ERR_LIMIT : SP_OK;
    if (e == SP_OK) {
        uint8_t d[32];
        an_sha256(b.data ? b.data : "", b.len, d);
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 32; i++) {
            out[2 * i] = hex[d[i] >> 4];
            out[2 * i + 1] = hex[d[i] & 15];
        }
        out[64] = '\0';
    }
    sp_buf_fini(&b);
    sp_arena_fini(&a);
    return e;
}

/* ---- SHA-256 (FIPS 180-4) ----------------------------------------------- */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t ror(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5],
             g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) +
                      ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) +
                      ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d;
    h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

void an_sha256(const void *data, size_t n, uint8_t out[32])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const uint8_t *p = data;
    size_t left = n;
    while (left >= 64) {
        sha_block(h, p);
        p += 64;
        left -= 64;
    }
    uint8_t tail[128] = {0};
    memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t tl = left + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++)
        tail[tl - 1 - i] = (uint8_t)(bits >> (8 * i));
    sha_block(h, tail);
    if (tl == 128)
        sha_block(h, tail + 64);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}
