#include "stop.h"

#include <signal.h>
#include <string.h>
#include <time.h>

#include "mpi_check.h"

static volatile sig_atomic_t signal_received;

static void on_signal(int sig) { signal_received = sig; }

void stop_install_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

int stop_signalled(void) { return signal_received != 0; }
int stop_signal_number(void) { return (int)signal_received; }

int stop_agreed_signal(void) {
    int mine = (int)signal_received, any = 0;
    MPI_CHECK(MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    return any;
}

void stop_agreement_init(StopAgreement *s) {
    memset(s, 0, sizeof *s);
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &s->comm));
    s->request = MPI_REQUEST_NULL;
}

static void start_round(StopAgreement *s, int active) {
    s->send[0] = stop_signalled();
    s->send[1] = active ? 1 : 0;
    MPI_CHECK(MPI_Iallreduce(s->send, s->recv, 2, MPI_INT, MPI_SUM, s->comm, &s->request));
    s->in_flight = 1;
}

int stop_agreement_poll(StopAgreement *s, int active) {
    if (s->all_idle) return s->stop;
    if (s->in_flight) {
        int done = 0;
        MPI_CHECK(MPI_Test(&s->request, &done, MPI_STATUS_IGNORE));
        if (!done) return s->stop;
        s->in_flight = 0;
        if (s->recv[0] > 0) s->stop = 1;
        if (s->recv[1] == 0) {
            s->all_idle = 1;
            return s->stop;
        }
    }
    start_round(s, active);
    return s->stop;
}

void stop_agreement_finish(StopAgreement *s) {
    struct timespec const pause = {0, 2 * 1000 * 1000}; /* 2 ms between polls */
    while (!s->all_idle) {
        stop_agreement_poll(s, 0);
        if (!s->all_idle) nanosleep(&pause, NULL);
    }
}

void stop_agreement_free(StopAgreement *s) {
    if (s->in_flight) MPI_CHECK(MPI_Wait(&s->request, MPI_STATUS_IGNORE));
    if (s->comm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&s->comm));
}
