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

/* Answer the challenge of a 401 (qop as offered) with gb_digest_answer. */
static int answer_challenge(const answer *a, gb_digest_client *cl, const char *user,
                            const char *password, uint32_t nc, char *out, size_t cap)
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
        .method = {"REGISTER", 8},
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

    /* a keepalive: 200, KEEPALIVE event with SN and status; source moves */
    gb_peer moved = peer4(10, 0, 0, 5, 7000);
    req ka = {.method = "MESSAGE", .call_id = "ka1", .cseq = 20, .contact = "", .expires = -1,
              .ctype = "Application/MANSCDP+xml", .body = KA_BODY};
    send_req(r, &a, &ka, &moved, NOW0 + 1000, WALL_SEED);
    CHECK_EQ_INT(status_of(&a), 200);
    CHECK_EQ_INT(a.dest.port, 7000);
    pop_all(r, &l);
    const gb_reg_event *ev = find_type(&l, GB_REG_EV_KEEPALIVE);
    CHECK(ev != NULL);
    if (ev) {
        CHECK_EQ_INT(ev->sn, 43);
        CHECK_MEM(ev->text, ev->text_len, "OK");
    }
    gb_binding_view v;
    CHECK(gb_registrar_binding_get(r, DEV, strlen(DEV), &v));
    CHECK_EQ_INT(v.source.port, 7000);
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
    CHECK_EQ_INT(st.transactions, 4);
    CHECK_EQ_INT(st.transactions_evicted, 6);
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
 * registrar's own placement: keyed hash of family and address). */
static unsigned rate_set_of(const gb_registrar_config *c, const gb_peer *p)
{
    unsigned char addr[5] = {4, p->ip[0], p->ip[1], p->ip[2], p->ip[3]};
    gb_hash_key k = gb_hash_key_from(c->hash_key);
    return (unsigned)(gb_siphash(&k, addr, sizeof addr) % 256);
}

/* Issue 14: sources that share a set of the rate table keep their own
 * counts: one never resets or spends another's.  Five sources in one set of
 * four: the fifth goes through untracked (and counted), the four keep
 * their limits. */
static void test_rate_colliding_sources_keep_their_counts(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    c.rate_per_source = 2;
    for (int i = 0; i < 16; i++)
        c.hash_key[i] = (unsigned char)(0xa0 + i);
    gb_registrar *r = mk(&c);
    gb_peer same[5];
    gb_peer first = peer4(10, 1, 0, 1, 5061);
    unsigned set = rate_set_of(&c, &first);
    int n = 0;
    for (unsigned v = 1; n < 5 && v < 65536; v++) {
        gb_peer p = peer4(10, 1, (uint8_t)(v >> 8), (uint8_t)v, 5061);
        if (rate_set_of(&c, &p) == set)
            same[n++] = p;
    }
    CHECK_EQ_INT(n, 5);
    answer a;
    int answered[5] = {0};
    for (int round = 0; round < 3; round++)
        for (int k = 0; k < 5; k++) {
            req q = {.cseq = 1, .expires = 3600};
            answered[k] += send_req(r, &a, &q, &same[k], NOW0, WALL_SEED) == GB_REG_REPLY;
        }
    for (int k = 0; k < 4; k++)
        CHECK_EQ_INT(answered[k], 2);
    CHECK_EQ_INT(answered[4], 3);
    gb_registrar_stats st;
    gb_registrar_get_stats(r, &st);
    CHECK_EQ_INT(st.rate_untracked, 3);
    CHECK_EQ_INT(st.dropped_rate, 4);
    /* a window over frees its slot for the fifth source */
    req q = {.cseq = 1, .expires = 3600};
    for (int i = 0; i < 3; i++)
        answered[4] += send_req(r, &a, &q, &same[4], NOW0 + 1000, WALL_SEED) == GB_REG_REPLY;
    CHECK_EQ_INT(answered[4], 5);
    gb_registrar_free(r);
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

/* Every contact of the binding is in the 200 OK (RFC 3261 §10.3 step 8),
 * however long: eight contacts of about 700 bytes, 5.6 KB of Contact. */
static void test_every_long_contact_in_the_200(void)
{
    gb_registrar_config c;
    cfg_base(&c);
    cfg_fixed_nonce(&c, "n");
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
        if (st == GB_REG_REPLY && !a.parsed) {
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
        if (st == GB_REG_REPLY && !a.parsed) {
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
    gb_digest_ctx_free(dctx);
    return CHECK_DONE("test_registrar");
}
