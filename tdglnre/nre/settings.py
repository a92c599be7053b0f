"""Settings of the ratio estimator: network widths, loss columns, training run.

A leaf module (NumPy-free, TensorFlow-free): the command line validates every
setting before anything heavy is imported or any file is touched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, TDGLError, reject_unknown_keys


@dataclass(frozen=True)
class LossKind:
    """One ratio-estimation loss, as the settings and the command line know it (TensorFlow-free).

    The Keras class that computes it is registered under the same ``name`` in
    :data:`tdglnre.nre.net.losses.LOSS_CLASSES`.
    """

    name: str
    summary: str
    """One line for help texts."""
    min_contrastive: int
    """Smallest contrastive size K."""
    extra_column: bool = False
    """True: K + 1 logit columns (joint and marginal sets overlap), else K."""

    def n_theta_columns(self, k: int) -> int:
        """Columns K' of the logit matrix for contrastive size ``k``."""
        return k + 1 if self.extra_column else k


#: The losses, by name: the one list that settings validation, the loss classes and ``--loss`` share.
LOSS_KINDS: dict[str, LossKind] = {k.name: k for k in (
    LossKind("nre", "binary cross-entropy, joint vs marginal pairs (Hermans et al. 2020)", 2),
    LossKind("bnre", "nre plus the balancing penalty lambda (Delaunoy et al. 2022)", 2),
    LossKind("nrec", "contrastive NRE with K classes and class ratio gamma (Miller et al. 2022)", 1,
             extra_column=True),
)}
LOSS_NAMES = tuple(LOSS_KINDS)

#: Encoders of the observation tower (:attr:`NetworkConfig.encoder`).
ENCODERS = ("stacked", "per_snapshot")


def n_theta_columns(loss: str, k: int) -> int:
    """Columns K' of the logit matrix a loss needs for contrastive size ``k``.

    ``nre``/``bnre``: K' = k (one joint + k−1 marginal). ``nrec``: K' = k + 1.
    :class:`TrainSettingsError` (a ValueError) for an unknown loss or a K too small for it.
    """
    kind = LOSS_KINDS.get(loss)
    if kind is None:
        raise TrainSettingsError(f"unknown loss {loss!r}; choose one of {LOSS_NAMES}")
    if k < kind.min_contrastive:
        need = ", ".join(f"{n} needs K >= {c.min_contrastive}" for n, c in LOSS_KINDS.items())
        raise TrainSettingsError(f"contrastive size K={k} is too small for loss {loss!r} ({need})")
    return kind.n_theta_columns(k)


@dataclass(frozen=True)
class NetworkConfig:
    """Widths and depth of the ratio-estimator network."""

    filters: tuple[int, ...] = (16, 32, 32, 64)
    """Filters of the conv blocks (one 3×3 'same' conv + ReLU + 2×2 max-pool each)."""
    convs_per_block: int = 1
    """3×3 convolutions per block before the pooling."""
    embed_dim: int = 64
    """Size of the observation embedding h_x (dense layer after GAP ‖ GMP)."""
    theta_units: tuple[int, ...] = (64, 64)
    """Hidden widths of the θ MLP; the last one is the size of h_θ."""
    head_units: tuple[int, ...] = (64, 64)
    """Hidden widths of the head MLP (a final Dense(1) gives the logit)."""
    encoder: str = "stacked"
    """How several snapshots are encoded: ``stacked`` (one CNN on the snapshots stacked as channels) or
    ``per_snapshot`` (one CNN shared by all snapshots, pooled over time with a learned time embedding,
    :mod:`tdglnre.nre.net.time_encoder`; docs/drag.md §4). Identical for a single snapshot up to the pooling."""
    spectrum: bool = False
    """Add a branch on the log structure factor log S(k) of every input channel (float64 FFT, shell means;
    :mod:`tdglnre.nre.net.spectrum`, docs/drag.md §4) to the stacked encoder."""
    summaries: bool = False
    """Add a branch on the ABC baseline's 13 physical summaries of every snapshot (log of those spanning decades,
    standardised; :mod:`tdglnre.nre.net.summaries`, docs/nre.md) to the stacked encoder (issue 20)."""
    regression: bool = False
    """Add a regression head (issue 20; needs ``summaries``): the encoder also outputs θ̂(x), a least-squares fit
    quadratic in the last snapshot's summaries plus a trained correction, and the ratio head sees the offsets
    d = θ̂(x) − θ with a Gaussian term in them (:mod:`tdglnre.nre.net.regression`, docs/nre.md)."""
    cnn_snapshots: str = "all"
    """Snapshots the stacked encoder's CNN sees: ``all`` selected ones, or only the ``last`` (the log-spectrum
    branch still sees all of them; docs/drag.md §4)."""
    instrument_input: bool = False
    """Give the network each image's instrument beside its embedding: the values its measurement drew, as a vector
    (:meth:`tdglnre.instrument.model.MeasurementModel.describe`). The posterior is then conditional on the instrument,
    which a family needs to be calibrated at each of its members, and the instrument of an observation must be
    declared (docs/nre.md, "The instrument as an input"). Needs a measurement family (ranges or alternatives)."""

    def __post_init__(self) -> None:
        for name in ("filters", "theta_units", "head_units"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if not self.filters or any(f < 1 for f in self.filters):
            raise ConfigError(f"filters must be positive integers, got {self.filters}")
        if not self.theta_units or any(u < 1 for u in self.theta_units):
            raise ConfigError(f"theta_units must be positive integers, got {self.theta_units}")
        if any(u < 1 for u in self.head_units):
            raise ConfigError(f"head_units must be positive integers, got {self.head_units}")
        if self.embed_dim < 1 or self.convs_per_block < 1:
            raise ConfigError("embed_dim and convs_per_block must be >= 1")
        if self.encoder not in ENCODERS:
            raise ConfigError(f"`encoder` must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if not isinstance(self.spectrum, bool):
            raise ConfigError(f"`spectrum` must be true or false, got {self.spectrum!r}")
        if not isinstance(self.regression, bool):
            raise ConfigError(f"`regression` must be true or false, got {self.regression!r}")
        if not isinstance(self.instrument_input, bool):
            raise ConfigError(f"`instrument_input` must be true or false, got {self.instrument_input!r}")
        if not isinstance(self.summaries, bool):
            raise ConfigError(f"`summaries` must be true or false, got {self.summaries!r}")
        if self.regression and not self.summaries:
            raise ConfigError("the regression head (`regression`) needs the summary branch (`summaries`): it regresses "
                              "theta on those summaries")
        if self.summaries and self.encoder != "stacked":
            raise ConfigError("the summary branch (`summaries`) is only available with the stacked encoder")
        if self.cnn_snapshots not in ("all", "last"):
            raise ConfigError(f"`cnn_snapshots` must be all or last, got {self.cnn_snapshots!r}")
        if self.cnn_snapshots == "last" and self.encoder != "stacked":
            raise ConfigError("`cnn_snapshots` = last is only available with the stacked encoder")
        if self.spectrum and self.encoder != "stacked":
            raise ConfigError("the log-spectrum branch (`spectrum`) is only available with the stacked encoder")

    @classmethod
    def paper(cls) -> "NetworkConfig":
        """The paper's widths (Table III): 64-128-128-256 filters, 64-d embeddings."""
        return cls(filters=(64, 128, 128, 256), embed_dim=64, theta_units=(64, 64),
                   head_units=(64, 64))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NetworkConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        reject_unknown_keys(cls, d, "network key", ConfigError)
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


#: Settings that ``resume`` may change; all others come from the checkpoint.
RESUMABLE_OVERRIDES = ("epochs", "patience")


class TrainingDataError(TDGLError, ValueError):
    """The training data cannot be used; the message says why."""


class TrainingError(TDGLError, ValueError):
    """Training cannot start or continue; the message says why."""


class TrainSettingsError(TrainingError, ConfigError):
    """An invalid :class:`TrainSettings`: a :class:`ConfigError`, like every settings object's error,
    and a :class:`TrainingError`, as it always was."""


@dataclass(frozen=True)
class TrainSettings:
    """All settings of one training run (stored in ``metadata.json``)."""

    loss: str = "nrec"
    """``nre``, ``bnre`` or ``nrec`` (see :mod:`.losses`)."""
    contrastive: int = 8
    """K: θ's scored per x (nre/bnre: 1 joint + K−1 marginal; nrec: K classes)."""
    gamma: float = 1.0
    """Class ratio γ of ``nrec``."""
    lam: float = 100.0
    """Balancing penalty λ of ``bnre``."""
    epochs: int = 50
    """Maximum number of epochs."""
    batch_size: int = 64
    """Observations per batch."""
    learning_rate: float = 1e-3
    """Adam(W) learning rate."""
    weight_decay: float = 1e-4
    """Decoupled weight decay of AdamW (0: plain Adam)."""
    val_fraction: float = 0.1
    """Fraction of samples held out for validation (seeded permutation)."""
    patience: int = 8
    """Epochs without validation improvement before stopping."""
    min_delta: float = 1e-4
    """Smallest validation-loss decrease that counts as an improvement."""
    seed: int = 0
    """Seed of the split, the shuffling, the augmentation and the weights."""
    channels: tuple[str, ...] | None = None
    """Input channel names (default: all channels of the ensemble)."""
    snapshots: tuple[int, ...] | None = None
    """Snapshot indices (default: the last); several stack as channels."""
    augment: bool = True
    """Random periodic lattice translations of the training inputs."""
    network: NetworkConfig = field(default_factory=NetworkConfig)
    """Widths and depth of the network."""
    in_memory_limit: float = 2 * 1024**3
    """Cache the selected inputs in RAM when they take at most this many bytes."""
    block_size: int = 256
    """Samples per HDF5 read when streaming."""
    blocks_per_read: int = 4
    """Blocks read and shuffled together when streaming."""
    threads: int | None = None
    """TensorFlow intra-op threads (default: usable CPU cores)."""
    lr_patience: int = 3
    """Epochs without improvement before the learning rate is multiplied by ``lr_factor``."""
    lr_factor: float = 0.5
    """Learning-rate reduction factor on a plateau (1: constant learning rate)."""
    min_learning_rate: float = 1e-5
    """Floor of the plateau schedule."""
    measurement: Any = None
    """Measurement model applied to every training input as augmentation: a
    :class:`tdglnre.instrument.model.MeasurementModel` (fresh noise every epoch, seeded by ``seed``),
    None for a perfect measurement (docs/observations.md). Construction also takes anything
    :meth:`~tdglnre.instrument.model.MeasurementModel.parse` does (the text ``"blur(1.0)+noise(0.05)"``,
    a list of tables), parsed here once; :meth:`to_dict` writes the text form."""

    def __post_init__(self) -> None:
        if isinstance(self.network, dict):
            object.__setattr__(self, "network", NetworkConfig.from_dict(self.network))
        if self.measurement is not None:
            from ..instrument.model import MeasurementModel  # NumPy only when a measurement is set

            model = MeasurementModel.parse(self.measurement)  # a model passes through unchanged
            object.__setattr__(self, "measurement", None if model.is_identity else model)
        for name in ("channels", "snapshots"):
            v = getattr(self, name)
            if v is not None:
                if isinstance(v, (str, int)):
                    v = (v,)
                object.__setattr__(self, name, tuple(v))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`TrainSettingsError` (a ConfigError and a TrainingError) on an invalid combination."""
        if self.loss not in LOSS_NAMES:
            raise TrainSettingsError(f"unknown loss {self.loss!r}; choose one of {LOSS_NAMES}")
        try:
            cols = n_theta_columns(self.loss, int(self.contrastive))
        except ValueError as exc:
            raise TrainSettingsError(str(exc)) from None
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}"),
            (self.batch_size >= cols,
             f"batch_size {self.batch_size} is smaller than the {cols} theta columns of "
             f"loss {self.loss!r} with K={self.contrastive}; contrastive thetas come from "
             "other samples of the batch"),
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (0.0 <= self.val_fraction < 1.0,
             f"val_fraction must lie in [0, 1), got {self.val_fraction}"),
            (self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
            (self.lr_patience >= 1, f"lr_patience must be >= 1, got {self.lr_patience}"),
            (0 < self.lr_factor <= 1, f"lr_factor must lie in (0, 1], got {self.lr_factor}"),
            (self.min_learning_rate > 0, f"min_learning_rate must be > 0, got {self.min_learning_rate}"),
            (self.gamma > 0, f"gamma must be > 0, got {self.gamma}"),
            (self.lam >= 0, f"lam must be >= 0, got {self.lam}"),
            (self.block_size >= 1 and self.blocks_per_read >= 1,
             "block_size and blocks_per_read must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise TrainSettingsError(msg)

    @property
    def n_theta_columns(self) -> int:
        """θ columns per x in a batch."""
        return n_theta_columns(self.loss, self.contrastive)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["network"] = self.network.to_dict()
        d["measurement"] = None if self.measurement is None else str(self.measurement)
        for k in ("channels", "snapshots"):
            d[k] = None if d[k] is None else list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainSettings":
        """Inverse of :meth:`to_dict`; unknown keys are an error naming the valid ones."""
        reject_unknown_keys(cls, d, "training setting", TrainSettingsError)
        return cls(**d)
