/* platform_requests.c - platform-originated client transactions (see
 * platform_requests.h). */
#include "platform_requests.h"

#include <stdlib.h>
#include <string.h>

#include "gb_containers.h"
#include "sip_fields.h"

#define NO_DEADLINE INT64_MAX
#define BRANCH_LEN 23 /* "z9hG4bK" + 16 hex */

enum { SLOT_FREE = 0, SLOT_TRYING, SLOT_PROCEEDING, SLOT_COMPLETED };

typedef struct {
    uint8_t state;
    uint8_t queued;          /* in the output ring */
    uint8_t id_len, call_id_len;
    uint8_t method_len;
    char method[20];
    uint32_t cseq;
    uint32_t gen;            /* handle = gen << 32 | slot + 1 */
    uint32_t heap_pos;
    uint32_t len;            /* of msg */
    uint32_t interval;       /* Timer E now */
    uint64_t hash;           /* of the branch */
    int64_t next_send;       /* Timer E (UDP, not completed); NO_DEADLINE */
    int64_t give_up;         /* Timer F, or Timer K when completed */
    uint32_t done_prev;      /* completed list (Timer K), oldest first: slot + 1 */
    uint32_t done_next;
    char *msg;
    gb_peer dest;
    char branch[BRANCH_LEN];
    char id[GB_REG_MAX_ID];
    char call_id[GB_PREQ_CALL_ID_MAX];
} slot;

struct gb_preq_pool {
    gb_preq_config cfg;
    gb_hash_key hkey;
    uint64_t prng;
    slot *slots;             /* cfg.max_requests */
    uint32_t *free;          /* stack of free slot numbers */
    uint32_t nfree;
    uint32_t *ring;          /* output queue of slot numbers */
    uint32_t ring_head, ring_count;
    uint32_t done_head, done_tail; /* completed slots by completion time: slot + 1 */
    gb_index ix;             /* slot + 1 by branch hash */
    gb_heap heap;            /* slot + 1 by deadline */
    gb_preq_stats st;
};

void gb_preq_config_default(gb_preq_config *c)
{
    memset(c, 0, sizeof(*c));
    c->max_requests = 4096;
    c->t1_ms = 500;
    c->t2_ms = 4000;
    c->t4_ms = 5000;
    c->timer_f_ms = 64 * 500;
}

static int64_t slot_deadline(const slot *s)
{
    return s->next_send < s->give_up ? s->next_send : s->give_up;
}

static int64_t heap_key(const void *ctx, uint32_t ref)
{
    return slot_deadline(&((const gb_preq_pool *)ctx)->slots[ref - 1]);
}

static void heap_moved(void *ctx, uint32_t ref, uint32_t pos)
{
    ((gb_preq_pool *)ctx)->slots[ref - 1].heap_pos = pos;
}

static uint64_t ix_hash(const void *ctx, uint32_t ref)
{
    return ((const gb_preq_pool *)ctx)->slots[ref - 1].hash;
}

typedef struct {
    const char *p;
    size_t n;
    uint64_t hash;
} branch_key;

static int ix_eq(const void *ctx, uint32_t ref, const void *key)
{
    const slot *s = &((const gb_preq_pool *)ctx)->slots[ref - 1];
    const branch_key *k = key;
    return s->hash == k->hash && k->n == BRANCH_LEN && memcmp(s->branch, k->p, BRANCH_LEN) == 0;
}

gb_preq_pool *gb_preq_new(const gb_preq_config *cfg)
{
    if (!cfg->max_requests || !cfg->t1_ms)
        return NULL;
    gb_preq_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->cfg = *cfg;
    if (!p->cfg.t2_ms)
        p->cfg.t2_ms = 8 * cfg->t1_ms;
    if (!p->cfg.timer_f_ms)
        p->cfg.timer_f_ms = 64 * cfg->t1_ms;
    p->hkey = gb_hash_key_from(cfg->hash_key);
    p->prng = cfg->seed ^ 0x2545f4914f6cdd1dull;
    p->slots = calloc(cfg->max_requests, sizeof(slot));
    p->free = malloc(cfg->max_requests * sizeof(uint32_t));
    p->ring = malloc(cfg->max_requests * sizeof(uint32_t));
    if (!p->slots || !p->free || !p->ring ||
        gb_index_reserve(&p->ix, cfg->max_requests, ix_hash, p) < 0 ||
        gb_heap_reserve(&p->heap, cfg->max_requests) < 0) {
        gb_preq_free(p);
        return NULL;
    }
    for (uint32_t i = 0; i < cfg->max_requests; i++)
        p->free[i] = cfg->max_requests - 1 - i;
    p->nfree = cfg->max_requests;
    return p;
}

void gb_preq_free(gb_preq_pool *p)
{
    if (!p)
        return;
    if (p->slots)
        for (uint32_t i = 0; i < p->cfg.max_requests; i++)
            free(p->slots[i].msg);
    free(p->slots);
    free(p->free);
    free(p->ring);
    gb_index_free(&p->ix);
    gb_heap_free(&p->heap);
    free(p);
}

static void hex_draw(gb_preq_pool *p, char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++, v >>= 4) {
        if (i % 16 == 0)
            v = gb_splitmix64(&p->prng);
        out[i] = hex[v & 15];
    }
}

static void enqueue(gb_preq_pool *p, uint32_t n)
{
    slot *s = &p->slots[n];
    if (s->queued)
        return;
    s->queued = 1;
    p->ring[(p->ring_head + p->ring_count) % p->cfg.max_requests] = n;
    p->ring_count++;
}

static void done_unlink(gb_preq_pool *p, slot *s)
{
    if (s->done_prev)
        p->slots[s->done_prev - 1].done_next = s->done_next;
    else
        p->done_head = s->done_next;
    if (s->done_next)
        p->slots[s->done_next - 1].done_prev = s->done_prev;
    else
        p->done_tail = s->done_prev;
    s->done_prev = s->done_next = 0;
}

/* End a transaction: out of the index and the heap, slot back to the free
 * list (its ring entry, if any, is skipped when it comes up). */
static void release(gb_preq_pool *p, uint32_t n)
{
    slot *s = &p->slots[n];
    if (s->state == SLOT_COMPLETED)
        done_unlink(p, s);
    branch_key k = {s->branch, BRANCH_LEN, s->hash};
    uint32_t *ixs = gb_index_slot(&p->ix, s->hash, ix_eq, p, &k);
    if (*ixs)
        gb_index_remove_at(&p->ix, ixs, ix_hash, p);
    gb_heap_remove(&p->heap, s->heap_pos, heap_key, heap_moved, p);
    free(s->msg);
    s->msg = NULL;
    s->state = SLOT_FREE;
    p->free[p->nfree++] = n;
}

static slot *by_handle(gb_preq_pool *p, uint64_t handle, uint32_t *n)
{
    uint64_t ref = handle & 0xffffffffu;
    if (!ref || ref > p->cfg.max_requests)
        return NULL;
    slot *s = &p->slots[ref - 1];
    if (s->state == SLOT_FREE || s->gen != (uint32_t)(handle >> 32))
        return NULL;
    *n = (uint32_t)(ref - 1);
    return s;
}

int gb_preq_send(gb_preq_pool *p, const gb_preq_spec *s, int64_t now, gb_preq_sent *out)
{
    if (!s->method || !s->method_len || !s->request_uri || !s->request_uri_len ||
        !s->from_uri || !s->to_uri || !s->via_host || s->nfields > GB_PREQ_MAX_FIELDS)
        return GB_PREQ_INVALID;
    if ((s->from_tag && s->from_tag_len > GB_PREQ_TAG_MAX) ||
        (s->call_id && s->call_id_len > GB_PREQ_CALL_ID_MAX) || s->device_id_len > GB_REG_MAX_ID)
        return GB_PREQ_TOO_LARGE;
    if (!p->nfree) {
        if (!p->done_head) {
            p->st.turned_away++;
            return GB_PREQ_FULL;
        }
        /* every slot busy, some only absorbing repeated answers (Timer K):
         * the oldest of those ends early; an answer repeated after this is
         * a stray, as it would be after Timer K */
        p->st.completed_reused++;
        release(p, p->done_head - 1);
    }
    memset(out, 0, sizeof(*out));
    char branch[BRANCH_LEN];
    memcpy(branch, "z9hG4bK", 7);
    hex_draw(p, branch + 7, 16);
    if (s->from_tag) {
        memcpy(out->from_tag, s->from_tag, s->from_tag_len);
        out->from_tag_len = (uint8_t)s->from_tag_len;
    } else {
        hex_draw(p, out->from_tag, 10);
        out->from_tag_len = 10;
    }
    if (s->call_id) {
        memcpy(out->call_id, s->call_id, s->call_id_len);
        out->call_id_len = (uint8_t)s->call_id_len;
    } else {
        hex_draw(p, out->call_id, 20);
        out->call_id_len = 20;
    }
    out->cseq = s->cseq ? s->cseq : 1;

    /* the headers, in the order RFC 3261 §8.1.1 lists them */
    gb_field f[8 + GB_PREQ_MAX_FIELDS];
    size_t nf = 0;
    char via[512], from[512], to[512], cseq[64];
    gb_writer w;
    int tcp = s->dest.transport == GB_TRANSPORT_TCP;
    gb_w_init(&w, via, sizeof(via));
    gb_w_cstr(&w, tcp ? "SIP/2.0/TCP " : "SIP/2.0/UDP ");
    gb_w_bytes(&w, s->via_host, s->via_host_len);
    gb_w_cstr(&w, ":");
    gb_w_uint(&w, s->via_port);
    gb_w_cstr(&w, ";rport;branch=");
    gb_w_bytes(&w, branch, BRANCH_LEN);
    size_t via_len = w.len;
    int bad = w.overflow;
    gb_w_init(&w, from, sizeof(from));
    gb_w_cstr(&w, "<");
    gb_w_bytes(&w, s->from_uri, s->from_uri_len);
    gb_w_cstr(&w, ">;tag=");
    gb_w_bytes(&w, out->from_tag, out->from_tag_len);
    size_t from_len = w.len;
    bad |= w.overflow;
    gb_w_init(&w, to, sizeof(to));
    gb_w_cstr(&w, "<");
    gb_w_bytes(&w, s->to_uri, s->to_uri_len);
    gb_w_cstr(&w, ">");
    if (s->to_tag) {
        gb_w_cstr(&w, ";tag=");
        gb_w_bytes(&w, s->to_tag, s->to_tag_len);
    }
    size_t to_len = w.len;
    bad |= w.overflow;
    gb_w_init(&w, cseq, sizeof(cseq));
    gb_w_uint(&w, out->cseq);
    gb_w_cstr(&w, " ");
    gb_w_bytes(&w, s->method, s->method_len > 20 ? 20 : s->method_len);
    size_t cseq_len = w.len;
    bad |= w.overflow || s->method_len > 20;
    if (bad)
        return GB_PREQ_TOO_LARGE;
    f[nf++] = (gb_field){"Via", 3, via, via_len};
    f[nf++] = (gb_field){"From", 4, from, from_len};
    f[nf++] = (gb_field){"To", 2, to, to_len};
    f[nf++] = (gb_field){"Call-ID", 7, out->call_id, out->call_id_len};
    f[nf++] = (gb_field){"CSeq", 4, cseq, cseq_len};
    f[nf++] = (gb_field){"Max-Forwards", 12, "70", 2};
    for (size_t i = 0; i < s->nfields; i++)
        f[nf++] = s->fields[i];
    if (s->body && s->body_len) {
        if (s->content_type)
            f[nf++] = (gb_field){"Content-Type", 12, s->content_type, s->content_type_len};
        else
            f[nf++] = (gb_field){"Content-Type", 12, "Application/MANSCDP+xml", 23};
    }
    size_t cap = s->request_uri_len + s->body_len + 256;
    for (size_t i = 0; i < nf; i++)
        cap += f[i].name_len + f[i].value_len + 4;
    if (cap > GB_PREQ_MAX_MESSAGE)
        return GB_PREQ_TOO_LARGE;
    char *msg = malloc(cap);
    if (!msg)
        return GB_PREQ_NO_MEMORY;
    gb_w_init(&w, msg, cap);
    if (gb_build_request(&w, s->method, s->method_len, s->request_uri, s->request_uri_len, f,
                         nf, s->body, s->body_len) < 0) {
        free(msg);
        return GB_PREQ_TOO_LARGE;
    }

    uint32_t n = p->free[--p->nfree];
    slot *sl = &p->slots[n];
    uint8_t queued = sl->queued; /* a ring entry of its previous life sends this */
    uint32_t gen = sl->gen + 1;
    memset(sl, 0, sizeof(*sl));
    sl->queued = queued;
    sl->gen = gen ? gen : 1;
    sl->state = SLOT_TRYING;
    sl->msg = msg;
    sl->len = (uint32_t)w.len;
    sl->dest = s->dest;
    sl->cseq = out->cseq;
    memcpy(sl->method, s->method, s->method_len);
    sl->method_len = (uint8_t)s->method_len;
    memcpy(sl->branch, branch, BRANCH_LEN);
    sl->hash = gb_siphash(&p->hkey, branch, BRANCH_LEN);
    memcpy(sl->call_id, out->call_id, out->call_id_len);
    sl->call_id_len = out->call_id_len;
    if (s->device_id_len)
        memcpy(sl->id, s->device_id, s->device_id_len);
    sl->id_len = (uint8_t)s->device_id_len;
    sl->interval = p->cfg.t1_ms;
    sl->next_send = tcp ? NO_DEADLINE : now + p->cfg.t1_ms;
    sl->give_up = now + p->cfg.timer_f_ms;
    gb_index_add(&p->ix, sl->hash, n + 1);
    gb_heap_push(&p->heap, n + 1, heap_key, heap_moved, p);
    enqueue(p, n);
    p->st.sent++;
    out->handle = (uint64_t)sl->gen << 32 | (n + 1);
    return GB_PREQ_OK;
}

int gb_preq_cancel(gb_preq_pool *p, uint64_t handle)
{
    uint32_t n;
    slot *s = by_handle(p, handle, &n);
    if (!s)
        return 0;
    int live = s->state != SLOT_COMPLETED;
    if (live)
        p->st.cancelled++;
    release(p, n);
    return live;
}

int gb_preq_next_output(gb_preq_pool *p, const char **data, size_t *len, gb_peer *dest)
{
    while (p->ring_count) {
        uint32_t n = p->ring[p->ring_head];
        p->ring_head = (p->ring_head + 1) % p->cfg.max_requests;
        p->ring_count--;
        slot *s = &p->slots[n];
        s->queued = 0;
        if (s->state == SLOT_TRYING || s->state == SLOT_PROCEEDING) {
            *data = s->msg;
            *len = s->len;
            *dest = s->dest;
            return 1;
        }
    }
    return 0;
}

static void result_of(const slot *s, uint64_t handle, gb_preq_result *res)
{
    memset(res, 0, sizeof(*res));
    res->handle = handle;
    res->expires = -1;
    res->device_id = s->id;
    res->device_id_len = s->id_len;
    res->source = s->dest;
}

int gb_preq_on_response(gb_preq_pool *p, const char *buf, const gb_msg *m,
                        const gb_peer *src, int64_t now, gb_preq_result_fn fn, void *arg)
{
    if (m->kind != GB_RESPONSE || !m->first[GB_HDR_VIA])
        return GB_PREQ_STRAY;
    gb_via v;
    if (gb_parse_via(buf, m->headers[m->first[GB_HDR_VIA] - 1].value, &v, NULL) != GB_OK ||
        !v.has_branch || v.branch.len != BRANCH_LEN)
        return GB_PREQ_STRAY;
    branch_key k = {buf + v.branch.off, BRANCH_LEN, gb_siphash(&p->hkey, buf + v.branch.off,
                                                              BRANCH_LEN)};
    uint32_t ref = gb_index_find(&p->ix, k.hash, ix_eq, p, &k);
    if (!ref)
        return GB_PREQ_STRAY;
    uint32_t n = ref - 1;
    slot *s = &p->slots[n];
    /* the branch is ours: the Call-ID and CSeq number must be too */
    int cid = m->first[GB_HDR_CALL_ID];
    if (!cid || m->cseq != s->cseq || m->method.len != s->method_len ||
        memcmp(buf + m->method.off, s->method, s->method_len) != 0 ||
        m->headers[cid - 1].value.len != s->call_id_len ||
        memcmp(buf + m->headers[cid - 1].value.off, s->call_id, s->call_id_len) != 0) {
        p->st.mismatched++;
        return GB_PREQ_STRAY;
    }
    if (s->state == SLOT_COMPLETED) {
        p->st.answers_absorbed++;
        return GB_PREQ_ABSORBED;
    }
    if (m->status < 200) {
        p->st.provisional++;
        if (s->state == SLOT_TRYING && s->next_send != NO_DEADLINE) {
            /* Proceeding: resend every T2 (RFC 3261 §17.1.2.2) */
            s->state = SLOT_PROCEEDING;
            s->next_send = now + p->cfg.t2_ms;
            gb_heap_fix(&p->heap, s->heap_pos, heap_key, heap_moved, p);
        } else {
            s->state = SLOT_PROCEEDING;
        }
        return GB_PREQ_MATCHED;
    }
    p->st.answered++;
    gb_preq_result res;
    result_of(s, (uint64_t)s->gen << 32 | ref, &res);
    res.kind = GB_PREQ_ANSWERED;
    res.status = m->status;
    res.expires = m->expires;
    res.reason = buf + m->reason.off;
    res.reason_len = m->reason.len;
    res.source = *src;
    if (m->first[GB_HDR_TO]) {
        gb_name_addr na;
        gb_param tag;
        if (gb_parse_name_addr(buf, m->headers[m->first[GB_HDR_TO] - 1].value, 0, &na, NULL) ==
                GB_OK &&
            gb_params_find(buf, na.params, ';', "tag", 3, &tag) == 1 && tag.has_value) {
            res.to_tag = buf + tag.value.off;
            res.to_tag_len = tag.value.len;
        }
    }
    if (s->dest.transport == GB_TRANSPORT_TCP) {
        fn(arg, &res); /* reads the slot's device ID: release after */
        release(p, n);
        return GB_PREQ_MATCHED;
    }
    /* Completed: absorb repeated answers for Timer K */
    s->state = SLOT_COMPLETED;
    s->next_send = NO_DEADLINE;
    s->give_up = now + p->cfg.t4_ms;
    gb_heap_fix(&p->heap, s->heap_pos, heap_key, heap_moved, p);
    s->done_prev = p->done_tail;
    s->done_next = 0;
    if (p->done_tail)
        p->slots[p->done_tail - 1].done_next = ref;
    else
        p->done_head = ref;
    p->done_tail = ref;
    free(s->msg);
    s->msg = NULL;
    fn(arg, &res);
    return GB_PREQ_MATCHED;
}

void gb_preq_handle_timer(gb_preq_pool *p, int64_t now, gb_preq_result_fn fn, void *arg)
{
    while (p->heap.len) {
        uint32_t ref = p->heap.items[0];
        uint32_t n = ref - 1;
        slot *s = &p->slots[n];
        if (slot_deadline(s) > now)
            break;
        if (s->give_up <= now) {
            if (s->state != SLOT_COMPLETED) {
                p->st.timed_out++;
                gb_preq_result res;
                result_of(s, (uint64_t)s->gen << 32 | ref, &res);
                res.kind = GB_PREQ_TIMED_OUT;
                res.status = 408;
                fn(arg, &res);
                release(p, n);
            } else {
                release(p, n);
            }
            continue;
        }
        /* Timer E */
        p->st.retransmissions++;
        enqueue(p, n);
        if (s->state == SLOT_TRYING) {
            s->interval = s->interval * 2 < p->cfg.t2_ms ? s->interval * 2 : p->cfg.t2_ms;
            s->next_send = now + s->interval;
        } else {
            s->next_send = now + p->cfg.t2_ms;
        }
        gb_heap_fix(&p->heap, s->heap_pos, heap_key, heap_moved, p);
    }
}

int64_t gb_preq_next_deadline(const gb_preq_pool *p)
{
    if (!p->heap.len)
        return NO_DEADLINE;
    return slot_deadline(&p->slots[p->heap.items[0] - 1]);
}

void gb_preq_get_stats(const gb_preq_pool *p, gb_preq_stats *s)
{
    *s = p->st;
    s->in_flight = p->cfg.max_requests - p->nfree;
}
