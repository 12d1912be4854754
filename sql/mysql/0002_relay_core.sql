-- 0002_relay_core: what the relay core and its admin API need beyond 0001.
-- users: admin login (argon2id password hash), management API token (stored
-- as a SHA-256 hash like client keys), and a session version that logging
-- out or changing the password bumps (signed session cookies carry it).
ALTER TABLE users ADD COLUMN password_hash VARCHAR(255);
ALTER TABLE users ADD COLUMN access_token_hash CHAR(64);
ALTER TABLE users ADD COLUMN session_version INTEGER NOT NULL DEFAULT 1;
CREATE INDEX idx_users_access_token ON users (access_token_hash);
-- channels: how several upstream keys take turns (round_robin | random), an
-- outbound proxy, the model a channel test uses and what the last test saw.
ALTER TABLE channels ADD COLUMN key_mode VARCHAR(16) NOT NULL DEFAULT 'round_robin';
ALTER TABLE channels ADD COLUMN proxy VARCHAR(1024);
ALTER TABLE channels ADD COLUMN test_model VARCHAR(255);
ALTER TABLE channels ADD COLUMN response_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE channels ADD COLUMN tested_at BIGINT;
ALTER TABLE channels ADD COLUMN status_changed_at BIGINT;
-- channel_keys: when and why a key was disabled on its own.
ALTER TABLE channel_keys ADD COLUMN disabled_at BIGINT;
-- request_logs: why the request ended (complete, client_gone, upstream_error,
-- timeout, refused ...) and whether the token counts are the gateway's estimate.
ALTER TABLE request_logs ADD COLUMN end_reason VARCHAR(32);
ALTER TABLE request_logs ADD COLUMN usage_estimated SMALLINT NOT NULL DEFAULT 0;
-- user groups and their price ratio (parts per million: 1000000 = 1.0).
CREATE TABLE IF NOT EXISTS user_groups (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    ratio_ppm BIGINT NOT NULL DEFAULT 1000000,
    description VARCHAR(255) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
