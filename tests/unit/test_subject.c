/* SPDX-License-Identifier: MIT */
/*
 * test_subject.c - subject patterns: which patterns are valid, and what
 * "*" and ">" match.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>

#include <cmocka.h>

#include "subject.h"

static void
test_match(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *subject;
        bool match;
    } cases[] = {
        {"orders.*", "orders.eu", true},
        {"orders.*", "orders", false},
        {"orders.*", "orders.eu.7", false},
        {"orders.>", "orders.eu.7", true},
        {"orders.>", "orders", false},
        {"orders.>", "orders.x", true},
        {"*", "a", true},
        {"*", "a.b", false},
        {">", "a.b", true},
        {"a.b", "a.b", true},
        {"a.b", "a.bc", false},
        {"a.b", "a.b.c", false},
        {"a.*.c", "a.x.c", true},
        {"a.*.c", "a.x.d", false},
        {"a", "", false},
        {"*", "", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool m = fy_subject_match(fy_bytes_str(cases[i].pattern), fy_bytes_str(cases[i].subject));
        if (m != cases[i].match)
            fail_msg("%s vs %s: got %d", cases[i].pattern, cases[i].subject, m);
    }
}

static void
test_valid_patterns(void **state)
{
    (void)state;
    const char *ok[] = {"a", "a.*", "a.>", "*.*", ">", "a_b-c.d"};
    const char *bad[] = {"", "a..b", ".a", "a.", "a.>.b", "a*", "a.**", "a b"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_true(fy_subject_pattern_valid(fy_bytes_str(ok[i])));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (fy_subject_pattern_valid(fy_bytes_str(bad[i])))
            fail_msg("'%s' accepted", bad[i]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_valid_patterns),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("subject", tests, NULL, NULL);
}
