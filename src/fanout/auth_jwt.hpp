/*
 * auth_jwt.hpp: JWT verification and signing with OpenSSL EVP (PROTOCOL.md 1.5).
 *
 * Any thread; pure functions, no shared state. HS256/384/512 with the
 * tenant's shared secret in this version; asymmetric keys via JWKS later.
 */
#pragma once

#include "result.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rt::fanout
{

/* What the sidecar keeps of a verified token. */
struct JwtClaims
{
	std::string role;        /* "role" claim, required */
	std::string sub;         /* "sub" claim, may be empty */
	int64_t exp = 0;         /* "exp", seconds since epoch, rounded */
	std::string claims_json; /* the whole claims object, compact JSON */
};

/*
 * Longest token accepted, counted before URL-decoding. Real tokens are a few
 * KB; the cap bounds the work an unauthenticated client can cause.
 */
constexpr size_t kMaxJwtBytes = 64 * 1024;

/*
 * Deepest nesting of arrays and objects accepted in the header and payload:
 * re-serializing claims_json (and whoever parses it later) recurses once per
 * level, and a 64 KB token could otherwise nest 20,000 deep.
 */
constexpr int kMaxJwtNesting = 64;

/*
 * Verify token against secret at time now (seconds since epoch).
 * The token is URL-decoded and stripped of whitespace first. Checks run in
 * upstream's order: shape and payload, header, signer, signature, then claims
 * (so a forged token never reveals claim errors). Errors carry the exact
 * PROTOCOL.md 1.4/3.5 texts:
 *   kMalformedJwt     "The token provided is not a valid JWT"
 *                     (not three base64url parts, header or payload not a JSON
 *                     object, bad %-escape, longer than kMaxJwtBytes, nested deeper
 *                     than kMaxJwtNesting, iat not a number)
 *   kJwtSigner        "Failed to generate JWT signer, check your JWT secret or JWKS configuration"
 *                     (alg missing, not a string, none or unknown; empty secret)
 *   kJwtSignature     "Failed to validate JWT signature"
 *   kInvalidJwtToken  "Token has expired <N> seconds ago" (N = now - exp, exp <= now)
 *   kInvalidJwtToken  "Fields `role` and `exp` are required in JWT"
 *                     (either missing, exp not a number, role not a string)
 * On success exp and iat are rounded, in JwtClaims and in claims_json alike.
 */
Result<JwtClaims> VerifyJwt(std::string_view token, std::string_view secret, int64_t now);

/*
 * Sign claims_json (a JSON object, used verbatim) with HS256; for tests, tools
 * and the run script. Empty string only if OpenSSL fails.
 */
std::string SignJwtHs256(std::string_view claims_json, std::string_view secret);

/*
 * base64url without padding, and its inverse: padding optional, false on a
 * character outside the alphabet, an impossible length or non-zero pad bits.
 */
std::string Base64UrlEncode(std::string_view in);
bool Base64UrlDecode(std::string_view in, std::string &out);

} // namespace rt::fanout
