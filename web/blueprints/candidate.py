"""Candidate pages: invitation → welcome → one question per page → finish.

Works without JavaScript; with it, static/countdown.js turns the server-rendered time left into
a live countdown (the server's deadline stays the authority). The invitation link is the
candidate's key: opening it again resumes the session at the pending question. Pages never
contain a key, an explanation, an item parameter or an ability estimate. Text is translated
(web.i18n): the assessment's language, else the browser's.
"""

from __future__ import annotations

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from web.rendering import image_response
from web.security import ANSWER_LIMIT, START_LIMIT, candidate_key, limiter
from web.services import candidate as flow
from web.services import oversight

bp = Blueprint("candidate", __name__, url_prefix="/t")

#: What the candidate reads for each refusal (the service's messages are for logs and the API).
MESSAGES = {
    "invitation_not_found": _l("This invitation link is not valid. Please check that you "
                               "opened the whole link from your invitation."),
    "invitation_unavailable": _l("This invitation can no longer be used: it has expired or "
                                 "was withdrawn by the organisation that invited you."),
    "session_not_found": _l("This assessment session was not found."),
    "session_closed": _l("This assessment has ended; it cannot be changed any more."),
    "not_pending": _l("That is not the current question; please answer the question shown "
                      "now."),
    "invalid_answer": _l("That answer is not one of the options of this question."),
    "break_refused": _l("No break time is left for this assessment."),
}


def _refused(exc: flow.CandidateError, token: str):
    if isinstance(exc, flow.InvitationNotFound | flow.InvitationUnavailable):
        # Unknown, expired and withdrawn links must cost the same single query (no timing
        # oracle, tests/reliability/test_access.py): no assessment-language lookup, the
        # browser's language is used.
        g.skip_assessment_language = True
    message = MESSAGES.get(exc.code, str(exc))
    return render_template("candidate/refused.html", message=message, token=token,
                           code=exc.code), exc.status


@bp.route("/<token>")
@limiter.limit(START_LIMIT)
def welcome(token: str):
    try:
        started = flow.session_for_invitation(token)
        if started is not None:
            return redirect(url_for("candidate.question", token=token))
        info = flow.invitation_overview(token)
    except flow.CandidateError as exc:
        return _refused(exc, token)
    return render_template("candidate/welcome.html", token=token, info=info)


@bp.route("/<token>/start", methods=["POST"])
@limiter.limit(START_LIMIT)
def start(token: str):
    try:
        flow.start_or_resume(token)
    except flow.CandidateError as exc:
        return _refused(exc, token)
    return redirect(url_for("candidate.question", token=token))


@bp.route("/<token>/question")
def question(token: str):
    try:
        session_id = flow.session_for_invitation(token)
        view = flow.start_or_resume(token) if session_id else None
        if view is not None and view.on_break and view.break_left_seconds <= 0:
            view = flow.end_break(view.session_id)  # the break allowance ran out
    except flow.CandidateError as exc:
        return _refused(exc, token)
    if view is None:
        return redirect(url_for("candidate.welcome", token=token))
    if view.status != "in_progress" or view.pending is None:
        return redirect(url_for("candidate.done", token=token))
    if view.on_break:
        return render_template("candidate/break.html", token=token, view=view)
    return render_template("candidate/question.html", token=token, view=view)


#: What the candidate reads when an answer does not fit the question, by response type.
ANSWER_HINTS = {
    "single": _l("Please choose one of the options."),
    "multiple": _l("Please select at least one option."),
    "ordering": _l("Please choose a different item for each position."),
    "numeric": _l("Please enter a number, for example 42 or 3.5."),
    "text": _l("Please type your answer."),
}


def _form_answer() -> str | list[str]:
    """The answer as the form sent it: checkboxes (multiple response), one select per position
    (ordering), else the one ``answer`` field."""
    kind = request.form.get("kind", "single")
    if kind == "multiple":
        return [v[:64] for v in request.form.getlist("answer")[:20]]
    if kind == "ordering":
        return [request.form.get(f"position-{k}", "")[:64] for k in range(1, 21)
                if f"position-{k}" in request.form]
    return request.form.get("answer", "")[:200]


def _ask_again(token: str, item_id: str, session_id: int):
    """The pending question again with a hint (422), or the question page when it changed."""
    view = flow.session_status(session_id)
    if view.pending is not None and view.pending.item_id == item_id and not view.on_break:
        hint = ANSWER_HINTS.get(view.pending.response_type, ANSWER_HINTS["single"])
        return render_template("candidate/question.html", token=token, view=view,
                               error=hint), 422
    return redirect(url_for("candidate.question", token=token))


@bp.route("/<token>/answer", methods=["POST"])
@limiter.limit(ANSWER_LIMIT, key_func=candidate_key)
def answer(token: str):
    item_id = request.form.get("item_id", "")[:64]
    choice = _form_answer()
    try:
        session_id = flow.session_for_invitation(token)
        if session_id is None:
            return redirect(url_for("candidate.welcome", token=token))
        if not choice or (isinstance(choice, str) and not choice.strip()):
            return _ask_again(token, item_id, session_id)
        try:
            view = flow.submit_answer(session_id, item_id, choice)
        except flow.InvalidAnswerError:
            return _ask_again(token, item_id, session_id)
    except flow.TimeUpError:
        return redirect(url_for("candidate.done", token=token))  # the "time is up" page
    except flow.CandidateError as exc:
        return _refused(exc, token)
    if view.status != "in_progress":
        return redirect(url_for("candidate.done", token=token))
    return redirect(url_for("candidate.question", token=token))


@bp.route("/<token>/media/<item_id>/<name>")
def media(token: str, item_id: str, name: str):
    """An image of the pending question (404 for anything else)."""
    try:
        ctype, data = flow.pending_media(token, item_id[:64], name[:100])
    except flow.CandidateError:
        abort(404)
    return image_response(ctype, data)


def _break_action(token: str, action):
    try:
        session_id = flow.session_for_invitation(token)
        if session_id is None:
            return redirect(url_for("candidate.welcome", token=token))
        action(session_id)
    except flow.CandidateError as exc:
        return _refused(exc, token)
    return redirect(url_for("candidate.question", token=token))


@bp.route("/<token>/break", methods=["POST"])
@limiter.limit(START_LIMIT)
def pause(token: str):
    """Start a granted break (the clock stops)."""
    return _break_action(token, flow.start_break)


@bp.route("/<token>/resume", methods=["POST"])
@limiter.limit(START_LIMIT)
def resume(token: str):
    """End the break (the clock runs again)."""
    return _break_action(token, flow.end_break)


@bp.route("/<token>/done")
def done(token: str):
    try:
        session_id = flow.session_for_invitation(token)
        if session_id is None:
            return redirect(url_for("candidate.welcome", token=token))
        view = flow.session_status(session_id)
    except flow.CandidateError as exc:
        return _refused(exc, token)
    if view.status == "in_progress":
        return redirect(url_for("candidate.question", token=token))
    return render_template("candidate/done.html", view=view,
                           exp=oversight.end_of_test_explanation(session_id))
