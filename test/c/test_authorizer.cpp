/*
 * test_authorizer.cpp: unit tests of the authorizer's request handling
 * (authorizer.cpp) without a database: answers when the database cannot be
 * reached, on Stop and after it. The checks themselves need PostgreSQL with
 * RLS policies and are exercised against a cluster, not here.
 *
 * CMocka program; the authorizer runs its own thread. Loopback only: the
 * "database" is a bound socket that does not listen (connection refused).
 */
#include "auth/authorizer.hpp"
#include "base/log.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

/* cmocka.h last: its fail() macro breaks std headers; it has no extern "C" guard */
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
extern "C"
{
#include <cmocka.h>
}

using rt::fanout::Authorizer;
using rt::fanout::AuthRequest;
using rt::fanout::AuthResult;

namespace
{

/* A loopback port that refuses connections while the socket stays open. */
struct RefusingPort
{
	int fd = -1;
	int port = 0;
	RefusingPort()
	{
		fd = socket(AF_INET, SOCK_STREAM, 0);
		sockaddr_in a{};
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		socklen_t len = sizeof(a);
		if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0 &&
		    getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0)
			port = ntohs(a.sin_port);
	}
	~RefusingPort()
	{
		if (fd >= 0)
			close(fd);
	}
	std::string
	Conninfo() const
	{
		return "host=127.0.0.1 port=" + std::to_string(port) + " user=nobody dbname=nothing";
	}
};

/* Collects answers from whatever thread gives them. */
struct Answers
{
	std::mutex mu;
	std::condition_variable cv;
	std::vector<AuthResult> results;
	std::vector<std::thread::id> threads;

	AuthRequest
	Request()
	{
		AuthRequest r;
		r.sub_topic = "room";
		r.role = "authenticated";
		r.claims_json = "{\"role\":\"authenticated\"}";
		r.read = rt::fanout::kAuthBroadcast | rt::fanout::kAuthPresence;
		r.done = [this](AuthResult res)
		{
			std::lock_guard<std::mutex> lock(mu);
			results.push_back(std::move(res));
			threads.push_back(std::this_thread::get_id());
			cv.notify_all();
		};
		return r;
	}
	bool
	Wait(size_t n, std::chrono::milliseconds limit)
	{
		std::unique_lock<std::mutex> lock(mu);
		return cv.wait_for(lock, limit, [&] { return results.size() >= n; });
	}
};

void
TestUnreachable(void **)
{
	RefusingPort port;
	assert_true(port.port > 0);
	Answers answers;
	Authorizer a(port.Conninfo());
	a.Start();
	for (int i = 0; i < 3; i++)
		a.Submit(answers.Request());
	assert_true(answers.Wait(3, std::chrono::milliseconds(3000)));
	/* while it cannot connect, requests fail at once instead of waiting */
	auto t0 = std::chrono::steady_clock::now();
	a.Submit(answers.Request());
	assert_true(answers.Wait(4, std::chrono::milliseconds(3000)));
	auto waited = std::chrono::steady_clock::now() - t0;
	assert_true(waited < std::chrono::milliseconds(500));
	a.Stop();
	std::lock_guard<std::mutex> lock(answers.mu);
	assert_int_equal(answers.results.size(), 4);
	for (size_t i = 0; i < answers.results.size(); i++)
	{
		assert_true(answers.results[i].status == AuthResult::Status::kDbUnavailable);
		assert_int_equal(answers.results[i].read_ok, 0);
		assert_true(answers.threads[i] != std::this_thread::get_id());
	}
}

void
TestStopAnswersQueued(void **)
{
	RefusingPort port;
	Answers answers;
	{
		Authorizer a(port.Conninfo()); /* never started */
		a.Submit(answers.Request());
		a.Submit(answers.Request());
		a.Stop();
		assert_int_equal(answers.results.size(), 2);
		/* after Stop: answered at once */
		a.Submit(answers.Request());
		assert_int_equal(answers.results.size(), 3);
	}
	for (const AuthResult &r : answers.results)
		assert_true(r.status == AuthResult::Status::kDbUnavailable);
}

void
TestDestructorStops(void **)
{
	RefusingPort port;
	Answers answers;
	{
		Authorizer a(port.Conninfo());
		a.Start();
		for (int i = 0; i < 20; i++)
			a.Submit(answers.Request());
	}
	/* every request answered exactly once, whether by a round or by Stop */
	assert_int_equal(answers.results.size(), 20);
}

} // namespace

int
main()
{
	rt::fanout::SetLogLevel(rt::fanout::LogLevel::kError);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(TestUnreachable),
	    cmocka_unit_test(TestStopAnswersQueued),
	    cmocka_unit_test(TestDestructorStops),
	};
	return cmocka_run_group_tests_name("authorizer", tests, nullptr, nullptr);
}
