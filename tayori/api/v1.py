"""The v1 API object; routers are added by their modules."""

from ninja import NinjaAPI

api = NinjaAPI(title="Tayori API", version="1", urls_namespace="api", docs_url="/docs")
