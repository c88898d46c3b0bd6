/*
 * auth_jwt.hpp: JWT verification and signing with OpenSSL EVP (PROTOCOL.md 1.5).
 *
 * JwtKeys: built once by the main thread (MakeJwtKeys, from the configuration),
 * then read by every thread without locks; its OpenSSL keys are never modified
 * after construction, which is what OpenSSL requires for sharing them.
 * VerifyJwt and the rest: any thread, pure functions.
 */
#pragma once

#include "base/result.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct evp_pkey_st; /* OpenSSL's EVP_PKEY */

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
 * One entry of the JWKS (RFC 7517), as far as verification needs it. Entries
 * that could not be turned into a key are kept (usable = false), logged at
 * start: upstream takes the first entry whose kty and kid match, so a broken
 * entry must still shadow a later one with the same kid.
 */
struct Jwk
{
	std::string kty;                /* "oct", "RSA", "EC" or "OKP" */
	std::optional<std::string> kid; /* absent unless a string */
	std::string crv;                /* EC: P-256/P-384/P-521; OKP: Ed25519/Ed448 */
	bool usable = false;
	bool has_k = false;                /* oct: "k" is a string (upstream matches only those) */
	std::string secret;                /* oct: base64url-decoded k */
	std::shared_ptr<evp_pkey_st> pkey; /* RSA, EC, OKP: the public key */
};

/* Everything a token can be verified with (PROTOCOL.md 1.5). */
struct JwtKeys
{
	std::string secret;    /* HS256/384/512 shared secret; empty: none */
	bool has_jwks = false; /* a JWKS was configured (even with no usable key) */
	std::vector<Jwk> jwks; /* in the JWKS's order */
	/* operator-set claim equality checks (JWT_CLAIM_VALIDATORS), sorted by claim name */
	std::vector<std::pair<std::string, std::string>> claim_validators;
};

/*
 * Build the key set: secret as is; jwks_json, when not empty, a JSON object
 * with a "keys" array (RFC 7517); validators_json, when not empty, a JSON
 * object of claim name -> string. Entries of "keys" that are not usable keys
 * are logged (warning, component "auth") and never crash; a JWKS or validator
 * text that is not of that shape is an kInvalidArgument error saying why.
 * Validators for exp and iat are ignored with a warning, as upstream's fixed
 * exp/iat checks replace them.
 */
Result<JwtKeys> MakeJwtKeys(std::string secret, std::string_view jwks_json,
                            std::string_view validators_json);

/*
 * Verify token against keys at time now (seconds since epoch).
 * The token is URL-decoded and stripped of whitespace first. Checks run in
 * upstream's order: shape and payload, header, signer, signature, then claims
 * (so a forged token never reveals claim errors). Errors carry the exact
 * PROTOCOL.md 1.4/3.5 texts:
 *   kMalformedJwt     "The token provided is not a valid JWT"
 *                     (not three base64url parts, header or payload not a JSON
 *                     object, bad %-escape, longer than kMaxJwtBytes, nested deeper
 *                     than kMaxJwtNesting, iat not a number)
 *   kJwtSigner        "Failed to generate JWT signer, check your JWT secret or JWKS configuration"
 *                     (alg missing, not a string, none or unknown; RS/ES/EdDSA
 *                     without a kid or without a JWKS; HS with no secret and no kid)
 *   kJwtSigner        "Failed to generate JWT signer for key ID (kid) "<kid>", check your
 *                     JWT secret or JWKS configuration" (kid inspected as Elixir does:
 *                     a string kid with no JWKS entry of the alg's kty, or only an
 *                     unusable one; HS with a kid, no oct entry for it and no secret)
 *   kJwtSignature     "Failed to validate JWT signature" (also: an ES or Ed signature
 *                     from a key whose curve is not the one the alg names)
 *   kInvalidJwtToken  "Token has expired <N> seconds ago" (N = now - exp, exp <= now)
 *   kInvalidJwtToken  "Invalid token" (a claim validator failed: the claim is
 *                     missing or not equal; an "aud" array passes if it holds the
 *                     value). Validators, exp and iat run in claim-name order, as
 *                     upstream's Joken walks its claim map.
 *   kInvalidJwtToken  "Fields `role` and `exp` are required in JWT"
 *                     (either missing, exp not a number, role not a string)
 * Keys: HS* a JWKS "oct" entry matching the header's kid, else the secret;
 * RS* an "RSA" entry, ES* an "EC" entry, EdDSA/Ed25519/Ed448 an "OKP" one,
 * each by kid (the first entry of that kty and kid). On success exp and iat are rounded, in
 * JwtClaims and in claims_json alike.
 */
Result<JwtClaims> VerifyJwt(std::string_view token, const JwtKeys &keys, int64_t now);

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
