/*
 * auth_jwt.cpp: JWT verification (HS256/384/512) and HS256 signing with
 * OpenSSL EVP_MAC, following upstream's jwt_verification.ex and
 * channels_authorization.ex (PROTOCOL.md 1.5).
 *
 * Any thread: the shard threads call VerifyJwt at connect, join and
 * access_token refresh; tools call SignJwtHs256. Pure functions; the only
 * shared object is the HMAC method fetched once (immutable, thread-safe).
 * The error texts are returned verbatim to clients, so they and the order of
 * the checks follow upstream exactly.
 */
#include "auth_jwt.hpp"

#include "json.hpp"
#include "url.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <cmath>
#include <memory>
#include <optional>

namespace rt::fanout
{

namespace
{

constexpr std::string_view kMalformedText = "The token provided is not a valid JWT";
constexpr std::string_view kSignerText =
    "Failed to generate JWT signer, check your JWT secret or JWKS configuration";
constexpr std::string_view kSignatureText = "Failed to validate JWT signature";
constexpr std::string_view kMissingClaimsText = "Fields `role` and `exp` are required in JWT";

/* The header SignJwtHs256 writes; the one Supabase's own tools write. */
constexpr std::string_view kHs256Header = R"({"alg":"HS256","typ":"JWT"})";

constexpr std::string_view kBase64UrlAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Reverse of kBase64UrlAlphabet; -1 for every byte outside it ('=' included). */
constexpr std::array<int8_t, 256> kBase64UrlValues = []
{
	std::array<int8_t, 256> t{};
	t.fill(-1);
	for (size_t i = 0; i < kBase64UrlAlphabet.size(); i++)
		t[static_cast<unsigned char>(kBase64UrlAlphabet[i])] = static_cast<int8_t>(i);
	return t;
}();

struct HsAlgorithm
{
	std::string_view alg; /* header "alg" value, case-sensitive as upstream */
	const char *digest;   /* OpenSSL digest name for OSSL_MAC_PARAM_DIGEST */
};

constexpr std::array<HsAlgorithm, 3> kHsAlgorithms = {{
    {"HS256", "SHA256"},
    {"HS384", "SHA384"},
    {"HS512", "SHA512"},
}};

struct MacFree
{
	void
	operator()(EVP_MAC *mac) const
	{
		EVP_MAC_free(mac);
	}
};

struct MacCtxFree
{
	void
	operator()(EVP_MAC_CTX *ctx) const
	{
		EVP_MAC_CTX_free(ctx);
	}
};

using MacPtr = std::unique_ptr<EVP_MAC, MacFree>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, MacCtxFree>;

Error
MakeError(ErrorCode code, std::string_view text)
{
	return Error{code, std::string(text)};
}

/*
 * The HMAC method, fetched once: a fetch searches the provider store under a
 * lock, and a fetched EVP_MAC is immutable and may be shared by threads.
 * Destroyed at exit before OpenSSL's own atexit cleanup, which was registered
 * earlier (during the fetch itself).
 */
EVP_MAC *
HmacMethod()
{
	static const MacPtr mac(EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_HMAC, nullptr));
	return mac.get();
}

/* out = HMAC-<digest>(key, data); false only if OpenSSL fails. */
bool
Hmac(const char *digest, std::string_view key, std::string_view data, std::string &out)
{
	EVP_MAC *mac = HmacMethod();
	if (mac == nullptr)
		return false;
	MacCtxPtr ctx(EVP_MAC_CTX_new(mac));
	if (!ctx)
		return false;

	/* OSSL_PARAM wants a mutable pointer but does not write through it. */
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char *>(digest), 0),
	    OSSL_PARAM_construct_end(),
	};
	/* A null key pointer means "keep the previous key": pass a real one even when empty. */
	static const unsigned char kNoKey = 0;
	const unsigned char *key_bytes =
	    key.empty() ? &kNoKey : reinterpret_cast<const unsigned char *>(key.data());
	if (EVP_MAC_init(ctx.get(), key_bytes, key.size(), params) != 1)
		return false;
	if (EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char *>(data.data()),
	                   data.size()) != 1)
		return false;

	unsigned char buf[EVP_MAX_MD_SIZE];
	size_t len = 0;
	if (EVP_MAC_final(ctx.get(), buf, &len, sizeof(buf)) != 1)
		return false;
	out.assign(reinterpret_cast<const char *>(buf), len);
	return true;
}

/* What upstream's ~r/\s|\n/ removes: PCRE's \s without Unicode (VT included). */
bool
IsTokenSpace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/*
 * Percent-decode in (as Elixir's URI.decode, url.hpp) and drop whitespace. A
 * "%" without two hex digits makes URI.decode raise upstream; here it is a
 * malformed token.
 */
bool
CleanToken(std::string_view in, std::string &out)
{
	if (!UrlDecode(in, out))
		return false;
	std::erase_if(out, IsTokenSpace);
	return true;
}

/*
 * A JSON number as whole seconds. Upstream rounds exp and iat with Erlang's
 * round/1 (half away from zero, as std::round); values beyond int64 are
 * clamped, which keeps "far future" and "long ago" meaning what they meant.
 */
int64_t
RoundSeconds(const rapidjson::Value &v)
{
	if (v.IsInt64())
		return v.GetInt64();
	if (v.IsUint64())
		return INT64_MAX; /* IsInt64 failed, so it is above INT64_MAX */
	constexpr double kTwo63 = 9223372036854775808.0;
	double d = std::round(v.GetDouble());
	if (d >= kTwo63)
		return INT64_MAX;
	if (d <= -kTwo63)
		return INT64_MIN;
	return static_cast<int64_t>(d);
}

/*
 * The last member of obj called name, or null. JSON allows duplicate names;
 * upstream's decoder and Postgres' jsonb both keep the last one, so the role
 * and alg used here must be the ones RLS later sees in claims_json.
 * (json::Member finds the first.)
 */
const rapidjson::Value *
LastMember(const rapidjson::Value &obj, std::string_view name)
{
	const rapidjson::Value *found = nullptr;
	for (auto it = obj.MemberBegin(); it != obj.MemberEnd(); ++it)
	{
		if (std::string_view(it->name.GetString(), it->name.GetStringLength()) == name)
			found = &it->value;
	}
	return found;
}

std::optional<std::string_view>
LastString(const rapidjson::Value &obj, std::string_view name)
{
	const rapidjson::Value *v = LastMember(obj, name);
	if (v == nullptr || !v->IsString())
		return std::nullopt;
	return std::string_view(v->GetString(), v->GetStringLength());
}

/* Replace a decimal claim by its rounded value, as upstream's claims map has it. */
void
RoundClaimInPlace(rapidjson::Value &claims, std::string_view name)
{
	for (auto it = claims.MemberBegin(); it != claims.MemberEnd(); ++it)
	{
		if (std::string_view(it->name.GetString(), it->name.GetStringLength()) == name &&
		    it->value.IsDouble())
			it->value.SetInt64(RoundSeconds(it->value));
	}
}

/* Decode one base64url segment holding a JSON object into doc. */
bool
DecodeJsonObject(std::string_view segment, rapidjson::Document &doc)
{
	std::string text;
	if (!Base64UrlDecode(segment, text) || !json::NestingWithin(text, kMaxJwtNesting))
		return false;
	return json::Parse(doc, text) && doc.IsObject();
}

} // namespace

std::string
Base64UrlEncode(std::string_view in)
{
	std::string out;
	out.reserve((in.size() + 2) / 3 * 4);
	const auto *p = reinterpret_cast<const unsigned char *>(in.data());
	size_t i = 0;
	for (; i + 3 <= in.size(); i += 3)
	{
		uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
		out.push_back(kBase64UrlAlphabet[(v >> 18) & 63]);
		out.push_back(kBase64UrlAlphabet[(v >> 12) & 63]);
		out.push_back(kBase64UrlAlphabet[(v >> 6) & 63]);
		out.push_back(kBase64UrlAlphabet[v & 63]);
	}
	size_t rest = in.size() - i;
	if (rest > 0)
	{
		uint32_t v = uint32_t{p[i]} << 16;
		if (rest == 2)
			v |= uint32_t{p[i + 1]} << 8;
		out.push_back(kBase64UrlAlphabet[(v >> 18) & 63]);
		out.push_back(kBase64UrlAlphabet[(v >> 12) & 63]);
		if (rest == 2)
			out.push_back(kBase64UrlAlphabet[(v >> 6) & 63]);
	}
	return out;
}

bool
Base64UrlDecode(std::string_view in, std::string &out)
{
	/*
	 * Padding is optional (JWTs never carry it), but when present it must
	 * complete the last group of four, so "Zg==" is accepted and "Zg=" is not.
	 */
	size_t len = in.size();
	size_t pad = 0;
	while (len > 0 && pad < 2 && in[len - 1] == '=')
	{
		len--;
		pad++;
	}
	if (pad > 0 && in.size() % 4 != 0)
		return false;
	if (len % 4 == 1)
		return false;

	out.clear();
	out.reserve(len / 4 * 3 + 2);
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++)
	{
		int8_t v = kBase64UrlValues[static_cast<unsigned char>(in[i])];
		if (v < 0)
			return false;
		acc = (acc << 6) | static_cast<uint32_t>(v);
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out.push_back(static_cast<char>((acc >> bits) & 0xFF));
			acc &= (1u << bits) - 1;
		}
	}
	/*
	 * Non-zero leftover bits mean a second spelling of the same bytes; refusing
	 * it keeps one token text per signature.
	 */
	return acc == 0;
}

Result<JwtClaims>
VerifyJwt(std::string_view token, std::string_view secret, int64_t now)
{
	/* Before any copy or decoding: the cap is what bounds the work. */
	if (token.size() > kMaxJwtBytes)
		return MakeError(ErrorCode::kMalformedJwt, kMalformedText);

	std::string clean;
	if (!CleanToken(token, clean))
		return MakeError(ErrorCode::kMalformedJwt, kMalformedText);

	size_t dot1 = clean.find('.');
	size_t dot2 = dot1 == std::string::npos ? dot1 : clean.find('.', dot1 + 1);
	if (dot2 == std::string::npos || clean.find('.', dot2 + 1) != std::string::npos)
		return MakeError(ErrorCode::kMalformedJwt, kMalformedText);
	std::string_view all(clean);
	std::string_view header_b64 = all.substr(0, dot1);
	std::string_view payload_b64 = all.substr(dot1 + 1, dot2 - dot1 - 1);
	std::string_view signature_b64 = all.substr(dot2 + 1);
	std::string_view signing_input = all.substr(0, dot2);

	/* Upstream peeks at the claims before the header: keep that order. */
	rapidjson::Document claims;
	if (!DecodeJsonObject(payload_b64, claims))
		return MakeError(ErrorCode::kMalformedJwt, kMalformedText);
	rapidjson::Document header;
	if (!DecodeJsonObject(header_b64, header))
		return MakeError(ErrorCode::kMalformedJwt, kMalformedText);

	/*
	 * Key selection. A missing or non-string alg, "none" and every
	 * algorithm without a configured key fall through to the signer error,
	 * as upstream's last generate_signer clause does.
	 */
	std::optional<std::string_view> alg = LastString(header, "alg");
	const HsAlgorithm *hs = nullptr;
	for (const HsAlgorithm &a : kHsAlgorithms)
	{
		if (alg && *alg == a.alg)
			hs = &a;
	}
	if (hs == nullptr || secret.empty())
		return MakeError(ErrorCode::kJwtSigner, kSignerText);

	std::string expected;
	if (!Hmac(hs->digest, secret, signing_input, expected))
		return MakeError(ErrorCode::kJwtSigner, kSignerText);
	std::string signature;
	if (!Base64UrlDecode(signature_b64, signature) || signature.size() != expected.size() ||
	    CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0)
		return MakeError(ErrorCode::kJwtSignature, kSignatureText);

	/*
	 * Claims, only now that the token is authentic. Upstream's Joken
	 * validators (exp, then iat) run before the required-claims check, so an
	 * expired token without a role reads as expired.
	 */
	std::optional<int64_t> exp;
	if (const rapidjson::Value *v = LastMember(claims, "exp"); v != nullptr && v->IsNumber())
	{
		exp = RoundSeconds(*v);
		if (*exp <= now)
		{
			/* Unsigned: exp <= now, so the true difference fits and cannot overflow. */
			uint64_t ago = static_cast<uint64_t>(now) - static_cast<uint64_t>(*exp);
			return MakeError(ErrorCode::kInvalidJwtToken,
			                 "Token has expired " + std::to_string(ago) + " seconds ago");
		}
	}
	if (const rapidjson::Value *v = LastMember(claims, "iat"); v != nullptr && !v->IsNumber())
		return MakeError(ErrorCode::kMalformedJwt, kMalformedText);

	/* A non-number exp or non-string role is as unusable as a missing one. */
	std::optional<std::string_view> role = LastString(claims, "role");
	if (!exp || !role)
		return MakeError(ErrorCode::kInvalidJwtToken, kMissingClaimsText);

	JwtClaims out;
	out.role = std::string(*role);
	out.sub = std::string(LastString(claims, "sub").value_or(std::string_view()));
	out.exp = *exp;
	RoundClaimInPlace(claims, "exp");
	RoundClaimInPlace(claims, "iat");
	out.claims_json = json::Stringify(claims);
	return out;
}

std::string
SignJwtHs256(std::string_view claims_json, std::string_view secret)
{
	std::string token = Base64UrlEncode(kHs256Header);
	token.push_back('.');
	token += Base64UrlEncode(claims_json);
	std::string mac;
	if (!Hmac("SHA256", secret, token, mac))
		return std::string();
	token.push_back('.');
	token += Base64UrlEncode(mac);
	return token;
}

} // namespace rt::fanout
