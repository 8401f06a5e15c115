-- Administrative units of both eras and the 2025 code crosswalk (data/units/, loaded by
-- services.common.unitdata.load_units). The era decides what a code means: "2024" is the
-- three-level hierarchy until 2025-06-30, "2025" the two-level one from 2025-07-01.

CREATE TABLE IF NOT EXISTS units (
    code         text NOT NULL,
    era          text NOT NULL CHECK (era IN ('2024', '2025')),
    level        text NOT NULL CHECK (level IN ('province', 'district', 'commune', 'department')),
    name         text NOT NULL,
    name_en      text NOT NULL,
    full_name    text NOT NULL,
    full_name_en text NOT NULL,
    parent_code  text,
    PRIMARY KEY (code, era),
    CHECK ((level = 'province') = (parent_code IS NULL))
);

CREATE INDEX IF NOT EXISTS units_parent_idx ON units (era, parent_code);

CREATE TABLE IF NOT EXISTS unit_crosswalk (
    old_code  text NOT NULL,
    old_level text NOT NULL CHECK (old_level IN ('province', 'commune')),
    new_code  text NOT NULL,
    match     text NOT NULL CHECK (match IN ('unchanged', 'merged', 'partial')),
    old_name  text NOT NULL,
    new_name  text NOT NULL,
    PRIMARY KEY (old_code, new_code)
);
