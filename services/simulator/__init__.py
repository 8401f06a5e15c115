"""Realistic CloudEvents traffic for egov-pulse: `egov-pulse simulate` and `make up`."""
