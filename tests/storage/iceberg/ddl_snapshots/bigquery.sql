-- BigQuery: a BigLake Iceberg table on the current metadata file (gs:// directly; for an
-- s3:// archive use a BigQuery Omni connection). Qualify the table with its dataset.
-- Each window's commit writes a new metadata file; re-run this after commits.
CREATE OR REPLACE EXTERNAL TABLE chat_messages
WITH CONNECTION `<region>.<connection>`
OPTIONS (
  format = 'ICEBERG',
  uris = ['s3://bucket/prefix/iceberg/metadata/00003-abc.metadata.json']
);
