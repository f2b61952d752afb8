"""OpenAPI links (OAS 3.1 §4.8.20) between the admin API's operations, as data, added by a drf-spectacular hook.

drf-spectacular has no way to declare links on a response, so this table names them by operationId:
what a client (or schemathesis' stateful run, tests/api/test_schemathesis.py) can do next with the
resource a response returned, and where each parameter comes from. A link whose target operation is
not in the schema is left out (docs/decisions/0028).
"""

from __future__ import annotations

from typing import Any

SLUG = "$request.path.slug"
ROBOT = {"slug": SLUG, "name": "$response.body#/name"}
SAME_ROBOT = {"slug": SLUG, "name": "$request.path.name"}


def _to(operation_id: str, parameters: dict[str, str], description: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": parameters, "description": description}


# operationId → status → link name → link
LINKS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "user_tokens_create": {
        "201": {"revoke": _to("user_tokens_revoke", {"token_id": "$response.body#/id"}, "Revoke the token just issued.")},
    },
    "tenant_robots_create": {
        "201": {
            "update": _to("tenant_robots_update", ROBOT, "Change the new robot's scopes, patterns or expiry."),
            "rotate": _to("tenant_robots_rotate", ROBOT, "Give the new robot another secret."),
            "revoke": _to("tenant_robots_revoke", ROBOT, "Revoke the new robot."),
        },
    },
    "tenant_robots_update": {
        "200": {
            "rotate": _to("tenant_robots_rotate", SAME_ROBOT, "Give the robot another secret."),
            "revoke": _to("tenant_robots_revoke", SAME_ROBOT, "Revoke the robot."),
        },
    },
    "tenant_robots_rotate": {
        "200": {"revoke": _to("tenant_robots_revoke", SAME_ROBOT, "Revoke the robot.")},
    },
}


def postprocess_links(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Add LINKS to the responses of the operations they start from (drf-spectacular POSTPROCESSING_HOOKS)."""
    operations = [op for item in result.get("paths", {}).values() for op in item.values() if isinstance(op, dict)]
    present = {op.get("operationId") for op in operations}
    for operation in operations:
        for status, links in LINKS.get(operation.get("operationId", ""), {}).items():
            response = operation.get("responses", {}).get(status)
            usable = {name: link for name, link in links.items() if link["operationId"] in present}
            if response is not None and usable:
                response["links"] = {**response.get("links", {}), **usable}
    return result
