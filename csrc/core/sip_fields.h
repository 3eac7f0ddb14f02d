/*
 * sip_fields.h - on-demand parsers for structured SIP header values.
 *
 * Every function reads buf[in.off .. in.off+in.len) only, and reports spans
 * relative to the same buf, so results point straight into the message that
 * gb_parse() indexed (or into any other caller buffer).  Errors carry the
 * offset of the offending byte; the caller adds the header's line.
 */
#ifndef GBSIP_SIP_FIELDS_H
#define GBSIP_SIP_FIELDS_H

#include "sip_parser.h"

/* ;name[=value] as found.  value excludes the quotes when quoted is set
 * (escapes inside are left as they are on the wire). */
typedef struct {
    gb_span name;
    gb_span value;
    uint8_t has_value;
    uint8_t quoted;
} gb_param;

typedef struct {
    const char *buf;
    uint32_t pos;
    uint32_t end;
    char sep;      /* ';' for header/URI params, '&' for URI headers */
} gb_param_iter;

/* params may start with the separator or not. */
void gb_params_begin(gb_param_iter *it, const char *buf, gb_span params, char sep);
/* 1: *p filled; 0: no more; -1: malformed (err filled). */
int gb_params_next(gb_param_iter *it, gb_param *p, gb_error *err);
/* 1 and *p filled when a parameter of that name (case-insensitive) exists. */
int gb_params_find(const char *buf, gb_span params, char sep,
                   const char *name, size_t name_len, gb_param *p);

/* Comma-separated lists: commas inside "quoted strings" and <...> do not
 * split.  Items are trimmed; empty items are an error. */
typedef struct {
    const char *buf;
    uint32_t pos;
    uint32_t end;
} gb_list_iter;

void gb_list_begin(gb_list_iter *it, const char *buf, gb_span value);
int gb_list_next(gb_list_iter *it, gb_span *item, gb_error *err);

/* SIP and SIPS URIs in detail (RFC 3261 §19.1); other schemes as
 * scheme ":" opaque part. */
typedef struct {
    gb_span scheme;
    gb_span user;       /* may hold %-escapes */
    gb_span password;
    gb_span host;       /* IPv6 references keep their brackets */
    int32_t port;       /* -1 when absent */
    gb_span params;     /* from the first ';' (excluded) up to '?' */
    gb_span headers;    /* after '?' */
    gb_span opaque;     /* non-SIP schemes: everything after "scheme:" */
    uint8_t is_sip;     /* sip: or sips: */
    uint8_t secure;     /* sips: */
    uint8_t has_user;
    uint8_t has_password;
    uint8_t ipv6;
} gb_uri;

gb_error_code gb_parse_uri(const char *buf, gb_span in, gb_uri *out, gb_error *err);

/* name-addr or addr-spec as in From, To, Contact, Route (RFC 3261 §20.10). */
typedef struct {
    gb_span display;     /* without quotes; escapes left as they are */
    gb_span uri;
    gb_span params;      /* header params after the address (no leading ';') */
    uint8_t display_quoted;
    uint8_t angle;       /* the URI was in <...> */
    uint8_t wildcard;    /* Contact: * */
} gb_name_addr;

/* allow_wildcard: accept a lone "*" (Contact only). */
gb_error_code gb_parse_name_addr(const char *buf, gb_span in, int allow_wildcard,
                                 gb_name_addr *out, gb_error *err);

/* One Via value (RFC 3261 §20.42, RFC 3581 rport). */
typedef struct {
    gb_span protocol;    /* "SIP/2.0" */
    gb_span transport;   /* "UDP", "TCP", ... */
    gb_span host;
    int32_t port;        /* -1 when absent */
    gb_span params;
    gb_span branch;
    gb_span received;
    gb_span maddr;
    int32_t rport;       /* -1 absent, 0 present without value, else value */
    uint8_t has_branch;
    uint8_t has_received;
    uint8_t has_rport;
} gb_via;

gb_error_code gb_parse_via(const char *buf, gb_span in, gb_via *out, gb_error *err);

/* Date in RFC 1123 form ("Sat, 13 Nov 2010 23:29:00 GMT") or the GB/T
 * 28181 §9.10 form ("2013-06-26T16:08:37.164", milliseconds optional). */
enum { GB_DATE_RFC1123 = 1, GB_DATE_GB = 2 };
typedef struct {
    int year, month, day, hour, minute, second, millisecond;
    int has_millisecond;
    int format;
} gb_date;

gb_error_code gb_parse_date(const char *buf, gb_span in, gb_date *out, gb_error *err);
/* Writes "yyyy-MM-ddTHH:mm:ss.SSS" (23 bytes, no NUL) into out. */
void gb_format_gb_date(const gb_date *d, char out[23]);

/* Decode %HH escapes; out must hold in.len bytes.  Returns bytes written,
 * or -1 for a malformed escape. */
long gb_unescape(const char *buf, gb_span in, char *out);

/* Length of the content of a quoted-string value with \-escapes removed;
 * copies it into out (in.len bytes).  in excludes the quotes. */
size_t gb_unquote(const char *buf, gb_span in, char *out);

/* Parse an unsigned decimal run, rejecting overflow past max. */
int gb_parse_uint(const char *p, size_t n, uint64_t max, uint64_t *out);

#endif
