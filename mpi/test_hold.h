/* A test-only hook that holds a rank at a named point of the job until the test releases
 * it, so that stop and kill tests act at a phase they name instead of sleeping and hoping
 * to land in it (a machine under load would pass through the phase, or never reach it).
 *
 *   NUPES_TEST_HOLD="capture-level,state-saved:0001"  points to hold at (comma-separated)
 *   NUPES_TEST_HOLD_DIR=/tmp/dir                       where the hook and the test meet
 *
 * A rank reaching a listed point (the first time only) creates DIR/held.POINT.RANK and
 * waits until DIR/release.POINT or DIR/release.all exists, or until the rank itself is
 * signalled to stop (stop.h), then goes on. Without NUPES_TEST_HOLD it costs a getenv. */
#ifndef NUPES_TEST_HOLD_H
#define NUPES_TEST_HOLD_H

/* The points: "capture-level" (capture: the first block's output level written),
 * "state-saved:NNNN" (the group leader saved block NNNN's state once), "done:NNNN" (root
 * wrote block NNNN's done file), "iteration:NNNN:S" (inside block NNNN's forward or backward
 * pass of step S, where a stop signal abandons the iteration), "checkpoint:NNNN" (root, about to add block NNNN to the
 * checkpoint), "waiting:NNNN" (the group leader of block NNNN starts waiting for its
 * quantized inputs, pipelined and sequential modes). */
void test_hold(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
