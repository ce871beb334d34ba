"""No API route reads or writes another workspace's rows.

Every operation that names a row in its path is called with the ids of another workspace's rows
(and a body it would accept) and must answer 404 leaving those rows as they were; every list
operation must leave them out.
"""

import re

import pytest
from django.core import serializers
from django.utils import timezone

from tayori.api.tests.test_operations import OPERATIONS
from tayori.delivery.models import Delivery, Source
from tayori.inbound.models import Bounce, Complaint
from tayori.incidents.models import Incident, Notice, NoticeType
from tayori.members.models import (
    Attribute,
    ConsentRecord,
    ListMembership,
    Member,
    MemberList,
    Segment,
    Suppression,
)
from tayori.webhooks import endpoints
from tayori.webhooks.models import Endpoint, WebhookEvent

# A body each writing operation accepts, so that it reaches the row lookup (not a 422 first).
BODIES = {
    "members_update": {"status": "blocked"},
    "consents_create": {"method": "web form"},
    "consents_withdraw": {"method": "phone"},
    "attributes_update": {"label": "Mine now"},
    "lists_update": {"name": "Mine now"},
    "lists_add_members": {"member_ids": [1]},
    "segments_update": {"name": "Mine now"},
    "delivery_start_send": {},
    "delivery_pause_send": {},
    "delivery_resume_send": {},
    "delivery_cancel_send": {},
    "messages_cancel_message": {},
    "webhooks_update_endpoint": {"description": "Mine now"},
    "webhooks_rotate_secret": {},
    "webhooks_replay_event": {},
}


@pytest.fixture
def theirs(other_workspace):
    attribute = Attribute.objects.create(workspace=other_workspace, key="secret_plan",
                                         label="Secret")
    member = Member.objects.create(workspace=other_workspace, email="theirs@example.jp",
                                   attributes={"secret_plan": "gold"})
    member_list = MemberList.objects.create(workspace=other_workspace, name="Theirs")
    ListMembership.objects.create(member_list=member_list, member=member)
    segment = Segment.objects.create(workspace=other_workspace, name="Theirs", definition={})
    suppression = Suppression.objects.create(workspace=other_workspace, value="x@example.jp",
                                             reason="theirs")
    consent = ConsentRecord.objects.create(workspace=other_workspace, member=member,
                                           method="form")
    source = Source.objects.create(workspace=other_workspace, name="Theirs", status="running",
                                   from_address="a@example.jp", subject="s", segment=segment)
    delivery = Delivery.objects.create(workspace=other_workspace, source=source, member=member,
                                       address=member.email)
    notice = Notice.objects.create(
        workspace=other_workspace, incident=Incident.objects.create(
            workspace=other_workspace, title="Theirs"), type=NoticeType.objects.create(
            workspace=other_workspace, name="Theirs", subject="s", text="t",
            from_address="a@example.jp", target="everyone"))
    bounce = Bounce.objects.create(workspace=other_workspace, delivery=delivery, source=source,
                                   member=member, address=member.email, domain="example.jp",
                                   reason="userunknown", hard=True)
    Complaint.objects.create(workspace=other_workspace, delivery=delivery, source=source,
                             member=member, address=member.email)
    return {"member_id": member.pk, "list_id": member_list.pk, "segment_id": segment.pk,
            "suppression_id": suppression.pk, "consent_id": consent.pk, "key": attribute.key,
            "send_id": source.pk, "delivery_id": delivery.pk, "notice_id": notice.pk,
            "bounce_id": bounce.pk, **_webhook_rows(other_workspace)}


def _webhook_rows(workspace) -> dict:
    endpoint, _secret = endpoints.create(workspace, url="https://theirs.example.jp/hook",
                                         events=["message.sent"])
    event = WebhookEvent.objects.create(workspace=workspace, endpoint=endpoint, uid="evt_theirs",
                                        type="message.sent", body="{}", status="gave_up",
                                        retry_until=timezone.now())
    return {"endpoint_id": endpoint.pk, "event_id": event.pk}


def snapshot(workspace) -> str:
    rows = []
    for model in (Attribute, Member, MemberList, ListMembership, Segment, Suppression,
                  ConsentRecord, Source, Delivery, Notice, Endpoint, WebhookEvent, Bounce,
                  Complaint):
        queryset = model.objects.all()
        field = "member_list__workspace" if model is ListMembership else "workspace"
        rows.extend(queryset.filter(**{field: workspace}).order_by("pk"))
    return serializers.serialize("json", rows)


def _operation_id(operation) -> str:
    return f"{operation.view_func.__module__.rsplit('.', 1)[-1]}_{operation.view_func.__name__}"


WITH_IDS = [(m, r, o) for m, r, o in OPERATIONS if "{" in r]
LISTS = [(m, r, o) for m, r, o in OPERATIONS if "{" not in r and m == "GET"
         and r != "/api/v1/members/lookup"]


@pytest.mark.parametrize("method,route,operation", WITH_IDS,
                         ids=[f"{m} {r}" for m, r, _o in WITH_IDS])
def test_rows_of_another_workspace_are_not_found(api, workspace, other_workspace, theirs,
                                                 method, route, operation):
    Member.objects.create(workspace=workspace, email="mine@example.jp")  # id 1 may be mine
    before = snapshot(other_workspace)
    path = re.sub(r"\{(\w+)\}", lambda m: str(theirs[m.group(1)]), route)
    body = BODIES.get(_operation_id(operation), {})
    call = getattr(api, method.lower())
    response = call(path) if method in ("GET", "DELETE") else call(path, body)
    assert response.status_code == 404, (path, response.content)
    assert snapshot(other_workspace) == before


@pytest.mark.parametrize("method,route,operation", LISTS, ids=[f"{m} {r}" for m, r, _o in LISTS])
def test_lists_leave_out_another_workspaces_rows(api, other_workspace, theirs, method, route,
                                                 operation):
    response = api.get(route)
    assert response.status_code == 200
    assert response.json()["items"] == []


def test_every_operation_with_a_body_has_one_here():
    writing = {_operation_id(o) for m, r, o in WITH_IDS if m in ("POST", "PATCH", "PUT")}
    assert writing <= set(BODIES)
