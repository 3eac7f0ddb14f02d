/*
 * gb_containers.h - the shared containers of core/ (and io/): a keyed hash
 * (SipHash-2-4), the splitmix64 PRNG, an open-addressing index, a binary
 * min-heap of deadlines, growable arrays and a slab of pointers.
 *
 * The index and the heap hold uint32 references to the caller's own
 * records (an array position, a slab reference) and ask the caller, through
 * small callbacks, how a record hashes, compares and orders.  They are
 * static inline so that each caller's callbacks inline into its probes.
 *
 * Every hash table of the core is keyed with a 128-bit key the caller gives
 * in its configuration (the binding draws it from the OS): a peer who
 * chooses Via branches, device IDs or source addresses cannot make them
 * collide (issue 14: colliding branches cost 1,174 us each under the old
 * unkeyed FNV-1a, 7 us otherwise).  The core itself draws no randomness.
 */
#ifndef GBSIP_GB_CONTAINERS_H
#define GBSIP_GB_CONTAINERS_H

#include <stddef.h>
#include <stdint.h>

/* ---- keyed hash --------------------------------------------------------- */

#define GB_HASH_KEY_LEN 16

typedef struct {
    uint64_t k0, k1;
} gb_hash_key;

/* The key from 16 bytes (little-endian words, as the SipHash paper). */
gb_hash_key gb_hash_key_from(const unsigned char bytes[GB_HASH_KEY_LEN]);

/* SipHash-2-4 (Aumasson and Bernstein, 2012) of p[0..n). */
uint64_t gb_siphash(const gb_hash_key *key, const void *p, size_t n);

/* ---- randomness the caller seeded ---------------------------------------- */

/* splitmix64's output function: a bijective mix of 64 bits. */
static inline uint64_t gb_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* splitmix64 (Steele, Lea, Flood 2014): the next draw of the state. */
static inline uint64_t gb_splitmix64(uint64_t *state)
{
    return gb_mix64(*state += 0x9e3779b97f4a7c15ull);
}

/* ---- open-addressing index ----------------------------------------------- */

/* Slots hold references (never 0: 0 marks an empty slot); linear probing,
 * load kept at most 1/2, backward-shift deletion (no tombstones). */
typedef struct {
    uint32_t *slots;
    uint32_t mask;       /* capacity - 1; capacity is a power of two */
    uint32_t count;
} gb_index;

/* The hash of a stored record, and whether a stored record matches a key. */
typedef uint64_t (*gb_index_hash_fn)(const void *ctx, uint32_t ref);
typedef int (*gb_index_eq_fn)(const void *ctx, uint32_t ref, const void *key);

/* Room for `want` records at load 1/2 (re-inserting what is there).
 * 0, or -1 when out of memory (the index is unchanged). */
int gb_index_reserve(gb_index *ix, size_t want, gb_index_hash_fn hash, const void *ctx);
void gb_index_free(gb_index *ix);
size_t gb_index_bytes(const gb_index *ix);

/* The slot holding the record that matches key, or the empty slot that
 * ends its probe run (where it would go).  The index must have a slot. */
static inline uint32_t *gb_index_slot(const gb_index *ix, uint64_t hash, gb_index_eq_fn eq,
                                      const void *ctx, const void *key)
{
    for (uint32_t j = (uint32_t)hash & ix->mask;; j = (j + 1) & ix->mask) {
        uint32_t r = ix->slots[j];
        if (!r || eq(ctx, r, key))
            return &ix->slots[j];
    }
}

/* The matching reference, 0 when none. */
static inline uint32_t gb_index_find(const gb_index *ix, uint64_t hash, gb_index_eq_fn eq,
                                     const void *ctx, const void *key)
{
    return ix->slots ? *gb_index_slot(ix, hash, eq, ctx, key) : 0;
}

/* Add a reference that is not there yet; the caller reserved room. */
static inline void gb_index_add(gb_index *ix, uint64_t hash, uint32_t ref)
{
    uint32_t j = (uint32_t)hash & ix->mask;
    while (ix->slots[j])
        j = (j + 1) & ix->mask;
    ix->slots[j] = ref;
    ix->count++;
}

/* Empty the slot (found with gb_index_slot) and close the gap: each later
 * record of the run moves back unless its home lies cyclically in
 * (hole, its slot]. */
static inline void gb_index_remove_at(gb_index *ix, uint32_t *slot, gb_index_hash_fn hash,
                                      const void *ctx)
{
    uint32_t hole = (uint32_t)(slot - ix->slots);
    ix->slots[hole] = 0;
    ix->count--;
    for (uint32_t j = (hole + 1) & ix->mask; ix->slots[j]; j = (j + 1) & ix->mask) {
        uint32_t home = (uint32_t)hash(ctx, ix->slots[j]) & ix->mask;
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            ix->slots[hole] = ix->slots[j];
            ix->slots[j] = 0;
            hole = j;
        }
    }
}

/* ---- binary min-heap of deadlines ---------------------------------------- */

/* Items are references ordered by the caller's deadline for each; the
 * caller keeps each record's position (told through `moved`) so that a
 * record whose deadline changed can be fixed or removed in O(log n). */
typedef struct {
    uint32_t *items;
    uint32_t len, cap;
} gb_heap;

typedef int64_t (*gb_heap_key_fn)(const void *ctx, uint32_t ref);
typedef void (*gb_heap_moved_fn)(void *ctx, uint32_t ref, uint32_t pos);

/* Room for `want` items.  0, or -1 when out of memory. */
int gb_heap_reserve(gb_heap *h, size_t want);
void gb_heap_free(gb_heap *h);

static inline void gb_heap_set(gb_heap *h, uint32_t pos, uint32_t ref, gb_heap_moved_fn moved,
                               void *ctx)
{
    h->items[pos] = ref;
    moved(ctx, ref, pos);
}

/* Restore the order around pos after its key changed (sift up, then down). */
static inline void gb_heap_fix(gb_heap *h, uint32_t pos, gb_heap_key_fn key,
                               gb_heap_moved_fn moved, void *ctx)
{
    uint32_t ref = h->items[pos];
    int64_t k = key(ctx, ref);
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (key(ctx, h->items[parent]) <= k)
            break;
        gb_heap_set(h, pos, h->items[parent], moved, ctx);
        pos = parent;
    }
    for (;;) {
        uint32_t l = 2 * pos + 1, best = pos;
        int64_t bk = k;
        if (l < h->len && key(ctx, h->items[l]) < bk)
            best = l, bk = key(ctx, h->items[l]);
        if (l + 1 < h->len && key(ctx, h->items[l + 1]) < bk)
            best = l + 1;
        if (best == pos)
            break;
        gb_heap_set(h, pos, h->items[best], moved, ctx);
        pos = best;
    }
    gb_heap_set(h, pos, ref, moved, ctx);
}

/* Add a reference; the caller reserved room. */
static inline void gb_heap_push(gb_heap *h, uint32_t ref, gb_heap_key_fn key,
                                gb_heap_moved_fn moved, void *ctx)
{
    uint32_t pos = h->len++;
    gb_heap_set(h, pos, ref, moved, ctx);
    gb_heap_fix(h, pos, key, moved, ctx);
}

/* Take out the item at pos. */
static inline void gb_heap_remove(gb_heap *h, uint32_t pos, gb_heap_key_fn key,
                                  gb_heap_moved_fn moved, void *ctx)
{
    uint32_t last = --h->len;
    if (pos != last) {
        gb_heap_set(h, pos, h->items[last], moved, ctx);
        gb_heap_fix(h, pos, key, moved, ctx);
    }
}

/* ---- growable arrays ------------------------------------------------------ */

/* Make *p (an array of *cap elements of elem bytes) hold at least need,
 * doubling.  0, or -1 when out of memory (the array is unchanged). */
int gb_grow(void **p, size_t *cap, size_t need, size_t elem);

/* ---- slab of pointers ---------------------------------------------------- */

/* Records the caller allocated, addressed by a uint32 reference (never 0)
 * that stays put while the record lives: what the index and the heap hold
 * for records that are not in one array. */
typedef struct {
    void **items;        /* items[ref - 1]; NULL when free */
    uint32_t *free;      /* free references, a stack */
    uint32_t len, cap, nfree;
} gb_slab;

/* The reference of a new record p, 0 when out of memory. */
uint32_t gb_slab_put(gb_slab *s, void *p);
void gb_slab_del(gb_slab *s, uint32_t ref);
void gb_slab_free(gb_slab *s);

static inline void *gb_slab_get(const gb_slab *s, uint32_t ref)
{
    return s->items[ref - 1];
}

#endif
