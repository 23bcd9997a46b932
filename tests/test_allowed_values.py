"""Each list of allowed values is written once.  Where a pydantic ``Literal`` (the config) or
a nipype ``Enum`` trait (an interface) must spell the list out, it is built from or tied to the
one definition: a value added in one place and not the other would be accepted by one layer
and refused by the next."""

from __future__ import annotations

from typing import get_args

import pytest

from anatprep.interfaces.brain_extraction import AntsBrainExtraction
from anatprep.interfaces.brainmask.params import PRESETS, Quality
from anatprep.interfaces.convert import DicomToNifti
from anatprep.interfaces.dicomio.geometry import IrregularOutcome, LocalizerOutcome, TiltOutcome
from anatprep.interfaces.dicomio.reference import Converter
from anatprep.interfaces.dicomio.sidecar import Deidentify
from anatprep.pipelines import container
from anatprep.pipelines.config import (
    BrainExtractionConfig,
    Config,
    ContainerConfig,
    ConversionConfig,
    Engine,
    GeometryConfig,
)


def test_the_quality_literal_names_the_presets():
    assert sorted(get_args(Quality)) == sorted(PRESETS)


@pytest.mark.parametrize(
    ("model", "field", "source"),
    [
        (BrainExtractionConfig, "quality", Quality),
        (ConversionConfig, "converter", Converter),
        (Config, "deidentify", Deidentify),
        (ContainerConfig, "engine", Engine),
        (GeometryConfig, "irregular_spacing", IrregularOutcome),
        (GeometryConfig, "gantry_tilt", TiltOutcome),
        (GeometryConfig, "localizers", LocalizerOutcome),
    ],
)
def test_each_config_literal_is_its_source(model, field, source):
    assert get_args(model.model_fields[field].annotation) == get_args(source)


def test_the_container_launcher_takes_the_config_engines():
    assert container.Engine is Engine


@pytest.mark.parametrize(
    ("interface", "trait", "source"),
    [
        (DicomToNifti, "converter", get_args(Converter)),
        (DicomToNifti, "deidentify", get_args(Deidentify)),
        (AntsBrainExtraction, "quality", tuple(PRESETS)),
    ],
)
def test_each_interface_enum_is_its_source(interface, trait, source):
    values = interface.input_spec().trait(trait).trait_type.values
    assert sorted(values) == sorted(source)
