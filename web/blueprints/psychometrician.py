"""Psychometrician pages: the bank, item detail with its characteristic curve and item analysis,
import, calibration jobs (start, progress, review with publishing rules, impact preview,
confirmed per-item publishing), rollback of a publication, item promotion, and the watch list of
possibly compromised items (hold, retire or dismiss in one step)."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from werkzeug.utils import secure_filename

from item_bank import media as media_store
from item_bank.models import ItemBank
from web.db import database, get_db, unit_of_work
from web.input_guard import query_id
from web.rendering import icc_chart, image_response
from web.security import organisation_id, staff_required
from web.services import audit, calibrations, forensics
from web.services import bank as bank_service
from web.services.calibrations import PublishRules

bp = Blueprint("psychometrician", __name__, url_prefix="/psychometrician")
ROLES = ("psychometrician",)


def _bank() -> ItemBank:
    """The bank the pages work on: ``?bank=ID`` (remembered in the session), else the last one
    chosen, else the organisation's first; only banks of the caller's organisation (404)."""
    org = organisation_id()
    chosen = query_id("bank")
    try:
        bank = bank_service.own_bank(org, chosen if chosen is not None
                                     else session.get("bank_id"))
    except bank_service.NotFound:
        if chosen is not None or session.get("bank_id") is None:
            abort(404)
        try:
            bank = bank_service.own_bank(org)
        except bank_service.NotFound:
            abort(404)
    if session.get("bank_id") != bank.id:
        session["bank_id"] = bank.id
    return bank



@bp.route("/")
@staff_required(*ROLES)
def bank():
    current = _bank()
    skills, rows = bank_service.overview(current.id)
    chosen = request.args.get("skill") or None
    if chosen:
        rows = [r for r in rows if r.skill == chosen]
    return render_template("psychometrician/bank.html", skills=skills, rows=rows, chosen=chosen,
                           bank=current, banks=bank_service.banks(organisation_id()))


@bp.route("/items/<external_id>")
@staff_required(*ROLES)
def item(external_id: str):
    current = _bank()
    try:
        detail = bank_service.item_detail(current.id, external_id)
    except LookupError:
        abort(404)
    chart = icc_chart(detail.icc_theta, detail.icc_p) if detail.icc_p else None
    analysis = calibrations.latest_item_result(external_id, current.id)
    return render_template("psychometrician/item.html", d=detail, chart=chart,
                           analysis=analysis)


@bp.route("/items/<external_id>/status", methods=["POST"])
@staff_required(*ROLES)
def item_status(external_id: str):
    try:
        bank_service.set_status(_bank().id, external_id, request.form.get("status", ""))
    except LookupError:
        abort(404)
    except ValueError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Item {external_id} is now {request.form.get('status')}.", "info")
        audit.log(int(current_user.id), "item.status_changed", f"item {external_id}",
                  {"status": request.form.get("status")})
    return redirect(url_for("psychometrician.item", external_id=external_id))


@bp.route("/items/<external_id>/media/<name>")
@staff_required(*ROLES)
def item_media(external_id: str, name: str):
    """An image of an item of an own bank (another organisation's: 404)."""
    try:
        ctype, data = bank_service.item_media(_bank().id, external_id, name)
    except LookupError:
        abort(404)
    return image_response(ctype, data)


@bp.route("/items/<external_id>/media", methods=["POST"])
@staff_required(*ROLES)
def upload_item_media(external_id: str):
    """Add (or replace) an image of an item: PNG, JPEG, GIF or WebP up to the size limit, with
    alt text; anything else is refused with a message naming the field."""
    bank_id = _bank().id
    upload = request.files.get("file")
    try:
        name = bank_service.upload_media(
            bank_id, external_id, upload.filename if upload else "", request.form.get("alt", ""),
            upload.read(media_store.MAX_MEDIA_BYTES + 1) if upload else b"")
    except LookupError:
        abort(404)
    except ValueError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Image {name} added to item {external_id}.", "info")
        audit.log(int(current_user.id), "item.media_added", f"item {external_id}",
                  {"name": name})
    return redirect(url_for("psychometrician.item", external_id=external_id))


@bp.route("/import", methods=["GET", "POST"])
@staff_required(*ROLES)
def import_bank():
    if request.method == "GET":
        return render_template("psychometrician/import.html", error=None, report=None)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return render_template("psychometrician/import.html",
                               error="field 'file': choose a file to import", report=None), 422
    try:
        report = bank_service.import_upload(
            _bank().id, upload.filename, upload.read(),
            replace=request.form.get("replace") == "on",
            strict=request.form.get("strict") == "on",
            default_skill=request.form.get("skill", "").strip() or None,
            prefix=request.form.get("prefix", "").strip() or None)
    except ValueError as exc:
        return render_template("psychometrician/import.html", error=str(exc), report=None), 422
    audit.log(int(current_user.id), "bank.imported", upload.filename,
              audit.import_detail(report))
    return render_template("psychometrician/import.html", error=None, report=report)


@bp.route("/calibrations")
@staff_required(*ROLES)
def calibrations_list():
    runs = calibrations.runs(organisation_id())
    return render_template("psychometrician/calibrations.html",
                           jobs=calibrations.jobs(organisation_id()),
                           models=calibrations.JOB_MODELS, modes=calibrations.MODES,
                           runs=runs, run_authors=calibrations.run_authors(runs),
                           defaults=calibrations.JobSettings(
                               model=calibrations.bank_model(_bank().id)))


@bp.route("/calibrations", methods=["POST"])
@staff_required(*ROLES)
def start_calibration():
    try:
        prior = request.form.get("prior_a_sd", "").strip()
        settings = calibrations.JobSettings(
            model=request.form.get("model", "2pl"), mode=request.form.get("mode", "anchored"),
            prior_a_sd=float(prior) if prior else None)
        upload = request.files.get("responses")
        text = None
        if upload is not None and upload.filename:
            text = calibrations.check_upload(upload.read(), secure_filename(upload.filename),
                                             _bank().id)
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("psychometrician.calibrations_list"))
    url = database().engine.url.render_as_string(hide_password=False)
    job_id = calibrations.create_job(int(current_user.id), settings, url, upload=text,
                                     bank_id=_bank().id)
    return redirect(url_for("psychometrician.calibration", job_id=job_id))


def _review(job_id: int, *, rules: PublishRules | None = None,
            selected: list[str] | None = None, impact: object = None,
            threshold: float = calibrations.IMPACT_THRESHOLD, error: str | None = None,
            reason: str = "", status: int = 200):
    try:
        job = calibrations.job(job_id, organisation_id())
    except LookupError:
        abort(404)
    refresh = job.status in ("queued", "running")
    result = calibrations.result_of(job)
    if result is not None and rules is None:
        try:
            rules = PublishRules.from_form(request.args, result.settings.rules)
        except ValueError as exc:
            error, rules = str(exc), result.settings.rules
    if result is not None and rules is not None:
        result = result.with_rules(rules)
    if result is not None and selected is None:
        selected = [it.item_id for it in result.items if it.action == "publish"]
    return render_template("psychometrician/calibration.html", job=job, refresh=refresh,
                           result=result, rules=rules, selected=set(selected or ()),
                           impact=impact, threshold=threshold, error=error,
                           reason=reason), status


@bp.route("/calibrations/<int:job_id>")
@staff_required(*ROLES)
def calibration(job_id: int):
    return _review(job_id)


def _posted_rules() -> PublishRules:
    return PublishRules.from_form({**request.form.to_dict(), "rules": "1"})


@bp.route("/calibrations/<int:job_id>/preview", methods=["POST"])
@staff_required(*ROLES)
def preview(job_id: int):
    selected = request.form.getlist("item")[:calibrations.MAX_SELECTION]
    try:
        rules = _posted_rules()
        text = request.form.get("threshold", "").strip()
        threshold = float(text) if text else calibrations.IMPACT_THRESHOLD
        if not 0 < threshold <= 5:
            raise ValueError("field 'threshold' must be in (0, 5] logits")
        result = calibrations.impact(job_id, selected, organisation_id(), threshold)
    except LookupError:
        abort(404)
    except ValueError as exc:
        return _review(job_id, selected=selected, error=str(exc), status=422)
    return _review(job_id, rules=rules, selected=selected, impact=result, threshold=threshold,
                   reason=request.form.get("reason", ""))


@bp.route("/calibrations/<int:job_id>/publish", methods=["POST"])
@staff_required(*ROLES)
def publish(job_id: int):
    selected = request.form.getlist("item")[:calibrations.MAX_SELECTION]
    reason = request.form.get("reason", "")
    try:
        rules = _posted_rules()
        if request.form.get("confirm") != "yes":
            raise ValueError("field 'confirm': tick the confirmation to publish")
        run_id = calibrations.publish(job_id, int(current_user.id), organisation_id(), selected,
                                      reason=reason, rules=rules)
    except LookupError:
        abort(404)
    except ValueError as exc:
        return _review(job_id, selected=selected, error=str(exc), reason=reason, status=422)
    flash(f"Published {len(selected)} item(s) as calibration run {run_id}; these parameters "
          f"are now current.", "info")
    audit.log(int(current_user.id), "calibration.published", f"calibration job {job_id}",
              {"calibration_run_id": run_id, "items": len(selected), "reason": reason})
    current_app.logger.info("calibration job %s published as run %s", job_id, run_id)
    return redirect(url_for("psychometrician.calibration", job_id=job_id))


@bp.route("/runs/<int:run_id>/rollback", methods=["POST"])
@staff_required(*ROLES)
def rollback(run_id: int):
    try:
        new_run = calibrations.rollback(run_id, int(current_user.id),
                                        request.form.get("reason", ""), organisation_id())
    except LookupError:
        abort(404)
    except ValueError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Calibration run {run_id} rolled back (recorded as run {new_run}); the previous "
              f"parameters are current again.", "info")
        audit.log(int(current_user.id), "calibration.rolled_back", f"calibration run {run_id}",
                  {"calibration_run_id": new_run, "reason": request.form.get("reason", "")})
        current_app.logger.info("calibration run %s rolled back as run %s", run_id, new_run)
    return redirect(url_for("psychometrician.calibrations_list"))


@bp.route("/watch-list")
@staff_required(*ROLES)
def watch_list():
    current = _bank()
    db = get_db()
    return render_template("psychometrician/watch_list.html", bank=current,
                           alarms=forensics.watch_list(db, organisation_id(), current.id),
                           monitor=forensics.monitor_state(db, current.id),
                           actions=forensics.ALARM_ACTIONS)


@bp.route("/alarms/<int:alarm_id>", methods=["POST"])
@staff_required(*ROLES)
def decide_alarm(alarm_id: int):
    action = request.form.get("action", "")
    try:
        with unit_of_work() as db:
            alarm = forensics.decide(db, organisation_id(), alarm_id, action,
                                     int(current_user.id))
            audit.record_by_id(db, int(current_user.id), action=f"item_alarm.{alarm.status}",
                               target=f"item {alarm.external_id}",
                               detail={"alarm_id": alarm_id, "statistic":
                                       round(alarm.statistic, 2),
                                       "started_at": alarm.started_at.isoformat()
                                       if alarm.started_at else None})
    except forensics.NotFound:
        abort(404)
    except ValueError as exc:
        flash(str(exc), "error")
    else:
        done = {"dismiss": "dismissed; its monitoring restarts with the next answers",
                "hold": "held: it is no longer served", "retire": "retired"}[action]
        flash(f"Item {alarm.external_id} {done}.", "info")
    return redirect(url_for("psychometrician.watch_list"))
