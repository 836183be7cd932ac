"""Test security in operations (issue 17): the compromised-item watch list and the integrity
notes on candidates' results, on a bank's own live data.

**Monitor** (`monitor_bank`, one code path for ``proficio monitor`` and the job queued after
completed sessions). For one bank it reads the live response log of finished sessions (the
owner's candidates and those of organisations that consented to pooling, as calibrations do),

1. fits the lognormal response-time model on the bank's own latencies
   (`irt.response_time.fit_lognormal`; items with ≥ `RT_MIN_RESPONSES` times) and stores it
   (`BankMonitor.rt_fit`), then the standardized log-time residual of every answer with the
   session's speed estimated without it (`irt.response_time.loo_time_residuals`);
2. computes for every answer the probability of a correct answer at the candidate's ability
   estimated *without that answer*: the EAP (N(0, 1) prior) of the session's other answers in
   the same skill, under the items' current parameters
   (`calibration.forensics.loo_eap_probabilities`);
3. runs `calibration.forensics.monitor_item` over each operational item's answers in time order
   and stores an `ItemAlarm` for a flagged item (started_at = the date the change began). After
   a psychometrician dismisses an alarm (or puts a held item back into service) the item's
   monitoring restarts with the answers given after that decision.

It never runs on the answer's hot path: the answer that completes a session only marks the bank's
monitor as pending (one row, at most one queued job per bank) and queues the job after commit,
when ``PROFICIO_MONITOR_AFTER_SESSION`` is on (`request_after_session`), to start no sooner than
`MONITOR_MIN_INTERVAL` after the bank's previous run.

**Integrity notes** (`session_integrity`): for a finished session, the answers' probabilities at
the ability estimated without each answer, time residuals against the bank's stored response-time
fit, rapid guesses, the pre-knowledge statistic and lz* (`calibration.forensics.
integrity_evidence`), turned into neutral notes at the thresholds of `THRESHOLDS_BY_LENGTH` for
the session's number of scored answers (`calibration.forensics.thresholds_for`) — thresholds
chosen on simulated honest candidates of tests of that length (`benchmarks/bench_forensics.py`),
with the false-positive rate measured at that length, which the report quotes. Computed once
when a report is first shown and stored (`SessionIntegrity`), with the rate and the length it
was measured at.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import irt
from calibration.forensics import (
    CUSUM_THRESHOLD,
    CompromiseAlarm,
    IntegrityThresholds,
    integrity_evidence,
    integrity_notes,
    loo_eap_probabilities,
    monitor_item,
    rapid_guesses,
    thresholds_for,
)
from irt.person_fit import lz_star
from irt.response_time import fit_lognormal, loo_time_residuals
from item_bank import repository as repo
from item_bank.db import rowcount
from item_bank.forensics_models import BankMonitor, ItemAlarm, SessionIntegrity
from item_bank.models import (
    Candidate,
    CandidateSession,
    Item,
    ItemBank,
    ItemParameterVersion,
    Response,
    Skill,
    as_utc,
    utcnow,
)

log = logging.getLogger(__name__)

#: Items need this many recorded times before the response-time model describes them.
RT_MIN_RESPONSES = 20
#: Answers whose time residual is below this are "fast" on the watch list.
FAST_Z = -1.0
FINISHED = ("completed", "timed_out")
DICHOTOMOUS = {"1pl", "rasch", "2pl", "3pl", "4pl"}
#: Integrity-note thresholds per test length: for each studied length, chosen by
#: `calibration.forensics.choose_thresholds` (target 0.8 %) on 10,000 simulated honest
#: candidates of adaptive tests of that many answers, with the share of 10,000 fresh honest
#: simulees of the same length who get a note at them — the false-positive rate the report
#: quotes (0.60–0.91 %: at most 1 % at every length). This command prints the table (seed
#: 20261204 for every length; benchmarks/RESULTS.md, issue 17, "Integrity notes per test
#: length"):
#:
#:     PYTHONPATH=. .venv/bin/python benchmarks/bench_forensics.py \
#:         --lengths 10,15,20,25,30,40,50,60,80,100 --between 12,17,22,27,35,45,55,70,90 \
#:         --train 10000 --target 0.008
#:
#: (Chosen on 4,000 simulees at a 1 % target, the first version of this table quoted
#: 0.68–1.28 %: thresholds fitted to a few dozen tail simulees were too low for fresh ones.)
#: A session is judged by `calibration.forensics.thresholds_for`: the
#: entry of the nearest studied length at or above its number of scored answers; shorter than
#: 10 or longer than 100 answers, no note. The pre-knowledge limit is on
#: `preknowledge_mixture_llr`.
THRESHOLDS_BY_LENGTH: tuple[IntegrityThresholds, ...] = (
    IntegrityThresholds(n_answers=10, rapid_count=2, preknowledge_llr=2.2137, lz_star=-2.2983,
                        false_positive_rate=0.0064, n_simulated=10_000),
    IntegrityThresholds(n_answers=15, rapid_count=2, preknowledge_llr=2.3385, lz_star=-2.4734,
                        false_positive_rate=0.0060, n_simulated=10_000),
    IntegrityThresholds(n_answers=20, rapid_count=2, preknowledge_llr=2.3660, lz_star=-2.3136,
                        false_positive_rate=0.0091, n_simulated=10_000),
    IntegrityThresholds(n_answers=25, rapid_count=2, preknowledge_llr=2.3995, lz_star=-2.4734,
                        false_positive_rate=0.0082, n_simulated=10_000),
    IntegrityThresholds(n_answers=30, rapid_count=2, preknowledge_llr=2.4425, lz_star=-2.4606,
                        false_positive_rate=0.0073, n_simulated=10_000),
    IntegrityThresholds(n_answers=40, rapid_count=2, preknowledge_llr=2.3926, lz_star=-2.5247,
                        false_positive_rate=0.0088, n_simulated=10_000),
    IntegrityThresholds(n_answers=50, rapid_count=2, preknowledge_llr=2.4007, lz_star=-2.5980,
                        false_positive_rate=0.0086, n_simulated=10_000),
    IntegrityThresholds(n_answers=60, rapid_count=2, preknowledge_llr=2.5551, lz_star=-2.5940,
                        false_positive_rate=0.0087, n_simulated=10_000),
    IntegrityThresholds(n_answers=80, rapid_count=2, preknowledge_llr=2.3279, lz_star=-2.7180,
                        false_positive_rate=0.0084, n_simulated=10_000),
    IntegrityThresholds(n_answers=100, rapid_count=2, preknowledge_llr=2.4899, lz_star=-2.7845,
                        false_positive_rate=0.0073, n_simulated=10_000),
)
ALARM_ACTIONS = {"dismiss": "dismissed", "hold": "held", "retire": "retired"}
#: Least time between two monitor runs of a bank queued by completed sessions (`monitor_delay`);
#: `proficio monitor` runs at once.
MONITOR_MIN_INTERVAL = dt.timedelta(minutes=5)


class NotFound(LookupError):
    """No such alarm or session in the caller's organisation."""


# -- numeric helpers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeModel:
    """The bank's stored response-time fit: per external id (β, α), and σ_τ."""

    beta: dict[str, float]
    alpha: dict[str, float]
    sigma_tau: float
    n_responses: int

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TimeModel | None:
        if not d or not d.get("items"):
            return None
        items = d["items"]
        return cls({k: float(v[0]) for k, v in items.items()},
                   {k: float(v[1]) for k, v in items.items()}, float(d["sigma_tau"]),
                   int(d.get("n_responses", 0)))

    def arrays(self, ids: Sequence[str]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return (np.array([self.beta.get(i, np.nan) for i in ids]),
                np.array([self.alpha.get(i, np.nan) for i in ids]))

    def residuals(self, person: NDArray[np.int64], ids: Sequence[str], item: NDArray[np.int64],
                  seconds: NDArray[np.float64], n_persons: int) -> NDArray[np.float64]:
        """Leave-one-out time residuals; NaN for answers without a time or a fitted item."""
        z = np.full(item.size, np.nan)
        timed = np.isfinite(seconds) & (seconds > 0)
        if timed.any():
            beta, alpha = self.arrays(ids)
            z[timed] = loo_time_residuals(person[timed], item[timed], seconds[timed], beta,
                                          alpha, self.sigma_tau, n_persons)
        return z


# -- the monitor -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorRun:
    bank_id: int
    n_responses: int
    n_items: int
    rt_items: int
    new_alarms: tuple[str, ...]
    open_alarms: int


@dataclass
class _Log:
    session: NDArray[np.int64]
    item: NDArray[np.int64]          # index into ids
    group: NDArray[np.int64]
    correct: NDArray[np.float64]
    seconds: NDArray[np.float64]
    answered_at: list[dt.datetime]
    ids: list[str]
    n_sessions: int
    n_groups: int


def _response_log(db: Session, bank: ItemBank, ids: Sequence[str]) -> _Log:
    index = {e: k for k, e in enumerate(ids)}
    rows = db.execute(
        select(Response.session_id, Item.external_id, Skill.slug, Response.score,
               Response.latency_ms, Response.answered_at)
        .join(CandidateSession, Response.session_id == CandidateSession.id)
        .join(Candidate, CandidateSession.candidate_id == Candidate.id)
        .join(Item, Response.item_id == Item.id).join(Skill, Item.skill_id == Skill.id)
        .where(Item.bank_id == bank.id, CandidateSession.status.in_(FINISHED),
               Candidate.organisation_id.in_(repo.pooled_organisations(db, bank)))
        .order_by(Response.answered_at, Response.id)).all()
    sessions: dict[int, int] = {}
    groups: dict[tuple[int, str], int] = {}
    s, i, g, x, t, at = [], [], [], [], [], []
    for sid, ext, skill, score, latency, answered in rows:
        if ext not in index:
            continue  # no current parameters
        s.append(sessions.setdefault(sid, len(sessions)))
        i.append(index[ext])
        g.append(groups.setdefault((sid, skill), len(groups)))
        x.append(1.0 if score > 0 else 0.0)
        t.append(latency / 1000.0 if latency and latency > 0 else np.nan)
        at.append(as_utc(answered))
    return _Log(np.array(s, dtype=np.int64), np.array(i, dtype=np.int64),
                np.array(g, dtype=np.int64), np.array(x), np.array(t), at, list(ids),
                len(sessions), len(groups))


def _fit_times(lg: _Log) -> dict[str, Any] | None:
    timed = np.isfinite(lg.seconds)
    counts = np.bincount(lg.item[timed], minlength=len(lg.ids))
    if not (counts >= RT_MIN_RESPONSES).any():
        return None
    fit = fit_lognormal(lg.session[timed], lg.item[timed], lg.seconds[timed], lg.n_sessions,
                        len(lg.ids), min_responses=RT_MIN_RESPONSES)
    items = {lg.ids[k]: [float(fit.beta[k]), float(fit.alpha[k]), int(fit.n_responses[k])]
             for k in range(len(lg.ids)) if np.isfinite(fit.beta[k])}
    return {"sigma_tau": fit.sigma_tau, "n_responses": int(timed.sum()), "items": items,
            "converged": fit.converged}


@dataclass(frozen=True)
class _Finding:
    """A flagged item as computed (before it is stored as an `ItemAlarm`)."""

    item_pk: int
    external_id: str
    alarm: CompromiseAlarm
    threshold: float
    n_responses: int
    fast_share_before: float | None
    fast_share_since: float | None
    #: The decision after which the item's answers were monitored (None: all answers).
    since: dt.datetime | None


@dataclass(frozen=True)
class _Computed:
    bank_id: int
    fit: dict[str, Any] | None
    findings: tuple[_Finding, ...]
    n_responses: int
    n_items: int


def _compute(db: Session, bank_id: int, threshold: float) -> _Computed:
    """The monitor's statistics (reads only)."""
    bank = db.get(ItemBank, bank_id)
    if bank is None:
        raise LookupError(f"no bank {bank_id}")
    loaded = repo.load_bank(db, statuses=("pretest", "operational", "held", "retired"),
                            bank_id=bank_id)
    params = loaded.bank.params()
    keep = [k for k, p_ in enumerate(params) if p_.model in DICHOTOMOUS]
    sub = irt.Bank.from_params(params[k] for k in keep)
    ids = [params[k].item_id for k in keep]
    status = {params[k].item_id: loaded.items[k].status for k in keep}
    lg = _response_log(db, bank, ids)
    monitor = db.get(BankMonitor, bank_id)
    fit = _fit_times(lg) if lg.item.size else None
    model = TimeModel.from_dict(fit if fit is not None else monitor.rt_fit if monitor else None)
    z = (model.residuals(lg.session, ids, lg.item, lg.seconds, lg.n_sessions)
         if model is not None and lg.item.size else np.full(lg.item.size, np.nan))
    p = (loo_eap_probabilities(lg.group, lg.item, lg.correct, sub, lg.n_groups)
         if lg.item.size else np.empty(0))
    pks = dict(db.execute(select(Item.external_id, Item.id)
                          .where(Item.bank_id == bank_id)).all())
    latest = _latest_alarms(db, bank_id)
    findings: list[_Finding] = []
    checked = 0
    by_item = np.argsort(lg.item, kind="stable")  # time order within each item
    bounds = np.searchsorted(lg.item[by_item], np.arange(len(ids) + 1))
    for k, ext in enumerate(ids):
        if status[ext] != "operational":
            continue
        checked += 1
        rows = by_item[bounds[k]:bounds[k + 1]]
        previous = latest.get(pks[ext])
        since = None
        if previous is not None and previous.status != "open" and previous.decided_at:
            since = as_utc(previous.decided_at)
            rows = np.array([r for r in rows if lg.answered_at[r] > since], dtype=np.int64)
        if rows.size == 0:
            continue
        found = monitor_item(ext, lg.correct[rows], p[rows], z[rows],
                             [lg.answered_at[r] for r in rows], threshold=threshold)
        if found is None:
            continue
        x, zz = lg.correct[rows], z[rows]
        fast = (x == 1) & (zz < FAST_Z)
        timed = np.isfinite(zz)

        def share(seg: slice, fast: NDArray[np.bool_] = fast,
                  timed: NDArray[np.bool_] = timed) -> float | None:
            n = int(timed[seg].sum())
            return float(fast[seg].sum() / n) if n else None

        findings.append(_Finding(
            pks[ext], ext, found, threshold, int(rows.size),
            share(slice(0, found.start_index)),
            share(slice(found.start_index, found.alarm_index + 1)), since))
    return _Computed(bank_id, fit, tuple(findings), int(lg.item.size), checked)


def _latest_alarms(db: Session, bank_id: int) -> dict[int, ItemAlarm]:
    latest: dict[int, ItemAlarm] = {}
    for alarm in db.scalars(select(ItemAlarm).where(ItemAlarm.bank_id == bank_id)
                            .order_by(ItemAlarm.id)):
        latest[alarm.item_id] = alarm
    return latest


def _store(db: Session, c: _Computed) -> MonitorRun:
    """Store the fit and the alarms (a short write): an item's open alarm is updated; a new
    alarm is added unless a decision on the item was taken while the statistics ran."""
    monitor = db.get(BankMonitor, c.bank_id)
    if monitor is None:
        monitor = BankMonitor(bank_id=c.bank_id, pending=False)
        db.add(monitor)
    if c.fit is not None:
        monitor.rt_fit, monitor.rt_fitted_at = c.fit, utcnow()
    monitor.ran_at, monitor.n_responses, monitor.n_items = utcnow(), c.n_responses, c.n_items
    latest = _latest_alarms(db, c.bank_id)
    new: list[str] = []
    for f in c.findings:
        previous = latest.get(f.item_pk)
        target = previous if previous is not None and previous.status == "open" else None
        if target is None:
            if previous is not None and previous.decided_at is not None and (
                    f.since is None or as_utc(previous.decided_at) > f.since):
                continue  # decided while the statistics ran: the next run looks again
            target = ItemAlarm(bank_id=c.bank_id, item_id=f.item_pk, status="open")
            db.add(target)
            new.append(f.external_id)
        a = f.alarm
        target.started_at, target.flagged_at = a.started_at, a.flagged_at
        target.statistic, target.threshold = a.statistic, f.threshold
        target.n_responses, target.n_since_start = f.n_responses, a.n_since_start
        target.correct_since_start = a.correct_since_start
        target.expected_correct_since_start = a.expected_correct_since_start
        target.fast_share_before, target.fast_share_since = (f.fast_share_before,
                                                             f.fast_share_since)
        target.mean_time_residual_since = a.mean_time_residual_since_start
    db.flush()
    n_open = len(list(db.scalars(select(ItemAlarm.id).where(ItemAlarm.bank_id == c.bank_id,
                                                            ItemAlarm.status == "open"))))
    rt_items = len((monitor.rt_fit or {}).get("items", {}))
    log.info("monitor bank %s: %d responses, %d operational items, %d new alarm(s)", c.bank_id,
             c.n_responses, c.n_items, len(new))
    return MonitorRun(c.bank_id, c.n_responses, c.n_items, rt_items, tuple(new), n_open)


def monitor_bank(db: Session, bank_id: int, *, threshold: float = CUSUM_THRESHOLD
                 ) -> MonitorRun:
    """Fit the bank's response-time model, monitor each operational item and store alarms,
    in the caller's transaction (see the module docstring for the statistics). Services use
    `run_monitor`, which computes in a read transaction and writes in a short one."""
    return _store(db, _compute(db, bank_id, threshold))


def run_monitor(engine: Engine, bank_id: int, *, threshold: float = CUSUM_THRESHOLD
                ) -> MonitorRun:
    """The monitor of one bank — what ``proficio monitor`` and the queued job run: the
    statistics in a read transaction (answers are not blocked while they run; on SQLite a
    write transaction would lock out every answer), then the fit and alarms in a short write."""
    from item_bank.db import transaction

    with transaction(engine, write=False) as db:
        computed = _compute(db, bank_id, threshold)
    with transaction(engine) as db:
        return _store(db, computed)


def run_monitor_job(bank_id: int, database_url: str | None) -> MonitorRun | None:
    """The queued job (``database_url`` None: the worker's ``DATABASE_URL``): clear the bank's
    pending mark (later completions queue the next run), then `run_monitor`. A failure is
    logged; the next completed session queues again."""
    from item_bank.db import create_db_engine, transaction

    engine = create_db_engine(database_url)
    try:
        with transaction(engine) as db:
            db.execute(update(BankMonitor).where(BankMonitor.bank_id == bank_id)
                       .values(pending=False))
        return run_monitor(engine, bank_id)
    except Exception:
        log.exception("monitor job for bank %s failed", bank_id)
        return None
    finally:
        engine.dispose()


def mark_pending(db: Session, bank_id: int) -> bool:
    """Mark the bank's monitor pending; True when it was not already (then queue one job)."""
    now = utcnow()
    if rowcount(db.execute(update(BankMonitor).where(BankMonitor.bank_id == bank_id,
                                                     BankMonitor.pending.is_(False))
                           .values(pending=True, requested_at=now))):
        return True
    if db.get(BankMonitor, bank_id) is not None:
        return False  # already pending: that job will see this session too
    try:
        with db.begin_nested():
            db.add(BankMonitor(bank_id=bank_id, pending=True, requested_at=now))
    except IntegrityError:  # a concurrent completion inserted it first
        return False
    return True


def monitor_delay(monitor: BankMonitor | None, now: dt.datetime) -> float:
    """Seconds until the bank's next monitor run may start: runs queued by completed sessions
    are at least `MONITOR_MIN_INTERVAL` apart (each reads the bank's whole log), so under heavy
    traffic the sessions completed meanwhile wait for one run instead of keeping a worker busy;
    0 when the last run is older than that, or there was none."""
    if monitor is None or monitor.ran_at is None:
        return 0.0
    due = as_utc(monitor.ran_at) + MONITOR_MIN_INTERVAL
    return max(0.0, (due - now).total_seconds())


def request_after_session(db: Session, bank_id: int) -> None:
    """Called in the transaction that completes a session: when the app's
    ``PROFICIO_MONITOR_AFTER_SESSION`` is on, mark the bank's monitor pending and, once this
    transaction commits, queue one monitor job (none while one is already pending), to run
    `monitor_delay` seconds later."""
    from flask import current_app, has_app_context
    from sqlalchemy import event

    if not has_app_context() or not current_app.config.get("PROFICIO_MONITOR_AFTER_SESSION"):
        return
    if not mark_pending(db, bank_id):
        return
    delay = monitor_delay(db.get(BankMonitor, bank_id), utcnow())
    url = db.get_bind().engine.url.render_as_string(hide_password=False)

    def enqueue(_session: Session) -> None:
        from web.jobs import enqueue_monitor

        try:
            enqueue_monitor(bank_id, url, delay)
        except Exception as exc:  # the queue being down must not fail the candidate
            log.warning("monitor job for bank %s not queued: %s", bank_id, exc)
    event.listen(db, "after_commit", enqueue, once=True)


# -- the watch list ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AlarmView:
    id: int
    external_id: str
    stem: str
    item_status: str
    status: str
    started_at: dt.datetime | None
    flagged_at: dt.datetime | None
    statistic: float
    threshold: float
    n_responses: int
    n_since_start: int
    correct_since_start: int
    expected_correct_since_start: float
    fast_share_before: float | None
    fast_share_since: float | None
    mean_time_residual_since: float | None


def _view(a: ItemAlarm, item: Item) -> AlarmView:
    return AlarmView(a.id, item.external_id, item.stem[:120], item.status, a.status,
                     a.started_at, a.flagged_at, a.statistic, a.threshold, a.n_responses,
                     a.n_since_start, a.correct_since_start, a.expected_correct_since_start,
                     a.fast_share_before, a.fast_share_since, a.mean_time_residual_since)


def watch_list(db: Session, organisation_id: int, bank_id: int, *, include_closed: bool = True
               ) -> list[AlarmView]:
    """The alarms of a bank of ``organisation_id`` (open ones first, newest first)."""
    stmt = (select(ItemAlarm, Item).join(Item, ItemAlarm.item_id == Item.id)
            .join(ItemBank, ItemAlarm.bank_id == ItemBank.id)
            .where(ItemAlarm.bank_id == bank_id, ItemBank.organisation_id == organisation_id))
    if not include_closed:
        stmt = stmt.where(ItemAlarm.status == "open")
    rows = [_view(a, i) for a, i in db.execute(stmt.order_by(ItemAlarm.id.desc()))]
    return sorted(rows, key=lambda v: v.status != "open")


def monitor_state(db: Session, bank_id: int) -> BankMonitor | None:
    return db.get(BankMonitor, bank_id)


def decide(db: Session, organisation_id: int, alarm_id: int, action: str, user_id: int | None
           ) -> AlarmView:
    """Dismiss an alarm, or hold / retire its item (status ``held``: not served) in one step.

    Another organisation's alarm raises `NotFound`; an unknown action or a decided alarm
    raises `ValueError`."""
    if action not in ALARM_ACTIONS:
        raise ValueError(f"field 'action': must be one of {sorted(ALARM_ACTIONS)}, "
                         f"got {action!r}")
    found = db.execute(select(ItemAlarm, Item).join(Item, ItemAlarm.item_id == Item.id)
                       .join(ItemBank, ItemAlarm.bank_id == ItemBank.id)
                       .where(ItemAlarm.id == alarm_id,
                              ItemBank.organisation_id == organisation_id)
                       .with_for_update(of=ItemAlarm)).first()
    if found is None:
        raise NotFound(f"no alarm {alarm_id}")
    alarm, item = found
    if alarm.status != "open":
        raise ValueError(f"alarm {alarm_id} was already decided ({alarm.status})")
    alarm.status = ALARM_ACTIONS[action]
    alarm.decided_by_id, alarm.decided_at = user_id, utcnow()
    if action in ("hold", "retire"):
        item.status = alarm.status
    db.flush()
    return _view(alarm, item)


# -- candidates' integrity notes ---------------------------------------------------------------


@dataclass(frozen=True)
class IntegrityView:
    n_answers: int
    n_timed: int
    rapid: int
    notes: tuple[dict[str, Any], ...]

    @property
    def studied_lengths(self) -> tuple[int, int]:
        """The shortest and longest test lengths whose notes' false-positive rate was measured."""
        return THRESHOLDS_BY_LENGTH[0].n_answers, THRESHOLDS_BY_LENGTH[-1].n_answers

    @property
    def judged(self) -> bool:
        """Whether the statistics were turned into notes: only for test lengths whose
        false-positive rate was measured (`calibration.forensics.thresholds_for`)."""
        return thresholds_for(self.n_answers, THRESHOLDS_BY_LENGTH) is not None


@dataclass(frozen=True)
class SessionAnswers:
    """One session's scored dichotomous answers with what the statistics need."""

    external_ids: tuple[str, ...]
    positions: tuple[int, ...]
    correct: NDArray[np.float64]
    p_loo: NDArray[np.float64]
    z: NDArray[np.float64]
    seconds: NDArray[np.float64]
    typical: NDArray[np.float64]
    lz: float | None
    #: the items' time discriminations and the population speed SD of the bank's fit (NaN and
    #: None without one): the pre-knowledge statistic re-estimates the candidate's speed
    alpha: NDArray[np.float64]
    sigma_tau: float | None


def session_answers(db: Session, session_id: int, bank_id: int) -> SessionAnswers:
    """The session's answers to dichotomous items under the parameter versions that scored
    them, with leave-one-out probabilities, time residuals (the bank's stored fit) and lz*."""
    rows = db.execute(select(Response, Item.external_id, Skill.slug, ItemParameterVersion)
                      .join(Item, Response.item_id == Item.id)
                      .join(Skill, Item.skill_id == Skill.id)
                      .join(ItemParameterVersion,
                            Response.parameter_version_id == ItemParameterVersion.id)
                      .where(Response.session_id == session_id)
                      .order_by(Response.position)).all()
    rows = [r for r in rows if r[3].model in DICHOTOMOUS]
    ids = [r[1] for r in rows]
    bank = irt.Bank.from_params(repo.version_params(v, f"{ext}#{k}", skill)
                                for k, (_, ext, skill, v) in enumerate(rows))
    n = len(rows)
    item = np.arange(n, dtype=np.int64)
    x = np.array([1.0 if r[0].score > 0 else 0.0 for r in rows])
    seconds = np.array([r[0].latency_ms / 1000.0 if r[0].latency_ms and r[0].latency_ms > 0
                        else np.nan for r in rows])
    skills: dict[str, int] = {}
    group = np.array([skills.setdefault(r[2], len(skills)) for r in rows], dtype=np.int64)
    p = loo_eap_probabilities(group, item, x, bank, len(skills)) if n else np.empty(0)
    monitor = db.get(BankMonitor, bank_id)
    model = TimeModel.from_dict(monitor.rt_fit if monitor else None)
    z = np.full(n, np.nan)
    typical = np.full(n, np.nan)
    alpha = np.full(n, np.nan)
    if model is not None and n:
        beta, alpha = model.arrays(ids)
        typical = np.exp(beta)
        z = _session_residuals(model, ids, seconds)
    lz = None
    if n >= 2:
        # per skill, at Warm's WLE of the skill's answers (as in the simulation study that
        # chose the threshold); the most aberrant skill counts
        sparse = irt.SparseResponses(group, item, x.astype(np.int64), len(skills), n)
        theta = irt.wle(sparse, bank).theta
        values = lz_star(group, item, x, theta, bank, estimator="wle")
        finite = values[np.isfinite(values)]
        lz = float(finite.min()) if finite.size else None
    return SessionAnswers(tuple(ids), tuple(r[0].position for r in rows), x, p, z, seconds,
                          typical, lz, alpha, None if model is None else model.sigma_tau)


def _session_residuals(model: TimeModel, ids: Sequence[str], seconds: NDArray[np.float64]
                       ) -> NDArray[np.float64]:
    n = len(ids)
    return model.residuals(np.zeros(n, dtype=np.int64), list(ids), np.arange(n, dtype=np.int64),
                           seconds, 1)


def rapid_positions(answers: SessionAnswers) -> tuple[int, ...]:
    """Positions of the answers that were rapid guesses (`calibration.forensics.rapid_guesses`
    against the item's typical time, exp β, from the bank's response-time fit)."""
    if not answers.positions:
        return ()
    flags = rapid_guesses(answers.seconds, answers.typical)
    return tuple(pos for pos, f in zip(answers.positions, flags, strict=True) if f)


def rapid_guess_positions(db: Session, session_id: int, bank_id: int) -> tuple[int, ...]:
    """Positions of the session's answers that were rapid guesses against the bank's stored
    response-time fit (answers to items without a fitted time are never rapid): what
    effort-moderated scoring leaves out. Two small reads, once per completed session."""
    monitor = db.get(BankMonitor, bank_id)
    model = TimeModel.from_dict(monitor.rt_fit if monitor else None)
    if model is None:
        return ()
    rows = db.execute(select(Response.position, Item.external_id, Response.latency_ms)
                      .join(Item, Response.item_id == Item.id)
                      .where(Response.session_id == session_id)
                      .order_by(Response.position)).all()
    if not rows:
        return ()
    seconds = np.array([ms / 1000.0 if ms is not None else np.nan for _, _, ms in rows])
    typical = np.exp(model.arrays([ext for _, ext, _ in rows])[0])
    flags = rapid_guesses(seconds, typical) & np.isfinite(typical)
    return tuple(int(pos) for (pos, _, _), f in zip(rows, flags, strict=True) if f)


def session_integrity(db: Session, session_id: int, bank_id: int) -> IntegrityView | None:
    """The stored integrity evidence of a finished session, computed and stored on first use
    (None for a session that is still running); evidence judged without response times is
    judged again once the bank's response-time model has been fitted."""
    row = db.get(SessionIntegrity, session_id)
    if row is not None and row.n_timed == 0:
        # judged before the bank had a response-time model: judge again once it has one
        monitor = db.get(BankMonitor, bank_id)
        if monitor is not None and monitor.rt_fit and monitor.rt_fitted_at is not None \
                and as_utc(monitor.rt_fitted_at) > as_utc(row.computed_at):
            db.delete(row)
            db.flush()
            row = None
    if row is None:
        status = db.scalar(select(CandidateSession.status)
                           .where(CandidateSession.id == session_id))
        if status not in FINISHED:
            return None
        answers = session_answers(db, session_id, bank_id)
        has_times = bool(np.isfinite(answers.typical).any())
        evidence = integrity_evidence(answers.correct, answers.p_loo,
                                      answers.seconds if has_times else None,
                                      answers.typical if has_times else None, answers.lz,
                                      alpha=answers.alpha if has_times else None,
                                      sigma_tau=answers.sigma_tau if has_times else None)
        thresholds = thresholds_for(evidence.n_answers, THRESHOLDS_BY_LENGTH)
        notes = () if thresholds is None else integrity_notes(evidence, thresholds)
        row = SessionIntegrity(
            session_id=session_id, n_answers=evidence.n_answers,
            n_timed=int(np.sum(np.isfinite(answers.z))), rapid=evidence.rapid,
            preknowledge_llr=evidence.preknowledge_llr, lz_star=evidence.lz_star,
            notes=[{"kind": n.kind, "text": n.text,
                    "false_positive_rate": n.false_positive_rate,
                    "measured_n_answers": n.measured_n_answers} for n in notes])
        try:
            with db.begin_nested():
                db.add(row)
        except IntegrityError:  # stored concurrently by another request
            row = db.get(SessionIntegrity, session_id)
            if row is None:
                return None
    return IntegrityView(row.n_answers, row.n_timed, row.rapid, row.stored_notes())


def ensure_integrity(organisation_id: int, session_id: int) -> IntegrityView | None:
    """Compute and store the integrity evidence of an organisation's finished session if not
    stored yet (the report then shows its notes); another organisation's session: nothing."""
    from web.db import unit_of_work

    with unit_of_work() as db:
        row = db.get(CandidateSession, session_id)
        if row is None or row.assessment.organisation_id != organisation_id:
            return None
        return session_integrity(db, session_id, row.assessment.bank_id)
