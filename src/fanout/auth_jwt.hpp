/*
 * auth_jwt.hpp: JWT verification and signing with OpenSSL EVP (PROTOCOL.md 1.5).
 *
 * Any thread; pure functions, no shared state. HS256/384/512 with the
 * tenant's shared secret in this version; asymmetric keys via JWKS later.
 */
#pragma once

#include "result.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace rt::fanout
{

/* What the sidecar keeps of a verified token. */
struct JwtClaims
{
	std::string role;		 /* "role" claim, required */
	std::string sub;		 /* "sub" claim, may be empty */
	int64_t exp = 0;		 /* "exp", seconds since epoch, rounded */
	std::string claims_json; /* the whole claims object, compact JSON */
};

/*
 * Verify token against secret at time now (seconds since epoch).
 * The token is URL-decoded and stripped of whitespace first. Errors carry the
 * exact PROTOCOL.md 1.4/3.5 texts:
 *   kMalformedJwt     "The token provided is not a valid JWT"
 *   kJwtSigner        "Failed to generate JWT signer, check your JWT secret or JWKS configuration"
 *                     (alg none, unknown alg, empty secret)
 *   kJwtSignature     "Failed to validate JWT signature"
 *   kInvalidJwtToken  "Fields `role` and `exp` are required in JWT"
 *   kInvalidJwtToken  "Token has expired <N> seconds ago" (N = now - exp)
 */
Result<JwtClaims> VerifyJwt(std::string_view token, std::string_view secret, int64_t now);

/* Sign claims_json (a JSON object) with HS256; for tests, tools and the run script. */
std::string SignJwtHs256(std::string_view claims_json, std::string_view secret);

/* base64url without padding, and its inverse (false on bad input). */
std::string Base64UrlEncode(std::string_view in);
bool Base64UrlDecode(std::string_view in, std::string &out);

} // namespace rt::fanout
