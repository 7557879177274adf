-- Athena reads Iceberg tables through AWS Glue. This archive commits to the sql catalog;
-- set ARCHIVER_ICEBERG_CATALOG=glue, or register the current metadata file in Glue:
--   aws glue create-table --database-name chat_archive --table-input '{"Name": "chat_messages", "TableType": "EXTERNAL_TABLE", "Parameters": {"table_type": "ICEBERG", "metadata_location": "s3://bucket/prefix/iceberg/metadata/00003-abc.metadata.json"}}'
SELECT count(*) FROM "chat_archive"."chat_messages";
