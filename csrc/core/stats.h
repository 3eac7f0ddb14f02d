/*
 * stats.h - what a simulator reports of a device fleet, sans-IO: latency
 * histograms with percentiles, failures by reason and by status, events by
 * type, and each device's outcome.  Events are folded in as they are
 * taken from the fleet, so the cost is fixed per event and no record is
 * kept per sample.
 */
#ifndef GBSIP_STATS_H
#define GBSIP_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "device.h"

/* Log-linear histogram of milliseconds: exact below 64, then 32 buckets a
 * power of two (about 3 % wide), up to 2^32 ms: a fixed 7 KiB whatever the
 * number of samples. */
#define GB_HIST_EXACT 64
#define GB_HIST_SUB 32
#define GB_HIST_BUCKETS (GB_HIST_EXACT + (32 - 6) * GB_HIST_SUB)

typedef struct {
    uint64_t count[GB_HIST_BUCKETS];
    uint64_t n, sum;
    uint32_t max;
} gb_hist;

void gb_hist_add(gb_hist *h, uint32_t v);
/* The q-quantile (0 < q <= 1): the upper bound of the bucket holding the
 * rank ceil(q * n), never above the largest sample; 0 when empty. */
uint64_t gb_hist_quantile(const gb_hist *h, double q);
double gb_hist_mean(const gb_hist *h);

/* Statuses counted one by one; others (and 0, no response) count at 0. */
#define GB_TALLY_STATUSES 700

typedef struct {
    gb_hist register_ms;     /* REGISTERED: first REGISTER to 200 */
    gb_hist refresh_ms;      /* REFRESHED */
    gb_hist message_ms;      /* KEEPALIVE_ANSWERED: round trip */
    gb_hist answer_ms;       /* ANSWERED: a query to its answer's last 2xx */
    uint64_t events[GB_DEV_EV__COUNT];
    uint64_t fail_reason[GB_DEV_R__COUNT];
    uint64_t fail_status[GB_TALLY_STATUSES];
    uint64_t unreg_reason[GB_DEV_R__COUNT];
} gb_fleet_tally;

void gb_fleet_tally_event(gb_fleet_tally *t, const gb_dev_event *e);

/* A device's outcome as a simulator reports it: registered (now), or why
 * not ("auth_rejected 403", "timeout", or the state when it never failed)
 * written into out (NUL-terminated).  Returns 1 when registered. */
int gb_fleet_outcome(const gb_fleet *f, uint32_t dev, char *out, size_t cap);

#endif
