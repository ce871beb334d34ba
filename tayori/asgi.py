"""ASGI entry point (uvicorn). The open pixel and click redirects take a lean path past Django's
request cycle (tracking.fast); everything else is Django's."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tayori.settings")
django_application = get_asgi_application()

from tayori.tracking.fast import lean  # noqa: E402  (needs the apps loaded above)

application = lean(django_application)
