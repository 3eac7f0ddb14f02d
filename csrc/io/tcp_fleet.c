/* tcp_fleet.c - the device fleet on the TCP pump (see tcp_pump.h).
 *
 * Each device keeps one connection for all its traffic (GB/T 28181-2022
 * §9.1.1 f): opened when it starts (or when it next has something to send
 * after losing one), from one of the source addresses, its local address
 * written in Via and Contact.  A connection that fails or goes away is a
 * transport error of its device: the transaction in flight fails and the
 * device retries as after any failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gb_containers.h"
#include "io_addr.h"
#include "tcp_pump.h"

#define MAX_SOURCES 255
/* conn_of[] value of a device whose connection could not be opened in
 * this batch: its queued messages are dropped at the next flush. */
#define DROP UINT64_MAX

typedef struct {
    struct sockaddr_storage ss;
    socklen_t len;
    int host;                /* the fleet's interned host; -1: a wildcard */
} source;

struct gb_fleet_tcp {
    gb_fleet *f;
    gb_fleet_io *io;
    gb_tcp *t;
    uint64_t *conn_of;       /* per device: its connection id, 0 none, DROP */
    uint16_t *dest_of;       /* per device: the destination its connection goes to */
    size_t ndev;             /* room in conn_of / dest_of */
    source src[MAX_SOURCES];
    size_t nsrc;
    uint32_t *dropped;       /* devices marked DROP */
    size_t ndropped, dropped_cap;
    int64_t now;
    gb_fleet_tcp_stats st;
};

/* Room for every device of the fleet.  0, or -1. */
static int fit(gb_fleet_tcp *ft)
{
    size_t n = gb_fleet_count(ft->f);
    if (n <= ft->ndev)
        return 0;
    uint64_t *c = realloc(ft->conn_of, n * sizeof *c);
    if (c)
        ft->conn_of = c;
    uint16_t *d = c ? realloc(ft->dest_of, n * sizeof *d) : NULL;
    if (!d)
        return -1;
    ft->dest_of = d;
    memset(c + ft->ndev, 0, (n - ft->ndev) * sizeof *c);
    memset(d + ft->ndev, 0, (n - ft->ndev) * sizeof *d);
    ft->ndev = n;
    return 0;
}

static void on_message(void *arg, uint64_t id, uint32_t dev, const gb_peer *peer,
                       const char *p, size_t n, int64_t now)
{
    (void)id;
    (void)dev;
    (void)peer;
    gb_fleet_tcp *ft = arg;
    gb_fleet_io_feed(ft->io, p, n, now);
}

static void on_closed(void *arg, uint64_t id, uint32_t dev, gb_tcp_close_reason why,
                      int64_t now)
{
    (void)why;
    gb_fleet_tcp *ft = arg;
    if (dev >= ft->ndev || ft->conn_of[dev] != id)
        return; /* a connection the device no longer uses */
    ft->conn_of[dev] = 0;
    ft->st.lost++;
    gb_fleet_transport_error(ft->f, dev, now);
}

gb_fleet_tcp *gb_fleet_tcp_new(gb_fleet *f, gb_fleet_io *io, const gb_tcp_config *cfg,
                               const char **why)
{
    gb_fleet_tcp *ft = calloc(1, sizeof *ft);
    if (!ft) {
        *why = "out of memory";
        return NULL;
    }
    ft->f = f;
    ft->io = io;
    gb_tcp_handlers h = {.arg = ft, .message = on_message, .closed = on_closed};
    if (!(ft->t = gb_tcp_new(cfg, &h, why)) || fit(ft) < 0) {
        if (ft->t)
            *why = "out of memory";
        gb_fleet_tcp_free(ft);
        return NULL;
    }
    return ft;
}

void gb_fleet_tcp_free(gb_fleet_tcp *ft)
{
    if (!ft)
        return;
    gb_tcp_free(ft->t);
    free(ft->conn_of);
    free(ft->dest_of);
    free(ft->dropped);
    free(ft);
}

gb_tcp *gb_fleet_tcp_pump(gb_fleet_tcp *ft)
{
    return ft->t;
}

const gb_fleet_tcp_stats *gb_fleet_tcp_stats_get(const gb_fleet_tcp *ft)
{
    return &ft->st;
}

int gb_fleet_tcp_sources(gb_fleet_tcp *ft, const char *const *hosts, size_t n, const char **why)
{
    *why = NULL;
    if (n > MAX_SOURCES) {
        *why = "at most 255 source addresses";
        return -1;
    }
    source tmp[MAX_SOURCES];
    for (size_t k = 0; k < n; k++) {
        size_t len = strlen(hosts[k]);
        struct in6_addr any6 = IN6ADDR_ANY_INIT;
        if (gb_io_sockaddr_from_text(0, hosts[k], len, 0, &tmp[k].ss, &tmp[k].len) < 0) {
            *why = "a source address is not an IP address";
            return -1;
        }
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&tmp[k].ss;
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&tmp[k].ss;
        int wildcard = tmp[k].ss.ss_family == AF_INET ? s4->sin_addr.s_addr == htonl(INADDR_ANY)
                                                      : !memcmp(&s6->sin6_addr, &any6, sizeof any6);
        tmp[k].host = wildcard ? -1 : gb_fleet_local_host(ft->f, hosts[k], len);
        if (!wildcard && tmp[k].host < 0) {
            *why = "too many local addresses (255)";
            return -1;
        }
    }
    memcpy(ft->src, tmp, n * sizeof *tmp);
    ft->nsrc = n;
    return 0;
}

/* A device's queued messages are dropped at the next flush. */
static void mark_drop(gb_fleet_tcp *ft, uint32_t dev)
{
    if (gb_grow((void **)&ft->dropped, &ft->dropped_cap, ft->ndropped + 1, sizeof *ft->dropped))
        return; /* then they go out on a new connection attempt instead */
    ft->conn_of[dev] = DROP;
    ft->dropped[ft->ndropped++] = dev;
}

/* Open device dev's connection to destination dest, its local address
 * into Via and Contact.  The connection id, or a negative errno. */
static int64_t open_conn(gb_fleet_tcp *ft, uint32_t dev, unsigned dest, int64_t now)
{
    socklen_t dl;
    const struct sockaddr *da = gb_fleet_io_dest_addr(ft->io, dest, &dl);
    if (!da) {
        ft->st.unroutable++;
        return -EDESTADDRREQ;
    }
    const source *s = ft->nsrc ? &ft->src[dev % ft->nsrc] : NULL;
    int bind_it = s && s->host >= 0 && s->ss.ss_family == da->sa_family;
    gb_peer local;
    int64_t id = gb_tcp_connect(ft->t, da, dl, bind_it ? (const struct sockaddr *)&s->ss : NULL,
                                bind_it ? s->len : 0, dev, &local, now);
    if (id < 0) {
        ft->st.open_failed++;
        return id;
    }
    ft->conn_of[dev] = (uint64_t)id;
    ft->dest_of[dev] = (uint16_t)dest;
    ft->st.opened++;
    int host = bind_it ? s->host : -1;
    if (host < 0) {
        char ip[INET6_ADDRSTRLEN];
        if (inet_ntop(local.family == 6 ? AF_INET6 : AF_INET, local.ip, ip, sizeof ip))
            host = gb_fleet_local_host(ft->f, ip, strlen(ip));
    }
    if (host >= 0)
        gb_fleet_set_local(ft->f, dev, host, local.port);
    return id;
}

long gb_fleet_tcp_start_range(gb_fleet_tcp *ft, uint32_t first, uint32_t count, int64_t now)
{
    ft->now = now;
    if (fit(ft) < 0 || first > ft->ndev || count > ft->ndev - first)
        return -1;
    long started = 0;
    for (uint32_t dev = first; dev < first + count; dev++) {
        uint64_t id = ft->conn_of[dev];
        int have = id && id != DROP && gb_tcp_alive(ft->t, id, NULL);
        int64_t opened = have ? 0 : open_conn(ft, dev, gb_fleet_dest_of(ft->f, dev), now);
        started += gb_fleet_start(ft->f, dev, now) == 0;
        if (opened < 0) {
            mark_drop(ft, dev);
            gb_fleet_transport_error(ft->f, dev, now);
        }
    }
    return started;
}

long gb_fleet_tcp_run(gb_fleet_tcp *ft, int64_t now)
{
    ft->now = now;
    if (fit(ft) < 0)
        return -ENOMEM;
    return gb_tcp_run(ft->t, now);
}

void gb_fleet_tcp_flush(gb_fleet_tcp *ft, int64_t now)
{
    if (now)
        ft->now = now;
    now = ft->now;
    gb_fleet *f = ft->f;
    size_t n = gb_fleet_out_count(f);
    if (fit(ft) < 0)
        return; /* the queue stays for the next flush */
    const gb_dev_out *o = gb_fleet_out_items(f);
    const char *data = gb_fleet_out_data(f);
    size_t failed_from = ft->ndropped;
    for (size_t k = 0; k < n; k++) {
        uint32_t dev = o[k].dev;
        uint64_t id = ft->conn_of[dev];
        if (id == DROP)
            continue;
        if (id && (ft->dest_of[dev] != o[k].dest || !gb_tcp_alive(ft->t, id, NULL))) {
            gb_tcp_close(ft->t, id, 0); /* redirected elsewhere, or gone */
            id = 0;
        }
        if (!id) {
            int64_t opened = open_conn(ft, dev, o[k].dest, now);
            if (opened < 0) {
                mark_drop(ft, dev);
                continue;
            }
            id = (uint64_t)opened;
        }
        if (gb_tcp_send(ft->t, id, data + o[k].off, o[k].len) == 0)
            gb_fleet_io_sent(ft->io, dev, data + o[k].off, o[k].len);
    }
    gb_fleet_out_clear(f);
    for (size_t k = 0; k < ft->ndropped; k++) {
        uint32_t dev = ft->dropped[k];
        ft->conn_of[dev] = 0;
        if (k >= failed_from)
            gb_fleet_transport_error(f, dev, now);
    }
    ft->ndropped = 0;
}

int gb_fleet_tcp_close(gb_fleet_tcp *ft, uint32_t dev, int report, int64_t now)
{
    if (fit(ft) < 0 || dev >= ft->ndev)
        return -1;
    uint64_t id = ft->conn_of[dev];
    if (!id || id == DROP)
        return -1;
    ft->conn_of[dev] = 0;
    int rc = gb_tcp_close(ft->t, id, 0);
    if (report)
        gb_fleet_transport_error(ft->f, dev, now);
    return rc;
}
