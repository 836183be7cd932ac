"""docs/api.md is what docs/render_api.py makes of the app's live OpenAPI document."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _renderer():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("render_api", ROOT / "docs" / "render_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_md_is_up_to_date_with_the_openapi_document() -> None:
    render_api = _renderer()
    doc = render_api.openapi_document()
    expected = render_api.render(doc, ROOT / "docs" / "getting-started.md")
    current = (ROOT / "docs" / "api.md").read_text()
    assert current == expected, "docs/api.md is stale: run .venv/bin/python docs/render_api.py"


def test_every_operation_and_schema_is_documented() -> None:
    render_api = _renderer()
    doc = render_api.openapi_document()
    text = (ROOT / "docs" / "api.md").read_text()
    for path, ops in doc["paths"].items():
        for method in render_api.METHODS:
            if method in ops:
                assert f"#### `{method.upper()} {path}`" in text
    for name in doc["components"]["schemas"]:
        assert f'<a id="schema-{name.lower()}"></a>' in text
    # the candidate flow of DESIGN.md is there, with its bearer authentication
    for line in ("#### `POST /api/v1/sessions`", "#### `GET /api/v1/sessions/{session_id}`",
                 "#### `POST /api/v1/sessions/{session_id}/responses`",
                 "Authentication: `Authorization: Bearer <session token>`."):
        assert line in text
    assert "curl -s -X POST http://127.0.0.1:5000/api/v1/sessions" in text
