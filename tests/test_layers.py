"""The house's layers, as the README's layout section draws them: no module imports upward."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bgtask

#: The package as imported: the source tree, or the installed wheel (nox removes the
#: sdist's own copy so the tests import what was installed).
PACKAGE = Path(bgtask.__file__).resolve().parent

#: Each module's layer; a module may import from its own layer and the ones below.
LAYERS: dict[str, int] = {
    # 0. what everything uses: threads and locks, clocks, names, argument checks
    **dict.fromkeys(
        [
            "_native", "_clock", "_wording", "_callables", "_signature", "_stopping",
            "_pending", "_process", "_extras", "_retry", "_carrier",
        ],
        0,
    ),
    # 1. the task model: a task, a collection, the lifecycle and its event stream
    **dict.fromkeys(
        [
            "_options", "_logging", "_events", "_queued", "_lifecycle", "_task", "_collection",
            "_groups",
        ],
        1,
    ),
    # 2. the runners: the policy, the loop, the pool, inline runs, the exit drain
    **dict.fromkeys(
        [
            "_exit", "_stepping", "_spawned", "_ticking", "_loop", "_pool", "_policy", "_control",
            "_group", "_run", "_relay", "_inline",
        ],
        2,
    ),
    # 3. the WSGI layer: the request's collection, backends, the closing iterable
    **dict.fromkeys(
        [
            "_current", "_request", "_backend", "_offload", "_closing", "_unread",
            "_middleware", "_decorator",
        ],
        3,
    ),
    # 4. engines and integrations
    **dict.fromkeys(
        [
            "_importable", "_serializable", "_allowlist", "_payload", "_failed", "_job",
            "_progress", "_helpers", "_handoff", "_claim", "_rqconnect", "_rqjob",
            "_celeryjob", "_fallback", "_remote", "rq", "celery",
            "werkzeug", "_flask_config", "_flask_scope", "_flask_views", "flask", "testing",
            "pytest_plugin", "gunicorn", "sqlalchemy", "prometheus", "otel",
        ],
        4,
    ),
    # 4. Django's integration
    **dict.fromkeys(
        [
            "_django_settings", "_django_atomic", "_django_middleware", "_django_tasks",
            "_django_results", "_django_compat", "_django_jobs", "django",
        ],
        4,
    ),
    "__init__": 5,
}  # fmt: skip

#: Integrations never import one another, except Flask building on Werkzeug's support.
INTEGRATIONS = {
    "rq", "celery", "werkzeug", "flask", "testing", "pytest_plugin", "gunicorn", "sqlalchemy",
    "prometheus", "otel",
}  # fmt: skip
ALLOWED_ACROSS = {("flask", "werkzeug"), ("pytest_plugin", "testing")}
INTEGRATIONS |= {"django"}  # Django's integration, as the others


def bgtask_imports(module: str) -> set[str]:
    """The bgtask modules ``module`` imports, at the top or inside a function."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module)
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bgtask."):
            found.add(node.module.removeprefix("bgtask.").split(".")[0])  # type: ignore[union-attr]
    return found


def test_every_module_has_a_layer() -> None:
    """A new module is placed in the drawing (and this table) on purpose."""
    assert {path.stem for path in PACKAGE.glob("*.py")} == set(LAYERS)


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_a_module_imports_only_its_layer_and_the_ones_below(module: str) -> None:
    """The task model imports no runner, the runners no WSGI, the WSGI layer no framework."""
    upward = {imported for imported in bgtask_imports(module) if LAYERS[imported] > LAYERS[module]}
    assert upward == set(), f"{module} (layer {LAYERS[module]}) imports upward: {upward}"


@pytest.mark.parametrize("module", sorted(INTEGRATIONS))
def test_integrations_do_not_import_each_other(module: str) -> None:
    """RQ knows nothing of Flask; Flask builds on Werkzeug's response support only."""
    others = bgtask_imports(module) & (INTEGRATIONS - {module})
    assert {(module, other) for other in others} <= ALLOWED_ACROSS


def test_the_task_model_imports_no_event_loop_and_no_framework() -> None:
    """asyncio, Werkzeug, Flask: none of them is imported by the task model's modules."""
    model = [name for name, layer in LAYERS.items() if layer <= 1]
    for module in model:
        tree = ast.parse((PACKAGE / f"{module}.py").read_text())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 0
        }
        assert not imported & {"asyncio", "werkzeug", "flask", "rq", "celery", "gevent"}, module
