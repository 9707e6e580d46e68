#!/bin/sh
# Installs annexsync for the current user into its own environment (pipx),
# with the system packages it needs: git, pipx, and the libraries Qt's xcb
# platform plugin loads (most desktops have them already).
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
need=""
for p in git pipx libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 \
         libdbus-1-3 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 \
         libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 \
         libxcb-xfixes0 libxcb-xkb1; do
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $need
fi
pipx install --force . >/dev/null
id=$(sed -n 's:.*<id>\(.*\)</id>.*:\1:p' resources/annexsync.metainfo.xml)
install -Dm644 resources/annexsync.desktop "$HOME/.local/share/applications/$id.desktop"
install -Dm644 resources/annexsync.svg "$HOME/.local/share/icons/hicolor/scalable/apps/annexsync.svg"
echo "annexsync installed: $HOME/.local/bin/annexsync"
