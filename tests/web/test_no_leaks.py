"""Everything a candidate's client receives during a whole test, scanned for secrets.

No answer key, explanation, item parameter or ability estimate may reach the candidate: not in
the pages, not in the API's JSON.
"""

from __future__ import annotations

import json
import re

from flask.testing import FlaskClient

from tests.web.conftest import Site, csrf_of

FORBIDDEN_JSON_KEYS = {"key", "correct", "scoring", "explanation", "a", "b", "c", "d", "theta",
                       "se", "score", "thresholds", "difficulty", "difficulty_level",
                       "parameters", "tags", "percentile", "estimate", "information"}


def _json_keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | set().union(*(_json_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_json_keys(v) for v in value)) if value else set()
    return set()


def _secrets(site: Site, item_ids: set[str]) -> dict[str, list[str]]:
    """Per served item: its explanation, and its current parameters printed several ways."""
    out: dict[str, list[str]] = {}
    for iid, explanation, a, b in site.sql(
            "SELECT i.external_id, i.explanation, v.a, v.b FROM items i JOIN "
            "item_parameter_versions v ON v.item_id = i.id AND v.is_current"):
        if iid in item_ids:
            out[iid] = [explanation] + [f"{x:.{k}f}" for x in (a, b) for k in (3, 4, 6)] \
                + [repr(a), repr(b)]
    return out


def test_candidate_receives_no_key_explanation_parameter_or_theta(site: Site,
                                                                  client: FlaskClient) -> None:
    bodies: list[bytes] = []
    served: set[str] = set()
    (token,) = site.invite()
    page = client.get(f"/t/{token}")
    bodies.append(page.data)
    csrf = csrf_of(page.data)
    bodies.append(client.post(f"/t/{token}/start", data={"csrf_token": csrf}).data)
    while True:
        q = client.get(f"/t/{token}/question", follow_redirects=True)
        bodies.append(q.data)
        match = re.search(rb'name="item_id" value="([^"]+)"', q.data)
        if match is None:
            break
        item = match.group(1).decode()
        served.add(item)
        option = re.search(rb'name="answer" id="opt-[^"]+" value="([^"]+)"', q.data).group(1)
        r = client.post(f"/t/{token}/answer", data={"csrf_token": csrf, "item_id": item,
                                                    "answer": option.decode()})
        bodies.append(r.data)
    # the API path of another candidate
    (api_token,) = site.invite()
    r = client.post("/api/v1/sessions", json={"invitation": api_token})
    payloads = [r.json]
    sid, bearer = r.json["session_id"], r.json["token"]
    auth = {"Authorization": f"Bearer {bearer}"}
    state = r.json
    while state["status"] == "in_progress":
        served.add(state["pending_item"]["item_id"])
        it = state["pending_item"]
        state = client.post(f"/api/v1/sessions/{sid}/responses", headers=auth,
                            json={"item_id": it["item_id"],
                                  "answer": it["options"][1]["id"]}).json
        payloads.append(state)
        payloads.append(client.get(f"/api/v1/sessions/{sid}", headers=auth).json)
    assert len(served) >= 24  # two sessions of at least 16 questions, mostly different ones
    for payload in payloads:
        leaked = _json_keys(payload) & FORBIDDEN_JSON_KEYS
        assert not leaked, f"candidate JSON carries {leaked}"
        if payload.get("pending_item"):
            assert set(payload["pending_item"]) == {"item_id", "stem", "options",
                                                        "interaction", "media"}
            assert all(set(o) == {"id", "text"} for o in payload["pending_item"]["options"])
        bodies.append(json.dumps(payload).encode())
    secrets = _secrets(site, served)
    text = b"\n".join(bodies).decode()
    for iid, values in secrets.items():
        for value in values:
            if value and len(value) >= 5:
                assert value not in text, f"{iid}: {value!r} reached the candidate"
    # the words are looked for outside the questions' own content: a question may be about
    # latency percentiles; its stem and options are what the candidate must see
    chrome = re.sub(r"<fieldset.*?</fieldset>", "", text, flags=re.S)
    for payload in payloads:
        if payload.get("pending_item"):
            it = payload["pending_item"]
            for value in [it["stem"], *(o["text"] for o in it["options"])]:
                chrome = chrome.replace(json.dumps(value)[1:-1], "")
    for word in ("theta", "θ", "posterior", "explanation", "se_", "percentile"):
        assert word not in chrome.lower(), f"{word!r} reached the candidate"
