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
train       :func:`.train.train`           ``nre.fit.training.TrainResult``          :func:`.train.train`
                                           (writes the model directory it is
                                           given, and its ``ood.json``)
posterior   :func:`.posterior.posterior`   :class:`.posterior.PosteriorResult`       :func:`.posterior.run_posterior`
                                           (``.save()``, ``.plot()``, ``.report()``)
calibrate   :func:`.calibrate.calibrate`   :class:`.calibrate.CalibrationReport`     :func:`.calibrate.run_calibration`
                                           (``.save()``, ``.plot()``)
temper      :func:`.temper.temper`         the ``tempering`` record (writes it into  :func:`.temper.temper`
                                           the model's ``metadata.json``)
structure   :func:`.structure.structure`   :class:`.structure.StructureResult`       :func:`.structure.run_structure`
                                           (``.save()``, ``.plot()``)
hessian     ``analysis.hessian.hessian``   ``analysis.hessian.HessianResult``        :func:`.hessian.run_hessian`
                                           (``.save()``, ``.plot()``, ``.report()``)  (-> :class:`.hessian.HessianRun`)
demo        :func:`.demo.run_demo`         summary dict (writes its directory)       :func:`.demo.run_demo`
==========  =============================  ========================================  ===================================

``hessian`` in memory is the analysis function itself (re-exported by
:mod:`.hessian`; :class:`~tdglnre.analysis.hessian.HessianOptions` checks its
settings on construction). ``tdglnre bench`` and ``tdglnre inspect`` call no
workflow: :func:`tdglnre.physics.bench.run_benchmark` and the ensemble reader.

Observations for the posterior (``load_model``, ``observation_from_*``,
``simulate_observation``, ``image_to_input``) live in :mod:`.observations`;
it reads and resamples images with :mod:`tdglnre.instrument.images`
(``load_image``, ``crop_resample``) and measures with
:mod:`tdglnre.instrument.model`. Output directories (refuse to clobber, write
atomically, remove what a killed run left) live in :mod:`._output`.

Workflows hold no numerics: NumPy only to build, convert and save arrays
(tests/test_architecture.py, ``test_workflows_hold_no_numerics``).

Library errors name Python arguments in backticks (`out_dir`); the CLI maps
them to its flags.
"""
