"""How much memory one image may take, checked before the memory is used.

An image's size is declared by its header (Rows x Columns x NumberOfFrames x SamplesPerPixel
x BitsAllocated / 8) and must agree with what the file holds before anything is allocated:

- no axis longer than NIfTI-1 can hold (32767 voxels: its dimensions are 16-bit);
- no more than the ceiling, ``conversion.max_image_gb`` (GiB, default: half the machine's
  memory), per file and per volume;
- compressed (encapsulated) pixel data may not claim more than :data:`MAX_RATIO` times its
  own size once the image is past :data:`RATIO_FREE_BYTES`: RLE cannot do better than 64:1
  (a two-byte packet repeats one byte at most 128 times); for the JPEG family (lossless,
  JPEG-LS, JPEG 2000) 1000:1 is far beyond any scanner image (lossless 2-5:1, lossy
  10-50:1), while a tiny file claiming gigabytes is refused;
- a ``.dcm.gz`` is inflated as a stream, never whole: its header (at most
  :data:`HEADER_LIMIT`), then only the pixel bytes the header declares.

What fails raises :class:`ImageTooLarge`, whose text says what is wrong in words.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

GIB = 2**30
#: NIfTI-1 stores each dimension as a signed 16-bit number
NIFTI1_MAX_DIM = 32767
#: below this, an image is decoded whatever its compression ratio (blank frames compress far)
RATIO_FREE_BYTES = 64 * 2**20
RLE = "1.2.840.10008.1.2.5"
#: the most an encapsulated transfer syntax's pixel data may expand (see the module text)
MAX_RATIO = {RLE: 64}
DEFAULT_MAX_RATIO = 1000
#: the largest header (everything before the pixel data) a ``.dcm.gz`` may inflate to
HEADER_LIMIT = 256 * 2**20


class ImageTooLarge(Exception):
    """An image whose declared size the file or the ceiling does not allow; ``str()`` is
    the reason in words."""


def machine_memory() -> int:
    """Physical memory of this machine in bytes (16 GiB when the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 16 * GIB


#: ``conversion.max_image_gb``'s default: half the machine's memory, in GiB (one decimal)
DEFAULT_MAX_IMAGE_GB = max(int(machine_memory() / 2 / GIB * 10) / 10, 0.1)

_CEILING: ContextVar[int] = ContextVar("image_ceiling", default=int(DEFAULT_MAX_IMAGE_GB * GIB))


def image_ceiling() -> int:
    """The most bytes one image may take here (see :func:`ceiling_of`)."""
    return _CEILING.get()


@contextmanager
def ceiling_of(max_image_gb: float | None) -> Iterator[None]:
    """Within the block, images above ``max_image_gb`` GiB fail (None: the default)."""
    token = _CEILING.set(int((max_image_gb or DEFAULT_MAX_IMAGE_GB) * GIB))
    try:
        yield
    finally:
        _CEILING.reset(token)


def human_bytes(n: float) -> str:
    """``78.1 TiB``, ``960 bytes``."""
    if n < 1024:
        return f"{int(n)} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if n < 1024 or unit == "PiB":
            break
    return f"{n:.1f} {unit}"


def check_size(nbytes: int, what: str = "the image") -> None:
    """Raise :class:`ImageTooLarge` when ``nbytes`` is above the ceiling."""
    ceiling = image_ceiling()
    if nbytes > ceiling:
        raise ImageTooLarge(
            f"{what} would need {human_bytes(nbytes)}, more than conversion.max_image_gb "
            f"allows ({human_bytes(ceiling)})"
        )


def _count(header, key: str, absent: int = 1) -> int:
    try:
        return int(header.get(key) or absent)
    except (TypeError, ValueError):
        return absent


def declared_bytes(header, syntax: str = "") -> int:
    """Rows x Columns x NumberOfFrames (<= 1: one) x SamplesPerPixel x BitsAllocated / 8
    (``syntax``: unused, so that it stands in for :func:`check_declared`)."""
    frames = max(_count(header, "NumberOfFrames"), 1)
    bits = _count(header, "BitsAllocated", 16)
    return (
        _count(header, "Rows", 0) * _count(header, "Columns", 0) * frames
        * _count(header, "SamplesPerPixel") * bits // 8
    )  # fmt: skip


def too_long(name: str, count: int) -> str | None:
    """Why ``count`` voxels (``name``) cannot be a NIfTI-1 axis, or None."""
    if count > NIFTI1_MAX_DIM:
        return f"{name}={count}: more voxels along an axis than NIfTI-1 holds ({NIFTI1_MAX_DIM})"
    return None


def axis_problem(header) -> str | None:
    """Why ``header``'s Rows or Columns cannot be a NIfTI-1 axis, or None."""
    for key in ("Rows", "Columns"):
        problem = too_long(key, _count(header, key, 0))
        if problem:
            return problem
    return None


def check_volume(n_slices: int, n_volumes: int, nbytes: int) -> None:
    """A volume of ``n_slices`` x ``n_volumes`` fits NIfTI-1's axes and, at ``nbytes``, the
    ceiling; raises :class:`ImageTooLarge`."""
    problem = too_long("slices", n_slices) or too_long("volumes", n_volumes)
    if problem:
        raise ImageTooLarge(problem)
    check_size(nbytes, "the volume")


def check_axes(header, syntax: str = "") -> int:
    """:func:`declared_bytes` once :func:`axis_problem` finds nothing; raises
    :class:`ImageTooLarge`."""
    problem = axis_problem(header)
    if problem:
        raise ImageTooLarge(problem)
    return declared_bytes(header)


def check_declared(header, syntax: str, compressed: int | None = None) -> int:
    """The declared pixel bytes of ``header``, after checking them against NIfTI-1's axis
    limit, the ceiling and (``compressed``: the encapsulated pixel data's length) the
    syntax's largest compression ratio; raises :class:`ImageTooLarge`."""
    check_axes(header)
    declared = declared_bytes(header)
    check_size(declared)
    if compressed is not None and declared > RATIO_FREE_BYTES:
        ratio = MAX_RATIO.get(syntax, DEFAULT_MAX_RATIO)
        if declared > ratio * compressed:
            raise ImageTooLarge(
                f"{human_bytes(compressed)} of compressed pixel data claim an image of "
                f"{human_bytes(declared)}: more than {ratio}:1, beyond what the transfer "
                "syntax's codec gives"
            )
    return declared
