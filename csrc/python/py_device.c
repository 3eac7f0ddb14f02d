/*
 * py_device.c - gbsip._core.Fleet: the device (UAC) fleet of device.h.
 *
 * A thin wrapper: every call passes the caller's `now` (int milliseconds of
 * a monotonic clock) straight to the core; datagrams and events come back
 * as lists of tuples so that a simulator with many devices pays one Python
 * call per batch, not per device.
 *
 * For the simulator the binding also does the UDP I/O itself, as the
 * registrar's pump does: pump_udp() receives a batch with recvmmsg(), feeds
 * every datagram to the core, sends the whole outgoing queue with
 * sendmmsg() (grouped by socket of the pool) and folds the events into
 * counters and latency histograms, so Python wakes once per batch and holds
 * no object per device.
 */
#define _GNU_SOURCE
#include "py_core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <string.h>
#include <sys/socket.h>

#include "device.h"

#define RX_BATCH 64
#define RX_SIZE 65536
#define RX_BUDGET 2048      /* datagrams per pump call: let the loop breathe */
#define TX_BATCH 256
#define SIM_MAX_DESTS 64    /* device.c keeps at most this many destinations */
#define STATUS_SLOTS 700

/* Log-linear latency histogram in ms: exact below 64, then 32 buckets per
 * power of two (3 % wide), so percentiles cost a fixed 7 KiB per histogram
 * whatever the number of samples. */
#define H_EXACT 64
#define H_SUB 32
#define H_BUCKETS (H_EXACT + (32 - 6) * H_SUB)

typedef struct {
    uint64_t count[H_BUCKETS];
    uint64_t n, sum;
    uint32_t max;
} hist;

typedef struct {
    PyObject_HEAD
    gb_fleet *f;
    /* simulator I/O: a pool of UDP sockets; device i sends on
     * fds[i % nfds] unless sock_of[i] (slot + 1) says otherwise */
    int *fds;
    uint32_t nfds;
    int family;
    uint32_t *sock_of;
    uint32_t sock_of_len;
    struct sockaddr_storage dest_addr[SIM_MAX_DESTS];
    socklen_t dest_len[SIM_MAX_DESTS];
    uint8_t dest_state[SIM_MAX_DESTS]; /* 0 unknown, 1 ready, 2 unroutable */
    char *rx;
    uint32_t *order;                   /* out items sorted by socket */
    size_t order_cap;
    uint32_t *slot_count;
    /* folded events */
    hist h_register, h_refresh, h_message;
    uint64_t fail_reason[GB_DEV_R__COUNT];
    uint64_t fail_status[STATUS_SLOTS];
    uint64_t unreg_reason[GB_DEV_R__COUNT];
    uint64_t ev_count[GB_DEV_EV__COUNT];
    uint64_t rx_datagrams, rx_bytes, rx_batches, rx_truncated, rx_unmatched;
    uint64_t tx_datagrams, tx_bytes, tx_calls, tx_dropped, tx_unroutable;
    uint64_t icmp_errors;
    long trace_dev;                    /* -1: none */
    int keep_events;
    PyObject *trace;                   /* list of (direction, bytes) */
} FleetObject;

static PyObject *state_str[GB_DEV_STATE__COUNT];
static PyObject *event_str[GB_DEV_EV__COUNT];
static PyObject *reason_str[GB_DEV_R__COUNT];

static int check_index(FleetObject *self, Py_ssize_t i)
{
    if (i < 0 || (size_t)i >= gb_fleet_count(self->f)) {
        PyErr_SetString(PyExc_IndexError, "no such device");
        return -1;
    }
    return 0;
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

static PyObject *Fleet_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {
        "server_id", "domain", "request_uri", "message_uri", "server_host",
        "server_port", "transport", "password", "user_agent", "contact_params",
        "gb_version", "capability_header", "expires", "refresh_fraction",
        "jitter", "retry_interval", "keepalive_interval",
        "keepalive_max_missed", "t1", "t2", "max_challenges",
        "preemptive_auth", "lenient", "seed", "capacity", "hash_key", NULL};
    PyObject *server_id = NULL, *domain = NULL, *request_uri = NULL,
             *message_uri = NULL, *server_host = NULL, *transport = NULL,
             *password = NULL, *user_agent = NULL, *contact_params = NULL,
             *gb_version = NULL, *seed = Py_None, *hash_key = Py_None;
    int server_port = 5060, capability = 1, preemptive = 1;
    unsigned long expires = 3600, retry = 60000, ka = 60000, ka_missed = 3,
                  t1 = 500, t2 = 4000, max_ch = 3, lenient = 0, capacity = 1;
    double fraction = 0.5, jitter = 0.1;
    if (PyTuple_GET_SIZE(args)) {
        PyErr_SetString(PyExc_TypeError, "Fleet() takes keyword arguments only");
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(
            args, kw, "|$OOOOOiOOOOOpkddkkkkkkpkOkO", kwlist, &server_id, &domain,
            &request_uri, &message_uri, &server_host, &server_port, &transport,
            &password, &user_agent, &contact_params, &gb_version, &capability,
            &expires, &fraction, &jitter, &retry, &ka, &ka_missed, &t1, &t2,
            &max_ch, &preemptive, &lenient, &seed, &capacity, &hash_key))
        return NULL;
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
        max_ch > 255 || capacity > UINT32_MAX - 1) {
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
    FleetObject *self = (FleetObject *)type->tp_alloc(type, 0);
    if (!self) {
        gb_fleet_free(f);
        return NULL;
    }
    self->f = f;
    self->trace_dev = -1;
    return (PyObject *)self;
}

static void Fleet_dealloc(FleetObject *self)
{
    gb_fleet_free(self->f);
    PyMem_Free(self->fds);
    PyMem_Free(self->sock_of);
    PyMem_Free(self->rx);
    PyMem_Free(self->order);
    PyMem_Free(self->slot_count);
    Py_XDECREF(self->trace);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Fleet_add(FleetObject *self, PyObject *arg)
{
    gb_bytes id;
    if (str_bytes(arg, "device_id", &id))
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
    if (str_bytes(arg, "host", &h))
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

/* (index, now) helpers */
static int index_now(FleetObject *self, PyObject *args, Py_ssize_t *i, long long *now)
{
    if (!PyArg_ParseTuple(args, "nL", i, now))
        return -1;
    return check_index(self, *i);
}

static PyObject *Fleet_start(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    long long now;
    if (index_now(self, args, &i, &now))
        return NULL;
    return PyBool_FromLong(gb_fleet_start(self->f, (uint32_t)i, now) == 0);
}

static PyObject *Fleet_stop(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    long long now;
    if (index_now(self, args, &i, &now))
        return NULL;
    return PyBool_FromLong(gb_fleet_stop(self->f, (uint32_t)i, now) == 0);
}

static PyObject *Fleet_send_keepalive(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    long long now;
    if (index_now(self, args, &i, &now))
        return NULL;
    return PyLong_FromLong(gb_fleet_send_keepalive(self->f, (uint32_t)i, now));
}

static PyObject *Fleet_transport_error(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    long long now;
    if (index_now(self, args, &i, &now))
        return NULL;
    gb_fleet_transport_error(self->f, (uint32_t)i, now);
    Py_RETURN_NONE;
}

static PyObject *Fleet_drop_responses(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    unsigned long n;
    if (!PyArg_ParseTuple(args, "nk", &i, &n) || check_index(self, i))
        return NULL;
    gb_fleet_drop_responses(self->f, (uint32_t)i, n > UINT32_MAX ? UINT32_MAX : (uint32_t)n);
    Py_RETURN_NONE;
}

static PyObject *Fleet_skip_keepalives(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    unsigned long n;
    if (!PyArg_ParseTuple(args, "nk", &i, &n) || check_index(self, i))
        return NULL;
    gb_fleet_skip_keepalives(self->f, (uint32_t)i, n > UINT32_MAX ? UINT32_MAX : (uint32_t)n);
    Py_RETURN_NONE;
}

static PyObject *Fleet_feed(FleetObject *self, PyObject *args)
{
    Py_buffer buf;
    long long now;
    if (!PyArg_ParseTuple(args, "y*L", &buf, &now))
        return NULL;
    long r = gb_fleet_handle_datagram(self->f, buf.buf, (size_t)buf.len, now);
    PyBuffer_Release(&buf);
    return PyLong_FromLong(r);
}

static PyObject *Fleet_handle_timer(FleetObject *self, PyObject *arg)
{
    long long now = PyLong_AsLongLong(arg);
    if (now == -1 && PyErr_Occurred())
        return NULL;
    gb_fleet_handle_timer(self->f, now);
    Py_RETURN_NONE;
}

static PyObject *Fleet_next_deadline(FleetObject *self, PyObject *Py_UNUSED(a))
{
    int64_t t = gb_fleet_next_deadline(self->f);
    if (t == GB_DEV_NEVER)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(t);
}

static PyObject *Fleet_pop_datagrams(FleetObject *self, PyObject *Py_UNUSED(a))
{
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

static PyObject *Fleet_pop_events(FleetObject *self, PyObject *Py_UNUSED(a))
{
    size_t n = gb_fleet_event_count(self->f);
    const gb_dev_event *e = gb_fleet_events(self->f);
    const char *text = gb_fleet_event_text(self->f);
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list)
        return NULL;
    for (size_t k = 0; k < n; k++) {
        PyObject *arg = e[k].arg == INT64_MIN ? Py_NewRef(Py_None)
                                              : PyLong_FromLongLong(e[k].arg);
        PyObject *txt = e[k].text_len
            ? PyUnicode_DecodeUTF8(text + e[k].text_off, (Py_ssize_t)e[k].text_len,
                                   "replace")
            : PyUnicode_FromStringAndSize("", 0);
        if (!arg || !txt) {
            Py_XDECREF(arg);
            Py_XDECREF(txt);
            Py_DECREF(list);
            return NULL;
        }
        PyObject *t = Py_BuildValue(
            "(IOIOIILNIN)", e[k].dev,
            event_str[e[k].type < GB_DEV_EV__COUNT ? e[k].type : 0],
            (unsigned)e[k].status,
            reason_str[e[k].reason < GB_DEV_R__COUNT ? e[k].reason : 0],
            e[k].value, e[k].latency_ms, (long long)e[k].time_ms, arg,
            e[k].flags, txt);
        if (!t) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)k, t);
    }
    gb_fleet_events_clear(self->f);
    return list;
}

static PyObject *Fleet_state(FleetObject *self, PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if ((i == -1 && PyErr_Occurred()) || check_index(self, i))
        return NULL;
    return Py_NewRef(state_str[gb_fleet_state(self->f, (uint32_t)i)]);
}

static PyObject *Fleet_expires_at(FleetObject *self, PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if ((i == -1 && PyErr_Occurred()) || check_index(self, i))
        return NULL;
    int64_t t = gb_fleet_expires_at(self->f, (uint32_t)i);
    if (t == GB_DEV_NEVER)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(t);
}

static PyObject *Fleet_dest_of(FleetObject *self, PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if ((i == -1 && PyErr_Occurred()) || check_index(self, i))
        return NULL;
    return PyLong_FromLong(gb_fleet_dest_of(self->f, (uint32_t)i));
}

static PyObject *Fleet_keepalive_sn(FleetObject *self, PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if ((i == -1 && PyErr_Occurred()) || check_index(self, i))
        return NULL;
    return PyLong_FromUnsignedLong(gb_fleet_keepalive_sn(self->f, (uint32_t)i));
}

static PyObject *Fleet_destination(FleetObject *self, PyObject *arg)
{
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

static PyObject *Fleet_stats(FleetObject *self, PyObject *Py_UNUSED(a))
{
    const gb_fleet_stats *s = gb_fleet_get_stats(self->f);
    PyObject *by_state = PyDict_New();
    if (!by_state)
        return NULL;
    for (int k = 0; k < GB_DEV_STATE__COUNT; k++) {
        PyObject *v = PyLong_FromUnsignedLong(s->by_state[k]);
        if (!v || PyDict_SetItem(by_state, state_str[k], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(by_state);
            return NULL;
        }
        Py_DECREF(v);
    }
    return Py_BuildValue(
        "{sKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsN}",
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
        "keepalives_sent", (unsigned long long)s->keepalives_sent,
        "keepalives_answered", (unsigned long long)s->keepalives_answered,
        "keepalives_missed", (unsigned long long)s->keepalives_missed,
        "keepalives_skipped", (unsigned long long)s->keepalives_skipped,
        "keepalive_timeouts", (unsigned long long)s->keepalive_timeouts,
        "by_state", by_state);
}

static PyObject *Fleet_memory(FleetObject *self, PyObject *Py_UNUSED(a))
{
    return Py_BuildValue("{snsnsn}", "bytes_per_device",
                         (Py_ssize_t)gb_fleet_bytes_per_device(), "state_bytes",
                         (Py_ssize_t)gb_fleet_memory(self->f), "queue_bytes",
                         (Py_ssize_t)gb_fleet_queue_memory(self->f));
}

static Py_ssize_t Fleet_len(FleetObject *self)
{
    return (Py_ssize_t)gb_fleet_count(self->f);
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
    if (!PyArg_ParseTuple(args, "s#KKi", &prefix, &plen, &start, &count, &digits))
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
    char id[GB_DEV_ID_MAX];
    memcpy(id, prefix, (size_t)plen);
    long first = -1;
    for (unsigned long long k = 0; k < count; k++) {
        unsigned long long v = start + k;
        for (int d = digits - 1; d >= 0; d--) {
            id[plen + d] = (char)('0' + v % 10);
            v /= 10;
        }
        long i = gb_fleet_add(self->f, id, (size_t)plen + (size_t)digits);
        if (i < 0)
            return PyErr_NoMemory();
        if (first < 0)
            first = i;
    }
    return PyLong_FromLong(first);
}

static int range_args(FleetObject *self, PyObject *args, Py_ssize_t *first,
                      Py_ssize_t *count, long long *now)
{
    if (!PyArg_ParseTuple(args, "nnL", first, count, now))
        return -1;
    Py_ssize_t n = (Py_ssize_t)gb_fleet_count(self->f);
    if (*first < 0 || *count < 0 || *first > n || *count > n - *first) {
        PyErr_SetString(PyExc_IndexError, "device range out of bounds");
        return -1;
    }
    return 0;
}

/* start_range(first, count, now) -> how many started */
static PyObject *Fleet_start_range(FleetObject *self, PyObject *args)
{
    Py_ssize_t first, count;
    long long now;
    if (range_args(self, args, &first, &count, &now))
        return NULL;
    long done = 0;
    for (Py_ssize_t i = first; i < first + count; i++)
        done += gb_fleet_start(self->f, (uint32_t)i, now) == 0;
    return PyLong_FromLong(done);
}

/* stop_range(first, count, now) -> how many were told to unregister */
static PyObject *Fleet_stop_range(FleetObject *self, PyObject *args)
{
    Py_ssize_t first, count;
    long long now;
    if (range_args(self, args, &first, &count, &now))
        return NULL;
    long done = 0;
    for (Py_ssize_t i = first; i < first + count; i++)
        done += gb_fleet_stop(self->f, (uint32_t)i, now) == 0;
    return PyLong_FromLong(done);
}

static PyObject *Fleet_abandon(FleetObject *self, PyObject *args)
{
    Py_ssize_t i;
    long long now;
    if (index_now(self, args, &i, &now))
        return NULL;
    return PyBool_FromLong(gb_fleet_abandon(self->f, (uint32_t)i, now) == 0);
}

static PyObject *Fleet_device_id(FleetObject *self, PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if ((i == -1 && PyErr_Occurred()) || check_index(self, i))
        return NULL;
    size_t n;
    const char *id = gb_fleet_id(self->f, (uint32_t)i, &n);
    return PyUnicode_DecodeUTF8(id, (Py_ssize_t)n, "replace");
}

/* ---- simulator: events folded into counters ---------------------------------- */

static unsigned hist_bucket(uint32_t v)
{
    if (v < H_EXACT)
        return v;
    unsigned k = 31u - (unsigned)__builtin_clz(v); /* 6..31 */
    unsigned sub = (v >> (k - 5)) & (H_SUB - 1);
    return H_EXACT + (k - 6) * H_SUB + sub;
}

/* Highest value that falls in bucket b. */
static uint64_t hist_upper(unsigned b)
{
    if (b < H_EXACT)
        return b;
    unsigned k = 6 + (b - H_EXACT) / H_SUB, sub = (b - H_EXACT) % H_SUB;
    uint64_t lo = (uint64_t)(H_SUB + sub) << (k - 5);
    return lo + ((uint64_t)1 << (k - 5)) - 1;
}

static void hist_add(hist *h, uint32_t v)
{
    h->count[hist_bucket(v)]++;
    h->n++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static uint64_t hist_quantile(const hist *h, double q)
{
    if (!h->n)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < H_BUCKETS; b++) {
        seen += h->count[b];
        if (seen >= rank) {
            uint64_t u = hist_upper(b);
            return u < h->max ? u : h->max;
        }
    }
    return h->max;
}

static PyObject *hist_dict(const hist *h)
{
    return Py_BuildValue("{sKsdsKsKsKsKsI}", "count", (unsigned long long)h->n,
                         "mean", h->n ? (double)h->sum / (double)h->n : 0.0,
                         "p50", (unsigned long long)hist_quantile(h, 0.50),
                         "p95", (unsigned long long)hist_quantile(h, 0.95),
                         "p99", (unsigned long long)hist_quantile(h, 0.99),
                         "p999", (unsigned long long)hist_quantile(h, 0.999),
                         "max", h->max);
}

/* Fold the fleet's events into the counters; the traced device's events
 * (or all of them with keep_events) come back as tuples. */
static PyObject *collect(FleetObject *self)
{
    size_t n = gb_fleet_event_count(self->f);
    const gb_dev_event *e = gb_fleet_events(self->f);
    const char *text = gb_fleet_event_text(self->f);
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    for (size_t k = 0; k < n; k++) {
        const gb_dev_event *ev = &e[k];
        if (ev->type < GB_DEV_EV__COUNT)
            self->ev_count[ev->type]++;
        switch (ev->type) {
        case GB_DEV_EV_REGISTERED:
            hist_add(&self->h_register, ev->latency_ms);
            break;
        case GB_DEV_EV_REFRESHED:
            hist_add(&self->h_refresh, ev->latency_ms);
            break;
        case GB_DEV_EV_KEEPALIVE_ANSWERED:
            hist_add(&self->h_message, ev->latency_ms);
            break;
        case GB_DEV_EV_FAILED:
            if (ev->reason < GB_DEV_R__COUNT)
                self->fail_reason[ev->reason]++;
            self->fail_status[ev->status < STATUS_SLOTS ? ev->status : 0]++;
            break;
        case GB_DEV_EV_UNREGISTERED:
            if (ev->reason < GB_DEV_R__COUNT)
                self->unreg_reason[ev->reason]++;
            break;
        default:
            break;
        }
        if (self->keep_events || (long)ev->dev == self->trace_dev) {
            PyObject *t = event_tuple(ev, text);
            if (!t || PyList_Append(list, t) < 0) {
                Py_XDECREF(t);
                Py_DECREF(list);
                gb_fleet_events_clear(self->f);
                return NULL;
            }
            Py_DECREF(t);
        }
    }
    gb_fleet_events_clear(self->f);
    return list;
}

/* ---- simulator: UDP ------------------------------------------------------------ */

static int trace_add(FleetObject *self, const char *dir, const char *p, size_t n)
{
    if (!self->trace && !(self->trace = PyList_New(0)))
        return -1;
    PyObject *t = Py_BuildValue("(sy#)", dir, p, (Py_ssize_t)n);
    if (!t)
        return -1;
    int r = PyList_Append(self->trace, t);
    Py_DECREF(t);
    return r;
}

/* udp_attach(fds): the socket pool.  Every device writes the address of
 * its socket (i % len(fds)) in Via and Contact. */
static PyObject *Fleet_udp_attach(FleetObject *self, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "fds must be a sequence of ints");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || n > INT32_MAX / 2) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "at least one socket is needed");
        return NULL;
    }
    int *fds = PyMem_Calloc((size_t)n, sizeof *fds);
    int *hosts = PyMem_Calloc((size_t)n, sizeof *hosts);
    uint16_t *ports = PyMem_Calloc((size_t)n, sizeof *ports);
    uint32_t *counts = PyMem_Calloc((size_t)n + 1, sizeof *counts);
    int family = -1;
    if (!fds || !hosts || !ports || !counts) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        long fd = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, k));
        if (fd == -1 && PyErr_Occurred())
            goto fail;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname((int)fd, (struct sockaddr *)&ss, &sl) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            goto fail;
        }
        char host[INET6_ADDRSTRLEN];
        const void *a = ss.ss_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
        if ((ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
            (family >= 0 && family != ss.ss_family) ||
            !inet_ntop(ss.ss_family, a, host, sizeof host)) {
            PyErr_SetString(PyExc_ValueError, "sockets must be bound UDP sockets of one family");
            goto fail;
        }
        family = ss.ss_family;
        int h = gb_fleet_local_host(self->f, host, strlen(host));
        if (h < 0) {
            PyErr_SetString(PyExc_ValueError, "too many local addresses (255)");
            goto fail;
        }
        fds[k] = (int)fd;
        hosts[k] = h;
        ports[k] = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
    }
    uint32_t ndev = gb_fleet_count(self->f);
    for (uint32_t i = 0; i < ndev; i++)
        gb_fleet_set_local(self->f, i, hosts[i % (uint32_t)n], ports[i % (uint32_t)n]);
    PyMem_Free(self->fds);
    PyMem_Free(self->slot_count);
    self->fds = fds;
    self->slot_count = counts;
    self->nfds = (uint32_t)n;
    self->family = family;
    memset(self->dest_state, 0, sizeof self->dest_state);
    PyMem_Free(hosts);
    PyMem_Free(ports);
    Py_DECREF(seq);
    Py_RETURN_NONE;
fail:
    PyMem_Free(fds);
    PyMem_Free(hosts);
    PyMem_Free(ports);
    PyMem_Free(counts);
    Py_DECREF(seq);
    return NULL;
}

/* set_socket(index, slot): send this device's traffic from another socket
 * of the pool, Via and Contact unchanged (a NAT rebinding). */
static PyObject *Fleet_set_socket(FleetObject *self, PyObject *args)
{
    Py_ssize_t i, slot;
    if (!PyArg_ParseTuple(args, "nn", &i, &slot) || check_index(self, i))
        return NULL;
    if (slot < 0 || (uint32_t)slot >= self->nfds) {
        PyErr_SetString(PyExc_IndexError, "no such socket in the pool");
        return NULL;
    }
    uint32_t ndev = gb_fleet_count(self->f);
    if (self->sock_of_len < ndev) {
        uint32_t *p = PyMem_Realloc(self->sock_of, (size_t)ndev * sizeof *p);
        if (!p)
            return PyErr_NoMemory();
        memset(p + self->sock_of_len, 0, (size_t)(ndev - self->sock_of_len) * sizeof *p);
        self->sock_of = p;
        self->sock_of_len = ndev;
    }
    self->sock_of[i] = (uint32_t)slot + 1;
    Py_RETURN_NONE;
}

static int fill_addr(int family, const char *host, uint16_t port,
                     struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    char tmp[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof tmp) {
        memcpy(tmp, host + 1, n - 2);
        tmp[n - 2] = '\0';
        host = tmp;
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
            struct in_addr v4; /* v4 peer from a v6 socket: mapped address */
            if (inet_pton(AF_INET, host, &v4) != 1)
                return -1;
            memset(&a->sin6_addr, 0, sizeof a->sin6_addr);
            a->sin6_addr.s6_addr[10] = a->sin6_addr.s6_addr[11] = 0xff;
            memcpy(&a->sin6_addr.s6_addr[12], &v4, 4);
        }
        *len = sizeof *a;
        return 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return -1;
    *len = sizeof *a;
    return 0;
}

/* set_dest_addr(k, ip, port): where destination k (0: the server, then
 * redirect targets) is, for names the core cannot resolve itself. */
static PyObject *Fleet_set_dest_addr(FleetObject *self, PyObject *args)
{
    Py_ssize_t k;
    const char *host;
    int port;
    if (!PyArg_ParseTuple(args, "nsi", &k, &host, &port))
        return NULL;
    if (k < 0 || k >= SIM_MAX_DESTS || port <= 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "bad destination index or port");
        return NULL;
    }
    if (fill_addr(self->family ? self->family : AF_INET, host, (uint16_t)port,
                  &self->dest_addr[k], &self->dest_len[k])) {
        PyErr_Format(PyExc_ValueError, "not an IP address: %s", host);
        return NULL;
    }
    self->dest_state[k] = 1;
    Py_RETURN_NONE;
}

static int dest_ready(FleetObject *self, unsigned k)
{
    if (k >= SIM_MAX_DESTS)
        return 0;
    if (self->dest_state[k] == 0) {
        gb_bytes host;
        uint16_t port;
        char h[INET6_ADDRSTRLEN + 2];
        self->dest_state[k] = 2;
        if (gb_fleet_dest(self->f, k, &host, &port, NULL) == 0 && host.n < sizeof h) {
            memcpy(h, host.p, host.n);
            h[host.n] = '\0';
            if (fill_addr(self->family, h, port, &self->dest_addr[k], &self->dest_len[k]) == 0)
                self->dest_state[k] = 1;
        }
    }
    return self->dest_state[k] == 1;
}

static uint32_t slot_of(const FleetObject *self, uint32_t dev)
{
    if (dev < self->sock_of_len && self->sock_of[dev])
        return self->sock_of[dev] - 1;
    return dev % self->nfds;
}

/* Send the whole outgoing queue, sendmmsg() per socket.  A full socket
 * buffer drops the rest of that batch, as UDP may; retransmissions cover. */
static int flush_udp(FleetObject *self)
{
    size_t n = gb_fleet_out_count(self->f);
    if (!n || !self->nfds)
        return 0;
    const gb_dev_out *o = gb_fleet_out_items(self->f);
    const char *data = gb_fleet_out_data(self->f);
    if (n > self->order_cap) {
        uint32_t *p = PyMem_Realloc(self->order, n * sizeof *p);
        if (!p) {
            PyErr_NoMemory();
            return -1;
        }
        self->order = p;
        self->order_cap = n;
    }
    /* counting sort of the items by socket, keeping their order */
    uint32_t *cnt = self->slot_count;
    memset(cnt, 0, ((size_t)self->nfds + 1) * sizeof *cnt);
    for (size_t k = 0; k < n; k++)
        cnt[slot_of(self, o[k].dev) + 1]++;
    for (uint32_t s = 0; s < self->nfds; s++)
        cnt[s + 1] += cnt[s];
    for (size_t k = 0; k < n; k++)
        self->order[cnt[slot_of(self, o[k].dev)]++] = (uint32_t)k;
    if (self->trace_dev >= 0)
        for (size_t k = 0; k < n; k++)
            if ((long)o[k].dev == self->trace_dev &&
                trace_add(self, "send", data + o[k].off, o[k].len) < 0)
                return -1;
    struct mmsghdr msg[TX_BATCH];
    struct iovec iov[TX_BATCH];
    size_t k = 0;
    while (k < n) {
        uint32_t slot = slot_of(self, o[self->order[k]].dev);
        int fd = self->fds[slot];
        unsigned m = 0;
        while (k < n && m < TX_BATCH && slot_of(self, o[self->order[k]].dev) == slot) {
            const gb_dev_out *it = &o[self->order[k++]];
            if (!dest_ready(self, it->dest)) {
                self->tx_unroutable++;
                continue;
            }
            iov[m].iov_base = (void *)(data + it->off);
            iov[m].iov_len = it->len;
            memset(&msg[m], 0, sizeof msg[m]);
            msg[m].msg_hdr.msg_iov = &iov[m];
            msg[m].msg_hdr.msg_iovlen = 1;
            msg[m].msg_hdr.msg_name = &self->dest_addr[it->dest];
            msg[m].msg_hdr.msg_namelen = self->dest_len[it->dest];
            m++;
        }
        unsigned sent = 0;
        int tries = 0;
        while (sent < m) {
            int r = sendmmsg(fd, msg + sent, m - sent, MSG_DONTWAIT);
            self->tx_calls++;
            if (r > 0) {
                for (int j = 0; j < r; j++)
                    self->tx_bytes += msg[sent + (unsigned)j].msg_len;
                sent += (unsigned)r;
                continue;
            }
            /* an ICMP error of an earlier datagram surfaces here: consumed */
            if (r < 0 && (errno == ECONNREFUSED || errno == EINTR) && ++tries < 8) {
                if (errno == ECONNREFUSED)
                    self->icmp_errors++;
                continue;
            }
            self->tx_dropped += m - sent;
            break;
        }
        self->tx_datagrams += sent;
    }
    gb_fleet_out_clear(self->f);
    return 0;
}

/* flush + collect: what follows every batch of input */
static PyObject *after_input(FleetObject *self)
{
    if (flush_udp(self) < 0)
        return NULL;
    return collect(self);
}

/* pump_udp(fd, now) -> events of the traced device: receive what waits on
 * fd (recvmmsg), feed it to the core, send the answers, fold the events. */
static PyObject *Fleet_pump_udp(FleetObject *self, PyObject *args)
{
    int fd;
    long long now;
    if (!PyArg_ParseTuple(args, "iL", &fd, &now))
        return NULL;
    if (!self->rx && !(self->rx = PyMem_Malloc((size_t)RX_BATCH * RX_SIZE)))
        return PyErr_NoMemory();
    struct mmsghdr msg[RX_BATCH];
    struct iovec iov[RX_BATCH];
    long total = 0;
    while (total < RX_BUDGET) {
        for (int i = 0; i < RX_BATCH; i++) {
            iov[i].iov_base = self->rx + (size_t)i * RX_SIZE;
            iov[i].iov_len = RX_SIZE;
            memset(&msg[i], 0, sizeof msg[i]);
            msg[i].msg_hdr.msg_iov = &iov[i];
            msg[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, msg, RX_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == ECONNREFUSED) { /* port unreachable for something we sent */
                self->icmp_errors++;
                continue;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                PyErr_SetFromErrno(PyExc_OSError);
                return NULL;
            }
            break;
        }
        if (n == 0)
            break;
        self->rx_batches++;
        for (int i = 0; i < n; i++) {
            if (msg[i].msg_hdr.msg_flags & MSG_TRUNC) {
                self->rx_truncated++;
                continue;
            }
            const char *p = iov[i].iov_base;
            size_t len = msg[i].msg_len;
            self->rx_datagrams++;
            self->rx_bytes += len;
            long d = gb_fleet_handle_datagram(self->f, p, len, now);
            if (d < 0)
                self->rx_unmatched++;
            else if (d == self->trace_dev && trace_add(self, "recv", p, len) < 0)
                return NULL;
        }
        total += n;
        if (n < RX_BATCH)
            break;
    }
    return after_input(self);
}

/* tick(now) -> events of the traced device: fire due timers, send, fold. */
static PyObject *Fleet_tick(FleetObject *self, PyObject *arg)
{
    long long now = PyLong_AsLongLong(arg);
    if (now == -1 && PyErr_Occurred())
        return NULL;
    gb_fleet_handle_timer(self->f, now);
    return after_input(self);
}

/* service() -> events of the traced device: send what is queued (UDP), fold
 * the events; after start_range() and friends. */
static PyObject *Fleet_service(FleetObject *self, PyObject *Py_UNUSED(a))
{
    return after_input(self);
}

/* feed_batch([bytes...], now) -> events: framed TCP messages, then collect
 * (the queue is left for pop_datagrams, TCP being Python's). */
static PyObject *Fleet_feed_many(FleetObject *self, PyObject *args)
{
    PyObject *list;
    long long now;
    if (!PyArg_ParseTuple(args, "OL", &list, &now))
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
        self->rx_datagrams++;
        self->rx_bytes += (uint64_t)len;
        if (gb_fleet_handle_datagram(self->f, p, (size_t)len, now) < 0)
            self->rx_unmatched++;
    }
    Py_DECREF(seq);
    return collect(self);
}

static PyObject *Fleet_trace_device(FleetObject *self, PyObject *arg)
{
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i >= 0 && check_index(self, i))
        return NULL;
    self->trace_dev = i < 0 ? -1 : (long)i;
    Py_RETURN_NONE;
}

static PyObject *Fleet_pop_trace(FleetObject *self, PyObject *Py_UNUSED(a))
{
    PyObject *t = self->trace;
    self->trace = NULL;
    return t ? t : PyList_New(0);
}

static PyObject *Fleet_keep_events(FleetObject *self, PyObject *arg)
{
    int v = PyObject_IsTrue(arg);
    if (v < 0)
        return NULL;
    self->keep_events = v;
    Py_RETURN_NONE;
}

static int dict_put_u64(PyObject *d, const char *key, uint64_t v)
{
    PyObject *o = PyLong_FromUnsignedLongLong(v);
    if (!o)
        return -1;
    int r = PyDict_SetItemString(d, key, o);
    Py_DECREF(o);
    return r;
}

static PyObject *reason_counts(const uint64_t *c)
{
    PyObject *d = PyDict_New();
    for (int k = 1; d && k < GB_DEV_R__COUNT; k++)
        if (c[k] && dict_put_u64(d, gb_dev_reason_name((gb_dev_reason)k), c[k]) < 0)
            Py_CLEAR(d);
    return d;
}

/* sim_stats() -> dict: latency histograms (ms), failures by reason and by
 * status, events by type, I/O counters. */
static PyObject *Fleet_sim_stats(FleetObject *self, PyObject *Py_UNUSED(a))
{
    PyObject *by_status = PyDict_New(), *events = PyDict_New();
    PyObject *fr = reason_counts(self->fail_reason), *ur = reason_counts(self->unreg_reason);
    PyObject *io = PyDict_New();
    if (!by_status || !events || !fr || !ur || !io)
        goto fail;
    for (int k = 0; k < STATUS_SLOTS; k++) {
        if (!self->fail_status[k])
            continue;
        PyObject *key = PyLong_FromLong(k), *v = PyLong_FromUnsignedLongLong(self->fail_status[k]);
        int r = key && v ? PyDict_SetItem(by_status, key, v) : -1;
        Py_XDECREF(key);
        Py_XDECREF(v);
        if (r < 0)
            goto fail;
    }
    for (int k = 1; k < GB_DEV_EV__COUNT; k++)
        if (dict_put_u64(events, gb_dev_event_name((gb_dev_event_type)k), self->ev_count[k]) < 0)
            goto fail;
    if (dict_put_u64(io, "rx_datagrams", self->rx_datagrams) < 0 ||
        dict_put_u64(io, "rx_bytes", self->rx_bytes) < 0 ||
        dict_put_u64(io, "rx_batches", self->rx_batches) < 0 ||
        dict_put_u64(io, "rx_truncated", self->rx_truncated) < 0 ||
        dict_put_u64(io, "rx_unmatched", self->rx_unmatched) < 0 ||
        dict_put_u64(io, "tx_datagrams", self->tx_datagrams) < 0 ||
        dict_put_u64(io, "tx_bytes", self->tx_bytes) < 0 ||
        dict_put_u64(io, "tx_calls", self->tx_calls) < 0 ||
        dict_put_u64(io, "tx_dropped", self->tx_dropped) < 0 ||
        dict_put_u64(io, "tx_unroutable", self->tx_unroutable) < 0 ||
        dict_put_u64(io, "icmp_errors", self->icmp_errors) < 0)
        goto fail;
    return Py_BuildValue("{s{sNsNsN}sNsNsNsNsN}", "latency_ms",
                         "register", hist_dict(&self->h_register),
                         "refresh", hist_dict(&self->h_refresh),
                         "message", hist_dict(&self->h_message),
                         "failures_by_reason", fr, "failures_by_status", by_status,
                         "unregistrations_by_reason", ur, "events", events, "io", io);
fail:
    Py_XDECREF(by_status);
    Py_XDECREF(events);
    Py_XDECREF(fr);
    Py_XDECREF(ur);
    Py_XDECREF(io);
    return NULL;
}

/* outcomes(limit) -> (registered_now, ever_registered, not_registered:
 * {"reason status": n}, examples: [(index, state, status, reason)]) */
static PyObject *Fleet_outcomes(FleetObject *self, PyObject *arg)
{
    Py_ssize_t limit = PyLong_AsSsize_t(arg);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    PyObject *why = PyDict_New(), *examples = PyList_New(0);
    if (!why || !examples)
        goto fail;
    uint32_t n = gb_fleet_count(self->f);
    unsigned long long now_reg = 0, ever = 0;
    for (uint32_t i = 0; i < n; i++) {
        gb_dev_state st = gb_fleet_state(self->f, i);
        ever += (unsigned long long)gb_fleet_ever_registered(self->f, i);
        if (st == GB_DEV_REGISTERED || st == GB_DEV_REFRESHING) {
            now_reg++;
            continue;
        }
        uint16_t status;
        gb_dev_reason reason;
        gb_fleet_last_failure(self->f, i, &status, &reason);
        char key[64];
        if (reason == GB_DEV_R_NONE)
            snprintf(key, sizeof key, "%s", gb_dev_state_name(st));
        else if (status)
            snprintf(key, sizeof key, "%s %u", gb_dev_reason_name(reason), (unsigned)status);
        else
            snprintf(key, sizeof key, "%s", gb_dev_reason_name(reason));
        PyObject *cur = PyDict_GetItemString(why, key);
        PyObject *v = PyLong_FromLong(cur ? PyLong_AsLong(cur) + 1 : 1);
        if (!v || PyDict_SetItemString(why, key, v) < 0) {
            Py_XDECREF(v);
            goto fail;
        }
        Py_DECREF(v);
        if (PyList_GET_SIZE(examples) < limit) {
            PyObject *t = Py_BuildValue("(IOHO)", i, state_str[st], status, reason_str[reason]);
            if (!t || PyList_Append(examples, t) < 0) {
                Py_XDECREF(t);
                goto fail;
            }
            Py_DECREF(t);
        }
    }
    return Py_BuildValue("(KKNN)", now_reg, ever, why, examples);
fail:
    Py_XDECREF(why);
    Py_XDECREF(examples);
    return NULL;
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
     "pump_udp(fd, now) -> traced events: recvmmsg, handle, sendmmsg, fold"},
    {"tick", (PyCFunction)Fleet_tick, METH_O,
     "tick(now) -> traced events: due timers, sendmmsg, fold"},
    {"service", (PyCFunction)Fleet_service, METH_NOARGS,
     "service() -> traced events: sendmmsg the queue (UDP), fold the events"},
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
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Fleet_seq = {.sq_length = (lenfunc)Fleet_len};

static PyTypeObject FleetType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gbsip._core.Fleet",
    .tp_doc = "Sans-IO GB/T 28181 device (UAC) state machines for N devices.",
    .tp_basicsize = sizeof(FleetObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Fleet_new,
    .tp_dealloc = (destructor)Fleet_dealloc,
    .tp_methods = Fleet_methods,
    .tp_as_sequence = &Fleet_seq,
};

int gbpy_device_init(PyObject *module)
{
    for (int k = 0; k < GB_DEV_STATE__COUNT; k++)
        if (!(state_str[k] = PyUnicode_InternFromString(gb_dev_state_name((gb_dev_state)k))))
            return -1;
    for (int k = 0; k < GB_DEV_EV__COUNT; k++)
        if (!(event_str[k] = PyUnicode_InternFromString(gb_dev_event_name((gb_dev_event_type)k))))
            return -1;
    for (int k = 0; k < GB_DEV_R__COUNT; k++)
        if (!(reason_str[k] = PyUnicode_InternFromString(gb_dev_reason_name((gb_dev_reason)k))))
            return -1;
    if (PyType_Ready(&FleetType) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "Fleet", (PyObject *)&FleetType) < 0)
        return -1;
    return 0;
}
