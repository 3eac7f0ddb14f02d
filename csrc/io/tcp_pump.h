/*
 * tcp_pump.h - SIP over TCP in C, for the registrar and the device fleet.
 *
 * One epoll instance holds the listening sockets and every connection.  The
 * caller registers its descriptor (gb_tcp_fd) once with its event loop and,
 * each time it is readable, makes one call (gb_tcp_run, or the roles'
 * gb_reg_tcp_run / gb_fleet_tcp_run): ready connections are accepted,
 * connected, read and framed with gb_frame() (the stream parser's framing),
 * and every whole message goes to the role, whose answers go back on the
 * same connection: one call per batch of ready connections, never one per
 * message or per connection.  Like udp_pump.h it touches sockets and never
 * Python; time comes in as arguments.
 *
 * Bounded, with a counter for everything a bound turned away:
 *   - connections: at most max_connections (refused_max counts the rest;
 *     accept() failing for want of descriptors is refused_fd_limit, and a
 *     spare descriptor keeps the listening socket from spinning then);
 *   - bytes held per connection: a partial message (at most max_message)
 *     and unsent answers (at most max_unsent), each buffer allocated only
 *     while it holds something, so an idle connection costs its record
 *     (sizeof(gb_tcp_conn), about 130 bytes) and the kernel's socket;
 *   - bytes held in all: max_buffered; past it the connection whose partial
 *     message is the oldest is refused first (a slow sender).
 * The garbage policy (docs/design.md): a framing error, or a message still
 * incomplete incomplete_ms after its first byte (one byte a second never
 * completes a message in time), is answered 400/513 with the reason when
 * its head is a request with a Via, then the connection closes.  A
 * connection nothing arrived on for idle_ms closes.  gb_tcp_next_deadline()
 * says when gb_tcp_handle_timer() is due.
 *
 * A pump belongs to one thread at a time (the caller's event loop).
 */
#ifndef GBSIP_TCP_PUMP_H
#define GBSIP_TCP_PUMP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "device.h"
#include "registrar.h"
#include "udp_pump.h"

/* ---- the connection pump ------------------------------------------------------ */

typedef struct gb_tcp gb_tcp;

typedef struct {
    uint32_t max_connections; /* open at once, accepted and opened; default 10000 */
    uint32_t max_message;     /* one message, the longest partial kept; default 65536 */
    uint32_t lenient;         /* GB_LENIENT_* for framing and refusals */
    uint32_t idle_ms;         /* close a connection silent this long; 0: never.
                                 default 0 */
    uint32_t incomplete_ms;   /* a message may take this long from its first
                                 byte (Timer F, 64*T1); 0: forever.  default 32000 */
    uint32_t max_unsent;      /* unsent bytes per connection before it is
                                 closed; default 1 MiB */
    uint64_t max_buffered;    /* partial messages and unsent bytes of all
                                 connections; default 64 MiB */
} gb_tcp_config;

void gb_tcp_config_default(gb_tcp_config *c);

/* Why a connection closed (the `closed` handler, the counters). */
typedef enum {
    GB_TCP_CLOSED_PEER = 1,    /* the peer closed (or reset) it */
    GB_TCP_CLOSED_ERROR,       /* a socket error */
    GB_TCP_CLOSED_CONNECT,     /* an outgoing connection did not connect */
    GB_TCP_CLOSED_IDLE,        /* nothing arrived for idle_ms */
    GB_TCP_CLOSED_INCOMPLETE,  /* a message still incomplete after incomplete_ms */
    GB_TCP_CLOSED_GARBAGE,     /* a framing error */
    GB_TCP_CLOSED_BUFFERS,     /* max_buffered: refused to make room */
    GB_TCP_CLOSED_UNSENT,      /* more than max_unsent bytes the peer did not read */
    GB_TCP_CLOSED_LOCAL,       /* gb_tcp_close() */
    GB_TCP_CLOSED__COUNT
} gb_tcp_close_reason;

const char *gb_tcp_close_reason_name(gb_tcp_close_reason why); /* "idle" */

/* What the pump tells its role.  Every handler may call gb_tcp_send() and
 * gb_tcp_close(); none may free the pump. */
typedef struct {
    void *arg;
    /* A whole message (n bytes at p, valid during the call) arrived on
     * connection id; peer->conn_id == id, peer->transport TCP. */
    void (*message)(void *arg, uint64_t id, uint32_t tag, const gb_peer *peer,
                    const char *p, size_t n, int64_t now);
    /* The connection is gone (not called for gb_tcp_close(..., 0)). */
    void (*closed)(void *arg, uint64_t id, uint32_t tag, gb_tcp_close_reason why,
                   int64_t now);
    /* A request was refused by the garbage policy: status and reason
     * (static text), answered when `answered`; the connection closes next. */
    void (*refused)(void *arg, uint64_t id, const gb_peer *peer, unsigned status,
                    const char *reason, int answered, int64_t now);
} gb_tcp_handlers;

typedef struct {
    uint64_t accepted, connected;  /* connections made, each way */
    uint64_t refused_max;          /* accepted then closed: max_connections */
    uint64_t refused_fd_limit;     /* accept() or socket() out of descriptors */
    uint64_t connect_failed;       /* outgoing connections that failed */
    uint64_t closed[GB_TCP_CLOSED__COUNT]; /* by gb_tcp_close_reason */
    uint64_t messages_in, bytes_in, bytes_out;
    uint64_t keepalive_bytes;      /* CRLF keep-alives between messages */
    uint64_t refusals, refusals_answered;
    uint64_t send_gone;            /* sends to a connection already closed */
    uint64_t partial_dropped;      /* bytes of a partial message a closing
                                      connection never completed */
    uint64_t open, connecting;     /* now */
    uint64_t open_peak;
    uint64_t buffered, buffered_peak; /* bytes held (partials, unsent) */
    int last_errno;                /* of the last failed accept/socket/connect */
} gb_tcp_stats;

/* NULL with *why when the configuration is unusable or out of memory (the
 * record array for max_connections is reserved, and touched as used). */
gb_tcp *gb_tcp_new(const gb_tcp_config *cfg, const gb_tcp_handlers *h, const char **why);
/* Closes every connection (without telling the handlers) and the epoll fd;
 * listening sockets stay the caller's. */
void gb_tcp_free(gb_tcp *t);

/* The epoll descriptor to watch for readability. */
int gb_tcp_fd(const gb_tcp *t);

/* Accept connections on a listening socket the caller owns (non-blocking,
 * listen() called).  0, or -errno; gb_tcp_unlisten() before closing it. */
int gb_tcp_listen(gb_tcp *t, int fd);
void gb_tcp_unlisten(gb_tcp *t, int fd);

/* Open a connection to dst, from src when given (its port 0: the kernel
 * picks one at connect time, IP_BIND_ADDRESS_NO_PORT, so no bind() search
 * of the port space).  tag is the role's value for it.  Returns the
 * connection id (> 0), with the local address in *local when given, or
 * -errno (-ENOSPC: max_connections; -EMFILE/-ENFILE: out of descriptors).
 * Sends before it is connected wait in its buffer. */
int64_t gb_tcp_connect(gb_tcp *t, const struct sockaddr *dst, socklen_t dst_len,
                       const struct sockaddr *src, socklen_t src_len, uint32_t tag,
                       gb_peer *local, int64_t now);

/* Send n bytes on connection id: written now, or the rest kept until the
 * socket takes it.  0; -1 when the connection is gone (send_gone); -2 when
 * the send closed it (max_unsent, max_buffered or a socket error). */
int gb_tcp_send(gb_tcp *t, uint64_t id, const char *p, size_t n);

/* Close connection id now (unsent bytes are dropped); `notify`: tell the
 * `closed` handler.  0, or -1 when it is gone already. */
int gb_tcp_close(gb_tcp *t, uint64_t id, int notify);

/* Whether id is open (connected or connecting), and its tag. */
int gb_tcp_alive(const gb_tcp *t, uint64_t id, uint32_t *tag);

/* One batch: whatever the epoll instance reports ready, within a budget so
 * the caller's loop breathes.  Returns the readiness events handled (0:
 * nothing was ready), or -errno. */
long gb_tcp_run(gb_tcp *t, int64_t now);

/* Idle and incomplete-message timers. */
int64_t gb_tcp_next_deadline(const gb_tcp *t); /* INT64_MAX: none */
void gb_tcp_handle_timer(gb_tcp *t, int64_t now);

const gb_tcp_stats *gb_tcp_stats_get(const gb_tcp *t);

/* The answer to a request whose framing failed: head (n bytes, the start of
 * the unframable message) is read up to its blank line (or last whole
 * line), its Content-Length lines dropped, and a reply with status and
 * reason built into out (cap bytes) with To tag `tag`.  Returns its length,
 * 0 when the head is not a request that can be answered (a response, an
 * ACK, no Via) or the answer does not fit.  Exposed for the tests. */
size_t gb_tcp_refusal(const char *head, size_t n, uint32_t max_message, unsigned status,
                      const char *reason, const char *tag, char *out, size_t cap);

/* ---- the registrar on TCP --------------------------------------------------------- */

typedef struct gb_reg_tcp gb_reg_tcp;

/* A request the garbage policy refused, kept for the caller's events. */
typedef struct {
    gb_peer peer;
    uint16_t status;
    uint8_t answered;
    const char *reason;       /* static text */
    int64_t time_ms;
} gb_tcp_refusal_note;

/* A message kept for the caller (deliver mode), its bytes in the frame data. */
typedef struct {
    gb_peer peer;             /* conn_id: answer with gb_reg_tcp_send */
    uint32_t off, len;
} gb_tcp_frame;

/* TCP for registrar r (which must outlive it).  NULL with *why. */
gb_reg_tcp *gb_reg_tcp_new(gb_registrar *r, const gb_tcp_config *cfg, const char **why);
void gb_reg_tcp_free(gb_reg_tcp *rt);
gb_tcp *gb_reg_tcp_pump(gb_reg_tcp *rt);

/* Deliver mode (on): whole messages are kept for the caller
 * (gb_reg_tcp_frames) instead of going to gb_registrar_handle, for a
 * caller that looks at each request first (an accept hook). */
void gb_reg_tcp_deliver(gb_reg_tcp *rt, int on);

/* One batch (gb_tcp_run): every whole message to gb_registrar_handle (or
 * kept, in deliver mode), its answer written back on its connection. */
long gb_reg_tcp_run(gb_reg_tcp *rt, int64_t now_ms, int64_t wall_ms);

/* An answer the registrar gave later (gb_registrar_resume) or the caller
 * built, to connection conn_id: gb_tcp_send. */
int gb_reg_tcp_send(gb_reg_tcp *rt, uint64_t conn_id, const char *p, size_t n);

size_t gb_reg_tcp_frame_count(const gb_reg_tcp *rt);
const gb_tcp_frame *gb_reg_tcp_frames(const gb_reg_tcp *rt);
const char *gb_reg_tcp_frame_data(const gb_reg_tcp *rt);
void gb_reg_tcp_frames_clear(gb_reg_tcp *rt);

/* Refusals since the last clear (at most 1024 kept; refusals_dropped
 * counts the rest). */
size_t gb_reg_tcp_refusal_count(const gb_reg_tcp *rt);
const gb_tcp_refusal_note *gb_reg_tcp_refusals(const gb_reg_tcp *rt);
void gb_reg_tcp_refusals_clear(gb_reg_tcp *rt);
uint64_t gb_reg_tcp_refusals_dropped(const gb_reg_tcp *rt);

/* ---- the device fleet on TCP ------------------------------------------------------ */

typedef struct gb_fleet_tcp gb_fleet_tcp;

typedef struct {
    uint64_t opened;           /* connections opened for devices */
    uint64_t open_failed;      /* could not even start connecting (errno in the pump's stats) */
    uint64_t lost;             /* connections that went away: a transport error */
    uint64_t unroutable;       /* messages to a destination without an address */
} gb_fleet_tcp_stats;

/* TCP for fleet f through io (its destinations, counters and trace); both
 * must outlive it.  NULL with *why. */
gb_fleet_tcp *gb_fleet_tcp_new(gb_fleet *f, gb_fleet_io *io, const gb_tcp_config *cfg,
                               const char **why);
void gb_fleet_tcp_free(gb_fleet_tcp *ft);
gb_tcp *gb_fleet_tcp_pump(gb_fleet_tcp *ft);

/* Source addresses: device i connects from hosts[i % n] ("127.0.0.2",
 * "::1"; "0.0.0.0" or "::": any, the kernel's choice), each with a port the
 * kernel picks at connect time.  0, or -1 with *why. */
int gb_fleet_tcp_sources(gb_fleet_tcp *ft, const char *const *hosts, size_t n, const char **why);

/* Start devices [first, first + count): each gets its connection, writes
 * its local address in Via and Contact, and sends its REGISTER once
 * connected.  A device whose connection cannot be opened fails at once
 * with reason `transport` (and retries as after any failure).  Returns
 * how many started. */
long gb_fleet_tcp_start_range(gb_fleet_tcp *ft, uint32_t first, uint32_t count, int64_t now);

/* One batch (gb_tcp_run): connections completed, messages read, framed and
 * fed to the fleet; a connection that failed or went away is a transport
 * error of its device. */
long gb_fleet_tcp_run(gb_fleet_tcp *ft, int64_t now);

/* Send the fleet's outgoing queue, each message on its device's
 * connection (opened when it has none, or when the device now talks to
 * another destination), and clear it. */
void gb_fleet_tcp_flush(gb_fleet_tcp *ft, int64_t now);

/* Close device dev's connection (the next message opens another);
 * `report`: its transactions fail as on a lost connection.  0, or -1 when
 * it has none. */
int gb_fleet_tcp_close(gb_fleet_tcp *ft, uint32_t dev, int report, int64_t now);

const gb_fleet_tcp_stats *gb_fleet_tcp_stats_get(const gb_fleet_tcp *ft);

#endif
