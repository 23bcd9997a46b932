#!/usr/bin/env bash
# Run `apptainer ARGS...`: the host's apptainer when installed, else Debian sid's apptainer
# package in a debootstrapped sid root (made once under $CACHE/sid-root; Debian bookworm has no
# apptainer), entered with unshare + pivot_root.  Inside that root the host paths in
# APPTAINER_HOST_PATHS (colon-separated; the current directory always) are bind-mounted at the
# same paths, so arguments naming them work unchanged.  Needs root for that route.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=containers/env.sh
source "$HERE/env.sh"

if command -v apptainer >/dev/null 2>&1; then
  exec apptainer "$@"
fi

ROOT="$CACHE/sid-root"
if [ ! -x "$ROOT/usr/bin/apptainer" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v debootstrap >/dev/null; then
    echo "apptainer.sh: no apptainer here; install it, or run as root with debootstrap" >&2
    exit 1
  fi
  echo "apptainer.sh: making a Debian sid root with apptainer in $ROOT (once)" >&2
  rm -rf "$ROOT.tmp"
  debootstrap --variant=minbase --include=apptainer,squashfs-tools,ca-certificates \
    sid "$ROOT.tmp" "$DEBIAN_MIRROR" >"$CACHE/debootstrap-sid.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap-sid.log" >&2; exit 1; }
  rm -rf "$ROOT.tmp"/var/cache/apt/archives/*.deb
  printf '127.0.0.1 localhost\n::1 localhost\n' > "$ROOT.tmp/etc/hosts"
  mv "$ROOT.tmp" "$ROOT"
fi

# root's default capabilities "full" asks for CAP_SYS_RESOURCE among others, which a host that
# is itself a container may not grant (apptainer then aborts); "no": anatprep needs none
sed -i 's/^root default capabilities = full$/root default capabilities = no/' \
  "$ROOT/etc/apptainer/apptainer.conf"

paths="$(pwd):${APPTAINER_HOST_PATHS:-}"
mkdir -p "$CACHE/apptainer-tmp"
# a private mount namespace: /proc, /sys, /dev, a disk-backed /tmp and the named host paths
exec unshare --mount --propagation private --fork /bin/bash -s "$ROOT" "$CACHE/apptainer-tmp" "$paths" "$@" <<'INNER'
set -euo pipefail
root="$1" tmp="$2" paths="$3"; shift 3
mount --bind "$root" "$root"   # the root a mount point: apptainer sets its propagation
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount --bind "$tmp" "$root/tmp"
IFS=: read -r -a list <<< "$paths"
for p in "${list[@]}"; do
  [ -n "$p" ] && [ -e "$p" ] || continue
  if [ -d "$p" ]; then mkdir -p "$root$p"; else mkdir -p "$(dirname "$root$p")"; touch "$root$p"; fi
  mount --bind "$p" "$root$p"
done
# pivot_root, not chroot: apptainer refuses to run in a chroot
wd="$(pwd)"
mkdir -p "$root/.oldroot"
cd "$root"
pivot_root . .oldroot
cd /
umount -l /.oldroot
cd "$wd"
exec /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  APPTAINER_TMPDIR=/tmp APPTAINER_CACHEDIR=/tmp/cache apptainer "$@"
INNER
