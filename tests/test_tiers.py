"""The test tiers: a test not marked slow is fast, and a test that runs a pipeline says so,
both as measured in this session.

These run last (tests/conftest.py orders them), so in ``make test-fast`` they check every test
of the fast tier and in ``make test`` every test of the suite.
"""

from __future__ import annotations

from conftest import DURATIONS, FAST_LIMIT_S, PIPELINE_IDS, PIPELINE_RUNS, SLOW_IDS


def test_no_unmarked_test_is_slow(request):
    mine = request.node.nodeid
    too_slow = sorted(
        (round(seconds, 2), nodeid)
        for nodeid, seconds in DURATIONS.items()
        if nodeid != mine and nodeid not in SLOW_IDS and seconds > FAST_LIMIT_S
    )
    assert not too_slow, (
        f"tests over {FAST_LIMIT_S} s without a slow marker (mark them slow, or ants/pipeline/"
        f"container/slurm): {too_slow}"
    )


def test_every_pipeline_run_is_marked():
    unmarked = sorted(PIPELINE_RUNS - PIPELINE_IDS)
    assert not unmarked, f"tests that ran a workflow without the pipeline marker: {unmarked}"
