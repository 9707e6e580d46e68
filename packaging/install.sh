#!/bin/sh
# Installs annexsync for the current user into its own environment (pipx),
# with the system packages it needs (git; pipx itself).
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
need=""
command -v git >/dev/null 2>&1 || need="$need git"
command -v pipx >/dev/null 2>&1 || need="$need pipx"
if [ -n "$need" ]; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $need
fi
pipx install --force . >/dev/null
echo "annexsync installed: $HOME/.local/bin/annexsync"
