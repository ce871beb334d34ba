from django.urls import reverse


def test_a_missing_page_is_a_styled_404_inside_the_layout(owner_client):
    response = owner_client.get("/members/999999999/")
    assert response.status_code == 404
    assert b'class="sidebar"' in response.content


def test_a_forbidden_page_explains_the_missing_permission(analyst_client):
    response = analyst_client.get(reverse("accounts:audit"))
    assert response.status_code == 403
    assert b'class="sidebar"' in response.content
    assert "ロール".encode() in response.content


def test_anonymous_visitors_get_the_bare_404(client, db):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert b'class="sidebar"' not in response.content
