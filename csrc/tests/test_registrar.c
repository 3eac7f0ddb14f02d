/*
 * test_registrar.c - the sans-IO registrar core alone (registrar.h):
 * RFC 3261 §10.3 registration processing, §17.2 retransmissions, and the
 * GB/T 28181 §9.1 / §9.6 / §9.10 rules, driven with explicit times.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "seed.h"
#include "digest.h"
#include "gb_containers.h"
#include "registrar.h"
#include "sip_auth.h"
#include "sip_parser.h"

#define SERVER_ID "34020000002000000001"
#define REALM "3402000000"
#define DEV "34020000001320000001"
#define DEV2 "34020000001320000002"
#define RURI "sip:" SERVER_ID "@" REALM
#define PASSWORD "12345678"
#define NOW0 1000000             /* monotonic ms at the start of each test */
#define WALL_SEED 1372262917164LL /* 2013-06-26T16:08:37.164 (local) */

static const unsigned char KEY[32] = "0123456789abcdef0123456789abcdef";
static gb_digest_ctx *dctx;
static unsigned branch_no;

/* ---------------------------------------------------------------- */
/* Harness                                                           */

static void cfg_base(gb_registrar_config *c)
{
    gb_registrar_config_default(c);
    c->server_id = SERVER_ID;
    c->server_id_len = strlen(SERVER_ID);
    c->shared_password = PASSWORD;
    c->shared_password_len = strlen(PASSWORD);
    c->nonce_key = KEY;
    c->nonce_key_len = sizeof(KEY);
    c->seed = 42;
}

static void cfg_fixed_nonce(gb_registrar_config *c, const char *nonce)
{
    c->fixed_nonce = nonce;
    c->fixed_nonce_len = strlen(nonce);
}

static gb_registrar *mk(const gb_registrar_config *c)
{
    const char *why = NULL;
    gb_registrar *r = gb_registrar_new(c, &why);
    if (!r)
        fprintf(stderr, "gb_registrar_new: %s\n", why ? why : "?");
    CHECK(r != NULL);
    return r;
}

/* The base configuration with these leniencies. */
static gb_registrar *mk_lenient(uint32_t lenient)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.lenient = lenient;
    return mk(&c);
}

static gb_peer peer4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
    gb_peer p;
    memset(&p, 0, sizeof(p));
    p.family = 4;
    p.transport = GB_TRANSPORT_UDP;
    p.port = port;
    p.ip[0] = a;
    p.ip[1] = b;
    p.ip[2] = c;
    p.ip[3] = d;
    return p;
}

/* One answer, parsed. */
typedef struct {
    gb_reg_status st;
    char buf[8192];
    size_t len;
    gb_peer dest;
    gb_header hdrs[64];
    gb_msg m;
    int parsed;
} answer;

static void parse_answer(answer *a)
{
    gb_limits lim;
    gb_limits_default(&lim);
    gb_msg_init(&a->m, a->hdrs, 64);
    a->parsed = a->st == GB_REG_REPLY && gb_parse(a->buf, a->len, 0, &lim, &a->m, NULL) == GB_OK &&
                a->m.kind == GB_RESPONSE;
}

static gb_reg_status feed(gb_registrar *r, answer *a, const char *msg, size_t len,
                          const gb_peer *src, int64_t now, int64_t wall)
{
    gb_reg_reply out = {.buf = a->buf, .cap = sizeof(a->buf)};
    a->st = gb_registrar_handle(r, msg, len, src, now, wall, &out);
    a->len = out.len;
    a->dest = out.dest;
    parse_answer(a);
    return a->st;
}

static int status_of(const answer *a)
{
    return a->parsed ? a->m.status : -1;
}

/* The value of the n-th header of that name, or NULL. */
static const char *hval(const answer *a, const char *name, unsigned nth, size_t *n)
{
    if (!a->parsed)
        return NULL;
    int i = -1;
    for (unsigned k = 0; k <= nth; k++) {
        i = gb_msg_find_name(&a->m, a->buf, name, strlen(name), i);
        if (i < 0)
            return NULL;
    }
    *n = a->m.headers[i].value.len;
    return a->buf + a->m.headers[i].value.off;
}

static int hcount(const answer *a, const char *name)
{
    int n = 0;
    for (int i = -1; a->parsed && (i = gb_msg_find_name(&a->m, a->buf, name, strlen(name), i)) >= 0;)
        n++;
    return n;
}

static int has_text(const char *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; p && i + k <= n; i++)
        if (memcmp(p + i, needle, k) == 0)
            return 1;
    return 0;
}

static int reason_has(const answer *a, const char *needle)
{
    return a->parsed && has_text(a->buf + a->m.reason.off, a->m.reason.len, needle);
}

static int hval_is(const answer *a, const char *name, const char *want)
{
    size_t n = 0;
    const char *v = hval(a, name, 0, &n);
    return v && n == strlen(want) && memcmp(v, want, n) == 0;
}

/* Events: pop everything, count and keep copies of the interesting bits. */
typedef struct {
    size_t n;
    gb_reg_event ev[64];
} evlist;

static void pop_all(gb_registrar *r, evlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        gb_reg_event_clear(&l->ev[i]);
    l->n = gb_registrar_pop_events(r, l->ev, 64);
}

static void evs_free(evlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        gb_reg_event_clear(&l->ev[i]);
    l->n = 0;
}

static int count_type(const evlist *l, int type)
{
    int n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += l->ev[i].type == type;
    return n;
}

static const gb_reg_event *find_type(const evlist *l, int type)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->ev[i].type == type)
            return &l->ev[i];
    return NULL;
}

/* ---------------------------------------------------------------- */
/* Requests                                                          */

typedef struct {
    const char *method;      /* NULL: REGISTER */
    const char *uri;         /* NULL: sip:<server>@<realm> */
    const char *id;          /* NULL: DEV */
    const char *call_id;     /* NULL: "call-1" */
    unsigned cseq;
    const char *contact;     /* NULL: <sip:ID@10.0.0.5:5061>; "" none */
    long expires;            /* -1: no Expires header */
    const char *auth;        /* Authorization value, or NULL */
    const char *extra;       /* more header lines, each ending CRLF */
    const char *ctype;       /* Content-Type */
    const char *body;
    const char *branch;      /* NULL: a fresh one */
} req;

static size_t build(char *out, size_t cap, const req *q)
{
    char br[32];
    const char *method = q->method ? q->method : "REGISTER";
    const char *id = q->id ? q->id : DEV;
    if (!q->branch)
        snprintf(br, sizeof(br), "z9hG4bK%u", ++branch_no);
    char contact[8192];
    if (q->contact)
        snprintf(contact, sizeof(contact), "%s", q->contact);
    else
        snprintf(contact, sizeof(contact), "<sip:%s@10.0.0.5:5061>", id);
    char exp[32] = "";
    if (q->expires >= 0)
        snprintf(exp, sizeof(exp), "Expires: %ld\r\n", q->expires);
    const char *body = q->body ? q->body : "";
    int n = snprintf(out, cap,
                     "%s %s SIP/2.0\r\n"
                     "Via: SIP/2.0/UDP 10.0.0.5:5061;rport;branch=%s\r\n"
                     "From: <sip:%s@" REALM ">;tag=ft%s\r\n"
                     "To: <sip:%s@" REALM ">\r\n"
                     "Call-ID: %s\r\n"
                     "CSeq: %u %s\r\n"
                     "Max-Forwards: 70\r\n"
                     "%s%s%s%s%s%s%s%s%s"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, q->uri ? q->uri : RURI, q->branch ? q->branch : br, id, id, id,
                     q->call_id ? q->call_id : "call-1", q->cseq ? q->cseq : 1, method,
                     contact[0] ? "Contact: " : "", contact, contact[0] ? "\r\n" : "", exp,
                     q->auth ? "Authorization: " : "", q->auth ? q->auth : "",
                     q->auth ? "\r\n" : "", q->ctype ? "Content-Type: " : "",
                     q->ctype ? q->ctype : "", strlen(body), body);
    /* Content-Type needs its line end: splice it in before Content-Length */
    if (q->ctype) {
        char tmp[8192];
        const char *cl = strstr(out, "Content-Length:");
        size_t head = (size_t)(cl - out);
        n = snprintf(tmp, sizeof(tmp), "%.*s\r\n%s", (int)head, out, cl);
        memcpy(out, tmp, (size_t)n + 1);
    }
    if (q->extra) {
        char tmp[8192];
        const char *cl = strstr(out, "Content-Length:");
        size_t head = (size_t)(cl - out);
        n = snprintf(tmp, sizeof(tmp), "%.*s%s%s", (int)head, out, q->extra, cl);
        memcpy(out, tmp, (size_t)n + 1);
    }
    return (size_t)n;
}

static gb_reg_status send_req(gb_registrar *r, answer *a, const req *q, const gb_peer *src,
                              int64_t now, int64_t wall)
{
    char buf[8192];
    size_t n = build(buf, sizeof(buf), q);
    return feed(r, a, buf, n, src, now, wall);
}

/* Digest credentials for a nonce we know (no qop), via digest.h. */
static void creds(char *out, size_t cap, const char *user, const char *password,
                  const char *nonce, const char *uri)
{
    gb_digest_input in = {
        .alg = GB_DIGEST_MD5,
        .qop = GB_QOP_NONE,
        .username = {user, strlen(user)},
        .realm = {REALM, strlen(REALM)},
        .password = {password, strlen(password)},
        .nonce = {nonce, strlen(nonce)},
        .method = {"REGISTER", 8},
        .uri = {uri, strlen(uri)},
    };
    char resp[GB_DIGEST_HEX_MAX];
    const char *why = NULL;
    int rn = gb_digest_response(dctx, &in, resp, &why);
    CHECK(rn == 32);
    gb_digest_credentials_out co = {
        .username = {user, strlen(user)},
        .realm = {REALM, strlen(REALM)},
        .nonce = {nonce, strlen(nonce)},
        .uri = {uri, strlen(uri)},
        .response = {resp, rn > 0 ? (size_t)rn : 0},
        .alg = GB_DIGEST_MD5,
        .qop = GB_QOP_NONE,
    };
    long n = gb_digest_build_credentials(out, cap - 1, &co);
    CHECK(n > 0 && (size_t)n < cap);
    out[n > 0 && (size_t)n < cap ? n : 0] = 0;
}

/* Answer the challenge of a 401 (qop as offered) with gb_digest_answer,
 * for a request of this method. */
static int answer_challenge_as(const answer *a, gb_digest_client *cl, const char *user,
                               const char *password, uint32_t nc, const char *method,
                               char *out, size_t cap)
{
    size_t vn = 0;
    const char *v = hval(a, "WWW-Authenticate", 0, &vn);
    if (!v)
        return -1;
    gb_span span = {(uint32_t)(v - a->buf), (uint32_t)vn};
    gb_auth au;
    gb_digest_challenge ch;
    if (gb_auth_parse_one(a->buf, span, &au, NULL) != GB_OK ||
        gb_digest_parse_challenge(a->buf, &au, &ch, NULL) != GB_OK)
        return -1;
    gb_digest_answer_in in = {
        .username = {user, strlen(user)},
        .password = {password, strlen(password)},
        .method = {method, strlen(method)},
        .uri = {RURI, strlen(RURI)},
        .nc = nc,
        .qop = -1,
    };
    const char *why = NULL;
    long n = gb_digest_answer(dctx, cl, a->buf, &ch, &in, out, cap - 1, &why);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "gb_digest_answer: %s\n", why ? why : "too long");
        return -1;
    }
    out[n] = 0;
    return 0;
}

static int answer_challenge(const answer *a, gb_digest_client *cl, const char *user,
                            const char *password, uint32_t nc, char *out, size_t cap)
{
    return answer_challenge_as(a, cl, user, password, nc, "REGISTER", out, cap);
}

/* REGISTER -> 401 -> REGISTER with credentials; returns the final status. */
static int register_flow(gb_registrar *r, answer *a, const char *id, const char *call_id,
                         unsigned cseq, long expires, const char *password,
                         const gb_peer *src, int64_t now)
{
    req q = {.id = id, .call_id = call_id, .cseq = cseq, .expires = expires};
    send_req(r, a, &q, src, now, WALL_SEED);
    if (status_of(a) != 401)
        return status_of(a);
    char auth[1024];
    gb_digest_client cl;
    gb_digest_client_init(&cl);
    if (answer_challenge(a, &cl, id ? id : DEV, password, 0, auth, sizeof(auth)) < 0)
        return -1;
    q.cseq = cseq + 1;
    q.auth = auth;
    send_req(r, a, &q, src, now, WALL_SEED);
    return status_of(a);
}

/* ---------------------------------------------------------------- */
/* The seed (GB/T 28181 §9.1.2.1, shared/seed/ of the project)       */

#define SEED1 SEED_REGISTER1

static const char SEED3[] =
    "REGISTER sip:192.168.10.177:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.10.117:5061;rport=5061;branch=z9hG4bK3163110852;received=192.168.10.117\r\n"
    "From: <sip:34020000001320000001@192.168.10.177>;tag=2577708869\r\n"
    "To: <sip:34020000001320000001@192.168.10.177>\r\n"
    "Call-ID: 939764460\r\n"
    "CSeq: 2 REGISTER\r\n"
    "Contact: <sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b>\r\n"
    "Authorization: Digest username=\"34020000001320000001\",realm=\"3402000000\",nonce=\"324cab6e557268e0\",uri=\"sip:192.168.10.177:5060\",response=\"7f536c8ce38593239f9130e37a72276e\",algorithm=MD5\r\n"
    "Max-Forwards: 70\r\n"
    "User-Agent: eXosip/3.6.0\r\n"
    "Expires: 3600\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

static void test_seed_replay(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "324cab6e557268e0");
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(192, 168, 10, 117, 5061);
    answer a;
    evlist l = {0};

    CHECK_EQ_INT(feed(r, &a, SEED1, sizeof(SEED1) - 1, &cam, NOW0, WALL_SEED), GB_REG_REPLY);
    CHECK_EQ_INT(status_of(&a), 401);
    size_t n = 0;
    const char *w = hval(&a, "WWW-Authenticate", 0, &n);
    CHECK(has_text(w, n, "realm=\"3402000000\""));
    CHECK(has_text(w, n, "nonce=\"324cab6e557268e0\""));
    CHECK(has_text(w, n, "algorithm=MD5"));
    CHECK(!has_text(w, n, "qop"));
    CHECK(hval_is(&a, "Call-ID", "939764460"));
    CHECK(hval_is(&a, "CSeq", "1 REGISTER"));
    /* the answer goes back to the packet's source (rport, RFC 3581) */
    CHECK_EQ_INT(a.dest.port, 5061);
    CHECK_EQ_INT(a.dest.ip[3], 117);
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_AUTH_FAILED), 0); /* Capability is no credential */

    CHECK_EQ_INT(feed(r, &a, SEED3, sizeof(SEED3) - 1, &cam, NOW0 + 40, WALL_SEED), GB_REG_REPLY);
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK(hval_is(&a, "Date", "2013-06-26T16:08:37.164"));
    CHECK(hval_is(&a, "Contact",
                  "<sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b>;expires=3600"));
    CHECK(hval_is(&a, "Expires", "3600"));
    CHECK(hval_is(&a, "CSeq", "2 REGISTER"));
    CHECK(hcount(&a, "X-GB-Ver") == 0);
    pop_all(r, &l);
    const gb_reg_event *ev = find_type(&l, GB_REG_EV_REGISTERED);
    CHECK(ev != NULL);
    if (ev) {
        CHECK_MEM(ev->id, ev->id_len, DEV);
        CHECK_EQ_INT(ev->expires, 3600);
        CHECK_MEM(ev->text, ev->text_len,
                  "sip:34020000001320000001@192.168.10.117:5061;line=6513f93347c330b");
        CHECK_MEM(ev->extra, ev->extra_len, "eXosip/3.6.0");
    }
    gb_binding_view v;
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v));
    CHECK_MEM(v.call_id, v.call_id_len, "939764460");
    CHECK_EQ_INT(v.cseq, 2);
    CHECK_EQ_INT(v.expires_at, NOW0 + 40 + 3600 * 1000);
    CHECK(v.online);
    evs_free(&l);
    gb_registrar_free(r);
}

static void test_date_format(void)
{
    /* GB/T 28181 §9.10: the Date is the wall time passed in, with ms */
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    req q = {.cseq = 1, .expires = 3600, .auth = auth};
    answer a;
    send_req(r, &a, &q, &p, NOW0, 1709251199999LL); /* leap day, last ms */
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK(hval_is(&a, "Date", "2024-02-29T23:59:59.999"));
    q.cseq = 2;
    send_req(r, &a, &q, &p, NOW0, 0);
    CHECK(hval_is(&a, "Date", "1970-01-01T00:00:00.000"));
    gb_registrar_free(r);
}

static void test_gb_version_and_server_header(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.gb_version = "3.0";
    c.gb_version_len = 3;
    c.server_header = "gbsip-test";
    c.server_header_len = 10;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    req q = {.cseq = 1, .expires = 3600, .auth = auth};
    answer a;
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK(hval_is(&a, "X-GB-Ver", "3.0"));
    CHECK(hval_is(&a, "Server", "gbsip-test"));
    gb_registrar_free(r);
}

/* ---------------------------------------------------------------- */
/* RFC 3261 §10.3                                                     */

static void test_cseq_order_same_call_id(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    answer a;
    req q = {.call_id = "A", .cseq = 5, .expires = 3600, .auth = auth};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    /* older and equal CSeq on the same Call-ID: the update is aborted */
    q.cseq = 4;
    send_req(r, &a, &q, &p, NOW0 + 1, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 500);
    CHECK(reason_has(&a, "CSeq"));
    q.cseq = 5;
    send_req(r, &a, &q, &p, NOW0 + 2, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 500);
    gb_binding_view v;
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v));
    CHECK_EQ_INT(v.cseq, 5);
    CHECK_EQ_INT(v.expires_at, NOW0 + 3600000);
    /* a higher CSeq refreshes */
    q.cseq = 6;
    send_req(r, &a, &q, &p, NOW0 + 3, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v));
    CHECK_EQ_INT(v.cseq, 6);
    gb_registrar_free(r);
}

static void test_new_call_id_replaces(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    answer a;
    req q = {.call_id = "A", .cseq = 50, .expires = 3600, .auth = auth};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    /* a rebooted device: new Call-ID, CSeq from 1, a new address */
    req q2 = {.call_id = "B", .cseq = 1, .expires = 3600, .auth = auth,
              .contact = "<sip:" DEV "@10.0.0.9:5061>"};
    gb_peer p2 = peer4(10, 0, 0, 9, 5061);
    send_req(r, &a, &q2, &p2, NOW0 + 10, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    gb_binding_view v;
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v));
    CHECK_MEM(v.call_id, v.call_id_len, "B");
    CHECK_EQ_INT(v.cseq, 1);
    CHECK_EQ_INT(v.source.ip[3], 9);
    /* the binding is replaced, not merged with the old contact */
    CHECK_EQ_INT(v.ncontacts, 1);
    CHECK_MEM(v.contact, v.contact_len, "sip:" DEV "@10.0.0.9:5061");
    CHECK_EQ_INT(hcount(&a, "Contact"), 1);
    gb_registrar_free(r);
}

static void test_wildcard_unregister(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    answer a;
    evlist l = {0};
    req q = {.cseq = 1, .expires = 3600, .auth = auth};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);

    /* Contact: * without Expires: 0 is malformed (§10.3 step 6) */
    req bad = {.cseq = 2, .contact = "*", .expires = -1, .auth = auth};
    send_req(r, &a, &bad, &p, NOW0 + 1, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 400);
    CHECK(reason_has(&a, "Expires: 0"));
    bad.cseq = 3;
    bad.expires = 3600;
    send_req(r, &a, &bad, &p, NOW0 + 2, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 400);
    req mixed = {.cseq = 4, .contact = "*, <sip:" DEV "@10.0.0.5:5061>", .expires = 0,
                 .auth = auth};
    send_req(r, &a, &mixed, &p, NOW0 + 3, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 400);
    CHECK_EQ_INT(gb_registrar_binding_count(r), 1);

    req ok = {.cseq = 5, .contact = "*", .expires = 0, .auth = auth};
    send_req(r, &a, &ok, &p, NOW0 + 4, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK_EQ_INT(hcount(&a, "Contact"), 0);
    CHECK_EQ_INT(gb_registrar_binding_count(r), 0);
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_UNREGISTERED), 1);
    evs_free(&l);
    gb_registrar_free(r);
}

static void test_unregister_with_expires_zero(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    answer a;
    req q = {.cseq = 1, .expires = 3600, .auth = auth};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    q.cseq = 2;
    q.expires = 0;
    send_req(r, &a, &q, &p, NOW0 + 1, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK_EQ_INT(gb_registrar_binding_count(r), 0);
    gb_registrar_free(r);
}

static void test_423_min_expires(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    answer a;
    req q = {.cseq = 1, .expires = 60, .auth = auth};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 423);
    CHECK(hval_is(&a, "Min-Expires", "3600"));
    CHECK_EQ_INT(gb_registrar_binding_count(r), 0);
    /* a per-contact expires param below the minimum too */
    req q2 = {.cseq = 2, .expires = -1, .auth = auth,
              .contact = "<sip:" DEV "@10.0.0.5:5061>;expires=10"};
    send_req(r, &a, &q2, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 423);
    /* the minimum itself is fine */
    q.cseq = 3;
    q.expires = 3600;
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    gb_registrar_free(r);
}

static void test_clamp_to_max(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.max_expires = 7200;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    answer a;
    evlist l = {0};
    req q = {.cseq = 1, .expires = 999999, .auth = auth};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK(hval_is(&a, "Expires", "7200"));
    CHECK(hval_is(&a, "Contact", "<sip:" DEV "@10.0.0.5:5061>;expires=7200"));
    pop_all(r, &l);
    const gb_reg_event *ev = find_type(&l, GB_REG_EV_REGISTERED);
    CHECK(ev && ev->expires == 7200);
    /* no Expires at all: default_expires (3600) */
    req d = {.id = DEV2, .cseq = 1, .expires = -1, .auth = NULL};
    char auth2[1024];
    creds(auth2, sizeof(auth2), DEV2, PASSWORD, "n", RURI);
    d.auth = auth2;
    send_req(r, &a, &d, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK(hval_is(&a, "Expires", "3600"));
    evs_free(&l);
    gb_registrar_free(r);
}

/* ---------------------------------------------------------------- */
/* Authentication (GB/T 28181 §9.1.2.1)                               */

static void test_403_wrong_password(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    evlist l = {0};
    CHECK_EQ_INT(register_flow(r, &a, DEV, "c", 1, 3600, "wrong", &p, NOW0), 403);
    CHECK_EQ_INT(hcount(&a, "WWW-Authenticate"), 0); /* no second challenge */
    CHECK_EQ_INT(gb_registrar_binding_count(r), 0);
    pop_all(r, &l);
    const gb_reg_event *ev = find_type(&l, GB_REG_EV_AUTH_FAILED);
    CHECK(ev != NULL);
    if (ev) {
        CHECK_EQ_INT(ev->status, 403);
        CHECK(ev->reason && strstr(ev->reason, "password"));
        CHECK_MEM(ev->id, ev->id_len, DEV);
    }
    evs_free(&l);
    gb_registrar_free(r);
}

static void test_403_unknown_device(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.shared_password = NULL;
    c.shared_password_len = 0;
    gb_registrar *r = mk(&c);
    CHECK_EQ_INT(gb_registrar_set_secret(r, DEV, strlen(DEV), "pw1", 3, 0), 0);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    evlist l = {0};
    CHECK_EQ_INT(register_flow(r, &a, DEV2, "c2", 1, 3600, "pw1", &p, NOW0), 403);
    CHECK(reason_has(&a, "unknown"));
    pop_all(r, &l);
    const gb_reg_event *ev = find_type(&l, GB_REG_EV_AUTH_FAILED);
    CHECK(ev && ev->reason && strstr(ev->reason, "unknown"));
    /* the known device with its own password registers */
    CHECK_EQ_INT(register_flow(r, &a, DEV, "c1", 1, 3600, "pw1", &p, NOW0), 200);
    /* a stored HA1 works the same */
    char ha1[GB_DIGEST_HEX_MAX];
    int hn = gb_digest_ha1(dctx, GB_DIGEST_MD5, (gb_bytes){DEV2, strlen(DEV2)},
                           (gb_bytes){REALM, strlen(REALM)}, (gb_bytes){"pw2", 3}, ha1);
    CHECK_EQ_INT(hn, 32);
    CHECK_EQ_INT(gb_registrar_set_secret(r, DEV2, strlen(DEV2), ha1, (size_t)hn, 1), 0);
    CHECK_EQ_INT(register_flow(r, &a, DEV2, "c3", 1, 3600, "pw2", &p, NOW0), 200);
    /* forgetting a secret makes the device unknown again */
    CHECK_EQ_INT(gb_registrar_forget_secret(r, DEV2, strlen(DEV2)), 1);
    CHECK_EQ_INT(register_flow(r, &a, DEV2, "c4", 1, 3600, "pw2", &p, NOW0), 403);
    evs_free(&l);
    gb_registrar_free(r);
}

static void test_credentials_for_another_device(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof(auth), DEV2, PASSWORD, "n", RURI); /* DEV2's credentials */
    answer a;
    req q = {.id = DEV, .cseq = 1, .expires = 3600, .auth = auth};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 403);
    CHECK_EQ_INT(gb_registrar_binding_count(r), 0);
    gb_registrar_free(r);
}

static void test_stale_nonce(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.nonce_lifetime = 2;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    req q = {.cseq = 1, .expires = 3600};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 401);
    size_t n = 0;
    const char *w = hval(&a, "WWW-Authenticate", 0, &n);
    CHECK(w && !has_text(w, n, "stale"));
    char auth[1024];
    CHECK_EQ_INT(answer_challenge(&a, NULL, DEV, PASSWORD, 0, auth, sizeof(auth)), 0);
    /* 5 s later the nonce has outlived its 2 s: re-challenge, stale=true */
    q.cseq = 2;
    q.auth = auth;
    send_req(r, &a, &q, &p, NOW0 + 5000, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 401);
    w = hval(&a, "WWW-Authenticate", 0, &n);
    CHECK(has_text(w, n, "stale=true"));
    CHECK(has_text(w, n, "algorithm=MD5"));
    CHECK_EQ_INT(gb_registrar_binding_count(r), 0);
    /* the fresh nonce works */
    CHECK_EQ_INT(answer_challenge(&a, NULL, DEV, PASSWORD, 0, auth, sizeof(auth)), 0);
    q.cseq = 3;
    send_req(r, &a, &q, &p, NOW0 + 5001, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    gb_registrar_free(r);
}

static void test_qop_auth_nc_replay(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.qop_auth = 1;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a, ch;
    evlist l = {0};
    req q = {.cseq = 1, .expires = 3600};
    send_req(r, &ch, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&ch), 401);
    size_t n = 0;
    const char *w = hval(&ch, "WWW-Authenticate", 0, &n);
    CHECK(has_text(w, n, "qop=\"auth\""));
    CHECK(has_text(w, n, "algorithm=MD5"));
    char auth[1024];
    CHECK_EQ_INT(answer_challenge(&ch, NULL, DEV, PASSWORD, 1, auth, sizeof(auth)), 0);
    CHECK(strstr(auth, "nc=00000001") != NULL);
    q.cseq = 2;
    q.auth = auth;
    send_req(r, &a, &q, &p, NOW0 + 1, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    pop_all(r, &l);
    /* the same nc again on a new request (new branch): a replay */
    q.cseq = 3;
    send_req(r, &a, &q, &p, NOW0 + 2, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 401);
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_AUTH_FAILED), 1);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_REFRESHED), 0);
    /* nc=2 with the same nonce is a fresh use */
    CHECK_EQ_INT(answer_challenge(&ch, NULL, DEV, PASSWORD, 2, auth, sizeof(auth)), 0);
    q.cseq = 4;
    send_req(r, &a, &q, &p, NOW0 + 3, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    evs_free(&l);
    gb_registrar_free(r);
}

static void test_refresh_policy(void)
{
    for (int policy = GB_REFRESH_CHALLENGE; policy <= GB_REFRESH_TRUST_CALL_ID; policy++) {
        gb_registrar_config c;
        cfg_base(&c);
        c.refresh_policy = policy;
        gb_registrar *r = mk(&c);
        gb_peer p = peer4(10, 0, 0, 5, 5061);
        answer a;
        evlist l = {0};
        CHECK_EQ_INT(register_flow(r, &a, DEV, "c", 1, 3600, PASSWORD, &p, NOW0), 200);
        pop_all(r, &l);
        /* a refresh without credentials on the same Call-ID, same source */
        req q = {.call_id = "c", .cseq = 3, .expires = 3600};
        send_req(r, &a, &q, &p, NOW0 + 1000, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), policy == GB_REFRESH_TRUST_CALL_ID ? 200 : 401);
        pop_all(r, &l);
        CHECK_EQ_INT(count_type(&l, GB_REG_EV_REFRESHED), policy == GB_REFRESH_TRUST_CALL_ID);
        /* never trusted: another Call-ID, or another source port */
        req other = {.call_id = "other", .cseq = 9, .expires = 3600};
        send_req(r, &a, &other, &p, NOW0 + 2000, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 401);
        gb_peer moved = peer4(10, 0, 0, 5, 6000);
        q.cseq = 10;
        send_req(r, &a, &q, &moved, NOW0 + 3000, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 401);
        evs_free(&l);
        gb_registrar_free(r);
    }
}

static void test_pending_secret_lookup(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.shared_password = NULL;
    c.shared_password_len = 0;
    c.ask_for_secrets = 1;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    evlist l = {0};
    req q = {.cseq = 1, .expires = 3600};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 401);
    char auth[1024];
    CHECK_EQ_INT(answer_challenge(&a, NULL, DEV, "secret", 0, auth, sizeof(auth)), 0);
    q.cseq = 2;
    q.auth = auth;
    CHECK_EQ_INT(send_req(r, &a, &q, &p, NOW0 + 1, WALL_SEED), GB_REG_PENDING);
    pop_all(r, &l);
    const gb_reg_event *ev = find_type(&l, GB_REG_EV_NEED_SECRET);
    CHECK(ev != NULL);
    uint64_t pid = ev ? ev->pending_id : 0;
    if (ev)
        CHECK_MEM(ev->id, ev->id_len, DEV);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.pending, 1);
    gb_reg_reply out = {.buf = a.buf, .cap = sizeof(a.buf)};
    a.st = gb_registrar_resume(r, pid, GB_SECRET_PASSWORD, "secret", 6, NOW0 + 5, WALL_SEED, &out);
    a.len = out.len;
    parse_answer(&a);
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK_EQ_INT(out.dest.port, 5061);
    /* resuming twice finds nothing */
    CHECK_EQ_INT(gb_registrar_resume(r, pid, GB_SECRET_PASSWORD, "secret", 6, NOW0 + 6,
                                     WALL_SEED, &out),
                 GB_REG_DROPPED);
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.pending, 0);
    evs_free(&l);
    gb_registrar_free(r);
}

/* ---------------------------------------------------------------- */
/* Keepalive (GB/T 28181 §9.6.1) and timers                          */

static const char KA_BODY[] =
    "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n"
    "<SN>43</SN>\r\n<DeviceID>" DEV "</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n";

static void test_keepalive_online_offline(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.keepalive_interval_ms = 1000;
    c.keepalive_timeout_count = 3;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    answer a;
    evlist l = {0};
    req q = {.cseq = 1, .expires = 3600, .auth = auth};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    pop_all(r, &l);

    /* a keepalive from the binding's address: 200, KEEPALIVE event with
     * SN and status */
    req ka = {.method = "MESSAGE", .call_id = "ka1", .cseq = 20, .contact = "", .expires = -1,
              .ctype = "Application/MANSCDP+xml", .body = KA_BODY};
    send_req(r, &a, &ka, &p, NOW0 + 1000, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK_EQ_INT(a.dest.port, 5061);
    pop_all(r, &l);
    const gb_reg_event *ev = find_type(&l, GB_REG_EV_KEEPALIVE);
    CHECK(ev != NULL);
    if (ev) {
        CHECK_EQ_INT(ev->sn, 43);
        CHECK_MEM(ev->text, ev->text_len, "OK");
    }
    gb_binding_view v;
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v));
    CHECK_EQ_INT(v.last_keepalive, NOW0 + 1000);
    /* the offline deadline is interval x count after the last keepalive */
    CHECK_EQ_INT(gb_registrar_next_deadline(r) <= NOW0 + 4000, 1);
    gb_registrar_handle_timer(r, NOW0 + 3999);
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_OFFLINE), 0);
    gb_registrar_handle_timer(r, NOW0 + 4000);
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_OFFLINE), 1);
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v));
    CHECK(!v.online);
    CHECK_EQ_INT(gb_registrar_binding_count(r), 1); /* offline is not unregistered */
    /* once offline, no second OFFLINE */
    gb_registrar_handle_timer(r, NOW0 + 9000);
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_OFFLINE), 0);
    /* a keepalive brings it back */
    req ka2 = ka;
    ka2.cseq = 21;
    send_req(r, &a, &ka2, &p, NOW0 + 9500, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_ONLINE), 1);
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v));
    CHECK(v.online);

    /* Content-Type matched case-insensitively */
    req ka3 = ka;
    ka3.cseq = 22;
    ka3.ctype = "application/manscdp+xml";
    send_req(r, &a, &ka3, &p, NOW0 + 9600, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    evs_free(&l);
    gb_registrar_free(r);
}

static void test_keepalive_unregistered_device(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    req ka = {.method = "MESSAGE", .call_id = "ka1", .cseq = 20, .contact = "", .expires = -1,
              .ctype = "Application/MANSCDP+xml", .body = KA_BODY};
    send_req(r, &a, &ka, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 403);
    gb_registrar_free(r);
}

static void test_expiry_by_timer(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.min_expires = 10;
    c.keepalive_interval_ms = 0; /* offline tracking off */
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    answer a;
    evlist l = {0};
    req q = {.cseq = 1, .expires = 10, .auth = auth};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    pop_all(r, &l);
    /* handle the transaction timer first, so only the binding remains */
    gb_registrar_handle_timer(r, NOW0 + 9999);
    CHECK_EQ_INT(gb_registrar_next_deadline(r), NOW0 + 10000);
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_EXPIRED), 0);
    CHECK_EQ_INT(gb_registrar_binding_count(r), 1);
    gb_registrar_handle_timer(r, NOW0 + 10000);
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_EXPIRED), 1);
    CHECK_EQ_INT(gb_registrar_binding_count(r), 0);
    gb_registrar_handle_timer(r, NOW0 + 60000);
    CHECK_EQ_INT(gb_registrar_next_deadline(r), INT64_MAX);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.expirations, 1);
    evs_free(&l);
    gb_registrar_free(r);
}

/* ---------------------------------------------------------------- */
/* Persistence: the change list and restored bindings (issue 12)     */

typedef struct {
    int n_changed, n_removed;
    char last_id[GB_REG_MAX_ID + 1];
    int64_t expires_at;
    int online;
} change_count;

static void count_change(void *arg, const char *id, size_t id_len, const gb_binding_view *v)
{
    change_count *k = arg;
    if (v) {
        k->n_changed++;
        k->expires_at = v->expires_at;
        k->online = v->online;
    } else {
        k->n_removed++;
    }
    memcpy(k->last_id, id, id_len);
    k->last_id[id_len] = 0;
}

static void test_change_list_names_each_changed_binding_once(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.min_expires = 60;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    change_count k = {0};
    /* nothing is listed until someone asks for changes */
    CHECK_EQ_INT(register_flow(r, &a, DEV, "call-1", 1, 3600, PASSWORD, &p, NOW0), 200);
    CHECK_EQ_INT(gb_registrar_take_changes(r, count_change, &k), 0);
    CHECK_EQ_INT(gb_registrar_track_changes(r, 1), 0);
    /* a refresh and a second device: each listed once, with its view */
    CHECK_EQ_INT(register_flow(r, &a, DEV, "call-1", 3, 3600, PASSWORD, &p, NOW0 + 10), 200);
    CHECK_EQ_INT(register_flow(r, &a, DEV, "call-1", 5, 3600, PASSWORD, &p, NOW0 + 20), 200);
    CHECK_EQ_INT(register_flow(r, &a, DEV2, "call-2", 1, 3600, PASSWORD, &p, NOW0 + 30), 200);
    CHECK_EQ_INT(gb_registrar_take_changes(r, count_change, &k), 2);
    CHECK_EQ_INT(k.n_changed, 2);
    CHECK_EQ_INT(k.n_removed, 0);
    CHECK(k.online);
    /* taken: the list is empty until the next change */
    memset(&k, 0, sizeof(k));
    CHECK_EQ_INT(gb_registrar_take_changes(r, count_change, &k), 0);
    /* unregistered: listed as gone */
    CHECK_EQ_INT(register_flow(r, &a, DEV2, "call-2", 3, 0, PASSWORD, &p, NOW0 + 40), 200);
    gb_registrar_take_changes(r, count_change, &k);
    CHECK_EQ_INT(k.n_removed, 1);
    CHECK(strcmp(k.last_id, DEV2) == 0);
    gb_registrar_free(r);
}

static void test_restored_binding_keeps_its_expiry_and_answers_keepalives(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.keepalive_interval_ms = 60000;
    c.keepalive_timeout_count = 3;
    gb_registrar *r = mk(&c);
    gb_reg_contact contact = {"sip:" DEV "@10.0.0.5:5061", strlen("sip:" DEV "@10.0.0.5:5061"),
                              NOW0 + 1200000};
    gb_binding_view v = {.id = DEV, .id_len = strlen(DEV), .call_id = "call-1",
                         .call_id_len = 6, .cseq = 2, .source = peer4(10, 0, 0, 5, 5061),
                         .registered_at = NOW0 - 5000, .online = 1};
    CHECK_EQ_INT(gb_registrar_restore(r, &v, &contact, 1, NOW0), 0);
    CHECK_EQ_INT(gb_registrar_restore(r, &v, &contact, 1, NOW0), -1); /* already bound */
    CHECK_EQ_INT(gb_registrar_restore(r, &v, &contact, 0, NOW0), -1); /* no contact */
    gb_binding_view got;
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &got));
    CHECK_EQ_INT(got.expires_at, NOW0 + 1200000);
    CHECK_EQ_INT(got.cseq, 2);
    CHECK(got.online);
    /* GB/T 28181 §9.6.1: its keepalives are answered as before the restart */
    gb_peer p = v.source;
    answer a;
    req ka = {.method = "MESSAGE", .call_id = "ka-1", .cseq = 20, .contact = "",
              .expires = -1, .ctype = "Application/MANSCDP+xml", .body = KA_BODY};
    send_req(r, &a, &ka, &p, NOW0 + 1000, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    /* and it expires when the stored expiry says, not an hour later */
    evlist l = {0};
    gb_registrar_handle_timer(r, NOW0 + 1200000);
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_EXPIRED), 1);
    CHECK_EQ_INT(gb_registrar_binding_count(r), 0);
    evs_free(&l);
    gb_registrar_free(r);
}

static void test_restored_online_binding_goes_offline_without_keepalives(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.keepalive_interval_ms = 1000;
    c.keepalive_timeout_count = 3;
    gb_registrar *r = mk(&c);
    gb_reg_contact contact = {"sip:x@10.0.0.5", 14, NOW0 + 3600000};
    gb_binding_view v = {.id = DEV, .id_len = strlen(DEV), .call_id = "c", .call_id_len = 1,
                         .source = peer4(10, 0, 0, 5, 5061), .online = 1};
    CHECK_EQ_INT(gb_registrar_restore(r, &v, &contact, 1, NOW0), 0);
    CHECK_EQ_INT(gb_registrar_next_deadline(r), NOW0 + 3000); /* a fresh grace period */
    evlist l = {0};
    gb_registrar_handle_timer(r, NOW0 + 3000);
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_OFFLINE), 1);
    evs_free(&l);
    gb_registrar_free(r);
}

/* ---------------------------------------------------------------- */
/* Retransmissions (RFC 3261 §17.2.1, Timer J)                        */

static void test_retransmission_cached(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    char msg[8192];
    req q = {.cseq = 1, .expires = 3600, .auth = auth, .branch = "z9hG4bKretrans1"};
    size_t n = build(msg, sizeof(msg), &q);
    answer a1, a2;
    evlist l = {0};
    feed(r, &a1, msg, n, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a1), 200);
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_REGISTERED), 1);
    /* the same datagram later (another wall time): byte-identical answer */
    feed(r, &a2, msg, n, &p, NOW0 + 500, WALL_SEED + 500);
    CHECK_EQ_INT(a2.st, GB_REG_REPLY);
    CHECK(a1.len == a2.len && memcmp(a1.buf, a2.buf, a1.len) == 0);
    pop_all(r, &l);
    CHECK_EQ_INT(l.n, 0); /* no second event */
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.retransmissions_absorbed, 1);
    CHECK_EQ_INT(st.registrations, 1);
    CHECK_EQ_INT(st.refreshes, 0);
    /* a 401 is cached as well */
    req u = {.cseq = 1, .expires = 3600, .branch = "z9hG4bKretrans2", .id = DEV2,
             .call_id = "x"};
    n = build(msg, sizeof(msg), &u);
    feed(r, &a1, msg, n, &p, NOW0 + 600, WALL_SEED);
    feed(r, &a2, msg, n, &p, NOW0 + 700, WALL_SEED);
    CHECK_EQ_INT(status_of(&a1), 401);
    CHECK(a1.len == a2.len && memcmp(a1.buf, a2.buf, a1.len) == 0);
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.challenges, 1);
    /* after Timer J (transaction_ms) the cache entry is gone */
    gb_registrar_handle_timer(r, NOW0 + 700 + c.transaction_ms);
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.transactions, 0);
    evs_free(&l);
    gb_registrar_free(r);
}

/* ---------------------------------------------------------------- */
/* GB IDs (Appendix D)                                               */

static void test_id_policy(void)
{
    for (int pol = GB_IDS_ANY; pol <= GB_IDS_STRICT; pol++) {
        gb_registrar_config c;
        cfg_base(&c);
        cfg_fixed_nonce(&c, "n");
        c.id_policy = pol;
        gb_registrar *r = mk(&c);
        gb_peer p = peer4(10, 0, 0, 5, 5061);
        char auth[1024];
        creds(auth, sizeof(auth), "alice", PASSWORD, "n", RURI);
        answer a;
        req q = {.id = "alice", .cseq = 1, .expires = 3600, .auth = auth};
        send_req(r, &a, &q, &p, NOW0, WALL_SEED);
        if (pol == GB_IDS_STRICT) {
            CHECK_EQ_INT(status_of(&a), 400);
            CHECK(reason_has(&a, "20 digits"));
        } else {
            CHECK_EQ_INT(status_of(&a), 200);
        }
        /* 19 digits, and 20 with a letter */
        creds(auth, sizeof(auth), "3402000000132000000", PASSWORD, "n", RURI);
        req q19 = {.id = "3402000000132000000", .cseq = 1, .expires = 3600, .auth = auth};
        send_req(r, &a, &q19, &p, NOW0, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), pol == GB_IDS_STRICT ? 400 : 200);
        creds(auth, sizeof(auth), "3402000000132000000a", PASSWORD, "n", RURI);
        req qa = {.id = "3402000000132000000a", .cseq = 1, .expires = 3600, .auth = auth};
        send_req(r, &a, &qa, &p, NOW0, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), pol == GB_IDS_STRICT ? 400 : 200);
        gb_registrar_free(r);
    }
}

static void test_redirect(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.redirect_to = "sip:34020000002000000002@10.1.1.1:5060";
    c.redirect_to_len = strlen(c.redirect_to);
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    evlist l = {0};
    req q = {.cseq = 1, .expires = 3600};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 302);
    CHECK(hval_is(&a, "Contact", "<sip:34020000002000000002@10.1.1.1:5060>"));
    pop_all(r, &l);
    const gb_reg_event *ev = find_type(&l, GB_REG_EV_REDIRECTED);
    CHECK(ev != NULL);
    CHECK_EQ_INT(gb_registrar_binding_count(r), 0);
    evs_free(&l);
    gb_registrar_free(r);
}

/* ---------------------------------------------------------------- */
/* Limits                                                            */

static void test_limit_max_bindings(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.max_bindings = 2;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    const char *ids[3] = {"34020000001320000011", "34020000001320000012",
                          "34020000001320000013"};
    for (int i = 0; i < 3; i++) {
        char auth[1024];
        creds(auth, sizeof(auth), ids[i], PASSWORD, "n", RURI);
        req q = {.id = ids[i], .call_id = ids[i], .cseq = 1, .expires = 3600, .auth = auth};
        send_req(r, &a, &q, &p, NOW0, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), i < 2 ? 200 : 503);
    }
    CHECK_EQ_INT(gb_registrar_binding_count(r), 2);
    /* an existing binding still refreshes when full */
    char auth[1024];
    creds(auth, sizeof(auth), ids[0], PASSWORD, "n", RURI);
    req q = {.id = ids[0], .call_id = ids[0], .cseq = 2, .expires = 3600, .auth = auth};
    send_req(r, &a, &q, &p, NOW0 + 1, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    gb_registrar_free(r);
}

static void test_limit_max_contacts(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.max_contacts = 2;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    answer a;
    req q = {.cseq = 1, .expires = 3600, .auth = auth,
             .contact = "<sip:a@10.0.0.5:1>, <sip:b@10.0.0.5:2>, <sip:c@10.0.0.5:3>"};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 403);
    CHECK(reason_has(&a, "Contact"));
    CHECK_EQ_INT(gb_registrar_binding_count(r), 0);
    req q2 = {.cseq = 2, .expires = 3600, .auth = auth,
              .contact = "<sip:a@10.0.0.5:1>, <sip:b@10.0.0.5:2>"};
    send_req(r, &a, &q2, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK_EQ_INT(hcount(&a, "Contact"), 2);
    gb_registrar_free(r);
}

static void test_limit_max_pending(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.shared_password = NULL;
    c.shared_password_len = 0;
    c.ask_for_secrets = 1;
    c.max_pending = 1;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    req q = {.cseq = 1, .expires = 3600, .auth = auth};
    CHECK_EQ_INT(send_req(r, &a, &q, &p, NOW0, WALL_SEED), GB_REG_PENDING);
    char auth2[1024];
    creds(auth2, sizeof(auth2), DEV2, PASSWORD, "n", RURI);
    req q2 = {.id = DEV2, .call_id = "2", .cseq = 1, .expires = 3600, .auth = auth2};
    CHECK_EQ_INT(send_req(r, &a, &q2, &p, NOW0, WALL_SEED), GB_REG_DROPPED);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.dropped_pending_full, 1);
    CHECK_EQ_INT(st.pending, 1);
    gb_registrar_free(r);
}

static void test_limit_max_events(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.max_events = 4;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    /* ten unknown-method requests: ten REJECTED events, six of them lost */
    for (int i = 0; i < 10; i++) {
        req q = {.method = "FOO", .cseq = 1, .expires = -1};
        send_req(r, &a, &q, &p, NOW0, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 501);
    }
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.events_dropped, 6);
    evlist l = {0};
    pop_all(r, &l);
    CHECK_EQ_INT(l.n, 4);
    evs_free(&l);
    gb_registrar_free(r);
}

static void test_limit_max_transactions(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.max_transactions = 4;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    for (int i = 0; i < 10; i++) {
        req q = {.cseq = 1, .expires = 3600};
        send_req(r, &a, &q, &p, NOW0, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 401);
    }
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    /* challenges are unauthenticated answers: they have half the cache */
    CHECK_EQ_INT(st.transactions, 2);
    CHECK_EQ_INT(st.transactions_evicted, 8);
    gb_registrar_free(r);
}

static void test_rate_per_source(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.rate_per_source = 3;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061), other = peer4(10, 0, 0, 6, 5061);
    answer a;
    int answered = 0;
    for (int i = 0; i < 5; i++) {
        req q = {.cseq = 1, .expires = 3600};
        answered += send_req(r, &a, &q, &p, NOW0, WALL_SEED) == GB_REG_REPLY;
    }
    CHECK_EQ_INT(answered, 3);
    req q = {.cseq = 1, .expires = 3600};
    CHECK_EQ_INT(send_req(r, &a, &q, &other, NOW0, WALL_SEED), GB_REG_REPLY);
    /* a new second, a new window */
    CHECK_EQ_INT(send_req(r, &a, &q, &p, NOW0 + 1000, WALL_SEED), GB_REG_REPLY);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.dropped_rate, 2);
    gb_registrar_free(r);
}

/* The rate table's set of an IPv4 source under the configured key (the
 * registrar's own placement: keyed hash of family and prefix). */
static unsigned rate_set_of(const gb_registrar_config *c, const gb_peer *p)
{
    unsigned char key[9] = {4, p->ip[0], p->ip[1], p->ip[2], p->ip[3]};
    gb_hash_key k = gb_hash_key_from(c->hash_key);
    return (unsigned)(gb_siphash(&k, key, sizeof key) % (c->rate_slots / 4));
}

/* n sources that share the rate set of `first`. */
static int rate_same_set(const gb_registrar_config *c, gb_peer first, gb_peer *out, int n)
{
    unsigned set = rate_set_of(c, &first);
    int got = 0;
    for (unsigned v = 1; got < n && v < (1u << 24); v++) {
        gb_peer p = peer4(10, (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v, 5061);
        if (rate_set_of(c, &p) == set)
            out[got++] = p;
    }
    return got;
}

static int rate_sends(gb_registrar *r, const gb_peer *p, int n, int64_t now)
{
    answer a;
    int answered = 0;
    for (int i = 0; i < n; i++) {
        req q = {.cseq = 1, .expires = 3600};
        answered += send_req(r, &a, &q, p, now, WALL_SEED) == GB_REG_REPLY;
    }
    return answered;
}

/* A small rate table (256 sets) under a known hash key. */
static void cfg_rate(gb_registrar_config *c, uint32_t limit, unsigned char key_base)
{
    cfg_base(c);
    c->rate_per_source = limit;
    c->rate_slots = 1024;
    for (int i = 0; i < 16; i++)
        c->hash_key[i] = (unsigned char)(key_base + i);
}

/* Issue 14: sources that share a set of the rate table keep their own
 * counts: one never resets or spends another's.  Four sources at their
 * limit fill a set; a fifth goes through untracked (and counted) while the
 * four stay limited. */
static void test_rate_colliding_sources_keep_their_counts(void)
{
    gb_registrar_config c;
    cfg_rate(&c, 2, 0xa0);
    gb_registrar *r = mk(&c);
    gb_peer same[5];
    CHECK_EQ_INT(rate_same_set(&c, peer4(10, 0, 0, 1, 5061), same, 5), 5);
    for (int k = 0; k < 4; k++)
        CHECK_EQ_INT(rate_sends(r, &same[k], 3, NOW0), 2);
    CHECK_EQ_INT(rate_sends(r, &same[4], 3, NOW0), 3);
    for (int k = 0; k < 4; k++)
        CHECK_EQ_INT(rate_sends(r, &same[k], 1, NOW0 + 10), 0);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.rate_untracked, 3);
    CHECK_EQ_INT(st.rate_evicted, 0);
    CHECK_EQ_INT(st.dropped_rate, 8);
    /* a window over frees its slot for the fifth source */
    CHECK_EQ_INT(rate_sends(r, &same[4], 3, NOW0 + 1000), 2);
    gb_registrar_free(r);
}

/* Issue 14: a full set does not let a flooding source through.  Light
 * sources passing by take the slots of other light sources; the source
 * at its limit keeps its slot and stays limited. */
static void test_rate_full_set_keeps_the_flooder_limited(void)
{
    gb_registrar_config c;
    cfg_rate(&c, 3, 0x30);
    gb_registrar *r = mk(&c);
    gb_peer same[12];
    CHECK_EQ_INT(rate_same_set(&c, peer4(10, 0, 0, 1, 5061), same, 12), 12);
    CHECK_EQ_INT(rate_sends(r, &same[0], 5, NOW0), 3);
    for (int k = 1; k < 12; k++)
        CHECK_EQ_INT(rate_sends(r, &same[k], 1, NOW0 + k), 1);
    CHECK_EQ_INT(rate_sends(r, &same[0], 5, NOW0 + 20), 0);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.rate_untracked, 0);
    CHECK_EQ_INT(st.rate_evicted, 8);
    gb_registrar_free(r);
}

/* Issue 14: an IPv6 source is its /64, as for the lockout: addresses of
 * one /64 share one count. */
static void test_rate_ipv6_source_is_its_64(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.rate_per_source = 4;
    gb_registrar *r = mk(&c);
    int answered = 0;
    for (int i = 0; i < 8; i++) {
        gb_peer p = {.family = 6, .port = 5061};
        p.ip[0] = 0x20, p.ip[1] = 0x01, p.ip[2] = 0x0d, p.ip[3] = 0xb8;
        p.ip[15] = (uint8_t)(i + 1);
        p.ip[9] = (uint8_t)(i * 7);
        answered += rate_sends(r, &p, 1, NOW0);
    }
    CHECK_EQ_INT(answered, 4);
    gb_peer other = {.family = 6, .port = 5061};
    other.ip[0] = 0x20, other.ip[1] = 0x01, other.ip[7] = 1;
    CHECK_EQ_INT(rate_sends(r, &other, 1, NOW0), 1);
    gb_registrar_free(r);
}

/* The configuration refuses a rate limit without a table. */
static void test_rate_needs_slots(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.rate_per_source = 1;
    c.rate_slots = 0;
    const char *why = NULL;
    CHECK(gb_registrar_new(&c, &why) == NULL);
    CHECK(why && strstr(why, "rate_slots"));
}

/* ---------------------------------------------------------------- */
/* The binding's state table (registrar.h gb_bind_moves)             */

/* A registrar for the move scenarios: fixed nonce, keepalives tracked
 * (1 s x 3) unless keepalive_ms is 0, contacts of 60 s. */
typedef struct {
    gb_registrar *r;
    gb_peer p;
    answer a;
    char auth[1024];
    unsigned cseq;
} move_rig;

static void rig_open(move_rig *g, uint32_t keepalive_ms)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.min_expires = 60;
    c.keepalive_interval_ms = keepalive_ms;
    c.keepalive_timeout_count = 3;
    g->r = mk(&c);
    g->p = peer4(10, 0, 0, 5, 5061);
    creds(g->auth, sizeof g->auth, DEV, PASSWORD, "n", RURI);
    g->cseq = 0;
}

/* REGISTER with credentials: expires 60 (registers or refreshes) or 0. */
static int rig_register(move_rig *g, long expires, int64_t now)
{
    req q = {.cseq = ++g->cseq, .expires = expires, .auth = g->auth};
    send_req(g->r, &g->a, &q, &g->p, now, WALL_SEED);
    return status_of(&g->a);
}

static int rig_keepalive(move_rig *g, int64_t now)
{
    req ka = {.method = "MESSAGE", .call_id = "ka", .cseq = ++g->cseq, .contact = "",
              .expires = -1, .ctype = "Application/MANSCDP+xml", .body = KA_BODY};
    send_req(g->r, &g->a, &ka, &g->p, now, WALL_SEED);
    return status_of(&g->a);
}

static uint64_t bind_moves_seen[GB_BIND_STATE__COUNT][GB_BIND_STATE__COUNT];

static void rig_close(move_rig *g)
{
    gb_registrar_stats st;
    gb_registrar_get_stats(g->r, &st);
    CHECK_EQ_INT(st.illegal_moves, 0);
    for (int x = 0; x < GB_BIND_STATE__COUNT; x++)
        for (int y = 0; y < GB_BIND_STATE__COUNT; y++)
            bind_moves_seen[x][y] += st.moves[x][y];
    evlist l = {0};
    do
        pop_all(g->r, &l);
    while (l.n);
    gb_registrar_free(g->r);
}

static int bind_online(move_rig *g)
{
    gb_binding_view v;
    return gb_registrar_binding_get(g->r, DEV, strlen(DEV), &v) ? v.online : -1;
}

/* Each scenario takes some moves; together every move of the table, and
 * a binding never makes a move outside it (GB/T 28181 §9.1, §9.6.1). */
static void test_every_binding_move_is_taken(void)
{
    move_rig g;
    /* none -> registered -> registered (refresh) -> offline -> registered
     * (keepalive) -> unregistered */
    rig_open(&g, 1000);
    CHECK_EQ_INT(rig_register(&g, 60, NOW0), 200);
    CHECK_EQ_INT(rig_register(&g, 60, NOW0 + 10), 200);
    gb_registrar_handle_timer(g.r, NOW0 + 3010);
    CHECK_EQ_INT(bind_online(&g), 0);
    CHECK_EQ_INT(rig_keepalive(&g, NOW0 + 3020), 200);
    CHECK_EQ_INT(bind_online(&g), 1);
    CHECK_EQ_INT(rig_register(&g, 0, NOW0 + 3030), 200);
    CHECK_EQ_INT(bind_online(&g), -1);
    rig_close(&g);

    /* offline -> registered (refresh), offline -> unregistered */
    rig_open(&g, 1000);
    rig_register(&g, 60, NOW0);
    gb_registrar_handle_timer(g.r, NOW0 + 3000);
    CHECK_EQ_INT(rig_register(&g, 60, NOW0 + 3001), 200);
    CHECK_EQ_INT(bind_online(&g), 1);
    gb_registrar_handle_timer(g.r, NOW0 + 6001);
    CHECK_EQ_INT(bind_online(&g), 0);
    CHECK_EQ_INT(rig_register(&g, 0, NOW0 + 6002), 200);
    CHECK_EQ_INT(bind_online(&g), -1);
    rig_close(&g);

    /* offline -> expired */
    rig_open(&g, 1000);
    rig_register(&g, 60, NOW0);
    gb_registrar_handle_timer(g.r, NOW0 + 3000);
    CHECK_EQ_INT(bind_online(&g), 0);
    gb_registrar_handle_timer(g.r, NOW0 + 60000);
    CHECK_EQ_INT(bind_online(&g), -1);
    rig_close(&g);

    /* registered -> expired: keepalives not tracked */
    rig_open(&g, 0);
    rig_register(&g, 60, NOW0);
    gb_registrar_handle_timer(g.r, NOW0 + 60000);
    CHECK_EQ_INT(bind_online(&g), -1);
    rig_close(&g);

    /* registered -> unregistered (Contact: *) */
    rig_open(&g, 1000);
    rig_register(&g, 60, NOW0);
    req q = {.cseq = ++g.cseq, .expires = 0, .auth = g.auth, .contact = "*"};
    send_req(g.r, &g.a, &q, &g.p, NOW0 + 1, WALL_SEED);
    CHECK_EQ_INT(status_of(&g.a), 200);
    CHECK_EQ_INT(bind_online(&g), -1);
    rig_close(&g);

    for (size_t k = 0; k < gb_bind_nmoves; k++) {
        const gb_state_move *m = &gb_bind_moves[k];
        if (!bind_moves_seen[m->from][m->to])
            fprintf(stderr, "  never taken: %s -> %s (%s)\n",
                    gb_bind_state_name((gb_bind_state)m->from),
                    gb_bind_state_name((gb_bind_state)m->to), m->on);
        CHECK(bind_moves_seen[m->from][m->to] > 0);
    }
}

/* Pairs outside the table: refused by the lookup set_state() consults,
 * never made. */
static void test_binding_moves_outside_the_table_refused(void)
{
    unsigned listed = 0;
    for (unsigned x = 0; x < GB_BIND_STATE__COUNT; x++)
        for (unsigned y = 0; y < GB_BIND_STATE__COUNT; y++) {
            int k = gb_state_move_find(gb_bind_moves, gb_bind_nmoves, x, y);
            listed += k >= 0;
            if (k < 0)
                CHECK_EQ_INT(bind_moves_seen[x][y], 0);
        }
    CHECK_EQ_INT(listed, gb_bind_nmoves);
    CHECK(gb_state_move_find(gb_bind_moves, gb_bind_nmoves, GB_BIND_EXPIRED,
                             GB_BIND_REGISTERED) < 0);
    CHECK(gb_state_move_find(gb_bind_moves, gb_bind_nmoves, GB_BIND_NONE, GB_BIND_OFFLINE) < 0);
}

/* ---------------------------------------------------------------- */
/* Answer sizes (issue 14)                                           */

/* A REGISTER with three Via values of about 7.8 KB each (RFC 3261 §8.2.6.2:
 * the answer echoes them all). */
static size_t three_long_vias(char *out, size_t cap)
{
    char pad[7800];
    memset(pad, 'a', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    return (size_t)snprintf(out, cap,
                            "REGISTER " RURI " SIP/2.0\r\n"
                            "Via: SIP/2.0/UDP 10.0.0.5:5061;branch=z9hG4bKlv1;x=%s\r\n"
                            "Via: SIP/2.0/UDP 10.0.0.6:5061;branch=z9hG4bKlv2;x=%s\r\n"
                            "Via: SIP/2.0/UDP 10.0.0.7:5061;branch=z9hG4bKlv3;x=%s\r\n"
                            "From: <sip:" DEV "@" REALM ">;tag=1\r\n"
                            "To: <sip:" DEV "@" REALM ">\r\n"
                            "Call-ID: lv\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
                            "Contact: <sip:" DEV "@10.0.0.5:5061>\r\n"
                            "Expires: 3600\r\nContent-Length: 0\r\n\r\n",
                            pad, pad, pad);
}

/* A legal request whose answer is larger than 16 KB is answered when the
 * caller gives gb_registrar_reply_cap() bytes. */
static void test_answer_sized_from_the_request(void)
{
    gb_registrar *r = mk_lenient(0);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    static char msg[32768];
    size_t n = three_long_vias(msg, sizeof msg);
    CHECK(n > 23000 && n < sizeof msg);
    size_t cap = gb_registrar_reply_cap(r, n);
    char *buf = malloc(cap);
    gb_reg_reply out = {.buf = buf, .cap = cap};
    CHECK_EQ_INT(gb_registrar_handle(r, msg, n, &p, NOW0, WALL_SEED, &out), GB_REG_REPLY);
    CHECK(out.len > n && has_text(buf, out.len, "SIP/2.0 401 Unauthorized\r\n"));
    CHECK(has_text(buf, out.len, "branch=z9hG4bKlv3"));
    /* the retransmission gets the same bytes from the cache */
    size_t first = out.len;
    out.len = 0;
    CHECK_EQ_INT(gb_registrar_handle(r, msg, n, &p, NOW0 + 500, WALL_SEED, &out), GB_REG_REPLY);
    CHECK_EQ_INT(out.len, first);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.replies_too_large, 0);
    free(buf);
    gb_registrar_free(r);
}

/* A caller's buffer below the answer: never a silent drop.  The answer
 * becomes 500 "Response too large" when that fits, and is counted either
 * way. */
static void test_answer_too_large_for_the_buffer_is_counted(void)
{
    gb_registrar *r = mk_lenient(0);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    static char msg[32768];
    size_t n = three_long_vias(msg, sizeof msg);
    static char small[16384];
    gb_reg_reply out = {.buf = small, .cap = sizeof small};
    CHECK_EQ_INT(gb_registrar_handle(r, msg, n, &p, NOW0, WALL_SEED, &out), GB_REG_DROPPED);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.replies_too_large, 1);
    CHECK_EQ_INT(st.answered, 0);
    /* a short request whose 401 (with its challenge) does not fit: a bare 500 */
    char req_buf[2048];
    req q = {.cseq = 1, .expires = 3600};
    size_t m = build(req_buf, sizeof req_buf, &q);
    out.cap = m; /* the 500 echoes less than the request holds */
    CHECK_EQ_INT(gb_registrar_handle(r, req_buf, m, &p, NOW0, WALL_SEED, &out), GB_REG_REPLY);
    CHECK(has_text(out.buf, out.len, "SIP/2.0 500 Response too large\r\n"));
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.replies_too_large, 2);
    CHECK_EQ_INT(st.answered, 1);
    gb_registrar_free(r);
}

/* A REGISTER of `total` bytes (at most 65,536), most of it eight Via
 * values the answer must echo. */
static size_t vias_of_size(char *out, size_t cap, size_t total)
{
    static const char head[] = "REGISTER " RURI " SIP/2.0\r\n";
    static const char tail[] = "From: <sip:" DEV "@" REALM ">;tag=1\r\n"
                               "To: <sip:" DEV "@" REALM ">\r\n"
                               "Call-ID: big\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
                               "Contact: <sip:" DEV "@10.0.0.5:5061>\r\n"
                               "Expires: 3600\r\nContent-Length: 0\r\n\r\n";
    static const char via[] = "Via: SIP/2.0/UDP 10.0.0.5:5061;branch=z9hG4bKbig%d;x=";
    size_t fixed = strlen(head) + strlen(tail) + 8 * (strlen(via) - 2 + 1 + 2);
    size_t pad = total - fixed;
    size_t n = 0;
    n += (size_t)snprintf(out + n, cap - n, "%s", head);
    for (int i = 0; i < 8; i++) {
        size_t mine = pad / 8 + (i == 0 ? pad % 8 : 0);
        n += (size_t)snprintf(out + n, cap - n, via, i);
        memset(out + n, 'a', mine);
        n += mine;
        n += (size_t)snprintf(out + n, cap - n, "\r\n");
    }
    n += (size_t)snprintf(out + n, cap - n, "%s", tail);
    return n;
}

/* Issue 14: over UDP an answer is one datagram.  A legal request whose
 * answer would pass 65,507 bytes gets a bare 513 and the count, whatever
 * the caller's buffer holds; over TCP the whole answer goes. */
static void test_udp_answer_over_one_datagram_is_a_513(void)
{
    gb_registrar *r = mk_lenient(0);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    static char msg[65536];
    size_t n = vias_of_size(msg, sizeof msg, 65490);
    CHECK_EQ_INT(n, 65490);
    size_t cap = gb_registrar_reply_cap(r, n);
    char *buf = malloc(cap);
    gb_reg_reply out = {.buf = buf, .cap = cap};
    CHECK_EQ_INT(gb_registrar_handle(r, msg, n, &p, NOW0, WALL_SEED, &out), GB_REG_REPLY);
    CHECK(out.len <= 65507);
    CHECK(has_text(buf, out.len, "SIP/2.0 513 Response too large for UDP\r\n"));
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.replies_too_large, 1);
    gb_peer t = p;
    t.transport = GB_TRANSPORT_TCP;
    t.conn_id = 7;
    memcpy(msg + strlen("REGISTER " RURI " SIP/2.0\r\nVia: SIP/2.0/"), "TCP", 3);
    msg[strlen("REGISTER " RURI " SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5061;branch=z9hG4bKbig")] = 'T';
    out.len = 0;
    CHECK_EQ_INT(gb_registrar_handle(r, msg, n, &t, NOW0, WALL_SEED, &out), GB_REG_REPLY);
    CHECK(out.len > 65507);
    CHECK(has_text(buf, out.len, "SIP/2.0 401 Unauthorized\r\n"));
    free(buf);
    gb_registrar_free(r);
}

/* Issue 14: a cached answer goes back only to the address it answered.
 * The same transaction key from another address (a spoofed source, to
 * reflect a large answer at it) is handled as a new request, answered by
 * what it asks for, and counted. */
static void test_cached_answer_is_never_replayed_to_another_address(void)
{
    gb_registrar *r = mk_lenient(0);
    gb_peer p = peer4(10, 0, 0, 5, 5061), spoofed = peer4(192, 0, 2, 9, 5061);
    static char msg[32768];
    size_t n = three_long_vias(msg, sizeof msg);
    size_t cap = gb_registrar_reply_cap(r, n);
    char *buf = malloc(cap);
    gb_reg_reply out = {.buf = buf, .cap = cap};
    CHECK_EQ_INT(gb_registrar_handle(r, msg, n, &p, NOW0, WALL_SEED, &out), GB_REG_REPLY);
    for (int i = 0; i < 3; i++) {
        out.len = 0;
        CHECK_EQ_INT(gb_registrar_handle(r, msg, n, &spoofed, NOW0 + 10, WALL_SEED, &out),
                     GB_REG_REPLY);
        CHECK(out.dest.ip[0] == 192);
    }
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.retransmissions_foreign, 3);
    CHECK_EQ_INT(st.retransmissions_absorbed, 0);
    /* the first sender's retransmission still gets the cached answer */
    CHECK_EQ_INT(gb_registrar_handle(r, msg, n, &p, NOW0 + 20, WALL_SEED, &out), GB_REG_REPLY);
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.retransmissions_absorbed, 1);
    free(buf);
    gb_registrar_free(r);
}

/* Every contact of the binding is in the 200 OK (RFC 3261 §10.3 step 8),
 * however long: eight contacts of about 700 bytes, 5.6 KB of Contact. */
static void test_every_long_contact_in_the_200(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.max_contact_bytes = 8192;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof auth, DEV, PASSWORD, "n", RURI);
    static char contacts[8192];
    size_t cl = 0;
    char pad[680];
    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (int k = 0; k < 8; k++)
        cl += (size_t)snprintf(contacts + cl, sizeof contacts - cl, "%s<sip:" DEV "@10.0.0.%d:5061;x=%s>",
                               k ? "\r\nContact: " : "", k + 1, pad);
    req q = {.cseq = 1, .expires = 3600, .auth = auth, .contact = contacts};
    static char msg[16384];
    size_t n = build(msg, sizeof msg, &q);
    size_t cap = gb_registrar_reply_cap(r, n);
    char *buf = malloc(cap);
    gb_reg_reply out = {.buf = buf, .cap = cap};
    CHECK_EQ_INT(gb_registrar_handle(r, msg, n, &p, NOW0, WALL_SEED, &out), GB_REG_REPLY);
    CHECK(has_text(buf, out.len, "SIP/2.0 200 OK\r\n"));
    int seen = 0;
    for (size_t i = 0; i + 9 <= out.len; i++)
        seen += memcmp(buf + i, "\r\nContact:", 10) == 0;
    CHECK_EQ_INT(seen, 8);
    gb_binding_view v;
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v) && v.ncontacts == 8);
    free(buf);
    gb_registrar_free(r);
}

/* max_contacts is bounded, so the answer's room is. */
static void test_max_contacts_bounded(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.max_contacts = 65;
    const char *why = NULL;
    CHECK(gb_registrar_new(&c, &why) == NULL);
    CHECK(why && strstr(why, "max_contacts"));
    c.max_contacts = 64;
    gb_registrar *r = mk(&c);
    CHECK(r != NULL);
    gb_registrar_free(r);
}

/* ---------------------------------------------------------------- */
/* Bad input                                                         */

static void test_garbage_dropped_and_counted(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    static const char *junk[] = {"", "hello\r\n\r\n", "\x00\x01\x02", "SIP/2.0 200\r\n",
                                 "REGISTER sip:x SIP/2.0\r\n\r\n"};
    static const size_t junk_len[] = {0, 9, 3, 14, 26};
    for (size_t i = 0; i < 5; i++)
        CHECK_EQ_INT(feed(r, &a, junk[i], junk_len[i], &p, NOW0, WALL_SEED), GB_REG_DROPPED);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.dropped_unparseable, 5);
    CHECK_EQ_INT(st.answered, 0);
    gb_registrar_free(r);
}

/* The status line of the answer starts with `want` (read raw: an answer to
 * a request without To has no To either, which a strict parse refuses). */
static int answer_starts(const answer *a, const char *want)
{
    size_t n = strlen(want);
    return a->st == GB_REG_REPLY && a->len >= n && memcmp(a->buf, want, n) == 0;
}

/* Issue 12: RFC 3261 §8.1.1 makes To, From, Call-ID, CSeq and Via
 * mandatory; GB_LENIENT_MISSING_HEADERS lets the parser accept a request
 * without them, so the registrar itself must answer 400 naming the one
 * that is missing (RFC 3261 §8.2.2 lets it), never read a header that is
 * not there. */
static void test_missing_header_answered_400_naming_it(void)
{
    gb_registrar *r = mk_lenient(GB_LENIENT_MISSING_HEADERS);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    static const struct {
        const char *line, *status;
    } cases[] = {
        {"To: <sip:" DEV "@" REALM ">\r\n", "SIP/2.0 400 Missing To header\r\n"},
        {"Call-ID: call-1\r\n", "SIP/2.0 400 Missing Call-ID header\r\n"},
        {"CSeq: 1 REGISTER\r\n", "SIP/2.0 400 Missing CSeq header\r\n"},
        {"From: <sip:" DEV "@" REALM ">;tag=ft" DEV "\r\n",
         "SIP/2.0 400 Missing From header\r\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char msg[8192];
        req q = {.cseq = 1, .expires = 3600};
        size_t n = build(msg, sizeof(msg), &q);
        char *at = strstr(msg, cases[i].line);
        CHECK(at != NULL);
        if (!at)
            continue;
        size_t cut = strlen(cases[i].line);
        memmove(at, at + cut, n - (size_t)(at - msg) - cut);
        n -= cut;
        feed(r, &a, msg, n, &p, NOW0, WALL_SEED);
        if (!answer_starts(&a, cases[i].status))
            fprintf(stderr, "  case %zu: got \"%.*s\"\n", i, (int)(a.len > 60 ? 60 : a.len), a.buf);
        CHECK(answer_starts(&a, cases[i].status));
    }
    CHECK_EQ_INT(gb_registrar_binding_count(r), 0);
    gb_registrar_free(r);
}

/* Issue 12's reproducer: a REGISTER of only a request line, a Via and
 * Content-Length: 0; and a MANSCDP keepalive without From. */
static void test_bare_register_and_fromless_message_answered(void)
{
    gb_registrar *r = mk_lenient(GB_LENIENT_ALL);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    static const char bare[] = "REGISTER " RURI " SIP/2.0\r\n"
                               "Via: SIP/2.0/UDP 10.0.0.5:5061;branch=z9hG4bKbare\r\n"
                               "Content-Length: 0\r\n\r\n";
    feed(r, &a, bare, sizeof(bare) - 1, &p, NOW0, WALL_SEED);
    CHECK(answer_starts(&a, "SIP/2.0 400 Missing From header\r\n"));
    static const char fromless[] =
        "MESSAGE sip:" SERVER_ID "@" REALM " SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.5:5061;branch=z9hG4bKnofrom\r\n"
        "To: <sip:" SERVER_ID "@" REALM ">\r\n"
        "Call-ID: ka-1\r\n"
        "CSeq: 20 MESSAGE\r\n"
        "Content-Type: Application/MANSCDP+xml\r\n"
        "Content-Length: 60\r\n\r\n"
        "<Notify><CmdType>Keepalive</CmdType><SN>1</SN></Notify>\r\n\r\n\r\n";
    feed(r, &a, fromless, sizeof(fromless) - 1, &p, NOW0, WALL_SEED);
    CHECK(answer_starts(&a, "SIP/2.0 400 Missing From header\r\n"));
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.rejected, 2);
    CHECK_EQ_INT(st.answered, 2);
    gb_registrar_free(r);
}

/* Without a Via there is nowhere to send an answer (RFC 3261 §18.2.2):
 * the request is dropped and counted, under any leniency. */
static void test_request_without_via_dropped_and_counted(void)
{
    gb_registrar *r = mk_lenient(GB_LENIENT_ALL);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    static const char novia[] = "REGISTER " RURI " SIP/2.0\r\n"
                                "To: <sip:" DEV "@" REALM ">\r\n"
                                "Content-Length: 0\r\n\r\n";
    CHECK_EQ_INT(feed(r, &a, novia, sizeof(novia) - 1, &p, NOW0, WALL_SEED), GB_REG_DROPPED);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.dropped_unparseable, 1);
    CHECK_EQ_INT(st.answered, 0);
    gb_registrar_free(r);
}

/* Every leniency combination against requests missing every subset of the
 * mandatory headers: an answer or a counted drop, each time (under ASan
 * this is the out-of-bounds check of issue 12). */
static void test_any_leniency_any_missing_header_never_crashes(void)
{
    static const char *lines[] = {
        "Via: SIP/2.0/UDP 10.0.0.5:5061;branch=z9hG4bKx%u\r\n",
        "From: <sip:" DEV "@" REALM ">;tag=1\r\n",
        "To: <sip:" DEV "@" REALM ">\r\n",
        "Call-ID: c%u\r\n",
        "CSeq: %u %s\r\n",
    };
    static const char *methods[] = {"REGISTER", "MESSAGE", "OPTIONS", "INVITE"};
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    for (uint32_t len = 0; len <= GB_LENIENT_ALL; len++) {
        gb_registrar_config c;
        cfg_base(&c);
        c.lenient = len;
        c.ask_for_secrets = 1;
        gb_registrar *r = mk(&c);
        unsigned answered = 0, dropped = 0, sent = 0;
        for (unsigned mask = 0; mask < 32; mask++)
            for (size_t mi = 0; mi < 4; mi++) {
                char msg[2048];
                int n = snprintf(msg, sizeof(msg), "%s " RURI " SIP/2.0\r\n", methods[mi]);
                for (unsigned k = 0; k < 5; k++)
                    if (mask & (1u << k))
                        n += snprintf(msg + n, sizeof(msg) - (size_t)n, lines[k],
                                      sent + 1, methods[mi]);
                n += snprintf(msg + n, sizeof(msg) - (size_t)n,
                              "Content-Type: Application/MANSCDP+xml\r\n"
                              "Content-Length: 40\r\n\r\n"
                              "<Notify><CmdType>Keepalive</CmdType>\r\n");
                answer a;
                gb_reg_status st = feed(r, &a, msg, (size_t)n, &p, NOW0, WALL_SEED);
                sent++;
                answered += st == GB_REG_REPLY;
                dropped += st == GB_REG_DROPPED;
                CHECK(st == GB_REG_REPLY || st == GB_REG_DROPPED);
            }
        gb_registrar_stats st;
        gb_registrar_get_stats(r, &st);
        CHECK_EQ_INT(st.answered, answered);
        CHECK_EQ_INT(st.dropped_unparseable + st.dropped_pending_full, dropped);
        evlist l = {0};
        do
            pop_all(r, &l);
        while (l.n);
        gb_registrar_free(r);
    }
}

/* Replace the first `from` in a freshly built REGISTER with `to`. */
static size_t mutate(char *out, size_t cap, const char *from, const char *to)
{
    /* with valid credentials (fixed nonce "n"), so that the registrar
     * gets past authentication (RFC 3261 §10.3 step 3) to the contacts */
    char base[8192], auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    req q = {.cseq = 1, .expires = 3600, .auth = auth};
    build(base, sizeof(base), &q);
    const char *at = strstr(base, from);
    CHECK(at != NULL);
    if (!at)
        return 0;
    int n = snprintf(out, cap, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    return (size_t)n;
}

static void test_malformed_gets_400_with_reason(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    char msg[8192];
    struct {
        const char *from, *to;
        int status;
        const char *reason_word;
    } cases[] = {
        {"To: <sip:", "To: <sip:a b", 400, "To"},
        {"CSeq: 1 REGISTER", "CSeq: 1 INVITE", 400, "CSeq"},
        {"SIP/2.0\r\n", "SIP/3.0\r\n", 505, "version"},
        {"Contact: <sip:", "Contact: <bad", 400, "Contact"},
        {"Expires: 3600", "Expires: soon", 400, "Expires"},
        {"Max-Forwards: 70", "Max-Forwards: many", 400, "Max-Forwards"},
        {"Content-Length: 0", "Content-Length: 99", 400, "Content-Length"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = mutate(msg, sizeof(msg), cases[i].from, cases[i].to);
        feed(r, &a, msg, n, &p, NOW0, WALL_SEED);
        if (status_of(&a) != cases[i].status || !reason_has(&a, cases[i].reason_word))
            fprintf(stderr, "  case %zu (%s -> %s): status %d reason \"%.*s\"\n", i,
                    cases[i].from, cases[i].to, status_of(&a),
                    a.parsed ? (int)a.m.reason.len : 0, a.parsed ? a.buf + a.m.reason.off : "");
        CHECK_EQ_INT(status_of(&a), cases[i].status);
        CHECK(reason_has(&a, cases[i].reason_word));
    }
    gb_registrar_free(r);
}

static void test_method_and_extension_errors(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    req inv = {.method = "INVITE", .cseq = 1, .expires = -1};
    send_req(r, &a, &inv, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 405);
    CHECK(hcount(&a, "Allow") == 1);
    req foo = {.method = "FOO", .cseq = 1, .expires = -1};
    send_req(r, &a, &foo, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 501);
    req txt = {.method = "MESSAGE", .cseq = 1, .contact = "", .expires = -1,
               .ctype = "text/plain", .body = "hi"};
    send_req(r, &a, &txt, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 415);
    CHECK(hval_is(&a, "Accept", "Application/MANSCDP+xml"));
    req tel = {.uri = "tel:+861012345678", .cseq = 1, .expires = 3600};
    send_req(r, &a, &tel, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 416);
    req ext = {.cseq = 1, .expires = 3600, .extra = "Require: gb-magic\r\n"};
    send_req(r, &a, &ext, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 420);
    CHECK(hval_is(&a, "Unsupported", "gb-magic"));
    req opt = {.method = "OPTIONS", .cseq = 1, .contact = "", .expires = -1};
    send_req(r, &a, &opt, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    /* an ACK and a stray response get nothing */
    req ack = {.method = "ACK", .cseq = 1, .contact = "", .expires = -1};
    CHECK_EQ_INT(send_req(r, &a, &ack, &p, NOW0, WALL_SEED), GB_REG_NONE);
    static const char resp[] =
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKx\r\n"
        "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n";
    CHECK_EQ_INT(feed(r, &a, resp, sizeof(resp) - 1, &p, NOW0, WALL_SEED), GB_REG_NONE);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.stray_responses, 1);
    gb_registrar_free(r);
}

/* An answer that parses: strictly, or, answering a request that lacked
 * some of From, To, Call-ID and CSeq (RFC 4475 §3.3.1: 400 all the same),
 * with only those missing. */
static int answer_parses(const answer *a)
{
    if (a->parsed)
        return 1;
    gb_limits lim;
    gb_limits_default(&lim);
    lim.lenient = GB_LENIENT_MISSING_HEADERS;
    gb_header hdrs[64];
    gb_msg m;
    gb_msg_init(&m, hdrs, 64);
    return gb_parse(a->buf, a->len, 0, &lim, &m, NULL) == GB_OK && m.kind == GB_RESPONSE &&
           m.first[GB_HDR_VIA] && m.status == 400;
}

/* Every prefix and a byte flip at every offset of a valid REGISTER: an
 * answer or a drop, never a crash (run under ASan by make test-asan). */
static void test_truncations_and_flips(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.max_transactions = 64;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    char msg[8192];
    req q = {.cseq = 1, .expires = 3600, .auth = auth};
    size_t n = build(msg, sizeof(msg), &q);
    answer a;
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        char *copy = malloc(k ? k : 1); /* exact size: ASan sees overreads */
        memcpy(copy, msg, k);
        gb_reg_status st = feed(r, &a, copy, k, &p, NOW0 + (int64_t)k, WALL_SEED);
        if (st == GB_REG_REPLY && !answer_parses(&a)) {
            bad++;
            fprintf(stderr, "  prefix %zu gave an unparseable answer:\n%.*s\n", k, (int)a.len, a.buf);
        }
        free(copy);
    }
    for (size_t k = 0; k < n; k++) {
        char *copy = malloc(n);
        memcpy(copy, msg, n);
        copy[k] ^= 0x5a;
        gb_reg_status st = feed(r, &a, copy, n, &p, NOW0 + 10000 + (int64_t)k, WALL_SEED);
        if (st == GB_REG_REPLY && !answer_parses(&a)) {
            bad++;
            fprintf(stderr, "  flip at %zu gave an unparseable answer:\n%.*s\n", k, (int)a.len, a.buf);
        }
        free(copy);
    }
    CHECK_EQ_INT(bad, 0); /* every answer sent is a parseable response */
    gb_registrar_free(r);
}

static void test_config_errors(void)
{
    gb_registrar_config c;
    const char *why = NULL;
    cfg_base(&c);
    c.server_id = NULL;
    c.server_id_len = 0;
    CHECK(gb_registrar_new(&c, &why) == NULL && why != NULL);
    cfg_base(&c);
    c.nonce_key = NULL;
    c.nonce_key_len = 0;
    CHECK(gb_registrar_new(&c, &why) == NULL && why && strstr(why, "nonce_key"));
    cfg_base(&c);
    c.min_expires = 100;
    c.max_expires = 10;
    CHECK(gb_registrar_new(&c, &why) == NULL && why && strstr(why, "min_expires"));
    /* a realm given explicitly is used in the challenge */
    cfg_base(&c);
    c.realm = "example.org";
    c.realm_len = 11;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    req q = {.cseq = 1, .expires = 3600};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    size_t n = 0;
    const char *w = hval(&a, "WWW-Authenticate", 0, &n);
    CHECK(has_text(w, n, "realm=\"example.org\""));
    gb_registrar_free(r);
}

static void test_ipv6_and_tcp_source(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    gb_registrar *r = mk(&c);
    gb_peer p;
    memset(&p, 0, sizeof(p));
    p.family = 6;
    p.transport = GB_TRANSPORT_UDP;
    p.port = 5061;
    p.ip[15] = 1; /* ::1 */
    char auth[1024];
    creds(auth, sizeof(auth), DEV, PASSWORD, "n", RURI);
    answer a;
    req q = {.cseq = 1, .expires = 3600, .auth = auth};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    size_t n = 0;
    const char *via = hval(&a, "Via", 0, &n);
    CHECK(has_text(via, n, "rport=5061"));
    CHECK(has_text(via, n, "received="));
    char ip[64];
    size_t iplen = gb_peer_ip_text(&p, ip, sizeof(ip));
    CHECK_MEM(ip, iplen, "0:0:0:0:0:0:0:1");
    CHECK(has_text(via, n, "received=0:0:0:0:0:0:0:1"));
    /* over TCP the answer goes back on the same connection */
    gb_peer t = p;
    t.transport = GB_TRANSPORT_TCP;
    t.conn_id = 77;
    q.cseq = 2;
    send_req(r, &a, &q, &t, NOW0 + 1, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK_EQ_INT(a.dest.conn_id, 77);
    CHECK_EQ_INT(a.dest.transport, GB_TRANSPORT_TCP);
    gb_binding_view v;
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v));
    CHECK_EQ_INT(v.source.transport, GB_TRANSPORT_TCP);
    gb_registrar_free(r);
}

static void test_many_devices_and_iteration(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.min_expires = 60;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    int ok = 0;
    enum { N = 2000 };
    for (int i = 0; i < N; i++) {
        char id[21], auth[1024];
        snprintf(id, sizeof(id), "340200000013%08d", i);
        creds(auth, sizeof(auth), id, PASSWORD, "n", RURI);
        req q = {.id = id, .call_id = id, .cseq = 1, .expires = 60 + i % 100, .auth = auth};
        send_req(r, &a, &q, &p, NOW0, WALL_SEED);
        ok += status_of(&a) == 200;
    }
    CHECK_EQ_INT(ok, N);
    CHECK_EQ_INT(gb_registrar_binding_count(r), N);
    size_t cur = 0, seen = 0;
    gb_binding_view v;
    while (gb_registrar_binding_next(r, &cur, &v))
        seen++;
    CHECK_EQ_INT(seen, N);
    /* expiry in deadline order: those of 60..109 s are gone before 110 s */
    gb_registrar_handle_timer(r, NOW0 + 110 * 1000 - 1);
    CHECK_EQ_INT(gb_registrar_binding_count(r), N / 2);
    gb_registrar_handle_timer(r, NOW0 + 200 * 1000);
    CHECK_EQ_INT(gb_registrar_binding_count(r), 0);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.events_dropped, 0);
    CHECK_EQ_INT(st.expirations, N);
    evlist l = {0};
    do
        pop_all(r, &l);
    while (l.n);
    gb_registrar_free(r);
}

/* ---------------------------------------------------------------- */
/* Security (issues 12 and 14; docs/registrar.md, Security)          */

/* The nonce of a 401's challenge, copied into out. */
static int nonce_of(const answer *a, char *out, size_t cap)
{
    size_t vn = 0;
    const char *v = hval(a, "WWW-Authenticate", 0, &vn);
    gb_auth au;
    gb_digest_challenge ch;
    if (!v || gb_auth_parse_one(a->buf, (gb_span){(uint32_t)(v - a->buf), (uint32_t)vn}, &au,
                                NULL) != GB_OK ||
        gb_digest_parse_challenge(a->buf, &au, &ch, NULL) != GB_OK || ch.nonce.value.len >= cap)
        return -1;
    memcpy(out, a->buf + ch.nonce.value.off, ch.nonce.value.len);
    out[ch.nonce.value.len] = 0;
    return 0;
}

/* A device registers from src on call_id: REGISTER, 401, REGISTER with
 * credentials (qop as offered); the credentials are left in auth (what an
 * eavesdropper sees).  Returns the final status. */
static int register_sniffed(gb_registrar *r, const char *call_id, const gb_peer *src,
                            int64_t now, char *auth, size_t cap)
{
    answer a;
    req q = {.call_id = call_id, .cseq = 1, .expires = 3600};
    send_req(r, &a, &q, src, now, WALL_SEED);
    if (status_of(&a) != 401 || answer_challenge(&a, NULL, DEV, PASSWORD, 1, auth, cap) < 0)
        return -1;
    q.cseq = 2;
    q.auth = auth;
    send_req(r, &a, &q, src, now + 1, WALL_SEED);
    return status_of(&a);
}

/* The binding's source and its only contact are still the device's. */
static void check_binding_unmoved(gb_registrar *r, const char *contact, uint16_t port)
{
    gb_binding_view v;
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v));
    CHECK_EQ_INT(v.source.port, port);
    CHECK_EQ_INT(v.source.ip[3], 5);
    CHECK_EQ_INT(v.ncontacts, 1);
    CHECK(v.contact_len == strlen(contact) && memcmp(v.contact, contact, v.contact_len) == 0);
}

#define DEV_CONTACT "sip:" DEV "@10.0.0.5:5061"
#define EVIL_CONTACT "<sip:" DEV "@6.6.6.6:5060>"

/* Issue 14: a sniffed Authorization replayed from another address, with a
 * new Call-ID and Contact, within the nonce's lifetime.  The nonce is
 * bound to the address it was issued to (RFC 7616 §3.3 leaves its content
 * to the server), so from elsewhere it is not ours: 401 with a fresh
 * challenge, not stale=true (which would say the answer was right), not
 * 403 (a device whose NAT moved it gets another try). */
static void test_replayed_credentials_from_another_address_refused(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(10, 0, 0, 5, 5061), evil = peer4(10, 0, 0, 66, 5060);
    char auth[1024];
    CHECK_EQ_INT(register_sniffed(r, "cam-call", &cam, NOW0, auth, sizeof auth), 200);
    evlist l = {0};
    pop_all(r, &l);
    answer a;
    req replay = {.call_id = "evil-call", .cseq = 7, .expires = 3600, .auth = auth,
                  .contact = EVIL_CONTACT};
    send_req(r, &a, &replay, &evil, NOW0 + 2000, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 401);
    size_t n = 0;
    const char *w = hval(&a, "WWW-Authenticate", 0, &n);
    CHECK(w && !has_text(w, n, "stale"));
    check_binding_unmoved(r, DEV_CONTACT, 5061);
    pop_all(r, &l);
    const gb_reg_event *ev = find_type(&l, GB_REG_EV_AUTH_FAILED);
    CHECK(ev && ev->status == 401 && ev->reason && strstr(ev->reason, "address"));
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_REFRESHED), 0);
    evs_free(&l);
    gb_registrar_free(r);
}

/* The race: an eavesdropper sends the device's answer from his address
 * before the device's own arrives.  Refused (the nonce is not his), and
 * the device's own answer then registers it. */
static void test_raced_answer_from_another_address_refused(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(10, 0, 0, 5, 5061), evil = peer4(10, 0, 0, 66, 5060);
    answer a;
    req q = {.call_id = "cam-call", .cseq = 1, .expires = 3600};
    send_req(r, &a, &q, &cam, NOW0, WALL_SEED);
    char auth[1024];
    CHECK_EQ_INT(answer_challenge(&a, NULL, DEV, PASSWORD, 0, auth, sizeof auth), 0);
    req raced = {.call_id = "evil-call", .cseq = 2, .expires = 3600, .auth = auth,
                 .contact = EVIL_CONTACT};
    send_req(r, &a, &raced, &evil, NOW0 + 1, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 401);
    CHECK_EQ_INT(gb_registrar_binding_count(r), 0);
    q.cseq = 2;
    q.auth = auth;
    send_req(r, &a, &q, &cam, NOW0 + 2, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    check_binding_unmoved(r, DEV_CONTACT, 5061);
    gb_registrar_free(r);
}

/* Without qop there is no nc to order answers (RFC 2617 §3.2.2): each
 * nonce answers once, so the same replay from the device's own address
 * (a spoofed datagram) is refused too.  The answer is 401 stale=true: the
 * response was right, only the nonce is spent (a device that sends its
 * last credentials again on a refresh just answers the new nonce; no
 * AUTH_FAILED for that). */
static void test_nonce_without_qop_answers_once(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    CHECK_EQ_INT(register_sniffed(r, "cam-call", &cam, NOW0, auth, sizeof auth), 200);
    CHECK(strstr(auth, "qop") == NULL);
    answer a;
    req replay = {.call_id = "evil-call", .cseq = 7, .expires = 3600, .auth = auth,
                  .contact = EVIL_CONTACT};
    evlist l = {0};
    pop_all(r, &l);
    send_req(r, &a, &replay, &cam, NOW0 + 2000, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 401);
    size_t n = 0;
    const char *w = hval(&a, "WWW-Authenticate", 0, &n);
    CHECK(has_text(w, n, "stale=true"));
    check_binding_unmoved(r, DEV_CONTACT, 5061);
    pop_all(r, &l);
    CHECK_EQ_INT(l.n, 0);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.nonces_reused, 1);
    evs_free(&l);
    gb_registrar_free(r);
}

/* A NAT may give the device another port between the 401 and its answer:
 * the nonce is bound to the address, not the port. */
static void test_nonce_answer_from_another_port_accepted(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    gb_registrar *r = mk(&c);
    gb_peer before = peer4(10, 0, 0, 5, 5061), after = peer4(10, 0, 0, 5, 40000);
    answer a;
    req q = {.cseq = 1, .expires = 3600};
    send_req(r, &a, &q, &before, NOW0, WALL_SEED);
    char auth[1024];
    CHECK_EQ_INT(answer_challenge(&a, NULL, DEV, PASSWORD, 0, auth, sizeof auth), 0);
    q.cseq = 2;
    q.auth = auth;
    send_req(r, &a, &q, &after, NOW0 + 1, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    gb_registrar_free(r);
}

/* Issue 14 with qop="auth" offered: an answer without qop (computable by
 * an RFC 2069 device, or a downgrade) is refused by default (RFC 7616
 * §3.4: the client MUST use a qop the server offered): 401, no binding.
 * With require_qop off it is accepted once, and its replay, from another
 * address or from the same one, is refused and moves nothing. */
static void test_qop_downgrade(void)
{
    for (int require = 1; require >= 0; require--) {
        gb_registrar_config c;
        cfg_base(&c);
        c.qop_auth = 1;
        c.require_qop = require;
        gb_registrar *r = mk(&c);
        gb_peer cam = peer4(10, 0, 0, 5, 5061), evil = peer4(10, 0, 0, 66, 5060);
        answer a;
        req q = {.call_id = "cam-call", .cseq = 1, .expires = 3600};
        send_req(r, &a, &q, &cam, NOW0, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 401);
        char nonce[128], auth[1024];
        CHECK_EQ_INT(nonce_of(&a, nonce, sizeof nonce), 0);
        creds(auth, sizeof auth, DEV, PASSWORD, nonce, RURI); /* no qop */
        q.cseq = 2;
        q.auth = auth;
        send_req(r, &a, &q, &cam, NOW0 + 1, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), require ? 401 : 200);
        CHECK_EQ_INT(gb_registrar_binding_count(r), require ? 0 : 1);
        req replay = {.call_id = "evil-call", .cseq = 7, .expires = 3600, .auth = auth,
                      .contact = EVIL_CONTACT};
        send_req(r, &a, &replay, &evil, NOW0 + 2, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 401);
        send_req(r, &a, &replay, &cam, NOW0 + 3, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 401);
        if (!require)
            check_binding_unmoved(r, DEV_CONTACT, 5061);
        CHECK_EQ_INT(gb_registrar_binding_count(r), require ? 0 : 1);
        gb_registrar_free(r);
    }
}

static const char CATALOG_BODY[] =
    "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n<Response>\r\n<CmdType>Catalog</CmdType>\r\n"
    "<SN>7</SN>\r\n<DeviceID>" DEV "</DeviceID>\r\n<SumNum>0</SumNum>\r\n</Response>\r\n";

static req keepalive_req(unsigned cseq, const char *auth)
{
    req ka = {.method = "MESSAGE", .call_id = "ka", .cseq = cseq, .contact = "", .expires = -1,
              .ctype = "Application/MANSCDP+xml", .body = KA_BODY, .auth = auth};
    return ka;
}

/* Issue 14: an unauthenticated keepalive for device A from an address
 * other than A's binding's: 403, and the binding neither moves nor comes
 * back online (GB/T 28181 §9.6.1 keepalives carry no credentials, so only
 * the address can vouch for them). */
static void test_foreign_keepalive_refused(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.keepalive_interval_ms = 1000;
    c.keepalive_timeout_count = 3;
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(10, 0, 0, 5, 5061), evil = peer4(10, 0, 0, 66, 5060),
            nat = peer4(10, 0, 0, 5, 7000);
    CHECK_EQ_INT(register_flow(r, &(answer){0}, DEV, "c", 1, 3600, PASSWORD, &cam, NOW0), 200);
    gb_registrar_handle_timer(r, NOW0 + 3000); /* three intervals: offline */
    gb_binding_view v;
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v) && !v.online);
    evlist l = {0};
    pop_all(r, &l);
    answer a;
    const gb_peer *from[] = {&evil, &nat}; /* another host; the same host, another port */
    for (int i = 0; i < 2; i++) {
        req ka = keepalive_req(20 + (unsigned)i, NULL);
        send_req(r, &a, &ka, from[i], NOW0 + 4000, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 403);
        CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v));
        CHECK(!v.online);
        CHECK_EQ_INT(v.source.port, 5061);
        CHECK_EQ_INT(v.last_keepalive, 0);
    }
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_ONLINE), 0);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_KEEPALIVE), 0);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.keepalives_refused, 2);
    /* from the binding's own address it counts */
    req ka = keepalive_req(30, NULL);
    send_req(r, &a, &ka, &cam, NOW0 + 5000, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v) && v.online);
    evs_free(&l);
    gb_registrar_free(r);
}

/* A keepalive with the device's valid credentials proves it wherever it
 * comes from, and moves the binding there (a NAT that changed the port).
 * keepalive_policy CHALLENGE asks a foreign keepalive for them (401)
 * instead of refusing it. */
static void test_foreign_keepalive_challenge_policy(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.keepalive_policy = GB_KEEPALIVE_CHALLENGE;
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(10, 0, 0, 5, 5061), nat = peer4(10, 0, 0, 5, 7000);
    CHECK_EQ_INT(register_flow(r, &(answer){0}, DEV, "c", 1, 3600, PASSWORD, &cam, NOW0), 200);
    answer a;
    req ka = keepalive_req(20, NULL);
    send_req(r, &a, &ka, &nat, NOW0 + 1000, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 401);
    gb_binding_view v;
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v) && v.source.port == 5061);
    char auth[1024];
    CHECK_EQ_INT(answer_challenge_as(&a, NULL, DEV, PASSWORD, 1, "MESSAGE", auth, sizeof auth), 0);
    ka = keepalive_req(21, auth);
    send_req(r, &a, &ka, &nat, NOW0 + 1001, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v) && v.source.port == 7000);
    /* a wrong password moves nothing */
    gb_peer evil = peer4(10, 0, 0, 66, 5060);
    ka = keepalive_req(22, NULL);
    send_req(r, &a, &ka, &evil, NOW0 + 1002, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 401);
    CHECK_EQ_INT(answer_challenge_as(&a, NULL, DEV, "guess", 1, "MESSAGE", auth, sizeof auth), 0);
    ka = keepalive_req(23, auth);
    send_req(r, &a, &ka, &evil, NOW0 + 1003, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 403);
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v) && v.source.port == 7000);
    gb_registrar_free(r);
}

/* Issue 14: a MESSAGE other than a keepalive becomes an event holding its
 * body only when it comes from a registered device's binding address (or
 * with its credentials); otherwise 403 and no body is kept. */
static void test_foreign_message_keeps_no_body(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(10, 0, 0, 5, 5061), evil = peer4(10, 0, 0, 66, 5060);
    answer a;
    evlist l = {0};
    req msg = {.method = "MESSAGE", .call_id = "m", .cseq = 1, .contact = "", .expires = -1,
               .ctype = "Application/MANSCDP+xml", .body = CATALOG_BODY};
    send_req(r, &a, &msg, &cam, NOW0, WALL_SEED); /* not registered yet */
    CHECK_EQ_INT(status_of(&a), 403);
    CHECK_EQ_INT(register_flow(r, &a, DEV, "c", 1, 3600, PASSWORD, &cam, NOW0), 200);
    msg.cseq = 2;
    send_req(r, &a, &msg, &evil, NOW0 + 1, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 403);
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_MESSAGE), 0);
    for (size_t i = 0; i < l.n; i++)
        CHECK(l.ev[i].text == NULL || l.ev[i].text_len < 100);
    msg.cseq = 3;
    send_req(r, &a, &msg, &cam, NOW0 + 2, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    pop_all(r, &l);
    const gb_reg_event *ev = find_type(&l, GB_REG_EV_MESSAGE);
    CHECK(ev && ev->text_len == sizeof(CATALOG_BODY) - 1);
    evs_free(&l);
    gb_registrar_free(r);
}

/* Issue 12: what Refresh.TRUST_CALL_ID allows without credentials,
 * exactly: a registered device's REGISTER on the binding's Call-ID with a
 * higher CSeq, from the binding's source (address, port, transport, and
 * on TCP the connection), that renews contacts the binding already has
 * (or asks for them).  A new contact, a removal, Contact: *, another
 * source or another TCP connection need a fresh challenge. */
static void test_trust_call_id_allows_exactly(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.refresh_policy = GB_REFRESH_TRUST_CALL_ID;
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(10, 0, 0, 5, 5061);
    answer a;
    CHECK_EQ_INT(register_flow(r, &a, DEV, "c", 1, 3600, PASSWORD, &cam, NOW0), 200);
    unsigned cseq = 3;
    req renew = {.call_id = "c", .cseq = cseq++, .expires = 3600};
    send_req(r, &a, &renew, &cam, NOW0 + 10, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    req query = {.call_id = "c", .cseq = cseq++, .contact = "", .expires = -1};
    send_req(r, &a, &query, &cam, NOW0 + 11, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    struct {
        const char *contact;
        long expires;
    } need_credentials[] = {
        {EVIL_CONTACT, 3600},                          /* a new contact */
        {"<" DEV_CONTACT ">, " EVIL_CONTACT, 3600},    /* one more */
        {NULL, 0},                                     /* removal */
        {"*", 0},                                      /* everything */
    };
    for (size_t i = 0; i < sizeof need_credentials / sizeof need_credentials[0]; i++) {
        req q = {.call_id = "c", .cseq = cseq++, .contact = need_credentials[i].contact,
                 .expires = need_credentials[i].expires};
        send_req(r, &a, &q, &cam, NOW0 + 20 + (int64_t)i, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 401);
        check_binding_unmoved(r, DEV_CONTACT, 5061);
    }
    gb_peer other_port = peer4(10, 0, 0, 5, 5062), tcp = cam;
    tcp.transport = GB_TRANSPORT_TCP;
    tcp.conn_id = 1;
    const gb_peer *elsewhere[] = {&other_port, &tcp};
    for (int i = 0; i < 2; i++) {
        req q = {.call_id = "c", .cseq = cseq++, .expires = 3600};
        send_req(r, &a, &q, elsewhere[i], NOW0 + 30, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 401);
    }
    /* a device on TCP: its own connection is trusted, a new one is not */
    CHECK_EQ_INT(register_flow(r, &a, DEV, "t", 1, 3600, PASSWORD, &tcp, NOW0 + 40), 200);
    req q = {.call_id = "t", .cseq = 5, .expires = 3600};
    send_req(r, &a, &q, &tcp, NOW0 + 41, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    gb_peer reconnected = tcp;
    reconnected.conn_id = 2;
    q.cseq = 6;
    send_req(r, &a, &q, &reconnected, NOW0 + 42, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 401);
    gb_registrar_free(r);
}

/* Issue 14 + 12: a foreign keepalive cannot re-point the binding's source
 * and so cannot make a spoofer's refresh "trusted". */
static void test_trust_call_id_never_for_an_unauthenticated_source(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.refresh_policy = GB_REFRESH_TRUST_CALL_ID;
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(10, 0, 0, 5, 5061), evil = peer4(10, 0, 0, 66, 5060);
    answer a;
    CHECK_EQ_INT(register_flow(r, &a, DEV, "c", 1, 3600, PASSWORD, &cam, NOW0), 200);
    req ka = keepalive_req(20, NULL);
    send_req(r, &a, &ka, &evil, NOW0 + 1, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 403);
    req q = {.call_id = "c", .cseq = 9, .expires = 3600, .contact = EVIL_CONTACT};
    send_req(r, &a, &q, &evil, NOW0 + 2, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 401);
    q.contact = NULL;
    send_req(r, &a, &q, &evil, NOW0 + 3, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 401);
    check_binding_unmoved(r, DEV_CONTACT, 5061);
    gb_registrar_free(r);
}

/* One REGISTER with a wrong password from src; returns the status. */
static int wrong_answer(gb_registrar *r, const char *id, const gb_peer *src, int64_t now,
                        unsigned cseq)
{
    return register_flow(r, &(answer){0}, id, "guess", cseq, 3600, "guess", src, now);
}

static const char DEV3[] = "34020000001320000003";

/* Issue 12 (a platform's "3 bad passwords"): lockout_failures wrong
 * answers for one device from one address within the window lock that
 * pair out (403, counted, one LOCKED_OUT event) for lockout_ms; the
 * device from another address is not touched. */
static void test_lockout_device_from_one_address(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.lockout_failures = 3;
    c.lockout_window_ms = 60000;
    c.lockout_ms = 300000;
    gb_registrar *r = mk(&c);
    gb_peer guesser = peer4(10, 0, 0, 66, 5060), cam = peer4(10, 0, 0, 5, 5061);
    for (unsigned i = 0; i < 3; i++)
        CHECK_EQ_INT(wrong_answer(r, DEV, &guesser, NOW0 + i, 10 * i + 1), 403);
    evlist l = {0};
    pop_all(r, &l);
    const gb_reg_event *ev = find_type(&l, GB_REG_EV_LOCKED_OUT);
    CHECK(ev != NULL);
    if (ev) {
        CHECK_MEM(ev->id, ev->id_len, DEV);
        CHECK_EQ_INT(ev->source.ip[3], 66);
        CHECK_EQ_INT(ev->expires, 300);
        CHECK_EQ_INT(ev->sn, 3);
    }
    answer a;
    /* the right password from the locked address: refused unheard */
    req q = {.call_id = "g", .cseq = 50, .expires = 3600};
    send_req(r, &a, &q, &guesser, NOW0 + 10, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 403);
    CHECK(reason_has(&a, "locked out"));
    /* the real device elsewhere registers */
    CHECK_EQ_INT(register_flow(r, &a, DEV, "c", 1, 3600, PASSWORD, &cam, NOW0 + 11), 200);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.lockouts, 1);
    CHECK_EQ_INT(st.locked_out, 1);
    /* after lockout_ms the guesser is heard again */
    CHECK_EQ_INT(register_flow(r, &a, DEV, "g2", 60, 3600, PASSWORD, &guesser, NOW0 + 300010),
                 200);
    evs_free(&l);
    gb_registrar_free(r);
}

/* The window: failures further apart than lockout_window_ms never add up;
 * and a right answer starts the count again. */
static void test_lockout_window_and_reset(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.lockout_failures = 3;
    c.lockout_window_ms = 1000;
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(10, 0, 0, 5, 5061);
    answer a;
    for (unsigned i = 0; i < 6; i++)
        CHECK_EQ_INT(wrong_answer(r, DEV, &cam, NOW0 + 1000 * (int64_t)i, 10 * i + 1), 403);
    for (unsigned i = 0; i < 6; i++) {
        CHECK_EQ_INT(wrong_answer(r, DEV, &cam, NOW0 + 10000 + i, 100 + 10 * i), 403);
        if (i % 2)
            CHECK_EQ_INT(register_flow(r, &a, DEV, "c", 200 + 10 * i, 3600, PASSWORD, &cam,
                                       NOW0 + 10000 + i),
                         200);
    }
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.lockouts, 0);
    gb_registrar_free(r);
}

/* Per source: lockout_source_failures wrong answers from one address, for
 * any devices, lock the address out for every device - except a device
 * presenting its valid answer from its own binding's source. */
static void test_lockout_source_spares_bound_devices(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.lockout_failures = 10;
    c.lockout_source_failures = 3;
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(10, 0, 0, 5, 5061), guesser = peer4(10, 0, 0, 5, 6000);
    answer a;
    CHECK_EQ_INT(register_flow(r, &a, DEV, "c", 1, 3600, PASSWORD, &cam, NOW0), 200);
    CHECK_EQ_INT(wrong_answer(r, DEV2, &guesser, NOW0 + 1, 1), 403);
    CHECK_EQ_INT(wrong_answer(r, DEV3, &guesser, NOW0 + 2, 1), 403);
    CHECK_EQ_INT(wrong_answer(r, DEV, &guesser, NOW0 + 3, 1), 403);
    evlist l = {0};
    pop_all(r, &l);
    const gb_reg_event *ev = find_type(&l, GB_REG_EV_LOCKED_OUT);
    CHECK(ev && ev->id_len == 0);
    /* any device from that address: refused */
    req q = {.id = DEV2, .call_id = "x", .cseq = 9, .expires = 3600};
    send_req(r, &a, &q, &guesser, NOW0 + 4, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 403);
    /* the registered device from its own source: heard and accepted */
    CHECK_EQ_INT(register_flow(r, &a, DEV, "c", 10, 3600, PASSWORD, &cam, NOW0 + 5), 200);
    req ka = keepalive_req(20, NULL);
    send_req(r, &a, &ka, &cam, NOW0 + 6, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    evs_free(&l);
    gb_registrar_free(r);
}

/* Issue 12: someone else's failures cannot lock a working device out.
 * Guesses at DEV from the device's own host but another port lock
 * (DEV, host); DEV from its binding's source still registers, the
 * guesser with the right password does not. */
static void test_lockout_never_stops_a_working_device(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.lockout_failures = 3;
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(10, 0, 0, 5, 5061), guesser = peer4(10, 0, 0, 5, 6000);
    answer a;
    CHECK_EQ_INT(register_flow(r, &a, DEV, "c", 1, 3600, PASSWORD, &cam, NOW0), 200);
    for (unsigned i = 0; i < 5; i++)
        wrong_answer(r, DEV, &guesser, NOW0 + 1 + i, 10 * i + 1);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.lockouts, 1);
    for (unsigned i = 0; i < 3; i++)
        CHECK_EQ_INT(register_flow(r, &a, DEV, "c", 100 + 10 * i, 3600, PASSWORD, &cam,
                                   NOW0 + 100 + i),
                     200);
    req q = {.call_id = "g", .cseq = 500, .expires = 3600};
    send_req(r, &a, &q, &guesser, NOW0 + 200, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 403);
    gb_registrar_free(r);
}

/* Failures count only when the nonce was issued to the sender's address:
 * answers to a nonce from elsewhere (a spoofed source cannot see our 401)
 * are 401 and lock nothing, so nobody can lock out an address he cannot
 * receive at. */
static void test_lockout_needs_a_nonce_issued_to_the_address(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.lockout_failures = 2;
    c.lockout_source_failures = 2;
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(10, 0, 0, 5, 5061), evil = peer4(10, 0, 0, 66, 5060);
    answer a;
    req q = {.cseq = 1, .expires = 3600};
    send_req(r, &a, &q, &evil, NOW0, WALL_SEED);
    char auth[1024];
    CHECK_EQ_INT(answer_challenge(&a, NULL, DEV, "guess", 0, auth, sizeof auth), 0);
    for (unsigned i = 0; i < 5; i++) {
        req spoofed = {.cseq = 2 + i, .expires = 3600, .auth = auth};
        send_req(r, &a, &spoofed, &cam, NOW0 + 1 + i, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 401);
    }
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.lockouts, 0);
    CHECK_EQ_INT(register_flow(r, &a, DEV, "c", 10, 3600, PASSWORD, &cam, NOW0 + 10), 200);
    gb_registrar_free(r);
}

/* The table is fixed (lockout_slots): when every slot of a set holds a
 * live lock of another key, a failure goes uncounted (lockout_untracked)
 * rather than freeing a lock. */
static void test_lockout_table_bounded(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.lockout_failures = 0;
    c.lockout_source_failures = 1;
    c.lockout_slots = 4; /* one set of four */
    gb_registrar *r = mk(&c);
    for (uint8_t h = 1; h <= 6; h++) {
        gb_peer g = peer4(10, 0, 1, h, 5060);
        CHECK_EQ_INT(wrong_answer(r, DEV, &g, NOW0 + h, 1), 403);
    }
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.lockouts, 4);
    CHECK_EQ_INT(st.lockout_untracked, 2);
    /* the four locks hold */
    answer a;
    gb_peer first = peer4(10, 0, 1, 1, 5060);
    req q = {.call_id = "x", .cseq = 9, .expires = 3600};
    send_req(r, &a, &q, &first, NOW0 + 100, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 403);
    gb_registrar_free(r);
}

/* Credentials naming another device are refused before anything else is
 * said, and count as a failure: no oracle for a guesser who rotates the
 * To user. */
static void test_credentials_for_another_device_tell_nothing(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 66, 5060);
    char right[1024], wrong[1024];
    creds(right, sizeof right, DEV2, PASSWORD, "n", RURI);
    creds(wrong, sizeof wrong, DEV2, "guess", "n", RURI);
    answer a1, a2;
    req q = {.id = DEV, .cseq = 1, .expires = 3600, .auth = right};
    send_req(r, &a1, &q, &p, NOW0, WALL_SEED);
    q.auth = wrong;
    send_req(r, &a2, &q, &p, NOW0 + 1, WALL_SEED);
    CHECK_EQ_INT(status_of(&a1), 403);
    CHECK_EQ_INT(status_of(&a2), 403);
    CHECK(a1.m.reason.len == a2.m.reason.len &&
          memcmp(a1.buf + a1.m.reason.off, a2.buf + a2.m.reason.off, a1.m.reason.len) == 0);
    gb_registrar_free(r);
}

/* Issue 12: a flood of unauthenticated REGISTERs for random IDs, many
 * times the cache, never pushes out the cached answer of an authenticated
 * device: its retransmission still gets the same 200 (RFC 3261 §17.2.1)
 * instead of being processed again (and refused as a used nonce). */
static void test_open_flood_keeps_authenticated_answers(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.max_transactions = 16;
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(10, 0, 0, 5, 5061), flood = peer4(10, 9, 9, 9, 5060);
    answer a, first, again;
    req q = {.call_id = "c", .cseq = 1, .expires = 3600};
    send_req(r, &a, &q, &cam, NOW0, WALL_SEED);
    char auth[1024];
    CHECK_EQ_INT(answer_challenge(&a, NULL, DEV, PASSWORD, 0, auth, sizeof auth), 0);
    req ok = {.call_id = "c", .cseq = 2, .expires = 3600, .auth = auth, .branch = "z9hG4bKcam2"};
    char msg[8192];
    size_t n = build(msg, sizeof msg, &ok);
    feed(r, &first, msg, n, &cam, NOW0 + 1, WALL_SEED);
    CHECK_EQ_INT(status_of(&first), 200);
    for (int i = 0; i < 160; i++) { /* ten times the cache */
        char id[32];
        snprintf(id, sizeof id, "340200000013%08d", i);
        req junk = {.id = id, .call_id = id, .cseq = 1, .expires = 3600};
        send_req(r, &a, &junk, &flood, NOW0 + 2, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 401);
    }
    feed(r, &again, msg, n, &cam, NOW0 + 3, WALL_SEED);
    CHECK_EQ_INT(status_of(&again), 200);
    CHECK(first.len == again.len && memcmp(first.buf, again.buf, first.len) == 0);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.retransmissions_absorbed, 1);
    CHECK_EQ_INT(st.registrations, 1);
    CHECK(st.transactions_evicted >= 150);
    CHECK_EQ_INT(st.trusted_evicted, 0);
    gb_registrar_free(r);
}

/* DEV registered from 10.0.0.5:5061 (a fixed nonce "n" configuration). */
static gb_peer register_cam(gb_registrar *r)
{
    gb_peer cam = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof auth, DEV, PASSWORD, "n", RURI);
    answer a;
    req reg = {.call_id = "c", .cseq = 1, .expires = 3600, .auth = auth};
    send_req(r, &a, &reg, &cam, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    return cam;
}

/* Issue 14: the event queue is bounded by bytes as well as count; the
 * oldest peer-triggered events (MESSAGE bodies) go first, and they never
 * push out a binding event. */
static void test_event_queue_bounded_by_bytes(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.max_event_bytes = 64 * 1024;
    gb_registrar *r = mk(&c);
    gb_peer cam = register_cam(r);
    answer a;
    static char body[7000];
    snprintf(body, sizeof body, "<Notify><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>" DEV
             "</DeviceID><Pad>%06000d</Pad></Notify>", 0);
    for (unsigned i = 0; i < 40; i++) { /* 40 bodies of 6 KB: 240 KB */
        req msg = {.method = "MESSAGE", .call_id = "m", .cseq = 10 + i, .contact = "",
                   .expires = -1, .ctype = "Application/MANSCDP+xml", .body = body};
        send_req(r, &a, &msg, &cam, NOW0 + 1 + i, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 200);
        gb_registrar_stats st;
        gb_registrar_get_stats(r, &st);
        CHECK(st.event_bytes <= c.max_event_bytes);
    }
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK(st.events_dropped >= 30);
    CHECK_EQ_INT(st.events_dropped_state, 0);
    evlist l = {0};
    pop_all(r, &l);
    CHECK_EQ_INT(l.ev[0].type, GB_REG_EV_REGISTERED); /* kept, and first */
    CHECK(count_type(&l, GB_REG_EV_MESSAGE) >= 5);
    /* the newest bodies are the ones kept, in order */
    for (size_t i = 2; i < l.n; i++)
        CHECK(l.ev[i].time_ms > l.ev[i - 1].time_ms);
    CHECK_EQ_INT(l.ev[l.n - 1].time_ms, NOW0 + 40);
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.event_bytes, 0);
    evs_free(&l);
    gb_registrar_free(r);
}

/* By count: max_events full of binding events, a peer-triggered event is
 * dropped itself; a binding event pushes out the oldest peer-triggered. */
static void test_peer_events_never_push_out_binding_events(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.max_events = 3;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    answer a;
    req junk = {.method = "FOO", .cseq = 1, .expires = -1};
    send_req(r, &a, &junk, &p, NOW0, WALL_SEED); /* REJECTED */
    const char *ids[] = {DEV, DEV2, DEV3};
    for (int i = 0; i < 3; i++) {
        char auth[1024];
        creds(auth, sizeof auth, ids[i], PASSWORD, "n", RURI);
        req q = {.id = ids[i], .call_id = ids[i], .cseq = 1, .expires = 3600, .auth = auth};
        send_req(r, &a, &q, &p, NOW0 + 1 + i, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 200);
    }
    for (int i = 0; i < 5; i++)
        send_req(r, &a, &junk, &p, NOW0 + 10, WALL_SEED);
    evlist l = {0};
    pop_all(r, &l);
    CHECK_EQ_INT(l.n, 3);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_REGISTERED), 3);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.events_dropped, 6);
    CHECK_EQ_INT(st.events_dropped_state, 0);
    evs_free(&l);
    gb_registrar_free(r);
}

/* Issue 13 / GB/T 28181 Annex A: a registered device's MESSAGE whose body
 * is no MANSCDP document is refused with the reader's status and reason
 * (400; 501 for an unknown CmdType) and counted, not answered 200; the
 * field's quirks (no declaration, lower-case tags) are accepted. */
static void test_malformed_manscdp_message_is_refused(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    gb_registrar *r = mk(&c);
    gb_peer cam = register_cam(r);
    answer a;
    static const struct {
        const char *body;
        int status;
    } cases[] = {
        {"<Notify><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>" DEV "</DeviceID>", 400},
        {"<Notify><CmdType>Alarm</CmdType><DeviceID>" DEV "</DeviceID></Notify>", 400},
        {"<Notify><CmdType>Alarm</CmdType><SN>x</SN><DeviceID>" DEV "</DeviceID></Notify>", 400},
        {"<Notify><CmdType>Teleport</CmdType><SN>1</SN><DeviceID>" DEV "</DeviceID></Notify>",
         501},
        {"<Hello><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>" DEV "</DeviceID></Hello>", 400},
        {"<notify><cmdtype>Alarm</cmdtype><sn>1</sn><deviceid>" DEV "</deviceid></notify>", 200},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        req msg = {.method = "MESSAGE", .call_id = "m", .cseq = 10 + i, .contact = "",
                   .expires = -1, .ctype = "Application/MANSCDP+xml", .body = cases[i].body};
        send_req(r, &a, &msg, &cam, NOW0 + 1 + i, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), cases[i].status);
        if (cases[i].status != 200)
            CHECK(a.m.reason.len > 0 && !has_text(a.buf, a.len, "400 Bad Request\r\n"));
    }
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.messages_malformed, 5);
    evlist l = {0};
    pop_all(r, &l);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_MESSAGE), 1);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_REJECTED), 5);
    /* each refusal names the body's SN where one reads (three of five) */
    unsigned with_sn = 0;
    for (size_t i = 0; i < l.n; i++)
        with_sn += l.ev[i].type == GB_REG_EV_REJECTED && l.ev[i].sn == 1;
    CHECK_EQ_INT(with_sn, 3);
    evs_free(&l);
    gb_registrar_free(r);
}

/* Issue 14: a registered device's MESSAGE bodies outrank refusals of
 * senders that proved nothing: with the queue full of the device's
 * MESSAGE events, junk from anywhere is dropped itself, never one of them;
 * a MESSAGE pushes out the oldest junk first. */
static void test_unproven_events_never_push_out_a_devices_messages(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.max_events = 6;
    gb_registrar *r = mk(&c);
    gb_peer cam = register_cam(r), junk_src = peer4(192, 0, 2, 66, 5060);
    answer a;
    req junk = {.method = "FOO", .cseq = 1, .expires = -1};
    send_req(r, &a, &junk, &junk_src, NOW0 + 1, WALL_SEED); /* REJECTED, unproven */
    const char *body = "<Notify><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>" DEV
                       "</DeviceID></Notify>";
    for (unsigned i = 0; i < 5; i++) {
        req msg = {.method = "MESSAGE", .call_id = "m", .cseq = 10 + i, .contact = "",
                   .expires = -1, .ctype = "Application/MANSCDP+xml", .body = body};
        send_req(r, &a, &msg, &cam, NOW0 + 2 + i, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 200);
    }
    for (int i = 0; i < 50; i++)
        send_req(r, &a, &junk, &junk_src, NOW0 + 10, WALL_SEED);
    evlist l = {0};
    pop_all(r, &l);
    CHECK_EQ_INT(l.n, 6);
    CHECK_EQ_INT(l.ev[0].type, GB_REG_EV_REGISTERED);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_MESSAGE), 5);
    CHECK_EQ_INT(count_type(&l, GB_REG_EV_REJECTED), 0);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.events_dropped, 51);
    evs_free(&l);
    gb_registrar_free(r);
}

/* A flood of garbage costs the application at most peer_event_rate
 * events a second (the counters see every datagram); refusals of requests
 * whose sender proved itself (credentials) are not limited. */
static void test_peer_event_rate(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    c.peer_event_rate = 100;
    gb_registrar *r = mk(&c);
    gb_peer cam = peer4(10, 0, 0, 5, 5061), flood = peer4(10, 9, 9, 9, 5060);
    answer a;
    char auth[1024];
    creds(auth, sizeof auth, DEV, PASSWORD, "n", RURI);
    req reg = {.call_id = "c", .cseq = 1, .expires = 3600, .auth = auth};
    send_req(r, &a, &reg, &cam, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    for (int i = 0; i < 2000; i++)
        feed(r, &a, "junk\r\n\r\n", 8, &flood, NOW0 + i / 4, WALL_SEED);
    for (int i = 0; i < 5; i++) { /* refusals of a device with credentials: all reported */
        req brief = {.call_id = "c", .cseq = 10 + (unsigned)i, .expires = 10, .auth = auth};
        send_req(r, &a, &brief, &cam, NOW0 + 100, WALL_SEED);
        CHECK_EQ_INT(status_of(&a), 423);
    }
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.drops[GB_REG_DROP_UNPARSEABLE], 2000);
    CHECK_EQ_INT(st.events_suppressed, 2000 - 100);
    size_t rejected = 0;
    evlist l = {0};
    do {
        pop_all(r, &l);
        rejected += (size_t)count_type(&l, GB_REG_EV_REJECTED);
    } while (l.n);
    CHECK_EQ_INT(rejected, 100 + 5);
    gb_registrar_free(r);
}

/* Issue 14: bytes kept per binding are capped.  A Call-ID over 256 bytes
 * and contacts over max_contact_bytes are refused (403: well formed, but
 * more than the registrar keeps for one device; RFC 3261 §21.4.4); a
 * User-Agent, informational only (§20.41), is kept cut to 128 bytes. */
static void test_binding_fields_capped(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(10, 0, 0, 5, 5061);
    char auth[1024];
    creds(auth, sizeof auth, DEV, PASSWORD, "n", RURI);
    answer a;
    char long_cid[300];
    memset(long_cid, 'c', 257);
    long_cid[257] = 0;
    req q = {.call_id = long_cid, .cseq = 1, .expires = 3600, .auth = auth};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 403);
    CHECK(reason_has(&a, "Call-ID"));
    static char contacts[4096];
    size_t cl = 0;
    for (int k = 0; k < 8; k++)
        cl += (size_t)snprintf(contacts + cl, sizeof contacts - cl,
                               "%s<sip:" DEV "@10.0.0.%d:5061;pad=%0140d>", k ? ", " : "", k, 0);
    q = (req){.call_id = "c", .cseq = 2, .expires = 3600, .auth = auth, .contact = contacts};
    send_req(r, &a, &q, &p, NOW0 + 1, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 403);
    CHECK(reason_has(&a, "Contact"));
    CHECK_EQ_INT(gb_registrar_binding_count(r), 0);
    static char ua[7300];
    memcpy(ua, "User-Agent: ", 12);
    memset(ua + 12, 'u', 7000);
    memcpy(ua + 7012, "\r\n", 3);
    q = (req){.call_id = "c", .cseq = 3, .expires = 3600, .auth = auth, .extra = ua};
    send_req(r, &a, &q, &p, NOW0 + 2, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    gb_binding_view v;
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v));
    CHECK_EQ_INT(v.user_agent_len, GB_REG_MAX_USER_AGENT);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.user_agents_cut, 1);
    CHECK(st.binding_bytes < 4096);
    gb_registrar_free(r);
}

/* Issue 14: the malformed requests of RFC 4475 that were dropped silently
 * (§3.1.2.4, §3.1.2.7-§3.1.2.10, §3.3.1, §3.3.8) are answered 400 with
 * the reason, as the RFC expects, since their Via can be read; the
 * malformed responses (§3.1.2.5, §3.1.2.19) are never answered and are
 * counted as such. */
static void test_rfc4475_malformed_requests_answered(void)
{
    static const char *const requests[] = {
        /* §3.1.2.10 trws: whitespace after the version */
        "OPTIONS sip:remote-target@example.com SIP/2.0  \r\n"
        "Via: SIP/2.0/TCP host1.examle.com;branch=z9hG4bK299342093\r\n"
        "To: <sip:remote-target@example.com>\r\n"
        "From: <sip:local-resource@example.com>;tag=329429089\r\n"
        "Call-ID: trws.oicu34958239neffasdhr2345r\r\nAccept: application/sdp\r\n"
        "CSeq: 238923 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        /* §3.1.2.7 ltgtruri: <> around the Request-URI */
        "INVITE <sip:user@example.com> SIP/2.0\r\nTo: sip:user@example.com\r\n"
        "From: sip:caller@example.net;tag=39291\r\nMax-Forwards: 23\r\n"
        "Call-ID: ltgtruri.1@192.0.2.5\r\nCSeq: 1 INVITE\r\nVia: SIP/2.0/UDP 192.0.2.5\r\n"
        "Content-Length: 0\r\n\r\n",
        /* §3.1.2.8 lwsruri: whitespace inside the Request-URI */
        "INVITE sip:user@example.com; lr SIP/2.0\r\nTo: sip:user@example.com;tag=3xfe-9921883-z9f\r\n"
        "From: sip:caller@example.net;tag=231413434\r\nMax-Forwards: 5\r\n"
        "Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423\r\nCSeq: 2130706432 INVITE\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395\r\nContent-Length: 0\r\n\r\n",
        /* §3.1.2.9 lwsstart: more than one space between the elements */
        "INVITE  sip:user@example.com  SIP/2.0\r\nMax-Forwards: 8\r\nTo: sip:user@example.com\r\n"
        "From: sip:caller@example.net;tag=8814\r\n"
        "Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com\r\nCSeq: 1893884 INVITE\r\n"
        "Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923\r\nContent-Length: 0\r\n\r\n",
        /* §3.1.2.4 scalar02: CSeq above 2**31 (and Max-Forwards, Expires) */
        "REGISTER sip:example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\r\n"
        "To: <sip:user@example.com>\r\nFrom: <sip:user@example.com>;tag=239232jh3\r\n"
        "CSeq: 36893488147419103232 REGISTER\r\n"
        "Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\r\nMax-Forwards: 300\r\n"
        "Expires: 100000000000000000000\r\nContact: <sip:user@host129.example.com>\r\n"
        "  ;expires=280297596632815\r\nContent-Length: 0\r\n\r\n",
        /* §3.3.1 insuf: no From, To or Call-ID */
        "INVITE sip:user@example.com SIP/2.0\r\nCSeq: 193942 INVITE\r\n"
        "Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\r\nContent-Length: 0\r\n\r\n",
        /* §3.3.8 multi01: two different CSeq, Call-ID, To, From */
        "INVITE sip:user@company.com SIP/2.0\r\nContact: <sip:caller@host25.example.net>\r\n"
        "Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\r\nMax-Forwards: 70\r\n"
        "CSeq: 5 INVITE\r\nCall-ID: multi01.98asdh@192.0.2.1\r\nCSeq: 59 INVITE\r\n"
        "Call-ID: multi01.98asdh@192.0.2.2\r\nFrom: sip:caller@example.com;tag=3413415\r\n"
        "To: sip:user@example.com\r\nTo: sip:other@example.net\r\n"
        "From: sip:caller@example.net;tag=2923420123\r\nContent-Length: 0\r\n"
        "Max-Forwards: 5\r\n\r\n",
    };
    static const char *const responses[] = {
        /* §3.1.2.19 bigcode, §3.1.2.5 scalarlg (shortened) */
        "SIP/2.0 4294967301 better not break the receiver\r\n"
        "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n"
        "Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i\r\nCSeq: 353494 INVITE\r\n"
        "From: <sip:user@example.com>;tag=39ansfi3\r\nTo: <sip:user@example.edu>;tag=902jndnke3\r\n"
        "Content-Length: 0\r\n\r\n",
        "SIP/2.0 503 Service Unavailable\r\n"
        "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129\r\n"
        "To: <sip:user@example.com>\r\nFrom: <sip:other@example.net>;tag=2easdjfejw\r\n"
        "CSeq: 9292394834772304023312 OPTIONS\r\n"
        "Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r\r\nContent-Length: 0\r\n\r\n",
    };
    gb_registrar_config c;
    cfg_base(&c);
    c.id_policy = GB_IDS_ANY;
    gb_registrar *r = mk(&c);
    gb_peer p = peer4(192, 0, 2, 5, 5060);
    answer a;
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        size_t n = strlen(requests[i]);
        char *copy = malloc(n); /* exact size: ASan sees overreads */
        memcpy(copy, requests[i], n);
        feed(r, &a, copy, n, &p, NOW0 + (int64_t)i, WALL_SEED);
        if (!answer_starts(&a, "SIP/2.0 400 "))
            fprintf(stderr, "  request %zu: %s\n", i, a.st == GB_REG_REPLY ? "answered" : "dropped");
        CHECK(answer_starts(&a, "SIP/2.0 400 "));
        CHECK(answer_parses(&a));
        CHECK(a.len > 13 && memcmp(a.buf + 12, "Bad Request", 11) != 0); /* says why */
        free(copy);
    }
    for (size_t i = 0; i < sizeof responses / sizeof responses[0]; i++)
        CHECK_EQ_INT(feed(r, &a, responses[i], strlen(responses[i]), &p, NOW0, WALL_SEED),
                     GB_REG_DROPPED);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.drops[GB_REG_DROP_RESPONSE], 2);
    CHECK_EQ_INT(st.answered, sizeof requests / sizeof requests[0]);
    gb_registrar_free(r);
}

/* Issue 14: every request left unanswered is counted by reason, and
 * unparseable ones by parse error too. */
static void test_drops_counted_by_reason(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.rate_per_source = 1;
    c.ask_for_secrets = 1;
    c.shared_password = NULL;
    c.shared_password_len = 0;
    gb_registrar *r = mk(&c);
    answer a;
    uint8_t host = 1;
    gb_peer p = peer4(10, 0, 0, host++, 5061);
    feed(r, &a, "", 0, &p, NOW0, WALL_SEED);
    p = peer4(10, 0, 0, host++, 5061);
    feed(r, &a, "hello\r\n\r\n", 9, &p, NOW0, WALL_SEED);
    static const char novia[] = "REGISTER " RURI " SIP/2.0\r\nTo: <sip:" DEV "@" REALM ">\r\n"
                                "Content-Length: 0\r\n\r\n";
    p = peer4(10, 0, 0, host++, 5061);
    feed(r, &a, novia, sizeof novia - 1, &p, NOW0, WALL_SEED);
    static const char resp[] =
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKx\r\n"
        "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n";
    p = peer4(10, 0, 0, host++, 5061);
    feed(r, &a, resp, sizeof resp - 1, &p, NOW0, WALL_SEED);
    /* rate: a second request in the same second from one address */
    p = peer4(10, 0, 0, host++, 5061);
    req q = {.cseq = 1, .expires = 3600};
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    /* in progress: a retransmission while the secret is looked up */
    p = peer4(10, 0, 0, host++, 5061);
    send_req(r, &a, &q, &p, NOW0, WALL_SEED);
    char auth[1024];
    CHECK_EQ_INT(answer_challenge(&a, NULL, DEV, "pw", 0, auth, sizeof auth), 0);
    req cred = {.cseq = 2, .expires = 3600, .auth = auth, .branch = "z9hG4bKwait"};
    p = peer4(10, 0, 0, host - 1, 5061);
    CHECK_EQ_INT(send_req(r, &a, &cred, &p, NOW0 + 1000, WALL_SEED), GB_REG_PENDING);
    CHECK_EQ_INT(send_req(r, &a, &cred, &p, NOW0 + 2000, WALL_SEED), GB_REG_DROPPED);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.drops[GB_REG_DROP_UNPARSEABLE], 2);
    CHECK_EQ_INT(st.drops_parse[GB_ERR_EMPTY], 1);
    CHECK_EQ_INT(st.drops[GB_REG_DROP_NO_VIA], 1);
    CHECK_EQ_INT(st.drops[GB_REG_DROP_RESPONSE], 1);
    CHECK_EQ_INT(st.drops[GB_REG_DROP_RATE], 1);
    CHECK_EQ_INT(st.drops[GB_REG_DROP_IN_PROGRESS], 1);
    CHECK(strcmp(gb_reg_drop_name(GB_REG_DROP_NO_VIA), "no_via") == 0);
    evlist l = {0};
    do
        pop_all(r, &l);
    while (l.n);
    gb_registrar_free(r);
}

int main(void)
{
    dctx = gb_digest_ctx_new();
    CHECK(dctx != NULL);
    test_seed_replay();
    test_date_format();
    test_gb_version_and_server_header();
    test_cseq_order_same_call_id();
    test_new_call_id_replaces();
    test_wildcard_unregister();
    test_unregister_with_expires_zero();
    test_423_min_expires();
    test_clamp_to_max();
    test_403_wrong_password();
    test_403_unknown_device();
    test_credentials_for_another_device();
    test_stale_nonce();
    test_qop_auth_nc_replay();
    test_refresh_policy();
    test_pending_secret_lookup();
    test_keepalive_online_offline();
    test_keepalive_unregistered_device();
    test_expiry_by_timer();
    test_retransmission_cached();
    test_id_policy();
    test_redirect();
    test_limit_max_bindings();
    test_limit_max_contacts();
    test_limit_max_pending();
    test_limit_max_events();
    test_limit_max_transactions();
    test_rate_per_source();
    test_rate_colliding_sources_keep_their_counts();
    test_rate_full_set_keeps_the_flooder_limited();
    test_rate_ipv6_source_is_its_64();
    test_rate_needs_slots();
    test_udp_answer_over_one_datagram_is_a_513();
    test_cached_answer_is_never_replayed_to_another_address();
    test_answer_sized_from_the_request();
    test_answer_too_large_for_the_buffer_is_counted();
    test_every_long_contact_in_the_200();
    test_max_contacts_bounded();
    test_every_binding_move_is_taken();
    test_binding_moves_outside_the_table_refused();
    test_garbage_dropped_and_counted();
    test_missing_header_answered_400_naming_it();
    test_bare_register_and_fromless_message_answered();
    test_request_without_via_dropped_and_counted();
    test_any_leniency_any_missing_header_never_crashes();
    test_malformed_gets_400_with_reason();
    test_method_and_extension_errors();
    test_truncations_and_flips();
    test_config_errors();
    test_ipv6_and_tcp_source();
    test_many_devices_and_iteration();
    test_change_list_names_each_changed_binding_once();
    test_restored_binding_keeps_its_expiry_and_answers_keepalives();
    test_restored_online_binding_goes_offline_without_keepalives();
    test_replayed_credentials_from_another_address_refused();
    test_raced_answer_from_another_address_refused();
    test_nonce_without_qop_answers_once();
    test_nonce_answer_from_another_port_accepted();
    test_qop_downgrade();
    test_foreign_keepalive_refused();
    test_foreign_keepalive_challenge_policy();
    test_foreign_message_keeps_no_body();
    test_trust_call_id_allows_exactly();
    test_trust_call_id_never_for_an_unauthenticated_source();
    test_lockout_device_from_one_address();
    test_lockout_window_and_reset();
    test_lockout_source_spares_bound_devices();
    test_lockout_never_stops_a_working_device();
    test_lockout_needs_a_nonce_issued_to_the_address();
    test_lockout_table_bounded();
    test_credentials_for_another_device_tell_nothing();
    test_open_flood_keeps_authenticated_answers();
    test_event_queue_bounded_by_bytes();
    test_peer_events_never_push_out_binding_events();
    test_unproven_events_never_push_out_a_devices_messages();
    test_malformed_manscdp_message_is_refused();
    test_peer_event_rate();
    test_binding_fields_capped();
    test_rfc4475_malformed_requests_answered();
    test_drops_counted_by_reason();
    gb_digest_ctx_free(dctx);
    return CHECK_DONE("test_registrar");
}
