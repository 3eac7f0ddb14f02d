/*
 * fuzz_device.c - libFuzzer target for the device fleet (device.h).
 *
 * The first bytes choose a configuration (transport, leniencies, qop and
 * algorithms allowed, preemptive auth, keepalives).  Then a script: the
 * fleet's real outgoing REGISTERs and MESSAGEs are answered with responses
 * built on their Via branch, Call-ID, CSeq, From and To (as a platform
 * would), whose status, extra header lines (challenges, Contact, Expires,
 * Min-Expires, Date...) and then byte flips come from the fuzzer, so the
 * input reaches live transactions instead of being dropped as a stray; raw
 * datagrams; time going on with the timers run; lifecycle calls.
 *
 * Invariants: a response is matched to a device in range or counted; the
 * states add up and never move outside gb_dev_moves; the queues point
 * inside their buffers; events are of known types; and everything is freed.
 */
#include <string.h>

#include "device.h"
#include "fuzz.h"
#include "fuzz_fleet.h"
#include "sip_writer.h"

#define DEVICES 3

typedef struct {
    gb_fleet *f;
    int64_t now;
    char last[DEVICES][4096];   /* each device's latest request */
    size_t last_len[DEVICES];
} rig;

/* Check the queues, keep each device's latest request, clear them. */
static void drain(rig *g)
{
    size_t n = gb_fleet_out_count(g->f);
    const gb_dev_out *o = gb_fleet_out_items(g->f);
    const char *data = gb_fleet_out_data(g->f);
    for (size_t k = 0; k < n; k++) {
        EXPECT(o[k].dev < gb_fleet_count(g->f) && o[k].len > 0);
        EXPECT(o[k].dest < gb_fleet_dest_count(g->f));
        if (o[k].dev < DEVICES && o[k].len < sizeof g->last[0]) {
            memcpy(g->last[o[k].dev], data + o[k].off, o[k].len);
            g->last_len[o[k].dev] = o[k].len;
        }
    }
    gb_fleet_out_clear(g->f);
    fleet_invariants(g->f);
}

static void feed(rig *g, const char *p, size_t n)
{
    fleet_feed(g->f, p, n, g->now);
    drain(g);
}

/* What a platform puts in its answers, picked by the fuzzer. */
static const char *const EXTRA[] = {
    "WWW-Authenticate: Digest realm=\"3402000000\",nonce=\"n1\",algorithm=MD5",
    "WWW-Authenticate: Digest realm=\"3402000000\",nonce=\"n2\",qop=\"auth\",algorithm=MD5",
    ("WWW-Authenticate: Digest realm=\"r\",nonce=\"n3\",qop=\"auth-int\",algorithm=SHA-256,"
     "opaque=\"o\",stale=true"),
    "Proxy-Authenticate: Digest realm=\"3402000000\",nonce=\"p1\"",
    "Contact: <sip:34020000001320000000@127.0.0.1:5060>;expires=30",
    "Contact: <sip:34020000002000000002@10.0.0.9:5062>",
    "Expires: 60",
    "Min-Expires: 7200",
    "Date: 2013-06-26T16:08:37.164",
    "Date: Wed, 26 Jun 2013 08:08:37 GMT",
};

/* A response to device dev's latest request, then mutated. */
static void op_respond(rig *g, fuzz_input *in)
{
    unsigned dev = fuzz_byte(in) % DEVICES;
    if (!g->last_len[dev])
        return;
    static const unsigned STATUS[] = {100, 180, 200, 202, 302, 401, 403, 407, 423, 480, 500, 603};
    unsigned status = STATUS[fuzz_byte(in) % 12], pick = fuzz_u16(in);
    gb_header hdrs[64];
    gb_msg req;
    gb_limits lim;
    gb_limits_default(&lim);
    gb_msg_init(&req, hdrs, 64);
    EXPECT(gb_parse(g->last[dev], g->last_len[dev], 0, &lim, &req, NULL) == GB_OK);
    gb_field fields[4];
    size_t nf = 0;
    for (unsigned k = 0; k < 4 && (pick >> (4 * k)) & 8; k++) {
        const char *x = EXTRA[((pick >> (4 * k)) & 7) + (k & 1) * 2];
        const char *colon = strchr(x, ':');
        fields[nf++] = (gb_field){x, (size_t)(colon - x), colon + 2, strlen(colon + 2)};
    }
    size_t xlen;
    const char *more = fuzz_bytes(in, 256, &xlen);
    if (xlen && nf < 4) /* a header line of the fuzzer's own */
        fields[nf++] = (gb_field){"X-Fuzz", 6, more, xlen};
    char out[8192];
    gb_writer w;
    gb_w_init(&w, out, sizeof out);
    gb_reply_opts o = {.to_tag = "fz", .to_tag_len = 2, .fields = fields, .nfields = nf};
    if (gb_build_reply(&w, g->last[dev], &req, status, &o) < 0)
        return;
    /* byte flips at positions the fuzzer picks */
    for (unsigned flips = fuzz_byte(in) % 4; flips && w.len; flips--) {
        unsigned at = fuzz_u16(in);
        out[at % w.len] ^= (char)(fuzz_byte(in) | 1);
    }
    feed(g, out, w.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    unsigned c0 = fuzz_byte(&in), c1 = fuzz_byte(&in);
    gb_dev_config cfg;
    gb_dev_config_default(&cfg);
    cfg.server_id = (gb_bytes){"34020000002000000001", 20};
    cfg.server_host = (gb_bytes){"127.0.0.1", 9};
    cfg.password = (gb_bytes){"12345678", 8};
    cfg.transport = (c0 & 1) ? GB_DEV_TCP : GB_DEV_UDP;
    cfg.lenient = (c0 >> 1) & GB_LENIENT_ALL;
    cfg.preemptive_auth = (c0 & 128) != 0;
    cfg.allowed_algs = c1 & 63;
    cfg.keepalive_interval_ms = (c1 & 64) ? 0 : 1000;
    cfg.capability_header = (c1 & 128) != 0;
    cfg.expires = 3600;
    cfg.t1_ms = 100;
    cfg.seed = c0 * 257 + c1;
    for (int i = 0; i < 16; i++)
        cfg.hash_key[i] = (unsigned char)(c1 ^ i);
    const char *why;
    rig g;
    memset(&g, 0, sizeof g);
    g.f = gb_fleet_new(&cfg, 1, &why);
    EXPECT(g.f != NULL);
    for (int i = 0; i < DEVICES; i++) {
        char id[21];
        snprintf(id, sizeof id, "3402000000132000000%d", i);
        EXPECT(gb_fleet_add(g.f, id, 20) == i);
        gb_fleet_start(g.f, (uint32_t)i, 0);
    }
    drain(&g);
    for (int ops = 0; in.n && ops < 96; ops++) {
        unsigned op = fuzz_byte(&in), dev = (op >> 4) % DEVICES;
        switch (op % 8) {
        case 0:
        case 1:
        case 2:
            op_respond(&g, &in);
            break;
        case 3: {
            size_t len;
            const char *raw = fuzz_bytes(&in, 4096, &len);
            feed(&g, raw, len);
            break;
        }
        case 4:
            g.now += (int64_t)fuzz_u16(&in) * 16;
            gb_fleet_handle_timer(g.f, g.now);
            drain(&g);
            EXPECT(gb_fleet_next_deadline(g.f) > g.now);
            break;
        case 5:
            (op & 8) ? gb_fleet_stop(g.f, dev, g.now) : gb_fleet_start(g.f, dev, g.now);
            drain(&g);
            break;
        case 6:
            (op & 8) ? (void)gb_fleet_send_keepalive(g.f, dev, g.now)
                     : gb_fleet_transport_error(g.f, dev, g.now);
            drain(&g);
            break;
        default:
            (op & 8) ? gb_fleet_abandon(g.f, dev, g.now)
                     : gb_fleet_drop_responses(g.f, dev, fuzz_byte(&in) % 3);
            drain(&g);
            break;
        }
    }
    gb_fleet_free(g.f);
    return 0;
}
