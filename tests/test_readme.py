"""Every code block of the README runs as a new user would copy it.

Each block is claimed by one marker in :data:`COVERS`, naming the test that extracts it and
runs it: snippets are written into a scratch project beside ``yourapp`` (what they import
without defining) and driven through real WSGI calls; shell lines are checked against what
they name (extras, make targets, the demo's routes); what needs a server, a worker or a
browser is in ``test_readme_deployed.py``. A block no marker claims fails here, so a new
snippet cannot go unchecked and an edited one is what its test runs.
"""

from __future__ import annotations

import ast
import configparser
import importlib
import logging
import os
import re
import subprocess
import sys
import threading
import types
from typing import TYPE_CHECKING, Any

import flask
import pytest
from packaging.requirements import Requirement
from werkzeug.test import Client

from bgtask import BackgroundTaskMiddleware, BackgroundTasks, get_background_tasks
from bgtask.testing import capture_tasks, closing_client

from .helpers.readme import ROOT, block, blocks, claims

if TYPE_CHECKING:
    from types import ModuleType

    from .helpers.readme import ScratchProject

#: Each README block's marker, and the test (``file::function``) that runs it.
COVERS = {
    "add_task_on_commit(db.session, send_receipt": "test_readme.py::test_on_commit_snippet",
    "group = tasks.add_group(limit=4)": "test_readme.py::test_group_snippet",
    "@bgtask.task(timeout=10": "test_readme.py::test_task_control_snippet",
    "pip install wsgi-bgtask            # the core": "test_readme.py::test_setup_lines",
    "pip install 'wsgi-bgtask[flask]'\n": "test_readme.py::test_setup_lines",
    "make demo   #": "test_readme.py::test_setup_lines",
    "curl http://127.0.0.1:8000/fail": "test_readme.py::test_demo_curl_lines",
    "def signup(environ, start_response)": "test_readme.py::test_plain_wsgi_quickstart",
    "def read_items()": "test_readme.py::test_flask_quickstart",
    "not: request inside the task": "test_readme.py::test_flask_contexts_snippet",
    "def signup(request: Request)": "test_readme.py::test_werkzeug_snippet",
    "offload=OffloadPool(threads=32": "test_readme.py::test_offload_lines",
    "# yourapp/bgtask_rq.py": "test_readme_deployed.py::test_rq_snippets_with_real_workers",
    "from yourapp.bgtask_rq import": "test_readme_deployed.py::test_rq_snippets_with_real_workers",
    "rq worker -c yourapp.bgtask_rq": "test_readme_deployed.py::test_rq_snippets_with_real_workers",
    "worker_context(create_app)": "test_readme_deployed.py::test_rq_snippets_with_real_workers",
    "# yourapp/celery.py": "test_readme_deployed.py::test_celery_snippets_with_real_workers",
    "from yourapp.celery import": "test_readme_deployed.py::test_celery_snippets_with_real_workers",
    "celery -A yourapp.celery": "test_readme_deployed.py::test_celery_snippets_with_real_workers",
    "pip install 'wsgi-bgtask[django]'": "test_readme.py::test_setup_lines",
    "# yourproject/settings.py": "test_readme.py::test_django_snippets",
    "# yourapp/views.py": "test_readme.py::test_django_snippets",
    "# yourapp/jobs.py": "test_readme.py::test_django_snippets",
    "# yourproject/wsgi.py": "test_readme.py::test_django_snippets",
    "import bottle": "test_readme.py::test_bottle_snippet",
    "import falcon": "test_readme.py::test_falcon_snippet",
    "from bgtask.gunicorn import post_worker_init  # noqa: F401 (a gunicorn hook)\n": (
        "test_readme.py::test_gunicorn_hook_line"
    ),
    "proxy_http_version 1.1;": "test_readme_deployed.py::test_nginx_block",
    "reuse_port = True": "test_readme_deployed.py::test_recommended_gunicorn_conf",
    "def test_signup_sends_the_welcome_email():": "test_readme.py::test_testing_snippet",
    "bgtask_client(app).post": "test_readme_deployed.py::test_pytest_fixtures_snippet",
    "engines, integrations": "test_readme.py::test_layout_diagram",
    "# yourapp/alerts.py": "test_readme.py::test_hooks_snippets",
    "# yourapp/counts.py": "test_readme.py::test_hooks_snippets",
    "# yourapp/audit.py": "test_readme.py::test_hooks_snippets",
    "# yourapp/logging_setup.py": "test_readme.py::test_logs_snippet",
    "pip install 'wsgi-bgtask[prometheus]'": "test_readme.py::test_setup_lines",
    "pip install 'wsgi-bgtask[otel]'": "test_readme.py::test_setup_lines",
    "# yourapp/tracing.py": "test_otel.py::test_the_readme_flask_setup_gives_request_durations",
    "# yourapp/metrics.py": "test_readme.py::test_prometheus_snippets",
    "from bgtask.prometheus import child_exit  # noqa": "test_readme.py::test_prometheus_snippets",
    "[ERROR] background task yourapp": (
        "test_logs.py::test_under_gunicorn_a_task_failure_is_in_the_error_log_at_its_level"
    ),
}
FLASK_TYPED = ("def read_items()", "def signup(request: Request)")


def test_every_block_is_claimed_by_exactly_one_marker() -> None:
    """A block nobody runs, or one two markers claim, fails here."""
    for found in blocks():
        claimed = [marker for marker in COVERS if claims(marker, found)]
        assert claimed, f"{found} is covered by no test: add its marker to COVERS\n{found.text}"
        tests = {COVERS[marker] for marker in claimed}
        assert len(tests) == 1, f"{found} is claimed by several tests: {sorted(tests)}"
    for marker in COVERS:
        block(marker)  # raises unless exactly one block contains it


def test_each_cover_names_a_test_that_exists() -> None:
    for cover in set(COVERS.values()):
        file, name = cover.split("::")
        tree = ast.parse((ROOT / "tests" / file).read_text())
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert name in defined, f"{cover} does not exist"


def test_the_block_parser_finds_indented_and_unclosed_blocks() -> None:
    text = "x\n```sh\nmake test\n```\n- item:\n\n  ```python\n  a = 1\n  ```\n"
    assert [(b.lang, b.text, b.line) for b in blocks(text)] == [
        ("sh", "make test\n", 2),
        ("python", "a = 1\n", 7),
    ]
    with pytest.raises(ValueError, match="never closed"):
        blocks("```python\nx = 1\n")


def test_setup_lines() -> None:
    """pip lines name this distribution and its real extras; make lines, real targets."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    extras = set(config["options.extras_require"])
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    markers = [m for m, test in COVERS.items() if test.endswith("::test_setup_lines")]
    commands = [words for marker in markers for words in block(marker).commands()]
    assert commands
    for words in commands:
        if words[:2] == ["pip", "install"]:
            requirement = Requirement(words[2])
            assert requirement.name == config["metadata"]["name"]
            assert requirement.extras <= extras, words
        else:
            assert words[0] == "make", words
            assert words[1] in targets, words


def test_demo_curl_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Each curl line of the demo section is a route of the demo that answers and queues."""
    monkeypatch.setenv("BGTASK_DEMO_EVENTS", str(tmp_path / "events.jsonl"))
    from wsgi_demo.app import create_app

    client = create_app().test_client()
    lines = block("curl http://127.0.0.1:8000/fail").commands()
    assert len(lines) == 6
    for words in lines:
        method = words[words.index("-X") + 1] if "-X" in words else "GET"
        url = words[-1]
        assert url.startswith("http://127.0.0.1:8000/")
        with capture_tasks(run=False) as queued:
            response = client.open(url.removeprefix("http://127.0.0.1:8000"), method=method)
        assert response.status_code == 200, words
        assert queued, f"{words} queued no task"


def _load(project: ScratchProject, name: str, source: str) -> ModuleType:
    project.write_module(name, source)
    return importlib.import_module(name)


def test_plain_wsgi_quickstart(readme_project: ScratchProject) -> None:
    quickstart = _load(readme_project, "quickstart", block("def signup(environ").text)
    with capture_tasks() as queued:
        response = closing_client(Client(quickstart.app)).get("/")
    assert response.text == "Signup successful"
    assert queued.funcs == [quickstart.send_welcome_email, quickstart.log_signup]
    assert queued.queued(quickstart.log_signup, "user@example.com")


def test_flask_quickstart(readme_project: ScratchProject) -> None:
    """Every route of the Flask snippet answers and queues what its comment says."""
    snippet = _load(readme_project, "flask_quickstart", block("def read_items()").text)
    client = snippet.app.test_client()
    routes: list[tuple[str, str, dict[str, str], tuple[Any, ...], dict[str, Any]]] = [
        ("POST", "/send-notification/a@b.c", {}, (snippet.write_notification, "a@b.c"), {
            "message": "some notification"}),
        ("GET", "/items?q=shoes", {}, (snippet.write_notification, "log"), {
            "message": "found query: shoes"}),
        ("POST", "/signup", {"email": "a@b.c"}, (snippet.send_welcome_email, "a@b.c"), {}),
        ("GET", "/send-notification", {}, (snippet.notify_user, "user@example.com"), {}),
    ]  # fmt: skip
    for method, path, form, (func, *args), kwargs in routes:
        with capture_tasks() as queued:
            response = client.open(path, method=method, data=form)
        assert response.status_code == 200, path
        assert queued.queued(func, *args, **kwargs), (path, queued)
    with capture_tasks() as queued:
        assert client.get("/items").json == {"q": None}
    assert queued == []


def test_flask_contexts_snippet(readme_project: ScratchProject) -> None:
    preamble = (
        "from flask import Flask, request\n"
        "from bgtask import BackgroundTasks\n"
        "from bgtask.flask import BgTask\n"
        "from yourapp.tasks import send_welcome_email\n"
        "app = Flask('contexts')\n"
        "BgTask(app)\n"
    )
    snippet = _load(readme_project, "contexts", preamble + block("not: request inside").text)
    response = snippet.app.test_client().post("/signup", data={"email": "a@b.c"})
    assert response.json == {"status": "ok"}
    assert [(r["task"], r["email"], r["app"]) for r in readme_project.ran()] == [
        ("send_welcome_email", "a@b.c", "contexts")
    ]


def test_werkzeug_snippet(readme_project: ScratchProject) -> None:
    snippet = _load(readme_project, "werkzeug_app", block("def signup(request: Request)").text)
    with capture_tasks() as queued:
        response = closing_client(Client(snippet.app)).post("/", data={"email": "a@b.c"})
    assert response.text == "Signup successful"
    assert queued.queued(snippet.send_welcome_email, "a@b.c")


def test_offload_lines() -> None:
    """Each line, on the app it is meant for, runs the tasks in another thread."""
    ran_in: list[threading.Thread] = []

    def note_thread() -> None:
        ran_in.append(threading.current_thread())

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        get_background_tasks().add_task(note_thread)
        start_response("200 OK", [])
        return [b""]

    flask_app = flask.Flask("offloaded")

    @flask_app.get("/")
    def view() -> str:
        get_background_tasks().add_task(note_thread)
        return ""

    from bgtask import OffloadPool
    from bgtask.flask import BgTask

    lines = block("offload=OffloadPool(threads=32").text.splitlines()
    assert len(lines) == 3
    for line, app in zip(lines, [wsgi_app, flask_app, wsgi_app], strict=True):
        namespace: dict[str, Any] = {
            "app": app, "BackgroundTaskMiddleware": BackgroundTaskMiddleware,
            "BgTask": BgTask, "OffloadPool": OffloadPool,
        }  # fmt: skip
        exec(line, namespace)  # noqa: S102 (the README's own line)
        served = namespace["app"]
        with capture_tasks() as queued:  # waits for the offloaded tasks
            closing_client(Client(served)).get("/")
        assert queued.funcs == [note_thread], line
    assert len(ran_in) == 3
    assert threading.current_thread() not in ran_in


def test_django_snippets(readme_project: ScratchProject) -> None:
    """settings.py's lines (added to what ``startproject`` writes, CSRF included), views.py,
    jobs.py (django.tasks, or the backport on Django 5.2) and wsgi.py, in a subprocess
    (Django's settings are global), driven with ``django.test.Client`` and, for wsgi.py,
    Werkzeug's closing client: every task once, in order, the raising view's discarded."""
    readme_project.write(block("# yourproject/settings.py"), prefix=DJANGO_SETTINGS)
    for marker in ("# yourapp/views.py", "# yourapp/jobs.py", "# yourproject/wsgi.py"):
        readme_project.write(block(marker))
    (readme_project.root / "yourproject" / "urls.py").write_text(DJANGO_URLS)
    (readme_project.root / "drive.py").write_text(DJANGO_DRIVER)
    result = subprocess.run(
        [sys.executable, "drive.py"],
        cwd=readme_project.root,
        env={"PATH": "", "YOURAPP_RECORD": str(readme_project.record),
             "DJANGO_SETTINGS_MODULE": "yourproject.settings",
             "PYTHONPATH": f"{readme_project.root}:{ROOT}"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["200", "200", "500", "200"]
    assert [(r["task"], r["email"]) for r in readme_project.ran()] == [
        ("send_welcome_email", "a@b.c"), ("signup", "a@b.c"),  # the helper's, then the job
        ("send_welcome_email", "a@b.c"),  # resend; the view that raised queued one: dropped
        ("send_welcome_email", "w@b.c"), ("signup", "w@b.c"),  # through wsgi.py: once each
    ]  # fmt: skip
    assert "send_welcome_email discarded: the view raised RuntimeError" in result.stderr


DJANGO_SETTINGS = """
SECRET_KEY = "readme"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["localhost", "testserver"]
ROOT_URLCONF = "yourproject.urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth",
                  "django.contrib.sessions", "django.contrib.messages"]
MIDDLEWARE = [  # what django-admin startproject writes
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
LOGGING = {"version": 1, "handlers": {"err": {"class": "logging.StreamHandler"}},
           "loggers": {"bgtask": {"handlers": ["err"], "level": "WARNING"}}}
"""
DJANGO_URLS = """
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from yourapp import views
from yourapp.tasks import send_welcome_email

def broken(request):
    request.background_tasks.add_task(send_welcome_email, "broken@b.c")
    raise RuntimeError("the view failed")

urlpatterns = [path("signup", views.signup), path("resend", views.resend),
               path("broken", csrf_exempt(broken))]
"""
DJANGO_DRIVER = """
import django

django.setup()
from django.test import Client
from werkzeug.test import Client as WSGIClient
from bgtask.testing import closing_client

client = Client(raise_request_exception=False)
for path in ("/signup", "/resend", "/broken"):
    print(client.post(path, {"email": "a@b.c"}).status_code)

from yourproject.wsgi import application

wsgi_client = closing_client(WSGIClient(application))
response = wsgi_client.post("/signup", data={"email": "w@b.c"}, headers={"Host": "localhost"})
print(response.status_code)
"""


def test_bottle_snippet(readme_project: ScratchProject) -> None:
    snippet = _load(readme_project, "bottle_app", block("import bottle").text)
    response = closing_client(Client(snippet.application)).post("/signup", data={"email": "a@b"})
    assert response.json == {"status": "Signup successful"}
    assert [r["email"] for r in readme_project.ran()] == ["a@b"]


def test_falcon_snippet(readme_project: ScratchProject) -> None:
    snippet = _load(readme_project, "falcon_app", block("import falcon").text)
    response = closing_client(Client(snippet.app)).post("/signup", json={"email": "a@b"})
    assert response.json == {"status": "Signup successful"}
    assert [r["email"] for r in readme_project.ran()] == ["a@b"]


def test_gunicorn_hook_line() -> None:
    """The line is what the hook's own server tests load (they prove what it does)."""
    line = block("from bgtask.gunicorn import post_worker_init  # noqa: F401 (a gunicorn hook)\n")
    conf = (ROOT / "tests" / "apps" / "gunicorn_heartbeat_conf.py").read_text()
    assert line.text in conf
    namespace: dict[str, Any] = {}
    exec(line.text, namespace)  # noqa: S102 (the README's own line)
    from bgtask import gunicorn

    assert namespace["post_worker_init"] is gunicorn.post_worker_init


def test_testing_snippet(readme_project: ScratchProject) -> None:
    """The README's test, against the Flask quickstart's app, passes: its tasks ran."""
    source = (
        block("def read_items()").text + block("def test_signup_sends_the_welcome_email():").text
    )
    snippet = _load(readme_project, "flask_tested", source)
    snippet.test_signup_sends_the_welcome_email()


def test_layout_diagram() -> None:
    """Every name in the layer diagram is a module of bgtask/, in the layer it shows."""
    from .test_layers import LAYERS

    layer = -1
    shown: list[tuple[int, str]] = []
    for line in block("engines, integrations").text.splitlines():
        if line[:1].isdigit():
            layer = int(line[0])
        names = re.sub(r"\(.*", "", line[27:])  # a parenthesis explains, it names no module
        shown += [(layer, name) for name in re.findall(r"(?<![\w.])_?[a-z]\w*", names)]
    assert len(shown) > 40
    for layer, name in shown:
        assert LAYERS.get(name) == layer, f"the diagram shows {name} in layer {layer}"


def test_task_control_snippet(readme_project: ScratchProject) -> None:
    """The options are the function's; queued, the async one is cut at its deadline."""
    control = _load(readme_project, "control", block("@bgtask.task(timeout=10").text)
    email = control.send_welcome_email.__bgtask_options__
    assert (email.timeout, email.retry.max, email.retry.backoff) == (10.0, 3, (1.0, 5.0, 30.0))
    assert email.retry_on == (ConnectionError,)
    tasks = BackgroundTasks()
    sent, notified = (
        tasks.add_task(control.send_welcome_email, "a"),
        tasks.add_task(control.notify_crm, "a"),
    )
    tasks()
    assert (sent.state, notified.state) == ("succeeded", "succeeded")


def test_group_snippet(readme_project: ScratchProject) -> None:
    """The group's emails run at the same time, bounded, then the log, in a real request."""
    source = (
        "from yourapp.tasks import send_welcome_email\ndef log_signup(user_id: int) -> None: ...\n"
    )
    groups = _load(readme_project, "groups", source + block("group = tasks.add_group(").text)

    def app(environ: Any, start_response: Any) -> list[bytes]:
        groups.notify_everyone(7, ["a@example.com", "b@example.com"])
        start_response("200 OK", [])
        return [b"ok"]

    with capture_tasks() as queued:
        closing_client(Client(BackgroundTaskMiddleware(app))).get("/")
    assert queued.funcs == [groups.send_welcome_email] * 2 + [groups.log_signup]
    assert sorted(str(line["email"]) for line in readme_project.ran()) == [
        "a@example.com",
        "b@example.com",
    ]


def test_on_commit_snippet(tmp_path: Any) -> None:
    """The README's view, with a Flask-SQLAlchemy-like db.session on a SQLite file."""
    import sqlalchemy as sa
    from sqlalchemy.orm import DeclarativeBase, mapped_column, scoped_session, sessionmaker

    from bgtask.flask import BgTask

    class Base(DeclarativeBase):
        pass

    class Order(Base):
        __tablename__ = "orders"
        id = mapped_column(sa.Integer, primary_key=True)
        total = mapped_column(sa.Integer)

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'orders.db'}")
    Base.metadata.create_all(engine)
    receipts: list[int] = []
    app = flask.Flask(__name__)
    BgTask(app)
    db = types.SimpleNamespace(session=scoped_session(sessionmaker(engine)))
    app.teardown_appcontext(lambda error: db.session.remove())
    namespace = {
        "app": app,
        "db": db,
        "Order": Order,
        "request": flask.request,
        "send_receipt": receipts.append,
    }
    exec(block("add_task_on_commit(db.session, send_receipt").text, namespace)  # noqa: S102
    try:
        assert app.test_client().post("/orders", json={"total": 12}).text == "ok"
    finally:
        engine.dispose()  # SQLite's connections closed now, not by the garbage collector
    assert receipts == [1]


def _failing_signup(environ: Any, start_response: Any) -> list[bytes]:
    send_welcome_email = importlib.import_module("yourapp.tasks").send_welcome_email

    def fails(email: str) -> None:
        msg = "smtp down"
        raise ConnectionError(msg)

    get_background_tasks().add_task(send_welcome_email, "a@b.c")
    get_background_tasks().add_task(fails, "a@b.c")
    start_response("200 OK", [])
    return [b"ok"]


def test_hooks_snippets(readme_project: ScratchProject, caplog: pytest.LogCaptureFixture) -> None:
    """The alert gets the failure with its tags, the counter counts, the audit log names the
    request id: each through a real WSGI call."""
    import bgtask

    for marker in ("# yourapp/alerts.py", "# yourapp/counts.py", "# yourapp/audit.py"):
        readme_project.write(block(marker))
    alerts = importlib.import_module("yourapp.alerts")
    counts = importlib.import_module("yourapp.counts")
    try:
        app = BackgroundTaskMiddleware(_failing_signup)
        client = closing_client(Client(app))
        assert client.post("/signup", headers={"X-Request-ID": "r-1"}).text == "ok"
        assert alerts.alerts.flush(timeout=10)
        [(error, tags)] = alerts.captured
        assert isinstance(error, ConnectionError)
        assert tags == {
            "task": "tests.test_readme._failing_signup.<locals>.fails",
            "route": "/signup",
        }
        assert counts.counts["yourapp.tasks.send_welcome_email", "succeeded"] == 1
        assert counts.counts[tags["task"], "failed"] == 1
        assert counts.counts["yourapp.tasks.send_welcome_email", "queued"] == 1
    finally:
        bgtask.unsubscribe(alerts.alerts)
        bgtask.unsubscribe(counts.count)
    flask_app: flask.Flask = importlib.import_module("yourapp.audit").app

    @flask_app.post("/signup")
    def signup() -> str:
        tasks = importlib.import_module("yourapp.tasks")
        get_background_tasks().add_task(tasks.send_welcome_email, "a@b.c")
        return "ok"

    with caplog.at_level(logging.INFO, logger="yourapp.audit"):
        response = flask_app.test_client().post("/signup", headers={"X-Request-ID": "r-2"})
    assert response.text == "ok"
    assert [r.getMessage() for r in caplog.records if r.name == "yourapp.audit"] == [
        "yourapp.tasks.send_welcome_email succeeded (request r-2)"
    ]
    assert readme_project.ran()


def test_logs_snippet(readme_project: ScratchProject) -> None:
    """The format string names the records' fields: a real request's lines show them."""
    script = (
        block("# yourapp/logging_setup.py").text + "from werkzeug.test import Client\n"
        "from bgtask import BackgroundTaskMiddleware, OffloadPool, drain\n"
        "from bgtask.testing import closing_client\n"
        "from tests.test_readme import _failing_signup\n"
        "app = BackgroundTaskMiddleware(_failing_signup, backend=OffloadPool(threads=1))\n"
        "closing_client(Client(app)).get('/', headers={'X-Request-ID': 'r-3'})\n"
        "assert drain(timeout=10)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=readme_project.root,
        env={**os.environ, "PYTHONPATH": f"{readme_project.root}:{ROOT}"},
        check=True,
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith(("DEBUG", "ERROR"))]
    assert lines[0] == "DEBUG MainThread handed_off yourapp.tasks.send_welcome_email request=r-3"
    assert re.fullmatch(
        r"DEBUG bgtask-offload-\d+ started yourapp\.tasks\.send_welcome_email request=r-3",
        lines[2],
    ), result.stderr
    assert any(
        re.fullmatch(r"ERROR bgtask-offload-\d+ failed \S+fails request=r-3", line)
        for line in lines
    ), result.stderr


def test_prometheus_snippets(readme_project: ScratchProject) -> None:
    """The app counts its tasks and answers /metrics; the gunicorn lines are those of the
    real-gunicorn metrics test's config, and name the hooks."""
    from bgtask import drain
    from bgtask.prometheus import child_exit, disable_metrics

    readme_project.write(block("# yourapp/metrics.py"))
    flask_app: flask.Flask = importlib.import_module("yourapp.metrics").app
    try:

        @flask_app.post("/signup")
        def signup() -> str:
            tasks = importlib.import_module("yourapp.tasks")
            get_background_tasks().add_task(tasks.send_welcome_email, "a@b.c")
            return "ok"

        client = flask_app.test_client()
        assert client.post("/signup").text == "ok"
        assert drain(timeout=10)
        body = client.get("/metrics").text
    finally:
        disable_metrics()
    assert 'bgtask_tasks_succeeded_total{task="yourapp.tasks.send_welcome_email"}' in body
    assert "bgtask_offload_busy_threads" in body
    lines = block("from bgtask.prometheus import child_exit  # noqa").text
    conf = (ROOT / "tests" / "apps" / "gunicorn_metrics_conf.py").read_text()
    assert lines in conf
    namespace: dict[str, Any] = {}
    exec(lines, namespace)  # noqa: S102 (the README's own lines)
    assert namespace["child_exit"] is child_exit
