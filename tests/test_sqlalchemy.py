"""Tasks bound to a SQLAlchemy transaction, through real Flask requests on a real database.

SQLite files by default; the same tests on PostgreSQL (127.0.0.1:5432) when it answers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import flask
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from bgtask.flask import BgTask
from bgtask.sqlalchemy import add_task_on_commit

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from bgtask import BackgroundTask

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres() -> sa.Engine:
    try:
        engine = sa.create_engine(POSTGRES)
        with engine.connect():
            pass
    except Exception as exc:  # no driver, or no server
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 not reachable ({type(exc).__name__})")
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    engine = (
        sa.create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
        if request.param == "sqlite"
        else _postgres()
    )
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS bgtask_orders"))
        connection.execute(sa.text("CREATE TABLE bgtask_orders (id INTEGER PRIMARY KEY)"))
    yield engine
    engine.dispose()


sent: list[int] = []


def send_receipt(order_id: int) -> None:
    sent.append(order_id)


def shop(engine: sa.Engine) -> tuple[flask.Flask, list[BackgroundTask]]:
    """A Flask app whose /order/<id>/<how> inserts an order and ends its transaction."""
    app = flask.Flask(__name__)
    BgTask(app)
    session_factory = scoped_session(sessionmaker(engine))  # as Flask-SQLAlchemy's db.session
    queued: list[BackgroundTask] = []

    @app.teardown_appcontext
    def remove_session(error: BaseException | None) -> None:
        session_factory.remove()  # an uncommitted transaction is rolled back here

    @app.post("/order/<int:order_id>/<how>")
    def order(order_id: int, how: str) -> str:
        session = session_factory
        session.execute(sa.text("INSERT INTO bgtask_orders (id) VALUES (:id)"), {"id": order_id})
        if how == "nested-rollback":
            savepoint = session.begin_nested()
            queued.append(add_task_on_commit(session, send_receipt, order_id))
            savepoint.rollback()
        else:
            queued.append(add_task_on_commit(session, send_receipt, order_id))
        if how in ("commit", "nested-rollback"):
            session.commit()
        elif how == "rollback":
            session.rollback()
        elif how == "fail":
            msg = "the payment failed"
            raise RuntimeError(msg)
        return "ok"  # "open": the teardown closes the session without committing

    return app, queued


def orders(engine: sa.Engine) -> list[int]:
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(sa.text("SELECT id FROM bgtask_orders"))]


@pytest.fixture(autouse=True)
def no_receipts() -> None:
    sent.clear()


def test_a_task_runs_after_the_response_when_its_transaction_committed(engine: sa.Engine) -> None:
    app, queued = shop(engine)
    assert app.test_client().post("/order/1/commit").status_code == 200
    assert orders(engine) == [1]
    assert sent == [1]
    assert queued[0].state == "succeeded"
    assert queued[0].gate is None  # the ended handle holds no request data


@pytest.mark.parametrize("how", ["rollback", "open", "nested-rollback"])
def test_a_task_whose_transaction_did_not_commit_is_discarded_with_a_warning(
    engine: sa.Engine, how: str, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """Rolled back, closed without a commit, or its savepoint rolled back: never run."""
    app, queued = shop(engine)
    assert app.test_client().post(f"/order/2/{how}").status_code == 200
    assert sent == []
    assert queued[0].state == "discarded"
    warnings = [r.getMessage() for r in bgtask_log.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"background task {__name__}.send_receipt discarded: the transaction it was queued in "
        "did not commit (it rolled back, or its session closed)"
    ]
    assert orders(engine) == ([2] if how == "nested-rollback" else [])


def test_a_view_that_raised_discards_it_too(engine: sa.Engine) -> None:
    app, queued = shop(engine)
    assert app.test_client().post("/order/3/fail").status_code == 500
    assert sent == []
    assert queued[0].state == "discarded"


def test_without_a_transaction_in_progress_it_is_queued_as_add_task_would(
    engine: sa.Engine,
) -> None:
    app = flask.Flask(__name__)
    BgTask(app)

    @app.post("/")
    def view() -> str:
        with Session(engine) as session:  # no statement yet: no transaction has begun
            add_task_on_commit(session, send_receipt, 4)
        return "ok"

    assert app.test_client().post("/").status_code == 200
    assert sent == [4]


def test_a_transaction_still_open_when_its_turn_comes_discards_it(
    engine: sa.Engine, bgtask_log: pytest.LogCaptureFixture
) -> None:
    """A session kept past the response: the task cannot wait for it."""
    app = flask.Flask(__name__)
    BgTask(app)
    kept: list[Any] = []

    @app.post("/")
    def view() -> str:
        session = Session(engine)
        session.execute(sa.text("INSERT INTO bgtask_orders (id) VALUES (5)"))
        kept.append((session, add_task_on_commit(session, send_receipt, 5)))
        return "ok"

    assert app.test_client().post("/").status_code == 200
    session, task = kept[0]
    assert task.state == "discarded"
    session.commit()  # too late: it was given up at its turn, and is not told twice
    session.close()
    assert sent == []
    warnings = [r.getMessage() for r in bgtask_log.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"background task {__name__}.send_receipt discarded: its database transaction had "
        "not committed when its turn came"
    ]
