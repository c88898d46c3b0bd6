/*
 * limit_profiles.hpp: named sets of tenant limits (PROTOCOL.md 9.1), for --limits NAME and a
 * --config entry's "limits": {"profile": NAME}. Without them a single tenant from the flags
 * runs with `unlimited` (one self-hosted application on its own server must not hit a
 * quota), a --config tenant with `upstream` (the defaults of upstream's code). `free`, `pro`
 * and `team` are Supabase's published plan quotas (supabase.com/docs/guides/realtime/limits).
 * A limit given by its own flag, variable or key wins over the profile.
 *
 * Pure data; any thread.
 */
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace rt::fanout
{

struct LimitProfile
{
	std::string_view name;
	/* values by the keys of a --config entry's "limits" (LimitsInForce) */
	std::span<const std::pair<std::string_view, long long>> values;

	/* The profile's value for a limit key, or nullopt when it leaves that limit alone */
	std::optional<long long> Value(std::string_view key) const;
};

/* The profile called name, or nullptr */
const LimitProfile *FindLimitProfile(std::string_view name);
/* "upstream, free, pro, team, unlimited": for messages */
std::string LimitProfileNames();

} // namespace rt::fanout
