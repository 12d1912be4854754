-- 0006_vouchers (MySQL/MariaDB): vouchers and new-api redemption codes
-- (docs/vouchers.md). Times are Unix milliseconds (0: none); amounts are
-- quota units. Codes are never stored in clear: code_hash is the
-- HMAC-SHA256 (hex) of the normalised code keyed with NebulaCryptoSecret,
-- code_enc the code sealed with the relay keyring until its one export.
-- voucher_batches: what a batch grants (kind quota: amount on the wallet;
-- kind plan: a subscription to plan_id for plan_days, 0 = no end), when
-- (starts_at, expires_at), to whom (scope: JSON {"groups", "plans",
-- "models"}) and how often (total_uses over all codes, 0 = one per code;
-- per_user). redeemed counts the redemptions (the total_uses guard).
CREATE TABLE IF NOT EXISTS voucher_batches (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(64) NOT NULL,
    note VARCHAR(1024) NOT NULL DEFAULT '',
    kind VARCHAR(8) NOT NULL DEFAULT 'quota',
    amount BIGINT NOT NULL DEFAULT 0,
    plan_id BIGINT,
    plan_days BIGINT NOT NULL DEFAULT 0,
    starts_at BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL DEFAULT 0,
    scope TEXT,
    total_uses BIGINT NOT NULL DEFAULT 0,
    per_user BIGINT NOT NULL DEFAULT 1,
    codes BIGINT NOT NULL DEFAULT 0,
    redeemed BIGINT NOT NULL DEFAULT 0,
    prefix VARCHAR(16) NOT NULL DEFAULT '',
    status VARCHAR(16) NOT NULL DEFAULT 'active',
    format VARCHAR(8) NOT NULL DEFAULT 'voucher',
    created_by VARCHAR(128) NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    exported_at BIGINT,
    INDEX idx_voucher_batches_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- voucher_codes: one code of a batch; uses < max_uses while usable
-- (conditional UPDATE: affected rows decide). status active | disabled.
CREATE TABLE IF NOT EXISTS voucher_codes (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    batch_id BIGINT NOT NULL,
    code_hash CHAR(64) NOT NULL,
    code_enc TEXT,
    hint VARCHAR(8) NOT NULL DEFAULT '',
    uses BIGINT NOT NULL DEFAULT 0,
    max_uses BIGINT NOT NULL DEFAULT 1,
    status VARCHAR(16) NOT NULL DEFAULT 'active',
    created_at BIGINT NOT NULL,
    CONSTRAINT uq_voucher_codes_hash UNIQUE (code_hash),
    INDEX idx_voucher_codes_batch (batch_id),
    CONSTRAINT fk_voucher_codes_batch FOREIGN KEY (batch_id)
        REFERENCES voucher_batches (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- voucher_redemptions: one row per use of a code, written in the same
-- transaction as its ledger row (ledger_id; sub_id for plan vouchers).
-- (code_id, use_no) and (batch_id, user_id, user_seq) are unique: the
-- database itself refuses a second credit of one use, and a user's uses
-- beyond per_user, even under concurrent redemptions.
CREATE TABLE IF NOT EXISTS voucher_redemptions (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    batch_id BIGINT NOT NULL,
    code_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    use_no BIGINT NOT NULL,
    user_seq BIGINT NOT NULL,
    ledger_id BIGINT,
    sub_id BIGINT,
    amount BIGINT NOT NULL DEFAULT 0,
    actor VARCHAR(128) NOT NULL DEFAULT '',
    client_ip VARCHAR(64) NOT NULL DEFAULT '',
    redeemed_at BIGINT NOT NULL,
    CONSTRAINT uq_voucher_redemptions_use UNIQUE (code_id, use_no),
    CONSTRAINT uq_voucher_redemptions_user UNIQUE (batch_id, user_id, user_seq),
    INDEX idx_voucher_redemptions_batch (batch_id, redeemed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- redeem_failures: failed redemption attempts per scope ("u:<user id>",
-- "i:<client ip>") in a window, and the lockout; shared by every process
-- and host through conditional UPDATEs.
CREATE TABLE IF NOT EXISTS redeem_failures (
    scope_key VARCHAR(128) NOT NULL PRIMARY KEY,
    window_start BIGINT NOT NULL,
    failures BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
