"""The starter set a workspace without notice types can create with one button: four Japanese
notice types (障害発生, 障害復旧 following it, 事後報告 following that and confirmed by a second
operator, メンテナンス告知), a few example services, and the member attribute that lists each
member's services — so a new operator can send a correct notice at once and adapt it later."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from tayori.accounts import audit
from tayori.incidents.models import NoticeType, Service
from tayori.incidents.notices import NoticeRefused
from tayori.incidents.targeting import OPERATORS
from tayori.members.models import Attribute
from tayori.members.values import FieldError, normalize_email

ATTRIBUTE_KEY = "services"
ATTRIBUTE_LABEL = "ご利用サービス"
SERVICES = [
    # code, name, group
    ("payment_api", "決済API", "決済"),
    ("card", "クレジットカード決済", "決済"),
    ("konbini", "コンビニ決済", "決済"),
    ("transfer", "送金API", "送金"),
    ("dashboard", "加盟店管理画面", "管理"),
]


def _field(key, label, kind, required=True, choices=(), help=""):
    return {"key": key, "label": label, "kind": kind, "required": required,
            "choices": list(choices), "help": help}


SERVICES_FIELD = _field("services", "影響のあるサービス", "services")
STARTED = _field("started_at", "発生日時", "datetime")
RECOVERED = _field("recovered_at", "復旧日時", "datetime")
IMPACT = _field("impact", "影響", "choice",
                choices=("全面停止", "一部機能の停止", "遅延・エラーの増加"))
HISTORY = ("{% if notice_history_url %}\n"
           "これまでにお送りしたお知らせ: {{ notice_history_url }}\n{% endif %}")


def _body(greeting: str, lines: str, closing: str) -> str:
    return (f"お客様各位\n\n{greeting}\n\n{lines}\n{closing}\n{HISTORY}")


def _types(company: str) -> list[dict]:
    thanks = f"いつも{company}のサービスをご利用いただき、ありがとうございます。"
    return [
        {"name": "障害発生", "description": "障害が起きたとき、影響のある加盟店へすぐに送ります。",
         "fields": [SERVICES_FIELD, STARTED, IMPACT,
                    _field("details", "詳細", "textarea", required=False),
                    _field("next_update", "次回のご案内", "text", required=False,
                           help="例: 1時間後を目途に")],
         "subject": "【障害発生】{{ notice.services }}に障害が発生しています",
         "text": _body(
             thanks + "\n下記のとおり障害が発生しております。ご迷惑をおかけし、申し訳ございません。",
             "■ 影響のあるサービス: {{ notice.services }}\n"
             "■ 発生日時: {{ notice.started_at }}\n"
             "■ 影響: {{ notice.impact }}\n"
             "{% if notice.details %}■ 詳細:\n{{ notice.details }}\n{% endif %}"
             "{% if notice.next_update %}■ 次回のご案内: {{ notice.next_update }}\n{% endif %}",
             "復旧しだい、あらためてお知らせいたします。")},
        {"name": "障害復旧", "description": "障害が復旧したことを、発生の案内と同じ加盟店へ送ります。",
         "follows": "障害発生",
         "fields": [SERVICES_FIELD, STARTED, RECOVERED,
                    _field("cause", "原因", "textarea", required=False)],
         "subject": "【復旧】{{ notice.services }}の障害は復旧しました",
         "text": _body(
             thanks + "\n先にお知らせした障害は復旧いたしました。ご迷惑をおかけし、申し訳ございませんでした。",
             "■ 対象のサービス: {{ notice.services }}\n"
             "■ 発生日時: {{ notice.started_at }}\n"
             "■ 復旧日時: {{ notice.recovered_at }}\n"
             "{% if notice.cause %}■ 原因:\n{{ notice.cause }}\n{% endif %}",
             "原因と再発防止策は、あらためてご報告いたします。")},
        {"name": "事後報告", "description": "原因と再発防止策のご報告。送る前に別の担当者が確認します。",
         "follows": "障害復旧", "requires_second_confirmation": True,
         "fields": [SERVICES_FIELD, STARTED, RECOVERED,
                    _field("cause", "原因", "textarea"),
                    _field("measures", "再発防止策", "textarea")],
         "subject": "【ご報告】{{ notice.services }}の障害について",
         "text": _body(
             thanks + "\n先日の障害について、原因と再発防止策をご報告いたします。",
             "■ 対象のサービス: {{ notice.services }}\n"
             "■ 発生日時: {{ notice.started_at }}\n"
             "■ 復旧日時: {{ notice.recovered_at }}\n"
             "■ 原因:\n{{ notice.cause }}\n"
             "■ 再発防止策:\n{{ notice.measures }}\n",
             "このたびはご迷惑をおかけし、誠に申し訳ございませんでした。")},
        {"name": "メンテナンス告知", "description": "計画メンテナンスを、影響のある加盟店へ前もってお知らせします。",
         "fields": [SERVICES_FIELD,
                    _field("starts_at", "開始予定", "datetime"),
                    _field("ends_at", "終了予定", "datetime"),
                    _field("impact", "影響", "choice",
                           choices=("全面停止", "一部機能の停止", "影響なし（念のためのお知らせ）")),
                    _field("details", "詳細", "textarea", required=False)],
         "subject": "【メンテナンスのお知らせ】{{ notice.services }}（{{ notice.starts_at }}〜）",
         "text": _body(
             thanks + "\n下記の日程でメンテナンスを行います。",
             "■ 対象のサービス: {{ notice.services }}\n"
             "■ 日時: {{ notice.starts_at }} 〜 {{ notice.ends_at }}\n"
             "■ 影響: {{ notice.impact }}\n"
             "{% if notice.details %}■ 詳細:\n{{ notice.details }}\n{% endif %}",
             "ご不便をおかけしますが、ご理解のほどお願い申し上げます。")},
    ]


@transaction.atomic
def create_starter(workspace, *, from_address: str, from_name: str = "", request=None) -> int:
    """Create the starter set; returns how many notice types were made. Services are added
    only to an empty catalogue; an existing ``services`` attribute with choices gives the
    catalogue its codes instead of the examples."""
    if NoticeType.objects.filter(workspace=workspace).exists():
        raise NoticeRefused([FieldError("type", _("This workspace already has notice types."))])
    try:
        from_address = normalize_email(from_address)
    except FieldError as error:
        raise NoticeRefused([FieldError("from_address", error.message)]) from None
    if not from_address:
        raise NoticeRefused([FieldError("from_address", _("A sender address is required."))])
    attribute = Attribute.objects.filter(workspace=workspace, key=ATTRIBUTE_KEY).first()
    if attribute is not None and attribute.type not in OPERATORS:
        raise NoticeRefused([FieldError("type", _(
            "The member attribute “%(key)s” is of type %(type)s; notices need a multiple "
            "choice, choice or text attribute.") % {"key": ATTRIBUTE_KEY,
                                                   "type": attribute.get_type_display()})])
    if not Service.objects.filter(workspace=workspace).exists():
        examples = ([(code, code, "") for code in attribute.choices]
                    if attribute is not None and attribute.choices else SERVICES)
        Service.objects.bulk_create(
            Service(workspace=workspace, code=code, name=name, group=group, position=position)
            for position, (code, name, group) in enumerate(examples, start=1))
    if attribute is None:
        attribute = Attribute.objects.create(
            workspace=workspace, key=ATTRIBUTE_KEY, label=ATTRIBUTE_LABEL,
            type=Attribute.Type.MULTI_CHOICE,
            choices=list(Service.objects.filter(workspace=workspace).values_list("code",
                                                                                 flat=True)))
    made: dict[str, NoticeType] = {}
    for position, spec in enumerate(_types(workspace.name), start=1):
        made[spec["name"]] = NoticeType.objects.create(
            workspace=workspace, name=spec["name"], description=spec["description"],
            position=position, fields=spec["fields"], subject=spec["subject"],
            text=spec["text"], from_address=from_address, from_name=from_name or workspace.name,
            target=NoticeType.Target.SERVICES, target_attribute=attribute.key,
            requires_second_confirmation=spec.get("requires_second_confirmation", False),
            follows=made.get(spec.get("follows", "")))
    audit.record("notice_types.starter", request=request, workspace=workspace,
                 types=list(made), attribute=attribute.key)
    return len(made)
