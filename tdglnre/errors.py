"""Exception hierarchy of tdglnre.

Every error the library raises on purpose derives from :class:`TDGLError`, so
the command line can show it as a one-line message instead of a traceback.
"""

from __future__ import annotations


class TDGLError(Exception):
    """Base class of all errors raised deliberately by tdglnre."""


def reject_unknown_keys(cls, d, what: str, error: type[Exception]) -> None:
    """Raise ``error`` if ``d`` has keys that are not fields of dataclass ``cls``; lists the valid ones.

    ``what`` names the keys in the message ("config key", "training setting").
    """
    import dataclasses

    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise error(f"unknown {what}(s) {unknown}; valid keys: {names}")


class ConfigError(TDGLError, ValueError):
    """A configuration or parameter value is invalid; the message says why."""


class ResourceError(TDGLError, MemoryError):
    """A request needs more memory (or another resource) than the machine has; the message says how much."""


class DivergenceError(TDGLError, FloatingPointError):
    """The explicit solver produced NaN/Inf or a grid-scale oscillation for one sample.

    Attributes
    ----------
    sample : int
        Global index of the diverging sample.
    step : int
        Time step at which the failure was detected.
    params : dict
        The sample's parameters (eta, n_v, nu).
    reason : str
        What was detected: non-finite values, a staggered (checkerboard)
        density or a step-to-step oscillation, with the measured ratio.
    """

    #: Reason of errors built without one (NaN/Inf, the original check).
    NONFINITE = "NaN/Inf"

    def __init__(self, sample: int, step: int, params: dict, reason: str = NONFINITE):
        self.sample = int(sample)
        self.step = int(step)
        self.params = dict(params)
        self.reason = str(reason)
        ptxt = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        super().__init__(
            f"solver diverged ({self.reason}) for sample {self.sample} at step {self.step} "
            f"with {ptxt}; reduce dt or check the parameters"
        )

    def __reduce__(self):
        # picklable, so the error can cross process boundaries (Dask workers)
        return (type(self), (self.sample, self.step, self.params, self.reason))
