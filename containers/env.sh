# Shared settings of containers/build.sh, containers/apptainer.sh and tests/test_container.py
# (sourced).  Writes a containers.conf that makes podman work on hosts without systemd or
# cgroup delegation (setrlimit and cgroup errors otherwise) unless CONTAINERS_CONF names a file.
_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_repo="$(cd "$_here/.." && pwd)"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$_repo/anatprep/__init__.py")"
IMAGE="${IMAGE:-localhost/anatprep:$VERSION}"
BASE_IMAGE="${BASE_IMAGE:-localhost/anatprep-base:bookworm}"
OUT="${OUT:-$_repo/build/container}"
CACHE="${ANATPREP_BUILD_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/anatprep-build}"
ARCHIVE="$OUT/anatprep-$VERSION.docker.tar"
SIF_FILE="$OUT/anatprep-$VERSION.sif"
HADOLINT_VERSION=2.15.1
if [ -z "${DEBIAN_MIRROR:-}" ]; then
  DEBIAN_MIRROR="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
    | sed -n -e 's|^URIs: *\([^ ]*/debian\)/*$|\1|p' -e 's|^deb  *\(http[^ ]*/debian\)/* .*|\1|p' | head -1 || true)"
  DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
fi
mkdir -p "$CACHE"
if [ -z "${CONTAINERS_CONF:-}" ] || [ ! -f "$CONTAINERS_CONF" ]; then
  CONTAINERS_CONF="$CACHE/containers.conf"
  cat > "$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "host"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
fi
export CONTAINERS_CONF IMAGE BASE_IMAGE OUT CACHE ARCHIVE SIF_FILE VERSION DEBIAN_MIRROR
