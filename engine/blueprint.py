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

import numpy as np

from engine.errors import ConfigurationError
from engine.rules import (
    Classification,
    ContentBalancer,
    EAPScorer,
    FixedPositions,
    KingsburyZara,
    MAPScorer,
    OpenSkills,
    Scorer,
    SETarget,
    Stopper,
)
from engine.strategies import (
    DOptimal,
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
    if np.linalg.eigvalsh(np.array(rows)).min() <= 1e-12:
        raise ConfigurationError("correlations: the matrix is not positive definite")


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
    exclude_items : items never served in this session (a retake: the items the candidate
        has seen before); ids not in the pool are ignored.
    pretest_count, pretest_positions : unscored pretest items seeded in at these 1-based
        positions of the served sequence (default: every second position from 2).
    grid : ``(lower, upper, n_nodes)`` of the EAP quadrature grid.
    seed : master seed; session ``k`` of a study uses ``engine.derive_seed(seed, k)``.
    correlations : latent correlation matrix between the listed ``skills`` (rows and columns
        in their order), the prior of the MAP scorer. Set without a ``scorer``, it means the
        multidimensional CAT of issue 9: MAP under the correlated prior, D-optimal selection
        (in place of the default ``mfi``) and the ``open`` balancer.
    scorer, balancer : strategies (`engine.rules`); None: the defaults above (EAP per skill and
        Kingsbury–Zara; the ``open`` balancer for selectors that plan the whole test).
    stopping : further stopping rules (`engine.rules.Stopper`, e.g. `CompositeSE`) besides the
        SE target and the classification; the first rule (classification, SE target, then
        these) that closes a skill or stops the test is the recorded stop reason.

    The stopping rules in effect are `stop_rules`; the pretest policy `pretest`. Shadow tests
    are fixed-length: with the ``shadow`` selector the SE target is reported, not used.
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
    exclude_items: tuple[str, ...] = ()
    pretest_count: int = 0
    pretest_positions: tuple[int, ...] = ()
    grid: tuple[float, float, int] = DEFAULT_GRID
    seed: int = 0
    correlations: tuple[tuple[float, ...], ...] | None = None
    scorer: Scorer | None = None
    balancer: ContentBalancer | None = None
    stopping: tuple[Stopper, ...] = ()

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
        object.__setattr__(self, "stopping", tuple(self.stopping))
        for name, value, cls in (("selector", self.selector, Selector),
                                 ("exposure", self.exposure, ExposureControl),
                                 ("start", self.start, Starter),
                                 ("scorer", self.scorer, Scorer | None),
                                 ("balancer", self.balancer, ContentBalancer | None),
                                 ("classification", self.classification,
                                  Classification | None),
                                 *(("stopping", s, Stopper) for s in self.stopping)):
            if not isinstance(value, cls):
                raise ConfigurationError(f"{name}: unexpected value {value!r}")
        pretest = FixedPositions(self.pretest_count, tuple(self.pretest_positions))
        object.__setattr__(self, "pretest_positions", pretest.positions)
        object.__setattr__(self, "exclude_tags", tuple(str(t) for t in self.exclude_tags))
        object.__setattr__(self, "exclude_items", tuple(str(t) for t in self.exclude_items))
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

    # -- the roles in effect --------------------------------------------------------------
    @property
    def legacy_mcat(self) -> bool:
        """Correlations without a scorer: the multidimensional CAT of issue 9."""
        return self.correlations is not None and self.scorer is None

    @property
    def scorer_rule(self) -> Scorer:
        if self.scorer is not None:
            return self.scorer
        return MAPScorer() if self.correlations is not None else EAPScorer()

    @property
    def selector_rule(self) -> Selector:
        legacy = self.legacy_mcat and self.selector == MaxInfo()
        return DOptimal() if legacy else self.selector

    @property
    def balancer_rule(self) -> ContentBalancer:
        if self.balancer is not None:
            return self.balancer
        return OpenSkills() if self.legacy_mcat or self.selector.plans_test else KingsburyZara()

    @property
    def stop_rules(self) -> tuple[Stopper, ...]:
        target = None if self.selector.plans_test else self.se_target  # shadow: fixed length
        se: tuple[Stopper, ...] = () if target is None else (SETarget(target),)
        cls: tuple[Stopper, ...] = () if self.classification is None else (self.classification,)
        return cls + se + self.stopping

    @property
    def pretest(self) -> FixedPositions:
        return FixedPositions(self.pretest_count, self.pretest_positions)

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
            else {k: v for k, v in self.classification.to_dict().items() if k != "name"},
            "exclude_tags": list(self.exclude_tags),
            "pretest_count": self.pretest_count,
            "pretest_positions": list(self.pretest_positions),
            "grid": list(self.grid), "seed": self.seed,
        }
        # the newer fields only when set: older stored blueprints read back unchanged
        if self.correlations is not None:
            out["correlations"] = [list(r) for r in self.correlations]
        for key in ("scorer", "balancer"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value.to_dict()
        if self.stopping:
            out["stopping"] = [s.to_dict() for s in self.stopping]
        if self.exclude_items:
            out["exclude_items"] = list(self.exclude_items)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Blueprint:
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"blueprint must be an object, got {type(data).__name__}")
        roles = ("selector", "exposure", "start", "scorer", "balancer", "pretest")  # REGISTRY kinds
        known = {"skills", "min_items", "max_items", "se_target", "classification",
                 "exclude_tags", "exclude_items", "pretest_count", "pretest_positions",
                 "grid", "seed", "correlations", "stopping", *roles}
        unknown = set(data) - known
        if unknown:
            raise ConfigurationError(f"blueprint: unknown field(s) {sorted(unknown)}")
        kw: dict[str, Any] = {k: v for k, v in data.items()
                              if k not in {"skills", "classification", "stopping", *roles}}
        try:
            kw["skills"] = tuple(SkillSpec(**s) for s in data.get("skills", ()))
            if data.get("classification") is not None:
                kw["classification"] = Classification(**{
                    k: v for k, v in data["classification"].items() if k != "name"})
        except (TypeError, AttributeError) as exc:
            raise ConfigurationError(f"blueprint: {exc}") from None
        for key in roles:
            if data.get(key) is not None:
                kw[key] = strategy_from_dict(key, data[key])
        pretest = kw.pop("pretest", None)
        if pretest is not None:  # the pretest policy object, or the two fields below
            kw["pretest_count"], kw["pretest_positions"] = pretest.count, pretest.positions
        stopping = data.get("stopping") or ()
        if not isinstance(stopping, list | tuple):
            raise ConfigurationError("blueprint: stopping must be a list of rules")
        kw["stopping"] = tuple(strategy_from_dict("stopper", s) for s in stopping)
        for key in ("exclude_tags", "exclude_items", "pretest_positions", "grid"):
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
