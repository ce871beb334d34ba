"""REST API v1 (django-ninja): members, attributes, lists, segments, suppressions, consents."""

from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from tayori.accounts.access import public
from tayori.api.errors import not_found
from tayori.api.v1 import api


@public
@csrf_exempt
def unknown(request, rest=""):
    """Any other path under /api/: a JSON 404, never Django's HTML page."""
    return api.create_response(request, not_found().body(), status=404)


urlpatterns = [path("", api.urls), re_path(r"^(?P<rest>.*)$", unknown)]
