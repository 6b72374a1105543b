/* checkpoint_losses CKPT [--allow-worse]
 *
 * Prints every block's loss_init and loss_final from a quantized checkpoint, one line
 * per block ("block 3 loss_init 2.2e-02 loss_final 1.1e-02 ratio 0.495"), after checking
 * that the checkpoint is complete. Exit 1 when a loss is not finite or positive, or (unless
 * --allow-worse) when a block's reconstruction did not lower its loss; 2 on bad input. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"

int main(int argc, char **argv) {
    int const allow_worse = argc == 3 && strcmp(argv[2], "--allow-worse") == 0;
    if (argc != 2 && !allow_worse) {
        fprintf(stderr, "usage: checkpoint_losses CKPT [--allow-worse]\n");
        return 2;
    }
    CheckpointReader *r = NULL;
    if (checkpoint_open(argv[1], &r) != NQ_OK) {
        fprintf(stderr, "checkpoint_losses: %s\n", nq_last_error());
        return 2;
    }
    const CheckpointInfo *info = checkpoint_info(r);
    int rc = strcmp(info->status, "complete") == 0 ? 0 : 1;
    if (rc) fprintf(stderr, "checkpoint_losses: %s: status = \"%s\", expected \"complete\"\n", argv[1], info->status);
    for (int l = 0; l < info->config.n_layers && rc != 2; l++) {
        BlockResult b = {0};
        if (checkpoint_read_block(r, l, &b, NULL, NULL) != NQ_OK) {
            fprintf(stderr, "checkpoint_losses: block %d: %s\n", l, nq_last_error());
            rc = 2;
            break;
        }
        int const sane = isfinite(b.loss_init) && isfinite(b.loss_final) && b.loss_init > 0 && b.loss_final > 0;
        int const better = b.loss_final < b.loss_init;
        printf("block %d loss_init %.6e loss_final %.6e ratio %.4f%s\n", l, b.loss_init, b.loss_final,
               sane ? b.loss_final / b.loss_init : NAN, !sane ? " NOT FINITE/POSITIVE" : better ? "" : " NOT LOWER");
        if (!sane || (!better && !allow_worse)) rc = 1;
        block_result_free(&b);
    }
    checkpoint_close(r);
    return rc;
}
