/*
 * sip_parser.h - zero-copy SIP message indexer (RFC 3261 §7, §20, §25).
 *
 * One pass over the buffer finds the start line, every header line and the
 * body, and records them as (offset, length) spans into the caller's buffer.
 * Nothing is copied and nothing is NUL-terminated: every function takes an
 * explicit length and never reads past it.  Structured header values (URIs,
 * name-addr, Via, parameters...) are parsed later, on demand, by
 * sip_fields.h, so a message whose Call-ID and CSeq are all that is needed
 * costs one scan.
 *
 * The parser is strict by default; real-world quirks are accepted only when
 * the caller names them in gb_limits.lenient (llhttp's habit).
 */
#ifndef GBSIP_SIP_PARSER_H
#define GBSIP_SIP_PARSER_H

#include <stddef.h>
#include <stdint.h>

/* A run of bytes inside a buffer the caller owns. */
typedef struct {
    uint32_t off;
    uint32_t len;
} gb_span;

/* Headers the core knows by name (long and compact forms, any case). */
typedef enum {
    GB_HDR_OTHER = 0,
    GB_HDR_VIA,
    GB_HDR_FROM,
    GB_HDR_TO,
    GB_HDR_CALL_ID,
    GB_HDR_CSEQ,
    GB_HDR_CONTACT,
    GB_HDR_MAX_FORWARDS,
    GB_HDR_EXPIRES,
    GB_HDR_MIN_EXPIRES,
    GB_HDR_CONTENT_LENGTH,
    GB_HDR_CONTENT_TYPE,
    GB_HDR_CONTENT_ENCODING,
    GB_HDR_DATE,
    GB_HDR_AUTHORIZATION,
    GB_HDR_WWW_AUTHENTICATE,
    GB_HDR_PROXY_AUTHENTICATE,
    GB_HDR_PROXY_AUTHORIZATION,
    GB_HDR_ROUTE,
    GB_HDR_RECORD_ROUTE,
    GB_HDR_USER_AGENT,
    GB_HDR_SERVER,
    GB_HDR_ALLOW,
    GB_HDR_SUPPORTED,
    GB_HDR_REQUIRE,
    GB_HDR_PROXY_REQUIRE,
    GB_HDR_UNSUPPORTED,
    GB_HDR_SUBJECT,
    GB_HDR_EVENT,
    GB_HDR_ALLOW_EVENTS,
    GB_HDR_REFER_TO,
    GB_HDR_REFERRED_BY,
    GB_HDR_SESSION_EXPIRES,
    GB_HDR_ACCEPT_CONTACT,
    GB_HDR_REJECT_CONTACT,
    GB_HDR_REQUEST_DISPOSITION,
    GB_HDR_IDENTITY,
    GB_HDR_IDENTITY_INFO,
    GB_HDR_X_GB_VER,
    GB_HDR__COUNT
} gb_header_id;

/* Methods the core knows; anything else is GB_METHOD_OTHER (still valid). */
typedef enum {
    GB_METHOD_OTHER = 0,
    GB_METHOD_REGISTER,
    GB_METHOD_MESSAGE,
    GB_METHOD_INVITE,
    GB_METHOD_ACK,
    GB_METHOD_BYE,
    GB_METHOD_CANCEL,
    GB_METHOD_OPTIONS,
    GB_METHOD_INFO,
    GB_METHOD_NOTIFY,
    GB_METHOD_SUBSCRIBE,
    GB_METHOD_REFER,
    GB_METHOD_UPDATE,
    GB_METHOD_PRACK,
    GB_METHOD_PUBLISH,
    GB_METHOD__COUNT
} gb_method_id;

/* Named tolerances for peers that bend RFC 3261.  All off by default. */
enum {
    /* Lines may end in a bare LF instead of CRLF. */
    GB_LENIENT_LF_ONLY = 1u << 0,
    /* CSeq's method may differ from the request method (RFC 3261 §8.1.1.5). */
    GB_LENIENT_CSEQ_METHOD = 1u << 1,
    /* A request may lack Max-Forwards, Via, From, To, Call-ID or CSeq. */
    GB_LENIENT_MISSING_HEADERS = 1u << 2,
    /* A stream (TCP) message may lack Content-Length; its body is then empty. */
    GB_LENIENT_STREAM_NO_CONTENT_LENGTH = 1u << 3,
    /* Whitespace between a header name and its colon is accepted. RFC 3261
     * allows it already; this flag also accepts it before the colon of a
     * folded continuation and other spacing oddities.  */
    GB_LENIENT_SPACING = 1u << 4,
    /* Any SIP/x.y version is accepted instead of answering 505. */
    GB_LENIENT_VERSION = 1u << 5,
    GB_LENIENT_ALL = (1u << 6) - 1
};

/* Explicit bounds.  gb_limits_default() fills the documented defaults. */
typedef struct {
    uint32_t max_message;   /* whole message incl. body; default 65536 */
    uint32_t max_headers;   /* header lines; default 128 */
    uint32_t max_line;      /* one line incl. folded continuations; default 8192 */
    uint32_t max_vias;      /* Via values (after splitting lists); default 70,
                               as many hops as Max-Forwards allows */
    uint32_t max_contacts;  /* Contact values; default 32 */
    uint32_t lenient;       /* GB_LENIENT_* flags */
} gb_limits;

void gb_limits_default(gb_limits *lim);

/* Why a message was refused.  Each has a default SIP status (see below). */
typedef enum {
    GB_OK = 0,
    GB_ERR_NEED_MORE,          /* stream mode only: not a whole message yet */
    GB_ERR_EMPTY,
    GB_ERR_START_LINE,
    GB_ERR_METHOD,
    GB_ERR_REQUEST_URI,
    GB_ERR_VERSION,            /* malformed SIP-Version */
    GB_ERR_VERSION_UNSUPPORTED,/* well-formed but not SIP/2.0: 505 */
    GB_ERR_STATUS_CODE,
    GB_ERR_REASON_PHRASE,
    GB_ERR_LINE_ENDING,        /* bare CR or LF where CRLF is required */
    GB_ERR_HEADER_NAME,
    GB_ERR_HEADER_COLON,
    GB_ERR_HEADER_VALUE,       /* control characters in a value */
    GB_ERR_FOLDING,            /* continuation line with nothing to continue */
    GB_ERR_CONTENT_LENGTH,
    GB_ERR_CONTENT_LENGTH_MISMATCH, /* datagram shorter than Content-Length */
    GB_ERR_CSEQ,
    GB_ERR_CSEQ_METHOD,
    GB_ERR_MAX_FORWARDS,
    GB_ERR_EXPIRES,
    GB_ERR_DUPLICATE_HEADER,   /* a second, different Call-ID/CSeq/... */
    GB_ERR_MISSING_HEADER,
    GB_ERR_TOO_LARGE,          /* max_message */
    GB_ERR_TOO_MANY_HEADERS,   /* max_headers or the caller's array */
    GB_ERR_LINE_TOO_LONG,      /* max_line */
    GB_ERR_TOO_MANY_VIAS,
    GB_ERR_TOO_MANY_CONTACTS,
    GB_ERR_NO_HEADERS_END,     /* datagram without the blank line */
    /* sub-parsers (sip_fields.h) */
    GB_ERR_URI,
    GB_ERR_NAME_ADDR,
    GB_ERR_VIA,
    GB_ERR_PARAM,
    GB_ERR_QUOTED_STRING,
    GB_ERR_DATE,
    GB_ERR_AUTH,
    GB_ERR_LIST,
    GB_ERR__COUNT
} gb_error_code;

/* Where and why.  line is 1-based (0 when not about one line); offset is
 * the byte offset from the start of the buffer that was parsed. */
typedef struct {
    gb_error_code code;
    uint16_t status;     /* what a server should answer: 400, 413, 505, 513 */
    uint32_t line;
    uint32_t offset;
    const char *reason;  /* static text, e.g. "CSeq method does not match" */
    gb_header_id header; /* the header concerned, when there is one */
} gb_error;

/* One header line.  value excludes leading/trailing whitespace; when
 * folded is set it still contains the CRLF + WSP of the continuation lines
 * (gb_unfold() copies a clean value out). */
typedef struct {
    gb_span name;
    gb_span value;
    uint16_t id;        /* gb_header_id */
    uint16_t folded;
    uint32_t line;      /* 1-based line number of the header in the message */
} gb_header;

enum { GB_REQUEST = 1, GB_RESPONSE = 2 };

typedef struct {
    uint8_t kind;             /* GB_REQUEST or GB_RESPONSE */
    uint8_t method_id;        /* request method, or CSeq method in a response */
    uint16_t status;          /* responses */
    gb_span method;           /* request method, or CSeq method in a response */
    gb_span uri;              /* requests */
    gb_span reason;           /* responses */
    gb_span start_line;       /* without its line ending */
    gb_span body;
    uint32_t length;          /* bytes of buffer this message occupies */
    uint32_t header_bytes;    /* start line + headers + blank line */
    int64_t content_length;   /* -1 when absent */
    uint32_t cseq;            /* CSeq number (validated 0..2^31-1) */
    int64_t max_forwards;     /* -1 when absent */
    int64_t expires;          /* Expires header (delta-seconds), -1 absent */
    uint16_t nheaders;
    uint16_t first[GB_HDR__COUNT]; /* 1-based index of first occurrence, 0 none */
    gb_header *headers;       /* caller's array */
    uint32_t max_headers;     /* capacity of headers[] */
} gb_msg;

/* Bind the caller's header array to msg (zeroes everything else). */
void gb_msg_init(gb_msg *msg, gb_header *headers, uint32_t max_headers);

/*
 * Parse one whole message held in buf[0..len).
 *   datagram mode (stream == 0): the buffer is one UDP datagram; a missing
 *     Content-Length means the body is the rest of the datagram; bytes past
 *     Content-Length are ignored (RFC 3261 §18.3); too few bytes is an error.
 *   stream mode (stream != 0): buf holds what a TCP connection delivered so
 *     far; leading CRLF keep-alives are skipped (msg->length counts them),
 *     GB_ERR_NEED_MORE is returned until a whole message is present, and
 *     Content-Length is required.
 * Returns GB_OK or an error code (also stored in err, if err != NULL).
 */
gb_error_code gb_parse(const char *buf, size_t len, int stream,
                       const gb_limits *lim, gb_msg *msg, gb_error *err);

/*
 * Stream framing without indexing: how many bytes the next message takes.
 * *skip receives the number of leading CRLF keep-alive bytes, *msglen the
 * message length after them.  Returns GB_OK, GB_ERR_NEED_MORE, or an error.
 */
gb_error_code gb_frame(const char *buf, size_t len, const gb_limits *lim,
                       size_t *skip, size_t *msglen, gb_error *err);

/*
 * Read a message the strict parse refused, for an answer that echoes its
 * headers (RFC 3261 §8.2, RFC 4475 §3.1.2, §3.3.1, §3.3.8): every garbage
 * leniency on (bare LFs only when `lenient` has them), a malformed request
 * line replaced by "<method> sip:invalid SIP/2.0" when it still starts
 * with a method and says SIP/2.0, offending header lines and second copies
 * of single headers left out, up to 12 attempts; a malformed Via is never
 * read past.  m brings its header array (m->max_headers is the bound) and
 * indexes *out[0..*out_len): buf itself, or a copy in *copy that the
 * caller frees (NULL when none was made).  GB_OK, or the last error.
 */
gb_error_code gb_parse_past_errors(const char *buf, size_t len, uint32_t lenient, gb_msg *m,
                                   const char **out, size_t *out_len, char **copy);

/* Lookup helpers. */
gb_header_id gb_header_lookup(const char *name, size_t len);
const char *gb_header_canonical_name(gb_header_id id); /* "Call-ID"... */
gb_method_id gb_method_lookup(const char *name, size_t len);
const char *gb_method_name(gb_method_id id);

/* Index of the n-th (0-based) header with this id, or -1. */
int gb_msg_find(const gb_msg *msg, gb_header_id id, unsigned nth);
/* Index of the first header after index `after` with this id, or -1. */
int gb_msg_next(const gb_msg *msg, gb_header_id id, int after);
/* Case-insensitive lookup by name (long or compact form). */
int gb_msg_find_name(const gb_msg *msg, const char *buf,
                     const char *name, size_t name_len, int after);

/* Copy a folded value with each CRLF+WSP run replaced by one SP. Returns
 * the length written (<= span.len); out must hold span.len bytes. */
size_t gb_unfold(const char *buf, gb_span value, char *out);

/* Fill *err (when err is not NULL): code, its default status, line (0:
 * not about one line), offset, reason (NULL: the code's text) and the
 * header concerned.  Returns code, so a parser can `return gb_fail(...)`. */
gb_error_code gb_fail(gb_error *err, gb_error_code code, uint32_t line, size_t offset,
                      const char *reason, gb_header_id header);

/* Default status and text for an error code. */
uint16_t gb_error_status(gb_error_code code);
const char *gb_error_text(gb_error_code code);
/* Standard reason phrase for a status code ("Unauthorized"), or "Unknown". */
const char *gb_status_phrase(unsigned status);

/* ASCII lower case of one byte. */
static inline int gb_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* Case-insensitive compare of two byte runs (ASCII); inline because the
 * Digest and header paths call it per parameter. */
static inline int gb_ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        /* same byte (the usual case), or the same letter in another case */
        if (x != y && ((x ^ y) != 0x20 || gb_lower(x) != gb_lower(y)))
            return 0;
    }
    return 1;
}

#endif
