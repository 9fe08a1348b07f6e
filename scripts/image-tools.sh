#!/usr/bin/env bash
# Build and run the container image without Docker: buildah, plus a stand-in for the
# Dockerfile's base image made with mmdebstrap from Debian's mirror (Docker Hub is not
# needed). Idempotent: every step is skipped when its result is already there.
#
#   scripts/image-tools.sh            install the tools if missing, then `base`
#   scripts/image-tools.sh install    apt-get install buildah and mmdebstrap if missing
#   scripts/image-tools.sh base       build (once, cached) the base rootfs and import it into
#                                     the project's buildah storage under the name the
#                                     Dockerfile's FROM uses; prints that name
#   scripts/image-tools.sh buildah ARGS...
#                                     buildah on the project's storage (vfs driver), e.g.
#                                     scripts/image-tools.sh buildah bud --isolation chroot -t x .
#   scripts/image-tools.sh clean      remove the cache (rootfs and buildah storage)
#
# The cache lives in ${XDG_CACHE_HOME:-$HOME/.cache}/batch-job-exporter/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/batch-job-exporter"
STORAGE="$CACHE/containers/storage"
RUNROOT="${XDG_RUNTIME_DIR:-/tmp}/batch-job-exporter-$(id -u)/containers"
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
# What the base image must provide for the Dockerfile: python3 with venv, CA
# certificates for pip, and useradd (passwd), as python:*-slim-bookworm has.
PACKAGES=python3,python3-venv,ca-certificates,passwd

log() { printf 'image-tools: %s\n' "$*" >&2; }

bah() {
  buildah --root "$STORAGE" --runroot "$RUNROOT" --storage-driver vfs "$@"
}

# The image the Dockerfile builds FROM: the default of `ARG PYTHON_IMAGE=`.
base_name() {
  local name
  name="$(sed -n 's/^ARG PYTHON_IMAGE=\([^[:space:]]*\).*/\1/p' "$ROOT/Dockerfile" | head -n1)"
  [ -n "$name" ] || { log "no 'ARG PYTHON_IMAGE=' in $ROOT/Dockerfile"; exit 1; }
  printf '%s\n' "$name"
}

install_tools() {
  local missing=()
  command -v buildah >/dev/null || missing+=(buildah)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  [ "${#missing[@]}" -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  log "installing ${missing[*]} with apt-get"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

rootfs() {
  # The file name carries everything that decides its content, so a change rebuilds it.
  local key tar
  key="$(printf '%s %s %s' "$SUITE" "$MIRROR" "$PACKAGES" | sha256sum | cut -c1-12)"
  tar="$CACHE/rootfs-$SUITE-$key.tar"
  if [ ! -s "$tar" ]; then
    command -v mmdebstrap >/dev/null || { log "mmdebstrap missing: run $0 install"; exit 1; }
    mkdir -p "$CACHE"
    log "building the base rootfs with mmdebstrap (once, about 30 s)"
    rm -rf "$tar.part"
    mmdebstrap --quiet --format=tar --variant=apt --include="$PACKAGES" \
      --aptopt='APT::Install-Recommends "false"' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      "$SUITE" "$tar.part" \
      "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
      "deb ${MIRROR}-security $SUITE-security main" </dev/null
    mv "$tar.part" "$tar"
  fi
  printf '%s\n' "$tar"
}

import_base() {
  local name tar ctr mnt
  name="$(base_name)"
  command -v buildah >/dev/null || { log "buildah missing: run $0 install"; exit 1; }
  tar="$(rootfs)"
  # Re-import when the rootfs is newer than the image (it was rebuilt).
  if bah inspect --type image "$name" >/dev/null 2>&1 &&
     [ -e "$STORAGE/.base-imported" ] && [ "$STORAGE/.base-imported" -nt "$tar" ] &&
     [ "$(cat "$STORAGE/.base-imported")" = "$name $tar" ]; then
    printf '%s\n' "$name"
    return 0
  fi
  log "importing $tar as $name"
  ctr="$(bah from --pull-never scratch)"
  trap 'bah rm "$ctr" >/dev/null 2>&1 || true' RETURN
  mnt="$(bah mount "$ctr")"
  tar -xf "$tar" -C "$mnt" --numeric-owner
  bah umount "$ctr" >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr"
  bah commit --quiet --rm "$ctr" "$name" >/dev/null
  trap - RETURN
  printf '%s %s\n' "$name" "$tar" >"$STORAGE/.base-imported"
  printf '%s\n' "$name"
}

case "${1:-all}" in
  all) install_tools; import_base ;;
  install) install_tools ;;
  base) import_base ;;
  buildah) shift; exec buildah --root "$STORAGE" --runroot "$RUNROOT" --storage-driver vfs "$@" ;;
  clean) rm -rf "$CACHE" "$RUNROOT" ;;
  *) log "unknown command ${1}: see the top of $0"; exit 2 ;;
esac
