/*
 * fleet_rig.h - a platform played by hand for the fleet's tests
 * (test_device.c, test_camera.c): the fleet's messages taken one by one,
 * answered with responses built on them, explicit time throughout.
 */
#ifndef GBSIP_FLEET_RIG_H
#define GBSIP_FLEET_RIG_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "device.h"
#include "sip_writer.h"

/* ---- helpers ------------------------------------------------------------------ */

/* A scripted random source: the listed values, then a counter. */
typedef struct {
    const uint64_t *v;
    size_t n, i;
    uint64_t next;
} script_rng;

static inline uint64_t scripted(void *arg)
{
    script_rng *s = arg;
    if (s->i < s->n)
        return s->v[s->i++];
    return s->next++ * 0x9e3779b97f4a7c15ULL;
}

#define ID "34020000001320000001"
#define GBB(s) ((gb_bytes){(s), sizeof(s) - 1})

static inline gb_fleet *make_fleet(gb_dev_config *cfg)
{
    const char *why = NULL;
    gb_fleet *f = gb_fleet_new(cfg, 4, &why);
    if (!f)
        fprintf(stderr, "gb_fleet_new: %s\n", why);
    return f;
}

static inline void base_config(gb_dev_config *cfg)
{
    gb_dev_config_default(cfg);
    cfg->server_id = GBB("34020000002000000001");
    cfg->server_host = GBB("127.0.0.1");
    cfg->password = GBB("12345678");
    cfg->jitter = 0.0;
    cfg->seed = 42;
}

/* One message sent: copied out and the queue emptied.  Returns its length,
 * or 0 when not exactly one was queued. */
typedef struct {
    char buf[4096];
    size_t len;
    int dest;
    int retransmit;
} sent;

static inline size_t take_one(gb_fleet *f, sent *s)
{
    size_t n = gb_fleet_out_count(f);
    s->len = 0;
    if (n == 1) {
        const gb_dev_out *o = gb_fleet_out_items(f);
        memcpy(s->buf, gb_fleet_out_data(f) + o->off, o->len);
        s->buf[o->len] = '\0';
        s->len = o->len;
        s->dest = o->dest;
        s->retransmit = o->retransmit;
    }
    gb_fleet_out_clear(f);
    return s->len;
}

static inline int has_line(const sent *s, const char *line)
{
    const char *p = strstr(s->buf, line);
    return p && (p == s->buf || p[-1] == '\n') && p[strlen(line)] == '\r';
}

/* The value of the first header named name (copied), or "" */
static inline const char *header(const sent *s, const char *name)
{
    static char out[1024];
    char key[64];
    snprintf(key, sizeof key, "\r\n%s: ", name);
    const char *p = strstr(s->buf, key);
    out[0] = '\0';
    if (p) {
        p += strlen(key);
        const char *e = strstr(p, "\r\n");
        size_t n = (size_t)(e - p) < sizeof out - 1 ? (size_t)(e - p) : sizeof out - 1;
        memcpy(out, p, n);
        out[n] = '\0';
    }
    return out;
}

/* The answer to the request in s with status and extra header lines
 * ("A: b\r\n"...), built into out; its length, or -100 / -101. */
static inline long build_response(const sent *s, unsigned status, const char *extra,
                           char *out, size_t cap)
{
    gb_header hdrs[64];
    gb_msg req;
    gb_limits lim;
    gb_limits_default(&lim);
    gb_msg_init(&req, hdrs, 64);
    if (gb_parse(s->buf, s->len, 0, &lim, &req, NULL) != GB_OK)
        return -100;
    gb_field fields[8];
    size_t nf = 0;
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", extra ? extra : "");
    for (char *line = copy; *line && nf < 8;) {
        char *end = strstr(line, "\r\n");
        char *colon = strstr(line, ": ");
        if (!end || !colon)
            break;
        fields[nf++] = (gb_field){line, (size_t)(colon - line), colon + 2,
                                  (size_t)(end - colon - 2)};
        line = end + 2;
    }
    gb_writer w;
    gb_w_init(&w, out, cap);
    gb_reply_opts o = {.to_tag = "srv", .to_tag_len = 3, .fields = fields, .nfields = nf};
    if (gb_build_reply(&w, s->buf, &req, status, &o))
        return -101;
    return (long)w.len;
}

/* Answer the request in s (see build_response), fed to the fleet at now.
 * Returns what gb_fleet_handle_datagram did. */
static inline long respond(gb_fleet *f, const sent *s, unsigned status,
                    const char *extra, int64_t now)
{
    char out[4096];
    long n = build_response(s, status, extra, out, sizeof out);
    return n < 0 ? n : gb_fleet_handle_datagram(f, out, (size_t)n, now);
}

static inline int count_events(gb_fleet *f, int type)
{
    int n = 0;
    for (size_t i = 0; i < gb_fleet_event_count(f); i++)
        n += gb_fleet_events(f)[i].type == type;
    return n;
}

static inline const gb_dev_event *last_event(gb_fleet *f, int type)
{
    const gb_dev_event *found = NULL;
    for (size_t i = 0; i < gb_fleet_event_count(f); i++)
        if (gb_fleet_events(f)[i].type == type)
            found = &gb_fleet_events(f)[i];
    return found;
}

/* Register device 0 through 401 -> 200 (qop offered when qop != 0);
 * returns the time after. */
static inline int64_t register_device(gb_fleet *f, int64_t now, int qop, unsigned expires)
{
    sent s;
    gb_fleet_start(f, 0, now);
    take_one(f, &s);
    respond(f, &s,
            401,
            qop ? "WWW-Authenticate: Digest realm=\"3402000000\",nonce=\"n1\",qop=\"auth\",algorithm=MD5\r\n"
                : "WWW-Authenticate: Digest realm=\"3402000000\",nonce=\"n1\",algorithm=MD5\r\n",
            now + 5);
    take_one(f, &s);
    char extra[128];
    snprintf(extra, sizeof extra, "Expires: %u\r\n", expires);
    respond(f, &s, 200, extra, now + 10);
    return now + 10;
}


#endif
