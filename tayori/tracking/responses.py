"""Responses in segments: the ``mail.response`` field, registered with the segment language from
TrackingConfig.ready (members never imports tracking).

A condition reads "received / opened / clicked / converted" or its negation, of one mail (a
Source) or of any mail, a click optionally on one link of that mail, optionally "within the last
N days" (days in the workspace zone, as the day operators count them). Its value is
``{"source": id, "link": index, "days": n}``, each key optional (absent: any).

Only people count: "ever" questions read the delivery's Response row, whose times and counts
leave machines out; "when" and "which link" questions read people's Events (``machine=""``). A
click is also an open, as Response.opened_at has it. "Received" is a Delivery that was sent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tayori.delivery.models import Delivery, Source
from tayori.members.segments import FieldKind, Scope, ValueRefused, day_count
from tayori.members.segments.days import instant_range
from tayori.tracking.fast import links_of
from tayori.tracking.models import Event, Kind, Link, Response

FIELD = "mail.response"  # a "." no attribute key may hold: the field never hides an attribute
MAILS_LISTED = 500  # the builder's mail picker offers the newest this many
MAIL_KINDS = (Source.Kind.BULK, Source.Kind.STEP)  # campaigns, sends and step mails
# The Response time each positive operator asks about when no day or link is given.
STAMPS = {"opened": "opened_at", "clicked": "clicked_at", "converted": "converted_at"}
# People's events that answer each operator when a day or a link is: a click is an open too.
EVENT_KINDS = {"opened": (Kind.OPEN, Kind.CLICK), "clicked": (Kind.CLICK,),
               "converted": (Kind.CONVERSION,)}
LINK_OPERATORS = ("clicked", "not_clicked")


def response_condition(operator: str, source: int | None = None, *, link: int | None = None,
                       days: int | None = None) -> dict:
    """A condition on responses, for code that writes definitions (e.g. "did not open X")."""
    value = {k: v for k, v in (("source", source), ("link", link), ("days", days))
             if v is not None}
    return {"field": FIELD, "operator": operator, "value": value}


def links_of_source(source_id: int, *, titles: bool = False) -> dict[int, str]:
    """A mail's link URLs by index (with ``titles``: each link's title where it has one), as
    the click endpoint knows them."""
    urls = links_of(source_id)
    if not titles:
        return dict(urls)
    named = dict(Link.objects.filter(source_id=source_id).exclude(title="")
                 .values_list("index", "title"))
    return {index: named.get(index) or url for index, url in urls.items()}


@dataclass
class Facts:
    """One member's responses, as the Python evaluator reads them."""

    sent: list = field(default_factory=list)  # (source, sent_at)
    responses: list = field(default_factory=list)  # (source, opened_at, clicked_at, converted_at)
    events: list = field(default_factory=list)  # (source, kind, link_index, at)


def _window(scope: Scope, days):
    return None if days is None else instant_range("within_last_days", days, scope.today,
                                                   scope.tz)


def _reads_events(operator: str, value: dict) -> bool:
    return operator != "received" and ("days" in value or "link" in value)


class ResponseKind(FieldKind):
    name = "response"
    operators = ("opened", "not_opened", "clicked", "not_clicked", "converted", "not_converted",
                 "received", "not_received")
    negations = {"not_opened": "opened", "not_clicked": "clicked",
                 "not_converted": "converted", "not_received": "received"}
    shapes = dict.fromkeys(operators, "response")
    labels = {
        "opened": gettext_lazy("opened"), "not_opened": gettext_lazy("did not open"),
        "clicked": gettext_lazy("clicked"), "not_clicked": gettext_lazy("did not click"),
        "converted": gettext_lazy("converted"), "not_converted": gettext_lazy("did not convert"),
        "received": gettext_lazy("received"), "not_received": gettext_lazy("did not receive"),
    }

    def fields(self, workspace):
        return [(FIELD, _("Mail"))]

    # -- validation ------------------------------------------------------------------------

    def clean(self, workspace, operator, raw, cache):
        if raw in (None, ""):
            raw = {}
        if not isinstance(raw, dict):
            raise ValueRefused(_("Choose a mail, or any mail."))
        unknown = set(raw) - {"source", "link", "days"}
        if unknown:
            raise ValueRefused(_("Unknown setting “%(name)s”.") % {"name": sorted(unknown)[0]})
        value = {}
        source = self._id(raw.get("source"), _("Choose a mail, or any mail."))
        if source is not None:
            known = cache.setdefault("sources", {})
            if source not in known:
                known[source] = Source.objects.filter(workspace=workspace, pk=source).exists()
            if not known[source]:
                raise ValueRefused(_("Mail #%(id)s does not exist in this workspace.")
                                   % {"id": source})
            value["source"] = source
        link = self._id(raw.get("link"), _("Choose a link, or any link."))
        if link is not None:
            if operator not in LINK_OPERATORS:
                raise ValueRefused(_("Only a click can be on a given link."))
            if source is None:
                raise ValueRefused(_("Choose the mail whose link it is."))
            links = cache.setdefault("links", {})
            if source not in links:
                links[source] = links_of_source(source)
            if link not in links[source]:
                raise ValueRefused(_("The mail has no link %(n)s.") % {"n": link + 1})
            value["link"] = link
        if raw.get("days") not in (None, ""):
            value["days"] = day_count(raw["days"])
        return value

    @staticmethod
    def _id(raw, message: str) -> int | None:
        if raw in (None, ""):
            return None
        if isinstance(raw, bool) or isinstance(raw, float) and not raw.is_integer():
            raise ValueRefused(message)
        try:
            number = int(raw)
        except (TypeError, ValueError):
            raise ValueRefused(message) from None
        if number < 0:
            raise ValueRefused(message)
        return number

    # -- SQL -------------------------------------------------------------------------------

    def q(self, scope, operator, value):
        where = {"workspace_id": scope.workspace.pk, "member_id": OuterRef("pk")}
        if "source" in value:
            where["source_id"] = value["source"]
        window = _window(scope, value.get("days"))
        if operator == "received":
            rows = Delivery.objects.filter(status=Delivery.Status.SENT, **where)
            stamp = "sent_at"
        elif not _reads_events(operator, value):
            return Q(Exists(Response.objects.filter(**where, **{
                f"{STAMPS[operator]}__isnull": False})))
        else:
            rows = Event.objects.filter(machine="", kind__in=EVENT_KINDS[operator], **where)
            if "link" in value:
                rows = rows.filter(link_index=value["link"])
            stamp = "at"
        if window is not None:
            rows = rows.filter(**{f"{stamp}__gte": window[0], f"{stamp}__lt": window[1]})
        return Q(Exists(rows))

    # -- Python ----------------------------------------------------------------------------

    def load(self, scope, member_ids, leaves):
        """Each member's sent deliveries, responses and people's events, limited to the mails,
        kinds and days the conditions in use can ask about."""
        facts: dict[int, Facts] = defaultdict(Facts)
        values = [v for _op, v in leaves]
        base = {"workspace_id": scope.workspace.pk, "member_id__in": list(member_ids)}
        if all("source" in v for v in values):
            base["source_id__in"] = {v["source"] for v in values}

        def since(chosen):  # the earliest instant any of them asks about (None: any time)
            windows = [_window(scope, v.get("days")) for v in chosen]
            return None if not windows or None in windows else min(w[0] for w in windows)

        received = [v for op, v in leaves if op == "received"]
        if received:
            rows = Delivery.objects.filter(status=Delivery.Status.SENT, **base)
            if (start := since(received)) is not None:
                rows = rows.filter(sent_at__gte=start)
            for member, source, at in rows.values_list("member_id", "source_id", "sent_at"):
                facts[member].sent.append((source, at))
        if any(op != "received" and not _reads_events(op, v) for op, v in leaves):
            for member, *row in Response.objects.filter(**base).values_list(
                    "member_id", "source_id", "opened_at", "clicked_at", "converted_at"):
                facts[member].responses.append(tuple(row))
        events = [(op, v) for op, v in leaves if _reads_events(op, v)]
        if events:
            kinds = {k for op, _v in events for k in EVENT_KINDS[op]}
            rows = Event.objects.filter(machine="", kind__in=kinds, **base)
            if (start := since([v for _op, v in events])) is not None:
                rows = rows.filter(at__gte=start)
            for member, *row in rows.values_list("member_id", "source_id", "kind", "link_index",
                                                 "at"):
                facts[member].events.append(tuple(row))
        return facts

    def test(self, scope, facts, operator, value):
        if facts is None:
            return False
        source = value.get("source")
        window = _window(scope, value.get("days"))

        def matches(row_source, at) -> bool:
            return ((source is None or row_source == source)
                    and (window is None or window[0] <= at < window[1]))

        if operator == "received":
            return any(matches(s, at) for s, at in facts.sent)
        if not _reads_events(operator, value):
            column = {"opened": 1, "clicked": 2, "converted": 3}[operator]
            return any(source in (None, row[0]) and row[column] is not None
                       for row in facts.responses)
        link = value.get("link")
        return any(matches(s, at) and kind in EVENT_KINDS[operator]
                   and (link is None or index == link)
                   for s, kind, index, at in facts.events)

    # -- words and the builder -------------------------------------------------------------

    def words(self, workspace, operator, value, cache):
        if not isinstance(value, dict):
            return "" if value is None else str(value)
        names = cache.setdefault("mails", {})
        source, link = value.get("source"), value.get("link")
        if not isinstance(source, int):
            return ", ".join([str(_("any mail")), *self._days_words(value)])
        if source not in names:
            names[source] = Source.objects.filter(workspace=workspace, pk=source).values_list(
                "name", flat=True).first()
        parts = [f"“{names[source]}”" if names[source] else f"#{source}"]
        if isinstance(link, int):
            label = links_of_source(source, titles=True).get(link)
            parts.append(_("link %(n)s (%(link)s)") % {"n": link + 1, "link": label} if label
                         else _("link %(n)s") % {"n": link + 1})
        return ", ".join([*parts, *self._days_words(value)])

    @staticmethod
    def _days_words(value: dict) -> list[str]:
        if value.get("days") is None:
            return []
        return [_("within the last %(n)s days") % {"n": value["days"]}]

    def catalog(self, workspace):
        mails = Source.objects.filter(workspace=workspace, kind__in=MAIL_KINDS).order_by(
            "-created_at", "-pk").values_list("pk", "name", "created_at")[:MAILS_LISTED]
        return {
            "group": _("Responses"),
            "mails": [{"id": pk, "name": f"{name} ({created:%Y-%m-%d})"}
                      for pk, name, created in mails],
            "linkOperators": list(LINK_OPERATORS),
            "text": {"anyMail": _("any mail"), "anyLink": _("any link"),
                     "anyTime": _("any time"), "withinLast": _("within the last"),
                     "mail": _("Mail"), "link": _("Link"), "days": _("days")},
        }

    def options(self, workspace, params):
        """The links of one mail of this workspace, for the link picker."""
        try:
            source = self._id(params.get("source"), "")
        except ValueRefused:
            source = None
        if source is None or not Source.objects.filter(workspace=workspace, pk=source).exists():
            return {"links": []}
        return {"links": [{"index": index, "label": label}
                          for index, label in sorted(links_of_source(source, titles=True).items())]}
