"""Importing templates from .eml, .mht and .html files: bodies, Japanese charsets, inline images,
attachments, script removal and the files that are refused."""

import base64
from email.header import Header
from email.message import EmailMessage
from email.mime.text import MIMEText

import pytest

from tayori.content.importing import MAX_IMPORT_BYTES, ImportRefused, import_message

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def newsletter() -> bytes:
    message = EmailMessage()
    message["Subject"] = "春のセール"
    message["From"] = "shop@example.jp"
    message.set_content("春のセールのお知らせです。\n")
    message.add_alternative('<p>春のセール</p><img src="cid:logo@shop">', subtype="html")
    message.get_payload()[1].add_related(PNG, "image", "png", cid="<logo@shop>",
                                         filename="logo.png")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="価格表.pdf")
    return message.as_bytes()


def test_an_eml_gives_subject_bodies_inline_image_and_attachment():
    mail = import_message("newsletter.eml", newsletter())
    assert mail.subject == "春のセール"
    assert mail.text == "春のセールのお知らせです。\n"
    assert mail.html.strip() == '<p>春のセール</p><img src="cid:logo@shop">'
    logo, pdf = mail.assets
    assert (logo.filename, logo.content_type, logo.data) == ("logo.png", "image/png", PNG)
    assert (logo.content_id, logo.inline) == ("logo@shop", True)
    assert (pdf.filename, pdf.content_type, pdf.data) == ("価格表.pdf", "application/pdf", PDF)
    assert (pdf.content_id, pdf.inline) == ("", False)
    assert mail.warnings == []


def test_the_extension_is_case_insensitive():
    assert import_message("NEWSLETTER.EML", newsletter()).subject == "春のセール"


def test_iso_2022_jp_subject_and_body_decode():
    message = MIMEText("こんにちは、山田様。\n", "plain", "iso-2022-jp")
    message["Subject"] = Header("【重要】ご案内", "iso-2022-jp")
    raw = message.as_bytes()
    assert b"=?iso-2022-jp?b?" in raw.lower() and b"\x1b$B" in raw
    mail = import_message("notice.eml", raw)
    assert mail.subject == "【重要】ご案内"
    assert mail.text == "こんにちは、山田様。\n"


def test_iso_2022_jp_with_windows_characters_decodes():
    # ① and ㈱ are NEC characters, which Windows mailers send in ISO-2022-JP anyway.
    subject = base64.b64encode(b"\x1b$B-!\x1b(B" + "ご案内".encode("iso2022_jp")).decode()
    raw = (f"Subject: =?ISO-2022-JP?B?{subject}?=\r\n"
           "Content-Type: text/plain; charset=ISO-2022-JP\r\n\r\n").encode()
    mail = import_message("notice.eml", raw + b"\x1b$B-j$3$s$K$A$O\x1b(B\r\n")
    assert mail.subject == "①ご案内"
    assert mail.text == "㈱こんにちは\r\n"
    assert mail.warnings == []


def test_shift_jis_subject_and_a_wrongly_labelled_body_decode():
    subject = base64.b64encode("①ご案内".encode("cp932")).decode()
    raw = (f"Subject: =?Shift_JIS?B?{subject}?=\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           ).encode() + "本文です。\r\n".encode("cp932")
    mail = import_message("notice.eml", raw)
    assert mail.subject == "①ご案内"
    assert mail.text.startswith("本文です。")
    assert mail.warnings == []


MHT = b"""From: <Saved by Blink>
Subject: =?utf-8?B?44Kq44O844OX44Oz?=
MIME-Version: 1.0
Content-Type: multipart/related; type="text/html"; boundary="----b"

------b
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: quoted-printable
Content-Location: https://shop.example.jp/news/index.html

<html><body><img src=3D"https://shop.example.jp/img/logo.png"><img src=3D"photo.png">=
<img src=3D'https://cdn.example.jp/remote.png'></body></html>
------b
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-Location: https://shop.example.jp/img/logo.png

%(png)s
------b
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-Location: https://shop.example.jp/news/photo.png

%(png)s
------b
Content-Type: text/css
Content-Location: https://shop.example.jp/news/site.css

body { color: red }
------b--
""" % {b"png": base64.b64encode(PNG)}


def test_an_mht_gets_content_ids_for_its_content_locations():
    mail = import_message("page.MHTML", MHT)
    assert mail.subject == "オープン"
    logo, photo = mail.assets
    assert (logo.filename, logo.content_id, logo.inline, logo.data) == (
        "logo.png", "img1@tayori", True, PNG)
    assert (photo.filename, photo.content_id) == ("photo.png", "img2@tayori")
    assert mail.html == ('<html><body><img src="cid:img1@tayori"><img src="cid:img2@tayori">'
                         "<img src='https://cdn.example.jp/remote.png'></body></html>")
    assert mail.warnings == ["Skipped parts a mail cannot use: site.css."]


def test_an_mht_saved_on_windows_resolves_paths_relative_to_the_page():
    mht = b"""MIME-Version: 1.0
Content-Type: multipart/related; boundary="b"

--b
Content-Type: text/html; charset="shift_jis"
Content-Location: file:///C:/Users/me/page.htm

<title>%(title)s</title><img src="page_files/image001.png"><img src="../pics/a%%20b.png">
--b
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-Location: file:///C:/Users/me/page_files/image001.png

%(png)s
--b
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-Location: file:///C:/Users/pics/a b.png

%(png)s
--b--
""" % {b"png": base64.b64encode(PNG), b"title": "案内".encode("cp932")}
    mail = import_message("page.mht", mht)
    assert mail.subject == "案内"  # no Subject header: the page title
    assert mail.html == ('<title>案内</title><img src="cid:img1@tayori">'
                         '<img src="cid:img2@tayori">')
    assert [asset.filename for asset in mail.assets] == ["image001.png", "a b.png"]
    assert mail.warnings == []


def test_an_html_file_takes_its_title_and_uploaded_images():
    page = """<!doctype html><html><head><title>  夏の &amp; お知らせ </title></head>
<body><img alt=logo src="images/logo.png" width=10><img src='./missing.jpg'>
<img src="https://cdn.example.jp/a.png"><img src="cid:elsewhere"></body></html>"""
    mail = import_message("summer.html", page.encode(),
                          [("logo.png", PNG), ("notes.txt", b"hello"), ("extra.gif", b"GIF89a")])
    assert mail.subject == "夏の & お知らせ"
    assert '<img alt=logo src="cid:img1@tayori" width=10>' in mail.html
    assert "<img src='./missing.jpg'>" in mail.html
    assert mail.html.replace('src="cid:img1@tayori"', 'src="images/logo.png"') == page
    logo, extra = mail.assets
    assert (logo.filename, logo.content_type, logo.content_id, logo.inline) == (
        "logo.png", "image/png", "img1@tayori", True)
    assert (extra.content_type, extra.content_id) == ("image/gif", "img2@tayori")
    assert mail.warnings == [
        "“notes.txt” is not an image (PNG, JPEG, GIF, WebP or SVG) and was skipped.",
        "The HTML refers to images that were not included: ./missing.jpg, cid:elsewhere.",
        "Images not used in the HTML: extra.gif.",
    ]


def test_an_html_file_with_a_bom_or_in_shift_jis_decodes():
    assert import_message("a.htm", "\ufeff<title>ようこそ</title>".encode()).subject == "ようこそ"
    page = '<meta charset="Shift_JIS"><title>ご案内①</title><p>髙橋様</p>'
    mail = import_message("a.html", page.encode("cp932"))
    assert mail.subject == "ご案内①"
    assert mail.html == page
    euc = '<meta http-equiv="Content-Type" content="text/html; charset=EUC-JP"><p>日本語</p>'
    assert import_message("b.html", euc.encode("euc_jp")).html == euc


def test_scripts_and_event_attributes_are_removed_and_the_rest_kept():
    page = ('<p class="a" onclick="go()">Hi</p><script type="text/javascript">if (a<b) x();'
            '</script><body ONLOAD=init() style=\'x\'><img src="x.png" onerror="y()"/>'
            "<SCRIPT src=a.js></SCRIPT>")
    mail = import_message("a.html", page.encode(), [("x.png", PNG)])
    assert mail.html == ('<p class="a">Hi</p><body style=\'x\'><img src="cid:img1@tayori"/>')
    assert mail.warnings == ["Removed 2 <script> elements and 3 on… event attributes from the "
                             "HTML; mail clients ignore them."]


def test_scripts_are_removed_from_eml_html_too():
    message = EmailMessage()
    message["Subject"] = "x"
    message.set_content('<p onmouseover="x()">Hi</p><script>x()</script>', subtype="html")
    mail = import_message("a.eml", message.as_bytes())
    assert mail.html.strip() == "<p>Hi</p>"
    assert "Removed 1 <script> element and 1 on… event attribute" in mail.warnings[0]


def test_unknown_extensions_are_refused():
    with pytest.raises(ImportRefused, match=r"\.eml, \.mht/\.mhtml or \.html/\.htm"):
        import_message("newsletter.pdf", PDF)
    with pytest.raises(ImportRefused):
        import_message("newsletter", b"")


def test_oversize_uploads_are_refused():
    with pytest.raises(ImportRefused, match="11.0 MB; the limit is 10 MB"):
        import_message("a.html", b"<p>x</p>", [("big.png", b"0" * (11 * 1024 * 1024 - 8))])
    assert import_message("a.html", b"<p>" + b"x" * (MAX_IMPORT_BYTES - 3)).html


def test_mail_without_a_body_and_files_that_are_not_mail_are_refused():
    with pytest.raises(ImportRefused, match="neither an HTML nor a text body"):
        import_message("empty.eml", b"Subject: nothing\r\n\r\n  \r\n")
    with pytest.raises(ImportRefused, match="does not look like an email"):
        import_message("renamed.eml", PDF)
    with pytest.raises(ImportRefused, match="empty"):
        import_message("blank.html", b"  \n")
