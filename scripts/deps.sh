#!/usr/bin/env bash
# Install the Debian packages Switchboard builds, runs and tests with.
# Idempotent: installs only what is missing; uses sudo when not root.
set -euo pipefail

PKGS=(
	kore build-essential pkg-config patch
	libpq-dev libcurl4-openssl-dev libssl-dev libjwt-dev libjansson-dev
	libmagic-dev libvips-dev libvips-tools libargon2-dev libphonenumber-dev
	postgresql
	libcmocka-dev valgrind wrk clang libclang-rt-14-dev
	curl ca-certificates openssl
	chromium fonts-dejavu-core
)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
# Node.js: on these machines it comes with its own npm; Debian's nodejs
# and npm are the fallback on a machine without it.
if ! command -v node >/dev/null 2>&1; then
	missing+=(nodejs)
	command -v npm >/dev/null 2>&1 || missing+=(npm)
fi

if ((${#missing[@]} == 0)); then
	exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
	command -v sudo >/dev/null 2>&1 || { echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
	SUDO=(sudo)
fi
echo "deps.sh: installing ${missing[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
