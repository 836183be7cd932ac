"""Candidate pages in the candidate's language (Flask-Babel, gettext catalogues).

The language of a candidate page is the assessment's ``language`` when the recruiter set one,
otherwise the best match of the browser's ``Accept-Language`` among `LANGUAGES`. Staff pages
stay in English. Catalogues: ``web/translations/<lang>/LC_MESSAGES/messages.po`` (compiled to
``.mo``); ``scripts/i18n.sh`` extracts, updates and compiles them.
"""

from __future__ import annotations

from flask import Flask, g, request
from flask_babel import Babel, get_locale

from item_bank.models import LANGUAGES

DEFAULT_LANGUAGE = "en"


def select_locale() -> str:
    """Called lazily by Flask-Babel, only when a page is rendered (never on the answer hot
    path, which redirects)."""
    if request.blueprint != "candidate":
        return DEFAULT_LANGUAGE
    token = (request.view_args or {}).get("token")
    if token and not g.get("skip_assessment_language"):
        from sqlalchemy.exc import DBAPIError

        from web.services.candidate import invitation_language

        try:
            chosen = invitation_language(str(token)[:128])
        except DBAPIError:
            # the database is down: the "please try again" page still renders, in the
            # browser's language
            g.skip_assessment_language = True
            chosen = None
        if chosen in LANGUAGES:
            return chosen
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["get_locale"] = get_locale
