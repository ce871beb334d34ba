"""The walk a new company takes through Tayori, in Chromium, as its operators would click it.

The owner signs in, defines three attributes, imports a Shift_JIS file exported from Excel with
one bad row, reads the error report, builds a segment while its live count follows each change,
and signs out; an Analyst then signs in, sees masked contacts and exports a file whose personal
fields are masked. Locators are element ids, names, URLs and ``data-*`` hooks, so the walk keeps
working while the Japanese wording is revised.
"""

import csv
import io
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from conftest import PASSWORD

SCREENSHOTS = Path(os.environ["TAYORI_VAR_DIR"]) / "screenshots"

ATTRIBUTES = [
    # label, key, type, choices, pii
    ("氏名", "name", "text", [], True),
    ("都道府県", "pref", "choice", ["東京都", "大阪府", "北海道"], False),
    ("誕生日", "birthday", "date", [], False),
]

# As Excel saves it: Shift_JIS (CP932), CRLF, dates written three different ways. Line 5 (the
# header is line 1) has a 30 February.
MEMBERS_CSV = "\r\n".join([
    "メールアドレス,氏名,都道府県,誕生日",
    "taro.yamada@example.jp,山田太郎,東京都,1985/04/01",
    "hanako.sato@example.jp,佐藤花子,大阪府,1990-12-24",
    "jiro.suzuki@example.jp,鈴木次郎,東京都,1978/7/7",
    "yui.takahashi@example.jp,髙橋結衣,北海道,2001/02/30",
    "ken.tanaka@example.co.jp,田中健,大阪府,1969-11-03",
    "mai.ito@example.jp,伊藤舞,北海道,1995年3月15日",
]) + "\r\n"
BAD_LINE, BAD_COLUMN, BAD_VALUE = "5", "誕生日", "2001/02/30"
STORED_EMAILS = ["taro.yamada@example.jp", "hanako.sato@example.jp", "jiro.suzuki@example.jp",
                 "ken.tanaka@example.co.jp", "mai.ito@example.jp"]
# What a role without the PII right sees instead: two characters of the local part, the domain.
MASKED_EMAILS = {f"{email[:2]}***@{email.split('@')[1]}" for email in STORED_EMAILS}


@pytest.fixture
def queued_imports(monkeypatch) -> list[int]:
    """Import jobs the UI starts are queued here instead of running at once, so the walk can
    run them while the job page watches."""
    from tayori.members import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks, "import_members", queued.append)
    return queued


@pytest.fixture
def members_file(tmp_path) -> Path:
    path = tmp_path / "会員リスト.csv"
    path.write_bytes(MEMBERS_CSV.encode("cp932"))
    return path


def test_it_walks_from_first_sign_in_to_a_masked_export(page: Page, owner, teammate,
                                                        members_file, queued_imports):
    sign_in(page, owner.email)
    define_attributes(page)
    job_url = import_members(page, members_file, queued_imports)
    read_error_report(page, job_url)
    build_segment(page)
    sign_out(page)

    sign_in(page, teammate.email)
    see_masked_members(page)
    export_masked(page)


# ---- steps ----------------------------------------------------------------------------------


def sign_in(page: Page, email: str) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/"))
    page.locator("#id_email").fill(email)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    expect(page.locator("aside.sidebar")).to_be_visible()


def sign_out(page: Page) -> None:
    page.locator("form[action='/logout/'] button").click()
    expect(page).to_have_url(re.compile(r"/login/"))


def define_attributes(page: Page) -> None:
    page.locator("aside.sidebar a[href='/members/attributes/']").click()
    for label, key, kind, choices, pii in ATTRIBUTES:
        page.locator("a[href='/members/attributes/new/']").click()
        page.locator("#id_key").fill(key)
        page.locator("#id_label").fill(label)
        page.locator("#id_type").select_option(kind)
        if choices:
            page.locator("#id_choices_text").fill("\n".join(choices))
        page.locator("#id_pii").set_checked(pii)
        page.locator("main form button[type=submit]").click()
        expect(page).to_have_url(re.compile(r"/members/attributes/$"))
    rows = page.locator("main table tbody tr")
    expect(rows).to_have_count(3)
    for index, (label, key, _kind, _choices, pii) in enumerate(ATTRIBUTES):
        expect(rows.nth(index).locator("td").nth(1)).to_have_text(label)
        expect(rows.nth(index).locator("code")).to_have_text(key)
        expect(rows.nth(index).locator(".badge.bounced")).to_have_count(1 if pii else 0)
    assert_japanese_renders(page, rows.nth(0).locator("td").nth(1))
    screenshot(page, "1-attributes")


def import_members(page: Page, members_file: Path, queued_imports: list[int]) -> str:
    """Upload, check the guessed mapping, dry-run, start; returns the job page's URL."""
    page.locator("aside.sidebar a[href='/members/jobs/']").click()
    page.locator("a[href='/members/jobs/import/']").click()
    expect(page.locator("#id_encoding")).to_have_value("auto")
    page.locator("#id_file").set_input_files(members_file)
    page.locator("main form button[type=submit]").click()

    # Mapping: detected as CP932, every Japanese header matched to its field.
    expect(page).to_have_url(re.compile(r"/members/jobs/\d+/mapping/$"))
    mapping_url = page.url
    expect(page.locator("h1")).to_contain_text("会員リスト.csv")
    expect(page.locator("select[name=encoding]")).to_have_value("cp932")
    expect_mapping(page)
    expect(page.get_by_text("山田太郎")).to_be_visible()  # sample values decoded

    page.locator("button[name=action][value=dry_run]").click()
    dry_run = page.locator("#dry-run")
    expect(dry_run).to_be_visible()
    preview = dry_run.locator("[data-testid=dry-run-preview] tbody tr")
    expect(preview).to_have_count(6)
    expect(dry_run.locator(".badge.blocked")).to_have_count(1)
    expect(dry_run.locator(".badge.active")).to_have_count(5)
    expect(preview.nth(3).locator("td").first).to_have_text(BAD_LINE)
    expect(preview.nth(3).locator(".badge.blocked")).to_have_count(1)
    errors = dry_run.locator("[data-testid=dry-run-errors] tbody tr")
    expect(errors).to_have_count(1)
    expect(errors.locator("td").nth(0)).to_have_text(BAD_LINE)
    expect(errors.locator("td").nth(1)).to_have_text(BAD_COLUMN)
    expect(errors.locator("td").nth(2)).to_contain_text(BAD_VALUE)
    screenshot(page, "2-dry-run")
    # A dry run stores nothing (the table holds only its "no members" row).
    page.locator("aside.sidebar a[href='/members/']").click()
    expect(page.locator("main table tbody tr")).to_have_count(1)
    expect(page.locator("main table tbody a")).to_have_count(0)
    page.goto(mapping_url)  # the mapping is kept with the job
    expect_mapping(page)

    page.locator("button[name=action][value=start]").click()
    expect(page).to_have_url(re.compile(r"/members/jobs/\d+/$"))
    job_url = page.url
    [job_id] = queued_imports
    assert job_url.endswith(f"/members/jobs/{job_id}/")
    run_import_watching_progress(page, job_id)
    live = page.locator("#job-live")
    expect(live.locator("[data-testid=job-created]")).to_have_text("5")
    expect(live.locator("[data-testid=job-failed]")).to_have_text("1")
    errors = live.locator("[data-testid=job-errors] tbody tr")
    expect(errors).to_have_count(1)
    expect(errors.locator("td").nth(0)).to_have_text(BAD_LINE)
    expect(errors.locator("td").nth(1)).to_have_text(BAD_COLUMN)
    expect(errors.locator("td").nth(2)).to_have_text(BAD_VALUE)
    screenshot(page, "3-import-done")

    # The list of jobs says the same: 5 succeeded, 1 failed.
    page.locator("a[href='/members/jobs/']").first.click()
    numbers = page.locator("main table tbody tr").first.locator("td.num")
    expect(numbers.nth(0)).to_have_text("5")
    expect(numbers.nth(1)).to_have_text("1")
    return job_url


def run_import_watching_progress(page: Page, job_id: int) -> None:
    """Run the queued import two rows at a time, as the worker would, and after each chunk wait
    until the page's polling (htmx, every second) shows the progress written so far."""
    from tayori.members import importing

    live = page.locator("#job-live")
    bar = live.locator("[role=progressbar]")
    expect(bar).to_have_attribute("aria-valuenow", "0")
    expect(live).to_have_attribute("hx-get", re.compile(r"/progress/$"))
    shown = []

    def watch(job) -> None:
        expect(bar).to_have_attribute("aria-valuenow", str(job.percent))
        shown.append(job.percent)

    # Polls are held by this route while the job writes, and answered only while ``watch``
    # waits, so the server never reads the database in the middle of a chunk.
    page.route("**/progress/", lambda route: route.continue_())
    importing.execute(job_id, chunk_rows=2, on_progress=watch)
    page.unroute("**/progress/")
    assert shown == [33, 66, 100, 100], shown
    # Once the job is done the card stops polling.
    expect(live).not_to_have_attribute("hx-get", re.compile("."))
    expect(live.locator(".badge").first).to_have_class(re.compile(r"\bactive\b"))


def expect_mapping(page: Page) -> None:
    expected = {"メールアドレス": "email", "氏名": "name", "都道府県": "pref", "誕生日": "birthday"}
    for index, (header, field) in enumerate(expected.items()):
        expect(page.locator(f"label[for=id_col_{index}]")).to_have_text(header)
        expect(page.locator(f"select[name=col_{index}]")).to_have_value(field)
    expect(page.locator("select[name=mode]")).to_have_value("upsert")


def read_error_report(page: Page, job_url: str) -> None:
    page.goto(job_url)
    with page.expect_download() as info:
        page.locator("#job-live a[href$='/errors.csv']").click()
    download = info.value
    assert download.suggested_filename == "会員リスト-errors.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_bytes().decode("utf-8-sig"))))
    assert len(rows) == 2, rows  # a header and the one bad row
    assert len(rows[0]) == 4
    line, column, value, reason = rows[1]
    assert (line, column, value) == (BAD_LINE, BAD_COLUMN, BAD_VALUE)
    assert BAD_VALUE in reason and "YYYY-MM-DD" in reason


def build_segment(page: Page) -> None:
    page.locator("aside.sidebar a[href='/members/segments/']").click()
    page.locator("main a[href='/members/segments/new/']").first.click()
    count = page.locator("#segment-live [data-count]")
    expect(count).to_have_attribute("data-count", "5")  # no conditions: every member

    page.locator("#id_name").fill("東京都の会員")
    page.locator("[data-focus=add-root]").click()
    page.locator("[data-focus=field-1]").select_option("pref")
    expect(page.locator("[data-focus=value-1]")).to_have_value("東京都")
    expect(count).to_have_attribute("data-count", "2")
    page.locator("[data-focus=value-1]").select_option("北海道")
    expect(count).to_have_attribute("data-count", "1")
    page.locator("[data-focus=value-1]").select_option("東京都")
    expect(count).to_have_attribute("data-count", "2")

    # Born before 1980, AND: only 鈴木次郎 (東京都, 1978).
    page.locator("[data-focus=add-root]").click()
    page.locator("[data-focus=field-2]").select_option("birthday")
    page.locator("[data-focus=op-2]").select_option("lt")
    page.locator("[data-focus=value-2]").fill("1980-01-01")
    expect(count).to_have_attribute("data-count", "1")
    expect(page.locator("#segment-live table tbody tr")).to_have_count(1)
    expect(page.locator("#segment-live table tbody")).to_contain_text("鈴木次郎")

    # OR: 東京都 or born before 1980 adds 田中健 (大阪府, 1969).
    page.locator("[data-focus=join-root]").select_option("or")
    expect(count).to_have_attribute("data-count", "3")
    screenshot(page, "4-segment-builder")

    page.locator("#segment-form button[type=submit].primary").click()
    expect(page).to_have_url(re.compile(r"/members/segments/\d+/$"))
    expect(page.locator("h1")).to_have_text("東京都の会員")
    expect(page.locator("#segment-live [data-count]")).to_have_attribute("data-count", "3")
    page.locator("a[href='/members/segments/']").first.click()
    expect(page.locator("main table tbody tr").first.locator(".segment-count")).to_have_text("3")


def see_masked_members(page: Page) -> None:
    page.locator("aside.sidebar a[href='/members/']").click()
    table = page.locator("main table")
    expect(table.locator("tbody tr")).to_have_count(5)
    expect(table.locator("thead")).to_contain_text("氏名")
    text = table.inner_text()
    assert not any(email in text for email in STORED_EMAILS)
    assert all(masked in text for masked in MASKED_EMAILS)
    assert "山田太郎" not in text and "***" in text
    assert "東京都" in text and "北海道" in text  # not personal: shown in clear
    assert_japanese_renders(page, table.locator("thead th", has_text="都道府県"))
    # Attribute pages are not for this role.
    expect(page.locator("aside.sidebar a[href='/members/attributes/']")).to_have_count(0)
    screenshot(page, "5-analyst-members")


def export_masked(page: Page) -> None:
    page.locator("aside.sidebar a[href='/members/jobs/']").click()
    expect(page.locator("a[href='/members/jobs/import/']")).to_have_count(0)
    page.locator("a[href='/members/jobs/export/']").click()
    expect(page.locator("input[name=selection][value=all]")).to_be_checked()
    page.locator("#id_encoding").select_option("cp932")
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/members/jobs/\d+/$"))
    with page.expect_download() as info:
        page.locator("#job-live a[href$='/download/']").click()
    data = Path(info.value.path()).read_bytes().decode("cp932")
    header, *rows = list(csv.reader(io.StringIO(data)))
    assert len(rows) == 5
    email, name, pref = 0, header.index("氏名"), header.index("都道府県")
    assert {row[email] for row in rows} == MASKED_EMAILS, rows
    assert {row[name] for row in rows} == {"***"}
    assert sorted(row[pref] for row in rows) == sorted(["東京都", "大阪府", "東京都", "大阪府",
                                                        "北海道"])
    assert "1978-07-07" in {row[header.index("誕生日")] for row in rows}
    screenshot(page, "6-analyst-export")


# ---- helpers --------------------------------------------------------------------------------


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"walk-{name}.png", full_page=True)


def assert_japanese_renders(page: Page, element: Locator) -> None:
    """The element's Japanese text is on screen and drawn with real glyphs: with no Japanese
    font every character becomes the same empty box, so two characters paint the same pixels."""
    expect(element).to_be_visible()
    text = element.inner_text().strip()
    assert len(text) >= 2 and text[0] != text[1], text
    first, second = text[0], text[1]
    same = page.evaluate("""([a, b]) => {
        const font = getComputedStyle(document.body).font;
        const paint = (ch) => {
            const canvas = document.createElement("canvas");
            canvas.width = canvas.height = 64;
            const context = canvas.getContext("2d");
            context.font = font.replace(/\\d+(\\.\\d+)?px/, "48px");
            context.fillText(ch, 4, 52);
            return Array.from(context.getImageData(0, 0, 64, 64).data).join(",");
        };
        return paint(a) === paint(b);
    }""", [first, second])
    assert not same, f"{first} and {second} paint the same pixels: no Japanese font?"
