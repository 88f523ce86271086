#!/usr/bin/env bash
#
# deps.sh — install the Debian packages medtrust needs to build, test, fuzz
# and demonstrate itself (`make deps`).
#
# The list below is the one place that names them.  The script is
# idempotent and quiet when there is nothing to do: it asks dpkg-query which
# packages are missing and touches the network (apt-get update, then
# apt-get install --no-install-recommends) only when some are.  CI runs it as
# root on a fresh Debian 12 machine; a developer who is not root gets the
# same through sudo.
#
#   scripts/deps.sh            install what is missing
#   scripts/deps.sh --check    exit 1 and list what is missing, install nothing
#   scripts/deps.sh --list     print the package list
#
# Why each package: build-essential/cmake/pkg-config build; clang and
# libclang-rt-14-dev (the libFuzzer runtime) for `make fuzz` and the clang
# build; libcbor, libssl (OpenSSL 3), libp11-kit and libsqlite3 (the
# embedded store: the audit chain, src/core/audit_sqlite.c) the library's
# dependencies; sqlite3, its shell, for operators inspecting the audit
# database; libcmocka the unit tests, and libjansson their JSON vector
# files (the library reads JSON itself: src/core/json_read.c); p11-kit,
# softhsm2 and opensc the reference PKCS#11 token and its tools; python3
# with cbor2 and cryptography the independent interop checks; binutils
# (readelf, objdump) and file the hardening check; mosquitto, mosquitto-dev
# (mosquitto_broker.h, mosquitto_plugin.h) and libmosquitto-dev (mosquitto.h,
# which they include) the broker and its plugin medtrust_mosq;
# libengine-pkcs11-openssl lets mosquitto use a TLS key held in a token;
# python3-paho-mqtt the broker tests' MQTT 5 clients; libsodium-dev the
# argon2id password hashes of console users (src/core/users.c);
# python3-hl7 parses the hub's HL7 output in the tests (a parser medtrust
# did not write); nodejs (and npm, below) the FHIR validator of the tests
# and the console's uPlot, installed into the build tree at build time;
# chromium, chromium-driver and python3-selenium the console's browser
# tests (tests/browser) and bench/console.
set -euo pipefail

PACKAGES=(
	build-essential
	cmake
	pkg-config
	clang
	libclang-rt-14-dev
	libcbor-dev
	libssl-dev
	libjansson-dev
	libcmocka-dev
	libp11-kit-dev
	libsqlite3-dev
	libsodium-dev
	sqlite3
	p11-kit
	softhsm2
	opensc
	libevent-dev
	libcurl4-openssl-dev
	curl
	openssl
	python3
	python3-cbor2
	python3-cryptography
	binutils
	file
	mosquitto
	mosquitto-dev
	libmosquitto-dev
	libengine-pkcs11-openssl
	python3-paho-mqtt
	python3-hl7
	nodejs
	chromium
	chromium-driver
	python3-selenium
)
# npm runs the FHIR tests' independent validator (the npm `fhir` package,
# tests/fhir).  Debian ships it as its own package; a node from elsewhere
# (NodeSource) bundles npm and conflicts with Debian's, so it is wanted
# only when no npm is on PATH.
if ! command -v npm >/dev/null 2>&1; then
	PACKAGES+=(npm)
fi

missing_packages() {
	local p status
	for p in "${PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
		# "ii " = wanted install, currently installed, no error.
		if [[ "$status" != ii* ]]; then
			printf '%s\n' "$p"
		fi
	done
}

case "${1:-}" in
--list)
	printf '%s\n' "${PACKAGES[@]}"
	exit 0
	;;
--check | "") ;;
*)
	echo "usage: $0 [--check|--list]" >&2
	exit 64
	;;
esac

mapfile -t MISSING < <(missing_packages)

if [[ ${#MISSING[@]} -eq 0 ]]; then
	echo "deps: all ${#PACKAGES[@]} packages present"
	exit 0
fi

echo "deps: missing: ${MISSING[*]}"
if [[ "${1:-}" == --check ]]; then
	exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=(sudo)
	else
		echo "deps: not root and no sudo: install the packages above by hand" >&2
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends "${MISSING[@]}"

mapfile -t STILL < <(missing_packages)
if [[ ${#STILL[@]} -ne 0 ]]; then
	echo "deps: still missing after install: ${STILL[*]}" >&2
	exit 1
fi
echo "deps: installed ${#MISSING[@]} package(s)"
