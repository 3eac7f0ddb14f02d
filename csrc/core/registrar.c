/* registrar.c - GB/T 28181 registrar state (see registrar.h). */
#include "registrar.h"

#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "gb_containers.h"
#include "manscdp.h"
#include "platform_requests.h"
#include "sip_fields.h"
#include "sip_writer.h"

#define NO_DEADLINE INT64_MAX
/* Contacts a binding may hold (cfg.max_contacts at most), and the room
 * each takes in an answer: "<" uri ">;expires=" 10 digits, the URI fitting
 * in one header line of the parser's limit. */
#define MAX_CONTACTS 64
#define CONTACT_ROOM(lim) ((size_t)(lim).max_line + 32)
/* Answer fields besides Contacts: Server, Date, Expires, Min-Expires,
 * X-GB-Ver, WWW-Authenticate, Allow, Unsupported, Accept, the redirect's
 * Contact, and room to spare. */
#define OTHER_FIELDS 16

/* ------------------------------------------------------------------ */
/* Small tools                                                         */

static char *dup_bytes(const char *p, size_t n)
{
    char *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

static int peer_same_host(const gb_peer *a, const gb_peer *b)
{
    return a->family == b->family && a->transport == b->transport && a->port == b->port &&
           memcmp(a->ip, b->ip, a->family == 6 ? 16 : 4) == 0;
}

/* The same sender: address, port, transport and, on TCP, the connection.
 * What a binding's source must equal for a request without credentials
 * to touch the binding (issue 14). */
static int same_source(const gb_peer *a, const gb_peer *b)
{
    return peer_same_host(a, b) && (a->transport != GB_TRANSPORT_TCP || a->conn_id == b->conn_id);
}

/* What a nonce is bound to (digest.h): the family and address the
 * challenge went to, so an answer sniffed there is forged anywhere else.
 * Not the port: NAT may move it between the 401 and the answer. */
static gb_bytes nonce_binding(const gb_peer *p, unsigned char out[17])
{
    size_t n = p->family == 6 ? 16 : 4;
    out[0] = p->family;
    memcpy(out + 1, p->ip, n);
    return (gb_bytes){(const char *)out, n + 1};
}

size_t gb_peer_ip_text(const gb_peer *p, char *out, size_t cap)
{
    gb_writer w;
    gb_w_init(&w, out, cap);
    if (p->family == 6) {
        /* RFC 5952 is nicer, but any valid form works in received= */
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 16; i += 2) {
            unsigned v = (unsigned)p->ip[i] << 8 | p->ip[i + 1];
            char tmp[4];
            int n = 0, started = 0;
            for (int sh = 12; sh >= 0; sh -= 4) {
                unsigned d = (v >> sh) & 15;
                if (d || started || sh == 0) {
                    tmp[n++] = hex[d];
                    started = 1;
                }
            }
            gb_w_bytes(&w, tmp, (size_t)n);
            if (i < 14)
                gb_w_bytes(&w, ":", 1);
        }
    } else {
        for (int i = 0; i < 4; i++) {
            gb_w_uint(&w, p->ip[i]);
            if (i < 3)
                gb_w_bytes(&w, ".", 1);
        }
    }
    return w.overflow ? 0 : w.len;
}

/* ------------------------------------------------------------------ */
/* State                                                               */

typedef struct {
    char *uri;
    uint32_t uri_len;
    int64_t expires_at;
} reg_contact;

/* What bindings and secrets have in common: they are found by device ID
 * through an id_table (slab reference + keyed index). */
typedef struct {
    uint64_t hash;           /* keyed hash of id */
    uint32_t ref;            /* in the id_table's slab */
    uint8_t id_len;
    char id[GB_REG_MAX_ID];
} id_head;

typedef struct {
    gb_slab slab;            /* of id_head * (first member of the record) */
    gb_index ix;
} id_table;

typedef struct {
    id_head h;
    uint8_t state;           /* gb_bind_state, changed by set_state() only */
    uint8_t dirty;           /* listed in the change list since the last take */
    uint8_t ncontacts;
    uint32_t cseq;
    uint32_t heap_pos;
    uint32_t call_id_len;
    uint32_t ua_len;
    char *call_id;
    char *user_agent;
    reg_contact *contacts;
    gb_peer source;
    int64_t registered_at;
    int64_t last_keepalive;
    int64_t keepalive_deadline;  /* 0: not tracked */
} binding;

typedef struct {
    id_head h;
    uint8_t is_ha1;
    uint32_t len;
    char *secret;
} secret_entry;

enum { TXN_EMPTY = 0, TXN_PENDING, TXN_DONE };

#define TXN_KEY_MAX 160

typedef struct {
    uint8_t state;
    uint8_t ring;            /* RING_* it lives in */
    uint16_t key_len;
    uint32_t response_len;
    uint32_t request_len;
    uint64_t hash;
    uint64_t pending_id;
    int64_t expires_at;
    char *response;
    char *request;           /* pending: the request to finish later */
    gb_peer dest;            /* where the answer went / goes */
    char key[TXN_KEY_MAX];
} txn;

/* Cached answers live in two rings (issue 12): answers to requests that
 * proved who sent them (credentials, or a binding's own source) and the
 * rest (challenges, refusals, pending look-ups), max_transactions split in
 * halves, so that a flood of the second kind never pushes out the first. */
enum { RING_OPEN = 0, RING_TRUSTED = 1 };

typedef struct {
    size_t base, cap;        /* slots [base, base + cap) of r->txns */
    size_t head, count;
} txn_ring;

/* Events in three queues merged by sequence number: binding events (the
 * state an application must see), peer-triggered ones from senders that
 * proved themselves (a registered device's MESSAGE bodies, keepalives,
 * NOTIFYs) and those from senders that proved nothing (refusals, failed
 * answers, garbage).  When the count or byte bound is reached the oldest
 * unproven event goes first, then the oldest proven one; an event never
 * pushes out one of a queue before its own (issue 14). */
enum { EVQ_STATE = 0, EVQ_PROVEN = 1, EVQ_OPEN = 2, EVQ__COUNT = 3 };

typedef struct {
    gb_reg_event ev;
    uint64_t seq;
    uint64_t bytes;          /* what it counts against max_event_bytes */
} queued_event;

typedef struct {
    queued_event *q;
    size_t cap, head, count;
} event_queue;

/* Password guessing (issue 12): failure counts per (device ID, source
 * prefix) and per source prefix, in a fixed table of 4-way sets chosen by
 * keyed hash.  A prefix is the IPv4 address or the IPv6 /64. */
#define LOCK_WAYS 4

typedef struct {
    uint64_t hash;           /* keyed hash of the key; slot empty when family 0 */
    uint8_t family;
    uint8_t id_len;          /* 0: the source key */
    uint8_t prefix[8];
    char id[GB_REG_MAX_ID];
    uint32_t failures;
    int64_t window_start;
    int64_t locked_until;    /* 0: not locked */
} lock_slot;

/* Per-source rate: rate_slots / 4 sets of 4 slots, the set chosen by
 * keyed hash of the source prefix (as the lockout's: IPv4 address, IPv6
 * /64), a slot owned by one prefix for its one-second window. */
#define RATE_WAYS 4

typedef struct {
    uint8_t family;          /* 0: never used */
    uint8_t prefix[8];
    int64_t window_start;
    uint32_t count;
} rate_slot;

struct gb_registrar {
    gb_registrar_config cfg;
    char *strings;            /* copies of the configuration strings */
    gb_digest_ctx *dctx;
    gb_digest_nonces *nonces;
    uint64_t prng;
    gb_hash_key hkey;         /* keys every table's hash */
    id_table bindings;
    id_table secrets;
    gb_heap heap;             /* binding refs by binding_deadline() */
    txn *txns;                /* both rings, txn_slots */
    size_t txn_slots;
    txn_ring rings[2];        /* RING_OPEN, RING_TRUSTED */
    gb_index txn_ix;          /* slot + 1, by keyed hash of the key */
    uint64_t pending_gen;
    size_t pending_count;
    event_queue evq[EVQ__COUNT];
    uint64_t ev_seq;
    int64_t peer_ev_second;   /* start of the peer_event_rate window */
    uint32_t peer_ev_count;   /* events in it */
    lock_slot *locks;         /* lockout table, lock_sets * LOCK_WAYS */
    size_t lock_sets;
    gb_field *fields;         /* an answer's extra headers, fields_cap */
    size_t fields_cap;
    char *scratch;            /* their values, built (scratch_cap bytes) */
    size_t scratch_cap;
    rate_slot *rate;          /* rate_sets * RATE_WAYS; NULL: no limit */
    size_t rate_sets;
    /* Device IDs whose binding changed since the last take (persistence);
     * NULL while nobody asked for changes. */
    gb_reg_change *changes;
    size_t nchanges, changes_cap;
    gb_registrar_stats st;
    gb_preq_pool *preq;       /* requests to devices (platform_requests.h) */
    gb_manscdp_node *mnodes;  /* MESSAGE bodies read into these, on first use */
};

/* ------------------------------------------------------------------ */
/* Bindings and secrets by device ID                                   */

typedef struct {
    const char *p;
    size_t n;
    uint64_t hash;
} id_key;

static uint64_t id_ref_hash(const void *ctx, uint32_t ref)
{
    return ((const id_head *)gb_slab_get(&((const id_table *)ctx)->slab, ref))->hash;
}

static int id_ref_eq(const void *ctx, uint32_t ref, const void *key)
{
    const id_head *h = gb_slab_get(&((const id_table *)ctx)->slab, ref);
    const id_key *k = key;
    return h->hash == k->hash && h->id_len == k->n && memcmp(h->id, k->p, k->n) == 0;
}

/* The record (binding or secret_entry) with this ID, or NULL. */
static void *id_find(const gb_registrar *r, const id_table *t, const char *id, size_t n)
{
    id_key k = {id, n, gb_siphash(&r->hkey, id, n)};
    uint32_t ref = gb_index_find(&t->ix, k.hash, id_ref_eq, t, &k);
    return ref ? gb_slab_get(&t->slab, ref) : NULL;
}

/* Name the record whose first member is h and add it.  0, or -1 when out
 * of memory (nothing added). */
static int id_add(const gb_registrar *r, id_table *t, id_head *h, const char *id, size_t n)
{
    memcpy(h->id, id, n);
    h->id_len = (uint8_t)n;
    h->hash = gb_siphash(&r->hkey, id, n);
    if (gb_index_reserve(&t->ix, (size_t)t->ix.count + 1, id_ref_hash, t) < 0 ||
        !(h->ref = gb_slab_put(&t->slab, h)))
        return -1;
    gb_index_add(&t->ix, h->hash, h->ref);
    return 0;
}

static void id_table_free(id_table *t)
{
    gb_index_free(&t->ix);
    gb_slab_free(&t->slab);
}

static void id_remove(id_table *t, id_head *h)
{
    id_key k = {h->id, h->id_len, h->hash};
    gb_index_remove_at(&t->ix, gb_index_slot(&t->ix, h->hash, id_ref_eq, t, &k), id_ref_hash, t);
    gb_slab_del(&t->slab, h->ref);
}

/* The next record of the table from *cursor on (0 at the start), or NULL. */
static void *id_next(const id_table *t, size_t *cursor)
{
    while (*cursor < t->slab.len) {
        void *rec = t->slab.items[(*cursor)++];
        if (rec)
            return rec;
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* A binding's states                                                  */

static const char *const bind_state_names[GB_BIND_STATE__COUNT] = {
    "none", "registered", "offline", "unregistered", "expired",
};

const char *gb_bind_state_name(gb_bind_state s)
{
    return (unsigned)s < GB_BIND_STATE__COUNT ? bind_state_names[s] : "unknown";
}

const gb_state_move gb_bind_moves[] = {
    {GB_BIND_NONE, GB_BIND_REGISTERED, "REGISTER, a live contact"},
    {GB_BIND_REGISTERED, GB_BIND_REGISTERED, "refresh"},
    {GB_BIND_REGISTERED, GB_BIND_OFFLINE, "keepalives lost"},
    {GB_BIND_OFFLINE, GB_BIND_REGISTERED, "keepalive, refresh"},
    {GB_BIND_REGISTERED, GB_BIND_UNREGISTERED, "Expires 0 or Contact *"},
    {GB_BIND_OFFLINE, GB_BIND_UNREGISTERED, "Expires 0 or Contact *"},
    {GB_BIND_REGISTERED, GB_BIND_EXPIRED, "last contact expired"},
    {GB_BIND_OFFLINE, GB_BIND_EXPIRED, "last contact expired"},
};
const size_t gb_bind_nmoves = sizeof gb_bind_moves / sizeof gb_bind_moves[0];

/* Every state change (registered, refreshed, offline, online, gone) lists
 * the device once until the next gb_registrar_take_changes(); bounded at
 * twice max_bindings, past which losses are counted. */
static void note_change(gb_registrar *r, binding *b)
{
    if (!r->changes || b->dirty)
        return;
    if (r->nchanges == r->changes_cap) {
        size_t limit = 2 * (size_t)r->cfg.max_bindings + 64;
        size_t ncap = r->changes_cap * 2;
        gb_reg_change *nc = ncap <= limit ? realloc(r->changes, ncap * sizeof(*nc)) : NULL;
        if (!nc) {
            r->st.changes_dropped++;
            return;
        }
        r->changes = nc;
        r->changes_cap = ncap;
    }
    gb_reg_change *c = &r->changes[r->nchanges++];
    c->id_len = b->h.id_len;
    memcpy(c->id, b->h.id, b->h.id_len);
    b->dirty = 1;
}

/* The one place a binding's state changes: only along gb_bind_moves.  An
 * illegal move is refused and counted (a bug: asserted in debug builds). */
static int set_state(gb_registrar *r, binding *b, gb_bind_state to)
{
    if (gb_state_move_take(gb_bind_moves, gb_bind_nmoves, b->state, to, r->st.moves[0],
                           GB_BIND_STATE__COUNT, &r->st.illegal_moves) < 0)
        return -1;
    b->state = (uint8_t)to;
    note_change(r, b);
    return 0;
}

static int online(const binding *b)
{
    return b->state == GB_BIND_REGISTERED;
}

/* Cached transactions by their key (slot + 1 in the ring). */

static uint64_t txn_ref_hash(const void *ctx, uint32_t ref)
{
    return ((const gb_registrar *)ctx)->txns[ref - 1].hash;
}

typedef struct {
    const char *p;
    size_t n;
    uint64_t hash;
} txn_probe;

static int txn_ref_eq(const void *ctx, uint32_t ref, const void *key)
{
    const txn *t = &((const gb_registrar *)ctx)->txns[ref - 1];
    const txn_probe *k = key;
    return t->hash == k->hash && t->key_len == k->n && memcmp(t->key, k->p, k->n) == 0;
}

/* This very transaction (not another with the same key). */
static int txn_ref_is(const void *ctx, uint32_t ref, const void *key)
{
    (void)ctx;
    return ref == *(const uint32_t *)key;
}

void gb_registrar_config_default(gb_registrar_config *c)
{
    memset(c, 0, sizeof(*c));
    c->min_expires = 3600;
    c->max_expires = 86400;
    c->default_expires = 3600;
    c->keepalive_interval_ms = 60000;
    c->keepalive_timeout_count = 3;
    c->refresh_policy = GB_REFRESH_CHALLENGE;
    c->id_policy = GB_IDS_STRICT;
    c->uri_policy = GB_URI_ANY;
    c->nonce_lifetime = 300;
    c->max_bindings = 1000000;
    c->max_contacts = 8;
    c->max_transactions = 65536;
    c->max_pending = 1024;
    c->max_events = 65536;
    c->max_event_bytes = 64u << 20;
    c->peer_event_rate = 1000;
    c->max_contact_bytes = 1024;
    c->transaction_ms = 32000;
    c->keepalive_events = 1;
    c->require_qop = 1;
    c->keepalive_policy = GB_KEEPALIVE_REFUSE;
    c->nonce_replay_slots = 65536;
    c->lockout_failures = 5;
    c->lockout_source_failures = 100;
    c->lockout_window_ms = 60000;
    c->lockout_ms = 300000;
    c->lockout_slots = 16384;
    c->rate_slots = 65536;
    c->manscdp_lenient = GB_MANSCDP_LENIENT_ALL;
    c->max_requests = 4096;
    c->request_t1_ms = 500;
}

/* Copy a configuration string into r->strings and repoint it there. */
static void keep_string(char **cursor, const char **p, size_t len)
{
    if (!*p)
        return;
    memcpy(*cursor, *p, len);
    *p = *cursor;
    *cursor += len;
}

gb_registrar *gb_registrar_new(const gb_registrar_config *cfg, const char **why)
{
    *why = NULL;
    if (!cfg->server_id || !cfg->server_id_len) {
        *why = "server_id is required";
        return NULL;
    }
    if (!cfg->realm && cfg->server_id_len < 10) {
        *why = "server_id shorter than 10 characters: give a realm";
        return NULL;
    }
    if (!cfg->fixed_nonce && (!cfg->nonce_key || cfg->nonce_key_len < 16 || cfg->nonce_key_len > 64)) {
        *why = "nonce_key of 16 to 64 bytes is required";
        return NULL;
    }
    if (cfg->min_expires > cfg->max_expires) {
        *why = "min_expires is above max_expires";
        return NULL;
    }
    if (!cfg->max_transactions || !cfg->max_events || !cfg->max_bindings) {
        *why = "max_transactions, max_events and max_bindings must be positive";
        return NULL;
    }
    if (cfg->max_contacts > MAX_CONTACTS) {
        *why = "max_contacts above 64";
        return NULL;
    }
    if (!cfg->max_event_bytes || !cfg->max_contact_bytes) {
        *why = "max_event_bytes and max_contact_bytes must be positive";
        return NULL;
    }
    if ((cfg->lockout_failures || cfg->lockout_source_failures) &&
        (!cfg->lockout_slots || cfg->lockout_slots > (1u << 24) || !cfg->lockout_window_ms ||
         !cfg->lockout_ms)) {
        *why = "lockout needs 1 to 16M lockout_slots and a positive window and time";
        return NULL;
    }
    if (cfg->rate_per_source && (!cfg->rate_slots || cfg->rate_slots > (1u << 24))) {
        *why = "rate_per_source needs 1 to 16M rate_slots";
        return NULL;
    }
    gb_registrar *r = calloc(1, sizeof(*r));
    if (!r) {
        *why = "out of memory";
        return NULL;
    }
    r->cfg = *cfg;
    size_t total = cfg->server_id_len + cfg->realm_len + cfg->shared_password_len +
                   cfg->gb_version_len + cfg->fixed_nonce_len + cfg->nonce_key_len +
                   cfg->redirect_to_len + cfg->server_header_len + 1;
    r->strings = malloc(total);
    r->dctx = gb_digest_ctx_new();
    r->hkey = gb_hash_key_from(cfg->hash_key);
    /* max_transactions split in halves, one ring each (at least one slot) */
    size_t trusted = cfg->max_transactions / 2 ? cfg->max_transactions / 2 : 1;
    size_t open = cfg->max_transactions > trusted ? cfg->max_transactions - trusted : 1;
    r->rings[RING_OPEN] = (txn_ring){.base = 0, .cap = open};
    r->rings[RING_TRUSTED] = (txn_ring){.base = open, .cap = trusted};
    r->txn_slots = open + trusted;
    r->txns = calloc(r->txn_slots, sizeof(txn));
    if (cfg->lockout_failures || cfg->lockout_source_failures) {
        r->lock_sets = (cfg->lockout_slots + LOCK_WAYS - 1) / LOCK_WAYS;
        r->locks = calloc(r->lock_sets * LOCK_WAYS, sizeof(lock_slot));
    }
    if (cfg->rate_per_source) {
        r->rate_sets = (cfg->rate_slots + RATE_WAYS - 1) / RATE_WAYS;
        r->rate = calloc(r->rate_sets * RATE_WAYS, sizeof(rate_slot));
    }
    /* Room for every field an answer can carry, so none is ever left out:
     * the binding's contacts, the challenge, the redirect target... */
    gb_limits lim;
    gb_limits_default(&lim);
    r->fields_cap = cfg->max_contacts + OTHER_FIELDS;
    r->scratch_cap = cfg->max_contacts * CONTACT_ROOM(lim) + cfg->realm_len +
                     cfg->redirect_to_len + GB_DIGEST_MAX_NONCE + 1024;
    r->fields = calloc(r->fields_cap, sizeof(gb_field));
    r->scratch = malloc(r->scratch_cap);
    if (!r->strings || !r->dctx || !r->txns || !r->fields || !r->scratch ||
        (r->lock_sets && !r->locks) || (r->rate_sets && !r->rate) ||
        gb_index_reserve(&r->txn_ix, r->txn_slots, txn_ref_hash, r) < 0) {
        gb_registrar_free(r);
        *why = "out of memory (or OpenSSL digests unavailable)";
        return NULL;
    }
    char *cur = r->strings;
    keep_string(&cur, &r->cfg.server_id, cfg->server_id_len);
    keep_string(&cur, &r->cfg.realm, cfg->realm_len);
    keep_string(&cur, &r->cfg.shared_password, cfg->shared_password_len);
    keep_string(&cur, &r->cfg.gb_version, cfg->gb_version_len);
    keep_string(&cur, &r->cfg.fixed_nonce, cfg->fixed_nonce_len);
    keep_string(&cur, (const char **)&r->cfg.nonce_key, cfg->nonce_key_len);
    keep_string(&cur, &r->cfg.redirect_to, cfg->redirect_to_len);
    keep_string(&cur, &r->cfg.server_header, cfg->server_header_len);
    if (!r->cfg.realm) {
        /* GB/T 28181: the SIP domain is the first 10 digits of the server ID */
        r->cfg.realm = r->cfg.server_id;
        r->cfg.realm_len = 10;
    }
    if (!cfg->fixed_nonce) {
        gb_digest_nonce_config nc = {
            .key = r->cfg.nonce_key,
            .key_len = cfg->nonce_key_len,
            .lifetime_ms = (int64_t)(cfg->nonce_lifetime ? cfg->nonce_lifetime : 300) * 1000,
            .replay_slots = cfg->nonce_replay_slots,
            .encoding = GB_NONCE_HEX,
            /* without qop there is no nc: each nonce answers once, so a
             * sniffed answer cannot be sent again (issue 14) */
            .flags = GB_NONCE_SINGLE_USE,
        };
        r->nonces = gb_digest_nonces_new(&nc, why);
        if (!r->nonces) {
            gb_registrar_free(r);
            return NULL;
        }
    }
    r->prng = cfg->seed ^ 0x5851f42d4c957f2dull;
    gb_preq_config pc;
    gb_preq_config_default(&pc);
    if (cfg->max_requests)
        pc.max_requests = cfg->max_requests;
    if (cfg->request_t1_ms) {
        pc.t1_ms = cfg->request_t1_ms;
        pc.t2_ms = 8 * cfg->request_t1_ms;
        pc.timer_f_ms = 64 * cfg->request_t1_ms;
    }
    pc.seed = cfg->seed ^ 0x9e3779b97f4a7c15ull;
    memcpy(pc.hash_key, cfg->hash_key, sizeof(pc.hash_key));
    if (!(r->preq = gb_preq_new(&pc))) {
        gb_registrar_free(r);
        *why = "out of memory (platform requests)";
        return NULL;
    }
    return r;
}

static void binding_free(binding *b)
{
    for (unsigned i = 0; i < b->ncontacts; i++)
        free(b->contacts[i].uri);
    free(b->contacts);
    free(b->call_id);
    free(b->user_agent);
    free(b);
}

static void txn_clear(gb_registrar *r, txn *t)
{
    if (t->state == TXN_PENDING)
        r->pending_count--;
    free(t->response);
    free(t->request);
    t->response = t->request = NULL;
    t->state = TXN_EMPTY;
}

void gb_registrar_free(gb_registrar *r)
{
    if (!r)
        return;
    size_t cur = 0;
    for (binding *b; (b = id_next(&r->bindings, &cur));)
        binding_free(b);
    id_table_free(&r->bindings);
    cur = 0;
    for (secret_entry *e; (e = id_next(&r->secrets, &cur));) {
        free(e->secret);
        free(e);
    }
    id_table_free(&r->secrets);
    gb_heap_free(&r->heap);
    if (r->txns)
        for (size_t i = 0; i < r->txn_slots; i++)
            txn_clear(r, &r->txns[i]);
    free(r->txns);
    gb_index_free(&r->txn_ix);
    for (int k = 0; k < EVQ__COUNT; k++) {
        event_queue *q = &r->evq[k];
        for (size_t i = 0; i < q->count; i++)
            gb_reg_event_clear(&q->q[(q->head + i) % q->cap].ev);
        free(q->q);
    }
    free(r->locks);
    free(r->rate);
    free(r->mnodes);
    gb_digest_nonces_free(r->nonces);
    gb_digest_ctx_free(r->dctx);
    free(r->fields);
    free(r->scratch);
    free(r->strings);
    free(r->changes);
    gb_preq_free(r->preq);
    free(r);
}

/* ------------------------------------------------------------------ */
/* Secrets                                                             */

int gb_registrar_set_secret(gb_registrar *r, const char *id, size_t id_len,
                            const char *secret, size_t secret_len, int is_ha1)
{
    if (!id_len || id_len > GB_REG_MAX_ID)
        return -1;
    secret_entry *e = id_find(r, &r->secrets, id, id_len);
    char *copy = dup_bytes(secret, secret_len);
    if (!copy)
        return -1;
    if (e) {
        free(e->secret);
        e->secret = copy;
        e->len = (uint32_t)secret_len;
        e->is_ha1 = (uint8_t)!!is_ha1;
        return 0;
    }
    e = calloc(1, sizeof(*e));
    if (!e) {
        free(copy);
        return -1;
    }
    e->secret = copy;
    e->len = (uint32_t)secret_len;
    e->is_ha1 = (uint8_t)!!is_ha1;
    if (id_add(r, &r->secrets, &e->h, id, id_len) < 0) {
        free(copy);
        free(e);
        return -1;
    }
    return 0;
}

int gb_registrar_forget_secret(gb_registrar *r, const char *id, size_t id_len)
{
    secret_entry *e = id_find(r, &r->secrets, id, id_len);
    if (!e)
        return 0;
    id_remove(&r->secrets, &e->h);
    free(e->secret);
    free(e);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Events                                                              */

void gb_reg_event_clear(gb_reg_event *ev)
{
    free(ev->text);
    free(ev->extra);
    ev->text = ev->extra = NULL;
}

/* The queue of an event by its type: ones any sender can cause without
 * proving who it is go first, routine ones of proven senders next. */
static int event_queue_of(int type)
{
    switch (type) {
    case GB_REG_EV_AUTH_FAILED:
    case GB_REG_EV_REDIRECTED:
    case GB_REG_EV_LOCKED_OUT:
        return EVQ_OPEN;
    case GB_REG_EV_REJECTED: /* pushed by a proven sender's refusal */
    case GB_REG_EV_KEEPALIVE:
    case GB_REG_EV_MESSAGE:
    case GB_REG_EV_NOTIFY:
        return EVQ_PROVEN;
    default:
        return EVQ_STATE;
    }
}

static queued_event *queue_at(event_queue *q, size_t i)
{
    return &q->q[(q->head + i) % q->cap];
}

static void drop_oldest_event(gb_registrar *r, int k)
{
    event_queue *q = &r->evq[k];
    queued_event *e = queue_at(q, 0);
    r->st.event_bytes -= e->bytes;
    gb_reg_event_clear(&e->ev);
    q->head = (q->head + 1) % q->cap;
    q->count--;
    r->st.events_dropped++;
    if (k == EVQ_STATE)
        r->st.events_dropped_state++;
}

/* Room for one more event in queue k (doubling up to max_events). */
static int queue_room(gb_registrar *r, int k)
{
    event_queue *q = &r->evq[k];
    if (q->count < q->cap)
        return 0;
    size_t ncap = q->cap ? q->cap * 2 : 64;
    if (ncap > r->cfg.max_events)
        ncap = r->cfg.max_events;
    queued_event *nq = malloc(ncap * sizeof(*nq));
    if (!nq)
        return -1;
    for (size_t i = 0; i < q->count; i++)
        nq[i] = *queue_at(q, i);
    free(q->q);
    q->q = nq;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

/* Queue an event in queue k with copies of its texts (text and extra may
 * be NULL).  Bounded by max_events and max_event_bytes: room is made by
 * dropping the oldest event of the last non-empty queue from EVQ_OPEN down
 * to k (binding events go last, and only for binding events); when there
 * is none, this event is dropped.  Every loss is counted in
 * events_dropped.  Returns the event, or NULL. */
static gb_reg_event *push_event_in(gb_registrar *r, int k, int type, const char *id,
                                   size_t id_len, int64_t now, const char *text, size_t text_len,
                                   const char *extra, size_t extra_len)
{
    if (r->cfg.event_mask && type != GB_REG_EV_NEED_SECRET && !(r->cfg.event_mask & (1u << type)))
        return NULL;
    uint64_t bytes = sizeof(queued_event) + (text ? text_len : 0) + (extra ? extra_len : 0);
    for (;;) {
        size_t total = 0;
        for (int j = 0; j < EVQ__COUNT; j++)
            total += r->evq[j].count;
        if (total < r->cfg.max_events && r->st.event_bytes + bytes <= r->cfg.max_event_bytes)
            break;
        int victim = EVQ__COUNT - 1;
        while (victim >= k && !r->evq[victim].count)
            victim--;
        if (victim >= k) {
            drop_oldest_event(r, victim);
        } else {
            r->st.events_dropped++; /* this one: larger than the bound, or nothing to give way */
            r->st.events_dropped_state += k == EVQ_STATE;
            return NULL;
        }
    }
    if (queue_room(r, k) < 0) {
        r->st.events_dropped++;
        r->st.events_dropped_state += k == EVQ_STATE;
        return NULL;
    }
    event_queue *q = &r->evq[k];
    queued_event *qe = queue_at(q, q->count++);
    qe->seq = r->ev_seq++;
    qe->bytes = bytes;
    r->st.event_bytes += bytes;
    gb_reg_event *ev = &qe->ev;
    memset(ev, 0, sizeof(*ev));
    ev->type = (uint8_t)type;
    ev->time_ms = now;
    if (id_len > GB_REG_MAX_ID)
        id_len = GB_REG_MAX_ID;
    if (id_len)
        memcpy(ev->id, id, id_len);
    ev->id_len = (uint8_t)id_len;
    if (text && (ev->text = dup_bytes(text, text_len)))
        ev->text_len = (uint32_t)text_len;
    if (extra && (ev->extra = dup_bytes(extra, extra_len)))
        ev->extra_len = (uint32_t)extra_len;
    return ev;
}

static gb_reg_event *push_event_text(gb_registrar *r, int type, const char *id, size_t id_len,
                                     int64_t now, const char *text, size_t text_len,
                                     const char *extra, size_t extra_len)
{
    return push_event_in(r, event_queue_of(type), type, id, id_len, now, text, text_len, extra,
                         extra_len);
}

static gb_reg_event *push_event(gb_registrar *r, int type, const char *id, size_t id_len,
                                int64_t now)
{
    return push_event_text(r, type, id, id_len, now, NULL, 0, NULL, 0);
}

/* An event about a request whose sender proved nothing, within
 * peer_event_rate a second: a flood of garbage or refusals then costs the
 * application a bounded number of events (the counters see all of it). */
static gb_reg_event *push_peer_event(gb_registrar *r, int type, const char *id, size_t id_len,
                                     int64_t now)
{
    if (r->cfg.peer_event_rate) {
        if (now - r->peer_ev_second >= 1000 || now < r->peer_ev_second) {
            r->peer_ev_second = now;
            r->peer_ev_count = 0;
        }
        if (r->peer_ev_count >= r->cfg.peer_event_rate) {
            r->st.events_suppressed++;
            return NULL;
        }
        r->peer_ev_count++;
    }
    return push_event_in(r, EVQ_OPEN, type, id, id_len, now, NULL, 0, NULL, 0);
}

size_t gb_registrar_pop_events(gb_registrar *r, gb_reg_event *out, size_t max)
{
    size_t n = 0;
    while (n < max) {
        /* the oldest of the heads: one order, as they happened */
        event_queue *q = NULL;
        for (int k = 0; k < EVQ__COUNT; k++)
            if (r->evq[k].count && (!q || queue_at(&r->evq[k], 0)->seq < queue_at(q, 0)->seq))
                q = &r->evq[k];
        if (!q)
            break;
        queued_event *e = queue_at(q, 0);
        out[n++] = e->ev;
        r->st.event_bytes -= e->bytes;
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* The binding heap, ordered by each binding's next deadline.           */

static int64_t binding_deadline(const binding *b)
{
    int64_t d = NO_DEADLINE;
    for (unsigned i = 0; i < b->ncontacts; i++)
        if (b->contacts[i].expires_at < d)
            d = b->contacts[i].expires_at;
    if (online(b) && b->keepalive_deadline && b->keepalive_deadline < d)
        d = b->keepalive_deadline;
    return d;
}

static int64_t heap_key(const void *ctx, uint32_t ref)
{
    return binding_deadline(gb_slab_get(&((const gb_registrar *)ctx)->bindings.slab, ref));
}

static void heap_moved(void *ctx, uint32_t ref, uint32_t pos)
{
    ((binding *)gb_slab_get(&((gb_registrar *)ctx)->bindings.slab, ref))->heap_pos = pos;
}

/* The binding's deadline changed: restore its place. */
static void heap_fix(gb_registrar *r, binding *b)
{
    gb_heap_fix(&r->heap, b->heap_pos, heap_key, heap_moved, r);
}

static binding *heap_top(const gb_registrar *r)
{
    return r->heap.len ? gb_slab_get(&r->bindings.slab, r->heap.items[0]) : NULL;
}

static void binding_drop(gb_registrar *r, binding *b)
{
    gb_heap_remove(&r->heap, b->heap_pos, heap_key, heap_moved, r);
    id_remove(&r->bindings, &b->h);
    binding_free(b);
}

/* ------------------------------------------------------------------ */
/* Transactions: answers cached by (method, branch, sent-by).          */

/* The oldest transaction of a ring (count > 0): the first to expire. */
static txn *txn_oldest(const gb_registrar *r, int ring)
{
    const txn_ring *g = &r->rings[ring];
    return &r->txns[g->base + (g->head + g->cap - g->count) % g->cap];
}

/* Take t out of the index, if it is there (a failed resume did already). */
static void txn_index_remove(gb_registrar *r, txn *t)
{
    uint32_t ref = (uint32_t)(t - r->txns) + 1;
    uint32_t *slot = gb_index_slot(&r->txn_ix, t->hash, txn_ref_is, r, &ref);
    if (*slot)
        gb_index_remove_at(&r->txn_ix, slot, txn_ref_hash, r);
}

static void txn_drop_oldest(gb_registrar *r, int ring)
{
    txn *t = txn_oldest(r, ring);
    txn_index_remove(r, t);
    txn_clear(r, t);
    r->rings[ring].count--;
}

/* Key per RFC 3261 §17.2.3; 0 when the request cannot be matched that way. */
static size_t txn_key(const char *b, const gb_msg *m, char *key)
{
    int vi = gb_msg_find(m, GB_HDR_VIA, 0);
    if (vi < 0)
        return 0;
    gb_list_iter it;
    gb_span first;
    gb_via via;
    gb_list_begin(&it, b, m->headers[vi].value);
    if (gb_list_next(&it, &first, NULL) != 1 || gb_parse_via(b, first, &via, NULL) != GB_OK ||
        !via.has_branch || via.branch.len < 7 || memcmp(b + via.branch.off, "z9hG4bK", 7) != 0)
        return 0;
    size_t sb_len = (via.port >= 0 ? 6 : 0) + via.host.len;
    size_t need = m->method.len + 1 + via.branch.len + 1 + sb_len;
    if (need > TXN_KEY_MAX)
        return 0;
    size_t n = 0;
    memcpy(key + n, b + m->method.off, m->method.len);
    n += m->method.len;
    key[n++] = '|';
    memcpy(key + n, b + via.branch.off, via.branch.len);
    n += via.branch.len;
    key[n++] = '|';
    memcpy(key + n, b + via.host.off, via.host.len);
    n += via.host.len;
    if (via.port >= 0) {
        gb_writer w;
        gb_w_init(&w, key + n, 6);
        gb_w_bytes(&w, ":", 1);
        gb_w_uint(&w, (uint64_t)via.port);
        n += w.len;
    }
    return n;
}

static txn *txn_lookup(gb_registrar *r, const char *key, size_t len, uint64_t hash)
{
    txn_probe k = {key, len, hash};
    uint32_t ref = gb_index_find(&r->txn_ix, hash, txn_ref_eq, r, &k);
    return ref ? &r->txns[ref - 1] : NULL;
}

/* A new transaction in a ring; a full ring loses its oldest, counted. */
static txn *txn_insert(gb_registrar *r, int ring, const char *key, size_t len, uint64_t hash,
                       int64_t expires_at)
{
    txn_ring *g = &r->rings[ring];
    if (g->count == g->cap) {
        txn_drop_oldest(r, ring);
        r->st.transactions_evicted++;
        r->st.trusted_evicted += ring == RING_TRUSTED;
    }
    size_t slot = g->base + g->head;
    txn *t = &r->txns[slot];
    g->head = (g->head + 1) % g->cap;
    g->count++;
    memset(t, 0, sizeof(*t));
    t->ring = (uint8_t)ring;
    memcpy(t->key, key, len);
    t->key_len = (uint16_t)len;
    t->hash = hash;
    t->expires_at = expires_at;
    gb_index_add(&r->txn_ix, hash, (uint32_t)slot + 1);
    return t;
}

/* ------------------------------------------------------------------ */
/* Answers                                                             */

typedef struct {
    gb_registrar *r;
    const char *b;         /* the request */
    const gb_msg *m;
    const gb_peer *src;
    int64_t now;
    int64_t wall;
    gb_reg_reply *out;
    size_t nfields;        /* in r->fields */
    size_t scratch_len;    /* of r->scratch */
    int overflow;          /* a field did not fit: the answer is not sent as built */
    const char *id;        /* the device the request is about, once known */
    size_t id_len;
    int trusted;           /* the sender proved itself: credentials, or the
                              binding's own source (the answer's ring) */
    uint32_t sn;           /* a refused MANSCDP body's SN, for its event */
} req_ctx;

static void add_field(req_ctx *c, const char *name, const char *value, size_t len)
{
    if (c->nfields < c->r->fields_cap)
        c->r->fields[c->nfields++] = (gb_field){name, strlen(name), value, len};
    else
        c->overflow = 1;
}

/* Room at the end of the scratch space: start a writer there. */
static char *scratch_begin(req_ctx *c, gb_writer *w)
{
    char *p = c->r->scratch + c->scratch_len;
    gb_w_init(w, p, c->r->scratch_cap - c->scratch_len);
    return p;
}

static void scratch_end(req_ctx *c, gb_writer *w, const char *name)
{
    if (w->overflow) {
        c->overflow = 1;
        return;
    }
    add_field(c, name, c->r->scratch + c->scratch_len, w->len);
    c->scratch_len += w->len;
}

static gb_reg_status send_reply(req_ctx *c, unsigned status, const char *reason)
{
    gb_registrar *r = c->r;
    char tag[16];
    static const char hex[] = "0123456789abcdef";
    uint64_t v = gb_splitmix64(&r->prng);
    for (int i = 0; i < 10; i++, v >>= 4)
        tag[i] = hex[v & 15];
    char ip[64];
    size_t iplen = gb_peer_ip_text(c->src, ip, sizeof(ip));
    if (r->cfg.server_header)
        add_field(c, "Server", r->cfg.server_header, r->cfg.server_header_len);
    gb_reply_opts o = {
        .reason = reason,
        .reason_len = reason ? strlen(reason) : 0,
        .to_tag = tag,
        .to_tag_len = 10,
        .received = c->src->transport == GB_TRANSPORT_UDP && iplen ? ip : NULL,
        .received_len = iplen,
        .rport = c->src->port,
        .fields = r->fields,
        .nfields = c->nfields,
    };
    /* Over UDP an answer is one datagram: at most 65,507 bytes of payload
     * (IPv4), 65,527 (IPv6). */
    size_t cap = c->out->cap, udp_max = c->src->family == 6 ? 65527 : 65507;
    int udp_bound = c->src->transport == GB_TRANSPORT_UDP && cap > udp_max;
    if (udp_bound)
        cap = udp_max;
    gb_writer w;
    gb_w_init(&w, c->out->buf, cap);
    if (c->overflow || gb_build_reply(&w, c->b, c->m, status, &o) < 0) {
        /* Never a silent drop or a silently shortened answer: count it,
         * and say so in a bare 513 when the answer would not fit in a
         * datagram (the request's echoed headers made it so), a 500 when
         * the caller's buffer (below gb_registrar_reply_cap()) was short. */
        r->st.replies_too_large++;
        static const char too_large[] = "Response too large";
        static const char too_large_udp[] = "Response too large for UDP";
        unsigned fallback = udp_bound && !c->overflow ? 513 : 500;
        o.reason = fallback == 513 ? too_large_udp : too_large;
        o.reason_len = strlen(o.reason);
        o.nfields = 0;
        gb_w_init(&w, c->out->buf, cap);
        if (gb_build_reply(&w, c->b, c->m, fallback, &o) < 0) {
            r->st.drops[GB_REG_DROP_REPLY_TOO_LARGE]++;
            return GB_REG_DROPPED;
        }
    }
    c->out->len = w.len;
    c->out->dest = *c->src;
    r->st.answered++;
    return GB_REG_REPLY;
}

/* Counts a refusal and reports it (within peer_event_rate unless the
 * sender proved itself). */
static void rejected_event(req_ctx *c, unsigned status, const char *reason,
                           const char *id, size_t id_len)
{
    c->r->st.rejected++;
    gb_reg_event *ev = c->trusted ? push_event(c->r, GB_REG_EV_REJECTED, id, id_len, c->now)
                                  : push_peer_event(c->r, GB_REG_EV_REJECTED, id, id_len, c->now);
    if (ev) {
        ev->status = (uint16_t)status;
        ev->reason = reason;
        ev->source = *c->src;
        ev->sn = c->sn;
    }
}

static gb_reg_status reject(req_ctx *c, unsigned status, const char *reason,
                            const char *id, size_t id_len)
{
    rejected_event(c, status, reason, id, id_len);
    return send_reply(c, status, reason);
}

static void add_date(req_ctx *c)
{
    /* GB/T 28181 §9.10: local time as yyyy-MM-ddTHH:mm:ss.SSS */
    int64_t ms = c->wall;
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    int64_t rem = ms - days * 86400000;
    /* days since 1970-01-01 to civil date (H. Hinnant's algorithm) */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    gb_date d = {
        .day = (int)(doy - (153 * mp + 2) / 5 + 1),
        .month = (int)(mp < 10 ? mp + 3 : mp - 9),
        .hour = (int)(rem / 3600000),
        .minute = (int)(rem / 60000 % 60),
        .second = (int)(rem / 1000 % 60),
        .millisecond = (int)(rem % 1000),
    };
    d.year = (int)(yoe + era * 400 + (d.month <= 2));
    if (c->scratch_len + 23 > c->r->scratch_cap) {
        c->overflow = 1;
        return;
    }
    char *p = c->r->scratch + c->scratch_len;
    gb_format_gb_date(&d, p);
    c->scratch_len += 23;
    add_field(c, "Date", p, 23);
}

/* ------------------------------------------------------------------ */
/* REGISTER                                                            */

typedef struct {
    gb_registrar *r;
    int kind;              /* from resume(), or GB_SECRET_UNKNOWN */
    const char *secret;
    size_t secret_len;
    int have_override;
    int missing;           /* set when the lookup had nothing */
} lookup_state;

static int lookup_secret(void *arg, gb_bytes username, gb_bytes realm, int userhash,
                         gb_digest_secret *out)
{
    lookup_state *ls = arg;
    (void)realm;
    (void)userhash;
    out->kind = GB_SECRET_UNKNOWN;
    if (ls->have_override) {
        out->kind = ls->kind;
        out->value = (gb_bytes){ls->secret, ls->secret_len};
        return 0;
    }
    secret_entry *e = id_find(ls->r, &ls->r->secrets, username.p, username.n);
    if (e) {
        out->kind = e->is_ha1 ? GB_SECRET_HA1 : GB_SECRET_PASSWORD;
        out->value = (gb_bytes){e->secret, e->len};
        return 0;
    }
    if (ls->r->cfg.shared_password) {
        out->kind = GB_SECRET_PASSWORD;
        out->value = (gb_bytes){ls->r->cfg.shared_password, ls->r->cfg.shared_password_len};
        return 0;
    }
    ls->missing = 1;
    return 0;
}

static gb_reg_status challenge(req_ctx *c, int stale)
{
    gb_registrar *r = c->r;
    char nonce[GB_DIGEST_MAX_NONCE];
    long nlen;
    if (r->cfg.fixed_nonce) {
        memcpy(nonce, r->cfg.fixed_nonce, r->cfg.fixed_nonce_len);
        nlen = (long)r->cfg.fixed_nonce_len;
    } else {
        unsigned char bind[17];
        nlen = gb_digest_nonce_issue(r->nonces, c->now, nonce_binding(c->src, bind), nonce,
                                     sizeof(nonce));
        if (nlen < 0)
            return send_reply(c, 500, "Nonce generation failed");
    }
    gb_digest_challenge_out ch = {
        .realm = {r->cfg.realm, r->cfg.realm_len},
        .nonce = {nonce, (size_t)nlen},
        .alg = GB_DIGEST_MD5,
        .qop_mask = r->cfg.qop_auth ? GB_QOP_BIT(GB_QOP_AUTH) : 0,
        .stale = stale,
    };
    char *p = r->scratch + c->scratch_len;
    long n = gb_digest_build_challenge(p, r->scratch_cap - c->scratch_len, &ch);
    if (n < 0)
        return send_reply(c, 500, "Challenge too large");
    c->scratch_len += (size_t)n;
    add_field(c, "WWW-Authenticate", p, (size_t)n);
    r->st.challenges++;
    return send_reply(c, 401, NULL);
}

static int is_gb_id(const char *p, size_t n)
{
    if (n != 20)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

static void auth_failed(req_ctx *c, const char *id, size_t id_len, const char *why,
                        unsigned status)
{
    c->r->st.auth_failures++;
    gb_reg_event *ev = push_peer_event(c->r, GB_REG_EV_AUTH_FAILED, id, id_len, c->now);
    if (ev) {
        ev->reason = why;
        ev->status = (uint16_t)status;
        ev->source = *c->src;
    }
}

/* ------------------------------------------------------------------ */
/* Lockout (issue 12)                                                  */

/* The lockout key of a source, with a device ID (id_len > 0) or without:
 * id_len, family, the 8-byte prefix, the ID. */
static size_t lock_key(const gb_peer *src, const char *id, size_t id_len,
                       unsigned char key[10 + GB_REG_MAX_ID])
{
    memset(key, 0, 10);
    key[0] = (unsigned char)id_len;
    key[1] = src->family;
    memcpy(key + 2, src->ip, src->family == 6 ? 8 : 4);
    if (id_len)
        memcpy(key + 10, id, id_len);
    return 10 + id_len;
}

/* The slot of a key, or NULL.  With `make`, a free slot is taken for it:
 * one never used, or one whose window and lock are over, or the unlocked
 * one with the fewest failures; NULL (counted) when all four are live
 * locks of other keys. */
static lock_slot *lock_find(gb_registrar *r, const gb_peer *src, const char *id, size_t id_len,
                            int64_t now, int make)
{
    if (!r->locks || id_len > GB_REG_MAX_ID)
        return NULL;
    unsigned char key[10 + GB_REG_MAX_ID];
    size_t n = lock_key(src, id, id_len, key);
    uint64_t h = gb_siphash(&r->hkey, key, n);
    lock_slot *set = &r->locks[(h % r->lock_sets) * LOCK_WAYS];
    lock_slot *idle = NULL, *weakest = NULL;
    for (int w = 0; w < LOCK_WAYS; w++) {
        lock_slot *s = &set[w];
        if (s->family && s->hash == h && s->family == key[1] && s->id_len == id_len &&
            memcmp(s->prefix, key + 2, 8) == 0 && memcmp(s->id, key + 10, id_len) == 0)
            return s;
        if (s->locked_until > now)
            continue; /* a live lock is never given away */
        if (!s->family || now - s->window_start >= r->cfg.lockout_window_ms) {
            if (!idle)
                idle = s;
        } else if (!weakest || s->failures < weakest->failures) {
            weakest = s;
        }
    }
    lock_slot *spare = idle ? idle : weakest;
    if (!make)
        return NULL;
    if (!spare) {
        r->st.lockout_untracked++;
        return NULL;
    }
    memset(spare, 0, sizeof(*spare));
    spare->hash = h;
    spare->family = key[1];
    spare->id_len = (uint8_t)id_len;
    memcpy(spare->prefix, key + 2, 8);
    memcpy(spare->id, key + 10, id_len);
    spare->window_start = now;
    return spare;
}

static int lock_live(const lock_slot *s, int64_t now)
{
    return s && s->locked_until > now;
}

/* Refused by a lockout: the device from this address, or the address for
 * every device.  A request from the device's binding's own source is never
 * refused here (it is verified, and a wrong answer is still a failure):
 * someone else's failures cannot lock a working device out (issue 12). */
static int locked_out(gb_registrar *r, const gb_peer *src, const char *id, size_t id_len,
                      const binding *bd, int64_t now)
{
    if (!r->locks || (bd && same_source(&bd->source, src)))
        return 0;
    return lock_live(lock_find(r, src, id, id_len, now, 0), now) ||
           lock_live(lock_find(r, src, NULL, 0, now, 0), now);
}

/* Count one failure against a key; at the limit the key is locked. */
static void lock_count(req_ctx *c, const char *id, size_t id_len, uint32_t limit)
{
    gb_registrar *r = c->r;
    if (!limit)
        return;
    lock_slot *s = lock_find(r, c->src, id, id_len, c->now, 1);
    if (!s || lock_live(s, c->now))
        return;
    if (c->now - s->window_start >= r->cfg.lockout_window_ms) {
        s->window_start = c->now;
        s->failures = 0;
    }
    if (++s->failures < limit)
        return;
    s->locked_until = c->now + r->cfg.lockout_ms;
    r->st.lockouts++;
    gb_reg_event *ev = push_event(r, GB_REG_EV_LOCKED_OUT, id, id_len, c->now);
    if (ev) {
        ev->status = 403;
        ev->expires = (r->cfg.lockout_ms + 999) / 1000;
        ev->sn = s->failures;
        ev->source = *c->src;
        ev->reason = id_len ? "too many failed answers for this device from this address"
                            : "too many failed answers from this address";
    }
}

/* A wrong answer (or an unknown device: then only the address counts). */
static void lock_failure(req_ctx *c, const char *id, size_t id_len)
{
    if (!c->r->locks)
        return;
    if (id_len)
        lock_count(c, id, id_len, c->r->cfg.lockout_failures);
    lock_count(c, NULL, 0, c->r->cfg.lockout_source_failures);
}

/* A right answer starts the device's count at this address again (not
 * the address's: one good device must not hide guesses at others). */
static void lock_success(req_ctx *c, const char *id, size_t id_len)
{
    lock_slot *s = lock_find(c->r, c->src, id, id_len, c->now, 0);
    if (s && !lock_live(s, c->now))
        s->failures = 0;
}

typedef struct {
    gb_span uri;
    int64_t expires;       /* requested, before clamping */
} want_contact;

#define MAX_WANTED 64

static int contact_set(binding *b, const char *b_uri, size_t len, int64_t expires_at,
                       uint32_t max)
{
    for (unsigned i = 0; i < b->ncontacts; i++)
        if (b->contacts[i].uri_len == len && memcmp(b->contacts[i].uri, b_uri, len) == 0) {
            b->contacts[i].expires_at = expires_at;
            return 0;
        }
    if (b->ncontacts >= max)
        return -2;
    reg_contact *nc = realloc(b->contacts, (b->ncontacts + 1) * sizeof(*nc));
    if (!nc)
        return -1;
    b->contacts = nc;
    char *u = dup_bytes(b_uri, len);
    if (!u)
        return -1;
    nc[b->ncontacts++] = (reg_contact){u, (uint32_t)len, expires_at};
    return 0;
}

static void contact_remove(binding *b, const char *uri, size_t len)
{
    for (unsigned i = 0; i < b->ncontacts; i++)
        if (b->contacts[i].uri_len == len && memcmp(b->contacts[i].uri, uri, len) == 0) {
            free(b->contacts[i].uri);
            b->contacts[i] = b->contacts[--b->ncontacts];
            return;
        }
}

static int store_text(char **dst, uint32_t *dlen, const char *p, size_t n)
{
    if (*dst && *dlen == n && memcmp(*dst, p, n) == 0)
        return 0;
    char *d = dup_bytes(p, n);
    if (!d)
        return -1;
    free(*dst);
    *dst = d;
    *dlen = (uint32_t)n;
    return 0;
}

static void add_contact_fields(req_ctx *c, const binding *b)
{
    for (unsigned i = 0; b && i < b->ncontacts; i++) {
        gb_writer w;
        scratch_begin(c, &w);
        gb_w_bytes(&w, "<", 1);
        gb_w_bytes(&w, b->contacts[i].uri, b->contacts[i].uri_len);
        gb_w_cstr(&w, ">;expires=");
        int64_t left = (b->contacts[i].expires_at - c->now + 999) / 1000;
        gb_w_uint(&w, (uint64_t)(left > 0 ? left : 0));
        scratch_end(c, &w, "Contact");
    }
}

/* A REGISTER on its way through RFC 3261 §10.3, filled in step by step. */
typedef struct {
    const char *id;        /* the device: To's user part */
    size_t id_len;
    binding *bd;           /* its binding, if any */
    const gb_header *cid;  /* Call-ID */
    int same_call;         /* the binding's Call-ID */
    int created;           /* apply_binding made the binding */
    int was_online;
    uint32_t granted;      /* lifetime of the first live contact */
    want_contact want[MAX_WANTED];
    size_t nwant;
    int wildcard;          /* Contact: * */
    int uncredentialed;    /* let on by the trusted refresh policy */
} reg_job;

/* A step that answered returns the status; one that did not, GO_ON. */
#define GO_ON ((gb_reg_status)-1)

/* Step 1, identify: the device is the user part of To (GB/T 28181
 * §9.1.2.1), a GB ID under the strict policy (Appendix D); a redirect
 * server answers every device 302 here (2022 edition §9.1.2.3). */
static gb_reg_status identify(req_ctx *c, reg_job *j)
{
    gb_registrar *r = c->r;
    const char *b = c->b;
    const gb_msg *m = c->m;
    const gb_header *to = &m->headers[m->first[GB_HDR_TO] - 1];
    gb_name_addr na;
    gb_uri tu;
    if (gb_parse_name_addr(b, to->value, 0, &na, NULL) != GB_OK ||
        gb_parse_uri(b, na.uri, &tu, NULL) != GB_OK)
        return reject(c, 400, "Malformed To header", NULL, 0);
    if (!tu.has_user || !tu.user.len)
        return reject(c, 400, "To URI has no device ID", NULL, 0);
    j->id = b + tu.user.off;
    j->id_len = tu.user.len;
    if (j->id_len > GB_REG_MAX_ID)
        return reject(c, 400, "Device ID too long", NULL, 0);
    if (r->cfg.id_policy == GB_IDS_STRICT && !is_gb_id(j->id, j->id_len))
        return reject(c, 400, "Device ID is not 20 digits (GB/T 28181 Appendix D)", j->id,
                      j->id_len);
    c->id = j->id;
    c->id_len = j->id_len;
    if (r->cfg.redirect_to) {
        gb_writer w;
        scratch_begin(c, &w);
        gb_w_bytes(&w, "<", 1);
        gb_w_bytes(&w, r->cfg.redirect_to, r->cfg.redirect_to_len);
        gb_w_bytes(&w, ">", 1);
        scratch_end(c, &w, "Contact");
        gb_reg_event *ev = push_event_text(r, GB_REG_EV_REDIRECTED, j->id, j->id_len, c->now,
                                           r->cfg.redirect_to, r->cfg.redirect_to_len, NULL, 0);
        if (ev) {
            ev->source = *c->src;
            ev->status = 302;
        }
        return send_reply(c, 302, NULL);
    }
    j->bd = id_find(r, &r->bindings, j->id, j->id_len);
    j->cid = &m->headers[m->first[GB_HDR_CALL_ID] - 1];
    j->same_call = j->bd && j->bd->call_id_len == j->cid->value.len &&
                   memcmp(j->bd->call_id, b + j->cid->value.off, j->cid->value.len) == 0;
    return GO_ON;
}

/* The binding holds this contact URI. */
static int has_contact(const binding *bd, const char *uri, size_t len)
{
    for (unsigned k = 0; k < bd->ncontacts; k++)
        if (bd->contacts[k].uri_len == len && memcmp(bd->contacts[k].uri, uri, len) == 0)
            return 1;
    return 0;
}

/* The REGISTER names this contact URI. */
static int wanted(const char *b, const reg_job *j, const char *uri, size_t len)
{
    for (size_t i = 0; i < j->nwant; i++)
        if (j->want[i].uri.len == len && memcmp(b + j->want[i].uri.off, uri, len) == 0)
            return 1;
    return 0;
}

/* Digest credentials of a request about device c->id (RFC 3261 §22,
 * RFC 7616): the first Digest Authorization decides; a GB 35114
 * capability hint is no credential.  GO_ON with *authed 1 when they are
 * right for this device, 0 when there are none.  Otherwise the answer is
 * sent: 403 to a locked-out sender, to a wrong answer, to credentials of
 * another device or of an unknown one; 401 to credentials that do not
 * answer a challenge of ours to this address (a nonce issued elsewhere or
 * used already, a qop downgrade, another realm...); 401 stale=true to a
 * right answer to an old nonce; PENDING while the caller looks the
 * device's secret up. */
static gb_reg_status check_credentials(req_ctx *c, const binding *bd, lookup_state *ls,
                                       uint64_t *pending_out, int *authed)
{
    gb_registrar *r = c->r;
    const char *b = c->b;
    const gb_msg *m = c->m;
    const char *id = c->id;
    size_t id_len = c->id_len;
    *authed = 0;
    if (locked_out(r, c->src, id, id_len, bd, c->now)) {
        r->st.locked_out++;
        return reject(c, 403, "Forbidden (locked out after failed attempts)", id, id_len);
    }
    unsigned char bind[17];
    for (int i = gb_msg_find(m, GB_HDR_AUTHORIZATION, 0); i >= 0;
         i = gb_msg_next(m, GB_HDR_AUTHORIZATION, i)) {
        gb_digest_check chk = {
            .method = {b + m->method.off, m->method.len},
            .request_uri = {b + m->uri.off, m->uri.len},
            .body = {b + m->body.off, m->body.len},
            .realm = {r->cfg.realm, r->cfg.realm_len},
            .binding = nonce_binding(c->src, bind),
            .now_ms = c->now,
            .allowed_algs = 0,
            /* qop offered: an answer without it is a downgrade */
            .allowed_qops = r->cfg.qop_auth && r->cfg.require_qop
                                ? GB_QOP_BIT(GB_QOP_AUTH) | GB_QOP_BIT(GB_QOP_AUTH_INT)
                                : 0,
            .uri_policy = r->cfg.uri_policy,
        };
        gb_digest_verdict v;
        gb_digest_result res = gb_digest_verify(r->dctx, r->nonces, b, m->headers[i].value,
                                                &chk, lookup_secret, ls, &v);
        if (res == GB_DIGEST_NOT_DIGEST || res == GB_DIGEST_CAPABILITY_HINT)
            continue;
        if (res == GB_DIGEST_MALFORMED) {
            auth_failed(c, id, id_len, v.detail ? v.detail : "malformed credentials", 400);
            return reject(c, 400, v.detail ? v.detail : "Malformed Authorization", id, id_len);
        }
        if (r->cfg.fixed_nonce && res != GB_DIGEST_UNKNOWN_USER &&
            !(v.cred.nonce.value.len == r->cfg.fixed_nonce_len &&
              memcmp(b + v.cred.nonce.value.off, r->cfg.fixed_nonce, r->cfg.fixed_nonce_len) == 0))
            res = GB_DIGEST_FORGED_NONCE;
        /* Credentials for another device are refused whatever else they
         * say, so the answer tells no guesser whether they were right. */
        if (!(v.cred.username.value.len == id_len &&
              memcmp(b + v.cred.username.value.off, id, id_len) == 0)) {
            lock_failure(c, id, id_len);
            auth_failed(c, id, id_len, "credentials name another user", 403);
            return send_reply(c, 403, "Forbidden (credentials name another device)");
        }
        switch (res) {
        case GB_DIGEST_OK:
            lock_success(c, id, id_len);
            c->trusted = 1;
            *authed = 1;
            return GO_ON;
        case GB_DIGEST_UNKNOWN_USER:
            if (ls->missing && r->cfg.ask_for_secrets && !ls->have_override) {
                *pending_out = 1;
                return GB_REG_PENDING;
            }
            lock_failure(c, NULL, 0);
            auth_failed(c, id, id_len, "unknown device", 403);
            return send_reply(c, 403, "Forbidden (unknown device)");
        case GB_DIGEST_WRONG_RESPONSE:
            lock_failure(c, id, id_len);
            auth_failed(c, id, id_len, "wrong password", 403);
            return send_reply(c, 403, NULL);
        case GB_DIGEST_URI_MISMATCH:
            auth_failed(c, id, id_len, "digest uri does not name this server", 403);
            return send_reply(c, 403, "Forbidden (digest uri mismatch)");
        case GB_DIGEST_STALE_NONCE:
            return challenge(c, 1);
        case GB_DIGEST_REPLAYED_NC:
            if (v.cred.qop_v != GB_QOP_NONE)
                break;
            /* a right answer to a nonce answered once already (no qop, so
             * single use): many devices send their last credentials again
             * on a refresh; stale=true has them answer a new nonce without
             * calling it a failure (as Asterisk does).  A replay gets no
             * further: the new nonce needs the password. */
            r->st.nonces_reused++;
            return challenge(c, 1);
        case GB_DIGEST_INTERNAL:
            return send_reply(c, 500, "Authentication failed internally");
        case GB_DIGEST_FORGED_NONCE:
            /* not ours, or issued to another address: an answer sniffed
             * elsewhere.  No stale=true, which would say it was right. */
            auth_failed(c, id, id_len, "nonce not issued to this address", 401);
            return challenge(c, 0);
        default:
            break;
        }
        /* realm, algorithm, qop (a downgrade), opaque, a replayed nc:
         * credentials that do not answer our challenge. */
        auth_failed(c, id, id_len, v.detail ? v.detail : gb_digest_result_text(res), 401);
        return challenge(c, 0);
    }
    return GO_ON;
}

/* Step 2, authenticate (§10.3 step 3): valid credentials, or none under
 * the trusted refresh policy from the binding's own source (refresh_only()
 * then limits what it may do), or a challenge. */
static gb_reg_status authenticate(req_ctx *c, reg_job *j, lookup_state *ls,
                                  uint64_t *pending_out)
{
    gb_registrar *r = c->r;
    int authed;
    gb_reg_status st = check_credentials(c, j->bd, ls, pending_out, &authed);
    if (st != GO_ON || authed)
        return st;
    if (r->cfg.refresh_policy == GB_REFRESH_TRUST_CALL_ID && j->bd && j->same_call &&
        c->m->cseq > j->bd->cseq && same_source(&j->bd->source, c->src)) {
        j->uncredentialed = 1;
        c->trusted = 1;
        return GO_ON;
    }
    return challenge(c, 0);
}

/* What a refresh without credentials may do (Refresh.TRUST_CALL_ID):
 * renew contacts the binding already has, or ask for them.  Adding,
 * replacing or removing a contact needs credentials: a spoofed datagram
 * from the device's address must not redirect or drop it. */
static int refresh_only(const req_ctx *c, const reg_job *j)
{
    if (j->wildcard)
        return 0;
    for (size_t i = 0; i < j->nwant; i++) {
        const want_contact *w = &j->want[i];
        if (w->expires == 0 || !has_contact(j->bd, c->b + w->uri.off, w->uri.len))
            return 0;
    }
    return 1;
}

/* Contact URI bytes the binding would hold after this REGISTER: the ones
 * it keeps and the live ones asked for (max_contact_bytes). */
static size_t contact_bytes_after(const req_ctx *c, const reg_job *j)
{
    size_t total = 0;
    if (j->bd && j->same_call && !j->wildcard)
        for (unsigned k = 0; k < j->bd->ncontacts; k++)
            if (!wanted(c->b, j, j->bd->contacts[k].uri, j->bd->contacts[k].uri_len))
                total += j->bd->contacts[k].uri_len;
    for (size_t i = 0; i < j->nwant; i++)
        total += j->want[i].expires > 0 ? j->want[i].uri.len : 0;
    return total;
}

/* Step 3, order (§10.3 step 7): on the binding's Call-ID the CSeq grows;
 * then the contacts and lifetimes asked for (steps 6 and 8), 423 below
 * Min-Expires. */
static gb_reg_status order(req_ctx *c, reg_job *j)
{
    gb_registrar *r = c->r;
    const char *b = c->b;
    const gb_msg *m = c->m;
    const char *id = j->id;
    size_t id_len = j->id_len;
    if (j->bd && j->same_call && m->cseq <= j->bd->cseq)
        return reject(c, 500, "Out-of-order CSeq for this Call-ID", id, id_len);
    /* bounded bytes per binding (issue 14): a well-formed request the
     * registrar declines to keep is refused, RFC 3261 §21.4.4 */
    if (j->cid->value.len > GB_REG_MAX_CALL_ID)
        return reject(c, 403, "Call-ID longer than 256 bytes", id, id_len);
    for (int i = gb_msg_find(m, GB_HDR_CONTACT, 0); i >= 0; i = gb_msg_next(m, GB_HDR_CONTACT, i)) {
        gb_list_iter it;
        gb_span item;
        int rc;
        gb_list_begin(&it, b, m->headers[i].value);
        while ((rc = gb_list_next(&it, &item, NULL)) == 1) {
            gb_name_addr ca;
            if (gb_parse_name_addr(b, item, 1, &ca, NULL) != GB_OK)
                return reject(c, 400, "Malformed Contact header", id, id_len);
            if (ca.wildcard) {
                j->wildcard = 1;
                continue;
            }
            if (j->nwant == MAX_WANTED || j->nwant >= r->cfg.max_contacts)
                return reject(c, 403, "Too many Contact addresses", id, id_len);
            int64_t e = m->expires >= 0 ? m->expires : r->cfg.default_expires;
            gb_param p;
            if (gb_params_find(b, ca.params, ';', "expires", 7, &p) && p.has_value) {
                uint64_t v;
                if (gb_parse_uint(b + p.value.off, p.value.len, 0xffffffffu, &v) < 0)
                    return reject(c, 400, "Malformed Contact expires", id, id_len);
                e = (int64_t)v;
            }
            j->want[j->nwant++] = (want_contact){ca.uri, e};
        }
        if (rc < 0)
            return reject(c, 400, "Malformed Contact list", id, id_len);
    }
    if (j->wildcard && (j->nwant || m->expires != 0))
        return reject(c, 400, "Contact: * needs Expires: 0 and no other Contact", id, id_len);
    if (contact_bytes_after(c, j) > r->cfg.max_contact_bytes)
        return reject(c, 403, "Contact addresses too long (max_contact_bytes)", id, id_len);
    for (size_t i = 0; i < j->nwant; i++)
        if (j->want[i].expires > 0 && j->want[i].expires < r->cfg.min_expires) {
            gb_writer w;
            scratch_begin(c, &w);
            gb_w_uint(&w, r->cfg.min_expires);
            scratch_end(c, &w, "Min-Expires");
            rejected_event(c, 423, "expires below Min-Expires", id, id_len);
            return send_reply(c, 423, NULL);
        }
    return GO_ON;
}

/* Step 4, apply the binding (§10.3 step 8): create it for a first live
 * contact, drop the old contacts on Contact: * or a new Call-ID, set or
 * remove each contact asked for, remember Call-ID, CSeq, source and
 * User-Agent. */
static gb_reg_status apply_binding(req_ctx *c, reg_job *j)
{
    gb_registrar *r = c->r;
    const char *b = c->b;
    const gb_msg *m = c->m;
    if (!j->bd && !j->wildcard) {
        int any_live = 0;
        for (size_t i = 0; i < j->nwant; i++)
            any_live |= j->want[i].expires > 0;
        if (any_live) {
            if (r->bindings.ix.count >= r->cfg.max_bindings)
                return reject(c, 503, "Registrar full (max_bindings)", j->id, j->id_len);
            binding *bd = calloc(1, sizeof(*bd));
            if (!bd || gb_heap_reserve(&r->heap, (size_t)r->heap.len + 1) < 0 ||
                id_add(r, &r->bindings, &bd->h, j->id, j->id_len) < 0) {
                free(bd);
                return send_reply(c, 500, "Out of memory");
            }
            bd->registered_at = c->now;
            gb_heap_push(&r->heap, bd->h.ref, heap_key, heap_moved, r);
            j->bd = bd;
            j->created = 1;
        }
    }
    binding *bd = j->bd;
    if (!bd)
        return GO_ON;
    if (j->wildcard || !j->same_call) {
        /* Contact: *, or a restarted device on a new Call-ID (RFC 3261
         * §10.3 step 7): its old contacts go. */
        while (bd->ncontacts)
            contact_remove(bd, bd->contacts[0].uri, bd->contacts[0].uri_len);
    }
    for (size_t i = 0; i < j->nwant; i++) {
        const want_contact *w = &j->want[i];
        const char *u = b + w->uri.off;
        if (w->expires == 0) {
            contact_remove(bd, u, w->uri.len);
            continue;
        }
        int64_t e = w->expires > r->cfg.max_expires ? r->cfg.max_expires : w->expires;
        if (i == 0 || !j->granted)
            j->granted = (uint32_t)e;
        int rc = contact_set(bd, u, w->uri.len, c->now + e * 1000, r->cfg.max_contacts);
        if (rc < 0) {
            if (j->created) { /* never registered: no binding after all */
                binding_drop(r, bd);
                j->bd = NULL;
            }
            return rc == -2 ? reject(c, 403, "Too many Contact addresses", j->id, j->id_len)
                            : send_reply(c, 500, "Out of memory");
        }
    }
    store_text(&bd->call_id, &bd->call_id_len, b + j->cid->value.off, j->cid->value.len);
    bd->cseq = m->cseq;
    bd->source = *c->src;
    int ua = m->first[GB_HDR_USER_AGENT];
    if (ua) {
        /* informational only (RFC 3261 §20.41): kept shortened */
        size_t n = m->headers[ua - 1].value.len;
        if (n > GB_REG_MAX_USER_AGENT) {
            n = GB_REG_MAX_USER_AGENT;
            r->st.user_agents_cut++;
        }
        store_text(&bd->user_agent, &bd->ua_len, b + m->headers[ua - 1].value.off, n);
    }
    return GO_ON;
}

static void add_expires(req_ctx *c, uint32_t seconds)
{
    gb_writer w;
    scratch_begin(c, &w);
    gb_w_uint(&w, seconds);
    scratch_end(c, &w, "Expires");
}

/* Step 5, reply: 200 with every contact and its remaining lifetime, the
 * granted Expires, the GB Date (§9.10) and X-GB-Ver; the binding online
 * with a fresh keepalive deadline (§9.6.1) and the events that say what
 * happened.  Without contacts left, the binding is gone: Expires: 0. */
static gb_reg_status reply_register(req_ctx *c, reg_job *j)
{
    gb_registrar *r = c->r;
    binding *bd = j->bd;
    if (!bd || !bd->ncontacts) {
        if (bd) {
            r->st.unregistrations++;
            gb_reg_event *ev = push_event(r, GB_REG_EV_UNREGISTERED, j->id, j->id_len, c->now);
            if (ev)
                ev->source = *c->src;
            set_state(r, bd, GB_BIND_UNREGISTERED);
            binding_drop(r, bd);
        }
        add_date(c);
        add_expires(c, 0);
    } else {
        int was_online = online(bd);
        set_state(r, bd, GB_BIND_REGISTERED);
        if (r->cfg.keepalive_interval_ms && r->cfg.keepalive_timeout_count &&
            (!was_online || j->created))
            bd->keepalive_deadline = c->now + (int64_t)r->cfg.keepalive_interval_ms *
                                                  r->cfg.keepalive_timeout_count;
        heap_fix(r, bd);
        if (j->created)
            r->st.registrations++;
        else
            r->st.refreshes++;
        gb_reg_event *ev = push_event_text(
            r, j->created ? GB_REG_EV_REGISTERED : GB_REG_EV_REFRESHED, j->id, j->id_len, c->now,
            bd->contacts[0].uri, bd->contacts[0].uri_len, bd->user_agent, bd->ua_len);
        if (ev) {
            ev->expires = j->granted;
            ev->source = *c->src;
        }
        if (!j->created && !was_online) {
            ev = push_event(r, GB_REG_EV_ONLINE, j->id, j->id_len, c->now);
            if (ev)
                ev->source = *c->src;
        }
        add_contact_fields(c, bd);
        add_expires(c, j->granted);
        add_date(c);
    }
    if (r->cfg.gb_version)
        add_field(c, "X-GB-Ver", r->cfg.gb_version, r->cfg.gb_version_len);
    return send_reply(c, 200, NULL);
}

static gb_reg_status do_register(req_ctx *c, lookup_state *ls, uint64_t *pending_out)
{
    reg_job j = {0};
    gb_reg_status st;
    if ((st = identify(c, &j)) != GO_ON || (st = authenticate(c, &j, ls, pending_out)) != GO_ON ||
        (st = order(c, &j)) != GO_ON)
        return st;
    if (j.uncredentialed && !refresh_only(c, &j)) {
        c->trusted = 0;
        return challenge(c, 0);
    }
    if (!j.nwant && !j.wildcard) {
        /* a query (§10.3 step 8): the current bindings, nothing changes */
        add_contact_fields(c, j.bd);
        add_date(c);
        return send_reply(c, 200, NULL);
    }
    if ((st = apply_binding(c, &j)) != GO_ON)
        return st;
    return reply_register(c, &j);
}

/* ------------------------------------------------------------------ */
/* MESSAGE (GB/T 28181 §9.6 keepalive and other MANSCDP notifications) */

/* The text between <tag> and </tag> in an XML body, or {0,0}. */
static gb_span xml_text(const char *b, gb_span body, const char *tag)
{
    size_t tl = strlen(tag);
    const char *p = b + body.off, *end = p + body.len;
    gb_span none = {0, 0};
    while (p + tl + 2 <= end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (!lt || lt + tl + 2 > end)
            return none;
        if (gb_ieq(lt + 1, tl, tag, tl) && lt[tl + 1] == '>') {
            const char *s = lt + tl + 2;
            const char *e = memchr(s, '<', (size_t)(end - s));
            if (!e)
                return none;
            while (s < e && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
                s++;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
                e--;
            gb_span out = {(uint32_t)(s - b), (uint32_t)(e - s)};
            return out;
        }
        p = lt + 1;
    }
    return none;
}

static int is_manscdp(const char *b, const gb_msg *m)
{
    int i = m->first[GB_HDR_CONTENT_TYPE];
    if (!i)
        return 0;
    const gb_header *h = &m->headers[i - 1];
    const char *v = b + h->value.off;
    size_t n = h->value.len, k = 0;
    while (k < n && v[k] != ';' && v[k] != ' ' && v[k] != '\t')
        k++;
    return gb_ieq(v, k, "application/manscdp+xml", 23);
}

/* The device ID of a MESSAGE or NOTIFY: the From URI's user part (cut to
 * GB_REG_MAX_ID); 0 when From does not parse or has no user. */
static int from_user(const char *b, const gb_msg *m, const char **id, size_t *id_len)
{
    const gb_header *from = &m->headers[m->first[GB_HDR_FROM] - 1];
    gb_name_addr na;
    gb_uri fu;
    if (gb_parse_name_addr(b, from->value, 0, &na, NULL) != GB_OK ||
        gb_parse_uri(b, na.uri, &fu, NULL) != GB_OK || !fu.has_user)
        return 0;
    *id = b + fu.user.off;
    *id_len = fu.user.len > GB_REG_MAX_ID ? GB_REG_MAX_ID : fu.user.len;
    return 1;
}

/* GB/T 28181 §9.6.1 keepalives and other MANSCDP MESSAGEs.  A MESSAGE
 * counts for a device when it carries the device's valid credentials or
 * comes from its binding's own source; anything else touches no binding,
 * flips no online state and queues no body (issue 14): 403 when the device
 * is not registered, and from a foreign address 403 or, by policy, a
 * challenge whose valid answer moves the binding there. */
static gb_reg_status do_message(req_ctx *c, lookup_state *ls, uint64_t *pending_out)
{
    gb_registrar *r = c->r;
    const char *b = c->b;
    const gb_msg *m = c->m;
    if (!is_manscdp(b, m)) {
        add_field(c, "Accept", "Application/MANSCDP+xml", 23);
        return reject(c, 415, "Unsupported Media Type (expected Application/MANSCDP+xml)", NULL, 0);
    }
    const char *id;
    size_t id_len;
    if (!from_user(b, m, &id, &id_len))
        return reject(c, 400, "Malformed From header", NULL, 0);
    c->id = id;
    c->id_len = id_len;
    gb_span cmd = xml_text(b, m->body, "CmdType");
    int keepalive = gb_ieq(b + cmd.off, cmd.len, "Keepalive", 9);
    binding *bd = id_find(r, &r->bindings, id, id_len);
    int authed;
    gb_reg_status st = check_credentials(c, bd, ls, pending_out, &authed);
    if (st != GO_ON)
        return st;
    int own = bd && same_source(&bd->source, c->src);
    if (!authed && !own) {
        if (!bd)
            return reject(c, 403, "Forbidden (device not registered)", id, id_len);
        r->st.keepalives_refused++;
        if (r->cfg.keepalive_policy == GB_KEEPALIVE_CHALLENGE)
            return challenge(c, 0);
        return reject(c, 403, "Forbidden (not the registered address)", id, id_len);
    }
    c->trusted = 1;
    /* GB/T 28181 Annex A: the body must be a MANSCDP document naming its
     * command, SN and device, as the camera side requires of the platform;
     * the field's quirks are tolerated (manscdp_lenient). */
    if (!r->mnodes && !(r->mnodes = malloc(GB_MANSCDP_DEFAULT_MAX_NODES * sizeof(gb_manscdp_node))))
        return reject(c, 500, "Server out of memory", id, id_len);
    gb_manscdp_doc doc;
    gb_manscdp_init(&doc, r->mnodes, GB_MANSCDP_DEFAULT_MAX_NODES);
    gb_manscdp_limits mlim;
    gb_manscdp_limits_default(&mlim);
    mlim.lenient = r->cfg.manscdp_lenient;
    gb_manscdp_error merr;
    if (gb_manscdp_parse(b + m->body.off, m->body.len, &mlim, &doc, &merr) != GB_MANSCDP_OK) {
        r->st.messages_malformed++;
        /* its SN where one can be read, so that a pending query whose
         * part this was can say so (Python's Platform) */
        gb_span sn = xml_text(b, m->body, "SN");
        uint64_t v = 0;
        if (sn.len && gb_parse_uint(b + sn.off, sn.len, 0xffffffffu, &v) == 0)
            c->sn = (uint32_t)v;
        return reject(c, merr.status, merr.reason, id, id_len);
    }
    if (!keepalive) {
        gb_reg_event *ev = push_event_text(r, GB_REG_EV_MESSAGE, id, id_len, c->now,
                                           b + m->body.off, m->body.len, NULL, 0);
        if (ev)
            ev->source = *c->src;
        return send_reply(c, 200, NULL);
    }
    if (!bd)
        return reject(c, 403, "Forbidden (device not registered)", id, id_len);
    r->st.keepalives++;
    bd->source = *c->src; /* the same, or proven by credentials */
    bd->last_keepalive = c->now;
    if (r->cfg.keepalive_interval_ms && r->cfg.keepalive_timeout_count)
        bd->keepalive_deadline =
            c->now + (int64_t)r->cfg.keepalive_interval_ms * r->cfg.keepalive_timeout_count;
    if (!online(bd)) {
        set_state(r, bd, GB_BIND_REGISTERED);
        gb_reg_event *ev = push_event(r, GB_REG_EV_ONLINE, id, id_len, c->now);
        if (ev)
            ev->source = *c->src;
    }
    heap_fix(r, bd);
    if (r->cfg.keepalive_events) {
        gb_span stat = xml_text(b, m->body, "Status");
        gb_reg_event *ev = push_event_text(r, GB_REG_EV_KEEPALIVE, id, id_len, c->now,
                                           b + stat.off, stat.len, NULL, 0);
        if (ev) {
            gb_span sn = xml_text(b, m->body, "SN");
            uint64_t v = 0;
            if (sn.len && gb_parse_uint(b + sn.off, sn.len, 0xffffffffu, &v) == 0)
                ev->sn = (uint32_t)v;
            ev->source = *c->src;
        }
    }
    return send_reply(c, 200, NULL);
}

/* ------------------------------------------------------------------ */
/* The platform side: requests to devices (platform_requests.h)         */

#define ALLOW "REGISTER, MESSAGE, NOTIFY, OPTIONS, ACK"

typedef struct {
    gb_registrar *r;
    int64_t now;
} preq_ctx;

/* A request's result becomes an event (pending_id: its handle). */
static void on_preq_result(void *arg, const gb_preq_result *res)
{
    preq_ctx *pc = arg;
    int type = res->kind == GB_PREQ_ANSWERED ? GB_REG_EV_REQUEST_ANSWERED
                                             : GB_REG_EV_REQUEST_TIMEOUT;
    gb_reg_event *ev = push_event_text(pc->r, type, res->device_id, res->device_id_len,
                                       pc->now, res->reason, res->reason_len, res->to_tag,
                                       res->to_tag_len);
    if (!ev)
        return;
    ev->pending_id = res->handle;
    ev->status = res->status;
    ev->expires = res->expires > 0 && res->expires <= 0xffffffff ? (uint32_t)res->expires : 0;
    ev->source = res->source;
}

static int platform_response(gb_registrar *r, const char *buf, const gb_msg *m,
                             const gb_peer *src, int64_t now)
{
    preq_ctx pc = {r, now};
    return gb_preq_on_response(r->preq, buf, m, src, now, on_preq_result, &pc) != GB_PREQ_STRAY;
}

/* NOTIFY (GB/T 28181 §9.11: catalog, alarm, position of a subscription):
 * from a registered device's own source (as its MESSAGEs, issue 14) it is
 * answered 200 and its body and Event header become an event; from anyone
 * else 403, touching nothing. */
static gb_reg_status do_notify(req_ctx *c)
{
    const char *b = c->b;
    const gb_msg *m = c->m;
    const char *id;
    size_t id_len;
    if (!from_user(b, m, &id, &id_len))
        return reject(c, 400, "Malformed From header", NULL, 0);
    binding *bd = id_find(c->r, &c->r->bindings, id, id_len);
    if (!bd)
        return reject(c, 403, "Forbidden (device not registered)", id, id_len);
    if (!same_source(&bd->source, c->src))
        return reject(c, 403, "Forbidden (not the registered address)", id, id_len);
    /* extra = Event header, a newline, Call-ID (the subscription's dialog),
     * and when present a newline and Subscription-State (RFC 6665 §8.2.3:
     * "terminated" ends the subscription) */
    char extra[768];
    size_t xl = 0;
    int e = m->first[GB_HDR_EVENT], ci = m->first[GB_HDR_CALL_ID];
    if (e) {
        size_t n = m->headers[e - 1].value.len;
        xl = n < 255 ? n : 255;
        memcpy(extra, b + m->headers[e - 1].value.off, xl);
    }
    extra[xl++] = '\n';
    if (ci) {
        size_t n = m->headers[ci - 1].value.len;
        n = n < 256 ? n : 256;
        memcpy(extra + xl, b + m->headers[ci - 1].value.off, n);
        xl += n;
    }
    int ss = gb_msg_find_name(m, b, "Subscription-State", 18, -1);
    if (ss >= 0) {
        size_t n = m->headers[ss].value.len;
        n = n < sizeof(extra) - xl - 1 ? n : sizeof(extra) - xl - 1;
        extra[xl++] = '\n';
        memcpy(extra + xl, b + m->headers[ss].value.off, n);
        xl += n;
    }
    gb_reg_event *ev = push_event_text(
        c->r, GB_REG_EV_NOTIFY, id, id_len, c->now, b + m->body.off, m->body.len,
        extra, xl);
    if (ev)
        ev->source = *c->src;
    return send_reply(c, 200, NULL);
}

int gb_registrar_request(gb_registrar *r, const gb_reg_request *q, int64_t now,
                         gb_preq_sent *out)
{
    binding *b = id_find(r, &r->bindings, q->device_id, q->device_id_len);
    if (!b || !b->ncontacts)
        return GB_REG_NOT_REGISTERED;
    /* From the platform, to the device, in the GB domain (the realm) */
    char from[GB_REG_MAX_ID + 160], to[GB_REG_MAX_ID + 160];
    gb_writer fw, tw;
    gb_w_init(&fw, from, sizeof(from));
    gb_w_cstr(&fw, "sip:");
    gb_w_bytes(&fw, r->cfg.server_id, r->cfg.server_id_len > 64 ? 64 : r->cfg.server_id_len);
    gb_w_cstr(&fw, "@");
    gb_w_bytes(&fw, r->cfg.realm, r->cfg.realm_len > 64 ? 64 : r->cfg.realm_len);
    gb_w_init(&tw, to, sizeof(to));
    gb_w_cstr(&tw, "sip:");
    gb_w_bytes(&tw, b->h.id, b->h.id_len);
    gb_w_cstr(&tw, "@");
    gb_w_bytes(&tw, r->cfg.realm, r->cfg.realm_len > 64 ? 64 : r->cfg.realm_len);
    if (fw.overflow || tw.overflow)
        return GB_PREQ_TOO_LARGE;
    gb_preq_spec s = {
        .method = q->method, .method_len = q->method_len,
        .request_uri = b->contacts[0].uri, .request_uri_len = b->contacts[0].uri_len,
        .from_uri = from, .from_uri_len = fw.len,
        .to_uri = to, .to_uri_len = tw.len,
        .from_tag = q->from_tag, .from_tag_len = q->from_tag_len,
        .to_tag = q->to_tag, .to_tag_len = q->to_tag_len,
        .call_id = q->call_id, .call_id_len = q->call_id_len,
        .cseq = q->cseq,
        .via_host = q->via_host, .via_host_len = q->via_host_len, .via_port = q->via_port,
        .content_type = q->content_type, .content_type_len = q->content_type_len,
        .body = q->body, .body_len = q->body_len,
        .fields = q->fields, .nfields = q->nfields,
        .device_id = b->h.id, .device_id_len = b->h.id_len,
        .dest = b->source,
    };
    return gb_preq_send(r->preq, &s, now, out);
}

int gb_registrar_cancel_request(gb_registrar *r, uint64_t handle)
{
    return gb_preq_cancel(r->preq, handle);
}

int gb_registrar_next_output(gb_registrar *r, const char **data, size_t *len, gb_peer *dest)
{
    return gb_preq_next_output(r->preq, data, len, dest);
}

void gb_registrar_request_stats(const gb_registrar *r, gb_preq_stats *s)
{
    gb_preq_get_stats(r->preq, s);
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */

/* Requests a second per source prefix (the IPv4 address, the IPv6 /64).
 * A prefix keeps its slot for its one-second window; a colliding prefix
 * takes another slot of the set and never shares this one.  When every
 * slot of the set is a live window, the one with the fewest requests
 * below the limit is given up (forgetting it costs at most one window's
 * budget, while a source at its limit stays tracked and limited); when
 * all four are at their limit, the newcomer goes through untracked and is
 * counted.  The table is sized so that real traffic does not fill sets:
 * 65536 slots against a few thousand sources a second. */
static int rate_ok(gb_registrar *r, const gb_peer *src, int64_t now)
{
    if (!r->rate)
        return 1;
    unsigned char key[9] = {src->family};
    memcpy(key + 1, src->ip, src->family == 6 ? 8 : 4);
    rate_slot *set = &r->rate[gb_siphash(&r->hkey, key, sizeof key) % r->rate_sets * RATE_WAYS];
    rate_slot *mine = NULL, *idle = NULL, *lightest = NULL;
    for (int w = 0; w < RATE_WAYS && !mine; w++) {
        rate_slot *s = &set[w];
        if (s->family == key[0] && memcmp(s->prefix, key + 1, 8) == 0)
            mine = s;
        else if (!s->family || now - s->window_start >= 1000)
            idle = idle ? idle : s;
        else if (s->count < r->cfg.rate_per_source && (!lightest || s->count < lightest->count))
            lightest = s;
    }
    if (!mine) {
        mine = idle ? idle : lightest;
        if (!mine) {
            r->st.rate_untracked++;
            return 1;
        }
        if (!idle)
            r->st.rate_evicted++;
        memset(mine, 0, sizeof(*mine));
        mine->family = key[0];
        memcpy(mine->prefix, key + 1, 8);
        mine->window_start = now;
    } else if (now - mine->window_start >= 1000) {
        mine->window_start = now;
        mine->count = 0;
    }
    return ++mine->count <= r->cfg.rate_per_source;
}

/* RFC 3261 §8.1.1: the headers every request carries and every answer
 * echoes (§8.2.6.2).  GB_LENIENT_MISSING_HEADERS lets the parser accept a
 * request without them, so handling checks here before it reads one. */
static const gb_header_id mandatory_ids[] = {GB_HDR_VIA, GB_HDR_FROM, GB_HDR_TO,
                                             GB_HDR_CALL_ID, GB_HDR_CSEQ};

/* The first mandatory header the request lacks, GB_HDR_OTHER when none. */
static gb_header_id first_missing(const gb_msg *m)
{
    for (size_t k = 0; k < sizeof(mandatory_ids) / sizeof(mandatory_ids[0]); k++)
        if (!m->first[mandatory_ids[k]])
            return mandatory_ids[k];
    return GB_HDR_OTHER;
}

/* Reason phrase of the 400 for a missing header (static text). */
static const char *missing_reason(gb_header_id id)
{
    switch (id) {
    case GB_HDR_FROM:
        return "Missing From header";
    case GB_HDR_TO:
        return "Missing To header";
    case GB_HDR_CALL_ID:
        return "Missing Call-ID header";
    case GB_HDR_CSEQ:
        return "Missing CSeq header";
    default:
        return "Missing Via header";
    }
}

static const char *const drop_names[GB_REG_DROP__COUNT] = {
    [GB_REG_DROP_UNPARSEABLE] = "unparseable",
    [GB_REG_DROP_NO_VIA] = "no_via",
    [GB_REG_DROP_ACK] = "ack",
    [GB_REG_DROP_RESPONSE] = "response",
    [GB_REG_DROP_RATE] = "rate",
    [GB_REG_DROP_PENDING_FULL] = "pending_full",
    [GB_REG_DROP_IN_PROGRESS] = "in_progress",
    [GB_REG_DROP_REPLY_TOO_LARGE] = "reply_too_large",
};

const char *gb_reg_drop_name(gb_reg_drop d)
{
    return (unsigned)d < GB_REG_DROP__COUNT ? drop_names[d] : "unknown";
}

/* Nothing can be answered (no Via to answer along, or no request at all):
 * count the drop by reason (and parse error) and say why in an event. */
static gb_reg_status drop_unanswerable(gb_registrar *r, gb_reg_drop kind, gb_error_code code,
                                       const char *why, const gb_peer *src, int64_t now)
{
    r->st.dropped_unparseable++;
    r->st.drops[kind]++;
    if (kind == GB_REG_DROP_UNPARSEABLE && (unsigned)code < GB_ERR__COUNT)
        r->st.drops_parse[code]++;
    gb_reg_event *ev = push_peer_event(r, GB_REG_EV_REJECTED, NULL, 0, now);
    if (ev) {
        ev->reason = why;
        ev->source = *src;
    }
    return GB_REG_DROPPED;
}

/* A message that failed strict parsing.  When it is a request with a Via
 * to answer along, answer with the strict error's status and reason (RFC
 * 3261 §8.2, RFC 4475 §3.1.2 and §3.3.1/§3.3.8); to read the headers, a
 * lenient look writes a placeholder for a malformed request line and goes
 * past offending header lines (a malformed From, To, Call-ID or CSeq is
 * then left out of the answer, as a missing one is: no malformed bytes
 * are sent back) and second copies of single headers.  Anything else is
 * dropped and counted by reason. */
static gb_reg_status handle_bad(gb_registrar *r, const char *buf, size_t len,
                                const gb_error *err, const gb_peer *src, int64_t now,
                                int64_t wall, gb_reg_reply *out)
{
    if (len >= 4 && memcmp(buf, "SIP/", 4) == 0) /* a response: never answered */
        return drop_unanswerable(r, GB_REG_DROP_RESPONSE, err->code, err->reason, src, now);
    gb_header hdrs[256];
    gb_msg m;
    gb_msg_init(&m, hdrs, 256);
    const char *b;
    size_t blen;
    char *copy = NULL;
    int ok = gb_parse_past_errors(buf, len, r->cfg.lenient, &m, &b, &blen, &copy) == GB_OK;
    gb_reg_status st;
    if (!ok)
        st = drop_unanswerable(r, GB_REG_DROP_UNPARSEABLE, err->code, err->reason, src, now);
    else if (m.kind != GB_REQUEST)
        st = drop_unanswerable(r, GB_REG_DROP_RESPONSE, err->code, err->reason, src, now);
    else if (m.method_id == GB_METHOD_ACK)
        st = drop_unanswerable(r, GB_REG_DROP_ACK, err->code, err->reason, src, now);
    else if (!m.first[GB_HDR_VIA])
        st = drop_unanswerable(r, GB_REG_DROP_NO_VIA, err->code, err->reason, src, now);
    else {
        req_ctx c = {.r = r, .b = b, .m = &m, .src = src, .now = now, .wall = wall, .out = out};
        st = reject(&c, err->status ? err->status : 400, err->reason, NULL, 0);
    }
    free(copy);
    return st;
}

static gb_reg_status process(gb_registrar *r, const char *buf, size_t len,
                             const gb_peer *src, int64_t now, int64_t wall,
                             gb_reg_reply *out, lookup_state *ls, txn *own)
{
    gb_header hdrs[128];
    gb_msg m;
    gb_limits lim;
    gb_limits_default(&lim);
    lim.lenient = r->cfg.lenient;
    gb_msg_init(&m, hdrs, 128);
    gb_error err;
    out->len = 0;
    if (gb_parse(buf, len, 0, &lim, &m, &err) != GB_OK)
        return handle_bad(r, buf, len, &err, src, now, wall, out);
    if (m.kind == GB_RESPONSE) {
        /* an answer to one of our requests (platform_requests.h)? */
        if (!platform_response(r, buf, &m, src, now)) {
            r->st.stray_responses++;
            r->st.drops[GB_REG_DROP_RESPONSE]++;
        }
        return GB_REG_NONE;
    }
    if (m.method_id == GB_METHOD_ACK)
        return GB_REG_NONE;
    gb_header_id missing = first_missing(&m);
    if (missing == GB_HDR_VIA)
        return drop_unanswerable(r, GB_REG_DROP_NO_VIA, GB_ERR_MISSING_HEADER,
                                 missing_reason(missing), src, now);

    char key[TXN_KEY_MAX];
    size_t klen = 0;
    uint64_t khash = 0;
    if (!own) {
        klen = txn_key(buf, &m, key);
        if (klen) {
            khash = gb_siphash(&r->hkey, key, klen);
            txn *t = txn_lookup(r, key, klen, khash);
            if (t && src->transport == GB_TRANSPORT_UDP && !same_source(src, &t->dest)) {
                /* The same transaction key from another address: never
                 * the cached answer (a spoofed source would make it a
                 * reflector), handled afresh and not cached (issue 14). */
                r->st.retransmissions_foreign++;
                t = NULL;
                klen = 0;
            }
            if (t) {
                /* RFC 3261 §17.2.1: a retransmission gets the same answer */
                r->st.retransmissions_absorbed++;
                if (t->state != TXN_DONE) {
                    r->st.drops[GB_REG_DROP_IN_PROGRESS]++;
                    return GB_REG_DROPPED;
                }
                if (t->response_len > out->cap) {
                    r->st.replies_too_large++;
                    r->st.drops[GB_REG_DROP_REPLY_TOO_LARGE]++;
                    return GB_REG_DROPPED;
                }
                memcpy(out->buf, t->response, t->response_len);
                out->len = t->response_len;
                out->dest = *src;
                return GB_REG_REPLY;
            }
        }
    }

    req_ctx c = {.r = r, .b = buf, .m = &m, .src = src, .now = now, .wall = wall, .out = out};
    gb_reg_status st;
    uint64_t want_pending = 0;
    gb_uri ru;
    if (missing != GB_HDR_OTHER) {
        st = reject(&c, 400, missing_reason(missing), NULL, 0);
    } else if (gb_parse_uri(buf, m.uri, &ru, NULL) != GB_OK) {
        st = reject(&c, 400, "Malformed Request-URI", NULL, 0);
    } else if (!ru.is_sip) {
        st = reject(&c, 416, NULL, NULL, 0);
    } else if (m.first[GB_HDR_REQUIRE]) {
        const gb_header *h = &m.headers[m.first[GB_HDR_REQUIRE] - 1];
        add_field(&c, "Unsupported", buf + h->value.off, h->value.len);
        st = reject(&c, 420, NULL, NULL, 0);
    } else {
        switch (m.method_id) {
        case GB_METHOD_REGISTER:
            st = do_register(&c, ls, &want_pending);
            break;
        case GB_METHOD_MESSAGE:
            st = do_message(&c, ls, &want_pending);
            break;
        case GB_METHOD_NOTIFY:
            st = do_notify(&c);
            break;
        case GB_METHOD_OPTIONS:
            add_field(&c, "Allow", ALLOW, sizeof(ALLOW) - 1);
            st = send_reply(&c, 200, NULL);
            break;
        case GB_METHOD_OTHER:
            add_field(&c, "Allow", ALLOW, sizeof(ALLOW) - 1);
            st = reject(&c, 501, NULL, NULL, 0);
            break;
        default:
            add_field(&c, "Allow", ALLOW, sizeof(ALLOW) - 1);
            st = reject(&c, 405, NULL, NULL, 0);
            break;
        }
    }

    if (st == GB_REG_PENDING) {
        if (r->pending_count >= r->cfg.max_pending || !klen) {
            /* No room to wait (or no way to match the answer later). */
            r->st.dropped_pending_full++;
            r->st.drops[GB_REG_DROP_PENDING_FULL]++;
            return GB_REG_DROPPED;
        }
        txn *t = txn_insert(r, RING_OPEN, key, klen, khash, now + r->cfg.transaction_ms);
        t->state = TXN_PENDING;
        t->request = dup_bytes(buf, len);
        t->request_len = (uint32_t)len;
        t->dest = *src;
        size_t slot = (size_t)(t - r->txns);
        t->pending_id = ((uint64_t)slot << 32) | (++r->pending_gen & 0xffffffffu);
        r->pending_count++;
        gb_reg_event *ev = push_event(r, GB_REG_EV_NEED_SECRET, c.id, c.id_len, now);
        if (ev) {
            ev->pending_id = t->pending_id;
            ev->source = *src;
        }
        return GB_REG_PENDING;
    }
    if (st == GB_REG_REPLY) {
        int ring = c.trusted ? RING_TRUSTED : RING_OPEN;
        txn *t = own;
        if (t && t->ring != ring) {
            /* a look-up answered for a device that proved itself: its
             * answer moves to the trusted ring */
            txn *moved = txn_insert(r, ring, t->key, t->key_len, t->hash, t->expires_at);
            moved->dest = t->dest;
            txn_index_remove(r, t);
            txn_clear(r, t);
            t = moved;
        }
        if (!t && klen)
            t = txn_insert(r, ring, key, klen, khash, now + r->cfg.transaction_ms);
        if (t) {
            if (t->state == TXN_PENDING) {
                r->pending_count--;
                free(t->request);
                t->request = NULL;
            }
            t->state = TXN_DONE;
            free(t->response);
            t->response = dup_bytes(out->buf, out->len);
            t->response_len = t->response ? (uint32_t)out->len : 0;
            if (!t->response)
                t->state = TXN_EMPTY;
            t->dest = out->dest;
        }
    }
    return st;
}

size_t gb_registrar_reply_cap(const gb_registrar *r, size_t request_len)
{
    /* The echoed Via/From/To/Call-ID/CSeq lines at most double (a compact
     * "v:" becomes "Via: ", a bare LF a CRLF; a header line is at least 4
     * bytes), plus every built field, plus the status line, tag, received
     * and Content-Length. */
    return 2 * request_len + r->scratch_cap + 1024;
}

gb_reg_status gb_registrar_handle(gb_registrar *r, const char *buf, size_t len,
                                  const gb_peer *src, int64_t now_ms, int64_t wall_ms,
                                  gb_reg_reply *out)
{
    r->st.received++;
    out->len = 0;
    if (!rate_ok(r, src, now_ms)) {
        r->st.dropped_rate++;
        r->st.drops[GB_REG_DROP_RATE]++;
        return GB_REG_DROPPED;
    }
    lookup_state ls = {.r = r};
    return process(r, buf, len, src, now_ms, wall_ms, out, &ls, NULL);
}

gb_reg_status gb_registrar_resume(gb_registrar *r, uint64_t pending_id, int kind,
                                  const char *secret, size_t secret_len, int64_t now_ms,
                                  int64_t wall_ms, gb_reg_reply *out)
{
    size_t slot = (size_t)(pending_id >> 32);
    out->len = 0;
    if (slot >= r->txn_slots)
        return GB_REG_DROPPED;
    txn *t = &r->txns[slot];
    if (t->state != TXN_PENDING || t->pending_id != pending_id)
        return GB_REG_DROPPED;
    lookup_state ls = {.r = r, .kind = kind, .secret = secret, .secret_len = secret_len,
                       .have_override = 1};
    char *req = t->request;
    size_t req_len = t->request_len;
    gb_peer src = t->dest;
    t->request = NULL;
    gb_reg_status st = process(r, req, req_len, &src, now_ms, wall_ms, out, &ls, t);
    free(req);
    if (st != GB_REG_REPLY && t->state == TXN_PENDING) {
        r->pending_count--;
        t->state = TXN_EMPTY;
        txn_index_remove(r, t);
    }
    return st;
}

/* ------------------------------------------------------------------ */
/* Timers                                                              */

int64_t gb_registrar_next_deadline(const gb_registrar *r)
{
    const binding *top = heap_top(r);
    int64_t d = top ? binding_deadline(top) : NO_DEADLINE;
    int64_t pd = gb_preq_next_deadline(r->preq);
    if (pd < d)
        d = pd;
    for (int k = 0; k < 2; k++)
        if (r->rings[k].count && txn_oldest(r, k)->expires_at < d)
            d = txn_oldest(r, k)->expires_at;
    return d;
}

void gb_registrar_handle_timer(gb_registrar *r, int64_t now)
{
    preq_ctx pc = {r, now};
    gb_preq_handle_timer(r->preq, now, on_preq_result, &pc);
    for (int k = 0; k < 2; k++)
        while (r->rings[k].count && txn_oldest(r, k)->expires_at <= now)
            txn_drop_oldest(r, k);
    for (binding *b; (b = heap_top(r)) && binding_deadline(b) <= now;) {
        for (unsigned i = 0; i < b->ncontacts;) {
            if (b->contacts[i].expires_at <= now) {
                free(b->contacts[i].uri);
                b->contacts[i] = b->contacts[--b->ncontacts];
            } else {
                i++;
            }
        }
        if (!b->ncontacts) {
            r->st.expirations++;
            gb_reg_event *ev = push_event(r, GB_REG_EV_EXPIRED, b->h.id, b->h.id_len, now);
            if (ev)
                ev->source = b->source;
            set_state(r, b, GB_BIND_EXPIRED);
            binding_drop(r, b);
            continue;
        }
        if (online(b) && b->keepalive_deadline && b->keepalive_deadline <= now) {
            /* GB/T 28181 §9.6.1: timeout_count missed keepalives */
            set_state(r, b, GB_BIND_OFFLINE);
            gb_reg_event *ev = push_event(r, GB_REG_EV_OFFLINE, b->h.id, b->h.id_len, now);
            if (ev)
                ev->source = b->source;
        }
        heap_fix(r, b);
    }
}

/* ------------------------------------------------------------------ */
/* Inspection                                                          */

static void view_of(const binding *b, gb_binding_view *v)
{
    v->id = b->h.id;
    v->id_len = b->h.id_len;
    v->contact = b->ncontacts ? b->contacts[0].uri : NULL;
    v->contact_len = b->ncontacts ? b->contacts[0].uri_len : 0;
    v->ncontacts = b->ncontacts;
    v->user_agent = b->user_agent;
    v->user_agent_len = b->ua_len;
    v->call_id = b->call_id;
    v->call_id_len = b->call_id_len;
    v->cseq = b->cseq;
    v->source = b->source;
    int64_t e = 0;
    for (unsigned i = 0; i < b->ncontacts; i++)
        if (b->contacts[i].expires_at > e)
            e = b->contacts[i].expires_at;
    v->expires_at = e;
    v->registered_at = b->registered_at;
    v->last_keepalive = b->last_keepalive;
    v->online = online(b);
}

size_t gb_registrar_binding_count(const gb_registrar *r)
{
    return r->bindings.ix.count;
}

int gb_registrar_binding_next(const gb_registrar *r, size_t *cursor, gb_binding_view *v)
{
    const binding *b = id_next(&r->bindings, cursor);
    if (b)
        view_of(b, v);
    return b != NULL;
}

int gb_registrar_binding_get(const gb_registrar *r, const char *id, size_t id_len,
                             gb_binding_view *v)
{
    const binding *b = id_find(r, &r->bindings, id, id_len);
    if (b)
        view_of(b, v);
    return b != NULL;
}

int gb_registrar_binding_contact(const gb_registrar *r, const char *id, size_t id_len,
                                 uint32_t n, const char **uri, size_t *uri_len,
                                 int64_t *expires_at)
{
    const binding *b = id_find(r, &r->bindings, id, id_len);
    if (!b || n >= b->ncontacts)
        return 0;
    *uri = b->contacts[n].uri;
    *uri_len = b->contacts[n].uri_len;
    *expires_at = b->contacts[n].expires_at;
    return 1;
}

void gb_registrar_get_stats(const gb_registrar *r, gb_registrar_stats *s)
{
    *s = r->st;
    s->bindings = r->bindings.ix.count;
    s->pending = r->pending_count;
    s->transactions = r->rings[RING_OPEN].count + r->rings[RING_TRUSTED].count;
    /* binding structs, their strings, and the index, slab and heap slots */
    uint64_t bytes = gb_index_bytes(&r->bindings.ix) +
                     (uint64_t)r->bindings.slab.cap * (sizeof(void *) + sizeof(uint32_t)) +
                     (uint64_t)r->heap.cap * sizeof(uint32_t);
    size_t cur = 0;
    for (const binding *b; (b = id_next(&r->bindings, &cur));) {
        bytes += sizeof(*b) + b->call_id_len + b->ua_len + b->ncontacts * sizeof(reg_contact);
        for (unsigned k = 0; k < b->ncontacts; k++)
            bytes += b->contacts[k].uri_len;
    }
    s->binding_bytes = bytes;
}

/* ------------------------------------------------------------------ */
/* Persistence: what changed, and bindings put back after a restart     */

int gb_registrar_track_changes(gb_registrar *r, int on)
{
    if (!on) {
        free(r->changes);
        r->changes = NULL;
        r->nchanges = r->changes_cap = 0;
        return 0;
    }
    if (r->changes)
        return 0;
    r->changes = malloc(64 * sizeof(*r->changes));
    if (!r->changes)
        return -1;
    r->changes_cap = 64;
    return 0;
}

size_t gb_registrar_take_changes(gb_registrar *r, gb_reg_change_fn fn, void *arg)
{
    size_t n = r->nchanges;
    for (size_t i = 0; i < n; i++) {
        const gb_reg_change *c = &r->changes[i];
        binding *b = id_find(r, &r->bindings, c->id, c->id_len);
        if (b && !b->dirty)
            continue; /* listed again after it was re-created: said once */
        gb_binding_view v;
        if (b) {
            b->dirty = 0;
            view_of(b, &v);
        }
        fn(arg, c->id, c->id_len, b ? &v : NULL);
    }
    r->nchanges = 0;
    return n;
}

int gb_registrar_restore(gb_registrar *r, const gb_binding_view *v,
                         const gb_reg_contact *contacts, size_t ncontacts, int64_t now)
{
    if (!v->id_len || v->id_len > GB_REG_MAX_ID || !ncontacts ||
        ncontacts > r->cfg.max_contacts || id_find(r, &r->bindings, v->id, v->id_len))
        return -1;
    if (r->bindings.ix.count >= r->cfg.max_bindings)
        return -2;
    binding *b = calloc(1, sizeof(*b));
    if (!b || gb_heap_reserve(&r->heap, (size_t)r->heap.len + 1) < 0) {
        free(b);
        return -3;
    }
    int bad = 0;
    for (size_t i = 0; i < ncontacts && !bad; i++)
        bad = contact_set(b, contacts[i].uri, contacts[i].uri_len, contacts[i].expires_at,
                          r->cfg.max_contacts) < 0;
    if (bad || store_text(&b->call_id, &b->call_id_len, v->call_id, v->call_id_len) < 0 ||
        (v->user_agent &&
         store_text(&b->user_agent, &b->ua_len, v->user_agent, v->user_agent_len) < 0) ||
        id_add(r, &r->bindings, &b->h, v->id, v->id_len) < 0) {
        binding_free(b);
        return -3;
    }
    b->cseq = v->cseq;
    b->source = v->source;
    b->registered_at = v->registered_at;
    b->last_keepalive = v->last_keepalive;
    b->state = GB_BIND_REGISTERED; /* as it was stored: not a change to list */
    if (!v->online)
        b->state = GB_BIND_OFFLINE;
    else if (r->cfg.keepalive_interval_ms && r->cfg.keepalive_timeout_count)
        /* a fresh grace period: the device has not seen us restart */
        b->keepalive_deadline = now + (int64_t)r->cfg.keepalive_interval_ms *
                                          r->cfg.keepalive_timeout_count;
    gb_heap_push(&r->heap, b->h.ref, heap_key, heap_moved, r);
    return 0;
}
