"""The public page an empty-mail answer links to: it asks the recipient to press one button
(link checkers open links too; only a person presses), then confirms the sign-up."""

from django.http import Http404
from django.shortcuts import render
from django.urls import path
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from tayori.accounts.access import public
from tayori.inbound import signup
from tayori.lib.netaddr import client_ip
from tayori.members.masking import mask_email


@public
@csrf_exempt  # reached from a phone's mail without a session; the token is the credential
@require_http_methods(["GET", "POST"])
def join(request, token: str):
    mail = signup.mail_of(token)
    if mail is None or mail.member is None:
        raise Http404("unknown or expired link")
    done = mail.confirmed_at is not None
    if request.method == "POST" and not done:
        done = signup.confirm(mail, ip=client_ip(request),
                              user_agent=request.headers.get("User-Agent", ""))
    workspace = mail.workspace
    with translation.override(workspace.language or "ja"):
        response = render(request, "inbound/join.html", {
            "workspace": workspace, "signup": mail.signup, "done": done,
            "address": mask_email(mail.member.email)})
    response["X-Robots-Tag"] = "noindex"
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


app_name = "join"
urlpatterns = [path("j/<str:token>", join, name="confirm")]
