"""The container images, built from this checkout and run for real (issue 15).

``containers/build.sh`` builds the podman image (hadolint must be clean) and the Apptainer SIF;
then ``anatprep demo`` runs in the image with no network, a read-only root and a read-only
input mount, as a non-root user, on the demo DICOM the host venv wrote, and its BIDS output must
be byte-identical to the host's run of the same demo (the host venv installs the same pinned
versions from requirements/, which a test here checks).  The SIF answers ``--version`` and
writes the demo DICOM and converts it (no brain extraction), byte-identical to the host's.

Skips only outside CI when podman is missing and cannot be installed (not root, no apt-get);
under CI=true it always runs.  About 5 minutes on the 2-core machine with the build caches warm
(podman storage, ~/.cache/anatprep-build), about 10 from nothing.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import same_but_container, tree_differences

REPO = Path(__file__).resolve().parents[1]
MAX_IMAGE_BYTES = 2_000_000_000

pytestmark = pytest.mark.container


def assert_same_tree(a: Path, b: Path) -> None:
    """Same file names and byte-identical contents under ``a`` and ``b`` (the run records
    left out; dataset_description.json compared without its ``Container`` entry)."""
    differ = tree_differences(a, b, same=same_but_container)
    assert not differ, "\n".join(differ)


@pytest.fixture(scope="module")
def host_demo(demo_runs) -> Path:
    """The demo run in the host venv (the one running these tests; test_e2e's first)."""
    folder, proc = demo_runs[0]
    assert proc.returncode == 0, proc.stderr[-4000:]
    return folder


def test_host_venv_has_the_locked_versions() -> None:
    """The host venv runs the versions pinned in requirements/runtime.txt (as the image does)."""
    pins = re.findall(
        r"^([A-Za-z0-9_.-]+)==([^ \\\n]+)", (REPO / "requirements" / "runtime.txt").read_text(),
        re.M,
    )
    assert len(pins) > 20
    wrong = {
        name: (want, importlib.metadata.version(name))
        for name, want in pins
        if importlib.metadata.version(name) != want
    }
    assert not wrong, f"installed versions differ from requirements/runtime.txt: {wrong}"


def test_image_size_and_labels(built: dict[str, str]) -> None:
    env = {**os.environ, "CONTAINERS_CONF": built["CONTAINERS_CONF"]}
    out = subprocess.run(
        ["podman", "image", "inspect", "--format",
         "{{.Size}} {{index .Labels \"org.opencontainers.image.licenses\"}} {{.Config.User}}",
         built["IMAGE"]],
        env=env, check=True, capture_output=True, text=True,
    ).stdout.split()
    size, licence, user = int(out[0]), out[1], out[2]
    assert size <= MAX_IMAGE_BYTES, f"image {built['IMAGE']} is {size / 1e9:.2f} GB"
    assert licence == "Apache-2.0"
    assert not user.startswith(("0", "root")), f"image runs as {user}"


def test_podman_demo_is_byte_identical_to_the_host(
    built: dict[str, str], host_demo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ctr"
    out.mkdir()
    if os.geteuid() == 0:
        os.chown(out, 1000, 1000)  # the image's user
    else:
        out.chmod(0o777)
    env = {**os.environ, "CONTAINERS_CONF": built["CONTAINERS_CONF"]}
    cmd = [
        "podman", "run", "--rm", "--network=none", "--read-only", "--user", "1000:1000",
        "-v", f"{out}:/demo",
        "-v", f"{host_demo / 'dicom'}:/demo/dicom:ro",
        "-v", f"{host_demo / 'truth'}:/demo/truth:ro",
        built["IMAGE"], "demo", "/demo",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert_same_tree(host_demo / "bids", out / "bids")
    assert (host_demo / "demo_dice.json").read_bytes() == (out / "demo_dice.json").read_bytes()
    # provenance: the run in the image names its image; the host's names none
    for bids in (host_demo / "bids", out / "bids"):
        described = json.loads((bids / "dataset_description.json").read_text())
        container = described["GeneratedBy"][0].get("Container")
        if bids == host_demo / "bids":
            assert container is None
        else:
            assert container and container["Tag"] == built["IMAGE"], described


def test_apptainer_sif_runs(built: dict[str, str], host_demo: Path, tmp_path: Path) -> None:
    sif = built["SIF_FILE"]
    env = {**os.environ, "APPTAINER_HOST_PATHS": f"{Path(sif).parent}:{tmp_path}:{REPO}"}
    apptainer = ["bash", str(REPO / "containers" / "apptainer.sh")]
    version = subprocess.run(
        [*apptainer, "run", sif, "--version"], env=env, capture_output=True, text=True
    )
    assert version.returncode == 0, version.stderr[-2000:]
    assert version.stdout.strip().startswith("anatprep ")
    # the demo DICOM written inside the SIF, converted without brain extraction
    proc = subprocess.run(
        [*apptainer, "run", "--containall", "--bind", f"{tmp_path},{REPO / 'configs'}", sif,
         "demo", str(tmp_path / "sif"),
         "--config", str(REPO / "configs" / "fast-conversion-only.yaml")],
        env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert_same_tree(host_demo / "dicom", tmp_path / "sif" / "dicom")
    for subject in ("sub-01", "sub-02"):
        assert_same_tree(host_demo / "bids" / subject, tmp_path / "sif" / "bids" / subject)
