"""The one way a pandera schema becomes an asset check result."""

import pandas as pd
import pandera.pandas as pa
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

#: Failure cases shown in the check's metadata.
SHOWN_FAILURES = 50


def schema_failures(schema: type[pa.DataFrameModel], table: pd.DataFrame) -> AssetCheckResult | None:
    """A failed, error-severity check result listing the first failure cases of ``schema`` on
    ``table`` (all checks run, not just the first), or None when the table passes."""
    try:
        schema.validate(table, lazy=True)
    except pa.errors.SchemaErrors as err:
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, metadata={
            "failures": MetadataValue.md(err.failure_cases.head(SHOWN_FAILURES).to_markdown(index=False))})
    return None
