/* py_module.c - gbsip._core: module object, exception classes. */
#include "py_core.h"

#include <openssl/rand.h>
#include <string.h>

PyObject *gbpy_GBSIPError;
PyObject *gbpy_LocalProtocolError;
PyObject *gbpy_RemoteProtocolError;
PyObject *gbpy_SIPParseError;
PyObject *gbpy_ConcurrentUseError;

int gbpy_not_busy(int busy, const char *what)
{
    if (!busy)
        return 0;
    PyErr_Format(gbpy_ConcurrentUseError,
                 "%s is in use by another thread: call it from one thread "
                 "(the event loop's)", what);
    return -1;
}

int gbpy_dict_u64(PyObject *d, PyObject *key, uint64_t v)
{
    PyObject *o = PyLong_FromUnsignedLongLong(v);
    int r = o ? PyDict_SetItem(d, key, o) : -1;
    Py_XDECREF(o);
    return r;
}

static const char *const error_codes[GB_ERR__COUNT] = {
    [GB_OK] = "OK",
    [GB_ERR_NEED_MORE] = "NEED_MORE",
    [GB_ERR_EMPTY] = "EMPTY",
    [GB_ERR_START_LINE] = "START_LINE",
    [GB_ERR_METHOD] = "METHOD",
    [GB_ERR_REQUEST_URI] = "REQUEST_URI",
    [GB_ERR_VERSION] = "VERSION",
    [GB_ERR_VERSION_UNSUPPORTED] = "VERSION_UNSUPPORTED",
    [GB_ERR_STATUS_CODE] = "STATUS_CODE",
    [GB_ERR_REASON_PHRASE] = "REASON_PHRASE",
    [GB_ERR_LINE_ENDING] = "LINE_ENDING",
    [GB_ERR_HEADER_NAME] = "HEADER_NAME",
    [GB_ERR_HEADER_COLON] = "HEADER_COLON",
    [GB_ERR_HEADER_VALUE] = "HEADER_VALUE",
    [GB_ERR_FOLDING] = "FOLDING",
    [GB_ERR_CONTENT_LENGTH] = "CONTENT_LENGTH",
    [GB_ERR_CONTENT_LENGTH_MISMATCH] = "CONTENT_LENGTH_MISMATCH",
    [GB_ERR_CSEQ] = "CSEQ",
    [GB_ERR_CSEQ_METHOD] = "CSEQ_METHOD",
    [GB_ERR_MAX_FORWARDS] = "MAX_FORWARDS",
    [GB_ERR_EXPIRES] = "EXPIRES",
    [GB_ERR_DUPLICATE_HEADER] = "DUPLICATE_HEADER",
    [GB_ERR_MISSING_HEADER] = "MISSING_HEADER",
    [GB_ERR_TOO_LARGE] = "TOO_LARGE",
    [GB_ERR_TOO_MANY_HEADERS] = "TOO_MANY_HEADERS",
    [GB_ERR_LINE_TOO_LONG] = "LINE_TOO_LONG",
    [GB_ERR_TOO_MANY_VIAS] = "TOO_MANY_VIAS",
    [GB_ERR_TOO_MANY_CONTACTS] = "TOO_MANY_CONTACTS",
    [GB_ERR_NO_HEADERS_END] = "NO_HEADERS_END",
    [GB_ERR_URI] = "URI",
    [GB_ERR_NAME_ADDR] = "NAME_ADDR",
    [GB_ERR_VIA] = "VIA",
    [GB_ERR_PARAM] = "PARAM",
    [GB_ERR_QUOTED_STRING] = "QUOTED_STRING",
    [GB_ERR_DATE] = "DATE",
    [GB_ERR_AUTH] = "AUTH",
    [GB_ERR_LIST] = "LIST",
};

const char *gbpy_error_code_name(gb_error_code code)
{
    return (unsigned)code < GB_ERR__COUNT && error_codes[code] ? error_codes[code] : "UNKNOWN";
}

PyObject *gbpy_raise_parse_error(const gb_error *err)
{
    const char *reason = err->reason ? err->reason : gb_error_text(err->code);
    const char *hname = err->header != GB_HDR_OTHER
                            ? gb_header_canonical_name(err->header) : NULL;
    PyObject *msg;
    if (err->line)
        msg = PyUnicode_FromFormat("line %u (byte %u): %s [answer %u]",
                                   (unsigned)err->line, (unsigned)err->offset,
                                   reason, (unsigned)err->status);
    else
        msg = PyUnicode_FromFormat("byte %u: %s [answer %u]",
                                   (unsigned)err->offset, reason,
                                   (unsigned)err->status);
    if (!msg)
        return NULL;
    PyObject *exc = PyObject_CallOneArg(gbpy_SIPParseError, msg);
    Py_DECREF(msg);
    if (!exc)
        return NULL;
    const char *code = gbpy_error_code_name(err->code);
    PyObject *v;
#define SET(name, expr)                                              \
    v = (expr);                                                      \
    if (!v || PyObject_SetAttrString(exc, name, v) < 0) {            \
        Py_XDECREF(v);                                               \
        Py_DECREF(exc);                                              \
        return NULL;                                                 \
    }                                                                \
    Py_DECREF(v);
    SET("code", PyUnicode_FromString(code));
    SET("reason", PyUnicode_FromString(reason));
    SET("line", PyLong_FromUnsignedLong(err->line));
    SET("offset", PyLong_FromUnsignedLong(err->offset));
    SET("status", PyLong_FromUnsignedLong(err->status));
    SET("header", hname ? PyUnicode_FromString(hname) : Py_NewRef(Py_None));
#undef SET
    PyErr_SetObject(gbpy_SIPParseError, exc);
    Py_DECREF(exc);
    return NULL;
}

int gbpy_hash_key(PyObject *arg, unsigned char out[16])
{
    if (arg == Py_None)
        return RAND_bytes(out, 16) == 1
                   ? 0
                   : (PyErr_SetString(gbpy_GBSIPError, "OpenSSL RAND_bytes failed"), -1);
    if (!PyBytes_Check(arg) || PyBytes_GET_SIZE(arg) != 16) {
        PyErr_SetString(PyExc_ValueError, "hash_key must be 16 bytes, or None for a random one");
        return -1;
    }
    memcpy(out, PyBytes_AS_STRING(arg), 16);
    return 0;
}

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gbsip._core",
    .m_doc = "gbsip's C core: SIP parser and serializer, Digest, registrar "
             "and device state machines (sans-IO).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__core(void)
{
    PyObject *m = PyModule_Create(&core_module);
    if (!m)
        return NULL;
    gbpy_GBSIPError = PyErr_NewExceptionWithDoc(
        "gbsip.GBSIPError", "Base class of every exception gbsip raises.",
        NULL, NULL);
    if (!gbpy_GBSIPError)
        goto fail;
    /* h11's split: the caller misused the API, or a peer sent bad SIP. */
    gbpy_LocalProtocolError = PyErr_NewExceptionWithDoc(
        "gbsip.LocalProtocolError",
        "The API was used in a way that cannot work (a bad option, invalid SIP "
        "to build, a call that makes no sense in the current state).",
        gbpy_GBSIPError, NULL);
    gbpy_RemoteProtocolError = PyErr_NewExceptionWithDoc(
        "gbsip.RemoteProtocolError",
        "A peer sent something malformed; .status is the SIP status to answer.",
        gbpy_GBSIPError, NULL);
    if (!gbpy_LocalProtocolError || !gbpy_RemoteProtocolError)
        goto fail;
    PyObject *bases = PyTuple_Pack(2, gbpy_RemoteProtocolError, PyExc_ValueError);
    if (!bases)
        goto fail;
    gbpy_SIPParseError = PyErr_NewExceptionWithDoc(
        "gbsip.SIPParseError",
        "Malformed SIP from a peer: .code, .reason, .line, .offset, .header "
        "and .status (the SIP status a server should answer).",
        bases, NULL);
    Py_DECREF(bases);
    if (!gbpy_SIPParseError)
        goto fail;
    bases = PyTuple_Pack(2, gbpy_LocalProtocolError, PyExc_RuntimeError);
    if (!bases)
        goto fail;
    gbpy_ConcurrentUseError = PyErr_NewExceptionWithDoc(
        "gbsip.ConcurrentUseError",
        "A RegistrarCore or Fleet was called from a second thread while its "
        "UDP pump ran without the GIL: each belongs to one thread.",
        bases, NULL);
    Py_DECREF(bases);
    if (!gbpy_ConcurrentUseError)
        goto fail;
    if (PyModule_AddObjectRef(m, "GBSIPError", gbpy_GBSIPError) < 0 ||
        PyModule_AddObjectRef(m, "LocalProtocolError", gbpy_LocalProtocolError) < 0 ||
        PyModule_AddObjectRef(m, "RemoteProtocolError", gbpy_RemoteProtocolError) < 0 ||
        PyModule_AddObjectRef(m, "SIPParseError", gbpy_SIPParseError) < 0 ||
        PyModule_AddObjectRef(m, "ConcurrentUseError", gbpy_ConcurrentUseError) < 0)
        goto fail;
    if (gbpy_message_init(m) < 0)
        goto fail;
    if (gbpy_digest_init(m) < 0)
        goto fail;
    if (gbpy_device_init(m) < 0)
        goto fail;
    if (gbpy_registrar_init(m) < 0)
        goto fail;
    if (gbpy_manscdp_init(m) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
