#include "gather.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mpi_check.h"

enum { TAG_BLOCK_HEADER = 101, TAG_TENSOR = 102, TAG_GROUP_END = 103, TAG_NOTE = 104 };

#define NOTE_MAX 256

/* MPI counts are int: large tensors go in pieces of at most this many elements. */
#define MAX_MESSAGE_ELEMENTS (1 << 28)

typedef struct {
    double block, group, loss_init, loss_final, seconds;
} BlockHeader;

void gather_init(Gather *g, const ModelConfig *c, QuantSpec spec, unsigned skip_mask,
                 int n_groups, GatherSink sink, void *ctx) {
    memset(g, 0, sizeof *g);
    g->config = c;
    g->spec = spec;
    g->skip_mask = skip_mask;
    g->groups_pending = n_groups;
    g->sink = sink;
    g->ctx = ctx;
}

static void send_array(const void *data, size_t count, MPI_Datatype type, size_t elem_size) {
    const char *p = data;
    while (count > 0) {
        int const n = count > MAX_MESSAGE_ELEMENTS ? MAX_MESSAGE_ELEMENTS : (int)count;
        MPI_CHECK(MPI_Send(p, n, type, 0, TAG_TENSOR, MPI_COMM_WORLD));
        p += (size_t)n * elem_size;
        count -= (size_t)n;
    }
}

static void recv_array(void *data, size_t count, MPI_Datatype type, size_t elem_size, int source) {
    char *p = data;
    while (count > 0) {
        int const n = count > MAX_MESSAGE_ELEMENTS ? MAX_MESSAGE_ELEMENTS : (int)count;
        MPI_CHECK(MPI_Recv(p, n, type, source, TAG_TENSOR, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        p += (size_t)n * elem_size;
        count -= (size_t)n;
    }
}

/* The MPI type of a stored array's elements (fp16 travels as its 16-bit patterns). */
static MPI_Datatype mpi_type(QArrayType t) {
    return t == QA_I8 ? MPI_INT8_T : t == QA_F16 ? MPI_UINT16_T : MPI_FLOAT;
}

/* The same walk over a result's arrays for sending and receiving: every array its
 * quantizer describes (both sides allocate them with block_result_alloc), in order. */
static void transfer_tensors(BlockResult *r, int source) {
    for (int i = 0; i < N_MATS; i++) {
        QuantMatrix *q = &r->mat[i];
        size_t const n = (size_t)q->shape.rows * q->shape.cols;
        if (!q->quantized) {
            if (source < 0) send_array(q->weight, n, MPI_FLOAT, sizeof(float));
            else recv_array(q->weight, n, MPI_FLOAT, sizeof(float), source);
            continue;
        }
        for (int k = 0; k < q->n_arrays; k++) {
            QArrayType const t = q->desc[k].type;
            if (source < 0) send_array(q->array[k], qarray_count(&q->desc[k]), mpi_type(t), qarray_type_size(t));
            else recv_array(q->array[k], qarray_count(&q->desc[k]), mpi_type(t), qarray_type_size(t), source);
        }
    }
}

nq_status gather_send_block(Gather *g, const BlockResult *r, int group) {
    int rank = 0;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    if (rank == 0) return g->sink(r, group, g->ctx);
    BlockHeader const h = {r->block, group, r->loss_init, r->loss_final, r->seconds};
    MPI_CHECK(MPI_Send(&h, 5, MPI_DOUBLE, 0, TAG_BLOCK_HEADER, MPI_COMM_WORLD));
    transfer_tensors((BlockResult *)r, -1);
    return NQ_OK;
}

nq_status gather_send_end(Gather *g, int group, int stopped) {
    int rank = 0;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    if (rank == 0) {
        g->groups_pending--;
        g->any_stopped |= stopped;
        return NQ_OK;
    }
    int const msg[2] = {group, stopped};
    MPI_CHECK(MPI_Send(msg, 2, MPI_INT, 0, TAG_GROUP_END, MPI_COMM_WORLD));
    return NQ_OK;
}

void gather_note(Gather *g, const char *fmt, ...) {
    (void)g;
    char note[NOTE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(note, sizeof note, fmt, ap);
    va_end(ap);
    int rank = 0;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    if (rank == 0) {
        printf("%s\n", note);
        fflush(stdout);
        return;
    }
    MPI_CHECK(MPI_Send(note, (int)strlen(note) + 1, MPI_CHAR, 0, TAG_NOTE, MPI_COMM_WORLD));
}

static nq_status receive_block(Gather *g, int source) {
    BlockHeader h;
    MPI_CHECK(MPI_Recv(&h, 5, MPI_DOUBLE, source, TAG_BLOCK_HEADER, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    BlockResult r;
    if (block_result_alloc(&r, g->config, g->spec, (int)h.block, g->skip_mask) != NQ_OK)
        return NQ_ERR_RUNTIME;
    transfer_tensors(&r, source);
    r.loss_init = (float)h.loss_init;
    r.loss_final = (float)h.loss_final;
    r.seconds = h.seconds;
    nq_status const st = g->sink(&r, (int)h.group, g->ctx);
    block_result_free(&r);
    return st;
}

nq_status gather_poll(Gather *g) {
    for (;;) {
        int flag = 0;
        MPI_Status status;
        MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &status));
        if (!flag) return NQ_OK;
        if (status.MPI_TAG == TAG_BLOCK_HEADER) {
            nq_status const st = receive_block(g, status.MPI_SOURCE);
            if (st != NQ_OK) return st;
        } else if (status.MPI_TAG == TAG_NOTE) {
            char note[NOTE_MAX];
            MPI_CHECK(MPI_Recv(note, NOTE_MAX, MPI_CHAR, status.MPI_SOURCE, TAG_NOTE, MPI_COMM_WORLD,
                               MPI_STATUS_IGNORE));
            note[NOTE_MAX - 1] = '\0';
            printf("%s\n", note);
            fflush(stdout);
        } else if (status.MPI_TAG == TAG_GROUP_END) {
            int msg[2];
            MPI_CHECK(MPI_Recv(msg, 2, MPI_INT, status.MPI_SOURCE, TAG_GROUP_END, MPI_COMM_WORLD,
                               MPI_STATUS_IGNORE));
            g->groups_pending--;
            g->any_stopped |= msg[1];
        } else {
            return nq_fail(NQ_ERR_RUNTIME, "root received an unexpected message (tag %d from rank %d)",
                           status.MPI_TAG, status.MPI_SOURCE);
        }
    }
}

int gather_pending(const Gather *g) { return g->groups_pending > 0; }
