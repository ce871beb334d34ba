"""Per-request workspace, language and admin IP allow-list."""

from django.http import HttpResponseForbidden
from django.utils import timezone, translation

from tayori.accounts.models import Membership
from tayori.lib.netaddr import client_ip, ip_in_any

SESSION_WORKSPACE = "tayori_workspace"
SESSION_LANGUAGE = "tayori_language"


class LanguageMiddleware:
    """Activates the chosen language: the session's choice, else the operator's, else the
    workspace's, else Japanese. Runs after WorkspaceMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        workspace = getattr(request, "workspace", None)
        candidates = [
            request.session.get(SESSION_LANGUAGE) if hasattr(request, "session") else None,
            getattr(user, "language", None) if user is not None and user.is_authenticated else None,
            workspace.language if workspace is not None else None,
        ]
        lang = next((c for c in candidates if c in ("ja", "en")), "ja")
        translation.activate(lang)
        request.LANGUAGE_CODE = lang
        response = self.get_response(request)
        response.headers.setdefault("Content-Language", lang)
        return response


class WorkspaceMiddleware:
    """Sets request.workspace and request.membership for signed-in operators.

    The workspace is the one chosen in the session if the operator still belongs to it, else their
    first. The workspace's time zone is activated, and its admin IP allow-list enforced.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.workspace = None
        request.membership = None
        if request.path.startswith(("/api/", "/static/")):
            return self.get_response(request)
        user = request.user
        if user.is_authenticated:
            memberships = Membership.objects.select_related("workspace", "role").filter(
                operator=user)
            chosen = request.session.get(SESSION_WORKSPACE)
            membership = None
            if chosen:
                membership = memberships.filter(workspace_id=chosen).first()
            if membership is None:
                membership = memberships.order_by("id").first()
            if membership is not None:
                request.membership = membership
                request.workspace = membership.workspace
                timezone.activate(membership.workspace.time_zone)
                cidrs = list(membership.workspace.ip_rules.values_list("cidr", flat=True))
                if cidrs and not ip_in_any(client_ip(request), cidrs):
                    return HttpResponseForbidden(
                        "This workspace does not accept connections from your network.")
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
