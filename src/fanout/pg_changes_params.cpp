/*
 * pg_changes_params.cpp: postgres_changes subscription parameters (see
 * pg_changes_params.hpp).
 *
 * Any thread; pure functions, no shared state. Every scan is a single pass
 * over string_views of the input, so hostile filters (huge, thousands of
 * commas, unbalanced quotes) cost linear time; nothing recurses except the
 * Elixir-style rendering, whose depth Elixir's own item limit bounds (50).
 *
 * Behaviour follows upstream Supabase Realtime (lib/extensions/
 * postgres_cdc_rls/subscriptions.ex, the subscription_check_filters trigger)
 * where PROTOCOL.md is silent; comments say where.
 */
#include "pg_changes_params.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace rt::fanout
{

namespace
{

constexpr int kInspectLimit = 50;                       /* Inspect.Opts :limit default */
constexpr size_t kPrintableLimit = 4096;                /* Inspect.Opts :printable_limit default */
constexpr double kFloatExactLimit = 9007199254740992.0; /* 2^53 */

constexpr std::string_view kNoParams = "No subscription params provided. Please provide at least "
                                       "a `schema` or `table` to subscribe to: ";
constexpr std::string_view kFilterError = "Error parsing `filter` params: ";
constexpr std::string_view kEmptySegment =
    "filter must not contain empty segments (check for extra commas)";
constexpr std::string_view kInParens = "`in` filter value must be wrapped by parentheses";
constexpr std::string_view kSelectNotList =
    "Error parsing `select` params: expected a list of column name strings, e.g. select: "
    "[\"col1\", \"col2\"]";
constexpr std::string_view kSelectWildcard = "Column selection is not supported for wildcard "
                                             "subscriptions. Provide an explicit schema and table "
                                             "name.";
constexpr std::string_view kException = "Unable to subscribe to changes with given parameters. An "
                                        "exception happened so please check your connect "
                                        "parameters: [";

struct OpName
{
	std::string_view name;
	FilterOp op;
};

constexpr OpName kOps[] = {
    {"eq", FilterOp::kEq},
    {"neq", FilterOp::kNeq},
    {"lt", FilterOp::kLt},
    {"lte", FilterOp::kLte},
    {"gt", FilterOp::kGt},
    {"gte", FilterOp::kGte},
    {"in", FilterOp::kIn},
    {"like", FilterOp::kLike},
    {"ilike", FilterOp::kIlike},
    {"is", FilterOp::kIs},
    {"match", FilterOp::kMatch},
    {"imatch", FilterOp::kImatch},
    {"isdistinct", FilterOp::kIsDistinct},
};

Error
InvalidArgument(std::string message)
{
	return Error{ErrorCode::kInvalidArgument, std::move(message)};
}

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

/* String.trim/1's whitespace: Unicode White_Space without the non-breaking spaces. */
bool
IsElixirSpace(uint32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0x1680 ||
	       (cp >= 0x2000 && cp <= 0x2006) || (cp >= 0x2008 && cp <= 0x200a) || cp == 0x2028 ||
	       cp == 0x2029 || cp == 0x205f || cp == 0x3000;
}

/* Elixir's String.trim/1. */
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

/* inspect/2 of a list of strings, e.g. ["foo", "hey"]. */
std::string
InspectStrings(std::initializer_list<std::string_view> items)
{
	std::string out;
	InspectContainer(out, "[", "]", items, kInspectLimit,
	                 [&](std::string_view s, int limit) { InspectString(out, s, limit); });
	return out;
}

/* ---- Elixir inspect/2 with pretty: true (Inspect.Algebra) ------------------------------ */

/*
 * Upstream renders filters and select with inspect(x, pretty: true): an 80
 * column layout by Elixir's document algebra. This is that algebra for the
 * few shapes we print (strings, booleans, lists, tuples), small enough to be
 * re-derived: text, breaks (strict: all of a group's break together; flex:
 * each on its own), nesting, groups. Sizes are bounded by the item limit.
 */
constexpr int kPrettyWidth = 80;

struct Doc
{
	enum class Kind : uint8_t
	{
		kText,
		kBreak,
		kNest,
		kGroup,
		kConcat,
	};
	Kind kind = Kind::kText;
	std::string text; /* kText; kBreak: what a flat break prints */
	bool flex = false;
	int indent = 0;        /* kNest */
	std::vector<Doc> kids; /* kNest, kGroup: one; kConcat: any */
};

Doc
Text(std::string s)
{
	Doc d;
	d.text = std::move(s);
	return d;
}

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

/*
 * container_doc/6: items joined by "," and a break; all-text items (Elixir's
 * "simple") get flex breaks and a 1 column nest, others strict breaks with
 * the items on their own lines, 2 columns in.
 */
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

/* Items through Elixir's container limit (see InspectContainer). */
template <typename Items, typename Fn>
std::vector<Doc>
LimitedDocs(const Items &items, int limit, Fn &&fn)
{
	std::vector<Doc> docs;
	for (const auto &item : items)
	{
		if (limit <= 0)
		{
			docs.push_back(Text("..."));
			break;
		}
		limit--;
		docs.push_back(fn(item, limit));
	}
	return docs;
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

/* Inspect.Algebra.format/2 at kPrettyWidth, from column 0. */
std::string
Pretty(const Doc &root)
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
				          !Fits(kPrettyWidth, col + static_cast<int>(d.text.size()), true, stack);
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
			bool flat =
			    Fits(kPrettyWidth, col, false, {{e.indent, Mode::kFlat, &d.kids[0], false}});
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

/* ---- parsing --------------------------------------------------------------------------- */

/* The member named name; the last one if repeated (Jason keeps the last). */
const rapidjson::Value *
LastMember(const rapidjson::Value &obj, std::string_view name)
{
	if (!obj.IsObject())
		return nullptr;
	const rapidjson::Value *found = nullptr;
	for (const auto &m : obj.GetObject())
		if (View(m.name) == name)
			found = &m.value;
	return found;
}

/*
 * String.upcase/1 of event compared with the three actions. Besides ASCII,
 * only U+0131 (dotless i -> I) and U+017F (long s -> S) upcase into their
 * letters, so those are the only other spellings that match.
 */
PgEvent
EventOf(const rapidjson::Value &entry)
{
	const rapidjson::Value *v = LastMember(entry, "event");
	if (v == nullptr || !v->IsString())
		return PgEvent::kAll;
	std::string_view s = View(*v);
	std::string upper;
	for (size_t i = 0; i < s.size() && upper.size() <= 6; i++)
	{
		unsigned char c = static_cast<unsigned char>(s[i]);
		if (c >= 'a' && c <= 'z')
			upper += static_cast<char>(c - 32);
		else if (c == 0xc4 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xb1)
			upper += 'I', i++;
		else if (c == 0xc5 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xbf)
			upper += 'S', i++;
		else
			upper += static_cast<char>(c);
	}
	if (upper == "INSERT")
		return PgEvent::kInsert;
	if (upper == "UPDATE")
		return PgEvent::kUpdate;
	if (upper == "DELETE")
		return PgEvent::kDelete;
	return PgEvent::kAll;
}

/*
 * Split at top-level commas: not inside (...) nor inside a "..." string. As
 * upstream, a quote opens a string only right after '.', '(' or a comma
 * inside parentheses (a comma that split resets that), a backslash inside a
 * string keeps the next byte, and an unclosed string runs to the end.
 */
std::vector<std::string_view>
SplitTopLevel(std::string_view filter)
{
	std::vector<std::string_view> parts;
	size_t start = 0;
	int depth = 0;
	bool quoted = false;
	char prev = 0;
	for (size_t i = 0; i < filter.size(); i++)
	{
		char c = filter[i];
		if (quoted)
		{
			if (c == '\\' && i + 1 < filter.size())
				c = filter[++i];
			else if (c == '"')
				quoted = false;
			prev = c;
			continue;
		}
		if (c == '"' && (prev == '.' || prev == '(' || prev == ','))
			quoted = true;
		else if (c == '(')
			depth++;
		else if (c == ')')
			depth = depth > 0 ? depth - 1 : 0;
		else if (c == ',' && depth == 0)
		{
			parts.push_back(filter.substr(start, i - start));
			start = i + 1;
			prev = 0;
			continue;
		}
		prev = c;
	}
	parts.push_back(filter.substr(start));
	return parts;
}

/*
 * A value "..." loses its quotes and backslash escapes; one that is not
 * exactly one well-formed string (text after the closing quote, unclosed,
 * trailing lone backslash) is kept as written, as upstream does.
 */
std::string
Unquote(std::string_view v)
{
	if (v.empty() || v[0] != '"')
		return std::string(v);
	std::string out;
	for (size_t i = 1; i < v.size(); i++)
	{
		char c = v[i];
		if (c == '"')
			return i + 1 == v.size() ? out : std::string(v);
		if (c == '\\' && i + 1 < v.size())
			c = v[++i];
		out += c;
	}
	return std::string(v);
}

IsKeyword
KeywordOf(std::string_view v)
{
	/* compared as text by the trigger: case matters */
	if (v == "null")
		return IsKeyword::kNull;
	if (v == "true")
		return IsKeyword::kTrue;
	if (v == "false")
		return IsKeyword::kFalse;
	if (v == "unknown")
		return IsKeyword::kUnknown;
	return IsKeyword::kNone;
}

/* array_in's whitespace. */
bool
IsArraySpace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

enum class InList : uint8_t
{
	kOk,
	kMalformed,
	kTooMany,
};

/*
 * Read the inside of a one-dimensional Postgres array literal, as array_in
 * does: elements split by commas, optional whitespace around them, "quoted"
 * elements, backslash escapes anywhere, an unquoted NULL (any case) is SQL
 * NULL, "{}" is empty. Nested braces (multi-dimensional arrays) count as
 * malformed. Malformed wins over too many (the cast fails first); values are
 * kept only when neither.
 */
InList
ReadInList(std::string_view s, std::vector<std::string> *values, bool *has_null)
{
	size_t count = 0;
	size_t i = 0;
	auto skip_space = [&]()
	{
		while (i < s.size() && IsArraySpace(s[i]))
			i++;
	};
	skip_space();
	if (i == s.size())
		return InList::kOk;
	std::vector<std::string> out;
	bool null_seen = false;
	for (;;)
	{
		skip_space();
		std::string elem;
		bool is_null = false;
		if (i < s.size() && s[i] == '"')
		{
			for (i++;; i++)
			{
				if (i >= s.size())
					return InList::kMalformed;
				if (s[i] == '"')
					break;
				if (s[i] == '\\')
				{
					if (++i >= s.size())
						return InList::kMalformed;
				}
				elem += s[i];
			}
			i++;
			skip_space();
		}
		else
		{
			size_t kept = 0; /* elem length up to the last escaped or non-space byte */
			bool escaped = false;
			while (i < s.size() && s[i] != ',')
			{
				char c = s[i];
				if (c == '"' || c == '{' || c == '}')
					return InList::kMalformed;
				if (c == '\\')
				{
					if (++i >= s.size())
						return InList::kMalformed;
					elem += s[i++];
					kept = elem.size();
					escaped = true;
					continue;
				}
				elem += c;
				if (!IsArraySpace(c))
					kept = elem.size();
				i++;
			}
			elem.resize(kept);
			if (elem.empty() && !escaped)
				return InList::kMalformed;
			is_null = !escaped && elem.size() == 4 && (elem[0] | 0x20) == 'n' &&
			          (elem[1] | 0x20) == 'u' && (elem[2] | 0x20) == 'l' && (elem[3] | 0x20) == 'l';
		}
		count++;
		if (count <= kMaxInValues)
		{
			if (is_null)
				null_seen = true;
			else
				out.push_back(std::move(elem));
		}
		if (i == s.size())
			break;
		if (s[i] != ',')
			return InList::kMalformed;
		i++;
	}
	if (count > kMaxInValues)
		return InList::kTooMany;
	if (values != nullptr)
		*values = std::move(out);
	if (has_null != nullptr)
		*has_null = null_seen;
	return InList::kOk;
}

/* Parse one non-empty, trimmed condition; the reason text on error. */
std::optional<std::string>
ParseCondition(std::string_view seg, PgFilter &f)
{
	size_t eq = seg.find('=');
	if (eq == std::string_view::npos)
		return InspectStrings({seg});
	f.column = std::string(seg.substr(0, eq));
	std::string_view rest = seg.substr(eq + 1);
	f.negated = rest.starts_with("not.");
	if (f.negated)
		rest.remove_prefix(4);
	size_t dot = rest.find('.');
	if (dot == std::string_view::npos)
		return InspectStrings({rest});
	std::string_view op = rest.substr(0, dot);
	std::string_view value = rest.substr(dot + 1);
	auto it = std::find_if(std::begin(kOps), std::end(kOps),
	                       [&](const OpName &o) { return o.name == op; });
	if (it == std::end(kOps))
		return InspectStrings({op, value});
	f.op = it->op;
	if (f.op == FilterOp::kIn)
	{
		if (value.size() < 2 || value.front() != '(' || value.back() != ')')
			return std::string(kInParens);
		std::string_view inner = value.substr(1, value.size() - 2);
		f.value.reserve(inner.size() + 2);
		f.value += '{';
		f.value += inner;
		f.value += '}';
		ReadInList(inner, &f.values, &f.in_has_null);
		return std::nullopt;
	}
	f.value = Unquote(value);
	if (f.op == FilterOp::kIs)
		f.keyword = KeywordOf(f.value);
	return std::nullopt;
}

/* The filter string: empty or blank is no filter; else AND-ed conditions. */
std::optional<std::string>
ParseFilter(std::string_view filter, std::vector<PgFilter> &out)
{
	std::string_view trimmed = Trim(filter);
	if (trimmed.empty())
		return std::nullopt;
	for (std::string_view part : SplitTopLevel(trimmed))
	{
		std::string_view seg = Trim(part);
		if (seg.empty())
			return std::string(kEmptySegment);
		PgFilter f;
		if (std::optional<std::string> err = ParseCondition(seg, f))
			return err;
		out.push_back(std::move(f));
	}
	return std::nullopt;
}

/* The check-stage text: upstream's Postgrex exception after the rendered params. */
Error
CheckError(const PgChangesParams &p, std::string_view pg_error)
{
	std::string msg(kException);
	msg += RenderPgChangesParams(p);
	msg += "]. Exception: ";
	msg += pg_error;
	return InvalidArgument(std::move(msg));
}

bool
HasNul(std::string_view s)
{
	return s.find('\0') != std::string_view::npos;
}

bool
ImpossibleName(std::string_view s)
{
	return s.empty() || s.size() > kMaxIdentifierBytes;
}

} // namespace

std::string_view
PgEventName(PgEvent event)
{
	switch (event)
	{
	case PgEvent::kInsert:
		return "INSERT";
	case PgEvent::kUpdate:
		return "UPDATE";
	case PgEvent::kDelete:
		return "DELETE";
	case PgEvent::kAll:
		break;
	}
	return "*";
}

std::string_view
FilterOpName(FilterOp op)
{
	for (const OpName &o : kOps)
		if (o.op == op)
			return o.name;
	return "eq";
}

std::string
InspectJson(const rapidjson::Value &v)
{
	std::string out;
	InspectValue(out, v, kInspectLimit);
	return out;
}

Result<PgChangesParams>
ParsePgChangesParams(const rapidjson::Value &entry)
{
	PgChangesParams p;
	p.event = EventOf(entry);

	/* select is read first: its shape error wins over everything else (upstream) */
	if (const rapidjson::Value *sel = LastMember(entry, "select"))
	{
		if (sel->IsString())
			return InvalidArgument(std::string(kSelectNotList));
		if (sel->IsArray())
		{
			std::vector<std::string> cols;
			for (const rapidjson::Value &c : sel->GetArray())
				if (c.IsString())
					cols.emplace_back(View(c));
			if (!cols.empty())
				p.select = std::move(cols);
		}
	}

	const rapidjson::Value *schema = LastMember(entry, "schema");
	const rapidjson::Value *table = LastMember(entry, "table");
	const rapidjson::Value *filter = LastMember(entry, "filter");
	bool schema_s = schema != nullptr && schema->IsString();
	bool table_s = table != nullptr && table->IsString();

	/* the accepted combinations (PROTOCOL.md 6.1); a key present with a non-string value
	 * (null included) does not count as absent */
	if (schema_s && table_s && filter != nullptr && filter->IsString())
	{
		if (std::optional<std::string> err = ParseFilter(View(*filter), p.filters))
			return InvalidArgument(std::string(kFilterError) + *err);
		p.schema = View(*schema);
		p.table = View(*table);
	}
	else if (schema_s && table_s && filter == nullptr)
	{
		p.schema = View(*schema);
		p.table = View(*table);
	}
	else if (schema_s && table == nullptr && filter == nullptr)
	{
		p.schema = View(*schema);
		p.table = "*";
	}
	else if (table_s && schema == nullptr && filter == nullptr)
	{
		p.schema = "public";
		p.table = View(*table);
	}
	else
	{
		/* upstream keeps tokens out of the text */
		bool secret = LastMember(entry, "user_token") != nullptr ||
		              LastMember(entry, "auth_token") != nullptr;
		return InvalidArgument(std::string(kNoParams) +
		                       (secret ? std::string("<redacted>") : InspectJson(entry)));
	}

	if (p.select && (p.schema == "*" || p.table == "*"))
		return InvalidArgument(std::string(kSelectWildcard));
	return p;
}

std::optional<Error>
CheckPgChangesParams(const PgChangesParams &p)
{
	/* text parameters: Postgres refuses a NUL byte before the row exists */
	bool nul = HasNul(p.schema) || HasNul(p.table);
	for (const PgFilter &f : p.filters)
		nul = nul || HasNul(f.column) || HasNul(f.value);
	if (p.select)
		for (const std::string &c : *p.select)
			nul = nul || HasNul(c);
	if (nul)
		return CheckError(p, "ERROR 22021 (character_not_in_repertoire) invalid byte sequence "
		                     "for encoding \"UTF8\": 0x00");

	/* the trigger, per filter in the order given */
	for (const PgFilter &f : p.filters)
	{
		if (ImpossibleName(f.column))
			return CheckError(p, "ERROR P0001 (raise_exception) invalid column for filter " +
			                         f.column);
		if (f.op == FilterOp::kIn)
		{
			std::string_view inner;
			if (f.value.size() >= 2)
				inner = std::string_view(f.value).substr(1, f.value.size() - 2);
			InList r = ReadInList(inner, nullptr, nullptr);
			if (r == InList::kMalformed)
				return CheckError(p, "ERROR 22P02 (invalid_text_representation) malformed array "
				                     "literal: \"" +
				                         f.value + "\"");
			if (r == InList::kTooMany)
				return CheckError(p, "ERROR P0001 (raise_exception) too many values for `in` "
				                     "filter. Maximum 100");
		}
		else if (f.op == FilterOp::kIs && f.keyword == IsKeyword::kNone)
			return CheckError(p, "ERROR P0001 (raise_exception) invalid value for is filter: must "
			                     "be null, true, false, or unknown");
	}
	if (p.select)
		for (const std::string &c : *p.select)
			if (ImpossibleName(c))
				return CheckError(p,
				                  "ERROR P0001 (raise_exception) invalid column for select " + c);
	return std::nullopt;
}

std::string
RenderPgChangesParams(const PgChangesParams &p)
{
	/* params_to_log: strings as they are, filters and select through inspect */
	std::string out = "event: ";
	out += PgEventName(p.event);
	out += ", schema: ";
	out += p.schema;
	out += ", table: ";
	out += p.table;
	out += ", filters: ";
	out += Pretty(ContainerDoc(
	    "[", "]",
	    LimitedDocs(p.filters, kInspectLimit,
	                [](const PgFilter &f, int limit)
	                {
		                /* a 4-tuple {column, op, value, negate}, under the same item limit */
		                std::string_view parts[3] = {f.column, FilterOpName(f.op), f.value};
		                std::vector<int> idx{0, 1, 2, 3};
		                return ContainerDoc(
		                    "{", "}",
		                    LimitedDocs(idx, limit,
		                                [&](int k, int item_limit)
		                                {
			                                if (k < 3)
				                                return StringDoc(parts[k], item_limit);
			                                return Text(f.negated ? "true" : "false");
		                                }));
	                })));
	out += ", select: ";
	if (!p.select)
		out += "nil";
	else
		out += Pretty(ContainerDoc("[", "]",
		                           LimitedDocs(*p.select, kInspectLimit,
		                                       [](const std::string &c, int limit)
		                                       { return StringDoc(c, limit); })));
	return out;
}

} // namespace rt::fanout
