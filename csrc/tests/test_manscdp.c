/*
 * test_manscdp.c - the MANSCDP+xml reader and writer (GB/T 28181 Annex A).
 *
 * Runs every fixture in tests/data/manscdp/ against its .expect file, a
 * truncation ladder over every valid fixture, and one test per behaviour
 * of the reader, the lookups, the decoder and the writer.
 */
#define _POSIX_C_SOURCE 200809L /* strtok_r, opendir */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "manscdp.h"
#include "seed.h"

#define MAXN 512

static gb_manscdp_node nodes[MAXN];

static gb_manscdp_error_code parse(const char *b, size_t n, uint32_t lenient,
                                   gb_manscdp_doc *doc, gb_manscdp_error *err)
{
    gb_manscdp_limits lim;
    gb_manscdp_limits_default(&lim);
    lim.lenient = lenient;
    gb_manscdp_init(doc, nodes, MAXN);
    return gb_manscdp_parse(b, n, &lim, doc, err);
}

#define PARSE(lit, lenient, doc, err) parse((lit), sizeof(lit) - 1, (lenient), (doc), (err))

#define KEEPALIVE SEED_KEEPALIVE_BODY

/* ------------------------------------------------------------------ */
/* Fixtures                                                            */

/* The fixture folder, found from this file's path (the Makefile compiles
 * it by absolute path), so the test runs from any directory. */
static void fixture_dir(char *out, size_t cap)
{
    const char *f = __FILE__;
    const char *end = strstr(f, "csrc/tests/test_manscdp.c");
    size_t base = end ? (size_t)(end - f) : 0;
    snprintf(out, cap, "%.*stests/data/manscdp", (int)base, f);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    /* exactly n bytes, no NUL after them: ASan sees any over-read */
    char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && n > 0 && fread(b, 1, (size_t)n, fp) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(fp);
    *len = (size_t)(n > 0 ? n : 0);
    return b;
}

static uint32_t lenient_flags(const char *v)
{
    uint32_t f = 0;
    if (strstr(v, "TAG_CASE"))
        f |= GB_MANSCDP_LENIENT_TAG_CASE;
    if (strstr(v, "NO_DECLARATION"))
        f |= GB_MANSCDP_LENIENT_NO_DECLARATION;
    if (strstr(v, "PADDING"))
        f |= GB_MANSCDP_LENIENT_PADDING;
    if (strstr(v, "BARE_AMPERSAND"))
        f |= GB_MANSCDP_LENIENT_BARE_AMPERSAND;
    return f;
}

static int is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

/* "DeviceList/Item[1]/Name": [k] picks the k-th match of the path so far. */
static unsigned eval_path(const gb_manscdp_doc *doc, const char *buf, const char *path,
                          unsigned *count)
{
    unsigned from = 0, found = GB_MANSCDP_NONE;
    const char *p = path;
    *count = 0;
    for (;;) {
        const char *br = strchr(p, '[');
        size_t len = br ? (size_t)(br - p) : strlen(p);
        unsigned want = br ? (unsigned)atoi(br + 1) : 0, k = 0;
        found = GB_MANSCDP_NONE;
        for (unsigned i = gb_manscdp_find(doc, buf, from, p, len, GB_MANSCDP_NONE);
             i != GB_MANSCDP_NONE; i = gb_manscdp_find(doc, buf, from, p, len, i)) {
            if (k == want && found == GB_MANSCDP_NONE)
                found = i;
            k++;
        }
        *count = k;
        if (!br || found == GB_MANSCDP_NONE)
            return found;
        from = found;
        p = strchr(br, ']');
        if (!p || p[1] != '/')
            return found;
        p += 2;
    }
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = 0;
}

/* "left = right" → left, right (right may be empty). */
static void split_eq(char *v, char **left, char **right)
{
    char *eq = strstr(v, " =");
    *left = v;
    *right = (char *)"";
    if (eq) {
        *eq = 0;
        *right = eq[2] == ' ' ? eq + 3 : eq + 2;
    }
    trim(*left);
}

static void check_fixture(const char *dir, const char *name)
{
    char path[1400];
    size_t n, en;
    snprintf(path, sizeof(path), "%s/%s.xml", dir, name);
    char *body = read_file(path, &n);
    snprintf(path, sizeof(path), "%s/%s.expect", dir, name);
    char *exp = read_file(path, &en);
    CHECK(body != NULL && exp != NULL);
    if (!body || !exp) {
        free(body);
        free(exp);
        return;
    }
    char *e = malloc(en + 1), *expz = malloc(en + 1);
    memcpy(e, exp, en);
    e[en] = 0;
    memcpy(expz, exp, en);
    expz[en] = 0;

    uint32_t lenient = 0;
    for (char *line = strtok(e, "\n"); line; line = strtok(NULL, "\n"))
        if (!strncmp(line, "lenient: ", 9))
            lenient = lenient_flags(line + 9);
    memcpy(e, exp, en);
    e[en] = 0;

    gb_manscdp_doc doc;
    gb_manscdp_error err;
    gb_manscdp_error_code rc = parse(body, n, lenient, &doc, &err);
    int failed_before = check_failures;
    int doc_ok = rc == GB_MANSCDP_OK || rc == GB_MANSCDP_ERR_UNKNOWN_CMD_TYPE;
    char *save = NULL;
    for (char *line = strtok_r(e, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *colon = strstr(line, ": ");
        if (!colon || line[0] == '#')
            continue;
        *colon = 0;
        char *key = line, *v = colon + 2;
        trim(v);
        if (!strcmp(key, "expect")) {
            if (!strcmp(v, "valid"))
                CHECK_EQ_INT(rc, GB_MANSCDP_OK);
            else
                CHECK(rc != GB_MANSCDP_OK);
        } else if (!strcmp(key, "error")) {
            CHECK(!strcmp(gb_manscdp_error_name(rc), v));
        } else if (!strcmp(key, "error-status")) {
            CHECK_EQ_INT(err.status, atoi(v));
        } else if (!strcmp(key, "error-line")) {
            if (rc != GB_MANSCDP_OK)
                CHECK_EQ_INT(err.line, atoi(v));
        } else if (!strcmp(key, "strict-error")) {
            gb_manscdp_doc d2;
            gb_manscdp_error e2;
            gb_manscdp_init(&d2, nodes, MAXN);
            gb_manscdp_error_code r2 = gb_manscdp_parse(body, n, NULL, &d2, &e2);
            CHECK(!strcmp(gb_manscdp_error_name(r2), v));
            const char *el = strstr(expz, "error-line: ");
            if (el && rc == GB_MANSCDP_OK)
                CHECK_EQ_INT(e2.line, atoi(el + 12));
            /* the strict parse reused nodes[]: parse again for later keys */
            rc = parse(body, n, lenient, &doc, &err);
        } else if (!doc_ok) {
            continue;
        } else if (!strcmp(key, "root")) {
            CHECK(!strcmp(gb_manscdp_root_name((gb_manscdp_root)doc.root), v));
        } else if (!strcmp(key, "cmd-type")) {
            CHECK(doc.cmd_type.len == strlen(v) &&
                  !memcmp(body + doc.cmd_type.off, v, doc.cmd_type.len));
            if (doc.cmd != GB_MANSCDP_CMD_OTHER)
                CHECK(!strcmp(gb_manscdp_cmd_name((gb_manscdp_cmd)doc.cmd), v));
        } else if (!strcmp(key, "sn")) {
            CHECK_EQ_INT(doc.sn, strtoull(v, NULL, 10));
        } else if (!strcmp(key, "device-id")) {
            CHECK(doc.device_id.len == strlen(v) &&
                  !memcmp(body + doc.device_id.off, v, doc.device_id.len));
        } else if (!strcmp(key, "charset")) {
            if (!strcmp(v, "-"))
                CHECK_EQ_INT(doc.charset, GB_MANSCDP_CHARSET_NONE);
            else
                CHECK_EQ_INT(doc.charset, gb_manscdp_charset_lookup(v, strlen(v)));
        } else if (!strcmp(key, "count")) {
            char *l, *r;
            unsigned count;
            split_eq(v, &l, &r);
            eval_path(&doc, body, l, &count);
            CHECK_EQ_INT(count, atoi(r));
        } else if (!strcmp(key, "text")) {
            char *l, *r, out[1024];
            unsigned count;
            split_eq(v, &l, &r);
            unsigned i = eval_path(&doc, body, l, &count);
            CHECK(i != GB_MANSCDP_NONE);
            if (i == GB_MANSCDP_NONE)
                continue;
            /* C compares bytes; non-ASCII in a GB document is Python's job */
            if (!is_ascii(r) && doc.charset != GB_MANSCDP_CHARSET_UTF8)
                continue;
            long len = gb_manscdp_decode(body, doc.nodes[i].text, doc.lenient, out, sizeof(out));
            CHECK(len == (long)strlen(r) && !memcmp(out, r, (size_t)len));
        } else if (!strcmp(key, "attr")) {
            char *l, *r, out[256];
            unsigned count;
            split_eq(v, &l, &r);
            char *at = strstr(l, " @ ");
            CHECK(at != NULL);
            if (!at)
                continue;
            *at = 0;
            unsigned i = eval_path(&doc, body, l, &count);
            gb_span val;
            CHECK(i != GB_MANSCDP_NONE &&
                  gb_manscdp_attr(&doc, body, i, at + 3, strlen(at + 3), &val));
            if (i == GB_MANSCDP_NONE)
                continue;
            long len = gb_manscdp_decode(body, val, doc.lenient, out, sizeof(out));
            CHECK(len == (long)strlen(r) && !memcmp(out, r, (size_t)len));
        }
    }
    if (check_failures != failed_before)
        fprintf(stderr, "  in fixture %s (parse: %s, %s)\n", name, gb_manscdp_error_name(rc),
                rc ? err.reason : "");
    free(e);
    free(expz);
    free(exp);
    free(body);
}

/* Every prefix of a valid body is an error (unless all that is cut off is
 * trailing whitespace or padding), never a crash or an over-read. */
static void truncation_ladder(const char *dir, const char *name)
{
    char path[1400];
    size_t n;
    snprintf(path, sizeof(path), "%s/%s.xml", dir, name);
    char *body = read_file(path, &n);
    if (!body)
        return;
    size_t end = n;
    while (end > 0 && (body[end - 1] == '\0' || body[end - 1] == '\r' ||
                       body[end - 1] == '\n' || body[end - 1] == ' ' || body[end - 1] == '\t'))
        end--;
    for (size_t k = 0; k < end; k++) {
        char *pre = malloc(k ? k : 1);
        memcpy(pre, body, k);
        gb_manscdp_doc doc;
        gb_manscdp_error err;
        gb_manscdp_error_code rc = parse(pre, k, GB_MANSCDP_LENIENT_ALL, &doc, &err);
        if (rc == GB_MANSCDP_OK || err.offset > k) {
            CHECK(rc != GB_MANSCDP_OK && err.offset <= k);
            fprintf(stderr, "  %s prefix of %zu bytes\n", name, k);
        }
        free(pre);
    }
    free(body);
}

static void test_fixtures(void)
{
    char dir[900];
    fixture_dir(dir, sizeof(dir));
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d) {
        fprintf(stderr, "no fixture folder %s\n", dir);
        return;
    }
    int count = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        size_t l = strlen(ent->d_name);
        if (l < 5 || strcmp(ent->d_name + l - 4, ".xml"))
            continue;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(l - 4), ent->d_name);
        check_fixture(dir, name);
        if (strncmp(name, "error-", 6))
            truncation_ladder(dir, name);
        count++;
    }
    closedir(d);
    CHECK(count >= 40);
}

/* ------------------------------------------------------------------ */
/* Reader behaviours                                                   */

/* §9.6.1: the keepalive's root, CmdType, SN, DeviceID and charset. */
static void test_keepalive_header_fields(void)
{
    gb_manscdp_doc doc;
    gb_manscdp_error err;
    CHECK_EQ_INT(PARSE(KEEPALIVE, 0, &doc, &err), GB_MANSCDP_OK);
    CHECK_EQ_INT(doc.root, GB_MANSCDP_NOTIFY);
    CHECK_EQ_INT(doc.cmd, GB_MANSCDP_CMD_KEEPALIVE);
    CHECK_EQ_INT(doc.sn, 43);
    CHECK_MEM(KEEPALIVE + doc.device_id.off, doc.device_id.len, "34020000001320000001");
    CHECK_EQ_INT(doc.charset, GB_MANSCDP_CHARSET_GB2312);
    CHECK_MEM(KEEPALIVE + doc.encoding.off, doc.encoding.len, "GB2312");
    CHECK_EQ_INT(doc.nnodes, 5);
}

/* Nodes are in document order, linked parent / first child / sibling. */
static void test_tree_links(void)
{
    gb_manscdp_doc doc;
    CHECK_EQ_INT(PARSE(KEEPALIVE, 0, &doc, NULL), GB_MANSCDP_OK);
    CHECK_EQ_INT(doc.nodes[0].parent, GB_MANSCDP_NONE);
    CHECK_EQ_INT(doc.nodes[0].first_child, 1);
    CHECK_EQ_INT(doc.nodes[1].next_sibling, 2);
    CHECK_EQ_INT(doc.nodes[3].next_sibling, 4);
    CHECK_EQ_INT(doc.nodes[4].next_sibling, GB_MANSCDP_NONE);
    CHECK_EQ_INT(doc.nodes[4].parent, 0);
    CHECK_EQ_INT(doc.nodes[4].depth, 2);
    CHECK(doc.nodes[0].flags & GB_MANSCDP_NODE_PARENT);
    CHECK_MEM(KEEPALIVE + doc.nodes[4].text.off, doc.nodes[4].text.len, "OK");
    CHECK_EQ_INT(gb_manscdp_child(&doc, KEEPALIVE, 0, "Status", 6, GB_MANSCDP_NONE), 4);
    CHECK_EQ_INT(gb_manscdp_child(&doc, KEEPALIVE, 0, "status", 6, GB_MANSCDP_NONE),
                 GB_MANSCDP_NONE);
}

static const char CATALOG[] =
    "<?xml version=\"1.0\" encoding=\"GB2312\"?>\r\n"
    "<Response><CmdType>Catalog</CmdType><SN>7</SN><DeviceID>1</DeviceID>"
    "<SumNum>3</SumNum><DeviceList Num=\"3\">"
    "<Item><DeviceID>a</DeviceID><Info><PTZType>1</PTZType></Info></Item>"
    "<Item><DeviceID>b</DeviceID></Item>"
    "<Other><Item><DeviceID>x</DeviceID></Item></Other>"
    "<Item><DeviceID>c</DeviceID></Item>"
    "</DeviceList></Response>";

/* A.2.6.4: "DeviceList/Item" walks the catalog items in order, and only them. */
static void test_find_walks_list_items(void)
{
    gb_manscdp_doc doc;
    CHECK_EQ_INT(PARSE(CATALOG, 0, &doc, NULL), GB_MANSCDP_OK);
    const char *want[] = {"a", "b", "c"};
    unsigned k = 0;
    for (unsigned i = gb_manscdp_find(&doc, CATALOG, 0, "DeviceList/Item", 15, GB_MANSCDP_NONE);
         i != GB_MANSCDP_NONE;
         i = gb_manscdp_find(&doc, CATALOG, 0, "DeviceList/Item", 15, i), k++) {
        unsigned id = gb_manscdp_child(&doc, CATALOG, i, "DeviceID", 8, GB_MANSCDP_NONE);
        CHECK(k < 3 && id != GB_MANSCDP_NONE);
        if (k < 3 && id != GB_MANSCDP_NONE)
            CHECK(doc.nodes[id].text.len == 1 && CATALOG[doc.nodes[id].text.off] == want[k][0]);
    }
    CHECK_EQ_INT(k, 3);
    unsigned ptz = gb_manscdp_find(&doc, CATALOG, 0, "DeviceList/Item/Info/PTZType", 28,
                                   GB_MANSCDP_NONE);
    CHECK(ptz != GB_MANSCDP_NONE);
    gb_span num;
    unsigned list = gb_manscdp_find(&doc, CATALOG, 0, "DeviceList", 10, GB_MANSCDP_NONE);
    CHECK(gb_manscdp_attr(&doc, CATALOG, list, "Num", 3, &num));
    CHECK_MEM(CATALOG + num.off, num.len, "3");
    CHECK(!gb_manscdp_attr(&doc, CATALOG, list, "num", 3, &num));
    CHECK_EQ_INT(gb_manscdp_find(&doc, CATALOG, 0, "DeviceList//Item", 16, GB_MANSCDP_NONE),
                 GB_MANSCDP_NONE);
}

/* Annex A: the declaration is required unless NO_DECLARATION is named. */
static void test_declaration_required(void)
{
    static const char b[] = "<Notify><CmdType>Keepalive</CmdType><SN>1</SN>"
                            "<DeviceID>1</DeviceID></Notify>";
    gb_manscdp_doc doc;
    gb_manscdp_error err;
    CHECK_EQ_INT(PARSE(b, 0, &doc, &err), GB_MANSCDP_ERR_DECLARATION);
    CHECK_EQ_INT(err.status, 400);
    CHECK_EQ_INT(PARSE(b, GB_MANSCDP_LENIENT_NO_DECLARATION, &doc, &err), GB_MANSCDP_OK);
    CHECK_EQ_INT(doc.charset, GB_MANSCDP_CHARSET_NONE);
    CHECK_EQ_INT(doc.has_declaration, 0);
}

/* Errors say where: 1-based line and byte offset. */
static void test_error_position(void)
{
    static const char b[] = "<?xml version=\"1.0\"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n"
                            "<SN>1</SN>\r\n<DeviceID>1</DeviceID>\r\n<Status>OK</Stat>\r\n</Notify>";
    gb_manscdp_doc doc;
    gb_manscdp_error err;
    CHECK_EQ_INT(PARSE(b, 0, &doc, &err), GB_MANSCDP_ERR_TAG_MISMATCH);
    CHECK_EQ_INT(err.line, 6);
    CHECK_EQ_INT(err.offset, strstr(b, "</Stat>") - b);
    CHECK(err.reason != NULL && err.reason[0]);
}

/* An unknown CmdType is its own code (501) and leaves a complete document. */
static void test_unknown_cmd_type_keeps_document(void)
{
    static const char b[] = "<?xml version=\"1.0\"?><Query><CmdType>Foo</CmdType><SN>9</SN>"
                            "<DeviceID>77</DeviceID></Query>";
    gb_manscdp_doc doc;
    gb_manscdp_error err;
    CHECK_EQ_INT(PARSE(b, 0, &doc, &err), GB_MANSCDP_ERR_UNKNOWN_CMD_TYPE);
    CHECK_EQ_INT(err.status, 501);
    CHECK_EQ_INT(doc.root, GB_MANSCDP_QUERY);
    CHECK_EQ_INT(doc.cmd, GB_MANSCDP_CMD_OTHER);
    CHECK_MEM(b + doc.cmd_type.off, doc.cmd_type.len, "Foo");
    CHECK_EQ_INT(doc.sn, 9);
    CHECK_MEM(b + doc.device_id.off, doc.device_id.len, "77");
}

/* SN is a decimal below 2^64 (A.2.1): the largest is read, one more is an SN error. */
#define SN_QUERY(sn) "<?xml version=\"1.0\"?><Query><CmdType>Catalog</CmdType>" \
                     "<SN>" sn "</SN><DeviceID>1</DeviceID></Query>"

static void test_sn_range(void)
{
    gb_manscdp_doc doc;
    gb_manscdp_error err;
    CHECK_EQ_INT(PARSE(SN_QUERY("18446744073709551615"), 0, &doc, &err), GB_MANSCDP_OK);
    CHECK(doc.sn == UINT64_MAX);
    CHECK_EQ_INT(PARSE(SN_QUERY("18446744073709551616"), 0, &doc, &err), GB_MANSCDP_ERR_SN);
    CHECK_EQ_INT(PARSE(SN_QUERY("-1"), 0, &doc, &err), GB_MANSCDP_ERR_SN);
    CHECK_EQ_INT(PARSE(SN_QUERY(""), 0, &doc, &err), GB_MANSCDP_ERR_SN);
}

/* Bounded: body size, node count and depth each have their own error (513). */
static void test_limits(void)
{
    gb_manscdp_doc doc;
    gb_manscdp_error err;
    gb_manscdp_limits lim;
    gb_manscdp_limits_default(&lim);
    CHECK_EQ_INT(lim.max_body, 65536);
    CHECK_EQ_INT(lim.max_nodes, 4096);
    CHECK_EQ_INT(lim.max_depth, 16);

    lim.max_body = 20;
    gb_manscdp_init(&doc, nodes, MAXN);
    CHECK_EQ_INT(gb_manscdp_parse(KEEPALIVE, sizeof(KEEPALIVE) - 1, &lim, &doc, &err),
                 GB_MANSCDP_ERR_TOO_LARGE);
    CHECK_EQ_INT(err.status, 513);

    gb_manscdp_limits_default(&lim);
    lim.max_nodes = 4;
    CHECK_EQ_INT(gb_manscdp_parse(KEEPALIVE, sizeof(KEEPALIVE) - 1, &lim, &doc, &err),
                 GB_MANSCDP_ERR_TOO_MANY_NODES);
    CHECK_EQ_INT(err.status, 513);
    /* the caller's array bounds it too */
    gb_manscdp_init(&doc, nodes, 3);
    CHECK_EQ_INT(gb_manscdp_parse(KEEPALIVE, sizeof(KEEPALIVE) - 1, NULL, &doc, &err),
                 GB_MANSCDP_ERR_TOO_MANY_NODES);

    static const char deep[] = "<?xml version=\"1.0\"?><Notify><CmdType>Keepalive</CmdType>"
                               "<SN>1</SN><DeviceID>1</DeviceID><a><b><c/></b></a></Notify>";
    gb_manscdp_limits_default(&lim);
    lim.max_depth = 3;
    gb_manscdp_init(&doc, nodes, MAXN);
    CHECK_EQ_INT(gb_manscdp_parse(deep, sizeof(deep) - 1, &lim, &doc, &err),
                 GB_MANSCDP_ERR_TOO_DEEP);
    lim.max_depth = 4;
    CHECK_EQ_INT(gb_manscdp_parse(deep, sizeof(deep) - 1, &lim, &doc, &err), GB_MANSCDP_OK);
}

/* XML 1.0 §4.1: references and CDATA decode on demand, runs stay spans. */
static void test_decode_references(void)
{
    static const char b[] = "<?xml version=\"1.0\"?><Notify><CmdType>Keepalive</CmdType>"
                            "<SN>1</SN><DeviceID>1</DeviceID>"
                            "<Name>a&lt;b&#x4E2D;<![CDATA[<&>]]>&#65;</Name></Notify>";
    gb_manscdp_doc doc;
    CHECK_EQ_INT(PARSE(b, 0, &doc, NULL), GB_MANSCDP_OK);
    unsigned i = gb_manscdp_child(&doc, b, 0, "Name", 4, GB_MANSCDP_NONE);
    CHECK(doc.nodes[i].flags & GB_MANSCDP_NODE_ENCODED);
    char out[64];
    long n = gb_manscdp_decode(b, doc.nodes[i].text, 0, out, sizeof(out));
    CHECK_MEM(out, n, "a<b\xE4\xB8\xAD<&>A");
    CHECK_EQ_INT(gb_manscdp_decode(b, doc.nodes[i].text, 0, out, 3), -1);

    gb_manscdp_text_iter it;
    gb_span run;
    uint32_t cp, cps[8];
    unsigned runs = 0, ncp = 0;
    gb_manscdp_text_begin(&it, b, doc.nodes[i].text, 0);
    while (gb_manscdp_text_next(&it, &run, &cp)) {
        if (run.len)
            runs++;
        else if (ncp < 8)
            cps[ncp++] = cp;
    }
    CHECK_EQ_INT(runs, 3); /* "a", "b", "<&>" */
    CHECK_EQ_INT(ncp, 3);
    CHECK(cps[0] == '<' && cps[1] == 0x4E2D && cps[2] == 'A');
}

/* XML 1.0 §2.2: control bytes, and references to them, are refused. */
static void test_control_characters_refused(void)
{
    static const char b1[] = "<?xml version=\"1.0\"?><Notify><CmdType>Keepalive</CmdType>"
                             "<SN>1</SN><DeviceID>1\x01</DeviceID></Notify>";
    static const char b2[] = "<?xml version=\"1.0\"?><Notify><CmdType>Keepalive</CmdType>"
                             "<SN>1</SN><DeviceID>1&#0;</DeviceID></Notify>";
    gb_manscdp_doc doc;
    gb_manscdp_error err;
    CHECK_EQ_INT(PARSE(b1, 0, &doc, &err), GB_MANSCDP_ERR_CHARACTER);
    CHECK_EQ_INT(PARSE(b2, 0, &doc, &err), GB_MANSCDP_ERR_ENTITY);
}

/* TAG_CASE also lets lookups ignore case. */
static void test_tag_case_lookup(void)
{
    static const char b[] = "<?xml version=\"1.0\"?><RESPONSE><cmdtype>Catalog</cmdtype><sn>1</sn>"
                            "<deviceid>1</deviceid><devicelist num=\"1\"><item/></devicelist></RESPONSE>";
    gb_manscdp_doc doc;
    CHECK_EQ_INT(PARSE(b, 0, &doc, NULL), GB_MANSCDP_ERR_ROOT);
    CHECK_EQ_INT(PARSE(b, GB_MANSCDP_LENIENT_TAG_CASE, &doc, NULL), GB_MANSCDP_OK);
    CHECK_EQ_INT(doc.root, GB_MANSCDP_RESPONSE);
    CHECK(gb_manscdp_find(&doc, b, 0, "DeviceList/Item", 15, GB_MANSCDP_NONE) != GB_MANSCDP_NONE);
    gb_span v;
    CHECK(gb_manscdp_attr(&doc, b, 1 + 3, "Num", 3, &v));
}

/* ------------------------------------------------------------------ */
/* Writer                                                              */

/* The keepalive body of §9.6.1, byte for byte. */
static void test_writer_keepalive_bytes(void)
{
    char buf[512];
    gb_manscdp_writer w;
    gb_manscdp_w_init(&w, buf, sizeof(buf));
    gb_manscdp_w_begin(&w, GB_MANSCDP_CHARSET_GB2312, GB_MANSCDP_NOTIFY, GB_MANSCDP_CMD_KEEPALIVE,
                       (gb_manscdp_str){NULL, 0}, 43, GB_MANSCDP_STR("34020000001320000001"));
    gb_manscdp_w_field(&w, "Status", GB_MANSCDP_STR("OK"));
    size_t n = gb_manscdp_w_end(&w);
    CHECK_MEM(buf, n, KEEPALIVE);
}

/* Overflow is detected at every capacity and never writes past it. */
static void test_writer_overflow_every_cap(void)
{
    char ref[512];
    gb_manscdp_writer w;
    gb_manscdp_w_init(&w, ref, sizeof(ref));
    gb_manscdp_w_begin(&w, GB_MANSCDP_CHARSET_NONE, GB_MANSCDP_NOTIFY, GB_MANSCDP_CMD_KEEPALIVE,
                       (gb_manscdp_str){NULL, 0}, 43, GB_MANSCDP_STR("34020000001320000001"));
    gb_manscdp_w_field(&w, "Status", GB_MANSCDP_STR("<&>"));
    size_t full = gb_manscdp_w_end(&w);
    CHECK(full > 0);
    for (size_t cap = 0; cap < full; cap++) {
        char buf[512];
        memset(buf, 'Z', sizeof(buf));
        gb_manscdp_w_init(&w, buf, cap);
        gb_manscdp_w_begin(&w, GB_MANSCDP_CHARSET_NONE, GB_MANSCDP_NOTIFY,
                           GB_MANSCDP_CMD_KEEPALIVE, (gb_manscdp_str){NULL, 0}, 43,
                           GB_MANSCDP_STR("34020000001320000001"));
        gb_manscdp_w_field(&w, "Status", GB_MANSCDP_STR("<&>"));
        CHECK_EQ_INT(gb_manscdp_w_end(&w), 0);
        CHECK_EQ_INT(w.err, GB_MANSCDP_W_OVERFLOW);
        CHECK(buf[cap] == 'Z');
    }
}

/* Text is escaped so that it parses back to the same bytes; bytes XML
 * cannot carry are refused. */
static void test_writer_escapes_text(void)
{
    char buf[512], out[64];
    static const char text[] = "A&B <x> \"q\" 'a'\r\nline";
    gb_manscdp_writer w;
    gb_manscdp_w_init(&w, buf, sizeof(buf));
    gb_manscdp_w_begin(&w, GB_MANSCDP_CHARSET_UTF8, GB_MANSCDP_RESPONSE,
                       GB_MANSCDP_CMD_DEVICE_INFO, (gb_manscdp_str){NULL, 0}, 1,
                       GB_MANSCDP_STR("1"));
    gb_manscdp_w_open(&w, "Info", "Note", GB_MANSCDP_STR("a\"b"));
    gb_manscdp_w_field(&w, "DeviceName", (gb_manscdp_str){text, sizeof(text) - 1});
    size_t n = gb_manscdp_w_end(&w);
    CHECK(n > 0);
    gb_manscdp_doc doc;
    CHECK_EQ_INT(parse(buf, n, 0, &doc, NULL), GB_MANSCDP_OK);
    unsigned i = gb_manscdp_find(&doc, buf, 0, "Info/DeviceName", 15, GB_MANSCDP_NONE);
    long l = gb_manscdp_decode(buf, doc.nodes[i].text, 0, out, sizeof(out));
    CHECK(l == (long)sizeof(text) - 1 && !memcmp(out, text, (size_t)l));
    gb_span v;
    CHECK(gb_manscdp_attr(&doc, buf, gb_manscdp_find(&doc, buf, 0, "Info", 4, GB_MANSCDP_NONE),
                          "Note", 4, &v));
    l = gb_manscdp_decode(buf, v, 0, out, sizeof(out));
    CHECK_MEM(out, l, "a\"b");

    gb_manscdp_w_init(&w, buf, sizeof(buf));
    gb_manscdp_w_begin(&w, GB_MANSCDP_CHARSET_UTF8, GB_MANSCDP_RESPONSE,
                       GB_MANSCDP_CMD_DEVICE_INFO, (gb_manscdp_str){NULL, 0}, 1,
                       GB_MANSCDP_STR("1"));
    gb_manscdp_w_field(&w, "DeviceName", GB_MANSCDP_STR("a\x01"));
    CHECK_EQ_INT(gb_manscdp_w_end(&w), 0);
    CHECK_EQ_INT(w.err, GB_MANSCDP_W_INVALID);
    gb_manscdp_w_init(&w, buf, sizeof(buf));
    gb_manscdp_w_open(&w, "bad name", NULL, (gb_manscdp_str){NULL, 0});
    CHECK_EQ_INT(w.err, GB_MANSCDP_W_INVALID);
}

/* A.2.6.4: a 64-item Catalog part parses back with SumNum, Num and items. */
static void test_write_catalog_round_trip(void)
{
    static char buf[65536];
    char ids[64][21];
    gb_manscdp_catalog_item items[64];
    memset(items, 0, sizeof(items));
    for (int i = 0; i < 64; i++) {
        snprintf(ids[i], sizeof(ids[i]), "340200000013100%05d", i);
        items[i].device_id = (gb_manscdp_str){ids[i], 20};
        items[i].name = GB_MANSCDP_STR("\xB4\xF3\xC3\xC5"); /* 大门 in GB2312 */
        items[i].manufacturer = GB_MANSCDP_STR("gbsip");
        items[i].status = GB_MANSCDP_STR("ON");
        items[i].parental = GB_MANSCDP_STR("0");
        items[i].ptz_type = i % 2 ? GB_MANSCDP_STR("1") : (gb_manscdp_str){NULL, 0};
    }
    gb_manscdp_head h = {GB_MANSCDP_CHARSET_GB2312, 17430, GB_MANSCDP_STR("34020000001180000001")};
    gb_manscdp_writer w;
    gb_manscdp_w_init(&w, buf, sizeof(buf));
    size_t n = gb_manscdp_write_catalog(&w, &h, 200, items, 64);
    CHECK(n > 0);
    gb_manscdp_doc doc;
    CHECK_EQ_INT(parse(buf, n, 0, &doc, NULL), GB_MANSCDP_OK);
    CHECK_EQ_INT(doc.root, GB_MANSCDP_RESPONSE);
    CHECK_EQ_INT(doc.cmd, GB_MANSCDP_CMD_CATALOG);
    CHECK_EQ_INT(doc.sn, 17430);
    unsigned sum = gb_manscdp_child(&doc, buf, 0, "SumNum", 6, GB_MANSCDP_NONE);
    CHECK_MEM(buf + doc.nodes[sum].text.off, doc.nodes[sum].text.len, "200");
    unsigned k = 0, ptz = 0;
    for (unsigned i = gb_manscdp_find(&doc, buf, 0, "DeviceList/Item", 15, GB_MANSCDP_NONE);
         i != GB_MANSCDP_NONE; i = gb_manscdp_find(&doc, buf, 0, "DeviceList/Item", 15, i)) {
        unsigned id = gb_manscdp_child(&doc, buf, i, "DeviceID", 8, GB_MANSCDP_NONE);
        CHECK(id != GB_MANSCDP_NONE && k < 64 &&
              !memcmp(buf + doc.nodes[id].text.off, ids[k], 20));
        if (gb_manscdp_find(&doc, buf, i, "Info/PTZType", 12, GB_MANSCDP_NONE) != GB_MANSCDP_NONE)
            ptz++;
        k++;
    }
    CHECK_EQ_INT(k, 64);
    CHECK_EQ_INT(ptz, 32);
    gb_span num;
    CHECK(gb_manscdp_attr(&doc, buf, gb_manscdp_child(&doc, buf, 0, "DeviceList", 10, GB_MANSCDP_NONE),
                          "Num", 3, &num));
    CHECK_MEM(buf + num.off, num.len, "64");
}

/* The other answers of A.2.6 parse back to their CmdType and fields. */
static void test_write_standard_answers(void)
{
    char buf[4096];
    gb_manscdp_writer w;
    gb_manscdp_doc doc;
    gb_manscdp_head h = {GB_MANSCDP_CHARSET_NONE, 5, GB_MANSCDP_STR("34020000001320000001")};
    size_t n;

    gb_manscdp_device_info info = {GB_MANSCDP_STR("cam"), GB_MANSCDP_STR("OK"),
                                   GB_MANSCDP_STR("gbsip"), GB_MANSCDP_STR("sim"),
                                   GB_MANSCDP_STR("1.0"), 1};
    gb_manscdp_w_init(&w, buf, sizeof(buf));
    n = gb_manscdp_write_device_info(&w, &h, &info);
    CHECK_EQ_INT(parse(buf, n, 0, &doc, NULL), GB_MANSCDP_OK);
    CHECK_EQ_INT(doc.cmd, GB_MANSCDP_CMD_DEVICE_INFO);
    CHECK_EQ_INT(doc.charset, GB_MANSCDP_CHARSET_GB2312);
    CHECK(gb_manscdp_child(&doc, buf, 0, "Channel", 7, GB_MANSCDP_NONE) != GB_MANSCDP_NONE);

    gb_manscdp_alarm_status al = {GB_MANSCDP_STR("34020000001320000001"), GB_MANSCDP_STR("OFFDUTY")};
    gb_manscdp_device_status st = {GB_MANSCDP_STR("OK"), GB_MANSCDP_STR("ONLINE"),
                                   GB_MANSCDP_STR("OK"), {NULL, 0}, GB_MANSCDP_STR("ON"),
                                   GB_MANSCDP_STR("OFF"), GB_MANSCDP_STR("2024-03-01T12:00:00"),
                                   &al, 1};
    gb_manscdp_w_init(&w, buf, sizeof(buf));
    n = gb_manscdp_write_device_status(&w, &h, &st);
    CHECK_EQ_INT(parse(buf, n, 0, &doc, NULL), GB_MANSCDP_OK);
    CHECK_EQ_INT(doc.cmd, GB_MANSCDP_CMD_DEVICE_STATUS);
    CHECK(gb_manscdp_find(&doc, buf, 0, "Alarmstatus/Item/DutyStatus", 27, GB_MANSCDP_NONE) !=
          GB_MANSCDP_NONE);
    CHECK_EQ_INT(gb_manscdp_child(&doc, buf, 0, "Reason", 6, GB_MANSCDP_NONE), GB_MANSCDP_NONE);

    gb_manscdp_basic_param bp = {GB_MANSCDP_STR("OK"), GB_MANSCDP_STR("cam"),
                                 GB_MANSCDP_STR("3600"), GB_MANSCDP_STR("60"),
                                 GB_MANSCDP_STR("3")};
    gb_manscdp_w_init(&w, buf, sizeof(buf));
    n = gb_manscdp_write_basic_param(&w, &h, &bp);
    CHECK_EQ_INT(parse(buf, n, 0, &doc, NULL), GB_MANSCDP_OK);
    CHECK_EQ_INT(doc.cmd, GB_MANSCDP_CMD_CONFIG_DOWNLOAD);
    CHECK(gb_manscdp_find(&doc, buf, 0, "BasicParam/HeartBeatCount", 25, GB_MANSCDP_NONE) !=
          GB_MANSCDP_NONE);

    gb_manscdp_record_item rec = {GB_MANSCDP_STR("1"), GB_MANSCDP_STR("r"), GB_MANSCDP_STR("/a"),
                                  GB_MANSCDP_STR("x"), GB_MANSCDP_STR("2024-03-01T08:00:00"),
                                  GB_MANSCDP_STR("2024-03-01T09:00:00"), GB_MANSCDP_STR("0"),
                                  GB_MANSCDP_STR("time")};
    gb_manscdp_w_init(&w, buf, sizeof(buf));
    n = gb_manscdp_write_record_info(&w, &h, GB_MANSCDP_STR("cam"), 1, &rec, 1);
    CHECK_EQ_INT(parse(buf, n, 0, &doc, NULL), GB_MANSCDP_OK);
    CHECK_EQ_INT(doc.cmd, GB_MANSCDP_CMD_RECORD_INFO);
    CHECK(gb_manscdp_find(&doc, buf, 0, "RecordList/Item/EndTime", 23, GB_MANSCDP_NONE) !=
          GB_MANSCDP_NONE);

    gb_manscdp_preset ps[2] = {{GB_MANSCDP_STR("1"), GB_MANSCDP_STR("a")},
                               {GB_MANSCDP_STR("2"), GB_MANSCDP_STR("b")}};
    gb_manscdp_w_init(&w, buf, sizeof(buf));
    n = gb_manscdp_write_preset_list(&w, &h, ps, 2);
    CHECK_EQ_INT(parse(buf, n, 0, &doc, NULL), GB_MANSCDP_OK);
    CHECK_EQ_INT(doc.cmd, GB_MANSCDP_CMD_PRESET_QUERY);

    gb_manscdp_w_init(&w, buf, sizeof(buf));
    n = gb_manscdp_write_result(&w, &h, GB_MANSCDP_CMD_DEVICE_CONTROL, GB_MANSCDP_STR("OK"));
    CHECK_EQ_INT(parse(buf, n, 0, &doc, NULL), GB_MANSCDP_OK);
    CHECK_EQ_INT(doc.cmd, GB_MANSCDP_CMD_DEVICE_CONTROL);
    CHECK_EQ_INT(doc.root, GB_MANSCDP_RESPONSE);
}

int main(void)
{
    test_fixtures();
    test_keepalive_header_fields();
    test_tree_links();
    test_find_walks_list_items();
    test_declaration_required();
    test_error_position();
    test_unknown_cmd_type_keeps_document();
    test_sn_range();
    test_limits();
    test_decode_references();
    test_control_characters_refused();
    test_tag_case_lookup();
    test_writer_keepalive_bytes();
    test_writer_overflow_every_cap();
    test_writer_escapes_text();
    test_write_catalog_round_trip();
    test_write_standard_answers();
    return CHECK_DONE("test_manscdp");
}
