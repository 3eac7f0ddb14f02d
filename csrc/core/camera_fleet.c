/*
 * camera_fleet.c - the device fleet as cameras: the platform's requests,
 * their answers, subscriptions and notifications (see device.h, camera.h).
 *
 * Theory of operation.  A request for a device (found by the Request-URI
 * user, else the To user: serial ranges arithmetically, other IDs through
 * a keyed index) is answered at once with a response built from it (RFC
 * 3261 §8.2.6); the device remembers the last GBF_RX_SLOTS requests it
 * answered, so a retransmission gets the same response and nothing more
 * (§17.2.2).  A Query accepted with 200 becomes a job in the fleet-wide
 * pool; the job writes its answer part by part (Catalog and RecordInfo
 * split to fit answer_max_message, SumNum on every part, GB/T 28181-2022
 * Annex M), each part a MESSAGE of its own queued after the 200, as a
 * client transaction in the same pool (Timer E over UDP, Timer F always),
 * found again by its Via branch when the platform answers.  Subscriptions
 * (§9.11) are pool entries too: a dialog (Call-ID, tags, target, Event),
 * an expiry and, for MobilePosition, the next NOTIFY.  Every entry has
 * one deadline in one heap, so the fleet's next deadline is the earlier
 * of the devices' heap top and this one's.
 *
 * Nothing here is per device but a few bytes in its record (profile,
 * channel count and serial base, request memory, subscription list head);
 * channels cost a state byte each, and only once one changes.  The pool is
 * bounded (max_answers, max_jobs, max_subscriptions); what the bound turns
 * away is answered 503 and counted.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_internal.h"
#include "sip_fields.h"

#define NEVER GB_DEV_NEVER

static const uint8_t zero_chan[GB_CAM_MAX_CHANNELS];

static const char *const control_names[GB_DEV_CTL__COUNT] = {
    "other", "PTZCmd", "TeleBoot", "RecordCmd", "GuardCmd", "AlarmCmd",
    "IFrameCmd", "DragZoom", "HomePosition", "DeviceConfig",
};

const char *gb_dev_control_name(gb_dev_control c)
{
    return (unsigned)c < GB_DEV_CTL__COUNT ? control_names[c] : "unknown";
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- device lookup ------------------------------------------------------------ */

static uint64_t id_hash(const gb_fleet *f, const char *id, size_t n)
{
    return gb_siphash(&f->hkey, id, n);
}

static uint64_t ids_ref_hash(const void *ctx, uint32_t ref)
{
    const gb_fleet *f = ctx;
    return id_hash(f, f->devs[ref - 1].id, f->devs[ref - 1].id_len);
}

typedef struct {
    const char *p;
    size_t n;
} key_bytes;

static int ids_ref_eq(const void *ctx, uint32_t ref, const void *key)
{
    const gb_fleet *f = ctx;
    const key_bytes *k = key;
    const gb_dev *d = &f->devs[ref - 1];
    return d->id_len == k->n && memcmp(d->id, k->p, k->n) == 0;
}

int gbf_ids_add(gb_fleet *f, uint32_t i)
{
    if (gb_index_reserve(&f->ids, (size_t)f->ids.count + 1, ids_ref_hash, f))
        return -1;
    gb_index_add(&f->ids, ids_ref_hash(f, i + 1), i + 1);
    return 0;
}

long gbf_find_device(const gb_fleet *f, const char *id, size_t n)
{
    for (uint32_t k = 0; k < f->nranges; k++) {
        const gbf_range *r = &f->ranges[k];
        if (n != (size_t)r->plen + r->digits || memcmp(id, r->prefix, r->plen) != 0)
            continue;
        uint64_t v = 0;
        size_t j;
        for (j = r->plen; j < n && id[j] >= '0' && id[j] <= '9'; j++)
            v = v * 10 + (uint64_t)(id[j] - '0');
        if (j != n || v < r->start || v - r->start >= r->count)
            continue;
        uint32_t i = r->first + (uint32_t)(v - r->start);
        if (i < f->ndevs && f->devs[i].id_len == n && memcmp(f->devs[i].id, id, n) == 0)
            return (long)i;
    }
    key_bytes key = {id, n};
    uint32_t ref = gb_index_find(&f->ids, id_hash(f, id, n), ids_ref_eq, f, &key);
    return (long)ref - 1;
}

/* ---- profiles and channels ---------------------------------------------------- */

int gb_fleet_add_profile(gb_fleet *f, const gb_cam_profile *p, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = gb_cam_profile_check(p);
    if (**why)
        return -1;
    if (f->nprofiles >= GB_CAM_MAX_PROFILES) {
        *why = "at most 16 profiles";
        return -1;
    }
    size_t total = 0;
    for (int k = 0; k < GB_CAM_F__COUNT; k++)
        total += p->utf8[k].n + (p->gb18030[k].p ? p->gb18030[k].n : 0);
    char *block = malloc(total ? total : 1);
    if (!block) {
        *why = "out of memory";
        return -1;
    }
    gb_cam_profile *q = &f->profiles[f->nprofiles];
    *q = *p;
    size_t at = 0;
    for (int k = 0; k < GB_CAM_F__COUNT; k++) {
        if (p->utf8[k].n)
            memcpy(block + at, p->utf8[k].p, p->utf8[k].n);
        q->utf8[k] = (gb_bytes){block + at, p->utf8[k].n};
        at += p->utf8[k].n;
        if (p->gb18030[k].p) {
            if (p->gb18030[k].n)
                memcpy(block + at, p->gb18030[k].p, p->gb18030[k].n);
            q->gb18030[k] = (gb_bytes){block + at, p->gb18030[k].n};
            at += p->gb18030[k].n;
        }
    }
    f->profile_text[f->nprofiles] = block;
    return (int)f->nprofiles++;
}

const gb_cam_profile *gb_fleet_profile(const gb_fleet *f, unsigned k)
{
    return k < f->nprofiles ? &f->profiles[k] : NULL;
}

void gbf_cam_dev_init(gb_fleet *f, uint32_t i)
{
    gb_dev *d = &f->devs[i];
    d->profile = 0;
    d->nchan = f->profiles[0].channels;
    d->chan_base = GB_CAM_BASE_FROM_ID;
}

/* The device's channel state bytes, made on first use (all zero: ON). */
static uint8_t *chan_bytes(gb_fleet *f, gb_dev *d)
{
    if (!d->chan_off) {
        if (!d->nchan || f->nchan + d->nchan > UINT32_MAX - 1 ||
            gb_grow((void **)&f->chan, &f->chan_cap, f->nchan + d->nchan, 1))
            return NULL;
        memset(f->chan + f->nchan, 0, d->nchan);
        d->chan_off = (uint32_t)f->nchan + 1;
        f->nchan += d->nchan;
    }
    return f->chan + d->chan_off - 1;
}

static const uint8_t *chan_state(const gb_fleet *f, const gb_dev *d)
{
    return d->chan_off ? f->chan + d->chan_off - 1 : zero_chan;
}

int gb_fleet_set_camera(gb_fleet *f, uint32_t dev, unsigned profile, long channels,
                        uint32_t chan_base)
{
    if (dev >= f->ndevs || profile >= f->nprofiles)
        return -1;
    gb_dev *d = &f->devs[dev];
    long n = channels < 0 ? f->profiles[profile].channels : channels;
    if (n > GB_CAM_MAX_CHANNELS)
        return -1;
    d->profile = (uint8_t)profile;
    if (d->nchan != n)
        d->chan_off = 0; /* state bytes start over (a new block when needed) */
    d->nchan = (uint16_t)n;
    d->chan_base = chan_base == GB_CAM_BASE_FROM_ID ? chan_base : chan_base % 10000000u;
    return 0;
}

int gb_fleet_set_camera_range(gb_fleet *f, uint32_t first, uint32_t n, unsigned profile,
                              const uint16_t *channels, long count, uint32_t base)
{
    if (first > f->ndevs || n > f->ndevs - first || profile >= f->nprofiles ||
        count > GB_CAM_MAX_CHANNELS)
        return -1;
    for (uint32_t k = 0; k < n; k++)
        if (channels && channels[k] > GB_CAM_MAX_CHANNELS)
            return -1;
    base %= 10000000u;
    for (uint32_t k = 0; k < n; k++) {
        long c = channels ? channels[k] : count;
        gb_fleet_set_camera(f, first + k, profile, c, base);
        base = (base + f->devs[first + k].nchan) % 10000000u;
    }
    return 0;
}

uint32_t gb_fleet_channels(const gb_fleet *f, uint32_t dev)
{
    return dev < f->ndevs ? f->devs[dev].nchan : 0;
}

/* ---- channel names given by the user -------------------------------------------- */

static uint64_t name_key(uint32_t dev, uint32_t ch)
{
    return ((uint64_t)dev << 32) | ch;
}

static uint64_t names_ref_hash(const void *ctx, uint32_t ref)
{
    const gb_fleet *f = ctx;
    const gbf_name *e = &f->names[ref - 1];
    return gb_mix64(name_key(e->dev, e->ch) ^ f->hkey.k0);
}

static int names_ref_eq(const void *ctx, uint32_t ref, const void *key)
{
    const gb_fleet *f = ctx;
    const gbf_name *e = &f->names[ref - 1];
    return name_key(e->dev, e->ch) == *(const uint64_t *)key;
}

static gbf_name *name_find(const gb_fleet *f, uint32_t dev, uint32_t ch)
{
    uint64_t k = name_key(dev, ch);
    uint32_t ref = gb_index_find(&f->name_index, gb_mix64(k ^ f->hkey.k0), names_ref_eq, f, &k);
    return ref ? &f->names[ref - 1] : NULL;
}

typedef struct {
    const gb_fleet *f;
    uint32_t dev;
} name_ctx;

static int name_lookup(void *arg, uint32_t ch, int gb, gb_bytes *out)
{
    const name_ctx *c = arg;
    const gbf_name *e = name_find(c->f, c->dev, ch);
    if (!e)
        return 0;
    *out = gb && e->gb ? (gb_bytes){e->gb, e->ngb} : (gb_bytes){e->utf8, e->n8};
    return 1;
}

static const gb_cam_chan_fields *fields_lookup(void *arg, uint32_t ch)
{
    const name_ctx *c = arg;
    const gbf_name *e = name_find(c->f, c->dev, ch);
    return e ? e->fields : NULL;
}

/* Channel ch's entry in the table, added when it has none; NULL when out
 * of memory. */
static gbf_name *name_entry(gb_fleet *f, uint32_t dev, uint32_t ch)
{
    gbf_name *e = name_find(f, dev, ch);
    if (e)
        return e;
    if (gb_grow((void **)&f->names, &f->names_cap, f->nnames + 1, sizeof *f->names) ||
        gb_index_reserve(&f->name_index, f->nnames + 1, names_ref_hash, f))
        return NULL;
    e = &f->names[f->nnames++];
    *e = (gbf_name){.dev = dev, .ch = ch};
    uint64_t k = name_key(dev, ch);
    gb_index_add(&f->name_index, gb_mix64(k ^ f->hkey.k0), (uint32_t)f->nnames);
    return e;
}

int gb_fleet_set_channel_fields(gb_fleet *f, uint32_t dev, uint32_t ch,
                                const gb_cam_chan_fields *o, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = "no such channel";
    if (dev >= f->ndevs || ch >= f->devs[dev].nchan)
        return -1;
    if (o && *(*why = gb_cam_chan_fields_check(o)))
        return -1;
    *why = "out of memory";
    uint8_t *st = chan_bytes(f, &f->devs[dev]);
    if (!st)
        return -1;
    if (!o || !o->set) {
        gbf_name *e = name_find(f, dev, ch);
        if (e) {
            free(e->fields);
            e->fields = NULL;
        }
        st[ch] &= (uint8_t)~GB_CAM_CH_CUSTOM_FIELDS;
        *why = "";
        return 0;
    }
    gbf_name *e = name_entry(f, dev, ch);
    if (!e)
        return -1;
    if (!e->fields && !(e->fields = malloc(sizeof *e->fields)))
        return -1;
    *e->fields = *o;
    st[ch] |= GB_CAM_CH_CUSTOM_FIELDS;
    *why = "";
    return 0;
}

const gb_cam_chan_fields *gb_fleet_channel_fields(const gb_fleet *f, uint32_t dev, uint32_t ch)
{
    if (dev >= f->ndevs || ch >= f->devs[dev].nchan)
        return NULL;
    const gb_dev *d = &f->devs[dev];
    if (!(chan_state(f, d)[ch] & GB_CAM_CH_CUSTOM_FIELDS))
        return NULL;
    const gbf_name *e = name_find(f, dev, ch);
    return e ? e->fields : NULL;
}

int gb_fleet_set_channel_name(gb_fleet *f, uint32_t dev, uint32_t ch, const char *utf8,
                              size_t n8, const char *gb, size_t ngb)
{
    if (dev >= f->ndevs || ch >= f->devs[dev].nchan || n8 > GB_CAM_TEXT_MAX ||
        ngb > GB_CAM_TEXT_MAX)
        return -1;
    gb_dev *d = &f->devs[dev];
    uint8_t *st = chan_bytes(f, d);
    if (!st)
        return -1;
    if (!utf8) {
        st[ch] &= (uint8_t)~GB_CAM_CH_CUSTOM_NAME;
        return 0;
    }
    for (size_t k = 0; k < n8; k++)
        if ((unsigned char)utf8[k] < 0x20)
            return -1;
    for (size_t k = 0; gb && k < ngb; k++)
        if ((unsigned char)gb[k] < 0x20)
            return -1;
    char *a = malloc(n8 + 1), *b = gb ? malloc(ngb + 1) : NULL;
    if (!a || (gb && !b)) {
        free(a);
        free(b);
        return -1;
    }
    memcpy(a, utf8, n8);
    if (gb)
        memcpy(b, gb, ngb);
    gbf_name *e = name_entry(f, dev, ch);
    if (!e) {
        free(a);
        free(b);
        return -1;
    }
    free(e->utf8);
    free(e->gb);
    e->utf8 = a;
    e->n8 = (uint16_t)n8;
    e->gb = b;
    e->ngb = (uint16_t)ngb;
    st[ch] |= GB_CAM_CH_CUSTOM_NAME;
    return 0;
}

/* ---- the device as camera.h sees it ----------------------------------------------- */

static void cam_view(gb_fleet *f, uint32_t i, int64_t now, name_ctx *nc, gb_cam_device *v)
{
    const gb_dev *d = &f->devs[i];
    memset(v, 0, sizeof *v);
    v->prof = &f->profiles[d->profile];
    v->id = d->id;
    v->id_len = d->id_len;
    v->chan_base = d->chan_base;
    v->nchan = d->nchan;
    v->chan = chan_state(f, d);
    v->flags = d->cam_flags;
    v->alarm_bits = d->alarm_bits;
    v->expires = d->expires_req;
    v->heartbeat_interval = f->cfg.keepalive_interval_ms / 1000;
    v->heartbeat_count = f->cfg.keepalive_max_missed;
    v->local_ms = now + f->wall_offset + (int64_t)f->cfg.utc_offset_min * 60000;
    /* a place near Beijing's centre, the same for the same ID */
    uint64_t h = 1469598103934665603ull;
    for (size_t k = 0; k < d->id_len; k++)
        h = (h ^ (unsigned char)d->id[k]) * 1099511628211ull;
    h = gb_mix64(h);
    v->lon = 116.297 + (double)(h % 200000) / 1e6;
    v->lat = 39.809 + (double)((h >> 32) % 200000) / 1e6;
    nc->f = f;
    nc->dev = i;
    v->name_fn = name_lookup;
    v->fields_fn = fields_lookup;
    v->name_arg = nc;
}

int gb_fleet_channel(const gb_fleet *f, uint32_t dev, uint32_t ch, char id[GB_CAM_ID_LEN],
                     char *name, size_t cap, size_t *name_len, uint8_t *state)
{
    if (dev >= f->ndevs || ch >= f->devs[dev].nchan)
        return -1;
    name_ctx nc;
    gb_cam_device v;
    cam_view((gb_fleet *)f, dev, 0, &nc, &v);
    if (id)
        gb_cam_channel_id(&v, ch, id);
    if (name && name_len)
        *name_len = gb_cam_channel_name(&v, ch, 0, name, cap);
    if (state)
        *state = v.chan[ch];
    return 0;
}

void gb_fleet_set_wall_clock(gb_fleet *f, int64_t now, int64_t unix_ms)
{
    f->wall_offset = unix_ms - now;
}

void gb_fleet_set_receiver(gb_fleet *f, long dev)
{
    f->rx_hint = dev;
}

void gb_fleet_set_query_hook(gb_fleet *f, gb_dev_query_fn fn, void *arg)
{
    f->cfg.query_hook = fn;
    f->cfg.query_hook_arg = arg;
}

/* ---- the pool ------------------------------------------------------------------------ */

static int64_t cam_key(const void *ctx, uint32_t e)
{
    return ((const gb_fleet *)ctx)->cam[e].deadline;
}

static void cam_moved(void *ctx, uint32_t e, uint32_t pos)
{
    ((gb_fleet *)ctx)->cam[e].heap_pos = pos;
}

static uint64_t tx_ref_hash(const void *ctx, uint32_t ref)
{
    const gb_fleet *f = ctx;
    return gb_siphash(&f->hkey, &f->cam[ref - 1].u.tx.branch, sizeof(uint64_t));
}

static int tx_ref_eq(const void *ctx, uint32_t ref, const void *key)
{
    const gb_fleet *f = ctx;
    return f->cam[ref - 1].u.tx.branch == *(const uint64_t *)key;
}

static uint64_t sub_ref_hash(const void *ctx, uint32_t ref)
{
    return ((const gb_fleet *)ctx)->cam[ref - 1].u.sub.callid_hash;
}

static int sub_ref_eq(const void *ctx, uint32_t ref, const void *key)
{
    const gb_fleet *f = ctx;
    const key_bytes *k = key;
    const gbf_cam_sub *s = &f->cam[ref - 1].u.sub;
    return s->len[GBF_D_CALLID] == k->n && memcmp(s->dialog, k->p, k->n) == 0;
}

int gbf_cam_init(gb_fleet *f)
{
    gb_cam_profile generic;
    gb_cam_profile_from_preset(&generic, gb_cam_preset_find("generic", 7));
    f->profiles[0] = generic; /* static strings: nothing to own */
    f->nprofiles = 1;
    f->rx_hint = -1;
    f->scratch_cap = 65536;
    f->scratch = malloc(f->scratch_cap);
    f->nodes = malloc(GBF_REQUEST_NODES * sizeof *f->nodes);
    return f->scratch && f->nodes ? 0 : -1;
}

void gbf_cam_free(gb_fleet *f)
{
    for (uint32_t e = 0; e < f->ncam; e++) {
        gbf_cam_entry *c = &f->cam[e];
        if (c->kind == GBF_CAM_TX)
            free(c->u.tx.bytes);
        else if (c->kind == GBF_CAM_JOB)
            free(c->u.job.custom);
        else if (c->kind == GBF_CAM_SUB)
            free(c->u.sub.dialog);
    }
    for (uint32_t k = 1; k < GB_CAM_MAX_PROFILES; k++)
        free(f->profile_text[k]);
    for (size_t k = 0; k < f->nnames; k++) {
        free(f->names[k].utf8);
        free(f->names[k].gb);
        free(f->names[k].fields);
    }
    free(f->names);
    gb_index_free(&f->name_index);
    gb_index_free(&f->ids);
    free(f->chan);
    free(f->cam);
    free(f->cam_free);
    gb_heap_free(&f->cam_heap);
    gb_index_free(&f->cam_tx);
    gb_index_free(&f->cam_subs);
    free(f->scratch);
    free(f->nodes);
}

size_t gbf_cam_memory(const gb_fleet *f)
{
    size_t n = f->chan_cap + f->names_cap * sizeof(gbf_name) + gb_index_bytes(&f->name_index) +
               gb_index_bytes(&f->ids) + (size_t)f->cam_cap * (sizeof(gbf_cam_entry) + 4) +
               f->cam_free_cap * 4 + gb_index_bytes(&f->cam_tx) + gb_index_bytes(&f->cam_subs) +
               f->cam_bytes + f->scratch_cap +
               GBF_REQUEST_NODES * sizeof(gb_manscdp_node);
    for (size_t k = 0; k < f->nnames; k++)
        n += (size_t)f->names[k].n8 + f->names[k].ngb + 2 +
             (f->names[k].fields ? sizeof(gb_cam_chan_fields) : 0);
    for (uint32_t k = 1; k < f->nprofiles; k++)
        for (int t = 0; t < GB_CAM_F__COUNT; t++)
            n += f->profiles[k].utf8[t].n + f->profiles[k].gb18030[t].n;
    return n;
}

size_t gb_fleet_camera_memory(const gb_fleet *f)
{
    return gbf_cam_memory(f);
}

/* A free entry of this kind, or -1 when its bound (or memory) says no. */
static long cam_alloc(gb_fleet *f, int kind, uint32_t dev)
{
    uint32_t bound = kind == GBF_CAM_TX ? f->cfg.max_answers
                     : kind == GBF_CAM_JOB ? f->cfg.max_jobs : f->cfg.max_subscriptions;
    if (f->cam_count[kind] >= bound)
        return -1;
    uint32_t e;
    if (f->ncam_free) {
        e = f->cam_free[--f->ncam_free];
    } else {
        if (f->ncam == f->cam_cap) {
            size_t cap = f->cam_cap;
            if (f->cam_cap >= UINT32_MAX / 2 ||
                gb_grow((void **)&f->cam, &cap, (size_t)f->ncam + 1, sizeof *f->cam) ||
                gb_heap_reserve(&f->cam_heap, cap))
                return -1;
            f->cam_cap = (uint32_t)cap;
        }
        e = f->ncam++;
    }
    gbf_cam_entry *c = &f->cam[e];
    memset(c, 0, sizeof *c);
    c->kind = (uint8_t)kind;
    c->dev = dev;
    c->heap_pos = UINT32_MAX;
    c->deadline = NEVER;
    c->id = ++f->cam_ids;
    f->cam_count[kind]++;
    if (kind != GBF_CAM_SUB)
        f->devs[dev].cam_live++;
    return (long)e;
}

static void cam_schedule(gb_fleet *f, uint32_t e)
{
    gbf_cam_entry *c = &f->cam[e];
    switch (c->kind) {
    case GBF_CAM_TX:
        c->deadline = min64(c->u.tx.next_rt, c->u.tx.timeout_at);
        break;
    case GBF_CAM_JOB:
        c->deadline = c->u.job.next_at;
        break;
    case GBF_CAM_SUB:
        c->deadline = min64(c->u.sub.expires_at, c->u.sub.next_notify);
        break;
    default:
        c->deadline = NEVER;
    }
    if (c->deadline == NEVER) {
        if (c->heap_pos != UINT32_MAX) {
            gb_heap_remove(&f->cam_heap, c->heap_pos, cam_key, cam_moved, f);
            c->heap_pos = UINT32_MAX;
        }
    } else if (c->heap_pos == UINT32_MAX) {
        gb_heap_push(&f->cam_heap, e, cam_key, cam_moved, f);
    } else {
        gb_heap_fix(&f->cam_heap, c->heap_pos, cam_key, cam_moved, f);
    }
}

static void cam_release(gb_fleet *f, uint32_t e)
{
    gbf_cam_entry *c = &f->cam[e];
    c->deadline = NEVER;
    if (c->heap_pos != UINT32_MAX) {
        gb_heap_remove(&f->cam_heap, c->heap_pos, cam_key, cam_moved, f);
        c->heap_pos = UINT32_MAX;
    }
    f->cam_count[c->kind]--;
    if (c->kind != GBF_CAM_SUB && --f->devs[c->dev].cam_live == 0 && f->devs[c->dev].draining)
        gbf_dev_drained(f, c->dev);
    c->kind = GBF_CAM_FREE;
    if (gb_grow((void **)&f->cam_free, &f->cam_free_cap, f->ncam_free + 1, sizeof(uint32_t)) == 0)
        f->cam_free[f->ncam_free++] = e;
    /* else the slot is lost to reuse until the fleet is freed: no memory */
}

int64_t gbf_cam_deadline(const gb_fleet *f)
{
    return f->cam_heap.len ? f->cam[f->cam_heap.items[0]].deadline : NEVER;
}

/* ---- our requests in flight (answers, NOTIFYs, alarms) ----------------------------- */

static uint64_t tx_hash(const gb_fleet *f, uint64_t branch)
{
    return gb_siphash(&f->hkey, &branch, sizeof branch);
}

/* A branch number none of the pool's requests has. */
static uint64_t new_branch(gb_fleet *f)
{
    uint64_t b;
    do {
        b = gbf_rnd(f);
    } while (!b || gb_index_find(&f->cam_tx, tx_hash(f, b), tx_ref_eq, f, &b));
    return b;
}

static uint32_t new_cseq(gb_fleet *f, const gb_dev *d)
{
    if (f->profiles[d->profile].quirks & GB_CAM_Q_CSEQ_20)
        return 20;
    return (uint32_t)(f->cam_ids % 0x7fffffffu) + 1;
}

/* Queue a request of ours (bytes: malloc'd, taken over) and keep it for
 * Timer E/F.  The entry index, or -1 (pool full, no memory: nothing sent). */
static long tx_send(gb_fleet *f, uint32_t i, int what, uint8_t cmd, uint8_t charset,
                    uint64_t sn, uint32_t owner, uint64_t owner_id, uint16_t part, char *bytes,
                    uint32_t len, uint64_t branch, uint32_t cseq, int64_t now)
{
    long e = bytes ? cam_alloc(f, GBF_CAM_TX, i) : -1;
    if (e < 0 || gb_index_reserve(&f->cam_tx, (size_t)f->cam_tx.count + 1, tx_ref_hash, f)) {
        if (e >= 0)
            cam_release(f, (uint32_t)e);
        free(bytes);
        return -1;
    }
    gb_dev *d = &f->devs[i];
    gbf_cam_entry *c = &f->cam[e];
    c->cmd = cmd;
    c->charset = charset;
    c->sn = sn;
    gbf_cam_tx *t = &c->u.tx;
    t->branch = branch;
    t->bytes = bytes;
    t->len = len;
    t->cseq = cseq;
    t->owner = owner;
    t->owner_id = owner_id;
    t->part = part;
    t->what = (uint8_t)what;
    t->dest = d->dest;
    t->state = TX_TRYING;
    t->started = now;
    t->interval = f->cfg.t1_ms;
    t->next_rt = f->cfg.transport == GB_DEV_UDP ? now + f->cfg.t1_ms : NEVER;
    t->timeout_at = now + f->timer_f;
    gb_index_add(&f->cam_tx, tx_hash(f, branch), (uint32_t)e + 1);
    f->cam_bytes += len;
    gbf_out_bytes(f, bytes, len, i, t->dest, 0);
    if (what == GBF_TX_ANSWER)
        f->stats.answers_sent++;
    else if (what == GBF_TX_NOTIFY)
        f->stats.notifies_sent++;
    else
        f->stats.alarms_sent++;
    f->stats.answers_in_flight = f->cam_count[GBF_CAM_TX];
    cam_schedule(f, (uint32_t)e);
    return e;
}

/* Take a request of ours out of the pool. */
static void tx_drop(gb_fleet *f, uint32_t e)
{
    gbf_cam_tx *t = &f->cam[e].u.tx;
    uint32_t *slot = gb_index_slot(&f->cam_tx, tx_hash(f, t->branch), tx_ref_eq, f, &t->branch);
    if (*slot)
        gb_index_remove_at(&f->cam_tx, slot, tx_ref_hash, f);
    f->cam_bytes -= t->len;
    free(t->bytes);
    t->bytes = NULL;
    cam_release(f, e);
    f->stats.answers_in_flight = f->cam_count[GBF_CAM_TX];
}

static void job_part_done(gb_fleet *f, uint32_t e, int ok, int64_t now);
static void sub_end(gb_fleet *f, uint32_t e, int reason, unsigned status, int64_t now,
                    int notify);

/* The owner of a request, if it is still the same entry. */
static long owner_of(const gb_fleet *f, const gbf_cam_tx *t, int kind)
{
    if (!t->owner)
        return -1;
    uint32_t o = t->owner - 1;
    return o < f->ncam && f->cam[o].kind == kind && f->cam[o].id == t->owner_id ? (long)o : -1;
}

/* A final response (status 0: Timer F) ends request e. */
static void tx_done(gb_fleet *f, uint32_t e, unsigned status, const char *reason,
                    size_t reason_len, int64_t now)
{
    gbf_cam_entry c = f->cam[e]; /* a copy: the entry is freed below */
    const gbf_cam_tx *t = &c.u.tx;
    int ok = status >= 200 && status < 300;
    long job = owner_of(f, t, GBF_CAM_JOB), sub = owner_of(f, t, GBF_CAM_SUB);
    tx_drop(f, e);
    if (ok) {
        if (t->what == GBF_TX_ANSWER)
            f->stats.answers_acknowledged++;
    } else {
        if (t->what == GBF_TX_ANSWER)
            f->stats.answers_failed++;
        else
            f->stats.notifies_failed++;
        if (!status)
            f->stats.timeouts++;
        gb_dev_event *ev = gbf_push_event(f, c.dev, GB_DEV_EV_ANSWER_FAILED, now);
        if (ev) {
            ev->value = c.cmd;
            ev->arg = (int64_t)c.sn;
            ev->status = (uint16_t)status;
            ev->reason = status ? GB_DEV_R_REJECTED : GB_DEV_R_TIMEOUT;
            ev->flags = t->part | (t->what != GBF_TX_ANSWER ? GB_DEV_EVF_NOTIFY : 0);
            ev->latency_ms = gbf_ms_since(now, t->started);
            if (!reason) {
                reason = gb_dev_reason_text(status ? GB_DEV_R_REJECTED : GB_DEV_R_TIMEOUT);
                reason_len = strlen(reason);
            }
            gbf_event_text(f, ev, reason, reason_len);
        }
    }
    if (job >= 0)
        job_part_done(f, (uint32_t)job, ok, now);
    /* RFC 6665 §4.2.2: a NOTIFY answered 481, or lost, ends the subscription */
    if (sub >= 0 && (status == 481 || status == 0))
        sub_end(f, (uint32_t)sub, status ? GB_DEV_R_REJECTED : GB_DEV_R_TIMEOUT, status, now, 0);
}

static void tx_fire(gb_fleet *f, uint32_t e, int64_t now)
{
    gbf_cam_entry *c = &f->cam[e];
    gbf_cam_tx *t = &c->u.tx;
    if (t->timeout_at <= now) {
        tx_done(f, e, 0, NULL, 0, now);
        return;
    }
    if (t->next_rt <= now) {
        t->interval = t->state == TX_PROCEEDING
                          ? f->cfg.t2_ms
                          : (t->interval * 2 < f->cfg.t2_ms ? t->interval * 2 : f->cfg.t2_ms);
        t->next_rt = now + t->interval;
        if (t->what == GBF_TX_ANSWER)
            f->stats.answers_retransmitted++;
        else
            f->stats.notifies_retransmitted++;
        f->stats.retransmissions++;
        gbf_out_bytes(f, t->bytes, t->len, c->dev, t->dest, 1);
    }
    cam_schedule(f, e);
}

int gbf_cam_response(gb_fleet *f, const char *buf, const gb_msg *m, uint64_t branch,
                     int64_t now, long *dev)
{
    (void)buf;
    uint32_t ref = gb_index_find(&f->cam_tx, tx_hash(f, branch), tx_ref_eq, f, &branch);
    if (!ref)
        return 0;
    uint32_t e = ref - 1;
    gbf_cam_entry *c = &f->cam[e];
    gbf_cam_tx *t = &c->u.tx;
    int want = t->what == GBF_TX_NOTIFY ? GB_METHOD_NOTIFY : GB_METHOD_MESSAGE;
    if (m->method_id != want || m->cseq != t->cseq)
        return 0;
    *dev = c->dev;
    gb_dev *d = &f->devs[c->dev];
    if (d->drop) {
        d->drop--;
        f->stats.dropped++;
        return 1;
    }
    f->stats.matched++;
    if (m->status < 200) {
        t->state = TX_PROCEEDING;
        return 1;
    }
    tx_done(f, e, m->status, buf + m->reason.off, m->reason.len, now);
    return 1;
}

/* ---- answers, part by part ---------------------------------------------------------- */

static uint32_t target_flags(long target)
{
    if (target >= 0)
        return (uint32_t)target + 1;
    if (target <= GB_CAM_TARGET_ALARM)
        return GB_DEV_TARGET_ALARM + (uint32_t)(GB_CAM_TARGET_ALARM - target);
    return 0;
}

/* The ID of what a job or subscription is about into id; its length. */
static size_t target_id(const gb_cam_device *v, long target, char id[GB_DEV_ID_MAX])
{
    if (target >= 0 && (uint32_t)target < v->nchan) {
        gb_cam_channel_id(v, (uint32_t)target, id);
        return GB_CAM_ID_LEN;
    }
    if (target <= GB_CAM_TARGET_ALARM) {
        gb_cam_alarm_id(v, (uint32_t)(GB_CAM_TARGET_ALARM - target), id);
        return GB_CAM_ID_LEN;
    }
    memcpy(id, v->id, v->id_len);
    return v->id_len;
}

/* Room the SIP headers of an answer take, measured once per part. */
static size_t answer_head_len(gb_fleet *f, const gb_dev *d)
{
    char tmp[2048];
    gb_writer w;
    gb_w_init(&w, tmp, sizeof tmp);
    gbf_w_message(f, &w, d, d->dest, UINT64_MAX, UINT32_MAX, UINT64_MAX, 2147483647u, "", 0);
    return w.overflow ? sizeof tmp : w.len + 5; /* + Content-Length digits */
}

/* The body of job e's next part into f->scratch; its length (0: cannot be
 * written) and the list items it holds. */
static size_t job_body(gb_fleet *f, uint32_t e, int64_t now, uint32_t *items)
{
    gbf_cam_entry *c = &f->cam[e];
    gbf_cam_job *j = &c->u.job;
    name_ctx nc;
    gb_cam_device v;
    cam_view(f, c->dev, now, &nc, &v);
    char id[GB_DEV_ID_MAX];
    gb_manscdp_head h = {(gb_manscdp_charset)c->charset, c->sn, {id, 0}};
    h.device_id.len = target_id(&v, j->target, id);
    gb_manscdp_writer w;
    gb_manscdp_w_init(&w, f->scratch, f->scratch_cap);
    *items = 0;
    switch (j->what) {
    case GBF_JOB_CUSTOM:
        if (j->custom_len > f->scratch_cap)
            return 0;
        memcpy(f->scratch, j->custom, j->custom_len);
        return j->custom_len;
    case GBF_JOB_RESULT:
        return gb_cam_write_result(&w, &h, (gb_manscdp_cmd)c->cmd, j->arg);
    case GBF_JOB_SINGLE:
        switch (c->cmd) {
        case GB_MANSCDP_CMD_DEVICE_INFO:
            h.device_id = (gb_manscdp_str){v.id, v.id_len};
            return gb_cam_write_device_info(&w, &v, &h);
        case GB_MANSCDP_CMD_DEVICE_STATUS:
            return gb_cam_write_device_status(&w, &v, &h,
                                              j->target >= 0 ? j->target : GB_CAM_TARGET_DEVICE);
        case GB_MANSCDP_CMD_CONFIG_DOWNLOAD:
            h.device_id = (gb_manscdp_str){v.id, v.id_len};
            return gb_cam_write_config(&w, &v, &h, j->arg);
        case GB_MANSCDP_CMD_PRESET_QUERY:
            return gb_cam_write_presets(&w, &v, &h);
        default:
            return 0;
        }
    default:
        break;
    }
    gb_dev *d = &f->devs[c->dev];
    size_t head = answer_head_len(f, d);
    size_t budget = f->cfg.answer_max_message > head + 256 ? f->cfg.answer_max_message - head
                                                             : 256;
    uint32_t left = j->total - j->next_item;
    if (c->cmd == GB_MANSCDP_CMD_CATALOG) {
        h.device_id = (gb_manscdp_str){v.id, v.id_len};
        return gb_cam_catalog_part(f->scratch, f->scratch_cap, budget, &v, &h, j->total,
                                   j->next_item, left, f->cfg.answer_max_items, items);
    }
    gb_cam_records r = {j->rec_start, j->rec_end, f->cfg.record_segment_s, f->cfg.record_max,
                        j->arg};
    uint32_t ch = j->target >= 0 ? (uint32_t)j->target : 0;
    return gb_cam_record_part(f->scratch, f->scratch_cap, budget, &v, &h, ch, &r, j->total,
                              j->next_item, left, f->cfg.answer_max_items, items);
}

static void job_finish_if(gb_fleet *f, uint32_t e, int64_t now)
{
    gbf_cam_entry *c = &f->cam[e];
    gbf_cam_job *j = &c->u.job;
    if (!j->done || j->in_flight)
        return;
    if (!j->failed) {
        f->stats.answers_completed++;
        gb_dev_event *ev = gbf_push_event(f, c->dev, GB_DEV_EV_ANSWERED, now);
        if (ev) {
            ev->value = c->cmd;
            ev->arg = (int64_t)c->sn;
            ev->status = 200;
            ev->flags = j->parts;
            ev->latency_ms = gbf_ms_since(now, j->query_at);
        }
    }
    free(j->custom);
    j->custom = NULL;
    f->cam_bytes -= j->custom_len;
    cam_release(f, e);
}

/* Send what job e may send now: parts one after another (answer_gap_ms
 * apart, at most answer_window unanswered), each its own MESSAGE. */
static void job_step(gb_fleet *f, uint32_t e, int64_t now)
{
    gbf_cam_job *j = &f->cam[e].u.job;
    while (!j->done && j->next_at <= now) {
        if (f->cfg.answer_window && j->in_flight >= f->cfg.answer_window) {
            j->next_at = NEVER; /* the next 2xx wakes it */
            break;
        }
        if (f->cam_count[GBF_CAM_TX] >= f->cfg.max_answers) {
            f->stats.answers_deferred++;
            j->next_at = now + f->cfg.t1_ms;
            break;
        }
        uint32_t items;
        size_t len = job_body(f, e, now, &items);
        gbf_cam_entry *c = &f->cam[e];
        if (!len) {
            j->failed = 1;
            j->done = 1;
            f->stats.answers_failed++;
            gb_dev_event *ev = gbf_push_event(f, c->dev, GB_DEV_EV_ANSWER_FAILED, now);
            if (ev) {
                static const char why[] = "the answer cannot be written";
                ev->value = c->cmd;
                ev->arg = (int64_t)c->sn;
                ev->status = 500;
                ev->reason = GB_DEV_R_INTERNAL;
                gbf_event_text(f, ev, why, sizeof why - 1);
            }
            break;
        }
        gb_dev *d = &f->devs[c->dev];
        uint64_t branch = new_branch(f);
        uint32_t cseq = new_cseq(f, d);
        size_t cap = gbf_room_for(f) + len;
        char *bytes = malloc(cap);
        gb_writer w;
        if (bytes) {
            gb_w_init(&w, bytes, cap);
            gbf_w_message(f, &w, d, d->dest, branch, (uint32_t)gbf_rnd(f), gbf_rnd(f), cseq,
                          f->scratch, len);
            if (w.overflow) {
                free(bytes);
                bytes = NULL;
            }
        }
        uint64_t id = c->id;
        long t = tx_send(f, c->dev, GBF_TX_ANSWER, c->cmd, c->charset, c->sn, e + 1, id,
                         (uint16_t)(j->parts + 1), bytes, bytes ? (uint32_t)w.len : 0, branch,
                         cseq, now);
        j = &f->cam[e].u.job; /* the pool may have moved */
        if (t < 0) {
            f->stats.answers_deferred++;
            j->next_at = now + f->cfg.t1_ms;
            break;
        }
        j->parts++;
        j->in_flight++;
        if (j->what == GBF_JOB_LIST) {
            j->next_item += items;
            j->done = j->next_item >= j->total;
        } else {
            j->done = 1;
        }
        if (!j->done)
            j->next_at = now + f->cfg.answer_gap_ms;
    }
    if (j->done)
        j->next_at = NEVER;
    cam_schedule(f, e);
    job_finish_if(f, e, now);
}

static void job_part_done(gb_fleet *f, uint32_t e, int ok, int64_t now)
{
    gbf_cam_job *j = &f->cam[e].u.job;
    j->in_flight--;
    if (!ok) {
        j->failed = 1;
        j->done = 1; /* the platform refused a part: the rest would fare no better */
    }
    if (!j->done && j->next_at == NEVER) {
        j->next_at = now;
        job_step(f, e, now);
        return;
    }
    if (j->done)
        j->next_at = NEVER;
    cam_schedule(f, e);
    job_finish_if(f, e, now);
}

/* ---- subscriptions (§9.11, RFC 6665) ------------------------------------------------- */

static gb_bytes dialog_part(const gbf_cam_sub *s, int k)
{
    size_t off = 0;
    for (int i = 0; i < k; i++)
        off += s->len[i];
    return (gb_bytes){s->dialog + off, s->len[k]};
}

static uint32_t remaining_s(const gbf_cam_sub *s, int64_t now)
{
    return s->expires_at > now ? (uint32_t)((s->expires_at - now + 999) / 1000) : 0;
}

/* A NOTIFY in subscription e's dialog with this Subscription-State and
 * body (NULL: none).  0, or -1 when it could not be sent. */
static int sub_notify(gb_fleet *f, uint32_t e, const char *state, size_t state_len,
                      int with_expires, const char *body, size_t blen, uint64_t sn, int64_t now)
{
    gbf_cam_entry *c = &f->cam[e];
    gbf_cam_sub *s = &c->u.sub;
    gb_dev *d = &f->devs[c->dev];
    uint64_t branch = new_branch(f);
    uint32_t cseq = ++s->cseq;
    size_t cap = gbf_room_for(f) + blen + s->len[0] + s->len[1] + s->len[2] + s->len[3] +
                 s->len[4] + 256;
    char *bytes = malloc(cap);
    if (!bytes)
        return -1;
    gb_writer w;
    gb_w_init(&w, bytes, cap);
    W_LIT(&w, "NOTIFY ");
    gbf_w_b(&w, dialog_part(s, GBF_D_TARGET));
    W_LIT(&w, " SIP/2.0\r\n");
    gbf_w_via(f, &w, d, branch);
    W_LIT(&w, "From: ");
    gbf_w_aor(f, &w, d->id, d->id_len);
    W_LIT(&w, ";tag=");
    gbf_w_num(&w, s->local_tag);
    W_LIT(&w, "\r\nTo: <");
    gbf_w_b(&w, dialog_part(s, GBF_D_RURI));
    W_LIT(&w, ">");
    if (s->len[GBF_D_RTAG]) {
        W_LIT(&w, ";tag=");
        gbf_w_b(&w, dialog_part(s, GBF_D_RTAG));
    }
    W_LIT(&w, "\r\nCall-ID: ");
    gbf_w_b(&w, dialog_part(s, GBF_D_CALLID));
    W_LIT(&w, "\r\nCSeq: ");
    gbf_w_num(&w, cseq);
    W_LIT(&w, " NOTIFY\r\n");
    gbf_w_contact(f, &w, d);
    gbf_w_tail(f, &w, d);
    W_LIT(&w, "Event: ");
    gbf_w_b(&w, dialog_part(s, GBF_D_EVENT));
    W_LIT(&w, "\r\nSubscription-State: ");
    gb_w_bytes(&w, state, state_len);
    if (with_expires) {
        W_LIT(&w, ";expires=");
        gbf_w_num(&w, remaining_s(s, now));
    }
    W_LIT(&w, "\r\n");
    if (body)
        W_LIT(&w, "Content-Type: Application/MANSCDP+xml\r\n");
    W_LIT(&w, "Content-Length: ");
    gbf_w_num(&w, body ? blen : 0);
    W_LIT(&w, "\r\n\r\n");
    if (body)
        gb_w_bytes(&w, body, blen);
    if (w.overflow) {
        free(bytes);
        return -1;
    }
    uint64_t id = c->id;
    return tx_send(f, c->dev, GBF_TX_NOTIFY, c->cmd, c->charset, sn, e + 1, id, 0, bytes,
                   (uint32_t)w.len, branch, cseq, now) < 0 ? -1 : 0;
}

static void sub_unlink(gb_fleet *f, uint32_t e)
{
    gbf_cam_entry *c = &f->cam[e];
    uint32_t *link = &f->devs[c->dev].subs;
    while (*link && *link != e + 1)
        link = &f->cam[*link - 1].u.sub.next_sub;
    if (*link)
        *link = c->u.sub.next_sub;
}

/* End subscription e (reason GB_DEV_R_*), with a last NOTIFY
 * "terminated" when notify says so. */
static void sub_end(gb_fleet *f, uint32_t e, int reason, unsigned status, int64_t now,
                    int notify)
{
    if (notify) {
        static const char timeout[] = "terminated;reason=timeout";
        static const char plain[] = "terminated";
        if (reason == GB_DEV_R_EXPIRED)
            sub_notify(f, e, timeout, sizeof timeout - 1, 0, NULL, 0, 0, now);
        else
            sub_notify(f, e, plain, sizeof plain - 1, 0, NULL, 0, 0, now);
    }
    gbf_cam_entry *c = &f->cam[e];
    gbf_cam_sub *s = &c->u.sub;
    sub_unlink(f, e);
    key_bytes k = {s->dialog, s->len[GBF_D_CALLID]};
    uint32_t *slot = gb_index_slot(&f->cam_subs, s->callid_hash, sub_ref_eq, f, &k);
    if (*slot)
        gb_index_remove_at(&f->cam_subs, slot, sub_ref_hash, f);
    f->stats.subscriptions_ended++;
    gb_dev_event *ev = gbf_push_why(f, c->dev, GB_DEV_EV_SUBSCRIPTION_ENDED, now, status,
                                    reason, NULL, 0);
    if (ev)
        ev->value = c->cmd;
    size_t held = 0;
    for (int k2 = 0; k2 < 5; k2++)
        held += s->len[k2];
    f->cam_bytes -= held;
    free(s->dialog);
    s->dialog = NULL;
    cam_release(f, e);
    f->stats.subscriptions_active = f->cam_count[GBF_CAM_SUB];
}

static long sub_find(const gb_fleet *f, const char *callid, size_t n)
{
    key_bytes k = {callid, n};
    uint32_t ref = gb_index_find(&f->cam_subs, gb_siphash(&f->hkey, callid, n), sub_ref_eq, f, &k);
    return (long)ref - 1;
}

/* The MobilePosition NOTIFY of subscription e, now. */
static void sub_position(gb_fleet *f, uint32_t e, int64_t now)
{
    gbf_cam_entry *c = &f->cam[e];
    name_ctx nc;
    gb_cam_device v;
    cam_view(f, c->dev, now, &nc, &v);
    gb_manscdp_writer w;
    gb_manscdp_w_init(&w, f->scratch, f->scratch_cap);
    uint32_t ch = c->u.sub.target >= 0 ? (uint32_t)c->u.sub.target : UINT32_MAX;
    uint64_t sn = ++f->notify_sn;
    size_t len = gb_cam_write_position(&w, &v, (gb_manscdp_charset)c->charset, sn, ch);
    static const char active[] = "active";
    if (len)
        sub_notify(f, e, active, sizeof active - 1, 1, f->scratch, len, sn, now);
}

static void sub_fire(gb_fleet *f, uint32_t e, int64_t now)
{
    gbf_cam_sub *s = &f->cam[e].u.sub;
    if (s->expires_at <= now) {
        sub_end(f, e, GB_DEV_R_EXPIRED, 0, now, 1);
        return;
    }
    if (s->next_notify <= now) {
        s->next_notify = now + s->interval_ms;
        sub_position(f, e, now);
        s = &f->cam[e].u.sub;
    }
    cam_schedule(f, e);
}

/* Send body (writer fn) to every subscription of device i for cmd. */
typedef size_t (*notify_body_fn)(gb_manscdp_writer *w, const gb_cam_device *v,
                                 gb_manscdp_charset cs, uint64_t sn, const void *arg);

static long notify_subscribers(gb_fleet *f, uint32_t i, int cmd, notify_body_fn fn,
                               const void *arg, int64_t now)
{
    long sent = 0;
    for (uint32_t ref = f->devs[i].subs; ref;) {
        uint32_t e = ref - 1;
        ref = f->cam[e].u.sub.next_sub;
        if (f->cam[e].cmd != cmd)
            continue;
        name_ctx nc;
        gb_cam_device v;
        cam_view(f, i, now, &nc, &v);
        gb_manscdp_writer w;
        gb_manscdp_w_init(&w, f->scratch, f->scratch_cap);
        uint64_t sn = ++f->notify_sn;
        size_t len = fn(&w, &v, (gb_manscdp_charset)f->cam[e].charset, sn, arg);
        static const char active[] = "active";
        if (len && sub_notify(f, e, active, sizeof active - 1, 1, f->scratch, len, sn, now) == 0)
            sent++;
    }
    return sent;
}

static size_t catalog_change(gb_manscdp_writer *w, const gb_cam_device *v,
                             gb_manscdp_charset cs, uint64_t sn, const void *arg)
{
    return gb_cam_write_catalog_notify(w, v, cs, sn, *(const uint32_t *)arg);
}

static size_t alarm_body(gb_manscdp_writer *w, const gb_cam_device *v, gb_manscdp_charset cs,
                         uint64_t sn, const void *arg)
{
    return gb_cam_write_alarm(w, v, cs, sn, arg);
}

static int started(const gb_dev *d)
{
    return !IN(d, ST(GB_DEV_IDLE) | ST(GB_DEV_UNREGISTERED));
}

long gb_fleet_set_channel_status(gb_fleet *f, uint32_t dev, uint32_t ch, int on, int64_t now)
{
    if (dev >= f->ndevs || ch >= f->devs[dev].nchan)
        return -1;
    gb_dev *d = &f->devs[dev];
    uint8_t *st = chan_bytes(f, d);
    if (!st)
        return -1;
    int was_on = !(st[ch] & GB_CAM_CH_OFF);
    if (was_on == !!on)
        return 0;
    if (on)
        st[ch] &= (uint8_t)~GB_CAM_CH_OFF;
    else
        st[ch] |= GB_CAM_CH_OFF;
    if (!started(d))
        return 0;
    return notify_subscribers(f, dev, GB_MANSCDP_CMD_CATALOG, catalog_change, &ch, now);
}

long gb_fleet_raise_alarm(gb_fleet *f, uint32_t dev, const gb_cam_alarm *a, int64_t now)
{
    if (dev >= f->ndevs)
        return -1;
    gb_dev *d = &f->devs[dev];
    const gb_cam_profile *p = &f->profiles[d->profile];
    if (a->target >= 0 ? (uint32_t)a->target >= d->nchan
                       : (a->target > GB_CAM_TARGET_ALARM ||
                          GB_CAM_TARGET_ALARM - a->target >= p->max_alarm))
        return -1;
    if (a->target >= 0) {
        uint8_t *st = chan_bytes(f, d);
        if (!st)
            return -1;
        st[a->target] |= GB_CAM_CH_ALARM;
    } else {
        d->alarm_bits |= (uint16_t)(1u << (GB_CAM_TARGET_ALARM - a->target));
    }
    if (!started(d))
        return 0;
    long sent = 0;
    /* §9.4: the alarm goes to the platform as a MESSAGE, whoever subscribed */
    name_ctx nc;
    gb_cam_device v;
    cam_view(f, dev, now, &nc, &v);
    gb_manscdp_writer w;
    gb_manscdp_w_init(&w, f->scratch, f->scratch_cap);
    uint64_t sn = ++f->notify_sn;
    size_t len = gb_cam_write_alarm(&w, &v, GB_MANSCDP_CHARSET_GB2312, sn, a);
    if (len && f->cam_count[GBF_CAM_TX] < f->cfg.max_answers) {
        uint64_t branch = new_branch(f);
        uint32_t cseq = new_cseq(f, d);
        size_t cap = gbf_room_for(f) + len;
        char *bytes = malloc(cap);
        gb_writer sw = {0};
        if (bytes) {
            gb_w_init(&sw, bytes, cap);
            gbf_w_message(f, &sw, d, d->dest, branch, (uint32_t)gbf_rnd(f), gbf_rnd(f), cseq,
                          f->scratch, len);
        }
        if (bytes && sw.overflow) {
            free(bytes);
            bytes = NULL;
        }
        if (tx_send(f, dev, GBF_TX_ALARM, GB_MANSCDP_CMD_ALARM, GB_MANSCDP_CHARSET_GB2312, sn,
                    0, 0, 0, bytes, (uint32_t)sw.len, branch, cseq, now) >= 0)
            sent++;
    }
    return sent + notify_subscribers(f, dev, GB_MANSCDP_CMD_ALARM, alarm_body, a, now);
}

void gbf_cam_dev_stopped(gb_fleet *f, uint32_t i, int64_t now, int keep_requests)
{
    gb_dev *d = &f->devs[i];
    while (d->subs)
        sub_end(f, d->subs - 1, GB_DEV_R_ABANDONED, 0, now, 0);
    if (keep_requests)
        return;
    for (uint32_t e = 0; d->cam_live && e < f->ncam; e++) {
        gbf_cam_entry *c = &f->cam[e];
        if (c->dev != i)
            continue;
        if (c->kind == GBF_CAM_TX) {
            tx_drop(f, e);
        } else if (c->kind == GBF_CAM_JOB) {
            free(c->u.job.custom);
            f->cam_bytes -= c->u.job.custom_len;
            c->u.job.custom = NULL;
            cam_release(f, e);
        }
    }
    memset(d->rx_key, 0, sizeof d->rx_key);
}

void gbf_cam_timer(gb_fleet *f, int64_t now)
{
    /* every firing moves the entry's deadline past now or frees it */
    uint64_t budget = (uint64_t)f->cam_heap.len * 4 + 64;
    while (f->cam_heap.len && f->cam[f->cam_heap.items[0]].deadline <= now && budget--) {
        uint32_t e = f->cam_heap.items[0];
        switch (f->cam[e].kind) {
        case GBF_CAM_TX:
            tx_fire(f, e, now);
            break;
        case GBF_CAM_JOB:
            job_step(f, e, now);
            break;
        case GBF_CAM_SUB:
            sub_fire(f, e, now);
            break;
        default:
            cam_schedule(f, e); /* cannot happen: a free entry is in no heap */
        }
    }
}

/* ---- requests from the platform ------------------------------------------------------ */

/* Ties a request to its retransmissions: Call-ID, CSeq, method and the top
 * Via's branch (RFC 3261 §17.2.3). */
static uint64_t request_key(const gb_fleet *f, const char *buf, const gb_msg *m)
{
    gb_span cid = gbf_header_value(m, GB_HDR_CALL_ID);
    gb_span via = gbf_header_value(m, GB_HDR_VIA);
    uint64_t a = gb_siphash(&f->hkey, buf + cid.off, cid.len);
    uint64_t b = gb_siphash(&f->hkey, buf + via.off, via.len);
    uint64_t k = gb_mix64(a ^ gb_mix64(b + (uint64_t)m->cseq * 0x9e3779b97f4a7c15ull +
                                       m->method_id));
    return k ? k : 1;
}

static int rx_find(const gb_dev *d, uint64_t key)
{
    for (int k = 0; k < GBF_RX_SLOTS; k++)
        if (d->rx_key[k] == key)
            return k;
    return -1;
}

static void rx_remember(gb_dev *d, uint64_t key, unsigned status)
{
    d->rx_key[d->rx_next] = key;
    d->rx_status[d->rx_next] = (uint16_t)status;
    d->rx_next = (uint8_t)((d->rx_next + 1) % GBF_RX_SLOTS);
}

/* Our To tag for a request: the same for its retransmissions. */
static size_t to_tag(uint64_t key, char out[20])
{
    return gbf_fmt_u64(out, (uint32_t)(key >> 32));
}

/* Queue the response to request m toward device i's platform: the
 * request's Via, From, To (+ tag), Call-ID and CSeq, the extra fields,
 * User-Agent, the body. */
static void reply(gb_fleet *f, uint32_t i, const char *buf, const gb_msg *m, uint64_t key,
                  unsigned status, const char *reason, const char *tag, size_t tag_len,
                  const gb_field *extra, size_t nextra, const char *body, size_t blen)
{
    gb_dev *d = &f->devs[i];
    gb_field fields[8];
    size_t nf = 0;
    for (; nf < nextra && nf < 7; nf++)
        fields[nf] = extra[nf];
    gb_bytes ua = f->profiles[d->profile].utf8[GB_CAM_F_USER_AGENT];
    if (!ua.n)
        ua = f->cfg.user_agent;
    if (ua.n)
        fields[nf++] = (gb_field){"User-Agent", 10, ua.p, ua.n};
    char tagbuf[20];
    if (!tag) {
        tag_len = to_tag(key, tagbuf);
        tag = tagbuf;
    }
    gb_reply_opts o = {
        .reason = reason, .reason_len = reason ? strlen(reason) : 0,
        .to_tag = tag, .to_tag_len = tag_len,
        .fields = fields, .nfields = nf, .body = body, .body_len = blen,
    };
    gb_writer w;
    for (size_t room = (size_t)m->length * 2 + blen + 1024; room < (1u << 22); room *= 2) {
        if (gbf_out_begin(f, &w, room))
            return;
        if (gb_build_reply(&w, buf, m, status, &o) == 0) {
            gbf_out_commit(f, &w, i, d->dest, 0);
            return;
        }
    }
}

static void refused(gb_fleet *f, uint32_t i, const gb_msg *m, unsigned status,
                    const char *reason, int64_t now)
{
    f->stats.requests_refused++;
    gb_dev_event *ev = gbf_push_event(f, i, GB_DEV_EV_REFUSED, now);
    if (ev) {
        ev->value = m->method_id;
        ev->status = (uint16_t)status;
        ev->reason = GB_DEV_R_REJECTED;
        if (!reason)
            reason = gb_status_phrase(status);
        gbf_event_text(f, ev, reason, strlen(reason));
    }
}

/* Reply status (>= 300) to a request we will not serve, and say so. */
static unsigned refuse(gb_fleet *f, uint32_t i, const char *buf, const gb_msg *m, uint64_t key,
                       unsigned status, const char *reason, const gb_field *extra,
                       size_t nextra, int64_t now)
{
    reply(f, i, buf, m, key, status, reason, NULL, 0, extra, nextra, NULL, 0);
    refused(f, i, m, status, reason, now);
    return status;
}

static const gb_field ALLOW = {"Allow", 5, "MESSAGE, SUBSCRIBE, OPTIONS", 27};
static const gb_field ACCEPT = {"Accept", 6, "Application/MANSCDP+xml", 23};

static int is_manscdp(const char *buf, const gb_msg *m)
{
    static const char want[] = "application/manscdp+xml";
    gb_span ct = gbf_header_value(m, GB_HDR_CONTENT_TYPE);
    size_t n = sizeof want - 1;
    if (ct.len < n || !gb_ieq(buf + ct.off, n, want, n))
        return 0;
    if (ct.len == n)
        return 1;
    char next = buf[ct.off + n];
    return next == ';' || next == ' ' || next == '\t';
}

/* The request's MANSCDP body read into doc (spans relative to *body): 0,
 * or the status it was refused with. */
static unsigned read_body(gb_fleet *f, uint32_t i, const char *buf, const gb_msg *m,
                          uint64_t key, gb_manscdp_doc *doc, const char **body, int64_t now)
{
    if (!is_manscdp(buf, m))
        return refuse(f, i, buf, m, key, 415, "Content-Type must be Application/MANSCDP+xml",
                      &ACCEPT, 1, now);
    if (m->body.len == 0)
        return refuse(f, i, buf, m, key, 400, "no MANSCDP+xml body", NULL, 0, now);
    gb_manscdp_limits lim;
    gb_manscdp_limits_default(&lim);
    lim.lenient = f->cfg.manscdp_lenient;
    gb_manscdp_error err;
    gb_manscdp_init(doc, f->nodes, GBF_REQUEST_NODES);
    *body = buf + m->body.off;
    if (gb_manscdp_parse(*body, m->body.len, &lim, doc, &err) != GB_MANSCDP_OK)
        return refuse(f, i, buf, m, key, err.status, err.reason, NULL, 0, now);
    return 0;
}

/* read_body, then what its DeviceID names (gb_cam_target): 0, or the
 * status the request was refused with (404 when it names nothing here). */
static unsigned read_request(gb_fleet *f, uint32_t i, const char *buf, const gb_msg *m,
                             uint64_t key, gb_manscdp_doc *doc, const char **body, long *target,
                             int64_t now)
{
    unsigned st = read_body(f, i, buf, m, key, doc, body, now);
    if (st)
        return st;
    name_ctx nc;
    gb_cam_device v;
    cam_view(f, i, now, &nc, &v);
    *target = gb_cam_target(&v, *body + doc->device_id.off, doc->device_id.len);
    if (*target == GB_CAM_TARGET_NONE)
        return refuse(f, i, buf, m, key, 404, "DeviceID is neither this device nor its channel",
                      NULL, 0, now);
    return 0;
}

static gb_span child_text(const gb_manscdp_doc *doc, const char *body, const char *name)
{
    unsigned k = gb_manscdp_child(doc, body, 0, name, strlen(name), GB_MANSCDP_NONE);
    return k == GB_MANSCDP_NONE ? (gb_span){0, 0} : doc->nodes[k].text;
}

static int has_child(const gb_manscdp_doc *doc, const char *body, const char *name)
{
    return gb_manscdp_child(doc, body, 0, name, strlen(name), GB_MANSCDP_NONE) !=
           GB_MANSCDP_NONE;
}

static gb_dev_event *camera_event(gb_fleet *f, uint32_t i, int type, unsigned status,
                                  uint32_t value, long target, uint64_t sn, const char *text,
                                  size_t text_len, int64_t now)
{
    gb_dev_event *ev = gbf_push_event(f, i, type, now);
    if (ev) {
        ev->status = (uint16_t)status;
        ev->value = value;
        ev->flags = target_flags(target);
        ev->arg = (int64_t)sn;
        gbf_event_text(f, ev, text, text_len);
    }
    return ev;
}

/* A new job for query doc of device i.  The entry, or -1 (pool full). */
static long new_job(gb_fleet *f, uint32_t i, const gb_manscdp_doc *doc, int what, long target,
                    int64_t now)
{
    long e = cam_alloc(f, GBF_CAM_JOB, i);
    if (e < 0)
        return -1;
    gbf_cam_entry *c = &f->cam[e];
    c->cmd = (uint8_t)doc->cmd;
    c->charset = doc->charset;
    c->sn = doc->sn;
    c->u.job.what = (uint8_t)what;
    c->u.job.target = (int32_t)target;
    c->u.job.query_at = now;
    c->u.job.next_at = NEVER;
    return e;
}

static void job_start(gb_fleet *f, uint32_t e, int64_t now)
{
    f->cam[e].u.job.next_at = now;
    job_step(f, e, now);
}

static const gb_manscdp_cmd answered_queries[] = {
    GB_MANSCDP_CMD_CATALOG, GB_MANSCDP_CMD_DEVICE_INFO, GB_MANSCDP_CMD_DEVICE_STATUS,
    GB_MANSCDP_CMD_CONFIG_DOWNLOAD, GB_MANSCDP_CMD_RECORD_INFO, GB_MANSCDP_CMD_PRESET_QUERY,
};

static unsigned on_query(gb_fleet *f, uint32_t i, const char *buf, const gb_msg *m,
                         uint64_t key, const gb_manscdp_doc *doc, const char *body,
                         long target, int64_t now)
{
    const char *ct = body + doc->cmd_type.off;
    size_t ctl = doc->cmd_type.len;
    int known = 0;
    for (size_t k = 0; k < sizeof answered_queries / sizeof answered_queries[0]; k++)
        known |= doc->cmd == answered_queries[k];
    unsigned status = 0;
    const char *why = NULL;
    if (!known) {
        status = 501;
        why = "this camera does not answer that query";
    }
    int what = doc->cmd == GB_MANSCDP_CMD_CATALOG || doc->cmd == GB_MANSCDP_CMD_RECORD_INFO
                   ? GBF_JOB_LIST
                   : GBF_JOB_SINGLE;
    int64_t rs = 0, re = 0;
    uint8_t arg = 0;
    gb_dev *d = &f->devs[i];
    if (!status && doc->cmd == GB_MANSCDP_CMD_RECORD_INFO) {
        gb_span s = child_text(doc, body, "StartTime"), e = child_text(doc, body, "EndTime");
        gb_span type = child_text(doc, body, "Type");
        rs = gb_cam_parse_time(body + s.off, s.len);
        re = gb_cam_parse_time(body + e.off, e.len);
        if (rs == INT64_MIN || re == INT64_MIN) {
            status = 400;
            why = "RecordInfo needs StartTime and EndTime (yyyy-MM-ddTHH:mm:ss)";
        } else if (target < 0 && !d->nchan) {
            status = 404;
            why = "no channel to list recordings of";
        }
        /* scheduled recordings only: Type all or time (or none) */
        arg = type.len == 0 || gb_ieq(body + type.off, type.len, "all", 3) ||
              gb_ieq(body + type.off, type.len, "time", 4);
        int64_t local_now = now + f->wall_offset + (int64_t)f->cfg.utc_offset_min * 60000;
        if (re > local_now)
            re = local_now;
    }
    if (!status && doc->cmd == GB_MANSCDP_CMD_CONFIG_DOWNLOAD) {
        gb_span t = child_text(doc, body, "ConfigType");
        for (uint32_t k = 0; k + 10 <= t.len && !arg; k++)
            arg = memcmp(body + t.off + k, "BasicParam", 10) == 0;
    }
    gb_bytes custom = {NULL, 0};
    if (!status && f->cfg.query_hook) {
        int r = f->cfg.query_hook(f->cfg.query_hook_arg, i, body, m->body.len, doc, &custom);
        if (r >= 300 && r <= 699) {
            status = (unsigned)r;
            why = "refused by the query hook";
        } else if (r == GB_DEV_HOOK_NONE) {
            what = -1;
        } else if (r == GB_DEV_HOOK_BODY) {
            what = GBF_JOB_CUSTOM;
        }
    }
    long e = -1;
    char *copy = NULL;
    if (!status && what >= 0) {
        if (what == GBF_JOB_CUSTOM && !(copy = malloc(custom.n ? custom.n : 1))) {
            status = 500;
        } else if ((e = new_job(f, i, doc, what, target, now)) < 0) {
            status = 503;
            why = "too many answers in progress";
            f->stats.answers_busy++;
        }
        if (status)
            free(copy);
    }
    if (status) {
        static const gb_field RETRY = {"Retry-After", 11, "1", 1};
        reply(f, i, buf, m, key, status, why, NULL, 0, status == 503 ? &RETRY : NULL,
              status == 503, NULL, 0);
        f->stats.requests_refused++;
        camera_event(f, i, GB_DEV_EV_QUERY, status, doc->cmd, target, doc->sn, ct, ctl, now);
        return status;
    }
    /* the 200 goes out before the answer (conformance suites check it) */
    reply(f, i, buf, m, key, 200, NULL, NULL, 0, NULL, 0, NULL, 0);
    f->stats.queries[doc->cmd]++;
    camera_event(f, i, GB_DEV_EV_QUERY, 200, doc->cmd, target, doc->sn, ct, ctl, now);
    if (e < 0)
        return 200;
    gbf_cam_job *j = &f->cam[e].u.job;
    j->arg = arg;
    if (copy) {
        memcpy(copy, custom.p, custom.n);
        j->custom = copy;
        j->custom_len = (uint32_t)custom.n;
        f->cam_bytes += custom.n;
    }
    if (doc->cmd == GB_MANSCDP_CMD_CATALOG) {
        j->total = d->nchan;
    } else if (doc->cmd == GB_MANSCDP_CMD_RECORD_INFO) {
        j->rec_start = rs;
        j->rec_end = re;
        gb_cam_records r = {rs, re, f->cfg.record_segment_s, f->cfg.record_max, arg};
        j->total = gb_cam_record_count(&r);
    }
    job_start(f, (uint32_t)e, now);
    return 200;
}

/* PTZCmd (Annex A.3): 8 bytes in hex, A5 first, the second byte's low
 * nibble the sum of the nibbles before it, the last the sum of the rest. */
static int ptz_valid(const char *p, size_t n)
{
    unsigned b[8], sum = 0;
    if (n != 16)
        return 0;
    for (int k = 0; k < 8; k++) {
        unsigned v = 0;
        for (int h = 0; h < 2; h++) {
            char c = p[2 * k + h];
            unsigned x = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                         : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                         : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                                : 16u;
            if (x > 15)
                return 0;
            v = v * 16 + x;
        }
        b[k] = v;
        if (k < 7)
            sum += v;
    }
    unsigned nibbles = (b[0] >> 4) + (b[0] & 15) + (b[1] >> 4);
    return b[0] == 0xA5 && (b[1] & 15) == nibbles % 16 && b[7] == sum % 256;
}

/* Which DeviceControl command the body carries, and its element's text. */
static gb_dev_control control_kind(const gb_manscdp_doc *doc, const char *body, gb_span *text)
{
    static const struct {
        const char *name;
        gb_dev_control kind;
    } names[] = {
        {"PTZCmd", GB_DEV_CTL_PTZ}, {"TeleBoot", GB_DEV_CTL_TELEBOOT},
        {"RecordCmd", GB_DEV_CTL_RECORD}, {"GuardCmd", GB_DEV_CTL_GUARD},
        {"AlarmCmd", GB_DEV_CTL_ALARM}, {"IFameCmd", GB_DEV_CTL_IFRAME},
        {"IFrameCmd", GB_DEV_CTL_IFRAME}, {"DragZoomIn", GB_DEV_CTL_DRAG_ZOOM},
        {"DragZoomOut", GB_DEV_CTL_DRAG_ZOOM}, {"HomePosition", GB_DEV_CTL_HOME_POSITION},
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (has_child(doc, body, names[k].name)) {
            *text = child_text(doc, body, names[k].name);
            return names[k].kind;
        }
    *text = (gb_span){0, 0};
    return GB_DEV_CTL_OTHER;
}

/* Apply a command to the camera's state; 1 when the value was understood. */
static int control_apply(gb_fleet *f, uint32_t i, gb_dev_control kind, const char *v, size_t n,
                         long target)
{
    gb_dev *d = &f->devs[i];
    switch (kind) {
    case GB_DEV_CTL_RECORD: {
        int on = gb_ieq(v, n, "Record", 6);
        if (!on && !gb_ieq(v, n, "StopRecord", 10))
            return 0;
        uint8_t *st = d->nchan ? chan_bytes(f, d) : NULL;
        for (uint32_t c = 0; st && c < d->nchan; c++)
            if (target < 0 || (long)c == target)
                st[c] = on ? (uint8_t)(st[c] | GB_CAM_CH_RECORD)
                           : (uint8_t)(st[c] & ~GB_CAM_CH_RECORD);
        return 1;
    }
    case GB_DEV_CTL_GUARD:
        if (gb_ieq(v, n, "SetGuard", 8))
            d->cam_flags &= (uint8_t)~GB_CAM_DEV_DISARMED;
        else if (gb_ieq(v, n, "ResetGuard", 10))
            d->cam_flags |= GB_CAM_DEV_DISARMED;
        else
            return 0;
        return 1;
    case GB_DEV_CTL_ALARM: {
        if (!gb_ieq(v, n, "ResetAlarm", 10))
            return 0;
        uint8_t *st = d->chan_off ? chan_bytes(f, d) : NULL;
        for (uint32_t c = 0; st && c < d->nchan; c++)
            if (target < 0 || (long)c == target)
                st[c] &= (uint8_t)~GB_CAM_CH_ALARM;
        if (target < 0 && target > GB_CAM_TARGET_ALARM)
            d->alarm_bits = 0;
        else if (target <= GB_CAM_TARGET_ALARM)
            d->alarm_bits &= (uint16_t)~(1u << (GB_CAM_TARGET_ALARM - target));
        return 1;
    }
    case GB_DEV_CTL_TELEBOOT:
        return gb_ieq(v, n, "Boot", 4);
    default:
        return 1;
    }
}

static unsigned on_control(gb_fleet *f, uint32_t i, const char *buf, const gb_msg *m,
                           uint64_t key, const gb_manscdp_doc *doc, const char *body,
                           long target, int64_t now)
{
    gb_span text = {0, 0};
    gb_dev_control kind = GB_DEV_CTL_CONFIG;
    if (doc->cmd == GB_MANSCDP_CMD_DEVICE_CONTROL)
        kind = control_kind(doc, body, &text);
    else if (doc->cmd != GB_MANSCDP_CMD_DEVICE_CONFIG)
        kind = GB_DEV_CTL__COUNT;
    const char *v = body + text.off;
    unsigned status = 0;
    const char *why = NULL;
    if (kind == GB_DEV_CTL__COUNT) {
        status = 501;
        why = "this camera does not take that control";
    } else if (kind == GB_DEV_CTL_PTZ && !ptz_valid(v, text.len)) {
        status = 400;
        why = "PTZCmd is not an Annex A.3 command (8 bytes of hex, A5, checksums)";
    }
    /* §9.3.2: these are answered with a Response carrying Result */
    int answered = kind == GB_DEV_CTL_RECORD || kind == GB_DEV_CTL_GUARD ||
                   kind == GB_DEV_CTL_ALARM || kind == GB_DEV_CTL_HOME_POSITION ||
                   kind == GB_DEV_CTL_CONFIG;
    long e = -1;
    if (!status && answered && (e = new_job(f, i, doc, GBF_JOB_RESULT, target, now)) < 0) {
        status = 503;
        why = "too many answers in progress";
        f->stats.answers_busy++;
    }
    const char *ev_text = kind == GB_DEV_CTL__COUNT ? body + doc->cmd_type.off : v;
    size_t ev_len = kind == GB_DEV_CTL__COUNT ? doc->cmd_type.len : text.len;
    if (status) {
        reply(f, i, buf, m, key, status, why, NULL, 0, NULL, 0, NULL, 0);
        f->stats.requests_refused++;
        camera_event(f, i, GB_DEV_EV_CONTROL, status,
                     kind == GB_DEV_CTL__COUNT ? GB_DEV_CTL_OTHER : kind, target, doc->sn,
                     ev_text, ev_len, now);
        return status;
    }
    int ok = control_apply(f, i, kind, v, text.len, target);
    reply(f, i, buf, m, key, 200, NULL, NULL, 0, NULL, 0, NULL, 0);
    f->stats.controls[kind]++;
    camera_event(f, i, GB_DEV_EV_CONTROL, 200, kind, target, doc->sn, ev_text, ev_len, now);
    if (e >= 0) {
        f->cam[e].u.job.arg = (uint8_t)ok;
        job_start(f, (uint32_t)e, now);
    }
    return 200;
}

static unsigned on_message(gb_fleet *f, uint32_t i, const char *buf, const gb_msg *m,
                           uint64_t key, int64_t now)
{
    gb_manscdp_doc doc;
    const char *body;
    long target;
    unsigned st = read_request(f, i, buf, m, key, &doc, &body, &target, now);
    if (st)
        return st;
    switch (doc.root) {
    case GB_MANSCDP_QUERY:
        return on_query(f, i, buf, m, key, &doc, body, target, now);
    case GB_MANSCDP_CONTROL:
        return on_control(f, i, buf, m, key, &doc, body, target, now);
    default:
        /* a Notify or Response for the device (the platform's answer to our
         * alarm, a broadcast notice): taken, nothing to answer */
        reply(f, i, buf, m, key, 200, NULL, NULL, 0, NULL, 0, NULL, 0);
        return 200;
    }
}

/* tag parameter of a From/To value, {0,0} when none. */
static gb_span header_tag(const char *buf, gb_span v, gb_span *uri)
{
    gb_name_addr na;
    gb_error err;
    gb_param p;
    if (gb_parse_name_addr(buf, v, 0, &na, &err) != GB_OK)
        return (gb_span){0, 0};
    if (uri)
        *uri = na.uri;
    if (gb_params_find(buf, na.params, ';', "tag", 3, &p) && p.has_value)
        return p.value;
    return (gb_span){0, 0};
}

/* The 200 of a SUBSCRIBE (RFC 6665 §4.2.1.1: Expires, Contact) with the
 * MANSCDP Response carrying Result OK (as GB devices and WVP answer). */
static void subscribe_ok(gb_fleet *f, uint32_t i, const char *buf, const gb_msg *m, uint64_t key,
                         uint32_t tag, uint32_t expires, const gb_manscdp_doc *doc,
                         const char *body)
{
    gb_dev *d = &f->devs[i];
    char tagbuf[20], exp[20], contact[512];
    size_t tl = gbf_fmt_u64(tagbuf, tag);
    gb_writer cw;
    gb_w_init(&cw, contact, sizeof contact);
    gbf_w_contact(f, &cw, d); /* "Contact: <...>\r\n" */
    gb_manscdp_writer w;
    gb_manscdp_w_init(&w, f->scratch, f->scratch_cap);
    gb_manscdp_head h = {(gb_manscdp_charset)doc->charset, doc->sn,
                         {body + doc->device_id.off, doc->device_id.len}};
    size_t blen = gb_cam_write_result(&w, &h, (gb_manscdp_cmd)doc->cmd, 1);
    gb_field fields[3] = {
        {"Expires", 7, exp, gbf_fmt_u64(exp, expires)},
        {"Contact", 7, contact + 9, cw.overflow || cw.len < 11 ? 0 : cw.len - 11},
        {"Content-Type", 12, "Application/MANSCDP+xml", 23},
    };
    reply(f, i, buf, m, key, 200, NULL, tagbuf, tl, fields, blen ? 3 : 2, blen ? f->scratch : NULL,
          blen);
}

/* Whether a SUBSCRIBE's Event header names a package a camera serves
 * (RFC 6665 §8.2.1): Catalog, Alarm, MobilePosition, or presence (GB/T
 * 28181's name for alarm and position subscriptions, §9.11.1), any case,
 * parameters (";id=") aside. */
static int known_event(const char *buf, gb_span v)
{
    static const char *const packages[] = {"Catalog", "Alarm", "MobilePosition", "presence"};
    size_t n = 0;
    while (n < v.len && buf[v.off + n] != ';' && buf[v.off + n] != ' ' &&
           buf[v.off + n] != '\t')
        n++;
    for (size_t k = 0; k < sizeof packages / sizeof packages[0]; k++)
        if (gb_ieq(buf + v.off, n, packages[k], strlen(packages[k])))
            return 1;
    return 0;
}

static unsigned on_subscribe(gb_fleet *f, uint32_t i, const char *buf, const gb_msg *m,
                             uint64_t key, int64_t now)
{
    static const gb_field ALLOW_EVENTS = {"Allow-Events", 12,
                                          "Catalog, Alarm, MobilePosition, presence", 40};
    /* the Event header decides (RFC 6665 §3.1.2, §8.2.1): none, or one
     * naming another package, is 489 whatever the body says */
    gb_span ev_v = gbf_header_value(m, GB_HDR_EVENT);
    if (!ev_v.len || !known_event(buf, ev_v))
        return refuse(f, i, buf, m, key, 489, "Bad Event: subscribe to Catalog, Alarm or "
                      "MobilePosition", &ALLOW_EVENTS, 1, now);
    gb_manscdp_doc doc;
    const char *body;
    long target;
    unsigned st = read_request(f, i, buf, m, key, &doc, &body, &target, now);
    if (st)
        return st;
    if (doc.root != GB_MANSCDP_QUERY ||
        (doc.cmd != GB_MANSCDP_CMD_CATALOG && doc.cmd != GB_MANSCDP_CMD_ALARM &&
         doc.cmd != GB_MANSCDP_CMD_MOBILE_POSITION))
        return refuse(f, i, buf, m, key, 489, "Bad Event: subscribe to Catalog, Alarm or "
                      "MobilePosition", &ALLOW_EVENTS, 1, now);
    uint32_t expires = m->expires < 0 ? f->cfg.subscribe_default_expires
                       : m->expires > f->cfg.subscribe_max_expires ? f->cfg.subscribe_max_expires
                                                                   : (uint32_t)m->expires;
    uint32_t interval_ms = 5000; /* WVP's default when Interval is absent */
    gb_span iv = child_text(&doc, body, "Interval");
    uint64_t ivs;
    if (iv.len && gb_parse_uint(body + iv.off, iv.len, 3600, &ivs) == 0 && ivs > 0)
        interval_ms = (uint32_t)ivs * 1000;
    gb_span cid = gbf_header_value(m, GB_HDR_CALL_ID);
    gb_span to_tag_v = header_tag(buf, gbf_header_value(m, GB_HDR_TO), NULL);
    long e = sub_find(f, buf + cid.off, cid.len);
    if (e >= 0 && f->cam[e].dev != i)
        e = -1;
    if (to_tag_v.len && e < 0)
        return refuse(f, i, buf, m, key, 481, "no such subscription", NULL, 0, now);
    if (expires == 0) {
        /* unsubscribe (or a fetch when there is nothing to end) */
        uint32_t tag = e >= 0 ? f->cam[e].u.sub.local_tag : (uint32_t)gbf_rnd(f);
        subscribe_ok(f, i, buf, m, key, tag, 0, &doc, body);
        if (e >= 0)
            sub_end(f, (uint32_t)e, GB_DEV_R_UNSUBSCRIBED, 200, now, 1);
        return 200;
    }
    const char *ct = body + doc.cmd_type.off;
    if (e >= 0) { /* a refresh, in the dialog (or out of it on the same Call-ID) */
        gbf_cam_sub *s = &f->cam[e].u.sub;
        s->expires_at = now + (int64_t)expires * 1000;
        if (doc.cmd == GB_MANSCDP_CMD_MOBILE_POSITION)
            s->interval_ms = interval_ms;
        subscribe_ok(f, i, buf, m, key, s->local_tag, expires, &doc, body);
        cam_schedule(f, (uint32_t)e);
        f->stats.subscription_refreshes++;
        gb_dev_event *ev = camera_event(f, i, GB_DEV_EV_SUBSCRIBED, 200, doc.cmd, target, doc.sn,
                                        ct, doc.cmd_type.len, now);
        if (ev) {
            ev->arg = expires;
            ev->flags |= GB_DEV_EVF_REFRESH;
            ev->latency_ms = doc.cmd == GB_MANSCDP_CMD_MOBILE_POSITION ? interval_ms : 0;
        }
        return 200;
    }
    /* a new subscription: the dialog's strings */
    gb_span ruri = {0, 0}, contact_uri = {0, 0};
    gb_span rtag = header_tag(buf, gbf_header_value(m, GB_HDR_FROM), &ruri);
    gb_span cv = gbf_header_value(m, GB_HDR_CONTACT);
    gb_list_iter it;
    gb_span item;
    gb_error err;
    gb_name_addr na;
    gb_list_begin(&it, buf, cv);
    if (cv.len && gb_list_next(&it, &item, &err) == 1 &&
        gb_parse_name_addr(buf, item, 0, &na, &err) == GB_OK)
        contact_uri = na.uri;
    if (!contact_uri.len || !ruri.len)
        return refuse(f, i, buf, m, key, 400, "SUBSCRIBE without a Contact", NULL, 0, now);
    gb_span parts[5] = {cid, rtag, ruri, contact_uri, ev_v};
    size_t total = 0;
    for (int k = 0; k < 5; k++)
        total += parts[k].len;
    if (total > 2048 || parts[0].len > UINT16_MAX)
        return refuse(f, i, buf, m, key, 400, "the subscription's dialog is too long", NULL, 0,
                      now);
    /* one subscription per device and event: a new one replaces the old */
    for (uint32_t ref = f->devs[i].subs; ref; ref = f->cam[ref - 1].u.sub.next_sub)
        if (f->cam[ref - 1].cmd == doc.cmd) {
            sub_end(f, ref - 1, GB_DEV_R_REPLACED, 0, now, 0);
            break;
        }
    char *dialog = malloc(total ? total : 1);
    if (!dialog || gb_index_reserve(&f->cam_subs, (size_t)f->cam_subs.count + 1, sub_ref_hash, f) ||
        (e = cam_alloc(f, GBF_CAM_SUB, i)) < 0) {
        free(dialog);
        f->stats.subscriptions_busy++;
        static const gb_field RETRY = {"Retry-After", 11, "1", 1};
        return refuse(f, i, buf, m, key, 503, "too many subscriptions", &RETRY, 1, now);
    }
    gbf_cam_entry *c = &f->cam[e];
    c->cmd = (uint8_t)doc.cmd;
    c->charset = doc.charset;
    c->sn = doc.sn;
    gbf_cam_sub *s = &c->u.sub;
    size_t at = 0;
    for (int k = 0; k < 5; k++) {
        memcpy(dialog + at, buf + parts[k].off, parts[k].len);
        s->len[k] = (uint16_t)parts[k].len;
        at += parts[k].len;
    }
    s->dialog = dialog;
    f->cam_bytes += total;
    s->callid_hash = gb_siphash(&f->hkey, dialog, s->len[GBF_D_CALLID]);
    s->local_tag = (uint32_t)gbf_rnd(f);
    s->target = (int32_t)target;
    s->expires_at = now + (int64_t)expires * 1000;
    s->interval_ms = interval_ms;
    s->next_notify = doc.cmd == GB_MANSCDP_CMD_MOBILE_POSITION ? now + interval_ms : NEVER;
    s->next_sub = f->devs[i].subs;
    f->devs[i].subs = (uint32_t)e + 1;
    gb_index_add(&f->cam_subs, s->callid_hash, (uint32_t)e + 1);
    subscribe_ok(f, i, buf, m, key, s->local_tag, expires, &doc, body);
    cam_schedule(f, (uint32_t)e);
    f->stats.subscriptions++;
    f->stats.subscriptions_active = f->cam_count[GBF_CAM_SUB];
    gb_dev_event *ev = camera_event(f, i, GB_DEV_EV_SUBSCRIBED, 200, doc.cmd, target, doc.sn,
                                    buf + parts[4].off, parts[4].len, now);
    if (ev) {
        ev->arg = expires;
        ev->latency_ms = doc.cmd == GB_MANSCDP_CMD_MOBILE_POSITION ? interval_ms : 0;
    }
    return 200;
}

/* The device a request is for: its Request-URI user, else its To user. */
static long request_device(const gb_fleet *f, const char *buf, const gb_msg *m)
{
    gb_uri u;
    gb_error err;
    if (gb_parse_uri(buf, m->uri, &u, &err) == GB_OK && u.has_user) {
        long i = gbf_find_device(f, buf + u.user.off, u.user.len);
        if (i >= 0)
            return i;
    }
    gb_span to_uri = {0, 0};
    header_tag(buf, gbf_header_value(m, GB_HDR_TO), &to_uri);
    if (to_uri.len && gb_parse_uri(buf, to_uri, &u, &err) == GB_OK && u.has_user)
        return gbf_find_device(f, buf + u.user.off, u.user.len);
    return -1;
}

/* Answer a retransmitted request as the first time, nothing more. */
static void reply_again(gb_fleet *f, uint32_t i, const char *buf, const gb_msg *m, uint64_t key,
                        unsigned status)
{
    if (m->method_id == GB_METHOD_SUBSCRIBE && status == 200) {
        gb_span cid = gbf_header_value(m, GB_HDR_CALL_ID);
        long e = sub_find(f, buf + cid.off, cid.len);
        if (e >= 0) {
            gb_manscdp_doc doc;
            gb_manscdp_limits lim;
            gb_manscdp_limits_default(&lim);
            lim.lenient = f->cfg.manscdp_lenient;
            gb_manscdp_init(&doc, f->nodes, GBF_REQUEST_NODES);
            const char *body = buf + m->body.off;
            if (gb_manscdp_parse(body, m->body.len, &lim, &doc, NULL) == GB_MANSCDP_OK) {
                gbf_cam_sub *s = &f->cam[e].u.sub;
                subscribe_ok(f, i, buf, m, key, s->local_tag,
                             m->expires < 0 ? f->cfg.subscribe_default_expires
                                            : (uint32_t)m->expires,
                             &doc, body);
                return;
            }
        }
    }
    reply(f, i, buf, m, key, status, NULL, NULL, 0, status == 405 ? &ALLOW : NULL,
          status == 405, NULL, 0);
}

long gbf_cam_request(gb_fleet *f, const char *buf, const gb_msg *m, int64_t now)
{
    f->stats.requests_received++;
    if (m->method_id == GB_METHOD_ACK) {
        f->stats.requests_ignored++;
        return -1;
    }
    long found = request_device(f, buf, m);
    long i = found >= 0 ? found : f->rx_hint;
    if (i < 0 || (uint32_t)i >= f->ndevs || !started(&f->devs[i])) {
        f->stats.requests_ignored++; /* nobody here, or powered off: silence */
        return -1;
    }
    gb_dev *d = &f->devs[i];
    uint64_t key = request_key(f, buf, m);
    int slot = rx_find(d, key);
    if (slot >= 0) {
        f->stats.requests_retransmitted++;
        reply_again(f, (uint32_t)i, buf, m, key, d->rx_status[slot]);
        return found;
    }
    unsigned status;
    if (m->method_id == GB_METHOD_OPTIONS) {
        gb_field fields[2] = {ALLOW, ACCEPT};
        reply(f, (uint32_t)i, buf, m, key, 200, NULL, NULL, 0, fields, 2, NULL, 0);
        status = 200;
    } else if (found < 0) {
        status = refuse(f, (uint32_t)i, buf, m, key, 404, "no such device here", NULL, 0, now);
    } else if ((m->method_id == GB_METHOD_MESSAGE || m->method_id == GB_METHOD_SUBSCRIBE) &&
               d->state == GB_DEV_UNREGISTERING && !d->draining) {
        /* its unregistration is on the way: an answer would come from a
           device the platform no longer has */
        status = refuse(f, (uint32_t)i, buf, m, key, 503, "unregistering", NULL, 0, now);
    } else if (m->method_id == GB_METHOD_MESSAGE) {
        status = on_message(f, (uint32_t)i, buf, m, key, now);
    } else if (m->method_id == GB_METHOD_SUBSCRIBE) {
        status = on_subscribe(f, (uint32_t)i, buf, m, key, now);
    } else if (m->method_id == GB_METHOD_BYE || m->method_id == GB_METHOD_CANCEL) {
        status = refuse(f, (uint32_t)i, buf, m, key, 481, NULL, NULL, 0, now);
    } else if (m->method_id == GB_METHOD_OTHER) {
        status = refuse(f, (uint32_t)i, buf, m, key, 501, NULL, NULL, 0, now);
    } else {
        status = refuse(f, (uint32_t)i, buf, m, key, 405, NULL, &ALLOW, 1, now);
    }
    rx_remember(d, key, status);
    return found;
}
