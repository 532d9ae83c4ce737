"""The public surface: what ``__all__`` lists, documents and ships."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import bgtask
import bgtask.testing

if TYPE_CHECKING:
    import types


def public_names(module: types.ModuleType) -> set[str]:
    """Names in ``module`` that look public: no leading underscore, not a module."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }


def defined_public_names(module: types.ModuleType) -> set[str]:
    """Public functions and classes whose home is ``module`` (imports for its own use excluded)."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    }


def test_all_is_sorted() -> None:
    """``bgtask.__all__`` is in sorted order."""
    assert bgtask.__all__ == sorted(bgtask.__all__)


def test_all_lists_every_public_name_of_the_package() -> None:
    """``bgtask.__all__`` is exactly the public names of the package namespace."""
    assert set(bgtask.__all__) == public_names(bgtask)
    assert len(bgtask.__all__) == len(set(bgtask.__all__))


def test_testing_all_is_sorted() -> None:
    """``bgtask.testing.__all__`` is in sorted order."""
    assert bgtask.testing.__all__ == sorted(bgtask.testing.__all__)


def test_testing_all_lists_every_public_function_and_class_it_defines() -> None:
    """``bgtask.testing.__all__`` is exactly the public functions and classes defined there."""
    assert set(bgtask.testing.__all__) == defined_public_names(bgtask.testing)
    assert len(bgtask.testing.__all__) == len(set(bgtask.testing.__all__))


@pytest.mark.parametrize("name", bgtask.__all__)
def test_every_public_name_has_a_docstring_with_an_example(name: str) -> None:
    """Each name in ``bgtask.__all__`` is documented with a ``>>>`` example."""
    doc = inspect.getdoc(getattr(bgtask, name))
    assert doc, f"bgtask.{name} has no docstring"
    assert ">>>" in doc, f"bgtask.{name}'s docstring has no example"


@pytest.mark.parametrize(
    "name",
    bgtask.testing.__all__,
)
def test_every_testing_name_has_a_docstring_with_an_example(name: str) -> None:
    """Each name in ``bgtask.testing.__all__`` is documented with a ``>>>`` example."""
    doc = inspect.getdoc(getattr(bgtask.testing, name))
    assert doc, f"bgtask.testing.{name} has no docstring"
    assert ">>>" in doc, f"bgtask.testing.{name}'s docstring has no example"


def test_package_ships_py_typed() -> None:
    """The PEP 561 marker is in the package directory, so type checkers use the annotations."""
    assert (Path(bgtask.__file__).parent / "py.typed").is_file()


README = Path(__file__).resolve().parent.parent / "README.md"


def readme_api_names() -> list[str]:
    """The names in the first column of the README's API table, in order."""
    text = README.read_text()
    table = text[text.index("### The API") :]
    table = table[: table.index("\n\n", table.index("| name |"))]
    names: list[str] = []
    for row in table.splitlines()[3:]:
        first_cell = row.split(" | ")[0]
        names += [cell.split("(")[0] for cell in first_cell.split("`")[1::2]]
    return names


def test_all_is_the_readme_api_tables_top_level_names() -> None:
    """Every name the table gives at the top level is in ``bgtask.__all__``, and only those."""
    top_level = {name for name in readme_api_names() if "." not in name}
    assert top_level == set(bgtask.__all__)


@pytest.mark.parametrize(
    "name", [name for name in readme_api_names() if name.startswith("bgtask.")]
)
def test_every_submodule_name_in_the_readme_api_table_imports_from_there(name: str) -> None:
    """``bgtask.flask.BgTask`` is importable as ``from bgtask.flask import BgTask``."""
    module_name, _, attribute = name.rpartition(".")
    module = importlib.import_module(module_name)
    assert hasattr(module, attribute), f"{name} is in the README's API table but not there"
    assert attribute in getattr(module, "__all__", ()), f"{name} is not in its __all__"


@pytest.mark.parametrize("name", bgtask.__all__)
def test_public_names_print_with_the_public_path(name: str) -> None:
    """``bgtask.BackgroundTasks``, not ``bgtask._collection.BackgroundTasks``."""
    assert getattr(bgtask, name).__module__ == "bgtask"
