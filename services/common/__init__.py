"""What the ingest, metrics and alerts services share: settings, the contract, units, adapters."""
