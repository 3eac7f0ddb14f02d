/*
 * fuzz.h - what the libFuzzer targets share: a broken invariant is a crash
 * for libFuzzer, so say which one first; and a reader of the input bytes.
 */
#ifndef GBSIP_FUZZ_H
#define GBSIP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define EXPECT(cond)                                                   \
    do {                                                               \
        if (!(cond)) {                                                 \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, \
                    __LINE__, #cond);                                  \
            abort();                                                   \
        }                                                              \
    } while (0)

#define IN_BOUNDS(s, n) EXPECT((size_t)(s).off + (s).len <= (n))

/* The fuzzer's bytes, taken from the front; 0 once they run out. */
typedef struct {
    const uint8_t *p;
    size_t n;
} fuzz_input;

static inline unsigned fuzz_byte(fuzz_input *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static inline unsigned fuzz_u16(fuzz_input *in)
{
    unsigned hi = fuzz_byte(in);
    return hi << 8 | fuzz_byte(in);
}

/* Up to max bytes (a length byte first); *len gets how many. */
static inline const char *fuzz_bytes(fuzz_input *in, size_t max, size_t *len)
{
    size_t want = fuzz_u16(in) % (max + 1);
    *len = want < in->n ? want : in->n;
    const char *p = (const char *)in->p;
    in->p += *len;
    in->n -= *len;
    return p;
}

#endif
