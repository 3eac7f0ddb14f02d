/*
 * sip_fields.c - structured header values, parsed on demand.
 *
 * Each parser walks one span with an index and never looks beyond
 * in.off + in.len.  Grammar references are to RFC 3261 §25.1.
 */
#include "sip_fields.h"

#include <string.h>

/* LWS also covers folded line ends left inside a value. */
static inline int is_lws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static inline int is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static inline int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static inline int is_hex(char ch)
{
    return is_digit(ch) || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
}

static inline int is_alnum(char ch)
{
    return is_alpha(ch) || is_digit(ch);
}

/* RFC 3261 token characters. */
static inline int is_token(char ch)
{
    if (is_alnum(ch))
        return 1;
    switch (ch) {
    case '-': case '.': case '!': case '%': case '*': case '_':
    case '+': case '`': case '\'': case '~':
        return 1;
    default:
        return 0;
    }
}

static inline int is_unreserved(char ch)
{
    if (is_alnum(ch))
        return 1;
    switch (ch) {
    case '-': case '_': case '.': case '!': case '~': case '*':
    case '\'': case '(': case ')':
        return 1;
    default:
        return 0;
    }
}

static gb_error_code set_err(gb_error *err, gb_error_code code, size_t off,
                             const char *reason)
{
    return gb_fail(err, code, 0, off, reason, GB_HDR_OTHER);
}

static inline gb_span mkspan(size_t off, size_t len)
{
    gb_span s = {(uint32_t)off, (uint32_t)len};
    return s;
}

int gb_parse_uint(const char *p, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0)
        return -1;
    size_t i = 0;
    while (i + 1 < n && p[i] == '0')
        i++;
    if (n - i > 20)
        return -1;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (!is_digit(p[i]))
            return -1;
        /* only a 20th digit can overflow 64 bits */
        if (__builtin_mul_overflow(v, 10u, &v) ||
            __builtin_add_overflow(v, (unsigned)(p[i] - '0'), &v))
            return -1;
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/* End of a quoted string starting at buf[i] == '"': index after the
 * closing quote, or 0 when it never closes. */
static size_t skip_quoted(const char *buf, size_t i, size_t end)
{
    for (i++; i < end; i++) {
        if (buf[i] == '\\') {
            if (i + 1 >= end)
                return 0;
            i++;
        } else if (buf[i] == '"') {
            return i + 1;
        }
    }
    return 0;
}

size_t gb_unquote(const char *buf, gb_span in, char *out)
{
    const char *p = buf + in.off;
    size_t o = 0;
    for (size_t i = 0; i < in.len; i++) {
        if (p[i] == '\\' && i + 1 < in.len)
            i++;
        out[o++] = p[i];
    }
    return o;
}

static int hexval(char ch)
{
    if (is_digit(ch))
        return ch - '0';
    return (ch | 0x20) - 'a' + 10;
}

long gb_unescape(const char *buf, gb_span in, char *out)
{
    const char *p = buf + in.off;
    size_t o = 0;
    for (size_t i = 0; i < in.len; i++) {
        if (p[i] == '%') {
            if (i + 2 >= in.len || !is_hex(p[i + 1]) || !is_hex(p[i + 2]))
                return -1;
            out[o++] = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
            i += 2;
        } else {
            out[o++] = p[i];
        }
    }
    return (long)o;
}

/* ------------------------------------------------------------------ */
/* Parameters                                                          */

void gb_params_begin(gb_param_iter *it, const char *buf, gb_span params, char sep)
{
    it->buf = buf;
    it->pos = params.off;
    it->end = params.off + params.len;
    it->sep = sep;
    /* tolerate a leading separator */
    size_t i = it->pos;
    while (i < it->end && is_lws(buf[i]))
        i++;
    if (i < it->end && buf[i] == sep)
        it->pos = (uint32_t)(i + 1);
}

static inline int param_value_char(char ch, char sep)
{
    if (ch == sep || ch == ',' || ch == '"' || is_lws(ch))
        return 0;
    if ((unsigned char)ch < 0x21 || ch == 0x7f)
        return 0;
    /* ';' inside '&'-separated URI headers is just data */
    return ch != ';' || sep != ';';
}

int gb_params_next(gb_param_iter *it, gb_param *p, gb_error *err)
{
    const char *b = it->buf;
    size_t i = it->pos, end = it->end;
    while (i < end && is_lws(b[i]))
        i++;
    if (i >= end) {
        it->pos = (uint32_t)end;
        return 0;
    }
    size_t ns = i;
    while (i < end && (is_token(b[i]) || (it->sep == '&' && b[i] != '=' && b[i] != '&' &&
                                          (unsigned char)b[i] > 0x20)))
        i++;
    if (i == ns) {
        set_err(err, GB_ERR_PARAM, i, "parameter without a name");
        return -1;
    }
    p->name = mkspan(ns, i - ns);
    p->value = mkspan(i, 0);
    p->has_value = 0;
    p->quoted = 0;
    while (i < end && is_lws(b[i]))
        i++;
    if (i < end && b[i] == '=') {
        i++;
        while (i < end && is_lws(b[i]))
            i++;
        p->has_value = 1;
        if (i < end && b[i] == '"') {
            size_t q = skip_quoted(b, i, end);
            if (!q) {
                set_err(err, GB_ERR_QUOTED_STRING, i, NULL);
                return -1;
            }
            p->value = mkspan(i + 1, q - i - 2);
            p->quoted = 1;
            i = q;
        } else {
            size_t vs = i;
            while (i < end && param_value_char(b[i], it->sep))
                i++;
            if (i == vs) {
                set_err(err, GB_ERR_PARAM, i, "parameter '=' without a value");
                return -1;
            }
            p->value = mkspan(vs, i - vs);
        }
        while (i < end && is_lws(b[i]))
            i++;
    }
    if (i < end) {
        if (b[i] != it->sep) {
            set_err(err, GB_ERR_PARAM, i, "unexpected character after parameter");
            return -1;
        }
        i++;
        size_t k = i;
        while (k < end && is_lws(b[k]))
            k++;
        if (k >= end) {
            set_err(err, GB_ERR_PARAM, i, "separator without a parameter");
            return -1;
        }
    }
    it->pos = (uint32_t)i;
    return 1;
}

int gb_params_find(const char *buf, gb_span params, char sep,
                   const char *name, size_t name_len, gb_param *p)
{
    gb_param_iter it;
    gb_params_begin(&it, buf, params, sep);
    while (gb_params_next(&it, p, NULL) == 1)
        if (gb_ieq(buf + p->name.off, p->name.len, name, name_len))
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Lists                                                               */

void gb_list_begin(gb_list_iter *it, const char *buf, gb_span value)
{
    it->buf = buf;
    it->pos = value.off;
    it->end = value.off + value.len;
}

int gb_list_next(gb_list_iter *it, gb_span *item, gb_error *err)
{
    const char *b = it->buf;
    size_t i = it->pos, end = it->end;
    if (i >= end)
        return 0;
    while (i < end && is_lws(b[i]))
        i++;
    size_t s = i;
    int angle = 0;
    while (i < end) {
        char ch = b[i];
        if (ch == '"') {
            size_t q = skip_quoted(b, i, end);
            if (!q) {
                set_err(err, GB_ERR_QUOTED_STRING, i, NULL);
                return -1;
            }
            i = q;
            continue;
        }
        if (ch == '<')
            angle = 1;
        else if (ch == '>')
            angle = 0;
        else if (ch == ',' && !angle)
            break;
        i++;
    }
    size_t e = i;
    while (e > s && is_lws(b[e - 1]))
        e--;
    if (e == s) {
        set_err(err, GB_ERR_LIST, s, "empty element in a comma-separated list");
        return -1;
    }
    *item = mkspan(s, e - s);
    if (i < end) {
        i++; /* the comma */
        size_t k = i;
        while (k < end && is_lws(b[k]))
            k++;
        if (k >= end) {
            set_err(err, GB_ERR_LIST, i, "trailing comma in a list");
            return -1;
        }
    }
    it->pos = (uint32_t)i;
    return 1;
}

/* RFC 3986 §3.2.2 IPv6address (RFC 4291 §2.2, and RFC 5954's correction
 * of RFC 3261's ABNF) in b[s..e): eight 16-bit groups of 1-4 hex digits,
 * the last two may be a dotted IPv4 address, one "::" may stand for one or
 * more zero groups.  So RFC 5118 §4.10's [2001:db8:::192.0.2.1] is refused.
 * Returns SIZE_MAX when valid, else the offset of the fault and *why. */
static size_t ipv6_address_check(const char *b, size_t s, size_t e, const char **why)
{
    unsigned groups = 0;
    int elided = 0;
    size_t i = s;
    if (e - s >= 2 && b[s] == ':' && b[s + 1] == ':') {
        elided = 1;
        i = s + 2;
    } else if (i < e && b[i] == ':') {
        *why = "IPv6 reference starts with a single colon";
        return i;
    }
    while (i < e) {
        size_t g = i;
        while (i < e && is_hex(b[i]))
            i++;
        if (i < e && b[i] == '.') {
            /* IPv4address as the last 32 bits: dec-octet "." x4 */
            i = g;
            for (int k = 0; k < 4; k++) {
                size_t d = i;
                unsigned v = 0;
                while (i < e && is_digit(b[i]) && i - d < 3)
                    v = v * 10 + (unsigned)(b[i++] - '0');
                if (i == d || v > 255 || (i - d > 1 && b[d] == '0')) {
                    *why = "malformed IPv4 part of an IPv6 reference";
                    return d;
                }
                if (k < 3) {
                    if (i >= e || b[i] != '.') {
                        *why = "malformed IPv4 part of an IPv6 reference";
                        return i;
                    }
                    i++;
                }
            }
            if (i != e) {
                *why = "IPv4 part of an IPv6 reference is not at its end";
                return i;
            }
            groups += 2;
            break;
        }
        if (i == g || i - g > 4) {
            *why = i == g ? "empty group in an IPv6 reference (\":::\" or a stray colon)"
                          : "IPv6 group of more than 4 hex digits";
            return g;
        }
        groups++;
        if (i == e)
            break;
        /* b[i] == ':' (ipv6_reference lets only hex, ':' and '.' in) */
        if (i + 1 < e && b[i + 1] == ':') {
            if (elided) {
                *why = "more than one \"::\" in an IPv6 reference";
                return i;
            }
            elided = 1;
            i += 2;
        } else if (i + 1 == e) {
            *why = "IPv6 reference ends with a single colon";
            return i;
        } else {
            i++;
        }
    }
    if (elided ? groups > 7 : groups != 8) {
        *why = elided ? "too many groups in an IPv6 reference"
                      : "IPv6 reference without \"::\" needs eight groups";
        return s;
    }
    return SIZE_MAX;
}

/* An IPv6 reference "[" IPv6address "]" at b[*i] == '[': *i moves past
 * the "]".  SIZE_MAX when valid, else the offset of the fault and *why. */
static size_t ipv6_reference(const char *b, size_t *i, size_t end, const char **why)
{
    size_t s = *i + 1, j = s;
    while (j < end && (is_hex(b[j]) || b[j] == ':' || b[j] == '.'))
        j++;
    if (j >= end || b[j] != ']' || j == s) {
        *why = "malformed IPv6 reference";
        return j;
    }
    size_t bad = ipv6_address_check(b, s, j, why);
    if (bad == SIZE_MAX)
        *i = j + 1;
    return bad;
}

/* ------------------------------------------------------------------ */
/* URIs                                                                */

static inline int user_char(char ch)
{
    if (is_unreserved(ch))
        return 1;
    switch (ch) {
    case '&': case '=': case '+': case '$': case ',': case ';': case '?': case '/':
        return 1;
    default:
        return 0;
    }
}

static inline int password_char(char ch)
{
    if (is_unreserved(ch))
        return 1;
    switch (ch) {
    case '&': case '=': case '+': case '$': case ',':
        return 1;
    default:
        return 0;
    }
}

/* paramchar = param-unreserved / unreserved / escaped (and '=' between) */
static inline int uri_param_char(char ch)
{
    if (is_unreserved(ch))
        return 1;
    switch (ch) {
    case '[': case ']': case '/': case ':': case '&': case '+': case '$':
    case '=': case ';': case '%':
        return 1;
    default:
        return 0;
    }
}

static inline int uri_header_char(char ch)
{
    if (is_unreserved(ch))
        return 1;
    switch (ch) {
    case '[': case ']': case '/': case '?': case ':': case '+': case '$':
    case '=': case '&': case '%':
        return 1;
    default:
        return 0;
    }
}

/* Escapes must be %HH. */
static int check_escapes(const char *b, size_t s, size_t e)
{
    for (size_t i = s; i < e; i++)
        if (b[i] == '%') {
            if (i + 2 >= e || !is_hex(b[i + 1]) || !is_hex(b[i + 2]))
                return (int)(i - s) + 1;
            i += 2;
        }
    return 0;
}

gb_error_code gb_parse_uri(const char *b, gb_span in, gb_uri *u, gb_error *err)
{
    memset(u, 0, sizeof(*u));
    u->port = -1;
    size_t i = in.off, end = in.off + in.len;
    if (i >= end || !is_alpha(b[i]))
        return set_err(err, GB_ERR_URI, i, "URI must start with a scheme");
    size_t ss = i;
    while (i < end && (is_alnum(b[i]) || b[i] == '+' || b[i] == '-' || b[i] == '.'))
        i++;
    if (i >= end || b[i] != ':')
        return set_err(err, GB_ERR_URI, i, "URI scheme not followed by ':'");
    u->scheme = mkspan(ss, i - ss);
    i++;
    for (size_t k = i; k < end; k++) {
        unsigned char ch = (unsigned char)b[k];
        if (ch <= 0x20 || ch == 0x7f || ch == '<' || ch == '>' || ch == '"')
            return set_err(err, GB_ERR_URI, k, "character not allowed in a URI");
    }
    if (!(gb_ieq(b + ss, i - 1 - ss, "sip", 3) || gb_ieq(b + ss, i - 1 - ss, "sips", 4))) {
        if (i >= end)
            return set_err(err, GB_ERR_URI, i, "empty URI after the scheme");
        u->opaque = mkspan(i, end - i);
        return GB_OK;
    }
    u->is_sip = 1;
    u->secure = (i - 1 - ss) == 4;

    /* userinfo: everything up to an '@' (which cannot appear unescaped
     * elsewhere in a SIP URI). */
    const char *at = memchr(b + i, '@', end - i);
    if (at) {
        size_t ae = (size_t)(at - b);
        size_t us = i, ue = ae;
        for (size_t k = us; k < ae; k++)
            if (b[k] == ':') {
                ue = k;
                break;
            }
        for (size_t k = us; k < ue; k++)
            if (!user_char(b[k]) && b[k] != '%')
                return set_err(err, GB_ERR_URI, k, "character not allowed in the URI user part");
        if (ue == us)
            return set_err(err, GB_ERR_URI, us, "empty user part before '@'");
        if (check_escapes(b, us, ue))
            return set_err(err, GB_ERR_URI, us, "malformed %-escape in the URI user part");
        u->user = mkspan(us, ue - us);
        u->has_user = 1;
        if (ue < ae) {
            for (size_t k = ue + 1; k < ae; k++)
                if (!password_char(b[k]) && b[k] != '%')
                    return set_err(err, GB_ERR_URI, k, "character not allowed in the URI password");
            if (check_escapes(b, ue + 1, ae))
                return set_err(err, GB_ERR_URI, ue + 1, "malformed %-escape in the URI password");
            u->password = mkspan(ue + 1, ae - ue - 1);
            u->has_password = 1;
        }
        i = ae + 1;
    }

    /* host */
    size_t hs = i;
    if (i < end && b[i] == '[') {
        const char *why;
        size_t bad = ipv6_reference(b, &i, end, &why);
        if (bad != SIZE_MAX)
            return set_err(err, GB_ERR_URI, bad, why);
        u->ipv6 = 1;
    } else {
        while (i < end && (is_alnum(b[i]) || b[i] == '-' || b[i] == '.'))
            i++;
        if (i == hs)
            return set_err(err, GB_ERR_URI, i, "URI has no host");
    }
    u->host = mkspan(hs, i - hs);
    if (i < end && b[i] == ':') {
        size_t ps = ++i;
        while (i < end && is_digit(b[i]))
            i++;
        uint64_t port;
        if (gb_parse_uint(b + ps, i - ps, 65535, &port) < 0)
            return set_err(err, GB_ERR_URI, ps, "URI port must be a number from 0 to 65535");
        u->port = (int32_t)port;
    }
    if (i < end && b[i] == ';') {
        size_t ps = ++i;
        while (i < end && b[i] != '?') {
            if (!uri_param_char(b[i]))
                return set_err(err, GB_ERR_URI, i, "character not allowed in a URI parameter");
            i++;
        }
        if (check_escapes(b, ps, i))
            return set_err(err, GB_ERR_URI, ps, "malformed %-escape in a URI parameter");
        u->params = mkspan(ps, i - ps);
        gb_param_iter it;
        gb_param p;
        gb_error perr;
        int r;
        gb_params_begin(&it, b, u->params, ';');
        while ((r = gb_params_next(&it, &p, &perr)) == 1)
            ;
        if (r < 0)
            return set_err(err, GB_ERR_URI, perr.offset, perr.reason);
    }
    if (i < end && b[i] == '?') {
        size_t hs2 = ++i;
        while (i < end) {
            if (!uri_header_char(b[i]))
                return set_err(err, GB_ERR_URI, i, "character not allowed in a URI header");
            i++;
        }
        if (check_escapes(b, hs2, i))
            return set_err(err, GB_ERR_URI, hs2, "malformed %-escape in a URI header");
        u->headers = mkspan(hs2, i - hs2);
    }
    if (i != end)
        return set_err(err, GB_ERR_URI, i, "unexpected character in the URI host or port");
    return GB_OK;
}

/* ------------------------------------------------------------------ */
/* name-addr / addr-spec                                               */

static gb_error_code check_params(const char *b, gb_span params, gb_error *err,
                                  gb_error_code code)
{
    gb_param_iter it;
    gb_param p;
    int r;
    gb_params_begin(&it, b, params, ';');
    while ((r = gb_params_next(&it, &p, err)) == 1)
        ;
    if (r < 0) {
        if (err && err->code != GB_ERR_QUOTED_STRING)
            err->code = code, err->status = gb_error_status(code);
        return err ? err->code : code;
    }
    return GB_OK;
}

/* Header params from the ';' at semi up to end (RFC 3261: each ';' is
 * followed by a parameter). */
static gb_error_code header_params(const char *b, size_t semi, size_t end,
                                   gb_name_addr *na, gb_error *err)
{
    size_t k = semi + 1;
    while (k < end && is_lws(b[k]))
        k++;
    if (k >= end)
        return set_err(err, GB_ERR_NAME_ADDR, semi, "';' without a parameter");
    na->params = mkspan(semi + 1, end - semi - 1);
    return check_params(b, na->params, err, GB_ERR_NAME_ADDR);
}

gb_error_code gb_parse_name_addr(const char *b, gb_span in, int allow_wildcard,
                                 gb_name_addr *na, gb_error *err)
{
    memset(na, 0, sizeof(*na));
    size_t i = in.off, end = in.off + in.len;
    while (i < end && is_lws(b[i]))
        i++;
    while (end > i && is_lws(b[end - 1]))
        end--;
    if (i >= end)
        return set_err(err, GB_ERR_NAME_ADDR, i, "empty address");

    if (b[i] == '*' && allow_wildcard) {
        size_t k = i + 1;
        while (k < end && is_lws(b[k]))
            k++;
        if (k == end) {
            na->wildcard = 1;
            na->uri = mkspan(i, 1);
            return GB_OK;
        }
    }

    size_t lt;
    if (b[i] == '"') {
        size_t q = skip_quoted(b, i, end);
        if (!q)
            return set_err(err, GB_ERR_QUOTED_STRING, i, "unterminated quoted display name");
        na->display = mkspan(i + 1, q - i - 2);
        na->display_quoted = 1;
        i = q;
        while (i < end && is_lws(b[i]))
            i++;
        if (i >= end || b[i] != '<')
            return set_err(err, GB_ERR_NAME_ADDR, i, "quoted display name not followed by <URI>");
        lt = i;
    } else {
        /* *(token LWS) then '<', or an addr-spec */
        size_t k = i;
        while (k < end && (is_token(b[k]) || is_lws(b[k])))
            k++;
        if (k < end && b[k] == '<') {
            size_t de = k;
            while (de > i && is_lws(b[de - 1]))
                de--;
            if (de > i)
                na->display = mkspan(i, de - i);
            lt = k;
        } else {
            /* addr-spec: params after the first ';' are header params */
            size_t s = i;
            while (i < end && b[i] != ';' && !is_lws(b[i])) {
                if (b[i] == ',' || b[i] == '?' || b[i] == '<' || b[i] == '>' || b[i] == '"')
                    return set_err(err, GB_ERR_NAME_ADDR, i,
                                   "address without <> contains a character that needs <>");
                i++;
            }
            na->uri = mkspan(s, i - s);
            while (i < end && is_lws(b[i]))
                i++;
            if (i < end && b[i] != ';')
                return set_err(err, GB_ERR_NAME_ADDR, i,
                               "address without <> contains whitespace; use <>");
            gb_uri u;
            gb_error_code rc = gb_parse_uri(b, na->uri, &u, err);
            if (rc)
                return rc;
            if (i < end)
                return header_params(b, i, end, na, err);
            return GB_OK;
        }
    }
    const char *gt = memchr(b + lt, '>', end - lt);
    if (!gt)
        return set_err(err, GB_ERR_NAME_ADDR, lt, "'<' without a matching '>'");
    size_t ge = (size_t)(gt - b);
    na->uri = mkspan(lt + 1, ge - lt - 1);
    na->angle = 1;
    gb_uri u;
    gb_error_code rc = gb_parse_uri(b, na->uri, &u, err);
    if (rc)
        return rc;
    i = ge + 1;
    while (i < end && is_lws(b[i]))
        i++;
    if (i < end) {
        if (b[i] != ';')
            return set_err(err, GB_ERR_NAME_ADDR, i, "unexpected text after '>'");
        return header_params(b, i, end, na, err);
    }
    return GB_OK;
}

/* ------------------------------------------------------------------ */
/* Via                                                                 */

gb_error_code gb_parse_via(const char *b, gb_span in, gb_via *v, gb_error *err)
{
    memset(v, 0, sizeof(*v));
    v->port = -1;
    v->rport = -1;
    size_t i = in.off, end = in.off + in.len;
    while (i < end && is_lws(b[i]))
        i++;
    while (end > i && is_lws(b[end - 1]))
        end--;
    /* sent-protocol = protocol-name SLASH protocol-version SLASH transport */
    size_t ps = i;
    for (int part = 0; part < 3; part++) {
        size_t ts = i;
        while (i < end && is_token(b[i]))
            i++;
        if (i == ts)
            return set_err(err, GB_ERR_VIA, i, "Via must start with SIP/2.0/<transport>");
        if (part == 2) {
            v->transport = mkspan(ts, i - ts);
            break;
        }
        if (part == 1)
            v->protocol = mkspan(ps, i - ps);
        while (i < end && is_lws(b[i]))
            i++;
        if (i >= end || b[i] != '/')
            return set_err(err, GB_ERR_VIA, i, "Via must start with SIP/2.0/<transport>");
        i++;
        while (i < end && is_lws(b[i]))
            i++;
    }
    size_t ws = i;
    while (i < end && is_lws(b[i]))
        i++;
    if (i == ws)
        return set_err(err, GB_ERR_VIA, i, "Via needs whitespace before the sent-by");
    size_t hs = i;
    if (i < end && b[i] == '[') {
        const char *why;
        size_t bad = ipv6_reference(b, &i, end, &why);
        if (bad != SIZE_MAX)
            return set_err(err, GB_ERR_VIA, bad, why);
    } else {
        while (i < end && (is_alnum(b[i]) || b[i] == '-' || b[i] == '.'))
            i++;
    }
    if (i == hs)
        return set_err(err, GB_ERR_VIA, i, "Via has no host");
    v->host = mkspan(hs, i - hs);
    while (i < end && is_lws(b[i]))
        i++;
    if (i < end && b[i] == ':') {
        i++;
        while (i < end && is_lws(b[i]))
            i++;
        size_t ps2 = i;
        while (i < end && is_digit(b[i]))
            i++;
        uint64_t port;
        if (gb_parse_uint(b + ps2, i - ps2, 65535, &port) < 0)
            return set_err(err, GB_ERR_VIA, ps2, "Via port must be a number from 0 to 65535");
        v->port = (int32_t)port;
    }
    while (i < end && is_lws(b[i]))
        i++;
    if (i < end && b[i] != ';')
        return set_err(err, GB_ERR_VIA, i, "unexpected text after the Via sent-by");
    if (i >= end)
        return GB_OK;
    v->params = mkspan(i + 1, end - i - 1);
    gb_param_iter it;
    gb_param p;
    int r;
    gb_params_begin(&it, b, v->params, ';');
    while ((r = gb_params_next(&it, &p, err)) == 1) {
        const char *n = b + p.name.off;
        if (gb_ieq(n, p.name.len, "branch", 6)) {
            if (!p.has_value || p.value.len == 0)
                return set_err(err, GB_ERR_VIA, p.name.off, "Via branch without a value");
            v->branch = p.value;
            v->has_branch = 1;
        } else if (gb_ieq(n, p.name.len, "received", 8)) {
            if (!p.has_value)
                return set_err(err, GB_ERR_VIA, p.name.off, "Via received without a value");
            v->received = p.value;
            v->has_received = 1;
        } else if (gb_ieq(n, p.name.len, "maddr", 5)) {
            v->maddr = p.value;
        } else if (gb_ieq(n, p.name.len, "rport", 5)) {
            v->has_rport = 1;
            if (p.has_value) {
                uint64_t port;
                if (gb_parse_uint(b + p.value.off, p.value.len, 65535, &port) < 0)
                    return set_err(err, GB_ERR_VIA, p.value.off, "Via rport must be a port number");
                v->rport = (int32_t)port;
            } else {
                v->rport = 0;
            }
        }
    }
    if (r < 0) {
        if (err && err->code == GB_ERR_PARAM)
            err->code = GB_ERR_VIA;
        return GB_ERR_VIA;
    }
    return GB_OK;
}

/* ------------------------------------------------------------------ */
/* Date                                                                */

static int two_digits(const char *p, int *out)
{
    if (!is_digit(p[0]) || !is_digit(p[1]))
        return -1;
    *out = (p[0] - '0') * 10 + (p[1] - '0');
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

static int check_date(const gb_date *d)
{
    return d->month >= 1 && d->month <= 12 && d->day >= 1 &&
           d->day <= days_in_month(d->year, d->month) && d->hour <= 23 &&
           d->minute <= 59 && d->second <= 60 && d->year >= 1;
}

gb_error_code gb_parse_date(const char *b, gb_span in, gb_date *d, gb_error *err)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    static const char days[] = "MonTueWedThuFriSatSun";
    memset(d, 0, sizeof(*d));
    size_t s = in.off, n = in.len;
    while (n && is_lws(b[s]))
        s++, n--;
    while (n && is_lws(b[s + n - 1]))
        n--;
    const char *p = b + s;
    /* GB/T 28181 §9.10: yyyy-MM-ddTHH:mm:ss[.SSS] */
    if (n >= 19 && is_digit(p[0]) && p[4] == '-') {
        int hi, lo;
        if (two_digits(p, &hi) || two_digits(p + 2, &lo) || p[7] != '-' ||
            (p[10] != 'T' && p[10] != 't') || p[13] != ':' || p[16] != ':' ||
            two_digits(p + 5, &d->month) || two_digits(p + 8, &d->day) ||
            two_digits(p + 11, &d->hour) || two_digits(p + 14, &d->minute) ||
            two_digits(p + 17, &d->second))
            return set_err(err, GB_ERR_DATE, s, "Date is not yyyy-MM-ddTHH:mm:ss[.SSS]");
        d->year = hi * 100 + lo;
        if (n > 19) {
            if (p[19] != '.' || n == 20 || n > 23)
                return set_err(err, GB_ERR_DATE, s + 19, "Date milliseconds must be .S to .SSS");
            int ms = 0;
            for (size_t k = 20; k < n; k++) {
                if (!is_digit(p[k]))
                    return set_err(err, GB_ERR_DATE, s + k, "Date milliseconds must be digits");
                ms = ms * 10 + (p[k] - '0');
            }
            for (size_t k = n; k < 23; k++)
                ms *= 10;
            d->millisecond = ms;
            d->has_millisecond = 1;
        }
        if (!check_date(d))
            return set_err(err, GB_ERR_DATE, s, "Date has an out-of-range field");
        d->format = GB_DATE_GB;
        return GB_OK;
    }
    /* RFC 3261 §20.17 / RFC 1123: "Sat, 13 Nov 2010 23:29:00 GMT" */
    if (n != 29 || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' ||
        p[16] != ' ' || p[19] != ':' || p[22] != ':' || p[25] != ' ' ||
        memcmp(p + 26, "GMT", 3) != 0)
        return set_err(err, GB_ERR_DATE, s,
                       "Date is neither RFC 1123 (Sat, 13 Nov 2010 23:29:00 GMT) nor GB (2013-06-26T16:08:37.164)");
    int wd = -1;
    for (int k = 0; k < 7; k++)
        if (memcmp(p, days + 3 * k, 3) == 0)
            wd = k;
    d->month = 0;
    for (int k = 0; k < 12; k++)
        if (memcmp(p + 8, months + 3 * k, 3) == 0)
            d->month = k + 1;
    int hi, lo;
    if (wd < 0 || !d->month || two_digits(p + 5, &d->day) || two_digits(p + 12, &hi) ||
        two_digits(p + 14, &lo) || two_digits(p + 17, &d->hour) ||
        two_digits(p + 20, &d->minute) || two_digits(p + 23, &d->second))
        return set_err(err, GB_ERR_DATE, s, "malformed RFC 1123 Date");
    d->year = hi * 100 + lo;
    if (!check_date(d))
        return set_err(err, GB_ERR_DATE, s, "Date has an out-of-range field");
    d->format = GB_DATE_RFC1123;
    return GB_OK;
}

static void put2(char *o, int v)
{
    o[0] = (char)('0' + (v / 10) % 10);
    o[1] = (char)('0' + v % 10);
}

void gb_format_gb_date(const gb_date *d, char out[23])
{
    put2(out, d->year / 100);
    put2(out + 2, d->year % 100);
    out[4] = '-';
    put2(out + 5, d->month);
    out[7] = '-';
    put2(out + 8, d->day);
    out[10] = 'T';
    put2(out + 11, d->hour);
    out[13] = ':';
    put2(out + 14, d->minute);
    out[16] = ':';
    put2(out + 17, d->second);
    out[19] = '.';
    out[20] = (char)('0' + (d->millisecond / 100) % 10);
    out[21] = (char)('0' + (d->millisecond / 10) % 10);
    out[22] = (char)('0' + d->millisecond % 10);
}
