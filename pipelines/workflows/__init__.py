"""Workflow factories."""

from .anat import init_anat_wf, init_anatprep_wf, init_subject_wf

__all__ = ["init_anat_wf", "init_anatprep_wf", "init_subject_wf"]
