/*
 * test_digest_nonce_cache.c - the issued-nonce cache is an accelerator
 * only: with and without it, every nonce gets the same verdict.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "digest.h"

#define N 10000
#define LIFETIME 60000

static const unsigned char KEY[32] = "0123456789abcdef0123456789abcdef";

static gb_digest_nonces *make(int encoding, int cached)
{
    gb_digest_nonce_config cfg = {KEY, sizeof(KEY), LIFETIME, 0, encoding,
                                  cached ? 0u : (unsigned)GB_NONCE_NO_CACHE};
    const char *why = NULL;
    gb_digest_nonces *n = gb_digest_nonces_new(&cfg, &why);
    CHECK(n != NULL);
    return n;
}

static gb_bytes binding_of(int i, char *buf)
{
    int len = snprintf(buf, 32, "10.0.%d.%d:5060", (i >> 8) & 255, i & 255);
    return (gb_bytes){buf, (size_t)len};
}

/* Same verdicts with and without the cache: fresh, mutated (forged),
 * wrong binding (forged), expired (stale), evicted from the ring (fresh). */
static void test_cache_never_changes_a_verdict(int encoding)
{
    gb_digest_nonces *cached = make(encoding, 1), *plain = make(encoding, 0);
    static char nonces[N][64];
    static size_t lens[N];
    char b1[32], b2[32];
    for (int i = 0; i < N; i++) {
        long n = gb_digest_nonce_issue(cached, 1000 + i, binding_of(i, b1), nonces[i],
                                       sizeof(nonces[i]));
        CHECK(n > 0);
        lens[i] = (size_t)n;
    }
    for (int i = 0; i < N; i++) {
        gb_bytes nonce = {nonces[i], lens[i]};
        gb_bytes bind = binding_of(i, b1);
        int64_t now = 1000 + N;
        /* the oldest ones were pushed out of the 4096-slot ring */
        CHECK_EQ_INT(gb_digest_nonce_check(cached, nonce, bind, now, NULL), GB_NONCE_FRESH);
        /* a nonce from the other object (same key) authenticates too */
        CHECK_EQ_INT(gb_digest_nonce_check(plain, nonce, bind, now, NULL), GB_NONCE_FRESH);
        CHECK_EQ_INT(gb_digest_nonce_check(cached, nonce, binding_of(i + 1, b2), now, NULL),
                     GB_NONCE_FORGED);
        CHECK_EQ_INT(gb_digest_nonce_check(cached, nonce, bind, now + LIFETIME + 1, NULL),
                     GB_NONCE_STALE);
        char mutated[64];
        memcpy(mutated, nonces[i], lens[i]);
        mutated[i % lens[i]] ^= 1;
        gb_bytes bad = {mutated, lens[i]};
        CHECK_EQ_INT(gb_digest_nonce_check(cached, bad, bind, now, NULL),
                     gb_digest_nonce_check(plain, bad, bind, now, NULL));
        CHECK(gb_digest_nonce_check(cached, bad, bind, now, NULL) != GB_NONCE_FRESH);
    }
    gb_digest_nonces_free(cached);
    gb_digest_nonces_free(plain);
}

static void test_set_cache_rejects_oversized_rings(void)
{
    gb_digest_nonces *n = make(GB_NONCE_HEX, 1);
    CHECK_EQ_INT(gb_digest_nonces_set_cache(n, 65536), 0);
    CHECK_EQ_INT(gb_digest_nonces_set_cache(n, 65537), -1);
    CHECK_EQ_INT(gb_digest_nonces_set_cache(n, 0), 0);
    gb_digest_nonces_free(n);
}

int main(void)
{
    test_cache_never_changes_a_verdict(GB_NONCE_HEX);
    test_cache_never_changes_a_verdict(GB_NONCE_BASE64URL);
    test_set_cache_rejects_oversized_rings();
    return CHECK_DONE("test_digest_nonce_cache");
}
