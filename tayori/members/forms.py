"""Forms for the member pages. They collect raw input only: members are validated by
``values.clean_member`` through ``services``, whose FieldErrors are put back on the fields here."""

import json
import re

from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from tayori.members import values
from tayori.members.masking import mask_email, mask_phone
from tayori.members.models import Attribute, ConsentRecord, Member, MemberList, Suppression

T = Attribute.Type
ATTRIBUTE_PREFIX = "attr_"
# Keys that name member fields (or would confuse CSV headers and JSON lookups).
RESERVED_KEYS = {"email", "phone", "status", "id", "pk", "lists", "consents", "created_at",
                 "updated_at", "workspace"}
_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
# clean_value splits multiple-choice input on these, so a choice cannot contain them.
_MULTI_SEPARATORS = re.compile(r"[;|、]")
_DATETIME_INPUT = "%Y-%m-%dT%H:%M:%S"
# Attribute types the member table's free-text search looks into.
SEARCHABLE_TYPES = (T.TEXT, T.CHOICE, T.MULTI_CHOICE)


class LocalDateTimeInput(forms.DateTimeInput):
    """A browser date-and-time picker; Django shows and reads it in the workspace time zone."""

    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs={"step": "1", **(attrs or {})}, format=_DATETIME_INPUT)


class MemberForm(forms.Form):
    """Email, phone, status and one field per workspace attribute, with the widget its type needs.

    For an editor who may not see personal information, PII fields start empty with the masked
    value as a hint, and an empty PII field keeps the stored value.
    """

    email = forms.CharField(label=_("Email"), required=False, max_length=320,
                            widget=forms.TextInput(attrs={"inputmode": "email",
                                                          "autocomplete": "off"}))
    phone = forms.CharField(label=_("Phone"), required=False, max_length=40,
                            widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "off"}))
    status = forms.CharField(label=_("Status"), required=False,
                             widget=forms.Select(choices=Member.Status.choices))

    def __init__(self, *args, attributes: list[Attribute], member: Member | None = None,
                 pii_visible: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.attributes = list(attributes)
        self.hidden_pii: set[str] = set()  # field names whose stored value is not shown
        self.required_names = {"status"} | {
            self.name_for(a.key) for a in self.attributes if a.required}
        for attribute in self.attributes:
            self.fields[self.name_for(attribute.key)] = _attribute_field(attribute)
        if member is not None:
            self._fill_from(member, pii_visible)

    @staticmethod
    def name_for(key: str) -> str:
        return ATTRIBUTE_PREFIX + key

    def _fill_from(self, member: Member, pii_visible: bool) -> None:
        self.initial.update({"email": member.email, "phone": member.phone,
                             "status": member.status})
        stored = member.attributes or {}
        for attribute in self.attributes:
            self.initial[self.name_for(attribute.key)] = _initial(attribute,
                                                                  stored.get(attribute.key))
        if pii_visible:
            return
        hints = {"email": mask_email(member.email), "phone": mask_phone(member.phone)}
        hints.update({self.name_for(a.key): "***" for a in self.attributes
                      if a.pii and a.key in stored})
        for name in ["email", "phone"] + [self.name_for(a.key) for a in self.attributes if a.pii]:
            self.initial.pop(name, None)
            self.hidden_pii.add(name)
            field = self.fields[name]
            if isinstance(field, forms.BooleanField):
                # An unticked box would overwrite the hidden value; offer "keep" instead.
                field = self.fields[name] = forms.CharField(
                    label=field.label, required=False, widget=forms.Select(choices=[
                        ("", _("(keep)")), ("true", _("Yes")), ("false", _("No"))]))
            if hints.get(name):
                field.widget.attrs["placeholder"] = hints[name]
            field.help_text = _("Hidden from your role. Leave empty to keep the stored value.")

    def member_data(self) -> dict:
        """The raw fields for ``services.create_member`` / ``update_member``."""
        data = {"email": self.cleaned_data.get("email", ""),
                "phone": self.cleaned_data.get("phone", ""),
                "status": self.cleaned_data.get("status", "")}
        for attribute in self.attributes:
            name = self.name_for(attribute.key)
            data[attribute.key] = self.cleaned_data.get(name)
        for name in self.hidden_pii:
            key = name.removeprefix(ATTRIBUTE_PREFIX)
            raw = data.get(key)
            if raw in (None, "", []):
                data.pop(key, None)
        return data

    def add_field_errors(self, errors: list[values.FieldError]) -> None:
        """Show each service error on the field it concerns (else above the form)."""
        keys = {a.key for a in self.attributes}
        for error in errors:
            if error.field in ("email", "phone", "status"):
                name = error.field
            elif error.field in keys:
                name = self.name_for(error.field)
            else:
                name = None
            self.add_error(name, error.message)


def _attribute_field(attribute: Attribute) -> forms.Field:
    """A form field that passes raw input through; the widget fits the attribute's type."""
    common = {"label": attribute.label, "required": False}
    choices = [(c, c) for c in attribute.choices]
    if attribute.type == T.NUMBER:
        return forms.CharField(widget=forms.NumberInput(attrs={"step": "any"}), **common)
    if attribute.type == T.DATE:
        return forms.CharField(widget=forms.DateInput(attrs={"type": "date"}), **common)
    if attribute.type == T.DATETIME:
        return forms.CharField(widget=LocalDateTimeInput(), **common)
    if attribute.type == T.BOOLEAN:
        return forms.BooleanField(**common)
    if attribute.type == T.CHOICE:
        return forms.CharField(widget=forms.Select(choices=[("", "—")] + choices), **common)
    if attribute.type == T.MULTI_CHOICE:
        return forms.Field(widget=forms.SelectMultiple(choices=choices), **common)
    return forms.CharField(widget=forms.TextInput, max_length=2000, **common)


def _initial(attribute: Attribute, stored):
    if stored is None:
        return None
    if attribute.type == T.DATETIME:
        moment = parse_datetime(str(stored))
        return timezone.localtime(moment).strftime(_DATETIME_INPUT) if moment else stored
    return stored


class AttributeForm(forms.ModelForm):
    """Defines an attribute. The key is fixed once created: stored values, CSV headers, API
    clients and segments refer to it.

    The label comes first and the page suggests a key from it (``attribute_form.html``); a
    label with no Latin letters to build one from gets the next free ``attr_N``.
    """

    choices_text = forms.CharField(
        label=_("Choices"), required=False, widget=forms.Textarea(attrs={"rows": 5}),
        help_text=_("One per line. Used by the choice and multiple choice types."))
    field_order = ["label", "key", "type", "choices_text", "required", "unique", "pii"]

    class Meta:
        model = Attribute
        fields = ["key", "label", "type", "required", "unique", "pii"]
        help_texts = {
            "key": _("Lower-case letters, digits and underscores, starting with a letter. "
                     "Used in CSV headers and the API; cannot be changed later. Suggested from "
                     "the label; a Japanese label gets a numbered key such as attr_1, which "
                     "you may replace with a clearer one (e.g. prefecture)."),
            "pii": _("Masked for roles that may not view personal information."),
        }

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        if self.instance.pk:
            self.fields["key"].disabled = True
            self.fields["choices_text"].initial = "\n".join(self.instance.choices)
            return
        taken = set(Attribute.objects.filter(workspace=workspace).values_list("key", flat=True))
        # What the page's script needs to suggest a key that the checks below accept.
        self.fields["key"].widget.attrs.update({
            "data-fallback": next_numbered_key(taken),
            "data-taken": json.dumps(sorted(taken | RESERVED_KEYS)),
            "autocomplete": "off",
        })

    def clean_key(self):
        key = self.cleaned_data["key"]
        if self.instance.pk:
            return self.instance.key
        if not _KEY.fullmatch(key) or "__" in key:
            raise forms.ValidationError(_("Use lower-case letters, digits and single underscores, "
                                          "starting with a letter."))
        if key in RESERVED_KEYS:
            raise forms.ValidationError(_("“%(key)s” is reserved.") % {"key": key})
        if Attribute.objects.filter(workspace=self.workspace, key=key).exists():
            raise forms.ValidationError(_("An attribute with this key already exists."))
        return key

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("type")
        choices = []
        for line in (cleaned.get("choices_text") or "").splitlines():
            line = line.strip()
            if line and line not in choices:
                choices.append(line)
        if kind in (T.CHOICE, T.MULTI_CHOICE):
            if not choices:
                self.add_error("choices_text", _("Give at least one choice."))
            elif kind == T.MULTI_CHOICE and any(_MULTI_SEPARATORS.search(c) for c in choices):
                self.add_error("choices_text",
                               _("Multiple choice values cannot contain ; | or 、."))
        else:
            choices = []
        self.instance.choices = choices
        return cleaned


def next_numbered_key(taken: set[str]) -> str:
    """The first free ``attr_N``, counting on from the attributes already defined."""
    number = len(taken) + 1
    while f"attr_{number}" in taken:
        number += 1
    return f"attr_{number}"


class ConsentForm(forms.ModelForm):
    class Meta:
        model = ConsentRecord
        fields = ["channel", "given_at", "method", "source", "wording_version", "ip",
                  "user_agent"]
        widgets = {"given_at": LocalDateTimeInput()}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["given_at"].initial = timezone.now().replace(microsecond=0)


class WithdrawConsentForm(forms.Form):
    withdrawn_method = forms.CharField(label=_("How"), max_length=100,
                                       initial=_("Operator"))


class AddToListForm(forms.Form):
    member_list = forms.ModelChoiceField(label=_("List"), queryset=MemberList.objects.none())

    def __init__(self, *args, workspace, exclude=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["member_list"].queryset = MemberList.objects.filter(
            workspace=workspace).exclude(pk__in=list(exclude))


class MemberListForm(forms.ModelForm):
    class Meta:
        model = MemberList
        fields = ["name", "description", "public"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.workspace = workspace

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        taken = MemberList.objects.filter(workspace=self.workspace, name=name)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(_("A list with this name already exists."))
        return name


class PasteEmailsForm(forms.Form):
    MAX_LINES = 10000

    emails = forms.CharField(label=_("Email addresses"), widget=forms.Textarea(attrs={"rows": 8}),
                             help_text=_("One per line."))

    def clean_emails(self):
        lines = [line.strip() for line in self.cleaned_data["emails"].splitlines()]
        lines = list(dict.fromkeys(line for line in lines if line))
        if not lines:
            raise forms.ValidationError(_("Enter at least one email address."))
        if len(lines) > self.MAX_LINES:
            raise forms.ValidationError(_("At most %(n)s addresses at a time.")
                                        % {"n": self.MAX_LINES})
        return lines


class SuppressionForm(forms.ModelForm):
    class Meta:
        model = Suppression
        fields = ["kind", "value", "reason", "source", "expires_at"]
        widgets = {"expires_at": LocalDateTimeInput()}
        help_texts = {"expires_at": _("Leave empty to suppress until removed.")}

    def __init__(self, *args, workspace, **kwargs):
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.fields["source"].initial = "manual"

    def clean(self):
        cleaned = super().clean()
        kind, raw = cleaned.get("kind"), cleaned.get("value")
        if kind and raw:
            normalize = values.normalize_email if kind == Suppression.Kind.EMAIL else (
                values.normalize_phone)
            try:
                cleaned["value"] = normalize(raw)
            except values.FieldError as error:
                self.add_error("value", error.message)
            else:
                if Suppression.objects.filter(workspace=self.workspace, kind=kind,
                                              value=cleaned["value"]).exists():
                    self.add_error("value", _("This is already suppressed."))
        expires = cleaned.get("expires_at")
        if expires and expires <= timezone.now():
            self.add_error("expires_at", _("The expiry must be in the future."))
        return cleaned


class MemberSearchForm(forms.Form):
    """The filters of the member table (read from the query string).

    ``field`` is checked by the view, not here: a masked viewer asking for a masked field must
    be told why the search is refused, not that the option is unknown.
    """

    q = forms.CharField(label=_("Search"), required=False, max_length=200)
    field = forms.CharField(label=_("In"), required=False, widget=forms.Select)
    status = forms.ChoiceField(label=_("Status"), required=False,
                               choices=[("", _("Any status"))] + list(Member.Status.choices))
    list = forms.ModelChoiceField(label=_("List"), required=False,
                                  queryset=MemberList.objects.none(), empty_label=_("Any list"))

    def __init__(self, *args, workspace, attributes, pii_visible: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["list"].queryset = MemberList.objects.filter(workspace=workspace)
        options = [("", _("All searchable fields"))]
        if pii_visible:
            options += [("email", _("Email")), ("phone", _("Phone"))]
        options += [(a.key, a.label) for a in attributes
                    if a.type in SEARCHABLE_TYPES and (pii_visible or not a.pii)]
        self.fields["field"].widget.choices = options
