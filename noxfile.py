"""The test suite on each supported Python other than the default one (``.ci/run``)."""

from __future__ import annotations

import nox

nox.options.reuse_existing_virtualenvs = True


@nox.session(python=["3.11", "3.12", "3.13"])
def tests(session: nox.Session) -> None:
    """Install the package with its test extra and run the whole suite."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)
