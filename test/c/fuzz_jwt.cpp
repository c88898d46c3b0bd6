/*
 * fuzz_jwt.cpp: libFuzzer target for the JWT verifier (src/fanout/auth/auth_jwt.cpp), the
 * code every unauthenticated connect reaches first.
 *
 * Built by `make fuzz-build` (clang, ASan, UBSan); run by scripts/fuzz.sh from
 * test/c/corpus/jwt. The first byte picks what the rest is:
 *   even: a token, verified against an HS256 secret and a JWKS holding an oct key;
 *   odd:  a claims text, signed with the secret and verified. A token that verifies has a
 *         an exp in the future; the same token with its signature's first character
 *         changed never verifies.
 * Besides crashes and sanitizer reports, it traps when one of those promises breaks.
 */
#include "auth/auth_jwt.hpp"
#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace
{

using namespace rt::fanout;

constexpr int64_t kNow = 1'800'000'000;
const char kSecret[] = "fuzz-secret-with-at-least-32-characters!";

const JwtKeys &
Keys()
{
	static const JwtKeys keys = []
	{
		Result<JwtKeys> k = MakeJwtKeys(
		    kSecret,
		    R"({"keys":[{"kty":"oct","kid":"k1","alg":"HS256","k":"c2VjcmV0LWtleS1mb3ItdGhlLWZ1enplci0xMjM0NTY"}]})",
		    "");
		rt::fuzz::Check(k.ok());
		return k.value();
	}();
	return keys;
}

void
CheckVerified(const Result<JwtClaims> &r)
{
	if (!r.ok())
		return;
	rt::fuzz::Check(r.value().exp > kNow);
	rt::fuzz::Check(!r.value().claims_json.empty());
}

} // namespace

extern "C" int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	std::string rest(reinterpret_cast<const char *>(data) + 1, size - 1);
	if ((data[0] & 1) == 0)
	{
		CheckVerified(VerifyJwt(rest, Keys(), kNow));
		return 0;
	}
	std::string token = SignJwtHs256(rest, kSecret);
	if (token.empty())
		return 0;
	Result<JwtClaims> r = VerifyJwt(token, Keys(), kNow);
	CheckVerified(r);
	if (r.ok())
	{
		/* the signature's first character: all six of its bits are signature bits */
		size_t sig = token.rfind('.') + 1;
		rt::fuzz::Check(sig < token.size());
		token[sig] = token[sig] == 'A' ? 'B' : 'A';
		rt::fuzz::Check(!VerifyJwt(token, Keys(), kNow).ok());
	}
	return 0;
}
