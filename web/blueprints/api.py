"""The JSON API under ``/api/v1``, validated and documented by flask-smorest (marshmallow +
apispec); the OpenAPI document is served at ``/api/openapi.json``.

Candidate endpoints authenticate with ``Authorization: Bearer <session token>`` and are exempt
from CSRF (no cookies involved). Staff endpoints use the staff login session and, for writes,
the ``X-CSRFToken`` header.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, abort, current_app, jsonify, request
from flask_login import current_user
from flask_smorest import Api
from flask_smorest import Blueprint as ApiBlueprint
from marshmallow import Schema, ValidationError, fields, validate

from web.blueprints.api_contract import UtcDateTime, errors
from web.converters import MAX_ID
from web.rendering import image_response
from web.security import (
    ANSWER_LIMIT,
    START_LIMIT,
    candidate_key,
    csrf,
    limiter,
    organisation_id,
    staff_required,
)
from web.services import candidate as flow
from web.services import forensics, reports, staff

api = Api()
sessions = ApiBlueprint("sessions", __name__, url_prefix="/api/v1/sessions",
                        description="The candidate flow: start, status, answers.")
staff_api = ApiBlueprint("staff", __name__, url_prefix="/api/v1",
                         description="Invitations and reports (staff login required).")

TOKEN_FIELD = fields.String(required=True, validate=validate.Length(min=16, max=128))


class OptionSchema(Schema):
    id = fields.String(required=True)
    text = fields.String(required=True, metadata={"description": "Markdown"})


class MediaSchema(Schema):
    name = fields.String(required=True)
    alt = fields.String(required=True, metadata={"description": "Alt text of the image"})
    url = fields.String(required=True, metadata={
        "description": "GET with the session's bearer token"})


class PendingItemSchema(Schema):
    item_id = fields.String(required=True)
    stem = fields.String(required=True, metadata={"description": "Markdown"})
    interaction = fields.String(required=True, metadata={
        "description": "How the item is answered (its response type): single (answer: one "
                       "option id), multiple (a list of the chosen option ids), ordering (a list "
                       "of every option id in order), numeric (the number as a string) or "
                       "text (the typed answer)"})
    options = fields.List(fields.Nested(OptionSchema), required=True, metadata={
        "description": "Empty for numeric and text entry"})
    media = fields.List(fields.Nested(MediaSchema), required=True)


class SessionSchema(Schema):
    session_id = fields.Integer(required=True)
    token = fields.String(allow_none=True, metadata={
        "description": "Bearer token for the candidate calls; returned by POST /sessions only"})
    status = fields.String(required=True, metadata={
        "description": "in_progress, completed, timed_out, abandoned or expired"})
    position = fields.Integer(required=True, metadata={
        "description": "Number of the pending question (answered + 1)"})
    answered = fields.Integer(required=True)
    max_items = fields.Integer(required=True)
    deadline = UtcDateTime(allow_none=True)
    remaining_seconds = fields.Integer(allow_none=True)
    pending_item = fields.Nested(PendingItemSchema, allow_none=True)


class StartSchema(Schema):
    invitation = TOKEN_FIELD


MAX_ITEM_ID = 64


def answer_problem(value: Any) -> str | None:
    """Why ``value`` is not an answer (None when it is): an option id or typed answer (a string
    of 1-200 characters) or a list of 1-20 option ids (multiple response, ordering). The one
    check behind `AnswerField` and the hot path's `_answer_body`."""
    if isinstance(value, str):
        return None if 1 <= len(value) <= 200 else "expected 1-200 characters"
    if isinstance(value, list):
        return None if 1 <= len(value) <= 20 and all(
            isinstance(v, str) and 1 <= len(v) <= MAX_ITEM_ID for v in value) \
            else "expected a list of 1-20 option ids"
    return ("expected an option id, a list of option ids (multiple response, ordering) or the "
            "typed answer as a string")


class AnswerField(fields.Field):
    """An answer as `answer_problem` accepts it."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        problem = answer_problem(value)
        if problem is not None:
            raise ValidationError(problem)
        return value

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


class AnswerSchema(Schema):
    item_id = fields.String(required=True, validate=validate.Length(min=1, max=MAX_ITEM_ID))
    answer = AnswerField(required=True, metadata={
        "description": "Depends on the item's interaction: an option id (single), a list "
                       "of option ids (multiple: the chosen ones; ordering: all, in order), a "
                       "number as a string (numeric) or a text (text)",
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})


def _answer_body(data: Any) -> dict[str, Any] | None:
    """The body `AnswerSchema` loads from ``data`` when ``data`` is plainly well-formed (exactly
    its two fields, of the right types and lengths); None: anything else, which the schema
    itself then validates (and refuses with its 422 naming the field)."""
    if type(data) is not dict or len(data) != 2:
        return None
    item_id, answer = data.get("item_id"), data.get("answer")
    if type(item_id) is not str or not 1 <= len(item_id) <= MAX_ITEM_ID \
            or type(answer) not in (str, list) or answer_problem(answer) is not None:
        return None
    return {"item_id": item_id, "answer": answer}


def _json_arguments(schema: type[Schema], quick: Callable[[Any], dict[str, Any] | None]
                    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``sessions.arguments(schema)`` (the same OpenAPI document, the same errors) with a fast
    path for the answer hot path: a JSON body that ``quick`` accepts is passed on without
    webargs/marshmallow; any other body goes through the schema as before."""
    parse = sessions.arguments(schema)

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        slow = parse(view)

        @functools.wraps(slow)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            body = quick(request.get_json(silent=True)) if request.is_json else None
            if body is None:
                return slow(*args, **kwargs)
            return view(*args, body, **kwargs)
        return wrapper
    return decorator


def _session_json(view: flow.SessionView) -> dict[str, Any]:
    pending = None
    if view.pending is not None:
        p = view.pending
        pending = {"item_id": p.item_id, "stem": p.stem, "interaction": p.response_type,
                   "options": [{"id": i, "text": t} for i, t in p.options],
                   "media": [{"name": n, "alt": a,
                              "url": f"/api/v1/sessions/{view.session_id}/media/{p.item_id}/{n}"}
                             for n, a in p.media]}
    return {"session_id": view.session_id, "token": view.token, "status": view.status,
            "position": view.position, "answered": view.answered, "max_items": view.max_items,
            "deadline": view.deadline, "remaining_seconds": view.remaining_seconds(),
            "pending_item": pending}


_DEADLINE = SessionSchema._declared_fields["deadline"]


def _session_response(view: flow.SessionView, status: int = 200) -> Response:
    """The `SessionSchema` body of ``view``, built directly: every field is already of its
    JSON type except the deadline, which the schema's own field formats (so the candidate's
    hot path skips a nested schema dump; a test checks the body equals the schema's dump)."""
    body = _session_json(view)
    body["deadline"] = _DEADLINE.serialize("deadline", body)
    response = jsonify(body)
    response.status_code = status
    return response


def _fail(exc: flow.CandidateError) -> None:
    abort(exc.status, description=str(exc))


def _bearer_token() -> str:
    """The candidate's session token; 401 when the header is missing or malformed."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or len(header) > 200 or not header[7:].strip():
        abort(401, description="missing header 'Authorization: Bearer <session token>'")
    return header[7:].strip()


@sessions.route("", methods=["POST"])
@limiter.limit(START_LIMIT)
@sessions.arguments(StartSchema)
@sessions.response(201, SessionSchema)
@errors(sessions, 400, 404, 410, 413, 429)
def start_session(body: dict[str, Any]):
    """Start the invitation's session, or resume it (a new token replaces the old one)."""
    try:
        return _session_response(flow.start_or_resume(body["invitation"], rotate_token=True),
                                 201)
    except flow.CandidateError as exc:
        _fail(exc)


@sessions.route("/<int:session_id>", methods=["GET"])
@sessions.response(200, SessionSchema)
@errors(sessions, 401, 404)
def get_session(session_id: int):
    """Status of the session and its pending item."""
    token = _bearer_token()
    try:
        return _session_response(flow.session_status(session_id, token))
    except flow.CandidateError as exc:
        _fail(exc)


@sessions.route("/<int:session_id>/responses", methods=["POST"])
@limiter.limit(ANSWER_LIMIT, key_func=candidate_key)
@_json_arguments(AnswerSchema, _answer_body)
@sessions.response(200, SessionSchema)
@errors(sessions, 400, 401, 404, 409, 413, 429)
def post_response(body: dict[str, Any], session_id: int):
    """Record the answer to the pending item; returns the next item or the finished status.

    Sending the same answer again returns the current status without recording it twice.
    """
    token = _bearer_token()
    try:
        return _session_response(flow.submit_answer(session_id, body["item_id"],
                                                    body["answer"], token=token))
    except flow.CandidateError as exc:
        _fail(exc)


@sessions.route("/<int:session_id>/media/<item_id>/<name>", methods=["GET"])
@errors(sessions, 401, 404)
def get_media(session_id: int, item_id: str, name: str):
    """An image of the pending item (PNG, JPEG, GIF or WebP); 404 for anything else."""
    token = _bearer_token()
    try:
        ctype, data = flow.session_media(session_id, token, item_id[:64], name[:100])
    except flow.CandidateError:
        abort(404, description="no such image of the pending item")
    return image_response(ctype, data)


# -- staff ---------------------------------------------------------------------------------


class AssessmentSchema(Schema):
    id = fields.Integer()
    slug = fields.String()
    name = fields.String()
    cut_score = fields.Float(allow_none=True)
    time_limit_minutes = fields.Integer(allow_none=True)


class InvitationRowSchema(Schema):
    invitation_id = fields.Integer()
    candidate_public_id = fields.String()
    name = fields.String(allow_none=True)
    assessment = fields.String()
    status = fields.String()
    invited_at = UtcDateTime()
    expires_at = UtcDateTime()
    session_id = fields.Integer(allow_none=True)
    retake = fields.Boolean(metadata={
        "description": "An earlier invitation of the organisation went to the same e-mail "
                       "address inside the assessment's retake window"})


class InvitationQuerySchema(Schema):
    assessment_id = fields.Integer(load_default=None, validate=validate.Range(0, MAX_ID))
    page = fields.Integer(load_default=1, validate=validate.Range(1, MAX_ID), metadata={
        "description": "Page number (newest invitations first)"})
    page_size = fields.Integer(load_default=staff.PAGE_SIZE,
                               validate=validate.Range(1, staff.MAX_PAGE_SIZE))


class InviteSchema(Schema):
    assessment_id = fields.Integer(required=True, validate=validate.Range(0, MAX_ID))
    names = fields.List(fields.String(validate=validate.Length(max=staff.MAX_NAME_LENGTH)),
                        load_default=None)
    count = fields.Integer(load_default=None,
                           validate=validate.Range(1, staff.MAX_INVITATIONS_PER_REQUEST))
    expires_in_days = fields.Integer(load_default=14, validate=validate.Range(1, 365))


class IssuedSchema(Schema):
    invitation_id = fields.Integer()
    candidate_public_id = fields.String()
    name = fields.String(allow_none=True)
    link = fields.String()
    expires_at = UtcDateTime()


class PercentileSchema(Schema):
    lower = fields.Float(metadata={"description": "norm group's share (%) below the interval's "
                                                  "lower end"})
    upper = fields.Float(metadata={"description": "share (%) below the interval's upper end"})


class SkillScoreSchema(Schema):
    skill = fields.String()
    skill_name = fields.String()
    measured = fields.Boolean(metadata={"description": "false when the skill got no answers; "
                                                      "the score fields are then null"})
    theta = fields.Float(allow_none=True)
    se = fields.Float(allow_none=True)
    score = fields.Float(allow_none=True)
    lower90 = fields.Float(allow_none=True)
    upper90 = fields.Float(allow_none=True)
    percentile = fields.Nested(PercentileSchema, allow_none=True)
    n_items = fields.Integer()
    stop_reason = fields.String()
    decision = fields.String(allow_none=True)
    decision_rule = fields.String(allow_none=True, metadata={
        "description": "'sprt' or 'ci' when the engine's rule decided during the test, "
                       "'interval' when the report's 90 % interval rule did"})
    misclassification = fields.Float(allow_none=True)
    shrinkage_points = fields.Float(allow_none=True)


class OverallScoreSchema(Schema):
    theta = fields.Float()
    se = fields.Float()
    score = fields.Float()
    lower90 = fields.Float()
    upper90 = fields.Float()
    percentile = fields.Nested(PercentileSchema)
    weights = fields.Dict(keys=fields.String(), values=fields.Float())
    shrinkage_points = fields.Float(allow_none=True)


class NormGroupSchema(Schema):
    name = fields.String()
    provisional = fields.Boolean()


class AccommodationSchema(Schema):
    extra_time_percent = fields.Integer(metadata={"description": "Extra time granted, % of the "
                                                                 "assessment's time limit"})
    break_minutes = fields.Integer(metadata={"description": "Break time granted (clock stopped)"})
    break_used_minutes = fields.Float(metadata={"description": "Break time taken"})
    note = fields.String()


class ReviewSchema(Schema):
    """A person's review of a result (web.services.oversight)."""

    status = fields.String(metadata={"description": "'reviewed' or 'set_aside'"})
    reason = fields.String()
    reviewer = fields.String()
    at = UtcDateTime()


class IntegrityNoteSchema(Schema):
    kind = fields.String(metadata={"description": "rapid_guessing, preknowledge or "
                                                  "aberrant_pattern"})
    text = fields.String()
    false_positive_rate = fields.Float(metadata={
        "description": "Share of simulated honest candidates who get a note at the thresholds "
                       "used, measured on adaptive tests of measured_n_answers answers"})
    measured_n_answers = fields.Integer(metadata={
        "description": "Test length (answers) of the simulated honest candidates the rate was "
                       "measured on: the studied length that judged this session"})


class ReportSchema(Schema):
    session_id = fields.Integer()
    candidate_public_id = fields.String()
    candidate_name = fields.String(allow_none=True)
    assessment = fields.String()
    status = fields.String()
    started_at = UtcDateTime()
    finished_at = UtcDateTime(allow_none=True)
    minutes = fields.Float(allow_none=True)
    n_questions = fields.Integer()
    cut_score = fields.Float(allow_none=True)
    provisional = fields.Boolean()
    norm_group = fields.Nested(NormGroupSchema)
    overall = fields.Nested(OverallScoreSchema, allow_none=True)
    multidimensional = fields.Boolean()
    skills = fields.List(fields.Nested(SkillScoreSchema))
    accommodation = fields.Nested(AccommodationSchema, allow_none=True, metadata={
        "description": "Accommodations granted to this candidate (None: none)"})
    review = fields.Nested(ReviewSchema, allow_none=True, metadata={
        "description": "A person's current review of the result ('reviewed' or 'set_aside', "
                       "with the reason; absent: not reviewed)"})
    unscored_answers = fields.Integer(metadata={
        "description": "Answers left out of the score as rapid guesses (the assessment's "
                       "effort-moderated scoring)"})
    retake_of = fields.List(fields.Integer(), metadata={
        "description": "A retake: the earlier sessions of the same person (same e-mail in the "
                       "organisation, inside the retake window)"})
    excluded_seen_items = fields.Integer(metadata={
        "description": "Items seen in the earlier sessions that this test left out"})
    integrity_notes = fields.List(fields.Nested(IntegrityNoteSchema), metadata={
        "description": "Neutral notes on how the answers were given, each with the measured "
                       "share of honest candidates who get one; never an accusation"})


@staff_api.route("/assessments", methods=["GET"])
@staff_api.response(200, AssessmentSchema(many=True))
@errors(staff_api, 401, 403)
@staff_required("recruiter", "psychometrician")
def list_assessments():
    """Assessments of the caller's organisation."""
    return staff.assessments(organisation_id())


@staff_api.route("/invitations", methods=["GET"])
@staff_api.arguments(InvitationQuerySchema, location="query")
@staff_api.response(200, InvitationRowSchema(many=True), headers={
    "X-Total-Count": {"description": "Number of invitations on all pages",
                      "schema": {"type": "integer"}}})
@errors(staff_api, 400, 401, 403, 404)
@staff_required("recruiter")
def list_invitations(query: dict[str, Any]):
    """Invitations and candidate status in the caller's organisation, newest first, one page
    at a time (``page``, ``page_size`` ≤ 500; the total in the ``X-Total-Count`` header)."""
    org = organisation_id()
    if query.get("assessment_id") is not None:
        try:
            staff.assessment(org, query["assessment_id"])
        except staff.NotFound:
            abort(404, description="no such assessment")
    page = staff.candidates_page(org, query.get("assessment_id"), query["page"],
                                 query["page_size"])
    return page.rows, 200, {"X-Total-Count": str(page.total)}


@staff_api.route("/invitations", methods=["POST"])
@staff_api.arguments(InviteSchema)
@staff_api.response(201, IssuedSchema(many=True))
@errors(staff_api, 400, 401, 403, 404, 413)
@staff_required("recruiter")
def create_invitations(body: dict[str, Any]):
    """Create invitations (``names`` or ``count``); the links are returned only in this answer."""
    try:
        if body.get("names"):
            people = [(staff.clean_name(n, k + 1), None) for k, n in enumerate(body["names"])]
        elif body.get("count"):
            people = [(None, None)] * body["count"]
        else:
            abort(422, description="field 'names' or field 'count' is required")
        return staff.create_invitations(organisation_id(), int(current_user.id),
                                        body["assessment_id"], people,
                                        current_app.config["PROFICIO_BASE_URL"],
                                        body["expires_in_days"])
    except staff.NotFound:
        abort(404, description="no such assessment")
    except ValueError as exc:
        abort(422, description=str(exc))


@staff_api.route("/invitations/<int:invitation_id>/revoke", methods=["POST"])
@staff_api.response(204)
@errors(staff_api, 400, 401, 403, 404, 409)
@staff_required("recruiter")
def revoke_invitation(invitation_id: int):
    """Revoke an invitation (an unfinished session is closed)."""
    try:
        staff.revoke_invitation(organisation_id(), invitation_id, int(current_user.id))
    except staff.NotFound:
        abort(404, description="no such invitation")
    except ValueError as exc:
        abort(409, description=str(exc))


@staff_api.route("/reports/<int:session_id>", methods=["GET"])
@staff_api.response(200, ReportSchema)
@errors(staff_api, 401, 403, 404)
@staff_required("recruiter")
def get_report(session_id: int):
    """A candidate's per-skill report."""
    try:
        forensics.ensure_integrity(organisation_id(), session_id)
        return reports.report(organisation_id(), session_id)
    except staff.NotFound:
        abort(404, description="no such report")


def init_app(app: Flask) -> None:
    app.config.setdefault("API_TITLE", "Proficio API")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/api")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api.init_app(app)
    csrf.exempt(sessions)
    api.register_blueprint(sessions)
    api.register_blueprint(staff_api)
    from web.blueprints import api_bank

    api_bank.register(api)
    from web.blueprints import api_accountability

    api_accountability.register(api)
