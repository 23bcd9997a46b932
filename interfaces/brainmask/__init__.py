"""How the brain mask is made: ANTs brain extraction, in the steps of antsBrainExtraction.sh,
on the ANTs library (the nipype node around it is :mod:`anatprep.interfaces.brain_extraction`).

Modules: ``params`` (parameters and the ``quality`` presets), ``runtime`` (importing ANTs
with a fixed thread count and seed), ``bias`` (N4), ``registration`` (template to subject),
``segmentation`` (Atropos and the mask refinement), ``stripped`` (detecting input that is
already skull-stripped), ``quality`` (the finished mask's QC signals and their flags),
``extract`` (the whole run and its outputs).
"""
