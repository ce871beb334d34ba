"""A campaign from draft to the recipients' inboxes: two-stage approval, edits and rejections
voiding approvals, scheduling (now and later), the audience, per-member blocks and subjects in
the sandbox outbox, shared blocks changed before the start, test sends and the audit trail."""

import asyncio
import datetime as dt
import email
import email.policy

import pytest
from django.test import RequestFactory
from django.utils import timezone, translation

from conftest import make_operator
from tayori.accounts.models import AuditEvent, Role
from tayori.campaigns import services
from tayori.campaigns.models import Approval, Campaign, CampaignSettings
from tayori.campaigns.services import CampaignError
from tayori.content.models import SenderIdentity, SharedBlock, Template
from tayori.delivery import scheduler
from tayori.delivery.engine import Worker
from tayori.delivery.models import Delivery, OutboxMessage, Source
from tayori.members.models import Attribute, ListMembership, Member, MemberList, Segment

pytestmark = pytest.mark.django_db(transaction=True)

TOKYO = {"op": "and", "conditions": [{"field": "prefecture", "operator": "equals",
                                      "value": "東京都"}]}


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def drain() -> int:
    return asyncio.run(Worker(name="test").drain())


def parse(raw: bytes):
    return email.message_from_bytes(bytes(raw), policy=email.policy.default)


def request_as(operator, workspace):
    request = RequestFactory().post("/")
    request.user = operator
    request.workspace = workspace
    return request


@pytest.fixture
def team(workspace):
    return {"editor": make_operator(workspace, "editor@sample.jp", "Editor"),
            "approver": make_operator(workspace, "approver@sample.jp", "Approver"),
            "admin": make_operator(workspace, "admin@sample.jp", "Admin"),
            "analyst": make_operator(workspace, "analyst@sample.jp", "Analyst"),
            "approver2": make_operator(workspace, "approver2@sample.jp", "Approver")}


@pytest.fixture
def policy(workspace):
    """Stage 1 by an Approver, stage 2 by an Admin."""
    return CampaignSettings.objects.create(
        workspace=workspace, stage1=Role.objects.get(workspace=workspace, name="Approver"),
        stage2=Role.objects.get(workspace=workspace, name="Admin"),
        test_addresses="qa@sample.jp\nboss@sample.jp")


@pytest.fixture
def people(workspace):
    """Tokyo and Osaka members in the segment, one more in the included list, one excluded by
    a list, one outside everything and one unsubscribed."""
    Attribute.objects.create(workspace=workspace, key="name", label="氏名", type="text")
    Attribute.objects.create(workspace=workspace, key="prefecture", label="都道府県", type="text")
    create = Member.objects.create
    people = {
        "taro": create(workspace=workspace, email="taro@example.jp",
                       attributes={"name": "太郎", "prefecture": "東京都"}),
        "hana": create(workspace=workspace, email="hana@example.jp",
                       attributes={"name": "花子", "prefecture": "大阪府"}),
        "kumi": create(workspace=workspace, email="kumi@example.jp",
                       attributes={"name": "久美"}),
        "jiro": create(workspace=workspace, email="jiro@example.jp",
                       attributes={"name": "次郎", "prefecture": "東京都"}),
        "saki": create(workspace=workspace, email="saki@example.jp", attributes={"name": "咲"}),
        "gone": create(workspace=workspace, email="gone@example.jp", status="unsubscribed",
                       attributes={"name": "元", "prefecture": "東京都"}),
    }
    segment = Segment.objects.create(workspace=workspace, name="with prefecture", definition={
        "op": "and", "conditions": [{"field": "prefecture", "operator": "is_not_empty"}]})
    included = MemberList.objects.create(workspace=workspace, name="friends")
    excluded = MemberList.objects.create(workspace=workspace, name="staff")
    ListMembership.objects.create(member_list=included, member=people["kumi"])
    ListMembership.objects.create(member_list=excluded, member=people["jiro"])
    people["segment"], people["included"], people["excluded"] = segment, included, excluded
    return people


@pytest.fixture
def shared(workspace):
    return SharedBlock.objects.create(workspace=workspace, name="campaign banner",
                                      block={"kind": "text", "text": "冬のセール開催中"})


@pytest.fixture
def campaign(workspace, team, people, shared):
    identity = SenderIdentity.objects.create(
        workspace=workspace, label="news", from_name="サンプル", from_address="news@example.jp",
        organization="株式会社サンプル", postal_address="東京都千代田区丸の内1-1",
        contact="03-1234-5678")
    template = Template.objects.create(
        workspace=workspace, name="winter", subject="{{ member.name }}様 冬のお知らせ",
        subject_variants=[{"condition": TOKYO, "subject": "東京の{{ member.name }}様へ"}],
        blocks=[{"kind": "text", "text": "{{ member.name }}様、こんにちは"},
                {"kind": "text", "text": "東京店の新装開店", "condition": TOKYO},
                {"kind": "shared", "shared_id": shared.pk},
                {"kind": "footer"}])
    return Campaign.objects.create(
        workspace=workspace, name="冬のお知らせ", identity=identity, template=template,
        include_segments=[people["segment"].pk], include_lists=[people["included"].pk],
        exclude_lists=[people["excluded"].pk], created_by=team["editor"])


def approve_all(campaign, team, workspace):
    services.submit(campaign, request_as(team["editor"], workspace))
    services.decide(campaign, request_as(team["approver"], workspace), approve=True)
    services.decide(campaign, request_as(team["admin"], workspace), approve=True)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.APPROVED


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(CampaignError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def test_two_stage_approval(workspace, team, policy, campaign):
    as_ = {name: request_as(operator, workspace) for name, operator in team.items()}
    assert "approved" in refused(services.schedule, campaign, as_["admin"])
    services.submit(campaign, as_["editor"])
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.AWAITING
    assert campaign.snapshot["subject"] == "{{ member.name }}様 冬のお知らせ"

    assert "own campaign" in refused(services.decide, campaign, as_["editor"], approve=True)
    # Stage 1 belongs to the Approver role: neither an Admin nor an Analyst may give it.
    assert "Approver" in refused(services.decide, campaign, as_["admin"], approve=True)
    assert "Approver" in refused(services.decide, campaign, as_["analyst"], approve=True)
    assert not Approval.objects.exists()

    services.decide(campaign, as_["approver"], approve=True, comment="OK")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.AWAITING
    assert services.next_stage(campaign)[0] == 2
    # Stage 2 is the Admin's; the first approver may not give it twice under another hat.
    assert "Admin" in refused(services.decide, campaign, as_["approver2"], approve=True)
    assert refused(services.decide, campaign, as_["approver"], approve=True)
    assert "approved" in refused(services.schedule, campaign, as_["admin"])

    services.decide(campaign, as_["admin"], approve=True)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.APPROVED
    assert [(a.stage, a.approver, a.recipients) for a in Approval.objects.order_by("stage")] == [
        (1, team["approver"], 3), (2, team["admin"], 3)]  # taro, hana and kumi
    assert services.next_stage(campaign) is None
    assert "not awaiting" in refused(services.decide, campaign, as_["admin"], approve=True)


def test_an_edit_voids_the_approvals_given_so_far(workspace, team, policy, campaign):
    approve_all(campaign, team, workspace)
    services.edited(campaign, request_as(team["editor"], workspace), name="冬のお知らせ(改)")
    campaign.refresh_from_db()
    assert (campaign.status, campaign.revision, campaign.name) == ("draft", 2, "冬のお知らせ(改)")
    assert services.approvals_of(campaign) == []
    assert refused(services.schedule, campaign, request_as(team["admin"], workspace))
    services.submit(campaign, request_as(team["editor"], workspace))
    campaign.refresh_from_db()
    assert services.next_stage(campaign)[0] == 1  # every stage again
    assert "Approver" in refused(services.decide, campaign, request_as(team["admin"], workspace),
                                 approve=True)
    event = AuditEvent.objects.get(action="campaign.edit")
    assert event.detail["approvals_reset"] is True and event.detail["revision"] == 2


def test_a_rejection_returns_the_campaign_to_draft_and_it_starts_over(workspace, team, policy,
                                                                      campaign):
    as_ = {name: request_as(operator, workspace) for name, operator in team.items()}
    services.submit(campaign, as_["editor"])
    services.decide(campaign, as_["approver"], approve=True)
    services.decide(campaign, as_["admin"], approve=False, comment="価格が違います")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    rejection = Approval.objects.get(decision="rejected")
    assert (rejection.stage, rejection.comment) == (2, "価格が違います")
    assert refused(services.schedule, campaign, as_["admin"])
    assert refused(services.decide, campaign, as_["admin"], approve=True)
    # The template is corrected and the campaign submitted again: the first stage's approval
    # was given to the rejected content and no longer counts.
    campaign.template.subject = "{{ member.name }}様 冬のお知らせ(訂正)"
    campaign.template.save()
    services.submit(campaign, as_["editor"])
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.AWAITING
    assert services.next_stage(campaign)[0] == 1
    assert "Approver" in refused(services.decide, campaign, as_["admin"], approve=True)
    services.decide(campaign, as_["approver"], approve=True)
    services.decide(campaign, as_["admin"], approve=True)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.APPROVED
    assert AuditEvent.objects.filter(action="campaign.reject").count() == 1


def test_without_stages_a_submitted_campaign_is_approved(workspace, team, campaign):
    services.submit(campaign, request_as(team["editor"], workspace))
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.APPROVED


def test_submit_needs_an_audience_and_a_draft(workspace, team, policy, campaign, people):
    as_editor = request_as(team["editor"], workspace)
    campaign.include_segments, campaign.include_lists = [], []
    campaign.save()
    assert "segment or list" in refused(services.submit, campaign, as_editor)
    # A list deleted since it was chosen is refused with the reason, the campaign unchanged.
    campaign.include_lists = [people["included"].pk + 100]
    campaign.save()
    assert "does not exist" in refused(services.submit, campaign, as_editor)
    campaign.refresh_from_db()
    assert (campaign.status, campaign.snapshot) == ("draft", None)
    campaign.include_lists = [people["included"].pk]
    campaign.save()
    services.submit(campaign, as_editor)
    assert "draft" in refused(services.submit, campaign, as_editor)


def test_a_scheduled_campaign_reaches_its_audience_with_each_members_blocks(
        workspace, team, policy, campaign, people):
    approve_all(campaign, team, workspace)
    source = services.schedule(campaign, request_as(team["admin"], workspace))
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING and campaign.source == source
    rows = {d.address: d for d in Delivery.objects.filter(source=source)}
    # In the segment or the included list, minus the excluded list; the unsubscribed member
    # is skipped with the reason.
    assert {a for a, d in rows.items() if d.status == "queued"} == {
        "taro@example.jp", "hana@example.jp", "kumi@example.jp"}
    assert rows["gone@example.jp"].skip_reason == "unsubscribed"
    assert "jiro@example.jp" not in rows and "saki@example.jp" not in rows

    assert drain() == 3
    mails = {m.recipient: parse(m.raw) for m in OutboxMessage.objects.filter(source=source)}
    assert set(mails) == {"taro@example.jp", "hana@example.jp", "kumi@example.jp"}
    taro, hana = mails["taro@example.jp"], mails["hana@example.jp"]
    assert taro["Subject"] == "東京の太郎様へ"
    assert hana["Subject"] == "花子様 冬のお知らせ"
    assert mails["kumi@example.jp"]["Subject"] == "久美様 冬のお知らせ"
    for message, name, tokyo in ((taro, "太郎", True), (hana, "花子", False)):
        for part in (message.get_body(("html",)), message.get_body(("plain",))):
            body = part.get_content()
            assert f"{name}様、こんにちは" in body
            assert ("東京店の新装開店" in body) is tokyo
            assert body.count("東京店の新装開店") == (1 if tokyo else 0)
            assert "冬のセール開催中" in body and "株式会社サンプル" in body
    services.refresh([campaign])
    assert campaign.status == Campaign.Status.SENDING
    scheduler.tick()
    campaign.refresh_from_db()
    services.refresh([campaign])
    assert campaign.status == Campaign.Status.FINISHED

    actions = set(AuditEvent.objects.filter(target=f"campaign:{campaign.pk}")
                  .values_list("action", flat=True))
    assert {"campaign.submit", "campaign.approve", "campaign.schedule"} <= actions
    approve = AuditEvent.objects.filter(action="campaign.approve").order_by("id")
    assert [(e.operator, e.detail["stage"]) for e in approve] == [
        (team["approver"], 1), (team["admin"], 2)]
    assert AuditEvent.objects.get(action="campaign.submit").operator == team["editor"]
    scheduled = AuditEvent.objects.get(action="campaign.schedule")
    assert (scheduled.operator, scheduled.workspace, scheduled.detail["source"]) == (
        team["admin"], workspace, source.pk)


def test_a_campaign_for_later_starts_when_the_scheduler_passes_its_time(
        workspace, team, policy, campaign):
    send_at = timezone.now() + dt.timedelta(hours=2)
    services.edited(campaign, request_as(team["editor"], workspace), send_at=send_at)
    approve_all(campaign, team, workspace)
    source = services.schedule(campaign, request_as(team["admin"], workspace))
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED
    assert (source.status, source.scheduled_at) == ("scheduled", send_at)
    assert not Delivery.objects.filter(source=source).exists()

    assert source.pk not in scheduler.tick(now=send_at - dt.timedelta(minutes=1))["started"]
    assert not Delivery.objects.filter(source=source).exists()
    assert drain() == 0
    assert scheduler.tick(now=send_at + dt.timedelta(seconds=1))["started"] == [source.pk]
    source.refresh_from_db()
    assert source.status == "running"
    assert Delivery.objects.filter(source=source, status="queued").count() == 3
    services.refresh([campaign])
    assert campaign.status == Campaign.Status.SENDING
    assert drain() == 3
    assert OutboxMessage.objects.get(recipient="taro@example.jp").subject == "東京の太郎様へ"
    assert "edit" in refused(services.edited, campaign, request_as(team["editor"], workspace),
                             name="x")


def test_a_shared_block_change_reaches_a_campaign_not_yet_started(
        workspace, team, policy, campaign, shared):
    send_at = timezone.now() + dt.timedelta(hours=2)
    services.edited(campaign, request_as(team["editor"], workspace), send_at=send_at)
    approve_all(campaign, team, workspace)
    source = services.schedule(campaign, request_as(team["admin"], workspace))
    assert "冬のセール開催中" in source.html and "冬のセール開催中" in source.text
    shared.block = {"kind": "text", "text": "春のセール開催中",
                    "condition": {"op": "and", "conditions": [
                        {"field": "prefecture", "operator": "equals", "value": "大阪府"}]}}
    shared.save()
    assert services.reassemble_pending(workspace) == 1
    source.refresh_from_db()
    assert "春のセール開催中" in source.html and "冬のセール" not in source.html
    assert "春のセール開催中" in source.text
    assert len(source.conditions) == 2  # Tokyo for the block and the subject, Osaka
    scheduler.tick(now=send_at + dt.timedelta(seconds=1))
    assert drain() == 3
    hana = parse(OutboxMessage.objects.get(recipient="hana@example.jp").raw)
    taro = parse(OutboxMessage.objects.get(recipient="taro@example.jp").raw)
    assert "春のセール開催中" in hana.get_body(("plain",)).get_content()
    assert "春のセール開催中" not in taro.get_body(("plain",)).get_content()
    # A started campaign keeps what it was started with.
    shared.block = {"kind": "text", "text": "夏のセール"}
    shared.save()
    assert services.reassemble_pending(workspace) == 0
    source.refresh_from_db()
    assert "夏のセール" not in source.html


def test_test_sends_go_only_to_registered_addresses_with_the_chosen_members_data(
        workspace, team, policy, campaign, people):
    as_editor = request_as(team["editor"], workspace)
    content = campaign.template.content()
    identity = campaign.identity
    assert "test addresses" in refused(services.test_send, workspace, content, identity,
                                       campaign.template, ["stranger@example.com"],
                                       people["taro"], as_editor)
    assert not Source.objects.exists()
    sent = services.test_send(workspace, content, identity, campaign.template,
                              ["qa@sample.jp", "stranger@example.com"], people["taro"],
                              as_editor)
    assert sent == 1
    assert drain() == 1
    caught = OutboxMessage.objects.get()
    assert caught.recipient == "qa@sample.jp"
    message = parse(caught.raw)
    assert message["Subject"] == caught.subject == "[TEST] 東京の太郎様へ"
    text = message.get_body(("plain",)).get_content()
    assert "太郎様、こんにちは" in text and "東京店の新装開店" in text
    event = AuditEvent.objects.get(action="campaign.test_send")
    assert (event.detail["addresses"], event.detail["member"]) == (1, people["taro"].pk)

    services.test_send(workspace, content, identity, None, ["boss@sample.jp"], people["hana"],
                       as_editor)
    drain()
    hana = parse(OutboxMessage.objects.get(recipient="boss@sample.jp").raw)
    assert hana["Subject"] == "[TEST] 花子様 冬のお知らせ"
    assert "東京店の新装開店" not in hana.get_body(("plain",)).get_content()


def test_pause_resume_and_cancel(workspace, team, policy, campaign):
    approve_all(campaign, team, workspace)
    as_admin = request_as(team["admin"], workspace)
    source = services.schedule(campaign, as_admin)
    campaign.refresh_from_db()
    assert services.control(campaign, as_admin, "pause") is True
    assert campaign.status == Campaign.Status.PAUSED
    assert drain() == 0
    assert services.control(campaign, as_admin, "resume") is True
    assert campaign.status == Campaign.Status.SENDING
    services.control(campaign, as_admin, "cancel")
    assert campaign.status == Campaign.Status.CANCELLED
    assert drain() == 0
    assert Delivery.objects.filter(source=source, status="cancelled").count() == 3
    assert AuditEvent.objects.filter(action__in=["campaign.pause", "campaign.resume",
                                                 "campaign.cancel"]).count() == 3


def test_a_list_deleted_after_scheduling_pauses_that_send_and_others_still_start(
        workspace, team, policy, campaign, people):
    send_at = timezone.now() + dt.timedelta(hours=2)
    services.edited(campaign, request_as(team["editor"], workspace), send_at=send_at)
    approve_all(campaign, team, workspace)
    source = services.schedule(campaign, request_as(team["admin"], workspace))
    other = Source.objects.create(workspace=workspace, name="other", status="scheduled",
                                  scheduled_at=send_at, from_address="news@example.jp",
                                  subject="s", text="t", segment=people["segment"])
    people["excluded"].delete()
    started = scheduler.tick(now=send_at + dt.timedelta(seconds=1))["started"]
    assert sorted(started) == sorted([source.pk, other.pk])
    source.refresh_from_db()
    assert source.status == "paused" and "does not exist" in source.pause_reason
    assert not Delivery.objects.filter(source=source).exists()
    assert Source.objects.get(pk=other.pk).status == "running"
    campaign.refresh_from_db()
    services.refresh([campaign])
    assert campaign.status == Campaign.Status.PAUSED


def test_scheduling_refuses_an_audience_whose_list_was_deleted(workspace, team, policy,
                                                               campaign, people):
    approve_all(campaign, team, workspace)
    people["included"].delete()
    assert "does not exist" in refused(services.schedule, campaign,
                                       request_as(team["admin"], workspace))
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.APPROVED and campaign.source is None
    assert not Source.objects.exists()
