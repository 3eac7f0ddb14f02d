/*
 * digest.h - SIP/HTTP Digest authentication, both sides (RFC 2617, RFC 7616,
 * RFC 8760 for SIP; RFC 3261 §22.4), hashing through OpenSSL EVP only.
 *
 * Client side: parse a challenge (gb_digest_parse_challenge), pick the
 * strongest one the caller allows (gb_digest_choose), answer it
 * (gb_digest_answer: cnonce from RAND_bytes, nc per nonce in a
 * gb_digest_client the caller owns).
 *
 * Server side: issue stateless nonces (gb_digest_nonce_issue: HMAC-SHA256
 * over a timestamp, a counter and the caller's binding, e.g. the source
 * address; the newest ones are also kept in a fixed-size ring so checking
 * them needs no HMAC), and verify credentials (gb_digest_verify): parse, check realm,
 * algorithm, qop, opaque and uri against the caller's policy, authenticate
 * the nonce, look the user up through a callback, recompute the response,
 * compare in constant time, then expire and replay-check the nonce.  Every
 * outcome is a gb_digest_result with text, never an abort.
 *
 * Nothing here is global: gb_digest_ctx (prefetched EVP_MDs, one reused
 * EVP_MD_CTX and a 4-entry cache of HA2 = H(method:uri), which on a
 * registrar is the same for every device) and gb_digest_nonces (server
 * key, HMAC state, the bounded nc table and the issued-nonce ring) belong
 * to the caller.  Neither is thread-safe: use one per thread, or a lock.  Time is passed in (now_ms, milliseconds of any epoch
 * the caller keeps consistent, normally Unix time).
 */
#ifndef GBSIP_DIGEST_H
#define GBSIP_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "sip_auth.h"

/* A run of bytes anywhere (not necessarily in a message buffer). */
typedef struct {
    const char *p;
    size_t n;
} gb_bytes;

typedef enum {
    GB_DIGEST_MD5 = 0,
    GB_DIGEST_MD5_SESS,
    GB_DIGEST_SHA256,
    GB_DIGEST_SHA256_SESS,
    GB_DIGEST_SHA512_256,
    GB_DIGEST_SHA512_256_SESS,
    GB_DIGEST_ALG__COUNT,
    GB_DIGEST_ALG_UNKNOWN = 255
} gb_digest_alg;

#define GB_DIGEST_ALG_BIT(a) (1u << (a))
#define GB_DIGEST_ALGS_ALL ((1u << GB_DIGEST_ALG__COUNT) - 1u)

/* qop values; masks use 1u << value. */
enum { GB_QOP_NONE = 0, GB_QOP_AUTH = 1, GB_QOP_AUTH_INT = 2 };
#define GB_QOP_BIT(q) (1u << (q))
#define GB_QOPS_ALL 7u

/* Longest hex digest (SHA-256, SHA-512/256). */
#define GB_DIGEST_HEX_MAX 64
/* Bounds on the values Digest hashes; longer ones are malformed. */
#define GB_DIGEST_MAX_VALUE 1024
#define GB_DIGEST_MAX_NONCE 256

const char *gb_digest_alg_name(gb_digest_alg alg);      /* "SHA-512-256-sess" */
gb_digest_alg gb_digest_alg_lookup(const char *s, size_t n); /* any case */
size_t gb_digest_hex_len(gb_digest_alg alg);            /* 32 or 64; 0 unknown */
/* Preference for gb_digest_choose: higher is stronger. */
int gb_digest_alg_strength(gb_digest_alg alg);

/* ---- hashing context ---------------------------------------------------- */

typedef struct gb_digest_ctx gb_digest_ctx;

/* Fetches MD5, SHA-256 and SHA-512/256 once.  NULL when out of memory or
 * when OpenSSL offers none of them. */
gb_digest_ctx *gb_digest_ctx_new(void);
void gb_digest_ctx_free(gb_digest_ctx *ctx);
/* Nonzero when this OpenSSL provides alg (MD5 is absent in FIPS mode). */
int gb_digest_available(const gb_digest_ctx *ctx, gb_digest_alg alg);

/* Everything the response depends on.  Values are unescaped bytes. */
typedef struct {
    gb_digest_alg alg;
    int qop;               /* GB_QOP_NONE / AUTH / AUTH_INT */
    gb_bytes username;     /* the real (unhashed) user name */
    gb_bytes realm;
    gb_bytes password;     /* used when ha1.n == 0 */
    gb_bytes ha1;          /* stored H(username:realm:password), hex */
    gb_bytes nonce;
    gb_bytes cnonce;       /* needed with qop and for -sess */
    gb_bytes nc;           /* the 8 hex digits as sent */
    gb_bytes method;
    gb_bytes uri;          /* the digest-uri exactly as in the credentials */
    gb_bytes body;         /* auth-int only */
} gb_digest_input;

/* H(username:realm:password) as lowercase hex into out; returns its length
 * or -1 (unknown or unavailable algorithm, EVP failure). */
int gb_digest_ha1(gb_digest_ctx *ctx, gb_digest_alg alg, gb_bytes username,
                  gb_bytes realm, gb_bytes password, char out[GB_DIGEST_HEX_MAX]);

/* The response (lowercase hex) into out; returns its length, or -1 when the
 * input cannot give one (see *why: -sess or qop without cnonce, stored HA1
 * of the wrong length, EVP failure). */
int gb_digest_response(gb_digest_ctx *ctx, const gb_digest_input *in,
                       char out[GB_DIGEST_HEX_MAX], const char **why);

/* RFC 7616 §3.4.4 userhash: H(username:realm) as hex; returns its length or -1. */
int gb_digest_userhash(gb_digest_ctx *ctx, gb_digest_alg alg, gb_bytes username,
                       gb_bytes realm, char out[GB_DIGEST_HEX_MAX]);

/* ---- challenges and credentials as parsed ------------------------------ */

/* Fields are copies of the gb_param of the tokenized item (spans into the
 * caller's buffer, quotes excluded, escapes kept): has_value == 0 when the
 * parameter was absent (its spans are then meaningless). */
typedef struct {
    gb_param realm, domain, nonce, opaque, stale, algorithm, qop, charset,
        userhash;
    uint8_t alg;           /* gb_digest_alg; MD5 when absent, UNKNOWN if not ours */
    uint8_t qop_mask;      /* GB_QOP_BIT(AUTH/AUTH_INT) offered; 0: none (RFC 2069) */
    uint8_t is_stale;
    uint8_t wants_userhash;
} gb_digest_challenge;

typedef struct {
    gb_param username, realm, nonce, uri, response, algorithm, cnonce, opaque,
        qop, nc, userhash;
    uint8_t alg;           /* gb_digest_alg; MD5 when absent, UNKNOWN if not ours */
    uint8_t qop_v;         /* GB_QOP_NONE / AUTH / AUTH_INT */
    uint8_t is_userhash;
    uint32_t nc_value;     /* nc as a number (qop only) */
} gb_digest_credentials;

/* Digest meaning of one tokenized challenge: the scheme must be Digest,
 * realm and nonce present, no known parameter twice.  An algorithm we do
 * not know is not an error (alg = UNKNOWN; gb_digest_choose skips it). */
gb_error_code gb_digest_parse_challenge(const char *buf, const gb_auth *a,
                                        gb_digest_challenge *out, gb_error *err);

/* Digest meaning of one tokenized credential: username, realm, nonce, uri
 * and response present, no known parameter twice, qop is auth or auth-int
 * and then nc (8 hex digits) and cnonce present, response is hex of the
 * algorithm's length.  err->reason says what was malformed. */
gb_error_code gb_digest_parse_credentials(const char *buf, const gb_auth *a,
                                          gb_digest_credentials *out,
                                          gb_error *err);

/* ---- building header values -------------------------------------------- */

/* Optional values (domain, opaque, cnonce) are written when .p != NULL,
 * so an empty opaque="" can be echoed. */
typedef struct {
    gb_bytes realm, domain, nonce, opaque;
    gb_digest_alg alg;     /* always written (some devices need it) */
    unsigned qop_mask;     /* GB_QOP_BIT(AUTH) | GB_QOP_BIT(AUTH_INT); 0 none */
    int stale;
    int userhash;
} gb_digest_challenge_out;

/* Digest realm="..",domain="..",nonce="..",opaque="..",stale=true,
 * algorithm=MD5,qop="auth",userhash=true (absent ones skipped).
 * snprintf-like: returns the needed length, -1 if unrepresentable. */
long gb_digest_build_challenge(char *out, size_t cap,
                               const gb_digest_challenge_out *c);

typedef struct {
    gb_bytes username, realm, nonce, uri, response, cnonce, opaque, nc;
    gb_digest_alg alg;     /* always written */
    int qop;               /* GB_QOP_*; qop and nc written when not NONE */
    int userhash;          /* writes userhash=true */
} gb_digest_credentials_out;

/* Digest username="..",realm="..",nonce="..",uri="..",response="..",
 * algorithm=MD5[,cnonce="..",opaque="..",qop=auth,nc=00000001,userhash=true]
 * - byte for byte the seed's form.  snprintf-like, -1 if unrepresentable. */
long gb_digest_build_credentials(char *out, size_t cap,
                                 const gb_digest_credentials_out *c);

/* ---- client side --------------------------------------------------------- */

/* nc bookkeeping: nc counts requests per nonce (RFC 7616 §3.4). */
typedef struct {
    char nonce[GB_DIGEST_MAX_NONCE];
    uint32_t nonce_len;
    uint32_t nc;
} gb_digest_client;

void gb_digest_client_init(gb_digest_client *c);
/* The nc to send with this nonce: 1 for a new nonce, then 2, 3... */
uint32_t gb_digest_client_next_nc(gb_digest_client *c, gb_bytes nonce);

/* Index of the strongest challenge whose algorithm is in allowed_algs
 * (ties: the first offered), or -1 when none is acceptable. */
int gb_digest_choose(const gb_digest_challenge *ch, size_t n,
                     unsigned allowed_algs);

/* 32 hex characters from RAND_bytes into out; 0 ok, -1 RAND failure. */
int gb_digest_cnonce(char out[32]);

typedef struct {
    gb_bytes username;
    gb_bytes password;     /* or */
    gb_bytes ha1;          /* stored HA1 hex for the challenge's algorithm */
    gb_bytes method;
    gb_bytes uri;
    gb_bytes body;
    gb_bytes cnonce;       /* n == 0: generated */
    uint32_t nc;           /* 0: from client (or 1 when client is NULL) */
    int qop;               /* -1: auth when offered, else auth-int, else none */
} gb_digest_answer_in;

/*
 * Answer one challenge (parsed from chbuf): writes the whole credentials
 * value ("Digest username=...") into out.  Returns the needed length
 * (snprintf-like) or -1 with *why set.  client may be NULL.
 */
long gb_digest_answer(gb_digest_ctx *ctx, gb_digest_client *client,
                      const char *chbuf, const gb_digest_challenge *ch,
                      const gb_digest_answer_in *in, char *out, size_t cap,
                      const char **why);

/* ---- server side: nonces --------------------------------------------------- */

typedef struct gb_digest_nonces gb_digest_nonces;

enum { GB_NONCE_BASE64URL = 0, GB_NONCE_HEX = 1 };
enum {
    /* Without qop there is no nc: accept each nonce once (RFC 2069 replay). */
    GB_NONCE_SINGLE_USE = 1u << 0,
    /* No issued-nonce cache: every check computes the HMAC. */
    GB_NONCE_NO_CACHE = 1u << 1
};

typedef struct {
    const unsigned char *key;  /* server secret, 16..64 bytes */
    size_t key_len;
    int64_t lifetime_ms;       /* a nonce older than this is stale */
    uint32_t replay_slots;     /* nc table size (rounded to a power of two,
                                  min 16); 0: 4096 */
    int encoding;              /* GB_NONCE_BASE64URL (32 chars) or HEX (48) */
    unsigned flags;            /* GB_NONCE_* */
} gb_digest_nonce_config;

/* Text length of an issued nonce. */
#define GB_NONCE_B64_LEN 32
#define GB_NONCE_HEX_LEN 48

gb_digest_nonces *gb_digest_nonces_new(const gb_digest_nonce_config *cfg,
                                       const char **why);
void gb_digest_nonces_free(gb_digest_nonces *n);

/*
 * The issued-nonce cache: the newest `slots` nonces issued by this object
 * (with bindings up to 39 bytes) are recognised by a table lookup instead of
 * recomputing their HMAC; every other nonce is checked by the HMAC as
 * before, so results do not change, only the cost.  slots is rounded up to
 * a power of two (16..65536), 64 bytes each; 0 turns the cache off.  New
 * objects have 4096 slots (256 KiB) unless GB_NONCE_NO_CACHE is set.
 * Returns 0, or -1 (out of memory or too large; the old cache is kept).
 */
int gb_digest_nonces_set_cache(gb_digest_nonces *n, uint32_t slots);

/* A fresh nonce bound to binding, into out (cap >= 48).  Returns its length
 * or -1 (EVP failure). */
long gb_digest_nonce_issue(gb_digest_nonces *n, int64_t now_ms, gb_bytes binding,
                           char *out, size_t cap);

typedef enum {
    GB_NONCE_FRESH = 0,
    GB_NONCE_STALE,            /* ours, but past its lifetime */
    GB_NONCE_FORGED,           /* not ours, or bound to something else */
    GB_NONCE_ERROR             /* EVP failure */
} gb_nonce_status;

/* Authenticate and age a nonce; *issued_ms gets its timestamp (may be NULL). */
gb_nonce_status gb_digest_nonce_check(gb_digest_nonces *n, gb_bytes nonce,
                                      gb_bytes binding, int64_t now_ms,
                                      int64_t *issued_ms);

/* ---- server side: verification ------------------------------------------- */

typedef enum {
    GB_DIGEST_OK = 0,
    GB_DIGEST_MALFORMED,          /* detail says what */
    GB_DIGEST_NOT_DIGEST,         /* another scheme (Basic...) */
    GB_DIGEST_CAPABILITY_HINT,    /* GB 35114 "Capability": no credential yet */
    GB_DIGEST_REALM_MISMATCH,
    GB_DIGEST_ALGORITHM_NOT_ALLOWED,
    GB_DIGEST_QOP_NOT_ALLOWED,
    GB_DIGEST_OPAQUE_MISMATCH,
    GB_DIGEST_URI_MISMATCH,
    GB_DIGEST_FORGED_NONCE,
    GB_DIGEST_UNKNOWN_USER,
    GB_DIGEST_WRONG_RESPONSE,
    GB_DIGEST_STALE_NONCE,        /* right password, old nonce: stale=true */
    GB_DIGEST_REPLAYED_NC,
    GB_DIGEST_INTERNAL,           /* OpenSSL failed, or the lookup did */
    GB_DIGEST_RESULT__COUNT
} gb_digest_result;

const char *gb_digest_result_name(gb_digest_result r); /* "STALE_NONCE" */
const char *gb_digest_result_text(gb_digest_result r); /* "stale nonce" */

/* How the credentials' uri must relate to the Request-URI. */
enum {
    GB_URI_EXACT = 0,   /* byte for byte */
    GB_URI_SAME_HOST,   /* same host (any case), user/port/params may differ */
    GB_URI_ANY          /* not checked (NVRs sending sip:<serverID>@<domain>) */
};

typedef struct {
    gb_bytes method;
    gb_bytes request_uri;
    gb_bytes body;            /* qop=auth-int */
    gb_bytes realm;           /* expected realm; n == 0: not checked */
    gb_bytes opaque;          /* expected opaque; n == 0: not checked */
    gb_bytes binding;         /* what the nonce was bound to when issued */
    int64_t now_ms;
    unsigned allowed_algs;    /* GB_DIGEST_ALG_BIT mask; 0: all */
    unsigned allowed_qops;    /* GB_QOP_BIT mask; 0: all */
    int uri_policy;           /* GB_URI_* */
} gb_digest_check;

enum { GB_SECRET_UNKNOWN = 0, GB_SECRET_PASSWORD, GB_SECRET_HA1 };

typedef struct {
    int kind;                 /* GB_SECRET_*; UNKNOWN: no such user */
    gb_bytes value;           /* password, or HA1 hex */
    gb_bytes username;        /* userhash + PASSWORD: the real user name */
} gb_digest_secret;

/* Called once per verification with the (unescaped) username and realm as
 * sent; userhash credentials pass the hash.  Fill *out; return 0, or -1 to
 * fail the verification with GB_DIGEST_INTERNAL. */
typedef int (*gb_digest_lookup_fn)(void *arg, gb_bytes username, gb_bytes realm,
                                   int userhash, gb_digest_secret *out);

typedef struct {
    gb_digest_result result;
    const char *detail;       /* static text; for MALFORMED what was wrong */
    uint32_t offset;          /* MALFORMED: byte offset in buf */
    int64_t nonce_issued_ms;  /* when nonce authentication got that far */
    gb_auth auth;             /* the tokenized value */
    gb_digest_credentials cred;
} gb_digest_verdict;

/*
 * Verify the credentials in buf[value.off .. +value.len) (an Authorization
 * or Proxy-Authorization value).  nonces may be NULL only to check a
 * response against a nonce the caller manages itself (no nonce checks then).
 * Returns v->result.
 */
gb_digest_result gb_digest_verify(gb_digest_ctx *ctx, gb_digest_nonces *nonces,
                                  const char *buf, gb_span value,
                                  const gb_digest_check *chk,
                                  gb_digest_lookup_fn lookup, void *arg,
                                  gb_digest_verdict *v);

#endif
