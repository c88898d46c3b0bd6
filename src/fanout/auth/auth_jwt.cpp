/*
 * auth_jwt.cpp: JWT verification (HS256/384/512 with EVP_MAC; RS256/384/512,
 * ES256/384/512 and EdDSA with EVP_DigestVerify) and HS256 signing, following
 * upstream's jwt_verification.ex and channels_authorization.ex (PROTOCOL.md 1.5).
 *
 * Threads: MakeJwtKeys runs once on the main thread; the shard threads call
 * VerifyJwt at connect, join and access_token refresh; tools call
 * SignJwtHs256. The shared objects are the HMAC method fetched once and the
 * JwtKeys' public keys, all immutable after construction (thread-safe reads).
 * The error texts are returned verbatim to clients, so they and the order of
 * the checks follow upstream exactly.
 */
#include "auth/auth_jwt.hpp"

#include "protocol/elixir_inspect.hpp"
#include "base/json.hpp"
#include "base/log.hpp"
#include "base/url.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
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
/* Joken's default validation failure text (upstream's claim validators). */
constexpr std::string_view kInvalidClaimText = "Invalid token";

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

/* A unique_ptr deleter that calls an OpenSSL free function. */
template <auto FreeFn> struct FreeWith
{
	template <typename T>
	void
	operator()(T *p) const
	{
		FreeFn(p);
	}
};

using MacPtr = std::unique_ptr<EVP_MAC, FreeWith<EVP_MAC_free>>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, FreeWith<EVP_MAC_CTX_free>>;

/* The algorithm families of PROTOCOL.md 1.5, each with its JWK kty. */
enum class Family
{
	kHmac, /* oct */
	kRsa,  /* RSA */
	kEc,   /* EC */
	kEd,   /* OKP */
};

struct Algorithm
{
	std::string_view alg; /* header "alg" value, case-sensitive as upstream */
	Family family;
	const char *digest;     /* OpenSSL digest name; null for EdDSA */
	std::string_view curve; /* ES*: the one curve RFC 7518 allows; Ed25519/Ed448: that
	                           curve; empty: any */
};

constexpr std::array<Algorithm, 12> kAlgorithms = {{
    {"HS256", Family::kHmac, "SHA256", ""},
    {"HS384", Family::kHmac, "SHA384", ""},
    {"HS512", Family::kHmac, "SHA512", ""},
    {"RS256", Family::kRsa, "SHA256", ""},
    {"RS384", Family::kRsa, "SHA384", ""},
    {"RS512", Family::kRsa, "SHA512", ""},
    {"ES256", Family::kEc, "SHA256", "P-256"},
    {"ES384", Family::kEc, "SHA384", "P-384"},
    {"ES512", Family::kEc, "SHA512", "P-521"},
    {"EdDSA", Family::kEd, nullptr, ""},
    {"Ed25519", Family::kEd, nullptr, "Ed25519"},
    {"Ed448", Family::kEd, nullptr, "Ed448"},
}};

std::string_view
KtyOf(Family f)
{
	switch (f)
	{
	case Family::kHmac:
		return "oct";
	case Family::kRsa:
		return "RSA";
	case Family::kEc:
		return "EC";
	case Family::kEd:
		return "OKP";
	}
	return "";
}

/* The curves of kty EC: JWK name, OpenSSL group name, bytes per coordinate. */
struct EcCurve
{
	std::string_view crv;
	const char *group;
	size_t bytes;
};

constexpr std::array<EcCurve, 3> kEcCurves = {{
    {"P-256", "prime256v1", 32},
    {"P-384", "secp384r1", 48},
    {"P-521", "secp521r1", 66},
}};

const EcCurve *
FindEcCurve(std::string_view crv)
{
	for (const EcCurve &c : kEcCurves)
	{
		if (c.crv == crv)
			return &c;
	}
	return nullptr;
}

using PkeyPtr = std::unique_ptr<EVP_PKEY, FreeWith<EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, FreeWith<EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, FreeWith<EVP_MD_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, FreeWith<BN_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, FreeWith<OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, FreeWith<OSSL_PARAM_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, FreeWith<ECDSA_SIG_free>>;

Error
MakeError(ErrorCode code, std::string_view text)
{
	return Error{code, std::string(text)};
}

/* The signer error, in its kid variant when the header named a kid (PROTOCOL.md 3.5). */
Error
SignerError(const std::optional<std::string_view> &kid)
{
	if (!kid)
		return MakeError(ErrorCode::kJwtSigner, kSignerText);
	std::string text = "Failed to generate JWT signer for key ID (kid) ";
	elixir::InspectString(text, *kid);
	text += ", check your JWT secret or JWKS configuration";
	return Error{ErrorCode::kJwtSigner, std::move(text)};
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

/* A base64url member of a JWK, decoded; nullopt when absent, not a string or not base64url. */
std::optional<std::string>
JwkBytes(const rapidjson::Value &jwk, std::string_view name)
{
	std::optional<std::string_view> v = LastString(jwk, name);
	std::string out;
	if (!v || !Base64UrlDecode(*v, out))
		return std::nullopt;
	return out;
}

/* A public key from OSSL_PARAMs (type "RSA" or "EC"); null if OpenSSL refuses it. */
PkeyPtr
PublicKeyFromParams(const char *type, OSSL_PARAM_BLD *bld)
{
	ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
	PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1)
		return nullptr;
	EVP_PKEY *raw = nullptr;
	if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
		return nullptr;
	PkeyPtr key(raw);
	/* fromdata does not check that the point is on the curve (or n, e sane): ask */
	PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
	if (!check || EVP_PKEY_public_check(check.get()) != 1)
		return nullptr;
	return key;
}

/* RFC 7518 6.3.1: n and e, big-endian unsigned. Empty when usable, else why not. */
std::string
LoadRsa(const rapidjson::Value &v, Jwk &jwk)
{
	std::optional<std::string> n = JwkBytes(v, "n"), e = JwkBytes(v, "e");
	if (!n || !e || n->empty() || e->empty())
		return "n and e must be base64url strings";
	auto to_bn = [](const std::string &b)
	{
		return BnPtr(BN_bin2bn(reinterpret_cast<const unsigned char *>(b.data()),
		                       static_cast<int>(b.size()), nullptr));
	};
	BnPtr bn_n = to_bn(*n), bn_e = to_bn(*e);
	ParamBldPtr bld(OSSL_PARAM_BLD_new());
	if (!bn_n || !bn_e || !bld ||
	    OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1)
		return "OpenSSL could not hold the key";
	PkeyPtr key = PublicKeyFromParams("RSA", bld.get());
	if (!key)
		return "OpenSSL refused the RSA key";
	jwk.pkey = std::shared_ptr<EVP_PKEY>(key.release(), FreeWith<EVP_PKEY_free>{});
	return "";
}

/* RFC 7518 6.2.1: crv, and x and y of exactly the curve's size. */
std::string
LoadEc(const rapidjson::Value &v, Jwk &jwk)
{
	const EcCurve *curve = FindEcCurve(jwk.crv);
	if (curve == nullptr)
		return "crv must be P-256, P-384 or P-521";
	std::optional<std::string> x = JwkBytes(v, "x"), y = JwkBytes(v, "y");
	if (!x || !y || x->size() != curve->bytes || y->size() != curve->bytes)
		return "x and y must be base64url strings of " + std::to_string(curve->bytes) + " bytes";
	std::string point = "\x04" + *x + *y; /* SEC 1 uncompressed point */
	ParamBldPtr bld(OSSL_PARAM_BLD_new());
	if (!bld ||
	    OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, curve->group, 0) !=
	        1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
	                                     point.size()) != 1)
		return "OpenSSL could not hold the key";
	PkeyPtr key = PublicKeyFromParams("EC", bld.get());
	if (!key)
		return "the point is not on the curve";
	jwk.pkey = std::shared_ptr<EVP_PKEY>(key.release(), FreeWith<EVP_PKEY_free>{});
	return "";
}

/* RFC 8037 2: crv Ed25519 or Ed448 and x, the raw public key. */
std::string
LoadOkp(const rapidjson::Value &v, Jwk &jwk)
{
	int type = 0;
	size_t bytes = 0;
	if (jwk.crv == "Ed25519")
		type = EVP_PKEY_ED25519, bytes = 32;
	else if (jwk.crv == "Ed448")
		type = EVP_PKEY_ED448, bytes = 57;
	else
		return "crv must be Ed25519 or Ed448 (a signing curve)";
	std::optional<std::string> x = JwkBytes(v, "x");
	if (!x || x->size() != bytes)
		return "x must be a base64url string of " + std::to_string(bytes) + " bytes";
	EVP_PKEY *raw = EVP_PKEY_new_raw_public_key(
	    type, nullptr, reinterpret_cast<const unsigned char *>(x->data()), x->size());
	if (raw == nullptr)
		return "OpenSSL refused the key";
	jwk.pkey = std::shared_ptr<EVP_PKEY>(raw, FreeWith<EVP_PKEY_free>{});
	return "";
}

/* One "keys" entry into jwk; empty when usable, else why not. */
std::string
LoadJwk(const rapidjson::Value &v, Jwk &jwk)
{
	jwk.crv = std::string(LastString(v, "crv").value_or(""));
	if (jwk.kty == "oct")
	{
		std::optional<std::string_view> k = LastString(v, "k");
		jwk.has_k = k.has_value();
		if (!k)
			return "k must be a string";
		if (!Base64UrlDecode(*k, jwk.secret))
			return "k is not base64url";
		/* an empty HMAC key is one anybody can compute: every token naming its kid passes */
		if (jwk.secret.empty())
			return "k is empty";
		return "";
	}
	if (jwk.kty == "RSA")
		return LoadRsa(v, jwk);
	if (jwk.kty == "EC")
		return LoadEc(v, jwk);
	if (jwk.kty == "OKP")
		return LoadOkp(v, jwk);
	return "kty must be oct, RSA, EC or OKP";
}

/* An ES* signature (RFC 7518 3.4: r || s, each half bytes) as the DER OpenSSL verifies. */
bool
EcdsaRawToDer(std::string_view raw, size_t half, std::string &der)
{
	if (raw.size() != 2 * half)
		return false;
	const auto *p = reinterpret_cast<const unsigned char *>(raw.data());
	EcdsaSigPtr sig(ECDSA_SIG_new());
	BIGNUM *r = BN_bin2bn(p, static_cast<int>(half), nullptr);
	BIGNUM *s = BN_bin2bn(p + half, static_cast<int>(half), nullptr);
	if (!sig || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1)
	{
		BN_free(r);
		BN_free(s);
		return false;
	}
	unsigned char *out = nullptr;
	int len = i2d_ECDSA_SIG(sig.get(), &out);
	if (len <= 0)
		return false;
	der.assign(reinterpret_cast<const char *>(out), static_cast<size_t>(len));
	OPENSSL_free(out);
	return true;
}

/* EVP_DigestVerify of data against sig with key (digest null: EdDSA, which hashes itself). */
bool
PublicKeyVerify(EVP_PKEY *key, const char *digest, std::string_view data, std::string_view sig)
{
	MdCtxPtr ctx(EVP_MD_CTX_new());
	if (!ctx ||
	    EVP_DigestVerifyInit_ex(ctx.get(), nullptr, digest, nullptr, nullptr, key, nullptr) != 1)
		return false;
	return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char *>(sig.data()),
	                        sig.size(), reinterpret_cast<const unsigned char *>(data.data()),
	                        data.size()) == 1;
}

/* The first JWKS entry with this kty and kid (and, for oct, a string k), or null. */
const Jwk *
FindJwk(const JwtKeys &keys, std::string_view kty, std::string_view kid)
{
	for (const Jwk &j : keys.jwks)
	{
		if (j.kty == kty && j.kid && *j.kid == kid && (kty != "oct" || j.has_k))
			return &j;
	}
	return nullptr;
}

/* One operator-set validator: the claim equals value ("aud": or an array holding it). */
bool
ClaimMatches(const rapidjson::Value &claims, std::string_view name, std::string_view value)
{
	const rapidjson::Value *v = LastMember(claims, name);
	if (v == nullptr)
		return false;
	auto equal = [&](const rapidjson::Value &x)
	{ return x.IsString() && std::string_view(x.GetString(), x.GetStringLength()) == value; };
	if (equal(*v))
		return true;
	if (name == "aud" && v->IsArray())
		return std::any_of(v->Begin(), v->End(), equal);
	return false;
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

Result<JwtKeys>
MakeJwtKeys(std::string secret, std::string_view jwks_json, std::string_view validators_json)
{
	JwtKeys keys;
	keys.secret = std::move(secret);

	if (!jwks_json.empty())
	{
		rapidjson::Document doc;
		if (!json::Parse(doc, jwks_json) || !doc.IsObject())
			return MakeError(ErrorCode::kInvalidArgument,
			                 "the JWKS is not a JSON object (expected {\"keys\":[...]})");
		const rapidjson::Value *list = LastMember(doc, "keys");
		if (list == nullptr || !list->IsArray())
			return MakeError(ErrorCode::kInvalidArgument,
			                 "the JWKS has no \"keys\" array (expected {\"keys\":[...]})");
		keys.has_jwks = true;
		size_t index = 0, usable = 0;
		for (const rapidjson::Value &v : list->GetArray())
		{
			size_t at = index++;
			std::optional<std::string_view> kty =
			    v.IsObject() ? LastString(v, "kty") : std::nullopt;
			if (!kty)
			{
				Log(LogLevel::kWarning, "auth", "JWKS key %zu skipped: not an object with a kty",
				    at);
				continue;
			}
			Jwk jwk;
			jwk.kty = std::string(*kty);
			if (std::optional<std::string_view> kid = LastString(v, "kid"))
				jwk.kid = std::string(*kid);
			std::string why = LoadJwk(v, jwk);
			jwk.usable = why.empty();
			std::string kid_text = jwk.kid ? *jwk.kid : "(none)";
			if (!jwk.usable)
				Log(LogLevel::kWarning, "auth", "JWKS key %zu (kty %s, kid %s) skipped: %s", at,
				    jwk.kty.c_str(), kid_text.c_str(), why.c_str());
			else if (!jwk.kid)
				Log(LogLevel::kWarning, "auth",
				    "JWKS key %zu (kty %s) has no kid: no token can select it", at,
				    jwk.kty.c_str());
			usable += jwk.usable ? 1 : 0;
			/* a kty no algorithm uses can never be selected: not kept */
			if (jwk.kty == "oct" || jwk.kty == "RSA" || jwk.kty == "EC" || jwk.kty == "OKP")
				keys.jwks.push_back(std::move(jwk));
		}
		Log(LogLevel::kInfo, "auth", "JWKS: %zu usable keys of %zu", usable, index);
	}

	if (!validators_json.empty())
	{
		rapidjson::Document doc;
		if (!json::Parse(doc, validators_json) || !doc.IsObject())
			return MakeError(ErrorCode::kInvalidArgument,
			                 "JWT claim validators is not a valid JSON object");
		/* by name, last duplicate wins (as a decoded map); std::map sorts bytewise, as Elixir */
		std::map<std::string, std::string> sorted;
		for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it)
		{
			std::string name(it->name.GetString(), it->name.GetStringLength());
			if (!it->value.IsString())
				return MakeError(ErrorCode::kInvalidArgument,
				                 "JWT claim validator \"" + name + "\" must be a string");
			if (name == "exp" || name == "iat")
			{
				Log(LogLevel::kWarning, "auth",
				    "JWT claim validator %s ignored: exp and iat have their own checks",
				    name.c_str());
				continue;
			}
			sorted[name] = std::string(it->value.GetString(), it->value.GetStringLength());
		}
		keys.claim_validators.assign(sorted.begin(), sorted.end());
	}
	return keys;
}

namespace
{

/* The three base64url parts of a compact JWS, and what the signature covers */
struct TokenParts
{
	std::string_view header, payload, signature, signing_input;
};

/* header.payload.signature, exactly two dots */
bool
SplitToken(std::string_view all, TokenParts &p)
{
	size_t dot1 = all.find('.');
	size_t dot2 = dot1 == std::string_view::npos ? dot1 : all.find('.', dot1 + 1);
	if (dot2 == std::string_view::npos || all.find('.', dot2 + 1) != std::string_view::npos)
		return false;
	p.header = all.substr(0, dot1);
	p.payload = all.substr(dot1 + 1, dot2 - dot1 - 1);
	p.signature = all.substr(dot2 + 1);
	p.signing_input = all.substr(0, dot2);
	return true;
}

/* HS*: an oct JWK by kid, else the secret (most Supabase Auth tokens carry a kid) */
Result<bool>
VerifyHmac(const Algorithm &algo, const JwtKeys &keys, std::optional<std::string_view> kid,
           std::string_view signing_input, const std::string &signature, bool sig_ok)
{
	std::string_view key = keys.secret;
	const Jwk *jwk = keys.has_jwks && kid ? FindJwk(keys, "oct", *kid) : nullptr;
	if (jwk != nullptr && !jwk->usable)
		return SignerError(kid);
	if (jwk != nullptr)
		key = jwk->secret;
	else if (keys.secret.empty())
		return SignerError(kid);

	std::string expected;
	if (!Hmac(algo.digest, key, signing_input, expected))
		return SignerError(std::nullopt);
	if (!sig_ok || signature.size() != expected.size() ||
	    CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0)
		return MakeError(ErrorCode::kJwtSignature, kSignatureText);
	return true;
}

/* RS*, ES*, EdDSA: the JWKS key named by kid */
Result<bool>
VerifyPublicKey(const Algorithm &algo, const JwtKeys &keys, std::optional<std::string_view> kid,
                std::string_view signing_input, std::string &signature, bool sig_ok)
{
	if (!keys.has_jwks || !kid)
		return SignerError(std::nullopt);
	const Jwk *jwk = FindJwk(keys, KtyOf(algo.family), *kid);
	if (jwk == nullptr || !jwk->usable)
		return SignerError(kid);

	/* ES256 needs P-256 and so on; Ed25519/Ed448 name their curve, EdDSA takes either */
	if (!algo.curve.empty() && jwk->crv != algo.curve)
		return MakeError(ErrorCode::kJwtSignature, kSignatureText);
	std::string der;
	if (algo.family == Family::kEc)
	{
		const EcCurve *curve = FindEcCurve(jwk->crv);
		sig_ok = sig_ok && curve != nullptr && EcdsaRawToDer(signature, curve->bytes, der);
		signature.swap(der);
	}
	if (!sig_ok || !PublicKeyVerify(jwk->pkey.get(), algo.digest, signing_input, signature))
		return MakeError(ErrorCode::kJwtSignature, kSignatureText);
	return true;
}

/*
 * Key selection (upstream's generate_signer clauses) and the signature. A
 * missing or non-string alg, "none" and every other algorithm fall through to
 * the signer error, as its last clause does; so do RS/ES/EdDSA without a
 * string kid or without a JWKS.
 */
Result<bool>
VerifySignature(const rapidjson::Document &header, const TokenParts &p, const JwtKeys &keys)
{
	std::optional<std::string_view> alg = LastString(header, "alg");
	std::optional<std::string_view> kid = LastString(header, "kid");
	const Algorithm *algo = nullptr;
	for (const Algorithm &a : kAlgorithms)
	{
		if (alg && *alg == a.alg)
			algo = &a;
	}
	if (algo == nullptr)
		return SignerError(std::nullopt);

	std::string signature;
	bool sig_ok = Base64UrlDecode(p.signature, signature);
	if (algo->family == Family::kHmac)
		return VerifyHmac(*algo, keys, kid, p.signing_input, signature, sig_ok);
	return VerifyPublicKey(*algo, keys, kid, p.signing_input, signature, sig_ok);
}

/*
 * Claims, only once the token is authentic. Upstream's Joken validators run
 * before the required-claims check (so an expired token without a role reads
 * as expired), in claim-name order: the operator's validators named before
 * "exp" (phase 0), exp, those between (1), iat, those after "iat" (2).
 * Validators for exp and iat were dropped at start.
 */
Result<JwtClaims>
CheckClaims(rapidjson::Document &claims, const JwtKeys &keys, int64_t now)
{
	auto validators = [&](int phase) -> bool
	{
		for (const auto &[name, value] : keys.claim_validators)
		{
			int p = name < "exp" ? 0 : name < "iat" ? 1 : 2;
			if (p == phase && !ClaimMatches(claims, name, value))
				return false;
		}
		return true;
	};
	if (!validators(0))
		return MakeError(ErrorCode::kInvalidJwtToken, kInvalidClaimText);
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
	if (!validators(1))
		return MakeError(ErrorCode::kInvalidJwtToken, kInvalidClaimText);
	if (const rapidjson::Value *v = LastMember(claims, "iat"); v != nullptr && !v->IsNumber())
		return MakeError(ErrorCode::kMalformedJwt, kMalformedText);
	if (!validators(2))
		return MakeError(ErrorCode::kInvalidJwtToken, kInvalidClaimText);

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

} // namespace

Result<JwtClaims>
VerifyJwt(std::string_view token, const JwtKeys &keys, int64_t now)
{
	/* Before any copy or decoding: the cap is what bounds the work. */
	if (token.size() > kMaxJwtBytes)
		return MakeError(ErrorCode::kMalformedJwt, kMalformedText);

	std::string clean;
	TokenParts parts;
	if (!CleanToken(token, clean) || !SplitToken(clean, parts))
		return MakeError(ErrorCode::kMalformedJwt, kMalformedText);

	/* Upstream peeks at the claims before the header: keep that order. */
	rapidjson::Document claims;
	if (!DecodeJsonObject(parts.payload, claims))
		return MakeError(ErrorCode::kMalformedJwt, kMalformedText);
	rapidjson::Document header;
	if (!DecodeJsonObject(parts.header, header))
		return MakeError(ErrorCode::kMalformedJwt, kMalformedText);

	Result<bool> signed_ok = VerifySignature(header, parts, keys);
	if (!signed_ok.ok())
		return signed_ok.error();
	return CheckClaims(claims, keys, now);
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
