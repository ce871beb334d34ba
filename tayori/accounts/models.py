"""Workspaces, operators, memberships with roles, audit events, IP rules and API keys."""

import hashlib
import ipaddress
import secrets

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tayori.accounts import permissions


class Workspace(models.Model):
    """One company or brand. Every other row in Tayori belongs to exactly one."""

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=60, unique=True)
    time_zone = models.CharField(_("time zone"), max_length=64, default="Asia/Tokyo")
    language = models.CharField(_("language"), max_length=8, default="ja")
    # When true every API key of this workspace must carry an IP allow-list.
    require_key_ip_rules = models.BooleanField(_("require IP rules on API keys"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        creating = self._state.adding
        super().save(*args, **kwargs)
        if creating:
            Role.create_builtins(self)


class OperatorManager(UserManager):
    def get_by_natural_key(self, username):
        return self.get(**{f"{self.model.USERNAME_FIELD}__iexact": username})


class Operator(AbstractUser):
    """A person who signs in to the browser UI. Logs in with email and password (+ TOTP)."""

    email = models.EmailField(_("email"), unique=True)
    display_name = models.CharField(_("display name"), max_length=150, blank=True)
    language = models.CharField(_("language"), max_length=8, blank=True)
    totp_secret = models.CharField(max_length=64, blank=True)
    totp_enabled = models.BooleanField(_("two-factor authentication"), default=False)
    failed_logins = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    # Set while the password is a one-time password someone else has seen (new operator, reset);
    # every page then sends the operator to change it first.
    must_change_password = models.BooleanField(_("must change password"), default=False)

    objects = OperatorManager()
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["username"]

    def __str__(self):
        return self.display_name or self.email

    def is_locked(self) -> bool:
        return bool(self.locked_until and self.locked_until > timezone.now())


class Role(models.Model):
    """A named set of permissions inside a workspace; built-in roles cannot be edited."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="roles")
    name = models.CharField(_("name"), max_length=100)
    permissions = models.JSONField(_("permissions"), default=list)
    builtin = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="role_name_unique")]
        ordering = ["-builtin", "id"]

    def __str__(self):
        return self.label

    @property
    def label(self) -> str:
        """The name to show: built-in roles in the operator's language."""
        if self.builtin:
            return str(permissions.BUILTIN_ROLE_LABELS.get(self.name, self.name))
        return self.name

    def grants(self, code: str) -> bool:
        return code in self.permissions

    @classmethod
    def create_builtins(cls, workspace):
        cls.objects.bulk_create(
            [cls(workspace=workspace, name=name, permissions=sorted(codes), builtin=True)
             for name, codes in permissions.BUILTIN_ROLES.items()]
        )


class Membership(models.Model):
    """An operator's seat in a workspace, with one role."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    operator = models.ForeignKey(Operator, on_delete=models.CASCADE, related_name="memberships")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "operator"], name="membership_unique")
        ]

    def __str__(self):
        return f"{self.operator} in {self.workspace} ({self.role})"

    def has(self, code: str) -> bool:
        return self.role.grants(code)


class AuditEvent(models.Model):
    """Something an operator (or API key) did that someone may ask about later. Append-only."""

    workspace = models.ForeignKey(Workspace, null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="audit_events")
    operator = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.SET_NULL)
    api_key = models.ForeignKey("ApiKey", null=True, blank=True, on_delete=models.SET_NULL)
    actor = models.CharField(max_length=254, blank=True)  # kept when the operator is deleted
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=254, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-created_at"])]

    def __str__(self):
        return f"{self.action} {self.target}".strip()


class IPRule(models.Model):
    """A CIDR allowed to reach the admin UI of a workspace (empty set = everyone)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="ip_rules")
    cidr = models.CharField(_("network (CIDR)"), max_length=64)
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.cidr

    def network(self):
        return ipaddress.ip_network(self.cidr, strict=False)


def _hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(models.Model):
    """A developer's credential: shown once, stored as a SHA-256 hash, scoped to permissions."""

    PREFIX = "tyr_"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    permissions = models.JSONField(_("permissions"), default=list)
    allowed_cidrs = models.JSONField(_("allowed networks"), default=list, blank=True)
    created_by = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, workspace, name, perms, allowed_cidrs=(), created_by=None):
        """Create a key; returns (key, raw secret). The raw secret is never stored."""
        raw = cls.PREFIX + secrets.token_urlsafe(32)
        key = cls.objects.create(
            workspace=workspace, name=name, prefix=raw[:12], key_hash=_hash_key(raw),
            permissions=permissions.validate(perms), allowed_cidrs=list(allowed_cidrs),
            created_by=created_by,
        )
        return key, raw

    @classmethod
    def find(cls, raw: str):
        return (cls.objects.select_related("workspace")
                .filter(key_hash=_hash_key(raw), revoked_at__isnull=True).first())

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def grants(self, code: str) -> bool:
        return code in self.permissions

    def allows_ip(self, ip: str | None) -> bool:
        from tayori.lib.netaddr import ip_in_any
        if not self.allowed_cidrs:
            return not self.workspace.require_key_ip_rules
        return ip_in_any(ip, self.allowed_cidrs)


class IdempotentRequest(models.Model):
    """A creating API call made with an Idempotency-Key: kept 24 hours so a client that retries
    (a timeout, a crash) gets the first answer instead of a second delivery. A row without a
    status code is a call still running."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE,
                                  related_name="idempotent_requests")
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of method, path, query and body
    status_code = models.PositiveSmallIntegerField(null=True)
    content_type = models.CharField(max_length=100, blank=True)
    body = models.BinaryField(default=b"")  # the answer, sealed with tayori.lib.crypto
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["api_key", "created_at"], name="idempotency_expiry")]
        # Per API key: a replay needs the key that made the first call, so another key of the
        # workspace (with other permissions or networks) never reads its answer.
        constraints = [models.UniqueConstraint(fields=["api_key", "key"],
                                               name="idempotency_key_once")]

    def __str__(self):
        return self.key
