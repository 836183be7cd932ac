"""Feasibility of a test design: what the design does on the current bank for the population
on record, measured by simulation before the test goes live.

A design (a `engine.Blueprint`) is run for simulees drawn from the population (θ ~ N(μ, Σ) per
skill: the latent means, SDs and correlations of the latest calibration on real applicants, or
N(0, I) for a provisional bank) with the engine's own vectorized step (`engine.simulation`), and
summarised as the figures a recruiter and the welcome page may rely on: the distribution of test
length and the share stopping before the maximum, the overall (composite) and per-skill SEs, the
coverage of the 90 % intervals, and exposure (largest item exposure, mean pairwise overlap after
Chen, Ankenmann & Spray 2003, the largest share of candidates getting the same first item, the
share of the bank used). A target the bank cannot reach gets a warning with the reachable value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

from engine import Blueprint, CompositeSE, ItemPool, make_engine
from engine.simulation import SimulationResult, simulate, summarize
from irt.composite import deshrunk_intervals, normalized_weights

Z90 = float(norm.ppf(0.95))
#: Mean pairwise overlap up to which the welcome page may say candidates rarely share questions.
VARIED_OVERLAP = 0.2
#: Simulees of the check run when an assessment is created or edited (a few seconds).
DEFAULT_SIMULEES = 600


@dataclass(frozen=True)
class Population:
    """θ ~ N(mean, diag(sd) R diag(sd)) over ``skills``; ``source`` says where it comes from."""

    skills: tuple[str, ...]
    mean: tuple[float, ...]
    sd: tuple[float, ...]
    correlation: tuple[tuple[float, ...], ...]
    source: str

    @classmethod
    def standard(cls, skills: Sequence[str], source: str) -> Population:
        k = len(skills)
        return cls(tuple(skills), (0.0,) * k, (1.0,) * k,
                   tuple(tuple(1.0 if i == j else 0.0 for j in range(k)) for i in range(k)),
                   source)

    def covariance(self) -> NDArray[np.float64]:
        sd = np.asarray(self.sd)
        return np.asarray(self.correlation) * np.outer(sd, sd)

    def draw(self, n: int, rng: np.random.Generator) -> NDArray[np.float64]:
        return rng.multivariate_normal(np.asarray(self.mean), self.covariance(), size=n)


@dataclass(frozen=True)
class Feasibility:
    """Simulated operating characteristics of a design (JSON-ready with `to_dict`)."""

    n_simulees: int
    population: str
    length_min: int
    length_p10: float
    length_median: float
    length_p90: float
    length_max: int
    max_items: int
    mean_length: float
    share_early: float
    overall_se: float
    overall_se_target: float | None
    overall_coverage: float
    skill_se: dict[str, float]
    skill_coverage: float
    max_exposure: float
    overlap: float
    first_item_share: float
    bank_used: float
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["warnings"] = list(self.warnings)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Feasibility:
        data = dict(d)
        data["warnings"] = tuple(data.get("warnings", ()))
        data["skill_se"] = {str(k): float(v) for k, v in data.get("skill_se", {}).items()}
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def length_phrase(self) -> str:
        """What the welcome page may say about the test's length."""
        lo, hi = round(self.length_p10), round(self.length_p90)
        if self.share_early < 0.1 or lo >= self.max_items:
            return f"{self.max_items} questions"
        if lo == hi:
            return f"about {lo} questions (at most {self.max_items})"
        return f"usually {lo} to {hi} questions (at most {self.max_items})"


def composite_weights(blueprint: Blueprint, skills: Sequence[str]) -> NDArray[np.float64]:
    """Weights of the overall score over ``skills`` (in that order): the composite stopping
    rule's weights when it has some (all 0 for these skills: equal), else equal."""
    rule = next((r for r in blueprint.stopping if isinstance(r, CompositeSE) and r.weights),
                None)
    raw = [rule.weights.get(s, 0.0) if rule is not None else 1.0 for s in skills]
    return normalized_weights(raw if any(raw) else [1.0] * len(skills))


def overall_of(result: SimulationResult, weights: NDArray[np.float64]
               ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per simulee: the true composite, its estimate and the estimate's SE."""
    true = result.theta_true @ weights
    est = result.theta_hat @ weights
    if result.cov is not None:
        se = np.sqrt(np.einsum("i,nij,j->n", weights, result.cov, weights))
    else:
        se = np.sqrt((result.se**2) @ (weights**2))
    return true, est, se


def prior_composite(blueprint: Blueprint, skills: Sequence[str],
                    weights: Sequence[float] | NDArray[np.float64]) -> tuple[float, float]:
    """Mean and SD of the overall score under the scorer's prior: θ ~ N(0, R) with R the
    blueprint's correlations (identity when skills are scored separately)."""
    w = np.asarray(weights, dtype=np.float64)
    k = len(skills)
    r = np.eye(k)
    if blueprint.correlations is not None:
        names = [s.skill for s in blueprint.skills]
        pos = [names.index(s) for s in skills]
        full = np.asarray(blueprint.correlations)
        r = full[np.ix_(pos, pos)]
    return 0.0, float(np.sqrt(w @ r @ w))


def overall_intervals(est: NDArray[np.float64], se: NDArray[np.float64], prior_mean: float,
                      prior_sd: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The report's 90 % interval of the overall score per simulee (`deshrunk_intervals`)."""
    _, _, lower, upper = deshrunk_intervals(est, se, prior_mean, prior_sd, Z90)
    return lower, upper


def first_item_share(result: SimulationResult) -> float:
    first = result.items[:, 0]
    first = first[first >= 0]
    return float(np.bincount(first).max() / max(first.size, 1)) if first.size else 0.0


def check_design(pool: ItemPool, blueprint: Blueprint, population: Population, *,
                 n: int = DEFAULT_SIMULEES, seed: int = 2026) -> Feasibility:
    """Simulate ``blueprint`` on ``pool`` for ``n`` simulees of ``population``."""
    engine = make_engine(pool, blueprint)
    names = list(engine.skill_names)
    missing = [s for s in names if s not in population.skills]
    if missing:
        population = Population.standard(names, population.source + " (N(0, 1) for "
                                         + ", ".join(missing) + ")")
    order = [population.skills.index(s) for s in names]
    rng = np.random.default_rng(seed)
    sub = Population(tuple(names), tuple(population.mean[i] for i in order),
                     tuple(population.sd[i] for i in order),
                     tuple(tuple(population.correlation[i][j] for j in order) for i in order),
                     population.source)
    theta = sub.draw(n, rng)
    result = simulate(engine, theta, rng=rng)
    summary = summarize(result)
    weights = composite_weights(blueprint, names)
    true, est, se = overall_of(result, weights)
    length = result.test_length
    lo, hi = overall_intervals(est, se, *prior_composite(blueprint, names, weights))
    covered = (lo <= true) & (true <= hi)
    skill_cov = np.abs(result.theta_hat - result.theta_true) <= Z90 * result.se
    measured = result.n_items > 0
    rule = next((r for r in blueprint.stopping if isinstance(r, CompositeSE)), None)
    target = None if rule is None else float(rule.se_target)
    warnings = []
    early = float(np.mean(length < blueprint.max_items))
    if target is not None and float(np.mean(se <= target + 1e-9)) < 0.5:
        warnings.append(f"the overall SE target {target:.2f} is reached by "
                        f"{np.mean(se <= target + 1e-9):.0%} of candidates; with at most "
                        f"{blueprint.max_items} questions the bank reaches about "
                        f"{float(np.median(se)):.2f} (median)")
    if blueprint.se_target is not None and np.mean(result.se[measured] <= blueprint.se_target
                                                   + 1e-9) < 0.5:
        warnings.append(f"the per-skill SE target {blueprint.se_target:.2f} is reached in "
                        f"{np.mean(result.se[measured] <= blueprint.se_target + 1e-9):.0%} of "
                        f"skill scores; reachable: about {float(np.median(result.se)):.2f}")
    if early < 0.1:
        warnings.append(f"only {early:.0%} of candidates stop before the maximum of "
                        f"{blueprint.max_items} questions: the test is in effect fixed-length")
    return Feasibility(
        n_simulees=n, population=population.source, length_min=int(length.min()),
        length_p10=float(np.percentile(length, 10)), length_median=float(np.median(length)),
        length_p90=float(np.percentile(length, 90)), length_max=int(length.max()),
        max_items=blueprint.max_items, mean_length=float(length.mean()), share_early=early,
        overall_se=float(np.mean(se)), overall_se_target=target,
        overall_coverage=float(covered.mean()),
        skill_se={s: float(np.mean(result.se[measured[:, k], k])) if measured[:, k].any()
                  else float("nan") for k, s in enumerate(names)},
        skill_coverage=float(skill_cov[measured].mean()) if measured.any() else float("nan"),
        max_exposure=summary.max_exposure, overlap=summary.overlap_rate,
        first_item_share=first_item_share(result), bank_used=1.0 - summary.unused_share,
        warnings=tuple(warnings))



#: The population of a bank never calibrated on real applicants: the one the provisional
#: parameters were simulated from (scripts/provisional_parameters.py: θ ~ N(0, 1) per skill,
#: skills simulated independently).
PROVISIONAL_SOURCE = ("simulated reference group (provisional bank): N(0, 1) per skill, skills "
                      "independent")
#: A published correlation is used only down to what the data support: its estimate shrunk
#: toward 0 by this many standard errors (never past 0), so that a mis-specified correlation
#: cannot buy precision that is not there.
CORRELATION_SE_MARGIN = 2.0


@dataclass(frozen=True)
class ApplicantPopulation:
    """The latent population of the latest published calibration on real responses."""

    population: Population
    n_persons: int
    published: str  # ISO date


def supported_correlation(estimate: float, se: float) -> float:
    """``sign(r) · max(0, |r| − 2 SE)``: the correlation the data support at about 97.5 %."""
    if not (np.isfinite(estimate) and np.isfinite(se)):
        return 0.0
    return float(np.sign(estimate) * max(0.0, abs(estimate) - CORRELATION_SE_MARGIN * se))


def applicant_population(result: Mapping[str, Any] | None, published: str
                         ) -> ApplicantPopulation | None:
    """The population a published calibration job result (`Recalibration.to_dict`) estimated:
    each skill's latent mean and SD, and correlations shrunk by `supported_correlation`."""
    if not result or not result.get("scales"):
        return None
    scales = [s for s in result["scales"] if s.get("latent_sd")]
    if not scales:
        return None
    skills = tuple(str(s["skill"]) for s in scales)
    k = len(skills)
    corr = np.eye(k)
    c = result.get("correlations") or {}
    names = [str(x) for x in c.get("skills", [])]
    for i, a in enumerate(skills):
        for j, b in enumerate(skills):
            if i != j and a in names and b in names:
                ia, ib = names.index(a), names.index(b)
                se = c.get("se")
                corr[i, j] = supported_correlation(
                    float(c["matrix"][ia][ib]), float(se[ia][ib]) if se else float("inf"))
    # a shrunk matrix can lose positive definiteness: move toward the identity until it is PD
    lam = 1.0
    while np.linalg.eigvalsh(corr).min() <= 1e-6 and lam > 0:
        lam -= 0.1
        corr = lam * corr + (1 - lam) * np.eye(k)
    pop = Population(skills, tuple(float(s["latent_mean"]) for s in scales),
                     tuple(float(s["latent_sd"]) for s in scales),
                     tuple(tuple(float(v) for v in row) for row in corr),
                     f"applicants in the calibration of {published} "
                     f"(n = {int(result.get('n_persons', 0))})")
    return ApplicantPopulation(pop, int(result.get("n_persons", 0)), published)


#: The default design (demo, `proficio assessment create`, the web form): the overall score
#: first, with per-skill minimums; see docs/psychometrician-guide.md for how it was chosen.
DEFAULT_MAX_ITEMS = 40
DEFAULT_MIN_PER_SKILL = 2
DEFAULT_OVERALL_SE = 0.29
DEFAULT_RANDOMESQUE = 5
#: Sympson–Hetter target (tuned by `tune_exposure`): no item for more than about this share.
DEFAULT_MAX_EXPOSURE = 0.20
#: The progressive method over the first items (`engine.SympsonHetter.progressive`): the first
#: item is drawn uniformly from the bank, the second half at random, then the criterion rules.
DEFAULT_PROGRESSIVE = 2


def default_blueprint(skills: Sequence[str], population: Population | None = None, *,
                      max_items: int = DEFAULT_MAX_ITEMS,
                      min_per_skill: int = DEFAULT_MIN_PER_SKILL,
                      overall_se: float = DEFAULT_OVERALL_SE,
                      exposure: Any = None) -> Blueprint:
    """The default assessment: every skill, stopping on the overall (composite) SE with
    per-skill minimums; skills scored together under the population's supported correlations
    when it has any (MAP with the correlated prior; `engine.rules.MAPScorer`), else separately;
    items chosen for the overall score (`engine.COptimal`: the item that most reduces the
    overall score's posterior variance, skills competing, each skill's minimum served first by
    `engine.MinimumsFirst`); exposure control on (randomesque until Sympson–Hetter parameters
    are tuned for the bank, `tune_exposure`)."""
    from engine import COptimal, MinimumsFirst, Randomesque, SkillSpec

    names = list(skills)
    kw: dict[str, Any] = {}
    if population is not None and len(names) > 1:
        order = [population.skills.index(s) if s in population.skills else -1 for s in names]
        corr = np.eye(len(names))
        for i, a in enumerate(order):
            for j, b in enumerate(order):
                if i != j and a >= 0 and b >= 0:
                    corr[i, j] = population.correlation[a][b]
        if np.any(np.abs(corr - np.eye(len(names))) > 0):
            kw["correlations"] = tuple(tuple(float(v) for v in row) for row in corr)
    per = {s: min_per_skill for s in names}
    return Blueprint(skills=tuple(SkillSpec(s, min_items=min_per_skill) for s in names),
                     min_items=min_per_skill * len(names), max_items=max_items,
                     se_target=None, exposure=exposure or Randomesque(DEFAULT_RANDOMESQUE),
                     selector=COptimal(), balancer=MinimumsFirst(),
                     stopping=(CompositeSE(se_target=overall_se, min_items=per),), **kw)


def tune_exposure(pool: ItemPool, blueprint: Blueprint, population: Population, *,
                  r_max: float = DEFAULT_MAX_EXPOSURE, progressive: int = DEFAULT_PROGRESSIVE,
                  seed: int = 2026) -> Blueprint:
    """The blueprint with Sympson–Hetter exposure parameters tuned on ``pool`` for simulees of
    ``population`` so that no item is given to more than about ``r_max`` of candidates
    (`engine.simulation.tune_sympson_hetter`), with the progressive method over the first
    ``progressive`` items (`engine.SympsonHetter`)."""
    from dataclasses import replace

    from engine import SympsonHetter
    from engine.simulation import tune_sympson_hetter

    blueprint = replace(blueprint, exposure=SympsonHetter({}, progressive))
    engine = make_engine(pool, blueprint)
    names = list(engine.skill_names)
    order = [population.skills.index(s) for s in names]
    sub = Population(tuple(names), tuple(population.mean[i] for i in order),
                     tuple(population.sd[i] for i in order),
                     tuple(tuple(population.correlation[i][j] for j in order) for i in order),
                     population.source)
    tuned = tune_sympson_hetter(engine, lambda g: sub.draw(400, g), r_max=r_max, burn_in=6,
                                n_average=4, rng=seed)
    return replace(blueprint, exposure=tuned.control)


def latest_applicants(session: Any, bank_id: int | None = None) -> ApplicantPopulation | None:
    """The applicants of the bank's latest published calibration (`applicant_population`), or
    None while the bank has none (provisional parameters). The one query behind the population
    a design is checked against and the report's norm group."""
    from sqlalchemy import select

    from item_bank.models import CalibrationJob, as_utc

    query = select(CalibrationJob).where(CalibrationJob.status == "published")
    if bank_id is not None:
        query = query.where(CalibrationJob.bank_id == bank_id)
    job = session.scalar(query.order_by(CalibrationJob.finished_at.desc(),
                                        CalibrationJob.id.desc()).limit(1))
    if job is None:
        return None
    when = as_utc(job.finished_at).date().isoformat() if job.finished_at else "?"
    return applicant_population(job.result, when)


def population_on_record(session: Any, skills: Sequence[str], bank_id: int | None = None
                         ) -> Population:
    """The population a design is checked against: the applicants of the bank's latest
    published calibration (`latest_applicants`) for the skills it covers, else the
    provisional bank's simulated N(0, I)."""
    found = latest_applicants(session, bank_id)
    if found is not None and all(s in found.population.skills for s in skills):
        return found.population
    return Population.standard(list(skills), PROVISIONAL_SOURCE)


#: Bounds of the web form (and the job it queues): the work of one check grows with the
#: simulees times the maximum length, so both are capped.
MAX_FORM_ITEMS = 100
MAX_CHECK_SIMULEES = DEFAULT_SIMULEES


@dataclass(frozen=True)
class DesignChoices:
    """What a recruiter chooses for a test (the web form; `proficio assessment create`'s
    options): the skills and their weights in the overall score (empty: equal), the overall
    score's SE target, the maximum length, the minimum number of questions per skill, and
    exposure control (Sympson–Hetter tuned so that no item goes to more than about
    ``max_exposure`` of candidates; off: always the most informative item)."""

    skills: tuple[str, ...]
    weights: Mapping[str, float] = field(default_factory=dict)
    overall_se: float = DEFAULT_OVERALL_SE
    max_items: int = DEFAULT_MAX_ITEMS
    min_per_skill: int = DEFAULT_MIN_PER_SKILL
    exposure_control: bool = True
    max_exposure: float = DEFAULT_MAX_EXPOSURE
    exclude_tags: tuple[str, ...] = ()

    def overall_weights(self) -> dict[str, float]:
        """The composite rule's weights, normalised to sum 1 (the overall score is the weighted
        mean, `composite_weights`; the rule stops on the SE of exactly that): {} (equal) when
        every chosen skill weighs the same."""
        w = {s: float(self.weights.get(s, 1.0)) for s in self.skills}
        total = sum(w.values())
        if len(set(w.values())) <= 1 or total <= 0:
            return {}
        return {s: v / total for s, v in w.items()}

    def problems(self, items_per_skill: Mapping[str, int]) -> dict[str, str]:
        """Field → what is wrong with it, given the bank's usable items per skill (empty: the
        design can be checked)."""
        out: dict[str, str] = {}
        if not self.skills:
            out["skills"] = "choose at least one skill"
        unknown = [s for s in (*self.skills, *self.weights) if s not in items_per_skill]
        if unknown:
            out["skills"] = f"unknown skill {unknown[0]!r}; the bank's skills are " \
                            f"{', '.join(sorted(items_per_skill))}"
        for s, v in self.weights.items():
            if not (np.isfinite(v) and v >= 0):
                out[f"weight_{s}"] = f"the weight of {s!r} must be a number of 0 or more"
        if self.skills and not unknown and not any(
                self.weights.get(s, 1.0) > 0 for s in self.skills):
            out.setdefault("weights", "at least one chosen skill needs a weight above 0")
        if not (np.isfinite(self.overall_se) and 0 < self.overall_se <= 5):
            out["overall_se"] = "the target SE must be above 0 (and at most 5)"
        if not 1 <= self.max_items <= MAX_FORM_ITEMS:
            out["max_items"] = f"the maximum length must be between 1 and {MAX_FORM_ITEMS}"
        if self.min_per_skill < 0:
            out["min_per_skill"] = "the minimum per skill must be 0 or more"
        elif "max_items" not in out and self.min_per_skill * len(self.skills) > self.max_items:
            out["max_items"] = (f"the maximum length {self.max_items} is less than the per-skill "
                                f"minimums ({len(self.skills)} skills × {self.min_per_skill} = "
                                f"{self.min_per_skill * len(self.skills)})")
        if not unknown and self.skills:
            short = [s for s in self.skills if items_per_skill[s] < self.min_per_skill]
            if short and "min_per_skill" not in out:
                out["min_per_skill"] = (f"skill {short[0]!r} has only "
                                        f"{items_per_skill[short[0]]} usable items, fewer than "
                                        f"the minimum of {self.min_per_skill}")
            available = sum(items_per_skill[s] for s in self.skills)
            if "max_items" not in out and self.max_items > available:
                out["max_items"] = (f"the chosen skills have {available} usable items; the "
                                    f"maximum length can be at most that")
        if not (np.isfinite(self.max_exposure) and 0 < self.max_exposure <= 1):
            out["max_exposure"] = "the largest share per item must be above 0 and at most 1"
        return out

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["skills"], out["exclude_tags"] = list(self.skills), list(self.exclude_tags)
        out["weights"] = dict(self.weights)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DesignChoices:
        return cls(skills=tuple(d["skills"]),
                   weights={str(k): float(v) for k, v in d.get("weights", {}).items()},
                   overall_se=float(d.get("overall_se", DEFAULT_OVERALL_SE)),
                   max_items=int(d.get("max_items", DEFAULT_MAX_ITEMS)),
                   min_per_skill=int(d.get("min_per_skill", DEFAULT_MIN_PER_SKILL)),
                   exposure_control=bool(d.get("exposure_control", True)),
                   max_exposure=float(d.get("max_exposure", DEFAULT_MAX_EXPOSURE)),
                   exclude_tags=tuple(d.get("exclude_tags", ())))

    @classmethod
    def from_blueprint(cls, bp: Blueprint, skills: Sequence[str]) -> DesignChoices:
        """The choices a stored blueprint corresponds to, as far as it says (an assessment made
        from a blueprint file may use rules the form does not offer)."""
        from engine import NoExposureControl

        rule = next((r for r in bp.stopping if isinstance(r, CompositeSE)), None)
        names = tuple(s.skill for s in bp.skills) or tuple(skills)
        mins = [s.min_items for s in bp.skills] or [DEFAULT_MIN_PER_SKILL]
        weights = dict(rule.weights) if rule is not None else {}
        return cls(skills=names, weights={s: weights.get(s, 0.0) for s in names}
                   if weights else {},
                   overall_se=float(rule.se_target) if rule is not None
                   else float(bp.se_target or DEFAULT_OVERALL_SE),
                   max_items=bp.max_items, min_per_skill=min(mins),
                   exposure_control=not isinstance(bp.exposure, NoExposureControl),
                   exclude_tags=tuple(bp.exclude_tags))


def choices_blueprint(choices: DesignChoices, population: Population | None = None
                      ) -> Blueprint:
    """The blueprint of ``choices`` before exposure tuning: `default_blueprint` with the chosen
    skills, limits and SE target, the chosen weights in its composite rule, and randomesque
    exposure control (none when off)."""
    from dataclasses import replace

    from engine import NoExposureControl

    bp = default_blueprint(choices.skills, population, max_items=choices.max_items,
                           min_per_skill=choices.min_per_skill, overall_se=choices.overall_se,
                           exposure=None if choices.exposure_control else NoExposureControl())
    weights = choices.overall_weights()
    if weights:
        bp = replace(bp, stopping=tuple(replace(r, weights=weights)
                                        if isinstance(r, CompositeSE) else r
                                        for r in bp.stopping))
    return replace(bp, exclude_tags=tuple(choices.exclude_tags))


def design_blueprint(pool: ItemPool, choices: DesignChoices, population: Population
                     ) -> Blueprint:
    """`choices_blueprint`, its exposure control tuned on ``pool`` for ``population`` when on
    (`tune_exposure`, to ``choices.max_exposure``)."""
    bp = choices_blueprint(choices, population)
    if choices.exposure_control:
        bp = tune_exposure(pool, bp, population, r_max=choices.max_exposure)
    return bp


def design_assessment(session: Any, skills: Sequence[str], blueprint: Blueprint | None = None,
                      *, exclude_tags: Sequence[str] = (), bank_id: int | None = None,
                      n: int = DEFAULT_SIMULEES, choices: DesignChoices | None = None,
                      progress: Any = None) -> tuple[Blueprint, Feasibility]:
    """What `proficio assessment create` and the web form's check (a job) do before a test goes
    live: the design of ``choices`` (default: `DesignChoices` over ``skills``; exposure control
    tuned on the current bank for the population on record, without the items of
    ``exclude_tags``) unless a ``blueprint`` is given, then its feasibility check; ``bank_id``
    is the bank the assessment draws from (None: the database's only bank). ``progress(message,
    share)`` hears of each step."""
    from dataclasses import replace

    from item_bank.pool import load_item_pool

    def step(message: str, share: float) -> None:
        if progress is not None:
            progress(message, share)

    if blueprint is None:
        choices = choices or DesignChoices(skills=tuple(skills))
        names = list(choices.skills)
    else:
        names = list(skills) if not blueprint.skills else [s.skill for s in blueprint.skills]
    pool = load_item_pool(session, names, bank_id=bank_id)
    population = population_on_record(session, names, bank_id)
    if choices is not None:
        tags = tuple(dict.fromkeys((*choices.exclude_tags, *exclude_tags)))
        step("tuning exposure control" if choices.exposure_control else "designing", 0.1)
        blueprint = design_blueprint(pool, replace(choices, exclude_tags=tags), population)
    else:
        assert blueprint is not None
        tags = tuple(dict.fromkeys((*blueprint.exclude_tags, *exclude_tags)))
        blueprint = replace(blueprint, exclude_tags=tags)
    step(f"simulating {n} candidates", 0.6)
    return blueprint, check_design(pool, blueprint, population, n=n)


def describe(f: Feasibility) -> list[str]:
    """The feasibility figures as lines for the command line and the web page."""
    lines = [f"simulated on the current bank for {f.n_simulees} candidates of the "
             f"{f.population}",
             f"length: {f.length_phrase()}; mean {f.mean_length:.1f}; "
             f"{f.share_early:.0%} stop before the maximum",
             f"overall score: mean SE {f.overall_se:.3f}"
             + (f" (target {f.overall_se_target:.2f})" if f.overall_se_target else "")
             + f", 90 % interval coverage {f.overall_coverage:.2f}",
             "per skill: mean SE " + ", ".join(f"{s} {v:.2f}" for s, v in f.skill_se.items())
             + f"; 90 % interval coverage {f.skill_coverage:.2f}",
             f"exposure: most-used item {f.max_exposure:.0%} of candidates, mean overlap "
             f"{f.overlap:.0%}, most common first item {f.first_item_share:.0%}, bank used "
             f"{f.bank_used:.0%}"]
    return lines + [f"warning: {w}" for w in f.warnings]
