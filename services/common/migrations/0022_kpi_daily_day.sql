-- The alerts service learns each unit's usual cadence from the last weeks of kpi_daily
-- (services/alerts/sources.py daily_history: WHERE day >= $1) at every start, before
-- its first evaluation, and then daily. No index began with day, so it read the whole
-- history (127,840 rows for 4,480 wanted in review 68's test, and years of a national
-- deployment). Rows never change their day: their upserts stay heap-only updates.
CREATE INDEX IF NOT EXISTS kpi_daily_day ON kpi_daily (day);
