/* gb_containers.c - keyed hash, index, heap and slab (see gb_containers.h). */
#include "gb_containers.h"

#include <stdlib.h>
#include <string.h>

/* ---- SipHash-2-4 ------------------------------------------------------- */

static uint64_t load_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

gb_hash_key gb_hash_key_from(const unsigned char bytes[GB_HASH_KEY_LEN])
{
    return (gb_hash_key){load_le64(bytes), load_le64(bytes + 8)};
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                  \
    do {                                                                          \
        v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32);                 \
        v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2;                                    \
        v0 += v3, v3 = ROTL(v3, 21), v3 ^= v0;                                    \
        v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32);                 \
    } while (0)

uint64_t gb_siphash(const gb_hash_key *key, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t v0 = 0x736f6d6570736575ull ^ key->k0, v1 = 0x646f72616e646f6dull ^ key->k1,
             v2 = 0x6c7967656e657261ull ^ key->k0, v3 = 0x7465646279746573ull ^ key->k1;
    size_t whole = n & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    /* the last block: the tail bytes and the length's low byte on top */
    uint64_t b = (uint64_t)n << 56;
    for (size_t i = 0; i < (n & 7); i++)
        b |= (uint64_t)p[whole + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- index --------------------------------------------------------------- */

int gb_index_reserve(gb_index *ix, size_t want, gb_index_hash_fn hash, const void *ctx)
{
    size_t cap = ix->slots ? (size_t)ix->mask + 1 : 0;
    if (cap && want * 2 <= cap)
        return 0;
    size_t ncap = 16;
    while (ncap < want * 2)
        ncap *= 2;
    if (ncap > (size_t)UINT32_MAX)
        return -1;
    uint32_t *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    gb_index grown = {ns, (uint32_t)(ncap - 1), 0};
    for (size_t i = 0; i < cap; i++)
        if (ix->slots[i])
            gb_index_add(&grown, hash(ctx, ix->slots[i]), ix->slots[i]);
    free(ix->slots);
    *ix = grown;
    return 0;
}

void gb_index_free(gb_index *ix)
{
    free(ix->slots);
    memset(ix, 0, sizeof *ix);
}

size_t gb_index_bytes(const gb_index *ix)
{
    return ix->slots ? ((size_t)ix->mask + 1) * sizeof *ix->slots : 0;
}

/* ---- heap ---------------------------------------------------------------- */

int gb_heap_reserve(gb_heap *h, size_t want)
{
    if (want <= h->cap)
        return 0;
    size_t ncap = h->cap ? h->cap : 64;
    while (ncap < want)
        ncap *= 2;
    if (ncap > (size_t)UINT32_MAX)
        return -1;
    uint32_t *ni = realloc(h->items, ncap * sizeof *ni);
    if (!ni)
        return -1;
    h->items = ni;
    h->cap = (uint32_t)ncap;
    return 0;
}

void gb_heap_free(gb_heap *h)
{
    free(h->items);
    memset(h, 0, sizeof *h);
}

/* ---- growable arrays ------------------------------------------------------ */

int gb_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* ---- slab ---------------------------------------------------------------- */

uint32_t gb_slab_put(gb_slab *s, void *p)
{
    if (s->nfree) {
        uint32_t ref = s->free[--s->nfree];
        s->items[ref - 1] = p;
        return ref;
    }
    if (s->len == s->cap) {
        uint32_t ncap = s->cap ? s->cap * 2 : 64;
        if (ncap <= s->cap)
            return 0;
        void **ni = realloc(s->items, (size_t)ncap * sizeof *ni);
        if (!ni)
            return 0;
        s->items = ni;
        uint32_t *nf = realloc(s->free, (size_t)ncap * sizeof *nf);
        if (!nf)
            return 0;
        s->free = nf;
        s->cap = ncap;
    }
    s->items[s->len++] = p;
    return s->len;
}

void gb_slab_del(gb_slab *s, uint32_t ref)
{
    s->items[ref - 1] = NULL;
    s->free[s->nfree++] = ref;
}

void gb_slab_free(gb_slab *s)
{
    free(s->items);
    free(s->free);
    memset(s, 0, sizeof *s);
}
