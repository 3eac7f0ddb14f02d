/*
 * gb_states.h - transition tables of the core's state machines.
 *
 * Each machine (the device in device.h, the registrar's binding in
 * registrar.h) lists every move it may make, with what makes it, in one
 * const table.  Its one set_state() consults the table: a move not listed is
 * refused (and counted; an assert in debug builds), so the table is the
 * whole truth, and csrc/tools/state_diagrams prints the diagrams in
 * docs/design.md from it.
 */
#ifndef GBSIP_GB_STATES_H
#define GBSIP_GB_STATES_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t from, to;
    const char *on;       /* what makes the move, for the diagram */
} gb_state_move;

/* The index of the move (from, to) in the table, -1 when not allowed. */
static inline int gb_state_move_find(const gb_state_move *moves, size_t n, unsigned from,
                                     unsigned to)
{
    for (size_t k = 0; k < n; k++)
        if (moves[k].from == from && moves[k].to == to)
            return (int)k;
    return -1;
}

/* Take the move (from, to) if the table allows it: counted in
 * counts[from * states + to] (a [from][to] matrix), 0 returned.  Otherwise
 * counted in *illegal, asserted in debug builds, -1 returned. */
static inline int gb_state_move_take(const gb_state_move *moves, size_t n, unsigned from,
                                     unsigned to, uint64_t *counts, unsigned states,
                                     uint64_t *illegal)
{
    if (gb_state_move_find(moves, n, from, to) < 0) {
        (*illegal)++;
        assert(!"a state move its table does not allow");
        return -1;
    }
    counts[from * states + to]++;
    return 0;
}

#endif
