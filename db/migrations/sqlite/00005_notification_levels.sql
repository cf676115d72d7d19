-- Each member's notification level for their channel: DEFAULT (a push for
-- every message), MENTIONS (only for messages that mention them) or MUTED.

-- +goose Up
ALTER TABLE members ADD COLUMN notification_level text NOT NULL DEFAULT "DEFAULT";

-- +goose Down
ALTER TABLE members DROP COLUMN notification_level;
