/* progress.log, read back line by line for inspect (the writer: io/progress_log.h). */
#include "run_progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "read_file.h"

static void clear_(RunProgress *p) {
    run_progress_free(p);
    memset(p, 0, sizeof *p);
}

/* " group 0: 0 2 4; group 1: 1 3;" */
static void parse_schedule_(RunProgress *p, const char *s) {
    while ((s = strstr(s, "group ")) != NULL && p->n_groups < RUN_PROGRESS_MAX_GROUPS) {
        char *end = NULL;
        strtol(s + 6, &end, 10);
        if (!end || *end != ':') break;
        s = end + 1;
        size_t const len = strcspn(s, ";");
        int *blocks = calloc(len / 2 + 1, sizeof(int));
        if (!blocks) return;
        int n = 0;
        const char *q = s;
        while (q < s + len) {
            long const v = strtol(q, &end, 10);
            if (end == q) break;
            blocks[n++] = (int)v;
            q = end;
        }
        p->group_blocks[p->n_groups] = blocks;
        p->group_count[p->n_groups++] = n;
        s += len;
    }
}

void run_progress_read(const char *path, RunProgress *out) {
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    if (read_file(path, "progress log", &text, &len) != NQ_OK) {
        nq_clear_error();
        return;
    }
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        const char *msg = strchr(line, ' '); /* after the timestamp */
        msg = msg ? msg + 1 : line;
        if (strncmp(msg, "start:", 6) == 0) {
            clear_(out);
            out->found = 1;
            snprintf(out->start_time, sizeof out->start_time, "%.*s", (int)(msg - line - 1 > 0 ? msg - line - 1 : 0), line);
        } else if (strncmp(msg, "capture done", 12) == 0) {
            out->capture_done = 1;
        } else if (strncmp(msg, "schedule:", 9) == 0) {
            parse_schedule_(out, msg + 9);
        } else if (strncmp(msg, "checkpoint ", 11) == 0 && strstr(msg, " written")) {
            out->checkpoint_written = 1;
        } else if (strncmp(msg, "stopped", 7) == 0) {
            out->stopped = 1;
        } else if (strncmp(msg, "block ", 6) == 0 && strstr(msg, " done ")) {
            const char *in = strstr(msg, " in ");
            out->blocks_done_here++;
            if (in) out->block_seconds += atof(in + 4);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
}

void run_progress_free(RunProgress *p) {
    for (int g = 0; g < p->n_groups; g++) free(p->group_blocks[g]);
    p->n_groups = 0;
}
