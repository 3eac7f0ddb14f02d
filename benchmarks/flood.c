/*
 * flood.c - the attacker's side of benchmarks/bench_flood.py: UDP datagrams
 * at a paced rate from several loopback source addresses, sent in batches
 * with sendmmsg.  Bounded in time and count; loopback only.
 *
 *   flood --to 127.0.0.1:5060 --kind register|garbage|collide
 *         [--rate 50000] [--seconds 10] [--count N] [--sources 8]
 *
 * register  unauthenticated REGISTERs for random 20-digit device IDs, each
 *           a new transaction (random branch and Call-ID): every one costs
 *           a challenge.
 * collide   the same REGISTERs, with Via branches chosen offline so that
 *           their transaction keys collide under the registrar's old,
 *           unkeyed FNV-1a (csrc/tests/old_hash.h): all in one 256-slot
 *           window of the 131,072-slot index (issue 14's attack).
 * garbage   random bytes, half of them behind a SIP-looking request line.
 *
 * Sources are 127.0.0.2 .. 127.0.0.(1 + sources), one socket each.  Prints
 * one JSON line: sent, seconds, the rate reached.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gb_containers.h"
#include "old_hash.h"

enum { BATCH = 64, MAXSRC = 32, DGRAM = 1400, COLLIDING = 100000 };

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t *colliding;

/* Branches whose old transaction key (old_txn_key()) lands in the first
 * 256 slots: the key's hash carried on over the digits, so each try costs
 * a few dozen multiplications, not a snprintf. */
static void find_colliding(void)
{
    colliding = malloc(COLLIDING * sizeof *colliding);
    if (!colliding)
        exit(1);
    static const char head[] = "REGISTER|z9hG4bK", tail[] = "|10.0.0.5:5061";
    uint64_t h0 = old_fnv_add(OLD_FNV_START, head, sizeof head - 1);
    int n = 0;
    for (uint64_t v = 0; n < COLLIDING; v++) {
        char digits[24];
        int d = 0;
        uint64_t x = v;
        do
            digits[sizeof digits - 1 - d++] = (char)('0' + x % 10);
        while ((x /= 10) != 0);
        uint64_t h = old_fnv_add(h0, digits + sizeof digits - d, (size_t)d);
        if ((old_fnv_end(old_fnv_add(h, tail, sizeof tail - 1)) & 131071) < 256)
            colliding[n++] = v;
    }
    /* the first one, checked against the key as the registrar built it */
    char k[80];
    if ((old_fnv(k, old_txn_key(k, colliding[0])) & 131071) >= 256) {
        fprintf(stderr, "flood: colliding branches miscomputed\n");
        exit(1);
    }
}

static size_t make_register(char *out, uint64_t *rng, uint64_t branch)
{
    uint64_t id = gb_splitmix64(rng) % 1000000u, cid = gb_splitmix64(rng);
    /* the sent-by is the one old_txn_key() hashed, whatever the source */
    return (size_t)snprintf(
        out, DGRAM,
        "REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.5:5061;rport;branch=z9hG4bK%llu\r\n"
        "From: <sip:34020000001329%06llu@3402000000>;tag=f%llx\r\n"
        "To: <sip:34020000001329%06llu@3402000000>\r\n"
        "Call-ID: %llx@flood\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
        "Contact: <sip:34020000001329%06llu@10.0.0.5:5061>\r\n"
        "Expires: 3600\r\nContent-Length: 0\r\n\r\n",
        (unsigned long long)branch, (unsigned long long)id, (unsigned long long)cid,
        (unsigned long long)id, (unsigned long long)cid, (unsigned long long)id);
}

static size_t make_garbage(char *out, uint64_t *rng)
{
    uint64_t r = gb_splitmix64(rng);
    size_t n = 20 + r % 1000, head = 0;
    if (r & (1ull << 40)) {
        static const char line[] = "REGISTER sip:x SIP/2.0\r\nVia: ";
        memcpy(out, line, sizeof line - 1);
        head = sizeof line - 1;
    }
    for (size_t i = head; i < n; i += 8) {
        uint64_t v = gb_splitmix64(rng);
        memcpy(out + i, &v, n - i < 8 ? n - i : 8);
    }
    return n;
}

static void usage(void)
{
    fprintf(stderr, "usage: flood --to HOST:PORT --kind register|garbage|collide [--rate PPS]"
                    " [--seconds S] [--count N] [--sources N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *to = NULL, *kind = NULL;
    double rate = 50000, seconds = 10;
    long long count = -1;
    int nsrc = 8;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--to"))
            to = argv[i + 1];
        else if (!strcmp(argv[i], "--kind"))
            kind = argv[i + 1];
        else if (!strcmp(argv[i], "--rate"))
            rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--count"))
            count = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--sources"))
            nsrc = atoi(argv[i + 1]);
        else
            usage();
    }
    if (!to || !kind || nsrc < 1 || nsrc > MAXSRC || rate <= 0 || seconds <= 0 ||
        seconds > 600)
        usage();
    int mode = !strcmp(kind, "register") ? 0 : !strcmp(kind, "collide") ? 1
             : !strcmp(kind, "garbage") ? 2 : -1;
    if (mode < 0)
        usage();
    char host[64];
    const char *colon = strrchr(to, ':');
    if (!colon || (size_t)(colon - to) >= sizeof host)
        usage();
    memcpy(host, to, (size_t)(colon - to));
    host[colon - to] = 0;
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1 || strncmp(host, "127.", 4) != 0) {
        fprintf(stderr, "flood: loopback (127.x.x.x) targets only\n");
        return 2;
    }
    int fds[MAXSRC];
    for (int s = 0; s < nsrc; s++) {
        fds[s] = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)s);
        int buf = 4 << 20;
        if (fds[s] < 0 || bind(fds[s], (struct sockaddr *)&src, sizeof src) < 0 ||
            connect(fds[s], (struct sockaddr *)&dst, sizeof dst) < 0) {
            perror("flood: socket");
            return 1;
        }
        setsockopt(fds[s], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf); /* best effort */
    }
    if (mode == 1)
        find_colliding();
    /* the caller waits for this line: the flood starts now */
    printf("{\"ready\": true}\n");
    fflush(stdout);
    static char bufs[BATCH][DGRAM];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    long long sent = 0, next = 0;
    double t0 = now_s(), end = t0 + seconds;
    int src = 0;
    for (;;) {
        double t = now_s();
        if (t >= end || (count >= 0 && sent >= count))
            break;
        /* paced: never ahead of rate * elapsed */
        long long due = (long long)((t - t0) * rate) + 1 - sent;
        if (due <= 0) {
            struct timespec ns = {0, 200000};
            nanosleep(&ns, NULL);
            continue;
        }
        int n = due < BATCH ? (int)due : BATCH;
        if (count >= 0 && n > count - sent)
            n = (int)(count - sent);
        for (int i = 0; i < n; i++) {
            size_t len;
            if (mode == 2)
                len = make_garbage(bufs[i], &rng);
            else
                len = make_register(bufs[i], &rng,
                                    mode == 1 ? colliding[next++ % COLLIDING]
                                              : gb_splitmix64(&rng) >> 8);
            iov[i] = (struct iovec){bufs[i], len};
            msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[i], .msg_iovlen = 1}};
        }
        int r = sendmmsg(fds[src], msgs, (unsigned)n, 0);
        src = (src + 1) % nsrc;
        if (r > 0)
            sent += r;
        else if (r < 0 && errno != EAGAIN && errno != ENOBUFS && errno != ECONNREFUSED) {
            perror("flood: sendmmsg");
            return 1;
        }
    }
    double took = now_s() - t0;
    printf("{\"kind\": \"%s\", \"sent\": %lld, \"seconds\": %.3f, \"rate\": %.0f}\n", kind, sent,
           took, sent / took);
    free(colliding);
    return 0;
}
