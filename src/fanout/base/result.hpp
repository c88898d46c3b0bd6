/*
 * result.hpp: expected failures as values (STYLE.md section 8).
 *
 * Any thread. An Error carries the project's ErrorCode and the exact text a
 * client receives (PROTOCOL.md strings); Result<T> is either a T or an Error.
 */
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace rt::fanout
{

enum class ErrorCode
{
	kMalformedJwt,     /* MalformedJWT: not a JWT, bad header */
	kInvalidJwtToken,  /* InvalidJWTToken: expired, missing claims */
	kJwtSignature,     /* JwtSignatureError: bad signature */
	kJwtSigner,        /* JwtSignerError: no usable key / algorithm */
	kMalformedMessage, /* MalformedWebSocketMessage: dropped frame */
	kPayloadTooLarge,  /* payload_size_exceeded */
	kInvalidArgument,  /* bad option, bad request */
	kInternal,         /* anything else */
};

struct Error
{
	ErrorCode code;
	std::string message; /* exact client-facing text, without code prefix */
};

template <typename T> class Result
{
public:
	Result(T value) : v_(std::move(value)) {}
	Result(Error error) : v_(std::move(error)) {}

	bool
	ok() const
	{
		return v_.index() == 0;
	}
	explicit operator bool() const { return ok(); }
	T &
	value()
	{
		return std::get<0>(v_);
	}
	const T &
	value() const
	{
		return std::get<0>(v_);
	}
	const Error &
	error() const
	{
		return std::get<1>(v_);
	}

private:
	std::variant<T, Error> v_;
};

} // namespace rt::fanout
