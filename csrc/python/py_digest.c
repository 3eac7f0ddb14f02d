/*
 * py_digest.c - gbsip._core binding of the auth tokenizer (sip_auth.h) and
 * Digest (digest.h).  gbsip/digest.py builds the typed public API on it.
 *
 * Strings cross as UTF-8 with surrogateescape, so any bytes a peer sent
 * survive a round trip.  Time is passed in as float seconds (now) and
 * becomes integer milliseconds for the core.  API misuse raises
 * gbsip.GBSIPError (or TypeError); malformed peer data raises
 * gbsip.SIPParseError; verification outcomes are returned, never raised.
 */
#include "py_core.h"

#include <math.h>

#include "digest.h"

/* One hashing context for the module-level functions.  The GIL serialises
 * every use, and the core itself keeps no globals. */
static gb_digest_ctx *module_ctx;

static gb_digest_ctx *get_ctx(void)
{
    if (!module_ctx) {
        module_ctx = gb_digest_ctx_new();
        if (!module_ctx)
            PyErr_SetString(gbpy_GBSIPError, "OpenSSL offers no Digest hash");
    }
    return module_ctx;
}

/* ---- argument conversion ---- */

/* Bytes of a str (UTF-8, surrogateescape) or a bytes-like object. */
typedef struct {
    PyObject *owner;   /* encoded bytes, when a copy was needed */
    Py_buffer view;    /* bytes-like input */
    int has_view;
    const char *p;
    Py_ssize_t n;
} in_bytes;

static int get_bytes(PyObject *o, in_bytes *b, const char *what)
{
    b->owner = NULL;
    b->has_view = 0;
    if (PyUnicode_Check(o)) {
        if (PyUnicode_IS_ASCII(o)) {
            b->p = (const char *)PyUnicode_DATA(o);
            b->n = PyUnicode_GET_LENGTH(o);
            return 0;
        }
        b->owner = PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape");
        if (!b->owner)
            return -1;
        b->p = PyBytes_AS_STRING(b->owner);
        b->n = PyBytes_GET_SIZE(b->owner);
        return 0;
    }
    if (PyObject_CheckBuffer(o)) {
        if (PyObject_GetBuffer(o, &b->view, PyBUF_SIMPLE) < 0)
            return -1;
        b->has_view = 1;
        b->p = b->view.buf;
        b->n = b->view.len;
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s must be str or bytes, not %.100s", what,
                 Py_TYPE(o)->tp_name);
    return -1;
}

static void release_bytes(in_bytes *b);

/* Release the first n of b. */
static void release_all(in_bytes *b, int n)
{
    for (int i = 0; i < n; i++)
        release_bytes(&b[i]);
}

static void release_bytes(in_bytes *b)
{
    Py_CLEAR(b->owner);
    if (b->has_view) {
        PyBuffer_Release(&b->view);
        b->has_view = 0;
    }
}

static gb_bytes as_gb(const in_bytes *b)
{
    gb_bytes g = {b->p, (size_t)b->n};
    return g;
}

static PyObject *str_of(const char *p, size_t n)
{
    return PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "surrogateescape");
}

static int64_t to_ms(double now)
{
    return (int64_t)llround(now * 1000.0);
}

/* Nonces hold 48 bits of milliseconds: up to the year 10889. */
static int check_now(double now)
{
    if (!isfinite(now) || now < 0 || now > 2.8e11) {
        PyErr_SetString(gbpy_GBSIPError, "now must be seconds since the epoch");
        return -1;
    }
    return 0;
}

static int parse_alg(PyObject *o, gb_digest_alg *out)
{
    in_bytes b;
    if (o == NULL || o == Py_None) {
        *out = GB_DIGEST_MD5;
        return 0;
    }
    if (get_bytes(o, &b, "algorithm") < 0)
        return -1;
    *out = gb_digest_alg_lookup(b.p, (size_t)b.n);
    release_bytes(&b);
    if (*out == GB_DIGEST_ALG_UNKNOWN) {
        PyErr_Format(gbpy_GBSIPError, "unknown Digest algorithm %R", o);
        return -1;
    }
    return 0;
}

static int parse_qop(PyObject *o, int *out)
{
    if (o == NULL || o == Py_None) {
        *out = GB_QOP_NONE;
        return 0;
    }
    in_bytes b;
    if (get_bytes(o, &b, "qop") < 0)
        return -1;
    int ok = 1;
    if (b.n == 4 && memcmp(b.p, "auth", 4) == 0)
        *out = GB_QOP_AUTH;
    else if (b.n == 8 && memcmp(b.p, "auth-int", 8) == 0)
        *out = GB_QOP_AUTH_INT;
    else
        ok = 0;
    release_bytes(&b);
    if (!ok) {
        PyErr_Format(gbpy_GBSIPError, "qop must be None, 'auth' or 'auth-int', not %R", o);
        return -1;
    }
    return 0;
}

/* ---- auth_parse / auth_build ---- */

static PyObject *item_tuple(const char *buf, const gb_auth *a)
{
    PyObject *params = PyList_New(a->nparams);
    if (!params)
        return NULL;
    char small[512];
    for (unsigned i = 0; i < a->nparams; i++) {
        const gb_param *p = &a->params[i];
        char *tmp = p->value.len <= sizeof small ? small : PyMem_Malloc(p->value.len);
        if (!tmp) {
            Py_DECREF(params);
            return PyErr_NoMemory();
        }
        long vn = gb_auth_value(buf, p, tmp, p->value.len ? p->value.len : 1);
        PyObject *t = Py_BuildValue("(NNO)", str_of(buf + p->name.off, p->name.len),
                                    str_of(tmp, (size_t)(vn < 0 ? 0 : vn)),
                                    p->quoted ? Py_True : Py_False);
        if (tmp != small)
            PyMem_Free(tmp);
        if (!t) {
            Py_DECREF(params);
            return NULL;
        }
        PyList_SET_ITEM(params, i, t);
    }
    PyObject *t68 = a->has_token68 ? str_of(buf + a->token68.off, a->token68.len)
                                   : Py_NewRef(Py_None);
    if (!t68) {
        Py_DECREF(params);
        return NULL;
    }
    return Py_BuildValue("(NNN)", str_of(buf + a->scheme.off, a->scheme.len), t68, params);
}

enum { KIND_ANY = 0, KIND_CHALLENGES = 1, KIND_CREDENTIALS = 2 };

PyDoc_STRVAR(auth_parse_doc,
"auth_parse(value, kind=0)\n--\n\n"
"Tokenize an auth header value into [(scheme, token68, [(name, value, quoted)])].\n"
"Values are unescaped.  kind 1: only Digest challenges, each checked (realm,\n"
"nonce, no duplicates); kind 2: exactly one Digest credential, checked.\n"
"Raises SIPParseError when malformed.");

static PyObject *py_auth_parse(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"value", "kind", NULL};
    PyObject *value;
    int kind = KIND_ANY;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|i:auth_parse", kwlist, &value, &kind))
        return NULL;
    if (kind < KIND_ANY || kind > KIND_CREDENTIALS) {
        PyErr_SetString(gbpy_GBSIPError, "kind must be 0, 1 or 2");
        return NULL;
    }
    in_bytes b;
    if (get_bytes(value, &b, "value") < 0)
        return NULL;
    if (b.n > UINT32_MAX) {
        release_bytes(&b);
        PyErr_SetString(gbpy_GBSIPError, "value too long");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    gb_auth *a = PyMem_Malloc(sizeof *a);
    if (!out || !a)
        goto nomem;
    gb_span sp = {0, (uint32_t)b.n};
    gb_error err;
    memset(&err, 0, sizeof err);
    if (kind == KIND_CREDENTIALS) {
        gb_digest_credentials c;
        if (gb_auth_parse_one(b.p, sp, a, &err) != GB_OK ||
            gb_digest_parse_credentials(b.p, a, &c, &err) != GB_OK)
            goto parse_error;
        PyObject *t = item_tuple(b.p, a);
        if (!t || PyList_Append(out, t) < 0) {
            Py_XDECREF(t);
            goto fail;
        }
        Py_DECREF(t);
    } else {
        gb_auth_iter it;
        int r;
        gb_auth_begin(&it, b.p, sp);
        while ((r = gb_auth_next(&it, a, &err)) == 1) {
            if (kind == KIND_CHALLENGES) {
                if (!gb_auth_scheme_is(b.p, a, "Digest", 6))
                    continue; /* RFC 7235 §4.1: skip schemes we do not speak */
                gb_digest_challenge ch;
                if (gb_digest_parse_challenge(b.p, a, &ch, &err) != GB_OK)
                    goto parse_error;
            }
            PyObject *t = item_tuple(b.p, a);
            if (!t || PyList_Append(out, t) < 0) {
                Py_XDECREF(t);
                goto fail;
            }
            Py_DECREF(t);
        }
        if (r < 0)
            goto parse_error;
    }
    PyMem_Free(a);
    release_bytes(&b);
    return out;
parse_error:
    err.header = GB_HDR_OTHER;
    gbpy_raise_parse_error(&err);
    goto fail;
nomem:
    PyErr_NoMemory();
fail:
    PyMem_Free(a);
    Py_XDECREF(out);
    release_bytes(&b);
    return NULL;
}

PyDoc_STRVAR(auth_build_doc,
"auth_build(scheme, params)\n--\n\n"
"Build 'scheme name=value,name=\"value\"' from [(name, value, quote)].\n"
"Raises GBSIPError for a value a header cannot hold.");

static PyObject *py_auth_build(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *scheme, *params;
    if (!PyArg_ParseTuple(args, "UO:auth_build", &scheme, &params))
        return NULL;
    PyObject *seq = PySequence_Fast(params, "params must be a sequence");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *result = NULL;
    in_bytes sb = {0};
    gb_auth_out *out = PyMem_Calloc((size_t)(n ? n : 1), sizeof *out);
    in_bytes *hold = PyMem_Calloc((size_t)(n ? 2 * n : 1), sizeof *hold);
    Py_ssize_t held = 0;
    char *buf = NULL;
    if (!out || !hold) {
        PyErr_NoMemory();
        goto done;
    }
    if (get_bytes(scheme, &sb, "scheme") < 0)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name, *value;
        int quote;
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(item) ||
            !PyArg_ParseTuple(item, "UUp:auth_build param", &name, &value, &quote)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "params must be (name, value, quote) tuples");
            goto done;
        }
        if (get_bytes(name, &hold[held], "name") < 0)
            goto done;
        out[i].name = hold[held].p;
        out[i].name_len = (size_t)hold[held++].n;
        if (get_bytes(value, &hold[held], "value") < 0)
            goto done;
        out[i].value = hold[held].p;
        out[i].value_len = (size_t)hold[held++].n;
        out[i].quote = quote;
    }
    long need = gb_auth_build(NULL, 0, sb.p, (size_t)sb.n, out, (size_t)n);
    if (need < 0) {
        PyErr_SetString(gbpy_GBSIPError,
                        "cannot build that auth header: bad scheme or name, CR/LF/NUL "
                        "in a value, or an unquoted value that is empty or holds "
                        "spaces, commas or quotes");
        goto done;
    }
    buf = PyMem_Malloc((size_t)need + 1);
    if (!buf) {
        PyErr_NoMemory();
        goto done;
    }
    gb_auth_build(buf, (size_t)need, sb.p, (size_t)sb.n, out, (size_t)n);
    result = str_of(buf, (size_t)need);
done:
    PyMem_Free(buf);
    for (Py_ssize_t i = 0; i < held; i++)
        release_bytes(&hold[i]);
    PyMem_Free(hold);
    PyMem_Free(out);
    release_bytes(&sb);
    Py_DECREF(seq);
    return result;
}

/* ---- hashing functions ---- */

PyDoc_STRVAR(digest_response_doc,
"digest_response(*, algorithm, username, realm, nonce, method, uri, password=None,\n"
"                ha1=None, qop=None, nc=None, cnonce=None, body=b'')\n--\n\n"
"The Digest response (lowercase hex).  Give exactly one of password and ha1.");

static PyObject *py_digest_response(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"algorithm", "username", "realm", "nonce", "method", "uri",
                             "password", "ha1", "qop", "nc", "cnonce", "body", NULL};
    PyObject *alg_o, *objs[10] = {NULL};
    PyObject *qop_o = Py_None;
    alg_o = NULL;
    if (PyTuple_GET_SIZE(args)) {
        PyErr_SetString(PyExc_TypeError, "digest_response() takes keyword arguments only");
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$OOOOOOOOOOOO:digest_response", kwlist,
                                     &alg_o, &objs[0], &objs[1], &objs[2], &objs[3],
                                     &objs[4], &objs[5], &objs[6], &qop_o, &objs[7],
                                     &objs[8], &objs[9]))
        return NULL;
    for (int i = 0; i < 5; i++)
        if (!objs[i]) {
            PyErr_SetString(PyExc_TypeError, "digest_response() needs username, realm, "
                                             "nonce, method and uri");
            return NULL;
        }
    static const char *const names[10] = {"username", "realm", "nonce", "method", "uri",
                                          "password", "ha1", "nc", "cnonce", "body"};
    gb_digest_input in;
    memset(&in, 0, sizeof in);
    if (parse_alg(alg_o, &in.alg) < 0 || parse_qop(qop_o, &in.qop) < 0)
        return NULL;
    int have_pw = objs[5] && objs[5] != Py_None, have_ha1 = objs[6] && objs[6] != Py_None;
    if (have_pw == have_ha1) {
        PyErr_SetString(gbpy_GBSIPError, "give exactly one of password and ha1");
        return NULL;
    }
    gb_digest_ctx *ctx = get_ctx();
    if (!ctx)
        return NULL;
    in_bytes b[10];
    int nb = 0;
    PyObject *result = NULL;
    gb_bytes *dst[10] = {&in.username, &in.realm, &in.nonce, &in.method, &in.uri,
                         &in.password, &in.ha1, &in.nc, &in.cnonce, &in.body};
    for (int i = 0; i < 10; i++) {
        if (!objs[i] || objs[i] == Py_None)
            continue;
        if (get_bytes(objs[i], &b[nb], names[i]) < 0)
            goto done;
        *dst[i] = as_gb(&b[nb++]);
    }
    char out[GB_DIGEST_HEX_MAX];
    const char *why = NULL;
    int n = gb_digest_response(ctx, &in, out, &why);
    if (n < 0) {
        PyErr_SetString(gbpy_GBSIPError, why ? why : "cannot compute the response");
        goto done;
    }
    result = PyUnicode_FromStringAndSize(out, n);
done:
    release_all(b, nb);
    return result;
}

static PyObject *hash_two_or_three(PyObject *args, const char *fmt, int three)
{
    PyObject *alg_o, *o[3] = {NULL};
    if (!PyArg_ParseTuple(args, fmt, &alg_o, &o[0], &o[1], &o[2]))
        return NULL;
    gb_digest_alg alg;
    if (parse_alg(alg_o, &alg) < 0)
        return NULL;
    gb_digest_ctx *ctx = get_ctx();
    if (!ctx)
        return NULL;
    in_bytes b[3];
    int nb = 0;
    PyObject *result = NULL;
    for (int i = 0; i < (three ? 3 : 2); i++) {
        if (get_bytes(o[i], &b[nb], "argument") < 0)
            goto done;
        nb++;
    }
    char out[GB_DIGEST_HEX_MAX];
    int n = three ? gb_digest_ha1(ctx, alg, as_gb(&b[0]), as_gb(&b[1]), as_gb(&b[2]), out)
                  : gb_digest_userhash(ctx, alg, as_gb(&b[0]), as_gb(&b[1]), out);
    if (n < 0)
        PyErr_SetString(gbpy_GBSIPError, "algorithm not available in this OpenSSL");
    else
        result = PyUnicode_FromStringAndSize(out, n);
done:
    release_all(b, nb);
    return result;
}

PyDoc_STRVAR(digest_ha1_doc,
"digest_ha1(algorithm, username, realm, password)\n--\n\n"
"H(username:realm:password) as hex: the value to store instead of a password.");

static PyObject *py_digest_ha1(PyObject *self, PyObject *args)
{
    (void)self;
    return hash_two_or_three(args, "OOOO:digest_ha1", 1);
}

PyDoc_STRVAR(digest_userhash_doc,
"digest_userhash(algorithm, username, realm)\n--\n\n"
"RFC 7616 §3.4.4 userhash: H(username:realm) as hex.");

static PyObject *py_digest_userhash(PyObject *self, PyObject *args)
{
    (void)self;
    return hash_two_or_three(args, "OOO|O:digest_userhash", 0);
}

PyDoc_STRVAR(digest_cnonce_doc,
"digest_cnonce()\n--\n\n32 random hex characters (OpenSSL RAND_bytes).");

static PyObject *py_digest_cnonce(PyObject *self, PyObject *noargs)
{
    (void)self;
    (void)noargs;
    char out[32];
    if (gb_digest_cnonce(out) < 0) {
        PyErr_SetString(gbpy_GBSIPError, "RAND_bytes failed");
        return NULL;
    }
    return PyUnicode_FromStringAndSize(out, 32);
}

/* ---- DigestClient: nc per nonce ---- */

typedef struct {
    PyObject_HEAD
    gb_digest_client c;
} ClientObject;

static PyObject *client_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    if (PyTuple_GET_SIZE(args) || (kw && PyDict_GET_SIZE(kw))) {
        PyErr_SetString(PyExc_TypeError, "DigestClient() takes no arguments");
        return NULL;
    }
    ClientObject *self = (ClientObject *)type->tp_alloc(type, 0);
    if (self)
        gb_digest_client_init(&self->c);
    return (PyObject *)self;
}

PyDoc_STRVAR(client_next_nc_doc,
"next_nc(nonce)\n--\n\nThe nc to send with this nonce: 1 for a new one, then 2, 3...");

static PyObject *client_next_nc(ClientObject *self, PyObject *arg)
{
    in_bytes b;
    if (get_bytes(arg, &b, "nonce") < 0)
        return NULL;
    uint32_t nc = gb_digest_client_next_nc(&self->c, as_gb(&b));
    release_bytes(&b);
    return PyLong_FromUnsignedLong(nc);
}

static PyMethodDef client_methods[] = {
    {"next_nc", (PyCFunction)client_next_nc, METH_O, client_next_nc_doc},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot client_slots[] = {
    {Py_tp_new, client_new},
    {Py_tp_methods, client_methods},
    {Py_tp_doc, "Client-side nonce-count bookkeeping (RFC 7616 §3.4)."},
    {0, NULL},
};

static PyType_Spec client_spec = {
    .name = "gbsip._core.DigestClient",
    .basicsize = sizeof(ClientObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = client_slots,
};

static PyObject *ClientType;

/* ---- digest_answer ---- */

PyDoc_STRVAR(digest_answer_doc,
"digest_answer(challenge, *, username, method, uri, password=None, ha1=None,\n"
"              body=b'', cnonce=None, nc=0, qop=-1, client=None, algorithms=0)\n--\n\n"
"Credentials value answering the strongest Digest challenge in challenge\n"
"(a WWW-Authenticate or Proxy-Authenticate value) whose algorithm is in the\n"
"algorithms mask (0: any).  qop -1 picks auth when offered, then auth-int.");

static PyObject *py_digest_answer(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"challenge", "username", "method", "uri", "password", "ha1",
                             "body", "cnonce", "nc", "qop", "client", "algorithms", NULL};
    PyObject *chal, *user, *method, *uri, *pw = Py_None, *ha1 = Py_None, *body = NULL,
             *cnonce = Py_None, *client = Py_None;
    unsigned long nc = 0;
    int qop = -1;
    unsigned int algs = 0;
    user = method = uri = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$OOOOOOOkiOI:digest_answer", kwlist, &chal,
                                     &user, &method, &uri, &pw, &ha1, &body, &cnonce, &nc,
                                     &qop, &client, &algs))
        return NULL;
    if (!user || !method || !uri) {
        PyErr_SetString(PyExc_TypeError,
                        "digest_answer() needs the keyword arguments username, method and uri");
        return NULL;
    }
    if ((pw != Py_None) == (ha1 != Py_None)) {
        PyErr_SetString(gbpy_GBSIPError, "give exactly one of password and ha1");
        return NULL;
    }
    if (qop < -1 || qop > GB_QOP_AUTH_INT || nc > UINT32_MAX) {
        PyErr_SetString(gbpy_GBSIPError, "qop must be -1..2 and nc fit in 32 bits");
        return NULL;
    }
    if (client != Py_None && !PyObject_TypeCheck(client, (PyTypeObject *)ClientType)) {
        PyErr_SetString(PyExc_TypeError, "client must be a DigestClient");
        return NULL;
    }
    gb_digest_ctx *ctx = get_ctx();
    if (!ctx)
        return NULL;
    in_bytes b[8];
    int nb = 0;
    PyObject *result = NULL;
    gb_auth *a = PyMem_Malloc(sizeof *a);
    gb_digest_challenge *ch = PyMem_Malloc(sizeof *ch * 16);
    if (!a || !ch) {
        PyErr_NoMemory();
        goto done;
    }
    if (get_bytes(chal, &b[nb++], "challenge") < 0)
        goto done;
    const in_bytes *cb = &b[0];
    if (cb->n > UINT32_MAX) {
        PyErr_SetString(gbpy_GBSIPError, "challenge too long");
        goto done;
    }
    gb_digest_answer_in in;
    memset(&in, 0, sizeof in);
    PyObject *objs[7] = {user, method, uri, pw, ha1, body, cnonce};
    gb_bytes *dst[7] = {&in.username, &in.method, &in.uri, &in.password, &in.ha1,
                        &in.body, &in.cnonce};
    for (int i = 0; i < 7; i++) {
        if (!objs[i] || objs[i] == Py_None)
            continue;
        if (get_bytes(objs[i], &b[nb], "argument") < 0)
            goto done;
        *dst[i] = as_gb(&b[nb++]);
    }
    in.nc = (uint32_t)nc;
    in.qop = qop;
    gb_auth_iter it;
    gb_error err;
    gb_span sp = {0, (uint32_t)cb->n};
    int n = 0, r;
    gb_auth_begin(&it, cb->p, sp);
    while (n < 16 && (r = gb_auth_next(&it, a, &err)) == 1)
        if (gb_auth_scheme_is(cb->p, a, "Digest", 6) &&
            gb_digest_parse_challenge(cb->p, a, &ch[n], &err) == GB_OK)
            n++;
    int best = gb_digest_choose(ch, (size_t)n, algs);
    if (best < 0) {
        PyErr_SetString(gbpy_GBSIPError, n ? "no Digest challenge with an allowed algorithm"
                                           : "no Digest challenge in that value");
        goto done;
    }
    const char *why = NULL;
    ClientObject *co = client == Py_None ? NULL : (ClientObject *)client;
    /* room for every value escaped, plus names and hashes: one pass only,
     * since answering advances nc and draws a cnonce */
    size_t cap = 2 * (in.username.n + in.uri.n + in.cnonce.n + 3 * (size_t)cb->n) + 1024;
    char *out = PyMem_Malloc(cap);
    if (!out) {
        PyErr_NoMemory();
        goto done;
    }
    long need = gb_digest_answer(ctx, co ? &co->c : NULL, cb->p, &ch[best], &in, out, cap,
                                 &why);
    if (need < 0)
        PyErr_SetString(gbpy_GBSIPError, why ? why : "cannot answer the challenge");
    else if ((size_t)need > cap)
        PyErr_SetString(gbpy_GBSIPError, "credentials larger than expected");
    else
        result = str_of(out, (size_t)need);
    PyMem_Free(out);
done:
    release_all(b, nb);
    PyMem_Free(a);
    PyMem_Free(ch);
    return result;
}

/* ---- DigestNonces ---- */

typedef struct {
    PyObject_HEAD
    gb_digest_nonces *n;
    gb_digest_ctx *ctx;
    double lifetime;
    int encoding;
    int single_use;
    unsigned long replay_slots;
} NoncesObject;

static PyObject *nonces_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"key", "lifetime", "replay_slots", "encoding", "single_use", NULL};
    Py_buffer key;
    double lifetime;
    unsigned long slots = 4096;
    const char *enc = "base64url";
    int single = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*d|$ksp:DigestNonces", kwlist, &key,
                                     &lifetime, &slots, &enc, &single))
        return NULL;
    int encoding = strcmp(enc, "base64url") == 0 ? GB_NONCE_BASE64URL
                   : strcmp(enc, "hex") == 0   ? GB_NONCE_HEX
                                               : -1;
    const char *why = NULL;
    if (encoding < 0)
        why = "encoding must be 'base64url' or 'hex'";
    else if (!(lifetime > 0) || lifetime > 1e9)
        why = "lifetime must be a positive number of seconds";
    else if (slots > (1ul << 24))
        why = "replay_slots must be at most 16777216";
    if (why) {
        PyBuffer_Release(&key);
        PyErr_SetString(gbpy_GBSIPError, why);
        return NULL;
    }
    gb_digest_nonce_config cfg = {key.buf, (size_t)key.len, to_ms(lifetime),
                                  (uint32_t)slots, encoding,
                                  single ? GB_NONCE_SINGLE_USE : 0u};
    NoncesObject *self = (NoncesObject *)type->tp_alloc(type, 0);
    if (!self) {
        PyBuffer_Release(&key);
        return NULL;
    }
    self->n = gb_digest_nonces_new(&cfg, &why);
    self->ctx = gb_digest_ctx_new();
    PyBuffer_Release(&key);
    if (!self->n || !self->ctx) {
        PyErr_SetString(gbpy_GBSIPError, why ? why : "cannot create the Digest context");
        Py_DECREF(self);
        return NULL;
    }
    self->lifetime = lifetime;
    self->encoding = encoding;
    self->single_use = single;
    self->replay_slots = slots;
    return (PyObject *)self;
}

static void nonces_dealloc(NoncesObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    gb_digest_nonces_free(self->n);
    gb_digest_ctx_free(self->ctx);
    tp->tp_free(self);
    Py_DECREF(tp);
}

PyDoc_STRVAR(nonces_issue_doc,
"issue(now, binding=b'')\n--\n\nA fresh nonce bound to binding, issued at now (seconds).");

static PyObject *nonces_issue(NoncesObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"now", "binding", NULL};
    double now;
    PyObject *binding = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "d|O:issue", kwlist, &now, &binding))
        return NULL;
    if (check_now(now) < 0)
        return NULL;
    in_bytes b = {0};
    gb_bytes bb = {NULL, 0};
    if (binding && binding != Py_None) {
        if (get_bytes(binding, &b, "binding") < 0)
            return NULL;
        bb = as_gb(&b);
    }
    char out[GB_NONCE_HEX_LEN];
    long n = gb_digest_nonce_issue(self->n, to_ms(now), bb, out, sizeof out);
    release_bytes(&b);
    if (n < 0) {
        PyErr_SetString(gbpy_GBSIPError, "OpenSSL HMAC failed");
        return NULL;
    }
    return PyUnicode_FromStringAndSize(out, n);
}

PyDoc_STRVAR(nonces_check_doc,
"check(nonce, now, binding=b'')\n--\n\n"
"(status, issued): status 0 fresh, 1 stale, 2 forged; issued in seconds or None.");

static PyObject *nonces_check(NoncesObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"nonce", "now", "binding", NULL};
    PyObject *nonce, *binding = NULL;
    double now;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Od|O:check", kwlist, &nonce, &now, &binding) ||
        check_now(now) < 0)
        return NULL;
    in_bytes nb, b = {0};
    gb_bytes bb = {NULL, 0};
    if (get_bytes(nonce, &nb, "nonce") < 0)
        return NULL;
    if (binding && binding != Py_None) {
        if (get_bytes(binding, &b, "binding") < 0) {
            release_bytes(&nb);
            return NULL;
        }
        bb = as_gb(&b);
    }
    int64_t issued = 0;
    gb_nonce_status st = gb_digest_nonce_check(self->n, as_gb(&nb), bb, to_ms(now), &issued);
    release_bytes(&nb);
    release_bytes(&b);
    if (st == GB_NONCE_ERROR) {
        PyErr_SetString(gbpy_GBSIPError, "OpenSSL HMAC failed");
        return NULL;
    }
    if (st == GB_NONCE_FORGED)
        return Py_BuildValue("(iO)", (int)st, Py_None);
    return Py_BuildValue("(id)", (int)st, (double)issued / 1000.0);
}

static PyObject *nonces_get_lifetime(NoncesObject *self, void *c)
{
    (void)c;
    return PyFloat_FromDouble(self->lifetime);
}

static PyObject *nonces_get_encoding(NoncesObject *self, void *c)
{
    (void)c;
    return PyUnicode_FromString(self->encoding == GB_NONCE_HEX ? "hex" : "base64url");
}

static PyObject *nonces_get_single_use(NoncesObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(self->single_use);
}

static PyObject *nonces_get_replay_slots(NoncesObject *self, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLong(self->replay_slots);
}

static PyGetSetDef nonces_getset[] = {
    {"lifetime", (getter)nonces_get_lifetime, NULL, "seconds a nonce stays fresh", NULL},
    {"encoding", (getter)nonces_get_encoding, NULL, "'base64url' or 'hex'", NULL},
    {"single_use", (getter)nonces_get_single_use, NULL,
     "without qop, each nonce is accepted once", NULL},
    {"replay_slots", (getter)nonces_get_replay_slots, NULL, "size of the nc table", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef nonces_methods[] = {
    {"issue", (PyCFunction)(void (*)(void))nonces_issue, METH_VARARGS | METH_KEYWORDS,
     nonces_issue_doc},
    {"check", (PyCFunction)(void (*)(void))nonces_check, METH_VARARGS | METH_KEYWORDS,
     nonces_check_doc},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot nonces_slots[] = {
    {Py_tp_new, nonces_new},
    {Py_tp_dealloc, nonces_dealloc},
    {Py_tp_methods, nonces_methods},
    {Py_tp_getset, nonces_getset},
    {Py_tp_doc, "DigestNonces(key, lifetime, *, replay_slots=4096, encoding='base64url', "
                "single_use=False)\n\nStateless server nonces (HMAC-SHA256 over time and "
                "binding) and the bounded nc replay table."},
    {0, NULL},
};

static PyType_Spec nonces_spec = {
    .name = "gbsip._core.DigestNonces",
    .basicsize = sizeof(NoncesObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = nonces_slots,
};

static PyObject *NoncesType;

/* ---- digest_verify ---- */

typedef struct {
    PyObject *password;   /* str, callable or NULL */
    PyObject *ha1;
    PyObject *keep;       /* result of the callable, kept alive during verify */
    in_bytes secret;
    in_bytes user;
    int have_secret, have_user;
} verify_state;

static int py_lookup(void *arg, gb_bytes username, gb_bytes realm, int userhash,
                     gb_digest_secret *out)
{
    verify_state *st = arg;
    (void)userhash;
    PyObject *src = st->password ? st->password : st->ha1;
    int kind = st->password ? GB_SECRET_PASSWORD : GB_SECRET_HA1;
    PyObject *val;
    if (PyCallable_Check(src)) {
        PyObject *u = str_of(username.p, username.n), *r = str_of(realm.p, realm.n);
        val = u && r ? PyObject_CallFunctionObjArgs(src, u, r, NULL) : NULL;
        Py_XDECREF(u);
        Py_XDECREF(r);
        if (!val)
            return -1;
        st->keep = val;
    } else {
        val = src;
    }
    if (val == Py_None)
        return 0; /* unknown user */
    PyObject *secret = val;
    if (PyTuple_Check(val)) {
        /* (real user name, secret): for userhash credentials */
        if (PyTuple_GET_SIZE(val) != 2) {
            PyErr_SetString(gbpy_GBSIPError, "lookup must return a secret, "
                                             "(username, secret) or None");
            return -1;
        }
        if (get_bytes(PyTuple_GET_ITEM(val, 0), &st->user, "username") < 0)
            return -1;
        st->have_user = 1;
        out->username = as_gb(&st->user);
        secret = PyTuple_GET_ITEM(val, 1);
    }
    if (get_bytes(secret, &st->secret, kind == GB_SECRET_HA1 ? "ha1" : "password") < 0)
        return -1;
    st->have_secret = 1;
    out->kind = kind;
    out->value = as_gb(&st->secret);
    return 0;
}

PyDoc_STRVAR(digest_verify_doc,
"digest_verify(value, method, *, nonces=None, password=None, ha1=None, realm=None,\n"
"              request_uri=None, uri_policy=0, algorithms=0, qops=0, opaque=None,\n"
"              binding=b'', now=0.0, body=b'')\n--\n\n"
"Verify credentials.  Returns (result_name, detail, offset, username, realm,\n"
"algorithm, qop, nc, nonce_issued).  password/ha1: a str, or a callable\n"
"(username, realm) -> secret | (username, secret) | None.");

static PyObject *py_digest_verify(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"value", "method", "nonces", "password", "ha1", "realm",
                             "request_uri", "uri_policy", "algorithms", "qops", "opaque",
                             "binding", "now", "body", NULL};
    PyObject *value, *method, *nonces = Py_None, *pw = Py_None, *ha1 = Py_None,
             *realm = Py_None, *ruri = Py_None, *opaque = Py_None, *binding = NULL,
             *body = NULL;
    int policy = GB_URI_EXACT;
    unsigned int algs = 0, qops = 0;
    double now = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$OOOOOiIIOOdO:digest_verify", kwlist,
                                     &value, &method, &nonces, &pw, &ha1, &realm, &ruri,
                                     &policy, &algs, &qops, &opaque, &binding, &now, &body))
        return NULL;
    if ((pw != Py_None) == (ha1 != Py_None)) {
        PyErr_SetString(gbpy_GBSIPError, "give exactly one of password and ha1");
        return NULL;
    }
    if (check_now(now) < 0)
        return NULL;
    if (nonces != Py_None && !PyObject_TypeCheck(nonces, (PyTypeObject *)NoncesType)) {
        PyErr_SetString(PyExc_TypeError, "nonces must be a DigestNonces");
        return NULL;
    }
    if (policy < GB_URI_EXACT || policy > GB_URI_ANY) {
        PyErr_SetString(gbpy_GBSIPError, "uri_policy must be 0, 1 or 2");
        return NULL;
    }
    if (ruri == Py_None && policy != GB_URI_ANY) {
        PyErr_SetString(gbpy_GBSIPError, "request_uri is needed unless uri_policy is ANY");
        return NULL;
    }
    gb_digest_ctx *ctx = nonces != Py_None ? ((NoncesObject *)nonces)->ctx : get_ctx();
    if (!ctx)
        return NULL;
    in_bytes b[8];
    int nb = 0;
    PyObject *result = NULL;
    verify_state st = {pw != Py_None ? pw : NULL, ha1 != Py_None ? ha1 : NULL, NULL,
                       {0}, {0}, 0, 0};
    gb_digest_verdict *v = PyMem_Malloc(sizeof *v);
    if (!v) {
        PyErr_NoMemory();
        return NULL;
    }
    gb_digest_check chk;
    memset(&chk, 0, sizeof chk);
    PyObject *objs[7] = {value, method, realm, ruri, opaque, binding, body};
    gb_bytes *dst[7] = {NULL, &chk.method, &chk.realm, &chk.request_uri, &chk.opaque,
                        &chk.binding, &chk.body};
    static const char *const names[7] = {"value", "method", "realm", "request_uri",
                                         "opaque", "binding", "body"};
    for (int i = 0; i < 7; i++) {
        if (!objs[i] || objs[i] == Py_None)
            continue;
        if (get_bytes(objs[i], &b[nb], names[i]) < 0)
            goto done;
        if (dst[i])
            *dst[i] = as_gb(&b[nb]);
        nb++;
    }
    const in_bytes *vb = &b[0];
    if (vb->n > UINT32_MAX) {
        PyErr_SetString(gbpy_GBSIPError, "value too long");
        goto done;
    }
    if (realm != Py_None && chk.realm.n == 0) {
        PyErr_SetString(gbpy_GBSIPError, "realm must not be empty");
        goto done;
    }
    chk.now_ms = to_ms(now);
    chk.allowed_algs = algs;
    chk.allowed_qops = qops;
    chk.uri_policy = policy;
    gb_span sp = {0, (uint32_t)vb->n};
    gb_digest_result r = gb_digest_verify(
        ctx, nonces != Py_None ? ((NoncesObject *)nonces)->n : NULL, vb->p, sp, &chk,
        py_lookup, &st, v);
    if (PyErr_Occurred())
        goto done; /* the lookup raised */
    const char *buf = vb->p;
    const gb_digest_credentials *c = &v->cred;
    int parsed = r != GB_DIGEST_MALFORMED && r != GB_DIGEST_NOT_DIGEST &&
                 r != GB_DIGEST_CAPABILITY_HINT;
    PyObject *user = Py_None, *rlm = Py_None, *alg = Py_None, *qop = Py_None, *nc = Py_None,
             *issued = Py_None;
    char tmp[GB_DIGEST_MAX_VALUE];
    if (parsed) {
        long n = gb_auth_value(buf, &c->username, tmp, sizeof tmp);
        user = n >= 0 ? str_of(tmp, (size_t)n) : Py_NewRef(Py_None);
        n = gb_auth_value(buf, &c->realm, tmp, sizeof tmp);
        rlm = n >= 0 ? str_of(tmp, (size_t)n) : Py_NewRef(Py_None);
        alg = c->alg < GB_DIGEST_ALG__COUNT ? PyUnicode_FromString(gb_digest_alg_name(c->alg))
                                            : Py_NewRef(Py_None);
        qop = c->qop_v == GB_QOP_AUTH       ? PyUnicode_FromString("auth")
              : c->qop_v == GB_QOP_AUTH_INT ? PyUnicode_FromString("auth-int")
                                            : Py_NewRef(Py_None);
        nc = c->qop_v != GB_QOP_NONE ? PyLong_FromUnsignedLong(c->nc_value)
                                     : Py_NewRef(Py_None);
        issued = v->nonce_issued_ms ? PyFloat_FromDouble((double)v->nonce_issued_ms / 1000.0)
                                    : Py_NewRef(Py_None);
        if (!user || !rlm || !alg || !qop || !nc || !issued) {
            Py_XDECREF(user);
            Py_XDECREF(rlm);
            Py_XDECREF(alg);
            Py_XDECREF(qop);
            Py_XDECREF(nc);
            Py_XDECREF(issued);
            goto done;
        }
    } else {
        Py_INCREF(user);
        Py_INCREF(rlm);
        Py_INCREF(alg);
        Py_INCREF(qop);
        Py_INCREF(nc);
        Py_INCREF(issued);
    }
    result = Py_BuildValue("(ssINNNNNN)", gb_digest_result_name(r), v->detail,
                           (unsigned)v->offset, user, rlm, alg, qop, nc, issued);
done:
    release_all(b, nb);
    if (st.have_secret)
        release_bytes(&st.secret);
    if (st.have_user)
        release_bytes(&st.user);
    Py_XDECREF(st.keep);
    PyMem_Free(v);
    return result;
}

/* ---- module setup ---- */

static PyMethodDef digest_functions[] = {
    {"auth_parse", (PyCFunction)(void (*)(void))py_auth_parse, METH_VARARGS | METH_KEYWORDS,
     auth_parse_doc},
    {"auth_build", (PyCFunction)py_auth_build, METH_VARARGS, auth_build_doc},
    {"digest_response", (PyCFunction)(void (*)(void))py_digest_response,
     METH_VARARGS | METH_KEYWORDS, digest_response_doc},
    {"digest_ha1", (PyCFunction)py_digest_ha1, METH_VARARGS, digest_ha1_doc},
    {"digest_userhash", (PyCFunction)py_digest_userhash, METH_VARARGS, digest_userhash_doc},
    {"digest_cnonce", (PyCFunction)py_digest_cnonce, METH_NOARGS, digest_cnonce_doc},
    {"digest_answer", (PyCFunction)(void (*)(void))py_digest_answer,
     METH_VARARGS | METH_KEYWORDS, digest_answer_doc},
    {"digest_verify", (PyCFunction)(void (*)(void))py_digest_verify,
     METH_VARARGS | METH_KEYWORDS, digest_verify_doc},
    {NULL, NULL, 0, NULL},
};

int gbpy_digest_init(PyObject *module)
{
    if (PyModule_AddFunctions(module, digest_functions) < 0)
        return -1;
    ClientType = PyType_FromSpec(&client_spec);
    if (!ClientType || PyModule_AddObjectRef(module, "DigestClient", ClientType) < 0)
        return -1;
    NoncesType = PyType_FromSpec(&nonces_spec);
    if (!NoncesType || PyModule_AddObjectRef(module, "DigestNonces", NoncesType) < 0)
        return -1;
    PyObject *algs = PyTuple_New(GB_DIGEST_ALG__COUNT);
    if (!algs)
        return -1;
    for (int i = 0; i < GB_DIGEST_ALG__COUNT; i++) {
        PyObject *s = PyUnicode_FromString(gb_digest_alg_name((gb_digest_alg)i));
        if (!s) {
            Py_DECREF(algs);
            return -1;
        }
        PyTuple_SET_ITEM(algs, i, s);
    }
    if (PyModule_AddObject(module, "DIGEST_ALGORITHMS", algs) < 0) {
        Py_DECREF(algs);
        return -1;
    }
    PyObject *res = PyTuple_New(GB_DIGEST_RESULT__COUNT);
    if (!res)
        return -1;
    for (int i = 0; i < GB_DIGEST_RESULT__COUNT; i++) {
        PyObject *t = Py_BuildValue("(ss)", gb_digest_result_name((gb_digest_result)i),
                                    gb_digest_result_text((gb_digest_result)i));
        if (!t) {
            Py_DECREF(res);
            return -1;
        }
        PyTuple_SET_ITEM(res, i, t);
    }
    if (PyModule_AddObject(module, "DIGEST_RESULTS", res) < 0) {
        Py_DECREF(res);
        return -1;
    }
    return 0;
}
