/*
 * udp_pump.h - batched UDP I/O for the registrar and the device fleet.
 *
 * The only C that touches sockets, and it never touches Python: each call
 * takes what waits on a non-blocking socket with recvmmsg(), hands every
 * datagram to the same core functions the unit tests call
 * (gb_registrar_handle, gb_fleet_handle_datagram), and sends what the core
 * produced with sendmmsg(), so the caller wakes once per batch.  Time comes
 * in as arguments, as everywhere in the core.  Nothing is dropped without a
 * counter: a truncated datagram, an answer a full socket buffer refused, a
 * message to a destination that has no address.
 *
 * A pump object belongs to one thread at a time (the caller's event loop).
 */
#ifndef GBSIP_UDP_PUMP_H
#define GBSIP_UDP_PUMP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "device.h"
#include "registrar.h"

/* ---- registrar ------------------------------------------------------------ */

typedef struct gb_reg_pump gb_reg_pump;

typedef struct {
    uint64_t datagrams;      /* received and handed to the registrar */
    uint64_t truncated;      /* larger than any message: never parsed */
    uint64_t answers;        /* sent */
    uint64_t send_dropped;   /* answers a full socket buffer refused */
} gb_reg_pump_stats;

/* Buffers sized for r's largest answer (gb_registrar_reply_cap); NULL when
 * out of memory. */
gb_reg_pump *gb_reg_pump_new(const gb_registrar *r);
void gb_reg_pump_free(gb_reg_pump *p);

/* Receive up to a budget of datagrams from fd, answer each through r, send
 * the answers.  Returns the datagrams received (0: nothing waited), or
 * -errno on a socket error other than "nothing more" (an ICMP error of an
 * earlier answer, ECONNREFUSED, is passed over). */
long gb_reg_pump_run(gb_reg_pump *p, gb_registrar *r, int fd, int64_t now_ms,
                     int64_t wall_ms);
const gb_reg_pump_stats *gb_reg_pump_stats_get(const gb_reg_pump *p);

/* ---- device fleet ------------------------------------------------------- */

typedef struct gb_fleet_io gb_fleet_io;

typedef struct {
    uint64_t rx_datagrams, rx_bytes, rx_batches, rx_truncated, rx_unmatched;
    uint64_t tx_datagrams, tx_bytes, tx_calls, tx_dropped, tx_unroutable;
    uint64_t icmp_errors;
} gb_fleet_io_stats;

/* One traced message: sent (1) or received (0), its bytes in the trace
 * buffer. */
typedef struct {
    uint8_t sent;
    uint32_t off, len;
} gb_trace_item;

/* I/O for fleet f (which must outlive it).  NULL when out of memory. */
gb_fleet_io *gb_fleet_io_new(gb_fleet *f);
void gb_fleet_io_free(gb_fleet_io *io);

/* The socket pool: n bound UDP sockets of one family.  Device i sends from
 * fds[i % n] and writes that socket's address in Via and Contact; a device
 * moved to another socket with gb_fleet_io_set_socket keeps its move only
 * while that socket is in the pool.  0, or -1 with *why (errno set when a
 * socket call failed). */
int gb_fleet_io_attach(gb_fleet_io *io, const int *fds, size_t n, const char **why);
size_t gb_fleet_io_sockets(const gb_fleet_io *io);

/* Send device dev's traffic from socket `slot` of the pool (a NAT
 * rebinding: Via and Contact unchanged).  0, -1 when there is no such
 * socket or device, -2 when out of memory. */
int gb_fleet_io_set_socket(gb_fleet_io *io, uint32_t dev, uint32_t slot);

/* The address of destination k (0: the configured server, then redirect
 * targets), for names the core cannot resolve itself.  0, or -1 when k is
 * out of range or host is no IP address. */
int gb_fleet_io_set_dest(gb_fleet_io *io, size_t k, const char *host, size_t host_len,
                         uint16_t port);

/* The address of destination k, worked out from the fleet's destination
 * the first time: for a socket of the pool's family, or with no pool (TCP)
 * of the address's own family.  NULL when it has none (a name the core
 * cannot resolve: see gb_fleet_io_set_dest). */
const struct sockaddr *gb_fleet_io_dest_addr(gb_fleet_io *io, unsigned k, socklen_t *len);

/* Receive what waits on fd and feed it to the fleet.  Returns the
 * datagrams received, or -errno on a socket error. */
long gb_fleet_io_receive(gb_fleet_io *io, int fd, int64_t now);

/* A message the caller received itself (a framed TCP message): fed to
 * the fleet and counted like a datagram.  Returns the device index or -1. */
long gb_fleet_io_feed(gb_fleet_io *io, const char *p, size_t len, int64_t now);

/* A message of device dev the caller sent itself (over TCP): counted like
 * a datagram sent, and traced. */
void gb_fleet_io_sent(gb_fleet_io *io, uint32_t dev, const char *p, size_t len);

/* Send the fleet's whole outgoing queue, sendmmsg() per socket of the
 * pool, and clear it.  A full socket buffer drops the rest of that batch,
 * as UDP may (counted; retransmissions cover).  0, or -1 when out of
 * memory (the queue is kept). */
int gb_fleet_io_flush(gb_fleet_io *io);

const gb_fleet_io_stats *gb_fleet_io_stats_get(const gb_fleet_io *io);

/* Trace one device's messages (dev < 0: none).  Items and bytes stay until
 * gb_fleet_io_trace_clear(). */
void gb_fleet_io_trace(gb_fleet_io *io, long dev);
long gb_fleet_io_traced(const gb_fleet_io *io);
size_t gb_fleet_io_trace_count(const gb_fleet_io *io);
const gb_trace_item *gb_fleet_io_trace_items(const gb_fleet_io *io);
const char *gb_fleet_io_trace_data(const gb_fleet_io *io);
void gb_fleet_io_trace_clear(gb_fleet_io *io);

#endif
