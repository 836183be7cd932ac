"""Issue 22: response types scored by one pure function, and QTI packages shaped like the
official QTI 2.1 examples (choice with a picture, choice_multiple, order, text_entry, and
inline_choice, which Proficio does not deliver), QTI 3.0 items, images, skills, collisions and the
export → import round trip into a fresh bank. The packages are written here, in our own words,
with the structures of the official examples."""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from irt.io import FormatError
from item_bank import qti
from item_bank import repository as repo
from item_bank.content import parse_bank_json
from item_bank.models import Organisation
from item_bank.scoring import AnswerError, canonical_answer, score_response
from item_bank.transfer import read_bank_file


def png(width: int = 2, height: int = 1) -> bytes:
    """A real (tiny, grey) PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                               0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def items(*raw: dict) -> list:
    return list(parse_bank_json("t.json", {"format": "proficio-bank/1", "skill": "s",
                                           "items": list(raw)}).items)


OPTS = [{"id": i, "text": t} for i, t in (("h", "Hydrogen"), ("he", "Helium"),
                                          ("o", "Oxygen"), ("cl", "Chlorine"))]


# -- scoring -----------------------------------------------------------------------------------


def test_multiple_response_partial_credit_nets_wrong_choices_and_all_or_nothing_is_0_1():
    partial, strict = items(
        {"id": "w1", "stem": "What is water made of?", "options": OPTS,
         "response_type": "multiple", "correct": ["o", "h"]},
        {"id": "w2", "stem": "What is water made of?", "options": OPTS,
         "response_type": "multiple", "correct": ["h", "o"], "scoring": "all_or_nothing"})
    assert partial.model == "gpcm" and partial.correct == ("h", "o") and partial.polytomous
    assert strict.model == "2pl" and not strict.polytomous
    cases = {"h,o": (2, 1), "o,h": (2, 1), "h": (1, 0), "h,o,cl": (1, 0), "h,cl": (0, 0),
             "he,cl": (0, 0), "h,he,o,cl": (0, 0)}
    for answer, (p, s) in cases.items():
        assert score_response(partial, answer) == p, answer
        assert score_response(strict, answer) == s, answer
    assert canonical_answer(partial, ["o", "h"]) == "h,o"  # stored in option order


def test_ordering_numeric_and_text_are_exact_match():
    order, number, text = items(
        {"id": "r1", "stem": "Order the finish.", "response_type": "ordering",
         "options": [{"id": "a", "text": "Ann"}, {"id": "b", "text": "Bo"},
                     {"id": "c", "text": "Cy"}], "correct": ["c", "a", "b"]},
        {"id": "n1", "stem": "How many bits in a byte?", "response_type": "numeric",
         "correct": [8]},
        {"id": "t1", "stem": "Which city?", "response_type": "text", "correct": ["York"]})
    assert score_response(order, "c,a,b") == 1 and score_response(order, "a,b,c") == 0
    assert score_response(number, "8") == score_response(number, " 8.0 ") == 1
    assert score_response(number, "8,0") == 1 and score_response(number, "9") == 0
    assert score_response(text, "  york ") == 1 and score_response(text, "New York") == 0
    with pytest.raises(AnswerError, match="field 'answer': put all 3 options in order"):
        canonical_answer(order, ["c", "a"])
    with pytest.raises(AnswerError, match="field 'answer': 'eight' is not a number"):
        canonical_answer(number, "eight")
    with pytest.raises(AnswerError, match="field 'answer': expected one option id"):
        canonical_answer(items({"id": "x", "stem": "s", "key": "h", "options": OPTS})[0],
                         ["h"])


@pytest.mark.parametrize("raw, pattern", [
    ({"response_type": "multiple", "correct": ["zz"]}, "field 'correct': 'zz' is not one of"),
    ({"response_type": "multiple", "correct": ["h", "o"], "model": "2pl"},
     "field 'model': a partial-credit multiple-response item is scored in 3 categories"),
    ({"response_type": "ordering", "correct": ["h", "o"]}, "field 'correct': must list every"),
    ({"response_type": "numeric", "options": None, "correct": ["ten"]},
     r"field 'correct\[0\]': 'ten' is not a number"),
    ({"response_type": "text", "correct": ["x"]}, "field 'options': a text entry item has no"),
    ({"response_type": "essay", "correct": ["x"]}, "field 'response_type': must be one of"),
])
def test_bad_response_definitions_name_the_field(raw, pattern):
    base = {"id": "b1", "stem": "s", "options": OPTS} | raw
    if base.get("options") is None:
        base.pop("options")
    with pytest.raises(FormatError, match=pattern):
        items(base)


# -- QTI packages shaped like the official examples ----------------------------------------------

V21 = 'xmlns="http://www.imsglobal.org/xsd/imsqti_v2p1"'
RP = "http://www.imsglobal.org/question/qti_v2p1/rptemplates/"

CHOICE = f"""<?xml version="1.0" encoding="UTF-8"?>
<assessmentItem {V21} identifier="choice" title="Left Luggage" adaptive="false"
  timeDependent="false">
 <responseDeclaration identifier="RESPONSE" cardinality="single" baseType="identifier">
  <correctResponse><value>ChoiceB</value></correctResponse>
 </responseDeclaration>
 <outcomeDeclaration identifier="SCORE" cardinality="single" baseType="float"/>
 <itemBody>
  <p>Read the notice in the photo.</p>
  <p><img src="images/notice.png" alt="DO NOT LEAVE BAGS UNATTENDED"/></p>
  <choiceInteraction responseIdentifier="RESPONSE" shuffle="false" maxChoices="1">
   <prompt>What does the notice ask?</prompt>
   <simpleChoice identifier="ChoiceA">Keep bags on the left</simpleChoice>
   <simpleChoice identifier="ChoiceB">Keep an eye on your bags</simpleChoice>
   <simpleChoice identifier="ChoiceC">Leave bags at the desk</simpleChoice>
  </choiceInteraction>
 </itemBody>
 <responseProcessing template="{RP}match_correct"/>
</assessmentItem>"""

CHOICE_MULTIPLE = f"""<?xml version="1.0" encoding="UTF-8"?>
<assessmentItem {V21} identifier="choiceMultiple" title="What Water Is Made Of"
  adaptive="false" timeDependent="false">
 <responseDeclaration identifier="RESPONSE" cardinality="multiple" baseType="identifier">
  <correctResponse><value>H</value><value>O</value></correctResponse>
  <mapping lowerBound="0" upperBound="2" defaultValue="-2">
   <mapEntry mapKey="H" mappedValue="1"/><mapEntry mapKey="O" mappedValue="1"/>
   <mapEntry mapKey="Cl" mappedValue="-1"/>
  </mapping>
 </responseDeclaration>
 <itemBody>
  <choiceInteraction responseIdentifier="RESPONSE" shuffle="true" maxChoices="0">
   <prompt>Which elements does a water molecule contain?</prompt>
   <simpleChoice identifier="H">Hydrogen</simpleChoice>
   <simpleChoice identifier="He">Helium</simpleChoice>
   <simpleChoice identifier="C">Carbon</simpleChoice>
   <simpleChoice identifier="O">Oxygen</simpleChoice>
   <simpleChoice identifier="N">Nitrogen</simpleChoice>
   <simpleChoice identifier="Cl">Chlorine</simpleChoice>
  </choiceInteraction>
 </itemBody>
 <responseProcessing template="{RP}map_response"/>
</assessmentItem>"""

ORDER = f"""<?xml version="1.0" encoding="UTF-8"?>
<assessmentItem {V21} identifier="order" title="Race Result" adaptive="false"
  timeDependent="false">
 <responseDeclaration identifier="RESPONSE" cardinality="ordered" baseType="identifier">
  <correctResponse><value>DriverC</value><value>DriverA</value><value>DriverB</value>
  </correctResponse>
 </responseDeclaration>
 <itemBody>
  <orderInteraction responseIdentifier="RESPONSE" shuffle="true">
   <prompt>Three drivers reached the podium. Put them in finishing order, winner first.</prompt>
   <simpleChoice identifier="DriverA">Ana Ruiz</simpleChoice>
   <simpleChoice identifier="DriverB">Ben Okafor</simpleChoice>
   <simpleChoice identifier="DriverC">Chloe Berg</simpleChoice>
  </orderInteraction>
 </itemBody>
 <responseProcessing template="{RP}match_correct"/>
</assessmentItem>"""

TEXT_ENTRY = f"""<?xml version="1.0" encoding="UTF-8"?>
<assessmentItem {V21} identifier="textEntry" title="Missing Word" adaptive="false"
  timeDependent="false">
 <responseDeclaration identifier="RESPONSE" cardinality="single" baseType="string">
  <correctResponse><value>York</value></correctResponse>
  <mapping defaultValue="0"><mapEntry mapKey="York" mappedValue="1"/>
   <mapEntry mapKey="york" mappedValue="1"/></mapping>
 </responseDeclaration>
 <itemBody>
  <p>Fill in the missing word of this line from a history play:</p>
  <blockquote><p>Made glorious summer by this sun of
   <textEntryInteraction responseIdentifier="RESPONSE" expectedLength="15"/>;</p></blockquote>
 </itemBody>
 <responseProcessing template="{RP}map_response"/>
</assessmentItem>"""

INLINE_CHOICE = f"""<?xml version="1.0" encoding="UTF-8"?>
<assessmentItem {V21} identifier="inlineChoice" title="Capital" adaptive="false"
  timeDependent="false">
 <responseDeclaration identifier="RESPONSE" cardinality="single" baseType="identifier">
  <correctResponse><value>E</value></correctResponse>
 </responseDeclaration>
 <itemBody><p>The capital of Scotland is
  <inlineChoiceInteraction responseIdentifier="RESPONSE" shuffle="false">
   <inlineChoice identifier="G">Glasgow</inlineChoice>
   <inlineChoice identifier="E">Edinburgh</inlineChoice>
  </inlineChoiceInteraction>.</p></itemBody>
 <responseProcessing template="{RP}match_correct"/>
</assessmentItem>"""

QTI3_CHOICE = """<?xml version="1.0" encoding="UTF-8"?>
<qti-assessment-item xmlns="http://www.imsglobal.org/xsd/imsqtiasi_v3p0" identifier="q3"
  title="Default port" adaptive="false" time-dependent="false">
 <qti-response-declaration identifier="RESPONSE" cardinality="multiple" base-type="identifier">
  <qti-correct-response><qti-value>p443</qti-value><qti-value>p8443</qti-value>
  </qti-correct-response>
 </qti-response-declaration>
 <qti-item-body>
  <p>Which ports are commonly used for <code>https</code>?</p>
  <qti-choice-interaction response-identifier="RESPONSE" max-choices="0">
   <qti-simple-choice identifier="p80">80</qti-simple-choice>
   <qti-simple-choice identifier="p443">443</qti-simple-choice>
   <qti-simple-choice identifier="p8443">8443</qti-simple-choice>
   <qti-simple-choice identifier="p21">21</qti-simple-choice>
  </qti-choice-interaction>
 </qti-item-body>
 <qti-response-processing
   template="https://purl.imsglobal.org/spec/qti/v3p0/rptemplates/match_correct"/>
</qti-assessment-item>"""


def package(path: Path, members: dict[str, str | bytes], *, v3: bool = False,
            keywords: dict[str, str] | None = None) -> Path:
    kind = "imsqti_item_xmlv3p0" if v3 else "imsqti_item_xmlv2p1"
    resources = "".join(
        f'<resource identifier="R{k}" type="{kind}" href="{name}">'
        + (f'<metadata><lom xmlns="http://ltsc.ieee.org/xsd/LOM"><general><keyword><string>'
           f'{keywords[name]}</string></keyword></general></lom></metadata>'
           if keywords and name in keywords else "")
        + f'<file href="{name}"/></resource>'
        for k, name in enumerate(n for n in members if n.endswith(".xml")))
    manifest = (f'<?xml version="1.0"?><manifest xmlns="{qti.CP_NS}" identifier="M">'
                f"<organizations/><resources>{resources}</resources></manifest>")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("imsmanifest.xml", manifest)
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def examples(tmp_path: Path) -> Path:
    return package(tmp_path / "examples.zip", {
        "choice.xml": CHOICE, "images/notice.png": png(), "choice_multiple.xml": CHOICE_MULTIPLE,
        "order.xml": ORDER, "text_entry.xml": TEXT_ENTRY, "inline_choice.xml": INLINE_CHOICE})


def test_the_official_example_shapes_import_and_the_unsupported_one_is_listed(tmp_path):
    path = examples(tmp_path)
    doc = read_bank_file(path, default_skill="reading")
    got = {it.external_id: it for it in doc.items}
    assert sorted(got) == ["choice", "choiceMultiple", "order", "textEntry"]
    [skipped] = doc.skipped
    assert skipped.startswith("inline_choice.xml: item 'inlineChoice': inlineChoiceInteraction "
                              "is not supported")
    choice = got["choice"]
    assert choice.key == "ChoiceB" and choice.response_type == "single"
    assert choice.stem == "Read the notice in the photo.\n\nWhat does the notice ask?"
    assert [(m.name, m.alt) for m in choice.media] == [("notice.png",
                                                         "DO NOT LEAVE BAGS UNATTENDED")]
    assert [(f.item_id, f.name, f.data) for f in doc.files] == [("choice", "notice.png", png())]
    multi = got["choiceMultiple"]
    assert (multi.response_type, multi.correct, multi.scoring, multi.model) == (
        "multiple", ("H", "O"), "partial", "gpcm")  # map_response: partial credit
    order = got["order"]
    assert order.response_type == "ordering"
    assert order.correct == ("DriverC", "DriverA", "DriverB")
    text = got["textEntry"]
    assert (text.response_type, text.correct) == ("text", ("York", "york"))
    assert text.stem == ("Fill in the missing word of this line from a history play:\n\n"
                         "> Made glorious summer by this sun of _____;")
    assert doc.implied_skills == ("reading",)
    with pytest.raises(FormatError, match=r"inline_choice\.xml: item 'inlineChoice': "
                                          r"inlineChoiceInteraction is not supported.*strict"):
        read_bank_file(path, default_skill="reading", strict=True)


def test_import_into_a_new_bank_creates_the_skill_and_keeps_the_image(db_session, tmp_path):
    org = repo.create_organisation(db_session, "qti-org", "QTI Org")
    bank = repo.create_bank(db_session, org, "fresh", "Fresh")
    doc = read_bank_file(examples(tmp_path), default_skill="reading")
    report = repo.import_document(db_session, doc, bank_id=bank.id)
    assert (report.items_created, report.skills_created, report.skills_implied) == (
        4, 1, ("reading",))
    assert report.media_files == 1 and len(report.skipped) == 1
    assert [s for s, _, n in repo.skill_counts(db_session, bank.id)] == ["reading"]
    from item_bank import media

    row = media.find(db_session, bank.id, "choice", "notice.png")
    assert row is not None and row.content_type == "image/png" and media.read(row) == png()
    assert row.alt == "DO NOT LEAVE BAGS UNATTENDED"
    db_session.rollback()
    assert db_session.query(Organisation).filter_by(slug="qti-org").count() == 0


def test_export_then_import_into_a_fresh_bank_round_trips(db_session, tmp_path):
    from irt import ItemParams
    from item_bank.content import ParameterRecord

    org = repo.create_organisation(db_session, "rt-org", "Round Trip")
    first = repo.create_bank(db_session, org, "first", "First")
    doc = read_bank_file(examples(tmp_path), default_skill="reading")
    numeric = items({"id": "bits", "stem": "Bits in a byte?", "response_type": "numeric",
                     "correct": ["8", "8.0"]})[0]
    from dataclasses import replace

    numeric = replace(numeric, skill="reading")
    params = (ParameterRecord(ItemParams("choiceMultiple", "gpcm", 1.1, thresholds=(-0.4, 0.6),
                                         skill="reading"), n_responses=500),
              ParameterRecord(ItemParams("order", "2pl", 0.9, 0.3, skill="reading")))
    doc = replace(doc, items=(*doc.items, numeric), parameters=params)
    repo.import_document(db_session, doc, bank_id=first.id)
    exported = repo.export_document(db_session, bank_id=first.id)
    out = tmp_path / "export.zip"
    qti.write_qti_zip(out, exported)
    second = repo.create_bank(db_session, org, "second", "Second")
    again = read_bank_file(out)
    assert again.skipped == ()
    repo.import_document(db_session, again, bank_id=second.id)
    back = repo.export_document(db_session, bank_id=second.id)
    assert back.items == exported.items
    assert {(f.item_id, f.name, f.data) for f in back.files} == {
        (f.item_id, f.name, f.data) for f in exported.files} == {("choice", "notice.png", png())}
    assert [r.params for r in back.parameters] == [r.params for r in exported.parameters]
    loaded = repo.load_bank(db_session, bank_id=second.id)
    assert loaded.bank.n_categories.tolist() == [3, 2]  # choiceMultiple (GPCM), order
    db_session.rollback()


def test_qti3_items_import_beside_qti21(tmp_path):
    doc = read_bank_file(package(tmp_path / "v3.zip", {"q3.xml": QTI3_CHOICE,
                                                        "order.xml": ORDER}, v3=True),
                         default_skill="networks")
    q3 = next(it for it in doc.items if it.external_id == "q3")
    assert (q3.response_type, q3.correct, q3.scoring) == (
        "multiple", ("p443", "p8443"), "all_or_nothing")
    assert q3.stem == "Which ports are commonly used for `https`?"
    assert [o.text for o in q3.options] == ["80", "443", "8443", "21"]


def test_skill_from_a_lom_keyword_when_no_skill_is_given(tmp_path):
    doc = read_bank_file(package(tmp_path / "kw.zip", {"order.xml": ORDER},
                                 keywords={"order.xml": "Motor Sport"}))
    assert doc.items[0].skill == "motor_sport" and doc.implied_skills == ("motor_sport",)


def test_colliding_identifiers_name_both_files_and_prefix_imports_both(db_session, tmp_path):
    path = package(tmp_path / "dup.zip", {"a.xml": ORDER, "b.xml": ORDER})
    with pytest.raises(FormatError, match=r"item file b\.xml and item file a\.xml both have the "
                                          r"identifier 'order'.*--prefix"):
        read_bank_file(path, default_skill="racing")
    org = repo.create_organisation(db_session, "px-org", "Prefix")
    bank = repo.create_bank(db_session, org, "b", "B")
    one = package(tmp_path / "one.zip", {"order.xml": ORDER})
    repo.import_document(db_session, read_bank_file(one, default_skill="racing"),
                         bank_id=bank.id)
    with pytest.raises(FormatError, match=r"already has this external id.*--prefix"):
        repo.import_document(db_session, read_bank_file(one, default_skill="racing"),
                             bank_id=bank.id)
    doc = read_bank_file(one, default_skill="racing", prefix="pkg2-")
    assert [it.external_id for it in doc.items] == ["pkg2-order"]
    repo.import_document(db_session, doc, bank_id=bank.id)
    db_session.rollback()


@pytest.mark.parametrize("img, reason", [
    ('<img src="images/notice.png"/>', "image 'images/notice.png' has no alt text"),
    ('<img src="images/notice.svg" alt="x"/>', "SVG images are refused"),
    ('<img src="https://example.com/a.png" alt="x"/>', "external images are not fetched"),
    ('<img src="images/missing.png" alt="x"/>', "is not in the package"),
    ('</p><choiceInteraction responseIdentifier="R2" maxChoices="1"/><p>',
     "2 interactions (choiceInteraction); Proficio delivers one per item"),
])
def test_a_bad_image_skips_its_item_naming_it(tmp_path, img, reason):
    body = CHOICE.replace('<img src="images/notice.png" alt="DO NOT LEAVE BAGS UNATTENDED"/>',
                          img)
    path = package(tmp_path / "img.zip", {
        "choice.xml": body, "order.xml": ORDER, "images/notice.png": png(),
        "images/notice.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>'})
    doc = read_bank_file(path, default_skill="reading")
    assert [it.external_id for it in doc.items] == ["order"]
    [line] = doc.skipped
    assert line.startswith("choice.xml: item 'choice'") and reason in line


def test_an_oversized_image_is_refused_with_the_limit(tmp_path, monkeypatch):
    from item_bank import media

    monkeypatch.setattr(media, "MAX_MEDIA_BYTES", 50)
    path = package(tmp_path / "big.zip", {"choice.xml": CHOICE, "order.xml": ORDER,
                                          "images/notice.png": png(200, 40)})
    doc = read_bank_file(path, default_skill="reading")
    assert "an image may have at most 50 bytes" in doc.skipped[0]


def test_markdown_keeps_lists_code_and_tables(tmp_path):
    body = ORDER.replace(
        "<prompt>", "<prompt><p>Given:</p><ul><li>one <b>bold</b></li><li>two</li></ul>"
        "<pre>x = 1\ny = 2</pre><table><tr><th>k</th><th>v</th></tr><tr><td>a</td>"
        "<td>1</td></tr></table>")
    doc = read_bank_file(package(tmp_path / "md.zip", {"order.xml": body}),
                         default_skill="racing")
    stem = doc.items[0].stem
    assert "- one **bold**\n- two" in stem
    assert "```\nx = 1\ny = 2\n```" in stem
    assert "| k | v |\n| --- | --- |\n| a | 1 |" in stem


def test_json_export_carries_the_images_and_imports_into_a_fresh_bank(db_session, tmp_path):
    from item_bank.content import read_bank_json, write_bank_json

    org = repo.create_organisation(db_session, "json-org", "JSON")
    first = repo.create_bank(db_session, org, "a", "A")
    repo.import_document(db_session, read_bank_file(examples(tmp_path), default_skill="reading"),
                         bank_id=first.id)
    out = tmp_path / "bank.json"
    write_bank_json(out, repo.export_document(db_session, bank_id=first.id))
    doc = read_bank_json(out)
    assert [(f.item_id, f.name, f.data) for f in doc.files] == [("choice", "notice.png", png())]
    second = repo.create_bank(db_session, org, "b", "B")
    repo.import_document(db_session, doc, bank_id=second.id)
    assert repo.export_document(db_session, bank_id=second.id).items == doc.items
    db_session.rollback()


def test_an_image_inside_an_option_skips_the_item(tmp_path):
    body = CHOICE.replace('identifier="ChoiceA">Keep bags on the left',
                          'identifier="ChoiceA"><img src="images/notice.png" alt="left"/>')
    doc = read_bank_file(package(tmp_path / "opt.zip", {
        "choice.xml": body, "order.xml": ORDER, "images/notice.png": png()}),
        default_skill="reading")
    assert doc.skipped == ("choice.xml: item 'choice': an option shows an image; Proficio's "
                           "options are text only",)
