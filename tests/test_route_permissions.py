"""Every UI route declares who may use it.

Walks all URL patterns of ``tayori.urls`` (recursively, as new apps and routes appear) and fails
on a view without the ``tayori_permission`` mark that ``tayori.accounts.access.requires`` and
``public`` leave. The REST API under ``api/`` is walked by its own test.
"""

from django.urls import URLPattern, URLResolver, get_resolver, include, path

from tayori.accounts import permissions
from tayori.accounts.access import public, requires

SKIPPED_INCLUDES = ("api/",)
MARKS = {"public", "signed-in"} | set(permissions.ALL)


def walk(patterns, prefix="", namespace=""):
    """Yield (route, namespaced url name, view callback) for every pattern below ``patterns``."""
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            if route in SKIPPED_INCLUDES:
                continue
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from walk(entry.url_patterns, route, inner)
        elif isinstance(entry, URLPattern):
            yield route, f"{namespace}{entry.name}", entry.callback


def unmarked(patterns) -> list[str]:
    problems = []
    for route, name, view in walk(patterns):
        mark = getattr(view, "tayori_permission", None)
        if mark is None:
            problems.append(f"{route} ({name}): no @requires(...) or @public")
        elif mark not in MARKS:
            problems.append(f"{route} ({name}): unknown permission mark {mark!r}")
    return problems


def test_every_ui_route_declares_its_permission():
    assert unmarked(get_resolver().url_patterns) == []


def test_the_walk_reaches_nested_routes_and_skips_only_the_api():
    routes = {name: route for route, name, _view in walk(get_resolver().url_patterns)}
    # Top level, one include deep, and the administration pages.
    assert routes["login"] == "login/"
    assert routes["accounts:operators"] == "workspace/operators/"
    assert routes["members:index"] == "members/"
    assert not any(route.startswith("api/") for route in routes.values())


def test_the_check_catches_a_forgotten_decorator():
    def forgotten(request):
        raise AssertionError("never called")

    @requires("members.view")
    def guarded(request):
        raise AssertionError("never called")

    patterns = [path("x/", include([
        path("ok/", guarded, name="ok"),
        path("open/", public(lambda request: None), name="open"),
        path("oops/", forgotten, name="oops"),
    ]))]
    assert unmarked(patterns) == ["x/oops/ (oops): no @requires(...) or @public"]
