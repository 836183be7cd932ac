"""The demo database: one organisation owning the shipped bank (published as a library), staff
accounts, an assessment and named invitations, built fresh in one call (`build_demo_database`)
or reopened as it was left (`reuse_demo_database`), as ``proficio demo`` / ``make run`` do."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from engine import Blueprint, SkillSpec
from item_bank import db, repository
from item_bank.models import Assessment, Candidate, Organisation, StaffUser
from item_bank.security import hash_password, new_password
from item_bank.shipped import DEFAULT_DESIGN, import_shipped

log = logging.getLogger(__name__)

DEMO_ORGANISATION = ("demo", "Demo Company")
DEMO_ASSESSMENT = ("backend-engineer", "Back-End Engineer")
DEMO_BANK = ("backend-engineer", "Back-End Engineer")
#: On the reporting scale (500 + 100 θ): half a population SD below the average.
DEMO_CUT_SCORE = 450.0
#: Demo candidates get names (reports and the candidate list are titled by them), in this order.
DEMO_CANDIDATES = ("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra",
                   "Barbara Liskov", "Donald Knuth", "Frances Allen", "John Backus",
                   "Margaret Hamilton", "Tony Hoare")
DEMO_STAFF = (("recruiter@demo.example", "recruiter"),
              ("psychometrician@demo.example", "psychometrician"))


@dataclass(frozen=True)
class StaffCredentials:
    email: str
    password: str
    role: str


@dataclass(frozen=True)
class DemoInfo:
    """What `build_demo_database` made; passwords and tokens exist only here."""

    url: str
    organisation: str
    staff: tuple[StaffCredentials, ...]
    assessment_slug: str
    invitation_tokens: tuple[str, ...]
    n_items: int
    provisional: bool
    #: The candidate name of each invitation token, in the same order.
    candidate_names: tuple[str, ...] = ()
    #: False when an existing demo database was reopened (`reuse_demo_database`).
    fresh: bool = True

    def credentials(self, role: str) -> StaffCredentials:
        return next(s for s in self.staff if s.role == role)


def _fresh_sqlite(url: str) -> None:
    """Delete a SQLite demo file and create it empty, readable by its owner only (0600): it
    holds staff password hashes. SQLite gives its ``-wal``/``-shm`` files the permissions of the
    database file."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database \
            or parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return
    path = Path(parsed.database)
    for suffix in ("", "-wal", "-shm"):
        p = path.with_name(path.name + suffix)
        if p.exists():
            p.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)  # whatever the umask


def demo_design(skills: list[str]) -> tuple[dict, dict | None]:
    """The demo assessment's blueprint (the engine's JSON form) and its feasibility figures: the
    shipped bank's default design (`DEFAULT_DESIGN`, made by scripts/default_design.py: overall
    score first, exposure control tuned) when it covers exactly these skills, else a plain
    design over the skills with no feasibility on record."""
    if DEFAULT_DESIGN.exists():
        stored = json.loads(DEFAULT_DESIGN.read_text())
        bp = Blueprint.from_dict(stored["blueprint"])
        if sorted(s.skill for s in bp.skills) == sorted(skills):
            return bp.to_dict(), stored.get("feasibility")
    return Blueprint(skills=tuple(SkillSpec(s, min_items=2) for s in skills),
                     min_items=2 * len(skills), max_items=5 * len(skills),
                     se_target=None).to_dict(), None


def demo_candidate_names(count: int, start: int = 0) -> list[str]:
    """``count`` names from `DEMO_CANDIDATES`, numbered once the list is used up."""
    out = []
    for k in range(start, start + count):
        name = DEMO_CANDIDATES[k % len(DEMO_CANDIDATES)]
        out.append(name if k < len(DEMO_CANDIDATES) else f"{name} {k // len(DEMO_CANDIDATES) + 1}")
    return out


def build_demo_database(url: str | Engine | None = None, n_invitations: int = 5) -> DemoInfo:
    """A fresh demo database at ``url`` (default: the instance SQLite file) or on an engine.

    A SQLite file is deleted and rebuilt; any other database must be empty (no Proficio schema).
    """
    if isinstance(url, Engine):
        engine, owned = url, False
        resolved = engine.url.render_as_string(hide_password=True)
    else:
        resolved = db.database_url(url)
        _fresh_sqlite(resolved)
        engine, owned = db.create_db_engine(resolved), True
    try:
        if db.current_revision(engine) is not None:
            raise ValueError(f"{engine.url.render_as_string(hide_password=True)} already has a "
                             f"Proficio schema; the demo needs an empty database")
        db.upgrade(engine)
        staff = tuple(StaffCredentials(email, new_password(), role) for email, role in DEMO_STAFF)
        with db.transaction(engine) as session:
            org = repository.create_organisation(session, *DEMO_ORGANISATION)
            # the shipped bank, published as a library other organisations may use or copy
            bank = repository.create_bank(session, org, *DEMO_BANK, library=True)
            import_shipped(session, bank.id)
            users = [repository.create_staff_user(session, org, s.email, s.role, s.password,
                                                  name=s.role.title()) for s in staff]
            loaded = repository.load_bank(session, bank_id=bank.id)
            skills = sorted(set(loaded.bank.skills))
            blueprint, feasibility = demo_design(skills)
            assessment = repository.create_assessment(
                session, org, *DEMO_ASSESSMENT, blueprint,
                time_limit_minutes=60, cut_score=DEMO_CUT_SCORE, created_by=users[0],
                bank=bank)
            assessment.feasibility = feasibility
            names = demo_candidate_names(n_invitations)
            issued = repository.create_invitations(session, assessment, n_invitations,
                                                   created_by=users[0], candidate_names=names) \
                if n_invitations else []
        log.info("demo database ready at %s (%d items)", resolved, len(loaded.bank))
        return DemoInfo(resolved, DEMO_ORGANISATION[1], staff, DEMO_ASSESSMENT[0],
                        tuple(i.token for i in issued), len(loaded.bank), loaded.provisional,
                        tuple(names))
    finally:
        if owned:
            engine.dispose()


def has_demo(url: str) -> bool:
    """Whether ``url`` already holds a Proficio schema with the demo organisation.

    A SQLite file that does not exist is not created by asking."""
    resolved = db.database_url(url)
    parsed = make_url(resolved)
    if parsed.get_backend_name() == "sqlite" and parsed.database \
            and parsed.database != ":memory:" and not Path(parsed.database).exists():
        return False
    engine = db.create_db_engine(resolved)
    try:
        if db.current_revision(engine) is None:
            return False
        with db.transaction(engine, write=False) as session:
            return session.scalar(select(Organisation.id).where(
                Organisation.slug == DEMO_ORGANISATION[0])) is not None
    finally:
        engine.dispose()


def reuse_demo_database(url: str, n_invitations: int = 5) -> DemoInfo:
    """Reopen the demo database at ``url`` as it was left (candidates, results, calibrations).

    The schema is upgraded when it is behind. Tokens and passwords are stored hashed, so the
    ones printed when it was built cannot be shown again: the demo staff accounts get new
    passwords (returned here) and ``n_invitations`` new named invitations are issued.
    """
    resolved = db.database_url(url)
    engine = db.create_db_engine(resolved)
    try:
        db.upgrade(engine)
        with db.transaction(engine) as session:
            org = session.scalar(select(Organisation).where(
                Organisation.slug == DEMO_ORGANISATION[0]))
            if org is None:
                raise ValueError(f"{resolved} has no demo organisation; rebuild it")
            staff = []
            for email, role in DEMO_STAFF:
                user = session.scalar(select(StaffUser).where(StaffUser.email == email))
                if user is None:
                    continue
                password = new_password()
                user.password_hash = hash_password(password)
                user.login_epoch += 1  # earlier sign-ins end with the old password
                staff.append(StaffCredentials(email, password, role))
            assessment = session.scalar(select(Assessment).where(
                Assessment.organisation_id == org.id, Assessment.slug == DEMO_ASSESSMENT[0]))
            if assessment is None:
                raise ValueError(f"{resolved} has no demo assessment; rebuild it")
            existing = session.scalar(select(func.count(Candidate.id)).where(
                Candidate.organisation_id == org.id)) or 0
            names = demo_candidate_names(n_invitations, start=int(existing))
            issued = repository.create_invitations(session, assessment, n_invitations,
                                                   candidate_names=names) \
                if n_invitations else []
            loaded = repository.load_bank(session)
        return DemoInfo(resolved, org.name, tuple(staff), assessment.slug,
                        tuple(i.token for i in issued), len(loaded.bank), loaded.provisional,
                        tuple(names if n_invitations else ()), fresh=False)
    finally:
        engine.dispose()
