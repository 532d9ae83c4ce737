"""The suite on each supported Python, as users get the package (``.ci/run``).

Each session builds the sdist and the wheel, installs the wheel (with the test extra) in its
own clean virtualenv, and runs the tests from the unpacked sdist, its ``bgtask/`` removed: what
runs is what was installed, and the sdist is proven to hold everything its tests need.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import nox

nox.options.reuse_existing_virtualenvs = True


@nox.session(python=["3.11", "3.12", "3.13"])
def tests(session: nox.Session) -> None:
    """Build, install the wheel, run the suite from the unpacked sdist."""
    dist = Path(session.create_tmp()) / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install("build")
    session.run("python", "-m", "build", "--outdir", str(dist), silent=True)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    session.install(f"{wheel}[test]")
    with tarfile.open(sdist) as archive:
        archive.extractall(dist, filter="data")
    unpacked = dist / sdist.name.removesuffix(".tar.gz")
    shutil.rmtree(unpacked / "bgtask")  # the installed wheel is what the tests import
    session.chdir(unpacked)
    session.run("pytest", "tests", *session.posargs)
