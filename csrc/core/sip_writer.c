/* sip_writer.c - SIP message serializer into caller buffers. */
#include "sip_writer.h"

#include "sip_fields.h"

#include <string.h>

void gb_w_init(gb_writer *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = 0;
}

void gb_w_bytes(gb_writer *w, const char *p, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    if (n)
        memcpy(w->buf + w->len, p, n);
    w->len += n;
}

void gb_w_cstr(gb_writer *w, const char *s)
{
    gb_w_bytes(w, s, strlen(s));
}

void gb_w_uint(gb_writer *w, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    gb_w_bytes(w, tmp + sizeof(tmp) - n, n);
}

void gb_w_header(gb_writer *w, const char *name, size_t name_len,
                 const char *value, size_t value_len)
{
    gb_w_bytes(w, name, name_len);
    gb_w_bytes(w, ": ", 2);
    gb_w_bytes(w, value, value_len);
    gb_w_bytes(w, "\r\n", 2);
}

static int is_content_length(const gb_field *f)
{
    return gb_header_lookup(f->name, f->name_len) == GB_HDR_CONTENT_LENGTH;
}

/* Fields, with any Content-Length rewritten in place to body_len; when
 * there is none, one is appended. */
static void write_fields(gb_writer *w, const gb_field *fields, size_t n,
                         size_t body_len)
{
    int wrote_length = 0;
    for (size_t i = 0; i < n; i++) {
        const gb_field *f = &fields[i];
        if (is_content_length(f)) {
            if (wrote_length)
                continue;
            wrote_length = 1;
            gb_w_bytes(w, f->name, f->name_len);
            gb_w_bytes(w, ": ", 2);
            gb_w_uint(w, body_len);
            gb_w_bytes(w, "\r\n", 2);
            continue;
        }
        gb_w_header(w, f->name, f->name_len, f->value, f->value_len);
    }
    if (!wrote_length) {
        gb_w_cstr(w, "Content-Length: ");
        gb_w_uint(w, body_len);
        gb_w_bytes(w, "\r\n", 2);
    }
}

int gb_build_request(gb_writer *w, const char *method, size_t method_len,
                     const char *uri, size_t uri_len,
                     const gb_field *fields, size_t nfields,
                     const char *body, size_t body_len)
{
    gb_w_bytes(w, method, method_len);
    gb_w_bytes(w, " ", 1);
    gb_w_bytes(w, uri, uri_len);
    gb_w_bytes(w, " SIP/2.0\r\n", 10);
    write_fields(w, fields, nfields, body_len);
    gb_w_bytes(w, "\r\n", 2);
    gb_w_bytes(w, body, body_len);
    return w->overflow ? -1 : 0;
}

static void status_line(gb_writer *w, unsigned status, const char *reason,
                        size_t reason_len)
{
    char code[3] = {(char)('0' + status / 100 % 10), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10)};
    gb_w_bytes(w, "SIP/2.0 ", 8);
    gb_w_bytes(w, code, 3);
    gb_w_bytes(w, " ", 1);
    if (reason)
        gb_w_bytes(w, reason, reason_len);
    else
        gb_w_cstr(w, gb_status_phrase(status));
    gb_w_bytes(w, "\r\n", 2);
}

int gb_build_response(gb_writer *w, unsigned status,
                      const char *reason, size_t reason_len,
                      const gb_field *fields, size_t nfields,
                      const char *body, size_t body_len)
{
    status_line(w, status, reason, reason_len);
    write_fields(w, fields, nfields, body_len);
    gb_w_bytes(w, "\r\n", 2);
    gb_w_bytes(w, body, body_len);
    return w->overflow ? -1 : 0;
}

/* The top Via with RFC 3581's received and rport filled in. */
static void write_top_via(gb_writer *w, const char *b, const gb_header *h,
                          const gb_reply_opts *o)
{
    gb_list_iter it;
    gb_span first;
    gb_via via;
    gb_list_begin(&it, b, h->value);
    if (gb_list_next(&it, &first, NULL) != 1 ||
        gb_parse_via(b, first, &via, NULL) != GB_OK) {
        gb_w_header(w, "Via", 3, b + h->value.off, h->value.len);
        return;
    }
    gb_w_cstr(w, "Via: ");
    size_t upto = via.params.len ? via.params.off : first.off + first.len;
    if (!via.params.len) {
        gb_w_bytes(w, b + first.off, upto - first.off);
    } else {
        /* sent-protocol and sent-by as received, then each param */
        gb_w_bytes(w, b + first.off, via.params.off - 1 - first.off);
        gb_param_iter pi;
        gb_param p;
        gb_params_begin(&pi, b, via.params, ';');
        while (gb_params_next(&pi, &p, NULL) == 1) {
            const char *n = b + p.name.off;
            if (gb_ieq(n, p.name.len, "received", 8))
                continue;
            gb_w_bytes(w, ";", 1);
            if (gb_ieq(n, p.name.len, "rport", 5) && !p.has_value && o->rport > 0) {
                gb_w_cstr(w, "rport=");
                gb_w_uint(w, (uint64_t)o->rport);
                continue;
            }
            size_t end = p.has_value ? p.value.off + p.value.len + p.quoted : p.name.off + p.name.len;
            gb_w_bytes(w, n, end - p.name.off);
        }
    }
    gb_w_cstr(w, ";received=");
    gb_w_bytes(w, o->received, o->received_len);
    size_t rest = first.off + first.len;
    gb_w_bytes(w, b + rest, h->value.off + h->value.len - rest);
    gb_w_bytes(w, "\r\n", 2);
}

static void write_to(gb_writer *w, const char *b, const gb_header *h,
                     unsigned status, const gb_reply_opts *o)
{
    gb_w_cstr(w, "To: ");
    gb_w_bytes(w, b + h->value.off, h->value.len);
    if (o->to_tag && status > 100) {
        gb_name_addr na;
        gb_param p;
        if (gb_parse_name_addr(b, h->value, 0, &na, NULL) == GB_OK &&
            !gb_params_find(b, na.params, ';', "tag", 3, &p)) {
            gb_w_cstr(w, ";tag=");
            gb_w_bytes(w, o->to_tag, o->to_tag_len);
        }
    }
    gb_w_bytes(w, "\r\n", 2);
}

int gb_build_reply(gb_writer *w, const char *b, const gb_msg *req,
                   unsigned status, const gb_reply_opts *opts)
{
    static const gb_reply_opts none;
    const gb_reply_opts *o = opts ? opts : &none;
    status_line(w, status, o->reason, o->reason_len);
    int top = 1;
    for (unsigned i = 0; i < req->nheaders; i++) {
        const gb_header *h = &req->headers[i];
        if (h->id != GB_HDR_VIA)
            continue;
        if (top && o->received)
            write_top_via(w, b, h, o);
        else
            gb_w_header(w, "Via", 3, b + h->value.off, h->value.len);
        top = 0;
    }
    static const gb_header_id copied[] = {GB_HDR_FROM, GB_HDR_TO, GB_HDR_CALL_ID, GB_HDR_CSEQ};
    for (size_t k = 0; k < sizeof(copied) / sizeof(copied[0]); k++) {
        unsigned first = req->first[copied[k]];
        if (!first)
            continue;
        const gb_header *h = &req->headers[first - 1];
        if (copied[k] == GB_HDR_TO) {
            write_to(w, b, h, status, o);
            continue;
        }
        const char *name = gb_header_canonical_name(copied[k]);
        gb_w_header(w, name, strlen(name), b + h->value.off, h->value.len);
    }
    write_fields(w, o->fields, o->nfields, o->body_len);
    gb_w_bytes(w, "\r\n", 2);
    gb_w_bytes(w, o->body, o->body_len);
    return w->overflow ? -1 : 0;
}
