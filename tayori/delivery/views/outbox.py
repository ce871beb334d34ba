"""Pages: the sandbox outbox — mail Tayori caught instead of sending, shown exactly as it would
have left: HTML (in a sandboxed frame), text, headers and the raw source."""

import email
import email.policy

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path

from tayori.accounts.access import requires
from tayori.delivery.models import DeliverySettings, OutboxMessage
from tayori.members.masking import mask_email
from tayori.members.views.helpers import can_view_pii

PAGE_SIZE = 50


@requires("deliveries.view")
def index(request):
    pii = can_view_pii(request)
    messages = OutboxMessage.objects.filter(workspace=request.workspace).select_related("source")
    page = Paginator(messages.order_by("-id").defer("raw"), PAGE_SIZE).get_page(
        request.GET.get("page"))
    return render(request, "delivery/outbox.html", {
        "page_obj": page, "mode": DeliverySettings.of(request.workspace).get_mode_display(),
        # Subjects carry merge fields (names): shown only to those who may see personal data.
        "rows": [{"message": m, "to": m.recipient if pii else mask_email(m.recipient),
                  "subject": m.subject if pii else "***"} for m in page.object_list]})


def _parts(raw: bytes) -> dict:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    return {
        "headers": [(name, str(value)) for name, value in message.items()],
        "html": html.get_content() if html is not None else "",
        "text": text.get_content() if text is not None else "",
        "attachments": [(part.get_filename(), part.get_content_type(),
                         len(part.get_payload(decode=True) or b""))
                        for part in message.iter_attachments()],
    }


@requires("deliveries.view")
def detail(request, pk):
    message = get_object_or_404(OutboxMessage.objects.select_related("source", "delivery"),
                                pk=pk, workspace=request.workspace)
    pii = can_view_pii(request)
    raw = bytes(message.raw)
    context = {"message": message, "to": message.recipient if pii else mask_email(
        message.recipient), "pii": pii, **_parts(raw)}
    if pii:
        context["raw"] = raw.decode("utf-8", "replace")
    else:  # personal data sits in the body: those without the right see the envelope only
        context["html"] = context["text"] = ""
        context["headers"] = [(n, v) for n, v in context["headers"]
                              if n.lower() not in ("to", "subject", "list-unsubscribe")]
    return render(request, "delivery/outbox_message.html", context)


@requires("members.view_pii")
def download(request, pk):
    message = get_object_or_404(OutboxMessage, pk=pk, workspace=request.workspace)
    response = HttpResponse(bytes(message.raw), content_type="message/rfc822")
    response["Content-Disposition"] = f'attachment; filename="tayori-{message.pk}.eml"'
    return response


urlpatterns = [
    path("outbox/", index, name="outbox"),
    path("outbox/<int:pk>/", detail, name="outbox-message"),
    path("outbox/<int:pk>/message.eml", download, name="outbox-download"),
]
