"""Creating and editing assessments on the web: the form, its feasibility check (a background
job running the same `web.services.feasibility.design_assessment` as `proficio assessment
create`) and saving the checked design with its figures.

Organisation-scoped: every function takes the caller's organisation id; another organisation's
assessment or check is `staff.NotFound`. Banks: the organisation's own, or a library
(`repository.usable_banks`), as for the command line.

Editing and running sessions: a session copies the assessment's blueprint and test-security
settings when it starts (`CandidateSession.blueprint`, `CandidateSession.security`) and is
scored with those copies to the end, so an edit changes only the tests that start after it.
The bank is fixed at creation (sessions and the engine cache look it up by assessment), and so
is the cut score (reports of finished sessions read the current one); the form shows both
read-only when editing.

Test security (effort-moderated scoring, the retake window) is validated by the command line's
`item_bank.forensics_models.check_security` (`parse_security`), stored with the check's form
and saved with the design.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session, aliased

from item_bank import repository as repo
from item_bank.db import create_db_engine, rowcount, transaction
from item_bank.forensics_models import check_security
from item_bank.models import (
    LANGUAGES,
    Assessment,
    CandidateSession,
    FeasibilityCheck,
    ItemBank,
    Organisation,
    Skill,
    StaffUser,
    utcnow,
)
from item_bank.pool import load_item_pool
from web.db import get_db, unit_of_work
from web.services import audit
from web.services.feasibility import (
    MAX_CHECK_SIMULEES,
    MAX_FORM_ITEMS,
    DesignChoices,
    Feasibility,
    design_assessment,
)
from web.services.staff import NotFound

log = logging.getLogger(__name__)

#: Checks of one organisation that may wait or run at once (each is seconds to a minute of a
#: worker's time); more are refused until one has finished.
MAX_PENDING_CHECKS = 3
#: A check still waiting or running this long after it was queued has lost its worker (a job
#: queue does not re-run a task whose worker died): it is marked failed, so it no longer counts
#: against `MAX_PENDING_CHECKS`. A check takes seconds to a minute.
STALE_CHECK = dt.timedelta(minutes=30)
#: How long the outcome of a check that was never saved stays viewable.
KEEP_UNSAVED_CHECK = dt.timedelta(days=7)
MAX_TIME_LIMIT_MINUTES = 600
SLUG_RE = re.compile(r"[^a-z0-9]+")


class FormError(ValueError):
    """Field → message for every wrong field of the form."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"field {k!r}: {v}" for k, v in self.errors.items()))


@dataclass(frozen=True)
class AssessmentForm:
    """The form's values (also stored with a check, so the form can be shown again)."""

    name: str
    slug: str
    bank_id: int
    choices: DesignChoices
    time_limit_minutes: int | None = None
    language: str | None = None
    cut_score: float | None = None
    #: Test-security settings, as `check_security` returns them (every key, validated).
    security: dict[str, Any] = field(default_factory=lambda: check_security(None))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "slug": self.slug, "bank_id": self.bank_id,
                "choices": self.choices.to_dict(),
                "time_limit_minutes": self.time_limit_minutes, "language": self.language,
                "cut_score": self.cut_score, "security": dict(self.security)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AssessmentForm:
        # a check stored before the form had security settings: the defaults
        return cls(str(d["name"]), str(d["slug"]), int(d["bank_id"]),
                   DesignChoices.from_dict(d["choices"]), d.get("time_limit_minutes"),
                   d.get("language"), d.get("cut_score"), check_security(d.get("security")))


@dataclass(frozen=True)
class BankSkills:
    """A bank the organisation may build on, with its skills (slug, name, usable items)."""

    bank: ItemBank
    skills: tuple[tuple[str, str, int], ...] = field(default=())

    @property
    def items_per_skill(self) -> dict[str, int]:
        return {slug: n for slug, _, n in self.skills}


@dataclass(frozen=True)
class AssessmentRow:
    assessment: Assessment
    bank_name: str
    max_items: int
    length: str | None
    sessions: int
    running: int
    #: The assessment's test-security settings (`check_security`: defaults filled in).
    security: dict[str, Any] = field(default_factory=lambda: check_security(None))


# -- reading -----------------------------------------------------------------------------------


def banks(org_id: int, db: Session | None = None) -> list[ItemBank]:
    """The banks the organisation may build assessments on: its own, then the libraries."""
    db = db or get_db()
    rows = repo.usable_banks(db, org_id)
    return sorted(rows, key=lambda b: (b.organisation_id != org_id, b.id))


def bank_skills(org_id: int, bank_id: int, db: Session | None = None) -> BankSkills:
    """The skills of a usable bank with how many items the engine may serve of each."""
    db = db or get_db()
    bank = db.get(ItemBank, bank_id)
    if bank is None or (bank.organisation_id != org_id and not bank.library):
        raise NotFound("no such bank")
    names = list(db.execute(select(Skill.slug, Skill.name).where(Skill.bank_id == bank_id)
                            .order_by(Skill.slug)).all())
    counts: dict[str, int] = {}
    if names:
        pool = load_item_pool(db, None, with_exposure=False, bank_id=bank_id)
        for skill in pool.bank.skills:
            counts[str(skill)] = counts.get(str(skill), 0) + 1
    return BankSkills(bank, tuple((slug, name, counts.get(slug, 0)) for slug, name in names))


def assessments(org_id: int) -> list[AssessmentRow]:
    """The organisation's assessments with their bank, length and sessions."""
    from engine import Blueprint

    db = get_db()
    started = dict(db.execute(select(CandidateSession.assessment_id, func.count())
                              .group_by(CandidateSession.assessment_id)).all())
    running = dict(db.execute(select(CandidateSession.assessment_id, func.count())
                              .where(CandidateSession.status == "in_progress")
                              .group_by(CandidateSession.assessment_id)).all())
    out = []
    for a, bank_name in db.execute(select(Assessment, ItemBank.name)
                                   .join(ItemBank, Assessment.bank_id == ItemBank.id)
                                   .where(Assessment.organisation_id == org_id)
                                   .order_by(Assessment.name)):
        length = Feasibility.from_dict(a.feasibility).length_phrase() if a.feasibility \
            else None
        out.append(AssessmentRow(a, bank_name, Blueprint.from_dict(a.blueprint).max_items,
                                 length, int(started.get(a.id, 0)), int(running.get(a.id, 0)),
                                 check_security(a.security)))
    return out


def owned_assessment(org_id: int, assessment_id: int, db: Session | None = None) -> Assessment:
    db = db or get_db()
    row = db.get(Assessment, assessment_id)
    if row is None or row.organisation_id != org_id:
        raise NotFound("no such assessment")
    return row


def running_sessions(assessment_id: int, db: Session | None = None) -> int:
    db = db or get_db()
    return int(db.scalar(select(func.count(CandidateSession.id)).where(
        CandidateSession.assessment_id == assessment_id,
        CandidateSession.status == "in_progress")) or 0)


def default_form(org_id: int, bank_id: int | None = None) -> AssessmentForm:
    """A new assessment's form: the default design (`DesignChoices`) over every skill of the
    organisation's first bank (or ``bank_id``)."""
    options = banks(org_id)
    if not options:
        raise NotFound("the organisation has no item bank")
    chosen = bank_id if bank_id is not None else options[0].id
    info = bank_skills(org_id, chosen)
    return AssessmentForm("", "", chosen,
                          DesignChoices(skills=tuple(s for s, _, n in info.skills if n > 0)))


def form_of(org_id: int, assessment_id: int) -> AssessmentForm:
    """The form of an assessment: what was entered when it was last saved from the web, else
    read from its blueprint."""
    from engine import Blueprint

    db = get_db()
    a = owned_assessment(org_id, assessment_id, db)
    saved = db.scalar(select(FeasibilityCheck).where(
        FeasibilityCheck.assessment_id == a.id, FeasibilityCheck.status == "saved")
        .order_by(FeasibilityCheck.id.desc()).limit(1))
    if saved is not None:
        form = AssessmentForm.from_dict(saved.form)
        # name, limits, language and security settings may have changed since (the command
        # line): the row's own
        return replace(form, name=a.name, slug=a.slug, bank_id=a.bank_id,
                       time_limit_minutes=a.time_limit_minutes, language=a.language,
                       cut_score=a.cut_score, security=check_security(a.security))
    try:
        skills = [s for s, _, _ in bank_skills(org_id, a.bank_id, db).skills]
    except NotFound:  # a library withdrawn since: the form says so
        skills = []
    return AssessmentForm(a.name, a.slug, a.bank_id,
                          DesignChoices.from_blueprint(Blueprint.from_dict(a.blueprint), skills),
                          a.time_limit_minutes, a.language, a.cut_score,
                          check_security(a.security))


def check(org_id: int, check_id: int, db: Session | None = None) -> FeasibilityCheck:
    db = db or get_db()
    row = db.get(FeasibilityCheck, check_id)
    if row is None or row.organisation_id != org_id:
        raise NotFound("no such feasibility check")
    return row


# -- the form ----------------------------------------------------------------------------------


def _number(raw: str, name: str, errors: dict[str, str], kind: type = float,
            optional: bool = False) -> Any:
    text = (raw or "").strip()
    if not text:
        if optional:
            return None
        errors[name] = "required"
        return None
    try:
        value = kind(text)
    except ValueError:
        errors[name] = "expected a whole number" if kind is int else "expected a number"
        return None
    return value


SECURITY_FIELD = re.compile(r"field 'security\.(\w+)' (.*)", re.S)
WHOLE_NUMBER = re.compile(r"[+-]?\d{1,12}")


def parse_security(form: Any, errors: dict[str, str],
                   current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The form's test-security settings, validated by `check_security` (the one check the
    command line's ``--effort-moderated``/``--retake-window-days`` go through too): a
    checked box is on, an unchecked one off; the retake window is passed on as a whole number
    when it reads as one, else as the text entered, which `check_security` refuses (its
    message names the form field, ``retake_window_days``, in ``errors``). A submission without
    the retake field keeps ``current`` (an edited assessment's settings), else the default."""
    settings: dict[str, Any] = {"effort_moderated": bool(form.get("effort_moderated"))}
    if "retake_window_days" in form:
        text = (form.get("retake_window_days") or "").strip()
        settings["retake_window_days"] = int(text) if WHOLE_NUMBER.fullmatch(text) \
            else text[:24]
    elif current is not None:
        settings["retake_window_days"] = check_security(current)["retake_window_days"]
    try:
        return check_security(settings)
    except ValueError as exc:
        found = SECURITY_FIELD.fullmatch(str(exc))
        if found is None:  # not one setting's message
            errors["security"] = str(exc)
        else:
            errors[found.group(1)] = found.group(2)
        return check_security(None)


def slug_of(name: str) -> str:
    return SLUG_RE.sub("-", name.lower()).strip("-")[:64] or "assessment"


def parse_form(org_id: int, form: Any, editing: Assessment | None = None) -> AssessmentForm:
    """The submitted form (a `werkzeug.MultiDict`) as an `AssessmentForm`; `FormError` names
    every wrong field. When ``editing``, the bank, slug and cut score are the assessment's."""
    errors: dict[str, str] = {}
    name = (form.get("name") or "").strip()
    try:
        name = repo.check_name(name)
    except ValueError as exc:
        errors["name"] = str(exc).removeprefix("field 'name': ")
    if not name and "name" not in errors:
        errors["name"] = "required"
    if editing is not None:
        bank_id, slug, cut = editing.bank_id, editing.slug, editing.cut_score
    else:
        slug = (form.get("slug") or "").strip() or slug_of(name)
        if not repo.SLUG.match(slug):
            errors["slug"] = "lower-case letters, digits and '-' only"
        bank_id = _number(form.get("bank", ""), "bank", errors, int) or 0
        cut = _number(form.get("cut_score", ""), "cut_score", errors, float, optional=True)
        if cut is not None and not 0 <= cut <= 1000:
            errors["cut_score"] = "a score on the reporting scale, between 0 and 1000"
    try:
        info = bank_skills(org_id, bank_id) if bank_id else None
    except NotFound:
        errors["bank"] = "choose one of the listed banks" if editing is None else \
            "the assessment's bank is no longer available to your organisation"
        info = None
    skills = tuple(dict.fromkeys(str(s) for s in form.getlist("skills")))
    weights: dict[str, float] = {}
    for key in form:
        if key.startswith("weight_"):
            skill = key.removeprefix("weight_")
            raw = form.get(key, "")
            if skill not in skills and not (info and skill not in info.items_per_skill):
                continue  # the weight of a skill that is not chosen does not matter
            value = _number(raw, key, errors, float, optional=True)
            if value is not None:
                weights[skill] = value
    overall_se = _number(form.get("overall_se", ""), "overall_se", errors)
    max_items = _number(form.get("max_items", ""), "max_items", errors, int)
    min_per_skill = _number(form.get("min_per_skill", ""), "min_per_skill", errors, int)
    exposure = bool(form.get("exposure_control"))
    max_exposure = _number(form.get("max_exposure", ""), "max_exposure", errors,
                           optional=not exposure)
    time_limit = _number(form.get("time_limit_minutes", ""), "time_limit_minutes", errors, int,
                         optional=True)
    if time_limit is not None and not 1 <= time_limit <= MAX_TIME_LIMIT_MINUTES:
        errors["time_limit_minutes"] = f"between 1 and {MAX_TIME_LIMIT_MINUTES} minutes, or " \
                                       "empty for none"
    language = (form.get("language") or "").strip() or None
    if language is not None and language not in LANGUAGES:
        errors["language"] = f"one of {', '.join(LANGUAGES)}, or the browser's"
    security = parse_security(form, errors, editing.security if editing is not None else None)
    choices = DesignChoices(
        skills=skills, weights=weights,
        overall_se=overall_se if overall_se is not None else 1.0,
        max_items=max_items if max_items is not None else 1,
        min_per_skill=min_per_skill if min_per_skill is not None else 0,
        exposure_control=exposure,
        max_exposure=max_exposure if max_exposure is not None else 1.0)
    if editing is not None:
        choices = replace(choices, exclude_tags=tuple(
            DesignChoices.from_blueprint(_blueprint(editing), ()).exclude_tags))
    if info is not None:
        for k, v in choices.problems(info.items_per_skill).items():
            errors.setdefault(k, v)  # a field already named (not a number) keeps its message
        empty = [s for s in skills if info.items_per_skill.get(s, 1) == 0]
        if empty:
            errors.setdefault("skills", f"skill {empty[0]!r} has no items that can be served")
    if errors:
        raise FormError(errors)
    return AssessmentForm(name, slug, bank_id, choices, time_limit, language, cut, security)


def _blueprint(a: Assessment) -> Any:
    from engine import Blueprint

    return Blueprint.from_dict(a.blueprint)


# -- the check (a background job) --------------------------------------------------------------


def start_check(org_id: int, user_id: int, form: AssessmentForm, database_url: str,
                assessment_id: int | None = None) -> int:
    """Queue the feasibility check of ``form`` (a new assessment, or an edit of
    ``assessment_id``); `FormError` when the organisation already has `MAX_PENDING_CHECKS`
    checks waiting or running, or a new assessment's slug is taken."""
    from web.jobs import enqueue_feasibility

    with unit_of_work() as db:
        pending = int(db.scalar(select(func.count(FeasibilityCheck.id)).where(
            FeasibilityCheck.organisation_id == org_id,
            FeasibilityCheck.status.in_(("queued", "running")))) or 0)
        if pending >= MAX_PENDING_CHECKS:
            raise FormError({"check": f"{pending} checks of your organisation are still "
                                      "running; try again when one has finished"})
        if assessment_id is None:
            _slug_free(db, org_id, form.slug)
        row = FeasibilityCheck(organisation_id=org_id, bank_id=form.bank_id,
                               assessment_id=assessment_id, created_by_id=user_id,
                               status="queued", message="waiting for a worker",
                               form=form.to_dict())
        db.add(row)
        db.flush()
        check_id = row.id
    enqueue_feasibility(check_id, database_url)
    return check_id


@dataclass(frozen=True)
class CheckCleanup:
    """What `clean_up_checks` did."""

    #: Checks that had waited or run longer than `STALE_CHECK`, now failed.
    failed: int
    #: Checks deleted: outcomes never saved, older than `KEEP_UNSAVED_CHECK`, and saved
    #: designs superseded by a later save of the same assessment.
    deleted: int


def clean_up_checks(engine: Engine, now: dt.datetime | None = None) -> CheckCleanup:
    """Run by the scheduled maintenance every minute: fail checks whose worker is gone, delete
    the rows nobody will read again. The latest saved check of each assessment is kept: it is
    what the edit form starts from (`form_of`)."""
    now = now or utcnow()
    with transaction(engine) as db:
        failed = rowcount(db.execute(
            update(FeasibilityCheck)
            .where(FeasibilityCheck.status.in_(("queued", "running")),
                   FeasibilityCheck.created_at < now - STALE_CHECK)
            .values(status="failed", finished_at=now,
                    message="the check did not finish (its worker stopped); run it again")
        ))
        later = aliased(FeasibilityCheck)
        superseded = select(later.id).where(later.assessment_id == FeasibilityCheck.assessment_id,
                                            later.status == "saved",
                                            later.id > FeasibilityCheck.id)
        deleted = rowcount(db.execute(
            delete(FeasibilityCheck).where(
                ((FeasibilityCheck.status.in_(("succeeded", "failed")))
                 & (func.coalesce(FeasibilityCheck.finished_at, FeasibilityCheck.created_at)
                    < now - KEEP_UNSAVED_CHECK))
                | ((FeasibilityCheck.status == "saved") & superseded.exists()))
            .execution_options(synchronize_session=False)
        ))
    if failed or deleted:
        log.info("feasibility checks: %d stale marked failed, %d old deleted", failed, deleted)
    return CheckCleanup(failed, deleted)


def _slug_free(db: Session, org_id: int, slug: str) -> None:
    taken = db.scalar(select(Assessment.id).where(Assessment.organisation_id == org_id,
                                                  Assessment.slug == slug))
    if taken is not None:
        raise FormError({"slug": f"the organisation already has an assessment {slug!r}"})


def run_check(check_id: int, database_url: str | None) -> None:
    """Run a queued check (the job worker); its outcome is written to its row."""
    engine = create_db_engine(database_url)

    def update(**values: Any) -> None:
        with transaction(engine) as db:
            row = db.get(FeasibilityCheck, check_id)
            for k, v in values.items():
                setattr(row, k, v)

    try:
        with transaction(engine) as db:
            row = db.get(FeasibilityCheck, check_id)
            if row is None or row.status != "queued":
                log.warning("feasibility check %s is not queued; skipped", check_id)
                return
            row.status, row.started_at, row.message = "running", utcnow(), "reading the bank"
            form = AssessmentForm.from_dict(row.form)
        with transaction(engine, write=False) as db:
            blueprint, feasibility = design_assessment(
                db, form.choices.skills, choices=form.choices, bank_id=form.bank_id,
                n=MAX_CHECK_SIMULEES, progress=lambda message, _share: update(message=message))
        update(status="succeeded", finished_at=utcnow(), blueprint=blueprint.to_dict(),
               result=feasibility.to_dict(), message="done")
    except Exception as exc:  # a check must end in a visible state, whatever happened
        log.exception("feasibility check %s failed", check_id)
        update(status="failed", finished_at=utcnow(), message=f"{type(exc).__name__}: {exc}"[:2000])
    finally:
        engine.dispose()


def save(org_id: int, user_id: int, check_id: int) -> Assessment:
    """Create or update the assessment of a finished check: its blueprint, its feasibility
    figures (what the welcome page promises) and the form's name, limit, language and
    test-security settings (sessions already running keep the settings they started with).
    `ValueError` when the check has not succeeded or was saved already."""
    with unit_of_work() as db:
        row = check(org_id, check_id, db)
        if row.status == "saved":
            raise ValueError("this check has been saved already")
        if row.status != "succeeded" or row.blueprint is None:
            raise ValueError("the check has not finished; wait for its figures")
        form = AssessmentForm.from_dict(row.form)
        user = db.get(StaffUser, user_id)
        if row.assessment_id is None:
            _slug_free(db, org_id, form.slug)
            org = db.get(Organisation, org_id)
            bank = db.get(ItemBank, form.bank_id)
            assert org is not None and bank is not None
            target = repo.create_assessment(db, org, form.slug, form.name, row.blueprint,
                                            cut_score=form.cut_score,
                                            time_limit_minutes=form.time_limit_minutes,
                                            created_by=user, bank=bank, security=form.security)
            action = "assessment.created"
            detail: dict[str, Any] = {}
        else:
            target = owned_assessment(org_id, row.assessment_id, db)
            repo.validate_blueprint(db, row.blueprint, target.bank_id)
            target.name = repo.check_name(form.name)
            target.blueprint = dict(row.blueprint)
            target.time_limit_minutes = form.time_limit_minutes
            before = check_security(target.security)
            target.security = check_security(form.security)
            action = "assessment.updated"
            detail = {} if before == target.security else {"security_before": before}
        target.language = form.language
        target.feasibility = dict(row.result or {})
        row.status, row.assessment_id = "saved", target.id
        audit.record(db, actor=user, action=action, target=target.slug,
                     detail={"check": row.id, "max_items": form.choices.max_items,
                             "overall_se": form.choices.overall_se,
                             "security": dict(target.security or {}), **detail},
                     organisation_id=org_id)
        db.flush()
        db.expunge(target)
        return target


__all__ = ["MAX_CHECK_SIMULEES", "MAX_FORM_ITEMS", "AssessmentForm", "FormError", "NotFound",
           "parse_form"]
