-- Metrics service (services/metrics/eras.py): daily figures stored with their era.
--
-- A unit code means one unit before 2025-07-01 and possibly another after it (16342 was
-- Xã Thăng Long, then Xã Thăng Bình; 19 is Thái Nguyên with Bắc Kạn since the reform), so
-- every row says which hierarchy its code belongs to, and history reads one era per code.
-- The era is the event's local day's (services/common/units.py, era_at: the two-level
-- hierarchy from 2025-07-01 00:00 Asia/Ho_Chi_Minh), so it is derived from the day the
-- row already carries: existing rows before 2025-07-01 are the 2024 era, the others the
-- 2025 era, and a flush cannot write a row whose era disagrees with its day. Generated,
-- the flush's statement (and its cost per row) is unchanged.
ALTER TABLE kpi_daily ADD COLUMN IF NOT EXISTS era text
    GENERATED ALWAYS AS (CASE WHEN day < DATE '2025-07-01' THEN '2024' ELSE '2025' END) STORED;
-- No index of its own: the era follows the day, so kpi_daily_unit (unit, kpi, day)
-- already finds one unit's days of one era.
