/* Stopping cleanly on SIGTERM, SIGINT or SIGUSR1 (docs/design.md 6).
 *
 * A signal only sets a flag. Ranks learn of any rank's flag through a chain of
 * non-blocking all-reduces on a private copy of MPI_COMM_WORLD: each rank keeps one round
 * in flight and starts the next when it completes, so every rank hears of a stop within
 * about one iteration of the slowest rank, without ever waiting for the others. The same
 * rounds count the ranks that still have work, which tells everyone when the job is over.
 * Within a group the decision is made at one iteration for all D ranks by adding the flag to
 * the gradient all-reduce (see stop_group_agree). */
#ifndef NUPES_STOP_H
#define NUPES_STOP_H

#include <mpi.h>

/* Installs the handlers (SA_RESTART, so I/O is not interrupted). */
void stop_install_handlers(void);
/* 1 once this process received one of the signals. */
int stop_signalled(void);
/* The signal number received (0 if none), for messages. */
int stop_signal_number(void);
/* Collective on MPI_COMM_WORLD: the highest signal number any rank received (a rank that
 * stopped because another was signalled reports that rank's signal, not 0). */
int stop_agreed_signal(void);

typedef struct {
    MPI_Comm comm;
    MPI_Request request;
    int send[2]; /* {stop requested, still active} of this rank for the round in flight */
    int recv[2]; /* the sums of the last completed round */
    int in_flight;
    int stop;     /* some rank asked to stop (sticky) */
    int all_idle; /* a completed round had no active rank */
} StopAgreement;

void stop_agreement_init(StopAgreement *s);
/* Completes the round in flight if it is done and starts the next. active: this rank
 * still has work (a block to finish, results to receive). Returns s->stop. */
int stop_agreement_poll(StopAgreement *s, int active);
/* For a rank with no work left: keeps rounds going until every rank is idle. */
void stop_agreement_finish(StopAgreement *s);
void stop_agreement_free(StopAgreement *s);

#endif
