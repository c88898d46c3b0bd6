/*
 * handshake_gate.cpp: epoll set of connections awaiting their request head
 * (shard thread).
 */
#include "server/handshake_gate.hpp"

#include <cerrno>
#include <string>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace rt::fanout
{

HandshakeGate::~HandshakeGate()
{
	for (auto &[fd, since] : pending_)
		close(fd);
	if (epfd_ >= 0)
		close(epfd_);
}

bool
HandshakeGate::Init()
{
	epfd_ = epoll_create1(EPOLL_CLOEXEC);
	return epfd_ >= 0;
}

void
HandshakeGate::Add(int fd, int64_t now_ms)
{
	if (pending_.size() >= kMaxPending)
	{
		close(fd); /* a flood of idle connections must not grow without bound */
		return;
	}
	epoll_event ev{};
	/*
	 * Edge-triggered: a connection whose head is incomplete keeps its bytes
	 * (we only peek), so level-triggered epoll would report it on every call
	 * until the rest arrives. With EPOLLET it is reported again only when
	 * more bytes come.
	 */
	ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
	ev.data.fd = fd;
	if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0)
	{
		close(fd);
		return;
	}
	pending_[fd] = now_ms;
}

void
HandshakeGate::Release(int fd)
{
	epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
	pending_.erase(fd);
}

void
HandshakeGate::Poll(
    const std::function<void(int, HeadStatus, const UpgradeRequest &, std::string_view)> &on_head)
{
	/*
	 * One batch per call: if more connections are ready, the epoll descriptor
	 * stays readable and lws calls again on its next turn, after serving
	 * everything else.
	 */
	epoll_event events[64];
	std::string buf(kMaxHead + 1, '\0');
	{
		int n = epoll_wait(epfd_, events, 64, 0);
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++)
		{
			int fd = events[i].data.fd;
			ssize_t got = recv(fd, buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT);
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got <= 0)
			{
				/* peer gone before sending a request */
				Release(fd);
				close(fd);
				continue;
			}
			UpgradeRequest req;
			size_t head_len = 0;
			HeadStatus st = ParseRequestHead(std::string_view(buf.data(), static_cast<size_t>(got)),
			                                 req, head_len);
			if (st == HeadStatus::kIncomplete)
			{
				if (static_cast<size_t>(got) <= kMaxHead)
				{
					if (events[i].events & EPOLLRDHUP)
					{
						Release(fd); /* half a request and a hang-up */
						close(fd);
					}
					continue; /* wait for the rest */
				}
				st = HeadStatus::kMalformed; /* a head this large is not one of ours */
			}
			Release(fd);
			on_head(fd, st, req,
			        std::string_view(buf.data(), st == HeadStatus::kComplete ? head_len : 0));
		}
	}
}

void
HandshakeGate::Expire(int64_t now_ms, int64_t max_age_ms)
{
	std::vector<int> stale;
	for (auto &[fd, since] : pending_)
	{
		if (now_ms - since > max_age_ms)
			stale.push_back(fd);
	}
	for (int fd : stale)
	{
		Release(fd);
		close(fd);
	}
}

void
DrainSocket(int fd)
{
	char buf[4096];
	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
	{
	}
}

} // namespace rt::fanout
