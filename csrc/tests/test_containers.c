/*
 * test_containers.c - gb_containers.h on its own: SipHash-2-4 against the
 * paper's vector and OpenSSL, splitmix64's reference outputs, the index,
 * the heap and the slab against simple models, and the keyed index against
 * keys built to collide under the old unkeyed FNV-1a (issue 14).
 */
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <stdlib.h>

#include "check.h"
#include "gb_containers.h"
#include "old_hash.h"

static const unsigned char KEY16[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* SipHash paper (Aumasson, Bernstein 2012), Appendix A: key 00..0f,
 * message 00..0e. */
static void test_siphash_paper_vector(void)
{
    unsigned char msg[15];
    for (int i = 0; i < 15; i++)
        msg[i] = (unsigned char)i;
    gb_hash_key k = gb_hash_key_from(KEY16);
    CHECK(gb_siphash(&k, msg, sizeof msg) == 0xa129ca6149be45e5ull);
    /* the reference implementation's vectors.h, first entry: empty input */
    CHECK(gb_siphash(&k, msg, 0) == 0x726fdb47dd0e0e31ull);
}

/* OpenSSL's SIPHASH MAC (2-4, 8-byte output, little-endian) as an
 * independent oracle for every length from 0 to 100 and several keys. */
static void test_siphash_matches_openssl(void)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    CHECK(mac != NULL);
    if (!mac)
        return;
    unsigned char msg[100], key[16];
    for (int i = 0; i < 100; i++)
        msg[i] = (unsigned char)(i * 37 + 11);
    for (int kk = 0; kk < 4; kk++) {
        for (int i = 0; i < 16; i++)
            key[i] = (unsigned char)(kk * 59 + i * 13);
        gb_hash_key k = gb_hash_key_from(key);
        for (size_t n = 0; n <= sizeof msg; n++) {
            EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
            size_t outsz = 8, got = 0;
            OSSL_PARAM params[] = {
                OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &outsz),
                OSSL_PARAM_construct_end(),
            };
            unsigned char out[8];
            int ok = ctx && EVP_MAC_init(ctx, key, sizeof key, params) &&
                     EVP_MAC_update(ctx, msg, n) && EVP_MAC_final(ctx, out, &got, sizeof out);
            EVP_MAC_CTX_free(ctx);
            CHECK(ok && got == 8);
            uint64_t want = 0;
            for (int i = 7; i >= 0; i--)
                want = want << 8 | out[i];
            CHECK(gb_siphash(&k, msg, n) == want);
        }
    }
    EVP_MAC_free(mac);
}

/* splitmix64 seeded with 0: its published first outputs. */
static void test_splitmix64_reference_outputs(void)
{
    uint64_t s = 0;
    CHECK(gb_splitmix64(&s) == 0xe220a8397b1dcdafull);
    CHECK(gb_splitmix64(&s) == 0x6e789e6aa1b965f4ull);
    CHECK(gb_splitmix64(&s) == 0x06c45d188009454full);
}

/* ---- index --------------------------------------------------------------- */

/* Records for the index tests: 64-bit keys in an array, ref = position + 1. */
typedef struct {
    uint64_t key[20000];
    gb_hash_key hk;
    uint64_t (*hash_of)(const void *ctx, uint64_t key);
    unsigned long probes;
} records;

static uint64_t keyed(const void *ctx, uint64_t key)
{
    return gb_siphash(&((const records *)ctx)->hk, &key, sizeof key);
}

static uint64_t rec_hash(const void *ctx, uint32_t ref)
{
    const records *r = ctx;
    return r->hash_of(ctx, r->key[ref - 1]);
}

static int rec_eq(const void *ctx, uint32_t ref, const void *key)
{
    records *r = (records *)ctx;
    r->probes++;
    return r->key[ref - 1] == *(const uint64_t *)key;
}

static uint32_t find(const gb_index *ix, records *r, uint64_t key)
{
    return gb_index_find(ix, r->hash_of(r, key), rec_eq, r, &key);
}

/* Inserts, finds and backward-shift removals against a presence model. */
static void test_index_find_add_remove(void)
{
    static records r;
    r.hk = gb_hash_key_from(KEY16);
    r.hash_of = keyed;
    gb_index ix = {0};
    static uint8_t present[4000];
    uint64_t rng = 7;
    for (uint32_t i = 0; i < 4000; i++)
        r.key[i] = gb_splitmix64(&rng) % 5000; /* some equal keys: first one wins */
    unsigned bad = 0;
    for (int round = 0; round < 3; round++)
        for (uint32_t i = 0; i < 4000; i++) {
            uint32_t ref = find(&ix, &r, r.key[i]);
            if (!present[i] && !ref) {
                CHECK(gb_index_reserve(&ix, ix.count + 1, rec_hash, &r) == 0);
                gb_index_add(&ix, rec_hash(&r, i + 1), i + 1);
                present[i] = 1;
            } else if (present[i] && (i + round) % 3 == 0) {
                uint32_t *slot = gb_index_slot(&ix, rec_hash(&r, i + 1), rec_eq, &r, &r.key[i]);
                bad += *slot != i + 1;
                gb_index_remove_at(&ix, slot, rec_hash, &r);
                present[i] = 0;
            }
            /* every present record still found after the shifts */
            if (i % 97 == 0)
                for (uint32_t k = 0; k < 4000; k++)
                    bad += present[k] && find(&ix, &r, r.key[k]) != k + 1;
        }
    CHECK_EQ_INT(bad, 0);
    unsigned n = 0;
    for (uint32_t k = 0; k < 4000; k++)
        n += present[k];
    CHECK_EQ_INT(ix.count, n);
    CHECK(ix.count * 2 <= ix.mask + 1);
    gb_index_free(&ix);
}

static uint64_t old_hash_of(const void *ctx, uint64_t v)
{
    (void)ctx;
    char text[80];
    return old_fnv(text, old_txn_key(text, v));
}

static uint64_t new_hash_of(const void *ctx, uint64_t v)
{
    char text[80];
    return gb_siphash(&((const records *)ctx)->hk, text, old_txn_key(text, v));
}

/* Probes to insert every key and then find each once. */
static unsigned long probes_for(records *r, size_t n)
{
    gb_index ix = {0};
    CHECK(gb_index_reserve(&ix, n, rec_hash, r) == 0);
    for (uint32_t i = 0; i < n; i++)
        gb_index_add(&ix, rec_hash(r, i + 1), i + 1);
    r->probes = 0;
    for (uint32_t i = 0; i < n; i++)
        CHECK(find(&ix, r, r->key[i]) == i + 1);
    gb_index_free(&ix);
    return r->probes;
}

/* Issue 14: branches whose old hash lands in one 64-slot window of an
 * 8192-slot index (what an attacker computes offline, the old hash being
 * public) cost the keyed index no more than random branches; under the
 * old hash they make one probe run thousands of slots long. */
static void test_keyed_index_resists_old_hash_collisions(void)
{
    static records r;
    const size_t n = 4000;
    r.hk = gb_hash_key_from(KEY16);
    uint64_t v = 0;
    for (size_t i = 0; i < n; v++)
        if ((old_hash_of(NULL, v) & 8191) < 64)
            r.key[i++] = v;
    r.hash_of = old_hash_of;
    unsigned long old_colliding = probes_for(&r, n);
    r.hash_of = new_hash_of;
    unsigned long new_colliding = probes_for(&r, n);
    uint64_t rng = 99;
    for (size_t i = 0; i < n; i++)
        r.key[i] = gb_splitmix64(&rng);
    unsigned long new_random = probes_for(&r, n);
    fprintf(stderr, "probes for %zu lookups: old hash, colliding keys %lu; keyed hash, "
                    "colliding keys %lu, random keys %lu\n",
            n, old_colliding, new_colliding, new_random);
    CHECK(new_colliding <= 2 * new_random);
    CHECK(old_colliding > 100 * new_random);
}

/* ---- heap ---------------------------------------------------------------- */

typedef struct {
    int64_t key[1000];
    uint32_t pos[1000];
} deadlines;

static int64_t dl_key(const void *ctx, uint32_t ref)
{
    return ((const deadlines *)ctx)->key[ref];
}

static void dl_moved(void *ctx, uint32_t ref, uint32_t pos)
{
    ((deadlines *)ctx)->pos[ref] = pos;
}

/* The top is always the earliest deadline; positions stay right through
 * changes and removals from the middle. */
static void test_heap_keeps_earliest_on_top(void)
{
    static deadlines d;
    gb_heap h = {0};
    CHECK(gb_heap_reserve(&h, 1000) == 0);
    uint64_t rng = 3;
    for (uint32_t i = 0; i < 1000; i++) {
        d.key[i] = (int64_t)(gb_splitmix64(&rng) % 100000);
        gb_heap_push(&h, i, dl_key, dl_moved, &d);
    }
    for (uint32_t i = 0; i < 1000; i += 3) { /* deadlines move both ways */
        d.key[i] = (int64_t)(gb_splitmix64(&rng) % 100000);
        gb_heap_fix(&h, d.pos[i], dl_key, dl_moved, &d);
    }
    for (uint32_t i = 1; i < 1000; i += 7)
        gb_heap_remove(&h, d.pos[i], dl_key, dl_moved, &d);
    unsigned bad = 0;
    for (uint32_t p = 0; p < h.len; p++)
        bad += d.pos[h.items[p]] != p;
    CHECK_EQ_INT(bad, 0);
    int64_t last = INT64_MIN;
    uint32_t popped = 0;
    while (h.len) {
        uint32_t top = h.items[0];
        bad += d.key[top] < last;
        last = d.key[top];
        gb_heap_remove(&h, 0, dl_key, dl_moved, &d);
        popped++;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(popped, 1000 - 143);
    gb_heap_free(&h);
}

/* ---- slab ---------------------------------------------------------------- */

/* References are stable, never 0, and freed ones are reused. */
static void test_slab_references(void)
{
    gb_slab s = {0};
    static int objs[200];
    uint32_t refs[200];
    for (int i = 0; i < 200; i++) {
        refs[i] = gb_slab_put(&s, &objs[i]);
        CHECK(refs[i] == (uint32_t)i + 1);
    }
    gb_slab_del(&s, refs[10]);
    gb_slab_del(&s, refs[150]);
    CHECK(gb_slab_get(&s, refs[11]) == &objs[11]);
    uint32_t again = gb_slab_put(&s, &objs[10]);
    CHECK(again == refs[150] || again == refs[10]);
    CHECK(gb_slab_get(&s, again) == &objs[10]);
    CHECK_EQ_INT(s.len, 200);
    gb_slab_free(&s);
}

int main(void)
{
    test_siphash_paper_vector();
    test_siphash_matches_openssl();
    test_splitmix64_reference_outputs();
    test_index_find_add_remove();
    test_keyed_index_resists_old_hash_collisions();
    test_heap_keeps_earliest_on_top();
    test_slab_references();
    return CHECK_DONE("test_containers");
}
