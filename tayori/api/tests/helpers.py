"""Helpers for API tests: a JSON client bound to one key, and reading error bodies."""

import json


class Api:
    """A Django test client speaking JSON with one API key."""

    def __init__(self, client, raw: str | None):
        self.client = client
        self.raw = raw

    def _headers(self, extra):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {self.raw}"} if self.raw else {}
        headers.update(extra)
        return headers

    def get(self, path, params=None, **extra):
        return self.client.get(path, params or {}, **self._headers(extra))

    def post(self, path, body=None, **extra):
        return self.client.post(path, json.dumps(body if body is not None else {}),
                                content_type="application/json", **self._headers(extra))

    def patch(self, path, body=None, **extra):
        return self.client.patch(path, json.dumps(body if body is not None else {}),
                                 content_type="application/json", **self._headers(extra))

    def put(self, path, body=None, **extra):
        return self.client.put(path, json.dumps(body or {}), content_type="application/json",
                               **self._headers(extra))

    def delete(self, path, **extra):
        return self.client.delete(path, **self._headers(extra))


def error_of(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    return response.json()["error"]
