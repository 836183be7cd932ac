"""Candidate pages in the candidate's language: the assessment's setting, else the browser's
Accept-Language; staff pages stay English. The German catalogue is complete, compiled from the
current .po, and covers every message in the candidate templates and code."""

from __future__ import annotations

import configparser
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask.testing import FlaskClient

from item_bank.security import hash_token
from tests.web.conftest import Site, csrf_of
from tests.web.test_candidate_flow import pending
from web.cli import main

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "web" / "translations" / "de" / "LC_MESSAGES"


def test_browser_language_chooses_german_and_plural_forms(site: Site, client: FlaskClient):
    (token,) = site.invite()
    de = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
    page = client.get(f"/t/{token}", headers=de).data.decode()
    assert '<html lang="de">' in page
    assert "So funktioniert es" in page and "Test starten" in page
    assert "Zeitlimit: 60 Minuten ab dem Start" in page
    english = client.get(f"/t/{token}", headers={"Accept-Language": "en-GB"}).data.decode()
    assert '<html lang="en">' in english and "Time limit: 60 minutes" in english
    # an unsupported language falls back to English
    assert "Start the assessment" in client.get(
        f"/t/{token}", headers={"Accept-Language": "ja"}).data.decode()
    r = client.post(f"/t/{token}/start", data={"csrf_token": csrf_of(page.encode())},
                    headers=de)
    assert r.status_code == 302
    _, _, question = pending(client, token)
    assert b"Question 1" in question  # no Accept-Language: English
    q_de = client.get(f"/t/{token}/question", headers=de).data.decode()
    assert "<h1 class=\"question-heading\">Frage 1 <span class=\"progress\">von höchstens" in q_de
    assert "Antwort absenden" in q_de and "Noch {n} Minuten" in q_de


def test_assessment_language_overrides_the_browser(site: Site, client: FlaskClient,
                                                   monkeypatch, staff_client) -> None:
    monkeypatch.setenv("DATABASE_URL", site.url)
    (token,) = site.invite()
    (slug,) = site.sql("SELECT a.slug FROM assessments a JOIN invitations v ON "
                       "v.assessment_id = a.id WHERE v.token_hash = :h", h=hash_token(token))[0]
    try:
        assert main(["assessment", "language", "--org", "demo", slug, "de"]) == 0
        page = client.get(f"/t/{token}", headers={"Accept-Language": "en"}).data.decode()
        assert '<html lang="de">' in page and "Test starten" in page
        unknown = client.get("/t/not-a-real-token-123456", headers={"Accept-Language": "en"})
        assert unknown.status_code == 404 and "Einladungslink" not in unknown.data.decode()
        # staff pages are not translated
        staff = staff_client("recruiter").get("/recruiter/", headers={"Accept-Language": "de"})
        assert b'<html lang="en">' in staff.data and b"Skip to content" in staff.data
    finally:
        assert main(["assessment", "language", "--org", "demo", slug, "browser"]) == 0


def _po():
    with open(CATALOGUE / "messages.po", "rb") as f:
        return read_po(f)


def test_german_catalogue_is_complete_and_compiled() -> None:
    po = _po()
    messages = [m for m in po if m.id]
    assert messages
    for m in messages:
        assert "fuzzy" not in m.flags, m.id
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        assert all(strings), f"untranslated: {m.id!r}"
    with open(CATALOGUE / "messages.mo", "rb") as f:
        mo = read_mo(f)
    def table(catalog) -> dict:  # type: ignore[no-untyped-def]
        return {m.id if isinstance(m.id, str) else tuple(m.id):
                m.string if isinstance(m.string, str) else tuple(m.string)
                for m in catalog if m.id}

    assert table(mo) == table(messages), "messages.mo is stale: run scripts/i18n.sh"


def test_catalogue_covers_every_message_in_the_sources() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "babel.cfg")
    method_map = [(section.split(":", 1)[1].strip(), section.split(":", 1)[0].strip())
                  for section in cfg.sections()]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None,
                "lazy_gettext": None}
    found = {msg[2] if isinstance(msg[2], str) else msg[2][0]
             for msg in extract_from_dir(str(ROOT), method_map, keywords=keywords)
             if msg[2]}
    known = {m.id if isinstance(m.id, str) else m.id[0] for m in _po() if m.id}
    assert found, "nothing extracted"
    assert found <= known, f"not in the catalogue (run scripts/i18n.sh): {found - known}"
