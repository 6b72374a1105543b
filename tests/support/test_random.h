/* A tiny seeded generator for test fixtures (independent of src/rng.c, which is under test
 * elsewhere): the same seed gives the same random model on every machine. */
#ifndef NUPES_TEST_RANDOM_H
#define NUPES_TEST_RANDOM_H

#include <stddef.h>

void test_random_seed(unsigned long long seed);
/* Uniform in [-1, 1). */
float test_random_uniform(void);
/* malloc'd [n] of offset + scale * uniform; aborts when out of memory (tests only). */
float *test_random_tensor(size_t n, float scale, float offset);

#endif
