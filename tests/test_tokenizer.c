/* The llama2.c tokenizer: the oracle's tokens (llama2.c run.c encode), an independent
 * quadratic re-implementation of run.c's merge loop on other texts, decode round trips,
 * and refused files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "status.h"
#include "text_windows.h"
#include "tokenizer.h"

static char *data_path(const char *name) {
    const char *dir = getenv("NUPES_DATA");
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : "data", name);
    return buf;
}

static unsigned char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long const n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static Tokenizer *open_tok512(void) {
    Tokenizer *t = NULL;
    nq_status const st = tokenizer_open(data_path("tok512.bin"), 512, &t);
    if (st != NQ_OK) fprintf(stderr, "%s\n", nq_last_error());
    assert_int_equal(st, NQ_OK);
    return t;
}

/* ------------------------------------------------------------------ oracle tokens */

static void test_oracle_tokens(void **state) {
    (void)state;
    size_t ref_size = 0, texts_size = 0;
    unsigned char *ref = slurp(data_path("reference/stories260K-ref-logits.bin"), &ref_size);
    char *texts = (char *)slurp(data_path("reference/stories260K-ref-texts.txt"), &texts_size);
    int32_t hdr[4];
    memcpy(hdr, ref, sizeof hdr);
    assert_int_equal(hdr[0], 0x4e555046);
    int const nseq = hdr[1], T = hdr[2], V = hdr[3];
    assert_true(nseq >= 1 && T >= 2 && V == 512);
    Tokenizer *t = open_tok512();
    size_t text_at = 0;
    for (int s = 0; s < nseq; s++) {
        assert_true(text_at < texts_size);
        const char *text = texts + text_at;
        size_t const len = strnlen(text, texts_size - text_at);
        text_at += len + 1;
        const unsigned char *seq = ref + 16 + (size_t)s * ((size_t)T * 4 + (size_t)T * V * 4);
        int32_t *want = malloc((size_t)T * sizeof *want);
        memcpy(want, seq, (size_t)T * sizeof *want);
        int *got = NULL;
        size_t n = 0;
        assert_int_equal(tokenizer_encode(t, text, len, 1, 0, &got, &n), NQ_OK);
        /* The oracle keeps the first T tokens of each text: a text has at least T, and
         * fewer tokens than bytes + 2 (BOS and the dummy prefix). */
        assert_true(n >= (size_t)T);
        assert_true(n <= len + 2);
        int mismatches = 0;
        for (int i = 0; i < T; i++) mismatches += got[i] != want[i];
        printf("sequence %d: %zu bytes -> %zu tokens, first %d match the oracle: %s\n", s, len, n, T,
               mismatches ? "NO" : "yes");
        assert_int_equal(mismatches, 0);
        free(got);
        free(want);
    }
    tokenizer_free(t);
    free(texts);
    free(ref);
}

/* ------------------------------------------------------------------ naive run.c encode */

typedef struct {
    int V;
    char **piece;
    float *score;
} NaiveVocab;

static NaiveVocab naive_vocab_load(const char *path, int V) {
    size_t size = 0;
    unsigned char *data = slurp(path, &size);
    NaiveVocab v = {V, calloc((size_t)V, sizeof(char *)), calloc((size_t)V, sizeof(float))};
    size_t at = 4;
    for (int i = 0; i < V; i++) {
        int32_t len;
        memcpy(&v.score[i], data + at, 4);
        memcpy(&len, data + at + 4, 4);
        v.piece[i] = calloc((size_t)len + 1, 1);
        memcpy(v.piece[i], data + at + 8, (size_t)len);
        at += 8 + (size_t)len;
    }
    assert_int_equal(at, size);
    free(data);
    return v;
}

static void naive_vocab_free(NaiveVocab *v) {
    for (int i = 0; i < v->V; i++) free(v->piece[i]);
    free(v->piece);
    free(v->score);
}

static int naive_lookup(const NaiveVocab *v, const char *s) {
    for (int i = 0; i < v->V; i++)
        if (strcmp(v->piece[i], s) == 0) return i;
    return -1;
}

/* run.c's encode, written out the slow way: linear lookups and a full rescan per merge. */
static int naive_encode(const NaiveVocab *v, const char *text, int *tokens) {
    int n = 0;
    tokens[n++] = 1;
    if (text[0]) tokens[n++] = naive_lookup(v, " ");
    char buf[8];
    int blen = 0;
    for (const char *c = text; *c; c++) {
        if ((*c & 0xC0) != 0x80) blen = 0;
        buf[blen++] = *c;
        buf[blen] = 0;
        if ((c[1] & 0xC0) == 0x80 && blen < 4) continue;
        int const id = naive_lookup(v, buf);
        if (id >= 0) tokens[n++] = id;
        else
            for (int i = 0; i < blen; i++) tokens[n++] = (unsigned char)buf[i] + 3;
        blen = 0;
    }
    char merged[256];
    for (;;) {
        float best = -1e10f;
        int best_id = -1, best_i = -1;
        for (int i = 0; i + 1 < n; i++) {
            snprintf(merged, sizeof merged, "%s%s", v->piece[tokens[i]], v->piece[tokens[i + 1]]);
            int const id = naive_lookup(v, merged);
            if (id >= 0 && v->score[id] > best) {
                best = v->score[id];
                best_id = id;
                best_i = i;
            }
        }
        if (best_i < 0) break;
        tokens[best_i] = best_id;
        memmove(tokens + best_i + 1, tokens + best_i + 2, (size_t)(n - best_i - 2) * sizeof *tokens);
        n--;
    }
    return n;
}

static void check_against_naive(const Tokenizer *t, const NaiveVocab *v, const char *text) {
    size_t const len = strlen(text);
    int *want = malloc((len + 3) * sizeof *want);
    int const n_want = naive_encode(v, text, want);
    int *got = NULL;
    size_t n_got = 0;
    assert_int_equal(tokenizer_encode(t, text, len, 1, 0, &got, &n_got), NQ_OK);
    assert_int_equal(n_got, (size_t)n_want);
    assert_memory_equal(got, want, (size_t)n_want * sizeof *want);
    free(got);
    free(want);
}

static void test_matches_naive_run_c(void **state) {
    (void)state;
    Tokenizer *t = open_tok512();
    NaiveVocab v = naive_vocab_load(data_path("tok512.bin"), 512);
    size_t size = 0;
    char *story = (char *)slurp(data_path("tinystories-sample.txt"), &size);
    story[size < 1500 ? size : 1500] = 0; /* the naive loop is quadratic */
    check_against_naive(t, &v, story);
    check_against_naive(t, &v, "a");
    check_against_naive(t, &v, "  double  spaces\n\nand newlines\t");
    check_against_naive(t, &v, "caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac 5 \xf0\x9f\x98\x80!"); /* byte fallback */
    /* Random printable and UTF-8 strings: ties and odd merges show up here. */
    unsigned seed = 12345;
    char text[200];
    for (int trial = 0; trial < 200; trial++) {
        int const len = 1 + (int)(seed % 150);
        for (int i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned const r = (seed >> 16) % 100;
            text[i] = r < 70 ? "the cat sat on a mat, said Lily. "[r % 33] : r < 95 ? (char)(' ' + r % 90) : "\xC3\xA9\xE2\x82\xAC"[r % 5];
        }
        text[len] = 0;
        check_against_naive(t, &v, text);
    }
    printf("heap encode == quadratic run.c encode on 204 texts\n");
    naive_vocab_free(&v);
    free(story);
    tokenizer_free(t);
}

/* ------------------------------------------------------------------ decode */

static void check_round_trip(const Tokenizer *t, const char *text) {
    int *tok = NULL;
    size_t n = 0;
    assert_int_equal(tokenizer_encode(t, text, strlen(text), 1, 1, &tok, &n), NQ_OK);
    assert_int_equal(tok[0], TOKEN_BOS);
    assert_int_equal(tok[n - 1], TOKEN_EOS);
    char out[4096] = {0};
    for (size_t i = 1; i + 1 < n; i++) strcat(out, tokenizer_decode(t, tok[i - 1], tok[i]));
    assert_string_equal(out, text);
    free(tok);
}

static void test_decode_round_trip(void **state) {
    (void)state;
    Tokenizer *t = open_tok512();
    check_round_trip(t, "Once upon a time, there was a little girl named Lily.");
    check_round_trip(t, "She said, \"Wow!\"\nThe end.");
    check_round_trip(t, "na\xc3\xafve \xe2\x82\xac\xf0\x9f\x98\x80"); /* through byte tokens */
    assert_string_equal(tokenizer_decode(t, 0, 3 + 'A'), "A");    /* <0x41> gives the byte */
    assert_string_equal(tokenizer_decode(t, 0, 3 + '\n'), "\n");
    assert_int_equal(tokenizer_vocab_size(t), 512);
    int *tok = NULL;
    size_t n = 0;
    assert_int_equal(tokenizer_encode(t, "", 0, 1, 0, &tok, &n), NQ_OK); /* no dummy prefix */
    assert_int_equal(n, 1);
    assert_int_equal(tok[0], TOKEN_BOS);
    free(tok);
    tokenizer_free(t);
}

/* ------------------------------------------------------------------ refused files */

static void expect_refused(const char *path, int V, const char *fragment) {
    Tokenizer *t = (Tokenizer *)&t; /* must be reset to NULL */
    nq_clear_error();
    assert_int_equal(tokenizer_open(path, V, &t), NQ_ERR_INPUT);
    assert_null(t);
    printf("refused: %s\n", nq_last_error());
    assert_non_null(strstr(nq_last_error(), path));
    assert_non_null(strstr(nq_last_error(), fragment));
}

static void write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
}

static void test_refused_files(void **state) {
    (void)state;
    expect_refused(data_path("llama2-tokenizer/tokenizer.bin"), 512, "holds 32000 tokens, expected 512");
    expect_refused(data_path("tok512.bin"), 600, "file ends at token 512, expected 600");
    /* A SentencePiece model is never read as a tokenizer.bin; of another vocabulary, refused. */
    expect_refused(data_path("llama2-tokenizer/tokenizer.model"), 512, "");
    expect_refused("/nonexistent/tok.bin", 512, "cannot open tokenizer");
    size_t size = 0;
    unsigned char *data = slurp(data_path("tok512.bin"), &size);
    char tmp[] = "/tmp/nupes-tok-XXXXXX";
    int const fd = mkstemp(tmp);
    assert_true(fd >= 0);
    close(fd);
    write_file(tmp, data, 1000); /* cut inside a record */
    expect_refused(tmp, 512, "expected 512 tokens");
    write_file(tmp, data, 2);
    expect_refused(tmp, 512, "expected at least the 4-byte max_token_length");
    int32_t bad_len = -5;
    memcpy(data + 4 + 4, &bad_len, 4); /* token 0's length */
    write_file(tmp, data, size);
    expect_refused(tmp, 512, "token 0 has length -5");
    unlink(tmp);
    free(data);
}

/* ------------------------------------------------------------------ text windows */

static void test_text_windows(void **state) {
    (void)state;
    Tokenizer *t = open_tok512();
    const char *text_path = data_path("tinystories-sample.txt");
    int *all = NULL;
    size_t n_all = 0;
    assert_int_equal(text_encode_file(text_path, t, &all, &n_all), NQ_OK);
    assert_int_equal(all[0], TOKEN_BOS);
    for (size_t i = 1; i < n_all; i++) assert_int_not_equal(all[i], TOKEN_BOS);
    int T = 64, *win = NULL, n_win = 0;
    assert_int_equal(text_windows_load(text_path, t, T, 0, &win, &n_win), NQ_OK);
    assert_int_equal(n_win, (int)(n_all / (size_t)T));
    assert_memory_equal(win, all, (size_t)n_win * T * sizeof *win); /* consecutive, from BOS */
    free(win);
    assert_int_equal(text_windows_load(text_path, t, T, 3, &win, &n_win), NQ_OK);
    assert_int_equal(n_win, 3);
    free(win);
    nq_clear_error();
    assert_int_equal(text_windows_load(text_path, t, (int)n_all + 1, 0, &win, &n_win), NQ_ERR_INPUT);
    assert_null(win);
    char want[256];
    snprintf(want, sizeof want, "%zu tokens, fewer than one sequence of %zu", n_all, n_all + 1);
    assert_non_null(strstr(nq_last_error(), want));
    char tmp[] = "/tmp/nupes-text-XXXXXX";
    int const fd = mkstemp(tmp);
    close(fd);
    nq_clear_error();
    assert_int_equal(text_windows_load(tmp, t, T, 0, &win, &n_win), NQ_ERR_INPUT);
    assert_non_null(strstr(nq_last_error(), "empty"));
    unlink(tmp);
    nq_clear_error();
    assert_int_equal(text_windows_load("/nonexistent.txt", t, T, 0, &win, &n_win), NQ_ERR_INPUT);
    assert_non_null(strstr(nq_last_error(), "/nonexistent.txt"));
    free(all);
    tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oracle_tokens),     cmocka_unit_test(test_matches_naive_run_c),
        cmocka_unit_test(test_decode_round_trip), cmocka_unit_test(test_refused_files),
        cmocka_unit_test(test_text_windows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
