"""The team stack on one machine: start it with one command, stop it with another.

``landslide stack start`` starts, in a folder of the project's own (``.stack/`` by default):

- a private PostgreSQL cluster (Debian's ``postgresql`` binaries; never the system cluster), bound
  to 127.0.0.1 and a socket in the folder, with a generated password; databases ``dagster`` and
  ``mlflow``;
- Redis (Debian's ``redis-server``, installed with apt-get when missing), the Celery broker;
- an MLflow tracking server on the ``mlflow`` database, serving the artifacts (the models) from a
  folder of the stack, or any ``--artifacts-destination`` MLflow takes (``s3://...``);
- Dagster's code server (the project's definitions with ``LANDSLIDE_EXECUTOR=celery``), webserver
  and daemon on an instance in PostgreSQL (``deploy/dagster.yaml``);
- Celery workers (``deploy/celery.yaml``), each one step at a time, listening to Celery's
  ``dagster`` queue and the heavy steps' queue, with the cores shared out between them.

``landslide stack stop`` stops every process the start recorded (by its PIDs, in ``stack.json``)
and the cluster; the data stay for the next start. ``stack.env`` holds the environment a client
(``landslide train``, a notebook, the tests) needs to use the stack: ``set -a; . .stack/stack.env``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.error import URLError

from landslide_pipeline.settings import ENVIRONMENT
from landslide_pipeline.stack.services import Service, StackError, group_alive, log_tail, stop_process_groups
from landslide_pipeline.training.performance import available_cores

#: The shipped deployment config (``deploy/``).
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROJECT = DEPLOY.parent
USER = "landslide"
LOCATION = "landslide_pipeline"
#: How long each service may take to answer after its start, in seconds (a cold import of torch
#: and MLflow's first database migration are the slow ones).
READY_TIMEOUT = 180.0

#: Variables of the stack's own set-up: name -> (default, meaning).
STACK_ENVIRONMENT: dict[str, tuple[str, str]] = {
    "LANDSLIDE_STACK_DIR": (".stack", "the stack's folder: cluster, logs, Dagster home, artifacts"),
    "LANDSLIDE_STACK_PORTS": ("54329,63799,5100,4266,3100",
                              "PostgreSQL, Redis, MLflow, code server and Dagster UI ports on 127.0.0.1"),
    "LANDSLIDE_STACK_WORKERS": ("2", "Celery worker processes (each runs one step at a time)"),
    "LANDSLIDE_STACK_ARTIFACTS": ("", "the MLflow server's artifact store: empty for <stack>/artifacts, or "
                                      "a URI such as s3://bucket/prefix (MLFLOW_S3_ENDPOINT_URL for S3-compatible)"),
}

#: The ports of ``LANDSLIDE_STACK_PORTS``'s default, in its order.
_DEFAULT_PORTS = tuple(int(port) for port in STACK_ENVIRONMENT["LANDSLIDE_STACK_PORTS"][0].split(","))


@dataclass(frozen=True)
class StackConfig:
    """Where the stack lives and listens.

    Attributes:
        root: The stack's folder.
        data_dir: The pipeline's data folder, shared by every worker (a shared POSIX volume across machines).
        pg_port, redis_port, mlflow_port, code_port, web_port: Ports on 127.0.0.1.
        workers: Celery worker processes.
        artifacts: The MLflow server's artifact destination; empty: ``root/artifacts``.
        extra_env: Variables passed to every service on top of this process's environment
            (e.g. ``LANDSLIDE_FOLDS``, ``LANDSLIDE_ARCHITECTURES``).
    """

    root: Path
    data_dir: Path
    pg_port: int = _DEFAULT_PORTS[0]
    redis_port: int = _DEFAULT_PORTS[1]
    mlflow_port: int = _DEFAULT_PORTS[2]
    code_port: int = _DEFAULT_PORTS[3]
    web_port: int = _DEFAULT_PORTS[4]
    workers: int = int(STACK_ENVIRONMENT["LANDSLIDE_STACK_WORKERS"][0])
    artifacts: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, data_dir: str) -> StackConfig:
        """Reads the LANDSLIDE_STACK_* variables (``STACK_ENVIRONMENT``)."""
        value = {name: os.environ.get(name, default) for name, (default, _) in STACK_ENVIRONMENT.items()}
        ports = [p.strip() for p in value["LANDSLIDE_STACK_PORTS"].split(",")]
        if len(ports) != 5 or not all(p.isdigit() for p in ports):
            raise StackError(f"LANDSLIDE_STACK_PORTS needs 5 port numbers, got {value['LANDSLIDE_STACK_PORTS']!r}")
        if not value["LANDSLIDE_STACK_WORKERS"].isdigit() or int(value["LANDSLIDE_STACK_WORKERS"]) < 1:
            raise StackError(f"LANDSLIDE_STACK_WORKERS must be 1 or more, got {value['LANDSLIDE_STACK_WORKERS']!r}")
        pg, redis, mlflow, code, web = (int(p) for p in ports)
        return cls(Path(value["LANDSLIDE_STACK_DIR"]).resolve(), Path(data_dir).resolve(), pg, redis, mlflow, code,
                   web, int(value["LANDSLIDE_STACK_WORKERS"]), value["LANDSLIDE_STACK_ARTIFACTS"])

    @property
    def pg_data(self) -> Path:
        return self.root / "postgres"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state_file(self) -> Path:
        """The running stack's PIDs and settings."""
        return self.root / "stack.json"

    @property
    def env_file(self) -> Path:
        return self.root / "stack.env"

    @property
    def artifact_destination(self) -> str:
        return self.artifacts or str(self.root / "artifacts")

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def webserver_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def database_uri(self, password: str, database: str) -> str:
        """SQLAlchemy's URI of a database of the cluster, through psycopg2 (the ``deploy`` extra's driver;
        SQLAlchemy 2.1 would take psycopg 3 for a bare ``postgresql://``)."""
        return f"postgresql+psycopg2://{USER}:{password}@127.0.0.1:{self.pg_port}/{database}"

    def client_env(self, password: str) -> dict[str, str]:
        """What a client and every service needs to use the stack (written to ``stack.env``)."""
        return {
            **self.extra_env,
            "DAGSTER_HOME": str(self.dagster_home),
            "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.pg_port), "DAGSTER_PG_USER": USER,
            "DAGSTER_PG_PASSWORD": password, "DAGSTER_PG_DB": "dagster",
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            # The server's proxied store: clients upload models through it, never to their own disk.
            "LANDSLIDE_ARTIFACT_ROOT": "mlflow-artifacts:/landslide-pipeline",
            "LANDSLIDE_DATA": str(self.data_dir),
            "LANDSLIDE_EXECUTOR": "celery",
            "LANDSLIDE_CELERY_BROKER": f"redis://127.0.0.1:{self.redis_port}/0",
            "LANDSLIDE_CELERY_BACKEND": f"redis://127.0.0.1:{self.redis_port}/1",
        }


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its server commands as the ``postgres`` system user then."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def postgres_bin() -> Path:
    """The folder of Debian's PostgreSQL server binaries (``initdb``, ``pg_ctl``, ``postgres``).

    Raises:
        StackError: no PostgreSQL server is installed.
    """
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.insert(0, Path(found))
    if not candidates:
        raise StackError("PostgreSQL server binaries not found (initdb): `apt-get install postgresql`")
    return candidates[0].parent


def ensure_redis() -> str:
    """The ``redis-server`` binary, installed with apt-get when missing (as root).

    Raises:
        StackError: missing and not installable here.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise StackError("redis-server is missing: install it (`sudo apt-get install redis-server`)")
    print("installing redis-server (apt-get)", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"],
                          check=False, capture_output=True, text=True,
                          env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    found = shutil.which("redis-server")
    if done.returncode != 0 or not found:
        raise StackError(f"apt-get install redis-server failed:\n{done.stderr[-2000:]}")
    # Debian starts a system redis on 6379 after installing: not ours, and not used (the stack has its own port).
    return found


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (URLError, ConnectionError, TimeoutError, OSError):
            return False
    return check


class Stack:
    """Starts, checks and stops the stack described by a ``StackConfig``."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config

    # -- state ---------------------------------------------------------------------------------

    def state(self) -> dict | None:
        """What the last start recorded (PIDs, ports), or None when no stack runs from this folder."""
        if not self.config.state_file.exists():
            return None
        return dict(json.loads(self.config.state_file.read_text()))

    def _record(self, pids: dict[str, int], password: str) -> None:
        state = {"pids": pids, "config": {**asdict(self.config), "root": str(self.config.root),
                                          "data_dir": str(self.config.data_dir)}}
        self.config.state_file.write_text(json.dumps(state, indent=2))
        env = self.config.client_env(password)
        self.config.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.config.env_file.chmod(0o600)

    def password(self) -> str:
        """The cluster's password, generated at its creation (readable by the owner only)."""
        return (self.config.root / "postgres.password").read_text().strip()

    # -- start ---------------------------------------------------------------------------------

    def start(self) -> dict[str, int]:
        """Starts every service and waits until each answers; on failure stops what it started.

        Returns:
            The PID of each service (the cluster's postmaster as ``postgres``).

        Raises:
            StackError: a service failed to start (the message holds the end of its log), or a
                stack already runs from this folder.
        """
        if self.state() is not None:
            raise StackError(f"a stack already runs from {self.config.root} (landslide stack stop first)")
        config = self.config
        for folder in (config.root, config.logs, config.dagster_home, config.data_dir):
            folder.mkdir(parents=True, exist_ok=True)
        redis = ensure_redis()
        pids: dict[str, int] = {}
        try:
            pids["postgres"] = self._start_postgres()
            password = self.password()
            self._record(pids, password)
            self._create_databases(password)
            self._write_dagster_home()
            # The venv's commands first: dagster-celery starts `celery` by name.
            path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
            # Temporary files (sockets of the code server, uploads) stay in the stack's folder too.
            (config.root / "tmp").mkdir(exist_ok=True)
            env = {**os.environ, **config.client_env(password), "PYTHONUNBUFFERED": "1", "PATH": path,
                   "TMPDIR": str(config.root / "tmp")}
            # Redis and MLflow start while the Dagster tables are made; Dagster's services after them.
            migrate = subprocess.Popen([self._bin("dagster"), "instance", "migrate"], env=env, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            first = self._start([self._redis(redis, env), self._mlflow(env)], pids, password)
            self._tables_made(migrate)
            self._wait(first + self._start([self._code_server(env), *self._workers(env)], pids, password))
            self._wait(self._start([self._webserver(env), self._daemon(env)], pids, password))
        except BaseException:
            self._stop(pids)
            raise
        return pids

    def _start(self, services: list[Service], pids: dict[str, int], password: str) -> list[tuple[Service, int]]:
        started = [(service, service.start(self.config.logs, PROJECT)) for service in services]
        for service, pid in started:
            pids[service.name] = pid
        self._record(pids, password)
        return started

    def _wait(self, started: list[tuple[Service, int]]) -> None:
        for service, pid in started:
            service.wait_ready(pid, self.config.logs, READY_TIMEOUT)

    def _start_postgres(self) -> int:
        config, binaries = self.config, postgres_bin()
        config.pg_data.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(config.pg_data, "postgres", "postgres")
            config.pg_data.chmod(0o700)
        if not (config.pg_data / "PG_VERSION").exists():
            password = secrets.token_urlsafe(18)
            secret = config.root / "postgres.password"
            secret.write_text(password)
            secret.chmod(0o600)
            pwfile = config.root / ".initdb-password"
            pwfile.write_text(password)
            if os.geteuid() == 0:
                shutil.chown(pwfile, "postgres", "postgres")
            try:
                self._run_postgres([str(binaries / "initdb"), "-D", str(config.pg_data), "-U", USER,
                                    f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8"], "initdb")
            finally:
                pwfile.unlink(missing_ok=True)
        log = config.logs / "postgres.log"
        log.touch()
        if os.geteuid() == 0:
            shutil.chown(log, "postgres", "postgres")
        # Loopback and a socket in the cluster's own folder only; pg_ctl -w returns once it accepts connections.
        options = f"-c listen_addresses=127.0.0.1 -p {config.pg_port} -c unix_socket_directories={config.pg_data}"
        self._run_postgres([str(binaries / "pg_ctl"), "start", "-w", "-t", "120", "-D", str(config.pg_data),
                            "-l", str(log), "-o", options], "postgres")
        return int((config.pg_data / "postmaster.pid").read_text().split()[0])

    def _run_postgres(self, argv: list[str], name: str) -> None:
        done = subprocess.run(_as_postgres(argv), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"{name} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}\n"
                             f"{log_tail(self.config.logs / 'postgres.log')}")

    def _create_databases(self, password: str) -> None:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.config.pg_port, user=USER, password=password,
                                      dbname="postgres")
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        try:
            with connection.cursor() as cursor:
                for database in ("dagster", "mlflow"):
                    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                    if cursor.fetchone() is None:
                        cursor.execute(f'CREATE DATABASE "{database}"')
        finally:
            connection.close()

    @staticmethod
    def _tables_made(migrate: subprocess.Popen[str]) -> None:
        """Waits for ``dagster instance migrate``, which creates the instance's tables once before
        any Dagster service starts: services that open a fresh database at the same moment race
        on creating them ("type alembic_version already exists")."""
        _, stderr = migrate.communicate(timeout=READY_TIMEOUT)
        if migrate.returncode != 0:
            raise StackError(f"dagster instance migrate failed:\n{stderr[-3000:]}")

    def _write_dagster_home(self) -> None:
        home = self.config.dagster_home
        shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
        (home / "workspace.yaml").write_text(
            "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
            f"      port: {self.config.code_port}\n      location_name: {LOCATION}\n")

    # -- services ------------------------------------------------------------------------------

    def _redis(self, binary: str, env: dict[str, str]) -> Service:
        folder = self.config.root / "redis"
        folder.mkdir(exist_ok=True)
        port = self.config.redis_port

        def ready() -> bool:
            import redis

            try:
                return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping())
            except redis.exceptions.ConnectionError:
                return False
        # The broker's queue is transient: no snapshots, nothing written outside its folder.
        return Service("redis", [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
                                 "--save", "", "--appendonly", "no", "--daemonize", "no"], env, ready)

    def _mlflow(self, env: dict[str, str]) -> Service:
        config = self.config
        if not config.artifacts:
            Path(config.artifact_destination).mkdir(parents=True, exist_ok=True)
        argv = [str(Path(sys.executable).parent / "mlflow"), "server",
                "--backend-store-uri", config.database_uri(self.password(), "mlflow"),
                "--artifacts-destination", config.artifact_destination, "--serve-artifacts",
                "--host", "127.0.0.1", "--port", str(config.mlflow_port), "--workers", "1"]
        return Service("mlflow", argv, env, _http_ok(f"{config.tracking_uri}/health"))

    def _code_server(self, env: dict[str, str]) -> Service:
        port = self.config.code_port

        def ready() -> bool:
            from dagster._core.errors import DagsterUserCodeUnreachableError
            from dagster._grpc.client import DagsterGrpcClient

            try:
                DagsterGrpcClient(port=port, host="127.0.0.1").ping("ready")
            except DagsterUserCodeUnreachableError:
                return False
            return True
        argv = [self._bin("dagster"), "code-server", "start", "-m", "landslide_pipeline.definitions",
                "-h", "127.0.0.1", "-p", str(port), "--location-name", LOCATION]
        return Service("code-server", argv, env, ready)

    def _workers(self, env: dict[str, str]) -> list[Service]:
        config = self.config
        queue = env.get("LANDSLIDE_HEAVY_QUEUE", ENVIRONMENT["LANDSLIDE_HEAVY_QUEUE"][0])
        # The cores are shared out: two torch processes each taking every core were measured 7x slower.
        threads = str(max(1, available_cores() // config.workers))
        services = []
        for index in range(1, config.workers + 1):
            name = f"worker{index}"
            argv = [self._bin("dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                    # One -Q with both queues: celery keeps only the last of repeated -Q options.
                    "-y", str(DEPLOY / "celery.yaml"), "-q", f"dagster,{queue}", "-n", name,
                    "-i", "landslide_pipeline.definitions", "--", "--concurrency=1"]
            services.append(Service(name, argv, {**env, "LANDSLIDE_THREADS": threads},
                                    self._worker_ready(name, env["LANDSLIDE_CELERY_BROKER"])))
        return services

    @staticmethod
    def _worker_ready(name: str, broker: str) -> Callable[[], bool]:
        def ready() -> bool:
            from celery import Celery

            replies = Celery(broker=broker).control.ping(timeout=1.0)
            return any(key.startswith(f"{name}@") for reply in replies for key in reply)
        return ready

    def _webserver(self, env: dict[str, str]) -> Service:
        argv = [self._bin("dagster-webserver"), "-w", str(self.config.dagster_home / "workspace.yaml"),
                "-h", "127.0.0.1", "-p", str(self.config.web_port)]
        return Service("webserver", argv, env, _http_ok(f"{self.config.webserver_url}/server_info"))

    def _daemon(self, env: dict[str, str]) -> Service:
        query = json.dumps({"query": "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"})

        def ready() -> bool:
            request = urllib.request.Request(f"{self.config.webserver_url}/graphql", data=query.encode(),
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    statuses = json.load(response)["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]
            except (URLError, ConnectionError, TimeoutError, OSError):
                return False
            return any(s["daemonType"] == "QUEUED_RUN_COORDINATOR" and s["healthy"] for s in statuses)
        argv = [self._bin("dagster-daemon"), "run", "-w", str(self.config.dagster_home / "workspace.yaml")]
        return Service("daemon", argv, env, ready)

    @staticmethod
    def _bin(name: str) -> str:
        return str(Path(sys.executable).parent / name)

    # -- stop ----------------------------------------------------------------------------------

    def status(self) -> dict[str, bool]:
        """Each recorded service and whether it runs; empty when the stack is stopped."""
        state = self.state()
        if state is None:
            return {}
        return {name: group_alive(pid) if name != "postgres" else self._postgres_running()
                for name, pid in state["pids"].items()}

    def _postgres_running(self) -> bool:
        return (self.config.pg_data / "postmaster.pid").exists()

    def stop(self) -> list[str]:
        """Stops every service the start recorded, the cluster last; the data stay.

        Returns:
            The services that were running.
        """
        state = self.state()
        if state is None:
            return []
        return self._stop(dict(state["pids"]))

    def _stop(self, pids: dict[str, int]) -> list[str]:
        # Every service at once (each shuts down on its own), then the cluster they used.
        services = {name: pid for name, pid in pids.items() if name != "postgres"}
        running = stop_process_groups(list(services.values()))
        stopped = [name for name, pid in services.items() if pid in running]
        if "postgres" in pids and self._postgres_running():
            self._run_postgres([str(postgres_bin() / "pg_ctl"), "stop", "-w", "-m", "fast",
                                "-D", str(self.config.pg_data)], "pg_ctl stop")
            stopped.append("postgres")
        self.config.state_file.unlink(missing_ok=True)
        return stopped
