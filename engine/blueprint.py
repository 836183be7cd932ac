"""The test configuration ("blueprint"): skills, lengths, strategies, stopping rules, seed.

A `Blueprint` is a frozen value that round-trips through JSON (`to_dict` / `from_dict`,
`to_json` / `from_json`); strategies are rebuilt from their registered names.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigurationError
from engine.strategies import (
    ExposureControl,
    FixedStart,
    MaxInfo,
    NoExposureControl,
    Selector,
    Starter,
    strategy_from_dict,
)

#: Default θ grid for EAP scoring: lower, upper, number of nodes.
DEFAULT_GRID = (-5.0, 5.0, 81)
CLASSIFICATION_METHODS = ("sprt", "ci")


@dataclass(frozen=True)
class SkillSpec:
    """One skill of the blueprint: minimum/maximum scored items and its target share.

    ``max_items=None`` means the blueprint's overall maximum; ``weight`` is the skill's relative
    target share of the test for content balancing (Kingsbury & Zara 1989).
    """

    skill: str
    min_items: int = 0
    max_items: int | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.skill, str) or not self.skill:
            raise ConfigurationError("skill name must be a non-empty string")
        if self.min_items < 0:
            raise ConfigurationError(f"skill {self.skill!r}: min_items must be >= 0")
        if self.max_items is not None and self.max_items < max(self.min_items, 1):
            raise ConfigurationError(f"skill {self.skill!r}: max_items must be >= max(min_items,"
                                     f" 1), got {self.max_items}")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ConfigurationError(f"skill {self.skill!r}: weight must be > 0")


@dataclass(frozen=True)
class Classification:
    """Pass/fail classification against a cut score ``cut`` (one value or skill → value).

    ``method='sprt'``: Wald's sequential probability ratio test of θ = cut + δ against
    θ = cut − δ (Reckase 1983; Eggen 1999); decide pass when ``log LR ≥ log((1 − β)/α)`` and fail
    when ``log LR ≤ log(β/(1 − α))``. ``method='ci'``: decide once the interval
    ``θ̂ ± z·SE`` (two-sided ``level``) excludes the cut (Kingsbury & Weiss 1983).
    """

    cut: float | Mapping[str, float] = 0.0
    method: str = "sprt"
    alpha: float = 0.05
    beta: float = 0.05
    delta: float = 0.3
    level: float = 0.95

    def __post_init__(self) -> None:
        if self.method not in CLASSIFICATION_METHODS:
            raise ConfigurationError(f"classification method must be one of "
                                     f"{CLASSIFICATION_METHODS}, got {self.method!r}")
        if not (0 < self.alpha < 0.5 and 0 < self.beta < 0.5):
            raise ConfigurationError("classification: alpha and beta must be in (0, 0.5)")
        if not self.delta > 0 or not 0 < self.level < 1:
            raise ConfigurationError("classification: delta must be > 0 and level in (0, 1)")
        cuts = self.cut.values() if isinstance(self.cut, Mapping) else [self.cut]
        if any(not math.isfinite(float(c)) for c in cuts):
            raise ConfigurationError("classification: cut scores must be finite")

    def cut_for(self, skill: str) -> float | None:
        """The cut of ``skill``; None when a per-skill mapping leaves it out (not classified)."""
        if isinstance(self.cut, Mapping):
            return float(self.cut[skill]) if skill in self.cut else None
        return float(self.cut)

    @property
    def upper_bound(self) -> float:
        return math.log((1.0 - self.beta) / self.alpha)

    @property
    def lower_bound(self) -> float:
        return math.log(self.beta / (1.0 - self.alpha))

    def to_dict(self) -> dict[str, Any]:
        cut = dict(self.cut) if isinstance(self.cut, Mapping) else self.cut
        return {"cut": cut, "method": self.method, "alpha": self.alpha, "beta": self.beta,
                "delta": self.delta, "level": self.level}


def _check_correlations(rows: tuple[tuple[float, ...], ...], skills: list[str]) -> None:
    """A correlation matrix for ``skills``: square, symmetric, unit diagonal, positive definite."""
    k = len(skills)
    if len(rows) != k or any(len(r) != k for r in rows):
        raise ConfigurationError(f"correlations must be {k} x {k} (one row per skill: {skills})")
    for i in range(k):
        if rows[i][i] != 1.0:
            raise ConfigurationError(f"correlations: diagonal entry of {skills[i]!r} must be 1")
        for j in range(i + 1, k):
            if not (math.isfinite(rows[i][j]) and rows[i][j] == rows[j][i]
                    and -1.0 < rows[i][j] < 1.0):
                raise ConfigurationError(f"correlations: entry ({skills[i]!r}, {skills[j]!r}) "
                                         f"must be symmetric and in (-1, 1)")
    try:  # Cholesky succeeds exactly for positive definite matrices
        _cholesky(rows)
    except ValueError:
        raise ConfigurationError("correlations: the matrix is not positive definite") from None


def _cholesky(rows: tuple[tuple[float, ...], ...]) -> None:
    k = len(rows)
    low = [[0.0] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1):
            v = rows[i][j] - sum(low[i][m] * low[j][m] for m in range(j))
            if i == j:
                if v <= 1e-12:
                    raise ValueError("not positive definite")
                low[i][i] = math.sqrt(v)
            else:
                low[i][j] = v / low[j][j]


@dataclass(frozen=True)
class Blueprint:
    """A CAT configuration.

    Parameters
    ----------
    skills : the skills covered (empty: every skill of the pool, with default settings).
    min_items, max_items : overall bounds on the number of scored items.
    se_target : stop a skill once its posterior SD is at most this (None: no SE rule).
    selector, exposure, start : strategies (see `engine.strategies`).
    classification : optional pass/fail rule; a classified skill stops once decided.
    exclude_tags : items carrying any of these tags are never served.
    pretest_count, pretest_positions : unscored pretest items seeded in at these 1-based
        positions of the served sequence (default: every second position from 2).
    grid : ``(lower, upper, n_nodes)`` of the EAP quadrature grid.
    seed : master seed; session ``k`` of a study uses ``engine.derive_seed(seed, k)``.
    correlations : latent correlation matrix between the listed ``skills`` (rows and columns
        in their order); when set, `engine.make_engine` builds the multidimensional engine
        (`engine.mcat.McatEngine`: MAP under the correlated prior, D-optimal selection).
    """

    skills: tuple[SkillSpec, ...] = ()
    min_items: int = 1
    max_items: int = 40
    se_target: float | None = 0.3
    selector: Selector = field(default_factory=MaxInfo)
    exposure: ExposureControl = field(default_factory=NoExposureControl)
    start: Starter = field(default_factory=FixedStart)
    classification: Classification | None = None
    exclude_tags: tuple[str, ...] = ()
    pretest_count: int = 0
    pretest_positions: tuple[int, ...] = ()
    grid: tuple[float, float, int] = DEFAULT_GRID
    seed: int = 0
    correlations: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        skills = tuple(s if isinstance(s, SkillSpec) else SkillSpec(str(s)) for s in self.skills)
        names = [s.skill for s in skills]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"duplicate skill in blueprint: {names}")
        object.__setattr__(self, "skills", skills)
        if self.min_items < 0 or self.max_items < 1 or self.min_items > self.max_items:
            raise ConfigurationError(f"need 0 <= min_items <= max_items and max_items >= 1, got "
                                     f"min_items={self.min_items}, max_items={self.max_items}")
        if sum(s.min_items for s in skills) > self.max_items:
            raise ConfigurationError("the skills' min_items add up to more than max_items")
        if self.se_target is not None and not self.se_target > 0:
            raise ConfigurationError(f"se_target must be > 0 or None, got {self.se_target}")
        for name, value, cls in (("selector", self.selector, Selector),
                                 ("exposure", self.exposure, ExposureControl),
                                 ("start", self.start, Starter)):
            if not isinstance(value, cls):
                raise ConfigurationError(f"{name} must be a {cls.__name__}, got {value!r}")
        if self.pretest_count < 0:
            raise ConfigurationError("pretest_count must be >= 0")
        positions = tuple(int(p) for p in self.pretest_positions)
        if not positions and self.pretest_count:
            positions = tuple(range(2, 2 + 2 * self.pretest_count, 2))
        if len(positions) != self.pretest_count or any(p < 1 for p in positions) \
                or len(set(positions)) != len(positions):
            raise ConfigurationError(f"pretest_positions must be {self.pretest_count} distinct "
                                     f"positions >= 1, got {self.pretest_positions}")
        object.__setattr__(self, "pretest_positions", tuple(sorted(positions)))
        object.__setattr__(self, "exclude_tags", tuple(str(t) for t in self.exclude_tags))
        grid = tuple(self.grid)
        if len(grid) != 3 or not float(grid[0]) < float(grid[1]) or int(grid[2]) < 3:
            raise ConfigurationError(f"grid must be (lower, upper, n_nodes >= 3), got {grid}")
        object.__setattr__(self, "grid", (float(grid[0]), float(grid[1]), int(grid[2])))
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigurationError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.correlations is not None:
            if not skills:
                raise ConfigurationError("correlations need the blueprint's skills listed "
                                         "(rows and columns follow their order)")
            try:
                rows = tuple(tuple(float(v) for v in row) for row in self.correlations)
            except (TypeError, ValueError):
                raise ConfigurationError("correlations must be a matrix of numbers") from None
            _check_correlations(rows, names)
            object.__setattr__(self, "correlations", rows)

    # -- serialization ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values; strategies as ``{"name": …, settings…}``."""
        out = {
            "skills": [{"skill": s.skill, "min_items": s.min_items, "max_items": s.max_items,
                        "weight": s.weight} for s in self.skills],
            "min_items": self.min_items, "max_items": self.max_items,
            "se_target": self.se_target,
            "selector": self.selector.to_dict(), "exposure": self.exposure.to_dict(),
            "start": self.start.to_dict(),
            "classification": None if self.classification is None
            else self.classification.to_dict(),
            "exclude_tags": list(self.exclude_tags),
            "pretest_count": self.pretest_count,
            "pretest_positions": list(self.pretest_positions),
            "grid": list(self.grid), "seed": self.seed,
        }
        if self.correlations is not None:  # only when set: older stored blueprints unchanged
            out["correlations"] = [list(r) for r in self.correlations]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Blueprint:
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"blueprint must be an object, got {type(data).__name__}")
        known = {"skills", "min_items", "max_items", "se_target", "selector", "exposure",
                 "start", "classification", "exclude_tags", "pretest_count",
                 "pretest_positions", "grid", "seed", "correlations"}
        unknown = set(data) - known
        if unknown:
            raise ConfigurationError(f"blueprint: unknown field(s) {sorted(unknown)}")
        kw: dict[str, Any] = {k: v for k, v in data.items()
                              if k in known - {"skills", "selector", "exposure", "start",
                                               "classification"}}
        try:
            kw["skills"] = tuple(SkillSpec(**s) for s in data.get("skills", ()))
            if data.get("classification") is not None:
                kw["classification"] = Classification(**data["classification"])
        except TypeError as exc:
            raise ConfigurationError(f"blueprint: {exc}") from None
        for kind, key in (("selector", "selector"), ("exposure", "exposure"),
                          ("start", "start")):
            if data.get(key) is not None:
                kw[key] = strategy_from_dict(kind, data[key])
        for key in ("exclude_tags", "pretest_positions", "grid"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Blueprint:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"blueprint JSON: {exc}") from None
        return cls.from_dict(data)
