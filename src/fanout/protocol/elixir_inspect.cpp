/*
 * elixir_inspect.cpp: Elixir's inspect/2 and String.trim/1 (see
 * elixir_inspect.hpp).
 *
 * Any thread; pure functions. Sources of the rules: Elixir's Inspect
 * protocol and Inspect.Algebra (container_doc, fits?, format), String.Break
 * (trim), String.printable?, and Erlang's io_lib_format:fwrite_g (floats).
 * Recursion only in Inspect, where the item limit bounds the depth (50).
 */
#include "protocol/elixir_inspect.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace rt::fanout::elixir
{

namespace
{

constexpr double kFloatExactLimit = 9007199254740992.0; /* 2^53 */

/* ---- UTF-8 and Elixir's notion of whitespace and printable ---------------------------- */

/* Decode the code point at s[i]; its length, or 0 if the bytes there are not UTF-8. */
size_t
DecodeUtf8(std::string_view s, size_t i, uint32_t &cp)
{
	auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
	unsigned char c = b(i);
	size_t len;
	uint32_t min;
	if (c < 0x80)
	{
		cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0)
		len = 2, cp = c & 0x1f, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		len = 3, cp = c & 0x0f, min = 0x800;
	else if ((c & 0xf8) == 0xf0)
		len = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (i + len > s.size())
		return 0;
	for (size_t k = 1; k < len; k++)
	{
		if ((b(i + k) & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (b(i + k) & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* String.trim/1's whitespace: the Unicode White_Space property, no-break spaces included. */
bool
IsElixirSpace(uint32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
	       (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
	       cp == 0x205f || cp == 0x3000;
}

/* String.printable?/1 for one code point. */
bool
IsPrintable(uint32_t cp)
{
	return (cp >= 0x20 && cp <= 0x7e) || (cp >= 0x07 && cp <= 0x0d) || cp == 0x1b || cp == 0x7f ||
	       (cp >= 0xa0 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) ||
	       (cp >= 0x10000 && cp <= 0x10ffff);
}

/* ---- Elixir inspect/2 ------------------------------------------------------------------ */

void
AppendInt(std::string &out, int64_t v)
{
	char buf[24];
	auto r = std::to_chars(buf, buf + sizeof buf, v);
	out.append(buf, r.ptr);
}

/*
 * A binary: "quoted" when its first kPrintableLimit code points are printable
 * (then escaped, and cut there with `<> ...`), else <<b1, b2, ...>> with the
 * item limit. Escapes as Elixir's: \" \\ \#{ and the named control characters.
 */
/* String.printable?/2 with the printable limit: only the first characters are looked at. */
bool
InspectsAsText(std::string_view s)
{
	size_t i = 0;
	uint32_t cp;
	for (size_t n = 0; i < s.size() && n < kPrintableLimit; n++)
	{
		size_t len = DecodeUtf8(s, i, cp);
		if (len == 0 || !IsPrintable(cp))
			return false;
		i += len;
	}
	return true;
}

} // namespace

void
InspectString(std::string &out, std::string_view s, int limit)
{
	size_t i = 0;
	uint32_t cp;
	if (!InspectsAsText(s))
	{
		out += "<<";
		for (size_t k = 0; k < s.size(); k++)
		{
			if (k > 0)
				out += ", ";
			if (limit <= 0)
			{
				out += "...";
				break;
			}
			limit--;
			AppendInt(out, static_cast<unsigned char>(s[k]));
		}
		out += ">>";
		return;
	}
	out += '"';
	i = 0;
	for (size_t n = 0; i < s.size() && n < kPrintableLimit; n++)
	{
		char c = s[i];
		const char *esc = nullptr;
		switch (c)
		{
		case '"':
			esc = "\\\"";
			break;
		case '\\':
			esc = "\\\\";
			break;
		case '\a':
			esc = "\\a";
			break;
		case '\b':
			esc = "\\b";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\v':
			esc = "\\v";
			break;
		case '\f':
			esc = "\\f";
			break;
		case '\r':
			esc = "\\r";
			break;
		case '\x1b':
			esc = "\\e";
			break;
		case '\x7f':
			esc = "\\d";
			break;
		case '#':
			if (i + 1 < s.size() && s[i + 1] == '{')
			{
				out += "\\#{";
				i += 2;
				continue;
			}
			break;
		default:
			break;
		}
		if (esc != nullptr)
		{
			out += esc;
			i++;
			continue;
		}
		size_t len = DecodeUtf8(s, i, cp); /* valid: checked above */
		out.append(s, i, len);
		i += len;
	}
	out += '"';
	if (i < s.size())
		out += " <> ...";
}

namespace
{

/*
 * Erlang's shortest float text (io_lib_format:fwrite_g/1, which Elixir's
 * inspect uses): 100.0, 1.0e3, 0.001, 1.0e-4, 1.5e300.
 */
void
InspectFloat(std::string &out, double v)
{
	if (v == 0.0)
	{
		out += std::signbit(v) ? "-0.0" : "0.0";
		return;
	}
	char buf[64];
	auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
	std::string_view sci(buf, static_cast<size_t>(r.ptr - buf)); /* [-]d[.ddd]e[+-]xx */
	if (sci.front() == '-')
	{
		out += '-';
		sci.remove_prefix(1);
	}
	size_t e = sci.find('e');
	std::string digits;
	for (char c : sci.substr(0, e))
		if (c != '.')
			digits += c;
	int exp10 = 0;
	std::from_chars(sci.data() + e + 1 + (sci[e + 1] == '+'), sci.data() + sci.size(), exp10);
	int len = static_cast<int>(digits.size());
	int place = exp10 - len + 1; /* value = digits * 10^place */
	std::string exp_text = std::to_string(exp10);
	int exp_cost = static_cast<int>(exp_text.size()) + 2;
	auto scientific = [&]()
	{
		out += digits[0];
		out += '.';
		out += len == 1 ? std::string_view("0") : std::string_view(digits).substr(1);
		out += 'e';
		out += exp_text;
	};
	if (place < 0)
	{
		if (exp10 >= 0)
		{
			out.append(digits, 0, static_cast<size_t>(len + place));
			out += '.';
			out.append(digits, static_cast<size_t>(len + place));
		}
		else if (2 - place - len <= exp_cost)
		{
			out += "0.";
			out.append(static_cast<size_t>(-place - len), '0');
			out += digits;
		}
		else
			scientific();
	}
	else
	{
		int dot = len == 1 ? 1 : 0;
		if (exp_cost + dot >= place + 2 && std::fabs(v) < kFloatExactLimit)
		{
			out += digits;
			out.append(static_cast<size_t>(place), '0');
			out += ".0";
		}
		else
			scientific();
	}
}

/*
 * Elixir's container rule: item k (from 0) is printed with limit - k - 1, and
 * once the limit is used up the rest is one "...".
 */
template <typename Items, typename Fn>
void
InspectContainer(std::string &out, const char *open, const char *close, const Items &items,
                 int limit, Fn &&fn)
{
	out += open;
	bool first = true;
	for (const auto &item : items)
	{
		if (!first)
			out += ", ";
		first = false;
		if (limit <= 0)
		{
			out += "...";
			break;
		}
		limit--;
		fn(item, limit);
	}
	out += close;
}

void InspectValue(std::string &out, const rapidjson::Value &v, int limit);

std::string_view
View(const rapidjson::Value &v)
{
	return std::string_view(v.GetString(), v.GetStringLength());
}

/* A JSON object as an Elixir map: keys sorted bytewise, the last of duplicate keys kept. */
void
InspectObject(std::string &out, const rapidjson::Value &v, int limit)
{
	std::vector<const rapidjson::Value::Member *> members;
	members.reserve(v.MemberCount());
	for (const auto &m : v.GetObject())
		members.push_back(&m);
	std::stable_sort(members.begin(), members.end(),
	                 [](const auto *a, const auto *b) { return View(a->name) < View(b->name); });
	std::vector<const rapidjson::Value::Member *> unique;
	unique.reserve(members.size());
	for (size_t i = 0; i < members.size(); i++)
	{
		if (i + 1 < members.size() && View(members[i]->name) == View(members[i + 1]->name))
			continue;
		unique.push_back(members[i]);
	}
	InspectContainer(out, "%{", "}", unique, limit,
	                 [&](const rapidjson::Value::Member *m, int item_limit)
	                 {
		                 InspectString(out, View(m->name), item_limit);
		                 out += " => ";
		                 InspectValue(out, m->value, item_limit);
	                 });
}

void
InspectValue(std::string &out, const rapidjson::Value &v, int limit)
{
	if (v.IsNull())
		out += "nil";
	else if (v.IsBool())
		out += v.GetBool() ? "true" : "false";
	else if (v.IsInt64())
		AppendInt(out, v.GetInt64());
	else if (v.IsUint64())
		out += std::to_string(v.GetUint64());
	else if (v.IsNumber())
		InspectFloat(out, v.GetDouble());
	else if (v.IsString())
		InspectString(out, View(v), limit);
	else if (v.IsArray())
		InspectContainer(out, "[", "]", v.GetArray(), limit,
		                 [&](const rapidjson::Value &item, int item_limit)
		                 { InspectValue(out, item, item_limit); });
	else
		InspectObject(out, v, limit);
}

} // namespace

std::string
Inspect(const rapidjson::Value &v)
{
	std::string out;
	InspectValue(out, v, kInspectLimit);
	return out;
}

std::string
InspectStrings(std::initializer_list<std::string_view> items)
{
	std::string out;
	InspectContainer(out, "[", "]", items, kInspectLimit,
	                 [&](std::string_view s, int limit) { InspectString(out, s, limit); });
	return out;
}

/* ---- Elixir inspect/2 with pretty: true (Inspect.Algebra) ------------------------------ */

namespace
{

Doc
Break(std::string s, bool flex)
{
	Doc d;
	d.kind = Doc::Kind::kBreak;
	d.text = std::move(s);
	d.flex = flex;
	return d;
}

Doc
Wrap(Doc::Kind kind, Doc kid, int indent = 0)
{
	Doc d;
	d.kind = kind;
	d.indent = indent;
	d.kids.push_back(std::move(kid));
	return d;
}

Doc
Concat(std::vector<Doc> kids)
{
	Doc d;
	d.kind = Doc::Kind::kConcat;
	d.kids = std::move(kids);
	return d;
}

enum class Mode : uint8_t
{
	kFlat,
	kBreak,
	kTail, /* fits only: end of a group, restore the saw-a-break flag */
};

struct Entry
{
	int indent;
	Mode mode;
	const Doc *doc;
	bool saw_break; /* kTail */
};

/*
 * Inspect.Algebra's fits?: does the text up to the next break in break mode
 * stay within width? Overflow counts only once a break was seen, since a
 * document without breaks has to fit its line anyway.
 */
bool
Fits(int width, int col, bool saw_break, std::vector<Entry> stack)
{
	while (true)
	{
		if (col > width && saw_break)
			return false;
		if (stack.empty())
			return true;
		Entry e = stack.back();
		stack.pop_back();
		if (e.mode == Mode::kTail)
		{
			saw_break = e.saw_break;
			continue;
		}
		const Doc &d = *e.doc;
		switch (d.kind)
		{
		case Doc::Kind::kText:
			col += static_cast<int>(d.text.size());
			break;
		case Doc::Kind::kBreak:
			if (e.mode == Mode::kBreak)
				return true;
			col += static_cast<int>(d.text.size());
			saw_break = true;
			break;
		case Doc::Kind::kNest:
			stack.push_back({e.indent + d.indent, e.mode, &d.kids[0], false});
			break;
		case Doc::Kind::kGroup:
			stack.push_back({0, Mode::kTail, nullptr, saw_break});
			stack.push_back({e.indent, Mode::kFlat, &d.kids[0], false});
			break;
		case Doc::Kind::kConcat:
			for (size_t k = d.kids.size(); k-- > 0;)
				stack.push_back({e.indent, e.mode, &d.kids[k], false});
			break;
		}
	}
}

} // namespace

Doc
Text(std::string s)
{
	Doc d;
	d.text = std::move(s);
	return d;
}

Doc
ContainerDoc(const char *open, const char *close, std::vector<Doc> items)
{
	if (items.empty())
		return Text(std::string(open) + close);
	bool simple = std::all_of(items.begin(), items.end(),
	                          [](const Doc &d) { return d.kind == Doc::Kind::kText; });
	std::vector<Doc> joined;
	for (size_t k = 0; k < items.size(); k++)
	{
		if (k > 0)
		{
			joined.push_back(Text(","));
			joined.push_back(Break(" ", simple));
		}
		joined.push_back(std::move(items[k]));
	}
	if (simple)
		return Wrap(Doc::Kind::kGroup,
		            Concat({Text(open), Wrap(Doc::Kind::kNest, Concat(std::move(joined)), 1),
		                    Text(close)}));
	std::vector<Doc> inner;
	inner.push_back(Text(open));
	inner.push_back(Break("", false));
	inner.push_back(Concat(std::move(joined)));
	return Wrap(Doc::Kind::kGroup, Concat({Wrap(Doc::Kind::kNest, Concat(std::move(inner)), 2),
	                                       Break("", false), Text(close)}));
}

Doc
StringDoc(std::string_view s, int limit)
{
	if (InspectsAsText(s))
	{
		std::string out;
		InspectString(out, s, limit);
		return Text(std::move(out));
	}
	std::vector<unsigned char> bytes(s.begin(), s.end());
	return ContainerDoc(
	    "<<", ">>",
	    LimitedDocs(bytes, limit, [](unsigned char b, int) { return Text(std::to_string(b)); }));
}

std::string
Pretty(const Doc &root, int width)
{
	std::string out;
	int col = 0;
	std::vector<Entry> stack{{0, Mode::kBreak, &root, false}};
	while (!stack.empty())
	{
		Entry e = stack.back();
		stack.pop_back();
		const Doc &d = *e.doc;
		switch (d.kind)
		{
		case Doc::Kind::kText:
			out += d.text;
			col += static_cast<int>(d.text.size());
			break;
		case Doc::Kind::kBreak:
		{
			bool newline;
			if (d.flex)
				newline = e.mode == Mode::kBreak &&
				          !Fits(width, col + static_cast<int>(d.text.size()), true, stack);
			else
				newline = e.mode == Mode::kBreak;
			if (newline)
			{
				out += '\n';
				out.append(static_cast<size_t>(e.indent), ' ');
				col = e.indent;
			}
			else
			{
				out += d.text;
				col += static_cast<int>(d.text.size());
			}
			break;
		}
		case Doc::Kind::kNest:
			stack.push_back({e.indent + d.indent, e.mode, &d.kids[0], false});
			break;
		case Doc::Kind::kGroup:
		{
			bool flat = Fits(width, col, false, {{e.indent, Mode::kFlat, &d.kids[0], false}});
			stack.push_back({e.indent, flat ? Mode::kFlat : Mode::kBreak, &d.kids[0], false});
			break;
		}
		case Doc::Kind::kConcat:
			for (size_t k = d.kids.size(); k-- > 0;)
				stack.push_back({e.indent, e.mode, &d.kids[k], false});
			break;
		}
	}
	return out;
}

std::string_view
Trim(std::string_view s)
{
	size_t begin = 0;
	uint32_t cp;
	while (begin < s.size())
	{
		size_t len = DecodeUtf8(s, begin, cp);
		if (len == 0 || !IsElixirSpace(cp))
			break;
		begin += len;
	}
	size_t end = s.size();
	while (end > begin)
	{
		/* step back to the lead byte of the last code point (at most 3 continuation bytes) */
		size_t start = end - 1;
		while (start > begin && end - start < 4 &&
		       (static_cast<unsigned char>(s[start]) & 0xc0) == 0x80)
			start--;
		size_t len = DecodeUtf8(s, start, cp);
		if (len != end - start || !IsElixirSpace(cp))
			break;
		end = start;
	}
	return s.substr(begin, end - begin);
}

} // namespace rt::fanout::elixir
