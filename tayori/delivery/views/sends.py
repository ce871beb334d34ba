"""Pages: sends (bulk sends and transactional messages) — the list, a new bulk send to a
segment, and one send's live progress with start, pause, resume and cancel."""

import datetime as dt

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import can, requires
from tayori.delivery import queue, sending
from tayori.delivery.models import Delivery, Source
from tayori.members.models import Segment

PAGE_SIZE = 25
SKIP_REASONS = {
    queue.NO_ADDRESS: gettext_lazy("No email address"),
    queue.SUPPRESSED: gettext_lazy("On the suppression list"),
    queue.DUPLICATE: gettext_lazy("Same address twice"),
    "unsubscribed": gettext_lazy("Unsubscribed"),
    "bounced": gettext_lazy("Bounced"),
    "complained": gettext_lazy("Complained"),
    "blocked": gettext_lazy("Blocked"),
    "pending": gettext_lazy("Sign-up not confirmed"),
}
LIVE = (Source.Status.SCHEDULED, Source.Status.RUNNING, Source.Status.QUIET)


class BulkSendForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=200)
    segment = forms.ModelChoiceField(label=gettext_lazy("Segment"), queryset=Segment.objects.none())
    from_name = forms.CharField(label=gettext_lazy("Sender name"), max_length=200, required=False)
    from_address = forms.CharField(label=gettext_lazy("Sender address"), max_length=254)
    reply_to = forms.CharField(label=gettext_lazy("Reply-to"), max_length=254, required=False)
    subject = forms.CharField(label=gettext_lazy("Subject"), max_length=500)
    html = forms.CharField(label=gettext_lazy("HTML body"), required=False,
                           widget=forms.Textarea(attrs={"rows": 12, "class": "code"}),
                           help_text=gettext_lazy("Merge fields: {{ member.<attribute key> }}, "
                                                  "{{ email }}, {{ unsubscribe_url }}."))
    text = forms.CharField(label=gettext_lazy("Text body"), required=False,
                           widget=forms.Textarea(attrs={"rows": 6, "class": "code"}))
    tracking = forms.BooleanField(label=gettext_lazy("Track opens and clicks"), required=False,
                                  initial=True)
    once_per_address = forms.BooleanField(label=gettext_lazy("Send once per address"),
                                          required=False, initial=True)
    scheduled_at = forms.DateTimeField(
        label=gettext_lazy("Start at"), required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=gettext_lazy("Leave empty to keep it as a draft and start it by hand."))
    quiet_start = forms.TimeField(label=gettext_lazy("Quiet hours from"), required=False,
                                  widget=forms.TimeInput(attrs={"type": "time"}))
    quiet_end = forms.TimeField(label=gettext_lazy("Quiet hours until"), required=False,
                                widget=forms.TimeInput(attrs={"type": "time"}))
    contacts = forms.CharField(label=gettext_lazy("Notify"), max_length=500, required=False,
                               help_text=gettext_lazy("Addresses told when the send starts, "
                                                      "ends or pauses, separated by commas."))

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["segment"].queryset = Segment.objects.filter(workspace=workspace)

    def clean_scheduled_at(self):
        at = self.cleaned_data["scheduled_at"]
        if at and at < timezone.now() - dt.timedelta(minutes=1):
            raise forms.ValidationError(_("Choose a time in the future."))
        return at

    def clean(self):
        data = super().clean()
        if bool(data.get("quiet_start")) != bool(data.get("quiet_end")):
            self.add_error("quiet_end", _("Give both ends of the quiet hours, or neither."))
        return data


@requires("deliveries.view")
def index(request):
    sources = Source.objects.filter(workspace=request.workspace)
    kind = request.GET.get("kind", "bulk")
    if kind in Source.Kind.values:
        sources = sources.filter(kind=kind)
    status = request.GET.get("status", "")
    if status in Source.Status.values:
        sources = sources.filter(status=status)
    page = Paginator(sources.order_by("-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    sent = dict(Delivery.objects.filter(source__in=list(page.object_list), status="sent")
                .order_by().values_list("source_id").annotate(n=Count("id")))
    rows = [{"source": s, "sent": sent.get(s.pk, 0),
             "percent": _percent(sent.get(s.pk, 0), _sendable(s))} for s in page.object_list]
    return render(request, "delivery/sends.html", {
        "page_obj": page, "rows": rows, "kind": kind, "status": status,
        "kinds": Source.Kind.choices, "statuses": Source.Status.choices,
        "can_create": can(request, "campaigns.create")})


def _sendable(source) -> int:
    return source.total - sum(source.skipped.values())


def _percent(part: int, whole: int) -> int:
    return min(100, round(100 * part / whole)) if whole else 0


@requires("campaigns.create")
def new(request):
    form = BulkSendForm(request.POST or None, workspace=request.workspace,
                        initial={"tracking": True, "once_per_address": True})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        content = sending.Content(**{key: data[key] for key in (
            "subject", "html", "text", "from_address", "from_name", "reply_to", "tracking")})
        try:
            source = sending.create_bulk(
                request.workspace, content, name=data["name"], segment=data["segment"],
                created_by=request.user, scheduled_at=data["scheduled_at"],
                once_per_address=data["once_per_address"], quiet_start=data["quiet_start"],
                quiet_end=data["quiet_end"], contacts=data["contacts"])
        except sending.ContentRefused as refused:
            for error in refused.errors:
                form.add_error(error.field if error.field in form.fields else None,
                               error.message)
        else:
            audit.record("send.created", request=request, target=f"source:{source.pk}",
                         name=source.name, segment=source.segment_id)
            messages.success(request, _("Send created."))
            return redirect("delivery:send", source.pk)
    return render(request, "delivery/send_new.html", {"form": form},
                  status=400 if form.errors else 200)


def _progress_context(request, source) -> dict:
    counts = queue.progress(source)
    remaining = counts["queued"] + counts["held"] + counts["claimed"] + counts["deferred"]
    sendable = _sendable(source) if source.kind == Source.Kind.BULK else source.total
    minute_ago = timezone.now() - dt.timedelta(minutes=1)
    rate = Delivery.objects.filter(source=source, status="sent", sent_at__gte=minute_ago).count()
    eta = None
    if rate and remaining and source.status == Source.Status.RUNNING:
        eta = timezone.now() + dt.timedelta(minutes=remaining / rate)
    finished = source.finished_at or timezone.now()
    return {
        "source": source, "counts": counts, "remaining": remaining, "rate": rate, "eta": eta,
        "percent": _percent(counts["sent"] + counts["failed"], sendable),
        "skipped": [(SKIP_REASONS.get(reason, reason), n) for reason, n in source.skipped.items()],
        "duration": (finished - source.started_at) if source.started_at else None,
        "live": source.status in LIVE, "can_send": can(request, "campaigns.send")}


@requires("deliveries.view")
def detail(request, pk):
    source = get_object_or_404(Source, pk=pk, workspace=request.workspace)
    return render(request, "delivery/send.html", _progress_context(request, source))


@requires("deliveries.view")
def progress(request, pk):
    source = get_object_or_404(Source, pk=pk, workspace=request.workspace)
    return render(request, "delivery/_progress.html", _progress_context(request, source))


ACTIONS = {
    "start": (lambda s: s.status in (Source.Status.DRAFT, Source.Status.SCHEDULED),
              lambda s: queue.start(s), gettext_lazy("Sending started.")),
    "pause": (lambda s: s.status in (Source.Status.RUNNING, Source.Status.QUIET),
              lambda s: queue.pause(s, _("Paused by an operator")), gettext_lazy("Paused.")),
    "resume": (lambda s: s.status == Source.Status.PAUSED, queue.resume,
               gettext_lazy("Resumed.")),
    "cancel": (lambda s: s.status not in (Source.Status.DONE, Source.Status.CANCELLED),
               queue.cancel, gettext_lazy("Cancelled: nothing more will be sent.")),
}


@requires("campaigns.send")
@require_POST
def act(request, pk, action):
    source = get_object_or_404(Source, pk=pk, workspace=request.workspace)
    allowed, run, done = ACTIONS[action]
    if not allowed(source):
        messages.error(request, _("This send cannot do that now (it is %(status)s).") % {
            "status": source.get_status_display()})
    else:
        run(source)
        audit.record(f"send.{action}", request=request, target=f"source:{source.pk}",
                     name=source.name)
        messages.success(request, done)
    return redirect("delivery:send", source.pk)


urlpatterns = [
    path("sends/", index, name="sends"),
    path("sends/new/", new, name="send-new"),
    path("sends/<int:pk>/", detail, name="send"),
    path("sends/<int:pk>/progress/", progress, name="send-progress"),
    *[path(f"sends/<int:pk>/{action}/", act, {"action": action}, name=f"send-{action}")
      for action in ACTIONS],
]
