"""Workflows: the layer between the library and the command line.

Each workflow takes typed arguments, checks them once at its entry (errors are
:class:`~tdglnre.errors.ConfigError` naming the argument) and returns an
in-memory result; a ``run_*`` companion takes the command's plain arguments
and writes the output directory. The ``tdglnre`` commands parse flags and call
the ``run_*`` (or the file-writing) function through
``cli._flags.run_library_call``; the top-level API (``import tdglnre as tg``)
re-exports the in-memory ones.

==========  =============================  ========================================  ===================================
workflow    in memory (``tg.``)            result                                    command calls
==========  =============================  ========================================  ===================================
generate    :func:`.generate.generate`     :class:`.generate.GenerateResult`         :func:`.generate.generate`
                                           (``.open()``, ``.plot()``; writes the
                                           HDF5 file it is given)
train       :func:`.train.train`           ``nre.training.TrainResult`` (writes the  :func:`.train.train`
                                           model directory it is given)
posterior   :func:`.posterior.posterior`   :class:`.posterior.PosteriorResult`       :func:`.posterior.run_posterior`
                                           (``.save()``, ``.plot()``, ``.report()``)
calibrate   :func:`.calibrate.calibrate`   :class:`.calibrate.CalibrationReport`     :func:`.calibrate.run_calibration`
                                           (``.save()``, ``.plot()``)
structure   :func:`.structure.structure`   :class:`.structure.StructureResult`       :func:`.structure.run_structure`
                                           (``.save()``, ``.plot()``)
hessian     :func:`.hessian.hessian`       ``analysis.hessian.HessianResult``        :func:`.hessian.run_hessian`
                                           (``.save()``, ``.plot()``, ``.report()``)  (-> :class:`.hessian.HessianRun`)
demo        :func:`.demo.run_demo`         summary dict (writes its directory)       :func:`.demo.run_demo`
==========  =============================  ========================================  ===================================

Observations for the posterior (``load_model``, ``observation_from_*``,
``simulate_observation``, ``load_image``, ``image_to_input``) live in
:mod:`.observations`; output directories (refuse to clobber, write atomically,
remove what a killed run left) in :mod:`._output`.

Library errors name Python arguments in backticks (`out_dir`); the CLI maps
them to its flags.
"""
