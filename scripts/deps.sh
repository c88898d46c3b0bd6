#!/usr/bin/env bash
# deps.sh: install what building and testing realtime needs, only what is missing.
#
# Debian 12 (bookworm) packages through apt-get (as root, non-interactive, apt-get update
# first, and only when a package is missing), then `npm ci` in test/e2e when its
# package-lock.json exists and node_modules is missing or older than the lock file.
# Node.js itself comes from Debian (nodejs, npm) only when no `node` is on PATH.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/common.sh
source "$here/common.sh"

packages=(
	postgresql-15 postgresql-server-dev-15 libpq-dev
	postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
	libwebsockets-dev rapidjson-dev libssl-dev libcmocka-dev
	libev-dev libwebsockets-evlib-ev # the shards' event loop (epoll); libwebsockets-dev's own deps
	build-essential clang-format
	clang libclang-rt-14-dev # the libFuzzer targets (make fuzz-build) and their runtime
	postgresql-15-wal2json # make bench-decode compares the output plugin against it
	chromium               # the browser tests of the --ui pages (puppeteer-core drives it)
)
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for pkg in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	[[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
	[[ $(id -u) -eq 0 ]] || die "missing packages (${missing[*]}); run this script as root"
	command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get"
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
else
	say "Debian packages: all present"
fi

# Node packages of the end-to-end suite (written separately; may not exist yet).
e2e=$root/test/e2e
if [[ -f "$e2e/package-lock.json" ]]; then
	# npm writes node_modules/.package-lock.json on every install: older than the lock = stale.
	if [[ ! -f "$e2e/node_modules/.package-lock.json" ||
		"$e2e/package-lock.json" -nt "$e2e/node_modules/.package-lock.json" ]]; then
		say "npm ci in test/e2e"
		(cd "$e2e" && npm ci --no-audit --no-fund) || die "npm ci failed in test/e2e"
	else
		say "test/e2e/node_modules: up to date"
	fi
fi
