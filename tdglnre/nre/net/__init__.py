"""The network: the two-tower Keras model, its optional encoders and the ratio-estimation losses.

Everything a saved ``model.keras`` names lives here: the custom layers
(:mod:`.network`, :mod:`.time_encoder`, :mod:`.spectrum`, :mod:`.summaries`, :mod:`.regression`) and losses
(:mod:`.losses`) are registered with Keras as ``tdglnre>ClassName``, so a
model directory loads by those names whatever module path its config recorded
(tests/test_saved_model_names.py checks that models saved under the old ``tdglnre.nre.network``
paths still load). Importing this package imports no TensorFlow.
"""
