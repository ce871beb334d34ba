"""A notice's life: drafted, confirmed (by a second operator when its type asks), sent on the
urgent lane as one fan-out; a recovery notice started from the outage's notice."""

import pytest

from tayori.accounts.models import AuditEvent
from tayori.delivery.models import Source
from tayori.incidents import notices
from tayori.incidents.models import Notice
from tayori.incidents.tests.conftest import outage_fields, request_by


def test_a_notice_is_sent_as_an_urgent_notice_source(workspace, owner, starter, merchants):
    notice = notices.draft(starter["障害発生"], outage_fields(), request=request_by(owner))
    assert (notice.status, notice.recipients) == ("draft", 3)
    assert notice.subject == "【障害発生】決済API、送金APIに障害が発生しています"
    assert notice.incident.title.startswith("決済API、送金API (")
    notice = notices.confirm(notice, request=request_by(owner))
    source = notice.source
    assert notice.status == "sent" and notice.sent_at is not None
    assert (source.kind, source.priority, source.status) == ("notice", 9, "running")
    assert source.audience == notice.audience and source.tracking is False
    assert source.from_address == "status@pay.example.jp"
    assert list(AuditEvent.objects.filter(target=f"notice:{notice.pk}").order_by(
        "id").values_list("action", flat=True)) == ["notice.draft", "notice.sent"]
    with pytest.raises(notices.NoticeRefused):
        notices.confirm(notice, request=request_by(owner))  # never twice
    with pytest.raises(notices.NoticeRefused):
        notices.cancel(notice, request=request_by(owner))


def test_a_second_operator_confirms_what_the_first_drafted(workspace, approver, second_approver,
                                                           starter, merchants):
    report = starter["事後報告"]
    assert report.requires_second_confirmation
    raw = outage_fields(recovered_at="2026-11-30T05:00", cause="DB障害", measures="冗長化")
    raw.pop("impact")
    notice = notices.draft(report, raw, request=request_by(approver))
    notice = notices.confirm(notice, request=request_by(approver))
    assert notice.status == "awaiting_confirmation" and notice.source is None
    assert notices.may_confirm(notice, approver) != ""
    with pytest.raises(notices.NoticeRefused) as refused:
        notices.confirm(notice, request=request_by(approver))
    assert refused.value.errors[0].field == "status"
    assert Source.objects.count() == 0
    notice = notices.confirm(notice, request=request_by(second_approver))
    assert notice.status == "sent" and notice.confirmed_by == second_approver
    assert notice.recipients == 3


def test_an_api_notice_waits_for_any_operator(workspace, approver, starter, merchants):
    report = starter["事後報告"]
    raw = outage_fields(recovered_at="2026-11-30T05:00", cause="DB", measures="対策")
    raw.pop("impact")
    notice = notices.draft(report, raw, request=request_by(), via=Notice.Via.API)
    notice = notices.confirm(notice, request=request_by())
    assert notice.status == "awaiting_confirmation" and notice.created_by is None
    assert notices.confirm(notice, request=request_by(approver)).status == "sent"


def test_a_recovery_notice_starts_with_the_outage_s_fields(workspace, owner, starter, merchants):
    outage = notices.confirm(notices.draft(starter["障害発生"], outage_fields(
        details="詳細"), request=request_by(owner)), request=request_by(owner))
    assert notices.followers(outage) == [starter["障害復旧"]]
    prefilled = notices.prefill(starter["障害復旧"], outage)
    # Shared keys of the same kind are carried; "details" is not a field of the recovery.
    assert prefilled == {"services": ["payment_api", "transfer"],
                         "started_at": "2026-11-29T18:12:00+00:00"}
    recovery = notices.draft(starter["障害復旧"], {**prefilled, "recovered_at": "2026-11-30T04:40"},
                             request=request_by(owner), incident=outage.incident)
    recovery = notices.confirm(recovery, request=request_by(owner))
    assert recovery.incident == outage.incident and recovery.recipients == 3
    assert "■ 復旧日時: 2026年11月30日（月）04:40" in recovery.text


def test_a_notice_no_member_would_receive_is_not_sent(workspace, owner, starter, merchants):
    from tayori.members.models import Member

    Member.objects.filter(email__in=["a@merchant.example.jp", "b@merchant.example.jp"]).delete()
    notice = notices.draft(starter["障害発生"], outage_fields(services=["payment_api"]),
                           request=request_by(owner))
    assert notice.recipients == 0
    with pytest.raises(notices.NoticeRefused) as refused:
        notices.confirm(notice, request=request_by(owner))
    assert refused.value.errors[0].field == "recipients"


def test_a_draft_can_be_revised_and_cancelled(workspace, owner, starter, merchants):
    notice = notices.draft(starter["障害発生"], outage_fields(), request=request_by(owner))
    notice = notices.revise(notice, outage_fields(services=["card"]), request=request_by(owner))
    assert notice.values["services"] == ["card"] and notice.recipients == 1
    assert notices.cancel(notice, request=request_by(owner)).status == "cancelled"
    with pytest.raises(notices.NoticeRefused):
        notices.confirm(notice, request=request_by(owner))


def test_the_starter_is_made_once(workspace, starter):
    from tayori.incidents.starter import create_starter

    assert list(starter) == ["障害発生", "障害復旧", "事後報告", "メンテナンス告知"]
    assert starter["事後報告"].follows == starter["障害復旧"]
    with pytest.raises(notices.NoticeRefused):
        create_starter(workspace, from_address="x@example.jp")
