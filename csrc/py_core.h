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

/* Exception classes, created once by py_module.c. */
extern PyObject *gbpy_GBSIPError;
extern PyObject *gbpy_SIPParseError;

/* Raise gbsip.SIPParseError for err; extra_line is added to err->line when
 * the error came from a sub-parser working inside one header.  Returns NULL. */
PyObject *gbpy_raise_parse_error(const gb_error *err);

/* Per-concept module setup; each returns 0 or -1 with an exception set. */
int gbpy_message_init(PyObject *module);
int gbpy_digest_init(PyObject *module);
int gbpy_device_init(PyObject *module);
int gbpy_registrar_init(PyObject *module);
int gbpy_manscdp_init(PyObject *module);

#endif
