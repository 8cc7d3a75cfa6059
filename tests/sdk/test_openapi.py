"""The SDK's models and methods against the server's own OpenAPI document (`GET /openapi.json`).

These fail when the server and the SDK drift apart: a new endpoint with no SDK method, a new field
the SDK models do not know, a field the SDK requires that the server does not promise, a request
field the server would reject, or a real response that does not round-trip through the SDK model.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import memory_client
from memory_client import ContextItem, MemoryClient, MemoryStatus, Role
from memory_client import _models as sdk_models
from pydantic import BaseModel

# FastAPI's default 422 shape. This server never sends it (its 422 is `{code, detail, errors}`),
# so the SDK has no model for it; see the report on documenting the real error shape.
FASTAPI_DEFAULTS = {"HTTPValidationError", "ValidationError"}
ENUMS: dict[str, Any] = {"Role": Role, "MemoryStatus": MemoryStatus}
REQUEST_MODELS = {
    "AgentCreate",
    "ApiKeyCreate",
    "NamespaceCreate",
    "MemoryCreate",
    "MemoryBatchCreate",
    "MemoryUpdate",
    "SearchRequest",
    "ContextRequest",
}

# Every server operation and the MemoryClient method that calls it.
ENDPOINT_METHODS = {
    ("get", "/healthz"): "health",
    ("get", "/readyz"): "ready",
    ("get", "/v1/me"): "me",
    ("post", "/v1/agents"): "create_agent",
    ("get", "/v1/agents"): "list_agents",
    ("get", "/v1/agents/{agent_id}"): "get_agent",
    ("post", "/v1/agents/{agent_id}/keys"): "create_key",
    ("get", "/v1/agents/{agent_id}/keys"): "list_keys",
    ("delete", "/v1/keys/{key_id}"): "revoke_key",
    ("post", "/v1/namespaces"): "create_namespace",
    ("get", "/v1/namespaces"): "list_namespaces",
    ("get", "/v1/namespaces/{namespace_id}"): "get_namespace",
    ("post", "/v1/memories"): "create_memory",
    ("post", "/v1/memories/batch"): "create_memories",
    ("get", "/v1/memories"): "list_memories",
    ("get", "/v1/memories/{memory_id}"): "get_memory",
    ("patch", "/v1/memories/{memory_id}"): "update_memory",
    ("delete", "/v1/memories/{memory_id}"): "delete_memory",
    ("post", "/v1/search"): "search",
    ("post", "/v1/context"): "context",  # not on the server yet; checked once it is
}

# Query parameters of GET /v1/memories and the list_memories keyword that sends each.
LIST_PARAMETERS = {
    "namespace_id": "namespace_ids",
    "user_id": "user_id",
    "thread_id": "thread_id",
    "kind": "kinds",
    "tag": "tags",
    "status": "statuses",
    "created_after": "created_after",
    "created_before": "created_before",
    "limit": "limit",
    "cursor": "cursor",
}


def _ref(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _annotation(schema: dict[str, Any]) -> str:
    """How the SDK spells the Python type of a response schema: `Model` or `list[Model]`."""
    if schema.get("type") == "array":
        return f"list[{_annotation(schema['items'])}]"
    name = _ref(schema)
    assert name is not None, f"response schema without a component: {schema}"
    return name


def _sdk_model(name: str) -> type[BaseModel]:
    model = getattr(sdk_models, name, None)
    assert isinstance(model, type) and issubclass(model, BaseModel), f"SDK has no model {name}"
    return model


def test_every_component_is_covered_by_an_sdk_model(admin: httpx.Client) -> None:
    spec = admin.get("/openapi.json").json()
    components: dict[str, Any] = spec["components"]["schemas"]
    for name, schema in components.items():
        if name in FASTAPI_DEFAULTS:
            continue
        if "enum" in schema:
            assert {member.value for member in ENUMS[name]} == set(schema["enum"]), name
            assert name in memory_client.__all__
            continue
        model = _sdk_model(name)
        assert model.model_config.get("extra") in ("allow", "ignore"), f"{name} rejects new fields"
        fields = set(model.model_fields)
        server_fields = set(schema.get("properties", {}))
        server_required = set(schema.get("required", []))
        sdk_required = {n for n, f in model.model_fields.items() if f.is_required()}
        assert server_fields <= fields, f"{name}: SDK does not know {server_fields - fields}"
        assert sdk_required <= server_required, (
            f"{name}: SDK requires {sdk_required - server_required}, which the server may omit"
        )
        if name in REQUEST_MODELS:
            # The server forbids unknown request fields: the SDK must not send any.
            assert fields == server_fields, f"{name}: SDK would send {fields - server_fields}"
        else:
            assert name in memory_client.__all__, f"response model {name} is not exported"

    operations = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert operations <= set(ENDPOINT_METHODS), (
        f"no SDK method for {operations - set(ENDPOINT_METHODS)}"
    )
    for (method, path), sdk_method in ENDPOINT_METHODS.items():
        operation = spec["paths"].get(path, {}).get(method)
        if operation is None:
            continue  # /v1/context until the server has it
        function = getattr(MemoryClient, sdk_method)
        for status, response in operation["responses"].items():
            if status.startswith("2") or (path, status) == ("/readyz", "503"):
                schema = response["content"]["application/json"]["schema"]
                assert function.__annotations__["return"] == _annotation(schema), (method, path)

    list_params = {p["name"] for p in spec["paths"]["/v1/memories"]["get"]["parameters"]}
    assert list_params == set(LIST_PARAMETERS)
    for sdk_name in LIST_PARAMETERS.values():
        assert sdk_name in MemoryClient.list_memories.__annotations__, sdk_name
        if sdk_name not in ("limit", "cursor"):
            assert sdk_name in MemoryClient.iter_memories.__annotations__, sdk_name
    search_fields = set(spec["components"]["schemas"]["SearchRequest"]["properties"])
    assert search_fields <= set(MemoryClient.search.__annotations__)


def _assert_all_fields_known(value: Any, where: str) -> None:
    if isinstance(value, ContextItem):
        return  # free-form by design
    if isinstance(value, BaseModel):
        assert not value.model_extra, f"{where}: SDK model ignores {set(value.model_extra)}"
        for name in type(value).model_fields:
            _assert_all_fields_known(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _assert_all_fields_known(item, f"{where}[{index}]")


def _check(schema: dict[str, Any], value: Any, components: dict[str, Any], where: str) -> None:
    """`value` (a real response) honours `schema`, and round-trips through the SDK model."""
    if value is None:
        return
    if "anyOf" in schema:
        for variant in schema["anyOf"]:
            if variant.get("type") != "null":
                _check(variant, value, components, where)
        return
    if schema.get("type") == "array":
        for index, item in enumerate(value):
            _check(schema["items"], item, components, f"{where}[{index}]")
        return
    name = _ref(schema)
    if name is None:
        return
    component = components[name]
    properties = component.get("properties", {})
    missing = set(component.get("required", [])) - set(value)
    assert not missing, f"{where}: server response lacks required {missing}"
    assert set(value) <= set(properties), (
        f"{where}: undocumented fields {set(value) - set(properties)}"
    )
    model = _sdk_model(name).model_validate(value)
    _assert_all_fields_known(model, where)
    assert model.model_dump(mode="json") == value, f"{where}: {name} does not round-trip"
    for field, field_value in value.items():
        _check(properties[field], field_value, components, f"{where}.{field}")


def test_real_responses_round_trip_through_sdk_models(
    server: Any, admin: httpx.Client, make_agent: Any
) -> None:
    spec = admin.get("/openapi.json").json()
    agent = make_agent()
    client = agent.client
    samples: dict[tuple[str, str], httpx.Response] = {}

    def take(method: str, path: str, response: httpx.Response) -> Any:
        assert response.is_success, (method, path, response.status_code, response.text)
        samples[(method, path)] = response
        return response.json()

    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    take("get", "/healthz", client.get("/healthz"))
    take("get", "/readyz", client.get("/readyz"))
    other = take("post", "/v1/agents", admin.post("/v1/agents", json={"name": "openapi-agent"}))
    take("get", "/v1/agents", admin.get("/v1/agents"))
    take("get", "/v1/agents/{agent_id}", admin.get(f"/v1/agents/{other['id']}"))
    key_body = {"name": "k", "namespace_ids": [other["default_namespace_id"]], "expires_at": later}
    key = take(
        "post",
        "/v1/agents/{agent_id}/keys",
        admin.post(f"/v1/agents/{other['id']}/keys", json=key_body),
    )
    take("get", "/v1/agents/{agent_id}/keys", admin.get(f"/v1/agents/{other['id']}/keys"))
    take("delete", "/v1/keys/{key_id}", admin.delete(f"/v1/keys/{key['id']}"))
    take("get", "/v1/me", client.get("/v1/me"))
    namespace = take(
        "post",
        "/v1/namespaces",
        client.post("/v1/namespaces", json={"name": "oa", "description": "d"}),
    )
    take("get", "/v1/namespaces", client.get("/v1/namespaces"))
    take("get", "/v1/namespaces/{namespace_id}", client.get(f"/v1/namespaces/{namespace['id']}"))

    keyed = {"kind": "preference", "key": "tone", "user_id": "u", "thread_id": "t", "tags": ["a"]}
    client.post("/v1/memories", json={**keyed, "content": "Formal."})
    written = take(
        "post",
        "/v1/memories",
        client.post(
            "/v1/memories",
            json={**keyed, "content": "Casual.", "metadata": {"m": [1]}, "expires_at": later},
        ),
    )
    assert written["superseded_id"], "the sample exercises every MemoryWriteResult field"
    batch = [{"content": "Hello", "kind": "message", "role": "user"}, {"content": "A note"}]
    take("post", "/v1/memories/batch", client.post("/v1/memories/batch", json={"memories": batch}))
    page = take("get", "/v1/memories", client.get("/v1/memories", params={"limit": 1}))
    assert page["next_cursor"]
    memory_id = written["memory"]["id"]
    take("get", "/v1/memories/{memory_id}", client.get(f"/v1/memories/{memory_id}"))
    take(
        "patch",
        "/v1/memories/{memory_id}",
        client.patch(
            f"/v1/memories/{memory_id}", json={"importance": 0.7}, headers={"If-Match": '"1"'}
        ),
    )
    take("post", "/v1/search", client.post("/v1/search", json={"query": "tone", "k": 5}))
    take("delete", "/v1/memories/{memory_id}", client.delete(f"/v1/memories/{memory_id}"))
    if "/v1/context" in spec["paths"]:
        body = {"query": "tone", "budget_tokens": 200}
        take("post", "/v1/context", client.post("/v1/context", json=body))

    operations = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert operations == set(samples), f"unsampled endpoints: {operations - set(samples)}"
    components = spec["components"]["schemas"]
    for (method, path), response in samples.items():
        documented = spec["paths"][path][method]["responses"]
        assert str(response.status_code) in documented, (method, path, response.status_code)
        schema = documented[str(response.status_code)]["content"]["application/json"]["schema"]
        _check(schema, response.json(), components, f"{method.upper()} {path}")
