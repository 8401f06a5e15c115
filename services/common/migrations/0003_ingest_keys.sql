-- API keys of the integrating systems that publish to ingest (services/ingest/keystore.py).
-- Only SHA-256 of the key's random secret is stored; key_id is public (it is part of the
-- key and appears in metrics). units: the unit subtrees the key may publish for; types:
-- the event types. A revoked key stays for the record; its name can then be reused.

CREATE TABLE IF NOT EXISTS ingest_api_keys (
    key_id      text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{12}$'),
    name        text NOT NULL,
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    units       text[] NOT NULL CHECK (cardinality(units) > 0),
    types       text[] NOT NULL CHECK (cardinality(types) > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- One live key per name: `keys revoke NAME` names exactly one key.
CREATE UNIQUE INDEX IF NOT EXISTS ingest_api_keys_live_name
    ON ingest_api_keys (name) WHERE revoked_at IS NULL;
