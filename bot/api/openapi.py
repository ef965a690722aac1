"""The OpenAPI 3.1 document, built from the route table and the schemas the handlers use."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.api import schemas
from bot.api.operations import MAX_BODY, Operation
from store.clubs import apikeys

ERRORS = {
    400: "The body is not a JSON object",
    401: "No API key, or an unknown or revoked one",
    403: "The key lacks the operation's scope (named in `scope`)",
    404: "Not found in the key's club (`field` names the parameter when one is at fault)",
    409: "A conflict with what is recorded (`reason` says which)",
    413: f"The body is larger than {MAX_BODY // 1024} KiB",
    415: "The body is not sent as Content-Type: application/json",
    422: "A value breaks its schema or a rule (`field` names it)",
}


def document(routes: Iterable[Operation], prefix: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for operation in routes:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(operation)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Klubb POS and web-shop API",
            "version": "1",
            "description": "Enrol members at checkout, record purchases and refunds, redeem "
            "coupons and adjust points. Every request sends an API key made with "
            "`klubb apikey create` as `Authorization: Bearer <key>`; a key reaches one club "
            "and only its scopes. Times are ISO 8601 in UTC; money is in minor units.",
        },
        "servers": [{"url": prefix}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Scopes: " + ", ".join(apikeys.SCOPES),
                }
            },
            "schemas": schemas.SCHEMAS,
        },
    }


def _operation(operation: Operation) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "description": (operation.description + f" Scope: {operation.scope}.").strip(),
        "responses": _responses(operation),
    }
    if operation.params:
        entry["parameters"] = [
            {
                "name": param.name,
                "in": param.where,
                "required": True,
                "schema": dict(param.schema),
            }
            for param in operation.params
        ]
    if operation.body is not None:
        entry["requestBody"] = {
            "required": operation.body_required,
            "content": {"application/json": {"schema": schemas.ref(operation.body)}},
        }
    return entry


def _responses(operation: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(status): _json(description, name)
        for status, (description, name) in sorted(operation.responses.items())
    }
    statuses = {401, 403, *operation.errors}
    if operation.body is not None:
        statuses |= {400, 413, 415, 422}
    if any(param.where == "query" for param in operation.params):
        statuses.add(422)
    if any(param.where == "path" for param in operation.params):
        statuses.add(404)
    for status in sorted(statuses):
        responses[str(status)] = _json(ERRORS[status], "Error")
    responses["401"]["headers"] = {
        "WWW-Authenticate": {"required": True, "schema": {"type": "string"}}
    }
    return responses


def _json(description: str, name: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schemas.ref(name)}},
    }
