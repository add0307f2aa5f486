-- A review belongs to the key that opened it; reviews from before have none (any write key
-- may change them).
ALTER TABLE review ADD COLUMN owner TEXT NOT NULL DEFAULT '';
