/*
 * fuzz_http.cpp: libFuzzer target for what an unauthenticated HTTP client sends first: the
 * request head (src/fanout/server/upgrade_request.cpp, parsed before libwebsockets sees the
 * socket) and a REST body's JSON (the nesting guard, parse and re-serialization of
 * src/fanout/base/json.hpp that POST /api/broadcast runs).
 *
 * Built by `make fuzz-build` (clang, ASan, UBSan); run by scripts/fuzz.sh from
 * test/c/corpus/http. Each input is tried as a request head and as a body. Besides crashes
 * and sanitizer reports, it traps when a complete head claims more bytes than it was given,
 * when its x-* headers are not a JSON object, or when a body that passed the nesting guard
 * and parsed does not parse again, as the same kind of value, once serialized.
 */
#include "base/json.hpp"
#include "fuzz_check.hpp"
#include "protocol/protocol.hpp"
#include "server/upgrade_request.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

using namespace rt::fanout;

extern "C" int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string_view in(reinterpret_cast<const char *>(data), size);

	UpgradeRequest req;
	size_t head_len = 0;
	if (ParseRequestHead(in, req, head_len) == HeadStatus::kComplete)
	{
		rt::fuzz::Check(head_len <= in.size());
		rapidjson::Document headers;
		rt::fuzz::Check(json::Parse(headers, req.x_headers_json) && headers.IsObject());
	}

	if (!json::NestingWithin(in, kMaxJsonDepth))
		return 0;
	rapidjson::Document doc;
	if (!json::Parse(doc, in))
		return 0;
	/* what the REST API re-serializes parses again, as the same kind of value (numbers of
	 * more than 17 digits may move by one ulp: json.hpp kParseFlags) */
	std::string once = json::Stringify(doc);
	rapidjson::Document again;
	rt::fuzz::Check(json::Parse(again, once));
	rt::fuzz::Check(again.GetType() == doc.GetType());
	if (doc.IsObject())
		rt::fuzz::Check(again.MemberCount() == doc.MemberCount());
	if (doc.IsArray())
		rt::fuzz::Check(again.Size() == doc.Size());
	return 0;
}
