"""The per-function permissions roles are made of, and the built-in roles.

A permission is a short code such as ``members.view``; views and API routes declare the one they
need, and a test walks every route to make sure none forgot.
"""

from django.utils.translation import gettext_lazy as _

PERMISSIONS: dict[str, str] = {
    "members.view": _("View members"),
    "members.edit": _("Edit members, attributes, lists and segments"),
    "members.import": _("Import members"),
    "members.export": _("Export members"),
    "members.view_pii": _("View personal information"),
    "templates.manage": _("Manage templates"),
    "campaigns.create": _("Create campaigns"),
    "campaigns.edit": _("Edit campaigns"),
    "campaigns.schedule": _("Schedule campaigns"),
    "campaigns.send": _("Send campaigns"),
    "campaigns.approve": _("Approve campaigns"),
    "deliveries.view": _("View the delivery log and the sandbox outbox"),
    "messages.send": _("Send transactional messages"),
    "messages.send_external": _("Send messages to addresses that are not members"),
    "notices.send": _("Send incident notices"),
    "notices.manage": _("Define notice types and the service catalogue"),
    "webhooks.manage": _("Manage webhooks"),
    "analytics.view": _("View analytics"),
    "settings.manage": _("Manage workspace settings and IP rules"),
    "operators.manage": _("Manage operators and roles"),
    "apikeys.manage": _("Manage API keys"),
    "audit.view": _("View the audit log"),
}
ALL = frozenset(PERMISSIONS)

BUILTIN_ROLES: dict[str, frozenset[str]] = {
    "Owner": ALL,
    "Admin": ALL,
    "Editor": frozenset(
        {"members.view", "members.edit", "members.import", "members.export", "members.view_pii",
         "templates.manage", "campaigns.create", "campaigns.edit", "analytics.view",
         "deliveries.view", "notices.manage"}
    ),
    "Approver": frozenset(
        {"members.view", "templates.manage", "campaigns.schedule", "campaigns.send",
         "campaigns.approve", "analytics.view", "deliveries.view", "notices.send"}
    ),
    "Analyst": frozenset({"members.view", "members.export", "analytics.view",
                          "deliveries.view"}),
    "Viewer": frozenset({"members.view", "analytics.view", "deliveries.view"}),
}


# Built-in role names are stored in English (stable keys for the API and tests) and shown
# translated.
BUILTIN_ROLE_LABELS = {
    "Owner": _("Owner"),
    "Admin": _("Admin"),
    "Editor": _("Editor"),
    "Approver": _("Approver"),
    "Analyst": _("Analyst"),
    "Viewer": _("Viewer"),
}


def validate(codes) -> list[str]:
    """Return the codes sorted, raising ValueError on one that is not a permission."""
    unknown = sorted(set(codes) - ALL)
    if unknown:
        raise ValueError(f"unknown permission: {', '.join(unknown)}")
    return sorted(set(codes))
