/*
 * test_udp_pump.c - the recvmmsg/sendmmsg pumps of io/udp_pump.h over real
 * UDP sockets on 127.0.0.1: the registrar answers a batch, a request whose
 * answer is larger than 16 KB (issue 14), the fleet's socket pool, a
 * device moved to a socket a later pool lacks (issue 14), tracing and
 * destinations without an address.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../check.h"
#include "io_helpers.h"
#include "udp_pump.h"

/* A non-blocking UDP socket bound to 127.0.0.1 on a free port. */
static int udp_socket(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("udp socket");
        exit(2);
    }
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    if (port)
        *port = ntohs(a.sin_port);
    return fd;
}

static void send_to(int fd, uint16_t port, const char *p, size_t n)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(sendto(fd, p, n, 0, (struct sockaddr *)&a, sizeof a) == (ssize_t)n);
}

/* One datagram waiting on fd (up to a second), its length or -1; the
 * sender's port in *from when given. */
static long receive_one(int fd, char *buf, size_t cap, uint16_t *from)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 1000) != 1)
        return -1;
    struct sockaddr_in a;
    socklen_t l = sizeof a;
    ssize_t n = recvfrom(fd, buf, cap, 0, (struct sockaddr *)&a, &l);
    if (from)
        *from = ntohs(a.sin_port);
    return n;
}

/* Wait until fd has something to read. */
static void wait_readable(int fd)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pf, 1, 1000) == 1);
}

/* ---- registrar ------------------------------------------------------------ */

static size_t register_request(char *out, size_t cap, int n, const char *via_pad)
{
    return (size_t)snprintf(out, cap,
                            "REGISTER sip:" SERVER_ID "@3402000000 SIP/2.0\r\n"
                            "Via: SIP/2.0/UDP 127.0.0.1:5061;rport;branch=z9hG4bKp%d%s\r\n"
                            "Via: SIP/2.0/UDP 10.0.0.6:5061;branch=z9hG4bKq%d%s\r\n"
                            "Via: SIP/2.0/UDP 10.0.0.7:5061;branch=z9hG4bKr%d%s\r\n"
                            "From: <sip:" DEV "@3402000000>;tag=1\r\n"
                            "To: <sip:" DEV "@3402000000>\r\n"
                            "Call-ID: pump-%d\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
                            "Contact: <sip:" DEV "@127.0.0.1:5061>\r\n"
                            "Expires: 3600\r\nContent-Length: 0\r\n\r\n",
                            n, via_pad, n, via_pad, n, via_pad, n);
}

/* A batch of REGISTERs: each answered (401) through one pump call. */
static void test_registrar_pump_answers_a_batch(void)
{
    gb_registrar *r = registrar();
    gb_reg_pump *p = gb_reg_pump_new(r);
    uint16_t sport, cport;
    int server = udp_socket(&sport), client = udp_socket(&cport);
    char req[2048], ans[4096];
    for (int i = 0; i < 40; i++)
        send_to(client, sport, req, register_request(req, sizeof req, i, ""));
    wait_readable(server);
    long got = 0;
    for (int tries = 0; got < 40 && tries < 50; tries++)
        got += gb_reg_pump_run(p, r, server, 1000, 0);
    CHECK_EQ_INT(got, 40);
    int answers = 0;
    long n;
    while ((n = receive_one(client, ans, sizeof ans, NULL)) > 0 && answers < 40)
        answers += n > 24 && memcmp(ans, "SIP/2.0 401 Unauthorized\r\n", 26) == 0;
    CHECK_EQ_INT(answers, 40);
    const gb_reg_pump_stats *st = gb_reg_pump_stats_get(p);
    CHECK_EQ_INT(st->datagrams, 40);
    CHECK_EQ_INT(st->answers, 40);
    CHECK_EQ_INT(st->send_dropped, 0);
    CHECK_EQ_INT(gb_reg_pump_run(p, r, server, 1000, 0), 0); /* nothing waits */
    close(server);
    close(client);
    drain_events(r);
    gb_reg_pump_free(p);
    gb_registrar_free(r);
}

/* Issue 14: three 7.8 KB Via values; the answer echoes them (over 16 KB)
 * and is sent, not dropped. */
static void test_registrar_pump_answers_beyond_16k(void)
{
    gb_registrar *r = registrar();
    gb_reg_pump *p = gb_reg_pump_new(r);
    uint16_t sport, cport;
    int server = udp_socket(&sport), client = udp_socket(&cport);
    static char pad[7800], req[32768], ans[65536];
    memset(pad, 'v', sizeof pad - 1);
    pad[0] = ';';
    pad[1] = 'x';
    pad[2] = '=';
    size_t n = register_request(req, sizeof req, 1, pad);
    CHECK(n > 23000);
    send_to(client, sport, req, n);
    wait_readable(server);
    CHECK_EQ_INT(gb_reg_pump_run(p, r, server, 1000, 0), 1);
    long got = receive_one(client, ans, sizeof ans, NULL);
    CHECK(got > 16384);
    CHECK(got > 26 && memcmp(ans, "SIP/2.0 401 Unauthorized\r\n", 26) == 0);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.replies_too_large, 0);
    close(server);
    close(client);
    drain_events(r);
    gb_reg_pump_free(p);
    gb_registrar_free(r);
}

/* Issue 14: a request whose answer would not fit in one datagram, in the
 * middle of a batch, gets a bare 513; the answers around it all go. */
static void test_registrar_pump_answer_over_a_datagram_is_513_and_loses_none(void)
{
    gb_registrar *r = registrar();
    gb_reg_pump *p = gb_reg_pump_new(r);
    uint16_t sport, cport;
    int server = udp_socket(&sport), client = udp_socket(&cport);
    static char big[65536], req[2048], ans[65536];
    /* 65,500 bytes, nearly all of it eight Via values (each line under the
     * 8 KB limit), which the answer echoes along with its challenge */
    static const char tail[] = "From: <sip:" DEV "@3402000000>;tag=1\r\nTo: <sip:" DEV "@3402000000>\r\n"
                               "Call-ID: big\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
                               "Contact: <sip:" DEV "@127.0.0.1:5061>\r\n"
                               "Expires: 3600\r\nContent-Length: 0\r\n\r\n";
    size_t bn = (size_t)snprintf(big, sizeof big, "REGISTER sip:" SERVER_ID "@3402000000 SIP/2.0\r\n");
    size_t via_fixed = strlen("Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKbig0;x=\r\n");
    size_t pad = 65500 - bn - strlen(tail) - 8 * via_fixed;
    for (int v = 0; v < 8; v++) {
        size_t mine = pad / 8 + (v == 0 ? pad % 8 : 0);
        bn += (size_t)snprintf(big + bn, sizeof big - bn,
                               "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKbig%d;x=", v);
        memset(big + bn, 'v', mine);
        bn += mine;
        bn += (size_t)snprintf(big + bn, sizeof big - bn, "\r\n");
    }
    bn += (size_t)snprintf(big + bn, sizeof big - bn, "%s", tail);
    CHECK_EQ_INT(bn, 65500);
    for (int i = 0; i < 10; i++) {
        if (i == 5)
            send_to(client, sport, big, bn);
        send_to(client, sport, req, register_request(req, sizeof req, i, ""));
    }
    wait_readable(server);
    long got = 0;
    for (int tries = 0; got < 11 && tries < 50; tries++)
        got += gb_reg_pump_run(p, r, server, 1000, 0);
    CHECK_EQ_INT(got, 11);
    int challenges = 0, too_large = 0;
    long n;
    for (int k = 0; k < 11 && (n = receive_one(client, ans, sizeof ans, NULL)) > 0; k++) {
        challenges += n > 26 && memcmp(ans, "SIP/2.0 401 Unauthorized\r\n", 26) == 0;
        too_large += n > 40 && memcmp(ans, "SIP/2.0 513 Response too large for UDP\r\n", 40) == 0;
    }
    CHECK_EQ_INT(challenges, 10);
    CHECK_EQ_INT(too_large, 1);
    CHECK_EQ_INT(gb_reg_pump_stats_get(p)->send_dropped, 0);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.replies_too_large, 1);
    close(server);
    close(client);
    drain_events(r);
    gb_reg_pump_free(p);
    gb_registrar_free(r);
}

/* ---- device fleet ------------------------------------------------------- */

/* Device i sends from socket i % n of the pool, and writes that socket's
 * address in its Via; answers come back through receive. */
static void test_fleet_pool_sends_and_receives(void)
{
    uint16_t sport, p0, p1;
    int server = udp_socket(&sport);
    int pool[2] = {udp_socket(&p0), udp_socket(&p1)};
    gb_fleet *f = fleet(sport, 4, GB_DEV_UDP);
    gb_fleet_io *io = gb_fleet_io_new(f);
    const char *why;
    CHECK_EQ_INT(gb_fleet_io_attach(io, pool, 2, &why), 0);
    for (uint32_t i = 0; i < 4; i++)
        gb_fleet_start(f, i, 0);
    CHECK_EQ_INT(gb_fleet_io_flush(io), 0);
    CHECK_EQ_INT(gb_fleet_out_count(f), 0);
    int from_p0 = 0, from_p1 = 0;
    char buf[4096], via[64];
    for (int k = 0; k < 4; k++) {
        uint16_t from;
        long n = receive_one(server, buf, sizeof buf - 1, &from);
        CHECK(n > 0);
        buf[n > 0 ? n : 0] = '\0';
        snprintf(via, sizeof via, "Via: SIP/2.0/UDP 127.0.0.1:%u;", (unsigned)from);
        CHECK(strstr(buf, via) != NULL);
        from_p0 += from == p0;
        from_p1 += from == p1;
    }
    CHECK_EQ_INT(from_p0, 2);
    CHECK_EQ_INT(from_p1, 2);
    const gb_fleet_io_stats *st = gb_fleet_io_stats_get(io);
    CHECK_EQ_INT(st->tx_datagrams, 4);
    CHECK_EQ_INT(st->tx_dropped, 0);
    /* a stray datagram to the pool is received and counted as unmatched */
    send_to(server, p1, "SIP/2.0 200 OK\r\n\r\n", 18);
    wait_readable(pool[1]);
    CHECK_EQ_INT(gb_fleet_io_receive(io, pool[1], 10), 1);
    CHECK_EQ_INT(st->rx_datagrams, 1);
    CHECK_EQ_INT(st->rx_unmatched, 1);
    gb_fleet_io_free(io);
    gb_fleet_free(f);
    close(server);
    close(pool[0]);
    close(pool[1]);
}

/* Issue 14: set_socket(dev, 2) on a pool of three, then a pool of one:
 * the device sends from the only socket instead of past the pool's end. */
static void test_fleet_moved_device_after_smaller_pool(void)
{
    uint16_t sport, p[3];
    int server = udp_socket(&sport);
    int pool[3] = {udp_socket(&p[0]), udp_socket(&p[1]), udp_socket(&p[2])};
    gb_fleet *f = fleet(sport, 2, GB_DEV_UDP);
    gb_fleet_io *io = gb_fleet_io_new(f);
    const char *why;
    CHECK_EQ_INT(gb_fleet_io_attach(io, pool, 3, &why), 0);
    CHECK_EQ_INT(gb_fleet_io_set_socket(io, 1, 2), 0);
    CHECK_EQ_INT(gb_fleet_io_set_socket(io, 1, 3), -1); /* no such socket */
    CHECK_EQ_INT(gb_fleet_io_set_socket(io, 2, 0), -1); /* no such device */
    CHECK_EQ_INT(gb_fleet_io_attach(io, pool, 1, &why), 0);
    gb_fleet_start(f, 1, 0);
    CHECK_EQ_INT(gb_fleet_io_flush(io), 0);
    char buf[4096];
    uint16_t from = 0;
    CHECK(receive_one(server, buf, sizeof buf, &from) > 0);
    CHECK_EQ_INT(from, p[0]);
    /* and back on the larger pool the move still holds where it fits */
    CHECK_EQ_INT(gb_fleet_io_attach(io, pool, 3, &why), 0);
    CHECK_EQ_INT(gb_fleet_io_set_socket(io, 1, 2), 0);
    gb_fleet_send_keepalive(f, 1, 5);
    CHECK_EQ_INT(gb_fleet_io_flush(io), 0);
    CHECK(receive_one(server, buf, sizeof buf, &from) > 0);
    CHECK_EQ_INT(from, p[2]);
    gb_fleet_io_free(io);
    gb_fleet_free(f);
    close(server);
    for (int i = 0; i < 3; i++)
        close(pool[i]);
}

/* The traced device's messages are kept, sent and received. */
static void test_fleet_trace(void)
{
    uint16_t sport, p0;
    int server = udp_socket(&sport), pool = udp_socket(&p0);
    gb_fleet *f = fleet(sport, 2, GB_DEV_UDP);
    gb_fleet_io *io = gb_fleet_io_new(f);
    const char *why;
    CHECK_EQ_INT(gb_fleet_io_attach(io, &pool, 1, &why), 0);
    gb_fleet_io_trace(io, 1);
    gb_fleet_start(f, 0, 0);
    gb_fleet_start(f, 1, 0);
    CHECK_EQ_INT(gb_fleet_io_flush(io), 0);
    CHECK_EQ_INT(gb_fleet_io_trace_count(io), 1);
    const gb_trace_item *t = gb_fleet_io_trace_items(io);
    CHECK(t[0].sent == 1 && t[0].len > 8 &&
          memcmp(gb_fleet_io_trace_data(io) + t[0].off, "REGISTER", 8) == 0);
    gb_fleet_io_trace_clear(io);
    CHECK_EQ_INT(gb_fleet_io_trace_count(io), 0);
    gb_fleet_io_free(io);
    gb_fleet_free(f);
    close(server);
    close(pool);
}

/* A destination that is a name, not an address, is counted unroutable
 * until the caller gives its address. */
static void test_fleet_unroutable_until_address_given(void)
{
    uint16_t sport, p0;
    int server = udp_socket(&sport), pool = udp_socket(&p0);
    gb_dev_config cfg;
    gb_dev_config_default(&cfg);
    cfg.server_id = (gb_bytes){SERVER_ID, 20};
    cfg.server_host = (gb_bytes){"platform.example", 16};
    cfg.server_port = sport;
    const char *why;
    gb_fleet *f = gb_fleet_new(&cfg, 1, &why);
    gb_fleet_add(f, DEV, 20);
    gb_fleet_io *io = gb_fleet_io_new(f);
    CHECK_EQ_INT(gb_fleet_io_attach(io, &pool, 1, &why), 0);
    gb_fleet_start(f, 0, 0);
    CHECK_EQ_INT(gb_fleet_io_flush(io), 0);
    CHECK_EQ_INT(gb_fleet_io_stats_get(io)->tx_unroutable, 1);
    CHECK_EQ_INT(gb_fleet_io_set_dest(io, 0, "127.0.0.1", 9, sport), 0);
    CHECK_EQ_INT(gb_fleet_io_set_dest(io, 0, "platform.example", 16, sport), -1);
    CHECK_EQ_INT(gb_fleet_io_set_dest(io, GB_FLEET_MAX_DESTS, "127.0.0.1", 9, sport), -1);
    gb_fleet_send_keepalive(f, 0, 1);
    CHECK_EQ_INT(gb_fleet_io_flush(io), 0);
    char buf[4096];
    CHECK(receive_one(server, buf, sizeof buf, NULL) > 0);
    gb_fleet_io_free(io);
    gb_fleet_free(f);
    close(server);
    close(pool);
}

/* A pool must be bound UDP sockets of one family. */
static void test_fleet_attach_refuses_a_bad_pool(void)
{
    gb_fleet *f = fleet(5060, 1, GB_DEV_UDP);
    gb_fleet_io *io = gb_fleet_io_new(f);
    const char *why;
    CHECK_EQ_INT(gb_fleet_io_attach(io, NULL, 0, &why), -1);
    int bad = -1;
    CHECK_EQ_INT(gb_fleet_io_attach(io, &bad, 1, &why), -1);
    CHECK(why != NULL);
    CHECK_EQ_INT(gb_fleet_io_sockets(io), 0);
    gb_fleet_io_free(io);
    gb_fleet_free(f);
}

int main(void)
{
    test_registrar_pump_answers_a_batch();
    test_registrar_pump_answers_beyond_16k();
    test_registrar_pump_answer_over_a_datagram_is_513_and_loses_none();
    test_fleet_pool_sends_and_receives();
    test_fleet_moved_device_after_smaller_pool();
    test_fleet_trace();
    test_fleet_unroutable_until_address_given();
    test_fleet_attach_refuses_a_bad_pool();
    return CHECK_DONE("test_udp_pump");
}
