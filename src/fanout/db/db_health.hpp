/*
 * db_health.hpp: a background thread that keeps checking that the database
 * answers, for /healthz.
 *
 * Own thread; the only state it shares is the Hub's atomic db_ok flag.
 */
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace rt::fanout
{

class DbHealth
{
public:
	DbHealth(std::string conninfo, std::atomic<bool> &ok) : conninfo_(std::move(conninfo)), ok_(ok)
	{
	}
	~DbHealth();
	void Start();
	void Stop();

private:
	void Run();

	std::string conninfo_;
	std::atomic<bool> &ok_;
	std::thread thread_;
	std::mutex mu_;
	std::condition_variable cv_;
	bool stop_ = false;
};

} // namespace rt::fanout
