"""A new operator signs in and sees the Japanese dashboard."""

from conftest import PASSWORD


def test_it_signs_in_and_shows_the_japanese_dashboard(page, owner, workspace):
    page.goto("/")
    assert "/login/" in page.url
    page.get_by_label("メールアドレス").fill(owner.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url("**/")
    assert page.locator("h1").inner_text() == workspace.name
    # the status chart is drawn by Chart.js from the page's data
    assert page.evaluate("() => Chart.getChart(document.getElementById('status-chart')) !== undefined")


def test_a_wrong_password_shows_an_error(page, owner):
    page.goto("/login/")
    page.get_by_label("メールアドレス").fill(owner.email)
    page.get_by_label("パスワード").fill("wrong password")
    page.get_by_role("button", name="ログイン").click()
    assert page.get_by_role("alert").is_visible()
