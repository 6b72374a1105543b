/* The status line's rate (mpi/job_context.h): iterations per second when there is at least
 * one a second, seconds per iteration below that (a 7B block's iteration takes seconds to
 * minutes at 7B width, where "%.1f it/s" printed "0.0 it/s"), and a dash before the first
 * timed iteration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "job_context.h"

static void expect_rate(double rate, const char *want) {
    char got[32];
    job_format_rate(got, sizeof got, rate);
    assert_string_equal(got, want);
}

static void test_fast_iterations_in_it_per_s(void **state) {
    (void)state;
    expect_rate(12.34, "12.3 it/s");
    expect_rate(1.0, "1.0 it/s");
}

static void test_slow_iterations_in_s_per_it(void **state) {
    (void)state;
    expect_rate(0.04, "25.0 s/it");  /* the first rehearsal's 7B block: "0.0 it/s" before */
    expect_rate(1.0 / 115.0, "115.0 s/it");
    expect_rate(0.999, "1.0 s/it");
}

static void test_no_rate_yet(void **state) {
    (void)state;
    expect_rate(0.0, "- it/s");
}

static void test_truncates_to_the_buffer(void **state) {
    (void)state;
    char small[6];
    job_format_rate(small, sizeof small, 0.04);
    assert_string_equal(small, "25.0 ");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_iterations_in_it_per_s),
        cmocka_unit_test(test_slow_iterations_in_s_per_it),
        cmocka_unit_test(test_no_rate_yet),
        cmocka_unit_test(test_truncates_to_the_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
