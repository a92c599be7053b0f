"""Ratio-estimation losses against hand-computed values (tdglnre.nre.net.losses)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("keras")

from tdglnre.nre.net.losses import (  # noqa: E402
    RatioLoss,
    balance_penalty,
    make_loss,
    n_theta_columns,
    nrec_per_sample,
    nre_per_sample,
)
from tdglnre.nre.pipeline.data import contrastive_theta  # noqa: E402

# rows: observations; column 0 joint logit, columns 1.. marginal logits
LOGITS = np.array([[2.0, -1.0, 0.5], [-0.5, 0.0, -2.0], [1.0, 3.0, -1.0]], dtype=np.float32)


def _sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _nre_by_hand(s: np.ndarray) -> float:
    rows = []
    for r in s:
        joint = -math.log(_sig(r[0]))
        marg = -sum(math.log(1.0 - _sig(v)) for v in r[1:]) / (len(r) - 1)
        rows.append(0.5 * (joint + marg))
    return sum(rows) / len(rows)


def _nrec_by_hand(s: np.ndarray, gamma: float) -> float:
    k = s.shape[1] - 1
    total = 0.0
    for r in s:
        r_exp = [math.exp(v) for v in r]
        q_joint = gamma * r_exp[0] / (k + gamma * sum(r_exp[:k]))
        q_marg = k / (k + gamma * sum(r_exp[1:]))
        total += -(gamma / (1 + gamma)) * math.log(q_joint) - (1 / (1 + gamma)) * math.log(q_marg)
    return total / len(s)


def test_nre_matches_hand_computation() -> None:
    loss = make_loss("nre")
    got = float(loss(np.zeros(3), LOGITS))
    assert got == pytest.approx(_nre_by_hand(LOGITS), rel=1e-6)
    assert np.asarray(nre_per_sample(LOGITS)).shape == (3,)


def test_bnre_adds_the_balance_penalty() -> None:
    sig = 1.0 / (1.0 + np.exp(-LOGITS.astype(float)))
    balance = (sig[:, 0].mean() + sig[:, 1:].mean() - 1.0) ** 2
    expected = _nre_by_hand(LOGITS) + 100.0 * balance
    got = float(make_loss("bnre")(np.zeros(3), LOGITS))
    assert got == pytest.approx(expected, rel=1e-6)
    assert float(balance_penalty(LOGITS)) == pytest.approx(balance, rel=1e-6)
    # lambda is configurable and lambda = 0 gives back nre
    assert float(make_loss("bnre", lam=0.0)(np.zeros(3), LOGITS)) == pytest.approx(
        _nre_by_hand(LOGITS), rel=1e-6)


@pytest.mark.parametrize("gamma", [1.0, 0.5, 3.0])
def test_nrec_matches_hand_computation(gamma: float) -> None:
    got = float(make_loss("nrec", gamma=gamma)(np.zeros(3), LOGITS))
    assert got == pytest.approx(_nrec_by_hand(LOGITS, gamma), rel=1e-5)


def test_nrec_with_one_class_and_gamma_one_is_nre() -> None:
    """K = 1, γ = 1: q(y=1|θ,x) = σ(s), so NRE-C reduces to balanced BCE (Miller et al.)."""
    s = LOGITS[:, :2]
    assert float(np.mean(nrec_per_sample(s, 1.0))) == pytest.approx(_nre_by_hand(s), rel=1e-6)


def test_losses_are_stable_for_large_logits() -> None:
    s = np.array([[80.0, -80.0, 60.0], [-70.0, 90.0, 0.0]], dtype=np.float32)
    for kind in ("nre", "bnre", "nrec"):
        assert np.isfinite(float(make_loss(kind)(np.zeros(2), s))), kind


def test_loss_config_round_trip() -> None:
    loss = RatioLoss("nrec", gamma=2.0, lam=5.0)
    clone = RatioLoss.from_config(loss.get_config())
    assert (clone.kind, clone.gamma, clone.lam) == ("nrec", 2.0, 5.0)


def test_theta_columns_and_errors() -> None:
    assert n_theta_columns("nre", 2) == 2
    assert n_theta_columns("nrec", 4) == 5
    with pytest.raises(ValueError, match="unknown loss"):
        n_theta_columns("foo", 2)
    with pytest.raises(ValueError, match="too small"):
        n_theta_columns("nre", 1)


@pytest.mark.parametrize("batch", [2, 3, 5, 16])
def test_contrastive_columns_never_repeat_the_own_theta(batch: int) -> None:
    theta = np.arange(batch, dtype=float)[:, None]
    cols = contrastive_theta(theta, 9)
    assert cols.shape == (batch, 9, 1)
    assert np.array_equal(cols[:, 0, 0], theta[:, 0])
    assert (cols[:, 1:, 0] != theta).all()
    if batch > 9:  # enough samples: all 9 columns of a row are distinct samples
        assert all(len(set(row)) == 9 for row in cols[:, :, 0])


def test_one_class_per_loss_over_a_shared_base_and_the_registry_feeds_the_cli() -> None:
    from tdglnre.cli.train import command
    from tdglnre.nre.net.losses import LOSS_CLASSES, BNRELoss, NRECLoss, NRELoss
    from tdglnre.nre.settings import LOSS_KINDS, LOSS_NAMES

    assert LOSS_CLASSES == {"nre": NRELoss, "bnre": BNRELoss, "nrec": NRECLoss}
    assert tuple(LOSS_KINDS) == LOSS_NAMES == tuple(LOSS_CLASSES)
    for kind, cls in LOSS_CLASSES.items():
        loss = make_loss(kind, lam=3.0, gamma=2.0)
        assert type(loss) is cls and isinstance(loss, RatioLoss) and loss.kind == kind
        assert type(RatioLoss(kind)) is cls  # the base builds the kind's class
        assert loss.name == f"{kind}_loss"
    # each class computes its own loss, matching the per-sample functions
    assert float(NRELoss()(np.zeros(3), LOGITS)) == pytest.approx(_nre_by_hand(LOGITS), rel=1e-6)
    assert float(NRECLoss(gamma=0.5)(np.zeros(3), LOGITS)) == pytest.approx(_nrec_by_hand(LOGITS, 0.5), rel=1e-5)
    assert float(BNRELoss(lam=0.0)(np.zeros(3), LOGITS)) == pytest.approx(_nre_by_hand(LOGITS), rel=1e-6)
    from tdglnre.errors import TDGLError

    with pytest.raises(ValueError, match="unknown loss 'foo'") as exc:
        make_loss("foo")
    assert isinstance(exc.value, TDGLError)  # the package's error, so the command line prints one Error: line
    with pytest.raises(ValueError, match="is the 'nre' loss, not 'nrec'"):
        NRELoss("nrec")
    # --loss offers exactly the registry's names
    (opt,) = [p for p in command.params if p.name == "loss"]
    assert tuple(opt.type.choices) == LOSS_NAMES


def test_a_model_saved_with_the_former_single_class_loads_its_kind(tmp_path) -> None:
    import keras

    # the config the former RatioLoss wrote: registered name "tdglnre>RatioLoss" with the kind in its config
    cfg = {"module": None, "class_name": "RatioLoss", "registered_name": "tdglnre>RatioLoss",
           "config": {"kind": "bnre", "lam": 7.0, "gamma": 1.0, "name": "bnre_loss"}}
    loss = keras.saving.deserialize_keras_object(cfg)
    from tdglnre.nre.net.losses import BNRELoss

    assert type(loss) is BNRELoss and loss.lam == 7.0
    new = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(make_loss("nrec", gamma=3.0)))
    assert (new.kind, new.gamma) == ("nrec", 3.0)
