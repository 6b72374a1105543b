/* Moving finished blocks to root (docs/design.md 4, "Gather"). A group leader sends each
 * finished block's result tensor by tensor, then, when it has no blocks left, an end
 * message saying whether its group finished or stopped. Root polls between its own
 * iterations, receives one block at a time (so its memory does not grow with the number
 * of blocks) and hands it to a callback that writes done/block-NNNN.h5. */
#ifndef NUPES_GATHER_H
#define NUPES_GATHER_H

#include <mpi.h>

#include "result.h"
#include "status.h"

/* Called on root for every block received (and for root's own blocks). */
typedef nq_status (*GatherSink)(const BlockResult *r, int group, void *ctx);

typedef struct {
    const ModelConfig *config;
    QuantSpec spec;
    unsigned skip_mask;
    int groups_pending; /* root: groups that have not sent their end message */
    int any_stopped;    /* root: some group ended because of a stop */
    GatherSink sink;
    void *ctx;
} Gather;

void gather_init(Gather *g, const ModelConfig *c, QuantSpec spec, unsigned skip_mask,
                 int n_groups, GatherSink sink, void *ctx);

/* Group leader (not root): sends a finished block. Root: passes it to the sink directly. */
nq_status gather_send_block(Gather *g, const BlockResult *r, int group);
/* Group leader: this group has no more blocks (stopped = 1 if it stopped on a signal). */
nq_status gather_send_end(Gather *g, int group, int stopped);

/* Any rank: a progress line for root to print (root prints it at once, others send it). */
void gather_note(Gather *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Root: receives whatever has arrived (non-blocking). Returns the first sink error. */
nq_status gather_poll(Gather *g);
/* Root: 1 while some group has not sent its end message. */
int gather_pending(const Gather *g);

#endif
