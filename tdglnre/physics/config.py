"""Simulation configuration: a frozen dataclass with explicit validation.

The field is given as ``n_v`` flux quanta through the torus (B = 2π n_v / L², docs/physics.md "Links and
the seam twist"; :func:`n_v_from_field` converts a field B), |n_v| <= N²/4; dt is checked against the
explicit-Euler bound of :func:`rate_bound` (docs/physics.md, "The explicit-Euler time step"), with
disorder at the extreme sites' α (docs/physics.md, "Pinning disorder").
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from .._validate import as_int, int_if_integral
from ..errors import ConfigError, reject_unknown_keys
from .options import DTYPES, as_times, check_dt, check_snapshot_times, snapshot_steps
from .screening import DEFAULT_SIGMA, check_sample_lam, check_screened_step, check_screening

#: Physical parameters of the quench that may vary from sample to sample inside
#: one batch: Josephson coupling, flux quanta, drag.
SAMPLE_PARAMETERS = ("eta", "n_v", "nu")
#: Per-sample parameters of the nuisance physics (docs/physics.md, "Nuisance
#: physics"): temperature of the thermal noise and pinning-disorder strength.
NUISANCE_PARAMETERS = ("T", "delta")
#: Every per-sample parameter the solver and priors accept, in canonical order.
ALL_SAMPLE_PARAMETERS = SAMPLE_PARAMETERS + NUISANCE_PARAMETERS
#: The London depth λ: a sample parameter only where a prior or the caller gives it (a screened config's
#: ``lam`` otherwise); last in the canonical order, so a prior over λ leaves the other draws unchanged.
LAM = "lam"
#: Every parameter a prior may hold.
PRIOR_PARAMETERS = ALL_SAMPLE_PARAMETERS + (LAM,)
#: Lower limits of sample parameters: T >= 0, and δ, −δ give the same ensemble (docs/physics.md "Pinning
#: disorder"), so a posterior against a prior bound there is an answer. η, ν get none (ψ₂ → −ψ₂ flips both).
PHYSICAL_LOWER_LIMITS = {"T": 0.0, "delta": 0.0}

#: Chance, per sample, that any site's disorder value ξ(r) would exceed the
#: clip :func:`disorder_clip` (union bound over the N² sites).
DISORDER_TAIL = 1e-9


def field_from_n_v(n_v: int | float, L: float) -> float:
    """Uniform field B carrying ``n_v`` flux quanta through an L×L torus."""
    return 2.0 * math.pi * float(n_v) / (L * L)


def n_v_from_field(B: float, L: float, *, rtol: float = 1e-9) -> int:
    """Number of flux quanta for field ``B`` on an L×L torus.

    Raises
    ------
    ConfigError
        If B·L² is not 2π times an integer; the message names the two nearest
        valid fields.
    """
    x = B * L * L / (2.0 * math.pi)
    n = round(x)
    if abs(x - n) > rtol * max(1.0, abs(x)):
        lo, hi = math.floor(x), math.ceil(x)
        raise ConfigError(
            f"field B={B:g} on a torus of side L={L:g} carries {x:.6g} flux quanta; "
            f"periodic boundaries need B*L^2 = 2*pi*n_v with integer n_v. Nearest valid: "
            f"B={field_from_n_v(lo, L):.12g} (n_v={lo}) or B={field_from_n_v(hi, L):.12g} (n_v={hi})"
        )
    return int(n)


def _pair(name: str, value: Any) -> tuple[float, float]:
    if np.isscalar(value):
        return (float(value), float(value))
    vals = tuple(float(v) for v in value)
    if len(vals) != 2:
        raise ConfigError(f"{name} needs one value per band (2), got {len(vals)}: {value!r}")
    return vals  # type: ignore[return-value]


def disorder_clip(N: int, tail: float = DISORDER_TAIL) -> float:
    """Clip ξ_max of the unit-variance disorder field on an N×N lattice.

    The smallest x with N²·P(|g| > x) = N²·erfc(x/√2) <= ``tail`` for a
    standard normal g: by the union bound, the chance that any of a sample's
    N² sites reaches ±x is at most ``tail``. The field is clipped to [−x, x]
    (:func:`tdglnre.physics.solver.disorder_field`), so |ξ| <= x holds at every
    site and the time-step bound built on it is exact (docs/physics.md,
    "Pinning disorder"). x ≈ 6.94 at N = 16, 7.13 at N = 32, 7.32 at N = 64.
    """
    n2 = float(N) * float(N)
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if n2 * math.erfc(mid / math.sqrt(2.0)) > tail:
            lo = mid
        else:
            hi = mid
    return hi


def alpha_range(alpha: tuple[float, float], spread: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((lo1, lo2), (hi1, hi2))``: the extreme site values α_b ∓ |α_b|·spread of α_b(1 + δξ(r)), |δξ| <= spread."""
    a1, a2 = float(alpha[0]), float(alpha[1])
    s = float(spread)
    return (a1 - abs(a1) * s, a2 - abs(a2) * s), (a1 + abs(a1) * s, a2 + abs(a2) * s)


def stability_limit(D: tuple[float, float], nu: float, h: float) -> float:
    """Gradient-only explicit-Euler bound h² / (4 λ_max) (a necessary condition).

    λ_max is the largest eigenvalue of [[D1, ν], [ν, D2]]; the covariant Laplacian's spectrum lies in
    [-8/h², 0]. Without the local and Josephson terms; the config is checked against
    :func:`time_step_limit` (docs/physics.md, "Well-posedness and stability").
    """
    d1, d2 = D
    lam_max = 0.5 * (d1 + d2) + math.sqrt(0.25 * (d1 - d2) ** 2 + nu * nu)
    return h * h / (4.0 * lam_max)


#: Largest |ψ_i|² of the quench's initial state (Re, Im ~ U[−0.5, 0.5]).
INITIAL_DENSITY_MAX = 0.5

#: Safety factor on the invariant-box density bound R_i used in the time-step
#: bound (covers the explicit step's overshoot and the drag ν, which the
#: invariant-box argument does not; docs/physics.md).
DENSITY_MARGIN = 1.25


def _largest_cubic_root(a: float, b: float, c: float) -> float:
    """Largest root x >= 0 of b·x³ + a·x = c (b > 0, c >= 0), never below it (Newton from above on a convex cubic)."""
    x = max(math.sqrt(2.0 * max(0.0, -a) / b), (2.0 * c / b) ** (1.0 / 3.0))
    for _ in range(200):
        p = b * x * x * x + a * x - c
        dp = 3.0 * b * x * x + a
        if p <= 0.0 or dp <= 0.0:
            break
        step = p / dp
        x -= step
        if step <= 1e-15 * x:
            break
    return x


def density_bound(alpha: tuple[float, float], beta: tuple[float, float], eta: float,
                  rho0: float = INITIAL_DENSITY_MAX) -> tuple[float, float]:
    """Upper bounds (R1, R2) on |ψ_i|² over a run that starts with |ψ_i|² <= rho0.

    The box {|ψ1| <= r1, |ψ2| <= r2} is invariant under the local dynamics
    ∂_t|ψ_i| = −α_i|ψ_i| − β_i|ψ_i|³ + η Re(ψ_j ψ_i*)/|ψ_i| when
    β_i r_i³ + α_i r_i >= |η| r_j for both bands (the radial velocity on the
    box's faces points inwards), and the gradient terms cannot raise the
    maximum of |ψ_i| (Kato's inequality, for ν = 0). Starting from the common
    box r² = max(rho0, max_i (|η| − α_i)/β_i), the map r_i ← max(√rho0,
    root of β_i x³ + α_i x = |η| r_j) decreases monotonically to the smallest
    such box above √rho0 — for rho0 below equilibrium, the uniform fixed point
    of the coupled local equations. Every iterate is an invariant box. Returns (r1², r2²), without the
    safety margin :data:`DENSITY_MARGIN`.
    """
    e = abs(float(eta))
    a1, a2 = (float(a) for a in alpha)
    b1, b2 = (float(b) for b in beta)
    r0 = math.sqrt(rho0)
    rc = math.sqrt(max(rho0, (e - a1) / b1, (e - a2) / b2))
    r1 = r2 = rc
    for _ in range(500):
        n1 = max(r0, _largest_cubic_root(a1, b1, e * r2))
        n2 = max(r0, _largest_cubic_root(a2, b2, e * r1))
        # keep the bound monotone (each iterate must stay an invariant box)
        n1, n2 = min(n1, r1), min(n2, r2)
        done = (r1 - n1) <= 1e-13 * r1 and (r2 - n2) <= 1e-13 * r2
        r1, r2 = n1, n2
        if done:
            break
    return r1 * r1, r2 * r2


@dataclass(frozen=True)
class RateBound:
    """Largest decay rate of the linearised Euler update and the terms that set it."""

    rate: float
    """μ_max: the largest eigenvalue of A(κ) over κ in [0, 8/h²] (and of the gradient part)."""
    kappa: float
    """κ at which it is attained (0 or 8/h²)."""
    diffusion: tuple[float, float]
    """D_i κ at that κ."""
    local: tuple[float, float]
    """α_i + 3 β_i R_i, the local (amplitude-sector) terms (largest site α_i with disorder)."""
    coupling: float
    """νκ − η, the off-diagonal entry at that κ."""
    density: tuple[float, float]
    """R_i, the bound on |ψ_i|² (margin included)."""

    @property
    def dt_max(self) -> float:
        """Largest stable step 2/μ_max: |1 − dt·μ| < 1 for every mode when dt < dt_max."""
        return 2.0 / self.rate


def rate_bound(D: tuple[float, float], alpha: tuple[float, float], beta: tuple[float, float],
               eta: float, nu: float, h: float, *, alpha_spread: float = 0.0) -> RateBound:
    """Bound on the fastest rate μ of the linearised explicit Euler update.

    With |ψ_i|² <= R_i over the run (:func:`density_bound` times
    :data:`DENSITY_MARGIN`), the Jacobian of −∂_tψ is bounded above (as a
    symmetric matrix) by −Δ_A ⊗ G + 1 ⊗ M with G = [[D1, ν], [ν, D2]] and
    M = [[α1 + 3β1R1, −η], [−η, α2 + 3β2R2]]; its eigenvalues are those of
    A(κ) = κG + M for κ in the spectrum of −Δ_A, inside [0, 8/h²]. λ_max(A(κ))
    is convex in κ, so its maximum over the interval is at an end point.

    With pinning disorder α_b(r) = α_b(1 + δξ(r)) and |δξ| <= ``alpha_spread``
    (|δ|·:func:`disorder_clip`), the density bound uses the smallest site α
    (the deepest local well) and M the largest (the stiffest site): the local
    part of the Jacobian is block-diagonal over sites, so its upper bound is
    the worst site's (docs/physics.md, "Pinning disorder").
    """
    a_lo, a_hi = alpha_range(alpha, alpha_spread)
    R = tuple(DENSITY_MARGIN * r for r in density_bound(a_lo, beta, eta))
    loc = (a_hi[0] + 3.0 * beta[0] * R[0], a_hi[1] + 3.0 * beta[1] * R[1])
    best = None
    for kappa in (0.0, 8.0 / (h * h)):
        d = (D[0] * kappa, D[1] * kappa)
        c = nu * kappa - eta
        a, b = d[0] + loc[0], d[1] + loc[1]
        lam = 0.5 * (a + b) + math.sqrt(0.25 * (a - b) ** 2 + c * c)
        if best is None or lam > best.rate:
            best = RateBound(rate=lam, kappa=kappa, diffusion=d, local=loc, coupling=c, density=R)
    # the gradient terms alone (never larger than A(8/h²)'s bound in practice; kept as a floor)
    grad_rate = 2.0 / stability_limit(D, nu, h)
    if grad_rate > best.rate:
        best = dataclasses.replace(best, rate=grad_rate)
    return best


def time_step_limit(D: tuple[float, float], alpha: tuple[float, float], beta: tuple[float, float],
                    eta: float, nu: float, h: float, *, alpha_spread: float = 0.0) -> float:
    """Largest stable explicit-Euler time step 2/μ_max (see :func:`rate_bound`)."""
    return rate_bound(D, alpha, beta, eta, nu, h, alpha_spread=alpha_spread).dt_max


def flux_limit(N: int) -> float:
    """Largest |n_v| the N×N lattice resolves: flux per plaquette 2π|n_v|/N² <= π/2."""
    return N * N / 4.0


@dataclass(frozen=True)
class SimConfig:
    """Two-band TDGL quench simulation settings (docs/physics.md)."""

    N: int = 64
    """Lattice sites per side (N×N, periodic)."""
    L: float = 32.0
    """Physical side length; the lattice spacing is h = L/N."""
    dt: float = 1e-3
    """Explicit Euler time step."""
    alpha: tuple[float, float] = (-1.0, -1.0)
    """Quadratic GL coefficients α1, α2."""
    beta: tuple[float, float] = (1.0, 1.0)
    """Quartic GL coefficients β1, β2 (> 0)."""
    D: tuple[float, float] = (4.0, 1.0)
    """Diffusion (gradient) coefficients D1, D2 (> 0)."""
    eta: float = 0.0
    """Josephson coupling η (default for samples that do not set it)."""
    n_v: int = 0
    """Flux quanta through the torus (vortices per band); B = 2π n_v / L²."""
    nu: float = 0.0
    """Andreev–Bashkin drag ν; needs ν² < D1·D2."""
    T: float = 0.0
    """Temperature of the Langevin thermal noise (default for samples that do not set it; >= 0)."""
    delta: float = 0.0
    """Pinning-disorder strength δ: α_b(r) = α_b(1 + δ·ξ(r)) (default for samples that do not set it)."""
    disorder_length: float = 1.0
    """Correlation length ℓ of the disorder field ξ (same units as L): ⟨ξ(r)ξ(r′)⟩ ≈ exp(−|r−r′|²/2ℓ²)."""
    snapshot_times: tuple[float, ...] = (2.0,)
    """Times at which the state is recorded (multiples of dt, ascending)."""
    dtype: str = "float64"
    """Working precision of the solver: "float64" or "float32"."""
    lam: float = math.inf
    """London depth λ of the uniform state (units of L; inf: fixed field, no screening; docs/physics.md)."""
    sigma: float = DEFAULT_SIGMA
    """Relaxation rate σ of the vector potential: σ ∂ₜa = J − (2c/h²)(Φ⁺ − Φ⁻) (used only when λ < ∞)."""

    def __post_init__(self) -> None:
        if self.lam is None:  # how to_dict writes λ = ∞ (plain JSON has no Infinity)
            object.__setattr__(self, "lam", math.inf)
        # normalise container types so that equal configs compare equal and hash
        object.__setattr__(self, "alpha", _pair("alpha", self.alpha))
        object.__setattr__(self, "beta", _pair("beta", self.beta))
        object.__setattr__(self, "D", _pair("D", self.D))
        object.__setattr__(self, "snapshot_times", as_times(self.snapshot_times))

    # ------------------------------------------------------------------ derived
    @property
    def h(self) -> float:
        """Lattice spacing L/N."""
        return self.L / self.N

    @property
    def screened(self) -> bool:
        """Whether the vector potential is dynamical (finite λ): the screened kernel runs."""
        return isinstance(self.lam, (int, float, np.integer, np.floating)) and math.isfinite(self.lam)

    @property
    def B(self) -> float:
        """Magnetic field of the default ``n_v``."""
        return field_from_n_v(self.n_v, self.L)

    @property
    def snapshot_steps(self) -> tuple[int, ...]:
        """Step index of each snapshot time."""
        return snapshot_steps(self.snapshot_times, self.dt)

    @property
    def n_steps(self) -> int:
        """Total number of Euler steps (to the last snapshot)."""
        return max(self.snapshot_steps) if self.snapshot_times else 0

    # --------------------------------------------------------------- validation
    def validate(self) -> "SimConfig":
        """Check every field; raise :class:`ConfigError` naming the problem.

        Returns ``self`` so that calls can be chained. A config that passed is
        not checked again (it is frozen; :meth:`replace` makes a new, unchecked one).
        """
        if self.__dict__.get("_valid"):
            return self
        as_int("N", self.N, 4)
        if not (math.isfinite(self.L) and self.L > 0):
            raise ConfigError(f"L must be positive and finite, got {self.L!r}")
        for name, (a, b) in (("D", self.D), ("beta", self.beta)):
            if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
                raise ConfigError(f"{name} must be positive in both bands, got {name}=({a:g}, {b:g})")
        if not all(math.isfinite(a) for a in self.alpha):
            raise ConfigError(f"alpha must be finite, got {self.alpha}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not math.isfinite(self.eta):
            raise ConfigError(f"eta must be finite, got {self.eta!r}")
        check_dt(self.dt)
        check_screening(self.lam, self.sigma, self.h)
        if isinstance(self.disorder_length, bool) or not (
                isinstance(self.disorder_length, (int, float, np.integer, np.floating))
                and math.isfinite(self.disorder_length) and self.disorder_length >= 0):
            raise ConfigError(f"disorder_length must be a finite number >= 0 (0: uncorrelated sites), "
                              f"got {self.disorder_length!r}")
        self.validate_sample(self.eta, self.n_v, self.nu, self.T, self.delta)
        check_snapshot_times(self.snapshot_times, self.dt)
        object.__setattr__(self, "_valid", True)  # not a field: equality, hashing and to_dict ignore it
        return self

    def validate_sample(self, eta: float, n_v: Any, nu: float, T: float = 0.0, delta: float = 0.0,
                        lam: float | None = None) -> None:
        """Validate one sample's (η, n_v, ν, T, δ) and London depth ``lam`` (None: the config's) against this config.

        Checks that n_v is an integer the lattice resolves (|n_v| <= N²/4),
        that the drag keeps the flow well-posed (ν² < D1·D2), that T >= 0 and
        δ are finite, and that dt is below the explicit-Euler bound 2/μ_max
        of :func:`rate_bound` (with the disorder's extreme sites for δ ≠ 0;
        screened: with the vector potential's update at the sample's λ).
        """
        if not math.isfinite(float(eta)):
            raise ConfigError(f"eta must be finite, got {eta!r}")
        if isinstance(T, bool) or not (math.isfinite(float(T)) and float(T) >= 0.0):
            raise ConfigError(f"temperature T must be a finite number >= 0, got {T!r}")
        if isinstance(delta, bool) or not math.isfinite(float(delta)):
            raise ConfigError(f"disorder strength delta must be finite, got {delta!r}")
        if isinstance(n_v, bool) or float(n_v) != round(float(n_v)):
            raise ConfigError(
                f"n_v must be an integer number of flux quanta, got {n_v!r} "
                "(periodic boundaries need B*L^2 = 2*pi*n_v)"
            )
        n_max = flux_limit(self.N)
        if abs(float(n_v)) > n_max:
            raise ConfigError(
                f"n_v={float(n_v):g} exceeds what an N={self.N} lattice resolves: the flux per plaquette "
                f"2*pi*|n_v|/N^2 = {2.0 * math.pi * abs(float(n_v)) / self.N ** 2:.4g} must be <= pi/2, "
                f"i.e. |n_v| <= N^2/4 = {math.floor(n_max)} (n_v and n_v + N^2 give identical dynamics)"
            )
        d1, d2 = self.D
        if not nu * nu < d1 * d2:
            raise ConfigError(
                f"drag nu={nu:g} makes the equations ill-posed: the gradient matrix "
                f"[[D1, nu], [nu, D2]] must be positive definite, i.e. nu^2 < D1*D2 = {d1 * d2:g} "
                f"(|nu| < {math.sqrt(d1 * d2):.6g})"
            )
        if lam is not None:
            check_sample_lam(self, lam)
        self._check_time_step(float(eta), float(nu), float(delta), lam)

    def alpha_spread(self, delta: float) -> float:
        """Largest |α_b(r)/α_b − 1| = |δ|·ξ_max over the sites of a sample with disorder ``delta``."""
        return abs(float(delta)) * disorder_clip(self.N) if delta != 0 else 0.0

    def _check_time_step(self, eta: float, nu: float, delta: float = 0.0, lam: float | None = None) -> None:
        """Raise :class:`ConfigError` if dt is not below the stable step for (η, ν, δ, λ)."""
        spread = self.alpha_spread(delta)
        rb = rate_bound(self.D, self.alpha, self.beta, eta, nu, self.h, alpha_spread=spread)
        if self.screened:  # the a update joins the bound (docs/physics.md, "Lattice form and dynamics")
            return check_screened_step(self, rb, eta, nu, lam)
        if not self.dt < rb.dt_max:
            grad = stability_limit(self.D, nu, self.h)
            d1, d2 = self.D
            raise ConfigError(
                f"dt={self.dt:g} is not below the largest stable explicit Euler step {rb.dt_max:.6g} "
                f"= 2/mu_max with mu_max = {rb.rate:.6g} at kappa = {rb.kappa:g}: diffusion D*kappa = "
                f"({rb.diffusion[0]:.4g}, {rb.diffusion[1]:.4g}), local alpha + 3*beta*R = "
                f"({rb.local[0]:.4g}, {rb.local[1]:.4g}) for |psi|^2 <= R = ({rb.density[0]:.4g}, "
                f"{rb.density[1]:.4g}), coupling nu*kappa - eta = {rb.coupling:.4g} (h={self.h:g}, "
                f"D=({d1:g}, {d2:g}), eta={eta:g}, nu={nu:g}); the gradient terms alone give the "
                f"stability limit h^2/(4*lambda_max) = {grad:.6g}"
                + (f"; disorder delta={delta:g} lets alpha vary by up to {spread:.4g}*|alpha| "
                   f"(|xi| <= {disorder_clip(self.N):.4g})" if spread else "")
            )

    # ---------------------------------------------------------------- (de)serialise
    def replace(self, **changes: Any) -> "SimConfig":
        """A copy with some fields changed (not validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary of all fields."""
        d = dataclasses.asdict(self)
        for k in ("alpha", "beta", "D", "snapshot_times"):
            d[k] = list(d[k])
        if d["lam"] == math.inf and d["sigma"] == DEFAULT_SIGMA:  # no screening: the JSON of files before it
            del d["lam"], d["sigma"]
        elif d["lam"] == math.inf:
            d["lam"] = None  # plain JSON has no Infinity: null is λ = ∞
        return d

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict` (stored in HDF5 attributes)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of the configuration fields."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SimConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error listing the valid ones."""
        reject_unknown_keys(cls, d, "config key", ConfigError)
        kw = dict(d)
        for key in ("N", "n_v"):  # JSON may store 4.0; validate() judges anything else
            if key in kw:
                kw[key] = int_if_integral(kw[key])
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> "SimConfig":
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def with_field(cls, B: float, **kw: Any) -> "SimConfig":
        """Config whose field is given as B; B must carry an integer n_v."""
        L = kw.get("L", cls.L)
        return cls(n_v=n_v_from_field(B, L), **kw)


def as_sample_arrays(
    config: SimConfig, params: dict[str, Iterable[float]] | None, n_samples: int | None
) -> dict[str, np.ndarray]:
    """Broadcast per-sample parameters (η, n_v, ν, T, δ, and λ where given) to arrays of equal length.

    Missing parameters take the config's default (``lam`` is in the result only where given). Unknown keys
    are an error.
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(PRIOR_PARAMETERS))
    if unknown:
        raise ConfigError(f"unknown sample parameter(s) {unknown}; valid: {list(PRIOR_PARAMETERS)}")
    arrays = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in params.items()}
    lengths = {k: a.shape[0] for k, a in arrays.items() if a.shape[0] != 1}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"per-sample parameters have different lengths: {lengths}")
    S = next(iter(lengths.values()), None)
    if n_samples is not None:
        if S is not None and S != n_samples:
            raise ConfigError(f"n_samples={n_samples} but parameters have length {S}")
        S = n_samples
    if S is None:
        S = 1
    out = {}
    for k in ALL_SAMPLE_PARAMETERS + ((LAM,) if LAM in arrays else ()):
        a = arrays.get(k, np.array([float(getattr(config, k))]))
        if a.ndim != 1:
            raise ConfigError(f"parameter {k} must be one-dimensional, got shape {a.shape}")
        out[k] = np.broadcast_to(a, (S,)).copy()
    lam = out.get(LAM, np.full(S, None))
    for s in range(S):
        config.validate_sample(out["eta"][s], out["n_v"][s], out["nu"][s], out["T"][s], out["delta"][s], lam[s])
    out["n_v"] = np.rint(out["n_v"]).astype(np.int64)
    return out
