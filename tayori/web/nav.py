"""The sidebar: sections of (url name, label, permission needed to see the link)."""

from django.utils.translation import gettext_lazy as _

NAVIGATION = [
    (_("Audience"), [
        ("members:index", _("Members"), "members.view"),
        ("members:attributes", _("Attributes"), "members.edit"),
        ("members:lists", _("Lists"), "members.view"),
        ("members:segments", _("Segments"), "members.view"),
        ("members:jobs", _("Imports and exports"), "members.view"),
        ("members:suppressions", _("Suppressions"), "members.view"),
    ]),
    (_("Mail"), [
        ("incidents:index", _("Incident notices"), "notices.send"),
        ("incidents:types", _("Notice types"), "notices.manage"),
        ("campaigns:list", _("Campaigns"), "campaigns.create"),
        ("content:templates", _("Templates"), "templates.manage"),
        ("content:identities", _("Senders"), "templates.manage"),
        ("campaigns:step-mails", _("Step mails"), "campaigns.create"),
        ("campaigns:settings", _("Campaign settings"), "settings.manage"),
        ("delivery:sends", _("Sends"), "deliveries.view"),
        ("analytics:index", _("Analytics"), "analytics.view"),
        ("delivery:log", _("Delivery log"), "deliveries.view"),
        ("delivery:outbox", _("Sandbox outbox"), "deliveries.view"),
        ("inbound:bounces", _("Bounces"), "deliveries.view"),
        ("delivery:settings", _("Sending settings"), "settings.manage"),
        ("tracking_setup:settings", _("Tracking settings"), "settings.manage"),
        ("inbound:settings", _("Inbound settings"), "settings.manage"),
        ("inbound:signups", _("Sign-up addresses"), "settings.manage"),
        ("webhooks:list", _("Webhooks"), "webhooks.manage"),
    ]),
    (_("Workspace"), [
        ("accounts:operators", _("Operators"), "operators.manage"),
        ("accounts:roles", _("Roles"), "operators.manage"),
        ("accounts:apikeys", _("API keys"), "apikeys.manage"),
        ("accounts:iprules", _("IP rules"), "settings.manage"),
        ("accounts:audit", _("Audit log"), "audit.view"),
        ("accounts:settings", _("Settings"), "settings.manage"),
    ]),
]
