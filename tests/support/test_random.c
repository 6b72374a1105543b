#include "test_random.h"

#include <stdio.h>
#include <stdlib.h>

static unsigned long long state = 1;

void test_random_seed(unsigned long long seed) { state = seed ? seed : 1; }

float test_random_uniform(void) { /* xorshift64* */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (float)((state * 2685821657736338717ULL >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}

float *test_random_tensor(size_t n, float scale, float offset) {
    float *t = malloc((n ? n : 1) * sizeof(float));
    if (!t) {
        fprintf(stderr, "test_random_tensor: out of memory for %zu floats\n", n);
        abort();
    }
    for (size_t i = 0; i < n; i++) t[i] = offset + scale * test_random_uniform();
    return t;
}
