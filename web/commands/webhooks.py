"""``proficio webhooks add|list|deliver``: an organisation's webhooks and their deliveries.

``deliver`` sends every due delivery once and exits — the same function the job queue's
scheduler runs every minute (`web.services.webhooks.deliver_due`); use it from cron when the
web app runs without the embedded job workers.
"""

from __future__ import annotations

import argparse

from sqlalchemy import func, select

from item_bank.models import Organisation, Webhook, WebhookDelivery
from web.commands.db import add_url_option, database, opened_engine
from web.services import webhooks


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("webhooks", help="signed webhooks to applicant-tracking systems")
    wsub = p.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)
    a = wsub.add_parser("add", help="add a receiver; prints its signing secret once")
    a.add_argument("--org", required=True, help="organisation slug")
    a.add_argument("url")
    add_url_option(a)
    a.set_defaults(handler=run_add)
    ls = wsub.add_parser("list", help="webhooks and their pending/delivered/failed counts")
    add_url_option(ls)
    ls.set_defaults(handler=run_list)
    d = wsub.add_parser("deliver", help="send the due deliveries now (what the scheduler does)")
    add_url_option(d)
    d.set_defaults(handler=run_deliver)


def _org(session, slug: str) -> Organisation:
    org = session.scalar(select(Organisation).where(Organisation.slug == slug))
    if org is None:
        raise ValueError(f"no organisation {slug!r}; `proficio org list` shows them")
    return org


def run_add(args: argparse.Namespace) -> int:
    with database(args, write=True) as session:
        made = webhooks.create_webhook(session, _org(session, args.org).id, args.url)
    print(f"webhook {made.webhook_id} -> {made.url}")
    print(f"signing secret (shown once): {made.secret}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    with database(args, write=False) as session:
        counts: dict[tuple[int, str], int] = {
            (w, s): n for w, s, n in session.execute(
                select(WebhookDelivery.webhook_id, WebhookDelivery.status, func.count())
                .group_by(WebhookDelivery.webhook_id, WebhookDelivery.status))}
        rows = session.execute(select(Webhook, Organisation.slug).join(Organisation)
                               .where(Webhook.active.is_(True))
                               .order_by(Webhook.id)).all()
        for hook, slug in rows:
            n = {s: counts.get((hook.id, s), 0) for s in ("pending", "delivered", "failed")}
            print(f"{hook.id}  {slug}  {hook.url}  pending {n['pending']}  delivered "
                  f"{n['delivered']}  failed {n['failed']}")
        if not rows:
            print("no webhooks; add one with `proficio webhooks add --org SLUG URL`")
    return 0


def run_deliver(args: argparse.Namespace) -> int:
    with opened_engine(args) as engine:
        run = webhooks.deliver_due(engine)
    print(f"delivered {run.delivered}, to retry {run.retried}, given up {run.failed}")
    return 0
