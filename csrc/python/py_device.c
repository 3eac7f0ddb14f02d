/*
 * py_device.c - gbsip._core.Fleet: the device (UAC) fleet of device.h for
 * Python.
 *
 * A thin wrapper: arguments become core calls (every `now` is int
 * milliseconds of the caller's monotonic clock), results become Python
 * objects, datagrams and events come back as lists of tuples so that a
 * simulator pays one Python call per batch, not per device.  The batched
 * UDP I/O is io/udp_pump.h's, the statistics core/stats.h's; the calls that
 * do I/O (pump_udp, tick, service) run it with the GIL released, so a
 * Fleet refuses calls from another thread meanwhile (ConcurrentUseError):
 * it belongs to one thread, the event loop's.  Over TCP (tcp_open) the
 * same calls go through io/tcp_pump.h instead: one connection per device,
 * opened, written, read and framed in C (tcp_start_range, pump_tcp).
 */
#include "py_core.h"

#include <errno.h>
#include <openssl/rand.h>
#include <string.h>

#include "device.h"
#include "stats.h"
#include "tcp_pump.h"
#include "udp_pump.h"

typedef struct {
    PyObject_HEAD
    gb_fleet *f;
    gb_fleet_io *io;       /* the simulator's UDP socket pool */
    gb_fleet_tcp *tcp;     /* or its TCP connections (tcp_open) */
    gb_fleet_tally tally;  /* events folded by the simulator calls */
    int keep_events;
    int busy;              /* the I/O runs without the GIL */
    PyObject *query_hook;  /* query_hook(index, body) -> None | bytes | int */
    PyObject *hook_result; /* keeps the hook's bytes alive while the core copies them */
} FleetObject;

static PyObject *state_str[GB_DEV_STATE__COUNT];
static PyObject *event_str[GB_DEV_EV__COUNT];
static PyObject *reason_str[GB_DEV_R__COUNT];

static const char FLEET_BUSY[] = "Fleet";

/* The core's query hook: the Python callable, under the GIL (the calls
 * that run without it refuse to run while a hook is set).  None: answer as
 * usual; bytes: that body; an int: 200 alone, or a refusal (>= 300); an
 * exception: 500, reported as unraisable. */
static int call_query_hook(void *arg, uint32_t dev, const char *body, size_t len,
                           const gb_manscdp_doc *doc, gb_bytes *answer)
{
    (void)doc;
    FleetObject *self = arg;
    PyObject *r = PyObject_CallFunction(self->query_hook, "Iy#", dev, body, (Py_ssize_t)len);
    if (!r) {
        PyErr_WriteUnraisable(self->query_hook);
        return 500;
    }
    Py_CLEAR(self->hook_result);
    if (r == Py_None) {
        Py_DECREF(r);
        return GB_DEV_HOOK_DEFAULT;
    }
    if (PyBytes_Check(r)) {
        self->hook_result = r;
        answer->p = PyBytes_AS_STRING(r);
        answer->n = (size_t)PyBytes_GET_SIZE(r);
        return GB_DEV_HOOK_BODY;
    }
    long v = PyLong_Check(r) ? PyLong_AsLong(r) : -1;
    Py_DECREF(r);
    if (v == 200)
        return GB_DEV_HOOK_NONE;
    if (v >= 300 && v <= 699)
        return (int)v;
    PyErr_SetString(PyExc_TypeError,
                    "query_hook must return None, bytes, 200 or a status >= 300");
    PyErr_WriteUnraisable(self->query_hook);
    return 500;
}

/* ---- arguments --------------------------------------------------------------- */

static int check_index(FleetObject *self, Py_ssize_t i)
{
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return -1;
    if (i < 0 || (size_t)i >= gb_fleet_count(self->f)) {
        PyErr_SetString(PyExc_IndexError, "no such device");
        return -1;
    }
    return 0;
}

/* A device index passed alone (METH_O). */
static int index_arg(FleetObject *self, PyObject *arg, uint32_t *i)
{
    Py_ssize_t v = PyLong_AsSsize_t(arg);
    if ((v == -1 && PyErr_Occurred()) || check_index(self, v))
        return -1;
    *i = (uint32_t)v;
    return 0;
}

/* (index, now) */
static int index_now(FleetObject *self, PyObject *args, uint32_t *i, long long *now)
{
    Py_ssize_t v;
    if (!PyArg_ParseTuple(args, "nL", &v, now) || check_index(self, v))
        return -1;
    *i = (uint32_t)v;
    return 0;
}

/* (index, n) with n clamped to 32 bits */
static int index_count(FleetObject *self, PyObject *args, uint32_t *i, uint32_t *n)
{
    Py_ssize_t v;
    unsigned long c;
    if (!PyArg_ParseTuple(args, "nk", &v, &c) || check_index(self, v))
        return -1;
    *i = (uint32_t)v;
    *n = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
    return 0;
}

/* A `now` passed alone. */
static int now_arg(FleetObject *self, PyObject *arg, long long *now)
{
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return -1;
    *now = PyLong_AsLongLong(arg);
    return *now == -1 && PyErr_Occurred() ? -1 : 0;
}

/* A str argument as gb_bytes (borrowed from the str's UTF-8 cache). */
static int str_bytes(PyObject *o, const char *what, gb_bytes *out)
{
    if (o == NULL || o == Py_None) {
        out->p = NULL;
        out->n = 0;
        return 0;
    }
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be str", what);
        return -1;
    }
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(o, &n);
    if (!p)
        return -1;
    if (memchr(p, '\r', (size_t)n) || memchr(p, '\n', (size_t)n) ||
        memchr(p, '\0', (size_t)n)) {
        PyErr_Format(PyExc_ValueError, "%s must not contain CR, LF or NUL", what);
        return -1;
    }
    out->p = p;
    out->n = (size_t)n;
    return 0;
}

/* ---- construction --------------------------------------------------------------- */

static PyObject *Fleet_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {
        "server_id", "domain", "request_uri", "message_uri", "server_host",
        "server_port", "transport", "password", "user_agent", "contact_params",
        "gb_version", "capability_header", "expires", "refresh_fraction",
        "jitter", "retry_interval", "keepalive_interval",
        "keepalive_max_missed", "t1", "t2", "max_challenges",
        "preemptive_auth", "lenient", "seed", "capacity", "hash_key",
        "answer_max_message", "answer_max_items", "answer_gap", "answer_window",
        "max_answers", "max_jobs", "max_subscriptions", "subscribe_default_expires",
        "subscribe_max_expires", "record_segment", "record_max", "utc_offset_min",
        "manscdp_lenient", "query_hook", "unregister_drain", NULL};
    PyObject *server_id = NULL, *domain = NULL, *request_uri = NULL,
             *message_uri = NULL, *server_host = NULL, *transport = NULL,
             *password = NULL, *user_agent = NULL, *contact_params = NULL,
             *gb_version = NULL, *seed = Py_None, *hash_key = Py_None, *hook = Py_None;
    int server_port = 5060, capability = 1, preemptive = 1;
    unsigned long expires = 3600, retry = 60000, ka = 60000, ka_missed = 3,
                  t1 = 500, t2 = 4000, max_ch = 3, lenient = 0, capacity = 1;
    double fraction = 0.5, jitter = 0.1;
    gb_dev_config dflt;
    gb_dev_config_default(&dflt);
    unsigned long amax = dflt.answer_max_message, aitems = 0, agap = 0, awin = dflt.answer_window,
                  maxa = dflt.max_answers, maxj = dflt.max_jobs, maxs = dflt.max_subscriptions,
                  sdef = dflt.subscribe_default_expires, smax = dflt.subscribe_max_expires,
                  rseg = dflt.record_segment_s, rmax = dflt.record_max,
                  mlen = dflt.manscdp_lenient, drain = dflt.unregister_drain_ms;
    int utc = dflt.utc_offset_min;
    if (PyTuple_GET_SIZE(args)) {
        PyErr_SetString(PyExc_TypeError, "Fleet() takes keyword arguments only");
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(
            args, kw, "|$OOOOOiOOOOOpkddkkkkkkpkOkOkkkkkkkkkkkikOk", kwlist, &server_id, &domain,
            &request_uri, &message_uri, &server_host, &server_port, &transport,
            &password, &user_agent, &contact_params, &gb_version, &capability,
            &expires, &fraction, &jitter, &retry, &ka, &ka_missed, &t1, &t2,
            &max_ch, &preemptive, &lenient, &seed, &capacity, &hash_key, &amax, &aitems,
            &agap, &awin, &maxa, &maxj, &maxs, &sdef, &smax, &rseg, &rmax, &utc, &mlen, &hook,
            &drain))
        return NULL;
    if (hook != Py_None && !PyCallable_Check(hook)) {
        PyErr_SetString(PyExc_TypeError, "query_hook must be callable or None");
        return NULL;
    }
    gb_dev_config cfg;
    gb_dev_config_default(&cfg);
    if (str_bytes(server_id, "server_id", &cfg.server_id) ||
        str_bytes(domain, "domain", &cfg.domain) ||
        str_bytes(request_uri, "request_uri", &cfg.request_uri) ||
        str_bytes(message_uri, "message_uri", &cfg.message_uri) ||
        str_bytes(server_host, "server_host", &cfg.server_host) ||
        str_bytes(password, "password", &cfg.password) ||
        str_bytes(user_agent, "user_agent", &cfg.user_agent) ||
        str_bytes(contact_params, "contact_params", &cfg.contact_params) ||
        str_bytes(gb_version, "gb_version", &cfg.gb_version))
        return NULL;
    if (server_port < 0 || server_port > 65535) {
        PyErr_SetString(PyExc_ValueError, "server_port out of range");
        return NULL;
    }
    cfg.server_port = (uint16_t)server_port;
    if (transport && transport != Py_None) {
        gb_bytes t;
        if (str_bytes(transport, "transport", &t))
            return NULL;
        if (gb_ieq(t.p, t.n, "udp", 3))
            cfg.transport = GB_DEV_UDP;
        else if (gb_ieq(t.p, t.n, "tcp", 3))
            cfg.transport = GB_DEV_TCP;
        else {
            PyErr_SetString(PyExc_ValueError, "transport must be 'udp' or 'tcp'");
            return NULL;
        }
    }
    if (expires > UINT32_MAX || retry > UINT32_MAX || ka > UINT32_MAX ||
        ka_missed > 255 || ka_missed == 0 || t1 > UINT32_MAX || t2 > UINT32_MAX ||
        max_ch > 255 || capacity > UINT32_MAX - 1 || aitems > UINT32_MAX ||
        agap > UINT32_MAX || awin > UINT32_MAX || maxa > UINT32_MAX || maxj > UINT32_MAX ||
        maxs > UINT32_MAX || sdef > UINT32_MAX || smax > UINT32_MAX || rseg > UINT32_MAX ||
        rmax > UINT32_MAX || amax > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a numeric option is out of range");
        return NULL;
    }
    cfg.capability_header = capability;
    cfg.expires = (uint32_t)expires;
    cfg.refresh_fraction = fraction;
    cfg.jitter = jitter;
    cfg.retry_interval_ms = (uint32_t)retry;
    cfg.keepalive_interval_ms = (uint32_t)ka;
    cfg.keepalive_max_missed = (uint32_t)ka_missed;
    cfg.t1_ms = (uint32_t)t1;
    cfg.t2_ms = (uint32_t)t2;
    cfg.max_challenges = (uint32_t)max_ch;
    cfg.preemptive_auth = preemptive;
    cfg.lenient = (unsigned)lenient;
    cfg.answer_max_message = (uint32_t)amax;
    cfg.answer_max_items = (uint32_t)aitems;
    cfg.answer_gap_ms = (uint32_t)agap;
    cfg.answer_window = (uint32_t)awin;
    cfg.max_answers = (uint32_t)maxa;
    cfg.unregister_drain_ms = (uint32_t)drain;
    cfg.max_jobs = (uint32_t)maxj;
    cfg.max_subscriptions = (uint32_t)maxs;
    cfg.subscribe_default_expires = (uint32_t)sdef;
    cfg.subscribe_max_expires = (uint32_t)smax;
    cfg.record_segment_s = (uint32_t)rseg;
    cfg.record_max = (uint32_t)rmax;
    cfg.utc_offset_min = utc;
    cfg.manscdp_lenient = (unsigned)mlen;
    if (gbpy_hash_key(hash_key, cfg.hash_key) < 0)
        return NULL;
    if (seed == Py_None) {
        unsigned char r[8];
        if (RAND_bytes(r, sizeof r) != 1) {
            PyErr_SetString(gbpy_GBSIPError, "RAND_bytes failed");
            return NULL;
        }
        memcpy(&cfg.seed, r, sizeof r);
    } else {
        cfg.seed = PyLong_AsUnsignedLongLongMask(seed);
        if (PyErr_Occurred())
            return NULL;
    }
    const char *why = NULL;
    gb_fleet *f = gb_fleet_new(&cfg, (uint32_t)capacity, &why);
    if (!f) {
        PyErr_SetString(PyExc_ValueError, why ? why : "bad configuration");
        return NULL;
    }
    gb_fleet_io *io = gb_fleet_io_new(f);
    FleetObject *self = io ? (FleetObject *)type->tp_alloc(type, 0) : NULL;
    if (!self) {
        gb_fleet_io_free(io);
        gb_fleet_free(f);
        return io ? NULL : PyErr_NoMemory();
    }
    self->f = f;
    self->io = io;
    if (hook != Py_None) {
        /* the core keeps the config it was made with: set the hook there */
        self->query_hook = Py_NewRef(hook);
        gb_fleet_set_query_hook(f, call_query_hook, self);
    }
    return (PyObject *)self;
}

static int Fleet_traverse(FleetObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->query_hook);
    Py_VISIT(self->hook_result);
    return 0;
}

static int Fleet_clear(FleetObject *self)
{
    if (self->f)
        gb_fleet_set_query_hook(self->f, NULL, NULL);
    Py_CLEAR(self->query_hook);
    Py_CLEAR(self->hook_result);
    return 0;
}

static void Fleet_dealloc(FleetObject *self)
{
    PyObject_GC_UnTrack(self);
    Fleet_clear(self);
    gb_fleet_tcp_free(self->tcp);
    gb_fleet_io_free(self->io);
    gb_fleet_free(self->f);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---- devices -------------------------------------------------------------------- */

static PyObject *Fleet_add(FleetObject *self, PyObject *arg)
{
    gb_bytes id;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 || str_bytes(arg, "device_id", &id))
        return NULL;
    long i = gb_fleet_add(self->f, id.p, id.n);
    if (i < 0) {
        PyErr_Format(PyExc_ValueError, "device ID must have 1..%d bytes",
                     GB_DEV_ID_MAX);
        return NULL;
    }
    return PyLong_FromLong(i);
}

static PyObject *Fleet_local_host(FleetObject *self, PyObject *arg)
{
    gb_bytes h;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 || str_bytes(arg, "host", &h))
        return NULL;
    int i = gb_fleet_local_host(self->f, h.p, h.n);
    if (i < 0) {
        PyErr_SetString(PyExc_ValueError, "empty host, or too many local hosts (255)");
        return NULL;
    }
    return PyLong_FromLong(i);
}

static PyObject *Fleet_set_local(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    int h, port;
    if (!PyArg_ParseTuple(args, "nii", &i, &h, &port) || check_index(self, i))
        return NULL;
    if (port < 0 || port > 65535 ||
        gb_fleet_set_local(self->f, (uint32_t)i, h, (uint16_t)port)) {
        PyErr_SetString(PyExc_ValueError, "bad host index or port");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Fleet_set_password(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    PyObject *pw;
    gb_bytes b;
    if (!PyArg_ParseTuple(args, "nO", &i, &pw) || check_index(self, i) ||
        str_bytes(pw, "password", &b))
        return NULL;
    if (gb_fleet_set_password(self->f, (uint32_t)i, pw == Py_None ? NULL : b.p, b.n))
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *Fleet_set_dialog(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    unsigned long long cid;
    unsigned long tag;
    if (!PyArg_ParseTuple(args, "nKk", &i, &cid, &tag) || check_index(self, i))
        return NULL;
    if (tag > UINT32_MAX ||
        gb_fleet_set_dialog(self->f, (uint32_t)i, cid, (uint32_t)tag)) {
        PyErr_SetString(PyExc_ValueError, "Call-ID in use or tag out of range");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* A lifecycle call (index, now) whose 0 means done: True/False. */
static PyObject *lifecycle(FleetObject *self, PyObject *args,
                           int (*fn)(gb_fleet *, uint32_t, int64_t))
{
    uint32_t i;
    long long now;
    if (index_now(self, args, &i, &now))
        return NULL;
    return PyBool_FromLong(fn(self->f, i, now) == 0);
}

static PyObject *Fleet_start(FleetObject *self, PyObject *args)
{
    return lifecycle(self, args, gb_fleet_start);
}

static PyObject *Fleet_stop(FleetObject *self, PyObject *args)
{
    return lifecycle(self, args, gb_fleet_stop);
}

static PyObject *Fleet_abandon(FleetObject *self, PyObject *args)
{
    return lifecycle(self, args, gb_fleet_abandon);
}

static PyObject *Fleet_send_keepalive(FleetObject *self, PyObject *args)
{
    uint32_t i;
    long long now;
    if (index_now(self, args, &i, &now))
        return NULL;
    return PyLong_FromLong(gb_fleet_send_keepalive(self->f, i, now));
}

static PyObject *Fleet_transport_error(FleetObject *self, PyObject *args)
{
    uint32_t i;
    long long now;
    if (index_now(self, args, &i, &now))
        return NULL;
    gb_fleet_transport_error(self->f, i, now);
    Py_RETURN_NONE;
}

/* A fault to inject into device index for its next n messages. */
static PyObject *fault(FleetObject *self, PyObject *args,
                       void (*fn)(gb_fleet *, uint32_t, uint32_t))
{
    uint32_t i, n;
    if (index_count(self, args, &i, &n))
        return NULL;
    fn(self->f, i, n);
    Py_RETURN_NONE;
}

static PyObject *Fleet_drop_responses(FleetObject *self, PyObject *args)
{
    return fault(self, args, gb_fleet_drop_responses);
}

static PyObject *Fleet_skip_keepalives(FleetObject *self, PyObject *args)
{
    return fault(self, args, gb_fleet_skip_keepalives);
}

/* ---- input, timers, queues -------------------------------------------------- */

static PyObject *Fleet_feed(FleetObject *self, PyObject *args)
{
    Py_buffer buf;
    long long now;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 ||
        !PyArg_ParseTuple(args, "y*L", &buf, &now))
        return NULL;
    long r = gb_fleet_handle_datagram(self->f, buf.buf, (size_t)buf.len, now);
    PyBuffer_Release(&buf);
    return PyLong_FromLong(r);
}

static PyObject *Fleet_handle_timer(FleetObject *self, PyObject *arg)
{
    long long now;
    if (now_arg(self, arg, &now))
        return NULL;
    gb_fleet_handle_timer(self->f, now);
    Py_RETURN_NONE;
}

static PyObject *Fleet_next_deadline(FleetObject *self, PyObject *Py_UNUSED(a))
{
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    int64_t t = gb_fleet_next_deadline(self->f);
    if (self->tcp) {
        int64_t c = gb_tcp_next_deadline(gb_fleet_tcp_pump(self->tcp));
        t = c < t ? c : t;
    }
    if (t == GB_DEV_NEVER || t == INT64_MAX)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(t);
}

static PyObject *Fleet_pop_datagrams(FleetObject *self, PyObject *Py_UNUSED(a))
{
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    size_t n = gb_fleet_out_count(self->f);
    const gb_dev_out *o = gb_fleet_out_items(self->f);
    const char *data = gb_fleet_out_data(self->f);
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list)
        return NULL;
    for (size_t k = 0; k < n; k++) {
        PyObject *t = Py_BuildValue("(IHy#)", o[k].dev, o[k].dest, data + o[k].off,
                                    (Py_ssize_t)o[k].len);
        if (!t) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)k, t);
    }
    gb_fleet_out_clear(self->f);
    return list;
}

/* (index, type, status, reason, value, latency_ms, time_ms, arg, flags, text) */
static PyObject *event_tuple(const gb_dev_event *e, const char *text)
{
    PyObject *arg = e->arg == INT64_MIN ? Py_NewRef(Py_None) : PyLong_FromLongLong(e->arg);
    PyObject *txt = e->text_len
        ? PyUnicode_DecodeUTF8(text + e->text_off, (Py_ssize_t)e->text_len, "replace")
        : PyUnicode_FromStringAndSize("", 0);
    if (!arg || !txt) {
        Py_XDECREF(arg);
        Py_XDECREF(txt);
        return NULL;
    }
    return Py_BuildValue("(IOIOIILNIN)", e->dev,
                         event_str[e->type < GB_DEV_EV__COUNT ? e->type : 0],
                         (unsigned)e->status,
                         reason_str[e->reason < GB_DEV_R__COUNT ? e->reason : 0],
                         e->value, e->latency_ms, (long long)e->time_ms, arg, e->flags,
                         txt);
}

/* Take the fleet's events: folded into the tally when `fold`, and returned
 * as tuples when `all` or for the traced device. */
static PyObject *take_events(FleetObject *self, int fold, int all)
{
    size_t n = gb_fleet_event_count(self->f);
    const gb_dev_event *e = gb_fleet_events(self->f);
    const char *text = gb_fleet_event_text(self->f);
    long traced = gb_fleet_io_traced(self->io);
    PyObject *list = PyList_New(0);
    for (size_t k = 0; k < n; k++) {
        if (fold)
            gb_fleet_tally_event(&self->tally, &e[k]);
        if (list && (all || (long)e[k].dev == traced)) {
            PyObject *t = event_tuple(&e[k], text);
            if (!t || PyList_Append(list, t) < 0)
                Py_CLEAR(list);
            Py_XDECREF(t);
        }
    }
    gb_fleet_events_clear(self->f);
    return list;
}

static PyObject *Fleet_pop_events(FleetObject *self, PyObject *Py_UNUSED(a))
{
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    return take_events(self, 0, 1);
}

/* ---- queries --------------------------------------------------------------------- */

static PyObject *Fleet_state(FleetObject *self, PyObject *arg)
{
    uint32_t i;
    if (index_arg(self, arg, &i))
        return NULL;
    return Py_NewRef(state_str[gb_fleet_state(self->f, i)]);
}

static PyObject *Fleet_expires_at(FleetObject *self, PyObject *arg)
{
    uint32_t i;
    if (index_arg(self, arg, &i))
        return NULL;
    int64_t t = gb_fleet_expires_at(self->f, i);
    if (t == GB_DEV_NEVER)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(t);
}

static PyObject *Fleet_dest_of(FleetObject *self, PyObject *arg)
{
    uint32_t i;
    return index_arg(self, arg, &i) ? NULL : PyLong_FromLong(gb_fleet_dest_of(self->f, i));
}

static PyObject *Fleet_keepalive_sn(FleetObject *self, PyObject *arg)
{
    uint32_t i;
    return index_arg(self, arg, &i)
               ? NULL
               : PyLong_FromUnsignedLong(gb_fleet_keepalive_sn(self->f, i));
}

static PyObject *Fleet_device_id(FleetObject *self, PyObject *arg)
{
    uint32_t i;
    if (index_arg(self, arg, &i))
        return NULL;
    size_t n;
    const char *id = gb_fleet_id(self->f, i, &n);
    return PyUnicode_DecodeUTF8(id, (Py_ssize_t)n, "replace");
}

static PyObject *Fleet_destination(FleetObject *self, PyObject *arg)
{
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    gb_bytes host, uri;
    uint16_t port;
    if (i < 0 || gb_fleet_dest(self->f, (size_t)i, &host, &port, &uri)) {
        PyErr_SetString(PyExc_IndexError, "no such destination");
        return NULL;
    }
    return Py_BuildValue("(s#Hs#)", host.p, (Py_ssize_t)host.n, port, uri.p,
                         (Py_ssize_t)uri.n);
}

static PyObject *camera_stats(const gb_fleet_stats *s);
static PyObject *registration_stats(const gb_fleet_stats *s);

static PyObject *Fleet_stats(FleetObject *self, PyObject *Py_UNUSED(a))
{
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    const gb_fleet_stats *s = gb_fleet_get_stats(self->f);
    PyObject *d = registration_stats(s);
    PyObject *cam = d ? camera_stats(s) : NULL;
    if (!cam || PyDict_Update(d, cam) < 0) {
        Py_XDECREF(d);
        Py_XDECREF(cam);
        return NULL;
    }
    Py_DECREF(cam);
    return d;
}

/* The registration counters (the original stats()). */
static PyObject *registration_stats(const gb_fleet_stats *s)
{
    PyObject *by_state = PyDict_New();
    if (!by_state)
        return NULL;
    for (int k = 0; k < GB_DEV_STATE__COUNT; k++)
        if (gbpy_dict_u64(by_state, state_str[k], s->by_state[k]) < 0) {
            Py_DECREF(by_state);
            return NULL;
        }
    return Py_BuildValue(
        "{sKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsN}",
        "requests_sent", (unsigned long long)s->requests_sent,
        "retransmissions", (unsigned long long)s->retransmissions,
        "responses", (unsigned long long)s->responses,
        "matched", (unsigned long long)s->matched,
        "strays", (unsigned long long)s->strays,
        "duplicates", (unsigned long long)s->duplicates,
        "dropped", (unsigned long long)s->dropped,
        "parse_errors", (unsigned long long)s->parse_errors,
        "requests_ignored", (unsigned long long)s->requests_ignored,
        "registrations", (unsigned long long)s->registrations,
        "refreshes", (unsigned long long)s->refreshes,
        "challenges", (unsigned long long)s->challenges,
        "failures", (unsigned long long)s->failures,
        "timeouts", (unsigned long long)s->timeouts,
        "redirects", (unsigned long long)s->redirects,
        "unregistrations", (unsigned long long)s->unregistrations,
        "unregisters_drained", (unsigned long long)s->unregisters_drained,
        "keepalives_sent", (unsigned long long)s->keepalives_sent,
        "keepalives_answered", (unsigned long long)s->keepalives_answered,
        "keepalives_missed", (unsigned long long)s->keepalives_missed,
        "keepalives_skipped", (unsigned long long)s->keepalives_skipped,
        "keepalive_timeouts", (unsigned long long)s->keepalive_timeouts,
        "by_state", by_state);
}

static PyObject *Fleet_memory(FleetObject *self, PyObject *Py_UNUSED(a))
{
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    return Py_BuildValue("{snsnsnsn}", "bytes_per_device",
                         (Py_ssize_t)gb_fleet_bytes_per_device(), "state_bytes",
                         (Py_ssize_t)gb_fleet_memory(self->f), "queue_bytes",
                         (Py_ssize_t)gb_fleet_queue_memory(self->f), "camera_bytes",
                         (Py_ssize_t)gb_fleet_camera_memory(self->f));
}

static Py_ssize_t Fleet_len(FleetObject *self)
{
    return gbpy_not_busy(self->busy, FLEET_BUSY) < 0 ? -1
                                                     : (Py_ssize_t)gb_fleet_count(self->f);
}

/* ---- simulator: bulk lifecycle ---------------------------------------------- */

/* add_serial(prefix, start, count, digits) -> first index: IDs are prefix
 * followed by start, start+1, ... written with `digits` digits (zero
 * padded), so a million IDs cost no Python string each. */
static PyObject *Fleet_add_serial(FleetObject *self, PyObject *args)
{
    const char *prefix;
    Py_ssize_t plen;
    unsigned long long start, count;
    int digits;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 ||
        !PyArg_ParseTuple(args, "s#KKi", &prefix, &plen, &start, &count, &digits))
        return NULL;
    if (digits < 1 || digits > 19 || (size_t)plen + (size_t)digits > GB_DEV_ID_MAX) {
        PyErr_SetString(PyExc_ValueError, "bad prefix length or digit count");
        return NULL;
    }
    unsigned long long limit = 1;
    for (int k = 0; k < digits; k++)
        limit *= 10;
    if (count == 0 || start >= limit || count > limit - start ||
        count > UINT32_MAX - 1 - gb_fleet_count(self->f)) {
        PyErr_SetString(PyExc_ValueError, "the serial range does not fit the digits");
        return NULL;
    }
    long first = gb_fleet_add_serial(self->f, prefix, (size_t)plen, start, (uint32_t)count,
                                     (unsigned)digits);
    if (first < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "cannot add the range: out of memory, or 16 ranges already");
        return NULL;
    }
    return PyLong_FromLong(first);
}

/* (first, count, now) over a range of devices: how many fn did. */
static PyObject *range_call(FleetObject *self, PyObject *args,
                            int (*fn)(gb_fleet *, uint32_t, int64_t))
{
    Py_ssize_t first, count;
    long long now;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 ||
        !PyArg_ParseTuple(args, "nnL", &first, &count, &now))
        return NULL;
    Py_ssize_t n = (Py_ssize_t)gb_fleet_count(self->f);
    if (first < 0 || count < 0 || first > n || count > n - first) {
        PyErr_SetString(PyExc_IndexError, "device range out of bounds");
        return NULL;
    }
    long done = 0;
    for (Py_ssize_t i = first; i < first + count; i++)
        done += fn(self->f, (uint32_t)i, now) == 0;
    return PyLong_FromLong(done);
}

static PyObject *Fleet_start_range(FleetObject *self, PyObject *args)
{
    return range_call(self, args, gb_fleet_start);
}

static PyObject *Fleet_stop_range(FleetObject *self, PyObject *args)
{
    return range_call(self, args, gb_fleet_stop);
}

/* ---- simulator: UDP through io/udp_pump.h ------------------------------------ */

/* udp_attach(fds): the socket pool.  Every device writes the address of
 * its socket (i % len(fds)) in Via and Contact. */
static PyObject *Fleet_udp_attach(FleetObject *self, PyObject *arg)
{
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(arg, "fds must be a sequence of ints");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int *fds = PyMem_Calloc(n ? (size_t)n : 1, sizeof *fds);
    if (!fds) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        long fd = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, k));
        if (fd == -1 && PyErr_Occurred()) {
            PyMem_Free(fds);
            Py_DECREF(seq);
            return NULL;
        }
        fds[k] = (int)fd;
    }
    Py_DECREF(seq);
    const char *why;
    errno = 0;
    int rc = gb_fleet_io_attach(self->io, fds, (size_t)n, &why);
    PyMem_Free(fds);
    if (rc < 0)
        return errno ? PyErr_SetFromErrno(PyExc_OSError)
                     : (PyErr_SetString(PyExc_ValueError, why), NULL);
    Py_RETURN_NONE;
}

/* set_socket(index, slot): send this device's traffic from another socket
 * of the pool, Via and Contact unchanged (a NAT rebinding). */
static PyObject *Fleet_set_socket(FleetObject *self, PyObject *args)
{
    Py_ssize_t i, slot;
    if (!PyArg_ParseTuple(args, "nn", &i, &slot) || check_index(self, i))
        return NULL;
    int rc = slot < 0 || slot > UINT32_MAX
                 ? -1
                 : gb_fleet_io_set_socket(self->io, (uint32_t)i, (uint32_t)slot);
    if (rc == -2)
        return PyErr_NoMemory();
    if (rc < 0) {
        PyErr_SetString(PyExc_IndexError, "no such socket in the pool");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* set_dest_addr(k, ip, port): where destination k (0: the server, then
 * redirect targets) is, for names the core cannot resolve itself. */
static PyObject *Fleet_set_dest_addr(FleetObject *self, PyObject *args)
{
    Py_ssize_t k;
    const char *host;
    int port;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 ||
        !PyArg_ParseTuple(args, "nsi", &k, &host, &port))
        return NULL;
    if (k < 0 || k >= GB_FLEET_MAX_DESTS || port <= 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "bad destination index or port");
        return NULL;
    }
    if (gb_fleet_io_set_dest(self->io, (size_t)k, host, strlen(host), (uint16_t)port)) {
        PyErr_Format(PyExc_ValueError, "not an IP address: %s", host);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The I/O part of pump_udp / pump_tcp / tick / service, run without the
 * GIL: receive from the UDP socket fd (fd >= 0) or the TCP connections
 * (tcp), fire the timers (timer), send the queue (over TCP when open). */
static PyObject *run_io(FleetObject *self, int fd, int tcp, int timer, long long now)
{
    long rc = 0;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    if (fd >= 0)
        rc = gb_fleet_io_receive(self->io, fd, now);
    if (tcp)
        rc = gb_fleet_tcp_run(self->tcp, now);
    if (timer) {
        gb_fleet_handle_timer(self->f, now);
        if (self->tcp)
            gb_tcp_handle_timer(gb_fleet_tcp_pump(self->tcp), now);
    }
    if (self->tcp)
        gb_fleet_tcp_flush(self->tcp, now);
    else if (rc >= 0 && gb_fleet_io_flush(self->io) < 0)
        rc = -ENOMEM;
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (rc < 0) {
        errno = (int)-rc;
        return rc == -ENOMEM ? PyErr_NoMemory() : PyErr_SetFromErrno(PyExc_OSError);
    }
    return take_events(self, 1, self->keep_events);
}

/* The pumps read and feed without the GIL; a query hook is Python, so a
 * fleet with one takes its messages through feed(). */
static int refuse_hook_without_gil(FleetObject *self, const char *pump)
{
    if (!self->query_hook)
        return 0;
    PyErr_Format(gbpy_LocalProtocolError,
                 "%s runs without the GIL: a Fleet with a query_hook takes its "
                 "messages through feed()", pump);
    return -1;
}

/* pump_udp(fd, now) -> events of the traced device: receive what waits on
 * fd (recvmmsg), feed it to the core, send the answers, fold the events. */
static PyObject *Fleet_pump_udp(FleetObject *self, PyObject *args)
{
    int fd;
    long long now;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 ||
        !PyArg_ParseTuple(args, "iL", &fd, &now))
        return NULL;
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "fd must be a file descriptor");
        return NULL;
    }
    if (refuse_hook_without_gil(self, "pump_udp") < 0)
        return NULL;
    return run_io(self, fd, 0, 0, now);
}

/* tick(now) -> events of the traced device: fire due timers, send, fold. */
static PyObject *Fleet_tick(FleetObject *self, PyObject *arg)
{
    long long now;
    if (now_arg(self, arg, &now))
        return NULL;
    return run_io(self, -1, 0, 1, now);
}

/* service() -> events of the traced device: send what is queued (UDP), fold
 * the events; after start_range() and friends. */
static PyObject *Fleet_service(FleetObject *self, PyObject *Py_UNUSED(a))
{
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    return run_io(self, -1, 0, 0, 0);
}

/* ---- simulator: TCP through io/tcp_pump.h ------------------------------------ */

/* tcp_open(sources, **options) -> the epoll fd to watch: device i connects
 * from sources[i % len(sources)] (a wildcard: the kernel's choice) */
static PyObject *Fleet_tcp_open(FleetObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *sources;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 ||
        !PyArg_ParseTuple(args, "O:tcp_open", &sources))
        return NULL;
    gb_tcp_config cfg;
    if (gbpy_tcp_config(self->tcp, kwds, &cfg) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(sources, "sources must be a sequence of str");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const char **hosts = PyMem_Calloc(n ? (size_t)n : 1, sizeof *hosts);
    for (Py_ssize_t k = 0; hosts && k < n; k++)
        if (!(hosts[k] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, k)))) {
            PyMem_Free(hosts);
            Py_DECREF(seq);
            return NULL;
        }
    const char *why = NULL;
    gb_fleet_tcp *ft = hosts ? gb_fleet_tcp_new(self->f, self->io, &cfg, &why) : NULL;
    int rc = ft ? gb_fleet_tcp_sources(ft, hosts, (size_t)n, &why) : -1;
    PyMem_Free(hosts);
    Py_DECREF(seq);
    if (rc < 0) {
        gb_fleet_tcp_free(ft);
        PyErr_Format(PyExc_ValueError, "cannot open TCP: %s", why ? why : "out of memory");
        return NULL;
    }
    self->tcp = ft;
    return PyLong_FromLong(gb_tcp_fd(gb_fleet_tcp_pump(ft)));
}

/* tcp_start_range(first, count, now) -> events: each device connects (its
 * local address into Via and Contact) and sends its REGISTER; one whose
 * connection cannot even be opened fails with reason `transport` */
static PyObject *Fleet_tcp_start_range(FleetObject *self, PyObject *args)
{
    Py_ssize_t first, count;
    long long now;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 ||
        !PyArg_ParseTuple(args, "nnL:tcp_start_range", &first, &count, &now))
        return NULL;
    if (gbpy_tcp_is_open(self->tcp) < 0)
        return NULL;
    Py_ssize_t n = (Py_ssize_t)gb_fleet_count(self->f);
    if (first < 0 || count < 0 || first > n || count > n - first) {
        PyErr_SetString(PyExc_IndexError, "device range out of bounds");
        return NULL;
    }
    long rc;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = gb_fleet_tcp_start_range(self->tcp, (uint32_t)first, (uint32_t)count, now);
    gb_fleet_tcp_flush(self->tcp, now);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (rc < 0)
        return PyErr_NoMemory();
    return take_events(self, 1, self->keep_events);
}

/* pump_tcp(now) -> events: connections completed, messages read and fed
 * to the core, lost connections as transport errors, the queue sent */
static PyObject *Fleet_pump_tcp(FleetObject *self, PyObject *arg)
{
    long long now;
    if (now_arg(self, arg, &now))
        return NULL;
    if (gbpy_tcp_is_open(self->tcp) < 0 || refuse_hook_without_gil(self, "pump_tcp") < 0)
        return NULL;
    return run_io(self, -1, 1, 0, now);
}

/* tcp_close(index, report, now) -> bool: close the device's connection
 * (the next message opens another); report: as a lost connection */
static PyObject *Fleet_tcp_close(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    int report;
    long long now;
    if (!PyArg_ParseTuple(args, "npL:tcp_close", &i, &report, &now) || check_index(self, i))
        return NULL;
    if (gbpy_tcp_is_open(self->tcp) < 0)
        return NULL;
    return PyBool_FromLong(gb_fleet_tcp_close(self->tcp, (uint32_t)i, report, now) == 0);
}

/* tcp_shutdown(): every connection closed, the pump gone */
static PyObject *Fleet_tcp_shutdown(FleetObject *self, PyObject *Py_UNUSED(a))
{
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    gb_fleet_tcp_free(self->tcp);
    self->tcp = NULL;
    Py_RETURN_NONE;
}

/* tcp_stats() -> the pump's counters and the fleet's (opened, open_failed,
 * lost, unroutable); None when TCP is not open */
static PyObject *Fleet_tcp_stats(FleetObject *self, PyObject *Py_UNUSED(a))
{
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    if (!self->tcp)
        Py_RETURN_NONE;
    PyObject *d = gbpy_tcp_stats(gb_fleet_tcp_pump(self->tcp));
    const gb_fleet_tcp_stats *s = gb_fleet_tcp_stats_get(self->tcp);
    const struct {
        const char *name;
        uint64_t v;
    } more[] = {{"opened", s->opened}, {"open_failed", s->open_failed},
                {"lost", s->lost}, {"unroutable", s->unroutable}};
    for (size_t k = 0; d && k < sizeof more / sizeof more[0]; k++) {
        PyObject *key = PyUnicode_FromString(more[k].name);
        if (!key || gbpy_dict_u64(d, key, more[k].v) < 0)
            Py_CLEAR(d);
        Py_XDECREF(key);
    }
    return d;
}

/* feed_many([bytes...], now) -> events: framed TCP messages, then fold
 * (the queue is left for pop_datagrams, TCP being Python's). */
static PyObject *Fleet_feed_many(FleetObject *self, PyObject *args)
{
    PyObject *list;
    long long now;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 ||
        !PyArg_ParseTuple(args, "OL", &list, &now))
        return NULL;
    PyObject *seq = PySequence_Fast(list, "a sequence of bytes is needed");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t k = 0; k < n; k++) {
        char *p;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(PySequence_Fast_GET_ITEM(seq, k), &p, &len) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
        gb_fleet_io_feed(self->io, p, (size_t)len, now);
    }
    Py_DECREF(seq);
    return take_events(self, 1, self->keep_events);
}

static PyObject *Fleet_trace_device(FleetObject *self, PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if ((i == -1 && PyErr_Occurred()) || (i >= 0 && check_index(self, i)) ||
        gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    gb_fleet_io_trace(self->io, i < 0 ? -1 : (long)i);
    Py_RETURN_NONE;
}

/* pop_trace() -> [("send"|"recv", bytes)] of the traced device, oldest first */
static PyObject *Fleet_pop_trace(FleetObject *self, PyObject *Py_UNUSED(a))
{
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    size_t n = gb_fleet_io_trace_count(self->io);
    const gb_trace_item *t = gb_fleet_io_trace_items(self->io);
    const char *data = gb_fleet_io_trace_data(self->io);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t k = 0; list && k < n; k++) {
        PyObject *item = Py_BuildValue("(sy#)", t[k].sent ? "send" : "recv", data + t[k].off,
                                       (Py_ssize_t)t[k].len);
        if (!item)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)k, item);
    }
    if (list)
        gb_fleet_io_trace_clear(self->io);
    return list;
}

static PyObject *Fleet_keep_events(FleetObject *self, PyObject *arg)
{
    int v = PyObject_IsTrue(arg);
    if (v < 0 || gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    self->keep_events = v;
    Py_RETURN_NONE;
}

/* ---- simulator: statistics (core/stats.h) ---------------------------------- */

static PyObject *hist_dict(const gb_hist *h)
{
    return Py_BuildValue("{sKsdsKsKsKsKsI}", "count", (unsigned long long)h->n,
                         "mean", gb_hist_mean(h),
                         "p50", (unsigned long long)gb_hist_quantile(h, 0.50),
                         "p95", (unsigned long long)gb_hist_quantile(h, 0.95),
                         "p99", (unsigned long long)gb_hist_quantile(h, 0.99),
                         "p999", (unsigned long long)gb_hist_quantile(h, 0.999),
                         "max", h->max);
}

/* {name: count} of the nonzero counters c[1..n), named by name(k). */
static PyObject *named_counts(const uint64_t *c, int n, int skip_zero,
                              const char *(*name)(int))
{
    PyObject *d = PyDict_New();
    for (int k = 1; d && k < n; k++) {
        if (skip_zero && !c[k])
            continue;
        PyObject *key = PyUnicode_FromString(name(k));
        if (!key || gbpy_dict_u64(d, key, c[k]) < 0)
            Py_CLEAR(d);
        Py_XDECREF(key);
    }
    return d;
}

static const char *reason_name(int k)
{
    return gb_dev_reason_name((gb_dev_reason)k);
}

static const char *event_name(int k)
{
    return gb_dev_event_name((gb_dev_event_type)k);
}

/* sim_stats() -> dict: latency histograms (ms), failures by reason and by
 * status, events by type, I/O counters. */
static PyObject *Fleet_sim_stats(FleetObject *self, PyObject *Py_UNUSED(a))
{
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    const gb_fleet_tally *t = &self->tally;
    const gb_fleet_io_stats *s = gb_fleet_io_stats_get(self->io);
    PyObject *by_status = PyDict_New();
    for (int k = 0; by_status && k < GB_TALLY_STATUSES; k++) {
        if (!t->fail_status[k])
            continue;
        PyObject *key = PyLong_FromLong(k);
        if (!key || gbpy_dict_u64(by_status, key, t->fail_status[k]) < 0)
            Py_CLEAR(by_status);
        Py_XDECREF(key);
    }
    PyObject *io = Py_BuildValue(
        "{sKsKsKsKsKsKsKsKsKsKsK}", "rx_datagrams", (unsigned long long)s->rx_datagrams,
        "rx_bytes", (unsigned long long)s->rx_bytes, "rx_batches",
        (unsigned long long)s->rx_batches, "rx_truncated", (unsigned long long)s->rx_truncated,
        "rx_unmatched", (unsigned long long)s->rx_unmatched, "tx_datagrams",
        (unsigned long long)s->tx_datagrams, "tx_bytes", (unsigned long long)s->tx_bytes,
        "tx_calls", (unsigned long long)s->tx_calls, "tx_dropped",
        (unsigned long long)s->tx_dropped, "tx_unroutable", (unsigned long long)s->tx_unroutable,
        "icmp_errors", (unsigned long long)s->icmp_errors);
    PyObject *fr = named_counts(t->fail_reason, GB_DEV_R__COUNT, 1, reason_name);
    PyObject *ur = named_counts(t->unreg_reason, GB_DEV_R__COUNT, 1, reason_name);
    PyObject *events = named_counts(t->events, GB_DEV_EV__COUNT, 0, event_name);
    if (!by_status || !io || !fr || !ur || !events) {
        Py_XDECREF(by_status);
        Py_XDECREF(io);
        Py_XDECREF(fr);
        Py_XDECREF(ur);
        Py_XDECREF(events);
        return NULL;
    }
    return Py_BuildValue("{s{sNsNsNsN}sNsNsNsNsNsK}", "latency_ms",
                         "register", hist_dict(&t->register_ms),
                         "refresh", hist_dict(&t->refresh_ms),
                         "message", hist_dict(&t->message_ms),
                         "answer", hist_dict(&t->answer_ms),
                         "failures_by_reason", fr, "failures_by_status", by_status,
                         "unregistrations_by_reason", ur, "events", events, "io", io,
                         "devices_registered",
                         (unsigned long long)gb_fleet_get_stats(self->f)->devices_registered);
}

/* outcomes(limit) -> (registered_now, ever_registered, not_registered:
 * {"reason status": n}, examples: [(index, state, status, reason)]) */
static PyObject *Fleet_outcomes(FleetObject *self, PyObject *arg)
{
    Py_ssize_t limit = PyLong_AsSsize_t(arg);
    if ((limit == -1 && PyErr_Occurred()) || gbpy_not_busy(self->busy, FLEET_BUSY) < 0)
        return NULL;
    PyObject *why = PyDict_New(), *examples = PyList_New(0);
    uint32_t n = gb_fleet_count(self->f);
    unsigned long long now_reg = 0, ever = 0;
    for (uint32_t i = 0; why && examples && i < n; i++) {
        char key[64];
        ever += (unsigned long long)gb_fleet_ever_registered(self->f, i);
        if (gb_fleet_outcome(self->f, i, key, sizeof key)) {
            now_reg++;
            continue;
        }
        PyObject *cur = PyDict_GetItemString(why, key);
        PyObject *v = PyLong_FromLong(cur ? PyLong_AsLong(cur) + 1 : 1);
        if (!v || PyDict_SetItemString(why, key, v) < 0)
            Py_CLEAR(why);
        Py_XDECREF(v);
        if (why && PyList_GET_SIZE(examples) < limit) {
            uint16_t status;
            gb_dev_reason reason;
            gb_fleet_last_failure(self->f, i, &status, &reason);
            PyObject *t = Py_BuildValue("(IOHO)", i, state_str[gb_fleet_state(self->f, i)],
                                        status, reason_str[reason]);
            if (!t || PyList_Append(examples, t) < 0)
                Py_CLEAR(examples);
            Py_XDECREF(t);
        }
    }
    if (!why || !examples) {
        Py_XDECREF(why);
        Py_XDECREF(examples);
        return NULL;
    }
    return Py_BuildValue("(KKNN)", now_reg, ever, why, examples);
}

/* ---- the camera side ------------------------------------------------------------ */

/* {name: n} of the nonzero counters, named by name(k) (k from 0). */
static PyObject *nonzero_counts(const uint64_t *c, int n, const char *(*name)(int))
{
    PyObject *d = PyDict_New();
    for (int k = 0; d && k < n; k++) {
        if (!c[k])
            continue;
        PyObject *key = PyUnicode_FromString(name(k));
        if (!key || gbpy_dict_u64(d, key, c[k]) < 0)
            Py_CLEAR(d);
        Py_XDECREF(key);
    }
    return d;
}

static const char *cmd_name(int k)
{
    const char *n = gb_manscdp_cmd_name((gb_manscdp_cmd)k);
    return *n ? n : "other";
}

static const char *control_name(int k)
{
    return gb_dev_control_name((gb_dev_control)k);
}

static PyObject *camera_stats(const gb_fleet_stats *s)
{
    PyObject *queries = nonzero_counts(s->queries, GB_MANSCDP_CMD__COUNT, cmd_name);
    PyObject *controls = queries ? nonzero_counts(s->controls, GB_DEV_CTL__COUNT, control_name)
                                 : NULL;
    if (!controls) {
        Py_XDECREF(queries);
        return NULL;
    }
#define U(x) (unsigned long long)(x)
    return Py_BuildValue(
        "{sKsKsKsNsNsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsIsI}",
        "requests_received", U(s->requests_received),
        "requests_retransmitted", U(s->requests_retransmitted),
        "requests_refused", U(s->requests_refused),
        "queries", queries, "controls", controls,
        "answers_busy", U(s->answers_busy),
        "answers_deferred", U(s->answers_deferred),
        "answers_sent", U(s->answers_sent),
        "answers_retransmitted", U(s->answers_retransmitted),
        "answers_acknowledged", U(s->answers_acknowledged),
        "answers_failed", U(s->answers_failed),
        "answers_completed", U(s->answers_completed),
        "notifies_sent", U(s->notifies_sent),
        "notifies_retransmitted", U(s->notifies_retransmitted),
        "notifies_failed", U(s->notifies_failed),
        "alarms_sent", U(s->alarms_sent),
        "subscriptions", U(s->subscriptions),
        "subscription_refreshes", U(s->subscription_refreshes),
        "subscriptions_ended", U(s->subscriptions_ended),
        "subscriptions_busy", U(s->subscriptions_busy),
        "answers_in_flight", s->answers_in_flight,
        "subscriptions_active", s->subscriptions_active);
#undef U
}

/* Text fields of a profile, in gb_cam_field order (Python keyword names). */
static const char *const profile_fields[GB_CAM_F__COUNT] = {
    "device_name", "manufacturer", "model", "firmware", "device_type", "owner",
    "address", "channel_name", "preset_name", "user_agent",
};

/* presets() -> [(name, {field: value}, source)] */
static PyObject *Fleet_presets(PyObject *cls, PyObject *Py_UNUSED(a))
{
    (void)cls;
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list && i < gb_cam_preset_count(); i++) {
        const gb_cam_preset *p = gb_cam_preset_at(i);
        PyObject *d = Py_BuildValue(
            "{sIsIsIsIsIsIsIsOsI}", "channels", p->channels, "channel_type", p->channel_type,
            "max_alarm", p->max_alarm, "presets", p->presets, "civil_code_digits",
            p->civil_code_digits, "ptz_type", p->ptz_type, "max_camera", p->max_camera,
            "max_alarm_field", p->max_alarm_field ? Py_True : Py_False, "quirks", p->quirks);
        for (int k = 0; d && k < GB_CAM_F__COUNT; k++) {
            PyObject *v = PyUnicode_FromString(p->text[k] ? p->text[k] : "");
            if (!v || PyDict_SetItemString(d, profile_fields[k], v) < 0)
                Py_CLEAR(d);
            Py_XDECREF(v);
        }
        PyObject *t = d ? Py_BuildValue("(sNs)", p->name, d, p->source) : NULL;
        if (!t || PyList_Append(list, t) < 0)
            Py_CLEAR(list);
        Py_XDECREF(t);
    }
    return list;
}

/* A text as UTF-8 and GB18030 bytes (new references in *u8, *gb). */
static int encode_both(PyObject *text, const char *what, PyObject **u8, PyObject **gb)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "%s must be str", what);
        return -1;
    }
    *u8 = PyUnicode_AsUTF8String(text);
    *gb = *u8 ? PyUnicode_AsEncodedString(text, "gb18030", "strict") : NULL;
    if (!*gb) {
        Py_CLEAR(*u8);
        if (PyErr_ExceptionMatches(PyExc_UnicodeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s cannot be written in GB18030", what);
        }
        return -1;
    }
    return 0;
}

static int chan_fields_from(PyObject *fields, gb_cam_chan_fields *o);

/* add_profile(base, fields) -> index: the preset `base` (None: generic)
 * with the given fields (text fields as str, numbers as int, and
 * channel_fields: a dict as set_channel_fields takes) replaced. */
static PyObject *Fleet_add_profile(FleetObject *self, PyObject *args)
{
    const char *base = NULL;
    PyObject *fields;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 ||
        !PyArg_ParseTuple(args, "zO!", &base, &PyDict_Type, &fields))
        return NULL;
    const gb_cam_preset *pr = gb_cam_preset_find(base ? base : "generic",
                                                 strlen(base ? base : "generic"));
    if (!pr) {
        PyErr_Format(PyExc_ValueError, "no camera profile named %s", base);
        return NULL;
    }
    gb_cam_profile p;
    gb_cam_profile_from_preset(&p, pr);
    PyObject *keep[2 * GB_CAM_F__COUNT] = {0};
    PyObject *result = NULL;
    for (int k = 0; k < GB_CAM_F__COUNT; k++) {
        PyObject *v = PyDict_GetItemString(fields, profile_fields[k]);
        if (!v)
            continue;
        if (encode_both(v, profile_fields[k], &keep[2 * k], &keep[2 * k + 1]) < 0)
            goto done;
        p.utf8[k] = (gb_bytes){PyBytes_AS_STRING(keep[2 * k]),
                               (size_t)PyBytes_GET_SIZE(keep[2 * k])};
        p.gb18030[k] = (gb_bytes){PyBytes_AS_STRING(keep[2 * k + 1]),
                                  (size_t)PyBytes_GET_SIZE(keep[2 * k + 1])};
    }
    static const char *const nums[] = {"channels", "channel_type", "max_alarm", "presets",
                                       "civil_code_digits", "ptz_type", "max_camera",
                                       "max_alarm_field", "quirks"};
    for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
        PyObject *v = PyDict_GetItemString(fields, nums[k]);
        if (!v)
            continue;
        long n = PyLong_AsLong(v);
        if (n == -1 && PyErr_Occurred())
            goto done;
        if (n < 0 || n > 65535) {
            PyErr_Format(PyExc_ValueError, "%s out of range", nums[k]);
            goto done;
        }
        switch (k) {
        case 0: p.channels = (uint16_t)n; break;
        case 1: p.channel_type = (uint16_t)n; break;
        case 2: p.max_alarm = (uint8_t)(n > 255 ? 255 : n); break;
        case 3: p.presets = (uint8_t)(n > 255 ? 255 : n); break;
        case 4: p.civil_code_digits = (uint8_t)(n > 255 ? 255 : n); break;
        case 5: p.ptz_type = (uint8_t)(n > 255 ? 255 : n); break;
        case 6: p.max_camera = (uint8_t)(n > 255 ? 255 : n); break;
        case 7: p.max_alarm_field = n != 0; break;
        default: p.quirks = (uint32_t)n; break;
        }
    }
    PyObject *chan = PyDict_GetItemString(fields, "channel_fields");
    if (chan && chan_fields_from(chan, &p.chan) < 0)
        goto done;
    const char *why = NULL;
    int i = gb_fleet_add_profile(self->f, &p, &why);
    if (i < 0)
        PyErr_SetString(PyExc_ValueError, why ? why : "bad profile");
    else
        result = PyLong_FromLong(i);
done:
    for (int k = 0; k < 2 * GB_CAM_F__COUNT; k++)
        Py_XDECREF(keep[k]);
    return result;
}

/* set_camera(index, profile, channels=-1, base=-1): -1 channels: the
 * profile's; -1 base: the device ID's last 7 digits. */
static PyObject *Fleet_set_camera(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    unsigned int prof;
    long channels = -1;
    long long base = -1;
    if (!PyArg_ParseTuple(args, "nI|lL", &i, &prof, &channels, &base) || check_index(self, i))
        return NULL;
    if (gb_fleet_set_camera(self->f, (uint32_t)i, prof, channels,
                            base < 0 ? UINT32_MAX : (uint32_t)(base % 10000000))) {
        PyErr_SetString(PyExc_ValueError, "no such profile, or more than 1024 channels");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* set_camera_range(first, count, profile, channels, base): channels an int
 * for every device or a sequence of one per device; channel serials given
 * out one after another from base. */
static PyObject *Fleet_set_camera_range(FleetObject *self, PyObject *args)
{
    Py_ssize_t first, count;
    unsigned int prof;
    PyObject *channels;
    unsigned long base;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 ||
        !PyArg_ParseTuple(args, "nnIOk", &first, &count, &prof, &channels, &base))
        return NULL;
    Py_ssize_t n = (Py_ssize_t)gb_fleet_count(self->f);
    if (first < 0 || count < 0 || first > n || count > n - first) {
        PyErr_SetString(PyExc_IndexError, "device range out of bounds");
        return NULL;
    }
    uint16_t *each = NULL;
    long all = -1;
    if (PyLong_Check(channels)) {
        all = PyLong_AsLong(channels);
        if (all == -1 && PyErr_Occurred())
            return NULL;
    } else {
        PyObject *seq = PySequence_Fast(channels, "channels: an int or a sequence of ints");
        if (!seq)
            return NULL;
        if (PySequence_Fast_GET_SIZE(seq) != count) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "one channel count per device");
            return NULL;
        }
        each = PyMem_Malloc((size_t)(count ? count : 1) * sizeof *each);
        for (Py_ssize_t k = 0; each && k < count; k++) {
            long c = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, k));
            if ((c == -1 && PyErr_Occurred()) || c < 0 || c > GB_CAM_MAX_CHANNELS) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "a channel count is out of 0..1024");
                PyMem_Free(each);
                Py_DECREF(seq);
                return NULL;
            }
            each[k] = (uint16_t)c;
        }
        Py_DECREF(seq);
        if (!each)
            return PyErr_NoMemory();
    }
    int rc = gb_fleet_set_camera_range(self->f, (uint32_t)first, (uint32_t)count, prof, each,
                                       all, (uint32_t)(base % 10000000));
    PyMem_Free(each);
    if (rc < 0) {
        PyErr_SetString(PyExc_ValueError, "no such profile, or more than 1024 channels");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Fleet_channels(FleetObject *self, PyObject *arg)
{
    uint32_t i;
    return index_arg(self, arg, &i) ? NULL : PyLong_FromUnsignedLong(gb_fleet_channels(self->f, i));
}

/* channel(index, ch) -> (id, name, state bits) */
static PyObject *Fleet_channel(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    unsigned int ch;
    if (!PyArg_ParseTuple(args, "nI", &i, &ch) || check_index(self, i))
        return NULL;
    char id[GB_CAM_ID_LEN], name[GB_CAM_TEXT_MAX + 16];
    size_t nl = 0;
    uint8_t st;
    if (gb_fleet_channel(self->f, (uint32_t)i, ch, id, name, sizeof name, &nl, &st)) {
        PyErr_SetString(PyExc_IndexError, "no such channel");
        return NULL;
    }
    return Py_BuildValue("(s#NI)", id, (Py_ssize_t)GB_CAM_ID_LEN,
                         PyUnicode_DecodeUTF8(name, (Py_ssize_t)nl, "replace"), (unsigned)st);
}

/* set_channel_name(index, ch, name or None) */
static PyObject *Fleet_set_channel_name(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    unsigned int ch;
    PyObject *name, *u8 = NULL, *gb = NULL;
    if (!PyArg_ParseTuple(args, "nIO", &i, &ch, &name) || check_index(self, i))
        return NULL;
    if (name != Py_None && encode_both(name, "name", &u8, &gb) < 0)
        return NULL;
    int rc = gb_fleet_set_channel_name(self->f, (uint32_t)i, ch, u8 ? PyBytes_AS_STRING(u8) : NULL,
                                       u8 ? (size_t)PyBytes_GET_SIZE(u8) : 0,
                                       gb ? PyBytes_AS_STRING(gb) : NULL,
                                       gb ? (size_t)PyBytes_GET_SIZE(gb) : 0);
    Py_XDECREF(u8);
    Py_XDECREF(gb);
    if (rc < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "no such channel, or the name is longer than 128 bytes or holds a "
                        "control character");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* An ASCII str of 1..cap bytes into out; its length, or -1 with an error. */
static int ascii_field(PyObject *v, const char *what, char *out, size_t cap)
{
    Py_ssize_t n;
    const char *p = PyUnicode_Check(v) ? PyUnicode_AsUTF8AndSize(v, &n) : NULL;
    if (!p) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "%s must be a str", what);
        return -1;
    }
    if (n < 1 || (size_t)n > cap) {
        PyErr_Format(PyExc_ValueError, "%s must have 1..%zu characters", what, cap);
        return -1;
    }
    memcpy(out, p, (size_t)n);
    return (int)n;
}

/* Catalog fields (keys parental, parent_id, civil_code, longitude +
 * latitude, ptz_type) from a dict or None into *o (zeroed first); 0, or
 * -1 with an exception.  Their values are checked by the core. */
static int chan_fields_from(PyObject *fields, gb_cam_chan_fields *o)
{
    memset(o, 0, sizeof *o);
    if (fields == Py_None)
        return 0;
    if (!PyDict_Check(fields)) {
        PyErr_SetString(PyExc_TypeError, "channel fields must be a dict or None");
        return -1;
    }
    PyObject *key, *v;
    Py_ssize_t pos = 0;
    int has_lon = 0, has_lat = 0;
    while (PyDict_Next(fields, &pos, &key, &v)) {
        const char *k = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        if (!k) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "field names are str");
            return -1;
        }
        int parental = !strcmp(k, "parental"), civil = !strcmp(k, "civil_code");
        if (parental || !strcmp(k, "ptz_type")) {
            long n = PyLong_AsLong(v);
            if (n == -1 && PyErr_Occurred())
                return -1;
            if (n < 0 || n > 255) {
                PyErr_Format(PyExc_ValueError, "%s out of range", k);
                return -1;
            }
            *(parental ? &o->parental : &o->ptz_type) = (uint8_t)n;
            o->set |= parental ? GB_CAM_O_PARENTAL : GB_CAM_O_PTZ_TYPE;
        } else if (civil || !strcmp(k, "parent_id")) {
            int n = civil ? ascii_field(v, k, o->civil_code, sizeof o->civil_code)
                          : ascii_field(v, k, o->parent_id, sizeof o->parent_id);
            if (n < 0)
                return -1;
            *(civil ? &o->civil_len : &o->parent_len) = (uint8_t)n;
            o->set |= civil ? GB_CAM_O_CIVIL_CODE : GB_CAM_O_PARENT_ID;
        } else if (!strcmp(k, "longitude") || !strcmp(k, "latitude")) {
            double d = PyFloat_AsDouble(v);
            if (d == -1.0 && PyErr_Occurred())
                return -1;
            int lon = k[1] == 'o';
            *(lon ? &o->lon : &o->lat) = d;
            *(lon ? &has_lon : &has_lat) = 1;
        } else {
            PyErr_Format(PyExc_ValueError, "unknown channel field %s", k);
            return -1;
        }
    }
    if (has_lon != has_lat) {
        PyErr_SetString(PyExc_ValueError, "longitude and latitude go together");
        return -1;
    }
    if (has_lon)
        o->set |= GB_CAM_O_POSITION;
    return 0;
}

/* set_channel_fields(index, ch, fields or None): Catalog fields of one
 * channel (chan_fields_from); None or {}: the derived ones again. */
static PyObject *Fleet_set_channel_fields(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    unsigned int ch;
    PyObject *fields;
    if (!PyArg_ParseTuple(args, "nIO", &i, &ch, &fields) || check_index(self, i))
        return NULL;
    gb_cam_chan_fields o;
    if (chan_fields_from(fields, &o) < 0)
        return NULL;
    const char *why = "";
    if (gb_fleet_set_channel_fields(self->f, (uint32_t)i, ch, &o, &why) < 0) {
        PyErr_SetString(strcmp(why, "no such channel") ? PyExc_ValueError : PyExc_IndexError, why);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* channel_fields(index, ch) -> dict of the fields set (empty: none) */
static PyObject *Fleet_channel_fields(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    unsigned int ch;
    if (!PyArg_ParseTuple(args, "nI", &i, &ch) || check_index(self, i))
        return NULL;
    if (ch >= gb_fleet_channels(self->f, (uint32_t)i)) {
        PyErr_SetString(PyExc_IndexError, "no such channel");
        return NULL;
    }
    const gb_cam_chan_fields *o = gb_fleet_channel_fields(self->f, (uint32_t)i, ch);
    PyObject *d = PyDict_New();
    if (!d || !o)
        return d;
    PyObject *v;
#define PUT(key, expr)                                                   \
    do {                                                                 \
        if (!(v = (expr)) || PyDict_SetItemString(d, key, v) < 0) {      \
            Py_XDECREF(v);                                               \
            Py_DECREF(d);                                                \
            return NULL;                                                 \
        }                                                                \
        Py_DECREF(v);                                                    \
    } while (0)
    if (o->set & GB_CAM_O_PARENTAL)
        PUT("parental", PyLong_FromLong(o->parental));
    if (o->set & GB_CAM_O_PARENT_ID)
        PUT("parent_id", PyUnicode_FromStringAndSize(o->parent_id, o->parent_len));
    if (o->set & GB_CAM_O_CIVIL_CODE)
        PUT("civil_code", PyUnicode_FromStringAndSize(o->civil_code, o->civil_len));
    if (o->set & GB_CAM_O_POSITION) {
        PUT("longitude", PyFloat_FromDouble(o->lon));
        PUT("latitude", PyFloat_FromDouble(o->lat));
    }
    if (o->set & GB_CAM_O_PTZ_TYPE)
        PUT("ptz_type", PyLong_FromLong(o->ptz_type));
#undef PUT
    return d;
}

/* set_channel_status(index, ch, on, now) -> NOTIFYs sent */
static PyObject *Fleet_set_channel_status(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    unsigned int ch;
    int on;
    long long now;
    if (!PyArg_ParseTuple(args, "nIpL", &i, &ch, &on, &now) || check_index(self, i))
        return NULL;
    long n = gb_fleet_set_channel_status(self->f, (uint32_t)i, ch, on, now);
    if (n < 0) {
        PyErr_SetString(PyExc_IndexError, "no such channel");
        return NULL;
    }
    return PyLong_FromLong(n);
}

/* raise_alarm(index, target, priority, method, alarm_type, description, now)
 * -> requests sent.  target: a channel index, or -1 - k for alarm input k. */
static PyObject *Fleet_raise_alarm(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    long target;
    unsigned int prio, method, type;
    PyObject *desc;
    long long now;
    if (!PyArg_ParseTuple(args, "nlIIIOL", &i, &target, &prio, &method, &type, &desc, &now) ||
        check_index(self, i))
        return NULL;
    PyObject *u8 = NULL, *gb = NULL;
    if (desc != Py_None && encode_both(desc, "description", &u8, &gb) < 0)
        return NULL;
    gb_cam_alarm a = {
        .target = target >= 0 ? target : GB_CAM_TARGET_ALARM - (-1 - target),
        .priority = (uint8_t)(prio > 255 ? 255 : prio),
        .method = (uint8_t)(method > 255 ? 255 : method),
        .type = (uint8_t)(type > 255 ? 255 : type),
        /* alarms go out as GB2312 (the MESSAGE of §9.4 and every NOTIFY) */
        .description = gb ? (gb_bytes){PyBytes_AS_STRING(gb), (size_t)PyBytes_GET_SIZE(gb)}
                          : (gb_bytes){NULL, 0},
    };
    long n = gb_fleet_raise_alarm(self->f, (uint32_t)i, &a, now);
    Py_XDECREF(u8);
    Py_XDECREF(gb);
    if (n < 0) {
        PyErr_SetString(PyExc_IndexError, "no such channel or alarm input");
        return NULL;
    }
    return PyLong_FromLong(n);
}

static PyObject *Fleet_set_wall_clock(FleetObject *self, PyObject *args)
{
    long long now, unix_ms;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 ||
        !PyArg_ParseTuple(args, "LL", &now, &unix_ms))
        return NULL;
    gb_fleet_set_wall_clock(self->f, now, unix_ms);
    Py_RETURN_NONE;
}

/* set_receiver(index): requests for no device of the fleet are answered
 * (404) as if from this device; -1: they are dropped. */
static PyObject *Fleet_set_receiver(FleetObject *self, PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 || (i != -1 && check_index(self, i)))
        return NULL;
    gb_fleet_set_receiver(self->f, (long)i);
    Py_RETURN_NONE;
}

static PyObject *Fleet_find(FleetObject *self, PyObject *arg)
{
    gb_bytes id;
    if (gbpy_not_busy(self->busy, FLEET_BUSY) < 0 || str_bytes(arg, "device_id", &id))
        return NULL;
    return PyLong_FromLong(gb_fleet_find(self->f, id.p, id.n));
}

static PyMethodDef Fleet_methods[] = {
    {"add", (PyCFunction)Fleet_add, METH_O, "add(device_id) -> index"},
    {"local_host", (PyCFunction)Fleet_local_host, METH_O,
     "local_host(host) -> host index (for set_local)"},
    {"set_local", (PyCFunction)Fleet_set_local, METH_VARARGS,
     "set_local(index, host_index, port): address written in Via and Contact"},
    {"set_password", (PyCFunction)Fleet_set_password, METH_VARARGS,
     "set_password(index, password or None)"},
    {"set_dialog", (PyCFunction)Fleet_set_dialog, METH_VARARGS,
     "set_dialog(index, call_id, from_tag): fix the Call-ID number and From tag"},
    {"start", (PyCFunction)Fleet_start, METH_VARARGS, "start(index, now) -> bool"},
    {"stop", (PyCFunction)Fleet_stop, METH_VARARGS,
     "stop(index, now) -> bool: unregister"},
    {"send_keepalive", (PyCFunction)Fleet_send_keepalive, METH_VARARGS,
     "send_keepalive(index, now) -> SN, or -1"},
    {"transport_error", (PyCFunction)Fleet_transport_error, METH_VARARGS,
     "transport_error(index, now): pending transactions fail now"},
    {"drop_responses", (PyCFunction)Fleet_drop_responses, METH_VARARGS,
     "drop_responses(index, n)"},
    {"skip_keepalives", (PyCFunction)Fleet_skip_keepalives, METH_VARARGS,
     "skip_keepalives(index, n)"},
    {"feed", (PyCFunction)Fleet_feed, METH_VARARGS,
     "feed(data, now) -> device index, or -1 (stray, request, malformed)"},
    {"handle_timer", (PyCFunction)Fleet_handle_timer, METH_O, "handle_timer(now)"},
    {"next_deadline", (PyCFunction)Fleet_next_deadline, METH_NOARGS,
     "next_deadline() -> ms or None"},
    {"pop_datagrams", (PyCFunction)Fleet_pop_datagrams, METH_NOARGS,
     "pop_datagrams() -> [(index, destination, bytes)]"},
    {"pop_events", (PyCFunction)Fleet_pop_events, METH_NOARGS,
     "pop_events() -> [(index, type, status, reason, value, latency_ms, time_ms, "
     "arg, flags, text)]"},
    {"state", (PyCFunction)Fleet_state, METH_O, "state(index) -> str"},
    {"expires_at", (PyCFunction)Fleet_expires_at, METH_O,
     "expires_at(index) -> ms or None"},
    {"dest_of", (PyCFunction)Fleet_dest_of, METH_O,
     "dest_of(index) -> current destination index"},
    {"keepalive_sn", (PyCFunction)Fleet_keepalive_sn, METH_O,
     "keepalive_sn(index) -> last SN sent"},
    {"destination", (PyCFunction)Fleet_destination, METH_O,
     "destination(i) -> (host, port, uri)"},
    {"stats", (PyCFunction)Fleet_stats, METH_NOARGS, "stats() -> dict"},
    {"memory", (PyCFunction)Fleet_memory, METH_NOARGS, "memory() -> dict"},
    {"add_serial", (PyCFunction)Fleet_add_serial, METH_VARARGS,
     "add_serial(prefix, start, count, digits) -> first index"},
    {"start_range", (PyCFunction)Fleet_start_range, METH_VARARGS,
     "start_range(first, count, now) -> started"},
    {"stop_range", (PyCFunction)Fleet_stop_range, METH_VARARGS,
     "stop_range(first, count, now) -> stopped"},
    {"abandon", (PyCFunction)Fleet_abandon, METH_VARARGS,
     "abandon(index, now) -> bool: go silent, nothing sent"},
    {"device_id", (PyCFunction)Fleet_device_id, METH_O, "device_id(index) -> str"},
    {"udp_attach", (PyCFunction)Fleet_udp_attach, METH_O,
     "udp_attach(fds): the UDP socket pool (device i uses fds[i % len(fds)])"},
    {"set_socket", (PyCFunction)Fleet_set_socket, METH_VARARGS,
     "set_socket(index, slot): send from another socket of the pool"},
    {"set_dest_addr", (PyCFunction)Fleet_set_dest_addr, METH_VARARGS,
     "set_dest_addr(k, ip, port): address of destination k"},
    {"pump_udp", (PyCFunction)Fleet_pump_udp, METH_VARARGS,
     "pump_udp(fd, now) -> traced events: recvmmsg, handle, sendmmsg, fold (I/O)"},
    {"tick", (PyCFunction)Fleet_tick, METH_O,
     "tick(now) -> traced events: due timers, sendmmsg, fold (I/O)"},
    {"service", (PyCFunction)Fleet_service, METH_NOARGS,
     "service() -> traced events: sendmmsg the queue (UDP), fold the events (I/O)"},
    {"tcp_open", (PyCFunction)(void (*)(void))Fleet_tcp_open, METH_VARARGS | METH_KEYWORDS,
     "tcp_open(sources, **options) -> epoll fd (see io/tcp_pump.h)"},
    {"tcp_start_range", (PyCFunction)Fleet_tcp_start_range, METH_VARARGS,
     "tcp_start_range(first, count, now) -> events: connect and start devices"},
    {"pump_tcp", (PyCFunction)Fleet_pump_tcp, METH_O,
     "pump_tcp(now) -> events: read, connect, send over the devices' connections"},
    {"tcp_close", (PyCFunction)Fleet_tcp_close, METH_VARARGS,
     "tcp_close(index, report, now) -> bool"},
    {"tcp_shutdown", (PyCFunction)Fleet_tcp_shutdown, METH_NOARGS,
     "tcp_shutdown(): close every connection"},
    {"tcp_stats", (PyCFunction)Fleet_tcp_stats, METH_NOARGS,
     "tcp_stats() -> dict of the TCP counters, or None"},
    {"feed_many", (PyCFunction)Fleet_feed_many, METH_VARARGS,
     "feed_many([bytes], now) -> traced events"},
    {"trace_device", (PyCFunction)Fleet_trace_device, METH_O,
     "trace_device(index or -1): record that device's messages"},
    {"pop_trace", (PyCFunction)Fleet_pop_trace, METH_NOARGS,
     "pop_trace() -> [(\"send\"|\"recv\", bytes)]"},
    {"keep_events", (PyCFunction)Fleet_keep_events, METH_O,
     "keep_events(flag): folding also returns every event as a tuple"},
    {"sim_stats", (PyCFunction)Fleet_sim_stats, METH_NOARGS,
     "sim_stats() -> latency histograms, failures, events, I/O counters"},
    {"outcomes", (PyCFunction)Fleet_outcomes, METH_O,
     "outcomes(limit) -> (registered, ever_registered, {why: n}, examples)"},
    {"presets", (PyCFunction)Fleet_presets, METH_NOARGS | METH_CLASS,
     "presets() -> [(name, fields, source)]: the named camera profiles"},
    {"add_profile", (PyCFunction)Fleet_add_profile, METH_VARARGS,
     "add_profile(base or None, fields) -> profile index"},
    {"set_camera", (PyCFunction)Fleet_set_camera, METH_VARARGS,
     "set_camera(index, profile, channels=-1, base=-1)"},
    {"set_camera_range", (PyCFunction)Fleet_set_camera_range, METH_VARARGS,
     "set_camera_range(first, count, profile, channels, base)"},
    {"channels", (PyCFunction)Fleet_channels, METH_O, "channels(index) -> count"},
    {"channel", (PyCFunction)Fleet_channel, METH_VARARGS,
     "channel(index, ch) -> (id, name, state bits)"},
    {"set_channel_name", (PyCFunction)Fleet_set_channel_name, METH_VARARGS,
     "set_channel_name(index, ch, name or None)"},
    {"set_channel_fields", (PyCFunction)Fleet_set_channel_fields, METH_VARARGS,
     "set_channel_fields(index, ch, fields or None)"},
    {"channel_fields", (PyCFunction)Fleet_channel_fields, METH_VARARGS,
     "channel_fields(index, ch) -> dict"},
    {"set_channel_status", (PyCFunction)Fleet_set_channel_status, METH_VARARGS,
     "set_channel_status(index, ch, on, now) -> NOTIFYs sent"},
    {"raise_alarm", (PyCFunction)Fleet_raise_alarm, METH_VARARGS,
     "raise_alarm(index, target, priority, method, alarm_type, description, now) -> sent"},
    {"set_wall_clock", (PyCFunction)Fleet_set_wall_clock, METH_VARARGS,
     "set_wall_clock(now, unix_ms)"},
    {"find", (PyCFunction)Fleet_find, METH_O, "find(device_id) -> index or -1"},
    {"set_receiver", (PyCFunction)Fleet_set_receiver, METH_O,
     "set_receiver(index or -1): who answers requests for no device of the fleet"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Fleet_seq = {.sq_length = (lenfunc)Fleet_len};

static PyTypeObject FleetType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gbsip._core.Fleet",
    .tp_doc = "Sans-IO GB/T 28181 device (UAC) state machines for N devices.",
    .tp_basicsize = sizeof(FleetObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Fleet_new,
    .tp_dealloc = (destructor)Fleet_dealloc,
    .tp_traverse = (traverseproc)Fleet_traverse,
    .tp_clear = (inquiry)Fleet_clear,
    .tp_methods = Fleet_methods,
    .tp_as_sequence = &Fleet_seq,
};

/* The interned names of a table of n entries. */
static int intern_names(PyObject **out, int n, const char *(*name)(int))
{
    for (int k = 0; k < n; k++)
        if (!(out[k] = PyUnicode_InternFromString(name(k))))
            return -1;
    return 0;
}

static const char *state_name(int k)
{
    return gb_dev_state_name((gb_dev_state)k);
}

int gbpy_device_init(PyObject *module)
{
    if (intern_names(state_str, GB_DEV_STATE__COUNT, state_name) < 0 ||
        intern_names(event_str, GB_DEV_EV__COUNT, event_name) < 0 ||
        intern_names(reason_str, GB_DEV_R__COUNT, reason_name) < 0)
        return -1;
    if (PyType_Ready(&FleetType) < 0)
        return -1;
    PyObject *ctl = PyTuple_New(GB_DEV_CTL__COUNT);
    for (int k = 0; ctl && k < GB_DEV_CTL__COUNT; k++) {
        PyObject *v = PyUnicode_InternFromString(control_name(k));
        if (!v) {
            Py_CLEAR(ctl);
            break;
        }
        PyTuple_SET_ITEM(ctl, k, v);
    }
    if (!ctl || PyModule_AddObject(module, "DEVICE_CONTROLS", ctl) < 0) {
        Py_XDECREF(ctl);
        return -1;
    }
    return PyModule_AddObjectRef(module, "Fleet", (PyObject *)&FleetType);
}
