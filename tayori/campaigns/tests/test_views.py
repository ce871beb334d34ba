"""The operator's path through the pages: a template with a conditional block, a campaign
approved in two stages by two other operators, scheduled, and each member's mail in the
sandbox outbox with the right block."""

import asyncio
import email
import email.policy

import pytest
from django.test import Client

from conftest import make_operator
from tayori.accounts.models import Role
from tayori.campaigns.models import Campaign
from tayori.content.models import SenderIdentity, Template
from tayori.delivery.engine import Worker
from tayori.delivery.models import OutboxMessage
from tayori.members.models import Attribute, Member, Segment

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def tokyo(workspace):
    Attribute.objects.create(workspace=workspace, key="pref", label="都道府県")
    Member.objects.create(workspace=workspace, email="tokyo@example.jp",
                          attributes={"pref": "東京都"})
    Member.objects.create(workspace=workspace, email="osaka@example.jp",
                          attributes={"pref": "大阪府"})
    return Segment.objects.create(workspace=workspace, name="東京", definition={
        "op": "and", "conditions": [{"field": "pref", "operator": "equals", "value": "東京都"}]})


def test_a_conditional_campaign_goes_through_two_approvals_to_each_member(
        workspace, owner, owner_client, tokyo):
    everyone = Segment.objects.create(workspace=workspace, name="全員",
                                      definition={"op": "and", "conditions": []})
    response = owner_client.post("/content/senders/new/", {
        "label": "本社", "from_name": "サンプル商店", "from_address": "news@example.jp",
        "organization": "株式会社サンプル", "postal_address": "東京都千代田区1-1",
        "contact": "03-0000-0000", "opt_out_text": "配信停止は下記から"})
    assert response.status_code == 302
    identity = SenderIdentity.objects.get(workspace=workspace)
    form = {"name": "冬のお知らせ", "subject": "冬のお知らせ", "charset": "utf-8",
            "b-count": "3", "v-count": "1",
            "v-0-subject": "東京のお客様へ", "v-0-cond-mode": "in_segment",
            "v-0-cond-ref": str(tokyo.pk),
            "b-0-kind": "text", "b-0-text": "{{ member.pref }}のお客様",
            "b-1-kind": "text", "b-1-text": "東京限定セール", "b-1-cond-mode": "field",
            "b-1-cond-field": "pref", "b-1-cond-operator": "equals", "b-1-cond-value": "東京都",
            "b-2-kind": "footer", "action": "save"}
    # An unknown merge field is refused with its block and line.
    bad = owner_client.post("/content/templates/new/", {**form, "b-0-text": "\n{{ member.nmae }}"})
    assert bad.status_code == 400
    assert "member.nmae" in bad.content.decode() and "2" in bad.content.decode()
    assert owner_client.post("/content/templates/new/", form).status_code == 302
    template = Template.objects.get(workspace=workspace)
    assert template.blocks[1]["condition"]["conditions"][0]["value"] == "東京都"
    preview = owner_client.get(f"/content/templates/{template.pk}/preview/",
                               {"member": Member.objects.get(email="osaka@example.jp").pk})
    assert "not shown" in preview.content.decode() or "表示しない" in preview.content.decode()

    # Two approval stages, each approved by a role the creator does not hold.
    checkers = Role.objects.create(workspace=workspace, name="Checker",
                                   permissions=["campaigns.approve", "campaigns.create"])
    managers = Role.objects.create(workspace=workspace, name="Manager2",
                                   permissions=["campaigns.approve", "campaigns.create"])
    assert owner_client.post("/campaigns/settings/", {
        "stage1": checkers.pk, "stage2": managers.pk,
        "test_addresses": "qa@example.jp"}).status_code == 302
    response = owner_client.post("/campaigns/new/", {
        "name": "冬のお知らせ", "identity": identity.pk, "template": template.pk,
        "include_segments": [str(everyone.pk)], "once_per_address": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    campaign = Campaign.objects.get(workspace=workspace)
    owner_client.post(f"/campaigns/{campaign.pk}/submit/")
    campaign.refresh_from_db()
    assert campaign.status == "awaiting"
    # The owner made it: their approval is refused.
    owner_client.post(f"/campaigns/{campaign.pk}/decide/", {"decision": "approve"})
    assert campaign.approvals.count() == 0
    first = client_for(make_operator(workspace, "check@sample.jp", "Checker"))
    second = client_for(make_operator(workspace, "boss@sample.jp", "Manager2"))
    # Stage 2's approver cannot go first.
    second.post(f"/campaigns/{campaign.pk}/decide/", {"decision": "approve"})
    assert campaign.approvals.count() == 0
    page = first.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "2" in page  # the count notice: 2 members will receive it
    first.post(f"/campaigns/{campaign.pk}/decide/", {"decision": "approve"})
    second.post(f"/campaigns/{campaign.pk}/decide/", {"decision": "approve"})
    campaign.refresh_from_db()
    assert campaign.status == "approved"
    assert owner_client.post(f"/campaigns/{campaign.pk}/schedule/").status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == "sending"
    asyncio.run(Worker(name="test").drain())
    mails = {m.recipient: email.message_from_bytes(bytes(m.raw), policy=email.policy.default)
             for m in OutboxMessage.objects.filter(workspace=workspace)}
    tokyo_mail, osaka_mail = mails["tokyo@example.jp"], mails["osaka@example.jp"]
    assert tokyo_mail["Subject"] == "東京のお客様へ"
    assert osaka_mail["Subject"] == "冬のお知らせ"
    assert "東京限定セール" in tokyo_mail.get_body(("html",)).get_content()
    assert "東京限定セール" not in osaka_mail.get_body(("html",)).get_content()
    assert "大阪府のお客様" in osaka_mail.get_body(("plain",)).get_content()
    assert "東京都千代田区1-1" in osaka_mail.get_body(("html",)).get_content()
    timeline = owner_client.get(f"/campaigns/{campaign.pk}/").content.decode()
    for action in ("campaign.submit", "campaign.approve", "campaign.schedule"):
        assert action in timeline
