"""The database adapter's pure helpers."""

from services.common.db import migration_files, quote_identifier


def test_identifiers_are_quoted_so_a_name_cannot_end_the_statement() -> None:
    assert quote_identifier("egov_pulse") == '"egov_pulse"'
    assert quote_identifier('x"; DROP DATABASE postgres; --') == '"x""; DROP DATABASE postgres; --"'


def test_migrations_are_applied_in_version_order_starting_with_their_own_bookkeeping() -> None:
    versions = [version for version, _ in migration_files()]
    assert versions == sorted(versions)
    assert versions[0] == "0001_schema_migrations"
    assert len(set(v[:4] for v in versions)) == len(versions)  # no two share a number
