"""Render the app's OpenAPI document (``/api/openapi.json``) into docs/api.md.

Usage: ``.venv/bin/python docs/render_api.py`` (rewrites docs/api.md) or
``.venv/bin/python docs/render_api.py --check`` (exit 1 when docs/api.md is out of date; the
test suite runs the same comparison). The worked ``curl`` example is copied from the section
"The same test through the API" of docs/getting-started.md, whose commands the test suite runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
TARGET = DOCS / "api.md"
EXAMPLE_SECTION = "## The same test through the API"
EXAMPLE_END = "<!-- end of the API example"
METHODS = ("get", "post", "put", "patch", "delete")


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document exactly as the app serves it (no database needed to build it), plus
    ``x-proficio-roles``: the staff roles each staff operation requires (from the app's
    ``staff_required`` decorators)."""
    sys.path.insert(0, str(DOCS.parent))
    os.environ.setdefault("PROFICIO_INSTANCE", tempfile.mkdtemp(prefix="proficio-docs-"))
    from web.app import create_app

    app = create_app({"DATABASE_URL": "sqlite://", "PROFICIO_CHECK_SCHEMA": False,
                      "TESTING": True})
    response = app.test_client().get("/api/openapi.json")
    if response.status_code != 200:
        raise RuntimeError(f"/api/openapi.json answered {response.status_code}")
    doc = response.get_json()
    for rule in app.url_map.iter_rules():
        roles = getattr(app.view_functions[rule.endpoint], "required_roles", None)
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            op = doc["paths"].get(path, {}).get(method.lower())
            if op is not None and roles is not None:
                op["x-proficio-roles"] = list(roles)
    return doc


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _type(schema: dict[str, Any]) -> str:
    if len(schema.get("allOf", [])) == 1:  # a nullable reference
        return _type(schema["allOf"][0])
    if "anyOf" in schema:  # apispec's nullable nested schema: [{nullable object}, {$ref}]
        kinds = [_type(s) for s in schema["anyOf"] if not s.get("nullable")]
        nullable = any(s.get("nullable") for s in schema["anyOf"])
        return " or ".join(kinds) + (", nullable" if nullable else "")
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f"[{name}](#schema-{name.lower()})"
    if schema.get("type") == "array":
        return f"array of {_type(schema.get('items', {}))}"
    kind = schema.get("type", "any")
    if "format" in schema:
        kind += f" ({schema['format']})"
    if "enum" in schema:
        kind += " — one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    return kind


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _schema_table(schema: dict[str, Any]) -> list[str]:
    props = schema.get("properties", {})
    if not props:
        return ["(no fields)", ""]
    required = set(schema.get("required", []))
    rows = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, prop in props.items():
        kind = _type(prop)
        if prop.get("nullable"):
            kind += ", nullable"
        if prop.get("readOnly"):
            kind += ", read-only"
        limits = []
        for key, label in (("minLength", "min length"), ("maxLength", "max length"),
                           ("minimum", "min"), ("maximum", "max")):
            if key in prop:
                limits.append(f"{label} {prop[key]}")
        description = _cell(prop.get("description"))
        if limits:
            description = (description + " " if description else "") + f"({', '.join(limits)})"
        rows.append(f"| `{name}` | {kind} | {'yes' if name in required else 'no'} | "
                    f"{description} |")
    return [*rows, ""]


def _auth(path: str, method: str, op: dict[str, Any]) -> str:
    roles = op.get("x-proficio-roles")
    if roles is not None:
        who = " or ".join(roles) if roles else "any staff role"
        csrf = "; also the `X-CSRFToken` header" if method != "get" else ""
        return f"staff login ({who}; admins always){csrf}"
    if path == "/api/v1/sessions":
        return "none (the invitation token is in the body)"
    return "`Authorization: Bearer <session token>`"


def _response_line(code: str, resp: dict[str, Any], components: dict[str, Any]) -> str:
    if "$ref" in resp:
        resp = components.get("responses", {}).get(_ref_name(resp["$ref"]), {})
    body = ""
    content = resp.get("content", {})
    for media, spec in content.items():
        body = f" — `{media}` {_type(spec.get('schema', {}))}"
        break
    return f"- **{code}** {_cell(resp.get('description'))}{body}"


def _example_section(page: Path) -> list[str]:
    text = page.read_text()
    start = text.index(EXAMPLE_SECTION)
    end = text.find(EXAMPLE_END, start)
    body = text[start + len(EXAMPLE_SECTION):end if end != -1 else None].strip("\n")
    body = re.sub(r"\(api\.md\)", "(#endpoints)", body)
    return body.splitlines()


def render(doc: dict[str, Any], getting_started: Path | None = None) -> str:
    components = doc.get("components", {})
    info = doc["info"]
    out = [
        "# API guide",
        "",
        "<!-- Generated by docs/render_api.py from /api/openapi.json; do not edit by hand. -->",
        "",
        f"{info['title']} {info['version']}, OpenAPI {doc['openapi']}. The machine-readable "
        "document is served by every Proficio at `/api/openapi.json`; this page is generated "
        "from it (`python docs/render_api.py`), and a test fails when the two differ.",
        "",
        "All endpoints live under `/api/v1`, take and return JSON, and answer errors as the "
        "[Error](#schema-error) object (`code`, `status`, `message`, and `errors` for field "
        "validation). Authentication:",
        "",
        "- **Candidates**: `POST /api/v1/sessions` with the invitation token returns a session "
        "id and a session token; every other candidate call carries "
        "`Authorization: Bearer <session token>`. Starting again (same invitation) resumes the "
        "session at the same question and issues a new token (the old one stops working). "
        "Candidate responses never contain answer keys, parameters or scores.",
        "- **Staff**: sign in through `/login` (a cookie session); writes (POST) also need the "
        "`X-CSRFToken` header with the token of a page of the app. Rows of other organisations "
        "answer 404.",
        "- Rate limits answer 429 with `Retry-After`.",
        "",
        "## Worked example: the candidate flow with curl",
        "",
        "With the demo served as in the [getting-started guide](getting-started.md) (port "
        "5000, `DATABASE_URL` pointing at the demo database); the test suite runs these very "
        "commands against a real server.",
        "",
    ]
    if getting_started is not None:
        out += [*_example_section(getting_started), ""]
    out += ["## Endpoints", ""]
    tag_text = {t["name"]: t.get("description", "") for t in doc.get("tags", [])}
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, ops in doc["paths"].items():
        for method in METHODS:
            if method in ops:
                op = ops[method]
                by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((path, method, op))
    for tag, ops in by_tag.items():
        out += [f"### {tag}", "", _cell(tag_text.get(tag)), ""]
        for path, method, op in ops:
            out += [f"#### `{method.upper()} {path}`", ""]
            if op.get("summary"):
                out += [_cell(op["summary"]), ""]
            if op.get("description"):
                out += [op["description"].strip(), ""]
            out += [f"Authentication: {_auth(path, method, op)}.", ""]
            params = [*doc["paths"][path].get("parameters", []), *op.get("parameters", [])]
            if params:
                out += ["| parameter | in | type | required | description |",
                        "|---|---|---|---|---|"]
                for p in params:
                    out.append(f"| `{p['name']}` | {p['in']} | {_type(p.get('schema', {}))} | "
                               f"{'yes' if p.get('required') else 'no'} | "
                               f"{_cell(p.get('description'))} |")
                out.append("")
            body = op.get("requestBody")
            if body:
                for media, spec in body.get("content", {}).items():
                    out += [f"Request body (`{media}`): {_type(spec.get('schema', {}))}", ""]
            out += ["Responses:", ""]
            responses = op.get("responses", {})
            for code in sorted(responses, key=lambda c: (c == "default", c)):
                out.append(_response_line(code, responses[code], components))
            out.append("")
    out += ["## Schemas", ""]
    for name, schema in components.get("schemas", {}).items():
        out += [f'<a id="schema-{name.lower()}"></a>', "", f"### {name}", ""]
        if schema.get("description"):
            out += [_cell(schema["description"]), ""]
        out += _schema_table(schema)
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is stale")
    parser.add_argument("--dump-json", type=Path, help="also write the OpenAPI JSON here")
    args = parser.parse_args(argv)
    doc = openapi_document()
    text = render(doc, DOCS / "getting-started.md")
    if args.dump_json:
        args.dump_json.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    if args.check:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != text:
            print("docs/api.md is out of date: run python docs/render_api.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
