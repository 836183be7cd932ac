"""The demo database: one organisation owning the shipped bank (published as a library), staff
accounts, an assessment and invitations, built fresh in one call (used by ``proficio demo`` /
``make run``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from engine import Blueprint, SkillSpec
from item_bank import db, repository
from item_bank.security import new_password
from item_bank.shipped import import_shipped

log = logging.getLogger(__name__)

DEMO_ORGANISATION = ("demo", "Demo Company")
DEMO_ASSESSMENT = ("backend-engineer", "Back-End Engineer")
DEMO_BANK = ("backend-engineer", "Back-End Engineer")
#: On the reporting scale (500 + 100 θ): half a population SD below the average.
DEMO_CUT_SCORE = 450.0


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


def demo_blueprint(skills: list[str]) -> dict:
    """Every skill, 3–6 items each, stopping per skill at SE 0.4 (the engine's JSON form)."""
    return Blueprint(skills=tuple(SkillSpec(s, min_items=3, max_items=6) for s in skills),
                     min_items=3 * len(skills), max_items=6 * len(skills),
                     se_target=0.4).to_dict()


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
        engine, owned = db.make_engine(resolved), True
    try:
        if db.current_revision(engine) is not None:
            raise ValueError(f"{engine.url.render_as_string(hide_password=True)} already has a "
                             f"Proficio schema; the demo needs an empty database")
        db.upgrade(engine)
        staff = (StaffCredentials("recruiter@demo.example", new_password(), "recruiter"),
                 StaffCredentials("psychometrician@demo.example", new_password(),
                                  "psychometrician"))
        with db.transaction(engine) as session:
            org = repository.create_organisation(session, *DEMO_ORGANISATION)
            # the shipped bank, published as a library other organisations may use or copy
            bank = repository.create_bank(session, org, *DEMO_BANK, library=True)
            import_shipped(session, bank.id)
            users = [repository.create_staff_user(session, org, s.email, s.role, s.password,
                                                  name=s.role.title()) for s in staff]
            loaded = repository.load_bank(session, bank_id=bank.id)
            skills = sorted(set(loaded.bank.skills))
            assessment = repository.create_assessment(
                session, org, *DEMO_ASSESSMENT, demo_blueprint(skills),
                time_limit_minutes=60, cut_score=DEMO_CUT_SCORE, created_by=users[0],
                bank=bank)
            issued = repository.create_invitations(session, assessment, n_invitations,
                                                   created_by=users[0])
        log.info("demo database ready at %s (%d items)", resolved, len(loaded.bank))
        return DemoInfo(resolved, DEMO_ORGANISATION[1], staff, DEMO_ASSESSMENT[0],
                        tuple(i.token for i in issued), len(loaded.bank), loaded.provisional)
    finally:
        if owned:
            engine.dispose()
