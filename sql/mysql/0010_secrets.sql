-- 0010_secrets (MySQL): keys the gateway makes once and keeps sealed with
-- the relay keyring (NebulaCryptoSecret), so that `nebulactl rotate-secret`
-- re-seals them and what they key outlives a rotation (docs/nebulactl.md).
-- sealed is NULL until the first use sets it, with an UPDATE conditional on
-- it still being NULL (two hosts at once: one wins, both read the winner);
-- its AAD is "nebula_secrets:" + name.
-- voucher_hmac_key: the key of voucher_codes.code_hash (HMAC-SHA256 of
-- "voucher:" + the normalised code). Its value is the NebulaCryptoSecret of
-- the first use, so the hashes made before this migration (under the
-- secret itself) stay valid, and codes already handed out keep redeeming
-- after the secret is rotated.
CREATE TABLE IF NOT EXISTS nebula_secrets (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(64) NOT NULL UNIQUE,
    sealed TEXT,
    updated_at BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO nebula_secrets (name, updated_at) VALUES ('voucher_hmac_key', 0);
