"""IMS QTI items in an IMS content package (``.zip``), both ways (issue 22: the response types
of `item_bank.scoring`, images, QTI 3.0 items).

**Export** writes QTI 2.1: one ``assessmentItem`` per item with its ``responseDeclaration``
(``correctResponse``; numeric/text items with more than one accepted answer also a ``mapping``),
an ``itemBody`` holding the Markdown stem in ``<div class="proficio-markdown"><pre>…</pre></div>``
followed by the item's images (``<img src alt>``, the files under ``media/<item>/``) and the
interaction — ``choiceInteraction`` (``maxChoices="1"``: single; ``0``: multiple response),
``orderInteraction``, or a ``textEntryInteraction`` in a paragraph —, the standard
``match_correct`` response processing (``map_response`` for partial-credit multiple response and
for entry items with several accepted answers), and the explanation as ``modalFeedback``. The
``imsmanifest.xml`` lists the items as ``imsqti_item_xmlv2p1`` resources with Proficio's own
metadata (skill, difficulty, status, tags, enemies, scoring) in a separate namespace, and, when the
bank has them, ``skills.json`` and ``parameters.csv`` (the DESIGN.md items CSV, thresholds
``b1…bK`` for polytomous items) so a Proficio → Proficio round trip loses nothing.

**Import** reads those packages and foreign QTI 2.1/2.2 and 3.0 packages (TAO, Moodle, Canvas
…). Supported: ``choiceInteraction`` (``maxChoices = 1`` → single; otherwise with cardinality
``multiple`` → multiple response, all-or-nothing when the item uses ``match_correct``, partial
credit otherwise), ``orderInteraction`` → ordering, ``textEntryInteraction`` → numeric entry
(``baseType`` ``float``/``integer``) or text entry (``string``); the accepted answers are the
``correctResponse`` values plus mapping keys with a positive score. An item with any other
interaction (``inlineChoiceInteraction``, ``hotspotInteraction``, ``uploadInteraction``, …), with
more than one interaction, or with an image that is missing, external, of a refused type, too large
or without alt text is **skipped** and listed (file, identifier, reason) while the rest import;
``strict`` refuses the package instead. A foreign stem is the ``itemBody`` outside the
interaction (plus its ``prompt``) converted to Markdown, keeping paragraphs, code, lists and
tables. The skill of an item comes from Proficio's metadata, else from the caller
(``default_skill``), else from the first LOM keyword of the resource; skills named that way and
not defined by the package are created by the import (`BankDocument.implied_skills`).

Safety: parsing goes through ``defusedxml`` (no DTDs, no entity expansion); archive members —
images included — are size-checked before they are read and count against one budget (see
`read_qti_zip`); a file listed twice in the manifest is refused before any item is parsed.

References: IMS Global (2012), *IMS Question & Test Interoperability Assessment Test, Section
and Item Information Model v2.1 Final* — ``choiceInteraction``, ``orderInteraction``,
``textEntryInteraction``, ``responseDeclaration``, ``mapping`` and the ``match_correct`` /
``map_response`` response-processing templates; 1EdTech (2022), *Question and Test
Interoperability (QTI) 3.0 Assessment, Section and Item Information Model* (``qti-`` element
names, namespace ``imsqtiasi_v3p0``); IMS Global (2004), *IMS Content Packaging v1.1.4*.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from irt import Bank
from irt.io import FormatError, read_items_csv, write_items_csv
from item_bank.content import (
    EXTERNAL_ID,
    MEDIA_NAME,
    SKILL_ID,
    BankDocument,
    ItemContent,
    MediaFile,
    ParameterRecord,
    SkillInfo,
    check_unique_ids,
    parameter_columns,
    parse_bank_json,
    records_from_table,
    validate_item,
)
from item_bank.content import _Where as Where

QTI_NS = "http://www.imsglobal.org/xsd/imsqti_v2p1"
QTI3_NS = "http://www.imsglobal.org/xsd/imsqtiasi_v3p0"
QTI_NAMESPACES = (QTI_NS, "http://www.imsglobal.org/xsd/imsqti_v2p2", QTI3_NS, "")
CP_NS = "http://www.imsglobal.org/xsd/imscp_v1p1"
PROFICIO_NS = "https://proficio.dev/ns/qti-extension/1"
TEMPLATES = "http://www.imsglobal.org/question/qti_v2p1/rptemplates/"
MATCH_CORRECT = TEMPLATES + "match_correct"
MAP_RESPONSE = TEMPLATES + "map_response"
MAX_MEMBER_BYTES = 5_000_000
MAX_MEMBERS = 50_000
#: Uncompressed bytes an import may read per byte of archive (a real export expands ~2.2×), and
#: the floor of that budget for small archives. See `read_qti_zip`.
MAX_EXPANSION = 20
MIN_PARSE_BUDGET = 256 * 1024
#: Interactions Proficio delivers (QTI 2 names; QTI 3 ``qti-…`` names are mapped onto them).
SUPPORTED_INTERACTIONS = ("choiceInteraction", "orderInteraction", "textEntryInteraction")
#: What stands for a text-entry blank in a stem.
BLANK = "_____"


class Unsupported(FormatError):
    """An item Proficio cannot deliver as it is; a package import skips it (unless strict)."""


def _q(tag: str, ns: str = QTI_NS) -> str:
    return f"{{{ns}}}{tag}"


# -- export ------------------------------------------------------------------------------------


def _media_href(item: ItemContent, name: str) -> str:
    return f"media/{item.external_id}/{name}"


def item_xml(item: ItemContent) -> bytes:
    """The QTI 2.1 ``assessmentItem`` document of one item (images referenced relative to the
    item file, ``items/<id>.xml`` → ``items/media/<id>/<name>``)."""
    ET.register_namespace("", QTI_NS)
    root = ET.Element(_q("assessmentItem"), {
        "identifier": item.external_id, "title": item.external_id, "adaptive": "false",
        "timeDependent": "false"})
    rtype = item.response_type
    base, cardinality = {
        "single": ("identifier", "single"), "multiple": ("identifier", "multiple"),
        "ordering": ("identifier", "ordered"), "numeric": ("float", "single"),
        "text": ("string", "single")}[rtype]
    decl = ET.SubElement(root, _q("responseDeclaration"), {
        "identifier": "RESPONSE", "cardinality": cardinality, "baseType": base})
    correct = [item.key] if rtype == "single" else list(item.correct)
    shown = correct[:1] if rtype in ("numeric", "text") else correct
    values = ET.SubElement(decl, _q("correctResponse"))
    for v in shown:
        ET.SubElement(values, _q("value")).text = v
    template = MATCH_CORRECT
    if item.polytomous or (rtype in ("numeric", "text") and len(correct) > 1):
        template = MAP_RESPONSE
        attrs = {"defaultValue": "0"}
        if item.polytomous:
            attrs["lowerBound"] = "0"
        mapping = ET.SubElement(decl, _q("mapping"), attrs)
        keys = item.option_ids if item.polytomous else correct
        for k in keys:
            ET.SubElement(mapping, _q("mapEntry"), {
                "mapKey": k, "mappedValue": "1" if k in correct else "-1"})
    ET.SubElement(root, _q("outcomeDeclaration"), {
        "identifier": "SCORE", "cardinality": "single", "baseType": "float"})
    ET.SubElement(root, _q("outcomeDeclaration"), {
        "identifier": "FEEDBACK", "cardinality": "single", "baseType": "identifier"})
    body = ET.SubElement(root, _q("itemBody"))
    stem = ET.SubElement(body, _q("div"), {"class": "proficio-markdown"})
    ET.SubElement(stem, _q("pre")).text = item.stem
    for m in item.media:
        ET.SubElement(ET.SubElement(body, _q("p")), _q("img"), {
            "src": _media_href(item, m.name), "alt": m.alt})
    if rtype in ("single", "multiple"):
        inter = ET.SubElement(body, _q("choiceInteraction"), {
            "responseIdentifier": "RESPONSE", "shuffle": "false",
            "maxChoices": "1" if rtype == "single" else "0"})
    elif rtype == "ordering":
        inter = ET.SubElement(body, _q("orderInteraction"), {
            "responseIdentifier": "RESPONSE", "shuffle": "false"})
    else:
        ET.SubElement(ET.SubElement(body, _q("p")), _q("textEntryInteraction"), {
            "responseIdentifier": "RESPONSE",
            "expectedLength": str(max(5, max(len(c) for c in correct)))})
        inter = None
    if inter is not None:
        for opt in item.options:
            ET.SubElement(inter, _q("simpleChoice"), {"identifier": opt.id}).text = opt.text
    ET.SubElement(root, _q("responseProcessing"), {"template": template})
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
        if it.response_type == "multiple":
            attrs["scoring"] = it.scoring
        ext = ET.SubElement(meta, _q("item", PROFICIO_NS), attrs)
        for tag in it.tags:
            ET.SubElement(ext, _q("tag", PROFICIO_NS)).text = tag
        for enemy in it.enemies:
            ET.SubElement(ext, _q("enemy", PROFICIO_NS)).text = enemy
        ET.SubElement(res, _q("file", CP_NS), {"href": _member_name(it)})
        for m in it.media:
            ET.SubElement(res, _q("file", CP_NS), {"href": "items/" + _media_href(it, m.name)})
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_qti_zip(target: str | Path | io.BufferedIOBase, doc: BankDocument) -> None:
    """Write ``doc`` as a QTI 2.1 content package (see the module docstring)."""
    files = {(f.item_id, f.name): f.data for f in doc.files}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("imsmanifest.xml", manifest_xml(doc.items))
        for it in doc.items:
            zf.writestr(_member_name(it), item_xml(it))
            for m in it.media:
                if (it.external_id, m.name) in files:
                    zf.writestr("items/" + _media_href(it, m.name),
                                files[(it.external_id, m.name)])
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


def _camel(kebab: str) -> str:
    head, *rest = kebab.split("-")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _qti3_to_2(root: ET.Element) -> None:
    """Rename a QTI 3.0 tree in place to the QTI 2 names the reader knows (``qti-choice-
    interaction`` → ``choiceInteraction``, ``max-choices`` → ``maxChoices``, …); HTML elements
    keep their names."""
    for el in root.iter():
        ns, local = _local(el.tag)
        if local.startswith("qti-"):
            el.tag = f"{{{QTI_NS}}}{_camel(local[4:])}"
        elif ns == QTI3_NS:
            el.tag = f"{{{QTI_NS}}}{local}"
        for k in [k for k in el.attrib if "-" in k]:
            el.attrib[_camel(k)] = el.attrib.pop(k)


def _find(parent: ET.Element, local: str) -> list[ET.Element]:
    return [el for el in parent.iter() if _local(el.tag)[1] == local]


def _text(el: ET.Element) -> str:
    return "".join(el.itertext())


def _block_text(el: ET.Element) -> str:
    return " ".join(_text(el).split())


# XHTML → Markdown, keeping the structure a stem needs (paragraphs, code, lists, tables).

#: A line break (``<br/>``) until the text is laid out; then a Markdown hard break.
_BR = "\x00"
_BLOCKS = {"p", "div", "blockquote", "pre", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5",
           "h6", "hr", "figure", "dl"}


def _inline(el: ET.Element, skip: Callable[[ET.Element], str | None]) -> str:
    out = [el.text or ""]
    for child in el:
        out.append(_inline_el(child, skip))
        out.append(child.tail or "")
    return "".join(out)


def _inline_el(el: ET.Element, skip: Callable[[ET.Element], str | None]) -> str:
    replaced = skip(el)
    if replaced is not None:
        return replaced
    local = _local(el.tag)[1]
    inner = _inline(el, skip)
    if local in ("b", "strong"):
        return f"**{inner.strip()}**" if inner.strip() else ""
    if local in ("i", "em"):
        return f"*{inner.strip()}*" if inner.strip() else ""
    if local in ("code", "kbd", "samp", "tt"):
        text = _text(el)
        tick = "``" if "`" in text else "`"
        return f"{tick}{text}{tick}"
    if local == "br":
        return _BR
    return inner


def _markdown(el: ET.Element, skip: Callable[[ET.Element], str | None]) -> str:
    """Markdown of the children of ``el`` (block level); ``skip(child)`` returns the text that
    replaces an element (e.g. "" for the interaction), or None to convert it."""
    blocks: list[str] = []
    inline: list[str] = [el.text or ""]

    def flush() -> None:
        # HTML white space: runs (line breaks included) are one space; <br/> breaks the line
        text = re.sub(r"\s+", " ", "".join(inline)).strip()
        text = re.sub(r" ?\x00 ?", "  \n", text).strip()
        if text:
            blocks.append(text)
        inline.clear()

    for child in el:
        replaced = skip(child)
        local = _local(child.tag)[1]
        if replaced is not None:
            inline.append(replaced)
        elif local in _BLOCKS:
            flush()
            block = _block(child, skip)
            if block:
                blocks.append(block)
        else:
            inline.append(_inline_el(child, skip))
        inline.append(child.tail or "")
    flush()
    return "\n\n".join(b for b in blocks if b.strip())


def _block(el: ET.Element, skip: Callable[[ET.Element], str | None]) -> str:
    local = _local(el.tag)[1]
    if local == "pre":
        text = _text(el).strip("\n")
        fence = "````" if "```" in text else "```"
        return f"{fence}\n{text}\n{fence}"
    if local in ("ul", "ol"):
        lines = []
        for k, li in enumerate(c for c in el if _local(c.tag)[1] == "li"):
            mark = f"{k + 1}." if local == "ol" else "-"
            body = _markdown(li, skip).replace("\n", "\n   ")
            lines.append(f"{mark} {body}")
        return "\n".join(lines)
    if local == "table":
        rows = [r for r in el.iter() if _local(r.tag)[1] == "tr"]
        cells = [[" ".join(_inline(c, skip).replace(_BR, " ").split()).replace("|", "\\|")
                  for c in r
                  if _local(c.tag)[1] in ("td", "th")] for r in rows]
        cells = [r for r in cells if r]
        if not cells:
            return ""
        width = max(len(r) for r in cells)
        cells = [r + [""] * (width - len(r)) for r in cells]
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + " --- |" * width]
        lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
        return "\n".join(lines)
    if local.startswith("h") and local[1:].isdigit():
        return f"**{' '.join(_inline(el, skip).replace(_BR, ' ').split())}**"
    if local == "hr":
        return "---"
    if local == "blockquote":
        return "\n".join("> " + line for line in _markdown(el, skip).splitlines())
    return _markdown(el, skip)


def _values(parent: ET.Element) -> list[str]:
    return [(v.text or "").strip() for v in _find(parent, "value") if (v.text or "").strip()]


def parse_item_xml(name: str, data: bytes, meta: dict[str, Any],
                   media: Callable[[str, str], bytes] | None = None
                   ) -> tuple[ItemContent, tuple[MediaFile, ...]]:
    """One QTI 2.x/3.0 ``assessmentItem`` as `ItemContent` and the bytes of its images.

    ``media(src, where)`` reads an image the item refers to (relative to the item file);
    raises `Unsupported` for an item Proficio cannot deliver, `FormatError` for a broken one.
    """
    root = _parse(name, data)
    ns, local = _local(root.tag)
    if ns == QTI3_NS or local == "qti-assessment-item":
        _qti3_to_2(root)
        ns, local = _local(root.tag)
    if local != "assessmentItem" or ns not in QTI_NAMESPACES:
        raise FormatError(f"{name}: field 'assessmentItem': root element is {root.tag!r}, "
                          f"expected a QTI 2.x or 3.0 assessmentItem")
    iid = root.get("identifier")
    where = Where(name, f"assessmentItem {iid!r}")
    interactions = [el for el in root.iter() if _local(el.tag)[1].endswith("Interaction")]
    kinds = sorted({_local(el.tag)[1] for el in interactions})
    if not interactions:
        raise Unsupported(f"{name}: item {iid!r}: no interaction (nothing to answer)")
    if len(interactions) > 1:
        raise Unsupported(f"{name}: item {iid!r}: {len(interactions)} interactions "
                          f"({', '.join(kinds)}); Proficio delivers one per item")
    inter = interactions[0]
    kind = _local(inter.tag)[1]
    if kind not in SUPPORTED_INTERACTIONS:
        raise Unsupported(f"{name}: item {iid!r}: {kind} is not supported (supported: "
                          f"{', '.join(SUPPORTED_INTERACTIONS)})")
    resp_id = inter.get("responseIdentifier")
    decls = [d for d in _find(root, "responseDeclaration") if d.get("identifier") == resp_id]
    if len(decls) != 1:
        raise where.error("responseDeclaration", f"no declaration for response {resp_id!r}")
    decl = decls[0]
    cardinality = decl.get("cardinality")
    correct_el = _find(decl, "correctResponse")
    values = _values(correct_el[0]) if correct_el else []
    mapped = [(e.get("mapKey") or "", e.get("mappedValue") or "0")
              for e in _find(decl, "mapEntry")]
    template = next((rp.get("template") or "" for rp in _find(root, "responseProcessing")), "")
    raw: dict[str, Any] = {"id": iid}
    if kind == "choiceInteraction":
        max_choices = inter.get("maxChoices", "1")
        if max_choices == "1":
            if cardinality != "single":
                raise where.error("cardinality", f"expected 'single', got {cardinality!r}")
            if len(values) != 1:
                raise where.error("correctResponse", f"expected exactly one correct value, got "
                                                     f"{values}")
            raw["key"] = values[0]
        else:
            if cardinality != "multiple":
                raise where.error("maxChoices", f"allows {max_choices} choices but the response "
                                                f"has cardinality {cardinality!r}, not 'multiple'")
            if not values:  # some tools give the answer only as a mapping
                values = [k for k, v in mapped if _positive(v)]
            raw.update(response_type="multiple", correct=values,
                       scoring="all_or_nothing" if template.endswith("match_correct")
                       else "partial")
    elif kind == "orderInteraction":
        if cardinality != "ordered":
            raise where.error("cardinality", f"an orderInteraction needs 'ordered', got "
                                             f"{cardinality!r}")
        raw.update(response_type="ordering", correct=values)
    else:
        base = decl.get("baseType")
        if cardinality != "single" or base not in ("string", "float", "integer"):
            raise Unsupported(f"{name}: item {iid!r}: textEntryInteraction with cardinality "
                              f"{cardinality!r} and baseType {base!r} is not supported (single "
                              f"string, integer or float)")
        accepted = values + [k for k, v in mapped if _positive(v) and k not in values]
        raw.update(response_type="text" if base == "string" else "numeric", correct=accepted)
    if kind != "textEntryInteraction":
        choices = [c for c in inter if _local(c.tag)[1] == "simpleChoice"]
        if any(_local(el.tag)[1] in ("img", "object") for c in choices for el in c.iter()):
            raise Unsupported(f"{name}: item {iid!r}: an option shows an image; Proficio's "
                              f"options are text only")
        raw["options"] = [{"id": c.get("identifier"), "text": _text(c)} for c in choices]
    body = next(iter(_find(root, "itemBody")), None)
    if body is None:
        raise where.error("itemBody", "missing")
    images = [el for el in body.iter() if _local(el.tag)[1] == "img"]
    marked = [d for d in _find(body, "div") if d.get("class") == "proficio-markdown"]
    if marked:
        pre = _find(marked[0], "pre")
        stem = _text(pre[0]) if pre else _text(marked[0])
    else:
        def skip(el: ET.Element) -> str | None:
            if el is inter:
                return BLANK if kind == "textEntryInteraction" else ""
            if _local(el.tag)[1] in ("img", "object", "rubricBlock", "modalFeedback"):
                return ""
            return None
        stem = _markdown(body, skip)
        prompts = [_markdown(p, skip) for p in inter if _local(p.tag)[1] == "prompt"]
        stem = "\n\n".join(p for p in [stem, *prompts] if p)
    feedback = _find(root, "modalFeedback")
    refs: list[dict[str, str]] = []
    files: list[MediaFile] = []
    for img in images:
        src, alt = img.get("src") or "", (img.get("alt") or "").strip()
        base_name = posixpath.basename(src)
        if not alt:
            raise Unsupported(f"{name}: item {iid!r}: image {src!r} has no alt text (what it "
                              f"shows, for screen readers); add it and import again")
        if media is None:
            raise Unsupported(f"{name}: item {iid!r}: image {src!r} cannot be read")
        if not MEDIA_NAME.match(base_name):
            base_name = re.sub(r"[^A-Za-z0-9_.\-]", "_", base_name).lstrip("._-")[:100] or "image"
        if base_name in {r["name"] for r in refs}:
            raise Unsupported(f"{name}: item {iid!r}: two images named {base_name!r}")
        files.append(MediaFile(str(iid), base_name, media(src, f"item {iid!r}")))
        refs.append({"name": base_name, "alt": alt})
    raw.update(stem=stem, explanation=_text(feedback[0]) if feedback else "")
    if refs:
        raw["media"] = refs
    raw.update(meta)
    item, _ = validate_item(where, raw, None)
    return item, tuple(files)


def _positive(value: str) -> bool:
    try:
        return float(value) > 0
    except ValueError:
        return False


def _manifest_meta(name: str, root: ET.Element, default_skill: str | None
                   ) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for res in _find(root, "resource"):
        rtype = res.get("type") or ""
        if not rtype.startswith(("imsqti_item_xmlv2p", "imsqti_item_xmlv3p")):
            continue
        href = res.get("href")
        if not href:
            raise FormatError(f"{name}: resource {res.get('identifier')!r}: field 'href': missing")
        meta: dict[str, Any] = {}
        # resource > metadata > proficio:item (children only: a scan of each resource's
        # whole subtree would be quadratic in nested resources)
        mds = [md for md in res if _local(md.tag)[1] == "metadata"]
        ext = [el for md in mds for el in md if _local(el.tag) == (PROFICIO_NS, "item")]
        if ext:
            e = ext[0]
            meta["skill"] = e.get("skill")
            for k in ("status", "model", "author", "scoring"):
                if e.get(k) is not None:
                    meta[k] = e.get(k)
            if e.get("difficulty") is not None:
                d = e.get("difficulty", "")
                meta["difficulty"] = int(d) if d.isdigit() else d
            meta["tags"] = [t.text or "" for t in e if _local(t.tag)[1] == "tag"]
            meta["enemies"] = [t.text or "" for t in e if _local(t.tag)[1] == "enemy"]
        elif default_skill is not None:
            meta["skill"] = default_skill
        else:
            keyword = _lom_keyword(mds)
            if keyword is not None:
                meta["skill"] = keyword
                meta["_implied_skill"] = True
        out.append((href, meta))
    return out


def _lom_keyword(metadata: list[ET.Element]) -> str | None:
    """The first LOM ``general/keyword`` of a resource as a skill id (``Reading Skills`` →
    ``reading_skills``), None when there is none."""
    for md in metadata:
        for kw in md.iter():
            if _local(kw.tag)[1] != "keyword":
                continue
            text = " ".join(_text(kw).split()).lower()
            slug = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
            if slug and not slug[0].isalpha():
                slug = "s_" + slug
            if SKILL_ID.match(slug[:64]):
                return slug[:64]
    return None


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


def _prefixed(prefix: str, iid: str, where: str) -> str:
    new = f"{prefix}{iid}"
    if not EXTERNAL_ID.match(new):
        raise FormatError(f"{where}: field 'id': with the prefix {prefix!r} the id {new!r} is "
                          f"not 1-64 letters, digits, '_', '-', '.'")
    return new


def read_qti_zip(source: str | Path | io.BufferedIOBase,
                 default_skill: str | None = None, *, strict: bool = False,
                 prefix: str | None = None) -> BankDocument:
    """Read a QTI content package; ``default_skill`` applies to items without Proficio metadata.

    Items Proficio cannot deliver are skipped and listed in `BankDocument.skipped` (file,
    identifier, reason); with ``strict`` the first one refuses the package. ``prefix`` is put
    before every item id (and enemy id): a package whose ids collide with the bank's imports as
    new items. Everything is validated before anything is returned; errors are `FormatError`
    naming the archive, the member file and the field.

    The work is bounded by the archive's size: the manifest may name each file once (a
    repeated ``href`` is refused before any item is parsed), and the members read — manifest,
    items, their images, ``skills.json``, ``parameters.csv`` — may hold at most
    `archive_budget` bytes uncompressed (20 × the archive, at least 256 KiB), checked on the
    sizes the archive declares before reading and enforced while decompressing. Parsing is
    linear in the bytes read, so a 10 KB upload parses at most 256 KiB of XML.
    """
    from item_bank.media import MediaError, content_type  # media imports the ORM models

    zname = str(source) if isinstance(source, str | Path) else getattr(source, "name", "<zip>")
    if prefix is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}$", prefix):
        raise FormatError(f"{zname}: field 'prefix': 1-32 letters, digits, '_', '-', '.', got "
                          f"{prefix!r}")
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
                                  f"which skill the item measures; pass a default skill "
                                  f"(--skill)")
        extras = [m for m in ("skills.json", "parameters.csv") if m in sizes]
        if spent[0] + sum(check_size(m) for m in [*seen, *extras]) > budget:
            raise _over_budget(zname, budget)
        items: list[ItemContent] = []
        rows: list[str] = []
        files: list[MediaFile] = []
        skipped: list[str] = []
        implied: set[str] = set()
        for href, meta in entries:
            meta = dict(meta)
            implied_skill = meta.pop("_implied_skill", False)

            def image(src: str, who: str, href: str = href) -> bytes:
                if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", src) or src.startswith("/"):
                    raise Unsupported(f"{zname}:{href}: {who}: image {src!r} is not in the "
                                      f"package (external images are not fetched)")
                member = posixpath.normpath(posixpath.join(posixpath.dirname(href), src))
                if member.startswith("../") or member not in sizes:
                    raise Unsupported(f"{zname}:{href}: {who}: image {src!r} is not in the "
                                      f"package")
                data = read(member)
                try:
                    content_type(member, data)
                except MediaError as exc:
                    raise Unsupported(f"{zname}:{href}: {who}: {exc}") from None
                return data

            try:
                item, item_files = parse_item_xml(f"{zname}:{href}", read(href), meta, image)
            except Unsupported as exc:
                if strict:
                    raise FormatError(f"{exc} (strict import: nothing was imported)") from None
                skipped.append(str(exc).removeprefix(f"{zname}:"))
                continue
            if prefix is not None:
                where = f"{zname}:{href}"
                new_id = _prefixed(prefix, item.external_id, where)
                item = replace(item, external_id=new_id, enemies=tuple(
                    _prefixed(prefix, e, where) for e in item.enemies))
                item_files = tuple(replace(f, item_id=new_id) for f in item_files)
            if implied_skill:
                implied.add(item.skill)
            items.append(item)
            rows.append(f"item file {href}")
            files.extend(item_files)
        if not items:
            raise FormatError(f"{zname}: no item could be imported: " + "; ".join(skipped))
        _check_collisions(zname, items, rows)
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
        params: tuple[ParameterRecord, ...] = ()
        if "parameters.csv" in sizes:
            try:
                text = read("parameters.csv").decode("utf-8-sig")
            except UnicodeDecodeError:
                raise FormatError(f"{zname}:parameters.csv: not UTF-8 text") from None
            stream = io.StringIO(text)
            stream.name = f"{zname}:parameters.csv"
            table = read_items_csv(stream)
            params = records_from_table(table, f"{zname}:parameters.csv")
            kept = {it.external_id for it in items}
            if prefix is not None:
                params = tuple(replace(r, params=replace(
                    r.params, item_id=_prefixed(prefix, r.params.item_id, zname)))
                    for r in params)
            params = tuple(r for r in params if r.params.item_id in kept)
    if default_skill is not None:
        implied.add(default_skill)
    defined = {s.slug for s in skills}
    return BankDocument(zname, skills, tuple(items), params, name, tuple(files),
                        tuple(skipped), tuple(sorted(implied - defined)))


def _check_collisions(zname: str, items: Sequence[ItemContent], rows: Sequence[str]) -> None:
    """Two files with one identifier: refused, naming both files and how to import both."""
    first: dict[str, str] = {}
    for item, row in zip(items, rows, strict=True):
        if item.external_id in first:
            raise FormatError(
                f"{zname}: {row} and {first[item.external_id]} both have the identifier "
                f"{item.external_id!r} (field 'id'); give one of them another identifier, or "
                f"import them from separate packages with --prefix so that their ids differ")
        first[item.external_id] = row
    check_unique_ids(zname, items, rows)


def _over_budget(zname: str, budget: int) -> FormatError:
    return FormatError(f"{zname}: the files it lists hold more than {budget} bytes uncompressed; "
                       f"an archive may expand to at most {MAX_EXPANSION} times its size "
                       f"(at least {MIN_PARSE_BUDGET} bytes)")
