/*
 * sip_auth.h - tokenizer for the auth headers (RFC 3261 §20.7, §20.27,
 * §20.28, §20.44; RFC 7235 §2.1, §4.1).
 *
 * WWW-Authenticate, Proxy-Authenticate, Authorization and
 * Proxy-Authorization values are "scheme [token68 | auth-param *(, auth-param)]",
 * and a challenge header may carry several challenges separated by commas.
 * This file only tokenizes: it reports the scheme, the token68 (Basic and
 * friends) and every auth-param as spans into the caller's buffer, in wire
 * order, unknown names included.  What a Digest parameter means is digest.h's
 * business.
 *
 * Accepted as peers send it: quoted or unquoted values (unquoted ones may hold
 * anything but whitespace, commas and quotes, since some devices send
 * uri=sip:a@b unquoted), backslash escapes in quoted strings, names in any
 * case, LWS (including folded CRLF + WSP) around '=' and ',', empty list
 * elements.  Refused: a missing scheme, an unterminated quoted string, a
 * parameter without value, two parameters not separated by a comma, bare CR
 * or LF, control characters, more than GB_AUTH_MAX_PARAMS parameters.
 *
 * The GB/T 28181 capability hint "Capability, algorithm="H:MD5"" (GB 35114)
 * tokenizes as scheme "Capability" with one parameter; gb_auth_is_capability()
 * recognises it so that a verifier treats it as "no credentials yet".
 */
#ifndef GBSIP_SIP_AUTH_H
#define GBSIP_SIP_AUTH_H

#include "sip_fields.h"

/* Bound on the auth-params of one challenge or credential.  Digest uses at
 * most 12; the rest is room for extensions. */
#define GB_AUTH_MAX_PARAMS 32

/* One challenge or one credential. */
typedef struct {
    gb_span scheme;
    gb_span token68;          /* the token68 form; len 0 when absent */
    gb_span whole;            /* from the scheme to the end of the last param */
    uint8_t has_token68;
    uint8_t nparams;
    /* value excludes quotes, escapes are kept; quoted is 1 for a quoted
     * value and 2 for one holding quoted-pairs (\x) */
    gb_param params[GB_AUTH_MAX_PARAMS];
} gb_auth;

typedef struct {
    const char *buf;
    uint32_t pos;
    uint32_t end;
} gb_auth_iter;

void gb_auth_begin(gb_auth_iter *it, const char *buf, gb_span value);

/* 1: *out holds the next challenge/credential; 0: no more; -1: malformed
 * (err filled: code GB_ERR_AUTH, offset of the offending byte in buf). */
int gb_auth_next(gb_auth_iter *it, gb_auth *out, gb_error *err);

/* Exactly one item (an Authorization value): more than one is an error. */
gb_error_code gb_auth_parse_one(const char *buf, gb_span value, gb_auth *out,
                                gb_error *err);

/* Index of the first parameter with this name (case-insensitive), or -1. */
int gb_auth_find(const char *buf, const gb_auth *a, const char *name,
                 size_t name_len);

/* Nonzero when the scheme is this name (case-insensitive). */
int gb_auth_scheme_is(const char *buf, const gb_auth *a, const char *name,
                      size_t name_len);

/* Nonzero for the GB capability hint ("Capability", optionally with an
 * algorithm parameter): never a credential. */
int gb_auth_is_capability(const char *buf, const gb_auth *a);

/* Nonzero when a value of a gb_auth parameter holds backslash escapes (so
 * it must be unquoted with gb_auth_value() before use): quoted == 2. */
int gb_auth_value_escaped(const char *buf, const gb_param *p);

/* Copy a parameter's value into out (capacity cap) with escapes removed.
 * Returns its length, or -1 when it does not fit. */
long gb_auth_value(const char *buf, const gb_param *p, char *out, size_t cap);

/* Writing a value: one parameter to emit. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
    int quote;                /* emit as a quoted-string (" \ and CTLs escaped) */
} gb_auth_out;

/*
 * Build "scheme name=value,name="value",..." (no space after commas: the
 * form GB devices and the seed use) into out[0..cap).  Returns the length
 * the whole value needs, like snprintf; when that is > cap the output is
 * truncated and must not be used.  Nothing is NUL-terminated.  nparams 0
 * writes the scheme alone.  Returns -1 if a value cannot be represented
 * (CR, LF or NUL in it, or an empty unquoted value).
 */
long gb_auth_build(char *out, size_t cap, const char *scheme,
                   size_t scheme_len, const gb_auth_out *params,
                   size_t nparams);

#endif
