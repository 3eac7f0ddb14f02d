/*
 * fuzz_auth.c - libFuzzer target for the auth-header tokenizer (sip_auth.h)
 * and the Digest challenge/credential parsers and verifier (digest.h).
 *
 * The input is one WWW-Authenticate or Authorization value in a malloc'd
 * buffer of exactly its size (no NUL), parsed from offset 0 and from inside
 * the buffer.  Invariants: parse or a clean GB_ERR_AUTH with an offset
 * inside the input; every span inside the input; values unescape within
 * bounds; what parses, rebuilt with gb_auth_build, parses to the same
 * names and values; gb_digest_verify always returns a known result.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "digest.h"
#include "sip_auth.h"

#define IN_SPAN(s, in)                                                   \
    EXPECT((s).len == 0 ||                                               \
           ((s).off >= (in).off &&                                       \
            (size_t)(s).off + (s).len <= (size_t)(in).off + (in).len))

/* Long-lived across runs, like a server's: created on first use. */
static gb_digest_ctx *dctx;
static gb_digest_nonces *nonces;

static int lookup(void *arg, gb_bytes username, gb_bytes realm, int userhash,
                  gb_digest_secret *out)
{
    (void)arg;
    (void)realm;
    (void)userhash;
    if (username.n && username.p[0] == 'h') {
        out->kind = GB_SECRET_HA1;
        out->value.p = "0123456789abcdef0123456789abcdef";
        out->value.n = 32;
    } else if (username.n) {
        out->kind = GB_SECRET_PASSWORD;
        out->value.p = "12345678";
        out->value.n = 8;
    }
    return 0;
}

/* Rebuild an item from its unescaped values and parse it back. */
static void round_trip(const char *buf, const gb_auth *a)
{
    static gb_auth_out outp[GB_AUTH_MAX_PARAMS];
    static char values[GB_AUTH_MAX_PARAMS][1024];
    static char built[GB_AUTH_MAX_PARAMS * 2200 + 64];
    long lens[GB_AUTH_MAX_PARAMS];
    if (a->has_token68)
        return;
    for (unsigned i = 0; i < a->nparams; i++) {
        long n = gb_auth_value(buf, &a->params[i], values[i], sizeof values[i]);
        if (n < 0)
            return; /* longer than this harness keeps */
        lens[i] = n;
        outp[i].name = buf + a->params[i].name.off;
        outp[i].name_len = a->params[i].name.len;
        outp[i].value = values[i];
        outp[i].value_len = (size_t)n;
        outp[i].quote = 1;
    }
    long n = gb_auth_build(built, sizeof built, buf + a->scheme.off, a->scheme.len,
                           outp, a->nparams);
    if (n < 0)
        return; /* a folded line break inside a quoted value */
    EXPECT((size_t)n <= sizeof built);
    gb_auth b;
    gb_error err;
    gb_span sp = {0, (uint32_t)n};
    EXPECT(gb_auth_parse_one(built, sp, &b, &err) == GB_OK);
    EXPECT(b.nparams == a->nparams);
    EXPECT(b.scheme.len == a->scheme.len);
    char v[1024];
    for (unsigned i = 0; i < b.nparams; i++) {
        EXPECT(b.params[i].name.len == a->params[i].name.len);
        EXPECT(!memcmp(built + b.params[i].name.off, buf + a->params[i].name.off,
                       b.params[i].name.len));
        long k = gb_auth_value(built, &b.params[i], v, sizeof v);
        EXPECT(k == lens[i] && !memcmp(v, values[i], (size_t)k));
    }
}

static void check_item(const char *buf, gb_span in, const gb_auth *a)
{
    IN_SPAN(a->scheme, in);
    IN_SPAN(a->whole, in);
    EXPECT(a->scheme.len > 0);
    EXPECT(a->nparams <= GB_AUTH_MAX_PARAMS);
    if (a->has_token68)
        IN_SPAN(a->token68, in);
    for (unsigned i = 0; i < a->nparams; i++) {
        IN_SPAN(a->params[i].name, in);
        IN_SPAN(a->params[i].value, in);
        EXPECT(a->params[i].name.len > 0);
        char tmp[64];
        long k = gb_auth_value(buf, &a->params[i], tmp, sizeof tmp);
        EXPECT(k >= -1 && k <= (long)a->params[i].value.len && k <= (long)sizeof tmp);
    }
    gb_error err;
    gb_digest_challenge ch;
    if (gb_digest_parse_challenge(buf, a, &ch, &err) == GB_OK) {
        IN_SPAN(ch.realm.value, in);
        IN_SPAN(ch.nonce.value, in);
        EXPECT(ch.alg < GB_DIGEST_ALG__COUNT || ch.alg == GB_DIGEST_ALG_UNKNOWN);
        if (dctx && ch.alg < GB_DIGEST_ALG__COUNT) {
            char out[4096];
            gb_digest_answer_in ai = {.username = {"u", 1}, .password = {"p", 1},
                                      .method = {"REGISTER", 8}, .uri = {"sip:x", 5},
                                      .cnonce = {"c", 1}, .nc = 1, .qop = -1};
            long n = gb_digest_answer(dctx, NULL, buf, &ch, &ai, out, sizeof out, NULL);
            EXPECT(n >= -1);
        }
    } else {
        EXPECT(err.code == GB_ERR_AUTH && err.reason != NULL);
    }
    gb_digest_credentials cr;
    if (gb_digest_parse_credentials(buf, a, &cr, &err) == GB_OK) {
        IN_SPAN(cr.username.value, in);
        IN_SPAN(cr.response.value, in);
        EXPECT(cr.qop_v <= GB_QOP_AUTH_INT);
    } else {
        EXPECT(err.code == GB_ERR_AUTH && err.reason != NULL);
    }
    round_trip(buf, a);
}

static void check(const char *buf, gb_span in)
{
    gb_auth_iter it;
    static gb_auth a;
    gb_error err;
    int r, count = 0;
    gb_auth_begin(&it, buf, in);
    while ((r = gb_auth_next(&it, &a, &err)) == 1) {
        check_item(buf, in, &a);
        EXPECT(++count <= (int)in.len);
    }
    if (r < 0) {
        EXPECT(err.code == GB_ERR_AUTH && err.reason != NULL);
        EXPECT(err.offset >= in.off && err.offset <= in.off + in.len);
    }
    if (gb_auth_parse_one(buf, in, &a, &err) != GB_OK)
        EXPECT(err.offset >= in.off && err.offset <= in.off + in.len);

    if (dctx && nonces) {
        static gb_digest_verdict v;
        gb_digest_check chk = {.method = {"REGISTER", 8}, .request_uri = {"sip:x", 5},
                               .binding = {"b", 1}, .now_ms = 1000, .uri_policy = GB_URI_SAME_HOST};
        gb_digest_result res = gb_digest_verify(dctx, nonces, buf, in, &chk, lookup, NULL, &v);
        EXPECT((unsigned)res < GB_DIGEST_RESULT__COUNT && v.detail != NULL);
        EXPECT(res != GB_DIGEST_OK); /* nothing random carries our nonce */
        res = gb_digest_verify(dctx, NULL, buf, in, &chk, lookup, NULL, &v);
        EXPECT((unsigned)res < GB_DIGEST_RESULT__COUNT && v.detail != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    if (!dctx) {
        static const unsigned char key[32] = "fuzz-key-fuzz-key-fuzz-key-fuzz";
        gb_digest_nonce_config cfg = {key, sizeof key, 60000, 64, GB_NONCE_BASE64URL, 0};
        dctx = gb_digest_ctx_new();
        nonces = gb_digest_nonces_new(&cfg, NULL);
    }
    char *buf = malloc(size ? size : 1);
    if (size)
        memcpy(buf, data, size);
    gb_span all = {0, (uint32_t)size};
    check(buf, all);
    if (size > 2) {
        gb_span inner = {1, (uint32_t)size - 2};
        check(buf, inner);
    }
    free(buf);
    return 0;
}
