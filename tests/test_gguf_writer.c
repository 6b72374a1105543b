/* The GGUF writer and ggml row encoders, against hand-worked expectations:
 *  - llama.cpp's fallback rule for rows a block size does not divide;
 *  - Q8_0 blocks: d = max|x| / 127 as fp16, codes rounded half away from zero, a zero block,
 *    the extremes at +-127, and the decode error bound (d / 2 per value, plus the fp16
 *    rounding of d: |x| * 2^-11);
 *  - the exact bytes of a small GGUF file (header, key/values, tensor infos, alignment
 *    padding, data), laid out by hand from the format description;
 *  - IQ4_NL / IQ4_XS blocks from learned codes and scales, byte by byte;
 *  - misuse of the streaming API (too many bytes, unfinished tensors) is an error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ggml_types.h"
#include "quant_iq4.h"
#include "gguf_writer.h"
#include "safetensors.h"

static void test_fallback(void **state) {
    (void)state;
    assert_int_equal(ggml_fallback_type(GGML_Q8_0, 64), GGML_Q8_0);
    assert_int_equal(ggml_fallback_type(GGML_Q8_0, 172), GGML_F16);     /* the bundled model's w2 */
    assert_int_equal(ggml_fallback_type(GGML_IQ4_XS, 4096), GGML_IQ4_XS);
    assert_int_equal(ggml_fallback_type(GGML_IQ4_XS, 11008 / 2), GGML_IQ4_NL); /* 5504 = 172 * 32 */
    assert_int_equal(ggml_fallback_type(GGML_IQ4_XS, 172), GGML_F16);
    assert_int_equal(ggml_fallback_type(GGML_IQ4_NL, 172), GGML_F16);
    assert_int_equal(ggml_fallback_type(GGML_F16, 173), GGML_F16);
    assert_int_equal(ggml_fallback_type(GGML_F32, 7), GGML_F32);
    assert_int_equal(ggml_row_bytes(GGML_Q8_0, 64), 68);
    assert_int_equal(ggml_row_bytes(GGML_IQ4_NL, 64), 36);
    assert_int_equal(ggml_row_bytes(GGML_IQ4_XS, 512), 272);
    GgmlType t;
    assert_int_equal(ggml_type_parse("Q8_0", &t), 0);
    assert_int_equal(t, GGML_Q8_0);
    assert_int_equal(ggml_type_parse("iq4_nl", &t), -1); /* listed, not encodable from floats */
    assert_int_equal(ggml_type_parse("q4_k", &t), -1);
}

static void test_q8_0_block(void **state) {
    (void)state;
    float x[32], y[32];
    unsigned char b[34];
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) * 0.25f; /* -4 .. 3.75, amax 4 */
    x[5] = 4.0f / 127.0f * 1.25f;         /* 1.25 steps: rounds to 1 */
    x[6] = -(4.0f / 127.0f) * 2.5f;       /* -2.5 steps: half away from zero -> -3 */
    ggml_encode_row(GGML_Q8_0, x, 32, b);
    uint16_t dh;
    memcpy(&dh, b, 2);
    assert_int_equal(dh, float_to_half(4.0f / 127.0f));
    assert_int_equal((int8_t)b[2 + 0], -127);                 /* x = -4 = -amax */
    assert_int_equal((int8_t)b[2 + 5], 1);
    assert_int_equal((int8_t)b[2 + 6], -3);
    assert_int_equal((int8_t)b[2 + 16], 0);
    ggml_decode_row(GGML_Q8_0, b, 32, y);
    float const d = half_to_float(dh);
    for (int i = 0; i < 32; i++) assert_true(fabsf(x[i] - y[i]) <= d / 2 + fabsf(x[i]) * 0x1p-11f + 1e-7f);
    float z[32] = {0};
    ggml_encode_row(GGML_Q8_0, z, 32, b);
    for (int i = 0; i < 34; i++) assert_int_equal(b[i], 0); /* d = 0, codes 0 */
}

static void test_f16_row(void **state) {
    (void)state;
    float const x[3] = {1.0f, -2.5f, 65504.0f};
    uint16_t h[3];
    ggml_encode_row(GGML_F16, x, 3, h);
    assert_int_equal(h[0], 0x3c00);
    assert_int_equal(h[1], 0xc100);
    assert_int_equal(h[2], 0x7bff);
}

/* Appends little-endian values to an expected byte image. */
typedef struct {
    unsigned char b[1024];
    size_t n;
} Img;
static void img_put(Img *m, const void *p, size_t n) {
    memcpy(m->b + m->n, p, n);
    m->n += n;
}
static void img_u32(Img *m, uint32_t v) { img_put(m, &v, 4); }
static void img_u64(Img *m, uint64_t v) { img_put(m, &v, 8); }
static void img_str(Img *m, const char *s) {
    img_u64(m, strlen(s));
    img_put(m, s, strlen(s));
}

/* IQ4_NL and IQ4_XS rows from learned codes and scales: the bytes of one hand-made
 * block of each, checked byte by byte against the layout llama.cpp reads (block_iq4_nl,
 * block_iq4_xs in ggml-common.h), and random rows decoding to exactly what the learner
 * evaluated (iq4_dequantize with the same scales). */
static void test_iq4_rows(void **state) {
    (void)state;
    int8_t codes[512];
    for (int i = 0; i < 512; i++) codes[i] = (int8_t)((i * 7 + i / 32) % 16);
    /* IQ4_NL: d = 0.5 is fp16 0x3800; byte j = codes[j] | codes[j + 16] << 4 */
    unsigned char nl[18 * 2];
    float const d[2] = {0.5f, -0.25f};
    ggml_encode_iq4nl_row(codes, d, 64, nl);
    assert_int_equal(nl[0], 0x00);
    assert_int_equal(nl[1], 0x38);
    for (int j = 0; j < 16; j++) assert_int_equal(nl[2 + j], codes[j] | codes[j + 16] << 4);
    assert_int_equal(nl[18], 0x00); /* -0.25 = 0xb400 */
    assert_int_equal(nl[19], 0xb4);
    float x[512], ref[512];
    ggml_decode_row(GGML_IQ4_NL, nl, 64, x);
    iq4_dequantize(1, 64, codes, d, ref);
    assert_memory_equal(x, ref, 64 * sizeof(float));
    /* IQ4_XS: D = 2^-10 (fp16 0x1400); l = ib - 4 gives ls = ib + 28: low nibbles
     * 12, 13, 14, 15, 0, 1, 2, 3 and high bits 1, 1, 1, 1, 2, 2, 2, 2 */
    float const D[2] = {1.0f / 1024.0f, 3.0f};
    int8_t l[16];
    for (int ib = 0; ib < 16; ib++) l[ib] = (int8_t)(ib < 8 ? ib - 4 : 31 - 9 * (ib - 8));
    unsigned char xs[136 * 2];
    ggml_encode_iq4xs_row(codes, D, l, 512, xs);
    assert_int_equal(xs[0], 0x00);
    assert_int_equal(xs[1], 0x14);
    uint16_t const scales_h = (uint16_t)(xs[2] | xs[3] << 8);
    assert_int_equal(scales_h, 1 | 1 << 2 | 1 << 4 | 1 << 6 | 2 << 8 | 2 << 10 | 2 << 12 | 2 << 14);
    assert_int_equal(xs[4], 12 | 13 << 4);
    assert_int_equal(xs[5], 14 | 15 << 4);
    assert_int_equal(xs[6], 0 | 1 << 4);
    assert_int_equal(xs[7], 2 | 3 << 4);
    for (int ib = 0; ib < 8; ib++)
        for (int j = 0; j < 16; j++)
            assert_int_equal(xs[8 + 16 * ib + j], codes[32 * ib + j] | codes[32 * ib + j + 16] << 4);
    ggml_decode_row(GGML_IQ4_XS, xs, 512, x);
    float d_hat[16];
    for (int ib = 0; ib < 16; ib++) d_hat[ib] = D[ib / 8] * (float)l[ib];
    iq4_dequantize(1, 512, codes, d_hat, ref);
    assert_memory_equal(x, ref, 512 * sizeof(float));
}

static void test_file_bytes(void **state) {
    (void)state;
    char path[] = "/tmp/nupes-gguf-test.XXXXXX";
    int const fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w+b");
    GgufWriter *w = gguf_writer_new(path);
    assert_non_null(w);
    assert_int_equal(gguf_kv_string(w, "general.architecture", "llama"), NQ_OK);
    assert_int_equal(gguf_kv_u32(w, "llama.block_count", 5), NQ_OK);
    const char *toks[2] = {"<s>", "\xe2\x96\x81" "a"};
    size_t const lens[2] = {3, 4};
    assert_int_equal(gguf_kv_string_array(w, "tokenizer.ggml.tokens", toks, lens, 2), NQ_OK);
    int64_t const ne_v[1] = {3}, ne_m[2] = {32, 2};
    assert_int_equal(gguf_add_tensor(w, "v", 1, ne_v, GGML_F32), NQ_OK);
    assert_int_equal(gguf_add_tensor(w, "m", 2, ne_m, GGML_Q8_0), NQ_OK);
    int64_t const ne_bad[2] = {33, 1};
    assert_int_not_equal(gguf_add_tensor(w, "bad", 2, ne_bad, GGML_Q8_0), NQ_OK);
    assert_int_equal(gguf_writer_begin(w, f), NQ_OK);
    float const v[3] = {1, 2, 3};
    unsigned char q[68];
    memset(q, 0x5a, sizeof q);
    assert_int_equal(gguf_writer_tensor_data(w, v, sizeof v), NQ_OK);
    assert_int_not_equal(gguf_writer_finish(w), NQ_OK); /* m not written yet */
    assert_int_equal(gguf_writer_tensor_data(w, q, 34), NQ_OK); /* in two pieces */
    assert_int_not_equal(gguf_writer_tensor_data(w, q, 35), NQ_OK); /* one byte too many */
    assert_int_equal(gguf_writer_tensor_data(w, q, 34), NQ_OK);
    assert_int_equal(gguf_writer_finish(w), NQ_OK);
    uint64_t const expect_size = gguf_writer_file_size(w);
    gguf_writer_free(w);
    fflush(f);

    Img m = {.n = 0};
    img_put(&m, "GGUF", 4);
    img_u32(&m, 3);
    img_u64(&m, 2); /* tensors */
    img_u64(&m, 3); /* key/values */
    img_str(&m, "general.architecture");
    img_u32(&m, 8);
    img_str(&m, "llama");
    img_str(&m, "llama.block_count");
    img_u32(&m, 4);
    img_u32(&m, 5);
    img_str(&m, "tokenizer.ggml.tokens");
    img_u32(&m, 9);
    img_u32(&m, 8);
    img_u64(&m, 2);
    img_str(&m, "<s>");
    img_str(&m, "\xe2\x96\x81" "a");
    img_str(&m, "v");
    img_u32(&m, 1);
    img_u64(&m, 3);
    img_u32(&m, 0);
    img_u64(&m, 0);
    img_str(&m, "m");
    img_u32(&m, 2);
    img_u64(&m, 32);
    img_u64(&m, 2);
    img_u32(&m, 8);
    img_u64(&m, 32); /* 12 bytes of v padded to 32 */
    while (m.n % 32) m.b[m.n++] = 0;
    img_put(&m, v, sizeof v);
    while (m.n % 32) m.b[m.n++] = 0;
    img_put(&m, q, 68);
    while (m.n % 32) m.b[m.n++] = 0;

    unsigned char got[1024];
    rewind(f);
    size_t const n = fread(got, 1, sizeof got, f);
    fclose(f);
    unlink(path);
    assert_int_equal(n, m.n);
    assert_int_equal(expect_size, m.n);
    assert_memory_equal(got, m.b, m.n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_q8_0_block),
        cmocka_unit_test(test_f16_row),
        cmocka_unit_test(test_iq4_rows),
        cmocka_unit_test(test_file_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
