/*
 * device.c - GB/T 28181 device (UAC) fleet: registration, refresh, keepalive
 * and unregistration state machines without I/O.  See device.h.
 *
 * Theory of operation.  Every device record holds two client transaction
 * slots (REGISTER and MESSAGE) and four deadlines (the two transactions'
 * Timer E and Timer F are folded into next_rt/timeout_at, plus reg_at for
 * refresh/retry and ka_at for the next keepalive).  The earliest of them is
 * the device's key in one binary min-heap for the whole fleet, so the fleet's
 * next deadline is the heap top and a timer tick touches only devices whose
 * time has come.  Requests are not stored: a retransmission rebuilds the same
 * bytes from the slot (branch, CSeq, nc) and the device's cached challenge,
 * and values that must repeat (the MESSAGE's Call-ID and tag, the cnonce) are
 * derived from the transaction's random branch number.
 *
 * Responses find their device through the Call-ID: a REGISTER's Call-ID is
 * the decimal form of the device's 64-bit key; a keepalive's is key XOR
 * mix(CSeq), so the key comes back from the response alone and one
 * open-addressing table (key -> index) serves both.  The transaction is then
 * the slot whose branch and CSeq match; a match with a completed slot is a
 * retransmitted final response (RFC 3261 Timer K's job, without a timer).
 *
 * All transitions of a device go through set_state(), which keeps the
 * per-state counters; events and outgoing bytes go to the shared queues.
 */
#include "device.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_internal.h"
#include "gb_containers.h"
#include "sip_auth.h"
#include "sip_fields.h"
#include "sip_writer.h"

/* ---- names ----------------------------------------------------------------- */

static const char *const state_names[GB_DEV_STATE__COUNT] = {
    "idle", "registering", "registered", "refreshing", "failed",
    "unregistering", "unregistered",
};

static const char *const event_names[GB_DEV_EV__COUNT] = {
    [0] = "none",
    [GB_DEV_EV_REGISTERED] = "registered",
    [GB_DEV_EV_REFRESHED] = "refreshed",
    [GB_DEV_EV_CHALLENGED] = "challenged",
    [GB_DEV_EV_FAILED] = "failed",
    [GB_DEV_EV_REDIRECTED] = "redirected",
    [GB_DEV_EV_KEEPALIVE_SENT] = "keepalive_sent",
    [GB_DEV_EV_KEEPALIVE_ANSWERED] = "keepalive_answered",
    [GB_DEV_EV_KEEPALIVE_MISSED] = "keepalive_missed",
    [GB_DEV_EV_KEEPALIVE_TIMEOUT] = "keepalive_timeout",
    [GB_DEV_EV_UNREGISTERED] = "unregistered",
    [GB_DEV_EV_QUERY] = "query",
    [GB_DEV_EV_CONTROL] = "control",
    [GB_DEV_EV_SUBSCRIBED] = "subscribed",
    [GB_DEV_EV_SUBSCRIPTION_ENDED] = "subscription_ended",
    [GB_DEV_EV_ANSWERED] = "answered",
    [GB_DEV_EV_ANSWER_FAILED] = "answer_failed",
    [GB_DEV_EV_REFUSED] = "refused",
};

static const char *const reason_names[GB_DEV_R__COUNT][2] = {
    {"none", ""},
    {"rejected", "refused by the server"},
    {"timeout", "no response (Timer F)"},
    {"auth_rejected", "credentials refused"},
    {"no_challenge", "no Digest challenge that can be answered"},
    {"too_many_challenges", "challenged again and again"},
    {"bad_min_expires", "423 without a larger Min-Expires"},
    {"bad_redirect", "redirect without a usable Contact, or a redirect loop"},
    {"nonce_too_long", "nonce too long to remember"},
    {"transport", "transport error"},
    {"internal", "Digest computation failed"},
    {"not_registered", "not registered"},
    {"abandoned", "went silent (abandoned)"},
    {"unsubscribed", "unsubscribed (Expires: 0)"},
    {"expired", "subscription not refreshed in time"},
    {"replaced", "replaced by a new subscription"},
    {"not_granted", "200 OK granting no lifetime (Expires: 0): not registered"},
};

const char *gb_dev_state_name(gb_dev_state s)
{
    return (unsigned)s < GB_DEV_STATE__COUNT ? state_names[s] : "unknown";
}

const char *gb_dev_event_name(gb_dev_event_type t)
{
    return (unsigned)t < GB_DEV_EV__COUNT ? event_names[t] : "unknown";
}

const char *gb_dev_reason_name(gb_dev_reason r)
{
    return (unsigned)r < GB_DEV_R__COUNT ? reason_names[r][0] : "unknown";
}

const char *gb_dev_reason_text(gb_dev_reason r)
{
    return (unsigned)r < GB_DEV_R__COUNT ? reason_names[r][1] : "unknown";
}

/* ---- small helpers ----------------------------------------------------------- */

uint64_t gbf_rnd(gb_fleet *f)
{
    if (f->cfg.rng)
        return f->cfg.rng(f->cfg.rng_arg);
    return gb_splitmix64(&f->rng_state);
}

/* Uniform in [0, 1). */
static double rnd_unit(gb_fleet *f)
{
    return (double)(gbf_rnd(f) >> 11) * (1.0 / 9007199254740992.0);
}

size_t gbf_fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static void fmt_hex16(char out[16], uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[v & 15];
        v >>= 4;
    }
}

static int own_set(own_str *s, const char *p, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        return -1;
    if (n)
        memcpy(c, p, n);
    c[n] = '\0';
    free(s->p);
    s->p = c;
    s->n = n;
    return 0;
}

static int own_cat(own_str *s, const char *a, size_t an, const char *b,
                   size_t bn, const char *c, size_t cn)
{
    char *x = malloc(an + bn + cn + 1);
    if (!x)
        return -1;
    memcpy(x, a, an);
    if (bn)
        memcpy(x + an, b, bn);
    if (cn)
        memcpy(x + an + bn, c, cn);
    x[an + bn + cn] = '\0';
    free(s->p);
    s->p = x;
    s->n = an + bn + cn;
    return 0;
}

gb_bytes gbf_own_bytes(const own_str *s)
{
    return (gb_bytes){s->p ? s->p : "", s->n};
}

/* ---- config ------------------------------------------------------------------ */

void gb_dev_config_default(gb_dev_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->server_port = 5060;
    cfg->transport = GB_DEV_UDP;
    cfg->capability_header = 1;
    cfg->expires = 3600;
    cfg->refresh_fraction = 0.5;
    cfg->jitter = 0.1;
    cfg->retry_interval_ms = 60000;
    cfg->keepalive_interval_ms = 60000;
    cfg->keepalive_max_missed = 3;
    cfg->t1_ms = 500;
    cfg->t2_ms = 4000;
    cfg->max_challenges = 3;
    cfg->preemptive_auth = 1;
    cfg->seed = 0x6762736970ULL;
    cfg->answer_max_message = 1400;
    cfg->answer_window = 1; /* 2022 Annex M: the parts one after another */
    cfg->max_answers = 65536;
    cfg->unregister_drain_ms = 5000;
    cfg->max_jobs = 65536;
    cfg->max_subscriptions = 65536;
    cfg->subscribe_default_expires = 600;
    cfg->subscribe_max_expires = 86400;
    cfg->record_segment_s = 1800;
    cfg->record_max = 256;
    cfg->utc_offset_min = 480;
    cfg->manscdp_lenient = GB_MANSCDP_LENIENT_ALL;
}

/* ---- heap (earliest deadline on top) ---------------------------------------- */

static int64_t dev_deadline(const void *ctx, uint32_t i)
{
    return ((const gb_fleet *)ctx)->devs[i].deadline;
}

static void dev_moved(void *ctx, uint32_t i, uint32_t pos)
{
    ((gb_fleet *)ctx)->devs[i].heap_pos = pos;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Recompute a device's deadline and its place in the heap. */
static void reschedule(gb_fleet *f, uint32_t i)
{
    gb_dev *d = &f->devs[i];
    int64_t t = min64(min64(d->reg.next_rt, d->reg.timeout_at),
                      min64(d->msg.next_rt, d->msg.timeout_at));
    t = min64(t, min64(d->reg_at, d->ka_at));
    d->deadline = t;
    if (t == GB_DEV_NEVER) {
        if (d->heap_pos != NONE_POS) {
            gb_heap_remove(&f->heap, d->heap_pos, dev_deadline, dev_moved, f);
            d->heap_pos = NONE_POS;
        }
    } else if (d->heap_pos == NONE_POS) {
        gb_heap_push(&f->heap, i, dev_deadline, dev_moved, f); /* room for every device */
    } else {
        gb_heap_fix(&f->heap, d->heap_pos, dev_deadline, dev_moved, f);
    }
}

/* ---- Call-ID table --------------------------------------------------------- */

static uint64_t key_hash(const gb_fleet *f, uint64_t key)
{
    return gb_siphash(&f->hkey, &key, sizeof key);
}

static uint64_t table_ref_hash(const void *ctx, uint32_t ref)
{
    const gb_fleet *f = ctx;
    return key_hash(f, f->devs[ref - 1].key);
}

static int table_ref_eq(const void *ctx, uint32_t ref, const void *key)
{
    return ((const gb_fleet *)ctx)->devs[ref - 1].key == *(const uint64_t *)key;
}

static long table_find(const gb_fleet *f, uint64_t key)
{
    uint32_t ref = gb_index_find(&f->table, key_hash(f, key), table_ref_eq, f, &key);
    return (long)ref - 1;
}

static void table_put(gb_fleet *f, uint32_t idx)
{
    gb_index_add(&f->table, key_hash(f, f->devs[idx].key), idx + 1);
}

static void table_del(gb_fleet *f, uint64_t key)
{
    uint32_t *slot = gb_index_slot(&f->table, key_hash(f, key), table_ref_eq, f, &key);
    if (*slot)
        gb_index_remove_at(&f->table, slot, table_ref_hash, f);
}

static int table_grow(gb_fleet *f, uint32_t want_devices)
{
    return gb_index_reserve(&f->table, want_devices, table_ref_hash, f);
}

/* ---- interned strings --------------------------------------------------------- */

/* Index + 1 of the string in the table (added when new), 0 when full. */
static uint8_t intern(gb_fleet *f, const char *p, size_t n)
{
    for (uint32_t i = 0; i < f->ninterned; i++)
        if (f->interned[i].n == n && memcmp(f->interned[i].p, p, n) == 0)
            return (uint8_t)(i + 1);
    if (f->ninterned >= MAX_INTERN || own_set(&f->interned[f->ninterned], p, n))
        return 0;
    return (uint8_t)(++f->ninterned);
}

int gb_fleet_local_host(gb_fleet *f, const char *host, size_t len)
{
    for (uint32_t i = 0; i < f->nlocal; i++)
        if (f->local_hosts[i].n == len && memcmp(f->local_hosts[i].p, host, len) == 0)
            return (int)i;
    if (f->nlocal >= MAX_INTERN || len == 0 || own_set(&f->local_hosts[f->nlocal], host, len))
        return -1;
    return (int)f->nlocal++;
}

/* ---- queues ---------------------------------------------------------------- */

/* A new zeroed record at the end of q, or NULL when out of memory. */
static void *queue_push(queue *q, size_t elem)
{
    if (gb_grow(&q->items, &q->cap, q->n + 1, elem))
        return NULL;
    void *rec = (char *)q->items + elem * q->n++;
    memset(rec, 0, elem);
    return rec;
}

/* Room for `room` more bytes; their start, or NULL when out of memory. */
static char *queue_room(queue *q, size_t room)
{
    return gb_grow((void **)&q->bytes, &q->bytes_cap, q->len + room, 1) ? NULL
                                                                         : q->bytes + q->len;
}

static void queue_clear(queue *q)
{
    q->n = 0;
    q->len = 0;
}

static void queue_free(queue *q)
{
    free(q->items);
    free(q->bytes);
}

static size_t queue_memory(const queue *q, size_t elem)
{
    return q->cap * elem + q->bytes_cap;
}

gb_dev_event *gbf_push_event(gb_fleet *f, uint32_t dev, int type, int64_t now)
{
    gb_dev_event *e = queue_push(&f->ev, sizeof *e);
    if (!e)
        return NULL; /* out of memory: the event is lost, state stays right */
    e->dev = dev;
    e->type = (uint8_t)type;
    e->time_ms = now;
    e->arg = INT64_MIN;
    return e;
}

/* An event of this type saying why: status, reason and the response's
 * reason phrase (text NULL: the reason's own text).  NULL when lost. */
gb_dev_event *gbf_push_why(gb_fleet *f, uint32_t dev, int type, int64_t now,
                              unsigned status, int reason, const char *text, size_t text_len)
{
    gb_dev_event *e = gbf_push_event(f, dev, type, now);
    if (e) {
        e->status = (uint16_t)status;
        e->reason = (uint8_t)reason;
        if (!text) {
            text = gb_dev_reason_text((gb_dev_reason)reason);
            text_len = strlen(text);
        }
        gbf_event_text(f, e, text, text_len);
    }
    return e;
}

void gbf_event_text(gb_fleet *f, gb_dev_event *e, const char *p, size_t n)
{
    char *room;
    if (!e || n == 0 || !(room = queue_room(&f->ev, n)))
        return;
    memcpy(room, p, n);
    e->text_off = (uint32_t)f->ev.len;
    e->text_len = (uint32_t)n;
    f->ev.len += n;
}

const gb_state_move gb_dev_moves[] = {
    {GB_DEV_IDLE, GB_DEV_REGISTERING, "start"},
    {GB_DEV_IDLE, GB_DEV_UNREGISTERED, "stop, abandon"},
    {GB_DEV_REGISTERING, GB_DEV_REGISTERED, "2xx"},
    {GB_DEV_REGISTERING, GB_DEV_FAILED, "refused, Timer F, transport error"},
    {GB_DEV_REGISTERING, GB_DEV_REGISTERING, "keepalives lost"},
    {GB_DEV_REGISTERING, GB_DEV_UNREGISTERING, "stop"},
    {GB_DEV_REGISTERING, GB_DEV_UNREGISTERED, "abandon, stop with nothing in flight"},
    {GB_DEV_REGISTERED, GB_DEV_REFRESHING, "refresh timer"},
    {GB_DEV_REGISTERED, GB_DEV_REGISTERING, "keepalives lost"},
    {GB_DEV_REGISTERED, GB_DEV_UNREGISTERING, "stop"},
    {GB_DEV_REGISTERED, GB_DEV_UNREGISTERED, "abandon"},
    {GB_DEV_REFRESHING, GB_DEV_REGISTERED, "2xx"},
    {GB_DEV_REFRESHING, GB_DEV_FAILED, "refused, Timer F, transport error"},
    {GB_DEV_REFRESHING, GB_DEV_REGISTERING, "keepalives lost"},
    {GB_DEV_REFRESHING, GB_DEV_UNREGISTERING, "stop"},
    {GB_DEV_REFRESHING, GB_DEV_UNREGISTERED, "abandon"},
    {GB_DEV_FAILED, GB_DEV_REGISTERING, "retry timer, start, back to the redirect server"},
    {GB_DEV_FAILED, GB_DEV_UNREGISTERED, "stop, abandon"},
    {GB_DEV_UNREGISTERING, GB_DEV_UNREGISTERED, "2xx, refused, Timer F, abandon"},
    {GB_DEV_UNREGISTERED, GB_DEV_REGISTERING, "start"},
};
const size_t gb_dev_nmoves = sizeof gb_dev_moves / sizeof gb_dev_moves[0];

/* The one place a device's state changes: only along gb_dev_moves.  An
 * illegal move is refused and counted (a bug: asserted in debug builds). */
static int set_state(gb_fleet *f, gb_dev *d, gb_dev_state to)
{
    if (gb_state_move_take(gb_dev_moves, gb_dev_nmoves, d->state, to, f->stats.moves[0],
                           GB_DEV_STATE__COUNT, &f->stats.illegal_moves) < 0)
        return -1;
    f->stats.by_state[d->state]--;
    d->state = (uint8_t)to;
    f->stats.by_state[to]++;
    return 0;
}

/* ---- message building ------------------------------------------------------- */

static gb_bytes dev_password(const gb_fleet *f, const gb_dev *d)
{
    if (d->password)
        return (gb_bytes){d->password, strlen(d->password)};
    return f->cfg.password;
}

gb_bytes gbf_dest_uri(const gb_fleet *f, int dest, int for_message)
{
    if (dest == 0)
        return for_message ? f->cfg.message_uri : f->cfg.request_uri;
    return gbf_own_bytes(&f->dests[dest].uri);
}

void gbf_w_num(gb_writer *w, uint64_t v)
{
    char tmp[20];
    gb_w_bytes(w, tmp, gbf_fmt_u64(tmp, v));
}

void gbf_w_b(gb_writer *w, gb_bytes b)
{
    gb_w_bytes(w, b.p, b.n);
}

void gbf_w_via(gb_fleet *f, gb_writer *w, const gb_dev *d, uint64_t branch)
{
    const own_str *h = &f->local_hosts[d->local_host];
    W_LIT(w, "Via: SIP/2.0/");
    gb_w_cstr(w, f->cfg.transport == GB_DEV_TCP ? "TCP " : "UDP ");
    gb_w_bytes(w, h->p, h->n);
    W_LIT(w, ":");
    gbf_w_num(w, d->local_port);
    W_LIT(w, ";rport;branch=z9hG4bK");
    gbf_w_num(w, branch);
    W_LIT(w, "\r\n");
}

void gbf_w_aor(gb_fleet *f, gb_writer *w, const char *user, size_t n)
{
    W_LIT(w, "<sip:");
    gb_w_bytes(w, user, n);
    W_LIT(w, "@");
    gbf_w_b(w, f->cfg.domain);
    W_LIT(w, ">");
}

/* Max-Forwards and User-Agent: the device profile's vendor stack, else
 * the fleet's. */
void gbf_w_tail(gb_fleet *f, gb_writer *w, const gb_dev *d)
{
    W_LIT(w, "Max-Forwards: 70\r\n");
    gb_bytes ua = f->profiles[d->profile].utf8[GB_CAM_F_USER_AGENT];
    if (!ua.n)
        ua = f->cfg.user_agent;
    if (ua.n) {
        W_LIT(w, "User-Agent: ");
        gbf_w_b(w, ua);
        W_LIT(w, "\r\n");
    }
}

/* "Contact: <sip:id@host:port[;transport=tcp]params>" CRLF */
void gbf_w_contact(gb_fleet *f, gb_writer *w, const gb_dev *d)
{
    const own_str *h = &f->local_hosts[d->local_host];
    W_LIT(w, "Contact: <sip:");
    gb_w_bytes(w, d->id, d->id_len);
    W_LIT(w, "@");
    gb_w_bytes(w, h->p, h->n);
    W_LIT(w, ":");
    gbf_w_num(w, d->local_port);
    if (f->cfg.transport == GB_DEV_TCP)
        W_LIT(w, ";transport=tcp");
    gbf_w_b(w, f->cfg.contact_params);
    W_LIT(w, ">\r\n");
}

/* The Digest credentials for the device's cached challenge into out.
 * Returns the length, or -1 (reason in *why_code). */
static long credentials(gb_fleet *f, const gb_dev *d, const gb_tx *tx,
                        const char *method, gb_bytes uri, char *out, size_t cap,
                        int *why_code)
{
    char cnonce[16], nc[8], resp[GB_DIGEST_HEX_MAX];
    const char *why = NULL;
    fmt_hex16(cnonce, gb_mix64(tx->branch ^ 0x636e6f6e6365ULL));
    static const char hex[] = "0123456789abcdef";
    for (int i = 7, v = 0; i >= 0; i--, v += 4)
        nc[i] = hex[(tx->nc >> v) & 15];
    const own_str *realm = &f->interned[d->realm - 1];
    int sess = d->alg == GB_DIGEST_MD5_SESS || d->alg == GB_DIGEST_SHA256_SESS ||
               d->alg == GB_DIGEST_SHA512_256_SESS;
    int want_cnonce = d->qop != GB_QOP_NONE || sess;
    gb_digest_input in = {
        .alg = (gb_digest_alg)d->alg,
        .qop = d->qop,
        .username = {d->id, d->id_len},
        .realm = gbf_own_bytes(realm),
        .password = dev_password(f, d),
        .nonce = {d->nonce, d->nonce_len},
        .cnonce = {want_cnonce ? cnonce : NULL, want_cnonce ? 16 : 0},
        .nc = {nc, 8},
        .method = {method, strlen(method)},
        .uri = uri,
        .body = {"", 0},
    };
    int rn = gb_digest_response(f->dctx, &in, resp, &why);
    if (rn < 0) {
        *why_code = GB_DEV_R_INTERNAL;
        return -1;
    }
    gb_digest_credentials_out co = {
        .username = in.username,
        .realm = in.realm,
        .nonce = in.nonce,
        .uri = uri,
        .response = {resp, (size_t)rn},
        .cnonce = in.cnonce,
        .opaque = d->opaque ? gbf_own_bytes(&f->interned[d->opaque - 1])
                            : (gb_bytes){NULL, 0},
        .nc = in.nc,
        .alg = (gb_digest_alg)d->alg,
        .qop = d->qop,
    };
    long n = gb_digest_build_credentials(out, cap, &co);
    if (n < 0 || (size_t)n > cap) {
        *why_code = GB_DEV_R_INTERNAL;
        return -1;
    }
    return n;
}

/* Reserve room at the end of the output buffer and start a writer there. */
int gbf_out_begin(gb_fleet *f, gb_writer *w, size_t room)
{
    char *p = queue_room(&f->out, room);
    if (!p)
        return -1;
    gb_w_init(w, p, f->out.bytes_cap - f->out.len);
    return 0;
}

int gbf_out_commit(gb_fleet *f, const gb_writer *w, uint32_t dev, int dest,
                   int retransmit)
{
    gb_dev_out *o = w->overflow ? NULL : queue_push(&f->out, sizeof *o);
    if (!o)
        return -1;
    *o = (gb_dev_out){.dev = dev, .dest = (uint16_t)dest, .retransmit = (uint16_t)!!retransmit,
                      .off = (uint32_t)f->out.len, .len = (uint32_t)w->len};
    f->out.len += w->len;
    return 0;
}

/* A message built elsewhere (the camera side keeps its requests' bytes). */
int gbf_out_bytes(gb_fleet *f, const char *p, size_t n, uint32_t dev, int dest,
                  int retransmit)
{
    gb_writer w;
    if (gbf_out_begin(f, &w, n))
        return -1;
    gb_w_bytes(&w, p, n);
    return gbf_out_commit(f, &w, dev, dest, retransmit);
}

size_t gbf_room_for(const gb_fleet *f)
{
    return 1024 + 2 * GB_DIGEST_MAX_NONCE + f->cfg.request_uri.n +
           f->cfg.message_uri.n + f->cfg.domain.n * 3 + f->cfg.user_agent.n +
           f->cfg.contact_params.n + f->cfg.gb_version.n + 512;
}

/* Emit the REGISTER in the device's slot.  -1 with *why when it cannot. */
static int emit_register(gb_fleet *f, uint32_t i, int retransmit, int *why)
{
    gb_dev *d = &f->devs[i];
    gb_tx *tx = &d->reg;
    gb_bytes ruri = gbf_dest_uri(f, tx->dest, 0);
    char cred[3 * GB_DIGEST_MAX_NONCE + 1024];
    long cn = 0;
    *why = GB_DEV_R_INTERNAL;
    if (tx->auth) {
        cn = credentials(f, d, tx, "REGISTER", ruri, cred, sizeof cred, why);
        if (cn < 0)
            return -1;
    }
    gb_writer w;
    for (size_t room = gbf_room_for(f); room < (1u << 20); room *= 4) {
        if (gbf_out_begin(f, &w, room))
            return -1;
        W_LIT(&w, "REGISTER ");
        gbf_w_b(&w, ruri);
        W_LIT(&w, " SIP/2.0\r\n");
        gbf_w_via(f, &w, d, tx->branch);
        W_LIT(&w, "From: ");
        gbf_w_aor(f, &w, d->id, d->id_len);
        W_LIT(&w, ";tag=");
        gbf_w_num(&w, d->from_tag);
        W_LIT(&w, "\r\nTo: ");
        gbf_w_aor(f, &w, d->id, d->id_len);
        W_LIT(&w, "\r\nCall-ID: ");
        gbf_w_num(&w, d->key);
        W_LIT(&w, "\r\nCSeq: ");
        gbf_w_num(&w, tx->cseq);
        W_LIT(&w, " REGISTER\r\n");
        gbf_w_contact(f, &w, d);
        if (tx->auth) {
            if (d->proxy)
                W_LIT(&w, "Proxy-Authorization: ");
            else
                W_LIT(&w, "Authorization: ");
            gb_w_bytes(&w, cred, (size_t)cn);
            W_LIT(&w, "\r\n");
        }
        gbf_w_tail(f, &w, d);
        W_LIT(&w, "Expires: ");
        gbf_w_num(&w, tx->kind == REG_UNREGISTER ? 0 : d->expires_req);
        W_LIT(&w, "\r\n");
        if (!tx->auth && f->cfg.capability_header)
            W_LIT(&w, "Authorization: Capability, algorithm=\"H:MD5\"\r\n");
        if (f->cfg.gb_version.n) {
            W_LIT(&w, "X-GB-Ver: ");
            gbf_w_b(&w, f->cfg.gb_version);
            W_LIT(&w, "\r\n");
        }
        W_LIT(&w, "Content-Length: 0\r\n\r\n");
        if (!w.overflow)
            break;
    }
    return gbf_out_commit(f, &w, i, tx->dest, retransmit);
}

static uint64_t message_call_id(const gb_dev *d, uint32_t cseq)
{
    return d->key ^ gb_mix64(cseq);
}

/* A MESSAGE to the platform (destination dest) carrying a MANSCDP body:
 * the keepalive, and the camera side's answers and alarms. */
void gbf_w_message(gb_fleet *f, gb_writer *w, const gb_dev *d, int dest, uint64_t branch,
                   uint32_t tag, uint64_t call_id, uint32_t cseq, const char *body,
                   size_t body_len)
{
    W_LIT(w, "MESSAGE ");
    gbf_w_b(w, gbf_dest_uri(f, dest, 1));
    W_LIT(w, " SIP/2.0\r\n");
    gbf_w_via(f, w, d, branch);
    W_LIT(w, "From: ");
    gbf_w_aor(f, w, d->id, d->id_len);
    W_LIT(w, ";tag=");
    gbf_w_num(w, tag);
    W_LIT(w, "\r\nTo: ");
    if (f->cfg.server_id.n)
        gbf_w_aor(f, w, f->cfg.server_id.p, f->cfg.server_id.n);
    else {
        W_LIT(w, "<");
        gbf_w_b(w, gbf_dest_uri(f, dest, 1));
        W_LIT(w, ">");
    }
    W_LIT(w, "\r\nCall-ID: ");
    gbf_w_num(w, call_id);
    W_LIT(w, "\r\nCSeq: ");
    gbf_w_num(w, cseq);
    W_LIT(w, " MESSAGE\r\n");
    gbf_w_tail(f, w, d);
    W_LIT(w, "Content-Type: Application/MANSCDP+xml\r\nContent-Length: ");
    gbf_w_num(w, body_len);
    W_LIT(w, "\r\n\r\n");
    gb_w_bytes(w, body, body_len);
}

static int emit_message(gb_fleet *f, uint32_t i, int retransmit)
{
    gb_dev *d = &f->devs[i];
    gb_tx *tx = &d->msg;
    char body[256 + GB_DEV_ID_MAX];
    gb_writer bw;
    gb_w_init(&bw, body, sizeof body);
    W_LIT(&bw, "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n"
               "<CmdType>Keepalive</CmdType>\r\n<SN>");
    gbf_w_num(&bw, tx->cseq);
    W_LIT(&bw, "</SN>\r\n<DeviceID>");
    gb_w_bytes(&bw, d->id, d->id_len);
    W_LIT(&bw, "</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n");
    gb_writer w;
    for (size_t room = gbf_room_for(f) + bw.len; room < (1u << 20); room *= 4) {
        if (gbf_out_begin(f, &w, room))
            return -1;
        gbf_w_message(f, &w, d, tx->dest, tx->branch, (uint32_t)gb_mix64(tx->branch),
                      message_call_id(d, tx->cseq), tx->cseq, body, bw.len);
        if (!w.overflow)
            break;
    }
    return gbf_out_commit(f, &w, i, tx->dest, retransmit);
}

/* ---- transactions -------------------------------------------------------------- */

static void tx_start(gb_fleet *f, gb_tx *tx, int64_t now)
{
    tx->branch = gbf_rnd(f);
    tx->state = TX_TRYING;
    tx->started = now;
    tx->interval = f->cfg.t1_ms;
    tx->next_rt = f->cfg.transport == GB_DEV_UDP ? now + f->cfg.t1_ms : GB_DEV_NEVER;
    tx->timeout_at = now + f->timer_f;
}

static void tx_end(gb_tx *tx)
{
    if (tx->state == TX_TRYING || tx->state == TX_PROCEEDING)
        tx->state = TX_COMPLETED;
    tx->next_rt = GB_DEV_NEVER;
    tx->timeout_at = GB_DEV_NEVER;
}

static void tx_forget(gb_tx *tx)
{
    tx->state = TX_IDLE;
    tx->next_rt = GB_DEV_NEVER;
    tx->timeout_at = GB_DEV_NEVER;
}

static int tx_live(const gb_tx *tx)
{
    return tx->state == TX_TRYING || tx->state == TX_PROCEEDING;
}

static void fail(gb_fleet *f, uint32_t i, int64_t now, unsigned status,
                 int reason, const char *text, size_t text_len);

/* Send a new REGISTER of this kind (CSeq + 1, new branch), with
 * credentials for the cached challenge when auth. */
static void register_tx(gb_fleet *f, uint32_t i, int kind, int auth, int64_t now)
{
    gb_dev *d = &f->devs[i];
    gb_tx *tx = &d->reg;
    tx_start(f, tx, now);
    tx->kind = (uint8_t)kind;
    tx->cseq = ++d->cseq;
    tx->dest = d->dest;
    tx->auth = (uint8_t)auth;
    if (auth)
        tx->nc = d->qop != GB_QOP_NONE ? ++d->nc : 1;
    int why;
    f->stats.requests_sent++;
    if (emit_register(f, i, 0, &why) < 0) {
        tx_end(tx);
        fail(f, i, now, 0, why, NULL, 0);
    }
}

/* The same with credentials when there is a cached challenge and the
 * policy sends them unasked. */
static void send_register(gb_fleet *f, uint32_t i, int kind, int64_t now)
{
    const gb_dev *d = &f->devs[i];
    register_tx(f, i, kind, d->realm != 0 && (kind == REG_INITIAL || f->cfg.preemptive_auth),
                now);
}

static void clear_auth(gb_dev *d)
{
    d->realm = 0;
    d->opaque = 0;
    d->nonce_len = 0;
    d->nc = 0;
    d->challenges = 0;
}

/* A new registration attempt from scratch (the seed's first REGISTER). */
static void begin_cycle(gb_fleet *f, uint32_t i, int64_t now)
{
    gb_dev *d = &f->devs[i];
    clear_auth(d);
    d->cycle_start = now;
    d->reg_at = GB_DEV_NEVER;
    d->ka_at = GB_DEV_NEVER;
    d->expires_req = f->cfg.expires;
    if (d->msg.state != TX_IDLE)
        tx_forget(&d->msg);
    set_state(f, d, GB_DEV_REGISTERING);
    send_register(f, i, REG_INITIAL, now);
}

static int64_t jittered(gb_fleet *f, uint32_t base_ms)
{
    double j = f->cfg.jitter;
    double v = (double)base_ms * (1.0 + j * (2.0 * rnd_unit(f) - 1.0));
    return v < 1.0 ? 1 : (int64_t)v;
}

/* Milliseconds from then to now for an event's latency (0 when unknown). */
uint32_t gbf_ms_since(int64_t now, int64_t then)
{
    int64_t dt = now - then;
    return dt > 0 && dt < (int64_t)UINT32_MAX ? (uint32_t)dt : 0;
}

/* The current attempt failed: report it and arrange the next one. */
static void fail(gb_fleet *f, uint32_t i, int64_t now, unsigned status,
                 int reason, const char *text, size_t text_len)
{
    gb_dev *d = &f->devs[i];
    if (d->state == GB_DEV_UNREGISTERING) {
        set_state(f, d, GB_DEV_UNREGISTERED);
        f->stats.unregistrations++;
        gb_dev_event *e = gbf_push_why(f, i, GB_DEV_EV_UNREGISTERED, now, status, reason,
                                   text, text_len);
        if (e)
            e->latency_ms = gbf_ms_since(now, d->cycle_start);
        d->reg_at = d->ka_at = GB_DEV_NEVER;
        return;
    }
    f->stats.failures++;
    d->last_status = (uint16_t)status;
    d->last_reason = (uint8_t)reason;
    d->ka_at = GB_DEV_NEVER;
    d->registered_until = GB_DEV_NEVER;
    if (d->msg.state != TX_IDLE)
        tx_forget(&d->msg);
    clear_auth(d);
    /* 2022 §9.1.2.3: refused by (or lost at) a redirect target, start over
     * at the redirect server at once, unless redirects keep failing. */
    int back = d->dest != 0 && d->redirects < MAX_REDIRECTS;
    d->dest = 0;
    int64_t at = back ? now : now + jittered(f, f->cfg.retry_interval_ms);
    gb_dev_event *e = gbf_push_why(f, i, GB_DEV_EV_FAILED, now, status, reason, text, text_len);
    if (e) {
        e->arg = at;
        e->latency_ms = gbf_ms_since(now, d->cycle_start);
    }
    set_state(f, d, GB_DEV_FAILED);
    if (back) {
        begin_cycle(f, i, now);
        return;
    }
    d->redirects = 0;
    d->reg_at = at;
}

static void send_keepalive(gb_fleet *f, uint32_t i, int64_t now)
{
    gb_dev *d = &f->devs[i];
    gb_tx *tx = &d->msg;
    tx_start(f, tx, now);
    tx->cseq = ++d->sn;
    tx->dest = d->dest;
    f->stats.requests_sent++;
    f->stats.keepalives_sent++;
    if (emit_message(f, i, 0) < 0) {
        tx_forget(tx);
        return;
    }
    gb_dev_event *e = gbf_push_event(f, i, GB_DEV_EV_KEEPALIVE_SENT, now);
    if (e)
        e->value = tx->cseq;
}

/* One keepalive went unanswered (or was refused); three and we re-register. */
static void keepalive_missed(gb_fleet *f, uint32_t i, int64_t now,
                             unsigned status)
{
    gb_dev *d = &f->devs[i];
    f->stats.keepalives_missed++;
    if (d->missed < 255)
        d->missed++;
    gb_dev_event *e = gbf_push_event(f, i, GB_DEV_EV_KEEPALIVE_MISSED, now);
    if (e) {
        e->value = d->msg.cseq;
        e->status = (uint16_t)status;
        e->arg = d->missed;
        e->latency_ms = gbf_ms_since(now, d->msg.started);
    }
    if (d->missed < f->cfg.keepalive_max_missed)
        return;
    f->stats.keepalive_timeouts++;
    e = gbf_push_event(f, i, GB_DEV_EV_KEEPALIVE_TIMEOUT, now);
    if (e)
        e->value = d->missed;
    d->missed = 0;
    d->registered_until = GB_DEV_NEVER;
    /* The platform is offline: register again, at the redirect server when
     * this was a redirect target (2022 §9.1.2.3). */
    d->dest = 0;
    begin_cycle(f, i, now);
}

/* ---- public: lifecycle -------------------------------------------------------- */

gb_fleet *gb_fleet_new(const gb_dev_config *cfg, uint32_t capacity,
                       const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (cfg->t1_ms == 0 || cfg->t2_ms < cfg->t1_ms) {
        *why = "T1 must be > 0 and T2 >= T1";
        return NULL;
    }
    if (!(cfg->refresh_fraction > 0.0 && cfg->refresh_fraction <= 1.0)) {
        *why = "refresh_fraction must be in (0, 1]";
        return NULL;
    }
    if (!(cfg->jitter >= 0.0 && cfg->jitter <= 0.5)) {
        *why = "jitter must be in [0, 0.5]";
        return NULL;
    }
    if (cfg->transport != GB_DEV_UDP && cfg->transport != GB_DEV_TCP) {
        *why = "transport must be UDP or TCP";
        return NULL;
    }
    if ((uint64_t)cfg->t1_ms * 64 > UINT32_MAX / 2) {
        *why = "T1 too large";
        return NULL;
    }
    if (cfg->answer_max_message < 256 || cfg->answer_max_message > 65000) {
        *why = "answer_max_message must be in [256, 65000]";
        return NULL;
    }
    if (cfg->record_segment_s == 0 || cfg->utc_offset_min < -1440 ||
        cfg->utc_offset_min > 1440) {
        *why = "record_segment_s must be > 0 and utc_offset_min within a day";
        return NULL;
    }
    gb_fleet *f = calloc(1, sizeof *f);
    if (!f) {
        *why = "out of memory";
        return NULL;
    }
    f->cfg = *cfg;
    f->timer_f = 64 * cfg->t1_ms;
    f->rng_state = cfg->seed;
    f->hkey = gb_hash_key_from(cfg->hash_key);
    int bad = 0;
#define OWN(field) bad |= own_set(&f->field, cfg->field.p ? cfg->field.p : "", \
                                  cfg->field.p ? cfg->field.n : 0)
    OWN(server_id);
    OWN(server_host);
    OWN(password);
    OWN(contact_params);
    OWN(gb_version);
#undef OWN
    if (cfg->user_agent.p)
        bad |= own_set(&f->user_agent, cfg->user_agent.p, cfg->user_agent.n);
    else
        bad |= own_set(&f->user_agent, "gbsip", 5);
    if (cfg->domain.p && cfg->domain.n)
        bad |= own_set(&f->domain, cfg->domain.p, cfg->domain.n);
    else if (f->server_id.n >= 10)
        bad |= own_set(&f->domain, f->server_id.p, 10);
    else
        bad |= own_set(&f->domain, f->server_host.p ? f->server_host.p : "",
                       f->server_host.n);
    if (!bad && f->domain.n == 0) {
        gb_fleet_free(f);
        *why = "a domain, a server ID or a server host is needed";
        return NULL;
    }
    own_str *targets[2] = {&f->request_uri, &f->message_uri};
    const gb_bytes given[2] = {cfg->request_uri, cfg->message_uri};
    for (int k = 0; k < 2 && !bad; k++) {
        if (given[k].p && given[k].n)
            bad |= own_set(targets[k], given[k].p, given[k].n);
        else if (f->server_id.n)
            bad |= own_cat(targets[k], "sip:", 4, f->server_id.p, f->server_id.n, "@", 1) ||
                   own_cat(targets[k], targets[k]->p, targets[k]->n, f->domain.p,
                           f->domain.n, "", 0);
        else
            bad |= own_cat(targets[k], "sip:", 4, f->domain.p, f->domain.n, "", 0);
    }
    f->cfg.domain = gbf_own_bytes(&f->domain);
    f->cfg.server_id = gbf_own_bytes(&f->server_id);
    f->cfg.request_uri = gbf_own_bytes(&f->request_uri);
    f->cfg.message_uri = gbf_own_bytes(&f->message_uri);
    f->cfg.server_host = gbf_own_bytes(&f->server_host);
    f->cfg.password = gbf_own_bytes(&f->password);
    f->cfg.user_agent = gbf_own_bytes(&f->user_agent);
    f->cfg.contact_params = gbf_own_bytes(&f->contact_params);
    f->cfg.gb_version = gbf_own_bytes(&f->gb_version);
    if (!bad) {
        dest_entry *d0 = &f->dests[0];
        bad |= own_set(&d0->host, f->server_host.p, f->server_host.n);
        bad |= own_set(&d0->uri, f->request_uri.p, f->request_uri.n);
        d0->port = cfg->server_port;
        f->ndests = 1;
    }
    if (!bad)
        bad |= gb_fleet_local_host(f, "127.0.0.1", 9) != 0;
    f->dctx = bad ? NULL : gb_digest_ctx_new();
    if (!bad && !f->dctx) {
        gb_fleet_free(f);
        *why = "OpenSSL offers no Digest algorithm";
        return NULL;
    }
    uint32_t cap = capacity ? capacity : 1;
    if (!bad) {
        f->devs = malloc((size_t)cap * sizeof *f->devs);
        f->cap = cap;
        bad |= !f->devs || gb_heap_reserve(&f->heap, cap) || table_grow(f, cap);
    }
    if (!bad)
        bad |= gbf_cam_init(f);
    if (bad) {
        gb_fleet_free(f);
        *why = "out of memory";
        return NULL;
    }
    return f;
}

void gb_fleet_free(gb_fleet *f)
{
    if (!f)
        return;
    for (uint32_t i = 0; i < f->ndevs; i++)
        free(f->devs[i].password);
    own_str *strs[] = {&f->domain, &f->server_id, &f->request_uri,
                       &f->message_uri, &f->server_host, &f->password,
                       &f->user_agent, &f->contact_params, &f->gb_version};
    for (size_t k = 0; k < sizeof strs / sizeof *strs; k++)
        free(strs[k]->p);
    for (uint32_t k = 0; k < MAX_INTERN; k++) {
        free(f->local_hosts[k].p);
        free(f->interned[k].p);
    }
    for (uint32_t k = 0; k < GB_FLEET_MAX_DESTS; k++) {
        free(f->dests[k].host.p);
        free(f->dests[k].uri.p);
    }
    gbf_cam_free(f);
    gb_digest_ctx_free(f->dctx);
    free(f->devs);
    gb_heap_free(&f->heap);
    gb_index_free(&f->table);
    queue_free(&f->out);
    queue_free(&f->ev);
    free(f);
}

/* A new device record (the Call-ID table knows it; the ID index does not). */
static long add_device(gb_fleet *f, const char *id, size_t id_len)
{
    if (id_len == 0 || id_len > GB_DEV_ID_MAX || f->ndevs == UINT32_MAX - 1)
        return -1;
    if (f->ndevs == f->cap) {
        uint32_t ncap = f->cap < 0x40000000u ? f->cap * 2 : UINT32_MAX - 1;
        gb_dev *nd = realloc(f->devs, (size_t)ncap * sizeof *nd);
        if (!nd)
            return -1;
        f->devs = nd;
        if (gb_heap_reserve(&f->heap, ncap))
            return -1;
        f->cap = ncap;
    }
    if (table_grow(f, f->ndevs + 1))
        return -1;
    uint32_t i = f->ndevs;
    gb_dev *d = &f->devs[i];
    memset(d, 0, sizeof *d);
    memcpy(d->id, id, id_len);
    d->id_len = (uint8_t)id_len;
    d->heap_pos = NONE_POS;
    d->deadline = d->reg_at = d->ka_at = d->registered_until = GB_DEV_NEVER;
    tx_forget(&d->reg);
    tx_forget(&d->msg);
    d->local_port = 5060;
    d->expires_req = f->cfg.expires;
    f->ndevs++;
    f->stats.by_state[GB_DEV_IDLE]++;
    /* A Call-ID number no other device has (the table stays consistent). */
    do {
        d->key = gbf_rnd(f);
    } while (table_find(f, d->key) >= 0);
    d->from_tag = (uint32_t)gbf_rnd(f);
    table_put(f, i);
    gbf_cam_dev_init(f, i);
    return (long)i;
}

long gb_fleet_add(gb_fleet *f, const char *id, size_t id_len)
{
    long i = add_device(f, id, id_len);
    if (i >= 0 && gbf_ids_add(f, (uint32_t)i)) {
        /* no room in the ID index: take the record back */
        table_del(f, f->devs[i].key);
        f->stats.by_state[GB_DEV_IDLE]--;
        f->ndevs--;
        return -1;
    }
    return i;
}

long gb_fleet_add_serial(gb_fleet *f, const char *prefix, size_t plen, uint64_t start,
                         uint32_t n, unsigned digits)
{
    if (digits < 1 || digits > 19 || plen + digits > GB_DEV_ID_MAX || n == 0 ||
        f->nranges >= GBF_MAX_RANGES || n > UINT32_MAX - 1 - f->ndevs)
        return -1;
    uint64_t limit = 1;
    for (unsigned k = 0; k < digits; k++)
        limit *= 10;
    if (start >= limit || n > limit - start)
        return -1;
    for (size_t k = 0; k < plen; k++)
        if (prefix[k] == '\0')
            return -1;
    char id[GB_DEV_ID_MAX];
    memcpy(id, prefix, plen);
    uint32_t first = f->ndevs;
    for (uint32_t k = 0; k < n; k++) {
        uint64_t v = start + k;
        for (int j = (int)digits - 1; j >= 0; j--) {
            id[plen + (size_t)j] = (char)('0' + v % 10);
            v /= 10;
        }
        if (add_device(f, id, plen + digits) < 0)
            return -1; /* the devices added so far stay, without their range */
    }
    gbf_range *r = &f->ranges[f->nranges++];
    r->first = first;
    r->count = n;
    r->start = start;
    r->plen = (uint8_t)plen;
    r->digits = (uint8_t)digits;
    memcpy(r->prefix, prefix, plen);
    return (long)first;
}

long gb_fleet_find(const gb_fleet *f, const char *id, size_t len)
{
    return gbf_find_device(f, id, len);
}

uint32_t gb_fleet_count(const gb_fleet *f) { return f->ndevs; }

/* The device's record, NULL for an index out of range. */
static gb_dev *device(gb_fleet *f, uint32_t dev)
{
    return dev < f->ndevs ? &f->devs[dev] : NULL;
}


int gb_fleet_set_local(gb_fleet *f, uint32_t dev, int host_index, uint16_t port)
{
    gb_dev *d = device(f, dev);
    if (!d || host_index < 0 || (uint32_t)host_index >= f->nlocal)
        return -1;
    d->local_host = (uint8_t)host_index;
    d->local_port = port;
    return 0;
}

int gb_fleet_set_password(gb_fleet *f, uint32_t dev, const char *pw, size_t len)
{
    gb_dev *d = device(f, dev);
    if (!d)
        return -1;
    char *c = NULL;
    if (pw) {
        c = malloc(len + 1);
        if (!c)
            return -1;
        memcpy(c, pw, len);
        c[len] = '\0';
        if (memchr(c, '\0', len)) {
            free(c);
            return -1;
        }
    }
    free(d->password);
    d->password = c;
    return 0;
}

int gb_fleet_set_dialog(gb_fleet *f, uint32_t dev, uint64_t call_id,
                        uint32_t from_tag)
{
    gb_dev *d = device(f, dev);
    long other = table_find(f, call_id);
    if (!d || (other >= 0 && (uint32_t)other != dev))
        return -1;
    table_del(f, d->key);
    d->key = call_id;
    d->from_tag = from_tag;
    table_put(f, dev);
    return 0;
}

int gb_fleet_start(gb_fleet *f, uint32_t dev, int64_t now)
{
    gb_dev *d = device(f, dev);
    if (!d || !IN(d, ST(GB_DEV_IDLE) | ST(GB_DEV_UNREGISTERED) | ST(GB_DEV_FAILED)))
        return -1;
    d->dest = 0;
    d->redirects = 0;
    d->missed = 0;
    begin_cycle(f, dev, now);
    reschedule(f, dev);
    return 0;
}

int gb_fleet_stop(gb_fleet *f, uint32_t dev, int64_t now)
{
    gb_dev *d = device(f, dev);
    if (!d || IN(d, ST(GB_DEV_UNREGISTERING) | ST(GB_DEV_UNREGISTERED)))
        return -1;
    /* Answers still going out finish first (bounded): once a device has
     * unregistered, a platform refuses what it sends (403). */
    int drain = d->state == GB_DEV_REGISTERED && d->cam_live && f->cfg.unregister_drain_ms;
    gbf_cam_dev_stopped(f, dev, now, drain);
    d->reg_at = d->ka_at = GB_DEV_NEVER;
    if (d->msg.state != TX_IDLE)
        tx_forget(&d->msg);
    int bound = IN(d, REGISTERED_NOW) ||
                (d->state == GB_DEV_REGISTERING && tx_live(&d->reg));
    if (!bound) {
        if (d->reg.state != TX_IDLE)
            tx_forget(&d->reg);
        set_state(f, d, GB_DEV_UNREGISTERED);
        f->stats.unregistrations++;
        gbf_push_why(f, dev, GB_DEV_EV_UNREGISTERED, now, 0, GB_DEV_R_NOT_REGISTERED, NULL, 0);
        reschedule(f, dev);
        return 0;
    }
    set_state(f, d, GB_DEV_UNREGISTERING);
    d->challenges = 0;
    d->cycle_start = now;
    if (drain) {
        d->draining = 1;
        d->reg_at = now + f->cfg.unregister_drain_ms;
        f->stats.unregisters_drained++;
    } else {
        send_register(f, dev, REG_UNREGISTER, now);
    }
    reschedule(f, dev);
    return 0;
}

void gbf_dev_drained(gb_fleet *f, uint32_t i)
{
    f->devs[i].reg_at = 0; /* due at once: the next timer sends the unregister */
    reschedule(f, i);
}

int gb_fleet_abandon(gb_fleet *f, uint32_t dev, int64_t now)
{
    gb_dev *d = device(f, dev);
    if (!d || d->state == GB_DEV_UNREGISTERED)
        return -1;
    d->draining = 0;
    gbf_cam_dev_stopped(f, dev, now, 0);
    d->reg_at = d->ka_at = GB_DEV_NEVER;
    d->registered_until = GB_DEV_NEVER;
    if (d->msg.state != TX_IDLE)
        tx_forget(&d->msg);
    if (d->reg.state != TX_IDLE)
        tx_forget(&d->reg);
    clear_auth(d);
    d->missed = 0;
    set_state(f, d, GB_DEV_UNREGISTERED);
    gbf_push_why(f, dev, GB_DEV_EV_UNREGISTERED, now, 0, GB_DEV_R_ABANDONED, NULL, 0);
    reschedule(f, dev);
    return 0;
}

long gb_fleet_send_keepalive(gb_fleet *f, uint32_t dev, int64_t now)
{
    gb_dev *d = device(f, dev);
    if (!d || IN(d, ST(GB_DEV_IDLE) | ST(GB_DEV_UNREGISTERED) | ST(GB_DEV_UNREGISTERING)))
        return -1;
    if (tx_live(&d->msg)) /* replaced: the old one counts as unanswered */
        keepalive_missed(f, dev, now, 0);
    send_keepalive(f, dev, now);
    if (f->cfg.keepalive_interval_ms &&
        IN(d, REGISTERED_NOW))
        d->ka_at = now + f->cfg.keepalive_interval_ms;
    reschedule(f, dev);
    return (long)d->sn;
}

void gb_fleet_transport_error(gb_fleet *f, uint32_t dev, int64_t now)
{
    gb_dev *d = device(f, dev);
    if (!d)
        return;
    if (tx_live(&d->msg)) {
        tx_end(&d->msg);
        keepalive_missed(f, dev, now, 0);
    }
    if (tx_live(&d->reg)) {
        tx_end(&d->reg);
        fail(f, dev, now, 0, GB_DEV_R_TRANSPORT, NULL, 0);
    }
    reschedule(f, dev);
}

void gb_fleet_drop_responses(gb_fleet *f, uint32_t dev, uint32_t n)
{
    gb_dev *d = device(f, dev);
    if (d)
        d->drop = n > UINT16_MAX ? UINT16_MAX : (uint16_t)n;
}

void gb_fleet_skip_keepalives(gb_fleet *f, uint32_t dev, uint32_t n)
{
    gb_dev *d = device(f, dev);
    if (d)
        d->skip_ka = n > UINT16_MAX ? UINT16_MAX : (uint16_t)n;
}

/* ---- responses ---------------------------------------------------------------- */

gb_span gbf_header_value(const gb_msg *m, gb_header_id id)
{
    if (!m->first[id])
        return (gb_span){0, 0};
    return m->headers[m->first[id] - 1].value;
}

/* Lifetime granted for our Contact: its expires parameter, else Expires,
 * else what we asked for (RFC 3261 §10.2.4). */
static uint32_t granted_expires(gb_fleet *f, const gb_dev *d, const char *buf,
                                const gb_msg *m)
{
    const own_str *h = &f->local_hosts[d->local_host];
    int64_t only_one = -1;
    unsigned ncontacts = 0;
    for (int k = gb_msg_find(m, GB_HDR_CONTACT, 0); k >= 0;
         k = gb_msg_next(m, GB_HDR_CONTACT, k)) {
        gb_list_iter it;
        gb_span item;
        gb_error err;
        gb_list_begin(&it, buf, m->headers[k].value);
        while (gb_list_next(&it, &item, &err) == 1) {
            gb_name_addr na;
            gb_uri u;
            gb_param p;
            if (gb_parse_name_addr(buf, item, 1, &na, &err) != GB_OK || na.wildcard)
                continue;
            ncontacts++;
            int64_t e = -1;
            uint64_t v;
            if (gb_params_find(buf, na.params, ';', "expires", 7, &p) && p.has_value &&
                gb_parse_uint(buf + p.value.off, p.value.len, UINT32_MAX, &v) == 0)
                e = (int64_t)v;
            only_one = e;
            if (gb_parse_uri(buf, na.uri, &u, &err) != GB_OK || !u.has_user)
                continue;
            int32_t port = u.port < 0 ? 5060 : u.port;
            if (e >= 0 && u.user.len == d->id_len &&
                memcmp(buf + u.user.off, d->id, d->id_len) == 0 &&
                gb_ieq(buf + u.host.off, u.host.len, h->p, h->n) &&
                port == d->local_port)
                return (uint32_t)e;
        }
    }
    if (m->expires >= 0)
        return m->expires > UINT32_MAX ? UINT32_MAX : (uint32_t)m->expires;
    if (ncontacts == 1 && only_one >= 0)
        return (uint32_t)only_one;
    return d->expires_req;
}

static void on_register_ok(gb_fleet *f, uint32_t i, const char *buf,
                           const gb_msg *m, int64_t now)
{
    gb_dev *d = &f->devs[i];
    int kind = d->reg.kind;
    if (kind == REG_UNREGISTER) {
        set_state(f, d, GB_DEV_UNREGISTERED);
        f->stats.unregistrations++;
        d->registered_until = GB_DEV_NEVER;
        gb_dev_event *e = gbf_push_event(f, i, GB_DEV_EV_UNREGISTERED, now);
        if (e) {
            e->status = m->status;
            e->latency_ms = (uint32_t)(now - d->cycle_start);
            gbf_event_text(f, e, buf + m->reason.off, m->reason.len);
        }
        return;
    }
    uint32_t granted = granted_expires(f, d, buf, m);
    if (granted == 0) {
        /* RFC 3261 §10.2.4: the 200 lists the bindings that remain, and ours
         * with expires 0 is not one of them (an omitted value is what we
         * asked for, above).  A failure, retried like one, not a
         * registration refreshed at once again and again. */
        fail(f, i, now, m->status, GB_DEV_R_NOT_GRANTED, NULL, 0);
        return;
    }
    d->expires_granted = granted;
    d->registered_until = now + (int64_t)granted * 1000;
    double delay = (double)granted * 1000.0 * f->cfg.refresh_fraction *
                   (1.0 - f->cfg.jitter * rnd_unit(f));
    d->reg_at = now + (delay < 1.0 ? 1 : (int64_t)delay);
    d->challenges = 0;
    d->redirects = 0;
    int first = d->state == GB_DEV_REGISTERING;
    set_state(f, d, GB_DEV_REGISTERED);
    if (!d->was_registered)
        f->stats.devices_registered++;
    d->was_registered = 1;
    if (first) {
        d->missed = 0;
        if (f->cfg.keepalive_interval_ms)
            d->ka_at = now + f->cfg.keepalive_interval_ms;
    }
    if (first)
        f->stats.registrations++;
    else
        f->stats.refreshes++;
    gb_dev_event *e = gbf_push_event(f, i, first ? GB_DEV_EV_REGISTERED : GB_DEV_EV_REFRESHED, now);
    if (!e)
        return;
    e->status = m->status;
    e->value = granted;
    e->latency_ms = (uint32_t)(now - d->cycle_start);
    gb_span ds = gbf_header_value(m, GB_HDR_DATE);
    gb_date date;
    gb_error err;
    if (ds.len && gb_parse_date(buf, ds, &date, &err) == GB_OK) {
        int64_t days = gb_cam_days_from_civil(date.year, (unsigned)date.month, (unsigned)date.day);
        e->arg = (((days * 24 + date.hour) * 60 + date.minute) * 60 + date.second) * 1000 +
                 (date.has_millisecond ? date.millisecond : 0);
        e->flags |= date.format == GB_DATE_GB ? GB_DEV_EVF_DATE_GB : GB_DEV_EVF_DATE_RFC1123;
    }
}

static void on_challenge(gb_fleet *f, uint32_t i, const char *buf,
                         const gb_msg *m, int64_t now)
{
    gb_dev *d = &f->devs[i];
    int proxy = m->status == 407;
    gb_header_id hid = proxy ? GB_HDR_PROXY_AUTHENTICATE : GB_HDR_WWW_AUTHENTICATE;
    gb_digest_challenge ch[MAX_CHALLENGES];
    size_t n = 0;
    gb_auth a;
    gb_error err;
    for (int k = gb_msg_find(m, hid, 0); k >= 0 && n < MAX_CHALLENGES;
         k = gb_msg_next(m, hid, k)) {
        gb_auth_iter it;
        gb_auth_begin(&it, buf, m->headers[k].value);
        while (n < MAX_CHALLENGES && gb_auth_next(&it, &a, &err) == 1)
            if (gb_digest_parse_challenge(buf, &a, &ch[n], &err) == GB_OK)
                n++;
    }
    unsigned allowed = f->cfg.allowed_algs ? f->cfg.allowed_algs : GB_DIGEST_ALGS_ALL;
    for (int alg = 0; alg < GB_DIGEST_ALG__COUNT; alg++)
        if (!gb_digest_available(f->dctx, (gb_digest_alg)alg))
            allowed &= ~GB_DIGEST_ALG_BIT(alg);
    int best = n ? gb_digest_choose(ch, n, allowed) : -1;
    if (best < 0) {
        fail(f, i, now, m->status, GB_DEV_R_NO_CHALLENGE, buf + m->reason.off,
             m->reason.len);
        return;
    }
    const gb_digest_challenge *c = &ch[best];
    char nonce[GB_DEV_NONCE_MAX];
    long nn = gb_auth_value(buf, &c->nonce, nonce, sizeof nonce);
    if (nn < 0) {
        fail(f, i, now, m->status, GB_DEV_R_NONCE_TOO_LONG, NULL, 0);
        return;
    }
    /* Our credentials for this very nonce were refused: wrong password. */
    if (d->reg.auth && !c->is_stale && (size_t)nn == d->nonce_len &&
        memcmp(nonce, d->nonce, (size_t)nn) == 0) {
        fail(f, i, now, m->status, GB_DEV_R_AUTH_REJECTED, buf + m->reason.off,
             m->reason.len);
        return;
    }
    if (!c->is_stale && d->challenges >= f->cfg.max_challenges) {
        fail(f, i, now, m->status, GB_DEV_R_TOO_MANY_CHALLENGES, NULL, 0);
        return;
    }
    char tmp[GB_DIGEST_MAX_VALUE];
    long rn = gb_auth_value(buf, &c->realm, tmp, sizeof tmp);
    uint8_t realm = rn >= 0 ? intern(f, tmp, (size_t)rn) : 0;
    uint8_t opaque = 0;
    if (c->opaque.has_value) {
        long on = gb_auth_value(buf, &c->opaque, tmp, sizeof tmp);
        opaque = on >= 0 ? intern(f, tmp, (size_t)on) : 0;
        if (!opaque)
            realm = 0;
    }
    if (!realm) {
        fail(f, i, now, m->status, GB_DEV_R_INTERNAL, NULL, 0);
        return;
    }
    if (!c->is_stale)
        d->challenges++; /* RFC 7616 §3.3: stale is not a failure */
    memcpy(d->nonce, nonce, (size_t)nn);
    d->nonce_len = (uint8_t)nn;
    d->realm = realm;
    d->opaque = opaque;
    d->alg = c->alg;
    d->qop = (c->qop_mask & GB_QOP_BIT(GB_QOP_AUTH)) ? GB_QOP_AUTH
             : (c->qop_mask & GB_QOP_BIT(GB_QOP_AUTH_INT)) ? GB_QOP_AUTH_INT
                                                           : GB_QOP_NONE;
    d->proxy = (uint8_t)proxy;
    d->nc = 0;
    f->stats.challenges++;
    gb_dev_event *e = gbf_push_event(f, i, GB_DEV_EV_CHALLENGED, now);
    if (e) {
        e->status = m->status;
        e->flags = (c->is_stale ? GB_DEV_EVF_STALE : 0) | (proxy ? GB_DEV_EVF_PROXY : 0);
        e->value = d->challenges;
    }
    /* the answer: same Call-ID and tag, CSeq + 1, new branch, credentials */
    register_tx(f, i, d->reg.kind, 1, now);
}

static void on_redirect(gb_fleet *f, uint32_t i, const char *buf,
                        const gb_msg *m, int64_t now)
{
    gb_dev *d = &f->devs[i];
    gb_span cv = gbf_header_value(m, GB_HDR_CONTACT);
    gb_list_iter it;
    gb_span item;
    gb_error err;
    gb_name_addr na;
    gb_uri u;
    gb_list_begin(&it, buf, cv);
    if (d->redirects >= MAX_REDIRECTS || cv.len == 0 ||
        gb_list_next(&it, &item, &err) != 1 ||
        gb_parse_name_addr(buf, item, 0, &na, &err) != GB_OK ||
        gb_parse_uri(buf, na.uri, &u, &err) != GB_OK || !u.is_sip) {
        d->dest = 0;
        d->redirects = MAX_REDIRECTS; /* no immediate bounce: wait */
        fail(f, i, now, m->status, GB_DEV_R_BAD_REDIRECT, buf + m->reason.off,
             m->reason.len);
        return;
    }
    /* Request-URI: the Contact's URI without its headers part */
    size_t ulen = na.uri.len;
    const char *q = memchr(buf + na.uri.off, '?', na.uri.len);
    if (q)
        ulen = (size_t)(q - (buf + na.uri.off));
    uint32_t k;
    for (k = 1; k < f->ndests; k++)
        if (f->dests[k].uri.n == ulen &&
            memcmp(f->dests[k].uri.p, buf + na.uri.off, ulen) == 0)
            break;
    if (k == f->ndests) {
        if (k >= GB_FLEET_MAX_DESTS ||
            own_set(&f->dests[k].uri, buf + na.uri.off, ulen) ||
            own_set(&f->dests[k].host, buf + u.host.off, u.host.len)) {
            fail(f, i, now, m->status, GB_DEV_R_BAD_REDIRECT, NULL, 0);
            return;
        }
        f->dests[k].port = (uint16_t)(u.port < 0 ? 5060 : u.port);
        f->ndests++;
    }
    f->stats.redirects++;
    d->redirects++;
    d->dest = (uint8_t)k;
    gb_dev_event *e = gbf_push_event(f, i, GB_DEV_EV_REDIRECTED, now);
    if (e) {
        e->status = m->status;
        e->value = k;
    }
    clear_auth(d); /* another platform, another realm */
    send_register(f, i, d->reg.kind == REG_UNREGISTER ? REG_UNREGISTER : REG_INITIAL,
                  now);
}

static void on_register_final(gb_fleet *f, uint32_t i, const char *buf,
                              const gb_msg *m, int64_t now)
{
    gb_dev *d = &f->devs[i];
    unsigned st = m->status;
    tx_end(&d->reg);
    if (st >= 200 && st < 300) {
        on_register_ok(f, i, buf, m, now);
    } else if (st == 401 || st == 407) {
        on_challenge(f, i, buf, m, now);
    } else if (st == 423 && d->reg.kind != REG_UNREGISTER) {
        uint64_t v;
        gb_span me = gbf_header_value(m, GB_HDR_MIN_EXPIRES);
        if (me.len && gb_parse_uint(buf + me.off, me.len, UINT32_MAX, &v) == 0 &&
            v > d->expires_req) {
            d->expires_req = (uint32_t)v; /* RFC 3261 §10.2.8 */
            send_register(f, i, d->reg.kind, now);
        } else {
            fail(f, i, now, st, GB_DEV_R_BAD_MIN_EXPIRES, buf + m->reason.off,
                 m->reason.len);
        }
    } else if (st >= 300 && st < 400 && d->reg.kind != REG_UNREGISTER) {
        on_redirect(f, i, buf, m, now);
    } else {
        fail(f, i, now, st, GB_DEV_R_REJECTED, buf + m->reason.off, m->reason.len);
    }
}

static void on_message_final(gb_fleet *f, uint32_t i, const gb_msg *m,
                             int64_t now)
{
    gb_dev *d = &f->devs[i];
    tx_end(&d->msg);
    if (m->status >= 200 && m->status < 300) {
        d->missed = 0;
        f->stats.keepalives_answered++;
        gb_dev_event *e = gbf_push_event(f, i, GB_DEV_EV_KEEPALIVE_ANSWERED, now);
        if (e) {
            e->value = d->msg.cseq;
            e->status = m->status;
            e->latency_ms = (uint32_t)(now - d->msg.started);
        }
    } else {
        keepalive_missed(f, i, now, m->status);
    }
}

/* Branch of the top Via as our number, or -1. */
int gbf_top_branch(const char *buf, const gb_msg *m, uint64_t *out)
{
    gb_span v = gbf_header_value(m, GB_HDR_VIA);
    gb_list_iter it;
    gb_span item;
    gb_error err;
    gb_via via;
    gb_list_begin(&it, buf, v);
    if (!v.len || gb_list_next(&it, &item, &err) != 1 ||
        gb_parse_via(buf, item, &via, &err) != GB_OK || !via.has_branch ||
        via.branch.len <= 7 || memcmp(buf + via.branch.off, "z9hG4bK", 7))
        return -1;
    return gb_parse_uint(buf + via.branch.off + 7, via.branch.len - 7, UINT64_MAX, out);
}

long gb_fleet_handle_message(gb_fleet *f, const char *buf, const gb_msg *m,
                             int64_t now)
{
    if (m->kind != GB_RESPONSE)
        return gbf_cam_request(f, buf, m, now);
    f->stats.responses++;
    gb_span cid = gbf_header_value(m, GB_HDR_CALL_ID);
    uint64_t callid, branch;
    long cam_dev;
    /* the camera side's requests (answers, NOTIFYs) are known by branch */
    if ((m->method_id == GB_METHOD_MESSAGE || m->method_id == GB_METHOD_NOTIFY) &&
        gbf_top_branch(buf, m, &branch) == 0 &&
        gbf_cam_response(f, buf, m, branch, now, &cam_dev))
        return cam_dev;
    if (gb_parse_uint(buf + cid.off, cid.len, UINT64_MAX, &callid) < 0 ||
        (m->method_id != GB_METHOD_REGISTER && m->method_id != GB_METHOD_MESSAGE) ||
        gbf_top_branch(buf, m, &branch) < 0) {
        f->stats.strays++;
        return -1;
    }
    int is_reg = m->method_id == GB_METHOD_REGISTER;
    uint64_t key = is_reg ? callid : callid ^ gb_mix64(m->cseq);
    long found = table_find(f, key);
    if (found < 0) {
        f->stats.strays++;
        return -1;
    }
    uint32_t i = (uint32_t)found;
    gb_dev *d = &f->devs[i];
    gb_tx *tx = is_reg ? &d->reg : &d->msg;
    if (tx->state == TX_IDLE || tx->branch != branch || tx->cseq != m->cseq) {
        f->stats.strays++;
        return -1;
    }
    if (d->drop) {
        d->drop--;
        f->stats.dropped++;
        return (long)i;
    }
    if (tx->state == TX_COMPLETED) {
        f->stats.duplicates++;
        return (long)i;
    }
    f->stats.matched++;
    if (m->status < 200) {
        tx->state = TX_PROCEEDING;
    } else if (is_reg) {
        on_register_final(f, i, buf, m, now);
    } else {
        on_message_final(f, i, m, now);
    }
    reschedule(f, i);
    return (long)i;
}

long gb_fleet_handle_datagram(gb_fleet *f, const char *buf, size_t len,
                              int64_t now)
{
    gb_header hdrs[64];
    gb_msg m;
    gb_limits lim;
    gb_limits_default(&lim);
    lim.lenient = f->cfg.lenient;
    gb_msg_init(&m, hdrs, sizeof hdrs / sizeof *hdrs);
    if (gb_parse(buf, len, 0, &lim, &m, NULL) != GB_OK) {
        f->stats.parse_errors++;
        return -1;
    }
    return gb_fleet_handle_message(f, buf, &m, now);
}

/* ---- timers ---------------------------------------------------------------------- */

static void fire(gb_fleet *f, uint32_t i, int64_t now)
{
    gb_dev *d = &f->devs[i];
    /* REGISTER transaction: Timer F, then Timer E */
    if (tx_live(&d->reg) && d->reg.timeout_at <= now) {
        tx_end(&d->reg);
        f->stats.timeouts++;
        fail(f, i, now, 0, GB_DEV_R_TIMEOUT, NULL, 0);
    } else if (tx_live(&d->reg) && d->reg.next_rt <= now) {
        gb_tx *tx = &d->reg;
        tx->interval = tx->state == TX_PROCEEDING
                           ? f->cfg.t2_ms
                           : (tx->interval * 2 < f->cfg.t2_ms ? tx->interval * 2 : f->cfg.t2_ms);
        tx->next_rt = now + tx->interval;
        int why;
        f->stats.retransmissions++;
        (void)emit_register(f, i, 1, &why); /* built once already: cannot fail */
    }
    if (tx_live(&d->msg) && d->msg.timeout_at <= now) {
        tx_end(&d->msg);
        f->stats.timeouts++;
        keepalive_missed(f, i, now, 0);
    } else if (tx_live(&d->msg) && d->msg.next_rt <= now) {
        gb_tx *tx = &d->msg;
        tx->interval = tx->state == TX_PROCEEDING
                           ? f->cfg.t2_ms
                           : (tx->interval * 2 < f->cfg.t2_ms ? tx->interval * 2 : f->cfg.t2_ms);
        tx->next_rt = now + tx->interval;
        f->stats.retransmissions++;
        (void)emit_message(f, i, 1);
    }
    if (d->reg_at <= now) {
        d->reg_at = GB_DEV_NEVER;
        if (d->state == GB_DEV_REGISTERED) {
            set_state(f, d, GB_DEV_REFRESHING);
            d->cycle_start = now;
            send_register(f, i, REG_REFRESH, now);
        } else if (d->state == GB_DEV_FAILED) {
            begin_cycle(f, i, now);
        } else if (d->state == GB_DEV_UNREGISTERING && d->draining) {
            /* drained, or out of time: what is left is dropped */
            d->draining = 0;
            gbf_cam_dev_stopped(f, i, now, 0);
            send_register(f, i, REG_UNREGISTER, now);
        }
    }
    if (d->ka_at <= now) {
        d->ka_at = GB_DEV_NEVER;
        if (IN(d, REGISTERED_NOW)) {
            d->ka_at = now + f->cfg.keepalive_interval_ms;
            if (d->skip_ka) {
                d->skip_ka--;
                f->stats.keepalives_skipped++;
            } else {
                int replaced = tx_live(&d->msg);
                if (replaced)
                    keepalive_missed(f, i, now, 0);
                /* keepalive_missed may have started a new registration */
                if (IN(d, REGISTERED_NOW))
                    send_keepalive(f, i, now);
            }
        }
    }
}

void gb_fleet_handle_timer(gb_fleet *f, int64_t now)
{
    /* Each firing moves the device's deadline past now or removes it, so
     * this ends; the bound is belt and braces. */
    uint64_t budget = (uint64_t)f->heap.len * 8 + 64;
    for (int round = 0; round < 2; round++) {
        while (f->heap.len && dev_deadline(f, f->heap.items[0]) <= now && budget--) {
            uint32_t i = f->heap.items[0];
            fire(f, i, now);
            reschedule(f, i);
        }
        /* an answer ending here may make a draining device due: round two */
        if (round == 0)
            gbf_cam_timer(f, now);
    }
}

int64_t gb_fleet_next_deadline(const gb_fleet *f)
{
    int64_t t = f->heap.len ? dev_deadline(f, f->heap.items[0]) : GB_DEV_NEVER;
    return min64(t, gbf_cam_deadline(f));
}

/* ---- queues and queries --------------------------------------------------------- */

size_t gb_fleet_out_count(const gb_fleet *f) { return f->out.n; }
const gb_dev_out *gb_fleet_out_items(const gb_fleet *f) { return f->out.items; }
const char *gb_fleet_out_data(const gb_fleet *f) { return f->out.bytes; }
void gb_fleet_out_clear(gb_fleet *f) { queue_clear(&f->out); }

size_t gb_fleet_event_count(const gb_fleet *f) { return f->ev.n; }
const gb_dev_event *gb_fleet_events(const gb_fleet *f) { return f->ev.items; }
const char *gb_fleet_event_text(const gb_fleet *f) { return f->ev.bytes; }
void gb_fleet_events_clear(gb_fleet *f) { queue_clear(&f->ev); }

size_t gb_fleet_dest_count(const gb_fleet *f) { return f->ndests; }

int gb_fleet_dest(const gb_fleet *f, size_t i, gb_bytes *host, uint16_t *port,
                  gb_bytes *uri)
{
    if (i >= f->ndests)
        return -1;
    if (host)
        *host = gbf_own_bytes(&f->dests[i].host);
    if (port)
        *port = f->dests[i].port;
    if (uri)
        *uri = gbf_own_bytes(&f->dests[i].uri);
    return 0;
}

/* The device's record, or for an index out of range a blank one: idle,
 * never registered, no deadline, nothing sent. */
static const gb_dev *record(const gb_fleet *f, uint32_t dev)
{
    static const gb_dev blank = {.registered_until = GB_DEV_NEVER};
    return dev < f->ndevs ? &f->devs[dev] : &blank;
}

gb_dev_state gb_fleet_state(const gb_fleet *f, uint32_t dev)
{
    return (gb_dev_state)record(f, dev)->state;
}

int64_t gb_fleet_expires_at(const gb_fleet *f, uint32_t dev)
{
    return record(f, dev)->registered_until;
}

uint16_t gb_fleet_dest_of(const gb_fleet *f, uint32_t dev)
{
    return record(f, dev)->dest;
}

uint32_t gb_fleet_keepalive_sn(const gb_fleet *f, uint32_t dev)
{
    return record(f, dev)->sn;
}

const char *gb_fleet_id(const gb_fleet *f, uint32_t dev, size_t *len)
{
    *len = record(f, dev)->id_len;
    return dev < f->ndevs ? f->devs[dev].id : NULL;
}

int gb_fleet_ever_registered(const gb_fleet *f, uint32_t dev)
{
    return record(f, dev)->was_registered;
}

void gb_fleet_last_failure(const gb_fleet *f, uint32_t dev, uint16_t *status,
                           gb_dev_reason *reason)
{
    *status = record(f, dev)->last_status;
    *reason = (gb_dev_reason)record(f, dev)->last_reason;
}

const gb_fleet_stats *gb_fleet_get_stats(const gb_fleet *f) { return &f->stats; }

size_t gb_fleet_bytes_per_device(void)
{
    /* record + heap slot + two Call-ID table slots (load factor <= 1/2); a
     * device added alone has two ID index slots more, one of a serial
     * range none; channels cost nothing until one changes (one byte each) */
    return sizeof(gb_dev) + sizeof(uint32_t) + 2 * sizeof(uint32_t);
}

size_t gb_fleet_queue_memory(const gb_fleet *f)
{
    return queue_memory(&f->out, sizeof(gb_dev_out)) + queue_memory(&f->ev, sizeof(gb_dev_event));
}

size_t gb_fleet_memory(const gb_fleet *f)
{
    size_t n = sizeof *f + (size_t)f->cap * (sizeof(gb_dev) + sizeof(uint32_t)) +
               gb_index_bytes(&f->table);
    for (uint32_t i = 0; i < f->ndevs; i++)
        if (f->devs[i].password)
            n += strlen(f->devs[i].password) + 1;
    return n + gbf_cam_memory(f);
}
