"""Organisation admin pages: staff roles, and the audit log of staff actions (read, CSV and
JSON export).

Only the organisation's admins see it, and only their organisation's events.
"""

from __future__ import annotations

import datetime as dt
import json

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from item_bank.models import ROLES as ALL_ROLES
from item_bank.models import StaffUser
from web.db import get_db, unit_of_work
from web.security import organisation_id, staff_required
from web.services import accounts, audit

bp = Blueprint("admin", __name__, url_prefix="/admin")
ROLES = ("admin",)
MAX_PAGE = 1_000_000


def _int_arg(name: str, default: int, upper: int) -> int:
    raw = request.args.get(name, "")
    return min(int(raw), upper) if raw.isdigit() and int(raw) > 0 else default


@bp.route("/audit")
@staff_required(*ROLES)
def audit_log():
    org = organisation_id()
    action = request.args.get("action", "")[:64] or None
    page = audit.events(get_db(), org, page=_int_arg("page", 1, MAX_PAGE),
                        per_page=_int_arg("per_page", audit.PAGE_SIZE, audit.MAX_PAGE_SIZE),
                        action=action)
    return render_template("admin/audit.html", page=page, action=action,
                           actions=audit.actions(get_db(), org))


@bp.route("/staff")
@staff_required(*ROLES)
def staff():
    return render_template("admin/staff.html", staff=accounts.staff_list(get_db(),
                                                                         organisation_id()),
                           roles=ALL_ROLES)


@bp.route("/staff/<int:user_id>/role", methods=["POST"])
@staff_required(*ROLES)
def staff_role(user_id: int):
    try:
        with unit_of_work() as db:
            actor = db.get(StaffUser, int(current_user.id))
            user = accounts.set_role_by_id(db, organisation_id(), user_id,
                                           request.form.get("role", "")[:32], actor)
            flash(f"{user.email} is now {user.role}; their sessions were signed out.", "info")
    except LookupError:
        abort(404)
    except accounts.AccountError as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.staff"))


def _filename(ext: str) -> str:
    return f"audit-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.{ext}"


@bp.route("/audit.csv")
@staff_required(*ROLES)
def audit_csv():
    body = audit.export_csv(get_db(), organisation_id())
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{_filename("csv")}"'})


@bp.route("/audit.json")
@staff_required(*ROLES)
def audit_json():
    body = json.dumps({"events": audit.export_json(get_db(), organisation_id())}, indent=1)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="{_filename("json")}"'})
