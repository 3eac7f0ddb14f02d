/*
 * fuzz_name_addr.c - libFuzzer target for the header-value sub-parsers:
 * name-addr/addr-spec (From, To, Contact), Via, Date, parameter and list
 * iterators, and the unquote/unescape/uint helpers.
 *
 * The input is one header value in a malloc'd buffer of exactly its size
 * (no NUL after it).  Every parser gets the whole value and each top-level
 * list item; all spans must stay inside what they were given.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sip_fields.h"

/* Inside what the parser was given; absent (empty) spans may be {0, 0}. */
#define IN_SPAN(s, in)                                                   \
    EXPECT((s).len == 0 ||                                               \
           ((s).off >= (in).off &&                                       \
            (size_t)(s).off + (s).len <= (size_t)(in).off + (in).len))

#define ERR_IN(err, in) \
    EXPECT((err).offset >= (in).off && (err).offset <= (in).off + (in).len)

static void walk_params(const char *buf, gb_span in, char sep)
{
    gb_param_iter it;
    gb_param p;
    gb_error err;
    int r;
    uint32_t count = 0;
    gb_params_begin(&it, buf, in, sep);
    while ((r = gb_params_next(&it, &p, &err)) == 1) {
        IN_SPAN(p.name, in);
        IN_SPAN(p.value, in);
        EXPECT(p.name.len > 0);
        EXPECT(++count <= in.len);
        if (p.quoted && p.value.len) {
            char *out = malloc(p.value.len);
            EXPECT(gb_unquote(buf, p.value, out) <= p.value.len);
            free(out);
        }
    }
    if (r < 0)
        ERR_IN(err, in);
}

static void name_addr(const char *buf, gb_span in, int wildcard)
{
    gb_name_addr na;
    gb_error err;
    gb_error_code rc = gb_parse_name_addr(buf, in, wildcard, &na, &err);
    if (rc != GB_OK) {
        EXPECT(err.code == rc && err.reason != NULL);
        ERR_IN(err, in);
        return;
    }
    IN_SPAN(na.display, in);
    IN_SPAN(na.uri, in);
    IN_SPAN(na.params, in);
    EXPECT(na.uri.len > 0);
    if (na.display_quoted && na.display.len) {
        char *out = malloc(na.display.len);
        EXPECT(gb_unquote(buf, na.display, out) <= na.display.len);
        free(out);
    }
    walk_params(buf, na.params, ';');
    if (!na.wildcard) {
        /* A parsed address holds a URI that parses on its own. */
        gb_uri u;
        EXPECT(gb_parse_uri(buf, na.uri, &u, &err) == GB_OK);
    }
}

static void via(const char *buf, gb_span in)
{
    gb_via v;
    gb_error err;
    gb_error_code rc = gb_parse_via(buf, in, &v, &err);
    if (rc != GB_OK) {
        EXPECT(err.reason != NULL);
        ERR_IN(err, in);
        return;
    }
    IN_SPAN(v.protocol, in);
    IN_SPAN(v.transport, in);
    IN_SPAN(v.host, in);
    IN_SPAN(v.params, in);
    IN_SPAN(v.branch, in);
    IN_SPAN(v.received, in);
    IN_SPAN(v.maddr, in);
    EXPECT(v.transport.len > 0 && v.host.len > 0);
    EXPECT(v.port >= -1 && v.port <= 65535);
    EXPECT(v.rport >= -1 && v.rport <= 65535);
    EXPECT(!v.has_branch || v.branch.len > 0);
}

static void date(const char *buf, gb_span in)
{
    gb_date d;
    gb_error err;
    if (gb_parse_date(buf, in, &d, &err) != GB_OK) {
        ERR_IN(err, in);
        return;
    }
    EXPECT(d.month >= 1 && d.month <= 12 && d.day >= 1 && d.day <= 31);
    EXPECT(d.hour >= 0 && d.hour <= 23 && d.minute >= 0 && d.minute <= 59);
    EXPECT(d.second >= 0 && d.second <= 60);
    EXPECT(d.millisecond >= 0 && d.millisecond <= 999);
    char out[23];
    gb_format_gb_date(&d, out);
    /* The GB form we write reads back as the same instant. */
    char *copy = malloc(sizeof(out));
    memcpy(copy, out, sizeof(out));
    gb_span s = {0, sizeof(out)};
    gb_date back;
    if (d.year <= 9999) {
        EXPECT(gb_parse_date(copy, s, &back, &err) == GB_OK);
        EXPECT(back.year == d.year && back.month == d.month && back.day == d.day &&
               back.hour == d.hour && back.minute == d.minute &&
               back.second == d.second && back.millisecond == d.millisecond);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *buf = malloc(size ? size : 1);
    if (size)
        memcpy(buf, data, size);
    gb_span all = {0, (uint32_t)size};

    name_addr(buf, all, 0);
    name_addr(buf, all, 1);
    via(buf, all);
    date(buf, all);
    walk_params(buf, all, ';');
    walk_params(buf, all, '&');

    gb_list_iter it;
    gb_span item;
    gb_error err;
    int r;
    uint32_t count = 0;
    gb_list_begin(&it, buf, all);
    while ((r = gb_list_next(&it, &item, &err)) == 1) {
        IN_SPAN(item, all);
        EXPECT(item.len > 0);
        EXPECT(++count <= size);
        name_addr(buf, item, 1);
        via(buf, item);
    }
    if (r < 0)
        ERR_IN(err, all);

    if (size) {
        char *out = malloc(size);
        long k = gb_unescape(buf, all, out);
        EXPECT(k >= -1 && k <= (long)size);
        EXPECT(gb_unquote(buf, all, out) <= size);
        free(out);
    }
    uint64_t v;
    if (gb_parse_uint(buf, size, UINT64_MAX, &v) == 0)
        EXPECT(size > 0);   /* leading zeros may make it longer than 20 */
    free(buf);
    return 0;
}
