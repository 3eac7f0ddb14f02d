/*
 * py_manscdp.c - gbsip._core's MANSCDP+xml part: ManscdpDocument (the body's
 * bytes plus the reader's node index), manscdp_parse() and manscdp_build().
 *
 * Like Message, nothing becomes a Python object at parse time: the node
 * array is copied out of a stack buffer into one exact-size allocation, and
 * each accessor decodes its span by the document's charset when called.
 * gbsip/manscdp.py wraps this in the public, typed API.
 */
#include "py_core.h"

#include <stdint.h>
#include <string.h>

#include "manscdp.h"

static PyObject *ManscdpError, *ManscdpBuildError;

/* Nodes on the stack during a parse; larger limits parse into the heap. */
#define STACK_NODES 512

typedef struct {
    PyObject_HEAD
    PyObject *data;           /* bytes: the body */
    gb_manscdp_doc doc;       /* spans relative to data */
    const char *codec;        /* Python codec for texts */
    PyObject *encoding;       /* declared encoding name (str) or None */
} DocObject;

static PyTypeObject DocType;

#define DBUF(self) PyBytes_AS_STRING((self)->data)

static void doc_dealloc(DocObject *self)
{
    Py_XDECREF(self->data);
    Py_XDECREF(self->encoding);
    PyMem_Free(self->doc.nodes);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* GB2312 and GBK are subsets of GB18030, which decodes what cameras call
 * GB2312 but send as GBK.  Without a declaration: UTF-8 when the body is
 * valid UTF-8, else GB18030. */
static const char *pick_codec(const gb_manscdp_doc *doc, const char *b, size_t n,
                              PyObject *encoding)
{
    switch (doc->charset) {
    case GB_MANSCDP_CHARSET_GB2312:
    case GB_MANSCDP_CHARSET_GBK:
    case GB_MANSCDP_CHARSET_GB18030:
        return "gb18030";
    case GB_MANSCDP_CHARSET_UTF8:
        return "utf-8";
    case GB_MANSCDP_CHARSET_OTHER: {
        /* a codec Python knows by the declared name, else GB18030 */
        PyObject *info = PyCodec_Encoder(PyUnicode_AsUTF8(encoding));
        if (info) {
            Py_DECREF(info);
            return NULL; /* use the declared name */
        }
        PyErr_Clear();
        return "gb18030";
    }
    default: {
        PyObject *s = PyUnicode_DecodeUTF8(b, (Py_ssize_t)n, "strict");
        if (s) {
            Py_DECREF(s);
            return "utf-8";
        }
        PyErr_Clear();
        return "gb18030";
    }
    }
}

static const char *doc_codec(DocObject *self)
{
    return self->codec ? self->codec : PyUnicode_AsUTF8(self->encoding);
}

static PyObject *decode_run(DocObject *self, const char *p, size_t n)
{
    return PyUnicode_Decode(p, (Py_ssize_t)n, doc_codec(self), "replace");
}

/* A text or attribute span as str: runs by the charset, references by
 * code point. */
static PyObject *span_text(DocObject *self, gb_span s, int encoded)
{
    const char *b = DBUF(self);
    if (!encoded)
        return decode_run(self, b + s.off, s.len);
    PyObject *parts = PyList_New(0);
    if (!parts)
        return NULL;
    gb_manscdp_text_iter it;
    gb_span run;
    uint32_t cp;
    gb_manscdp_text_begin(&it, b, s, self->doc.lenient);
    while (gb_manscdp_text_next(&it, &run, &cp)) {
        PyObject *piece = run.len ? decode_run(self, b + run.off, run.len)
                                  : PyUnicode_FromOrdinal((int)cp);
        if (!piece || PyList_Append(parts, piece) < 0) {
            Py_XDECREF(piece);
            Py_DECREF(parts);
            return NULL;
        }
        Py_DECREF(piece);
    }
    PyObject *empty = PyUnicode_FromStringAndSize("", 0);
    PyObject *r = empty ? PyUnicode_Join(empty, parts) : NULL;
    Py_XDECREF(empty);
    Py_DECREF(parts);
    return r;
}

static int span_has_amp(DocObject *self, gb_span s)
{
    return memchr(DBUF(self) + s.off, '&', s.len) != NULL;
}

static int node_encoded(DocObject *self, unsigned i)
{
    return i < self->doc.nnodes && (self->doc.nodes[i].flags & GB_MANSCDP_NODE_ENCODED);
}

static int node_index(DocObject *self, PyObject *arg, unsigned *out)
{
    long i = PyLong_AsLong(arg);
    if (i == -1 && PyErr_Occurred())
        return -1;
    if (i < 0 || (unsigned long)i >= self->doc.nnodes) {
        PyErr_SetString(PyExc_IndexError, "node index out of range");
        return -1;
    }
    *out = (unsigned)i;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */

static PyObject *raise_error(const gb_manscdp_error *err, PyObject *document)
{
    PyObject *msg = PyUnicode_FromFormat("line %u (byte %u): %s [answer %u]",
                                         (unsigned)err->line, (unsigned)err->offset,
                                         err->reason, (unsigned)err->status);
    if (!msg)
        return NULL;
    PyObject *exc = PyObject_CallOneArg(ManscdpError, msg);
    Py_DECREF(msg);
    if (!exc)
        return NULL;
    PyObject *v;
#define SET(name, expr)                                              \
    v = (expr);                                                      \
    if (!v || PyObject_SetAttrString(exc, name, v) < 0) {            \
        Py_XDECREF(v);                                               \
        Py_DECREF(exc);                                              \
        return NULL;                                                 \
    }                                                                \
    Py_DECREF(v);
    SET("code", PyUnicode_FromString(gb_manscdp_error_name(err->code)));
    SET("reason", PyUnicode_FromString(err->reason));
    SET("line", PyLong_FromUnsignedLong(err->line));
    SET("offset", PyLong_FromUnsignedLong(err->offset));
    SET("status", PyLong_FromUnsignedLong(err->status));
    SET("document", Py_NewRef(document ? document : Py_None));
#undef SET
    PyErr_SetObject(ManscdpError, exc);
    Py_DECREF(exc);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* manscdp_parse                                                       */

static PyObject *manscdp_parse(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    static char *kwlist[] = {"data", "lenient", "max_body", "max_nodes", "max_depth", NULL};
    Py_buffer view;
    gb_manscdp_limits lim;
    gb_manscdp_limits_default(&lim);
    unsigned long lenient = 0, max_body = lim.max_body, max_nodes = lim.max_nodes,
                  max_depth = lim.max_depth;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|$kkkk", kwlist, &view, &lenient,
                                     &max_body, &max_nodes, &max_depth))
        return NULL;
    if (lenient & ~(unsigned long)GB_MANSCDP_LENIENT_ALL) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "unknown MANSCDP leniency flag");
        return NULL;
    }
    if (max_body > 0x7fffffffUL || max_nodes > 65535 || max_depth > 255) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError,
                        "limits: max_body < 2 GiB, max_nodes <= 65535, max_depth <= 255");
        return NULL;
    }
    lim.lenient = (uint32_t)lenient;
    lim.max_body = (uint32_t)max_body;
    lim.max_nodes = (uint32_t)max_nodes;
    lim.max_depth = (uint32_t)max_depth;

    gb_manscdp_node stack_nodes[STACK_NODES], *nodes = stack_nodes;
    uint32_t cap = STACK_NODES;
    /* the smallest element, "<a/>", takes 4 bytes: only a body that can
     * hold more elements than the stack array needs the heap */
    size_t most = (size_t)view.len / 4 + 1;
    if (lim.max_nodes > STACK_NODES && most > STACK_NODES) {
        cap = most < lim.max_nodes ? (uint32_t)most : lim.max_nodes;
        nodes = PyMem_Malloc(sizeof(*nodes) * cap);
        if (!nodes) {
            PyBuffer_Release(&view);
            return PyErr_NoMemory();
        }
    }
    DocObject *self = PyObject_New(DocObject, &DocType);
    if (!self)
        goto fail;
    /* bytes are kept as they are; other buffers are copied once, since the
     * document's spans must outlive a mutable caller buffer */
    self->data = PyBytes_CheckExact(view.obj) ? Py_NewRef(view.obj)
                                              : PyBytes_FromStringAndSize(view.buf, view.len);
    self->encoding = NULL;
    self->codec = NULL;
    gb_manscdp_init(&self->doc, NULL, 0);
    if (!self->data)
        goto fail;
    gb_manscdp_doc tmp;
    gb_manscdp_error err;
    gb_manscdp_init(&tmp, nodes, cap);
    gb_manscdp_error_code rc = gb_manscdp_parse(DBUF(self), (size_t)view.len, &lim, &tmp, &err);
    PyBuffer_Release(&view);
    view.obj = NULL;
    if (rc != GB_MANSCDP_OK && rc != GB_MANSCDP_ERR_UNKNOWN_CMD_TYPE) {
        Py_DECREF(self);
        self = NULL;
        raise_error(&err, NULL);
        goto fail;
    }
    self->doc = tmp;
    self->doc.nodes = PyMem_Malloc(sizeof(gb_manscdp_node) * tmp.nnodes);
    self->doc.max_nodes = tmp.nnodes;
    if (!self->doc.nodes) {
        PyErr_NoMemory();
        goto fail;
    }
    memcpy(self->doc.nodes, nodes, sizeof(gb_manscdp_node) * tmp.nnodes);
    if (nodes != stack_nodes)
        PyMem_Free(nodes);
    nodes = NULL;
    self->encoding = tmp.encoding.len
                         ? PyUnicode_DecodeASCII(DBUF(self) + tmp.encoding.off,
                                                 tmp.encoding.len, "replace")
                         : Py_NewRef(Py_None);
    if (!self->encoding)
        goto fail;
    self->codec = pick_codec(&self->doc, DBUF(self), (size_t)PyBytes_GET_SIZE(self->data),
                             self->encoding);
    if (rc == GB_MANSCDP_ERR_UNKNOWN_CMD_TYPE) {
        raise_error(&err, (PyObject *)self);
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
fail:
    if (view.obj)
        PyBuffer_Release(&view);
    if (nodes && nodes != stack_nodes)
        PyMem_Free(nodes);
    Py_XDECREF(self);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* ManscdpDocument                                                     */

/* One getter for every attribute; the closure says which. */
enum { F_ROOT, F_CMD, F_CMD_TYPE, F_SN, F_DEVICE_ID, F_CHARSET, F_ENCODING, F_CODEC,
       F_DATA, F_LENIENT, F_HAS_DECLARATION };

static PyObject *doc_get(DocObject *self, void *closure)
{
    const gb_manscdp_doc *d = &self->doc;
    switch ((int)(intptr_t)closure) {
    case F_ROOT: return PyLong_FromLong(d->root);
    case F_CMD: return PyLong_FromLong(d->cmd);
    case F_CMD_TYPE: return span_text(self, d->cmd_type, node_encoded(self, d->cmd_node));
    case F_SN: return PyLong_FromUnsignedLongLong(d->sn);
    case F_DEVICE_ID: return span_text(self, d->device_id, node_encoded(self, d->device_id_node));
    case F_CHARSET: return PyLong_FromLong(d->charset);
    case F_ENCODING: return Py_NewRef(self->encoding);
    case F_CODEC: return PyUnicode_FromString(doc_codec(self));
    case F_DATA: return Py_NewRef(self->data);
    case F_LENIENT: return PyLong_FromUnsignedLong(d->lenient);
    default: return PyBool_FromLong(d->has_declaration);
    }
}

static Py_ssize_t doc_len(DocObject *self)
{
    return (Py_ssize_t)self->doc.nnodes;
}

static PyObject *doc_name(DocObject *self, PyObject *arg)
{
    unsigned i;
    if (node_index(self, arg, &i) < 0)
        return NULL;
    gb_span s = self->doc.nodes[i].name;
    return decode_run(self, DBUF(self) + s.off, s.len);
}

static PyObject *doc_text(DocObject *self, PyObject *arg)
{
    unsigned i;
    if (node_index(self, arg, &i) < 0)
        return NULL;
    const gb_manscdp_node *nd = &self->doc.nodes[i];
    return span_text(self, nd->text, (nd->flags & GB_MANSCDP_NODE_ENCODED) != 0);
}

/* (parent, first_child, next_sibling, depth); -1 for none. */
static PyObject *doc_links(DocObject *self, PyObject *arg)
{
    unsigned i;
    if (node_index(self, arg, &i) < 0)
        return NULL;
    const gb_manscdp_node *nd = &self->doc.nodes[i];
#define IDX(v) ((v) == GB_MANSCDP_NONE ? -1L : (long)(v))
    return Py_BuildValue("(llli)", IDX(nd->parent), IDX(nd->first_child),
                         IDX(nd->next_sibling), (int)nd->depth);
#undef IDX
}

static int append_index(PyObject *list, unsigned i)
{
    PyObject *v = PyLong_FromUnsignedLong(i);
    int r = v ? PyList_Append(list, v) : -1;
    Py_XDECREF(v);
    return r;
}

static PyObject *doc_children(DocObject *self, PyObject *arg)
{
    unsigned i;
    if (node_index(self, arg, &i) < 0)
        return NULL;
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    for (unsigned c = self->doc.nodes[i].first_child; c != GB_MANSCDP_NONE;
         c = self->doc.nodes[c].next_sibling) {
        if (append_index(list, c) < 0) {
            Py_DECREF(list);
            return NULL;
        }
    }
    return list;
}

/* {name: value} of node i's attributes, in order. */
static PyObject *doc_attrs(DocObject *self, PyObject *arg)
{
    unsigned i;
    if (node_index(self, arg, &i) < 0)
        return NULL;
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    const char *b = DBUF(self);
    gb_span a = self->doc.nodes[i].attrs;
    uint32_t pos = a.off, end = a.off + a.len;
    while (pos < end) {
        while (pos < end && (b[pos] == ' ' || b[pos] == '\t' || b[pos] == '\r' || b[pos] == '\n'))
            pos++;
        uint32_t ns = pos;
        while (pos < end && b[pos] != '=' && b[pos] != ' ' && b[pos] != '\t' &&
               b[pos] != '\r' && b[pos] != '\n')
            pos++;
        gb_span v;
        if (pos == ns || !gb_manscdp_attr(&self->doc, b, i, b + ns, pos - ns, &v))
            break;
        PyObject *k = decode_run(self, b + ns, pos - ns);
        PyObject *val = k ? span_text(self, v, span_has_amp(self, v)) : NULL;
        if (!val || PyDict_SetItem(d, k, val) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(val);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(val);
        pos = v.off + v.len + 1;
    }
    return d;
}

/* (node index, str) arguments. */
static int index_and_text(DocObject *self, PyObject *args, unsigned *i, const char **s,
                          Py_ssize_t *n)
{
    if (!PyArg_ParseTuple(args, "Is#", i, s, n))
        return -1;
    if (*i >= self->doc.nnodes) {
        PyErr_SetString(PyExc_IndexError, "node index out of range");
        return -1;
    }
    return 0;
}

/* attr(i, name) -> str or None; names compare as the document's lookups do. */
static PyObject *doc_attr(DocObject *self, PyObject *args)
{
    unsigned i;
    const char *name;
    Py_ssize_t nlen;
    if (index_and_text(self, args, &i, &name, &nlen) < 0)
        return NULL;
    gb_span v;
    if (!gb_manscdp_attr(&self->doc, DBUF(self), i, name, (size_t)nlen, &v))
        Py_RETURN_NONE;
    return span_text(self, v, span_has_amp(self, v));
}

/* find(from, path) -> [index, ...]: every node at path below node from. */
static PyObject *doc_find(DocObject *self, PyObject *args)
{
    unsigned from;
    const char *path;
    Py_ssize_t plen;
    if (index_and_text(self, args, &from, &path, &plen) < 0)
        return NULL;
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    const char *b = DBUF(self);
    for (unsigned i = gb_manscdp_find(&self->doc, b, from, path, (size_t)plen, GB_MANSCDP_NONE);
         i != GB_MANSCDP_NONE;
         i = gb_manscdp_find(&self->doc, b, from, path, (size_t)plen, i)) {
        if (append_index(list, i) < 0) {
            Py_DECREF(list);
            return NULL;
        }
    }
    return list;
}

static PyMethodDef doc_methods[] = {
    {"name", (PyCFunction)doc_name, METH_O, "Element name of node i."},
    {"text", (PyCFunction)doc_text, METH_O, "Decoded text of node i (empty for a parent)."},
    {"links", (PyCFunction)doc_links, METH_O,
     "(parent, first_child, next_sibling, depth) of node i; -1 for none."},
    {"children", (PyCFunction)doc_children, METH_O, "Indices of node i's child elements."},
    {"attrs", (PyCFunction)doc_attrs, METH_O, "Decoded attributes of node i."},
    {"attr", (PyCFunction)doc_attr, METH_VARARGS, "attr(i, name): decoded value or None."},
    {"find", (PyCFunction)doc_find, METH_VARARGS,
     "find(from, path): indices of every element at path ('A/B') below node from."},
    {NULL, NULL, 0, NULL},
};

#define GET(name, field, doc) {name, (getter)doc_get, NULL, doc, (void *)(intptr_t)(field)}
static PyGetSetDef doc_getset[] = {
    GET("root", F_ROOT, "Root kind (1 Query, 2 Control, 3 Notify, 4 Response)."),
    GET("cmd", F_CMD, "Known CmdType number, 0 for another one."),
    GET("cmd_type", F_CMD_TYPE, "CmdType text."),
    GET("sn", F_SN, "SN."),
    GET("device_id", F_DEVICE_ID, "DeviceID text."),
    GET("charset", F_CHARSET, "Declared charset number (0 none)."),
    GET("encoding", F_ENCODING, "Declared encoding name, or None."),
    GET("codec", F_CODEC, "Python codec used for texts."),
    GET("data", F_DATA, "The body's bytes."),
    GET("lenient", F_LENIENT, "Leniency flags it was parsed with."),
    GET("has_declaration", F_HAS_DECLARATION, "Whether <?xml ...?> was there."),
    {NULL, NULL, NULL, NULL, NULL},
};
#undef GET

static PySequenceMethods doc_as_sequence = {
    .sq_length = (lenfunc)doc_len,
};

static PyTypeObject DocType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gbsip._core.ManscdpDocument",
    .tp_basicsize = sizeof(DocObject),
    .tp_dealloc = (destructor)doc_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A parsed MANSCDP+xml body: its bytes and the element index.",
    .tp_methods = doc_methods,
    .tp_getset = doc_getset,
    .tp_as_sequence = &doc_as_sequence,
};

/* ------------------------------------------------------------------ */
/* manscdp_build                                                       */

/* Python's str → bytes in the body's codec, kept alive in keep. */
static int encode_text(PyObject *value, const char *codec, PyObject *keep, gb_manscdp_str *out)
{
    PyObject *b;
    if (PyUnicode_Check(value))
        b = PyUnicode_AsEncodedString(value, codec, "strict");
    else if (PyLong_Check(value) && !PyBool_Check(value)) {
        PyObject *s = PyObject_Str(value);
        b = s ? PyUnicode_AsEncodedString(s, codec, "strict") : NULL;
        Py_XDECREF(s);
    } else {
        PyErr_Format(ManscdpBuildError, "field values are str, int or a list of fields, not %s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    if (!b) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            PyErr_Clear();
            PyErr_Format(ManscdpBuildError, "text cannot be encoded as %s", codec);
        }
        return -1;
    }
    if (PyList_Append(keep, b) < 0) {
        Py_DECREF(b);
        return -1;
    }
    Py_DECREF(b);
    out->p = PyBytes_AS_STRING(b);
    out->len = (size_t)PyBytes_GET_SIZE(b);
    return 0;
}

/* fields: [(name, value) | (name, [fields...], {attr: value})...] */
static int write_fields(gb_manscdp_writer *w, PyObject *fields, const char *codec,
                        PyObject *keep, int depth)
{
    if (depth > 12) {
        PyErr_SetString(ManscdpBuildError, "fields nested too deeply");
        return -1;
    }
    PyObject *seq = PySequence_Fast(fields, "fields must be a sequence of tuples");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n && !w->err; i++) {
        PyObject *f = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) < 2 || PyTuple_GET_SIZE(f) > 3 ||
            !PyUnicode_Check(PyTuple_GET_ITEM(f, 0))) {
            PyErr_SetString(ManscdpBuildError,
                            "a field is (name, value) or (name, [fields], {attribute: value})");
            goto fail;
        }
        const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(f, 0));
        if (!name)
            goto fail;
        PyObject *value = PyTuple_GET_ITEM(f, 1);
        PyObject *attrs = PyTuple_GET_SIZE(f) == 3 ? PyTuple_GET_ITEM(f, 2) : Py_None;
        if (PyList_Check(value) || PyTuple_Check(value)) {
            const char *aname = NULL;
            gb_manscdp_str aval = {NULL, 0};
            if (attrs != Py_None) {
                if (!PyDict_Check(attrs) || PyDict_GET_SIZE(attrs) > 1) {
                    PyErr_SetString(ManscdpBuildError, "at most one attribute, as a dict");
                    goto fail;
                }
                Py_ssize_t pos = 0;
                PyObject *k, *v;
                if (PyDict_Next(attrs, &pos, &k, &v)) {
                    if (!PyUnicode_Check(k) || !(aname = PyUnicode_AsUTF8(k)) ||
                        encode_text(v, codec, keep, &aval) < 0) {
                        if (!PyErr_Occurred())
                            PyErr_SetString(ManscdpBuildError, "attribute names are str");
                        goto fail;
                    }
                }
            }
            gb_manscdp_w_open(w, name, aname, aval);
            if (write_fields(w, value, codec, keep, depth + 1) < 0)
                goto fail;
            gb_manscdp_w_close(w);
        } else {
            if (attrs != Py_None) {
                PyErr_SetString(ManscdpBuildError, "attributes only on elements with children");
                goto fail;
            }
            gb_manscdp_str t;
            if (encode_text(value, codec, keep, &t) < 0)
                goto fail;
            gb_manscdp_w_field(w, name, t);
        }
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

static PyObject *manscdp_build(PyObject *mod, PyObject *args, PyObject *kw)
{
    (void)mod;
    static char *kwlist[] = {"root", "cmd_type", "sn", "device_id", "fields", "charset", NULL};
    int root, charset = GB_MANSCDP_CHARSET_GB2312;
    PyObject *cmd_type, *device_id, *fields;
    unsigned long long sn;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iUKUO|i", kwlist, &root, &cmd_type, &sn,
                                     &device_id, &fields, &charset))
        return NULL;
    if (root <= GB_MANSCDP_ROOT_NONE || root >= GB_MANSCDP_ROOT__COUNT ||
        charset < 0 || charset >= GB_MANSCDP_CHARSET_OTHER) {
        PyErr_SetString(ManscdpBuildError, "unknown root or charset");
        return NULL;
    }
    const char *codec = charset == GB_MANSCDP_CHARSET_UTF8 ? "utf-8" : "gb18030";
    PyObject *keep = PyList_New(0);
    if (!keep)
        return NULL;
    gb_manscdp_str ct, dev;
    if (encode_text(cmd_type, codec, keep, &ct) < 0 || encode_text(device_id, codec, keep, &dev) < 0) {
        Py_DECREF(keep);
        return NULL;
    }
    size_t cap = 4096;
    for (;;) {
        PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
        if (!out)
            break;
        gb_manscdp_writer w;
        gb_manscdp_w_init(&w, PyBytes_AS_STRING(out), cap);
        gb_manscdp_w_begin(&w, (gb_manscdp_charset)charset, (gb_manscdp_root)root,
                           GB_MANSCDP_CMD_OTHER, ct, sn, dev);
        if (write_fields(&w, fields, codec, keep, 0) < 0) {
            Py_DECREF(out);
            break;
        }
        size_t n = gb_manscdp_w_end(&w);
        if (w.err == GB_MANSCDP_W_OVERFLOW && cap < ((size_t)1 << 30)) {
            Py_DECREF(out);
            cap *= 4;
            continue;
        }
        if (w.err) {
            Py_DECREF(out);
            PyErr_SetString(ManscdpBuildError,
                            "not valid MANSCDP: an element name that is not an ASCII XML "
                            "name, an empty CmdType or DeviceID, a control character, or "
                            "nesting deeper than 16");
            break;
        }
        Py_DECREF(keep);
        if (_PyBytes_Resize(&out, (Py_ssize_t)n) < 0)
            return NULL;
        return out;
    }
    Py_DECREF(keep);
    return NULL;
}

static PyMethodDef functions[] = {
    {"manscdp_parse", (PyCFunction)(void (*)(void))manscdp_parse, METH_VARARGS | METH_KEYWORDS,
     "manscdp_parse(data, *, lenient=0, max_body=..., max_nodes=..., max_depth=...)"},
    {"manscdp_build", (PyCFunction)(void (*)(void))manscdp_build, METH_VARARGS | METH_KEYWORDS,
     "manscdp_build(root, cmd_type, sn, device_id, fields, charset=GB2312) -> bytes"},
    {NULL, NULL, 0, NULL},
};

int gbpy_manscdp_init(PyObject *module)
{
    if (PyType_Ready(&DocType) < 0)
        return -1;
    PyObject *bases = PyTuple_Pack(2, gbpy_GBSIPError, PyExc_ValueError);
    if (!bases)
        return -1;
    ManscdpError = PyErr_NewExceptionWithDoc(
        "gbsip.manscdp.ManscdpError",
        "Malformed MANSCDP+xml from a peer: .code, .reason, .line, .offset, .status "
        "(the SIP status to answer) and .document (the parsed document when only "
        "the CmdType is unknown, else None).",
        bases, NULL);
    ManscdpBuildError = ManscdpError ? PyErr_NewExceptionWithDoc(
        "gbsip.manscdp.ManscdpBuildError",
        "A MANSCDP+xml body that cannot be built as asked.", bases, NULL) : NULL;
    Py_DECREF(bases);
    if (!ManscdpBuildError)
        return -1;
    if (PyModule_AddObjectRef(module, "ManscdpDocument", (PyObject *)&DocType) < 0 ||
        PyModule_AddObjectRef(module, "ManscdpError", ManscdpError) < 0 ||
        PyModule_AddObjectRef(module, "ManscdpBuildError", ManscdpBuildError) < 0 ||
        PyModule_AddFunctions(module, functions) < 0)
        return -1;
    gb_manscdp_limits lim;
    gb_manscdp_limits_default(&lim);
    struct {
        const char *name;
        long value;
    } consts[] = {
        {"MANSCDP_DEFAULT_MAX_BODY", lim.max_body},
        {"MANSCDP_DEFAULT_MAX_NODES", lim.max_nodes},
        {"MANSCDP_DEFAULT_MAX_DEPTH", lim.max_depth},
        {"MANSCDP_LENIENT_TAG_CASE", GB_MANSCDP_LENIENT_TAG_CASE},
        {"MANSCDP_LENIENT_NO_DECLARATION", GB_MANSCDP_LENIENT_NO_DECLARATION},
        {"MANSCDP_LENIENT_PADDING", GB_MANSCDP_LENIENT_PADDING},
        {"MANSCDP_LENIENT_BARE_AMPERSAND", GB_MANSCDP_LENIENT_BARE_AMPERSAND},
        {"MANSCDP_LENIENT_ALL", GB_MANSCDP_LENIENT_ALL},
    };
    for (size_t i = 0; i < sizeof(consts) / sizeof(consts[0]); i++)
        if (PyModule_AddIntConstant(module, consts[i].name, consts[i].value) < 0)
            return -1;
    /* CmdType and charset names by number, for the Python layer */
    PyObject *cmds = PyTuple_New(GB_MANSCDP_CMD__COUNT);
    if (!cmds)
        return -1;
    for (int i = 0; i < GB_MANSCDP_CMD__COUNT; i++) {
        PyObject *s = PyUnicode_FromString(gb_manscdp_cmd_name((gb_manscdp_cmd)i));
        if (!s) {
            Py_DECREF(cmds);
            return -1;
        }
        PyTuple_SET_ITEM(cmds, i, s);
    }
    if (PyModule_AddObject(module, "MANSCDP_CMD_TYPES", cmds) < 0) {
        Py_DECREF(cmds);
        return -1;
    }
    return 0;
}
