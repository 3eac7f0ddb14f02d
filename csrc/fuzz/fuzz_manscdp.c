/*
 * fuzz_manscdp.c - libFuzzer target for MANSCDP+xml bodies.
 *
 * The input is copied into a malloc'd buffer of exactly its size (no NUL
 * after it), so ASan reports any read past the length the reader was given.
 * Each input is parsed strict and with every leniency on.  Invariants:
 *   - a clean result or a clean error (code, status, offset inside the body);
 *   - every span inside the body, every link a valid index, lookups and the
 *     decoder stay in bounds;
 *   - a parsed document rebuilt by the writer (header fields and every
 *     element's decoded text) parses again to the same root, SN, CmdType
 *     and DeviceID.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manscdp.h"

#define MAXN 4096
#define MAX_IN 70000

#define EXPECT(cond)                                                   \
    do {                                                               \
        if (!(cond)) {                                                 \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, \
                    __LINE__, #cond);                                  \
            abort();                                                   \
        }                                                              \
    } while (0)

#define IN_BOUNDS(s, n) EXPECT((size_t)(s).off + (s).len <= (n))

static gb_manscdp_node nodes[MAXN], nodes2[MAXN];
static char text[MAX_IN], out[8 * MAX_IN + 1024];

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Decoded text with XML whitespace trimmed, into dst; its length. */
static size_t decoded(const char *buf, gb_span s, uint32_t lenient, char *dst, size_t cap)
{
    long n = gb_manscdp_decode(buf, s, lenient, dst, cap);
    EXPECT(n >= 0 && (size_t)n <= s.len);
    size_t a = 0, e = (size_t)n;
    while (a < e && is_ws(dst[a]))
        a++;
    while (e > a && is_ws(dst[e - 1]))
        e--;
    memmove(dst, dst + a, e - a);
    return e - a;
}

/* Names the writer takes: ASCII Name characters only. */
static int ascii_name(const char *p, size_t n)
{
    if (n == 0 || n > 200)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x80 || !((c | 0x20) - 'a' < 26u || c == '_' || c == ':' ||
                           (i && (c - '0' < 10u || c == '-' || c == '.'))))
            return 0;
    }
    return 1;
}

static void write_subtree(gb_manscdp_writer *w, const char *buf, const gb_manscdp_doc *doc,
                          unsigned i, char *name)
{
    const gb_manscdp_node *nd = &doc->nodes[i];
    if (!ascii_name(buf + nd->name.off, nd->name.len))
        return;
    memcpy(name, buf + nd->name.off, nd->name.len);
    name[nd->name.len] = 0;
    if (nd->first_child == GB_MANSCDP_NONE) {
        long n = gb_manscdp_decode(buf, nd->text, doc->lenient, text, sizeof(text));
        EXPECT(n >= 0);
        gb_manscdp_w_field(w, name, (gb_manscdp_str){text, (size_t)n});
        return;
    }
    gb_manscdp_w_open(w, name, NULL, (gb_manscdp_str){NULL, 0});
    for (unsigned c = nd->first_child; c != GB_MANSCDP_NONE; c = doc->nodes[c].next_sibling)
        write_subtree(w, buf, doc, c, name + nd->name.len + 1);
    gb_manscdp_w_close(w);
}

static void check_doc(const char *buf, size_t n, const gb_manscdp_doc *doc)
{
    EXPECT(doc->nnodes >= 1 && doc->nnodes <= MAXN);
    for (unsigned i = 0; i < doc->nnodes; i++) {
        const gb_manscdp_node *nd = &doc->nodes[i];
        IN_BOUNDS(nd->name, n);
        IN_BOUNDS(nd->text, n);
        IN_BOUNDS(nd->attrs, n);
        EXPECT(nd->name.len > 0);
        EXPECT(i == 0 ? nd->parent == GB_MANSCDP_NONE : nd->parent < i);
        EXPECT(nd->first_child == GB_MANSCDP_NONE ||
               (nd->first_child > i && nd->first_child < doc->nnodes));
        EXPECT(nd->next_sibling == GB_MANSCDP_NONE ||
               (nd->next_sibling > i && nd->next_sibling < doc->nnodes));
        EXPECT(nd->depth >= 1 && nd->depth <= GB_MANSCDP_DEFAULT_MAX_DEPTH);
        long l = gb_manscdp_decode(buf, nd->text, doc->lenient, text, sizeof(text));
        EXPECT(l >= 0 && (size_t)l <= nd->text.len);
        gb_span v;
        if (gb_manscdp_attr(doc, buf, i, "Num", 3, &v))
            IN_BOUNDS(v, n);
    }
    IN_BOUNDS(doc->cmd_type, n);
    IN_BOUNDS(doc->device_id, n);
    IN_BOUNDS(doc->encoding, n);
    unsigned k = 0;
    for (unsigned i = gb_manscdp_find(doc, buf, 0, "DeviceList/Item", 15, GB_MANSCDP_NONE);
         i != GB_MANSCDP_NONE; i = gb_manscdp_find(doc, buf, 0, "DeviceList/Item", 15, i)) {
        EXPECT(i < doc->nnodes && ++k <= doc->nnodes);
        (void)gb_manscdp_child(doc, buf, i, "DeviceID", 8, GB_MANSCDP_NONE);
    }
}

/* Rebuild with the writer and parse again: same root, SN, CmdType, DeviceID. */
static void round_trip(const char *buf, const gb_manscdp_doc *doc)
{
    static char cmd[MAX_IN], dev[MAX_IN], cmd2[MAX_IN], dev2[MAX_IN];
    static char names[GB_MANSCDP_DEFAULT_MAX_DEPTH * 202];
    size_t cl = decoded(buf, doc->cmd_type, doc->lenient, cmd, sizeof(cmd));
    size_t dl = decoded(buf, doc->device_id, doc->lenient, dev, sizeof(dev));
    if (!cl || !dl)
        return; /* "&#32;" trims to nothing: no header to rebuild */
    gb_manscdp_writer w;
    gb_manscdp_w_init(&w, out, sizeof(out));
    gb_manscdp_w_begin(&w, (gb_manscdp_charset)doc->charset, (gb_manscdp_root)doc->root,
                       GB_MANSCDP_CMD_OTHER, (gb_manscdp_str){cmd, cl}, doc->sn,
                       (gb_manscdp_str){dev, dl});
    for (unsigned c = doc->nodes[0].first_child; c != GB_MANSCDP_NONE;
         c = doc->nodes[c].next_sibling)
        if (c != doc->cmd_node && c != doc->sn_node && c != doc->device_id_node)
            write_subtree(&w, buf, doc, c, names);
    size_t n = gb_manscdp_w_end(&w);
    if (w.err == GB_MANSCDP_W_INVALID)
        return; /* a byte XML 1.0 cannot carry, e.g. a decoded NUL-free control */
    EXPECT(w.err == GB_MANSCDP_W_OK && n > 0);

    gb_manscdp_limits lim;
    gb_manscdp_limits_default(&lim);
    lim.max_body = sizeof(out);
    lim.lenient = doc->lenient & GB_MANSCDP_LENIENT_TAG_CASE;
    gb_manscdp_doc d2;
    gb_manscdp_error err;
    gb_manscdp_init(&d2, nodes2, MAXN);
    gb_manscdp_error_code rc = gb_manscdp_parse(out, n, &lim, &d2, &err);
    if (rc != GB_MANSCDP_OK && rc != GB_MANSCDP_ERR_UNKNOWN_CMD_TYPE)
        fprintf(stderr, "rebuilt body refused: %s at %u: %s\n%.*s\n",
                gb_manscdp_error_name(rc), err.offset, err.reason, (int)n, out);
    EXPECT(rc == GB_MANSCDP_OK || rc == GB_MANSCDP_ERR_UNKNOWN_CMD_TYPE);
    EXPECT(d2.root == doc->root);
    EXPECT(d2.sn == doc->sn);
    size_t cl2 = decoded(out, d2.cmd_type, d2.lenient, cmd2, sizeof(cmd2));
    size_t dl2 = decoded(out, d2.device_id, d2.lenient, dev2, sizeof(dev2));
    EXPECT(cl2 == cl && memcmp(cmd, cmd2, cl) == 0);
    EXPECT(dl2 == dl && memcmp(dev, dev2, dl) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_IN)
        return 0;
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    static const uint32_t modes[] = {0, GB_MANSCDP_LENIENT_ALL};
    for (unsigned m = 0; m < 2; m++) {
        gb_manscdp_limits lim;
        gb_manscdp_limits_default(&lim);
        lim.lenient = modes[m];
        gb_manscdp_doc doc;
        gb_manscdp_error err;
        gb_manscdp_init(&doc, nodes, MAXN);
        gb_manscdp_error_code rc = gb_manscdp_parse(buf, size, &lim, &doc, &err);
        if (rc != GB_MANSCDP_OK) {
            EXPECT(rc < GB_MANSCDP_ERR__COUNT);
            EXPECT(err.code == rc && err.offset <= size && err.line >= 1 && err.reason);
            EXPECT(err.status == 400 || err.status == 501 || err.status == 513);
        }
        if (rc == GB_MANSCDP_OK || rc == GB_MANSCDP_ERR_UNKNOWN_CMD_TYPE) {
            check_doc(buf, size, &doc);
            round_trip(buf, &doc);
        }
    }
    free(buf);
    return 0;
}
