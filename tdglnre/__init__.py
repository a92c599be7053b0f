"""tdglnre: two-band TDGL simulation and neural ratio estimation of Ginzburg–Landau couplings.

The Python API (docs/api.md) mirrors the command line, with results in memory::

    import tdglnre as tg

    ens = tg.generate("quick", n_samples=2000, seed=0, out="train.h5")
    tg.train("train.h5", "model/", epochs=30)
    model = tg.load_model("model/")
    post = tg.posterior(model, tg.simulate_observation(model, eta=0.8, n_v=4, seed=1))
    post.summary(); post.plot(); post.save("post/")
    rep = tg.calibrate(model, "test.h5"); rep.summary_lines()
    tg.temper("model/")   # posterior temperature fitted on the validation split
    res = tg.hessian(tg.FromParams(N=32, L=16, eta=0.5, n_v=4))

Names resolve lazily: ``import tdglnre`` loads neither numba nor TensorFlow;
the physics layer never imports TensorFlow, which is imported only inside
:mod:`tdglnre.nre` when training or evaluating a network.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._lazy import lazy_getattr  # noqa: E402
from .errors import ConfigError, DivergenceError, TDGLError  # noqa: E402

_NAMES = {
    # physics
    "SimConfig": ".physics.config",
    "SimulationResult": ".physics.solver",
    "simulate": ".physics.backends",
    "SolverOptions": ".physics.options",
    # data
    "Prior": ".io.priors",
    "load_preset": ".io.presets",
    "open_ensemble": ".io.ensemble",
    # workflows
    "generate": ".workflows.generate",
    "GenerateResult": ".workflows.generate",
    "train": ".workflows.train",
    "load_model": ".workflows.observations",
    "Observation": ".workflows.observations",
    "observation_from_ensemble": ".workflows.observations",
    "observation_from_file": ".workflows.observations",
    "simulate_observation": ".workflows.observations",
    "posterior": ".workflows.posterior",
    "PosteriorResult": ".workflows.posterior",
    "calibrate": ".workflows.calibrate",
    "CalibrationReport": ".workflows.calibrate",
    "temper": ".workflows.temper",
    "hessian": ".workflows.hessian",
    "HessianOptions": ".workflows.hessian",
    "HessianResult": ".workflows.hessian",
    "FromParams": ".workflows.hessian",
    "FromPreset": ".workflows.hessian",
    "FromEnsemble": ".workflows.hessian",
    "structure": ".workflows.structure",
    "StructureResult": ".workflows.structure",
    "run_demo": ".workflows.demo",
    # posterior grids
    "Grid": ".nre.infer.posterior",
    "GridPosterior": ".nre.infer.posterior",
}

__all__ = ["__version__", "ConfigError", "DivergenceError", "TDGLError", *_NAMES]

__getattr__ = lazy_getattr(__name__, _NAMES, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
