"""Analysis of simulated states: Hessian soft-mode spectra (:mod:`.hessian`, :mod:`.slq`)."""

from __future__ import annotations

from .hessian import Hessian, HessianOptions, HessianResult, analyze, load, save  # noqa: F401

__all__ = ["Hessian", "HessianOptions", "HessianResult", "analyze", "load", "save"]
