/*
 * static_ui.cpp: the `--ui` pages, loaded once and served from memory (static_ui.hpp).
 */
#include "server/static_ui.hpp"

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace rt::fanout
{

namespace
{

/* FNV-1a, 64 bits: a content hash for the ETag (not a security measure) */
std::string
ContentTag(std::string_view body)
{
	uint64_t h = 1469598103934665603ull;
	for (unsigned char c : body)
	{
		h ^= c;
		h *= 1099511628211ull;
	}
	char buf[24];
	std::snprintf(buf, sizeof(buf), "\"%016llx\"", static_cast<unsigned long long>(h));
	return buf;
}

/* An If-None-Match value names etag: one of its comma-separated tags, or "*". */
bool
Matches(std::string_view if_none_match, std::string_view etag)
{
	size_t at = 0;
	while (at < if_none_match.size())
	{
		size_t end = if_none_match.find(',', at);
		std::string_view tag = if_none_match.substr(
		    at, end == std::string_view::npos ? std::string_view::npos : end - at);
		while (!tag.empty() && tag.front() == ' ')
			tag.remove_prefix(1);
		while (!tag.empty() && tag.back() == ' ')
			tag.remove_suffix(1);
		if (tag.starts_with("W/"))
			tag.remove_prefix(2);
		if (tag == "*" || tag == etag)
			return true;
		if (end == std::string_view::npos)
			break;
		at = end + 1;
	}
	return false;
}

} // namespace

std::string_view
UiContentType(std::string_view name)
{
	constexpr std::array<std::pair<std::string_view, std::string_view>, 9> kTypes = {{
	    {".html", "text/html; charset=utf-8"},
	    {".js", "text/javascript; charset=utf-8"},
	    {".mjs", "text/javascript; charset=utf-8"},
	    {".css", "text/css; charset=utf-8"},
	    {".json", "application/json"},
	    {".svg", "image/svg+xml"},
	    {".png", "image/png"},
	    {".ico", "image/x-icon"},
	    {".txt", "text/plain; charset=utf-8"},
	}};
	for (const auto &[ext, type] : kTypes)
		if (name.ends_with(ext))
			return type;
	return "application/octet-stream";
}

std::shared_ptr<const StaticUi>
StaticUi::Load(const std::string &dir, std::string &err)
{
	auto ui = std::make_shared<StaticUi>();
	std::error_code ec;
	for (const auto &entry : std::filesystem::directory_iterator(dir, ec))
	{
		if (!entry.is_regular_file())
			continue;
		std::ifstream in(entry.path(), std::ios::binary);
		std::ostringstream body;
		body << in.rdbuf();
		if (!in.good() && !in.eof())
			continue;
		std::string name = entry.path().filename().string();
		UiFile f;
		f.body = body.str();
		f.content_type = std::string(UiContentType(name));
		f.etag = ContentTag(f.body);
		ui->files_.emplace(std::move(name), std::move(f));
	}
	if (ec)
	{
		err = "cannot read --ui-dir " + dir + ": " + ec.message();
		return nullptr;
	}
	if (ui->files_.empty())
	{
		err = "--ui-dir " + dir + " holds no file (make builds the pages into build/ui)";
		return nullptr;
	}
	return ui;
}

const UiFile *
StaticUi::Find(std::string_view path) const
{
	size_t q = path.find('?');
	if (q != std::string_view::npos)
		path = path.substr(0, q);
	std::string_view name;
	if (path == "/" || path == "/demo" || path == "/demo/")
		name = "index.html";
	else if (path == "/inspector" || path == "/inspector/")
		name = "inspector.html";
	else if (path.starts_with("/ui/"))
		name = path.substr(4);
	else
		return nullptr;
	/* one flat directory: no other path reaches a file */
	if (name.empty() || name.find('/') != std::string_view::npos || name.starts_with("."))
		return nullptr;
	auto it = files_.find(name);
	return it == files_.end() ? nullptr : &it->second;
}

std::string
UiResponse(const UiFile &f, std::string_view if_none_match)
{
	bool fresh = Matches(if_none_match, f.etag);
	std::string out = fresh ? "HTTP/1.1 304 Not Modified\r\n" : "HTTP/1.1 200 OK\r\n";
	out += "etag: " + f.etag + "\r\n";
	out += StaticUi::kSecurityHeaders;
	if (!fresh)
	{
		out += "content-type: " + f.content_type + "\r\n";
		out += "content-length: " + std::to_string(f.body.size()) + "\r\n\r\n";
		out += f.body;
	}
	else
		out += "\r\n";
	return out;
}

} // namespace rt::fanout
