/*
 * io_addr.h - socket addresses and the core's gb_peer, both ways, for the
 * I/O pumps (udp_pump, tcp_pump).  No sockets are touched here.
 */
#ifndef GBSIP_IO_ADDR_H
#define GBSIP_IO_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "registrar.h"

/* The peer of a socket address (an IPv4-mapped IPv6 address as IPv4),
 * with transport and conn_id as given. */
void gb_io_peer_from_sockaddr(const struct sockaddr_storage *ss, uint8_t transport,
                              uint64_t conn_id, gb_peer *p);

/* The peer as a sockaddr for a socket of sock_family (IPv4 peers of an
 * IPv6 socket as mapped addresses; 0: the peer's own family).  Returns the
 * address length. */
socklen_t gb_io_sockaddr_from_peer(const gb_peer *p, int sock_family,
                                   struct sockaddr_storage *ss);

/* host ("1.2.3.4", "::1" or "[::1]", explicit length) and port as a
 * sockaddr for a socket of family (0: the address's own family).  0, or -1
 * when host is not an IP address of a family that socket can reach. */
int gb_io_sockaddr_from_text(int family, const char *host, size_t n, uint16_t port,
                             struct sockaddr_storage *ss, socklen_t *len);

#endif
