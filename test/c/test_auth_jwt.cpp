/*
 * test_auth_jwt.cpp: CMocka tests of auth_jwt (PROTOCOL.md 1.5 and 3.5).
 *
 * Single-threaded, no network. Tokens are built here with OpenSSL's one-shot
 * HMAC() and EVP_EncodeBlock, a path independent of the EVP_MAC code and the
 * base64url encoder under test; fixed vectors come from RFC 7515 A.1 and from
 * python3 hmac / `openssl dgst -sha256 -hmac`, pasted as literals. The JWKS
 * tests generate RSA, EC and EdDSA keys here, export them as JWKs and sign
 * tokens with EVP_DigestSign (ES* signatures converted from DER to r || s).
 */
#include "auth/auth_jwt.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

/* cmocka 1.1 has no C++ guards of its own. */
extern "C"
{
#include <cmocka.h>
}

using rt::fanout::Base64UrlDecode;
using rt::fanout::Base64UrlEncode;
using rt::fanout::ErrorCode;
using rt::fanout::JwtClaims;
using rt::fanout::JwtKeys;
using rt::fanout::MakeJwtKeys;
using rt::fanout::Result;
using rt::fanout::SignJwtHs256;
using rt::fanout::VerifyJwt;

namespace
{

constexpr int64_t kNow = 1700000000;
constexpr std::string_view kSecret = "super-secret-jwt-token-with-at-least-32-characters-long";

constexpr const char *kMalformed = "The token provided is not a valid JWT";
constexpr const char *kSigner =
    "Failed to generate JWT signer, check your JWT secret or JWKS configuration";
constexpr const char *kSignature = "Failed to validate JWT signature";
constexpr const char *kMissingClaims = "Fields `role` and `exp` are required in JWT";

/* base64url via OpenSSL's standard base64, then the URL alphabet, no padding. */
std::string
RefB64Url(std::string_view in)
{
	std::vector<unsigned char> buf(4 * ((in.size() + 2) / 3) + 1);
	int n = EVP_EncodeBlock(buf.data(), reinterpret_cast<const unsigned char *>(in.data()),
	                        static_cast<int>(in.size()));
	std::string out(reinterpret_cast<const char *>(buf.data()), static_cast<size_t>(n));
	while (!out.empty() && out.back() == '=')
		out.pop_back();
	for (char &c : out)
	{
		if (c == '+')
			c = '-';
		else if (c == '/')
			c = '_';
	}
	return out;
}

/* header.payload signed with HMAC(md) over key, all done independently of auth_jwt. */
std::string
MakeToken(std::string_view header, std::string_view payload, std::string_view key, const EVP_MD *md)
{
	std::string input = RefB64Url(header) + "." + RefB64Url(payload);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	unsigned char *r =
	    HMAC(md, key.data(), static_cast<int>(key.size()),
	         reinterpret_cast<const unsigned char *>(input.data()), input.size(), mac, &len);
	assert_non_null(r);
	return input + "." + RefB64Url(std::string_view(reinterpret_cast<char *>(mac), len));
}

std::string
Hs256Token(std::string_view payload, std::string_view key = kSecret)
{
	return MakeToken(R"({"alg":"HS256","typ":"JWT"})", payload, key, EVP_sha256());
}

/* Payload with role and an exp offset from kNow. */
std::string
Claims(int64_t exp_offset, std::string_view role = "authenticated")
{
	return R"({"role":")" + std::string(role) + R"(","exp":)" + std::to_string(kNow + exp_offset) +
	       "}";
}

/* The secret alone, as before JWKS support (and as a sidecar given only --jwt-secret). */
Result<JwtClaims>
VerifySecret(std::string_view token, std::string_view secret, int64_t now)
{
	JwtKeys keys;
	keys.secret = std::string(secret);
	return VerifyJwt(token, keys, now);
}

void
ExpectError(const Result<JwtClaims> &r, ErrorCode code, const char *text)
{
	assert_false(r.ok());
	assert_int_equal(static_cast<int>(r.error().code), static_cast<int>(code));
	assert_string_equal(r.error().message.c_str(), text);
}

void
ExpectOk(const Result<JwtClaims> &r)
{
	if (!r.ok())
		fail_msg("unexpected error: %s", r.error().message.c_str());
}

void
TestBase64Url(void **)
{
	/* RFC 4648 section 10 vectors, without padding. */
	const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *coded[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	for (size_t i = 0; i < 7; i++)
	{
		assert_string_equal(Base64UrlEncode(plain[i]).c_str(), coded[i]);
		std::string out;
		assert_true(Base64UrlDecode(coded[i], out));
		assert_string_equal(out.c_str(), plain[i]);
	}
	/* The two URL-alphabet characters. */
	const std::string bytes("\xfb\xff\xbf", 3);
	assert_string_equal(Base64UrlEncode(bytes).c_str(), "-_-_");
	std::string out;
	assert_true(Base64UrlDecode("-_-_", out));
	assert_true(out == bytes);
	/* Padding tolerated when it completes a group. */
	assert_true(Base64UrlDecode("Zg==", out));
	assert_string_equal(out.c_str(), "f");
	assert_true(Base64UrlDecode("Zm8=", out));
	assert_string_equal(out.c_str(), "fo");
	/* Round trip of every byte value against the independent encoder. */
	std::string all;
	for (int b = 0; b < 256; b++)
		all.push_back(static_cast<char>(b));
	assert_string_equal(Base64UrlEncode(all).c_str(), RefB64Url(all).c_str());
	assert_true(Base64UrlDecode(RefB64Url(all), out));
	assert_true(out == all);
	/*
	 * Rejected: standard-alphabet characters, junk, bad lengths, bad padding,
	 * non-zero pad bits ("Zh" and "Zm9" are second spellings of "Zg" and "Zm8").
	 */
	const char *bad[] = {"Zm+v", "Zm/v", "Zm9v!", "Z",   "Zm9vY", "Zg=",   "Zg===",
	                     "=Zg",  "Z=g=", "Zh",    "Zm9", "Zm 9",  "Zm9v\n"};
	for (const char *b : bad)
	{
		if (Base64UrlDecode(b, out))
			fail_msg("accepted bad base64url \"%s\"", b);
	}
	assert_false(Base64UrlDecode(std::string_view("Zm8\0", 4), out));
}

/* A token made and checked with python3 hmac and `openssl dgst -sha256 -hmac`. */
void
TestFixedVectorHs256(void **)
{
	const char *token =
	    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
	    "eyJyb2xlIjoiYXV0aGVudGljYXRlZCIsInN1YiI6IjZjN2ExZjNlLTAwMDAtNDAwMC04MDAwLTAwM"
	    "DAwMDAwMDAwMSIsImV4cCI6MTkwMDAwMDAwMCwiaWF0IjoxNzAwMDAwMDAwfQ."
	    "w8ZIuTKwZXy851YRK0iOLE3HSrsX2HBvivETpPW5y6Y";
	const char *claims = R"({"role":"authenticated","sub":"6c7a1f3e-0000-4000-8000-000000000001",)"
	                     R"("exp":1900000000,"iat":1700000000})";
	Result<JwtClaims> r = VerifySecret(token, kSecret, kNow);
	ExpectOk(r);
	assert_string_equal(r.value().role.c_str(), "authenticated");
	assert_string_equal(r.value().sub.c_str(), "6c7a1f3e-0000-4000-8000-000000000001");
	assert_int_equal(r.value().exp, 1900000000);
	assert_string_equal(r.value().claims_json.c_str(), claims);
	/* The signer writes the very same bytes. */
	assert_string_equal(SignJwtHs256(claims, kSecret).c_str(), token);
}

/* HS512 counterpart, from python3 hmac. */
void
TestFixedVectorHs512(void **)
{
	const char *token =
	    "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9."
	    "eyJyb2xlIjoiYXV0aGVudGljYXRlZCIsInN1YiI6IjZjN2ExZjNlLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwM"
	    "SIsImV4cCI6MTkwMDAwMDAwMCwiaWF0IjoxNzAwMDAwMDAwfQ."
	    "nSZMMeHrrlBC71BDYw_VNhnZ8VSnjq2b3OUsTau-Qn3RkMZ4OasLKAEjAeKc51ZIndy2uoSfx5H5px6xIZVICQ";
	ExpectOk(VerifySecret(token, kSecret, kNow));
	ExpectError(VerifySecret(token, "another-secret", kNow), ErrorCode::kJwtSignature, kSignature);
}

/*
 * RFC 7515 appendix A.1: binary key, CRLF inside the header and payload JSON.
 * It has no role, so an authentic token ends at the required-claims check.
 */
void
TestRfc7515Vector(void **)
{
	const char *token =
	    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
	    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19"
	    "yb290Ijp0cnVlfQ."
	    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	std::string key;
	assert_true(Base64UrlDecode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iP"
	                            "S4hcgUuTwjAzZr1Z9CAow",
	                            key));
	assert_int_equal(key.size(), 64);
	ExpectError(VerifySecret(token, key, 1300819379), ErrorCode::kInvalidJwtToken, kMissingClaims);
	ExpectError(VerifySecret(token, key, 1300819380), ErrorCode::kInvalidJwtToken,
	            "Token has expired 0 seconds ago");
	ExpectError(VerifySecret(token, key.substr(1), 1300819379), ErrorCode::kJwtSignature,
	            kSignature);
}

void
TestValidHs256384512(void **)
{
	const std::string payload = R"({"role":"anon","sub":"u1","exp":1700003600,"aud":"x"})";
	struct
	{
		const char *header;
		const EVP_MD *md;
	} cases[] = {
	    {R"({"alg":"HS256","typ":"JWT"})", EVP_sha256()},
	    {R"({"alg":"HS384","typ":"JWT"})", EVP_sha384()},
	    {R"({"alg":"HS512","typ":"JWT"})", EVP_sha512()},
	    {R"({"alg":"HS256"})", EVP_sha256()}, /* typ is not required */
	    {R"({"alg":"HS256","typ":"JWT","kid":"k1"})", EVP_sha256()},
	};
	for (const auto &c : cases)
	{
		Result<JwtClaims> r =
		    VerifySecret(MakeToken(c.header, payload, kSecret, c.md), kSecret, kNow);
		ExpectOk(r);
		assert_string_equal(r.value().role.c_str(), "anon");
		assert_string_equal(r.value().sub.c_str(), "u1");
		assert_int_equal(r.value().exp, 1700003600);
		assert_string_equal(r.value().claims_json.c_str(), payload.c_str());
	}
	/* A token signed with one HS algorithm but labelled with another. */
	ExpectError(VerifySecret(MakeToken(R"({"alg":"HS384"})", payload, kSecret, EVP_sha256()),
	                         kSecret, kNow),
	            ErrorCode::kJwtSignature, kSignature);
}

void
TestSignerRoundTrip(void **)
{
	std::string token = SignJwtHs256(Claims(60), kSecret);
	assert_true(token.rfind("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 0) == 0);
	assert_true(token.find('=') == std::string::npos);
	/* Same bytes as the independent construction. */
	assert_string_equal(token.c_str(), Hs256Token(Claims(60)).c_str());
	Result<JwtClaims> r = VerifySecret(token, kSecret, kNow);
	ExpectOk(r);
	assert_string_equal(r.value().sub.c_str(), ""); /* absent sub */
	assert_int_equal(r.value().exp, kNow + 60);
}

void
TestExpired(void **)
{
	ExpectError(VerifySecret(Hs256Token(Claims(-42)), kSecret, kNow), ErrorCode::kInvalidJwtToken,
	            "Token has expired 42 seconds ago");
	ExpectError(VerifySecret(Hs256Token(Claims(-31536000)), kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, "Token has expired 31536000 seconds ago");
	/* Upstream validates exp before the required claims: expired wins over no role. */
	ExpectError(VerifySecret(Hs256Token(R"({"exp":1699999990})"), kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, "Token has expired 10 seconds ago");
	/* Extreme values neither overflow nor crash. */
	ExpectError(VerifySecret(Hs256Token(R"({"role":"a","exp":-1e300})"), kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, "Token has expired 9223372038554775808 seconds ago");
	ExpectOk(VerifySecret(Hs256Token(R"({"role":"a","exp":1e300})"), kSecret, kNow));
	ExpectOk(VerifySecret(Hs256Token(R"({"role":"a","exp":18446744073709551615})"), kSecret, kNow));
}

void
TestExactlyAtExp(void **)
{
	ExpectError(VerifySecret(Hs256Token(Claims(0)), kSecret, kNow), ErrorCode::kInvalidJwtToken,
	            "Token has expired 0 seconds ago");
	Result<JwtClaims> r = VerifySecret(Hs256Token(Claims(1)), kSecret, kNow);
	ExpectOk(r);
	assert_int_equal(r.value().exp, kNow + 1);
}

void
TestBadSignature(void **)
{
	std::string token = Hs256Token(Claims(60));
	size_t dot2 = token.rfind('.');

	std::string flipped = token;
	flipped[dot2 + 5] = flipped[dot2 + 5] == 'A' ? 'B' : 'A';
	ExpectError(VerifySecret(flipped, kSecret, kNow), ErrorCode::kJwtSignature, kSignature);

	/* Truncated, empty, extended, not base64url. */
	ExpectError(VerifySecret(token.substr(0, token.size() - 4), kSecret, kNow),
	            ErrorCode::kJwtSignature, kSignature);
	ExpectError(VerifySecret(token.substr(0, dot2 + 1), kSecret, kNow), ErrorCode::kJwtSignature,
	            kSignature);
	ExpectError(VerifySecret(token + "AAAA", kSecret, kNow), ErrorCode::kJwtSignature, kSignature);
	ExpectError(VerifySecret(token.substr(0, dot2 + 1) + "!!!!", kSecret, kNow),
	            ErrorCode::kJwtSignature, kSignature);

	/* Payload changed after signing. */
	std::string other = Hs256Token(Claims(3600, "service_role"));
	std::string spliced = token.substr(0, token.find('.')) +
	                      other.substr(other.find('.'), other.rfind('.') - other.find('.')) +
	                      token.substr(dot2);
	ExpectError(VerifySecret(spliced, kSecret, kNow), ErrorCode::kJwtSignature, kSignature);
}

void
TestWrongSecret(void **)
{
	ExpectError(VerifySecret(Hs256Token(Claims(60), "not-the-secret"), kSecret, kNow),
	            ErrorCode::kJwtSignature, kSignature);
	/* Forged tokens never reveal claim errors. */
	ExpectError(VerifySecret(Hs256Token(Claims(-60), "not-the-secret"), kSecret, kNow),
	            ErrorCode::kJwtSignature, kSignature);
	ExpectError(VerifySecret(Hs256Token(R"({"sub":"x"})", "not-the-secret"), kSecret, kNow),
	            ErrorCode::kJwtSignature, kSignature);
	ExpectError(
	    VerifySecret(Hs256Token(R"({"role":"a","exp":1,"iat":"x"})", "nope"), kSecret, kNow),
	    ErrorCode::kJwtSignature, kSignature);
}

void
TestAlgNone(void **)
{
	std::string unsigned_token =
	    RefB64Url(R"({"alg":"none","typ":"JWT"})") + "." + RefB64Url(Claims(60)) + ".";
	ExpectError(VerifySecret(unsigned_token, kSecret, kNow), ErrorCode::kJwtSigner, kSigner);
	/* Even with a "signature" made with the real secret. */
	ExpectError(VerifySecret(MakeToken(R"({"alg":"none"})", Claims(60), kSecret, EVP_sha256()),
	                         kSecret, kNow),
	            ErrorCode::kJwtSigner, kSigner);
	/* And for an expired one: the signer is chosen before claims are looked at. */
	ExpectError(VerifySecret(RefB64Url(R"({"alg":"none"})") + "." + RefB64Url(Claims(-60)) + ".",
	                         kSecret, kNow),
	            ErrorCode::kJwtSigner, kSigner);
}

void
TestUnknownAlg(void **)
{
	const char *headers[] = {
	    R"({"alg":"RS256","typ":"JWT"})",
	    R"({"alg":"ES256"})",
	    R"({"alg":"EdDSA"})",
	    R"({"alg":"HS257"})",
	    R"({"alg":"hs256"})",
	    R"({"alg":"HS256 "})",
	    R"({"alg":"None"})",
	    R"({"typ":"JWT"})",
	    R"({"alg":256})",
	    R"({"alg":null})",
	    R"({"alg":["HS256"]})",
	    R"({})",
	};
	for (const char *h : headers)
		ExpectError(VerifySecret(MakeToken(h, Claims(60), kSecret, EVP_sha256()), kSecret, kNow),
		            ErrorCode::kJwtSigner, kSigner);
}

void
TestMalformed(void **)
{
	std::string good = Hs256Token(Claims(60));
	std::string h = good.substr(0, good.find('.'));
	std::string p = RefB64Url(Claims(60));
	const std::string tokens[] = {
	    "",
	    "abc",
	    ".",
	    "..",
	    "...",
	    h + "." + p,
	    good + ".x",
	    good + ".",
	    "!!!." + p + ".sig",                                  /* header not base64url */
	    h + ".@@@@.sig",                                      /* payload not base64url */
	    h + "." + p + "==.sig",                               /* bad padding */
	    RefB64Url("not json") + "." + p + ".sig",             /* header not JSON */
	    RefB64Url(R"(["HS256"])") + "." + p + ".sig",         /* header not an object */
	    RefB64Url(R"({"alg":"HS256"} x)") + "." + p + ".sig", /* trailing garbage */
	    h + "." + RefB64Url("[1,2]") + ".sig",                /* payload not an object */
	    h + "." + RefB64Url(R"("role")") + ".sig",            /* payload a string */
	    h + "." + RefB64Url("123") + ".sig",                  /* payload a number */
	    h + "." + RefB64Url(R"({"role":"a",)") + ".sig",      /* payload cut */
	    h + "." + RefB64Url(std::string("{\"role\":\"\xff\"}")) + ".sig", /* invalid UTF-8 */
	    h + ".." + "sig",
	};
	for (const std::string &t : tokens)
		ExpectError(VerifySecret(t, kSecret, kNow), ErrorCode::kMalformedJwt, kMalformed);
	/* Malformed payload wins over a bad alg: upstream reads the claims first. */
	ExpectError(
	    VerifySecret(RefB64Url(R"({"alg":"none"})") + "." + RefB64Url("[]") + ".", kSecret, kNow),
	    ErrorCode::kMalformedJwt, kMalformed);
}

void
TestMissingRole(void **)
{
	ExpectError(VerifySecret(Hs256Token(R"({"exp":1700000060,"sub":"x"})"), kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, kMissingClaims);
	ExpectError(VerifySecret(Hs256Token(R"({"exp":1700000060,"role":null})"), kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, kMissingClaims);
	ExpectError(VerifySecret(Hs256Token(R"({"exp":1700000060,"role":7})"), kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, kMissingClaims);
	ExpectError(VerifySecret(Hs256Token(R"({})"), kSecret, kNow), ErrorCode::kInvalidJwtToken,
	            kMissingClaims);
}

void
TestMissingExp(void **)
{
	ExpectError(VerifySecret(Hs256Token(R"({"role":"anon"})"), kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, kMissingClaims);
	ExpectError(VerifySecret(Hs256Token(R"({"role":"anon","exp":null})"), kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, kMissingClaims);
	ExpectError(VerifySecret(Hs256Token(R"({"role":"anon","exp":true})"), kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, kMissingClaims);
}

void
TestExpAsString(void **)
{
	ExpectError(VerifySecret(Hs256Token(R"({"role":"anon","exp":"1800000000"})"), kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, kMissingClaims);
	ExpectError(VerifySecret(Hs256Token(R"({"role":"anon","exp":"soon"})"), kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, kMissingClaims);
}

void
TestIat(void **)
{
	ExpectOk(VerifySecret(Hs256Token(R"({"role":"a","exp":1700000060,"iat":1699999000})"), kSecret,
	                      kNow));
	/* iat in the future is not checked upstream either. */
	ExpectOk(VerifySecret(Hs256Token(R"({"role":"a","exp":1700000060,"iat":1800000000})"), kSecret,
	                      kNow));
	ExpectError(VerifySecret(Hs256Token(R"({"role":"a","exp":1700000060,"iat":"1699999000"})"),
	                         kSecret, kNow),
	            ErrorCode::kMalformedJwt, kMalformed);
	ExpectError(
	    VerifySecret(Hs256Token(R"({"role":"a","exp":1700000060,"iat":null})"), kSecret, kNow),
	    ErrorCode::kMalformedJwt, kMalformed);
}

void
TestDecimalsRounded(void **)
{
	Result<JwtClaims> r = VerifySecret(
	    Hs256Token(R"({"role":"a","exp":1700000100.5,"iat":1699999999.4,"n":1.5})"), kSecret, kNow);
	ExpectOk(r);
	assert_int_equal(r.value().exp, 1700000101); /* half away from zero, as Erlang round/1 */
	/* exp and iat rounded in the claims as upstream returns them; other numbers untouched. */
	assert_string_equal(r.value().claims_json.c_str(),
	                    R"({"role":"a","exp":1700000101,"iat":1699999999,"n":1.5})");

	r = VerifySecret(Hs256Token(R"({"role":"a","exp":1700000000.6})"), kSecret, kNow);
	ExpectOk(r);
	assert_int_equal(r.value().exp, kNow + 1);
	/* Rounds down onto now: expired, 0 seconds ago. */
	ExpectError(VerifySecret(Hs256Token(R"({"role":"a","exp":1700000000.4})"), kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, "Token has expired 0 seconds ago");
	ExpectError(VerifySecret(Hs256Token(R"({"role":"a","exp":1699999950.5})"), kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, "Token has expired 49 seconds ago");
	ExpectError(VerifySecret(Hs256Token(R"({"role":"a","exp":1.7e9})"), kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, "Token has expired 0 seconds ago");
}

void
TestWhitespaceAndPercent(void **)
{
	std::string token = Hs256Token(Claims(60));
	size_t dot1 = token.find('.');
	size_t dot2 = token.rfind('.');

	std::string spaced = " \t" + token.substr(0, 10) + "\n" + token.substr(10, dot1 - 10) +
	                     "\r\n." + token.substr(dot1 + 1, 7) + "\v\f " + token.substr(dot1 + 8) +
	                     "\n\n";
	ExpectOk(VerifySecret(spaced, kSecret, kNow));

	std::string encoded = token;
	encoded.replace(dot2, 1, "%2E");
	encoded.replace(dot1, 1, "%2e");
	encoded.replace(0, 1, "%65"); /* 'e' */
	ExpectOk(VerifySecret(encoded, kSecret, kNow));
	ExpectOk(VerifySecret("%20" + token + "%0A%09", kSecret, kNow));

	/* A "+" is not a space in URI.decode, and not base64url either. */
	ExpectError(VerifySecret(token.substr(0, 5) + "+" + token.substr(5), kSecret, kNow),
	            ErrorCode::kMalformedJwt, kMalformed);
	/* Bad escapes: URI.decode raises upstream. */
	const std::string bad[] = {token + "%", token + "%4", "%G1" + token,
	                           token.substr(0, 3) + "%zz"};
	for (const std::string &t : bad)
		ExpectError(VerifySecret(t, kSecret, kNow), ErrorCode::kMalformedJwt, kMalformed);
}

/* base64url with the optional padding written out. */
std::string
Padded(std::string_view in)
{
	std::string out = RefB64Url(in);
	while (out.size() % 4 != 0)
		out += "=";
	return out;
}

void
TestPaddedSegments(void **)
{
	/* The signing input is the text as sent, padding included. */
	std::string header = R"({"alg":"HS256"} )"; /* 16 bytes: "==" */
	std::string payload = Claims(60);           /* 41 bytes: "=" */
	std::string input = Padded(header) + "." + Padded(payload);
	assert_true(input.find("==.") != std::string::npos);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
	     reinterpret_cast<const unsigned char *>(input.data()), input.size(), mac, &len);
	std::string token = input + "." + Padded(std::string_view(reinterpret_cast<char *>(mac), len));
	assert_true(token.back() == '=');
	ExpectOk(VerifySecret(token, kSecret, kNow));
}

void
TestHugeToken(void **)
{
	/* 1 MB, validly signed: refused before any decoding. */
	std::string payload =
	    R"({"role":"a","exp":1800000000,"pad":")" + std::string(1 << 20, 'x') + R"("})";
	std::string huge = Hs256Token(payload);
	assert_true(huge.size() > 1000000);
	ExpectError(VerifySecret(huge, kSecret, kNow), ErrorCode::kMalformedJwt, kMalformed);
	ExpectError(VerifySecret(std::string(1 << 20, 'A'), kSecret, kNow), ErrorCode::kMalformedJwt,
	            kMalformed);
	ExpectError(VerifySecret(std::string(1 << 20, '.'), kSecret, kNow), ErrorCode::kMalformedJwt,
	            kMalformed);
	ExpectError(VerifySecret(std::string(1 << 20, ' '), kSecret, kNow), ErrorCode::kMalformedJwt,
	            kMalformed);

	/* Right at the cap still works, one byte over does not. */
	std::string base = Hs256Token(R"({"role":"a","exp":1800000000})");
	std::string at_cap = std::string(rt::fanout::kMaxJwtBytes - base.size(), ' ') + base;
	assert_int_equal(at_cap.size(), rt::fanout::kMaxJwtBytes);
	ExpectOk(VerifySecret(at_cap, kSecret, kNow));
	ExpectError(VerifySecret(" " + at_cap, kSecret, kNow), ErrorCode::kMalformedJwt, kMalformed);
}

/* Nesting beyond kMaxJwtNesting would overflow the stack when re-serialized. */
void
TestDeepNesting(void **)
{
	auto nested = [](int depth)
	{
		return R"({"role":"a","exp":1800000000,"d":)" + std::string(depth - 1, '[') +
		       std::string(depth - 1, ']') + "}";
	};
	const int max = rt::fanout::kMaxJwtNesting;
	Result<JwtClaims> r = VerifySecret(Hs256Token(nested(max)), kSecret, kNow);
	ExpectOk(r);
	assert_int_equal(r.value().claims_json.size(), nested(max).size());
	ExpectError(VerifySecret(Hs256Token(nested(max + 1)), kSecret, kNow), ErrorCode::kMalformedJwt,
	            kMalformed);
	/* Validly signed and as deep as the size cap allows. */
	std::string deepest = Hs256Token(nested(24000));
	assert_true(deepest.size() <= rt::fanout::kMaxJwtBytes);
	ExpectError(VerifySecret(deepest, kSecret, kNow), ErrorCode::kMalformedJwt, kMalformed);
	/* In the header too, and checked before the signature. */
	ExpectError(VerifySecret(MakeToken(R"({"alg":"HS256","x":)" + std::string(100, '[') +
	                                       std::string(100, ']') + "}",
	                                   Claims(60), "other", EVP_sha256()),
	                         kSecret, kNow),
	            ErrorCode::kMalformedJwt, kMalformed);
	/* Brackets and escaped quotes inside strings are not nesting. */
	std::string in_string = R"({"role":"a","exp":1800000000,"s":"\")" + std::string(200, '[') +
	                        std::string(200, '{') + R"("})";
	ExpectOk(VerifySecret(Hs256Token(in_string), kSecret, kNow));
}

/* Duplicate names: the last wins, as in upstream's decoder and in Postgres jsonb. */
void
TestDuplicateNames(void **)
{
	Result<JwtClaims> r = VerifySecret(
	    Hs256Token(
	        R"({"role":"anon","exp":1,"sub":"a","role":"authenticated","exp":1700000060.5,"sub":"b"})"),
	    kSecret, kNow);
	ExpectOk(r);
	assert_string_equal(r.value().role.c_str(), "authenticated");
	assert_string_equal(r.value().sub.c_str(), "b");
	assert_int_equal(r.value().exp, kNow + 61);
	ExpectError(VerifySecret(Hs256Token(R"({"role":"a","exp":1800000000,"exp":1699999999})"),
	                         kSecret, kNow),
	            ErrorCode::kInvalidJwtToken, "Token has expired 1 seconds ago");
	ExpectOk(VerifySecret(
	    MakeToken(R"({"alg":"none","alg":"HS256"})", Claims(60), kSecret, EVP_sha256()), kSecret,
	    kNow));
	ExpectError(VerifySecret(
	                MakeToken(R"({"alg":"HS256","alg":"none"})", Claims(60), kSecret, EVP_sha256()),
	                kSecret, kNow),
	            ErrorCode::kJwtSigner, kSigner);
}

void
TestEmptySecret(void **)
{
	ExpectError(VerifySecret(Hs256Token(Claims(60)), "", kNow), ErrorCode::kJwtSigner, kSigner);
	/* A token signed with the empty key is refused the same way. */
	ExpectError(VerifySecret(Hs256Token(Claims(60), ""), "", kNow), ErrorCode::kJwtSigner, kSigner);
	/* The signer itself handles an empty key (HMAC allows it). */
	assert_string_equal(SignJwtHs256(Claims(60), "").c_str(), Hs256Token(Claims(60), "").c_str());
}

/* ---- JWKS: keys generated here, exported as JWKs, tokens signed here ---- */

struct PkeyDel
{
	void
	operator()(EVP_PKEY *k) const
	{
		EVP_PKEY_free(k);
	}
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDel>;

Pkey
GenRsa()
{
	Pkey k(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048)));
	assert_non_null(k.get());
	return k;
}

Pkey
GenEc(const char *group)
{
	Pkey k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", group));
	assert_non_null(k.get());
	return k;
}

Pkey
GenEd(const char *type)
{
	Pkey k(EVP_PKEY_Q_keygen(nullptr, nullptr, type));
	assert_non_null(k.get());
	return k;
}

/* A BIGNUM parameter of key, big-endian, left-padded to pad bytes (0: minimal). */
std::string
BnParam(EVP_PKEY *key, const char *name, int pad = 0)
{
	BIGNUM *bn = nullptr;
	assert_int_equal(EVP_PKEY_get_bn_param(key, name, &bn), 1);
	int len = pad > 0 ? pad : BN_num_bytes(bn);
	std::string out(static_cast<size_t>(len), '\0');
	assert_int_equal(BN_bn2binpad(bn, reinterpret_cast<unsigned char *>(out.data()), len), len);
	BN_free(bn);
	return out;
}

std::string
RsaJwk(EVP_PKEY *key, std::string_view kid)
{
	return R"({"kty":"RSA","kid":")" + std::string(kid) + R"(","n":")" +
	       RefB64Url(BnParam(key, OSSL_PKEY_PARAM_RSA_N)) + R"(","e":")" +
	       RefB64Url(BnParam(key, OSSL_PKEY_PARAM_RSA_E)) + R"("})";
}

std::string
EcJwk(EVP_PKEY *key, std::string_view kid, std::string_view crv, int bytes)
{
	return R"({"kty":"EC","kid":")" + std::string(kid) + R"(","crv":")" + std::string(crv) +
	       R"(","x":")" + RefB64Url(BnParam(key, OSSL_PKEY_PARAM_EC_PUB_X, bytes)) + R"(","y":")" +
	       RefB64Url(BnParam(key, OSSL_PKEY_PARAM_EC_PUB_Y, bytes)) + R"("})";
}

std::string
OkpJwk(EVP_PKEY *key, std::string_view kid, std::string_view crv)
{
	unsigned char raw[64];
	size_t len = sizeof(raw);
	assert_int_equal(EVP_PKEY_get_raw_public_key(key, raw, &len), 1);
	return R"({"kty":"OKP","kid":")" + std::string(kid) + R"(","crv":")" + std::string(crv) +
	       R"(","x":")" + RefB64Url(std::string_view(reinterpret_cast<char *>(raw), len)) + R"("})";
}

/* EVP_DigestSign of data (md null: EdDSA). */
std::string
RawSign(EVP_PKEY *key, const EVP_MD *md, std::string_view data)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestSignInit(ctx, nullptr, md, nullptr, key), 1);
	size_t len = 0;
	const auto *in = reinterpret_cast<const unsigned char *>(data.data());
	assert_int_equal(EVP_DigestSign(ctx, nullptr, &len, in, data.size()), 1);
	std::string sig(len, '\0');
	assert_int_equal(
	    EVP_DigestSign(ctx, reinterpret_cast<unsigned char *>(sig.data()), &len, in, data.size()),
	    1);
	sig.resize(len);
	EVP_MD_CTX_free(ctx);
	return sig;
}

/* A DER ECDSA signature as JWS wants it: r || s, half bytes each. */
std::string
DerToRaw(const std::string &der, int half)
{
	const auto *p = reinterpret_cast<const unsigned char *>(der.data());
	ECDSA_SIG *sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
	assert_non_null(sig);
	std::string out(static_cast<size_t>(2 * half), '\0');
	auto *o = reinterpret_cast<unsigned char *>(out.data());
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(sig), o, half), half);
	assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(sig), o + half, half), half);
	ECDSA_SIG_free(sig);
	return out;
}

/* header {"alg":alg,"kid":kid,"typ":"JWT"}, payload, signed with key. */
std::string
SignedToken(std::string_view alg, std::string_view kid, std::string_view payload, EVP_PKEY *key)
{
	std::string header =
	    R"({"alg":")" + std::string(alg) + R"(","kid":")" + std::string(kid) + R"(","typ":"JWT"})";
	std::string input = RefB64Url(header) + "." + RefB64Url(payload);
	std::string sig;
	std::string_view bits = alg.substr(2);
	const EVP_MD *md = bits == "256" ? EVP_sha256() : bits == "384" ? EVP_sha384() : EVP_sha512();
	if (alg.starts_with("RS"))
		sig = RawSign(key, md, input);
	else if (alg.starts_with("ES"))
		sig = DerToRaw(RawSign(key, md, input), bits == "256" ? 32 : bits == "384" ? 48 : 66);
	else
		sig = RawSign(key, nullptr, input);
	return input + "." + RefB64Url(sig);
}

constexpr std::string_view kOctKey = "an-oct-key-from-the-jwks-0123456789abcdef";

/* One key of each kind, made once for all JWKS tests (RSA generation is slow). */
struct KeyRing
{
	Pkey rsa = GenRsa(), rsa_other = GenRsa();
	Pkey p256 = GenEc("P-256"), p256_other = GenEc("P-256");
	Pkey p384 = GenEc("P-384"), p521 = GenEc("P-521");
	Pkey ed25519 = GenEd("ED25519"), ed25519_other = GenEd("ED25519");
	Pkey ed448 = GenEd("ED448");

	std::string
	Jwks() const
	{
		return R"({"keys":[)" + RsaJwk(rsa.get(), "rsa") + "," +
		       EcJwk(p256.get(), "ec256", "P-256", 32) + "," +
		       EcJwk(p384.get(), "ec384", "P-384", 48) + "," +
		       EcJwk(p521.get(), "ec521", "P-521", 66) + "," +
		       OkpJwk(ed25519.get(), "ed", "Ed25519") + "," +
		       OkpJwk(ed448.get(), "ed448", "Ed448") + R"(,{"kty":"oct","kid":"hs","k":")" +
		       RefB64Url(kOctKey) + R"("}]})";
	}
};

const KeyRing &
Ring()
{
	static const KeyRing ring;
	return ring;
}

JwtKeys
RingKeys(std::string_view validators = "")
{
	Result<JwtKeys> keys = MakeJwtKeys(std::string(kSecret), Ring().Jwks(), validators);
	if (!keys.ok())
		fail_msg("MakeJwtKeys: %s", keys.error().message.c_str());
	return keys.value();
}

std::string
KidSigner(std::string_view quoted_kid)
{
	return "Failed to generate JWT signer for key ID (kid) " + std::string(quoted_kid) +
	       ", check your JWT secret or JWKS configuration";
}

void
TestJwksAcceptsEachAlg(void **)
{
	const KeyRing &r = Ring();
	JwtKeys keys = RingKeys();
	assert_true(keys.has_jwks);
	struct
	{
		const char *alg, *kid;
		EVP_PKEY *key;
	} cases[] = {
	    {"RS256", "rsa", r.rsa.get()},     {"RS384", "rsa", r.rsa.get()},
	    {"RS512", "rsa", r.rsa.get()},     {"ES256", "ec256", r.p256.get()},
	    {"ES384", "ec384", r.p384.get()},  {"ES512", "ec521", r.p521.get()},
	    {"EdDSA", "ed", r.ed25519.get()},  {"Ed25519", "ed", r.ed25519.get()},
	    {"EdDSA", "ed448", r.ed448.get()}, {"Ed448", "ed448", r.ed448.get()},
	};
	for (const auto &c : cases)
	{
		Result<JwtClaims> res =
		    VerifyJwt(SignedToken(c.alg, c.kid, Claims(60, "anon"), c.key), keys, kNow);
		if (!res.ok())
			fail_msg("%s/%s: %s", c.alg, c.kid, res.error().message.c_str());
		assert_string_equal(res.value().role.c_str(), "anon");
	}
	/* Several times over one key set: nothing in it is consumed by a verification. */
	for (int i = 0; i < 3; i++)
		ExpectOk(VerifyJwt(SignedToken("ES256", "ec256", Claims(60), r.p256.get()), keys, kNow));
}

void
TestJwksHsOctByKid(void **)
{
	JwtKeys keys = RingKeys();
	const char *hdr[] = {R"({"alg":"HS256","kid":"hs"})", R"({"alg":"HS384","kid":"hs"})",
	                     R"({"alg":"HS512","kid":"hs"})"};
	const EVP_MD *mds[] = {EVP_sha256(), EVP_sha384(), EVP_sha512()};
	for (int i = 0; i < 3; i++)
		ExpectOk(VerifyJwt(MakeToken(hdr[i], Claims(60), kOctKey, mds[i]), keys, kNow));
	/* the oct key wins over the secret for its kid */
	ExpectError(VerifyJwt(MakeToken(hdr[0], Claims(60), kSecret, EVP_sha256()), keys, kNow),
	            ErrorCode::kJwtSignature, kSignature);
	/* a kid without an oct entry (Supabase Auth's usual case): the secret */
	ExpectOk(
	    VerifyJwt(MakeToken(R"({"alg":"HS256","kid":"auth"})", Claims(60), kSecret, EVP_sha256()),
	              keys, kNow));
	/* a kid naming an RSA entry is not an oct entry: the secret too */
	ExpectOk(
	    VerifyJwt(MakeToken(R"({"alg":"HS256","kid":"rsa"})", Claims(60), kSecret, EVP_sha256()),
	              keys, kNow));
	/* no secret and no oct entry: the signer error, with the kid when there is one */
	keys.secret.clear();
	ExpectError(
	    VerifyJwt(MakeToken(R"({"alg":"HS256","kid":"auth"})", Claims(60), kSecret, EVP_sha256()),
	              keys, kNow),
	    ErrorCode::kJwtSigner, KidSigner("\"auth\"").c_str());
	ExpectError(VerifyJwt(Hs256Token(Claims(60)), keys, kNow), ErrorCode::kJwtSigner, kSigner);
	ExpectOk(VerifyJwt(MakeToken(hdr[0], Claims(60), kOctKey, EVP_sha256()), keys, kNow));
}

void
TestJwksWrongKey(void **)
{
	const KeyRing &r = Ring();
	JwtKeys keys = RingKeys();
	ExpectError(VerifyJwt(SignedToken("RS256", "rsa", Claims(60), r.rsa_other.get()), keys, kNow),
	            ErrorCode::kJwtSignature, kSignature);
	ExpectError(
	    VerifyJwt(SignedToken("ES256", "ec256", Claims(60), r.p256_other.get()), keys, kNow),
	    ErrorCode::kJwtSignature, kSignature);
	ExpectError(
	    VerifyJwt(SignedToken("EdDSA", "ed", Claims(60), r.ed25519_other.get()), keys, kNow),
	    ErrorCode::kJwtSignature, kSignature);
	/* RS512 signature presented as RS256 */
	std::string t = SignedToken("RS512", "rsa", Claims(60), r.rsa.get());
	std::string t256 = SignedToken("RS256", "rsa", Claims(60), r.rsa.get());
	std::string forged = t256.substr(0, t256.rfind('.')) + t.substr(t.rfind('.'));
	ExpectError(VerifyJwt(forged, keys, kNow), ErrorCode::kJwtSignature, kSignature);
}

void
TestJwksTamperedPayload(void **)
{
	const KeyRing &r = Ring();
	JwtKeys keys = RingKeys();
	struct
	{
		const char *alg, *kid;
		EVP_PKEY *key;
	} cases[] = {{"RS256", "rsa", r.rsa.get()},
	             {"ES384", "ec384", r.p384.get()},
	             {"EdDSA", "ed", r.ed25519.get()}};
	for (const auto &c : cases)
	{
		std::string t = SignedToken(c.alg, c.kid, Claims(60, "anon"), c.key);
		size_t d1 = t.find('.'), d2 = t.rfind('.');
		std::string tampered =
		    t.substr(0, d1 + 1) + RefB64Url(Claims(60, "service_role")) + t.substr(d2);
		ExpectError(VerifyJwt(tampered, keys, kNow), ErrorCode::kJwtSignature, kSignature);
		/* one flipped bit of the signature */
		std::string sig;
		assert_true(Base64UrlDecode(t.substr(d2 + 1), sig));
		sig[sig.size() / 2] ^= 1;
		ExpectError(VerifyJwt(t.substr(0, d2 + 1) + RefB64Url(sig), keys, kNow),
		            ErrorCode::kJwtSignature, kSignature);
	}
}

void
TestJwksUnknownKid(void **)
{
	const KeyRing &r = Ring();
	JwtKeys keys = RingKeys();
	ExpectError(VerifyJwt(SignedToken("RS256", "nope", Claims(60), r.rsa.get()), keys, kNow),
	            ErrorCode::kJwtSigner, KidSigner("\"nope\"").c_str());
	ExpectError(VerifyJwt(SignedToken("ES256", "nope", Claims(60), r.p256.get()), keys, kNow),
	            ErrorCode::kJwtSigner, KidSigner("\"nope\"").c_str());
	ExpectError(VerifyJwt(SignedToken("EdDSA", "nope", Claims(60), r.ed25519.get()), keys, kNow),
	            ErrorCode::kJwtSigner, KidSigner("\"nope\"").c_str());
	/* the kid as Elixir's inspect/2 prints it */
	ExpectError(VerifyJwt(SignedToken("RS256", R"(a\"b#{c})", Claims(60), r.rsa.get()), keys, kNow),
	            ErrorCode::kJwtSigner, KidSigner(R"("a\"b\#{c}")").c_str());
	/* no kid at all, or not a string: the plain signer error */
	std::string input = RefB64Url(R"({"alg":"RS256"})") + "." + RefB64Url(Claims(60));
	ExpectError(
	    VerifyJwt(input + "." + RefB64Url(RawSign(r.rsa.get(), EVP_sha256(), input)), keys, kNow),
	    ErrorCode::kJwtSigner, kSigner);
	input = RefB64Url(R"({"alg":"RS256","kid":7})") + "." + RefB64Url(Claims(60));
	ExpectError(
	    VerifyJwt(input + "." + RefB64Url(RawSign(r.rsa.get(), EVP_sha256(), input)), keys, kNow),
	    ErrorCode::kJwtSigner, kSigner);
	/* no JWKS configured: the plain signer error too (upstream's last clause) */
	ExpectError(VerifySecret(SignedToken("RS256", "rsa", Claims(60), r.rsa.get()), kSecret, kNow),
	            ErrorCode::kJwtSigner, kSigner);
	/* unsupported algorithms */
	for (const char *alg : {"PS256", "none", "ES256K", "HS1"})
	{
		std::string t = RefB64Url(R"({"alg":")" + std::string(alg) + R"(","kid":"rsa"})") + "." +
		                RefB64Url(Claims(60)) + ".c2ln";
		ExpectError(VerifyJwt(t, keys, kNow), ErrorCode::kJwtSigner, kSigner);
	}
}

void
TestJwksKtyMismatch(void **)
{
	const KeyRing &r = Ring();
	JwtKeys keys = RingKeys();
	/* an RS256 header naming an EC key's kid: no RSA entry by that kid */
	ExpectError(VerifyJwt(SignedToken("RS256", "ec256", Claims(60), r.rsa.get()), keys, kNow),
	            ErrorCode::kJwtSigner, KidSigner("\"ec256\"").c_str());
	ExpectError(VerifyJwt(SignedToken("ES256", "rsa", Claims(60), r.p256.get()), keys, kNow),
	            ErrorCode::kJwtSigner, KidSigner("\"rsa\"").c_str());
	ExpectError(VerifyJwt(SignedToken("EdDSA", "hs", Claims(60), r.ed25519.get()), keys, kNow),
	            ErrorCode::kJwtSigner, KidSigner("\"hs\"").c_str());
	/* ES256 with a P-384 key (RFC 7518 ties ES256 to P-256), Ed448 naming an Ed25519 key */
	ExpectError(VerifyJwt(SignedToken("ES384", "ec256", Claims(60), r.p256.get()), keys, kNow),
	            ErrorCode::kJwtSignature, kSignature);
	ExpectError(VerifyJwt(SignedToken("Ed448", "ed", Claims(60), r.ed25519.get()), keys, kNow),
	            ErrorCode::kJwtSignature, kSignature);
}

void
TestJwksEsSignatureLength(void **)
{
	const KeyRing &r = Ring();
	JwtKeys keys = RingKeys();
	std::string t = SignedToken("ES256", "ec256", Claims(60), r.p256.get());
	size_t d2 = t.rfind('.');
	std::string input = t.substr(0, d2);
	std::string sig;
	assert_true(Base64UrlDecode(t.substr(d2 + 1), sig));
	assert_int_equal(sig.size(), 64);
	ExpectOk(VerifyJwt(t, keys, kNow));
	/* one byte short, one too many, the DER form OpenSSL itself produces, nothing */
	ExpectError(VerifyJwt(input + "." + RefB64Url(sig.substr(0, 63)), keys, kNow),
	            ErrorCode::kJwtSignature, kSignature);
	ExpectError(VerifyJwt(input + "." + RefB64Url(sig + "x"), keys, kNow), ErrorCode::kJwtSignature,
	            kSignature);
	ExpectError(
	    VerifyJwt(input + "." + RefB64Url(RawSign(r.p256.get(), EVP_sha256(), input)), keys, kNow),
	    ErrorCode::kJwtSignature, kSignature);
	ExpectError(VerifyJwt(input + ".", keys, kNow), ErrorCode::kJwtSignature, kSignature);
	/* r and s swapped */
	ExpectError(VerifyJwt(input + "." + RefB64Url(sig.substr(32) + sig.substr(0, 32)), keys, kNow),
	            ErrorCode::kJwtSignature, kSignature);
}

void
TestJwksMalformedEntries(void **)
{
	const KeyRing &r = Ring();
	std::string good = RsaJwk(r.rsa.get(), "rsa");
	std::string p256 = EcJwk(r.p256.get(), "ec", "P-256", 32);
	std::string off_curve = R"({"kty":"EC","kid":"ec","crv":"P-256","x":")" +
	                        RefB64Url(std::string(32, '\x01')) + R"(","y":")" +
	                        RefB64Url(std::string(32, '\x02')) + R"("})";
	std::string jwks =
	    R"({"keys":[1,"x",{},{"kty":7},{"kty":"RSA","kid":"rsa"},)" + off_curve + "," + p256 +
	    R"(,{"kty":"RSA","kid":"r2","n":"!!","e":"AQAB"},)" +
	    R"({"kty":"OKP","kid":"x","crv":"X25519","x":"AAAA"},)" +
	    R"({"kty":"oct","kid":"hs","k":"%%"},{"kty":"oct","kid":"nk"},)" +
	    R"({"kty":"foo","kid":"f"},{"kty":"EC","kid":"e2","crv":"P-256","x":"AA","y":"AA"},)" +
	    good + "]}";
	Result<JwtKeys> made = MakeJwtKeys(std::string(kSecret), jwks, "");
	assert_true(made.ok());
	const JwtKeys &keys = made.value();
	/* the first entry of a kty and kid decides: a broken one shadows a later good one */
	ExpectError(VerifyJwt(SignedToken("RS256", "rsa", Claims(60), r.rsa.get()), keys, kNow),
	            ErrorCode::kJwtSigner, KidSigner("\"rsa\"").c_str());
	ExpectError(VerifyJwt(SignedToken("ES256", "ec", Claims(60), r.p256.get()), keys, kNow),
	            ErrorCode::kJwtSigner, KidSigner("\"ec\"").c_str());
	ExpectError(VerifyJwt(SignedToken("EdDSA", "x", Claims(60), r.ed25519.get()), keys, kNow),
	            ErrorCode::kJwtSigner, KidSigner("\"x\"").c_str());
	/* oct with a k that is not base64url: signer error; with no k: not a match, the secret */
	ExpectError(
	    VerifyJwt(MakeToken(R"({"alg":"HS256","kid":"hs"})", Claims(60), kSecret, EVP_sha256()),
	              keys, kNow),
	    ErrorCode::kJwtSigner, KidSigner("\"hs\"").c_str());
	ExpectOk(VerifyJwt(
	    MakeToken(R"({"alg":"HS256","kid":"nk"})", Claims(60), kSecret, EVP_sha256()), keys, kNow));
	/* an empty key list is a JWKS: the kid variant */
	Result<JwtKeys> empty = MakeJwtKeys("", R"({"keys":[]})", "");
	assert_true(empty.ok());
	ExpectError(
	    VerifyJwt(SignedToken("RS256", "rsa", Claims(60), r.rsa.get()), empty.value(), kNow),
	    ErrorCode::kJwtSigner, KidSigner("\"rsa\"").c_str());
	/* a JWKS that is not one refuses to start */
	for (const char *bad : {"not json", "[]", R"({"keys":{}})", R"({"kid":"x"})", "{"})
	{
		Result<JwtKeys> k = MakeJwtKeys(std::string(kSecret), bad, "");
		assert_false(k.ok());
		assert_int_equal(static_cast<int>(k.error().code),
		                 static_cast<int>(ErrorCode::kInvalidArgument));
	}
}

/*
 * An oct entry with an empty k is no key: HMAC with an empty key is one
 * anybody can compute, so a token naming its kid would be forged at will.
 * It is unusable (and so shadows the secret for its kid: the signer error).
 */
void
TestJwksEmptyOctKey(void **)
{
	Result<JwtKeys> made =
	    MakeJwtKeys(std::string(kSecret), R"({"keys":[{"kty":"oct","kid":"empty","k":""}]})", "");
	assert_true(made.ok());
	std::string forged =
	    MakeToken(R"({"alg":"HS256","kid":"empty"})", Claims(60), "", EVP_sha256());
	ExpectError(VerifyJwt(forged, made.value(), kNow), ErrorCode::kJwtSigner,
	            KidSigner("\"empty\"").c_str());
	/* the secret still serves tokens without that kid */
	ExpectOk(VerifyJwt(Hs256Token(Claims(60)), made.value(), kNow));
}

void
TestClaimValidators(void **)
{
	JwtKeys keys = RingKeys(R"({"iss":"supabase","aud":"authenticated","exp":"ignored"})");
	assert_int_equal(keys.claim_validators.size(), 2);
	auto tok = [](const std::string &extra, int64_t exp_offset = 60)
	{
		return Hs256Token(R"({"role":"authenticated","exp":)" + std::to_string(kNow + exp_offset) +
		                  extra + "}");
	};
	constexpr const char *kInvalid = "Invalid token";
	ExpectOk(VerifyJwt(tok(R"(,"iss":"supabase","aud":"authenticated")"), keys, kNow));
	ExpectOk(VerifyJwt(tok(R"(,"iss":"supabase","aud":["other","authenticated"])"), keys, kNow));
	ExpectError(VerifyJwt(tok(R"(,"iss":"supabase","aud":["other"])"), keys, kNow),
	            ErrorCode::kInvalidJwtToken, kInvalid);
	ExpectError(VerifyJwt(tok(R"(,"iss":"other","aud":"authenticated")"), keys, kNow),
	            ErrorCode::kInvalidJwtToken, kInvalid);
	ExpectError(VerifyJwt(tok(R"(,"aud":"authenticated")"), keys, kNow),
	            ErrorCode::kInvalidJwtToken, kInvalid);
	/* only aud takes an array */
	ExpectError(VerifyJwt(tok(R"(,"iss":["supabase"],"aud":"authenticated")"), keys, kNow),
	            ErrorCode::kInvalidJwtToken, kInvalid);
	/* claim-name order: aud before exp, iss after it */
	ExpectError(VerifyJwt(tok(R"(,"iss":"supabase","aud":"x")", -10), keys, kNow),
	            ErrorCode::kInvalidJwtToken, kInvalid);
	ExpectError(VerifyJwt(tok(R"(,"iss":"x","aud":"authenticated")", -10), keys, kNow),
	            ErrorCode::kInvalidJwtToken, "Token has expired 10 seconds ago");
	/* a forged token still reads as a signature error first */
	ExpectError(VerifyJwt(Hs256Token(Claims(60), "wrong"), keys, kNow), ErrorCode::kJwtSignature,
	            kSignature);
	/* bad validator texts refuse to start */
	for (const char *bad : {"[]", "x", R"({"iss":1})"})
	{
		Result<JwtKeys> k = MakeJwtKeys(std::string(kSecret), "", bad);
		assert_false(k.ok());
	}
}

} // namespace

int
main()
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestBase64Url),
	    cmocka_unit_test(TestFixedVectorHs256),
	    cmocka_unit_test(TestFixedVectorHs512),
	    cmocka_unit_test(TestRfc7515Vector),
	    cmocka_unit_test(TestValidHs256384512),
	    cmocka_unit_test(TestSignerRoundTrip),
	    cmocka_unit_test(TestExpired),
	    cmocka_unit_test(TestExactlyAtExp),
	    cmocka_unit_test(TestBadSignature),
	    cmocka_unit_test(TestWrongSecret),
	    cmocka_unit_test(TestAlgNone),
	    cmocka_unit_test(TestUnknownAlg),
	    cmocka_unit_test(TestMalformed),
	    cmocka_unit_test(TestMissingRole),
	    cmocka_unit_test(TestMissingExp),
	    cmocka_unit_test(TestExpAsString),
	    cmocka_unit_test(TestIat),
	    cmocka_unit_test(TestDecimalsRounded),
	    cmocka_unit_test(TestWhitespaceAndPercent),
	    cmocka_unit_test(TestPaddedSegments),
	    cmocka_unit_test(TestHugeToken),
	    cmocka_unit_test(TestDeepNesting),
	    cmocka_unit_test(TestDuplicateNames),
	    cmocka_unit_test(TestEmptySecret),
	    cmocka_unit_test(TestJwksAcceptsEachAlg),
	    cmocka_unit_test(TestJwksHsOctByKid),
	    cmocka_unit_test(TestJwksWrongKey),
	    cmocka_unit_test(TestJwksTamperedPayload),
	    cmocka_unit_test(TestJwksUnknownKid),
	    cmocka_unit_test(TestJwksKtyMismatch),
	    cmocka_unit_test(TestJwksEsSignatureLength),
	    cmocka_unit_test(TestJwksMalformedEntries),
	    cmocka_unit_test(TestJwksEmptyOctKey),
	    cmocka_unit_test(TestClaimValidators),
	};
	return cmocka_run_group_tests_name("auth_jwt", tests, nullptr, nullptr);
}
