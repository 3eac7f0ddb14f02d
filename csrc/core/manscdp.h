/*
 * manscdp.h - MANSCDP+xml bodies (GB/T 28181-2016/2022 Annex A): a
 * zero-copy, allocation-free reader and a writer into a caller buffer.
 *
 * The reader makes one pass over the body and fills the caller's node
 * array (picohttpparser's habit): each element is a name span, a text span
 * and an attribute span into the caller's buffer, linked by parent /
 * first-child / next-sibling indices in document order, so any field or
 * list ("DeviceList/Item", the Num attribute) is found later without
 * another parse.  Root kind, CmdType, SN, DeviceID and the declared charset
 * are picked out on the way.  Entity references and CDATA are validated
 * during the pass and decoded only when asked (gb_manscdp_decode or the
 * piece iterator), into the caller's buffer.
 *
 * It reads the XML that MANSCDP uses: one declaration, elements, attributes,
 * text, comments, processing instructions and CDATA.  A DOCTYPE is refused
 * (no entity definitions, so no expansion attacks).  Bytes are not decoded:
 * GB2312/GBK/GB18030 never use the ASCII bytes that carry markup inside a
 * multibyte character, so scanning bytes is safe for every charset seen.
 *
 * Strict by default; each camera quirk is accepted only when named in
 * gb_manscdp_limits.lenient.
 */
#ifndef GBSIP_MANSCDP_H
#define GBSIP_MANSCDP_H

#include <stddef.h>
#include <stdint.h>

#include "sip_parser.h" /* gb_span */
#include "sip_writer.h" /* gb_writer */

/* The four roots of Annex A.2. */
typedef enum {
    GB_MANSCDP_ROOT_NONE = 0,
    GB_MANSCDP_QUERY,
    GB_MANSCDP_CONTROL,
    GB_MANSCDP_NOTIFY,
    GB_MANSCDP_RESPONSE,
    GB_MANSCDP_ROOT__COUNT
} gb_manscdp_root;

/* CmdType values of the 2016 and 2022 editions.  Anything else is
 * GB_MANSCDP_CMD_OTHER, with its text in doc->cmd_type. */
typedef enum {
    GB_MANSCDP_CMD_OTHER = 0,
    GB_MANSCDP_CMD_KEEPALIVE,          /* Notify, §9.6 */
    GB_MANSCDP_CMD_CATALOG,            /* Query/Response/Notify, §9.5.1, §9.11 */
    GB_MANSCDP_CMD_DEVICE_INFO,        /* Query/Response, §9.5.3 */
    GB_MANSCDP_CMD_DEVICE_STATUS,      /* Query/Response, §9.5.2 */
    GB_MANSCDP_CMD_RECORD_INFO,        /* Query/Response, §9.7 */
    GB_MANSCDP_CMD_ALARM,              /* Query/Notify/Response, §9.4 */
    GB_MANSCDP_CMD_CONFIG_DOWNLOAD,    /* Query/Response, A.2.4.7 */
    GB_MANSCDP_CMD_PRESET_QUERY,       /* Query/Response, A.2.4.8 */
    GB_MANSCDP_CMD_MOBILE_POSITION,    /* Query/Notify, §9.11 */
    GB_MANSCDP_CMD_DEVICE_CONTROL,     /* Control/Response, §9.3 */
    GB_MANSCDP_CMD_DEVICE_CONFIG,      /* Control/Response, A.2.3.2 */
    GB_MANSCDP_CMD_MEDIA_STATUS,       /* Notify, §9.8 */
    GB_MANSCDP_CMD_BROADCAST,          /* Notify/Response, §9.12 */
    GB_MANSCDP_CMD_DEVICE_UPGRADE_RESULT,  /* Notify, 2022 */
    GB_MANSCDP_CMD_HOME_POSITION_QUERY,    /* 2022 */
    GB_MANSCDP_CMD_CRUISE_TRACK_LIST_QUERY,/* 2022 */
    GB_MANSCDP_CMD_CRUISE_TRACK_QUERY,     /* 2022 */
    GB_MANSCDP_CMD_PTZ_POSITION,           /* 2022 */
    GB_MANSCDP_CMD_SD_CARD_STATUS,         /* 2022 */
    GB_MANSCDP_CMD_UPLOAD_SNAPSHOT_FINISHED, /* 2022 */
    GB_MANSCDP_CMD_VIDEO_UPLOAD_NOTIFY,    /* 2022 */
    GB_MANSCDP_CMD__COUNT
} gb_manscdp_cmd;

/* The declaration's encoding="" (case-insensitive). */
typedef enum {
    GB_MANSCDP_CHARSET_NONE = 0, /* no declaration, or no encoding in it */
    GB_MANSCDP_CHARSET_GB2312,
    GB_MANSCDP_CHARSET_GB18030,
    GB_MANSCDP_CHARSET_GBK,
    GB_MANSCDP_CHARSET_UTF8,
    GB_MANSCDP_CHARSET_OTHER,    /* see doc->encoding */
    GB_MANSCDP_CHARSET__COUNT
} gb_manscdp_charset;

/* Named tolerances for what devices send in the field.  All off by default. */
enum {
    /* Element names in another case: <cmdtype>, <Sn>, </deviceid>. Applies to
     * the root, the three header fields, end-tag matching and lookups. */
    GB_MANSCDP_LENIENT_TAG_CASE = 1u << 0,
    /* No <?xml ...?> declaration (GB/T 28181 Annex A always has one). */
    GB_MANSCDP_LENIENT_NO_DECLARATION = 1u << 1,
    /* A UTF-8 BOM or whitespace before the declaration, NUL bytes after the
     * root element (C strings sent with their terminator). */
    GB_MANSCDP_LENIENT_PADDING = 1u << 2,
    /* An '&' that starts no valid reference is taken as a literal '&'
     * ("<Name>A&B</Name>"). */
    GB_MANSCDP_LENIENT_BARE_AMPERSAND = 1u << 3,
    GB_MANSCDP_LENIENT_ALL = (1u << 4) - 1
};

/* Explicit bounds; gb_manscdp_limits_default() fills the defaults. */
typedef struct {
    uint32_t max_body;   /* bytes; default 65536 (the SIP parser's max_message) */
    uint32_t max_nodes;  /* elements; default 4096, at most 65535; the caller's
                            array may lower it */
    uint32_t max_depth;  /* element nesting, root = 1; default 16, at most 255 */
    uint32_t lenient;    /* GB_MANSCDP_LENIENT_* */
} gb_manscdp_limits;

#define GB_MANSCDP_DEFAULT_MAX_BODY 65536u
#define GB_MANSCDP_DEFAULT_MAX_NODES 4096u
#define GB_MANSCDP_DEFAULT_MAX_DEPTH 16u

void gb_manscdp_limits_default(gb_manscdp_limits *lim);

typedef enum {
    GB_MANSCDP_OK = 0,
    GB_MANSCDP_ERR_EMPTY,            /* no bytes, or only padding */
    GB_MANSCDP_ERR_TOO_LARGE,        /* max_body (513) */
    GB_MANSCDP_ERR_TOO_MANY_NODES,   /* max_nodes or the caller's array (513) */
    GB_MANSCDP_ERR_TOO_DEEP,         /* max_depth (513) */
    GB_MANSCDP_ERR_DECLARATION,      /* missing or malformed <?xml ...?> */
    GB_MANSCDP_ERR_DOCTYPE,          /* <!DOCTYPE> is refused */
    GB_MANSCDP_ERR_SYNTAX,           /* malformed markup */
    GB_MANSCDP_ERR_NAME,             /* malformed element or attribute name */
    GB_MANSCDP_ERR_ATTRIBUTE,        /* malformed attribute */
    GB_MANSCDP_ERR_TAG_MISMATCH,     /* </b> closes <a> */
    GB_MANSCDP_ERR_UNCLOSED,         /* the body ends inside the document */
    GB_MANSCDP_ERR_ENTITY,           /* bad or unknown &reference; or bare & */
    GB_MANSCDP_ERR_CHARACTER,        /* a control byte XML 1.0 forbids */
    GB_MANSCDP_ERR_TRAILING,         /* something after the root element */
    GB_MANSCDP_ERR_ROOT,             /* root is not Query/Control/Notify/Response */
    GB_MANSCDP_ERR_MISSING_CMD_TYPE,
    GB_MANSCDP_ERR_MISSING_SN,
    GB_MANSCDP_ERR_SN,               /* SN is not a decimal below 2^64 */
    GB_MANSCDP_ERR_MISSING_DEVICE_ID,
    GB_MANSCDP_ERR_DUPLICATE_FIELD,  /* CmdType, SN or DeviceID twice */
    /* Well-formed, fully indexed, but CmdType is not one of gb_manscdp_cmd:
     * the document is complete (doc->cmd_type has the text) and the status
     * is 501, so the caller can tell it from malformed input.  */
    GB_MANSCDP_ERR_UNKNOWN_CMD_TYPE,
    GB_MANSCDP_ERR__COUNT
} gb_manscdp_error_code;

/* Where and why.  line is 1-based; offset is from the start of the body. */
typedef struct {
    gb_manscdp_error_code code;
    uint16_t status;     /* SIP answer: 400, 501 (unknown CmdType), 513 */
    uint32_t line;
    uint32_t offset;
    const char *reason;  /* static text */
} gb_manscdp_error;

#define GB_MANSCDP_NONE 0xFFFFu

/* Node flags. */
enum {
    /* The text holds a reference or CDATA: decode before use. */
    GB_MANSCDP_NODE_ENCODED = 1u << 0,
    /* The element has child elements (its text span is then empty). */
    GB_MANSCDP_NODE_PARENT = 1u << 1,
};

/* One element.  Indices are into doc->nodes; GB_MANSCDP_NONE ends a chain.
 * Nodes are in document order: the root is 0, and a node's descendants
 * follow it. */
typedef struct {
    gb_span name;
    gb_span text;    /* a leaf's content without surrounding XML whitespace */
    gb_span attrs;   /* raw attribute list after the name (validated) */
    uint16_t parent;
    uint16_t first_child;
    uint16_t next_sibling;
    uint8_t depth;   /* root = 1 */
    uint8_t flags;   /* GB_MANSCDP_NODE_* */
} gb_manscdp_node;

typedef struct {
    uint8_t root;        /* gb_manscdp_root */
    uint8_t charset;     /* gb_manscdp_charset */
    uint16_t cmd;        /* gb_manscdp_cmd */
    uint64_t sn;
    gb_span cmd_type;    /* CmdType text */
    gb_span device_id;   /* DeviceID text */
    gb_span encoding;    /* the declaration's encoding value; len 0 when absent */
    uint16_t cmd_node, sn_node, device_id_node;
    uint16_t has_declaration;
    uint32_t lenient;    /* what it was parsed with; lookups honour TAG_CASE */
    uint32_t nnodes;
    gb_manscdp_node *nodes;  /* caller's array */
    uint32_t max_nodes;      /* its capacity */
} gb_manscdp_doc;

/* Bind the caller's node array (at most 65535 are used). */
void gb_manscdp_init(gb_manscdp_doc *doc, gb_manscdp_node *nodes, uint32_t max_nodes);

/*
 * Parse buf[0..len), one whole body.  lim NULL means the defaults.
 * Returns GB_MANSCDP_OK or an error code (also in *err when err != NULL).
 * On GB_MANSCDP_ERR_UNKNOWN_CMD_TYPE the document is complete; on any other
 * error its content is unspecified (but every span stays inside buf).
 */
gb_manscdp_error_code gb_manscdp_parse(const char *buf, size_t len,
                                       const gb_manscdp_limits *lim,
                                       gb_manscdp_doc *doc, gb_manscdp_error *err);

/* Lookups.  Names compare exactly, or ignoring ASCII case when the document
 * was parsed with GB_MANSCDP_LENIENT_TAG_CASE. */

/* First child of `parent` named name[0..len) after child `after`
 * (GB_MANSCDP_NONE to start), or GB_MANSCDP_NONE. */
unsigned gb_manscdp_child(const gb_manscdp_doc *doc, const char *buf, unsigned parent,
                          const char *name, size_t len, unsigned after);

/* Next node after `after` (GB_MANSCDP_NONE to start) whose path below
 * `from` is path[0..len), steps separated by '/': with from = 0 (the root),
 * "DeviceList/Item" walks every catalog item in order. */
unsigned gb_manscdp_find(const gb_manscdp_doc *doc, const char *buf, unsigned from,
                         const char *path, size_t len, unsigned after);

/* Value span of attribute name[0..len) of node i; 1 when found, else 0.
 * The value is raw: decode it like text when it holds '&'. */
int gb_manscdp_attr(const gb_manscdp_doc *doc, const char *buf, unsigned i,
                    const char *name, size_t len, gb_span *value);

/* Walks raw text (a text or attribute span) as literal byte runs and
 * decoded characters, so a binding can convert runs by the document's
 * charset and characters by code point.  Nothing is copied. */
typedef struct {
    const char *buf;
    uint32_t pos, end;
    uint32_t lenient;
    int in_cdata;
} gb_manscdp_text_iter;

void gb_manscdp_text_begin(gb_manscdp_text_iter *it, const char *buf, gb_span text,
                           uint32_t lenient);
/* 1 with *run set (len > 0, literal bytes) or *cp set (run->len == 0, a
 * character from a reference); 0 at the end. */
int gb_manscdp_text_next(gb_manscdp_text_iter *it, gb_span *run, uint32_t *cp);

/* Decode text into out[0..cap): references become their characters (numeric
 * ones as UTF-8), CDATA its content.  Returns the length, or -1 when cap is
 * too small.  Never longer than text.len. */
long gb_manscdp_decode(const char *buf, gb_span text, uint32_t lenient,
                       char *out, size_t cap);


const char *gb_manscdp_root_name(gb_manscdp_root root);       /* "Query" */
const char *gb_manscdp_cmd_name(gb_manscdp_cmd cmd);          /* "Catalog"; "" for OTHER */
gb_manscdp_cmd gb_manscdp_cmd_lookup(const char *p, size_t n, int any_case);
const char *gb_manscdp_charset_name(gb_manscdp_charset cs);   /* "GB2312"; "" for NONE */
gb_manscdp_charset gb_manscdp_charset_lookup(const char *p, size_t n);
uint16_t gb_manscdp_error_status(gb_manscdp_error_code code);
const char *gb_manscdp_error_text(gb_manscdp_error_code code);
const char *gb_manscdp_error_name(gb_manscdp_error_code code); /* "MISSING_SN" */

/* ------------------------------------------------------------------ */
/* Writer                                                              */

/* A byte run the writer reads.  p == NULL means "absent": the helpers
 * below leave such a field out. */
typedef struct {
    const char *p;
    size_t len;
} gb_manscdp_str;

#define GB_MANSCDP_STR(lit) ((gb_manscdp_str){(lit), sizeof(lit) - 1})

enum {
    GB_MANSCDP_W_OK = 0,
    GB_MANSCDP_W_OVERFLOW = 1,  /* the buffer is too small */
    GB_MANSCDP_W_INVALID = 2,   /* bad name, a byte XML 1.0 cannot carry, nesting */
};

#define GB_MANSCDP_W_MAX_DEPTH 16

/* Once a write fails the writer keeps its error and ignores the rest, so a
 * caller checks once, at gb_manscdp_w_end(). */
typedef struct {
    gb_writer out;          /* buf, cap, len: the body so far */
    int err;                /* GB_MANSCDP_W_* */
    unsigned depth;
    const char *open[GB_MANSCDP_W_MAX_DEPTH];   /* names of open elements */
    uint8_t open_len[GB_MANSCDP_W_MAX_DEPTH];
} gb_manscdp_writer;

void gb_manscdp_w_init(gb_manscdp_writer *w, char *buf, size_t cap);

/* Declaration with the charset (NONE or OTHER: GB2312), the root, CmdType,
 * SN and DeviceID.  cmd_type NULL: the name of cmd. */
void gb_manscdp_w_begin(gb_manscdp_writer *w, gb_manscdp_charset charset,
                        gb_manscdp_root root, gb_manscdp_cmd cmd,
                        gb_manscdp_str cmd_type, uint64_t sn, gb_manscdp_str device_id);
/* <name> or <name attr="value">, attr NULL for none. */
void gb_manscdp_w_open(gb_manscdp_writer *w, const char *name,
                       const char *attr, gb_manscdp_str value);
/* <name Num="n"> for the lists of Annex A. */
void gb_manscdp_w_open_num(gb_manscdp_writer *w, const char *name, uint64_t num);
void gb_manscdp_w_close(gb_manscdp_writer *w);
/* <name>escaped text</name>; a text with p == NULL writes nothing. */
void gb_manscdp_w_field(gb_manscdp_writer *w, const char *name, gb_manscdp_str text);
void gb_manscdp_w_field_u64(gb_manscdp_writer *w, const char *name, uint64_t v);
/* Append text escaped for element content (or attribute values). */
void gb_manscdp_w_text(gb_manscdp_writer *w, const char *p, size_t n);
/* Close every open element; returns the body length, or 0 with w->err set. */
size_t gb_manscdp_w_end(gb_manscdp_writer *w);

/* Answers the device fleet builds (Annex A.2.6).  Each writes a whole body
 * into w (fresh from gb_manscdp_w_init) and returns gb_manscdp_w_end(w).
 * Fields whose p is NULL are left out. */

typedef struct {
    gb_manscdp_charset charset;  /* the query's; NONE → GB2312 */
    uint64_t sn;                 /* the query's SN */
    gb_manscdp_str device_id;    /* the answering device (or channel) */
} gb_manscdp_head;

typedef struct {
    gb_manscdp_str device_id, name, manufacturer, model, owner, civil_code,
        address, parental, parent_id, safety_way, register_way, secrecy,
        status, longitude, latitude;
    gb_manscdp_str ptz_type;     /* Info/PTZType when set (2016 Annex A.2.6.4) */
} gb_manscdp_catalog_item;

/* One part of a Catalog response: SumNum = sum_num, DeviceList Num = n. */
size_t gb_manscdp_write_catalog(gb_manscdp_writer *w, const gb_manscdp_head *h,
                                uint32_t sum_num,
                                const gb_manscdp_catalog_item *items, size_t n);

typedef struct {
    gb_manscdp_str device_name, result, manufacturer, model, firmware;
    int32_t channel;             /* < 0: left out */
} gb_manscdp_device_info;
size_t gb_manscdp_write_device_info(gb_manscdp_writer *w, const gb_manscdp_head *h,
                                    const gb_manscdp_device_info *info);

typedef struct {
    gb_manscdp_str device_id, duty_status;   /* ONDUTY / OFFDUTY / ALARM */
} gb_manscdp_alarm_status;

typedef struct {
    gb_manscdp_str result, online, status, reason, encode, record, device_time;
    const gb_manscdp_alarm_status *alarms;  /* Alarmstatus Num=n_alarms */
    size_t n_alarms;                        /* alarms NULL: no Alarmstatus */
} gb_manscdp_device_status;
size_t gb_manscdp_write_device_status(gb_manscdp_writer *w, const gb_manscdp_head *h,
                                      const gb_manscdp_device_status *st);

typedef struct {
    gb_manscdp_str result, name, expiration, heartbeat_interval, heartbeat_count;
} gb_manscdp_basic_param;
/* ConfigDownload response with BasicParam. */
size_t gb_manscdp_write_basic_param(gb_manscdp_writer *w, const gb_manscdp_head *h,
                                    const gb_manscdp_basic_param *bp);

typedef struct {
    gb_manscdp_str device_id, name, file_path, address, start_time, end_time,
        secrecy, type;
} gb_manscdp_record_item;
/* One part of a RecordInfo response: Name, SumNum, RecordList Num = n. */
size_t gb_manscdp_write_record_info(gb_manscdp_writer *w, const gb_manscdp_head *h,
                                    gb_manscdp_str name, uint32_t sum_num,
                                    const gb_manscdp_record_item *items, size_t n);

typedef struct {
    gb_manscdp_str preset_id, preset_name;
} gb_manscdp_preset;
size_t gb_manscdp_write_preset_list(gb_manscdp_writer *w, const gb_manscdp_head *h,
                                    const gb_manscdp_preset *presets, size_t n);

/* Response with CmdType cmd and Result (OK / ERROR): DeviceControl,
 * DeviceConfig, Alarm, Broadcast... */
size_t gb_manscdp_write_result(gb_manscdp_writer *w, const gb_manscdp_head *h,
                               gb_manscdp_cmd cmd, gb_manscdp_str result);

#endif
