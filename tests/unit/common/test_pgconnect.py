"""A command's one line for PostgreSQL not answering: where, and never the password."""

from __future__ import annotations

import pytest

from services.common.pgconnect import EXIT_DOWN, DatabaseDown, say_down, where


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://egov:s3cret@db.example:5433/egov_pulse", "db.example:5433"),
        ("postgresql://egov:s3cret@127.0.0.1/egov_pulse", "127.0.0.1:5432"),
        ("postgresql://egov@[::1]:6000/egov_pulse", "[::1]:6000"),
        ("postgresql:///egov_pulse?host=/var/run/postgresql&port=5433", "/var/run/postgresql:5433"),
    ],
)
def test_where_names_host_and_port_only(dsn: str, shown: str) -> None:
    assert where(dsn) == shown


def test_the_refusal_is_one_line_without_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    dsn = "postgresql://egov:s3cret-pw@127.0.0.1:1/egov_pulse"
    down = DatabaseDown(dsn, OSError("connect to egov:s3cret-pw@127.0.0.1:1 failed"))
    assert say_down(down) == EXIT_DOWN
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "PostgreSQL at 127.0.0.1:1" in err and "nothing was changed" in err
    assert "s3cret-pw" not in err
