/*
 * py_message.c - gbsip.Request / gbsip.Response: a message's wire bytes
 * plus the zero-copy index gb_parse() made of them.
 *
 * Nothing is converted to Python objects at parse time; each property
 * decodes its span when read.  Mutators rebuild the bytes with the
 * serializer and re-index them, so bytes(msg) is always what goes on the
 * wire and an untouched parsed message is byte-identical to its input.
 */
#include "py_core.h"

#include <datetime.h>
#include <stddef.h>
#include <openssl/rand.h>
#include <string.h>
#include <structmember.h>

#include "sip_fields.h"
#include "sip_writer.h"

PyObject *gbpy_SIPBuildError;

static PyTypeObject *CSeqType, *URIType, *NameAddressType, *ContactType, *ViaType;

/* Headers kept inside the object; more go to a separate allocation. */
#define INLINE_HEADERS 12
/* A stack array this large covers the default limit without malloc. */
#define STACK_HEADERS 256

typedef struct {
    PyObject_HEAD
    PyObject *data;         /* bytes holding the message (from offset 0) */
    uint32_t lenient;       /* leniencies it was parsed with, kept on rebuild */
    gb_msg msg;             /* spans are relative to data + base */
    gb_header *heap;        /* when more than INLINE_HEADERS */
    gb_header inline_headers[INLINE_HEADERS];
} MessageObject;

typedef struct {
    PyObject_HEAD
    MessageObject *msg;
} HeadersObject;

static PyTypeObject MessageType, RequestType, ResponseType, HeadersType;

#define BUF(self) PyBytes_AS_STRING((self)->data)

/* ------------------------------------------------------------------ */
/* Span → Python                                                       */

static PyObject *str_from(const char *p, size_t n)
{
    return PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "surrogateescape");
}

static PyObject *span_str(const char *buf, gb_span s)
{
    return str_from(buf + s.off, s.len);
}

static PyObject *header_value(MessageObject *self, const gb_header *h)
{
    const char *b = BUF(self);
    if (!h->folded)
        return span_str(b, h->value);
    char *tmp = PyMem_Malloc(h->value.len ? h->value.len : 1);
    if (!tmp)
        return PyErr_NoMemory();
    size_t n = gb_unfold(b, h->value, tmp);
    PyObject *r = str_from(tmp, n);
    PyMem_Free(tmp);
    return r;
}

/* A sub-parser failed inside header h: give the error the header's line
 * and turn it into SIPParseError. */
static PyObject *raise_in_header(MessageObject *self, const gb_header *h,
                                 gb_error *err)
{
    (void)self;
    err->line = h->line;
    err->header = (gb_header_id)h->id;
    if (!err->status)
        err->status = gb_error_status(err->code);
    return gbpy_raise_parse_error(err);
}

static PyObject *unquoted_str(const char *b, gb_span s)
{
    char stackbuf[256];
    char *tmp = s.len <= sizeof(stackbuf) ? stackbuf : PyMem_Malloc(s.len);
    if (!tmp)
        return PyErr_NoMemory();
    size_t n = gb_unquote(b, s, tmp);
    PyObject *r = str_from(tmp, n);
    if (tmp != stackbuf)
        PyMem_Free(tmp);
    return r;
}

static PyObject *unescaped_str(const char *b, gb_span s)
{
    char stackbuf[256];
    char *tmp = s.len <= sizeof(stackbuf) ? stackbuf : PyMem_Malloc(s.len ? s.len : 1);
    if (!tmp)
        return PyErr_NoMemory();
    long n = gb_unescape(b, s, tmp);
    PyObject *r = n < 0 ? span_str(b, s) : str_from(tmp, (size_t)n);
    if (tmp != stackbuf)
        PyMem_Free(tmp);
    return r;
}

/* {name.lower(): value or None}; quoted values are unquoted. */
static PyObject *params_dict(const char *b, gb_span params, char sep, gb_error *err,
                             int *failed)
{
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    gb_param_iter it;
    gb_param p;
    int r;
    *failed = 0;
    gb_params_begin(&it, b, params, sep);
    while ((r = gb_params_next(&it, &p, err)) == 1) {
        PyObject *k = span_str(b, p.name);
        if (!k)
            goto fail;
        PyObject *lk = PyObject_CallMethod(k, "lower", NULL);
        Py_DECREF(k);
        if (!lk)
            goto fail;
        PyObject *v = !p.has_value ? Py_NewRef(Py_None)
                      : p.quoted   ? unquoted_str(b, p.value)
                                   : span_str(b, p.value);
        if (!v || PyDict_SetItem(d, lk, v) < 0) {
            Py_DECREF(lk);
            Py_XDECREF(v);
            goto fail;
        }
        Py_DECREF(lk);
        Py_DECREF(v);
    }
    if (r < 0) {
        *failed = 1;
        Py_DECREF(d);
        return NULL;
    }
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

/* Build a structseq from n new references (stolen, NULL allowed to signal
 * an earlier failure). */
static PyObject *make_struct(PyTypeObject *type, PyObject **items, int n)
{
    for (int i = 0; i < n; i++)
        if (!items[i]) {
            for (int k = 0; k < n; k++)
                Py_XDECREF(items[k]);
            return NULL;
        }
    PyObject *o = PyStructSequence_New(type);
    if (!o) {
        for (int k = 0; k < n; k++)
            Py_DECREF(items[k]);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        PyStructSequence_SET_ITEM(o, i, items[i]);
    return o;
}

static PyObject *opt_int(int64_t v)
{
    return v < 0 ? Py_NewRef(Py_None) : PyLong_FromLongLong(v);
}

/* URI(raw, scheme, user, password, host, port, params, headers) */
static PyObject *uri_object(const char *b, gb_span in, gb_error *err, int *failed)
{
    gb_uri u;
    *failed = 0;
    if (gb_parse_uri(b, in, &u, err)) {
        *failed = 1;
        return NULL;
    }
    PyObject *items[8];
    items[0] = span_str(b, in);
    items[1] = span_str(b, u.scheme);
    PyObject *lower_scheme = items[1] ? PyObject_CallMethod(items[1], "lower", NULL) : NULL;
    Py_XDECREF(items[1]);
    items[1] = lower_scheme;
    int pf = 0, hf = 0;
    if (u.is_sip) {
        items[2] = u.has_user ? unescaped_str(b, u.user) : Py_NewRef(Py_None);
        items[3] = u.has_password ? unescaped_str(b, u.password) : Py_NewRef(Py_None);
        items[4] = span_str(b, u.host);
        items[5] = u.port >= 0 ? PyLong_FromLong(u.port) : Py_NewRef(Py_None);
        items[6] = params_dict(b, u.params, ';', err, &pf);
        items[7] = params_dict(b, u.headers, '&', err, &hf);
    } else {
        items[2] = Py_NewRef(Py_None);
        items[3] = Py_NewRef(Py_None);
        items[4] = span_str(b, u.opaque);
        items[5] = Py_NewRef(Py_None);
        items[6] = PyDict_New();
        items[7] = PyDict_New();
    }
    if (pf || hf) {
        *failed = 1;
        if (err)
            err->code = GB_ERR_URI;
    }
    return make_struct(URIType, items, 8);
}

static PyObject *display_name(const char *b, const gb_name_addr *na)
{
    if (!na->display.len && !na->display_quoted)
        return Py_NewRef(Py_None);
    return na->display_quoted ? unquoted_str(b, na->display) : span_str(b, na->display);
}

/* The name-addr in `in` (a Contact value when contact: "*" allowed) and
 * its parameters as a dict; NULL with *failed set when it does not parse. */
static PyObject *name_addr_params(const char *b, gb_span in, int contact, gb_name_addr *na,
                                  gb_error *err, int *failed)
{
    *failed = 0;
    if (gb_parse_name_addr(b, in, contact, na, err)) {
        *failed = 1;
        return NULL;
    }
    int pf = 0;
    PyObject *params = params_dict(b, na->params, ';', err, &pf);
    if (!params)
        *failed = pf;
    return params;
}

/* NameAddress(display_name, uri, tag, params) */
static PyObject *name_addr_object(const char *b, gb_span in, gb_error *err, int *failed)
{
    gb_name_addr na;
    PyObject *params = name_addr_params(b, in, 0, &na, err, failed);
    if (!params)
        return NULL;
    PyObject *tag = PyDict_GetItemString(params, "tag");
    PyObject *items[4] = {display_name(b, &na), span_str(b, na.uri),
                          Py_NewRef(tag ? tag : Py_None), params};
    return make_struct(NameAddressType, items, 4);
}

/* A Contact parameter that is not what RFC 3261 §20.10 says: the error
 * filled in, the objects made so far released. */
static PyObject *bad_contact_param(gb_error *err, int *failed, const gb_param *p,
                                   const char *why, PyObject *params, PyObject *expires,
                                   PyObject *q)
{
    Py_DECREF(params);
    Py_DECREF(expires);
    Py_DECREF(q);
    *failed = 1;
    if (err) {
        err->code = GB_ERR_PARAM;
        err->offset = p->value.off;
        err->reason = why;
        err->status = 400;
    }
    return NULL;
}

/* Contact(display_name, uri, expires, q, params) */
static PyObject *contact_object(const char *b, gb_span in, gb_error *err, int *failed)
{
    gb_name_addr na;
    PyObject *params = name_addr_params(b, in, 1, &na, err, failed);
    if (!params)
        return NULL;
    PyObject *expires = Py_NewRef(Py_None), *q = Py_NewRef(Py_None);
    gb_param p;
    if (gb_params_find(b, na.params, ';', "expires", 7, &p) && p.has_value) {
        uint64_t v;
        if (gb_parse_uint(b + p.value.off, p.value.len, 0xffffffffu, &v) < 0)
            return bad_contact_param(err, failed, &p, "Contact expires must be delta-seconds",
                                     params, expires, q);
        Py_SETREF(expires, PyLong_FromUnsignedLongLong(v));
    }
    if (gb_params_find(b, na.params, ';', "q", 1, &p) && p.has_value) {
        /* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
        const char *s = b + p.value.off;
        size_t n = p.value.len;
        int ok = n >= 1 && (s[0] == '0' || s[0] == '1') && n <= 5 &&
                 (n == 1 || s[1] == '.');
        int thousandths = ok ? (s[0] - '0') * 1000 : 0, scale = 100;
        for (size_t k = 2; ok && k < n; k++, scale /= 10) {
            if (s[k] < '0' || s[k] > '9')
                ok = 0;
            else
                thousandths += (s[k] - '0') * scale;
        }
        if (!ok || thousandths > 1000)
            return bad_contact_param(err, failed, &p, "Contact q must be a qvalue from 0 to 1",
                                     params, expires, q);
        /* exact decimal -> nearest double, so q=0.7 reads back as 0.7 */
        Py_SETREF(q, PyFloat_FromDouble(thousandths / 1000.0));
    }
    PyObject *items[6] = {display_name(b, &na), span_str(b, na.uri), expires, q, params,
                          PyBool_FromLong(na.wildcard)};
    return make_struct(ContactType, items, 6);
}

/* Via(transport, host, port, branch, rport, received, params, sent_by) */
static PyObject *via_object(const char *b, gb_span in, gb_error *err, int *failed)
{
    gb_via v;
    *failed = 0;
    if (gb_parse_via(b, in, &v, err)) {
        *failed = 1;
        return NULL;
    }
    int pf = 0;
    PyObject *params = params_dict(b, v.params, ';', err, &pf);
    if (!params) {
        *failed = pf;
        return NULL;
    }
    size_t sb_end = v.port >= 0 ? 0 : v.host.off + v.host.len;
    if (v.port >= 0) {
        /* sent-by runs to the end of the port digits */
        sb_end = v.host.off + v.host.len;
        while (b[sb_end] != ':')
            sb_end++;
        sb_end++;
        while (b[sb_end] == ' ' || b[sb_end] == '\t')
            sb_end++;
        while (sb_end < in.off + in.len && b[sb_end] >= '0' && b[sb_end] <= '9')
            sb_end++;
    }
    gb_span sent_by = {v.host.off, (uint32_t)(sb_end - v.host.off)};
    PyObject *rport = !v.has_rport ? Py_NewRef(Py_None)
                      : v.rport > 0 ? PyLong_FromLong(v.rport)
                                    : Py_NewRef(Py_True);
    PyObject *items[8] = {
        span_str(b, v.transport),
        span_str(b, v.host),
        v.port >= 0 ? PyLong_FromLong(v.port) : Py_NewRef(Py_None),
        v.has_branch ? span_str(b, v.branch) : Py_NewRef(Py_None),
        rport,
        v.has_received ? span_str(b, v.received) : Py_NewRef(Py_None),
        params,
        span_str(b, sent_by),
    };
    return make_struct(ViaType, items, 8);
}

typedef PyObject *(*value_parser)(const char *b, gb_span in, gb_error *err, int *failed);

/* Parse one structured header through fn; NULL with an exception set. */
static PyObject *parse_in_header(MessageObject *self, const gb_header *h,
                                 gb_span span, value_parser fn)
{
    gb_error err = {0};
    int failed;
    /* sub-parsers treat folded line ends as LWS, so no unfolding here */
    PyObject *o = fn(BUF(self), span, &err, &failed);
    if (!o && failed)
        return raise_in_header(self, h, &err);
    return o;
}

/* All values of all headers with this id, comma lists split. */
static PyObject *list_values(MessageObject *self, gb_header_id id, value_parser fn)
{
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    const char *b = BUF(self);
    for (int i = gb_msg_find(&self->msg, id, 0); i >= 0;
         i = gb_msg_next(&self->msg, id, i)) {
        const gb_header *h = &self->msg.headers[i];
        gb_list_iter it;
        gb_span item;
        gb_error err = {0};
        int r;
        gb_list_begin(&it, b, h->value);
        while ((r = gb_list_next(&it, &item, &err)) == 1) {
            PyObject *o = parse_in_header(self, h, item, fn);
            if (!o || PyList_Append(list, o) < 0) {
                Py_XDECREF(o);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(o);
        }
        if (r < 0) {
            Py_DECREF(list);
            return raise_in_header(self, h, &err);
        }
    }
    return list;
}

/* ------------------------------------------------------------------ */
/* Construction from bytes                                             */

static int limits_from_kwargs(gb_limits *lim, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames, int *validate, int allow_validate)
{
    gb_limits_default(lim);
    *validate = 0;
    if (!kwnames)
        return 0;
    Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nk; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        PyObject *val = args[nargs + i];
        const char *k = PyUnicode_AsUTF8(key);
        if (!k)
            return -1;
        if (allow_validate && strcmp(k, "validate") == 0) {
            int t = PyObject_IsTrue(val);
            if (t < 0)
                return -1;
            *validate = t;
            continue;
        }
        unsigned long v = PyLong_AsUnsignedLong(val);
        if (v == (unsigned long)-1 && PyErr_Occurred())
            return -1;
        if (v > 0xffffffffUL) {
            PyErr_Format(PyExc_ValueError, "%s is too large", k);
            return -1;
        }
        if (strcmp(k, "lenient") == 0) {
            if (v & ~(unsigned long)GB_LENIENT_ALL) {
                PyErr_SetString(PyExc_ValueError, "unknown leniency flag");
                return -1;
            }
            lim->lenient = (uint32_t)v;
        } else if (strcmp(k, "max_message") == 0) {
            if (v > 0x7fffffffUL) {
                PyErr_SetString(PyExc_ValueError, "max_message must be below 2 GiB");
                return -1;
            }
            lim->max_message = (uint32_t)v;
        } else if (strcmp(k, "max_headers") == 0) {
            if (v > 65535) {
                PyErr_SetString(PyExc_ValueError, "max_headers must be at most 65535");
                return -1;
            }
            lim->max_headers = (uint32_t)v;
        } else if (strcmp(k, "max_line") == 0) {
            lim->max_line = (uint32_t)v;
        } else if (strcmp(k, "max_vias") == 0) {
            lim->max_vias = (uint32_t)v;
        } else if (strcmp(k, "max_contacts") == 0) {
            lim->max_contacts = (uint32_t)v;
        } else {
            PyErr_Format(PyExc_TypeError, "unexpected keyword argument '%s'", k);
            return -1;
        }
    }
    return 0;
}

/* Index data[0..len) and wrap it; data is a bytes object. */
static PyObject *message_from_bytes(PyObject *data, const gb_limits *lim,
                                    PyTypeObject *force_type)
{
    const char *buf = PyBytes_AS_STRING(data);
    size_t len = (size_t)PyBytes_GET_SIZE(data);
    gb_header stack[STACK_HEADERS];
    gb_header *hdrs = stack;
    uint32_t cap = lim->max_headers < STACK_HEADERS ? lim->max_headers : STACK_HEADERS;
    if (lim->max_headers > STACK_HEADERS) {
        hdrs = PyMem_Malloc(sizeof(gb_header) * lim->max_headers);
        if (!hdrs)
            return PyErr_NoMemory();
        cap = lim->max_headers;
    }
    gb_msg m;
    gb_error err;
    m.headers = hdrs;
    m.max_headers = cap;
    gb_error_code rc = gb_parse(buf, len, 0, lim, &m, &err);
    if (rc) {
        if (hdrs != stack)
            PyMem_Free(hdrs);
        return gbpy_raise_parse_error(&err);
    }
    PyTypeObject *type = m.kind == GB_REQUEST ? &RequestType : &ResponseType;
    if (force_type && force_type != type) {
        if (hdrs != stack)
            PyMem_Free(hdrs);
        PyErr_SetString(gbpy_SIPBuildError, "built message is of the wrong kind");
        return NULL;
    }
    MessageObject *self = PyObject_New(MessageObject, type);
    if (!self) {
        if (hdrs != stack)
            PyMem_Free(hdrs);
        return NULL;
    }
    self->heap = NULL;
    self->lenient = lim->lenient;
    self->msg = m;
    gb_header *dst = self->inline_headers;
    if (m.nheaders > INLINE_HEADERS) {
        self->heap = PyMem_Malloc(sizeof(gb_header) * m.nheaders);
        if (!self->heap) {
            self->data = NULL;
            Py_DECREF(self);
            if (hdrs != stack)
                PyMem_Free(hdrs);
            return PyErr_NoMemory();
        }
        dst = self->heap;
    }
    memcpy(dst, hdrs, sizeof(gb_header) * m.nheaders);
    if (hdrs != stack)
        PyMem_Free(hdrs);
    self->msg.headers = dst;
    self->msg.max_headers = m.nheaders;
    self->data = Py_NewRef(data);
    return (PyObject *)self;
}

static PyObject *as_bytes(PyObject *obj)
{
    if (PyBytes_CheckExact(obj))
        return Py_NewRef(obj);
    if (PyByteArray_Check(obj) || PyMemoryView_Check(obj) || PyBytes_Check(obj))
        return PyBytes_FromObject(obj);
    PyErr_Format(PyExc_TypeError, "expected bytes, bytearray or memoryview, not %.100s",
                 Py_TYPE(obj)->tp_name);
    return NULL;
}

static PyObject *validate_message(MessageObject *self);

/* parse() and frame(): the data, alone, and the limits as keywords. */
static int data_and_limits(const char *fn, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames, gb_limits *lim, int *validate, int allow_validate)
{
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes one positional argument", fn);
        return -1;
    }
    return limits_from_kwargs(lim, args, nargs, kwnames, validate, allow_validate);
}

static PyObject *py_parse(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    (void)module;
    gb_limits lim;
    int validate;
    if (data_and_limits("parse", args, nargs, kwnames, &lim, &validate, 1) < 0)
        return NULL;
    PyObject *data = as_bytes(args[0]);
    if (!data)
        return NULL;
    /* Keep-alive CRLFs before the start line are not part of the message
     * (RFC 5626 §3.5.1); drop them so spans start at offset 0. */
    const char *raw = PyBytes_AS_STRING(data);
    Py_ssize_t skip = 0, total = PyBytes_GET_SIZE(data);
    while (skip < total && (raw[skip] == '\r' || raw[skip] == '\n'))
        skip++;
    if (skip && skip < total) {
        Py_SETREF(data, PyBytes_FromStringAndSize(raw + skip, total - skip));
        if (!data)
            return NULL;
    }
    PyObject *msg = message_from_bytes(data, &lim, NULL);
    Py_DECREF(data);
    if (msg && validate) {
        PyObject *r = validate_message((MessageObject *)msg);
        if (!r) {
            Py_DECREF(msg);
            return NULL;
        }
        Py_DECREF(r);
    }
    return msg;
}

static PyObject *py_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    (void)module;
    gb_limits lim;
    int validate;
    if (data_and_limits("frame", args, nargs, kwnames, &lim, &validate, 0) < 0)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    size_t skip, len;
    gb_error err;
    gb_error_code rc = gb_frame(view.buf, (size_t)view.len, &lim, &skip, &len, &err);
    PyBuffer_Release(&view);
    if (rc == GB_ERR_NEED_MORE)
        Py_RETURN_NONE;
    if (rc)
        return gbpy_raise_parse_error(&err);
    return Py_BuildValue("nn", (Py_ssize_t)skip, (Py_ssize_t)len);
}

/* ------------------------------------------------------------------ */
/* Building                                                            */

typedef struct {
    gb_field *fields;
    size_t n;
    PyObject **keep;      /* bytes objects backing the fields */
    size_t nkeep;
    size_t bytes;         /* sum of name and value lengths */
} field_list;

static void fields_free(field_list *fl)
{
    for (size_t i = 0; i < fl->nkeep; i++)
        Py_DECREF(fl->keep[i]);
    PyMem_Free(fl->keep);
    PyMem_Free(fl->fields);
    memset(fl, 0, sizeof(*fl));
}

static int is_token_run(const char *p, size_t n)
{
    static const char extra[] = "-.!%*_+`'~";
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || (ch && strchr(extra, ch))))
            return 0;
    }
    return 1;
}

static int check_token(const char *p, size_t n, const char *what)
{
    if (is_token_run(p, n))
        return 0;
    PyObject *v = PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "replace");
    if (v) {
        PyErr_Format(gbpy_SIPBuildError, "%s %R is not a SIP token", what, v);
        Py_DECREF(v);
    }
    return -1;
}

static int check_text(const char *p, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0') {
            PyErr_Format(gbpy_SIPBuildError,
                         "%s must not contain CR, LF or NUL (header injection)", what);
            return -1;
        }
    return 0;
}

static int fields_add(field_list *fl, PyObject *name, PyObject *value)
{
    if (!PyUnicode_Check(name) || !PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "header names and values must be str");
        return -1;
    }
    /* surrogateescape round-trips bytes that came off the wire */
    PyObject *nb = PyUnicode_AsEncodedString(name, "utf-8", "surrogateescape");
    if (!nb)
        return -1;
    PyObject *vb = PyUnicode_AsEncodedString(value, "utf-8", "surrogateescape");
    if (!vb) {
        Py_DECREF(nb);
        return -1;
    }
    fl->keep[fl->nkeep++] = nb;
    fl->keep[fl->nkeep++] = vb;
    const char *np = PyBytes_AS_STRING(nb), *vp = PyBytes_AS_STRING(vb);
    Py_ssize_t nn = PyBytes_GET_SIZE(nb), vn = PyBytes_GET_SIZE(vb);
    if (check_token(np, (size_t)nn, "header name") < 0 ||
        check_text(vp, (size_t)vn, "header value") < 0)
        return -1;
    gb_field *f = &fl->fields[fl->n++];
    f->name = np;
    f->name_len = (size_t)nn;
    f->value = vp;
    f->value_len = (size_t)vn;
    fl->bytes += (size_t)(nn + vn) + 4;
    return 0;
}

static int fields_alloc(field_list *fl, size_t n)
{
    memset(fl, 0, sizeof(*fl));
    fl->fields = PyMem_Malloc(sizeof(gb_field) * (n ? n : 1));
    fl->keep = PyMem_Malloc(sizeof(PyObject *) * 2 * (n ? n : 1));
    if (!fl->fields || !fl->keep) {
        PyMem_Free(fl->fields);
        PyMem_Free(fl->keep);
        fl->fields = NULL;
        fl->keep = NULL;
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* headers: an iterable of (name, value) pairs (or a mapping's items). */
static int fields_from_iterable(field_list *fl, PyObject *headers)
{
    PyObject *seq;
    if (PyDict_Check(headers)) {
        PyObject *items = PyDict_Items(headers);
        if (!items)
            return -1;
        seq = items;
    } else {
        seq = PySequence_Fast(headers, "headers must be an iterable of (name, value) pairs");
        if (!seq)
            return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (fields_alloc(fl, (size_t)n) < 0) {
        Py_DECREF(seq);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(pair) && !PyList_Check(pair)) {
            PyErr_SetString(PyExc_TypeError, "each header must be a (name, value) pair");
            goto fail;
        }
        PyObject *t = PySequence_Tuple(pair);
        if (!t)
            goto fail;
        if (PyTuple_GET_SIZE(t) != 2) {
            Py_DECREF(t);
            PyErr_SetString(PyExc_TypeError, "each header must be a (name, value) pair");
            goto fail;
        }
        int r = fields_add(fl, PyTuple_GET_ITEM(t, 0), PyTuple_GET_ITEM(t, 1));
        Py_DECREF(t);
        if (r < 0)
            goto fail;
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    fields_free(fl);
    return -1;
}

typedef int (*build_fn)(gb_writer *w, void *arg);

/* Run a builder into a fresh bytes object, growing it if needed, then
 * index the result. */
static PyObject *build_and_parse(size_t estimate, build_fn fn, void *arg,
                                 const gb_limits *lim, PyTypeObject *type)
{
    size_t cap = estimate + 256;
    for (int attempt = 0; attempt < 4; attempt++, cap *= 4) {
        PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
        if (!out)
            return NULL;
        gb_writer w;
        gb_w_init(&w, PyBytes_AS_STRING(out), cap);
        if (fn(&w, arg) < 0 || w.overflow) {
            Py_DECREF(out);
            if (PyErr_Occurred())
                return NULL;
            continue;
        }
        if (_PyBytes_Resize(&out, (Py_ssize_t)w.len) < 0)
            return NULL;
        PyObject *msg = message_from_bytes(out, lim, type);
        Py_DECREF(out);
        if (!msg && PyErr_ExceptionMatches(gbpy_SIPParseError)) {
            /* The caller built something invalid: say so as a build error. */
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            PyErr_Format(gbpy_SIPBuildError, "the message would not be valid SIP: %S", value);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
        }
        return msg;
    }
    PyErr_SetString(gbpy_SIPBuildError, "message too large to build");
    return NULL;
}

typedef struct {
    const char *method, *uri, *reason, *body;
    size_t method_len, uri_len, reason_len, body_len;
    unsigned status;
    field_list *fl;
} build_args;

static int build_request_cb(gb_writer *w, void *arg)
{
    build_args *a = arg;
    return gb_build_request(w, a->method, a->method_len, a->uri, a->uri_len,
                            a->fl->fields, a->fl->n, a->body, a->body_len);
}

static int build_response_cb(gb_writer *w, void *arg)
{
    build_args *a = arg;
    return gb_build_response(w, a->status, a->reason, a->reason_len,
                             a->fl->fields, a->fl->n, a->body, a->body_len);
}

static gb_limits constructed_limits(void)
{
    gb_limits lim;
    gb_limits_default(&lim);
    /* A message under construction may not yet have every header. */
    lim.lenient = GB_LENIENT_MISSING_HEADERS;
    lim.max_message = 0x7fffffff;
    lim.max_headers = 65535;
    lim.max_line = 0x7fffffff;
    lim.max_vias = 65535;
    lim.max_contacts = 65535;
    return lim;
}

static PyObject *request_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"method", "uri", "headers", "body", NULL};
    PyObject *method, *uri, *headers = NULL;
    Py_buffer body = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "UU|Oy*:Request", kwlist, &method, &uri,
                                     &headers, &body))
        return NULL;
    Py_ssize_t ml, ul;
    const char *m = PyUnicode_AsUTF8AndSize(method, &ml);
    const char *u = m ? PyUnicode_AsUTF8AndSize(uri, &ul) : NULL;
    PyObject *result = NULL;
    field_list fl = {0};
    if (!u)
        goto done;
    if (check_token(m, (size_t)ml, "method") < 0)
        goto done;
    for (Py_ssize_t i = 0; i < ul; i++)
        if ((unsigned char)u[i] <= 0x20) {
            PyErr_SetString(gbpy_SIPBuildError, "Request-URI must not contain whitespace");
            goto done;
        }
    if (headers ? fields_from_iterable(&fl, headers) < 0 : fields_alloc(&fl, 0) < 0)
        goto done;
    build_args a = {.method = m, .method_len = (size_t)ml, .uri = u, .uri_len = (size_t)ul,
                    .body = body.buf, .body_len = (size_t)body.len, .fl = &fl};
    gb_limits lim = constructed_limits();
    result = build_and_parse((size_t)(ml + ul) + fl.bytes + (size_t)body.len, build_request_cb,
                             &a, &lim, &RequestType);
    fields_free(&fl);
done:
    if (body.obj)
        PyBuffer_Release(&body);
    (void)type;
    return result;
}

static PyObject *response_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"status", "reason", "headers", "body", NULL};
    int status;
    PyObject *reason = Py_None, *headers = NULL;
    Py_buffer body = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|OOy*:Response", kwlist, &status, &reason,
                                     &headers, &body))
        return NULL;
    PyObject *result = NULL;
    field_list fl = {0};
    const char *r = NULL;
    Py_ssize_t rl = 0;
    if (status < 100 || status > 699) {
        PyErr_SetString(gbpy_SIPBuildError, "status must be from 100 to 699");
        goto done;
    }
    if (reason != Py_None) {
        r = PyUnicode_AsUTF8AndSize(reason, &rl);
        if (!r || check_text(r, (size_t)rl, "reason") < 0)
            goto done;
    }
    if (headers ? fields_from_iterable(&fl, headers) < 0 : fields_alloc(&fl, 0) < 0)
        goto done;
    build_args a = {.status = (unsigned)status, .reason = r, .reason_len = (size_t)rl,
                    .body = body.buf, .body_len = (size_t)body.len, .fl = &fl};
    gb_limits lim = constructed_limits();
    result = build_and_parse((size_t)rl + fl.bytes + (size_t)body.len, build_response_cb, &a,
                             &lim, &ResponseType);
    fields_free(&fl);
done:
    if (body.obj)
        PyBuffer_Release(&body);
    (void)type;
    return result;
}

/* Replace self's contents with those of fresh (same kind). */
static void adopt(MessageObject *self, MessageObject *fresh)
{
    PyObject *old = self->data;
    self->data = fresh->data;
    fresh->data = old;
    gb_header *oldheap = self->heap;
    gb_msg m = fresh->msg;
    if (m.nheaders <= INLINE_HEADERS) {
        memcpy(self->inline_headers, m.headers, sizeof(gb_header) * m.nheaders);
        m.headers = self->inline_headers;
        self->heap = NULL;
    } else {
        self->heap = fresh->heap;
        fresh->heap = oldheap;
        oldheap = NULL;
    }
    self->msg = m;
    PyMem_Free(oldheap);
}

/* Rebuild self from the field list fl (replacing its headers) and body. */
static int rebuild(MessageObject *self, field_list *fl, const char *body, size_t body_len)
{
    const char *b = BUF(self);
    build_args a = {.fl = fl, .body = body, .body_len = body_len};
    PyObject *fresh;
    gb_limits lim = constructed_limits();
    lim.lenient |= self->lenient;
    if (self->msg.kind == GB_REQUEST) {
        a.method = b + self->msg.method.off;
        a.method_len = self->msg.method.len;
        a.uri = b + self->msg.uri.off;
        a.uri_len = self->msg.uri.len;
        fresh = build_and_parse(self->msg.length + fl->bytes + body_len, build_request_cb, &a,
                                &lim, &RequestType);
    } else {
        a.status = self->msg.status;
        a.reason = b + self->msg.reason.off;
        a.reason_len = self->msg.reason.len;
        fresh = build_and_parse(self->msg.length + fl->bytes + body_len, build_response_cb, &a,
                                &lim, &ResponseType);
    }
    if (!fresh)
        return -1;
    adopt(self, (MessageObject *)fresh);
    Py_DECREF(fresh);
    return 0;
}

/* The message's current headers as fields; skip those matching skip_name
 * (NULL: keep all). */
static int current_fields(MessageObject *self, field_list *fl, size_t extra,
                          const char *skip_name, size_t skip_len, size_t *skipped,
                          int *first_skipped_at)
{
    const char *b = BUF(self);
    if (fields_alloc(fl, self->msg.nheaders + extra) < 0)
        return -1;
    *skipped = 0;
    *first_skipped_at = -1;
    gb_header_id skip_id = skip_name ? gb_header_lookup(skip_name, skip_len) : GB_HDR_OTHER;
    for (unsigned i = 0; i < self->msg.nheaders; i++) {
        const gb_header *h = &self->msg.headers[i];
        if (skip_name && ((skip_id != GB_HDR_OTHER && h->id == skip_id) ||
                          (skip_id == GB_HDR_OTHER && h->id == GB_HDR_OTHER &&
                           gb_ieq(b + h->name.off, h->name.len, skip_name, skip_len)))) {
            if (*first_skipped_at < 0)
                *first_skipped_at = (int)fl->n;
            (*skipped)++;
            continue;
        }
        gb_field *f = &fl->fields[fl->n++];
        f->name = b + h->name.off;
        f->name_len = h->name.len;
        f->value = b + h->value.off;
        f->value_len = h->value.len;
        fl->bytes += h->name.len + h->value.len + 4;
    }
    return 0;
}

/* Insert position for a new header: before a trailing Content-Length. */
static size_t append_position(const field_list *fl)
{
    if (fl->n && gb_header_lookup(fl->fields[fl->n - 1].name, fl->fields[fl->n - 1].name_len) ==
                     GB_HDR_CONTENT_LENGTH)
        return fl->n - 1;
    return fl->n;
}

static int insert_field(field_list *fl, size_t at, PyObject *name, PyObject *value)
{
    if (fields_add(fl, name, value) < 0)
        return -1;
    gb_field f = fl->fields[fl->n - 1];
    memmove(&fl->fields[at + 1], &fl->fields[at], sizeof(gb_field) * (fl->n - 1 - at));
    fl->fields[at] = f;
    return 0;
}

static const char *name_utf8(PyObject *name, Py_ssize_t *n)
{
    if (!PyUnicode_Check(name)) {
        PyErr_SetString(PyExc_TypeError, "header name must be str");
        return NULL;
    }
    return PyUnicode_AsUTF8AndSize(name, n);
}

static PyObject *msg_set_header(MessageObject *self, PyObject *args)
{
    PyObject *name, *value;
    if (!PyArg_ParseTuple(args, "UU:set_header", &name, &value))
        return NULL;
    Py_ssize_t nl;
    const char *n = name_utf8(name, &nl);
    if (!n)
        return NULL;
    field_list fl;
    size_t skipped;
    int at;
    if (current_fields(self, &fl, 1, n, (size_t)nl, &skipped, &at) < 0)
        return NULL;
    int r = insert_field(&fl, at >= 0 ? (size_t)at : append_position(&fl), name, value);
    if (r == 0)
        r = rebuild(self, &fl, BUF(self) + self->msg.body.off, self->msg.body.len);
    fields_free(&fl);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *msg_add_header(MessageObject *self, PyObject *args)
{
    PyObject *name, *value;
    if (!PyArg_ParseTuple(args, "UU:add_header", &name, &value))
        return NULL;
    field_list fl;
    size_t skipped;
    int at;
    if (current_fields(self, &fl, 1, NULL, 0, &skipped, &at) < 0)
        return NULL;
    int r = insert_field(&fl, append_position(&fl), name, value);
    if (r == 0)
        r = rebuild(self, &fl, BUF(self) + self->msg.body.off, self->msg.body.len);
    fields_free(&fl);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *msg_remove_header(MessageObject *self, PyObject *name)
{
    Py_ssize_t nl;
    const char *n = name_utf8(name, &nl);
    if (!n)
        return NULL;
    field_list fl;
    size_t skipped;
    int at;
    if (current_fields(self, &fl, 0, n, (size_t)nl, &skipped, &at) < 0)
        return NULL;
    int r = skipped ? rebuild(self, &fl, BUF(self) + self->msg.body.off, self->msg.body.len) : 0;
    fields_free(&fl);
    if (r < 0)
        return NULL;
    return PyLong_FromSize_t(skipped);
}

static PyObject *msg_set_body(MessageObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"body", "content_type", NULL};
    Py_buffer body;
    PyObject *ctype = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*|O:set_body", kwlist, &body, &ctype))
        return NULL;
    field_list fl;
    size_t skipped = 0;
    int at = -1, r;
    if (ctype != Py_None) {
        r = current_fields(self, &fl, 1, "Content-Type", 12, &skipped, &at);
        if (r == 0) {
            PyObject *cname = PyUnicode_FromString("Content-Type");
            r = cname ? insert_field(&fl, at >= 0 ? (size_t)at : append_position(&fl), cname,
                                     ctype)
                      : -1;
            Py_XDECREF(cname);
        }
    } else {
        r = current_fields(self, &fl, 0, NULL, 0, &skipped, &at);
    }
    if (r == 0) {
        /* body may alias our own buffer: copy it first */
        PyObject *copy = PyBytes_FromStringAndSize(body.buf, body.len);
        r = copy ? rebuild(self, &fl, PyBytes_AS_STRING(copy), (size_t)body.len) : -1;
        Py_XDECREF(copy);
        fields_free(&fl);
    }
    PyBuffer_Release(&body);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* request.reply(status, reason=None, *, to_tag=None, headers=(), body=b"",
 *               received=None, rport=None) */
typedef struct {
    MessageObject *req;
    unsigned status;
    gb_reply_opts opts;
} reply_args;

static int build_reply_cb(gb_writer *w, void *arg)
{
    reply_args *a = arg;
    return gb_build_reply(w, BUF(a->req), &a->req->msg, a->status, &a->opts);
}

static PyObject *request_reply(MessageObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"status", "reason", "to_tag", "headers", "body", "received",
                             "rport", NULL};
    int status;
    PyObject *reason = Py_None, *to_tag = Py_None, *headers = NULL, *received = Py_None,
             *rport = Py_None;
    Py_buffer body = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|O$OOy*OO:reply", kwlist, &status, &reason,
                                     &to_tag, &headers, &body, &received, &rport))
        return NULL;
    PyObject *result = NULL;
    field_list fl = {0};
    reply_args a = {.req = self, .status = (unsigned)status};
    char tagbuf[16];
    if (status < 100 || status > 699) {
        PyErr_SetString(gbpy_SIPBuildError, "status must be from 100 to 699");
        goto done;
    }
    Py_ssize_t n;
    if (reason != Py_None) {
        if (!(a.opts.reason = PyUnicode_AsUTF8AndSize(reason, &n)) ||
            check_text(a.opts.reason, (size_t)n, "reason") < 0)
            goto done;
        a.opts.reason_len = (size_t)n;
    }
    if (to_tag != Py_None) {
        if (!(a.opts.to_tag = PyUnicode_AsUTF8AndSize(to_tag, &n)) ||
            check_token(a.opts.to_tag, (size_t)n, "to_tag") < 0)
            goto done;
        a.opts.to_tag_len = (size_t)n;
    } else {
        /* RFC 3261 §8.2.6.2: a UAS adds a tag when To has none. */
        static const char hex[] = "0123456789abcdef";
        unsigned char rnd[5];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            PyErr_SetString(gbpy_GBSIPError, "OpenSSL RAND_bytes failed");
            goto done;
        }
        for (int i = 0; i < 5; i++) {
            tagbuf[2 * i] = hex[rnd[i] >> 4];
            tagbuf[2 * i + 1] = hex[rnd[i] & 15];
        }
        a.opts.to_tag = tagbuf;
        a.opts.to_tag_len = 10;
    }
    if (received != Py_None) {
        if (!(a.opts.received = PyUnicode_AsUTF8AndSize(received, &n)) ||
            check_text(a.opts.received, (size_t)n, "received") < 0)
            goto done;
        a.opts.received_len = (size_t)n;
    }
    if (rport != Py_None) {
        long v = PyLong_AsLong(rport);
        if (v == -1 && PyErr_Occurred())
            goto done;
        if (v < 1 || v > 65535) {
            PyErr_SetString(gbpy_SIPBuildError, "rport must be a port number");
            goto done;
        }
        a.opts.rport = (int)v;
    }
    if (headers ? fields_from_iterable(&fl, headers) < 0 : fields_alloc(&fl, 0) < 0)
        goto done;
    a.opts.fields = fl.fields;
    a.opts.nfields = fl.n;
    a.opts.body = body.buf;
    a.opts.body_len = (size_t)body.len;
    gb_limits lim = constructed_limits();
    result = build_and_parse(self->msg.length + fl.bytes + (size_t)body.len, build_reply_cb, &a,
                             &lim, &ResponseType);
    fields_free(&fl);
done:
    if (body.obj)
        PyBuffer_Release(&body);
    return result;
}

/* ------------------------------------------------------------------ */
/* Properties                                                          */

static const gb_header *first_header(MessageObject *self, gb_header_id id)
{
    unsigned i = self->msg.first[id];
    return i ? &self->msg.headers[i - 1] : NULL;
}

static PyObject *first_value(MessageObject *self, gb_header_id id)
{
    const gb_header *h = first_header(self, id);
    if (!h)
        Py_RETURN_NONE;
    return header_value(self, h);
}

/* Properties that differ only in which header or field they read get it
 * through the getter's closure. */
#define HDR(id) ((void *)(uintptr_t)(id))
#define FIELD(name) ((void *)(uintptr_t)offsetof(gb_msg, name))

/* A header's value as str (closure: HDR), or None. */
static PyObject *msg_get_value(MessageObject *self, void *id)
{
    return first_value(self, (gb_header_id)(uintptr_t)id);
}

/* A number the indexer kept (closure: FIELD of an int64_t; -1: None). */
static PyObject *msg_get_number(MessageObject *self, void *off)
{
    return opt_int(*(const int64_t *)((const char *)&self->msg + (uintptr_t)off));
}

/* A span of the start line (closure: FIELD of a gb_span) as str. */
static PyObject *msg_get_span(MessageObject *self, void *off)
{
    return span_str(BUF(self), *(const gb_span *)((const char *)&self->msg + (uintptr_t)off));
}

static PyObject *msg_get_cseq(MessageObject *self, void *c)
{
    (void)c;
    if (!self->msg.first[GB_HDR_CSEQ])
        Py_RETURN_NONE;
    const char *b = BUF(self);
    const char *mp = b + self->msg.method.off;
    size_t ml = self->msg.method.len;
    if (self->msg.kind == GB_REQUEST) {
        /* the CSeq method equals the request method unless lenient */
        const gb_header *h = first_header(self, GB_HDR_CSEQ);
        const char *v = b + h->value.off;
        size_t k = 0;
        while (k < h->value.len && v[k] >= '0' && v[k] <= '9')
            k++;
        while (k < h->value.len && (v[k] == ' ' || v[k] == '\t' || v[k] == '\r' || v[k] == '\n'))
            k++;
        mp = v + k;
        ml = h->value.len - k;
    }
    PyObject *items[2] = {PyLong_FromUnsignedLong(self->msg.cseq), str_from(mp, ml)};
    return make_struct(CSeqType, items, 2);
}

/* From or To (closure: HDR) as a NameAddress, or None. */
static PyObject *msg_get_name_addr(MessageObject *self, void *id)
{
    const gb_header *h = first_header(self, (gb_header_id)(uintptr_t)id);
    if (!h)
        Py_RETURN_NONE;
    return parse_in_header(self, h, h->value, name_addr_object);
}

/* Every value of a list header (closure: a list_of) as objects. */
typedef struct {
    gb_header_id id;
    value_parser convert;
} list_of;

static const list_of VIAS = {GB_HDR_VIA, via_object}, CONTACTS = {GB_HDR_CONTACT, contact_object};

static PyObject *msg_get_list(MessageObject *self, void *what)
{
    const list_of *l = what;
    return list_values(self, l->id, l->convert);
}

static PyObject *msg_get_via(MessageObject *self, void *c)
{
    (void)c;
    const gb_header *h = first_header(self, GB_HDR_VIA);
    if (!h)
        Py_RETURN_NONE;
    gb_list_iter it;
    gb_span item;
    gb_error err = {0};
    gb_list_begin(&it, BUF(self), h->value);
    int r = gb_list_next(&it, &item, &err);
    if (r < 0)
        return raise_in_header(self, h, &err);
    if (r == 0) {
        err.code = GB_ERR_VIA;
        err.offset = h->value.off;
        err.reason = "empty Via";
        return raise_in_header(self, h, &err);
    }
    return parse_in_header(self, h, item, via_object);
}


static PyObject *msg_get_min_expires(MessageObject *self, void *c)
{
    (void)c;
    const gb_header *h = first_header(self, GB_HDR_MIN_EXPIRES);
    if (!h)
        Py_RETURN_NONE;
    uint64_t v;
    if (gb_parse_uint(BUF(self) + h->value.off, h->value.len, 0xffffffffu, &v) < 0) {
        gb_error err = {.code = GB_ERR_HEADER_VALUE, .offset = h->value.off,
                        .reason = "Min-Expires must be delta-seconds"};
        return raise_in_header(self, h, &err);
    }
    return PyLong_FromUnsignedLongLong(v);
}

static PyObject *msg_get_body(MessageObject *self, void *c)
{
    (void)c;
    return PyBytes_FromStringAndSize(BUF(self) + self->msg.body.off, self->msg.body.len);
}

static PyObject *date_object(const char *b, gb_span in, gb_error *err, int *failed)
{
    gb_date d;
    *failed = 0;
    if (gb_parse_date(b, in, &d, err)) {
        *failed = 1;
        return NULL;
    }
    PyObject *tz = d.format == GB_DATE_RFC1123 ? PyDateTime_TimeZone_UTC : Py_None;
    return PyDateTimeAPI->DateTime_FromDateAndTime(d.year, d.month, d.day, d.hour, d.minute,
                                                   d.second > 59 ? 59 : d.second,
                                                   d.millisecond * 1000, tz,
                                                   PyDateTimeAPI->DateTimeType);
}

static PyObject *msg_get_date(MessageObject *self, void *c)
{
    (void)c;
    const gb_header *h = first_header(self, GB_HDR_DATE);
    if (!h)
        Py_RETURN_NONE;
    return parse_in_header(self, h, h->value, date_object);
}


static PyObject *msg_get_request_uri(MessageObject *self, void *c)
{
    (void)c;
    gb_error err = {0};
    int failed;
    PyObject *o = uri_object(BUF(self), self->msg.uri, &err, &failed);
    if (!o && failed) {
        err.line = 1;
        err.status = 400;
        return gbpy_raise_parse_error(&err);
    }
    return o;
}

static PyObject *msg_get_status(MessageObject *self, void *c)
{
    (void)c;
    return PyLong_FromLong(self->msg.status);
}


static PyObject *msg_get_headers(MessageObject *self, void *c)
{
    (void)c;
    HeadersObject *h = PyObject_New(HeadersObject, &HeadersType);
    if (!h)
        return NULL;
    h->msg = (MessageObject *)Py_NewRef(self);
    return (PyObject *)h;
}

/* Sub-parse every structured header; raise on the first bad one. */
static PyObject *validate_message(MessageObject *self)
{
    PyObject *o;
    if (self->msg.kind == GB_REQUEST) {
        o = msg_get_request_uri(self, NULL);
        if (!o)
            return NULL;
        Py_DECREF(o);
    }
    for (unsigned i = 0; i < self->msg.nheaders; i++) {
        const gb_header *h = &self->msg.headers[i];
        value_parser fn = NULL;
        int list = 0;
        switch (h->id) {
        case GB_HDR_FROM:
        case GB_HDR_TO:
            fn = name_addr_object;
            break;
        case GB_HDR_ROUTE:
        case GB_HDR_RECORD_ROUTE:
            fn = name_addr_object;
            list = 1;
            break;
        case GB_HDR_CONTACT:
            fn = contact_object;
            list = 1;
            break;
        case GB_HDR_VIA:
            fn = via_object;
            list = 1;
            break;
        case GB_HDR_DATE:
            fn = date_object;
            break;
        case GB_HDR_MIN_EXPIRES:
            o = msg_get_min_expires(self, NULL);
            if (!o)
                return NULL;
            Py_DECREF(o);
            continue;
        case GB_HDR_CONTENT_TYPE: {
            /* media-type = m-type SLASH m-subtype *(SEMI m-parameter) */
            const char *b = BUF(self) + h->value.off;
            size_t n = h->value.len, k = 0;
            int ok = 1;
            size_t t0 = k;
            while (k < n && b[k] != '/' && b[k] != ' ' && b[k] != '\t' && b[k] != ';')
                k++;
            ok = k > t0 && k < n && is_token_run(b + t0, k - t0);
            if (ok) {
                while (k < n && (b[k] == ' ' || b[k] == '\t'))
                    k++;
                ok = k < n && b[k] == '/';
            }
            if (!ok) {
                gb_error err = {.code = GB_ERR_HEADER_VALUE, .offset = h->value.off,
                                .reason = "Content-Type must be type/subtype"};
                return raise_in_header(self, h, &err);
            }
            continue;
        }
        default:
            continue;
        }
        if (!list) {
            o = parse_in_header(self, h, h->value, fn);
            if (!o)
                return NULL;
            Py_DECREF(o);
            continue;
        }
        gb_list_iter it;
        gb_span item;
        gb_error err = {0};
        int r;
        gb_list_begin(&it, BUF(self), h->value);
        while ((r = gb_list_next(&it, &item, &err)) == 1) {
            o = parse_in_header(self, h, item, fn);
            if (!o)
                return NULL;
            Py_DECREF(o);
        }
        if (r < 0)
            return raise_in_header(self, h, &err);
    }
    Py_RETURN_NONE;
}

static PyObject *msg_validate(MessageObject *self, PyObject *unused)
{
    (void)unused;
    return validate_message(self);
}

static PyObject *msg_header_line(MessageObject *self, PyObject *name)
{
    Py_ssize_t nl;
    const char *n = name_utf8(name, &nl);
    if (!n)
        return NULL;
    int i = gb_msg_find_name(&self->msg, BUF(self), n, (size_t)nl, -1);
    if (i < 0)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLong(self->msg.headers[i].line);
}

static PyObject *msg_bytes(MessageObject *self, PyObject *unused)
{
    (void)unused;
    if ((Py_ssize_t)self->msg.length == PyBytes_GET_SIZE(self->data))
        return Py_NewRef(self->data);
    return PyBytes_FromStringAndSize(BUF(self), self->msg.length);
}

static Py_ssize_t msg_len(MessageObject *self)
{
    return (Py_ssize_t)self->msg.length;
}

static PyObject *msg_repr(MessageObject *self)
{
    const char *b = BUF(self);
    int req = self->msg.kind == GB_REQUEST;
    PyObject *cid = first_value(self, GB_HDR_CALL_ID);
    PyObject *x = span_str(b, req ? self->msg.method : self->msg.reason);
    PyObject *y = span_str(b, req ? self->msg.uri : self->msg.method);
    PyObject *r = NULL;
    if (cid && x && y)
        r = req ? PyUnicode_FromFormat("<Request %U %U call_id=%R cseq=%u>", x, y, cid,
                                       (unsigned)self->msg.cseq)
                : PyUnicode_FromFormat("<Response %d %U call_id=%R cseq=%u %U>", self->msg.status,
                                       x, cid, (unsigned)self->msg.cseq, y);
    Py_XDECREF(cid);
    Py_XDECREF(x);
    Py_XDECREF(y);
    return r;
}

static PyObject *msg_richcompare(PyObject *a, PyObject *b, int op)
{
    if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(b, &MessageType) ||
        Py_TYPE(a) != Py_TYPE(b))
        Py_RETURN_NOTIMPLEMENTED;
    MessageObject *x = (MessageObject *)a, *y = (MessageObject *)b;
    int eq = x->msg.length == y->msg.length && !memcmp(BUF(x), BUF(y), x->msg.length);
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static void msg_dealloc(MessageObject *self)
{
    Py_XDECREF(self->data);
    PyMem_Free(self->heap);
    PyObject_Free(self);
}

static PyGetSetDef message_getset[] = {
    {"headers", (getter)msg_get_headers, NULL, "All header lines, in wire order.", NULL},
    {"call_id", (getter)msg_get_value, NULL, "Call-ID, or None.", HDR(GB_HDR_CALL_ID)},
    {"cseq", (getter)msg_get_cseq, NULL, "CSeq(number, method), or None.", NULL},
    {"from_", (getter)msg_get_name_addr, NULL, "From as a NameAddress.", HDR(GB_HDR_FROM)},
    {"to", (getter)msg_get_name_addr, NULL, "To as a NameAddress.", HDR(GB_HDR_TO)},
    {"via", (getter)msg_get_via, NULL, "The top Via.", NULL},
    {"vias", (getter)msg_get_list, NULL, "Every Via value, top first.", (void *)&VIAS},
    {"contacts", (getter)msg_get_list, NULL, "Every Contact value.", (void *)&CONTACTS},
    {"expires", (getter)msg_get_number, NULL, "Expires header (seconds), or None.",
     FIELD(expires)},
    {"min_expires", (getter)msg_get_min_expires, NULL, "Min-Expires, or None.", NULL},
    {"max_forwards", (getter)msg_get_number, NULL, "Max-Forwards, or None.", FIELD(max_forwards)},
    {"content_type", (getter)msg_get_value, NULL, "Content-Type, or None.",
     HDR(GB_HDR_CONTENT_TYPE)},
    {"content_length", (getter)msg_get_number, NULL, "Content-Length, or None.",
     FIELD(content_length)},
    {"user_agent", (getter)msg_get_value, NULL, "User-Agent, or None.", HDR(GB_HDR_USER_AGENT)},
    {"body", (getter)msg_get_body, NULL, "The body bytes.", NULL},
    {"date", (getter)msg_get_date, NULL,
     "Date as a datetime: naive for the GB/T 28181 form, UTC for RFC 1123.", NULL},
    {NULL},
};

static PyMethodDef message_methods[] = {
    {"validate", (PyCFunction)msg_validate, METH_NOARGS,
     "Parse every structured header; raise SIPParseError on the first bad one."},
    {"set_header", (PyCFunction)msg_set_header, METH_VARARGS,
     "Replace every header of that name by one (added at the end if absent)."},
    {"add_header", (PyCFunction)msg_add_header, METH_VARARGS,
     "Add a header after the others (before a trailing Content-Length)."},
    {"remove_header", (PyCFunction)msg_remove_header, METH_O,
     "Remove every header of that name; returns how many were removed."},
    {"set_body", (PyCFunction)(void (*)(void))msg_set_body, METH_VARARGS | METH_KEYWORDS,
     "Replace the body (Content-Length follows; Content-Type if given)."},
    {"header_line", (PyCFunction)msg_header_line, METH_O,
     "1-based line number of the first header of that name, or None."},
    {"__bytes__", (PyCFunction)msg_bytes, METH_NOARGS, "The message as sent on the wire."},
    {NULL},
};

static PySequenceMethods message_as_sequence = {
    .sq_length = (lenfunc)msg_len,
};

static PyTypeObject MessageType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gbsip.Message",
    .tp_basicsize = sizeof(MessageObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A SIP message: its wire bytes plus a zero-copy index.",
    .tp_dealloc = (destructor)msg_dealloc,
    .tp_getset = message_getset,
    .tp_methods = message_methods,
    .tp_as_sequence = &message_as_sequence,
    .tp_repr = (reprfunc)msg_repr,
    .tp_richcompare = msg_richcompare,
    .tp_hash = PyObject_HashNotImplemented,
};

static PyGetSetDef request_getset[] = {
    {"method", (getter)msg_get_span, NULL, "Request method.", FIELD(method)},
    {"uri", (getter)msg_get_span, NULL, "Request-URI as sent.", FIELD(uri)},
    {"request_uri", (getter)msg_get_request_uri, NULL, "Request-URI parsed.", NULL},
    {NULL},
};

static PyMethodDef request_methods[] = {
    {"reply", (PyCFunction)(void (*)(void))request_reply, METH_VARARGS | METH_KEYWORDS,
     "A response per RFC 3261 §8.2.6: Via, From, To (+tag), Call-ID, CSeq copied."},
    {NULL},
};

static PyTypeObject RequestType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gbsip.Request",
    .tp_basicsize = sizeof(MessageObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Request(method, uri, headers=(), body=b'')\n\nA SIP request.",
    .tp_getset = request_getset,
    .tp_methods = request_methods,
    .tp_new = request_new,
};

static PyGetSetDef response_getset[] = {
    {"status", (getter)msg_get_status, NULL, "Status code.", NULL},
    {"reason", (getter)msg_get_span, NULL, "Reason phrase.", FIELD(reason)},
    {NULL},
};

static PyTypeObject ResponseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gbsip.Response",
    .tp_basicsize = sizeof(MessageObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Response(status, reason=None, headers=(), body=b'')\n\nA SIP response.",
    .tp_getset = response_getset,
    .tp_new = response_new,
};

/* ------------------------------------------------------------------ */
/* Headers view                                                        */

static int headers_find(HeadersObject *self, PyObject *name, int after)
{
    Py_ssize_t nl;
    const char *n = name_utf8(name, &nl);
    if (!n)
        return -2;
    return gb_msg_find_name(&self->msg->msg, BUF(self->msg), n, (size_t)nl, after);
}

static PyObject *headers_get(HeadersObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(name, default=None)");
        return NULL;
    }
    int i = headers_find(self, args[0], -1);
    if (i == -2)
        return NULL;
    if (i < 0)
        return Py_NewRef(nargs == 2 ? args[1] : Py_None);
    return header_value(self->msg, &self->msg->msg.headers[i]);
}

static PyObject *headers_getall(HeadersObject *self, PyObject *name)
{
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    for (int i = headers_find(self, name, -1); i >= 0; i = headers_find(self, name, i)) {
        PyObject *v = header_value(self->msg, &self->msg->msg.headers[i]);
        if (!v || PyList_Append(list, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(v);
    }
    if (PyErr_Occurred()) {
        Py_DECREF(list);
        return NULL;
    }
    return list;
}

/* Every header line's name, or (name, value) pair when pairs, in wire order. */
static PyObject *header_lines(HeadersObject *self, int pairs)
{
    const gb_msg *m = &self->msg->msg;
    PyObject *list = PyList_New(m->nheaders);
    for (unsigned i = 0; list && i < m->nheaders; i++) {
        PyObject *item = span_str(BUF(self->msg), m->headers[i].name);
        if (item && pairs) {
            PyObject *v = header_value(self->msg, &m->headers[i]);
            Py_SETREF(item, v ? PyTuple_Pack(2, item, v) : NULL);
            Py_XDECREF(v);
        }
        if (!item)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static PyObject *headers_items(HeadersObject *self, PyObject *unused)
{
    (void)unused;
    return header_lines(self, 1);
}

static PyObject *headers_keys(HeadersObject *self, PyObject *unused)
{
    (void)unused;
    return header_lines(self, 0);
}

static PyObject *headers_getitem(HeadersObject *self, PyObject *name)
{
    int i = headers_find(self, name, -1);
    if (i == -2)
        return NULL;
    if (i < 0) {
        PyErr_SetObject(PyExc_KeyError, name);
        return NULL;
    }
    return header_value(self->msg, &self->msg->msg.headers[i]);
}

static int headers_contains(HeadersObject *self, PyObject *name)
{
    if (!PyUnicode_Check(name))
        return 0;
    int i = headers_find(self, name, -1);
    return i == -2 ? -1 : i >= 0;
}

static Py_ssize_t headers_len(HeadersObject *self)
{
    return self->msg->msg.nheaders;
}

static PyObject *headers_iter(HeadersObject *self)
{
    PyObject *keys = headers_keys(self, NULL);
    if (!keys)
        return NULL;
    PyObject *it = PyObject_GetIter(keys);
    Py_DECREF(keys);
    return it;
}

static PyObject *headers_repr(HeadersObject *self)
{
    PyObject *items = headers_items(self, NULL);
    if (!items)
        return NULL;
    PyObject *r = PyUnicode_FromFormat("Headers(%R)", items);
    Py_DECREF(items);
    return r;
}

static void headers_dealloc(HeadersObject *self)
{
    Py_XDECREF(self->msg);
    PyObject_Free(self);
}

static PyMethodDef headers_methods[] = {
    {"get", (PyCFunction)(void (*)(void))headers_get, METH_FASTCALL,
     "First value of that header (unfolded), or default."},
    {"getall", (PyCFunction)headers_getall, METH_O, "Every value of that header, in order."},
    {"items", (PyCFunction)headers_items, METH_NOARGS, "(name, value) per line, wire order."},
    {"keys", (PyCFunction)headers_keys, METH_NOARGS, "Names as on the wire, in order."},
    {NULL},
};

static PyMappingMethods headers_as_mapping = {
    .mp_length = (lenfunc)headers_len,
    .mp_subscript = (binaryfunc)headers_getitem,
};

static PySequenceMethods headers_as_sequence = {
    .sq_contains = (objobjproc)headers_contains,
};

static PyTypeObject HeadersType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gbsip.Headers",
    .tp_basicsize = sizeof(HeadersObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Read-only, case-insensitive multi-dict of a message's header lines.",
    .tp_dealloc = (destructor)headers_dealloc,
    .tp_methods = headers_methods,
    .tp_as_mapping = &headers_as_mapping,
    .tp_as_sequence = &headers_as_sequence,
    .tp_iter = (getiterfunc)headers_iter,
    .tp_repr = (reprfunc)headers_repr,
};

/* ------------------------------------------------------------------ */
/* Module-level helpers                                                */

static PyObject *parse_str_with(PyObject *value, value_parser fn)
{
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "expected str");
        return NULL;
    }
    PyObject *b = PyUnicode_AsEncodedString(value, "utf-8", "surrogateescape");
    if (!b)
        return NULL;
    gb_error err = {0};
    int failed;
    gb_span all = {0, (uint32_t)PyBytes_GET_SIZE(b)};
    PyObject *o = fn(PyBytes_AS_STRING(b), all, &err, &failed);
    Py_DECREF(b);
    if (!o && failed) {
        if (!err.status)
            err.status = gb_error_status(err.code);
        return gbpy_raise_parse_error(&err);
    }
    return o;
}

static PyObject *py_parse_uri(PyObject *m, PyObject *v)
{
    (void)m;
    return parse_str_with(v, uri_object);
}

static PyObject *py_parse_name_addr(PyObject *m, PyObject *v)
{
    (void)m;
    return parse_str_with(v, name_addr_object);
}

static PyObject *py_parse_date(PyObject *m, PyObject *v)
{
    (void)m;
    return parse_str_with(v, date_object);
}

static PyObject *py_parse_via(PyObject *m, PyObject *value)
{
    (void)m;
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "expected str");
        return NULL;
    }
    PyObject *b = PyUnicode_AsEncodedString(value, "utf-8", "surrogateescape");
    if (!b)
        return NULL;
    const char *buf = PyBytes_AS_STRING(b);
    gb_span all = {0, (uint32_t)PyBytes_GET_SIZE(b)};
    PyObject *list = PyList_New(0);
    gb_list_iter it;
    gb_span item;
    gb_error err = {0};
    int r, failed;
    gb_list_begin(&it, buf, all);
    while (list && (r = gb_list_next(&it, &item, &err)) == 1) {
        PyObject *o = via_object(buf, item, &err, &failed);
        if (!o || PyList_Append(list, o) < 0) {
            Py_XDECREF(o);
            Py_CLEAR(list);
            if (failed)
                gbpy_raise_parse_error(&err);
            break;
        }
        Py_DECREF(o);
    }
    if (list && r < 0) {
        Py_CLEAR(list);
        gbpy_raise_parse_error(&err);
    }
    if (list && PyList_GET_SIZE(list) == 0) {
        Py_CLEAR(list);
        err.code = GB_ERR_VIA;
        err.status = 400;
        err.reason = "empty Via";
        gbpy_raise_parse_error(&err);
    }
    Py_DECREF(b);
    return list;
}

static PyObject *py_format_gb_date(PyObject *m, PyObject *v)
{
    (void)m;
    if (!PyDateTime_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "expected a datetime");
        return NULL;
    }
    gb_date d = {
        .year = PyDateTime_GET_YEAR(v),
        .month = PyDateTime_GET_MONTH(v),
        .day = PyDateTime_GET_DAY(v),
        .hour = PyDateTime_DATE_GET_HOUR(v),
        .minute = PyDateTime_DATE_GET_MINUTE(v),
        .second = PyDateTime_DATE_GET_SECOND(v),
        .millisecond = PyDateTime_DATE_GET_MICROSECOND(v) / 1000,
    };
    char out[23];
    gb_format_gb_date(&d, out);
    return PyUnicode_FromStringAndSize(out, 23);
}

static PyObject *py_status_phrase(PyObject *m, PyObject *v)
{
    (void)m;
    long s = PyLong_AsLong(v);
    if (s == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(gb_status_phrase((unsigned)s));
}

static PyMethodDef module_functions[] = {
    {"parse", (PyCFunction)(void (*)(void))py_parse, METH_FASTCALL | METH_KEYWORDS,
     "parse(data, *, lenient=0, max_message=65536, max_headers=128, max_line=8192,\n"
     "      max_vias=70, max_contacts=32, validate=False) -> Request | Response\n\n"
     "Parse one SIP message held in one datagram."},
    {"frame", (PyCFunction)(void (*)(void))py_frame, METH_FASTCALL | METH_KEYWORDS,
     "frame(data, *, lenient=0, max_message=65536, ...) -> (skip, length) | None\n\n"
     "Stream framing: None while more bytes are needed."},
    {"parse_uri", py_parse_uri, METH_O, "Parse a SIP or other URI."},
    {"parse_name_addr", py_parse_name_addr, METH_O, "Parse a name-addr or addr-spec."},
    {"parse_via", py_parse_via, METH_O, "Parse a Via header value into a list of Via."},
    {"parse_date", py_parse_date, METH_O, "Parse an RFC 1123 or GB/T 28181 Date."},
    {"format_gb_date", py_format_gb_date, METH_O,
     "Format a datetime as GB/T 28181 'yyyy-MM-ddTHH:mm:ss.SSS'."},
    {"status_phrase", py_status_phrase, METH_O, "Standard reason phrase for a status."},
    {NULL},
};

static PyStructSequence_Field cseq_fields[] = {
    {"number", "CSeq number"}, {"method", "CSeq method"}, {NULL}};
static PyStructSequence_Field uri_fields[] = {
    {"raw", "the URI as written"}, {"scheme", "lower-case scheme"},
    {"user", "user part, %-escapes decoded"}, {"password", "password"},
    {"host", "host (IPv6 with brackets)"}, {"port", "port or None"},
    {"params", "URI parameters"}, {"headers", "URI headers"}, {NULL}};
static PyStructSequence_Field name_addr_fields[] = {
    {"display_name", "display name or None"}, {"uri", "the URI"},
    {"tag", "tag parameter or None"}, {"params", "header parameters"}, {NULL}};
static PyStructSequence_Field contact_fields[] = {
    {"display_name", "display name or None"}, {"uri", "the URI, or '*'"},
    {"expires", "expires parameter or None"}, {"q", "q parameter or None"},
    {"params", "header parameters"}, {"wildcard", "True for Contact: *"}, {NULL}};
static PyStructSequence_Field via_fields[] = {
    {"transport", "UDP, TCP..."}, {"host", "sent-by host"}, {"port", "sent-by port or None"},
    {"branch", "branch or None"},
    {"rport", "None absent, True without value, else the port"},
    {"received", "received or None"}, {"params", "all parameters"},
    {"sent_by", "host[:port] as written"}, {NULL}};

static PyStructSequence_Desc cseq_desc = {"gbsip.CSeq", "CSeq(number, method)", cseq_fields, 2};
static PyStructSequence_Desc uri_desc = {"gbsip.URI", "A parsed URI.", uri_fields, 8};
static PyStructSequence_Desc name_addr_desc = {"gbsip.NameAddress",
                                               "A parsed name-addr (From, To).",
                                               name_addr_fields, 4};
static PyStructSequence_Desc contact_desc = {"gbsip.Contact", "One Contact value.",
                                             contact_fields, 6};
static PyStructSequence_Desc via_desc = {"gbsip.Via", "One Via value.", via_fields, 8};

int gbpy_message_init(PyObject *module)
{
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI)
        return -1;
    PyObject *bases = PyTuple_Pack(2, gbpy_LocalProtocolError, PyExc_ValueError);
    if (!bases)
        return -1;
    gbpy_SIPBuildError = PyErr_NewExceptionWithDoc(
        "gbsip.SIPBuildError",
        "The caller asked for a message that would not be valid SIP.", bases, NULL);
    Py_DECREF(bases);
    if (!gbpy_SIPBuildError ||
        PyModule_AddObjectRef(module, "SIPBuildError", gbpy_SIPBuildError) < 0)
        return -1;

    RequestType.tp_base = &MessageType;
    ResponseType.tp_base = &MessageType;
    RequestType.tp_dealloc = (destructor)msg_dealloc;
    ResponseType.tp_dealloc = (destructor)msg_dealloc;
    if (PyType_Ready(&MessageType) < 0 || PyType_Ready(&RequestType) < 0 ||
        PyType_Ready(&ResponseType) < 0 || PyType_Ready(&HeadersType) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "Message", (PyObject *)&MessageType) < 0 ||
        PyModule_AddObjectRef(module, "Request", (PyObject *)&RequestType) < 0 ||
        PyModule_AddObjectRef(module, "Response", (PyObject *)&ResponseType) < 0 ||
        PyModule_AddObjectRef(module, "Headers", (PyObject *)&HeadersType) < 0)
        return -1;

    if (!(CSeqType = PyStructSequence_NewType(&cseq_desc)) ||
        !(URIType = PyStructSequence_NewType(&uri_desc)) ||
        !(NameAddressType = PyStructSequence_NewType(&name_addr_desc)) ||
        !(ContactType = PyStructSequence_NewType(&contact_desc)) ||
        !(ViaType = PyStructSequence_NewType(&via_desc)))
        return -1;
    if (PyModule_AddObjectRef(module, "CSeq", (PyObject *)CSeqType) < 0 ||
        PyModule_AddObjectRef(module, "URI", (PyObject *)URIType) < 0 ||
        PyModule_AddObjectRef(module, "NameAddress", (PyObject *)NameAddressType) < 0 ||
        PyModule_AddObjectRef(module, "Contact", (PyObject *)ContactType) < 0 ||
        PyModule_AddObjectRef(module, "Via", (PyObject *)ViaType) < 0)
        return -1;

    if (PyModule_AddFunctions(module, module_functions) < 0)
        return -1;
    gb_limits lim;
    gb_limits_default(&lim);
    if (PyModule_AddIntConstant(module, "DEFAULT_MAX_MESSAGE", lim.max_message) < 0 ||
        PyModule_AddIntConstant(module, "DEFAULT_MAX_HEADERS", lim.max_headers) < 0 ||
        PyModule_AddIntConstant(module, "DEFAULT_MAX_LINE", lim.max_line) < 0 ||
        PyModule_AddIntConstant(module, "DEFAULT_MAX_VIAS", lim.max_vias) < 0 ||
        PyModule_AddIntConstant(module, "DEFAULT_MAX_CONTACTS", lim.max_contacts) < 0 ||
        PyModule_AddIntConstant(module, "LENIENT_LF_ONLY", GB_LENIENT_LF_ONLY) < 0 ||
        PyModule_AddIntConstant(module, "LENIENT_CSEQ_METHOD", GB_LENIENT_CSEQ_METHOD) < 0 ||
        PyModule_AddIntConstant(module, "LENIENT_MISSING_HEADERS",
                                GB_LENIENT_MISSING_HEADERS) < 0 ||
        PyModule_AddIntConstant(module, "LENIENT_STREAM_NO_CONTENT_LENGTH",
                                GB_LENIENT_STREAM_NO_CONTENT_LENGTH) < 0 ||
        PyModule_AddIntConstant(module, "LENIENT_SPACING", GB_LENIENT_SPACING) < 0 ||
        PyModule_AddIntConstant(module, "LENIENT_VERSION", GB_LENIENT_VERSION) < 0 ||
        PyModule_AddIntConstant(module, "LENIENT_ALL", GB_LENIENT_ALL) < 0)
        return -1;
    return 0;
}
