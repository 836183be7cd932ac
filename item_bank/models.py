"""SQLAlchemy 2.0 typed ORM models of the item bank (one set for SQLite and PostgreSQL).

Tables and their invariants (enforced by the database, not only by code):

* ``item_banks``: every bank is owned by one organisation (slug unique within it); ``library``
  publishes it read-only to the other organisations, whose assessments may use or copy it;
* ``response_pooling_consents``: an organisation's recorded consent (and its withdrawal) to pool
  its candidates' responses into calibrations of another organisation's bank;
* ``skills`` (slug unique within a bank), ``items`` (stable ``external_id``, unique within a
  bank; status ``pretest`` / ``operational`` / ``retired``), ``item_enemies`` (a symmetric
  relation stored once, lower id first);
* ``item_parameter_versions``: every version is kept; a partial unique index allows exactly one
  ``is_current`` version per item; each version belongs to the ``calibration_runs`` row that
  produced it; runs and ``calibration_jobs`` belong to one bank;
* ``organisations``, ``staff_users`` (roles ``admin`` / ``psychometrician`` / ``recruiter``,
  argon2 password hashes), ``assessments`` (a JSON blueprint over the skills of one bank: the
  organisation's own or a library);
* ``candidates``, ``invitations`` (token stored only as a SHA-256 hash), ``test_sessions`` (the
  serialized engine state as JSON), ``responses`` (append-only; unique ``(session, position)`` and
  ``(session, item)``; each row names the parameter version that scored it), ``skill_results``.

Times are stored as timezone-aware UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

ITEM_STATUSES = ("pretest", "operational", "held", "retired")
#: How an item is answered and scored (`item_bank.scoring`).
RESPONSE_TYPES = ("single", "multiple", "ordering", "numeric", "text")
SCORINGS = ("partial", "all_or_nothing")
ROLES = ("admin", "psychometrician", "recruiter")
INVITATION_STATUSES = ("pending", "started", "completed", "expired", "revoked")
SESSION_STATUSES = ("in_progress", "completed", "timed_out", "abandoned", "expired")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "published")
DELIVERY_STATUSES = ("pending", "delivered", "failed")
WEBHOOK_EVENTS = ("session.completed", "session.timed_out", "session.abandoned",
                  "invitation.revoked")
#: Candidate-page languages (gettext catalogues under web/translations).
LANGUAGES = ("en", "de")

#: Constraint names are fixed so that Alembic migrations are identical on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(t: dt.datetime) -> dt.datetime:
    """A stored time as timezone-aware UTC (SQLite returns naive datetimes for these columns;
    they were stored as UTC)."""
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        dt.datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class ItemBank(Base):
    """A set of skills and items owned by one organisation; only its staff change it.

    ``library`` publishes it read-only: other organisations' assessments may draw from it and
    their psychometricians may copy it into a bank of their own."""

    __tablename__ = "item_banks"
    __table_args__ = (UniqueConstraint("organisation_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    library: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    library_since: Mapped[dt.datetime | None] = mapped_column()
    #: The bank this one was copied from (a library), if any.
    copied_from_id: Mapped[int | None] = mapped_column(ForeignKey("item_banks.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    organisation: Mapped[Organisation] = relationship()


class ResponsePoolingConsent(Base):
    """``organisation_id`` agrees that its candidates' responses to the items of ``bank_id``
    (another organisation's library) may be pooled into that bank's calibrations.

    Rows are never deleted: withdrawing sets ``revoked_at``; a new consent is a new row."""

    __tablename__ = "response_pooling_consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("item_banks.id"), index=True)
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    granted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class Skill(Base):
    __tablename__ = "skills"
    __table_args__ = (UniqueConstraint("bank_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("item_banks.id"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")

    items: Mapped[list[Item]] = relationship(back_populates="skill")


class Item(Base):
    """An item; ``options`` is a JSON list of ``{"id", "text"}``.

    ``response_type`` (`item_bank.scoring`): ``single`` is scored by ``key``; ``multiple``,
    ``ordering``, ``numeric`` and ``text`` by ``correct`` (a JSON list: the correct option ids,
    the right order, the accepted values or texts; ``key`` is then empty), ``multiple`` with
    ``scoring`` ``partial`` (categories 0 … len(correct)) or ``all_or_nothing`` (0/1)."""

    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint(_in("status", ITEM_STATUSES), name="status"),
        CheckConstraint(_in("response_type", RESPONSE_TYPES), name="response_type"),
        CheckConstraint(_in("scoring", SCORINGS), name="scoring"),
        CheckConstraint("difficulty_level IS NULL OR difficulty_level BETWEEN 1 AND 5",
                        name="difficulty_level"),
        UniqueConstraint("bank_id", "external_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The skill's bank (kept on the item so that external ids are unique per bank).
    bank_id: Mapped[int] = mapped_column(ForeignKey("item_banks.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(64))
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id"), index=True)
    stem: Mapped[str] = mapped_column(Text)
    options: Mapped[list[Any]] = mapped_column(JSON)
    key: Mapped[str] = mapped_column(String(16))
    explanation: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str] = mapped_column(String(8), default="2pl")
    status: Mapped[str] = mapped_column(String(16), default="pretest")
    difficulty_level: Mapped[int | None] = mapped_column(Integer)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    author: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(500))
    response_type: Mapped[str] = mapped_column(String(16), default="single",
                                               server_default="single")
    correct: Mapped[list[Any]] = mapped_column(JSON, default=list)
    scoring: Mapped[str] = mapped_column(String(16), default="partial", server_default="partial")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    skill: Mapped[Skill] = relationship(back_populates="items")
    parameter_versions: Mapped[list[ItemParameterVersion]] = relationship(
        back_populates="item", order_by="ItemParameterVersion.id")


class ItemMedia(Base):
    """A static file (an image) an item shows, stored with the item; see `item_bank.media`
    (the storage interface: the bytes live in ``data`` here, or in object storage under
    ``storage_key``)."""

    __tablename__ = "item_media"
    __table_args__ = (UniqueConstraint("item_id", "name"),
                      CheckConstraint("size_bytes >= 0", name="size_bytes"))

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    content_type: Mapped[str] = mapped_column(String(64))
    alt: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    storage_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ItemEnemy(Base):
    """Two items that must not appear in the same test (stored once, ``item_id < enemy_id``)."""

    __tablename__ = "item_enemies"
    __table_args__ = (CheckConstraint("item_id < enemy_id", name="ordered"),)

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"),
                                         primary_key=True)
    enemy_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"),
                                          primary_key=True, index=True)


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class StaffUser(Base):
    __tablename__ = "staff_users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Bumped at sign-out; a login cookie carries the epoch it was issued in, so signing out
    #: invalidates every copy of the cookie (server-side, without a session store).
    login_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    organisation: Mapped[Organisation] = relationship()


class CalibrationRun(Base):
    """One estimation (or import) of item parameters; its versions become current on publish."""

    __tablename__ = "calibration_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("item_banks.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    model: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(64), default="mml-em")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    response_filter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    n_persons: Mapped[int | None] = mapped_column(Integer)
    n_responses: Mapped[int | None] = mapped_column(Integer)
    log_likelihood: Mapped[float | None] = mapped_column(Float)
    converged: Mapped[bool | None] = mapped_column(Boolean)
    n_iterations: Mapped[int | None] = mapped_column(Integer)
    provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[dt.datetime | None] = mapped_column()
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))


class CalibrationJob(Base):
    """A calibration run as a background job: queued → running → succeeded/failed → published.

    ``result`` holds the estimated parameters, warnings and drift for review; publishing turns
    it into a `CalibrationRun` with new current parameter versions.
    """

    __tablename__ = "calibration_jobs"
    __table_args__ = (CheckConstraint(_in("status", JOB_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("item_banks.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: An uploaded long-format responses CSV to calibrate from (None: the live response log).
    upload: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    calibration_run_id: Mapped[int | None] = mapped_column(ForeignKey("calibration_runs.id"))


class ItemParameterVersion(Base):
    """Parameters of one item from one calibration run; old versions are never deleted."""

    __tablename__ = "item_parameter_versions"
    __table_args__ = (
        Index("uq_item_parameter_versions_current", "item_id", unique=True,
              sqlite_where=text("is_current"), postgresql_where=text("is_current")),
        UniqueConstraint("item_id", "calibration_run_id"),
        CheckConstraint("a > 0", name="a_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    calibration_run_id: Mapped[int] = mapped_column(ForeignKey("calibration_runs.id"),
                                                    index=True)
    model: Mapped[str] = mapped_column(String(8))
    a: Mapped[float] = mapped_column(Float)
    b: Mapped[float | None] = mapped_column(Float)
    c: Mapped[float | None] = mapped_column(Float)
    d: Mapped[float | None] = mapped_column(Float)
    thresholds: Mapped[list[Any]] = mapped_column(JSON, default=list)
    se_a: Mapped[float | None] = mapped_column(Float)
    se_b: Mapped[float | None] = mapped_column(Float)
    se_c: Mapped[float | None] = mapped_column(Float)
    se_d: Mapped[float | None] = mapped_column(Float)
    se_thresholds: Mapped[list[Any]] = mapped_column(JSON, default=list)
    n_responses: Mapped[int | None] = mapped_column(Integer)
    provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    is_current: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    item: Mapped[Item] = relationship(back_populates="parameter_versions")
    calibration_run: Mapped[CalibrationRun] = relationship()


class Assessment(Base):
    """A named blueprint (skills, per-skill limits, rules, cut score) owned by an organisation."""

    __tablename__ = "assessments"
    __table_args__ = (UniqueConstraint("organisation_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    #: The bank the blueprint draws from: the organisation's own, or another's library.
    bank_id: Mapped[int] = mapped_column(ForeignKey("item_banks.id"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    blueprint: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Pass/fail cut on the reporting scale ``500 + 100 θ`` (None: no decision reported).
    cut_score: Mapped[float | None] = mapped_column(Float)
    time_limit_minutes: Mapped[int | None] = mapped_column(Integer)
    #: Language of the candidate pages (one of `LANGUAGES`); None: the browser's choice.
    language: Mapped[str | None] = mapped_column(String(8))
    #: The design's simulated operating characteristics on the bank at creation/last edit
    #: (`web.services.feasibility.Feasibility.to_dict`); what the welcome page may promise.
    feasibility: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Test-security settings (`item_bank.forensics_models.check_security`; None: defaults).
    security: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))

    organisation: Mapped[Organisation] = relationship()


FEASIBILITY_CHECK_STATUSES = ("queued", "running", "succeeded", "failed", "saved")


class FeasibilityCheck(Base):
    """A design of an assessment (new, or an edit of ``assessment_id``) being checked by
    simulation as a background job before it is saved: queued → running → succeeded/failed →
    saved. ``form`` is what the staff member entered (`web.services.assessment_designs`),
    ``blueprint`` and ``result`` the designed blueprint and its
    `web.services.feasibility.Feasibility`."""

    __tablename__ = "feasibility_checks"
    __table_args__ = (CheckConstraint(_in("status", FEASIBILITY_CHECK_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("item_banks.id"))
    assessment_id: Mapped[int | None] = mapped_column(ForeignKey("assessments.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    message: Mapped[str | None] = mapped_column(Text)
    form: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    blueprint: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()


class Candidate(Base):
    __tablename__ = "candidates"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(64), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Invitation(Base):
    __tablename__ = "invitations"
    __table_args__ = (CheckConstraint(_in("status", INVITATION_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"), index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    #: When the invitation e-mail and the reminder before expiry were sent (None: not sent).
    emailed_at: Mapped[dt.datetime | None] = mapped_column()
    reminded_at: Mapped[dt.datetime | None] = mapped_column()

    assessment: Mapped[Assessment] = relationship()
    candidate: Mapped[Candidate] = relationship()
    accommodation: Mapped[Accommodation | None] = relationship(back_populates="invitation")


class CandidateSession(Base):
    """One sitting of an assessment; ``engine_state`` is the engine's own JSON serialization."""

    __tablename__ = "test_sessions"
    __table_args__ = (CheckConstraint(_in("status", SESSION_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"), unique=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), index=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"), index=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="in_progress")
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()
    deadline: Mapped[dt.datetime | None] = mapped_column()
    engine_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state_version: Mapped[int] = mapped_column(Integer, default=0)
    blueprint: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: When the pending item was served (the start, or the previous answer): an answer's
    #: latency is measured by the server from here (test security, issue 17).
    item_served_at: Mapped[dt.datetime | None] = mapped_column()
    #: Positions (1-based) of answers left out of the score — rapid guesses under
    #: effort-moderated scoring (`engine.CatEngine.rescore`; the replay drops the same ones).
    unscored_positions: Mapped[list[Any] | None] = mapped_column(JSON)
    #: The assessment's test-security settings when the session started
    #: (`item_bank.forensics_models.check_security`): the session is scored and reported under
    #: these to the end, whatever the assessment's settings become meanwhile (None: a session
    #: started before the copy was kept, which reads the assessment's).
    security: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The assessment's time limit when the session started (before extra time): extra time
    #: granted while it runs is a share of this limit, whatever the assessment's limit becomes
    #: (None: no limit, or a session started before the copy was kept, which reads the
    #: assessment's).
    time_limit_minutes: Mapped[int | None] = mapped_column(Integer)

    candidate: Mapped[Candidate] = relationship()
    assessment: Mapped[Assessment] = relationship()
    invitation: Mapped[Invitation] = relationship()


class Response(Base):
    """One recorded answer (append-only). ``parameter_version_id`` is what scored it."""

    __tablename__ = "responses"
    __table_args__ = (
        UniqueConstraint("session_id", "position"),
        UniqueConstraint("session_id", "item_id"),
        CheckConstraint("position >= 1", name="position"),
        CheckConstraint("score >= 0", name="score"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("test_sessions.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    parameter_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("item_parameter_versions.id"))
    position: Mapped[int] = mapped_column(Integer)
    raw_answer: Mapped[str] = mapped_column(String(200))
    score: Mapped[int] = mapped_column(Integer)
    answered_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    latency_ms: Mapped[int | None] = mapped_column(Integer)


class SkillResult(Base):
    __tablename__ = "skill_results"
    __table_args__ = (UniqueConstraint("session_id", "skill_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("test_sessions.id"), index=True)
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id"))
    theta: Mapped[float] = mapped_column(Float)
    se: Mapped[float] = mapped_column(Float)
    n_items: Mapped[int] = mapped_column(Integer)
    stop_reason: Mapped[str] = mapped_column(String(64))
    #: The engine's classification when its own rule (SPRT or CI) decided the skill during the
    #: test ('pass'/'fail'), with the rule's name; None when the rule had not decided (the report
    #: then applies its 90 % interval rule and labels it as such).
    decision: Mapped[str | None] = mapped_column(String(16))
    decision_rule: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class OverallResult(Base):
    """A session's overall score: the weighted composite ``Σ w_k θ_k`` of its skills' θ
    (weights normalised to sum 1) with its standard error ``√(wᵀ Σ w)`` from the posterior
    covariance Σ of the skills' θ (diagonal for independent unidimensional skills)."""

    __tablename__ = "overall_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("test_sessions.id"), unique=True)
    theta: Mapped[float] = mapped_column(Float)
    se: Mapped[float] = mapped_column(Float)
    #: skill slug → weight (normalised), as used for ``theta``.
    weights: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Accommodation(Base):
    """Testing accommodations a recruiter granted one candidate (one invitation): extra time as
    a share of the assessment's time limit, and a pause of up to ``break_minutes`` during which
    the clock stops. What was used is recorded here too, and reported with the result."""

    __tablename__ = "accommodations"
    __table_args__ = (
        CheckConstraint("extra_time_percent BETWEEN 0 AND 300", name="extra_time_percent"),
        CheckConstraint("break_minutes BETWEEN 0 AND 240", name="break_minutes"),
        CheckConstraint("break_used_seconds >= 0", name="break_used_seconds"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id"), unique=True)
    extra_time_percent: Mapped[int] = mapped_column(Integer, default=0)
    break_minutes: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(Text, default="")
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    granted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: Set while the candidate is on a break (the clock is stopped).
    break_started_at: Mapped[dt.datetime | None] = mapped_column()
    break_used_seconds: Mapped[int] = mapped_column(Integer, default=0)

    invitation: Mapped[Invitation] = relationship(back_populates="accommodation")


class Webhook(Base):
    """An organisation's receiver of session events (an applicant-tracking system).

    ``secret`` signs each delivery (HMAC-SHA256); it must be kept readable to sign with, unlike
    passwords and tokens, and is shown to staff only once, when created."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))

    organisation: Mapped[Organisation] = relationship()


class WebhookDelivery(Base):
    """One event for one webhook (the outbox and the delivery log).

    Written in the transaction that changes the session, so an event exists exactly when its
    change was committed; ``event_key`` (e.g. ``session.completed:42``) is unique per webhook,
    so one change never yields two events. ``event_id`` is the idempotency key the receiver
    sees in every attempt."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_key"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"),
                                            index=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_key: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    webhook: Mapped[Webhook] = relationship()


class AppendOnlyError(Exception):
    """Raised when code tries to change or delete a recorded response."""


@event.listens_for(Session, "before_flush")
def _responses_are_append_only(session: Session, flush_context: Any, instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, Response) and (obj in session.deleted or session.is_modified(obj)):
            raise AppendOnlyError(f"response {obj.id} is append-only; it cannot be changed "
                                  "or deleted")


from item_bank import account_models as _account_models  # noqa: E402, F401  (tables on Base)
from item_bank import accountability_models as _accountability_models  # noqa: E402, F401
from item_bank import forensics_models as _forensics_models  # noqa: E402, F401
