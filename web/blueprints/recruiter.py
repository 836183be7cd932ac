"""Recruiter pages: candidates and their status, invitations, reports, comparisons."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from web.input_guard import query_id
from web.rendering import IntervalRow, interval_chart
from web.security import organisation_id, staff_required
from web.services import reports, staff

bp = Blueprint("recruiter", __name__, url_prefix="/recruiter")
ROLES = ("recruiter",)


def _assessment_arg() -> int | None:
    return query_id("assessment")


@bp.route("/")
@staff_required(*ROLES)
def candidates():  # type: ignore[no-untyped-def]
    org = organisation_id()
    chosen = _assessment_arg()
    if chosen is not None:
        try:
            staff.assessment(org, chosen)
        except staff.NotFound:
            abort(404)
    page = staff.candidates_page(org, chosen, query_id("page") or 1)
    return render_template("recruiter/candidates.html", rows=page.rows, page=page,
                           assessments=staff.assessments(org), chosen=chosen)


@bp.route("/invitations/new", methods=["GET", "POST"])
@staff_required(*ROLES)
def new_invitations():  # type: ignore[no-untyped-def]
    org = organisation_id()
    options = staff.assessments(org)
    if request.method == "GET":
        return render_template("recruiter/invite.html", assessments=options, error=None)
    try:
        assessment_id = int(request.form.get("assessment", ""))
        upload = request.files.get("csv_file")
        if upload is not None and upload.filename:
            people = staff.parse_invitation_csv(upload.read())
        else:
            names = [n.strip() for n in request.form.get("names", "").splitlines() if n.strip()]
            people = [(staff.clean_name(n, k + 1), None) for k, n in enumerate(names)]
            if not people:
                raise ValueError("field 'names': enter at least one candidate name, or upload "
                                 "a CSV file")
        days = int(request.form.get("expires_in_days", "14") or 14)
        issued = staff.create_invitations(org, int(current_user.id), assessment_id, people,
                                          current_app.config["PROFICIO_BASE_URL"], days)
    except staff.NotFound:
        abort(404)
    except ValueError as exc:
        return render_template("recruiter/invite.html", assessments=options,
                               error=str(exc)), 422
    return render_template("recruiter/invited.html", issued=issued)


@bp.route("/invitations/<int:invitation_id>/revoke", methods=["POST"])
@staff_required(*ROLES)
def revoke(invitation_id: int):  # type: ignore[no-untyped-def]
    try:
        staff.revoke_invitation(organisation_id(), invitation_id)
    except staff.NotFound:
        abort(404)
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("recruiter.candidates"))
    flash("Invitation revoked.", "info")
    return redirect(url_for("recruiter.candidates"))


@bp.route("/sessions/<int:session_id>")
@staff_required(*ROLES)
def report(session_id: int):  # type: ignore[no-untyped-def]
    try:
        rep = reports.report(organisation_id(), session_id)
    except staff.NotFound:
        abort(404)
    chart = None
    if rep.skills:
        rows = [IntervalRow(s.skill_name, s.score, s.lower90, s.upper90) for s in rep.skills]
        lo = min(200.0, min(r.lower for r in rows) - 20)
        hi = max(800.0, max(r.upper for r in rows) + 20)
        chart = interval_chart(rows, lo, hi, cut=rep.cut_score,
                               title="Score per skill with 90% interval")
    return render_template("recruiter/report.html", rep=rep, chart=chart)


@bp.route("/assessments/<int:assessment_id>/compare")
@staff_required(*ROLES)
def compare(assessment_id: int):  # type: ignore[no-untyped-def]
    try:
        target, reps = reports.comparison(organisation_id(), assessment_id)
    except staff.NotFound:
        abort(404)
    skills = sorted({(s.skill, s.skill_name) for r in reps for s in r.skills})
    return render_template("recruiter/compare.html", assessment=target, reports=reps,
                           skills=skills)


@bp.route("/assessments/<int:assessment_id>/compare.csv")
@staff_required(*ROLES)
def compare_csv(assessment_id: int):  # type: ignore[no-untyped-def]
    try:
        target, reps = reports.comparison(organisation_id(), assessment_id)
    except staff.NotFound:
        abort(404)
    return Response(reports.comparison_csv(target, reps), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="assessment-{target.id}.csv"'})
