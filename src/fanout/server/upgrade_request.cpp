/*
 * upgrade_request.cpp: minimal HTTP/1.x request-head parser (pure).
 */
#include "server/upgrade_request.hpp"

#include "base/json.hpp"

#include "base/url.hpp"

#include <cctype>

namespace rt::fanout
{

namespace
{

bool
IEquals(std::string_view a, std::string_view b)
{
	if (a.size() != b.size())
		return false;
	for (size_t i = 0; i < a.size(); i++)
	{
		if (tolower(static_cast<unsigned char>(a[i])) != tolower(static_cast<unsigned char>(b[i])))
			return false;
	}
	return true;
}

std::string_view
Trim(std::string_view s)
{
	while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
		s.remove_prefix(1);
	while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
		s.remove_suffix(1);
	return s;
}

/* Does a comma-separated header value contain token (case-insensitive)? */
bool
HasToken(std::string_view value, std::string_view token)
{
	while (!value.empty())
	{
		size_t comma = value.find(',');
		if (IEquals(Trim(value.substr(0, comma)), token))
			return true;
		if (comma == std::string_view::npos)
			break;
		value.remove_prefix(comma + 1);
	}
	return false;
}

void
ParseQuery(std::string_view query, UpgradeRequest &out)
{
	while (!query.empty())
	{
		size_t amp = query.find('&');
		std::string_view pair = query.substr(0, amp);
		size_t eq = pair.find('=');
		std::string_view name = pair.substr(0, eq);
		std::string_view raw = eq == std::string_view::npos ? "" : pair.substr(eq + 1);
		std::string value;
		if (UrlDecode(raw, value))
		{
			/* the first occurrence wins, as with lws_get_urlarg_by_name */
			if (name == "vsn" && !out.vsn)
				out.vsn = value;
			else if (name == "apikey" && !out.apikey)
				out.apikey = value;
		}
		if (amp == std::string_view::npos)
			break;
		query.remove_prefix(amp + 1);
	}
}

} // namespace

HeadStatus
ParseRequestHead(std::string_view bytes, UpgradeRequest &out, size_t &head_len)
{
	size_t end = bytes.find("\r\n\r\n");
	if (end == std::string_view::npos)
		return HeadStatus::kIncomplete;
	head_len = end + 4;
	std::string_view head = bytes.substr(0, end + 2); /* every line ends in \r\n */

	size_t eol = head.find("\r\n");
	std::string_view line = head.substr(0, eol);
	size_t sp1 = line.find(' ');
	size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
	if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
	    !line.substr(sp2 + 1).starts_with("HTTP/1."))
		return HeadStatus::kMalformed;
	out.method = std::string(line.substr(0, sp1));
	std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
	size_t q = target.find('?');
	out.path = std::string(target.substr(0, q));
	if (q != std::string_view::npos)
		ParseQuery(target.substr(q + 1), out);

	bool upgrade_ws = false, connection_upgrade = false;
	std::string x_headers;
	head.remove_prefix(eol + 2);
	while (!head.empty())
	{
		eol = head.find("\r\n");
		line = head.substr(0, eol);
		head.remove_prefix(eol + 2);
		size_t colon = line.find(':');
		if (colon == std::string_view::npos)
			return HeadStatus::kMalformed;
		std::string_view name = line.substr(0, colon);
		std::string_view value = Trim(line.substr(colon + 1));
		if (IEquals(name, "upgrade"))
			upgrade_ws = HasToken(value, "websocket");
		else if (IEquals(name, "connection"))
			connection_upgrade = HasToken(value, "upgrade");
		else if (IEquals(name, "x-api-key"))
			out.x_api_key = std::string(value);
		else if (IEquals(name, "host"))
			out.host = std::string(value);
		/* x-* headers for request.headers; one that is not UTF-8 cannot be JSON: left out */
		if (name.size() > 2 && (name[0] == 'x' || name[0] == 'X') && name[1] == '-' &&
		    json::ValidUtf8(name) && json::ValidUtf8(value))
		{
			std::string lower(name);
			for (char &c : lower)
				c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
			x_headers += x_headers.empty() ? '{' : ',';
			json::AppendQuoted(x_headers, lower);
			x_headers += ':';
			json::AppendQuoted(x_headers, value);
		}
	}
	if (!x_headers.empty())
		out.x_headers_json = x_headers + '}';
	out.websocket = upgrade_ws && connection_upgrade;
	return HeadStatus::kComplete;
}

} // namespace rt::fanout
