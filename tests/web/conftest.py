"""Web fixtures: a real demo database per backend (SQLite file; PostgreSQL schema when
``DATABASE_URL`` points at PostgreSQL), the real app on it, and helpers that act like a browser
(CSRF tokens from the pages, sign-in through the login form)."""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from item_bank import repository as repo
from item_bank.db import create_db_engine, normalize_url, transaction
from item_bank.demo import DemoInfo, build_demo_database
from item_bank.models import Assessment, ItemBank
from web.app import create_app

_PG_URL = os.environ.get("DATABASE_URL", "")
WEB_BACKENDS = ["sqlite"] + (["postgresql"] if _PG_URL.startswith(("postgres://", "postgresql"))
                             else [])
CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')


@dataclass
class Site:
    """A demo database with a second organisation, and the apps serving it."""

    url: str
    info: DemoInfo
    other_org_password: str
    apps: list[Flask] = field(default_factory=list)

    def app(self, **config: object) -> Flask:
        app = create_app({"DATABASE_URL": self.url, "TESTING": True,
                          "RATELIMIT_ENABLED": False, **config})
        self.apps.append(app)
        return app

    def close_apps(self) -> None:
        while self.apps:
            self.apps.pop().extensions["proficio.db"].engine.dispose()

    def invite(self, n: int = 1, *, org: str = "demo", **kw: object) -> list[str]:
        eng = create_db_engine(self.url)
        try:
            with transaction(eng) as db:
                assessment = next(a for a in db.query(Assessment).all()
                                  if a.organisation.slug == org)
                return [i.token for i in repo.create_invitations(db, assessment, n, **kw)]
        finally:
            eng.dispose()

    def bank_id(self, org: str = "demo") -> int:
        """The first bank the organisation owns (demo: the shipped library)."""
        return self.sql("SELECT b.id FROM item_banks b JOIN organisations o "
                        "ON o.id = b.organisation_id WHERE o.slug = :o ORDER BY b.id",
                        o=org)[0][0]

    def sql(self, statement: str, **params: object) -> list[tuple]:
        eng = create_db_engine(self.url)
        try:
            with eng.begin() as conn:
                result = conn.execute(text(statement), params)
                return list(result) if result.returns_rows else []
        finally:
            eng.dispose()


def _second_organisation(url: str) -> str:
    """Another company with its own recruiter, psychometrician and private bank (a copy of the
    demo's library, so the same external ids exist in both), and an assessment on the demo's
    library."""
    password = "other-org-password-123"
    eng = create_db_engine(url)
    with transaction(eng) as db:
        org = repo.create_organisation(db, "other", "Other Company")
        user = repo.create_staff_user(db, org, "recruiter@other.example", "recruiter", password)
        repo.create_staff_user(db, org, "psychometrician@other.example", "psychometrician",
                               password)
        demo = db.query(Assessment).one()
        library = db.get(ItemBank, demo.bank_id)
        repo.copy_bank(db, library, org, "other-bank", "Other Bank")
        repo.create_assessment(db, org, "other-test", "Other Test", dict(demo.blueprint),
                               created_by=user, bank=library)
    eng.dispose()
    return password


@contextmanager
def new_site(backend: str, folder: Path) -> Iterator[Site]:
    """A fresh demo database (SQLite file in ``folder`` or a new PostgreSQL schema), dropped
    afterwards, with the apps built on it disposed."""
    os.environ.setdefault("PROFICIO_INSTANCE", str(folder / "instance"))
    if backend == "sqlite":
        url = f"sqlite:///{folder / f'demo-{uuid.uuid4().hex[:6]}.sqlite3'}"
        made = Site(url, build_demo_database(url), _second_organisation(url))
        try:
            yield made
        finally:
            made.close_apps()
        return
    base = normalize_url(_PG_URL)
    schema = f"proficio_web_{uuid.uuid4().hex[:10]}"
    admin = create_db_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base}?options=-csearch_path%3D{schema}"
    made = None
    try:
        made = Site(url, build_demo_database(url), _second_organisation(url))
        yield made
    finally:
        if made is not None:
            made.close_apps()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session", params=WEB_BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Site]:
    with new_site(request.param, tmp_path_factory.mktemp("web")) as made:
        yield made


@pytest.fixture
def app(site: Site) -> Iterator[Flask]:
    yield site.app()
    site.close_apps()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_of(page: bytes) -> str:
    match = CSRF.search(page)
    assert match, "page has no CSRF token"
    return match.group(1).decode()


def login(client: FlaskClient, email: str, password: str) -> None:
    token = csrf_of(client.get("/login").data)
    r = client.post("/login", data={"csrf_token": token, "email": email, "password": password})
    assert r.status_code == 302, r.data[:500]


@pytest.fixture
def staff_client(site: Site, app: Flask) -> Callable[[str], FlaskClient]:
    """A signed-in client for ``recruiter``, ``psychometrician``, ``other`` (the other company's
    recruiter) or ``other_psychometrician``."""

    def make(who: str) -> FlaskClient:
        c = app.test_client()
        if who == "other":
            login(c, "recruiter@other.example", site.other_org_password)
        elif who == "other_psychometrician":
            login(c, "psychometrician@other.example", site.other_org_password)
        else:
            cred = site.info.credentials(who)
            login(c, cred.email, cred.password)
        return c

    return make


def expire_deadline(site: Site, session_id: int) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    site.sql("UPDATE test_sessions SET deadline = :d WHERE id = :i", d=past, i=session_id)
