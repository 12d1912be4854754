-- 0003_admin: what the admin API needs beyond 0002.
-- channel_keys: the masked form of each upstream key ("sk-ab...wxyz"), made
-- when the key is stored, so the API can show which key is which without
-- decrypting it; and when the key was added.
ALTER TABLE channel_keys ADD COLUMN key_masked VARCHAR(32) NOT NULL DEFAULT '';
ALTER TABLE channel_keys ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0;
-- the group every user, key and channel starts in: users.user_group and
-- channels.channel_groups default to it, and the admin API requires named
-- groups to exist.
INSERT OR IGNORE INTO user_groups (name, ratio_ppm, description, created_at)
    VALUES ('default', 1000000, 'the default group', 0);
