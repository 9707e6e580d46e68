#!/bin/sh
# Builds the self-contained Linux bundle and ships it two ways, on a fresh
# Debian 12 machine, from registry packages only (Debian's, PyPI's):
#   OUT/annexsync-VERSION-linux-x86_64.tar.gz   a prefix tree (bin/ lib/ share/)
#   OUT/annexsync_VERSION_amd64.deb             the same tree under /usr
#   OUT/stage/annexsync-VERSION/                 the tree itself (tests run it)
# OUT is build/pkg unless given.  The version is pyproject.toml's.  A rebuild
# is skipped when the sources hash to what OUT was built from (OUT/.stamp).
# See packaging/README.md for the why of each piece.
set -eu
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-$ROOT/build/pkg}
sources="core gui resources packaging pyproject.toml README.md"
hash=$(find $sources -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort \
       | xargs sha256sum | sha256sum | cut -c1-16)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$hash" ]; then
  echo "annexsync bundle up to date in $OUT ($hash)"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
# Debian's own Python (PyInstaller needs its shared libpython), binutils for
# PyInstaller's binary analysis, dpkg-dev for dpkg-deb; Qt's xcb libraries so
# the build can render the PNG icons with Qt (offscreen) and check the bundle.
packages="python3 python3-venv libpython3.11 binutils dpkg-dev gzip git
  libegl1 libgl1 libxkbcommon0 libfontconfig1 libfreetype6 libdbus-1-3"
need=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done
if [ -n "$need" ]; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $need
fi

VENV=$ROOT/build/pkg-venv
[ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
PY=$VENV/bin/python
$PY -m pip install -q -r packaging/requirements-build.txt
$PY -m pip install -q .
VERSION=$($PY -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
COMMANDS=$($PY -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["scripts"]))')
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export PYTHONHASHSEED=0

rm -rf "$OUT"
mkdir -p "$OUT"
WORK=$ROOT/build/pyinstaller
$PY -m PyInstaller --noconfirm --clean --log-level WARN \
  --workpath "$WORK" --distpath "$WORK/dist" packaging/annexsync.spec

NAME=annexsync-$VERSION
TREE=$OUT/stage/$NAME
mkdir -p "$TREE/bin" "$TREE/lib"
cp -a "$WORK/dist/annexsync" "$TREE/lib/annexsync"
for c in $COMMANDS; do
  # beside the binary (the bundle puts its own directory on PATH for git and
  # git-annex) and in bin/ (the person's PATH)
  [ "$c" = annexsync ] || ln -s annexsync "$TREE/lib/annexsync/$c"
  ln -s ../lib/annexsync/annexsync "$TREE/bin/$c"
done
QT_QPA_PLATFORM=offscreen $PY packaging/share.py "$TREE/share" "$VERSION"

tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  -C "$OUT/stage" -cf - "$NAME" | gzip -9n > "$OUT/$NAME-linux-x86_64.tar.gz"

DEB=$OUT/deb
mkdir -p "$DEB/DEBIAN" "$DEB/usr"
cp -a "$TREE/bin" "$TREE/lib" "$TREE/share" "$DEB/usr/"
size=$(du -sk "$DEB/usr" | cut -f1)
shlibs=$($PY packaging/depends.py "$TREE/lib/annexsync")
sed -e "s/@VERSION@/$VERSION/" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" \
  packaging/debian/control > "$DEB/DEBIAN/control"
find "$DEB" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zgzip --build "$DEB" "$OUT/annexsync_${VERSION}_amd64.deb" >/dev/null
rm -rf "$DEB"
echo "$hash" > "$OUT/.stamp"
ls -l "$OUT"/*.tar.gz "$OUT"/*.deb
