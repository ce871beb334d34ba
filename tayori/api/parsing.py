"""Reading JSON request bodies: strict JSON, and only text that the databases can store."""

import json

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja.parser import Parser


class BodyError(ValueError):
    """A JSON body that parses but cannot be stored (NUL characters, lone surrogates)."""

    def __init__(self, path: str | None, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _check_text(value, path: list) -> None:
    """Databases refuse NUL characters and unpaired surrogates; refuse them here, with a field."""
    if isinstance(value, str):
        bad = "\x00" in value
        if not bad:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                bad = True
        if bad:
            raise BodyError(".".join(str(p) for p in path) or None,
                            _("Text may not contain NUL characters or unpaired surrogates."))
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, [*path, key])
            _check_text(item, [*path, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, [*path, index])


class TayoriParser(Parser):
    def parse_body(self, request: HttpRequest):
        # NaN and Infinity are not JSON and no database column holds them.
        data = json.loads(request.body, parse_constant=_reject_constant)
        _check_text(data, [])
        return data
