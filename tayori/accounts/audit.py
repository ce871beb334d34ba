"""Writing audit events from views, API routes and jobs."""

from tayori.accounts.models import AuditEvent
from tayori.lib.netaddr import client_ip


def record(action: str, *, request=None, workspace=None, operator=None, api_key=None,
           target: str = "", **detail) -> AuditEvent:
    """Append one audit event. With a request, the workspace, operator and IP come from it."""
    ip = None
    if request is not None:
        ip = client_ip(request)
        workspace = workspace or getattr(request, "workspace", None)
        api_key = api_key or getattr(request, "api_key", None)
        user = getattr(request, "user", None)
        if operator is None and user is not None and user.is_authenticated:
            operator = user
    actor = operator.email if operator else (f"api:{api_key.name}" if api_key else "")
    return AuditEvent.objects.create(
        workspace=workspace, operator=operator, api_key=api_key, actor=actor,
        action=action, target=str(target)[:254], detail=detail, ip=ip,
    )
