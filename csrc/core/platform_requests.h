/*
 * platform_requests.h - requests a platform sends to its devices, as RFC
 * 3261 non-INVITE client transactions (sans-IO).
 *
 * GB/T 28181 platforms query devices (MESSAGE with a MANSCDP <Query>,
 * §9.5), control them (MESSAGE <Control>, §9.3) and subscribe to their
 * catalog, alarms and positions (SUBSCRIBE, §9.11).  This pool builds each
 * such request, keeps it until its final answer, retransmits it over UDP
 * (Timer E: T1, 2*T1, ... capped at T2; after a provisional answer every
 * T2) and gives up after Timer F (64*T1).  Over TCP nothing is resent
 * (RFC 3261 §17.1.2.2), Timer F still applies.  A final answer is matched
 * by the top Via branch, then checked against Call-ID and CSeq; over UDP
 * the transaction then absorbs retransmitted answers for Timer K (T4).
 *
 *   send ──► queued ──► (sent) ──Timer E──► resent ...
 *     │                   │ 1xx: every T2       │ 2xx-6xx: result ANSWERED
 *     │                   └──────Timer F────────┴──► result TIMED_OUT
 *     └─ pool full: the oldest slot in Timer K ends early and serves
 *        (counted: completed_reused); none in Timer K: -1 (turned_away)
 *
 * Nothing here touches a socket or a clock: what to send is queued and
 * taken with gb_preq_next_output() (a view of the stored bytes and the
 * destination, the binding's address and, over TCP, its conn_id); results
 * go to the caller's callback.  Memory is bounded by max_requests slots,
 * each holding its message (at most GB_PREQ_MAX_MESSAGE bytes).
 */
#ifndef GBSIP_PLATFORM_REQUESTS_H
#define GBSIP_PLATFORM_REQUESTS_H

#include <stddef.h>
#include <stdint.h>

#include "registrar.h"
#include "sip_parser.h"
#include "sip_writer.h"

#define GB_PREQ_MAX_MESSAGE 65536
#define GB_PREQ_MAX_FIELDS 8
#define GB_PREQ_TAG_MAX 64
#define GB_PREQ_CALL_ID_MAX 128

typedef struct {
    uint32_t max_requests;   /* transactions in flight; default 4096 */
    uint32_t t1_ms;          /* RFC 3261 T1; default 500 */
    uint32_t t2_ms;          /* T2; default 4000 */
    uint32_t t4_ms;          /* T4 (Timer K over UDP); default 5000 */
    uint32_t timer_f_ms;     /* Timer F; default 64 * T1 */
    uint64_t seed;           /* PRNG seed for branches, tags and Call-IDs */
    unsigned char hash_key[16];
} gb_preq_config;

void gb_preq_config_default(gb_preq_config *c);

typedef struct gb_preq_pool gb_preq_pool;

gb_preq_pool *gb_preq_new(const gb_preq_config *cfg);
void gb_preq_free(gb_preq_pool *p);

/* One request to build.  Strings are byte runs; NULL means absent. */
typedef struct {
    const char *method;          /* "MESSAGE", "SUBSCRIBE" */
    size_t method_len;
    const char *request_uri;     /* the device's Contact URI */
    size_t request_uri_len;
    const char *from_uri;        /* sip:<server id>@<domain> */
    size_t from_uri_len;
    const char *to_uri;          /* sip:<device id>@<domain> */
    size_t to_uri_len;
    const char *from_tag;        /* NULL: a new one */
    size_t from_tag_len;
    const char *to_tag;          /* NULL: none (out of dialog) */
    size_t to_tag_len;
    const char *call_id;         /* NULL: a new one */
    size_t call_id_len;
    uint32_t cseq;               /* 0: 1 */
    const char *via_host;        /* the platform's address for Via */
    size_t via_host_len;
    uint16_t via_port;
    const char *content_type;    /* NULL with a body: Application/MANSCDP+xml */
    size_t content_type_len;
    const char *body;
    size_t body_len;
    const gb_field *fields;      /* extra headers (Event, Expires...), at most
                                    GB_PREQ_MAX_FIELDS */
    size_t nfields;
    const char *device_id;       /* for the results */
    size_t device_id_len;
    gb_peer dest;                /* where it goes (transport, conn_id) */
} gb_preq_spec;

/* What a send made: its handle and the dialog identifiers it used. */
typedef struct {
    uint64_t handle;
    uint32_t cseq;
    uint8_t call_id_len, from_tag_len;
    char call_id[GB_PREQ_CALL_ID_MAX];
    char from_tag[GB_PREQ_TAG_MAX];
} gb_preq_sent;

enum {
    GB_PREQ_OK = 0,
    GB_PREQ_FULL = -1,        /* max_requests in flight: counted as turned_away */
    GB_PREQ_TOO_LARGE = -2,   /* over GB_PREQ_MAX_MESSAGE, or a field too long */
    GB_PREQ_INVALID = -3,     /* a missing method/URI, too many fields */
    GB_PREQ_NO_MEMORY = -4,
};

/* Build, store and queue the request.  GB_PREQ_OK with *out filled. */
int gb_preq_send(gb_preq_pool *p, const gb_preq_spec *s, int64_t now, gb_preq_sent *out);

/* Forget a request (the caller gave up): no more sends, no result.
 * 1 when it was in flight, 0 otherwise. */
int gb_preq_cancel(gb_preq_pool *p, uint64_t handle);

/* The next message to send: a view of the stored bytes, valid until the
 * next call into the pool.  0 when nothing is queued. */
int gb_preq_next_output(gb_preq_pool *p, const char **data, size_t *len, gb_peer *dest);

enum { GB_PREQ_ANSWERED = 1, GB_PREQ_TIMED_OUT = 2 };

typedef struct {
    int kind;                    /* GB_PREQ_ANSWERED / GB_PREQ_TIMED_OUT */
    uint16_t status;             /* the final answer; 408 for a timeout */
    uint64_t handle;
    int64_t expires;             /* the answer's Expires, -1 absent */
    const char *device_id;
    size_t device_id_len;
    const char *reason;          /* the answer's reason phrase (in its buffer) */
    size_t reason_len;
    const char *to_tag;          /* the answer's To tag (the dialog's remote tag) */
    size_t to_tag_len;
    gb_peer source;              /* where the answer came from (or the request went) */
} gb_preq_result;

typedef void (*gb_preq_result_fn)(void *arg, const gb_preq_result *res);

enum {
    GB_PREQ_STRAY = 0,           /* no transaction of ours */
    GB_PREQ_MATCHED = 1,         /* a final answer (result given) or a 1xx */
    GB_PREQ_ABSORBED = 2         /* a repeated final answer (Timer K) */
};

/* A parsed response: ours?  A final one ends its transaction with a result. */
int gb_preq_on_response(gb_preq_pool *p, const char *buf, const gb_msg *m,
                        const gb_peer *src, int64_t now, gb_preq_result_fn fn, void *arg);

/* Timer E resends (queued), Timer F results, Timer K frees. */
void gb_preq_handle_timer(gb_preq_pool *p, int64_t now, gb_preq_result_fn fn, void *arg);
int64_t gb_preq_next_deadline(const gb_preq_pool *p); /* INT64_MAX: none */

typedef struct {
    uint64_t sent,            /* requests built and queued */
        retransmissions,      /* Timer E resends */
        answered,             /* final answers */
        provisional,          /* 1xx answers */
        timed_out,            /* Timer F */
        cancelled,            /* gb_preq_cancel() */
        turned_away,          /* the pool was full (no slot, none in Timer K) */
        completed_reused,     /* a full pool's oldest Timer K slot, ended early */
        answers_absorbed,     /* repeated final answers (Timer K) */
        mismatched;           /* a branch of ours with another Call-ID/CSeq */
    uint64_t in_flight;       /* slots in use (incl. Timer K) */
} gb_preq_stats;

void gb_preq_get_stats(const gb_preq_pool *p, gb_preq_stats *s);

/* ------------------------------------------------------------------ */
/* The registrar's platform side (implemented in registrar.c, which owns
 * a pool): a request to a registered device goes to its binding — the
 * first Contact as Request-URI, the binding's source address (and over
 * TCP its connection) as destination, From the server ID and To the
 * device ID in the realm's domain.  Answers reach the pool through
 * gb_registrar_handle(); results are GB_REG_EV_REQUEST_ANSWERED and
 * _TIMEOUT events, NOTIFYs GB_REG_EV_NOTIFY; the pool's deadlines are in
 * gb_registrar_next_deadline(). */

#define GB_REG_NOT_REGISTERED (-10)

typedef struct {
    const char *device_id;
    size_t device_id_len;
    const char *method;          /* "MESSAGE", "SUBSCRIBE" */
    size_t method_len;
    const char *body;
    size_t body_len;
    const char *content_type;    /* NULL: Application/MANSCDP+xml */
    size_t content_type_len;
    const gb_field *fields;      /* Event, Expires... */
    size_t nfields;
    const char *via_host;        /* the platform's address as the device reaches it */
    size_t via_host_len;
    uint16_t via_port;
    /* in-dialog (a subscription's refresh): else NULL / 0 */
    const char *call_id;
    size_t call_id_len;
    const char *from_tag;
    size_t from_tag_len;
    const char *to_tag;
    size_t to_tag_len;
    uint32_t cseq;
} gb_reg_request;

/* GB_PREQ_OK with *out filled, GB_REG_NOT_REGISTERED, or a GB_PREQ_ error. */
int gb_registrar_request(gb_registrar *r, const gb_reg_request *q, int64_t now,
                         gb_preq_sent *out);
int gb_registrar_cancel_request(gb_registrar *r, uint64_t handle);
/* What to send next (requests and their retransmissions); 0 when none. */
int gb_registrar_next_output(gb_registrar *r, const char **data, size_t *len, gb_peer *dest);
void gb_registrar_request_stats(const gb_registrar *r, gb_preq_stats *s);

#endif
