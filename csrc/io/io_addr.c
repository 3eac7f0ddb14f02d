/* io_addr.c - socket addresses and gb_peer (see io_addr.h). */
#define _GNU_SOURCE
#include "io_addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

void gb_io_peer_from_sockaddr(const struct sockaddr_storage *ss, uint8_t transport,
                              uint64_t conn_id, gb_peer *p)
{
    memset(p, 0, sizeof(*p));
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            p->family = 4;
            memcpy(p->ip, s6->sin6_addr.s6_addr + 12, 4);
        } else {
            p->family = 6;
            memcpy(p->ip, s6->sin6_addr.s6_addr, 16);
        }
        p->port = ntohs(s6->sin6_port);
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        p->family = 4;
        memcpy(p->ip, &s4->sin_addr, 4);
        p->port = ntohs(s4->sin_port);
    }
    p->transport = transport;
    p->conn_id = conn_id;
}

socklen_t gb_io_sockaddr_from_peer(const gb_peer *p, int sock_family,
                                   struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (sock_family == 0)
        sock_family = p->family == 6 ? AF_INET6 : AF_INET;
    if (sock_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(p->port);
        if (p->family == 4) {
            s6->sin6_addr.s6_addr[10] = 0xff;
            s6->sin6_addr.s6_addr[11] = 0xff;
            memcpy(s6->sin6_addr.s6_addr + 12, p->ip, 4);
        } else {
            memcpy(s6->sin6_addr.s6_addr, p->ip, 16);
        }
        return sizeof(*s6);
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(p->port);
    memcpy(&s4->sin_addr, p->ip, 4);
    return sizeof(*s4);
}

int gb_io_sockaddr_from_text(int family, const char *host, size_t n, uint16_t port,
                             struct sockaddr_storage *ss, socklen_t *len)
{
    char h[INET6_ADDRSTRLEN + 1];
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n >= sizeof h)
        return -1;
    memcpy(h, host, n);
    h[n] = '\0';
    gb_peer p = {.port = port};
    if (inet_pton(AF_INET, h, p.ip) == 1)
        p.family = 4;
    else if (family != AF_INET && inet_pton(AF_INET6, h, p.ip) == 1)
        p.family = 6;
    else
        return -1;
    *len = gb_io_sockaddr_from_peer(&p, family, ss);
    return 0;
}
