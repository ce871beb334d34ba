"""REST API v1 (django-ninja): members, attributes, lists, segments, suppressions, consents."""
