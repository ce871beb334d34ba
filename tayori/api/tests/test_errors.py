"""Every failure under /api/ is JSON in one shape, with the right status; never an HTML page."""

import pytest

from tayori.api.tests.helpers import error_of

MEMBERS = "/api/v1/members"


@pytest.mark.parametrize("path", ["/api/", "/api/v1/", "/api/v1/nothing-here", "/api/v2/members",
                                  "/api/v1/members/1/nothing"])
def test_unknown_paths_are_a_json_404(api, path):
    response = api.get(path)
    assert response.status_code == 404
    error = error_of(response)
    assert (error["code"], error["field"]) == ("not_found", None)
    assert error["message"]  # in the workspace's language


def test_a_post_to_an_unknown_path_is_a_json_404_not_a_csrf_page(client, db):
    response = client.post("/api/v1/nothing", "{}", content_type="application/json")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_a_wrong_method_is_a_json_405_naming_the_allowed_ones(api):
    response = api.put(MEMBERS, {})
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "POST"}


@pytest.mark.parametrize("body", ['{"email": ', "[1, 2", '{"email": NaN}', '{"a": Infinity}'])
def test_a_body_that_is_not_json_is_a_400(api, body):
    response = api.client.post(MEMBERS, body, content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {api.raw}")
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_request"


def test_a_body_of_the_wrong_shape_is_a_422(api):
    response = api.client.post(MEMBERS, "[1, 2]", content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {api.raw}")
    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_error"


@pytest.mark.parametrize("raw,field", [
    ('{"email": "a\\u0000b@example.jp"}', "email"),
    ('{"email": "a@example.jp", "attributes": {"note": "\\ud800"}}', "attributes.note"),
    ('{"attributes": {"k\\u0000": 1}}', "attributes.k\x00"),
])
def test_text_no_database_can_store_is_a_422_naming_the_field(api, raw, field):
    response = api.client.post(MEMBERS, raw, content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {api.raw}")
    assert response.status_code == 422
    assert error_of(response)["field"] == field


def test_a_nul_character_in_the_query_is_a_422(api):
    response = api.get(f"{MEMBERS}/lookup?email=a%00b@example.jp")
    assert response.status_code == 422
    assert error_of(response)["field"] == "email"


def test_a_validation_error_lists_every_problem(api):
    response = api.post(MEMBERS, {"email": 1, "status": "x", "extra": True})
    error = error_of(response)
    assert response.status_code == 422
    assert {e["field"] for e in error["errors"]} == {"email", "status", "extra"}
    assert error["field"] == error["errors"][0]["field"]


def test_a_crash_is_a_json_500_and_is_logged(api, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("tayori.api.members.render_members", explode)
    response = api.get(MEMBERS)
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "server_error"
    assert "disk on fire" not in error["message"]
    assert "disk on fire" in caplog.text


def test_japanese_text_is_sent_as_utf8(api, workspace):
    from tayori.members.models import MemberList

    MemberList.objects.create(workspace=workspace, name="会員")
    response = api.get("/api/v1/lists")
    assert "会員".encode() in response.content
