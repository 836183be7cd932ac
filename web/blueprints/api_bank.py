"""Psychometrician endpoints of the JSON API: bank export/import and calibration jobs."""

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
from web.db import database, get_db, unit_of_work
from web.security import staff_required
from web.services import audit, calibrations

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


class ImportQuerySchema(Schema):
    replace = fields.Boolean(load_default=False)


class CalibrationRequestSchema(Schema):
    model = fields.String(load_default="2pl", validate=validate.OneOf(calibrations.JOB_MODELS))
    mode = fields.String(load_default="anchored", validate=validate.OneOf(calibrations.MODES))
    prior_a_sd = fields.Float(load_default=0.5, allow_none=True,
                              validate=validate.Range(min=0, max=5, min_inclusive=False))


class CalibrationJobSchema(Schema):
    id = fields.Integer()
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


@blp.route("/bank", methods=["GET"])
@blp.response(200, description="The bank as a proficio-bank/1 JSON document")
@errors(blp, 401, 403)
@staff_required(ROLE)
def export_bank():  # type: ignore[no-untyped-def]
    """Export every item with its current parameters (keys and explanations included)."""
    doc = repo.export_document(get_db(), name="export")
    out = io.StringIO()
    write_bank_json(out, doc)
    return json.loads(out.getvalue())


@blp.route("/bank", methods=["POST"])
@blp.arguments(ImportQuerySchema, location="query")
@blp.response(201, ImportReportSchema)
@blp.doc(requestBody={"required": True, "description": "A proficio-bank/1 document",
                      "content": {"application/json": {"schema": {"type": "object"}}}})
@errors(blp, 400, 401, 403, 413)
@staff_required(ROLE)
def import_bank(query: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Import a proficio-bank/1 JSON document (all or nothing)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(422, description="the request body must be a proficio-bank/1 JSON object")
    try:
        doc = parse_bank_json("request body", body)
        with unit_of_work() as db:
            report = repo.import_document(db, doc, replace=query["replace"])
            audit.record_by_id(db, int(current_user.id), action="bank.imported",
                               target="request body", detail=audit.import_detail(report))
            return report
    except ValueError as exc:
        abort(422, description=str(exc))


@blp.route("/calibrations", methods=["POST"])
@blp.arguments(CalibrationRequestSchema)
@blp.response(202, CalibrationJobSchema)
@errors(blp, 400, 401, 403, 413)
@staff_required(ROLE)
def start_calibration(body: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Queue a calibration of the live response log; poll the returned job."""
    settings = calibrations.JobSettings(**body)
    url = database().engine.url.render_as_string(hide_password=False)
    job_id = calibrations.create_job(int(current_user.id), settings, url)
    return calibrations.job(job_id)


@blp.route("/calibrations/<int:job_id>", methods=["GET"])
@blp.response(200, CalibrationJobSchema)
@errors(blp, 401, 403, 404)
@staff_required(ROLE)
def get_calibration(job_id: int):  # type: ignore[no-untyped-def]
    """A calibration job: status, progress and, when done, its result."""
    try:
        return calibrations.job(job_id)
    except LookupError:
        abort(404, description="no such calibration job")


@blp.route("/calibrations/<int:job_id>/publish", methods=["POST"])
@blp.response(200, PublishedSchema)
@errors(blp, 400, 401, 403, 404, 409)
@staff_required(ROLE)
def publish_calibration(job_id: int):  # type: ignore[no-untyped-def]
    """Publish a succeeded job as the current parameter version."""
    try:
        run_id = calibrations.publish(job_id, int(current_user.id))
        audit.log(int(current_user.id), "calibration.published", f"calibration job {job_id}",
                  {"calibration_run_id": run_id})
        return {"calibration_run_id": run_id}
    except LookupError:
        abort(404, description="no such calibration job")
    except ValueError as exc:
        abort(409, description=str(exc))


def register(api: Api) -> None:
    api.register_blueprint(blp)
