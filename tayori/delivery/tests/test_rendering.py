"""Rendering and tokens: what leaves parses cleanly and says exactly what the templates said."""

import email
import email.policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tayori.delivery import tokens
from tayori.delivery.rendering import Attachment, MessageSpec, RenderError, compile_message

HTML = """<html><body><p>{{ member.name }} 様</p>
<a href="https://shop.example.jp/sale">セール</a> <a href='https://shop.example.jp/{{ member.id }}'>me</a>
<a href="mailto:help@example.jp">help</a> <a href="{{ unsubscribe_url }}">配信停止</a>
{% for item in data.items %}<li>{{ item.name }} {{ item.price }}円</li>{% endfor %}
</body></html>"""


def spec(**fields):
    return MessageSpec(**{
        "from_address": "news@example.jp", "from_name": "サンプル商店",
        "subject": "{{ member.name }}様へ: 冬のセールのお知らせ（{{ data.code }}）", "html": HTML,
        "text": "{{ member.name }} 様\n冬のセール\n", "tracking": True,
        "tracking_host": "t.example.jp", "reply_to": "sales@example.jp", **fields})


def parse(rendered):
    return email.message_from_bytes(rendered.data, policy=email.policy.default)


def test_a_message_parses_without_defects_and_round_trips_japanese():
    compiled = compile_message(spec())
    rendered = compiled.render(42, "taro@example.jp", {"name": "山田太郎", "id": 7},
                               {"code": "W1", "items": [{"name": "髙島屋の① お茶", "price": 1200}]})
    message = parse(rendered)
    assert not message.defects and all(not part.defects for part in message.walk())
    assert message["Subject"] == "山田太郎様へ: 冬のセールのお知らせ（W1）" == rendered.subject
    assert message["From"].addresses[0].display_name == "サンプル商店"
    assert message["To"] == "taro@example.jp" and message["Reply-To"] == "sales@example.jp"
    assert message["Message-ID"] == rendered.message_id == compiled.message_id(42)
    assert message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    text, html = (part.get_content() for part in message.iter_parts())
    assert text == "山田太郎 様\r\n冬のセール"
    assert "髙島屋の① お茶 1200円" in html
    assert max(len(line) for line in rendered.data.split(b"\r\n")) <= 998
    assert b"\n" not in rendered.data.replace(b"\r\n", b"")


def test_static_http_links_are_tracked_and_read_back_to_delivery_and_index():
    compiled = compile_message(spec())
    html = parse(compiled.render(42, "a@example.jp", {"name": "x", "id": 7})).get_body(
        ("html",)).get_content()
    assert compiled.links == ["https://shop.example.jp/sale"]
    click = html.split('href="')[1].split('"')[0]
    assert click.startswith("https://t.example.jp/t/c/")
    assert tokens.read(tokens.CLICK, click.rsplit("/", 1)[1]) == (42, 0)
    assert "https://shop.example.jp/7" in html  # personal URLs are not tracked
    assert 'href="mailto:help@example.jp"' in html
    pixel = html.split('<img src="')[1].split('"')[0]
    assert tokens.read(tokens.OPEN, pixel.rsplit("/", 1)[1].removesuffix(".gif")) == (42,)
    assert html.index("<img") < html.index("</body>")


def test_bulk_mail_carries_one_click_unsubscribe_and_a_verp_return_path():
    compiled = compile_message(spec())
    rendered = compiled.render(42, "a@example.jp")
    message = parse(rendered)
    https, mailto = (part.strip(" <>") for part in message["List-Unsubscribe"].split(","))
    assert tokens.read(tokens.UNSUBSCRIBE, https.rsplit("/", 1)[1]) == (42,)
    assert mailto.startswith("mailto:unsubscribe+") and mailto.endswith("@example.jp")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    local = rendered.mail_from.partition("@")[0]
    assert tokens.delivery_of_bounce(local) == 42
    assert tokens.delivery_of_bounce(local.lower()) == 42  # survives MTAs that lower-case
    transactional = parse(compile_message(spec(bulk=False)).render(1, "a@example.jp"))
    assert "List-Unsubscribe" not in transactional


def test_member_values_are_escaped_in_html_but_not_in_text():
    compiled = compile_message(spec(html="<p>{{ member.name }}</p>", text="{{ member.name }}"))
    message = parse(compiled.render(1, "a@example.jp", {"name": "<script>x</script> & co"}))
    assert "&lt;script&gt;" in message.get_body(("html",)).get_content()
    assert message.get_body(("plain",)).get_content() == "<script>x</script> & co"


def test_missing_values_render_empty_and_errors_name_field_and_line():
    compiled = compile_message(spec(subject="Hi {{ member.nobody.deeper }}!", html="",
                                    text="{{ data.x }}."))
    assert parse(compiled.render(1, "a@example.jp"))["Subject"] == "Hi !"
    with pytest.raises(RenderError) as error:
        compile_message(spec(html="<p>\n{% for %}</p>"))
    assert (error.value.field, error.value.line) == ("html", 2)
    broken = compile_message(spec(html="", text="{{ 1 / data.zero }}"))
    with pytest.raises(RenderError):
        broken.render(1, "a@example.jp", data={"zero": 0})


def test_the_sandbox_refuses_unsafe_attribute_access():
    peek = compile_message(spec(html="", text="[{{ email.__class__.__mro__ }}{{ member.keys }}]"))
    assert parse(peek.render(1, "a@example.jp", {"name": "x"})).get_content() == "[]"
    escape = compile_message(spec(html="", text="{{ tayori.click.__globals__ }}"
                                                "{{ email.format.__self__.__class__() }}"))
    with pytest.raises(RenderError):
        escape.render(1, "a@example.jp")


def test_attachments_and_single_part_messages_parse():
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 20
    compiled = compile_message(spec(text="", attachments=[
        Attachment("請求書.pdf", "application/pdf", pdf)]))
    message = parse(compiled.render(1, "a@example.jp", {"name": "x"}))
    assert not message.defects
    assert message.get_content_type() == "multipart/mixed"
    attachment = next(message.iter_attachments())
    assert attachment.get_filename() == "請求書.pdf" and attachment.get_content() == pdf
    assert message.get_body(("html",)).get_content_type() == "text/html"


@settings(max_examples=60, deadline=None)
@given(subject=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=120)
       .filter(lambda s: s.strip()),
       body=st.text(st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_any_unicode_subject_and_body_round_trip(subject, body):
    compiled = compile_message(spec(subject="{{ data.s }}", html="", text="{{ data.b }}",
                                    tracking=False))
    message = parse(compiled.render(1, "a@example.jp", data={"s": subject, "b": body}))
    assert message["Subject"] == " ".join(subject.split())
    expected = body.replace("\r\n", "\n").replace("\r", "\n")
    assert message.get_content() == expected.replace("\n", "\r\n")  # canonical line breaks


def test_tokens_refuse_tampering_and_other_purposes():
    token = tokens.make(tokens.CLICK, 123456789, 3)
    assert tokens.read(tokens.CLICK, token) == (123456789, 3)
    assert tokens.read(tokens.OPEN, token) is None
    flipped = token[:-1] + ("a" if token[-1] != "a" else "b")
    assert tokens.read(tokens.CLICK, flipped) is None
    assert tokens.read(tokens.CLICK, "!!notbase32") is None
    assert tokens.delivery_of_bounce("bounce+" + tokens.make(tokens.CLICK, 5)) is None


values = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False),
                   st.text(st.sampled_from("a<>&'\"様 "), max_size=6), st.booleans(),
                   st.lists(st.integers(), max_size=2))
contexts = st.fixed_dictionaries({
    "member": st.dictionaries(st.sampled_from(["name", "items", "plan"]),
                              st.one_of(values, st.dictionaries(st.sampled_from(["x", "keys"]),
                                                                values, max_size=2)),
                              max_size=3),
    "data": st.dictionaries(st.sampled_from(["x", "items"]), values, max_size=2),
    "email": st.just("a@example.jp")})
outputs = st.sampled_from(["{{ member.name }}", "{{ member.items }}", "{{ member.plan.x }}",
                           "{{ member.plan.keys }}", "{{ data.x }}", "{{ data.items }}",
                           "{{ email }}", "{{ nothing.at.all }}", "{{ member.name.upper }}",
                           "{{ email.__class__ }}", "<p>", "様 & ", "\n"])


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(outputs, max_size=8), context=contexts, html=st.booleans())
def test_joined_templates_print_exactly_what_jinja_prints(parts, context, html):
    from tayori.delivery.rendering import _html_env, _Joined, _text_env

    env = _html_env if html else _text_env
    source = "".join(parts)
    joined = _Joined.from_source(env, source)
    assert joined is not None
    assert joined.render(dict(context)) == env.from_string(source).render(context)


def test_templates_with_logic_are_left_to_jinja():
    from tayori.delivery.rendering import _html_env, _Joined

    for source in ("{% if x %}a{% endif %}", "{{ x | upper }}", "{{ x ~ y }}", "{{ f(1) }}",
                   "{{ tayori.click(x) }}", "{{ member['name'] }}"):
        assert _Joined.from_source(_html_env, source) is None
