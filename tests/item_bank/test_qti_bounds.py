"""QTI import amplification (issue 18): the work of an import is bounded by the archive's size.

The attack found by the security review: a 10 KB zip whose manifest lists one highly compressible
4.9 MB file 1,500 times, each reference parsed and held before duplicates were refused (61.7 s
and a worker timeout). The tests count what the reader really parses (a spy around the real XML
parser) and the peak memory traced while it runs; no timing is asserted.
"""

from __future__ import annotations

import io
import re
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from irt.io import FormatError
from item_bank import qti
from item_bank.content import (
    MAX_EXPLANATION_CHARS,
    MAX_OPTION_CHARS,
    MAX_STEM_CHARS,
    parse_bank_json,
)
from item_bank.transfer import read_bank_file

BIG = 4_900_000


def _manifest(hrefs: list[str]) -> bytes:
    res = "".join(
        f'<resource identifier="R{k}" type="imsqti_item_xmlv2p1" href="{h}">'
        f'<file href="{h}"/></resource>' for k, h in enumerate(hrefs))
    return (f'<?xml version="1.0"?><manifest xmlns="{qti.CP_NS}" identifier="M">'
            f"<organizations/><resources>{res}</resources></manifest>").encode()


def _big_item() -> bytes:
    """A valid-looking item padded to 4.9 MB with a comment (compresses ~1000:1)."""
    head = (f'<?xml version="1.0"?><assessmentItem xmlns="{qti.QTI_NS}" identifier="X"><!--')
    return head.encode() + b"a" * (BIG - len(head) - 24) + b"--></assessmentItem>"


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the XML documents the reader parses (the real parser still runs)."""
    seen: list[int] = []
    real = qti._parse

    def spy(name: str, data: bytes):  # type: ignore[no-untyped-def]
        seen.append(len(data))
        return real(name, data)

    monkeypatch.setattr(qti, "_parse", spy)
    return seen


def _read_bounded(data: bytes, tmp_path: Path) -> tuple[str, int]:
    """Import ``data`` as a .zip; the error message and the peak traced memory."""
    path = tmp_path / "upload.zip"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError) as err:
            read_bank_file(path, default_skill="databases")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return str(err.value), peak


def test_repeated_manifest_references_are_refused_before_any_item_is_parsed(tmp_path, parses):
    data = _zip({"imsmanifest.xml": _manifest(["items/x.xml"] * 1500),
                 "items/x.xml": _big_item()})
    assert len(data) <= 12_000  # the review's 10 KB upload
    message, peak = _read_bounded(data, tmp_path)
    assert "'items/x.xml'" in message and "more than once" in message
    assert len(parses) == 1  # the manifest only: not one item document
    assert sum(parses) <= qti.archive_budget(len(data))
    assert peak < 100 * 2**20


def test_distinct_members_beyond_the_expansion_budget_are_refused_unparsed(tmp_path, parses):
    members = {f"items/x{k}.xml": _big_item() for k in range(2)}
    data = _zip({"imsmanifest.xml": _manifest(list(members)), **members})
    assert len(data) <= 12_000
    message, peak = _read_bounded(data, tmp_path)
    assert "uncompressed" in message and f"{qti.MAX_EXPANSION} times its size" in message
    assert len(parses) == 1
    assert peak < 100 * 2**20


def test_a_member_bigger_than_it_declares_is_not_decompressed_past_its_size(tmp_path):
    real = _zip({"imsmanifest.xml": _manifest(["a.xml"]), "a.xml": b"<x/>" * 10_000})
    # the local header and the central directory both claim 40 bytes; the stream holds 40,000
    declared = (40_000).to_bytes(4, "little")
    forged = real.replace(declared, (40).to_bytes(4, "little"))
    assert forged != real
    path = tmp_path / "forged.zip"
    path.write_bytes(forged)
    with pytest.raises(FormatError, match=r"a\.xml"):
        read_bank_file(path, default_skill="databases")


def test_budget_is_stated_and_scales_with_the_archive():
    assert qti.archive_budget(10_000) == qti.MIN_PARSE_BUDGET == 256 * 1024
    assert qti.archive_budget(1_000_000) == 20_000_000


def test_a_real_export_fits_its_budget(tmp_path, parses):
    """The shipped bank's own QTI export (224 items, ~2.2× expansion) imports."""
    from item_bank.shipped import read_shipped
    from item_bank.transfer import write_bank_file

    path = tmp_path / "bank.zip"
    write_bank_file(path, read_shipped())
    doc = read_bank_file(path)
    assert len(doc.items) == 224
    assert sum(parses) <= qti.archive_budget(path.stat().st_size)


def _item(**over: object) -> dict:
    item = {"id": "X-1", "stem": "Which?", "options": [{"id": "a", "text": "A"},
                                                     {"id": "b", "text": "B"}], "key": "a"}
    item.update(over)
    return {"format": "proficio-bank/1", "skill": "databases", "items": [item]}


@pytest.mark.parametrize(("field", "over"), [
    ("stem", {"stem": "x" * (MAX_STEM_CHARS + 1)}),
    ("explanation", {"explanation": "x" * (MAX_EXPLANATION_CHARS + 1)}),
    ("options[1].text", {"options": [{"id": "a", "text": "A"},
                                     {"id": "b", "text": "b" * (MAX_OPTION_CHARS + 1)}]}),
])
def test_item_text_lengths_are_limited(field, over):
    with pytest.raises(FormatError, match=rf"field {re.escape(repr(field))}.*at most"):
        parse_bank_json("upload.json", _item(**over))
    parse_bank_json("ok.json", _item())  # the limits leave ordinary items alone


def test_a_long_stem_in_qti_is_refused_naming_the_file(tmp_path):
    from item_bank.content import BankDocument, ItemContent, Option

    ok = ItemContent("X-1", "databases", "s", (Option("a", "A"), Option("b", "B")), "a")
    buf = io.BytesIO()
    qti.write_qti_zip(buf, BankDocument("t", (), (ok,)))
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        members = {i.filename: zf.read(i.filename) for i in zf.infolist()}
    members["items/X-1.xml"] = members["items/X-1.xml"].replace(
        b"<pre>s</pre>", b"<pre>" + b"s" * (MAX_STEM_CHARS + 1) + b"</pre>")
    path = tmp_path / "long.zip"
    path.write_bytes(_zip(members))
    with pytest.raises(FormatError, match=r"items/X-1.xml.*field 'stem'"):
        read_bank_file(path, default_skill="databases")
