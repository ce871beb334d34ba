"""Rendering of what campaigns add: condition results per recipient, ISO-2022-JP mail with a
per-recipient fallback to UTF-8, and inline images in multipart/related."""

import email
import email.header
import email.policy

from tayori.delivery.rendering import Attachment, MessageSpec, compile_message, jis_header

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def parse(rendered):
    message = email.message_from_bytes(rendered.data, policy=email.policy.default)
    assert not message.defects
    return message


def spec(**fields):
    return MessageSpec(**{"from_address": "news@example.jp", "from_name": "サンプル商店",
                          "subject": "お知らせ", "html": "<p>本文</p>", "text": "本文",
                          **fields})


def test_blocks_and_subject_follow_the_recipients_conditions():
    compiled = compile_message(spec(
        subject="{% if shown[1] %}ゴールド会員様へ{% else %}お知らせ{% endif %}",
        html="<p>共通</p>{% if shown[0] %}<p>東京限定</p>{% endif %}",
        text="共通\n{% if shown[0] %}東京限定\n{% endif %}"))
    tokyo_gold = parse(compiled.render(1, "a@example.jp", {}, None, [True, True]))
    osaka = parse(compiled.render(2, "b@example.jp", {}, None, [False, False]))
    assert tokyo_gold["Subject"] == "ゴールド会員様へ"
    assert "東京限定" in tokyo_gold.get_body(("html",)).get_content()
    assert osaka["Subject"] == "お知らせ"
    assert "東京限定" not in osaka.get_body(("html",)).get_content()
    assert "東京限定" not in osaka.get_body(("plain",)).get_content()
    # Without condition results (an address outside the members) nothing conditional shows.
    assert parse(compiled.render(3, "c@example.jp"))["Subject"] == "お知らせ"


def test_iso_2022_jp_mail_is_seven_bit_jis_and_reads_back():
    compiled = compile_message(spec(charset="iso-2022-jp", subject="{{ member.name }}様 ご案内",
                                    text="{{ member.name }}様\nご注文ありがとうございます。"))
    rendered = compiled.render(1, "a@example.jp", {"name": "高橋"})
    assert b"charset=\"ISO-2022-JP\"" in rendered.data
    assert b"Content-Transfer-Encoding: 7bit" in rendered.data
    assert all(byte < 128 for byte in rendered.data)
    message = parse(rendered)
    assert message["Subject"] == "高橋様 ご案内"
    assert message["From"].addresses[0].display_name == "サンプル商店"
    assert b"From: =?ISO-2022-JP?B?" in rendered.data
    assert "ご注文ありがとうございます。" in message.get_body(("plain",)).get_content()
    assert "本文" in message.get_body(("html",)).get_content()


def test_a_recipient_jis_cannot_carry_gets_the_same_mail_in_utf8():
    compiled = compile_message(spec(charset="iso-2022-jp", subject="{{ member.name }}様"))
    message = parse(compiled.render(1, "a@example.jp", {"name": "髙橋①"}))
    assert message["Subject"] == "髙橋①様"
    assert message.get_body(("plain",)).get_content_charset() == "utf-8"


def test_long_jis_subjects_fold_into_words_of_whole_characters():
    subject = "年末年始の営業時間と配送スケジュールに関する重要なお知らせ" * 3
    header = jis_header(subject)
    assert all(len(word.strip()) <= 75 for word in header.split("\r\n"))
    assert str(email.header.make_header(email.header.decode_header(header))) == subject
    assert jis_header("髙") is None


def test_inline_images_travel_in_multipart_related_beside_attachments():
    compiled = compile_message(spec(
        html='<p><img src="cid:logo@tayori"></p>', attachments=[
            Attachment("logo.png", "image/png", PNG, content_id="logo@tayori"),
            Attachment("請求書.pdf", "application/pdf", b"%PDF-1.4 test")]))
    message = parse(compiled.render(1, "a@example.jp"))
    assert message.get_content_type() == "multipart/mixed"
    related = next(part for part in message.walk()
                   if part.get_content_type() == "multipart/related")
    image = next(part for part in related.walk() if part.get_content_type() == "image/png")
    assert image["Content-ID"] == "<logo@tayori>"
    assert image.get_content() == PNG
    attachment = next(message.iter_attachments())
    assert attachment.get_filename() == "請求書.pdf"
    assert message.get_body(("plain",)).get_content().strip() == "本文"
