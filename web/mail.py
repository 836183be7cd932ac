"""Outgoing e-mail over SMTP (password resets, invitations).

The relay comes from the app configuration (``MAIL_SERVER``, ``MAIL_PORT``, ``MAIL_USE_TLS`` for
STARTTLS, ``MAIL_USERNAME``, ``MAIL_PASSWORD``, ``MAIL_FROM``; set from the environment variables
of the same names by `web.config`). Messages are built with the standard library's
`email.message.EmailMessage` and sent with `smtplib` (Python documentation, "smtplib — SMTP
protocol client", RFC 5321 and RFC 3207 for STARTTLS).
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app

#: Seconds to wait for the relay to connect or answer a command.
SMTP_TIMEOUT_S = 10.0


class MailNotConfigured(RuntimeError):
    """``MAIL_SERVER`` is not set: this installation does not send e-mail."""


class MailError(RuntimeError):
    """The SMTP relay refused the message or could not be reached."""


def _header_value(value: str, field: str) -> str:
    if any(ch in value for ch in "\r\n"):
        raise ValueError(f"field {field!r} must be a single line")
    return value


def send_mail(to: str, subject: str, text: str, *, html: str | None = None) -> None:
    """Send one message to ``to`` (plain text, with an HTML alternative when ``html`` is given).

    Raises `MailNotConfigured` when ``MAIL_SERVER`` is unset and `MailError` when the relay
    cannot be reached or refuses the message (the recipient, the login or STARTTLS).
    """
    config = current_app.config
    server = config.get("MAIL_SERVER") or ""
    if not server:
        raise MailNotConfigured("MAIL_SERVER is not set; this installation sends no e-mail")
    sender = config.get("MAIL_FROM") or "proficio@localhost"
    message = EmailMessage()
    message["From"] = _header_value(sender, "MAIL_FROM")
    message["To"] = _header_value(to, "to")
    message["Subject"] = _header_value(subject, "subject")
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    try:
        with smtplib.SMTP(server, int(config.get("MAIL_PORT") or 587),
                          timeout=SMTP_TIMEOUT_S) as smtp:
            if config.get("MAIL_USE_TLS", True):
                smtp.starttls(context=ssl.create_default_context())
            username = config.get("MAIL_USERNAME") or ""
            if username:
                smtp.login(username, config.get("MAIL_PASSWORD") or "")
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        # the relay's reply, never the password; the caller decides what the user sees
        raise MailError(f"could not send e-mail through {server}: {type(exc).__name__}: "
                        f"{exc}") from exc
