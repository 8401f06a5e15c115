"""Where the repository's data lives; the services always run from a checkout."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = REPO_ROOT / "schemas"
UNITS_DIR = REPO_ROOT / "data" / "units"
KPI_CATALOGUE = REPO_ROOT / "data" / "kpis.json"
