/* llama2.c's tokenizer.bin (docs/design.md 5.4): int32 max_token_length, then per token
 * {float32 score, int32 len, len bytes}. The file does not store its vocabulary size: the
 * model's is passed in and the file must hold exactly that many tokens.
 *
 * Encoding gives exactly llama2.c run.c's encode(): BOS, a dummy prefix " ", one token per
 * UTF-8 code point (bytes + 3 for code points not in the vocabulary), then repeatedly the
 * adjacent pair whose concatenation is the best-scoring token is merged (the leftmost one
 * on ties) until no pair merges. run.c rescans the whole sequence per merge (quadratic); a
 * heap of candidate pairs over a linked list makes the same choices in O(n log n), which
 * matters when a whole evaluation text is encoded at once. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

typedef struct {
    const char *str; /* NUL-terminated, len bytes */
    int len;
    int id;
} TokenIndex;

typedef struct {
    int max_token_length; /* from the header */
    int longest;          /* longest token actually present, bytes */
    char *strings;        /* arena: every token's bytes, NUL-terminated */
    const char **piece;   /* [V] into strings */
    int *length;          /* [V] */
    float *score;         /* [V] */
    TokenIndex *sorted;   /* [V] by (bytes, id), for the binary search */
    short *byte_value;    /* [V] 0..255 for "<0xNN>" tokens, else -1 */
    char byte_pieces[256][2];
} BinTokenizer;

/* ------------------------------------------------------------------ lookup */

static int index_compare(const void *pa, const void *pb) {
    TokenIndex const *a = pa, *b = pb;
    int const n = a->len < b->len ? a->len : b->len;
    int const c = memcmp(a->str, b->str, (size_t)n);
    if (c != 0) return c;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Id of the token whose bytes are s[0..len), the lowest id if several; -1 if none. */
static int lookup(const BinTokenizer *b, int vocab_size, const char *s, int len) {
    TokenIndex const key = {s, len, -1}; /* id -1 sorts before every equal string */
    int lo = 0, hi = vocab_size; /* first index whose entry is >= key */
    while (lo < hi) {
        int const mid = lo + (hi - lo) / 2;
        if (index_compare(&b->sorted[mid], &key) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < vocab_size && b->sorted[lo].len == len && memcmp(b->sorted[lo].str, s, (size_t)len) == 0)
        return b->sorted[lo].id;
    return -1;
}

/* ------------------------------------------------------------------ merge heap */

typedef struct {
    float score;  /* of the merged token */
    int left;     /* symbol positions (indices into the linked list) */
    int right;
    int left_tok; /* token ids when pushed: a later merge of either side makes it stale */
    int right_tok;
    int merged;   /* the merged token's id */
} Pair;

/* a goes before b: higher score first, then the leftmost (run.c keeps the first maximum). */
static int pair_before(const Pair *a, const Pair *b) {
    if (a->score != b->score) return a->score > b->score;
    return a->left < b->left;
}

static void heap_push(Pair *heap, int *n, Pair p) {
    int i = (*n)++;
    while (i > 0) {
        int const parent = (i - 1) / 2;
        if (!pair_before(&p, &heap[parent])) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = p;
}

static Pair heap_pop(Pair *heap, int *n) {
    Pair const top = heap[0];
    Pair const last = heap[--(*n)];
    int i = 0;
    for (;;) {
        int child = 2 * i + 1;
        if (child >= *n) break;
        if (child + 1 < *n && pair_before(&heap[child + 1], &heap[child])) child++;
        if (!pair_before(&heap[child], &last)) break;
        heap[i] = heap[child];
        i = child;
    }
    if (*n > 0) heap[i] = last;
    return top;
}

/* The symbols being merged: a doubly linked list over positions 0..n). */
typedef struct {
    int *tok, *prev, *next; /* [cap]; prev/next -1 at the ends, tok -1 once merged away */
    Pair *heap;             /* [3 cap]: n - 1 initial pairs + 2 per merge */
    int n_heap;
    char *concat;           /* [2 longest + 1] */
} MergeState;

/* Pushes the pair (i, j) if the concatenation of their tokens is a token run.c would merge
 * (its score beats run.c's starting best of -1e10). */
static void push_pair(const BinTokenizer *b, int V, MergeState *s, int i, int j) {
    if (i < 0 || j < 0) return;
    int const a = s->tok[i], c = s->tok[j];
    memcpy(s->concat, b->piece[a], (size_t)b->length[a]);
    memcpy(s->concat + b->length[a], b->piece[c], (size_t)b->length[c]);
    int const id = lookup(b, V, s->concat, b->length[a] + b->length[c]);
    if (id < 0 || !(b->score[id] > -1e10f)) return;
    Pair const p = {b->score[id], i, j, a, c, id};
    heap_push(s->heap, &s->n_heap, p);
}

static void merge_all(const BinTokenizer *b, int V, MergeState *s, int n) {
    for (int i = 0; i < n; i++) {
        s->prev[i] = i - 1;
        s->next[i] = i + 1 < n ? i + 1 : -1;
    }
    for (int i = 0; i + 1 < n; i++) push_pair(b, V, s, i, i + 1);
    while (s->n_heap > 0) {
        Pair const p = heap_pop(s->heap, &s->n_heap);
        if (s->tok[p.left] != p.left_tok || s->tok[p.right] != p.right_tok || s->next[p.left] != p.right)
            continue; /* stale: one side was merged since */
        s->tok[p.left] = p.merged;
        s->tok[p.right] = -1;
        int const after = s->next[p.right];
        s->next[p.left] = after;
        if (after >= 0) s->prev[after] = p.left;
        push_pair(b, V, s, s->prev[p.left], p.left);
        push_pair(b, V, s, p.left, after);
    }
}

/* ------------------------------------------------------------------ encode */

/* Appends the tokens of one code point cp[0..len): its token, or one byte token per byte. */
static nq_status push_code_point(const Tokenizer *t, const char *cp, int len, int *tok, int *n) {
    BinTokenizer const *b = t->backend;
    int const id = lookup(b, t->vocab_size, cp, len);
    if (id >= 0) {
        tok[(*n)++] = id;
        return NQ_OK;
    }
    for (int i = 0; i < len; i++) {
        int const byte_tok = (unsigned char)cp[i] + 3;
        if (byte_tok >= t->vocab_size)
            return nq_fail(NQ_ERR_INPUT, "%s: byte 0x%02X has no token (byte fallback id %d >= vocab_size %d)",
                           t->path, (unsigned char)cp[i], byte_tok, t->vocab_size);
        tok[(*n)++] = byte_tok;
    }
    return NQ_OK;
}

/* The symbols before merging: BOS, the dummy prefix, then the code points, like run.c. */
static nq_status initial_symbols(const Tokenizer *t, const char *text, size_t len, int bos,
                                 int *tok, int *n) {
    BinTokenizer const *b = t->backend;
    *n = 0;
    if (bos) tok[(*n)++] = TOKEN_BOS;
    if (len > 0) {
        int const space = lookup(b, t->vocab_size, " ", 1);
        tok[(*n)++] = space >= 0 ? space : ' ' + 3;
    }
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)text[i] & 0xC0) != 0x80) start = i; /* not a continuation byte */
        int const cp_len = (int)(i - start + 1);
        int const next_continues = i + 1 < len && ((unsigned char)text[i + 1] & 0xC0) == 0x80;
        if (next_continues && cp_len < 4) continue;
        nq_status const st = push_code_point(t, text + start, cp_len, tok, n);
        if (st != NQ_OK) return st;
        start = i + 1;
    }
    return NQ_OK;
}

static nq_status bin_encode(const Tokenizer *t, const char *text, size_t len, int bos, int eos,
                            int **tokens, size_t *n_tokens) {
    BinTokenizer const *b = t->backend;
    *tokens = NULL;
    *n_tokens = 0;
    if (len > (size_t)INT32_MAX / 4)
        return nq_fail(NQ_ERR_INPUT, "%s: text of %zu bytes is too long to encode at once", t->path, len);
    int const cap = (int)len + 3; /* BOS, prefix, at most one token per byte, EOS */
    nq_status st = NQ_OK;
    MergeState s = {0};
    int *out = NULL;
    s.tok = nq_calloc((size_t)cap, sizeof *s.tok, "tokens");
    s.prev = nq_calloc((size_t)cap, sizeof *s.prev, "token links");
    s.next = nq_calloc((size_t)cap, sizeof *s.next, "token links");
    s.heap = nq_calloc((size_t)cap * 3, sizeof *s.heap, "merge heap");
    s.concat = nq_calloc((size_t)b->longest * 2 + 1, 1, "merge buffer");
    out = nq_calloc((size_t)cap, sizeof *out, "tokens");
    if (!s.tok || !s.prev || !s.next || !s.heap || !s.concat || !out) {
        st = NQ_ERR_RUNTIME;
        goto cleanup;
    }
    int n = 0;
    st = initial_symbols(t, text, len, bos, s.tok, &n);
    if (st != NQ_OK) goto cleanup;
    merge_all(b, t->vocab_size, &s, n);
    int n_out = 0;
    for (int i = n > 0 ? 0 : -1; i >= 0; i = s.next[i]) out[n_out++] = s.tok[i];
    if (eos) out[n_out++] = TOKEN_EOS;
    *tokens = out;
    *n_tokens = (size_t)n_out;
    out = NULL;
cleanup:
    free(out);
    free(s.tok);
    free(s.prev);
    free(s.next);
    free(s.heap);
    free(s.concat);
    return st;
}

/* ------------------------------------------------------------------ decode */

static const char *bin_decode(const Tokenizer *t, int prev, int token) {
    BinTokenizer const *b = t->backend;
    if (b->byte_value[token] >= 0) return b->byte_pieces[b->byte_value[token]];
    const char *piece = b->piece[token];
    if (prev == TOKEN_BOS && piece[0] == ' ') piece++; /* the dummy prefix */
    return piece;
}

/* ------------------------------------------------------------------ open */

static void bin_free(Tokenizer *t) {
    BinTokenizer *b = t->backend;
    if (!b) return;
    free(b->strings);
    free(b->piece);
    free(b->length);
    free(b->score);
    free(b->sorted);
    free(b->byte_value);
    free(b);
    t->backend = NULL;
}

/* llama2.c's tokenizer.py wrote SentencePiece's pieces with "\xe2\x96\x81" replaced by ' '
 * and BOS/EOS as "\n<s>\n", "\n</s>\n": spelled back here. */
static char *bin_piece(const Tokenizer *t, int id, float *score, TokenKind *kind) {
    BinTokenizer const *b = t->backend;
    *score = b->score[id];
    if (id == TOKEN_BOS || id == TOKEN_EOS) {
        *kind = TOKEN_KIND_CONTROL;
        return strdup(id == TOKEN_BOS ? "<s>" : "</s>");
    }
    const char *p = b->piece[id];
    *kind = b->byte_value[id] >= 0 ? TOKEN_KIND_BYTE : strcmp(p, "<unk>") == 0 ? TOKEN_KIND_UNKNOWN : TOKEN_KIND_NORMAL;
    char *out = malloc((size_t)b->length[id] * 3 + 1);
    if (!out) return NULL;
    size_t n = 0;
    for (int i = 0; i < b->length[id]; i++) {
        if (p[i] == ' ') {
            memcpy(out + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            out[n++] = p[i];
        }
    }
    out[n] = '\0';
    return out;
}

static const TokenizerOps bin_ops = {bin_encode, bin_decode, bin_free, bin_piece, "llama2c"};

/* 0..255 when s[0..len) is exactly "<0xHH>", else -1. */
static short parse_byte_piece(const char *s, int len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int value = 0;
    for (int i = 3; i < 5; i++) {
        char const c = s[i];
        int const digit = c >= '0' && c <= '9' ? c - '0'
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (digit < 0) return -1;
        value = value * 16 + digit;
    }
    return (short)value;
}

static int32_t read_i32(const unsigned char *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Walks the token records from offset at: how many well-formed ones remain. */
static int count_records(const unsigned char *data, size_t size, size_t at) {
    int count = 0;
    while (size - at >= 8) {
        int32_t const len = read_i32(data + at + 4);
        if (len < 0 || (size_t)len > size - at - 8) return -1;
        at += 8 + (size_t)len;
        count++;
    }
    return at == size ? count : -1;
}

/* Checks every record and fills b->length, b->score and the string offsets (in bytes from
 * the arena start; turned into pointers once the arena exists). */
static nq_status scan_records(const unsigned char *data, size_t size, Tokenizer *t, size_t *arena_size,
                              size_t *end) {
    BinTokenizer *b = t->backend;
    size_t at = 4, arena = 0;
    for (int i = 0; i < t->vocab_size; i++) {
        if (size - at < 8)
            return nq_fail(NQ_ERR_INPUT, "%s: file ends at token %d, expected %d tokens (the model's vocab_size)",
                           t->path, i, t->vocab_size);
        int32_t const len = read_i32(data + at + 4);
        if (len < 0 || (size_t)len > size - at - 8)
            return nq_fail(NQ_ERR_INPUT, "%s: token %d has length %d, expected 0..%zu (bytes left in the file)",
                           t->path, i, len, size - at - 8);
        memcpy(&b->score[i], data + at, sizeof(float));
        b->length[i] = len;
        if (len > b->longest) b->longest = len;
        arena += (size_t)len + 1;
        at += 8 + (size_t)len;
    }
    *arena_size = arena;
    *end = at;
    return NQ_OK;
}

static nq_status check_file_end(const unsigned char *data, size_t size, size_t end, const Tokenizer *t) {
    if (end == size) return NQ_OK;
    int const more = count_records(data, size, end);
    if (more > 0)
        return nq_fail(NQ_ERR_INPUT, "%s: holds %d tokens, expected %d (the model's vocab_size)", t->path,
                       t->vocab_size + more, t->vocab_size);
    return nq_fail(NQ_ERR_INPUT, "%s: %zu bytes follow token %d, expected the file to end there (the model's vocab_size)",
                   t->path, size - end, t->vocab_size);
}

static nq_status build_tables(const unsigned char *data, Tokenizer *t, size_t arena_size) {
    BinTokenizer *b = t->backend;
    int const V = t->vocab_size;
    b->strings = nq_calloc(arena_size, 1, "token strings");
    b->piece = nq_calloc((size_t)V, sizeof *b->piece, "token pieces");
    b->sorted = nq_calloc((size_t)V, sizeof *b->sorted, "sorted vocabulary");
    b->byte_value = nq_calloc((size_t)V, sizeof *b->byte_value, "byte tokens");
    if (!b->strings || !b->piece || !b->sorted || !b->byte_value) return NQ_ERR_RUNTIME;
    size_t at = 4, arena = 0;
    for (int i = 0; i < V; i++) {
        memcpy(b->strings + arena, data + at + 8, (size_t)b->length[i]);
        b->piece[i] = b->strings + arena; /* NUL-terminated by calloc */
        b->sorted[i] = (TokenIndex){b->piece[i], b->length[i], i};
        b->byte_value[i] = parse_byte_piece(b->piece[i], b->length[i]);
        arena += (size_t)b->length[i] + 1;
        at += 8 + (size_t)b->length[i];
    }
    qsort(b->sorted, (size_t)V, sizeof *b->sorted, index_compare);
    for (int i = 0; i < 256; i++) {
        b->byte_pieces[i][0] = (char)i;
        b->byte_pieces[i][1] = '\0';
    }
    return NQ_OK;
}

nq_status tokenizer_bin_open(const unsigned char *data, size_t size, Tokenizer *t) {
    int const V = t->vocab_size;
    if (size < 4)
        return nq_fail(NQ_ERR_INPUT, "%s: file is %zu bytes, expected at least the 4-byte max_token_length",
                       t->path, size);
    BinTokenizer *b = nq_calloc(1, sizeof *b, "tokenizer");
    if (!b) return NQ_ERR_RUNTIME;
    t->backend = b;
    t->ops = &bin_ops;
    nq_status st = NQ_OK;
    b->max_token_length = read_i32(data);
    if (b->max_token_length <= 0) {
        st = nq_fail(NQ_ERR_INPUT, "%s: header max_token_length = %d, expected > 0", t->path, b->max_token_length);
        goto cleanup;
    }
    b->length = nq_calloc((size_t)V, sizeof *b->length, "token lengths");
    b->score = nq_calloc((size_t)V, sizeof *b->score, "token scores");
    if (!b->length || !b->score) {
        st = NQ_ERR_RUNTIME;
        goto cleanup;
    }
    size_t arena_size = 0, end = 0;
    st = scan_records(data, size, t, &arena_size, &end);
    if (st == NQ_OK) st = check_file_end(data, size, end, t);
    if (st == NQ_OK) st = build_tables(data, t, arena_size);
cleanup:
    if (st != NQ_OK) {
        bin_free(t);
        t->ops = NULL;
    }
    return st;
}
