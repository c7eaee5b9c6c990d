#!/usr/bin/env bash
# Install the given Debian packages when they are missing: with apt-get when we are root,
# otherwise print the exact command to run and fail.
set -euo pipefail

missing=()
for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
((${#missing[@]})) || exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "voiceagent needs these system packages: ${missing[*]} (or your system's equivalents)." >&2
    echo "Install them with your package manager, then run make again." >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "voiceagent needs these system packages: ${missing[*]}" >&2
    echo "Run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
