#!/usr/bin/env bash
# Install egress-witness from a built checkout as two systemd services.
#
#   source checkout (npm ci && npm run build)        installed tree
#   ─────────────────────────────────────────        ──────────────────────────────────────────
#   dist/, package*.json, config/*.example.yaml  →   /opt/egress-witness/  (+ bin/egress-witness)
#   node_modules/ (copied, then pruned of dev deps)  /opt/egress-witness/node_modules/
#   native/original-dst/build/Release/*.node    →   /opt/egress-witness/native/… (when built)
#   systemd/*.service                            →   /etc/systemd/system/
#   systemd/egress-witness.sysusers.conf         →   /usr/lib/sysusers.d/egress-witness.conf
#   systemd/egress-witness.tmpfiles.conf         →   /usr/lib/tmpfiles.d/egress-witness.conf
#   config/{agent,detector}.example.yaml         →   /etc/egress-witness/{agent,detector}.yaml
#                                                    (only when absent: never overwritten)
#                                                    /usr/local/bin/egress-witness → the launcher
#
# Dependencies: node_modules is copied from the checkout and then pruned with
# `npm prune --omit=dev --offline` in the copy. That needs no network and keeps
# the native modules (better-sqlite3) built for the Node.js that built the
# checkout; the script checks that they load with the Node.js it installs for.
# `npm ci --omit=dev` instead would need the registry and a compiler here.
#
# /opt/egress-witness is built beside the old one and swapped in whole, and left
# as it is when nothing changed: running the script twice gives the same tree.
set -euo pipefail

# Keep in step with "engines" in package.json (a unit test checks it): the supported
# lines are Node.js 22 and 24 (LTS). LAST_RUNNING_NODE is the oldest release the
# code still runs on (end of life): accepted only with --allow-unsupported-node.
readonly MIN_NODE=22.13.0
readonly LAST_RUNNING_NODE=20.18.1
readonly APP=/opt/egress-witness
readonly UNITS=(egress-witness-agent.service egress-witness-detector.service)
readonly CONFIGS=(agent detector)

usage() {
  cat <<EOF
Usage: install.sh [--prefix DIR] [--source DIR] [--node PATH] [--allow-unsupported-node]
                  [--skip-deps] [--no-start]

Installs egress-witness under /opt/egress-witness with its systemd units,
sysusers.d and tmpfiles.d entries and example configurations (kept when present).

  --prefix DIR   install into DIR as if it were / (a staging tree): no
                 systemctl, systemd-sysusers, systemd-tmpfiles or chown; the
                 script prints what a real install would also do
  --source DIR   the built checkout to install (default: this script's checkout)
  --node PATH    the Node.js to run the daemons with (default: node on PATH);
                 at least $MIN_NODE (Node.js 22 or 24, the supported LTS
                 lines), outside /home, /root and /tmp
  --allow-unsupported-node
                 accept a Node.js from $LAST_RUNNING_NODE on (Node.js 20, past its
                 end of life: development and test trees only), with a warning
  --skip-deps    do not copy node_modules (tests and fixtures only: the
                 installed daemons cannot start without their dependencies)
  --no-start     do not restart services that are already running (a real
                 install restarts them to pick up the new code; it never starts
                 or enables a service that is not running)
  --help         show this help
EOF
}

die() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}

say() {
  printf '%s\n' "$*"
}

prefix=''
source_dir=''
node_bin=''
skip_deps=0
no_start=0
allow_unsupported_node=0
while (($# > 0)); do
  case "$1" in
    --prefix) (($# >= 2)) || die '--prefix needs a directory'; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --source) (($# >= 2)) || die '--source needs a directory'; source_dir=$2; shift 2 ;;
    --source=*) source_dir=${1#*=}; shift ;;
    --node) (($# >= 2)) || die '--node needs a path'; node_bin=$2; shift 2 ;;
    --node=*) node_bin=${1#*=}; shift ;;
    --allow-unsupported-node) allow_unsupported_node=1; shift ;;
    --skip-deps) skip_deps=1; shift ;;
    --no-start) no_start=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

umask 022

# --- Where from, where to -------------------------------------------------------

if [[ -z "$source_dir" ]]; then
  source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fi
[[ -d "$source_dir" ]] || die "no such source directory: $source_dir"
source_dir=$(cd "$source_dir" && pwd)

for f in package.json dist/cli/main.js config/agent.example.yaml config/detector.example.yaml \
  systemd/egress-witness.sysusers.conf systemd/egress-witness.tmpfiles.conf "${UNITS[@]/#/systemd/}"; do
  [[ -f "$source_dir/$f" ]] || die "$source_dir/$f is missing: run from a built checkout (npm ci && npm run build)"
done
if ((skip_deps == 0)) && [[ ! -d "$source_dir/node_modules" ]]; then
  die "$source_dir/node_modules is missing: run npm ci first (or pass --skip-deps for a test tree)"
fi

real=1
if [[ -n "$prefix" ]]; then
  real=0
  mkdir -p "$prefix"
  prefix=$(cd "$prefix" && pwd)
  [[ "$prefix" != / ]] || die '--prefix / is a real install: leave --prefix out'
elif ((EUID != 0)); then
  die 'a real install needs root (or use --prefix DIR for a staging tree)'
fi

# --- Node.js ----------------------------------------------------------------------

if [[ -z "$node_bin" ]]; then
  node_bin=$(command -v node) || die 'node is not on PATH: install Node.js >= '"$MIN_NODE"' or pass --node PATH'
fi
[[ "$node_bin" == /* ]] || die "--node must be an absolute path: $node_bin"
[[ -x "$node_bin" ]] || die "not an executable: $node_bin"
node_version=$("$node_bin" -p 'process.versions.node') || die "$node_bin does not run"
# Exit status 0 when the first version is at least the second.
version_at_least() {
  "$node_bin" -e '
  const [have, want] = process.argv.slice(1).map((v) => v.split(".").map(Number));
  const cmp = have.map((n, i) => n - want[i]).find((d) => d !== 0) ?? 0;
  process.exit(cmp < 0 ? 1 : 0);' "$1" "$2"
}
if ! version_at_least "$node_version" "$MIN_NODE"; then
  if ((allow_unsupported_node == 0)) || ! version_at_least "$node_version" "$LAST_RUNNING_NODE"; then
    die "Node.js $node_version at $node_bin is too old: egress-witness needs >= $MIN_NODE (Node.js 22 or 24); pass --node with a newer one"
  fi
  printf 'install.sh: warning: Node.js %s is past its end of life and unsupported (--allow-unsupported-node); use Node.js 22 or 24 in production\n' "$node_version" >&2
fi
case "$node_bin" in
  # ProtectHome= and PrivateTmp= hide these from the services.
  /home/* | /root/* | /run/user/* | /tmp/* | /var/tmp/*)
    die "$node_bin is hidden from the sandboxed services: install Node.js system-wide (e.g. /usr/bin/node)" ;;
esac

# --- Build the application tree beside the installed one ---------------------------

app_dir="$prefix$APP"
mkdir -p "$(dirname "$app_dir")"
stage=$(mktemp -d "$app_dir.new.XXXXXX")
trap 'rm -rf -- "$stage"' EXIT

cp -RH "$source_dir/dist" "$stage/dist"
cp "$source_dir/package.json" "$stage/"
if [[ -f "$source_dir/package-lock.json" ]]; then
  cp "$source_dir/package-lock.json" "$stage/"
fi
mkdir "$stage/config"
cp "$source_dir"/config/*.example.yaml "$stage/config/"
# The optional native addons, where the agent looks for them. Without the
# original-destination one the agent assumes port 443 for TLS and 80 for HTTP on
# redirected connections; without the tunnel-relay one it relays tunnels in
# JavaScript (proxy.tunnel_relay: auto); it says so in its log either way.
stage_addon() {
  local addon=$1 without=$2
  if [[ -f "$source_dir/$addon" ]]; then
    mkdir -p "$stage/$(dirname "$addon")"
    cp "$source_dir/$addon" "$stage/$addon"
  else
    say "note: $addon is not built (npm run build:native): $without"
  fi
}
stage_addon native/original-dst/build/Release/original_dst.node 'transparent interception will assume ports 443 and 80'
stage_addon native/tunnel-relay/build/Release/tunnel_relay.node 'tunnels will be relayed in JavaScript'

if ((skip_deps == 0)); then
  npm_bin=$(PATH="$(dirname "$node_bin"):$PATH" command -v npm) || die 'npm is needed to prune dev dependencies (it ships with Node.js)'
  cp -RH "$source_dir/node_modules" "$stage/node_modules"
  # npm's own `#!/usr/bin/env node` must find the same Node.js.
  (cd "$stage" && PATH="$(dirname "$node_bin"):$PATH" npm_config_update_notifier=false \
    "$npm_bin" prune --omit=dev --ignore-scripts --offline --no-audit --no-fund --loglevel=error >/dev/null) ||
    die 'npm prune --omit=dev failed in the staged copy'
  # npm prune leaves the emptied @scope folders behind.
  find "$stage/node_modules" -mindepth 1 -maxdepth 1 -name '@*' -type d -empty -delete
  # A native module built for another Node.js ABI would only fail when the daemon
  # starts. (Other .node files, such as SQLite test extensions, fail differently.)
  mapfile -d '' addons < <(find "$stage/node_modules" "$stage/native" -path '*/build/Release/*.node' -not -path '*/obj.target/*' -print0 2>/dev/null)
  if ((${#addons[@]} > 0)); then
    "$node_bin" -e '
      for (const file of process.argv.slice(1)) {
        try { require(file); } catch (error) {
          if (/NODE_MODULE_VERSION/.test(String(error))) { console.error(file); process.exit(1); }
        }
      }' "${addons[@]}" ||
      die "a native module does not load with Node.js $node_version: rebuild the checkout (npm ci) with $node_bin"
  fi
fi

mkdir "$stage/bin"
cat >"$stage/bin/egress-witness" <<EOF
#!/bin/sh
# Written by install.sh: the Node.js found at install time ($node_version).
# --no-memory-reducer: an idle heap is not shrunk, so the next large transfer
# (fresh off-heap buffers per TLS record) does not drive back-to-back full
# collections (bench/README.md, "Inspect data path").
exec "$node_bin" --no-memory-reducer "$APP/dist/cli/main.js" "\$@"
EOF
chmod -R u+rwX,go+rX,go-w "$stage"
chmod 0755 "$stage/bin/egress-witness"

if ((skip_deps == 0)); then
  "$node_bin" "$stage/dist/cli/main.js" --help >/dev/null 2>&1 ||
    die "the staged CLI does not start: $node_bin $stage/dist/cli/main.js --help"
fi

tree_listing() {
  (cd "$1" && find . -printf '%P\t%y\t%m\t%l\n' | LC_ALL=C sort)
}

if [[ -d "$app_dir" ]] && diff -rq --no-dereference "$app_dir" "$stage" >/dev/null 2>&1 &&
  [[ "$(tree_listing "$app_dir")" == "$(tree_listing "$stage")" ]]; then
  say "unchanged  $app_dir"
  rm -rf -- "$stage"
  app_changed=0
else
  if [[ -e "$app_dir" ]]; then
    old="$app_dir.old.$$"
    mv -- "$app_dir" "$old"
    mv -- "$stage" "$app_dir"
    rm -rf -- "$old"
  else
    mv -- "$stage" "$app_dir"
  fi
  say "installed  $app_dir (Node.js $node_version at $node_bin)"
  app_changed=1
fi
trap - EXIT

# --- Units, sysusers.d, tmpfiles.d, the command on PATH ------------------------------

# Copies SRC to DEST with MODE unless DEST already has the same content and mode.
put_file() {
  local src=$1 dest=$2 mode=$3
  if [[ -f "$dest" ]] && cmp -s "$src" "$dest" && [[ "$(stat -c %a "$dest")" == "${mode#0}" ]]; then
    say "unchanged  $dest"
    return 1
  fi
  mkdir -p "$(dirname "$dest")"
  install -m "$mode" "$src" "$dest"
  say "installed  $dest"
}

units_changed=0
for unit in "${UNITS[@]}"; do
  put_file "$source_dir/systemd/$unit" "$prefix/etc/systemd/system/$unit" 0644 && units_changed=1
done
put_file "$source_dir/systemd/egress-witness.sysusers.conf" "$prefix/usr/lib/sysusers.d/egress-witness.conf" 0644 || true
put_file "$source_dir/systemd/egress-witness.tmpfiles.conf" "$prefix/usr/lib/tmpfiles.d/egress-witness.conf" 0644 || true

link="$prefix/usr/local/bin/egress-witness"
if [[ -L "$link" && "$(readlink "$link")" == "$APP/bin/egress-witness" ]]; then
  say "unchanged  $link"
else
  mkdir -p "$(dirname "$link")"
  ln -sfn "$APP/bin/egress-witness" "$link"
  say "installed  $link -> $APP/bin/egress-witness"
fi

# --- User, configuration directory, example configurations ---------------------------

if ((real)); then
  systemd-sysusers /usr/lib/sysusers.d/egress-witness.conf
  systemd-tmpfiles --create /usr/lib/tmpfiles.d/egress-witness.conf
else
  # tmpfiles.d would create it with group egress-witness.
  install -d -m 0750 "$prefix/etc/egress-witness"
fi

for name in "${CONFIGS[@]}"; do
  dest="$prefix/etc/egress-witness/$name.yaml"
  if [[ -e "$dest" ]]; then
    say "kept       $dest (never overwritten)"
    continue
  fi
  install -m 0640 "$source_dir/config/$name.example.yaml" "$dest"
  if ((real)); then
    chown root:egress-witness "$dest"
  fi
  say "installed  $dest (from config/$name.example.yaml: edit it)"
done

# --- systemd ---------------------------------------------------------------------------

if ((real == 0)); then
  cat <<EOF

Staging tree only. A real install (no --prefix, as root) would also run:
  systemd-sysusers /usr/lib/sysusers.d/egress-witness.conf
  systemd-tmpfiles --create /usr/lib/tmpfiles.d/egress-witness.conf
  chown root:egress-witness on each configuration file it installs
  systemctl daemon-reload
EOF
  ((no_start)) || say "  systemctl try-restart ${UNITS[*]}   (restarts only running services)"
  exit 0
fi

if [[ -d /run/systemd/system ]]; then
  systemctl daemon-reload
  if ((no_start == 0)) && ((app_changed || units_changed)); then
    # Upgrades take effect now; stopped services stay stopped.
    systemctl try-restart "${UNITS[@]}"
  fi
else
  say 'systemd is not running here: skipped systemctl daemon-reload'
fi

cat <<EOF

Next steps:
  1. Edit /etc/egress-witness/agent.yaml (on the gateway) or detector.yaml (central).
     Secret files (CA key, HMAC secret, token) go beside them, owned by
     egress-witness, mode 0600.
  2. egress-witness check-config /etc/egress-witness/agent.yaml
  3. systemctl enable --now egress-witness-agent     (or egress-witness-detector)
  4. journalctl -u egress-witness-agent -f; systemd-analyze security egress-witness-agent
EOF
