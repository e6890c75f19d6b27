#!/usr/bin/env bash
# test_install.sh BUILD_DIR SRC_DIR CC — installs BUILD_DIR into a temporary
# prefix (through DESTDIR, as packagers do, and with --prefix), checks the
# programs, headers, archives and hetee.pc are there, then compiles and
# links tests/install/hello_client.c with `pkg-config --cflags --libs hetee`
# (PKG_CONFIG_PATH pointing into the prefix) and runs it.
set -euo pipefail
B=$1 S=$2 CC=${3:-cc}
T=$(mktemp -d /tmp/hetee-install-XXXXXX)
trap 'rm -rf "$T"' EXIT

check_tree() { # PREFIX
  local P=$1
  for f in bin/hetee bin/hetee-enclave bin/hetee-launcher bin/hetee-bench; do
    [ -x "$P/$f" ] || { echo "missing $P/$f" >&2; exit 1; }
  done
  for h in api_client.h client.h common.h enclave.h; do
    [ -f "$P/include/hetee/$h" ] || { echo "missing header $h" >&2; exit 1; }
  done
  PC=$(find "$P" -name hetee.pc | head -1)
  [ -n "$PC" ] || { echo "no hetee.pc under $P" >&2; exit 1; }
  "$P/bin/hetee" --version | grep -q '^hetee [0-9]' || { echo "installed hetee --version failed" >&2; exit 1; }
  export PKG_CONFIG_PATH
  PKG_CONFIG_PATH=$(dirname "$PC")
  pkg-config --exists hetee || { echo "pkg-config does not find hetee" >&2; exit 1; }
  local CFLAGS LIBS
  CFLAGS=$(pkg-config --cflags hetee)
  LIBS=$(pkg-config --libs hetee)
  # the flags name the installed tree, not the source or build tree
  case "$CFLAGS $LIBS" in *"$S/include"*|*"$B/lib"*) echo "hetee.pc points outside the prefix: $CFLAGS $LIBS" >&2; exit 1;; esac
  mkdir -p "$T/home"
  # shellcheck disable=SC2086
  "$CC" -o "$T/hello" "$S/hello_client.c" $CFLAGS $LIBS
  out=$("$T/hello" "$T/home")
  echo "$out"
  case "$out" in "ok "*) ;; *) echo "hello_client: unexpected output" >&2; exit 1;; esac
  rm -rf "$T/home" "$T/hello"
}

# 1. DESTDIR staging of the configured prefix
DESTDIR="$T/stage" cmake --install "$B" >/dev/null
P=$(find "$T/stage" -path '*/bin/hetee' -type f | head -1)
[ -n "$P" ] || { echo "nothing installed under DESTDIR" >&2; exit 1; }
check_tree "$(dirname "$(dirname "$P")")"
# 2. another prefix at install time
cmake --install "$B" --prefix "$T/prefix" >/dev/null
check_tree "$T/prefix"
echo "install: ok"
