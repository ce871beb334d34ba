"""Template helpers shared by every page: navigation, masking and pagination links."""

from django import template
from django.urls import NoReverseMatch, reverse

from tayori.web.nav import NAVIGATION

register = template.Library()


@register.inclusion_tag("web/_nav.html", takes_context=True)
def navigation(context):
    request = context["request"]
    membership = getattr(request, "membership", None)
    sections = []
    for title, entries in NAVIGATION:
        links = []
        for url_name, label, code in entries:
            if membership is None or (code and not membership.has(code)):
                continue
            try:
                url = reverse(url_name)
            except NoReverseMatch:
                continue
            links.append({"url": url, "label": label,
                          "active": request.path.startswith(url) and url != "/"})
        if links:
            sections.append({"title": title, "links": links})
    # /members/ prefixes /members/lists/ too: only the longest matching link is the current one.
    current = max((link["url"] for s in sections for link in s["links"] if link["active"]),
                  key=len, default=None)
    for link in (link for s in sections for link in s["links"]):
        link["active"] = link["url"] == current
    return {"sections": sections}


@register.simple_tag(takes_context=True)
def query_with(context, **changes):
    """The current query string with some parameters replaced (for pagination and sorting)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"
