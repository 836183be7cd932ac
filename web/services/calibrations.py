"""Calibration jobs: start (queued), run (in a job worker), review, publish.

Two modes:

* ``anchored`` (default): operational items keep their current parameters and are held fixed
  (anchors); every other item with responses — pretest items above all — is calibrated on their
  scale (fixed-parameter calibration; the latent mean and SD are estimated). The reporting scale
  cannot move.
* ``free``: every item is recalibrated on N(0, 1), then linked to the current parameters by
  Stocking–Lord through the common items (with anchor purification), and each common item is
  checked for drift. What is published is the linked parameters, on the current scale.

Publishing writes one calibration run and new current parameter versions in one transaction; a
failure leaves the previous version current.

Every job calibrates one bank, owned by the organisation of the psychometrician who starts it;
only that organisation's staff see or publish it. The live response log it reads holds the
responses of the owner's candidates and of the organisations that consented to pooling
(`item_bank.repository.pooled_organisations`); the result names them.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

import irt
from calibration import ItemSpec, MMLCalibrator, Priors
from calibration.correlation import estimate_latent_correlation
from calibration.drift import ParameterErrors, drift
from calibration.fit import item_fit
from irt.io import ResponseLog, read_responses_csv
from item_bank import repository as repo
from item_bank.content import ParameterRecord
from item_bank.db import make_engine, transaction
from item_bank.models import CalibrationJob, Item, ItemBank, utcnow
from web import observability
from web.db import get_db, unit_of_work

log = logging.getLogger(__name__)

MODES = ("anchored", "free")
JOB_MODELS = ("1pl", "2pl", "3pl")
PROGRESS_INTERVAL_S = 0.5


@dataclass(frozen=True)
class JobSettings:
    model: str = "2pl"
    mode: str = "anchored"
    prior_a_sd: float | None = 0.5
    skills: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.model not in JOB_MODELS:
            raise ValueError(f"field 'model' must be one of {JOB_MODELS}, got {self.model!r}")
        if self.mode not in MODES:
            raise ValueError(f"field 'mode' must be one of {MODES}, got {self.mode!r}")
        if self.prior_a_sd is not None and not (0 < self.prior_a_sd <= 5):
            raise ValueError("field 'prior_a_sd' must be in (0, 5] or empty")

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
    log_ = read_responses_csv(_Named(text, filename))
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


class _Named(io.StringIO):
    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


def create_job(user_id: int, settings: JobSettings, database_url: str,
               upload: str | None = None, *, bank_id: int) -> int:
    """Queue a calibration of ``bank_id`` (an own bank, checked by the caller) from the live
    response log, or from an uploaded CSV (`check_upload`)."""
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


def jobs(org_id: int) -> list[CalibrationJob]:
    """The newest 100 jobs on the organisation's banks."""
    return list(get_db().scalars(select(CalibrationJob)
                                 .join(ItemBank, CalibrationJob.bank_id == ItemBank.id)
                                 .where(ItemBank.organisation_id == org_id)
                                 .order_by(CalibrationJob.id.desc()).limit(100)))


def _owned(db: Any, row: CalibrationJob | None, org_id: int) -> CalibrationJob:
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


def run_job(job_id: int, database_url: str | None) -> None:
    """Run a queued calibration job; its outcome and progress are written to its row.

    ``database_url`` None means the worker's own configuration (``DATABASE_URL``)."""
    engine = make_engine(database_url)
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
                finished_at=utcnow(), message=result["summary"]["headline"])
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
        bank = db.get(ItemBank, repo.resolve_bank_id(db, bank_id))
        pooled = repo.pooled_organisations(db, bank)
        log_ = read_responses_csv(_Named(upload, "upload")) if upload is not None \
            else repo.export_responses(db, skills=list(settings.skills) or None,
                                       bank_id=bank.id, organisation_ids=pooled)
        current = repo.load_bank(db, skills=list(settings.skills) or None, bank_id=bank.id)
        items = {it.external_id: it for it in db.scalars(select(Item)
                                                          .where(Item.bank_id == bank.id))}
        statuses = {k: v.status for k, v in items.items()}
        skill_of = {k: v.skill.slug for k, v in items.items()}
    if log_.data.n_responses == 0:
        raise ValueError("there are no recorded responses to calibrate")
    specs = [ItemSpec(iid, settings.model, skill_of[iid]) for iid in log_.item_ids]
    anchors = None
    if settings.mode == "anchored":
        keep = [i for i, iid in enumerate(current.bank.item_ids)
                if statuses.get(iid) == "operational" and iid in set(log_.item_ids)]
        anchors = current.bank.take(keep) if keep else None
    priors = Priors(a=(0.0, settings.prior_a_sd) if settings.prior_a_sd else None)
    last = [0.0]

    def progress(p: Any) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL_S:
            last[0] = now
            frac = min(0.95, p.cycle / max(p.max_iter, 1) * 4)
            _update(engine, job_id, progress=frac,
                    message=f"skill {p.skill}: EM cycle {p.cycle}, log-likelihood "
                            f"{p.loglik:.1f}")

    cal = MMLCalibrator(settings.model, priors=priors, callback=progress)
    cal.fit(log_.data, specs, anchors=anchors)
    fitted = cal.items_
    anchor_ids = set(anchors.item_ids) if anchors is not None else set()
    rows = []
    for k, p in enumerate(fitted.params()):
        rows.append({"item_id": p.item_id, "skill": p.skill, "model": p.model, "a": p.a,
                     "b": p.b, "c": p.c, "d": p.d, "se_a": _num(cal.se_.a[k]),
                     "se_b": _num(cal.se_.b[k]), "se_c": _num(cal.se_.c[k]),
                     "n_responses": int(cal.n_responses_[k]),
                     "status": statuses.get(p.item_id, "?"),
                     "anchor": p.item_id in anchor_ids})
    drift_rows: list[dict[str, Any]] = []
    link = None
    if settings.mode == "free":
        common = [i for i in fitted.item_ids if i in set(current.bank.item_ids)]
        if len(common) >= 5:
            se_new = ParameterErrors(a=cal.se_.a, b=cal.se_.b)
            result = drift(current.bank, fitted, se_new=se_new, common=common)
            link = {"A": result.linking.transform.A, "B": result.linking.transform.B,
                    "method": "stocking-lord"}
            moved = result.linking.transform.apply(fitted)
            for row, p in zip(rows, moved.params(), strict=True):
                row.update(a=p.a, b=p.b, se_a=_scaled(row["se_a"], 1 / link["A"]),
                           se_b=_scaled(row["se_b"], link["A"]))
            drift_rows = [dict(zip(result.COLUMNS, r, strict=True)) for r in result.to_rows()]
    issues = [{"kind": i.kind, "skill": i.skill, "item_id": i.item_id, "message": i.message}
              for i in cal.issues_]
    _update(engine, job_id, progress=0.97, message="item fit")
    fit_rows = _item_fit_rows(log_, fitted)
    correlations = _latent_correlations(log_, fitted)
    n_new = sum(1 for r in rows if not r["anchor"])
    headline = (f"{n_new} item(s) calibrated from {log_.data.n_responses} responses of "
                f"{log_.data.n_persons} candidates; "
                f"{'converged' if cal.converged_ else 'NOT converged'} in {cal.n_iter_} cycles")
    return {"items": rows, "issues": issues, "drift": _clean(drift_rows), "link": link,
            "fit": _clean(fit_rows), "correlations": correlations,
            "summary": {"headline": headline, "n_persons": log_.data.n_persons,
                        "n_responses": log_.data.n_responses, "loglik": cal.loglik_,
                        "converged": cal.converged_, "n_iter": cal.n_iter_,
                        "pooled_organisations": None if upload is not None else pooled,
                        "excluded": list(cal.excluded_),
                        "latent": [{"skill": f.skill, "mean": f.latent_mean, "sd": f.latent_sd}
                                   for f in cal.skills_]}}


def _item_fit_rows(log_: repo.ResponseExport | ResponseLog, fitted: irt.Bank
                   ) -> list[dict[str, Any]]:
    """Item fit of every calibrated item (S-X² on complete forms, rest-posterior residual fit
    on sparse CAT data; see `calibration.fit`), on the calibration's own scale."""
    result = item_fit(_indexed(log_, fitted), fitted)
    return [dict(zip(result.COLUMNS, row, strict=True)) for row in result.to_rows()]


def _latent_correlations(log_: repo.ResponseExport | ResponseLog, fitted: irt.Bank
                         ) -> dict[str, Any] | None:
    """The latent correlation matrix between the calibrated skills (pairwise marginal ML, see
    `calibration.correlation`), kept with the run so that multidimensional blueprints can use
    it; None with fewer than two skills."""
    if len(set(fitted.skills)) < 2:
        return None
    return estimate_latent_correlation(fitted, _indexed(log_, fitted)).to_dict()


def _indexed(log_: repo.ResponseExport | ResponseLog, fitted: irt.Bank) -> irt.SparseResponses:
    """The log's responses re-indexed to ``fitted`` (items left out of the fit dropped)."""
    position = {iid: k for k, iid in enumerate(fitted.item_ids)}
    remap = np.array([position.get(iid, -1) for iid in log_.item_ids], dtype=np.int64)
    mapped = remap[log_.data.item]
    keep = mapped >= 0
    return irt.SparseResponses(log_.data.person[keep], mapped[keep], log_.data.response[keep],
                               log_.data.n_persons, len(fitted))


def _num(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _scaled(x: float | None, factor: float) -> float | None:
    return None if x is None else x * factor


def _clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """JSON-safe values (NaN → None, numpy → Python)."""
    out = []
    for r in rows:
        out.append({k: (None if isinstance(v, float) and not math.isfinite(v)
                        else v.item() if isinstance(v, np.generic) else v)
                    for k, v in r.items()})
    return out


# -- publishing --------------------------------------------------------------------------------


def publish(job_id: int, user_id: int, org_id: int) -> int:
    """Publish a succeeded job's parameters (anchors excluded) as the current versions."""
    with unit_of_work() as db:
        row = _owned(db, db.get(CalibrationJob, job_id, with_for_update=True), org_id)
        if row.status != "succeeded":
            raise ValueError(f"only a succeeded calibration can be published (this one is "
                             f"{row.status})")
        result = row.result
        records = []
        for r in result["items"]:
            if r["anchor"]:
                continue
            params = irt.ItemParams(r["item_id"], r["model"], r["a"], r["b"], r["c"], r["d"],
                                    skill=r["skill"])
            records.append(ParameterRecord(params, r["se_a"], r["se_b"], r["se_c"], None,
                                           r["n_responses"], False))
        summary = result["summary"]
        settings = dict(row.settings)
        spec = repo.CalibrationRunSpec(
            model=settings["model"], method=f"mml-em/{settings['mode']}", settings=settings,
            n_persons=summary["n_persons"], n_responses=summary["n_responses"],
            log_likelihood=summary["loglik"], converged=summary["converged"],
            n_iterations=summary["n_iter"], notes=f"calibration job {job_id}",
            published_by_id=user_id)
        run_id = repo.publish_parameters(db, records, spec, bank_id=row.bank_id)
        row.status, row.calibration_run_id = "published", run_id
        row.finished_at = row.finished_at or dt.datetime.now(dt.UTC)
        return run_id
