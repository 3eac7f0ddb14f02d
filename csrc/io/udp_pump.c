/* udp_pump.c - recvmmsg/sendmmsg pumps over the core (see udp_pump.h). */
#define _GNU_SOURCE
#include "udp_pump.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "gb_containers.h"
#include "io_addr.h"

#define RX_SIZE 65536        /* any UDP payload */
#define REG_BATCH 32
#define REG_BUDGET 1024      /* datagrams per call: let the caller's loop breathe */
#define FLEET_BATCH 64
#define FLEET_BUDGET 2048
#define TX_BATCH 256

/* recvmmsg() into count slots of RX_SIZE bytes at rx. */
static int receive_batch(int fd, char *rx, struct mmsghdr *msg, struct iovec *iov,
                         struct sockaddr_storage *from, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        iov[i].iov_base = rx + (size_t)i * RX_SIZE;
        iov[i].iov_len = RX_SIZE;
        memset(&msg[i], 0, sizeof msg[i]);
        msg[i].msg_hdr.msg_iov = &iov[i];
        msg[i].msg_hdr.msg_iovlen = 1;
        if (from) {
            msg[i].msg_hdr.msg_name = &from[i];
            msg[i].msg_hdr.msg_namelen = sizeof from[i];
        }
    }
    return recvmmsg(fd, msg, count, MSG_DONTWAIT, NULL);
}

/* Point msg at len bytes at p for dest. */
static void outgoing(struct mmsghdr *msg, struct iovec *iov, const char *p, size_t len,
                     void *dest, socklen_t dest_len)
{
    iov->iov_base = (void *)p;
    iov->iov_len = len;
    memset(msg, 0, sizeof *msg);
    msg->msg_hdr.msg_iov = iov;
    msg->msg_hdr.msg_iovlen = 1;
    msg->msg_hdr.msg_name = dest;
    msg->msg_hdr.msg_namelen = dest_len;
}

/* sendmmsg() all m messages; returns how many went.  An ICMP error of an
 * earlier datagram surfaces here as ECONNREFUSED: counted and retried.  A
 * message that cannot go at all (EMSGSIZE: larger than a datagram) is
 * skipped, not the rest of the batch with it; a full socket buffer
 * (EAGAIN) ends the batch. */
static unsigned send_all(int fd, struct mmsghdr *msg, unsigned m, uint64_t *bytes,
                         uint64_t *calls, uint64_t *icmp_errors)
{
    unsigned at = 0, went = 0;
    int tries = 0;
    while (at < m) {
        int r = sendmmsg(fd, msg + at, m - at, MSG_DONTWAIT);
        if (calls)
            (*calls)++;
        if (r > 0) {
            for (int j = 0; j < r; j++)
                *bytes += msg[at + (unsigned)j].msg_len;
            at += (unsigned)r;
            went += (unsigned)r;
            continue;
        }
        if (r < 0 && (errno == ECONNREFUSED || errno == EINTR) && ++tries < 8) {
            if (errno == ECONNREFUSED && icmp_errors)
                (*icmp_errors)++;
            continue;
        }
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNREFUSED &&
            errno != EINTR) {
            at++; /* this one cannot be sent; the others still can */
            continue;
        }
        break;
    }
    return went;
}

/* ---- registrar ------------------------------------------------------------ */

struct gb_reg_pump {
    char *rx;                /* REG_BATCH * RX_SIZE */
    char *tx;                /* answers, one after another */
    size_t tx_cap;
    gb_reg_pump_stats st;
};

gb_reg_pump *gb_reg_pump_new(const gb_registrar *r)
{
    gb_reg_pump *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    /* the largest answer, and a batch of ordinary ones beside it */
    p->tx_cap = gb_registrar_reply_cap(r, RX_SIZE) + REG_BATCH * 4096;
    p->rx = malloc((size_t)REG_BATCH * RX_SIZE);
    p->tx = malloc(p->tx_cap);
    if (!p->rx || !p->tx) {
        gb_reg_pump_free(p);
        return NULL;
    }
    return p;
}

void gb_reg_pump_free(gb_reg_pump *p)
{
    if (!p)
        return;
    free(p->rx);
    free(p->tx);
    free(p);
}

const gb_reg_pump_stats *gb_reg_pump_stats_get(const gb_reg_pump *p)
{
    return &p->st;
}

static void reg_send(gb_reg_pump *p, int fd, struct mmsghdr *tx, unsigned ntx)
{
    uint64_t bytes = 0;
    unsigned sent = send_all(fd, tx, ntx, &bytes, NULL, NULL);
    p->st.answers += sent;
    p->st.send_dropped += ntx - sent;
}

long gb_reg_pump_run(gb_reg_pump *p, gb_registrar *r, int fd, int64_t now_ms,
                     int64_t wall_ms)
{
    struct sockaddr_storage local;
    socklen_t ll = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &ll) < 0)
        return -errno;
    struct mmsghdr rx[REG_BATCH], tx[REG_BATCH];
    struct iovec riov[REG_BATCH], tiov[REG_BATCH];
    struct sockaddr_storage from[REG_BATCH], to[REG_BATCH];
    long total = 0;
    while (total < REG_BUDGET) {
        int n = receive_batch(fd, p->rx, rx, riov, from, REG_BATCH);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNREFUSED)
                return -errno;
            break;
        }
        unsigned ntx = 0;
        size_t used = 0;
        for (int i = 0; i < n; i++) {
            if (rx[i].msg_hdr.msg_flags & MSG_TRUNC) {
                p->st.truncated++; /* larger than any message we accept: never parse a prefix */
                continue;
            }
            p->st.datagrams++;
            /* room for the largest answer this request can get */
            if (p->tx_cap - used < gb_registrar_reply_cap(r, rx[i].msg_len)) {
                reg_send(p, fd, tx, ntx);
                ntx = 0;
                used = 0;
            }
            gb_peer src;
            gb_io_peer_from_sockaddr(&from[i], GB_TRANSPORT_UDP, 0, &src);
            gb_reg_reply out = {.buf = p->tx + used, .cap = p->tx_cap - used};
            if (gb_registrar_handle(r, riov[i].iov_base, rx[i].msg_len, &src, now_ms, wall_ms,
                                    &out) != GB_REG_REPLY)
                continue;
            socklen_t tl = gb_io_sockaddr_from_peer(&out.dest, local.ss_family, &to[ntx]);
            outgoing(&tx[ntx], &tiov[ntx], out.buf, out.len, &to[ntx], tl);
            ntx++;
            used += out.len;
        }
        reg_send(p, fd, tx, ntx);
        total += n;
        if (n < REG_BATCH)
            break;
    }
    return total;
}

/* ---- device fleet ------------------------------------------------------- */

struct gb_fleet_io {
    gb_fleet *f;
    int *fds;                          /* the pool */
    uint32_t nfds;
    int family;
    uint32_t *sock_of;                 /* per device: slot + 1, 0: i % nfds */
    uint32_t sock_of_len;
    struct sockaddr_storage dest_addr[GB_FLEET_MAX_DESTS];
    socklen_t dest_len[GB_FLEET_MAX_DESTS];
    uint8_t dest_state[GB_FLEET_MAX_DESTS]; /* 0 unknown, 1 ready, 2 unroutable */
    char *rx;                          /* FLEET_BATCH * RX_SIZE, on first use */
    uint32_t *order;                   /* out items sorted by socket */
    size_t order_cap;
    uint32_t *slot_count;              /* nfds + 1 */
    long trace_dev;
    gb_trace_item *trace;
    size_t ntrace, trace_cap;
    char *trace_data;
    size_t trace_len, trace_data_cap;
    gb_fleet_io_stats st;
};

gb_fleet_io *gb_fleet_io_new(gb_fleet *f)
{
    gb_fleet_io *io = calloc(1, sizeof *io);
    if (io) {
        io->f = f;
        io->trace_dev = -1;
    }
    return io;
}

void gb_fleet_io_free(gb_fleet_io *io)
{
    if (!io)
        return;
    free(io->fds);
    free(io->sock_of);
    free(io->rx);
    free(io->order);
    free(io->slot_count);
    free(io->trace);
    free(io->trace_data);
    free(io);
}

/* Keep a copy of a traced message (best effort: a diagnostic). */
static void trace_add(gb_fleet_io *io, int sent, const char *p, size_t n)
{
    if (gb_grow((void **)&io->trace, &io->trace_cap, io->ntrace + 1, sizeof *io->trace) ||
        gb_grow((void **)&io->trace_data, &io->trace_data_cap, io->trace_len + n, 1))
        return;
    memcpy(io->trace_data + io->trace_len, p, n);
    io->trace[io->ntrace++] = (gb_trace_item){(uint8_t)sent, (uint32_t)io->trace_len, (uint32_t)n};
    io->trace_len += n;
}

int gb_fleet_io_attach(gb_fleet_io *io, const int *fds, size_t n, const char **why)
{
    *why = NULL;
    if (n < 1 || n > UINT32_MAX / 2) {
        *why = "at least one socket is needed";
        return -1;
    }
    int *copy = calloc(n, sizeof *copy);
    int *hosts = calloc(n, sizeof *hosts);
    uint16_t *ports = calloc(n, sizeof *ports);
    uint32_t *counts = calloc(n + 1, sizeof *counts);
    int family = -1, rc = -1;
    if (!copy || !hosts || !ports || !counts) {
        *why = "out of memory";
        goto done;
    }
    for (size_t k = 0; k < n; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(fds[k], (struct sockaddr *)&ss, &sl) < 0) {
            *why = "getsockname failed";
            goto done;
        }
        char host[INET6_ADDRSTRLEN];
        const void *a = ss.ss_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
        if ((ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
            (family >= 0 && family != ss.ss_family) ||
            !inet_ntop(ss.ss_family, a, host, sizeof host)) {
            errno = 0;
            *why = "sockets must be bound UDP sockets of one family";
            goto done;
        }
        family = ss.ss_family;
        hosts[k] = gb_fleet_local_host(io->f, host, strlen(host));
        if (hosts[k] < 0) {
            errno = 0;
            *why = "too many local addresses (255)";
            goto done;
        }
        copy[k] = fds[k];
        ports[k] = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
    }
    uint32_t ndev = gb_fleet_count(io->f);
    for (uint32_t i = 0; i < ndev; i++)
        gb_fleet_set_local(io->f, i, hosts[i % n], ports[i % n]);
    /* issue 14: a device moved to a socket the new pool lacks goes back to
     * its own one, rather than past the end of the pool */
    for (uint32_t i = 0; i < io->sock_of_len; i++)
        if (io->sock_of[i] > n)
            io->sock_of[i] = 0;
    free(io->fds);
    free(io->slot_count);
    io->fds = copy;
    io->slot_count = counts;
    copy = NULL;
    counts = NULL;
    io->nfds = (uint32_t)n;
    io->family = family;
    memset(io->dest_state, 0, sizeof io->dest_state);
    rc = 0;
done:
    free(copy);
    free(hosts);
    free(ports);
    free(counts);
    return rc;
}

size_t gb_fleet_io_sockets(const gb_fleet_io *io)
{
    return io->nfds;
}

int gb_fleet_io_set_socket(gb_fleet_io *io, uint32_t dev, uint32_t slot)
{
    uint32_t ndev = gb_fleet_count(io->f);
    if (slot >= io->nfds || dev >= ndev)
        return -1;
    if (io->sock_of_len < ndev) {
        uint32_t *p = realloc(io->sock_of, (size_t)ndev * sizeof *p);
        if (!p)
            return -2;
        memset(p + io->sock_of_len, 0, (size_t)(ndev - io->sock_of_len) * sizeof *p);
        io->sock_of = p;
        io->sock_of_len = ndev;
    }
    io->sock_of[dev] = slot + 1;
    return 0;
}

int gb_fleet_io_set_dest(gb_fleet_io *io, size_t k, const char *host, size_t host_len,
                         uint16_t port)
{
    if (k >= GB_FLEET_MAX_DESTS || port == 0 ||
        gb_io_sockaddr_from_text(io->family, host, host_len, port, &io->dest_addr[k],
                                 &io->dest_len[k]) < 0)
        return -1;
    io->dest_state[k] = 1;
    return 0;
}

/* Whether destination k has an address, working it out from the fleet's
 * destination the first time. */
static int dest_ready(gb_fleet_io *io, unsigned k)
{
    if (k >= GB_FLEET_MAX_DESTS)
        return 0;
    if (io->dest_state[k] == 0) {
        gb_bytes host;
        uint16_t port;
        io->dest_state[k] = 2;
        if (gb_fleet_dest(io->f, k, &host, &port, NULL) == 0 &&
            gb_io_sockaddr_from_text(io->family, host.p, host.n, port, &io->dest_addr[k],
                                     &io->dest_len[k]) == 0)
            io->dest_state[k] = 1;
    }
    return io->dest_state[k] == 1;
}

const struct sockaddr *gb_fleet_io_dest_addr(gb_fleet_io *io, unsigned k, socklen_t *len)
{
    if (!dest_ready(io, k))
        return NULL;
    *len = io->dest_len[k];
    return (const struct sockaddr *)&io->dest_addr[k];
}

void gb_fleet_io_sent(gb_fleet_io *io, uint32_t dev, const char *p, size_t len)
{
    io->st.tx_datagrams++;
    io->st.tx_bytes += len;
    if ((long)dev == io->trace_dev)
        trace_add(io, 1, p, len);
}

/* The pool slot device dev sends from: its move, while that socket is in
 * the pool, else its own. */
static uint32_t slot_of(const gb_fleet_io *io, uint32_t dev)
{
    if (dev < io->sock_of_len && io->sock_of[dev] && io->sock_of[dev] <= io->nfds)
        return io->sock_of[dev] - 1;
    return dev % io->nfds;
}

long gb_fleet_io_feed(gb_fleet_io *io, const char *p, size_t len, int64_t now)
{
    io->st.rx_datagrams++;
    io->st.rx_bytes += len;
    long d = gb_fleet_handle_datagram(io->f, p, len, now);
    if (d < 0)
        io->st.rx_unmatched++;
    else if (d == io->trace_dev)
        trace_add(io, 0, p, len);
    return d;
}

long gb_fleet_io_receive(gb_fleet_io *io, int fd, int64_t now)
{
    if (!io->rx && !(io->rx = malloc((size_t)FLEET_BATCH * RX_SIZE)))
        return -ENOMEM;
    struct mmsghdr msg[FLEET_BATCH];
    struct iovec iov[FLEET_BATCH];
    long total = 0;
    /* a request naming no device of ours is refused from this socket's
     * first device (device i uses socket i % n) */
    long receiver = -1;
    for (uint32_t s = 0; s < io->nfds; s++)
        if (io->fds[s] == fd && s < gb_fleet_count(io->f))
            receiver = (long)s;
    while (total < FLEET_BUDGET) {
        gb_fleet_set_receiver(io->f, receiver);
        int n = receive_batch(fd, io->rx, msg, iov, NULL, FLEET_BATCH);
        if (n < 0) {
            if (errno == ECONNREFUSED) { /* port unreachable for something we sent */
                io->st.icmp_errors++;
                continue;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            break;
        }
        if (n == 0)
            break;
        io->st.rx_batches++;
        for (int i = 0; i < n; i++) {
            if (msg[i].msg_hdr.msg_flags & MSG_TRUNC)
                io->st.rx_truncated++;
            else
                gb_fleet_io_feed(io, iov[i].iov_base, msg[i].msg_len, now);
        }
        gb_fleet_set_receiver(io->f, -1);
        total += n;
        if (n < FLEET_BATCH)
            break;
    }
    return total;
}

int gb_fleet_io_flush(gb_fleet_io *io)
{
    gb_fleet *f = io->f;
    size_t n = gb_fleet_out_count(f);
    if (!n || !io->nfds)
        return 0;
    const gb_dev_out *o = gb_fleet_out_items(f);
    const char *data = gb_fleet_out_data(f);
    if (gb_grow((void **)&io->order, &io->order_cap, n, sizeof *io->order))
        return -1;
    /* counting sort of the items by socket, keeping their order */
    uint32_t *cnt = io->slot_count;
    memset(cnt, 0, ((size_t)io->nfds + 1) * sizeof *cnt);
    for (size_t k = 0; k < n; k++)
        cnt[slot_of(io, o[k].dev) + 1]++;
    for (uint32_t s = 0; s < io->nfds; s++)
        cnt[s + 1] += cnt[s];
    for (size_t k = 0; k < n; k++)
        io->order[cnt[slot_of(io, o[k].dev)]++] = (uint32_t)k;
    if (io->trace_dev >= 0)
        for (size_t k = 0; k < n; k++)
            if ((long)o[k].dev == io->trace_dev)
                trace_add(io, 1, data + o[k].off, o[k].len);
    struct mmsghdr msg[TX_BATCH];
    struct iovec iov[TX_BATCH];
    size_t k = 0;
    while (k < n) {
        uint32_t slot = slot_of(io, o[io->order[k]].dev);
        unsigned m = 0;
        while (k < n && m < TX_BATCH && slot_of(io, o[io->order[k]].dev) == slot) {
            const gb_dev_out *it = &o[io->order[k++]];
            if (!dest_ready(io, it->dest)) {
                io->st.tx_unroutable++;
                continue;
            }
            outgoing(&msg[m], &iov[m], data + it->off, it->len, &io->dest_addr[it->dest],
                     io->dest_len[it->dest]);
            m++;
        }
        unsigned sent = send_all(io->fds[slot], msg, m, &io->st.tx_bytes, &io->st.tx_calls,
                                 &io->st.icmp_errors);
        io->st.tx_dropped += m - sent;
        io->st.tx_datagrams += sent;
    }
    gb_fleet_out_clear(f);
    return 0;
}

const gb_fleet_io_stats *gb_fleet_io_stats_get(const gb_fleet_io *io)
{
    return &io->st;
}

void gb_fleet_io_trace(gb_fleet_io *io, long dev)
{
    io->trace_dev = dev < 0 ? -1 : dev;
}

long gb_fleet_io_traced(const gb_fleet_io *io)
{
    return io->trace_dev;
}

size_t gb_fleet_io_trace_count(const gb_fleet_io *io)
{
    return io->ntrace;
}

const gb_trace_item *gb_fleet_io_trace_items(const gb_fleet_io *io)
{
    return io->trace;
}

const char *gb_fleet_io_trace_data(const gb_fleet_io *io)
{
    return io->trace_data;
}

void gb_fleet_io_trace_clear(gb_fleet_io *io)
{
    io->ntrace = 0;
    io->trace_len = 0;
}
