/*
 * fuzz_camera.c - libFuzzer target for the fleet as cameras
 * (camera_fleet.c, camera.c): arbitrary platform requests.
 *
 * The first bytes choose a configuration (transport, part size and window,
 * pool bounds, leniencies).  Three registered devices (one an NVR of 64
 * channels) then get a script: requests a platform would send (MESSAGE,
 * SUBSCRIBE, OPTIONS, INVITE, BYE, unknown methods) with bodies built from
 * the Annex A commands around fuzzer-chosen CmdTypes, DeviceIDs, SNs,
 * charsets, times and values, then byte flips, optionally in a
 * subscription's dialog; responses (2xx, 481, 5xx, 1xx) to the answers
 * and NOTIFYs the fleet sent; raw bytes; time with the timers run;
 * channel changes, alarms, stops and restarts.
 *
 * Invariants: every message out is for a device in range and holds a
 * whole SIP message; events are of known types; the pool's gauges agree
 * with its bounds; the next deadline is after now once the timers ran;
 * the states add up; everything is freed.
 */
#include <string.h>

#include "device.h"
#include "fuzz.h"
#include "fuzz_fleet.h"
#include "sip_writer.h"

#define DEVICES 3

typedef struct {
    gb_fleet *f;
    gb_dev_config cfg;
    int64_t now;
    char last[8192];        /* the fleet's latest request (answer, NOTIFY, alarm) */
    size_t last_len;
    char tag[64];           /* our To tag of the latest SUBSCRIBE 200 */
    size_t tag_len;
    char call[64];          /* its Call-ID */
    size_t call_len;
    unsigned seq;
} rig;

static const char *const IDS[DEVICES] = {
    "34020000001320000001", "34020000001320000002", "34020000001180000003",
};

/* First occurrence of the C string needle in [p, end), or NULL. */
static const char *find(const char *p, const char *end, const char *needle)
{
    size_t n = strlen(needle);
    for (; p && (size_t)(end - p) >= n; p++)
        if (memcmp(p, needle, n) == 0)
            return p;
    return NULL;
}

static void drain(rig *g)
{
    size_t n = gb_fleet_out_count(g->f);
    const gb_dev_out *o = gb_fleet_out_items(g->f);
    const char *data = gb_fleet_out_data(g->f);
    gb_header hdrs[64];
    gb_limits lim;
    gb_limits_default(&lim);
    for (size_t k = 0; k < n; k++) {
        EXPECT(o[k].dev < gb_fleet_count(g->f) && o[k].len > 0);
        gb_msg m;
        gb_msg_init(&m, hdrs, 64);
        EXPECT(gb_parse(data + o[k].off, o[k].len, 0, &lim, &m, NULL) == GB_OK);
        if (m.kind == GB_REQUEST && o[k].len < sizeof g->last) {
            memcpy(g->last, data + o[k].off, o[k].len);
            g->last_len = o[k].len;
        } else if (m.kind == GB_RESPONSE && m.method_id == GB_METHOD_SUBSCRIBE &&
                   m.status == 200) {
            /* remember the dialog to refresh or end it later; the queued
             * bytes are not NUL-terminated, so every search is bounded */
            const char *msg = data + o[k].off, *end = msg + o[k].len;
            const char *to = find(msg, end, "\r\nTo: ");
            const char *tg = to ? find(to, end, ";tag=") : NULL;
            const char *cid = find(msg, end, "\r\nCall-ID: ");
            const char *tg_end = tg ? memchr(tg, '\r', (size_t)(end - tg)) : NULL;
            const char *cid_end = cid ? memchr(cid, '\r', (size_t)(end - cid)) : NULL;
            if (tg_end && cid_end) {
                tg += 5;
                cid += 11;
                g->tag_len = (size_t)(tg_end - tg) % sizeof g->tag;
                memcpy(g->tag, tg, g->tag_len);
                g->call_len = (size_t)(cid_end - cid) % sizeof g->call;
                memcpy(g->call, cid, g->call_len);
            }
        }
    }
    gb_fleet_out_clear(g->f);
    fleet_invariants(g->f);
    const gb_fleet_stats *st = gb_fleet_get_stats(g->f);
    EXPECT(st->answers_in_flight <= g->cfg.max_answers);
    EXPECT(st->subscriptions_active <= g->cfg.max_subscriptions);
    EXPECT(st->answers_acknowledged + st->answers_failed <= st->answers_sent);
}

static void feed(rig *g, const char *p, size_t n)
{
    fleet_feed(g->f, p, n, g->now);
    drain(g);
}

static const char *const CMDS[] = {
    "Catalog", "DeviceInfo", "DeviceStatus", "ConfigDownload", "RecordInfo", "PresetQuery",
    "DeviceControl", "DeviceConfig", "Alarm", "MobilePosition", "Keepalive", "Broadcast",
    "HomePositionQuery", "Vendor",
};
static const char *const ROOTS[] = {"Query", "Control", "Notify", "Response"};
static const char *const EXTRA[] = {
    "", "<ConfigType>BasicParam/VideoParamOpt</ConfigType>",
    ("<StartTime>2024-03-01T00:00:00</StartTime><EndTime>2024-03-02T00:00:00</EndTime>"
     "<Type>all</Type>"),
    "<StartTime>2024-03-01T10:00:00</StartTime><EndTime>2024-03-01T09:00:00</EndTime>",
    "<PTZCmd>A50F01080080003D</PTZCmd>", "<PTZCmd>A50F0108008000</PTZCmd>",
    "<RecordCmd>Record</RecordCmd>", "<RecordCmd>StopRecord</RecordCmd>",
    "<GuardCmd>ResetGuard</GuardCmd>", "<AlarmCmd>ResetAlarm</AlarmCmd>",
    "<TeleBoot>Boot</TeleBoot>", "<Interval>1</Interval>", "<DragZoomIn><Length>1</Length></DragZoomIn>",
    "<Interval>0</Interval><Interval>3</Interval>",
};
static const char *const TARGETS[] = {
    "34020000001320000001", "34020000001310000001", "34020000001340000001",
    "34020000001310000064", "34020000001180000003", "99999999999999999999", "x",
};
static const char *const METHODS[] = {
    "MESSAGE", "MESSAGE", "MESSAGE", "SUBSCRIBE", "SUBSCRIBE", "OPTIONS", "INVITE", "BYE",
    "FOO", "ACK", "NOTIFY", "CANCEL",
};

/* A request the platform could send, then mutated. */
static void op_request(rig *g, fuzz_input *in)
{
    unsigned a = fuzz_byte(in), b = fuzz_byte(in), c = fuzz_byte(in);
    const char *method = METHODS[a % 12];
    const char *to = (a & 128) ? TARGETS[b % 7] : IDS[b % DEVICES];
    char body[1024];
    int bl = snprintf(body, sizeof body,
                      "<?xml version=\"1.0\" encoding=\"%s\"?>\r\n<%s>\r\n<CmdType>%s</CmdType>\r\n"
                      "<SN>%u</SN>\r\n<DeviceID>%s</DeviceID>\r\n%s\r\n</%s>\r\n",
                      (c & 1) ? "UTF-8" : "GB2312", ROOTS[(c >> 1) % 4], CMDS[b % 14],
                      fuzz_u16(in), TARGETS[(c >> 3) % 7], EXTRA[fuzz_byte(in) % 14],
                      ROOTS[(c >> 1) % 4]);
    char extra[256];
    int in_dialog = (c & 32) && g->tag_len;
    snprintf(extra, sizeof extra, "%s%s%s",
             (c & 64) ? "Expires: 0\r\n" : (c & 128) ? "Expires: 5\r\n" : "",
             strcmp(method, "SUBSCRIBE") == 0 && (a & 64) ? "Event: Catalog;id=1\r\n" : "",
             (b & 64) ? "Contact: <sip:34020000002000000001@127.0.0.1:5060>\r\n" : "");
    char req[4096];
    g->seq++;
    int n = snprintf(req, sizeof req,
                     "%s sip:%s@127.0.0.1:5060 SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKfz%u\r\n"
                     "From: <sip:34020000002000000001@3402000000>;tag=p\r\n"
                     "To: <sip:%s@3402000000>%s%.*s\r\n"
                     "Call-ID: %.*s\r\nCSeq: %u %s\r\nMax-Forwards: 70\r\n%s"
                     "Content-Type: Application/MANSCDP+xml\r\nContent-Length: %d\r\n\r\n%s",
                     method, to, g->seq % ((a & 3) ? 100000u : 2u), to,
                     in_dialog ? ";tag=" : "", in_dialog ? (int)g->tag_len : 0, g->tag,
                     in_dialog ? (int)g->call_len : 6, in_dialog ? g->call : "fzcall",
                     g->seq, method, extra, bl, body);
    if (n <= 0 || (size_t)n >= sizeof req)
        return;
    for (unsigned flips = fuzz_byte(in) % 4; flips; flips--) {
        unsigned at = fuzz_u16(in);
        req[at % (unsigned)n] ^= (char)(fuzz_byte(in) | 1);
    }
    feed(g, req, (size_t)n);
}

/* The platform answers the fleet's latest request of its own. */
static void op_answer(rig *g, fuzz_input *in)
{
    if (!g->last_len)
        return;
    static const unsigned STATUS[] = {200, 200, 200, 100, 481, 486, 500, 603};
    gb_header hdrs[64];
    gb_msg req;
    gb_limits lim;
    gb_limits_default(&lim);
    gb_msg_init(&req, hdrs, 64);
    if (gb_parse(g->last, g->last_len, 0, &lim, &req, NULL) != GB_OK)
        return;
    char out[16384];
    gb_writer w;
    gb_w_init(&w, out, sizeof out);
    gb_reply_opts o = {.to_tag = "pf", .to_tag_len = 2};
    if (gb_build_reply(&w, g->last, &req, STATUS[fuzz_byte(in) % 8], &o) < 0)
        return;
    if (fuzz_byte(in) & 1)
        out[fuzz_u16(in) % w.len] ^= 1;
    feed(g, out, w.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    unsigned c0 = fuzz_byte(&in), c1 = fuzz_byte(&in);
    rig g;
    memset(&g, 0, sizeof g);
    gb_dev_config_default(&g.cfg);
    g.cfg.server_id = (gb_bytes){"34020000002000000001", 20};
    g.cfg.server_host = (gb_bytes){"127.0.0.1", 9};
    g.cfg.password = (gb_bytes){"12345678", 8};
    g.cfg.transport = (c0 & 1) ? GB_DEV_TCP : GB_DEV_UDP;
    g.cfg.keepalive_interval_ms = 0;
    g.cfg.t1_ms = 100;
    g.cfg.answer_max_message = 300 + (c0 >> 1) * 40;
    g.cfg.answer_window = c1 & 3;
    g.cfg.answer_gap_ms = (c1 >> 2 & 3) * 50;
    g.cfg.answer_max_items = (c1 >> 4) & 3;
    g.cfg.max_answers = 1 + (c1 >> 6) * 8;
    g.cfg.max_jobs = 1 + (c1 >> 6) * 2;
    g.cfg.max_subscriptions = 2;
    g.cfg.manscdp_lenient = (c0 & 2) ? GB_MANSCDP_LENIENT_ALL : 0;
    g.cfg.record_max = 40;
    g.cfg.seed = c0 * 257 + c1;
    const char *why;
    g.f = gb_fleet_new(&g.cfg, 1, &why);
    EXPECT(g.f != NULL);
    gb_fleet_set_wall_clock(g.f, 0, 1709280000000LL);
    gb_cam_profile nvr;
    gb_cam_profile_from_preset(&nvr, gb_cam_preset_find("dahua-nvr", 9));
    int prof = gb_fleet_add_profile(g.f, &nvr, &why);
    EXPECT(prof == 1);
    for (int i = 0; i < DEVICES; i++) {
        EXPECT(gb_fleet_add(g.f, IDS[i], 20) == i);
        gb_fleet_start(g.f, (uint32_t)i, 0);
    }
    EXPECT(gb_fleet_set_camera(g.f, 2, (unsigned)prof, 64, 1) == 0);
    gb_fleet_set_receiver(g.f, 0);
    /* register everyone: a 200 to each REGISTER */
    gb_header hdrs[64];
    gb_limits lim;
    gb_limits_default(&lim);
    size_t n = gb_fleet_out_count(g.f);
    for (size_t k = 0; k < n; k++) {
        const gb_dev_out *o = &gb_fleet_out_items(g.f)[k];
        gb_msg req;
        gb_msg_init(&req, hdrs, 64);
        char copy[4096], out[4096];
        memcpy(copy, gb_fleet_out_data(g.f) + o->off, o->len);
        EXPECT(gb_parse(copy, o->len, 0, &lim, &req, NULL) == GB_OK);
        gb_writer w;
        gb_w_init(&w, out, sizeof out);
        gb_reply_opts ro = {.to_tag = "r", .to_tag_len = 1};
        EXPECT(gb_build_reply(&w, copy, &req, 200, &ro) == 0);
        gb_fleet_handle_datagram(g.f, out, w.len, 1);
    }
    drain(&g);
    for (int ops = 0; in.n && ops < 64; ops++) {
        unsigned op = fuzz_byte(&in), dev = (op >> 4) % DEVICES;
        switch (op % 8) {
        case 0:
        case 1:
        case 2:
            op_request(&g, &in);
            break;
        case 3:
            op_answer(&g, &in);
            break;
        case 4:
            g.now += (int64_t)fuzz_u16(&in) * 8;
            gb_fleet_handle_timer(g.f, g.now);
            drain(&g);
            EXPECT(gb_fleet_next_deadline(g.f) > g.now);
            break;
        case 5: {
            uint32_t ch = fuzz_byte(&in);
            gb_fleet_set_channel_status(g.f, dev, ch % 70, op & 8, g.now);
            if (op & 8) { /* Catalog fields from raw bytes: the check refuses the bad */
                gb_cam_chan_fields cf;
                size_t len;
                const char *raw = fuzz_bytes(&in, sizeof cf, &len);
                memset(&cf, 0, sizeof cf);
                memcpy(&cf, raw, len);
                gb_fleet_set_channel_fields(g.f, dev, ch % 70, &cf, NULL);
            }
            drain(&g);
            break;
        }
        case 6: {
            gb_cam_alarm a = {.target = (op & 8) ? (long)(fuzz_byte(&in) % 4)
                                                 : GB_CAM_TARGET_ALARM - (long)(fuzz_byte(&in) % 4),
                              .priority = 1, .method = 2, .type = (uint8_t)(op >> 7)};
            gb_fleet_raise_alarm(g.f, dev, &a, g.now);
            drain(&g);
            break;
        }
        default: {
            size_t len;
            const char *raw;
            switch ((op >> 3) & 3) {
            case 0:
                raw = fuzz_bytes(&in, 2048, &len);
                feed(&g, raw, len);
                break;
            case 1:
                gb_fleet_abandon(g.f, dev, g.now);
                break;
            case 2:
                gb_fleet_start(g.f, dev, g.now);
                break;
            default:
                gb_fleet_set_camera(g.f, dev, fuzz_byte(&in) % 2, fuzz_byte(&in) % 9, 1);
                break;
            }
            drain(&g);
            break;
        }
        }
    }
    gb_fleet_free(g.f);
    return 0;
}
