/*
 * registrar.h - sans-IO GB/T 28181 registrar (platform / UAS) state.
 *
 * The caller hands in each received message with its source, transport
 * and the current time; the registrar answers with at most one response
 * (bytes plus where to send them), appends events to its queue and keeps
 * its bindings.  It never touches a socket or a clock: time comes in as
 * `now_ms` (monotonic, for timers) and `wall_ms` (milliseconds since the
 * epoch already shifted to the platform's time zone, for the GB Date).
 * gb_registrar_next_deadline() says when gb_registrar_handle_timer() must
 * run next.
 *
 * Theory of operation (RFC 3261 §10.3, §17.2, GB/T 28181 §9.1, §9.6):
 *   datagram ─► parse ─► transaction cache hit?  ─► resend cached answer
 *                 │ bad: 4xx when the headers allow an answer, else drop
 *                 ▼
 *   REGISTER ─► ID check ─► credentials? ─no─► 401 (or accept a refresh
 *                 │           on the same Call-ID, by policy)
 *                 │ yes: secret known? ─no─► pending (caller looks it up)
 *                 ▼
 *              verify ─► stale: 401 stale=true; bad: 403 / 401; ok:
 *              Call-ID/CSeq order ─► Contact/Expires (423 below min)
 *              ─► bindings updated ─► 200 with Contact;expires, Expires,
 *                 Date (GB §9.10) ─► event
 *   MESSAGE (MANSCDP Keepalive) ─► 200, online/offline tracking
 * Every answer is cached under its Via branch for Timer J (UDP).
 */
#ifndef GBSIP_REGISTRAR_H
#define GBSIP_REGISTRAR_H

#include <stddef.h>
#include <stdint.h>

#include "gb_states.h"
#include "sip_parser.h"

enum { GB_TRANSPORT_UDP = 0, GB_TRANSPORT_TCP = 1 };

/* A binding's life.  While a device's credentials are looked up there is
 * no binding yet: the request waits in the transaction cache. */
typedef enum {
    GB_BIND_NONE = 0,       /* no binding: not yet, or no more */
    GB_BIND_REGISTERED,     /* live contacts, keepalives arriving (online) */
    GB_BIND_OFFLINE,        /* live contacts, keepalives lost (GB/T 28181 §9.6.1) */
    GB_BIND_UNREGISTERED,   /* removed by the device: Expires: 0 or Contact: * */
    GB_BIND_EXPIRED,        /* removed when its last contact expired */
    GB_BIND_STATE__COUNT
} gb_bind_state;

const char *gb_bind_state_name(gb_bind_state s); /* "offline" */

/* Every move a binding may make, and what makes it (the diagram in
 * docs/design.md is printed from this table; any other move is refused). */
extern const gb_state_move gb_bind_moves[];
extern const size_t gb_bind_nmoves;

/* Where a message came from (or goes to). */
typedef struct {
    uint8_t family;      /* 4 or 6 */
    uint8_t transport;   /* GB_TRANSPORT_* */
    uint16_t port;       /* host order */
    uint8_t ip[16];      /* network order; IPv4 in the first 4 bytes */
    uint64_t conn_id;    /* the caller's TCP connection id; 0 for UDP */
} gb_peer;

/* Writes the address as text ("1.2.3.4" or "::1"); returns its length. */
size_t gb_peer_ip_text(const gb_peer *p, char *out, size_t cap);

enum {
    GB_REFRESH_CHALLENGE = 0,    /* every REGISTER without valid credentials: 401 */
    GB_REFRESH_TRUST_CALL_ID = 1 /* a registered device's refresh on its
                                    Call-ID, from its address, needs none */
};

/* What an unauthenticated keepalive (or other MESSAGE) for a registered
 * device gets when it comes from another address than the binding's: the
 * binding never moves without credentials (issue 14). */
enum {
    GB_KEEPALIVE_REFUSE = 0,     /* 403; the device re-registers to move */
    GB_KEEPALIVE_CHALLENGE = 1   /* 401; valid credentials move the binding */
};

enum {
    GB_IDS_ANY = 0,      /* any user part up to GB_REG_MAX_ID bytes */
    GB_IDS_STRICT = 1    /* GB/T 28181 §Appendix D: 20 decimal digits */
};

#define GB_REG_MAX_ID 64
/* Bytes a binding keeps of a device's fields (docs/registrar.md, Security):
 * a longer Call-ID is refused (403), a longer User-Agent is cut here. */
#define GB_REG_MAX_CALL_ID 256
#define GB_REG_MAX_USER_AGENT 128

typedef struct {
    const char *server_id;        /* 20 digits, e.g. 34020000002000000001 */
    size_t server_id_len;
    const char *realm;            /* NULL: first 10 digits of server_id */
    size_t realm_len;
    const char *shared_password;  /* one password for every device (NULL: none) */
    size_t shared_password_len;
    int ask_for_secrets;          /* unknown users become pending lookups */
    uint32_t min_expires;         /* default 3600 (GB); 423 below it */
    uint32_t max_expires;         /* default 86400; longer is clamped */
    uint32_t default_expires;     /* when the device says nothing; default 3600 */
    uint32_t keepalive_interval_ms; /* default 60000 */
    uint32_t keepalive_timeout_count; /* default 3 */
    int qop_auth;                 /* offer qop="auth" */
    int require_qop;              /* with qop_auth, refuse an answer without qop
                                     (a downgrade; RFC 7616 §3.4); default 1 */
    int refresh_policy;           /* GB_REFRESH_* */
    int keepalive_policy;         /* GB_KEEPALIVE_*; default REFUSE */
    int id_policy;                /* GB_IDS_* */
    int uri_policy;               /* GB_URI_* of digest.h; default ANY */
    const char *gb_version;       /* X-GB-Ver value, NULL: not sent */
    size_t gb_version_len;
    const char *fixed_nonce;      /* tests and replays: always this nonce */
    size_t fixed_nonce_len;
    const unsigned char *nonce_key; /* 16..64 bytes; required unless fixed_nonce */
    size_t nonce_key_len;
    uint32_t nonce_lifetime;      /* seconds; default 300 */
    uint32_t nonce_replay_slots;  /* used nonces remembered (32 bytes each):
                                     each nonce answers once; default 65536 */
    const char *redirect_to;      /* answer every REGISTER with 302 to this URI */
    size_t redirect_to_len;
    uint64_t seed;                /* PRNG seed for tags (the caller's randomness) */
    unsigned char hash_key[16];   /* keys the hash of every table (SipHash):
                                     the caller's secret randomness */
    uint32_t max_bindings;        /* default 1,000,000 */
    uint32_t max_contacts;        /* per device; default 8, at most 64 */
    uint32_t max_transactions;    /* cached answers; default 65536 */
    uint32_t max_pending;         /* secret lookups in flight; default 1024 */
    uint32_t max_events;          /* queued events; default 65536 */
    uint64_t max_event_bytes;     /* their bytes, texts included; default 64 MiB */
    uint32_t peer_event_rate;     /* events a second about requests whose sender
                                     proved nothing (refusals, failures, garbage);
                                     the rest are counted, not queued; 0: no
                                     limit; default 1000 */
    uint32_t max_contact_bytes;   /* contact URI bytes per binding; default 1024 */
    uint32_t transaction_ms;      /* Timer J for UDP; default 32000 */
    uint32_t rate_per_source;     /* requests/s per source (IPv4 address, IPv6
                                     /64); 0: unlimited */
    uint32_t rate_slots;          /* its fixed table (24 bytes each, allocated
                                     only with a limit); default 65536 */
    /* Password guessing (issue 12): wrong Digest answers counted per
     * (device, source address) and per source address within a window;
     * at the count the key is refused (403) for lockout_ms.  Source
     * address: the IPv4 address or the IPv6 /64. */
    uint32_t lockout_failures;    /* per device from one address; 0: off; default 5 */
    uint32_t lockout_source_failures; /* per address, any device; 0: off; default 100 */
    uint32_t lockout_window_ms;   /* default 60000 */
    uint32_t lockout_ms;          /* default 300000 */
    uint32_t lockout_slots;       /* fixed table (about 100 bytes each); default 16384 */
    uint32_t lenient;             /* GB_LENIENT_* for incoming messages */
    uint32_t manscdp_lenient;     /* GB_MANSCDP_LENIENT_* for MESSAGE bodies;
                                     default all (what cameras send) */
    const char *server_header;    /* Server header of answers; NULL: none */
    size_t server_header_len;
    int keepalive_events;         /* queue a KEEPALIVE event per keepalive; default 1 */
    uint32_t event_mask;          /* queue only types with bit (1 << type) set;
                                     0: all.  NEED_SECRET is always queued. */
    /* The platform side (platform_requests.h): requests to devices. */
    uint32_t max_requests;        /* client transactions in flight; default 4096 */
    uint32_t request_t1_ms;       /* their T1 (Timer E/F); default 500 */
} gb_registrar_config;

void gb_registrar_config_default(gb_registrar_config *c);

typedef struct gb_registrar gb_registrar;

/* NULL with *why set when the configuration is unusable. */
gb_registrar *gb_registrar_new(const gb_registrar_config *cfg, const char **why);
void gb_registrar_free(gb_registrar *r);

/* Known secrets: a password or a stored HA1 (hex, MD5) per device. */
int gb_registrar_set_secret(gb_registrar *r, const char *id, size_t id_len,
                            const char *secret, size_t secret_len, int is_ha1);
int gb_registrar_forget_secret(gb_registrar *r, const char *id, size_t id_len);

/* What handling one message did. */
typedef enum {
    GB_REG_REPLY = 0,    /* out->len bytes to send to out->dest */
    GB_REG_NONE,         /* nothing to send (ACK, stray response) */
    GB_REG_DROPPED,      /* unanswerable garbage, rate limit, or full queue */
    GB_REG_PENDING       /* waiting for gb_registrar_resume() */
} gb_reg_status;

typedef struct {
    char *buf;           /* caller's buffer for the answer */
    size_t cap;          /* gb_registrar_reply_cap() bytes hold any answer */
    size_t len;
    gb_peer dest;
} gb_reg_reply;

/* Room that holds any answer to a request of request_len bytes: the echoed
 * headers grow with the request, the contacts and challenge are bounded by
 * the configuration.  With less, an answer that does not fit becomes a
 * bare 500 "Response too large" (if that fits) and replies_too_large
 * counts it; nothing is dropped or shortened silently.  Over UDP an answer
 * is bounded by one datagram (65,507 bytes, IPv6 65,527) whatever the
 * buffer: a longer one becomes a bare 513 "Response too large for UDP". */
size_t gb_registrar_reply_cap(const gb_registrar *r, size_t request_len);

gb_reg_status gb_registrar_handle(gb_registrar *r, const char *buf, size_t len,
                                  const gb_peer *src, int64_t now_ms,
                                  int64_t wall_ms, gb_reg_reply *out);

/* Finish a pending request: kind is GB_SECRET_* of digest.h (UNKNOWN when
 * there is no such device), then handling continues as if the secret had
 * been known.  Returns GB_REG_REPLY with the answer, or GB_REG_DROPPED
 * when the id is no longer pending. */
gb_reg_status gb_registrar_resume(gb_registrar *r, uint64_t pending_id, int kind,
                                  const char *secret, size_t secret_len,
                                  int64_t now_ms, int64_t wall_ms, gb_reg_reply *out);

/* Timers: bindings expire, devices go offline, cached answers age out. */
int64_t gb_registrar_next_deadline(const gb_registrar *r); /* INT64_MAX: none */
void gb_registrar_handle_timer(gb_registrar *r, int64_t now_ms);

/* The values are what RegistrarCore.pop_events() reports: append only. */
typedef enum {
    GB_REG_EV_REGISTERED = 1,
    GB_REG_EV_REFRESHED,
    GB_REG_EV_UNREGISTERED,
    GB_REG_EV_EXPIRED,
    GB_REG_EV_AUTH_FAILED,
    GB_REG_EV_REJECTED,
    GB_REG_EV_ONLINE,
    GB_REG_EV_OFFLINE,
    GB_REG_EV_KEEPALIVE,
    GB_REG_EV_MESSAGE,          /* another MANSCDP MESSAGE, answered 200 */
    GB_REG_EV_NEED_SECRET,      /* pending: look up the device's secret */
    GB_REG_EV_REDIRECTED,
    GB_REG_EV_LOCKED_OUT,       /* a lockout began: id set for (device, source),
                                   empty for the whole source; expires = seconds,
                                   sn = failures counted */
    /* The platform side (platform_requests.h); pending_id is the request's
     * handle.  ANSWERED: status, text = reason phrase, extra = To tag,
     * expires = the answer's Expires (0 absent). */
    GB_REG_EV_REQUEST_ANSWERED,
    GB_REG_EV_REQUEST_TIMEOUT,  /* Timer F: status 408 */
    GB_REG_EV_NOTIFY            /* a device's NOTIFY, answered 200: text = body,
                                   extra = Event header, '\n', Call-ID */
} gb_reg_event_type;

typedef struct {
    uint8_t type;           /* gb_reg_event_type */
    uint8_t id_len;
    uint16_t status;        /* answer sent (AUTH_FAILED, REJECTED...) */
    uint32_t expires;       /* granted (REGISTERED, REFRESHED) */
    uint32_t sn;            /* KEEPALIVE; REJECTED: a refused MANSCDP body's SN (0: none) */
    int64_t time_ms;        /* now_ms of the event */
    uint64_t pending_id;    /* NEED_SECRET */
    gb_peer source;
    const char *reason;     /* static text or NULL */
    char id[GB_REG_MAX_ID];
    char *text;             /* contact URI / user agent / body (malloc'd) */
    uint32_t text_len;
    char *extra;            /* user agent (REGISTERED/REFRESHED) */
    uint32_t extra_len;
} gb_reg_event;

/* Take up to max queued events (oldest first).  The caller owns the text
 * buffers of the events it took: release them with gb_reg_event_clear(). */
size_t gb_registrar_pop_events(gb_registrar *r, gb_reg_event *out, size_t max);
void gb_reg_event_clear(gb_reg_event *ev);

/* A view of one binding for inspection. */
typedef struct {
    const char *id;
    size_t id_len;
    const char *contact;       /* first contact URI */
    size_t contact_len;
    uint32_t ncontacts;
    const char *user_agent;
    size_t user_agent_len;
    const char *call_id;
    size_t call_id_len;
    uint32_t cseq;
    gb_peer source;
    int64_t expires_at;
    int64_t registered_at;
    int64_t last_keepalive;
    int online;
} gb_binding_view;

size_t gb_registrar_binding_count(const gb_registrar *r);
/* Iterate with *cursor starting at 0; returns 0 at the end. */
int gb_registrar_binding_next(const gb_registrar *r, size_t *cursor, gb_binding_view *v);
int gb_registrar_binding_get(const gb_registrar *r, const char *id, size_t id_len,
                             gb_binding_view *v);
/* The n-th contact of a binding (0-based). */
int gb_registrar_binding_contact(const gb_registrar *r, const char *id, size_t id_len,
                                 uint32_t n, const char **uri, size_t *uri_len,
                                 int64_t *expires_at);

/* Why a request went unanswered (gb_registrar_stats.drops). */
typedef enum {
    GB_REG_DROP_UNPARSEABLE = 0, /* not a request an answer can be built for
                                    (by parse error: drops_parse) */
    GB_REG_DROP_NO_VIA,          /* a request without a Via to answer along */
    GB_REG_DROP_ACK,             /* a malformed ACK (never answered) */
    GB_REG_DROP_RESPONSE,        /* a response (the registrar sends no requests) */
    GB_REG_DROP_RATE,            /* rate_per_source */
    GB_REG_DROP_PENDING_FULL,    /* max_pending look-ups in flight */
    GB_REG_DROP_IN_PROGRESS,     /* a retransmission whose answer is not ready */
    GB_REG_DROP_REPLY_TOO_LARGE, /* not even a 500 fits the caller's buffer */
    GB_REG_DROP__COUNT
} gb_reg_drop;

const char *gb_reg_drop_name(gb_reg_drop d); /* "no_via" */

typedef struct {
    uint64_t received, answered, retransmissions_absorbed, dropped_unparseable,
        dropped_rate, dropped_pending_full, rejected, challenges, auth_failures,
        registrations, refreshes, unregistrations, expirations, keepalives,
        events_dropped, transactions_evicted, stray_responses,
        rate_untracked,   /* rate_per_source: a source whose set was full of
                             sources at their limit (let through) */
        rate_evicted,     /* rate_per_source: a live window under its limit
                             given up to a newcomer */
        replies_too_large, /* an answer larger than the caller's buffer */
        illegal_moves,     /* binding moves the table refused (a bug if seen) */
        lockouts,          /* lockouts begun */
        locked_out,        /* requests refused by a lockout */
        lockout_untracked, /* failures the full lockout table could not count */
        keepalives_refused, /* unauthenticated MESSAGEs from a foreign address */
        nonces_reused,     /* right answers to a nonce used already: 401 stale */
        user_agents_cut,   /* User-Agents kept shortened (GB_REG_MAX_USER_AGENT) */
        events_dropped_state, /* of events_dropped: binding events, not
                                 peer-triggered ones */
        events_suppressed, /* over peer_event_rate: counted, never queued */
        trusted_evicted,   /* of transactions_evicted: answers to requests whose
                              sender proved itself (only by their own kind) */
        messages_malformed, /* MESSAGE bodies that are no MANSCDP document:
                               400 (501 for an unknown CmdType) */
        retransmissions_foreign; /* a cached transaction's key from another UDP
                                    address: handled afresh, never answered
                                    from the cache (no reflection) */
    uint64_t drops[GB_REG_DROP__COUNT];
    uint64_t drops_parse[GB_ERR__COUNT]; /* GB_REG_DROP_UNPARSEABLE by parse error */
    uint64_t event_bytes;     /* bytes of the queued events */
    uint64_t moves[GB_BIND_STATE__COUNT][GB_BIND_STATE__COUNT]; /* [from][to] taken */
    uint64_t bindings, pending, transactions;
    uint64_t binding_bytes;   /* heap held by bindings (approximate) */
    uint64_t changes_dropped; /* change list full: a change not listed */
} gb_registrar_stats;

void gb_registrar_get_stats(const gb_registrar *r, gb_registrar_stats *s);

/* Persistence (a binding store).  With tracking on, every change of a
 * binding's state (registered, refreshed, offline, online, unregistered,
 * expired) lists its device ID once; take_changes() calls fn for each
 * listed device with its current view, or NULL when its binding is gone,
 * and empties the list.  The view's strings are valid during the call. */
typedef struct {
    uint8_t id_len;
    char id[GB_REG_MAX_ID];
} gb_reg_change;

typedef void (*gb_reg_change_fn)(void *arg, const char *id, size_t id_len,
                                 const gb_binding_view *v);

int gb_registrar_track_changes(gb_registrar *r, int on);   /* 0, or -1: no memory */
size_t gb_registrar_take_changes(gb_registrar *r, gb_reg_change_fn fn, void *arg);

typedef struct {
    const char *uri;
    size_t uri_len;
    int64_t expires_at;      /* now_ms clock */
} gb_reg_contact;

/* Put back a stored binding (times already on this process's now_ms clock):
 * online bindings get a fresh keepalive grace period.  0; -1 bad or
 * already bound; -2 max_bindings reached; -3 out of memory. */
int gb_registrar_restore(gb_registrar *r, const gb_binding_view *v,
                         const gb_reg_contact *contacts, size_t ncontacts, int64_t now);

#endif
