"""The public endpoints under ``/t/``, reached from mail without a session: the open pixel, click
redirects (only to links that were in that message), the conversion pixel and its tag, the web
version, and the unsubscribe page with its RFC 8058 one-click POST and the preference center.
Everything a recipient sends is a signed token (delivery.tokens); a forged or altered one gets
the same answer as an unknown one."""

from __future__ import annotations

import email
import email.policy

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path
from django.utils import translation
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from tayori.accounts.access import public
from tayori.delivery import tokens
from tayori.delivery.composing import Composer
from tayori.delivery.engine import member_rows
from tayori.delivery.models import Delivery
from tayori.delivery.rendering import RenderError
from tayori.lib.netaddr import client_ip
from tayori.members.masking import mask_email
from tayori.members.models import ListMembership, Member, MemberList
from tayori.tracking import fast, optout
from tayori.tracking.fast import CONVERSION_PARAM, PIXEL
from tayori.tracking.models import Kind


def _hit(request, kind: str, delivery_id: int, **extra) -> None:
    fast.hit(kind, delivery_id, client_ip(request), request.headers.get("User-Agent", ""),
             request.method == "HEAD", **extra)


def _pixel() -> HttpResponse:
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = "no-store, max-age=0"
    return response


# The open pixel and clicks usually never reach these views: tayori.asgi answers them on a lean
# path (tracking.fast) with the same functions. They serve the test client, WSGI, and what the
# lean path hands on (unusual hosts and methods, refused tokens).
@public
@require_http_methods(["GET", "HEAD"])
def open_pixel(request, token: str):
    delivery_id = fast.opened(token)
    if delivery_id is not None:
        _hit(request, Kind.OPEN, delivery_id)
    return _pixel()  # a broken image helps no one, even for a forged token


@public
@require_http_methods(["GET", "HEAD"])
def click(request, token: str):
    numbers = fast.clicked(token)
    location = fast.redirect(*numbers) if numbers else None
    if location is None:  # never a redirect to a URL that was not in this message
        return _not_found(request)
    _hit(request, Kind.CLICK, numbers[0], link_index=numbers[1])
    return HttpResponseRedirect(location)


@public
@require_http_methods(["GET", "HEAD"])
def conversion(request, token: str):
    numbers = tokens.read(tokens.CONVERSION, token)
    if numbers and len(numbers) == 1 and request.method == "GET":
        raw = request.GET.get("value", "").replace(",", "").strip()
        value = int(float(raw)) if raw.replace(".", "", 1).isdigit() else None
        _hit(request, Kind.CONVERSION, numbers[0], value=value)
    return _pixel()


TAG = """(function () {
  var key = "PARAM", script = document.currentScript;
  var base = new URL(script.src).origin;
  var given = new URLSearchParams(location.search).get(key);
  try { if (given) localStorage.setItem(key, given); } catch (e) {}
  window.tayoriConversion = function (value) {
    var token; try { token = localStorage.getItem(key); } catch (e) {}
    if (!token) return;
    new Image().src = base + "/t/v/" + token + ".gif" +
      (value ? "?value=" + encodeURIComponent(value) : "");
  };
  if (script.dataset.conversion !== undefined) window.tayoriConversion(script.dataset.value);
})();
""".replace("PARAM", CONVERSION_PARAM)


@public
def tag(request):
    """The conversion tag: on landing pages it keeps the click's token, on a goal page
    (``data-conversion``) it reports the conversion with an optional ``data-value``."""
    response = HttpResponse(TAG, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=3600"
    return response


@public
@require_http_methods(["GET"])
def web_version(request, token: str):
    numbers = tokens.read(tokens.WEB, token)
    delivery = (Delivery.objects.filter(pk=numbers[0]).select_related("workspace").first()
                if numbers and len(numbers) == 1 else None)
    if delivery is None:
        return _not_found(request)
    member = member_rows([delivery.member_id]).get(delivery.member_id)
    composer = Composer.for_source(delivery.source_id)
    if composer.conditions and member:
        composer.conditions.load([member.pk])
    try:
        rendered = composer.render(delivery.pk, delivery.address, member, delivery.data)
    except RenderError:
        return _not_found(request)
    message = email.message_from_bytes(rendered.data, policy=email.policy.default)
    part = message.get_body(("html", "plain"))
    body = part.get_content() if part else ""
    if part is not None and part.get_content_type() == "text/plain":
        body = f"<pre style='white-space:pre-wrap'>{escape(body)}</pre>"
    response = HttpResponse(body, content_type="text/html; charset=utf-8")
    # The mail's HTML runs no script and cannot post anywhere from this origin.
    response["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src * data:; " \
                                          "style-src 'unsafe-inline'"
    response["X-Robots-Tag"] = "noindex"
    return response


@public
@csrf_exempt  # reached from mail without a session; the token is the credential
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token: str):
    numbers = tokens.read(tokens.UNSUBSCRIBE, token)
    delivery = (Delivery.objects.filter(pk=numbers[0]).select_related("workspace", "member")
                .first() if numbers and len(numbers) == 1 else None)
    if delivery is None:
        return _not_found(request)
    # RFC 8058: the mailbox provider POSTs "List-Unsubscribe=One-Click", without cookies.
    if request.method == "POST" and request.POST.get("List-Unsubscribe") == "One-Click":
        optout.unsubscribe(delivery, method="one-click", request=request)
        _hit(request, Kind.UNSUBSCRIBE, delivery.pk)
        return HttpResponse("Unsubscribed\n", content_type="text/plain")
    with translation.override(delivery.workspace.language or "ja"):
        member = delivery.member
        lists = list(MemberList.objects.filter(workspace=delivery.workspace, public=True))
        done = ""
        if request.method == "POST" and request.POST.get("action") == "unsubscribe":
            optout.unsubscribe(delivery, method="unsubscribe page", request=request)
            _hit(request, Kind.UNSUBSCRIBE, delivery.pk)
            done = "unsubscribed"
        elif request.method == "POST" and request.POST.get("action") == "lists" and member:
            wanted = {int(v) for v in request.POST.getlist("list") if v.isdigit()}
            optout.set_lists(member, lists, wanted)
            done = "lists"
        if member is not None:
            member.refresh_from_db()
        chosen = set(ListMembership.objects.filter(member=member, member_list__in=lists)
                     .values_list("member_list_id", flat=True)) if member else set()
        return render(request, "tracking/unsubscribe.html", {
            "workspace": delivery.workspace, "address": mask_email(delivery.address),
            "unsubscribed": (member.status == Member.Status.UNSUBSCRIBED if member
                             else done == "unsubscribed"),
            "lists": [(item, item.pk in chosen) for item in lists], "done": done,
            "has_member": member is not None})


def _not_found(request):
    raise Http404("unknown link")


app_name = "tracking"
urlpatterns = [
    path("o/<str:token>.gif", open_pixel, name="open"),
    path("c/<str:token>", click, name="click"),
    path("v/<str:token>.gif", conversion, name="conversion"),
    path("tag.js", tag, name="tag"),
    path("w/<str:token>", web_version, name="web"),
    path("u/<str:token>", unsubscribe, name="unsubscribe"),
]
