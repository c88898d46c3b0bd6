#!/usr/bin/env bash
# run.sh: THE run command. Run as root on Debian 12, from anywhere.
#
# Installs what is missing, builds and installs, starts a throwaway PostgreSQL 15 cluster with
# the extension (under .run/pg in the working tree when the postgres user can reach it, else
# in a temp dir under /tmp; wiped at each start) and the sidecar on 127.0.0.1:$PORT (default
# 4000), prints the URLs, the JWT secret, an anon key and a service_role key, and stays in the
# foreground until Ctrl-C, then stops both.
#
# Usage: scripts/run.sh [--no-build]   (--no-build: skip deps.sh, make and make install, and
# run what is built and installed already)
#
# Environment: PORT (sidecar port, default 4000), PG_PORT (default: a free port),
# API_JWT_SECRET (default: 40 random characters), RT_KEY_TTL (key lifetime in seconds,
# default: the sidecar's), RUN_DIR (where the cluster goes, default .run in the working tree;
# wiped at each start). The sidecar's log goes to this terminal; PostgreSQL's to
# <cluster dir>/log/postgres.log.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"
# shellcheck source-path=SCRIPTDIR
# shellcheck source=common.sh
source "$here/common.sh"

build=1
case "${1:-}" in
--no-build) build=0 ;;
"") ;;
*) die "usage: $0 [--no-build]" ;;
esac

port=${PORT:-4000}
cluster_dir=
tmp_dir=
fanout_pid=

# Stop the sidecar, then PostgreSQL; remove the cluster only if it lives under /tmp.
# shellcheck disable=SC2317 # run from the EXIT trap
cleanup() {
	set +e
	trap - EXIT INT TERM
	if [[ -n "$fanout_pid" ]]; then
		kill "$fanout_pid" 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$fanout_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$fanout_pid" 2>/dev/null
		wait "$fanout_pid" 2>/dev/null
	fi
	if [[ -n "$cluster_dir" ]]; then
		bash "$here/cluster.sh" stop "$cluster_dir"
	fi
	if [[ -n "$tmp_dir" ]]; then
		rm -rf "$tmp_dir"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_is_free "$port" || die "port $port on 127.0.0.1 is in use; set PORT to another one"

if ((build)); then
	bash "$here/deps.sh"
	make -j"$(nproc)"
	make install
fi

# Under the working tree if the postgres user can reach it (not under /root, for example).
run_dir=${RUN_DIR:-$root/.run}
mkdir -p "$run_dir"
chmod 755 "$run_dir"
if runuser -u postgres -- test -x "$run_dir"; then
	cluster_dir=$run_dir/pg
	# A previous run killed without cleanup may have left its server running.
	bash "$here/cluster.sh" stop "$cluster_dir" 2>/dev/null || true
	rm -rf "$cluster_dir"
else
	tmp_dir=$(mktemp -d /tmp/realtime-run.XXXXXX)
	chmod 711 "$tmp_dir"
	cluster_dir=$tmp_dir/pg
	say "postgres cannot reach $run_dir: the cluster goes to $cluster_dir"
fi
pg_port=${PG_PORT:-$(free_port)}
conninfo=$(bash "$here/cluster.sh" start "$cluster_dir" "$pg_port")
# The publication Postgres Changes follow, empty, as the Supabase platform creates it: add tables
# with ALTER PUBLICATION supabase_realtime ADD TABLE ...
"$(pg_bindir)/psql" -X -q -v ON_ERROR_STOP=1 "$conninfo" -c "DO \$\$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime') THEN
		CREATE PUBLICATION supabase_realtime;
	END IF; END \$\$" || die "could not create the publication supabase_realtime"

secret=${API_JWT_SECRET:-$(random_secret)}
fanout_bin=$root/build/realtime-fanout
# the pages (make builds them into build/ui once test/e2e's npm packages are installed)
ui=()
[[ -f "$root/build/ui/inspector.html" ]] && ui=(--ui --ui-dir "$root/build/ui")
"$fanout_bin" --host 127.0.0.1 --port "$port" --db "$conninfo" --ring-path "$cluster_dir/realtime.ring" \
	--jwt-secret "$secret" "${ui[@]}" &
fanout_pid=$!
wait_http_ok "$port" /healthz 30 "$fanout_pid" ||
	die "realtime-fanout did not answer GET http://127.0.0.1:$port/healthz within 30 s"

# Keys are minted by the sidecar binary itself, with the same secret.
mint() {
	local ttl=()
	[[ -n "${RT_KEY_TTL:-}" ]] && ttl=(--ttl "$RT_KEY_TTL")
	"$fanout_bin" token --role "$1" --jwt-secret "$secret" "${ttl[@]}" ||
		echo "(could not mint a $1 key: see the error above)"
}
anon_key=$(mint anon)
service_key=$(mint service_role)

cat <<EOF

realtime is running (Ctrl-C stops it)
  WebSocket URL:    ws://127.0.0.1:$port/realtime/v1
  REST URL:         http://127.0.0.1:$port/realtime/v1/api
  inspector:        ${ui:+http://127.0.0.1:$port/inspector}${ui:-(not built: make ui)}
  JWT secret:       $secret
  anon key:         $anon_key
  service_role key: $service_key
  database:         postgresql://postgres@127.0.0.1:$pg_port/postgres
  psql:             psql "postgresql://postgres@127.0.0.1:$pg_port/postgres"
  PostgreSQL log:   $cluster_dir/log/postgres.log

EOF

rc=0
wait "$fanout_pid" || rc=$?
fanout_pid=
say "realtime-fanout exited with status $rc"
exit "$rc"
