/*
 * fuzz_fleet.h - what the fleet's fuzz targets (fuzz_device.c,
 * fuzz_camera.c) check after every step.
 */
#ifndef GBSIP_FUZZ_FLEET_H
#define GBSIP_FUZZ_FLEET_H

#include <string.h>

#include "device.h"
#include "fuzz.h"

/* Events of known types for devices in range (then cleared); states that
 * add up and never moved outside the table. */
static inline void fleet_invariants(gb_fleet *f)
{
    size_t ne = gb_fleet_event_count(f);
    const gb_dev_event *e = gb_fleet_events(f);
    for (size_t k = 0; k < ne; k++) {
        EXPECT(e[k].type >= GB_DEV_EV_REGISTERED && e[k].type < GB_DEV_EV__COUNT);
        EXPECT(e[k].reason < GB_DEV_R__COUNT && e[k].dev < gb_fleet_count(f));
    }
    gb_fleet_events_clear(f);
    const gb_fleet_stats *st = gb_fleet_get_stats(f);
    uint32_t sum = 0;
    for (int s = 0; s < GB_DEV_STATE__COUNT; s++)
        sum += st->by_state[s];
    EXPECT(sum == gb_fleet_count(f));
    EXPECT(st->illegal_moves == 0);
    EXPECT(st->matched <= st->responses);
}

/* One datagram of exactly n bytes (ASan sees reads past them) fed to f:
 * for a device in range or none. */
static inline void fleet_feed(gb_fleet *f, const char *p, size_t n, int64_t now)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, p, n);
    long d = gb_fleet_handle_datagram(f, copy, n, now);
    free(copy);
    EXPECT(d >= -1 && d < (long)gb_fleet_count(f));
}

#endif
