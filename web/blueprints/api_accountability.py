"""Accountable results in the JSON API (issue 21): session replay (``proficio-replay/1``),
human review of a result, the candidate explanation, a candidate's data export (right of
access) and erasure, and the organisation's privacy settings. Every endpoint is scoped to the
caller's organisation: another organisation's session or candidate is a 404."""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import abort, request
from flask_login import current_user
from flask_smorest import Api
from flask_smorest import Blueprint as ApiBlueprint
from marshmallow import Schema, fields, validate

from item_bank.accountability_models import REVIEW_STATUSES
from web.blueprints.api import ReviewSchema
from web.blueprints.api_contract import errors
from web.db import get_db
from web.security import organisation_id, staff_required
from web.services import oversight, privacy, staff
from web.services.replay import SCHEMA, session_replay

blp = ApiBlueprint("accountability_api", __name__, url_prefix="/api/v1",
                   description="Accountable results: replay, review, explanation, candidates' "
                               "data (staff login required).")
MAX_PUBLIC_ID = 64


class ReplaySchema(Schema):
    schema = fields.String(metadata={"description": f"always {SCHEMA!r}"})
    session = fields.Dict(metadata={"description": "id, candidate_public_id, assessment, "
                                                   "status, started_at, finished_at, seed"})
    strategies = fields.Dict(keys=fields.String(), values=fields.String())
    items = fields.List(fields.Dict(), metadata={
        "description": "served items in order: item_id, skill, pretest, parameter_version, "
                       "answer, score, after {theta, se, stored_theta, stored_se}, selection "
                       "{rule, theta, criterion, rank, n_candidates, exposure_control, "
                       "exposure_decision, content_balancing}, reproduced, replayed_item "
                       "(docs/replay.md)"})
    skills = fields.List(fields.Dict())
    overall = fields.Dict(allow_none=True)
    stop_reason = fields.String(allow_none=True)
    stored_stop_reason = fields.String(allow_none=True)
    verification = fields.Dict(metadata={
        "description": "tolerance, max_difference, rescoring_reproduced, items_reproduced, "
                       "first_divergence, log_matches_state"})


class ReviewInSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(REVIEW_STATUSES))
    reason = fields.String(required=True,
                           validate=validate.Length(min=1, max=oversight.MAX_REASON))


class SkillExplanationSchema(Schema):
    name = fields.String()
    description = fields.String()
    measured = fields.Boolean()
    n_items = fields.Integer()
    score = fields.Float(allow_none=True)
    lower90 = fields.Float(allow_none=True)
    upper90 = fields.Float(allow_none=True)
    precision = fields.String(metadata={"description": "precise, moderate, rough or none"})
    decision = fields.String(allow_none=True)


class ExplanationSchema(Schema):
    assessment = fields.String()
    status = fields.String()
    n_questions = fields.Integer()
    stop = fields.String(metadata={"description": "why the test ended (stop reason code)"})
    overall = fields.List(fields.Float(), allow_none=True,
                          metadata={"description": "[score, lower90, upper90]"})
    skills = fields.List(fields.Nested(SkillExplanationSchema))
    cut_score = fields.Float(allow_none=True)


class CandidateExportSchema(Schema):
    schema = fields.String(metadata={"description": "'proficio-candidate-export/1'"})
    candidate = fields.Dict()
    erasure = fields.Dict(allow_none=True)
    invitations = fields.List(fields.Dict())
    sessions = fields.List(fields.Dict())
    withheld = fields.String()


class PrivacySchema(Schema):
    retention_days = fields.Integer(allow_none=True, validate=validate.Range(
        1, privacy.MAX_RETENTION_DAYS), metadata={
        "description": "days without activity before a candidate's personal data is erased "
                       "(null: kept until erased on request)"})
    explain_to_candidates = fields.Boolean(required=True)


@blp.route("/sessions/<int:session_id>/replay", methods=["GET"])
@blp.response(200, ReplaySchema)
@errors(blp, 401, 403, 404)
@staff_required("psychometrician")
def get_replay(session_id: int):
    """A session's replay (schema ``proficio-replay/1``, docs/replay.md): served items with
    parameter versions, answers, scores, estimates, selection reasons, and the re-scoring check."""
    try:
        return session_replay(organisation_id(), session_id).to_json()
    except staff.NotFound:
        abort(404, description="no such session")


@blp.route("/sessions/<int:session_id>/review", methods=["POST"])
@blp.doc(requestBody={"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/ReviewIn"}}}})
@blp.response(201, ReviewSchema)
@errors(blp, 401, 403, 404, 409, 422)
@staff_required("recruiter")
def post_review(session_id: int):
    """Mark a finished result ``reviewed`` or ``set_aside`` with a reason (audit-logged).

    The body is checked after the session's organisation, so a caller of another organisation
    gets 404 whatever it sends; a bad field is a 422 naming it."""
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    status, reason = body.get("status"), body.get("reason")
    try:
        return oversight.review_result(organisation_id(), session_id, int(current_user.id),
                                       status if isinstance(status, str) else "",
                                       reason if isinstance(reason, str) else "")
    except staff.NotFound:
        abort(404, description="no such result")
    except oversight.NotFinished as exc:
        abort(409, description=str(exc))
    except ValueError as exc:
        abort(422, description=str(exc))


@blp.route("/sessions/<int:session_id>/explanation", methods=["GET"])
@blp.response(200, ExplanationSchema)
@errors(blp, 401, 403, 404)
@staff_required("recruiter")
def get_explanation(session_id: int):
    """What the candidate may be told about a finished result (no items, answers or keys)."""
    try:
        return dataclasses.asdict(oversight.explanation(organisation_id(), session_id))
    except staff.NotFound:
        abort(404, description="no finished result")


@blp.route("/candidates/<public_id>/export", methods=["GET"])
@blp.response(200, CandidateExportSchema)
@errors(blp, 401, 403, 404)
@staff_required("recruiter")
def export_candidate(public_id: str):
    """Everything stored about one candidate (right of access; ``proficio-candidate-export/1``)."""
    if len(public_id) > MAX_PUBLIC_ID:
        abort(404, description="no such candidate")
    try:
        return privacy.candidate_export(organisation_id(), public_id)
    except staff.NotFound:
        abort(404, description="no such candidate")


@blp.route("/candidates/<public_id>/erase", methods=["POST"])
@blp.response(204)
@errors(blp, 401, 403, 404)
@staff_required("recruiter")
def erase_candidate(public_id: str):
    """Erase one candidate's personal data (audit-logged; responses and results stay,
    pseudonymous). Idempotent."""
    if len(public_id) > MAX_PUBLIC_ID:
        abort(404, description="no such candidate")
    try:
        privacy.erase_on_request(organisation_id(), public_id, int(current_user.id))
    except staff.NotFound:
        abort(404, description="no such candidate")


@blp.route("/privacy", methods=["GET"])
@blp.response(200, PrivacySchema)
@errors(blp, 401, 403)
@staff_required("admin")
def get_privacy():
    """The organisation's retention period and candidate-explanation setting."""
    return privacy.settings(get_db(), organisation_id())


@blp.route("/privacy", methods=["PUT"])
@blp.response(200, PrivacySchema)
@errors(blp, 400, 401, 403, 422)
@staff_required("admin")
@blp.arguments(PrivacySchema)
def put_privacy(body: dict[str, Any]):
    """Change the organisation's privacy settings (audit-logged)."""
    return privacy.update_settings(organisation_id(), int(current_user.id),
                                   body.get("retention_days"), body["explain_to_candidates"])


def register(api: Api) -> None:
    api.spec.components.schema("ReviewIn", schema=ReviewInSchema)
    api.register_blueprint(blp)
