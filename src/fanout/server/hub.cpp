/*
 * hub.cpp: shards' lifecycle and cross-shard publication.
 *
 * Start/Stop run on the main thread; Publish on any thread.
 */
#include "server/hub.hpp"

#include "base/log.hpp"
#include "server/shard.hpp"

#include <thread>

namespace rt::fanout
{

Hub::Hub(const Config &config) : config_(config)
{
	int n =
	    config.shards > 0 ? config.shards : static_cast<int>(std::thread::hardware_concurrency());
	if (n <= 0)
		n = 1;
	for (int i = 0; i < n; i++)
		shards_.push_back(std::make_unique<Shard>(i, config, *this));
}

Hub::~Hub() { Stop(); }

bool
Hub::Start()
{
	for (auto &s : shards_)
	{
		if (!s->Start())
			return false;
	}
	Log(LogLevel::kInfo, "main", "listening host=%s port=%d shards=%zu", config_.host.c_str(),
	    config_.port, shards_.size());
	ready_.store(true, std::memory_order_release);
	return true;
}

void
Hub::Stop()
{
	ready_.store(false, std::memory_order_release);
	for (auto &s : shards_)
		s->Stop();
}

void
Hub::Publish(const std::shared_ptr<const Delivery> &d, int from_shard)
{
	/* other shards first: their threads work while this one delivers inline */
	for (auto &s : shards_)
	{
		if (s->index() != from_shard)
			s->Post(d);
	}
	if (from_shard >= 0 && from_shard < static_cast<int>(shards_.size()))
		shards_[static_cast<size_t>(from_shard)]->Deliver(*d);
}

void
Hub::PostTo(int shard, std::shared_ptr<const Delivery> d)
{
	if (shard >= 0 && shard < static_cast<int>(shards_.size()))
		shards_[static_cast<size_t>(shard)]->Post(std::move(d));
}

std::shared_ptr<const TenantSet>
Hub::tenants() const
{
	std::lock_guard<std::mutex> lock(tenants_mu_);
	return tenants_;
}

void
Hub::SetTenants(std::shared_ptr<const TenantSet> set)
{
	std::lock_guard<std::mutex> lock(tenants_mu_);
	tenants_ = std::move(set);
}

size_t
Hub::tenant_count() const
{
	std::lock_guard<std::mutex> lock(tenants_mu_);
	return tenants_ ? tenants_->list.size() : 0;
}

void
Hub::PostTask(int shard, std::function<void(Shard &)> task)
{
	auto d = std::make_shared<Delivery>();
	d->task = std::move(task);
	PostTo(shard, std::move(d));
}

} // namespace rt::fanout
