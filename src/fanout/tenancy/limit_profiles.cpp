/*
 * limit_profiles.cpp: the values of the named limit profiles (limit_profiles.hpp).
 */
#include "tenancy/limit_profiles.hpp"

#include <array>

namespace rt::fanout
{

namespace
{

using Values = std::array<std::pair<std::string_view, long long>, 7>;

/* one profile a line: users, joins/s, events/s, channels a socket, presence events/s,
 * presence pushes a channel and window, payload kB */
/* clang-format off */
constexpr Values kUpstream = {{{"max_concurrent_users", 200}, {"max_joins_per_second", 100}, {"max_events_per_second", 100}, {"max_channels_per_client", 100}, {"max_presence_events_per_second", 1000}, {"max_client_presence_events_per_window", 5}, {"max_payload_size_in_kb", 3000}}};
constexpr Values kFree = {{{"max_concurrent_users", 200}, {"max_joins_per_second", 100}, {"max_events_per_second", 100}, {"max_channels_per_client", 100}, {"max_presence_events_per_second", 20}, {"max_client_presence_events_per_window", 5}, {"max_payload_size_in_kb", 256}}};
constexpr Values kPro = {{{"max_concurrent_users", 500}, {"max_joins_per_second", 500}, {"max_events_per_second", 500}, {"max_channels_per_client", 100}, {"max_presence_events_per_second", 50}, {"max_client_presence_events_per_window", 5}, {"max_payload_size_in_kb", 3000}}};
constexpr Values kTeam = {{{"max_concurrent_users", 10000}, {"max_joins_per_second", 2500}, {"max_events_per_second", 2500}, {"max_channels_per_client", 100}, {"max_presence_events_per_second", 1000}, {"max_client_presence_events_per_window", 5}, {"max_payload_size_in_kb", 3000}}};
/* the flags' upper bounds; channels a socket stay 100, as on every plan (a bound per socket) */
constexpr Values kUnlimited = {{{"max_concurrent_users", 100000000}, {"max_joins_per_second", 100000000}, {"max_events_per_second", 1000000000}, {"max_channels_per_client", 100}, {"max_presence_events_per_second", 100000000}, {"max_client_presence_events_per_window", 1000000}, {"max_payload_size_in_kb", 3000}}};
/* clang-format on */

constexpr std::array<LimitProfile, 5> kProfiles = {{
    {"upstream", kUpstream},
    {"free", kFree},
    {"pro", kPro},
    {"team", kTeam},
    {"unlimited", kUnlimited},
}};

} // namespace

std::optional<long long>
LimitProfile::Value(std::string_view key) const
{
	for (const auto &[k, v] : values)
		if (k == key)
			return v;
	return std::nullopt;
}

const LimitProfile *
FindLimitProfile(std::string_view name)
{
	for (const LimitProfile &p : kProfiles)
		if (p.name == name)
			return &p;
	return nullptr;
}

std::string
LimitProfileNames()
{
	std::string out;
	for (const LimitProfile &p : kProfiles)
	{
		if (!out.empty())
			out += ", ";
		out += p.name;
	}
	return out;
}

} // namespace rt::fanout
