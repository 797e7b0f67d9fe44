/*
 * b64_test.h - standard base64 for building encoded test inputs (the
 * library only decodes).  Header-only.
 */
#ifndef SP_B64_TEST_H
#define SP_B64_TEST_H

#include <stddef.h>
#include <stdint.h>

/* out holds 4 * ceil(n / 3) + 1 bytes. */
static inline void t_b64_encode(const unsigned char *in, size_t n, char *out)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[k++] = tbl[(v >> 18) & 63];
        out[k++] = tbl[(v >> 12) & 63];
        out[k++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[k++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[k] = '\0';
}

#endif /* SP_B64_TEST_H */
