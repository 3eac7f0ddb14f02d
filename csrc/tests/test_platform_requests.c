/*
 * test_platform_requests.c - the platform's requests to its devices
 * (platform_requests.h): GB/T 28181 §9.5 queries and §9.3 controls as
 * MESSAGE, §9.11 subscriptions as SUBSCRIBE, each an RFC 3261 §17.1.2
 * non-INVITE client transaction (Timer E/F over UDP, Timer F only over
 * TCP), matched back by branch, Call-ID and CSeq; and the registrar's side:
 * a request goes to the binding, answers become events, a NOTIFY is
 * answered 200.  All times are explicit.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "platform_requests.h"
#include "registrar.h"
#include "sip_fields.h"
#include "sip_parser.h"

#define SERVER_ID "34020000002000000001"
#define DEV "34020000001320000001"
#define NOW0 1000000
#define QUERY_BODY                                                                    \
    "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Query>\r\n<CmdType>Catalog</CmdType>\r\n" \
    "<SN>17430</SN>\r\n<DeviceID>" DEV "</DeviceID>\r\n</Query>\r\n"

static gb_peer peer(int transport, uint64_t conn)
{
    gb_peer p = {.family = 4, .transport = (uint8_t)transport, .port = 5061, .conn_id = conn};
    p.ip[0] = 10, p.ip[3] = 5;
    return p;
}

/* ---------------------------------------------------------------- */
/* Results, collected                                                */

typedef struct {
    int n;
    gb_preq_result last;
    char reason[64];
    char to_tag[64];
} results;

static void collect(void *arg, const gb_preq_result *res)
{
    results *rs = arg;
    rs->n++;
    rs->last = *res;
    snprintf(rs->reason, sizeof(rs->reason), "%.*s", (int)res->reason_len,
             res->reason ? res->reason : "");
    snprintf(rs->to_tag, sizeof(rs->to_tag), "%.*s", (int)res->to_tag_len,
             res->to_tag ? res->to_tag : "");
}

static gb_preq_pool *pool(uint32_t max)
{
    gb_preq_config c;
    gb_preq_config_default(&c);
    c.max_requests = max;
    c.seed = 7;
    gb_preq_pool *p = gb_preq_new(&c);
    CHECK(p != NULL);
    return p;
}

static gb_preq_spec query_spec(int transport)
{
    gb_preq_spec s = {
        .method = "MESSAGE", .method_len = 7,
        .request_uri = "sip:" DEV "@10.0.0.5:5061", .request_uri_len = strlen("sip:" DEV "@10.0.0.5:5061"),
        .from_uri = "sip:" SERVER_ID "@3402000000", .from_uri_len = strlen("sip:" SERVER_ID "@3402000000"),
        .to_uri = "sip:" DEV "@3402000000", .to_uri_len = strlen("sip:" DEV "@3402000000"),
        .via_host = "10.0.0.1", .via_host_len = 8, .via_port = 5060,
        .body = QUERY_BODY, .body_len = strlen(QUERY_BODY),
        .device_id = DEV, .device_id_len = strlen(DEV),
        .dest = peer(transport, transport ? 9 : 0),
    };
    return s;
}

/* Take the one queued output into buf (NUL-terminated); its length. */
static size_t take(gb_preq_pool *p, char *buf, size_t cap, gb_peer *dest)
{
    const char *d;
    size_t n;
    if (!gb_preq_next_output(p, &d, &n, dest))
        return 0;
    CHECK(n < cap);
    memcpy(buf, d, n);
    buf[n] = 0;
    return n;
}

/* A pool of max slots with one query sent and taken into req. */
static gb_preq_pool *started(uint32_t max, int transport, gb_preq_sent *sent, char *req,
                             size_t cap, size_t *n)
{
    gb_preq_pool *p = pool(max);
    gb_preq_spec s = query_spec(transport);
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0, sent), GB_PREQ_OK);
    gb_peer dest;
    *n = take(p, req, cap, &dest);
    CHECK(*n > 0);
    return p;
}

static int outputs(gb_preq_pool *p)
{
    const char *d;
    size_t n;
    gb_peer dest;
    int k = 0;
    while (gb_preq_next_output(p, &d, &n, &dest))
        k++;
    return k;
}

/* The value of a header of the request in buf (NUL-terminated copy). */
static void header_of(const char *buf, size_t len, gb_header_id id, char *out, size_t cap)
{
    gb_header h[32];
    gb_msg m;
    gb_limits lim;
    gb_limits_default(&lim);
    gb_msg_init(&m, h, 32);
    CHECK_EQ_INT(gb_parse(buf, len, 0, &lim, &m, NULL), GB_OK);
    int i = m.first[id];
    CHECK(i > 0);
    snprintf(out, cap, "%.*s", i ? (int)m.headers[i - 1].value.len : 0,
             i ? buf + m.headers[i - 1].value.off : "");
}

/* An answer to the request in req: its Via, From, To (+tag), Call-ID and
 * CSeq, as a device's stack writes it. */
static size_t answer_to(const char *req, size_t len, unsigned status, const char *extra,
                        char *out, size_t cap)
{
    char via[256], from[256], to[256], cid[160], cseq[64];
    header_of(req, len, GB_HDR_VIA, via, sizeof via);
    header_of(req, len, GB_HDR_FROM, from, sizeof from);
    header_of(req, len, GB_HDR_TO, to, sizeof to);
    header_of(req, len, GB_HDR_CALL_ID, cid, sizeof cid);
    header_of(req, len, GB_HDR_CSEQ, cseq, sizeof cseq);
    int n = snprintf(out, cap,
                     "SIP/2.0 %u %s\r\nVia: %s\r\nFrom: %s\r\nTo: %s;tag=dev77\r\n"
                     "Call-ID: %s\r\nCSeq: %s\r\n%sContent-Length: 0\r\n\r\n",
                     status, status == 200 ? "OK" : status < 200 ? "Trying" : "Nope", via, from,
                     to, cid, cseq, extra ? extra : "");
    CHECK(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static int feed(gb_preq_pool *p, const char *buf, size_t len, int64_t now, results *rs)
{
    gb_header h[32];
    gb_msg m;
    gb_limits lim;
    gb_limits_default(&lim);
    gb_msg_init(&m, h, 32);
    CHECK_EQ_INT(gb_parse(buf, len, 0, &lim, &m, NULL), GB_OK);
    gb_peer src = peer(GB_TRANSPORT_UDP, 0);
    return gb_preq_on_response(p, buf, &m, &src, now, collect, rs);
}

/* ---------------------------------------------------------------- */
/* The pool                                                          */

static void test_query_message_shape(void)
{
    /* §9.5.1: a Catalog query is a MESSAGE with Application/MANSCDP+xml,
     * From the platform, To the device, to the device's Contact */
    gb_preq_pool *p = pool(4);
    gb_preq_spec s = query_spec(GB_TRANSPORT_UDP);
    gb_preq_sent sent;
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0, &sent), GB_PREQ_OK);
    CHECK(sent.handle != 0);
    CHECK_EQ_INT(sent.cseq, 1);
    CHECK_EQ_INT(sent.call_id_len, 20);
    char buf[4096];
    gb_peer dest;
    size_t n = take(p, buf, sizeof buf, &dest);
    CHECK(n > 0);
    CHECK(strncmp(buf, "MESSAGE sip:" DEV "@10.0.0.5:5061 SIP/2.0\r\n", 48) == 0);
    CHECK(strstr(buf, "\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bK") != NULL);
    CHECK(strstr(buf, "\r\nFrom: <sip:" SERVER_ID "@3402000000>;tag=") != NULL);
    CHECK(strstr(buf, "\r\nTo: <sip:" DEV "@3402000000>\r\n") != NULL);
    CHECK(strstr(buf, "\r\nCSeq: 1 MESSAGE\r\n") != NULL);
    CHECK(strstr(buf, "\r\nMax-Forwards: 70\r\n") != NULL);
    CHECK(strstr(buf, "\r\nContent-Type: Application/MANSCDP+xml\r\n") != NULL);
    CHECK(strstr(buf, "<CmdType>Catalog</CmdType>") != NULL);
    CHECK_EQ_INT(dest.transport, GB_TRANSPORT_UDP);
    CHECK_EQ_INT(dest.port, 5061);
    CHECK_EQ_INT(take(p, buf, sizeof buf, &dest), 0); /* queued once */
    gb_preq_free(p);
}

static void test_answer_matched_by_branch_call_id_cseq(void)
{
    /* RFC 3261 §17.1.3: the top Via branch finds the transaction; the
     * Call-ID and CSeq must be ours too */
    gb_preq_sent sent;
    char req[4096], ans[4096];
    size_t n;
    gb_preq_pool *p = started(4, GB_TRANSPORT_UDP, &sent, req, sizeof req, &n);
    results rs = {0};

    /* another Call-ID on our branch: not ours */
    size_t an = answer_to(req, n, 200, NULL, ans, sizeof ans);
    char *cid = strstr(ans, "Call-ID: ");
    cid[9] = cid[9] == 'x' ? 'y' : 'x';
    CHECK_EQ_INT(feed(p, ans, an, NOW0 + 10, &rs), GB_PREQ_STRAY);
    CHECK_EQ_INT(rs.n, 0);

    /* a 100 Trying: matched, no result yet */
    an = answer_to(req, n, 100, NULL, ans, sizeof ans);
    CHECK_EQ_INT(feed(p, ans, an, NOW0 + 20, &rs), GB_PREQ_MATCHED);
    CHECK_EQ_INT(rs.n, 0);

    /* the 200: one result, with the device's tag and Expires */
    an = answer_to(req, n, 200, "Expires: 3600\r\n", ans, sizeof ans);
    CHECK_EQ_INT(feed(p, ans, an, NOW0 + 30, &rs), GB_PREQ_MATCHED);
    CHECK_EQ_INT(rs.n, 1);
    CHECK_EQ_INT(rs.last.kind, GB_PREQ_ANSWERED);
    CHECK_EQ_INT(rs.last.status, 200);
    CHECK_EQ_INT(rs.last.handle, sent.handle);
    CHECK_EQ_INT(rs.last.expires, 3600);
    CHECK(strcmp(rs.reason, "OK") == 0);
    CHECK(strcmp(rs.to_tag, "dev77") == 0);
    CHECK_EQ_INT(rs.last.device_id_len, strlen(DEV));

    /* its retransmission is absorbed (Timer K), no second result */
    CHECK_EQ_INT(feed(p, ans, an, NOW0 + 40, &rs), GB_PREQ_ABSORBED);
    CHECK_EQ_INT(rs.n, 1);
    gb_preq_stats st;
    gb_preq_get_stats(p, &st);
    CHECK_EQ_INT(st.answered, 1);
    CHECK_EQ_INT(st.provisional, 1);
    CHECK_EQ_INT(st.mismatched, 1);
    CHECK_EQ_INT(st.answers_absorbed, 1);
    CHECK_EQ_INT(st.in_flight, 1);
    /* Timer K (T4) frees the slot */
    CHECK_EQ_INT(gb_preq_next_deadline(p), NOW0 + 30 + 5000);
    gb_preq_handle_timer(p, NOW0 + 30 + 5000, collect, &rs);
    gb_preq_get_stats(p, &st);
    CHECK_EQ_INT(st.in_flight, 0);
    CHECK_EQ_INT(gb_preq_next_deadline(p), INT64_MAX);
    CHECK_EQ_INT(rs.n, 1);
    gb_preq_free(p);
}

static void test_timer_e_then_f_over_udp(void)
{
    /* RFC 3261 §17.1.2.2: resend at T1, 2T1, 4T1, then every T2 (4 s);
     * Timer F (64*T1 = 32 s) ends it with a timeout result */
    gb_preq_pool *p = pool(4);
    gb_preq_spec s = query_spec(GB_TRANSPORT_UDP);
    gb_preq_sent sent;
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0, &sent), GB_PREQ_OK);
    CHECK_EQ_INT(outputs(p), 1);
    results rs = {0};
    int64_t expect[] = {500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500};
    for (size_t i = 0; i < sizeof expect / sizeof *expect; i++) {
        CHECK_EQ_INT(gb_preq_next_deadline(p), NOW0 + expect[i]);
        gb_preq_handle_timer(p, NOW0 + expect[i] - 1, collect, &rs);
        CHECK_EQ_INT(outputs(p), 0); /* not before its time */
        gb_preq_handle_timer(p, NOW0 + expect[i], collect, &rs);
        CHECK_EQ_INT(outputs(p), 1);
    }
    CHECK_EQ_INT(gb_preq_next_deadline(p), NOW0 + 32000);
    gb_preq_handle_timer(p, NOW0 + 32000, collect, &rs);
    CHECK_EQ_INT(rs.n, 1);
    CHECK_EQ_INT(rs.last.kind, GB_PREQ_TIMED_OUT);
    CHECK_EQ_INT(rs.last.status, 408);
    CHECK_EQ_INT(rs.last.handle, sent.handle);
    CHECK_EQ_INT(outputs(p), 0);
    gb_preq_stats st;
    gb_preq_get_stats(p, &st);
    CHECK_EQ_INT(st.retransmissions, 10);
    CHECK_EQ_INT(st.timed_out, 1);
    CHECK_EQ_INT(st.in_flight, 0);
    gb_preq_free(p);
}

static void test_provisional_answer_slows_resends_to_t2(void)
{
    /* §17.1.2.2 Proceeding: after a 1xx, resend every T2 */
    gb_preq_sent sent;
    char req[4096], ans[4096];
    size_t n;
    gb_preq_pool *p = started(4, GB_TRANSPORT_UDP, &sent, req, sizeof req, &n);
    results rs = {0};
    size_t an = answer_to(req, n, 100, NULL, ans, sizeof ans);
    CHECK_EQ_INT(feed(p, ans, an, NOW0 + 100, &rs), GB_PREQ_MATCHED);
    CHECK_EQ_INT(gb_preq_next_deadline(p), NOW0 + 100 + 4000);
    gb_preq_free(p);
}

static void test_tcp_never_resends(void)
{
    /* §17.1.2.2: over a reliable transport Timer E is not set; Timer F is;
     * the destination keeps the connection the device registered on */
    gb_preq_pool *p = pool(4);
    gb_preq_spec s = query_spec(GB_TRANSPORT_TCP);
    gb_preq_sent sent;
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0, &sent), GB_PREQ_OK);
    char req[4096];
    gb_peer dest;
    size_t n = take(p, req, sizeof req, &dest);
    CHECK(n > 0);
    CHECK(strstr(req, "Via: SIP/2.0/TCP 10.0.0.1:5060;") != NULL);
    CHECK_EQ_INT(dest.transport, GB_TRANSPORT_TCP);
    CHECK_EQ_INT(dest.conn_id, 9);
    CHECK_EQ_INT(gb_preq_next_deadline(p), NOW0 + 32000);
    results rs = {0};
    gb_preq_handle_timer(p, NOW0 + 31999, collect, &rs);
    CHECK_EQ_INT(outputs(p), 0);
    gb_preq_handle_timer(p, NOW0 + 32000, collect, &rs);
    CHECK_EQ_INT(rs.n, 1);
    CHECK_EQ_INT(rs.last.status, 408);
    gb_preq_stats st;
    gb_preq_get_stats(p, &st);
    CHECK_EQ_INT(st.retransmissions, 0);
    gb_preq_free(p);
}

static void test_tcp_answer_frees_at_once(void)
{
    gb_preq_sent sent;
    char req[4096], ans[4096];
    size_t n;
    gb_preq_pool *p = started(1, GB_TRANSPORT_TCP, &sent, req, sizeof req, &n);
    results rs = {0};
    size_t an = answer_to(req, n, 486, NULL, ans, sizeof ans);
    CHECK_EQ_INT(feed(p, ans, an, NOW0 + 5, &rs), GB_PREQ_MATCHED);
    CHECK_EQ_INT(rs.last.status, 486); /* a negative answer is a result */
    gb_preq_spec s = query_spec(GB_TRANSPORT_TCP);
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0 + 6, &sent), GB_PREQ_OK); /* no Timer K over TCP */
    gb_preq_free(p);
}

static void test_pool_bound_counts_what_it_turns_away(void)
{
    gb_preq_pool *p = pool(2);
    gb_preq_spec s = query_spec(GB_TRANSPORT_UDP);
    gb_preq_sent a, b, c;
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0, &a), GB_PREQ_OK);
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0, &b), GB_PREQ_OK);
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0, &c), GB_PREQ_FULL);
    gb_preq_stats st;
    gb_preq_get_stats(p, &st);
    CHECK_EQ_INT(st.turned_away, 1);
    CHECK_EQ_INT(st.in_flight, 2);
    /* cancelling one makes room; its stale handle no longer cancels */
    CHECK_EQ_INT(gb_preq_cancel(p, a.handle), 1);
    CHECK_EQ_INT(gb_preq_cancel(p, a.handle), 0);
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0, &c), GB_PREQ_OK);
    CHECK(c.handle != a.handle);
    /* the queue sends each live request once, the cancelled one never */
    CHECK_EQ_INT(outputs(p), 2);
    gb_preq_free(p);
}

static void test_full_pool_reuses_the_oldest_timer_k_slot(void)
{
    /* a finished UDP request keeps its slot for Timer K (T4) only to
     * absorb repeated answers: when every slot is taken, the oldest such
     * slot ends early and serves the new request instead of turning it
     * away; live transactions are never taken */
    gb_preq_pool *p = pool(3);
    gb_preq_spec s = query_spec(GB_TRANSPORT_UDP);
    gb_preq_sent a, b, c, d, e;
    char req[4096], ans_a[4096], ans_b[4096];
    gb_peer dest;
    results rs = {0};
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0, &a), GB_PREQ_OK);
    size_t na = take(p, req, sizeof req, &dest);
    size_t aa = answer_to(req, na, 200, NULL, ans_a, sizeof ans_a);
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0, &b), GB_PREQ_OK);
    size_t nb = take(p, req, sizeof req, &dest);
    size_t ab = answer_to(req, nb, 200, NULL, ans_b, sizeof ans_b);
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0, &c), GB_PREQ_OK);
    /* b answered first, then a: both in Timer K, b the older */
    CHECK_EQ_INT(feed(p, ans_b, ab, NOW0 + 10, &rs), GB_PREQ_MATCHED);
    CHECK_EQ_INT(feed(p, ans_a, aa, NOW0 + 20, &rs), GB_PREQ_MATCHED);
    CHECK_EQ_INT(rs.n, 2);
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0 + 30, &d), GB_PREQ_OK);
    /* b's slot served: its repeated answer is a stray now, a's still absorbed */
    CHECK_EQ_INT(feed(p, ans_b, ab, NOW0 + 40, &rs), GB_PREQ_STRAY);
    CHECK_EQ_INT(feed(p, ans_a, aa, NOW0 + 40, &rs), GB_PREQ_ABSORBED);
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0 + 50, &e), GB_PREQ_OK);
    /* now c, d and e are live: the next one is turned away */
    gb_preq_sent f;
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0 + 60, &f), GB_PREQ_FULL);
    CHECK_EQ_INT(gb_preq_cancel(p, c.handle), 1);
    CHECK_EQ_INT(gb_preq_cancel(p, d.handle), 1);
    CHECK_EQ_INT(gb_preq_cancel(p, e.handle), 1);
    gb_preq_stats st;
    gb_preq_get_stats(p, &st);
    CHECK_EQ_INT(st.completed_reused, 2);
    CHECK_EQ_INT(st.turned_away, 1);
    CHECK_EQ_INT(st.in_flight, 0);
    CHECK_EQ_INT(rs.n, 2);
    gb_preq_free(p);
}

static void test_in_dialog_request_keeps_its_identifiers(void)
{
    /* §9.11 refresh: the same Call-ID, From tag, the device's To tag, a
     * higher CSeq; Event and Expires as extra headers */
    gb_preq_pool *p = pool(2);
    gb_preq_spec s = query_spec(GB_TRANSPORT_UDP);
    gb_field f[] = {{"Event", 5, "Catalog", 7}, {"Expires", 7, "0", 1}};
    s.method = "SUBSCRIBE", s.method_len = 9;
    s.call_id = "abc@x", s.call_id_len = 5;
    s.from_tag = "ft1", s.from_tag_len = 3;
    s.to_tag = "dev77", s.to_tag_len = 5;
    s.cseq = 3;
    s.fields = f, s.nfields = 2;
    gb_preq_sent sent;
    CHECK_EQ_INT(gb_preq_send(p, &s, NOW0, &sent), GB_PREQ_OK);
    char req[4096];
    gb_peer dest;
    take(p, req, sizeof req, &dest);
    CHECK(strstr(req, "\r\nCall-ID: abc@x\r\n") != NULL);
    CHECK(strstr(req, ">;tag=ft1\r\n") != NULL);
    CHECK(strstr(req, ">;tag=dev77\r\n") != NULL);
    CHECK(strstr(req, "\r\nCSeq: 3 SUBSCRIBE\r\n") != NULL);
    CHECK(strstr(req, "\r\nEvent: Catalog\r\nExpires: 0\r\n") != NULL);
    /* an answer with another CSeq method is not ours */
    char ans[4096];
    size_t an = answer_to(req, strlen(req), 200, NULL, ans, sizeof ans);
    char *m = strstr(ans, "3 SUBSCRIBE");
    memmove(m + 9, m + 11, an - (size_t)(m + 11 - ans) + 1);
    memcpy(m, "3 MESSAGE", 9);
    results rs = {0};
    CHECK_EQ_INT(feed(p, ans, strlen(ans), NOW0 + 1, &rs), GB_PREQ_STRAY);
    gb_preq_free(p);
}

/* ---------------------------------------------------------------- */
/* The registrar's side                                              */

static gb_registrar *registrar_with_device(int transport)
{
    static const unsigned char key[32] = "0123456789abcdef0123456789abcdef";
    gb_registrar_config c;
    gb_registrar_config_default(&c);
    c.server_id = SERVER_ID;
    c.server_id_len = strlen(SERVER_ID);
    c.shared_password = "12345678";
    c.shared_password_len = 8;
    c.nonce_key = key;
    c.nonce_key_len = sizeof key;
    c.seed = 42;
    c.max_requests = 8;
    const char *why = NULL;
    gb_registrar *r = gb_registrar_new(&c, &why);
    CHECK(r != NULL);
    gb_reg_contact contact = {"sip:" DEV "@10.0.0.5:5061", strlen("sip:" DEV "@10.0.0.5:5061"),
                              NOW0 + 3600000};
    gb_binding_view v = {.id = DEV, .id_len = strlen(DEV), .call_id = "c1", .call_id_len = 2,
                         .cseq = 2, .source = peer(transport, transport ? 4 : 0), .online = 1};
    CHECK_EQ_INT(gb_registrar_restore(r, &v, &contact, 1, NOW0), 0);
    return r;
}

static gb_reg_request catalog_request(void)
{
    gb_reg_request q = {.device_id = DEV, .device_id_len = strlen(DEV),
                        .method = "MESSAGE", .method_len = 7,
                        .body = QUERY_BODY, .body_len = strlen(QUERY_BODY),
                        .via_host = "10.0.0.1", .via_host_len = 8, .via_port = 5060};
    return q;
}

static size_t reg_take(gb_registrar *r, char *buf, size_t cap, gb_peer *dest)
{
    const char *d;
    size_t n;
    if (!gb_registrar_next_output(r, &d, &n, dest))
        return 0;
    CHECK(n < cap);
    memcpy(buf, d, n);
    buf[n] = 0;
    return n;
}

static gb_reg_status reg_feed(gb_registrar *r, const char *msg, gb_peer src, int64_t now,
                              char *reply, size_t cap, size_t *reply_len)
{
    gb_reg_reply out = {.buf = reply, .cap = cap};
    gb_reg_status st = gb_registrar_handle(r, msg, strlen(msg), &src, now, 0, &out);
    *reply_len = out.len;
    return st;
}

static void test_registrar_query_to_binding_and_answer_event(void)
{
    /* §9.5: the platform's query goes to the device's binding; its 200
     * is an event carrying the request's handle, not a stray response */
    gb_registrar *r = registrar_with_device(GB_TRANSPORT_UDP);
    gb_reg_request q = catalog_request();
    gb_preq_sent sent;
    CHECK_EQ_INT(gb_registrar_request(r, &q, NOW0, &sent), GB_PREQ_OK);
    gb_reg_request unknown = q;
    unknown.device_id = "34020000001320000099";
    CHECK_EQ_INT(gb_registrar_request(r, &unknown, NOW0, &sent), GB_REG_NOT_REGISTERED);
    CHECK_EQ_INT(gb_registrar_request(r, &q, NOW0, &sent), GB_PREQ_OK);
    char req[4096], ans[4096], reply[8192];
    gb_peer dest;
    size_t n = reg_take(r, req, sizeof req, &dest);
    CHECK(n > 0);
    CHECK(strncmp(req, "MESSAGE sip:" DEV "@10.0.0.5:5061 SIP/2.0", 40) == 0);
    CHECK_EQ_INT(dest.port, 5061);
    CHECK(reg_take(r, ans, sizeof ans, &dest) > 0); /* the second one */
    CHECK_EQ_INT(gb_registrar_next_deadline(r), NOW0 + 500); /* Timer E folded in */
    answer_to(ans, strlen(ans), 200, NULL, req, sizeof req);
    size_t rl;
    CHECK_EQ_INT(reg_feed(r, req, peer(GB_TRANSPORT_UDP, 0), NOW0 + 50, reply, sizeof reply, &rl),
                 GB_REG_NONE);
    gb_reg_event ev[8];
    size_t k = gb_registrar_pop_events(r, ev, 8);
    CHECK_EQ_INT(k, 1);
    CHECK_EQ_INT(ev[0].type, GB_REG_EV_REQUEST_ANSWERED);
    CHECK_EQ_INT(ev[0].status, 200);
    CHECK_EQ_INT(ev[0].pending_id, sent.handle);
    CHECK_MEM(ev[0].id, ev[0].id_len, DEV);
    CHECK_MEM(ev[0].extra, ev[0].extra_len, "dev77");
    gb_reg_event_clear(&ev[0]);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.stray_responses, 0);
    /* the first request times out: an event with status 408 */
    gb_registrar_handle_timer(r, NOW0 + 32000);
    k = gb_registrar_pop_events(r, ev, 8);
    CHECK_EQ_INT(k, 1);
    CHECK_EQ_INT(ev[0].type, GB_REG_EV_REQUEST_TIMEOUT);
    CHECK_EQ_INT(ev[0].status, 408);
    gb_reg_event_clear(&ev[0]);
    gb_preq_stats ps;
    gb_registrar_request_stats(r, &ps);
    CHECK_EQ_INT(ps.sent, 2);
    CHECK_EQ_INT(ps.timed_out, 1);
    gb_registrar_free(r);
}

static void test_registrar_tcp_request_goes_on_the_registration_connection(void)
{
    /* GB/T 28181-2022 §9.1.1 f: over TCP the platform uses the connection
     * the device registered on */
    gb_registrar *r = registrar_with_device(GB_TRANSPORT_TCP);
    gb_reg_request q = catalog_request();
    gb_preq_sent sent;
    CHECK_EQ_INT(gb_registrar_request(r, &q, NOW0, &sent), GB_PREQ_OK);
    char req[4096];
    gb_peer dest;
    CHECK(reg_take(r, req, sizeof req, &dest) > 0);
    CHECK_EQ_INT(dest.transport, GB_TRANSPORT_TCP);
    CHECK_EQ_INT(dest.conn_id, 4);
    CHECK(strstr(req, "SIP/2.0/TCP") != NULL);
    gb_registrar_free(r);
}

static void test_registrar_answers_notify_200_with_an_event(void)
{
    /* §9.11.1: the device's NOTIFY is answered 200; body, Event, Call-ID
     * and Subscription-State (RFC 6665 §8.2.3) become an event */
    gb_registrar *r = registrar_with_device(GB_TRANSPORT_UDP);
    const char *notify =
        "NOTIFY sip:" SERVER_ID "@3402000000 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.5:5061;rport;branch=z9hG4bKn1\r\n"
        "From: <sip:" DEV "@3402000000>;tag=dev77\r\n"
        "To: <sip:" SERVER_ID "@3402000000>;tag=ft1\r\n"
        "Call-ID: abc@x\r\nCSeq: 5 NOTIFY\r\nMax-Forwards: 70\r\n"
        "Event: Catalog\r\nSubscription-State: active;expires=3600\r\n"
        "Content-Type: Application/MANSCDP+xml\r\nContent-Length: 5\r\n\r\n<x/>\n";
    char reply[8192];
    size_t rl;
    CHECK_EQ_INT(reg_feed(r, notify, peer(GB_TRANSPORT_UDP, 0), NOW0, reply, sizeof reply, &rl),
                 GB_REG_REPLY);
    CHECK(strncmp(reply, "SIP/2.0 200 OK\r\n", 16) == 0);
    gb_reg_event ev[4];
    CHECK_EQ_INT(gb_registrar_pop_events(r, ev, 4), 1);
    CHECK_EQ_INT(ev[0].type, GB_REG_EV_NOTIFY);
    CHECK_MEM(ev[0].id, ev[0].id_len, DEV);
    CHECK_MEM(ev[0].text, ev[0].text_len, "<x/>\n");
    CHECK_MEM(ev[0].extra, ev[0].extra_len, "Catalog\nabc@x\nactive;expires=3600");
    gb_reg_event_clear(&ev[0]);
    gb_registrar_free(r);
}

int main(void)
{
    test_query_message_shape();
    test_answer_matched_by_branch_call_id_cseq();
    test_timer_e_then_f_over_udp();
    test_provisional_answer_slows_resends_to_t2();
    test_tcp_never_resends();
    test_tcp_answer_frees_at_once();
    test_pool_bound_counts_what_it_turns_away();
    test_full_pool_reuses_the_oldest_timer_k_slot();
    test_in_dialog_request_keeps_its_identifiers();
    test_registrar_query_to_binding_and_answer_event();
    test_registrar_tcp_request_goes_on_the_registration_connection();
    test_registrar_answers_notify_200_with_an_event();
    return CHECK_DONE("test_platform_requests");
}
