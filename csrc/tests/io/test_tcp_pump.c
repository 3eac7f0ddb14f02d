/*
 * test_tcp_pump.c - SIP over TCP through io/tcp_pump.h, over real loopback
 * connections, time passed in (no sleeps for the timers):
 *
 *   registrar  answers on the connection; a message split across reads;
 *              many messages and CRLF keep-alives in one read; answers
 *              later by connection id, never to a reused connection;
 *              deliver mode (an accept hook)
 *   garbage    a framing error answered 400 with the reason, then closed;
 *              bytes that are no request closed without an answer; the
 *              refusal built from a head (request, response, ACK, no Via)
 *   limits     a message left incomplete is answered 400 after
 *              incomplete_ms and closed; one byte a second does not keep
 *              it alive; idle connections close; max_buffered refuses the
 *              oldest partial message first; max_connections refuses and
 *              counts; a peer that does not read is closed at max_unsent
 *   tuning     accepted and connected sockets: no Nagle, delayed ACKs
 *   fleet      devices register over their own connections from several
 *              source addresses, Via naming each connection's port;
 *              a refused connect and a lost connection are transport
 *              errors; the traced device's messages are kept
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../check.h"
#include "io_helpers.h"
#include "tcp_pump.h"

/* ---- sockets ---------------------------------------------------------------- */

/* A non-blocking listening socket on 127.0.0.1, its port in *port. */
static int listener(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) < 0) {
        perror("listener");
        exit(2);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* A blocking client connected to 127.0.0.1:port. */
static int client(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("client");
        exit(2);
    }
    return fd;
}

static void put(int fd, const char *p, size_t n)
{
    CHECK(send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n);
}

/* What arrives on fd within ms milliseconds of quiet, NUL-terminated; its
 * length, or -1 when the peer closed before anything came. */
static long take(int fd, char *buf, size_t cap, int ms)
{
    size_t len = 0;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    while (len + 1 < cap && poll(&pf, 1, ms) == 1) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0) {
            buf[len] = '\0';
            return len ? (long)len : -1;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    return (long)len;
}

/* Whether the peer closed fd (EOF within a second, after whatever comes). */
static int closed_by_peer(int fd)
{
    char buf[4096];
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    while (poll(&pf, 1, 1000) == 1) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return 1;
    }
    return 0;
}

/* Count the occurrences of s in text. */
static int count(const char *text, const char *s)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, s)); p += strlen(s))
        n++;
    return n;
}

/* This process's connected TCP socket whose peer (peer != 0) or own
 * address (peer == 0) is `a`: the pump's own descriptors, found from the
 * other end of the connection; -1 when there is none. */
static int socket_by_address(const struct sockaddr_in *a, int peer)
{
    for (int fd = 3; fd < 4096; fd++) {
        struct sockaddr_in b;
        socklen_t l = sizeof b;
        int r = peer ? getpeername(fd, (struct sockaddr *)&b, &l)
                     : getsockname(fd, (struct sockaddr *)&b, &l);
        if (r == 0 && b.sin_family == AF_INET && b.sin_port == a->sin_port &&
            b.sin_addr.s_addr == a->sin_addr.s_addr) {
            struct sockaddr_in other;
            socklen_t ol = sizeof other;
            /* a listener has no peer: only connected sockets count */
            if (getpeername(fd, (struct sockaddr *)&other, &ol) == 0)
                return fd;
        }
    }
    return -1;
}

/* The pump's request/answer tuning of a socket: no Nagle, and delayed
 * ACKs (TCP_QUICKACK reads 0) so that a request's ACK rides on its answer. */
static void check_request_answer_tuning(int fd)
{
    int v = -1;
    socklen_t l = sizeof v;
    CHECK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &l) == 0 && v == 1);
    v = -1;
    CHECK(getsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &v, &l) == 0 && v == 0);
}

/* ---- a registrar on TCP ----------------------------------------------------------- */

typedef struct {
    gb_registrar *r;
    gb_reg_tcp *rt;
    int lfd;
    uint16_t port;
} server;

static server serve(const gb_tcp_config *cfg)
{
    server s = {.r = registrar()};
    gb_tcp_config def;
    gb_tcp_config_default(&def);
    const char *why;
    s.rt = gb_reg_tcp_new(s.r, cfg ? cfg : &def, &why);
    CHECK(s.rt != NULL);
    s.lfd = listener(&s.port);
    CHECK_EQ_INT(gb_tcp_listen(gb_reg_tcp_pump(s.rt), s.lfd), 0);
    return s;
}

static void unserve(server *s)
{
    gb_tcp_unlisten(gb_reg_tcp_pump(s->rt), s->lfd);
    close(s->lfd);
    gb_reg_tcp_free(s->rt);
    drain_events(s->r);
    gb_registrar_free(s->r);
}

/* Run the pump at `now` until it has nothing more to do for a moment. */
static void pump(server *s, int64_t now)
{
    struct pollfd pf = {.fd = gb_tcp_fd(gb_reg_tcp_pump(s->rt)), .events = POLLIN};
    while (poll(&pf, 1, 50) == 1)
        gb_reg_tcp_run(s->rt, now, 0);
}

static const gb_tcp_stats *tcp_stats(server *s)
{
    return gb_tcp_stats_get(gb_reg_tcp_pump(s->rt));
}

static size_t tcp_register(char *out, size_t cap, int n, const char *content_length)
{
    return (size_t)snprintf(out, cap,
                            "REGISTER sip:" SERVER_ID "@3402000000 SIP/2.0\r\n"
                            "Via: SIP/2.0/TCP 127.0.0.1:5061;rport;branch=z9hG4bKt%d\r\n"
                            "From: <sip:" DEV "@3402000000>;tag=1\r\n"
                            "To: <sip:" DEV "@3402000000>\r\n"
                            "Call-ID: tcp-%d\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
                            "Contact: <sip:" DEV "@127.0.0.1:5061;transport=tcp>\r\n"
                            "Expires: 3600\r\nContent-Length: %s\r\n\r\n",
                            n, n, content_length);
}

/* A REGISTER answered 401 on the connection it came on, the source's
 * connection id in the registrar's event. */
static void test_answer_on_the_connection(void)
{
    server s = serve(NULL);
    int c = client(s.port);
    char req[1024], ans[8192];
    put(c, req, tcp_register(req, sizeof req, 1, "0"));
    pump(&s, 1000);
    CHECK(take(c, ans, sizeof ans, 200) > 0);
    CHECK(strncmp(ans, "SIP/2.0 401 Unauthorized\r\n", 26) == 0);
    CHECK(strstr(ans, "Call-ID: tcp-1\r\n") != NULL);
    CHECK_EQ_INT(tcp_stats(&s)->accepted, 1);
    CHECK_EQ_INT(tcp_stats(&s)->messages_in, 1);
    CHECK_EQ_INT(tcp_stats(&s)->open, 1);
    close(c);
    pump(&s, 1001);
    CHECK_EQ_INT(tcp_stats(&s)->open, 0);
    CHECK_EQ_INT(tcp_stats(&s)->closed[GB_TCP_CLOSED_PEER], 1);
    unserve(&s);
}

/* An accepted connection sends its answers at once and holds each
 * request's ACK for the answer: one segment per answer, not two. */
static void test_accepted_connection_is_tuned_for_request_and_answer(void)
{
    server s = serve(NULL);
    int c = client(s.port);
    pump(&s, 1000);
    struct sockaddr_in me;
    socklen_t l = sizeof me;
    CHECK(getsockname(c, (struct sockaddr *)&me, &l) == 0);
    int fd = socket_by_address(&me, 1);
    CHECK(fd >= 0);
    if (fd >= 0)
        check_request_answer_tuning(fd);
    close(c);
    pump(&s, 1001);
    unserve(&s);
}

/* RFC 3261 §18.3: a message split across reads is framed when its last
 * byte arrives; nothing is answered before. */
static void test_message_split_across_reads(void)
{
    server s = serve(NULL);
    int c = client(s.port);
    char req[1024], ans[8192];
    size_t n = tcp_register(req, sizeof req, 2, "0");
    put(c, req, 40);
    pump(&s, 1000);
    put(c, req + 40, n - 41);
    pump(&s, 1001);
    CHECK_EQ_INT(take(c, ans, sizeof ans, 50), 0);
    CHECK_EQ_INT(tcp_stats(&s)->buffered > 0, 1); /* the partial message is held */
    put(c, req + n - 1, 1);
    pump(&s, 1002);
    CHECK(take(c, ans, sizeof ans, 200) > 0);
    CHECK_EQ_INT(count(ans, "SIP/2.0 401"), 1);
    CHECK_EQ_INT(tcp_stats(&s)->buffered, 0); /* and given back once complete */
    close(c);
    unserve(&s);
}

/* Twenty REGISTERs and CRLF keep-alives (RFC 5626 §3.5.1) in one write:
 * twenty answers; the keep-alive bytes are counted and skipped. */
static void test_many_messages_in_one_read(void)
{
    server s = serve(NULL);
    int c = client(s.port);
    static char burst[32768];
    char ans[65536];
    size_t len = 0;
    for (int i = 0; i < 20; i++) {
        memcpy(burst + len, "\r\n\r\n", 4);
        len += 4;
        len += tcp_register(burst + len, sizeof burst - len, 100 + i, "0");
    }
    put(c, burst, len);
    pump(&s, 1000);
    take(c, ans, sizeof ans, 200);
    CHECK_EQ_INT(count(ans, "SIP/2.0 401 Unauthorized\r\n"), 20);
    CHECK_EQ_INT(tcp_stats(&s)->messages_in, 20);
    CHECK_EQ_INT(tcp_stats(&s)->keepalive_bytes, 80);
    close(c);
    unserve(&s);
}

/* The garbage policy: a Content-Length that is no number cannot be framed;
 * the head is a request with a Via, so it is answered 400 with the reason,
 * noted for the caller's events, and the connection closes. */
static void test_framing_error_answered_then_closed(void)
{
    server s = serve(NULL);
    int c = client(s.port), other = client(s.port);
    char req[1024], ans[8192];
    put(c, req, tcp_register(req, sizeof req, 3, "ten"));
    pump(&s, 1000);
    CHECK(take(c, ans, sizeof ans, 200) > 0);
    CHECK(strncmp(ans, "SIP/2.0 400 Content-Length must be a non-negative integer\r\n", 59) == 0);
    CHECK(strstr(ans, "Call-ID: tcp-3\r\n") && strstr(ans, "Content-Length: 0\r\n"));
    CHECK(closed_by_peer(c));
    CHECK_EQ_INT(gb_reg_tcp_refusal_count(s.rt), 1);
    const gb_tcp_refusal_note *note = gb_reg_tcp_refusals(s.rt);
    CHECK_EQ_INT(note->status, 400);
    CHECK_EQ_INT(note->answered, 1);
    CHECK_EQ_INT(note->peer.transport, GB_TRANSPORT_TCP);
    CHECK_EQ_INT(tcp_stats(&s)->closed[GB_TCP_CLOSED_GARBAGE], 1);
    /* the other connection is untouched */
    put(other, req, tcp_register(req, sizeof req, 4, "0"));
    pump(&s, 1001);
    CHECK(take(other, ans, sizeof ans, 200) > 0 && strncmp(ans, "SIP/2.0 401", 11) == 0);
    close(c);
    close(other);
    unserve(&s);
}

/* A Content-Length beyond the message limit (64 KiB by default) can never
 * be held: 513 with the reason at once, not after the incomplete timeout,
 * then the connection closes. */
static void test_too_large_answered_513_then_closed(void)
{
    server s = serve(NULL);
    int c = client(s.port);
    char req[1024], ans[8192];
    put(c, req, tcp_register(req, sizeof req, 5, "70000"));
    pump(&s, 1000);
    CHECK(take(c, ans, sizeof ans, 200) > 0);
    CHECK(strncmp(ans, "SIP/2.0 513 ", 12) == 0);
    CHECK(strstr(ans, "Call-ID: tcp-5\r\n") != NULL);
    CHECK(closed_by_peer(c));
    CHECK_EQ_INT(tcp_stats(&s)->closed[GB_TCP_CLOSED_GARBAGE], 1);
    CHECK_EQ_INT(tcp_stats(&s)->refusals_answered, 1);
    close(c);
    unserve(&s);
}

/* Bytes that are not a request: no answer is possible, the connection
 * closes all the same. */
static void test_garbage_without_a_request_closes(void)
{
    server s = serve(NULL);
    int c = client(s.port);
    char ans[1024];
    put(c, "THIS IS NOT SIP\r\nat all\r\n\r\n", 27);
    pump(&s, 1000);
    CHECK_EQ_INT(take(c, ans, sizeof ans, 200), -1); /* closed, nothing said */
    CHECK_EQ_INT(tcp_stats(&s)->refusals, 1);
    CHECK_EQ_INT(tcp_stats(&s)->refusals_answered, 0);
    close(c);
    unserve(&s);
}

/* The refusal read from a head: requests with a Via get one, Content-Length
 * lines dropped; responses, ACKs and heads without Via get none. */
static void test_refusal_from_a_head(void)
{
    static const char bad_length[] =
        "REGISTER sip:3402000000 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKx\r\n"
        "From: <sip:a@b>;tag=9\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 7 REGISTER\r\n"
        "l: -5\r\nContent-Length : 99999999999\r\n\r\nbody";
    char out[2048];
    size_t n = gb_tcp_refusal(bad_length, sizeof bad_length - 1, 65536, 400, "Bad length",
                              "tag1", out, sizeof out);
    out[n] = '\0';
    CHECK(n > 0);
    CHECK(strncmp(out, "SIP/2.0 400 Bad length\r\n", 24) == 0);
    CHECK(strstr(out, "Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKx\r\n") != NULL);
    CHECK(strstr(out, "To: <sip:a@b>;tag=tag1\r\n") != NULL);
    CHECK(strstr(out, "CSeq: 7 REGISTER\r\n") != NULL);
    CHECK_EQ_INT(count(out, "Content-Length"), 1);
    CHECK(strstr(out, "Content-Length: 0\r\n\r\n") != NULL);
    /* a head cut before its blank line is read to its last whole line */
    n = gb_tcp_refusal(bad_length, 120, 65536, 513, "Too large", "t", out, sizeof out);
    out[n] = '\0';
    CHECK(n > 0 && strncmp(out, "SIP/2.0 513 Too large\r\n", 23) == 0);
    static const char response[] = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKy\r\n"
                                   "Content-Length: x\r\n\r\n";
    CHECK_EQ_INT(gb_tcp_refusal(response, sizeof response - 1, 65536, 400, "r", "t", out,
                                sizeof out), 0);
    static const char ack[] = "ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKz\r\n"
                              "Content-Length: x\r\n\r\n";
    CHECK_EQ_INT(gb_tcp_refusal(ack, sizeof ack - 1, 65536, 400, "r", "t", out, sizeof out), 0);
    static const char no_via[] = "REGISTER sip:a SIP/2.0\r\nContent-Length: x\r\n\r\n";
    CHECK_EQ_INT(gb_tcp_refusal(no_via, sizeof no_via - 1, 65536, 400, "r", "t", out,
                                sizeof out), 0);
    CHECK_EQ_INT(gb_tcp_refusal("REGISTER", 8, 65536, 400, "r", "t", out, sizeof out), 0);
}

/* Issue 14 / RFC 4475 §3.1.2.7, §3.3.8: the refusal reads past a malformed
 * request line and a second CSeq, as the registrar does for a datagram:
 * the answer echoes the readable headers, never the start line. */
static void test_refusal_reads_past_what_the_strict_parse_refused(void)
{
    static const char bad[] =
        "REGISTER <sip:3402000000> SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKw\r\n"
        "From: <sip:a@b>;tag=9\r\nTo: <sip:a@b>\r\nCall-ID: c2\r\nCSeq: 7 REGISTER\r\n"
        "CSeq: 8 REGISTER\r\nContent-Length: 0\r\n\r\n";
    char out[2048];
    size_t n = gb_tcp_refusal(bad, sizeof bad - 1, 65536, 400, "Request-URI in <>", "t3", out,
                              sizeof out);
    out[n] = '\0';
    CHECK(n > 0 && strncmp(out, "SIP/2.0 400 Request-URI in <>\r\n", 31) == 0);
    CHECK(strstr(out, "branch=z9hG4bKw") != NULL);
    CHECK(strstr(out, "Call-ID: c2\r\n") != NULL);
    CHECK(strstr(out, "<sip:3402000000>") == NULL);
}

/* Issue 14: a Content-Length larger than what arrives holds the
 * connection only incomplete_ms from the message's first byte: then 400
 * and close.  Nothing happens before the deadline the pump reports. */
static void test_incomplete_message_times_out(void)
{
    gb_tcp_config cfg;
    gb_tcp_config_default(&cfg);
    cfg.incomplete_ms = 5000;
    server s = serve(&cfg);
    int c = client(s.port);
    char req[1024], ans[8192];
    put(c, req, tcp_register(req, sizeof req, 5, "50"));
    pump(&s, 1000);
    gb_tcp *t = gb_reg_tcp_pump(s.rt);
    CHECK_EQ_INT(gb_tcp_next_deadline(t), 6000);
    gb_tcp_handle_timer(t, 5999);
    CHECK_EQ_INT(take(c, ans, sizeof ans, 50), 0);
    gb_tcp_handle_timer(t, 6000);
    CHECK(take(c, ans, sizeof ans, 200) > 0);
    CHECK(strncmp(ans, "SIP/2.0 400 Incomplete message", 30) == 0);
    CHECK(closed_by_peer(c));
    CHECK_EQ_INT(tcp_stats(&s)->closed[GB_TCP_CLOSED_INCOMPLETE], 1);
    CHECK_EQ_INT(gb_tcp_next_deadline(t), INT64_MAX);
    close(c);
    unserve(&s);
}

/* A slow sender (one byte a second) makes progress but never completes
 * the message in time: the count runs from the message's first byte, not
 * from the last one; its head is readable, so it is answered 400. */
static void test_slow_sender_is_evicted(void)
{
    gb_tcp_config cfg;
    gb_tcp_config_default(&cfg);
    cfg.incomplete_ms = 5000;
    cfg.idle_ms = 60000;
    server s = serve(&cfg);
    gb_tcp *t = gb_reg_tcp_pump(s.rt);
    int c = client(s.port);
    char req[1024], ans[8192];
    put(c, req, tcp_register(req, sizeof req, 6, "20"));
    pump(&s, 1000);
    for (int sec = 1; sec < 5; sec++) {
        put(c, "x", 1);
        pump(&s, 1000 + 1000 * sec);
        gb_tcp_handle_timer(t, 1000 + 1000 * sec);
    }
    CHECK_EQ_INT(tcp_stats(&s)->open, 1);
    CHECK_EQ_INT(gb_tcp_next_deadline(t), 6000);
    gb_tcp_handle_timer(t, 6000);
    CHECK(take(c, ans, sizeof ans, 200) > 0);
    CHECK(strncmp(ans, "SIP/2.0 400 Incomplete message", 30) == 0);
    CHECK(strstr(ans, "Call-ID: tcp-6\r\n") != NULL);
    CHECK(closed_by_peer(c));
    CHECK_EQ_INT(tcp_stats(&s)->closed[GB_TCP_CLOSED_INCOMPLETE], 1);
    close(c);
    unserve(&s);
}

/* A connection nothing arrives on closes after idle_ms; traffic on
 * another moves its own deadline on. */
static void test_idle_connections_close(void)
{
    gb_tcp_config cfg;
    gb_tcp_config_default(&cfg);
    cfg.idle_ms = 10000;
    server s = serve(&cfg);
    gb_tcp *t = gb_reg_tcp_pump(s.rt);
    int quiet = client(s.port);
    pump(&s, 1000);
    int busy = client(s.port);
    pump(&s, 2000);
    char req[1024], ans[8192];
    put(busy, req, tcp_register(req, sizeof req, 7, "0"));
    pump(&s, 8000);
    take(busy, ans, sizeof ans, 100);
    CHECK_EQ_INT(gb_tcp_next_deadline(t), 11000);
    gb_tcp_handle_timer(t, 11000);
    CHECK(closed_by_peer(quiet));
    CHECK_EQ_INT(tcp_stats(&s)->open, 1);
    CHECK_EQ_INT(gb_tcp_next_deadline(t), 18000);
    gb_tcp_handle_timer(t, 18000);
    CHECK(closed_by_peer(busy));
    CHECK_EQ_INT(tcp_stats(&s)->closed[GB_TCP_CLOSED_IDLE], 2);
    close(quiet);
    close(busy);
    unserve(&s);
}

/* max_buffered: when a partial message needs room the oldest partial
 * message of another connection is refused (400, evicted) first. */
static void test_buffer_limit_refuses_the_oldest_partial(void)
{
    gb_tcp_config cfg;
    gb_tcp_config_default(&cfg);
    cfg.max_buffered = 2048;
    server s = serve(&cfg);
    int a = client(s.port), b = client(s.port), c = client(s.port);
    char req[1024], ans[8192];
    size_t n = tcp_register(req, sizeof req, 8, "400"); /* ~380 bytes: 512 held */
    put(a, req, n);
    pump(&s, 1000);
    put(b, req, n);
    pump(&s, 1001);
    put(c, req, n);
    pump(&s, 1002);
    CHECK_EQ_INT(tcp_stats(&s)->buffered, 1536);
    int d = client(s.port);
    char big[1024];
    memset(big, 'x', sizeof big);
    size_t head = tcp_register(req, sizeof req, 9, "2000");
    put(d, req, head);
    put(d, big, 300); /* ~680 bytes: 1024 held, so one 512 must go */
    pump(&s, 1003);
    CHECK(take(a, ans, sizeof ans, 200) > 0);
    CHECK(strncmp(ans, "SIP/2.0 400 Incomplete message (evicted", 39) == 0);
    CHECK(closed_by_peer(a));
    CHECK_EQ_INT(tcp_stats(&s)->closed[GB_TCP_CLOSED_BUFFERS], 1);
    CHECK_EQ_INT(tcp_stats(&s)->open, 3);
    CHECK(tcp_stats(&s)->buffered <= 2048);
    close(a);
    close(b);
    close(c);
    close(d);
    unserve(&s);
}

/* max_connections: the rest are accepted and closed at once, counted. */
static void test_max_connections_refuses_and_counts(void)
{
    gb_tcp_config cfg;
    gb_tcp_config_default(&cfg);
    cfg.max_connections = 3;
    server s = serve(&cfg);
    int c[5];
    for (int i = 0; i < 5; i++)
        c[i] = client(s.port);
    pump(&s, 1000);
    CHECK_EQ_INT(tcp_stats(&s)->accepted, 3);
    CHECK_EQ_INT(tcp_stats(&s)->refused_max, 2);
    CHECK_EQ_INT(tcp_stats(&s)->open, 3);
    CHECK(closed_by_peer(c[3]) && closed_by_peer(c[4]));
    /* one goes, one more fits */
    close(c[0]);
    pump(&s, 1001);
    int again = client(s.port);
    pump(&s, 1002);
    CHECK_EQ_INT(tcp_stats(&s)->accepted, 4);
    CHECK_EQ_INT(tcp_stats(&s)->open_peak, 3);
    for (int i = 1; i < 5; i++)
        close(c[i]);
    close(again);
    unserve(&s);
}

/* A peer that does not read its answers is closed once max_unsent bytes
 * wait; sends to it then report the connection gone. */
static void test_peer_that_does_not_read_is_closed(void)
{
    gb_tcp_config cfg;
    gb_tcp_config_default(&cfg);
    cfg.max_unsent = 65536;
    server s = serve(&cfg);
    gb_reg_tcp_deliver(s.rt, 1); /* to learn the connection's id */
    int c = client(s.port);
    char req[1024];
    put(c, req, tcp_register(req, sizeof req, 10, "0"));
    pump(&s, 1000);
    CHECK_EQ_INT(gb_reg_tcp_frame_count(s.rt), 1);
    uint64_t id = gb_reg_tcp_frames(s.rt)->peer.conn_id;
    static char chunk[262144];
    memset(chunk, 'a', sizeof chunk);
    int rc = 0, sends = 0;
    while (rc == 0 && sends < 400) {
        rc = gb_reg_tcp_send(s.rt, id, chunk, sizeof chunk);
        sends++;
    }
    CHECK_EQ_INT(rc, -2);
    CHECK_EQ_INT(tcp_stats(&s)->closed[GB_TCP_CLOSED_UNSENT], 1);
    CHECK_EQ_INT(gb_reg_tcp_send(s.rt, id, "x", 1), -1);
    CHECK_EQ_INT(tcp_stats(&s)->send_gone, 1);
    CHECK_EQ_INT(tcp_stats(&s)->buffered, 0);
    close(c);
    unserve(&s);
}

/* Answers later (a password looked up) go by connection id; once the
 * connection closed, its id never reaches the connection that reuses its
 * record. */
static void test_later_answers_by_id(void)
{
    server s = serve(NULL);
    gb_reg_tcp_deliver(s.rt, 1);
    int c = client(s.port);
    char req[1024], ans[8192];
    put(c, req, tcp_register(req, sizeof req, 11, "0"));
    pump(&s, 1000);
    CHECK_EQ_INT(gb_reg_tcp_frame_count(s.rt), 1);
    const gb_tcp_frame *fr = gb_reg_tcp_frames(s.rt);
    uint64_t id = fr->peer.conn_id;
    CHECK_EQ_INT(fr->len, strlen(req));
    CHECK(memcmp(gb_reg_tcp_frame_data(s.rt) + fr->off, req, fr->len) == 0);
    gb_reg_tcp_frames_clear(s.rt);
    CHECK_EQ_INT(gb_reg_tcp_send(s.rt, id, "SIP/2.0 403 Forbidden\r\n\r\n", 25), 0);
    CHECK(take(c, ans, sizeof ans, 200) == 25);
    close(c);
    pump(&s, 1001);
    int c2 = client(s.port); /* takes the freed record */
    pump(&s, 1002);
    CHECK_EQ_INT(tcp_stats(&s)->open, 1);
    CHECK_EQ_INT(gb_reg_tcp_send(s.rt, id, "stale", 5), -1);
    CHECK_EQ_INT(take(c2, ans, sizeof ans, 50), 0);
    close(c2);
    unserve(&s);
}

/* ---- the fleet on TCP ------------------------------------------------------------ */

typedef struct {
    gb_fleet *f;
    gb_fleet_io *io;
    gb_fleet_tcp *ft;
} devices;

static devices fleet_tcp(uint16_t port, int n, const char *const *sources, size_t nsrc)
{
    devices d = {.f = fleet(port, n, GB_DEV_TCP)};
    d.io = gb_fleet_io_new(d.f);
    gb_tcp_config cfg;
    gb_tcp_config_default(&cfg);
    const char *why;
    d.ft = gb_fleet_tcp_new(d.f, d.io, &cfg, &why);
    CHECK(d.ft != NULL);
    if (nsrc)
        CHECK_EQ_INT(gb_fleet_tcp_sources(d.ft, sources, nsrc, &why), 0);
    return d;
}

static void fleet_done(devices *d)
{
    gb_fleet_tcp_free(d->ft);
    gb_fleet_io_free(d->io);
    gb_fleet_free(d->f);
}

/* Both sides, until the fleet has nothing registering or `ms` passed. */
static void converse(server *s, devices *d, int64_t now, int rounds)
{
    struct pollfd pf[2] = {{.fd = s ? gb_tcp_fd(gb_reg_tcp_pump(s->rt)) : -1, .events = POLLIN},
                           {.fd = gb_tcp_fd(gb_fleet_tcp_pump(d->ft)), .events = POLLIN}};
    for (int k = 0; k < rounds; k++) {
        gb_fleet_tcp_flush(d->ft, now);
        if (poll(pf, 2, 20) <= 0 && !gb_fleet_out_count(d->f))
            continue;
        if (s)
            gb_reg_tcp_run(s->rt, now, 0);
        gb_fleet_tcp_run(d->ft, now);
        if (s)
            drain_events(s->r);
    }
    gb_fleet_events_clear(d->f);
}

/* GB/T 28181-2022 §9.1.1 f: each device registers over its own
 * connection, from the source addresses in turn, its Via naming the
 * connection's own address; the registrar's bindings are TCP. */
static void test_fleet_registers_each_device_on_its_connection(void)
{
    server s = serve(NULL);
    static const char *const src[] = {"127.0.0.1", "127.0.0.2"};
    devices d = fleet_tcp(s.port, 6, src, 2);
    gb_fleet_io_trace(d.io, 3);
    CHECK_EQ_INT(gb_fleet_tcp_start_range(d.ft, 0, 6, 1000), 6);
    converse(&s, &d, 1000, 40);
    for (uint32_t i = 0; i < 6; i++)
        CHECK_EQ_INT(gb_fleet_state(d.f, i), GB_DEV_REGISTERED);
    CHECK_EQ_INT(gb_fleet_tcp_stats_get(d.ft)->opened, 6);
    CHECK_EQ_INT(gb_tcp_stats_get(gb_fleet_tcp_pump(d.ft))->connected, 6);
    CHECK_EQ_INT(tcp_stats(&s)->open, 6);
    CHECK_EQ_INT(gb_registrar_binding_count(s.r), 6);
    gb_binding_view v;
    char ip[64];
    CHECK(gb_registrar_binding_get(s.r, "34020000001320000003", 20, &v));
    CHECK_EQ_INT(v.source.transport, GB_TRANSPORT_TCP);
    ip[gb_peer_ip_text(&v.source, ip, sizeof ip)] = '\0';
    CHECK(strcmp(ip, "127.0.0.2") == 0); /* device 3: the second source */
    /* its REGISTER, 401, REGISTER, 200 are in the trace; Via names its port */
    CHECK_EQ_INT(gb_fleet_io_trace_count(d.io), 4);
    const gb_trace_item *tr = gb_fleet_io_trace_items(d.io);
    char via[64];
    snprintf(via, sizeof via, "Via: SIP/2.0/TCP 127.0.0.2:%u;", (unsigned)v.source.port);
    CHECK(memmem(gb_fleet_io_trace_data(d.io) + tr[0].off, tr[0].len, via, strlen(via)));
    CHECK(tr[0].sent && !tr[1].sent);
    /* keepalives go on the same connections */
    for (uint32_t i = 0; i < 6; i++)
        gb_fleet_send_keepalive(d.f, i, 2000);
    converse(&s, &d, 2000, 20);
    CHECK_EQ_INT(gb_fleet_get_stats(d.f)->keepalives_answered, 6);
    CHECK_EQ_INT(gb_fleet_tcp_stats_get(d.ft)->opened, 6);
    fleet_done(&d);
    unserve(&s);
}

/* One device starting to register with a listener of the test's own: its
 * fleet, the listener in *l, the accepted connection in *peer (its
 * REGISTER waiting there) and the device's address in *from. */
static devices one_device_connected(int *l, int *peer, struct sockaddr_in *from)
{
    uint16_t port;
    *l = listener(&port);
    devices d = fleet_tcp(port, 1, NULL, 0);
    gb_fleet_tcp_start_range(d.ft, 0, 1, 1000);
    converse(NULL, &d, 1000, 3);
    struct pollfd pf = {.fd = *l, .events = POLLIN};
    CHECK(poll(&pf, 1, 1000) == 1);
    socklen_t fl = sizeof *from;
    *peer = accept(*l, (struct sockaddr *)from, &fl);
    CHECK(*peer >= 0);
    return d;
}

/* A device's connection is tuned the same way: its REGISTER goes at
 * once, and the ACK of each answer rides on its next request. */
static void test_fleet_connection_is_tuned_for_request_and_answer(void)
{
    int l, peer;
    struct sockaddr_in dev;
    devices d = one_device_connected(&l, &peer, &dev);
    int fd = socket_by_address(&dev, 0);
    CHECK(fd >= 0 && fd != peer);
    if (fd >= 0)
        check_request_answer_tuning(fd);
    close(peer);
    close(l);
    fleet_done(&d);
}

/* Nothing listens: the connect fails, and the device fails with reason
 * `transport` (and retries later, as after any failure). */
static void test_fleet_refused_connect_is_a_transport_error(void)
{
    uint16_t port;
    int l = listener(&port);
    close(l); /* the port is free now: connects are refused */
    devices d = fleet_tcp(port, 1, NULL, 0);
    gb_fleet_tcp_start_range(d.ft, 0, 1, 1000);
    gb_fleet_events_clear(d.f);
    converse(NULL, &d, 1000, 10);
    CHECK_EQ_INT(gb_fleet_state(d.f, 0), GB_DEV_FAILED);
    uint16_t status;
    gb_dev_reason reason;
    gb_fleet_last_failure(d.f, 0, &status, &reason);
    CHECK_EQ_INT(reason, GB_DEV_R_TRANSPORT);
    const gb_tcp_stats *st = gb_tcp_stats_get(gb_fleet_tcp_pump(d.ft));
    CHECK_EQ_INT(st->connect_failed, 1);
    CHECK_EQ_INT(st->last_errno, ECONNREFUSED);
    fleet_done(&d);
}

/* The platform closes the connection while a REGISTER waits for its
 * answer: a transport error; the next message opens a new connection. */
static void test_fleet_lost_connection_fails_the_transaction(void)
{
    int l, peer;
    struct sockaddr_in dev;
    devices d = one_device_connected(&l, &peer, &dev);
    struct pollfd pf = {.fd = l, .events = POLLIN};
    char buf[4096];
    CHECK(take(peer, buf, sizeof buf, 100) > 0 && strncmp(buf, "REGISTER ", 9) == 0);
    close(peer);
    converse(NULL, &d, 1100, 5);
    CHECK_EQ_INT(gb_fleet_state(d.f, 0), GB_DEV_FAILED);
    CHECK_EQ_INT(gb_fleet_tcp_stats_get(d.ft)->lost, 1);
    /* the retry opens another connection */
    gb_fleet_handle_timer(d.f, gb_fleet_next_deadline(d.f));
    converse(NULL, &d, gb_fleet_next_deadline(d.f), 3);
    CHECK(poll(&pf, 1, 1000) == 1);
    peer = accept(l, NULL, NULL);
    CHECK(take(peer, buf, sizeof buf, 100) > 0 && strncmp(buf, "REGISTER ", 9) == 0);
    CHECK_EQ_INT(gb_fleet_tcp_stats_get(d.ft)->opened, 2);
    close(peer);
    close(l);
    fleet_done(&d);
}

int main(void)
{
    test_answer_on_the_connection();
    test_accepted_connection_is_tuned_for_request_and_answer();
    test_message_split_across_reads();
    test_many_messages_in_one_read();
    test_framing_error_answered_then_closed();
    test_too_large_answered_513_then_closed();
    test_garbage_without_a_request_closes();
    test_refusal_from_a_head();
    test_refusal_reads_past_what_the_strict_parse_refused();
    test_incomplete_message_times_out();
    test_slow_sender_is_evicted();
    test_idle_connections_close();
    test_buffer_limit_refuses_the_oldest_partial();
    test_max_connections_refuses_and_counts();
    test_peer_that_does_not_read_is_closed();
    test_later_answers_by_id();
    test_fleet_registers_each_device_on_its_connection();
    test_fleet_connection_is_tuned_for_request_and_answer();
    test_fleet_refused_connect_is_a_transport_error();
    test_fleet_lost_connection_fails_the_transaction();
    return CHECK_DONE("test_tcp_pump");
}
