"""Pages under Mail → Webhooks: the workspace's endpoints and their state, adding and editing one
(URL and events), its signing secret (revealed on request, audited; rotated), a test event, the
log of attempts, and replaying one event or every failed one since a day. Every change is an
audit event."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import requires
from tayori.lib import crypto
from tayori.members.values import FieldError
from tayori.members.views.helpers import can_view_pii
from tayori.webhooks import dispatch, endpoints, events
from tayori.webhooks.models import Attempt, Endpoint, WebhookEvent

PAGE_SIZE = 50


class EndpointForm(forms.Form):
    url = forms.CharField(label=gettext_lazy("URL"), max_length=2000,
                          help_text=gettext_lazy("Tayori posts each event here as JSON."),
                          widget=forms.URLInput(attrs={
                              "placeholder": "https://example.jp/hooks/tayori"}))
    description = forms.CharField(label=gettext_lazy("Description"), max_length=200,
                                  required=False)
    events = forms.MultipleChoiceField(label=gettext_lazy("Events"),
                                       choices=list(events.TYPES.items()),
                                       widget=forms.CheckboxSelectMultiple)

    def _clean_with(self, name, cleaner):
        try:
            return cleaner(self.cleaned_data[name])
        except FieldError as error:
            raise forms.ValidationError(error.message) from None

    def clean_url(self):
        return self._clean_with("url", endpoints.clean_url)

    def clean_events(self):
        return self._clean_with("events", endpoints.clean_events)


def _endpoint(request, pk) -> Endpoint:
    return get_object_or_404(Endpoint, pk=pk, workspace=request.workspace)


def _target(endpoint: Endpoint) -> str:
    return f"webhook:{endpoint.pk}"


@requires("webhooks.manage")
def index(request):
    rows = Endpoint.objects.filter(workspace=request.workspace)
    return render(request, "webhooks/list.html", {"endpoints": rows, "types": events.TYPES})


PII_NEEDED = gettext_lazy("Webhook events carry members' addresses: choosing where they go needs "
                          "the right to view personal information.")


def _may_route(request, form) -> bool:
    """Only an operator who may read addresses may send them to a URL of their choosing."""
    if request.method == "POST" and not can_view_pii(request):
        form.add_error(None, PII_NEEDED)
        return False
    return True


@requires("webhooks.manage")
def new(request):
    form = EndpointForm(request.POST or None, initial={"events": list(events.TYPES)})
    if _may_route(request, form) and request.method == "POST" and form.is_valid():
        endpoint, _secret = endpoints.create(request.workspace, created_by=request.user,
                                             **form.cleaned_data)
        audit.record("webhook.endpoint_created", request=request, target=_target(endpoint),
                     url=endpoint.url, events=endpoint.events)
        messages.success(request, _("Endpoint added. Reveal its signing secret below and set it "
                                    "in your receiver."))
        return redirect("webhooks:endpoint", endpoint.pk)
    return render(request, "webhooks/form.html", {"form": form},
                  status=400 if form.errors else 200)


@requires("webhooks.manage")
def edit(request, pk):
    endpoint = _endpoint(request, pk)
    form = EndpointForm(request.POST or None, initial={
        "url": endpoint.url, "description": endpoint.description, "events": endpoint.events})
    if _may_route(request, form) and request.method == "POST" and form.is_valid():
        changed = endpoints.update(endpoint, **form.cleaned_data)
        if changed:
            audit.record("webhook.endpoint_updated", request=request, target=_target(endpoint),
                         changed=changed, url=endpoint.url, events=endpoint.events)
        messages.success(request, _("Saved."))
        return redirect("webhooks:endpoint", endpoint.pk)
    return render(request, "webhooks/form.html", {"form": form, "endpoint": endpoint},
                  status=400 if form.errors else 200)


@requires("webhooks.manage")
def detail(request, pk):
    endpoint = _endpoint(request, pk)
    attempts = (Attempt.objects.filter(endpoint=endpoint, workspace=request.workspace)
                .select_related("event").order_by("-id"))
    page = Paginator(attempts, PAGE_SIZE).get_page(request.GET.get("page"))
    zone = ZoneInfo(request.workspace.time_zone)
    waiting = WebhookEvent.objects.filter(endpoint=endpoint, status__in=[
        WebhookEvent.Status.PENDING, WebhookEvent.Status.FAILED]).count()
    return render(request, "webhooks/endpoint.html", {
        "endpoint": endpoint, "page_obj": page, "types": events.TYPES, "waiting": waiting,
        "today": timezone.now().astimezone(zone).date().isoformat(),
        "rotation_overlap": endpoint.previous_until and endpoint.previous_until > timezone.now()})


@requires("webhooks.manage")
@never_cache
def secret(request, pk):
    endpoint = _endpoint(request, pk)
    audit.record("webhook.secret_viewed", request=request, target=_target(endpoint))
    return render(request, "webhooks/_secret.html", {"secret": crypto.decrypt(endpoint.secret)})


@requires("webhooks.manage")
@require_POST
def rotate(request, pk):
    endpoint = _endpoint(request, pk)
    endpoints.rotate(endpoint)
    audit.record("webhook.secret_rotated", request=request, target=_target(endpoint))
    messages.success(request, _("New secret made. For 24 hours posts carry a second signature "
                                "made with the old one, so you can switch without losing "
                                "events."))
    return redirect("webhooks:endpoint", endpoint.pk)


@requires("webhooks.manage")
@require_POST
def test(request, pk):
    endpoint = _endpoint(request, pk)
    event = events.ping(endpoint)
    dispatch.deliver(only=[event.pk])
    audit.record("webhook.test_sent", request=request, target=_target(endpoint))
    attempt = Attempt.objects.filter(event=event).order_by("-id").first()
    if attempt is not None and attempt.ok:
        messages.success(request, _("Test event delivered: HTTP %(status)s in %(ms)s ms.") % {
            "status": attempt.status_code, "ms": attempt.duration_ms})
    else:
        messages.error(request, _("Test event not accepted: %(error)s") % {
            "error": attempt.error if attempt else _("it could not be sent")})
    return redirect("webhooks:endpoint", endpoint.pk)


@requires("webhooks.manage")
@require_POST
def set_active(request, pk):
    endpoint = _endpoint(request, pk)
    if request.POST.get("active") == "1":
        if endpoints.enable(endpoint):
            audit.record("webhook.endpoint_enabled", request=request, target=_target(endpoint))
            messages.success(request, _("Endpoint enabled."))
    elif endpoints.disable(endpoint, _("Disabled by %(operator)s") % {
            "operator": request.user.email}):
        audit.record("webhook.endpoint_disabled", request=request, target=_target(endpoint),
                     automatic=False)
        messages.success(request, _("Endpoint disabled; its waiting events were given up."))
    return redirect("webhooks:endpoint", endpoint.pk)


@requires("webhooks.manage")
@require_POST
def delete(request, pk):
    endpoint = _endpoint(request, pk)
    audit.record("webhook.endpoint_deleted", request=request, target=_target(endpoint),
                 url=endpoint.url)
    endpoint.delete()
    messages.success(request, _("Endpoint deleted."))
    return redirect("webhooks:list")


@requires("webhooks.manage")
@require_POST
def replay_failed(request, pk):
    endpoint = _endpoint(request, pk)
    try:
        day = dt.date.fromisoformat(request.POST.get("since", ""))
    except ValueError:
        messages.error(request, _("Choose the day to replay from."))
        return redirect("webhooks:endpoint", endpoint.pk)
    since = dt.datetime.combine(day, dt.time(), ZoneInfo(request.workspace.time_zone))
    count = endpoints.replay_failed(endpoint, since)
    audit.record("webhook.events_replayed", request=request, target=_target(endpoint),
                 since=since.isoformat(), count=count)
    messages.success(request, _("%(count)d failed events will be sent again.") % {
        "count": count})
    return redirect("webhooks:endpoint", endpoint.pk)


@requires("webhooks.manage")
def event(request, pk):
    row = get_object_or_404(WebhookEvent.objects.select_related("endpoint"), pk=pk,
                            workspace=request.workspace)
    try:
        payload = json.loads(row.body)
    except ValueError:
        payload = {}
    if not can_view_pii(request):
        payload = events.masked(payload)
    body = json.dumps(payload, ensure_ascii=False, indent=2)
    return render(request, "webhooks/event.html", {
        "event": row, "body": body, "attempts": row.tries.order_by("-id")[:100]})


@requires("webhooks.manage")
@require_POST
def replay(request, pk):
    row = get_object_or_404(WebhookEvent, pk=pk, workspace=request.workspace)
    if endpoints.replay(row):
        audit.record("webhook.event_replayed", request=request, target=f"webhook_event:{row.pk}",
                     event=row.uid, type=row.type, endpoint=row.endpoint_id)
        messages.success(request, _("The event will be sent again in a moment."))
    else:
        messages.error(request, _("The event is being sent right now."))
    if request.POST.get("back") == "event":
        return redirect("webhooks:event", row.pk)
    return redirect("webhooks:endpoint", row.endpoint_id)


app_name = "webhooks"
urlpatterns = [
    path("", index, name="list"),
    path("new/", new, name="new"),
    path("<int:pk>/", detail, name="endpoint"),
    path("<int:pk>/edit/", edit, name="edit"),
    path("<int:pk>/secret/", secret, name="secret"),
    path("<int:pk>/rotate/", rotate, name="rotate"),
    path("<int:pk>/test/", test, name="test"),
    path("<int:pk>/active/", set_active, name="active"),
    path("<int:pk>/delete/", delete, name="delete"),
    path("<int:pk>/replay/", replay_failed, name="replay-failed"),
    path("events/<int:pk>/", event, name="event"),
    path("events/<int:pk>/replay/", replay, name="event-replay"),
]
