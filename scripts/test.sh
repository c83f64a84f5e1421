#!/usr/bin/env bash
# README's test command: installs the real peers the interop tests run
# against when any is missing (Debian packages, with apt: as root, or with
# sudo), then runs the whole suite, `cargo test --workspace`. Arguments are
# passed on to cargo test (e.g. `scripts/test.sh --test e2e dhcp_perfdhcp`).
# .ci/run calls exactly this.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# perfdhcp and Kea (kea-admin, kea-dhcp4-server), ISC dhcpd and dhclient,
# tshark, ip (network namespaces), ps/pkill; PostgreSQL (the store's tests
# start a throwaway cluster of their own with its initdb and pg_ctl, see
# crates/test-support/src/postgres.rs; Debian's own cluster is not started);
# chromium and chromedriver (the web view's tests drive a real headless
# browser, crates/cli/tests/e2e/web_ui.rs).
PACKAGES=(kea-admin kea-dhcp4-server isc-dhcp-server isc-dhcp-client
          tshark iproute2 procps ca-certificates postgresql
          chromium chromium-driver gdb)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing the test peers: ${missing[*]}"
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "scripts/test.sh: these Debian packages are missing and there is no apt-get: ${missing[*]}" >&2
        echo "Install them (or their equivalents) and run again." >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO="sudo"
        else
            echo "scripts/test.sh: missing packages (${missing[*]}) and not root:" >&2
            echo "run it as root, or with sudo available, or install them first:" >&2
            echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Keep Debian's maintainer scripts from starting dhcpd / kea-dhcp4: they
    # would hold UDP port 67 and answer the tests' traffic (nor PostgreSQL's
    # default cluster, which the tests do not use).
    POLICY=/usr/sbin/policy-rc.d
    ADDED_POLICY=0
    if [ ! -e "$POLICY" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
        $SUDO chmod 755 "$POLICY"
        ADDED_POLICY=1
    fi
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
    if [ "$ADDED_POLICY" = 1 ]; then
        $SUDO rm -f "$POLICY"
    fi
fi

# A DHCP server left running by its package (a machine that had them
# before) would hold UDP port 67. Only root can stop it.
if [ "$(id -u)" -eq 0 ]; then
    for svc in isc-dhcp-server kea-dhcp4-server; do
        if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
            systemctl stop "$svc" >/dev/null 2>&1 || true
            systemctl disable "$svc" >/dev/null 2>&1 || true
        elif [ -x "/etc/init.d/$svc" ]; then
            "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
        fi
    done
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "note: the interop tests need root (network namespaces, UDP port 67, packet capture); they fail without it" >&2
fi

echo "== tool versions"
# The first line of each tool's version output; awk reads all of its input,
# so no SIGPIPE under pipefail.
version() { { "$@" 2>&1 || true; } | awk '!/^Running as user/ && !done { print; done = 1 }'; }
version uname -sr
version cargo --version
version rustc --version
echo "perfdhcp $(version perfdhcp -v)"
echo "kea-dhcp4 $(version kea-dhcp4 -v)"
version dhclient --version
version dhcpd --version
version tshark --version
version dumpcap --version
version ip -V
version chromium --version
version chromedriver --version

echo "== cargo test --workspace $*"
exec cargo test --workspace "$@"
