"""Small factories shared by the item bank tests."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from item_bank import repository as repo
from item_bank.models import Item, ItemParameterVersion, Organisation
from item_bank.transfer import read_bank_file

DATA = Path(__file__).parent / "data"
MINI_BANK = DATA / "mini_bank"
MINI_PARAMS = DATA / "mini_params.csv"


def load_mini(session: Session, with_params: bool = True) -> None:
    repo.import_document(session, read_bank_file(MINI_BANK))
    if with_params:
        repo.import_document(session, read_bank_file(MINI_PARAMS))


def counts(session: Session) -> tuple[int, int]:
    return (session.scalar(select(func.count(Item.id))) or 0,
            session.scalar(select(func.count(ItemParameterVersion.id))) or 0)


def org_with_assessment(session: Session, skills=("databases", "version_control")):
    """The organisation owning the database's only bank, with an assessment on it."""
    bank = repo.sole_bank(session)
    org = session.get(Organisation, bank.organisation_id)
    assessment = repo.create_assessment(session, org, "backend", "Back-end",
                                        {"skills": list(skills)}, bank=bank)
    return org, assessment


def started_session(session: Session, assessment) -> int:
    [issued] = repo.create_invitations(session, assessment, 1)
    inv = repo.find_invitation(session, issued.token)
    row, _ = repo.start_session(session, inv)
    return row.id


__all__ = ["DATA", "MINI_BANK", "MINI_PARAMS", "Organisation", "counts", "load_mini",
           "org_with_assessment", "started_session"]
