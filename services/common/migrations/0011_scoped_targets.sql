-- Target overrides always name their KPI, apply to a scope (a unit, a province and a
-- level, or a province), may carry validity dates, and are stored in basis points;
-- operators carry the provinces they may act on (docs/targets.md).

-- Operators: the provinces a token may act on, or the whole country (the ministry).
-- Operators created before this migration get no scope: they still authenticate (and
-- read comments of nothing), but every write is refused until they are re-created with
-- one (`egov-pulse operators create NAME --provinces 19`): a flat token of the past is
-- not silently widened to the whole country.
ALTER TABLE operators ADD COLUMN IF NOT EXISTS provinces text[] NOT NULL DEFAULT '{}';
ALTER TABLE operators ADD COLUMN IF NOT EXISTS national boolean NOT NULL DEFAULT false;

-- Overrides: scope columns, dates, basis points.
ALTER TABLE kpi_target_overrides ALTER COLUMN unit DROP NOT NULL;
ALTER TABLE kpi_target_overrides ADD COLUMN province text;
ALTER TABLE kpi_target_overrides ADD COLUMN level text
    CHECK (level IN ('province', 'district', 'commune', 'department'));
ALTER TABLE kpi_target_overrides ADD COLUMN valid_from date;
ALTER TABLE kpi_target_overrides ADD COLUMN valid_until date;
ALTER TABLE kpi_target_overrides ADD COLUMN target_bp integer;
UPDATE kpi_target_overrides SET target_bp = round(target::numeric * 10000)::integer;

ALTER TABLE kpi_target_override_history ALTER COLUMN unit DROP NOT NULL;
ALTER TABLE kpi_target_override_history ADD COLUMN province text;
ALTER TABLE kpi_target_override_history ADD COLUMN level text;
ALTER TABLE kpi_target_override_history ADD COLUMN valid_from date;
ALTER TABLE kpi_target_override_history ADD COLUMN valid_until date;
ALTER TABLE kpi_target_override_history ADD COLUMN target_bp integer;
UPDATE kpi_target_override_history SET target_bp = round(target::numeric * 10000)::integer
    WHERE target IS NOT NULL;

-- An override without a KPI set one target for every KPI of the unit, and a per-KPI
-- override of the same unit beat it. Each becomes one row per KPI the unit had no
-- per-KPI override for, keeping who set it, when and why. The KPI ids are those of
-- data/kpis.json when this migration was written; a row for a KPI retired since is
-- harmless (a retired KPI has no target).
CREATE TEMPORARY TABLE migration_0011_kpis (kpi text PRIMARY KEY) ON COMMIT DROP;
INSERT INTO migration_0011_kpis VALUES
    ('document_signing'), ('document_electronic'), ('dossier_online'),
    ('dossier_online_payment'), ('dossier_on_time'), ('meeting_online'),
    ('meeting_paperless');

INSERT INTO kpi_target_overrides (unit, kpi, target, target_bp, changed_by, changed_at, reason)
SELECT o.unit, k.kpi, o.target, o.target_bp, o.changed_by, o.changed_at, o.reason
FROM kpi_target_overrides o CROSS JOIN migration_0011_kpis k
WHERE o.kpi IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM kpi_target_overrides p WHERE p.unit = o.unit AND p.kpi = k.kpi
  );
DELETE FROM kpi_target_overrides WHERE kpi IS NULL;

-- The history keeps every change as it was made; a KPI-less change becomes the same
-- change for each KPI, in the same order (ids follow the original order).
CREATE TEMPORARY TABLE migration_0011_history ON COMMIT DROP AS
SELECT h.*, k.kpi AS each_kpi FROM kpi_target_override_history h, migration_0011_kpis k
WHERE h.kpi IS NULL;
DELETE FROM kpi_target_override_history WHERE kpi IS NULL;
INSERT INTO kpi_target_override_history
    (unit, kpi, action, target, target_bp, changed_by, changed_at, reason)
SELECT unit, each_kpi, action, target, target_bp, changed_by, changed_at,
       reason || ' [one of the KPI-less override''s rows, split per KPI by migration 0011]'
FROM migration_0011_history ORDER BY id, each_kpi;

DROP INDEX IF EXISTS kpi_target_overrides_key;
ALTER TABLE kpi_target_overrides DROP COLUMN target;
ALTER TABLE kpi_target_overrides ALTER COLUMN kpi SET NOT NULL;
ALTER TABLE kpi_target_overrides ALTER COLUMN target_bp SET NOT NULL;
ALTER TABLE kpi_target_overrides ADD CONSTRAINT kpi_target_overrides_bp
    CHECK (target_bp BETWEEN 0 AND 10000);
ALTER TABLE kpi_target_overrides ADD CONSTRAINT kpi_target_overrides_scope CHECK (
    (unit IS NOT NULL AND province IS NULL AND level IS NULL)
    OR (unit IS NULL AND province IS NOT NULL)
);
ALTER TABLE kpi_target_overrides ADD CONSTRAINT kpi_target_overrides_dates
    CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_from <= valid_until);
-- One override per scope, KPI and start day.
CREATE UNIQUE INDEX kpi_target_overrides_key ON kpi_target_overrides
    (coalesce(unit, ''), coalesce(province, ''), coalesce(level, ''), kpi,
     coalesce(valid_from, '-infinity'::date));

ALTER TABLE kpi_target_override_history DROP COLUMN target;
ALTER TABLE kpi_target_override_history ALTER COLUMN kpi SET NOT NULL;
