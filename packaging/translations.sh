#!/bin/sh
# For translators: update every resources/translations/annexsync_<lang>.ts from
# the strings in gui/ (pyside6-lupdate), then compile each to the .qm the app
# loads (pyside6-lrelease).  Both tools come with PySide6-Essentials, which the
# project already pins.  A new language: packaging/translations.sh LANG
# (e.g. fr) creates annexsync_fr.ts; open it in pyside6-linguist.
set -eu
cd "$(dirname "$0")/.."
BIN=${VENV_BIN:-.venv/bin}
dir=resources/translations
sources=$(find gui -name '*.py' | LC_ALL=C sort)
for lang in "$@"; do
  [ -f "$dir/annexsync_$lang.ts" ] || "$BIN/pyside6-lupdate" $sources -ts "$dir/annexsync_$lang.ts" -target-language "$lang"
done
for ts in "$dir"/annexsync_*.ts; do
  "$BIN/pyside6-lupdate" $sources -ts "$ts" -no-obsolete
  "$BIN/pyside6-lrelease" "$ts" -qm "${ts%.ts}.qm"
done
