/*
 * fuzz_registrar.c - libFuzzer target for the registrar core (registrar.h).
 *
 * The first bytes choose a configuration: every leniency combination, qop,
 * fixed or HMAC nonces, the refresh policy, secret lookups, the rate limit,
 * small limits, a redirect server, small answer buffers.  The rest is a
 * script of operations: raw datagrams from the fuzzer; REGISTERs built from
 * a template and signed with correct Digest credentials for the registrar's
 * last challenge (so the fuzzer reaches the binding code), with fuzzer
 * bytes spliced in as extra header lines; keepalives; time going on with
 * the timers run; pending secret lookups resumed; the platform's requests
 * to a registered device (platform_requests.h) answered with the real
 * branch, Call-ID and CSeq, a fuzzed status and fuzzer header lines, or
 * with fuzzer bytes after the real Via.
 *
 * Invariants: every call returns one of its statuses; an answer fits the
 * caller's buffer and (without LF_ONLY) parses as a SIP response; the
 * counters agree (nothing answered without being counted, no binding move
 * outside the table, never more bindings than max_bindings); and
 * everything is freed (LeakSanitizer).
 */
#include <string.h>

#include "digest.h"
#include "fuzz.h"
#include "platform_requests.h"
#include "registrar.h"
#include "sip_auth.h"
#include "sip_parser.h"

#define DEVICES 4
#define SERVER_ID "34020000002000000001"
#define RURI "sip:" SERVER_ID "@3402000000"
#define PASSWORD "12345678"

typedef struct {
    gb_registrar *r;
    gb_registrar_config cfg;
    gb_digest_ctx *dctx;
    char challenge[512];       /* the last WWW-Authenticate value seen */
    size_t challenge_len;
    uint64_t pending[4];       /* NEED_SECRET ids not resumed yet */
    unsigned npending;
    int small_buffers;
    int64_t now;
    uint64_t answered;         /* answers seen */
    char *reply;
    size_t reply_cap;
} rig;

static const unsigned char KEY[32] = "fuzz-nonce-key-fuzz-nonce-key-!!";

/* The answer must be a response a strict parser takes (bare LFs of an
 * LF_ONLY request may be echoed, so not then). */
static void check_answer(rig *g, const char *p, size_t n)
{
    if (g->cfg.lenient & GB_LENIENT_LF_ONLY)
        return;
    gb_header hdrs[512];
    gb_msg m;
    gb_limits lim;
    gb_limits_default(&lim);
    lim.max_message = lim.max_line = 0x7fffffff;
    lim.max_headers = 512;
    lim.max_vias = lim.max_contacts = 512;
    gb_msg_init(&m, hdrs, 512);
    gb_error err;
    gb_error_code rc = gb_parse(p, n, 0, &lim, &m, &err);
    int missing = rc == GB_ERR_MISSING_HEADER;
    if (missing) {
        /* RFC 4475 §3.3.1: a request without From, To, Call-ID or CSeq (or
         * with one malformed) is answered all the same, without it: 400, or
         * 505 / 513 when its version or size is the first fault found */
        lim.lenient = GB_LENIENT_MISSING_HEADERS;
        gb_msg_init(&m, hdrs, 512);
        rc = gb_parse(p, n, 0, &lim, &m, &err);
    }
    if (rc != GB_OK)
        fprintf(stderr, "answer does not parse: %s (line %u)\n%.*s\n", err.reason,
                (unsigned)err.line, (int)(n > 600 ? 600 : n), p);
    EXPECT(rc == GB_OK);
    EXPECT(m.kind == GB_RESPONSE && m.status >= 100 && m.status < 700);
    EXPECT(!missing || m.status == 400 || m.status == 505 || m.status == 513);
    /* remember a challenge to answer */
    int i = gb_msg_find(&m, GB_HDR_WWW_AUTHENTICATE, 0);
    if (m.status == 401 && i >= 0 && m.headers[i].value.len < sizeof g->challenge) {
        memcpy(g->challenge, p + m.headers[i].value.off, m.headers[i].value.len);
        g->challenge_len = m.headers[i].value.len;
    }
}

static void take_events(rig *g)
{
    gb_reg_event ev[16];
    size_t n;
    while ((n = gb_registrar_pop_events(g->r, ev, 16)) > 0)
        for (size_t k = 0; k < n; k++) {
            EXPECT(ev[k].type >= GB_REG_EV_REGISTERED && ev[k].type <= GB_REG_EV_NOTIFY);
            EXPECT(ev[k].id_len <= GB_REG_MAX_ID);
            if (ev[k].type == GB_REG_EV_NEED_SECRET && g->npending < 4)
                g->pending[g->npending++] = ev[k].pending_id;
            gb_reg_event_clear(&ev[k]);
        }
}

/* The answer buffer: what gb_registrar_reply_cap asks, or (small_buffers)
 * sometimes less, to reach the "too large" path. */
static gb_reg_reply reply_buffer(rig *g, size_t request_len, unsigned pick)
{
    size_t cap = gb_registrar_reply_cap(g->r, request_len);
    if (g->small_buffers && (pick & 3) == 0)
        cap = 64 + (pick * 37) % (request_len + 512);
    return (gb_reg_reply){.buf = g->reply, .cap = cap < g->reply_cap ? cap : g->reply_cap};
}

static void after(rig *g, gb_reg_status st, const gb_reg_reply *out)
{
    EXPECT(st == GB_REG_REPLY || st == GB_REG_NONE || st == GB_REG_DROPPED ||
           st == GB_REG_PENDING);
    if (st == GB_REG_REPLY) {
        EXPECT(out->len > 0 && out->len <= out->cap);
        check_answer(g, out->buf, out->len);
        g->answered++;
    } else {
        EXPECT(out->len == 0);
    }
    take_events(g);
    gb_registrar_stats s;
    gb_registrar_get_stats(g->r, &s);
    EXPECT(s.answered + s.retransmissions_absorbed >= g->answered);
    EXPECT(s.illegal_moves == 0);
    EXPECT(s.bindings <= g->cfg.max_bindings);
    EXPECT(s.pending <= g->cfg.max_pending);
    EXPECT(s.event_bytes == 0); /* every event taken */
    EXPECT(s.events_dropped_state <= s.events_dropped);
}

static void feed(rig *g, const char *msg, size_t len, unsigned who)
{
    /* the message in its own buffer of exactly its length: ASan sees reads past it */
    char *copy = malloc(len ? len : 1);
    memcpy(copy, msg, len);
    gb_peer src = {.family = 4, .transport = (uint8_t)(who >> 7), .port = (uint16_t)(5060 + who % 3),
                   .ip = {10, 0, 0, (uint8_t)(1 + who % 4)}};
    gb_reg_reply out = reply_buffer(g, len, who);
    gb_reg_status st = gb_registrar_handle(g->r, copy, len, &src, g->now, 1372262917164LL, &out);
    free(copy);
    after(g, st, &out);
}

/* Credentials for the last challenge (correct, or with a wrong password). */
static size_t sign(rig *g, const char *id, int wrong, char *out, size_t cap)
{
    gb_auth a;
    gb_digest_challenge ch;
    gb_span all = {0, (uint32_t)g->challenge_len};
    if (!g->challenge_len || gb_auth_parse_one(g->challenge, all, &a, NULL) != GB_OK ||
        gb_digest_parse_challenge(g->challenge, &a, &ch, NULL) != GB_OK)
        return 0;
    gb_digest_answer_in in = {
        .username = {id, strlen(id)},
        .password = wrong ? (gb_bytes){"wrong", 5} : (gb_bytes){PASSWORD, 8},
        .method = {"REGISTER", 8},
        .uri = {RURI, strlen(RURI)},
        .cnonce = {"0a4f113b", 8},
        .qop = -1,
    };
    const char *why;
    long n = gb_digest_answer(g->dctx, NULL, g->challenge, &ch, &in, out, cap, &why);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static const long EXPIRES[] = {-1, 0, 60, 3600, 90000, 4294967295L};

/* A REGISTER from the template, chosen and mutated by the fuzzer. */
static void op_register(rig *g, fuzz_input *in)
{
    unsigned dev = fuzz_byte(in) % DEVICES, call = fuzz_byte(in) % 3, flags = fuzz_byte(in);
    unsigned cseq = fuzz_u16(in);
    long expires = EXPIRES[fuzz_byte(in) % 6];
    size_t extra_len;
    const char *extra = fuzz_bytes(in, 512, &extra_len);
    char id[32], auth[1200] = "", contacts[512] = "", exp[40] = "";
    snprintf(id, sizeof id, "3402000000132000000%u", dev);
    if (flags & 1) {
        char cred[1024];
        size_t cn = sign(g, id, flags & 2, cred, sizeof cred);
        if (cn)
            snprintf(auth, sizeof auth, "Authorization: %.*s\r\n", (int)cn, cred);
    }
    unsigned nc = (flags >> 2) & 3;
    for (unsigned k = 0; k < nc; k++) {
        size_t l = strlen(contacts);
        snprintf(contacts + l, sizeof contacts - l, "Contact: <sip:%s@10.0.0.%u:5061>%s\r\n", id,
                 k + 1, (flags & 16) ? ";expires=120" : "");
    }
    if (flags & 32)
        snprintf(contacts, sizeof contacts, "Contact: *\r\n");
    if (expires >= 0)
        snprintf(exp, sizeof exp, "Expires: %ld\r\n", expires);
    char msg[4096];
    int n = snprintf(msg, sizeof msg,
                     "REGISTER " RURI " SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 10.0.0.1:5061;rport;branch=z9hG4bK%u\r\n"
                     "From: <sip:%s@3402000000>;tag=f%u\r\n"
                     "To: <sip:%s@3402000000>\r\n"
                     "Call-ID: call-%u-%u\r\n"
                     "CSeq: %u REGISTER\r\n"
                     "Max-Forwards: 70\r\n%s%s%s%.*s%s"
                     "Content-Length: 0\r\n\r\n",
                     (unsigned)g->now ^ cseq, id, dev, id, dev, call, cseq, contacts, exp, auth,
                     (int)extra_len, extra, extra_len ? "\r\n" : "");
    feed(g, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1, flags);
}

/* A GB/T 28181 §9.6.1 keepalive, or another MANSCDP body from the fuzzer. */
static void op_message(rig *g, fuzz_input *in)
{
    unsigned dev = fuzz_byte(in) % DEVICES, flags = fuzz_byte(in);
    size_t blen;
    const char *body = fuzz_bytes(in, 1024, &blen);
    char ka[256];
    if (!(flags & 1)) {
        blen = (size_t)snprintf(ka, sizeof ka,
                                "<?xml version=\"1.0\"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>"
                                "\r\n<SN>%u</SN>\r\n<DeviceID>3402000000132000000%u</DeviceID>\r\n"
                                "<Status>OK</Status>\r\n</Notify>\r\n",
                                flags, dev);
        body = ka;
    }
    char msg[2048];
    int n = snprintf(msg, sizeof msg,
                     "MESSAGE " RURI " SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bKm%u%u\r\n"
                     "From: <sip:3402000000132000000%u@3402000000>;tag=k\r\n"
                     "To: <" RURI ">\r\nCall-ID: ka-%u\r\nCSeq: %u MESSAGE\r\n"
                     "Content-Type: Application/MANSCDP+xml\r\nContent-Length: %zu\r\n\r\n%.*s",
                     (unsigned)g->now, flags, dev, flags, flags, blen, (int)blen, body);
    feed(g, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1, flags);
}

static void op_resume(rig *g, fuzz_input *in)
{
    if (!g->npending)
        return;
    unsigned pick = fuzz_byte(in);
    unsigned k = pick % g->npending;
    uint64_t id = g->pending[k];
    g->npending--;
    g->pending[k] = g->pending[g->npending];
    int kind = (int)(pick >> 2) % 3; /* GB_SECRET_UNKNOWN, PASSWORD, HA1 */
    size_t slen;
    const char *secret = fuzz_bytes(in, 64, &slen);
    if (pick & 0x80) {
        secret = PASSWORD;
        slen = 8;
    }
    gb_reg_reply out = reply_buffer(g, 65536, pick);
    gb_reg_status st = gb_registrar_resume(g->r, id, kind, secret, slen, g->now,
                                           1372262917164LL, &out);
    after(g, st, &out);
}

/* The platform queries a registered device; the device answers. */
static void op_platform(rig *g, fuzz_input *in)
{
    size_t cursor = 0;
    gb_binding_view v;
    if (!gb_registrar_binding_next(g->r, &cursor, &v))
        return;
    unsigned flags = fuzz_byte(in);
    static const char body[] = "<?xml version=\"1.0\"?><Query><CmdType>Catalog</CmdType>"
                               "<SN>1</SN><DeviceID>1</DeviceID></Query>";
    gb_field ev = {"Event", 5, "Catalog", 7};
    gb_reg_request q = {.device_id = v.id, .device_id_len = v.id_len,
                        .method = (flags & 1) ? "SUBSCRIBE" : "MESSAGE",
                        .method_len = (flags & 1) ? 9 : 7,
                        .body = body, .body_len = sizeof body - 1,
                        .fields = &ev, .nfields = flags & 1,
                        .via_host = "10.0.0.9", .via_host_len = 8, .via_port = 5060};
    gb_preq_sent sent;
    int rc = gb_registrar_request(g->r, &q, g->now, &sent);
    EXPECT(rc == GB_PREQ_OK || rc == GB_PREQ_FULL);
    const char *d;
    size_t n;
    gb_peer dest;
    char via[128] = "";
    while (gb_registrar_next_output(g->r, &d, &n, &dest)) {
        const char *b = NULL;
        for (size_t i = 0; !b && i + 7 <= n; i++)
            if (memcmp(d + i, "branch=", 7) == 0)
                b = d + i;
        const char *e = b ? memchr(b, '\r', n - (size_t)(b - d)) : NULL;
        if (b && e && (size_t)(e - b) < sizeof via)
            memcpy(via, b, (size_t)(e - b)), via[e - b] = 0;
    }
    if (rc != GB_PREQ_OK)
        return;
    size_t xlen;
    const char *extra = fuzz_bytes(in, 512, &xlen);
    unsigned status = 100 + fuzz_u16(in) % 600;
    char msg[2048];
    int len = (flags & 2)
        ? snprintf(msg, sizeof msg, "SIP/2.0 %u X\r\nVia: SIP/2.0/UDP 10.0.0.9:5060;%s\r\n%.*s",
                   status, via, (int)xlen, extra)
        : snprintf(msg, sizeof msg,
                   "SIP/2.0 %u OK\r\nVia: SIP/2.0/UDP 10.0.0.9:5060;%s\r\n"
                   "From: <sip:a@b>;tag=%.*s\r\nTo: <sip:c@d>;tag=dev\r\nCall-ID: %.*s\r\n"
                   "CSeq: %u %s\r\n%.*sContent-Length: 0\r\n\r\n",
                   status, via, (int)sent.from_tag_len, sent.from_tag, (int)sent.call_id_len,
                   sent.call_id, sent.cseq, q.method, (int)xlen, extra);
    feed(g, msg, (size_t)len < sizeof msg ? (size_t)len : sizeof msg - 1, flags);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    unsigned c0 = fuzz_byte(&in), c1 = fuzz_byte(&in), c2 = fuzz_byte(&in);
    rig g;
    memset(&g, 0, sizeof g);
    gb_registrar_config *c = &g.cfg;
    gb_registrar_config_default(c);
    c->server_id = SERVER_ID;
    c->server_id_len = 20;
    c->shared_password = (c1 & 2) ? NULL : PASSWORD;
    c->shared_password_len = (c1 & 2) ? 0 : 8;
    c->ask_for_secrets = (c1 & 2) != 0;
    c->nonce_key = KEY;
    c->nonce_key_len = sizeof KEY;
    c->lenient = c0 & GB_LENIENT_ALL;
    c->qop_auth = (c0 & 64) != 0;
    if (c0 & 128) {
        c->fixed_nonce = "324cab6e557268e0";
        c->fixed_nonce_len = 16;
    }
    c->refresh_policy = (c1 & 1) ? GB_REFRESH_TRUST_CALL_ID : GB_REFRESH_CHALLENGE;
    c->rate_per_source = (c1 & 4) ? 3 : 0;
    c->id_policy = (c1 & 8) ? GB_IDS_ANY : GB_IDS_STRICT;
    c->max_transactions = 256; /* the default 65,536 slots cost each run 16 MB */
    c->nonce_replay_slots = 64; /* and 2 MB, the lockout table 1.7 MB */
    c->lockout_slots = 64;
    if (c1 & 16) {
        c->max_bindings = 2;
        c->max_transactions = 8;
        c->max_pending = 2;
        c->max_events = 16;
    }
    if (c1 & 32) {
        c->redirect_to = "sip:34020000002000000002@10.0.0.9:5060";
        c->redirect_to_len = strlen(c->redirect_to);
    }
    g.small_buffers = (c1 & 64) != 0;
    c->keepalive_events = !(c1 & 128);
    c->max_contacts = c2 % 9;
    if (c2 & 16) { /* lockouts that trip, in a table of one set */
        c->lockout_failures = 2;
        c->lockout_source_failures = 3;
        c->lockout_slots = 4;
        c->lockout_window_ms = 5000;
        c->lockout_ms = 3000;
    }
    c->keepalive_policy = (c2 & 32) ? GB_KEEPALIVE_CHALLENGE : GB_KEEPALIVE_REFUSE;
    c->require_qop = !(c2 & 64);
    if (c2 & 128)
        c->max_event_bytes = 4096; /* bodies make room for each other */
    c->min_expires = 60;
    c->keepalive_interval_ms = 1000;
    c->seed = c2;
    c->max_requests = (c1 & 16) ? 2 : 64;
    for (int i = 0; i < 16; i++)
        c->hash_key[i] = (unsigned char)(c2 + i);
    const char *why;
    g.r = gb_registrar_new(c, &why);
    EXPECT(g.r != NULL);
    g.dctx = gb_digest_ctx_new();
    g.reply_cap = gb_registrar_reply_cap(g.r, 65536);
    g.reply = malloc(g.reply_cap);
    g.now = 1000000;
    for (int ops = 0; in.n && ops < 64; ops++) {
        switch (fuzz_byte(&in) % 7) {
        case 0: {
            size_t len;
            const char *raw = fuzz_bytes(&in, 8192, &len);
            feed(&g, raw, len, fuzz_byte(&in));
            break;
        }
        case 1:
        case 2:
            op_register(&g, &in);
            break;
        case 3:
            op_message(&g, &in);
            break;
        case 4:
            g.now += (int64_t)fuzz_u16(&in) * 40;
            gb_registrar_handle_timer(g.r, g.now);
            take_events(&g);
            EXPECT(gb_registrar_next_deadline(g.r) > g.now);
            break;
        case 5:
            op_resume(&g, &in);
            break;
        default:
            op_platform(&g, &in);
            break;
        }
    }
    /* every binding reads back consistently */
    size_t cursor = 0, seen = 0;
    gb_binding_view v;
    while (gb_registrar_binding_next(g.r, &cursor, &v)) {
        EXPECT(v.id_len > 0 && v.id_len <= GB_REG_MAX_ID && v.ncontacts <= c->max_contacts);
        seen++;
    }
    EXPECT(seen == gb_registrar_binding_count(g.r));
    free(g.reply);
    gb_digest_ctx_free(g.dctx);
    gb_registrar_free(g.r);
    return 0;
}
