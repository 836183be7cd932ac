"""Candidate reports: per-skill scores on the reporting scale, intervals, percentiles, decisions.

Reporting scale (documented in docs/recruiter-guide.md): ``score = 500 + 100 θ``, where θ is the
skill's ability on the calibration population's N(0, 1) scale. So 500 is the calibration
population's average, and each 100 points is one population standard deviation.

* 90 % interval: ``θ̂ ± 1.645 SE`` (the EAP's posterior SD as SE), mapped to the scale.
* Percentile: ``100 Φ(θ̂)``, the share of the calibration population below the estimate.
* Cut score (assessment, on the reporting scale): pass when the whole 90 % interval lies above
  the cut, fail when it lies below, undecided otherwise; the probability of misclassification
  of the reported side (θ̂ ≥ cut → pass) is ``Φ(−|θ̂ − θ_cut| / SE)`` under the normal
  posterior approximation (Rudner 2001).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass

from scipy.stats import norm
from sqlalchemy import func, select

from item_bank.models import (
    Assessment,
    Candidate,
    CandidateSession,
    Invitation,
    ItemParameterVersion,
    Response,
    Skill,
    SkillResult,
    as_utc,
)
from web.db import get_db
from web.services.staff import NotFound, display_status

SCALE_MEAN, SCALE_SD = 500.0, 100.0
Z90 = float(norm.ppf(0.95))


def to_scale(theta: float) -> float:
    return SCALE_MEAN + SCALE_SD * theta


def cut_to_theta(cut_score: float) -> float:
    return (cut_score - SCALE_MEAN) / SCALE_SD


@dataclass(frozen=True)
class SkillScore:
    skill: str
    skill_name: str
    theta: float
    se: float
    score: float
    lower90: float
    upper90: float
    percentile: float
    n_items: int
    stop_reason: str
    decision: str | None
    misclassification: float | None


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
    skills: tuple[SkillScore, ...]


def skill_score(skill: str, name: str, theta: float, se: float, n_items: int, stop: str,
                cut_score: float | None) -> SkillScore:
    lo, hi = theta - Z90 * se, theta + Z90 * se
    decision = miscl = None
    if cut_score is not None:
        cut = cut_to_theta(cut_score)
        decision = "pass" if lo > cut else "fail" if hi < cut else "undecided"
        miscl = float(norm.cdf(-abs(theta - cut) / se)) if se > 0 else 0.0
    return SkillScore(skill, name, theta, se, to_scale(theta), to_scale(lo), to_scale(hi),
                      100.0 * float(norm.cdf(theta)), n_items, stop, decision, miscl)


def report(org_id: int, session_id: int) -> CandidateReport:
    db = get_db()
    row = db.get(CandidateSession, session_id)
    if row is None or row.assessment.organisation_id != org_id:
        raise NotFound("no such report")
    assessment: Assessment = row.assessment
    results = db.execute(select(SkillResult, Skill).join(Skill)
                         .where(SkillResult.session_id == row.id)
                         .order_by(Skill.name)).all()
    skills = tuple(skill_score(sk.slug, sk.name, r.theta, r.se, r.n_items, r.stop_reason,
                               assessment.cut_score) for r, sk in results)
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
    return CandidateReport(row.id, row.candidate.public_id, row.candidate.name, assessment.name,
                           assessment.id, display_status(row.invitation, row), row.started_at,
                           row.finished_at, minutes, int(n_questions), assessment.cut_score,
                           provisional, skills)



#: Most finished sessions one comparison reads (the latest ones): each is a full report.
MAX_COMPARED = 500


def comparison(org_id: int, assessment_id: int) -> tuple[Assessment, list[CandidateReport]]:
    """Reports of the latest `MAX_COMPARED` finished sessions of an assessment, best overall
    score first."""
    db = get_db()
    target = db.get(Assessment, assessment_id)
    if target is None or target.organisation_id != org_id:
        raise NotFound("no such assessment")
    ids = db.scalars(select(CandidateSession.id)
                     .join(Invitation, CandidateSession.invitation_id == Invitation.id)
                     .join(Candidate, CandidateSession.candidate_id == Candidate.id)
                     .where(CandidateSession.assessment_id == assessment_id,
                            CandidateSession.status.in_(["completed", "timed_out"]))
                     .order_by(CandidateSession.id.desc()).limit(MAX_COMPARED)).all()
    reports = [report(org_id, sid) for sid in ids]
    reports.sort(key=lambda r: -sum(s.score for s in r.skills) / max(len(r.skills), 1))
    return target, reports


def _csv_safe(value: object) -> str:
    """Neutralise spreadsheet formula injection (OWASP CSV injection guidance)."""
    text = "" if value is None else str(value)
    if text and text[0] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def comparison_csv(assessment: Assessment, reports: list[CandidateReport]) -> str:
    skill_names = sorted({(s.skill, s.skill_name) for r in reports for s in r.skills})
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    header = ["candidate_id", "name", "status", "questions", "minutes"]
    for slug, _ in skill_names:
        header += [f"{slug}_score", f"{slug}_lower90", f"{slug}_upper90", f"{slug}_percentile"]
        if assessment.cut_score is not None:
            header.append(f"{slug}_decision")
    w.writerow(header)
    for r in reports:
        by_skill = {s.skill: s for s in r.skills}
        row = [_csv_safe(r.candidate_public_id), _csv_safe(r.candidate_name), r.status,
               r.n_questions, "" if r.minutes is None else f"{r.minutes:.1f}"]
        for slug, _ in skill_names:
            s = by_skill.get(slug)
            row += ["", "", "", ""] if s is None else [
                f"{s.score:.0f}", f"{s.lower90:.0f}", f"{s.upper90:.0f}", f"{s.percentile:.0f}"]
            if assessment.cut_score is not None:
                row.append("" if s is None else s.decision)
        w.writerow(row)
    return out.getvalue()
