"""Workflows: the layer between the library and the command line.

Each workflow takes typed arguments and returns an in-memory result with
``.save(dir)`` and ``.plot()``; the ``tdglnre`` commands are thin wrappers that
parse flags and call them, and the top-level API (``import tdglnre as tg``)
re-exports them.

==============  ==========================================  =======================
workflow        function                                    result
==============  ==========================================  =======================
generate        :func:`.generate.generate`                  :class:`.generate.GenerateResult`
train           :func:`.train.train`                        ``nre.training.TrainResult``
posterior       :func:`.posterior.posterior`                :class:`.posterior.PosteriorResult`
calibrate       :func:`.calibrate.calibrate`                :class:`.calibrate.CalibrationReport`
hessian         :func:`.hessian.hessian`                    ``analysis.hessian.HessianResult``
demo            :func:`.demo.run_demo`                      summary dict
==============  ==========================================  =======================

Library errors name Python arguments in backticks (`out_dir`); the CLI maps
them to its flags.
"""
