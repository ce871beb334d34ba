"""The SQL a segment compiles to selects exactly the members the plain-Python evaluator picks.

Hypothesis builds a workspace with random attributes, members (including values of the wrong JSON
type, as a bug or a hand edit might leave them), lists, saved segments and condition trees, and
compares ``segment_queryset`` with ``Evaluator`` at a random "now" in a random time zone. It runs
on whichever database the suite runs on (SQLite by default, PostgreSQL in CI).

The kinds other apps register are held to the same rule: tracking's responses come with mails,
deliveries in every state, responses with any mix of firsts, and people's and machines' events
near the edges of the days a condition counts (the test writes those rows, so it imports the
models; members' own code never does).
"""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tayori.delivery.models import Delivery, Source
from tayori.members import segments
from tayori.members.models import Attribute, ListMembership, Member, MemberList, Segment
from tayori.members.segments.days import day_start
from tayori.tracking.models import Event, Link, Response

CHOICES = ["赤", "青", "緑", "a b"]
TYPES = [t.value for t in Attribute.Type]
ZONES = ["Asia/Tokyo", "UTC", "America/New_York", "Pacific/Chatham"]
# Instants near the edges that day arithmetic gets wrong: new year, 29 February, DST changes.
NOWS = [
    dt.datetime(2024, 2, 28, 15, 30, tzinfo=dt.UTC),
    dt.datetime(2024, 12, 31, 14, 59, 59, tzinfo=dt.UTC),
    dt.datetime(2024, 12, 31, 15, 0, tzinfo=dt.UTC),
    dt.datetime(2025, 3, 9, 7, 0, tzinfo=dt.UTC),
    dt.datetime(2023, 2, 28, 23, 0, tzinfo=dt.UTC),
]
ALPHABET = list("aAb京都東%_\\'\" -ｱé😀0")

texts = st.text(alphabet=ALPHABET, min_size=1, max_size=6).filter(lambda s: s.strip())
numbers = st.one_of(
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 0.5, -0.0, 2**53, 1e15, 0.1, 0.3]),
)
# Things a bug or a hand edit could leave behind: the wrong JSON type for the attribute.
strays = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.text(alphabet=ALPHABET, max_size=3),
    st.lists(st.one_of(st.sampled_from(CHOICES), st.integers(0, 2)), max_size=2),
    st.just({"x": 1}),
)


def _dates_near(today):
    return st.one_of(
        st.integers(-800, 800).map(lambda d: today + dt.timedelta(days=d)),
        st.dates(dt.date(1940, 1, 1), dt.date(2010, 12, 31)),
        st.sampled_from([dt.date(2000, 2, 29), dt.date(1999, 12, 31), dt.date(1990, 1, 1)]),
    )


def _stored_value(draw, attribute, today):
    kind = attribute.type
    if kind == "text":
        return draw(texts)
    if kind == "number":
        return draw(numbers)
    if kind == "date":
        return draw(_dates_near(today)).isoformat()
    if kind == "datetime":
        day = draw(_dates_near(today))
        moment = dt.datetime.combine(day, dt.time(draw(st.integers(0, 23)),
                                                  draw(st.sampled_from([0, 59])),
                                                  draw(st.sampled_from([0, 59])),
                                                  draw(st.sampled_from([0, 0, 500000]))),
                                     tzinfo=dt.UTC)
        return moment.isoformat().replace("+00:00", "Z")
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "choice":
        return draw(st.sampled_from(CHOICES))
    chosen = draw(st.lists(st.sampled_from(CHOICES), min_size=1, max_size=3, unique=True))
    return sorted(chosen, key=CHOICES.index)


class World:
    """What one example created, so that conditions can aim at values that exist."""

    def __init__(self, workspace, now):
        self.workspace = workspace
        self.now = now
        self.today = segments._today(workspace, now)
        self.attributes: list[Attribute] = []
        self.members: list[Member] = []
        self.lists: list[int] = []
        self.segments: list[int] = []
        self.mails: list[int] = []
        self.days = 0  # what response conditions mostly count back, drawn with the mails

    def stored(self, key):
        return [m.attributes[key] for m in self.members if key in m.attributes]


def _scalar(draw, world, field, operator):
    kind = field.kind
    if kind in ("choice", "multi_choice", "status"):
        return draw(st.sampled_from(field.choices))
    if kind in ("email", "phone"):
        existing = [getattr(m, kind) for m in world.members if getattr(m, kind)]
        if operator in ("equals", "not_equals", "in", "not_in"):
            made_up = "nobody@example.jp" if kind == "email" else "+819011112222"
            return draw(st.sampled_from([*existing, made_up]))
        whole = draw(st.sampled_from([*existing, "example", "+8190"]))
        start = draw(st.integers(0, max(len(whole) - 1, 0)))
        return whole[start:start + draw(st.integers(1, 6))].strip() or "x"
    if kind == "text":
        existing = [v for v in world.stored(field.name) if isinstance(v, str) and v.strip()]
        if existing and draw(st.booleans()):
            whole = draw(st.sampled_from(existing))
            if operator in ("contains", "not_contains", "starts_with"):
                start = 0 if operator == "starts_with" else draw(st.integers(0, len(whole) - 1))
                piece = whole[start:start + draw(st.integers(1, 4))]
                return piece if piece.strip() else whole
            return whole
        return draw(texts)
    if kind == "number":
        existing = [v for v in world.stored(field.name)
                    if isinstance(v, int | float) and not isinstance(v, bool)]
        return draw(st.sampled_from(existing)) if existing and draw(st.booleans()) else draw(numbers)
    # date, datetime, created_at: a day near today or near a stored value
    days = [world.today]
    for value in world.stored(field.name):
        if isinstance(value, str) and len(value) >= 10:
            try:
                days.append(dt.date.fromisoformat(value[:10]))
            except ValueError:
                pass
    day = draw(st.sampled_from(days)) + dt.timedelta(days=draw(st.integers(-2, 2)))
    return day.isoformat()


def _leaf(draw, world, fields, allow_segments=True):
    names = [n for n in fields if n != "segment" or (allow_segments and world.segments)]
    names = [n for n in names if n != "list" or world.lists]
    field = fields[draw(st.sampled_from(names))]
    operator = draw(st.sampled_from(field.operators))
    shape = segments.SHAPES.get(operator, "one")
    leaf = {"field": field.name, "operator": operator}
    if shape == "none":
        return leaf
    if shape == "response":
        leaf["value"] = _response_value(draw, world, operator)
    elif shape == "days":
        leaf["value"] = draw(st.one_of(st.integers(0, 400),
                                       st.sampled_from([0, 1, 7, 30, 364, 365, 366])))
    elif shape == "ref":
        pool = world.lists if field.kind == "list" else world.segments
        leaf["value"] = draw(st.sampled_from(pool))
    elif shape == "pair":
        pair = [_scalar(draw, world, field, operator), _scalar(draw, world, field, operator)]
        key = float if field.kind == "number" else str
        leaf["value"] = sorted(pair, key=lambda v: key(v))
    elif shape == "many":
        leaf["value"] = [_scalar(draw, world, field, operator)
                         for _ in range(draw(st.integers(1, 3)))]
    else:
        leaf["value"] = _scalar(draw, world, field, operator)
    return leaf


LINKS = [0, 1]
OFTEN = st.sampled_from([True, True, True, False])  # a boolean that is mostly true
DAYS = [0, 1, 2, 7, 30]


def _response_value(draw, world, operator):
    value = {}
    source = draw(st.sampled_from([None, *world.mails]))
    if source is not None:
        value["source"] = source
        if operator in ("clicked", "not_clicked") and draw(st.booleans()):
            value["link"] = draw(st.sampled_from(LINKS))
    if draw(OFTEN):
        value["days"] = draw(st.sampled_from([world.days, world.days, *DAYS]))
    return value


def _near_day_edges(draw, world):
    """An instant at, just before or just after the start of a day near today, or near now."""
    # Mostly the start of the day conditions count back to (see _response_value).
    back = draw(st.sampled_from([world.days, world.days, *DAYS, -1, 3]))
    start = day_start(world.today - dt.timedelta(days=back), ZoneInfo(world.workspace.time_zone))
    base = draw(st.sampled_from([start, start, start, world.now]))
    return base + dt.timedelta(seconds=draw(st.sampled_from([0, 0, -1, 1, 3600 * 5])))


def _build_responses(draw, world):
    """Mails, their deliveries to the members, and what came back."""
    workspace = world.workspace
    world.days = draw(st.sampled_from(DAYS))
    for index in range(draw(st.integers(1, 2))):
        source = Source.objects.create(workspace=workspace, name=f"mail {index}",
                                       from_address="news@example.jp", subject="s")
        Link.objects.bulk_create([Link(source=source, index=i, url=f"https://example.jp/{i}")
                                  for i in LINKS])
        world.mails.append(source.pk)
    for source in world.mails:
        for member in world.members:
            if not draw(OFTEN):
                continue
            status = draw(st.sampled_from(["sent", "sent", "failed", "queued", "skipped"]))
            delivery = Delivery.objects.create(
                workspace=workspace, source_id=source, member=member, address=member.email or "x",
                status=status, sent_at=_near_day_edges(draw, world) if status == "sent" else None)
            if not draw(OFTEN):
                continue
            stamps = {name: (_near_day_edges(draw, world) if draw(st.booleans()) else None)
                      for name in ("opened_at", "clicked_at", "converted_at")}
            Response.objects.create(delivery=delivery, workspace=workspace, source_id=source,
                                    member=member, **stamps)
            for _ in range(draw(st.sampled_from([2, 3, 1, 0]))):
                Event.objects.create(
                    workspace=workspace, source_id=source, delivery=delivery, member=member,
                    kind=draw(st.sampled_from(["open", "click", "conversion", "unsubscribe"])),
                    link_index=draw(st.sampled_from([None, *LINKS])),
                    at=_near_day_edges(draw, world),
                    machine=draw(st.sampled_from(["", "", "proxy", "scanner"])))


def _tree(draw, world, fields, depth=0, allow_segments=True):
    size = draw(st.integers(1 if depth else 0, 3))
    conditions = []
    for _ in range(size):
        if depth < 2 and draw(st.integers(0, 4)) == 0:
            conditions.append(_tree(draw, world, fields, depth + 1, allow_segments))
        else:
            conditions.append(_leaf(draw, world, fields, allow_segments))
    return {"op": draw(st.sampled_from(["and", "or"])), "conditions": conditions}


def _build_world(draw, workspace) -> World:
    workspace.time_zone = draw(st.sampled_from(ZONES))
    workspace.save(update_fields=["time_zone"])
    now = draw(st.one_of(st.sampled_from(NOWS), st.datetimes(
        dt.datetime(2023, 1, 1), dt.datetime(2026, 12, 31), timezones=st.just(dt.UTC))))
    world = World(workspace, now)
    for index in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(TYPES))
        world.attributes.append(Attribute.objects.create(
            workspace=workspace, key=draw(st.sampled_from([f"a{index}", f"{index}0", f"x-{index}"])),
            label=f"A{index}", type=kind,
            choices=CHOICES if kind in ("choice", "multi_choice") else []))
    for index in range(draw(st.integers(1, 8))):
        values = {}
        for attribute in world.attributes:
            how = draw(st.sampled_from(["missing", "value", "value", "value", "stray"]))
            if how == "value":
                values[attribute.key] = _stored_value(draw, attribute, world.today)
            elif how == "stray":
                values[attribute.key] = draw(strays)
        world.members.append(Member.objects.create(
            workspace=workspace,
            email=draw(st.sampled_from(["", f"taro{index}@example.jp", f"Hana.{index}@Mail.example"])),
            phone=draw(st.sampled_from(["", f"+8190{12340000 + index:08d}"])),
            status=draw(st.sampled_from(Member.Status.values)),
            attributes=values,
            created_at=now - dt.timedelta(seconds=draw(st.integers(-86400 * 3, 86400 * 900))),
        ))
    for index in range(draw(st.integers(0, 2))):
        member_list = MemberList.objects.create(workspace=workspace, name=f"list {index}")
        world.lists.append(member_list.pk)
        for member in world.members:
            if draw(st.booleans()):
                ListMembership.objects.create(member_list=member_list, member=member)
    _build_responses(draw, world)
    fields = segments.fields_of(workspace)
    for index in range(draw(st.integers(0, 2))):
        definition = _tree(draw, world, fields, depth=1, allow_segments=True)
        saved = Segment.objects.create(workspace=workspace, name=f"segment {index}",
                                       definition=segments.validate(workspace, definition))
        world.segments.append(saved.pk)
    world.members = list(Member.objects.filter(workspace=workspace))  # as the database stored them
    return world


def _agree(workspace, draw, kinds=None) -> None:
    """Build a world, then check three trees (of fields of ``kinds`` only, when given)."""
    with transaction.atomic():
        world = _build_world(draw, workspace)
        fields = {name: field for name, field in segments.fields_of(workspace).items()
                  if kinds is None or field.kind in kinds}
        for _ in range(3):
            definition = _tree(draw, world, fields)
            sql = set(segments.segment_queryset(workspace, definition, now=world.now)
                      .values_list("pk", flat=True))
            python = {m.pk for m in segments.Evaluator(workspace, now=world.now)
                      .select(world.members, definition)}
            assert sql == python, (
                definition, [(m.pk, m.email, m.attributes) for m in world.members],
                list(Event.objects.filter(workspace=workspace).values_list(
                    "member_id", "source_id", "kind", "link_index", "at", "machine")))
        transaction.set_rollback(True)


# Shrinking a failure takes minutes (every step writes rows); the assertion message already shows
# the definition, the members and their events, which are small.
def _examples(n):
    return settings(max_examples=n, deadline=None,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.django_db
@_examples(60)
@given(st.data())
def test_it_selects_the_same_members_in_sql_as_the_python_evaluator(workspace, data):
    _agree(workspace, data.draw)


@pytest.mark.django_db
@_examples(100)
@given(st.data())
def test_responses_select_the_same_members_in_sql_as_the_python_evaluator(workspace, data):
    """Trees of response conditions only, so that every example puts them to the test."""
    _agree(workspace, data.draw, kinds=("response", "status"))
