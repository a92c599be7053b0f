"""Inference with a trained estimator and its diagnostics.

The model directory (:mod:`.model_io`: loading and metadata; :mod:`.artifacts`:
checkpoints, fingerprints, versions), grid posteriors (:mod:`.posterior`,
:mod:`.inference`), calibration (:mod:`.calibration`), the out-of-distribution
score (:mod:`.ood`, :mod:`.ood_summaries`) and the ν = 0 / ν > 0 model
comparison (:mod:`.model_comparison`). Importing this package imports no
TensorFlow.
"""
