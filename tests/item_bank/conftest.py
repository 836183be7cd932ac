"""Item bank fixtures: every ``db_session`` test starts with one organisation owning one bank,
the database's only bank (repository functions default to it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from item_bank import repository as repo
from item_bank.db import transaction
from item_bank.models import ItemBank


@pytest.fixture
def db_session(db_session: Session) -> Iterator[Session]:
    org = repo.create_organisation(db_session, "bank-owner", "Bank Owner")
    repo.create_bank(db_session, org, "main", "Main bank")
    yield db_session


@pytest.fixture
def bank(db_session: Session) -> ItemBank:
    return repo.sole_bank(db_session)


@pytest.fixture
def fresh_engine(fresh_engine: Callable[[bool], Engine]) -> Callable[[bool], Engine]:
    """Brand-new databases; migrated ones start with one organisation owning one bank."""

    def factory(migrate: bool = True) -> Engine:
        eng = fresh_engine(migrate)
        if migrate:
            with transaction(eng) as s:
                org = repo.create_organisation(s, "bank-owner", "Bank Owner")
                repo.create_bank(s, org, "main", "Main bank")
        return eng

    return factory
