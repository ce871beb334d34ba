import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from conftest import make_operator
from tayori.accounts.models import AuditEvent, Role
from tayori.members.masking import mask_phone
from tayori.members.models import Attribute, ConsentRecord, ListMembership, Member, MemberList


@pytest.fixture(autouse=True)
def english(workspace):
    """Pages in English, so that assertions do not depend on the translation catalogue."""
    workspace.language = "en"
    workspace.save()


@pytest.fixture
def attrs(workspace):
    return {
        "name": Attribute.objects.create(workspace=workspace, key="name", label="氏名", pii=True,
                                         position=1),
        "age": Attribute.objects.create(workspace=workspace, key="age", label="年齢",
                                        type="number", position=2),
        "plan": Attribute.objects.create(workspace=workspace, key="plan", label="プラン",
                                         type="choice", choices=["free", "gold"], position=0),
        "city": Attribute.objects.create(workspace=workspace, key="city", label="都市",
                                         position=3),
    }


@pytest.fixture
def taro(workspace, attrs):
    return Member.objects.create(workspace=workspace, email="taro@example.jp",
                                 phone="+819012345678",
                                 attributes={"name": "山田太郎", "age": 30, "plan": "gold",
                                             "city": "大阪"})


def page(client, **params):
    return client.get(reverse("members:index"), params)


# The table


def test_it_shows_members_with_attribute_columns_in_display_order(owner_client, taro):
    response = page(owner_client)
    assert response.status_code == 200
    html = response.content.decode()
    assert "taro@example.jp" in html and "+819012345678" in html and "山田太郎" in html
    head = html[html.index("<thead>"):html.index("</thead>")]
    assert head.index("プラン") < head.index("氏名") < head.index("年齢") < head.index("都市")


def test_it_renders_japanese_by_default(owner_client, workspace, taro):
    workspace.language = "ja"
    workspace.save()
    response = page(owner_client)
    assert response["Content-Language"] == "ja"
    assert '<html lang="ja">' in response.content.decode()
    assert "山田太郎" in response.content.decode()


def test_it_pages_fifty_members_at_a_time(owner_client, workspace):
    Member.objects.bulk_create([Member(workspace=workspace, email=f"m{i:03}@example.jp")
                                for i in range(120)])
    first = page(owner_client)
    assert len(first.context["rows"]) == 50
    assert first.context["page_obj"].paginator.num_pages == 3
    last = page(owner_client, page=3)
    assert len(last.context["rows"]) == 20


def test_it_filters_by_status_and_list(owner_client, workspace, taro):
    other = Member.objects.create(workspace=workspace, email="jiro@example.jp",
                                  status=Member.Status.UNSUBSCRIBED)
    vip = MemberList.objects.create(workspace=workspace, name="VIP")
    ListMembership.objects.create(member_list=vip, member=taro)
    by_status = page(owner_client, status="unsubscribed")
    assert [r["member"] for r in by_status.context["rows"]] == [other]
    by_list = page(owner_client, list=vip.pk)
    assert [r["member"] for r in by_list.context["rows"]] == [taro]


def test_it_searches_email_phone_and_text_attributes(owner_client, workspace, taro):
    Member.objects.create(workspace=workspace, email="hanako@example.jp",
                          attributes={"city": "東京"})
    assert [r["member"] for r in page(owner_client, q="TARO@").context["rows"]] == [taro]
    assert [r["member"] for r in page(owner_client, q="090-1234-5678").context["rows"]] == [taro]
    assert [r["member"] for r in page(owner_client, q="大阪").context["rows"]] == [taro]
    assert [r["member"] for r in page(owner_client, q="太郎", field="name").context["rows"]] == [
        taro]
    assert page(owner_client, q="名古屋").context["rows"] == []


def test_an_analyst_sees_email_phone_and_pii_attributes_masked(analyst_client, taro):
    html = page(analyst_client).content.decode()
    assert "ta***@example.jp" in html
    assert "taro@example.jp" not in html and "+819012345678" not in html
    assert "山田太郎" not in html
    assert "大阪" in html and "gold" in html  # not personal information


def test_an_analyst_cannot_search_by_email_or_phone(analyst_client, taro):
    for params in ({"q": "taro@example.jp"}, {"q": "090-1234-5678"},
                   {"q": "taro", "field": "email"}, {"q": "太郎", "field": "name"}):
        response = page(analyst_client, **params)
        assert response.context["refusal"], params
        assert response.context["rows"] == []
        assert "may not see" in response.content.decode()


def test_an_analyst_searches_only_fields_they_may_see(analyst_client, taro):
    assert [r["member"] for r in page(analyst_client, q="大阪").context["rows"]] == [taro]
    # "taro" is in the email and "太郎" in a PII attribute: neither is searched for an Analyst.
    assert page(analyst_client, q="taro").context["rows"] == []
    assert page(analyst_client, q="太郎").context["rows"] == []
    options = dict(page(analyst_client).context["form"].fields["field"].widget.choices)
    assert "email" not in options and "name" not in options and "city" in options


# The detail page


def test_opening_a_detail_page_with_the_pii_right_is_audited(owner_client, owner, taro):
    response = owner_client.get(reverse("members:detail", args=[taro.pk]))
    assert response.status_code == 200
    assert "taro@example.jp" in response.content.decode()
    event = AuditEvent.objects.get(action="member.viewed_pii")
    assert event.operator == owner and event.target == f"member:{taro.pk}"


def test_an_analyst_sees_the_detail_page_masked_and_is_not_audited(analyst_client, taro):
    ConsentRecord.objects.create(workspace=taro.workspace, member=taro, method="web form",
                                 ip="203.0.113.9")
    html = analyst_client.get(reverse("members:detail", args=[taro.pk])).content.decode()
    assert "ta***@example.jp" in html and mask_phone(taro.phone) in html
    assert "taro@example.jp" not in html and "山田太郎" not in html and "203.0.113.9" not in html
    assert not AuditEvent.objects.filter(action="member.viewed_pii").exists()
    assert reverse("members:edit", args=[taro.pk]) not in html


def test_the_detail_page_shows_lists_consent_history_in_the_workspace_time_zone(
        owner_client, workspace, taro):
    taro.created_at = dt.datetime(2024, 3, 31, 16, 30, tzinfo=dt.UTC)  # 01:30 on 1 April in Tokyo
    taro.save()
    vip = MemberList.objects.create(workspace=workspace, name="VIP会員")
    ListMembership.objects.create(member_list=vip, member=taro)
    ConsentRecord.objects.create(workspace=workspace, member=taro, method="店頭の申込書",
                                 wording_version="v2")
    owner_client.post(reverse("members:edit", args=[taro.pk]), form_data(taro, attr_city="京都"))
    html = owner_client.get(reverse("members:detail", args=[taro.pk])).content.decode()
    assert "2024-04-01 01:30" in html
    assert "VIP会員" in html and "店頭の申込書" in html and "v2" in html
    assert "Updated" in html and "都市" in html  # the history names the changed field


# Creating and editing


def form_data(member=None, **changes):
    data = {"email": "", "phone": "", "status": "active"}
    if member is not None:
        data.update(email=member.email, phone=member.phone, status=member.status)
        data.update({f"attr_{k}": v for k, v in member.attributes.items()})
    data.update(changes)
    return data


def test_the_form_has_a_widget_per_attribute_type(owner_client, workspace):
    Attribute.objects.create(workspace=workspace, key="born", label="誕生日", type="date")
    Attribute.objects.create(workspace=workspace, key="seen", label="最終来店", type="datetime")
    Attribute.objects.create(workspace=workspace, key="dm", label="DM可", type="boolean")
    Attribute.objects.create(workspace=workspace, key="score", label="点数", type="number")
    Attribute.objects.create(workspace=workspace, key="plan", label="プラン", type="choice",
                             choices=["free", "gold"])
    Attribute.objects.create(workspace=workspace, key="tags", label="タグ", type="multi_choice",
                             choices=["a", "b"])
    html = owner_client.get(reverse("members:create")).content.decode()
    assert 'type="date" name="attr_born"' in html
    assert 'type="datetime-local" name="attr_seen"' in html
    assert 'type="checkbox" name="attr_dm"' in html
    assert 'type="number" name="attr_score"' in html
    assert '<select name="attr_plan"' in html
    assert '<select name="attr_tags"' in html and "multiple" in html


def test_it_creates_a_member_through_the_services_and_audits_it(owner_client, attrs):
    response = owner_client.post(reverse("members:create"), form_data(
        email="Hanako@Example.JP", phone="０９０-１１１１-２２２２", attr_name="花子",
        attr_age="２５", attr_plan="free"))
    member = Member.objects.get()
    assert response.status_code == 302 and response.url == reverse("members:detail",
                                                                   args=[member.pk])
    assert member.email == "Hanako@example.jp" and member.phone == "+819011112222"
    assert member.attributes == {"name": "花子", "age": 25, "plan": "free"}
    assert AuditEvent.objects.filter(action="member.created",
                                     target=f"member:{member.pk}").exists()


def test_validation_errors_are_shown_on_their_fields(owner_client, attrs):
    attrs["age"].required = True
    attrs["age"].save()
    response = owner_client.post(reverse("members:create"), form_data(
        email="not-an-address", attr_plan="platinum"))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert set(errors) == {"email", "attr_plan", "attr_age"}
    assert "platinum" in errors["attr_plan"][0]
    assert not Member.objects.exists()
    html = response.content.decode()
    assert 'value="not-an-address"' in html  # what was typed is kept


def test_a_number_that_is_not_a_number_is_refused_on_its_field(owner_client, taro):
    response = owner_client.post(reverse("members:edit", args=[taro.pk]),
                                 form_data(taro, attr_age="thirty"))
    assert list(response.context["form"].errors) == ["attr_age"]
    taro.refresh_from_db()
    assert taro.attributes["age"] == 30


def test_an_address_another_member_has_is_refused_on_the_email_field(owner_client, workspace,
                                                                      taro):
    Member.objects.create(workspace=workspace, email="jiro@example.jp")
    response = owner_client.post(reverse("members:create"), form_data(email="jiro@example.jp"))
    assert "email" in response.context["form"].errors
    response = owner_client.post(reverse("members:edit", args=[taro.pk]),
                                 form_data(taro, email="jiro@example.jp"))
    assert "email" in response.context["form"].errors
    taro.refresh_from_db()
    assert taro.email == "taro@example.jp"


def test_editing_saves_and_audits_the_names_of_changed_fields_only(owner_client, taro):
    response = owner_client.post(reverse("members:edit", args=[taro.pk]),
                                 form_data(taro, attr_city="京都", attr_name=""))
    assert response.status_code == 302
    taro.refresh_from_db()
    assert taro.attributes == {"age": 30, "plan": "gold", "city": "京都"}
    event = AuditEvent.objects.get(action="member.updated")
    assert event.detail == {"fields": ["city", "name"]}
    assert "京都" not in str(event.detail) and "山田太郎" not in str(event.detail)


def test_date_and_time_attributes_are_entered_in_the_workspace_time_zone(owner_client, workspace,
                                                                          taro):
    Attribute.objects.create(workspace=workspace, key="seen", label="最終来店", type="datetime")
    owner_client.post(reverse("members:edit", args=[taro.pk]),
                      form_data(taro, attr_seen="2024-04-01T09:00"))
    taro.refresh_from_db()
    assert taro.attributes["seen"] == "2024-04-01T00:00:00Z"
    html = owner_client.get(reverse("members:edit", args=[taro.pk])).content.decode()
    assert 'value="2024-04-01T09:00:00"' in html


def test_an_editor_without_the_pii_right_keeps_hidden_values_by_leaving_them_empty(
        client, workspace, taro):
    role = Role.objects.create(workspace=workspace, name="Clerk",
                               permissions=["members.view", "members.edit"])
    clerk = make_operator(workspace, "clerk@sample.jp", "Viewer")
    clerk.memberships.update(role=role)
    client.force_login(clerk)
    html = client.get(reverse("members:edit", args=[taro.pk])).content.decode()
    assert "taro@example.jp" not in html and "山田太郎" not in html
    assert 'placeholder="ta***@example.jp"' in html
    response = client.post(reverse("members:edit", args=[taro.pk]), {
        "email": "", "phone": "", "status": "active", "attr_name": "", "attr_age": "31",
        "attr_plan": "gold", "attr_city": "大阪"})
    assert response.status_code == 302
    taro.refresh_from_db()
    assert taro.email == "taro@example.jp" and taro.phone == "+819012345678"
    assert taro.attributes == {"name": "山田太郎", "age": 31, "plan": "gold", "city": "大阪"}


def test_deleting_asks_for_confirmation_then_deletes_and_audits(owner_client, taro):
    confirm = owner_client.get(reverse("members:delete", args=[taro.pk]))
    assert confirm.status_code == 200 and Member.objects.filter(pk=taro.pk).exists()
    response = owner_client.post(reverse("members:delete", args=[taro.pk]))
    assert response.url == reverse("members:index")
    assert not Member.objects.filter(pk=taro.pk).exists()
    assert AuditEvent.objects.filter(action="member.deleted", target=f"member:{taro.pk}").exists()


def test_deleting_a_member_keeps_its_consent_records_with_their_addresses(owner_client, taro):
    email = ConsentRecord.objects.create(workspace=taro.workspace, member=taro, method="web form")
    sms = ConsentRecord.objects.create(workspace=taro.workspace, member=taro, method="paper",
                                       channel="sms")
    owner_client.post(reverse("members:delete", args=[taro.pk]))
    email.refresh_from_db()
    sms.refresh_from_db()
    assert (email.member_id, email.address) == (None, "taro@example.jp")
    assert (sms.member_id, sms.address) == (None, "+819012345678")


# Lists and consent from the detail page


def test_it_adds_and_removes_a_list_membership(owner_client, workspace, taro):
    vip = MemberList.objects.create(workspace=workspace, name="VIP")
    owner_client.post(reverse("members:add-to-list", args=[taro.pk]), {"member_list": vip.pk})
    assert ListMembership.objects.filter(member_list=vip, member=taro).exists()
    owner_client.post(reverse("members:remove-from-list", args=[taro.pk, vip.pk]))
    assert not ListMembership.objects.filter(member_list=vip, member=taro).exists()
    actions = list(AuditEvent.objects.filter(target=f"member:{taro.pk}")
                   .values_list("action", flat=True))
    assert "member.list_added" in actions and "member.list_removed" in actions


def test_it_records_and_withdraws_consent(owner_client, workspace, taro):
    response = owner_client.post(reverse("members:consent-add", args=[taro.pk]), {
        "channel": "email", "given_at": "2024-04-01T10:00", "method": "Webフォーム",
        "source": "campaign-lp", "wording_version": "2024-01", "ip": "2001:db8::1",
        "user_agent": "Mozilla/5.0"})
    assert response.status_code == 302
    consent = ConsentRecord.objects.get(member=taro)
    assert consent.workspace == workspace and consent.ip == "2001:db8::1"
    assert consent.given_at == dt.datetime(2024, 4, 1, 1, 0, tzinfo=dt.UTC)
    owner_client.post(reverse("members:consent-withdraw", args=[taro.pk, consent.pk]),
                      {"withdrawn_method": "電話"})
    consent.refresh_from_db()
    assert consent.withdrawn_at is not None and consent.withdrawn_method == "電話"
    assert consent.withdrawn_at <= timezone.now()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"consent.recorded", "consent.withdrawn"} <= actions


def test_a_consent_without_its_method_is_refused_on_the_field(owner_client, taro):
    response = owner_client.post(reverse("members:consent-add", args=[taro.pk]),
                                 {"channel": "email", "given_at": "2024-04-01T10:00",
                                  "ip": "not an ip"})
    assert response.status_code == 400
    assert {"method", "ip"} <= set(response.context["consent_form"].errors)
    assert not ConsentRecord.objects.exists()


# Permissions and workspaces


def test_an_analyst_cannot_create_edit_or_delete(analyst_client, workspace, taro):
    vip = MemberList.objects.create(workspace=workspace, name="VIP")
    consent = ConsentRecord.objects.create(workspace=workspace, member=taro, method="web")
    assert analyst_client.get(reverse("members:create")).status_code == 403
    assert analyst_client.post(reverse("members:create"), form_data(email="x@example.jp")
                               ).status_code == 403
    assert analyst_client.get(reverse("members:edit", args=[taro.pk])).status_code == 403
    assert analyst_client.post(reverse("members:edit", args=[taro.pk]),
                               form_data(taro, attr_city="京都")).status_code == 403
    assert analyst_client.post(reverse("members:delete", args=[taro.pk])).status_code == 403
    assert analyst_client.post(reverse("members:add-to-list", args=[taro.pk]),
                               {"member_list": vip.pk}).status_code == 403
    assert analyst_client.post(reverse("members:consent-add", args=[taro.pk]),
                               {"method": "x"}).status_code == 403
    assert analyst_client.post(reverse("members:consent-withdraw", args=[taro.pk, consent.pk]),
                               {"withdrawn_method": "x"}).status_code == 403
    taro.refresh_from_db()
    assert taro.attributes["city"] == "大阪" and Member.objects.count() == 1
    assert not ListMembership.objects.exists()
    assert "Add member" not in analyst_client.get(reverse("members:index")).content.decode()


def test_another_workspaces_members_lists_and_consents_are_not_found(owner_client, workspace,
                                                                      other_workspace, taro):
    theirs = Member.objects.create(workspace=other_workspace, email="x@other.example")
    their_list = MemberList.objects.create(workspace=other_workspace, name="Theirs")
    their_consent = ConsentRecord.objects.create(workspace=other_workspace, member=theirs,
                                                 method="web")
    for name in ("members:detail", "members:edit", "members:delete"):
        assert owner_client.get(reverse(name, args=[theirs.pk])).status_code == 404
    assert owner_client.post(reverse("members:delete", args=[theirs.pk])).status_code == 404
    assert owner_client.post(reverse("members:add-to-list", args=[theirs.pk]),
                             {"member_list": their_list.pk}).status_code == 404
    response = owner_client.post(reverse("members:add-to-list", args=[taro.pk]),
                                 {"member_list": their_list.pk})
    assert response.status_code == 400
    assert owner_client.post(reverse("members:remove-from-list", args=[taro.pk, their_list.pk])
                             ).status_code == 404
    assert owner_client.post(reverse("members:consent-withdraw", args=[taro.pk,
                                                                       their_consent.pk]),
                             {"withdrawn_method": "x"}).status_code == 404
    # Another workspace's list is not a valid filter: it is reported, not applied.
    filtered = page(owner_client, list=their_list.pk)
    assert "list" in filtered.context["form"].errors
    assert [r["member"] for r in filtered.context["rows"]] == [taro]
    assert Member.objects.filter(pk=theirs.pk).exists()
    assert not ListMembership.objects.exists()
    their_consent.refresh_from_db()
    assert their_consent.withdrawn_at is None
    assert "x@other.example" not in page(owner_client).content.decode()
