/*
 * bench_manscdp.c - ns per MANSCDP+xml body for gbsip's reader and for
 * libexpat, measured in the same process on the same buffers; and ns per
 * 64-item Catalog part for gbsip's writer.
 *
 * Each reader does what a platform needs from a body: parse it whole, read
 * CmdType, SN and DeviceID, and for a Catalog every item's DeviceID and
 * Name.  gbsip keeps spans into the body; expat (a SAX parser) hands text
 * in pieces through callbacks, which collect the wanted fields into small
 * buffers, the least a caller of expat can do.  Expat has no GB2312
 * decoder, so it is told to read the bodies as ISO-8859-1 (one byte, one
 * character: its cheapest way to pass GB2312 bytes through).  Before any
 * timing both readers must agree on SN, DeviceID, item count and the last
 * item's DeviceID.
 *
 * Timing: REPS rounds; each round runs one timed loop per body and reader
 * (N calibrated so a loop lasts about 2 ms), so noise hits all alike; we
 * report the minimum over the rounds and the median.
 *
 * Usage: bench_manscdp [--quick]
 * Needs libexpat1-dev (Debian) to build: make -C benchmarks bench_manscdp
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <expat.h>

#include "manscdp.h"
#include "tests/seed.h"

#define MAXN 2048

#define KEEPALIVE SEED_KEEPALIVE_BODY

typedef struct {
    const char *label;
    char *buf;
    size_t len;
} body;

/* What a read yields, to check the readers agree. */
typedef struct {
    uint64_t sn;
    char device_id[32];
    unsigned items;
    char last_item_id[32];
    size_t name_bytes; /* total bytes of item names seen */
} readback;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* ---- bodies: a Catalog part of n items, built by gbsip's writer ---- */

static body make_catalog(const char *label, size_t n)
{
    static char ids[64][24];
    gb_manscdp_catalog_item items[64];
    memset(items, 0, sizeof(items));
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof(ids[i]), "3402000000131%07zu", i);
        gb_manscdp_catalog_item *it = &items[i];
        it->device_id = (gb_manscdp_str){ids[i], 20};
        it->name = GB_MANSCDP_STR("\xB4\xF3\xC3\xC5\xBF\xDA\xC7\xF2\xBB\xFA"); /* 大门口球机 */
        it->manufacturer = GB_MANSCDP_STR("Hikvision");
        it->model = GB_MANSCDP_STR("DS-2CD2T47G2");
        it->owner = GB_MANSCDP_STR("Owner");
        it->civil_code = GB_MANSCDP_STR("340104");
        it->address = GB_MANSCDP_STR("\xBA\xCF\xB7\xCA"); /* 合肥 */
        it->parental = GB_MANSCDP_STR("0");
        it->parent_id = GB_MANSCDP_STR("34020000001180000001");
        it->safety_way = GB_MANSCDP_STR("0");
        it->register_way = GB_MANSCDP_STR("1");
        it->secrecy = GB_MANSCDP_STR("0");
        it->status = GB_MANSCDP_STR("ON");
        it->longitude = GB_MANSCDP_STR("117.2278");
        it->latitude = GB_MANSCDP_STR("31.8206");
        it->ptz_type = GB_MANSCDP_STR("1");
    }
    body b = {label, malloc(65536), 0};
    gb_manscdp_head h = {GB_MANSCDP_CHARSET_GB2312, 17430,
                         GB_MANSCDP_STR("34020000001180000001")};
    gb_manscdp_writer w;
    gb_manscdp_w_init(&w, b.buf, 65536);
    b.len = gb_manscdp_write_catalog(&w, &h, (uint32_t)n, items, n);
    if (!b.len) {
        fprintf(stderr, "writer failed\n");
        exit(1);
    }
    return b;
}

/* ---- gbsip ---- */

static gb_manscdp_node nodes[MAXN];

static int read_gbsip(const body *b, readback *r)
{
    gb_manscdp_doc doc;
    gb_manscdp_init(&doc, nodes, MAXN);
    if (gb_manscdp_parse(b->buf, b->len, NULL, &doc, NULL) != GB_MANSCDP_OK)
        return -1;
    const char *s = b->buf;
    r->sn = doc.sn;
    memcpy(r->device_id, s + doc.device_id.off, doc.device_id.len < 31 ? doc.device_id.len : 31);
    r->device_id[doc.device_id.len < 31 ? doc.device_id.len : 31] = 0;
    r->items = 0;
    r->name_bytes = 0;
    if (doc.cmd != GB_MANSCDP_CMD_CATALOG)
        return 0;
    gb_span last = {0, 0};
    for (unsigned i = gb_manscdp_find(&doc, s, 0, "DeviceList/Item", 15, GB_MANSCDP_NONE);
         i != GB_MANSCDP_NONE; i = gb_manscdp_find(&doc, s, 0, "DeviceList/Item", 15, i)) {
        unsigned id = gb_manscdp_child(&doc, s, i, "DeviceID", 8, GB_MANSCDP_NONE);
        unsigned name = gb_manscdp_child(&doc, s, i, "Name", 4, GB_MANSCDP_NONE);
        if (id != GB_MANSCDP_NONE)
            last = doc.nodes[id].text;
        if (name != GB_MANSCDP_NONE)
            r->name_bytes += doc.nodes[name].text.len;
        r->items++;
    }
    size_t l = last.len < 31 ? last.len : 31;
    memcpy(r->last_item_id, s + last.off, l);
    r->last_item_id[l] = 0;
    return 0;
}

/* ---- expat: collect CmdType/SN/DeviceID and Item DeviceID/Name ---- */

enum { F_NONE, F_SN, F_DEVICE_ID, F_CMD, F_ITEM_ID, F_ITEM_NAME };

typedef struct {
    int depth, field, in_item;
    char text[256];
    size_t len;
    readback *r;
} expat_state;

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    (void)attrs;
    expat_state *st = ud;
    st->depth++;
    st->field = F_NONE;
    st->len = 0;
    if (st->depth == 2) {
        if (!strcmp(name, "SN"))
            st->field = F_SN;
        else if (!strcmp(name, "DeviceID"))
            st->field = F_DEVICE_ID;
        else if (!strcmp(name, "CmdType"))
            st->field = F_CMD;
    } else if (st->depth == 3 && !strcmp(name, "Item")) {
        st->in_item = 1;
        st->r->items++;
    } else if (st->depth == 4 && st->in_item) {
        if (!strcmp(name, "DeviceID"))
            st->field = F_ITEM_ID;
        else if (!strcmp(name, "Name"))
            st->field = F_ITEM_NAME;
    }
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    expat_state *st = ud;
    if (st->field == F_NONE || st->len + (size_t)len >= sizeof(st->text))
        return;
    memcpy(st->text + st->len, s, (size_t)len);
    st->len += (size_t)len;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    (void)name;
    expat_state *st = ud;
    st->text[st->len] = 0;
    switch (st->field) {
    case F_SN: st->r->sn = strtoull(st->text, NULL, 10); break;
    case F_DEVICE_ID: snprintf(st->r->device_id, 32, "%.31s", st->text); break;
    case F_ITEM_ID: snprintf(st->r->last_item_id, 32, "%.31s", st->text); break;
    case F_ITEM_NAME: st->r->name_bytes += st->len; break;
    default: break;
    }
    if (st->depth == 3)
        st->in_item = 0;
    st->field = F_NONE;
    st->len = 0;
    st->depth--;
}

static XML_Parser expat;

static int read_expat(const body *b, readback *r)
{
    expat_state st = {0, F_NONE, 0, {0}, 0, r};
    r->items = 0;
    r->name_bytes = 0;
    XML_ParserReset(expat, "ISO-8859-1");
    XML_SetUserData(expat, &st);
    XML_SetElementHandler(expat, on_start, on_end);
    XML_SetCharacterDataHandler(expat, on_text);
    return XML_Parse(expat, b->buf, (int)b->len, 1) == XML_STATUS_OK ? 0 : -1;
}

/* ---- timing ---- */

typedef int (*reader)(const body *, readback *);

static double loop_ns(reader fn, const body *b, long n)
{
    readback r;
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (fn(b, &r))
            abort();
    return (now_ns() - t0) / (double)n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static long calibrate(reader fn, const body *b, double ms)
{
    long n = 16;
    for (;;) {
        double t = loop_ns(fn, b, n) * (double)n;
        if (t >= ms * 1e6 / 4 || n > (1L << 28))
            return (long)((double)n * (ms * 1e6 / (t > 0 ? t : 1)) + 1);
        n *= 4;
    }
}

/* 64-item Catalog part into a caller buffer, as the fleet will do per device. */
static double writer_ns(long n, size_t *out_len)
{
    static char ids[64][24];
    gb_manscdp_catalog_item items[64];
    memset(items, 0, sizeof(items));
    for (int i = 0; i < 64; i++) {
        snprintf(ids[i], sizeof(ids[i]), "3402000000131%07d", i);
        items[i].device_id = (gb_manscdp_str){ids[i], 20};
        items[i].name = GB_MANSCDP_STR("\xB4\xF3\xC3\xC5\xBF\xDA\xC7\xF2\xBB\xFA");
        items[i].manufacturer = GB_MANSCDP_STR("Hikvision");
        items[i].model = GB_MANSCDP_STR("DS-2CD2T47G2");
        items[i].owner = GB_MANSCDP_STR("Owner");
        items[i].civil_code = GB_MANSCDP_STR("340104");
        items[i].address = GB_MANSCDP_STR("\xBA\xCF\xB7\xCA");
        items[i].parental = GB_MANSCDP_STR("0");
        items[i].parent_id = GB_MANSCDP_STR("34020000001180000001");
        items[i].safety_way = GB_MANSCDP_STR("0");
        items[i].register_way = GB_MANSCDP_STR("1");
        items[i].secrecy = GB_MANSCDP_STR("0");
        items[i].status = GB_MANSCDP_STR("ON");
        items[i].longitude = GB_MANSCDP_STR("117.2278");
        items[i].latitude = GB_MANSCDP_STR("31.8206");
        items[i].ptz_type = GB_MANSCDP_STR("1");
    }
    static char buf[65536];
    gb_manscdp_head h = {GB_MANSCDP_CHARSET_GB2312, 0, GB_MANSCDP_STR("34020000001180000001")};
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        gb_manscdp_writer w;
        h.sn = (uint64_t)i;
        gb_manscdp_w_init(&w, buf, sizeof(buf));
        *out_len = gb_manscdp_write_catalog(&w, &h, 64, items, 64);
        if (!*out_len)
            abort();
    }
    return (now_ns() - t0) / (double)n;
}

int main(int argc, char **argv)
{
    int reps = 51;
    double ms = 2.0;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--quick")) {
            reps = 9;
            ms = 1.0;
        }
    expat = XML_ParserCreate("ISO-8859-1");
    body bodies[3] = {{"keepalive", (char *)KEEPALIVE, sizeof(KEEPALIVE) - 1},
                      make_catalog("Catalog, 4 items", 4), make_catalog("Catalog, 64 items", 64)};
    reader readers[2] = {read_gbsip, read_expat};

    for (int m = 0; m < 3; m++) {
        readback a, b;
        memset(&a, 0, sizeof(a));
        memset(&b, 0, sizeof(b));
        if (read_gbsip(&bodies[m], &a) || read_expat(&bodies[m], &b) || a.sn != b.sn ||
            strcmp(a.device_id, b.device_id) || a.items != b.items ||
            strcmp(a.last_item_id, b.last_item_id) ||
            /* expat hands the all-GB2312 names back as UTF-8 of Latin-1: twice the bytes */
            b.name_bytes != 2 * a.name_bytes) {
            fprintf(stderr, "readers disagree on %s\n", bodies[m].label);
            return 1;
        }
    }

    long n[3][2];
    double *t[3][2];
    for (int m = 0; m < 3; m++)
        for (int p = 0; p < 2; p++) {
            n[m][p] = calibrate(readers[p], &bodies[m], ms);
            t[m][p] = calloc((size_t)reps, sizeof(double));
        }
    for (int r = 0; r < reps; r++)
        for (int m = 0; m < 3; m++)
            for (int p = 0; p < 2; p++)
                t[m][p][r] = loop_ns(readers[p], &bodies[m], n[m][p]);

    printf("%-20s %7s  %12s %12s  %12s %12s  %7s\n", "body", "bytes", "gbsip min", "median",
           "expat min", "median", "speedup");
    for (int m = 0; m < 3; m++) {
        double mn[2], md[2];
        for (int p = 0; p < 2; p++) {
            qsort(t[m][p], (size_t)reps, sizeof(double), cmp_double);
            mn[p] = t[m][p][0];
            md[p] = t[m][p][reps / 2];
        }
        printf("%-20s %7zu  %9.0f ns %9.0f ns  %9.0f ns %9.0f ns  %6.1fx\n", bodies[m].label,
               bodies[m].len, mn[0], md[0], mn[1], md[1], mn[1] / mn[0]);
    }

    size_t wlen = 0;
    double best = 1e18;
    long wn = reps < 51 ? 2000 : 20000;
    for (int r = 0; r < 5; r++) {
        double x = writer_ns(wn, &wlen);
        if (x < best)
            best = x;
    }
    printf("\nwriter: 64-item Catalog part (%zu bytes): %.0f ns min -> %.2f s of one core "
           "for 100,000 devices\n", wlen, best, best * 1e5 / 1e9);
    XML_ParserFree(expat);
    return 0;
}
