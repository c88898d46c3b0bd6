/*
 * fuzz_check.hpp: what the libFuzzer targets in test/c (fuzz_*.cpp) share.
 * Check traps when a promise of the code under test is broken, so that the
 * fuzzer reports the input as a crash just as it does a sanitizer finding.
 * Header-only.
 */
#pragma once

namespace rt::fuzz
{

/* Trap unless ok. */
inline void
Check(bool ok)
{
	if (!ok)
		__builtin_trap();
}

} // namespace rt::fuzz
