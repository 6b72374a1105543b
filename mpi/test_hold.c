#include "test_hold.h"

#include <fcntl.h>
#include <limits.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mpi_check.h"
#include "stop.h"

#define MAX_FIRED 64

/* Points that have held once in this process (a point holds only the first time). */
static char fired[MAX_FIRED][64];
static int n_fired;

static int listed(const char *list, const char *point) {
    size_t const n = strlen(point);
    for (const char *p = list; (p = strstr(p, point)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
    return 0;
}

static int exists(const char *dir, const char *name) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

void test_hold(const char *fmt, ...) {
    const char *list = getenv("NUPES_TEST_HOLD"), *dir = getenv("NUPES_TEST_HOLD_DIR");
    if (!list || !dir || !*list) return;
    char point[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(point, sizeof point, fmt, ap);
    va_end(ap);
    if (!listed(list, point)) return;
    for (int i = 0; i < n_fired; i++)
        if (strcmp(fired[i], point) == 0) return;
    if (n_fired < MAX_FIRED) snprintf(fired[n_fired++], sizeof fired[0], "%s", point);

    int rank = 0, initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    char held[PATH_MAX], release[96];
    snprintf(held, sizeof held, "%s/held.%s.%d", dir, point, rank);
    snprintf(release, sizeof release, "release.%s", point);
    int const fd = open(held, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fprintf(stderr, "nupes-mpi: test hold %s: cannot create %s\n", point, held);
        return;
    }
    close(fd);
    struct timespec const pause = {0, 5 * 1000 * 1000};
    while (!stop_signalled() && !exists(dir, release) && !exists(dir, "release.all"))
        nanosleep(&pause, NULL);
}
