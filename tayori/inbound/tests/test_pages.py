"""The inbound pages: bounce analysis and one bounce's evidence, a member's bounce history, the
suppression list's filters and CSV, the inbound settings (rules, feeds, feed key) and the
sign-up addresses — each with its permission, masking for roles without the PII right, and
another workspace's rows out of reach."""

import codecs
import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from conftest import make_operator
from tayori.accounts.models import AuditEvent, Role
from tayori.delivery.models import Delivery, DeliverySettings, Source
from tayori.inbound.models import (
    Bounce,
    BounceRule,
    Complaint,
    EmptyMail,
    InboundSettings,
    SignupAddress,
)
from tayori.members.models import Member, MemberList, Suppression

pytestmark = pytest.mark.django_db
JST = ZoneInfo("Asia/Tokyo")
RAW = (b"From: MAILER-DAEMON@mx.example.co.jp\r\nSubject: Undelivered Mail\r\n\r\n"
       b"<taro@docomo.ne.jp>: host mx.docomo.ne.jp said: 550 Unknown user\r\n")


@pytest.fixture(autouse=True)
def english(workspace):
    workspace.language = "en"
    workspace.save()


def client_with(client, workspace, *permissions, email="custom@sample.jp"):
    """A client signed in with a custom role holding only ``permissions``."""
    Role.objects.create(workspace=workspace, name=f"Only {email}", permissions=list(permissions))
    client.force_login(make_operator(workspace, email, f"Only {email}"))
    return client


def a_send(workspace, kind=Source.Kind.BULK, name="秋のセール"):
    return Source.objects.create(workspace=workspace, kind=kind, name=name, status="done",
                                 from_address="news@shop.example.jp", subject="セール", text="x")


def a_bounce(workspace, address, reason="userunknown", *, hard=True, counts=True, source=None,
             at=None, raw=b"", **fields):
    member = Member.objects.get_or_create(workspace=workspace, email=address)[0]
    delivery = None
    if source is not None:
        delivery = Delivery.objects.create(workspace=workspace, source=source, member=member,
                                           address=address, status="sent")
    return Bounce.objects.create(
        workspace=workspace, delivery=delivery, source=source, member=member, address=address,
        domain=address.rpartition("@")[2], reason=reason, hard=hard, counts=counts,
        received_at=at or timezone.now(), raw=raw, **fields)


@pytest.fixture
def bounces(workspace):
    """This month: two unknown users (one at docomo), a docomo domain filter that does not
    count, a full mailbox from a transactional mail; and one unknown user 40 days ago. One
    complaint."""
    bulk, receipt = a_send(workspace), a_send(workspace, Source.Kind.TRANSACTIONAL, "領収書")
    rows = [
        a_bounce(workspace, "taro@docomo.ne.jp", source=bulk, raw=RAW, status="5.1.1",
                 diagnostic="550 5.1.1 <taro@docomo.ne.jp>: Recipient address rejected",
                 remote_mta="mx.docomo.ne.jp", action="Suppressed (1 × userunknown)"),
        a_bounce(workspace, "hanako@example.jp", source=bulk),
        a_bounce(workspace, "jiro@docomo.ne.jp", "filtered", hard=False, counts=False,
                 source=bulk),
        a_bounce(workspace, "saburo@example.jp", "mailboxfull", hard=False, source=receipt),
        a_bounce(workspace, "old@example.jp", source=bulk,
                 at=timezone.now() - dt.timedelta(days=40)),
    ]
    Complaint.objects.create(workspace=workspace, source=bulk, member=rows[1].member,
                             address="hanako@example.jp", feedback_type="abuse")
    return rows


def analysis(client, **params):
    response = client.get(reverse("inbound:bounces"), params)
    assert response.status_code == 200
    return response


# --- bounce analysis --------------------------------------------------------------------------

def test_the_analysis_counts_by_reason_domain_and_day(owner_client, bounces):
    context = analysis(owner_client).context
    reasons = {row["reason"]: row for row in context["reasons"]}
    assert reasons["userunknown"]["total"] == 2 and reasons["userunknown"]["hard"] == 2
    assert reasons["userunknown"]["label"] == "Unknown user"
    assert reasons["filtered"]["soft"] == 1 and reasons["filtered"]["not_counted"] == 1
    assert context["total"] == 4 and context["complaint_total"] == 1
    assert context["not_counted_total"] == 1
    docomo = context["domains"][0]
    assert (docomo["domain"], docomo["total"], docomo["share"]) == ("docomo.ne.jp", 2, "50.0%")
    assert docomo["carrier"] == "docomo"
    days = context["charts"]["days"]
    assert len(days["labels"]) == 30
    assert [sum(d["data"]) for d in days["datasets"]] == [4, 1]
    assert context["charts"]["reasons"]["labels"][0] == "Unknown user"
    html = analysis(owner_client).content.decode()
    assert 'data-chart="reasons"' in html and "chart-4.6.1.umd.min.js" in html


def test_the_period_and_the_stream_choose_what_is_counted(owner_client, bounces):
    assert analysis(owner_client, days=90).context["total"] == 5
    assert analysis(owner_client, days=7, stream="transactional").context["total"] == 1
    broadcast = analysis(owner_client, stream="broadcast").context
    assert broadcast["total"] == 3 and broadcast["complaint_total"] == 1
    assert analysis(owner_client, days=12345).context["chosen"].days == 30  # not offered
    assert analysis(owner_client, days="²").context["chosen"].days == 30  # a digit, no number


def test_days_are_the_workspace_time_zones(owner_client, workspace):
    midnight = dt.datetime.combine(timezone.now().astimezone(JST).date(), dt.time(), JST)
    a_bounce(workspace, "today@example.jp", at=midnight)
    a_bounce(workspace, "yesterday@example.jp", at=midnight - dt.timedelta(seconds=1))
    data = analysis(owner_client, days=7).context["charts"]["days"]["datasets"][0]["data"]
    assert data[-2:] == [1, 1]


def test_the_list_is_filtered_by_reason_and_links_member_and_delivery(owner_client, bounces):
    response = analysis(owner_client, reason="userunknown")
    assert [row["bounce"] for row in response.context["rows"]] == bounces[1::-1]
    html = response.content.decode()
    assert reverse("members:detail", args=[bounces[0].member_id]) in html
    assert reverse("delivery:delivery", args=[bounces[0].delivery_id]) in html
    assert "taro@docomo.ne.jp" in html and "Suppressed (1 × userunknown)" in html


def test_a_role_without_the_pii_right_sees_addresses_masked(analyst_client, bounces):
    html = analysis(analyst_client).content.decode()
    assert "ta***@docomo.ne.jp" in html
    assert "taro@docomo.ne.jp" not in html and "hanako@example.jp" not in html


def test_the_evidence_page_shows_the_raw_report_to_the_pii_right(owner_client, bounces):
    html = owner_client.get(reverse("inbound:bounce", args=[bounces[0].pk])).content.decode()
    assert 'data-testid="raw-report"' in html and "Undelivered Mail" in html
    assert "mx.docomo.ne.jp" in html and "5.1.1" in html


def test_the_evidence_page_holds_the_raw_report_back_without_it(analyst_client, bounces):
    response = analyst_client.get(reverse("inbound:bounce", args=[bounces[0].pk]))
    html = response.content.decode()
    assert response.status_code == 200 and 'data-testid="raw-withheld"' in html
    assert "taro@docomo.ne.jp" not in html and "Undelivered Mail" not in html
    assert "ta***@docomo.ne.jp" in html and "Recipient address rejected" in html


def test_the_bounce_pages_need_the_delivery_log_right(client, workspace, bounces):
    client_with(client, workspace, "members.view", "members.view_pii")
    assert client.get(reverse("inbound:bounces")).status_code == 403
    assert client.get(reverse("inbound:bounce", args=[bounces[0].pk])).status_code == 403


# --- a member's history -----------------------------------------------------------------------

def test_a_members_history_lists_bounces_and_complaints_newest_first(owner_client, bounces):
    member = bounces[1].member
    a_bounce(member.workspace, member.email, "mailboxfull", hard=False,
             at=timezone.now() - dt.timedelta(days=3))
    response = owner_client.get(reverse("inbound:member-history", args=[member.pk]))
    rows = response.context["rows"]
    assert [row["kind"] for row in rows] == ["complaint", "bounce", "bounce"]
    assert rows[1]["bounce"] == bounces[1] and "hanako@example.jp" in response.content.decode()


def test_a_members_history_is_masked_without_the_pii_right(analyst_client, bounces):
    html = analyst_client.get(reverse("inbound:member-history", args=[bounces[0].member_id])
                              ).content.decode()
    assert "ta***@docomo.ne.jp" in html and "taro@docomo.ne.jp" not in html


def test_a_members_history_needs_the_member_right(client, workspace, bounces):
    client_with(client, workspace, "deliveries.view")
    url = reverse("inbound:member-history", args=[bounces[0].member_id])
    assert client.get(url).status_code == 403


def test_the_member_page_loads_the_history(owner_client, bounces):
    member = bounces[0].member
    html = owner_client.get(reverse("members:detail", args=[member.pk])).content.decode()
    assert f'hx-get="{reverse("inbound:member-history", args=[member.pk])}"' in html


# --- suppressions -----------------------------------------------------------------------------

@pytest.fixture
def suppressions(workspace):
    now = timezone.now()
    return {
        "bounce": Suppression.objects.create(
            workspace=workspace, value="taro@docomo.ne.jp", reason="bounce: userunknown",
            source="mx", delivery_id=4242),
        "full": Suppression.objects.create(
            workspace=workspace, value="saburo@example.jp", reason="bounce: mailboxfull",
            source="mx", expires_at=dt.datetime(2099, 3, 31, 16, 30, tzinfo=dt.UTC)),
        "complaint": Suppression.objects.create(
            workspace=workspace, value="hanako@example.jp", reason="complaint", source="mx"),
        "unsubscribed": Suppression.objects.create(
            workspace=workspace, value="jiro@example.jp", reason="unsubscribed",
            source="mailto"),
        "manual": Suppression.objects.create(
            workspace=workspace, value="=cmd@example.jp", reason="=HYPERLINK()",
            source="manual"),
        "expired": Suppression.objects.create(
            workspace=workspace, value="old@example.jp", reason="bounce: suspend", source="mx",
            expires_at=now - dt.timedelta(days=1)),
    }


def listed(client, **params):
    return [row["suppression"] for row in
            client.get(reverse("members:suppressions"), params).context["rows"]]


def test_suppressions_are_filtered_by_why_and_hide_expired_ones(owner_client, suppressions):
    s = suppressions
    assert set(listed(owner_client)) == set(s.values()) - {s["expired"]}
    assert set(listed(owner_client, expired="1")) == set(s.values())
    assert set(listed(owner_client, group="bounce")) == {s["bounce"], s["full"]}
    assert set(listed(owner_client, group="bounce", expired="1")) == {
        s["bounce"], s["full"], s["expired"]}
    assert listed(owner_client, group="complaint") == [s["complaint"]]
    assert listed(owner_client, group="unsubscribed") == [s["unsubscribed"]]
    assert listed(owner_client, group="manual") == [s["manual"]]


def test_suppressions_show_their_expiry_and_delivery(owner_client, suppressions):
    html = owner_client.get(reverse("members:suppressions"), {"expired": "1"}).content.decode()
    assert "Until 2099-04-01 01:30" in html  # in the workspace's time zone
    assert 'data-expiry="permanent"' in html and 'data-expiry="expired"' in html
    assert reverse("delivery:delivery", args=[4242]) in html


def read_csv(response) -> tuple[bytes, list[list[str]]]:
    body = b"".join(response.streaming_content)
    return body, list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_the_csv_has_every_matching_row_with_a_bom(owner_client, suppressions):
    response = owner_client.get(reverse("members:suppressions-export"), {"group": "bounce"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body, rows = read_csv(response)
    assert body.startswith(codecs.BOM_UTF8)
    assert rows[0][:3] == ["Kind", "Address or number", "Reason"]
    by_value = {row[1]: row for row in rows[1:]}
    assert set(by_value) == {"taro@docomo.ne.jp", "saburo@example.jp"}
    assert by_value["taro@docomo.ne.jp"][4:7] == ["Permanent", "", "4242"]
    assert by_value["saburo@example.jp"][5] == "2099-04-01 01:30:00"
    event = AuditEvent.objects.get(action="suppression.exported")
    assert event.detail["count"] == 2 and event.detail["masked"] is False


def test_the_csv_defuses_formulas(owner_client, suppressions):
    _body, rows = read_csv(owner_client.get(reverse("members:suppressions-export"),
                                            {"group": "manual"}))
    assert rows[1][1:3] == ["'=cmd@example.jp", "'=HYPERLINK()"]


def test_the_csv_is_masked_without_the_pii_right(analyst_client, suppressions):
    body, rows = read_csv(analyst_client.get(reverse("members:suppressions-export")))
    assert len(rows) == 6 and b"taro@docomo.ne.jp" not in body
    assert "ta***@docomo.ne.jp" in {row[1] for row in rows}
    event = AuditEvent.objects.get(action="suppression.exported")
    assert event.detail["count"] == 5 and event.detail["masked"] is True


def test_the_csv_needs_the_export_right(client, workspace, suppressions):
    client_with(client, workspace, "members.view", "members.view_pii")
    assert client.get(reverse("members:suppressions-export")).status_code == 403
    assert not AuditEvent.objects.filter(action="suppression.exported").exists()


# --- inbound settings -------------------------------------------------------------------------

def settings_post(client, form, **data):
    return client.post(reverse("inbound:settings"), {"form": form, **data})


def rules_data(**changes) -> dict:
    from tayori.inbound.consequences import DEFAULT_RULES, NEVER, NOT_COUNTED
    from tayori.inbound.reasons import REASONS

    data = {}
    for reason in REASONS:
        if reason in NOT_COUNTED:
            continue
        rule = DEFAULT_RULES.get(reason, NEVER)
        data.update({f"{reason}-threshold": rule.threshold, f"{reason}-window": rule.window_days,
                     f"{reason}-suppress": rule.suppress_days or ""})
    return {**data, **changes}


def test_the_settings_page_shows_feeds_rules_and_mx_domains(owner_client, workspace):
    options = InboundSettings.of(workspace)
    options.inbound_domain = "in.sample.example.jp"
    options.save()
    response = owner_client.get(reverse("inbound:settings"))
    html = response.content.decode()
    assert f"http://testserver/inbound/ses/{options.feed_key}/" in html
    assert f"http://testserver/inbound/sendgrid/{options.feed_key}/" in html
    assert 'data-reason="mailboxfull"' in html and 'name="mailboxfull-threshold"' in html
    assert 'name="filtered-threshold"' not in html  # never counts
    assert ("in.sample.example.jp", "inbound domain (sign-up addresses)") in response.context[
        "mx_domains"]
    assert response["Cache-Control"].startswith("max-age=0")


def test_the_mx_hint_names_only_this_workspaces_domains(owner_client, other_workspace):
    InboundSettings.objects.create(workspace=other_workspace, inbound_domain="in.other.jp")
    html = owner_client.get(reverse("inbound:settings")).content.decode()
    assert "in.other.jp" not in html


def test_saving_the_domain_and_limits_is_audited_and_domains_reread(owner_client, workspace,
                                                                     monkeypatch):
    from tayori.inbound import receiving

    forgotten = []
    monkeypatch.setattr(receiving, "forget_domains", lambda: forgotten.append(True))
    response = settings_post(owner_client, "settings", inbound_domain=" In.Sample.JP. ",
                             bounce_rate_limit="3", complaint_rate_limit="0.08")
    assert response.status_code == 302
    options = InboundSettings.of(workspace)
    assert options.inbound_domain == "in.sample.jp" and str(options.bounce_rate_limit) == "3.00"
    assert forgotten == [True]
    event = AuditEvent.objects.get(action="inbound.settings_changed")
    assert event.detail["changed"]["inbound_domain"] == {"before": "", "after": "in.sample.jp"}


def test_bad_domains_and_rates_are_refused(owner_client, workspace):
    response = settings_post(owner_client, "settings", inbound_domain="not a domain",
                             bounce_rate_limit="0", complaint_rate_limit="101")
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"inbound_domain", "bounce_rate_limit",
                                                    "complaint_rate_limit"}
    assert InboundSettings.of(workspace).inbound_domain == ""


def test_saving_rules_writes_only_changed_reasons_and_audits(owner_client, workspace):
    response = settings_post(owner_client, "rules", **rules_data(**{
        "mailboxfull-threshold": 3, "mailboxfull-window": 14, "mailboxfull-suppress": 60,
        "blocked-threshold": 2}))
    assert response.status_code == 302
    rules = {r.reason: r for r in BounceRule.objects.filter(workspace=workspace)}
    assert set(rules) == {"mailboxfull", "blocked"}
    assert (rules["mailboxfull"].threshold, rules["mailboxfull"].window_days,
            rules["mailboxfull"].suppress_days) == (3, 14, 60)
    assert rules["blocked"].suppress_days is None  # until removed
    event = AuditEvent.objects.get(action="inbound.rules_changed")
    assert event.detail["changed"]["mailboxfull"] == {
        "before": {"threshold": 5, "window_days": 30, "suppress_days": 30},
        "after": {"threshold": 3, "window_days": 14, "suppress_days": 60}}
    # Back to the defaults: the rows go, the workspace follows Tayori's defaults again.
    assert settings_post(owner_client, "rules", **rules_data()).status_code == 302
    assert not BounceRule.objects.filter(workspace=workspace).exists()
    assert AuditEvent.objects.filter(action="inbound.rules_changed").count() == 2


def test_bad_rules_are_refused_on_their_field(owner_client, workspace):
    response = settings_post(owner_client, "rules", **rules_data(**{
        "userunknown-threshold": -1, "userunknown-window": ""}))
    assert response.status_code == 400
    assert set(response.context["rules_form"].errors) == {"userunknown-threshold",
                                                          "userunknown-window"}
    assert not BounceRule.objects.exists()


def test_feeds_accept_topic_arns_and_a_sendgrid_key(owner_client, workspace):
    topic = "arn:aws:sns:ap-northeast-1:123456789012:tayori-bounces"
    response = settings_post(owner_client, "feeds", sns_topics=f"{topic}\n\n{topic}\n",
                             sendgrid_public_key="-----BEGIN PUBLIC KEY-----\nMFkw EwYH\n"
                                                 "-----END PUBLIC KEY-----")
    assert response.status_code == 302
    options = InboundSettings.of(workspace)
    assert options.sns_topics == topic and options.sendgrid_public_key == "MFkwEwYH"
    assert AuditEvent.objects.filter(action="inbound.feeds_changed").exists()
    bad = settings_post(owner_client, "feeds", sns_topics="tayori-bounces",
                        sendgrid_public_key="not base64!")
    assert set(bad.context["feeds_form"].errors) == {"sns_topics", "sendgrid_public_key"}


def test_a_new_feed_key_replaces_the_old_and_is_audited(owner_client, workspace):
    old = InboundSettings.of(workspace).feed_key
    response = owner_client.post(reverse("inbound:feed-key"))
    assert response.status_code == 302
    new = InboundSettings.of(workspace).feed_key
    assert new != old and len(new) >= 40
    event = AuditEvent.objects.get(action="inbound.feed_key_changed")
    assert old not in str(event.detail) and new not in str(event.detail)
    html = owner_client.get(reverse("inbound:settings")).content.decode()
    assert new in html and old not in html


def test_the_settings_need_the_settings_right(analyst_client):
    assert analyst_client.get(reverse("inbound:settings")).status_code == 403
    assert analyst_client.post(reverse("inbound:feed-key")).status_code == 403


# --- sign-up addresses ------------------------------------------------------------------------

def signup_data(**changes) -> dict:
    return {"code": "autumn", "name": "秋の会員募集", "member_list": "", "from_name": "サンプル",
            "subject": "ご登録の確認", "text": "こちらから登録を完了してください:\n"
            "{{ data.confirm_url }}\n", "wording_version": "v1", "active": "on", **changes}


@pytest.fixture
def signup(workspace):
    return SignupAddress.objects.create(workspace=workspace, code="spring", name="春",
                                        subject="確認", text="{{ data.confirm_url }}")


def test_a_new_address_starts_with_a_reply_that_carries_the_link(owner_client, workspace):
    workspace.language = "ja"
    workspace.save()
    form = owner_client.get(reverse("inbound:signup-create")).context["form"]
    assert "{{ data.confirm_url }}" in form.initial["text"]
    assert form.initial["from_name"] == workspace.name


def test_an_address_is_added_edited_and_deleted_with_audit(owner_client, workspace):
    listing = MemberList.objects.create(workspace=workspace, name="会員")
    response = owner_client.post(reverse("inbound:signup-create"),
                                 signup_data(code="Autumn", member_list=listing.pk))
    address = SignupAddress.objects.get()
    assert response.url == reverse("inbound:signup", args=[address.pk])
    assert (address.code, address.member_list, address.workspace) == ("autumn", listing,
                                                                     workspace)
    response = owner_client.post(reverse("inbound:signup", args=[address.pk]),
                                 signup_data(name="秋の募集"))
    assert response.status_code == 302
    assert SignupAddress.objects.get().name == "秋の募集"
    owner_client.post(reverse("inbound:signup-delete", args=[address.pk]))
    assert not SignupAddress.objects.exists()
    actions = list(AuditEvent.objects.filter(action__startswith="inbound.signup")
                   .order_by("id").values_list("action", "target"))
    assert actions == [(f"inbound.signup_{verb}", f"signup_address:{address.pk}")
                       for verb in ("created", "updated", "deleted")]


def test_codes_must_be_lower_case_slugs_and_unused(owner_client, signup, other_workspace):
    SignupAddress.objects.create(workspace=other_workspace, code="theirs", name="x",
                                 subject="x", text="x")

    def errors(**data):
        response = owner_client.post(reverse("inbound:signup-create"), signup_data(**data))
        assert response.status_code == 400
        return response.context["form"].errors

    assert list(errors(code="秋")) == ["code"]
    assert list(errors(code="-autumn")) == ["code"]
    assert errors(code="Spring")["code"] == ["This code is already in use. Choose another."]
    assert list(errors(code="theirs")) == ["code"]  # codes are unique across Tayori
    assert list(errors(text="登録してください")) == ["text"]  # no link
    assert list(errors(subject="{% if %}")) == ["subject"]
    assert SignupAddress.objects.count() == 2


def test_a_list_of_another_workspace_is_refused(owner_client, other_workspace):
    theirs = MemberList.objects.create(workspace=other_workspace, name="theirs")
    response = owner_client.post(reverse("inbound:signup-create"),
                                 signup_data(member_list=theirs.pk))
    assert list(response.context["form"].errors) == ["member_list"]


def test_the_address_and_what_is_missing_are_shown(owner_client, workspace, signup):
    html = owner_client.get(reverse("inbound:signups")).content.decode()
    assert 'data-testid="no-inbound-domain"' in html and 'data-testid="no-tracking-host"' in html
    InboundSettings.objects.filter(workspace=workspace).update(inbound_domain="in.sample.jp")
    DeliverySettings.objects.update_or_create(workspace=workspace,
                                              defaults={"tracking_host": "t.sample.jp"})
    html = owner_client.get(reverse("inbound:signup", args=[signup.pk])).content.decode()
    assert "join-spring@in.sample.jp" in html
    assert "no-inbound-domain" not in html and "no-tracking-host" not in html


def test_received_mails_are_listed_masked_without_the_pii_right(client, workspace, signup):
    EmptyMail.objects.create(workspace=workspace, signup=signup, sender="taro@docomo.ne.jp",
                             outcome=EmptyMail.Outcome.REPLIED)
    client_with(client, workspace, "settings.manage")
    html = client.get(reverse("inbound:signup", args=[signup.pk])).content.decode()
    assert "ta***@docomo.ne.jp" in html and "taro@docomo.ne.jp" not in html
    assert "Sign-up link sent" in html


def test_sign_up_addresses_need_the_settings_right(analyst_client, signup):
    assert analyst_client.get(reverse("inbound:signups")).status_code == 403
    assert analyst_client.post(reverse("inbound:signup-delete", args=[signup.pk])
                               ).status_code == 403
    assert SignupAddress.objects.filter(pk=signup.pk).exists()


# --- another workspace ------------------------------------------------------------------------

def test_another_workspaces_rows_are_not_found(owner_client, other_workspace):
    bounce = a_bounce(other_workspace, "x@other.example.jp", raw=RAW)
    theirs = SignupAddress.objects.create(workspace=other_workspace, code="theirs", name="x",
                                          subject="x", text="{{ data.confirm_url }}")
    for url in (reverse("inbound:bounce", args=[bounce.pk]),
                reverse("inbound:member-history", args=[bounce.member_id]),
                reverse("inbound:signup", args=[theirs.pk])):
        assert owner_client.get(url).status_code == 404
    assert owner_client.post(reverse("inbound:signup-delete", args=[theirs.pk])
                             ).status_code == 404
    assert SignupAddress.objects.filter(pk=theirs.pk).exists()
    assert "x@other" not in analysis(owner_client, days=90).content.decode()
    assert analysis(owner_client, days=90).context["total"] == 0
