#!/usr/bin/env bash
# Installs Debian's chromium for the report rendering test of pymw-cli
# (`cargo test -p pymw-cli`), if it is not installed yet. Idempotent: runs
# `apt-get update` only when the package lists do not know chromium.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium is installed: $(chromium --version 2>/dev/null || echo '?')"
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Wait up to 10 minutes for another apt or dpkg (unattended upgrades, a
# parallel job) to let go of its locks, instead of failing at once.
lock_wait=(-o DPkg::Lock::Timeout=600)
if ! apt-cache show chromium >/dev/null 2>&1; then
    $sudo apt-get "${lock_wait[@]}" update -q
fi
$sudo apt-get "${lock_wait[@]}" install -y -q --no-install-recommends chromium fonts-dejavu-core
chromium --version
