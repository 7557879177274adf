-- Each window's commit writes a new metadata file; re-run this after commits.
INSTALL iceberg;
LOAD iceberg;
-- For s3://: CREATE SECRET (TYPE s3, PROVIDER credential_chain);  -- add ENDPOINT for S3-compatible stores
CREATE OR REPLACE VIEW chat_messages AS
SELECT * FROM iceberg_scan('s3://bucket/prefix/iceberg/metadata/00003-abc.metadata.json');
