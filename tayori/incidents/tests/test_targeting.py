"""Whom a notice reaches: exactly the members whose service attribute holds any chosen
service; the confirmation screen's count and the fan-out agree on who is skipped and why."""

import pytest

from tayori.delivery.models import Delivery
from tayori.incidents import notices, targeting
from tayori.incidents.models import NoticeType
from tayori.incidents.tests.conftest import AFFECTED, CHOSEN, outage_fields, request_by
from tayori.members.models import Attribute, Member, Segment


def test_it_picks_the_members_holding_any_chosen_service(workspace, starter, merchants):
    definition = targeting.audience(starter["障害発生"], {"services": CHOSEN})
    assert definition == {"op": "and", "conditions": [
        {"field": "services", "operator": "has_any", "value": CHOSEN}]}
    reach = targeting.reach(workspace, definition)
    assert {m.email for m in reach.sample} == AFFECTED  # a multi-valued one included
    assert reach.receiving == 3
    assert reach.skipped == {"bounced": 1, "suppressed": 1}  # c, d and h are not meant at all


def test_an_unsubscribed_member_is_told_and_skipped_ones_keep_their_reason(
        workspace, owner, starter, merchants):
    notice = notices.draft(starter["障害発生"], outage_fields(), request=request_by(owner))
    notice = notices.confirm(notice, request=request_by(owner))
    rows = {d.address: d for d in Delivery.objects.filter(source=notice.source)}
    queued = {address for address, d in rows.items() if d.status == "queued"}
    assert queued == AFFECTED
    assert rows["e@merchant.example.jp"].skip_reason == ""  # unsubscribed, still told
    assert (rows["f@merchant.example.jp"].status, rows["f@merchant.example.jp"].skip_reason) == (
        "skipped", "bounced")
    assert rows["g@merchant.example.jp"].skip_reason == "suppressed"
    assert set(rows) == AFFECTED | {"f@merchant.example.jp", "g@merchant.example.jp"}
    assert notice.recipients == 3 and notice.source.priority == 9
    assert notice.source.skipped == {"bounced": 1, "suppressed": 1}


def test_a_bulk_send_still_skips_unsubscribed_members(workspace, merchants):
    from tayori.delivery import queue
    from tayori.delivery.models import Source

    source = Source.objects.create(
        workspace=workspace, name="news", from_address="news@example.jp", subject="s",
        text="t", audience={"op": "and", "conditions": [
            {"field": "services", "operator": "has_any", "value": ["transfer"]}]})
    queue.start(source)
    skipped = dict(Delivery.objects.filter(source=source, status="skipped").values_list(
        "address", "skip_reason"))
    assert skipped == {"e@merchant.example.jp": "unsubscribed",
                       "g@merchant.example.jp": "suppressed"}


def test_a_code_no_member_can_hold_reaches_nobody(workspace, starter, merchants):
    notice_type = starter["障害発生"]
    assert targeting.audience(notice_type, {"services": []}) is None
    attribute = Attribute.objects.get(workspace=workspace, key="services")
    attribute.choices = ["payment_api"]
    attribute.save()
    assert targeting.audience(notice_type, {"services": ["transfer"]}) is None
    assert targeting.audience(notice_type, {"services": CHOSEN})["conditions"][0]["value"] == [
        "payment_api"]
    assert targeting.reach(workspace, None).receiving == 0


def test_a_text_or_choice_attribute_is_matched_exactly(workspace, starter):
    Attribute.objects.create(workspace=workspace, key="plan_service", label="契約",
                             type=Attribute.Type.TEXT)
    Member.objects.create(workspace=workspace, email="x@example.jp",
                          attributes={"plan_service": "transfer"})
    Member.objects.create(workspace=workspace, email="y@example.jp",
                          attributes={"plan_service": "transfer_v2"})
    notice_type = starter["障害発生"]
    notice_type.target_attribute = "plan_service"
    definition = targeting.audience(notice_type, {"services": ["transfer"]})
    assert definition["conditions"][0]["operator"] == "in"
    assert [m.email for m in targeting.reach(workspace, definition).sample] == ["x@example.jp"]


def test_everyone_or_a_segment_can_be_the_audience(workspace, starter, merchants):
    notice_type = starter["メンテナンス告知"]
    notice_type.target = NoticeType.Target.EVERYONE
    assert targeting.reach(workspace, targeting.audience(notice_type, {})).receiving == 6
    notice_type.segment = Segment.objects.create(workspace=workspace, name="A", definition={
        "op": "and", "conditions": [{"field": "email", "operator": "starts_with", "value": "a"}]})
    reach = targeting.reach(workspace, targeting.audience(notice_type, {}))
    assert [m.email for m in reach.sample] == ["a@merchant.example.jp"]


@pytest.mark.parametrize("chosen", [["card"], ["konbini"], ["dashboard", "card"]])
def test_the_count_and_the_fan_out_agree(workspace, owner, starter, merchants, chosen):
    planned = notices.plan(starter["障害発生"], outage_fields(services=chosen))
    notice = notices.confirm(notices.draft(starter["障害発生"], outage_fields(services=chosen),
                                           request=request_by(owner)), request=request_by(owner))
    assert notice.recipients == planned.reach.receiving > 0
    assert notice.source.skipped == planned.reach.skipped
