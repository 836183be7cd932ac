"""Accountable results (issue 21): session replay for psychometricians (and admins, the
organisation's auditors), human review of results, the candidate explanation, erasure and data
export for recruiters, and the organisation's privacy settings for admins.

Every route is scoped to the signed-in staff member's organisation (a session, candidate or
setting of another organisation is a 404) and every form carries a CSRF token.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from item_bank.models import Assessment, CandidateSession
from web.db import get_db
from web.security import organisation_id, staff_required
from web.services import oversight, privacy, staff
from web.services.replay import session_replay
from web.services.review_state import STATUS_LABELS
from web.trajectory_chart import trajectory_chart

bp = Blueprint("accountability", __name__)
PUBLIC_ID_MAX = 64
RECENT_SESSIONS = 200


def _public_id(raw: str) -> str:
    if not raw or len(raw) > PUBLIC_ID_MAX or not raw.replace("-", "").replace("_", "").isalnum():
        abort(404)
    return raw


@bp.route("/psychometrician/sessions")
@staff_required("psychometrician")
def sessions():
    """The organisation's latest sessions, each linked to its replay."""
    db = get_db()
    rows = db.scalars(select(CandidateSession).join(Assessment)
                      .where(Assessment.organisation_id == organisation_id(),
                             CandidateSession.engine_state.is_not(None))
                      .order_by(CandidateSession.id.desc()).limit(RECENT_SESSIONS)).all()
    return render_template("accountability/sessions.html", rows=rows)


@bp.route("/psychometrician/sessions/<int:session_id>/replay")
@staff_required("psychometrician")
def replay(session_id: int):
    try:
        rep = session_replay(organisation_id(), session_id)
    except staff.NotFound:
        abort(404)
    chart = trajectory_chart(rep.trajectories(), len(rep.items),
                             title="θ and ±1 SE after each answer, per skill")
    return render_template("accountability/replay.html", rep=rep, chart=chart)


@bp.route("/recruiter/sessions/<int:session_id>/review", methods=["POST"])
@staff_required("recruiter")
def review(session_id: int):
    try:
        oversight.review_result(organisation_id(), session_id, int(current_user.id),
                                request.form.get("status", ""),
                                request.form.get("reason", "")[:oversight.MAX_REASON + 1])
    except staff.NotFound:
        abort(404)
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("recruiter.report", session_id=session_id) + "#review"), 303
    flash("Your review was recorded.")
    return redirect(url_for("recruiter.report", session_id=session_id) + "#review"), 303


@bp.route("/recruiter/sessions/<int:session_id>/explanation")
@staff_required("recruiter")
def explanation(session_id: int):
    try:
        exp = oversight.explanation(organisation_id(), session_id)
    except staff.NotFound:
        abort(404)
    return render_template("accountability/explanation.html", exp=exp)


@bp.route("/recruiter/candidates/<public_id>/erase", methods=["GET", "POST"])
@staff_required("recruiter")
def erase(public_id: str):
    public_id = _public_id(public_id)
    org = organisation_id()
    try:
        data = privacy.candidate_export(org, public_id)
    except staff.NotFound:
        abort(404)
    if request.method == "POST":
        if request.form.get("confirm") != "erase":
            flash("Tick the box to confirm the erasure.", "error")
        else:
            privacy.erase_on_request(org, public_id, int(current_user.id))
            flash("The candidate's personal data was erased.")
            return redirect(url_for("accountability.erase", public_id=public_id)), 303
    return render_template("accountability/erase.html", data=data, public_id=public_id)


@bp.route("/recruiter/candidates/<public_id>/export.json")
@staff_required("recruiter")
def export(public_id: str):
    try:
        data = privacy.candidate_export(organisation_id(), _public_id(public_id))
    except staff.NotFound:
        abort(404)
    return Response(json.dumps(data, indent=2, ensure_ascii=False), mimetype="application/json",
                    headers={"Content-Disposition":
                             f'attachment; filename="candidate-{public_id[:16]}.json"'})


@bp.route("/admin/privacy", methods=["GET", "POST"])
@staff_required("admin")
def privacy_settings():
    org = organisation_id()
    error, status = None, 200
    if request.method == "POST":
        try:
            days = privacy.parse_retention(request.form.get("retention_days", "")[:12])
            privacy.update_settings(org, int(current_user.id), days,
                                    request.form.get("explain_to_candidates") == "on")
            flash("Privacy settings saved.")
            return redirect(url_for("accountability.privacy_settings")), 303
        except ValueError as exc:
            error, status = str(exc), 422
    return render_template("accountability/privacy.html",
                           settings=privacy.settings(get_db(), org), error=error), status


def init_app(app) -> None:
    app.register_blueprint(bp)
    app.jinja_env.globals["review_labels"] = STATUS_LABELS
