/* Wall time for measuring durations: seconds on CLOCK_MONOTONIC (never steps back). */
#ifndef NUPES_CLOCK_H
#define NUPES_CLOCK_H

double nq_seconds(void);

#endif
