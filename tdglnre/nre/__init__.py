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

import os
from typing import Any

# Quiet TensorFlow's C++ logging and pin Keras to the TensorFlow backend. These
# must be set before TensorFlow is first imported, which happens only inside
# this sub-package.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

_LAZY = {
    "train": "training",
    "TrainResult": "training",
    "TrainSettings": "training",
    "load_estimator": "model_io",
    "RatioEstimator": "model_io",
    "ModelMismatchError": "model_io",
    "NetworkConfig": "network",
    "build_model": "network",
    "make_loss": "losses",
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
    """Set TensorFlow's thread pools once, before any op runs.

    Parameters
    ----------
    threads
        Intra-op threads; default: the number of CPU cores this process may
        use (``os.sched_getaffinity``), which is what a shared 2-core machine
        should use. Inter-op parallelism is kept at 2 (the tf.data producer
        and the training step overlap).

    Notes
    -----
    TensorFlow accepts thread settings only before its runtime initialises;
    later calls are ignored silently.
    """
    import logging

    import tensorflow as tf

    # TensorFlow's Python logger warns about "retracing" whenever several
    # estimators (each with its own compiled functions) are loaded; keep quiet.
    tf.get_logger().setLevel(logging.ERROR)
    if threads is None:
        env = os.environ.get("TDGLNRE_TF_THREADS")
        if env:
            threads = int(env)
        else:
            try:
                threads = len(os.sched_getaffinity(0))
            except AttributeError:  # pragma: no cover - non-Linux
                threads = os.cpu_count() or 1
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(2)
    except RuntimeError:
        pass  # runtime already initialised: keep its settings
