"""Neural ratio estimation: Keras two-tower network, tf.data pipeline, training.

This is the only sub-package that imports TensorFlow/Keras. Importing
``tdglnre.nre`` itself is cheap: the public names below are resolved lazily, so
``import tdglnre.nre`` does not start TensorFlow until a name is used.

Public API
----------
``train(data_path, out_dir, **settings) -> TrainResult``
    Train a ratio estimator on an HDF5 ensemble (``tdglnre train``).
``load_estimator(model_dir) -> RatioEstimator``
    Load a trained model with its metadata for inference.
``NetworkConfig``
    Widths and depth of the two towers and the head.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "train": "fit.training",
    "TrainResult": "fit.training",
    "TrainSettings": "settings",
    "load_estimator": "infer.model_io",
    "RatioEstimator": "infer.model_io",
    "ModelMismatchError": "infer.model_io",
    "NetworkConfig": "settings",
    "build_model": "net.network",
    "make_loss": "net.losses",
    "TrainingError": "settings",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tdglnre.nre' has no attribute {name!r}")
    import importlib

    mod = importlib.import_module(f".{module}", __name__)
    return getattr(mod, name)


def configure_tensorflow(threads: int | None = None) -> None:
    """Import TensorFlow configured for this package (see :mod:`.tf_setup`).

    Parameters
    ----------
    threads
        Intra-op threads; default: the CPU cores this process may use.
    """
    from .tf_setup import ensure_tensorflow

    ensure_tensorflow(threads)
