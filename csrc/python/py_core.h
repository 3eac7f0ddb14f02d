/*
 * py_core.h - shared declarations of the gbsip._core binding.
 *
 * The binding is split by concept (py_message.c, py_digest.c, ...); each
 * part exposes one init function that adds its types and functions to the
 * module, called from py_module.c.
 */
#ifndef GBSIP_PY_CORE_H
#define GBSIP_PY_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "sip_parser.h"
#include "tcp_pump.h"

/* Exception classes, created once by py_module.c. */
extern PyObject *gbpy_GBSIPError;
extern PyObject *gbpy_LocalProtocolError;
extern PyObject *gbpy_RemoteProtocolError;
extern PyObject *gbpy_SIPParseError;
extern PyObject *gbpy_ConcurrentUseError;

/* Single-thread ownership: RegistrarCore and Fleet run their UDP pumps with
 * the GIL released, so another thread could call the same core meanwhile.
 * Every entry point asks first: 0 when the object is free, else -1 with
 * ConcurrentUseError naming `what` ("RegistrarCore", "Fleet"). */
int gbpy_not_busy(int busy, const char *what);

/* d[key] = v as an int; 0, or -1 with an exception. */
int gbpy_dict_u64(PyObject *d, PyObject *key, uint64_t v);

/* "START_LINE" for GB_ERR_START_LINE (SIPParseError.code). */
const char *gbpy_error_code_name(gb_error_code code);

/* Raise gbsip.SIPParseError for err; extra_line is added to err->line when
 * the error came from a sub-parser working inside one header.  Returns NULL. */
PyObject *gbpy_raise_parse_error(const gb_error *err);

/* The 16-byte key of the core's table hashes (SipHash) from the caller's
 * hash_key argument: bytes of that length, or None for one drawn from
 * OpenSSL's RAND_bytes (seeded by the OS).  0, or -1 with an exception. */
int gbpy_hash_key(PyObject *arg, unsigned char out[16]);

/* The TCP pump's options from tcp_open()'s keyword arguments (max_connections,
 * max_message, lenient, idle_ms, incomplete_ms, max_unsent, max_buffered),
 * defaults for the rest, refused (LocalProtocolError) when the role's pump
 * `open` exists already; and its counters as a dict.  py_tcp.c. */
int gbpy_tcp_config(const void *open, PyObject *kwds, gb_tcp_config *cfg);
PyObject *gbpy_tcp_stats(const gb_tcp *t);
/* 0 when the role's TCP part (pump) exists, else -1 with LocalProtocolError. */
int gbpy_tcp_is_open(const void *pump);

/* Per-concept module setup; each returns 0 or -1 with an exception set. */
int gbpy_message_init(PyObject *module);
int gbpy_digest_init(PyObject *module);
int gbpy_device_init(PyObject *module);
int gbpy_registrar_init(PyObject *module);
int gbpy_manscdp_init(PyObject *module);

#endif
