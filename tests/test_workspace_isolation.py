"""No UI route reads or writes another workspace's rows.

Every row type of every Tayori app is created in ``other_workspace``; an Owner of ``workspace``
then requests every UI route that takes an object id, with the other workspace's ids, by GET and
by POST. Each must answer 404 (or 403; 405 for a GET on a POST-only route), and afterwards every
row of the other workspace must be exactly as it was. Routes with several ids are also tried
with only one foreign id among the operator's own objects, which catches a view that scopes the
outer object and trusts the inner one.

Routes are read from the URL resolver, so new routes are covered the day they are added. To
cover one, say which object each of its kwargs means:

- a kwarg name that always means the same kind of object (``member_pk``, ``role_id``…) goes in
  ``KWARG_MODELS``;
- a generic ``pk`` or ``id`` kwarg goes in ``ROUTE_PK_MODELS`` under the route's URL name;
- a kwarg that is not an object id (``direction``) gets a valid value in ``PLAIN_VALUES``.

A route that serves an object only in some state (an import job with an error report) maps to a
named variant in ``FACTORIES`` instead of a model. A new model needs a factory in ``FACTORIES`` (and, if it has no ``workspace`` field, its path to
the workspace in ``SCOPES``). Unknown kwargs and models fail the tests, so nobody forgets.
"""

import os
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from conftest import make_operator
from tayori.accounts.models import (
    ApiKey,
    AuditEvent,
    IdempotentRequest,
    IPRule,
    Membership,
    Operator,
    Role,
    Workspace,
)
from tayori.campaigns.models import (
    Approval,
    Campaign,
    CampaignSettings,
    ClickNotice,
    Step,
    StepMail,
    StepSent,
)
from tayori.content.models import SenderIdentity, SharedBlock, Template, TemplateFile
from tayori.delivery.models import (
    Delivery,
    DeliverySettings,
    OutboxMessage,
    Relay,
    SenderDomain,
    Source,
    SourceFile,
)
from tayori.inbound.models import (
    Bounce,
    BounceRule,
    Complaint,
    EmptyMail,
    InboundSettings,
    SignupAddress,
)
from tayori.incidents.models import Incident, Notice, NoticeType, Service
from tayori.lib import crypto
from tayori.members.models import (
    Attribute,
    ConsentRecord,
    Job,
    ListMembership,
    Member,
    MemberList,
    Segment,
    Suppression,
)
from tayori.tracking.models import (
    Breakdown,
    Event,
    Link,
    Response,
    Rollup,
    TrackingDomain,
    TrackingSettings,
)
from tayori.webhooks.models import Attempt, Endpoint, WebhookEvent

# The REST API has its own isolation tests; the public tracking routes take signed tokens, not
# ids, and tayori/tracking/tests/test_endpoints.py checks that forged ones are refused. The
# provider feeds (inbound/) take a workspace's secret feed key and a provider's signature.
SKIPPED_INCLUDES = ("api/", "t/", "inbound/")

KWARG_MODELS = {
    "membership_id": Membership,
    "role_id": Role,
    "key_id": ApiKey,
    "rule_id": IPRule,
    "member_pk": Member,
    "list_pk": MemberList,
    "consent_pk": ConsentRecord,
    "file_pk": TemplateFile,
    "type_pk": NoticeType,
}

ROUTE_PK_MODELS = {
    "members:detail": Member,
    "members:edit": Member,
    "members:delete": Member,
    "members:add-to-list": Member,
    "members:remove-from-list": Member,
    "members:consent-add": Member,
    "members:consent-withdraw": Member,
    "members:attribute-edit": Attribute,
    "members:attribute-delete": Attribute,
    "members:attribute-move": Attribute,
    "members:list-detail": MemberList,
    "members:list-edit": MemberList,
    "members:list-delete": MemberList,
    "members:list-add-members": MemberList,
    "members:list-remove-member": MemberList,
    "members:job": Job,
    "members:job-mapping": Job,
    "members:job-progress": Job,
    "members:job-errors": "import job with an error report",
    "members:job-download": Job,
    "members:suppression-delete": Suppression,
    "members:segment": Segment,
    "members:segment-edit": Segment,
    "members:segment-delete": Segment,
    "members:segment-count": Segment,
    "delivery:send": Source,
    "delivery:send-progress": Source,
    "delivery:send-start": Source,
    "delivery:send-pause": Source,
    "delivery:send-resume": Source,
    "delivery:send-cancel": Source,
    "delivery:delivery": Delivery,
    "delivery:outbox-message": OutboxMessage,
    "delivery:outbox-download": OutboxMessage,
    "delivery:relay": Relay,
    "delivery:relay-delete": Relay,
    "delivery:domain-delete": SenderDomain,
    "content:identity": SenderIdentity,
    "content:template": Template,
    "content:template-preview": Template,
    "content:template-copy": Template,
    "content:template-delete": Template,
    "content:template-file": Template,
    "content:template-file-delete": Template,
    "content:shared-block": SharedBlock,
    "campaigns:step-mail": StepMail,
    "campaigns:campaign": Campaign,
    "campaigns:edit": Campaign,
    "campaigns:submit": Campaign,
    "campaigns:decide": Campaign,
    "campaigns:schedule": Campaign,
    "campaigns:copy": Campaign,
    "campaigns:test-send": Campaign,
    "campaigns:control": Campaign,
    "campaigns:non-openers": Campaign,
    "analytics:source": Source,
    "analytics:link-title": Source,
    "analytics:responses-csv": Source,
    "incidents:notice": Notice,
    "incidents:edit": Notice,
    "incidents:progress": Notice,
    "incidents:confirm": Notice,
    "incidents:cancel": Notice,
    "incidents:service": Service,
    "incidents:type": NoticeType,
    "webhooks:endpoint": Endpoint,
    "webhooks:edit": Endpoint,
    "webhooks:secret": Endpoint,
    "webhooks:rotate": Endpoint,
    "webhooks:test": Endpoint,
    "webhooks:active": Endpoint,
    "webhooks:delete": Endpoint,
    "webhooks:replay-failed": Endpoint,
    "webhooks:event": WebhookEvent,
    "webhooks:event-replay": WebhookEvent,
    "inbound:bounce": Bounce,
    "inbound:signup": SignupAddress,
    "inbound:signup-delete": SignupAddress,
}
GENERIC_KWARGS = ("pk", "id")

PLAIN_VALUES = {"direction": "up", "action": "pause"}

# What a hostile form might send: plausible values for the fields Tayori's forms use.
POST_DATA = {
    "name": "Taken over", "label": "Taken over", "key": "taken_over", "email": "x@example.jp",
    "phone": "09012345678", "status": "blocked", "permissions": ["members.view"],
    "cidr": "0.0.0.0/0", "note": "x", "reason": "x", "method": "web", "emails": "x@example.jp",
    "confirm": "on",
}


# --- rows in a workspace ---------------------------------------------------------------------

JOB_FILES = SimpleNamespace(directory=None)


@pytest.fixture(autouse=True)
def _job_files(tmp_path):
    JOB_FILES.directory = str(tmp_path)
    yield
    JOB_FILES.directory = None


def _operator_row(workspace, tag):
    return make_operator(workspace, f"{tag}-{workspace.slug}@example.jp", "Viewer")


def _membership(workspace, tag, objects):
    seat_holder = make_operator(workspace, f"seat-{tag}-{workspace.slug}@example.jp",
                                objects[Role].name)
    return Membership.objects.get(workspace=workspace, operator=seat_holder)


def _member(workspace, tag):
    return Member.objects.create(workspace=workspace, email=f"{tag}@{workspace.slug}.example.jp",
                                 phone="+819012345678", attributes={"plan": "gold"})


def _list_membership(workspace, tag, objects):
    return ListMembership.objects.create(member_list=objects[MemberList], member=objects[Member])


def _consent(workspace, tag, objects):
    return ConsentRecord.objects.create(workspace=workspace, member=objects[Member], method="web")


def _job(workspace, tag, kind):
    path = os.path.join(JOB_FILES.directory, f"{workspace.slug}-{tag}-{kind}.csv")
    with open(path, "w", encoding="utf-8") as out:
        out.write("line,column,reason\n2,email,secret of " + workspace.slug + "\n")
    return Job.objects.create(workspace=workspace, kind=kind, state=Job.State.DONE,
                              file_name=f"{tag}.csv", output_path=path, total=1, processed=1)


# Model (or a named variant) -> factory(workspace, tag[, objects made so far]); the order matters for dependencies.
FACTORIES = {
    Role: lambda ws, tag: Role.objects.create(workspace=ws, name=f"Custom {tag}",
                                              permissions=["members.view"]),
    Operator: _operator_row,
    Membership: _membership,
    AuditEvent: lambda ws, tag: AuditEvent.objects.create(workspace=ws, action="login",
                                                          target=tag),
    # Open to all IPv4 so the test client (127.0.0.1) is let in.
    IPRule: lambda ws, tag: IPRule.objects.create(workspace=ws, cidr="0.0.0.0/0", note=tag),
    ApiKey: lambda ws, tag: ApiKey.issue(ws, f"key {tag}", ["members.view"])[0],
    IdempotentRequest: lambda ws, tag: IdempotentRequest.objects.create(
        workspace=ws, api_key=ApiKey.objects.filter(workspace=ws).first(), key=tag,
        fingerprint="0" * 64, status_code=201, body=b"{}"),
    Attribute: lambda ws, tag: Attribute.objects.create(workspace=ws, key=f"plan_{tag}",
                                                        label="Plan"),
    Member: _member,
    MemberList: lambda ws, tag: MemberList.objects.create(workspace=ws, name=f"List {tag}"),
    ListMembership: _list_membership,
    ConsentRecord: _consent,
    Suppression: lambda ws, tag: Suppression.objects.create(
        workspace=ws, value=f"{tag}@blocked.example.jp", reason="complaint",
        expires_at=timezone.now() + timedelta(days=30)),
    Segment: lambda ws, tag: Segment.objects.create(workspace=ws, name=f"Segment {tag}"),
    Job: lambda ws, tag: _job(ws, tag, Job.Kind.EXPORT),
    DeliverySettings: lambda ws, tag: DeliverySettings.of(ws),
    Source: lambda ws, tag: Source.objects.create(
        workspace=ws, name=f"Send {tag}", from_address=f"news@{ws.slug}.example.jp",
        subject=f"Subject {tag}", html="<p>{{ email }}</p>", status=Source.Status.PAUSED),
    Delivery: lambda ws, tag, objects: Delivery.objects.create(
        workspace=ws, source=objects[Source], member=objects[Member],
        address=objects[Member].email, status="sent", smtp_reply="250 ok " + ws.slug),
    OutboxMessage: lambda ws, tag, objects: OutboxMessage.objects.create(
        workspace=ws, delivery=objects[Delivery], source=objects[Source],
        mail_from=objects[Source].from_address, recipient=objects[Delivery].address,
        subject=f"Subject {tag}", raw=b"Subject: secret of " + ws.slug.encode() + b"\r\n\r\nhi"),
    SenderDomain: lambda ws, tag: SenderDomain.objects.create(
        workspace=ws, domain=f"{tag}.{ws.slug}.example.jp"),
    Relay: lambda ws, tag: Relay.objects.create(workspace=ws, name=f"Relay {tag}",
                                                host="127.0.0.1", port=2525),
    SourceFile: lambda ws, tag, objects: SourceFile.objects.create(
        source=objects[Source], filename=f"{tag}.pdf", content_type="application/pdf",
        data=b"%PDF secret of " + ws.slug.encode()),
    SenderIdentity: lambda ws, tag: SenderIdentity.objects.create(
        workspace=ws, label=f"Sender {tag}", from_address=f"news@{ws.slug}.example.jp"),
    SharedBlock: lambda ws, tag: SharedBlock.objects.create(
        workspace=ws, name=f"Footer {tag}", block={"kind": "text", "text": tag}),
    Template: lambda ws, tag: Template.objects.create(
        workspace=ws, name=f"Template {tag}", subject=f"Subject {tag}",
        blocks=[{"kind": "text", "text": "secret of " + ws.slug}]),
    TemplateFile: lambda ws, tag, objects: TemplateFile.objects.create(
        template=objects[Template], filename=f"{tag}.pdf", content_type="application/pdf",
        data=b"%PDF", size=4),
    CampaignSettings: lambda ws, tag: CampaignSettings.objects.get_or_create(workspace=ws)[0],
    Campaign: lambda ws, tag, objects: Campaign.objects.create(
        workspace=ws, name=f"Campaign {tag}", identity=objects[SenderIdentity],
        template=objects[Template], include_segments=[objects[Segment].pk]),
    Approval: lambda ws, tag, objects: Approval.objects.create(
        campaign=objects[Campaign], revision=1, stage=1, decision="approved"),
    StepMail: lambda ws, tag, objects: StepMail.objects.create(
        workspace=ws, name=f"Steps {tag}", identity=objects[SenderIdentity]),
    Step: lambda ws, tag, objects: Step.objects.create(
        step_mail=objects[StepMail], trigger="after_signup", template=objects[Template]),
    StepSent: lambda ws, tag, objects: StepSent.objects.create(
        step=objects[Step], member_id=objects[Member].pk),
    ClickNotice: lambda ws, tag, objects: ClickNotice.objects.create(
        campaign=objects[Campaign], member=objects[Member]),
    TrackingSettings: lambda ws, tag: TrackingSettings.objects.get_or_create(workspace=ws)[0],
    TrackingDomain: lambda ws, tag: TrackingDomain.objects.create(
        workspace=ws, host=f"t-{tag}.{ws.slug}.example.jp"),
    Link: lambda ws, tag, objects: Link.objects.create(
        source=objects[Source], index=0, url=f"https://{ws.slug}.example.jp/secret"),
    Event: lambda ws, tag, objects: Event.objects.create(
        workspace=ws, source=objects[Source], delivery=objects[Delivery],
        member=objects[Member], kind="click", link_index=0, at=timezone.now()),
    Response: lambda ws, tag, objects: Response.objects.create(
        delivery=objects[Delivery], workspace=ws, source=objects[Source],
        member=objects[Member], clicks=1, clicked_at=timezone.now()),
    Rollup: lambda ws, tag, objects: Rollup.objects.create(
        workspace=ws, source=objects[Source], kind="click", total=1, unique=1,
        hour=timezone.now().replace(minute=0, second=0, microsecond=0)),
    Breakdown: lambda ws, tag, objects: Breakdown.objects.create(
        workspace=ws, source=objects[Source], kind="click", dimension="link", value="0",
        total=1, unique=1),
    Service: lambda ws, tag: Service.objects.create(workspace=ws, code=f"svc_{tag}",
                                                    name=f"Service {tag}"),
    NoticeType: lambda ws, tag: NoticeType.objects.create(
        workspace=ws, name=f"Outage {tag}", subject="{{ notice.what }}",
        text="secret of " + ws.slug, from_address=f"status@{ws.slug}.example.jp", target="everyone",
        fields=[{"key": "what", "label": "What", "kind": "text", "required": True}]),
    Incident: lambda ws, tag: Incident.objects.create(workspace=ws, title=f"Incident {tag}"),
    Notice: lambda ws, tag, objects: Notice.objects.create(
        workspace=ws, type=objects[NoticeType], incident=objects[Incident],
        values={"what": "secret of " + ws.slug}, subject=f"Subject {tag}"),
    Endpoint: lambda ws, tag: Endpoint.objects.create(
        workspace=ws, url=f"https://{ws.slug}.example.jp/hooks/{tag}", events=["message.sent"],
        secret=crypto.encrypt(f"whsec_secret-of-{ws.slug}")),
    WebhookEvent: lambda ws, tag, objects: WebhookEvent.objects.create(
        workspace=ws, endpoint=objects[Endpoint], uid=f"evt_{tag}_{ws.slug}", type="message.sent",
        body='{"secret": "' + ws.slug + '"}', status="gave_up", retry_until=timezone.now()),
    Attempt: lambda ws, tag, objects: Attempt.objects.create(
        workspace=ws, endpoint=objects[Endpoint], event=objects[WebhookEvent], number=1,
        status_code=500, response="secret of " + ws.slug),
    InboundSettings: lambda ws, tag: InboundSettings.of(ws),
    BounceRule: lambda ws, tag: BounceRule.objects.create(
        workspace=ws, reason="mailboxfull", threshold=2, window_days=7, suppress_days=14),
    Bounce: lambda ws, tag, objects: Bounce.objects.create(
        workspace=ws, delivery=objects[Delivery], source=objects[Source],
        member=objects[Member], address=objects[Member].email,
        domain=objects[Member].email.rpartition("@")[2], reason="userunknown", hard=True,
        diagnostic="550 unknown " + ws.slug, raw=b"Subject: secret of " + ws.slug.encode()),
    Complaint: lambda ws, tag, objects: Complaint.objects.create(
        workspace=ws, delivery=objects[Delivery], source=objects[Source],
        member=objects[Member], address=objects[Member].email, feedback_type="abuse",
        raw=b"Subject: secret of " + ws.slug.encode()),
    SignupAddress: lambda ws, tag, objects: SignupAddress.objects.create(
        workspace=ws, code=f"{tag}-{ws.slug}", name=f"Sign-up {tag}",
        member_list=objects[MemberList], subject="secret of " + ws.slug,
        text="{{ data.confirm_url }}"),
    EmptyMail: lambda ws, tag, objects: EmptyMail.objects.create(
        workspace=ws, signup=objects[SignupAddress], sender=objects[Member].email,
        member=objects[Member], outcome="replied"),
    # Some routes only serve an object in a particular state; a variant provides one, so that a
    # view that forgot the workspace would really hand it out.
    "import job with an error report": lambda ws, tag: _job(ws, tag, Job.Kind.IMPORT),
}

# How to find a workspace's rows of a model that has no ``workspace`` field.
SCOPES = {
    Operator: "memberships__workspace",
    ListMembership: "member_list__workspace",
    SourceFile: "source__workspace",
    TemplateFile: "template__workspace",
    Approval: "campaign__workspace",
    Step: "step_mail__workspace",
    StepSent: "step__step_mail__workspace",
    Link: "source__workspace",
    ClickNotice: "campaign__workspace",
}
NOT_WORKSPACE_DATA = {Workspace}  # checked as a row of its own below


def tayori_models():
    return [m for m in apps.get_models() if m.__module__.startswith("tayori.")]


def scope_of(model) -> str:
    if model in SCOPES:
        return SCOPES[model]
    try:
        model._meta.get_field("workspace")
    except FieldDoesNotExist:
        raise LookupError(f"{model.__name__}: no workspace field and no entry in SCOPES") from None
    return "workspace"


def make_rows(workspace, tag) -> dict:
    objects = {}
    for model, factory in FACTORIES.items():
        args = (workspace, tag, objects) if factory.__code__.co_argcount == 3 else (workspace, tag)
        objects[model] = factory(*args)
    return objects


def snapshot(workspace) -> dict:
    rows = {"Workspace": list(Workspace.objects.filter(pk=workspace.pk).values())}
    for model in tayori_models():
        if model in NOT_WORKSPACE_DATA:
            continue
        query = model.objects.filter(**{scope_of(model): workspace}).distinct()
        rows[model.__name__] = list(query.order_by("pk").values())
    return rows


# --- routes ----------------------------------------------------------------------------------

def routes_with_kwargs():
    """(url name, kwarg names) of every UI route that takes kwargs."""
    found = []

    def walk(patterns, prefix="", namespace=""):
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                if route in SKIPPED_INCLUDES:
                    continue
                inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry.url_patterns, route, inner)
            elif isinstance(entry, URLPattern):
                kwargs = list(entry.pattern.regex.groupindex)
                if kwargs:
                    found.append((f"{namespace}{entry.name}", route, kwargs))

    walk(get_resolver().url_patterns)
    return found


def model_for(url_name: str, kwarg: str):
    if kwarg in KWARG_MODELS:
        return KWARG_MODELS[kwarg]
    if kwarg in GENERIC_KWARGS:
        return ROUTE_PK_MODELS.get(url_name)
    return None


def unmapped() -> list[str]:
    problems = []
    for url_name, route, kwargs in routes_with_kwargs():
        for kwarg in kwargs:
            if kwarg not in PLAIN_VALUES and model_for(url_name, kwarg) is None:
                problems.append(f"{route} ({url_name}): kwarg {kwarg!r} is not mapped")
    return problems


def kwarg_sets(url_name, kwargs, foreign, own):
    """All-foreign ids, then (with several ids) each id foreign alone among own objects."""
    ids = [k for k in kwargs if k not in PLAIN_VALUES]
    plain = {k: PLAIN_VALUES[k] for k in kwargs if k in PLAIN_VALUES}

    def build(foreign_ids):
        values = dict(plain)
        for kwarg in ids:
            source = foreign if kwarg in foreign_ids else own
            values[kwarg] = source[model_for(url_name, kwarg)].pk
        return values

    yield build(set(ids))
    if len(ids) > 1:
        for kwarg in ids:
            yield build({kwarg})


# --- tests -----------------------------------------------------------------------------------

def test_every_model_has_a_factory_and_a_workspace_scope():
    models = set(tayori_models()) - NOT_WORKSPACE_DATA
    made = {key for key in FACTORIES if not isinstance(key, str)}
    assert sorted(m.__name__ for m in models - made) == []
    for model in models:
        scope_of(model)


def test_every_route_kwarg_is_mapped_to_an_object():
    assert unmapped() == []


def test_the_route_table_names_only_routes_that_exist():
    names = {url_name for url_name, _route, _kwargs in routes_with_kwargs()}
    assert sorted(set(ROUTE_PK_MODELS) - names) == []


@pytest.fixture(params=["stranger", "member of both"])
def signed_in_owner(request, client, owner, other_workspace):
    """An Owner of ``workspace``; in the second case also an Owner of the other workspace,
    with ``workspace`` chosen, so a view that asks 'may this operator see that workspace?'
    instead of 'is it the current one?' is caught too."""
    if request.param == "member of both":
        Membership.objects.create(workspace=other_workspace, operator=owner,
                                  role=Role.objects.get(workspace=other_workspace, name="Owner"))
    client.force_login(owner)
    return client


def test_no_ui_route_reaches_another_workspaces_rows(signed_in_owner, workspace,
                                                     other_workspace, outsider):
    assert unmapped() == [], "map every kwarg first (see the module docstring)"
    client = signed_in_owner
    own = make_rows(workspace, "own")
    foreign = make_rows(other_workspace, "theirs")
    before = snapshot(other_workspace)
    failures, tried = [], 0
    for url_name, _route, kwargs in routes_with_kwargs():
        for values in kwarg_sets(url_name, kwargs, foreign, own):
            url = reverse(url_name, kwargs=values)
            get = client.get(url)
            post = client.post(url, POST_DATA)
            tried += 1
            if get.status_code not in (403, 404, 405):
                failures.append(f"GET {url} ({url_name}) answered {get.status_code}")
            if post.status_code not in (403, 404):
                failures.append(f"POST {url} ({url_name}) answered {post.status_code}")
    assert failures == []
    assert tried >= len(routes_with_kwargs())
    after = snapshot(other_workspace)
    changed = [name for name in before if before[name] != after[name]]
    assert changed == [], f"rows of the other workspace changed: {changed}"


def test_the_owner_can_reach_their_own_objects(owner_client, workspace):
    """The same requests with the operator's own ids do reach the views (the 404s above are
    not an accident of how the test builds URLs)."""
    own = make_rows(workspace, "own")
    reached = 0
    for url_name, _route, kwargs in routes_with_kwargs():
        values = next(kwarg_sets(url_name, kwargs, own, own))
        if owner_client.get(reverse(url_name, kwargs=values)).status_code in (200, 302, 405):
            reached += 1
    assert reached == len(routes_with_kwargs())


def test_kwarg_sets_try_one_foreign_id_at_a_time():
    foreign = {Member: type("Row", (), {"pk": 1}), MemberList: type("Row", (), {"pk": 2})}
    own = {Member: type("Row", (), {"pk": 10}), MemberList: type("Row", (), {"pk": 20})}
    sets = list(kwarg_sets("members:list-remove-member", ["pk", "member_pk"], foreign, own))
    assert sets == [{"pk": 2, "member_pk": 1}, {"pk": 2, "member_pk": 10},
                    {"pk": 20, "member_pk": 1}]
