"""The fragment a member's page loads (htmx) with that member's bounces and complaints, newest
first. The members app sits below inbound and knows only this route's name."""

from django.shortcuts import get_object_or_404, render
from django.urls import path

from tayori.accounts.access import can, requires
from tayori.inbound.models import Bounce, Complaint
from tayori.inbound.views.bounces import bounce_row
from tayori.members.models import Member
from tayori.members.views.helpers import can_view_pii, shown_email

LIMIT = 50


@requires("members.view")
def member_history(request, member_pk):
    member = get_object_or_404(Member, pk=member_pk, workspace=request.workspace)
    pii = can_view_pii(request)
    bounces = Bounce.objects.filter(workspace=request.workspace, member=member)
    complaints = Complaint.objects.filter(workspace=request.workspace, member=member)
    rows = [{"kind": "bounce", "at": b.received_at, **bounce_row(b, pii)}
            for b in bounces.defer("raw")[:LIMIT]]
    rows += [{"kind": "complaint", "at": c.received_at, "complaint": c,
              "address": shown_email(c.address, pii)}
             for c in complaints.defer("raw")[:LIMIT]]
    rows.sort(key=lambda row: row["at"], reverse=True)
    total = bounces.count() + complaints.count()
    return render(request, "inbound/_member_history.html", {
        "member": member, "rows": rows[:LIMIT], "total": total, "limit": LIMIT,
        "can_see_bounces": can(request, "deliveries.view")})


urlpatterns = [
    path("members/<int:member_pk>/history/", member_history, name="member-history"),
]
