/*
 * ws_client.hpp: the small pieces of a WebSocket + Phoenix vsn 2.0.0 client
 * that the benchmark clients need: an owned fd, the
 * monotonic clock of the payload stamps, base64, the HS256 anon JWT, the
 * realtime-js join message, masked client frames, a server frame parser, a
 * kind-4 (user broadcast) decoder, a reader for the head of a text reply, the
 * upgrade handshake, and the receive side (RxBuffer, ReadFrames). Header-only, no global state: any
 * thread. Failures while connecting throw std::runtime_error.
 */
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace rt::bench
{

constexpr int64_t kNsPerSec = 1000000000;

/* Monotonic clock in nanoseconds (the clock of the payload stamps). */
inline int64_t
MonoNs()
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return int64_t(ts.tv_sec) * kNsPerSec + ts.tv_nsec;
}

/* Owned file descriptor. */
class Fd
{
public:
	Fd() = default;
	explicit Fd(int fd) : fd_(fd) {}
	Fd(const Fd &) = delete;
	Fd &operator=(const Fd &) = delete;
	Fd(Fd &&o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
	Fd &
	operator=(Fd &&o) noexcept
	{
		if (this != &o)
		{
			if (fd_ >= 0)
				close(fd_);
			fd_ = o.fd_;
			o.fd_ = -1;
		}
		return *this;
	}
	~Fd()
	{
		if (fd_ >= 0)
			close(fd_);
	}
	int
	Get() const
	{
		return fd_;
	}

private:
	int fd_ = -1;
};
/* Standard base64 (the handshake key) or base64url without padding (JWT). */
inline std::string
Base64(const unsigned char *data, size_t len, bool url)
{
	std::string out(4 * ((len + 2) / 3) + 1, '\0');
	int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()), data, int(len));
	out.resize(size_t(n));
	if (url)
	{
		while (!out.empty() && out.back() == '=')
			out.pop_back();
		for (char &c : out)
		{
			if (c == '+')
				c = '-';
			else if (c == '/')
				c = '_';
		}
	}
	return out;
}

inline std::string
Base64Url(std::string_view s)
{
	return Base64(reinterpret_cast<const unsigned char *>(s.data()), s.size(), true);
}

/* The anon key realtime-js is given: HS256 over {"role":"anon","exp":now+3600}. */
inline std::string
MintJwt(const std::string &secret)
{
	std::string header = Base64Url(R"({"alg":"HS256","typ":"JWT"})");
	std::string claims =
	    Base64Url(R"({"role":"anon","exp":)" + std::to_string(time(nullptr) + 3600) + "}");
	std::string signing_input = header + "." + claims;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	if (!HMAC(EVP_sha256(), secret.data(), int(secret.size()),
	          reinterpret_cast<const unsigned char *>(signing_input.data()), signing_input.size(),
	          mac, &mac_len))
		throw std::runtime_error("HMAC failed");
	return signing_input + "." + Base64(mac, mac_len, true);
}

/* Fast per-thread generator for masking keys (RFC 6455 wants them unpredictable
 * to proxies, not cryptographically strong; seeded from getrandom). */
class MaskSource
{
public:
	MaskSource()
	{
		if (getrandom(&state_, sizeof(state_), 0) != sizeof(state_) || state_ == 0)
			state_ = 0x9e3779b97f4a7c15ULL;
	}
	uint32_t
	Next()
	{
		state_ ^= state_ << 13;
		state_ ^= state_ >> 7;
		state_ ^= state_ << 17;
		return uint32_t(state_ >> 16);
	}

private:
	uint64_t state_ = 0;
};

enum Opcode : uint8_t
{
	kOpContinuation = 0x0,
	kOpText = 0x1,
	kOpBinary = 0x2,
	kOpClose = 0x8,
	kOpPing = 0x9,
	kOpPong = 0xa,
};

/* Append one masked client frame (FIN set) to out. */
inline void
AppendClientFrame(std::string &out, uint8_t opcode, std::string_view data, uint32_t mask_key)
{
	out.push_back(char(0x80 | opcode));
	size_t len = data.size();
	if (len < 126)
		out.push_back(char(0x80 | len));
	else if (len < 65536)
	{
		out.push_back(char(0x80 | 126));
		out.push_back(char(len >> 8));
		out.push_back(char(len & 0xff));
	}
	else
	{
		out.push_back(char(0x80 | 127));
		for (int i = 7; i >= 0; i--)
			out.push_back(char((uint64_t(len) >> (8 * i)) & 0xff));
	}
	unsigned char mask[4] = {uint8_t(mask_key >> 24), uint8_t(mask_key >> 16),
	                         uint8_t(mask_key >> 8), uint8_t(mask_key)};
	out.append(reinterpret_cast<const char *>(mask), 4);
	size_t at = out.size();
	out.append(data);
	for (size_t i = 0; i < len; i++)
		out[at + i] = char(uint8_t(out[at + i]) ^ mask[i & 3]);
}

/* One server frame found in a receive buffer. */
struct ServerFrame
{
	bool fin = false;
	uint8_t opcode = 0;
	const unsigned char *payload = nullptr;
	size_t len = 0;
	size_t total = 0; /* header + payload bytes */
};

/* Parse the frame at p; 0 if incomplete, -1 if malformed, 1 if complete. */
inline int
ParseServerFrame(const unsigned char *p, size_t avail, ServerFrame &f)
{
	if (avail < 2)
		return 0;
	f.fin = (p[0] & 0x80) != 0;
	f.opcode = p[0] & 0x0f;
	if ((p[0] & 0x70) != 0 || (p[1] & 0x80) != 0)
		return -1; /* no extension negotiated; server frames are never masked */
	uint64_t len = p[1] & 0x7f;
	size_t hdr = 2;
	if (len == 126)
	{
		if (avail < 4)
			return 0;
		len = (uint64_t(p[2]) << 8) | p[3];
		hdr = 4;
	}
	else if (len == 127)
	{
		if (avail < 10)
			return 0;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = (len << 8) | p[2 + i];
		hdr = 10;
	}
	if (len > (uint64_t(1) << 30))
		return -1;
	if (avail < hdr + len)
		return 0;
	f.payload = p + hdr;
	f.len = size_t(len);
	f.total = hdr + size_t(len);
	return 1;
}

/* The first four elements of a vsn 2.0.0 text frame: [join_ref, ref, topic, event, ...]. */
struct TextHead
{
	std::string_view join_ref, ref, topic, event; /* empty also for null */
};

/* Minimal reader for our own replies: strings without escapes, or null. */
inline bool
ParseTextHead(std::string_view s, TextHead &h)
{
	std::string_view *fields[4] = {&h.join_ref, &h.ref, &h.topic, &h.event};
	size_t i = 0;
	if (s.empty() || s[0] != '[')
		return false;
	i = 1;
	for (int k = 0; k < 4; k++)
	{
		while (i < s.size() && (s[i] == ' ' || s[i] == ','))
			i++;
		if (s.substr(i, 4) == "null")
		{
			*fields[k] = {};
			i += 4;
			continue;
		}
		if (i >= s.size() || s[i] != '"')
			return false;
		size_t end = s.find('"', i + 1);
		if (end == std::string_view::npos)
			return false;
		*fields[k] = s.substr(i + 1, end - i - 1);
		i = end + 1;
	}
	return true;
}

/* Read an unsigned decimal after key in s (spaces between them skipped, as
 * jsonb's text output has them); false when absent. */
inline bool
ReadNumberAfter(std::string_view s, std::string_view key, uint64_t &out)
{
	size_t at = s.find(key);
	if (at == std::string_view::npos)
		return false;
	const char *b = s.data() + at + key.size();
	const char *end = s.data() + s.size();
	while (b < end && *b == ' ')
		b++;
	auto [p, ec] = std::from_chars(b, end, out);
	return ec == std::errc() && p != b;
}

/* The phx_join realtime-js 2.x sends first on a fresh socket (join_ref and ref
 * "1"): a public channel (or a private one), broadcast self:false ack:false,
 * presence disabled. */
inline std::string
JoinMessage(const std::string &topic, const std::string &jwt, bool priv = false)
{
	return R"(["1","1",")" + topic +
	       R"(","phx_join",{"config":{"broadcast":{"self":false,"ack":false},)"
	       R"("presence":{"enabled":false},"postgres_changes":[],"private":)" +
	       (priv ? "true" : "false") + R"(},"access_token":")" + jwt + R"("}])";
}

/* A kind-3 user broadcast push (PROTOCOL.md 2.3), JSON payload: the binary message
 * realtime-js 2.119 sends for channel.send({type: "broadcast", ...}); metadata (at most
 * 255 bytes) is what it sends for persist ({"persist":true}), else none. */
inline void
AppendUserPush(std::string &out, std::string_view join_ref, std::string_view ref,
               std::string_view topic, std::string_view event, std::string_view payload,
               std::string_view metadata = {})
{
	out.push_back(char(3));
	out.push_back(char(join_ref.size()));
	out.push_back(char(ref.size()));
	out.push_back(char(topic.size()));
	out.push_back(char(event.size()));
	out.push_back(char(metadata.size()));
	out.push_back(char(1)); /* encoding: JSON */
	out.append(join_ref);
	out.append(ref);
	out.append(topic);
	out.append(event);
	out.append(metadata);
	out.append(payload);
}

/* A kind-4 user broadcast (PROTOCOL.md 2.3), as views into the message. */
struct UserBroadcast
{
	std::string_view topic, event, metadata, payload;
	uint8_t encoding = 0;
};

/* Kind 4: kind, topic_len, user_event_len, metadata_len, encoding, topic,
 * user_event, metadata, payload. False if m is not a well-formed kind-4 message. */
inline bool
DecodeUserBroadcast(std::string_view m, UserBroadcast &out)
{
	if (m.size() < 5 || m[0] != 4)
		return false;
	size_t topic_len = uint8_t(m[1]), event_len = uint8_t(m[2]), meta_len = uint8_t(m[3]);
	size_t at = 5 + topic_len + event_len + meta_len;
	if (m.size() < at)
		return false;
	out.encoding = uint8_t(m[4]);
	out.topic = m.substr(5, topic_len);
	out.event = m.substr(5 + topic_len, event_len);
	out.metadata = m.substr(5 + topic_len + event_len, meta_len);
	out.payload = m.substr(at);
	return true;
}
/*
 * One recv() into a connection's receive buffer, whose unconsumed bytes are
 * [begin, end): when less than chunk bytes are free they move to the front,
 * and the buffer doubles if that is still not enough (big frames). Returns
 * recv()'s result; on success end has moved.
 */
inline ssize_t
RecvMore(int fd, std::vector<unsigned char> &rx, size_t &begin, size_t &end, size_t chunk)
{
	if (rx.size() - end < chunk)
	{
		std::memmove(rx.data(), rx.data() + begin, end - begin);
		end -= begin;
		begin = 0;
		if (rx.size() - end < chunk)
			rx.resize(rx.size() * 2);
	}
	ssize_t n = recv(fd, rx.data() + end, rx.size() - end, 0);
	if (n > 0)
		end += static_cast<size_t>(n);
	return n;
}

/* Write all of data to a socket, waiting if it is non-blocking and full. */
inline bool
WriteAll(int fd, std::string_view data)
{
	while (!data.empty())
	{
		ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
			{
				timespec ts{0, 50000};
				nanosleep(&ts, nullptr);
				continue;
			}
			return false;
		}
		data.remove_prefix(size_t(n));
	}
	return true;
}

/* A WebSocket upgrade sent and not yet answered (StartUpgrade, FinishUpgrade). */
struct PendingUpgrade
{
	Fd fd;
	std::string key; /* Sec-WebSocket-Key */
};

/*
 * TCP connect to host:port (IPv4 literal) and send the upgrade request GET target, no
 * extension offered (so none can be negotiated). Many can be started before the first is
 * finished (a connection storm). source_ip (e.g. 127.0.0.2): bind to it first; with tens of
 * thousands of sockets to one port, the kernel's search for a free port from one source
 * address is what limits the connect rate. Throws std::runtime_error on any failure.
 */
inline PendingUpgrade
StartUpgrade(const std::string &host, int port, const std::string &target,
             const char *source_ip = nullptr)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		throw std::runtime_error(std::string("socket: ") + strerror(errno));
	PendingUpgrade up{Fd(fd), {}};
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* as Node's ws does */
	timeval tv{10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	sockaddr_in addr{};
	addr.sin_family = AF_INET;
	addr.sin_port = htons(uint16_t(port));
	if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
		throw std::runtime_error("bad --host (an IPv4 address is expected): " + host);
	if (source_ip != nullptr)
	{
		/* the port is picked at connect, in this address's own (sparse) port space */
		sockaddr_in src{};
		src.sin_family = AF_INET;
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (inet_pton(AF_INET, source_ip, &src.sin_addr) != 1 ||
		    bind(fd, reinterpret_cast<sockaddr *>(&src), sizeof(src)) != 0)
			throw std::runtime_error(std::string("bind ") + source_ip + ": " + strerror(errno));
	}
	if (connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0)
		throw std::runtime_error("connect " + host + ":" + std::to_string(port) + ": " +
		                         strerror(errno));

	unsigned char nonce[16];
	if (getrandom(nonce, sizeof(nonce), 0) != sizeof(nonce))
		throw std::runtime_error("getrandom failed");
	up.key = Base64(nonce, sizeof(nonce), false);
	std::string req = "GET " + target + " HTTP/1.1\r\n" + "Host: " + host + ":" +
	                  std::to_string(port) + "\r\n" +
	                  "Connection: Upgrade\r\nUpgrade: websocket\r\n" +
	                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + up.key + "\r\n\r\n";
	if (!WriteAll(fd, req))
		throw std::runtime_error(std::string("handshake write: ") + strerror(errno));
	return up;
}

/*
 * Wait for the answer to a StartUpgrade: checks the 101 and Sec-WebSocket-Accept; bytes
 * that came after the response go to leftover. Throws std::runtime_error on any failure.
 */
inline Fd
FinishUpgrade(PendingUpgrade &up, std::string &leftover)
{
	int fd = up.fd.Get();
	std::string resp;
	size_t header_end = std::string::npos;
	while (header_end == std::string::npos)
	{
		char buf[4096];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			throw std::runtime_error("handshake: connection closed or timed out; got: " +
			                         resp.substr(0, 300));
		resp.append(buf, size_t(n));
		header_end = resp.find("\r\n\r\n");
		if (resp.size() > 65536)
			throw std::runtime_error("handshake: response headers too long");
	}
	std::string head = resp.substr(0, header_end);
	if (head.compare(0, 12, "HTTP/1.1 101") != 0)
		throw std::runtime_error("handshake refused: " + resp.substr(0, 400));

	/* Sec-WebSocket-Accept = base64(SHA-1(key + GUID)) */
	std::string expect_src = up.key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_Digest(expect_src.data(), expect_src.size(), md, &md_len, EVP_sha1(), nullptr);
	std::string expect = Base64(md, md_len, false);
	std::string lower = head;
	std::transform(lower.begin(), lower.end(), lower.begin(),
	               [](unsigned char ch) { return char(std::tolower(ch)); });
	size_t at = lower.find("\r\nsec-websocket-accept:");
	if (at == std::string::npos)
		throw std::runtime_error("handshake: no Sec-WebSocket-Accept");
	size_t v = at + 23;
	while (v < head.size() && head[v] == ' ')
		v++;
	if (head.compare(v, expect.size(), expect) != 0)
		throw std::runtime_error("handshake: wrong Sec-WebSocket-Accept");
	if (lower.find("\r\nsec-websocket-extensions:") != std::string::npos)
		throw std::runtime_error("handshake: server negotiated an extension we did not offer");

	leftover = resp.substr(header_end + 4);
	return std::move(up.fd);
}

/* StartUpgrade and FinishUpgrade: one WebSocket, open. */
inline Fd
OpenWebSocket(const std::string &host, int port, const std::string &target, std::string &leftover)
{
	PendingUpgrade up = StartUpgrade(host, port, target);
	return FinishUpgrade(up, leftover);
}

/* What a client connection received and has not handled yet */
struct RxBuffer
{
	explicit RxBuffer(size_t chunk) : bytes(2 * chunk) {}

	/* The bytes that came with the 101 response */
	void
	Load(std::string_view leftover)
	{
		if (bytes.size() < leftover.size())
			bytes.resize(leftover.size());
		std::memcpy(bytes.data(), leftover.data(), leftover.size());
		begin = 0;
		end = leftover.size();
	}

	std::vector<unsigned char> bytes;
	size_t begin = 0, end = 0; /* unconsumed bytes */
	std::string fragments;     /* a fragmented message being collected */
	uint8_t fragment_opcode = 0;
};

/*
 * Handle every complete frame in rx, received at now: a ping is answered with
 * a pong on fd, fragments are joined, and each whole message goes to
 * on_message(opcode, data, now) (for a joined one, its first fragment's
 * opcode); on_message returns false to stop. Returns nullptr, or why the
 * connection is over.
 */
template <typename OnMessage>
const char *
ConsumeFrames(int fd, RxBuffer &rx, MaskSource &masks, int64_t now, OnMessage &&on_message)
{
	bool go = true;
	while (go && rx.begin < rx.end)
	{
		ServerFrame f;
		int r = ParseServerFrame(rx.bytes.data() + rx.begin, rx.end - rx.begin, f);
		if (r == 0)
			break;
		if (r < 0)
			return "malformed WebSocket frame";
		rx.begin += f.total;
		std::string_view data(reinterpret_cast<const char *>(f.payload), f.len);
		switch (f.opcode)
		{
		case kOpPing:
		{
			std::string out;
			AppendClientFrame(out, kOpPong, data, masks.Next());
			WriteAll(fd, out);
			break;
		}
		case kOpPong:
			break;
		case kOpClose:
			return "close frame";
		case kOpContinuation:
			rx.fragments.append(data);
			if (f.fin)
			{
				std::string whole = std::move(rx.fragments);
				rx.fragments.clear();
				go = on_message(rx.fragment_opcode, std::string_view(whole), now);
			}
			break;
		default:
			if (!f.fin)
			{
				rx.fragment_opcode = f.opcode;
				rx.fragments.assign(data);
			}
			else
				go = on_message(f.opcode, data, now);
		}
	}
	if (rx.begin == rx.end)
		rx.begin = rx.end = 0;
	return nullptr;
}

/*
 * One recv() on a readable connection, then ConsumeFrames; on_message(opcode,
 * data, now) gets one receive time for everything this read brought. Returns
 * nullptr while the connection lives (also when nothing was there), else why
 * it is over ("EOF", the errno text, a close or malformed frame).
 */
template <typename OnMessage>
const char *
ReadFrames(int fd, RxBuffer &rx, size_t chunk, MaskSource &masks, OnMessage &&on_message)
{
	ssize_t n = RecvMore(fd, rx.bytes, rx.begin, rx.end, chunk);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return nullptr;
	if (n == 0)
		return "EOF";
	if (n < 0)
		return strerror(errno);
	return ConsumeFrames(fd, rx, masks, MonoNs(), on_message);
}

/*
 * The receive side of a client class over connections (fd, rx, closed):
 * Derived has OnMessage(Conn &, uint8_t opcode, std::string_view, int64_t now)
 * and MarkClosed(Conn &, const char *why) (why: nullptr while it lives), and
 * befriends this base.
 */
template <typename Derived, typename Conn, size_t Chunk> class FrameReceiver
{
protected:
	/* One read() on a readable connection, then decode what is complete. */
	void
	ReadSome(Conn &c)
	{
		if (!c.closed)
			Self().MarkClosed(c, ReadFrames(c.fd.Get(), c.rx, Chunk, masks_, Handler(c)));
	}

	/* The frames already in c's buffer (those that came with the 101) */
	void
	Consume(Conn &c, int64_t now)
	{
		Self().MarkClosed(c, ConsumeFrames(c.fd.Get(), c.rx, masks_, now, Handler(c)));
	}

	MaskSource masks_;

private:
	Derived &
	Self()
	{
		return static_cast<Derived &>(*this);
	}

	/* What each whole message of c goes to; false once c is closed */
	auto
	Handler(Conn &c)
	{
		return [this, &c](uint8_t opcode, std::string_view m, int64_t now)
		{
			Self().OnMessage(c, opcode, m, now);
			return !c.closed;
		};
	}
};

} // namespace rt::bench
