"""The guides against the product: configuration table, candidate page, operator snippet,
links."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from web.commands.config import VARIABLES

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def plain(text: str) -> str:
    """Text without Markdown emphasis, HTML tags, Jinja expressions; whitespace collapsed."""
    text = re.sub(r"\{[{%].*?[%}]\}", " ", text, flags=re.S)
    text = re.sub(r"</?(?:strong|em|code|b|i)>", "", text)  # inline: no word break
    text = re.sub(r"<[^>]+>", " ", text)
    text = html.unescape(text).replace("**", "").replace("`", "")
    return " ".join(text.split())


def test_configuration_table_lists_every_variable_with_its_default() -> None:
    page = (DOCS / "configuration.md").read_text()
    rows = {m[0]: m[1] for m in re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", page, re.M)}
    assert set(rows) == {v.name for v in VARIABLES}
    for v in VARIABLES:
        assert plain(rows[v.name]) == plain(v.default), v.name


def _messages(template: str) -> str:
    """The English messages of a translated template (``_("…")`` and ``ngettext``'s plural)."""
    found = re.findall(r'(?:_|ngettext)\("([^"]*)"(?:, "([^"]*)")?', template)
    return " ".join(plural or single for single, plural in found)


def test_candidate_page_says_what_the_welcome_page_says() -> None:
    welcome = plain(_messages((ROOT / "web" / "templates" / "candidate" / "welcome.html")
                              .read_text()))
    page = plain((DOCS / "candidate.md").read_text())
    how = welcome.split("How it works", 1)[1]
    paragraph = how.split(" Two candidates", 1)[0].strip()
    assert paragraph.startswith("This is an adaptive test")
    assert paragraph in page
    for claim in ("the test ends as soon as your results are precise enough",
                  "Answers given before the limit count",
                  "Each answer is saved when you submit it and cannot be changed",
                  "You cannot skip a question",
                  "you will continue exactly where you left off",
                  "Two candidates rarely see the same questions"):
        assert claim in welcome, claim  # the welcome page still says it …
        assert claim.lower() in page.lower(), claim  # … and so does the guide
    assert "may be shorter" not in welcome + page  # a promise no check backs


def test_operator_guide_account_snippet_runs(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from item_bank.db import create_db_engine
    from item_bank.demo import build_demo_database
    from item_bank.models import Assessment, StaffUser

    text = (DOCS / "operator-guide.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", text, re.S)
    code = "\n".join(line[3:] if line.startswith("   ") else line
                     for line in snippet.splitlines())
    url = f"sqlite:///{tmp_path / 'ops.sqlite3'}"
    build_demo_database(url, n_invitations=1)  # migrated, with the shipped bank imported
    monkeypatch.setenv("DATABASE_URL", url)
    exec(compile(code, "operator-guide.md", "exec"), {})
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            emails = set(conn.scalars(select(StaffUser.email)))
            slugs = set(conn.scalars(select(Assessment.slug)))
    finally:
        engine.dispose()
    assert {"hr@acme.example", "psychometrics@acme.example"} <= emails
    assert "backend" in slugs


def test_every_relative_link_and_image_resolves() -> None:
    pages = [*DOCS.glob("*.md"), ROOT / "README.md"]
    checked = 0
    for page in pages:
        for target, _anchor in LINK.findall(page.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"
            checked += 1
    assert checked >= 20


def test_readme_links_the_guides() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in ("getting-started", "recruiter-guide", "psychometrician-guide", "candidate",
                 "operator-guide", "api", "configuration"):
        assert f"(docs/{page}.md)" in readme, page
