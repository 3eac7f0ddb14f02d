/*
 * test_sip_fields.c - the on-demand value parsers (sip_fields.h) on their
 * own: URIs, name-addr, Via, parameters, lists, dates, unescaping.
 *
 * Each value sits in a malloc'd buffer of exactly its length (no NUL), so
 * the ASan build catches any read past the span given.
 */
#include <stdlib.h>

#include "check.h"
#include "sip_fields.h"

/* One value under test, in its own exact-size buffer. */
typedef struct {
    char *buf;
    gb_span all;
} val;

static val mkval(const char *s)
{
    val v;
    size_t n = strlen(s);
    v.buf = malloc(n ? n : 1);
    if (!v.buf) {
        perror("malloc");
        exit(2);
    }
    if (n)
        memcpy(v.buf, s, n);
    v.all.off = 0;
    v.all.len = (uint32_t)n;
    return v;
}

#define CHECK_SPAN(v, s, lit) CHECK_MEM((v).buf + (s).off, (s).len, lit)

/* ------------------------------------------------------------------ */
/* URIs (RFC 3261 §19.1)                                               */

static void test_uri_seed_forms(void)
{
    gb_uri u;
    gb_error err;
    val v = mkval("sip:34020000001320000001@192.168.10.177");
    CHECK_EQ_INT(gb_parse_uri(v.buf, v.all, &u, &err), GB_OK);
    CHECK_SPAN(v, u.scheme, "sip");
    CHECK(u.is_sip && !u.secure && u.has_user && !u.has_password && !u.ipv6);
    CHECK_SPAN(v, u.user, "34020000001320000001");
    CHECK_SPAN(v, u.host, "192.168.10.177");
    CHECK_EQ_INT(u.port, -1);
    CHECK_EQ_INT(u.params.len, 0);
    CHECK_EQ_INT(u.headers.len, 0);
    free(v.buf);

    v = mkval("sip:192.168.10.177:5060");
    CHECK_EQ_INT(gb_parse_uri(v.buf, v.all, &u, &err), GB_OK);
    CHECK(!u.has_user);
    CHECK_SPAN(v, u.host, "192.168.10.177");
    CHECK_EQ_INT(u.port, 5060);
    free(v.buf);

    v = mkval("sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b");
    CHECK_EQ_INT(gb_parse_uri(v.buf, v.all, &u, &err), GB_OK);
    CHECK_EQ_INT(u.port, 5061);
    CHECK_SPAN(v, u.params, "line=6513f93347c330b");
    free(v.buf);
}

static void test_uri_full_grammar(void)
{
    gb_uri u;
    gb_error err;
    val v = mkval("sips:alice:secr%65t@[2001:db8::1]:5061;transport=tcp;lr;maddr=239.255.255.1"
                  "?subject=project%20x&priority=urgent");
    CHECK_EQ_INT(gb_parse_uri(v.buf, v.all, &u, &err), GB_OK);
    CHECK_SPAN(v, u.scheme, "sips");
    CHECK(u.is_sip && u.secure && u.has_user && u.has_password && u.ipv6);
    CHECK_SPAN(v, u.user, "alice");
    CHECK_SPAN(v, u.password, "secr%65t");
    CHECK_SPAN(v, u.host, "[2001:db8::1]");
    CHECK_EQ_INT(u.port, 5061);
    CHECK_SPAN(v, u.params, "transport=tcp;lr;maddr=239.255.255.1");
    CHECK_SPAN(v, u.headers, "subject=project%20x&priority=urgent");

    gb_param p;
    CHECK(gb_params_find(v.buf, u.params, ';', "LR", 2, &p) == 1);
    CHECK(!p.has_value);
    CHECK(gb_params_find(v.buf, u.params, ';', "transport", 9, &p) == 1);
    CHECK_SPAN(v, p.value, "tcp");
    CHECK(gb_params_find(v.buf, u.params, ';', "ttl", 3, &p) == 0);
    CHECK(gb_params_find(v.buf, u.headers, '&', "priority", 8, &p) == 1);
    CHECK_SPAN(v, p.value, "urgent");

    char out[32];
    long n = gb_unescape(v.buf, u.password, out);
    CHECK_MEM(out, n, "secret");
    free(v.buf);

    /* RFC 4475 §3.1.1.1-style escaped user part and a case-mixed scheme. */
    v = mkval("SIP:%61lice;x=1@Example.COM");
    CHECK_EQ_INT(gb_parse_uri(v.buf, v.all, &u, &err), GB_OK);
    CHECK_SPAN(v, u.user, "%61lice;x=1");
    n = gb_unescape(v.buf, u.user, out);
    CHECK_MEM(out, n, "alice;x=1");
    CHECK_SPAN(v, u.host, "Example.COM");
    free(v.buf);

    /* Other schemes keep an opaque part. */
    v = mkval("tel:+86-10-1234");
    CHECK_EQ_INT(gb_parse_uri(v.buf, v.all, &u, &err), GB_OK);
    CHECK(!u.is_sip);
    CHECK_SPAN(v, u.scheme, "tel");
    CHECK_SPAN(v, u.opaque, "+86-10-1234");
    free(v.buf);
}

static void expect_uri_error(const char *s)
{
    gb_uri u;
    gb_error err;
    memset(&err, 0, sizeof(err));
    val v = mkval(s);
    gb_error_code rc = gb_parse_uri(v.buf, v.all, &u, &err);
    CHECK_EQ_INT(rc, GB_ERR_URI);
    if (rc != GB_ERR_URI)
        fprintf(stderr, "  accepted URI: %s\n", s);
    else
        CHECK(err.offset <= v.all.len && err.reason != NULL);
    free(v.buf);
}

static void test_uri_errors(void)
{
    expect_uri_error("");
    expect_uri_error("sip");
    expect_uri_error("sip:");
    expect_uri_error("sip:@host");
    expect_uri_error("sip:user@");
    expect_uri_error("sip:host:99999");
    expect_uri_error("sip:host:");
    expect_uri_error("sip:[::1");
    expect_uri_error("sip:[]");
    expect_uri_error("sip:us er@host");
    expect_uri_error("sip:user@host;a=\"b\"");
    expect_uri_error("sip:%zzuser@host");
    expect_uri_error("sip:user@host%");
    expect_uri_error("1sip:host");
    expect_uri_error("sip:host>");

    /* The error offset points at the culprit, relative to the buffer. */
    gb_uri u;
    gb_error err;
    val v = mkval("xxxxsip:host:123456");
    gb_span in = {4, v.all.len - 4};
    CHECK_EQ_INT(gb_parse_uri(v.buf, in, &u, &err), GB_ERR_URI);
    CHECK_EQ_INT(err.offset, 13);
    free(v.buf);
}

/* RFC 3986 §3.2.2 (RFC 4291 §2.2, RFC 5954 §3): the IPv6address forms a
 * URI host may take between brackets. */
static void test_uri_ipv6_references_valid(void)
{
    static const char *ok[] = {
        "sip:[::]", "sip:[::1]", "sip:[2001:db8::10]", "sip:[2001:db8::10:5070]",
        "sip:[2001:db8::10]:5070", "sip:[1:2:3:4:5:6:7:8]", "sip:[1:2:3:4:5:6:7::]",
        "sip:[::2:3:4:5:6:7:8]", "sip:[::ffff:192.0.2.2]", "sip:[2001:db8::192.0.2.1]",
        "sip:[1:2:3:4:5:6:192.0.2.1]", "sip:[FEDC:BA98::7654:3210]", "sip:[2001:db8::]",
        "sip:user@[fe80::1]:5060;transport=udp",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        gb_uri u;
        gb_error err;
        val v = mkval(ok[i]);
        int rc = gb_parse_uri(v.buf, v.all, &u, &err);
        if (rc != GB_OK)
            fprintf(stderr, "  refused %s: %s\n", ok[i], err.reason);
        CHECK_EQ_INT(rc, GB_OK);
        CHECK(u.ipv6);
        free(v.buf);
    }
}

/* RFC 5118 §4.10 / RFC 5954: "[2001:db8:::192.0.2.1]" came from a bug in
 * RFC 3261's ABNF; it and other broken IPv6 references are refused with
 * the offset of the fault and a reason. */
static void test_uri_ipv6_references_invalid(void)
{
    static const struct {
        const char *uri;
        uint32_t offset;
        const char *reason;
    } bad[] = {
        {"sip:[2001:db8:::192.0.2.1]", 15, "empty group"},
        {"sip:[2001:db8::1::2]", 16, "more than one"},
        {"sip:[1:2:3:4:5:6:7]", 5, "eight groups"},
        {"sip:[1:2:3:4:5:6:7:8:9]", 5, "eight groups"},
        {"sip:[1:2:3:4:5:6:7:8::]", 5, "too many groups"},
        {"sip:[:1:2:3:4:5:6:7]", 5, "single colon"},
        {"sip:[1:2:3:4:5:6:7:]", 18, "single colon"},
        {"sip:[12345::1]", 5, "more than 4"},
        {"sip:[::1.2.3]", 12, "IPv4"},
        {"sip:[::256.1.1.1]", 7, "IPv4"},
        {"sip:[::01.1.1.1]", 7, "IPv4"},
        {"sip:[::1.2.3.4:5]", 14, "IPv4"},
        {"sip:[1:2:3:4:5:6:7:1.2.3.4]", 5, "eight groups"},
        {"sip:[2001:db8::g]", 15, "malformed IPv6"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        gb_uri u;
        gb_error err;
        val v = mkval(bad[i].uri);
        int rc = gb_parse_uri(v.buf, v.all, &u, &err);
        CHECK_EQ_INT(rc, GB_ERR_URI);
        if (rc == GB_ERR_URI) {
            if (err.offset != bad[i].offset || !strstr(err.reason, bad[i].reason))
                fprintf(stderr, "  %s: offset %u reason %s\n", bad[i].uri,
                        (unsigned)err.offset, err.reason);
            CHECK_EQ_INT(err.offset, bad[i].offset);
            CHECK(strstr(err.reason, bad[i].reason) != NULL);
        }
        free(v.buf);
    }
}

/* The Via sent-by host follows the same grammar (RFC 3261 §20.42). */
static void test_via_ipv6_reference_checked(void)
{
    gb_via via;
    gb_error err;
    val v = mkval("SIP/2.0/UDP [2001:db8:::192.0.2.1]:5060;branch=z9hG4bKx");
    CHECK_EQ_INT(gb_parse_via(v.buf, v.all, &via, &err), GB_ERR_VIA);
    free(v.buf);
    v = mkval("SIP/2.0/UDP [::ffff:192.0.2.10]:19823;branch=z9hG4bKbh19");
    CHECK_EQ_INT(gb_parse_via(v.buf, v.all, &via, &err), GB_OK);
    CHECK_SPAN(v, via.host, "[::ffff:192.0.2.10]");
    CHECK_EQ_INT(via.port, 19823);
    free(v.buf);
}

/* ------------------------------------------------------------------ */
/* name-addr / addr-spec (RFC 3261 §20.10, §25.1)                      */

static void test_name_addr(void)
{
    gb_name_addr na;
    gb_error err;

    val v = mkval("<sip:34020000001320000001@192.168.10.177>;tag=2577708869");
    CHECK_EQ_INT(gb_parse_name_addr(v.buf, v.all, 0, &na, &err), GB_OK);
    CHECK(na.angle && !na.display_quoted && !na.wildcard);
    CHECK_EQ_INT(na.display.len, 0);
    CHECK_SPAN(v, na.uri, "sip:34020000001320000001@192.168.10.177");
    CHECK_SPAN(v, na.params, "tag=2577708869");
    gb_param p;
    CHECK(gb_params_find(v.buf, na.params, ';', "tag", 3, &p) == 1);
    CHECK_SPAN(v, p.value, "2577708869");
    free(v.buf);

    v = mkval("\"Doe, \\\"J\\\" <x>\" <sip:j@d;transport=udp>;tag=a;expires=60");
    CHECK_EQ_INT(gb_parse_name_addr(v.buf, v.all, 0, &na, &err), GB_OK);
    CHECK(na.display_quoted && na.angle);
    CHECK_SPAN(v, na.display, "Doe, \\\"J\\\" <x>");
    char out[64];
    size_t n = gb_unquote(v.buf, na.display, out);
    CHECK_MEM(out, n, "Doe, \"J\" <x>");
    CHECK_SPAN(v, na.uri, "sip:j@d;transport=udp");
    CHECK_SPAN(v, na.params, "tag=a;expires=60");
    free(v.buf);

    /* Token display names, with LWS before '<'. */
    v = mkval("Bob  Smith <sip:b@c>");
    CHECK_EQ_INT(gb_parse_name_addr(v.buf, v.all, 0, &na, &err), GB_OK);
    CHECK(!na.display_quoted);
    CHECK_SPAN(v, na.display, "Bob  Smith");
    CHECK_SPAN(v, na.uri, "sip:b@c");
    free(v.buf);

    /* addr-spec: parameters after the URI belong to the header. */
    v = mkval("sip:x@y;tag=1;q=0.5");
    CHECK_EQ_INT(gb_parse_name_addr(v.buf, v.all, 0, &na, &err), GB_OK);
    CHECK(!na.angle);
    CHECK_SPAN(v, na.uri, "sip:x@y");
    CHECK_SPAN(v, na.params, "tag=1;q=0.5");
    free(v.buf);

    /* Contact: * only where the caller allows it. */
    v = mkval(" * ");
    CHECK_EQ_INT(gb_parse_name_addr(v.buf, v.all, 1, &na, &err), GB_OK);
    CHECK(na.wildcard);
    CHECK_EQ_INT(gb_parse_name_addr(v.buf, v.all, 0, &na, &err), GB_ERR_URI);
    free(v.buf);
}

static void expect_name_addr_error(const char *s)
{
    gb_name_addr na;
    gb_error err;
    val v = mkval(s);
    gb_error_code rc = gb_parse_name_addr(v.buf, v.all, 1, &na, &err);
    CHECK(rc != GB_OK);
    if (rc == GB_OK)
        fprintf(stderr, "  accepted address: %s\n", s);
    else
        CHECK(err.offset <= v.all.len && err.code == rc);
    free(v.buf);
}

static void test_name_addr_errors(void)
{
    expect_name_addr_error("");
    expect_name_addr_error("<sip:x@y");
    expect_name_addr_error("\"unterminated <sip:x@y>");
    expect_name_addr_error("\"name\" sip:x@y");
    expect_name_addr_error("<sip:x@y> junk");
    expect_name_addr_error("<sip:x@y>;");
    expect_name_addr_error("<sip:x@y>;tag=");
    expect_name_addr_error("<>");
    expect_name_addr_error("sip:x@y?h=1");
    expect_name_addr_error("* junk");
}

/* ------------------------------------------------------------------ */
/* Via (RFC 3261 §20.42, RFC 3581)                                     */

static void test_via(void)
{
    gb_via via;
    gb_error err;
    val v = mkval("SIP/2.0/UDP 192.168.10.117:5061;rport=5061;branch=z9hG4bK2509000523;"
                  "received=192.168.10.117");
    CHECK_EQ_INT(gb_parse_via(v.buf, v.all, &via, &err), GB_OK);
    CHECK_SPAN(v, via.protocol, "SIP/2.0");
    CHECK_SPAN(v, via.transport, "UDP");
    CHECK_SPAN(v, via.host, "192.168.10.117");
    CHECK_EQ_INT(via.port, 5061);
    CHECK(via.has_rport && via.has_branch && via.has_received);
    CHECK_EQ_INT(via.rport, 5061);
    CHECK_SPAN(v, via.branch, "z9hG4bK2509000523");
    CHECK_SPAN(v, via.received, "192.168.10.117");
    CHECK_SPAN(v, via.params, "rport=5061;branch=z9hG4bK2509000523;received=192.168.10.117");
    free(v.buf);

    /* rport without a value (RFC 3581 §3), IPv6 sent-by. */
    v = mkval("SIP/2.0/TCP [2001:db8::9]:5060;rport;branch=z9hG4bKx;maddr=10.0.0.1");
    CHECK_EQ_INT(gb_parse_via(v.buf, v.all, &via, &err), GB_OK);
    CHECK_SPAN(v, via.transport, "TCP");
    CHECK_SPAN(v, via.host, "[2001:db8::9]");
    CHECK_EQ_INT(via.port, 5060);
    CHECK(via.has_rport);
    CHECK_EQ_INT(via.rport, 0);
    CHECK(!via.has_received);
    CHECK_SPAN(v, via.maddr, "10.0.0.1");
    free(v.buf);

    /* RFC 4475 §3.1.1.1: LWS around the slashes and before params. */
    v = mkval("SIP / 2.0 / UDP host.example.com ; branch = z9hG4bKy");
    CHECK_EQ_INT(gb_parse_via(v.buf, v.all, &via, &err), GB_OK);
    CHECK_SPAN(v, via.transport, "UDP");
    CHECK_SPAN(v, via.host, "host.example.com");
    CHECK_EQ_INT(via.port, -1);
    CHECK_EQ_INT(via.rport, -1);
    CHECK(!via.has_rport);
    CHECK_SPAN(v, via.branch, "z9hG4bKy");
    free(v.buf);

    static const char *bad[] = {
        "", "SIP/2.0", "SIP/2.0/UDP", "SIP/2.0 host", "SIP/2.0/UDPhost",
        "SIP/2.0/UDP host:99999", "SIP/2.0/UDP host;branch",
        "SIP/2.0/UDP host;rport=x", "SIP/2.0/UDP [::1", "SIP/2.0/UDP host junk",
        "SIP/2.0/UDP host;received",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = mkval(bad[i]);
        gb_error_code rc = gb_parse_via(v.buf, v.all, &via, &err);
        CHECK_EQ_INT(rc, GB_ERR_VIA);
        if (rc != GB_ERR_VIA)
            fprintf(stderr, "  Via: '%s'\n", bad[i]);
        free(v.buf);
    }
}

/* ------------------------------------------------------------------ */
/* Parameters and lists                                                */

static void test_params_iterator(void)
{
    val v = mkval(";rport;branch=z9hG4bK1 ; received=1.2.3.4;x=\"a;b,c\";Q=0.5");
    gb_param_iter it;
    gb_param p;
    gb_error err;
    gb_params_begin(&it, v.buf, v.all, ';');
    CHECK(gb_params_next(&it, &p, &err) == 1);
    CHECK_SPAN(v, p.name, "rport");
    CHECK(!p.has_value);
    CHECK(gb_params_next(&it, &p, &err) == 1);
    CHECK_SPAN(v, p.name, "branch");
    CHECK_SPAN(v, p.value, "z9hG4bK1");
    CHECK(gb_params_next(&it, &p, &err) == 1);
    CHECK_SPAN(v, p.name, "received");
    CHECK_SPAN(v, p.value, "1.2.3.4");
    CHECK(gb_params_next(&it, &p, &err) == 1);
    CHECK_SPAN(v, p.name, "x");
    CHECK(p.quoted);
    CHECK_SPAN(v, p.value, "a;b,c");
    CHECK(gb_params_next(&it, &p, &err) == 1);
    CHECK_SPAN(v, p.value, "0.5");
    CHECK(gb_params_next(&it, &p, &err) == 0);
    CHECK(gb_params_next(&it, &p, &err) == 0);
    /* names match case-insensitively */
    CHECK(gb_params_find(v.buf, v.all, ';', "q", 1, &p) == 1);
    free(v.buf);

    static const char *bad[] = {";;a", "a=", "a=\"open", "=v", "a;", "a b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = mkval(bad[i]);
        gb_params_begin(&it, v.buf, v.all, ';');
        int r;
        while ((r = gb_params_next(&it, &p, &err)) == 1)
            ;
        CHECK_EQ_INT(r, -1);
        if (r == -1)
            CHECK(err.offset <= v.all.len);
        else
            fprintf(stderr, "  params: '%s'\n", bad[i]);
        free(v.buf);
    }
}

static void test_list_iterator(void)
{
    val v = mkval(" <sip:a@b;x=1,2>;q=0.5 ,\"Doe, John\" <sip:c@d> ,\tsip:e@f ");
    gb_list_iter it;
    gb_span item;
    gb_error err;
    gb_list_begin(&it, v.buf, v.all);
    CHECK(gb_list_next(&it, &item, &err) == 1);
    CHECK_SPAN(v, item, "<sip:a@b;x=1,2>;q=0.5");
    CHECK(gb_list_next(&it, &item, &err) == 1);
    CHECK_SPAN(v, item, "\"Doe, John\" <sip:c@d>");
    CHECK(gb_list_next(&it, &item, &err) == 1);
    CHECK_SPAN(v, item, "sip:e@f");
    CHECK(gb_list_next(&it, &item, &err) == 0);
    free(v.buf);

    /* The seed's GB capability hint is a two-item list. */
    v = mkval("Capability, algorithm=\"H:MD5\"");
    gb_list_begin(&it, v.buf, v.all);
    CHECK(gb_list_next(&it, &item, &err) == 1);
    CHECK_SPAN(v, item, "Capability");
    CHECK(gb_list_next(&it, &item, &err) == 1);
    CHECK_SPAN(v, item, "algorithm=\"H:MD5\"");
    CHECK(gb_list_next(&it, &item, &err) == 0);
    free(v.buf);

    static const char *bad[] = {"a,,b", ",a", "a,", "\"open, b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = mkval(bad[i]);
        gb_list_begin(&it, v.buf, v.all);
        int r;
        while ((r = gb_list_next(&it, &item, &err)) == 1)
            ;
        CHECK_EQ_INT(r, -1);
        if (r != -1)
            fprintf(stderr, "  list: '%s'\n", bad[i]);
        free(v.buf);
    }
}

/* ------------------------------------------------------------------ */
/* Date (RFC 3261 §20.17, GB/T 28181 §9.10)                            */

static void test_dates(void)
{
    gb_date d;
    gb_error err;
    val v = mkval("2013-06-26T16:08:37.164");
    CHECK_EQ_INT(gb_parse_date(v.buf, v.all, &d, &err), GB_OK);
    CHECK_EQ_INT(d.format, GB_DATE_GB);
    CHECK(d.year == 2013 && d.month == 6 && d.day == 26);
    CHECK(d.hour == 16 && d.minute == 8 && d.second == 37);
    CHECK(d.has_millisecond && d.millisecond == 164);
    char out[23];
    gb_format_gb_date(&d, out);
    CHECK_MEM(out, sizeof(out), "2013-06-26T16:08:37.164");
    free(v.buf);

    v = mkval("2013-06-26T16:08:37");
    CHECK_EQ_INT(gb_parse_date(v.buf, v.all, &d, &err), GB_OK);
    CHECK(!d.has_millisecond && d.millisecond == 0);
    gb_format_gb_date(&d, out);
    CHECK_MEM(out, sizeof(out), "2013-06-26T16:08:37.000");
    free(v.buf);

    v = mkval("2024-02-29T00:00:00.5");
    CHECK_EQ_INT(gb_parse_date(v.buf, v.all, &d, &err), GB_OK);
    CHECK_EQ_INT(d.millisecond, 500);
    free(v.buf);

    v = mkval("Sat, 13 Nov 2010 23:29:00 GMT");
    CHECK_EQ_INT(gb_parse_date(v.buf, v.all, &d, &err), GB_OK);
    CHECK_EQ_INT(d.format, GB_DATE_RFC1123);
    CHECK(d.year == 2010 && d.month == 11 && d.day == 13);
    CHECK(d.hour == 23 && d.minute == 29 && d.second == 0);
    free(v.buf);

    static const char *bad[] = {
        "", "yesterday", "2013-13-26T16:08:37", "2013-02-30T16:08:37",
        "2023-02-29T00:00:00", "2013-06-26 16:08:37", "2013-06-26T24:00:00",
        "2013-06-26T16:08:37.", "2013-06-26T16:08:37.1234", "2013-06-26T16:08:37Z",
        "Sat, 13 Nov 2010 23:29:00 UTC", "Sat, 13 Foo 2010 23:29:00 GMT",
        "Sat 13 Nov 2010 23:29:00 GMT", "2013-06-26T16:0x:37",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = mkval(bad[i]);
        gb_error_code rc = gb_parse_date(v.buf, v.all, &d, &err);
        CHECK_EQ_INT(rc, GB_ERR_DATE);
        if (rc != GB_ERR_DATE)
            fprintf(stderr, "  date: '%s'\n", bad[i]);
        free(v.buf);
    }
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static void test_helpers(void)
{
    uint64_t x = 0;
    CHECK(gb_parse_uint("65535", 5, 65535, &x) == 0 && x == 65535);
    CHECK(gb_parse_uint("65536", 5, 65535, &x) < 0);
    CHECK(gb_parse_uint("", 0, 10, &x) < 0);
    CHECK(gb_parse_uint("1a", 2, 100, &x) < 0);
    CHECK(gb_parse_uint("18446744073709551615", 20, UINT64_MAX, &x) == 0 &&
          x == UINT64_MAX);
    CHECK(gb_parse_uint("18446744073709551616", 20, UINT64_MAX, &x) < 0);

    val v = mkval("a%2");
    char out[8];
    CHECK(gb_unescape(v.buf, v.all, out) == -1);
    free(v.buf);
    v = mkval("%41%62c");
    long n = gb_unescape(v.buf, v.all, out);
    CHECK_MEM(out, n, "Abc");
    free(v.buf);
    v = mkval("a\\\\b\\\"c");
    size_t m = gb_unquote(v.buf, v.all, out);
    CHECK_MEM(out, m, "a\\b\"c");
    free(v.buf);
}

int main(void)
{
    test_uri_seed_forms();
    test_uri_full_grammar();
    test_uri_errors();
    test_uri_ipv6_references_valid();
    test_uri_ipv6_references_invalid();
    test_via_ipv6_reference_checked();
    test_name_addr();
    test_name_addr_errors();
    test_via();
    test_params_iterator();
    test_list_iterator();
    test_dates();
    test_helpers();
    return CHECK_DONE("test_sip_fields");
}
