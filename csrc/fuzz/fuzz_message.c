/*
 * fuzz_message.c - libFuzzer target for whole SIP messages.
 *
 * The input is copied into a malloc'd buffer of exactly its size (no NUL
 * after it), so ASan reports any read past the length the parser was given.
 * Each input is parsed in datagram and stream mode, strict and with every
 * tolerance on; a parsed message then has each header run through the
 * sub-parser of its kind, and a request gets a reply built for it, which
 * must parse again.  Invariant: a clean result or a clean error, nothing
 * else — any broken expectation traps.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sip_fields.h"
#include "sip_parser.h"
#include "sip_writer.h"

#define MAXH 128

static void walk_params(const char *buf, size_t n, gb_span params, char sep)
{
    gb_param_iter it;
    gb_param p;
    gb_error err;
    int r, count = 0;
    gb_params_begin(&it, buf, params, sep);
    while ((r = gb_params_next(&it, &p, &err)) == 1) {
        IN_BOUNDS(p.name, n);
        IN_BOUNDS(p.value, n);
        EXPECT(p.name.len > 0);
        EXPECT(++count <= (int)params.len + 1);
    }
    if (r < 0)
        EXPECT(err.offset <= n);
}

static void check_uri(const char *buf, size_t n, gb_span in)
{
    gb_uri u;
    gb_error err;
    if (gb_parse_uri(buf, in, &u, &err) != GB_OK) {
        EXPECT(err.offset <= n);
        return;
    }
    IN_BOUNDS(u.scheme, n);
    IN_BOUNDS(u.user, n);
    IN_BOUNDS(u.password, n);
    IN_BOUNDS(u.host, n);
    IN_BOUNDS(u.params, n);
    IN_BOUNDS(u.headers, n);
    IN_BOUNDS(u.opaque, n);
    EXPECT(u.port >= -1 && u.port <= 65535);
    if (u.is_sip) {
        walk_params(buf, n, u.params, ';');
        walk_params(buf, n, u.headers, '&');
        if (u.user.len) {
            char *out = malloc(u.user.len);
            long k = gb_unescape(buf, u.user, out);
            EXPECT(k <= (long)u.user.len);
            free(out);
        }
    }
}

static void check_name_addr(const char *buf, size_t n, gb_span in, int wildcard)
{
    gb_name_addr na;
    gb_error err;
    if (gb_parse_name_addr(buf, in, wildcard, &na, &err) != GB_OK) {
        EXPECT(err.offset <= n);
        return;
    }
    IN_BOUNDS(na.display, n);
    IN_BOUNDS(na.uri, n);
    IN_BOUNDS(na.params, n);
    if (na.display_quoted && na.display.len) {
        char *out = malloc(na.display.len);
        EXPECT(gb_unquote(buf, na.display, out) <= na.display.len);
        free(out);
    }
    walk_params(buf, n, na.params, ';');
    if (!na.wildcard)
        check_uri(buf, n, na.uri);
}

static void check_via(const char *buf, size_t n, gb_span in)
{
    gb_via v;
    gb_error err;
    if (gb_parse_via(buf, in, &v, &err) != GB_OK) {
        EXPECT(err.offset <= n);
        return;
    }
    IN_BOUNDS(v.protocol, n);
    IN_BOUNDS(v.transport, n);
    IN_BOUNDS(v.host, n);
    IN_BOUNDS(v.params, n);
    IN_BOUNDS(v.branch, n);
    IN_BOUNDS(v.received, n);
    IN_BOUNDS(v.maddr, n);
    EXPECT(v.rport >= -1 && v.rport <= 65535);
    EXPECT(v.port >= -1 && v.port <= 65535);
}

/* Split a value at top-level commas and run fn on each item. */
static void each_item(const char *buf, size_t n, gb_span value,
                      void (*fn)(const char *, size_t, gb_span, int), int arg)
{
    gb_list_iter it;
    gb_span item;
    gb_error err;
    int r;
    gb_list_begin(&it, buf, value);
    while ((r = gb_list_next(&it, &item, &err)) == 1) {
        IN_BOUNDS(item, n);
        EXPECT(item.len > 0);
        fn(buf, n, item, arg);
    }
    if (r < 0)
        EXPECT(err.offset <= n);
}

static void via_item(const char *b, size_t n, gb_span s, int arg)
{
    (void)arg;
    check_via(b, n, s);
}

static void addr_item(const char *b, size_t n, gb_span s, int wildcard)
{
    check_name_addr(b, n, s, wildcard);
}

static void auth_item(const char *b, size_t n, gb_span s, int arg)
{
    (void)arg;
    walk_params(b, n, s, ',');
}

static void check_headers(const char *buf, size_t n, const gb_msg *m)
{
    for (unsigned i = 0; i < m->nheaders; i++) {
        const gb_header *h = &m->headers[i];
        IN_BOUNDS(h->name, n);
        IN_BOUNDS(h->value, n);
        EXPECT(h->name.len > 0);
        EXPECT(gb_msg_find_name(m, buf, buf + h->name.off, h->name.len, -1) >= 0);
        if (h->folded) {
            char *out = malloc(h->value.len);
            EXPECT(gb_unfold(buf, h->value, out) <= h->value.len);
            free(out);
        }
        switch (h->id) {
        case GB_HDR_VIA:
            each_item(buf, n, h->value, via_item, 0);
            break;
        case GB_HDR_FROM:
        case GB_HDR_TO:
        case GB_HDR_REFER_TO:
        case GB_HDR_REFERRED_BY:
            check_name_addr(buf, n, h->value, 0);
            break;
        case GB_HDR_CONTACT:
            each_item(buf, n, h->value, addr_item, 1);
            break;
        case GB_HDR_ROUTE:
        case GB_HDR_RECORD_ROUTE:
            each_item(buf, n, h->value, addr_item, 0);
            break;
        case GB_HDR_DATE: {
            gb_date d;
            gb_error err;
            char out[23];
            if (gb_parse_date(buf, h->value, &d, &err) == GB_OK)
                gb_format_gb_date(&d, out);
            else
                EXPECT(err.offset <= n);
            break;
        }
        case GB_HDR_AUTHORIZATION:
        case GB_HDR_WWW_AUTHENTICATE:
        case GB_HDR_PROXY_AUTHENTICATE:
        case GB_HDR_PROXY_AUTHORIZATION:
            each_item(buf, n, h->value, auth_item, 0);
            break;
        default:
            break;
        }
    }
}

/* A reply to a parsed request must itself parse, with the same Call-ID
 * and CSeq (RFC 3261 §8.2.6.2). */
static void check_reply(const char *buf, const gb_msg *req)
{
    static const gb_field extra[] = {
        {"WWW-Authenticate", 16, "Digest realm=\"3402000000\",nonce=\"1\"", 35},
    };
    gb_reply_opts o;
    memset(&o, 0, sizeof(o));
    o.to_tag = "fz1";
    o.to_tag_len = 3;
    o.received = "192.0.2.1";
    o.received_len = 9;
    o.rport = 5060;
    o.fields = extra;
    o.nfields = 1;
    o.body = "x";
    o.body_len = 1;

    static char small[64];
    gb_writer w;
    gb_w_init(&w, small, sizeof(small));
    if (gb_build_reply(&w, buf, req, 401, &o) == 0)
        EXPECT(!w.overflow);
    EXPECT(w.len <= sizeof(small));

    size_t cap = 2 * (size_t)req->length + 1024;
    char *out = malloc(cap);
    gb_w_init(&w, out, cap);
    int rc = gb_build_reply(&w, buf, req, 401, &o);
    EXPECT(w.len <= cap);
    if (rc == 0) {
        char *exact = malloc(w.len);
        memcpy(exact, out, w.len);
        gb_header hs[MAXH];
        gb_msg m;
        gb_error err;
        gb_limits lim;
        gb_limits_default(&lim);
        lim.max_message = (uint32_t)cap;
        lim.max_line = (uint32_t)cap;
        gb_msg_init(&m, hs, MAXH);
        EXPECT(gb_parse(exact, w.len, 0, &lim, &m, &err) == GB_OK);
        EXPECT(m.kind == GB_RESPONSE && m.status == 401);
        EXPECT(m.cseq == req->cseq);
        EXPECT(m.body.len == 1);
        free(exact);
    }
    free(out);
}

static void run(const char *buf, size_t n, int stream, uint32_t lenient)
{
    gb_header hs[MAXH];
    gb_msg m;
    gb_error err;
    gb_limits lim;
    gb_limits_default(&lim);
    lim.lenient = lenient;
    gb_msg_init(&m, hs, MAXH);
    gb_error_code rc = gb_parse(buf, n, stream, &lim, &m, &err);
    if (rc != GB_OK) {
        EXPECT(err.code == rc);
        EXPECT(err.offset <= n);
        EXPECT(err.reason != NULL);
        EXPECT(rc == GB_ERR_NEED_MORE || err.status >= 400);
        EXPECT(stream || rc != GB_ERR_NEED_MORE);
        return;
    }
    EXPECT(m.length <= n && m.length > 0);
    EXPECT(m.nheaders <= MAXH);
    EXPECT(m.kind == GB_REQUEST || m.kind == GB_RESPONSE);
    IN_BOUNDS(m.start_line, n);
    IN_BOUNDS(m.method, n);
    IN_BOUNDS(m.uri, n);
    IN_BOUNDS(m.reason, n);
    IN_BOUNDS(m.body, n);
    EXPECT((size_t)m.body.off + m.body.len == m.length);
    if (m.content_length >= 0)
        EXPECT(m.body.len == (uint64_t)m.content_length);
    check_headers(buf, n, &m);
    if (m.kind == GB_REQUEST) {
        check_uri(buf, n, m.uri);
        if (!lenient)
            check_reply(buf, &m);
    } else {
        EXPECT(m.status >= 100 && m.status <= 699);
    }
    if (stream && !lenient) {
        /* Framing alone agrees with the full parse. */
        size_t skip, len;
        gb_error ferr;
        EXPECT(gb_frame(buf, n, &lim, &skip, &len, &ferr) == GB_OK);
        EXPECT(skip + len == m.length);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 70000)
        return 0;
    char *buf = malloc(size ? size : 1);
    if (size)
        memcpy(buf, data, size);
    run(buf, size, 0, 0);
    run(buf, size, 1, 0);
    run(buf, size, 0, GB_LENIENT_ALL);
    run(buf, size, 1, GB_LENIENT_ALL);
    free(buf);
    return 0;
}
