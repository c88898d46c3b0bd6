# shellcheck shell=bash
# common.sh: helpers sourced by the scripts in this directory (not run on its own).
# Pins PostgreSQL 15 tools, picks free loopback ports, waits for HTTP endpoints.

# Debian's /usr/bin/pg_config follows the newest server-dev package installed; pin 15.
if [[ -z "${PG_CONFIG:-}" ]]; then
	if [[ -x /usr/lib/postgresql/15/bin/pg_config ]]; then
		PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
	else
		PG_CONFIG=pg_config
	fi
fi
export PG_CONFIG

# Print a message on stderr, prefixed with the calling script's name.
say() {
	printf '%s: %s\n' "${0##*/}" "$*" >&2
}

die() {
	say "error: $*"
	exit 1
}

# Directory holding initdb, pg_ctl, postgres, psql of the pinned version.
pg_bindir() {
	"$PG_CONFIG" --bindir
}

# True when nothing accepts connections on 127.0.0.1:$1.
port_is_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Print a free TCP port on 127.0.0.1, chosen at random in 20000-59999 so that
# concurrent runs rarely pick the same one.
free_port() {
	local port i
	for ((i = 0; i < 200; i++)); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if port_is_free "$port"; then
			printf '%s\n' "$port"
			return 0
		fi
	done
	die "no free TCP port found on 127.0.0.1"
}

# HTTP status code of GET http://127.0.0.1:$1$2, or nothing; bash only (no curl needed).
http_status() {
	local port=$1 path=$2
	# shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
	timeout 3 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1
		printf "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n" "$1" "$0" >&3
		IFS=" " read -r _ code _ <&3 && printf "%s\n" "$code"
	' "$port" "$path" 2>/dev/null || true
}

# Wait until GET http://127.0.0.1:$1$2 answers 200, up to $3 seconds, while the
# process $4 (if given) is alive. Returns non-zero on timeout or process exit.
wait_http_ok() {
	local port=$1 path=$2 timeout_s=$3 pid=${4:-} deadline
	deadline=$((SECONDS + timeout_s))
	while ((SECONDS < deadline)); do
		if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		[[ "$(http_status "$port" "$path")" == 200 ]] && return 0
		sleep 0.2
	done
	return 1
}

# 40 random characters (hex), for a throwaway JWT secret.
random_secret() {
	od -An -N20 -tx1 /dev/urandom | tr -d ' \n'
}
