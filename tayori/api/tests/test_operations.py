"""Every API operation declares the permission it needs, and none answers without a key."""

import re

import pytest

from tayori.accounts.permissions import ALL
from tayori.api.auth import KeyAuth
from tayori.api.tests.helpers import error_of
from tayori.api.v1 import api


def operations():
    found = []
    for bound in api._get_bound_routers():
        for path, path_view in bound.path_operations.items():
            for operation in path_view.operations:
                route = "/api" + "/".join(p for p in (bound.prefix, path) if p).replace("//", "/")
                for method in operation.methods:
                    found.append((method, route, operation))
    return found


OPERATIONS = operations()


def test_the_api_has_the_operations_of_v1():
    assert len(OPERATIONS) >= 30
    assert all(route.startswith("/api/v1/") for _m, route, _op in OPERATIONS)


@pytest.mark.parametrize("method,route,operation", OPERATIONS,
                         ids=[f"{m} {r}" for m, r, _o in OPERATIONS])
def test_every_operation_declares_one_permission(method, route, operation):
    assert len(operation.auth_callbacks) == 1, f"{method} {route} has no KeyAuth"
    [auth] = operation.auth_callbacks
    assert isinstance(auth, KeyAuth)
    assert auth.permission in ALL
    assert operation.openapi_extra == {"x-permission": auth.permission}


@pytest.mark.parametrize("method,route,operation", OPERATIONS,
                         ids=[f"{m} {r}" for m, r, _o in OPERATIONS])
def test_no_operation_answers_without_a_key(client, db, method, route, operation):
    path = re.sub(r"\{(\w*key)\}", "plan", route)
    path = re.sub(r"\{\w+\}", "1", path)
    response = client.generic(method, path, "{}", content_type="application/json")
    assert response.status_code == 401, f"{method} {path}"
    assert error_of(response)["code"] == "missing_key"


WRITE_PERMISSIONS = {"members.edit", "members.import", "messages.send", "campaigns.create",
                     "campaigns.send", "notices.send", "webhooks.manage"}


def test_reads_need_a_view_permission_and_writes_a_write_permission():
    for method, route, operation in OPERATIONS:
        permission = operation.auth_callbacks[0].permission
        if method == "GET":
            assert permission in ("members.view", "deliveries.view", "webhooks.manage"), route
        else:
            assert permission in WRITE_PERMISSIONS, f"{method} {route}"


def test_the_spec_names_each_operations_permission(client, db):
    spec = client.get("/api/openapi.json").json()
    assert spec["components"]["securitySchemes"]["KeyAuth"] == {"type": "http",
                                                                "scheme": "bearer"}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert operation["security"] == [{"KeyAuth": []}], f"{method} {path}"
            assert f"**Permission:** `{operation['x-permission']}`" in operation["description"]
            assert "401" in operation["responses"]


def test_the_docs_page_is_served(client, db):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert b"/api/openapi.json" in response.content


def test_operation_ids_are_unique_and_readable(client, db):
    spec = client.get("/api/openapi.json").json()
    ids = [op["operationId"] for methods in spec["paths"].values() for op in methods.values()]
    assert len(ids) == len(set(ids))
    assert "members_bulk_upsert" in ids and "lists_add_members" in ids
