-- The demo profile's own ledger, so demo windows never mix with live ones.
CREATE DATABASE archiver_demo;
