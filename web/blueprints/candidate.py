"""Candidate pages: invitation → welcome → one question per page → finish.

Works without JavaScript. The invitation link is the candidate's key: opening it again resumes
the session at the pending question. Pages never contain a key, an explanation, an item
parameter or an ability estimate.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from web.security import ANSWER_LIMIT, START_LIMIT, candidate_key, limiter
from web.services import candidate as flow

bp = Blueprint("candidate", __name__, url_prefix="/t")


def _refused(exc: flow.CandidateError, token: str):  # type: ignore[no-untyped-def]
    return render_template("candidate/refused.html", message=str(exc), token=token,
                           code=exc.code), exc.status


@bp.route("/<token>")
@limiter.limit(START_LIMIT)
def welcome(token: str):  # type: ignore[no-untyped-def]
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
def start(token: str):  # type: ignore[no-untyped-def]
    try:
        flow.start_or_resume(token)
    except flow.CandidateError as exc:
        return _refused(exc, token)
    return redirect(url_for("candidate.question", token=token))


@bp.route("/<token>/question")
def question(token: str):  # type: ignore[no-untyped-def]
    try:
        view = flow.start_or_resume(token) if flow.session_for_invitation(token) else None
    except flow.CandidateError as exc:
        return _refused(exc, token)
    if view is None:
        return redirect(url_for("candidate.welcome", token=token))
    if view.status != "in_progress" or view.pending is None:
        return redirect(url_for("candidate.done", token=token))
    return render_template("candidate/question.html", token=token, view=view)


@bp.route("/<token>/answer", methods=["POST"])
@limiter.limit(ANSWER_LIMIT, key_func=candidate_key)
def answer(token: str):  # type: ignore[no-untyped-def]
    item_id = request.form.get("item_id", "")[:64]
    choice = request.form.get("answer", "")[:64]
    try:
        session_id = flow.session_for_invitation(token)
        if session_id is None:
            return redirect(url_for("candidate.welcome", token=token))
        if not choice:
            view = flow.session_status(session_id)
            if view.pending is not None and view.pending.item_id == item_id:
                return render_template("candidate/question.html", token=token, view=view,
                                       error="Please choose one of the options."), 422
            return redirect(url_for("candidate.question", token=token))
        view = flow.submit_answer(session_id, item_id, choice)
    except flow.CandidateError as exc:
        return _refused(exc, token)
    if view.status != "in_progress":
        return redirect(url_for("candidate.done", token=token))
    return redirect(url_for("candidate.question", token=token))


@bp.route("/<token>/done")
def done(token: str):  # type: ignore[no-untyped-def]
    try:
        session_id = flow.session_for_invitation(token)
        if session_id is None:
            return redirect(url_for("candidate.welcome", token=token))
        view = flow.session_status(session_id)
    except flow.CandidateError as exc:
        return _refused(exc, token)
    if view.status == "in_progress":
        return redirect(url_for("candidate.question", token=token))
    return render_template("candidate/done.html", view=view)
