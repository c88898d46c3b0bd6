/*
 * static_ui.hpp: the pages of `--ui` (the demo at / and /demo, the inspector at
 * /inspector, their scripts and styles under /ui/), read once at start-up from
 * --ui-dir into memory and served from it: the right content type, an ETag
 * (If-None-Match answers 304), Cache-Control: no-cache (revalidated on each
 * load), and a strict Content-Security-Policy (scripts, styles and connections
 * to this origin only; no inline script, no frames). Off unless --ui is given.
 *
 * Built once on the main thread; read by every shard (immutable).
 */
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace rt::fanout
{

struct UiFile
{
	std::string body;
	std::string content_type;
	std::string etag; /* "\"<16 hex digits>\"" */
};

class StaticUi
{
public:
	/* The files of dir (not its subdirectories); nullptr with err set when there are none. */
	static std::shared_ptr<const StaticUi> Load(const std::string &dir, std::string &err);

	/* The file a GET of path serves, or nullptr (not a UI path, or no such file). */
	const UiFile *Find(std::string_view path) const;
	size_t
	size() const
	{
		return files_.size();
	}

	/* The headers every UI response carries. */
	static constexpr std::string_view kSecurityHeaders =
	    "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'; "
	    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
	    "frame-ancestors 'none'\r\n"
	    "x-content-type-options: nosniff\r\n"
	    "referrer-policy: no-referrer\r\n"
	    "cache-control: no-cache\r\n";

private:
	std::map<std::string, UiFile, std::less<>> files_; /* by file name */
};

/* The content type of a file name by its extension; application/octet-stream if unknown. */
std::string_view UiContentType(std::string_view name);

/*
 * The whole HTTP response to a GET of f: 304 without a body when if_none_match
 * (the request's If-None-Match, "" if none) names its ETag, else 200 with it.
 */
std::string UiResponse(const UiFile &f, std::string_view if_none_match);

} // namespace rt::fanout
