/* tcp_pump.c - the epoll connection pump (see tcp_pump.h). */
#define _GNU_SOURCE
#include "tcp_pump.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "gb_containers.h"
#include "io_addr.h"
#include "sip_writer.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* linux/in.h, Linux 4.2 */
#endif

#define EV_BATCH 256          /* readiness events per epoll_wait */
#define RUN_ROUNDS 4          /* epoll_waits per run: the caller's loop breathes */
#define ACCEPT_BUDGET 256     /* accepts per wake of a listening socket */
#define READ_ROUNDS 4         /* reads of one connection per wake, at most */
#define MAX_LISTENERS 8
#define MAX_RECORDS (1u << 24)
#define NONE UINT32_MAX
#define LISTENER_BIT (1ull << 63)

#define INCOMPLETE_REASON "Incomplete message (Content-Length larger than what arrived)"
#define EVICTED_REASON "Incomplete message (evicted: the server's buffers are full)"

enum { C_FREE = 0, C_CONNECTING, C_OPEN, C_CLOSING };
enum { L_IDLE = 0, L_INCOMPLETE = 1 }; /* the two timer lists */

/* One connection.  Both timer lists are kept in time order for free: every
 * entry of a list has the same timeout, so appending at `now` keeps them
 * sorted, and the head is the next to expire. */
typedef struct {
    gb_peer peer;              /* conn_id: this connection's id */
    int64_t last_rx;           /* L_IDLE: when bytes last arrived (or it opened) */
    int64_t partial_since;     /* L_INCOMPLETE: first byte of the partial
                                  message (CLOSING: when it began to close) */
    char *rx, *tx;             /* a partial message; unsent bytes */
    uint32_t rx_len, rx_cap;
    uint32_t tx_off, tx_len, tx_cap;
    uint32_t tag, gen;
    uint32_t prev[2], next[2]; /* list links; next[L_IDLE] chains free slots */
    uint32_t events;           /* epoll mask registered */
    int fd;
    uint8_t state, listed[2], why; /* why: the close reason, while CLOSING */
} conn;

struct gb_tcp {
    gb_tcp_config cfg;
    gb_tcp_handlers h;
    gb_limits lim;             /* framing: max_message and lenient */
    int epfd, spare;           /* spare: a descriptor given up to shed a connection */
    int listeners[MAX_LISTENERS];
    size_t nlisteners;
    conn *c;                   /* cfg.max_connections records, touched as used */
    uint32_t hw, free_head;    /* records used so far; free chain */
    uint32_t head[2], tail[2];
    char *rx;                  /* scratch for reads: a partial message + room */
    size_t rx_cap;
    char *ans;                 /* scratch for refusals */
    size_t ans_cap;
    uint64_t tags;
    int64_t now;               /* the caller's latest now: for the handlers */
    gb_tcp_stats st;
};

void gb_tcp_config_default(gb_tcp_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_connections = 10000;
    c->max_message = 65536;
    c->incomplete_ms = 32000;
    c->max_unsent = 1u << 20;
    c->max_buffered = 64ull << 20;
}

const char *gb_tcp_close_reason_name(gb_tcp_close_reason why)
{
    static const char *const names[GB_TCP_CLOSED__COUNT] = {
        [GB_TCP_CLOSED_PEER] = "peer",           [GB_TCP_CLOSED_ERROR] = "error",
        [GB_TCP_CLOSED_CONNECT] = "connect",     [GB_TCP_CLOSED_IDLE] = "idle",
        [GB_TCP_CLOSED_INCOMPLETE] = "incomplete", [GB_TCP_CLOSED_GARBAGE] = "garbage",
        [GB_TCP_CLOSED_BUFFERS] = "buffers",     [GB_TCP_CLOSED_UNSENT] = "unsent",
        [GB_TCP_CLOSED_LOCAL] = "local"};
    return (unsigned)why < GB_TCP_CLOSED__COUNT && names[why] ? names[why] : "?";
}

/* ---- records, ids, lists ------------------------------------------------------ */

static uint64_t id_of(const gb_tcp *t, uint32_t s)
{
    return ((uint64_t)t->c[s].gen << 32) | s;
}

/* The open record of id (slot in *s), or NULL when it is gone. */
static conn *lookup(const gb_tcp *t, uint64_t id, uint32_t *s)
{
    uint32_t slot = (uint32_t)id;
    if (slot >= t->hw || t->c[slot].state == C_FREE || t->c[slot].gen != (uint32_t)(id >> 32))
        return NULL;
    *s = slot;
    return &t->c[slot];
}

static void list_remove(gb_tcp *t, int l, uint32_t s)
{
    conn *c = &t->c[s];
    if (!c->listed[l])
        return;
    if (c->prev[l] != NONE)
        t->c[c->prev[l]].next[l] = c->next[l];
    else
        t->head[l] = c->next[l];
    if (c->next[l] != NONE)
        t->c[c->next[l]].prev[l] = c->prev[l];
    else
        t->tail[l] = c->prev[l];
    c->listed[l] = 0;
}

/* To the end of list l (removed first if it was there). */
static void list_append(gb_tcp *t, int l, uint32_t s)
{
    list_remove(t, l, s);
    conn *c = &t->c[s];
    c->prev[l] = t->tail[l];
    c->next[l] = NONE;
    if (t->tail[l] != NONE)
        t->c[t->tail[l]].next[l] = s;
    else
        t->head[l] = s;
    t->tail[l] = s;
    c->listed[l] = 1;
}

/* A record for a new connection on fd (the caller checked the limit). */
static uint32_t record_new(gb_tcp *t, int fd, uint8_t state, uint32_t tag, int64_t now)
{
    uint32_t s;
    if (t->free_head != NONE) {
        s = t->free_head;
        t->free_head = t->c[s].next[L_IDLE];
    } else {
        s = t->hw++;
        t->c[s].gen = 0;
    }
    conn *c = &t->c[s];
    uint32_t gen = c->gen + 1 ? c->gen + 1 : 1;
    memset(c, 0, sizeof *c);
    c->gen = gen;
    c->fd = fd;
    c->state = state;
    c->tag = tag;
    c->last_rx = now;
    list_append(t, L_IDLE, s);
    if (state == C_CONNECTING)
        t->st.connecting++;
    else if (++t->st.open > t->st.open_peak)
        t->st.open_peak = t->st.open;
    return s;
}

static uint64_t live_count(const gb_tcp *t)
{
    return t->st.open + t->st.connecting;
}

/* ---- buffers --------------------------------------------------------------------- */

/* Room for need bytes in a connection buffer (a power of two, at least
 * 256), within max_buffered.  0, or -1. */
static int buf_reserve(gb_tcp *t, char **buf, uint32_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 256;
    while (ncap < need)
        ncap *= 2;
    if (ncap > UINT32_MAX || t->st.buffered - *cap + ncap > t->cfg.max_buffered)
        return -1;
    char *p = realloc(*buf, ncap);
    if (!p)
        return -1;
    t->st.buffered += ncap - *cap;
    if (t->st.buffered > t->st.buffered_peak)
        t->st.buffered_peak = t->st.buffered;
    *buf = p;
    *cap = (uint32_t)ncap;
    return 0;
}

static void buf_release(gb_tcp *t, char **buf, uint32_t *cap)
{
    free(*buf);
    t->st.buffered -= *cap;
    *buf = NULL;
    *cap = 0;
}

/* ---- epoll ------------------------------------------------------------------------- */

/* Register what the record's state wants: connecting, writable; open,
 * readable (and writable while bytes wait); closing, writable. */
static int watch(gb_tcp *t, uint32_t s, int add)
{
    conn *c = &t->c[s];
    uint32_t ev = c->state == C_OPEN ? EPOLLIN | EPOLLRDHUP : 0;
    if (c->state != C_OPEN || c->tx_len > c->tx_off)
        ev |= EPOLLOUT;
    if (!add && ev == c->events)
        return 0;
    struct epoll_event e = {.events = ev, .data.u64 = id_of(t, s)};
    c->events = ev;
    return epoll_ctl(t->epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &e);
}

/* ---- closing --------------------------------------------------------------------- */

static void close_slot(gb_tcp *t, uint32_t s, gb_tcp_close_reason why, int notify)
{
    conn *c = &t->c[s];
    uint64_t id = id_of(t, s);
    uint32_t tag = c->tag;
    if (c->state == C_CONNECTING)
        t->st.connecting--;
    else
        t->st.open--;
    t->st.partial_dropped += c->rx_len;
    close(c->fd); /* leaves the epoll set with it */
    buf_release(t, &c->rx, &c->rx_cap);
    buf_release(t, &c->tx, &c->tx_cap);
    list_remove(t, L_IDLE, s);
    list_remove(t, L_INCOMPLETE, s);
    c->fd = -1;
    c->state = C_FREE;
    c->rx_len = c->tx_len = c->tx_off = 0;
    c->next[L_IDLE] = t->free_head;
    t->free_head = s;
    t->st.closed[why]++;
    if (notify && t->h.closed)
        t->h.closed(t->h.arg, id, tag, why, t->now);
}

/* A connection the pump closes on its peer (refused): what it still sent is
 * read and dropped first, so that closing with unread bytes does not reset
 * the connection before the answer is read; unsent bytes are given
 * incomplete_ms to go, then dropped. */
static void close_after_answer(gb_tcp *t, uint32_t s, gb_tcp_close_reason why, int64_t now)
{
    conn *c = &t->c[s];
    for (int k = 0; k < 16 && recv(c->fd, t->ans, t->ans_cap, MSG_DONTWAIT) > 0; k++)
        ;
    t->st.partial_dropped += c->rx_len;
    buf_release(t, &c->rx, &c->rx_cap);
    c->rx_len = 0;
    list_remove(t, L_INCOMPLETE, s);
    if (c->tx_len > c->tx_off && t->cfg.incomplete_ms && c->state == C_OPEN) {
        c->state = C_CLOSING;
        c->why = (uint8_t)why;
        c->partial_since = now;
        list_append(t, L_INCOMPLETE, s);
        watch(t, s, 0);
        return;
    }
    close_slot(t, s, why, 1);
}

/* ---- writing ---------------------------------------------------------------------- */

/* Write what waits; 0, or -2 when the connection closed. */
static int flush_tx(gb_tcp *t, uint32_t s)
{
    conn *c = &t->c[s];
    while (c->tx_off < c->tx_len) {
        ssize_t w = send(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            close_slot(t, s, c->state == C_CLOSING ? c->why : GB_TCP_CLOSED_ERROR, 1);
            return -2;
        }
        c->tx_off += (uint32_t)w;
        t->st.bytes_out += (uint64_t)w;
    }
    if (c->tx_off == c->tx_len) {
        buf_release(t, &c->tx, &c->tx_cap);
        c->tx_off = c->tx_len = 0;
        if (c->state == C_CLOSING) {
            close_slot(t, s, c->why, 1);
            return -2;
        }
    }
    watch(t, s, 0);
    return 0;
}

/* Write n bytes now when nothing waits before them, keep the rest. */
static int write_slot(gb_tcp *t, uint32_t s, const char *p, size_t n)
{
    conn *c = &t->c[s];
    if (c->state == C_OPEN && c->tx_len == c->tx_off) {
        for (;;) {
            ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w >= 0) {
                t->st.bytes_out += (uint64_t)w;
                p += w;
                n -= (size_t)w;
                if (!n)
                    return 0;
                continue;
            }
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            close_slot(t, s, GB_TCP_CLOSED_ERROR, 1);
            return -2;
        }
    }
    size_t held = c->tx_len - c->tx_off;
    if (held + n > t->cfg.max_unsent) {
        close_slot(t, s, GB_TCP_CLOSED_UNSENT, 1);
        return -2;
    }
    if (c->tx_off) {
        memmove(c->tx, c->tx + c->tx_off, held);
        c->tx_off = 0;
        c->tx_len = (uint32_t)held;
    }
    if (buf_reserve(t, &c->tx, &c->tx_cap, held + n) < 0) {
        close_slot(t, s, GB_TCP_CLOSED_BUFFERS, 1);
        return -2;
    }
    memcpy(c->tx + held, p, n);
    c->tx_len = (uint32_t)(held + n);
    if (watch(t, s, 0) < 0) {
        close_slot(t, s, GB_TCP_CLOSED_ERROR, 1);
        return -2;
    }
    return 0;
}

int gb_tcp_send(gb_tcp *t, uint64_t id, const char *p, size_t n)
{
    uint32_t s;
    if (!lookup(t, id, &s) || t->c[s].state == C_CLOSING) {
        t->st.send_gone++;
        return -1;
    }
    return write_slot(t, s, p, n);
}

int gb_tcp_close(gb_tcp *t, uint64_t id, int notify)
{
    uint32_t s;
    if (!lookup(t, id, &s))
        return -1;
    close_slot(t, s, GB_TCP_CLOSED_LOCAL, notify);
    return 0;
}

int gb_tcp_alive(const gb_tcp *t, uint64_t id, uint32_t *tag)
{
    uint32_t s;
    const conn *c = lookup(t, id, &s);
    if (c && tag)
        *tag = c->tag;
    return c != NULL;
}

/* ---- refusals (the garbage policy) --------------------------------------------- */

/* Whether line p[0..n) is a Content-Length header ("l" compact form too). */
static int content_length_line(const char *p, size_t n)
{
    size_t k = 0;
    while (k < n && p[k] != ':' && p[k] != ' ' && p[k] != '\t')
        k++;
    if (!gb_ieq(p, k, "Content-Length", 14) && !gb_ieq(p, k, "l", 1))
        return 0;
    while (k < n && (p[k] == ' ' || p[k] == '\t'))
        k++;
    return k < n && p[k] == ':';
}

size_t gb_tcp_refusal(const char *head, size_t n, uint32_t max_message, unsigned status,
                      const char *reason, const char *tag, char *out, size_t cap)
{
    while (n && (*head == '\r' || *head == '\n'))
        head++, n--;
    if (n > max_message)
        n = max_message;
    const char *end = memmem(head, n, "\r\n\r\n", 4);
    size_t hlen = end ? (size_t)(end - head) + 2 : 0;
    for (size_t k = n; !end && k >= 2; k--)
        if (head[k - 2] == '\r' && head[k - 1] == '\n') {
            hlen = k;
            break;
        }
    if (!hlen)
        return 0;
    static const char tail[] = "Content-Length: 0\r\n\r\n";
    char *tmp = malloc(hlen + sizeof tail);
    if (!tmp)
        return 0;
    size_t len = 0;
    for (size_t at = 0; at < hlen;) {
        const char *eol = memchr(head + at, '\n', hlen - at);
        size_t ll = (size_t)(eol - (head + at)) + 1;
        if (at == 0 || !content_length_line(head + at, ll)) {
            memcpy(tmp + len, head + at, ll);
            len += ll;
        }
        at += ll;
    }
    memcpy(tmp + len, tail, sizeof tail - 1);
    len += sizeof tail - 1;
    size_t answer = 0;
    gb_header hs[256];
    gb_msg m;
    gb_msg_init(&m, hs, 256);
    const char *b;
    size_t blen;
    char *copy;
    /* read past what the strict parse refused, as the registrar does for a
     * datagram: the answer echoes headers, never the start line */
    if (gb_parse_past_errors(tmp, len, 0, &m, &b, &blen, &copy) == GB_OK &&
        m.kind == GB_REQUEST && m.method_id != GB_METHOD_ACK && m.first[GB_HDR_VIA]) {
        gb_writer w;
        gb_w_init(&w, out, cap);
        gb_reply_opts o = {.reason = reason, .reason_len = strlen(reason),
                           .to_tag = tag, .to_tag_len = strlen(tag)};
        if (gb_build_reply(&w, b, &m, status, &o) == 0)
            answer = w.len;
    }
    free(copy);
    free(tmp);
    return answer;
}

/* Refuse the request whose head is at head (n bytes): answer it when it
 * can be answered, tell the role, close.  head may be the record's own
 * partial message. */
static void refuse(gb_tcp *t, uint32_t s, const char *head, size_t n, unsigned status,
                   const char *reason, gb_tcp_close_reason why, int64_t now)
{
    uint64_t id = id_of(t, s);
    char tag[17];
    static const char hex[] = "0123456789abcdef";
    uint64_t r = gb_mix64(++t->tags ^ (uint64_t)(uintptr_t)t);
    for (int k = 0; k < 10; k++, r >>= 4)
        tag[k] = hex[r & 15];
    tag[10] = '\0';
    size_t len = gb_tcp_refusal(head, n, t->cfg.max_message, status, reason, tag, t->ans,
                                t->ans_cap);
    gb_peer peer = t->c[s].peer;
    t->st.refusals++;
    if (len) {
        t->st.refusals_answered++;
        if (write_slot(t, s, t->ans, len) < 0)
            s = NONE;
    }
    if (t->h.refused)
        t->h.refused(t->h.arg, id, &peer, status, reason, len > 0, now);
    uint32_t again;
    if (s != NONE && lookup(t, id, &again))
        close_after_answer(t, s, why, now);
}

/* ---- reading ----------------------------------------------------------------------- */

/* Every whole message of buf[0..len) to the role.  *used: the bytes
 * consumed.  0, or -1 when the connection closed (refused or by the role). */
static int frame_all(gb_tcp *t, uint32_t s, const char *buf, size_t len, size_t *used,
                     int *completed, int64_t now)
{
    uint64_t id = id_of(t, s);
    size_t off = 0;
    while (off < len) {
        size_t skip, mlen;
        gb_error err;
        gb_error_code rc = gb_frame(buf + off, len - off, &t->lim, &skip, &mlen, &err);
        t->st.keepalive_bytes += skip;
        off += skip;
        if (rc == GB_ERR_NEED_MORE)
            break;
        if (rc != GB_OK) {
            refuse(t, s, buf + off, len - off, err.status,
                   err.reason ? err.reason : gb_error_text(err.code), GB_TCP_CLOSED_GARBAGE,
                   now);
            return -1;
        }
        t->st.messages_in++;
        *completed = 1;
        t->h.message(t->h.arg, id, t->c[s].tag, &t->c[s].peer, buf + off, mlen, now);
        off += mlen;
        uint32_t again;
        if (!lookup(t, id, &again))
            return -1;
    }
    *used = off;
    return 0;
}

/* Make room for `need` bytes of partial message on s: when max_buffered is
 * in the way, the oldest partial messages of other connections are refused
 * first (slow senders).  0, or -1 when there is no room even so. */
static int room_for_partial(gb_tcp *t, uint32_t s, size_t need, int64_t now)
{
    conn *c = &t->c[s];
    while (buf_reserve(t, &c->rx, &c->rx_cap, need) < 0) {
        uint32_t v = t->head[L_INCOMPLETE];
        while (v != NONE && (v == s || t->c[v].state != C_OPEN))
            v = t->c[v].next[L_INCOMPLETE];
        if (v == NONE)
            return -1;
        refuse(t, v, t->c[v].rx, t->c[v].rx_len, 400, EVICTED_REASON, GB_TCP_CLOSED_BUFFERS,
               now);
        c = &t->c[s];
    }
    return 0;
}

static void read_slot(gb_tcp *t, uint32_t s, int64_t now)
{
    conn *c = &t->c[s];
    uint64_t id = id_of(t, s);
    char *buf = t->rx;
    size_t len = c->rx_len, total = 0;
    int completed = 0;
    gb_tcp_close_reason gone = 0;
    if (len)
        memcpy(buf, c->rx, len);
    for (int round = 0; round < READ_ROUNDS; round++) {
        size_t room = t->rx_cap - len;
        ssize_t n = recv(c->fd, buf + len, room, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                round--;
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                gone = errno == ECONNRESET ? GB_TCP_CLOSED_PEER : GB_TCP_CLOSED_ERROR;
            break;
        }
        if (n == 0) {
            gone = GB_TCP_CLOSED_PEER;
            break;
        }
        len += (size_t)n;
        total += (size_t)n;
        t->st.bytes_in += (uint64_t)n;
        size_t used = 0;
        if (frame_all(t, s, buf, len, &used, &completed, now) < 0)
            return;
        c = &t->c[s];
        memmove(buf, buf + used, len - used);
        len -= used;
        if ((size_t)n < room)
            break; /* the socket is empty: no need to ask again */
    }
    if (total) {
        c->last_rx = now;
        list_append(t, L_IDLE, s);
    }
    if (gone) {
        c->rx_len = 0; /* the partial held before is in buf now */
        t->st.partial_dropped += len;
        close_slot(t, s, gone, 1);
        return;
    }
    if (!len) {
        buf_release(t, &c->rx, &c->rx_cap);
        c->rx_len = 0;
        list_remove(t, L_INCOMPLETE, s);
        return;
    }
    c->rx_len = 0; /* while room is made, the partial lives in buf only */
    if (room_for_partial(t, s, len, now) < 0) {
        uint32_t again;
        if (lookup(t, id, &again)) {
            t->st.partial_dropped += len;
            close_slot(t, s, GB_TCP_CLOSED_BUFFERS, 1);
        }
        return;
    }
    c = &t->c[s];
    memcpy(c->rx, buf, len);
    c->rx_len = (uint32_t)len;
    if (!c->listed[L_INCOMPLETE] || completed) {
        c->partial_since = now; /* a new message began: its own time */
        list_append(t, L_INCOMPLETE, s);
    }
}

/* ---- accepting and connecting ----------------------------------------------------- */

/* SIP over TCP is request and answer: every message is sent at once (no
 * Nagle), and the ACK for a request waits to ride on its answer
 * (delayed-ACK "pingpong" mode, TCP_QUICKACK 0) instead of costing a
 * segment of its own each way; the kernel would only learn that pattern
 * after the first exchange, and a registration is two.  Without an answer
 * within the delayed-ACK time the ACK goes alone, as usual.  Set before
 * connect, it also lets the handshake's last ACK ride on the first request
 * (the "save one ACK" path of the SYN-ACK). */
static void request_answer_socket(int fd)
{
    int one = 1, zero = 0;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero);
}

/* Out of descriptors: give up the spare one to take the waiting connection
 * and close it, so the listening socket does not stay readable forever. */
static int shed_one(gb_tcp *t, int lfd)
{
    if (t->spare < 0)
        return -1;
    close(t->spare);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    t->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0 ? 0 : -1;
}

static void accept_some(gb_tcp *t, int lfd, int64_t now)
{
    for (int k = 0; k < ACCEPT_BUDGET; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                t->st.last_errno = errno;
                if (shed_one(t, lfd) == 0) {
                    t->st.refused_fd_limit++;
                    continue;
                }
            }
            break;
        }
        if (live_count(t) >= t->cfg.max_connections) {
            close(fd);
            t->st.refused_max++;
            continue;
        }
        request_answer_socket(fd);
        uint32_t s = record_new(t, fd, C_OPEN, 0, now);
        gb_io_peer_from_sockaddr(&ss, GB_TRANSPORT_TCP, id_of(t, s), &t->c[s].peer);
        if (watch(t, s, 1) < 0) {
            t->st.last_errno = errno;
            close_slot(t, s, GB_TCP_CLOSED_ERROR, 0);
            continue;
        }
        t->st.accepted++;
    }
}

int64_t gb_tcp_connect(gb_tcp *t, const struct sockaddr *dst, socklen_t dst_len,
                       const struct sockaddr *src, socklen_t src_len, uint32_t tag,
                       gb_peer *local, int64_t now)
{
    t->now = now;
    if (live_count(t) >= t->cfg.max_connections)
        return -ENOSPC;
    int fd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        t->st.last_errno = e;
        t->st.connect_failed++;
        if (e == EMFILE || e == ENFILE)
            t->st.refused_fd_limit++;
        return -e;
    }
    request_answer_socket(fd);
    int one = 1;
    if (src) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, src, src_len) < 0)
            goto failed;
    }
    if (connect(fd, dst, dst_len) < 0 && errno != EINPROGRESS)
        goto failed;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        goto failed;
    uint32_t s = record_new(t, fd, C_CONNECTING, tag, now);
    struct sockaddr_storage ps;
    memcpy(&ps, dst, dst_len < sizeof ps ? dst_len : sizeof ps);
    gb_io_peer_from_sockaddr(&ps, GB_TRANSPORT_TCP, id_of(t, s), &t->c[s].peer);
    if (local)
        gb_io_peer_from_sockaddr(&ss, GB_TRANSPORT_TCP, id_of(t, s), local);
    if (watch(t, s, 1) < 0) {
        int e = errno;
        close_slot(t, s, GB_TCP_CLOSED_ERROR, 0);
        t->st.last_errno = e;
        return -e;
    }
    return (int64_t)id_of(t, s);
failed:;
    int e = errno;
    close(fd);
    t->st.last_errno = e;
    t->st.connect_failed++;
    return -e;
}

/* An outgoing connection became writable (or failed). */
static void connect_done(gb_tcp *t, uint32_t s, uint32_t events)
{
    conn *c = &t->c[s];
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
        err = errno;
    if (!err && !(events & EPOLLOUT))
        return; /* still on its way */
    if (err) {
        t->st.connect_failed++;
        t->st.last_errno = err;
        close_slot(t, s, GB_TCP_CLOSED_CONNECT, 1);
        return;
    }
    c->state = C_OPEN;
    t->st.connecting--;
    if (++t->st.open > t->st.open_peak)
        t->st.open_peak = t->st.open;
    t->st.connected++;
    flush_tx(t, s);
}

/* ---- the pump ------------------------------------------------------------------------ */

gb_tcp *gb_tcp_new(const gb_tcp_config *cfg, const gb_tcp_handlers *h, const char **why)
{
    *why = NULL;
    if (!cfg->max_connections || cfg->max_connections > MAX_RECORDS) {
        *why = "max_connections must be from 1 to 16777216";
        return NULL;
    }
    if (cfg->max_message < 1024 || !h->message) {
        *why = "max_message below 1024, or no message handler";
        return NULL;
    }
    gb_tcp *t = calloc(1, sizeof *t);
    if (!t) {
        *why = "out of memory";
        return NULL;
    }
    t->cfg = *cfg;
    t->h = *h;
    gb_limits_default(&t->lim);
    t->lim.max_message = cfg->max_message;
    t->lim.lenient = cfg->lenient;
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    t->spare = -1;
    t->free_head = NONE;
    t->head[0] = t->head[1] = t->tail[0] = t->tail[1] = NONE;
    t->rx_cap = 2 * (size_t)cfg->max_message;
    t->ans_cap = (size_t)cfg->max_message + 1024;
    /* calloc of a large array maps zero pages: records cost memory as used */
    t->c = calloc(cfg->max_connections, sizeof *t->c);
    t->rx = malloc(t->rx_cap);
    t->ans = malloc(t->ans_cap);
    if (t->epfd < 0 || !t->c || !t->rx || !t->ans) {
        *why = t->epfd < 0 ? "epoll_create1 failed" : "out of memory";
        gb_tcp_free(t);
        return NULL;
    }
    return t;
}

void gb_tcp_free(gb_tcp *t)
{
    if (!t)
        return;
    for (uint32_t s = 0; s < t->hw; s++)
        if (t->c[s].state != C_FREE)
            close_slot(t, s, GB_TCP_CLOSED_LOCAL, 0);
    if (t->epfd >= 0)
        close(t->epfd);
    if (t->spare >= 0)
        close(t->spare);
    free(t->c);
    free(t->rx);
    free(t->ans);
    free(t);
}

int gb_tcp_fd(const gb_tcp *t)
{
    return t->epfd;
}

int gb_tcp_listen(gb_tcp *t, int fd)
{
    if (t->nlisteners == MAX_LISTENERS)
        return -ENOSPC;
    if (t->spare < 0)
        t->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = LISTENER_BIT | (uint32_t)fd};
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &e) < 0)
        return -errno;
    t->listeners[t->nlisteners++] = fd;
    return 0;
}

void gb_tcp_unlisten(gb_tcp *t, int fd)
{
    for (size_t k = 0; k < t->nlisteners; k++)
        if (t->listeners[k] == fd) {
            epoll_ctl(t->epfd, EPOLL_CTL_DEL, fd, NULL);
            t->listeners[k] = t->listeners[--t->nlisteners];
            return;
        }
}

static void dispatch(gb_tcp *t, const struct epoll_event *e, int64_t now)
{
    if (e->data.u64 & LISTENER_BIT) {
        accept_some(t, (int)(e->data.u64 & 0x7fffffff), now);
        return;
    }
    uint32_t s;
    conn *c = lookup(t, e->data.u64, &s);
    if (!c)
        return; /* closed earlier in this batch */
    if (c->state == C_CONNECTING) {
        connect_done(t, s, e->events);
        return;
    }
    if ((e->events & EPOLLOUT) && flush_tx(t, s) < 0)
        return;
    if (t->c[s].state == C_OPEN && (e->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        read_slot(t, s, now);
    else if (t->c[s].state == C_CLOSING && (e->events & (EPOLLHUP | EPOLLERR)))
        close_slot(t, s, t->c[s].why, 1);
}

long gb_tcp_run(gb_tcp *t, int64_t now)
{
    struct epoll_event ev[EV_BATCH];
    long handled = 0;
    t->now = now;
    for (int round = 0; round < RUN_ROUNDS; round++) {
        int n = epoll_wait(t->epfd, ev, EV_BATCH, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return handled ? handled : -errno;
        }
        for (int i = 0; i < n; i++)
            dispatch(t, &ev[i], now);
        handled += n;
        if (n < EV_BATCH)
            break;
    }
    return handled;
}

int64_t gb_tcp_next_deadline(const gb_tcp *t)
{
    int64_t d = INT64_MAX;
    if (t->cfg.idle_ms && t->head[L_IDLE] != NONE)
        d = t->c[t->head[L_IDLE]].last_rx + t->cfg.idle_ms;
    if (t->cfg.incomplete_ms && t->head[L_INCOMPLETE] != NONE) {
        int64_t x = t->c[t->head[L_INCOMPLETE]].partial_since + t->cfg.incomplete_ms;
        if (x < d)
            d = x;
    }
    return d;
}

void gb_tcp_handle_timer(gb_tcp *t, int64_t now)
{
    uint32_t s;
    t->now = now;
    while (t->cfg.incomplete_ms && (s = t->head[L_INCOMPLETE]) != NONE &&
           t->c[s].partial_since + t->cfg.incomplete_ms <= now) {
        if (t->c[s].state == C_CLOSING)
            close_slot(t, s, t->c[s].why, 1); /* its answer never went */
        else
            refuse(t, s, t->c[s].rx, t->c[s].rx_len, 400, INCOMPLETE_REASON,
                   GB_TCP_CLOSED_INCOMPLETE, now);
    }
    while (t->cfg.idle_ms && (s = t->head[L_IDLE]) != NONE &&
           t->c[s].last_rx + t->cfg.idle_ms <= now)
        close_slot(t, s, GB_TCP_CLOSED_IDLE, 1);
}

const gb_tcp_stats *gb_tcp_stats_get(const gb_tcp *t)
{
    return &t->st;
}
