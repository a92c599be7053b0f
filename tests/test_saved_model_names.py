"""Model directories saved before nre/ was grouped by role (net/, pipeline/, fit/, infer/) still load.

Keras writes a custom object as ``registered_name = "tdglnre>ClassName"`` plus the
``module`` it came from (``tdglnre.nre.network`` before the move). Loading looks
the registered name up first, so the names must never change; the module path
recorded in old files must not matter.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("keras")

#: registered name -> (module, class) today. Models on disk name these; changing one breaks them.
REGISTERED = {
    "tdglnre>ThetaScaler": ("tdglnre.nre.net.network", "ThetaScaler"),
    "tdglnre>LastChannels": ("tdglnre.nre.net.network", "LastChannels"),
    "tdglnre>PairConcat": ("tdglnre.nre.net.network", "PairConcat"),
    "tdglnre>LogSpectrum": ("tdglnre.nre.net.spectrum", "LogSpectrum"),
    "tdglnre>ImageSummaries": ("tdglnre.nre.net.summaries", "ImageSummaries"),
    "tdglnre>SummaryRegression": ("tdglnre.nre.net.regression", "SummaryRegression"),
    "tdglnre>RegressionOffsets": ("tdglnre.nre.net.regression", "RegressionOffsets"),
    "tdglnre>RegressionLoss": ("tdglnre.nre.net.regression", "RegressionLoss"),
    "tdglnre>SplitSnapshots": ("tdglnre.nre.net.time_encoder", "SplitSnapshots"),
    "tdglnre>TimePool": ("tdglnre.nre.net.time_encoder", "TimePool"),
    "tdglnre>RatioLoss": ("tdglnre.nre.net.losses", "RatioLoss"),
    "tdglnre>NRELoss": ("tdglnre.nre.net.losses", "NRELoss"),
    "tdglnre>BNRELoss": ("tdglnre.nre.net.losses", "BNRELoss"),
    "tdglnre>NRECLoss": ("tdglnre.nre.net.losses", "NRECLoss"),
}


def test_registered_names_of_custom_objects_do_not_change():
    import importlib

    from tdglnre.nre.tf_setup import ensure_tensorflow

    ensure_tensorflow()
    import keras

    for name, (module, cls) in REGISTERED.items():
        obj = getattr(importlib.import_module(module), cls)
        assert keras.saving.get_registered_name(obj) == name
        assert keras.saving.get_registered_object(name) is obj


def test_a_model_saved_under_the_old_module_paths_loads(tmp_path):
    """Save a model with custom layers, rewrite its config to the pre-move module paths, load it back."""
    from tdglnre.nre.tf_setup import ensure_tensorflow

    ensure_tensorflow()
    import keras

    from tdglnre.nre.net.network import PairConcat, ThetaScaler

    h_x = keras.Input((3,))
    theta = keras.Input((2, 2))
    out = PairConcat()([h_x, ThetaScaler([0.0, 1.0], [1.0, 9.0])(theta)])
    model = keras.Model([h_x, theta], keras.layers.Dense(1, kernel_initializer="ones")(out))
    new = tmp_path / "new.keras"
    model.save(new)

    old = tmp_path / "old.keras"
    with zipfile.ZipFile(new) as zin, zipfile.ZipFile(old, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                text = data.decode()
                assert '"module": "tdglnre.nre.net.network"' in text
                data = text.replace('"tdglnre.nre.net.network"', '"tdglnre.nre.network"').encode()
            zout.writestr(item, data)
    with zipfile.ZipFile(old) as z:
        assert '"module": "tdglnre.nre.network"' in z.read("config.json").decode()

    loaded = keras.models.load_model(old)
    x = np.arange(3, dtype="float32")[None]
    t = np.array([[[0.5, 3.0], [1.0, 9.0]]], dtype="float32")
    np.testing.assert_array_equal(np.asarray(loaded([x, t])), np.asarray(model([x, t])))
    assert json.loads(zipfile.ZipFile(old).read("config.json"))["class_name"] == "Functional"
