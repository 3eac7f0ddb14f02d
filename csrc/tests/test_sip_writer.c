/*
 * test_sip_writer.c - building requests and responses (sip_writer.h),
 * and replies to parsed requests per RFC 3261 §8.2.6.
 *
 * Output buffers are malloc'd at exactly the capacity the writer is told,
 * so the ASan build catches any write past it.
 */
#include <stdlib.h>

#include "check.h"
#include "seed.h"
#include "sip_fields.h"
#include "sip_writer.h"


/* The seed's 401, re-ordered the way gb_build_reply writes it. */
static const char SEED_401_BUILT[] =
    "SIP/2.0 401 Unauthorized\r\n"
    "Via: SIP/2.0/UDP 192.168.10.117:5061;rport=5061;branch=z9hG4bK2509000523;received=192.168.10.117\r\n"
    "From: <sip:34020000001320000001@192.168.10.177>;tag=2577708869\r\n"
    "To: <sip:34020000001320000001@192.168.10.177>;tag=66081813_53173353_54026835-98f6-4d1e-b562-0d969636b944\r\n"
    "Call-ID: 939764460\r\n"
    "CSeq: 1 REGISTER\r\n"
    "WWW-Authenticate: Digest realm=\"3402000000\",nonce=\"324cab6e557268e0\"\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

#define MAXH 64

typedef struct {
    char *buf;
    size_t len;
    gb_msg msg;
    gb_header headers[MAXH];
    gb_error_code rc;
} parsed;

static char *dup_exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (!p) {
        perror("malloc");
        exit(2);
    }
    if (n)
        memcpy(p, s, n);
    return p;
}

static parsed *parse_bytes(const char *s, size_t n)
{
    parsed *p = calloc(1, sizeof(*p));
    if (!p) {
        perror("calloc");
        exit(2);
    }
    p->buf = dup_exact(s, n);
    p->len = n;
    gb_msg_init(&p->msg, p->headers, MAXH);
    gb_error err;
    p->rc = gb_parse(p->buf, n, 0, NULL, &p->msg, &err);
    if (p->rc)
        fprintf(stderr, "  parse failed: %s at line %u offset %u\n",
                err.reason, err.line, err.offset);
    return p;
}

static void release(parsed *p)
{
    free(p->buf);
    free(p);
}

#define F(name, value) {name, sizeof(name) - 1, value, sizeof(value) - 1}

/* Compare writer output with a literal, showing both on mismatch. */
#define CHECK_OUT(w, lit)                                                  \
    do {                                                                   \
        CHECK_EQ_INT((w).overflow, 0);                                     \
        CHECK_MEM((w).buf, (w).len, lit);                                  \
    } while (0)

static void test_writer_never_overflows(void)
{
    char *buf = malloc(8);
    gb_writer w;
    gb_w_init(&w, buf, 8);
    gb_w_cstr(&w, "abcde");
    CHECK_EQ_INT(w.len, 5);
    CHECK_EQ_INT(w.overflow, 0);
    gb_w_cstr(&w, "fghij");          /* does not fit: nothing written */
    CHECK_EQ_INT(w.overflow, 1);
    CHECK(w.len <= 8);
    gb_w_cstr(&w, "x");              /* ignored after an overflow */
    CHECK(w.len <= 8);
    CHECK_EQ_INT(w.overflow, 1);
    free(buf);

    buf = malloc(64);
    gb_w_init(&w, buf, 64);
    gb_w_uint(&w, 0);
    gb_w_bytes(&w, " ", 1);
    gb_w_uint(&w, 18446744073709551615u);
    gb_w_bytes(&w, " ", 1);
    gb_w_header(&w, "CSeq", 4, "7 MESSAGE", 9);
    CHECK_OUT(w, "0 18446744073709551615 CSeq: 7 MESSAGE\r\n");
    free(buf);

    /* Zero capacity: every write overflows, none touches memory. */
    gb_w_init(&w, NULL, 0);
    gb_w_bytes(&w, "a", 1);
    CHECK_EQ_INT(w.overflow, 1);
    CHECK_EQ_INT(w.len, 0);
}

static void test_build_request(void)
{
    const gb_field fields[] = {
        F("Via", "SIP/2.0/UDP 192.168.10.117:5061;rport;branch=z9hG4bK77"),
        F("From", "<sip:34020000001320000001@3402000000>;tag=9"),
        F("To", "<sip:34020000002000000001@3402000000>"),
        F("Call-ID", "ka77"),
        F("CSeq", "20 MESSAGE"),
        F("Content-Type", "Application/MANSCDP+xml"),
        F("X-Unknown", "kept as given"),
    };
    static const char body[] = "<?xml version=\"1.0\"?><Notify/>";
    static const char want[] =
        "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.168.10.117:5061;rport;branch=z9hG4bK77\r\n"
        "From: <sip:34020000001320000001@3402000000>;tag=9\r\n"
        "To: <sip:34020000002000000001@3402000000>\r\n"
        "Call-ID: ka77\r\n"
        "CSeq: 20 MESSAGE\r\n"
        "Content-Type: Application/MANSCDP+xml\r\n"
        "X-Unknown: kept as given\r\n"
        "Content-Length: 30\r\n"
        "\r\n"
        "<?xml version=\"1.0\"?><Notify/>";
    size_t cap = sizeof(want) - 1;
    char *buf = malloc(cap);
    gb_writer w;
    gb_w_init(&w, buf, cap);
    CHECK_EQ_INT(gb_build_request(&w, "MESSAGE", 7,
                                  "sip:34020000002000000001@3402000000", 35,
                                  fields, sizeof(fields) / sizeof(fields[0]),
                                  body, sizeof(body) - 1), 0);
    CHECK_OUT(w, want);

    /* What was built parses back to the same values. */
    parsed *p = parse_bytes(w.buf, w.len);
    CHECK_EQ_INT(p->rc, GB_OK);
    CHECK_EQ_INT(p->msg.method_id, GB_METHOD_MESSAGE);
    CHECK_EQ_INT(p->msg.cseq, 20);
    CHECK_EQ_INT(p->msg.body.len, sizeof(body) - 1);
    CHECK_EQ_INT(p->msg.nheaders, 8);
    release(p);

    /* One byte short: -1, overflow set, and no write past the buffer. */
    for (size_t c = 0; c < cap; c += 7) {
        gb_w_init(&w, buf, c);
        CHECK_EQ_INT(gb_build_request(&w, "MESSAGE", 7,
                                      "sip:34020000002000000001@3402000000", 35,
                                      fields, sizeof(fields) / sizeof(fields[0]),
                                      body, sizeof(body) - 1), -1);
        CHECK(w.overflow && w.len <= c);
    }
    gb_w_init(&w, buf, cap - 1);
    CHECK_EQ_INT(gb_build_request(&w, "MESSAGE", 7,
                                  "sip:34020000002000000001@3402000000", 35,
                                  fields, sizeof(fields) / sizeof(fields[0]),
                                  body, sizeof(body) - 1), -1);
    free(buf);
}

static void test_build_response(void)
{
    const gb_field fields[] = {
        F("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"),
        F("CSeq", "2 REGISTER"),
    };
    static const char want[] =
        "SIP/2.0 423 Interval Too Brief\r\n"
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        "CSeq: 2 REGISTER\r\n"
        "Content-Length: 0\r\n"
        "\r\n";
    char *buf = malloc(sizeof(want) - 1);
    gb_writer w;
    gb_w_init(&w, buf, sizeof(want) - 1);
    CHECK_EQ_INT(gb_build_response(&w, 423, NULL, 0, fields, 2, NULL, 0), 0);
    CHECK_OUT(w, want);
    free(buf);

    /* A caller's reason phrase replaces the standard one. */
    buf = malloc(256);
    gb_w_init(&w, buf, 256);
    CHECK_EQ_INT(gb_build_response(&w, 200, "Fine", 4, NULL, 0, "ab", 2), 0);
    CHECK_OUT(w, "SIP/2.0 200 Fine\r\nContent-Length: 2\r\n\r\nab");
    free(buf);
}

/* RFC 3261 §8.2.6.2: Via (all, in order), From, To (+ tag), Call-ID, CSeq. */
static void test_reply_to_seed_register(void)
{
    parsed *req = parse_bytes(SEED_REGISTER1, sizeof(SEED_REGISTER1) - 1);
    CHECK_EQ_INT(req->rc, GB_OK);
    const gb_field extra[] = {
        F("WWW-Authenticate", "Digest realm=\"3402000000\",nonce=\"324cab6e557268e0\""),
    };
    static const char tag[] = "66081813_53173353_54026835-98f6-4d1e-b562-0d969636b944";
    gb_reply_opts o;
    memset(&o, 0, sizeof(o));
    o.to_tag = tag;
    o.to_tag_len = sizeof(tag) - 1;
    o.fields = extra;
    o.nfields = 1;

    size_t cap = sizeof(SEED_401_BUILT) - 1;
    char *buf = malloc(cap);
    gb_writer w;
    gb_w_init(&w, buf, cap);
    CHECK_EQ_INT(gb_build_reply(&w, req->buf, &req->msg, 401, &o), 0);
    CHECK_OUT(w, SEED_401_BUILT);

    parsed *resp = parse_bytes(w.buf, w.len);
    CHECK_EQ_INT(resp->rc, GB_OK);
    CHECK_EQ_INT(resp->msg.kind, GB_RESPONSE);
    CHECK_EQ_INT(resp->msg.status, 401);
    CHECK_EQ_INT(resp->msg.cseq, 1);
    CHECK_EQ_INT(resp->msg.method_id, GB_METHOD_REGISTER);
    release(resp);

    /* Too small by one byte: -1 and nothing written past the buffer. */
    gb_w_init(&w, buf, cap - 1);
    CHECK_EQ_INT(gb_build_reply(&w, req->buf, &req->msg, 401, &o), -1);
    CHECK(w.overflow);
    free(buf);

    /* Default options: standard phrase, no tag added, no extra fields. */
    buf = malloc(1024);
    gb_w_init(&w, buf, 1024);
    CHECK_EQ_INT(gb_build_reply(&w, req->buf, &req->msg, 100, NULL), 0);
    resp = parse_bytes(w.buf, w.len);
    CHECK_EQ_INT(resp->rc, GB_OK);
    CHECK_EQ_INT(resp->msg.status, 100);
    CHECK_MEM(resp->buf + resp->msg.reason.off, resp->msg.reason.len, "Trying");
    int to = gb_msg_find(&resp->msg, GB_HDR_TO, 0);
    CHECK(to >= 0);
    if (to >= 0)
        CHECK_MEM(resp->buf + resp->msg.headers[to].value.off,
                  resp->msg.headers[to].value.len,
                  "<sip:34020000001320000001@192.168.10.177>");
    CHECK_EQ_INT(gb_msg_find(&resp->msg, GB_HDR_CONTACT, 0), -1);
    CHECK_EQ_INT(gb_msg_find(&resp->msg, GB_HDR_USER_AGENT, 0), -1);
    CHECK_EQ_INT(resp->msg.content_length, 0);
    release(resp);

    /* §8.2.6.2: a 100 Trying gets no To tag even when one is offered. */
    gb_w_init(&w, buf, 1024);
    CHECK_EQ_INT(gb_build_reply(&w, req->buf, &req->msg, 100, &o), 0);
    resp = parse_bytes(w.buf, w.len);
    to = gb_msg_find(&resp->msg, GB_HDR_TO, 0);
    CHECK(to >= 0);
    if (to >= 0)
        CHECK(resp->msg.headers[to].value.len == sizeof("<sip:34020000001320000001@192.168.10.177>") - 1);
    release(resp);

    /* The seed's 200 OK: Contact, Expires and the GB Date, with a body. */
    const gb_field ok_fields[] = {
        F("Contact", "<sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b>"),
        F("Expires", "3600"),
        F("Date", "2013-06-26T16:08:37.164"),
    };
    o.fields = ok_fields;
    o.nfields = 3;
    o.to_tag = "t2";
    o.to_tag_len = 2;
    o.body = "xyz";
    o.body_len = 3;
    gb_w_init(&w, buf, 1024);
    CHECK_EQ_INT(gb_build_reply(&w, req->buf, &req->msg, 200, &o), 0);
    resp = parse_bytes(w.buf, w.len);
    CHECK_EQ_INT(resp->rc, GB_OK);
    CHECK_EQ_INT(resp->msg.expires, 3600);
    CHECK_EQ_INT(resp->msg.content_length, 3);
    CHECK_MEM(resp->buf + resp->msg.body.off, resp->msg.body.len, "xyz");
    CHECK_EQ_INT(resp->msg.nheaders, 9);
    release(resp);
    free(buf);
    release(req);
}

/* A To tag already present is kept, not doubled (§8.2.6.2); all Vias are
 * copied in order; compact names come out in long form. */
static void test_reply_keeps_vias_and_tag(void)
{
    static const char req_text[] =
        "INVITE sip:a@b SIP/2.0\r\n"
        "v: SIP/2.0/UDP p1:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP p2;branch=z9hG4bK2\r\n"
        "Via: SIP/2.0/TCP p3;branch=z9hG4bK3\r\n"
        "f: \"Caller\" <sip:x@y>;tag=from1\r\n"
        "t: <sip:a@b>;tag=existing\r\n"
        "i: via-order\r\n"
        "CSeq: 5 INVITE\r\n"
        "Content-Length: 0\r\n"
        "\r\n";
    parsed *req = parse_bytes(req_text, sizeof(req_text) - 1);
    CHECK_EQ_INT(req->rc, GB_OK);
    gb_reply_opts o;
    memset(&o, 0, sizeof(o));
    o.to_tag = "new";
    o.to_tag_len = 3;
    char *buf = malloc(1024);
    gb_writer w;
    gb_w_init(&w, buf, 1024);
    CHECK_EQ_INT(gb_build_reply(&w, req->buf, &req->msg, 486, &o), 0);
    parsed *resp = parse_bytes(w.buf, w.len);
    CHECK_EQ_INT(resp->rc, GB_OK);

    /* Via values in the same order, whatever their line layout. */
    static const char *const hosts[] = {"p1", "p2", "p3"};
    size_t nvia = 0;
    for (int i = gb_msg_find(&resp->msg, GB_HDR_VIA, 0); i >= 0;
         i = gb_msg_next(&resp->msg, GB_HDR_VIA, i)) {
        gb_list_iter it;
        gb_span item;
        gb_list_begin(&it, resp->buf, resp->msg.headers[i].value);
        while (gb_list_next(&it, &item, NULL) == 1) {
            gb_via via;
            CHECK_EQ_INT(gb_parse_via(resp->buf, item, &via, NULL), GB_OK);
            if (nvia < 3)
                CHECK(via.host.len == strlen(hosts[nvia]) &&
                      memcmp(resp->buf + via.host.off, hosts[nvia], via.host.len) == 0);
            nvia++;
        }
    }
    CHECK_EQ_INT(nvia, 3);
    int to = gb_msg_find(&resp->msg, GB_HDR_TO, 0);
    CHECK(to >= 0);
    if (to >= 0) {
        CHECK_MEM(resp->buf + resp->msg.headers[to].name.off,
                  resp->msg.headers[to].name.len, "To");
        CHECK_MEM(resp->buf + resp->msg.headers[to].value.off,
                  resp->msg.headers[to].value.len, "<sip:a@b>;tag=existing");
    }
    int from = gb_msg_find(&resp->msg, GB_HDR_FROM, 0);
    CHECK(from >= 0);
    if (from >= 0)
        CHECK_MEM(resp->buf + resp->msg.headers[from].name.off,
                  resp->msg.headers[from].name.len, "From");
    CHECK_MEM(resp->buf + resp->msg.reason.off, resp->msg.reason.len, "Busy Here");
    release(resp);

    /* RFC 3581 §4: received and rport go into the top Via only. */
    o.received = "203.0.113.9";
    o.received_len = 11;
    o.rport = 40000;
    gb_w_init(&w, buf, 1024);
    CHECK_EQ_INT(gb_build_reply(&w, req->buf, &req->msg, 180, &o), 0);
    resp = parse_bytes(w.buf, w.len);
    CHECK_EQ_INT(resp->rc, GB_OK);
    int top = gb_msg_find(&resp->msg, GB_HDR_VIA, 0);
    CHECK(top >= 0);
    if (top >= 0) {
        gb_list_iter it;
        gb_span item;
        gb_via via;
        gb_list_begin(&it, resp->buf, resp->msg.headers[top].value);
        CHECK(gb_list_next(&it, &item, NULL) == 1);
        CHECK_EQ_INT(gb_parse_via(resp->buf, item, &via, NULL), GB_OK);
        CHECK_MEM(resp->buf + via.host.off, via.host.len, "p1");
        CHECK_EQ_INT(via.port, 5060);
        CHECK_EQ_INT(via.rport, 40000);
        CHECK(via.has_received);
        CHECK_MEM(resp->buf + via.received.off, via.received.len, "203.0.113.9");
        CHECK_MEM(resp->buf + via.branch.off, via.branch.len, "z9hG4bK1");
        /* the second Via is untouched */
        CHECK(gb_list_next(&it, &item, NULL) == 1);
        CHECK_EQ_INT(gb_parse_via(resp->buf, item, &via, NULL), GB_OK);
        CHECK(!via.has_received && !via.has_rport);
    }
    release(resp);
    free(buf);
    release(req);
}

int main(void)
{
    test_writer_never_overflows();
    test_build_request();
    test_build_response();
    test_reply_to_seed_register();
    test_reply_keeps_vias_and_tag();
    return CHECK_DONE("test_sip_writer");
}
