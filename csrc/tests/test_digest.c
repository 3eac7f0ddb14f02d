/*
 * test_digest.c - Digest (digest.h) on its own: vectors, building, the
 * client answer, nonces, every verification result.
 * Build: gcc -std=c11 -Wall -Wextra -Werror -Icsrc csrc/tests/test_digest.c
 *        csrc/digest.c csrc/sip_auth.c -lcrypto -o test_digest
 */
#include "check.h"
#include "digest.h"

#include <openssl/evp.h>
#include <stdlib.h>

static gb_digest_ctx *ctx;

#define B(s) ((gb_bytes){(s), sizeof(s) - 1})
#define NONE ((gb_bytes){NULL, 0})

static gb_bytes bs(const char *s)
{
    gb_bytes b = {s, strlen(s)};
    return b;
}

static gb_span whole(const char *s)
{
    gb_span sp = {0, (uint32_t)strlen(s)};
    return sp;
}

/* ---- vectors (shared/README.md §2) ---- */

/* GB/T 28181 seed: RFC 2069 style, no qop. */
static void test_seed_vector(void)
{
    gb_digest_input in = {
        .alg = GB_DIGEST_MD5, .qop = GB_QOP_NONE,
        .username = B("34020000001320000001"), .realm = B("3402000000"),
        .password = B("12345678"), .nonce = B("324cab6e557268e0"),
        .method = B("REGISTER"), .uri = B("sip:192.168.10.177:5060"),
    };
    char out[GB_DIGEST_HEX_MAX];
    int n = gb_digest_response(ctx, &in, out, NULL);
    CHECK_MEM(out, n, "7f536c8ce38593239f9130e37a72276e");
    /* the same from a stored HA1 (upper case is accepted) */
    char ha1[GB_DIGEST_HEX_MAX];
    int hn = gb_digest_ha1(ctx, GB_DIGEST_MD5, in.username, in.realm, in.password, ha1);
    CHECK_EQ_INT(hn, 32);
    for (int i = 0; i < hn; i++)
        if (ha1[i] >= 'a')
            ha1[i] = (char)(ha1[i] - 32);
    in.password = NONE;
    in.ha1.p = ha1;
    in.ha1.n = (size_t)hn;
    n = gb_digest_response(ctx, &in, out, NULL);
    CHECK_MEM(out, n, "7f536c8ce38593239f9130e37a72276e");
}

/* RFC 2617 §3.5. */
static void test_rfc2617_vector(void)
{
    gb_digest_input in = {
        .alg = GB_DIGEST_MD5, .qop = GB_QOP_AUTH, .username = B("Mufasa"),
        .realm = B("testrealm@host.com"), .password = B("Circle Of Life"),
        .nonce = B("dcd98b7102dd2f0e8b11d0f600bfb0c093"), .cnonce = B("0a4f113b"),
        .nc = B("00000001"), .method = B("GET"), .uri = B("/dir/index.html"),
    };
    char out[GB_DIGEST_HEX_MAX];
    int n = gb_digest_response(ctx, &in, out, NULL);
    CHECK_MEM(out, n, "6629fae49393a05397450978507c4ef1");
}

/* RFC 7616 §3.9.1, MD5 and SHA-256. */
static void test_rfc7616_vectors(void)
{
    gb_digest_input in = {
        .alg = GB_DIGEST_MD5, .qop = GB_QOP_AUTH, .username = B("Mufasa"),
        .realm = B("http-auth@example.org"), .password = B("Circle of Life"),
        .nonce = B("7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"),
        .cnonce = B("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"),
        .nc = B("00000001"), .method = B("GET"), .uri = B("/dir/index.html"),
    };
    char out[GB_DIGEST_HEX_MAX];
    int n = gb_digest_response(ctx, &in, out, NULL);
    CHECK_MEM(out, n, "8ca523f5e9506fed4657c9700eebdbec");
    in.alg = GB_DIGEST_SHA256;
    n = gb_digest_response(ctx, &in, out, NULL);
    CHECK_MEM(out, n, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
}

/* Independent reference: one-shot EVP_Digest over strings built here. */
static void ref_hex(const char *evp, const char *s, char *out)
{
    unsigned char raw[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD *md = EVP_MD_fetch(NULL, evp, NULL);
    EVP_Digest(s, strlen(s), raw, &n, md, NULL);
    EVP_MD_free(md);
    for (unsigned i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", raw[i]);
}

/* SHA-512-256 and the -sess variants against the reference, qop auth-int. */
static void test_sha512_256_and_sess_against_reference(void)
{
    const char *names[] = {"MD5", "SHA2-256", "SHA2-512/256"};
    gb_digest_alg base[] = {GB_DIGEST_MD5, GB_DIGEST_SHA256, GB_DIGEST_SHA512_256};
    for (int k = 0; k < 3; k++) {
        for (int sess = 0; sess < 2; sess++) {
            char a1[200], ha1[129], ha2[129], hb[129], s[600], want[129];
            ref_hex(names[k], "Mufasa:http-auth@example.org:Circle of Life", ha1);
            if (sess) {
                snprintf(a1, sizeof a1, "%s:NONCE:CN", ha1);
                ref_hex(names[k], a1, ha1);
            }
            ref_hex(names[k], "body bytes", hb);
            snprintf(s, sizeof s, "POST:/x:%s", hb);
            ref_hex(names[k], s, ha2);
            snprintf(s, sizeof s, "%s:NONCE:0000000a:CN:auth-int:%s", ha1, ha2);
            ref_hex(names[k], s, want);
            gb_digest_input in = {
                .alg = (gb_digest_alg)(base[k] + sess), .qop = GB_QOP_AUTH_INT,
                .username = B("Mufasa"), .realm = B("http-auth@example.org"),
                .password = B("Circle of Life"), .nonce = B("NONCE"),
                .cnonce = B("CN"), .nc = B("0000000a"), .method = B("POST"),
                .uri = B("/x"), .body = B("body bytes"),
            };
            char out[GB_DIGEST_HEX_MAX];
            int n = gb_digest_response(ctx, &in, out, NULL);
            CHECK_EQ_INT(n, (int)strlen(want));
            CHECK(n > 0 && memcmp(out, want, (size_t)n) == 0);
        }
    }
}

/* The HA2 cache in the context never answers for other inputs: many
 * method/uri/algorithm mixes, repeated, against the reference. */
static void test_ha2_cache_never_mixes_inputs(void)
{
    const char *names[] = {"MD5", "SHA2-256", "SHA2-512/256"};
    gb_digest_alg base[] = {GB_DIGEST_MD5, GB_DIGEST_SHA256, GB_DIGEST_SHA512_256};
    const char *methods[] = {"REGISTER", "MESSAGE", "REGISTE"};
    const char *uris[] = {"sip:a", "sip:ab", "", "sip:34020000002000000001@3402000000",
                          "sip:b", "sip:a;x"};
    int bad = 0;
    for (int round = 0; round < 3; round++)
        for (int k = 0; k < 3; k++)
            for (int m = 0; m < 3; m++)
                for (int u = 0; u < 6; u++) {
                    char s[300], ha1[129], ha2[129], want[129], out[GB_DIGEST_HEX_MAX];
                    ref_hex(names[k], "u:r:p", ha1);
                    snprintf(s, sizeof s, "%s:%s", methods[m], uris[u]);
                    ref_hex(names[k], s, ha2);
                    snprintf(s, sizeof s, "%s:n:%s", ha1, ha2);
                    ref_hex(names[k], s, want);
                    gb_digest_input in = {.alg = base[k], .username = B("u"), .realm = B("r"),
                                          .password = B("p"), .nonce = B("n"),
                                          .method = bs(methods[m]), .uri = bs(uris[u])};
                    int n = gb_digest_response(ctx, &in, out, NULL);
                    bad += n != (int)strlen(want) || memcmp(out, want, (size_t)n) != 0;
                }
    CHECK_EQ_INT(bad, 0);
}

static void test_response_input_errors(void)
{
    const char *why = NULL;
    char out[GB_DIGEST_HEX_MAX];
    gb_digest_input in = {.alg = GB_DIGEST_MD5_SESS, .qop = GB_QOP_NONE,
                          .username = B("u"), .realm = B("r"), .password = B("p"),
                          .nonce = B("n"), .method = B("REGISTER"), .uri = B("sip:x")};
    CHECK_EQ_INT(gb_digest_response(ctx, &in, out, &why), -1);
    CHECK(why && strstr(why, "cnonce"));
    in.alg = GB_DIGEST_SHA256;
    in.ha1 = B("0123456789abcdef0123456789abcdef"); /* an MD5-sized HA1 */
    CHECK_EQ_INT(gb_digest_response(ctx, &in, out, &why), -1);
    CHECK(why && strstr(why, "HA1"));
    in.alg = (gb_digest_alg)42;
    CHECK_EQ_INT(gb_digest_response(ctx, &in, out, &why), -1);
}

static void test_alg_names(void)
{
    CHECK_EQ_INT(gb_digest_alg_lookup("md5-SESS", 8), GB_DIGEST_MD5_SESS);
    CHECK_EQ_INT(gb_digest_alg_lookup("SHA-512-256", 11), GB_DIGEST_SHA512_256);
    CHECK_EQ_INT(gb_digest_alg_lookup("SHA-1", 5), GB_DIGEST_ALG_UNKNOWN);
    CHECK(strcmp(gb_digest_alg_name(GB_DIGEST_SHA256_SESS), "SHA-256-sess") == 0);
    CHECK_EQ_INT(gb_digest_hex_len(GB_DIGEST_MD5), 32);
    CHECK_EQ_INT(gb_digest_hex_len(GB_DIGEST_SHA512_256_SESS), 64);
}

/* ---- parsing ---- */

static void test_parse_challenge(void)
{
    const char *s = "Digest realm=\"3402000000\", qop=\"auth-int, auth\", "
                    "nonce=\"n\",stale=TRUE,algorithm=sha-256,opaque=\"o\",x=y";
    gb_auth a;
    gb_digest_challenge ch;
    gb_error e;
    CHECK_EQ_INT(gb_auth_parse_one(s, whole(s), &a, &e), GB_OK);
    CHECK_EQ_INT(gb_digest_parse_challenge(s, &a, &ch, &e), GB_OK);
    CHECK_EQ_INT(ch.alg, GB_DIGEST_SHA256);
    CHECK_EQ_INT(ch.qop_mask, GB_QOP_BIT(GB_QOP_AUTH) | GB_QOP_BIT(GB_QOP_AUTH_INT));
    CHECK_EQ_INT(ch.is_stale, 1);
    CHECK_MEM(s + ch.opaque.value.off, ch.opaque.value.len, "o");
    /* the seed's challenge: no algorithm means MD5, no qop */
    const char *t = "Digest realm=\"3402000000\",nonce=\"324cab6e557268e0\"";
    CHECK_EQ_INT(gb_auth_parse_one(t, whole(t), &a, &e), GB_OK);
    CHECK_EQ_INT(gb_digest_parse_challenge(t, &a, &ch, &e), GB_OK);
    CHECK_EQ_INT(ch.alg, GB_DIGEST_MD5);
    CHECK_EQ_INT(ch.qop_mask, 0);
    CHECK_EQ_INT(ch.algorithm.has_value, 0);
    /* missing nonce, duplicate realm, not Digest */
    const char *bad[] = {"Digest realm=\"r\"", "Digest realm=\"r\",nonce=1,Realm=2",
                         "Basic realm=\"r\""};
    const char *why[] = {"missing nonce", "duplicate realm", "not a Digest"};
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(gb_auth_parse_one(bad[i], whole(bad[i]), &a, &e), GB_OK);
        CHECK_EQ_INT(gb_digest_parse_challenge(bad[i], &a, &ch, &e), GB_ERR_AUTH);
        CHECK(strstr(e.reason, why[i]) != NULL);
    }
}

static gb_error_code parse_cred(const char *s, gb_digest_credentials *c, gb_error *e)
{
    gb_auth a;
    gb_error_code r = gb_auth_parse_one(s, whole(s), &a, e);
    if (r != GB_OK)
        return r;
    return gb_digest_parse_credentials(s, &a, c, e);
}

static void test_parse_credentials(void)
{
    gb_digest_credentials c;
    gb_error e;
    const char *s = "Digest username=\"Mufasa\", realm=\"r\", nonce=\"n\", uri=\"/\", "
                    "qop=auth, nc=0000000A, cnonce=\"c\", "
                    "response=\"6629fae49393a05397450978507c4ef1\", userhash=false";
    CHECK_EQ_INT(parse_cred(s, &c, &e), GB_OK);
    CHECK_EQ_INT(c.qop_v, GB_QOP_AUTH);
    CHECK_EQ_INT(c.nc_value, 10);
    CHECK_EQ_INT(c.alg, GB_DIGEST_MD5);
    CHECK_EQ_INT(c.is_userhash, 0);
    static const struct {
        const char *value, *reason;
    } bad[] = {
        {"Digest realm=\"r\",nonce=\"n\",uri=\"/\",response=\"00\"", "missing username"},
        {"Digest username*=UTF-8''J%C3%A4s,realm=\"r\",nonce=\"n\",uri=\"/\",response=\"00\"",
         "username*"},
        {"Digest username=\"u\",nonce=\"n\",uri=\"/\",response=\"00\"", "missing realm"},
        {"Digest username=\"u\",realm=\"r\",uri=\"/\",response=\"00\"", "missing nonce"},
        {"Digest username=\"u\",realm=\"r\",nonce=\"n\",response=\"00\"", "missing uri"},
        {"Digest username=\"u\",realm=\"r\",nonce=\"n\",uri=\"/\"", "missing response"},
        {"Digest username=\"u\",realm=\"r\",nonce=\"n\",uri=\"/\",response=\"zz\"",
         "not hex"},
        {"Digest username=\"u\",realm=\"r\",nonce=\"n\",uri=\"/\",response=\"00\"",
         "length"},
        {"Digest username=\"u\",realm=\"r\",nonce=\"n\",uri=\"/\",uri=\"/\","
         "response=\"6629fae49393a05397450978507c4ef1\"", "duplicate uri"},
        {"Digest username=\"u\",realm=\"r\",nonce=\"n\",uri=\"/\",qop=auth,cnonce=c,"
         "response=\"6629fae49393a05397450978507c4ef1\"", "qop without nc"},
        {"Digest username=\"u\",realm=\"r\",nonce=\"n\",uri=\"/\",qop=auth,nc=00000001,"
         "response=\"6629fae49393a05397450978507c4ef1\"", "qop without cnonce"},
        {"Digest username=\"u\",realm=\"r\",nonce=\"n\",uri=\"/\",qop=auth,nc=1,cnonce=c,"
         "response=\"6629fae49393a05397450978507c4ef1\"", "nc is not 8 hex"},
        {"Digest username=\"u\",realm=\"r\",nonce=\"n\",uri=\"/\",qop=auth,nc=00000000,"
         "cnonce=c,response=\"6629fae49393a05397450978507c4ef1\"", "nc is zero"},
        {"Digest username=\"u\",realm=\"r\",nonce=\"n\",uri=\"/\",qop=bogus,nc=00000001,"
         "cnonce=c,response=\"6629fae49393a05397450978507c4ef1\"", "neither auth"},
        {"Digest username=\"u\",realm=\"r\",nonce=\"n\",uri=\"/\",algorithm=MD5-sess,"
         "response=\"6629fae49393a05397450978507c4ef1\"", "-sess"},
        {"Digest username=\"u\",realm=\"r\",nonce=\"n\",uri=\"/\",userhash=maybe,"
         "response=\"6629fae49393a05397450978507c4ef1\"", "userhash"},
        {"Capability, algorithm=\"H:MD5\"", "capability"},
        {"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "not Digest"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0, sizeof e);
        gb_error_code r = parse_cred(bad[i].value, &c, &e);
        CHECK_EQ_INT(r, GB_ERR_AUTH);
        CHECK(e.reason && strstr(e.reason, bad[i].reason) != NULL);
        if (e.reason && !strstr(e.reason, bad[i].reason))
            fprintf(stderr, "  case %zu: got \"%s\"\n", i, e.reason);
    }
    /* an algorithm we do not know parses (verify refuses it) */
    const char *u = "Digest username=\"u\",realm=\"r\",nonce=\"n\",uri=\"/\","
                    "algorithm=AKAv1-MD5,response=\"abcd\"";
    CHECK_EQ_INT(parse_cred(u, &c, &e), GB_OK);
    CHECK_EQ_INT(c.alg, GB_DIGEST_ALG_UNKNOWN);
}

/* ---- building ---- */

/* The seed's Authorization value, byte for byte. */
static void test_build_seed_credentials(void)
{
    gb_digest_credentials_out co = {
        .username = B("34020000001320000001"), .realm = B("3402000000"),
        .nonce = B("324cab6e557268e0"), .uri = B("sip:192.168.10.177:5060"),
        .response = B("7f536c8ce38593239f9130e37a72276e"), .alg = GB_DIGEST_MD5,
        .qop = GB_QOP_NONE,
    };
    char out[512];
    long n = gb_digest_build_credentials(out, sizeof out, &co);
    CHECK_MEM(out, n,
              "Digest username=\"34020000001320000001\",realm=\"3402000000\","
              "nonce=\"324cab6e557268e0\",uri=\"sip:192.168.10.177:5060\","
              "response=\"7f536c8ce38593239f9130e37a72276e\",algorithm=MD5");
    co.qop = GB_QOP_AUTH;
    co.nc = B("00000001");
    co.cnonce = B("abc");
    co.opaque = B("");
    co.userhash = 1;
    n = gb_digest_build_credentials(out, sizeof out, &co);
    CHECK(n > 0 && strstr(out, ",algorithm=MD5,cnonce=\"abc\",opaque=\"\","
                               "qop=auth,nc=00000001,userhash=true") != NULL);
}

static void test_build_challenge(void)
{
    gb_digest_challenge_out c = {.realm = B("3402000000"), .nonce = B("324cab6e557268e0"),
                                 .alg = GB_DIGEST_MD5};
    char out[512];
    long n = gb_digest_build_challenge(out, sizeof out, &c);
    CHECK_MEM(out, n, "Digest realm=\"3402000000\",nonce=\"324cab6e557268e0\",algorithm=MD5");
    c.qop_mask = GB_QOP_BIT(GB_QOP_AUTH) | GB_QOP_BIT(GB_QOP_AUTH_INT);
    c.stale = 1;
    c.opaque = B("op");
    c.alg = GB_DIGEST_SHA512_256_SESS;
    n = gb_digest_build_challenge(out, sizeof out, &c);
    CHECK_MEM(out, n, "Digest realm=\"3402000000\",nonce=\"324cab6e557268e0\",opaque=\"op\","
                      "stale=true,algorithm=SHA-512-256-sess,qop=\"auth,auth-int\"");
}

/* ---- client side ---- */

static int parse_challenges(const char *s, gb_digest_challenge *ch, int max)
{
    gb_auth_iter it;
    gb_auth a;
    int n = 0;
    gb_auth_begin(&it, s, whole(s));
    while (n < max && gb_auth_next(&it, &a, NULL) == 1)
        if (gb_digest_parse_challenge(s, &a, &ch[n], NULL) == GB_OK)
            n++;
    return n;
}

static void test_choose_strongest_allowed(void)
{
    const char *s = "Digest realm=\"r\",nonce=\"1\",algorithm=MD5, "
                    "Digest realm=\"r\",nonce=\"2\",algorithm=SHA-512-256, "
                    "Digest realm=\"r\",nonce=\"3\",algorithm=SHA-256, "
                    "Digest realm=\"r\",nonce=\"4\",algorithm=SHA-1";
    gb_digest_challenge ch[8];
    int n = parse_challenges(s, ch, 8);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(gb_digest_choose(ch, (size_t)n, 0), 1);
    CHECK_EQ_INT(gb_digest_choose(ch, (size_t)n, GB_DIGEST_ALG_BIT(GB_DIGEST_MD5) |
                                                     GB_DIGEST_ALG_BIT(GB_DIGEST_SHA256)), 2);
    CHECK_EQ_INT(gb_digest_choose(ch, (size_t)n, GB_DIGEST_ALG_BIT(GB_DIGEST_MD5)), 0);
    CHECK_EQ_INT(gb_digest_choose(ch, (size_t)n, GB_DIGEST_ALG_BIT(GB_DIGEST_MD5_SESS)), -1);
}

/* Answering the seed's challenge gives the seed's Authorization exactly. */
static void test_answer_seed_challenge(void)
{
    const char *s = "Digest realm=\"3402000000\",nonce=\"324cab6e557268e0\"";
    gb_digest_challenge ch;
    CHECK_EQ_INT(parse_challenges(s, &ch, 1), 1);
    gb_digest_answer_in in = {
        .username = B("34020000001320000001"), .password = B("12345678"),
        .method = B("REGISTER"), .uri = B("sip:192.168.10.177:5060"), .qop = -1,
    };
    char out[512];
    const char *why = NULL;
    long n = gb_digest_answer(ctx, NULL, s, &ch, &in, out, sizeof out, &why);
    CHECK_MEM(out, n,
              "Digest username=\"34020000001320000001\",realm=\"3402000000\","
              "nonce=\"324cab6e557268e0\",uri=\"sip:192.168.10.177:5060\","
              "response=\"7f536c8ce38593239f9130e37a72276e\",algorithm=MD5");
}

static void test_client_nc_per_nonce(void)
{
    gb_digest_client c;
    gb_digest_client_init(&c);
    CHECK_EQ_INT(gb_digest_client_next_nc(&c, B("a")), 1);
    CHECK_EQ_INT(gb_digest_client_next_nc(&c, B("a")), 2);
    CHECK_EQ_INT(gb_digest_client_next_nc(&c, B("a")), 3);
    CHECK_EQ_INT(gb_digest_client_next_nc(&c, B("b")), 1);
    CHECK_EQ_INT(gb_digest_client_next_nc(&c, B("a")), 1);
}

static void test_cnonce_is_random_hex(void)
{
    char a[32], b[32];
    CHECK_EQ_INT(gb_digest_cnonce(a), 0);
    CHECK_EQ_INT(gb_digest_cnonce(b), 0);
    CHECK(memcmp(a, b, 32) != 0);
    for (int i = 0; i < 32; i++)
        CHECK((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'));
}

/* ---- server side ---- */

static const unsigned char KEY[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char KEY2[32] = "fedcba9876543210fedcba9876543210";

static gb_digest_nonces *make_nonces(const unsigned char *key, int64_t life,
                                     uint32_t slots, int enc, unsigned flags)
{
    gb_digest_nonce_config cfg = {key, 32, life, slots, enc, flags};
    const char *why = NULL;
    gb_digest_nonces *n = gb_digest_nonces_new(&cfg, &why);
    CHECK(n != NULL);
    return n;
}

static void test_nonce_lifecycle(void)
{
    for (int enc = 0; enc < 2; enc++) {
        gb_digest_nonces *n = make_nonces(KEY, 30000, 0, enc, 0);
        gb_digest_nonces *other = make_nonces(KEY2, 30000, 0, enc, 0);
        char nb[64], nb2[64];
        long len = gb_digest_nonce_issue(n, 1000000, B("192.168.10.117:5061"), nb, sizeof nb);
        CHECK_EQ_INT(len, enc ? GB_NONCE_HEX_LEN : GB_NONCE_B64_LEN);
        long len2 = gb_digest_nonce_issue(n, 1000000, B("192.168.10.117:5061"), nb2, sizeof nb2);
        CHECK(len2 == len && memcmp(nb, nb2, (size_t)len) != 0); /* salt */
        gb_bytes nonce = {nb, (size_t)len};
        int64_t t = 0;
        CHECK_EQ_INT(gb_digest_nonce_check(n, nonce, B("192.168.10.117:5061"), 1000000, &t),
                     GB_NONCE_FRESH);
        CHECK_EQ_INT(t, 1000000);
        CHECK_EQ_INT(gb_digest_nonce_check(n, nonce, B("192.168.10.117:5061"), 1030000, NULL),
                     GB_NONCE_FRESH);
        CHECK_EQ_INT(gb_digest_nonce_check(n, nonce, B("192.168.10.117:5061"), 1030001, NULL),
                     GB_NONCE_STALE);
        CHECK_EQ_INT(gb_digest_nonce_check(n, nonce, B("192.168.10.117:5061"), 960000, NULL),
                     GB_NONCE_STALE); /* clock went back past the lifetime */
        CHECK_EQ_INT(gb_digest_nonce_check(n, nonce, B("192.168.10.118:5061"), 1000000, NULL),
                     GB_NONCE_FORGED);
        CHECK_EQ_INT(gb_digest_nonce_check(other, nonce, B("192.168.10.117:5061"), 1000000, NULL),
                     GB_NONCE_FORGED);
        nb[3] = nb[3] == 'A' ? 'B' : 'A';
        CHECK_EQ_INT(gb_digest_nonce_check(n, nonce, B("192.168.10.117:5061"), 1000000, NULL),
                     GB_NONCE_FORGED);
        CHECK_EQ_INT(gb_digest_nonce_check(n, B("324cab6e557268e0"), NONE, 0, NULL),
                     GB_NONCE_FORGED);
        gb_digest_nonces_free(n);
        gb_digest_nonces_free(other);
    }
    gb_digest_nonce_config bad = {KEY, 8, 1000, 0, 0, 0};
    const char *why = NULL;
    CHECK(gb_digest_nonces_new(&bad, &why) == NULL && why && strstr(why, "key"));
}

typedef struct {
    const char *user;
    int kind;
    const char *secret;
    const char *real_user;
    int calls;
} lookup_table;

static int lookup(void *arg, gb_bytes username, gb_bytes realm, int userhash,
                  gb_digest_secret *out)
{
    lookup_table *t = arg;
    (void)realm;
    (void)userhash;
    t->calls++;
    if (username.n == strlen(t->user) && memcmp(username.p, t->user, username.n) == 0) {
        out->kind = t->kind;
        out->value = bs(t->secret);
        if (t->real_user)
            out->username = bs(t->real_user);
    }
    return 0;
}

typedef struct {
    gb_digest_nonces *nonces;
    gb_digest_check chk;
    lookup_table users;
    char nonce[64];
    size_t nonce_len;
    char header[1024];
    long header_len;
} server;

static void server_init(server *s, unsigned flags)
{
    memset(s, 0, sizeof *s);
    s->nonces = make_nonces(KEY, 60000, 64, GB_NONCE_BASE64URL, flags);
    s->chk.method = B("REGISTER");
    s->chk.request_uri = B("sip:34020000002000000001@3402000000");
    s->chk.realm = B("3402000000");
    s->chk.binding = B("192.168.10.117:5061");
    s->chk.now_ms = 5000000;
    s->chk.uri_policy = GB_URI_EXACT;
    s->users.user = "34020000001320000001";
    s->users.kind = GB_SECRET_PASSWORD;
    s->users.secret = "12345678";
    s->nonce_len = (size_t)gb_digest_nonce_issue(s->nonces, s->chk.now_ms, s->chk.binding,
                                                 s->nonce, sizeof s->nonce);
}

/* The client's side of the exchange, with gbsip's own answer. */
static void client_answer(server *s, gb_digest_alg alg, unsigned qop_mask, int qop,
                          const char *password, const char *uri, uint32_t nc)
{
    gb_digest_challenge_out co = {.realm = B("3402000000"),
                                  .nonce = {s->nonce, s->nonce_len},
                                  .alg = alg, .qop_mask = qop_mask};
    char chbuf[512];
    long cn = gb_digest_build_challenge(chbuf, sizeof chbuf, &co);
    gb_auth a;
    gb_digest_challenge ch;
    gb_span sp = {0, (uint32_t)cn};
    CHECK_EQ_INT(gb_auth_parse_one(chbuf, sp, &a, NULL), GB_OK);
    CHECK_EQ_INT(gb_digest_parse_challenge(chbuf, &a, &ch, NULL), GB_OK);
    gb_digest_answer_in in = {.username = B("34020000001320000001"),
                              .password = bs(password), .method = B("REGISTER"),
                              .uri = bs(uri), .qop = qop, .nc = nc,
                              .body = B("<xml/>")};
    const char *why = NULL;
    s->header_len = gb_digest_answer(ctx, NULL, chbuf, &ch, &in, s->header,
                                     sizeof s->header, &why);
    CHECK(s->header_len > 0 && (size_t)s->header_len < sizeof s->header);
}

static gb_digest_result run_verify(server *s, gb_digest_verdict *v)
{
    gb_span sp = {0, (uint32_t)s->header_len};
    return gb_digest_verify(ctx, s->nonces, s->header, sp, &s->chk, lookup, &s->users, v);
}

/* Every algorithm and qop, answered by gbsip and verified by gbsip. */
static void test_round_trip_every_algorithm_and_qop(void)
{
    static gb_digest_verdict v;
    for (int alg = 0; alg < GB_DIGEST_ALG__COUNT; alg++) {
        for (int q = 0; q < 3; q++) {
            server s;
            server_init(&s, 0);
            s.chk.body = B("<xml/>");
            client_answer(&s, (gb_digest_alg)alg, q ? GB_QOP_BIT(q) : 0, -1, "12345678",
                          "sip:34020000002000000001@3402000000", 0);
            CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_OK);
            if (v.result != GB_DIGEST_OK)
                fprintf(stderr, "  alg %d qop %d: %s (%s)\n", alg, q,
                        gb_digest_result_name(v.result), v.detail);
            CHECK_EQ_INT(v.cred.qop_v, q);
            CHECK_EQ_INT(v.cred.alg, alg);
            gb_digest_nonces_free(s.nonces);
        }
    }
}

/* Stored HA1 instead of a password. */
static void test_verify_with_stored_ha1(void)
{
    static gb_digest_verdict v;
    server s;
    server_init(&s, 0);
    char ha1[GB_DIGEST_HEX_MAX + 1] = {0};
    gb_digest_ha1(ctx, GB_DIGEST_SHA256, B("34020000001320000001"), B("3402000000"),
                  B("12345678"), ha1);
    s.users.kind = GB_SECRET_HA1;
    s.users.secret = ha1;
    client_answer(&s, GB_DIGEST_SHA256_SESS, GB_QOP_BIT(GB_QOP_AUTH), -1, "12345678",
                  "sip:34020000002000000001@3402000000", 0);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_OK);
    /* an MD5 HA1 cannot check SHA-256 credentials */
    char md5[GB_DIGEST_HEX_MAX + 1] = {0};
    gb_digest_ha1(ctx, GB_DIGEST_MD5, B("34020000001320000001"), B("3402000000"),
                  B("12345678"), md5);
    s.users.secret = md5;
    client_answer(&s, GB_DIGEST_SHA256, GB_QOP_BIT(GB_QOP_AUTH), -1, "12345678",
                  "sip:34020000002000000001@3402000000", 2);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_ALGORITHM_NOT_ALLOWED);
    CHECK(strstr(v.detail, "HA1") != NULL);
    gb_digest_nonces_free(s.nonces);
}

static void test_every_failure_reason(void)
{
    static gb_digest_verdict v;
    server s;
    const char *ruri = "sip:34020000002000000001@3402000000";

    server_init(&s, 0);
    client_answer(&s, GB_DIGEST_MD5, 0, -1, "wrong", ruri, 0);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_WRONG_RESPONSE);
    CHECK(strcmp(v.detail, "wrong response") == 0);

    client_answer(&s, GB_DIGEST_MD5, 0, -1, "12345678", ruri, 0);
    s.users.user = "somebody-else";
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_UNKNOWN_USER);
    s.users.user = "34020000001320000001";

    s.chk.realm = B("3402000001");
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_REALM_MISMATCH);
    s.chk.realm = B("3402000000");

    s.chk.allowed_algs = GB_DIGEST_ALG_BIT(GB_DIGEST_SHA256);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_ALGORITHM_NOT_ALLOWED);
    s.chk.allowed_algs = 0;

    s.chk.allowed_qops = GB_QOP_BIT(GB_QOP_AUTH);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_QOP_NOT_ALLOWED);
    s.chk.allowed_qops = 0;

    s.chk.opaque = B("expected");
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_OPAQUE_MISMATCH);
    s.chk.opaque = NONE;

    s.chk.request_uri = B("sip:192.168.10.177:5060");
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_URI_MISMATCH);
    s.chk.uri_policy = GB_URI_SAME_HOST;
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_URI_MISMATCH);
    s.chk.uri_policy = GB_URI_ANY; /* the NVR quirk: uri names serverID@domain */
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_OK);
    s.chk.uri_policy = GB_URI_EXACT;
    s.chk.request_uri = bs(ruri);

    s.chk.binding = B("10.0.0.1:5060");
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_FORGED_NONCE);
    s.chk.binding = B("192.168.10.117:5061");

    s.chk.now_ms += 60001;
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_STALE_NONCE);
    s.chk.now_ms -= 60001;

    /* stale only when the response is right (RFC 7616 §3.3) */
    client_answer(&s, GB_DIGEST_MD5, 0, -1, "wrong", ruri, 0);
    s.chk.now_ms += 60001;
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_WRONG_RESPONSE);
    s.chk.now_ms -= 60001;

    /* a nonce gbsip never issued: the seed's own */
    const char *seed = "Digest username=\"34020000001320000001\",realm=\"3402000000\","
                       "nonce=\"324cab6e557268e0\",uri=\"sip:192.168.10.177:5060\","
                       "response=\"7f536c8ce38593239f9130e37a72276e\",algorithm=MD5";
    strcpy(s.header, seed);
    s.header_len = (long)strlen(seed);
    s.chk.request_uri = B("sip:192.168.10.177:5060");
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_FORGED_NONCE);
    /* ... which verifies when the caller checks the nonce itself */
    gb_span sp = {0, (uint32_t)s.header_len};
    CHECK_EQ_INT(gb_digest_verify(ctx, NULL, s.header, sp, &s.chk, lookup, &s.users, &v),
                 GB_DIGEST_OK);

    const char *cap = "Capability, algorithm=\"H:MD5\"";
    strcpy(s.header, cap);
    s.header_len = (long)strlen(cap);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_CAPABILITY_HINT);

    const char *basic = "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==";
    strcpy(s.header, basic);
    s.header_len = (long)strlen(basic);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_NOT_DIGEST);

    const char *mal = "Digest username=\"u\",realm=\"3402000000\",uri=\"x\",response=\"00\"";
    strcpy(s.header, mal);
    s.header_len = (long)strlen(mal);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_MALFORMED);
    CHECK(strcmp(v.detail, "missing nonce") == 0);

    const char *unterminated = "Digest username=\"u";
    strcpy(s.header, unterminated);
    s.header_len = (long)strlen(unterminated);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_MALFORMED);
    CHECK(strstr(v.detail, "unterminated") != NULL);
    CHECK_EQ_INT(v.offset, 18);

    const char *unknown_alg = "Digest username=\"u\",realm=\"3402000000\",nonce=\"n\","
                              "uri=\"x\",response=\"00\",algorithm=SHA-1";
    strcpy(s.header, unknown_alg);
    s.header_len = (long)strlen(unknown_alg);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_ALGORITHM_NOT_ALLOWED);

    CHECK(strcmp(gb_digest_result_name(GB_DIGEST_REPLAYED_NC), "REPLAYED_NC") == 0);
    for (int r = 0; r < GB_DIGEST_RESULT__COUNT; r++)
        CHECK(gb_digest_result_text((gb_digest_result)r)[0] != 0);
    gb_digest_nonces_free(s.nonces);
}

/* qop=auth: nc must grow per nonce; a repeat is a replay. */
static void test_replayed_nc_rejected(void)
{
    static gb_digest_verdict v;
    server s;
    server_init(&s, 0);
    const char *ruri = "sip:34020000002000000001@3402000000";
    client_answer(&s, GB_DIGEST_MD5, GB_QOP_BIT(GB_QOP_AUTH), -1, "12345678", ruri, 1);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_OK);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_REPLAYED_NC);
    client_answer(&s, GB_DIGEST_MD5, GB_QOP_BIT(GB_QOP_AUTH), -1, "12345678", ruri, 3);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_OK);
    client_answer(&s, GB_DIGEST_MD5, GB_QOP_BIT(GB_QOP_AUTH), -1, "12345678", ruri, 2);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_REPLAYED_NC);
    /* a wrong response does not advance nc */
    client_answer(&s, GB_DIGEST_MD5, GB_QOP_BIT(GB_QOP_AUTH), -1, "wrong", ruri, 9);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_WRONG_RESPONSE);
    client_answer(&s, GB_DIGEST_MD5, GB_QOP_BIT(GB_QOP_AUTH), -1, "12345678", ruri, 4);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_OK);
    gb_digest_nonces_free(s.nonces);
}

/* Without qop there is no nc: single-use mode accepts a nonce once. */
static void test_single_use_without_qop(void)
{
    static gb_digest_verdict v;
    server s;
    server_init(&s, GB_NONCE_SINGLE_USE);
    client_answer(&s, GB_DIGEST_MD5, 0, -1, "12345678",
                  "sip:34020000002000000001@3402000000", 0);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_OK);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_REPLAYED_NC);
    CHECK(strcmp(v.detail, "nonce already used") == 0);
    gb_digest_nonces_free(s.nonces);
    /* default mode: reuse within the lifetime is allowed (GB refreshes) */
    server_init(&s, 0);
    client_answer(&s, GB_DIGEST_MD5, 0, -1, "12345678",
                  "sip:34020000002000000001@3402000000", 0);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_OK);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_OK);
    gb_digest_nonces_free(s.nonces);
}

/* The table is bounded: it forgets, but forgetting never admits a replay. */
static void test_replay_table_bounded(void)
{
    static gb_digest_verdict v;
    server s;
    server_init(&s, 0); /* 64 slots */
    const char *ruri = "sip:34020000002000000001@3402000000";
    enum { N = 600 };
    static char headers[N][1024];
    static long lens[N];
    for (int i = 0; i < N; i++) {
        s.chk.now_ms += 1;
        s.nonce_len = (size_t)gb_digest_nonce_issue(s.nonces, s.chk.now_ms, s.chk.binding,
                                                    s.nonce, sizeof s.nonce);
        client_answer(&s, GB_DIGEST_MD5, GB_QOP_BIT(GB_QOP_AUTH), -1, "12345678", ruri, 1);
        memcpy(headers[i], s.header, (size_t)s.header_len);
        lens[i] = s.header_len;
        CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_OK);
    }
    int replays = 0, stale = 0;
    for (int i = 0; i < N; i++) {
        memcpy(s.header, headers[i], (size_t)lens[i]);
        s.header_len = lens[i];
        gb_digest_result r = run_verify(&s, &v);
        CHECK(r == GB_DIGEST_REPLAYED_NC || r == GB_DIGEST_STALE_NONCE);
        replays += r == GB_DIGEST_REPLAYED_NC;
        stale += r == GB_DIGEST_STALE_NONCE;
    }
    CHECK(replays > 0 && replays <= 64);
    CHECK(stale >= N - 64);
    gb_digest_nonces_free(s.nonces);
}

/* Escaped values are hashed unescaped; the uri is hashed as received. */
static void test_escaped_values_and_uri_as_received(void)
{
    static gb_digest_verdict v;
    server s;
    server_init(&s, 0);
    s.users.user = "a\"b";
    s.chk.uri_policy = GB_URI_ANY;
    gb_digest_input in = {.alg = GB_DIGEST_MD5, .username = B("a\"b"),
                          .realm = B("3402000000"), .password = B("12345678"),
                          .nonce = {s.nonce, s.nonce_len}, .method = B("REGISTER"),
                          .uri = B("sip:34020000002000000001@3402000000;transport=udp")};
    char resp[GB_DIGEST_HEX_MAX];
    int rn = gb_digest_response(ctx, &in, resp, NULL);
    s.header_len = snprintf(s.header, sizeof s.header,
                            "Digest username=\"a\\\"b\",realm=\"3402000000\",nonce=\"%.*s\","
                            "uri=sip:34020000002000000001@3402000000;transport=udp,"
                            "response=%.*s",
                            (int)s.nonce_len, s.nonce, rn, resp);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_OK);
    /* upper-case hex in the response is accepted */
    for (char *p = strstr(s.header, "response=") + 9; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 32);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_OK);
    gb_digest_nonces_free(s.nonces);
}

/* userhash (RFC 7616 §3.4.4): the lookup maps the hash to the user. */
static void test_userhash(void)
{
    static gb_digest_verdict v;
    server s;
    server_init(&s, 0);
    char uh[GB_DIGEST_HEX_MAX + 1] = {0};
    gb_digest_userhash(ctx, GB_DIGEST_SHA256, B("34020000001320000001"), B("3402000000"), uh);
    s.users.user = uh;
    s.users.real_user = "34020000001320000001";
    char chbuf[256];
    long cn = snprintf(chbuf, sizeof chbuf,
                       "Digest realm=\"3402000000\",nonce=\"%.*s\",algorithm=SHA-256,"
                       "qop=\"auth\",userhash=true", (int)s.nonce_len, s.nonce);
    gb_auth a;
    gb_digest_challenge ch;
    gb_span sp = {0, (uint32_t)cn};
    CHECK_EQ_INT(gb_auth_parse_one(chbuf, sp, &a, NULL), GB_OK);
    CHECK_EQ_INT(gb_digest_parse_challenge(chbuf, &a, &ch, NULL), GB_OK);
    CHECK_EQ_INT(ch.wants_userhash, 1);
    gb_digest_answer_in in = {.username = B("34020000001320000001"),
                              .password = B("12345678"), .method = B("REGISTER"),
                              .uri = B("sip:34020000002000000001@3402000000"), .qop = -1};
    s.header_len = gb_digest_answer(ctx, NULL, chbuf, &ch, &in, s.header, sizeof s.header, NULL);
    CHECK(strstr(s.header, uh) != NULL && strstr(s.header, "userhash=true") != NULL);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_OK);
    CHECK_EQ_INT(v.cred.is_userhash, 1);
    /* the lookup names another user for that hash: unknown user */
    s.users.real_user = "34020000001320000002";
    s.header_len = gb_digest_answer(ctx, NULL, chbuf, &ch, &in, s.header, sizeof s.header, NULL);
    CHECK_EQ_INT(run_verify(&s, &v), GB_DIGEST_UNKNOWN_USER);
    gb_digest_nonces_free(s.nonces);
}

static void test_answer_refuses_bad_qop_and_unknown_alg(void)
{
    const char *s = "Digest realm=\"r\",nonce=\"n\",qop=\"auth\"";
    gb_digest_challenge ch;
    CHECK_EQ_INT(parse_challenges(s, &ch, 1), 1);
    gb_digest_answer_in in = {.username = B("u"), .password = B("p"),
                              .method = B("REGISTER"), .uri = B("sip:x"),
                              .qop = GB_QOP_AUTH_INT};
    char out[512];
    const char *why = NULL;
    CHECK_EQ_INT(gb_digest_answer(ctx, NULL, s, &ch, &in, out, sizeof out, &why), -1);
    CHECK(why && strstr(why, "qop"));
    const char *t = "Digest realm=\"r\",nonce=\"n\",algorithm=AKAv1-MD5";
    CHECK_EQ_INT(parse_challenges(t, &ch, 1), 1);
    in.qop = -1;
    CHECK_EQ_INT(gb_digest_answer(ctx, NULL, t, &ch, &in, out, sizeof out, &why), -1);
    CHECK(why && strstr(why, "algorithm"));
}

/* The client's nc counter feeds the header. */
static void test_answer_counts_nc(void)
{
    const char *s = "Digest realm=\"r\",nonce=\"n\",qop=\"auth\"";
    gb_digest_challenge ch;
    CHECK_EQ_INT(parse_challenges(s, &ch, 1), 1);
    gb_digest_client cl;
    gb_digest_client_init(&cl);
    gb_digest_answer_in in = {.username = B("u"), .password = B("p"),
                              .method = B("REGISTER"), .uri = B("sip:x"), .qop = -1};
    char out[512];
    long n = gb_digest_answer(ctx, &cl, s, &ch, &in, out, sizeof out - 1, NULL);
    out[n] = 0;
    CHECK(strstr(out, "nc=00000001") != NULL);
    n = gb_digest_answer(ctx, &cl, s, &ch, &in, out, sizeof out - 1, NULL);
    out[n] = 0;
    CHECK(strstr(out, "nc=00000002") != NULL && strstr(out, "qop=auth,") != NULL);
}

int main(void)
{
    ctx = gb_digest_ctx_new();
    CHECK(ctx != NULL);
    if (!ctx)
        return 1;
    test_seed_vector();
    test_rfc2617_vector();
    test_rfc7616_vectors();
    test_sha512_256_and_sess_against_reference();
    test_ha2_cache_never_mixes_inputs();
    test_response_input_errors();
    test_alg_names();
    test_parse_challenge();
    test_parse_credentials();
    test_build_seed_credentials();
    test_build_challenge();
    test_choose_strongest_allowed();
    test_answer_seed_challenge();
    test_client_nc_per_nonce();
    test_cnonce_is_random_hex();
    test_nonce_lifecycle();
    test_round_trip_every_algorithm_and_qop();
    test_verify_with_stored_ha1();
    test_every_failure_reason();
    test_replayed_nc_rejected();
    test_single_use_without_qop();
    test_replay_table_bounded();
    test_escaped_values_and_uri_as_received();
    test_userhash();
    test_answer_refuses_bad_qop_and_unknown_alg();
    test_answer_counts_nc();
    gb_digest_ctx_free(ctx);
    return CHECK_DONE("test_digest");
}
