"""Campaign pages: the list with filters, a calendar of scheduled sends, the campaign form
(with the live recipient count, the tracking domain and click notices), one campaign with its
approvals, preview, test send, progress, timeline and a segment of its non-openers, the
approval policy, and step mails."""

import calendar
import datetime as dt
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import can, requires
from tayori.accounts.models import AuditEvent, Role
from tayori.campaigns import services, steps
from tayori.campaigns.models import Campaign, CampaignSettings, Step, StepMail
from tayori.content.blocks import shared_of
from tayori.content.models import SenderIdentity, Template
from tayori.content.preview import condition_words, render_preview
from tayori.delivery import queue
from tayori.delivery.models import Source
from tayori.members.masking import mask_email
from tayori.members.models import Attribute, Member, MemberList, Segment
from tayori.tracking.models import TrackingDomain
from tayori.tracking.responses import MAIL_KINDS

# How the campaign's audit events read on its timeline.
TIMELINE = {
    "campaign.create": gettext_lazy("Campaign created"),
    "campaign.edit": gettext_lazy("Edited (approvals reset)"),
    "campaign.copy": gettext_lazy("Copied"),
    "campaign.submit": gettext_lazy("Submitted for approval"),
    "campaign.approve": gettext_lazy("Approved"),
    "campaign.reject": gettext_lazy("Rejected"),
    "campaign.schedule": gettext_lazy("Scheduled"),
    "campaign.test_send": gettext_lazy("Test sent"),
    "campaign.pause": gettext_lazy("Paused"),
    "campaign.resume": gettext_lazy("Resumed"),
    "campaign.cancel": gettext_lazy("Cancelled"),
}


class CampaignForm(forms.ModelForm):
    include_segments = forms.MultipleChoiceField(label=gettext_lazy("Send to segments"),
                                                 required=False)
    include_lists = forms.MultipleChoiceField(label=gettext_lazy("Send to lists"),
                                              required=False)
    exclude_segments = forms.MultipleChoiceField(label=gettext_lazy("Except segments"),
                                                 required=False)
    exclude_lists = forms.MultipleChoiceField(label=gettext_lazy("Except lists"),
                                              required=False)
    send_at = forms.DateTimeField(label=gettext_lazy("Send at"), required=False,
                                  widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                  help_text=gettext_lazy("Empty to send as soon as it is "
                                                         "scheduled."))

    tracking_host = forms.ChoiceField(label=gettext_lazy("Tracking domain"), required=False)
    assignee_attribute = forms.ChoiceField(
        label=gettext_lazy("When a member clicks, tell the address in attribute"),
        required=False, help_text=gettext_lazy("e.g. the attribute holding the member's "
                                               "salesperson; told once per member."))
    notify_link = forms.ChoiceField(label=gettext_lazy("Only for clicks on"), required=False)

    class Meta:
        model = Campaign
        fields = ["name", "identity", "template", "include_segments", "include_lists",
                  "exclude_segments", "exclude_lists", "once_per_address", "tracking",
                  "tracking_host", "send_at", "quiet_start", "quiet_end", "max_per_hour",
                  "assignee_attribute", "notify_link"]
        widgets = {"quiet_start": forms.TimeInput(attrs={"type": "time"}),
                   "quiet_end": forms.TimeInput(attrs={"type": "time"})}

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["identity"].queryset = SenderIdentity.objects.filter(workspace=workspace)
        self.fields["identity"].required = True
        self.fields["template"].queryset = Template.objects.filter(workspace=workspace)
        self.fields["template"].required = True
        segments = [(str(s.pk), s.name) for s in Segment.objects.filter(workspace=workspace)]
        lists = [(str(m.pk), m.name) for m in MemberList.objects.filter(workspace=workspace)]
        for name in ("include_segments", "exclude_segments"):
            self.fields[name].choices = segments
            self.fields[name].widget.attrs["size"] = 4
        for name in ("include_lists", "exclude_lists"):
            self.fields[name].choices = lists
            self.fields[name].widget.attrs["size"] = 4
        for name in ("include_segments", "include_lists", "exclude_segments", "exclude_lists"):
            self.initial[name] = [str(v) for v in getattr(self.instance, name)]
        self.fields["tracking_host"].choices = [("", _("The workspace's default"))] + [
            (host, host) for host in TrackingDomain.objects.filter(
                workspace=workspace).values_list("host", flat=True)]
        self.fields["assignee_attribute"].choices = [("", _("Nobody"))] + [
            (key, f"{label} ({key})") for key, label in Attribute.objects.filter(
                workspace=workspace).values_list("key", "label")]
        self.fields["notify_link"].choices = [("", _("Any link"))] + [
            (url, url) for url in dict.fromkeys(self._links(workspace))]

    def _links(self, workspace) -> list[str]:
        """The links of the template chosen (on the form, else saved)."""
        chosen = self.data.get("template") if self.is_bound else self.instance.template_id
        template = Template.objects.filter(workspace=workspace, pk=chosen).first() if (
            str(chosen or "").isdigit()) else None
        return services.template_links(template, workspace)

    def clean(self):
        data = super().clean()
        for name in ("include_segments", "include_lists", "exclude_segments", "exclude_lists"):
            data[name] = [int(v) for v in data.get(name) or []]
        if not (data["include_segments"] or data["include_lists"]):
            self.add_error("include_segments", _("Choose at least one segment or list."))
        if data.get("send_at") and data["send_at"] < timezone.now():
            self.add_error("send_at", _("Choose a time in the future."))
        if data.get("notify_link") and not data.get("assignee_attribute"):
            self.add_error("assignee_attribute", _("Choose whom to tell of clicks on the link."))
        return data


@requires("campaigns.create")
def index(request):
    campaigns = Campaign.objects.filter(workspace=request.workspace).select_related(
        "identity", "source")
    services.refresh([c for c in campaigns if c.source_id and c.status not in (
        Campaign.Status.FINISHED, Campaign.Status.CANCELLED)])
    status, identity = request.GET.get("status", ""), request.GET.get("identity", "")
    if status in Campaign.Status.values:
        campaigns = campaigns.filter(status=status)
    if identity.isdigit():
        campaigns = campaigns.filter(identity_id=identity)
    if since := request.GET.get("since", ""):
        campaigns = campaigns.filter(created_at__date__gte=since)
    page = Paginator(campaigns, 25).get_page(request.GET.get("page"))
    return render(request, "campaigns/index.html", {
        "page_obj": page, "statuses": Campaign.Status.choices, "status": status,
        "identities": SenderIdentity.objects.filter(workspace=request.workspace),
        "identity": identity, "since": since})


@requires("campaigns.create")
def calendar_view(request):
    """Scheduled sends by day of the month, in the workspace's zone."""
    tz = ZoneInfo(request.workspace.time_zone)
    today = timezone.now().astimezone(tz).date()
    try:
        year, month = int(request.GET.get("year", today.year)), int(request.GET.get("month",
                                                                                    today.month))
        first = dt.date(year, month, 1)
    except ValueError:
        first = today.replace(day=1)
    start = dt.datetime.combine(first, dt.time(), tzinfo=tz)
    end = dt.datetime.combine((first + dt.timedelta(days=32)).replace(day=1), dt.time(),
                              tzinfo=tz)
    days: dict[int, list] = {}
    for campaign in Campaign.objects.filter(workspace=request.workspace, send_at__gte=start,
                                            send_at__lt=end).order_by("send_at"):
        days.setdefault(campaign.send_at.astimezone(tz).day, []).append(campaign)
    weeks = [[(day, days.get(day, [])) for day in week]
             for week in calendar.Calendar(firstweekday=6).monthdayscalendar(first.year,
                                                                              first.month)]
    previous = (first - dt.timedelta(days=1)).replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return render(request, "campaigns/calendar.html", {
        "weeks": weeks, "first": first, "previous": previous, "following": following})


@requires("campaigns.create")
def form(request, pk=None):
    campaign = (get_object_or_404(Campaign, pk=pk, workspace=request.workspace)
                if pk else Campaign(workspace=request.workspace))
    if campaign.pk and campaign.status not in services.EDITABLE:
        messages.error(request, _("A scheduled campaign can no longer be edited."))
        return redirect("campaigns:campaign", campaign.pk)
    if campaign.pk and not can(request, "campaigns.edit"):
        return HttpResponse(status=403)
    form = CampaignForm(request.POST or None, instance=campaign, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if campaign.pk:
            changes = {name: data[name] for name in form.Meta.fields}
            services.edited(campaign, request, snapshot=None, **changes)
            messages.success(request, _("Campaign saved. Approvals given so far no longer "
                                        "count; submit it again."))
        else:
            campaign = form.save(commit=False)
            for name in ("include_segments", "include_lists", "exclude_segments",
                         "exclude_lists"):
                setattr(campaign, name, data[name])
            campaign.created_by = request.user
            campaign.save()
            audit.record("campaign.create", request=request, target=f"campaign:{campaign.pk}",
                         name=campaign.name)
            messages.success(request, _("Campaign created."))
        return redirect("campaigns:campaign", campaign.pk)
    return render(request, "campaigns/form.html", {"form": form, "campaign": campaign},
                  status=400 if form.errors else 200)


@requires("campaigns.create")
@require_POST
def count(request):
    """The live recipient count of the form's audience (htmx)."""
    def ids(name):
        return [int(v) for v in request.POST.getlist(name) if v.isdigit()]

    probe = Campaign(workspace=request.workspace, include_segments=ids("include_segments"),
                     include_lists=ids("include_lists"), exclude_segments=ids("exclude_segments"),
                     exclude_lists=ids("exclude_lists"))
    return HttpResponse(_("%(n)s recipients") % {"n": f"{services.recipient_count(probe):,}"})


@requires("campaigns.create")
def detail(request, pk):
    campaign = get_object_or_404(Campaign.objects.select_related("identity", "template",
                                                                 "source"),
                                 pk=pk, workspace=request.workspace)
    services.refresh([campaign])
    content = services.content_of(campaign)
    allow_pii = can(request, "members.view_pii")
    member_pk = request.GET.get("member", "")
    members = Member.objects.filter(workspace=request.workspace).order_by("pk")
    member = members.filter(pk=member_pk).first() if member_pk.isdigit() else members.first()
    preview = (render_preview(request.workspace, content, campaign.identity, member,
                              allow_pii=allow_pii, shared=shared_of(request.workspace))
               if content else None)
    timeline = list(AuditEvent.objects.filter(
        workspace=request.workspace, target=f"campaign:{campaign.pk}").order_by("created_at"))
    for event in timeline:
        event.label = TIMELINE.get(event.action, event.action)
    stage = services.next_stage(campaign) if campaign.status == Campaign.Status.AWAITING else None
    progress = queue.progress(campaign.source) if campaign.source_id else None
    settings = services.settings_of(request.workspace)
    return render(request, "campaigns/detail.html", {
        "campaign": campaign, "preview": preview, "member": member,
        "members": [(m.pk, m.email if allow_pii else mask_email(m.email)) for m in members[:50]],
        "recipients": services.recipient_count(campaign) if campaign.include_segments
        or campaign.include_lists else 0,
        "approvals": campaign.approvals.filter(revision=campaign.revision),
        "stages": settings.stages, "stage": stage,
        "decide_reason": services.may_decide(campaign, request.user)
        if stage else "", "can_approve": can(request, "campaigns.approve"),
        "can_schedule": can(request, "campaigns.schedule"),
        "can_send": can(request, "campaigns.send"), "timeline": timeline,
        "progress": progress, "test_addresses": settings.addresses,
        "can_segment": can(request, "members.edit")})


def _act(request, pk, step, success):
    campaign = get_object_or_404(Campaign, pk=pk, workspace=request.workspace)
    try:
        step(campaign)
    except services.CampaignError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, success)
    return redirect("campaigns:campaign", pk)


@requires("campaigns.create")
@require_POST
def submit(request, pk):
    return _act(request, pk, lambda c: services.submit(c, request), _("Submitted."))


@requires("campaigns.approve")
@require_POST
def decide(request, pk):
    approve = request.POST.get("decision") == "approve"
    return _act(request, pk, lambda c: services.decide(
        c, request, approve=approve, comment=request.POST.get("comment", "")[:500]),
        _("Approved.") if approve else _("Sent back to draft."))


@requires("campaigns.schedule")
@require_POST
def schedule(request, pk):
    return _act(request, pk, lambda c: services.schedule(c, request), _("Scheduled."))


@requires("campaigns.send")
@require_POST
def control(request, pk, action):
    if action not in ("pause", "resume", "cancel"):
        return HttpResponse(status=404)
    return _act(request, pk, lambda c: services.control(c, request, action), _("Done."))


@requires("members.edit")
@require_POST
def non_openers(request, pk):
    """A segment of those who received the campaign and did not open it, opened in the builder
    so the operator can check it before sending again."""
    campaign = get_object_or_404(Campaign, pk=pk, workspace=request.workspace)
    try:
        segment = services.non_openers(campaign, request)
    except services.CampaignError as error:
        messages.error(request, str(error))
        return redirect("campaigns:campaign", pk)
    return redirect("members:segment-edit", segment.pk)


@requires("campaigns.create")
@require_POST
def copy(request, pk):
    campaign = get_object_or_404(Campaign, pk=pk, workspace=request.workspace)
    return redirect("campaigns:campaign", services.copy_campaign(campaign, request).pk)


@requires("campaigns.create")
@require_POST
def test_send(request, pk):
    campaign = get_object_or_404(Campaign, pk=pk, workspace=request.workspace)
    member_pk = request.POST.get("member", "")
    member = Member.objects.filter(workspace=request.workspace, pk=member_pk).first() if (
        member_pk.isdigit()) else None
    content = services.content_of(campaign)
    try:
        if content is None or campaign.identity is None:
            raise services.CampaignError(_("Choose a sender and a template first."))
        n = services.test_send(request.workspace, content, campaign.identity, campaign.template,
                               request.POST.getlist("address"), member, request)
    except services.CampaignError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("%(n)s test messages queued.") % {"n": n})
    return redirect("campaigns:campaign", pk)


class SettingsForm(forms.ModelForm):
    class Meta:
        model = CampaignSettings
        fields = ["stage1", "stage2", "stage3", "test_addresses"]
        widgets = {"test_addresses": forms.Textarea(attrs={"rows": 4})}

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("stage1", "stage2", "stage3"):
            self.fields[name].queryset = Role.objects.filter(workspace=workspace)

    def clean_test_addresses(self):
        from tayori.members.values import FieldError, normalize_email

        lines = []
        for number, line in enumerate(self.cleaned_data["test_addresses"].splitlines(), 1):
            if line.strip():
                try:
                    lines.append(normalize_email(line.strip()))
                except FieldError as error:
                    raise forms.ValidationError(_("Line %(n)s: %(message)s") % {
                        "n": number, "message": error.message}) from None
        return "\n".join(lines)


@requires("settings.manage")
def settings_view(request):
    settings = services.settings_of(request.workspace)
    form = SettingsForm(request.POST or None, instance=settings, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        form.save()
        audit.record("campaign.settings", request=request, target="campaign-settings",
                     stages=[r.name for r in settings.stages])
        messages.success(request, _("Campaign settings saved."))
        return redirect("campaigns:settings")
    return render(request, "campaigns/settings.html", {"form": form},
                  status=400 if form.errors else 200)


class StepForm(forms.ModelForm):
    only_segment = forms.ChoiceField(label=gettext_lazy("Only members in segment"),
                                     required=False)

    class Meta:
        model = Step
        fields = ["position", "trigger", "attribute", "event", "event_source", "days", "at",
                  "template"]
        widgets = {"at": forms.TimeInput(attrs={"type": "time"})}

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = Template.objects.filter(workspace=workspace)
        self.fields["event_source"].queryset = Source.objects.filter(
            workspace=workspace, kind__in=MAIL_KINDS).order_by("-created_at", "-pk")
        self.fields["event_source"].empty_label = _("any mail")
        self.fields["only_segment"].choices = [("", _("everyone the step mail reaches"))] + [
            (str(s.pk), s.name) for s in Segment.objects.filter(workspace=workspace)]

    def clean(self):
        data = super().clean()
        if data.get("trigger") == Step.Trigger.AFTER_EVENT:
            if not data.get("event"):
                self.add_error("event", _("Choose the response the step follows."))
        else:
            data["event"], data["event_source"] = "", None
        chosen = data.get("only_segment")
        self.instance.condition = ({"op": "and", "conditions": [
            {"field": "segment", "operator": "in_segment", "value": int(chosen)}]}
            if chosen else None)
        return data


@requires("campaigns.create")
def step_mails(request):
    return render(request, "campaigns/step_mails.html", {
        "step_mails": StepMail.objects.filter(workspace=request.workspace).prefetch_related(
            "steps__template")})


@requires("campaigns.create")
def step_mail(request, pk=None):
    item = (get_object_or_404(StepMail, pk=pk, workspace=request.workspace) if pk
            else None)
    identities = SenderIdentity.objects.filter(workspace=request.workspace)
    step_form = StepForm(request.POST or None, workspace=request.workspace,
                         initial={"position": item.steps.count() + 1 if item else 1})
    if request.method == "POST":
        if item is None:
            identity = identities.filter(pk=request.POST.get("identity", "0") or 0).first()
            name = request.POST.get("name", "").strip()
            if identity is None or not name:
                messages.error(request, _("Give a name and choose a sender."))
            else:
                segment = Segment.objects.filter(workspace=request.workspace,
                                                 pk=request.POST.get("goal") or 0).first()
                item = StepMail.objects.create(
                    workspace=request.workspace, name=name[:200], identity=identity,
                    goal={"op": "and", "conditions": [{"field": "segment",
                                                       "operator": "in_segment",
                                                       "value": segment.pk}]}
                    if segment else None, created_by=request.user)
                audit.record("step_mail.create", request=request, target=f"step_mail:{item.pk}")
                return redirect("campaigns:step-mail", item.pk)
        elif request.POST.get("action") in ("activate", "deactivate"):
            if not can(request, "campaigns.send"):
                return HttpResponse(status=403)
            (steps.activate if request.POST["action"] == "activate" else steps.deactivate)(item)
            audit.record(f"step_mail.{request.POST['action']}", request=request,
                         target=f"step_mail:{item.pk}")
            return redirect("campaigns:step-mail", item.pk)
        elif step_form.is_valid():
            step = step_form.save(commit=False)
            step.step_mail = item
            step.save()
            if item.active:
                steps.activate(item)
            audit.record("step_mail.step", request=request, target=f"step_mail:{item.pk}",
                         step=step.pk)
            messages.success(request, _("Step added."))
            return redirect("campaigns:step-mail", item.pk)
    shown = list(item.steps.select_related("template", "source", "event_source")) if item else []
    for step in shown:
        step.condition_words = (condition_words(request.workspace, step.condition,
                                                allow_pii=can(request, "members.view_pii"))
                                if step.condition else "")
    return render(request, "campaigns/step_mail.html", {
        "item": item, "identities": identities, "step_form": step_form,
        "segments": Segment.objects.filter(workspace=request.workspace), "steps": shown})


app_name = "campaigns"
urlpatterns = [
    path("", index, name="list"),
    path("calendar/", calendar_view, name="calendar"),
    path("new/", form, name="new"),
    path("count/", count, name="count"),
    path("settings/", settings_view, name="settings"),
    path("steps/", step_mails, name="step-mails"),
    path("steps/new/", step_mail, name="step-mail-new"),
    path("steps/<int:pk>/", step_mail, name="step-mail"),
    path("<int:pk>/", detail, name="campaign"),
    path("<int:pk>/edit/", form, name="edit"),
    path("<int:pk>/submit/", submit, name="submit"),
    path("<int:pk>/decide/", decide, name="decide"),
    path("<int:pk>/schedule/", schedule, name="schedule"),
    path("<int:pk>/copy/", copy, name="copy"),
    path("<int:pk>/non-openers/", non_openers, name="non-openers"),
    path("<int:pk>/test/", test_send, name="test-send"),
    path("<int:pk>/<str:action>/", control, name="control"),
]
