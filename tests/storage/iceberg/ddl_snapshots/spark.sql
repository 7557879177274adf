-- Spark (iceberg-spark-runtime and iceberg-aws-bundle on the classpath), started with:
--   --conf spark.sql.catalog.chat_archiver=org.apache.iceberg.spark.SparkCatalog
--   --conf spark.sql.catalog.chat_archiver.catalog-impl=org.apache.iceberg.jdbc.JdbcCatalog
--   --conf spark.sql.catalog.chat_archiver.uri=jdbc:postgresql://db.internal:5432/archiver
--   --conf spark.sql.catalog.chat_archiver.jdbc.user=archiver
--   --conf spark.sql.catalog.chat_archiver.jdbc.password=<password>
--   --conf spark.sql.catalog.chat_archiver.warehouse=s3://bucket/prefix/iceberg
--   --conf spark.sql.catalog.chat_archiver.io-impl=org.apache.iceberg.aws.s3.S3FileIO
SELECT count(*) FROM chat_archiver.chat_archive.chat_messages;
