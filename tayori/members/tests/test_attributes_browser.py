"""The attribute form in Chromium: the label comes first and suggests the key, the choices box
appears only for the types that use it, and each checkbox sits beside its label."""

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from tayori.members.models import Attribute

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def signed_in(page, owner, workspace, live_server):
    workspace.language = "en"
    workspace.save()
    client = Client()
    client.force_login(owner)
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME,
                               "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                               "url": live_server.url}])
    return page


def test_the_label_suggests_a_key_until_one_is_typed(signed_in, workspace):
    Attribute.objects.create(workspace=workspace, key="plan", label="Plan")
    page = signed_in
    page.goto("/members/attributes/new/")
    assert page.locator("main form .field").first.locator("#id_label").count() == 1
    label, key = page.locator("#id_label"), page.locator("#id_key")

    label.fill("Favourite Colour")
    expect(key).to_have_value("favourite_colour")
    label.fill("Ｐｌａｎ")  # full-width letters, and a key already taken
    expect(key).to_have_value("plan_2")
    label.fill("ID")  # a reserved key
    expect(key).to_have_value("id_2")
    label.fill("2nd café")  # a key starts with a letter; accents fall away
    expect(key).to_have_value("attr_2nd_cafe")
    label.fill("都道府県")  # nothing to spell a key with: the next numbered one
    expect(key).to_have_value("attr_2")
    label.fill("")
    expect(key).to_have_value("")

    # A key the operator types is theirs; clearing it lets the label suggest again.
    key.fill("pref")
    label.fill("Prefecture")
    expect(key).to_have_value("pref")
    key.fill("")
    label.fill("Prefecture")
    expect(key).to_have_value("prefecture")

    label.fill("都道府県")
    page.locator("main form button[type=submit]").click()
    page.wait_for_url("**/members/attributes/")
    assert Attribute.objects.get(workspace=workspace, label="都道府県").key == "attr_2"


def test_the_choices_box_shows_only_for_choice_types(signed_in):
    page = signed_in
    page.goto("/members/attributes/new/")
    choices = page.locator("#id_choices_text")
    expect(choices).to_be_hidden()
    for kind, shown in [("choice", True), ("number", False), ("multi_choice", True),
                        ("text", False)]:
        page.locator("#id_type").select_option(kind)
        expect(choices).to_be_visible() if shown else expect(choices).to_be_hidden()

    # The server still asks for choices, and the box stays open to show why.
    page.locator("#id_label").fill("Plan")
    page.locator("#id_type").select_option("choice")
    page.locator("main form button[type=submit]").click()
    expect(page.locator(".field.has-error #id_choices_text")).to_be_visible()


def test_each_checkbox_sits_beside_its_label(signed_in):
    page = signed_in
    page.goto("/members/attributes/new/")
    for name in ("required", "unique", "pii"):
        box = page.locator(f"#id_{name}").bounding_box()
        label = page.locator(f"label[for=id_{name}]").bounding_box()
        assert box["x"] + box["width"] <= label["x"], name  # the box first, then its label
        middle = box["y"] + box["height"] / 2
        assert label["y"] <= middle <= label["y"] + label["height"], name  # on one line
