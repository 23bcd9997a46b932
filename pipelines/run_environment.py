"""What a run executes in, as records: the container image and the software installed.

Below both the run record (:mod:`.provenance`, which detects them) and the methods text
(:mod:`.methods`, which cites them), so neither imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ContainerInfo:
    """The image a process runs in (:func:`.provenance.detect_container` reads it from the
    environment)."""

    #: apptainer, singularity, podman, docker, or oci when the engine is not known
    type: str
    #: the image reference (``anatprep:0.1.0``) or, for an Apptainer image without one, the
    #: SIF's file name
    tag: str
    #: ``sha256:...`` when the runner passed it
    digest: str | None = None
    #: the SIF file (Apptainer), kept in the run record only (a host path)
    sif: str | None = None

    def bids(self) -> dict[str, str]:
        """BIDS ``GeneratedBy.Container``: Type, Tag and, with a digest, URI for an OCI
        image (``docker://<tag>@<digest>``) or ``Digest`` for a SIF (a file: no such URI)."""
        out = {"Type": self.type, "Tag": self.tag}
        if self.digest and self.type in ("apptainer", "singularity"):
            out["Digest"] = self.digest
        elif self.digest:
            out["URI"] = f"docker://{self.tag}@{self.digest}"
        return out


@dataclass(frozen=True)
class EnvironmentInfo:
    """What an environment (this one, or an image's, as it reports itself) holds."""

    anatprep: str
    nipype: str
    #: the dcm2niix program's version (``v1.0.20250506``), None when there is none
    dcm2niix: str | None
    packages: dict[str, str]
