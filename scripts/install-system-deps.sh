#!/usr/bin/env bash
# Install the Debian packages the test suite needs, when missing. Idempotent; needs root (or sudo).
#   postgresql, redis-server  throwaway database and broker for integration tests
#   musl-tools, gcc, iproute2 real musl 1.2.3 and glibc probes in network namespaces
#   docker-registry           a real OCI registry for the image tests
#   chromium                  headless browser tests
set -euo pipefail
packages=(postgresql redis-server musl-tools gcc libc6-dev binutils iproute2 docker-registry apache2-utils chromium fonts-dejavu-core wrk)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install these Debian packages as root: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d keeps the packages' own services from starting: tests start throwaway instances.
if [ -d /usr/sbin ] && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
