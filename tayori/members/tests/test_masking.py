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
