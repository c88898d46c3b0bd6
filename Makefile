# realtime: PGXS build of the extension (realtime.so) plus the sidecar
# (realtime-fanout), its unit tests and benchmarks. See STYLE.md section 3.

PG_CONFIG   ?= pg_config
EXTENSION    = realtime realtime_auth
EXTVERSION   = 0.2.0
AUTHVERSION  = 0.1.0
MODULE_big   = realtime
OBJS         = $(patsubst %.cpp,%.o,$(wildcard src/extension/*.cpp))
DATA_built   = sql/realtime--$(EXTVERSION).sql
# Earlier releases' scripts (frozen) and the updates from them: ALTER EXTENSION realtime UPDATE.
# realtime_auth (optional): Supabase's auth.uid(), auth.role(), auth.jwt() without Supabase Auth
DATA         = sql/realtime--0.1.0.sql sql/realtime--0.1.0--0.2.0.sql \
               sql/realtime_auth--$(AUTHVERSION).sql
PG_CPPFLAGS  = -Isrc/common -isystem $(shell $(PG_CONFIG) --includedir-server)
ifeq ($(DEBUG),1)
PG_CXXFLAGS  = -std=c++17 -fno-exceptions -fno-rtti -Wall -Wextra -Werror -O0 -g -DUSE_ASSERT_CHECKING
else
PG_CXXFLAGS  = -std=c++17 -fno-exceptions -fno-rtti -Wall -Wextra -Werror
endif
SHLIB_LINK   = -lstdc++
EXTRA_CLEAN  = build/ sql/realtime--$(EXTVERSION).sql

# Debian's PG 15 is built with LLVM; its bitcode rule would compile our C++17
# with clang and without PG_CXXFLAGS. JIT inlining of our code is not needed.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/realtime--$(EXTVERSION).sql: sql/realtime.sql
	cp $< $@

# ---------------------------------------------------------------------------
# Sidecar and unit tests: own flags, never PGXS's.
BUILD          ?= build
FANOUT_CXX     ?= g++
FANOUT_WARN     = -Wall -Wextra -Wpedantic -Wshadow -Werror
ifeq ($(DEBUG),1)
FANOUT_OPT      = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
FANOUT_LDOPT    = -fsanitize=address,undefined
else
FANOUT_OPT      = -O2 -g
FANOUT_LDOPT    =
endif
# The extension version the sidecar is built for (realtime.control), checked by --check
RT_EXTENSION_VERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" realtime.control)
FANOUT_CXXFLAGS = -std=c++20 $(FANOUT_OPT) $(FANOUT_WARN) -Isrc/common -Isrc/fanout -I$(BUILD)/gen -I$(shell $(PG_CONFIG) --includedir) -MMD -MP \
                  -DRT_EXTENSION_VERSION='"$(RT_EXTENSION_VERSION)"'
FANOUT_LIBS     = -lwebsockets -lev -lssl -lcrypto -L$(shell $(PG_CONFIG) --libdir) -lpq -lpthread

FANOUT_SRCS     = $(wildcard src/fanout/*/*.cpp)
FANOUT_OBJS     = $(patsubst src/fanout/%.cpp,$(BUILD)/fanout/%.o,$(FANOUT_SRCS))
FANOUT_LIB_OBJS = $(filter-out $(BUILD)/fanout/server/main.o,$(FANOUT_OBJS))
UNIT_SRCS       = $(wildcard test/c/test_*.cpp)
UNIT_BINS       = $(patsubst test/c/%.cpp,$(BUILD)/test/%,$(UNIT_SRCS))
# Test tools the e2e suite runs (scripts/test.sh passes their paths): ring_hold uses
# rt_ring_reader.h only; ring_dump the sidecar's own ring reader
TOOL_BINS       = $(BUILD)/test/ring_hold $(BUILD)/test/ring_dump

# The pages of `realtime-fanout --ui` (src/ui): HTML and CSS copied, each script bundled with
# the pinned @supabase/realtime-js of test/e2e by esbuild (scripts/deps.sh runs npm ci there).
# Built with everything else once esbuild is installed; `make ui` says what is missing.
UI_DIR          = $(BUILD)/ui
UI_SRCS         = $(wildcard src/ui/*)
UI_STATIC       = $(patsubst src/ui/%,$(UI_DIR)/%,$(filter %.html %.css %.svg,$(UI_SRCS)))
UI_SCRIPTS      = $(patsubst src/ui/%.mjs,$(UI_DIR)/%.js,$(filter %.mjs,$(UI_SRCS)))
ESBUILD         = test/e2e/node_modules/.bin/esbuild
UI_INSTALL_DIR  = /usr/local/share/realtime/ui

all: $(BUILD)/realtime-fanout $(TOOL_BINS) $(if $(wildcard $(ESBUILD)),ui)

ui: $(UI_STATIC) $(UI_SCRIPTS)

$(UI_DIR)/%: src/ui/%
	@mkdir -p $(dir $@)
	cp $< $@

$(UI_DIR)/%.js: src/ui/%.mjs test/e2e/package-lock.json
	@test -x $(ESBUILD) || { echo "make ui: $(ESBUILD) is missing: run scripts/deps.sh (npm ci in test/e2e)" >&2; exit 1; }
	@mkdir -p $(dir $@)
	NODE_PATH=test/e2e/node_modules $(ESBUILD) $< --bundle --format=esm --platform=browser \
		--minify --log-level=warning --outfile=$@

# SQLSTATE -> condition name (raise_exception, ...), from the server's own list: error
# texts clients see name the condition as upstream's Postgrex does
$(BUILD)/gen/pg_errcodes.inc: $(shell $(PG_CONFIG) --sharedir)/errcodes.txt
	@mkdir -p $(dir $@)
	awk 'NF >= 4 && $$1 ~ /^[0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z][0-9A-Z]$$/ && $$3 ~ /^ERRCODE_/ { printf "{\"%s\", \"%s\"},\n", $$1, $$4 }' $< > $@.tmp && mv $@.tmp $@

$(BUILD)/fanout/postgres_changes/pg_sqlstate.o: $(BUILD)/gen/pg_errcodes.inc
$(BUILD)/fanout/ops/diagnostics.o: realtime.control

$(BUILD)/fanout/%.o: src/fanout/%.cpp
	@mkdir -p $(dir $@)
	$(FANOUT_CXX) $(FANOUT_CXXFLAGS) -c -o $@ $<

$(BUILD)/realtime-fanout: $(FANOUT_OBJS)
	$(FANOUT_CXX) $(FANOUT_LDOPT) -o $@ $^ $(FANOUT_LIBS)

$(BUILD)/test/%.o: test/c/%.cpp
	@mkdir -p $(dir $@)
	$(FANOUT_CXX) $(FANOUT_CXXFLAGS) -c -o $@ $<

$(BUILD)/test/%: $(BUILD)/test/%.o $(FANOUT_LIB_OBJS)
	$(FANOUT_CXX) $(FANOUT_LDOPT) -o $@ $^ $(FANOUT_LIBS) -lcmocka

$(BUILD)/test/ring_hold: $(BUILD)/test/ring_hold.o
	$(FANOUT_CXX) $(FANOUT_LDOPT) -o $@ $^

-include $(FANOUT_OBJS:.o=.d) $(UNIT_BINS:=.d) $(TOOL_BINS:=.d)

fanout: $(BUILD)/realtime-fanout

install: install-fanout
install-fanout: $(BUILD)/realtime-fanout
	install -d $(DESTDIR)/usr/local/bin
	install -m 0755 $(BUILD)/realtime-fanout $(DESTDIR)/usr/local/bin/realtime-fanout
	@if [ -x $(ESBUILD) ]; then $(MAKE) --no-print-directory ui && \
		install -d $(DESTDIR)$(UI_INSTALL_DIR) && \
		install -m 0644 $(UI_STATIC) $(UI_SCRIPTS) $(DESTDIR)$(UI_INSTALL_DIR)/; \
	else echo "install: no $(ESBUILD): the --ui pages are not installed (scripts/deps.sh)"; fi

# libFuzzer targets (test/c/fuzz_*.cpp) with clang, AddressSanitizer and UBSan: the sidecar's
# sources once into build/fuzz/obj (instrumented for coverage), each target linked against them.
# `make fuzz` runs each FUZZ_SECONDS (300) from its corpus test/c/corpus/<name>; the README's
# test command runs each for a bounded time (scripts/fuzz.sh).
FUZZ_CXX        ?= clang++
FUZZ_CXXFLAGS    = -std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
                   -fno-sanitize-recover=undefined -fsanitize-recover=pointer-overflow \
                   -Wall -Wextra -Werror \
                   -Wno-ambiguous-reversed-operator -Isrc/common -Isrc/fanout \
                   -I$(BUILD)/gen -I$(shell $(PG_CONFIG) --includedir) -MMD -MP \
                   -DRT_EXTENSION_VERSION='"$(RT_EXTENSION_VERSION)"'
FUZZ_OBJS        = $(patsubst src/fanout/%.cpp,$(BUILD)/fuzz/obj/%.o,$(filter-out src/fanout/server/main.cpp,$(FANOUT_SRCS)))
FUZZ_BINS        = $(patsubst test/c/%.cpp,$(BUILD)/fuzz/%,$(wildcard test/c/fuzz_*.cpp))
FUZZ_SECONDS    ?= 300

$(BUILD)/fuzz/obj/postgres_changes/pg_sqlstate.o: $(BUILD)/gen/pg_errcodes.inc
$(BUILD)/fuzz/obj/%.o: src/fanout/%.cpp
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(BUILD)/fuzz/%: test/c/%.cpp $(FUZZ_OBJS)
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) $(FANOUT_LIBS)

-include $(FUZZ_OBJS:.o=.d) $(FUZZ_BINS:=.d)

fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	@scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

# Unit tests (CMocka) print TAP; scripts/run_unit.sh runs each binary.
unitcheck: $(UNIT_BINS)
	@scripts/run_unit.sh $(UNIT_BINS)

# Everything: deps, -Werror build, pgTAP, CMocka, e2e. Last line "N passed, N failed".
test:
	@scripts/test.sh

FORMAT_FILES = $(wildcard src/*/*.cpp src/*/*.hpp src/*/*.h src/fanout/*/*.cpp src/fanout/*/*.hpp test/c/*.cpp bench/*.cpp bench/*.hpp bench/*/*.cpp)
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

.PHONY: ui fanout install-fanout unitcheck fuzz fuzz-build test format format-check

# ---------------------------------------------------------------------------
# Benchmarks (not part of the tests): bench/broadcast.sh, bench/db_latency.sh,
# bench/send_cost.sh, bench/changes.sh, bench/private.sh; docs/PERFORMANCE.md.
BENCH_CXXFLAGS = -std=c++20 -O2 -Wall -Wextra -Werror

$(BUILD)/bench/load_client: bench/load_client.cpp bench/bench_util.hpp bench/ws_client.hpp bench/histogram.hpp
	@mkdir -p $(dir $@)
	$(FANOUT_CXX) $(BENCH_CXXFLAGS) -o $@ $< -lssl -lcrypto -lpthread

$(BUILD)/bench/baseline_server: bench/baseline/baseline_server.cpp
	@mkdir -p $(dir $@)
	$(FANOUT_CXX) $(BENCH_CXXFLAGS) -o $@ $< -lwebsockets -lpthread

$(BUILD)/bench/db_latency: bench/db_latency.cpp bench/bench_util.hpp bench/ws_client.hpp bench/histogram.hpp
	@mkdir -p $(dir $@)
	$(FANOUT_CXX) $(BENCH_CXXFLAGS) -I$(shell $(PG_CONFIG) --includedir) -o $@ $< \
		-L$(shell $(PG_CONFIG) --libdir) -lpq -lssl -lcrypto -lpthread

$(BUILD)/bench/changes_client: bench/changes_client.cpp bench/bench_util.hpp bench/ws_client.hpp bench/histogram.hpp
	@mkdir -p $(dir $@)
	$(FANOUT_CXX) $(BENCH_CXXFLAGS) -I$(shell $(PG_CONFIG) --includedir) -o $@ $< \
		-L$(shell $(PG_CONFIG) --libdir) -lpq -lssl -lcrypto -lpthread

$(BUILD)/bench/private_client: bench/private_client.cpp bench/bench_util.hpp bench/ws_client.hpp bench/histogram.hpp
	@mkdir -p $(dir $@)
	$(FANOUT_CXX) $(BENCH_CXXFLAGS) -o $@ $< -lssl -lcrypto

$(BUILD)/bench/persist_client: bench/persist_client.cpp bench/bench_util.hpp bench/ws_client.hpp bench/histogram.hpp
	@mkdir -p $(dir $@)
	$(FANOUT_CXX) $(BENCH_CXXFLAGS) -o $@ $< -lssl -lcrypto

$(BUILD)/bench/connections_client: bench/connections_client.cpp bench/bench_util.hpp bench/ws_client.hpp
	@mkdir -p $(dir $@)
	$(FANOUT_CXX) $(BENCH_CXXFLAGS) -o $@ $< -lssl -lcrypto

bench-broadcast: $(BUILD)/bench/load_client $(BUILD)/bench/baseline_server
	bench/broadcast.sh

# realtime.send against NOTIFY: a throwaway cluster (scripts/cluster.sh) with the
# installed extension (make install first) and the sidecar.
bench-db-latency: $(BUILD)/bench/db_latency $(BUILD)/bench/load_client $(BUILD)/realtime-fanout
	bench/db_latency.sh

bench-send-cost: $(BUILD)/bench/db_latency $(BUILD)/bench/load_client $(BUILD)/realtime-fanout
	bench/send_cost.sh

# Decoding throughput of the output plugin against wal2json, pgoutput and
# test_decoding (bench/decode.sh): measures the realtime.so installed by make install.
bench-decode:
	bench/decode.sh

# Postgres Changes: 1,000 clients of 100 users on a table with RLS and one without
# (bench/changes.sh): a throwaway cluster with the installed extension and the sidecar.
bench-changes: $(BUILD)/bench/changes_client $(BUILD)/bench/load_client $(BUILD)/realtime-fanout
	bench/changes.sh

# Private channels (RLS on realtime.messages) and presence (bench/private.sh): private
# against public joins and first broadcasts, presence convergence against a broadcast.
bench-private: $(BUILD)/bench/private_client $(BUILD)/bench/load_client $(BUILD)/realtime-fanout
	bench/private.sh

# Persisted broadcasts (bench/persist.sh): private broadcasts with persist through one sidecar
# into PostgreSQL, msgs/s and ack p50/p99, against the same broadcasts not stored.
bench-persist: $(BUILD)/bench/persist_client $(BUILD)/bench/load_client $(BUILD)/realtime-fanout
	bench/persist.sh

# Connection scale (bench/connections.sh): N idle realtime-js-like sockets joined to one
# channel, the sidecar's RSS per connection, connect rate, one broadcast to all, close cycles.
bench-connections: $(BUILD)/bench/connections_client $(BUILD)/bench/load_client $(BUILD)/bench/baseline_server $(BUILD)/realtime-fanout
	bench/connections.sh

# Subscribers that stop reading (bench/slow_consumer.sh): the others' p50/p99 with and
# without BENCH_STALLED of them, alternating runs; the stalled ones told and closed.
bench-slow-consumer: $(BUILD)/bench/load_client $(BUILD)/realtime-fanout
	bench/slow_consumer.sh

.PHONY: bench-persist bench-slow-consumer bench-connections bench-broadcast bench-db-latency bench-send-cost bench-decode bench-changes bench-private
