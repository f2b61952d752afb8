"""The web dashboard (server-rendered Django templates + htmx; docs/decisions/0029).

A face like gateway.api: views call accounts' and the registry's services and selectors, never
the API; only gateway.urls imports this package.
"""
