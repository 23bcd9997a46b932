"""The memory one brain extraction needs, from the input's size.

Peak RSS grows with the input's voxel count: the input and the few full-grid arrays made at
the end (bias-corrected image, mask, one tissue map at a time) are held on its own grid,
while N4, registration and Atropos work on the head box of the working grid (no finer than
1 mm), which a whole head bounds.  Measured peaks, one thread
(``benchmarks/brain_extraction.py``, the ``rss_mb`` column), and this estimate:

==================  ===========  ===========  ==========
input               voxels       peak RSS     estimate
==================  ===========  ===========  ==========
MNI152 1 mm         7.2 M        1.26 GB      1.7 GB
256^3 1 mm          16.8 M       1.43 GB      2.0 GB
MNI152 0.5 mm       57.8 M       2.32 GB      3.2 GB
==================  ===========  ===========  ==========

(``tests/test_brain_extraction_stress.py`` asserts the 0.5 mm peak is below its estimate.)

The estimate is what a node declares to the scheduler (SLURM ``--mem``, MultiProc's memory
budget); it keeps a margin over every measured peak.
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
