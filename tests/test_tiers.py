"""The test tiers: every test that is not marked slow is fast, measured in this session.

Runs last (tests/conftest.py orders it), so in ``make test-fast`` it checks every test of the
fast tier and in ``make test`` every test of the suite.
"""

from __future__ import annotations

from conftest import DURATIONS, FAST_LIMIT_S, SLOW_IDS


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
