ALTER TABLE sessions ADD COLUMN info jsonb;
