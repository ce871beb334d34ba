"""Step mails at work: each active step owns a running delivery Source; every scheduler tick
finds the members a step is due for with one query and adds them in two statements (the
once-only record, then their delivery rows). Nothing loops over members in Python.

A step "N days after a response" reads tracking's Response rows: the member's first open,
click or conversion of the chosen mail (or of any mail) fell on a day N days ago or later."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from tayori.campaigns.models import Step, StepMail, StepSent
from tayori.campaigns.services import assembled_source_fields, copy_files
from tayori.delivery import queue
from tayori.delivery.models import Source
from tayori.members.models import Member
from tayori.members.segments import SegmentError, segment_queryset
from tayori.members.segments.days import day_start
from tayori.tracking.models import Response
from tayori.tracking.responses import STAMPS

_SENT = StepSent._meta.db_table
# ON CONFLICT DO NOTHING (SQLite ≥ 3.24 and PostgreSQL): a second scheduler racing this one
# inserts nothing, so a member is never mailed twice for one occurrence. SQLite would read the
# ON as a join's unless the SELECT has a WHERE.
_RECORD = f"""
INSERT INTO {_SENT} (step_id, member_id, occurrence, at)
SELECT %s, id, %s, %s FROM ({{due}}) AS due WHERE true
ON CONFLICT (step_id, member_id, occurrence) DO NOTHING
"""


def _source_fields(step: Step) -> dict:
    step_mail = step.step_mail
    return assembled_source_fields(step.template.content(), step_mail.identity,
                                   step_mail.workspace)


@transaction.atomic
def activate(step_mail: StepMail) -> None:
    """Give every step a running Source with the template's current content."""
    for step in step_mail.steps.select_related("template", "step_mail__identity"):
        if step.source_id is None:
            step.source = Source.objects.create(
                workspace=step_mail.workspace, kind=Source.Kind.STEP,
                name=f"{step_mail.name} #{step.position}", status=Source.Status.RUNNING,
                started_at=timezone.now(), tracking=True, **_source_fields(step))
            copy_files(step.template, step.source)
            step.save(update_fields=["source"])
        else:
            Source.objects.filter(pk=step.source_id).update(status=Source.Status.RUNNING,
                                                            **_source_fields(step))
    step_mail.active = True
    step_mail.save(update_fields=["active"])


def deactivate(step_mail: StepMail) -> None:
    Source.objects.filter(step__step_mail=step_mail).update(status=Source.Status.PAUSED)
    step_mail.active = False
    step_mail.save(update_fields=["active"])


def reassemble_steps(workspace) -> int:
    steps = list(Step.objects.filter(step_mail__workspace=workspace, step_mail__active=True,
                                     source__isnull=False).select_related(
        "template", "step_mail__identity", "step_mail__workspace"))
    for step in steps:
        Source.objects.filter(pk=step.source_id).update(**_source_fields(step))
    return len(steps)


def due_members(step: Step, now: dt.datetime):
    """The members ``step`` is due for now (before subtracting those already sent), or None
    when it is not yet the step's time of day."""
    step_mail = step.step_mail
    workspace = step_mail.workspace
    local = now.astimezone(ZoneInfo(workspace.time_zone))
    today = local.date()
    if local.time() < step.at:
        return None
    conditions = [step_mail.audience, step.condition, _trigger(step, today)]
    definition = {"op": "and", "conditions": [c for c in conditions if c]}
    members = segment_queryset(workspace, definition, now=now).filter(
        status=Member.Status.ACTIVE).exclude(email="")
    if step.trigger == Step.Trigger.AFTER_PREVIOUS:
        previous = Step.objects.filter(step_mail=step_mail, position__lt=step.position).order_by(
            "-position").first()
        if previous is None:
            return None
        # Sent at least N days ago, counted in local days.
        cutoff = dt.datetime.combine(today - dt.timedelta(days=step.days - 1), dt.time(),
                                     tzinfo=local.tzinfo)
        members = members.filter(pk__in=StepSent.objects.filter(
            step=previous, at__lt=cutoff).values("member_id"))
    if step.trigger == Step.Trigger.AFTER_EVENT:
        if step.event not in STAMPS:
            return None
        members = members.filter(_responded(step, today, ZoneInfo(workspace.time_zone)))
    if step_mail.goal:
        members = members.exclude(pk__in=segment_queryset(workspace, step_mail.goal, now=now)
                                  .values("id"))
    return members.exclude(pk__in=StepSent.objects.filter(
        step=step, occurrence=_occurrence(step, today)).values("member_id"))


def _trigger(step: Step, today: dt.date) -> dict | None:
    """The trigger as a segment condition. Dates since the step was made fire (a scheduler
    that was down catches up); older ones never do."""
    low = step.since - dt.timedelta(days=step.days)
    high = today - dt.timedelta(days=step.days)
    if step.trigger == Step.Trigger.AFTER_DATE:
        return {"field": step.attribute, "operator": "between",
                "value": [low.isoformat(), high.isoformat()]}
    if step.trigger == Step.Trigger.AFTER_SIGNUP:
        return {"field": "created_at", "operator": "between",
                "value": [low.isoformat(), high.isoformat()]}
    if step.trigger == Step.Trigger.YEARLY:
        return {"field": step.attribute, "operator": "anniversary_within_days", "value": 0}
    return None


def _responded(step: Step, today: dt.date, tz: ZoneInfo) -> Exists:
    """The member's first open / click / conversion of the step's mail (any mail when none is
    chosen) fell on a day from ``since``−N to today−N, counted in the workspace's days."""
    low = step.since - dt.timedelta(days=step.days)
    high = today - dt.timedelta(days=step.days)
    stamp = STAMPS[step.event]
    rows = Response.objects.filter(workspace_id=step.step_mail.workspace_id,
                                   member_id=OuterRef("pk"), **{
                                       f"{stamp}__gte": day_start(low, tz),
                                       f"{stamp}__lt": day_start(high + dt.timedelta(days=1), tz)})
    if step.event_source_id is not None:
        rows = rows.filter(source_id=step.event_source_id)
    return Exists(rows)


def _occurrence(step: Step, today: dt.date) -> int:
    return today.year if step.trigger == Step.Trigger.YEARLY else 0


def fire(*, now: dt.datetime | None = None) -> int:
    """Add the due members of every active step to its source; returns rows added."""
    now = now or timezone.now()
    added = 0
    steps = Step.objects.filter(step_mail__active=True, source__status=Source.Status.RUNNING
                                ).select_related("step_mail__workspace", "source")
    for step in steps:
        try:
            members = due_members(step, now)
        except SegmentError:  # an attribute the step relies on was deleted
            continue
        if members is None:
            continue
        added += _send(step, members, now)
    return added


@transaction.atomic
def _send(step: Step, members, now: dt.datetime) -> int:
    today = now.astimezone(ZoneInfo(step.step_mail.workspace.time_zone)).date()
    due_sql, params = members.order_by().values("id").query.sql_with_params()
    # Stored as the ORM stores it (naive UTC text on SQLite), so ``at=now`` below finds it.
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(_RECORD.format(due=due_sql), [step.pk, _occurrence(step, today), at,
                                                     *params])
        if not cursor.rowcount:
            return 0
    fresh = Member.objects.filter(pk__in=StepSent.objects.filter(step=step, at=now)
                                  .values("member_id"))
    return queue.add_rows(step.source, fresh, now=now)
