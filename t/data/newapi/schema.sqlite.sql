-- new-api's tables as GORM's AutoMigrate creates them on SQLite, for the
-- tables `nebulactl import-newapi` reads. Derived by hand from the struct
-- tags of QuantumNous/new-api (the file versions read: model/user.go
-- 0089a12fdcafe8ba57a961f31ce8929f47e22270, model/token.go
-- 0067bd93739dbf07a62b656afe48d71ddcefae4f, model/channel.go
-- 0102ffab86da3461be812c605d92800649e6eb06, model/ability.go
-- 691a8046de7e64222a3cdbd1488682197054a4c7, model/redemption.go
-- 03f1eccae6b39bd33e755eff91af58f1e5104355; model/option.go: key/value).
-- Column names and types are facts of that schema; GORM's mapping on
-- SQLite: int, int64, uint -> integer; bool -> numeric; float64 -> real;
-- string -> text unless a type: tag says otherwise; gorm.DeletedAt ->
-- datetime; `group` and `key` are column names (quoted).
CREATE TABLE `users` (
    `id` integer PRIMARY KEY AUTOINCREMENT,
    `username` text UNIQUE,
    `password` text NOT NULL,
    `display_name` text,
    `role` integer DEFAULT 1,
    `status` integer DEFAULT 1,
    `email` text,
    `github_id` text,
    `discord_id` text,
    `oidc_id` text,
    `wechat_id` text,
    `telegram_id` text,
    `access_token` char(32),
    `quota` integer DEFAULT 0,
    `used_quota` integer DEFAULT 0,
    `request_count` integer DEFAULT 0,
    `group` varchar(64) DEFAULT 'default',
    `aff_code` varchar(32),
    `aff_count` integer DEFAULT 0,
    `aff_quota` integer DEFAULT 0,
    `aff_history` integer DEFAULT 0,
    `inviter_id` integer,
    `invite_rebate_eligible` numeric DEFAULT false,
    `deleted_at` datetime,
    `linux_do_id` text,
    `setting` text,
    `remark` varchar(255),
    `stripe_customer` varchar(64),
    `created_at` integer,
    `last_login_at` integer DEFAULT 0,
    `auth_version` bigint NOT NULL DEFAULT 1
);
CREATE INDEX `idx_users_username` ON `users`(`username`);
CREATE INDEX `idx_users_display_name` ON `users`(`display_name`);
CREATE INDEX `idx_users_email` ON `users`(`email`);
CREATE UNIQUE INDEX `idx_users_access_token` ON `users`(`access_token`);
CREATE UNIQUE INDEX `idx_users_aff_code` ON `users`(`aff_code`);
CREATE INDEX `idx_users_inviter_id` ON `users`(`inviter_id`);
CREATE INDEX `idx_users_deleted_at` ON `users`(`deleted_at`);

CREATE TABLE `tokens` (
    `id` integer PRIMARY KEY AUTOINCREMENT,
    `user_id` integer,
    `key` varchar(128),
    `status` integer DEFAULT 1,
    `name` text,
    `created_time` bigint,
    `accessed_time` bigint,
    `expired_time` bigint DEFAULT -1,
    `remain_quota` integer DEFAULT 0,
    `unlimited_quota` numeric,
    `model_limits_enabled` numeric,
    `model_limits` text,
    `allow_ips` text DEFAULT '',
    `used_quota` integer DEFAULT 0,
    `group` text DEFAULT '',
    `cross_group_retry` numeric,
    `billing_type` integer DEFAULT 0,
    `deleted_at` datetime
);
CREATE INDEX `idx_tokens_user_id` ON `tokens`(`user_id`);
CREATE UNIQUE INDEX `idx_tokens_key` ON `tokens`(`key`);
CREATE INDEX `idx_tokens_name` ON `tokens`(`name`);
CREATE INDEX `idx_tokens_deleted_at` ON `tokens`(`deleted_at`);

CREATE TABLE `channels` (
    `id` integer PRIMARY KEY AUTOINCREMENT,
    `type` integer DEFAULT 0,
    `key` text NOT NULL,
    `open_ai_organization` text,
    `test_model` text,
    `status` integer DEFAULT 1,
    `name` text,
    `weight` integer DEFAULT 0,
    `created_time` bigint,
    `test_time` bigint,
    `response_time` integer,
    `base_url` text DEFAULT '',
    `other` text,
    `balance` real,
    `balance_updated_time` bigint,
    `models` text,
    `group` varchar(64) DEFAULT 'default',
    `used_quota` bigint DEFAULT 0,
    `model_mapping` text,
    `status_code_mapping` varchar(1024) DEFAULT '',
    `priority` bigint DEFAULT 0,
    `auto_ban` integer DEFAULT 1,
    `need_reconcile` integer DEFAULT 0,
    `other_info` text,
    `tag` text,
    `setting` text,
    `param_override` text,
    `header_override` text,
    `remark` varchar(255),
    `channel_info` json,
    `settings` text
);
CREATE INDEX `idx_channels_name` ON `channels`(`name`);
CREATE INDEX `idx_channels_tag` ON `channels`(`tag`);

CREATE TABLE `abilities` (
    `group` varchar(64),
    `model` varchar(255),
    `channel_id` integer,
    `enabled` numeric,
    `priority` bigint DEFAULT 0,
    `weight` integer DEFAULT 0,
    `tag` text,
    PRIMARY KEY (`group`, `model`, `channel_id`)
);
CREATE INDEX `idx_abilities_channel_id` ON `abilities`(`channel_id`);
CREATE INDEX `idx_abilities_priority` ON `abilities`(`priority`);
CREATE INDEX `idx_abilities_weight` ON `abilities`(`weight`);
CREATE INDEX `idx_abilities_tag` ON `abilities`(`tag`);

CREATE TABLE `redemptions` (
    `id` integer PRIMARY KEY AUTOINCREMENT,
    `user_id` integer,
    `key` char(32),
    `status` integer DEFAULT 1,
    `name` text,
    `quota` integer DEFAULT 100,
    `created_time` bigint,
    `redeemed_time` bigint,
    `used_user_id` integer,
    `deleted_at` datetime,
    `expired_time` bigint
);
CREATE UNIQUE INDEX `idx_redemptions_key` ON `redemptions`(`key`);
CREATE INDEX `idx_redemptions_name` ON `redemptions`(`name`);
CREATE INDEX `idx_redemptions_used_user_id` ON `redemptions`(`used_user_id`);
CREATE INDEX `idx_redemptions_deleted_at` ON `redemptions`(`deleted_at`);

CREATE TABLE `options` (
    `key` text,
    `value` text,
    PRIMARY KEY (`key`)
);
