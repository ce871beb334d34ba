"""The block editor's form, read and written without JavaScript: blocks and subject variants
travel as numbered fields (``b-3-text``), and buttons (add, move, remove) change the list
before it is shown again. Conditions use a small builder: a segment (in / not in) or one
attribute test; the result is a segment definition the engine evaluates per recipient."""

from __future__ import annotations

from tayori.content.blocks import FIELDS
from tayori.members.segments import OPERATOR_LABELS

CONDITION_OPERATORS = ("equals", "not_equals", "contains", "gt", "gte", "lt", "lte",
                       "is_true", "is_false", "is_not_empty", "is_empty",
                       "anniversary_within_days", "within_last_days")


def operator_choices() -> list[tuple[str, str]]:
    return [(o, OPERATOR_LABELS[o]) for o in CONDITION_OPERATORS]


def condition_from(post, prefix: str) -> dict | None:
    mode = post.get(f"{prefix}-cond-mode", "")
    if mode in ("in_segment", "not_in_segment", "in_list", "not_in_list"):
        ref = post.get(f"{prefix}-cond-ref", "")
        if not ref.isdigit():
            return None
        field = "segment" if mode.endswith("segment") else "list"
        return {"op": "and", "conditions": [{"field": field, "operator": mode,
                                             "value": int(ref)}]}
    if mode == "field":
        field = post.get(f"{prefix}-cond-field", "")
        operator = post.get(f"{prefix}-cond-operator", "equals")
        raw = post.get(f"{prefix}-cond-value", "")
        leaf = {"field": field, "operator": operator}
        if operator not in ("is_true", "is_false", "is_not_empty", "is_empty"):
            leaf["value"] = _value(raw)
        return {"op": "and", "conditions": [leaf]}
    return None


def _value(raw: str):
    raw = raw.strip()
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            return raw


def condition_widget(condition: dict | None) -> dict:
    """The builder's fields for a stored condition (the first leaf of a one-leaf group)."""
    leaves = (condition or {}).get("conditions") or []
    if len(leaves) != 1 or "conditions" in leaves[0]:
        return {"mode": "", "ref": "", "field": "", "operator": "equals", "value": ""}
    leaf = leaves[0]
    if leaf.get("field") in ("segment", "list"):
        return {"mode": leaf["operator"], "ref": leaf.get("value"), "field": "",
                "operator": "equals", "value": ""}
    return {"mode": "field", "ref": "", "field": leaf.get("field", ""),
            "operator": leaf.get("operator", "equals"), "value": leaf.get("value", "")}


def blocks_from(post) -> list[dict]:
    blocks = []
    count = int(post.get("b-count") or 0)
    for i in range(min(count, 100)):
        kind = post.get(f"b-{i}-kind", "")
        if kind not in FIELDS:
            continue
        block = {"kind": kind}
        for name in FIELDS[kind]:
            value = post.get(f"b-{i}-{name}", "")
            block[name] = int(value) if name == "shared_id" and value.isdigit() else value
        block["condition"] = condition_from(post, f"b-{i}")
        blocks.append(block)
    return blocks


def variants_from(post) -> list[dict]:
    variants = []
    for i in range(min(int(post.get("v-count") or 0), 20)):
        subject = post.get(f"v-{i}-subject", "")
        if subject or post.get(f"v-{i}-cond-mode"):
            variants.append({"subject": subject, "condition": condition_from(post, f"v-{i}")})
    return variants


def content_from(post) -> dict:
    return {"subject": post.get("subject", "").strip(), "preheader": post.get("preheader", ""),
            "subject_variants": variants_from(post), "blocks": blocks_from(post),
            "text": post.get("text", ""), "text_edited": post.get("text_edited") == "on",
            "charset": post.get("charset", "utf-8")}


def apply_action(content: dict, action: str) -> dict:
    """Add, move or remove a block or subject variant."""
    blocks, variants = content["blocks"], content["subject_variants"]
    verb, _sep, arg = action.partition(":")
    if verb == "add" and arg in FIELDS:
        blocks.append({"kind": arg, **{name: "" for name in FIELDS[arg]}, "condition": None})
    elif verb in ("up", "down", "remove") and arg.isdigit() and int(arg) < len(blocks):
        i = int(arg)
        if verb == "remove":
            blocks.pop(i)
        else:
            j = i - 1 if verb == "up" else i + 1
            if 0 <= j < len(blocks):
                blocks[i], blocks[j] = blocks[j], blocks[i]
    elif verb == "add_variant":
        variants.append({"subject": "", "condition": None})
    elif verb == "remove_variant" and arg.isdigit() and int(arg) < len(variants):
        variants.pop(int(arg))
    return content
