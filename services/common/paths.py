"""Where the repository's data lives; the services always run from a checkout."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# What `make up` keeps between runs (logs, its PostgreSQL, Apache Kafka's log, the Kafka
# jars). ``EGOV_VAR_DIR`` moves it, for a test of `make up` beside a user's own; read here
# because the CLI needs it before any settings object exists.
VAR_DIR = Path(os.environ.get("EGOV_VAR_DIR") or REPO_ROOT / "var")
SCHEMAS_DIR = REPO_ROOT / "schemas"
UNITS_DIR = REPO_ROOT / "data" / "units"
KPI_CATALOGUE = REPO_ROOT / "data" / "kpis.json"
