"""Idempotency-Key on creating calls: a retry gets the first answer, a reused key with another
request is refused, and racing identical calls create exactly one delivery."""

import datetime as dt
import threading
import time

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from tayori.accounts.models import IdempotentRequest
from tayori.api.tests.helpers import Api, error_of
from tayori.delivery import sending
from tayori.delivery.models import Delivery
from tayori.members.models import Member

MESSAGE = {"to": "taro@example.jp", "from_address": "support@example.jp",
           "subject": "ご注文ありがとうございます", "text": "注文番号 {{ data.order }}",
           "data": {"order": "A-1"}}


def test_the_same_request_again_answers_the_first_result(api):
    first = api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="order-A-1")
    again = api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="order-A-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Delivery.objects.count() == 1


def test_another_key_is_another_message(api):
    api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="a")
    api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="b")
    api.post("/api/v1/messages", MESSAGE)
    assert Delivery.objects.count() == 3


def test_the_same_key_with_another_body_is_refused(api):
    api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k")
    other = api.post("/api/v1/messages", {**MESSAGE, "data": {"order": "A-2"}},
                     HTTP_IDEMPOTENCY_KEY="k")
    assert other.status_code == 422
    assert error_of(other)["code"] == "idempotency_key_reused"
    assert error_of(other)["field"] == "Idempotency-Key"
    elsewhere = api.post("/api/v1/members", {"email": "x@example.jp"}, HTTP_IDEMPOTENCY_KEY="k")
    assert elsewhere.status_code == 422  # same body rules apply across paths
    assert Delivery.objects.count() == 1 and not Member.objects.exists()


def test_a_call_still_running_answers_409(api, workspace):
    api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k")
    IdempotentRequest.objects.update(status_code=None, body=b"")
    running = api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k")
    assert running.status_code == 409 and running["Retry-After"] == "1"
    assert error_of(running)["code"] == "idempotency_in_progress"


def test_an_abandoned_call_frees_its_key(api):
    api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k")
    IdempotentRequest.objects.update(status_code=None,
                                     created_at=timezone.now() - dt.timedelta(minutes=6))
    assert api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    assert Delivery.objects.count() == 2


def test_keys_are_kept_24_hours(api):
    api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k")
    IdempotentRequest.objects.update(created_at=timezone.now() - dt.timedelta(hours=23))
    assert api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k")["Idempotent-Replayed"]
    IdempotentRequest.objects.update(created_at=timezone.now() - dt.timedelta(hours=25))
    fresh = api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k")
    assert fresh.status_code == 201 and "Idempotent-Replayed" not in fresh
    assert Delivery.objects.count() == 2


def test_validation_errors_are_kept_but_refusals_are_not(api, client, issue_key):
    bad = {**MESSAGE, "to": "not an address"}
    first = api.post("/api/v1/messages", bad, HTTP_IDEMPOTENCY_KEY="v")
    again = api.post("/api/v1/messages", bad, HTTP_IDEMPOTENCY_KEY="v")
    assert first.status_code == again.status_code == 422 and again["Idempotent-Replayed"]
    # A key without the permission is refused; the key stays free for a call that may run.
    _key, raw = issue_key({"members.view"})
    refused = Api(client, raw).post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="p")
    assert refused.status_code == 403
    assert not IdempotentRequest.objects.filter(key="p").exists()


def test_a_server_error_after_the_effect_undoes_it_so_a_retry_makes_one(api, monkeypatch):
    from tayori.api import messages

    real = messages.audit.record
    calls = []

    def broken_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("the audit log's disk is full")
        return real(*args, **kwargs)

    monkeypatch.setattr(messages.audit, "record", broken_once)
    failed = api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k")
    assert failed.status_code == 500 and not Delivery.objects.exists()
    retried = api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k")
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried
    assert Delivery.objects.count() == 1


def test_kept_answers_are_sealed(api):
    api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k")
    stored = bytes(IdempotentRequest.objects.get().body)
    assert b"taro@example.jp" not in stored and b"queued" not in stored


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "日本語", "tab\there"])
def test_a_malformed_key_is_refused(api, key):
    response = api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 422 and error_of(response)["field"] == "Idempotency-Key"
    assert not Delivery.objects.exists()


def test_keys_belong_to_their_api_key(api, outsider_api, client, issue_key):
    assert api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    theirs = outsider_api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k")
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs
    # Another key of the same workspace never reads the first key's answer.
    colleague = Api(client, issue_key()[1])
    mine = colleague.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k")
    assert mine.status_code == 201 and "Idempotent-Replayed" not in mine
    assert Delivery.objects.count() == 3


def test_a_replay_is_refused_from_a_network_the_key_may_not_use(client, issue_key):
    key, raw = issue_key()
    api = Api(client, raw)
    assert api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    key.allowed_cidrs = ["192.0.2.0/24"]
    key.save()
    again = api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="k")
    assert again.status_code == 403 and "Idempotent-Replayed" not in again


def test_every_creating_call_takes_the_key(api):
    body = {"email": "hanako@example.jp"}
    first = api.post("/api/v1/members", body, HTTP_IDEMPOTENCY_KEY="m")
    again = api.post("/api/v1/members", body, HTTP_IDEMPOTENCY_KEY="m")
    assert first.status_code == 201 and again.json() == first.json()
    assert Member.objects.count() == 1


def test_the_spec_names_the_header_on_posts(api):
    spec = api.get("/api/openapi.json").json()
    post = spec["paths"]["/api/v1/messages"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert not any(p.get("name") == "Idempotency-Key"
                   for p in spec["paths"]["/api/v1/messages/{delivery_id}"]["get"].get(
                       "parameters", []))


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="SQLite's in-memory test database locks whole tables across threads")
@pytest.mark.django_db(transaction=True)
def test_racing_identical_calls_create_exactly_one_delivery(issue_key, monkeypatch):
    """Eight clients send the same keyed request at once (each on its own connection); the
    first to insert the key runs, slowly, while the others arrive."""
    _key, raw = issue_key()
    original = sending.enqueue_messages

    def slow(*args, **kwargs):
        time.sleep(0.3)
        return original(*args, **kwargs)

    monkeypatch.setattr(sending, "enqueue_messages", slow)
    start = threading.Barrier(8)
    answers = []

    def call():
        api = Api(Client(), raw)
        start.wait()
        try:
            answers.append(api.post("/api/v1/messages", MESSAGE, HTTP_IDEMPOTENCY_KEY="race"))
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Delivery.objects.count() == 1
    codes = sorted(a.status_code for a in answers)
    assert codes.count(201) >= 1 and set(codes) <= {201, 409}
    created = [a for a in answers if a.status_code == 201]
    assert {a.json()["id"] for a in created} == {Delivery.objects.get().pk}
    assert sum(1 for a in created if "Idempotent-Replayed" not in a) == 1
