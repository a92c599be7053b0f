"""Ratio-estimation losses on a (B, K') matrix of logits.

Every loss receives ``logits`` of shape (B, K'): row i belongs to observation
x_i, column 0 holds s(θ_i, x_i) (the *joint* pair) and columns 1… hold
s(θ_j, x_i) for contrastive θ_j of other samples of the batch (*marginal*
pairs, drawn from p(θ) p(x) because the batch is shuffled). The network output
s is an estimate of log r(θ, x) = log p(x|θ)/p(x) (+ const for ``nre``/``bnre``
off the optimum, exactly for ``nrec`` at the optimum).

``nre``
    Binary cross-entropy, joint vs marginal, with equal class weights
    (Hermans et al. 2020)::

        L = ½ [ −mean_i log σ(s_i0) − mean_{i,k≥1} log σ(−s_ik) ]

    With K' = K columns, K−1 marginal pairs per x are used (K = 2 is the
    classic one-to-one NRE).
``bnre``
    Balanced NRE (Delaunoy et al. 2022): the ``nre`` loss plus
    λ (mean_i σ(s_i0) + mean_{i,k≥1} σ(s_ik) − 1)², λ = 100 by default.
``nrec``
    Contrastive NRE (Miller et al. 2022), K classes and class ratio γ.
    K' = K + 1 columns: the *joint* set is {θ_i, θ'_1..θ'_{K−1}} (columns
    0..K−1, true θ at position 0) and the *marginal* set is
    {θ'_1..θ'_K} (columns 1..K), so for r_k = exp(s_k)::

        log q(y=true | joint set) = log γ + s_0 − log(K + γ Σ_{k<K} r_k)
        log q(y=0    | marg. set) = log K     − log(K + γ Σ_{k≥1} r_k)
        L = −γ/(1+γ) mean log q(y=true|joint) − 1/(1+γ) mean log q(y=0|marg)

    At the optimum s = log r exactly (no free constant).

The ``y_true`` argument Keras passes is ignored (the labels are implied by the
column layout).

One Keras class per loss (:class:`NRELoss`, :class:`BNRELoss`,
:class:`NRECLoss`) over the shared base :class:`RatioLoss`;
:data:`LOSS_CLASSES` maps the names of :data:`tdglnre.nre.settings.LOSS_KINDS`
(the list ``--loss`` offers) to them. ``RatioLoss("nrec", ...)`` and models
saved with the former single ``RatioLoss`` class still give the right one.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from ..settings import LOSS_NAMES, TrainSettingsError, n_theta_columns
from ..tf_setup import ensure_tensorflow

ensure_tensorflow()

import keras  # noqa: E402
from keras import ops  # noqa: E402

_PACKAGE = "tdglnre"

def _log_sigmoid(z: Any) -> Any:
    return -ops.softplus(-z)


def nre_per_sample(logits: Any) -> Any:
    """Per-row ``nre`` loss (B,); its mean is the batch loss."""
    logits = ops.cast(logits, "float32")
    joint = -_log_sigmoid(logits[:, 0])
    marg = -ops.mean(_log_sigmoid(-logits[:, 1:]), axis=1)
    return 0.5 * (joint + marg)


def balance_penalty(logits: Any) -> Any:
    """(mean σ(s_joint) + mean σ(s_marg) − 1)², a scalar."""
    logits = ops.cast(logits, "float32")
    d = ops.mean(ops.sigmoid(logits[:, 0])) + ops.mean(ops.sigmoid(logits[:, 1:])) - 1.0
    return ops.square(d)


def nrec_per_sample(logits: Any, gamma: float = 1.0) -> Any:
    """Per-row ``nrec`` loss (B,) for K = K' − 1 classes."""
    logits = ops.cast(logits, "float32")
    k = logits.shape[1] - 1
    if k is None or k < 1:
        raise ValueError("nrec needs at least 2 logit columns")
    log_k = math.log(k)
    log_g = math.log(gamma)
    b = ops.shape(logits)[0]
    const = ops.full((b, 1), log_k, dtype="float32")
    joint_set = ops.concatenate([const, log_g + logits[:, :k]], axis=1)
    marg_set = ops.concatenate([const, log_g + logits[:, 1:]], axis=1)
    log_q_joint = log_g + logits[:, 0] - ops.logsumexp(joint_set, axis=1)
    log_q_marg = log_k - ops.logsumexp(marg_set, axis=1)
    return -(gamma / (1.0 + gamma)) * log_q_joint - (1.0 / (1.0 + gamma)) * log_q_marg


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RatioLoss(keras.losses.Loss):
    """Shared base of the ratio-estimation losses; ``RatioLoss(kind, ...)`` builds the class of ``kind``.

    Parameters
    ----------
    kind
        ``"nre"``, ``"bnre"`` or ``"nrec"`` (:data:`LOSS_CLASSES`); a subclass
        takes its own kind or None.
    lam
        Balancing penalty weight λ of ``bnre`` (kept by every kind, used by ``bnre``).
    gamma
        Class-ratio γ of ``nrec`` (kept by every kind, used by ``nrec``).
    """

    kind: ClassVar[str] = ""

    def __new__(cls, kind: str | None = None, *args: Any, **kwargs: Any) -> "RatioLoss":
        if cls is RatioLoss:  # the base as a factory (and models saved when it was the only class)
            cls = loss_class(kind if kind is not None else "nre")
        return super().__new__(cls)

    def __init__(self, kind: str | None = None, lam: float = 100.0, gamma: float = 1.0,
                 name: str | None = None, **kwargs: Any):
        if kind is not None and kind != self.kind:
            raise TrainSettingsError(f"{type(self).__name__} is the {self.kind!r} loss, not {kind!r}")
        if lam < 0:
            raise TrainSettingsError(f"bnre penalty lambda must be >= 0, got {lam}")
        if not gamma > 0:
            raise TrainSettingsError(f"nrec gamma must be > 0, got {gamma}")
        kwargs.pop("reduction", None)
        super().__init__(name=name or f"{self.kind}_loss", reduction="sum_over_batch_size", **kwargs)
        self.lam = float(lam)
        self.gamma = float(gamma)

    def per_sample(self, logits: Any) -> Any:
        """The loss of each row of the (B, K') logits, shape (B,) (or a scalar added to every row)."""
        raise NotImplementedError

    def call(self, y_true: Any, y_pred: Any) -> Any:  # noqa: ARG002 - labels implied
        return self.per_sample(y_pred)

    def get_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "lam": self.lam, "gamma": self.gamma, "name": self.name}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class NRELoss(RatioLoss):
    """``nre``: binary cross-entropy, joint vs marginal, equal class weights."""

    kind: ClassVar[str] = "nre"

    def per_sample(self, logits: Any) -> Any:
        return nre_per_sample(logits)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BNRELoss(RatioLoss):
    """``bnre``: the ``nre`` loss plus λ × the balance penalty."""

    kind: ClassVar[str] = "bnre"

    def per_sample(self, logits: Any) -> Any:
        return nre_per_sample(logits) + self.lam * balance_penalty(logits)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class NRECLoss(RatioLoss):
    """``nrec``: contrastive NRE with K = K' − 1 classes and class ratio γ."""

    kind: ClassVar[str] = "nrec"

    def per_sample(self, logits: Any) -> Any:
        return nrec_per_sample(logits, self.gamma)


#: The Keras class of each loss, by the names of :data:`tdglnre.nre.settings.LOSS_KINDS`.
LOSS_CLASSES: dict[str, type[RatioLoss]] = {c.kind: c for c in (NRELoss, BNRELoss, NRECLoss)}
if tuple(LOSS_CLASSES) != LOSS_NAMES:  # pragma: no cover - a programming error
    raise RuntimeError(f"loss classes {tuple(LOSS_CLASSES)} do not match the loss names {LOSS_NAMES}")


def loss_class(kind: str) -> type[RatioLoss]:
    """The class of the loss named ``kind`` (a TrainSettingsError, also a ValueError, naming the valid ones)."""
    cls = LOSS_CLASSES.get(kind)
    if cls is None:
        raise TrainSettingsError(f"unknown loss {kind!r}; choose one of {LOSS_NAMES}")
    return cls


def make_loss(kind: str, *, lam: float = 100.0, gamma: float = 1.0) -> RatioLoss:
    """The loss object for ``kind`` (see the module docstring)."""
    return loss_class(kind)(lam=lam, gamma=gamma)


__all__ = ["RatioLoss", "NRELoss", "BNRELoss", "NRECLoss", "LOSS_CLASSES", "loss_class", "make_loss",
           "n_theta_columns", "nre_per_sample", "balance_penalty", "nrec_per_sample"]
