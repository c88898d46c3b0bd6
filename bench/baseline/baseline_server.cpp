/*
 * baseline_server.cpp: the least a libwebsockets server can do to fan out
 * one channel, as a yardstick for realtime-fanout (bench/broadcast.sh,
 * docs/PERFORMANCE.md). Not a Realtime server: no auth, no topics.
 *
 * It answers any vsn 2.0.0 text phx_join with a canned ok reply (and
 * heartbeats with ok), so bench/load_client works unchanged. For each binary
 * kind-3 frame it builds the kind-4 frame once and queues the same bytes
 * (a shared_ptr) on every other joined connection; each connection writes
 * from its queue in SERVER_WRITEABLE, one lws_write per callback, from
 * LWS_PRE headroom, as the lws minimal examples do.
 *
 * Threads: one lws context and service thread per shard, all on the same port,
 * like the real sidecar; default one shard per core. Debian's lws 4.1.6 does
 * not set SO_REUSEPORT for LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE (strace shows
 * SO_REUSEADDR only; the second context fails with EADDRINUSE) and binds
 * iface "127.0.0.1" as [::]. So each shard opens its own SO_REUSEPORT listen
 * socket, lws watches it as a raw descriptor, and accepted sockets are handed
 * to lws with lws_adopt_socket_vhost: the kernel spreads connections over the
 * shards as it would with the option working. A frame received on one shard is
 * copied once per other shard and handed over through that shard's inbox
 * (mutex) plus lws_cancel_service; each shard touches only its own sessions.
 * Per-shard copies exist because lws_write writes the WebSocket header into
 * the LWS_PRE bytes of the buffer: one buffer per thread keeps that race-free.
 * The main thread only starts the shards and waits for SIGINT/SIGTERM.
 *
 * --batch N (default 1) lets one lws_write carry up to N queued frames with
 * headers built by us (LWS_WRITE_RAW): not the lws-example baseline, but a
 * cheaper server that shows where the load client itself saturates.
 */
#include <arpa/inet.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace rt::bench
{

/* Command-line settings. */
struct Options
{
	std::string host = "127.0.0.1";
	int port = 0;
	int threads = 0;                          /* 0: one per core */
	int batch = 1;                            /* frames per lws_write */
	size_t queue_bytes = 16u * 1024u * 1024u; /* per connection, then drop */
};

/* Immutable once queued: payload bytes after LWS_PRE bytes of headroom. */
struct Frame
{
	std::vector<unsigned char> bytes;
	size_t len = 0;
	bool text = false;
	unsigned char header[10]; /* WebSocket header for --batch (server frames: unmasked) */
	size_t header_len = 0;

	Frame(std::string_view payload, bool is_text)
	    : bytes(LWS_PRE + payload.size()), len(payload.size()), text(is_text)
	{
		std::memcpy(bytes.data() + LWS_PRE, payload.data(), payload.size());
		header[0] = uint8_t(0x80 | (text ? 0x1 : 0x2));
		if (len < 126)
		{
			header[1] = uint8_t(len);
			header_len = 2;
		}
		else if (len < 65536)
		{
			header[1] = 126;
			header[2] = uint8_t(len >> 8);
			header[3] = uint8_t(len);
			header_len = 4;
		}
		else
		{
			header[1] = 127;
			for (int i = 0; i < 8; i++)
				header[2 + i] = uint8_t((uint64_t(len) >> (8 * (7 - i))) & 0xff);
			header_len = 10;
		}
	}
	unsigned char *
	Payload()
	{
		return bytes.data() + LWS_PRE;
	}
};
using FramePtr = std::shared_ptr<Frame>;

struct Shard;

/* One connection; created in ESTABLISHED, deleted in CLOSED (shard thread). */
struct Session
{
	lws *wsi = nullptr;
	Shard *shard = nullptr;
	size_t index = 0; /* position in shard->sessions */
	bool joined = false;
	std::string rx; /* message being collected */
	std::deque<FramePtr> queue;
	size_t queued_bytes = 0;
	std::vector<unsigned char> scratch; /* --batch: LWS_PRE + concatenated frames */
};

/* lws zero-fills this per-session area and runs no constructor. */
struct SessionSlot
{
	Session *s;
};

/* One lws context and everything it reaches; only its thread touches it,
 * except the inbox. */
struct Shard
{
	const Options *options = nullptr;
	std::vector<Shard *> *all = nullptr;
	lws_context *ctx = nullptr;
	lws_vhost *vhost = nullptr;
	std::thread thread;
	std::vector<Session *> sessions;
	std::mutex inbox_mutex;
	std::vector<FramePtr> inbox; /* frames from other shards, in order */
	std::atomic<uint64_t> frames_in{0}, deliveries{0}, writes{0}, drops{0};
};

std::atomic<bool> g_stop{false};

/* Queue one shared frame on every joined session of this shard but the sender. */
void
FanOut(Shard &shard, const FramePtr &f, const Session *sender)
{
	for (Session *s : shard.sessions)
	{
		if (s == sender || !s->joined)
			continue;
		if (s->queued_bytes + f->len > shard.options->queue_bytes)
		{
			shard.drops.fetch_add(1, std::memory_order_relaxed);
			continue;
		}
		bool was_empty = s->queue.empty();
		s->queue.push_back(f);
		s->queued_bytes += f->len;
		if (was_empty)
			lws_callback_on_writable(s->wsi);
	}
}

/* Queue a frame for one session only (replies). */
void
Reply(Session &s, std::string_view text)
{
	bool was_empty = s.queue.empty();
	auto f = std::make_shared<Frame>(text, true);
	s.queued_bytes += f->len;
	s.queue.push_back(std::move(f));
	if (was_empty)
		lws_callback_on_writable(s.wsi);
}

/* Raw JSON of the first four elements of [join_ref, ref, topic, event, ...]. */
bool
ParseHead(std::string_view m, std::string_view (&raw)[4])
{
	size_t i = 1;
	if (m.empty() || m[0] != '[')
		return false;
	for (auto &field : raw)
	{
		while (i < m.size() && (m[i] == ' ' || m[i] == ','))
			i++;
		if (m.substr(i, 4) == "null")
		{
			field = m.substr(i, 4);
			i += 4;
			continue;
		}
		if (i >= m.size() || m[i] != '"')
			return false;
		size_t end = i + 1;
		while (end < m.size() && m[end] != '"')
			end += m[end] == '\\' ? 2 : 1;
		if (end >= m.size())
			return false;
		field = m.substr(i, end + 1 - i);
		i = end + 1;
	}
	return true;
}

/* Text: phx_join gets ok, heartbeat gets ok, anything else is ignored. */
void
OnText(Session &s, std::string_view m)
{
	std::string_view raw[4];
	if (!ParseHead(m, raw))
		return;
	if (raw[3] == "\"phx_join\"")
	{
		s.joined = true;
		Reply(s, "[" + std::string(raw[0]) + "," + std::string(raw[1]) + "," + std::string(raw[2]) +
		             R"(,"phx_reply",{"status":"ok","response":{"postgres_changes":[]}}])");
	}
	else if (raw[3] == "\"heartbeat\"")
		Reply(s, "[null," + std::string(raw[1]) +
		             R"(,"phoenix","phx_reply",{"status":"ok","response":{}}])");
}

/*
 * Kind 3 (kind, join_ref_len, ref_len, topic_len, user_event_len,
 * metadata_len, encoding, strings, payload) becomes kind 4 (kind, topic_len,
 * user_event_len, metadata_len = 0, encoding, topic, user_event, payload),
 * built once here and fanned out.
 */
void
OnBinary(Session &s, std::string_view m)
{
	if (m.size() < 7 || m[0] != 3)
		return;
	size_t jr = uint8_t(m[1]), ref = uint8_t(m[2]), topic = uint8_t(m[3]);
	size_t event = uint8_t(m[4]), meta = uint8_t(m[5]);
	size_t at = 7 + jr + ref;
	if (m.size() < at + topic + event + meta)
		return;
	std::string out;
	out.reserve(5 + topic + event + m.size());
	out.push_back(char(4));
	out.push_back(char(topic));
	out.push_back(char(event));
	out.push_back(char(0));
	out.push_back(m[6]);
	out.append(m.substr(at, topic + event));
	out.append(m.substr(at + topic + event + meta));

	Shard &shard = *s.shard;
	shard.frames_in.fetch_add(1, std::memory_order_relaxed);
	auto f = std::make_shared<Frame>(out, false);
	for (Shard *other : *shard.all)
	{
		if (other == &shard)
			continue;
		auto copy = std::make_shared<Frame>(*f);
		{
			std::lock_guard<std::mutex> lock(other->inbox_mutex);
			other->inbox.push_back(std::move(copy));
		}
		lws_cancel_service(other->ctx);
	}
	FanOut(shard, f, &s);
}

/* SERVER_WRITEABLE: one lws_write of one frame (or of up to --batch frames). */
int
Write(Session &s)
{
	if (s.queue.empty())
		return 0;
	Shard &shard = *s.shard;
	int batch = shard.options->batch;
	if (batch <= 1)
	{
		FramePtr f = std::move(s.queue.front());
		s.queue.pop_front();
		s.queued_bytes -= f->len;
		int n = lws_write(s.wsi, f->Payload(), f->len, f->text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY);
		if (n < int(f->len))
			return -1;
		shard.deliveries.fetch_add(1, std::memory_order_relaxed);
	}
	else
	{
		s.scratch.resize(LWS_PRE);
		int frames = 0;
		while (!s.queue.empty() && frames < batch && s.scratch.size() < 64 * 1024)
		{
			const Frame &f = *s.queue.front();
			s.scratch.insert(s.scratch.end(), f.header, f.header + f.header_len);
			s.scratch.insert(s.scratch.end(), f.bytes.begin() + LWS_PRE, f.bytes.end());
			s.queued_bytes -= f.len;
			s.queue.pop_front();
			frames++;
		}
		size_t len = s.scratch.size() - LWS_PRE;
		if (lws_write(s.wsi, s.scratch.data() + LWS_PRE, len, LWS_WRITE_RAW) < int(len))
			return -1;
		shard.deliveries.fetch_add(uint64_t(frames), std::memory_order_relaxed);
	}
	shard.writes.fetch_add(1, std::memory_order_relaxed);
	if (!s.queue.empty())
		lws_callback_on_writable(s.wsi);
	return 0;
}

/* The lws callbacks proper; runs on the shard's service thread. */
int
Dispatch(lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	auto *slot = static_cast<SessionSlot *>(user);
	switch (reason)
	{
	case LWS_CALLBACK_ESTABLISHED:
	{
		auto *shard = static_cast<Shard *>(lws_context_user(lws_get_context(wsi)));
		auto session = std::make_unique<Session>();
		session->wsi = wsi;
		session->shard = shard;
		session->index = shard->sessions.size();
		shard->sessions.push_back(session.get());
		slot->s = session.release();
		return 0;
	}
	case LWS_CALLBACK_CLOSED:
	{
		if (!slot || !slot->s)
			return 0;
		std::unique_ptr<Session> s(slot->s);
		slot->s = nullptr;
		auto &list = s->shard->sessions;
		list[s->index] = list.back();
		list[s->index]->index = s->index;
		list.pop_back();
		return 0;
	}
	case LWS_CALLBACK_RECEIVE:
	{
		if (!slot || !slot->s)
			return -1;
		Session &s = *slot->s;
		s.rx.append(static_cast<const char *>(in), len);
		if (s.rx.size() > 5000000)
			return -1;
		if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) != 0)
			return 0;
		if (lws_frame_is_binary(wsi))
			OnBinary(s, s.rx);
		else
			OnText(s, s.rx);
		s.rx.clear();
		return 0;
	}
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!slot || !slot->s)
			return 0;
		return Write(*slot->s);
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
	{
		auto *shard = static_cast<Shard *>(lws_context_user(lws_get_context(wsi)));
		std::vector<FramePtr> batch;
		{
			std::lock_guard<std::mutex> lock(shard->inbox_mutex);
			batch.swap(shard->inbox);
		}
		for (const FramePtr &f : batch)
			FanOut(*shard, f, nullptr);
		return 0;
	}
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

/* The callback shell: nothing unwinds through lws frames (bad_alloc closes
 * that connection only). */
int
Callback(lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	try
	{
		return Dispatch(wsi, reason, user, in, len);
	}
	catch (const std::exception &e)
	{
		std::fprintf(stderr, "baseline_server: callback %d: %s\n", int(reason), e.what());
		return -1;
	}
}

/* The shard's listen socket, watched by lws as a raw descriptor: accept
 * everything pending and adopt it as a fresh HTTP/WebSocket connection. */
int
ListenerCallback(lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	if (reason != LWS_CALLBACK_RAW_RX_FILE)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	auto *shard = static_cast<Shard *>(lws_context_user(lws_get_context(wsi)));
	int listen_fd = lws_get_socket_fd(wsi);
	for (;;)
	{
		int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return 0; /* EAGAIN: all taken; other errors: try on the next wake */
		int one = 1;  /* as lws does for sockets it accepts itself */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!lws_adopt_socket_vhost(shard->vhost, fd))
			std::fprintf(stderr, "baseline_server: lws refused an accepted socket\n");
	}
}

const lws_protocols kProtocols[] = {
    {"realtime-baseline", Callback, sizeof(SessionSlot), 0, 0, nullptr, 0},
    {"baseline-listener", ListenerCallback, 0, 0, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
};

/* A non-blocking listen socket that shares host:port with the other shards. */
int
OpenListener(const Options &o)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	sockaddr_in addr{};
	addr.sin_family = AF_INET;
	addr.sin_port = htons(uint16_t(o.port));
	if (fd < 0 || inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr) != 1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 || listen(fd, 4096) != 0)
	{
		std::fprintf(stderr, "baseline_server: cannot listen on %s:%d: %s\n", o.host.c_str(),
		             o.port, std::strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

[[noreturn]] void
Usage()
{
	std::fprintf(stderr, "usage: baseline_server --port N [--host 127.0.0.1] [--threads N]\n"
	                     "         [--batch 1] [--queue-bytes 16777216]\n");
	std::exit(2);
}

Options
ParseArgs(int argc, char **argv)
{
	Options o;
	for (int i = 1; i + 1 < argc; i += 2)
	{
		std::string_view a = argv[i];
		const char *v = argv[i + 1];
		if (a == "--host")
			o.host = v;
		else if (a == "--port")
			o.port = std::atoi(v);
		else if (a == "--threads")
			o.threads = std::atoi(v);
		else if (a == "--batch")
			o.batch = std::atoi(v);
		else if (a == "--queue-bytes")
			o.queue_bytes = size_t(std::atoll(v));
		else
			Usage();
	}
	if (argc % 2 == 0 || o.port <= 0 || o.threads < 0 || o.batch < 1)
		Usage();
	if (o.threads == 0)
		o.threads = int(std::max(1u, std::thread::hardware_concurrency()));
	return o;
}

int
Main(int argc, char **argv)
{
	Options o = ParseArgs(argc, argv);
	lws_set_log_level(LLL_ERR | LLL_WARN, nullptr);

	/* Signals go to main only: shard threads inherit this mask. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

	std::vector<std::unique_ptr<Shard>> shards;
	std::vector<Shard *> all;
	for (int i = 0; i < o.threads; i++)
	{
		shards.push_back(std::make_unique<Shard>());
		all.push_back(shards.back().get());
	}
	for (auto &shard : shards)
	{
		lws_context_creation_info info;
		std::memset(&info, 0, sizeof(info));
		info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* we listen ourselves, see above */
		info.protocols = kProtocols;
		info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
		info.user = shard.get();
		shard->options = &o;
		shard->all = &all;
		shard->ctx = lws_create_context(&info);
		shard->vhost = shard->ctx ? lws_get_vhost_by_name(shard->ctx, "default") : nullptr;
		if (!shard->vhost)
		{
			std::fprintf(stderr, "baseline_server: lws_create_context failed\n");
			return 1;
		}
		int listen_fd = OpenListener(o);
		if (listen_fd < 0)
			return 1;
		lws_sock_file_fd_type u;
		u.filefd = listen_fd;
		if (!lws_adopt_descriptor_vhost(shard->vhost, LWS_ADOPT_RAW_FILE_DESC, u,
		                                "baseline-listener", nullptr))
		{
			std::fprintf(stderr, "baseline_server: cannot watch the listen socket\n");
			return 1;
		}
	}
	for (auto &shard : shards)
	{
		Shard *sh = shard.get();
		sh->thread = std::thread(
		    [sh]
		    {
			    while (!g_stop.load(std::memory_order_relaxed))
				    if (lws_service(sh->ctx, 0) < 0)
					    break;
		    });
	}
	std::fprintf(stderr, "baseline_server: listening on %s:%d, %d shard(s), batch %d\n",
	             o.host.c_str(), o.port, o.threads, o.batch);

	int sig = 0;
	sigwait(&sigs, &sig);
	g_stop.store(true);
	for (auto &shard : shards)
		lws_cancel_service(shard->ctx);
	uint64_t in = 0, deliveries = 0, writes = 0, drops = 0;
	for (auto &shard : shards)
	{
		shard->thread.join();
		in += shard->frames_in;
		deliveries += shard->deliveries;
		writes += shard->writes;
		drops += shard->drops;
	}
	for (auto &shard : shards)
		lws_context_destroy(shard->ctx);
	std::fprintf(stderr, "baseline_server: frames_in=%llu deliveries=%llu writes=%llu drops=%llu\n",
	             (unsigned long long)in, (unsigned long long)deliveries, (unsigned long long)writes,
	             (unsigned long long)drops);
	return 0;
}

} // namespace rt::bench

int
main(int argc, char **argv)
{
	try
	{
		return rt::bench::Main(argc, argv);
	}
	catch (const std::exception &e)
	{
		std::fprintf(stderr, "baseline_server: %s\n", e.what());
		return 1;
	}
}
