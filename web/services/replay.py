"""Session replay (issue 21): every served item of a session with its parameter version, the
answer and its score, θ̂ and SE after each answer, why the item was chosen, the stop reason and
the rule behind each decision — and the proof that the stored result follows from the stored
answers: the answers are re-scored with the parameter versions that scored them, by the engine's
own step (`engine.replay`), and compared with what was stored.

The engine of the replay is built from the session's own copy of its blueprint over the bank as
it is now, with every served item given the parameter version recorded with its answer (items
retired since are added back, unselectable). Re-scoring therefore needs nothing that may have
changed; item *selection* also depends on the other items of the bank (their parameters, status
and observed exposure), so when the bank changed since the session a served item may not be the
one the engine would serve today — the replay then names the first such position instead of
claiming a reproduction. Answers that effort-moderated scoring left out of the stored result
(``test_sessions.unscored_positions``, issue 17) are left out of the re-scored result the same
way (`engine.CatEngine.rescore`).

JSON schema ``proficio-replay/1`` (documented in docs/replay.md): `SessionReplay.to_json`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

import irt
from engine import Blueprint, CatState, ItemPool, SelectionAudit, make_engine
from engine.replay import TOLERANCE, replay
from item_bank.models import (
    CandidateSession,
    Item,
    ItemParameterVersion,
    OverallResult,
    Response,
    Skill,
    SkillResult,
    as_utc,
)
from item_bank.repository import exposure_counts, item_content, load_bank, version_params
from web.db import get_db
from web.services.engines import overall_estimate
from web.services.staff import NotFound

SCHEMA = "proficio-replay/1"


@dataclass(frozen=True)
class ParameterVersion:
    id: int | None
    calibration_run_id: int | None
    model: str
    a: float
    b: float | None
    c: float | None
    d: float | None
    provisional: bool


@dataclass(frozen=True)
class ReplayItem:
    """One served item (never its stem, options or key)."""

    position: int
    item_id: str
    skill: str
    pretest: bool
    parameters: ParameterVersion | None
    answer: str | None
    score: int
    answered_at: dt.datetime | None
    latency_ms: int | None
    theta: float | None
    se: float | None
    stored_theta: float | None
    stored_se: float | None
    rule: str
    theta_at_selection: float
    criterion: float
    rank: int
    n_candidates: int
    exposure: str
    exposure_decision: str
    balance: str
    reproduced: bool
    replayed_item: str | None


@dataclass(frozen=True)
class SkillCheck:
    skill: str
    theta: float
    se: float
    n_items: int
    stored_theta: float | None
    stored_se: float | None
    stored_n_items: int | None
    decision: str | None
    decision_rule: str | None
    stored_decision: str | None

    @property
    def difference(self) -> float:
        if self.stored_theta is None or self.stored_se is None:
            return 0.0 if self.n_items == 0 else float("inf")
        return max(abs(self.theta - self.stored_theta), abs(self.se - self.stored_se))


@dataclass(frozen=True)
class SessionReplay:
    session_id: int
    candidate_public_id: str
    assessment: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    seed: int
    strategies: Mapping[str, str]
    items: tuple[ReplayItem, ...]
    skills: tuple[SkillCheck, ...]
    overall_theta: float | None
    overall_se: float | None
    stored_overall_theta: float | None
    stored_overall_se: float | None
    stop_reason: str | None
    stored_stop_reason: str | None
    #: The response log and the engine state name the same items, answers and scores.
    log_matches_state: bool
    tolerance: float = TOLERANCE
    #: Positions whose stored answer, scored again by `item_bank.scoring.score_response` with
    #: the item's current content (key, correct answers, scoring rule), gives another category
    #: than the stored score (e.g. a key corrected since); empty when all agree.
    rescored_differently: tuple[int, ...] = ()

    @property
    def max_difference(self) -> float:
        diffs = [abs(i.theta - i.stored_theta) for i in self.items
                 if i.theta is not None and i.stored_theta is not None]
        diffs += [abs(i.se - i.stored_se) for i in self.items
                  if i.se is not None and i.stored_se is not None]
        diffs += [s.difference for s in self.skills]
        if self.overall_theta is not None and self.stored_overall_theta is not None:
            assert self.overall_se is not None and self.stored_overall_se is not None
            diffs += [abs(self.overall_theta - self.stored_overall_theta),
                      abs(self.overall_se - self.stored_overall_se)]
        return max(diffs, default=0.0)

    @property
    def rescoring_reproduced(self) -> bool:
        """Re-scoring gives the stored θ̂ and SE after every answer, the stored skill results,
        decisions and overall score (to `tolerance`), and the stored stop reason."""
        decisions_ok = all(s.stored_decision is None or s.stored_decision == s.decision
                           for s in self.skills)
        counts_ok = all(s.stored_n_items in (None, s.n_items) for s in self.skills)
        overall_ok = self.stored_overall_theta is None or self.overall_theta is not None
        stop_ok = self.status != "completed" or self.stop_reason == self.stored_stop_reason
        return (self.max_difference <= self.tolerance and decisions_ok and counts_ok
                and overall_ok and stop_ok and self.log_matches_state)

    @property
    def items_reproduced(self) -> bool:
        return all(i.reproduced for i in self.items)

    @property
    def first_divergence(self) -> int | None:
        return next((i.position for i in self.items if not i.reproduced), None)

    def trajectories(self) -> dict[str, list[tuple[int, float, float]]]:
        """Per skill: (position, θ̂, SE) after each of its scored answers."""
        out: dict[str, list[tuple[int, float, float]]] = {}
        for i in self.items:
            if i.theta is not None and i.se is not None:
                out.setdefault(i.skill, []).append((i.position, i.theta, i.se))
        return out

    def to_json(self) -> dict[str, object]:
        """The replay as schema ``proficio-replay/1`` (docs/replay.md)."""
        def iso(t: dt.datetime | None) -> str | None:
            return None if t is None else as_utc(t).isoformat()

        return {
            "schema": SCHEMA,
            "session": {"id": self.session_id, "candidate_public_id": self.candidate_public_id,
                        "assessment": self.assessment, "status": self.status,
                        "started_at": iso(self.started_at), "finished_at": iso(self.finished_at),
                        "seed": str(self.seed)},
            "strategies": dict(self.strategies),
            "items": [{
                "position": i.position, "item_id": i.item_id, "skill": i.skill,
                "pretest": i.pretest,
                "parameter_version": None if i.parameters is None else {
                    "id": i.parameters.id, "calibration_run_id": i.parameters.calibration_run_id,
                    "model": i.parameters.model, "a": i.parameters.a, "b": i.parameters.b,
                    "c": i.parameters.c, "d": i.parameters.d,
                    "provisional": i.parameters.provisional},
                "answer": i.answer, "score": i.score, "answered_at": iso(i.answered_at),
                "latency_ms": i.latency_ms,
                "after": None if i.theta is None else {
                    "theta": i.theta, "se": i.se, "stored_theta": i.stored_theta,
                    "stored_se": i.stored_se},
                "selection": {"rule": i.rule, "theta": i.theta_at_selection,
                              "criterion": i.criterion, "rank": i.rank,
                              "n_candidates": i.n_candidates, "exposure_control": i.exposure,
                              "exposure_decision": i.exposure_decision,
                              "content_balancing": i.balance},
                "reproduced": i.reproduced, "replayed_item": i.replayed_item,
            } for i in self.items],
            "skills": [{"skill": s.skill, "theta": s.theta, "se": s.se, "n_items": s.n_items,
                        "decision": s.decision, "decision_rule": s.decision_rule,
                        "stored": None if s.stored_theta is None else {
                            "theta": s.stored_theta, "se": s.stored_se,
                            "n_items": s.stored_n_items, "decision": s.stored_decision}}
                       for s in self.skills],
            "overall": None if self.overall_theta is None else {
                "theta": self.overall_theta, "se": self.overall_se,
                "stored_theta": self.stored_overall_theta,
                "stored_se": self.stored_overall_se},
            "stop_reason": self.stop_reason,
            "stored_stop_reason": self.stored_stop_reason,
            "verification": {"tolerance": self.tolerance,
                             "max_difference": _finite(self.max_difference),
                             "rescoring_reproduced": self.rescoring_reproduced,
                             "items_reproduced": self.items_reproduced,
                             "first_divergence": self.first_divergence,
                             "log_matches_state": self.log_matches_state,
                             "answers_rescored_differently":
                                 list(self.rescored_differently)},
        }


def _finite(x: float) -> float | None:
    return None if x != x or x in (float("inf"), float("-inf")) else x


def exposure_decision(audit: SelectionAudit) -> str:
    """The exposure control's part in serving the item, in words."""
    if audit.rule == "pretest":
        return f"unscored pretest item drawn at random among {audit.n_candidates} free ones"
    if audit.exposure == "none":
        return f"no exposure control: the best of {audit.n_candidates} available items"
    if audit.rank == 1:
        return (f"{audit.exposure}: the best of {audit.n_candidates} available items was "
                "served")
    return (f"{audit.exposure}: rank {audit.rank} of {audit.n_candidates} served instead of the "
            "best, to limit the exposure of the most informative items")


def _param(v: ItemParameterVersion | None) -> ParameterVersion | None:
    if v is None:
        return None
    return ParameterVersion(v.id, v.calibration_run_id, v.model, v.a, v.b, v.c, v.d,
                            bool(v.provisional))


def session_replay(org_id: int, session_id: int, db: Session | None = None) -> SessionReplay:
    """The replay of a session of organisation ``org_id`` (`NotFound` otherwise, and for a
    session that never started)."""
    db = db or get_db()
    row = db.get(CandidateSession, session_id)
    if row is None or row.assessment.organisation_id != org_id or row.engine_state is None:
        raise NotFound("no such session")
    stored = CatState.from_dict(row.engine_state)
    log = list(db.execute(select(Response, Item.external_id).join(Item)
                          .where(Response.session_id == row.id)
                          .order_by(Response.position)).all())
    version_ids = {r.parameter_version_id for r, _ in log if r.parameter_version_id is not None}
    versions = {v.id: v for v in db.scalars(select(ItemParameterVersion)
                                            .where(ItemParameterVersion.id.in_(version_ids)))}
    blueprint = Blueprint.from_dict(row.blueprint)
    skills = [s.skill for s in blueprint.skills] or None
    bank_id = row.assessment.bank_id
    loaded = load_bank(db, skills=skills, bank_id=bank_id)
    params = {p.item_id: p for p in loaded.bank.params()}
    status = {m.external_id: m.status for m in loaded.items}
    tags = {m.external_id: m.tags for m in loaded.items}
    served_version = {ext: versions.get(r.parameter_version_id or -1) for r, ext in log}
    skill_of = dict(db.execute(select(Item.external_id, Skill.slug)
                               .join(Skill, Item.skill_id == Skill.id)
                               .where(Item.bank_id == bank_id,
                                      Item.external_id.in_(list(served_version)))).all())
    for ext, v in served_version.items():
        if v is not None:
            params[ext] = version_params(v, ext, skill_of[ext])
            status.setdefault(ext, "retired")
    order = sorted(params, key=lambda e: (params[e].skill, e))
    exposure = exposure_counts(db, order, bank_id)  # as the live engine reads them (now)
    pool = ItemPool(irt.Bank.from_params([params[e] for e in order]),
                    status=[status[e] for e in order],
                    enemy_groups=[g for g in loaded.enemy_groups if all(e in params for e in g)],
                    tags={e: tags.get(e, ()) for e in order},
                    exposure_rates=dict(zip(exposure.item_ids,
                                            (float(r) for r in exposure.rates), strict=True)))
    engine = make_engine(pool, blueprint)
    rep = replay(engine, stored)
    # effort-moderated scoring left these answers out of the stored result: so does the check
    unscored = list(row.unscored_positions or ())
    scored_state = engine.rescore(rep.state, unscored) if unscored else rep.state
    final = engine.estimates(scored_state) if unscored else rep.estimates
    by_position = {r.position: (r, ext) for r, ext in log}
    log_ok = len(log) == len(stored.events) and all(
        by_position.get(n, (None, None))[1] == e.item_id
        and by_position[n][0].score == e.response
        for n, e in enumerate(stored.events, start=1))
    contents = {it.external_id: item_content(it) for it in db.scalars(
        select(Item).where(Item.bank_id == bank_id, Item.external_id.in_(list(served_version))))}
    differing = []
    for r, ext in log:
        try:
            again = contents[ext].score(r.raw_answer) if ext in contents else r.score
        except ValueError:
            again = -1
        if again != r.score:
            differing.append(r.position)
    items = []
    for step in rep.steps:
        resp, _ = by_position.get(step.position, (None, None))
        a = step.audit
        items.append(ReplayItem(
            step.position, step.item_id, step.skill, not step.scored,
            _param(served_version.get(step.item_id)), None if resp is None else resp.raw_answer,
            step.response, None if resp is None else resp.answered_at,
            None if resp is None else resp.latency_ms, step.theta, step.se, step.stored_theta,
            step.stored_se, a.rule, a.theta, a.criterion, a.rank, a.n_candidates, a.exposure,
            exposure_decision(a), a.balance or "(not recorded by the engine version that ran "
            "this session)", step.item_reproduced, step.replayed_item))
    results = {slug: r for r, slug in db.execute(select(SkillResult, Skill.slug).join(Skill)
                                                  .where(SkillResult.session_id == row.id))}
    rule = None if blueprint.classification is None else blueprint.classification.method
    checks = []
    for skill, est in final.items():
        res = results.get(skill)
        decided = est.decided and rule is not None and est.decision is not None
        checks.append(SkillCheck(skill, est.theta, est.se, est.n_items,
                                 None if res is None else res.theta,
                                 None if res is None else res.se,
                                 None if res is None else res.n_items,
                                 est.decision if decided else None, rule if decided else None,
                                 None if res is None else res.decision))
    overall = overall_estimate(engine, scored_state, final)
    stored_overall = db.scalar(select(OverallResult).where(OverallResult.session_id == row.id))
    stored_stop = (next((r.stop_reason for r in results.values()), None)
                   if results else stored.stop_reason)
    strategies = {"scorer": engine.scorer.name, "selector": engine.selector.name,
                  "exposure_control": engine.exposure.name,
                  "content_balancing": engine.balancer.name,
                  "stopping": ", ".join(s.name for s in engine.stoppers) or "lengths only",
                  "classification": rule or "none"}
    return SessionReplay(
        row.id, row.candidate.public_id, row.assessment.name, row.status, row.started_at,
        row.finished_at, stored.seed, strategies, tuple(items), tuple(checks),
        None if overall is None else overall.theta, None if overall is None else overall.se,
        None if stored_overall is None else stored_overall.theta,
        None if stored_overall is None else stored_overall.se,
        rep.stop_reason, stored_stop, log_ok, rescored_differently=tuple(differing))
