"""Recalibration of a bank from a response log: one function, one typed result, for the
``proficio recalibrate`` command and the web's calibration jobs alike.

`recalibrate` estimates, sets the scale, tests fit and drift, analyses the items and recommends
per item what to do with the new parameters; `recommend` applies publishing rules the
psychometrician can see and change; `score_impact` previews what publishing a selection does to
completed candidates' scores.

**Modes.**

* ``anchored`` (default): every item whose current parameters are operational *and not
  provisional* is an anchor, held fixed at its current parameters; every other item with
  responses (pretest items, items with provisional parameters) is estimated on the anchors'
  scale, the latent mean and SD of the skill being estimated (fixed-parameter calibration; Kim
  2006). A skill with fewer than `MIN_ANCHORS` anchors cannot be anchored: all its items are
  estimated on N(0, 1) and the scale is then set as in ``free`` mode, and the result says so.
* ``free``: every item is estimated on N(0, 1) per skill, then each skill is linked to the
  current parameters by Stocking–Lord through its common items with non-provisional parameters
  (with anchor purification; `calibration.linking`). With fewer than `MIN_ANCHORS` such items
  the common items with provisional parameters are used (stated as a warning), and with fewer
  than that the scale stays the sample's N(0, 1) (stated).

Each skill's `SkillScale` states which of these happened.

**Defaults** (the same for the CLI and the web, `RecalibrationSettings`): 2PL, anchored, a
lognormal(0, 0.5) prior on slopes. The prior is BILOG-MG's default (Zimowski et al. 2003): on
adaptive logs many items have few responses, and plain ML then puts slopes at the bound (the
demo log once gave five slopes of 20 with SE 2,396). `proficio calibrate` keeps plain ML by
default because it is the command checked against R's mirt; both state what they used.

**Recommendation** per item (`recommend`, rules in `PublishRules`), always with its reason:
``review`` first when a diagnostic calls for a look (possibly miskeyed, a parameter at its
bound, misfit, drift — each as the rules say); then ``hold`` (keep the current parameters) when
the item has fewer than ``min_responses`` responses, ``SE(b) > max_se_b``, or a current SE of a
or b smaller than the new one (provisional current parameters excepted: their SE describes the
simulation or judgement that produced them, not evidence about the item); ``publish``
otherwise. Anchors and items that were not
calibrated are held.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypedDict

import numpy as np
from numpy.typing import NDArray

import irt
from calibration.correlation import LatentCorrelation, estimate_latent_correlation
from calibration.drift import DriftRule, ParameterErrors, drift_test
from calibration.fit import (
    FIT_ALPHA,
    administered_reliability,
    empirical_reliability,
    item_fit,
    rest_predictions,
)
from calibration.item_analysis import ItemAnalysis, OptionStatistics, analyse_items
from calibration.linking import link, transform_bank
from calibration.mml import MMLCalibrator
from calibration.results import EMProgress, ItemSpec, Priors
from irt import Bank, ItemParams, SparseResponses
from irt.io import ItemTable, ResponseLog

MODES = ("anchored", "free")
MODELS = ("1pl", "2pl", "3pl")
ACTIONS = ("publish", "hold", "review")
#: Fewest anchors (anchored mode) or common items (linking) that set a skill's scale.
MIN_ANCHORS = 5
DEFAULT_PRIOR_A_SD = 0.5
FORMAT = "proficio-recalibration/1"


# -- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishRules:
    """Rules that pre-select items for publishing (module docstring); every field is shown to
    and can be changed by the psychometrician."""

    min_responses: int = 200
    max_se_b: float = 0.30
    require_more_precise: bool = True
    hold_misfit: bool = True
    hold_drift: bool = True
    hold_miskeyed: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.min_responses, int) and self.min_responses >= 1):
            raise ValueError(f"field 'min_responses' must be an integer >= 1, got "
                             f"{self.min_responses!r}")
        if not (math.isfinite(self.max_se_b) and self.max_se_b > 0):
            raise ValueError(f"field 'max_se_b' must be a number > 0, got {self.max_se_b!r}")

    @classmethod
    def from_form(cls, form: Mapping[str, str], default: PublishRules | None = None
                  ) -> PublishRules:
        """Rules from text fields (a web form, query string); missing fields keep ``default``.
        Raises `ValueError` naming the field."""
        base = default or cls()
        values: dict[str, Any] = {}
        for name, kind in (("min_responses", int), ("max_se_b", float)):
            text = str(form.get(name, "")).strip()
            if text:
                try:
                    values[name] = kind(text)
                except ValueError:
                    raise ValueError(f"field {name!r}: not a valid number: {text!r}") from None
        if "rules" in form:  # a submitted rules form: unchecked boxes are absent
            for name in ("require_more_precise", "hold_misfit", "hold_drift", "hold_miskeyed"):
                values[name] = str(form.get(name, "")).lower() in ("on", "true", "1", "yes")
        return replace(base, **values)


@dataclass(frozen=True)
class RecalibrationSettings:
    """What to estimate and how (module docstring for the defaults)."""

    model: str = "2pl"
    mode: str = "anchored"
    prior_a_sd: float | None = DEFAULT_PRIOR_A_SD
    fit_alpha: float = FIT_ALPHA
    drift: DriftRule = field(default_factory=DriftRule)
    rules: PublishRules = field(default_factory=PublishRules)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"field 'model' must be one of {MODELS}, got {self.model!r}")
        if self.mode not in MODES:
            raise ValueError(f"field 'mode' must be one of {MODES}, got {self.mode!r}")
        if self.prior_a_sd is not None and not (0 < self.prior_a_sd <= 5):
            raise ValueError("field 'prior_a_sd' must be in (0, 5] or empty")
        if not 0 < self.fit_alpha < 1:
            raise ValueError(f"field 'fit_alpha' must be in (0, 1), got {self.fit_alpha}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RecalibrationSettings:
        return cls(model=d.get("model", "2pl"), mode=d.get("mode", "anchored"),
                   prior_a_sd=d.get("prior_a_sd", DEFAULT_PRIOR_A_SD),
                   fit_alpha=float(d.get("fit_alpha", FIT_ALPHA)),
                   drift=DriftRule(**d.get("drift", {})),
                   rules=PublishRules(**d.get("rules", {})))


# -- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CurrentParameters:
    """The bank's current parameters with what recalibration needs to know about them.

    Arrays are aligned with ``bank``: SEs (NaN unknown), responses behind them (−1 unknown),
    the item status (``pretest``, ``operational``, ``retired``) and whether the parameters are
    provisional (set by judgement or a first small calibration, not to be trusted as anchors).
    """

    bank: Bank
    se: ParameterErrors
    n_responses: NDArray[np.int64]
    status: tuple[str, ...]
    provisional: NDArray[np.bool_]

    @classmethod
    def from_table(cls, table: ItemTable) -> CurrentParameters:
        """From an items CSV: optional ``se_a``/``se_b``, ``n_responses``, ``status``
        (default operational) and ``provisional`` (default false) columns."""
        bank = table.bank
        n = len(bank)
        extra = table.extra
        counts = np.full(n, -1, dtype=np.int64)
        for k, text in enumerate(extra.get("n_responses", [""] * n)):
            text = str(text).strip()
            if text:
                try:
                    counts[k] = int(float(text))
                except ValueError:
                    raise ValueError(f"item {bank.item_ids[k]!r}: field 'n_responses' is not a "
                                     f"number: {text!r}") from None
        status = tuple((str(s).strip() or "operational")
                       for s in extra.get("status", ["operational"] * n))
        for k, s in enumerate(status):
            if s not in ("pretest", "operational", "retired"):
                raise ValueError(f"item {bank.item_ids[k]!r}: field 'status' must be pretest, "
                                 f"operational or retired, got {s!r}")
        prov = np.array([str(v).strip().lower() in ("true", "1", "yes")
                         for v in extra.get("provisional", ["false"] * n)], dtype=bool)
        return cls(bank, ParameterErrors.from_table(table), counts, status, prov)

    @classmethod
    def empty(cls) -> CurrentParameters:
        return cls(_EMPTY_BANK, ParameterErrors.unknown(0),
                   np.zeros(0, dtype=np.int64), (), np.zeros(0, dtype=bool))


def _empty_bank() -> Bank:
    one = Bank.from_params([ItemParams("_", "2pl", 1.0, 0.0)])
    return one.take(np.zeros(0, dtype=np.int64))


_EMPTY_BANK = _empty_bank()


@dataclass(frozen=True)
class ItemKeys:
    """Option labels and key per item, for the item analysis (from the bank's content)."""

    options: Mapping[str, tuple[str, ...]]
    keys: Mapping[str, str]


# -- the result --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitVerdict:
    method: str
    statistic: float | None
    df: int
    p_value: float | None
    flagged: bool
    note: str


@dataclass(frozen=True)
class DriftVerdict:
    delta_a: float
    se_delta_a: float | None
    z_a: float | None
    delta_b: float
    se_delta_b: float | None
    z_b: float | None
    flagged: str          # "", "a", "b" or "a+b"
    evidence: str


@dataclass(frozen=True)
class RecalibratedItem:
    """One item of a recalibration: current and new parameters, diagnostics, recommendation.

    ``role``: ``estimated``, ``anchor`` (held fixed) or ``excluded`` (not calibrated; the
    reason in ``action_reason``). New parameters are on the reporting (current) scale.
    """

    item_id: str
    skill: str
    model: str
    status: str
    role: str
    current: ItemParams | None
    current_se_a: float | None
    current_se_b: float | None
    current_n: int | None
    current_provisional: bool
    new: ItemParams | None
    se_a: float | None
    se_b: float | None
    se_c: float | None
    n_responses: int
    fit: FitVerdict | None
    drift: DriftVerdict | None
    analysis: ItemAnalysis | None
    bound: str
    action: str
    action_reason: str


class _ItemCommon(TypedDict):
    """The `RecalibratedItem` fields shared by calibrated and excluded items (its current
    state and its response count), passed by keyword to both constructors."""

    item_id: str
    skill: str
    status: str
    current: ItemParams | None
    current_se_a: float | None
    current_se_b: float | None
    current_n: int | None
    current_provisional: bool
    n_responses: int
    analysis: ItemAnalysis | None


@dataclass(frozen=True)
class SkillScale:
    """How a skill's scale was set, and its population on that scale."""

    skill: str
    how: str              # "anchors", "linked", "linked-provisional", "sample"
    statement: str
    n_anchors: int
    A: float
    B: float
    dropped: tuple[str, ...]
    latent_mean: float
    latent_sd: float
    marginal_reliability: float
    empirical_reliability: float
    n_persons: int


@dataclass(frozen=True, eq=False)
class Recalibration:
    """Everything a recalibration found (`recalibrate`); `to_dict`/`from_dict` round-trip it
    through JSON (the web job stores it) and `to_rows` is the table both front ends show."""

    settings: RecalibrationSettings
    items: tuple[RecalibratedItem, ...]
    scales: tuple[SkillScale, ...]
    correlations: LatentCorrelation | None
    warnings: tuple[str, ...]
    n_persons: int
    n_responses: int
    loglik: float
    converged: bool
    n_iter: int

    COLUMNS = ("item_id", "skill", "status", "role", "n", "a_current", "b_current",
               "se_b_current", "a_new", "b_new", "se_a_new", "se_b_new", "fit_method", "fit_p",
               "fit_flag", "drift_delta_b", "drift_se_b", "drift_z_b", "drift_flag",
               "p_correct", "key_pbis", "miskeyed", "action", "reason")

    @property
    def headline(self) -> str:
        n_est = sum(1 for it in self.items if it.role == "estimated")
        n_pub = sum(1 for it in self.items if it.action == "publish")
        return (f"{n_est} item(s) estimated from {self.n_responses} responses of "
                f"{self.n_persons} candidates ({self.settings.mode}); "
                f"{'converged' if self.converged else 'NOT converged'} in {self.n_iter} cycles; "
                f"{n_pub} recommended for publishing")

    def item(self, item_id: str) -> RecalibratedItem:
        for it in self.items:
            if it.item_id == item_id:
                return it
        raise LookupError(f"item {item_id!r} is not in this recalibration")

    def with_rules(self, rules: PublishRules) -> Recalibration:
        """The same result with the recommendations of other rules."""
        items = tuple(replace(it, action=a, action_reason=r)
                      for it in self.items for a, r in [recommend(it, rules)])
        return replace(self, items=items, settings=replace(self.settings, rules=rules))

    def to_rows(self) -> list[tuple[Any, ...]]:
        """One row per item in `COLUMNS` order (numbers rounded to 6 significant digits)."""
        rows = []
        for it in self.items:
            cur, new, f, d, an = it.current, it.new, it.fit, it.drift, it.analysis
            rows.append((
                it.item_id, it.skill, it.status, it.role, it.n_responses,
                _r(cur.a if cur else None), _r(cur.b if cur else None), _r(it.current_se_b),
                _r(new.a if new else None), _r(new.b if new else None), _r(it.se_a),
                _r(it.se_b), f.method if f else "", _r(f.p_value if f else None),
                "misfit" if f and f.flagged else "", _r(d.delta_b if d else None),
                _r(d.se_delta_b if d else None), _r(d.z_b if d else None),
                d.flagged if d else "", _r(an.p_correct if an else None),
                _r(an.key_point_biserial if an else None),
                (an.suspected_key or "yes") if an and an.possibly_miskeyed else "",
                it.action, it.action_reason))
        return rows

    def to_dict(self) -> dict[str, Any]:
        return _clean({"format": FORMAT, "settings": self.settings.to_dict(),
                       "items": [asdict(it) for it in self.items],
                       "scales": [asdict(s) for s in self.scales],
                       "correlations": self.correlations.to_dict() if self.correlations
                       else None,
                       "warnings": list(self.warnings), "n_persons": self.n_persons,
                       "n_responses": self.n_responses, "loglik": self.loglik,
                       "converged": self.converged, "n_iter": self.n_iter})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Recalibration:
        if d.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        return cls(RecalibrationSettings.from_dict(d["settings"]),
                   tuple(_item_from_dict(x) for x in d["items"]),
                   tuple(SkillScale(**{**s, "dropped": tuple(s["dropped"])})
                         for s in d["scales"]),
                   LatentCorrelation.from_dict(d["correlations"]) if d.get("correlations")
                   else None, tuple(d["warnings"]), int(d["n_persons"]),
                   int(d["n_responses"]), _f(d["loglik"]), bool(d["converged"]),
                   int(d["n_iter"]))


def _r(x: float | None) -> float | None:
    if x is None or not math.isfinite(float(x)):
        return None
    return float(f"{float(x):.6g}")


def _f(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _opt(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _clean(v: Any) -> Any:
    """JSON-safe values: NaN/inf → None, numpy → Python, tuples → lists."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _params_from(d: Mapping[str, Any] | None) -> ItemParams | None:
    if d is None:
        return None
    return ItemParams(d["item_id"], d["model"], d["a"], d["b"], d["c"], d["d"],
                      tuple(d.get("thresholds") or ()), d["skill"])


def _item_from_dict(x: Mapping[str, Any]) -> RecalibratedItem:
    an = x.get("analysis")
    analysis = None
    if an is not None:
        analysis = ItemAnalysis(**{**an, "p_correct": _f(an["p_correct"]),
                                   "key_point_biserial": _f(an["key_point_biserial"]),
                                   "options": tuple(OptionStatistics(
                                       **{**o, "share": _f(o["share"]),
                                          "point_biserial": _f(o["point_biserial"])})
                                       for o in an["options"])})
    return RecalibratedItem(**{**x, "current": _params_from(x["current"]),
                               "new": _params_from(x["new"]),
                               "fit": FitVerdict(**x["fit"]) if x.get("fit") else None,
                               "drift": DriftVerdict(**x["drift"]) if x.get("drift") else None,
                               "analysis": analysis})


# -- recommendation ----------------------------------------------------------------------------


def recommend(it: RecalibratedItem, rules: PublishRules) -> tuple[str, str]:
    """``(action, reason)`` of one item under ``rules`` (module docstring)."""
    if it.role == "excluded" or it.new is None:
        return "hold", it.action_reason if it.role == "excluded" else "no new estimate"
    if it.role == "anchor":
        return "hold", "anchor: held at its current parameters"
    an = it.analysis
    if rules.hold_miskeyed and an is not None and an.possibly_miskeyed:
        return "review", f"possibly miskeyed: {an.reason}"
    if it.bound:
        return "review", it.bound
    if rules.hold_misfit and it.fit is not None and it.fit.flagged:
        return "review", f"misfit ({it.fit.method}, p = {it.fit.p_value:.2g})"
    if rules.hold_drift and it.drift is not None and it.drift.flagged:
        d = it.drift
        return "review", (f"drift in {d.flagged}: Δb = {d.delta_b:+.2f}"
                          + (f", z = {d.z_b:+.1f}" if d.z_b is not None else ""))
    if it.n_responses < rules.min_responses:
        return "hold", f"{it.n_responses} responses < {rules.min_responses}"
    if it.se_b is None or it.se_b > rules.max_se_b:
        shown = "unknown" if it.se_b is None else f"{it.se_b:.3f}"
        return "hold", f"SE(b) {shown} > {rules.max_se_b}"
    if rules.require_more_precise and not it.current_provisional:
        for name, cur, new in (("a", it.current_se_a, it.se_a), ("b", it.current_se_b, it.se_b)):
            if cur is not None and (new is None or cur < new):
                return "hold", (f"current SE({name}) {cur:.3f} is smaller than the new "
                                f"{'unknown' if new is None else f'{new:.3f}'}")
    parts = [f"n = {it.n_responses}", f"SE(b) = {it.se_b:.3f}"]
    if it.current_se_b is not None:
        parts.append(f"current SE(b) = {it.current_se_b:.3f}")
    parts.append("fit ok" if it.fit and it.fit.p_value is not None else "fit not tested")
    parts.append("no drift" if it.drift and it.drift.evidence != "not tested: no SE"
                 else "drift not tested")
    return "publish", "; ".join(parts)


# -- the function ------------------------------------------------------------------------------


def recalibrate(log: ResponseLog, current: CurrentParameters,
                settings: RecalibrationSettings | None = None, *,
                skills: Mapping[str, str] | None = None,
                keys: ItemKeys | None = None, choices: Sequence[str] | None = None,
                scored_as: Mapping[str, tuple[str, int]] | None = None,
                callback: Callable[[EMProgress], None] | None = None) -> Recalibration:
    """Recalibrate the items of ``log`` against the ``current`` parameters.

    Parameters
    ----------
    log : the responses (a person's rows in administration order).
    current : the bank's current parameters (items without parameters are simply absent).
    settings : model, mode, prior, fit level, drift rule and publishing rules.
    skills : the skill of items that have no current parameters (new pretest items).
    keys, choices : option labels and keys per item, and the chosen option label per response
        row of ``log`` (``""`` unknown), for the item analysis; both or neither.
    scored_as : ``item → (model, number of categories)`` for items whose scoring fixes their
        model (issue 22: a partial-credit multiple-response item with C correct options is a
        GPCM/PCM/GRM item with C + 1 categories); they are fitted so instead of with
        ``settings.model``, with every category kept even when no one reached the top one.
    callback : EM progress (progress bars, job progress).

    Raises
    ------
    ValueError : naming the item or field (no responses, an item of unknown skill, …).
    """
    settings = settings or RecalibrationSettings()
    if log.data.n_responses == 0:
        raise ValueError("there are no responses to recalibrate")
    if (keys is None) != (choices is None):
        raise ValueError("the item analysis needs both the keys and the chosen options")
    if choices is not None and len(choices) != log.data.n_responses:
        raise ValueError(f"{len(choices)} chosen options for {log.data.n_responses} responses")
    cur_bank = current.bank
    cur_pos = {iid: k for k, iid in enumerate(cur_bank.item_ids)}
    skill_of: dict[str, str] = dict(skills or {})
    for iid, k in cur_pos.items():
        skill_of[iid] = cur_bank.skills[k]
    for iid in log.item_ids:
        if iid not in skill_of:
            raise ValueError(f"item {iid!r}: no current parameters and no skill given; its "
                             f"skill is unknown (give the items' skills)")
    warnings: list[str] = []
    trusted = {iid for iid, k in cur_pos.items()
               if current.status[k] == "operational" and not current.provisional[k]}
    in_log = set(log.item_ids)
    anchor_ids: set[str] = set()
    if settings.mode == "anchored":
        for skill in dict.fromkeys(skill_of[i] for i in log.item_ids):
            cand = [i for i in log.item_ids if skill_of[i] == skill and i in trusted]
            if len(cand) >= MIN_ANCHORS:
                anchor_ids.update(cand)
            else:
                warnings.append(f"skill {skill}: {len(cand)} non-provisional operational "
                                f"item(s) answered (< {MIN_ANCHORS}); cannot anchor, every "
                                f"item estimated")
    specs = []
    for iid in log.item_ids:
        if iid in anchor_ids:
            specs.append(ItemSpec(iid, cur_bank.models[cur_pos[iid]], skill_of[iid]))
        elif scored_as and iid in scored_as:
            model, n_cat = scored_as[iid]
            specs.append(ItemSpec(iid, model, skill_of[iid], n_cat))
        else:
            specs.append(ItemSpec(iid, settings.model, skill_of[iid]))
    anchors = cur_bank.take([cur_pos[i] for i in log.item_ids if i in anchor_ids]) \
        if anchor_ids else None
    priors = Priors(a=(0.0, settings.prior_a_sd) if settings.prior_a_sd else None)
    cal = MMLCalibrator(settings.model, priors=priors, callback=callback)
    cal.fit(log, specs, anchors=anchors)
    fitted = cal.items_
    position = {iid: k for k, iid in enumerate(fitted.item_ids)}
    data = _indexed(log, fitted)
    latent = {f.skill: (f.latent_mean, f.latent_sd) for f in cal.skills_}

    # the scale of every skill: anchors, a linking to the current parameters, or the sample's
    scales: list[SkillScale] = []
    moved_params: dict[str, ItemParams] = {}
    factor: dict[str, tuple[float, float]] = {}
    for sk_fit in cal.skills_:
        skill = sk_fit.skill
        members = fitted.skill_indices(skill)
        ids = [fitted.item_ids[k] for k in members]
        n_anchor = sum(1 for i in ids if i in anchor_ids)
        A, B = 1.0, 0.0
        dropped: tuple[str, ...] = ()
        if n_anchor:
            how = "anchors"
            statement = (f"anchored on {n_anchor} operational item(s) held at their current "
                         f"parameters")
        else:
            common = [i for i in ids if i in trusted]
            how = "linked"
            if len(common) < MIN_ANCHORS:
                common = [i for i in ids if i in cur_pos
                          and cur_bank.models[cur_pos[i]] == fitted.models[position[i]]]
                how = "linked-provisional"
            if len(common) >= MIN_ANCHORS:
                res = link(fitted.take(members), cur_bank, "stocking-lord", common=common,
                           purify=True)
                A, B, dropped = res.A, res.B, res.dropped
                statement = (f"linked to the current parameters by Stocking–Lord through "
                             f"{len(res.common)} common item(s)"
                             + (f" (dropped {', '.join(dropped)})" if dropped else "")
                             + f": θ_current = {A:.3f} θ_new {B:+.3f}")
                if how == "linked-provisional":
                    statement += "; the common items' current parameters are provisional"
                    warnings.append(f"skill {skill}: linked through items whose current "
                                    f"parameters are provisional")
            else:
                how = "sample"
                statement = ("no anchors and too few common items: the scale is N(0, 1) of "
                             "this sample of candidates")
                warnings.append(f"skill {skill}: scale set by this sample (N(0, 1)), not "
                                f"linked to the current parameters")
        factor[skill] = (A, B)
        for p in transform_bank(fitted.take(members), A, B).params():
            moved_params[p.item_id] = p
        mean, sd = sk_fit.latent_mean, sk_fit.latent_sd
        quad = irt.normal_grid(61, mean, sd)
        persons = cal.scores_.n_responses[:, list(cal.scores_.skills).index(skill)] > 0
        s_idx = list(cal.scores_.skills).index(skill)
        emp = empirical_reliability(cal.scores_.theta[persons, s_idx],
                                    cal.scores_.se[persons, s_idx]) if persons.sum() > 1 \
            else float("nan")
        in_skill = np.isin(data.item, members)
        answered = SparseResponses(data.person[in_skill],
                                   np.searchsorted(members, data.item[in_skill]),
                                   data.response[in_skill], data.n_persons, members.size)
        scales.append(SkillScale(skill, how, statement, n_anchor, A, B, tuple(dropped),
                                 A * mean + B, A * sd,
                                 administered_reliability(answered, fitted.take(members), quad),
                                 emp, int(persons.sum())))

    # fit on the calibration's own scale and latent distribution
    estimated = np.array([i not in anchor_ids for i in fitted.item_ids], dtype=bool)
    fit = item_fit(data, fitted, alpha=settings.fit_alpha, latent=latent, estimated=estimated)
    notes = fit.notes()

    # drift of estimated items with trusted current parameters, on the current scale
    se = cal.se_
    se_new_a = np.array([se.a[position[i]] / factor[fitted.skills[position[i]]][0]
                         for i in fitted.item_ids])
    se_new_b = np.array([se.b[position[i]] * factor[fitted.skills[position[i]]][0]
                         for i in fitted.item_ids])
    testable = [k for k, iid in enumerate(fitted.item_ids)
                if estimated[k] and iid in trusted
                and cur_bank.models[cur_pos[iid]] == fitted.models[k]]
    drift_of: dict[str, DriftVerdict] = {}
    if testable:
        cp = [cur_pos[fitted.item_ids[k]] for k in testable]
        new_a = np.array([moved_params[fitted.item_ids[k]].a for k in testable])
        new_b = np.array([_location(moved_params[fitted.item_ids[k]]) for k in testable])
        test = drift_test(cur_bank.a[cp], cur_bank.b[cp], new_a, new_b,
                          ParameterErrors(current.se.a[cp], current.se.b[cp]),
                          ParameterErrors(se_new_a[testable], se_new_b[testable]),
                          settings.drift)
        for j, k in enumerate(testable):
            flag = "+".join(n for n, f in (("a", test.flag_a[j]), ("b", test.flag_b[j])) if f)
            drift_of[fitted.item_ids[k]] = DriftVerdict(
                float(new_a[j] - cur_bank.a[cp[j]]), _opt(test.se_diff_a[j]), _opt(test.z_a[j]),
                float(new_b[j] - cur_bank.b[cp[j]]), _opt(test.se_diff_b[j]), _opt(test.z_b[j]),
                flag, test.evidence[j])

    analysis = _item_analysis(log, data, fitted, keys, choices, latent) if keys else {}
    bounds = {i.item_id: i.message for i in cal.issues_ if i.kind == "bound" and i.item_id}
    excluded = {i.item_id: i.message for i in cal.issues_ if i.kind == "excluded" and i.item_id}

    items: list[RecalibratedItem] = []
    cur_items = cur_bank.params()
    counts = np.bincount(log.data.item, minlength=len(log.item_ids))
    n_of = dict(zip(log.item_ids, counts.tolist(), strict=True))
    for iid in sorted(in_log | set(cur_pos), key=lambda i: (skill_of.get(i, ""), i)):
        k_cur = cur_pos.get(iid)
        cur_params = cur_items[k_cur] if k_cur is not None else None
        status = current.status[k_cur] if k_cur is not None else "pretest"
        shared: _ItemCommon = {
            "item_id": iid, "skill": skill_of[iid], "status": status,
            "current": cur_params,
            "current_se_a": _opt(current.se.a[k_cur]) if k_cur is not None else None,
            "current_se_b": _opt(current.se.b[k_cur]) if k_cur is not None else None,
            "current_n": int(current.n_responses[k_cur])
            if k_cur is not None and current.n_responses[k_cur] >= 0 else None,
            "current_provisional": bool(current.provisional[k_cur]) if k_cur is not None
            else False,
            "n_responses": int(n_of.get(iid, 0)), "analysis": analysis.get(iid),
        }
        k_new = position.get(iid)
        if k_new is None:
            reason = excluded.get(iid, "no responses in this log")
            items.append(RecalibratedItem(**shared, model=cur_params.model if cur_params
                                          else settings.model, role="excluded", new=None,
                                          se_a=None, se_b=None, se_c=None, fit=None,
                                          drift=None, bound="", action="hold",
                                          action_reason=f"not calibrated: {reason}"))
            continue
        f = FitVerdict(fit.method[k_new], _opt(fit.statistic[k_new]), int(fit.df[k_new]),
                       _opt(fit.p_value[k_new]), bool(fit.flag_fit[k_new]), notes[k_new])
        it = RecalibratedItem(
            **shared, model=fitted.models[k_new],
            role="anchor" if iid in anchor_ids else "estimated",
            new=moved_params[iid], se_a=_opt(se_new_a[k_new]), se_b=_opt(se_new_b[k_new]),
            se_c=_opt(se.c[k_new]), fit=f, drift=drift_of.get(iid), bound=bounds.get(iid, ""),
            action="hold", action_reason="")
        action, reason = recommend(it, settings.rules)
        items.append(replace(it, action=action, action_reason=reason))
    for i in cal.issues_:
        if i.kind not in ("excluded", "few_responses", "bound"):
            warnings.append(i.message)
    correlations = None
    if len(cal.skills_) >= 2:
        standard = Bank.from_params(
            p for s in cal.skills_
            for p in transform_bank(fitted.take(fitted.skill_indices(s.skill)),
                                    1.0 / s.latent_sd,
                                    -s.latent_mean / s.latent_sd).params())
        correlations = estimate_latent_correlation(standard, _indexed(log, standard))
    return Recalibration(settings, tuple(items), tuple(scales), correlations, tuple(warnings),
                         int(log.data.n_persons), int(log.data.n_responses), float(cal.loglik_),
                         bool(cal.converged_), int(cal.n_iter_))


def _location(p: ItemParams) -> float:
    return float(np.mean(p.thresholds)) if p.thresholds else float(p.b)


def _indexed(log: ResponseLog, bank: Bank) -> SparseResponses:
    """The log's responses re-indexed to ``bank`` (items left out of it dropped), rows in the
    log's order."""
    position = {iid: k for k, iid in enumerate(bank.item_ids)}
    remap = np.array([position.get(iid, -1) for iid in log.item_ids], dtype=np.int64)
    mapped = remap[log.data.item]
    keep = mapped >= 0
    return SparseResponses(log.data.person[keep], mapped[keep], log.data.response[keep],
                           log.data.n_persons, len(bank))


def _item_analysis(log: ResponseLog, data: SparseResponses, fitted: Bank, keys: ItemKeys,
                   choices: Sequence[str] | None, latent: Mapping[str, tuple[float, float]]
                   ) -> dict[str, ItemAnalysis]:
    """`calibration.item_analysis.analyse_items` with the item-excluded ability of every
    response (rest-posterior mean, per skill)."""
    position = {iid: k for k, iid in enumerate(fitted.item_ids)}
    remap = np.array([position.get(iid, -1) for iid in log.item_ids], dtype=np.int64)
    keep = remap[log.data.item] >= 0
    chosen = np.asarray(choices if choices is not None else [""] * log.data.n_responses,
                        dtype=object)[keep]
    ability = np.full(data.n_responses, np.nan)
    for skill in dict.fromkeys(fitted.skills):
        members = fitted.skill_indices(skill)
        rows = np.flatnonzero(np.isin(data.item, members))
        sub = SparseResponses(data.person[rows], np.searchsorted(members, data.item[rows]),
                              data.response[rows], data.n_persons, members.size)
        mean, sd = latent.get(skill, (0.0, 1.0))
        ability[rows] = rest_predictions(sub, fitted.take(members),
                                         irt.normal_grid(61, mean, sd)).theta
    labels = [tuple(keys.options.get(iid, ())) for iid in fitted.item_ids]
    where = [{str(lab).lower(): j for j, lab in enumerate(opts)} for opts in labels]
    choice = np.array([where[i].get(str(c).strip().lower(), -1)
                       for i, c in zip(data.item, chosen, strict=True)], dtype=np.int64)
    res = analyse_items(fitted.item_ids, data.item, data.response, choice, ability, labels,
                        [keys.keys.get(iid, "") for iid in fitted.item_ids], fitted.a)
    return {r.item_id: r for r in res}


# -- publishing impact -------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreImpact:
    """What publishing a selection would do to completed candidates' scores (EAP, N(0, 1)
    prior, per skill), against the current parameters."""

    n_scores: int
    threshold: float
    n_moved: int
    max_shift: float
    mean_abs_shift: float
    n_decisions: int
    n_flipped: int


def score_impact(responses: SparseResponses, current: Bank, proposed: Bank,
                 cut_theta: NDArray[np.float64] | None, *, threshold: float = 0.2,
                 z: float = 1.6448536269514722) -> ScoreImpact:
    """Re-score every (person, skill) of ``responses`` with both banks.

    ``responses`` index both banks (same item order); ``cut_theta`` per person (NaN: no cut).
    A decision is "pass" when ``θ̂ − z·SE > cut``, "fail" when ``θ̂ + z·SE < cut``, else
    "undecided" (the report's 90 % rule); a flip is any change of it.
    """
    if current.item_ids != proposed.item_ids:
        raise ValueError("the current and proposed banks must list the same items")
    if threshold <= 0:
        raise ValueError(f"field 'threshold' must be > 0, got {threshold}")
    n_scores = n_moved = n_dec = n_flip = 0
    shifts = []
    for skill in dict.fromkeys(current.skills):
        members = current.skill_indices(skill)
        rows = np.isin(responses.item, members)
        if not rows.any():
            continue
        persons = np.unique(responses.person[rows])
        local_p = np.searchsorted(persons, responses.person[rows])
        sub = SparseResponses(local_p, np.searchsorted(members, responses.item[rows]),
                              responses.response[rows], persons.size, members.size)
        old = irt.eap(sub, current.take(members))
        new = irt.eap(sub, proposed.take(members))
        d = np.abs(new.theta - old.theta)
        shifts.append(d)
        n_scores += persons.size
        n_moved += int(np.sum(d > threshold))
        if cut_theta is not None:
            cut = np.asarray(cut_theta, dtype=float)[persons]
            has = np.isfinite(cut)
            before = _decision(old.theta[has], old.se[has], cut[has], z)
            after = _decision(new.theta[has], new.se[has], cut[has], z)
            n_dec += int(has.sum())
            n_flip += int(np.sum(before != after))
    allshift = np.concatenate(shifts) if shifts else np.zeros(0)
    return ScoreImpact(n_scores, threshold, n_moved,
                       float(allshift.max()) if allshift.size else 0.0,
                       float(allshift.mean()) if allshift.size else 0.0, n_dec, n_flip)


def _decision(theta: NDArray, se: NDArray, cut: NDArray, z: float) -> NDArray:
    return np.where(theta - z * se > cut, 1, np.where(theta + z * se < cut, -1, 0))
