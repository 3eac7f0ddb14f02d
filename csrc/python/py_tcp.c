/*
 * py_tcp.c - what RegistrarCore and Fleet share of io/tcp_pump.h: the
 * pump's options from keyword arguments, and its counters as a dict.
 */
#include "py_core.h"

#include <stddef.h>
#include <string.h>

#include "tcp_pump.h"

/* keyword -> (offset, width) in gb_tcp_config */
static const struct {
    const char *name;
    size_t off;
    int wide;
} options[] = {
    {"max_connections", offsetof(gb_tcp_config, max_connections), 0},
    {"max_message", offsetof(gb_tcp_config, max_message), 0},
    {"lenient", offsetof(gb_tcp_config, lenient), 0},
    {"idle_ms", offsetof(gb_tcp_config, idle_ms), 0},
    {"incomplete_ms", offsetof(gb_tcp_config, incomplete_ms), 0},
    {"max_unsent", offsetof(gb_tcp_config, max_unsent), 0},
    {"max_buffered", offsetof(gb_tcp_config, max_buffered), 1},
};

int gbpy_tcp_config(const void *open, PyObject *kwds, gb_tcp_config *cfg)
{
    if (open) {
        PyErr_SetString(gbpy_LocalProtocolError, "TCP is open already");
        return -1;
    }
    gb_tcp_config_default(cfg);
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (kwds && PyDict_Next(kwds, &pos, &key, &value)) {
        const char *name = PyUnicode_AsUTF8(key);
        if (!name)
            return -1;
        size_t k = 0;
        while (k < sizeof options / sizeof options[0] && strcmp(options[k].name, name))
            k++;
        if (k == sizeof options / sizeof options[0]) {
            PyErr_Format(PyExc_TypeError, "tcp_open() got an unexpected keyword argument '%s'",
                         name);
            return -1;
        }
        unsigned long long v = PyLong_AsUnsignedLongLong(value);
        if (v == (unsigned long long)-1 && PyErr_Occurred())
            return -1;
        if (!options[k].wide && v > UINT32_MAX) {
            PyErr_Format(PyExc_ValueError, "%s is out of range", name);
            return -1;
        }
        char *field = (char *)cfg + options[k].off;
        if (options[k].wide)
            *(uint64_t *)(void *)field = v;
        else
            *(uint32_t *)(void *)field = (uint32_t)v;
    }
    return 0;
}

#define STAT(name) {#name, offsetof(gb_tcp_stats, name)}
static const struct {
    const char *name;
    size_t off;
} counters[] = {
    STAT(accepted), STAT(connected), STAT(refused_max), STAT(refused_fd_limit),
    STAT(connect_failed), STAT(messages_in), STAT(bytes_in), STAT(bytes_out),
    STAT(keepalive_bytes), STAT(refusals), STAT(refusals_answered), STAT(send_gone),
    STAT(partial_dropped), STAT(open), STAT(connecting), STAT(open_peak), STAT(buffered),
    STAT(buffered_peak),
};
#undef STAT

PyObject *gbpy_tcp_stats(const gb_tcp *t)
{
    const gb_tcp_stats *s = gb_tcp_stats_get(t);
    PyObject *d = PyDict_New(), *closed = PyDict_New();
    for (size_t k = 0; d && k < sizeof counters / sizeof counters[0]; k++) {
        PyObject *key = PyUnicode_FromString(counters[k].name);
        uint64_t v;
        memcpy(&v, (const char *)s + counters[k].off, sizeof v);
        if (!key || gbpy_dict_u64(d, key, v) < 0)
            Py_CLEAR(d);
        Py_XDECREF(key);
    }
    for (int why = 1; d && closed && why < GB_TCP_CLOSED__COUNT; why++) {
        PyObject *key = PyUnicode_FromString(gb_tcp_close_reason_name(why));
        if (!key || gbpy_dict_u64(closed, key, s->closed[why]) < 0)
            Py_CLEAR(closed);
        Py_XDECREF(key);
    }
    PyObject *err = PyLong_FromLong(s->last_errno);
    if (!d || !closed || !err || PyDict_SetItemString(d, "closed", closed) < 0 ||
        PyDict_SetItemString(d, "last_errno", err) < 0)
        Py_CLEAR(d);
    Py_XDECREF(closed);
    Py_XDECREF(err);
    return d;
}

int gbpy_tcp_is_open(const void *pump)
{
    if (pump)
        return 0;
    PyErr_SetString(gbpy_LocalProtocolError, "TCP is not open: tcp_open() first");
    return -1;
}
