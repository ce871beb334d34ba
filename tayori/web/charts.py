"""The data a page hands to the shared chart script (Chart.js, vendored): one shape for every
chart in the UI."""


def chart(kind: str, labels, datasets, *, percent: bool = False) -> dict:
    """{type, labels, percent, datasets: [{label, data}]} — ``datasets`` as (label, values)."""
    return {"type": kind, "labels": [str(label) for label in labels], "percent": percent,
            "datasets": [{"label": str(label), "data": list(data)} for label, data in datasets]}
