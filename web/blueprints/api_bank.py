"""Psychometrician endpoints of the JSON API: banks (own banks and libraries, copies, pooling
consent), bank export/import and calibration jobs — all scoped to the caller's organisation
(another organisation's bank or job is a 404, except reading and copying a library)."""

from __future__ import annotations

import io
import json
from typing import Any

from flask import abort, request
from flask_login import current_user
from flask_smorest import Api
from flask_smorest import Blueprint as ApiBlueprint
from marshmallow import Schema, fields, validate

from item_bank import repository as repo
from item_bank.content import parse_bank_json, write_bank_json
from web.blueprints.api_contract import UtcDateTime, errors
from web.converters import MAX_ID
from web.db import database, get_db, unit_of_work
from web.security import organisation_id, staff_required
from web.services import audit, calibrations
from web.services import bank as bank_service

blp = ApiBlueprint("bank", __name__, url_prefix="/api/v1",
                   description="Item bank and calibrations (psychometrician login required).")
ROLE = "psychometrician"


class ItemWarningSchema(Schema):
    item_id = fields.String()
    code = fields.String(metadata={"description": "key-longest, near-copy or key-in-stem "
                                                  "(docs/item-writing-guide.md)"})
    message = fields.String()


class ImportReportSchema(Schema):
    source = fields.String()
    skills_created = fields.Integer()
    items_created = fields.Integer()
    items_updated = fields.Integer()
    parameter_versions = fields.Integer()
    calibration_run_id = fields.Integer(allow_none=True)
    warnings = fields.List(fields.Nested(ItemWarningSchema), metadata={
        "description": "Writing-quality warnings of the imported items; the import went ahead"})


BANK_ID = fields.Integer(load_default=None, validate=validate.Range(0, MAX_ID), metadata={
    "description": "The bank (default: the organisation's first own bank)"})


class BankQuerySchema(Schema):
    bank_id = BANK_ID


class ImportQuerySchema(Schema):
    replace = fields.Boolean(load_default=False)
    bank_id = BANK_ID


class BankSchema(Schema):
    id = fields.Integer()
    slug = fields.String()
    name = fields.String()
    organisation = fields.String(metadata={"description": "Slug of the owning organisation"})
    own = fields.Boolean()
    library = fields.Boolean()
    pooling_consent = fields.Boolean(metadata={
        "description": "Another organisation's library: the caller's organisation consents to "
                       "its candidates' responses calibrating it"})


class NewBankSchema(Schema):
    slug = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class LibrarySchema(Schema):
    library = fields.Boolean(required=True)


class ConsentSchema(Schema):
    consent = fields.Boolean(required=True)


class CalibrationRequestSchema(Schema):
    bank_id = BANK_ID
    model = fields.String(load_default="2pl", validate=validate.OneOf(calibrations.JOB_MODELS))
    mode = fields.String(load_default="anchored", validate=validate.OneOf(calibrations.MODES))
    prior_a_sd = fields.Float(load_default=0.5, allow_none=True,
                              validate=validate.Range(min=0, max=5, min_inclusive=False))


class CalibrationJobSchema(Schema):
    id = fields.Integer()
    bank_id = fields.Integer()
    status = fields.String()
    progress = fields.Float()
    message = fields.String(allow_none=True)
    settings = fields.Dict()
    result = fields.Dict(allow_none=True)
    calibration_run_id = fields.Integer(allow_none=True)
    created_at = UtcDateTime()
    finished_at = UtcDateTime(allow_none=True)


class PublishedSchema(Schema):
    calibration_run_id = fields.Integer()


def _own(bank_id: int | None) -> int:
    try:
        return bank_service.own_bank(organisation_id(), bank_id).id
    except bank_service.NotFound as exc:
        abort(404, description=str(exc))


@blp.route("/banks", methods=["GET"])
@blp.response(200, BankSchema(many=True))
@errors(blp, 401, 403)
@staff_required(ROLE)
def list_banks():
    """The organisation's own banks and every library it may use or copy."""
    return bank_service.banks(organisation_id())


@blp.route("/banks", methods=["POST"])
@blp.arguments(NewBankSchema)
@blp.response(201, BankSchema)
@errors(blp, 400, 401, 403, 413)
@staff_required(ROLE)
def create_bank(body: dict[str, Any]):
    """Create an empty bank owned by the caller's organisation."""
    try:
        return bank_service.create_bank(organisation_id(), body["slug"], body["name"])
    except ValueError as exc:
        abort(422, description=str(exc))


@blp.route("/banks/<int:bank_id>/library", methods=["POST"])
@blp.arguments(LibrarySchema)
@blp.response(204)
@errors(blp, 400, 401, 403, 404, 409)
@staff_required(ROLE)
def set_library(body: dict[str, Any], bank_id: int):
    """Publish an own bank as a read-only library for other organisations, or withdraw it."""
    try:
        bank_service.set_library(organisation_id(), bank_id, body["library"])
    except bank_service.NotFound:
        abort(404, description="no such bank")
    except ValueError as exc:
        abort(409, description=str(exc))


@blp.route("/banks/<int:bank_id>/copy", methods=["POST"])
@blp.arguments(NewBankSchema)
@blp.response(201, BankSchema)
@errors(blp, 400, 401, 403, 404, 413)
@staff_required(ROLE)
def copy_bank(body: dict[str, Any], bank_id: int):
    """Copy a library (or an own bank) into a new bank of the caller's organisation: skills,
    items, enemies and current parameters; responses stay with the original."""
    try:
        return bank_service.copy_bank(organisation_id(), bank_id, body["slug"], body["name"])
    except bank_service.NotFound:
        abort(404, description="no such bank")
    except ValueError as exc:
        abort(422, description=str(exc))


@blp.route("/banks/<int:bank_id>/pooling-consent", methods=["POST"])
@blp.arguments(ConsentSchema)
@blp.response(204)
@errors(blp, 400, 401, 403, 404, 409)
@staff_required(ROLE)
def set_pooling_consent(body: dict[str, Any], bank_id: int):
    """Consent (or withdraw consent) that the organisation's candidates' responses to another
    organisation's library calibrate it; recorded with who and when."""
    try:
        bank_service.set_pooling_consent(organisation_id(), int(current_user.id), bank_id,
                                         body["consent"])
    except bank_service.NotFound:
        abort(404, description="no such bank")
    except ValueError as exc:
        abort(409, description=str(exc))


@blp.route("/bank", methods=["GET"])
@blp.arguments(BankQuerySchema, location="query")
@blp.response(200, description="The bank as a proficio-bank/1 JSON document")
@errors(blp, 400, 401, 403, 404)
@staff_required(ROLE)
def export_bank(query: dict[str, Any]):
    """Export every item of an own bank or a library with its current parameters (keys and
    explanations included)."""
    try:
        bank = bank_service.readable_bank(organisation_id(), query["bank_id"])
    except bank_service.NotFound as exc:
        abort(404, description=str(exc))
    doc = repo.export_document(get_db(), name=bank.name, bank_id=bank.id)
    out = io.StringIO()
    write_bank_json(out, doc)
    return json.loads(out.getvalue())


@blp.route("/bank", methods=["POST"])
@blp.arguments(ImportQuerySchema, location="query")
@blp.response(201, ImportReportSchema)
@blp.doc(requestBody={"required": True, "description": "A proficio-bank/1 document",
                      "content": {"application/json": {"schema": {"type": "object"}}}})
@errors(blp, 400, 401, 403, 404, 413)
@staff_required(ROLE)
def import_bank(query: dict[str, Any]):
    """Import a proficio-bank/1 JSON document into an own bank (all or nothing)."""
    bank_id = _own(query["bank_id"])
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(422, description="the request body must be a proficio-bank/1 JSON object")
    try:
        doc = parse_bank_json("request body", body)
        with unit_of_work() as db:
            report = repo.import_document(db, doc, replace=query["replace"], bank_id=bank_id)
            audit.record_by_id(db, int(current_user.id), action="bank.imported",
                               target="request body", detail=audit.import_detail(report))
            return report
    except ValueError as exc:
        abort(422, description=str(exc))


@blp.route("/calibrations", methods=["POST"])
@blp.arguments(CalibrationRequestSchema)
@blp.response(202, CalibrationJobSchema)
@errors(blp, 400, 401, 403, 404, 413)
@staff_required(ROLE)
def start_calibration(body: dict[str, Any]):
    """Queue a calibration of an own bank from its live response log (the organisation's
    candidates and those of organisations that consented); poll the returned job."""
    bank_id = _own(body.pop("bank_id"))
    settings = calibrations.JobSettings(**body)
    url = database().engine.url.render_as_string(hide_password=False)
    job_id = calibrations.create_job(int(current_user.id), settings, url, bank_id=bank_id)
    return calibrations.job(job_id, organisation_id())


@blp.route("/calibrations/<int:job_id>", methods=["GET"])
@blp.response(200, CalibrationJobSchema)
@errors(blp, 401, 403, 404)
@staff_required(ROLE)
def get_calibration(job_id: int):
    """A calibration job: status, progress and, when done, its result."""
    try:
        return calibrations.job(job_id, organisation_id())
    except LookupError:
        abort(404, description="no such calibration job")


@blp.route("/calibrations/<int:job_id>/publish", methods=["POST"])
@blp.response(200, PublishedSchema)
@errors(blp, 400, 401, 403, 404, 409)
@staff_required(ROLE)
def publish_calibration(job_id: int):
    """Publish a succeeded job as the current parameter version."""
    try:
        run_id = calibrations.publish(job_id, int(current_user.id), organisation_id())
        audit.log(int(current_user.id), "calibration.published", f"calibration job {job_id}",
                  {"calibration_run_id": run_id})
        return {"calibration_run_id": run_id}
    except LookupError:
        abort(404, description="no such calibration job")
    except ValueError as exc:
        abort(409, description=str(exc))


def register(api: Api) -> None:
    api.register_blueprint(blp)
