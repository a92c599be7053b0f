"""Grid posteriors p(θ|x) ∝ r(θ, x) π(θ) and their summaries.

Pure NumPy: the network enters only through a log-ratio evaluated on the
grid, so everything here is testable against analytic cases.

A grid has one axis per inferred parameter (at most three): a continuous
parameter gets G cell centres spanning its prior box, an integer parameter
its integers. Probabilities are cell masses: density × cell width for
continuous axes, probability mass for integer axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ...errors import ConfigError

MAX_GRID_DIMS = 3
#: Refinement of a continuous marginal when locating the truth in its HPD regions.
REFINE = 16
#: A prior bound counts as cutting a posterior off (:meth:`GridPosterior.prior_edge`) when the
#: marginal density there is at least this fraction of its peak (a Gaussian whose mode lies
#: within 1.18 sigma of the bound; at 1.5 sigma, where 7% of the mass would lie beyond, it is not).
EDGE_DENSITY_FRACTION = 0.5
#: Most grid points a posterior grid may have (all axes together): 2^24 points hold 400 MB of
#: coordinates and take minutes to evaluate; the defaults (512 or 256 per continuous axis) stay far below.
MAX_GRID_SIZE = 2 ** 24


@dataclass(frozen=True)
class Axis:
    """One grid axis."""

    name: str
    """Parameter name."""
    values: np.ndarray
    """Cell centres (continuous) or the integers (discrete)."""
    discrete: bool
    """True for an integer-valued parameter."""
    low: float
    """Lower edge of the support."""
    high: float
    """Upper edge of the support."""

    @property
    def widths(self) -> np.ndarray:
        """Cell widths (1 for integers)."""
        if self.discrete:
            return np.ones_like(self.values)
        return np.full_like(self.values, (self.high - self.low) / self.values.size)

    @property
    def edges(self) -> np.ndarray:
        """Cell edges (len + 1); integers get ±0.5."""
        if self.discrete:
            return np.concatenate([self.values - 0.5, [self.values[-1] + 0.5]])
        return np.linspace(self.low, self.high, self.values.size + 1)


def make_axis(name: str, kind: str, low: float, high: float, n_points: int) -> Axis:
    """Axis for a parameter of prior kind ``uniform``, ``log_uniform`` or ``int_uniform``.

    A log-uniform parameter (λ) gets the uniform axis too: its prior density 1/λ enters through the
    prior's ``log_prob`` like any other, and equal cells keep the masses simple sums.
    """
    if kind == "int_uniform":
        vals = np.arange(int(round(low)), int(round(high)) + 1, dtype=np.float64)
        return Axis(name, vals, True, float(low), float(high))
    if kind in ("uniform", "log_uniform"):
        if n_points < 2:
            raise ConfigError(f"grid needs at least 2 points per axis, got {n_points}")
        w = (high - low) / n_points
        vals = low + w * (np.arange(n_points) + 0.5)
        return Axis(name, vals, False, float(low), float(high))
    raise ConfigError(f"cannot build a grid axis for prior kind {kind!r} of parameter {name!r}")


def check_grid_size(prior: Any, n_points: Any, names: Sequence[str], name: str = "`grid_points`") -> int:
    """``n_points`` as an int >= 2 whose grid over ``names`` has at most :data:`MAX_GRID_SIZE` points.

    Checked before any axis is built, so an absurd request fails at once
    with one line instead of allocating gigabytes.

    Raises
    ------
    ConfigError
        Naming ``name`` (the caller's argument) and the largest value allowed.
    """
    if isinstance(n_points, (bool, np.bool_)) or not isinstance(n_points, (int, np.integer)) or n_points < 2:
        raise ConfigError(f"{name} must be an integer >= 2, got {n_points!r}")
    n_points = int(n_points)
    n_cont, discrete = 0, 1
    for n in names:
        if prior.kind(n) == "int_uniform":
            discrete *= int(round(prior.high(n))) - int(round(prior.low(n))) + 1
        else:
            n_cont += 1
    size = discrete * n_points ** n_cont
    if size > MAX_GRID_SIZE:
        most = int((MAX_GRID_SIZE / discrete) ** (1.0 / max(n_cont, 1)))
        while (most + 1) ** n_cont * discrete <= MAX_GRID_SIZE:
            most += 1
        while most > 2 and most ** n_cont * discrete > MAX_GRID_SIZE:
            most -= 1
        raise ConfigError(f"{name} {n_points} gives a grid of {float(size):.3g} points over {', '.join(names)}; "
                          f"at most {MAX_GRID_SIZE} (2^24) are allowed: use {name} <= {most}")
    return n_points


@dataclass(frozen=True)
class Grid:
    """Tensor-product grid over the inferred parameters."""

    axes: tuple[Axis, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.axes) <= MAX_GRID_DIMS:
            raise ConfigError(f"grid posteriors support 1 to {MAX_GRID_DIMS} parameters, got {len(self.axes)}")

    @classmethod
    def from_prior(cls, prior: Any, n_points: int = 128, names: Sequence[str] | None = None) -> "Grid":
        """Grid over ``names`` (default: the prior's inferred parameters)."""
        names = list(prior.inferred if names is None else names)
        check_grid_size(prior, n_points, names)
        return cls(tuple(make_axis(n, prior.kind(n), prior.low(n), prior.high(n), n_points) for n in names))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.values.size for a in self.axes)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def points(self) -> np.ndarray:
        """All grid points (size, P) in C order of :attr:`shape`."""
        mesh = np.meshgrid(*[a.values for a in self.axes], indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def cell_volume(self) -> np.ndarray:
        """Cell volumes with :attr:`shape` (computed once per grid; read-only)."""
        cached = self.__dict__.get("_cell_volume")
        if cached is None:
            vol = np.ones(self.shape)
            for d, a in enumerate(self.axes):
                sh = [1] * len(self.axes)
                sh[d] = -1
                vol = vol * a.widths.reshape(sh)
            vol.setflags(write=False)
            cached = self.__dict__["_cell_volume"] = vol
        return cached

    def log_cell_volume(self) -> np.ndarray:
        """``np.log`` of :meth:`cell_volume` (computed once per grid; read-only)."""
        cached = self.__dict__.get("_log_cell_volume")
        if cached is None:
            cached = np.log(self.cell_volume())
            cached.setflags(write=False)
            self.__dict__["_log_cell_volume"] = cached
        return cached


def _interval_from_cells(axis: Axis, mask: np.ndarray) -> list[float]:
    idx = np.flatnonzero(mask)
    e = axis.edges
    if axis.discrete:
        return [float(axis.values[idx[0]]), float(axis.values[idx[-1]])]
    return [float(e[idx[0]]), float(e[idx[-1] + 1])]


def hpd_mask(mass: np.ndarray, density: np.ndarray, level: float) -> np.ndarray:
    """Cells of the highest-density region holding at least ``level`` of the mass."""
    order = np.argsort(-density.ravel(), kind="stable")
    cum = np.cumsum(mass.ravel()[order])
    n = int(np.searchsorted(cum, level * cum[-1] - 1e-12)) + 1
    mask = np.zeros(mass.size, dtype=bool)
    mask[order[:n]] = True
    return mask.reshape(mass.shape)


def quantile(axis: Axis, mass: np.ndarray, q: float) -> float:
    """Quantile of a 1-D marginal (linear within continuous cells)."""
    cdf = np.cumsum(mass) / mass.sum()
    k = int(np.searchsorted(cdf, q))
    k = min(k, mass.size - 1)
    if axis.discrete:
        return float(axis.values[k])
    e = axis.edges
    prev = cdf[k - 1] if k > 0 else 0.0
    frac = (q - prev) / max(cdf[k] - prev, 1e-300)
    return float(e[k] + np.clip(frac, 0.0, 1.0) * (e[k + 1] - e[k]))


@dataclass
class GridPosterior:
    """A normalised posterior on a :class:`Grid`."""

    grid: Grid
    log_density: np.ndarray
    """Normalised log density (continuous axes) / log mass (discrete) per cell, shape grid.shape."""
    truth: dict[str, float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_log_values(cls, grid: Grid, log_values: np.ndarray, log_prior: np.ndarray | None = None,
                        truth: dict[str, float] | None = None) -> "GridPosterior":
        """Normalise log r(θ, x) (+ log prior) given on the grid points."""
        lv = np.asarray(log_values, dtype=np.float64).reshape(grid.shape)
        if log_prior is not None:
            lv = lv + np.asarray(log_prior, dtype=np.float64).reshape(grid.shape)
        if not np.any(np.isfinite(lv)):
            raise ConfigError("posterior is zero everywhere on the grid (all log values are -inf or NaN)")
        if np.any(np.isnan(lv)):
            raise ConfigError("log-ratio values contain NaN")
        m = lv.max()
        logmass = lv - m + grid.log_cell_volume()
        logz = m + math.log(np.exp(logmass).sum())
        return cls(grid, lv - logz, truth, {"log_norm": logz})

    def normalised(self, log_value: float) -> float:
        """Normalised log density of a point whose unnormalised log value (log r + log prior) is given."""
        return float(log_value - self.meta["log_norm"])

    @property
    def density(self) -> np.ndarray:
        return np.exp(self.log_density)

    @property
    def mass(self) -> np.ndarray:
        """Probability of every cell (sums to 1); computed once per :attr:`log_density` array, read-only.

        The summaries of one posterior (marginals, HPD regions, credibilities,
        draws) all start from it; on a 3-parameter grid of 2^19 cells
        recomputing it for each cost more than the rest of them together.
        """
        src, cached = self.__dict__.get("_mass", (None, None))
        if src is not self.log_density:
            p = self.density * self.grid.cell_volume()
            cached = p / p.sum()
            cached.setflags(write=False)
            self.__dict__["_mass"] = (self.log_density, cached)
        return cached

    def marginal(self, name: str) -> tuple[Axis, np.ndarray]:
        """1-D marginal of ``name``: (axis, cell masses)."""
        d = self.grid.names.index(name)
        other = tuple(i for i in range(len(self.grid.axes)) if i != d)
        return self.grid.axes[d], self.mass.sum(axis=other)

    def marginal2d(self, a: str, b: str) -> np.ndarray:
        """2-D marginal mass (len a, len b)."""
        da, db = self.grid.names.index(a), self.grid.names.index(b)
        other = tuple(i for i in range(len(self.grid.axes)) if i not in (da, db))
        m = self.mass.sum(axis=other)
        return m if da < db else m.T

    def summary(self, name: str) -> dict[str, Any]:
        """mean, std, median, map, hpd68, hpd95, eti95 (and truth) of one parameter."""
        axis, m = self.marginal(name)
        dens = m / axis.widths
        mean = float((axis.values * m).sum())
        var = float(((axis.values - mean) ** 2 * m).sum())
        if not axis.discrete:  # within-cell variance of a piecewise-constant density
            var += float((axis.widths**2 / 12.0 * m).sum())
        out: dict[str, Any] = {
            "mean": mean,
            "std": math.sqrt(max(var, 0.0)),
            "median": quantile(axis, m, 0.5),
            "map": float(axis.values[int(np.argmax(dens))]),
            "hpd68": _interval_from_cells(axis, hpd_mask(m, dens, 0.68)),
            "hpd95": _interval_from_cells(axis, hpd_mask(m, dens, 0.95)),
            "eti95": [quantile(axis, m, 0.025), quantile(axis, m, 0.975)],
        }
        if self.truth is not None and name in self.truth:
            out["truth"] = float(self.truth[name])
        return out

    def summaries(self) -> dict[str, dict[str, Any]]:
        return {n: self.summary(n) for n in self.grid.names}

    def prior_edge(self, name: str, level: float = 0.95, density_fraction: float = EDGE_DENSITY_FRACTION,
                   prior_density: np.ndarray | None = None) -> str | None:
        """Which prior bound cuts off the marginal posterior of ``name``.

        The grid spans the prior box. A bound cuts the posterior off when the
        boundary cell lies in the ``level`` HPD region and its density is at
        least ``density_fraction`` of the marginal's peak: the posterior piles
        against the bound, and the estimate there is limited by the prior, not
        by the data (as for an observation simulated beyond the prior range).
        A posterior whose tail merely brushes the bound is not flagged.
        ``prior_density`` (per cell of the axis; for a non-uniform prior such
        as log-uniform λ) makes the test judge the posterior over the prior,
        so that a posterior equal to a 1/λ prior counts as flat, not as piling
        against the low bound.

        Returns
        -------
        str or None
            ``"low"``, ``"high"``, ``"both"`` (an almost flat posterior over the
            whole prior range) or None.
        """
        axis, m = self.marginal(name)
        dens = m / axis.widths
        if prior_density is not None:
            dens = dens / np.asarray(prior_density, dtype=np.float64)
            m = dens * axis.widths  # the ratio's mass, so the HPD region is the ratio's
            m = m / m.sum()
            dens = m / axis.widths
        # cells tied with the region's lowest density belong to it as much as those chosen
        # (a flat posterior's region is the whole box, not whichever cells sort first)
        d_min = max(dens[hpd_mask(m, dens, level)].min(), density_fraction * dens.max())
        low, high = bool(dens[0] >= d_min * (1 - 1e-9)), bool(dens[-1] >= d_min * (1 - 1e-9))
        if low and high:
            return "both"
        return "low" if low else "high" if high else None

    def prior_edges(self, level: float = 0.95, prior: Any = None) -> dict[str, str | None]:
        """:meth:`prior_edge` of every parameter; with ``prior``, a log-uniform one is judged over its 1/x density."""
        out = {}
        for ax in self.grid.axes:
            log_uniform = prior is not None and ax.name in getattr(prior, "names", ()) \
                and prior.kind(ax.name) == "log_uniform"
            out[ax.name] = self.prior_edge(ax.name, level, prior_density=1.0 / ax.values if log_uniform else None)
        return out

    def credibility_of(self, log_density_at_truth: float) -> float:
        """Mass of the smallest HPD region containing a point of the given log density.

        θ* lies in the HPD region of level q iff this value is < q (Hermans et
        al. 2022). ``log_density_at_truth`` must be normalised like
        :attr:`log_density`.
        """
        above = self.log_density > log_density_at_truth
        return float(self.mass[above].sum())

    def marginal_credibility(self, name: str, value: float, rng: np.random.Generator | None = None) -> float:
        """Same as :meth:`credibility_of` for the 1-D marginal of ``name``.

        For an integer parameter the HPD region cannot split an atom, so the
        truth's own atom is counted with a uniform random fraction (a
        randomised credibility, exactly uniform under calibration); without
        ``rng`` the fraction is 1/2.
        """
        axis, m = self.marginal(name)
        dens = m / axis.widths
        if axis.discrete:
            k = int(np.argmin(np.abs(axis.values - value)))
            d0 = dens[k]
            u = rng.uniform() if rng is not None else 0.5
            return float(m[dens > d0].sum() + u * m[dens == d0].sum())
        # continuous: one grid cell can hold a sizeable share of a sharp posterior,
        # which would make small HPD levels unreachable; evaluate the credibility
        # on a refined, linearly interpolated density instead
        d0 = float(np.interp(value, axis.values, dens))
        fine = np.linspace(axis.low, axis.high, REFINE * axis.values.size + 1)
        fine = 0.5 * (fine[1:] + fine[:-1])
        df = np.interp(fine, axis.values, dens)
        return float(df[df > d0].sum() / df.sum())

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n draws (n, P) from the piecewise-constant grid posterior."""
        flat = self.mass.ravel()
        cells = rng.choice(flat.size, size=n, p=flat / flat.sum())
        idx = np.unravel_index(cells, self.grid.shape)
        out = np.empty((n, len(self.grid.axes)))
        for d, a in enumerate(self.grid.axes):
            out[:, d] = a.values[idx[d]]
            if not a.discrete:
                out[:, d] += (rng.uniform(size=n) - 0.5) * a.widths[0]
        return out
