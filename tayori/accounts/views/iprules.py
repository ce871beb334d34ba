"""IP rules page: the networks (IPv4 and IPv6 CIDRs) allowed to reach this workspace's admin UI.

An empty list lets everyone in. Neither adding nor deleting a rule may shut out the operator
making the change; WorkspaceMiddleware enforces the list on every request.
"""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tayori.accounts import audit
from tayori.accounts.access import requires
from tayori.accounts.forms import IPRuleForm
from tayori.accounts.models import IPRule
from tayori.lib.netaddr import client_ip, ip_in_any


@requires("settings.manage")
def iprule_list(request: HttpRequest) -> HttpResponse:
    """Lists the rules; a POST adds one."""
    my_ip = client_ip(request)
    form = IPRuleForm(request.POST or None, workspace=request.workspace, client_ip=my_ip)
    if request.method == "POST" and form.is_valid():
        rule = IPRule.objects.create(workspace=request.workspace, cidr=form.cleaned_data["cidr"],
                                     note=form.cleaned_data["note"])
        audit.record("iprule.added", request=request, target=rule.cidr, note=rule.note)
        messages.success(request, _("%(cidr)s may now reach this workspace.") % {"cidr": rule.cidr})
        return redirect("accounts:iprules")
    rules = IPRule.objects.filter(workspace=request.workspace).order_by("cidr")
    return render(request, "accounts/iprules.html", {"rules": rules, "form": form, "my_ip": my_ip})


@requires("settings.manage")
@require_POST
def iprule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    rule = get_object_or_404(IPRule, pk=rule_id, workspace=request.workspace)
    remaining = list(IPRule.objects.filter(workspace=request.workspace)
                     .exclude(pk=rule.pk).values_list("cidr", flat=True))
    # No rules left means open to all; otherwise the operator's own address must stay inside.
    if remaining and not ip_in_any(client_ip(request), remaining):
        messages.error(request, _("Deleting %(cidr)s would lock you out: your address %(ip)s is "
                                  "not in any other rule.")
                       % {"cidr": rule.cidr, "ip": client_ip(request) or _("(unknown)")})
        return redirect("accounts:iprules")
    cidr, note = rule.cidr, rule.note
    rule.delete()
    audit.record("iprule.deleted", request=request, target=cidr, note=note)
    messages.success(request, _("The rule %(cidr)s was deleted.") % {"cidr": cidr})
    return redirect("accounts:iprules")


urlpatterns = [
    path("ip-rules/", iprule_list, name="iprules"),
    path("ip-rules/<int:rule_id>/delete/", iprule_delete, name="iprule-delete"),
]
