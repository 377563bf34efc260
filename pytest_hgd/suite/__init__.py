"""The pair suite: pair files and their YAML, schemas, ingest of conversation logs, the suite
index."""
