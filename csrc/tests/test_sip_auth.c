/*
 * test_sip_auth.c - the auth-header tokenizer (sip_auth.h) on its own.
 * Build: gcc -std=c11 -Wall -Wextra -Werror -Icsrc csrc/tests/test_sip_auth.c
 *        csrc/sip_auth.c -o test_sip_auth
 */
#include "check.h"
#include "sip_auth.h"

static gb_span whole(const char *s)
{
    gb_span sp = {0, (uint32_t)strlen(s)};
    return sp;
}

#define PARAM_IS(buf, a, i, nm, val, q)                                        \
    do {                                                                       \
        CHECK_MEM((buf) + (a).params[i].name.off, (a).params[i].name.len, nm); \
        CHECK_MEM((buf) + (a).params[i].value.off, (a).params[i].value.len, val); \
        CHECK_EQ_INT((a).params[i].quoted != 0, q);                              \
    } while (0)

/* The seed's 401 challenge, as sent. */
static void test_seed_challenge(void)
{
    const char *s = "Digest realm=\"3402000000\",nonce=\"324cab6e557268e0\"";
    gb_auth a;
    gb_error e;
    CHECK_EQ_INT(gb_auth_parse_one(s, whole(s), &a, &e), GB_OK);
    CHECK_MEM(s + a.scheme.off, a.scheme.len, "Digest");
    CHECK_EQ_INT(a.nparams, 2);
    PARAM_IS(s, a, 0, "realm", "3402000000", 1);
    PARAM_IS(s, a, 1, "nonce", "324cab6e557268e0", 1);
    CHECK_EQ_INT(a.whole.len, strlen(s));
}

/* The seed's second REGISTER: unquoted algorithm at the end. */
static void test_seed_credentials(void)
{
    const char *s =
        "Digest username=\"34020000001320000001\",realm=\"3402000000\","
        "nonce=\"324cab6e557268e0\",uri=\"sip:192.168.10.177:5060\","
        "response=\"7f536c8ce38593239f9130e37a72276e\",algorithm=MD5";
    gb_auth a;
    CHECK_EQ_INT(gb_auth_parse_one(s, whole(s), &a, NULL), GB_OK);
    CHECK_EQ_INT(a.nparams, 6);
    PARAM_IS(s, a, 3, "uri", "sip:192.168.10.177:5060", 1);
    PARAM_IS(s, a, 5, "algorithm", "MD5", 0);
    CHECK_EQ_INT(gb_auth_find(s, &a, "ALGORITHM", 9), 5);
    CHECK_EQ_INT(gb_auth_find(s, &a, "qop", 3), -1);
}

/* GB 35114 capability hint in the seed's first REGISTER. */
static void test_capability_hint(void)
{
    const char *s = "Capability, algorithm=\"H:MD5\"";
    gb_auth a;
    CHECK_EQ_INT(gb_auth_parse_one(s, whole(s), &a, NULL), GB_OK);
    CHECK(gb_auth_is_capability(s, &a));
    CHECK_EQ_INT(a.nparams, 1);
    PARAM_IS(s, a, 0, "algorithm", "H:MD5", 1);
    const char *t = "capability algorithm=\"H:MD5\"";
    CHECK_EQ_INT(gb_auth_parse_one(t, whole(t), &a, NULL), GB_OK);
    CHECK(gb_auth_is_capability(t, &a));
    const char *d = "Digest realm=\"x\",nonce=\"y\"";
    CHECK_EQ_INT(gb_auth_parse_one(d, whole(d), &a, NULL), GB_OK);
    CHECK(!gb_auth_is_capability(d, &a));
}

/* Odd spacing, folded lines, any case, unquoted values, any order. */
static void test_spacing_and_case(void)
{
    const char *s = "dIGEST   NONCE = abc ,\r\n\trealm\t=\t\"r\"  ,  uri=sip:1@2;transport=udp ,";
    gb_auth a;
    gb_error e;
    CHECK_EQ_INT(gb_auth_parse_one(s, whole(s), &a, &e), GB_OK);
    CHECK(gb_auth_scheme_is(s, &a, "digest", 6));
    CHECK_EQ_INT(a.nparams, 3);
    PARAM_IS(s, a, 0, "NONCE", "abc", 0);
    PARAM_IS(s, a, 1, "realm", "r", 1);
    PARAM_IS(s, a, 2, "uri", "sip:1@2;transport=udp", 0);
    CHECK_EQ_INT(gb_auth_find(s, &a, "nonce", 5), 0);
}

/* Backslash escapes stay on the wire; gb_auth_value removes them. */
static void test_escapes(void)
{
    const char *s = "Digest username=\"a\\\"b\\\\c\", realm=\"plain\"";
    gb_auth a;
    char out[32];
    CHECK_EQ_INT(gb_auth_parse_one(s, whole(s), &a, NULL), GB_OK);
    CHECK_MEM(s + a.params[0].value.off, a.params[0].value.len, "a\\\"b\\\\c");
    CHECK(gb_auth_value_escaped(s, &a.params[0]));
    CHECK(!gb_auth_value_escaped(s, &a.params[1]));
    long n = gb_auth_value(s, &a.params[0], out, sizeof out);
    CHECK_MEM(out, n, "a\"b\\c");
    CHECK_EQ_INT(gb_auth_value(s, &a.params[0], out, 3), -1);
}

/* Several challenges in one WWW-Authenticate value (RFC 7235 §4.1). */
static void test_several_challenges(void)
{
    const char *s = "Digest realm=\"a\", nonce=\"1\", algorithm=SHA-256, "
                    "Basic realm=\"b\", Digest realm=\"a\",nonce=\"2\","
                    "Negotiate YIIB/zA==, Bearer";
    gb_auth_iter it;
    gb_auth a;
    gb_error e;
    gb_auth_begin(&it, s, whole(s));
    CHECK_EQ_INT(gb_auth_next(&it, &a, &e), 1);
    CHECK_MEM(s + a.scheme.off, a.scheme.len, "Digest");
    CHECK_EQ_INT(a.nparams, 3);
    CHECK_MEM(s + a.whole.off, a.whole.len,
              "Digest realm=\"a\", nonce=\"1\", algorithm=SHA-256");
    CHECK_EQ_INT(gb_auth_next(&it, &a, &e), 1);
    CHECK_MEM(s + a.scheme.off, a.scheme.len, "Basic");
    CHECK_EQ_INT(a.nparams, 1);
    CHECK_EQ_INT(gb_auth_next(&it, &a, &e), 1);
    CHECK_EQ_INT(a.nparams, 2);
    PARAM_IS(s, a, 1, "nonce", "2", 1);
    CHECK_EQ_INT(gb_auth_next(&it, &a, &e), 1);
    CHECK_MEM(s + a.scheme.off, a.scheme.len, "Negotiate");
    CHECK(a.has_token68);
    CHECK_MEM(s + a.token68.off, a.token68.len, "YIIB/zA==");
    CHECK_EQ_INT(gb_auth_next(&it, &a, &e), 1);
    CHECK_MEM(s + a.scheme.off, a.scheme.len, "Bearer");
    CHECK_EQ_INT(a.nparams, 0);
    CHECK_EQ_INT(gb_auth_next(&it, &a, &e), 0);
    /* and gb_auth_parse_one refuses more than one */
    CHECK_EQ_INT(gb_auth_parse_one(s, whole(s), &a, &e), GB_ERR_AUTH);
    CHECK(strstr(e.reason, "more than one") != NULL);
}

/* token68 with trailing '=' and a Basic credential. */
static void test_token68(void)
{
    const char *s = "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==";
    gb_auth a;
    CHECK_EQ_INT(gb_auth_parse_one(s, whole(s), &a, NULL), GB_OK);
    CHECK(a.has_token68);
    CHECK_MEM(s + a.token68.off, a.token68.len, "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    const char *t = "Basic abc=";
    CHECK_EQ_INT(gb_auth_parse_one(t, whole(t), &a, NULL), GB_OK);
    CHECK(a.has_token68);
}

/* Unknown parameters are kept, in order. */
static void test_unknown_params_kept(void)
{
    const char *s = "Digest realm=\"r\",x-gb-ext=\"1\",nonce=n,foo=bar";
    gb_auth a;
    CHECK_EQ_INT(gb_auth_parse_one(s, whole(s), &a, NULL), GB_OK);
    CHECK_EQ_INT(a.nparams, 4);
    PARAM_IS(s, a, 1, "x-gb-ext", "1", 1);
    PARAM_IS(s, a, 3, "foo", "bar", 0);
}

static void expect_error(const char *s, const char *reason_part, uint32_t off)
{
    gb_auth a;
    gb_error e;
    memset(&e, 0, sizeof e);
    gb_error_code c = gb_auth_parse_one(s, whole(s), &a, &e);
    CHECK_EQ_INT(c, GB_ERR_AUTH);
    if (c == GB_ERR_AUTH) {
        CHECK_EQ_INT(e.code, GB_ERR_AUTH);
        CHECK_EQ_INT(e.status, 400);
        CHECK(e.reason != NULL && strstr(e.reason, reason_part) != NULL);
        if (e.reason && !strstr(e.reason, reason_part))
            fprintf(stderr, "  input %s -> reason %s\n", s, e.reason);
        CHECK_EQ_INT(e.offset, off);
    }
}

static void test_errors(void)
{
    expect_error("", "empty", 0);
    expect_error("  , ", "empty", 0);
    expect_error("\"Digest\"", "expected an auth scheme", 0);
    expect_error("Digest realm=\"abc", "unterminated", 17);
    expect_error("Digest realm=\"a\" nonce=\"b\"", "expected ','", 17);
    expect_error("Digest realm=\"a\",nonce=", "without value", 23);
    expect_error("Digest realm=\"a\r\nb\"", "line break", 15);
    expect_error("Digest realm=\"a\",\r\nnonce=1", "bare line break", 17);
    expect_error("Digest realm=\"a\x01\"", "control character", 15);
    expect_error("Digest realm=\"a\\", "unterminated", 16);
    expect_error("Digest\"x\"", "expected ','", 6);
    expect_error("Basic abc def", "expected ',' after token68", 10);
    expect_error("Basic abc=, realm=x", "after token68", 12);
}

/* Fix up: "Digest realm=" is a token68 "realm=" by RFC 7235, not an error. */
static void test_trailing_equals_is_token68(void)
{
    const char *s = "Digest realm=";
    gb_auth a;
    CHECK_EQ_INT(gb_auth_parse_one(s, whole(s), &a, NULL), GB_OK);
    CHECK(a.has_token68);
    CHECK_MEM(s + a.token68.off, a.token68.len, "realm=");
}

static void test_param_bound(void)
{
    char s[2048];
    size_t o = (size_t)snprintf(s, sizeof s, "Digest ");
    for (int i = 0; i < GB_AUTH_MAX_PARAMS; i++)
        o += (size_t)snprintf(s + o, sizeof s - o, "%sp%d=%d", i ? "," : "", i, i);
    gb_auth a;
    gb_error e;
    gb_span sp = {0, (uint32_t)o};
    CHECK_EQ_INT(gb_auth_parse_one(s, sp, &a, &e), GB_OK);
    CHECK_EQ_INT(a.nparams, GB_AUTH_MAX_PARAMS);
    o += (size_t)snprintf(s + o, sizeof s - o, ",one=more");
    sp.len = (uint32_t)o;
    CHECK_EQ_INT(gb_auth_parse_one(s, sp, &a, &e), GB_ERR_AUTH);
    CHECK(strstr(e.reason, "too many") != NULL);
}

/* Spans are relative to buf and never read past the given length. */
static void test_span_inside_buffer(void)
{
    const char *s = "XXXXDigest realm=\"r\",nonce=\"n\"YYYY";
    gb_span sp = {4, (uint32_t)strlen(s) - 8};
    gb_auth a;
    CHECK_EQ_INT(gb_auth_parse_one(s, sp, &a, NULL), GB_OK);
    CHECK_EQ_INT(a.scheme.off, 4);
    PARAM_IS(s, a, 1, "nonce", "n", 1);
    /* cut inside the quoted string: must not run into the Y's */
    gb_span cut = {4, 25};
    gb_error e;
    CHECK_EQ_INT(gb_auth_parse_one(s, cut, &a, &e), GB_ERR_AUTH);
    CHECK_EQ_INT(e.offset, 29);
}

static void test_build(void)
{
    char out[256];
    gb_auth_out p[3] = {
        {"realm", 5, "3402000000", 10, 1},
        {"nonce", 5, "a\"b\\", 4, 1},
        {"algorithm", 9, "MD5", 3, 0},
    };
    long n = gb_auth_build(out, sizeof out, "Digest", 6, p, 3);
    CHECK_MEM(out, n, "Digest realm=\"3402000000\",nonce=\"a\\\"b\\\\\",algorithm=MD5");
    /* snprintf-like: needed length reported, nothing past cap written */
    char small[10];
    memset(small, '#', sizeof small);
    CHECK_EQ_INT(gb_auth_build(small, 6, "Digest", 6, p, 3), n);
    CHECK(small[6] == '#');
    /* round trip through the tokenizer and gb_auth_value */
    gb_auth a;
    gb_span sp = {0, (uint32_t)n};
    CHECK_EQ_INT(gb_auth_parse_one(out, sp, &a, NULL), GB_OK);
    char v[8];
    long vn = gb_auth_value(out, &a.params[1], v, sizeof v);
    CHECK_MEM(v, vn, "a\"b\\");
    /* unrepresentable */
    gb_auth_out bad[1] = {{"x", 1, "a\r\nb", 4, 1}};
    CHECK_EQ_INT(gb_auth_build(out, sizeof out, "Digest", 6, bad, 1), -1);
    gb_auth_out bad2[1] = {{"x", 1, "a b", 3, 0}};
    CHECK_EQ_INT(gb_auth_build(out, sizeof out, "Digest", 6, bad2, 1), -1);
    CHECK_EQ_INT(gb_auth_build(out, sizeof out, "Capability", 10, NULL, 0), 10);
}

int main(void)
{
    test_seed_challenge();
    test_seed_credentials();
    test_capability_hint();
    test_spacing_and_case();
    test_escapes();
    test_several_challenges();
    test_token68();
    test_unknown_params_kept();
    test_errors();
    test_trailing_equals_is_token68();
    test_param_bound();
    test_span_inside_buffer();
    test_build();
    return CHECK_DONE("test_sip_auth");
}
