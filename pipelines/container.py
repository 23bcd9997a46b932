"""Running the work inside a container image (``execution.container``).

This process (the host's ``anatprep run``) indexes INPUT, plans, locks and accounts as
always; the work itself runs in the image: each MultiProc or Linear subject as its own
``anatprep run`` of that subject (:mod:`.subject_tasks`), each SLURM / SLURMGraph node job as
nipype's node script run by the image's Python, each SLURMArray task as its subject's
``anatprep run`` in the image.  INPUT is mounted read-only, OUTPUT and the work dir
read-write, each at its host path (node scripts and series tables name host paths), with the
template's folder and ``binds`` read-only.  No network (podman/docker), a read-only image, the
host's user id; Apptainer with ``--contain --cleanenv`` (its own /tmp and HOME, none of the
host's variables).

Before any work :func:`prepare_launcher` checks that the engine and the image exist, takes the
image's digest (podman: its manifest digest; docker: its repository digest, else its id;
Apptainer: the SIF file's sha256) and asks the image what it holds
(:class:`~.run_environment.EnvironmentInfo`): an anatprep or nipype version that differs from this
process's is refused (exit 2), since the host builds the graph and the node scripts the image
runs.  podman / docker then run the image by its id (``--pull=never``): a tag moved meanwhile
cannot swap in an unchecked image.  Host paths holding ``:`` or ``,`` cannot be mounted and
are refused by name.  The image and digest reach the
image's processes as ``ANATPREP_CONTAINER_*`` variables, so ``GeneratedBy.Container`` is the
same whether the host or a task writes it; the run record lists the image's packages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from anatprep import __version__

from .config import ContainerConfig, Engine
from .paths import UsageError
from .provenance import DIGEST_ENV, ENGINE_ENV, IMAGE_ENV, file_sha256
from .run_environment import ContainerInfo, EnvironmentInfo

#: what the image is asked before any work (one line of JSON: an EnvironmentInfo)
_PROBE = (
    "import dataclasses, json; from anatprep.pipelines.provenance import environment_info; "
    "print(json.dumps(dataclasses.asdict(environment_info())))"
)
#: a first start of an image may unpack it (Apptainer's cache, podman's storage)
_PROBE_TIMEOUT_S = 600

class ContainerError(UsageError):
    """The configured engine or image cannot run the work (exit code 2); names which."""


@dataclass(frozen=True)
class ContainerLauncher:
    """Command lines that run a program in the image with the run's mounts."""

    engine: Engine
    executable: str  #: the engine's program
    #: what the engine is given: the SIF's absolute path, or the image's id (podman/docker)
    image: str
    info: ContainerInfo  #: what the outputs record (no host path but in the run record)
    read_only: tuple[str, ...] = ()
    read_write: tuple[str, ...] = ()
    #: more variables for the processes in the image (e.g. TEMPLATEFLOW_HOME)
    extra_env: tuple[tuple[str, str], ...] = ()

    def environment(self) -> dict[str, str]:
        """The variables a process in the image gets (its container, as recorded)."""
        env = {IMAGE_ENV: self.info.tag, ENGINE_ENV: self.engine}
        if self.info.digest:
            env[DIGEST_ENV] = self.info.digest
        return {**env, **dict(self.extra_env)}

    def command(
        self, argv: Sequence[str], workdir: str, mounts: bool = True, name: str | None = None
    ) -> list[str]:
        """``argv`` run in the image, in ``workdir`` (a mounted folder or ``/``); ``name``:
        the container's name (podman / docker), to remove it if its client is killed."""
        ro = self.read_only if mounts else ()
        rw = self.read_write if mounts else ()
        env = self.environment()
        if self.engine == "apptainer":
            cmd = [self.executable, "exec", "--contain", "--cleanenv", "--pwd", workdir]
            cmd += [a for p in ro for a in ("--bind", f"{p}:{p}:ro")]
            cmd += [a for p in rw for a in ("--bind", f"{p}:{p}")]
            cmd += [a for k, v in env.items() for a in ("--env", f"{k}={v}")]
            return [*cmd, self.image, *argv]
        cmd = [self.executable, "run", "--rm", "--pull=never", "--network=none", "--read-only"]
        cmd += ["--security-opt", "label=disable", "--user", f"{os.getuid()}:{os.getgid()}"]
        if name:
            cmd += ["--name", name]
        if self.engine == "podman" and os.geteuid() != 0:
            cmd.append("--userns=keep-id")  # rootless: the host user owns what is written
        if self.engine == "docker":
            cmd += ["--tmpfs", "/tmp"]  # podman mounts one itself with --read-only
        cmd += ["--workdir", workdir]
        cmd += [a for p in ro for a in ("--volume", f"{p}:{p}:ro")]
        cmd += [a for p in rw for a in ("--volume", f"{p}:{p}")]
        cmd += [a for k, v in env.items() for a in ("--env", f"{k}={v}")]
        return [*cmd, "--entrypoint", argv[0], self.image, *argv[1:]]

    def python(self, workdir: str, name: str | None = None) -> list[str]:
        """The image's Python (its virtual environment's, first on the image's PATH)."""
        return self.command(["python"], workdir, name=name)

    def remove(self, name: str) -> None:
        """Remove the named container, if it still runs (podman / docker; its client was
        killed).  Apptainer's processes are the client's own: nothing to do."""
        if self.engine != "apptainer":
            subprocess.run([self.executable, "rm", "-f", name], capture_output=True, timeout=120)

    def with_read_only(self, folders: Iterable[Path]) -> ContainerLauncher:
        """This launcher with more read-only folders (e.g. where linked input files lie)."""
        more = _mount_list([*map(Path, self.read_only), *folders])
        return replace(self, read_only=_outside(more, self.read_write))


def _inside(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or below it, by the names alone (both forms get mounted)."""
    return path == folder or folder in path.parents


def _mount_list(paths: Iterable[Path], must_exist: bool = True) -> tuple[str, ...]:
    """Folders, each by its absolute path and by its path with symbolic links resolved (host
    paths reach the image in either form), none inside another of the list; those that do
    not exist are left out when ``must_exist``.  ContainerError for a path no engine can
    mount (``:`` or ``,`` in it)."""
    folders: set[Path] = set()
    for path in paths:
        if not must_exist or path.exists():
            folders |= {Path(os.path.abspath(path)), path.resolve()}
    for folder in folders:
        if ":" in str(folder) or "," in str(folder):
            raise ContainerError(
                f"execution.container: {folder} cannot be mounted (':' or ',' in its path); "
                "use a path without them"
            )
    kept: list[Path] = []
    for folder in sorted(folders, key=lambda p: len(p.parts)):
        if not any(_inside(folder, k) for k in kept):
            kept.append(folder)
    return tuple(sorted(str(k) for k in kept))


def _outside(read_only: Sequence[str], read_write: Sequence[str]) -> tuple[str, ...]:
    return tuple(p for p in read_only if not any(_inside(Path(p), Path(w)) for w in read_write))


def _executable(conf: ContainerConfig) -> str:
    name = conf.executable or conf.engine
    found = shutil.which(os.path.expanduser(name))
    if found is None:
        raise ContainerError(
            f"execution.container: the {conf.engine} program {name!r} is not found "
            "(install it, or set execution.container.executable)"
        )
    return found


def _inspect(executable: str, engine: str, image: str) -> tuple[str, str]:
    """The image's id and digest from podman / docker (``sha256:...`` each; the digest is
    the manifest's for podman, the first repository digest or else the id for docker);
    ContainerError when the image is not there."""
    fmt = "{{.Id}}|{{.Digest}}" if engine == "podman" else "{{.Id}}|{{json .RepoDigests}}"
    proc = subprocess.run(
        [executable, "image", "inspect", "--format", fmt, image],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise ContainerError(f"execution.container.image {image!r}: not in {engine} ({why})")
    image_id, _, digest = proc.stdout.strip().partition("|")
    if engine == "docker":
        found = [d.partition("@")[2] for d in json.loads(digest or "null") or []]
        digest = found[0] if found else image_id
    image_id = image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"
    digest = digest if digest.startswith("sha256:") else f"sha256:{digest}"
    return image_id, digest


def _probe(launcher: ContainerLauncher, shown: str) -> EnvironmentInfo:
    cmd = launcher.command(["python", "-c", _PROBE], "/", mounts=False)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ContainerError(
            f"execution.container: {shown} did not answer in {_PROBE_TIMEOUT_S} s"
        ) from None
    lines = proc.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1] if proc.returncode == 0 and lines else "null")
        found = EnvironmentInfo(
            data["anatprep"], data["nipype"], data["dcm2niix"], dict(data["packages"])
        )
    except (TypeError, KeyError, ValueError):
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:]) or f"exit {proc.returncode}"
        raise ContainerError(
            f"execution.container: {launcher.engine} could not run anatprep in {shown}: {tail}"
        ) from None
    return found


def check_versions(image: str, found: EnvironmentInfo) -> None:
    """ContainerError unless the image's anatprep and nipype are this process's."""
    import nipype

    here = {"anatprep": __version__, "nipype": nipype.__version__}
    there = asdict(found)
    wrong = [f"{k} {there[k]} (here {here[k]})" for k in here if here[k] != there[k]]
    if wrong:
        raise ContainerError(
            f"execution.container.image {image} holds {', '.join(wrong)}: this anatprep "
            "builds the work the image runs, so both must be the same version (run the "
            "anatprep of the image's version here, or use that version's image)"
        )


def prepare_launcher(
    conf: ContainerConfig,
    read_only: Iterable[Path],
    read_write: Iterable[Path],
    extra_env: dict[str, str] | None = None,
) -> tuple[ContainerLauncher, EnvironmentInfo]:
    """Check the engine and the image, take its digest and its environment; the launcher
    mounting ``read_only`` (INPUT, template folders; ``conf.binds`` added; those that do not
    exist left out) and ``read_write`` (OUTPUT, the work dir; made by the run if need be).
    Raises :class:`ContainerError`."""
    executable = _executable(conf)
    if conf.engine == "apptainer":
        sif = Path(conf.image).expanduser().resolve()
        if not sif.is_file():
            raise ContainerError(f"execution.container.image: no SIF file at {sif}")
        image, tag, shown = str(sif), sif.name, str(sif)
        try:
            digest = "sha256:" + file_sha256(sif)[0]
        except OSError as exc:
            raise ContainerError(
                f"execution.container.image: cannot read {sif}: {exc.strerror or exc}"
            ) from None
    else:
        image, digest = _inspect(executable, conf.engine, conf.image)
        tag = shown = conf.image
    info = ContainerInfo(conf.engine, tag, digest, image if conf.engine == "apptainer" else None)
    writable = _mount_list(read_write, must_exist=False)
    readable = _mount_list([*read_only, *(Path(b).expanduser() for b in conf.binds)])
    launcher = ContainerLauncher(
        engine=conf.engine,
        executable=executable,
        image=image,
        info=info,
        read_only=_outside(readable, writable),
        read_write=writable,
        extra_env=tuple(sorted((extra_env or {}).items())),
    )
    found = _probe(launcher, shown)
    check_versions(shown, found)
    return launcher, found
