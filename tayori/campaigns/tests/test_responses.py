"""What a campaign does with responses: the assignee of a member who clicks is told once, by an
urgent mail; the tracking domain chosen for the campaign is the one in its links; after sending,
a segment of those who did not open it, opened in the builder; and the form's choices."""

import datetime as dt
import email
import email.policy
import logging

import pytest
from django.test import Client
from django.utils import timezone, translation

from conftest import make_operator
from tayori.campaigns import notices, services
from tayori.campaigns.models import Campaign, ClickNotice
from tayori.campaigns.tests.test_campaign_flow import drain, request_as
from tayori.content.models import SenderIdentity, Template
from tayori.delivery.models import Delivery, DeliverySettings, OutboxMessage, Priority
from tayori.members import segments
from tayori.members.models import Attribute, Member, Segment
from tayori.tracking import ingest
from tayori.tracking.ingest import Hit
from tayori.tracking.models import TrackingDomain

pytestmark = pytest.mark.django_db(transaction=True)
BROWSER = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
SALE, GUIDE = "https://shop.example.jp/sale", "https://shop.example.jp/guide"


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def campaign(workspace, owner):
    """冬のセール, approved, with two links, to taro (assignee sato), hanako (an assignee that is
    not an address) and jiro (none); assignees are told of clicks."""
    DeliverySettings.objects.create(workspace=workspace, tracking_host="t.example.jp")
    Attribute.objects.create(workspace=workspace, key="sales", label="担当営業", type="text")
    for name, sales in (("taro", "sato@Example.JP"), ("hanako", "not an address"),
                        ("jiro", None)):
        Member.objects.create(workspace=workspace, email=f"{name}@example.jp",
                              attributes={"sales": sales} if sales else {})
    everyone = Segment.objects.create(workspace=workspace, name="all",
                                      definition={"op": "and", "conditions": []})
    identity = SenderIdentity.objects.create(workspace=workspace, label="news", from_name="サンプル",
                                             from_address="news@example.jp",
                                             organization="株式会社サンプル")
    template = Template.objects.create(workspace=workspace, name="sale", subject="冬のセール",
                                       blocks=[{"kind": "button", "label": "セール", "url": SALE},
                                               {"kind": "button", "label": "ガイド", "url": GUIDE},
                                               {"kind": "footer"}])
    campaign = Campaign.objects.create(
        workspace=workspace, name="冬のセール {{ x }}", identity=identity, template=template,
        include_segments=[everyone.pk], status=Campaign.Status.APPROVED,
        snapshot=template.content(), assignee_attribute="sales")
    return campaign


def send(campaign, owner):
    services.schedule(campaign, request_as(owner, campaign.workspace))
    campaign.refresh_from_db()
    drain()
    # Read an hour later: a click is not a security scanner's seconds after delivery.
    Delivery.objects.filter(source=campaign.source).update(
        sent_at=timezone.now() - dt.timedelta(hours=1))
    return campaign


def click(campaign, name, link=0, agent=BROWSER):
    row = Delivery.objects.get(source=campaign.source, address=f"{name}@example.jp")
    ingest.store([Hit("click", row.pk, timezone.now(), "203.0.113.5", agent, False, link)])


def notices_to(address):
    return Delivery.objects.filter(address=address, source__kind="transactional")


def test_a_click_tells_the_members_assignee_once_by_an_urgent_mail(campaign, owner):
    send(campaign, owner)
    click(campaign, "taro", link=1)
    [notice] = notices_to("sato@example.jp")
    assert notice.priority == Priority.URGENT and notice.status == "queued"
    assert ClickNotice.objects.get(campaign=campaign).notice == notice
    click(campaign, "taro", link=0)  # a second click: nobody is told again
    assert notices_to("sato@example.jp").count() == 1

    assert drain() == 1
    message = email.message_from_bytes(bytes(OutboxMessage.objects.get(
        recipient="sato@example.jp").raw), policy=email.policy.default)
    assert "taro@example.jp" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    # The campaign's name is shown as written, never run as a template.
    assert "冬のセール {{ x }}" in text and GUIDE in text and "JST" in text
    assert "/t/" not in text  # the notice itself is not tracked


def test_a_machine_click_tells_nobody(campaign, owner, workspace):
    send(campaign, owner)
    Member.objects.filter(email="jiro@example.jp").update(attributes={"sales": "sato@example.jp"})
    click(campaign, "jiro", agent="Mimecast Link Scanner")
    assert not notices_to("sato@example.jp").exists()
    assert not ClickNotice.objects.exists()


def test_without_a_valid_assignee_address_the_notice_is_skipped_and_logged(
        campaign, owner, caplog):
    send(campaign, owner)
    with caplog.at_level(logging.WARNING, logger="tayori.campaigns.notices"):
        click(campaign, "hanako")
        click(campaign, "jiro")
    assert not Delivery.objects.filter(source__kind="transactional").exists()
    assert not ClickNotice.objects.exists()
    assert caplog.text.count("skipped") == 2
    # Once the address is fixed, the next click is told.
    Member.objects.filter(email="hanako@example.jp").update(attributes={"sales": "ito@example.jp"})
    click(campaign, "hanako")
    assert notices_to("ito@example.jp").count() == 1


def test_only_clicks_on_the_chosen_link_are_told(campaign, owner):
    Campaign.objects.filter(pk=campaign.pk).update(notify_link=GUIDE)
    campaign.refresh_from_db()
    send(campaign, owner)
    click(campaign, "taro", link=0)
    assert not notices_to("sato@example.jp").exists()
    click(campaign, "taro", link=1)
    assert notices_to("sato@example.jp").count() == 1


def test_the_listener_is_registered_with_tracking():
    assert notices.clicked in ingest.LISTENERS


def test_the_campaigns_tracking_domain_is_the_one_in_its_links(campaign, owner, workspace):
    TrackingDomain.objects.create(workspace=workspace, host="click.example.jp")
    Campaign.objects.filter(pk=campaign.pk).update(tracking_host="click.example.jp")
    campaign = send(campaign, owner)
    assert campaign.source.tracking_host == "click.example.jp"
    raw = bytes(OutboxMessage.objects.filter(recipient="taro@example.jp").get().raw)
    html = email.message_from_bytes(raw, policy=email.policy.default).get_body(
        ("html",)).get_content()
    assert "//click.example.jp/t/c/" in html and "//t.example.jp/t/" not in html


def test_a_removed_tracking_domain_stops_the_schedule(campaign, owner, workspace):
    Campaign.objects.filter(pk=campaign.pk).update(tracking_host="gone.example.jp")
    with pytest.raises(services.CampaignError, match="gone.example.jp"):
        services.schedule(campaign, request_as(owner, workspace))


def test_resend_to_non_openers_makes_a_segment_and_opens_the_builder(
        campaign, owner, owner_client, workspace):
    send(campaign, owner)
    Delivery.objects.filter(source=campaign.source, address="jiro@example.jp").update(
        status="failed")
    click(campaign, "taro")  # a click is an open
    page = owner_client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert 'id="non-openers"' in page
    assert f"/analytics/sources/{campaign.source_id}/" in page
    response = owner_client.post(f"/campaigns/{campaign.pk}/non-openers/")
    segment = Segment.objects.get(workspace=workspace, name__endswith="未開封")
    assert response.status_code == 302
    assert response["Location"] == f"/members/segments/{segment.pk}/edit/"
    # Received it (jiro's failed) and did not open it (taro clicked).
    assert [m.email for m in segments.segment_members(segment)] == ["hanako@example.jp"]
    # Asked again, the same segment is opened rather than a copy made.
    assert owner_client.post(f"/campaigns/{campaign.pk}/non-openers/")["Location"] == (
        f"/members/segments/{segment.pk}/edit/")
    assert Segment.objects.filter(name__endswith="未開封").count() == 1
    assert owner_client.get(response["Location"]).status_code == 200


def test_non_openers_need_a_sent_campaign_and_the_right_to_edit_segments(
        campaign, owner, workspace):
    owner_client, analyst_client = Client(), Client()
    owner_client.force_login(owner)
    analyst_client.force_login(make_operator(workspace, "analyst@sample.jp", "Analyst"))
    assert "non-openers" not in owner_client.get(f"/campaigns/{campaign.pk}/").content.decode()
    response = owner_client.post(f"/campaigns/{campaign.pk}/non-openers/")
    assert response.status_code == 302 and not Segment.objects.filter(
        name__endswith="未開封").exists()
    assert analyst_client.post(f"/campaigns/{campaign.pk}/non-openers/").status_code == 403


def test_the_form_offers_this_workspaces_domains_attributes_and_the_templates_links(
        campaign, owner, owner_client, workspace, other_workspace):
    TrackingDomain.objects.create(workspace=workspace, host="click.example.jp")
    TrackingDomain.objects.create(workspace=other_workspace, host="theirs.example.jp")
    form = owner_client.get(f"/campaigns/{campaign.pk}/edit/").context["form"]
    assert [v for v, _label in form.fields["tracking_host"].choices] == ["", "click.example.jp"]
    assert [v for v, _label in form.fields["assignee_attribute"].choices] == ["", "sales"]
    assert [v for v, _label in form.fields["notify_link"].choices] == ["", SALE, GUIDE]
    base = {"name": "冬", "identity": campaign.identity_id, "template": campaign.template_id,
            "include_segments": campaign.include_segments}
    refused = owner_client.post(f"/campaigns/{campaign.pk}/edit/", {
        **base, "tracking_host": "theirs.example.jp", "assignee_attribute": "missing",
        "notify_link": "https://elsewhere.example.jp/"})
    assert refused.status_code == 400
    assert set(refused.context["form"].errors) == {"tracking_host", "assignee_attribute",
                                                   "notify_link"}
    assert owner_client.post(f"/campaigns/{campaign.pk}/edit/", {
        **base, "tracking_host": "click.example.jp", "assignee_attribute": "sales",
        "notify_link": GUIDE}).status_code == 302
    campaign.refresh_from_db()
    assert (campaign.tracking_host, campaign.assignee_attribute, campaign.notify_link) == (
        "click.example.jp", "sales", GUIDE)
    copy = services.copy_campaign(campaign, request_as(owner, workspace))
    assert (copy.tracking_host, copy.assignee_attribute, copy.notify_link) == (
        "click.example.jp", "sales", GUIDE)
