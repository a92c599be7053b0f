"""The regression head of the ratio estimator (``NetworkConfig(regression=True)``, ``tdglnre train --regression``).

Why (issue 20, docs/nre.md "Regression head"): on the drag presets the
ratio network read η about 2× worse than rejection ABC with local-linear
adjustment on 13 summaries. Two causes, the second measured:

* a sharp posterior needs logits of order 10²–10³ for θ's a few widths away,
  which the ReLU head can only build up slowly with Adam steps of 1e-3;
* a network fitted by gradient descent on a few thousand simulations reads η
  from the summaries worse (an MLP on them: MAE 0.022) than a least-squares fit
  quadratic in them (0.0145), which is what ABC's adjustment exploits.

So the head is given both. The encoder's output gains an estimate θ̂(x) (scaled
to [−1, 1] like the θ tower's input)::

    θ̂(x) = β · q(g(x))  +  Dense(h_x)                 (g: the summary branch's standardised summaries of the
                                                        last snapshot and the mean densities of the two before
                                                        it, :func:`earlier_densities`; q: 1, g, g_i g_j, i ≤ j)

β is a ridge least-squares fit on the training inputs, made once before
training (:func:`fit_regression_head`, like the branch statistics) and kept
fixed; the Dense correction starts at zero and is trained with an auxiliary
squared error (:class:`RegressionLoss`) beside the ratio loss. The ratio head
sees the offsets d = θ̂(x) − θ of every scored θ and adds a Student-t term
−½ (ν+1) Σᵢ log(1 + exp(uᵢ(x)) dᵢ² / ν) (ν = 3; Gaussian near θ̂, −½ Σᵢ exp(uᵢ) dᵢ², with heavy tails) to
its logit, u(x) = b + 2 tanh(W·[h_x ‖ θ̂]) (:class:`RegressionOffsets`), whose log
precisions u start at the fit's residual variances: the estimator starts where
a summary-regression posterior is and the ratio loss trains it from there
(calibration stays the ratio loss's job: the terms are only a parametrisation).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ..tf_setup import ensure_tensorflow

ensure_tensorflow()

import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

_PACKAGE = "tdglnre"

#: Weight of the auxiliary squared error of θ̂ (θ scaled to [−1, 1]) beside the ratio loss.
REGRESSION_WEIGHT = 1.0
#: Width, in scaled θ, of the Student-t term before :func:`fit_regression_head` sets it from the fit's residuals.
REGRESSION_SIGMA0 = 0.1
#: Degrees of freedom of the Student-t term. A Gaussian term (−½ exp(u) d²) cost an observation whose θ̂ is 5
#: widths off a logit of −12, so the few such among 300 validation samples made the validation loss jump by
#: 0.03–0.05 between epochs and early stopping ended runs at 0.085–0.104, where runs with this term reached
#: 0.068–0.078 (drag-quick); with 3 degrees of freedom the cost of an outlier grows like log d, while near θ̂ the
#: term is the same Gaussian.
STUDENT_DOF = 3.0
#: Largest change of a log precision with x: exp(±2), a factor 7.4 either way of the fitted one — a safeguard so
#: that the unnormalised h_x cannot move a precision arbitrarily far (not a measured fix).
PRECISION_SPAN = 2.0
#: The Student-t term covers a parameter only where the fit reads it to this residual std (scaled θ: 1/8 of the
#: prior's width) or better; elsewhere (ν on drag-quick: 0.44) a wide heavy-tailed term widened the network's own
#: posterior of it (ν MAE 0.0122 → 0.016–0.020) and the head MLP alone reads it.
TAIL_MAX_STD = 0.25
#: Ridge penalty of the least-squares fit, relative to the mean diagonal of the normal matrix. Chosen on a
#: held-out split of drag-quick's training set (2400/600, seed 770000): held-out η MAE of the fit with the
#: earlier densities 0.0111 at 1e-5 against 0.0157 at 1e-3 (the last snapshot alone: 0.0143 against 0.0177).
#: A cubic fit read 0.0101 held out but 0.0060 in sample (1140 terms): the head then trusted θ̂ on training
#: pairs more than it deserved elsewhere (validation loss 0.16 against 0.06 in training); the quadratic's
#: in-sample error is within 9 % of its held-out one.
RIDGE = 1e-5
#: Snapshots before the last whose mean densities join the regression (:func:`earlier_densities`).
REGRESSION_EARLIER = 2
#: Most training inputs the least-squares fit reads.
FIT_SAMPLES = 16384


def offsets(z: Any, n_params: int, dx: int) -> Any:
    """d = θ̂(x) − θ_s of pair tensors z = [h_x ‖ θ̂ ‖ h_θ ‖ θ_s] (..., D): θ̂ ends at ``dx``, θ_s ends z."""
    return z[..., dx - n_params:dx] - z[..., -n_params:]


def quadratic_features(f: Any, xp: Any = np) -> Any:
    """[1, f, f_i f_j (i ≤ j)] of features f (B, D) → (B, 1 + D + D(D+1)/2); ``xp``: numpy or keras.ops."""
    d = int(f.shape[-1])
    i, j = np.triu_indices(d)
    if xp is np:
        f = np.asarray(f, dtype=np.float64)
        return np.concatenate([np.ones((len(f), 1)), f, f[:, i] * f[:, j]], axis=1)
    ones = ops.ones_like(f[:, :1])
    return ops.concatenate([ones, f, ops.take(f, i, axis=1) * ops.take(f, j, axis=1)], axis=1)


def earlier_densities(names: Sequence[str], n_snapshots: int, back: int = REGRESSION_EARLIER) -> list[int]:
    """Columns of the summary branch's (B, s·D) output holding ⟨ρ₁⟩, ⟨ρ₂⟩ of the ``back`` snapshots before the last.

    η sets the growth rate of the quench, so the densities' change between late snapshots carries it beyond
    what the last snapshot alone shows (docs/nre.md, "Regression head"). Fewer snapshots give fewer columns.
    """
    d = len(names)
    means = [k for k, n in enumerate(names) if n in ("mean_rho1", "mean_rho2")]
    first = max(0, n_snapshots - 1 - int(back))
    return [s * d + k for s in range(first, n_snapshots - 1) for k in means]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SummaryRegression(layers.Layer):
    """Standardised summaries (B, s·D) → β·q(g) (B, P): a fixed quadratic regression of scaled θ.

    g is the last snapshot's D summaries followed by the columns ``extra`` of the input (the earlier snapshots'
    mean densities, :func:`earlier_densities`); q = [1, g, g_i g_j] (:func:`quadratic_features`). Model files
    written before ``extra`` existed load without it, which is what they were. β is a non-trainable weight,
    zero until :func:`fit_regression_head` sets it.
    """

    def __init__(self, n_per_snapshot: int, n_params: int, extra: Sequence[int] = (), **kwargs: Any):
        super().__init__(**kwargs)
        self.n_per_snapshot, self.n_params = int(n_per_snapshot), int(n_params)
        self.extra = [int(k) for k in extra]
        if self.n_per_snapshot < 1 or self.n_params < 1:
            raise ValueError("need at least one summary and one parameter")

    @property
    def n_terms(self) -> int:
        d = self.n_per_snapshot + len(self.extra)
        return 1 + d + d * (d + 1) // 2

    def inputs_of(self, f: Any, xp: Any = np) -> Any:
        """g (B, D + len(extra)) of the summaries f (B, s·D): the last snapshot's, then the extra columns."""
        last = f[:, -self.n_per_snapshot:]
        if not self.extra:
            return last
        if xp is np:
            return np.concatenate([np.asarray(last), np.asarray(f)[:, self.extra]], axis=1)
        return ops.concatenate([last, ops.take(f, np.array(self.extra, dtype=np.int64), axis=1)], axis=1)

    def build(self, input_shape: Any) -> None:
        self.beta = self.add_weight(shape=(self.n_terms, self.n_params), initializer="zeros", trainable=False,
                                    name="beta")

    def call(self, f: Any) -> Any:
        return ops.matmul(quadratic_features(self.inputs_of(f, ops), ops), self.beta)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (input_shape[0], self.n_params)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(n_per_snapshot=self.n_per_snapshot, n_params=self.n_params, extra=list(self.extra))
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RegressionOffsets(layers.Layer):
    """The head's view of a pair: z = [h_x ‖ θ̂(x) ‖ h_θ ‖ θ_s] (B, K, D) → (features, tails).

    ``d = θ̂(x) − θ_s`` are the offsets of the scored θ (scaled to [−1, 1]) from the encoder's estimate. The
    features (B, K, 2P) are d and d² (inputs of the head MLP); ``tails`` (B, K, 1) is the Student-t term
    −½ (ν+1) Σᵢ log(1 + exp(uᵢ(x)) dᵢ² / ν) (ν = :data:`STUDENT_DOF`), whose log precisions u(x) = b + 2 tanh(W·[h_x ‖ θ̂]) start at b = log(1/σ²)
    (σ = :data:`REGRESSION_SIGMA0`, then the fit's residual widths) with W = 0: the observation moves a
    precision by at most a factor e² (:data:`PRECISION_SPAN`) from b, which training also moves. A non-trainable
    ``mask`` leaves out the parameters the fit reads worse than :data:`TAIL_MAX_STD`.

    Parameters
    ----------
    n_params
        P, the inferred parameters.
    dx
        Width of [h_x ‖ θ̂] (the encoder output); θ̂ is its last P entries, θ_s the last P of z.
    """

    def __init__(self, n_params: int, dx: int, sigma0: float = REGRESSION_SIGMA0, **kwargs: Any):
        super().__init__(**kwargs)
        self.n_params, self.dx, self.sigma0 = int(n_params), int(dx), float(sigma0)
        if not 0 < self.n_params < self.dx:
            raise ValueError(f"need 0 < n_params < dx, got {self.n_params} and {self.dx}")

    def build(self, input_shape: Any) -> None:
        p = self.n_params
        self.kernel = self.add_weight(shape=(self.dx, p), initializer="zeros", name="log_precision_kernel")
        self.bias = self.add_weight(shape=(p,), name="log_precision_bias",
                                    initializer=keras.initializers.Constant(-2.0 * np.log(self.sigma0)))
        self.mask = self.add_weight(shape=(p,), initializer="ones", trainable=False, name="mask")

    def call(self, z: Any) -> Any:
        d = offsets(z, self.n_params, self.dx)
        u = self.bias + PRECISION_SPAN * ops.tanh(ops.matmul(z[..., :self.dx], self.kernel))
        nu = STUDENT_DOF
        tails = -0.5 * (nu + 1.0) * ops.sum(self.mask * ops.log1p(ops.exp(u) * d * d / nu), axis=-1, keepdims=True)
        return ops.concatenate([d, d * d], axis=-1), tails

    def compute_output_shape(self, input_shape: Any) -> Any:
        lead = tuple(input_shape[:-1])
        return (*lead, 2 * self.n_params), (*lead, 1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(n_params=self.n_params, dx=self.dx, sigma0=self.sigma0)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RegressionLoss(layers.Layer):
    """Pass-through of the pair tensor z (B, K, D) that, in training, adds ``weight`` · mean((θ̂ − θ_s)²) of column 0.

    Column 0 holds the true θ in training (:mod:`.losses`), so the auxiliary squared error pulls θ̂(x) towards
    E[θ | x]. Evaluation (the validation loss, inference) adds nothing.
    """

    def __init__(self, n_params: int, dx: int, weight: float = REGRESSION_WEIGHT, **kwargs: Any):
        super().__init__(**kwargs)
        self.n_params, self.dx, self.weight = int(n_params), int(dx), float(weight)

    def call(self, z: Any, training: bool | None = None) -> Any:
        if training:
            self.add_loss(self.weight * ops.mean(ops.square(offsets(z[:, 0], self.n_params, self.dx))))
        return z

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(n_params=self.n_params, dx=self.dx, weight=self.weight)
        return config


def with_regression(h_x: Any, summaries: Any, n_params: int | None, names: Sequence[str], n_snapshots: int) -> Any:
    """[h_x ‖ θ̂(x)] of the regression head: θ̂ = :class:`SummaryRegression` of ``summaries`` + a zero-start Dense.

    ``names``: the summaries of one snapshot (the branch's order); ``n_snapshots``: snapshots in the input.
    The fit is quadratic in the last snapshot's summaries and the earlier mean densities (:func:`earlier_densities`).
    """
    if not n_params:
        raise ValueError("the regression head needs the number of inferred parameters")
    fitted = SummaryRegression(len(names), int(n_params), extra=earlier_densities(names, int(n_snapshots)),
                               name="summary_regression")(summaries)
    correction = layers.Dense(int(n_params), kernel_initializer="zeros", name="theta_correction")(h_x)
    theta_hat = layers.Add(name="theta_hat")([fitted, correction])
    return layers.Concatenate(name="h_x_theta_hat")([h_x, theta_hat])


def regression_parts(model: Any) -> tuple[Any, Any] | None:
    """(:class:`SummaryRegression`, :class:`RegressionOffsets`) of a ratio estimator, or None without the head."""
    try:
        return (model.get_layer("encoder").get_layer("summary_regression"),
                model.get_layer("head").get_layer("offsets"))
    except ValueError:
        return None


def fit_regression_head(model: Any, pairs: Iterable[tuple[np.ndarray, np.ndarray]],
                        max_samples: int = FIT_SAMPLES) -> dict[str, Any] | None:
    """Fit the regression head's β by ridge least squares on training pairs and start its precisions there.

    ``pairs`` yields (x (B, N, N, s·C) as the network sees it, θ (B, P) true parameters). The summary branch's
    statistics must be fitted first (:func:`tdglnre.nre.net.network.fit_branch_statistics`). Returns
    {samples, residual_std (scaled θ, per parameter), tails (whether the Student-t term covers each parameter)},
    or None for a model without the head.
    """
    parts = regression_parts(model)
    if parts is None:
        return None
    reg, terms = parts
    summaries = model.get_layer("encoder").get_layer("image_summaries")
    scaler = model.get_layer("theta_net").get_layer("theta_scale")
    feats, thetas, n = [], [], 0
    for xb, tb in pairs:
        take = slice(0, max_samples - n)
        f = np.asarray(summaries(np.asarray(xb)[take]), dtype=np.float64)
        feats.append(quadratic_features(reg.inputs_of(f)))
        thetas.append(np.asarray(scaler(np.asarray(tb, dtype=np.float32)[take]), dtype=np.float64))
        n += len(feats[-1])
        if n >= max_samples:
            break
    if n < 2:
        raise ValueError("need at least 2 training inputs to fit the regression head")
    a, y = np.concatenate(feats), np.concatenate(thetas)
    gram = a.T @ a
    gram += RIDGE * np.trace(gram) / len(gram) * np.eye(len(gram))
    beta = np.linalg.solve(gram, a.T @ y)
    resid = y - a @ beta
    dof = max(n - a.shape[1], max(n // 10, 1))
    var = np.maximum((resid**2).sum(axis=0) / dof, 1e-8)
    reg.beta.assign(beta.astype(np.float32))
    terms.bias.assign((-np.log(var)).astype(np.float32))
    used = np.sqrt(var) <= TAIL_MAX_STD
    terms.mask.assign(used.astype(np.float32))
    return {"samples": int(n), "residual_std": np.sqrt(var).tolist(), "tails": used.tolist()}
