"""egov-pulse: event-driven monitoring of e-government operations."""
