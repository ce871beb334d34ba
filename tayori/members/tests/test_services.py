import pytest

from tayori.members.models import Attribute, ConsentRecord, Member, Suppression
from tayori.members.services import ValidationFailed, create_member, update_member, upsert_many


@pytest.fixture
def attrs(workspace):
    Attribute.objects.create(workspace=workspace, key="name", label="氏名", pii=True, required=True)
    Attribute.objects.create(workspace=workspace, key="age", label="年齢", type="number")
    Attribute.objects.create(workspace=workspace, key="code", label="会員番号", unique=True)
    Attribute.objects.create(workspace=workspace, key="plan", label="プラン", type="choice",
                             choices=["free", "gold"])


def test_it_creates_and_normalizes_members(workspace, attrs):
    member = create_member(workspace, {"email": "Taro@Example.JP", "phone": "０９０-１２３４-５６７８",
                                       "name": "山田太郎", "age": "３０"})
    assert member.email == "Taro@example.jp"
    assert member.phone == "+819012345678"
    assert member.attributes == {"name": "山田太郎", "age": 30}


def test_it_reports_every_bad_field_at_once(workspace, attrs):
    with pytest.raises(ValidationFailed) as failed:
        create_member(workspace, {"email": "not-an-address", "age": "many", "plan": "platinum"})
    fields = {e.field for e in failed.value.errors}
    assert fields == {"email", "age", "plan", "name"}


def test_a_batch_keeps_good_items_when_some_are_bad(workspace, attrs):
    results = upsert_many(workspace, [
        {"email": "a@example.jp", "name": "A"},
        {"email": "broken@", "name": "B"},
        {"email": "c@example.jp", "name": "C", "age": "x"},
        {"email": "d@example.jp", "name": "D"},
    ])
    assert [r.status for r in results] == ["created", "error", "error", "created"]
    assert set(Member.objects.values_list("email", flat=True)) == {"a@example.jp", "d@example.jp"}


def test_upsert_is_idempotent(workspace, attrs):
    rows = [{"email": "a@example.jp", "name": "A", "age": "20"}]
    assert upsert_many(workspace, rows)[0].status == "created"
    assert upsert_many(workspace, rows)[0].status == "unchanged"
    assert upsert_many(workspace, [{"email": "a@example.jp", "age": "21"}])[0].status == "updated"
    member = Member.objects.get()
    assert member.attributes == {"name": "A", "age": 21}


def test_modes_add_and_update_refuse_the_wrong_half(workspace, attrs):
    upsert_many(workspace, [{"email": "a@example.jp", "name": "A"}])
    assert upsert_many(workspace, [{"email": "a@example.jp", "name": "A"}], mode="add")[0].errors
    assert upsert_many(workspace, [{"email": "b@example.jp", "name": "B"}], mode="update")[0].errors


def test_unique_attributes_clash_within_a_batch_and_with_the_database(workspace, attrs):
    upsert_many(workspace, [{"email": "a@example.jp", "name": "A", "code": "X1"}])
    results = upsert_many(workspace, [
        {"email": "b@example.jp", "name": "B", "code": "X1"},
        {"email": "c@example.jp", "name": "C", "code": "Y1"},
        {"email": "d@example.jp", "name": "D", "code": "Y1"},
    ])
    assert [r.status for r in results] == ["error", "created", "error"]


def test_unsubscribe_and_suppress_modes(workspace, attrs):
    upsert_many(workspace, [{"email": "a@example.jp", "name": "A"}],
                consent={"method": "import", "source": "test.csv"})
    assert ConsentRecord.objects.filter(withdrawn_at__isnull=True).count() == 1
    upsert_many(workspace, [{"email": "a@example.jp"}], mode="unsubscribe")
    assert Member.objects.get().status == "unsubscribed"
    assert ConsentRecord.objects.get().withdrawn_at is not None
    upsert_many(workspace, [{"email": "x@example.jp"}], mode="suppress")
    assert Suppression.objects.filter(value="x@example.jp").exists()


def test_batches_never_touch_another_workspace(workspace, other_workspace, attrs):
    Member.objects.create(workspace=other_workspace, email="a@example.jp")
    results = upsert_many(workspace, [{"email": "a@example.jp", "name": "A"}])
    assert results[0].status == "created"
    assert Member.objects.filter(email="a@example.jp").count() == 2


def test_update_member_changes_only_given_fields(workspace, attrs):
    member = create_member(workspace, {"email": "a@example.jp", "name": "A", "age": 3})
    update_member(member, {"age": 4})
    member.refresh_from_db()
    assert member.attributes == {"name": "A", "age": 4}
    create_member(workspace, {"email": "b@example.jp", "name": "B"})
    with pytest.raises(ValidationFailed):
        update_member(member, {"email": "b@example.jp"})


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+09:00", "9999-12-31T23:59:59-09:00",
                                 "0001-01-01 00:00"])
def test_datetimes_at_the_ends_of_the_calendar_are_refused_not_crashed(workspace, raw):
    Attribute.objects.create(workspace=workspace, key="seen", label="最終来店", type="datetime")
    [result] = upsert_many(workspace, [{"email": "a@example.jp", "seen": raw}])
    assert result.status == "error" and result.errors[0].field == "seen"


def test_a_batch_never_reactivates_a_member_who_opted_out(workspace, attrs):
    upsert_many(workspace, [{"email": "a@example.jp", "name": "A"}])
    upsert_many(workspace, [{"email": "a@example.jp"}], mode="unsubscribe")
    [result] = upsert_many(workspace, [{"email": "a@example.jp", "status": "active", "name": "A2"}])
    assert result.status == "error" and result.errors[0].field == "status"
    member = Member.objects.get()
    assert (member.status, member.attributes["name"]) == ("unsubscribed", "A")
    # without a status the row still updates other fields
    assert upsert_many(workspace, [{"email": "a@example.jp", "name": "A3"}])[0].status == "updated"
