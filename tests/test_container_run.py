"""``execution.container``: the work of ``anatprep run`` done in the image of this checkout.

- MultiProc with ``engine: podman``: each subject runs as its own ``anatprep run`` in the
  image (no network, read-only image and INPUT);
- SLURMArray with ``engine: apptainer`` on the localhost SLURM cluster: each array task runs
  in the SIF (Debian sid's apptainer, containers/apptainer.sh);

both byte-identical to the host's MultiProc run of the same study and config (the
``GeneratedBy.Container`` entry, which names the image and its digest, aside), and proven to
have run in the image: the brain extraction node's recorded environment is the container's.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_anatprep, run_config, same_but_container, tree_differences
from nipype.utils.filemanip import loadpkl

from anatprep import __version__
from anatprep.pipelines.provenance import load_records

pytestmark = pytest.mark.container


def _container_entry(out: Path) -> dict:
    raw = json.loads((out / "dataset_description.json").read_text())
    deriv = json.loads((out / "derivatives/anatprep/dataset_description.json").read_text())
    assert raw["GeneratedBy"] == deriv["GeneratedBy"]
    return raw["GeneratedBy"][0]["Container"]


def _node_environment(work: Path, node: str) -> dict:
    """The environment nipype recorded for the run of ``node`` (its result file)."""
    results = sorted(work.rglob(f"{node}/result_{node}.pklz"))
    assert results, f"no result of {node} under {work}"
    return dict(loadpkl(results[0]).runtime.environ)


def test_multiproc_subjects_run_in_podman(built, demo_dicom, multiproc_run, tmp_path):
    image = built["IMAGE"]
    env = {**os.environ, "CONTAINERS_CONF": built["CONTAINERS_CONF"]}
    cfg = run_config(tmp_path / "c.yaml", "MultiProc",
                     container=f"{{engine: podman, image: '{image}'}}")  # fmt: skip
    res = run_anatprep([demo_dicom, tmp_path / "out", "--config", cfg], env=env)
    assert res.returncode == 0, res.stdout + res.stderr[-4000:]
    differ = tree_differences(multiproc_run, tmp_path / "out", same=same_but_container)
    assert not differ, "\n".join(differ)
    entry = _container_entry(tmp_path / "out")
    assert entry["Type"] == "podman" and entry["Tag"] == image
    assert entry["URI"].startswith(f"docker://{image}@sha256:")
    # each subject ran in the image, as its own task
    work = tmp_path / "out.work" / "tasks"
    assert sorted(p.name for p in (work / "logs").iterdir()) == [
        "anatprep-sub-01.out", "anatprep-sub-02.out",
    ]  # fmt: skip
    environ = _node_environment(work / "01", "brain_extraction")
    assert environ.get("container") == "podman"
    assert environ.get("ANATPREP_CONTAINER_IMAGE") == image
    # the run record: the image and its packages (asked from the image itself)
    [(_, record)] = load_records(tmp_path / "out")
    assert record.executor["container"]["tag"] == image
    assert record.packages["anatprep"] == __version__ and "antspyx" in record.packages
    # a re-run finds both subjects finished: nothing runs again
    again = run_anatprep([demo_dicom, tmp_path / "out", "--config", cfg], env=env)
    assert again.returncode == 0 and "not run again: 01, 02" in again.stderr, again.stderr


def _apptainer(tmp_path: Path, built: dict[str, str], *paths: Path) -> Path:
    """An ``apptainer`` for this host: containers/apptainer.sh (Debian sid's apptainer in a
    sid root), with the paths the runs use visible inside that root."""
    visible = ":".join(str(p) for p in (Path(built["SIF_FILE"]).parent, tmp_path, *paths))
    wrapper = tmp_path / "apptainer-here"
    wrapper.write_text(
        "#!/bin/bash\n"
        f"export APPTAINER_HOST_PATHS='{visible}'\n"
        f"exec bash '{REPO / 'containers' / 'apptainer.sh'}' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return wrapper


def test_slurm_array_tasks_run_in_apptainer(
    built, slurm, demo_dicom, multiproc_run, tmp_path
):  # fmt: skip
    sif = Path(built["SIF_FILE"])
    wrapper = _apptainer(tmp_path, built, demo_dicom.parent)
    cfg = run_config(
        tmp_path / "c.yaml", "SLURMArray",
        container=f"{{engine: apptainer, image: '{sif}', executable: '{wrapper}'}}",
    )  # fmt: skip
    res = run_anatprep([demo_dicom, tmp_path / "out", "--config", cfg])
    assert res.returncode == 0, res.stdout + res.stderr[-4000:]
    differ = tree_differences(multiproc_run, tmp_path / "out", same=same_but_container)
    assert not differ, "\n".join(differ)
    entry = _container_entry(tmp_path / "out")
    digest = "sha256:" + hashlib.sha256(sif.read_bytes()).hexdigest()
    assert entry == {"Type": "apptainer", "Tag": sif.name, "Digest": digest}
    task = (tmp_path / "out.work" / "slurm" / "task.sh").read_text()
    assert f"{wrapper} exec" in task and str(sif) in task
    environ = _node_environment(tmp_path / "out.work" / "slurm" / "02", "brain_extraction")
    assert environ.get("APPTAINER_CONTAINER") == str(sif)
    assert "SLURM_JOB_ID" not in environ  # --cleanenv: none of the host's variables


@pytest.mark.parametrize("mode", ["SLURM", "SLURMGraph"])
def test_slurm_node_jobs_run_in_podman(built, slurm, demo_dicom, multiproc_run, tmp_path, mode):
    """A job per node: each job's node script runs in the image (the template the host
    resolved mounted read-only at its host path)."""
    image = built["IMAGE"]
    env = {**os.environ, "CONTAINERS_CONF": built["CONTAINERS_CONF"]}
    cfg = run_config(tmp_path / "c.yaml", mode,
                     container=f"{{engine: podman, image: '{image}'}}")  # fmt: skip
    res = run_anatprep([demo_dicom, tmp_path / "out", "--config", cfg], env=env)
    assert res.returncode == 0, res.stdout + res.stderr[-4000:]
    differ = tree_differences(multiproc_run, tmp_path / "out", same=same_but_container)
    assert not differ, "\n".join(differ)
    environ = _node_environment(tmp_path / "out.work", "brain_extraction")
    assert environ.get("container") == "podman" and "SLURM_JOB_ID" not in environ


def test_an_image_that_is_not_there_is_a_usage_error(demo_dicom, tmp_path):
    cfg = run_config(tmp_path / "c.yaml", "MultiProc",
                     container=f"{{engine: apptainer, image: '{tmp_path / 'none.sif'}', "
                               "executable: /bin/true}")  # fmt: skip
    res = run_anatprep([demo_dicom, tmp_path / "out", "--config", cfg])
    assert res.returncode == 2, res.stderr
    assert f"no SIF file at {tmp_path / 'none.sif'}" in res.stderr
    assert not (tmp_path / "out" / "sub-01").exists()
    cfg = run_config(tmp_path / "d.yaml", "MultiProc",
                     container="{engine: docker, image: x, executable: no-such-docker}")
    res = run_anatprep([demo_dicom, tmp_path / "out", "--config", cfg])
    assert res.returncode == 2 and "'no-such-docker' is not found" in res.stderr, res.stderr




def test_an_interrupted_run_ends_its_container_tasks(built, demo_dicom, tmp_path):
    """SIGTERM to ``anatprep run`` (SLURM, timeout, a container stop) while subjects run in
    the image: exit 143 and no container left running."""
    image = built["IMAGE"]
    env = {**os.environ, "CONTAINERS_CONF": built["CONTAINERS_CONF"]}
    cfg = run_config(tmp_path / "c.yaml", "MultiProc",
                     container=f"{{engine: podman, image: '{image}'}}")  # fmt: skip
    head = subprocess.Popen(
        [sys.executable, "-m", "anatprep.pipelines.cli", "run", str(demo_dicom),
         str(tmp_path / "out"), "--config", str(cfg)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def ours() -> list[str]:
        names = subprocess.run(
            ["podman", "ps", "--format", "{{.Names}}", "--filter", f"name=anatprep-{head.pid}-"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        return sorted(names)

    deadline = time.monotonic() + 300
    while len(ours()) < 2 and head.poll() is None and time.monotonic() < deadline:
        time.sleep(1)
    assert ours() == [f"anatprep-{head.pid}-sub-01", f"anatprep-{head.pid}-sub-02"]
    head.send_signal(signal.SIGTERM)
    _, err = head.communicate(timeout=120)
    assert head.returncode == 143, err[-3000:]
    assert "ending 2 container task(s)" in err
    assert ours() == []
