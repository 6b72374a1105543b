/* Keeps the test support library non-empty before any helper lands. */
typedef int nupes_test_support_nonempty;
