-- Snowflake: an external volume on the archive, an object-store catalog integration, and an
-- Iceberg table on the current metadata file. Give the volume access (STORAGE_AWS_ROLE_ARN).
-- Each window's commit writes a new metadata file; re-run this after commits.
CREATE EXTERNAL VOLUME IF NOT EXISTS chat_messages_volume
  STORAGE_LOCATIONS = ((
    NAME = 'chat_messages_location'
    STORAGE_PROVIDER = 'S3'
    STORAGE_BASE_URL = 's3://bucket/prefix/'
    STORAGE_AWS_ROLE_ARN = '<role arn>'
  ));

CREATE CATALOG INTEGRATION IF NOT EXISTS chat_messages_catalog
  CATALOG_SOURCE = OBJECT_STORE
  TABLE_FORMAT = ICEBERG
  ENABLED = TRUE;

CREATE ICEBERG TABLE IF NOT EXISTS chat_messages
  EXTERNAL_VOLUME = 'chat_messages_volume'
  CATALOG = 'chat_messages_catalog'
  METADATA_FILE_PATH = 'iceberg/metadata/00003-abc.metadata.json';

ALTER ICEBERG TABLE chat_messages REFRESH 'iceberg/metadata/00003-abc.metadata.json';
