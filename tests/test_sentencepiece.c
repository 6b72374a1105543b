/* The SentencePiece tokenizer against the llama2.c tokenizer of the same vocabulary.
 *
 * data/llama2-tokenizer/tokenizer.model (SentencePiece) and tokenizer.bin (llama2.c format,
 * the same 32000 pieces) must give identical ids through tokenizer_open on real text, and
 * decode back to the same text. Files that are not SentencePiece models are refused with
 * one-line errors naming the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sentencepiece_c.h"
#include "tokenizer.h"

enum { LLAMA_VOCAB = 32000 };

static char *data_path(const char *name) {
    static char paths[4][4096];
    static int next;
    char *out = paths[next++ % 4];
    const char *dir = getenv("NUPES_DATA");
    snprintf(out, sizeof paths[0], "%s/%s", dir ? dir : "data", name);
    return out;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long const size = ftell(f);
    assert_true(size >= 0);
    rewind(f);
    char *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    buf[size] = '\0';
    *len = (size_t)size;
    return buf;
}

typedef struct {
    Tokenizer *sp;  /* tokenizer.model */
    Tokenizer *bin; /* tokenizer.bin */
} Pair;

static int setup(void **state) {
    static Pair pair;
    nq_clear_error();
    if (tokenizer_open(data_path("llama2-tokenizer/tokenizer.model"), LLAMA_VOCAB, &pair.sp) != NQ_OK ||
        tokenizer_open(data_path("llama2-tokenizer/tokenizer.bin"), LLAMA_VOCAB, &pair.bin) != NQ_OK) {
        fprintf(stderr, "setup: %s\n", nq_last_error());
        return -1;
    }
    *state = &pair;
    return 0;
}

static int teardown(void **state) {
    Pair *p = *state;
    tokenizer_free(p->sp);
    tokenizer_free(p->bin);
    return 0;
}

/* Concatenated decode of tokens[1..n) (tokens[0] is BOS). malloc'd. */
static char *decode_all(const Tokenizer *t, const int *tokens, size_t n) {
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (size_t i = 1; i < n; i++) {
        const char *piece = tokenizer_decode(t, tokens[i - 1], tokens[i]);
        size_t const pl = strlen(piece) + (tokens[i] == 3); /* <0x00> decodes to a NUL byte */
        while (len + pl + 1 > cap) out = realloc(out, cap *= 2);
        assert_non_null(out);
        memcpy(out + len, piece, pl);
        len += pl;
    }
    out[len] = '\0';
    return out;
}

/* Both tokenizers encode text alike and decode it back to text. Returns the token count. */
static size_t compare(const Pair *p, const char *text, size_t len, const char *what) {
    int *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    assert_int_equal(tokenizer_encode(p->sp, text, len, 1, 0, &a, &na), NQ_OK);
    assert_int_equal(tokenizer_encode(p->bin, text, len, 1, 0, &b, &nb), NQ_OK);
    size_t first = 0;
    while (first < na && first < nb && a[first] == b[first]) first++;
    if (na != nb || first != na)
        fail_msg("%s: %zu sentencepiece ids vs %zu llama2.c ids, first difference at %zu (%d vs %d)", what, na,
                 nb, first, first < na ? a[first] : -1, first < nb ? b[first] : -1);
    assert_int_equal(a[0], TOKEN_BOS);
    char *da = decode_all(p->sp, a, na), *db = decode_all(p->bin, b, nb);
    assert_string_equal(da, db);
    assert_int_equal(strlen(da), len);
    assert_memory_equal(da, text, len);
    free(da);
    free(db);
    free(a);
    free(b);
    return na;
}

static void test_tinystories_sample(void **state) {
    Pair const *p = *state;
    size_t len;
    char *text = slurp(data_path("tinystories-sample.txt"), &len);
    size_t const n = compare(p, text, len, "tinystories-sample.txt");
    printf("  tinystories-sample.txt: %zu bytes -> %zu identical ids\n", len, n);
    /* each line on its own too (the dummy prefix at every start) */
    size_t lines = 0;
    for (char *line = text, *end; *line; line = end + (*end != '\0')) {
        end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        compare(p, line, (size_t)(end - line), "a line of tinystories-sample.txt");
        lines++;
    }
    printf("  and %zu lines one by one\n", lines);
    free(text);
}

static void test_eval_text_prefix(void **state) {
    Pair const *p = *state;
    size_t len;
    char *text = slurp(data_path("eval-generated.txt"), &len);
    size_t cut = len < 8192 ? len : 8192;
    while (cut > 0 && text[cut - 1] != '\n') cut--; /* whole lines: no split code point */
    assert_true(cut > 4096);
    size_t const n = compare(p, text, cut, "eval-generated.txt");
    printf("  eval-generated.txt: first %zu bytes -> %zu identical ids\n", cut, n);
    free(text);
}

static void test_edge_texts(void **state) {
    Pair const *p = *state;
    static const char *const texts[] = {
        "Hello world", " leading space", "two  spaces", "tab\there", "\n", "caf\xc3\xa9 na\xc3\xafve",
        "emoji \xf0\x9f\x98\x80 and \xe4\xb8\xad\xe6\x96\x87", "x",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) compare(p, texts[i], strlen(texts[i]), texts[i]);
    int *ids = NULL;
    size_t n = 0;
    assert_int_equal(tokenizer_encode(p->sp, "", 0, 1, 1, &ids, &n), NQ_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], TOKEN_BOS);
    assert_int_equal(ids[1], TOKEN_EOS);
    free(ids);
}

static void test_c_api(void **state) {
    (void)state;
    SpModel *sp = NULL;
    assert_int_equal(sp_model_load(data_path("llama2-tokenizer/tokenizer.model"), &sp), NQ_OK);
    assert_int_equal(sp_model_vocab_size(sp), LLAMA_VOCAB);
    assert_int_equal(sp_model_bos_id(sp), TOKEN_BOS);
    assert_int_equal(sp_model_eos_id(sp), TOKEN_EOS);
    assert_string_equal(sp_model_id_to_piece(sp, 1), "<s>");
    assert_string_equal(sp_model_id_to_piece(sp, 3 + 0x0A), "<0x0A>");
    assert_true(sp_model_is_byte(sp, 3 + 0x0A) && !sp_model_is_byte(sp, 1000));
    assert_string_equal(sp_model_id_to_piece(sp, LLAMA_VOCAB), "");
    int *ids = NULL;
    size_t n = 0;
    assert_int_equal(sp_model_encode(sp, "Hello", 5, &ids, &n), NQ_OK);
    assert_true(n >= 1);
    assert_string_equal(sp_model_id_to_piece(sp, ids[0]), "\xe2\x96\x81Hello"); /* dummy prefix */
    free(ids);
    sp_model_free(sp);
    sp_model_free(NULL);
}

static void expect_refused(const char *path, int vocab, const char *fragment) {
    Tokenizer *t = (Tokenizer *)&t;
    nq_clear_error();
    assert_int_equal(tokenizer_open(path, vocab, &t), NQ_ERR_INPUT);
    assert_null(t);
    const char *msg = nq_last_error();
    printf("  refused: %s\n", msg);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, fragment));
    assert_null(strchr(msg, '\n'));
}

static void test_not_a_model(void **state) {
    (void)state;
    char tmp[] = "/tmp/nupes-sp-XXXXXX";
    int const fd = mkstemp(tmp);
    assert_true(fd >= 0);
    /* starts like a ModelProto (field 1, length, field 1) and then is cut short */
    static const unsigned char fake[] = {0x0a, 0x40, 0x0a, 0x05, '<', 'u', 'n', 'k', '>', 0x15};
    assert_int_equal(write(fd, fake, sizeof fake), (ssize_t)sizeof fake);
    close(fd);
    expect_refused(tmp, LLAMA_VOCAB, "not a SentencePiece model");
    unlink(tmp);
    expect_refused(data_path("llama2-tokenizer/tokenizer.model"), 512, "vocab_size = 32000, expected 512");

    SpModel *sp = (SpModel *)&sp;
    nq_clear_error();
    assert_int_equal(sp_model_load(data_path("tok512.bin"), &sp), NQ_ERR_INPUT);
    assert_null(sp);
    printf("  refused: %s\n", nq_last_error());
    assert_non_null(strstr(nq_last_error(), "tok512.bin: not a SentencePiece model"));
    assert_null(strchr(nq_last_error(), '\n'));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tinystories_sample),
        cmocka_unit_test(test_eval_text_prefix),
        cmocka_unit_test(test_edge_texts),
        cmocka_unit_test(test_c_api),
        cmocka_unit_test(test_not_a_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
