"""Forms for the workspace administration pages: operators, roles, API keys, IP rules,
the audit-log filter and workspace settings.

Forms that grant permissions take the acting membership so that nobody hands out more than
they hold themselves (an operator manager cannot mint an all-powerful role or key).
"""

import re
import zoneinfo
from datetime import date, datetime, time, timedelta

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from tayori.accounts import permissions
from tayori.accounts.models import ApiKey, AuditEvent, Operator, Role, Workspace
from tayori.lib.netaddr import ip_in_any, validate_cidr

OWNER = "Owner"


def grantable(membership, codes) -> bool:
    """Whether ``membership`` holds every permission in ``codes`` (and so may hand them out)."""
    return set(codes) <= set(membership.role.permissions)


def may_assign(membership, role: Role) -> bool:
    """Only Owners make Owners; anyone else may assign a role no stronger than their own."""
    if role.builtin and role.name == OWNER:
        return membership.role.builtin and membership.role.name == OWNER
    return grantable(membership, role.permissions)


def permission_choices():
    return list(permissions.PERMISSIONS.items())


def split_networks(text: str) -> list[str]:
    """CIDRs separated by new lines, commas or spaces."""
    return [part for part in re.split(r"[\s,]+", text or "") if part]


def clean_networks(text: str) -> list[str]:
    """Normalized, de-duplicated CIDRs; one ValidationError naming every malformed entry."""
    good, bad = [], []
    for raw in split_networks(text):
        try:
            cidr = validate_cidr(raw)
        except ValueError:
            bad.append(raw)
            continue
        if cidr not in good:
            good.append(cidr)
    if bad:
        raise ValidationError(
            gettext("Not a valid network (CIDR): %(values)s"),
            params={"values": ", ".join(bad)}, code="invalid_cidr")
    return good


class RoleChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.label


class _ActorForm(forms.Form):
    """A form that knows the workspace and the acting operator's membership."""

    def __init__(self, *args, membership, **kwargs):
        super().__init__(*args, **kwargs)
        self.membership = membership
        self.workspace = membership.workspace


class OperatorAddForm(_ActorForm):
    email = forms.EmailField(label=_("Email"), max_length=150)
    display_name = forms.CharField(label=_("Display name"), max_length=150, required=False)
    role = RoleChoiceField(label=_("Role"), queryset=Role.objects.none())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = Role.objects.filter(workspace=self.workspace)

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        local, _sep, domain = email.rpartition("@")
        email = f"{local}@{domain.lower()}"
        existing = Operator.objects.filter(email__iexact=email).first()
        if existing is not None and existing.memberships.filter(workspace=self.workspace).exists():
            raise ValidationError(gettext("This operator is already a member of this workspace."))
        self.existing = existing
        return email

    def clean_role(self) -> Role:
        role = self.cleaned_data["role"]
        if not may_assign(self.membership, role):
            raise ValidationError(gettext("You cannot give a role with more rights than your own."))
        return role


class OperatorRoleForm(_ActorForm):
    role = RoleChoiceField(label=_("Role"), queryset=Role.objects.none())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = Role.objects.filter(workspace=self.workspace)

    def clean_role(self) -> Role:
        role = self.cleaned_data["role"]
        if not may_assign(self.membership, role):
            raise ValidationError(gettext("You cannot give a role with more rights than your own."))
        return role


class PermissionsField(forms.MultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs):
        kwargs.setdefault("choices", permission_choices)
        super().__init__(**kwargs)


class RoleForm(_ActorForm):
    name = forms.CharField(label=_("Name"), max_length=100)
    permissions = PermissionsField(label=_("Permissions"), required=False)

    def __init__(self, *args, instance: Role | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance = instance
        if instance is not None and not self.is_bound:
            self.initial = {"name": instance.name, "permissions": list(instance.permissions)}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(gettext("Enter a name."))
        taken = Role.objects.filter(workspace=self.workspace, name__iexact=name)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise ValidationError(gettext("A role with this name already exists."))
        return name

    def clean_permissions(self) -> list[str]:
        codes = permissions.validate(self.cleaned_data["permissions"])
        # Editing may keep rights the editor lacks, but never add new ones.
        before = set(self.instance.permissions) if self.instance is not None else set()
        if not grantable(self.membership, set(codes) - before):
            raise ValidationError(
                gettext("You cannot grant permissions you do not have yourself."))
        return codes


class ApiKeyForm(_ActorForm):
    name = forms.CharField(label=_("Name"), max_length=100)
    permissions = PermissionsField(label=_("Permissions"))
    allowed_networks = forms.CharField(
        label=_("Allowed networks"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One CIDR per line, IPv4 or IPv6 (e.g. 203.0.113.0/24, 2001:db8::/32). "
                    "Empty allows any address."))

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(gettext("Enter a name."))
        return name

    def clean_permissions(self) -> list[str]:
        codes = permissions.validate(self.cleaned_data["permissions"])
        if not grantable(self.membership, codes):
            raise ValidationError(
                gettext("You cannot grant permissions you do not have yourself."))
        return codes

    def clean_allowed_networks(self) -> list[str]:
        networks = clean_networks(self.cleaned_data["allowed_networks"])
        if not networks and self.workspace.require_key_ip_rules:
            raise ValidationError(
                gettext("This workspace requires every API key to have allowed networks."))
        return networks


class IPRuleForm(forms.Form):
    cidr = forms.CharField(label=_("Network (CIDR)"), max_length=64,
                           help_text=_("IPv4 or IPv6, e.g. 203.0.113.0/24 or 2001:db8::/32."))
    note = forms.CharField(label=_("Note"), max_length=200, required=False)

    def __init__(self, *args, workspace: Workspace, client_ip: str | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.client_ip = client_ip

    def clean_cidr(self) -> str:
        try:
            cidr = validate_cidr(self.cleaned_data["cidr"])
        except ValueError:
            raise ValidationError(gettext("Not a valid network (CIDR).")) from None
        existing = list(self.workspace.ip_rules.values_list("cidr", flat=True))
        if cidr in existing:
            raise ValidationError(gettext("This network is already allowed."))
        if not ip_in_any(self.client_ip, [*existing, cidr]):
            raise ValidationError(
                gettext("This rule would lock you out: your address %(ip)s is not in it. "
                        "Add a rule that includes your own network first."),
                params={"ip": self.client_ip or gettext("(unknown)")}, code="lockout")
        return cidr


class AuditFilterForm(forms.Form):
    operator = forms.ModelChoiceField(label=_("Operator"), queryset=Operator.objects.none(),
                                      required=False, empty_label=_("Anyone"))
    action = forms.ChoiceField(label=_("Action"), required=False)
    date_from = forms.DateField(label=_("From"), required=False,
                                widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=_("To"), required=False,
                              widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, workspace: Workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        events = AuditEvent.objects.filter(workspace=workspace)
        # Operators who acted here, including ones who have since left the workspace.
        self.fields["operator"].queryset = Operator.objects.filter(
            pk__in=events.exclude(operator=None).values("operator")).order_by("email")
        actions = events.order_by("action").values_list("action", flat=True).distinct()
        self.fields["action"].choices = [("", gettext("Any action"))] + [(a, a) for a in actions]

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise ValidationError(gettext("The start date is after the end date."))
        return data

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=zoneinfo.ZoneInfo(self.workspace.time_zone))

    def filter(self, events):
        """Apply the filters; dates are whole days in the workspace's time zone.

        An invalid filter selects nothing rather than silently selecting everything.
        """
        if not self.is_bound:
            return events
        if not self.is_valid():
            return events.none()
        data = self.cleaned_data
        if data.get("operator"):
            events = events.filter(operator=data["operator"])
        if data.get("action"):
            events = events.filter(action=data["action"])
        if data.get("date_from"):
            events = events.filter(created_at__gte=self._midnight(data["date_from"]))
        if data.get("date_to"):
            events = events.filter(
                created_at__lt=self._midnight(data["date_to"] + timedelta(days=1)))
        return events

    def active_filters(self) -> dict:
        data = self.cleaned_data if self.is_valid() else {}
        return {key: (value.email if isinstance(value, Operator) else str(value))
                for key, value in data.items() if value}


def time_zone_choices():
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class SettingsForm(forms.ModelForm):
    LANGUAGES = [("ja", "日本語"), ("en", "English")]

    time_zone = forms.ChoiceField(label=_("Time zone"), choices=time_zone_choices)
    language = forms.ChoiceField(label=_("Default language"), choices=LANGUAGES)

    class Meta:
        model = Workspace
        fields = ["name", "time_zone", "language", "require_key_ip_rules"]
        help_texts = {
            "require_key_ip_rules": _("Every API key must list the networks it may be used from."),
        }

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(gettext("Enter a name."))
        return name

    def clean_time_zone(self) -> str:
        name = self.cleaned_data["time_zone"]
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValidationError(gettext("Unknown time zone.")) from None
        return name


def keys_without_networks(workspace: Workspace) -> list[str]:
    """Names of active keys that an IP requirement would shut off."""
    keys = ApiKey.objects.filter(workspace=workspace, revoked_at__isnull=True).order_by("name")
    return [key.name for key in keys if not key.allowed_cidrs]
