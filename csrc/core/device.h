/*
 * device.h - GB/T 28181 device (UAC) state machines, sans-IO, as a fleet.
 *
 * A gb_fleet owns N compact device records sharing one configuration, one
 * timer heap, one outgoing queue and one event queue.  A single camera is a
 * fleet of one; a simulator is a fleet of a million.  Nothing here touches a
 * socket or a clock: the caller feeds received messages and the current time
 * (milliseconds of a monotonic clock, any epoch), pulls datagrams to send and
 * events, and calls gb_fleet_handle_timer() at gb_fleet_next_deadline().
 *
 * What one device does (GB/T 28181-2016 §9.1, §9.6; 2022 §9.1.2.3):
 *   start      REGISTER (optionally with the GB 35114 capability hint)
 *   401/407    answer the Digest challenge: same Call-ID and From tag, CSeq+1,
 *              new branch, nc/cnonce when qop is offered
 *   200        registered for the granted lifetime; Date -> platform clock;
 *              refresh at refresh_fraction of it (minus jitter), keepalive
 *              MESSAGE every keepalive interval
 *   423        retry at once with Min-Expires
 *   302        register at the Contact instead (redirect); a refusal there or
 *              lost keepalives send the device back to the first server
 *   3xx-6xx    failed (reason reported), retry after retry_interval +- jitter
 *   timeout    Timer F (64*T1): failed, same retry
 *   N keepalives unanswered: the platform is offline, register again
 *   stop       REGISTER with Expires: 0 (challenged like any other)
 * Each request is an RFC 3261 §17.1.2 non-INVITE client transaction:
 * over UDP retransmitted after T1, 2*T1, ... capped at T2 (T2 only once a
 * provisional arrived), abandoned at Timer F; over TCP sent once.  Responses
 * are matched to the device by Call-ID and to the transaction by the top Via
 * branch and the CSeq; anything else is counted and ignored.
 *
 * Randomness (Call-ID, tags, branches, cnonces, jitter) comes from the
 * caller's rng callback, or from a PRNG seeded with config.seed: the same
 * inputs give the same bytes, so tests need neither sockets nor sleeps.
 */
#ifndef GBSIP_DEVICE_H
#define GBSIP_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "camera.h"
#include "digest.h"
#include "gb_states.h"
#include "manscdp.h"
#include "sip_parser.h"

/* Longest device ID kept (GB IDs have 20 digits). */
#define GB_DEV_ID_MAX 32
/* Longest nonce a device remembers (gbsip issues 32 or 48, Kamailio ~44). */
#define GB_DEV_NONCE_MAX 64
/* No deadline. */
#define GB_DEV_NEVER INT64_MAX
/* Destinations a fleet keeps: the server, then redirect targets. */
#define GB_FLEET_MAX_DESTS 64

typedef enum {
    GB_DEV_IDLE = 0,        /* added, not started */
    GB_DEV_REGISTERING,     /* REGISTER (initial, challenged, redirected) */
    GB_DEV_REGISTERED,
    GB_DEV_REFRESHING,      /* registered, refresh REGISTER in flight */
    GB_DEV_FAILED,          /* waiting to retry */
    GB_DEV_UNREGISTERING,   /* REGISTER with Expires: 0 in flight */
    GB_DEV_UNREGISTERED,    /* stopped */
    GB_DEV_STATE__COUNT
} gb_dev_state;

typedef enum {
    GB_DEV_EV_REGISTERED = 1,       /* value: granted expires (s); arg: platform Date */
    GB_DEV_EV_REFRESHED,            /* same fields as REGISTERED */
    GB_DEV_EV_CHALLENGED,           /* status 401/407; flags: GB_DEV_EVF_STALE */
    GB_DEV_EV_FAILED,               /* status (0: no response), reason; arg: retry at */
    GB_DEV_EV_REDIRECTED,           /* status 3xx; value: destination index */
    GB_DEV_EV_KEEPALIVE_SENT,       /* value: SN */
    GB_DEV_EV_KEEPALIVE_ANSWERED,   /* value: SN; status 2xx */
    GB_DEV_EV_KEEPALIVE_MISSED,     /* value: SN; status (0: none); arg: missed so far */
    GB_DEV_EV_KEEPALIVE_TIMEOUT,    /* value: missed count; the device registers again */
    GB_DEV_EV_UNREGISTERED,         /* status 200, or the refusal / 0 with a reason */
    /* the camera side: the platform's requests (camera_fleet.c) */
    GB_DEV_EV_QUERY,                /* a Query: value cmd (gb_manscdp_cmd), arg SN, status
                                       answered (200, or 4xx/5xx), flags target (below),
                                       text CmdType */
    GB_DEV_EV_CONTROL,              /* a Control: value GB_DEV_CTL_*, arg SN, status
                                       answered, flags target, text the command's value */
    GB_DEV_EV_SUBSCRIBED,           /* value cmd, arg granted expires (s), status 200,
                                       flags target (+ GB_DEV_EVF_REFRESH), latency_ms
                                       the MobilePosition interval, text the Event */
    GB_DEV_EV_SUBSCRIPTION_ENDED,   /* value cmd, reason UNSUBSCRIBED/EXPIRED/REPLACED/
                                       TIMEOUT/REJECTED/ABANDONED, status */
    GB_DEV_EV_ANSWERED,             /* every part of an answer got its 2xx: value cmd,
                                       arg SN, flags parts, latency from the query */
    GB_DEV_EV_ANSWER_FAILED,        /* a part (or notification) refused or lost (Timer F):
                                       value cmd, arg SN, status (0: none), flags part;
                                       GB_DEV_EVF_NOTIFY for a notification */
    GB_DEV_EV_REFUSED,              /* a platform request answered >= 300 for itself
                                       (not a Query/Control): value method
                                       (gb_method_id), status, text the reason */
    GB_DEV_EV__COUNT
} gb_dev_event_type;

/* Why a registration failed (GB_DEV_EV_FAILED, GB_DEV_EV_UNREGISTERED). */
typedef enum {
    GB_DEV_R_NONE = 0,
    GB_DEV_R_REJECTED,        /* a final non-2xx response (see status) */
    GB_DEV_R_TIMEOUT,         /* Timer F: no final response */
    GB_DEV_R_AUTH_REJECTED,   /* our credentials were refused (wrong password) */
    GB_DEV_R_NO_CHALLENGE,    /* 401/407 without a Digest challenge we can answer */
    GB_DEV_R_TOO_MANY_CHALLENGES,
    GB_DEV_R_BAD_MIN_EXPIRES, /* 423 without a larger Min-Expires */
    GB_DEV_R_BAD_REDIRECT,    /* 3xx without a usable Contact, or a loop */
    GB_DEV_R_NONCE_TOO_LONG,
    GB_DEV_R_TRANSPORT,       /* the caller reported a transport error */
    GB_DEV_R_INTERNAL,        /* Digest computation failed (OpenSSL) */
    GB_DEV_R_NOT_REGISTERED,  /* stop() while not registered: nothing sent */
    GB_DEV_R_ABANDONED,       /* abandon(): went silent, nothing sent */
    GB_DEV_R_UNSUBSCRIBED,    /* subscription: Expires 0 */
    GB_DEV_R_EXPIRED,         /* subscription: not refreshed in time */
    GB_DEV_R_REPLACED,        /* subscription: a new one for the same event */
    GB_DEV_R_NOT_GRANTED,     /* a 200 that grants our Contact no lifetime (expires 0) */
    GB_DEV_R__COUNT
} gb_dev_reason;

enum {
    GB_DEV_EVF_STALE = 1u << 0,        /* CHALLENGED: stale=true */
    GB_DEV_EVF_DATE_GB = 1u << 1,      /* REGISTERED: arg is a GB (local time) Date */
    GB_DEV_EVF_DATE_RFC1123 = 1u << 2, /* REGISTERED: arg is an RFC 1123 (GMT) Date */
    GB_DEV_EVF_PROXY = 1u << 3,        /* CHALLENGED: 407 */
    GB_DEV_EVF_REFRESH = 1u << 24,     /* SUBSCRIBED: a refresh */
    GB_DEV_EVF_NOTIFY = 1u << 25       /* ANSWER_FAILED: a notification */
};

/* QUERY, CONTROL and SUBSCRIBED name their target in flags' low 24 bits:
 * 0 the device, channel index + 1, or GB_DEV_TARGET_ALARM + alarm input. */
#define GB_DEV_TARGET_MASK 0xFFFFFFu
#define GB_DEV_TARGET_ALARM 0x800000u

/* DeviceControl commands (GB/T 28181-2016 §9.3, A.2.3.1). */
typedef enum {
    GB_DEV_CTL_OTHER = 0,
    GB_DEV_CTL_PTZ,           /* PTZCmd: no answer but the 200 (§9.3.1) */
    GB_DEV_CTL_TELEBOOT,      /* TeleBoot: no answer (§9.3.1) */
    GB_DEV_CTL_RECORD,        /* RecordCmd Record/StopRecord: Response (§9.3.2) */
    GB_DEV_CTL_GUARD,         /* GuardCmd SetGuard/ResetGuard: Response */
    GB_DEV_CTL_ALARM,         /* AlarmCmd ResetAlarm: Response */
    GB_DEV_CTL_IFRAME,        /* IFameCmd/IFrameCmd Send: no answer */
    GB_DEV_CTL_DRAG_ZOOM,     /* DragZoomIn/DragZoomOut: no answer */
    GB_DEV_CTL_HOME_POSITION, /* HomePosition: Response */
    GB_DEV_CTL_CONFIG,        /* DeviceConfig (A.2.3.2): Response */
    GB_DEV_CTL__COUNT
} gb_dev_control;

typedef struct {
    uint32_t dev;
    uint8_t type;           /* gb_dev_event_type */
    uint8_t reason;         /* gb_dev_reason */
    uint16_t status;        /* SIP status, 0 when none */
    uint32_t value;
    uint32_t latency_ms;    /* REGISTERED/REFRESHED/FAILED/UNREGISTERED: since
                               the first REGISTER of the attempt;
                               KEEPALIVE_ANSWERED/MISSED: since it was sent */
    uint32_t flags;         /* GB_DEV_EVF_* */
    uint32_t text_off;      /* reason phrase, in gb_fleet_event_text() */
    uint32_t text_len;
    int64_t time_ms;        /* now when it happened */
    int64_t arg;            /* see the type; Date as ms since 1970 of its own
                               fields (no zone applied); INT64_MIN: none */
} gb_dev_event;

/* One message to send: to destination dest (0 = the configured server,
 * then redirect targets, see gb_fleet_dest) from device dev. */
typedef struct {
    uint32_t dev;
    uint16_t dest;
    uint16_t retransmit;    /* nonzero for a retransmission */
    uint32_t off;
    uint32_t len;
} gb_dev_out;

enum { GB_DEV_UDP = 0, GB_DEV_TCP = 1 };

typedef uint64_t (*gb_dev_rng_fn)(void *arg);

/* A query about to be answered (body and parsed document): return
 * GB_DEV_HOOK_DEFAULT to answer as usual, GB_DEV_HOOK_BODY with *body set
 * (read during the call only) to send that body as the one answer,
 * GB_DEV_HOOK_NONE for the 200 alone, or a SIP status >= 300 to refuse. */
enum { GB_DEV_HOOK_DEFAULT = 0, GB_DEV_HOOK_BODY = 1, GB_DEV_HOOK_NONE = 2 };
typedef int (*gb_dev_query_fn)(void *arg, uint32_t dev, const char *body, size_t len,
                               const gb_manscdp_doc *doc, gb_bytes *answer);

typedef struct {
    gb_bytes domain;          /* From/To host; default: server_id[:10] */
    gb_bytes server_id;       /* platform ID (MESSAGE target) */
    gb_bytes request_uri;     /* REGISTER target; default sip:<server_id>@<domain> */
    gb_bytes message_uri;     /* keepalive target; default sip:<server_id>@<domain> */
    gb_bytes server_host;     /* destination 0, reported by gb_fleet_dest */
    uint16_t server_port;
    int transport;            /* GB_DEV_UDP / GB_DEV_TCP */
    gb_bytes password;        /* shared by every device unless overridden */
    gb_bytes user_agent;      /* .p NULL: "gbsip"; n == 0 with .p set: none */
    gb_bytes contact_params;  /* inside the Contact URI, e.g. ";line=6513f9" */
    gb_bytes gb_version;      /* X-GB-Ver value; n == 0: not sent */
    int capability_header;    /* send Authorization: Capability, algorithm="H:MD5" */
    uint32_t expires;         /* requested lifetime, s (default 3600) */
    double refresh_fraction;  /* of the granted lifetime (default 0.5) */
    double jitter;            /* fraction taken off refreshes and added +-
                                 to retries (default 0.1) */
    uint32_t retry_interval_ms;     /* after a failure (default 60000) */
    uint32_t keepalive_interval_ms; /* default 60000; 0: no keepalives */
    uint32_t keepalive_max_missed;  /* default 3 */
    uint32_t t1_ms, t2_ms;          /* RFC 3261 timers (default 500 / 4000) */
    uint32_t max_challenges;        /* answered per attempt (default 3) */
    int preemptive_auth;      /* refresh/unregister with the last nonce (default 1) */
    unsigned allowed_algs;    /* GB_DIGEST_ALG_BIT mask; 0: all */
    unsigned lenient;         /* GB_LENIENT_* used to parse responses */
    uint64_t seed;            /* PRNG seed when rng is NULL */
    unsigned char hash_key[16]; /* keys the Call-ID table's hash (SipHash):
                                   the caller's secret randomness */
    gb_dev_rng_fn rng;        /* optional: every random draw comes from here */
    void *rng_arg;

    /* the camera side */
    uint32_t answer_max_message; /* bytes of one answer MESSAGE before a Catalog or
                                    RecordInfo is split (default 1400) */
    uint32_t answer_max_items;   /* items in one part at most; 0: as many as fit */
    uint32_t answer_gap_ms;      /* between the parts of one answer (default 0) */
    uint32_t answer_window;      /* parts of one answer in flight at once: 1 (the
                                    default) sends each after the previous one's
                                    final response, as GB/T 28181-2022 Annex M
                                    has multi-response parts go; 0: all at once */
    uint32_t max_answers;        /* requests of ours in flight, fleet-wide (65536) */
    uint32_t unregister_drain_ms; /* a stopped device's answers in flight may finish
                                     for this long before it unregisters (5000; 0: drop) */
    uint32_t max_jobs;           /* answers being produced, fleet-wide (65536) */
    uint32_t max_subscriptions;  /* fleet-wide (65536) */
    uint32_t subscribe_default_expires; /* when SUBSCRIBE has no Expires (600) */
    uint32_t subscribe_max_expires;     /* granted at most (86400) */
    uint32_t record_segment_s;   /* synthetic record files' length (1800) */
    uint32_t record_max;         /* records listed at most (256) */
    int32_t utc_offset_min;      /* the platform's local time zone (GB: +480) */
    unsigned manscdp_lenient;    /* GB_MANSCDP_LENIENT_* for request bodies (all) */
    gb_dev_query_fn query_hook;  /* optional: answer a query differently */
    void *query_hook_arg;
} gb_dev_config;

/* Fill the documented defaults (strings empty). */
void gb_dev_config_default(gb_dev_config *cfg);

typedef struct {
    uint64_t requests_sent;       /* new requests (not retransmissions) */
    uint64_t retransmissions;
    uint64_t responses;           /* parsed responses fed */
    uint64_t matched;             /* ... that matched a live transaction */
    uint64_t strays;              /* no device or no transaction for it */
    uint64_t duplicates;          /* retransmitted final responses */
    uint64_t dropped;             /* thrown away by drop_responses */
    uint64_t parse_errors;
    uint64_t requests_ignored;    /* platform requests left unanswered: ACK, a device
                                     not started, one named no device of ours */
    uint64_t registrations;       /* REGISTERED events */
    uint64_t devices_registered;  /* devices registered at least once */
    uint64_t refreshes;
    uint64_t challenges;
    uint64_t failures;
    uint64_t timeouts;            /* transactions ended by Timer F */
    uint64_t redirects;
    uint64_t unregistrations;
    uint64_t unregisters_drained; /* unregisters held until answers in flight finished */
    uint64_t keepalives_sent;
    uint64_t keepalives_answered;
    uint64_t keepalives_missed;
    uint64_t keepalives_skipped;  /* skip_keepalives fault */
    uint64_t keepalive_timeouts;
    /* the camera side */
    uint64_t requests_received;   /* platform requests (any method) */
    uint64_t requests_retransmitted; /* answered again as before, no new answer */
    uint64_t requests_refused;    /* answered >= 300 */
    uint64_t queries[GB_MANSCDP_CMD__COUNT]; /* Queries answered 200, by CmdType */
    uint64_t controls[GB_DEV_CTL__COUNT];    /* Controls answered 200, by command */
    uint64_t answers_busy;        /* queries answered 503: the pool was full */
    uint64_t answers_deferred;    /* parts delayed because the pool was full */
    uint64_t answers_sent;        /* answer MESSAGEs (parts), retransmissions apart */
    uint64_t answers_retransmitted;
    uint64_t answers_acknowledged;/* parts answered 2xx */
    uint64_t answers_failed;      /* parts refused or lost (Timer F) */
    uint64_t answers_completed;   /* answers whose every part got its 2xx */
    uint64_t notifies_sent;       /* NOTIFYs (subscriptions) */
    uint64_t notifies_retransmitted;
    uint64_t notifies_failed;
    uint64_t alarms_sent;         /* alarm MESSAGEs (§9.4) */
    uint64_t subscriptions;       /* accepted (new ones) */
    uint64_t subscription_refreshes;
    uint64_t subscriptions_ended;
    uint64_t subscriptions_busy;  /* refused 503: the pool was full */
    uint32_t answers_in_flight;   /* now: requests of ours awaiting their answer */
    uint32_t subscriptions_active;/* now */
    uint32_t by_state[GB_DEV_STATE__COUNT];
    uint64_t moves[GB_DEV_STATE__COUNT][GB_DEV_STATE__COUNT]; /* [from][to] taken */
    uint64_t illegal_moves;       /* refused by the table (a bug if ever seen) */
} gb_fleet_stats;

/* Every move a device's state may make, and what makes it (the diagram in
 * docs/design.md is printed from this table; any other move is refused). */
extern const gb_state_move gb_dev_moves[];
extern const size_t gb_dev_nmoves;

typedef struct gb_fleet gb_fleet;

/* NULL and *why set on bad configuration or out of memory.  capacity is a
 * hint (the device array grows). */
gb_fleet *gb_fleet_new(const gb_dev_config *cfg, uint32_t capacity,
                       const char **why);
void gb_fleet_free(gb_fleet *f);

/* Add a device; returns its index or -1 (ID empty or too long, no memory). */
long gb_fleet_add(gb_fleet *f, const char *id, size_t id_len);
uint32_t gb_fleet_count(const gb_fleet *f);

/* Local address written in Via and Contact.  Hosts are shared: intern one
 * with gb_fleet_local_host (returns its index, -1 when full: 255 hosts). */
int gb_fleet_local_host(gb_fleet *f, const char *host, size_t len);
int gb_fleet_set_local(gb_fleet *f, uint32_t dev, int host_index, uint16_t port);

/* Per-device password (NULL: back to the shared one).  0 or -1. */
int gb_fleet_set_password(gb_fleet *f, uint32_t dev, const char *pw, size_t len);

/* Fix the Call-ID number and From tag (tests reproducing a trace).
 * -1 if another device already uses that Call-ID. */
int gb_fleet_set_dialog(gb_fleet *f, uint32_t dev, uint64_t call_id,
                        uint32_t from_tag);

/* Lifecycle.  0, or -1 when the call makes no sense in the current state. */
int gb_fleet_start(gb_fleet *f, uint32_t dev, int64_t now);
int gb_fleet_stop(gb_fleet *f, uint32_t dev, int64_t now);
/* Go silent at once, as a camera losing power does: transactions and
 * timers are forgotten, nothing is sent, the state becomes UNREGISTERED
 * (event UNREGISTERED, reason ABANDONED).  start() brings it back.  0, or
 * -1 when already unregistered. */
int gb_fleet_abandon(gb_fleet *f, uint32_t dev, int64_t now);
/* Send a keepalive now (the periodic one restarts from here).  Returns its
 * SN, or -1 when the device is not started. */
long gb_fleet_send_keepalive(gb_fleet *f, uint32_t dev, int64_t now);
/* The caller could not deliver the device's traffic (TCP connect failed or
 * the connection dropped): pending transactions fail now. */
void gb_fleet_transport_error(gb_fleet *f, uint32_t dev, int64_t now);

/* Fault injection. */
void gb_fleet_drop_responses(gb_fleet *f, uint32_t dev, uint32_t n);
void gb_fleet_skip_keepalives(gb_fleet *f, uint32_t dev, uint32_t n);

/* A received message (one datagram, or one framed TCP message).  Returns
 * the device index it was for, or -1 (malformed, a request, a stray). */
long gb_fleet_handle_datagram(gb_fleet *f, const char *buf, size_t len,
                              int64_t now);
/* The same for an already parsed message. */
long gb_fleet_handle_message(gb_fleet *f, const char *buf, const gb_msg *msg,
                             int64_t now);

/* Fire every timer due at or before now. */
void gb_fleet_handle_timer(gb_fleet *f, int64_t now);
/* Earliest deadline of any device, GB_DEV_NEVER when none. */
int64_t gb_fleet_next_deadline(const gb_fleet *f);

/* Outgoing queue: items and their bytes stay valid until the next clear or
 * the next call that adds to the queue. */
size_t gb_fleet_out_count(const gb_fleet *f);
const gb_dev_out *gb_fleet_out_items(const gb_fleet *f);
const char *gb_fleet_out_data(const gb_fleet *f);
void gb_fleet_out_clear(gb_fleet *f);

/* Event queue, same rules. */
size_t gb_fleet_event_count(const gb_fleet *f);
const gb_dev_event *gb_fleet_events(const gb_fleet *f);
const char *gb_fleet_event_text(const gb_fleet *f);
void gb_fleet_events_clear(gb_fleet *f);

/* Destinations: 0 is the configured server, redirects add more. */
size_t gb_fleet_dest_count(const gb_fleet *f);
int gb_fleet_dest(const gb_fleet *f, size_t i, gb_bytes *host, uint16_t *port,
                  gb_bytes *uri);

/* Queries. */
gb_dev_state gb_fleet_state(const gb_fleet *f, uint32_t dev);
int64_t gb_fleet_expires_at(const gb_fleet *f, uint32_t dev); /* NEVER: none */
uint16_t gb_fleet_dest_of(const gb_fleet *f, uint32_t dev);
uint32_t gb_fleet_keepalive_sn(const gb_fleet *f, uint32_t dev);
/* The device's ID (not NUL-terminated), *len set; NULL when no such device. */
const char *gb_fleet_id(const gb_fleet *f, uint32_t dev, size_t *len);
/* Whether the device was ever registered, and its last registration
 * failure (status 0 and reason NONE when it never failed): what a
 * simulator reports for a device that is not registered at the end. */
int gb_fleet_ever_registered(const gb_fleet *f, uint32_t dev);
void gb_fleet_last_failure(const gb_fleet *f, uint32_t dev, uint16_t *status,
                           gb_dev_reason *reason);
const gb_fleet_stats *gb_fleet_get_stats(const gb_fleet *f);
/* Bytes held per device (record + heap + Call-ID table); the state memory
 * of the whole fleet (records at capacity, heap, table, password
 * overrides); the queues' buffers (transient: as large as the biggest burst
 * the caller let accumulate). */
size_t gb_fleet_bytes_per_device(void);
size_t gb_fleet_memory(const gb_fleet *f);
size_t gb_fleet_queue_memory(const gb_fleet *f);

/* ---- the camera side (camera_fleet.c) ------------------------------------------
 *
 * Every started device answers its platform like a camera: a request for
 * it (MESSAGE, SUBSCRIBE; OPTIONS 200, others 405/501) is answered with a
 * response at once, then each query's answer goes out as MESSAGEs of its
 * own, client transactions with Timer E/F like a keepalive.  Requests find
 * their device by the Request-URI user (else the To user); the response
 * goes to the device's platform (its current destination), from its socket. */

/* Add n devices with IDs prefix + serial (start, start + 1, ...) written on
 * `digits` digits: looked up arithmetically, no index.  The first index,
 * or -1 (bad arguments, no memory). */
long gb_fleet_add_serial(gb_fleet *f, const char *prefix, size_t plen, uint64_t start,
                         uint32_t n, unsigned digits);
/* The device with this ID, -1 when none. */
long gb_fleet_find(const gb_fleet *f, const char *id, size_t len);

/* Profiles: index 0 is "generic" from the start.  Adds a copy, returns its
 * index, or -1 with *why (a bad profile, 16 already). */
int gb_fleet_add_profile(gb_fleet *f, const gb_cam_profile *p, const char **why);
const gb_cam_profile *gb_fleet_profile(const gb_fleet *f, unsigned k);

/* The camera a device is: profile, channel count (< 0: the profile's) and
 * the serial of its channel 0 (GB_CAM_BASE_FROM_ID: derived from the device
 * ID's last 7 digits, unique among devices whose IDs differ there: camera.h).
 * 0, or -1 (no such device or profile, too many channels, no memory). */
int gb_fleet_set_camera(gb_fleet *f, uint32_t dev, unsigned profile, long channels,
                        uint32_t chan_base);
/* The same for n devices from first, channel serials given out one after
 * another from base.  channels: per device (NULL: count for all).  0 or -1. */
int gb_fleet_set_camera_range(gb_fleet *f, uint32_t first, uint32_t n, unsigned profile,
                              const uint16_t *channels, long count, uint32_t base);
uint32_t gb_fleet_channels(const gb_fleet *f, uint32_t dev);
/* Channel ch: its ID (GB_CAM_ID_LEN bytes), name (UTF-8, at most cap) and
 * state bits (GB_CAM_CH_*).  0, or -1 when there is no such channel. */
int gb_fleet_channel(const gb_fleet *f, uint32_t dev, uint32_t ch, char id[GB_CAM_ID_LEN],
                     char *name, size_t cap, size_t *name_len, uint8_t *state);
/* Name channel ch (UTF-8 and GB18030 bytes; utf8 NULL: the profile's again). */
int gb_fleet_set_channel_name(gb_fleet *f, uint32_t dev, uint32_t ch, const char *utf8,
                              size_t n8, const char *gb, size_t ngb);
/* Give channel ch Catalog fields of its own (gb_cam_chan_fields; o NULL or
 * o->set 0: the derived ones again).  Kept in a table beside the names, so
 * only channels given fields cost memory.  -1 with *why (static text) when
 * there is no such channel, the fields are invalid or memory ran out. */
int gb_fleet_set_channel_fields(gb_fleet *f, uint32_t dev, uint32_t ch,
                                const gb_cam_chan_fields *o, const char **why);
/* Channel ch's own fields, or NULL when it has none. */
const gb_cam_chan_fields *gb_fleet_channel_fields(const gb_fleet *f, uint32_t dev, uint32_t ch);
/* Turn channel ch ON or OFF; a change is notified to the device's Catalog
 * subscribers (NOTIFY, Event ON/OFF).  Returns the NOTIFYs sent, or -1. */
long gb_fleet_set_channel_status(gb_fleet *f, uint32_t dev, uint32_t ch, int on, int64_t now);
/* Raise an alarm (§9.4): a MESSAGE Notify/Alarm to the platform and a
 * NOTIFY to the Alarm subscribers; the channel or alarm input shows ALARM
 * until an AlarmCmd ResetAlarm.  Returns the requests sent, or -1. */
long gb_fleet_raise_alarm(gb_fleet *f, uint32_t dev, const gb_cam_alarm *a, int64_t now);
/* Wall clock: unix_ms is Unix time at monotonic now (DeviceTime, record
 * lists, alarm and position times). */
void gb_fleet_set_wall_clock(gb_fleet *f, int64_t now, int64_t unix_ms);
/* Responses to requests that name no device of the fleet go out as if from
 * device dev (the pump sets the one whose socket received); -1: none, they
 * are dropped (counted in requests_ignored). */
void gb_fleet_set_receiver(gb_fleet *f, long dev);
/* Set (fn NULL: clear) the query hook after the fleet was made. */
void gb_fleet_set_query_hook(gb_fleet *f, gb_dev_query_fn fn, void *arg);
/* Bytes the camera side holds now (pool entries, their messages, channel
 * bytes, names, profiles). */
size_t gb_fleet_camera_memory(const gb_fleet *f);

const char *gb_dev_control_name(gb_dev_control c); /* "PTZCmd" */

const char *gb_dev_state_name(gb_dev_state s);      /* "registered" */
const char *gb_dev_event_name(gb_dev_event_type t); /* "keepalive_sent" */
const char *gb_dev_reason_name(gb_dev_reason r);    /* "auth_rejected" */
const char *gb_dev_reason_text(gb_dev_reason r);    /* "credentials refused" */

#endif
