-- 0007_payments (SQLite): top-up by payment (Stripe Checkout, EPay). Times are
-- Unix milliseconds; money is in minor units (cents, fen). docs/payments.md
-- explains both tables.
-- topup_orders: one row per top-up a user started. trade_no is ours
-- ("ngt_<uuid7>", sent to the provider as client_reference_id or
-- out_trade_no); provider_ref is the provider's id (Stripe session id, EPay
-- trade_no). owner_kind/owner_id is the wallet the quota goes to (the
-- user's organisation when it has one). status: pending, paid, failed,
-- expired; it leaves pending once, by a conditional UPDATE. ledger_id is the
-- credit's ledger row (idem_key "topup:<provider>:<trade_no>").
CREATE TABLE IF NOT EXISTS topup_orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider VARCHAR(16) NOT NULL,
    trade_no VARCHAR(64) NOT NULL,
    provider_ref VARCHAR(255),
    user_id BIGINT NOT NULL,
    owner_kind VARCHAR(16) NOT NULL,
    owner_id BIGINT NOT NULL,
    pay_type VARCHAR(32),
    currency VARCHAR(8) NOT NULL,
    amount_minor BIGINT NOT NULL,
    quota BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'pending',
    created_at BIGINT NOT NULL,
    paid_at BIGINT,
    ledger_id BIGINT,
    completed_by VARCHAR(64),
    detail TEXT,
    CONSTRAINT uq_topup_orders_trade_no UNIQUE (trade_no)
);
CREATE INDEX IF NOT EXISTS idx_topup_orders_user ON topup_orders (user_id, created_at);
CREATE INDEX IF NOT EXISTS idx_topup_orders_status ON topup_orders (status, created_at);
-- payment_events: every notification a provider delivered, verified or not
-- (event_id: Stripe's evt_... id, or "epay:<trade_no>:<trade_status>"; NULL
-- when the signature failed, so that a forged id cannot block the real
-- one). A redelivery of a recorded event adds one to deliveries (last_at:
-- when). outcome: credited, ignored, refused, mismatch, marked, failed.
CREATE TABLE IF NOT EXISTS payment_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider VARCHAR(16) NOT NULL,
    event_id VARCHAR(255),
    type VARCHAR(64),
    trade_no VARCHAR(64),
    received_at BIGINT NOT NULL,
    outcome VARCHAR(16) NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1,
    last_at BIGINT NOT NULL,
    detail TEXT,
    CONSTRAINT uq_payment_events_event UNIQUE (provider, event_id)
);
CREATE INDEX IF NOT EXISTS idx_payment_events_trade ON payment_events (trade_no);
