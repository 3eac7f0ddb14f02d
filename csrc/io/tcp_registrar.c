/* tcp_registrar.c - the registrar on the TCP pump (see tcp_pump.h). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "gb_containers.h"
#include "tcp_pump.h"

#define MAX_NOTES 1024

struct gb_reg_tcp {
    gb_registrar *r;
    gb_tcp *t;
    char *reply;                 /* any answer to a message of max_message bytes */
    size_t reply_cap;
    int64_t wall;                /* the run's wall clock, for the GB Date */
    int deliver;
    gb_tcp_frame *frames;        /* deliver mode */
    size_t nframes, frames_cap;
    char *data;
    size_t data_len, data_cap;
    gb_tcp_refusal_note notes[MAX_NOTES];
    size_t nnotes;
    uint64_t notes_dropped;
};

/* Keep a whole message for the caller (deliver mode); when memory runs out
 * it is dropped like an unreadable datagram. */
static void keep_frame(gb_reg_tcp *rt, const gb_peer *peer, const char *p, size_t n)
{
    if (gb_grow((void **)&rt->frames, &rt->frames_cap, rt->nframes + 1, sizeof *rt->frames) ||
        gb_grow((void **)&rt->data, &rt->data_cap, rt->data_len + n, 1))
        return;
    memcpy(rt->data + rt->data_len, p, n);
    rt->frames[rt->nframes++] = (gb_tcp_frame){*peer, (uint32_t)rt->data_len, (uint32_t)n};
    rt->data_len += n;
}

static void on_message(void *arg, uint64_t id, uint32_t tag, const gb_peer *peer, const char *p,
                       size_t n, int64_t now)
{
    (void)tag;
    gb_reg_tcp *rt = arg;
    if (rt->deliver) {
        keep_frame(rt, peer, p, n);
        return;
    }
    gb_reg_reply out = {.buf = rt->reply, .cap = rt->reply_cap};
    if (gb_registrar_handle(rt->r, p, n, peer, now, rt->wall, &out) != GB_REG_REPLY)
        return;
    uint64_t to = out.dest.transport == GB_TRANSPORT_TCP && out.dest.conn_id ? out.dest.conn_id
                                                                              : id;
    gb_tcp_send(rt->t, to, out.buf, out.len);
}

static void on_refused(void *arg, uint64_t id, const gb_peer *peer, unsigned status,
                       const char *reason, int answered, int64_t now)
{
    (void)id;
    gb_reg_tcp *rt = arg;
    if (rt->nnotes == MAX_NOTES) {
        rt->notes_dropped++;
        return;
    }
    rt->notes[rt->nnotes++] = (gb_tcp_refusal_note){*peer, (uint16_t)status, (uint8_t)answered,
                                                     reason, now};
}

gb_reg_tcp *gb_reg_tcp_new(gb_registrar *r, const gb_tcp_config *cfg, const char **why)
{
    gb_reg_tcp *rt = calloc(1, sizeof *rt);
    if (!rt) {
        *why = "out of memory";
        return NULL;
    }
    rt->r = r;
    rt->reply_cap = gb_registrar_reply_cap(r, cfg->max_message);
    rt->reply = malloc(rt->reply_cap);
    gb_tcp_handlers h = {.arg = rt, .message = on_message, .refused = on_refused};
    if (!rt->reply || !(rt->t = gb_tcp_new(cfg, &h, why))) {
        if (!rt->reply)
            *why = "out of memory";
        gb_reg_tcp_free(rt);
        return NULL;
    }
    return rt;
}

void gb_reg_tcp_free(gb_reg_tcp *rt)
{
    if (!rt)
        return;
    gb_tcp_free(rt->t);
    free(rt->reply);
    free(rt->frames);
    free(rt->data);
    free(rt);
}

gb_tcp *gb_reg_tcp_pump(gb_reg_tcp *rt)
{
    return rt->t;
}

void gb_reg_tcp_deliver(gb_reg_tcp *rt, int on)
{
    rt->deliver = on;
}

long gb_reg_tcp_run(gb_reg_tcp *rt, int64_t now_ms, int64_t wall_ms)
{
    rt->wall = wall_ms;
    return gb_tcp_run(rt->t, now_ms);
}

int gb_reg_tcp_send(gb_reg_tcp *rt, uint64_t conn_id, const char *p, size_t n)
{
    return gb_tcp_send(rt->t, conn_id, p, n);
}

size_t gb_reg_tcp_frame_count(const gb_reg_tcp *rt)
{
    return rt->nframes;
}

const gb_tcp_frame *gb_reg_tcp_frames(const gb_reg_tcp *rt)
{
    return rt->frames;
}

const char *gb_reg_tcp_frame_data(const gb_reg_tcp *rt)
{
    return rt->data;
}

void gb_reg_tcp_frames_clear(gb_reg_tcp *rt)
{
    rt->nframes = 0;
    rt->data_len = 0;
}

size_t gb_reg_tcp_refusal_count(const gb_reg_tcp *rt)
{
    return rt->nnotes;
}

const gb_tcp_refusal_note *gb_reg_tcp_refusals(const gb_reg_tcp *rt)
{
    return rt->notes;
}

void gb_reg_tcp_refusals_clear(gb_reg_tcp *rt)
{
    rt->nnotes = 0;
}

uint64_t gb_reg_tcp_refusals_dropped(const gb_reg_tcp *rt)
{
    return rt->notes_dropped;
}
