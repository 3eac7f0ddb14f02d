/*
 * sip_parser.c - one-pass SIP message indexer.
 *
 * Theory of operation: memchr() finds each line end; each header line is
 * split into name and value spans, the name is classified by length and
 * first letter, and only the handful of headers whose values decide
 * whether the message is well framed (Content-Length, CSeq, Max-Forwards,
 * Expires, Call-ID) are read now.  Everything else waits for sip_fields.c.
 */
#include "sip_parser.h"

#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define CR '\r'
#define LF '\n'

/* RFC 3261 §25.1 token characters. */
static const uint8_t token_chars[256] = {
    ['!'] = 1, ['%'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1,
    ['.'] = 1, ['`'] = 1, ['~'] = 1, ['_'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

void gb_limits_default(gb_limits *lim)
{
    lim->max_message = 65536;
    lim->max_headers = 128;
    lim->max_line = 8192;
    lim->max_vias = 70;
    lim->max_contacts = 32;
    lim->lenient = 0;
}

void gb_msg_init(gb_msg *msg, gb_header *headers, uint32_t max_headers)
{
    memset(msg, 0, sizeof(*msg));
    msg->headers = headers;
    msg->max_headers = max_headers;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */



/* a (wire, any case) equals lit (lower-case letters, digits and '-'),
 * both n bytes.  OR-ing 0x20 folds case; no other byte of a token can
 * fold onto a letter, digit or '-', so the test stays exact. */
static inline int ieq_lit(const char *a, const char *lit, size_t n)
{
    unsigned diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= ((unsigned char)a[i] | 0x20u) ^ (unsigned char)lit[i];
    return diff == 0;
}

static const char *const canonical_names[GB_HDR__COUNT] = {
    [GB_HDR_OTHER] = "",
    [GB_HDR_VIA] = "Via",
    [GB_HDR_FROM] = "From",
    [GB_HDR_TO] = "To",
    [GB_HDR_CALL_ID] = "Call-ID",
    [GB_HDR_CSEQ] = "CSeq",
    [GB_HDR_CONTACT] = "Contact",
    [GB_HDR_MAX_FORWARDS] = "Max-Forwards",
    [GB_HDR_EXPIRES] = "Expires",
    [GB_HDR_MIN_EXPIRES] = "Min-Expires",
    [GB_HDR_CONTENT_LENGTH] = "Content-Length",
    [GB_HDR_CONTENT_TYPE] = "Content-Type",
    [GB_HDR_CONTENT_ENCODING] = "Content-Encoding",
    [GB_HDR_DATE] = "Date",
    [GB_HDR_AUTHORIZATION] = "Authorization",
    [GB_HDR_WWW_AUTHENTICATE] = "WWW-Authenticate",
    [GB_HDR_PROXY_AUTHENTICATE] = "Proxy-Authenticate",
    [GB_HDR_PROXY_AUTHORIZATION] = "Proxy-Authorization",
    [GB_HDR_ROUTE] = "Route",
    [GB_HDR_RECORD_ROUTE] = "Record-Route",
    [GB_HDR_USER_AGENT] = "User-Agent",
    [GB_HDR_SERVER] = "Server",
    [GB_HDR_ALLOW] = "Allow",
    [GB_HDR_SUPPORTED] = "Supported",
    [GB_HDR_REQUIRE] = "Require",
    [GB_HDR_PROXY_REQUIRE] = "Proxy-Require",
    [GB_HDR_UNSUPPORTED] = "Unsupported",
    [GB_HDR_SUBJECT] = "Subject",
    [GB_HDR_EVENT] = "Event",
    [GB_HDR_ALLOW_EVENTS] = "Allow-Events",
    [GB_HDR_REFER_TO] = "Refer-To",
    [GB_HDR_REFERRED_BY] = "Referred-By",
    [GB_HDR_SESSION_EXPIRES] = "Session-Expires",
    [GB_HDR_ACCEPT_CONTACT] = "Accept-Contact",
    [GB_HDR_REJECT_CONTACT] = "Reject-Contact",
    [GB_HDR_REQUEST_DISPOSITION] = "Request-Disposition",
    [GB_HDR_IDENTITY] = "Identity",
    [GB_HDR_IDENTITY_INFO] = "Identity-Info",
    [GB_HDR_X_GB_VER] = "X-GB-Ver",
};

const char *gb_header_canonical_name(gb_header_id id)
{
    return (unsigned)id < GB_HDR__COUNT ? canonical_names[id] : "";
}

/* RFC 3261 §7.3.3 and later RFCs' compact forms. */
static gb_header_id compact_form(unsigned char c)
{
    switch (gb_lower(c)) {
    case 'v': return GB_HDR_VIA;
    case 'f': return GB_HDR_FROM;
    case 't': return GB_HDR_TO;
    case 'i': return GB_HDR_CALL_ID;
    case 'm': return GB_HDR_CONTACT;
    case 'l': return GB_HDR_CONTENT_LENGTH;
    case 'c': return GB_HDR_CONTENT_TYPE;
    case 'e': return GB_HDR_CONTENT_ENCODING;
    case 's': return GB_HDR_SUBJECT;
    case 'k': return GB_HDR_SUPPORTED;
    case 'o': return GB_HDR_EVENT;
    case 'u': return GB_HDR_ALLOW_EVENTS;
    case 'r': return GB_HDR_REFER_TO;
    case 'b': return GB_HDR_REFERRED_BY;
    case 'x': return GB_HDR_SESSION_EXPIRES;
    case 'a': return GB_HDR_ACCEPT_CONTACT;
    case 'j': return GB_HDR_REJECT_CONTACT;
    case 'd': return GB_HDR_REQUEST_DISPOSITION;
    case 'y': return GB_HDR_IDENTITY;
    case 'n': return GB_HDR_IDENTITY_INFO;
    default: return GB_HDR_OTHER;
    }
}

/* Case-insensitive compare of name[0..n) with a lower-case literal of the
 * same length, in at most two overlapping word loads per side: each known
 * header name costs a handful of instructions, not a byte loop. */
static inline uint64_t load_lower64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v | 0x2020202020202020ull;
}

static inline uint32_t load_lower32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v | 0x20202020u;
}

static inline int name_is(const char *name, const char *lit, size_t n)
{
    uint64_t a, b;
    if (n > 16)
        return ieq_lit(name, lit, n);
    if (n >= 8) {
        memcpy(&a, lit, 8);
        memcpy(&b, lit + n - 8, 8);
        return ((load_lower64(name) ^ a) | (load_lower64(name + n - 8) ^ b)) == 0;
    }
    if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, lit, 4);
        memcpy(&y, lit + n - 4, 4);
        return ((load_lower32(name) ^ x) | (load_lower32(name + n - 4) ^ y)) == 0;
    }
    return ieq_lit(name, lit, n);
}

#define NAME_IS(lit) name_is(name, lit, sizeof(lit) - 1)

gb_header_id gb_header_lookup(const char *name, size_t len)
{
    /* Dispatch on length and first letter, then one compare: each known
     * name costs a single pass over its bytes. */
    if (len == 0)
        return GB_HDR_OTHER;
    if (len == 1)
        return compact_form((unsigned char)name[0]);
    unsigned char c0 = (unsigned char)name[0] | 0x20;
    switch (len) {
    case 2:
        if (c0 == 't' && NAME_IS("to")) return GB_HDR_TO;
        break;
    case 3:
        if (c0 == 'v' && NAME_IS("via")) return GB_HDR_VIA;
        break;
    case 4:
        if (c0 == 'f' && NAME_IS("from")) return GB_HDR_FROM;
        if (c0 == 'c' && NAME_IS("cseq")) return GB_HDR_CSEQ;
        if (c0 == 'd' && NAME_IS("date")) return GB_HDR_DATE;
        break;
    case 5:
        if (c0 == 'r' && NAME_IS("route")) return GB_HDR_ROUTE;
        if (c0 == 'a' && NAME_IS("allow")) return GB_HDR_ALLOW;
        if (c0 == 'e' && NAME_IS("event")) return GB_HDR_EVENT;
        break;
    case 6:
        if (c0 == 's' && NAME_IS("server")) return GB_HDR_SERVER;
        break;
    case 7:
        switch (c0) {
        case 'c':
            if (NAME_IS("call-id")) return GB_HDR_CALL_ID;
            if (NAME_IS("contact")) return GB_HDR_CONTACT;
            break;
        case 'e':
            if (NAME_IS("expires")) return GB_HDR_EXPIRES;
            break;
        case 'r':
            if (NAME_IS("require")) return GB_HDR_REQUIRE;
            break;
        case 's':
            if (NAME_IS("subject")) return GB_HDR_SUBJECT;
            break;
        }
        break;
    case 8:
        if (c0 == 'x' && NAME_IS("x-gb-ver")) return GB_HDR_X_GB_VER;
        if (c0 == 'r' && NAME_IS("refer-to")) return GB_HDR_REFER_TO;
        if (c0 == 'i' && NAME_IS("identity")) return GB_HDR_IDENTITY;
        break;
    case 9:
        if (c0 == 's' && NAME_IS("supported")) return GB_HDR_SUPPORTED;
        break;
    case 10:
        if (c0 == 'u' && NAME_IS("user-agent")) return GB_HDR_USER_AGENT;
        break;
    case 11:
        if (c0 == 'm' && NAME_IS("min-expires")) return GB_HDR_MIN_EXPIRES;
        if (c0 == 'u' && NAME_IS("unsupported")) return GB_HDR_UNSUPPORTED;
        if (c0 == 'r' && NAME_IS("referred-by")) return GB_HDR_REFERRED_BY;
        break;
    case 12:
        switch (c0) {
        case 'm':
            if (NAME_IS("max-forwards")) return GB_HDR_MAX_FORWARDS;
            break;
        case 'c':
            if (NAME_IS("content-type")) return GB_HDR_CONTENT_TYPE;
            break;
        case 'r':
            if (NAME_IS("record-route")) return GB_HDR_RECORD_ROUTE;
            break;
        case 'a':
            if (NAME_IS("allow-events")) return GB_HDR_ALLOW_EVENTS;
            break;
        }
        break;
    case 13:
        if (c0 == 'a' && NAME_IS("authorization")) return GB_HDR_AUTHORIZATION;
        if (c0 == 'p' && NAME_IS("proxy-require")) return GB_HDR_PROXY_REQUIRE;
        if (c0 == 'i' && NAME_IS("identity-info")) return GB_HDR_IDENTITY_INFO;
        break;
    case 14:
        if (c0 == 'c' && NAME_IS("content-length")) return GB_HDR_CONTENT_LENGTH;
        if (c0 == 'a' && NAME_IS("accept-contact")) return GB_HDR_ACCEPT_CONTACT;
        if (c0 == 'r' && NAME_IS("reject-contact")) return GB_HDR_REJECT_CONTACT;
        break;
    case 15:
        if (c0 == 's' && NAME_IS("session-expires")) return GB_HDR_SESSION_EXPIRES;
        break;
    case 16:
        if (c0 == 'w' && NAME_IS("www-authenticate")) return GB_HDR_WWW_AUTHENTICATE;
        if (c0 == 'c' && NAME_IS("content-encoding")) return GB_HDR_CONTENT_ENCODING;
        break;
    case 18:
        if (c0 == 'p' && NAME_IS("proxy-authenticate")) return GB_HDR_PROXY_AUTHENTICATE;
        break;
    case 19:
        if (c0 == 'p' && NAME_IS("proxy-authorization")) return GB_HDR_PROXY_AUTHORIZATION;
        if (c0 == 'r' && NAME_IS("request-disposition")) return GB_HDR_REQUEST_DISPOSITION;
        break;
    default:
        break;
    }
    return GB_HDR_OTHER;
}

#undef NAME_IS

static const char *const method_names[GB_METHOD__COUNT] = {
    [GB_METHOD_OTHER] = "",
    [GB_METHOD_REGISTER] = "REGISTER",
    [GB_METHOD_MESSAGE] = "MESSAGE",
    [GB_METHOD_INVITE] = "INVITE",
    [GB_METHOD_ACK] = "ACK",
    [GB_METHOD_BYE] = "BYE",
    [GB_METHOD_CANCEL] = "CANCEL",
    [GB_METHOD_OPTIONS] = "OPTIONS",
    [GB_METHOD_INFO] = "INFO",
    [GB_METHOD_NOTIFY] = "NOTIFY",
    [GB_METHOD_SUBSCRIBE] = "SUBSCRIBE",
    [GB_METHOD_REFER] = "REFER",
    [GB_METHOD_UPDATE] = "UPDATE",
    [GB_METHOD_PRACK] = "PRACK",
    [GB_METHOD_PUBLISH] = "PUBLISH",
};

const char *gb_method_name(gb_method_id id)
{
    return (unsigned)id < GB_METHOD__COUNT ? method_names[id] : "";
}

gb_method_id gb_method_lookup(const char *name, size_t len)
{
    /* Methods are case-sensitive (RFC 3261 §7.1). */
#define IS(id) (memcmp(name, method_names[id], len) == 0 ? id : GB_METHOD_OTHER)
    switch (len) {
    case 3:
        return name[0] == 'A' ? IS(GB_METHOD_ACK) : IS(GB_METHOD_BYE);
    case 4:
        return IS(GB_METHOD_INFO);
    case 5:
        return name[0] == 'R' ? IS(GB_METHOD_REFER) : IS(GB_METHOD_PRACK);
    case 6:
        switch (name[0]) {
        case 'I': return IS(GB_METHOD_INVITE);
        case 'C': return IS(GB_METHOD_CANCEL);
        case 'N': return IS(GB_METHOD_NOTIFY);
        case 'U': return IS(GB_METHOD_UPDATE);
        default: return GB_METHOD_OTHER;
        }
    case 7:
        switch (name[0]) {
        case 'M': return IS(GB_METHOD_MESSAGE);
        case 'O': return IS(GB_METHOD_OPTIONS);
        case 'P': return IS(GB_METHOD_PUBLISH);
        default: return GB_METHOD_OTHER;
        }
    case 8:
        return IS(GB_METHOD_REGISTER);
    case 9:
        return IS(GB_METHOD_SUBSCRIBE);
    default:
        return GB_METHOD_OTHER;
    }
#undef IS
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */

static const char *const error_texts[GB_ERR__COUNT] = {
    [GB_OK] = "ok",
    [GB_ERR_NEED_MORE] = "incomplete message",
    [GB_ERR_EMPTY] = "empty message",
    [GB_ERR_START_LINE] = "malformed start line",
    [GB_ERR_METHOD] = "malformed method",
    [GB_ERR_REQUEST_URI] = "malformed Request-URI",
    [GB_ERR_VERSION] = "malformed SIP version",
    [GB_ERR_VERSION_UNSUPPORTED] = "SIP version not supported",
    [GB_ERR_STATUS_CODE] = "malformed status code",
    [GB_ERR_REASON_PHRASE] = "malformed reason phrase",
    [GB_ERR_LINE_ENDING] = "line does not end in CRLF",
    [GB_ERR_HEADER_NAME] = "malformed header name",
    [GB_ERR_HEADER_COLON] = "header name not followed by ':'",
    [GB_ERR_HEADER_VALUE] = "malformed header value",
    [GB_ERR_FOLDING] = "continuation line without a header",
    [GB_ERR_CONTENT_LENGTH] = "invalid Content-Length",
    [GB_ERR_CONTENT_LENGTH_MISMATCH] = "body shorter than Content-Length",
    [GB_ERR_CSEQ] = "invalid CSeq",
    [GB_ERR_CSEQ_METHOD] = "CSeq method does not match the request method",
    [GB_ERR_MAX_FORWARDS] = "invalid Max-Forwards",
    [GB_ERR_EXPIRES] = "invalid Expires",
    [GB_ERR_DUPLICATE_HEADER] = "conflicting duplicate header",
    [GB_ERR_MISSING_HEADER] = "mandatory header missing",
    [GB_ERR_TOO_LARGE] = "message too large",
    [GB_ERR_TOO_MANY_HEADERS] = "too many header lines",
    [GB_ERR_LINE_TOO_LONG] = "header line too long",
    [GB_ERR_TOO_MANY_VIAS] = "too many Via values",
    [GB_ERR_TOO_MANY_CONTACTS] = "too many Contact values",
    [GB_ERR_NO_HEADERS_END] = "no blank line after the headers",
    [GB_ERR_URI] = "malformed URI",
    [GB_ERR_NAME_ADDR] = "malformed address",
    [GB_ERR_VIA] = "malformed Via",
    [GB_ERR_PARAM] = "malformed parameter",
    [GB_ERR_QUOTED_STRING] = "unterminated quoted string",
    [GB_ERR_DATE] = "malformed Date",
    [GB_ERR_AUTH] = "malformed authentication header",
    [GB_ERR_LIST] = "malformed list",
};

const char *gb_error_text(gb_error_code code)
{
    if ((unsigned)code < GB_ERR__COUNT && error_texts[code])
        return error_texts[code];
    return "unknown error";
}

uint16_t gb_error_status(gb_error_code code)
{
    switch (code) {
    case GB_OK:
        return 0;
    case GB_ERR_VERSION_UNSUPPORTED:
        return 505;
    case GB_ERR_TOO_LARGE:
    case GB_ERR_TOO_MANY_HEADERS:
    case GB_ERR_LINE_TOO_LONG:
    case GB_ERR_TOO_MANY_VIAS:
    case GB_ERR_TOO_MANY_CONTACTS:
        return 513;
    default:
        return 400;
    }
}

const char *gb_status_phrase(unsigned status)
{
    switch (status) {
    case 100: return "Trying";
    case 180: return "Ringing";
    case 181: return "Call Is Being Forwarded";
    case 182: return "Queued";
    case 183: return "Session Progress";
    case 200: return "OK";
    case 202: return "Accepted";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Moved Temporarily";
    case 305: return "Use Proxy";
    case 380: return "Alternative Service";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 410: return "Gone";
    case 413: return "Request Entity Too Large";
    case 414: return "Request-URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Unsupported URI Scheme";
    case 420: return "Bad Extension";
    case 421: return "Extension Required";
    case 423: return "Interval Too Brief";
    case 429: return "Too Many Requests";
    case 480: return "Temporarily Unavailable";
    case 481: return "Call/Transaction Does Not Exist";
    case 482: return "Loop Detected";
    case 483: return "Too Many Hops";
    case 484: return "Address Incomplete";
    case 485: return "Ambiguous";
    case 486: return "Busy Here";
    case 487: return "Request Terminated";
    case 488: return "Not Acceptable Here";
    case 491: return "Request Pending";
    case 493: return "Undecipherable";
    case 500: return "Server Internal Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Server Time-out";
    case 505: return "Version Not Supported";
    case 513: return "Message Too Large";
    case 600: return "Busy Everywhere";
    case 603: return "Decline";
    case 604: return "Does Not Exist Anywhere";
    case 606: return "Not Acceptable";
    default: return "Unknown";
    }
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

typedef struct {
    const char *buf;
    size_t len;
    const gb_limits *lim;
    gb_msg *msg;
    gb_error *err;
    int stream;
    uint32_t line;       /* current line number, 1-based */
    uint32_t vias;
    uint32_t contacts;
} parse_ctx;

gb_error_code gb_fail(gb_error *err, gb_error_code code, uint32_t line, size_t offset,
                      const char *reason, gb_header_id header)
{
    if (err) {
        err->code = code;
        err->status = gb_error_status(code);
        err->line = line;
        err->offset = (uint32_t)offset;
        err->reason = reason ? reason : gb_error_text(code);
        err->header = header;
    }
    return code;
}

static gb_error_code fail(parse_ctx *c, gb_error_code code, size_t offset,
                          const char *reason, gb_header_id hdr)
{
    return gb_fail(c->err, code, code == GB_ERR_NEED_MORE ? 0 : c->line, offset, reason, hdr);
}

static inline int is_wsp(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Decimal digits only, value <= max.  Up to 19 significant digits cannot
 * overflow 64 bits, so no per-digit overflow test is needed. */
static int parse_digits(const char *p, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0)
        return -1;
    size_t i = 0;
    while (i + 1 < n && p[i] == '0')
        i++;
    if (n - i > 19)
        return -1;
    uint64_t v = 0;
    for (; i < n; i++) {
        unsigned d = (unsigned)((unsigned char)p[i] - '0');
        if (d > 9)
            return -1;
        v = v * 10 + d;
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/* Count top-level comma-separated values (Via, Contact). */
static uint32_t count_values(const char *p, size_t n)
{
    if (!memchr(p, ',', n))
        return 1;
    uint32_t count = 1;
    int quoted = 0, angle = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (quoted) {
            if (ch == '\\' && i + 1 < n)
                i++;
            else if (ch == '"')
                quoted = 0;
        } else if (ch == '"') {
            quoted = 1;
        } else if (ch == '<') {
            angle = 1;
        } else if (ch == '>') {
            angle = 0;
        } else if (ch == ',' && !angle) {
            count++;
        }
    }
    return count;
}

/* Find the end of the line starting at pos.  Returns the index of the
 * LF, with *content_end set to where the line's content stops (the CR, or
 * the LF for LF-only lines).  -1: no LF yet.  -2: bad line ending. */
/* Index of the first control byte (below 0x20, except HTAB) at or after
 * pos, or len.  Line ends are found this way, and so are bare CRs, bare
 * LFs and NULs inside a line, in the same pass: 16 bytes a step. */
static inline size_t scan_ctl(const char *buf, size_t pos, size_t len)
{
#if defined(__SSE2__)
    const __m128i limit = _mm_set1_epi8(0x1f);
    const __m128i tab = _mm_set1_epi8('\t');
    while (len - pos >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(buf + pos));
        __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, limit), v);
        ctl = _mm_andnot_si128(_mm_cmpeq_epi8(v, tab), ctl);
        unsigned mask = (unsigned)_mm_movemask_epi8(ctl);
        if (mask)
            return pos + (size_t)__builtin_ctz(mask);
        pos += 16;
    }
#endif
    while (pos < len && ((unsigned char)buf[pos] >= 0x20 || buf[pos] == '\t'))
        pos++;
    return pos;
}

/* Find the end of the line starting at pos.  Returns the index of the
 * LF, with *content_end set to where the line's content stops.
 * -1: no line end yet.  -2: bare CR or LF.  -3: other control byte. */
static inline long find_eol(parse_ctx *c, size_t pos, size_t *content_end)
{
    size_t at = scan_ctl(c->buf, pos, c->len);
    /* RFC 3261 quoted-pair: "\" may escape any control byte but CR and LF
     * inside a quoted string (RFC 4475 §3.1.1.2 has NUL and BEL). */
    while (at < c->len && at > pos && c->buf[at - 1] == '\\' && c->buf[at] != CR &&
           c->buf[at] != LF)
        at = scan_ctl(c->buf, at + 1, c->len);
    *content_end = at;
    if (at == c->len)
        return -1;
    char ch = c->buf[at];
    if (ch == CR) {
        if (at + 1 == c->len)
            return -1;
        return c->buf[at + 1] == LF ? (long)(at + 1) : -2;
    }
    if (ch == LF)
        return (c->lim->lenient & GB_LENIENT_LF_ONLY) ? (long)at : -2;
    return -3;
}

static gb_error_code parse_version(parse_ctx *c, const char *p, size_t n,
                                   size_t off)
{
    if (n == 7 && (p[0] | 0x20) == 's' && (p[1] | 0x20) == 'i' &&
        (p[2] | 0x20) == 'p' && p[3] == '/' && p[4] == '2' && p[5] == '.' &&
        p[6] == '0')
        return GB_OK;
    /* SIP/1*DIGIT.1*DIGIT with other numbers: well-formed, unsupported. */
    if (n >= 7 && ieq_lit(p, "sip/", 4)) {
        size_t i = 4, d1 = 0, d2 = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9') i++, d1++;
        if (d1 && i < n && p[i] == '.') {
            i++;
            while (i < n && p[i] >= '0' && p[i] <= '9') i++, d2++;
            if (d2 && i == n) {
                if (c->lim->lenient & GB_LENIENT_VERSION)
                    return GB_OK;
                return fail(c, GB_ERR_VERSION_UNSUPPORTED, off, NULL, GB_HDR_OTHER);
            }
        }
    }
    return fail(c, GB_ERR_VERSION, off, NULL, GB_HDR_OTHER);
}

static gb_error_code parse_start_line(parse_ctx *c, size_t s, size_t e)
{
    const char *buf = c->buf;
    gb_msg *m = c->msg;
    const char *p = buf + s;
    size_t n = e - s;
    m->start_line.off = (uint32_t)s;
    m->start_line.len = (uint32_t)n;
    if (n == 0)
        return fail(c, GB_ERR_START_LINE, s, "empty start line", GB_HDR_OTHER);

    if (n >= 4 && ieq_lit(p, "sip/", 4)) {
        /* Status-Line = SIP-Version SP Status-Code SP Reason-Phrase */
        const char *sp = memchr(p, ' ', n);
        if (!sp)
            return fail(c, GB_ERR_START_LINE, s, "status line without status code", GB_HDR_OTHER);
        size_t vlen = (size_t)(sp - p);
        gb_error_code rc = parse_version(c, p, vlen, s);
        if (rc)
            return rc;
        size_t i = vlen + 1;
        if (n - i < 3 || !(p[i] >= '1' && p[i] <= '6') ||
            !(p[i + 1] >= '0' && p[i + 1] <= '9') ||
            !(p[i + 2] >= '0' && p[i + 2] <= '9') ||
            (n - i > 3 && p[i + 3] != ' '))
            return fail(c, GB_ERR_STATUS_CODE, s + i,
                        "status code must be three digits from 100 to 699", GB_HDR_OTHER);
        m->kind = GB_RESPONSE;
        m->status = (uint16_t)((p[i] - '0') * 100 + (p[i + 1] - '0') * 10 + (p[i + 2] - '0'));
        i += 3;
        if (i < n)
            i++; /* the SP; a missing reason phrase is tolerated */
        m->reason.off = (uint32_t)(s + i);
        m->reason.len = (uint32_t)(n - i);
        return GB_OK;
    }

    /* Request-Line = Method SP Request-URI SP SIP-Version */
    size_t i = 0;
    while (i < n && token_chars[(unsigned char)p[i]])
        i++;
    if (i == 0)
        return fail(c, GB_ERR_METHOD, s, "start line does not begin with a method", GB_HDR_OTHER);
    if (i == n || p[i] != ' ')
        return fail(c, GB_ERR_METHOD, s + i,
                    "method must be a token followed by one space", GB_HDR_OTHER);
    m->kind = GB_REQUEST;
    m->method.off = (uint32_t)s;
    m->method.len = (uint32_t)i;
    m->method_id = (uint8_t)gb_method_lookup(p, i);
    size_t u = ++i;
    /* The URI's own grammar is checked when it is read (request_uri); the
     * indexer only needs its extent. */
    const char *sp = memchr(p + i, ' ', n - i);
    i = sp ? (size_t)(sp - p) : n;
    if (i == u)
        return fail(c, GB_ERR_REQUEST_URI, s + u,
                    "empty Request-URI (or more than one space)", GB_HDR_OTHER);
    if (i == n)
        return fail(c, GB_ERR_START_LINE, s + i,
                    "request line without SIP version", GB_HDR_OTHER);
    /* absoluteURI must start with a scheme: rejects <sip:...> (RFC 4475
     * §3.1.2.5) early and cheaply. */
    if (!((p[u] | 0x20) >= 'a' && (p[u] | 0x20) <= 'z') ||
        !memchr(p + u, ':', i - u))
        return fail(c, GB_ERR_REQUEST_URI, s + u,
                    "Request-URI is not an absolute URI", GB_HDR_OTHER);
    m->uri.off = (uint32_t)(s + u);
    m->uri.len = (uint32_t)(i - u);
    i++;
    if (memchr(p + i, ' ', n - i))
        return fail(c, GB_ERR_REQUEST_URI, s + u,
                    "whitespace inside the Request-URI or after the version", GB_HDR_OTHER);
    return parse_version(c, p + i, n - i, s + i);
}

/* Store singleton numeric headers, rejecting a second different value. */
static gb_error_code numeric_header(parse_ctx *c, gb_header *h, int64_t *slot,
                                    uint64_t max, gb_error_code code,
                                    const char *reason)
{
    const char *v = c->buf + h->value.off;
    uint64_t val;
    if (h->folded || parse_digits(v, h->value.len, max, &val) < 0)
        return fail(c, code, h->value.off, reason, (gb_header_id)h->id);
    if (*slot >= 0 && (uint64_t)*slot != val)
        return fail(c, GB_ERR_DUPLICATE_HEADER, h->name.off,
                    "two different values of a single-valued header",
                    (gb_header_id)h->id);
    *slot = (int64_t)val;
    return GB_OK;
}

static gb_error_code parse_cseq(parse_ctx *c, gb_header *h)
{
    gb_msg *m = c->msg;
    const char *v = c->buf + h->value.off;
    size_t n = h->value.len, i = 0;
    while (i < n && v[i] >= '0' && v[i] <= '9')
        i++;
    uint64_t num;
    if (i == 0 || parse_digits(v, i, 0x7fffffffu, &num) < 0)
        return fail(c, GB_ERR_CSEQ, h->value.off,
                    "CSeq number must be an integer below 2**31", GB_HDR_CSEQ);
    size_t j = i;
    while (j < n && (is_wsp(v[j]) || v[j] == CR || v[j] == LF))
        j++;
    if (j == i || j == n)
        return fail(c, GB_ERR_CSEQ, h->value.off + j,
                    "CSeq must be a number, whitespace and a method", GB_HDR_CSEQ);
    size_t ms = j;
    while (j < n && token_chars[(unsigned char)v[j]])
        j++;
    if (j != n)
        return fail(c, GB_ERR_CSEQ, h->value.off + j,
                    "CSeq method must be a token", GB_HDR_CSEQ);
    if (m->first[GB_HDR_CSEQ] && m->first[GB_HDR_CSEQ] != (uint16_t)(h - m->headers) + 1) {
        gb_header *prev = &m->headers[m->first[GB_HDR_CSEQ] - 1];
        if (prev->value.len != n || memcmp(c->buf + prev->value.off, v, n))
            return fail(c, GB_ERR_DUPLICATE_HEADER, h->name.off,
                        "two different CSeq headers", GB_HDR_CSEQ);
    }
    m->cseq = (uint32_t)num;
    if (m->kind == GB_RESPONSE) {
        m->method.off = (uint32_t)(h->value.off + ms);
        m->method.len = (uint32_t)(n - ms);
        m->method_id = (uint8_t)gb_method_lookup(v + ms, n - ms);
    } else if (!(c->lim->lenient & GB_LENIENT_CSEQ_METHOD) &&
               (m->method.len != n - ms ||
                memcmp(c->buf + m->method.off, v + ms, n - ms))) {
        return fail(c, GB_ERR_CSEQ_METHOD, h->value.off + ms, NULL, GB_HDR_CSEQ);
    }
    return GB_OK;
}

static inline __attribute__((always_inline)) gb_error_code finish_header(parse_ctx *c, gb_header *h)
{
    gb_msg *m = c->msg;
    if (h->id == GB_HDR_OTHER)
        return GB_OK;
    uint16_t idx = (uint16_t)(h - m->headers) + 1;
    if (!m->first[h->id])
        m->first[h->id] = idx;
    /* Report errors on the header's own first line. */
    uint32_t saved = c->line;
    c->line = h->line;
    gb_error_code rc = GB_OK;
    switch (h->id) {
    case GB_HDR_CONTENT_LENGTH:
        rc = numeric_header(c, h, &m->content_length, 0xffffffffu,
                            GB_ERR_CONTENT_LENGTH,
                            "Content-Length must be a non-negative integer");
        break;
    case GB_HDR_MAX_FORWARDS:
        rc = numeric_header(c, h, &m->max_forwards, 255, GB_ERR_MAX_FORWARDS,
                            "Max-Forwards must be an integer from 0 to 255");
        break;
    case GB_HDR_EXPIRES:
        rc = numeric_header(c, h, &m->expires, 0xffffffffu, GB_ERR_EXPIRES,
                            "Expires must be delta-seconds (0 to 2**32-1)");
        break;
    case GB_HDR_CSEQ:
        rc = parse_cseq(c, h);
        break;
    case GB_HDR_CALL_ID:
        if (h->value.len == 0) {
            rc = fail(c, GB_ERR_HEADER_VALUE, h->value.off, "empty Call-ID", GB_HDR_CALL_ID);
        } else if (m->first[GB_HDR_CALL_ID] != idx) {
            gb_header *prev = &m->headers[m->first[GB_HDR_CALL_ID] - 1];
            if (prev->value.len != h->value.len ||
                memcmp(c->buf + prev->value.off, c->buf + h->value.off, h->value.len))
                rc = fail(c, GB_ERR_DUPLICATE_HEADER, h->name.off,
                          "two different Call-ID headers", GB_HDR_CALL_ID);
        }
        break;
    case GB_HDR_VIA:
        c->vias += count_values(c->buf + h->value.off, h->value.len);
        if (c->vias > c->lim->max_vias)
            rc = fail(c, GB_ERR_TOO_MANY_VIAS, h->name.off, NULL, GB_HDR_VIA);
        break;
    case GB_HDR_CONTACT:
        c->contacts += count_values(c->buf + h->value.off, h->value.len);
        if (c->contacts > c->lim->max_contacts)
            rc = fail(c, GB_ERR_TOO_MANY_CONTACTS, h->name.off, NULL, GB_HDR_CONTACT);
        break;
    default:
        break;
    }
    c->line = saved;
    return rc;
}

static gb_error_code check_mandatory(parse_ctx *c)
{
    static const gb_header_id required[] = {
        GB_HDR_VIA, GB_HDR_FROM, GB_HDR_TO, GB_HDR_CALL_ID, GB_HDR_CSEQ,
    };
    static const char *const reasons[] = {
        "missing Via header", "missing From header", "missing To header",
        "missing Call-ID header", "missing CSeq header",
    };
    if (c->lim->lenient & GB_LENIENT_MISSING_HEADERS)
        return GB_OK;
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (!c->msg->first[required[i]]) {
            c->line = 0;
            return fail(c, GB_ERR_MISSING_HEADER, c->msg->header_bytes,
                        reasons[i], required[i]);
        }
    return GB_OK;
}

gb_error_code gb_parse(const char *buf, size_t len, int stream,
                       const gb_limits *lim, gb_msg *msg, gb_error *err)
{
    gb_limits deflim;
    if (!lim) {
        gb_limits_default(&deflim);
        lim = &deflim;
    }
    gb_header *headers = msg->headers;
    uint32_t cap = msg->max_headers;
    memset(msg, 0, offsetof(gb_msg, headers));
    msg->headers = headers;
    msg->max_headers = cap;
    msg->content_length = -1;
    msg->max_forwards = -1;
    msg->expires = -1;
    if (cap > lim->max_headers)
        cap = lim->max_headers;

    parse_ctx c = {buf, len, lim, msg, err, stream, 1, 0, 0};
    if (err)
        memset(err, 0, sizeof(*err));

    if (!stream && len > lim->max_message) {
        c.line = 0;
        return fail(&c, GB_ERR_TOO_LARGE, lim->max_message, NULL, GB_HDR_OTHER);
    }

    /* Skip CRLF keep-alives before the start line (RFC 3261 §7.5,
     * RFC 5626 §3.5.1). */
    size_t pos = 0;
    while (pos < len && (buf[pos] == CR || buf[pos] == LF))
        pos++;
    size_t start = pos;
    if (pos == len) {
        if (stream)
            return fail(&c, GB_ERR_NEED_MORE, len, NULL, GB_HDR_OTHER);
        c.line = 0;
        return fail(&c, GB_ERR_EMPTY, 0, NULL, GB_HDR_OTHER);
    }
    /* Offsets stay relative to buf; message limits count from start. */
    size_t limit_end = len;
    if (stream && len - start > lim->max_message)
        limit_end = start + lim->max_message;

    size_t ce;
    long eol = find_eol(&c, pos, &ce);
    if (eol == -1) {
        if (stream && len - start <= lim->max_message && len - start <= lim->max_line)
            return fail(&c, GB_ERR_NEED_MORE, len, NULL, GB_HDR_OTHER);
        if (len - start > lim->max_line)
            return fail(&c, GB_ERR_LINE_TOO_LONG, start, "start line too long", GB_HDR_OTHER);
        return fail(&c, GB_ERR_NO_HEADERS_END, len, "message has no line end", GB_HDR_OTHER);
    }
    if (eol == -2)
        return fail(&c, GB_ERR_LINE_ENDING, ce, NULL, GB_HDR_OTHER);
    if (eol == -3)
        return fail(&c, GB_ERR_START_LINE, ce, "control character in the start line", GB_HDR_OTHER);
    if (ce - pos > lim->max_line)
        return fail(&c, GB_ERR_LINE_TOO_LONG, pos, "start line too long", GB_HDR_OTHER);
    gb_error_code rc = parse_start_line(&c, pos, ce);
    if (rc)
        return rc;
    pos = (size_t)eol + 1;

    gb_header *cur = NULL;
    size_t cur_line_start = 0;
    uint32_t n = 0;
    for (;;) {
        c.line++;
        if (pos >= limit_end && limit_end < len) {
            c.line = 0;
            return fail(&c, GB_ERR_TOO_LARGE, start + lim->max_message, NULL, GB_HDR_OTHER);
        }
        eol = find_eol(&c, pos, &ce);
        if (eol == -1) {
            if (stream) {
                if (len - start > lim->max_message) {
                    c.line = 0;
                    return fail(&c, GB_ERR_TOO_LARGE, start + lim->max_message, NULL, GB_HDR_OTHER);
                }
                if (len - pos > lim->max_line)
                    return fail(&c, GB_ERR_LINE_TOO_LONG, pos, NULL, GB_HDR_OTHER);
                return fail(&c, GB_ERR_NEED_MORE, len, NULL, GB_HDR_OTHER);
            }
            return fail(&c, GB_ERR_NO_HEADERS_END, len, NULL, GB_HDR_OTHER);
        }
        if (eol == -2)
            return fail(&c, GB_ERR_LINE_ENDING, ce, NULL, GB_HDR_OTHER);
        if (eol == -3)
            return fail(&c, GB_ERR_HEADER_VALUE, ce, "control character in a header line", GB_HDR_OTHER);
        if ((size_t)eol >= limit_end) {
            c.line = 0;
            return fail(&c, GB_ERR_TOO_LARGE, start + lim->max_message, NULL, GB_HDR_OTHER);
        }
        size_t next = (size_t)eol + 1;
        if (ce == pos) {
            /* blank line: end of headers */
            if (cur && (rc = finish_header(&c, cur)))
                return rc;
            pos = next;
            break;
        }
        const char *p = buf + pos;
        if (is_wsp(*p)) {
            /* RFC 3261 §7.3.1 line folding: continues the previous value. */
            if (!cur)
                return fail(&c, GB_ERR_FOLDING, pos, NULL, GB_HDR_OTHER);
            size_t k = pos;
            while (k < ce && is_wsp(buf[k]))
                k++;
            if (k < ce) {
                if (cur->value.len == 0)
                    cur->value.off = (uint32_t)k;
                else
                    cur->folded = 1;
                cur->value.len = (uint32_t)(ce - cur->value.off);
                while (cur->value.len && is_wsp(buf[cur->value.off + cur->value.len - 1]))
                    cur->value.len--;
            }
            if (ce - cur_line_start > lim->max_line) {
                c.line = cur->line; /* the header's own line, not the continuation */
                return fail(&c, GB_ERR_LINE_TOO_LONG, cur_line_start, NULL, (gb_header_id)cur->id);
            }
            pos = next;
            continue;
        }
        if (cur && (rc = finish_header(&c, cur)))
            return rc;
        if (ce - pos > lim->max_line)
            return fail(&c, GB_ERR_LINE_TOO_LONG, pos, NULL, GB_HDR_OTHER);
        if (n >= cap)
            return fail(&c, GB_ERR_TOO_MANY_HEADERS, pos, NULL, GB_HDR_OTHER);
        /* header-name HCOLON: token, optional WSP, ':'.  A name that
         * matches a known header is a token by construction, so only
         * unknown names are checked byte by byte. */
        size_t llen = ce - pos;
        const char *colon = memchr(p, ':', llen);
        size_t name_len = colon ? (size_t)(colon - p) : llen;
        while (name_len && is_wsp(p[name_len - 1]))
            name_len--;
        gb_header_id id = gb_header_lookup(p, name_len);
        if (id == GB_HDR_OTHER || !colon) {
            size_t t = 0;
            while (t < name_len && token_chars[(unsigned char)p[t]])
                t++;
            if (t == 0)
                return fail(&c, GB_ERR_HEADER_NAME, pos, "line does not start with a header name", GB_HDR_OTHER);
            if (t < name_len || !colon) {
                /* skip WSP to find what broke the name */
                size_t w = t;
                while (w < llen && is_wsp(p[w]))
                    w++;
                if (w < llen && p[w] != ':' && t < name_len)
                    return fail(&c, t == w ? GB_ERR_HEADER_NAME : GB_ERR_HEADER_COLON,
                                pos + w, t == w ? "invalid character in header name" : NULL,
                                GB_HDR_OTHER);
                return fail(&c, GB_ERR_HEADER_COLON, pos + w, NULL, GB_HDR_OTHER);
            }
        }
        size_t k = (size_t)(colon - p) + 1;
        while (k < llen && is_wsp(p[k]))
            k++;
        size_t vend = llen;
        while (vend > k && is_wsp(p[vend - 1]))
            vend--;
        cur = &headers[n++];
        cur->name.off = (uint32_t)pos;
        cur->name.len = (uint32_t)name_len;
        cur->value.off = (uint32_t)(pos + k);
        cur->value.len = (uint32_t)(vend - k);
        cur->id = (uint16_t)id;
        cur->folded = 0;
        cur->line = c.line;
        cur_line_start = pos;
        msg->nheaders = (uint16_t)n;
        pos = next;
    }
    msg->nheaders = (uint16_t)n;
    msg->header_bytes = (uint32_t)(pos - start);

    if (msg->kind == GB_RESPONSE && !msg->first[GB_HDR_CSEQ] &&
        !(lim->lenient & GB_LENIENT_MISSING_HEADERS)) {
        /* fall through to the mandatory-header check below */
    }
    if ((rc = check_mandatory(&c)))
        return rc;

    size_t avail = len - pos;
    size_t body_len;
    if (msg->content_length < 0) {
        if (stream && !(lim->lenient & GB_LENIENT_STREAM_NO_CONTENT_LENGTH)) {
            c.line = 0;
            return fail(&c, GB_ERR_CONTENT_LENGTH, pos,
                        "Content-Length is required on stream transports (RFC 3261 §18.3)",
                        GB_HDR_CONTENT_LENGTH);
        }
        body_len = stream ? 0 : avail;
    } else {
        body_len = (size_t)msg->content_length;
        if (pos - start + body_len > lim->max_message) {
            c.line = 0;
            return fail(&c, GB_ERR_TOO_LARGE, pos, "Content-Length exceeds the message size limit",
                        GB_HDR_CONTENT_LENGTH);
        }
        if (body_len > avail) {
            if (stream)
                return fail(&c, GB_ERR_NEED_MORE, len, NULL, GB_HDR_OTHER);
            const gb_header *cl = &msg->headers[msg->first[GB_HDR_CONTENT_LENGTH] - 1];
            c.line = cl->line;
            return fail(&c, GB_ERR_CONTENT_LENGTH_MISMATCH, cl->value.off, NULL,
                        GB_HDR_CONTENT_LENGTH);
        }
    }
    msg->body.off = (uint32_t)pos;
    msg->body.len = (uint32_t)body_len;
    msg->length = (uint32_t)(pos + body_len);
    return GB_OK;
}

gb_error_code gb_frame(const char *buf, size_t len, const gb_limits *lim,
                       size_t *skip, size_t *msglen, gb_error *err)
{
    gb_limits deflim;
    if (!lim) {
        gb_limits_default(&deflim);
        lim = &deflim;
    }
    size_t s = 0;
    while (s < len && (buf[s] == CR || buf[s] == LF))
        s++;
    *skip = s;
    *msglen = 0;
    if (s == len) {
        if (err) {
            memset(err, 0, sizeof(*err));
            err->code = GB_ERR_NEED_MORE;
            err->offset = (uint32_t)len;
            err->reason = gb_error_text(GB_ERR_NEED_MORE);
        }
        return GB_ERR_NEED_MORE;
    }
    /* Framing needs the whole header block validated anyway, so index it
     * with a scratch header array sized to the limit. */
    gb_header scratch[256];
    gb_msg m;
    uint32_t cap = lim->max_headers < 256 ? lim->max_headers : 256;
    gb_msg_init(&m, scratch, cap);
    gb_limits l2 = *lim;
    if (l2.max_headers > cap)
        l2.max_headers = cap;
    gb_error_code rc = gb_parse(buf + s, len - s, 1, &l2, &m, err);
    if (rc) {
        if (err && rc != GB_ERR_NEED_MORE)
            err->offset += (uint32_t)s;
        return rc;
    }
    *msglen = m.length;
    return GB_OK;
}

int gb_msg_find(const gb_msg *msg, gb_header_id id, unsigned nth)
{
    unsigned first = msg->first[id];
    if (!first)
        return -1;
    for (unsigned i = first - 1; i < msg->nheaders; i++)
        if (msg->headers[i].id == id && nth-- == 0)
            return (int)i;
    return -1;
}

int gb_msg_next(const gb_msg *msg, gb_header_id id, int after)
{
    for (unsigned i = (unsigned)(after + 1); i < msg->nheaders; i++)
        if (msg->headers[i].id == id)
            return (int)i;
    return -1;
}

int gb_msg_find_name(const gb_msg *msg, const char *buf, const char *name,
                     size_t name_len, int after)
{
    gb_header_id id = gb_header_lookup(name, name_len);
    if (id != GB_HDR_OTHER)
        return gb_msg_next(msg, id, after);
    for (unsigned i = (unsigned)(after + 1); i < msg->nheaders; i++) {
        const gb_header *h = &msg->headers[i];
        if (h->id == GB_HDR_OTHER &&
            gb_ieq(buf + h->name.off, h->name.len, name, name_len))
            return (int)i;
    }
    return -1;
}

size_t gb_unfold(const char *buf, gb_span value, char *out)
{
    const char *p = buf + value.off;
    size_t n = value.len, o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == CR || p[i] == LF) {
            /* swallow the line end and the whitespace that follows */
            size_t j = i;
            while (j < n && (p[j] == CR || p[j] == LF || is_wsp(p[j])))
                j++;
            /* and the whitespace before it */
            while (o > 0 && is_wsp(out[o - 1]))
                o--;
            out[o++] = ' ';
            i = j - 1;
        } else {
            out[o++] = p[i];
        }
    }
    return o;
}

/* ---- reading a refused request for its answer ---------------------------------- */

/* Remove the header that starts on 1-based line `line` (with its folded
 * continuation lines) from buf[0..*len). */
static int remove_line(char *buf, size_t *len, uint32_t line)
{
    size_t pos = 0;
    for (uint32_t l = 1; l < line; l++) {
        const char *lf = memchr(buf + pos, '\n', *len - pos);
        if (!lf)
            return -1;
        pos = (size_t)(lf - buf) + 1;
    }
    size_t end = pos;
    do {
        const char *lf = memchr(buf + end, '\n', *len - end);
        if (!lf)
            return -1;
        end = (size_t)(lf - buf) + 1;
    } while (end < *len && (buf[end] == ' ' || buf[end] == '\t'));
    memmove(buf + pos, buf + end, *len - end);
    *len -= end - pos;
    return 0;
}

/* A request line the parser refused (RFC 4475 §3.1.2.7-3.1.2.10: <> or
 * spaces around the Request-URI, whitespace after the version) still
 * names a request when it starts with a method token and a space and
 * says SIP/2.0: write "<method> sip:invalid SIP/2.0" in its place (buf
 * has room for len + 32), so the headers can be read for an answer, which
 * echoes headers, never the start line.  Returns the new length, or 0
 * when the line is no request line. */
static size_t rewrite_start_line(char *buf, size_t len)
{
    const char *lf = memchr(buf, '\n', len);
    if (!lf)
        return 0;
    size_t line = (size_t)(lf - buf), k = 0;
    while (k < line && token_chars[(unsigned char)buf[k]])
        k++;
    if (!k || k >= line || buf[k] != ' ')
        return 0;
    int sip = 0;
    for (size_t i = k; i + 7 <= line && !sip; i++)
        sip = memcmp(buf + i, "SIP/2.0", 7) == 0;
    if (!sip)
        return 0;
    static const char tail[] = " sip:invalid SIP/2.0\r\n";
    size_t head = k + sizeof(tail) - 1, rest = len - line - 1;
    memmove(buf + head, buf + line + 1, rest); /* head <= line + 1 + 32 */
    memcpy(buf + k, tail, sizeof(tail) - 1);
    return head + rest;
}

gb_error_code gb_parse_past_errors(const char *buf, size_t len, uint32_t lenient, gb_msg *m,
                                   const char **out, size_t *out_len, char **copy)
{
    gb_limits lim;
    gb_limits_default(&lim);
    /* never LF_ONLY unless asked: an answer must not echo bare LFs */
    lim.lenient = (GB_LENIENT_ALL & ~GB_LENIENT_LF_ONLY) | lenient;
    lim.max_message = 0x7fffffff;  /* the caller's buffer bounds it */
    lim.max_headers = m->max_headers;
    lim.max_line = 0x7fffffff;
    lim.max_vias = 256;
    lim.max_contacts = 256;
    *copy = NULL;
    *out = buf;
    *out_len = len;
    gb_error e;
    e.code = GB_ERR_TOO_LARGE;
    int rewrote = 0;
    for (int attempt = 0; len <= 0x7fffffff && attempt < 12; attempt++) {
        gb_msg_init(m, m->headers, m->max_headers);
        if (gb_parse(*out, *out_len, 0, &lim, m, &e) == GB_OK)
            return GB_OK;
        if (e.code == GB_ERR_LINE_ENDING || e.code == GB_ERR_NO_HEADERS_END ||
            e.header == GB_HDR_VIA || e.line < 1 || (e.line == 1 && rewrote))
            break;
        if (!*copy) {
            *copy = malloc(len + 32);
            if (!*copy)
                break;
            memcpy(*copy, buf, len);
            *out = *copy;
        }
        if (e.line == 1) {
            size_t n = rewrite_start_line(*copy, *out_len);
            if (!n)
                break;
            *out_len = n;
            rewrote = 1;
            continue;
        }
        if (remove_line(*copy, out_len, e.line) < 0)
            break;
    }
    return e.code;
}
