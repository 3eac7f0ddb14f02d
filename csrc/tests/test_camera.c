/*
 * test_camera.c - the fleet as cameras (camera_fleet.c, camera.c): a
 * platform played by hand sends queries, controls and subscriptions with
 * the fixture bodies of tests/data/manscdp, and every answer is read back
 * with the MANSCDP reader.  Explicit time, no sockets, no sleeps.  Each
 * test names the GB/T 28181 clause (2016 edition unless said) it checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camera.h"
#include "fleet_rig.h"
#include "manscdp.h"
#include "sip_fields.h"


#define DEV_ID "34020000001320000001"
#define CH_ID "34020000001310000001"
#define NVR_ID "34020000001180000001"

/* ---- the platform's side ----------------------------------------------------- */

typedef struct {
    char buf[16384];
    size_t len;
    uint32_t dev;
    int dest, retransmit;
} msg_out;

static msg_out outs[256];

/* Every queued message, copied out; the queue emptied. */
static size_t take_all(gb_fleet *f)
{
    size_t n = gb_fleet_out_count(f), k;
    const gb_dev_out *o = gb_fleet_out_items(f);
    for (k = 0; k < n && k < 256; k++) {
        size_t len = o[k].len < sizeof outs[k].buf - 1 ? o[k].len : sizeof outs[k].buf - 1;
        memcpy(outs[k].buf, gb_fleet_out_data(f) + o[k].off, len);
        outs[k].buf[len] = '\0';
        outs[k].len = len;
        outs[k].dev = o[k].dev;
        outs[k].dest = o[k].dest;
        outs[k].retransmit = o[k].retransmit;
    }
    gb_fleet_out_clear(f);
    return k;
}

static int starts_with(const msg_out *m, const char *lit)
{
    return strncmp(m->buf, lit, strlen(lit)) == 0;
}

/* A file of the fixtures, NUL-terminated in a static buffer. */
static const char *fixture(const char *name)
{
    static char data[4][8192];
    static int which;
    /* found from this file's path (compiled by absolute path): any cwd */
    const char *src = __FILE__, *end = strstr(src, "csrc/tests/test_camera.c");
    char path[1024];
    snprintf(path, sizeof path, "%.*stests/data/manscdp/%s.xml",
             (int)(end ? end - src : 0), src, name);
    FILE *fp = fopen(path, "rb");
    char *out = data[which++ % 4];
    size_t n = fp ? fread(out, 1, sizeof data[0] - 1, fp) : 0;
    if (fp)
        fclose(fp);
    out[n] = '\0';
    if (!n)
        fprintf(stderr, "missing fixture %s\n", path);
    return out;
}

static unsigned seq;

/* A request from the platform 34020000002000000001 to user `to`, with
 * extra header lines and a MANSCDP body, fed to the fleet at now.  The
 * request stays in req so that a test can send it again. */
static char req[20000];
static size_t req_len;

static long send_request(gb_fleet *f, const char *method, const char *to, const char *extra,
                         const char *body, int64_t now)
{
    seq++;
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof req,
                     "%s sip:%s@127.0.0.1:5060 SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKplat%u\r\n"
                     "From: <sip:34020000002000000001@3402000000>;tag=plat%u\r\n"
                     "To: <sip:%s@3402000000>\r\n"
                     "Call-ID: call%u@127.0.0.1\r\n"
                     "CSeq: %u %s\r\n"
                     "Max-Forwards: 70\r\n"
                     "%s%s"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, to, seq, seq, to, seq, seq, method, extra ? extra : "",
                     body ? "Content-Type: Application/MANSCDP+xml\r\n" : "", blen,
                     body ? body : "");
    req_len = (size_t)n;
    return gb_fleet_handle_datagram(f, req, req_len, now);
}

/* A SUBSCRIBE with this Event and Expires (NULL: none) and the
 * platform's Contact. */
static long subscribe(gb_fleet *f, const char *event, const char *expires, const char *body,
                      int64_t now)
{
    char extra[256];
    snprintf(extra, sizeof extra, "Event: %s\r\n%s%s%sContact: <sip:34020000002000000001@127.0.0.1:5060>\r\n",
             event, expires ? "Expires: " : "", expires ? expires : "", expires ? "\r\n" : "");
    return send_request(f, "SUBSCRIBE", DEV_ID, extra, body, now);
}

static long resend_request(gb_fleet *f, int64_t now)
{
    return gb_fleet_handle_datagram(f, req, req_len, now);
}

/* A response status line's code, 0 when m is a request. */
static unsigned status_of(const msg_out *m)
{
    return starts_with(m, "SIP/2.0 ") ? (unsigned)atoi(m->buf + 8) : 0;
}

/* The MANSCDP body of a message, parsed (nodes and body in statics). */
static gb_manscdp_node nodes[4096];
static gb_manscdp_doc doc;
static const char *doc_body;

static int read_answer(const msg_out *m)
{
    const char *b = strstr(m->buf, "\r\n\r\n");
    if (!b)
        return -1;
    doc_body = b + 4;
    gb_manscdp_init(&doc, nodes, 4096);
    return gb_manscdp_parse(doc_body, m->len - (size_t)(doc_body - m->buf), NULL, &doc, NULL) ==
                   GB_MANSCDP_OK
               ? 0
               : -1;
}

/* Text of the first element at path below node `under` (static copy), ""
 * when none. */
static const char *text_under(unsigned under, const char *path)
{
    static char out[512];
    unsigned k = gb_manscdp_find(&doc, doc_body, under, path, strlen(path), GB_MANSCDP_NONE);
    out[0] = '\0';
    if (k != GB_MANSCDP_NONE) {
        gb_span t = doc.nodes[k].text;
        size_t n = t.len < sizeof out - 1 ? t.len : sizeof out - 1;
        memcpy(out, doc_body + t.off, n);
        out[n] = '\0';
    }
    return out;
}

static const char *text_at(const char *path)
{
    return text_under(0, path);
}

static unsigned count_at(const char *path)
{
    unsigned n = 0;
    for (unsigned k = gb_manscdp_find(&doc, doc_body, 0, path, strlen(path), GB_MANSCDP_NONE);
         k != GB_MANSCDP_NONE; k = gb_manscdp_find(&doc, doc_body, 0, path, strlen(path), k))
        n++;
    return n;
}

static const char *attr_at(const char *path, const char *name)
{
    static char out[64];
    unsigned k = gb_manscdp_find(&doc, doc_body, 0, path, strlen(path), GB_MANSCDP_NONE);
    gb_span v;
    out[0] = '\0';
    if (k != GB_MANSCDP_NONE && gb_manscdp_attr(&doc, doc_body, k, name, strlen(name), &v)) {
        memcpy(out, doc_body + v.off, v.len < 63 ? v.len : 63);
        out[v.len < 63 ? v.len : 63] = '\0';
    }
    return out;
}

/* Answer our fleet's request m with status (a platform's 200). */
static long ack(gb_fleet *f, const msg_out *m, unsigned status, int64_t now)
{
    sent s;
    memcpy(s.buf, m->buf, m->len < sizeof s.buf ? m->len : sizeof s.buf - 1);
    s.len = m->len < sizeof s.buf ? m->len : sizeof s.buf - 1;
    s.buf[s.len] = '\0';
    return respond(f, &s, status, NULL, now);
}

/* A registered camera fleet with one device (id), through 401 and 200. */
static gb_fleet *camera(gb_dev_config *cfg, const char *id)
{
    gb_fleet *f = make_fleet(cfg);
    gb_fleet_add(f, id, strlen(id));
    gb_fleet_set_wall_clock(f, 0, 1709280000000LL); /* 2024-03-01T16:00:00 Beijing */
    register_device(f, 0, 0, 3600);
    gb_fleet_out_clear(f);
    gb_fleet_events_clear(f);
    return f;
}

static void config(gb_dev_config *cfg)
{
    base_config(cfg);
    cfg->keepalive_interval_ms = 0; /* no keepalive in the way */
    cfg->answer_window = 0; /* every part at once: a test takes a whole answer in
                               one take (test_parts_window_and_gap: the default) */
}

/* ---- queries (§9.5) ------------------------------------------------------------ */

/* §9.5.1, A.2.4.3/A.2.6.4: Catalog query → 200 OK, then the answer as a
 * MESSAGE of its own (Response, SN echoed, SumNum and DeviceList Num) to
 * the platform; its 200 completes the answer. */
static void test_catalog_query(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = camera(&cfg, DEV_ID);
    const char *q = "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Query>\r\n"
                    "<CmdType>Catalog</CmdType>\r\n<SN>17430</SN>\r\n"
                    "<DeviceID>" DEV_ID "</DeviceID>\r\n</Query>\r\n";
    CHECK_EQ_INT(send_request(f, "MESSAGE", DEV_ID, NULL, q, 100), 0);
    CHECK_EQ_INT(take_all(f), 2);
    /* the 200 first, then the answer (conformance suites check the order) */
    CHECK_EQ_INT(status_of(&outs[0]), 200);
    CHECK(strstr(outs[0].buf, "CSeq: ") && strstr(outs[0].buf, " MESSAGE\r\n"));
    CHECK(strstr(outs[0].buf, "To: <sip:" DEV_ID "@3402000000>;tag=") != NULL);
    CHECK(starts_with(&outs[1], "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n"));
    CHECK(strstr(outs[1].buf, "\r\nContent-Type: Application/MANSCDP+xml\r\n") != NULL);
    CHECK(read_answer(&outs[1]) == 0);
    CHECK_EQ_INT(doc.root, GB_MANSCDP_RESPONSE);
    CHECK_EQ_INT(doc.cmd, GB_MANSCDP_CMD_CATALOG);
    CHECK_EQ_INT(doc.sn, 17430);
    CHECK_EQ_INT(doc.charset, GB_MANSCDP_CHARSET_GB2312);
    CHECK_MEM(doc_body + doc.device_id.off, doc.device_id.len, DEV_ID);
    CHECK(strcmp(text_at("SumNum"), "1") == 0);
    CHECK(strcmp(attr_at("DeviceList", "Num"), "1") == 0);
    CHECK(strcmp(text_at("DeviceList/Item/DeviceID"), CH_ID) == 0);
    CHECK(strcmp(text_at("DeviceList/Item/ParentID"), DEV_ID) == 0);
    CHECK(strcmp(text_at("DeviceList/Item/Parental"), "0") == 0);
    CHECK(strcmp(text_at("DeviceList/Item/Status"), "ON") == 0);
    CHECK(strcmp(text_at("DeviceList/Item/Name"), "Camera 01") == 0);
    CHECK(strcmp(text_at("DeviceList/Item/CivilCode"), "340200") == 0);
    CHECK(strcmp(text_at("DeviceList/Item/Info/PTZType"), "1") == 0);
    CHECK(text_at("DeviceList/Item/Longitude")[0] != '\0');
    const gb_dev_event *e = last_event(f, GB_DEV_EV_QUERY);
    CHECK(e && e->status == 200 && e->value == GB_MANSCDP_CMD_CATALOG && e->arg == 17430);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->queries[GB_MANSCDP_CMD_CATALOG], 1);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->answers_in_flight, 1);
    /* the platform's 200 to the answer completes it */
    gb_fleet_events_clear(f);
    CHECK_EQ_INT(ack(f, &outs[1], 200, 130), 0);
    e = last_event(f, GB_DEV_EV_ANSWERED);
    CHECK(e && e->flags == 1 && e->arg == 17430 && e->latency_ms == 30);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->answers_in_flight, 0);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->answers_completed, 1);
    CHECK_EQ_INT(gb_fleet_next_deadline(f) > 100000, 1); /* only the refresh is left */
    gb_fleet_free(f);
}

/* Text of element `field` of the n-th (0-based) Catalog item, "" when none. */
static const char *item_field(unsigned n, const char *field)
{
    const char *items = "DeviceList/Item";
    unsigned k = gb_manscdp_find(&doc, doc_body, 0, items, strlen(items), GB_MANSCDP_NONE);
    while (n-- && k != GB_MANSCDP_NONE)
        k = gb_manscdp_find(&doc, doc_body, 0, items, strlen(items), k);
    return k == GB_MANSCDP_NONE ? "" : text_under(k, field);
}

/* A.2.6.4 (Catalog item): a channel given its own Name, Status, Parental,
 * ParentID, CivilCode, Longitude/Latitude and PTZType answers with them;
 * its neighbour keeps the values derived from the profile and device ID,
 * and clearing the fields brings the derived ones back. */
static void test_catalog_channel_fields(void)
{
    gb_dev_config cfg;
    config(&cfg);
    cfg.answer_max_message = 8000; /* both items in one part */
    gb_fleet *f = camera(&cfg, DEV_ID);
    CHECK_EQ_INT(gb_fleet_set_camera(f, 0, 0, 2, UINT32_MAX), 0);
    gb_cam_chan_fields o = {
        .set = GB_CAM_O_ALL, .parental = 1, .ptz_type = 2, .civil_len = 8,
        .civil_code = "11010501", .parent_len = 20, .parent_id = "34020000002160000001",
        .lon = 116.397128, .lat = 39.916527,
    };
    const char *why = NULL;
    CHECK_EQ_INT(gb_fleet_set_channel_fields(f, 0, 1, &o, &why), 0);
    CHECK(why && !*why);
    CHECK_EQ_INT(gb_fleet_set_channel_name(f, 0, 1, "Gate", 4, NULL, 0), 0);
    gb_fleet_set_channel_status(f, 0, 1, 0, 100);
    gb_fleet_out_clear(f);
    const char *q = "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Query>\r\n"
                    "<CmdType>Catalog</CmdType>\r\n<SN>7</SN>\r\n"
                    "<DeviceID>" DEV_ID "</DeviceID>\r\n</Query>\r\n";
    CHECK_EQ_INT(send_request(f, "MESSAGE", DEV_ID, NULL, q, 100), 0);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(read_answer(&outs[1]) == 0);
    CHECK_EQ_INT(count_at("DeviceList/Item"), 2);
    /* channel 0: derived */
    CHECK(strcmp(item_field(0, "Parental"), "0") == 0);
    CHECK(strcmp(item_field(0, "ParentID"), DEV_ID) == 0);
    CHECK(strcmp(item_field(0, "CivilCode"), "340200") == 0);
    CHECK(strcmp(item_field(0, "Info/PTZType"), "1") == 0);
    CHECK(strcmp(item_field(0, "Status"), "ON") == 0);
    /* channel 1: as given */
    CHECK(strcmp(item_field(1, "Name"), "Gate") == 0);
    CHECK(strcmp(item_field(1, "Status"), "OFF") == 0);
    CHECK(strcmp(item_field(1, "Parental"), "1") == 0);
    CHECK(strcmp(item_field(1, "ParentID"), "34020000002160000001") == 0);
    CHECK(strcmp(item_field(1, "CivilCode"), "11010501") == 0);
    CHECK(strcmp(item_field(1, "Longitude"), "116.397128") == 0);
    CHECK(strcmp(item_field(1, "Latitude"), "39.916527") == 0);
    CHECK(strcmp(item_field(1, "Info/PTZType"), "2") == 0);
    CHECK(gb_fleet_channel_fields(f, 0, 1) != NULL);
    CHECK(gb_fleet_channel_fields(f, 0, 0) == NULL);
    /* invalid fields are refused with the reason, the old ones kept */
    gb_cam_chan_fields bad = {.set = GB_CAM_O_CIVIL_CODE, .civil_len = 3, .civil_code = "12a"};
    CHECK_EQ_INT(gb_fleet_set_channel_fields(f, 0, 1, &bad, &why), -1);
    CHECK(strstr(why, "CivilCode") != NULL);
    bad = (gb_cam_chan_fields){.set = GB_CAM_O_PTZ_TYPE, .ptz_type = 5};
    CHECK_EQ_INT(gb_fleet_set_channel_fields(f, 0, 1, &bad, &why), -1);
    bad = (gb_cam_chan_fields){.set = GB_CAM_O_POSITION, .lon = 200.0};
    CHECK_EQ_INT(gb_fleet_set_channel_fields(f, 0, 1, &bad, &why), -1);
    CHECK_EQ_INT(gb_fleet_set_channel_fields(f, 0, 2, &o, &why), -1);
    CHECK(strcmp(why, "no such channel") == 0);
    CHECK_EQ_INT(gb_fleet_channel_fields(f, 0, 1)->civil_len, 8);
    /* cleared: derived again */
    CHECK_EQ_INT(gb_fleet_set_channel_fields(f, 0, 1, NULL, NULL), 0);
    CHECK(gb_fleet_channel_fields(f, 0, 1) == NULL);
    CHECK_EQ_INT(send_request(f, "MESSAGE", DEV_ID, NULL, q, 200), 0);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(read_answer(&outs[1]) == 0);
    CHECK(strcmp(item_field(1, "CivilCode"), "340200") == 0);
    CHECK(strcmp(item_field(1, "Parental"), "0") == 0);
    CHECK(strcmp(item_field(1, "Name"), "Gate") == 0);
    gb_fleet_free(f);
}

/* A.2.6.4: a profile's channel fields hold for every channel of its
 * devices at no cost per device; a channel's own field wins over them. */
static void test_catalog_profile_channel_fields(void)
{
    gb_dev_config cfg;
    config(&cfg);
    cfg.answer_max_message = 8000;
    gb_fleet *f = camera(&cfg, DEV_ID);
    gb_cam_profile p;
    gb_cam_profile_from_preset(&p, gb_cam_preset_find("generic", 7));
    p.chan = (gb_cam_chan_fields){.set = GB_CAM_O_CIVIL_CODE | GB_CAM_O_PARENT_ID,
                                  .civil_len = 6, .civil_code = "110105",
                                  .parent_len = 20, .parent_id = "34020000002160000009"};
    int k = gb_fleet_add_profile(f, &p, NULL);
    CHECK(k > 0);
    CHECK_EQ_INT(gb_fleet_set_camera(f, 0, (unsigned)k, 2, GB_CAM_BASE_FROM_ID), 0);
    gb_cam_chan_fields own = {.set = GB_CAM_O_CIVIL_CODE, .civil_len = 4, .civil_code = "4403"};
    CHECK_EQ_INT(gb_fleet_set_channel_fields(f, 0, 1, &own, NULL), 0);
    CHECK_EQ_INT(send_request(f, "MESSAGE", DEV_ID, NULL,
                              "<?xml version=\"1.0\"?><Query><CmdType>Catalog</CmdType>"
                              "<SN>5</SN><DeviceID>" DEV_ID "</DeviceID></Query>", 100), 0);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(read_answer(&outs[1]) == 0);
    CHECK(strcmp(item_field(0, "CivilCode"), "110105") == 0);
    CHECK(strcmp(item_field(0, "ParentID"), "34020000002160000009") == 0);
    CHECK(strcmp(item_field(1, "CivilCode"), "4403") == 0);
    CHECK(strcmp(item_field(1, "ParentID"), "34020000002160000009") == 0);
    /* a profile with invalid channel fields is refused */
    p.chan = (gb_cam_chan_fields){.set = GB_CAM_O_PTZ_TYPE, .ptz_type = 9};
    const char *why = NULL;
    CHECK_EQ_INT(gb_fleet_add_profile(f, &p, &why), -1);
    CHECK(why && strstr(why, "PTZType"));
    gb_fleet_free(f);
}

/* A UTF-8 query is answered in UTF-8, Chinese names and all (A.1: the
 * answer declares the charset the query used). */
static void test_answer_charset_follows_query(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = camera(&cfg, DEV_ID);
    const char utf8_name[] = "\xe5\xa4\xa7\xe9\x97\xa8\xe5\x8f\xa3";   /* 大门口 */
    const char gb_name[] = "\xb4\xf3\xc3\xc5\xbf\xda";                  /* the same, GB2312 */
    CHECK_EQ_INT(gb_fleet_set_channel_name(f, 0, 0, utf8_name, 9, gb_name, 6), 0);
    send_request(f, "MESSAGE", DEV_ID, NULL,
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Query><CmdType>Catalog</CmdType>"
                 "<SN>5</SN><DeviceID>" DEV_ID "</DeviceID></Query>", 10);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(read_answer(&outs[1]) == 0 && doc.charset == GB_MANSCDP_CHARSET_UTF8);
    CHECK(strcmp(text_at("DeviceList/Item/Name"), utf8_name) == 0);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("deviceinfo-query"), 20);
    send_request(f, "MESSAGE", DEV_ID, NULL,
                 "<?xml version=\"1.0\" encoding=\"GB2312\"?><Query><CmdType>Catalog</CmdType>"
                 "<SN>6</SN><DeviceID>" DEV_ID "</DeviceID></Query>", 30);
    CHECK_EQ_INT(take_all(f), 4);
    CHECK(read_answer(&outs[3]) == 0 && doc.charset == GB_MANSCDP_CHARSET_GB2312);
    CHECK(strcmp(text_at("DeviceList/Item/Name"), gb_name) == 0);
    char id[GB_CAM_ID_LEN], name[64];
    size_t nl;
    uint8_t st;
    CHECK_EQ_INT(gb_fleet_channel(f, 0, 0, id, name, sizeof name, &nl, &st), 0);
    CHECK_MEM(id, GB_CAM_ID_LEN, CH_ID);
    CHECK_MEM(name, nl, "\xe5\xa4\xa7\xe9\x97\xa8\xe5\x8f\xa3");
    gb_fleet_free(f);
}

/* 2022 Annex M: a catalog larger than one message goes out in parts, each
 * its own MESSAGE with the query's SN, SumNum = the whole and DeviceList
 * Num = its own items; every item once, in order. */
static void test_catalog_split_with_sumnum(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, NVR_ID, 20);
    gb_cam_profile nvr;
    gb_cam_profile_from_preset(&nvr, gb_cam_preset_find("generic-nvr", 11));
    int k = gb_fleet_add_profile(f, &nvr, NULL);
    CHECK(k == 1);
    CHECK_EQ_INT(gb_fleet_set_camera(f, 0, (unsigned)k, 64, 1), 0);
    register_device(f, 0, 0, 3600);
    gb_fleet_out_clear(f);
    gb_fleet_events_clear(f);
    send_request(f, "MESSAGE", NVR_ID, NULL, fixture("catalog-query"), 100);
    size_t n = take_all(f);
    CHECK(n > 2);
    CHECK_EQ_INT(status_of(&outs[0]), 200);
    unsigned items = 0, parts = 0;
    char seen[64] = {0};
    for (size_t m = 1; m < n; m++) {
        CHECK(outs[m].len <= 1400);
        CHECK(read_answer(&outs[m]) == 0);
        CHECK_EQ_INT(doc.sn, 17430);
        CHECK(strcmp(text_at("SumNum"), "64") == 0);
        unsigned num = (unsigned)atoi(attr_at("DeviceList", "Num"));
        CHECK_EQ_INT(count_at("DeviceList/Item"), num);
        for (unsigned it = gb_manscdp_find(&doc, doc_body, 0, "DeviceList/Item/DeviceID", 24,
                                           GB_MANSCDP_NONE);
             it != GB_MANSCDP_NONE;
             it = gb_manscdp_find(&doc, doc_body, 0, "DeviceList/Item/DeviceID", 24, it)) {
            int serial = atoi(doc_body + doc.nodes[it].text.off + 13);
            CHECK(serial >= 1 && serial <= 64 && serial == (int)items + 1);
            if (serial >= 1 && serial <= 64)
                seen[serial - 1]++;
            items++;
        }
        parts++;
    }
    CHECK_EQ_INT(items, 64);
    for (int c = 0; c < 64; c++)
        CHECK_EQ_INT(seen[c], 1);
    fprintf(stderr, "catalog of 64 channels: %u parts under 1400 bytes\n", parts);
    /* answered in any order, the answer completes once */
    memcpy(outs + 128, outs + 1, sizeof outs[0] * (n - 1));
    for (size_t m = n - 1; m-- > 0;)
        ack(f, &outs[128 + m], 200, 200);
    CHECK_EQ_INT(count_events(f, GB_DEV_EV_ANSWERED), 1);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_ANSWERED);
    CHECK(e && e->flags == parts);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->answers_acknowledged, parts);
    gb_fleet_free(f);
}

/* answer_window 1, the default: the next part only after the last one's
 * 200 (GB/T 28181-2022 Annex M; what WVP does as a cascaded device);
 * answer_gap_ms: parts spaced in time. */
static void test_parts_window_and_gap(void)
{
    gb_dev_config cfg, dflt;
    config(&cfg);
    gb_dev_config_default(&dflt);
    CHECK_EQ_INT(dflt.answer_window, 1);
    cfg.answer_window = dflt.answer_window;
    cfg.answer_max_items = 2;
    cfg.answer_max_message = 8000; /* two items fit: the item bound decides */
    gb_fleet *f = camera(&cfg, DEV_ID);
    gb_fleet_set_camera(f, 0, 0, 8, 1);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("deviceinfo-query") , 0);
    take_all(f);
    send_request(f, "MESSAGE", DEV_ID, NULL,
                 "<?xml version=\"1.0\"?><Query><CmdType>Catalog</CmdType><SN>9</SN>"
                 "<DeviceID>" DEV_ID "</DeviceID></Query>", 10);
    CHECK_EQ_INT(take_all(f), 2); /* 200 and part 1 only */
    for (int part = 2; part <= 4; part++) {
        ack(f, &outs[1], 200, 10 + part);
        CHECK_EQ_INT(take_all(f), 1);
        CHECK(read_answer(&outs[0]) == 0 && strcmp(attr_at("DeviceList", "Num"), "2") == 0);
        memcpy(&outs[1], &outs[0], sizeof outs[0]);
    }
    ack(f, &outs[1], 200, 20);
    CHECK_EQ_INT(take_all(f), 0);
    CHECK_EQ_INT(count_events(f, GB_DEV_EV_ANSWERED), 1); /* the catalog (DeviceInfo unanswered) */
    gb_fleet_free(f);

    cfg.answer_window = 0;
    cfg.answer_gap_ms = 100;
    f = camera(&cfg, DEV_ID);
    gb_fleet_set_camera(f, 0, 0, 8, 1);
    send_request(f, "MESSAGE", DEV_ID, NULL,
                 "<?xml version=\"1.0\"?><Query><CmdType>Catalog</CmdType><SN>9</SN>"
                 "<DeviceID>" DEV_ID "</DeviceID></Query>", 1000);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK_EQ_INT(gb_fleet_next_deadline(f), 1100);
    gb_fleet_handle_timer(f, 1099);
    CHECK_EQ_INT(take_all(f), 0);
    gb_fleet_handle_timer(f, 1100);
    CHECK_EQ_INT(take_all(f), 1);
    gb_fleet_handle_timer(f, 1300);
    CHECK_EQ_INT(take_all(f), 1); /* part 3 was due at 1200: sent late, part 4 a gap later */
    CHECK_EQ_INT(gb_fleet_next_deadline(f), 1400);
    gb_fleet_free(f);
}

/* RFC 3261 §17.1.2 for the answers: over UDP an unanswered answer is sent
 * again at T1, 2T1, ... capped at T2, and given up at Timer F (64 T1);
 * over TCP it is sent once. */
static void test_answer_retransmission(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = camera(&cfg, DEV_ID);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("deviceinfo-query"), 1000);
    CHECK_EQ_INT(take_all(f), 2);
    msg_out first = outs[1];
    static const int64_t at[] = {1500, 2500, 4500, 8500, 12500, 16500, 20500, 24500, 28500, 32500};
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        CHECK_EQ_INT(gb_fleet_next_deadline(f), at[k]);
        gb_fleet_handle_timer(f, at[k]);
        CHECK_EQ_INT(take_all(f), 1);
        CHECK(outs[0].retransmit && outs[0].len == first.len &&
              memcmp(outs[0].buf, first.buf, first.len) == 0);
    }
    CHECK_EQ_INT(gb_fleet_next_deadline(f), 33000);
    gb_fleet_handle_timer(f, 33000);
    CHECK_EQ_INT(take_all(f), 0);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_ANSWER_FAILED);
    CHECK(e && e->status == 0 && e->reason == GB_DEV_R_TIMEOUT &&
          e->value == GB_MANSCDP_CMD_DEVICE_INFO && e->arg == 18);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->answers_retransmitted, 10);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->answers_failed, 1);
    CHECK_EQ_INT(count_events(f, GB_DEV_EV_ANSWERED), 0);
    gb_fleet_free(f);

    cfg.transport = GB_DEV_TCP;
    f = camera(&cfg, DEV_ID);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("deviceinfo-query"), 1000);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK_EQ_INT(gb_fleet_next_deadline(f), 33000);
    gb_fleet_handle_timer(f, 33000);
    CHECK_EQ_INT(take_all(f), 0);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->answers_failed, 1);
    gb_fleet_free(f);
}

/* RFC 3261 §17.2.2: a retransmitted query gets the same 200 again and no
 * second answer. */
static void test_retransmitted_query_absorbed(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = camera(&cfg, DEV_ID);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("devicestatus-query"), 10);
    CHECK_EQ_INT(take_all(f), 2);
    msg_out ok = outs[0];
    resend_request(f, 500);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK(outs[0].len == ok.len && memcmp(outs[0].buf, ok.buf, ok.len) == 0);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->requests_retransmitted, 1);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->queries[GB_MANSCDP_CMD_DEVICE_STATUS], 1);
    gb_fleet_free(f);
}

/* §9.5.3 DeviceInfo, §9.5.2 DeviceStatus, A.2.4.7 ConfigDownload
 * BasicParam (the device's real configuration), A.2.4.8 PresetQuery. */
static void test_single_answers(void)
{
    gb_dev_config cfg;
    config(&cfg);
    cfg.expires = 3600;
    cfg.keepalive_interval_ms = 60000;
    cfg.keepalive_max_missed = 3;
    gb_fleet *f = camera(&cfg, DEV_ID);
    gb_fleet_out_clear(f);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("deviceinfo-query"), 10);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(read_answer(&outs[1]) == 0 && doc.cmd == GB_MANSCDP_CMD_DEVICE_INFO && doc.sn == 18);
    CHECK(strcmp(text_at("Result"), "OK") == 0);
    CHECK(strcmp(text_at("Manufacturer"), "gbsip") == 0);
    CHECK(strcmp(text_at("DeviceName"), "gbsip camera") == 0);
    CHECK(strcmp(text_at("Channel"), "1") == 0);

    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("devicestatus-query"), 20);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(read_answer(&outs[1]) == 0 && doc.cmd == GB_MANSCDP_CMD_DEVICE_STATUS && doc.sn == 21);
    CHECK(strcmp(text_at("Online"), "ONLINE") == 0);
    CHECK(strcmp(text_at("Status"), "OK") == 0);
    CHECK(strcmp(text_at("Encode"), "ON") == 0);
    CHECK(strcmp(text_at("Record"), "OFF") == 0);
    /* wall clock 2024-03-01T08:00:00Z + 20 ms, shown in Beijing time */
    CHECK(strcmp(text_at("DeviceTime"), "2024-03-01T16:00:00") == 0);
    CHECK(strcmp(attr_at("Alarmstatus", "Num"), "1") == 0);
    CHECK(strcmp(text_at("Alarmstatus/Item/DeviceID"), "34020000001340000001") == 0);
    CHECK(strcmp(text_at("Alarmstatus/Item/DutyStatus"), "ONDUTY") == 0);

    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("configdownload-query"), 30);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(read_answer(&outs[1]) == 0 && doc.cmd == GB_MANSCDP_CMD_CONFIG_DOWNLOAD);
    CHECK(strcmp(text_at("Result"), "OK") == 0);
    CHECK(strcmp(text_at("BasicParam/Expiration"), "3600") == 0);
    CHECK(strcmp(text_at("BasicParam/HeartBeatInterval"), "60") == 0);
    CHECK(strcmp(text_at("BasicParam/HeartBeatCount"), "3") == 0);
    CHECK(strcmp(text_at("BasicParam/Name"), "gbsip camera") == 0);

    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("presetquery-query"), 40);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(read_answer(&outs[1]) == 0 && doc.cmd == GB_MANSCDP_CMD_PRESET_QUERY && doc.sn == 50);
    CHECK_MEM(doc_body + doc.device_id.off, doc.device_id.len, CH_ID);
    CHECK(strcmp(attr_at("PresetList", "Num"), "4") == 0);
    CHECK(strcmp(text_at("PresetList/Item/PresetName"), "Preset 1") == 0);
    gb_fleet_free(f);
}

/* §9.7 RecordInfo: synthetic files of record_segment_s over the asked
 * range of the channel, none in the future, split like Catalog. */
static void test_record_info(void)
{
    gb_dev_config cfg;
    config(&cfg);
    cfg.record_segment_s = 3600;
    gb_fleet *f = camera(&cfg, DEV_ID);
    /* now is 2024-03-01T16:00:00.010 in Beijing: 16 whole hours, and the
     * file begun at 16:00 */
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("recordinfo-query"), 10);
    size_t n = take_all(f);
    CHECK(n >= 2);
    unsigned total = 0;
    for (size_t m = 1; m < n; m++) {
        CHECK(read_answer(&outs[m]) == 0 && doc.cmd == GB_MANSCDP_CMD_RECORD_INFO);
        CHECK_MEM(doc_body + doc.device_id.off, doc.device_id.len, CH_ID);
        CHECK(strcmp(text_at("SumNum"), "17") == 0);
        if (m == 1) {
            CHECK(strcmp(text_at("RecordList/Item/StartTime"), "2024-03-01T00:00:00") == 0);
            CHECK(strcmp(text_at("RecordList/Item/EndTime"), "2024-03-01T01:00:00") == 0);
            CHECK(strcmp(text_at("RecordList/Item/Type"), "time") == 0);
        }
        total += count_at("RecordList/Item");
    }
    CHECK_EQ_INT(total, 17);
    /* alarm recordings: none, SumNum 0 and no list (2022 Annex M) */
    send_request(f, "MESSAGE", DEV_ID, NULL,
                 "<?xml version=\"1.0\"?><Query><CmdType>RecordInfo</CmdType><SN>41</SN>"
                 "<DeviceID>" CH_ID "</DeviceID><StartTime>2024-03-01T00:00:00</StartTime>"
                 "<EndTime>2024-03-01T23:59:59</EndTime><Type>alarm</Type></Query>", 20);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(read_answer(&outs[1]) == 0 && strcmp(text_at("SumNum"), "0") == 0);
    CHECK_EQ_INT(count_at("RecordList"), 0);
    /* a query without its time range is refused */
    send_request(f, "MESSAGE", DEV_ID, NULL,
                 "<?xml version=\"1.0\"?><Query><CmdType>RecordInfo</CmdType><SN>42</SN>"
                 "<DeviceID>" CH_ID "</DeviceID></Query>", 30);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 400);
    gb_fleet_free(f);
}

/* ---- controls (§9.3) ------------------------------------------------------------ */

/* §9.3.1: PTZ and TeleBoot get their 200 and nothing else; §9.3.2:
 * RecordCmd, GuardCmd and AlarmCmd get a Response with Result too. */
static void test_device_control(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = camera(&cfg, DEV_ID);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("devicecontrol-ptz"), 10);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 200);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_CONTROL);
    CHECK(e && e->value == GB_DEV_CTL_PTZ && e->flags == 1 && e->arg == 11);
    CHECK(e && e->text_len == 16 &&
          memcmp(gb_fleet_event_text(f) + e->text_off, "A50F01080080003D", 16) == 0);

    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("devicecontrol-teleboot"), 20);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 200);

    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("devicecontrol-record"), 30);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(read_answer(&outs[1]) == 0 && doc.cmd == GB_MANSCDP_CMD_DEVICE_CONTROL &&
          doc.sn == 13 && doc.root == GB_MANSCDP_RESPONSE);
    CHECK_MEM(doc_body + doc.device_id.off, doc.device_id.len, CH_ID);
    CHECK(strcmp(text_at("Result"), "OK") == 0);
    uint8_t st;
    gb_fleet_channel(f, 0, 0, NULL, NULL, 0, NULL, &st);
    CHECK(st & GB_CAM_CH_RECORD);

    send_request(f, "MESSAGE", DEV_ID, NULL,
                 "<?xml version=\"1.0\"?><Control><CmdType>DeviceControl</CmdType><SN>16</SN>"
                 "<DeviceID>" DEV_ID "</DeviceID><GuardCmd>ResetGuard</GuardCmd></Control>", 40);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(read_answer(&outs[1]) == 0 && strcmp(text_at("Result"), "OK") == 0);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("devicestatus-query"), 50);
    take_all(f);
    CHECK(read_answer(&outs[1]) == 0 && strcmp(text_at("Record"), "ON") == 0);
    CHECK(strcmp(text_at("Alarmstatus/Item/DutyStatus"), "OFFDUTY") == 0);

    /* a PTZCmd that is not A.3 (bad checksum): 400 with the reason */
    send_request(f, "MESSAGE", DEV_ID, NULL,
                 "<?xml version=\"1.0\"?><Control><CmdType>DeviceControl</CmdType><SN>17</SN>"
                 "<DeviceID>" CH_ID "</DeviceID><PTZCmd>A50F010800800000</PTZCmd></Control>", 60);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK(starts_with(&outs[0], "SIP/2.0 400 PTZCmd is not an Annex A.3 command"));
    CHECK_EQ_INT(gb_fleet_get_stats(f)->controls[GB_DEV_CTL_PTZ], 1);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->controls[GB_DEV_CTL_RECORD], 1);
    gb_fleet_free(f);
}

/* §9.4: an alarm goes to the platform as MESSAGE Notify/Alarm; the alarm
 * input shows ALARM in DeviceStatus until AlarmCmd ResetAlarm. */
static void test_alarm(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = camera(&cfg, DEV_ID);
    gb_cam_alarm a = {.target = GB_CAM_TARGET_ALARM, .priority = 1, .method = 2, .type = 1};
    CHECK_EQ_INT(gb_fleet_raise_alarm(f, 0, &a, 10), 1);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK(starts_with(&outs[0], "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0"));
    CHECK(read_answer(&outs[0]) == 0 && doc.root == GB_MANSCDP_NOTIFY &&
          doc.cmd == GB_MANSCDP_CMD_ALARM);
    CHECK_MEM(doc_body + doc.device_id.off, doc.device_id.len, "34020000001340000001");
    CHECK(strcmp(text_at("AlarmPriority"), "1") == 0 && strcmp(text_at("AlarmMethod"), "2") == 0);
    CHECK(strcmp(text_at("Info/AlarmType"), "1") == 0);
    ack(f, &outs[0], 200, 20);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->alarms_sent, 1);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("devicestatus-query"), 30);
    take_all(f);
    CHECK(read_answer(&outs[1]) == 0 && strcmp(text_at("Alarmstatus/Item/DutyStatus"), "ALARM") == 0);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("devicecontrol-alarm-reset"), 40);
    CHECK_EQ_INT(take_all(f), 2);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("devicestatus-query"), 50);
    take_all(f);
    CHECK(read_answer(&outs[1]) == 0 && strcmp(text_at("Alarmstatus/Item/DutyStatus"), "ONDUTY") == 0);
    gb_cam_alarm bad = {.target = 5};
    CHECK_EQ_INT(gb_fleet_raise_alarm(f, 0, &bad, 60), -1);
    gb_fleet_free(f);
}

/* ---- what is refused, and how -------------------------------------------------- */

static void test_refusals(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = camera(&cfg, DEV_ID);
    gb_fleet_set_receiver(f, 0);
    /* RFC 3261 §8.2.2.1: a user we are not, answered from the socket it came to */
    send_request(f, "MESSAGE", "34020000001320009999", NULL, fixture("deviceinfo-query"), 10);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 404);
    /* §21.4.6 / §21.5.2: INVITE (no media here) 405 with Allow, an unknown method 501 */
    send_request(f, "INVITE", CH_ID, NULL, NULL, 20);
    CHECK_EQ_INT(take_all(f), 1); /* a channel ID is no device */
    CHECK_EQ_INT(status_of(&outs[0]), 404);
    send_request(f, "INVITE", DEV_ID, NULL, NULL, 20);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK(status_of(&outs[0]) == 405 &&
          strstr(outs[0].buf, "\r\nAllow: MESSAGE, SUBSCRIBE, OPTIONS\r\n"));
    send_request(f, "FROBNICATE", DEV_ID, NULL, NULL, 30);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 501);
    /* RFC 3261 §11: OPTIONS 200 with Allow and Accept */
    send_request(f, "OPTIONS", DEV_ID, NULL, NULL, 40);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK(status_of(&outs[0]) == 200 && strstr(outs[0].buf, "\r\nAccept: Application/MANSCDP+xml"));
    /* the MANSCDP reader's verdict is the answer: 400 with its reason, 501
     * for an unknown CmdType, 415 for another Content-Type */
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("error-missing-sn"), 50);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 400);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("error-unknown-cmdtype"), 60);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 501);
    send_request(f, "MESSAGE", DEV_ID, "Content-Type: text/plain\r\n", NULL, 70);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK(status_of(&outs[0]) == 415 && strstr(outs[0].buf, "\r\nAccept: "));
    /* a DeviceID that is neither the device nor its channel */
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("catalog-query"), 80);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 404);
    /* ACK is never answered */
    send_request(f, "ACK", DEV_ID, NULL, NULL, 90);
    CHECK_EQ_INT(take_all(f), 0);
    CHECK(gb_fleet_get_stats(f)->requests_refused >= 7);
    CHECK(count_events(f, GB_DEV_EV_REFUSED) >= 6);
    /* a device not started (powered off) stays silent */
    gb_fleet_abandon(f, 0, 100);
    take_all(f);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("deviceinfo-query"), 110);
    CHECK_EQ_INT(take_all(f), 0);
    gb_fleet_free(f);
}

/* The pool's bound turns queries away with 503 (and counts them); a
 * hook answers a query its own way. */
static int hook_calls;

static int hook(void *arg, uint32_t dev, const char *body, size_t len,
                const gb_manscdp_doc *d, gb_bytes *answer)
{
    (void)arg;
    (void)dev;
    (void)body;
    (void)len;
    hook_calls++;
    if (d->cmd == GB_MANSCDP_CMD_DEVICE_INFO) {
        static const char mine[] = "<?xml version=\"1.0\"?>\r\n<Response>\r\n<CmdType>DeviceInfo"
                                   "</CmdType>\r\n<SN>18</SN>\r\n<DeviceID>" DEV_ID
                                   "</DeviceID>\r\n<Result>ERROR</Result>\r\n</Response>\r\n";
        *answer = (gb_bytes){mine, sizeof mine - 1};
        return GB_DEV_HOOK_BODY;
    }
    if (d->cmd == GB_MANSCDP_CMD_DEVICE_STATUS)
        return 486;
    if (d->cmd == GB_MANSCDP_CMD_PRESET_QUERY)
        return GB_DEV_HOOK_NONE;
    return GB_DEV_HOOK_DEFAULT;
}

static void test_bounds_and_hook(void)
{
    gb_dev_config cfg;
    config(&cfg);
    cfg.max_jobs = 1;
    gb_fleet *f = camera(&cfg, DEV_ID);
    gb_fleet_set_camera(f, 0, 0, 64, 1);
    send_request(f, "MESSAGE", DEV_ID, NULL,
                 "<?xml version=\"1.0\"?><Query><CmdType>Catalog</CmdType><SN>1</SN>"
                 "<DeviceID>" DEV_ID "</DeviceID></Query>", 10);
    CHECK(take_all(f) > 2);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("deviceinfo-query"), 20);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK(status_of(&outs[0]) == 503 && strstr(outs[0].buf, "\r\nRetry-After: 1\r\n"));
    CHECK_EQ_INT(gb_fleet_get_stats(f)->answers_busy, 1);
    gb_fleet_free(f);

    config(&cfg);
    cfg.query_hook = hook;
    f = camera(&cfg, DEV_ID);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("deviceinfo-query"), 10);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(read_answer(&outs[1]) == 0 && strcmp(text_at("Result"), "ERROR") == 0);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("devicestatus-query"), 20);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 486);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("presetquery-query"), 30);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 200);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("configdownload-query"), 40);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK_EQ_INT(hook_calls, 4);
    gb_fleet_free(f);
}

/* ---- subscriptions (§9.11, RFC 6665) ----------------------------------------------- */

/* The value of a header in an outgoing message ("" when absent). */
static const char *out_header(const msg_out *m, const char *name)
{
    sent s;
    memcpy(s.buf, m->buf, m->len + 1);
    s.len = m->len;
    return header(&s, name);
}

/* SUBSCRIBE Catalog → 200 (To tag, Expires, Contact, a Response with
 * Result OK); a channel going OFF → NOTIFY in the dialog (Event echoed,
 * Subscription-State active, Item with Event OFF); refresh; unsubscribe
 * with Expires 0 → 200 and a last NOTIFY "terminated". */
static void test_catalog_subscription(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = camera(&cfg, DEV_ID);
    const char *body = "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Query>\r\n"
                       "<CmdType>Catalog</CmdType>\r\n<SN>2</SN>\r\n"
                       "<DeviceID>" DEV_ID "</DeviceID>\r\n</Query>\r\n";
    subscribe(f, "Catalog;id=55", "600", body, 1000);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 200);
    CHECK(strcmp(out_header(&outs[0], "Expires"), "600") == 0);
    CHECK(strstr(out_header(&outs[0], "Contact"), DEV_ID) != NULL);
    CHECK(strstr(out_header(&outs[0], "To"), ";tag=") != NULL);
    char to_tag[64];
    snprintf(to_tag, sizeof to_tag, "%s", strstr(out_header(&outs[0], "To"), ";tag=") + 5);
    CHECK(read_answer(&outs[0]) == 0 && doc.root == GB_MANSCDP_RESPONSE &&
          doc.cmd == GB_MANSCDP_CMD_CATALOG && doc.sn == 2 &&
          strcmp(text_at("Result"), "OK") == 0);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_SUBSCRIBED);
    CHECK(e && e->arg == 600 && e->value == GB_MANSCDP_CMD_CATALOG);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->subscriptions_active, 1);
    char callid[64];
    snprintf(callid, sizeof callid, "call%u@127.0.0.1", seq);

    /* a channel goes OFF: NOTIFY to the subscriber, in the dialog */
    CHECK_EQ_INT(gb_fleet_set_channel_status(f, 0, 0, 0, 2000), 1);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK(starts_with(&outs[0], "NOTIFY sip:34020000002000000001@127.0.0.1:5060 SIP/2.0"));
    CHECK(strcmp(out_header(&outs[0], "Call-ID"), callid) == 0);
    CHECK(strcmp(out_header(&outs[0], "Event"), "Catalog;id=55") == 0);
    CHECK(strncmp(out_header(&outs[0], "Subscription-State"), "active;expires=", 15) == 0);
    CHECK(strstr(out_header(&outs[0], "From"), to_tag) != NULL);
    CHECK(strstr(out_header(&outs[0], "To"), ";tag=plat") != NULL);
    CHECK(read_answer(&outs[0]) == 0 && doc.root == GB_MANSCDP_NOTIFY &&
          doc.cmd == GB_MANSCDP_CMD_CATALOG);
    CHECK(strcmp(text_at("DeviceList/Item/DeviceID"), CH_ID) == 0);
    CHECK(strcmp(text_at("DeviceList/Item/Status"), "OFF") == 0);
    CHECK(strcmp(text_at("DeviceList/Item/Event"), "OFF") == 0);
    ack(f, &outs[0], 200, 2010);
    CHECK_EQ_INT(gb_fleet_set_channel_status(f, 0, 0, 0, 2020), 0); /* no change, no NOTIFY */
    CHECK_EQ_INT(gb_fleet_get_stats(f)->notifies_sent, 1);

    /* refresh in the dialog (To tag ours) */
    char extra[256];
    snprintf(extra, sizeof extra,
             "Event: Catalog;id=55\r\nExpires: 300\r\n"
             "Contact: <sip:34020000002000000001@127.0.0.1:5060>\r\n");
    seq--; /* same Call-ID: build it by hand below */
    int n = snprintf(req, sizeof req,
                     "SUBSCRIBE sip:" DEV_ID "@127.0.0.1:5060 SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKrefresh\r\n"
                     "From: <sip:34020000002000000001@3402000000>;tag=plat%u\r\n"
                     "To: <sip:" DEV_ID "@3402000000>;tag=%s\r\n"
                     "Call-ID: %s\r\nCSeq: 2 SUBSCRIBE\r\nMax-Forwards: 70\r\n%s"
                     "Content-Type: Application/MANSCDP+xml\r\nContent-Length: %zu\r\n\r\n%s",
                     seq + 1, to_tag, callid, extra, strlen(body), body);
    seq++;
    gb_fleet_handle_datagram(f, req, (size_t)n, 3000);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK(status_of(&outs[0]) == 200 && strcmp(out_header(&outs[0], "Expires"), "300") == 0);
    e = last_event(f, GB_DEV_EV_SUBSCRIBED);
    CHECK(e && (e->flags & GB_DEV_EVF_REFRESH) && e->arg == 300);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->subscription_refreshes, 1);

    /* unsubscribe: Expires 0 */
    n = snprintf(req, sizeof req,
                 "SUBSCRIBE sip:" DEV_ID "@127.0.0.1:5060 SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKunsub\r\n"
                 "From: <sip:34020000002000000001@3402000000>;tag=plat%u\r\n"
                 "To: <sip:" DEV_ID "@3402000000>;tag=%s\r\n"
                 "Call-ID: %s\r\nCSeq: 3 SUBSCRIBE\r\nMax-Forwards: 70\r\nEvent: Catalog;id=55\r\n"
                 "Expires: 0\r\nContact: <sip:34020000002000000001@127.0.0.1:5060>\r\n"
                 "Content-Type: Application/MANSCDP+xml\r\nContent-Length: %zu\r\n\r\n%s",
                 seq, to_tag, callid, strlen(body), body);
    gb_fleet_handle_datagram(f, req, (size_t)n, 4000);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(status_of(&outs[0]) == 200 && strcmp(out_header(&outs[0], "Expires"), "0") == 0);
    CHECK(starts_with(&outs[1], "NOTIFY "));
    CHECK(strcmp(out_header(&outs[1], "Subscription-State"), "terminated") == 0);
    e = last_event(f, GB_DEV_EV_SUBSCRIPTION_ENDED);
    CHECK(e && e->reason == GB_DEV_R_UNSUBSCRIBED);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->subscriptions_active, 0);
    CHECK_EQ_INT(gb_fleet_set_channel_status(f, 0, 0, 1, 5000), 0); /* nobody to tell */
    /* a refresh of a subscription that is no more: 481 */
    gb_fleet_handle_datagram(f, req, (size_t)n, 4000); /* a retransmission: same 200 */
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 200);
    memcpy(strstr(req, "z9hG4bKunsub"), "z9hG4bKunsuc", 12);
    gb_fleet_handle_datagram(f, req, (size_t)n, 4100);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 481);
    gb_fleet_free(f);
}


/* RFC 6665 §3.1.2/§8.2.1: the Event header names the package: a SUBSCRIBE
 * with a Catalog body but an Event the camera does not serve, or none, is
 * 489 Bad Event with Allow-Events, and no subscription is made; the
 * package is matched in any case, parameters aside. */
static void test_subscribe_bad_event(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = camera(&cfg, DEV_ID);
    const char *body = "<?xml version=\"1.0\"?><Query><CmdType>Catalog</CmdType><SN>9</SN>"
                       "<DeviceID>" DEV_ID "</DeviceID></Query>";
    CHECK_EQ_INT(subscribe(f, "Weather", "600", body, 1000), 0);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 489);
    CHECK(strstr(outs[0].buf, "\r\nAllow-Events: Catalog, Alarm, MobilePosition, presence\r\n"));
    CHECK_EQ_INT(send_request(f, "SUBSCRIBE", DEV_ID,
                              "Expires: 600\r\n"
                              "Contact: <sip:34020000002000000001@127.0.0.1:5060>\r\n",
                              body, 1100), 0);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 489);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->subscriptions_active, 0);
    CHECK_EQ_INT(subscribe(f, "catalog;id=7", "600", body, 1200), 0);
    CHECK(take_all(f) >= 1);
    CHECK_EQ_INT(status_of(&outs[0]), 200);
    gb_fleet_free(f);
}

/* §9.11.1 MobilePosition: a NOTIFY every Interval seconds; expiry ends
 * the subscription with NOTIFY "terminated;reason=timeout". */
static void test_mobile_position_subscription(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = camera(&cfg, DEV_ID);
    subscribe(f, "presence", "20", fixture("mobileposition-subscribe"), 1000);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 200);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_SUBSCRIBED);
    CHECK(e && e->value == GB_MANSCDP_CMD_MOBILE_POSITION && e->latency_ms == 5000);
    CHECK_EQ_INT(gb_fleet_next_deadline(f), 6000);
    double lon0 = 0, lat0 = 0;
    for (int k = 1; k <= 3; k++) {
        gb_fleet_handle_timer(f, 1000 + 5000 * k);
        CHECK_EQ_INT(take_all(f), 1);
        CHECK(starts_with(&outs[0], "NOTIFY "));
        CHECK(strcmp(out_header(&outs[0], "Event"), "presence") == 0);
        CHECK(read_answer(&outs[0]) == 0 && doc.cmd == GB_MANSCDP_CMD_MOBILE_POSITION);
        CHECK(strcmp(text_at("Time"), k == 1 ? "2024-03-01T16:00:06" : text_at("Time")) == 0);
        double lon = atof(text_at("Longitude")), lat = atof(text_at("Latitude"));
        CHECK(lon > 116.0 && lon < 117.0 && lat > 39.0 && lat < 40.5);
        CHECK(lon != lon0 || lat != lat0); /* it moves */
        lon0 = lon;
        lat0 = lat;
        CHECK(atof(text_at("Speed")) > 0);
        ack(f, &outs[0], 200, 1000 + 5000 * k + 10);
    }
    gb_fleet_handle_timer(f, 21000);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK(strcmp(out_header(&outs[0], "Subscription-State"), "terminated;reason=timeout") == 0);
    e = last_event(f, GB_DEV_EV_SUBSCRIPTION_ENDED);
    CHECK(e && e->reason == GB_DEV_R_EXPIRED);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->subscriptions_active, 0);
    gb_fleet_free(f);
}

/* An Alarm subscription gets a NOTIFY per raised alarm (and the alarm
 * MESSAGE still goes); a 481 to a NOTIFY ends the subscription. */
static void test_alarm_subscription(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = camera(&cfg, DEV_ID);
    subscribe(f, "Alarm", "3600", fixture("alarm-subscribe"), 1000);
    CHECK_EQ_INT(take_all(f), 1);
    gb_cam_alarm a = {.target = 0, .priority = 2, .method = 5, .type = 2};
    CHECK_EQ_INT(gb_fleet_raise_alarm(f, 0, &a, 2000), 2);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(starts_with(&outs[0], "MESSAGE ") && starts_with(&outs[1], "NOTIFY "));
    CHECK(read_answer(&outs[1]) == 0 && doc.cmd == GB_MANSCDP_CMD_ALARM);
    CHECK_MEM(doc_body + doc.device_id.off, doc.device_id.len, CH_ID);
    ack(f, &outs[1], 481, 2010);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_SUBSCRIPTION_ENDED);
    CHECK(e && e->reason == GB_DEV_R_REJECTED && e->status == 481);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->subscriptions_active, 0);
    gb_fleet_free(f);
}

/* ---- vendors, fleets, memory ------------------------------------------------------- */

/* A registered fleet of one device (id) answering as the named preset. */
static gb_fleet *preset_camera(gb_dev_config *cfg, const char *id, const char *preset)
{
    gb_fleet *f = make_fleet(cfg);
    gb_fleet_add(f, id, strlen(id));
    gb_cam_profile p;
    gb_cam_profile_from_preset(&p, gb_cam_preset_find(preset, strlen(preset)));
    int k = gb_fleet_add_profile(f, &p, NULL);
    gb_fleet_set_camera(f, 0, (unsigned)k, -1, GB_CAM_BASE_FROM_ID);
    register_device(f, 0, 0, 3600);
    take_all(f);
    return f;
}

/* The Dahua preset speaks as its capture shows: User-Agent, CSeq 20, the
 * DeviceInfo fields, no SafetyWay, two alarm inputs. */
static void test_dahua_profile(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = preset_camera(&cfg, DEV_ID, "dahua-ipc");
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("deviceinfo-query"), 10);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(strcmp(out_header(&outs[0], "User-Agent"), "SIP UAS V3.0.0.675168") == 0);
    CHECK(strcmp(out_header(&outs[1], "CSeq"), "20 MESSAGE") == 0);
    CHECK(read_answer(&outs[1]) == 0);
    CHECK(strcmp(text_at("DeviceName"), "DH-SD-6C3230UE-HN") == 0);
    CHECK(strcmp(text_at("DeviceType"), "SD") == 0);
    CHECK(strcmp(text_at("MaxAlarm"), "2") == 0);
    CHECK(strcmp(text_at("Firmware"), "2.623.0000000.17.R,2019-01-19") == 0);
    send_request(f, "MESSAGE", DEV_ID, NULL,
                 "<?xml version=\"1.0\"?><Query><CmdType>Catalog</CmdType><SN>7</SN>"
                 "<DeviceID>" DEV_ID "</DeviceID></Query>", 20);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(read_answer(&outs[1]) == 0 && count_at("DeviceList/Item/SafetyWay") == 0);
    CHECK(strcmp(text_at("DeviceList/Item/Owner"), "0") == 0);
    CHECK(strcmp(text_at("DeviceList/Item/Address"), "axy") == 0);
    CHECK(strcmp(text_at("DeviceList/Item/Info/PTZType"), "3") == 0);
    /* every preset is a valid profile */
    for (size_t i = 0; i < gb_cam_preset_count(); i++) {
        gb_cam_profile q;
        gb_cam_profile_from_preset(&q, gb_cam_preset_at(i));
        CHECK(gb_cam_profile_check(&q)[0] == '\0');
        CHECK(strlen(gb_cam_preset_at(i)->source) > 20);
    }
    gb_fleet_free(f);
}

/* The Dahua NVR preset answers Catalog as its cited source shows: every
 * channel with the recorder's Model, no SafetyWay and Longitude/Latitude
 * 0.0 (it does not know its cameras' places), while the generic profile's
 * POSITION quirk gives a real place. */
static void test_dahua_nvr_catalog_as_its_source(void)
{
    gb_dev_config cfg;
    config(&cfg);
    cfg.answer_max_message = 16000; /* the 4 items in one part */
    gb_fleet *f = preset_camera(&cfg, NVR_ID, "dahua-nvr");
    send_request(f, "MESSAGE", NVR_ID, NULL,
                 "<?xml version=\"1.0\"?><Query><CmdType>Catalog</CmdType><SN>8</SN>"
                 "<DeviceID>" NVR_ID "</DeviceID></Query>", 20);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK(read_answer(&outs[1]) == 0);
    CHECK_EQ_INT(count_at("DeviceList/Item"), 4);
    for (unsigned i = 0; i < 4; i++) {
        CHECK(strcmp(item_field(i, "Longitude"), "0.0") == 0);
        CHECK(strcmp(item_field(i, "Latitude"), "0.0") == 0);
        CHECK(strcmp(item_field(i, "Model"), "DH-NVR504-I") == 0);
    }
    CHECK_EQ_INT(count_at("DeviceList/Item/SafetyWay"), 0);
    gb_fleet_free(f);
}

/* Serial IDs are found without an index; channel bases given out in
 * blocks keep every channel ID of a fleet unique. */
static void test_fleet_lookup_and_channel_ids(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = make_fleet(&cfg);
    CHECK_EQ_INT(gb_fleet_add_serial(f, "34", 2, 20000001320000001ULL, 1000, 18), 0);
    CHECK_EQ_INT(gb_fleet_add(f, "my-camera", 9), 1000);
    CHECK_EQ_INT(gb_fleet_find(f, "34020000001320000500", 20), 499);
    CHECK_EQ_INT(gb_fleet_find(f, "my-camera", 9), 1000);
    CHECK_EQ_INT(gb_fleet_find(f, "34020000001320009999", 20), -1);
    uint16_t counts[1000];
    for (int i = 0; i < 1000; i++)
        counts[i] = (uint16_t)(i % 10 == 0 ? 64 : 4);
    CHECK_EQ_INT(gb_fleet_set_camera_range(f, 0, 1000, 0, counts, 0, 1), 0);
    char prev[GB_CAM_ID_LEN] = {0}, id[GB_CAM_ID_LEN];
    unsigned total = 0;
    for (uint32_t i = 0; i < 1000; i++)
        for (uint32_t c = 0; c < gb_fleet_channels(f, i); c++) {
            gb_fleet_channel(f, i, c, id, NULL, 0, NULL, NULL);
            CHECK(memcmp(id, prev, GB_CAM_ID_LEN) > 0); /* increasing: all distinct */
            CHECK(memcmp(id + 10, "131", 3) == 0);
            memcpy(prev, id, GB_CAM_ID_LEN);
            total++;
        }
    CHECK_EQ_INT(total, 100 * 64 + 900 * 4);
    /* per device: record + heap slot + Call-ID table share; channels cost
     * nothing until one changes */
    CHECK(gb_fleet_bytes_per_device() <= 1024);
    fprintf(stderr, "camera fleet: %zu bytes per device, channel state 1 byte once changed\n",
            gb_fleet_bytes_per_device());
    gb_fleet_free(f);
}

/* Devices added alone derive channel and alarm input IDs from their own
 * IDs (Annex D): one channel keeps the device's serial, several put the
 * index in the top digits, so neighbouring device IDs never share a
 * channel ID, and every ID names its own channel back. */
static void test_lone_devices_have_distinct_channel_ids(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = make_fleet(&cfg);
    static const char *const ids[] = {"34020000001320000001", "34020000001320000002",
                                      "34020000001180000003", "34020000001180000004"};
    static const long counts[] = {4, 4, 16, 1};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(gb_fleet_add(f, ids[i], 20), i);
        CHECK_EQ_INT(gb_fleet_set_camera(f, (uint32_t)i, 0, counts[i], GB_CAM_BASE_FROM_ID), 0);
    }
    char seen[4 + 4 + 16 + 1][GB_CAM_ID_LEN];
    unsigned n = 0;
    for (uint32_t i = 0; i < 4; i++)
        for (uint32_t c = 0; c < gb_fleet_channels(f, i); c++) {
            gb_fleet_channel(f, i, c, seen[n], NULL, 0, NULL, NULL);
            for (unsigned k = 0; k < n; k++)
                CHECK(memcmp(seen[k], seen[n], GB_CAM_ID_LEN) != 0);
            n++;
        }
    CHECK_EQ_INT(n, 25);
    CHECK_MEM(seen[0], 20, "34020000001310000001");  /* channel 0: the device's serial */
    CHECK_MEM(seen[1], 20, "34020000001311000001");  /* then the index on top */
    CHECK_MEM(seen[4], 20, "34020000001310000002");
    CHECK_MEM(seen[8 + 15], 20, "34020000001311500003"); /* 16 channels: index * 10^5 */
    CHECK_MEM(seen[24], 20, "34020000001310000004");   /* one channel: the serial */
    /* each ID leads back to its channel of its device */
    gb_cam_profile p;
    gb_cam_profile_from_preset(&p, gb_cam_preset_find("generic", 7));
    gb_cam_device d = {.prof = &p, .id = ids[2], .id_len = 20,
                       .chan_base = GB_CAM_BASE_FROM_ID, .nchan = 16};
    CHECK_EQ_INT(gb_cam_target(&d, seen[8 + 15], 20), 15);
    CHECK_EQ_INT(gb_cam_target(&d, seen[8], 20), 0);
    CHECK_EQ_INT(gb_cam_target(&d, seen[4], 20), GB_CAM_TARGET_NONE);
    char alarm[GB_CAM_ID_LEN];
    gb_cam_alarm_id(&d, 0, alarm);
    CHECK_EQ_INT(gb_cam_target(&d, alarm, 20), GB_CAM_TARGET_ALARM);
    gb_fleet_free(f);
}

/* A device that stops takes its answers and subscriptions with it. */
static void test_stop_ends_everything(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = camera(&cfg, DEV_ID);
    gb_fleet_set_camera(f, 0, 0, 64, 1);
    subscribe(f, "Catalog", NULL,
              "<?xml version=\"1.0\"?><Query><CmdType>Catalog</CmdType><SN>3</SN>"
              "<DeviceID>" DEV_ID "</DeviceID></Query>", 10);
    send_request(f, "MESSAGE", DEV_ID, NULL,
                 "<?xml version=\"1.0\"?><Query><CmdType>Catalog</CmdType><SN>4</SN>"
                 "<DeviceID>" DEV_ID "</DeviceID></Query>", 20);
    take_all(f);
    CHECK(gb_fleet_get_stats(f)->answers_in_flight > 0);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->subscriptions_active, 1);
    gb_fleet_abandon(f, 0, 30);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->answers_in_flight, 0);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->subscriptions_active, 0);
    CHECK_EQ_INT(gb_fleet_next_deadline(f), GB_DEV_NEVER);
    gb_fleet_handle_timer(f, 100000);
    CHECK_EQ_INT(take_all(f), 0);
    gb_fleet_free(f);
}

/* A stopped camera finishes the answers it has in flight before its
 * unregistering REGISTER: after that a platform refuses them (403, not
 * registered, GB/T 28181 §9.1.2.2). */
static void test_unregister_waits_for_answers_in_flight(void)
{
    gb_dev_config cfg;
    config(&cfg);
    gb_fleet *f = camera(&cfg, DEV_ID);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("deviceinfo-query"), 1000);
    CHECK_EQ_INT(take_all(f), 2);
    msg_out answer = outs[1];
    CHECK_EQ_INT(gb_fleet_stop(f, 0, 1100), 0);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_UNREGISTERING);
    CHECK_EQ_INT(take_all(f), 0); /* no REGISTER yet */
    CHECK_EQ_INT(ack(f, &answer, 200, 1150), 0);
    CHECK_EQ_INT(gb_fleet_next_deadline(f) <= 1150, 1);
    gb_fleet_handle_timer(f, 1150);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK(starts_with(&outs[0], "REGISTER "));
    CHECK(strstr(outs[0].buf, "\r\nExpires: 0\r\n") != NULL);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->answers_completed, 1);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->unregisters_drained, 1);
    /* with the unregistering REGISTER out, a new query is refused, not answered */
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("deviceinfo-query"), 1200);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK_EQ_INT(status_of(&outs[0]), 503);
    gb_fleet_free(f);
}

/* The wait is bounded (unregister_drain_ms): an answer the platform never
 * acknowledges is dropped then, and the unregistration goes out. */
static void test_unregister_drain_is_bounded(void)
{
    gb_dev_config cfg;
    config(&cfg);
    cfg.unregister_drain_ms = 3000;
    gb_fleet *f = camera(&cfg, DEV_ID);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("deviceinfo-query"), 1000);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK_EQ_INT(gb_fleet_stop(f, 0, 1000), 0);
    int registers = 0, retransmitted = 0;
    int64_t now = 1000;
    while (now < 4000 && registers == 0) {
        now = gb_fleet_next_deadline(f);
        gb_fleet_handle_timer(f, now);
        for (size_t k = 0, n = take_all(f); k < n; k++) {
            if (starts_with(&outs[k], "REGISTER "))
                registers++;
            else if (outs[k].retransmit)
                retransmitted++;
        }
    }
    CHECK_EQ_INT(now, 4000);
    CHECK_EQ_INT(registers, 1);
    CHECK_EQ_INT(retransmitted, 2); /* at 1500 and 2500 */
    CHECK_EQ_INT(gb_fleet_get_stats(f)->answers_in_flight, 0);
    gb_fleet_free(f);

    /* 0: answers are dropped at once, as abandon does */
    cfg.unregister_drain_ms = 0;
    f = camera(&cfg, DEV_ID);
    send_request(f, "MESSAGE", DEV_ID, NULL, fixture("deviceinfo-query"), 1000);
    CHECK_EQ_INT(take_all(f), 2);
    CHECK_EQ_INT(gb_fleet_stop(f, 0, 1000), 0);
    CHECK_EQ_INT(take_all(f), 1);
    CHECK(starts_with(&outs[0], "REGISTER "));
    CHECK_EQ_INT(gb_fleet_get_stats(f)->answers_in_flight, 0);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->unregisters_drained, 0);
    gb_fleet_free(f);
}

/* camera.h alone: times, IDs and targets. */
static void test_camera_pieces(void)
{
    char t[19];
    gb_cam_format_time(gb_cam_parse_time("2024-02-29T23:59:59", 19), t);
    CHECK_MEM(t, 19, "2024-02-29T23:59:59");
    CHECK(gb_cam_parse_time("2024-02-29T23:59:59.5", 21) ==
          gb_cam_parse_time("2024-02-29T23:59:59", 19) + 500);
    CHECK(gb_cam_parse_time("2024-13-01T00:00:00", 19) == INT64_MIN);
    CHECK(gb_cam_parse_time("2024-01-01", 10) == INT64_MIN);
    gb_cam_profile p;
    gb_cam_profile_from_preset(&p, gb_cam_preset_find("generic", 7));
    gb_cam_device d = {.prof = &p, .id = DEV_ID, .id_len = 20, .chan_base = 9999999, .nchan = 3,
                       .chan = (const uint8_t *)"\0\0\0"};
    char id[GB_CAM_ID_LEN];
    gb_cam_channel_id(&d, 2, id); /* the serial wraps */
    CHECK_MEM(id, 20, "34020000001310000001");
    CHECK_EQ_INT(gb_cam_target(&d, id, 20), 2);
    CHECK_EQ_INT(gb_cam_target(&d, DEV_ID, 20), GB_CAM_TARGET_DEVICE);
    gb_cam_alarm_id(&d, 0, id);
    CHECK_EQ_INT(gb_cam_target(&d, id, 20), GB_CAM_TARGET_ALARM);
    CHECK_EQ_INT(gb_cam_target(&d, "34020000001310000005", 20), GB_CAM_TARGET_NONE);
    CHECK_EQ_INT(gb_cam_target(&d, "44020000001310000001", 20), GB_CAM_TARGET_NONE);
    char name[32];
    p.utf8[GB_CAM_F_CHANNEL_NAME] = (gb_bytes){"Cam {nnn}-{n}", 13};
    CHECK_MEM(name, gb_cam_channel_name(&d, 1, 0, name, sizeof name), "Cam 002-2");
}

int main(void)
{
    test_camera_pieces();
    test_catalog_query();
    test_catalog_channel_fields();
    test_catalog_profile_channel_fields();
    test_answer_charset_follows_query();
    test_catalog_split_with_sumnum();
    test_parts_window_and_gap();
    test_answer_retransmission();
    test_retransmitted_query_absorbed();
    test_single_answers();
    test_record_info();
    test_device_control();
    test_alarm();
    test_refusals();
    test_bounds_and_hook();
    test_catalog_subscription();
    test_subscribe_bad_event();
    test_mobile_position_subscription();
    test_alarm_subscription();
    test_dahua_profile();
    test_dahua_nvr_catalog_as_its_source();
    test_fleet_lookup_and_channel_ids();
    test_lone_devices_have_distinct_channel_ids();
    test_stop_ends_everything();
    test_unregister_waits_for_answers_in_flight();
    test_unregister_drain_is_bounded();
    return CHECK_DONE("test_camera");
}
