"""Bank import/export: round trips in every format, and bad input that changes nothing."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from irt.io import FormatError
from item_bank import repository as repo
from item_bank.content import read_bank_json
from item_bank.transfer import read_bank_file, write_bank_file
from tests.item_bank.helpers import MINI_PARAMS, counts, load_mini


def _same_bank(a, b) -> None:
    assert [it for it in a.items] == [it for it in b.items]
    assert {s.slug for s in a.skills} == {s.slug for s in b.skills}
    pa = {r.params.item_id: r for r in a.parameters}
    pb = {r.params.item_id: r for r in b.parameters}
    assert pa.keys() == pb.keys()
    for iid, ra in pa.items():
        rb = pb[iid]
        assert ra.params.model == rb.params.model
        for f in ("a", "b", "c", "d"):
            assert getattr(ra.params, f) == pytest.approx(getattr(rb.params, f), rel=1e-5)
        for f in ("se_a", "se_b", "se_c", "se_d"):
            x, y = getattr(ra, f), getattr(rb, f)
            assert (x is None and y is None) or x == pytest.approx(y, rel=1e-5)
        assert (ra.n_responses, ra.provisional) == (rb.n_responses, rb.provisional)


def test_import_folder_and_params(db_session):
    load_mini(db_session)
    assert counts(db_session) == (7, 7)
    doc = repo.export_document(db_session)
    ids = [it.external_id for it in doc.items]
    assert ids == ["DB-001", "DB-002", "DB-003", "DB-004", "GIT-001", "GIT-002", "GIT-003"]
    # enemies are symmetric after import: DB-002 listed DB-003
    by_id = {it.external_id: it for it in doc.items}
    assert by_id["DB-003"].enemies == ("DB-002",)
    assert by_id["DB-002"].enemies == ("DB-003",)
    rec = {r.params.item_id: r for r in doc.parameters}
    assert rec["DB-003"].params.model == "3pl" and rec["DB-003"].params.c == pytest.approx(0.2)
    assert rec["GIT-001"].provisional and not rec["DB-001"].provisional
    assert rec["DB-001"].n_responses == 400 and rec["DB-003"].se_a is None


@pytest.mark.parametrize("kinds", [("json",), ("csv-content", "csv-params"), ("qti",)])
def test_round_trip(db_session, fresh_engine, tmp_path, kinds):
    load_mini(db_session)
    before = repo.export_document(db_session)
    paths = []
    for kind in kinds:
        ext = {"json": "json", "qti": "zip"}.get(kind, "csv")
        path = tmp_path / f"bank-{kind}.{ext}"
        write_bank_file(path, before, kind)
        paths.append(path)
    from item_bank.db import transaction

    engine = fresh_engine()
    with transaction(engine) as s:
        if kinds[0] == "csv-content":
            # the content CSV carries no skill names: the skills must exist first
            repo.ensure_skills(s, before.skills)
        for p in paths:
            repo.import_document(s, read_bank_file(p))
    with transaction(engine) as s:
        after = repo.export_document(s)
    _same_bank(before, after)


def test_exported_json_reimports_identically(db_session, tmp_path):
    load_mini(db_session)
    doc = repo.export_document(db_session)
    path = tmp_path / "b.json"
    write_bank_file(path, doc)
    again = read_bank_json(path)
    assert again.items == doc.items


def test_replace_updates_content_and_keeps_parameter_history(db_session):
    load_mini(db_session)
    doc = repo.export_document(db_session, skills=["databases"])
    changed = doc.items[0].__class__(**{**doc.items[0].__dict__, "stem": "New stem?"})
    from item_bank.content import BankDocument

    with pytest.raises(FormatError, match="already has this external id"):
        repo.import_document(db_session, BankDocument("x.json", (), (changed,)))
    rep = repo.import_document(db_session, BankDocument("x.json", (), (changed,)), replace=True)
    assert rep.items_updated == 1
    assert repo.export_document(db_session).items[0].stem == "New stem?"
    repo.import_document(db_session, read_bank_file(MINI_PARAMS))
    hist = repo.parameter_history(db_session, "DB-001")
    assert len(hist) == 2 and [v.is_current for v in hist] == [False, True]


def _item(**over):
    base = {"id": "DB-100", "stem": "Which is a key?",
            "options": [{"id": "a", "text": "x"}, {"id": "b", "text": "y"},
                        {"id": "c", "text": "z"}, {"id": "d", "text": "w"}],
            "key": "a", "explanation": "", "difficulty": 2}
    base.update(over)
    return base


def _json_file(tmp_path, items, skill="databases", name="in.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"format": "proficio-bank/1", "skill": skill, "items": items}))
    return path


@pytest.mark.parametrize("items, pattern", [
    ([_item(key="e")], r"in\.json: items\[0\] \(id 'DB-100'\): field 'key': 'e' is not one of"),
    ([_item(), _item()], r"items\[1\] \(id 'DB-100'\): field 'id': duplicate external id"),
    ([_item(difficulty=7)], r"field 'difficulty'"),
    ([_item(options=[{"id": "a", "text": "x"}])], r"field 'options'"),
    ([_item(stem="  ")], r"field 'stem': must not be empty"),
    ([_item(enemies=["DB-100"])], r"field 'enemies'"),
    ([_item(status="live")], r"field 'status'"),
    ([_item(explenation="typo")], r"field 'explenation': is not a known item field"),
    ([_item(), _item(id="DB-101", options=[{"id": "a", "text": "x"}, {"id": "a", "text": "q"}])],
     r"items\[1\] .*field 'options': repeated option ids"),
])
def test_bad_json_items_name_row_and_field(db_session, tmp_path, items, pattern):
    load_mini(db_session)
    before = counts(db_session)
    with pytest.raises(FormatError, match=pattern):
        repo.import_document(db_session, read_bank_file(_json_file(tmp_path, items)))
    assert counts(db_session) == before


def test_unknown_skill_and_existing_and_enemy_errors_write_nothing(db_session, tmp_path):
    load_mini(db_session)
    before = counts(db_session)
    good = _item(id="DB-200")
    cases = [
        (_json_file(tmp_path, [good], skill="astrology"), r"field 'skill': unknown skill"),
        (_json_file(tmp_path, [good, _item(id="DB-001")], name="b.json"),
         r"item 'DB-001': field 'id': the bank already has"),
        (_json_file(tmp_path, [good, _item(id="DB-201", enemies=["NOPE-1"])], name="c.json"),
         r"item 'DB-201': field 'enemies': unknown item 'NOPE-1'"),
    ]
    for path, pattern in cases:
        with pytest.raises(FormatError, match=pattern):
            repo.import_document(db_session, read_bank_file(path))
        assert counts(db_session) == before


def test_malformed_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"format": "proficio-bank/1", "items": [')
    with pytest.raises(FormatError, match=r"bad\.json line 1 column \d+: invalid JSON"):
        read_bank_file(path)
    path.write_text('{"format": "other/9", "items": []}')
    with pytest.raises(FormatError, match="field 'format'"):
        read_bank_file(path)


def test_bad_content_csv_names_line_and_field(tmp_path):
    path = tmp_path / "c.csv"
    header = "id,skill,stem,option_a,option_b,option_c,option_d,key,explanation,difficulty\n"
    path.write_text(header + "DB-300,databases,Q?,w,x,y,z,a,,2\n"
                    "DB-301,databases,Q2?,w,x,y,z,q,,2\n")
    with pytest.raises(FormatError, match=r"c\.csv: line 3 \(id 'DB-301'\): field 'key'"):
        read_bank_file(path)
    path.write_text(header + "DB-300,databases,Q?,w,x\n")
    with pytest.raises(FormatError, match=r"line 2: 5 fields, header has 10"):
        read_bank_file(path)
    path.write_text(header.replace("key", "answer"))
    with pytest.raises(FormatError, match="line 1: unknown column 'answer'"):
        read_bank_file(path)


def test_bad_params_csv_writes_nothing(db_session, tmp_path):
    load_mini(db_session, with_params=False)
    before = counts(db_session)
    path = tmp_path / "p.csv"
    path.write_text("item_id,skill,model,a,b\nDB-001,databases,2pl,1,0\nDB-999,databases,2pl,1,0\n")
    with pytest.raises(FormatError, match="item 'DB-999': field 'item_id': no such item"):
        repo.import_document(db_session, read_bank_file(path))
    path.write_text("item_id,skill,model,a,b\nDB-001,databases,2pl,-1,0\n")
    with pytest.raises(FormatError, match=r"line 2: item 'DB-001': field 'a' must be > 0"):
        read_bank_file(path)
    path.write_text("item_id,skill,model,a,b\nDB-001,version_control,2pl,1,0\n")
    with pytest.raises(FormatError, match="field 'skill'"):
        repo.import_document(db_session, read_bank_file(path))
    assert counts(db_session) == before


def _qti_zip(tmp_path, item_xml: str, manifest_extra: str = "") -> str:
    manifest = f"""<?xml version="1.0"?>
<manifest xmlns="http://www.imsglobal.org/xsd/imscp_v1p1" identifier="M">
 <resources>
  <resource identifier="R1" type="imsqti_item_xmlv2p1" href="q1.xml">{manifest_extra}
   <file href="q1.xml"/></resource>
 </resources>
</manifest>"""
    path = tmp_path / "q.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("imsmanifest.xml", manifest)
        zf.writestr("q1.xml", item_xml)
    return path


FOREIGN_ITEM = """<?xml version="1.0" encoding="UTF-8"?>
<assessmentItem xmlns="http://www.imsglobal.org/xsd/imsqti_v2p1" identifier="ext-42"
    title="Ports" adaptive="false" timeDependent="false">
  <responseDeclaration identifier="RESPONSE" cardinality="single" baseType="identifier">
    <correctResponse><value>ChoiceB</value></correctResponse>
  </responseDeclaration>
  <itemBody>
    <p>Which port does HTTPS use by default?</p>
    <choiceInteraction responseIdentifier="RESPONSE" shuffle="true" maxChoices="1">
      <prompt>Pick one.</prompt>
      <simpleChoice identifier="ChoiceA">80</simpleChoice>
      <simpleChoice identifier="ChoiceB">443</simpleChoice>
      <simpleChoice identifier="ChoiceC">8080</simpleChoice>
    </choiceInteraction>
  </itemBody>
  <responseProcessing
    template="http://www.imsglobal.org/question/qti_v2p1/rptemplates/match_correct"/>
</assessmentItem>"""


def test_foreign_qti_item_imports_with_default_skill(db_session, tmp_path):
    load_mini(db_session)
    path = _qti_zip(tmp_path, FOREIGN_ITEM)
    with pytest.raises(FormatError, match="field 'skill'"):
        read_bank_file(path)
    doc = read_bank_file(path, default_skill="databases")
    [item] = doc.items
    assert item.external_id == "ext-42" and item.key == "ChoiceB"
    assert item.stem == "Which port does HTTPS use by default?\n\nPick one."
    assert [o.text for o in item.options] == ["80", "443", "8080"]
    repo.import_document(db_session, doc)
    assert counts(db_session)[0] == 8


@pytest.mark.parametrize("mutate, pattern", [
    (lambda x: x.replace("<value>ChoiceB</value>", "<value>ChoiceZ</value>"), "field 'key'"),
    (lambda x: x.replace('maxChoices="1"', 'maxChoices="2"'), "field 'maxChoices'"),
    # an item Proficio cannot deliver is skipped; a package of nothing else imports nothing
    (lambda x: x.replace("choiceInteraction", "hotspotInteraction"),
     r"no item could be imported: q1\.xml: item 'ext-42': hotspotInteraction is not supported"),
    (lambda x: x.replace("</itemBody>", ""), r"q1\.xml line \d+ column \d+: malformed XML"),
    (lambda x: x.replace('<?xml version="1.0" encoding="UTF-8"?>',
                         '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "boom">]>'),
     "refused unsafe XML"),
])
def test_bad_qti_is_a_clear_error(tmp_path, mutate, pattern):
    path = _qti_zip(tmp_path, mutate(FOREIGN_ITEM))
    with pytest.raises(FormatError, match=pattern):
        read_bank_file(path, default_skill="databases")


def test_not_a_zip(tmp_path):
    path = tmp_path / "x.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(FormatError, match="not a readable zip archive"):
        read_bank_file(path)


def test_qti_export_is_valid_qti_shape(db_session, tmp_path):
    load_mini(db_session)
    path = tmp_path / "b.zip"
    write_bank_file(path, repo.export_document(db_session))
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        assert {"imsmanifest.xml", "items/DB-001.xml", "parameters.csv"} <= names
        xml = zf.read("items/DB-002.xml").decode()
    from xml.etree import ElementTree as ET

    root = ET.fromstring(xml)
    ns = {"q": "http://www.imsglobal.org/xsd/imsqti_v2p1"}
    assert root.find("q:responseDeclaration/q:correctResponse/q:value", ns).text == "c"
    choices = root.findall("q:itemBody/q:choiceInteraction/q:simpleChoice", ns)
    assert [c.get("identifier") for c in choices] == ["a", "b", "c", "d"]


def test_csv_params_export_matches_db(db_session, tmp_path):
    load_mini(db_session)
    path = tmp_path / "p.csv"
    write_bank_file(path, repo.export_document(db_session))
    from irt.io import read_items_csv

    table = read_items_csv(path)
    loaded = repo.load_bank(db_session)
    assert table.bank.item_ids == loaded.bank.item_ids
    np.testing.assert_allclose(table.bank.a, loaded.bank.a, rtol=1e-6)
    np.testing.assert_allclose(table.bank.b, loaded.bank.b, rtol=1e-6)
    assert table.extra["provisional"][4] == "true"


def test_unknown_extension(tmp_path):
    path = tmp_path / "bank.xlsx"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="unknown bank file type"):
        read_bank_file(path)
    with pytest.raises(ValueError, match="cannot tell the format"):
        write_bank_file(tmp_path / "out.txt", repo_doc_placeholder())


def repo_doc_placeholder():
    from item_bank.content import BankDocument

    return BankDocument("x")




def test_text_hygiene(tmp_path):
    path = _json_file(tmp_path, [_item(stem="Line one\r\nline two\rthree")])
    assert read_bank_file(path).items[0].stem == "Line one\nline two\nthree"
    path = _json_file(tmp_path, [_item(stem="bell\x07")], name="ctl.json")
    with pytest.raises(FormatError, match="field 'stem': contains the control character"):
        read_bank_file(path)
    path = _json_file(tmp_path, [_item(tags=["a;b"])], name="tag.json")
    with pytest.raises(FormatError, match="field 'tags'"):
        read_bank_file(path)


def test_qti_refuses_oversized_members(tmp_path, monkeypatch):
    from item_bank import qti

    path = _qti_zip(tmp_path, FOREIGN_ITEM)
    monkeypatch.setattr(qti, "MAX_MEMBER_BYTES", 600)  # the manifest fits, the item does not
    with pytest.raises(FormatError, match=r"q\.zip:q1\.xml: larger than 600 bytes"):
        read_bank_file(path, default_skill="databases")


def test_qti_manifest_naming_a_missing_file(tmp_path):
    path = tmp_path / "m.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("imsmanifest.xml", '<manifest xmlns="http://www.imsglobal.org/xsd/imscp_v1p1">'
                    '<resources><resource identifier="R" type="imsqti_item_xmlv2p1" '
                    'href="gone.xml"/></resources></manifest>')
    with pytest.raises(FormatError, match=r"names 'gone\.xml', which is not in the archive"):
        read_bank_file(path, default_skill="databases")
