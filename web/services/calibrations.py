"""Calibration jobs: start (queued), run (in a job worker), review, preview, publish, roll back.

The job runs `calibration.recalibrate.recalibrate` — the function ``proficio recalibrate`` runs,
with the same defaults — on the live response log (or an uploaded CSV) against the bank's
current parameters, and stores its typed result (`Recalibration.to_dict`). Modes, defaults and
the publishing rules are described there.

Publishing is per item: the review page pre-selects the items the rules recommend (rules the
psychometrician can change), previews the impact on completed candidates' scores
(`calibration.recalibrate.score_impact`), and publishes only with an explicit confirmation and a
reason. One calibration run records who, when, why, the rules and the items; its parameters
become the current versions in one transaction (a failure leaves the previous versions
current). `rollback` makes the versions before a run current again, as a new run, in one step.

Every job calibrates one bank, owned by the organisation of the psychometrician who starts it;
only that organisation's staff see, preview, publish or roll it back. The live response log it
reads holds the responses of the owner's candidates and of the organisations that consented to
pooling (`item_bank.repository.pooled_organisations`); the result names them.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select, update

import irt
from calibration.drift import ParameterErrors
from calibration.recalibrate import (
    DEFAULT_PRIOR_A_SD,
    MODELS,
    CurrentParameters,
    ItemKeys,
    PublishRules,
    RecalibratedItem,
    Recalibration,
    RecalibrationSettings,
    ScoreImpact,
    recalibrate,
    score_impact,
)
from calibration.recalibrate import FORMAT as RESULT_FORMAT
from calibration.recalibrate import MODES as MODES
from irt import POLYTOMOUS_MODELS
from irt.io import ResponseLog, read_responses_csv
from item_bank import repository as repo
from item_bank.content import ParameterRecord
from item_bank.db import create_db_engine, rowcount, transaction
from item_bank.models import (
    Assessment,
    CalibrationJob,
    CalibrationRun,
    CandidateSession,
    Item,
    ItemBank,
    ItemParameterVersion,
    Response,
    StaffUser,
    utcnow,
)
from item_bank.scoring import is_polytomous
from web import observability
from web.db import get_db, unit_of_work
from web.services.reports import cut_to_theta

log = logging.getLogger(__name__)

JOB_MODELS = MODELS
PROGRESS_INTERVAL_S = 0.5
#: Impact preview: a score "moves" when its θ changes by more than this (logits), by default.
IMPACT_THRESHOLD = 0.2
#: Longest reason kept with a publication or rollback.
MAX_REASON = 2000
#: Most items one publish or preview request may name (bounded work per request).
MAX_SELECTION = 20_000
#: A job still queued or running this long after it was queued has lost its worker (the job
#: queue does not re-run a task whose worker died); `fail_stale_jobs` marks it failed so the
#: page stops showing it as running. The largest calibrations take minutes.
STALE_JOB = dt.timedelta(hours=6)


@dataclass(frozen=True)
class JobSettings:
    """What a job estimates; defaults are `RecalibrationSettings`'s (the CLI's too)."""

    model: str = RecalibrationSettings.model
    mode: str = RecalibrationSettings.mode
    prior_a_sd: float | None = DEFAULT_PRIOR_A_SD
    skills: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.recalibration()  # validates, naming the field

    def recalibration(self, rules: PublishRules | None = None) -> RecalibrationSettings:
        return RecalibrationSettings(model=self.model, mode=self.mode,
                                     prior_a_sd=self.prior_a_sd,
                                     rules=rules or PublishRules())

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "mode": self.mode, "prior_a_sd": self.prior_a_sd,
                "skills": list(self.skills)}


def check_upload(data: bytes, filename: str = "upload", bank_id: int | None = None) -> str:
    """Validate an uploaded responses CSV against the bank before a job is queued.

    Returns the text; raises `ValueError` naming the line (malformed rows, unknown items,
    responses out of range, a person answering an item twice).
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{filename}: the file is not UTF-8 text") from None
    log_ = _read_upload(text, filename)
    if log_.data.n_responses == 0:
        raise ValueError(f"{filename}: no responses")
    db = get_db()
    known = set(db.scalars(select(Item.external_id)
                           .where(Item.bank_id == repo.resolve_bank_id(db, bank_id))))
    for row, item in enumerate(log_.data.item):
        iid = log_.item_ids[item]
        if iid not in known:
            raise ValueError(f"{filename} line {log_.line_of(row)}: unknown item {iid!r} "
                             "(import it into the bank first)")
    if np.any(log_.data.response > 1):
        row = int(np.flatnonzero(log_.data.response > 1)[0])
        raise ValueError(f"{filename} line {log_.line_of(row)}: field 'response' must be 0 or 1 "
                         "for the bank's multiple-choice items")
    return text


def _read_upload(text: str, filename: str) -> ResponseLog:
    """The uploaded CSV, keeping its ``option`` column (the chosen option) when it has one."""
    first = text.split("\n", 1)[0]
    keep = ("option",) if "option" in [h.strip().strip('"') for h in first.split(",")] else ()
    return read_responses_csv(_Named(text, filename), keep=keep)


class _Named(io.StringIO):
    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


def create_job(user_id: int, settings: JobSettings, database_url: str,
               upload: str | None = None, *, bank_id: int) -> int:
    """Queue a calibration of ``bank_id`` (an own bank, checked by the caller) from the live
    response log, or of an uploaded CSV (`check_upload`)."""
    from web.jobs import enqueue_calibration

    with unit_of_work() as db:
        job = CalibrationJob(bank_id=bank_id, created_by_id=user_id, status="queued",
                             progress=0.0,
                             settings={**settings.to_dict(), "source": "upload" if upload
                                       else "live response log"},
                             upload=upload, message="waiting for a worker")
        db.add(job)
        db.flush()
        job_id = job.id
    enqueue_calibration(job_id, database_url)
    return job_id


def bank_model(bank_id: int) -> str:
    """The model of most current item parameters of the bank (the job form's default), ``2pl``
    for an empty bank. The shipped Back-End Engineer bank is ``3pl``."""
    rows = get_db().execute(select(ItemParameterVersion.model, func.count())
                            .join(Item, ItemParameterVersion.item_id == Item.id)
                            .where(ItemParameterVersion.is_current.is_(True),
                                   Item.bank_id == bank_id)
                            .group_by(ItemParameterVersion.model)).all()
    models = [(n, str(m)) for m, n in rows if str(m) in JOB_MODELS]
    return max(models)[1] if models else "2pl"


def jobs(org_id: int) -> list[CalibrationJob]:
    """The newest 100 jobs on the organisation's banks."""
    return list(get_db().scalars(select(CalibrationJob)
                                 .join(ItemBank, CalibrationJob.bank_id == ItemBank.id)
                                 .where(ItemBank.organisation_id == org_id)
                                 .order_by(CalibrationJob.id.desc()).limit(100)))


def _owned(db: Any, row: CalibrationJob | None, org_id: int) -> CalibrationJob:
    """``row`` when it calibrates a bank of ``org_id``; `LookupError` otherwise (another
    organisation's job does not exist for the caller)."""
    if row is None or db.get(ItemBank, row.bank_id).organisation_id != org_id:
        raise LookupError("no such calibration job")
    return row


def job(job_id: int, org_id: int) -> CalibrationJob:
    db = get_db()
    return _owned(db, db.get(CalibrationJob, job_id), org_id)


# -- the worker side ---------------------------------------------------------------------------


def _update(engine: Any, job_id: int, **values: Any) -> None:
    with transaction(engine) as db:
        row = db.get(CalibrationJob, job_id)
        for k, v in values.items():
            setattr(row, k, v)


def fail_stale_jobs(engine: Engine, now: dt.datetime | None = None) -> int:
    """Mark jobs queued or running for longer than `STALE_JOB` failed, saying why (run by the
    scheduled maintenance every minute; idempotent). Returns how many."""
    now = now or utcnow()
    with transaction(engine) as db:
        failed = rowcount(db.execute(
            update(CalibrationJob)
            .where(CalibrationJob.status.in_(("queued", "running")),
                   CalibrationJob.created_at < now - STALE_JOB)
            .values(status="failed", finished_at=now,
                    message="the job did not finish within 6 hours (its worker stopped); "
                            "start it again")
        ))
    if failed:
        log.warning("calibration jobs: %d stale job(s) marked failed", failed)
    return int(failed)


def run_job(job_id: int, database_url: str | None) -> None:
    """Run a queued calibration job; its outcome and progress are written to its row.

    ``database_url`` None means the worker's own configuration (``DATABASE_URL``)."""
    engine = create_db_engine(database_url)
    started, outcome = time.monotonic(), "failed"
    try:
        with transaction(engine) as db:
            row = db.get(CalibrationJob, job_id)
            if row is None or row.status != "queued":
                log.warning("calibration job %s is not queued; skipped", job_id)
                outcome = "skipped"
                return
            row.status, row.started_at, row.message = "running", utcnow(), "reading responses"
            settings = JobSettings(**{k: v for k, v in row.settings.items() if k != "source"}
                                   | {"skills": tuple(row.settings["skills"])})
            upload, bank_id = row.upload, row.bank_id
        result = _calibrate(engine, job_id, settings, upload, bank_id)
        _update(engine, job_id, status="succeeded", progress=1.0, result=result,
                finished_at=utcnow(), message=Recalibration.from_dict(result).headline)
        outcome = "succeeded"
    except Exception as exc:  # a job must end in a visible state, whatever happened
        log.exception("calibration job %s failed", job_id)
        _update(engine, job_id, status="failed", finished_at=utcnow(),
                message=f"{type(exc).__name__}: {exc}"[:2000])
    finally:
        engine.dispose()
        observability.calibration_finished(outcome, time.monotonic() - started)


def _calibrate(engine: Any, job_id: int, settings: JobSettings,
               upload: str | None = None, bank_id: int | None = None) -> dict[str, Any]:
    with transaction(engine) as db:
        skills = list(settings.skills) or None
        bank = repo.get_bank(db, repo.resolve_bank_id(db, bank_id))
        pooled = repo.pooled_organisations(db, bank)
        if upload is not None:
            log_ = _read_upload(upload, "upload")
            choices = ([str(c) for c in log_.extra["option"]] if "option" in log_.extra
                       else [""] * log_.data.n_responses)
        else:
            export = repo.export_responses(db, skills=skills, bank_id=bank.id,
                                           organisation_ids=pooled)
            log_ = ResponseLog(export.person_ids, export.item_ids, export.data)
            choices = _chosen_options(db, export)
        current = current_parameters(db, skills, bank.id)
        items = list(db.scalars(select(Item).where(Item.bank_id == bank.id)))
        skill_of = {it.external_id: it.skill.slug for it in items}
        # the key/distractor analysis is for single-choice items (issue 22: other response
        # types have no one key)
        single = [it for it in items if (it.response_type or "single") == "single"]
        keys = ItemKeys({it.external_id: tuple(str(o.get("id", "")) if isinstance(o, dict)
                                               else str(o) for o in it.options or ())
                         for it in single}, {it.external_id: it.key for it in single})
        # partial-credit multiple response: its own polytomous model and categories
        scored_as = {it.external_id: (it.model if it.model in POLYTOMOUS_MODELS else "gpcm",
                                      len(it.correct) + 1)
                     for it in items if is_polytomous(it.response_type or "single",
                                                      it.scoring or "partial",
                                                      len(it.correct or ()))}
    if log_.data.n_responses == 0:
        raise ValueError("there are no recorded responses to calibrate")
    last = [0.0]

    def progress(p: Any) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL_S:
            last[0] = now
            frac = min(0.95, p.cycle / max(p.max_iter, 1) * 4)
            _update(engine, job_id, progress=frac,
                    message=f"skill {p.skill}: EM cycle {p.cycle}, log-likelihood "
                            f"{p.loglik:.1f}")

    result = recalibrate(log_, current, settings.recalibration(), skills=skill_of, keys=keys,
                         choices=choices, scored_as=scored_as, callback=progress)
    # whose candidates' answers were pooled (None: an uploaded file)
    return result.to_dict() | {"pooled_organisations": None if upload is not None else pooled}


def current_parameters(db: Any, skills: Sequence[str] | None = None,
                       bank_id: int | None = None) -> CurrentParameters:
    """The bank's current parameters with their SEs, counts, statuses and provisional flags."""
    loaded = repo.load_bank(db, skills=skills,
                            statuses=("pretest", "operational", "held", "retired"),
                            bank_id=bank_id)
    ids = [m.parameter_version_id for m in loaded.items]
    versions: dict[int, ItemParameterVersion] = {}
    for k in range(0, len(ids), 500):
        versions.update({v.id: v for v in db.scalars(
            select(ItemParameterVersion).where(ItemParameterVersion.id.in_(ids[k:k + 500])))})

    def num(x: float | None) -> float:
        return float("nan") if x is None else float(x)

    vs = [versions[i] for i in ids]
    return CurrentParameters(
        loaded.bank, ParameterErrors(np.array([num(v.se_a) for v in vs]),
                                     np.array([num(v.se_b) for v in vs])),
        np.array([-1 if v.n_responses is None else v.n_responses for v in vs], dtype=np.int64),
        # a held item (test security) is not served: for calibration it counts as retired
        tuple("retired" if m.status == "held" else m.status for m in loaded.items),
        np.array([m.provisional for m in loaded.items], dtype=bool))


def _chosen_options(db: Any, export: repo.ResponseExport) -> list[str]:
    """The option each exported response chose (``responses.raw_answer``), in export order."""
    sessions = sorted(set(export.session_ids))
    answers: dict[tuple[int, str], str] = {}
    for k in range(0, len(sessions), 500):
        stmt = (select(Response.session_id, Item.external_id, Response.raw_answer)
                .join(Item, Response.item_id == Item.id)
                .where(Response.session_id.in_(sessions[k:k + 500])))
        for sid, iid, raw in db.execute(stmt):
            answers.setdefault((sid, iid), raw)
    data = export.data
    return [answers.get((export.session_ids[r], export.item_ids[data.item[r]]), "")
            for r in range(data.n_responses)]


def latest_item_result(external_id: str, bank_id: int) -> tuple[int, RecalibratedItem] | None:
    """The item in the bank's newest finished calibration job that has it: ``(job id, item)``."""
    stmt = (select(CalibrationJob).where(CalibrationJob.status.in_(("succeeded", "published")),
                                         CalibrationJob.bank_id == bank_id)
            .order_by(CalibrationJob.id.desc()).limit(20))
    for row in get_db().scalars(stmt):
        result = result_of(row)
        if result is None:
            continue
        try:
            return row.id, result.item(external_id)
        except LookupError:
            continue
    return None


def result_of(row: CalibrationJob) -> Recalibration | None:
    """The typed result of a finished job (None while it runs, or for a failed one)."""
    if not row.result or row.result.get("format") != RESULT_FORMAT:
        return None  # running, failed, or stored by an older version
    return Recalibration.from_dict(row.result)


# -- review: impact preview --------------------------------------------------------------------


def impact(job_id: int, selected: Sequence[str], org_id: int,
           threshold: float = IMPACT_THRESHOLD) -> ScoreImpact:
    """What publishing ``selected`` would do to the scores of every completed candidate whose
    assessment draws on the job's bank."""
    row = job(job_id, org_id)
    result = result_of(row)
    if result is None:
        raise ValueError("this calibration has no result to preview")
    chosen = _selection(result, selected)
    db = get_db()
    current = repo.load_bank(db, statuses=("pretest", "operational", "held", "retired"),
                             bank_id=row.bank_id).bank
    # `_selection` checked that every chosen item has a new estimate (`is not None` narrows)
    new = {it.item_id: it.new for it in result.items
           if it.item_id in chosen and it.new is not None}
    proposed = irt.Bank.from_params(new.get(p.item_id, p) if p.item_id in new else p
                                    for p in current.params())
    position = {iid: k for k, iid in enumerate(current.item_ids)}
    stmt = (select(Response.session_id, Item.external_id, Response.score, Assessment.cut_score)
            .join(Item, Response.item_id == Item.id)
            .join(CandidateSession, Response.session_id == CandidateSession.id)
            .join(Assessment, CandidateSession.assessment_id == Assessment.id)
            .where(CandidateSession.status == "completed", Item.bank_id == row.bank_id)
            .order_by(Response.session_id, Response.position))
    persons: dict[int, int] = {}
    p, i, x, cuts = [], [], [], []
    for sid, iid, score, cut in db.execute(stmt):
        if iid not in position:
            continue
        if sid not in persons:
            persons[sid] = len(persons)
            cuts.append(float("nan") if cut is None else cut_to_theta(cut))
        p.append(persons[sid])
        i.append(position[iid])
        x.append(score)
    data = irt.SparseResponses(np.array(p, dtype=np.int64), np.array(i, dtype=np.int64),
                               np.array(x, dtype=np.int64), len(persons), len(current))
    return score_impact(data, current, proposed, np.array(cuts), threshold=threshold)


def _selection(result: Recalibration, selected: Sequence[str]) -> set[str]:
    chosen = set(selected)
    publishable = {it.item_id for it in result.items if it.role == "estimated" and it.new}
    bad = sorted(chosen - publishable)
    if bad:
        raise ValueError(f"item {bad[0]!r} has no new estimate to publish (anchor, excluded or "
                         f"not in this calibration)")
    return chosen


# -- publishing and rollback -------------------------------------------------------------------


def publish(job_id: int, user_id: int, org_id: int, selected: Sequence[str] | None = None, *,
            reason: str = "", rules: PublishRules | None = None) -> int:
    """Publish the new parameters of ``selected`` items (default: the items ``rules`` — default
    the job's — recommend) as the current versions; records who, when, why, the rules and the
    items with the calibration run. Returns the run id."""
    reason = (reason or "").strip()
    if len(reason) > MAX_REASON:
        raise ValueError(f"field 'reason' is longer than {MAX_REASON} characters")
    with unit_of_work() as db:
        row = _owned(db, db.get(CalibrationJob, job_id, with_for_update=True), org_id)
        if row.status != "succeeded":
            raise ValueError(f"only a succeeded calibration can be published (this one is "
                             f"{row.status})")
        result = result_of(row)
        if result is None:
            raise ValueError("this calibration's result was stored by an older version; start "
                             "a new calibration")
        if rules is not None:
            result = result.with_rules(rules)
        if selected is None:
            selected = [it.item_id for it in result.items if it.action == "publish"]
            reason = reason or "published with the recommended selection"
        chosen = _selection(result, selected)
        if not chosen:
            raise ValueError("no item selected to publish")
        if not reason:
            raise ValueError("field 'reason': say why these parameters are published")
        records = [ParameterRecord(it.new, it.se_a, it.se_b, it.se_c, None, it.n_responses,
                                   False)
                   for it in result.items if it.item_id in chosen and it.new is not None]
        settings = dict(row.settings) | {
            "rules": result.settings.rules.__dict__, "items": sorted(chosen),
            "reason": reason, "job_id": job_id}
        spec = repo.CalibrationRunSpec(
            model=result.settings.model, method=f"mml-em/{result.settings.mode}",
            settings=settings, n_persons=result.n_persons, n_responses=result.n_responses,
            log_likelihood=result.loglik if np.isfinite(result.loglik) else None,
            converged=result.converged, n_iterations=result.n_iter,
            notes=f"calibration job {job_id}: {reason}", published_by_id=user_id)
        run_id = repo.publish_parameters(db, records, spec, bank_id=row.bank_id)
        row.status, row.calibration_run_id = "published", run_id
        row.finished_at = row.finished_at or dt.datetime.now(dt.UTC)
        return run_id


def rollback(run_id: int, user_id: int, reason: str, org_id: int) -> int:
    """Make the parameter versions that were current before run ``run_id`` current again, in
    one step, recorded as a new run (method ``rollback``) with who, when and why. Items the run
    gave their first parameters lose them (no current version). Returns the new run's id."""
    reason = (reason or "").strip()
    with unit_of_work() as db:
        run = db.get(CalibrationRun, run_id)
        if run is None or repo.get_bank(db, run.bank_id).organisation_id != org_id:
            raise LookupError("no such calibration run")
        if not reason:
            raise ValueError("field 'reason': say why the publication is rolled back")
        if len(reason) > MAX_REASON:
            raise ValueError(f"field 'reason' is longer than {MAX_REASON} characters")
        mine = list(db.scalars(select(ItemParameterVersion)
                               .where(ItemParameterVersion.calibration_run_id == run_id)))
        live = [v for v in mine if v.is_current]
        if not live:
            raise ValueError(f"calibration run {run_id} has no current parameters left to roll "
                             f"back (already replaced or rolled back)")
        records, orphans = [], []
        for v in live:
            before = db.scalar(select(ItemParameterVersion)
                               .where(ItemParameterVersion.item_id == v.item_id,
                                      ItemParameterVersion.id < v.id)
                               .order_by(ItemParameterVersion.id.desc()).limit(1))
            ext = v.item.external_id
            if before is None:
                orphans.append(v)
                continue
            params = irt.ItemParams(ext, before.model, before.a,
                                    before.b if before.b is not None else 0.0,
                                    before.c if before.c is not None else 0.0,
                                    before.d if before.d is not None else 1.0,
                                    tuple(before.thresholds or ()), v.item.skill.slug)
            records.append(ParameterRecord(params, before.se_a, before.se_b, before.se_c,
                                           before.se_d, before.n_responses, before.provisional))
        note = f"rollback of calibration run {run_id}: {reason}"
        new_id = run_id
        if records:
            spec = repo.CalibrationRunSpec(
                model=run.model, method="rollback",
                settings={"rollback_of": run_id, "reason": reason,
                          "items": sorted(r.params.item_id for r in records)},
                notes=note, published_by_id=user_id)
            new_id = repo.publish_parameters(db, records, spec, bank_id=run.bank_id)
        for v in orphans:
            v.is_current = False
        if not records:
            run.notes = f"{run.notes}\n{note}".strip()
        db.flush()
        log.info("calibration run %s rolled back by user %s as run %s", run_id, user_id, new_id)
        return new_id


def run_authors(rows: Sequence[CalibrationRun]) -> dict[int, str]:
    """Staff id → e-mail of the people who published ``rows``."""
    ids = {r.published_by_id for r in rows if r.published_by_id is not None}
    if not ids:
        return {}
    return dict(get_db().execute(select(StaffUser.id, StaffUser.email)
                                 .where(StaffUser.id.in_(ids))).all())


def runs(org_id: int, limit: int = 20) -> list[CalibrationRun]:
    """The latest calibration runs (publications and rollbacks) on the organisation's banks,
    newest first."""
    return list(get_db().scalars(select(CalibrationRun)
                                 .join(ItemBank, CalibrationRun.bank_id == ItemBank.id)
                                 .where(ItemBank.organisation_id == org_id)
                                 .order_by(CalibrationRun.id.desc())
                                 .limit(limit)))
