// tests/slurm/mpi_stopper.c: a stand-in for nupes-mpi in the SLURM tests, compiled by
// tests/test_slurm_*.sh with mpicc (not part of the CMake build).
//
// Every rank prints "rank R of N restart C" and "ready" once its signal handlers are in
// place. With --hello, or when SLURM_RESTART_COUNT >= 1 (the job was requeued), it exits 0
// at once. Otherwise it runs until SIGTERM, SIGINT or SIGUSR1 reaches any rank; the ranks
// agree on the flag with an all-reduce every 50 ms (as nupes-mpi does), print
// "rank R stopped by signal S", take STOPPER_SAVE_SECONDS (default 0) to "save their
// state", print "rank R saved" and exit 75. After 120 s without a signal they exit 3.
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) { stop_signal = sig; }

static void install_handlers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGUSR1, &sa, NULL);
}

// Waits until some rank has seen a signal; returns the largest signal number, 0 on timeout.
static int wait_for_any_stop(int seconds) {
  const struct timespec tick = {0, 50 * 1000 * 1000};
  for (int i = 0; i < seconds * 20; i++) {
    int mine = stop_signal, any = 0;
    MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any) return any;
    nanosleep(&tick, NULL);
  }
  return 0;
}

int main(int argc, char **argv) {
  install_handlers();
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const char *restart_env = getenv("SLURM_RESTART_COUNT");
  int restart = restart_env ? atoi(restart_env) : 0;
  int hello = argc > 1 && strcmp(argv[1], "--hello") == 0;
  printf("rank %d of %d restart %d\n", rank, size, restart);
  printf("rank %d ready\n", rank);
  fflush(stdout);
  int code = 0;
  if (!hello && restart == 0) {
    int sig = wait_for_any_stop(120);
    if (sig) printf("rank %d stopped by signal %d\n", rank, sig);
    else printf("rank %d: no signal within 120 s\n", rank);
    fflush(stdout);
    if (sig) {
      const char *save_env = getenv("STOPPER_SAVE_SECONDS");
      struct timespec save = {save_env ? atoi(save_env) : 0, 0};
      while (nanosleep(&save, &save) != 0) {}  // a second signal must not cut it short
      printf("rank %d saved\n", rank);
      fflush(stdout);
    }
    code = sig ? 75 : 3;
  }
  MPI_Finalize();
  return code;
}
