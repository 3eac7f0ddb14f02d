/* stats.c - fleet statistics (see stats.h). */
#include "stats.h"

#include <stdio.h>

static unsigned hist_bucket(uint32_t v)
{
    if (v < GB_HIST_EXACT)
        return v;
    unsigned k = 31u - (unsigned)__builtin_clz(v); /* 6..31 */
    unsigned sub = (v >> (k - 5)) & (GB_HIST_SUB - 1);
    return GB_HIST_EXACT + (k - 6) * GB_HIST_SUB + sub;
}

/* Highest value that falls in bucket b. */
static uint64_t hist_upper(unsigned b)
{
    if (b < GB_HIST_EXACT)
        return b;
    unsigned k = 6 + (b - GB_HIST_EXACT) / GB_HIST_SUB, sub = (b - GB_HIST_EXACT) % GB_HIST_SUB;
    uint64_t lo = (uint64_t)(GB_HIST_SUB + sub) << (k - 5);
    return lo + ((uint64_t)1 << (k - 5)) - 1;
}

void gb_hist_add(gb_hist *h, uint32_t v)
{
    h->count[hist_bucket(v)]++;
    h->n++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

uint64_t gb_hist_quantile(const gb_hist *h, double q)
{
    if (!h->n)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < GB_HIST_BUCKETS; b++) {
        seen += h->count[b];
        if (seen >= rank) {
            uint64_t u = hist_upper(b);
            return u < h->max ? u : h->max;
        }
    }
    return h->max;
}

double gb_hist_mean(const gb_hist *h)
{
    return h->n ? (double)h->sum / (double)h->n : 0.0;
}

void gb_fleet_tally_event(gb_fleet_tally *t, const gb_dev_event *e)
{
    if (e->type < GB_DEV_EV__COUNT)
        t->events[e->type]++;
    switch (e->type) {
    case GB_DEV_EV_REGISTERED:
        gb_hist_add(&t->register_ms, e->latency_ms);
        break;
    case GB_DEV_EV_REFRESHED:
        gb_hist_add(&t->refresh_ms, e->latency_ms);
        break;
    case GB_DEV_EV_KEEPALIVE_ANSWERED:
        gb_hist_add(&t->message_ms, e->latency_ms);
        break;
    case GB_DEV_EV_ANSWERED:
        gb_hist_add(&t->answer_ms, e->latency_ms);
        break;
    case GB_DEV_EV_FAILED:
        if (e->reason < GB_DEV_R__COUNT)
            t->fail_reason[e->reason]++;
        t->fail_status[e->status < GB_TALLY_STATUSES ? e->status : 0]++;
        break;
    case GB_DEV_EV_UNREGISTERED:
        if (e->reason < GB_DEV_R__COUNT)
            t->unreg_reason[e->reason]++;
        break;
    default:
        break;
    }
}

int gb_fleet_outcome(const gb_fleet *f, uint32_t dev, char *out, size_t cap)
{
    gb_dev_state st = gb_fleet_state(f, dev);
    if (st == GB_DEV_REGISTERED || st == GB_DEV_REFRESHING) {
        snprintf(out, cap, "%s", gb_dev_state_name(st));
        return 1;
    }
    uint16_t status;
    gb_dev_reason reason;
    gb_fleet_last_failure(f, dev, &status, &reason);
    if (reason == GB_DEV_R_NONE)
        snprintf(out, cap, "%s", gb_dev_state_name(st));
    else if (status)
        snprintf(out, cap, "%s %u", gb_dev_reason_name(reason), (unsigned)status);
    else
        snprintf(out, cap, "%s", gb_dev_reason_name(reason));
    return 0;
}
