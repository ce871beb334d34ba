"""Step mails: birthdays at 09:00 JST once a year, N days after signing up, N days after the
previous step, goals that stop a sequence, and unsubscribed members left out. Every firing goes
through the scheduler's tick and the engine into the sandbox outbox."""

import asyncio
import datetime as dt
import email
import email.policy

import pytest

from tayori.campaigns import steps
from tayori.campaigns.models import Step, StepMail, StepSent
from tayori.content.models import SenderIdentity, Template
from tayori.delivery import scheduler
from tayori.delivery.engine import Worker
from tayori.delivery.models import Delivery, OutboxMessage, Source
from tayori.members.models import Attribute, Member

pytestmark = pytest.mark.django_db(transaction=True)
JST = dt.timezone(dt.timedelta(hours=9))


def jst(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=JST)


def drain() -> int:
    return asyncio.run(Worker(name="test").drain())


@pytest.fixture
def identity(workspace):
    return SenderIdentity.objects.create(workspace=workspace, label="news", from_name="サンプル",
                                         from_address="news@example.jp",
                                         organization="株式会社サンプル")


@pytest.fixture
def attributes(workspace):
    Attribute.objects.create(workspace=workspace, key="name", label="氏名", type="text")
    Attribute.objects.create(workspace=workspace, key="birthday", label="誕生日", type="date")
    Attribute.objects.create(workspace=workspace, key="purchased", label="購入済み",
                             type="boolean")


def template(workspace, name, subject, text):
    return Template.objects.create(workspace=workspace, name=name, subject=subject,
                                   blocks=[{"kind": "text", "text": text}, {"kind": "footer"}])


def step_mail(workspace, identity, *steps_, goal=None, audience=None) -> StepMail:
    mail = StepMail.objects.create(workspace=workspace, name="follow-up", identity=identity,
                                   goal=goal, audience=audience)
    for position, fields in enumerate(steps_, 1):
        Step.objects.create(step_mail=mail, position=position, **fields)
    steps.activate(mail)
    return mail


def queued(step: Step) -> list[str]:
    step.refresh_from_db()
    return sorted(Delivery.objects.filter(source=step.source).exclude(status="skipped")
                  .values_list("address", flat=True))


@pytest.fixture
def birthdays(workspace, identity, attributes):
    create = Member.objects.create
    people = {
        "taro": create(workspace=workspace, email="taro@example.jp",
                       attributes={"name": "太郎", "birthday": "1990-06-15"}),
        "yuki": create(workspace=workspace, email="yuki@example.jp",
                       attributes={"name": "由紀", "birthday": "2001-06-15"}),
        "hana": create(workspace=workspace, email="hana@example.jp",
                       attributes={"name": "花子", "birthday": "1985-06-16"}),
        "gone": create(workspace=workspace, email="gone@example.jp", status="unsubscribed",
                       attributes={"name": "元", "birthday": "1992-06-15"}),
        "none": create(workspace=workspace, email="none@example.jp", attributes={"name": "無"}),
    }
    mail = step_mail(workspace, identity, {
        "trigger": Step.Trigger.YEARLY, "attribute": "birthday", "at": dt.time(9),
        "template": template(workspace, "birthday", "{{ member.name }}様 お誕生日おめでとうございます",
                             "{{ member.name }}様、素敵な一年になりますように。")})
    return people, mail.steps.get()


def test_a_birthday_step_fires_at_its_hour_on_the_day_once_a_year(birthdays):
    _people, step = birthdays
    assert step.source.kind == Source.Kind.STEP and step.source.status == "running"
    assert scheduler.tick(now=jst(2024, 6, 15, 8, 59))["steps"] == 0
    assert queued(step) == []
    assert scheduler.tick(now=jst(2024, 6, 15, 9, 1))["steps"] == 2
    assert queued(step) == ["taro@example.jp", "yuki@example.jp"]
    # Later the same day (and a second scheduler racing this one) add nothing.
    assert scheduler.tick(now=jst(2024, 6, 15, 9, 2))["steps"] == 0
    assert steps.fire(now=jst(2024, 6, 15, 21, 0)) == 0
    assert queued(step) == ["taro@example.jp", "yuki@example.jp"]

    assert drain() == 2
    caught = OutboxMessage.objects.get(recipient="taro@example.jp")
    message = email.message_from_bytes(bytes(caught.raw), policy=email.policy.default)
    assert message["Subject"] == "太郎様 お誕生日おめでとうございます"
    assert "太郎様、素敵な一年になりますように。" in message.get_body(("plain",)).get_content()
    assert "List-Unsubscribe" in message
    # A step's source stays running after its rows are sent: more members fall due later.
    scheduler.tick(now=jst(2024, 6, 15, 12, 0))
    step.source.refresh_from_db()
    assert step.source.status == "running"

    assert steps.fire(now=jst(2024, 6, 16, 9, 0)) == 1
    assert queued(step) == ["hana@example.jp", "taro@example.jp", "yuki@example.jp"]
    # The next year the birthday members are mailed again, once.
    assert steps.fire(now=jst(2025, 6, 15, 9, 30)) == 2
    assert steps.fire(now=jst(2025, 6, 15, 9, 31)) == 0
    assert sorted(StepSent.objects.filter(step=step).values_list("occurrence", flat=True)) == [
        2024, 2024, 2024, 2025, 2025]
    assert drain() == 3
    assert OutboxMessage.objects.filter(recipient="taro@example.jp").count() == 2
    assert not OutboxMessage.objects.filter(recipient__in=["gone@example.jp",
                                                           "none@example.jp"]).exists()


def test_the_hour_is_in_the_workspace_zone_whatever_zone_now_is_given_in(birthdays):
    _people, step = birthdays
    # 23:59 UTC on the 14th is 08:59 on the 15th in Tokyo; 00:01 UTC is 09:01.
    assert steps.fire(now=dt.datetime(2024, 6, 14, 23, 59, tzinfo=dt.UTC)) == 0
    assert steps.fire(now=dt.datetime(2024, 6, 15, 0, 1, tzinfo=dt.UTC)) == 2
    assert drain() == 2


def test_an_inactive_step_mail_sends_nothing(birthdays):
    _people, step = birthdays
    steps.deactivate(step.step_mail)
    assert steps.fire(now=jst(2024, 6, 15, 10, 0)) == 0
    steps.activate(step.step_mail)
    assert steps.fire(now=jst(2024, 6, 15, 10, 0)) == 2


def test_a_sequence_after_signup_then_after_the_previous_step_until_the_goal(
        workspace, identity, attributes):
    create = Member.objects.create
    # Signed up on 10 June (JST); one of them too long ago for a step made on 1 June.
    ami = create(workspace=workspace, email="ami@example.jp", created_at=jst(2024, 6, 10, 10),
                 attributes={"name": "亜美"})
    ken = create(workspace=workspace, email="ken@example.jp", created_at=jst(2024, 6, 10, 23),
                 attributes={"name": "健"})
    create(workspace=workspace, email="old@example.jp", created_at=jst(2024, 5, 1, 10),
           attributes={"name": "古"})
    create(workspace=workspace, email="gone@example.jp", created_at=jst(2024, 6, 10, 10),
           status="unsubscribed", attributes={"name": "元"})
    mail = step_mail(
        workspace, identity,
        {"trigger": Step.Trigger.AFTER_SIGNUP, "days": 3, "at": dt.time(9),
         "since": dt.date(2024, 6, 1),
         "template": template(workspace, "welcome", "ようこそ{{ member.name }}様", "使い方")},
        {"trigger": Step.Trigger.AFTER_PREVIOUS, "days": 2, "at": dt.time(9),
         "since": dt.date(2024, 6, 1),
         "template": template(workspace, "coupon", "{{ member.name }}様へクーポン", "10%オフ")},
        goal={"op": "and", "conditions": [{"field": "purchased", "operator": "is_true"}]})
    first, second = mail.steps.order_by("position")

    assert steps.fire(now=jst(2024, 6, 12, 10)) == 0  # two days after signing up
    assert steps.fire(now=jst(2024, 6, 13, 8, 59)) == 0
    assert steps.fire(now=jst(2024, 6, 13, 9, 30)) == 2
    assert queued(first) == ["ami@example.jp", "ken@example.jp"]
    assert queued(second) == []
    assert drain() == 2
    assert OutboxMessage.objects.get(recipient="ami@example.jp").subject == "ようこそ亜美様"

    # Ken buys something: he reached the goal and gets no further steps.
    ken.attributes = {**ken.attributes, "purchased": True}
    ken.save()
    assert steps.fire(now=jst(2024, 6, 14, 9, 30)) == 0  # one day after the first step
    assert steps.fire(now=jst(2024, 6, 15, 8, 0)) == 0  # the right day, before the hour
    assert steps.fire(now=jst(2024, 6, 15, 9, 0)) == 1
    assert queued(second) == ["ami@example.jp"]
    assert steps.fire(now=jst(2024, 6, 16, 9, 0)) == 0
    assert drain() == 1
    assert OutboxMessage.objects.get(recipient="ami@example.jp",
                                     source=second.source).subject == "亜美様へクーポン"
    # The first step never repeats for the same member.
    assert steps.fire(now=jst(2024, 6, 20, 9, 0)) == 0
    assert queued(first) == ["ami@example.jp", "ken@example.jp"]
    assert ami.pk in StepSent.objects.filter(step=second).values_list("member_id", flat=True)


def test_a_goal_reached_before_the_first_step_stops_the_whole_sequence(
        workspace, identity, attributes):
    Member.objects.create(workspace=workspace, email="buyer@example.jp",
                          created_at=jst(2024, 6, 10, 10),
                          attributes={"name": "買", "purchased": True})
    mail = step_mail(
        workspace, identity,
        {"trigger": Step.Trigger.AFTER_SIGNUP, "days": 3, "since": dt.date(2024, 6, 1),
         "template": template(workspace, "welcome", "ようこそ", "本文")},
        goal={"op": "and", "conditions": [{"field": "purchased", "operator": "is_true"}]})
    assert steps.fire(now=jst(2024, 6, 13, 10)) == 0
    assert queued(mail.steps.get()) == []


def test_an_after_date_step_and_an_audience(workspace, identity, attributes):
    Attribute.objects.create(workspace=workspace, key="visit", label="来店日", type="date")
    create = Member.objects.create
    create(workspace=workspace, email="a@example.jp",
           attributes={"name": "A", "visit": "2024-06-10", "purchased": True})
    create(workspace=workspace, email="b@example.jp",
           attributes={"name": "B", "visit": "2024-06-10"})
    mail = step_mail(
        workspace, identity,
        {"trigger": Step.Trigger.AFTER_DATE, "attribute": "visit", "days": 7,
         "since": dt.date(2024, 6, 1),
         "template": template(workspace, "thanks", "ご来店ありがとうございました", "本文")},
        audience={"op": "and", "conditions": [{"field": "purchased", "operator": "is_true"}]})
    assert steps.fire(now=jst(2024, 6, 16, 10)) == 0
    assert steps.fire(now=jst(2024, 6, 17, 10)) == 1
    assert queued(mail.steps.get()) == ["a@example.jp"]


def test_a_step_whose_attribute_was_deleted_is_skipped_not_fatal(birthdays, workspace):
    _people, step = birthdays
    Attribute.objects.filter(workspace=workspace, key="birthday").delete()
    assert steps.fire(now=jst(2024, 6, 15, 10)) == 0


@pytest.fixture
def responses(workspace, identity, attributes):
    """Two mails, and what taro, yuki and hana did with them (times in JST)."""
    from tayori.tracking.models import Response

    winter, spring = (Source.objects.create(workspace=workspace, name=name, subject=name,
                                            from_address="news@example.jp")
                      for name in ("冬のセール", "春のセール"))
    create = Member.objects.create
    people = {name: create(workspace=workspace, email=f"{name}@example.jp",
                           attributes={"name": name}) for name in ("taro", "yuki", "hana", "old")}

    def responded(source, name, **stamps):
        row = Delivery.objects.create(workspace=workspace, source=source, member=people[name],
                                      address=people[name].email, status="sent",
                                      sent_at=jst(2024, 6, 1))
        Response.objects.create(delivery=row, workspace=workspace, source=source,
                                member=people[name], **stamps)

    responded(winter, "taro", opened_at=jst(2024, 6, 10, 23, 30), clicked_at=jst(2024, 6, 10, 23, 31))
    responded(winter, "yuki", opened_at=jst(2024, 6, 11, 0, 5))  # the next day in Tokyo
    responded(winter, "hana", machine_clicks=3)  # only a scanner clicked
    responded(spring, "hana", clicked_at=jst(2024, 6, 10, 12))
    responded(winter, "old", clicked_at=jst(2024, 5, 20, 12))  # before the step existed
    return winter, spring


def after_event(workspace, identity, event, days, source=None) -> Step:
    """An active step mail of one step: ``days`` after ``event`` at 09:00, made on 1 June."""
    mail = step_mail(workspace, identity, {
        "trigger": Step.Trigger.AFTER_EVENT, "event": event, "event_source": source,
        "days": days, "at": dt.time(9), "since": dt.date(2024, 6, 1),
        "template": template(workspace, "thanks", "{{ member.name }}様", "ご覧いただき感謝")})
    return mail.steps.get()


def test_a_step_n_days_after_a_click_on_a_mail_fires_once_at_its_hour(
        workspace, identity, responses):
    winter, _spring = responses
    step = after_event(workspace, identity, Step.Event.CLICKED, 2, winter)
    assert steps.fire(now=jst(2024, 6, 11, 10)) == 0  # one day after
    assert steps.fire(now=jst(2024, 6, 12, 8, 59)) == 0  # the day, before the hour
    assert steps.fire(now=jst(2024, 6, 12, 9, 0)) == 1
    assert queued(step) == ["taro@example.jp"]
    assert steps.fire(now=jst(2024, 6, 13, 9, 0)) == 0  # once only
    assert steps.fire(now=jst(2024, 7, 1, 9, 0)) == 0
    assert drain() == 1


def test_a_step_after_opening_any_mail_counts_days_in_the_workspace_zone(
        workspace, identity, responses):
    step = after_event(workspace, identity, Step.Event.OPENED, 1)
    # Taro opened at 23:30 on the 10th, Yuki at 00:05 on the 11th (both the 10th in UTC).
    assert steps.fire(now=jst(2024, 6, 11, 9, 0)) == 1
    assert queued(step) == ["taro@example.jp"]
    assert steps.fire(now=jst(2024, 6, 12, 9, 0)) == 1
    assert queued(step) == ["taro@example.jp", "yuki@example.jp"]


def test_a_step_after_a_click_on_any_mail_leaves_out_machines_and_old_clicks(
        workspace, identity, responses):
    step = after_event(workspace, identity, Step.Event.CLICKED, 0)
    assert steps.fire(now=jst(2024, 6, 30, 9, 0)) == 2
    # Hana clicked the spring mail (her winter clicks were a scanner's); old clicked in May.
    assert queued(step) == ["hana@example.jp", "taro@example.jp"]


def test_the_step_form_asks_which_response_and_offers_this_workspaces_mails(
        owner_client, workspace, other_workspace, identity, responses):
    winter, _spring = responses
    theirs = Source.objects.create(workspace=other_workspace, name="theirs", subject="s",
                                   from_address="a@example.jp")
    mail = StepMail.objects.create(workspace=workspace, name="follow", identity=identity)
    form = owner_client.get(f"/campaigns/steps/{mail.pk}/").context["step_form"]
    assert theirs not in form.fields["event_source"].queryset
    welcome = template(workspace, "welcome", "件名", "本文")
    base = {"position": 1, "trigger": "after_event", "days": 3, "at": "09:00",
            "template": welcome.pk}
    refused = owner_client.post(f"/campaigns/steps/{mail.pk}/", base)
    assert refused.status_code == 200 and "event" in refused.context["step_form"].errors
    assert not mail.steps.exists()
    other = owner_client.post(f"/campaigns/steps/{mail.pk}/", {**base, "event": "clicked",
                                                               "event_source": theirs.pk})
    assert "event_source" in other.context["step_form"].errors
    assert owner_client.post(f"/campaigns/steps/{mail.pk}/", {
        **base, "event": "clicked", "event_source": winter.pk}).status_code == 302
    step = mail.steps.get()
    assert (step.trigger, step.event, step.event_source) == ("after_event", "clicked", winter)
    assert "冬のセール" in owner_client.get(f"/campaigns/steps/{mail.pk}/").content.decode()


def test_a_step_only_for_a_segment_chosen_in_the_form(owner_client, workspace, identity,
                                                       birthdays):
    """A birthday step for members in one segment: chosen on the page, applied when it fires."""
    from tayori.members.models import Segment

    _people, first = birthdays
    young = Segment.objects.create(workspace=workspace, name="2000年以降生まれ", definition={
        "op": "and", "conditions": [{"field": "birthday", "operator": "gte",
                                     "value": "2000-01-01"}]})
    mail = StepMail.objects.create(workspace=workspace, name="young", identity=identity,
                                   active=True)
    response = owner_client.post(f"/campaigns/steps/{mail.pk}/", {
        "position": 1, "trigger": "yearly", "attribute": "birthday", "days": 0, "at": "09:00",
        "template": first.template.pk, "only_segment": str(young.pk)})
    assert response.status_code == 302
    step = mail.steps.get()
    assert step.condition["conditions"][0] == {"field": "segment", "operator": "in_segment",
                                               "value": young.pk}
    assert "2000年以降生まれ" in owner_client.get(f"/campaigns/steps/{mail.pk}/").content.decode()
    steps.fire(now=jst(2024, 6, 15, 9, 1))
    step.refresh_from_db()
    assert queued(step) == ["yuki@example.jp"]
