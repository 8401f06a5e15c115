"""The ingest service: the HTTP front door where integrating systems publish events."""
