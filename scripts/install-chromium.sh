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
if ! apt-cache show chromium >/dev/null 2>&1; then
    $sudo apt-get update -q
fi
$sudo apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
chromium --version
