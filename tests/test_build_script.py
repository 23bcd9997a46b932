"""containers/build.sh's own logic, with every external build tool replaced by a stub on PATH
(no image is built: podman, apptainer and hadolint are shell scripts that only say yes)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: podman as build.sh calls it: `image exists` yes, `image inspect` a size, `save -o FILE`
#: writes FILE; every call is logged
PODMAN = """#!/bin/sh
echo "podman $*" >> "$STUB_LOG"
case "$1 $2" in "image inspect") echo 123000000 ;; esac
if [ "$1" = save ]; then
  while [ $# -gt 0 ]; do [ "$1" = -o ] && echo archive > "$2"; shift; done
fi
exit 0
"""
YES = '#!/bin/sh\necho "$(basename "$0") $*" >> "$STUB_LOG"\nexit 0\n'


def _stub(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def _build(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    stubs, cache = tmp_path / "stubs", tmp_path / "cache"
    _stub(stubs / "podman", PODMAN)
    for tool in ("buildah", "runc", "newuidmap", "debootstrap", "mksquashfs", "apptainer"):
        _stub(stubs / tool, YES)
    _stub(cache / "hadolint-venv" / "bin" / "hadolint", YES)
    env = {k: v for k, v in os.environ.items() if k != "CONTAINERS_CONF"}
    env.update(
        PATH=f"{stubs}:{env['PATH']}", STUB_LOG=str(tmp_path / "calls.log"),
        OUT=str(tmp_path / "out"), ANATPREP_BUILD_CACHE=str(cache),
    )  # fmt: skip
    return subprocess.run(
        ["bash", str(REPO / "containers" / "build.sh"), *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_build_without_sif_exits_0_and_reports_image_and_archive(tmp_path):
    result = _build(tmp_path, "--no-sif")
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "out" / "build-report.txt").read_text()
    assert "image localhost/anatprep:" in report and ": 123 MB" in report
    assert "archive " in report and "sif " not in report
    calls = (tmp_path / "calls.log").read_text()
    assert "podman build" in calls and "podman save" in calls and "apptainer" not in calls
