"""Recruiter pages: candidates and their status, invitations (links as CSV, e-mail),
accommodations, revocation (with confirmation), reports, comparisons, webhooks and their
delivery log, and the organisation's assessments (create and edit, each design checked for
feasibility by simulation before it is saved)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TypeVar

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

from item_bank.forensics_models import check_security
from item_bank.models import LANGUAGES, Assessment
from web.db import database, get_db, unit_of_work
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
from web.services import assessment_designs as designs
from web.services.feasibility import Feasibility

_T = TypeVar("_T")
_D = TypeVar("_D")

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
def candidates():
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
def new_invitations():
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
def revoke(invitation_id: int):
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
def accommodation(invitation_id: int):
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
def webhook_settings():
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
def report(session_id: int):
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
def compare(assessment_id: int):
    try:
        target, reps = reports.comparison(organisation_id(), assessment_id)
    except staff.NotFound:
        abort(404)
    skills = sorted({(s.skill, s.skill_name) for r in reps for s in r.skills})
    return render_template("recruiter/compare.html", assessment=target, reports=reps,
                           skills=skills)


@bp.route("/assessments/<int:assessment_id>/compare.csv")
@staff_required(*ROLES)
def compare_csv(assessment_id: int):
    try:
        target, reps = reports.comparison(organisation_id(), assessment_id)
    except staff.NotFound:
        abort(404)
    return Response(reports.comparison_csv(target, reps), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="assessment-{target.id}.csv"'})


# -- assessments: list, create/edit with a feasibility check ----------------------------------


def _design_page(form: designs.AssessmentForm, *, editing: Assessment | None = None,
                 errors: dict[str, str] | None = None, status: int = 200):
    org = organisation_id()
    try:
        info = designs.bank_skills(org, form.bank_id)
    except staff.NotFound:
        info = None
    running = designs.running_sessions(editing.id) if editing is not None else 0
    return render_template("recruiter/assessment_form.html", form=form, editing=editing,
                           errors=errors or {}, info=info, banks=designs.banks(org),
                           running=running, languages=LANGUAGES,
                           max_form_items=designs.MAX_FORM_ITEMS,
                           simulees=designs.MAX_CHECK_SIMULEES), status


def _queue_check(form: designs.AssessmentForm, assessment_id: int | None):
    url = database().engine.url.render_as_string(hide_password=False)
    check_id = designs.start_check(organisation_id(), int(current_user.id), form, url,
                                   assessment_id)
    return redirect(url_for("recruiter.feasibility_check", check_id=check_id))


@bp.route("/assessments")
@staff_required(*ROLES)
def assessments():
    return render_template("recruiter/assessments.html",
                           rows=designs.assessments(organisation_id()))


@bp.route("/assessments/new", methods=["GET", "POST"])
@staff_required(*ROLES)
def new_assessment():
    """GET: the form with the default design (``?bank=`` another bank; ``?check=`` the values
    of an earlier check); POST: queue the feasibility check of the entered design."""
    org = organisation_id()
    if request.method == "GET":
        try:
            earlier = query_id("check")
            if earlier is not None:
                row = designs.check(org, earlier)
                if row.assessment_id is not None:
                    return redirect(url_for("recruiter.edit_assessment",
                                            assessment_id=row.assessment_id, check=row.id))
                form = designs.AssessmentForm.from_dict(row.form)
            else:
                form = designs.default_form(org, query_id("bank"))
        except staff.NotFound:
            abort(404)
        return _design_page(form)
    try:
        form = designs.parse_form(org, request.form)
        return _queue_check(form, None)
    except designs.FormError as exc:
        return _design_page(_posted(request.form), errors=exc.errors, status=422)


def _posted(data) -> designs.AssessmentForm:
    """What was entered, to show the form again with its errors (unparseable numbers become
    the defaults; the errors name them)."""
    from web.services.feasibility import DesignChoices

    def num(name: str, kind: Callable[[str], _T], default: _D) -> _T | _D:
        try:
            return kind(data.get(name, ""))
        except ValueError:
            return default

    base = DesignChoices(skills=())
    weights: dict[str, float] = {}
    for key in data:
        if key.startswith("weight_"):
            value = num(key, float, None)
            if value is not None:
                weights[key.removeprefix("weight_")] = value
    choices = DesignChoices(
        skills=tuple(data.getlist("skills")), weights=weights,
        overall_se=num("overall_se", float, base.overall_se),
        max_items=num("max_items", int, base.max_items),
        min_per_skill=num("min_per_skill", int, base.min_per_skill),
        exposure_control=bool(data.get("exposure_control")),
        max_exposure=num("max_exposure", float, base.max_exposure))
    bank = num("bank", int, 0)
    defaults = check_security(None)
    security = {"effort_moderated": bool(data.get("effort_moderated")),
                "retake_window_days": num("retake_window_days", int,
                                          defaults["retake_window_days"])}
    return designs.AssessmentForm(
        data.get("name", "")[:200], data.get("slug", "")[:64], bank,
        choices, num("time_limit_minutes", int, None),
        data.get("language") or None, num("cut_score", float, None),
        security)


@bp.route("/assessments/<int:assessment_id>/edit", methods=["GET", "POST"])
@staff_required(*ROLES)
def edit_assessment(assessment_id: int):
    """GET: the assessment's design (``?check=`` an earlier check's values); POST: queue the
    check of the changed design. Running sessions keep the blueprint they started with."""
    org = organisation_id()
    try:
        target = designs.owned_assessment(org, assessment_id)
        if request.method == "GET":
            earlier = query_id("check")
            if earlier is not None:
                row = designs.check(org, earlier)
                if row.assessment_id != target.id:
                    abort(404)
                form = designs.AssessmentForm.from_dict(row.form)
            else:
                form = designs.form_of(org, assessment_id)
            return _design_page(form, editing=target)
    except staff.NotFound:
        abort(404)
    try:
        form = designs.parse_form(org, request.form, editing=target)
        return _queue_check(form, target.id)
    except designs.FormError as exc:
        posted = _posted(request.form)
        return _design_page(designs.AssessmentForm(
            posted.name, target.slug, target.bank_id, posted.choices,
            posted.time_limit_minutes, posted.language, target.cut_score, posted.security),
            editing=target, errors=exc.errors, status=422)


@bp.route("/assessments/checks/<int:check_id>")
@staff_required(*ROLES)
def feasibility_check(check_id: int):
    org = organisation_id()
    try:
        row = designs.check(org, check_id)
        editing = designs.owned_assessment(org, row.assessment_id) \
            if row.assessment_id is not None else None
    except staff.NotFound:
        abort(404)
    form = designs.AssessmentForm.from_dict(row.form)
    figures = Feasibility.from_dict(row.result) if row.result else None
    names: dict[str, str] = {}
    with contextlib.suppress(staff.NotFound):
        names = {slug: name for slug, name, _ in designs.bank_skills(org, form.bank_id).skills}
    return render_template("recruiter/feasibility.html", check=row, form=form,
                           figures=figures, editing=editing, skill_names=names,
                           running=designs.running_sessions(editing.id) if editing else 0,
                           refresh=row.status in ("queued", "running"))


@bp.route("/assessments/checks/<int:check_id>.json")
@staff_required(*ROLES)
def feasibility_check_status(check_id: int):
    try:
        row = designs.check(organisation_id(), check_id)
    except staff.NotFound:
        abort(404)
    progress = {"queued": 0.0, "running": 0.5}.get(row.status, 1.0)
    return {"id": row.id, "status": row.status, "message": row.message, "progress": progress}


@bp.route("/assessments/checks/<int:check_id>/save", methods=["POST"])
@staff_required(*ROLES)
def save_assessment(check_id: int):
    try:
        saved = designs.save(organisation_id(), int(current_user.id), check_id)
    except staff.NotFound:
        abort(404)
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("recruiter.feasibility_check", check_id=check_id))
    flash(f"Assessment “{saved.name}” saved with its feasibility figures. Tests that have "
          "already started keep the design they started with.", "info")
    return redirect(url_for("recruiter.assessments"))
