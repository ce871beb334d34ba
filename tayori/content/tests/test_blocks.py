"""Assembling a template's blocks into a Source's templates: conditions as ``shown[i]``, subject
variants, shared blocks, the sender footer, CSS inlining and the text part."""

import email
import email.policy

from tayori.content.blocks import assemble
from tayori.content.models import SenderIdentity
from tayori.delivery.rendering import MessageSpec, compile_message

TOKYO = {"op": "and", "conditions": [{"field": "prefecture", "operator": "equals",
                                      "value": "東京都"}]}
OSAKA = {"op": "and", "conditions": [{"field": "prefecture", "operator": "equals",
                                      "value": "大阪府"}]}
GOLD = {"op": "and", "conditions": [{"field": "plan", "operator": "equals", "value": "gold"}]}
ITEMS = {"items": [{"name": "りんご", "price": 1200}, {"name": "みかん", "price": 300}]}


def identity(**fields):
    return SenderIdentity(**{
        "label": "news", "from_name": "サンプル", "from_address": "news@example.jp",
        "organization": "株式会社サンプル", "postal_address": "東京都千代田区丸の内1-1",
        "contact": "03-1234-5678", "opt_out_text": "配信停止は下記のリンクから", **fields})


def content(blocks, subject="お知らせ", variants=None, **extra):
    return {"subject": subject, "subject_variants": variants or [], "preheader": "",
            "blocks": blocks, "text": "", "text_edited": False, "charset": "utf-8", **extra}


def render(assembled, shown, member=None, data=None):
    compiled = compile_message(MessageSpec(
        from_address="news@example.jp", subject=assembled.subject, html=assembled.html,
        text=assembled.text, tracking_host="t.example.jp"))
    rendered = compiled.render(7, "taro@example.jp", member or {}, data, shown)
    message = email.message_from_bytes(rendered.data, policy=email.policy.default)
    return (rendered.subject, message.get_body(("html",)).get_content(),
            message.get_body(("plain",)).get_content().replace("\r\n", "\n"))


def test_a_conditional_block_is_wrapped_in_shown_in_html_and_text():
    assembled = assemble(content([
        {"kind": "text", "text": "みなさまへ"},
        {"kind": "text", "text": "東京店のご案内", "condition": TOKYO},
        {"kind": "text", "text": "大阪店のご案内", "condition": OSAKA},
    ]), identity())
    assert assembled.conditions == [TOKYO, OSAKA]
    for part in (assembled.html, assembled.text):
        start = part.index("{% if shown[0] %}")
        assert start < part.index("東京店のご案内") < part.index("{% endif %}", start)
        start = part.index("{% if shown[1] %}")
        assert start < part.index("大阪店のご案内") < part.index("{% endif %}", start)
        assert part.index("みなさまへ") < part.index("{% if shown[0] %}")
    assert [o[3] for o in assembled.outline] == [None, 0, 1]

    _subject, html, text = render(assembled, [True, False])
    assert "東京店のご案内" in html and "東京店のご案内" in text
    assert "大阪店のご案内" not in html and "大阪店のご案内" not in text
    assert "みなさまへ" in html and "みなさまへ" in text
    _subject, html, text = render(assembled, [False, True])
    assert "東京店のご案内" not in html + text and "大阪店のご案内" in html and "大阪店のご案内" in text


def test_identical_conditions_are_numbered_once():
    assembled = assemble(content([
        {"kind": "header", "text": "東京の方へ", "condition": TOKYO},
        {"kind": "text", "text": "ゴールド会員特典", "condition": GOLD},
        # The same condition written with its keys in another order is still one condition.
        {"kind": "text", "text": "都内の店舗", "condition": {
            "conditions": [{"value": "東京都", "operator": "equals", "field": "prefecture"}],
            "op": "and"}},
        {"kind": "text", "text": "全員に"},
    ], variants=[{"condition": GOLD, "subject": "ゴールド会員さまへ"}]), identity())
    assert assembled.conditions == [TOKYO, GOLD]
    assert [o[3] for o in assembled.outline] == [0, 1, 0, None]
    assert assembled.html.count("{% if shown[0] %}") == 2
    assert "shown[2]" not in assembled.html + assembled.text + assembled.subject
    assert assembled.subject == ("{% if shown[1] %}ゴールド会員さまへ"
                                 "{% else %}お知らせ{% endif %}")


def test_an_empty_condition_means_everyone():
    assembled = assemble(content([
        {"kind": "text", "text": "全員に", "condition": {"op": "and", "conditions": []}},
        {"kind": "text", "text": "これも全員に", "condition": None},
    ]), identity())
    assert assembled.conditions == []
    assert "shown" not in assembled.html + assembled.text


def test_subject_variants_are_an_if_elif_chain_where_the_first_match_wins():
    assembled = assemble(content(
        [{"kind": "text", "text": "本文"}], subject="{{ member.name }}様へのお知らせ",
        variants=[{"condition": TOKYO, "subject": "東京の{{ member.name }}様へ"},
                  {"condition": GOLD, "subject": "ゴールド会員さまへ"},
                  {"condition": OSAKA, "subject": ""}]),  # no text: no variant
        identity())
    assert assembled.subject == (
        "{% if shown[0] %}東京の{{ member.name }}様へ{% elif shown[1] %}ゴールド会員さまへ"
        "{% else %}{{ member.name }}様へのお知らせ{% endif %}")
    member = {"name": "太郎"}
    assert render(assembled, [True, True], member)[0] == "東京の太郎様へ"
    assert render(assembled, [False, True], member)[0] == "ゴールド会員さまへ"
    assert render(assembled, [False, False], member)[0] == "太郎様へのお知らせ"


def test_shared_blocks_resolve_to_their_current_content_and_deleted_ones_drop_out():
    blocks = [{"kind": "text", "text": "本文"},
              {"kind": "shared", "shared_id": 5},
              {"kind": "shared", "shared_id": 6, "condition": TOKYO},
              {"kind": "shared", "shared_id": 99}]
    shared = {5: {"kind": "text", "text": "冬のセール開催中"},
              6: {"kind": "button", "label": "店舗を探す", "url": "https://example.jp/shops"}}
    assembled = assemble(content(blocks), identity(), shared)
    assert "冬のセール開催中" in assembled.html and "冬のセール開催中" in assembled.text
    assert "店舗を探す" in assembled.html and "https://example.jp/shops" in assembled.html
    # The template's condition on a shared block applies to it.
    start = assembled.html.index("{% if shown[0] %}")
    assert start < assembled.html.index("店舗を探す") < assembled.html.index("{% endif %}", start)
    assert [o[1] for o in assembled.outline] == ["text", "text", "button"]

    shared[5] = {"kind": "text", "text": "春のセール開催中"}
    del shared[6]
    assembled = assemble(content(blocks), identity(), shared)
    assert "春のセール開催中" in assembled.html and "冬のセール" not in assembled.html
    assert "店舗を探す" not in assembled.html + assembled.text
    assert assembled.conditions == []


def test_the_footer_shows_the_senders_facts_and_the_unsubscribe_link():
    assembled = assemble(content([{"kind": "text", "text": "本文"}, {"kind": "footer"}]),
                         identity(opt_out_text="配信停止は <こちら> から"))
    for part in (assembled.html, assembled.text):
        for fact in ("株式会社サンプル", "東京都千代田区丸の内1-1", "03-1234-5678"):
            assert fact in part
    assert "配信停止は &lt;こちら&gt; から" in assembled.html
    assert '<a href="{{ unsubscribe_url }}"' in assembled.html
    assert "{{ unsubscribe_url }}" in assembled.text
    _subject, html, text = render(assembled, [])
    assert 'href="https://t.example.jp/t/u/' in html
    assert "https://t.example.jp/t/u/" in text
    assert "配信停止は <こちら> から" in text


def test_the_footer_falls_back_to_the_sender_name_without_an_organization():
    assembled = assemble(content([{"kind": "footer"}]),
                         identity(organization="", postal_address="", contact=""))
    assert "サンプル" in assembled.html and "{{ unsubscribe_url }}" in assembled.html


def test_a_loop_over_table_rows_survives_inlining_and_loops_in_the_text_too():
    html = ('<p>ご注文内容</p><table class="order">\n'
            "{% for item in data.items %}\n"
            "<tr><td>{{ item.name }}</td><td>{{ item.price|yen }}</td></tr>\n"
            "{% endfor %}\n</table><p>ありがとうございました</p>")
    assembled = assemble(content([{"kind": "html", "html": html}]), identity())
    assert "{% for item in data.items %}" in assembled.html
    assert "{% for item in data.items %}" in assembled.text
    _subject, html_part, text = render(assembled, [], data=ITEMS)
    assert html_part.index("りんご") < html_part.index("¥1,200") < html_part.index("みかん") < (
        html_part.index("¥300"))
    assert html_part.count("<tr><td>") == 2
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert "ご注文内容" in lines
    assert [line for line in lines if "¥" in line] == ["りんご  ¥1,200", "みかん  ¥300"]
    assert "ありがとうございました" in lines
    # With no line items the table is empty in both parts.
    _subject, html_part, text = render(assembled, [], data={"items": []})
    assert "りんご" not in html_part and "りんご" not in text


def test_a_loop_over_rows_after_a_header_row():
    html = ("<table><tr><th>品名</th><th>金額</th></tr>"
            "{% for item in data.items %}<tr><td>{{ item.name }}</td>"
            "<td>{{ item.price|yen }}</td></tr>{% endfor %}</table>")
    assembled = assemble(content([{"kind": "html", "html": html}]), identity())
    _subject, html_part, text = render(assembled, [], data=ITEMS)
    assert html_part.count("<tr><td>") == 2 and html_part.count("<tr><th>") == 1
    assert "<td>みかん</td><td>¥300</td>" in html_part
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines == ["品名  金額", "りんご  ¥1,200", "みかん  ¥300"]


def test_css_is_inlined_into_each_block():
    assembled = assemble(content([
        {"kind": "header", "text": "見出し"}, {"kind": "text", "text": "本文"},
        {"kind": "button", "label": "詳しく", "url": "https://example.jp/x", "color": "#ff0000"},
        {"kind": "divider"}, {"kind": "footer"}]), identity())
    html = assembled.html
    assert '<h1 style="' in html and "font-size: 22px" in html
    assert '<p style="' in html and "line-height: 1.8" in html
    assert '<hr style="' in html
    assert 'class="button" style="' in html and "background: #ff0000" in html
    assert "<style" not in html.split("</head>")[1]


def test_a_bad_button_color_is_replaced():
    assembled = assemble(content([{"kind": "button", "label": "x", "url": "https://e.jp",
                                   "color": "red;position:fixed"}]), identity())
    assert "position" not in assembled.html and "#2563eb" in assembled.html


def test_text_is_escaped_in_html_but_merge_tags_are_not():
    assembled = assemble(content([
        {"kind": "text", "text": '<b>太字</b> & "引用" {{ member.name }}様\n次の行'},
        {"kind": "header", "text": "<script>x</script>{{ member.plan }}"}]), identity())
    html = assembled.html
    assert "<b>" not in html and "&lt;b&gt;太字&lt;/b&gt; &amp;" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "{{ member.name }}様<br>" in html and "{{ member.plan }}" in html
    _subject, html_part, text = render(assembled, [], {"name": "<i>花子</i>", "plan": "gold"})
    # A member's value is escaped by the renderer, never trusted as HTML.
    assert "&lt;i&gt;花子&lt;/i&gt;様" in html_part and "<i>" not in html_part
    assert "&lt;b&gt;太字&lt;/b&gt;" in html_part
    assert '<b>太字</b> & "引用" <i>花子</i>様' in text
    assert "次の行" in text


def test_a_paragraph_before_a_conditional_sentence_keeps_its_line_in_the_text():
    html = "<p>ご来店ありがとうございます。</p><p>{% if member.vip %}VIP特典{% endif %}</p>"
    assembled = assemble(content([{"kind": "html", "html": html}]), identity())
    _subject, _html, text = render(assembled, [], {"vip": True})
    assert "ご来店ありがとうございます。\nVIP特典" in text


def test_preheader_and_hand_edited_text():
    assembled = assemble(content([{"kind": "text", "text": "本文"}], preheader="今だけ<半額>",
                                 text="手で書いた本文 {{ member.name }}", text_edited=True),
                         identity())
    assert "display:none" in assembled.html and "今だけ&lt;半額&gt;" in assembled.html
    assert assembled.text == "手で書いた本文 {{ member.name }}"
