/*
 * test_sip_parser.c - the message indexer (sip_parser.h) on its own.
 *
 * Every input is copied into a malloc'd buffer of exactly its length, with
 * no NUL after it, so an ASan build (make test-asan) catches any read past
 * the length the parser was given.
 */
#include <stdlib.h>

#include "check.h"
#include "seed.h"
#include "sip_parser.h"

/* The seed's four messages (shared/seed), CRLF line ends as on the wire. */

static const char SEED_401[] =
    "SIP/2.0 401 Unauthorized\r\n"
    "To: <sip:34020000001320000001@192.168.10.177>;tag=66081813_53173353_54026835-98f6-4d1e-b562-0d969636b944\r\n"
    "Via: SIP/2.0/UDP 192.168.10.117:5061;rport=5061;branch=z9hG4bK2509000523;received=192.168.10.117\r\n"
    "CSeq: 1 REGISTER\r\n"
    "Call-ID: 939764460\r\n"
    "From: <sip:34020000001320000001@192.168.10.177>;tag=2577708869\r\n"
    "WWW-Authenticate: Digest realm=\"3402000000\",nonce=\"324cab6e557268e0\"\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

static const char SEED_REGISTER2[] =
    "REGISTER sip:192.168.10.177:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.10.117:5061;rport=5061;branch=z9hG4bK3163110852;received=192.168.10.117\r\n"
    "From: <sip:34020000001320000001@192.168.10.177>;tag=2577708869\r\n"
    "To: <sip:34020000001320000001@192.168.10.177>\r\n"
    "Call-ID: 939764460\r\n"
    "CSeq: 2 REGISTER\r\n"
    "Contact: <sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b>\r\n"
    "Authorization: Digest username=\"34020000001320000001\",realm=\"3402000000\",nonce=\"324cab6e557268e0\",uri=\"sip:192.168.10.177:5060\",response=\"7f536c8ce38593239f9130e37a72276e\",algorithm=MD5\r\n"
    "Max-Forwards: 70\r\n"
    "User-Agent: eXosip/3.6.0\r\n"
    "Expires: 3600\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

static const char SEED_200[] =
    "SIP/2.0 200 OK\r\n"
    "To: <sip:34020000001320000001@192.168.10.177>;tag=31428812_53173353_376bd3d9-cb9d-4b4f-a950-da26d575cff5\r\n"
    "Via: SIP/2.0/UDP 192.168.10.117:5061;rport=5061;branch=z9hG4bK3163110852;received=192.168.10.117\r\n"
    "CSeq: 2 REGISTER\r\n"
    "Call-ID: 939764460\r\n"
    "From: <sip:34020000001320000001@192.168.10.177>;tag=2577708869\r\n"
    "Contact: <sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b>\r\n"
    "Expires: 3600\r\n"
    "Date: 2013-06-26T16:08:37.164\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

/* GB/T 28181 §9.6.1 keepalive: a MESSAGE with a MANSCDP body. */
static const char KEEPALIVE[] =
    "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.10.117:5061;rport;branch=z9hG4bK1\r\n"
    "From: <sip:34020000001320000001@3402000000>;tag=1\r\n"
    "To: <sip:34020000002000000001@3402000000>\r\n"
    "Call-ID: ka1\r\n"
    "CSeq: 20 MESSAGE\r\n"
    "Content-Type: Application/MANSCDP+xml\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 137\r\n"
    "\r\n"
    "<?xml version=\"1.0\" encoding=\"GB2312\"?><Notify><CmdType>Keepalive</CmdType>"
    "<SN>1</SN><DeviceID>x</DeviceID><Status>OK</Status></Notify>\r\n";

#define MAXH 64

/* A message under test: its exact-size buffer, index and error. */
typedef struct {
    char *buf;
    size_t len;
    gb_msg msg;
    gb_header headers[MAXH];
    gb_error err;
    gb_error_code rc;
} parsed;

static char *dup_exact(const char *s, size_t n)
{
    /* malloc(0) may return NULL; keep one byte but never expose it. */
    char *p = malloc(n ? n : 1);
    if (!p) {
        perror("malloc");
        exit(2);
    }
    if (n)
        memcpy(p, s, n);
    return p;
}

static parsed *parse_with(const char *text, size_t n, int stream,
                          const gb_limits *lim)
{
    parsed *p = calloc(1, sizeof(*p));
    if (!p) {
        perror("calloc");
        exit(2);
    }
    p->buf = dup_exact(text, n);
    p->len = n;
    gb_msg_init(&p->msg, p->headers, MAXH);
    p->rc = gb_parse(p->buf, n, stream, lim, &p->msg, &p->err);
    return p;
}

static parsed *parse_str(const char *text, int stream)
{
    return parse_with(text, strlen(text), stream, NULL);
}

static void release(parsed *p)
{
    free(p->buf);
    free(p);
}

/* A span of p's buffer equals a literal. */
#define CHECK_SPAN(p, s, lit) CHECK_MEM((p)->buf + (s).off, (s).len, lit)

/* Value of the first header with this id (CHECK_MEM-able). */
static const char *first_value(const parsed *p, gb_header_id id, size_t *n)
{
    int i = gb_msg_find(&p->msg, id, 0);
    if (i < 0) {
        *n = 0;
        return "";
    }
    *n = p->msg.headers[i].value.len;
    return p->buf + p->msg.headers[i].value.off;
}

#define CHECK_HDR(p, id, lit)                                              \
    do {                                                                   \
        size_t hn_;                                                        \
        const char *hv_ = first_value((p), (id), &hn_);                    \
        CHECK_MEM(hv_, hn_, lit);                                          \
    } while (0)

/* ------------------------------------------------------------------ */

static void test_seed_register(void)
{
    parsed *p = parse_str(SEED_REGISTER1, 0);
    CHECK_EQ_INT(p->rc, GB_OK);
    CHECK_EQ_INT(p->msg.kind, GB_REQUEST);
    CHECK_EQ_INT(p->msg.method_id, GB_METHOD_REGISTER);
    CHECK_SPAN(p, p->msg.method, "REGISTER");
    CHECK_SPAN(p, p->msg.uri, "sip:192.168.10.177:5060");
    CHECK_SPAN(p, p->msg.start_line, "REGISTER sip:192.168.10.177:5060 SIP/2.0");
    CHECK_EQ_INT(p->msg.nheaders, 11);
    CHECK_EQ_INT(p->msg.cseq, 1);
    CHECK_EQ_INT(p->msg.max_forwards, 70);
    CHECK_EQ_INT(p->msg.expires, 3600);
    CHECK_EQ_INT(p->msg.content_length, 0);
    CHECK_EQ_INT(p->msg.body.len, 0);
    CHECK_EQ_INT(p->msg.body.off, p->len);
    CHECK_EQ_INT(p->msg.length, p->len);
    CHECK_EQ_INT(p->msg.header_bytes, p->len);

    CHECK_HDR(p, GB_HDR_VIA, "SIP/2.0/UDP 192.168.10.117:5061;rport=5061;"
                             "branch=z9hG4bK2509000523;received=192.168.10.117");
    CHECK_HDR(p, GB_HDR_FROM, "<sip:34020000001320000001@192.168.10.177>;tag=2577708869");
    CHECK_HDR(p, GB_HDR_TO, "<sip:34020000001320000001@192.168.10.177>");
    CHECK_HDR(p, GB_HDR_CALL_ID, "939764460");
    CHECK_HDR(p, GB_HDR_CSEQ, "1 REGISTER");
    CHECK_HDR(p, GB_HDR_CONTACT,
              "<sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b>");
    CHECK_HDR(p, GB_HDR_MAX_FORWARDS, "70");
    CHECK_HDR(p, GB_HDR_USER_AGENT, "eXosip/3.6.0");
    CHECK_HDR(p, GB_HDR_EXPIRES, "3600");
    /* GB 35114 capability hint: an ordinary header to the indexer. */
    CHECK_HDR(p, GB_HDR_AUTHORIZATION, "Capability, algorithm=\"H:MD5\"");
    CHECK_HDR(p, GB_HDR_CONTENT_LENGTH, "0");

    /* Header order and lines are those of the wire. */
    CHECK_SPAN(p, p->msg.headers[0].name, "Via");
    CHECK_SPAN(p, p->msg.headers[10].name, "Content-Length");
    CHECK_EQ_INT(p->msg.headers[0].line, 2);
    CHECK_EQ_INT(p->msg.headers[4].line, 6);
    CHECK_EQ_INT(p->msg.headers[4].id, GB_HDR_CSEQ);
    CHECK_EQ_INT(p->msg.first[GB_HDR_VIA], 1);
    CHECK_EQ_INT(p->msg.first[GB_HDR_CONTENT_LENGTH], 11);
    CHECK_EQ_INT(p->msg.first[GB_HDR_DATE], 0);
    CHECK_EQ_INT(gb_msg_find(&p->msg, GB_HDR_VIA, 1), -1);
    CHECK_EQ_INT(gb_msg_find(&p->msg, GB_HDR_DATE, 0), -1);
    CHECK_EQ_INT(gb_msg_next(&p->msg, GB_HDR_EXPIRES, -1), 8);
    CHECK_EQ_INT(gb_msg_next(&p->msg, GB_HDR_EXPIRES, 8), -1);
    CHECK_EQ_INT(gb_msg_find_name(&p->msg, p->buf, "user-agent", 10, -1), 7);
    CHECK_EQ_INT(gb_msg_find_name(&p->msg, p->buf, "i", 1, -1), 3);
    CHECK_EQ_INT(gb_msg_find_name(&p->msg, p->buf, "X-Unknown", 9, -1), -1);
    release(p);
}

static void test_seed_401(void)
{
    parsed *p = parse_str(SEED_401, 0);
    CHECK_EQ_INT(p->rc, GB_OK);
    CHECK_EQ_INT(p->msg.kind, GB_RESPONSE);
    CHECK_EQ_INT(p->msg.status, 401);
    CHECK_SPAN(p, p->msg.reason, "Unauthorized");
    /* In a response, method is the CSeq method. */
    CHECK_SPAN(p, p->msg.method, "REGISTER");
    CHECK_EQ_INT(p->msg.method_id, GB_METHOD_REGISTER);
    CHECK_EQ_INT(p->msg.cseq, 1);
    CHECK_EQ_INT(p->msg.nheaders, 7);
    CHECK_EQ_INT(p->msg.max_forwards, -1);
    CHECK_EQ_INT(p->msg.expires, -1);
    CHECK_HDR(p, GB_HDR_WWW_AUTHENTICATE, "Digest realm=\"3402000000\",nonce=\"324cab6e557268e0\"");
    CHECK_HDR(p, GB_HDR_TO, "<sip:34020000001320000001@192.168.10.177>;"
                            "tag=66081813_53173353_54026835-98f6-4d1e-b562-0d969636b944");
    CHECK_EQ_INT(p->msg.length, p->len);
    release(p);
}

static void test_seed_register_with_credentials(void)
{
    parsed *p = parse_str(SEED_REGISTER2, 0);
    CHECK_EQ_INT(p->rc, GB_OK);
    CHECK_EQ_INT(p->msg.cseq, 2);
    CHECK_HDR(p, GB_HDR_AUTHORIZATION,
              "Digest username=\"34020000001320000001\",realm=\"3402000000\","
              "nonce=\"324cab6e557268e0\",uri=\"sip:192.168.10.177:5060\","
              "response=\"7f536c8ce38593239f9130e37a72276e\",algorithm=MD5");
    CHECK_EQ_INT(p->msg.headers[6].id, GB_HDR_AUTHORIZATION);
    release(p);
}

static void test_seed_200(void)
{
    parsed *p = parse_str(SEED_200, 0);
    CHECK_EQ_INT(p->rc, GB_OK);
    CHECK_EQ_INT(p->msg.status, 200);
    CHECK_SPAN(p, p->msg.reason, "OK");
    CHECK_EQ_INT(p->msg.expires, 3600);
    CHECK_HDR(p, GB_HDR_DATE, "2013-06-26T16:08:37.164");
    CHECK_EQ_INT(p->msg.nheaders, 9);
    release(p);
}

static void test_keepalive_body(void)
{
    parsed *p = parse_str(KEEPALIVE, 0);
    CHECK_EQ_INT(p->rc, GB_OK);
    CHECK_EQ_INT(p->msg.method_id, GB_METHOD_MESSAGE);
    CHECK_EQ_INT(p->msg.content_length, 137);
    CHECK_EQ_INT(p->msg.body.len, 137);
    CHECK(memcmp(p->buf + p->msg.body.off, "<?xml", 5) == 0);
    CHECK_EQ_INT(p->msg.length, p->len);
    CHECK_HDR(p, GB_HDR_CONTENT_TYPE, "Application/MANSCDP+xml");
    release(p);
}

/* RFC 3261 §7.3.3 compact forms and §7.3.1 case-insensitive names. */
static void test_compact_forms_and_case(void)
{
    parsed *p = parse_str(
        "MESSAGE sip:a@b SIP/2.0\r\n"
        "v: SIP/2.0/UDP h;branch=z9hG4bK2\r\n"
        "f: <sip:x@y>;tag=1\r\n"
        "T: <sip:a@b>\r\n"
        "i: abc@h\r\n"
        "cseq: 3 MESSAGE\r\n"
        "m: <sip:x@h>\r\n"
        "c: text/plain\r\n"
        "e: gzip\r\n"
        "k: path\r\n"
        "s: hello\r\n"
        "o: presence\r\n"
        "MAX-FORWARDS: 10\r\n"
        "l: 2\r\n"
        "\r\n"
        "hi",
        0);
    CHECK_EQ_INT(p->rc, GB_OK);
    static const gb_header_id want[] = {
        GB_HDR_VIA, GB_HDR_FROM, GB_HDR_TO, GB_HDR_CALL_ID, GB_HDR_CSEQ,
        GB_HDR_CONTACT, GB_HDR_CONTENT_TYPE, GB_HDR_CONTENT_ENCODING,
        GB_HDR_SUPPORTED, GB_HDR_SUBJECT, GB_HDR_EVENT, GB_HDR_MAX_FORWARDS,
        GB_HDR_CONTENT_LENGTH,
    };
    CHECK_EQ_INT(p->msg.nheaders, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]) && i < p->msg.nheaders; i++)
        CHECK_EQ_INT(p->msg.headers[i].id, want[i]);
    CHECK_EQ_INT(p->msg.content_length, 2);
    CHECK_EQ_INT(p->msg.max_forwards, 10);
    CHECK_SPAN(p, p->msg.body, "hi");
    CHECK_EQ_INT(gb_msg_find_name(&p->msg, p->buf, "Call-ID", 7, -1), 3);
    CHECK_EQ_INT(gb_msg_find_name(&p->msg, p->buf, "CALL-id", 7, -1), 3);
    release(p);

    CHECK_EQ_INT(gb_header_lookup("VIA", 3), GB_HDR_VIA);
    CHECK_EQ_INT(gb_header_lookup("www-Authenticate", 16), GB_HDR_WWW_AUTHENTICATE);
    CHECK_EQ_INT(gb_header_lookup("X-GB-Ver", 8), GB_HDR_X_GB_VER);
    CHECK_EQ_INT(gb_header_lookup("X-Other", 7), GB_HDR_OTHER);
    CHECK(strcmp(gb_header_canonical_name(GB_HDR_CALL_ID), "Call-ID") == 0);
    CHECK(strcmp(gb_header_canonical_name(GB_HDR_CSEQ), "CSeq") == 0);
    /* Methods are case-sensitive (RFC 3261 §7.1). */
    CHECK_EQ_INT(gb_method_lookup("REGISTER", 8), GB_METHOD_REGISTER);
    CHECK_EQ_INT(gb_method_lookup("register", 8), GB_METHOD_OTHER);
    CHECK(strcmp(gb_method_name(GB_METHOD_INVITE), "INVITE") == 0);
}

/* RFC 3261 §7.3.1: a line starting with whitespace continues the header;
 * whitespace around the colon is allowed. */
static void test_folding_and_spacing(void)
{
    parsed *p = parse_str(
        "OPTIONS sip:a@b SIP/2.0\r\n"
        "Via: SIP/2.0/UDP h;branch=z9hG4bK3\r\n"
        "From   :   <sip:x@y>;tag=1  \r\n"
        "To:\t<sip:a@b>\r\n"
        "Call-ID: f1\r\n"
        "CSeq: 1\r\n"
        "  OPTIONS\r\n"
        "Subject: first\r\n"
        " \t second\r\n"
        "\tthird\r\n"
        "Content-Length: 0\r\n"
        "\r\n",
        0);
    CHECK_EQ_INT(p->rc, GB_OK);
    CHECK_HDR(p, GB_HDR_FROM, "<sip:x@y>;tag=1");
    CHECK_HDR(p, GB_HDR_TO, "<sip:a@b>");
    CHECK_EQ_INT(p->msg.cseq, 1);
    int cs = gb_msg_find(&p->msg, GB_HDR_CSEQ, 0);
    CHECK(cs >= 0 && p->msg.headers[cs].folded);
    int s = gb_msg_find(&p->msg, GB_HDR_SUBJECT, 0);
    CHECK(s >= 0);
    if (s >= 0) {
        gb_header *h = &p->msg.headers[s];
        CHECK_EQ_INT(h->folded, 1);
        CHECK_EQ_INT(h->line, 8);
        char out[64];
        CHECK(h->value.len <= sizeof(out));
        size_t n = gb_unfold(p->buf, h->value, out);
        CHECK_MEM(out, n, "first second third");
    }
    /* Content-Length follows the folded Subject: line numbers count the
     * continuation lines. */
    int cl = gb_msg_find(&p->msg, GB_HDR_CONTENT_LENGTH, 0);
    CHECK(cl >= 0 && p->msg.headers[cl].line == 11);
    release(p);
}

/* RFC 3261 §7.3.1: Via, Contact and others may repeat, as separate lines or
 * comma-separated values; both count against the Via limit. */
static void test_repeated_headers(void)
{
    parsed *p = parse_str(
        "INVITE sip:a@b SIP/2.0\r\n"
        "Via: SIP/2.0/UDP p1;branch=z9hG4bK1, SIP/2.0/UDP p2;branch=z9hG4bK2\r\n"
        "Via: SIP/2.0/UDP p3;branch=z9hG4bK3\r\n"
        "From: <sip:x@y>;tag=1\r\n"
        "To: <sip:a@b>\r\n"
        "Call-ID: r1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: \"A, B\" <sip:x@h>, <sip:y@h;p=1,2>\r\n"
        "Content-Length: 0\r\n"
        "\r\n",
        0);
    CHECK_EQ_INT(p->rc, GB_OK);
    CHECK_EQ_INT(gb_msg_find(&p->msg, GB_HDR_VIA, 0), 0);
    CHECK_EQ_INT(gb_msg_find(&p->msg, GB_HDR_VIA, 1), 1);
    CHECK_EQ_INT(gb_msg_find(&p->msg, GB_HDR_VIA, 2), -1);
    release(p);

    gb_limits lim;
    gb_limits_default(&lim);
    lim.max_vias = 2;
    const char *three_vias =
        "INVITE sip:a@b SIP/2.0\r\n"
        "Via: SIP/2.0/UDP p1;branch=z9hG4bK1, SIP/2.0/UDP p2;branch=z9hG4bK2\r\n"
        "Via: SIP/2.0/UDP p3;branch=z9hG4bK3\r\n"
        "From: <sip:x@y>;tag=1\r\n"
        "To: <sip:a@b>\r\n"
        "Call-ID: r1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Content-Length: 0\r\n"
        "\r\n";
    p = parse_with(three_vias, strlen(three_vias), 0, &lim);
    CHECK_EQ_INT(p->rc, GB_ERR_TOO_MANY_VIAS);
    CHECK_EQ_INT(p->err.status, 513);
    CHECK_EQ_INT(p->err.line, 3);
    CHECK_EQ_INT(p->err.header, GB_HDR_VIA);
    release(p);

    /* Commas inside quotes and <...> do not split Contact values. */
    gb_limits_default(&lim);
    lim.max_contacts = 2;
    const char *contacts =
        "REGISTER sip:b SIP/2.0\r\n"
        "Via: SIP/2.0/UDP p1;branch=z9hG4bK1\r\n"
        "From: <sip:x@y>;tag=1\r\n"
        "To: <sip:x@y>\r\n"
        "Call-ID: r2\r\n"
        "CSeq: 1 REGISTER\r\n"
        "Contact: \"A, B, C\" <sip:x@h;a=1,2>, <sip:y@h>\r\n"
        "Content-Length: 0\r\n"
        "\r\n";
    p = parse_with(contacts, strlen(contacts), 0, &lim);
    CHECK_EQ_INT(p->rc, GB_OK);
    release(p);
    lim.max_contacts = 1;
    p = parse_with(contacts, strlen(contacts), 0, &lim);
    CHECK_EQ_INT(p->rc, GB_ERR_TOO_MANY_CONTACTS);
    CHECK_EQ_INT(p->err.status, 513);
    CHECK_EQ_INT(p->err.line, 7);
    release(p);
}

/* Explicit limits: each gives its own error and status, never a crash. */
static void test_limits(void)
{
    gb_limits lim;
    size_t n = strlen(SEED_REGISTER1);

    gb_limits_default(&lim);
    CHECK_EQ_INT(lim.max_message, 65536);
    CHECK_EQ_INT(lim.max_headers, 128);
    CHECK_EQ_INT(lim.max_line, 8192);
    CHECK_EQ_INT(lim.max_vias, 70);
    CHECK_EQ_INT(lim.max_contacts, 32);
    CHECK_EQ_INT(lim.lenient, 0);

    lim.max_message = (uint32_t)n - 1;
    parsed *p = parse_with(SEED_REGISTER1, n, 0, &lim);
    CHECK_EQ_INT(p->rc, GB_ERR_TOO_LARGE);
    CHECK_EQ_INT(p->err.status, 513);
    release(p);
    /* Stream mode: a message that cannot fit is refused, not waited for. */
    p = parse_with(SEED_REGISTER1, n, 1, &lim);
    CHECK_EQ_INT(p->rc, GB_ERR_TOO_LARGE);
    release(p);
    lim.max_message = (uint32_t)n;
    p = parse_with(SEED_REGISTER1, n, 0, &lim);
    CHECK_EQ_INT(p->rc, GB_OK);
    release(p);

    gb_limits_default(&lim);
    lim.max_headers = 10;
    p = parse_with(SEED_REGISTER1, n, 0, &lim);
    CHECK_EQ_INT(p->rc, GB_ERR_TOO_MANY_HEADERS);
    CHECK_EQ_INT(p->err.status, 513);
    CHECK_EQ_INT(p->err.line, 12);
    release(p);

    /* The caller's header array bounds the count too. */
    {
        gb_header few[4];
        gb_msg m;
        gb_error err;
        char *buf = dup_exact(SEED_REGISTER1, n);
        gb_msg_init(&m, few, 4);
        CHECK_EQ_INT(gb_parse(buf, n, 0, NULL, &m, &err), GB_ERR_TOO_MANY_HEADERS);
        CHECK_EQ_INT(err.line, 6);
        free(buf);
    }

    gb_limits_default(&lim);
    lim.max_line = 60;   /* the Via line is 100 bytes */
    p = parse_with(SEED_REGISTER1, n, 0, &lim);
    CHECK_EQ_INT(p->rc, GB_ERR_LINE_TOO_LONG);
    CHECK_EQ_INT(p->err.status, 513);
    CHECK_EQ_INT(p->err.line, 2);
    release(p);
    /* Folded continuations count toward the line limit. */
    lim.max_line = 30;
    const char *folded =
        "OPTIONS sip:a@b SIP/2.0\r\n"
        "Subject: aaaaaaaaaa\r\n"
        " bbbbbbbbbbbbbbbbbbbbbbb\r\n"
        "\r\n";
    p = parse_with(folded, strlen(folded), 0, &lim);
    CHECK_EQ_INT(p->rc, GB_ERR_LINE_TOO_LONG);
    CHECK_EQ_INT(p->err.line, 2);
    release(p);
    /* A stream that never ends a line is refused once past max_line. */
    {
        char big[200];
        memset(big, 'a', sizeof(big));
        memcpy(big, "OPTIONS sip:", 12);
        lim.max_line = 100;
        p = parse_with(big, sizeof(big), 1, &lim);
        CHECK_EQ_INT(p->rc, GB_ERR_LINE_TOO_LONG);
        release(p);
    }

    /* Content-Length larger than the message limit: 513, not a wait. */
    gb_limits_default(&lim);
    const char *huge =
        "MESSAGE sip:a@b SIP/2.0\r\n"
        "Via: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
        "From: <sip:x@y>;tag=1\r\n"
        "To: <sip:a@b>\r\n"
        "Call-ID: big\r\n"
        "CSeq: 1 MESSAGE\r\n"
        "Content-Length: 1000000\r\n"
        "\r\n";
    p = parse_with(huge, strlen(huge), 1, &lim);
    CHECK_EQ_INT(p->rc, GB_ERR_TOO_LARGE);
    CHECK_EQ_INT(p->err.status, 513);
    release(p);
}

/* RFC 3261 §18.3 and §7.5: stream framing and keep-alives. */
static void test_stream_framing(void)
{
    size_t n = strlen(SEED_REGISTER1), kn = strlen(KEEPALIVE);
    size_t skip, msglen;
    gb_error err;

    /* Two messages back to back after a CRLF CRLF ping. */
    size_t total = 4 + n + kn;
    char *two = malloc(total);
    memcpy(two, "\r\n\r\n", 4);
    memcpy(two + 4, SEED_REGISTER1, n);
    memcpy(two + 4 + n, KEEPALIVE, kn);

    CHECK_EQ_INT(gb_frame(two, total, NULL, &skip, &msglen, &err), GB_OK);
    CHECK_EQ_INT(skip, 4);
    CHECK_EQ_INT(msglen, n);
    CHECK_EQ_INT(gb_frame(two + 4 + n, kn, NULL, &skip, &msglen, &err), GB_OK);
    CHECK_EQ_INT(skip, 0);
    CHECK_EQ_INT(msglen, kn);

    gb_header hs[MAXH];
    gb_msg m;
    gb_msg_init(&m, hs, MAXH);
    CHECK_EQ_INT(gb_parse(two, total, 1, NULL, &m, &err), GB_OK);
    /* length counts the skipped keep-alive bytes. */
    CHECK_EQ_INT(m.length, 4 + n);
    CHECK_EQ_INT(m.start_line.off, 4);
    CHECK_EQ_INT(m.method_id, GB_METHOD_REGISTER);
    size_t used = m.length;
    gb_msg_init(&m, hs, MAXH);
    CHECK_EQ_INT(gb_parse(two + used, total - used, 1, NULL, &m, &err), GB_OK);
    CHECK_EQ_INT(m.length, kn);
    CHECK_EQ_INT(m.body.len, 137);
    free(two);

    /* Pings alone: need more, and say how much to drop. */
    char *pings = dup_exact("\r\n\r\n\r\n", 6);
    CHECK_EQ_INT(gb_frame(pings, 6, NULL, &skip, &msglen, &err), GB_ERR_NEED_MORE);
    CHECK_EQ_INT(skip, 6);
    gb_msg_init(&m, hs, MAXH);
    CHECK_EQ_INT(gb_parse(pings, 6, 1, NULL, &m, &err), GB_ERR_NEED_MORE);
    CHECK_EQ_INT(gb_parse(pings, 6, 0, NULL, &m, &err), GB_ERR_EMPTY);
    free(pings);

    /* Body split across reads: need more until the last byte arrives. */
    for (size_t cut = kn - 137; cut < kn; cut += 13) {
        char *part = dup_exact(KEEPALIVE, cut);
        CHECK_EQ_INT(gb_frame(part, cut, NULL, &skip, &msglen, &err), GB_ERR_NEED_MORE);
        free(part);
    }

    /* Stream mode requires Content-Length unless told otherwise. */
    const char *nocl =
        "OPTIONS sip:a@b SIP/2.0\r\n"
        "Via: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
        "From: <sip:x@y>;tag=1\r\n"
        "To: <sip:a@b>\r\n"
        "Call-ID: nocl\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "\r\n";
    parsed *p = parse_str(nocl, 1);
    CHECK_EQ_INT(p->rc, GB_ERR_CONTENT_LENGTH);
    CHECK_EQ_INT(p->err.status, 400);
    CHECK_EQ_INT(p->err.header, GB_HDR_CONTENT_LENGTH);
    release(p);
    gb_limits lim;
    gb_limits_default(&lim);
    lim.lenient = GB_LENIENT_STREAM_NO_CONTENT_LENGTH;
    p = parse_with(nocl, strlen(nocl), 1, &lim);
    CHECK_EQ_INT(p->rc, GB_OK);
    CHECK_EQ_INT(p->msg.body.len, 0);
    CHECK_EQ_INT(p->msg.length, p->len);
    release(p);
    /* Datagram: no Content-Length means the rest of the datagram. */
    p = parse_str("MESSAGE sip:a@b SIP/2.0\r\n"
                  "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                  "From: <sip:x@y>;tag=1\r\n"
                  "To: <sip:a@b>\r\n"
                  "Call-ID: dg\r\n"
                  "CSeq: 1 MESSAGE\r\n"
                  "\r\n"
                  "body bytes", 0);
    CHECK_EQ_INT(p->rc, GB_OK);
    CHECK_SPAN(p, p->msg.body, "body bytes");
    release(p);
}

/* RFC 3261 §18.3: bytes past Content-Length in a datagram are dropped;
 * too few is an error. */
static void test_datagram_content_length(void)
{
    const char *extra =
        "MESSAGE sip:a@b SIP/2.0\r\n"
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        "From: <sip:x@y>;tag=1\r\n"
        "To: <sip:a@b>\r\n"
        "Call-ID: cl\r\n"
        "CSeq: 1 MESSAGE\r\n"
        "Content-Length: 4\r\n"
        "\r\n"
        "bodyJUNK";
    parsed *p = parse_str(extra, 0);
    CHECK_EQ_INT(p->rc, GB_OK);
    CHECK_SPAN(p, p->msg.body, "body");
    CHECK_EQ_INT(p->msg.length, p->len - 4);
    release(p);

    const char *short_body =
        "MESSAGE sip:a@b SIP/2.0\r\n"
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        "From: <sip:x@y>;tag=1\r\n"
        "To: <sip:a@b>\r\n"
        "Call-ID: cl\r\n"
        "CSeq: 1 MESSAGE\r\n"
        "Content-Length: 40\r\n"
        "\r\n"
        "body";
    p = parse_str(short_body, 0);
    CHECK_EQ_INT(p->rc, GB_ERR_CONTENT_LENGTH_MISMATCH);
    CHECK_EQ_INT(p->err.status, 400);
    CHECK_EQ_INT(p->err.line, 7);
    CHECK_EQ_INT(p->err.header, GB_HDR_CONTENT_LENGTH);
    release(p);
}

/* Parse text and expect code, status and line; offset points at what. */
static void expect_error(const char *text, int stream, gb_error_code code,
                         unsigned status, unsigned line, const char *at)
{
    parsed *p = parse_str(text, stream);
    CHECK_EQ_INT(p->rc, code);
    CHECK_EQ_INT(p->err.code, code);
    CHECK_EQ_INT(p->err.status, status);
    CHECK_EQ_INT(p->err.line, line);
    CHECK(p->err.reason != NULL && p->err.reason[0] != '\0');
    CHECK(p->err.offset <= p->len);
    if (at) {
        const char *where = strstr(text, at);
        CHECK(where != NULL);
        if (where)
            CHECK_EQ_INT(p->err.offset, where - text);
    }
    if (p->rc == code)
        ; /* fine */
    else
        fprintf(stderr, "  input: %.60s...\n", text);
    release(p);
}

#define HDRS_OK                                         \
    "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"            \
    "From: <sip:x@y>;tag=1\r\n"                         \
    "To: <sip:a@b>\r\n"                                 \
    "Call-ID: e1\r\n"

static void test_errors_say_what_and_where(void)
{
    /* RFC 3261 §8.1.1.5 / RFC 4475 §3.1.2.x: CSeq method must match. */
    expect_error("REGISTER sip:b SIP/2.0\r\n" HDRS_OK
                 "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
                 0, GB_ERR_CSEQ_METHOD, 400, 6, "INVITE\r\n");
    /* RFC 3261 §21.5.6 / RFC 4475 §3.1.2.16: unknown version gets 505. */
    expect_error("OPTIONS sip:b SIP/7.0\r\n" HDRS_OK
                 "CSeq: 1 OPTIONS\r\n\r\n",
                 0, GB_ERR_VERSION_UNSUPPORTED, 505, 1, "SIP/7.0");
    expect_error("OPTIONS sip:b SIPX/2.0\r\n" HDRS_OK
                 "CSeq: 1 OPTIONS\r\n\r\n",
                 0, GB_ERR_VERSION, 400, 1, NULL);
    /* RFC 4475 §3.1.2.5: <...> around the Request-URI. */
    expect_error("OPTIONS <sip:b> SIP/2.0\r\n" HDRS_OK
                 "CSeq: 1 OPTIONS\r\n\r\n",
                 0, GB_ERR_REQUEST_URI, 400, 1, "<sip:b>");
    expect_error("SIP/2.0 2000 OK\r\n" HDRS_OK
                 "CSeq: 1 OPTIONS\r\n\r\n",
                 0, GB_ERR_STATUS_CODE, 400, 1, NULL);
    expect_error("OPTIONS sip:b SIP/2.0\r\n" HDRS_OK
                 "CSeq: 1 OPTIONS\r\nBroken header\r\n\r\n",
                 0, GB_ERR_HEADER_COLON, 400, 7, NULL);
    expect_error("OPTIONS sip:b SIP/2.0\r\n" HDRS_OK
                 "CSeq: 1 OPTIONS\r\n: novalue\r\n\r\n",
                 0, GB_ERR_HEADER_NAME, 400, 7, ": novalue");
    expect_error("OPTIONS sip:b SIP/2.0\r\n continued\r\n" HDRS_OK
                 "CSeq: 1 OPTIONS\r\n\r\n",
                 0, GB_ERR_FOLDING, 400, 2, " continued");
    expect_error("OPTIONS sip:b SIP/2.0\r\n" HDRS_OK
                 "CSeq: 1 OPTIONS\r\nContent-Length: ten\r\n\r\n",
                 0, GB_ERR_CONTENT_LENGTH, 400, 7, NULL);
    expect_error("OPTIONS sip:b SIP/2.0\r\n" HDRS_OK
                 "CSeq: 1 OPTIONS\r\nMax-Forwards: 256\r\n\r\n",
                 0, GB_ERR_MAX_FORWARDS, 400, 7, NULL);
    expect_error("OPTIONS sip:b SIP/2.0\r\n" HDRS_OK
                 "CSeq: 1 OPTIONS\r\nExpires: -1\r\n\r\n",
                 0, GB_ERR_EXPIRES, 400, 7, NULL);
    /* RFC 4475 §3.1.2.x: CSeq number beyond 2**31-1. */
    expect_error("OPTIONS sip:b SIP/2.0\r\n" HDRS_OK
                 "CSeq: 36893488147419103232 OPTIONS\r\n\r\n",
                 0, GB_ERR_CSEQ, 400, 6, NULL);
    expect_error("OPTIONS sip:b SIP/2.0\r\n" HDRS_OK
                 "Call-ID: other\r\nCSeq: 1 OPTIONS\r\n\r\n",
                 0, GB_ERR_DUPLICATE_HEADER, 400, 6, "Call-ID: other");
    /* RFC 3261 §8.1.1: Call-ID is mandatory in a request. */
    expect_error("OPTIONS sip:b SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                 "From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\n"
                 "CSeq: 1 OPTIONS\r\n\r\n",
                 0, GB_ERR_MISSING_HEADER, 400, 0, NULL);
    /* Bare LF where CRLF is required. */
    expect_error("OPTIONS sip:b SIP/2.0\r\n" HDRS_OK
                 "CSeq: 1 OPTIONS\n\r\n",
                 0, GB_ERR_LINE_ENDING, 400, 6, NULL);
    expect_error("", 0, GB_ERR_EMPTY, 400, 0, NULL);
    expect_error("\r\n\r\n", 0, GB_ERR_EMPTY, 400, 0, NULL);
    expect_error("OPTIONS sip:b SIP/2.0\r\n" HDRS_OK "CSeq: 1 OPTIONS\r\n",
                 0, GB_ERR_NO_HEADERS_END, 400, 7, NULL);

    /* The missing header is named. */
    parsed *p = parse_str("OPTIONS sip:b SIP/2.0\r\n"
                          "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                          "From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\n"
                          "CSeq: 1 OPTIONS\r\n\r\n", 0);
    CHECK_EQ_INT(p->err.header, GB_HDR_CALL_ID);
    release(p);
    /* Errors in a stream carry offsets from the start of the buffer. */
    p = parse_str("\r\n\r\nOPTIONS sip:b SIP/7.0\r\n" HDRS_OK
                  "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", 1);
    CHECK_EQ_INT(p->rc, GB_ERR_VERSION_UNSUPPORTED);
    CHECK_EQ_INT(p->err.offset, 4 + 14);
    release(p);

    CHECK_EQ_INT(gb_error_status(GB_ERR_VERSION_UNSUPPORTED), 505);
    CHECK_EQ_INT(gb_error_status(GB_ERR_TOO_LARGE), 513);
    CHECK_EQ_INT(gb_error_status(GB_ERR_CSEQ), 400);
    for (int code = 0; code < GB_ERR__COUNT; code++) {
        const char *t = gb_error_text((gb_error_code)code);
        CHECK(t != NULL && t[0] != '\0');
    }
    CHECK(strcmp(gb_status_phrase(401), "Unauthorized") == 0);
    CHECK(strcmp(gb_status_phrase(423), "Interval Too Brief") == 0);
    CHECK(strcmp(gb_status_phrase(299), "Unknown") == 0);
}

/* Named tolerances accept what strict mode refuses. */
static void test_lenient_flags(void)
{
    const char *lf_only =
        "OPTIONS sip:b SIP/2.0\n"
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1\n"
        "From: <sip:x@y>;tag=1\n"
        "To: <sip:a@b>\n"
        "Call-ID: lf\n"
        "CSeq: 1 OPTIONS\n"
        "Content-Length: 0\n"
        "\n";
    gb_limits lim;
    gb_limits_default(&lim);
    parsed *p = parse_with(lf_only, strlen(lf_only), 0, &lim);
    CHECK_EQ_INT(p->rc, GB_ERR_LINE_ENDING);
    CHECK_EQ_INT(p->err.line, 1);
    release(p);
    lim.lenient = GB_LENIENT_LF_ONLY;
    p = parse_with(lf_only, strlen(lf_only), 0, &lim);
    CHECK_EQ_INT(p->rc, GB_OK);
    CHECK_HDR(p, GB_HDR_CALL_ID, "lf");
    CHECK_EQ_INT(p->msg.length, p->len);
    release(p);

    const char *mismatch = "REGISTER sip:b SIP/2.0\r\n" HDRS_OK
                           "CSeq: 1 INVITE\r\n\r\n";
    lim.lenient = GB_LENIENT_CSEQ_METHOD;
    p = parse_with(mismatch, strlen(mismatch), 0, &lim);
    CHECK_EQ_INT(p->rc, GB_OK);
    release(p);

    const char *bare = "OPTIONS sip:b SIP/2.0\r\n\r\n";
    lim.lenient = GB_LENIENT_MISSING_HEADERS;
    p = parse_with(bare, strlen(bare), 0, &lim);
    CHECK_EQ_INT(p->rc, GB_OK);
    CHECK_EQ_INT(p->msg.nheaders, 0);
    release(p);

    const char *v3 = "OPTIONS sip:b SIP/3.0\r\n" HDRS_OK "CSeq: 1 OPTIONS\r\n\r\n";
    lim.lenient = GB_LENIENT_VERSION;
    p = parse_with(v3, strlen(v3), 0, &lim);
    CHECK_EQ_INT(p->rc, GB_OK);
    release(p);
}

/* picohttpparser's ladder: every prefix of a valid message is "need more"
 * in stream mode and an error in datagram mode; never a crash or a read
 * past the prefix (exact-size buffers, so ASan would see one). */
static void truncation_ladder(const char *text)
{
    size_t n = strlen(text);
    int stream_bad = 0, dgram_bad = 0;
    for (size_t cut = 0; cut <= n; cut++) {
        char *buf = dup_exact(text, cut);
        gb_header hs[MAXH];
        gb_msg m;
        gb_error err;
        gb_msg_init(&m, hs, MAXH);
        gb_error_code s = gb_parse(buf, cut, 1, NULL, &m, &err);
        gb_msg_init(&m, hs, MAXH);
        gb_error_code d = gb_parse(buf, cut, 0, NULL, &m, &err);
        if (cut == n) {
            CHECK_EQ_INT(s, GB_OK);
            CHECK_EQ_INT(d, GB_OK);
        } else {
            if (s != GB_ERR_NEED_MORE && !stream_bad++)
                fprintf(stderr, "  stream prefix %zu/%zu: code %d\n", cut, n, (int)s);
            if ((d == GB_OK || d == GB_ERR_NEED_MORE) && !dgram_bad++)
                fprintf(stderr, "  datagram prefix %zu/%zu: code %d\n", cut, n, (int)d);
            if (d != GB_OK)
                CHECK(err.offset <= cut);
        }
        size_t skip, msglen;
        gb_error_code f = gb_frame(buf, cut, NULL, &skip, &msglen, &err);
        CHECK(cut == n ? (f == GB_OK && msglen == n) : f == GB_ERR_NEED_MORE);
        free(buf);
    }
    CHECK_EQ_INT(stream_bad, 0);
    CHECK_EQ_INT(dgram_bad, 0);
}

static void test_truncation_ladder(void)
{
    truncation_ladder(SEED_REGISTER1);
    truncation_ladder(SEED_401);
    truncation_ladder(SEED_REGISTER2);
    truncation_ladder(SEED_200);
    truncation_ladder(KEEPALIVE);
}

/* Whatever the input, spans stay inside the buffer. */
static void test_spans_inside_buffer(void)
{
    const char *msgs[] = {SEED_REGISTER1, SEED_401, SEED_REGISTER2, SEED_200, KEEPALIVE};
    for (size_t k = 0; k < sizeof(msgs) / sizeof(msgs[0]); k++) {
        parsed *p = parse_str(msgs[k], 0);
        CHECK_EQ_INT(p->rc, GB_OK);
        for (unsigned i = 0; i < p->msg.nheaders; i++) {
            gb_header *h = &p->msg.headers[i];
            CHECK((size_t)h->name.off + h->name.len <= p->len);
            CHECK((size_t)h->value.off + h->value.len <= p->len);
            CHECK(h->name.off < h->value.off);
        }
        CHECK((size_t)p->msg.body.off + p->msg.body.len <= p->len);
        release(p);
    }
}

int main(void)
{
    test_seed_register();
    test_seed_401();
    test_seed_register_with_credentials();
    test_seed_200();
    test_keepalive_body();
    test_compact_forms_and_case();
    test_folding_and_spacing();
    test_repeated_headers();
    test_limits();
    test_stream_framing();
    test_datagram_content_length();
    test_errors_say_what_and_where();
    test_lenient_flags();
    test_truncation_ladder();
    test_spans_inside_buffer();
    return CHECK_DONE("test_sip_parser");
}
