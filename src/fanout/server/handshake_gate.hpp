/*
 * handshake_gate.hpp: new connections wait here until their request head has
 * arrived, so that the connect checks run before libwebsockets owns them.
 *
 * Shard thread only (each shard has its own gate). The gate is an epoll set
 * of accepted sockets; the epoll descriptor itself is watched by the shard's
 * lws loop. Heads are read with MSG_PEEK: a connection handed to lws still
 * has its request in the socket, and lws parses it as if it had accepted it.
 */
#pragma once

#include "server/upgrade_request.hpp"

#include <cstdint>
#include <functional>
#include <string_view>
#include <unordered_map>

namespace rt::fanout
{

class HandshakeGate
{
public:
	static constexpr size_t kMaxHead = 16384;
	static constexpr size_t kMaxPending = 4096; /* connections waiting for their head, per shard */

	HandshakeGate() = default;
	~HandshakeGate();
	HandshakeGate(const HandshakeGate &) = delete;
	HandshakeGate &operator=(const HandshakeGate &) = delete;

	/* Create the epoll set; false on failure (errno set). */
	bool Init();
	int
	fd() const
	{
		return epfd_;
	}

	/* Watch a freshly accepted connection. */
	void Add(int fd, int64_t now_ms);

	/*
	 * Look at every connection with new data. For each complete head (or a
	 * malformed or oversized one) call on_head(fd, status, request, head bytes); the
	 * connection then leaves the gate and belongs to the callback. Peers
	 * that hung up are closed here.
	 */
	void Poll(const std::function<void(int, HeadStatus, const UpgradeRequest &, std::string_view)>
	              &on_head);

	/* Close connections whose head has not arrived within max_age_ms. */
	void Expire(int64_t now_ms, int64_t max_age_ms);

private:
	void Release(int fd); /* leave the gate without closing */

	int epfd_ = -1;
	std::unordered_map<int, int64_t> pending_; /* fd -> accepted at */
};

/* Read and discard whatever the peer sent, so that close() does not reset. */
void DrainSocket(int fd);

} // namespace rt::fanout
