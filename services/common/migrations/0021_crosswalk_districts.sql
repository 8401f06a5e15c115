-- A district named whole as the predecessor of one 2025 unit has a crosswalk row of its
-- own (data/units/crosswalk-2025.csv, old_level 'district'): the island districts without
-- communes (Bạch Long Vĩ, Côn Đảo, ...) had no successor at all, so their earlier
-- figures were restated nowhere and today's đặc khu key could not backfill them
-- (review 61). 0002 allowed provinces and communes only.
ALTER TABLE unit_crosswalk DROP CONSTRAINT IF EXISTS unit_crosswalk_old_level_check;
ALTER TABLE unit_crosswalk ADD CONSTRAINT unit_crosswalk_old_level_check
    CHECK (old_level IN ('province', 'district', 'commune'));
