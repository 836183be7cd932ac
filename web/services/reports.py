"""Candidate reports: an overall score and per-skill scores with honest intervals, the decision
that produced each classification, and percentiles as ranges against a named norm group.

Reporting scale (documented in docs/recruiter-guide.md): ``score = 500 + 100 θ`` for a skill,
where θ is on the bank's scale (the calibration population's N(0, 1)); the overall score is the
weighted composite ``θ_c = Σ w_k θ_k`` on the same scale (``500 + 100 θ_c``, the weighted mean
of the skill scores), its SE ``√(wᵀ C w)`` from the engine's posterior covariance.

* 90 % interval of a skill: ``θ̂ ± 1.645 SE`` (posterior SD as SE), mapped to the scale.
* 90 % interval of the overall score: de-shrunk (`irt.composite.deshrunk_interval`), so that
  it covers about 90 % at every level of ability (measured: benchmarks/bench_default_design.py).
* Percentile: a *range*, the norm group's share below the interval's two ends,
  ``100 Φ((θ̂ ± 1.645 SE − μ)/σ)``; the norm group is named: the applicants of the latest
  published (non-provisional) calibration, or "simulated reference group (provisional bank)".
* Decision against a cut (on the reporting scale): the engine's own rule (SPRT or CI) when it
  decided the skill during the test, stored with the result; otherwise the report's 90 %
  interval rule (pass when the whole interval lies above the cut, fail when below, undecided
  otherwise), labelled as such. P(misclassified) of the reported side is
  ``Φ(−|θ̂ − θ_cut| / SE)`` under the normal posterior (Rudner 2001).
* A skill without answers is "not measured": no score, interval or percentile is shown.
* Shrinkage: a posterior mean is pulled toward the prior mean; for a normal prior of variance 1
  and precision I from the answers, the pull is ``θ̂_ML − θ̂_EAP ≈ θ̂ SE²/(1 − SE²)``. The report
  notes it when it exceeds `SHRINKAGE_NOTE_POINTS` points.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import Blueprint
from irt.composite import composite_sd, deshrunk_interval, normalized_weights
from item_bank.forensics_models import SessionIntegrity
from item_bank.models import (
    Assessment,
    Candidate,
    CandidateSession,
    Invitation,
    ItemParameterVersion,
    OverallResult,
    Response,
    Skill,
    SkillResult,
    as_utc,
)
from web.db import get_db
from web.services.feasibility import latest_applicants, prior_composite
from web.services.retakes import earlier_sessions, session_window
from web.services.review_state import Review, current_review
from web.services.staff import NotFound, display_status

SCALE_MEAN, SCALE_SD = 500.0, 100.0
#: Every report chart has this axis (θ from −3.5 to 3.5), so two reports compare by eye;
#: an interval beyond it is drawn up to the edge.
CHART_RANGE = (150.0, 850.0)
Z90 = float(norm.ppf(0.95))
#: Points of pull toward the middle above which the report says so.
SHRINKAGE_NOTE_POINTS = 15.0
SIMULATED_NORM = "simulated reference group (provisional bank)"
#: Decision rules as the report labels them.
RULE_LABELS = {"sprt": "sequential test (SPRT) during the test",
               "ci": "confidence-interval rule during the test",
               "interval": "90 % interval of this report"}


def to_scale(theta: float) -> float:
    return SCALE_MEAN + SCALE_SD * theta


def cut_to_theta(cut_score: float) -> float:
    return (cut_score - SCALE_MEAN) / SCALE_SD


@dataclass(frozen=True)
class NormGroup:
    """Who a percentile compares with: θ ~ N(mean, sd²) per skill, their correlations, and a
    name a recruiter can read. ``provisional`` when it is not a real applicant group."""

    name: str
    provisional: bool
    mean: Mapping[str, float]
    sd: Mapping[str, float]
    correlation: Mapping[tuple[str, str], float]

    def moments(self, skill: str) -> tuple[float, float]:
        return self.mean.get(skill, 0.0), self.sd.get(skill, 1.0)

    def composite(self, skills: Sequence[str], weights: Sequence[float]) -> tuple[float, float]:
        """Mean and SD of the composite ``Σ w θ`` in this group."""
        w = normalized_weights(weights)
        mu = float(sum(wk * self.moments(s)[0] for wk, s in zip(w, skills, strict=True)))
        r = np.array([[1.0 if a == b else self.correlation.get((a, b), 0.0) for b in skills]
                      for a in skills])
        return mu, composite_sd(r, w, [self.moments(s)[1] for s in skills])


@dataclass(frozen=True)
class Percentile:
    lower: float
    upper: float


@dataclass(frozen=True)
class SkillScore:
    skill: str
    skill_name: str
    measured: bool
    theta: float | None
    se: float | None
    score: float | None
    lower90: float | None
    upper90: float | None
    percentile: Percentile | None
    n_items: int
    stop_reason: str
    decision: str | None
    decision_rule: str | None
    misclassification: float | None
    shrinkage_points: float | None


@dataclass(frozen=True)
class OverallScore:
    theta: float
    se: float
    score: float
    lower90: float
    upper90: float
    percentile: Percentile
    weights: Mapping[str, float]
    shrinkage_points: float | None


@dataclass(frozen=True)
class AccommodationRecord:
    """Accommodations granted to the candidate, and the break time actually taken."""

    extra_time_percent: int
    break_minutes: int
    break_used_minutes: float
    note: str


@dataclass(frozen=True)
class CandidateReport:
    session_id: int
    candidate_public_id: str
    candidate_name: str | None
    assessment: str
    assessment_id: int
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    minutes: float | None
    n_questions: int
    cut_score: float | None
    provisional: bool
    norm_group: NormGroup
    overall: OverallScore | None
    multidimensional: bool
    skills: tuple[SkillScore, ...]
    accommodation: AccommodationRecord | None = None
    #: A person's current review of the result (`web.services.oversight`; None: not reviewed).
    review: Review | None = None
    #: Test security (issue 17): answers left out of the score as rapid guesses
    #: (effort-moderated scoring); for a retake, the earlier sessions of the same person and how
    #: many items seen there this test left out; the integrity notes stored for the session
    #: (`web.services.forensics.session_integrity`: ``kind``, ``text``, ``false_positive_rate``,
    #: ``measured_n_answers``).
    unscored_answers: int = 0
    retake_of: tuple[int, ...] = ()
    excluded_seen_items: int = 0
    integrity_notes: tuple[dict[str, object], ...] = ()


def _percentile(lo: float, hi: float, mean: float, sd: float) -> Percentile:
    return Percentile(100.0 * float(norm.cdf((lo - mean) / sd)),
                      100.0 * float(norm.cdf((hi - mean) / sd)))


def _shrinkage(theta: float, se: float, sd: float) -> float | None:
    """Points of pull toward the prior mean (normal-normal approximation), or None if small."""
    ratio = (se / sd) ** 2
    if not 0 < ratio < 1:
        return None
    points = abs(theta) * ratio / (1.0 - ratio) * SCALE_SD / sd
    return points if points >= SHRINKAGE_NOTE_POINTS else None


def skill_score(skill: str, name: str, theta: float, se: float, n_items: int, stop: str,
                cut_score: float | None, group: NormGroup, *, decision: str | None = None,
                decision_rule: str | None = None) -> SkillScore:
    if n_items == 0:
        return SkillScore(skill, name, False, None, None, None, None, None, None, 0, stop, None,
                          None, None, None)
    mean, sd = group.moments(skill)
    lo, hi = theta - Z90 * se, theta + Z90 * se
    miscl = None
    if cut_score is not None:
        cut = cut_to_theta(cut_score)
        if decision is None or decision_rule is None:
            decision = "pass" if lo > cut else "fail" if hi < cut else "undecided"
            decision_rule = "interval"
        miscl = float(norm.cdf(-abs(theta - cut) / se)) if se > 0 else 0.0
    else:
        decision = decision_rule = None
    return SkillScore(skill, name, True, theta, se, to_scale(theta), to_scale(lo), to_scale(hi),
                      _percentile(lo, hi, mean, sd), n_items, stop, decision, decision_rule,
                      miscl, _shrinkage(theta - mean, se, sd))


def overall_score(theta: float, se: float, weights: Mapping[str, float], group: NormGroup,
                  prior: tuple[float, float]) -> OverallScore:
    """The overall score on the skills' scale (``500 + 100 θ_c``: the weighted mean of the
    skill scores), its 90 % interval and percentile range.

    The score is the posterior mean of the composite, which is pulled toward the scorer's prior
    mean ``prior = (μ_c, τ_c)``; the interval is the de-shrunk one (`irt.composite
    .deshrunk_interval`), which covers about 90 % for candidates at every level of ability
    (benchmarks/RESULTS.md, issue 14), where the posterior interval covers far too rarely for
    strong and weak candidates. The pull is reported (`shrinkage_points`) when it is large."""
    skills = list(weights)
    mu, sd = group.composite(skills, [weights[s] for s in skills])
    x, _, lo, hi = deshrunk_interval(theta, se, prior[0], prior[1], Z90)
    pull = abs(x - theta) * SCALE_SD
    return OverallScore(theta, se, to_scale(theta), to_scale(lo), to_scale(hi),
                        _percentile(lo, hi, mu, sd), dict(weights),
                        pull if pull >= SHRINKAGE_NOTE_POINTS else None)


def norm_group(db: Session, bank_id: int) -> NormGroup:
    """The applicants of the bank's latest published calibration (its skills' latent means and
    SDs and the correlations the data support, `web.services.feasibility
    .latest_applicants`), else the simulated reference group of the provisional bank:
    N(0, 1) per skill."""
    found = latest_applicants(db, bank_id)
    if found is None:
        return NormGroup(SIMULATED_NORM, True, {}, {}, {})
    pop = found.population
    corr = {(a, b): pop.correlation[i][j] for i, a in enumerate(pop.skills)
            for j, b in enumerate(pop.skills)}
    return NormGroup(pop.source, False, dict(zip(pop.skills, pop.mean, strict=True)),
                     dict(zip(pop.skills, pop.sd, strict=True)), corr)


def report(org_id: int, session_id: int, db: Session | None = None) -> CandidateReport:
    """The report of a session of organisation ``org_id`` (`NotFound` otherwise); read through
    ``db`` when given (e.g. inside the transaction that finished the session)."""
    db = db or get_db()
    row = db.get(CandidateSession, session_id)
    if row is None or row.assessment.organisation_id != org_id:
        raise NotFound("no such report")
    return _report(db, row, norm_group(db, row.assessment.bank_id))


def _report(db: Session, row: CandidateSession, group: NormGroup) -> CandidateReport:
    assessment: Assessment = row.assessment
    results = db.execute(select(SkillResult, Skill).join(Skill)
                         .where(SkillResult.session_id == row.id)
                         .order_by(Skill.name)).all()
    skills = tuple(skill_score(sk.slug, sk.name, r.theta, r.se, r.n_items, r.stop_reason,
                               assessment.cut_score, group, decision=r.decision,
                               decision_rule=r.decision_rule) for r, sk in results)
    stored = db.scalar(select(OverallResult).where(OverallResult.session_id == row.id))
    overall = None
    if stored is not None:
        measured = list(stored.weights)
        prior = prior_composite(Blueprint.from_dict(row.blueprint or {}), measured,
                                [stored.weights[s] for s in measured])
        overall = overall_score(stored.theta, stored.se, stored.weights, group, prior)
    n_questions = db.scalar(select(func.count(Response.id))
                            .where(Response.session_id == row.id)) or 0
    provisional = bool(db.scalar(
        select(func.count(Response.id)).join(ItemParameterVersion,
                                             Response.parameter_version_id
                                             == ItemParameterVersion.id)
        .where(Response.session_id == row.id, ItemParameterVersion.provisional.is_(True))))
    minutes = None
    if row.finished_at is not None:
        minutes = (as_utc(row.finished_at) - as_utc(row.started_at)).total_seconds() / 60.0
    multidimensional = bool((row.blueprint or {}).get("correlations"))
    acc = row.invitation.accommodation
    record = None if acc is None else AccommodationRecord(
        acc.extra_time_percent, acc.break_minutes, round(acc.break_used_seconds / 60.0, 1),
        acc.note)
    integrity = db.get(SessionIntegrity, row.id)
    earlier = earlier_sessions(db, row.invitation, session_window(row))
    return CandidateReport(row.id, row.candidate.public_id, row.candidate.name, assessment.name,
                           assessment.id, display_status(row.invitation, row), row.started_at,
                           row.finished_at, minutes, int(n_questions), assessment.cut_score,
                           provisional, group, overall, multidimensional, skills, record,
                           current_review(db, row.id), len(row.unscored_positions or ()),
                           tuple(e.session_id for e in earlier),
                           len((row.blueprint or {}).get("exclude_items", ())),
                           integrity.stored_notes() if integrity is not None else ())


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else as_utc(t).isoformat()


def report_json(rep: CandidateReport) -> dict[str, object]:
    """The report as ``GET /api/v1/reports/{id}`` returns it (the webhook payload's ``report``);
    the norm group by its name and whether it is provisional."""
    out = dataclasses.asdict(rep)
    out.pop("assessment_id")
    out["norm_group"] = {"name": rep.norm_group.name, "provisional": rep.norm_group.provisional}
    out["started_at"], out["finished_at"] = _iso(rep.started_at), _iso(rep.finished_at)
    if rep.review is not None:
        out["review"] = {**dataclasses.asdict(rep.review), "at": _iso(rep.review.at)}
    return out



#: Most finished sessions one comparison reads (the latest ones): each is a full report.
MAX_COMPARED = 500


def comparison(org_id: int, assessment_id: int) -> tuple[Assessment, list[CandidateReport]]:
    """Reports of the latest `MAX_COMPARED` finished sessions of an assessment, best overall
    score first (sessions without an overall score last)."""
    db = get_db()
    target = db.get(Assessment, assessment_id)
    if target is None or target.organisation_id != org_id:
        raise NotFound("no such assessment")
    rows = db.scalars(select(CandidateSession)
                      .join(Invitation, CandidateSession.invitation_id == Invitation.id)
                      .join(Candidate, CandidateSession.candidate_id == Candidate.id)
                      .where(CandidateSession.assessment_id == assessment_id,
                             CandidateSession.status.in_(["completed", "timed_out"]))
                      .order_by(CandidateSession.id.desc()).limit(MAX_COMPARED)).all()
    group = norm_group(db, target.bank_id)
    reports = [_report(db, r, group) for r in rows]
    reports.sort(key=lambda r: -math.inf if r.overall is None else -r.overall.score)
    return target, reports


def _csv_safe(value: object) -> str:
    """Neutralise spreadsheet formula injection (OWASP CSV injection guidance)."""
    text = "" if value is None else str(value)
    if text and text[0] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def comparison_csv(assessment: Assessment, reports: list[CandidateReport]) -> str:
    skill_names = sorted({(s.skill, s.skill_name) for r in reports for s in r.skills})
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    header = ["candidate_id", "name", "status", "questions", "minutes", "overall_score",
              "overall_lower90", "overall_upper90", "overall_percentile_low",
              "overall_percentile_high", "norm_group", "review"]
    for slug, _ in skill_names:
        header += [f"{slug}_score", f"{slug}_lower90", f"{slug}_upper90",
                   f"{slug}_percentile_low", f"{slug}_percentile_high"]
        if assessment.cut_score is not None:
            header += [f"{slug}_decision", f"{slug}_decision_rule"]
    w.writerow(header)
    for r in reports:
        by_skill = {s.skill: s for s in r.skills}
        o = r.overall
        row = [_csv_safe(r.candidate_public_id), _csv_safe(r.candidate_name), r.status,
               r.n_questions, "" if r.minutes is None else f"{r.minutes:.1f}"]
        row += ["", "", "", "", ""] if o is None else [
            _num(o.score), _num(o.lower90), _num(o.upper90), _num(o.percentile.lower),
            _num(o.percentile.upper)]
        row.append(_csv_safe(r.norm_group.name))
        row.append("" if r.review is None else r.review.status)
        for slug, _ in skill_names:
            s = by_skill.get(slug)
            if s is None or not s.measured:
                row += ["not measured", "", "", "", ""]
            else:
                assert s.percentile is not None
                row += [_num(s.score), _num(s.lower90), _num(s.upper90),
                        _num(s.percentile.lower), _num(s.percentile.upper)]
            if assessment.cut_score is not None:
                row += ["", ""] if s is None or s.decision is None else [s.decision,
                                                                         s.decision_rule]
        w.writerow(row)
    return out.getvalue()
