"""CRUD, server-set metadata and every Status error, through the real typed kubernetes_asyncio client."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

Call = Callable[[client.ApiClient, str], Awaitable[Any]]


def status_of(e: ApiException) -> dict[str, Any]:
    return json.loads(e.body)  # type: ignore[no-any-return]


async def test_create_sets_uid_timestamp_generation_and_one_resource_version_counter(
    api: client.ApiClient, ns: str
) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    cm = await core.create_namespaced_config_map(ns, {"metadata": {"name": "c1"}, "data": {"a": "1"}})
    deploy = await apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "w", "image": "nginx"}]},
                },
            },
        },
    )
    assert cm.metadata.uid and deploy.metadata.uid and cm.metadata.uid != deploy.metadata.uid
    assert cm.metadata.creation_timestamp is not None
    assert int(deploy.metadata.resource_version) > int(cm.metadata.resource_version)
    assert deploy.metadata.generation == 1
    assert deploy.spec.replicas == 1  # defaulted


async def test_writes_record_managed_fields_per_manager(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "m"}}, field_manager="ferry-restore")
    await core.patch_namespaced_config_map("m", ns, {"data": {"a": "1"}}, field_manager="ferry-edit")
    got = await core.read_namespaced_config_map("m", ns)
    assert [(f.manager, f.operation) for f in got.metadata.managed_fields] == [
        ("ferry-restore", "Update"),
        ("ferry-edit", "Update"),
    ]


async def test_generate_name_appends_five_random_characters(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    made = await core.create_namespaced_config_map(ns, {"metadata": {"generateName": "cfg-"}})
    assert made.metadata.name.startswith("cfg-") and len(made.metadata.name) == 9


async def test_replace_bumps_generation_only_when_the_spec_changes(api: client.ApiClient, ns: str) -> None:
    batch = client.BatchV1Api(api)
    pod = {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
    template = {"spec": {"template": {"spec": pod}}}
    await batch.create_namespaced_cron_job(
        ns, {"metadata": {"name": "tick"}, "spec": {"schedule": "0 * * * *", "jobTemplate": template}}
    )
    current = await batch.read_namespaced_cron_job("tick", ns)
    current.metadata.labels = {"tier": "front"}
    labelled = await batch.replace_namespaced_cron_job("tick", ns, current)
    assert labelled.metadata.generation == 1
    labelled.spec.schedule = "5 * * * *"
    changed = await batch.replace_namespaced_cron_job("tick", ns, labelled)
    assert changed.metadata.generation == 2
    again = await batch.replace_namespaced_cron_job("tick", ns, changed)
    assert again.metadata.resource_version == changed.metadata.resource_version  # a no-op keeps the RV


async def test_secret_string_data_is_folded_into_base64_data(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_secret(
        ns, {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}
    )
    secret = await core.read_namespaced_secret("s", ns)
    assert base64.b64decode(secret.data["password"]) == b"hunter2"
    assert secret.type == "Opaque"


async def test_dry_run_validates_without_storing(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    made = await core.create_namespaced_config_map(ns, {"metadata": {"name": "dry"}}, dry_run="All")
    assert made.metadata.name == "dry"
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_config_map("dry", ns)
    assert e.value.status == 404


async def test_list_across_namespaces_sorted_by_namespace_then_name(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    for name in ("b", "a"):
        await core.create_namespaced_config_map(ns, {"metadata": {"name": name}})
    everywhere = await core.list_config_map_for_all_namespaces()
    keys = [(i.metadata.namespace, i.metadata.name) for i in everywhere.items]
    assert keys == sorted(keys)
    assert (ns, "a") in keys and (ns, "b") in keys


async def _create_twice(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "dup"}})
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "dup"}})


async def _read_missing(api: client.ApiClient, ns: str) -> None:
    await client.CoreV1Api(api).read_namespaced_pod("nope", ns)


async def _read_missing_deployment(api: client.ApiClient, ns: str) -> None:
    await client.AppsV1Api(api).read_namespaced_deployment("nope", ns)


async def _stale_replace(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    made = await core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}, "data": {"v": "1"}})
    await core.replace_namespaced_config_map("c", ns, {"metadata": {"name": "c"}, "data": {"v": "2"}})
    made.data = {"v": "3"}
    await core.replace_namespaced_config_map("c", ns, made)


async def _no_name(api: client.ApiClient, ns: str) -> None:
    await client.CoreV1Api(api).create_namespaced_config_map(ns, {"metadata": {}})


async def _bad_name(api: client.ApiClient, ns: str) -> None:
    await client.CoreV1Api(api).create_namespaced_config_map(ns, {"metadata": {"name": "Not_Valid"}})


async def _missing_namespace(api: client.ApiClient, ns: str) -> None:
    await client.CoreV1Api(api).create_namespaced_config_map("absent-ns", {"metadata": {"name": "c"}})


async def _namespace_mismatch(api: client.ApiClient, ns: str) -> None:
    await client.CoreV1Api(api).create_namespaced_config_map(
        ns, {"metadata": {"name": "c", "namespace": "other"}}
    )


async def _terminating_namespace(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map(
        ns, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    )
    await core.delete_namespace(ns)
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "late"}})


async def _delete_default_namespace(api: client.ApiClient, ns: str) -> None:
    await client.CoreV1Api(api).delete_namespace("default")


async def _unknown_field_selector(api: client.ApiClient, ns: str) -> None:
    await client.CoreV1Api(api).list_namespaced_config_map(ns, field_selector="data.a=1")


async def _precondition_uid(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    await core.delete_namespaced_config_map("c", ns, body={"preconditions": {"uid": "not-the-uid"}})


async def _create_with_resource_version(api: client.ApiClient, ns: str) -> None:
    await client.CoreV1Api(api).create_namespaced_config_map(
        ns, {"metadata": {"name": "c", "resourceVersion": "12"}}
    )


async def _service_ip_out_of_range(api: client.ApiClient, ns: str) -> None:
    spec = {"clusterIP": "192.168.7.7", "ports": [{"port": 80}]}
    await client.CoreV1Api(api).create_namespaced_service(ns, {"metadata": {"name": "s"}, "spec": spec})


async def _service_ip_taken(api: client.ApiClient, ns: str) -> None:
    spec = {"clusterIP": "10.96.0.1", "ports": [{"port": 80}]}
    await client.CoreV1Api(api).create_namespaced_service(ns, {"metadata": {"name": "s"}, "spec": spec})


async def _job_with_an_old_selector(api: client.ApiClient, ns: str) -> None:
    old = {"batch.kubernetes.io/controller-uid": "from-another-cluster"}
    spec = {
        "selector": {"matchLabels": old},
        "template": {
            "metadata": {"labels": old},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
        },
    }
    await client.BatchV1Api(api).create_namespaced_job(ns, {"metadata": {"name": "j"}, "spec": spec})


async def _create_on_the_all_namespaces_path(api: client.ApiClient, ns: str) -> None:
    """POST to /api/v1/configmaps: that path only lists and watches; a real server answers 405."""
    await api.call_api(
        "/api/v1/configmaps",
        "POST",
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns}},
        response_types_map={201: "V1ConfigMap"},
        auth_settings=["BearerToken"],
    )


ERRORS = [
    pytest.param(
        _service_ip_out_of_range,
        422,
        "Invalid",
        "The range of valid IPs is 10.96.0.0/12",
        id="a cluster IP outside the service range is Invalid",
    ),
    pytest.param(
        _service_ip_taken,
        422,
        "Invalid",
        "provided IP is already allocated",
        id="a cluster IP in use by the kubernetes service is Invalid",
    ),
    pytest.param(
        _job_with_an_old_selector,
        422,
        "Invalid",
        "`selector` will be auto-generated",
        id="a Job restored with its old controller-uid selector is Invalid",
    ),
    pytest.param(
        _create_with_resource_version,
        500,
        "InternalError",
        "resourceVersion should not be set on objects to be created",
        id="creating with a resourceVersion fails as etcd3 refuses it",
    ),
    pytest.param(
        _create_twice,
        409,
        "AlreadyExists",
        'configmaps "dup" already exists',
        id="creating a taken name is AlreadyExists",
    ),
    pytest.param(
        _read_missing, 404, "NotFound", 'pods "nope" not found', id="reading a missing pod is NotFound"
    ),
    pytest.param(
        _read_missing_deployment,
        404,
        "NotFound",
        'deployments.apps "nope" not found',
        id="a missing object of a named group is qualified by its group",
    ),
    pytest.param(
        _stale_replace,
        409,
        "Conflict",
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; '
        "please apply your changes to the latest version and try again",
        id="replacing with a stale resourceVersion is Conflict",
    ),
    pytest.param(
        _no_name,
        422,
        "Invalid",
        'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required',
        id="creating without a name is Invalid",
    ),
    pytest.param(
        _bad_name, 422, "Invalid", 'ConfigMap "Not_Valid" is invalid', id="an upper-case name is Invalid"
    ),
    pytest.param(
        _missing_namespace,
        404,
        "NotFound",
        'namespaces "absent-ns" not found',
        id="creating in a missing namespace is NotFound",
    ),
    pytest.param(
        _namespace_mismatch,
        400,
        "BadRequest",
        "the namespace of the provided object does not match the namespace sent on the request",
        id="a body namespace that contradicts the URL is BadRequest",
    ),
    pytest.param(
        _terminating_namespace,
        403,
        "Forbidden",
        "because it is being terminated",
        id="creating in a terminating namespace is Forbidden",
    ),
    pytest.param(
        _delete_default_namespace,
        403,
        "Forbidden",
        'namespaces "default" is forbidden: this namespace may not be deleted',
        id="the default namespace may not be deleted",
    ),
    pytest.param(
        _unknown_field_selector,
        400,
        "BadRequest",
        "field label not supported: data.a",
        id="an unknown field selector is BadRequest",
    ),
    pytest.param(
        _precondition_uid,
        409,
        "Conflict",
        "Precondition failed: UID in precondition: not-the-uid",
        id="a failed delete precondition is Conflict",
    ),
    pytest.param(
        _create_on_the_all_namespaces_path,
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        id="creating on the all-namespaces path of a namespaced kind is MethodNotAllowed",
    ),
]


@pytest.mark.parametrize(("call", "code", "reason", "message"), ERRORS)
async def test_errors_carry_the_status_a_real_server_sends(
    api: client.ApiClient, ns: str, call: Call, code: int, reason: str, message: str
) -> None:
    with pytest.raises(ApiException) as caught:
        await call(api, ns)
    assert caught.value.status == code
    body = status_of(caught.value)
    assert body["kind"] == "Status" and body["status"] == "Failure"
    assert body["reason"] == reason and body["code"] == code
    assert message in body["message"]


async def test_not_found_details_name_the_resource(api: client.ApiClient, ns: str) -> None:
    with pytest.raises(ApiException) as caught:
        await client.AppsV1Api(api).read_namespaced_deployment("nope", ns)
    assert status_of(caught.value)["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


SELECTORS = [
    pytest.param("app=web", None, ["web-1", "web-2"], id="equality label selector"),
    pytest.param(
        "app!=web", None, ["db", "kube-root-ca.crt"], id="inequality includes objects without the label"
    ),
    pytest.param("app in (web,db),tier", None, ["db", "web-1"], id="set selector plus existence"),
    pytest.param("!tier", None, ["kube-root-ca.crt", "web-2"], id="non-existence"),
    pytest.param(
        "app notin (web)", "metadata.name!=kube-root-ca.crt", ["db"], id="notin with a field selector"
    ),
    pytest.param(None, "metadata.name=web-2", ["web-2"], id="field selector on the name"),
]


@pytest.mark.parametrize(("labels", "fields", "expected"), SELECTORS)
async def test_selectors_filter_lists(
    api: client.ApiClient, ns: str, labels: str | None, fields: str | None, expected: list[str]
) -> None:
    core = client.CoreV1Api(api)
    for name, lbl in (
        ("web-1", {"app": "web", "tier": "a"}),
        ("web-2", {"app": "web"}),
        ("db", {"app": "db", "tier": "b"}),
    ):
        await core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": lbl}})
    kwargs = {k: v for k, v in (("label_selector", labels), ("field_selector", fields)) if v}
    found = await core.list_namespaced_config_map(ns, **kwargs)
    assert [i.metadata.name for i in found.items] == expected


async def test_limit_and_continue_page_through_everything_once(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    for n in range(7):
        await core.create_namespaced_config_map(ns, {"metadata": {"name": f"c{n}"}})
    seen, token, pages = [], None, 0
    while True:
        page = await core.list_namespaced_config_map(ns, limit=3, _continue=token)
        pages += 1
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 8 - len(seen)
    assert pages == 3
    assert seen == sorted([f"c{n}" for n in range(7)] + ["kube-root-ca.crt"])


async def test_status_subresource_is_separate_from_the_main_resource(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_persistent_volume_claim(
        ns,
        {
            "metadata": {"name": "claim"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "none",
            },
            "status": {"phase": "Bound"},
        },
    )
    created = await core.read_namespaced_persistent_volume_claim("claim", ns)
    assert created.status.phase == "Pending"  # status is reset on create
    await core.patch_namespaced_persistent_volume_claim("claim", ns, {"status": {"phase": "Lost"}})
    assert (await core.read_namespaced_persistent_volume_claim("claim", ns)).status.phase == "Pending"
    await core.patch_namespaced_persistent_volume_claim_status("claim", ns, {"status": {"phase": "Lost"}})
    assert (await core.read_namespaced_persistent_volume_claim("claim", ns)).status.phase == "Lost"


async def test_finalizers_hold_a_deleted_object_until_they_are_removed(
    api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map(
        ns, {"metadata": {"name": "held", "finalizers": ["example.com/keep"]}}
    )
    await core.delete_namespaced_config_map("held", ns)
    held = await core.read_namespaced_config_map("held", ns)
    assert held.metadata.deletion_timestamp is not None
    await core.patch_namespaced_config_map("held", ns, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_config_map("held", ns)
    assert e.value.status == 404


async def test_delete_collection_removes_only_what_matches(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        await core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": {"app": app}}})
    await core.delete_collection_namespaced_config_map(ns, label_selector="app=x")
    left = await core.list_namespaced_config_map(ns, label_selector="app")
    assert [i.metadata.name for i in left.items] == ["c"]


async def test_cluster_scoped_objects_have_no_namespace(api: client.ApiClient) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    made = await rbac.create_cluster_role({"metadata": {"generateName": "reader-"}, "rules": []})
    assert made.metadata.namespace is None
    await rbac.delete_cluster_role(made.metadata.name)
    names = [r.metadata.name for r in (await rbac.list_cluster_role()).items]
    assert made.metadata.name not in names


async def _delete_config_map(api: client.ApiClient, ns: str, name: str) -> Any:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map(ns, {"metadata": {"name": name}})
    return await core.delete_namespaced_config_map(name, ns)


async def _delete_service_account(api: client.ApiClient, ns: str, name: str) -> Any:
    core = client.CoreV1Api(api)
    await core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
    return await core.delete_namespaced_service_account(name, ns)


async def _delete_resource_quota(api: client.ApiClient, ns: str, name: str) -> Any:
    core = client.CoreV1Api(api)
    await core.create_namespaced_resource_quota(ns, {"metadata": {"name": name}, "spec": {}})
    return await core.delete_namespaced_resource_quota(name, ns)


async def _delete_storage_class(api: client.ApiClient, ns: str, name: str) -> Any:
    storage = client.StorageV1Api(api)
    await storage.create_storage_class({"metadata": {"name": name}, "provisioner": "example.com/none"})
    return await storage.delete_storage_class(name)


DELETE_ANSWERS = [
    pytest.param(_delete_config_map, "Status", id="a ConfigMap's delete answers with a Success Status"),
    pytest.param(_delete_service_account, "ServiceAccount", id="a ServiceAccount's answers with the object"),
    pytest.param(_delete_resource_quota, "ResourceQuota", id="a ResourceQuota's answers with the object"),
    pytest.param(_delete_storage_class, "StorageClass", id="a StorageClass's answers with the object"),
]


@pytest.mark.parametrize(("delete", "kind"), DELETE_ANSWERS)
async def test_delete_answers_what_the_typed_client_expects(
    api: client.ApiClient, ns: str, unique: str, delete: Callable[..., Awaitable[Any]], kind: str
) -> None:
    """Registries with ReturnDeletedObject answer with the object; the typed API declares that kind."""
    answer = await delete(api, ns, f"gone-{unique}")
    assert answer.kind == kind
    if kind == "Status":
        assert answer.status == "Success"
    else:
        assert answer.metadata.name == f"gone-{unique}"
