/*
 * sip_auth.c - tokenizer for WWW-Authenticate / Authorization and the
 * Proxy- forms.  See sip_auth.h for what is accepted and why.
 *
 * The grammar is ambiguous around commas: after "Digest a=1," the next word
 * is either another auth-param or the scheme of the next challenge.  As in
 * RFC 7235 §4.1, a word followed by '=' is a parameter, anything else starts
 * a new challenge.  A word followed by '='s and then the end or a comma is a
 * token68 ("Basic QWxhZGRpbjpvcGVu==").
 */
#include "sip_auth.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Character classes, one table lookup per byte in the scanning loops. */
enum {
    C_TCHAR = 1, /* RFC 3261 token, plus the extra tchar of RFC 7230 (# $ & ^ |) */
    C_T68 = 2,   /* token68 (RFC 7235 §2.1) without the trailing '=' */
    C_BARE = 4,  /* unquoted value: visible, not '"' or ',' (UTF-8 allowed) */
    C_QD = 8,    /* qdtext that needs no attention: not '"', '\', CR, LF, CTL */
    C_WS = 16    /* SP, HTAB, CR, LF: where LWS may start */
};
#define ALNUM(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || \
                  ((c) >= '0' && (c) <= '9'))
#define IS_TCHAR(c) (ALNUM(c) || (c) == '-' || (c) == '.' || (c) == '!' ||     \
                     (c) == '%' || (c) == '*' || (c) == '_' || (c) == '+' ||   \
                     (c) == '`' || (c) == '\'' || (c) == '~' || (c) == '#' ||  \
                     (c) == '$' || (c) == '&' || (c) == '^' || (c) == '|')
#define IS_T68(c) (ALNUM(c) || (c) == '-' || (c) == '.' || (c) == '_' ||       \
                   (c) == '~' || (c) == '+' || (c) == '/')
#define IS_BARE(c) ((c) > 0x20 && (c) != 0x7f && (c) != '"' && (c) != ',')
#define IS_QD(c) ((c) == '\t' || ((c) >= 0x20 && (c) != 0x7f && (c) != '"' &&  \
                                  (c) != '\\'))
#define IS_WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n')
#define CLS(c) ((IS_TCHAR(c) ? C_TCHAR : 0) | (IS_T68(c) ? C_T68 : 0) |        \
                (IS_BARE(c) ? C_BARE : 0) | (IS_QD(c) ? C_QD : 0) |            \
                (IS_WS(c) ? C_WS : 0))
#define R4(c) CLS(c), CLS((c) + 1), CLS((c) + 2), CLS((c) + 3)
#define R16(c) R4(c), R4((c) + 4), R4((c) + 8), R4((c) + 12)
#define R64(c) R16(c), R16((c) + 16), R16((c) + 32), R16((c) + 48)
static const uint8_t cls[256] = {R64(0), R64(64), R64(128), R64(192)};

static int is_tchar(unsigned char c)
{
    return cls[c] & C_TCHAR;
}

static int is_bare_value_char(unsigned char c)
{
    return cls[c] & C_BARE;
}


static int fail(gb_error *err, uint32_t off, const char *reason)
{
    gb_fail(err, GB_ERR_AUTH, 0, off, reason, GB_HDR_OTHER);
    return -1;
}

/* Skip SP / HTAB and folded line breaks (CRLF or LF followed by WSP).
 * Returns the new position, or UINT32_MAX at a bare CR/LF (*bad set). */
static uint32_t skip_lws_slow(const char *b, uint32_t p, uint32_t end, uint32_t *bad)
{
    while (p < end) {
        char c = b[p];
        if (c == ' ' || c == '\t') {
            p++;
        } else if (c == '\r' || c == '\n') {
            uint32_t q = p + 1;
            if (c == '\r' && q < end && b[q] == '\n')
                q++;
            if (q < end && (b[q] == ' ' || b[q] == '\t')) {
                p = q + 1;
            } else {
                *bad = p;
                return UINT32_MAX;
            }
        } else {
            break;
        }
    }
    return p;
}

/* Most positions hold no whitespace at all: answer those inline. */
static inline uint32_t skip_lws(const char *b, uint32_t p, uint32_t end, uint32_t *bad)
{
    if (p >= end || !(cls[(unsigned char)b[p]] & C_WS))
        return p;
    return skip_lws_slow(b, p, end, bad);
}

static uint32_t scan_token(const char *b, uint32_t p, uint32_t end)
{
    while (p < end && is_tchar((unsigned char)b[p]))
        p++;
    return p;
}

/* A quoted string starting at the opening quote b[p].  Returns the position
 * after the closing quote, or UINT32_MAX (with *bad) when malformed. */
static uint32_t scan_quoted(const char *b, uint32_t p, uint32_t end,
                            uint32_t *bad, const char **why, int *escaped)
{
    p++; /* opening quote */
    while (p < end) {
#if defined(__SSE2__)
        /* sixteen bytes a step: stop at the first CTL, '"', '\\' or DEL */
        const __m128i limit = _mm_set1_epi8(0x1f), dq = _mm_set1_epi8('"'),
                      bs = _mm_set1_epi8('\\'), del = _mm_set1_epi8(0x7f);
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + p));
            __m128i hit = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, limit), v),
                             _mm_cmpeq_epi8(v, dq)),
                _mm_or_si128(_mm_cmpeq_epi8(v, bs), _mm_cmpeq_epi8(v, del)));
            unsigned mask = (unsigned)_mm_movemask_epi8(hit);
            if (mask) {
                p += (uint32_t)__builtin_ctz(mask);
                break;
            }
            p += 16;
        }
#else
        /* eight plain bytes at a time (SWAR): no CTL, '"', '\\' or DEL */
        while (end - p >= 8) {
            uint64_t x;
            memcpy(&x, b + p, 8);
            const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
            uint64_t q = x ^ (ones * '"'), s = x ^ (ones * '\\'), d = x ^ (ones * 0x7f);
            uint64_t hit = ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) |
                           ((s - ones) & ~s) | ((d - ones) & ~d);
            if (hit & high)
                break;
            p += 8;
        }
#endif
        while (p < end && (cls[(unsigned char)b[p]] & C_QD))
            p++;
        if (p >= end)
            break;
        unsigned char c = (unsigned char)b[p];
        if (c == '"')
            return p + 1;
        if (c == '\\') {
            *escaped = 1;
            if (p + 1 >= end) {
                break;
            }
            unsigned char e = (unsigned char)b[p + 1];
            if (e == '\r' || e == '\n' || e == 0) {
                *bad = p + 1;
                *why = "bad escape in quoted string";
                return UINT32_MAX;
            }
            p += 2;
            continue;
        }
        if (c == '\r' || c == '\n') {
            /* folded LWS is allowed inside a quoted string; bare breaks not */
            uint32_t q = p + 1;
            if (c == '\r' && q < end && b[q] == '\n')
                q++;
            if (q < end && (b[q] == ' ' || b[q] == '\t')) {
                p = q + 1;
                continue;
            }
            *bad = p;
            *why = "line break in quoted string";
            return UINT32_MAX;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            *bad = p;
            *why = "control character in quoted string";
            return UINT32_MAX;
        }
        p++;
    }
    *bad = end;
    *why = "unterminated quoted string";
    return UINT32_MAX;
}

void gb_auth_begin(gb_auth_iter *it, const char *buf, gb_span value)
{
    it->buf = buf;
    it->pos = value.off;
    it->end = value.off + value.len;
}

/* The value of "name = value": the name is [p, nend), the value starts at
 * v (after '=' and LWS).  Appends to a; returns the position after the
 * value, or UINT32_MAX. */
static inline uint32_t parse_value(const char *b, uint32_t p, uint32_t nend, uint32_t v,
                            uint32_t end, gb_auth *a, gb_error *err)
{
    if (a->nparams >= GB_AUTH_MAX_PARAMS) {
        fail(err, p, "too many auth-params");
        return UINT32_MAX;
    }
    gb_param *pr = &a->params[a->nparams];
    pr->name.off = p;
    pr->name.len = nend - p;
    pr->has_value = 1;
    if (v < end && b[v] == '"') {
        const char *why = NULL;
        uint32_t bad = 0;
        int escaped = 0;
        uint32_t e = scan_quoted(b, v, end, &bad, &why, &escaped);
        if (e == UINT32_MAX) {
            fail(err, bad, why);
            return UINT32_MAX;
        }
        pr->quoted = escaped ? 2 : 1; /* 2: holds quoted-pairs */
        pr->value.off = v + 1;
        pr->value.len = e - v - 2;
        a->nparams++;
        return e;
    }
    uint32_t q = v;
    while (q < end && (cls[(unsigned char)b[q]] & C_BARE))
        q++;
    if (q == v) {
        fail(err, v, "auth-param without value");
        return UINT32_MAX;
    }
    pr->quoted = 0;
    pr->value.off = v;
    pr->value.len = q - v;
    a->nparams++;
    return q;
}

int gb_auth_next(gb_auth_iter *it, gb_auth *a, gb_error *err)
{
    const char *b = it->buf;
    uint32_t end = it->end, p = it->pos, bad = 0;

    /* empty list elements and surrounding LWS */
    for (;;) {
        p = skip_lws(b, p, end, &bad);
        if (p == UINT32_MAX)
            return fail(err, bad, "bare line break in auth header");
        if (p < end && b[p] == ',') {
            p++;
            continue;
        }
        break;
    }
    if (p >= end) {
        it->pos = end;
        return 0;
    }
    uint32_t send = scan_token(b, p, end);
    if (send == p)
        return fail(err, p, "expected an auth scheme");
    a->scheme.off = p;
    a->scheme.len = send - p;
    a->whole.off = p;
    a->has_token68 = 0;
    a->token68.off = send;
    a->token68.len = 0;
    a->nparams = 0;
    uint32_t last = send; /* end of the last thing that belongs to this item */

    /* First element after the scheme: separated by whitespace. */
    uint32_t q = skip_lws(b, send, end, &bad);
    if (q == UINT32_MAX)
        return fail(err, bad, "bare line break in auth header");
    p = q;
    if (q > send && q < end && b[q] != ',') {
        /* auth-param when "token BWS = BWS value" follows, else token68 */
        uint32_t nend = scan_token(b, q, end), r = nend, v = UINT32_MAX;
        if (nend > q) {
            r = skip_lws(b, nend, end, &bad);
            if (r == UINT32_MAX)
                return fail(err, bad, "bare line break in auth header");
            if (r < end && b[r] == '=') {
                v = skip_lws(b, r + 1, end, &bad);
                if (v == UINT32_MAX)
                    return fail(err, bad, "bare line break in auth header");
            }
        }
        if (v != UINT32_MAX && v < end && b[v] != ',' && b[v] != '=') {
            p = parse_value(b, q, nend, v, end, a, err);
            if (p == UINT32_MAX)
                return -1;
            last = p;
        } else {
            uint32_t t = q;
            while (t < end && (cls[(unsigned char)b[t]] & C_T68))
                t++;
            uint32_t eq = t;
            while (eq < end && b[eq] == '=')
                eq++;
            uint32_t after = skip_lws(b, eq, end, &bad);
            if (after == UINT32_MAX)
                return fail(err, bad, "bare line break in auth header");
            if (t == q)
                return fail(err, q, "expected an auth-param or token68");
            if (after < end && b[after] != ',')
                return fail(err, after, "expected ',' after token68");
            a->has_token68 = 1;
            a->token68.off = q;
            a->token68.len = eq - q;
            last = eq;
            p = after;
        }
    }

    /* Then: ',' auth-param, or ',' the next challenge's scheme, or the end. */
    for (;;) {
        p = skip_lws(b, p, end, &bad);
        if (p == UINT32_MAX)
            return fail(err, bad, "bare line break in auth header");
        if (p >= end)
            break;
        if (b[p] != ',')
            return fail(err, p, a->has_token68 || a->nparams == 0
                                    ? "expected ',' after auth scheme"
                                    : "expected ',' between auth-params");
        do {
            p = skip_lws(b, p + 1, end, &bad);
            if (p == UINT32_MAX)
                return fail(err, bad, "bare line break in auth header");
        } while (p < end && b[p] == ',');
        if (p >= end)
            break;
        uint32_t nend = scan_token(b, p, end);
        if (nend == p)
            return fail(err, p, "expected an auth-param or scheme");
        uint32_t r = skip_lws(b, nend, end, &bad);
        if (r == UINT32_MAX)
            return fail(err, bad, "bare line break in auth header");
        if (r >= end || b[r] != '=')
            break; /* a new challenge starts at p */
        if (a->has_token68)
            return fail(err, p, "auth-param after token68");
        uint32_t v = skip_lws(b, r + 1, end, &bad);
        if (v == UINT32_MAX)
            return fail(err, bad, "bare line break in auth header");
        p = parse_value(b, p, nend, v, end, a, err);
        if (p == UINT32_MAX)
            return -1;
        last = p;
    }
    a->whole.len = last - a->whole.off;
    it->pos = p;
    return 1;
}

gb_error_code gb_auth_parse_one(const char *buf, gb_span value, gb_auth *out,
                                gb_error *err)
{
    gb_auth_iter it;
    gb_auth_begin(&it, buf, value);
    int r = gb_auth_next(&it, out, err);
    if (r < 0)
        return GB_ERR_AUTH;
    if (r == 0) {
        fail(err, value.off, "empty auth header");
        return GB_ERR_AUTH;
    }
    uint32_t more = it.pos;
    if (more < it.end) {
        fail(err, more, "more than one credential in one header value");
        return GB_ERR_AUTH;
    }
    return GB_OK;
}

int gb_auth_find(const char *buf, const gb_auth *a, const char *name,
                 size_t name_len)
{
    for (unsigned i = 0; i < a->nparams; i++)
        if (gb_ieq(buf + a->params[i].name.off, a->params[i].name.len, name, name_len))
            return (int)i;
    return -1;
}

int gb_auth_scheme_is(const char *buf, const gb_auth *a, const char *name,
                      size_t name_len)
{
    return gb_ieq(buf + a->scheme.off, a->scheme.len, name, name_len);
}

int gb_auth_is_capability(const char *buf, const gb_auth *a)
{
    return gb_auth_scheme_is(buf, a, "Capability", 10);
}

int gb_auth_value_escaped(const char *buf, const gb_param *p)
{
    (void)buf;
    return p->quoted == 2;
}

long gb_auth_value(const char *buf, const gb_param *p, char *out, size_t cap)
{
    const char *s = buf + p->value.off;
    size_t n = p->value.len, o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (p->quoted && c == '\\' && i + 1 < n)
            c = s[++i];
        if (o >= cap)
            return -1;
        out[o++] = c;
    }
    return (long)o;
}

/* Appends n bytes at *o when they fit; always advances the needed length. */
static void put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    if (*o < cap) {
        size_t k = cap - *o < n ? cap - *o : n;
        memcpy(out + *o, s, k);
    }
    *o += n;
}

long gb_auth_build(char *out, size_t cap, const char *scheme,
                   size_t scheme_len, const gb_auth_out *params,
                   size_t nparams)
{
    size_t o = 0;
    if (scheme_len == 0 || scheme_len != (size_t)(scan_token(scheme, 0, (uint32_t)scheme_len)))
        return -1;
    put(out, cap, &o, scheme, scheme_len);
    for (size_t i = 0; i < nparams; i++) {
        const gb_auth_out *p = &params[i];
        if (p->name_len == 0 || p->name_len != scan_token(p->name, 0, (uint32_t)p->name_len))
            return -1;
        put(out, cap, &o, i == 0 ? " " : ",", 1);
        put(out, cap, &o, p->name, p->name_len);
        put(out, cap, &o, "=", 1);
        if (p->quote) {
            put(out, cap, &o, "\"", 1);
            for (size_t k = 0; k < p->value_len; k++) {
                unsigned char c = (unsigned char)p->value[k];
                if (c == '\r' || c == '\n' || c == 0)
                    return -1;
                /* quoted-pair for what qdtext cannot hold (RFC 3261 §25.1) */
                if (c == '"' || c == '\\' || (c < 0x20 && c != '\t') || c == 0x7f)
                    put(out, cap, &o, "\\", 1);
                put(out, cap, &o, p->value + k, 1);
            }
            put(out, cap, &o, "\"", 1);
        } else {
            if (p->value_len == 0)
                return -1;
            for (size_t k = 0; k < p->value_len; k++)
                if (!is_bare_value_char((unsigned char)p->value[k]))
                    return -1;
            put(out, cap, &o, p->value, p->value_len);
        }
    }
    return (long)o;
}
