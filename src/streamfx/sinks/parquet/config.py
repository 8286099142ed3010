"""The Parquet sink's options (``sinks.parquet``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from ...names import NameStyle
from ...options import Section


class SelectionConfig(Section):
    variance_threshold: float = Field(0.0, ge=0)


class ParquetSinkConfig(Section):
    #: A local folder, or a URI pyarrow.fs understands (file://, s3://, gs://, hdfs://, abfs://).
    path: Path | str
    #: Which feature columns features.parquet keeps; absent: all of them.
    selection: SelectionConfig | None = None
    #: Feature column names: tsfresh's, or ``safe`` ones of [A-Za-z0-9_] only, with the mapping
    #: to tsfresh's in feature_names.json beside features.parquet.
    names: NameStyle = "tsfresh"

    @field_validator("path", mode="before")
    @classmethod
    def _local_or_uri(cls, value: Any) -> Any:
        """An empty path would write into the current folder, and ``mock://`` is pyarrow's
        in-memory filesystem (the output is gone when the run ends): both refused."""
        if isinstance(value, str) and not value.strip():
            raise ValueError("the path is empty: name a folder or a URI such as s3://bucket/x")
        if isinstance(value, str) and value.lower().startswith("mock://"):
            raise ValueError("mock:// is an in-memory filesystem: the output would be lost")
        return Path(value) if isinstance(value, str) and "://" not in value else value
