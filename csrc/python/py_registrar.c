/*
 * py_registrar.c - gbsip._core.RegistrarCore: the registrar state machine
 * of registrar.h for Python.
 *
 * A thin wrapper: arguments become core calls, answers and events become
 * Python objects.  pump_udp() runs io/udp_pump.h's batched UDP pump with
 * the GIL released (recvmmsg, gb_registrar_handle per datagram, sendmmsg),
 * so Python wakes once per batch and only sees events; meanwhile the
 * object refuses calls from another thread (ConcurrentUseError): it
 * belongs to one thread, the event loop's.  pump_tcp() does the same for
 * io/tcp_pump.h's connections (tcp_open, tcp_listen): accept, read, frame,
 * answer and write a batch of ready connections in one call; the pump's
 * timers are part of next_deadline()/handle_timer() and its refusals part
 * of pop_events().
 */
#include "py_core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/rand.h>
#include <string.h>

#include "digest.h"
#include "platform_requests.h"
#include "registrar.h"
#include "tcp_pump.h"
#include "udp_pump.h"

typedef struct {
    PyObject_HEAD
    gb_registrar *reg;
    gb_reg_pump *pump;        /* created on the first pump_udp() */
    gb_reg_tcp *tcp;          /* tcp_open() .. tcp_shutdown() */
    uint32_t event_mask;      /* the core's, for the TCP refusals */
    char *reply;              /* handle()/resume() answers, reply_cap bytes */
    size_t reply_cap;
    int busy;                 /* the pump runs without the GIL */
} RegistrarCoreObject;

static const char CORE_BUSY[] = "RegistrarCore";

/* ------------------------------------------------------------------ */
/* Addresses                                                           */

static int peer_from_py(PyObject *host, int port, int transport, unsigned long long conn,
                        gb_peer *p)
{
    memset(p, 0, sizeof(*p));
    const char *h = PyUnicode_AsUTF8(host);
    if (!h)
        return -1;
    if (inet_pton(AF_INET, h, p->ip) == 1) {
        p->family = 4;
    } else {
        /* strip a zone index ("fe80::1%eth0") */
        char tmp[64];
        size_t n = strcspn(h, "%");
        if (n >= sizeof(tmp) || (memcpy(tmp, h, n), tmp[n] = 0, inet_pton(AF_INET6, tmp, p->ip) != 1)) {
            PyErr_Format(PyExc_ValueError, "not an IP address: %R", host);
            return -1;
        }
        p->family = 6;
    }
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return -1;
    }
    p->port = (uint16_t)port;
    p->transport = (uint8_t)transport;
    p->conn_id = conn;
    return 0;
}

static PyObject *peer_to_py(const gb_peer *p)
{
    char ip[INET6_ADDRSTRLEN];
    if (!inet_ntop(p->family == 6 ? AF_INET6 : AF_INET, p->ip, ip, sizeof(ip)))
        ip[0] = 0;
    return Py_BuildValue("(siiK)", ip, p->port, p->transport, (unsigned long long)p->conn_id);
}

/* ------------------------------------------------------------------ */

static int get_bytes_arg(PyObject *o, const char **p, size_t *n, const char *what)
{
    if (o == Py_None) {
        *p = NULL;
        *n = 0;
        return 0;
    }
    if (PyUnicode_Check(o)) {
        Py_ssize_t len;
        *p = PyUnicode_AsUTF8AndSize(o, &len);
        *n = (size_t)len;
        return *p ? 0 : -1;
    }
    if (PyBytes_Check(o)) {
        *p = PyBytes_AS_STRING(o);
        *n = (size_t)PyBytes_GET_SIZE(o);
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "%s must be str, bytes or None", what);
    return -1;
}

static int core_init(RegistrarCoreObject *self, PyObject *args, PyObject *kwds)
{
    if (gbpy_not_busy(self->busy, CORE_BUSY) < 0)
        return -1;
    static char *kwlist[] = {
        "server_id", "realm", "shared_password", "ask_for_secrets", "min_expires",
        "max_expires", "default_expires", "keepalive_interval_ms", "keepalive_timeout_count",
        "qop_auth", "refresh_policy", "strict_ids", "uri_policy", "gb_version",
        "fixed_nonce", "nonce_key", "nonce_lifetime", "redirect_to", "seed",
        "max_bindings", "max_contacts", "max_transactions", "max_pending", "max_events",
        "transaction_ms", "rate_per_source", "lenient", "server_header",
        "keepalive_events", "event_mask", "hash_key", "require_qop", "keepalive_policy",
        "nonce_replay_slots", "max_event_bytes", "max_contact_bytes", "lockout_failures",
        "lockout_source_failures", "lockout_window_ms", "lockout_ms", "lockout_slots",
        "peer_event_rate", "max_requests", "request_t1_ms", "rate_slots", NULL};
    gb_registrar_config cfg;
    gb_registrar_config_default(&cfg);
    PyObject *server_id, *realm = Py_None, *shared = Py_None, *gbver = Py_None,
             *fixed = Py_None, *key = Py_None, *redirect = Py_None, *seed = Py_None,
             *server_header = Py_None, *hash_key = Py_None;
    int ask = 0, qop = 0, strict = 1, kev = 1, refresh = cfg.refresh_policy,
        uri_policy = cfg.uri_policy, require_qop = cfg.require_qop,
        ka_policy = cfg.keepalive_policy;
    unsigned long long event_bytes = cfg.max_event_bytes;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwds, "U|$OOpIIIIIpiipOOOIOOIIIIIIIIOpIOpiIKIIIIIIIIII:RegistrarCore", kwlist,
            &server_id,
            &realm, &shared, &ask, &cfg.min_expires, &cfg.max_expires, &cfg.default_expires,
            &cfg.keepalive_interval_ms, &cfg.keepalive_timeout_count, &qop, &refresh, &strict,
            &uri_policy, &gbver, &fixed, &key, &cfg.nonce_lifetime, &redirect, &seed,
            &cfg.max_bindings, &cfg.max_contacts, &cfg.max_transactions, &cfg.max_pending,
            &cfg.max_events, &cfg.transaction_ms, &cfg.rate_per_source, &cfg.lenient,
            &server_header, &kev, &cfg.event_mask, &hash_key, &require_qop, &ka_policy,
            &cfg.nonce_replay_slots, &event_bytes, &cfg.max_contact_bytes, &cfg.lockout_failures,
            &cfg.lockout_source_failures, &cfg.lockout_window_ms, &cfg.lockout_ms,
            &cfg.lockout_slots, &cfg.peer_event_rate, &cfg.max_requests,
            &cfg.request_t1_ms, &cfg.rate_slots))
        return -1;
    cfg.require_qop = require_qop;
    cfg.keepalive_policy = ka_policy;
    cfg.max_event_bytes = event_bytes;
    Py_ssize_t sl;
    cfg.server_id = PyUnicode_AsUTF8AndSize(server_id, &sl);
    if (!cfg.server_id)
        return -1;
    cfg.server_id_len = (size_t)sl;
    cfg.ask_for_secrets = ask;
    cfg.qop_auth = qop;
    cfg.refresh_policy = refresh;
    cfg.id_policy = strict ? GB_IDS_STRICT : GB_IDS_ANY;
    cfg.uri_policy = uri_policy;
    cfg.keepalive_events = kev;
    const char *kp;
    size_t kn;
    if (get_bytes_arg(realm, &cfg.realm, &cfg.realm_len, "realm") < 0 ||
        get_bytes_arg(shared, &cfg.shared_password, &cfg.shared_password_len,
                      "shared_password") < 0 ||
        get_bytes_arg(gbver, &cfg.gb_version, &cfg.gb_version_len, "gb_version") < 0 ||
        get_bytes_arg(fixed, &cfg.fixed_nonce, &cfg.fixed_nonce_len, "fixed_nonce") < 0 ||
        get_bytes_arg(key, &kp, &kn, "nonce_key") < 0 ||
        get_bytes_arg(redirect, &cfg.redirect_to, &cfg.redirect_to_len, "redirect_to") < 0 ||
        get_bytes_arg(server_header, &cfg.server_header, &cfg.server_header_len,
                      "server_header") < 0)
        return -1;
    unsigned char rnd[40];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        PyErr_SetString(gbpy_GBSIPError, "OpenSSL RAND_bytes failed");
        return -1;
    }
    if (gbpy_hash_key(hash_key, cfg.hash_key) < 0)
        return -1;
    if (kp) {
        cfg.nonce_key = (const unsigned char *)kp;
        cfg.nonce_key_len = kn;
    } else {
        cfg.nonce_key = rnd;
        cfg.nonce_key_len = 32;
    }
    if (seed != Py_None) {
        cfg.seed = PyLong_AsUnsignedLongLongMask(seed);
        if (PyErr_Occurred())
            return -1;
    } else {
        memcpy(&cfg.seed, rnd + 32, 8);
    }
    const char *why = NULL;
    gb_registrar *r = gb_registrar_new(&cfg, &why);
    if (!r) {
        PyErr_Format(gbpy_GBSIPError, "cannot create registrar: %s", why ? why : "unknown");
        return -1;
    }
    gb_reg_tcp_free(self->tcp); /* bound to the old registrar */
    self->tcp = NULL;
    gb_registrar_free(self->reg);
    gb_reg_pump_free(self->pump); /* sized for the old registrar's answers */
    self->pump = NULL;
    self->reg = r;
    self->event_mask = cfg.event_mask;
    return 0;
}

static void core_dealloc(RegistrarCoreObject *self)
{
    gb_reg_tcp_free(self->tcp);
    gb_reg_pump_free(self->pump);
    gb_registrar_free(self->reg);
    PyMem_Free(self->reply);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Every method starts here: initialised, and not pumping on another thread. */
#define CHECK_READY(self)                                                      \
    do {                                                                       \
        if (gbpy_not_busy((self)->busy, CORE_BUSY) < 0)                        \
            return NULL;                                                       \
        if (!(self)->reg) {                                                    \
            PyErr_SetString(gbpy_GBSIPError, "RegistrarCore not initialised"); \
            return NULL;                                                       \
        }                                                                      \
    } while (0)

/* The answer buffer for a request of request_len bytes (any answer fits,
 * gb_registrar_reply_cap). */
static gb_reg_reply *reply_for(RegistrarCoreObject *self, size_t request_len,
                               gb_reg_reply *out)
{
    size_t need = gb_registrar_reply_cap(self->reg, request_len);
    if (need > self->reply_cap) {
        char *p = PyMem_Realloc(self->reply, need);
        if (!p) {
            PyErr_NoMemory();
            return NULL;
        }
        self->reply = p;
        self->reply_cap = need;
    }
    *out = (gb_reg_reply){.buf = self->reply, .cap = self->reply_cap};
    return out;
}

static PyObject *reply_to_py(gb_reg_status st, const gb_reg_reply *out)
{
    if (st != GB_REG_REPLY)
        Py_RETURN_NONE;
    PyObject *data = PyBytes_FromStringAndSize(out->buf, (Py_ssize_t)out->len);
    PyObject *dest = data ? peer_to_py(&out->dest) : NULL;
    PyObject *r = dest ? PyTuple_Pack(2, data, dest) : NULL;
    Py_XDECREF(data);
    Py_XDECREF(dest);
    return r;
}

/* handle(data, host, port, transport, conn_id, now_ms, wall_ms)
 *   -> (answer bytes, (host, port, transport, conn_id)) | None */
static PyObject *core_handle(RegistrarCoreObject *self, PyObject *args)
{
    CHECK_READY(self);
    Py_buffer data;
    PyObject *host;
    int port, transport;
    unsigned long long conn;
    long long now, wall;
    if (!PyArg_ParseTuple(args, "y*UiiKLL:handle", &data, &host, &port, &transport, &conn,
                          &now, &wall))
        return NULL;
    gb_peer src;
    gb_reg_reply out;
    if (peer_from_py(host, port, transport, conn, &src) < 0 ||
        !reply_for(self, (size_t)data.len, &out)) {
        PyBuffer_Release(&data);
        return NULL;
    }
    gb_reg_status st = gb_registrar_handle(self->reg, data.buf, (size_t)data.len, &src, now,
                                           wall, &out);
    PyBuffer_Release(&data);
    return reply_to_py(st, &out);
}

static PyObject *core_resume(RegistrarCoreObject *self, PyObject *args)
{
    CHECK_READY(self);
    unsigned long long id;
    int kind;
    PyObject *secret;
    long long now, wall;
    if (!PyArg_ParseTuple(args, "KiOLL:resume", &id, &kind, &secret, &now, &wall))
        return NULL;
    const char *sp;
    size_t sn;
    if (get_bytes_arg(secret, &sp, &sn, "secret") < 0)
        return NULL;
    if (kind < GB_SECRET_UNKNOWN || kind > GB_SECRET_HA1) {
        PyErr_SetString(PyExc_ValueError, "kind must be 0 (unknown), 1 (password) or 2 (HA1)");
        return NULL;
    }
    /* the pending request is at most a datagram */
    gb_reg_reply out;
    if (!reply_for(self, 65536, &out))
        return NULL;
    gb_reg_status st = gb_registrar_resume(self->reg, id, kind, sp, sn, now, wall, &out);
    return reply_to_py(st, &out);
}

/* A pump's result: how many it handled, or OSError for -errno. */
static PyObject *pumped(long n)
{
    if (n < 0) {
        errno = (int)-n;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(n);
}

/* pump_udp(fd, now_ms, wall_ms) -> datagrams received (0: nothing waiting) */
static PyObject *core_pump_udp(RegistrarCoreObject *self, PyObject *args)
{
    CHECK_READY(self);
    int fd;
    long long now, wall;
    if (!PyArg_ParseTuple(args, "iLL:pump_udp", &fd, &now, &wall))
        return NULL;
    if (!self->pump && !(self->pump = gb_reg_pump_new(self->reg)))
        return PyErr_NoMemory();
    long n;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    n = gb_reg_pump_run(self->pump, self->reg, fd, now, wall);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    return pumped(n);
}

/* ---- TCP (io/tcp_pump.h) ------------------------------------------------- */

/* tcp_open(deliver=False, **options) -> the epoll fd to watch */
static PyObject *core_tcp_open(RegistrarCoreObject *self, PyObject *args, PyObject *kwds)
{
    CHECK_READY(self);
    int deliver = 0;
    if (!PyArg_ParseTuple(args, "|p:tcp_open", &deliver))
        return NULL;
    gb_tcp_config cfg;
    if (gbpy_tcp_config(self->tcp, kwds, &cfg) < 0)
        return NULL;
    const char *why = NULL;
    if (!(self->tcp = gb_reg_tcp_new(self->reg, &cfg, &why))) {
        PyErr_Format(PyExc_ValueError, "cannot open TCP: %s", why ? why : "unknown");
        return NULL;
    }
    gb_reg_tcp_deliver(self->tcp, deliver);
    return PyLong_FromLong(gb_tcp_fd(gb_reg_tcp_pump(self->tcp)));
}

/* tcp_listen(fd) / tcp_unlisten(fd): a listening socket the caller owns */
static PyObject *core_tcp_listen(RegistrarCoreObject *self, PyObject *arg)
{
    CHECK_READY(self);
    if (gbpy_tcp_is_open(self->tcp) < 0)
        return NULL;
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    int rc = fd < 0 || fd > INT32_MAX ? -EBADF : gb_tcp_listen(gb_reg_tcp_pump(self->tcp), (int)fd);
    if (rc < 0) {
        errno = -rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

static PyObject *core_tcp_unlisten(RegistrarCoreObject *self, PyObject *arg)
{
    CHECK_READY(self);
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (self->tcp)
        gb_tcp_unlisten(gb_reg_tcp_pump(self->tcp), (int)fd);
    Py_RETURN_NONE;
}

/* pump_tcp(now_ms, wall_ms) -> readiness events handled (0: nothing ready) */
static PyObject *core_pump_tcp(RegistrarCoreObject *self, PyObject *args)
{
    CHECK_READY(self);
    if (gbpy_tcp_is_open(self->tcp) < 0)
        return NULL;
    long long now, wall;
    if (!PyArg_ParseTuple(args, "LL:pump_tcp", &now, &wall))
        return NULL;
    long n;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    n = gb_reg_tcp_run(self->tcp, now, wall);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    return pumped(n);
}

/* tcp_frames() -> [(bytes, (host, port, transport, conn_id))]: the
 * messages kept in deliver mode, oldest first */
static PyObject *core_tcp_frames(RegistrarCoreObject *self, PyObject *unused)
{
    (void)unused;
    CHECK_READY(self);
    if (gbpy_tcp_is_open(self->tcp) < 0)
        return NULL;
    size_t n = gb_reg_tcp_frame_count(self->tcp);
    const gb_tcp_frame *fr = gb_reg_tcp_frames(self->tcp);
    const char *data = gb_reg_tcp_frame_data(self->tcp);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t k = 0; list && k < n; k++) {
        PyObject *t = Py_BuildValue("(y#N)", data + fr[k].off, (Py_ssize_t)fr[k].len,
                                    peer_to_py(&fr[k].peer));
        if (!t)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)k, t);
    }
    gb_reg_tcp_frames_clear(self->tcp);
    return list;
}

/* tcp_send(conn_id, data) -> True when written or queued, False when the
 * connection is gone (or the send closed it) */
static PyObject *core_tcp_send(RegistrarCoreObject *self, PyObject *args)
{
    CHECK_READY(self);
    if (gbpy_tcp_is_open(self->tcp) < 0)
        return NULL;
    unsigned long long id;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "Ky*:tcp_send", &id, &data))
        return NULL;
    int rc = gb_reg_tcp_send(self->tcp, id, data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    return PyBool_FromLong(rc == 0);
}

/* tcp_shutdown(): every connection closed, the pump gone (listening
 * sockets stay the caller's) */
static PyObject *core_tcp_shutdown(RegistrarCoreObject *self, PyObject *unused)
{
    (void)unused;
    CHECK_READY(self);
    gb_reg_tcp_free(self->tcp);
    self->tcp = NULL;
    Py_RETURN_NONE;
}

/* tcp_stats() -> dict of the pump's counters, None when TCP is not open */
static PyObject *core_tcp_stats(RegistrarCoreObject *self, PyObject *unused)
{
    (void)unused;
    CHECK_READY(self);
    if (!self->tcp)
        Py_RETURN_NONE;
    PyObject *d = gbpy_tcp_stats(gb_reg_tcp_pump(self->tcp));
    PyObject *key = d ? PyUnicode_FromString("refusals_dropped") : NULL;
    if (!key || gbpy_dict_u64(d, key, gb_reg_tcp_refusals_dropped(self->tcp)) < 0)
        Py_CLEAR(d);
    Py_XDECREF(key);
    return d;
}

static PyObject *core_set_secret(RegistrarCoreObject *self, PyObject *args, PyObject *kwds)
{
    CHECK_READY(self);
    static char *kwlist[] = {"device_id", "secret", "is_ha1", NULL};
    const char *id, *secret;
    Py_ssize_t il, sl;
    int ha1 = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "s#s#|p:set_secret", kwlist, &id, &il,
                                     &secret, &sl, &ha1))
        return NULL;
    if (gb_registrar_set_secret(self->reg, id, (size_t)il, secret, (size_t)sl, ha1) < 0) {
        PyErr_SetString(PyExc_ValueError, "device ID must be 1 to 64 bytes");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *core_forget_secret(RegistrarCoreObject *self, PyObject *arg)
{
    CHECK_READY(self);
    Py_ssize_t n;
    const char *id = PyUnicode_AsUTF8AndSize(arg, &n);
    if (!id)
        return NULL;
    return PyBool_FromLong(gb_registrar_forget_secret(self->reg, id, (size_t)n));
}

static PyObject *core_next_deadline(RegistrarCoreObject *self, PyObject *unused)
{
    (void)unused;
    CHECK_READY(self);
    int64_t d = gb_registrar_next_deadline(self->reg);
    if (self->tcp) {
        int64_t t = gb_tcp_next_deadline(gb_reg_tcp_pump(self->tcp));
        d = t < d ? t : d;
    }
    if (d == INT64_MAX)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(d);
}

static PyObject *core_handle_timer(RegistrarCoreObject *self, PyObject *arg)
{
    CHECK_READY(self);
    long long now = PyLong_AsLongLong(arg);
    if (now == -1 && PyErr_Occurred())
        return NULL;
    gb_registrar_handle_timer(self->reg, now);
    if (self->tcp)
        gb_tcp_handle_timer(gb_reg_tcp_pump(self->tcp), now);
    Py_RETURN_NONE;
}

static PyObject *opt_str(const char *p, size_t n)
{
    if (!p)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "surrogateescape");
}

/* The TCP pump's refusals (the garbage policy) as REJECTED events, after
 * the core's own, when the event mask records them.  0, or -1. */
static int append_refusals(RegistrarCoreObject *self, PyObject *list)
{
    size_t n = gb_reg_tcp_refusal_count(self->tcp);
    const gb_tcp_refusal_note *r = gb_reg_tcp_refusals(self->tcp);
    int wanted = !self->event_mask || (self->event_mask & (1u << GB_REG_EV_REJECTED));
    for (size_t k = 0; wanted && k < n; k++) {
        PyObject *t = Py_BuildValue("(iOiIIKKNsOO)", GB_REG_EV_REJECTED, Py_None, r[k].status,
                                    0u, 0u, (unsigned long long)0, (unsigned long long)0,
                                    peer_to_py(&r[k].peer), r[k].reason, Py_None, Py_None);
        PyObject *tm = t ? PyLong_FromLongLong(r[k].time_ms) : NULL;
        if (!tm || PyTuple_SetItem(t, 5, tm) < 0 || PyList_Append(list, t) < 0) {
            Py_XDECREF(t);
            return -1;
        }
        Py_DECREF(t);
    }
    gb_reg_tcp_refusals_clear(self->tcp);
    return 0;
}

/* pop_events() -> [(type, device_id, status, expires, sn, time_ms, pending_id,
 *                   source, reason, text, extra), ...] */
static PyObject *core_pop_events(RegistrarCoreObject *self, PyObject *unused)
{
    (void)unused;
    CHECK_READY(self);
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    gb_reg_event evs[64];
    size_t n;
    while ((n = gb_registrar_pop_events(self->reg, evs, 64)) > 0) {
        for (size_t i = 0; i < n; i++) {
            gb_reg_event *e = &evs[i];
            PyObject *t = list ? Py_BuildValue(
                                     "(iNiIIkKNNNN)", e->type, opt_str(e->id, e->id_len),
                                     e->status, e->expires, e->sn, (unsigned long)0,
                                     (unsigned long long)e->pending_id, peer_to_py(&e->source),
                                     e->reason ? PyUnicode_FromString(e->reason)
                                               : Py_NewRef(Py_None),
                                     opt_str(e->text, e->text_len),
                                     opt_str(e->extra, e->extra_len))
                               : NULL;
            if (t) {
                /* time_ms as a real int64 */
                PyObject *tm = PyLong_FromLongLong(e->time_ms);
                if (tm)
                    PyTuple_SetItem(t, 5, tm);
            }
            if (list && (!t || PyList_Append(list, t) < 0))
                Py_CLEAR(list);
            Py_XDECREF(t);
            gb_reg_event_clear(e);
        }
    }
    if (list && self->tcp && append_refusals(self, list) < 0)
        Py_CLEAR(list);
    return list;
}

static PyObject *view_to_py(const gb_binding_view *v)
{
    return Py_BuildValue("(NNINNINLLLO)", opt_str(v->id, v->id_len),
                         opt_str(v->contact, v->contact_len), v->ncontacts,
                         opt_str(v->user_agent, v->user_agent_len),
                         opt_str(v->call_id, v->call_id_len), v->cseq, peer_to_py(&v->source),
                         (long long)v->expires_at, (long long)v->registered_at,
                         (long long)v->last_keepalive, v->online ? Py_True : Py_False);
}

static PyObject *core_bindings(RegistrarCoreObject *self, PyObject *unused)
{
    (void)unused;
    CHECK_READY(self);
    PyObject *list = PyList_New(0);
    size_t cur = 0;
    gb_binding_view v;
    while (list && gb_registrar_binding_next(self->reg, &cur, &v)) {
        PyObject *t = view_to_py(&v);
        if (!t || PyList_Append(list, t) < 0)
            Py_CLEAR(list);
        Py_XDECREF(t);
    }
    return list;
}

static PyObject *core_binding(RegistrarCoreObject *self, PyObject *arg)
{
    CHECK_READY(self);
    Py_ssize_t n;
    const char *id = PyUnicode_AsUTF8AndSize(arg, &n);
    if (!id)
        return NULL;
    gb_binding_view v;
    if (!gb_registrar_binding_get(self->reg, id, (size_t)n, &v))
        Py_RETURN_NONE;
    return view_to_py(&v);
}

static PyObject *contacts_of(RegistrarCoreObject *self, const char *id, size_t n)
{
    PyObject *list = PyList_New(0);
    const char *uri;
    size_t ul;
    int64_t exp;
    for (uint32_t i = 0;
         list && gb_registrar_binding_contact(self->reg, id, n, i, &uri, &ul, &exp); i++) {
        PyObject *t = Py_BuildValue("(NL)", opt_str(uri, ul), (long long)exp);
        if (!t || PyList_Append(list, t) < 0)
            Py_CLEAR(list);
        Py_XDECREF(t);
    }
    return list;
}

static PyObject *core_contacts(RegistrarCoreObject *self, PyObject *arg)
{
    CHECK_READY(self);
    Py_ssize_t n;
    const char *id = PyUnicode_AsUTF8AndSize(arg, &n);
    return id ? contacts_of(self, id, (size_t)n) : NULL;
}

/* d[name] = v; 0, or -1 with an exception. */
static int dict_set_u64(PyObject *d, const char *name, uint64_t v)
{
    PyObject *key = PyUnicode_FromString(name);
    int r = key ? gbpy_dict_u64(d, key, v) : -1;
    Py_XDECREF(key);
    return r;
}

static PyObject *core_stats(RegistrarCoreObject *self, PyObject *unused)
{
    (void)unused;
    CHECK_READY(self);
    gb_registrar_stats s;
    gb_registrar_get_stats(self->reg, &s);
    static const gb_reg_pump_stats none;
    const gb_reg_pump_stats *p = self->pump ? gb_reg_pump_stats_get(self->pump) : &none;
    PyObject *d = Py_BuildValue(
        "{sKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsKsK}", "received", s.received,
        "answered", s.answered, "retransmissions_absorbed", s.retransmissions_absorbed,
        "dropped_unparseable", s.dropped_unparseable, "dropped_rate", s.dropped_rate,
        "dropped_pending_full", s.dropped_pending_full, "rejected", s.rejected, "challenges",
        s.challenges, "auth_failures", s.auth_failures, "registrations", s.registrations,
        "refreshes", s.refreshes, "unregistrations", s.unregistrations, "expirations",
        s.expirations, "keepalives", s.keepalives, "events_dropped", s.events_dropped,
        "transactions_evicted", s.transactions_evicted, "stray_responses", s.stray_responses,
        "rate_untracked", s.rate_untracked, "replies_too_large", s.replies_too_large,
        "bindings", s.bindings, "pending", s.pending, "transactions", s.transactions,
        "binding_bytes", s.binding_bytes, "truncated_datagrams",
        (unsigned long long)p->truncated, "answers_send_dropped",
        (unsigned long long)p->send_dropped);
    const struct {
        const char *name;
        uint64_t v;
    } more[] = {
        {"rate_evicted", s.rate_evicted},
        {"lockouts", s.lockouts},
        {"locked_out", s.locked_out},
        {"lockout_untracked", s.lockout_untracked},
        {"keepalives_refused", s.keepalives_refused},
        {"nonces_reused", s.nonces_reused},
        {"user_agents_cut", s.user_agents_cut},
        {"events_dropped_state", s.events_dropped_state},
        {"events_suppressed", s.events_suppressed},
        {"trusted_evicted", s.trusted_evicted},
        {"retransmissions_foreign", s.retransmissions_foreign},
        {"messages_malformed", s.messages_malformed},
        {"event_bytes", s.event_bytes},
        {"changes_dropped", s.changes_dropped},
    };
    for (size_t i = 0; d && i < sizeof more / sizeof more[0]; i++)
        if (dict_set_u64(d, more[i].name, more[i].v) < 0)
            Py_CLEAR(d);
    return d;
}

/* drops() -> {reason: count}: every request left unanswered, by reason;
 * unparseable ones also as "unparseable:<parse error code>". */
static PyObject *core_drops(RegistrarCoreObject *self, PyObject *unused)
{
    (void)unused;
    CHECK_READY(self);
    gb_registrar_stats s;
    gb_registrar_get_stats(self->reg, &s);
    PyObject *d = PyDict_New();
    for (int k = 0; d && k < GB_REG_DROP__COUNT; k++)
        if (dict_set_u64(d, gb_reg_drop_name((gb_reg_drop)k), s.drops[k]) < 0)
            Py_CLEAR(d);
    if (d && dict_set_u64(d, "truncated",
                          self->pump ? gb_reg_pump_stats_get(self->pump)->truncated : 0) < 0)
        Py_CLEAR(d);
    /* TCP messages the framing refused and nothing could answer (the
     * connection closed without a 400: no Via, a response, ...) */
    const gb_tcp_stats *ts = self->tcp ? gb_tcp_stats_get(gb_reg_tcp_pump(self->tcp)) : NULL;
    if (d && dict_set_u64(d, "tcp_unanswerable",
                          ts ? ts->refusals - ts->refusals_answered : 0) < 0)
        Py_CLEAR(d);
    for (int c = 0; d && c < GB_ERR__COUNT; c++) {
        char name[64];
        if (!s.drops_parse[c])
            continue;
        snprintf(name, sizeof name, "unparseable:%s", gbpy_error_code_name((gb_error_code)c));
        if (dict_set_u64(d, name, s.drops_parse[c]) < 0)
            Py_CLEAR(d);
    }
    return d;
}

static PyObject *core_len(RegistrarCoreObject *self, PyObject *unused)
{
    (void)unused;
    CHECK_READY(self);
    return PyLong_FromSize_t(gb_registrar_binding_count(self->reg));
}

/* ------------------------------------------------------------------ */
/* Persistence                                                         */

static PyObject *core_track_changes(RegistrarCoreObject *self, PyObject *arg)
{
    CHECK_READY(self);
    int on = PyObject_IsTrue(arg);
    if (on < 0)
        return NULL;
    if (gb_registrar_track_changes(self->reg, on) < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}


typedef struct {
    RegistrarCoreObject *self;
    PyObject *changed, *removed;
    int failed;
} change_sink;

static void take_one(void *arg, const char *id, size_t id_len, const gb_binding_view *v)
{
    change_sink *k = arg;
    if (k->failed)
        return;
    PyObject *item = v ? Py_BuildValue("(NN)", view_to_py(v), contacts_of(k->self, id, id_len))
                       : opt_str(id, id_len);
    if (!item || PyList_Append(v ? k->changed : k->removed, item) < 0)
        k->failed = 1;
    Py_XDECREF(item);
}

/* take_changes() -> ([(binding tuple, [(uri, expires_at_ms)])], [removed id]) */
static PyObject *core_take_changes(RegistrarCoreObject *self, PyObject *unused)
{
    (void)unused;
    CHECK_READY(self);
    change_sink k = {self, PyList_New(0), PyList_New(0), 0};
    if (k.changed && k.removed)
        gb_registrar_take_changes(self->reg, take_one, &k);
    if (!k.changed || !k.removed || k.failed) {
        Py_XDECREF(k.changed);
        Py_XDECREF(k.removed);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    return Py_BuildValue("(NN)", k.changed, k.removed);
}

/* restore(device_id, contacts, user_agent, call_id, cseq, host, port,
 *         transport, registered_at, last_keepalive, online, now) -> None */
static PyObject *core_restore(RegistrarCoreObject *self, PyObject *args)
{
    CHECK_READY(self);
    const char *id, *cid;
    Py_ssize_t il, cl;
    PyObject *contacts, *ua, *host;
    unsigned long cseq;
    int port, transport, on;
    long long reg_at, ka, now;
    if (!PyArg_ParseTuple(args, "s#OOs#kOiiLLpL:restore", &id, &il, &contacts, &ua, &cid, &cl,
                          &cseq, &host, &port, &transport, &reg_at, &ka, &on, &now))
        return NULL;
    gb_binding_view v = {.id = id, .id_len = (size_t)il, .call_id = cid,
                         .call_id_len = (size_t)cl, .cseq = (uint32_t)cseq,
                         .registered_at = reg_at, .last_keepalive = ka, .online = on};
    if (ua != Py_None) {
        Py_ssize_t ul;
        if (!(v.user_agent = PyUnicode_AsUTF8AndSize(ua, &ul)))
            return NULL;
        v.user_agent_len = (size_t)ul;
    }
    if (peer_from_py(host, port, transport, 0, &v.source) < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(contacts, "contacts must be a sequence");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    gb_reg_contact *cs = PyMem_Calloc(n ? (size_t)n : 1, sizeof(*cs));
    int rc = cs ? 0 : -3;
    for (Py_ssize_t i = 0; cs && i < n && rc == 0; i++) {
        long long exp;
        Py_ssize_t ul;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "s#L", &cs[i].uri, &ul, &exp))
            rc = -4;
        cs[i].uri_len = (size_t)ul;
        cs[i].expires_at = exp;
    }
    if (rc == 0)
        rc = gb_registrar_restore(self->reg, &v, cs, (size_t)n, now);
    PyMem_Free(cs);
    Py_DECREF(seq);
    if (rc == -4)
        return NULL;
    if (rc == -3)
        return PyErr_NoMemory();
    if (rc < 0) {
        PyErr_Format(PyExc_ValueError, rc == -2 ? "max_bindings reached restoring %s"
                                                : "cannot restore %s: no contact, too many, "
                                                  "or already bound", id);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* The platform side (platform_requests.h)                             */

/* request(device_id, method, body, headers, via_host, via_port, now_ms, *,
 *         content_type=None, call_id=None, from_tag=None, to_tag=None, cseq=0)
 *   -> (code, handle, call_id, from_tag, cseq); code 0 or GB_PREQ_* /
 *   GB_REG_NOT_REGISTERED.  The message is queued: take_output() sends. */
static PyObject *core_request(RegistrarCoreObject *self, PyObject *args, PyObject *kwds)
{
    CHECK_READY(self);
    static char *kwlist[] = {"device_id", "method", "body", "headers", "via_host", "via_port",
                             "now_ms", "content_type", "call_id", "from_tag", "to_tag", "cseq",
                             NULL};
    PyObject *dev, *method, *body, *headers, *via, *ctype = Py_None, *cid = Py_None,
             *ftag = Py_None, *ttag = Py_None;
    int port;
    long long now;
    unsigned int cseq = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "UUOOUiL|$OOOOI:request", kwlist, &dev, &method,
                                     &body, &headers, &via, &port, &now, &ctype, &cid, &ftag,
                                     &ttag, &cseq))
        return NULL;
    gb_reg_request q = {.cseq = cseq, .via_port = (uint16_t)port};
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "via_port out of range");
        return NULL;
    }
    if (get_bytes_arg(dev, &q.device_id, &q.device_id_len, "device_id") < 0 ||
        get_bytes_arg(method, &q.method, &q.method_len, "method") < 0 ||
        get_bytes_arg(body, &q.body, &q.body_len, "body") < 0 ||
        get_bytes_arg(via, &q.via_host, &q.via_host_len, "via_host") < 0 ||
        get_bytes_arg(ctype, &q.content_type, &q.content_type_len, "content_type") < 0 ||
        get_bytes_arg(cid, &q.call_id, &q.call_id_len, "call_id") < 0 ||
        get_bytes_arg(ftag, &q.from_tag, &q.from_tag_len, "from_tag") < 0 ||
        get_bytes_arg(ttag, &q.to_tag, &q.to_tag_len, "to_tag") < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(headers, "headers must be a sequence of (name, value)");
    if (!seq)
        return NULL;
    Py_ssize_t nh = PySequence_Fast_GET_SIZE(seq);
    if (nh > GB_PREQ_MAX_FIELDS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "at most %d extra headers", GB_PREQ_MAX_FIELDS);
        return NULL;
    }
    gb_field f[GB_PREQ_MAX_FIELDS];
    for (Py_ssize_t i = 0; i < nh; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *name, *value;
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "UU", &name, &value)) {
            Py_DECREF(seq);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "headers must be (name, value) str pairs");
            return NULL;
        }
        if (get_bytes_arg(name, &f[i].name, &f[i].name_len, "header name") < 0 ||
            get_bytes_arg(value, &f[i].value, &f[i].value_len, "header value") < 0) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    q.fields = f;
    q.nfields = (size_t)nh;
    gb_preq_sent sent;
    int code = gb_registrar_request(self->reg, &q, now, &sent);
    Py_DECREF(seq);
    if (code != GB_PREQ_OK)
        return Py_BuildValue("(iKOOI)", code, 0ULL, Py_None, Py_None, 0u);
    return Py_BuildValue("(iKs#s#I)", code, (unsigned long long)sent.handle, sent.call_id,
                         (Py_ssize_t)sent.call_id_len, sent.from_tag,
                         (Py_ssize_t)sent.from_tag_len, sent.cseq);
}

static PyObject *core_cancel_request(RegistrarCoreObject *self, PyObject *arg)
{
    CHECK_READY(self);
    unsigned long long h = PyLong_AsUnsignedLongLong(arg);
    if (h == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(gb_registrar_cancel_request(self->reg, h));
}

/* take_output() -> [(bytes, (host, port, transport, conn_id)), ...]: the
 * requests and retransmissions to send, in order. */
static PyObject *core_take_output(RegistrarCoreObject *self, PyObject *unused)
{
    (void)unused;
    CHECK_READY(self);
    PyObject *list = PyList_New(0);
    const char *d;
    size_t n;
    gb_peer dest;
    while (list && gb_registrar_next_output(self->reg, &d, &n, &dest)) {
        PyObject *data = PyBytes_FromStringAndSize(d, (Py_ssize_t)n);
        PyObject *where = data ? peer_to_py(&dest) : NULL;
        PyObject *t = where ? PyTuple_Pack(2, data, where) : NULL;
        Py_XDECREF(data);
        Py_XDECREF(where);
        if (!t || PyList_Append(list, t) < 0)
            Py_CLEAR(list);
        Py_XDECREF(t);
    }
    return list;
}

static PyObject *core_request_stats(RegistrarCoreObject *self, PyObject *unused)
{
    (void)unused;
    CHECK_READY(self);
    gb_preq_stats s;
    gb_registrar_request_stats(self->reg, &s);
    return Py_BuildValue("{sKsKsKsKsKsKsKsKsKsKsK}", "requests_sent", s.sent,
                         "requests_retransmitted", s.retransmissions, "requests_answered",
                         s.answered, "requests_provisional", s.provisional,
                         "requests_timed_out", s.timed_out, "requests_cancelled", s.cancelled,
                         "requests_turned_away", s.turned_away, "requests_completed_reused",
                         s.completed_reused, "requests_answers_absorbed",
                         s.answers_absorbed, "requests_mismatched", s.mismatched,
                         "requests_in_flight", s.in_flight);
}

static PyMethodDef core_methods[] = {
    {"handle", (PyCFunction)core_handle, METH_VARARGS,
     "handle(data, host, port, transport, conn_id, now_ms, wall_ms) -> (bytes, dest) | None"},
    {"resume", (PyCFunction)core_resume, METH_VARARGS,
     "resume(pending_id, kind, secret, now_ms, wall_ms) -> (bytes, dest) | None"},
    {"pump_udp", (PyCFunction)core_pump_udp, METH_VARARGS,
     "pump_udp(fd, now_ms, wall_ms) -> number of datagrams handled"},
    {"tcp_open", (PyCFunction)(void (*)(void))core_tcp_open, METH_VARARGS | METH_KEYWORDS,
     "tcp_open(deliver=False, **options) -> epoll fd (see io/tcp_pump.h)"},
    {"tcp_listen", (PyCFunction)core_tcp_listen, METH_O, "tcp_listen(fd)"},
    {"tcp_unlisten", (PyCFunction)core_tcp_unlisten, METH_O, "tcp_unlisten(fd)"},
    {"pump_tcp", (PyCFunction)core_pump_tcp, METH_VARARGS,
     "pump_tcp(now_ms, wall_ms) -> readiness events handled"},
    {"tcp_frames", (PyCFunction)core_tcp_frames, METH_NOARGS,
     "Messages kept in deliver mode: [(bytes, peer)]."},
    {"tcp_send", (PyCFunction)core_tcp_send, METH_VARARGS, "tcp_send(conn_id, data) -> bool"},
    {"tcp_shutdown", (PyCFunction)core_tcp_shutdown, METH_NOARGS,
     "Close every TCP connection and the pump."},
    {"tcp_stats", (PyCFunction)core_tcp_stats, METH_NOARGS, "The TCP pump's counters, or None."},
    {"set_secret", (PyCFunction)(void (*)(void))core_set_secret, METH_VARARGS | METH_KEYWORDS,
     "set_secret(device_id, secret, is_ha1=False)"},
    {"forget_secret", (PyCFunction)core_forget_secret, METH_O, "forget_secret(device_id)"},
    {"next_deadline", (PyCFunction)core_next_deadline, METH_NOARGS,
     "Monotonic ms of the next timer, or None."},
    {"handle_timer", (PyCFunction)core_handle_timer, METH_O, "handle_timer(now_ms)"},
    {"pop_events", (PyCFunction)core_pop_events, METH_NOARGS, "Queued events, oldest first."},
    {"bindings", (PyCFunction)core_bindings, METH_NOARGS, "Every binding as a tuple."},
    {"binding", (PyCFunction)core_binding, METH_O, "One binding as a tuple, or None."},
    {"contacts", (PyCFunction)core_contacts, METH_O, "[(uri, expires_at_ms), ...]"},
    {"track_changes", (PyCFunction)core_track_changes, METH_O,
     "track_changes(on): list every binding change for take_changes()"},
    {"take_changes", (PyCFunction)core_take_changes, METH_NOARGS,
     "take_changes() -> ([(binding, contacts)], [removed device_id])"},
    {"restore", (PyCFunction)core_restore, METH_VARARGS,
     "restore(...): put back a stored binding"},
    {"stats", (PyCFunction)core_stats, METH_NOARGS, "Counters."},
    {"drops", (PyCFunction)core_drops, METH_NOARGS,
     "Requests left unanswered, by reason (and by parse error)."},
    {"request", (PyCFunction)(void (*)(void))core_request, METH_VARARGS | METH_KEYWORDS,
     "request(device_id, method, body, headers, via_host, via_port, now_ms, ...) -> "
     "(code, handle, call_id, from_tag, cseq)"},
    {"cancel_request", (PyCFunction)core_cancel_request, METH_O, "cancel_request(handle)"},
    {"take_output", (PyCFunction)core_take_output, METH_NOARGS,
     "Requests to send: [(bytes, (host, port, transport, conn_id))]."},
    {"request_stats", (PyCFunction)core_request_stats, METH_NOARGS,
     "Counters of the requests to devices."},
    {"binding_count", (PyCFunction)core_len, METH_NOARGS, "Number of bindings."},
    {NULL},
};

static PyTypeObject RegistrarCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gbsip._core.RegistrarCore",
    .tp_basicsize = sizeof(RegistrarCoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The sans-IO GB/T 28181 registrar state machine (see gbsip.Registrar).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)core_init,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_methods = core_methods,
};

int gbpy_registrar_init(PyObject *module)
{
    if (PyType_Ready(&RegistrarCoreType) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "RegistrarCore", (PyObject *)&RegistrarCoreType);
}
