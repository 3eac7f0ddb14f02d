/*
 * fleet_internal.h - the device fleet's records, shared by device.c (the
 * UAC: registration, keepalive) and camera_fleet.c (the camera side: the
 * platform's requests, answers, subscriptions).  Not part of the API: the
 * binding and the pumps use device.h.
 */
#ifndef GBSIP_FLEET_INTERNAL_H
#define GBSIP_FLEET_INTERNAL_H

#include "camera.h"
#include "device.h"
#include "gb_containers.h"
#include "sip_writer.h"

#define NONE_POS UINT32_MAX
#define MAX_INTERN 255
#define MAX_CHALLENGES 8
#define MAX_REDIRECTS 3

/* Platform requests a device remembers, to answer a retransmission the
 * same way (RFC 3261 §17.2.2) without a second answer MESSAGE. */
#define GBF_RX_SLOTS 4
/* Elements a platform's request body may have (a query has a dozen; more
 * is refused 513 by the reader). */
#define GBF_REQUEST_NODES 512
/* Serial ID ranges the fleet looks up arithmetically (no index memory). */
#define GBF_MAX_RANGES 16

enum { TX_IDLE = 0, TX_TRYING, TX_PROCEEDING, TX_COMPLETED };
enum { REG_INITIAL = 0, REG_REFRESH, REG_UNREGISTER };

typedef struct {
    uint64_t branch;
    int64_t next_rt;     /* Timer E; GB_DEV_NEVER when off */
    int64_t timeout_at;  /* Timer F; GB_DEV_NEVER when no live transaction */
    int64_t started;
    uint32_t cseq;
    uint32_t nc;         /* nc sent with the credentials */
    uint32_t interval;   /* current Timer E interval */
    uint8_t state;
    uint8_t kind;        /* REG_*; MESSAGE: unused */
    uint8_t auth;        /* credentials included */
    uint8_t dest;
} gb_tx;

typedef struct {
    uint64_t key;              /* Call-ID number */
    int64_t deadline;          /* heap key: min of the timers below */
    int64_t reg_at;            /* refresh, retry or restart */
    int64_t ka_at;             /* next keepalive */
    int64_t registered_until;
    int64_t cycle_start;       /* first REGISTER of this attempt */
    gb_tx reg, msg;
    char *password;            /* override; NULL: shared */
    uint32_t heap_pos;
    uint32_t from_tag;
    uint32_t cseq;             /* last REGISTER CSeq */
    uint32_t expires_req;
    uint32_t expires_granted;
    uint32_t sn;               /* last keepalive SN */
    uint32_t nc;               /* last nc used with the cached nonce */
    uint16_t local_port;
    uint16_t drop;
    uint16_t skip_ka;
    uint16_t last_status;      /* of the last failed registration attempt */
    uint8_t last_reason;
    uint8_t local_host;
    uint8_t state;
    uint8_t dest;
    uint8_t id_len;
    uint8_t nonce_len;
    uint8_t realm;             /* intern index + 1; 0: no cached challenge */
    uint8_t opaque;            /* intern index + 1; 0: none */
    uint8_t alg;
    uint8_t qop;
    uint8_t proxy;             /* cached challenge came in a 407 */
    uint8_t missed;
    uint8_t challenges;        /* answered in this attempt */
    uint8_t redirects;         /* since the last success */
    uint8_t was_registered;
    uint8_t draining;          /* stopped: its answers finish before the unregister */
    /* the camera side (camera_fleet.c) */
    uint8_t profile;           /* index into f->profiles */
    uint8_t cam_flags;         /* GB_CAM_DEV_* */
    uint8_t rx_next;           /* next rx slot to reuse */
    uint16_t nchan;
    uint16_t alarm_bits;       /* alarm inputs in alarm */
    uint16_t rx_status[GBF_RX_SLOTS];
    uint32_t chan_off;         /* its channels' state bytes in f->chan */
    uint32_t chan_base;        /* serial of channel 0 (camera.h) */
    uint32_t subs;             /* its first subscription: entry index + 1 */
    uint32_t cam_live;         /* its answers and requests in the pool */
    uint64_t rx_key[GBF_RX_SLOTS]; /* requests answered lately (retransmissions) */
    char id[GB_DEV_ID_MAX];
    char nonce[GB_DEV_NONCE_MAX];
} gb_dev;

typedef struct {
    char *p;
    size_t n;
} own_str;

typedef struct {
    own_str host, uri;
    uint16_t port;
} dest_entry;

/* Records and the bytes they point into (outgoing messages, events and
 * their texts), kept until the caller clears them. */
typedef struct {
    void *items;
    size_t n, cap;
    char *bytes;
    size_t len, bytes_cap;
} queue;


/* ---- the camera side's pool -------------------------------------------------------
 * One bounded, fleet-wide pool of entries, each with a deadline in one
 * heap: requests of ours in flight (an answer part, a NOTIFY, an alarm
 * MESSAGE), answers being produced part by part (jobs), and
 * subscriptions.  Nothing of this lives per device but a list head. */

enum { GBF_CAM_FREE = 0, GBF_CAM_TX, GBF_CAM_JOB, GBF_CAM_SUB, GBF_CAM__KINDS };
enum { GBF_TX_ANSWER = 0, GBF_TX_NOTIFY, GBF_TX_ALARM };

typedef struct {
    uint64_t branch;           /* our Via branch number; the index key */
    int64_t next_rt, timeout_at, started;
    char *bytes;               /* the request, sent again as it is */
    uint32_t len, interval;
    uint32_t owner;            /* job or subscription: entry index + 1 */
    uint64_t owner_id;         /* its id then (a reused entry is not it) */
    uint32_t cseq;
    uint16_t part;
    uint8_t state, dest, what; /* TX_*, destination, GBF_TX_* */
} gbf_cam_tx;

typedef struct {
    int64_t next_at;           /* next part due; GB_DEV_NEVER: waiting */
    int64_t query_at;
    int64_t rec_start, rec_end;/* RecordInfo: local ms */
    char *custom;              /* a hook's body, sent as the one part */
    uint32_t custom_len;
    uint32_t next_item, total;
    uint16_t parts, in_flight;
    int32_t target;            /* gb_cam_target() of the query's DeviceID */
    uint8_t what;              /* GBF_JOB_* */
    uint8_t arg;               /* RESULT: ok; CONFIG: basic; RECORD: kind admitted */
    uint8_t done, failed;
} gbf_cam_job;

enum { GBF_JOB_LIST = 0, GBF_JOB_SINGLE, GBF_JOB_RESULT, GBF_JOB_CUSTOM };

typedef struct {
    char *dialog;              /* Call-ID, remote tag, remote URI, target, Event */
    uint16_t len[5];
    uint32_t local_tag, cseq;
    uint32_t interval_ms;      /* MobilePosition */
    uint32_t next_sub;         /* the device's next subscription: index + 1 */
    int64_t expires_at, next_notify;
    int32_t target;
    uint64_t callid_hash;
} gbf_cam_sub;

enum { GBF_D_CALLID = 0, GBF_D_RTAG, GBF_D_RURI, GBF_D_TARGET, GBF_D_EVENT };

typedef struct {
    uint8_t kind;              /* GBF_CAM_* */
    uint8_t cmd;               /* gb_manscdp_cmd */
    uint8_t charset;           /* of the query: the answer's */
    uint8_t pad;
    uint32_t dev;
    uint32_t heap_pos;         /* NONE_POS: not in the heap */
    int64_t deadline;
    uint64_t sn;
    uint64_t id;               /* unique per use */
    union {
        gbf_cam_tx tx;
        gbf_cam_job job;
        gbf_cam_sub sub;
    } u;
} gbf_cam_entry;

/* A channel name and/or Catalog fields given by the user (fleet-wide
 * table, empty unless used; each part allocated only when given). */
typedef struct {
    uint32_t dev, ch;
    char *utf8, *gb;
    uint16_t n8, ngb;
    gb_cam_chan_fields *fields;
} gbf_name;

typedef struct {
    uint32_t first, count;     /* device indexes */
    uint64_t start;            /* serial of the first */
    uint8_t plen, digits;
    char prefix[GB_DEV_ID_MAX];
} gbf_range;

struct gb_fleet {
    gb_dev_config cfg;         /* strings point into owned copies below */
    own_str domain, server_id, request_uri, message_uri, server_host, password,
        user_agent, contact_params, gb_version;
    gb_digest_ctx *dctx;
    uint64_t rng_state;
    gb_hash_key hkey;          /* keys the Call-ID table's hash */
    uint32_t timer_f;

    gb_dev *devs;
    uint32_t ndevs, cap;

    gb_heap heap;              /* device indexes by deadline; room for all */
    gb_index table;            /* Call-ID number -> index + 1 */

    own_str local_hosts[MAX_INTERN];
    uint32_t nlocal;
    own_str interned[MAX_INTERN];
    uint32_t ninterned;
    dest_entry dests[GB_FLEET_MAX_DESTS];
    uint32_t ndests;

    queue out;                 /* gb_dev_out, the messages' bytes */
    queue ev;                  /* gb_dev_event, their texts */

    gb_fleet_stats stats;

    /* the camera side */
    gbf_range ranges[GBF_MAX_RANGES];
    uint32_t nranges;
    gb_index ids;              /* device ID -> index + 1 (devices added alone) */
    gb_cam_profile profiles[GB_CAM_MAX_PROFILES];
    char *profile_text[GB_CAM_MAX_PROFILES]; /* owned copies of their texts */
    uint32_t nprofiles;
    uint8_t *chan;             /* channel state bytes, GB_CAM_CH_* */
    size_t nchan, chan_cap;
    gbf_name *names;
    size_t nnames, names_cap;
    gb_index name_index;       /* (dev, ch) -> names index + 1 */
    gbf_cam_entry *cam;        /* the pool */
    uint32_t ncam, cam_cap;    /* high mark, allocated */
    uint32_t *cam_free;
    size_t ncam_free, cam_free_cap;
    uint32_t cam_count[GBF_CAM__KINDS];
    uint64_t cam_ids;
    size_t cam_bytes;          /* held by the entries (messages, dialogs) */
    gb_heap cam_heap;          /* entry indexes by deadline */
    gb_index cam_tx;           /* our branch -> entry index + 1 */
    gb_index cam_subs;         /* Call-ID hash -> entry index + 1 */
    char *scratch;             /* answer bodies are written here */
    size_t scratch_cap;
    gb_manscdp_node *nodes;    /* request bodies are read into these */
    long rx_hint;              /* device whose socket the next datagram came in on */
    int64_t wall_offset;       /* wall clock (Unix ms) minus now */
    uint64_t notify_sn;        /* SN of the device's own Notify bodies */
};

#define IN(d, mask) (((mask) >> (d)->state) & 1u)
#define ST(s) (1u << (s))
#define REGISTERED_NOW (ST(GB_DEV_REGISTERED) | ST(GB_DEV_REFRESHING))
#define W_LIT(w, s) gb_w_bytes((w), (s), sizeof(s) - 1)

/* ---- device.c, for camera_fleet.c ---- */
uint64_t gbf_rnd(gb_fleet *f);
size_t gbf_fmt_u64(char *out, uint64_t v);
gb_bytes gbf_own_bytes(const own_str *s);
gb_dev_event *gbf_push_event(gb_fleet *f, uint32_t dev, int type, int64_t now);
void gbf_event_text(gb_fleet *f, gb_dev_event *e, const char *p, size_t n);
gb_dev_event *gbf_push_why(gb_fleet *f, uint32_t dev, int type, int64_t now,
                           unsigned status, int reason, const char *text, size_t text_len);
gb_bytes gbf_dest_uri(const gb_fleet *f, int dest, int for_message);
void gbf_w_num(gb_writer *w, uint64_t v);
void gbf_w_b(gb_writer *w, gb_bytes b);
void gbf_w_via(gb_fleet *f, gb_writer *w, const gb_dev *d, uint64_t branch);
void gbf_w_aor(gb_fleet *f, gb_writer *w, const char *user, size_t n);
void gbf_w_tail(gb_fleet *f, gb_writer *w, const gb_dev *d);
void gbf_w_contact(gb_fleet *f, gb_writer *w, const gb_dev *d);
void gbf_w_message(gb_fleet *f, gb_writer *w, const gb_dev *d, int dest, uint64_t branch,
                   uint32_t tag, uint64_t call_id, uint32_t cseq, const char *body,
                   size_t body_len);
int gbf_out_begin(gb_fleet *f, gb_writer *w, size_t room);
int gbf_out_commit(gb_fleet *f, const gb_writer *w, uint32_t dev, int dest, int retransmit);
int gbf_out_bytes(gb_fleet *f, const char *p, size_t n, uint32_t dev, int dest,
                  int retransmit);
size_t gbf_room_for(const gb_fleet *f);
gb_span gbf_header_value(const gb_msg *m, gb_header_id id);
int gbf_top_branch(const char *buf, const gb_msg *m, uint64_t *out);
uint32_t gbf_ms_since(int64_t now, int64_t then);

/* ---- device.c, for camera_fleet.c ---- */
/* A draining device's last answer or request ended: unregister it now. */
void gbf_dev_drained(gb_fleet *f, uint32_t i);

/* ---- camera_fleet.c, for device.c ---- */
int gbf_cam_init(gb_fleet *f);
void gbf_cam_free(gb_fleet *f);
void gbf_cam_dev_init(gb_fleet *f, uint32_t i);
/* The device stopped (unregistered, abandoned): its subscriptions end,
 * and its answers and requests too unless keep_requests. */
void gbf_cam_dev_stopped(gb_fleet *f, uint32_t i, int64_t now, int keep_requests);
long gbf_cam_request(gb_fleet *f, const char *buf, const gb_msg *m, int64_t now);
/* A response to one of the pool's requests: 1 (handled, *dev set), 0 not ours. */
int gbf_cam_response(gb_fleet *f, const char *buf, const gb_msg *m, uint64_t branch,
                     int64_t now, long *dev);
void gbf_cam_timer(gb_fleet *f, int64_t now);
int64_t gbf_cam_deadline(const gb_fleet *f);
size_t gbf_cam_memory(const gb_fleet *f);
long gbf_find_device(const gb_fleet *f, const char *id, size_t n);
int gbf_ids_add(gb_fleet *f, uint32_t i);

#endif


