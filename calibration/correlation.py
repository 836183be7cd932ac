"""Latent correlations between skills from response data (issue 9).

Items load on exactly one skill and their parameters are known (a calibration run); each skill's
θ is on its N(0, 1) population scale. For every pair of skills ``(s, t)`` the correlation ``ρ``
of ``(θ_s, θ_t) ~ N₂(0, [[1, ρ], [ρ, 1]])`` is estimated by **pairwise marginal maximum
likelihood** over the product of the two per-skill quadrature grids (a composite likelihood:
Varin, Reid & Firth 2011; for IRT, Katsikatsou et al. 2012):

    ℓ(ρ) = Σ_p log Σ_q Σ_r L_ps(θ_q) L_pt(θ_r) π_qr(ρ),
    π_qr(ρ) ∝ exp(−(θ_q² − 2ρ θ_q θ_r + θ_r²) / (2(1 − ρ²))),   Σ_qr π_qr = 1,

where ``L_ps(θ_q) = Π_{i ∈ s answered by p} P_i(x_pi | θ_q)`` (`irt.log_likelihood_grid`). Because
the items of a skill depend only on that skill, the pair's marginal likelihood involves only the
two skills' responses, and the one-dimensional maximization in ρ (bounded Brent) costs
``n_persons × n_nodes²`` per evaluation — 15 pairs for 6 skills take well under a second for
5,000 persons. Persons without responses on one of the two skills contribute nothing to that
pair. The standard error of each ρ̂ is ``(−ℓ″(ρ̂))^{−1/2}`` by central differences (the pairwise
information of that entry alone).

The pairwise estimates are assembled into a matrix; if it is not positive definite (possible with
pairwise estimation and little data), its eigenvalues are raised to ``MIN_EIGENVALUE`` and the
matrix rescaled to a unit diagonal (Higham 2002's nearest-correlation problem, one projection
step), and ``adjusted`` says so.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar

import irt
from irt.responses import SparseResponses, as_sparse

logger = logging.getLogger(__name__)

#: Quadrature: equally spaced nodes on ±NODE_RANGE with N(0, 1) weights.
DEFAULT_NODES = 41
NODE_RANGE = 5.0
#: ρ is searched in [−RHO_BOUND, RHO_BOUND].
RHO_BOUND = 0.99
#: Smallest eigenvalue kept when a pairwise matrix must be made positive definite.
MIN_EIGENVALUE = 1e-3
#: Step of the central differences for the standard errors.
SE_STEP = 1e-3


@dataclass(frozen=True, eq=False)
class LatentCorrelation:
    """Estimated latent correlation matrix between skills.

    ``matrix`` and ``se`` are ``(K, K)`` in the order of ``skills`` (``se`` is 0 on the
    diagonal); ``n_pairs[s, t]`` is the number of persons with responses on both skills;
    ``adjusted`` is True when the pairwise matrix was projected to be positive definite.
    """

    skills: tuple[str, ...]
    matrix: NDArray[np.float64]
    se: NDArray[np.float64]
    n_pairs: NDArray[np.int64]
    method: str = "pairwise-ml"
    adjusted: bool = False

    def correlation(self, a: str, b: str) -> float:
        return float(self.matrix[self.skills.index(a), self.skills.index(b)])

    def for_skills(self, skills: Sequence[str]) -> tuple[tuple[float, ...], ...]:
        """The matrix reordered for ``skills`` (e.g. a blueprint's), as plain nested tuples
        ready for ``Blueprint(correlations=…)``; raises `KeyError` for an unknown skill."""
        pos = []
        for s in skills:
            if s not in self.skills:
                raise KeyError(f"no correlation estimated for skill {s!r}")
            pos.append(self.skills.index(s))
        return tuple(tuple(float(self.matrix[i, j]) for j in pos) for i in pos)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (stored with the calibration run)."""
        return {"skills": list(self.skills), "matrix": self.matrix.tolist(),
                "se": self.se.tolist(), "n_pairs": self.n_pairs.tolist(),
                "method": self.method, "adjusted": self.adjusted}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LatentCorrelation:
        try:
            skills = tuple(str(s) for s in d["skills"])
            k = len(skills)
            m = np.asarray(d["matrix"], dtype=float).reshape(k, k)
            se = np.asarray(d.get("se", np.zeros((k, k))), dtype=float).reshape(k, k)
            n = np.asarray(d.get("n_pairs", np.zeros((k, k))), dtype=np.int64).reshape(k, k)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"latent correlation: malformed field ({exc})") from None
        _check_matrix(m, skills)
        return cls(skills, m, se, n, str(d.get("method", "pairwise-ml")),
                   bool(d.get("adjusted", False)))

    def to_csv(self, target: str | Path | io.TextIOBase) -> None:
        """Write ``skill,<skill_1>,…,<skill_K>`` rows (the matrix)."""
        own = not isinstance(target, io.TextIOBase)
        f: Any = (open(target, "w", newline="", encoding="utf-8")  # noqa: SIM115
                  if not isinstance(target, io.TextIOBase) else target)
        try:
            w = csv.writer(f)
            w.writerow(["skill", *self.skills])
            for s, row in zip(self.skills, self.matrix, strict=True):
                w.writerow([s, *(f"{v:.6f}" for v in row)])
        finally:
            if own:
                f.close()


def _check_matrix(m: NDArray[np.float64], skills: Sequence[str]) -> None:
    if not np.all(np.isfinite(m)):
        raise ValueError("latent correlation: matrix has NaN or infinite entries")
    for i, s in enumerate(skills):
        if abs(m[i, i] - 1.0) > 1e-9:
            raise ValueError(f"latent correlation: diagonal entry of skill {s!r} must be 1")
        for j in range(i + 1, len(skills)):
            if abs(m[i, j] - m[j, i]) > 1e-9 or not -1.0 < m[i, j] < 1.0:
                raise ValueError(f"latent correlation: entry ({s!r}, {skills[j]!r}) must be "
                                 f"symmetric and in (-1, 1)")


def read_correlation_csv(source: str | Path) -> LatentCorrelation:
    """Read what `LatentCorrelation.to_csv` wrote; errors name the line."""
    with open(source, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows or not rows[0] or rows[0][0] != "skill":
        raise ValueError(f"{source}: line 1: header must start with 'skill'")
    skills = tuple(rows[0][1:])
    if len(rows) - 1 != len(skills):
        raise ValueError(f"{source}: expected {len(skills)} rows after the header, got "
                         f"{len(rows) - 1}")
    m = np.zeros((len(skills), len(skills)))
    for k, row in enumerate(rows[1:]):
        line = k + 2
        if len(row) != len(skills) + 1 or row[0] != skills[k]:
            raise ValueError(f"{source}: line {line}: expected skill {skills[k]!r} and "
                             f"{len(skills)} values")
        try:
            m[k] = [float(v) for v in row[1:]]
        except ValueError:
            raise ValueError(f"{source}: line {line}: values must be numbers") from None
    try:
        _check_matrix(m, skills)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    k = len(skills)
    return LatentCorrelation(skills, m, np.zeros((k, k)), np.zeros((k, k), dtype=np.int64))


def _bivariate_weights(nodes: NDArray[np.float64], rho: float) -> NDArray[np.float64]:
    """``π_qr(ρ)``: bivariate standard normal density on the node grid, summing to one."""
    x = nodes[:, None]
    y = nodes[None, :]
    q = (x * x - 2.0 * rho * x * y + y * y) / (2.0 * (1.0 - rho * rho))
    w = np.exp(-q)
    return w / w.sum()


def _pair_loglik(rho: float, ls: NDArray, lt: NDArray, nodes: NDArray) -> float:
    # ls, lt: per-person likelihoods on the grid, each row scaled by its max (constants drop out)
    m = (ls @ _bivariate_weights(nodes, rho)) * lt
    return float(np.log(np.maximum(m.sum(axis=1), 1e-300)).sum())


def estimate_latent_correlation(bank: irt.Bank, responses: ArrayLike | SparseResponses, *,
                                mask: ArrayLike | None = None, skills: Sequence[str] | None = None,
                                n_nodes: int = DEFAULT_NODES) -> LatentCorrelation:
    """Pairwise marginal ML estimate of the latent correlation matrix (module docstring).

    Parameters
    ----------
    bank : calibrated items; ``bank.skills`` says which skill each item measures.
    responses : dense ``(n_persons, n_items)`` (NaN or ``mask`` for missing) or long format.
    skills : the skills to correlate (default: every skill of the bank, in bank order).
    n_nodes : quadrature nodes per skill on ±5.

    Returns
    -------
    LatentCorrelation
    """
    data = as_sparse(responses, bank, mask)
    names = tuple(dict.fromkeys(bank.skills)) if skills is None else tuple(skills)
    if len(names) < 2:
        raise ValueError("need at least two skills to estimate correlations")
    if n_nodes < 11:
        raise ValueError(f"n_nodes must be >= 11, got {n_nodes}")
    nodes = np.linspace(-NODE_RANGE, NODE_RANGE, n_nodes)
    item_skill = np.asarray(bank.skills, dtype=object)
    lik: list[NDArray[np.float64]] = []
    has: list[NDArray[np.bool_]] = []
    for s in names:
        idx = np.flatnonzero(item_skill == s)
        if idx.size == 0:
            raise ValueError(f"skill {s!r} has no items in the bank")
        remap = np.full(len(bank), -1, dtype=np.int64)
        remap[idx] = np.arange(idx.size)
        keep = remap[data.item] >= 0
        sub = SparseResponses(data.person[keep], remap[data.item[keep]], data.response[keep],
                              data.n_persons, idx.size)
        ll = irt.log_likelihood_grid(nodes, bank.take(idx), sub)
        lik.append(np.exp(ll - ll.max(axis=1, keepdims=True)))
        has.append(sub.counts_per_person() > 0)
    k = len(names)
    r = np.eye(k)
    se = np.zeros((k, k))
    n_pairs = np.zeros((k, k), dtype=np.int64)
    for a in range(k):
        n_pairs[a, a] = int(has[a].sum())
        for b in range(a + 1, k):
            both = has[a] & has[b]
            n = int(both.sum())
            n_pairs[a, b] = n_pairs[b, a] = n
            if n < 3:
                raise ValueError(f"skills {names[a]!r} and {names[b]!r}: only {n} person(s) "
                                 f"answered both; cannot estimate their correlation")
            ls, lt = lik[a][both], lik[b][both]
            opt = minimize_scalar(lambda x, ls=ls, lt=lt: -_pair_loglik(x, ls, lt, nodes),
                                  bounds=(-RHO_BOUND, RHO_BOUND), method="bounded",
                                  options={"xatol": 1e-6})
            rho = float(opt.x)
            h = SE_STEP
            lo, hi = max(rho - h, -RHO_BOUND), min(rho + h, RHO_BOUND)
            mid = 0.5 * (lo + hi)
            d2 = (_pair_loglik(hi, ls, lt, nodes) - 2 * _pair_loglik(mid, ls, lt, nodes)
                  + _pair_loglik(lo, ls, lt, nodes)) / (0.5 * (hi - lo)) ** 2
            r[a, b] = r[b, a] = rho
            se[a, b] = se[b, a] = float(1.0 / np.sqrt(-d2)) if d2 < 0 else np.nan
    adjusted = False
    vals, vecs = np.linalg.eigh(r)
    if vals.min() < MIN_EIGENVALUE:
        fixed = (vecs * np.maximum(vals, MIN_EIGENVALUE)) @ vecs.T
        dd = np.sqrt(np.diag(fixed))
        r = fixed / np.outer(dd, dd)
        np.fill_diagonal(r, 1.0)
        adjusted = True
        logger.warning("pairwise correlation matrix was not positive definite (smallest "
                       "eigenvalue %.4f); projected", vals.min())
    return LatentCorrelation(names, r, se, n_pairs, "pairwise-ml", adjusted)
