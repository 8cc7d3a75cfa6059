"""The SDK's models and methods against the server's own OpenAPI document (`GET /openapi.json`).

These fail when the server and the SDK drift apart: a new endpoint with no SDK method, a new field
the SDK models do not know, a field the SDK requires that the server does not promise, a request
field the server would reject, a parameter no SDK method can send, an error status the SDK does not
map, or a real response (success or error) that does not round-trip through the SDK model.

Whether a component is a request or a response shape is read from the document itself (what the
request bodies and the responses reference), so a new request-only component needs no list here.
`test_the_checks_catch_drift` feeds the checks a doctored copy of the document to prove they bite.
"""

from __future__ import annotations

import copy
import inspect
import json
import types
import typing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import memory_client
import pytest
from memory_client import GrantPermission, MemoryClient, MemoryStatus, Role, TaskStatus
from memory_client import _models as sdk_models
from memory_client._errors import APIStatusError, error_class
from pydantic import BaseModel

from tests.conftest import ADMIN_KEY

# FastAPI's default 422 shape. This server never sends it (its 422 is `ErrorBody`), and no longer
# documents it either; tolerated in case a future route brings it back.
FASTAPI_DEFAULTS = {"HTTPValidationError", "ValidationError"}
ENUMS: dict[str, Any] = {
    "Role": Role,
    "MemoryStatus": MemoryStatus,
    "GrantPermission": GrantPermission,
    "TaskStatus": TaskStatus,
}
# Request bodies the SDK builds from a method's keyword arguments: internal, not exported. Every
# other component (responses, and request parts callers build: MemoryCreate, RankingOptions, ...)
# must be in `memory_client.__all__`.
INTERNAL_BODIES = {
    "AgentCreate",
    "ApiKeyCreate",
    "NamespaceCreate",
    "MemoryBatchCreate",
    "MemoryUpdate",
    "SearchRequest",
    "ContextRequest",
    "GrantCreate",
    "SummaryRunRequest",
    "TaskCreate",
    "TaskUpdate",
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
    ("post", "/v1/namespaces/{namespace_id}/grants"): "create_grant",
    ("get", "/v1/namespaces/{namespace_id}/grants"): "list_grants",
    ("delete", "/v1/namespaces/{namespace_id}/grants/{grant_id}"): "revoke_grant",
    ("get", "/v1/namespaces/{namespace_id}/audit"): "list_audit_events",
    ("get", "/v1/namespaces/{namespace_id}/embeddings"): "list_embeddings",
    ("post", "/v1/memories"): "create_memory",
    ("post", "/v1/memories/batch"): "create_memories",
    ("get", "/v1/memories"): "list_memories",
    ("get", "/v1/memories/{memory_id}"): "get_memory",
    ("patch", "/v1/memories/{memory_id}"): "update_memory",
    ("delete", "/v1/memories/{memory_id}"): "delete_memory",
    ("get", "/v1/memories/{memory_id}/provenance"): "get_provenance",
    ("delete", "/v1/users/{user_id}/memories"): "forget_user",
    ("post", "/v1/summaries/run"): "run_summaries",
    ("get", "/v1/summaries/runs/{run_id}"): "get_summary_run",
    ("post", "/v1/search"): "search",
    ("post", "/v1/context"): "context",
    ("get", "/v1/events"): "list_events",
    ("get", "/v1/events/stream"): "stream_events",
    ("get", "/v1/export"): "export",
    ("post", "/v1/import"): "import_records",
    ("post", "/v1/tasks"): "create_task",
    ("get", "/v1/tasks"): "list_tasks",
    ("get", "/v1/tasks/{task_id}"): "get_task",
    ("patch", "/v1/tasks/{task_id}"): "update_task",
    ("delete", "/v1/tasks/{task_id}"): "delete_task",
}
# Operations whose success body is not one JSON document, and what the SDK method yields instead.
STREAMED = {"stream_events": "Iterator[EventPublic]", "export": "Iterator[str]"}
# Cursor-paginated list methods and the iterator that follows their cursor.
ITERATORS = {
    "list_memories": "iter_memories",
    "list_audit_events": "iter_audit_events",
    "list_events": "iter_events",
    "list_tasks": "iter_tasks",
}
# Query parameters the SDK spells differently: repeatable ones (an array in the document) take a
# list under a plural name; a single-valued one keeps its wire name (`forget_user`'s namespace_id).
QUERY_RENAMES = {
    "namespace_id": "namespace_ids",
    "kind": "kinds",
    "tag": "tags",
    "status": "statuses",
}
# Header parameters and the SDK keyword that sets each.
HEADER_ARGUMENTS = {
    "Idempotency-Key": "idempotency_key",
    "If-Match": "version",
    "Last-Event-ID": "last_event_id",
}
# Error bodies: ErrorBody, or ErrorBody with more (a task 409 names the task holding the slot).
ERROR_BODIES = {"ErrorBody", "TaskConflict"}
# Statuses a success-shaped body comes with although they are not 2xx.
NON_ERROR_STATUSES = {("/readyz", "503")}


# ---- reading the document -----------------------------------------------------------------------


def _ref(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def _model_name(component: str) -> str:
    """FastAPI splits a model used both ways into `X-Input` and `X-Output`; both are SDK `X`."""
    return component.removesuffix("-Input").removesuffix("-Output")


def _refs(schema: Any) -> Iterator[str]:
    """Every component a schema references, at any depth (not following the references)."""
    if isinstance(schema, dict):
        name = _ref(schema)
        if name is not None:
            yield name
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _refs(item)


def _reachable(roots: list[Any], components: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    pending = [name for root in roots for name in _refs(root)]
    while pending:
        name = pending.pop()
        if name not in seen and name in components:
            seen.add(name)
            pending.extend(_refs(components[name]))
    return seen


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            yield method, path, operation


def _usage(spec: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The components reachable from request bodies, and those reachable from responses."""
    components = spec["components"]["schemas"]
    bodies = [op.get("requestBody", {}) for _, _, op in _operations(spec)]
    answers = [op.get("responses", {}) for _, _, op in _operations(spec)]
    return _reachable(bodies, components), _reachable(answers, components)


def _classes(annotation: Any) -> set[Any]:
    """The classes an annotation is made of: `list[X] | None` gives {list, X, NoneType}."""
    found = {annotation} if isinstance(annotation, type) else set()
    origin = typing.get_origin(annotation)
    if origin is not None and origin is not types.UnionType and origin is not typing.Union:
        found.add(origin)
    for arg in typing.get_args(annotation):
        found |= _classes(arg)
    return found


def _annotation(schema: dict[str, Any]) -> str:
    """How the SDK spells the Python type of a response schema: `Model` or `list[Model]`."""
    if schema.get("type") == "array":
        return f"list[{_annotation(schema['items'])}]"
    name = _ref(schema)
    assert name is not None, f"response schema without a component: {schema}"
    return _model_name(name)


def _sdk_model(name: str) -> type[BaseModel] | None:
    model = getattr(sdk_models, _model_name(name), None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model
    return None


# ---- the checks ---------------------------------------------------------------------------------


def component_problems(spec: dict[str, Any]) -> list[str]:
    """Each way the SDK's models disagree with the document's components; empty when in step."""
    components: dict[str, Any] = spec["components"]["schemas"]
    requests, responses = _usage(spec)
    problems: list[str] = []
    for name, schema in components.items():
        if name in FASTAPI_DEFAULTS:
            continue
        if "enum" in schema:
            enum = ENUMS.get(_model_name(name))
            if enum is None:
                problems.append(f"{name}: SDK has no enum for it")
            elif {member.value for member in enum} != set(schema["enum"]):
                problems.append(f"{name}: SDK values {sorted(enum)} != server {schema['enum']}")
            if _model_name(name) not in memory_client.__all__:
                problems.append(f"{name}: enum is not exported")
            continue
        model = _sdk_model(name)
        if model is None:
            problems.append(f"{name}: SDK has no model for it")
            continue
        if model.model_config.get("extra") not in ("allow", "ignore"):
            problems.append(f"{name}: SDK model rejects new fields")
        fields = set(model.model_fields)
        properties: dict[str, Any] = schema.get("properties", {})
        server_required = set(schema.get("required", []))
        sdk_required = {n for n, f in model.model_fields.items() if f.is_required()}
        problems += [f"{name}: SDK does not know {f!r}" for f in sorted(set(properties) - fields)]
        problems += [
            f"{name}: SDK requires {f!r}, which the server may omit"
            for f in sorted(sdk_required - server_required)
        ]
        if name in requests:
            # The server forbids unknown request fields, and rejects a body missing a required one.
            problems += [f"{name}: SDK would send {f!r}" for f in sorted(fields - set(properties))]
            problems += [
                f"{name}: server requires {f!r}, which the SDK lets callers leave out"
                for f in sorted(server_required - sdk_required)
            ]
        for field, prop in properties.items():
            if field in model.model_fields:
                problems += _field_type_problems(name, field, prop, model, components)
        if _model_name(name) in INTERNAL_BODIES:
            if name not in requests or name in responses:
                problems.append(f"{name}: listed as an internal request body, but it is not one")
        elif _model_name(name) not in memory_client.__all__:
            problems.append(f"{name}: model is not exported")
    return problems


def _field_type_problems(
    name: str, field: str, prop: dict[str, Any], model: type[BaseModel], components: dict[str, Any]
) -> list[str]:
    """A field the server types as a component must be that SDK model (an enum may be `str`)."""
    classes = _classes(model.model_fields[field].annotation)
    names = {cls.__name__ for cls in classes}
    problems = []
    for ref in set(_refs(prop)):
        wanted = _model_name(ref)
        if wanted in names or ("enum" in components.get(ref, {}) and str in classes):
            continue
        problems.append(f"{name}.{field}: server type {wanted}, SDK type {sorted(names)}")
    return problems


def _method_parameters(name: str) -> set[str]:
    return set(inspect.signature(getattr(MemoryClient, name)).parameters) - {"self"}


def operation_problems(spec: dict[str, Any]) -> list[str]:
    """Each way the SDK's methods disagree with the document's operations; empty when in step."""
    components = spec["components"]["schemas"]
    problems: list[str] = []
    operations = {(method, path): op for method, path, op in _operations(spec)}
    problems += [
        f"no SDK method for {method.upper()} {path}"
        for method, path in sorted(set(operations) - set(ENDPOINT_METHODS))
    ]
    problems += [
        f"SDK calls {method.upper()} {path}, which the server does not serve"
        for method, path in sorted(set(ENDPOINT_METHODS) - set(operations))
    ]
    schemes = spec["components"].get("securitySchemes", {})
    for (method, path), operation in operations.items():
        where = f"{method.upper()} {path}"
        sdk_method = ENDPOINT_METHODS.get((method, path))
        if sdk_method is None:
            continue
        function = getattr(MemoryClient, sdk_method)
        accepted = _method_parameters(sdk_method)
        for status, response in operation["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if status.startswith("2") and sdk_method in STREAMED:
                if function.__annotations__["return"] != STREAMED[sdk_method]:
                    problems.append(f"{where}: {sdk_method} returns the wrong type for {status}")
                if "application/json" in response.get("content", {}):
                    problems.append(f"{where}: a JSON body, but {sdk_method} streams")
            elif status.startswith("2") or (path, status) in NON_ERROR_STATUSES:
                if function.__annotations__["return"] != _annotation(schema):
                    problems.append(f"{where}: {sdk_method} returns the wrong type for {status}")
            else:
                if _ref(schema) not in ERROR_BODIES:
                    problems.append(f"{where}: error {status} is not documented as ErrorBody")
                if error_class(int(status)) is APIStatusError:
                    problems.append(f"{where}: no specific SDK exception for {status}")
        for parameter in operation.get("parameters", []):
            location, wire_name = parameter["in"], parameter["name"]
            if location == "header":
                sdk_name = HEADER_ARGUMENTS.get(wire_name, wire_name)
            elif location == "query" and '"array"' in json.dumps(parameter.get("schema", {})):
                sdk_name = QUERY_RENAMES.get(wire_name, wire_name)
            else:
                sdk_name = wire_name
            if sdk_name not in accepted:
                problems.append(f"{where}: {sdk_method} cannot send {location} {wire_name!r}")
            iterator = ITERATORS.get(sdk_method)
            paged = location == "query" and sdk_name not in ("limit", "cursor")
            if iterator and paged and sdk_name not in _method_parameters(iterator):
                problems.append(f"{where}: {iterator} cannot send {wire_name!r}")
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        body_name = _ref(body.get("schema", {}))
        if body_name is not None:
            missing = set(components[body_name].get("properties", {})) - accepted
            if missing:
                problems.append(f"{where}: {sdk_method} cannot send {sorted(missing)}")
        if path.startswith("/v1/"):
            security = [name for entry in operation.get("security", []) for name in entry]
            if not security or any(schemes.get(s, {}).get("scheme") != "bearer" for s in security):
                problems.append(f"{where}: not documented as taking the Bearer key the SDK sends")
    for iterator in ITERATORS.values():
        if "page_size" not in _method_parameters(iterator):
            problems.append(f"{iterator} has no page_size")
    return problems


def test_the_sdk_matches_the_served_document(admin: httpx.Client) -> None:
    spec = admin.get("/openapi.json").json()
    assert component_problems(spec) == []
    assert operation_problems(spec) == []
    with MemoryClient("http://memory.test", "mk_key") as client:
        assert client._headers(client._call_me())["Authorization"] == "Bearer mk_key"


@pytest.fixture(scope="module")
def app_spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The document as the app generates it; no server, stores or model needed."""
    from memory_server.app import create_app
    from memory_server.config import Settings

    data_dir: Path = tmp_path_factory.mktemp("spec")
    return create_app(Settings(data_dir=data_dir, admin_key=ADMIN_KEY)).openapi()


def _doctored(spec: dict[str, Any], change: Any) -> dict[str, Any]:
    copied = copy.deepcopy(spec)
    change(copied["components"]["schemas"], copied["paths"])
    return copied


def _problems(spec: dict[str, Any]) -> set[str]:
    return set(component_problems(spec)) | set(operation_problems(spec))


def test_the_checks_catch_drift(app_spec: dict[str, Any]) -> None:
    """Each doctoring of the document is reported (drift already there is the test above's job)."""
    baseline = _problems(app_spec)

    def new_required_response_field(schemas: dict[str, Any], _: Any) -> None:
        schemas["MemoryPublic"]["properties"]["pinned"] = {"type": "boolean"}
        schemas["MemoryPublic"]["required"].append("pinned")

    def no_longer_promised(schemas: dict[str, Any], _: Any) -> None:
        schemas["GrantPublic"]["required"].remove("created_at")

    def new_request_only_part(schemas: dict[str, Any], _: Any) -> None:
        schemas["ShareOptions"] = {"type": "object", "properties": {"notify": {"type": "boolean"}}}
        schemas["GrantCreate"]["properties"]["options"] = {
            "$ref": "#/components/schemas/ShareOptions"
        }

    def new_required_request_field(schemas: dict[str, Any], _: Any) -> None:
        schemas["TierShares"]["properties"]["tools"] = {"type": "number"}
        schemas["TierShares"]["required"] = ["tools"]

    def request_field_dropped(schemas: dict[str, Any], _: Any) -> None:
        del schemas["ContextRequest"]["properties"]["max_candidates"]

    def retyped(schemas: dict[str, Any], _: Any) -> None:
        items = schemas["ContextResponse"]["properties"]["dropped"]["items"]
        items["$ref"] = "#/components/schemas/ContextItem"

    def new_enum_value(schemas: dict[str, Any], _: Any) -> None:
        schemas["GrantPermission"]["enum"].append("admin")

    def split_model(schemas: dict[str, Any], _: Any) -> None:
        schemas["RankingOptions-Input"] = schemas.pop("RankingOptions")
        schemas["RankingOptions-Input"]["properties"]["boost"] = {"type": "number"}
        for request in ("SearchRequest", "ContextRequest"):
            ranking = schemas[request]["properties"]["ranking"]
            ranking["$ref"] = "#/components/schemas/RankingOptions-Input"

    def new_endpoint(_: Any, paths: dict[str, Any]) -> None:
        paths["/v1/memories/{memory_id}"]["put"] = paths["/v1/memories/{memory_id}"]["patch"]

    def new_query_parameter(_: Any, paths: dict[str, Any]) -> None:
        audit = paths["/v1/namespaces/{namespace_id}/audit"]["get"]
        audit["parameters"].append({"name": "operation", "in": "query", "schema": {}})

    def new_error_status(_: Any, paths: dict[str, Any]) -> None:
        paths["/v1/search"]["post"]["responses"]["418"] = paths["/v1/search"]["post"]["responses"][
            "404"
        ]

    def undocumented_error_shape(_: Any, paths: dict[str, Any]) -> None:
        paths["/v1/context"]["post"]["responses"]["422"]["content"]["application/json"][
            "schema"
        ] = {"$ref": "#/components/schemas/HTTPValidationError"}

    def new_response_type(_: Any, paths: dict[str, Any]) -> None:
        keys = paths["/v1/agents/{agent_id}/keys"]["get"]["responses"]["200"]
        keys["content"]["application/json"]["schema"] = {
            "type": "array",
            "items": {"$ref": "#/components/schemas/ApiKeyPublic"},
        }

    expected = {
        new_required_response_field: "MemoryPublic: SDK does not know 'pinned'",
        no_longer_promised: "GrantPublic: SDK requires 'created_at'",
        new_request_only_part: "ShareOptions: SDK has no model",
        new_required_request_field: "TierShares: SDK does not know 'tools'",
        request_field_dropped: "ContextRequest: SDK would send 'max_candidates'",
        retyped: "ContextResponse.dropped: server type ContextItem",
        new_enum_value: "GrantPermission: SDK values",
        split_model: "RankingOptions-Input: SDK does not know 'boost'",
        new_endpoint: "no SDK method for PUT /v1/memories/{memory_id}",
        new_query_parameter: "list_audit_events cannot send query 'operation'",
        new_error_status: "no specific SDK exception for 418",
        undocumented_error_shape: "error 422 is not documented as ErrorBody",
        new_response_type: "list_keys returns the wrong type for 200",
    }
    for change, message in expected.items():
        new = _problems(_doctored(app_spec, change)) - baseline
        assert any(message in problem for problem in new), (change.__name__, new)
    tiers = _problems(_doctored(app_spec, new_required_request_field)) - baseline
    assert any("server requires 'tools'" in problem for problem in tiers)


# ---- real responses -----------------------------------------------------------------------------


def _assert_all_fields_known(value: Any, where: str) -> None:
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
    if name is None or "enum" in components[name]:
        return
    component = components[name]
    properties = component.get("properties", {})
    missing = set(component.get("required", [])) - set(value)
    assert not missing, f"{where}: server response lacks required {missing}"
    assert set(value) <= set(properties), (
        f"{where}: undocumented fields {set(value) - set(properties)}"
    )
    model = _sdk_model(name)
    assert model is not None, f"SDK has no model {name}"
    parsed = model.model_validate(value)
    _assert_all_fields_known(parsed, where)
    dumped = parsed.model_dump(mode="json", exclude_unset=True)  # optional fields may be omitted
    assert dumped == value, f"{where}: {name} does not round-trip"
    for field, field_value in value.items():
        _check(properties[field], field_value, components, f"{where}.{field}")


def test_real_responses_round_trip_through_sdk_models(
    server: Any, admin: httpx.Client, make_agent: Any
) -> None:
    spec = admin.get("/openapi.json").json()
    agent = make_agent()
    grantee = make_agent()
    client = agent.client
    samples: list[tuple[str, str, httpx.Response]] = []

    def take(method: str, path: str, response: httpx.Response) -> Any:
        assert response.is_success, (method, path, response.status_code, response.text)
        samples.append((method, path, response))
        return response.json()

    def refused(method: str, path: str, response: httpx.Response, status: int) -> Any:
        assert response.status_code == status, (method, path, response.status_code, response.text)
        samples.append((method, path, response))
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

    grants = f"/v1/namespaces/{namespace['id']}/grants"
    grant_path = "/v1/namespaces/{namespace_id}/grants"
    grant = take(
        "post", grant_path, client.post(grants, json={"agent_id": grantee.id, "permission": "read"})
    )
    regrant = take(
        "post",
        grant_path,
        client.post(grants, json={"agent_id": grantee.id, "permission": "write"}),
    )
    assert (samples[-2][2].status_code, samples[-1][2].status_code) == (201, 200)
    assert regrant["id"] == grant["id"]
    take("get", grant_path, client.get(grants))
    shared = {"content": "Shared note", "namespace_id": namespace["id"]}
    assert grantee.client.post("/v1/memories", json=shared).status_code == 201
    assert grantee.client.get("/v1/memories", params={"namespace_id": namespace["id"]}).is_success
    audit_path = "/v1/namespaces/{namespace_id}/audit"
    audit = f"/v1/namespaces/{namespace['id']}/audit"
    page = take("get", audit_path, client.get(audit, params={"limit": 1}))
    assert page["next_cursor"] and page["data"][0]["agent_id"] == grantee.id
    take("get", audit_path, client.get(audit, params={"cursor": page["next_cursor"]}))
    take(
        "delete",
        "/v1/namespaces/{namespace_id}/grants/{grant_id}",
        client.delete(f"{grants}/{grant['id']}"),
    )

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
    batch = [
        {
            "content": "Hello, what tone do you like?",
            "kind": "message",
            "role": "user",
            "thread_id": "t",
        },
        {"content": "A note about tone", "user_id": "u"},
    ]
    notes = take(
        "post", "/v1/memories/batch", client.post("/v1/memories/batch", json={"memories": batch})
    )
    note_id = notes["results"][1]["memory"]["id"]
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
    embeddings_path = "/v1/namespaces/{namespace_id}/embeddings"
    embeddings = f"/v1/namespaces/{agent.namespace_id}/embeddings"
    page = take("get", embeddings_path, client.get(embeddings, params={"query": "tone"}))
    assert page["query"] and page["data"], "the sample exercises QueryEmbedding, MemoryEmbedding"
    take("get", embeddings_path, client.get(embeddings, params={"limit": 1, "kind": "note"}))
    context_body = {
        "query": "tone",
        "budget_tokens": 200,
        "user_id": "u",
        "thread_id": "t",
        "ranking": {"min_relevance": 0},
    }
    context = take("post", "/v1/context", client.post("/v1/context", json=context_body))
    assert {item["tier"] for item in context["items"]} == {"thread", "facts", "memories"}
    assert context["dropped"], "the sample exercises DroppedItem"
    take("delete", "/v1/memories/{memory_id}", client.delete(f"/v1/memories/{memory_id}"))

    # Summaries: old messages condensed, the summary's provenance, deletes that reach it.
    long_ago = datetime.now(UTC) - timedelta(days=30)
    old = [
        {
            "content": " ".join(f"Day {i} of the Porto plan: item {j} settled." for j in range(6)),
            "kind": "message",
            "role": "user",
            "user_id": "old-user",
            "thread_id": "old",
            "created_at": (long_ago + timedelta(minutes=i)).isoformat(),
        }
        for i in range(4)
    ]
    sources = client.post("/v1/memories/batch", json={"memories": old}).json()["results"]
    run_body = {"namespace_id": agent.namespace_id}
    run_path = "/v1/summaries/run"
    plan = take("post", run_path, client.post(run_path, json={**run_body, "dry_run": True}))
    assert plan["plan"], "the sample exercises SummaryGroupPlan"
    run = take("post", run_path, client.post(run_path, json=run_body))
    (summary_id,) = run["summary_ids"]
    take("get", "/v1/summaries/runs/{run_id}", client.get(f"/v1/summaries/runs/{run['id']}"))
    take(
        "get",
        "/v1/memories/{memory_id}/provenance",
        client.get(f"/v1/memories/{summary_id}/provenance"),
    )
    source_id = sources[0]["memory"]["id"]
    deleted = take("delete", "/v1/memories/{memory_id}", client.delete(f"/v1/memories/{source_id}"))
    assert deleted["also_deleted"] == [summary_id]
    forget = client.delete(
        "/v1/users/old-user/memories", params={"namespace_id": agent.namespace_id}
    )
    assert len(take("delete", "/v1/users/{user_id}/memories", forget)["deleted"]) == 3

    refused("get", "/v1/memories/{memory_id}", client.get(f"/v1/memories/{memory_id}"), 404)
    stale = client.patch(f"/v1/memories/{note_id}", json={"tags": []}, headers={"If-Match": '"9"'})
    refused("patch", "/v1/memories/{memory_id}", stale, 412)
    invalid = refused("post", "/v1/context", client.post("/v1/context", json={"query": "x"}), 422)
    assert invalid["errors"], "the sample exercises ErrorBody.errors"
    refused("get", audit_path, grantee.client.get(audit), 404)

    # The event log, export and import.
    events = take("get", "/v1/events", client.get("/v1/events", params={"limit": 2}))
    assert events["has_more"] and events["data"][0]["details"], "the sample exercises EventPublic"
    with client.stream("GET", "/v1/events/stream", params={"after": "0"}) as stream:
        assert stream.status_code == 200
        samples.append(("get", "/v1/events/stream", stream))
    refused("get", "/v1/events", client.get("/v1/events", params={"after": "x"}), 400)
    exported = client.get("/v1/export", params={"namespace_id": agent.namespace_id})
    assert exported.status_code == 200
    samples.append(("get", "/v1/export", exported))
    markdown = client.get(
        "/v1/export", params={"namespace_id": agent.namespace_id, "format": "markdown"}
    )
    samples.append(("get", "/v1/export", markdown))
    mine = take("post", "/v1/namespaces", client.post("/v1/namespaces", json={"name": "copy"}))
    imported = take(
        "post",
        "/v1/import",
        client.post("/v1/import", params={"namespace_id": mine["id"]}, content=exported.text),
    )
    assert imported["conflicts"], "the sample exercises ImportConflict"
    refused(
        "post", "/v1/import", client.post("/v1/import", params={"namespace_id": mine["id"]}), 400
    )

    # Tasks: planned, started, a second start refused with the holder, completed, deleted.
    task_path = "/v1/tasks/{task_id}"
    plan = {"title": "Plan the trip", "thread_id": "t", "context": {"step": 1}}
    first = take("post", "/v1/tasks", client.post("/v1/tasks", json=plan))
    running = {"title": "Book it", "thread_id": "t", "status": "in_progress"}
    second = take("post", "/v1/tasks", client.post("/v1/tasks", json=running))
    take("get", "/v1/tasks", client.get("/v1/tasks", params={"status": ["pending"]}))
    take("get", task_path, client.get(f"/v1/tasks/{first['id']}"))
    start = {"status": "in_progress"}
    version = {"If-Match": '"1"'}
    held = client.patch(f"/v1/tasks/{first['id']}", json=start, headers=version)
    assert refused("patch", task_path, held, 409)["task"]["id"] == second["id"]
    done = {"status": "completed", "result": {"booked": True}}
    take("patch", task_path, client.patch(f"/v1/tasks/{second['id']}", json=done, headers=version))
    take("delete", task_path, client.delete(f"/v1/tasks/{first['id']}"))

    operations = {(method, path) for method, path, _ in _operations(spec)}
    sampled = {(method, path) for method, path, response in samples if response.is_success}
    assert operations == sampled, f"unsampled endpoints: {operations - sampled}"
    components = spec["components"]["schemas"]
    for method, path, response in samples:
        documented = spec["paths"][path][method]["responses"]
        assert str(response.status_code) in documented, (method, path, response.status_code)
        content = documented[str(response.status_code)]["content"]
        if "application/json" not in content:  # a stream: its media type is what is documented
            media_type = response.headers["content-type"].split(";")[0]
            assert media_type in content, (method, path, media_type)
            continue
        schema = content["application/json"]["schema"]
        _check(schema, response.json(), components, f"{method.upper()} {path}")
