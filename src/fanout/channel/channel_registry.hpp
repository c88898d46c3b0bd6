/*
 * channel_registry.hpp: routing key -> the sessions of one shard joined to it.
 *
 * Shard thread only (each shard owns one registry; no locks). Lookups are
 * by routing key on every fan-out; joins and leaves are comparatively rare.
 */
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rt::fanout
{

class Session;
struct Channel;

struct Subscriber
{
	Session *session;
	Channel *channel;
};

class ChannelRegistry
{
public:
	void Add(const std::string &key, Session *s, Channel *c);
	void Remove(const std::string &key, Session *s);
	/* Subscribers of key, or nullptr when there are none. */
	const std::vector<Subscriber> *Find(const std::string &key) const;
	size_t
	topics() const
	{
		return map_.size();
	}

private:
	std::unordered_map<std::string, std::vector<Subscriber>> map_;
};

} // namespace rt::fanout
