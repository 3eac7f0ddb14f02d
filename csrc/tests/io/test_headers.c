/*
 * test_headers.c - every header of core/ and io/ in one translation unit,
 * compiled with -Werror: names are prefixed per module (GB_REG_EV_*,
 * GB_DEV_EV_*), so no two headers define the same thing.  The Makefile
 * refuses to build this file when a header of core/ or io/ is missing
 * from the list below.
 */
#include "camera.h"
#include "device.h"
#include "digest.h"
#include "fleet_internal.h"
#include "gb_containers.h"
#include "gb_states.h"
#include "io_addr.h"
#include "manscdp.h"
#include "platform_requests.h"
#include "registrar.h"
#include "sip_auth.h"
#include "sip_fields.h"
#include "sip_parser.h"
#include "sip_writer.h"
#include "stats.h"
#include "tcp_pump.h"
#include "udp_pump.h"

#include "../check.h"

int main(void)
{
    /* The registrar's and the device's events coexist with their values. */
    CHECK_EQ_INT(GB_REG_EV_REGISTERED, 1);
    CHECK_EQ_INT(GB_DEV_EV_REGISTERED, 1);
    CHECK_EQ_INT(GB_REG_EV_REDIRECTED, 12);
    CHECK_EQ_INT(GB_REG_EV_NOTIFY, 16);
    CHECK_EQ_INT(GB_DEV_EV_UNREGISTERED, 10);
    return CHECK_DONE("test_headers");
}
