/*
 * channel_registry.cpp: per-shard subscriber lists (shard thread only).
 */
#include "channel/channel_registry.hpp"

namespace rt::fanout
{

void
ChannelRegistry::Add(const std::string &key, Session *s, Channel *c)
{
	map_[key].push_back(Subscriber{s, c});
}

void
ChannelRegistry::Remove(const std::string &key, Session *s)
{
	auto it = map_.find(key);
	if (it == map_.end())
		return;
	std::vector<Subscriber> &v = it->second;
	for (size_t i = 0; i < v.size(); i++)
	{
		if (v[i].session == s)
		{
			/* order among subscribers does not matter: swap-remove */
			v[i] = v.back();
			v.pop_back();
			break;
		}
	}
	if (v.empty())
		map_.erase(it);
}

const std::vector<Subscriber> *
ChannelRegistry::Find(const std::string &key) const
{
	auto it = map_.find(key);
	return it == map_.end() ? nullptr : &it->second;
}

} // namespace rt::fanout
