"""Static checks of the deployment files (deploy/, docs/deploy.md): what cannot run here (PostgreSQL,
Celery workers, a Kubernetes cluster) must still validate against the libraries' own schemas and
agree with itself and with the code."""

import importlib
import json
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from dagster import AssetsDefinition
from dagster._config import Shape, process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from sqlalchemy.engine import make_url

from landslide_pipeline.defs import build_definitions
from landslide_pipeline.defs.concurrency import (
    CELERY_QUEUE_TAG,
    CPU_POOL,
    HEAVY_LIMITS,
    HEAVY_REQUESTS,
    K8S_CONFIG_TAG,
    build_executor,
    heavy_step_tags,
)
from landslide_pipeline.settings import ExecutionSettings, PipelineSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
VALUES = DEPLOY / "helm" / "values.yaml"
MLFLOW = DEPLOY / "helm" / "mlflow.yaml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
GPU = "nvidia.com/gpu"
#: Asset groups whose steps train or run models: the ones that ask Kubernetes for a GPU.
GPU_GROUPS = {"training", "mapping", "experiments"}
PG_ENV = {"DAGSTER_PG_HOST": "db.internal", "DAGSTER_PG_PORT": "5433", "DAGSTER_PG_USER": "landslide",
          "DAGSTER_PG_PASSWORD": "s3cret", "DAGSTER_PG_DB": "dagster"}

#: Key paths of Dagster's Helm chart (dagster/dagster), read from dagster-io/dagster:
#: helm/dagster/values.schema.json @ bdb8547fab497826eeec292bc160b549a0a329ef (top level, UserDeployment,
#: K8sRunLauncherConfig, RunK8sConfig, PostgreSQL, Daemon/RunCoordinator/QueuedRunCoordinatorConfig,
#: TagConcurrencyLimit, Global), helm/dagster/charts/dagster-user-deployments/values.yaml
#: @ 84842bc4418063ff0c6eb3cac1bfe1d8c1cac3f7, its templates/deployment-user.yaml @ 36f72b1733ae (codeServerArgs
#: runs `dagster code-server start -h 0.0.0.0 -p <port> ...`), and the top-level `concurrency` block:
#: helm/dagster/schema/schema/charts/dagster/subschema/concurrency.py @ 7dade7692d97 with
#: templates/helpers/instance/_concurrency.tpl @ 99dc34fc9b04 (dagster-io/dagster#33194). `[]`: each list item.
_UD = "dagster-user-deployments.deployments[]."
_K8S = "runLauncher.config.k8sRunLauncher."
_QRC = "dagsterDaemon.runCoordinator.config.queuedRunCoordinator."
CHART_KEYS = frozenset({
    "global.postgresqlSecretName", "global.dagsterHome", "global.serviceAccountName",
    "global.celeryConfigSecretName", "generatePostgresqlPasswordSecret", "imagePullSecrets",
    "dagster-user-deployments.enabled", "dagster-user-deployments.enableSubchart",
    "dagster-user-deployments.imagePullSecrets",
    *(_UD + key for key in (
        "name", "image.repository", "image.tag", "image.pullPolicy", "dagsterApiGrpcArgs", "codeServerArgs",
        "includeConfigInLaunchedRuns.enabled", "deploymentNamespace", "port", "env", "envConfigMaps", "envSecrets",
        "annotations", "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
        "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts", "volumes",
        "schedulerName", "initContainers", "sidecarContainers")),
    "runLauncher.type",
    *(_K8S + key for key in (
        "image.repository", "image.tag", "image.pullPolicy", "imagePullPolicy", "jobNamespace",
        "loadInclusterConfig", "kubeconfigFile", "envConfigMaps", "envSecrets", "envVars", "volumeMounts",
        "volumes", "labels", "failPodOnRunFailure", "resources", "schedulerName", "securityContext",
        "runK8sConfig.containerConfig", "runK8sConfig.podSpecConfig", "runK8sConfig.podTemplateSpecMetadata",
        "runK8sConfig.jobSpecConfig", "runK8sConfig.jobMetadata")),
    *("postgresql." + key for key in (
        "enabled", "image.repository", "image.tag", "image.pullPolicy", "postgresqlHost", "postgresqlUsername",
        "postgresqlPassword", "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service.port")),
    "dagsterDaemon.enabled", "dagsterDaemon.runCoordinator.enabled", "dagsterDaemon.runCoordinator.type",
    *(_QRC + key for key in (
        "maxConcurrentRuns", "tagConcurrencyLimits[].key", "tagConcurrencyLimits[].value",
        "tagConcurrencyLimits[].limit", "dequeueIntervalSeconds", "dequeueNumWorkers", "dequeueUseThreads",
        "blockOpConcurrencyLimitedRuns.enabled", "blockOpConcurrencyLimitedRuns.opConcurrencySlotBuffer")),
    "concurrency.enabled", "concurrency.pools.defaultLimit", "concurrency.pools.granularity",
    "concurrency.pools.opGranularityRunBuffer", "concurrency.runs.maxConcurrentRuns",
    "concurrency.runs.tagConcurrencyLimits[].key", "concurrency.runs.tagConcurrencyLimits[].value",
    "concurrency.runs.tagConcurrencyLimits[].limit",
})
#: Values whose contents are Kubernetes objects (their schema is Kubernetes', not the chart's): leaves here.
K8S_OBJECTS = {"env", "envConfigMaps", "envSecrets", "volumes", "volumeMounts", "podSecurityContext",
               "securityContext", "resources", "nodeSelector", "affinity", "tolerations", "labels", "annotations",
               "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata",
               "livenessProbe", "readinessProbe", "startupProbe", "initContainers", "sidecarContainers"}
#: What the values must set (the brief of this deployment), all of them chart keys.
REQUIRED_KEYS = {_UD + "image.repository", _UD + "codeServerArgs", _UD + "port", _UD + "env", _UD + "volumes",
                 _UD + "volumeMounts", "runLauncher.type", _K8S + "envVars", _K8S + "volumes", _K8S + "volumeMounts",
                 "postgresql.enabled", "dagsterDaemon.runCoordinator.type", "concurrency.runs.maxConcurrentRuns",
                 "concurrency.runs.tagConcurrencyLimits[].key", "concurrency.pools.defaultLimit"}
#: Run coordinator settings Dagster refuses beside `concurrency` pools or runs (dagster._core.instance.config).
RUN_QUEUE_FIELDS = ("maxConcurrentRuns", "tagConcurrencyLimits", "blockOpConcurrencyLimitedRuns")


# -- helpers -------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            lines.append(current)
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def instruction(name: str) -> list[str]:
    return [args for instr, args in dockerfile_instructions() if instr == name]


def values() -> dict:
    loaded = yaml.safe_load(VALUES.read_text())
    assert isinstance(loaded, dict)
    return loaded


def deployment() -> dict:
    deployments = values()["dagster-user-deployments"]["deployments"]
    assert len(deployments) == 1 and deployments[0]["name"] == "landslide-pipeline"
    return dict(deployments[0])


def deployment_env() -> dict[str, str]:
    return {item["name"]: item["value"] for item in deployment()["env"]}


def key_paths(node: object, prefix: str = "") -> Iterator[str]:
    """Dotted key paths of a values tree, ``[]`` for list items, stopping at Kubernetes objects."""
    last = prefix.rsplit(".", 1)[-1]
    if isinstance(node, dict) and node and last not in K8S_OBJECTS:
        for key, child in node.items():
            yield from key_paths(child, f"{prefix}.{key}" if prefix else key)
    elif isinstance(node, list) and node and all(isinstance(i, dict) for i in node) and last not in K8S_OBJECTS:
        for item in node:
            yield from key_paths(item, prefix + "[]")
    else:
        yield prefix


def mlflow_documents() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(MLFLOW.read_text()) if doc]


def k8s_tags(tags: dict) -> dict[str, str]:
    """Op tags as Dagster stores them: every value a string (dicts as JSON)."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in tags.items()}


def step_resources(tags: dict) -> dict:
    from dagster_k8s.job import get_user_defined_k8s_config

    return dict(get_user_defined_k8s_config(k8s_tags(tags)).container_config["resources"])


# -- (a) the team instance -----------------------------------------------------------------------


@pytest.fixture
def instance_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    return dict(config)


def test_instance_keeps_everything_in_postgres_from_the_environment(instance_config: dict) -> None:
    from dagster_postgres.storage import DagsterPostgresStorage
    from dagster_postgres.utils import pg_url_from_config

    assert list(instance_config["storage"]) == ["postgres"]
    resolved = process_config(Shape(DagsterPostgresStorage.config_type()), instance_config["storage"]["postgres"])
    assert resolved.success and resolved.value is not None, resolved.errors
    url = make_url(pg_url_from_config(resolved.value))
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "landslide", "s3cret", "db.internal", 5433, "dagster")
    url.get_dialect().import_dbapi()  # the driver the URL names is installed (the deploy extra)


def test_instance_queues_runs_and_pools_heavy_steps_per_op(instance_config: dict) -> None:
    for section, expected in (("run_coordinator", "QueuedRunCoordinator"), ("run_launcher", "DefaultRunLauncher")):
        entry = instance_config[section]
        assert entry["class"] == expected
        assert getattr(importlib.import_module(entry["module"]), entry["class"]).__name__ == expected
    assert instance_config["concurrency"]["pools"]["granularity"] == "op"
    assert instance_config["concurrency"]["pools"]["default_limit"] >= 1
    assert instance_config["concurrency"]["runs"]["max_concurrent_runs"] >= 1


# -- (b) the Celery workers' config --------------------------------------------------------------


def test_celery_config_validates_and_reads_the_broker_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv("LANDSLIDE_CELERY_BROKER", "redis://broker.internal:6380/0")
    monkeypatch.setenv("LANDSLIDE_CELERY_BACKEND", "redis://broker.internal:6380/1")
    config = get_validated_config(str(DEPLOY / "celery.yaml"))
    assert config["broker"] == "redis://broker.internal:6380/0"
    assert config["backend"] == "redis://broker.internal:6380/1"


# -- (c) step tags and executors -----------------------------------------------------------------


@pytest.fixture(scope="module")
def heavy_assets() -> dict[str, tuple[str, dict]]:
    """Every asset whose step carries a Kubernetes config: name -> (group, op tags)."""
    defs = build_definitions(PipelineSettings(architectures=("unet",), n_folds=2))
    heavy = {}
    for asset in defs.assets or []:
        assert isinstance(asset, AssetsDefinition)
        tags = dict(asset.op.tags)
        assert (K8S_CONFIG_TAG in tags) == (asset.op.pool == CPU_POOL), f"{asset.key}: pool and step tags disagree"
        if K8S_CONFIG_TAG in tags:
            heavy[asset.key.to_user_string()] = (asset.group_names_by_key[asset.key], tags)
    return heavy


def test_every_heavy_step_parses_as_kubernetes_config_with_its_requests(heavy_assets: dict) -> None:
    assert {"survey_tiles", "trained_model", "evaluation_table", "landslide_map"} <= set(heavy_assets)
    queue = ExecutionSettings.from_env().heavy_queue
    for name, (_, tags) in heavy_assets.items():
        resources = step_resources(tags)
        assert resources["requests"] == HEAVY_REQUESTS, name
        assert resources["limits"]["memory"] == HEAVY_LIMITS["memory"], name
        assert tags[CELERY_QUEUE_TAG] == queue, name


def test_exactly_training_mapping_and_experiments_ask_for_gpus(heavy_assets: dict) -> None:
    gpus = ExecutionSettings.from_env().k8s_gpus  # what the tags were built with
    asking = {name for name, (_, tags) in heavy_assets.items() if GPU in step_resources(tags)["limits"]}
    expected = {name for name, (group, _) in heavy_assets.items() if group in GPU_GROUPS} if gpus else set()
    assert asking == expected
    assert not gpus or {"trained_model", "landslide_map", "band_comparison"} <= asking
    assert all(step_resources(heavy_assets[name][1])["limits"][GPU] == str(gpus) for name in asking)


@pytest.mark.parametrize("gpus", [0, 2])
def test_the_gpu_count_follows_the_execution_settings(gpus: int) -> None:
    limits = step_resources(heavy_step_tags(gpu=True, settings=ExecutionSettings(k8s_gpus=gpus)))["limits"]
    assert limits.get(GPU) == (str(gpus) if gpus else None)
    assert GPU not in step_resources(heavy_step_tags(gpu=False, settings=ExecutionSettings(k8s_gpus=gpus)))["limits"]


def test_the_executors_are_the_deploy_packages_own() -> None:
    from dagster_k8s import k8s_job_executor

    assert build_executor(ExecutionSettings(executor="k8s")) is k8s_job_executor
    celery = build_executor(ExecutionSettings(executor="celery", celery_broker="redis://q:1/0",
                                              celery_backend="redis://q:1/1"))
    assert celery.name == "celery"
    resolved = celery.config_schema.resolve_config({})  # type: ignore[attr-defined]  # a configured schema
    assert resolved.success and resolved.value["config"]["broker"] == "redis://q:1/0"
    assert resolved.value["config"]["backend"] == "redis://q:1/1"


# -- (d) the Helm values and the MLflow manifests ------------------------------------------------


def test_helm_values_use_only_keys_the_chart_declares() -> None:
    used = set(key_paths(values()))
    assert not used - CHART_KEYS, f"not keys of the dagster chart: {sorted(used - CHART_KEYS)}"
    assert not REQUIRED_KEYS - used, f"missing: {sorted(REQUIRED_KEYS - used)}"


def test_the_code_server_runs_the_image_command_with_the_project_environment() -> None:
    server, env = deployment(), deployment_env()
    assert server["port"] == int(instruction("EXPOSE")[0])
    args = server["codeServerArgs"]
    assert args[args.index("-m") + 1] == PYPROJECT["tool"]["dagster"]["module_name"]
    assert args[args.index("--location-name") + 1] == PYPROJECT["tool"]["dagster"]["code_location_name"]
    assert env["LANDSLIDE_EXECUTOR"] == "k8s"
    ExecutionSettings(executor=env["LANDSLIDE_EXECUTOR"], k8s_gpus=int(env["LANDSLIDE_K8S_GPUS"]))  # valid values
    assert env["LANDSLIDE_ARTIFACT_ROOT"] == "mlflow-artifacts:/landslide-pipeline"
    assert env["LANDSLIDE_THREADS"] == HEAVY_REQUESTS["cpu"]
    mounts = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in server["volumes"]}
    assert mounts == {"landslide-data": env["LANDSLIDE_DATA"]} and claims == {"landslide-data": "landslide-data"}


def test_runs_get_the_code_servers_environment_and_volume() -> None:
    launcher = values()["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    config = launcher["config"]["k8sRunLauncher"]
    assert dict(item.split("=", 1) for item in config["envVars"]) == deployment_env()
    assert config["volumes"] == deployment()["volumes"]
    assert config["volumeMounts"] == deployment()["volumeMounts"]


def chart_postgres_db() -> dict:
    """The instance's database config as the chart's _postgresql.tpl writes it (chart-managed server)."""
    pg = values()["postgresql"]
    return {"username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": "dagster-postgresql", "db_name": pg["postgresqlDatabase"], "port": pg["service"]["port"],
            "params": pg.get("postgresqlParams", {}), "scheme": pg["postgresqlScheme"]}


def test_the_chart_instance_reaches_postgres_with_an_installed_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_postgres.run_storage import PostgresRunStorage
    from dagster_postgres.utils import pg_url_from_config

    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "s3cret")
    resolved = process_config(Shape(PostgresRunStorage.config_type()), {"postgres_db": chart_postgres_db()})
    assert resolved.success and resolved.value is not None, resolved.errors
    url = make_url(pg_url_from_config(resolved.value))
    assert (url.host, url.database, url.password) == ("dagster-postgresql", "dagster", "s3cret")
    url.get_dialect().import_dbapi()  # a bare postgresql:// would need psycopg 3, which the image lacks


def test_the_run_queue_and_pool_render_to_an_instance_dagster_accepts(tmp_path: Path) -> None:
    coordinator, concurrency = values()["dagsterDaemon"]["runCoordinator"], values()["concurrency"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator.get("config", {}).get("queuedRunCoordinator", {})
    assert concurrency["enabled"] and not set(RUN_QUEUE_FIELDS) & set(queued)
    runs, pools = concurrency["runs"], concurrency["pools"]
    # What the chart's _run-coordinator.tpl and _concurrency.tpl write into the instance's dagster.yaml.
    instance: dict[str, dict] = {
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"},
        "concurrency": {
            "pools": {"default_limit": pools["defaultLimit"], "granularity": pools["granularity"]},
            "runs": {"max_concurrent_runs": runs["maxConcurrentRuns"],
                     "tag_concurrency_limits": runs["tagConcurrencyLimits"]}},
    }
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance))
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    assert config["concurrency"]["pools"]["granularity"] == "op"
    assert [limit["key"] for limit in config["concurrency"]["runs"]["tag_concurrency_limits"]] == ["dagster/backfill"]
    # The same limits in the run coordinator as well: what Dagster refuses.
    instance["run_coordinator"]["config"] = {"max_concurrent_runs": runs["maxConcurrentRuns"]}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance))
    with pytest.raises(DagsterInvalidConfigError, match="max_concurrent_runs"):
        dagster_instance_config(str(tmp_path))


def test_mlflow_manifests_serve_the_tracking_uri_the_values_give() -> None:
    deployment_doc, service = mlflow_documents()
    assert (deployment_doc["kind"], service["kind"]) == ("Deployment", "Service")
    uri = urlparse(deployment_env()["MLFLOW_TRACKING_URI"])
    assert (uri.scheme, uri.hostname) == ("http", service["metadata"]["name"])
    (port,) = service["spec"]["ports"]
    assert port["port"] == uri.port
    pod = deployment_doc["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port["targetPort"] in named or port["targetPort"] in named.values()
    assert f"{uri.hostname}:{uri.port}" in next(
        e["value"] for e in container["env"] if e["name"] == "MLFLOW_SERVER_ALLOWED_HOSTS").split(",")


def test_the_mlflow_server_proxies_s3_and_keeps_runs_in_postgres() -> None:
    container = mlflow_documents()[0]["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[:2] == ["mlflow", "server"] and "--serve-artifacts" in command
    assert command[command.index("--artifacts-destination") + 1].startswith("s3://")
    backend = make_url(command[command.index("--backend-store-uri") + 1].replace("$(PG_PASSWORD)", "secret"))
    assert backend.get_backend_name() == "postgresql" and backend.database == "mlflow"
    backend.get_dialect().import_dbapi()  # the driver the URI names is in the image (the deploy extra)
    image = deployment()["image"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"  # the clients' MLflow
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e
               and "secretKeyRef" in e["valueFrom"]}
    assert secrets == {values()["global"]["postgresqlSecretName"]}
    assert [s["secretRef"]["name"] for s in container["envFrom"]] == ["mlflow-s3"]


# -- (e) the image -------------------------------------------------------------------------------


def test_the_image_pins_torch_as_the_project_does() -> None:
    (pin,) = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch")]
    assert pin == "torch==2.13.0"
    installs = [run for run in instruction("RUN") if pin in run.split()]
    assert installs and "--index-url" in installs[0]
    assert any(a.startswith("TORCH_INDEX=https://download.pytorch.org/whl/cpu") for a in instruction("ARG"))


def test_the_image_runs_the_projects_code_location_as_a_user() -> None:
    (cmd,) = instruction("CMD")
    argv = json.loads(cmd)
    assert argv[:3] == ["dagster", "code-server", "start"]
    assert argv[argv.index("-m") + 1] == PYPROJECT["tool"]["dagster"]["module_name"]
    assert argv[argv.index("--location-name") + 1] == PYPROJECT["tool"]["dagster"]["code_location_name"]
    assert argv[argv.index("-p") + 1] == instruction("EXPOSE")[0]
    assert instruction("FROM") == ["python:3.11-slim"] and instruction("WORKDIR") == ["/opt/landslide"]
    assert instruction("USER") and instruction("USER")[-1] not in ("root", "0")
    env = " ".join(instruction("ENV")).split()
    assert {"LANDSLIDE_DATA=/data", "LANDSLIDE_EXECUTOR=k8s"} <= set(env)


def test_the_image_installs_the_deploy_extra_beside_deploy_and_configs() -> None:
    assert any("pip install -e '.[deploy]'" in run for run in instruction("RUN"))
    copied = {args.split()[-1].removeprefix("./") for args in instruction("COPY")}
    assert {"landslide_pipeline", "configs", "deploy"} <= copied
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", "data", "mlruns", ".dagster", ".stack", ".git"} <= ignored


def test_the_deploy_extra_holds_the_packages_the_deployment_imports() -> None:
    extra = PYPROJECT["project"]["optional-dependencies"].get("deploy", [])
    names = {d.split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip() for d in extra}
    assert {"dagster-postgres", "dagster-celery", "dagster-k8s", "psycopg2-binary"} <= names
    assert any(d.startswith("dagster-celery[redis]") for d in extra)
