#!/bin/sh
# Runs the given command with Node.js 24 first on PATH.
#
# isolated-vm 7 needs Node.js 24, and a fresh machine may carry an older
# system Node. Rather than asking for a hand step, we take Node.js 24 from
# the npm registry (the node-linux-<arch> package ships the official build)
# into .tools/ and put it first on PATH for this command and its children.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
version=$(cat "$root/.node-version")
major=${version%%.*}

have=$(node -p 'process.versions.node' 2>/dev/null || echo 0)
if [ "${have%%.*}" -ge "$major" ] 2>/dev/null; then
  exec "$@"
fi

case $(uname -m) in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "node24.sh: no Node.js package for machine $(uname -m)" >&2; exit 1 ;;
esac

prefix="$root/.tools/node-$version"
home="$prefix/node_modules/node-linux-$arch"
if [ ! -x "$home/bin/node" ]; then
  echo "node24.sh: fetching Node.js $version from the npm registry into .tools/" >&2
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund \
    "node-linux-$arch@$version" >&2
fi

PATH="$home/bin:$PATH"
# Native add-ons that must compile find the headers here instead of downloading them.
npm_config_nodedir="$home"
export PATH npm_config_nodedir
exec "$@"
