"""Recruiter pages: candidates and their status, invitations (links as CSV, e-mail),
accommodations, revocation (with confirmation), reports, comparisons, webhooks and their
delivery log."""

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

from web.db import get_db, unit_of_work
from web.input_guard import query_id
from web.rendering import IntervalRow, interval_chart
from web.security import organisation_id, staff_required
from web.services import (
    accommodations,
    forensics,
    invitations,
    reports,
    retakes,
    staff,
    webhooks,
)

bp = Blueprint("recruiter", __name__, url_prefix="/recruiter")
ROLES = ("recruiter",)


def _id_field(name: str) -> int:
    raw = request.form.get(name, "")
    if not raw.isdigit() or len(raw) > 18:
        abort(404)
    return int(raw)


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
        try:
            assessment_id = int(request.form.get("assessment", ""))
        except ValueError:
            raise ValueError("field 'assessment': choose an assessment") from None
        upload = request.files.get("csv_file")
        if upload is not None and upload.filename:
            people = staff.parse_invitation_csv(upload.read())
        else:
            people = parse_people(request.form.get("names", ""))
        try:
            days = int(request.form.get("expires_in_days", "14") or 14)
        except ValueError:
            raise ValueError("field 'expires_in_days': expected a whole number") from None
        issued = staff.create_invitations(org, int(current_user.id), assessment_id, people,
                                          current_app.config["PROFICIO_BASE_URL"], days)
    except staff.NotFound:
        abort(404)
    except ValueError as exc:
        return render_template("recruiter/invite.html", assessments=options,
                               error=str(exc)), 422
    emails = [email for _, email in people]
    mailed = None
    if request.form.get("send_email") and any(emails):
        mailed = invitations.email_invitations(issued, emails, assessment_id)
    return render_template("recruiter/invited.html", issued=issued, emails=emails,
                           mailed=mailed, links_csv=invitations.links_csv(issued, emails))


def parse_people(text: str) -> list[tuple[str | None, str | None]]:
    """One candidate per line: ``Name`` or ``Name, e-mail`` (errors name the line)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("field 'names': enter at least one candidate name, or upload a CSV "
                         "file")
    if len(lines) > staff.MAX_INVITATIONS_PER_REQUEST:
        raise ValueError(f"field 'names': at most {staff.MAX_INVITATIONS_PER_REQUEST} lines")
    out: list[tuple[str | None, str | None]] = []
    for k, line in enumerate(lines, start=1):
        name, email = line, None
        head, sep, tail = line.rpartition(",")
        if sep and "@" in tail:
            name, email = head, tail.strip()
            if " " in email or len(email) > 320 or any(ord(ch) < 32 for ch in email):
                raise ValueError(f"field 'names': line {k}: {email!r} is not an e-mail address")
        out.append((staff.clean_name(name, k), email))
    return out


@bp.route("/invitations/<int:invitation_id>/revoke", methods=["GET", "POST"])
@staff_required(*ROLES)
def revoke(invitation_id: int):  # type: ignore[no-untyped-def]
    """GET: what revoking would do, and a confirmation button; POST: revoke."""
    org = organisation_id()
    try:
        info = accommodations.summary(org, invitation_id)
    except staff.NotFound:
        abort(404)
    if request.method == "GET":
        return render_template("recruiter/revoke.html", info=info)
    try:
        staff.revoke_invitation(org, invitation_id, int(current_user.id))
    except staff.NotFound:
        abort(404)
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("recruiter.candidates"))
    who = info.candidate_name or info.candidate_public_id[:12]
    flash(f"Invitation of {who} revoked. Their link now says that the invitation was "
          "withdrawn" + (" and their test has ended without a result."
                         if info.status == "in progress" else "."), "info")
    return redirect(url_for("recruiter.candidates"))


@bp.route("/invitations/<int:invitation_id>/accommodations", methods=["GET", "POST"])
@staff_required(*ROLES)
def accommodation(invitation_id: int):  # type: ignore[no-untyped-def]
    org = organisation_id()
    try:
        info = accommodations.summary(org, invitation_id)
    except staff.NotFound:
        abort(404)
    if request.method == "GET":
        return render_template("recruiter/accommodations.html", info=info, error=None,
                               choices=accommodations.EXTRA_TIME_CHOICES)
    try:
        extra, minutes, note = accommodations.parse_form(
            request.form.get("extra_time_percent", "0"), request.form.get("break_minutes", "0"),
            request.form.get("note", ""))
        accommodations.grant(org, int(current_user.id), invitation_id, extra, minutes, note)
    except staff.NotFound:
        abort(404)
    except ValueError as exc:
        return render_template("recruiter/accommodations.html", info=info, error=str(exc),
                               choices=accommodations.EXTRA_TIME_CHOICES), 422
    flash(f"Accommodations saved for {info.candidate_name or info.candidate_public_id[:12]}.",
          "info")
    return redirect(url_for("recruiter.candidates"))


@bp.route("/webhooks", methods=["GET", "POST"])
@staff_required(*ROLES)
def webhook_settings():  # type: ignore[no-untyped-def]
    """The organisation's webhooks (add, remove) and the delivery log (retry)."""
    org = organisation_id()
    created, error, status = None, None, 200
    if request.method == "POST":
        action = request.form.get("action", "")
        try:
            with unit_of_work() as db:
                if action == "add":
                    created = webhooks.create_webhook(db, org, request.form.get("url", ""),
                                                      int(current_user.id))
                elif action == "remove":
                    webhooks.deactivate_webhook(db, org, _id_field("webhook"))
                    flash("Webhook removed; nothing more is sent to it.", "info")
                elif action == "retry":
                    webhooks.retry_delivery(db, org, _id_field("delivery"))
                    flash("The delivery will be sent again within a minute.", "info")
                else:
                    abort(400)
        except webhooks.WebhookNotFound:
            abort(404)
        except ValueError as exc:
            error, status = str(exc), 422
    db = get_db()
    return render_template("recruiter/webhooks.html", hooks=webhooks.webhooks(db, org),
                           deliveries=webhooks.delivery_log(db, org), created=created,
                           error=error), status


@bp.route("/sessions/<int:session_id>")
@staff_required(*ROLES)
def report(session_id: int):  # type: ignore[no-untyped-def]
    try:
        integrity = forensics.ensure_integrity(organisation_id(), session_id)
        rep = reports.report(organisation_id(), session_id)
    except staff.NotFound:
        abort(404)
    rows = [] if rep.overall is None else [IntervalRow("Overall", rep.overall.score,
                                                       rep.overall.lower90, rep.overall.upper90)]
    rows += [IntervalRow(s.skill_name, s.score, s.lower90, s.upper90) for s in rep.skills
             if s.score is not None and s.lower90 is not None and s.upper90 is not None]
    # One fixed scale for every report (θ from −3.5 to 3.5), so that reports compare by eye.
    lo, hi = reports.CHART_RANGE
    chart = interval_chart(rows, lo, hi, cut=rep.cut_score,
                           title="Scores with 90% intervals") if rows else None
    earlier = retakes.earlier_sessions_of(organisation_id(), session_id)
    return render_template("recruiter/report.html", rep=rep, chart=chart,
                           rule_labels=reports.RULE_LABELS, integrity=integrity,
                           earlier=earlier, excluded=rep.excluded_seen_items,
                           to_scale=reports.to_scale, unscored=rep.unscored_answers)


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
