/*
 * test_device.c - the device (UAC) fleet, driven with explicit time and
 * hand-written platform responses: no sockets, no clock, no sleeps.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "device.h"
#include "digest.h"
#include "sip_writer.h"

/* ---- the seed (GB/T 28181-2016 §9.1.2.1, shared/seed), CRLF line ends ---- */

static const char SEED_REGISTER_1[] =
    "REGISTER sip:192.168.10.177:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.10.117:5061;rport;branch=z9hG4bK2509000523\r\n"
    "From: <sip:34020000001320000001@192.168.10.177>;tag=2577708869\r\n"
    "To: <sip:34020000001320000001@192.168.10.177>\r\n"
    "Call-ID: 939764460\r\n"
    "CSeq: 1 REGISTER\r\n"
    "Contact: <sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b>\r\n"
    "Max-Forwards: 70\r\n"
    "User-Agent: eXosip/3.6.0\r\n"
    "Expires: 3600\r\n"
    "Authorization: Capability, algorithm=\"H:MD5\"\r\n"
    "Content-Length: 0\r\n\r\n";

static const char SEED_401[] =
    "SIP/2.0 401 Unauthorized\r\n"
    "To: <sip:34020000001320000001@192.168.10.177>;tag=66081813_53173353_54026835-98f6-4d1e-b562-0d969636b944\r\n"
    "Via: SIP/2.0/UDP 192.168.10.117:5061;rport=5061;branch=z9hG4bK2509000523;received=192.168.10.117\r\n"
    "CSeq: 1 REGISTER\r\n"
    "Call-ID: 939764460\r\n"
    "From: <sip:34020000001320000001@192.168.10.177>;tag=2577708869\r\n"
    "WWW-Authenticate: Digest realm=\"3402000000\",nonce=\"324cab6e557268e0\"\r\n"
    "Content-Length: 0\r\n\r\n";

/* The seed's second REGISTER as the device sends it (the platform adds
 * rport=5061 and received= in the copy shown in the seed). */
static const char SEED_REGISTER_2[] =
    "REGISTER sip:192.168.10.177:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.10.117:5061;rport;branch=z9hG4bK3163110852\r\n"
    "From: <sip:34020000001320000001@192.168.10.177>;tag=2577708869\r\n"
    "To: <sip:34020000001320000001@192.168.10.177>\r\n"
    "Call-ID: 939764460\r\n"
    "CSeq: 2 REGISTER\r\n"
    "Contact: <sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b>\r\n"
    "Authorization: Digest username=\"34020000001320000001\",realm=\"3402000000\","
    "nonce=\"324cab6e557268e0\",uri=\"sip:192.168.10.177:5060\","
    "response=\"7f536c8ce38593239f9130e37a72276e\",algorithm=MD5\r\n"
    "Max-Forwards: 70\r\n"
    "User-Agent: eXosip/3.6.0\r\n"
    "Expires: 3600\r\n"
    "Content-Length: 0\r\n\r\n";

static const char SEED_200[] =
    "SIP/2.0 200 OK\r\n"
    "To: <sip:34020000001320000001@192.168.10.177>;tag=31428812_53173353_376bd3d9-cb9d-4b4f-a950-da26d575cff5\r\n"
    "Via: SIP/2.0/UDP 192.168.10.117:5061;rport=5061;branch=z9hG4bK3163110852;received=192.168.10.117\r\n"
    "CSeq: 2 REGISTER\r\n"
    "Call-ID: 939764460\r\n"
    "From: <sip:34020000001320000001@192.168.10.177>;tag=2577708869\r\n"
    "Contact: <sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b>\r\n"
    "Expires: 3600\r\n"
    "Date: 2013-06-26T16:08:37.164\r\n"
    "Content-Length: 0\r\n\r\n";

#include "fleet_rig.h"

/* Verify credentials in an Authorization value the way a registrar would. */
static int lookup_pw(void *arg, gb_bytes user, gb_bytes realm, int userhash,
                     gb_digest_secret *out)
{
    (void)arg; (void)user; (void)realm; (void)userhash;
    out->kind = GB_SECRET_PASSWORD;
    out->value = GBB("12345678");
    return 0;
}

static gb_digest_result verify(const char *value, const char *uri)
{
    gb_digest_ctx *ctx = gb_digest_ctx_new();
    gb_digest_check chk = {.method = GBB("REGISTER"),
                           .request_uri = {uri, strlen(uri)},
                           .uri_policy = GB_URI_EXACT};
    gb_digest_verdict v;
    gb_digest_result r = gb_digest_verify(ctx, NULL, value,
                                          (gb_span){0, (uint32_t)strlen(value)},
                                          &chk, lookup_pw, NULL, &v);
    gb_digest_ctx_free(ctx);
    return r;
}

/* ---- tests ---------------------------------------------------------------------- */

/* shared/README §1: the seed's device, byte for byte. */
static void test_seed_reproduced(void)
{
    static const uint64_t draws[] = {939764460, 2577708869u, 2509000523u, 3163110852u};
    script_rng rng = {draws, 4, 0, 1};
    gb_dev_config cfg;
    gb_dev_config_default(&cfg);
    cfg.request_uri = GBB("sip:192.168.10.177:5060");
    cfg.domain = GBB("192.168.10.177");
    cfg.server_host = GBB("192.168.10.177");
    cfg.password = GBB("12345678");
    cfg.user_agent = GBB("eXosip/3.6.0");
    cfg.contact_params = GBB(";line=6513f93347c330b");
    cfg.rng = scripted;
    cfg.rng_arg = &rng;
    gb_fleet *f = make_fleet(&cfg);
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK_EQ_INT(gb_fleet_add(f, ID, 20), 0);
    int h = gb_fleet_local_host(f, "192.168.10.117", 14);
    CHECK_EQ_INT(gb_fleet_set_local(f, 0, h, 5061), 0);

    sent s;
    CHECK_EQ_INT(gb_fleet_start(f, 0, 1000), 0);
    CHECK(take_one(f, &s) > 0);
    CHECK_MEM(s.buf, s.len, SEED_REGISTER_1);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERING);

    CHECK_EQ_INT(gb_fleet_handle_datagram(f, SEED_401, sizeof SEED_401 - 1, 1010), 0);
    CHECK(take_one(f, &s) > 0);
    CHECK_MEM(s.buf, s.len, SEED_REGISTER_2);
    CHECK_EQ_INT(count_events(f, GB_DEV_EV_CHALLENGED), 1);

    CHECK_EQ_INT(gb_fleet_handle_datagram(f, SEED_200, sizeof SEED_200 - 1, 1020), 0);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERED);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_REGISTERED);
    CHECK(e != NULL);
    if (e) {
        CHECK_EQ_INT(e->value, 3600);
        CHECK_EQ_INT(e->status, 200);
        CHECK_EQ_INT(e->latency_ms, 20);
        CHECK_EQ_INT(e->arg, 1372262917164LL); /* 2013-06-26T16:08:37.164 */
        CHECK(e->flags & GB_DEV_EVF_DATE_GB);
    }
    CHECK_EQ_INT(gb_fleet_expires_at(f, 0), 1020 + 3600 * 1000);
    /* the retransmitted 200 is absorbed, not a stray */
    CHECK_EQ_INT(gb_fleet_handle_datagram(f, SEED_200, sizeof SEED_200 - 1, 1030), 0);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->duplicates, 1);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->strays, 0);
    CHECK_EQ_INT(gb_fleet_out_count(f), 0);
    gb_fleet_free(f);
}

/* RFC 3261 §17.1.2.2: Timer E from T1 doubling to T2, Timer F at 64*T1. */
static void test_udp_retransmission_timing(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    gb_fleet_start(f, 0, 0);
    sent s;
    take_one(f, &s);
    char first[4096];
    memcpy(first, s.buf, s.len + 1);
    static const int64_t expect[] = {500, 1500, 3500, 7500, 11500, 15500,
                                     19500, 23500, 27500, 31500};
    size_t k = 0;
    int64_t t;
    while ((t = gb_fleet_next_deadline(f)) < 32000 && k < 20) {
        gb_fleet_handle_timer(f, t);
        CHECK(take_one(f, &s) > 0);
        CHECK(s.retransmit);
        CHECK(strcmp(s.buf, first) == 0); /* the same request, byte for byte */
        if (k < 10)
            CHECK_EQ_INT(t, expect[k]);
        k++;
    }
    CHECK_EQ_INT(k, 10);
    CHECK_EQ_INT(gb_fleet_next_deadline(f), 32000);
    gb_fleet_handle_timer(f, 32000);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_FAILED);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_FAILED);
    CHECK(e && e->reason == GB_DEV_R_TIMEOUT && e->status == 0);
    CHECK(e && e->arg == 32000 + 60000); /* jitter 0 */
    CHECK_EQ_INT(gb_fleet_get_stats(f)->retransmissions, 10);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->timeouts, 1);
    CHECK_EQ_INT(gb_fleet_out_count(f), 0);
    gb_fleet_free(f);
}

/* §17.1.2.2: once a provisional arrived, retransmit every T2. */
static void test_proceeding_retransmits_at_t2(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    gb_fleet_start(f, 0, 0);
    sent s;
    take_one(f, &s);
    CHECK_EQ_INT(respond(f, &s, 100, NULL, 100), 0);
    gb_fleet_handle_timer(f, 500);
    CHECK(take_one(f, &s) > 0);
    CHECK_EQ_INT(gb_fleet_next_deadline(f), 4500);
    gb_fleet_free(f);
}

/* §17.1.2: over TCP nothing is retransmitted; Timer F still ends it. */
static void test_tcp_no_retransmission(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    cfg.transport = GB_DEV_TCP;
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    gb_fleet_start(f, 0, 0);
    sent s;
    take_one(f, &s);
    CHECK(strstr(s.buf, "Via: SIP/2.0/TCP ") != NULL);
    CHECK(strstr(s.buf, ";transport=tcp>") != NULL);
    CHECK_EQ_INT(gb_fleet_next_deadline(f), 32000);
    gb_fleet_handle_timer(f, 32000);
    CHECK_EQ_INT(gb_fleet_out_count(f), 0);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_FAILED);
    gb_fleet_free(f);
}

/* RFC 3261 §10.2.8: 423 -> the same REGISTER again with Min-Expires. */
static void test_423_retries_with_min_expires(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    cfg.expires = 60;
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    gb_fleet_start(f, 0, 0);
    sent s;
    take_one(f, &s);
    CHECK_EQ_INT(respond(f, &s, 423, "Min-Expires: 3600\r\n", 10), 0);
    CHECK(take_one(f, &s) > 0);
    CHECK(has_line(&s, "Expires: 3600"));
    CHECK(has_line(&s, "CSeq: 2 REGISTER"));
    CHECK_EQ_INT(count_events(f, GB_DEV_EV_FAILED), 0);
    /* a 423 that does not raise the floor is a failure, not a loop */
    CHECK_EQ_INT(respond(f, &s, 423, "Min-Expires: 3600\r\n", 20), 0);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_FAILED);
    CHECK(e && e->reason == GB_DEV_R_BAD_MIN_EXPIRES && e->status == 423);
    gb_fleet_free(f);
}

/* GB/T 28181 §9.1: 403 -> failed with the reason, retry after the interval,
 * the retry starts over (capability hint, no credentials, same Call-ID). */
static void test_403_fails_and_retries(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    cfg.jitter = 0.1;
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    gb_fleet_start(f, 0, 0);
    sent s;
    take_one(f, &s);
    char callid[64];
    snprintf(callid, sizeof callid, "%s", header(&s, "Call-ID"));
    respond(f, &s, 401, "WWW-Authenticate: Digest realm=\"3402000000\",nonce=\"abc\"\r\n", 5);
    take_one(f, &s);
    CHECK_EQ_INT(respond(f, &s, 403, NULL, 10), 0);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_FAILED);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_FAILED);
    CHECK(e != NULL);
    int64_t at = e ? e->arg : 0;
    if (e) {
        CHECK_EQ_INT(e->status, 403);
        CHECK_EQ_INT(e->reason, GB_DEV_R_REJECTED);
        CHECK_MEM(gb_fleet_event_text(f) + e->text_off, e->text_len, "Forbidden");
        CHECK(at >= 10 + 54000 && at <= 10 + 66000);
    }
    CHECK_EQ_INT(gb_fleet_next_deadline(f), at);
    gb_fleet_handle_timer(f, at - 1);
    CHECK_EQ_INT(gb_fleet_out_count(f), 0);
    gb_fleet_handle_timer(f, at);
    CHECK(take_one(f, &s) > 0);
    CHECK(has_line(&s, "CSeq: 3 REGISTER"));
    CHECK(strcmp(header(&s, "Call-ID"), callid) == 0);
    CHECK(has_line(&s, "Authorization: Capability, algorithm=\"H:MD5\""));
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERING);
    gb_fleet_free(f);
}

/* A wrong password: the second 401 names the nonce we answered. */
static void test_wrong_password_is_auth_rejected(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    gb_fleet_set_password(f, 0, "wrong", 5);
    gb_fleet_start(f, 0, 0);
    sent s;
    take_one(f, &s);
    const char *ch = "WWW-Authenticate: Digest realm=\"3402000000\",nonce=\"abc\",algorithm=MD5\r\n";
    respond(f, &s, 401, ch, 5);
    take_one(f, &s);
    CHECK(verify(header(&s, "Authorization"), "sip:34020000002000000001@3402000000") ==
          GB_DIGEST_WRONG_RESPONSE);
    respond(f, &s, 401, ch, 10);
    CHECK_EQ_INT(gb_fleet_out_count(f), 0);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_FAILED);
    CHECK(e && e->reason == GB_DEV_R_AUTH_REJECTED && e->status == 401);
    /* back to the shared password: the next attempt succeeds */
    gb_fleet_set_password(f, 0, NULL, 0);
    gb_fleet_events_clear(f);
    gb_fleet_handle_timer(f, gb_fleet_next_deadline(f));
    take_one(f, &s);
    respond(f, &s, 401, ch, 70000);
    take_one(f, &s);
    CHECK(verify(header(&s, "Authorization"), "sip:34020000002000000001@3402000000") ==
          GB_DIGEST_OK);
    gb_fleet_free(f);
}

/* RFC 7616 §3.3 stale=true: answer the new nonce, no failure counted; qop
 * gives nc and cnonce; the refresh reuses the nonce with nc + 1. */
static void test_refresh_stale_and_qop(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    int64_t t = register_device(f, 0, 1, 100);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERED);
    /* refresh at half the lifetime (jitter 0) */
    CHECK_EQ_INT(gb_fleet_next_deadline(f), t + 50000 < t + 60000 ? t + 50000 : t + 60000);
    gb_fleet_out_clear(f);
    gb_fleet_handle_timer(f, t + 50000);
    sent s;
    /* the keepalive (60 s) is not due yet: only the refresh */
    CHECK(take_one(f, &s) > 0);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REFRESHING);
    const char *auth = header(&s, "Authorization");
    CHECK(strstr(auth, "nonce=\"n1\"") != NULL);
    CHECK(strstr(auth, "nc=00000002") != NULL);
    CHECK(strstr(auth, "qop=auth") != NULL);
    CHECK(strstr(auth, "cnonce=\"") != NULL);
    CHECK(verify(auth, "sip:34020000002000000001@3402000000") == GB_DIGEST_OK);
    gb_fleet_events_clear(f);
    respond(f, &s, 401,
            "WWW-Authenticate: Digest realm=\"3402000000\",nonce=\"n2\",qop=\"auth\",stale=true\r\n",
            t + 50010);
    CHECK(take_one(f, &s) > 0);
    auth = header(&s, "Authorization");
    CHECK(strstr(auth, "nonce=\"n2\"") != NULL);
    CHECK(strstr(auth, "nc=00000001") != NULL);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_CHALLENGED);
    CHECK(e && (e->flags & GB_DEV_EVF_STALE));
    CHECK_EQ_INT(count_events(f, GB_DEV_EV_FAILED), 0);
    respond(f, &s, 200, "Expires: 100\r\n", t + 50020);
    CHECK_EQ_INT(count_events(f, GB_DEV_EV_REFRESHED), 1);
    CHECK_EQ_INT(count_events(f, GB_DEV_EV_REGISTERED), 0);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERED);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->failures, 0);
    gb_fleet_free(f);
}

/* The Contact's expires parameter for our binding wins over Expires. */
static void test_granted_expiry_from_contact(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    gb_fleet_set_local(f, 0, 0, 5099);
    gb_fleet_start(f, 0, 0);
    sent s;
    take_one(f, &s);
    respond(f, &s, 200,
            "Contact: <sip:other@127.0.0.1:6000>;expires=10, "
            "<sip:" ID "@127.0.0.1:5099>;expires=1800\r\nExpires: 3600\r\n", 10);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_REGISTERED);
    CHECK(e && e->value == 1800);
    CHECK_EQ_INT(gb_fleet_expires_at(f, 0), 10 + 1800000);
    gb_fleet_free(f);
}

/* GB/T 28181 §9.6.1: keepalives every interval, SN growing, answered ones
 * reset the count; N unanswered -> platform offline -> register again. */
static void test_keepalive_loss_reregisters(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    cfg.keepalive_interval_ms = 1000;
    cfg.t1_ms = 50; /* Timer F = 3.2 s > interval: replaced ones count */
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    int64_t t = register_device(f, 0, 0, 3600);
    sent s;
    gb_fleet_events_clear(f);
    gb_fleet_handle_timer(f, t + 1000);
    CHECK(take_one(f, &s) > 0);
    CHECK(strncmp(s.buf, "MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\n", 53) == 0);
    CHECK(has_line(&s, "Content-Type: Application/MANSCDP+xml"));
    CHECK(strstr(s.buf, "<?xml version=\"1.0\" encoding=\"GB2312\"?>") != NULL);
    CHECK(strstr(s.buf, "<CmdType>Keepalive</CmdType>") != NULL);
    CHECK(strstr(s.buf, "<SN>1</SN>") != NULL);
    CHECK(strstr(s.buf, "<DeviceID>" ID "</DeviceID>") != NULL);
    CHECK(strstr(s.buf, "<Status>OK</Status>") != NULL);
    CHECK_EQ_INT(respond(f, &s, 200, NULL, t + 1005), 0);
    CHECK_EQ_INT(count_events(f, GB_DEV_EV_KEEPALIVE_ANSWERED), 1);
    /* now the platform goes silent (retransmissions go out meanwhile) */
    int sends = 0, rt = 0;
    for (int64_t now = t + 1006; now <= t + 5000; now = gb_fleet_next_deadline(f)) {
        gb_fleet_handle_timer(f, now);
        for (size_t k = 0; k < gb_fleet_out_count(f); k++) {
            const gb_dev_out *o = &gb_fleet_out_items(f)[k];
            if (!o->retransmit && memcmp(gb_fleet_out_data(f) + o->off, "MESSAGE", 7) == 0)
                sends++;
            rt += o->retransmit;
        }
        if (gb_fleet_state(f, 0) != GB_DEV_REGISTERED)
            break;
        gb_fleet_out_clear(f);
    }
    CHECK_EQ_INT(sends, 3);          /* SN 2, 3, 4 */
    CHECK(rt > 0);
    CHECK_EQ_INT(gb_fleet_keepalive_sn(f, 0), 4);
    CHECK_EQ_INT(count_events(f, GB_DEV_EV_KEEPALIVE_MISSED), 3);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_KEEPALIVE_TIMEOUT);
    CHECK(e && e->value == 3 && e->time_ms == t + 5000);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERING);
    /* the new REGISTER is the last thing queued */
    size_t n = gb_fleet_out_count(f);
    CHECK(n >= 1);
    if (n) {
        const gb_dev_out *o = &gb_fleet_out_items(f)[n - 1];
        CHECK(memcmp(gb_fleet_out_data(f) + o->off, "REGISTER", 8) == 0);
    }
    gb_fleet_free(f);
}

/* Fault injection: skipped keepalives are not sent and not missed. */
static void test_skip_keepalives(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    cfg.keepalive_interval_ms = 1000;
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    int64_t t = register_device(f, 0, 0, 3600);
    gb_fleet_skip_keepalives(f, 0, 2);
    gb_fleet_handle_timer(f, t + 1000);
    gb_fleet_handle_timer(f, t + 2000);
    CHECK_EQ_INT(gb_fleet_out_count(f), 0);
    gb_fleet_handle_timer(f, t + 3000);
    sent s;
    CHECK(take_one(f, &s) > 0);
    CHECK(strstr(s.buf, "<SN>1</SN>") != NULL);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->keepalives_skipped, 2);
    gb_fleet_free(f);
}

/* Fault injection: a dropped response is as if lost; the retransmission's
 * answer is taken. */
static void test_drop_responses(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    gb_fleet_drop_responses(f, 0, 1);
    gb_fleet_start(f, 0, 0);
    sent s;
    take_one(f, &s);
    CHECK_EQ_INT(respond(f, &s, 200, NULL, 10), 0);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERING);
    gb_fleet_handle_timer(f, 500);
    CHECK(take_one(f, &s) > 0);
    CHECK(s.retransmit);
    CHECK_EQ_INT(respond(f, &s, 200, NULL, 510), 0);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERED);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->dropped, 1);
    gb_fleet_free(f);
}

/* Stray responses: unknown Call-ID, wrong branch, wrong method. */
static void test_strays_are_counted(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    gb_fleet_start(f, 0, 0);
    sent s;
    take_one(f, &s);
    sent other = s;
    char *b = strstr(other.buf, "branch=z9hG4bK");
    b[14] = b[14] == '1' ? '2' : '1';
    CHECK_EQ_INT(respond(f, &other, 200, NULL, 5), -1);
    other = s;
    char *c = strstr(other.buf, "Call-ID: ");
    c[9] = c[9] == '1' ? '2' : '1';
    CHECK_EQ_INT(respond(f, &other, 200, NULL, 5), -1);
    CHECK_EQ_INT(gb_fleet_handle_datagram(f, "garbage", 7, 5), -1);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->strays, 2);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->parse_errors, 1);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERING);
    CHECK_EQ_INT(respond(f, &s, 200, NULL, 6), 0);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERED);
    gb_fleet_free(f);
}

/* Issue 12's class of bug, device side: a response that lacks a mandatory
 * header (RFC 3261 §8.2.6.2), under every leniency, is never matched by a
 * header it does not have and never read out of bounds. */
static void test_response_missing_headers_any_leniency(void)
{
    static const char *names[] = {"Via: ", "From: ", "To: ", "Call-ID: ", "CSeq: "};
    for (unsigned len = 0; len <= GB_LENIENT_ALL; len++)
        for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
            gb_dev_config cfg;
            base_config(&cfg);
            cfg.lenient = len;
            gb_fleet *f = make_fleet(&cfg);
            gb_fleet_add(f, ID, 20);
            gb_fleet_start(f, 0, 0);
            sent s;
            take_one(f, &s);
            /* the 200 the platform would send, then without one header */
            char out[4096];
            long n = build_response(&s, 200, NULL, out, sizeof out - 1);
            CHECK(n > 0);
            out[n > 0 ? n : 0] = '\0';
            char *line = strstr(out, names[k]);
            CHECK(line != NULL);
            char *end = line ? strstr(line, "\r\n") : NULL;
            if (!end)
                continue;
            size_t cut = (size_t)(end + 2 - line);
            memmove(line, end + 2, (size_t)n - (size_t)(line - out) - cut);
            long r = gb_fleet_handle_datagram(f, out, (size_t)n - cut, 5);
            int matching = k == 0 || k == 3 || k == 4; /* Via branch, Call-ID, CSeq */
            CHECK(r == -1 || (!matching && r == 0));
            CHECK(gb_fleet_state(f, 0) == (r == 0 ? GB_DEV_REGISTERED : GB_DEV_REGISTERING));
            gb_fleet_free(f);
        }
}

/* ---- the state table (device.h gb_dev_moves) ------------------------------ */

static uint64_t moves_seen[GB_DEV_STATE__COUNT][GB_DEV_STATE__COUNT];

/* A fleet of one device for a scenario; no periodic keepalives (the
 * scenarios send them by hand), refresh at half of 3600 s. */
static gb_fleet *scenario(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    cfg.keepalive_interval_ms = 0;
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    return f;
}

/* Fold the scenario's moves into moves_seen and free the fleet. */
static void scenario_done(gb_fleet *f)
{
    const gb_fleet_stats *st = gb_fleet_get_stats(f);
    CHECK_EQ_INT(st->illegal_moves, 0);
    for (int a = 0; a < GB_DEV_STATE__COUNT; a++)
        for (int b = 0; b < GB_DEV_STATE__COUNT; b++)
            moves_seen[a][b] += st->moves[a][b];
    gb_fleet_free(f);
}

/* Answer the last queued REGISTER (the queue is emptied). */
static void answer_queued(gb_fleet *f, unsigned status, int64_t now)
{
    size_t n = gb_fleet_out_count(f);
    const char *data = gb_fleet_out_data(f);
    while (n && memcmp(data + gb_fleet_out_items(f)[n - 1].off, "REGISTER", 8) != 0)
        n--;
    CHECK(n > 0);
    if (!n)
        return;
    const gb_dev_out *o = &gb_fleet_out_items(f)[n - 1];
    sent s = {.len = o->len};
    memcpy(s.buf, gb_fleet_out_data(f) + o->off, o->len);
    s.buf[o->len] = '\0';
    gb_fleet_out_clear(f);
    respond(f, &s, status, NULL, now);
}

/* Three unanswered keepalives (each replaced by the next) and a fourth:
 * GB/T 28181 §9.6.1, the platform is offline, register again. */
static void lose_keepalives(gb_fleet *f, int64_t now)
{
    for (int k = 0; k < 4; k++)
        CHECK(gb_fleet_send_keepalive(f, 0, now + k) > 0);
}

/* Each scenario takes some moves; together they take every move of the
 * table, and no device ever makes a move outside it. */
static void test_every_device_move_is_taken(void)
{
    gb_fleet *f;
    /* idle -> unregistered, then unregistered -> registering -> failed ->
     * registering (retry) -> registering (keepalives lost) ->
     * unregistering -> unregistered */
    f = scenario();
    CHECK_EQ_INT(gb_fleet_stop(f, 0, 0), 0);
    CHECK_EQ_INT(gb_fleet_start(f, 0, 1), 0);
    answer_queued(f, 403, 2);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_FAILED);
    gb_fleet_handle_timer(f, gb_fleet_next_deadline(f));
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERING);
    gb_fleet_out_clear(f);
    lose_keepalives(f, 70000);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERING);
    CHECK_EQ_INT(gb_fleet_stop(f, 0, 70010), 0);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_UNREGISTERING);
    answer_queued(f, 200, 70020);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_UNREGISTERED);
    scenario_done(f);

    /* registering -> unregistered (abandon); failed -> unregistered (stop) */
    f = scenario();
    gb_fleet_start(f, 0, 0);
    gb_fleet_out_clear(f);
    CHECK_EQ_INT(gb_fleet_abandon(f, 0, 1), 0);
    gb_fleet_start(f, 0, 2);
    answer_queued(f, 403, 3);
    CHECK_EQ_INT(gb_fleet_stop(f, 0, 4), 0);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_UNREGISTERED);
    scenario_done(f);

    /* registered -> refreshing -> registered -> registering (keepalives
     * lost) -> registered -> unregistered (abandon) */
    f = scenario();
    int64_t t = register_device(f, 0, 0, 3600);
    gb_fleet_handle_timer(f, t + 1800 * 1000);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REFRESHING);
    answer_queued(f, 200, t + 1800 * 1000 + 5);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERED);
    lose_keepalives(f, t + 1900 * 1000);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERING);
    answer_queued(f, 200, t + 1901 * 1000);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERED);
    CHECK_EQ_INT(gb_fleet_abandon(f, 0, t + 1902 * 1000), 0);
    scenario_done(f);

    /* registered -> unregistering; refreshing -> failed */
    f = scenario();
    t = register_device(f, 0, 0, 3600);
    CHECK_EQ_INT(gb_fleet_stop(f, 0, t + 1), 0);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_UNREGISTERING);
    scenario_done(f);
    f = scenario();
    t = register_device(f, 0, 0, 3600);
    gb_fleet_handle_timer(f, t + 1800 * 1000);
    answer_queued(f, 403, t + 1800 * 1000 + 5);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_FAILED);
    scenario_done(f);

    /* refreshing -> registering (keepalives lost), -> unregistering (stop),
     * -> unregistered (abandon), each from a refresh in flight */
    for (int end = 0; end < 3; end++) {
        f = scenario();
        t = register_device(f, 0, 0, 3600);
        gb_fleet_handle_timer(f, t + 1800 * 1000);
        gb_fleet_out_clear(f);
        CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REFRESHING);
        if (end == 0)
            lose_keepalives(f, t + 1800 * 1000 + 1);
        else if (end == 1)
            CHECK_EQ_INT(gb_fleet_stop(f, 0, t + 1800 * 1000 + 1), 0);
        else
            CHECK_EQ_INT(gb_fleet_abandon(f, 0, t + 1800 * 1000 + 1), 0);
        CHECK_EQ_INT(gb_fleet_state(f, 0), end == 0   ? GB_DEV_REGISTERING
                                           : end == 1 ? GB_DEV_UNREGISTERING
                                                      : GB_DEV_UNREGISTERED);
        scenario_done(f);
    }

    for (size_t k = 0; k < gb_dev_nmoves; k++) {
        const gb_state_move *m = &gb_dev_moves[k];
        if (!moves_seen[m->from][m->to])
            fprintf(stderr, "  never taken: %s -> %s (%s)\n",
                    gb_dev_state_name((gb_dev_state)m->from),
                    gb_dev_state_name((gb_dev_state)m->to), m->on);
        CHECK(moves_seen[m->from][m->to] > 0);
    }
}

/* Every pair of states not in the table is refused by the lookup
 * set_state() consults, and no scenario ever made one. */
static void test_device_moves_outside_the_table_refused(void)
{
    unsigned listed = 0;
    for (unsigned a = 0; a < GB_DEV_STATE__COUNT; a++)
        for (unsigned b = 0; b < GB_DEV_STATE__COUNT; b++) {
            int k = gb_state_move_find(gb_dev_moves, gb_dev_nmoves, a, b);
            listed += k >= 0;
            if (k < 0)
                CHECK_EQ_INT(moves_seen[a][b], 0);
        }
    CHECK_EQ_INT(listed, gb_dev_nmoves); /* no pair listed twice */
    CHECK(gb_state_move_find(gb_dev_moves, gb_dev_nmoves, GB_DEV_IDLE, GB_DEV_REGISTERED) < 0);
    CHECK(gb_state_move_find(gb_dev_moves, gb_dev_nmoves, GB_DEV_UNREGISTERED,
                             GB_DEV_REGISTERED) < 0);
}

/* GB/T 28181-2022 §9.1.2.3: 302 -> register at the Contact; a refusal there
 * or lost keepalives -> back to the redirect server. */
static void test_redirect(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    cfg.keepalive_interval_ms = 1000;
    cfg.keepalive_max_missed = 1;
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    gb_fleet_start(f, 0, 0);
    sent s;
    take_one(f, &s);
    CHECK_EQ_INT(s.dest, 0);
    respond(f, &s, 302, "Contact: <sip:34020000002000000002@127.0.0.2:5070>\r\n", 10);
    CHECK(take_one(f, &s) > 0);
    CHECK_EQ_INT(s.dest, 1);
    CHECK(strncmp(s.buf, "REGISTER sip:34020000002000000002@127.0.0.2:5070 SIP/2.0\r\n", 58) == 0);
    CHECK_EQ_INT(gb_fleet_dest_count(f), 2);
    gb_bytes host;
    uint16_t port;
    CHECK_EQ_INT(gb_fleet_dest(f, 1, &host, &port, NULL), 0);
    CHECK_MEM(host.p, host.n, "127.0.0.2");
    CHECK_EQ_INT(port, 5070);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_REDIRECTED);
    CHECK(e && e->value == 1 && e->status == 302);
    /* the target refuses: straight back to the redirect server */
    respond(f, &s, 403, NULL, 20);
    CHECK(take_one(f, &s) > 0);
    CHECK_EQ_INT(s.dest, 0);
    CHECK(strncmp(s.buf, "REGISTER sip:34020000002000000001@3402000000 ", 45) == 0);
    /* redirected again, registered at the target, then keepalive lost */
    respond(f, &s, 302, "Contact: <sip:34020000002000000002@127.0.0.2:5070>\r\n", 30);
    take_one(f, &s);
    respond(f, &s, 200, NULL, 40);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_REGISTERED);
    CHECK_EQ_INT(gb_fleet_dest_of(f, 0), 1);
    gb_fleet_handle_timer(f, 1040);
    CHECK(take_one(f, &s) > 0);
    CHECK_EQ_INT(s.dest, 1);
    CHECK(strncmp(s.buf, "MESSAGE sip:34020000002000000002@127.0.0.2:5070 ", 48) == 0);
    CHECK_EQ_INT(respond(f, &s, 404, NULL, 1050), 0); /* refused: missed */
    CHECK(take_one(f, &s) > 0);
    CHECK_EQ_INT(s.dest, 0);
    CHECK(strncmp(s.buf, "REGISTER ", 9) == 0);
    CHECK_EQ_INT(gb_fleet_dest_of(f, 0), 0);
    /* a redirect loop ends in a failure with the normal retry interval */
    for (int k = 0; k < 4 && gb_fleet_state(f, 0) == GB_DEV_REGISTERING; k++) {
        respond(f, &s, 302, "Contact: <sip:34020000002000000002@127.0.0.2:5070>\r\n", 2000);
        if (!take_one(f, &s))
            break;
        if (s.dest == 1) {
            respond(f, &s, 500, NULL, 2000);
            take_one(f, &s);
        }
    }
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_FAILED);
    e = last_event(f, GB_DEV_EV_FAILED);
    CHECK(e && e->arg >= 2000 + 54000);
    gb_fleet_free(f);
}

/* Unregistration is challenged like any REGISTER and ends Unregistered. */
static void test_unregister(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    int64_t t = register_device(f, 0, 0, 3600);
    gb_fleet_out_clear(f);
    gb_fleet_events_clear(f);
    CHECK_EQ_INT(gb_fleet_stop(f, 0, t + 100), 0);
    sent s;
    CHECK(take_one(f, &s) > 0);
    CHECK(has_line(&s, "Expires: 0"));
    CHECK(has_line(&s, "CSeq: 3 REGISTER"));
    CHECK(strstr(header(&s, "Authorization"), "nonce=\"n1\"") != NULL);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_UNREGISTERING);
    respond(f, &s, 401, "WWW-Authenticate: Digest realm=\"3402000000\",nonce=\"n9\"\r\n", t + 110);
    CHECK(take_one(f, &s) > 0);
    CHECK(has_line(&s, "Expires: 0"));
    CHECK(strstr(header(&s, "Authorization"), "nonce=\"n9\"") != NULL);
    respond(f, &s, 200, NULL, t + 120);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_UNREGISTERED);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_UNREGISTERED);
    CHECK(e && e->status == 200);
    CHECK_EQ_INT(gb_fleet_next_deadline(f), GB_DEV_NEVER);
    /* stopping a device that never registered sends nothing */
    gb_fleet_add(f, "34020000001320000002", 20);
    CHECK_EQ_INT(gb_fleet_stop(f, 1, t + 200), 0);
    CHECK_EQ_INT(gb_fleet_out_count(f), 0);
    e = last_event(f, GB_DEV_EV_UNREGISTERED);
    CHECK(e && e->dev == 1 && e->reason == GB_DEV_R_NOT_REGISTERED);
    gb_fleet_free(f);
}

/* Options: X-GB-Ver, no capability hint, custom Request-URI. */
static void test_options_in_register(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    cfg.gb_version = GBB("3.0");
    cfg.capability_header = 0;
    cfg.domain = GBB("3402000000.spvmn.cn");
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    gb_fleet_start(f, 0, 0);
    sent s;
    take_one(f, &s);
    CHECK(has_line(&s, "X-GB-Ver: 3.0"));
    CHECK(strstr(s.buf, "Capability") == NULL);
    CHECK(strncmp(s.buf, "REGISTER sip:34020000002000000001@3402000000.spvmn.cn SIP/2.0", 61) == 0);
    CHECK(has_line(&s, "From: <sip:" ID "@3402000000.spvmn.cn>;tag=") == 0); /* tag follows */
    CHECK(strstr(s.buf, "\r\nFrom: <sip:" ID "@3402000000.spvmn.cn>;tag=") != NULL);
    gb_fleet_free(f);
}

/* A fleet: thousands of devices, one heap, one Call-ID table. */
static void test_fleet_scale(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    cfg.keepalive_interval_ms = 0;
    const char *why;
    gb_fleet *f = gb_fleet_new(&cfg, 16, &why);
    enum { N = 20000 };
    char id[21];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "340200000013%08d", i);
        CHECK_EQ_INT(gb_fleet_add(f, id, 20), i);
    }
    for (int i = 0; i < N; i++)
        gb_fleet_start(f, (uint32_t)i, i % 1000);
    CHECK_EQ_INT(gb_fleet_out_count(f), N);
    CHECK_EQ_INT(gb_fleet_next_deadline(f), 500);
    /* answer every REGISTER in reverse order */
    size_t n = gb_fleet_out_count(f);
    char *copy = malloc((size_t)N * 1024);
    size_t *off = malloc(sizeof(size_t) * N), used = 0;
    for (size_t k = 0; k < n; k++) {
        const gb_dev_out *o = &gb_fleet_out_items(f)[k];
        memcpy(copy + used, gb_fleet_out_data(f) + o->off, o->len);
        off[k] = used;
        used += o->len;
        copy[used++] = '\0';
    }
    gb_fleet_out_clear(f);
    int ok = 0;
    for (size_t k = n; k-- > 0;) {
        sent s;
        s.len = strlen(copy + off[k]);
        memcpy(s.buf, copy + off[k], s.len + 1);
        ok += respond(f, &s, 200, "Expires: 3600\r\n", 1000) == (long)k;
    }
    CHECK_EQ_INT(ok, N);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->by_state[GB_DEV_REGISTERED], N);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->registrations, N);
    CHECK_EQ_INT(gb_fleet_next_deadline(f), 1000 + 1800000);
    CHECK(gb_fleet_bytes_per_device() <= 1024);
    CHECK(gb_fleet_memory(f) / N <= 1024);
    fprintf(stderr, "fleet: %zu bytes per device (record+heap+table), %zu state "
            "bytes for %d devices, %zu in queues\n", gb_fleet_bytes_per_device(),
            gb_fleet_memory(f), N, gb_fleet_queue_memory(f));
    /* all refreshes fire at the same time: one tick sends them all */
    gb_fleet_handle_timer(f, 1000 + 1800000);
    CHECK_EQ_INT(gb_fleet_out_count(f), N);
    CHECK_EQ_INT(gb_fleet_get_stats(f)->by_state[GB_DEV_REFRESHING], N);
    free(copy);
    free(off);
    gb_fleet_free(f);
}

/* Same seed, same bytes. */
static void test_deterministic(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    sent a, b;
    for (int k = 0; k < 2; k++) {
        gb_fleet *f = make_fleet(&cfg);
        gb_fleet_add(f, ID, 20);
        gb_fleet_start(f, 0, 0);
        take_one(f, k ? &b : &a);
        gb_fleet_free(f);
    }
    CHECK(a.len && a.len == b.len && memcmp(a.buf, b.buf, a.len) == 0);
}

/* A simulator's accounting: the last failure stays with the device, and
 * abandon() goes silent (nothing sent) and can start again. */
static void test_last_failure_and_abandon(void)
{
    gb_dev_config cfg;
    base_config(&cfg);
    gb_fleet *f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    uint16_t st;
    gb_dev_reason why;
    gb_fleet_last_failure(f, 0, &st, &why);
    CHECK(st == 0 && why == GB_DEV_R_NONE && !gb_fleet_ever_registered(f, 0));
    gb_fleet_start(f, 0, 0);
    sent s;
    take_one(f, &s);
    respond(f, &s, 404, NULL, 5);
    gb_fleet_last_failure(f, 0, &st, &why);
    CHECK(st == 404 && why == GB_DEV_R_REJECTED);
    gb_fleet_free(f);

    f = make_fleet(&cfg);
    gb_fleet_add(f, ID, 20);
    int64_t now = register_device(f, 0, 0, 3600);
    CHECK(gb_fleet_ever_registered(f, 0));
    gb_fleet_events_clear(f);
    CHECK_EQ_INT(gb_fleet_abandon(f, 0, now), 0);
    CHECK_EQ_INT(gb_fleet_out_count(f), 0);
    CHECK_EQ_INT(gb_fleet_state(f, 0), GB_DEV_UNREGISTERED);
    CHECK_EQ_INT(gb_fleet_next_deadline(f), GB_DEV_NEVER);
    const gb_dev_event *e = last_event(f, GB_DEV_EV_UNREGISTERED);
    CHECK(e && e->reason == GB_DEV_R_ABANDONED && e->status == 0);
    CHECK_EQ_INT(gb_fleet_abandon(f, 0, now), -1);
    CHECK_EQ_INT(gb_fleet_start(f, 0, now + 1), 0);
    CHECK(take_one(f, &s) > 0);
    CHECK(has_line(&s, "Authorization: Capability, algorithm=\"H:MD5\""));
    gb_fleet_free(f);
}

int main(void)
{
    test_seed_reproduced();
    test_udp_retransmission_timing();
    test_proceeding_retransmits_at_t2();
    test_tcp_no_retransmission();
    test_423_retries_with_min_expires();
    test_403_fails_and_retries();
    test_wrong_password_is_auth_rejected();
    test_refresh_stale_and_qop();
    test_granted_expiry_from_contact();
    test_keepalive_loss_reregisters();
    test_skip_keepalives();
    test_drop_responses();
    test_strays_are_counted();
    test_response_missing_headers_any_leniency();
    test_every_device_move_is_taken();
    test_device_moves_outside_the_table_refused();
    test_redirect();
    test_unregister();
    test_options_in_register();
    test_fleet_scale();
    test_deterministic();
    test_last_failure_and_abandon();
    return CHECK_DONE("test_device");
}
