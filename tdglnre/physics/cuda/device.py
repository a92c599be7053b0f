"""Device selection of the CUDA backend: is CUDA usable here, and which backend runs (issue 11).

``"cuda"`` needs numba-cuda (the ``cuda`` extra), a driver and a GPU, or
numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, used by the tests);
``"auto"`` picks a real GPU when one is usable and the CPU otherwise (never
the slow simulator), and says why it fell back (:func:`auto_fallback_reason`).
"""

from __future__ import annotations

import importlib.util
import logging

from numba import cuda

from ...errors import ConfigError
from ..options import DEVICES  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "tdglnre[cuda]"'


def simulator_enabled() -> bool:
    """True when ``numba.cuda`` is numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    return "simulator" in getattr(cuda.jit, "__module__", "")


def cuda_status() -> tuple[bool, str]:
    """Whether the CUDA backend can run here, and why (or why not).

    Returns
    -------
    usable, reason
        ``(True, "CUDA simulator ...")`` under numba's simulator, ``(True,
        "CUDA GPU <name>")`` with numba-cuda and a working GPU, otherwise
        ``False`` and one line naming what is missing and how to get it.
    """
    if simulator_enabled():
        return True, "CUDA simulator (NUMBA_ENABLE_CUDASIM=1; slow, for tests)"
    if importlib.util.find_spec("numba_cuda") is None:
        return False, f"numba-cuda is not installed; install the CUDA extra with {INSTALL_HINT}"
    try:
        ok = bool(cuda.is_available())
    except Exception as exc:  # a broken driver or an import-time failure of numba-cuda
        return False, f"numba-cuda cannot initialise CUDA ({exc}); check the NVIDIA driver and {INSTALL_HINT}"
    if not ok:
        return False, ("no usable CUDA GPU: numba-cuda found no NVIDIA driver or GPU "
                       "(needs an NVIDIA GPU with its driver; nvidia-smi must list it)")
    return True, f"CUDA GPU {gpu_name()}"


def gpu_name() -> str:
    """Name of the current CUDA device ("CUDA simulator" under the simulator)."""
    if simulator_enabled():
        return "CUDA simulator"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def auto_fallback_reason() -> str | None:
    """Why ``device="auto"`` runs on the CPU here (one line), or None when it picks CUDA."""
    ok, why = cuda_status()
    if ok and not simulator_enabled():
        return None
    return why if not ok else "the CUDA simulator is never chosen by auto"


def resolve_device(device: str) -> str:
    """Map ``"cpu" | "cuda" | "auto"`` to the backend that will run.

    Raises
    ------
    ConfigError
        Unknown device, or ``"cuda"`` where it cannot run (the message says what
        is missing and how to install it).
    """
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {list(DEVICES)}, got {device!r}")
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        require_cuda()
        return "cuda"
    why = auto_fallback_reason()
    if why is None:
        return "cuda"
    log.info("device auto: using the CPU (%s)", why)
    return "cpu"


def require_cuda() -> None:
    """Raise :class:`ConfigError` (what is missing, how to install it) where CUDA cannot run."""
    ok, why = cuda_status()
    if not ok:
        raise ConfigError(f"device 'cuda' is not usable: {why}")
