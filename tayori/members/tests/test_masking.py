from types import SimpleNamespace

from tayori.members.masking import mask_email, mask_phone, masked_member_fields


def test_it_masks_email_keeping_two_characters_and_the_domain():
    assert mask_email("taro.yamada@example.jp") == "ta***@example.jp"


def test_it_never_shows_a_whole_short_local_part():
    assert mask_email("p1@example.jp") == "p***@example.jp"
    assert mask_email("abc@example.jp") == "a***@example.jp"


def test_it_masks_phones_keeping_the_country_code_and_last_two_digits():
    assert mask_phone("+819012345678") == "+81********78"


def test_pii_attributes_are_masked_and_others_shown():
    member = SimpleNamespace(email="hanako@example.jp", phone="", attributes={"name": "花子", "plan": "gold"})
    attrs = [SimpleNamespace(key="name", pii=True), SimpleNamespace(key="plan", pii=False)]
    masked = masked_member_fields(member, attrs, can_view_pii=False)
    assert masked["attributes"] == {"name": "***", "plan": "gold"}
    assert masked_member_fields(member, attrs, can_view_pii=True)["email"] == "hanako@example.jp"


def test_addresses_quoted_in_text_are_masked_whatever_their_form():
    from tayori.members.masking import mask_emails_in

    text = ('550 5.1.1 <taro.yamada@例え.jp> "taro yamada"@example.jp taro@[192.0.2.1] '
            "and hanako@example.co.jp.")
    masked = mask_emails_in(text)
    for whole in ("taro.yamada@", '"taro yamada"@', "taro@[", "hanako@"):
        assert whole not in masked
    assert "ta***@例え.jp" in masked and "ha***@example.co.jp." in masked
