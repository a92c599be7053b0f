"""Soft-mode Hessian spectra of one state (see docs/hessian.md).

>>> res = tg.hessian(tg.FromParams(N=32, L=16, eta=0.5, n_v=4), tg.HessianOptions(n_eig=20))
>>> res.report(); res.save("hess/"); res.plot()

The computation lives in :mod:`tdglnre.analysis.hessian`; this module is the
workflow entry point the API and the CLI share.
"""

from __future__ import annotations

from ..analysis.hessian import FromEnsemble, FromParams, FromPreset, HessianOptions, HessianResult, hessian

__all__ = ["hessian", "HessianOptions", "HessianResult", "FromEnsemble", "FromParams", "FromPreset"]
