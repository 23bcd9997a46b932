"""The memory one brain extraction needs, from the input's size.

Peak RSS grows with the input's voxel count: the input and the few full-grid arrays made at
the end (bias-corrected image, mask, one tissue map at a time) are held on its own grid,
while N4, registration and Atropos work on the head box of the working grid (no finer than
1 mm), which a whole head bounds.

The estimate is what a node declares to the scheduler (SLURM ``--mem``, MultiProc's memory
budget).  Rule: it stays above the peak RSS of every head, with a margin.
``benchmarks/brain_extraction.py`` measures the peaks (its ``rss_mb`` column, 1 mm to 0.5 mm
heads); ``tests/test_brain_extraction_stress.py`` asserts the 0.5 mm head's peak is below
its estimate.
"""

from __future__ import annotations

#: interpreter, nipype, ANTs and the working-grid arrays of a whole 1 mm head
BASE_GB = 1.5
#: per input voxel: the input as read (float32 in ANTs, its own dtype in nibabel) and the
#: full-grid outputs made one after another
BYTES_PER_VOXEL = 30.0


def memory_gb(n_voxels: int) -> float:
    """The memory (GB) to declare for a brain extraction of an image of ``n_voxels`` (one
    volume); a whole 256^3 head's when the size is unknown (0)."""
    voxels = n_voxels if n_voxels > 0 else 256**3
    return round(BASE_GB + voxels * BYTES_PER_VOXEL / 1e9, 1)
