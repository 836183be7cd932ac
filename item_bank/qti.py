"""IMS QTI 2.1 ``choiceInteraction`` items in an IMS content package (``.zip``), both ways.

Export writes one ``assessmentItem`` per item (``responseDeclaration`` with the
``correctResponse``, an ``itemBody`` holding the Markdown stem in ``<div
class="proficio-markdown"><pre>…</pre></div>`` and a single-choice ``choiceInteraction``, the
standard ``match_correct`` response processing, and the explanation as ``modalFeedback``), an
``imsmanifest.xml`` listing them as ``imsqti_item_xmlv2p1`` resources with Proficio's own metadata
(skill, difficulty, status, tags, enemies) in a separate namespace, and, when the bank has them,
``skills.json`` and ``parameters.csv`` (the DESIGN.md items CSV) so a Proficio → Proficio round
trip loses nothing.

Import accepts those packages and foreign QTI 2.1/2.2 packages with single-response
``choiceInteraction`` items (other interactions are rejected with an error naming the file);
a foreign stem is the ``itemBody`` text outside the interaction (plus its ``prompt``), and the
skill comes from the caller when the manifest does not carry one. Parsing goes through
``defusedxml`` (no DTDs, no entity expansion), and archive members are size-checked before they
are read.

Reference: IMS Global (2012), *IMS Question & Test Interoperability Assessment Test, Section and
Item Information Model v2.1 Final* — ``choiceInteraction``, ``simpleChoice``,
``responseDeclaration`` and the ``match_correct`` response-processing template; IMS Global (2004),
*IMS Content Packaging v1.1.4* — ``imsmanifest.xml``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from irt import Bank
from irt.io import FormatError, read_items_csv, write_items_csv
from item_bank.content import (
    BankDocument,
    ItemContent,
    SkillInfo,
    check_unique_ids,
    parameter_columns,
    parse_bank_json,
    records_from_table,
    validate_item,
)
from item_bank.content import _Where as Where

QTI_NS = "http://www.imsglobal.org/xsd/imsqti_v2p1"
QTI_NAMESPACES = (QTI_NS, "http://www.imsglobal.org/xsd/imsqti_v2p2", "")
CP_NS = "http://www.imsglobal.org/xsd/imscp_v1p1"
PROFICIO_NS = "https://proficio.dev/ns/qti-extension/1"
MATCH_CORRECT = "http://www.imsglobal.org/question/qti_v2p1/rptemplates/match_correct"
MAX_MEMBER_BYTES = 5_000_000
MAX_MEMBERS = 50_000
#: Uncompressed bytes an import may read per byte of archive (a real export expands ~2.2×), and
#: the floor of that budget for small archives. See `read_qti_zip`.
MAX_EXPANSION = 20
MIN_PARSE_BUDGET = 256 * 1024


def _q(tag: str, ns: str = QTI_NS) -> str:
    return f"{{{ns}}}{tag}"


# -- export ------------------------------------------------------------------------------------


def item_xml(item: ItemContent) -> bytes:
    """The QTI 2.1 ``assessmentItem`` document of one item."""
    ET.register_namespace("", QTI_NS)
    root = ET.Element(_q("assessmentItem"), {
        "identifier": item.external_id, "title": item.external_id, "adaptive": "false",
        "timeDependent": "false"})
    decl = ET.SubElement(root, _q("responseDeclaration"), {
        "identifier": "RESPONSE", "cardinality": "single", "baseType": "identifier"})
    ET.SubElement(ET.SubElement(decl, _q("correctResponse")), _q("value")).text = item.key
    ET.SubElement(root, _q("outcomeDeclaration"), {
        "identifier": "SCORE", "cardinality": "single", "baseType": "float"})
    ET.SubElement(root, _q("outcomeDeclaration"), {
        "identifier": "FEEDBACK", "cardinality": "single", "baseType": "identifier"})
    body = ET.SubElement(root, _q("itemBody"))
    stem = ET.SubElement(body, _q("div"), {"class": "proficio-markdown"})
    ET.SubElement(stem, _q("pre")).text = item.stem
    inter = ET.SubElement(body, _q("choiceInteraction"), {
        "responseIdentifier": "RESPONSE", "shuffle": "false", "maxChoices": "1"})
    for opt in item.options:
        ET.SubElement(inter, _q("simpleChoice"), {"identifier": opt.id}).text = opt.text
    ET.SubElement(root, _q("responseProcessing"), {"template": MATCH_CORRECT})
    if item.explanation:
        fb = ET.SubElement(root, _q("modalFeedback"), {
            "outcomeIdentifier": "FEEDBACK", "identifier": "EXPLANATION", "showHide": "show"})
        fb.text = item.explanation
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _member_name(item: ItemContent) -> str:
    return f"items/{item.external_id}.xml"


def manifest_xml(items: Sequence[ItemContent]) -> bytes:
    ET.register_namespace("", CP_NS)
    ET.register_namespace("proficio", PROFICIO_NS)
    root = ET.Element(_q("manifest", CP_NS), {"identifier": "PROFICIO-BANK"})
    ET.SubElement(root, _q("organizations", CP_NS))
    resources = ET.SubElement(root, _q("resources", CP_NS))
    for it in items:
        res = ET.SubElement(resources, _q("resource", CP_NS), {
            "identifier": f"RES-{it.external_id}", "type": "imsqti_item_xmlv2p1",
            "href": _member_name(it)})
        meta = ET.SubElement(res, _q("metadata", CP_NS))
        attrs = {"skill": it.skill, "status": it.status, "model": it.model}
        if it.difficulty is not None:
            attrs["difficulty"] = str(it.difficulty)
        if it.author is not None:
            attrs["author"] = it.author
        ext = ET.SubElement(meta, _q("item", PROFICIO_NS), attrs)
        for tag in it.tags:
            ET.SubElement(ext, _q("tag", PROFICIO_NS)).text = tag
        for enemy in it.enemies:
            ET.SubElement(ext, _q("enemy", PROFICIO_NS)).text = enemy
        ET.SubElement(res, _q("file", CP_NS), {"href": _member_name(it)})
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_qti_zip(target: str | Path | io.BufferedIOBase, doc: BankDocument) -> None:
    """Write ``doc`` as a QTI 2.1 content package (see the module docstring)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("imsmanifest.xml", manifest_xml(doc.items))
        for it in doc.items:
            zf.writestr(_member_name(it), item_xml(it))
        if doc.skills:
            zf.writestr("skills.json", json.dumps({
                "format": "proficio-bank/1", "bank": doc.name,
                "skills": [{"id": s.slug, "name": s.name, "description": s.description}
                           for s in doc.skills]}, ensure_ascii=False, indent=2))
        if doc.parameters:
            buf = io.StringIO()
            write_items_csv(buf, Bank.from_params(r.params for r in doc.parameters),
                            parameter_columns(doc.parameters))
            zf.writestr("parameters.csv", buf.getvalue())


# -- import ------------------------------------------------------------------------------------


def _parse(name: str, data: bytes) -> ET.Element:
    try:
        return fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise FormatError(f"{name}: refused unsafe XML ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        line, col = exc.position
        raise FormatError(f"{name} line {line} column {col}: malformed XML") from None


def _local(tag: Any) -> tuple[str, str]:
    if not isinstance(tag, str):
        return "", ""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _find(parent: ET.Element, local: str) -> list[ET.Element]:
    return [el for el in parent.iter() if _local(el.tag)[1] == local]


def _text(el: ET.Element) -> str:
    return "".join(el.itertext())


def _block_text(el: ET.Element) -> str:
    return " ".join(_text(el).split())


def parse_item_xml(name: str, data: bytes, meta: dict[str, Any]) -> ItemContent:
    """One QTI ``assessmentItem`` (single-choice ``choiceInteraction``) as `ItemContent`."""
    root = _parse(name, data)
    ns, local = _local(root.tag)
    if local != "assessmentItem" or ns not in QTI_NAMESPACES:
        raise FormatError(f"{name}: field 'assessmentItem': root element is {root.tag!r}, "
                          f"expected a QTI 2.x assessmentItem")
    iid = root.get("identifier")
    where = Where(name, f"assessmentItem {iid!r}")
    interactions = [el for el in root.iter()
                    if _local(el.tag)[1].endswith("Interaction")]
    if len(interactions) != 1 or _local(interactions[0].tag)[1] != "choiceInteraction":
        kinds = sorted({_local(el.tag)[1] for el in interactions}) or ["none"]
        raise where.error("choiceInteraction", f"expected exactly one choiceInteraction, found "
                                               f"{', '.join(kinds)}")
    inter = interactions[0]
    if inter.get("maxChoices", "1") != "1":
        raise where.error("maxChoices", f"only single-response items are supported, got "
                                        f"{inter.get('maxChoices')!r}")
    resp_id = inter.get("responseIdentifier")
    decls = [d for d in _find(root, "responseDeclaration") if d.get("identifier") == resp_id]
    if len(decls) != 1:
        raise where.error("responseDeclaration", f"no declaration for response {resp_id!r}")
    if decls[0].get("cardinality") != "single":
        raise where.error("cardinality", f"expected 'single', got {decls[0].get('cardinality')!r}")
    correct = _find(decls[0], "correctResponse")
    if len(correct) != 1:
        raise where.error("correctResponse", f"expected one, found {len(correct)}")
    values = [v.text.strip() for v in _find(correct[0], "value") if v.text]
    if len(values) != 1:
        raise where.error("correctResponse", f"expected exactly one correct value, got {values}")
    options = [{"id": c.get("identifier"), "text": _text(c)}
               for c in inter if _local(c.tag)[1] == "simpleChoice"]
    body = next(iter(_find(root, "itemBody")), None)
    if body is None:
        raise where.error("itemBody", "missing")
    marked = [d for d in _find(body, "div") if d.get("class") == "proficio-markdown"]
    if marked:
        pre = _find(marked[0], "pre")
        stem = _text(pre[0]) if pre else _text(marked[0])
    else:
        parts = [_block_text(el) for el in body if el is not inter]
        parts += [_block_text(p) for p in inter if _local(p.tag)[1] == "prompt"]
        stem = "\n\n".join(p for p in parts if p)
    feedback = _find(root, "modalFeedback")
    raw: dict[str, Any] = {"id": iid, "stem": stem, "options": options, "key": values[0],
                           "explanation": _text(feedback[0]) if feedback else ""}
    raw.update(meta)
    item, _ = validate_item(where, raw, None)
    return item


def _manifest_meta(name: str, root: ET.Element, default_skill: str | None
                   ) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for res in _find(root, "resource"):
        if not (res.get("type") or "").startswith("imsqti_item_xmlv2p"):
            continue
        href = res.get("href")
        if not href:
            raise FormatError(f"{name}: resource {res.get('identifier')!r}: field 'href': missing")
        meta: dict[str, Any] = {}
        # resource > metadata > proficio:item (children only: a scan of each resource's
        # whole subtree would be quadratic in nested resources)
        ext = [el for md in res if _local(md.tag)[1] == "metadata"
               for el in md if _local(el.tag) == (PROFICIO_NS, "item")]
        if ext:
            e = ext[0]
            meta["skill"] = e.get("skill")
            for k in ("status", "model", "author"):
                if e.get(k) is not None:
                    meta[k] = e.get(k)
            if e.get("difficulty") is not None:
                d = e.get("difficulty", "")
                meta["difficulty"] = int(d) if d.isdigit() else d
            meta["tags"] = [t.text or "" for t in e if _local(t.tag)[1] == "tag"]
            meta["enemies"] = [t.text or "" for t in e if _local(t.tag)[1] == "enemy"]
        elif default_skill is not None:
            meta["skill"] = default_skill
        out.append((href, meta))
    return out


def archive_budget(archive_bytes: int) -> int:
    """Most uncompressed bytes an import reads from an archive of ``archive_bytes`` bytes:
    ``max(MIN_PARSE_BUDGET, MAX_EXPANSION × archive_bytes)``."""
    return max(MIN_PARSE_BUDGET, MAX_EXPANSION * archive_bytes)


def _archive_size(source: str | Path | io.BufferedIOBase) -> int:
    if isinstance(source, str | Path):
        return Path(source).stat().st_size
    here = source.tell()
    end = source.seek(0, io.SEEK_END)
    source.seek(here)
    return end


def read_qti_zip(source: str | Path | io.BufferedIOBase,
                 default_skill: str | None = None) -> BankDocument:
    """Read a QTI content package; ``default_skill`` applies to items without Proficio metadata.

    Everything is validated before anything is returned; errors are `FormatError` naming the
    archive, the member file and the field.

    The work is bounded by the archive's size: the manifest may name each file once (a
    repeated ``href`` is refused before any item is parsed), and the members read — manifest,
    items, ``skills.json``, ``parameters.csv`` — may hold at most `archive_budget` bytes
    uncompressed (20 × the archive, at least 256 KiB), checked on the sizes the archive
    declares before reading and enforced while decompressing. Parsing is linear in the bytes
    read, so a 10 KB upload parses at most 256 KiB of XML.
    """
    zname = str(source) if isinstance(source, str | Path) else getattr(source, "name", "<zip>")
    try:
        budget = archive_budget(_archive_size(source))
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FormatError(f"{zname}: not a readable zip archive ({exc})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise FormatError(f"{zname}: {len(infos)} members, more than {MAX_MEMBERS}")
        sizes = {i.filename: i.file_size for i in infos}
        spent = [0]

        def check_size(member: str) -> int:
            if member not in sizes:
                raise FormatError(f"{zname}: the manifest names {member!r}, which is not in the "
                                  f"archive")
            if sizes[member] > MAX_MEMBER_BYTES:
                raise FormatError(f"{zname}:{member}: larger than {MAX_MEMBER_BYTES} bytes")
            return sizes[member]

        def read(member: str) -> bytes:
            declared = check_size(member)
            if spent[0] + declared > budget:
                raise _over_budget(zname, budget)
            try:
                with zf.open(member) as f:
                    data = f.read(declared + 1)  # never more than the archive declares
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as exc:
                raise FormatError(f"{zname}:{member}: cannot be read ({exc})") from None
            if len(data) > declared:
                raise FormatError(f"{zname}:{member}: holds more data than its declared size")
            spent[0] += len(data)
            return data

        if "imsmanifest.xml" not in sizes:
            raise FormatError(f"{zname}: no imsmanifest.xml (not an IMS content package)")
        manifest = _parse(f"{zname}:imsmanifest.xml", read("imsmanifest.xml"))
        entries = _manifest_meta(f"{zname}:imsmanifest.xml", manifest, default_skill)
        del manifest
        if not entries:
            raise FormatError(f"{zname}:imsmanifest.xml: no QTI item resources")
        seen: set[str] = set()
        for href, meta in entries:
            if href in seen:
                raise FormatError(f"{zname}:imsmanifest.xml: resource href {href!r}: field "
                                  f"'href': the file is listed more than once")
            seen.add(href)
            if "skill" not in meta:
                raise FormatError(f"{zname}:{href}: field 'skill': the package does not say "
                                  f"which skill the item measures; pass a default skill")
        extras = [m for m in ("skills.json", "parameters.csv") if m in sizes]
        if spent[0] + sum(check_size(m) for m in [*seen, *extras]) > budget:
            raise _over_budget(zname, budget)
        items = []
        for href, meta in entries:
            items.append(parse_item_xml(f"{zname}:{href}", read(href), meta))
        check_unique_ids(zname, items, [f"item file {h}" for h, _ in entries])
        skills: tuple[SkillInfo, ...] = ()
        name = ""
        if "skills.json" in sizes:
            try:
                sdoc = json.loads(read("skills.json").decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                raise FormatError(f"{zname}:skills.json: invalid JSON "
                                  f"({type(exc).__name__})") from None
            parsed = parse_bank_json(f"{zname}:skills.json", sdoc)
            skills, name = parsed.skills, parsed.name
        params = ()
        if "parameters.csv" in sizes:
            try:
                text = read("parameters.csv").decode("utf-8-sig")
            except UnicodeDecodeError:
                raise FormatError(f"{zname}:parameters.csv: not UTF-8 text") from None
            stream = io.StringIO(text)
            stream.name = f"{zname}:parameters.csv"  # type: ignore[attr-defined]
            table = read_items_csv(stream)
            params = records_from_table(table, f"{zname}:parameters.csv")
    return BankDocument(zname, skills, tuple(items), params, name)


def _over_budget(zname: str, budget: int) -> FormatError:
    return FormatError(f"{zname}: the files it lists hold more than {budget} bytes uncompressed; "
                       f"an archive may expand to at most {MAX_EXPANSION} times its size "
                       f"(at least {MIN_PARSE_BUDGET} bytes)")
