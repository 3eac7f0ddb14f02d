/*
 * manscdp.c - MANSCDP+xml reader and writer (see manscdp.h).
 *
 * The reader is one loop over the bytes with no recursion and no stack of
 * its own: the open elements are the chain of parent indices from the
 * current node, and the previous sibling is the last element closed.  Line
 * numbers are counted only when an error is reported.
 */
#include "manscdp.h"

#include "sip_fields.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif


/* ------------------------------------------------------------------ */
/* Names and tables                                                    */

static const char *const root_names[GB_MANSCDP_ROOT__COUNT] = {
    [GB_MANSCDP_ROOT_NONE] = "",
    [GB_MANSCDP_QUERY] = "Query",
    [GB_MANSCDP_CONTROL] = "Control",
    [GB_MANSCDP_NOTIFY] = "Notify",
    [GB_MANSCDP_RESPONSE] = "Response",
};

static const char *const cmd_names[GB_MANSCDP_CMD__COUNT] = {
    [GB_MANSCDP_CMD_OTHER] = "",
    [GB_MANSCDP_CMD_KEEPALIVE] = "Keepalive",
    [GB_MANSCDP_CMD_CATALOG] = "Catalog",
    [GB_MANSCDP_CMD_DEVICE_INFO] = "DeviceInfo",
    [GB_MANSCDP_CMD_DEVICE_STATUS] = "DeviceStatus",
    [GB_MANSCDP_CMD_RECORD_INFO] = "RecordInfo",
    [GB_MANSCDP_CMD_ALARM] = "Alarm",
    [GB_MANSCDP_CMD_CONFIG_DOWNLOAD] = "ConfigDownload",
    [GB_MANSCDP_CMD_PRESET_QUERY] = "PresetQuery",
    [GB_MANSCDP_CMD_MOBILE_POSITION] = "MobilePosition",
    [GB_MANSCDP_CMD_DEVICE_CONTROL] = "DeviceControl",
    [GB_MANSCDP_CMD_DEVICE_CONFIG] = "DeviceConfig",
    [GB_MANSCDP_CMD_MEDIA_STATUS] = "MediaStatus",
    [GB_MANSCDP_CMD_BROADCAST] = "Broadcast",
    [GB_MANSCDP_CMD_DEVICE_UPGRADE_RESULT] = "DeviceUpgradeResult",
    [GB_MANSCDP_CMD_HOME_POSITION_QUERY] = "HomePositionQuery",
    [GB_MANSCDP_CMD_CRUISE_TRACK_LIST_QUERY] = "CruiseTrackListQuery",
    [GB_MANSCDP_CMD_CRUISE_TRACK_QUERY] = "CruiseTrackQuery",
    [GB_MANSCDP_CMD_PTZ_POSITION] = "PTZPosition",
    [GB_MANSCDP_CMD_SD_CARD_STATUS] = "SDCardStatus",
    [GB_MANSCDP_CMD_UPLOAD_SNAPSHOT_FINISHED] = "UploadSnapShotFinished",
    [GB_MANSCDP_CMD_VIDEO_UPLOAD_NOTIFY] = "VideoUploadNotify",
};

static const char *const charset_names[GB_MANSCDP_CHARSET__COUNT] = {
    [GB_MANSCDP_CHARSET_NONE] = "",
    [GB_MANSCDP_CHARSET_GB2312] = "GB2312",
    [GB_MANSCDP_CHARSET_GB18030] = "GB18030",
    [GB_MANSCDP_CHARSET_GBK] = "GBK",
    [GB_MANSCDP_CHARSET_UTF8] = "UTF-8",
    [GB_MANSCDP_CHARSET_OTHER] = "",
};

static const struct {
    const char *name, *text;
    uint16_t status;
} errors[GB_MANSCDP_ERR__COUNT] = {
    [GB_MANSCDP_OK] = {"OK", "no error", 200},
    [GB_MANSCDP_ERR_EMPTY] = {"EMPTY", "empty body", 400},
    [GB_MANSCDP_ERR_TOO_LARGE] = {"TOO_LARGE", "body larger than max_body", 513},
    [GB_MANSCDP_ERR_TOO_MANY_NODES] = {"TOO_MANY_NODES", "more elements than max_nodes", 513},
    [GB_MANSCDP_ERR_TOO_DEEP] = {"TOO_DEEP", "elements nested deeper than max_depth", 513},
    [GB_MANSCDP_ERR_DECLARATION] = {"DECLARATION", "missing or malformed XML declaration", 400},
    [GB_MANSCDP_ERR_DOCTYPE] = {"DOCTYPE", "DOCTYPE is not accepted", 400},
    [GB_MANSCDP_ERR_SYNTAX] = {"SYNTAX", "malformed markup", 400},
    [GB_MANSCDP_ERR_NAME] = {"NAME", "malformed name", 400},
    [GB_MANSCDP_ERR_ATTRIBUTE] = {"ATTRIBUTE", "malformed attribute", 400},
    [GB_MANSCDP_ERR_TAG_MISMATCH] = {"TAG_MISMATCH", "end tag does not match the open element", 400},
    [GB_MANSCDP_ERR_UNCLOSED] = {"UNCLOSED", "body ends inside the document", 400},
    [GB_MANSCDP_ERR_ENTITY] = {"ENTITY", "malformed or unknown reference", 400},
    [GB_MANSCDP_ERR_CHARACTER] = {"CHARACTER", "control character not allowed in XML", 400},
    [GB_MANSCDP_ERR_TRAILING] = {"TRAILING", "content after the root element", 400},
    [GB_MANSCDP_ERR_ROOT] = {"ROOT", "root element is not Query, Control, Notify or Response", 400},
    [GB_MANSCDP_ERR_MISSING_CMD_TYPE] = {"MISSING_CMD_TYPE", "no CmdType", 400},
    [GB_MANSCDP_ERR_MISSING_SN] = {"MISSING_SN", "no SN", 400},
    [GB_MANSCDP_ERR_SN] = {"SN", "SN is not a decimal number below 2^64", 400},
    [GB_MANSCDP_ERR_MISSING_DEVICE_ID] = {"MISSING_DEVICE_ID", "no DeviceID", 400},
    [GB_MANSCDP_ERR_DUPLICATE_FIELD] = {"DUPLICATE_FIELD", "CmdType, SN or DeviceID given twice", 400},
    [GB_MANSCDP_ERR_UNKNOWN_CMD_TYPE] = {"UNKNOWN_CMD_TYPE", "CmdType not implemented", 501},
};

const char *gb_manscdp_root_name(gb_manscdp_root root)
{
    return (unsigned)root < GB_MANSCDP_ROOT__COUNT ? root_names[root] : "";
}

const char *gb_manscdp_cmd_name(gb_manscdp_cmd cmd)
{
    return (unsigned)cmd < GB_MANSCDP_CMD__COUNT ? cmd_names[cmd] : "";
}

const char *gb_manscdp_charset_name(gb_manscdp_charset cs)
{
    return (unsigned)cs < GB_MANSCDP_CHARSET__COUNT ? charset_names[cs] : "";
}

uint16_t gb_manscdp_error_status(gb_manscdp_error_code code)
{
    return (unsigned)code < GB_MANSCDP_ERR__COUNT ? errors[code].status : 400;
}

const char *gb_manscdp_error_text(gb_manscdp_error_code code)
{
    return (unsigned)code < GB_MANSCDP_ERR__COUNT ? errors[code].text : "unknown error";
}

const char *gb_manscdp_error_name(gb_manscdp_error_code code)
{
    return (unsigned)code < GB_MANSCDP_ERR__COUNT ? errors[code].name : "UNKNOWN";
}

/* Byte compare for names of a few bytes, where a call to memcmp costs
 * more than the compare. */
static inline int same_bytes(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static inline int name_eq(const char *a, size_t alen, const char *b, size_t blen, int any_case)
{
    if (any_case)
        return gb_ieq(a, alen, b, blen);
    return alen == blen && same_bytes(a, b, alen);
}

gb_manscdp_cmd gb_manscdp_cmd_lookup(const char *p, size_t n, int any_case)
{
    /* CmdType values are matched exactly as Annex A spells them; the
     * TAG_CASE leniency extends to them because the same devices do both. */
    for (unsigned i = 1; i < GB_MANSCDP_CMD__COUNT; i++)
        if (name_eq(p, n, cmd_names[i], strlen(cmd_names[i]), any_case))
            return (gb_manscdp_cmd)i;
    return GB_MANSCDP_CMD_OTHER;
}

gb_manscdp_charset gb_manscdp_charset_lookup(const char *p, size_t n)
{
    if (n == 0)
        return GB_MANSCDP_CHARSET_NONE;
    for (unsigned i = GB_MANSCDP_CHARSET_GB2312; i <= GB_MANSCDP_CHARSET_UTF8; i++)
        if (gb_ieq(p, n, charset_names[i], strlen(charset_names[i])))
            return (gb_manscdp_charset)i;
    if (gb_ieq(p, n, "UTF8", 4))
        return GB_MANSCDP_CHARSET_UTF8;
    return GB_MANSCDP_CHARSET_OTHER;
}

void gb_manscdp_limits_default(gb_manscdp_limits *lim)
{
    lim->max_body = GB_MANSCDP_DEFAULT_MAX_BODY;
    lim->max_nodes = GB_MANSCDP_DEFAULT_MAX_NODES;
    lim->max_depth = GB_MANSCDP_DEFAULT_MAX_DEPTH;
    lim->lenient = 0;
}

void gb_manscdp_init(gb_manscdp_doc *doc, gb_manscdp_node *nodes, uint32_t max_nodes)
{
    memset(doc, 0, sizeof(*doc));
    doc->nodes = nodes;
    doc->max_nodes = max_nodes;
}

/* Bytes that end a run of plain text: '<', '&' and control bytes (tab, CR
 * and LF among them are checked again and let through). */
static const uint8_t text_stop[256] = {
    [0] = 1, [1] = 1, [2] = 1, [3] = 1, [4] = 1, [5] = 1, [6] = 1, [7] = 1,
    [8] = 1, [9] = 1, [10] = 1, [11] = 1, [12] = 1, [13] = 1, [14] = 1,
    [15] = 1, [16] = 1, [17] = 1, [18] = 1, [19] = 1, [20] = 1, [21] = 1,
    [22] = 1, [23] = 1, [24] = 1, [25] = 1, [26] = 1, [27] = 1, [28] = 1,
    [29] = 1, [30] = 1, [31] = 1, ['&'] = 1, ['<'] = 1,
};

/* End of a plain text run from pos: the first '<', '&' or control byte,
 * or n (whitespace is skipped first, and is not a stop).  Sixteen bytes a
 * step where SSE2 is there: most values end within the first step. */
static inline uint32_t text_run_end(const char *b, uint32_t pos, uint32_t n)
{
    /* between tags there is usually only a line end, then '<' */
    while (pos < n && (b[pos] == '\r' || b[pos] == '\n' || b[pos] == ' ' || b[pos] == '\t'))
        pos++;
    if (pos >= n || text_stop[(unsigned char)b[pos]])
        return pos;
#if defined(__SSE2__)
    const __m128i lt = _mm_set1_epi8('<'), amp = _mm_set1_epi8('&');
    const __m128i limit = _mm_set1_epi8(0x1f);
    while (n - pos >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + pos));
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, lt), _mm_cmpeq_epi8(v, amp)),
                                   _mm_cmpeq_epi8(_mm_min_epu8(v, limit), v));
        unsigned mask = (unsigned)_mm_movemask_epi8(hit);
        if (mask)
            return pos + (uint32_t)__builtin_ctz(mask);
        pos += 16;
    }
#endif
    while (pos < n && !text_stop[(unsigned char)b[pos]])
        pos++;
    return pos;
}

static inline int is_ws(unsigned c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* XML Name characters, restricted to ASCII plus any byte >= 0x80
 * (non-ASCII names are legal XML; their exact code-point classes do not
 * matter here): 1 may start a name, 2 may continue one. */
#define NS 3 /* start (and continue) */
#define NC 2 /* continue only */
static const uint8_t name_class[256] = {
    ['-'] = NC, ['.'] = NC, ['0'] = NC, ['1'] = NC, ['2'] = NC, ['3'] = NC, ['4'] = NC,
    ['5'] = NC, ['6'] = NC, ['7'] = NC, ['8'] = NC, ['9'] = NC, [':'] = NS, ['_'] = NS,
    ['A'] = NS, ['B'] = NS, ['C'] = NS, ['D'] = NS, ['E'] = NS, ['F'] = NS, ['G'] = NS,
    ['H'] = NS, ['I'] = NS, ['J'] = NS, ['K'] = NS, ['L'] = NS, ['M'] = NS, ['N'] = NS,
    ['O'] = NS, ['P'] = NS, ['Q'] = NS, ['R'] = NS, ['S'] = NS, ['T'] = NS, ['U'] = NS,
    ['V'] = NS, ['W'] = NS, ['X'] = NS, ['Y'] = NS, ['Z'] = NS,
    ['a'] = NS, ['b'] = NS, ['c'] = NS, ['d'] = NS, ['e'] = NS, ['f'] = NS, ['g'] = NS,
    ['h'] = NS, ['i'] = NS, ['j'] = NS, ['k'] = NS, ['l'] = NS, ['m'] = NS, ['n'] = NS,
    ['o'] = NS, ['p'] = NS, ['q'] = NS, ['r'] = NS, ['s'] = NS, ['t'] = NS, ['u'] = NS,
    ['v'] = NS, ['w'] = NS, ['x'] = NS, ['y'] = NS, ['z'] = NS,
    /* 0x80..0xFF: filled in below by range */
#define R8(b) [b] = NS, [b + 1] = NS, [b + 2] = NS, [b + 3] = NS, [b + 4] = NS, \
              [b + 5] = NS, [b + 6] = NS, [b + 7] = NS
    R8(0x80), R8(0x88), R8(0x90), R8(0x98), R8(0xA0), R8(0xA8), R8(0xB0), R8(0xB8),
    R8(0xC0), R8(0xC8), R8(0xD0), R8(0xD8), R8(0xE0), R8(0xE8), R8(0xF0), R8(0xF8),
#undef R8
};

static inline int name_start(unsigned c)
{
    return name_class[c & 0xFF] == NS;
}

static inline int name_char(unsigned c)
{
    return name_class[c & 0xFF] != 0;
}

/* A valid XML 1.0 Char for a numeric reference. */
static int xml_char(uint32_t cp)
{
    return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
           (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

/* A reference at b[pos] == '&' within [pos, end): its length and character,
 * or 0 when it is not a valid one. */
static uint32_t ref_at(const char *b, uint32_t pos, uint32_t end, uint32_t *cp)
{
    uint32_t i = pos + 1;
    if (i < end && b[i] == '#') {
        int hex = 0;
        uint32_t v = 0, digits = 0;
        i++;
        if (i < end && b[i] == 'x') {
            hex = 1;
            i++;
        }
        for (; i < end; i++, digits++) {
            unsigned c = (unsigned char)b[i], d;
            if (c - '0' < 10u)
                d = c - '0';
            else if (hex && (c | 0x20) - 'a' < 6u)
                d = (c | 0x20) - 'a' + 10;
            else
                break;
            v = v * (hex ? 16 : 10) + d;
            if (v > 0x10FFFF)
                return 0;
        }
        if (!digits || i >= end || b[i] != ';' || !xml_char(v))
            return 0;
        *cp = v;
        return i + 1 - pos;
    }
    static const struct {
        char name[5];
        uint8_t len;
        char ch;
    } named[] = {{"lt", 2, '<'}, {"gt", 2, '>'}, {"amp", 3, '&'},
                 {"quot", 4, '"'}, {"apos", 4, '\''}};
    for (unsigned k = 0; k < sizeof(named) / sizeof(named[0]); k++) {
        uint32_t l = named[k].len;
        if (end - i > l && memcmp(b + i, named[k].name, l) == 0 && b[i + l] == ';') {
            *cp = (unsigned char)named[k].ch;
            return l + 2;
        }
    }
    return 0;
}

/* First occurrence of the 2- or 3-byte pattern in b[from, end), or end. */
static uint32_t find_seq(const char *b, uint32_t from, uint32_t end,
                         const char *pat, uint32_t plen)
{
    while (from < end && end - from >= plen) {
        const char *q = memchr(b + from, pat[0], end - from - plen + 1);
        if (!q)
            return end;
        uint32_t at = (uint32_t)(q - b);
        if (memcmp(q, pat, plen) == 0)
            return at;
        from = at + 1;
    }
    return end;
}

static int starts(const char *b, uint32_t pos, uint32_t n, const char *lit, uint32_t l)
{
    return n - pos >= l && memcmp(b + pos, lit, l) == 0;
}

/* ------------------------------------------------------------------ */
/* Reader                                                              */

typedef struct {
    const char *b;
    uint32_t n;
    uint32_t pos;
    uint32_t lenient;
    uint32_t max_nodes;
    uint32_t max_depth;
    gb_manscdp_doc *doc;
    gb_manscdp_error *err;
} parser;

static gb_manscdp_error_code fail(parser *p, gb_manscdp_error_code code, uint32_t off,
                                  const char *reason)
{
    if (p->err) {
        uint32_t line = 1;
        if (off > p->n)
            off = p->n;
        for (const char *q = p->b, *e = p->b + off;
             (q = memchr(q, '\n', (size_t)(e - q))) != NULL; q++)
            line++;
        p->err->code = code;
        p->err->status = gb_manscdp_error_status(code);
        p->err->line = line;
        p->err->offset = off;
        p->err->reason = reason ? reason : gb_manscdp_error_text(code);
    }
    return code;
}

static inline void skip_ws(parser *p)
{
    while (p->pos < p->n && is_ws((unsigned char)p->b[p->pos]))
        p->pos++;
}

/* A Name at pos; its length (0 when none). */
static inline uint32_t scan_name(parser *p, uint32_t pos)
{
    uint32_t i = pos;
    if (i >= p->n || !name_start((unsigned char)p->b[i]))
        return 0;
    for (i++; i < p->n && name_char((unsigned char)p->b[i]); i++)
        ;
    return i - pos;
}

/* A quoted attribute value at p->pos (the quote); moves past the closing
 * quote and returns the value's span through *v. */
static gb_manscdp_error_code scan_value(parser *p, gb_span *v, int *encoded)
{
    const char *b = p->b;
    if (p->pos >= p->n)
        return fail(p, GB_MANSCDP_ERR_UNCLOSED, p->pos, "body ends inside a tag");
    char q = b[p->pos];
    if (q != '"' && q != '\'')
        return fail(p, GB_MANSCDP_ERR_ATTRIBUTE, p->pos, "attribute value not quoted");
    uint32_t i = ++p->pos;
    for (; i < p->n; i++) {
        unsigned c = (unsigned char)b[i];
        if (c == (unsigned char)q)
            break;
        if (c == '<')
            return fail(p, GB_MANSCDP_ERR_ATTRIBUTE, i, "'<' in an attribute value");
        if (c == '&') {
            uint32_t cp, l = ref_at(b, i, p->n, &cp);
            *encoded = 1;
            if (l)
                i += l - 1;
            else if (!(p->lenient & GB_MANSCDP_LENIENT_BARE_AMPERSAND))
                return fail(p, GB_MANSCDP_ERR_ENTITY, i, NULL);
        } else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            return fail(p, GB_MANSCDP_ERR_CHARACTER, i, NULL);
        }
    }
    if (i >= p->n)
        return fail(p, GB_MANSCDP_ERR_UNCLOSED, p->pos, "body ends inside an attribute value");
    v->off = p->pos;
    v->len = i - p->pos;
    p->pos = i + 1;
    return GB_MANSCDP_OK;
}

/* <?xml version="1.0" encoding="..." standalone="..."?> at p->pos. */
static gb_manscdp_error_code parse_declaration(parser *p)
{
    uint32_t start = p->pos;
    p->pos += 5;
    int seen = 0; /* 1 version, 2 encoding, 3 standalone: in that order */
    for (;;) {
        uint32_t before = p->pos;
        skip_ws(p);
        if (p->pos >= p->n)
            return fail(p, GB_MANSCDP_ERR_DECLARATION, start, "unterminated XML declaration");
        if (p->b[p->pos] == '?') {
            if (p->pos + 1 >= p->n || p->b[p->pos + 1] != '>')
                return fail(p, GB_MANSCDP_ERR_DECLARATION, p->pos, NULL);
            p->pos += 2;
            break;
        }
        if (before == p->pos)
            return fail(p, GB_MANSCDP_ERR_DECLARATION, p->pos, "no space before a pseudo-attribute");
        uint32_t nstart = p->pos, nlen = scan_name(p, p->pos);
        p->pos += nlen;
        skip_ws(p);
        if (p->pos >= p->n || p->b[p->pos] != '=')
            return fail(p, GB_MANSCDP_ERR_DECLARATION, p->pos, "malformed XML declaration");
        p->pos++;
        skip_ws(p);
        gb_span v;
        int enc = 0;
        gb_manscdp_error_code rc = scan_value(p, &v, &enc);
        if (rc) {
            if (rc != GB_MANSCDP_ERR_UNCLOSED)
                return fail(p, GB_MANSCDP_ERR_DECLARATION, nstart, NULL);
            return fail(p, GB_MANSCDP_ERR_DECLARATION, start, "unterminated XML declaration");
        }
        const char *name = p->b + nstart;
        if (nlen == 7 && memcmp(name, "version", 7) == 0 && seen == 0) {
            if (v.len < 3 || memcmp(p->b + v.off, "1.", 2) != 0)
                return fail(p, GB_MANSCDP_ERR_DECLARATION, v.off, "XML version is not 1.x");
            seen = 1;
        } else if (nlen == 8 && memcmp(name, "encoding", 8) == 0 && seen == 1) {
            if (v.len == 0 || enc)
                return fail(p, GB_MANSCDP_ERR_DECLARATION, v.off, "malformed encoding name");
            p->doc->encoding = v;
            seen = 2;
        } else if (nlen == 10 && memcmp(name, "standalone", 10) == 0 && seen >= 1 && seen < 3) {
            seen = 3;
        } else {
            return fail(p, GB_MANSCDP_ERR_DECLARATION, nstart,
                        "unexpected pseudo-attribute in the XML declaration");
        }
    }
    if (!seen)
        return fail(p, GB_MANSCDP_ERR_DECLARATION, start, "XML declaration without version");
    p->doc->has_declaration = 1;
    p->doc->charset = (uint8_t)gb_manscdp_charset_lookup(p->b + p->doc->encoding.off,
                                                         p->doc->encoding.len);
    return GB_MANSCDP_OK;
}

/* Comments, processing instructions and whitespace outside the root
 * element.  Stops at anything else. */
static gb_manscdp_error_code skip_misc(parser *p, int *doctype_seen)
{
    for (;;) {
        skip_ws(p);
        if (p->pos + 1 >= p->n || p->b[p->pos] != '<')
            return GB_MANSCDP_OK;
        const char *b = p->b;
        uint32_t at = p->pos;
        if (b[at + 1] == '?') {
            uint32_t e = find_seq(b, at + 2, p->n, "?>", 2);
            if (e == p->n)
                return fail(p, GB_MANSCDP_ERR_UNCLOSED, at, "unterminated processing instruction");
            p->pos = e + 2;
        } else if (starts(b, at, p->n, "<!--", 4)) {
            uint32_t e = find_seq(b, at + 4, p->n, "-->", 3);
            if (e == p->n)
                return fail(p, GB_MANSCDP_ERR_UNCLOSED, at, "unterminated comment");
            p->pos = e + 3;
        } else if (b[at + 1] == '!') {
            if (doctype_seen && starts(b, at, p->n, "<!DOCTYPE", 9))
                return fail(p, GB_MANSCDP_ERR_DOCTYPE, at, NULL);
            return fail(p, GB_MANSCDP_ERR_SYNTAX, at, "unexpected markup outside the root element");
        } else {
            return GB_MANSCDP_OK;
        }
    }
}

/* The root element and everything in it, from p->pos at its '<'. */
static gb_manscdp_error_code parse_elements(parser *p)
{
    const char *b = p->b;
    const uint32_t n = p->n;
    gb_manscdp_doc *doc = p->doc;
    gb_manscdp_node *nodes = doc->nodes;
    const int any_case = (p->lenient & GB_MANSCDP_LENIENT_TAG_CASE) != 0;
    const int bare_amp = (p->lenient & GB_MANSCDP_LENIENT_BARE_AMPERSAND) != 0;
    uint32_t cur = GB_MANSCDP_NONE, prev = GB_MANSCDP_NONE;
    uint32_t content = 0, depth = 0;
    uint32_t pos = p->pos;

    for (;;) {
        /* here b[pos] == '<' */
        uint32_t lt = pos;
        if (pos + 1 >= n)
            return fail(p, GB_MANSCDP_ERR_UNCLOSED, lt, "body ends inside a tag");
        unsigned c = (unsigned char)b[pos + 1];
        if (c == '/') {
            if (cur == GB_MANSCDP_NONE)
                return fail(p, GB_MANSCDP_ERR_SYNTAX, lt, "end tag before the root element");
            gb_manscdp_node *nd = &nodes[cur];
            uint32_t nlen = nd->name.len;
            /* the usual case: exactly the open element's name, compared in
             * place; otherwise scan the name to say what is wrong */
            if (!(n - (pos + 2) > nlen && same_bytes(b + pos + 2, b + nd->name.off, nlen) &&
                  !name_char((unsigned char)b[pos + 2 + nlen]))) {
                nlen = scan_name(p, pos + 2);
                if (!nlen)
                    return fail(p, pos + 2 >= n ? GB_MANSCDP_ERR_UNCLOSED : GB_MANSCDP_ERR_NAME,
                                pos + 2, "malformed end tag");
                if (!name_eq(b + pos + 2, nlen, b + nd->name.off, nd->name.len, any_case))
                    return fail(p, GB_MANSCDP_ERR_TAG_MISMATCH, lt, NULL);
            }
            p->pos = pos + 2 + nlen;
            skip_ws(p);
            if (p->pos >= n)
                return fail(p, GB_MANSCDP_ERR_UNCLOSED, lt, "body ends inside an end tag");
            if (b[p->pos] != '>')
                return fail(p, GB_MANSCDP_ERR_SYNTAX, p->pos, "malformed end tag");
            pos = p->pos + 1;
            if (!(nd->flags & GB_MANSCDP_NODE_PARENT)) {
                uint32_t s = content, e = lt;
                while (s < e && is_ws((unsigned char)b[s]))
                    s++;
                while (e > s && is_ws((unsigned char)b[e - 1]))
                    e--;
                nd->text.off = s;
                nd->text.len = e - s;
            }
            prev = cur;
            cur = nd->parent;
            depth--;
            if (cur == GB_MANSCDP_NONE)
                break;
        } else if (c == '?') {
            uint32_t e = find_seq(b, pos + 2, n, "?>", 2);
            if (e == n)
                return fail(p, GB_MANSCDP_ERR_UNCLOSED, lt, "unterminated processing instruction");
            nodes[cur].flags |= GB_MANSCDP_NODE_ENCODED;
            pos = e + 2;
        } else if (c == '!') {
            if (starts(b, pos, n, "<!--", 4)) {
                uint32_t e = find_seq(b, pos + 4, n, "-->", 3);
                if (e == n)
                    return fail(p, GB_MANSCDP_ERR_UNCLOSED, lt, "unterminated comment");
                pos = e + 3;
            } else if (starts(b, pos, n, "<![CDATA[", 9)) {
                uint32_t e = find_seq(b, pos + 9, n, "]]>", 3);
                if (e == n)
                    return fail(p, GB_MANSCDP_ERR_UNCLOSED, lt, "unterminated CDATA section");
                for (uint32_t i = pos + 9; i < e; i++) {
                    unsigned d = (unsigned char)b[i];
                    if (d < 0x20 && d != '\t' && d != '\n' && d != '\r')
                        return fail(p, GB_MANSCDP_ERR_CHARACTER, i, NULL);
                }
                pos = e + 3;
            } else {
                return fail(p, n - pos < 9 ? GB_MANSCDP_ERR_UNCLOSED : GB_MANSCDP_ERR_SYNTAX,
                            lt, "unexpected markup in an element");
            }
            nodes[cur].flags |= GB_MANSCDP_NODE_ENCODED;
        } else {
            /* start tag */
            uint32_t nlen = scan_name(p, pos + 1);
            if (!nlen)
                return fail(p, GB_MANSCDP_ERR_NAME, pos + 1, "malformed element name");
            p->pos = pos + 1 + nlen;
            uint32_t astart = p->pos, aend = p->pos;
            int self_close = 0, aenc = 0;
            for (;;) {
                uint32_t before = p->pos;
                skip_ws(p);
                if (p->pos >= n)
                    return fail(p, GB_MANSCDP_ERR_UNCLOSED, lt, "body ends inside a tag");
                unsigned d = (unsigned char)b[p->pos];
                if (d == '>') {
                    p->pos++;
                    break;
                }
                if (d == '/') {
                    if (p->pos + 1 >= n)
                        return fail(p, GB_MANSCDP_ERR_UNCLOSED, lt, "body ends inside a tag");
                    if (b[p->pos + 1] != '>')
                        return fail(p, GB_MANSCDP_ERR_SYNTAX, p->pos, "'/' not followed by '>'");
                    p->pos += 2;
                    self_close = 1;
                    break;
                }
                if (before == p->pos)
                    return fail(p, GB_MANSCDP_ERR_ATTRIBUTE, p->pos, "no space before an attribute");
                uint32_t alen = scan_name(p, p->pos);
                if (!alen)
                    return fail(p, GB_MANSCDP_ERR_NAME, p->pos, "malformed attribute name");
                p->pos += alen;
                skip_ws(p);
                if (p->pos >= n)
                    return fail(p, GB_MANSCDP_ERR_UNCLOSED, lt, "body ends inside a tag");
                if (b[p->pos] != '=')
                    return fail(p, GB_MANSCDP_ERR_ATTRIBUTE, p->pos, "attribute without '='");
                p->pos++;
                skip_ws(p);
                gb_span v;
                gb_manscdp_error_code rc = scan_value(p, &v, &aenc);
                if (rc)
                    return rc;
                aend = p->pos;
            }
            if (doc->nnodes >= p->max_nodes)
                return fail(p, GB_MANSCDP_ERR_TOO_MANY_NODES, lt, NULL);
            if (depth + 1 > p->max_depth)
                return fail(p, GB_MANSCDP_ERR_TOO_DEEP, lt, NULL);
            uint32_t idx = doc->nnodes++;
            gb_manscdp_node *nd = &nodes[idx];
            nd->name.off = pos + 1;
            nd->name.len = nlen;
            while (astart < aend && is_ws((unsigned char)b[astart]))
                astart++;
            nd->attrs.off = astart;
            nd->attrs.len = aend - astart;
            nd->text.off = p->pos;
            nd->text.len = 0;
            nd->parent = (uint16_t)cur;
            nd->first_child = GB_MANSCDP_NONE;
            nd->next_sibling = GB_MANSCDP_NONE;
            nd->depth = (uint8_t)(depth + 1);
            nd->flags = 0;
            if (cur != GB_MANSCDP_NONE) {
                nodes[cur].flags |= GB_MANSCDP_NODE_PARENT;
                if (prev == GB_MANSCDP_NONE)
                    nodes[cur].first_child = (uint16_t)idx;
                else
                    nodes[prev].next_sibling = (uint16_t)idx;
            }
            pos = p->pos;
            if (self_close) {
                prev = idx;
                if (cur == GB_MANSCDP_NONE)
                    break; /* <Notify/>: the whole document */
            } else {
                cur = idx;
                prev = GB_MANSCDP_NONE;
                depth++;
                content = pos;
            }
        }

        /* text up to the next '<' */
        for (;;) {
            pos = text_run_end(b, pos, n);
            if (pos >= n)
                return fail(p, GB_MANSCDP_ERR_UNCLOSED, pos, NULL);
            unsigned d = (unsigned char)b[pos];
            if (d == '<')
                break;
            if (d == '&') {
                uint32_t cp, l = ref_at(b, pos, n, &cp);
                nodes[cur].flags |= GB_MANSCDP_NODE_ENCODED;
                if (l)
                    pos += l;
                else if (bare_amp)
                    pos++;
                else
                    return fail(p, GB_MANSCDP_ERR_ENTITY, pos, NULL);
            } else if (d == '\t' || d == '\n' || d == '\r') {
                pos++;
            } else {
                return fail(p, GB_MANSCDP_ERR_CHARACTER, pos, NULL);
            }
        }
    }
    p->pos = pos;
    return GB_MANSCDP_OK;
}

/* Root kind, CmdType, SN and DeviceID: direct children of the root. */
static gb_manscdp_error_code header_fields(parser *p)
{
    gb_manscdp_doc *doc = p->doc;
    const char *b = p->b;
    const gb_manscdp_node *root = &doc->nodes[0];
    const int any_case = (p->lenient & GB_MANSCDP_LENIENT_TAG_CASE) != 0;
    for (unsigned r = GB_MANSCDP_QUERY; r < GB_MANSCDP_ROOT__COUNT; r++)
        if (name_eq(b + root->name.off, root->name.len, root_names[r],
                    strlen(root_names[r]), any_case))
            doc->root = (uint8_t)r;
    if (!doc->root)
        return fail(p, GB_MANSCDP_ERR_ROOT, root->name.off - 1, NULL);

    uint16_t *slot[3] = {&doc->cmd_node, &doc->sn_node, &doc->device_id_node};
    static const char *const want[3] = {"CmdType", "SN", "DeviceID"};
    static const uint8_t want_len[3] = {7, 2, 8};
    for (unsigned i = root->first_child; i != GB_MANSCDP_NONE; i = doc->nodes[i].next_sibling) {
        const gb_manscdp_node *nd = &doc->nodes[i];
        for (unsigned k = 0; k < 3; k++) {
            if (!name_eq(b + nd->name.off, nd->name.len, want[k], want_len[k], any_case))
                continue;
            if (*slot[k] != GB_MANSCDP_NONE)
                return fail(p, GB_MANSCDP_ERR_DUPLICATE_FIELD, nd->name.off - 1, NULL);
            *slot[k] = (uint16_t)i;
        }
    }
    uint32_t at_end = root->name.off - 1;
    if (doc->cmd_node == GB_MANSCDP_NONE || doc->nodes[doc->cmd_node].text.len == 0)
        return fail(p, GB_MANSCDP_ERR_MISSING_CMD_TYPE,
                    doc->cmd_node == GB_MANSCDP_NONE ? at_end
                                                     : doc->nodes[doc->cmd_node].name.off - 1,
                    NULL);
    doc->cmd_type = doc->nodes[doc->cmd_node].text;
    if (doc->sn_node == GB_MANSCDP_NONE)
        return fail(p, GB_MANSCDP_ERR_MISSING_SN, at_end, NULL);
    const gb_manscdp_node *sn = &doc->nodes[doc->sn_node];
    if (gb_parse_uint(b + sn->text.off, sn->text.len, UINT64_MAX, &doc->sn) < 0)
        return fail(p, GB_MANSCDP_ERR_SN, sn->text.off, NULL);
    if (doc->device_id_node == GB_MANSCDP_NONE ||
        doc->nodes[doc->device_id_node].text.len == 0)
        return fail(p, GB_MANSCDP_ERR_MISSING_DEVICE_ID,
                    doc->device_id_node == GB_MANSCDP_NONE
                        ? at_end : doc->nodes[doc->device_id_node].name.off - 1,
                    NULL);
    doc->device_id = doc->nodes[doc->device_id_node].text;
    doc->cmd = (uint16_t)gb_manscdp_cmd_lookup(b + doc->cmd_type.off, doc->cmd_type.len,
                                               any_case);
    if (doc->cmd == GB_MANSCDP_CMD_OTHER)
        return fail(p, GB_MANSCDP_ERR_UNKNOWN_CMD_TYPE, doc->cmd_type.off, NULL);
    return GB_MANSCDP_OK;
}

gb_manscdp_error_code gb_manscdp_parse(const char *buf, size_t len,
                                       const gb_manscdp_limits *lim,
                                       gb_manscdp_doc *doc, gb_manscdp_error *err)
{
    gb_manscdp_limits def;
    if (!lim) {
        gb_manscdp_limits_default(&def);
        lim = &def;
    }
    gb_manscdp_node *nodes = doc->nodes;
    uint32_t cap = doc->max_nodes;
    gb_manscdp_init(doc, nodes, cap);
    doc->cmd_node = doc->sn_node = doc->device_id_node = GB_MANSCDP_NONE;
    doc->lenient = lim->lenient;

    parser p = {.b = buf, .n = 0, .pos = 0, .lenient = lim->lenient, .doc = doc, .err = err};
    p.max_nodes = lim->max_nodes < cap ? lim->max_nodes : cap;
    if (p.max_nodes > 0xFFFF)
        p.max_nodes = 0xFFFF; /* GB_MANSCDP_NONE is 0xFFFF */
    p.max_depth = lim->max_depth > 255 ? 255 : lim->max_depth;
    if (len > lim->max_body)
        return fail(&p, GB_MANSCDP_ERR_TOO_LARGE, 0, NULL);
    p.n = (uint32_t)len;
    if (err)
        memset(err, 0, sizeof(*err));

    const int padding = (p.lenient & GB_MANSCDP_LENIENT_PADDING) != 0;
    if (padding) {
        if (starts(buf, 0, p.n, "\xEF\xBB\xBF", 3))
            p.pos = 3;
        skip_ws(&p);
        if (p.pos < p.n && buf[p.pos] == '\0') {
            while (p.pos < p.n && (buf[p.pos] == '\0' || is_ws((unsigned char)buf[p.pos])))
                p.pos++;
            if (p.pos == p.n)
                return fail(&p, GB_MANSCDP_ERR_EMPTY, 0, NULL);
        }
    }
    if (p.pos >= p.n)
        return fail(&p, GB_MANSCDP_ERR_EMPTY, 0, NULL);
    /* "<?xml" then space or "?": the declaration; "<?xml-stylesheet" is a PI */
    if (starts(buf, p.pos, p.n, "<?xml", 5) &&
        (p.n - p.pos == 5 || is_ws((unsigned char)buf[p.pos + 5]) || buf[p.pos + 5] == '?')) {
        gb_manscdp_error_code rc = parse_declaration(&p);
        if (rc)
            return rc;
    } else if (!(p.lenient & GB_MANSCDP_LENIENT_NO_DECLARATION)) {
        return fail(&p, GB_MANSCDP_ERR_DECLARATION, p.pos, "missing XML declaration");
    }

    int doctype = 1;
    gb_manscdp_error_code rc = skip_misc(&p, &doctype);
    if (rc)
        return rc;
    if (p.pos >= p.n)
        return fail(&p, GB_MANSCDP_ERR_UNCLOSED, p.pos, "no root element");
    if (buf[p.pos] != '<')
        return fail(&p, buf[p.pos] == '\0' ? GB_MANSCDP_ERR_CHARACTER : GB_MANSCDP_ERR_SYNTAX,
                    p.pos, "text before the root element");
    if (p.pos + 1 >= p.n)
        return fail(&p, GB_MANSCDP_ERR_UNCLOSED, p.pos, "no root element");
    rc = parse_elements(&p);
    if (rc)
        return rc;

    rc = skip_misc(&p, NULL);
    if (rc)
        return rc;
    if (padding)
        while (p.pos < p.n && (buf[p.pos] == '\0' || is_ws((unsigned char)buf[p.pos])))
            p.pos++;
    if (p.pos < p.n)
        return fail(&p, GB_MANSCDP_ERR_TRAILING, p.pos, NULL);
    return header_fields(&p);
}

/* ------------------------------------------------------------------ */
/* Lookups                                                             */

unsigned gb_manscdp_child(const gb_manscdp_doc *doc, const char *buf, unsigned parent,
                          const char *name, size_t len, unsigned after)
{
    if (parent >= doc->nnodes)
        return GB_MANSCDP_NONE;
    int any_case = (doc->lenient & GB_MANSCDP_LENIENT_TAG_CASE) != 0;
    unsigned i = after == GB_MANSCDP_NONE ? doc->nodes[parent].first_child
                 : after < doc->nnodes   ? doc->nodes[after].next_sibling
                                         : GB_MANSCDP_NONE;
    for (; i != GB_MANSCDP_NONE; i = doc->nodes[i].next_sibling)
        if (name_eq(buf + doc->nodes[i].name.off, doc->nodes[i].name.len, name, len, any_case))
            return i;
    return GB_MANSCDP_NONE;
}

#define MAX_PATH_STEPS 32

unsigned gb_manscdp_find(const gb_manscdp_doc *doc, const char *buf, unsigned from,
                         const char *path, size_t len, unsigned after)
{
    if (from >= doc->nnodes || len == 0)
        return GB_MANSCDP_NONE;
    int any_case = (doc->lenient & GB_MANSCDP_LENIENT_TAG_CASE) != 0;
    uint32_t soff[MAX_PATH_STEPS], slen[MAX_PATH_STEPS], nsteps = 0;
    size_t s = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || path[i] == '/') {
            if (i == s || nsteps == MAX_PATH_STEPS)
                return GB_MANSCDP_NONE;
            soff[nsteps] = (uint32_t)s;
            slen[nsteps++] = (uint32_t)(i - s);
            s = i + 1;
        }
    }
    unsigned base = doc->nodes[from].depth, want = base + nsteps;
    unsigned i = after == GB_MANSCDP_NONE || after < from ? from + 1 : after + 1;
    /* from's descendants follow it contiguously in document order */
    for (; i < doc->nnodes && doc->nodes[i].depth > base; i++) {
        if (doc->nodes[i].depth != want)
            continue;
        unsigned k = i, step = nsteps;
        while (step > 0) {
            const gb_manscdp_node *nd = &doc->nodes[k];
            step--;
            if (!name_eq(buf + nd->name.off, nd->name.len, path + soff[step], slen[step],
                         any_case))
                break;
            k = nd->parent;
        }
        if (step == 0 && k == from)
            return i;
    }
    return GB_MANSCDP_NONE;
}

int gb_manscdp_attr(const gb_manscdp_doc *doc, const char *buf, unsigned i,
                    const char *name, size_t len, gb_span *value)
{
    if (i >= doc->nnodes)
        return 0;
    gb_span a = doc->nodes[i].attrs;
    int any_case = (doc->lenient & GB_MANSCDP_LENIENT_TAG_CASE) != 0;
    uint32_t pos = a.off, end = a.off + a.len;
    /* the span was validated by the parser: name ws* = ws* quote value quote */
    while (pos < end) {
        while (pos < end && is_ws((unsigned char)buf[pos]))
            pos++;
        uint32_t ns = pos;
        while (pos < end && name_char((unsigned char)buf[pos]))
            pos++;
        uint32_t ne = pos;
        while (pos < end && buf[pos] != '"' && buf[pos] != '\'')
            pos++;
        if (pos >= end)
            return 0;
        char q = buf[pos++];
        uint32_t vs = pos;
        while (pos < end && buf[pos] != q)
            pos++;
        if (pos >= end)
            return 0;
        if (name_eq(buf + ns, ne - ns, name, len, any_case)) {
            value->off = vs;
            value->len = pos - vs;
            return 1;
        }
        pos++;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Text decoding                                                       */

void gb_manscdp_text_begin(gb_manscdp_text_iter *it, const char *buf, gb_span text,
                           uint32_t lenient)
{
    it->buf = buf;
    it->pos = text.off;
    it->end = text.off + text.len;
    it->lenient = lenient;
    it->in_cdata = 0;
}

int gb_manscdp_text_next(gb_manscdp_text_iter *it, gb_span *run, uint32_t *cp)
{
    const char *b = it->buf;
    while (it->pos < it->end) {
        uint32_t pos = it->pos;
        unsigned c = (unsigned char)b[pos];
        if (c == '&') {
            uint32_t l = ref_at(b, pos, it->end, cp);
            if (l) {
                it->pos += l;
                run->off = pos;
                run->len = 0;
                return 1;
            }
            /* a bare '&' (the parser let it through under the leniency) */
            it->pos++;
            run->off = pos;
            run->len = 1;
            return 1;
        }
        if (c == '<') {
            if (starts(b, pos, it->end, "<![CDATA[", 9)) {
                uint32_t e = find_seq(b, pos + 9, it->end, "]]>", 3);
                it->pos = e == it->end ? e : e + 3;
                if (e > pos + 9) {
                    run->off = pos + 9;
                    run->len = e - (pos + 9);
                    return 1;
                }
                continue;
            }
            /* comments and processing instructions inside text are dropped */
            const char *close = b[pos + 1 < it->end ? pos + 1 : pos] == '!' ? "-->" : "?>";
            uint32_t clen = close[0] == '-' ? 3 : 2;
            uint32_t e = find_seq(b, pos + 1, it->end, close, clen);
            it->pos = e == it->end ? e : e + clen;
            continue;
        }
        uint32_t e = pos + 1;
        while (e < it->end && b[e] != '&' && b[e] != '<')
            e++;
        it->pos = e;
        run->off = pos;
        run->len = e - pos;
        return 1;
    }
    return 0;
}

static size_t utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

long gb_manscdp_decode(const char *buf, gb_span text, uint32_t lenient,
                       char *out, size_t cap)
{
    gb_manscdp_text_iter it;
    gb_span run;
    uint32_t cp;
    size_t len = 0;
    gb_manscdp_text_begin(&it, buf, text, lenient);
    while (gb_manscdp_text_next(&it, &run, &cp)) {
        if (run.len) {
            if (run.len > cap - len)
                return -1;
            memcpy(out + len, buf + run.off, run.len);
            len += run.len;
        } else {
            char tmp[4];
            size_t l = utf8_put(tmp, cp);
            if (l > cap - len)
                return -1;
            memcpy(out + len, tmp, l);
            len += l;
        }
    }
    return (long)len;
}

/* ------------------------------------------------------------------ */
/* Writer                                                              */

void gb_manscdp_w_init(gb_manscdp_writer *w, char *buf, size_t cap)
{
    gb_w_init(&w->out, buf, cap);
    w->err = GB_MANSCDP_W_OK;
    w->depth = 0;
}

/* Appends through sip_writer's gb_writer; its overflow becomes ours. */
static void put(gb_manscdp_writer *w, const char *p, size_t n)
{
    if (w->err)
        return;
    gb_w_bytes(&w->out, p, n);
    if (w->out.overflow)
        w->err = GB_MANSCDP_W_OVERFLOW;
}

#define PUT_LIT(w, lit) put((w), (lit), sizeof(lit) - 1)

static void put_u64(gb_manscdp_writer *w, uint64_t v)
{
    if (w->err)
        return;
    gb_w_uint(&w->out, v);
    if (w->out.overflow)
        w->err = GB_MANSCDP_W_OVERFLOW;
}

/* Name bytes; 0 (and INVALID set) unless a well-formed ASCII Name of at
 * most 255 bytes. */
static size_t check_name(gb_manscdp_writer *w, const char *name)
{
    size_t n = 0;
    if (name && name_start((unsigned char)name[0]) && (unsigned char)name[0] < 0x80) {
        for (n = 1; n < 256; n++) {
            unsigned c = (unsigned char)name[n];
            if (!c)
                return n;
            if (c >= 0x80 || !name_char(c))
                break;
        }
    }
    if (!w->err)
        w->err = GB_MANSCDP_W_INVALID;
    return 0;
}

/* Bytes escaped in content and attribute values: markup, quotes, CR (so it
 * survives a parser's line-end normalisation) and the control bytes XML 1.0
 * cannot carry at all (4). */
static const uint8_t esc_class[256] = {
    [0] = 4, [1] = 4, [2] = 4, [3] = 4, [4] = 4, [5] = 4, [6] = 4, [7] = 4,
    [8] = 4, [11] = 4, [12] = 4, [13] = 1, [14] = 4, [15] = 4, [16] = 4,
    [17] = 4, [18] = 4, [19] = 4, [20] = 4, [21] = 4, [22] = 4, [23] = 4,
    [24] = 4, [25] = 4, [26] = 4, [27] = 4, [28] = 4, [29] = 4, [30] = 4,
    [31] = 4, ['<'] = 1, ['>'] = 1, ['&'] = 1, ['"'] = 1,
};

void gb_manscdp_w_text(gb_manscdp_writer *w, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && !w->err) {
        size_t s = i;
        while (i < n && !esc_class[(unsigned char)p[i]])
            i++;
        put(w, p + s, i - s);
        if (i >= n)
            break;
        switch (p[i]) {
        case '<': PUT_LIT(w, "&lt;"); break;
        case '>': PUT_LIT(w, "&gt;"); break;
        case '&': PUT_LIT(w, "&amp;"); break;
        case '"': PUT_LIT(w, "&quot;"); break;
        case '\r': PUT_LIT(w, "&#13;"); break;
        default:
            if (!w->err)
                w->err = GB_MANSCDP_W_INVALID;
            return;
        }
        i++;
    }
}

static void open_tag(gb_manscdp_writer *w, const char *name, size_t nlen)
{
    if (w->err)
        return;
    if (w->depth >= GB_MANSCDP_W_MAX_DEPTH) {
        w->err = GB_MANSCDP_W_INVALID;
        return;
    }
    w->open[w->depth] = name;
    w->open_len[w->depth] = (uint8_t)nlen;
    w->depth++;
}

void gb_manscdp_w_open(gb_manscdp_writer *w, const char *name,
                       const char *attr, gb_manscdp_str value)
{
    size_t n = check_name(w, name);
    PUT_LIT(w, "<");
    put(w, name, n);
    if (attr) {
        size_t an = check_name(w, attr);
        PUT_LIT(w, " ");
        put(w, attr, an);
        PUT_LIT(w, "=\"");
        gb_manscdp_w_text(w, value.p, value.p ? value.len : 0);
        PUT_LIT(w, "\"");
    }
    PUT_LIT(w, ">\r\n");
    open_tag(w, name, n);
}

void gb_manscdp_w_open_num(gb_manscdp_writer *w, const char *name, uint64_t num)
{
    size_t n = check_name(w, name);
    PUT_LIT(w, "<");
    put(w, name, n);
    PUT_LIT(w, " Num=\"");
    put_u64(w, num);
    PUT_LIT(w, "\">\r\n");
    open_tag(w, name, n);
}

void gb_manscdp_w_close(gb_manscdp_writer *w)
{
    if (w->err)
        return;
    if (w->depth == 0) {
        w->err = GB_MANSCDP_W_INVALID;
        return;
    }
    w->depth--;
    PUT_LIT(w, "</");
    put(w, w->open[w->depth], w->open_len[w->depth]);
    PUT_LIT(w, ">\r\n");
}

/* <name>text</name> for a name already known to be valid; inline so the
 * answer helpers below copy their literal names with constant sizes. */
static inline void field_n(gb_manscdp_writer *w, const char *name, size_t n,
                           gb_manscdp_str text)
{
    if (!text.p || w->err)
        return;
    /* Fast path, the usual case: text with nothing to escape and room for
     * "<name>text</name>\r\n" — one bounds check, direct copies. */
    size_t need = 2 * n + text.len + 7, i = 0;
    while (i < text.len && !esc_class[(unsigned char)text.p[i]])
        i++;
    gb_writer *o = &w->out;
    if (i == text.len && need <= o->cap - o->len) {
        char *p = o->buf + o->len;
        *p++ = '<';
        memcpy(p, name, n);
        p += n;
        *p++ = '>';
        memcpy(p, text.p, text.len);
        p += text.len;
        *p++ = '<';
        *p++ = '/';
        memcpy(p, name, n);
        p += n;
        memcpy(p, ">\r\n", 3);
        o->len += need;
        return;
    }
    PUT_LIT(w, "<");
    put(w, name, n);
    PUT_LIT(w, ">");
    gb_manscdp_w_text(w, text.p, text.len);
    PUT_LIT(w, "</");
    put(w, name, n);
    PUT_LIT(w, ">\r\n");
}

#define FIELD(w, lit, text) field_n((w), (lit), sizeof(lit) - 1, (text))

void gb_manscdp_w_field(gb_manscdp_writer *w, const char *name, gb_manscdp_str text)
{
    if (!text.p || w->err)
        return;
    size_t n = check_name(w, name);
    if (n)
        field_n(w, name, n, text);
}

void gb_manscdp_w_field_u64(gb_manscdp_writer *w, const char *name, uint64_t v)
{
    size_t n = check_name(w, name);
    PUT_LIT(w, "<");
    put(w, name, n);
    PUT_LIT(w, ">");
    put_u64(w, v);
    PUT_LIT(w, "</");
    put(w, name, n);
    PUT_LIT(w, ">\r\n");
}

void gb_manscdp_w_begin(gb_manscdp_writer *w, gb_manscdp_charset charset,
                        gb_manscdp_root root, gb_manscdp_cmd cmd,
                        gb_manscdp_str cmd_type, uint64_t sn, gb_manscdp_str device_id)
{
    if (charset == GB_MANSCDP_CHARSET_NONE || charset >= GB_MANSCDP_CHARSET_OTHER)
        charset = GB_MANSCDP_CHARSET_GB2312;
    if (root == GB_MANSCDP_ROOT_NONE || root >= GB_MANSCDP_ROOT__COUNT) {
        w->err = w->err ? w->err : GB_MANSCDP_W_INVALID;
        return;
    }
    if (!cmd_type.p) {
        cmd_type.p = gb_manscdp_cmd_name(cmd);
        cmd_type.len = strlen(cmd_type.p);
    }
    if (cmd_type.len == 0 || !device_id.p || device_id.len == 0) {
        w->err = w->err ? w->err : GB_MANSCDP_W_INVALID;
        return;
    }
    PUT_LIT(w, "<?xml version=\"1.0\" encoding=\"");
    const char *cs = charset_names[charset];
    put(w, cs, strlen(cs));
    PUT_LIT(w, "\"?>\r\n");
    gb_manscdp_w_open(w, root_names[root], NULL, (gb_manscdp_str){NULL, 0});
    gb_manscdp_w_field(w, "CmdType", cmd_type);
    gb_manscdp_w_field_u64(w, "SN", sn);
    gb_manscdp_w_field(w, "DeviceID", device_id);
}

size_t gb_manscdp_w_end(gb_manscdp_writer *w)
{
    while (w->depth && !w->err)
        gb_manscdp_w_close(w);
    return w->err ? 0 : w->out.len;
}

/* ------------------------------------------------------------------ */
/* Standard answers                                                    */

static void begin_response(gb_manscdp_writer *w, const gb_manscdp_head *h, gb_manscdp_cmd cmd)
{
    gb_manscdp_w_begin(w, h->charset, GB_MANSCDP_RESPONSE, cmd, (gb_manscdp_str){NULL, 0},
                       h->sn, h->device_id);
}

size_t gb_manscdp_write_catalog(gb_manscdp_writer *w, const gb_manscdp_head *h,
                                uint32_t sum_num,
                                const gb_manscdp_catalog_item *items, size_t n)
{
    begin_response(w, h, GB_MANSCDP_CMD_CATALOG);
    gb_manscdp_w_field_u64(w, "SumNum", sum_num);
    if (!sum_num && !n) /* 2022 Annex M: nothing to list, SumNum 0 and no list */
        return gb_manscdp_w_end(w);
    gb_manscdp_w_open_num(w, "DeviceList", n);
    for (size_t i = 0; i < n && !w->err; i++) {
        const gb_manscdp_catalog_item *it = &items[i];
        gb_manscdp_w_open(w, "Item", NULL, (gb_manscdp_str){NULL, 0});
        FIELD(w, "DeviceID", it->device_id);
        FIELD(w, "Name", it->name);
        FIELD(w, "Manufacturer", it->manufacturer);
        FIELD(w, "Model", it->model);
        FIELD(w, "Owner", it->owner);
        FIELD(w, "CivilCode", it->civil_code);
        FIELD(w, "Address", it->address);
        FIELD(w, "Parental", it->parental);
        FIELD(w, "ParentID", it->parent_id);
        FIELD(w, "SafetyWay", it->safety_way);
        FIELD(w, "RegisterWay", it->register_way);
        FIELD(w, "Secrecy", it->secrecy);
        FIELD(w, "Status", it->status);
        FIELD(w, "Longitude", it->longitude);
        FIELD(w, "Latitude", it->latitude);
        if (it->ptz_type.p) {
            gb_manscdp_w_open(w, "Info", NULL, (gb_manscdp_str){NULL, 0});
            FIELD(w, "PTZType", it->ptz_type);
            gb_manscdp_w_close(w);
        }
        gb_manscdp_w_close(w);
    }
    return gb_manscdp_w_end(w);
}

size_t gb_manscdp_write_device_info(gb_manscdp_writer *w, const gb_manscdp_head *h,
                                    const gb_manscdp_device_info *info)
{
    begin_response(w, h, GB_MANSCDP_CMD_DEVICE_INFO);
    FIELD(w, "DeviceName", info->device_name);
    FIELD(w, "Result", info->result);
    FIELD(w, "Manufacturer", info->manufacturer);
    FIELD(w, "Model", info->model);
    FIELD(w, "Firmware", info->firmware);
    if (info->channel >= 0)
        gb_manscdp_w_field_u64(w, "Channel", (uint64_t)info->channel);
    return gb_manscdp_w_end(w);
}

size_t gb_manscdp_write_device_status(gb_manscdp_writer *w, const gb_manscdp_head *h,
                                      const gb_manscdp_device_status *st)
{
    begin_response(w, h, GB_MANSCDP_CMD_DEVICE_STATUS);
    FIELD(w, "Result", st->result);
    FIELD(w, "Online", st->online);
    FIELD(w, "Status", st->status);
    FIELD(w, "Reason", st->reason);
    FIELD(w, "Encode", st->encode);
    FIELD(w, "Record", st->record);
    FIELD(w, "DeviceTime", st->device_time);
    if (st->alarms) {
        gb_manscdp_w_open_num(w, "Alarmstatus", st->n_alarms);
        for (size_t i = 0; i < st->n_alarms && !w->err; i++) {
            gb_manscdp_w_open(w, "Item", NULL, (gb_manscdp_str){NULL, 0});
            FIELD(w, "DeviceID", st->alarms[i].device_id);
            FIELD(w, "DutyStatus", st->alarms[i].duty_status);
            gb_manscdp_w_close(w);
        }
        gb_manscdp_w_close(w);
    }
    return gb_manscdp_w_end(w);
}

size_t gb_manscdp_write_basic_param(gb_manscdp_writer *w, const gb_manscdp_head *h,
                                    const gb_manscdp_basic_param *bp)
{
    begin_response(w, h, GB_MANSCDP_CMD_CONFIG_DOWNLOAD);
    FIELD(w, "Result", bp->result);
    gb_manscdp_w_open(w, "BasicParam", NULL, (gb_manscdp_str){NULL, 0});
    FIELD(w, "Name", bp->name);
    FIELD(w, "Expiration", bp->expiration);
    FIELD(w, "HeartBeatInterval", bp->heartbeat_interval);
    FIELD(w, "HeartBeatCount", bp->heartbeat_count);
    gb_manscdp_w_close(w);
    return gb_manscdp_w_end(w);
}

size_t gb_manscdp_write_record_info(gb_manscdp_writer *w, const gb_manscdp_head *h,
                                    gb_manscdp_str name, uint32_t sum_num,
                                    const gb_manscdp_record_item *items, size_t n)
{
    begin_response(w, h, GB_MANSCDP_CMD_RECORD_INFO);
    FIELD(w, "Name", name);
    gb_manscdp_w_field_u64(w, "SumNum", sum_num);
    if (!sum_num && !n) /* 2022 Annex M: nothing to list, SumNum 0 and no list */
        return gb_manscdp_w_end(w);
    gb_manscdp_w_open_num(w, "RecordList", n);
    for (size_t i = 0; i < n && !w->err; i++) {
        const gb_manscdp_record_item *it = &items[i];
        gb_manscdp_w_open(w, "Item", NULL, (gb_manscdp_str){NULL, 0});
        FIELD(w, "DeviceID", it->device_id);
        FIELD(w, "Name", it->name);
        FIELD(w, "FilePath", it->file_path);
        FIELD(w, "Address", it->address);
        FIELD(w, "StartTime", it->start_time);
        FIELD(w, "EndTime", it->end_time);
        FIELD(w, "Secrecy", it->secrecy);
        FIELD(w, "Type", it->type);
        gb_manscdp_w_close(w);
    }
    return gb_manscdp_w_end(w);
}

size_t gb_manscdp_write_preset_list(gb_manscdp_writer *w, const gb_manscdp_head *h,
                                    const gb_manscdp_preset *presets, size_t n)
{
    begin_response(w, h, GB_MANSCDP_CMD_PRESET_QUERY);
    gb_manscdp_w_open_num(w, "PresetList", n);
    for (size_t i = 0; i < n && !w->err; i++) {
        gb_manscdp_w_open(w, "Item", NULL, (gb_manscdp_str){NULL, 0});
        FIELD(w, "PresetID", presets[i].preset_id);
        FIELD(w, "PresetName", presets[i].preset_name);
        gb_manscdp_w_close(w);
    }
    return gb_manscdp_w_end(w);
}

size_t gb_manscdp_write_result(gb_manscdp_writer *w, const gb_manscdp_head *h,
                               gb_manscdp_cmd cmd, gb_manscdp_str result)
{
    begin_response(w, h, cmd);
    FIELD(w, "Result", result);
    return gb_manscdp_w_end(w);
}
