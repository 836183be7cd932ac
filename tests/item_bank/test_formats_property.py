"""Property-based round trips of the bank file formats (no database): whatever valid item text
an author writes — commas, quotes, Markdown, non-ASCII, line breaks — comes back unchanged."""

from __future__ import annotations

import io
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from item_bank.content import (
    BankDocument,
    ItemContent,
    Option,
    SkillInfo,
    read_bank_json,
    read_content_csv,
    write_bank_json,
    write_content_csv,
)
from item_bank.qti import read_qti_zip, write_qti_zip

# Text an author may type: printable characters, Unicode letters, tabs and LF line breaks.
_alphabet = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"),
                          include_characters="\n\t")
_text = st.text(_alphabet, min_size=1, max_size=60).filter(lambda t: t.strip())
_tag = st.text(string.ascii_letters + string.digits + "-_ ", min_size=1, max_size=12).filter(
    lambda t: t.strip() == t and t)


@st.composite
def items(draw) -> tuple[ItemContent, ...]:
    n = draw(st.integers(1, 4))
    out = []
    for k in range(n):
        n_opt = draw(st.integers(2, 5))
        texts = draw(st.lists(_text, min_size=n_opt, max_size=n_opt,
                              unique_by=lambda t: t.strip().casefold()))
        ids = list("abcde")[:n_opt]
        out.append(ItemContent(
            external_id=f"DB-{k:03d}", skill="databases", stem=draw(_text),
            options=tuple(Option(i, t) for i, t in zip(ids, texts, strict=True)),
            key=draw(st.sampled_from(ids)), explanation=draw(st.one_of(st.just(""), _text)),
            difficulty=draw(st.one_of(st.none(), st.integers(1, 5))),
            tags=tuple(draw(st.lists(_tag, max_size=3, unique=True))),
            status=draw(st.sampled_from(["pretest", "operational", "retired"])),
            model=draw(st.sampled_from(["1pl", "2pl", "3pl"])),
        ))
    return tuple(out)


def _doc(its) -> BankDocument:
    return BankDocument("mem", (SkillInfo("databases", "Databases"),), its)


@settings(max_examples=25, deadline=None)
@given(items())
def test_json_round_trip(its):
    buf = io.StringIO()
    write_bank_json(buf, _doc(its))
    buf.seek(0)
    assert read_bank_json(buf).items == its


@settings(max_examples=25, deadline=None)
@given(items())
def test_content_csv_round_trip(its):
    buf = io.StringIO()
    write_content_csv(buf, its)
    buf.seek(0)
    assert read_content_csv(buf).items == its


@settings(max_examples=15, deadline=None)
@given(items())
def test_qti_round_trip(its):
    buf = io.BytesIO()
    write_qti_zip(buf, _doc(its))
    buf.seek(0)
    assert read_qti_zip(buf).items == its
