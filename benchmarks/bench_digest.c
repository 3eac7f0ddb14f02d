/*
 * bench_digest.c - Digest verifications per second on one core, beside the
 * raw OpenSSL floor, in the same run.
 *
 *   cc -O2 -std=c11 -Wall -Wextra -Icsrc/core -o benchmarks/build/bench_digest \
 *      benchmarks/bench_digest.c csrc/core/digest.c csrc/core/sip_auth.c \
 *      csrc/core/sip_parser.c -lcrypto
 *   benchmarks/build/bench_digest [--quick]      (or: make -C benchmarks bench_digest)
 *   benchmarks/build/bench_digest --profile CASE ITERS   one case's verify
 *                                  loop alone, for perf / valgrind --tool=callgrind
 *
 * A verification is what a registrar does with each REGISTER's
 * Authorization value: gb_digest_verify() tokenizes the credentials,
 * checks realm/algorithm/qop/uri, authenticates the nonce (HMAC-SHA256 over
 * timestamp + salt + source address), looks the user up, hashes, and
 * compares in constant time.  The credentials are 1024 devices' real
 * answers (gbsip's client side), each with its own nonce, taken in turn.
 * Before timing, every one must verify GB_DIGEST_OK, so a broken verifier
 * cannot win.
 *
 * Two floors run in the same process, interleaved with the verifications,
 * each a tight loop of EVP calls on inputs of the same sizes read from the
 * same request buffers, with one reused EVP_MD_CTX and prefetched EVP_MDs:
 *
 *   Digest floor   the hashes RFC 7616 itself needs: HA1 (when from a
 *                  password), HA2, response.  This is the issue's floor.
 *   calls floor    exactly the EVP calls gb_digest_verify makes: the nonce
 *                  HMAC when the issued cache misses (2 x EVP_MD_CTX_copy_ex
 *                  + update + final), HA1 when from a password, HA2 only
 *                  when the context's HA2 cache misses, response.
 *
 * On a registrar every device registers to the same Request-URI, so HA2
 * comes from the cache; the "own digest-uri per device" case shows the cost
 * without it.
 *
 * The nonces were issued just before (as on a registrar, which verifies
 * each REGISTER seconds after its 401), so they are in the nonce object's
 * issued cache and need no HMAC; the "not in the issued cache" case verifies
 * the same requests
 * against a nonce object with the cache off, i.e. with the HMAC, and its
 * calls floor includes the HMAC.  A stage table at the end times the parts
 * of "MD5, stored HA1" alone.
 *
 * Every case runs R repetitions of a loop of N verifications, interleaved
 * with the others so machine noise hits them alike; the table shows the
 * minimum and the median ns per verification.
 */
#define _POSIX_C_SOURCE 200809L
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"

enum { DEVICES = 1024 };

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the registrar's user table: open addressing on the device ID ---- */

typedef struct {
    char user[21];
    char password[16];
    char ha1_md5[GB_DIGEST_HEX_MAX];
    char ha1_sha256[GB_DIGEST_HEX_MAX];
} device;

static device devices[DEVICES];
static int slots[4 * DEVICES]; /* index + 1, 0 empty */

static uint32_t hash_id(const char *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

static const device *find(gb_bytes user)
{
    uint32_t mask = 4 * DEVICES - 1, i = hash_id(user.p, user.n) & mask;
    while (slots[i]) {
        const device *d = &devices[slots[i] - 1];
        if (user.n == 20 && memcmp(d->user, user.p, 20) == 0)
            return d;
        i = (i + 1) & mask;
    }
    return NULL;
}

typedef struct {
    int mode; /* 0 password, 1 stored HA1 */
    int sha256;
} lookup_mode;

static int lookup(void *arg, gb_bytes username, gb_bytes realm, int userhash,
                  gb_digest_secret *out)
{
    const lookup_mode *m = arg;
    (void)realm;
    (void)userhash;
    const device *d = find(username);
    if (!d)
        return 0;
    if (m->mode == 0) {
        out->kind = GB_SECRET_PASSWORD;
        out->value.p = d->password;
        out->value.n = strlen(d->password);
    } else {
        out->kind = GB_SECRET_HA1;
        out->value.p = m->sha256 ? d->ha1_sha256 : d->ha1_md5;
        out->value.n = m->sha256 ? 64 : 32;
    }
    return 0;
}

/* ---- prepared requests ---- */

typedef struct {
    char header[320];
    uint32_t len;
    char binding[32];
    size_t binding_len;
    char uri[64];
    size_t uri_len;
} request;

static request reqs_md5[DEVICES], reqs_sha[DEVICES], reqs_md5_uris[DEVICES];

static const char REALM[] = "3402000000";
static const char RURI[] = "sip:34020000002000000001@3402000000";
static const int64_t NOW = 1372263517164; /* 2013-06-26T16:08:37.164 */

static void prepare(gb_digest_ctx *ctx, gb_digest_nonces *nonces, request *reqs,
                    gb_digest_alg alg, int distinct_uris)
{
    for (int i = 0; i < DEVICES; i++) {
        request *r = &reqs[i];
        if (distinct_uris)
            r->uri_len = (size_t)snprintf(r->uri, sizeof r->uri, "sip:3402000000@10.0.%d.%d:5060",
                                          i / 250, 1 + i % 250);
        else
            r->uri_len = (size_t)snprintf(r->uri, sizeof r->uri, "%s", RURI);
        r->binding_len = (size_t)snprintf(r->binding, sizeof r->binding,
                                          "192.168.%d.%d:5061", 10 + i / 250, 1 + i % 250);
        char nonce[64], ch[256];
        gb_bytes b = {r->binding, r->binding_len};
        long nn = gb_digest_nonce_issue(nonces, NOW - 1000, b, nonce, sizeof nonce);
        gb_digest_challenge_out co = {.realm = {REALM, 10}, .nonce = {nonce, (size_t)nn},
                                      .alg = alg};
        long cn = gb_digest_build_challenge(ch, sizeof ch, &co);
        gb_auth a;
        gb_digest_challenge c;
        gb_span sp = {0, (uint32_t)cn};
        if (gb_auth_parse_one(ch, sp, &a, NULL) || gb_digest_parse_challenge(ch, &a, &c, NULL)) {
            fprintf(stderr, "challenge did not parse\n");
            exit(1);
        }
        gb_digest_answer_in in = {
            .username = {devices[i].user, 20},
            .password = {devices[i].password, strlen(devices[i].password)},
            .method = {"REGISTER", 8}, .uri = {r->uri, r->uri_len}, .qop = -1,
        };
        long n = gb_digest_answer(ctx, NULL, ch, &c, &in, r->header, sizeof r->header, NULL);
        if (n <= 0 || (size_t)n >= sizeof r->header) {
            fprintf(stderr, "answer failed\n");
            exit(1);
        }
        r->len = (uint32_t)n;
    }
}

/* ---- the timed loops ---- */

typedef struct {
    const char *name;
    request *reqs;
    lookup_mode mode;
    int hash;            /* 0 MD5, 1 SHA-256 */
    int with_ha1;        /* HA1 is computed from a password */
    int ha2_cached;      /* every request has the same digest-uri */
    int nonce_hmac;      /* the nonce is authenticated by its HMAC (cache off) */
    double *t_verify, *t_calls, *t_digest;
} bench_case;

static gb_digest_ctx *ctx;
static gb_digest_nonces *nonces, *nonces_hmac; /* same key; the second without cache */
static volatile unsigned sink;

static double run_verify(const bench_case *bc, int n)
{
    static gb_digest_verdict v;
    gb_digest_check chk = {
        .method = {"REGISTER", 8}, .realm = {REALM, 10}, .now_ms = NOW,
        .uri_policy = GB_URI_EXACT,
        .allowed_algs = GB_DIGEST_ALG_BIT(GB_DIGEST_MD5) | GB_DIGEST_ALG_BIT(GB_DIGEST_SHA256),
    };
    unsigned bad = 0;
    double t0 = now_ns();
    for (int i = 0; i < n; i++) {
        const request *r = &bc->reqs[i & (DEVICES - 1)];
        gb_span sp = {0, r->len};
        chk.binding.p = r->binding;
        chk.binding.n = r->binding_len;
        chk.request_uri.p = r->uri;
        chk.request_uri.n = r->uri_len;
        bad += gb_digest_verify(ctx, bc->nonce_hmac ? nonces_hmac : nonces, r->header, sp, &chk, lookup,
                                (void *)&bc->mode, &v) != GB_DIGEST_OK;
    }
    double t = (now_ns() - t0) / n;
    if (bad) {
        fprintf(stderr, "%s: %u verifications failed\n", bc->name, bad);
        exit(1);
    }
    return t;
}

/* The same EVP work on same-sized inputs, nothing else. */
static double run_floor(const bench_case *bc, int n, int with_hmac, int with_ha2,
                        EVP_MD *md, EVP_MD_CTX *mc, EVP_MD_CTX *inner, EVP_MD_CTX *outer,
                        EVP_MD_CTX *work)
{
    unsigned char raw[64], ih[32];
    unsigned int len;
    size_t hl = bc->hash ? 64 : 32;
    /* sizes as in the verifier: user:realm:password, method:uri, HA1:nonce:HA2,
     * and the HMAC's 8-byte nonce header + binding.  The bytes come from the
     * same request buffers the verifier reads, so both pay the same memory
     * traffic; only the work between the EVP calls is missing. */
    size_t n_ha1 = 20 + 1 + 10 + 1 + 8, n_resp = hl + 1 + GB_NONCE_B64_LEN + 1 + hl;
    unsigned acc = 0;
    double t0 = now_ns();
    for (int i = 0; i < n; i++) {
        const request *r = &bc->reqs[i & (DEVICES - 1)];
        const char *h = r->header;
        if (with_hmac) {
            if (!EVP_MD_CTX_copy_ex(work, inner) || !EVP_DigestUpdate(work, h + 8, 8) ||
                !EVP_DigestUpdate(work, r->binding, r->binding_len) ||
                !EVP_DigestFinal_ex(work, ih, &len) || !EVP_MD_CTX_copy_ex(work, outer) ||
                !EVP_DigestUpdate(work, ih, len) || !EVP_DigestFinal_ex(work, ih, &len))
                exit(1);
            acc += ih[0];
        }
        if (bc->with_ha1) {
            EVP_DigestInit_ex2(mc, md, NULL);
            EVP_DigestUpdate(mc, h + 10, n_ha1);
            EVP_DigestFinal_ex(mc, raw, &len);
            acc += raw[0];
        }
        if (with_ha2) {
            EVP_DigestInit_ex2(mc, md, NULL);
            EVP_DigestUpdate(mc, h + 60, 9 + r->uri_len);
            EVP_DigestFinal_ex(mc, raw, &len);
            acc += raw[0];
        }
        EVP_DigestInit_ex2(mc, md, NULL);
        EVP_DigestUpdate(mc, h + (r->len - n_resp), n_resp);
        EVP_DigestFinal_ex(mc, raw, &len);
        acc += raw[0];
    }
    double t = (now_ns() - t0) / n;
    sink += acc;
    return t;
}

/* ---- where the time goes: each stage alone on the same requests ---- */

typedef struct {
    gb_digest_input in;  /* what the response hash needs, from the parse */
} staged;

static staged stage_in[DEVICES];

static double stage_tokenize(const request *reqs, int n)
{
    static gb_auth a;
    unsigned acc = 0;
    double t0 = now_ns();
    for (int i = 0; i < n; i++) {
        const request *r = &reqs[i & (DEVICES - 1)];
        gb_span sp = {0, r->len};
        acc += gb_auth_parse_one(r->header, sp, &a, NULL) + a.nparams;
    }
    sink += acc;
    return (now_ns() - t0) / n;
}

static double stage_parse(const request *reqs, int n)
{
    static gb_auth a;
    static gb_digest_credentials c;
    unsigned acc = 0;
    double t0 = now_ns();
    for (int i = 0; i < n; i++) {
        const request *r = &reqs[i & (DEVICES - 1)];
        gb_span sp = {0, r->len};
        acc += gb_auth_parse_one(r->header, sp, &a, NULL);
        acc += gb_digest_parse_credentials(r->header, &a, &c, NULL) + c.alg;
    }
    sink += acc;
    return (now_ns() - t0) / n;
}

static double stage_nonce(gb_digest_nonces *ns, const request *reqs, int n)
{
    unsigned bad = 0;
    double t0 = now_ns();
    for (int i = 0; i < n; i++) {
        const request *r = &reqs[i & (DEVICES - 1)];
        const staged *st = &stage_in[i & (DEVICES - 1)];
        gb_bytes b = {r->binding, r->binding_len};
        bad += gb_digest_nonce_check(ns, st->in.nonce, b, NOW, NULL) != GB_NONCE_FRESH;
    }
    double t = (now_ns() - t0) / n;
    if (bad) {
        fprintf(stderr, "nonce stage: %u nonces not fresh\n", bad);
        exit(1);
    }
    return t;
}

static double stage_response(int n)
{
    char out[GB_DIGEST_HEX_MAX];
    unsigned acc = 0;
    double t0 = now_ns();
    for (int i = 0; i < n; i++)
        acc += (unsigned)gb_digest_response(ctx, &stage_in[i & (DEVICES - 1)].in, out, NULL) +
               (unsigned char)out[0];
    sink += acc;
    return (now_ns() - t0) / n;
}

/* The response inputs of each MD5 request with its stored HA1. */
static void prepare_stages(const request *reqs)
{
    static gb_auth a;
    static gb_digest_credentials c;
    for (int i = 0; i < DEVICES; i++) {
        const request *r = &reqs[i];
        gb_span sp = {0, r->len};
        if (gb_auth_parse_one(r->header, sp, &a, NULL) ||
            gb_digest_parse_credentials(r->header, &a, &c, NULL)) {
            fprintf(stderr, "stage prepare: parse failed\n");
            exit(1);
        }
        gb_digest_input *in = &stage_in[i].in;
        memset(in, 0, sizeof *in);
        in->alg = GB_DIGEST_MD5;
        in->qop = GB_QOP_NONE;
        in->username = (gb_bytes){r->header + c.username.value.off, c.username.value.len};
        in->realm = (gb_bytes){REALM, 10};
        in->ha1 = (gb_bytes){devices[i].ha1_md5, 32};
        in->nonce = (gb_bytes){r->header + c.nonce.value.off, c.nonce.value.len};
        in->method = (gb_bytes){"REGISTER", 8};
        in->uri = (gb_bytes){r->header + c.uri.value.off, c.uri.value.len};
    }
}

static double min_of(double *t, int r)
{
    double m = t[0];
    for (int i = 1; i < r; i++)
        if (t[i] < m)
            m = t[i];
    return m;
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    /* --profile CASE ITERS: only that case's verify loop (for perf/callgrind) */
    int profile = argc > 3 && strcmp(argv[1], "--profile") == 0;
    /* many short loops: on a shared machine the minimum of short runs is
     * the figure least disturbed by other work */
    int N = quick ? 10000 : 20000, R = quick ? 10 : 60;

    ctx = gb_digest_ctx_new();
    static const unsigned char key[32] = "bench-key-bench-key-bench-key-!";
    gb_digest_nonce_config cfg = {key, sizeof key, 300000, 4096, GB_NONCE_BASE64URL, 0};
    nonces = gb_digest_nonces_new(&cfg, NULL);
    cfg.flags = GB_NONCE_NO_CACHE;
    nonces_hmac = gb_digest_nonces_new(&cfg, NULL);
    if (!ctx || !nonces || !nonces_hmac)
        return 1;
    for (int i = 0; i < DEVICES; i++) {
        device *d = &devices[i];
        snprintf(d->user, sizeof d->user, "3402000000132%07d", i + 1);
        snprintf(d->password, sizeof d->password, "pw%06d", i * 7919 % 1000000);
        gb_bytes u = {d->user, 20}, r = {REALM, 10}, p = {d->password, strlen(d->password)};
        gb_digest_ha1(ctx, GB_DIGEST_MD5, u, r, p, d->ha1_md5);
        gb_digest_ha1(ctx, GB_DIGEST_SHA256, u, r, p, d->ha1_sha256);
        uint32_t mask = 4 * DEVICES - 1, k = hash_id(d->user, 20) & mask;
        while (slots[k])
            k = (k + 1) & mask;
        slots[k] = i + 1;
    }
    /* 3 x 1024 nonces issued: all still in the 4096-slot issued cache, as on
     * a registrar that verifies each REGISTER soon after its 401 */
    prepare(ctx, nonces, reqs_md5, GB_DIGEST_MD5, 0);
    prepare(ctx, nonces, reqs_sha, GB_DIGEST_SHA256, 0);
    prepare(ctx, nonces, reqs_md5_uris, GB_DIGEST_MD5, 1);
    prepare_stages(reqs_md5);

    EVP_MD *md5 = EVP_MD_fetch(NULL, "MD5", NULL), *sha = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    EVP_MD_CTX *mc = EVP_MD_CTX_new(), *inner = EVP_MD_CTX_new(), *outer = EVP_MD_CTX_new(),
               *work = EVP_MD_CTX_new();
    unsigned char pad[64];
    memset(pad, 0x36, sizeof pad);
    EVP_DigestInit_ex2(inner, sha, NULL);
    EVP_DigestUpdate(inner, pad, 64);
    memset(pad, 0x5c, sizeof pad);
    EVP_DigestInit_ex2(outer, sha, NULL);
    EVP_DigestUpdate(outer, pad, 64);

    enum { NC = 5 };
    static double tv[NC][64], tc[NC][64], td[NC][64]; /* R <= 64 */
    bench_case cases[NC] = {
        {"MD5, password lookup", reqs_md5, {0, 0}, 0, 1, 1, 0, tv[0], tc[0], td[0]},
        {"MD5, stored HA1", reqs_md5, {1, 0}, 0, 0, 1, 0, tv[1], tc[1], td[1]},
        {"SHA-256, password lookup", reqs_sha, {0, 1}, 1, 1, 1, 0, tv[2], tc[2], td[2]},
        {"MD5, stored HA1, own digest-uri per device", reqs_md5_uris, {1, 0}, 0, 0, 0, 0,
         tv[3], tc[3], td[3]},
        {"MD5, stored HA1, nonce not in the issued cache (HMAC)", reqs_md5, {1, 0}, 0, 0, 1,
         1, tv[4], tc[4], td[4]},
    };
    if (profile) {
        int c = atoi(argv[2]), iters = atoi(argv[3]);
        if (c < 0 || c >= NC || iters <= 0)
            return 2;
        printf("%s: %.0f ns\n", cases[c].name, run_verify(&cases[c], iters));
        return 0;
    }
    for (int c = 0; c < NC; c++) /* warm up */
        run_verify(&cases[c], N / 4);
    for (int rep = 0; rep < R; rep++) {
        for (int c = 0; c < NC; c++) {
            EVP_MD *md = cases[c].hash ? sha : md5;
            cases[c].t_verify[rep] = run_verify(&cases[c], N);
            cases[c].t_calls[rep] = run_floor(&cases[c], N, cases[c].nonce_hmac,
                                              !cases[c].ha2_cached, md, mc, inner, outer, work);
            cases[c].t_digest[rep] = run_floor(&cases[c], N, 0, 1, md, mc, inner, outer, work);
        }
    }
    printf("%d devices, %d repetitions x %d verifications per case%s\n\n", DEVICES, R, N,
           quick ? " (quick)" : "");
    printf("| case | verify ns (min / median) | verifications/s | Digest floor ns "
           "| verify / Digest floor | calls floor ns | verify / calls floor |\n");
    printf("|---|---|---|---|---|---|---|\n");
    for (int c = 0; c < NC; c++) {
        qsort(cases[c].t_verify, (size_t)R, sizeof(double), cmp_double);
        qsort(cases[c].t_calls, (size_t)R, sizeof(double), cmp_double);
        qsort(cases[c].t_digest, (size_t)R, sizeof(double), cmp_double);
        double v = cases[c].t_verify[0], vm = cases[c].t_verify[R / 2];
        double f = cases[c].t_calls[0], d = cases[c].t_digest[0];
        printf("| %s | %.0f / %.0f | %.0f | %.0f | %.2fx | %.0f | %.2fx |\n", cases[c].name,
               v, vm, 1e9 / v, d, v / d, f, v / f);
    }

    /* Stages of "MD5, stored HA1", each alone (min over R runs). */
    static double st[6][64];
    for (int rep = 0; rep < R; rep++) {
        st[0][rep] = stage_tokenize(reqs_md5, N);
        st[1][rep] = stage_parse(reqs_md5, N);
        st[2][rep] = stage_nonce(nonces, reqs_md5, N);
        st[3][rep] = stage_nonce(nonces_hmac, reqs_md5, N);
        st[4][rep] = stage_response(N);
        st[5][rep] = run_verify(&cases[1], N);
    }
    printf("\nStages of \"MD5, stored HA1\", each alone (min ns):\n\n");
    printf("| stage | ns |\n|---|---|\n");
    printf("| tokenize (gb_auth_parse_one) | %.0f |\n", min_of(st[0], R));
    printf("| tokenize + Digest fields (gb_digest_parse_credentials) | %.0f |\n",
           min_of(st[1], R));
    printf("| nonce check, issued cache hit | %.0f |\n", min_of(st[2], R));
    printf("| nonce check, HMAC-SHA256 | %.0f |\n", min_of(st[3], R));
    printf("| response from stored HA1 (HA2 cached, gb_digest_response) | %.0f |\n",
           min_of(st[4], R));
    printf("| full gb_digest_verify | %.0f |\n", min_of(st[5], R));

    EVP_MD_CTX_free(mc);
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
    EVP_MD_CTX_free(work);
    EVP_MD_free(md5);
    EVP_MD_free(sha);
    gb_digest_nonces_free(nonces);
    gb_digest_nonces_free(nonces_hmac);
    gb_digest_ctx_free(ctx);
    return sink == 12345 ? 2 : 0;
}
