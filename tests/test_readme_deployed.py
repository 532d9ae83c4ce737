"""The README's blocks that need a real deployment: RQ and Celery workers started with the
README's own command lines, gunicorn with its recommended ``gunicorn.conf.py``, nginx with
its ``location`` block, pytest with its fixtures, mypy on its typed snippets.

Each test extracts its blocks from the README (see ``COVERS`` in ``test_readme.py``).
"""

from __future__ import annotations

import functools
import http.client
import importlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .helpers.deployments import START_RABBITMQ, START_REDIS
from .helpers.engines import WorkerProcess, require_service
from .helpers.readme import ROOT, block
from .helpers.servers import Gunicorn, spawn, wait_for

if TYPE_CHECKING:
    from types import ModuleType

    from .helpers.readme import ScratchProject

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
#: The web app the README's "the web app" blocks are pasted into.
WEB_PREAMBLE = """
from flask import Flask, request
from bgtask import get_background_tasks
from yourapp.tasks import send_welcome_email

app = Flask("yourapp_web")

@app.post("/signup")
def signup() -> str:
    get_background_tasks().add_task(send_welcome_email, request.form["email"])
    return "ok"

"""
#: What the worker_context block needs: the app factory it names.
FACTORY = "\nfrom yourapp.web import create_app\n"


def _web_app(project: ScratchProject, name: str, web_block: str) -> ModuleType:
    project.write_module(name, WEB_PREAMBLE + block(web_block).text)
    return importlib.import_module(name)


def _run_on_a_worker(
    project: ScratchProject, command: list[str], ready: str, tmp_path: Path, email: str
) -> None:
    """Start the README's worker command in the project; wait until it ran ``email``'s task
    inside the Flask app's context (``worker_context``), in a worker process."""
    program = str(BIN / command[0])
    log = tmp_path / f"{command[0]}-{email}.log"
    worker = WorkerProcess(
        [program, *command[1:]], log, ready=ready,
        env={"YOURAPP_RECORD": str(project.record)}, cwd=project.root,
    )  # fmt: skip
    try:
        worker.wait_ready()
        wait_for(
            lambda: any(r["email"] == email for r in project.ran()),
            what=f"the worker to run the task (log: {log})",
        )
    finally:
        worker.stop()
    (ran,) = [r for r in project.ran() if r["email"] == email]
    assert ran["app"] == "yourapp"  # worker_context(create_app): in the app's context
    assert ran["pid"] != os.getpid()


def test_rq_snippets_with_real_workers(readme_project: ScratchProject, tmp_path: Path) -> None:
    """The RQ module (with worker_context in it, as the README says), the web app's lines,
    and each ``rq worker`` line of the README, run as written."""
    require_service("127.0.0.1", 6379, "Redis", START_REDIS)
    settings = block("# yourapp/bgtask_rq.py")
    assert settings.module == "yourapp.bgtask_rq"
    readme_project.write(settings, suffix=FACTORY + block("worker_context(create_app)").text)
    web = _web_app(readme_project, "web_rq", "from yourapp.bgtask_rq import")
    commands = block("rq worker -c yourapp.bgtask_rq").commands()
    assert len(commands) == 2
    for number, command in enumerate(commands):
        assert command[command.index("-c") + 1] == settings.module
        email = f"rq-{number}@b.c"
        assert web.app.test_client().post("/signup", data={"email": email}).text == "ok"
        _run_on_a_worker(readme_project, command, "Listening on", tmp_path, email)


def test_celery_snippets_with_real_workers(readme_project: ScratchProject, tmp_path: Path) -> None:
    """The Celery module (with worker_context), the web app's lines, the worker command."""
    require_service("127.0.0.1", 5672, "RabbitMQ", START_RABBITMQ)
    module = block("# yourapp/celery.py")
    readme_project.write(module, suffix=FACTORY + block("worker_context(create_app)").text)
    web = _web_app(readme_project, "web_celery", "from yourapp.celery import")
    (command,) = block("celery -A yourapp.celery").commands()
    assert command[command.index("-A") + 1] == module.module
    assert web.app.test_client().post("/signup", data={"email": "celery@b.c"}).text == "ok"
    _run_on_a_worker(readme_project, command, "ready.", tmp_path, "celery@b.c")


SERVED = """
import os
import time
from bgtask import BackgroundTaskMiddleware, get_background_tasks
from yourapp.tasks import send_welcome_email

def held_task(release: str) -> None:
    '''Waits (bounded) until the test releases it, then records.'''
    deadline = time.monotonic() + 20
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.01)
    send_welcome_email("released")

def signup(environ, start_response):
    tasks = get_background_tasks()
    if environ["PATH_INFO"] == "/held":
        tasks.add_task(held_task, environ["QUERY_STRING"])
    else:
        tasks.add_task(send_welcome_email, environ["QUERY_STRING"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"Signup successful"])  # no len(): no Content-Length, as a stream

app = BackgroundTaskMiddleware(signup)
"""


def test_recommended_gunicorn_conf(readme_project: ScratchProject, tmp_path: Path) -> None:
    """gunicorn loads the README's gunicorn.conf.py as written (its bind and worker count
    overridden for a test) and serves with it; SIGTERM ends it cleanly.

    ``reuse_port`` gives each worker a socket of its own, so gunicorn logs no address: the
    port is chosen here and the test waits for it to accept.
    """
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(block("reuse_port = True").text)
    readme_project.write_module("served", SERVED)
    port = _free_port()
    command = [
        sys.executable, "-m", "gunicorn", "--config", str(conf),
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket", "served:app",
    ]  # fmt: skip
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        env = {"YOURAPP_RECORD": str(readme_project.record)}
        server = spawn(command, log, env, cwd=readme_project.root)
        try:
            wait_for(lambda: _accepts(port), what=f"gunicorn to listen (log: {log_path})")
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            connection.request("GET", "/signup?conf@b.c")
            assert connection.getresponse().read() == b"Signup successful"
            connection.close()
            wait_for(lambda: bool(readme_project.ran()), what="the task to run")
        finally:
            server.terminate()
            assert server.wait(20) == 0, log_path.read_text()
    assert "Using worker: gthread" in log_path.read_text()
    assert [r["email"] for r in readme_project.ran()] == ["conf@b.c"]


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


NGINX_CONF = """
daemon off;
master_process off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    server {{
        listen 127.0.0.1:{port};
        {location}
    }}
}}
"""


def _through_nginx(location: str, upstream: int, tmp_path: Path) -> tuple[str, int]:
    """Start nginx with ``location`` (its upstream port set); return its config and port."""
    port = _free_port()
    location = location.replace("127.0.0.1:8000", f"127.0.0.1:{upstream}")
    config = tmp_path / f"nginx-{port}.conf"
    config.write_text(NGINX_CONF.format(tmp=tmp_path, port=port, location=location))
    return str(config), port


def _body_before_release(port: int, release: Path, timeout: float) -> bytes | None:
    """The body of ``/held``, or None if it did not come within ``timeout``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", f"/held?{release}")
        return connection.getresponse().read()
    except TimeoutError:
        return None
    finally:
        connection.close()


def test_nginx_block(readme_project: ScratchProject, tmp_path: Path) -> None:
    """With the README's location block, the client has the whole body while the task is
    still held; with nginx's default (HTTP/1.0 upstream) it would wait for the task."""
    nginx = _nginx()
    readme_project.write_module("served", SERVED)
    readme_block = block("proxy_http_version 1.1;").text
    default_block = "location / { proxy_pass http://127.0.0.1:8000; }"
    with Gunicorn(
        "served:app", tmp_path / "gunicorn.log", threads=4,
        env={"YOURAPP_RECORD": str(readme_project.record)}, cwd=readme_project.root,
    ) as server:  # fmt: skip
        for number, (location, waits) in enumerate([(readme_block, False), (default_block, True)]):
            config, port = _through_nginx(location, server.port, tmp_path)
            (tmp_path / "body").mkdir(exist_ok=True)
            proxy = subprocess.Popen([nginx, "-c", config, "-e", str(tmp_path / "error.log")])
            try:
                wait_for(functools.partial(_accepts, port), what="nginx to listen")
                release = tmp_path / f"release-{number}"
                body = _body_before_release(port, release, timeout=1.5 if waits else 10)
                assert (body is None) is waits, location
                assert body in (None, b"Signup successful")
                release.touch()
                wait_for(functools.partial(_ran_times, readme_project, number + 1), what="the task")
            finally:
                proxy.terminate()
                proxy.wait(10)


def _ran_times(project: ScratchProject, times: int) -> bool:
    return len(project.ran()) == times


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_pytest_fixtures_snippet(readme_project: ScratchProject) -> None:
    """The fixtures' example, in a test file of its own beside the Flask quickstart, passes
    under pytest with bgtask's plugin loaded from its entry point."""
    readme_project.write_module("flask_quickstart", block("def read_items()").text)
    readme_project.write_module(
        "test_snippet",
        "from flask_quickstart import app, send_welcome_email\n"
        + block("bgtask_client(app).post").text,
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_snippet.py"],
        cwd=readme_project.root, capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "", "PYTHONPATH": f"{readme_project.root}:{ROOT}",
             "YOURAPP_RECORD": str(readme_project.record)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_typed_snippets_pass_mypy_strict(tmp_path: Path) -> None:
    """The Flask quickstart and the Werkzeug snippet, as written, pass ``mypy --strict``."""
    files = []
    for number, marker in enumerate(("def read_items()", "def signup(request: Request)")):
        path = tmp_path / f"snippet_{number}.py"
        path.write_text(block(marker).text)
        files.append(str(path))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *files],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "MYPYPATH": str(ROOT)},  # an editable install hides bgtask from mypy
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
