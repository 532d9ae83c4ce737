"""The package as a user installs it: its metadata, its version, and the extras it names."""

from __future__ import annotations

import configparser
import importlib.metadata
import subprocess
from typing import TYPE_CHECKING

import pytest

import bgtask

from .helpers.forking import ROOT, run_python

if TYPE_CHECKING:
    from pathlib import Path


def test_the_version_comes_from_the_installed_metadata() -> None:
    """``bgtask.__version__`` is the distribution's version, not a second copy of it."""
    assert bgtask.__version__ == importlib.metadata.version("wsgi-bgtask")


def test_the_metadata_names_an_spdx_license_and_ships_the_license_file() -> None:
    """``License-Expression: MIT`` (PEP 639), the LICENSE file, project URLs."""
    metadata = importlib.metadata.metadata("wsgi-bgtask")
    assert metadata["License-Expression"] == "MIT"
    assert "LICENSE" in (metadata.get_all("License-File") or [])
    assert metadata.get_all("Project-URL")


@pytest.mark.parametrize(
    ("module", "library", "extra"),
    [
        ("bgtask.flask", "flask", "flask"),
        ("bgtask.werkzeug", "werkzeug", "werkzeug"),
        ("bgtask.rq", "rq", "rq"),
        ("bgtask.celery", "celery", "celery"),
        ("bgtask.prometheus", "prometheus_client", "prometheus"),
        ("bgtask.otel", "opentelemetry", "otel"),
    ],
)
def test_an_integration_without_its_library_says_which_extra_to_install(
    module: str, library: str, extra: str
) -> None:
    """``import bgtask.flask`` without Flask: ImportError naming ``wsgi-bgtask[flask]``."""
    result = run_python(
        f"""
        import sys
        sys.modules[{library!r}] = None  # as if it were not installed
        try:
            import {module}
        except ImportError as error:
            print(error)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"{module} needs {library}, which is not installed: pip install 'wsgi-bgtask[{extra}]'"
    )


def test_ci_fails_at_once_when_a_supported_python_is_missing(tmp_path: Path) -> None:
    """No Python 3.12 or 3.13 to be found: exit 1, saying what it expects, before any test."""
    result = subprocess.run(
        ["bash", str(ROOT / ".ci" / "run")],
        env={"PATH": "/usr/bin:/bin", "PYENV_ROOT": str(tmp_path), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "ci: expected Python 3.12 3.13; missing: 3.12 3.13" in result.stderr
    assert "make" not in result.stdout  # failed before running anything


def test_make_demo_installs_the_demo_extra_only() -> None:
    """``make demo`` asks for ``.[demo]`` (Flask, gunicorn, prometheus_client), not the test
    tools."""
    makefile = (ROOT / "Makefile").read_text()
    demo_stamp = makefile[makefile.index("$(DEMO_STAMP):") :]
    assert "pip install --quiet -e '.[demo]'" in demo_stamp.split("\n\n")[0]
    assert "demo: $(DEMO_STAMP)" in makefile
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    demo = setup["options.extras_require"]["demo"].split()
    assert sorted(requirement.split(">")[0] for requirement in demo) == [
        "flask",
        "gunicorn",
        "prometheus_client",
    ]
