/*
 * old_hash.h - the registrar's table hash before issue 14: FNV-1a, unkeyed,
 * with a final mix.  Kept only so that tests and benchmarks can build keys
 * that collide under it (the attacker's offline work) and show that the
 * keyed SipHash now in gb_containers.h does not care.
 */
#ifndef GBSIP_OLD_HASH_H
#define GBSIP_OLD_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define OLD_FNV_START 0xcbf29ce484222325ull

/* FNV-1a over more bytes, from h (OLD_FNV_START at first). */
static inline uint64_t old_fnv_add(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The final mix. */
static inline uint64_t old_fnv_end(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static inline uint64_t old_fnv(const void *p, size_t n)
{
    return old_fnv_end(old_fnv_add(OLD_FNV_START, p, n));
}

/* The registrar's transaction key for a REGISTER whose top Via is
 * "SIP/2.0/UDP 10.0.0.5:5061;branch=z9hG4bK<branch>" (out: 80 bytes). */
static inline size_t old_txn_key(char *out, uint64_t branch)
{
    return (size_t)snprintf(out, 80, "REGISTER|z9hG4bK%llu|10.0.0.5:5061",
                            (unsigned long long)branch);
}

#endif
