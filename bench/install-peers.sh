#!/bin/sh
# Installs the benchmark's peers from Debian's packages: Squid with ssl-bump
# (squid-openssl: /usr/sbin/squid, /usr/lib/squid/security_file_certgen) and
# tinyproxy. Idempotent: installs only what is missing. The distro services
# are kept from starting (policy-rc.d) and stopped if they run anyway: the
# bench starts its own instances, on its own ports, with generated configs.
#
#   sudo bench/install-peers.sh        (or as root)
set -eu

need=""
if ! [ -x /usr/sbin/squid ] || ! /usr/sbin/squid -v 2>/dev/null | grep -q -- '--with-openssl'; then
  need="$need squid-openssl"
fi
[ -x /usr/lib/squid/security_file_certgen ] || case "$need" in *squid-openssl*) ;; *) need="$need squid-openssl" ;; esac
[ -x /usr/bin/tinyproxy ] || need="$need tinyproxy"

if [ -z "$need" ]; then
  echo "install-peers: squid-openssl and tinyproxy are already installed"
else
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-peers: run as root (apt-get install$need)" >&2
    exit 1
  fi
  # Debian's invoke-rc.d asks /usr/sbin/policy-rc.d; exit 101 = "do not start services".
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    added_policy=yes
  fi
  trap 'if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
  echo "install-peers: apt-get install$need"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
fi

# In case a service was started after all (no policy-rc.d honoured, or installed earlier).
service squid stop >/dev/null 2>&1 || true
service tinyproxy stop >/dev/null 2>&1 || true

/usr/sbin/squid -v | head -1
/usr/bin/tinyproxy -v
