/*
 * fuzz_uri.c - libFuzzer target for gb_parse_uri (RFC 3261 §19.1).
 *
 * The input is one URI in a malloc'd buffer of exactly its size (no NUL),
 * parsed once from offset 0 and once from inside the buffer, so spans and
 * error offsets relative to the buffer are checked too.  Whatever parses
 * has every span inside the input, its parameters and headers iterate
 * cleanly and its escapes decode within bounds.
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

static void walk_params(const char *buf, gb_span in, gb_span params, char sep)
{
    gb_param_iter it;
    gb_param p;
    gb_error err;
    int r;
    uint32_t count = 0;
    gb_params_begin(&it, buf, params, sep);
    while ((r = gb_params_next(&it, &p, &err)) == 1) {
        IN_SPAN(p.name, params);
        IN_SPAN(p.value, params);
        EXPECT(++count <= params.len);
        gb_param q;
        EXPECT(gb_params_find(buf, params, sep, buf + p.name.off, p.name.len, &q) == 1);
    }
    if (r < 0)
        EXPECT(err.offset >= in.off && err.offset <= in.off + in.len);
}

static void unescape(const char *buf, gb_span s)
{
    if (!s.len)
        return;
    char *out = malloc(s.len);
    long k = gb_unescape(buf, s, out);
    EXPECT(k >= -1 && k <= (long)s.len);
    free(out);
}

static void check(const char *buf, gb_span in)
{
    gb_uri u;
    gb_error err;
    memset(&err, 0, sizeof(err));
    gb_error_code rc = gb_parse_uri(buf, in, &u, &err);
    if (rc != GB_OK) {
        EXPECT(rc == GB_ERR_URI);
        EXPECT(err.code == rc && err.reason != NULL);
        EXPECT(err.offset >= in.off && err.offset <= in.off + in.len);
        return;
    }
    IN_SPAN(u.scheme, in);
    EXPECT(u.scheme.len > 0);
    EXPECT(u.port >= -1 && u.port <= 65535);
    if (!u.is_sip) {
        IN_SPAN(u.opaque, in);
        return;
    }
    IN_SPAN(u.host, in);
    EXPECT(u.host.len > 0);
    if (u.has_user)
        IN_SPAN(u.user, in);
    if (u.has_password)
        IN_SPAN(u.password, in);
    IN_SPAN(u.params, in);
    IN_SPAN(u.headers, in);
    walk_params(buf, in, u.params, ';');
    walk_params(buf, in, u.headers, '&');
    unescape(buf, u.user);
    unescape(buf, u.password);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *buf = malloc(size ? size : 1);
    if (size)
        memcpy(buf, data, size);
    gb_span all = {0, (uint32_t)size};
    check(buf, all);
    if (size > 2) {
        /* the same bytes framed by others: offsets stay buffer-relative */
        gb_span inner = {1, (uint32_t)size - 2};
        check(buf, inner);
    }
    free(buf);
    return 0;
}
