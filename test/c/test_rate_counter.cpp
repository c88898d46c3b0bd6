/*
 * test_rate_counter.cpp: the 60 s sliding average of src/fanout/rate_counter.cpp
 * (PROTOCOL.md 9.1): counts within the window, buckets that age out, a bucket
 * slot reused a minute later, concurrent adds.
 */
#include "tenancy/rate_counter.hpp"

#include <thread>
#include <vector>

/* cmocka.h last: its fail() macro breaks std headers; it has no extern "C" guard */
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
extern "C"
{
#include <cmocka.h>
}

namespace
{

using rt::fanout::RateCounter;

constexpr int64_t kT0 = 1'000'000'000; /* an arbitrary monotonic start */

void
TestAverageOverTheWindow(void **)
{
	RateCounter r;
	assert_true(r.Average(kT0) == 0.0);
	r.Add(kT0, 30);
	r.Add(kT0 + 20'000, 30);
	/* 60 events in the last minute: 1 per second */
	assert_true(r.Average(kT0 + 30'000) == 1.0);
	r.Add(kT0 + 30'000);
	assert_true(r.Average(kT0 + 30'000) > 1.0);
}

void
TestOldBucketsAgeOut(void **)
{
	RateCounter r;
	r.Add(kT0, 120);
	assert_true(r.Average(kT0 + 59'000) == 2.0);
	/* 12 buckets of 5 s later the first one is out of the window */
	assert_true(r.Average(kT0 + 60'000) == 0.0);
	/* and its slot, reused now, starts over instead of adding to the old count */
	r.Add(kT0 + 60'000, 6);
	assert_true(r.Average(kT0 + 60'000) == 0.1);
}

void
TestConcurrentAdds(void **)
{
	RateCounter r;
	std::vector<std::thread> threads;
	for (int t = 0; t < 4; t++)
		threads.emplace_back(
		    [&r]
		    {
			    for (int i = 0; i < 15000; i++)
				    r.Add(kT0 + (i % 10) * 1000);
		    });
	for (std::thread &t : threads)
		t.join();
	assert_true(r.Average(kT0 + 10'000) == 1000.0);
}

} // namespace

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestAverageOverTheWindow),
	    cmocka_unit_test(TestOldBucketsAgeOut),
	    cmocka_unit_test(TestConcurrentAdds),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
