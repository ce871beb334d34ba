"""Shared block pages: saving one, and the templates it says it is used by."""

import pytest

from tayori.content.models import SharedBlock, Template

pytestmark = pytest.mark.django_db


def test_a_saved_shared_block_opens_its_own_page_and_lists_its_templates(
        workspace, owner_client):
    response = owner_client.post("/content/shared/new/", {
        "name": "共通フッター", "b-count": "1", "b-0-kind": "text",
        "b-0-text": "お問い合わせ: 0120-000-000", "save": "1"})
    block = SharedBlock.objects.get(workspace=workspace)
    assert response.status_code == 302
    assert response["Location"] == f"/content/shared/{block.pk}/"
    assert block.block["text"] == "お問い合わせ: 0120-000-000"

    form = {"name": "お知らせ", "subject": "お知らせ", "charset": "utf-8", "b-count": "1",
            "v-count": "0", "b-0-kind": "shared", "b-0-shared_id": str(block.pk),
            "action": "save"}
    assert owner_client.post("/content/templates/new/", form).status_code == 302
    page = owner_client.get(f"/content/shared/{block.pk}/").content.decode()
    template = Template.objects.get(workspace=workspace)
    assert f"/content/templates/{template.pk}/" in page


def test_a_shared_block_without_a_name_is_refused(workspace, owner_client):
    response = owner_client.post("/content/shared/new/", {
        "name": "", "b-count": "1", "b-0-kind": "text", "b-0-text": "x", "save": "1"})
    assert response.status_code == 400
    assert not SharedBlock.objects.exists()


def test_a_shared_block_page_shows_its_own_name(workspace, owner_client):
    block = SharedBlock.objects.create(workspace=workspace, name="共通フッター",
                                       block={"kind": "text", "text": "x", "condition": None})
    page = owner_client.get(f"/content/shared/{block.pk}/").content.decode()
    assert "<h1>共通フッター</h1>" in page
    assert 'value="共通フッター"' in page
