-- 0001_init (MySQL / MariaDB): the schema-version table and the foundation
-- tables of the relay. Money and quota are BIGINT quota units; timestamps are
-- BIGINT Unix milliseconds. Statement rule: one statement per ';'-terminated
-- group of lines, ';' only at the end of a line (see sql/README.md).
--
-- Differences from the other dialects, and why:
-- * DDL auto-commits in MySQL, so a file cannot be rolled back. Every
--   statement is written to be re-runnable (CREATE TABLE IF NOT EXISTS, with
--   the indexes declared inside the CREATE TABLE) so that a file that failed
--   half-way can simply be applied again once the cause is fixed.
-- * AUTO_INCREMENT ids, InnoDB (foreign keys, transactions for DML), utf8mb4
--   with the binary collation so that text compares exactly as in SQLite and
--   PostgreSQL (case-sensitive usernames and model names).

-- The runner creates this table before it applies 0001 (same definition, see
-- nebula_migrate.c).
CREATE TABLE IF NOT EXISTS nebula_schema_version (
    version INTEGER NOT NULL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    checksum CHAR(64) NOT NULL,
    applied_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS users (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username VARCHAR(64) NOT NULL,
    display_name VARCHAR(255) NOT NULL DEFAULT '',
    role VARCHAR(16) NOT NULL DEFAULT 'user',
    user_group VARCHAR(64) NOT NULL DEFAULT 'default',
    status VARCHAR(16) NOT NULL DEFAULT 'active',
    quota BIGINT NOT NULL DEFAULT 0,
    used_quota BIGINT NOT NULL DEFAULT 0,
    request_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT uq_users_username UNIQUE (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS api_keys (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL DEFAULT '',
    key_hash CHAR(64) NOT NULL,
    key_prefix VARCHAR(16) NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'active',
    key_group VARCHAR(64),
    expires_at BIGINT,
    remain_quota BIGINT NOT NULL DEFAULT 0,
    unlimited_quota SMALLINT NOT NULL DEFAULT 0,
    used_quota BIGINT NOT NULL DEFAULT 0,
    allowed_models TEXT,
    allowed_ips TEXT,
    max_body_bytes BIGINT,
    created_at BIGINT NOT NULL,
    accessed_at BIGINT,
    CONSTRAINT uq_api_keys_key_hash UNIQUE (key_hash),
    INDEX idx_api_keys_user (user_id),
    CONSTRAINT fk_api_keys_user FOREIGN KEY (user_id) REFERENCES users (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS channels (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    kind VARCHAR(32) NOT NULL,
    base_url VARCHAR(1024) NOT NULL DEFAULT '',
    models TEXT NOT NULL,
    model_mapping TEXT,
    channel_groups TEXT NOT NULL,
    priority BIGINT NOT NULL DEFAULT 0,
    weight INTEGER NOT NULL DEFAULT 1,
    status VARCHAR(16) NOT NULL DEFAULT 'enabled',
    status_reason TEXT,
    header_override TEXT,
    timeout_ms INTEGER NOT NULL DEFAULT 0,
    auto_disable SMALLINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    INDEX idx_channels_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS channel_keys (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    channel_id BIGINT NOT NULL,
    key_ciphertext TEXT NOT NULL,
    key_version INTEGER NOT NULL DEFAULT 1,
    status VARCHAR(16) NOT NULL DEFAULT 'enabled',
    cooldown_until BIGINT NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    INDEX idx_channel_keys_channel (channel_id),
    CONSTRAINT fk_channel_keys_channel FOREIGN KEY (channel_id)
        REFERENCES channels (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS abilities (
    user_group VARCHAR(64) NOT NULL,
    model VARCHAR(255) NOT NULL,
    channel_id BIGINT NOT NULL,
    enabled SMALLINT NOT NULL DEFAULT 1,
    priority BIGINT NOT NULL DEFAULT 0,
    weight INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (user_group, model, channel_id),
    INDEX idx_abilities_channel (channel_id),
    CONSTRAINT fk_abilities_channel FOREIGN KEY (channel_id)
        REFERENCES channels (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS request_logs (
    id CHAR(36) NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    key_id BIGINT,
    user_id BIGINT,
    model VARCHAR(255) NOT NULL DEFAULT '',
    upstream_model VARCHAR(255),
    channel_id BIGINT,
    attempts INTEGER NOT NULL DEFAULT 1,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    cost BIGINT NOT NULL DEFAULT 0,
    status INTEGER NOT NULL DEFAULT 0,
    latency_ms INTEGER NOT NULL DEFAULT 0,
    ttfb_ms INTEGER NOT NULL DEFAULT 0,
    is_stream SMALLINT NOT NULL DEFAULT 0,
    client_ip VARCHAR(45),
    error TEXT,
    INDEX idx_request_logs_created (created_at),
    INDEX idx_request_logs_key (key_id, created_at),
    INDEX idx_request_logs_user (user_id, created_at),
    INDEX idx_request_logs_model (model, created_at),
    INDEX idx_request_logs_channel (channel_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
