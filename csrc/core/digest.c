/*
 * digest.c - Digest authentication on OpenSSL EVP (see digest.h).
 *
 * Speed matters on the server: a platform may verify tens of thousands of
 * REGISTERs a second.  The EVP_MDs are fetched once per context and one
 * EVP_MD_CTX is reused for every hash, because implicit fetches and fresh
 * contexts cost as much as the hashing itself.  (OpenSSL 3.0 still frees
 * and allocates the provider context on every EVP_DigestInit_ex2 and
 * EVP_MD_CTX_copy_ex, so the fewer digest calls the better.)  The nonce MAC
 * keeps its keyed HMAC inner/outer states and copies them, so a nonce check
 * costs two SHA-256 compressions and no key schedule, and nonces issued
 * lately are recognised from a ring without any (see "issued cache").
 */
#include "digest.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

/* ---- algorithms ---------------------------------------------------------- */

enum { H_MD5 = 0, H_SHA256, H_SHA512_256, H__COUNT };

static const struct {
    const char *name;
    uint8_t name_len;
    uint8_t hash;
    uint8_t sess;
    uint8_t strength;
} algs[GB_DIGEST_ALG__COUNT] = {
    [GB_DIGEST_MD5] = {"MD5", 3, H_MD5, 0, 1},
    [GB_DIGEST_MD5_SESS] = {"MD5-sess", 8, H_MD5, 1, 1},
    [GB_DIGEST_SHA256] = {"SHA-256", 7, H_SHA256, 0, 2},
    [GB_DIGEST_SHA256_SESS] = {"SHA-256-sess", 12, H_SHA256, 1, 2},
    [GB_DIGEST_SHA512_256] = {"SHA-512-256", 11, H_SHA512_256, 0, 3},
    [GB_DIGEST_SHA512_256_SESS] = {"SHA-512-256-sess", 16, H_SHA512_256, 1, 3},
};

static const char *const evp_names[H__COUNT] = {"MD5", "SHA2-256", "SHA2-512/256"};
static const uint8_t hash_bytes[H__COUNT] = {16, 32, 32};


static int beq(gb_bytes a, gb_bytes b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

#define HEXV(c) ((c) >= '0' && (c) <= '9' ? (c) - '0'             \
                 : (c) >= 'a' && (c) <= 'f' ? (c) - 'a' + 10      \
                 : (c) >= 'A' && (c) <= 'F' ? (c) - 'A' + 10 : -1)
#define H4(c) HEXV(c), HEXV((c) + 1), HEXV((c) + 2), HEXV((c) + 3)
#define H16(c) H4(c), H4((c) + 4), H4((c) + 8), H4((c) + 12)
#define H64(c) H16(c), H16((c) + 16), H16((c) + 32), H16((c) + 48)
static const int8_t hextab[256] = {H64(0), H64(64), H64(128), H64(192)};

static int hexval(unsigned char c)
{
    return hextab[c];
}

/* Eight bytes at once (SWAR): nonzero when all are hex digits of either
 * case; *low gets them lowercased (OR 0x20 is exact on hex digits).
 * GE(x, k) sets a byte's high bit when its low seven bits are >= k (k <=
 * 0x80: forcing bit 7 first keeps the subtraction from borrowing across
 * bytes); bytes with bit 7 set are refused through ~w. */
#define ONES 0x0101010101010101ull
#define GE(x, k) (((x) | ONES * 0x80) - ONES * (k))
static int hex8(const char *p, uint64_t *low)
{
    uint64_t w, y;
    memcpy(&w, p, 8);
    y = w | ONES * 0x20;
    uint64_t digit = GE(w, 0x30) & ~GE(w, 0x3a);
    uint64_t letter = GE(y, 0x61) & ~GE(y, 0x67);
    *low = y;
    return ((digit | letter) & ~w & ONES * 0x80) == ONES * 0x80;
}
#undef GE

static int all_hex(const char *p, size_t n)
{
    size_t i = 0;
    uint64_t dummy;
    for (; i + 8 <= n; i += 8)
        if (!hex8(p + i, &dummy))
            return 0;
    for (; i < n; i++)
        if (hexval((unsigned char)p[i]) < 0)
            return 0;
    return 1;
}

static const char hexdigits[16] = "0123456789abcdef";

/* Two lowercase hex characters per byte value: one load per input byte. */
#define HXC(n) ((n) < 10 ? '0' + (n) : 'a' - 10 + (n))
#define HP(i) HXC((i) >> 4), HXC((i) & 15)
#define HP4(i) HP(i), HP((i) + 1), HP((i) + 2), HP((i) + 3)
#define HP16(i) HP4(i), HP4((i) + 4), HP4((i) + 8), HP4((i) + 12)
#define HP64(i) HP16(i), HP16((i) + 16), HP16((i) + 32), HP16((i) + 48)
static const char hexpairs[512] = {HP64(0), HP64(64), HP64(128), HP64(192)};

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        memcpy(out + 2 * i, hexpairs + 2 * in[i], 2);
}

const char *gb_digest_alg_name(gb_digest_alg alg)
{
    return (unsigned)alg < GB_DIGEST_ALG__COUNT ? algs[alg].name : "unknown";
}

gb_digest_alg gb_digest_alg_lookup(const char *s, size_t n)
{
    for (unsigned i = 0; i < GB_DIGEST_ALG__COUNT; i++)
        if (gb_ieq(s, n, algs[i].name, algs[i].name_len))
            return (gb_digest_alg)i;
    return GB_DIGEST_ALG_UNKNOWN;
}

size_t gb_digest_hex_len(gb_digest_alg alg)
{
    return (unsigned)alg < GB_DIGEST_ALG__COUNT ? 2u * hash_bytes[algs[alg].hash] : 0;
}

int gb_digest_alg_strength(gb_digest_alg alg)
{
    return (unsigned)alg < GB_DIGEST_ALG__COUNT ? algs[alg].strength : 0;
}

/* ---- hashing context ----------------------------------------------------- */

/* HA2 = H(method ":" uri) is public and, on a registrar, the same for
 * every device that registers to the same Request-URI: a few remembered
 * values save one digest per verification. */
#define HA2_CACHE 4
#define HA2_KEY_MAX 192

typedef struct {
    uint16_t method_len, uri_len; /* 0/0: empty slot */
    uint8_t hash;
    char key[HA2_KEY_MAX];        /* method then uri */
    char ha2[GB_DIGEST_HEX_MAX];
} ha2_slot;

struct gb_digest_ctx {
    EVP_MD *md[H__COUNT];
    EVP_MD_CTX *mc;
    unsigned ha2_next;
    ha2_slot ha2[HA2_CACHE];
};

gb_digest_ctx *gb_digest_ctx_new(void)
{
    gb_digest_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    int any = 0;
    for (int i = 0; i < H__COUNT; i++) {
        ctx->md[i] = EVP_MD_fetch(NULL, evp_names[i], NULL);
        any |= ctx->md[i] != NULL;
    }
    if (!ctx->md[H_MD5] || !ctx->md[H_SHA256] || !ctx->md[H_SHA512_256])
        ERR_clear_error(); /* a provider without MD5 (FIPS) is not an error */
    ctx->mc = EVP_MD_CTX_new();
    if (!ctx->mc || !any) {
        gb_digest_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

void gb_digest_ctx_free(gb_digest_ctx *ctx)
{
    if (!ctx)
        return;
    for (int i = 0; i < H__COUNT; i++)
        EVP_MD_free(ctx->md[i]);
    EVP_MD_CTX_free(ctx->mc);
    free(ctx);
}

int gb_digest_available(const gb_digest_ctx *ctx, gb_digest_alg alg)
{
    return (unsigned)alg < GB_DIGEST_ALG__COUNT && ctx->md[algs[alg].hash] != NULL;
}

/* H(p0 ":" p1 ":" ... ) as lowercase hex into out.  Small inputs are joined
 * on the stack first: one EVP_DigestUpdate is cheaper than eleven. */
static int hash_join_raw(gb_digest_ctx *ctx, int h, const gb_bytes *parts, int n,
                         unsigned char *raw)
{
    unsigned int rawlen = 0;
    char join[512];
    size_t total = (size_t)(n - 1);
    for (int i = 0; i < n; i++)
        total += parts[i].n;
    if (!ctx->md[h] || !EVP_DigestInit_ex2(ctx->mc, ctx->md[h], NULL))
        return -1;
    if (total <= sizeof join) {
        size_t o = 0;
        for (int i = 0; i < n; i++) {
            if (i)
                join[o++] = ':';
            if (parts[i].n)
                memcpy(join + o, parts[i].p, parts[i].n);
            o += parts[i].n;
        }
        if (!EVP_DigestUpdate(ctx->mc, join, o))
            return -1;
    } else {
        for (int i = 0; i < n; i++) {
            if ((i && !EVP_DigestUpdate(ctx->mc, ":", 1)) ||
                (parts[i].n && !EVP_DigestUpdate(ctx->mc, parts[i].p, parts[i].n)))
                return -1;
        }
    }
    if (!EVP_DigestFinal_ex(ctx->mc, raw, &rawlen))
        return -1;
    return (int)rawlen;
}

/* The same as lowercase hex into out; returns the hex length or -1. */
static int hash_join(gb_digest_ctx *ctx, int h, const gb_bytes *parts, int n,
                     char *out)
{
    unsigned char raw[EVP_MAX_MD_SIZE];
    int r = hash_join_raw(ctx, h, parts, n, raw);
    if (r < 0)
        return -1;
    to_hex(raw, (size_t)r, out);
    return 2 * r;
}

int gb_digest_ha1(gb_digest_ctx *ctx, gb_digest_alg alg, gb_bytes username,
                  gb_bytes realm, gb_bytes password, char out[GB_DIGEST_HEX_MAX])
{
    if ((unsigned)alg >= GB_DIGEST_ALG__COUNT)
        return -1;
    gb_bytes parts[3] = {username, realm, password};
    return hash_join(ctx, algs[alg].hash, parts, 3, out);
}

int gb_digest_userhash(gb_digest_ctx *ctx, gb_digest_alg alg, gb_bytes username,
                       gb_bytes realm, char out[GB_DIGEST_HEX_MAX])
{
    if ((unsigned)alg >= GB_DIGEST_ALG__COUNT)
        return -1;
    gb_bytes parts[2] = {username, realm};
    return hash_join(ctx, algs[alg].hash, parts, 2, out);
}

static const char *const qop_names[3] = {"", "auth", "auth-int"};

/* HA2 for qop none/auth, from the cache when this method and uri were
 * hashed lately with the same algorithm. */
static int ha2_cached(gb_digest_ctx *ctx, int h, gb_bytes method, gb_bytes uri, char *out)
{
    size_t hexlen = 2u * hash_bytes[h];
    int cacheable = method.n && method.n + uri.n <= HA2_KEY_MAX;
    if (cacheable) {
        for (int i = 0; i < HA2_CACHE; i++) {
            const ha2_slot *s = &ctx->ha2[i];
            if (s->hash == h && s->method_len == method.n && s->uri_len == uri.n &&
                memcmp(s->key, method.p, method.n) == 0 &&
                (uri.n == 0 || memcmp(s->key + method.n, uri.p, uri.n) == 0)) {
                memcpy(out, s->ha2, hexlen);
                return (int)hexlen;
            }
        }
    }
    gb_bytes p[2] = {method, uri};
    int n = hash_join(ctx, h, p, 2, out);
    if (n < 0 || !cacheable)
        return n;
    ha2_slot *s = &ctx->ha2[ctx->ha2_next++ % HA2_CACHE];
    s->hash = (uint8_t)h;
    s->method_len = (uint16_t)method.n;
    s->uri_len = (uint16_t)uri.n;
    memcpy(s->key, method.p, method.n);
    if (uri.n)
        memcpy(s->key + method.n, uri.p, uri.n);
    memcpy(s->ha2, out, hexlen);
    return n;
}

/* The response as raw digest bytes (what gb_digest_response hex-encodes);
 * returns their number or -1 with *why set.  why must not be NULL. */
static int response_raw(gb_digest_ctx *ctx, const gb_digest_input *in,
                        unsigned char out[EVP_MAX_MD_SIZE], const char **why)
{
    if ((unsigned)in->alg >= GB_DIGEST_ALG__COUNT) {
        *why = "unknown algorithm";
        return -1;
    }
    if (in->qop < GB_QOP_NONE || in->qop > GB_QOP_AUTH_INT) {
        *why = "unknown qop";
        return -1;
    }
    int h = algs[in->alg].hash;
    size_t hexlen = 2u * hash_bytes[h];
    if (!ctx->md[h]) {
        *why = "algorithm not available in this OpenSSL";
        return -1;
    }
    char ha1[GB_DIGEST_HEX_MAX], ha2[GB_DIGEST_HEX_MAX], hbody[GB_DIGEST_HEX_MAX];
    if (in->ha1.n) {
        int bad = in->ha1.n != hexlen;
        for (size_t i = 0; i < hexlen && !bad; i += 8) { /* validate + lowercase */
            uint64_t w;
            bad = !hex8(in->ha1.p + i, &w);
            memcpy(ha1 + i, &w, 8);
        }
        if (bad) {
            *why = "stored HA1 is not hex of this algorithm's length";
            return -1;
        }
    } else {
        gb_bytes p[3] = {in->username, in->realm, in->password};
        if (hash_join(ctx, h, p, 3, ha1) < 0)
            goto evp;
    }
    if ((algs[in->alg].sess || in->qop != GB_QOP_NONE) && in->cnonce.n == 0) {
        *why = algs[in->alg].sess ? "-sess algorithm needs a cnonce"
                                  : "qop needs a cnonce";
        return -1;
    }
    if (in->qop != GB_QOP_NONE && in->nc.n == 0) {
        *why = "qop needs nc";
        return -1;
    }
    if (algs[in->alg].sess) {
        gb_bytes p[3] = {{ha1, hexlen}, in->nonce, in->cnonce};
        if (hash_join(ctx, h, p, 3, ha1) < 0)
            goto evp;
    }
    if (in->qop == GB_QOP_AUTH_INT) {
        gb_bytes b[1] = {in->body};
        if (hash_join(ctx, h, b, 1, hbody) < 0)
            goto evp;
        gb_bytes p[3] = {in->method, in->uri, {hbody, hexlen}};
        if (hash_join(ctx, h, p, 3, ha2) < 0)
            goto evp;
    } else if (ha2_cached(ctx, h, in->method, in->uri, ha2) < 0) {
        goto evp;
    }
    int r;
    if (in->qop == GB_QOP_NONE) {
        gb_bytes p[3] = {{ha1, hexlen}, in->nonce, {ha2, hexlen}};
        r = hash_join_raw(ctx, h, p, 3, out);
    } else {
        gb_bytes q = {qop_names[in->qop], strlen(qop_names[in->qop])};
        gb_bytes p[6] = {{ha1, hexlen}, in->nonce, in->nc, in->cnonce, q,
                         {ha2, hexlen}};
        r = hash_join_raw(ctx, h, p, 6, out);
    }
    if (r < 0)
        goto evp;
    return r;
evp:
    *why = "OpenSSL digest failed";
    return -1;
}

int gb_digest_response(gb_digest_ctx *ctx, const gb_digest_input *in,
                       char out[GB_DIGEST_HEX_MAX], const char **why)
{
    const char *dummy;
    unsigned char raw[EVP_MAX_MD_SIZE];
    int r = response_raw(ctx, in, raw, why ? why : &dummy);
    if (r < 0)
        return -1;
    to_hex(raw, (size_t)r, out);
    return 2 * r;
}

/* ---- parsing challenges and credentials --------------------------------- */

static int perr(gb_error *err, uint32_t off, const char *reason)
{
    return gb_fail(err, GB_ERR_AUTH, 0, off, reason, GB_HDR_OTHER);
}

/* Known parameter names.  Lookup switches on length and first letter, then
 * confirms with one case-insensitive compare: a credential has about six
 * parameters and this runs for every REGISTER. */
enum {
    F_USERNAME, F_REALM, F_NONCE, F_URI, F_RESPONSE, F_ALGORITHM, F_CNONCE,
    F_OPAQUE, F_QOP, F_NC, F_USERHASH, F_DOMAIN, F_STALE, F_CHARSET, F__COUNT
};

static const struct {
    char name[16];         /* zero padded: read eight bytes at a time */
    uint8_t len;
    const char *dup;
} fields[F__COUNT] = {
#define F(id, n) [id] = {#n, sizeof #n - 1, "duplicate " #n}
    F(F_USERNAME, username), F(F_REALM, realm), F(F_NONCE, nonce),
    F(F_URI, uri), F(F_RESPONSE, response), F(F_ALGORITHM, algorithm),
    F(F_CNONCE, cnonce), F(F_OPAQUE, opaque), F(F_QOP, qop), F(F_NC, nc),
    F(F_USERHASH, userhash), F(F_DOMAIN, domain), F(F_STALE, stale),
    F(F_CHARSET, charset),
#undef F
};

/* Keeps the first len of eight bytes (endian-neutral: applied by memcpy). */
static const unsigned char keep_bytes[9][8] = {
    {0}, {255}, {255, 255}, {255, 255, 255}, {255, 255, 255, 255},
    {255, 255, 255, 255, 255}, {255, 255, 255, 255, 255, 255},
    {255, 255, 255, 255, 255, 255, 255}, {255, 255, 255, 255, 255, 255, 255, 255},
};

/* Field id of name n[0..len), or -1.  room: bytes readable from n (at
 * least len); with eight or more the name is compared as one word. */
static int field_id(const char *n, size_t len, size_t room)
{
    int id = -1;
    if (len < 2)
        return -1;
    int c = gb_lower((unsigned char)n[0]);
    switch (len) {
    case 2: id = F_NC; break;
    case 3: id = c == 'u' ? F_URI : F_QOP; break;
    case 5: id = c == 'r' ? F_REALM : c == 'n' ? F_NONCE : F_STALE; break;
    case 6: id = c == 'c' ? F_CNONCE : c == 'o' ? F_OPAQUE : F_DOMAIN; break;
    case 7: id = F_CHARSET; break;
    case 8:
        id = c == 'r' ? F_RESPONSE
                      : gb_lower((unsigned char)n[4]) == 'n' ? F_USERNAME : F_USERHASH;
        break;
    case 9: id = F_ALGORITHM; break;
    default: return -1;
    }
    if (len != fields[id].len)
        return -1;
    /* field names are lowercase letters, so OR 0x20 is an exact case fold */
    if (room >= 8) {
        uint64_t w, want, keep;
        size_t k = len < 8 ? len : 8;
        memcpy(&w, n, 8);
        memcpy(&want, fields[id].name, 8);
        memcpy(&keep, keep_bytes[k], 8);
        if (((w | 0x2020202020202020ull) & keep) != want)
            return -1;
        return len <= 8 || ((unsigned char)n[8] | 0x20) == (unsigned char)fields[id].name[8]
                   ? id : -1;
    }
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)n[i] | 0x20) != (unsigned char)fields[id].name[i])
            return -1;
    return id;
}

/* Where each field lives in the challenge / credentials struct (0: not a
 * field of that kind; offsets are never 0 for the fields listed). */
#define CH(f) offsetof(gb_digest_challenge, f) + 1
static const uint16_t challenge_off[F__COUNT] = {
    [F_REALM] = CH(realm), [F_DOMAIN] = CH(domain), [F_NONCE] = CH(nonce),
    [F_OPAQUE] = CH(opaque), [F_STALE] = CH(stale), [F_ALGORITHM] = CH(algorithm),
    [F_QOP] = CH(qop), [F_CHARSET] = CH(charset), [F_USERHASH] = CH(userhash),
};
#undef CH
#define CR(f) offsetof(gb_digest_credentials, f) + 1
static const uint16_t cred_off[F__COUNT] = {
    [F_USERNAME] = CR(username), [F_REALM] = CR(realm), [F_NONCE] = CR(nonce),
    [F_URI] = CR(uri), [F_RESPONSE] = CR(response), [F_ALGORITHM] = CR(algorithm),
    [F_CNONCE] = CR(cnonce), [F_OPAQUE] = CR(opaque), [F_QOP] = CR(qop),
    [F_NC] = CR(nc), [F_USERHASH] = CR(userhash),
};
#undef CR

/* Copy each known parameter into its field; a second one is an error. */
static int collect(const char *buf, const gb_auth *a, void *out,
                   const uint16_t *offs, gb_error *err)
{
    uint32_t end = a->whole.off + a->whole.len;
    for (unsigned i = 0; i < a->nparams; i++) {
        const gb_param *p = &a->params[i];
        int id = field_id(buf + p->name.off, p->name.len, end - p->name.off);
        if (id < 0 || !offs[id])
            continue;
        gb_param *f = (gb_param *)((char *)out + offs[id] - 1);
        if (f->has_value)
            return perr(err, p->name.off, fields[id].dup);
        *f = *p;
    }
    return GB_OK;
}

static int is_true(const char *buf, const gb_param *p, int *out)
{
    const char *v = buf + p->value.off;
    if (gb_ieq(v, p->value.len, "true", 4))
        *out = 1;
    else if (gb_ieq(v, p->value.len, "false", 5))
        *out = 0;
    else
        return 0;
    return 1;
}

static uint8_t parse_alg(const char *buf, const gb_param *p)
{
    if (!p->has_value)
        return GB_DIGEST_MD5; /* RFC 7616 §3.3: absent means MD5 */
    return (uint8_t)gb_digest_alg_lookup(buf + p->value.off, p->value.len);
}

gb_error_code gb_digest_parse_challenge(const char *buf, const gb_auth *a,
                                        gb_digest_challenge *out, gb_error *err)
{
    memset(out, 0, sizeof *out);
    if (!gb_auth_scheme_is(buf, a, "Digest", 6))
        return perr(err, a->scheme.off, "not a Digest challenge");
    if (a->has_token68)
        return perr(err, a->token68.off, "Digest challenge with a token68");
    if (collect(buf, a, out, challenge_off, err))
        return GB_ERR_AUTH;
    if (!out->realm.has_value)
        return perr(err, a->whole.off, "missing realm");
    if (!out->nonce.has_value)
        return perr(err, a->whole.off, "missing nonce");
    out->alg = parse_alg(buf, &out->algorithm);
    if (out->qop.has_value) {
        /* qop-options: a comma list of tokens; unknown ones are ignored */
        const char *v = buf + out->qop.value.off;
        size_t n = out->qop.value.len, i = 0;
        while (i < n) {
            while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
                i++;
            size_t s = i;
            while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
                i++;
            if (gb_ieq(v + s, i - s, "auth", 4))
                out->qop_mask |= GB_QOP_BIT(GB_QOP_AUTH);
            else if (gb_ieq(v + s, i - s, "auth-int", 8))
                out->qop_mask |= GB_QOP_BIT(GB_QOP_AUTH_INT);
        }
    }
    int t = 0;
    if (out->stale.has_value && is_true(buf, &out->stale, &t))
        out->is_stale = (uint8_t)t;
    t = 0;
    if (out->userhash.has_value && is_true(buf, &out->userhash, &t))
        out->wants_userhash = (uint8_t)t;
    return GB_OK;
}

static gb_error_code cred_fields(const char *buf, const gb_auth *a,
                                 gb_digest_credentials *out, gb_error *err);

/* has_value marks presence; clearing just the flags is enough and cheaper
 * than a memset on this path (runs per REGISTER). */
static void cred_clear(gb_digest_credentials *out)
{
    out->username.has_value = out->realm.has_value = out->nonce.has_value = 0;
    out->uri.has_value = out->response.has_value = out->algorithm.has_value = 0;
    out->cnonce.has_value = out->opaque.has_value = out->qop.has_value = 0;
    out->nc.has_value = out->userhash.has_value = 0;
    out->alg = 0;
    out->qop_v = GB_QOP_NONE;
    out->is_userhash = 0;
    out->nc_value = 0;
}

gb_error_code gb_digest_parse_credentials(const char *buf, const gb_auth *a,
                                          gb_digest_credentials *out,
                                          gb_error *err)
{
    cred_clear(out);
    if (gb_auth_is_capability(buf, a))
        return perr(err, a->scheme.off, "GB capability hint, not a credential");
    if (!gb_auth_scheme_is(buf, a, "Digest", 6))
        return perr(err, a->scheme.off, "not Digest credentials");
    return cred_fields(buf, a, out, err);
}

/* gb_digest_parse_credentials once the scheme is known to be Digest and
 * the flags of out are clear. */
static gb_error_code cred_fields(const char *buf, const gb_auth *a,
                                 gb_digest_credentials *out, gb_error *err)
{
    if (a->has_token68)
        return perr(err, a->token68.off, "Digest credentials with a token68");
    if (collect(buf, a, out, cred_off, err))
        return GB_ERR_AUTH;
    if (!out->username.has_value) {
        if (gb_auth_find(buf, a, "username*", 9) >= 0)
            return perr(err, a->whole.off,
                        "username* (RFC 7616 extended notation) is not supported");
        return perr(err, a->whole.off, "missing username");
    }
    if (!out->realm.has_value)
        return perr(err, a->whole.off, "missing realm");
    if (!out->nonce.has_value)
        return perr(err, a->whole.off, "missing nonce");
    if (!out->uri.has_value)
        return perr(err, a->whole.off, "missing uri");
    if (!out->response.has_value)
        return perr(err, a->whole.off, "missing response");
    out->alg = parse_alg(buf, &out->algorithm);
    const char *r = buf + out->response.value.off;
    size_t rn = out->response.value.len;
    if (!all_hex(r, rn) || rn == 0)
        return perr(err, out->response.value.off, "response is not hex");
    if (out->alg != GB_DIGEST_ALG_UNKNOWN && rn != gb_digest_hex_len(out->alg))
        return perr(err, out->response.value.off,
                    "response length does not match the algorithm");
    if (out->qop.has_value) {
        const char *q = buf + out->qop.value.off;
        if (gb_ieq(q, out->qop.value.len, "auth", 4))
            out->qop_v = GB_QOP_AUTH;
        else if (gb_ieq(q, out->qop.value.len, "auth-int", 8))
            out->qop_v = GB_QOP_AUTH_INT;
        else
            return perr(err, out->qop.value.off, "qop is neither auth nor auth-int");
        if (!out->nc.has_value)
            return perr(err, a->whole.off, "qop without nc");
        if (!out->cnonce.has_value)
            return perr(err, a->whole.off, "qop without cnonce");
        const char *nc = buf + out->nc.value.off;
        if (out->nc.value.len != 8 || !all_hex(nc, 8))
            return perr(err, out->nc.value.off, "nc is not 8 hex digits");
        uint32_t v = 0;
        for (int i = 0; i < 8; i++)
            v = v << 4 | (uint32_t)hexval((unsigned char)nc[i]);
        if (v == 0)
            return perr(err, out->nc.value.off, "nc is zero");
        out->nc_value = v;
    }
    if (out->alg != GB_DIGEST_ALG_UNKNOWN && algs[out->alg].sess &&
        !out->cnonce.has_value)
        return perr(err, a->whole.off, "-sess algorithm without cnonce");
    if (out->userhash.has_value) {
        int t = 0;
        if (!is_true(buf, &out->userhash, &t))
            return perr(err, out->userhash.value.off, "userhash is neither true nor false");
        out->is_userhash = (uint8_t)t;
    }
    return GB_OK;
}

/* ---- building ------------------------------------------------------------- */

#define OUT(nm, v, q) {nm, sizeof nm - 1, (v).p, (v).n, q}

long gb_digest_build_challenge(char *out, size_t cap,
                               const gb_digest_challenge_out *c)
{
    gb_auth_out p[8];
    size_t n = 0;
    char qop[16];
    size_t qn = 0;
    if ((unsigned)c->alg >= GB_DIGEST_ALG__COUNT)
        return -1;
    p[n++] = (gb_auth_out)OUT("realm", c->realm, 1);
    if (c->domain.p) /* present, maybe empty */
        p[n++] = (gb_auth_out)OUT("domain", c->domain, 1);
    p[n++] = (gb_auth_out)OUT("nonce", c->nonce, 1);
    if (c->opaque.p) /* present, maybe empty */
        p[n++] = (gb_auth_out)OUT("opaque", c->opaque, 1);
    if (c->stale)
        p[n++] = (gb_auth_out){"stale", 5, "true", 4, 0};
    p[n++] = (gb_auth_out){"algorithm", 9, algs[c->alg].name, algs[c->alg].name_len, 0};
    if (c->qop_mask & GB_QOP_BIT(GB_QOP_AUTH)) {
        memcpy(qop, "auth", 4);
        qn = 4;
    }
    if (c->qop_mask & GB_QOP_BIT(GB_QOP_AUTH_INT)) {
        if (qn)
            qop[qn++] = ',';
        memcpy(qop + qn, "auth-int", 8);
        qn += 8;
    }
    if (qn)
        p[n++] = (gb_auth_out){"qop", 3, qop, qn, 1};
    if (c->userhash)
        p[n++] = (gb_auth_out){"userhash", 8, "true", 4, 0};
    return gb_auth_build(out, cap, "Digest", 6, p, n);
}

long gb_digest_build_credentials(char *out, size_t cap,
                                 const gb_digest_credentials_out *c)
{
    gb_auth_out p[11];
    size_t n = 0;
    if ((unsigned)c->alg >= GB_DIGEST_ALG__COUNT ||
        c->qop < GB_QOP_NONE || c->qop > GB_QOP_AUTH_INT)
        return -1;
    p[n++] = (gb_auth_out)OUT("username", c->username, 1);
    p[n++] = (gb_auth_out)OUT("realm", c->realm, 1);
    p[n++] = (gb_auth_out)OUT("nonce", c->nonce, 1);
    p[n++] = (gb_auth_out)OUT("uri", c->uri, 1);
    p[n++] = (gb_auth_out)OUT("response", c->response, 1);
    p[n++] = (gb_auth_out){"algorithm", 9, algs[c->alg].name, algs[c->alg].name_len, 0};
    if (c->cnonce.p) /* present, maybe empty */
        p[n++] = (gb_auth_out)OUT("cnonce", c->cnonce, 1);
    if (c->opaque.p) /* present, maybe empty */
        p[n++] = (gb_auth_out)OUT("opaque", c->opaque, 1);
    if (c->qop != GB_QOP_NONE) {
        p[n++] = (gb_auth_out){"qop", 3, qop_names[c->qop], strlen(qop_names[c->qop]), 0};
        p[n++] = (gb_auth_out)OUT("nc", c->nc, 0);
    }
    if (c->userhash)
        p[n++] = (gb_auth_out){"userhash", 8, "true", 4, 0};
    return gb_auth_build(out, cap, "Digest", 6, p, n);
}

/* ---- client side ------------------------------------------------------------ */

void gb_digest_client_init(gb_digest_client *c)
{
    c->nonce_len = 0;
    c->nc = 0;
}

uint32_t gb_digest_client_next_nc(gb_digest_client *c, gb_bytes nonce)
{
    if (nonce.n <= sizeof c->nonce && nonce.n == c->nonce_len &&
        memcmp(c->nonce, nonce.p, nonce.n) == 0 && c->nc < UINT32_MAX)
        return ++c->nc;
    if (nonce.n <= sizeof c->nonce) {
        memcpy(c->nonce, nonce.p, nonce.n);
        c->nonce_len = (uint32_t)nonce.n;
    } else {
        c->nonce_len = UINT32_MAX; /* too long to remember: always 1 */
    }
    c->nc = 1;
    return 1;
}

int gb_digest_choose(const gb_digest_challenge *ch, size_t n,
                     unsigned allowed_algs)
{
    int best = -1, best_strength = 0;
    if (allowed_algs == 0)
        allowed_algs = GB_DIGEST_ALGS_ALL;
    for (size_t i = 0; i < n; i++) {
        unsigned a = ch[i].alg;
        if (a >= GB_DIGEST_ALG__COUNT || !(allowed_algs & GB_DIGEST_ALG_BIT(a)))
            continue;
        if (algs[a].strength > best_strength) {
            best = (int)i;
            best_strength = algs[a].strength;
        }
    }
    return best;
}

int gb_digest_cnonce(char out[32])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1)
        return -1;
    to_hex(r, sizeof r, out);
    return 0;
}

/* A parameter's value, unescaped into scratch when it holds escapes.
 * Returns 0, or -1 when it does not fit. */
static inline int value_of(const char *buf, const gb_param *p, char *scratch,
                    size_t *used, size_t cap, gb_bytes *out)
{
    if (!p->has_value) {
        out->p = NULL;
        out->n = 0;
        return 0;
    }
    if (!gb_auth_value_escaped(buf, p)) {
        out->p = buf + p->value.off;
        out->n = p->value.len;
        return 0;
    }
    long n = gb_auth_value(buf, p, scratch + *used, cap - *used);
    if (n < 0)
        return -1;
    out->p = scratch + *used;
    out->n = (size_t)n;
    *used += (size_t)n;
    return 0;
}

long gb_digest_answer(gb_digest_ctx *ctx, gb_digest_client *client,
                      const char *chbuf, const gb_digest_challenge *ch,
                      const gb_digest_answer_in *in, char *out, size_t cap,
                      const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (ch->alg >= GB_DIGEST_ALG__COUNT) {
        *why = "challenge uses an algorithm gbsip does not know";
        return -1;
    }
    if (!gb_digest_available(ctx, (gb_digest_alg)ch->alg)) {
        *why = "algorithm not available in this OpenSSL";
        return -1;
    }
    char scratch[3 * GB_DIGEST_MAX_VALUE];
    size_t used = 0;
    gb_bytes realm, nonce, opaque;
    if (value_of(chbuf, &ch->realm, scratch, &used, sizeof scratch, &realm) ||
        value_of(chbuf, &ch->nonce, scratch, &used, sizeof scratch, &nonce) ||
        value_of(chbuf, &ch->opaque, scratch, &used, sizeof scratch, &opaque)) {
        *why = "challenge value too long";
        return -1;
    }
    if (!ch->opaque.has_value)
        opaque.p = NULL;
    else if (!opaque.p)
        opaque.p = "";

    int qop = in->qop;
    if (qop < 0) {
        if (ch->qop_mask & GB_QOP_BIT(GB_QOP_AUTH))
            qop = GB_QOP_AUTH;
        else if (ch->qop_mask & GB_QOP_BIT(GB_QOP_AUTH_INT))
            qop = GB_QOP_AUTH_INT;
        else
            qop = GB_QOP_NONE;
    } else if (qop > GB_QOP_AUTH_INT ||
               (qop != GB_QOP_NONE && !(ch->qop_mask & GB_QOP_BIT(qop))) ||
               (qop == GB_QOP_NONE && ch->qop_mask)) {
        /* RFC 7616 §3.4: a qop the server did not offer, or none when it did */
        *why = "qop not offered by the challenge";
        return -1;
    }

    char cnonce_buf[32], ncbuf[8];
    gb_bytes cnonce = in->cnonce, nc = {NULL, 0};
    int need_cnonce = qop != GB_QOP_NONE || algs[ch->alg].sess;
    if (need_cnonce && cnonce.n == 0) {
        if (gb_digest_cnonce(cnonce_buf) < 0) {
            *why = "RAND_bytes failed";
            return -1;
        }
        cnonce.p = cnonce_buf;
        cnonce.n = sizeof cnonce_buf;
    }
    if (!need_cnonce)
        cnonce.p = NULL, cnonce.n = 0;
    if (qop != GB_QOP_NONE) {
        uint32_t v = in->nc ? in->nc
                            : client ? gb_digest_client_next_nc(client, nonce) : 1;
        for (int i = 7; i >= 0; i--, v >>= 4)
            ncbuf[i] = hexdigits[v & 15];
        nc.p = ncbuf;
        nc.n = 8;
    }

    gb_digest_input di = {
        .alg = (gb_digest_alg)ch->alg, .qop = qop, .username = in->username,
        .realm = realm, .password = in->password, .ha1 = in->ha1,
        .nonce = nonce, .cnonce = cnonce, .nc = nc, .method = in->method,
        .uri = in->uri, .body = in->body,
    };
    char resp[GB_DIGEST_HEX_MAX], uh[GB_DIGEST_HEX_MAX];
    int rn = gb_digest_response(ctx, &di, resp, why);
    if (rn < 0)
        return -1;
    gb_bytes user = in->username;
    if (ch->wants_userhash) {
        int un = gb_digest_userhash(ctx, (gb_digest_alg)ch->alg, in->username, realm, uh);
        if (un < 0) {
            *why = "OpenSSL digest failed";
            return -1;
        }
        user.p = uh;
        user.n = (size_t)un;
    }
    gb_digest_credentials_out co = {
        .username = user, .realm = realm, .nonce = nonce, .uri = in->uri,
        .response = {resp, (size_t)rn}, .cnonce = cnonce, .opaque = opaque,
        .nc = nc, .alg = (gb_digest_alg)ch->alg, .qop = qop,
        .userhash = ch->wants_userhash,
    };
    long n = gb_digest_build_credentials(out, cap, &co);
    if (n < 0)
        *why = "a value cannot be written in a header (CR, LF or NUL)";
    return n;
}

/* ---- server side: stateless nonces ---------------------------------------- */

/*
 * A nonce is 24 bytes, written as 32 base64url or 48 hex characters:
 *   issued_ms (6 bytes, big-endian) | salt (2 bytes) | tag (16 bytes)
 * tag = HMAC-SHA256(key, issued_ms | salt | binding) cut to 128 bits.  The
 * binding (source address, realm, whatever the caller names) is not in the
 * nonce; the verifier supplies it again, so a nonce issued to one address
 * is forged when it comes back from another.  The salt is a counter that
 * makes two nonces issued in the same millisecond differ.
 *
 * The issued cache is an accelerator, not state the design depends on: a
 * ring of the last issued_slots nonces this object issued, indexed by the
 * nonce's counter (consecutive issues land in consecutive slots, so the ring
 * always holds exactly the newest ones).  A slot stores the 24 raw bytes and
 * the binding.  A presented nonce whose bytes and binding equal its slot's
 * was computed here by the HMAC, so it is authentic without recomputing it;
 * anything else (evicted, issued by another process with the same key,
 * binding too long to store, forged) takes the HMAC path as before.  The
 * cache therefore accepts a subset of what the HMAC accepts, with fixed
 * memory; it holds only values already sent in challenges, no key material.
 *
 * The nc table remembers, for nonces used with qop, the highest nc seen:
 * buckets of 4 slots indexed by the tag (already uniformly random).  When a
 * slot holding a live nonce must be reused, every nonce issued at or before
 * that one which is not in the table becomes stale: the table may forget,
 * but forgetting never lets a replay through; it costs a re-challenge.
 */
#define NONCE_RAW 24
#define NONCE_HDR 8
#define TAG_LEN 16
#define BUCKET 4

typedef struct {
    unsigned char tag[TAG_LEN];
    int64_t issued_ms;
    uint32_t nc;
    uint32_t used;
} nc_slot;

/* One cache line per issued nonce; longer bindings are not cached. */
#define ISSUED_BIND_MAX 39
typedef struct {
    unsigned char raw[NONCE_RAW];
    uint8_t bind_n1;             /* binding length + 1; 0: empty slot */
    char bind[ISSUED_BIND_MAX];
} issued_slot;

struct gb_digest_nonces {
    EVP_MD *sha256;
    EVP_MD_CTX *inner, *outer, *work;
    int64_t lifetime_ms;
    int encoding;
    unsigned flags;
    uint16_t salt;
    uint32_t nbuckets;   /* power of two */
    int64_t floor_ms;    /* untracked nonces issued at or before: stale */
    nc_slot *slots;
    uint32_t issued_mask; /* issued ring size - 1; ring NULL when disabled */
    issued_slot *issued;
};

void gb_digest_nonces_free(gb_digest_nonces *n)
{
    if (!n)
        return;
    EVP_MD_CTX_free(n->inner);
    EVP_MD_CTX_free(n->outer);
    EVP_MD_CTX_free(n->work);
    EVP_MD_free(n->sha256);
    if (n->slots) {
        OPENSSL_cleanse(n->slots, sizeof(nc_slot) * BUCKET * n->nbuckets);
        free(n->slots);
    }
    free(n->issued);
    free(n);
}

gb_digest_nonces *gb_digest_nonces_new(const gb_digest_nonce_config *cfg,
                                       const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (!cfg->key || cfg->key_len < 16 || cfg->key_len > 64) {
        *why = "nonce key must be 16 to 64 bytes";
        return NULL;
    }
    if (cfg->lifetime_ms <= 0) {
        *why = "nonce lifetime must be positive";
        return NULL;
    }
    if (cfg->encoding != GB_NONCE_BASE64URL && cfg->encoding != GB_NONCE_HEX) {
        *why = "unknown nonce encoding";
        return NULL;
    }
    uint32_t want = cfg->replay_slots ? cfg->replay_slots : 4096;
    if (want > (1u << 24)) {
        *why = "replay table larger than 16M slots";
        return NULL;
    }
    gb_digest_nonces *n = calloc(1, sizeof *n);
    if (!n) {
        *why = "out of memory";
        return NULL;
    }
    n->lifetime_ms = cfg->lifetime_ms;
    n->encoding = cfg->encoding;
    n->flags = cfg->flags;
    n->floor_ms = INT64_MIN;
    n->nbuckets = 4;
    while (n->nbuckets * BUCKET < want)
        n->nbuckets <<= 1;
    n->slots = calloc((size_t)n->nbuckets * BUCKET, sizeof(nc_slot));
    if (!(cfg->flags & GB_NONCE_NO_CACHE) && gb_digest_nonces_set_cache(n, 4096) < 0) {
        *why = "out of memory";
        gb_digest_nonces_free(n);
        return NULL;
    }
    n->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    n->inner = EVP_MD_CTX_new();
    n->outer = EVP_MD_CTX_new();
    n->work = EVP_MD_CTX_new();
    if (!n->slots || !n->sha256 || !n->inner || !n->outer || !n->work) {
        *why = "out of memory or no SHA-256";
        gb_digest_nonces_free(n);
        return NULL;
    }
    /* HMAC (RFC 2104): keep H(K^ipad) and H(K^opad) absorbed, copy per use */
    unsigned char pad[64];
    int ok = 1;
    for (int i = 0; i < 64; i++)
        pad[i] = (unsigned char)((size_t)i < cfg->key_len ? cfg->key[i] : 0) ^ 0x36;
    ok &= EVP_DigestInit_ex2(n->inner, n->sha256, NULL) &&
          EVP_DigestUpdate(n->inner, pad, 64);
    for (int i = 0; i < 64; i++)
        pad[i] ^= 0x36 ^ 0x5c;
    ok &= EVP_DigestInit_ex2(n->outer, n->sha256, NULL) &&
          EVP_DigestUpdate(n->outer, pad, 64);
    OPENSSL_cleanse(pad, sizeof pad);
    if (!ok || RAND_bytes((unsigned char *)&n->salt, sizeof n->salt) != 1) {
        *why = "OpenSSL failed";
        gb_digest_nonces_free(n);
        return NULL;
    }
    return n;
}

int gb_digest_nonces_set_cache(gb_digest_nonces *n, uint32_t slots)
{
    if (slots > 65536) /* the ring is indexed by the 16-bit counter */
        return -1;
    issued_slot *ring = NULL;
    uint32_t sz = 0;
    if (slots) {
        sz = 16;
        while (sz < slots)
            sz <<= 1;
        ring = calloc(sz, sizeof *ring);
        if (!ring)
            return -1;
    }
    free(n->issued);
    n->issued = ring;
    n->issued_mask = sz ? sz - 1 : 0;
    return 0;
}

static int nonce_tag(gb_digest_nonces *n, const unsigned char hdr[NONCE_HDR],
                     gb_bytes binding, unsigned char tag[TAG_LEN])
{
    unsigned char ih[32];
    unsigned int len = 0;
    if (!EVP_MD_CTX_copy_ex(n->work, n->inner) ||
        !EVP_DigestUpdate(n->work, hdr, NONCE_HDR) ||
        (binding.n && !EVP_DigestUpdate(n->work, binding.p, binding.n)) ||
        !EVP_DigestFinal_ex(n->work, ih, &len) ||
        !EVP_MD_CTX_copy_ex(n->work, n->outer) ||
        !EVP_DigestUpdate(n->work, ih, len) ||
        !EVP_DigestFinal_ex(n->work, ih, &len))
        return -1;
    memcpy(tag, ih, TAG_LEN);
    return 0;
}

static const char b64url[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#define B64V(c) ((c) >= 'A' && (c) <= 'Z' ? (c) - 'A'                \
                 : (c) >= 'a' && (c) <= 'z' ? (c) - 'a' + 26         \
                 : (c) >= '0' && (c) <= '9' ? (c) - '0' + 52         \
                 : (c) == '-' ? 62 : (c) == '_' ? 63 : -1)
#define B4(c) (int8_t)B64V(c), (int8_t)B64V((c) + 1), (int8_t)B64V((c) + 2), (int8_t)B64V((c) + 3)
#define B16(c) B4(c), B4((c) + 4), B4((c) + 8), B4((c) + 12)
#define B64R(c) B16(c), B16((c) + 16), B16((c) + 32), B16((c) + 48)
static const int8_t b64tab[256] = {B64R(0), B64R(64), B64R(128), B64R(192)};

static int b64val(unsigned char c)
{
    return b64tab[c];
}

long gb_digest_nonce_issue(gb_digest_nonces *n, int64_t now_ms, gb_bytes binding,
                           char *out, size_t cap)
{
    unsigned char raw[NONCE_RAW];
    uint64_t t = (uint64_t)now_ms;
    for (int i = 5; i >= 0; i--, t >>= 8)
        raw[i] = (unsigned char)t;
    n->salt++;
    raw[6] = (unsigned char)(n->salt >> 8);
    raw[7] = (unsigned char)n->salt;
    if (nonce_tag(n, raw, binding, raw + NONCE_HDR) < 0)
        return -1;
    if (n->issued) {
        /* the counter picks the slot: the ring keeps the newest nonces */
        issued_slot *s = &n->issued[n->salt & n->issued_mask];
        memcpy(s->raw, raw, NONCE_RAW);
        s->bind_n1 = 0;
        if (binding.n <= ISSUED_BIND_MAX) {
            if (binding.n)
                memcpy(s->bind, binding.p, binding.n);
            s->bind_n1 = (uint8_t)(binding.n + 1);
        }
    }
    if (n->encoding == GB_NONCE_HEX) {
        if (cap < GB_NONCE_HEX_LEN)
            return -1;
        to_hex(raw, NONCE_RAW, out);
        return GB_NONCE_HEX_LEN;
    }
    if (cap < GB_NONCE_B64_LEN)
        return -1;
    for (int i = 0, o = 0; i < NONCE_RAW; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    return GB_NONCE_B64_LEN;
}

/* Either encoding is accepted whatever the factory issues now. */
static int nonce_decode(gb_bytes s, unsigned char raw[NONCE_RAW])
{
    if (s.n == GB_NONCE_HEX_LEN) {
        for (int i = 0; i < NONCE_RAW; i++) {
            int hi = hexval((unsigned char)s.p[2 * i]);
            int lo = hexval((unsigned char)s.p[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return -1;
            raw[i] = (unsigned char)(hi << 4 | lo);
        }
        return 0;
    }
    if (s.n == GB_NONCE_B64_LEN) {
        for (int i = 0, o = 0; i < GB_NONCE_B64_LEN; i += 4) {
            int a = b64val((unsigned char)s.p[i]), b = b64val((unsigned char)s.p[i + 1]);
            int c = b64val((unsigned char)s.p[i + 2]), d = b64val((unsigned char)s.p[i + 3]);
            if ((a | b | c | d) < 0)
                return -1;
            uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
            raw[o++] = (unsigned char)(v >> 16);
            raw[o++] = (unsigned char)(v >> 8);
            raw[o++] = (unsigned char)v;
        }
        return 0;
    }
    return -1;
}

static int64_t nonce_time(const unsigned char raw[NONCE_RAW])
{
    uint64_t t = 0;
    for (int i = 0; i < 6; i++)
        t = t << 8 | raw[i];
    return (int64_t)t;
}

static int nonce_expired(const gb_digest_nonces *n, int64_t issued, int64_t now)
{
    /* a nonce from the future means the clock went back: stale as well */
    return now - issued > n->lifetime_ms || issued - now > n->lifetime_ms;
}

/* Nonzero when raw + binding is, byte for byte, a nonce issued here and
 * still in the ring: authentic without the HMAC.  The bytes are compared
 * in constant time so the cache cannot be used as a tag oracle. */
static int issued_hit(const gb_digest_nonces *n, const unsigned char raw[NONCE_RAW],
                      gb_bytes binding)
{
    if (!n->issued)
        return 0;
    const issued_slot *s = &n->issued[((unsigned)raw[6] << 8 | raw[7]) & n->issued_mask];
    if (s->bind_n1 != binding.n + 1)
        return 0;
    /* XOR-OR over three words: no early exit on the first differing byte */
    uint64_t a[3], b[3];
    memcpy(a, s->raw, NONCE_RAW);
    memcpy(b, raw, NONCE_RAW);
    uint64_t diff = (a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]);
    return diff == 0 && (binding.n == 0 || memcmp(s->bind, binding.p, binding.n) == 0);
}

static gb_nonce_status nonce_check_raw(gb_digest_nonces *n, gb_bytes nonce,
                                       gb_bytes binding, int64_t now_ms,
                                       unsigned char raw[NONCE_RAW],
                                       int64_t *issued_ms)
{
    unsigned char tag[TAG_LEN];
    if (nonce_decode(nonce, raw) < 0)
        return GB_NONCE_FORGED;
    if (!issued_hit(n, raw, binding)) {
        if (nonce_tag(n, raw, binding, tag) < 0)
            return GB_NONCE_ERROR;
        if (CRYPTO_memcmp(tag, raw + NONCE_HDR, TAG_LEN) != 0)
            return GB_NONCE_FORGED;
    }
    int64_t issued = nonce_time(raw);
    if (issued_ms)
        *issued_ms = issued;
    return nonce_expired(n, issued, now_ms) ? GB_NONCE_STALE : GB_NONCE_FRESH;
}

gb_nonce_status gb_digest_nonce_check(gb_digest_nonces *n, gb_bytes nonce,
                                      gb_bytes binding, int64_t now_ms,
                                      int64_t *issued_ms)
{
    unsigned char raw[NONCE_RAW];
    return nonce_check_raw(n, nonce, binding, now_ms, raw, issued_ms);
}

enum { USE_OK = 0, USE_REPLAY, USE_FORGOTTEN };

/* Record nc for an authentic, fresh nonce. */
static int nonce_use(gb_digest_nonces *n, const unsigned char raw[NONCE_RAW],
                     uint32_t nc, int64_t now_ms)
{
    const unsigned char *tag = raw + NONCE_HDR;
    int64_t issued = nonce_time(raw);
    uint32_t h = (uint32_t)tag[0] | (uint32_t)tag[1] << 8 |
                 (uint32_t)tag[2] << 16 | (uint32_t)tag[3] << 24;
    nc_slot *b = &n->slots[(size_t)(h & (n->nbuckets - 1)) * BUCKET];
    for (int i = 0; i < BUCKET; i++) {
        if (b[i].used && memcmp(b[i].tag, tag, TAG_LEN) == 0) {
            if (nc <= b[i].nc)
                return USE_REPLAY;
            b[i].nc = nc;
            return USE_OK;
        }
    }
    if (issued <= n->floor_ms)
        return USE_FORGOTTEN;
    nc_slot *victim = NULL;
    for (int i = 0; i < BUCKET && !victim; i++)
        if (!b[i].used || nonce_expired(n, b[i].issued_ms, now_ms))
            victim = &b[i];
    if (!victim) {
        victim = &b[0];
        for (int i = 1; i < BUCKET; i++)
            if (b[i].issued_ms < victim->issued_ms)
                victim = &b[i];
        if (issued <= victim->issued_ms)
            return USE_FORGOTTEN; /* older than all it would displace */
        if (victim->issued_ms > n->floor_ms)
            n->floor_ms = victim->issued_ms;
    }
    memcpy(victim->tag, tag, TAG_LEN);
    victim->issued_ms = issued;
    victim->nc = nc;
    victim->used = 1;
    return USE_OK;
}

/* ---- server side: verification ----------------------------------------------- */

static const char *const result_names[GB_DIGEST_RESULT__COUNT] = {
    [GB_DIGEST_OK] = "OK",
    [GB_DIGEST_MALFORMED] = "MALFORMED",
    [GB_DIGEST_NOT_DIGEST] = "NOT_DIGEST",
    [GB_DIGEST_CAPABILITY_HINT] = "CAPABILITY_HINT",
    [GB_DIGEST_REALM_MISMATCH] = "REALM_MISMATCH",
    [GB_DIGEST_ALGORITHM_NOT_ALLOWED] = "ALGORITHM_NOT_ALLOWED",
    [GB_DIGEST_QOP_NOT_ALLOWED] = "QOP_NOT_ALLOWED",
    [GB_DIGEST_OPAQUE_MISMATCH] = "OPAQUE_MISMATCH",
    [GB_DIGEST_URI_MISMATCH] = "URI_MISMATCH",
    [GB_DIGEST_FORGED_NONCE] = "FORGED_NONCE",
    [GB_DIGEST_UNKNOWN_USER] = "UNKNOWN_USER",
    [GB_DIGEST_WRONG_RESPONSE] = "WRONG_RESPONSE",
    [GB_DIGEST_STALE_NONCE] = "STALE_NONCE",
    [GB_DIGEST_REPLAYED_NC] = "REPLAYED_NC",
    [GB_DIGEST_INTERNAL] = "INTERNAL",
};

static const char *const result_texts[GB_DIGEST_RESULT__COUNT] = {
    [GB_DIGEST_OK] = "credentials verified",
    [GB_DIGEST_MALFORMED] = "malformed credentials",
    [GB_DIGEST_NOT_DIGEST] = "not Digest credentials",
    [GB_DIGEST_CAPABILITY_HINT] = "GB capability hint, not a credential",
    [GB_DIGEST_REALM_MISMATCH] = "realm mismatch",
    [GB_DIGEST_ALGORITHM_NOT_ALLOWED] = "algorithm not allowed",
    [GB_DIGEST_QOP_NOT_ALLOWED] = "qop not allowed",
    [GB_DIGEST_OPAQUE_MISMATCH] = "opaque mismatch",
    [GB_DIGEST_URI_MISMATCH] = "uri does not name the request target",
    [GB_DIGEST_FORGED_NONCE] = "nonce not issued by this server",
    [GB_DIGEST_UNKNOWN_USER] = "unknown user",
    [GB_DIGEST_WRONG_RESPONSE] = "wrong response",
    [GB_DIGEST_STALE_NONCE] = "stale nonce",
    [GB_DIGEST_REPLAYED_NC] = "replayed nonce count",
    [GB_DIGEST_INTERNAL] = "internal error",
};

const char *gb_digest_result_name(gb_digest_result r)
{
    return (unsigned)r < GB_DIGEST_RESULT__COUNT ? result_names[r] : "UNKNOWN";
}

const char *gb_digest_result_text(gb_digest_result r)
{
    return (unsigned)r < GB_DIGEST_RESULT__COUNT ? result_texts[r] : "unknown result";
}

/* Host of a SIP/SIPS URI (brackets kept for IPv6); n = 0 if none. */
static gb_bytes uri_host(gb_bytes u)
{
    gb_bytes none = {NULL, 0};
    size_t i;
    if (u.n > 4 && gb_ieq(u.p, 4, "sip:", 4))
        i = 4;
    else if (u.n > 5 && gb_ieq(u.p, 5, "sips:", 5))
        i = 5;
    else
        return none;
    size_t stop = u.n; /* userinfo ends before any '?' (headers) */
    for (size_t k = i; k < u.n; k++)
        if (u.p[k] == '?') {
            stop = k;
            break;
        }
    for (size_t k = stop; k > i; k--)
        if (u.p[k - 1] == '@') {
            i = k;
            break;
        }
    size_t e = i;
    if (e < u.n && u.p[e] == '[') {
        while (e < u.n && u.p[e] != ']')
            e++;
        if (e == u.n)
            return none;
        e++;
    } else {
        while (e < u.n && u.p[e] != ':' && u.p[e] != ';' && u.p[e] != '?' &&
               u.p[e] != '>')
            e++;
    }
    gb_bytes h = {u.p + i, e - i};
    return h;
}

static int uri_matches(gb_bytes cred_uri, gb_bytes request_uri, int policy)
{
    if (policy == GB_URI_ANY)
        return 1;
    if (beq(cred_uri, request_uri))
        return 1;
    if (policy != GB_URI_SAME_HOST)
        return 0;
    gb_bytes a = uri_host(cred_uri), b = uri_host(request_uri);
    return a.n && gb_ieq(a.p, a.n, b.p, b.n);
}

static gb_digest_result verdict(gb_digest_verdict *v, gb_digest_result r,
                                const char *detail)
{
    v->result = r;
    v->detail = detail ? detail : result_texts[r];
    return r;
}

gb_digest_result gb_digest_verify(gb_digest_ctx *ctx, gb_digest_nonces *nonces,
                                  const char *buf, gb_span value,
                                  const gb_digest_check *chk,
                                  gb_digest_lookup_fn lookup, void *arg,
                                  gb_digest_verdict *v)
{
    gb_error err;
    v->offset = 0;
    v->nonce_issued_ms = 0;
    if (gb_auth_parse_one(buf, value, &v->auth, &err) != GB_OK) {
        v->offset = err.offset;
        memset(&v->cred, 0, sizeof v->cred);
        return verdict(v, GB_DIGEST_MALFORMED, err.reason);
    }
    if (gb_auth_is_capability(buf, &v->auth)) {
        memset(&v->cred, 0, sizeof v->cred);
        return verdict(v, GB_DIGEST_CAPABILITY_HINT, NULL);
    }
    if (!gb_auth_scheme_is(buf, &v->auth, "Digest", 6)) {
        memset(&v->cred, 0, sizeof v->cred);
        return verdict(v, GB_DIGEST_NOT_DIGEST, NULL);
    }
    gb_digest_credentials *c = &v->cred;
    cred_clear(c);
    if (cred_fields(buf, &v->auth, c, &err) != GB_OK) {
        v->offset = err.offset;
        return verdict(v, GB_DIGEST_MALFORMED, err.reason);
    }

    /* Unescaped values; quoted-pairs are rare, so usually plain spans. */
    char scratch[5 * GB_DIGEST_MAX_VALUE];
    size_t used = 0;
    gb_bytes user, realm, nonce, uri, cnonce, opaque;
    if (value_of(buf, &c->username, scratch, &used, sizeof scratch, &user) ||
        value_of(buf, &c->realm, scratch, &used, sizeof scratch, &realm) ||
        value_of(buf, &c->nonce, scratch, &used, sizeof scratch, &nonce) ||
        value_of(buf, &c->uri, scratch, &used, sizeof scratch, &uri) ||
        value_of(buf, &c->cnonce, scratch, &used, sizeof scratch, &cnonce) ||
        value_of(buf, &c->opaque, scratch, &used, sizeof scratch, &opaque) ||
        user.n > GB_DIGEST_MAX_VALUE || realm.n > GB_DIGEST_MAX_VALUE ||
        uri.n > GB_DIGEST_MAX_VALUE || cnonce.n > GB_DIGEST_MAX_VALUE ||
        opaque.n > GB_DIGEST_MAX_VALUE || nonce.n > GB_DIGEST_MAX_NONCE) {
        v->offset = c->username.value.off;
        return verdict(v, GB_DIGEST_MALFORMED, "a value is too long");
    }

    if (chk->realm.n && !beq(realm, chk->realm))
        return verdict(v, GB_DIGEST_REALM_MISMATCH, NULL);
    unsigned allowed = chk->allowed_algs ? chk->allowed_algs : GB_DIGEST_ALGS_ALL;
    if (c->alg == GB_DIGEST_ALG_UNKNOWN || !(allowed & GB_DIGEST_ALG_BIT(c->alg)))
        return verdict(v, GB_DIGEST_ALGORITHM_NOT_ALLOWED, NULL);
    if (!gb_digest_available(ctx, (gb_digest_alg)c->alg))
        return verdict(v, GB_DIGEST_ALGORITHM_NOT_ALLOWED,
                       "algorithm not available in this OpenSSL");
    unsigned qops = chk->allowed_qops ? chk->allowed_qops : GB_QOPS_ALL;
    if (!(qops & GB_QOP_BIT(c->qop_v)))
        return verdict(v, GB_DIGEST_QOP_NOT_ALLOWED, NULL);
    if (chk->opaque.n && (!c->opaque.has_value || !beq(opaque, chk->opaque)))
        return verdict(v, GB_DIGEST_OPAQUE_MISMATCH, NULL);
    if (!uri_matches(uri, chk->request_uri, chk->uri_policy))
        return verdict(v, GB_DIGEST_URI_MISMATCH, NULL);

    unsigned char raw[NONCE_RAW];
    gb_nonce_status ns = GB_NONCE_FRESH;
    if (nonces) {
        ns = nonce_check_raw(nonces, nonce, chk->binding, chk->now_ms, raw,
                             &v->nonce_issued_ms);
        if (ns == GB_NONCE_FORGED)
            return verdict(v, GB_DIGEST_FORGED_NONCE, NULL);
        if (ns == GB_NONCE_ERROR)
            return verdict(v, GB_DIGEST_INTERNAL, "OpenSSL HMAC failed");
    }

    gb_digest_secret sec = {GB_SECRET_UNKNOWN, {NULL, 0}, {NULL, 0}};
    if (!lookup)
        return verdict(v, GB_DIGEST_INTERNAL, "no secret lookup given");
    if (lookup(arg, user, realm, c->is_userhash, &sec) < 0)
        return verdict(v, GB_DIGEST_INTERNAL, "secret lookup failed");
    if (sec.kind != GB_SECRET_PASSWORD && sec.kind != GB_SECRET_HA1)
        return verdict(v, GB_DIGEST_UNKNOWN_USER, NULL);
    gb_bytes real_user = user;
    if (c->is_userhash) {
        /* RFC 7616 §3.4.4: username carries H(user:realm); HA1 needs the name */
        if (sec.username.n)
            real_user = sec.username;
        else if (sec.kind == GB_SECRET_PASSWORD)
            return verdict(v, GB_DIGEST_UNKNOWN_USER,
                           "userhash credentials and no user name from the lookup");
        if (sec.username.n) {
            char uh[GB_DIGEST_HEX_MAX];
            int un = gb_digest_userhash(ctx, (gb_digest_alg)c->alg, real_user, realm, uh);
            if (un < 0)
                return verdict(v, GB_DIGEST_INTERNAL, "OpenSSL digest failed");
            if (!gb_ieq(uh, (size_t)un, user.p, user.n))
                return verdict(v, GB_DIGEST_UNKNOWN_USER, "userhash does not match the user");
        }
    }
    if (sec.kind == GB_SECRET_HA1 && sec.value.n != gb_digest_hex_len((gb_digest_alg)c->alg))
        return verdict(v, GB_DIGEST_ALGORITHM_NOT_ALLOWED,
                       "stored HA1 is for another algorithm");

    /* field by field: a designated initializer would zero the struct first */
    gb_digest_input di;
    di.alg = (gb_digest_alg)c->alg;
    di.qop = c->qop_v;
    di.username = real_user;
    di.realm = realm;
    di.nonce = nonce;
    di.cnonce = cnonce;
    di.nc.p = buf + c->nc.value.off;
    di.nc.n = c->qop_v != GB_QOP_NONE ? c->nc.value.len : 0;
    di.method = chk->method;
    di.uri = uri;
    di.body = chk->body;
    if (sec.kind == GB_SECRET_HA1) {
        di.ha1 = sec.value;
        di.password.p = NULL;
        di.password.n = 0;
    } else {
        di.password = sec.value;
        di.ha1.p = NULL;
        di.ha1.n = 0;
    }
    unsigned char want[EVP_MAX_MD_SIZE], got[EVP_MAX_MD_SIZE];
    const char *why = NULL;
    int wn = response_raw(ctx, &di, want, &why);
    if (wn < 0)
        return verdict(v, sec.kind == GB_SECRET_HA1 ? GB_DIGEST_ALGORITHM_NOT_ALLOWED
                                                     : GB_DIGEST_INTERNAL, why);
    /* compare digest bytes: the parser checked that the response is hex of
     * this algorithm's length, so decoding cannot fail, and half as many
     * bytes go through the constant-time compare */
    const char *r = buf + c->response.value.off;
    for (int i = 0; i < wn; i++)
        got[i] = (unsigned char)(hexval((unsigned char)r[2 * i]) << 4 |
                                 hexval((unsigned char)r[2 * i + 1]));
    if (CRYPTO_memcmp(want, got, (size_t)wn) != 0)
        return verdict(v, GB_DIGEST_WRONG_RESPONSE, NULL);

    /* RFC 7616 §3.3: stale only when the digest itself was right */
    if (ns == GB_NONCE_STALE)
        return verdict(v, GB_DIGEST_STALE_NONCE, NULL);
    if (nonces && (c->qop_v != GB_QOP_NONE || (nonces->flags & GB_NONCE_SINGLE_USE))) {
        int u = nonce_use(nonces, raw, c->qop_v != GB_QOP_NONE ? c->nc_value : 0,
                          chk->now_ms);
        if (u == USE_REPLAY)
            return verdict(v, GB_DIGEST_REPLAYED_NC,
                           c->qop_v != GB_QOP_NONE ? NULL : "nonce already used");
        if (u == USE_FORGOTTEN)
            return verdict(v, GB_DIGEST_STALE_NONCE, "nonce no longer tracked");
    }
    return verdict(v, GB_DIGEST_OK, NULL);
}
