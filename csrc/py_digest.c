/* py_digest.c - gbsip._core Digest binding (filled in by the Digest work). */
#include "py_core.h"

int gbpy_digest_init(PyObject *module)
{
    (void)module;
    return 0;
}
