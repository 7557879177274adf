"""The Iceberg table's schema, partitioning and properties, derived from MESSAGE_SCHEMA.

Field ids are the columns' positions (1..15) and are written into every data file, so engines
that resolve columns by id (all of them, for Iceberg) need no name mapping; the mapping is set
too, for readers that look for it.
"""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.io.pyarrow import _pyarrow_to_schema_without_ids
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema, assign_fresh_schema_ids
from pyiceberg.table import TableProperties
from pyiceberg.table.name_mapping import create_mapping_from_schema
from pyiceberg.transforms import DayTransform

from storage.schema import MESSAGE_SCHEMA

FIELD_ID_KEY = b"PARQUET:field_id"
PARTITION_NAME = "created_at_day"
TABLE_DIR = "iceberg"
"""The table's location, under the archive's prefix."""
DATA_DIR = f"{TABLE_DIR}/data"


def _plain(field: pa.Field) -> pa.Field:
    kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
    return pa.field(field.name, kind, nullable=field.nullable)


_PLAIN_SCHEMA = pa.schema([_plain(field) for field in MESSAGE_SCHEMA])

ICEBERG_SCHEMA: Schema = assign_fresh_schema_ids(_pyarrow_to_schema_without_ids(_PLAIN_SCHEMA))

FILE_SCHEMA = pa.schema(
    [
        field.with_metadata({FIELD_ID_KEY: str(ICEBERG_SCHEMA.find_field(field.name).field_id)})
        for field in _PLAIN_SCHEMA
    ]
)
"""What the data files are written in: MESSAGE_SCHEMA with field ids and `role` as plain
strings (Parquet still dictionary-encodes it; Iceberg has no dictionary type)."""

CREATED_AT_ID = ICEBERG_SCHEMA.find_field("created_at").field_id

PARTITION_SPEC = PartitionSpec(
    PartitionField(
        source_id=CREATED_AT_ID, field_id=1000, transform=DayTransform(), name=PARTITION_NAME
    )
)

TABLE_PROPERTIES = {
    TableProperties.DEFAULT_NAME_MAPPING: create_mapping_from_schema(
        ICEBERG_SCHEMA
    ).model_dump_json(),
    TableProperties.PARQUET_COMPRESSION: "zstd",
    # Old metadata files are removed as new ones are written, keeping the last 100.
    TableProperties.METADATA_DELETE_AFTER_COMMIT_ENABLED: "true",
    TableProperties.METADATA_PREVIOUS_VERSIONS_MAX: "100",
}


def schema_problem(schema: Schema) -> str | None:
    """Why a table's schema cannot take our files, or None when it matches ours."""
    ours = {field.name: (field.field_id, str(field.field_type)) for field in ICEBERG_SCHEMA.fields}
    theirs = {field.name: (field.field_id, str(field.field_type)) for field in schema.fields}
    missing = sorted(set(ours) - set(theirs))
    changed = sorted(name for name in ours if name in theirs and ours[name] != theirs[name])
    if not missing and not changed:
        return None
    notes = [f"missing column {name}" for name in missing]
    notes += [f"column {name} is {theirs[name]}, expected {ours[name]}" for name in changed]
    return "; ".join(notes)
