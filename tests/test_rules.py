"""Series classification and subject/session labels."""

from __future__ import annotations

from dataclasses import replace

import pytest

from anatprep.interfaces.dicomio.table import SeriesEntry, SeriesTable
from anatprep.pipelines.config import Config, load_config
from anatprep.pipelines.labels import sanitize_label
from anatprep.pipelines.rules import SubjectPlan, classify, plan_subjects


def _entry(
    desc,
    *,
    sid="s1",
    folders=("subj",),
    n_slices=176,
    n_volumes=1,
    number=1,
    image_type=("ORIGINAL", "PRIMARY", "M", "ND"),
    seq="",
) -> SeriesEntry:
    return SeriesEntry(
        id=sid,
        folders=tuple(folders),
        series_description=desc,
        protocol_name=desc,
        sequence_name=seq,
        image_type=tuple(image_type),
        n_slices=n_slices,
        n_volumes=n_volumes,
        series_number=number,
    )


def _plan(table: dict, cfg: Config, labels: list[str] | None = None) -> list[SubjectPlan]:
    """plan_subjects on a table given as ``{"root": ..., "series": [entries]}``."""
    typed = SeriesTable(root=table["root"], n_files=0, series=tuple(table["series"]))
    return plan_subjects(typed, cfg, labels)


@pytest.mark.parametrize(
    "desc",
    [
        "T1_mprage_ns_sag_p2_iso 1.0mm_192",
        "MPRAGE",
        "Sag FSPGR BRAVO",
        "3D SPGR",
        "t1w_3d_tfe",
        "T1W_3D_TFE",
        "MP-RAGE",
        "t1_tfl3d",
        "anat-T1w",
        "MP2RAGE_UNI",
    ],
)
def test_t1w_names(desc):
    assert classify(_entry(desc), Config()) == "T1w"


@pytest.mark.parametrize(
    ("desc", "kw", "expected"),
    [
        ("localizer", {}, ""),
        ("AAHead_Scout", {}, ""),
        ("T1_mprage", {"image_type": ("DERIVED", "SECONDARY", "MPR")}, ""),
        ("T1_mprage", {"n_volumes": 10}, ""),
        ("T1_mprage", {"n_slices": 3}, ""),
        ("t2_spc_sag", {}, "T2w"),
        ("t2_flair_sag", {}, "FLAIR"),
        ("ep2d_bold_rest", {}, ""),
    ],
)
def test_not_t1w(desc, kw, expected):
    assert classify(_entry(desc, **kw), Config()) == expected


def test_labels_sanitized_and_runs_numbered():
    table = {
        "root": "/x/in",
        "series": [
            _entry("MPRAGE", sid="a", folders=("Pat.01 (x)",), number=3),
            _entry("MPRAGE", sid="b", folders=("Pat.01 (x)",), number=7),
            _entry("../../ep2d bold", sid="c", folders=("Pat.01 (x)",), number=9),
        ],
    }
    (plan,) = _plan(table, Config())
    assert plan.subject == "Pat01x"
    stems = [s.stem for s in plan.series]
    assert stems == [
        f"sub-{plan.subject}_run-1_T1w",
        f"sub-{plan.subject}_run-2_T1w",
        f"sub-{plan.subject}_acq-ep2dbold_run-9",
    ]
    assert [s.datatype for s in plan.series] == ["anat", "anat", "extra"]


def test_subject_map_sessions_and_participant_filter():
    cfg = load_config(None, {"labels.session_level": 2, "labels.subject_map": {"patient_A": "01"}})
    table = {
        "root": "/in",
        "series": [
            _entry("MPRAGE", sid="a", folders=("patient_A", "visit1")),
            _entry("MPRAGE", sid="b", folders=("sub-02", "ses-2")),
        ],
    }
    plans = _plan(table, cfg)
    assert [(p.subject, p.session) for p in plans] == [("01", "visit1"), ("02", "2")]
    assert plans[0].rel_dir == "sub-01/ses-visit1"
    assert [p.subject for p in _plan(table, cfg, ["sub-02"])] == ["02"]


def test_sanitize_label():
    assert sanitize_label("../..") == "unknown"
    assert sanitize_label("sub_01-a b") == "sub01ab"


def test_split_series_get_distinct_names():
    table = {
        "root": "/in",
        "series": [
            _entry("localizer", sid="a", number=1, n_slices=3),
            _entry("localizer", sid="b", number=1, n_slices=3),
        ],
    }
    (plan,) = _plan(table, Config())
    assert [s.stem for s in plan.series] == [
        "sub-subj_acq-localizer_run-1",
        "sub-subj_acq-localizer_run-1part2",
    ]
    cfg = load_config(None, {"series.convert_other": False})
    assert _plan(table, cfg)[0].series == []


def _echo(sid, echo_time, part="mag", desc="t1_memprage", number=5):
    return replace(_entry(desc, sid=sid, number=number), echo_time=echo_time, part=part)


def test_multi_echo_and_phase_named_the_bids_way():
    table = {
        "root": "/in",
        "series": [
            _echo("a", 3.1),
            _echo("b", 1.6),
            _echo("c", 1.6, "phase"),
            _echo("d", 3.1, "phase"),
        ],
    }
    (plan,) = _plan(table, Config())
    stems = {s.series_id: s.stem for s in plan.series}
    # magnitudes are the T1w images; phase parts are kept, under extra/, named alike
    assert stems == {
        "b": "sub-subj_echo-1_part-mag_T1w",
        "a": "sub-subj_echo-2_part-mag_T1w",
        "c": "sub-subj_acq-t1memprage_run-5_echo-1_part-phase",
        "d": "sub-subj_acq-t1memprage_run-5_echo-2_part-phase",
    }
    assert {s.series_id for s in plan.t1w} == {"a", "b"}


def test_unrelated_series_sharing_a_number_are_runs_not_echoes():
    """Two T1w series of the same number and description from different DICOM series (e.g.
    two sessions in one folder) are two runs, not the echoes of one acquisition."""
    first, second = _echo("a", 2.9), _echo("b", 3.4)
    first, second = replace(first, acquisition="1111aaaa"), replace(second, acquisition="2222bbbb")
    (plan,) = _plan({"root": "/in", "series": [first, second]}, Config())
    assert [s.stem for s in plan.series] == ["sub-subj_run-1_T1w", "sub-subj_run-2_T1w"]


def test_single_echo_magnitude_keeps_the_plain_name_and_runs_count_acquisitions():
    table = {
        "root": "/in",
        "series": [_echo("a", 2.9, number=3), _echo("b", 2.9, number=7)],
    }
    (plan,) = _plan(table, Config())
    assert [s.stem for s in plan.series] == ["sub-subj_run-1_T1w", "sub-subj_run-2_T1w"]


def test_convert_command_names_echoes_and_phase_like_dcm2niix():
    from anatprep.pipelines.convert_command import output_stems

    series = [
        SeriesEntry(id="x1", protocol_name="gre_fm", series_number=8, echo_time=4.9),
        SeriesEntry(id="x2", protocol_name="gre_fm", series_number=8, echo_time=7.4),
        SeriesEntry(id="x3", protocol_name="gre_fm", series_number=9, part="phase"),
    ]
    assert output_stems(series) == {"x1": "grefm_8_e1", "x2": "grefm_8_e2", "x3": "grefm_9_ph"}
