/*
 * sip_writer.h - build SIP messages into a caller buffer.
 *
 * A gb_writer never writes past its capacity: once a write does not fit it
 * sets overflow and ignores everything after, so callers check once at the
 * end instead of after each append.
 */
#ifndef GBSIP_SIP_WRITER_H
#define GBSIP_SIP_WRITER_H

#include "sip_parser.h"

typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    int overflow;
} gb_writer;

void gb_w_init(gb_writer *w, char *buf, size_t cap);
void gb_w_bytes(gb_writer *w, const char *p, size_t n);
void gb_w_cstr(gb_writer *w, const char *s);
void gb_w_uint(gb_writer *w, uint64_t v);
void gb_w_header(gb_writer *w, const char *name, size_t name_len,
                 const char *value, size_t value_len);

/* A header to add, name and value as byte runs. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} gb_field;

/* "METHOD uri SIP/2.0" CRLF, headers, Content-Length, CRLF, body.
 * Content-Length always states body_len: a Content-Length among fields keeps
 * its place but gets that value; without one it is appended.  Returns 0, or
 * -1 when the buffer is too small. */
int gb_build_request(gb_writer *w, const char *method, size_t method_len,
                     const char *uri, size_t uri_len,
                     const gb_field *fields, size_t nfields,
                     const char *body, size_t body_len);

int gb_build_response(gb_writer *w, unsigned status,
                      const char *reason, size_t reason_len,
                      const gb_field *fields, size_t nfields,
                      const char *body, size_t body_len);

/* Options for gb_build_reply(). */
typedef struct {
    const char *reason;      /* NULL: the standard phrase */
    size_t reason_len;
    const char *to_tag;      /* added to To when it has none (status > 100) */
    size_t to_tag_len;
    /* RFC 3581: when received is set, the top Via gets ;received=<received>
     * and an empty ;rport gets the value rport (if rport > 0). */
    const char *received;
    size_t received_len;
    int rport;
    const gb_field *fields;  /* extra headers, after CSeq */
    size_t nfields;
    const char *body;
    size_t body_len;
} gb_reply_opts;

/* A response to the request in reqbuf/req per RFC 3261 §8.2.6.2: Via
 * (all, in order), From, To (+tag), Call-ID and CSeq copied, then the extra
 * fields, Content-Length and the body.  Returns 0 or -1 on overflow. */
int gb_build_reply(gb_writer *w, const char *reqbuf, const gb_msg *req,
                   unsigned status, const gb_reply_opts *opts);

#endif
