"""Import and configure TensorFlow once: environment, log noise, thread pools.

Every module of :mod:`tdglnre.nre` that needs TensorFlow or Keras calls
:func:`ensure_tensorflow` before ``import keras``/``import tensorflow``; this
leaf module itself imports neither at module level, so importing it is cheap.

Log noise: on CPU-only machines TensorFlow prints absl/``cudart_stub`` lines
while its shared libraries load and ``failed call to cuInit: ... (303)`` when
it looks for a GPU. Unless :func:`set_verbosity` was given 2 or more
(``tdglnre -vv``), the first import runs with the process's stderr sent to
``/dev/null`` and ``TF_CPP_MIN_LOG_LEVEL`` defaults to 3 (C++ errors that
matter reach Python as exceptions anyway). An explicit ``TF_CPP_MIN_LOG_LEVEL``
in the environment is respected.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Iterator

log = logging.getLogger(__name__)

_state: dict[str, Any] = {"verbose": 0, "imported": False}


def set_verbosity(verbose: int) -> None:
    """Verbosity of TensorFlow's own logging (``tdglnre -v`` count).

    Parameters
    ----------
    verbose
        0 or 1: silence TensorFlow's C++ and absl start-up lines; 2 or more:
        show them. Takes full effect only before TensorFlow is first imported.
    """
    _state["verbose"] = int(verbose)


@contextlib.contextmanager
def _stderr_silenced(enabled: bool) -> Iterator[None]:
    """Send file descriptor 2 to /dev/null inside the block (C++ writes too)."""
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):  # pragma: no cover - closed or replaced stderr
        pass
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover - no fd 2
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def default_threads() -> int:
    """Intra-op threads: ``TDGLNRE_TF_THREADS`` or the CPU cores this process may use."""
    env = os.environ.get("TDGLNRE_TF_THREADS")
    if env:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def ensure_tensorflow(threads: int | None = None) -> Any:
    """Import TensorFlow (and Keras) configured for this package; return ``tensorflow``.

    Parameters
    ----------
    threads
        Intra-op threads; default :func:`default_threads`. Inter-op
        parallelism is 2 (the input pipeline and the training step overlap).
        TensorFlow accepts thread settings only before its runtime starts;
        later calls keep the running settings.

    Returns
    -------
    module
        The ``tensorflow`` module.
    """
    quiet = _state["verbose"] < 2
    if not _state["imported"]:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if quiet else "0")
        with _stderr_silenced(quiet and "tensorflow" not in sys.modules):
            import keras  # noqa: F401  (loads the remaining shared libraries)
            import tensorflow as tf
        level = logging.ERROR if quiet else logging.DEBUG
        # "retracing" warnings when several estimators are loaded; absl's Python logger
        tf.get_logger().setLevel(level)
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR if quiet else absl.logging.DEBUG)
        except ImportError:  # pragma: no cover - absl ships with TensorFlow
            pass
        _state["imported"] = True
    import tensorflow as tf

    n = default_threads() if threads is None else int(threads)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(2)
    except RuntimeError:
        log.debug("TensorFlow runtime already initialised; keeping its thread settings")
    return tf
