-- new-api's tables as GORM's AutoMigrate creates them on SQLite, for the
-- tables `nebulactl import-newapi` reads. Derived by hand from the struct
-- tags of QuantumNous/new-api (the file versions read: model/user.go
-- 0089a12fdcafe8ba57a961f31ce8929f47e22270, model/token.go
-- 0067bd93739dbf07a62b656afe48d71ddcefae4f, model/channel.go
-- 0102ffab86da3461be812c605d92800649e6eb06, model/ability.go
-- 691a8046de7e64222a3cdbd1488682197054a4c7, model/redemption.go
-- 03f1eccae6b39bd33e755eff91af58f1e5104355; model/option.go: key/value).
-- MySQL/MariaDB, as GORM's mysql dialect maps the same struct tags: int and
-- uint -> bigint (int where a type:int tag says so), bool -> boolean,
-- float64 -> double, string -> longtext, or varchar(191) when indexed
-- without a size, gorm.DeletedAt -> datetime(3); utf8mb4 tables.
CREATE TABLE `users` (
    `id` bigint AUTO_INCREMENT PRIMARY KEY,
    `username` varchar(191),
    `password` longtext NOT NULL,
    `display_name` varchar(191),
    `role` int DEFAULT 1,
    `status` int DEFAULT 1,
    `email` varchar(191),
    `github_id` longtext,
    `discord_id` longtext,
    `oidc_id` longtext,
    `wechat_id` longtext,
    `telegram_id` longtext,
    `access_token` char(32),
    `quota` int DEFAULT 0,
    `used_quota` int DEFAULT 0,
    `request_count` int DEFAULT 0,
    `group` varchar(64) DEFAULT 'default',
    `aff_code` varchar(32),
    `aff_count` int DEFAULT 0,
    `aff_quota` int DEFAULT 0,
    `aff_history` int DEFAULT 0,
    `inviter_id` int,
    `invite_rebate_eligible` boolean DEFAULT false,
    `deleted_at` datetime(3),
    `linux_do_id` longtext,
    `setting` longtext,
    `remark` varchar(255),
    `stripe_customer` varchar(64),
    `created_at` bigint,
    `last_login_at` bigint DEFAULT 0,
    `auth_version` bigint NOT NULL DEFAULT 1
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE UNIQUE INDEX `uni_users_username` ON `users`(`username`);
CREATE INDEX `idx_users_username` ON `users`(`username`);
CREATE INDEX `idx_users_display_name` ON `users`(`display_name`);
CREATE INDEX `idx_users_email` ON `users`(`email`);
CREATE UNIQUE INDEX `idx_users_access_token` ON `users`(`access_token`);
CREATE UNIQUE INDEX `idx_users_aff_code` ON `users`(`aff_code`);
CREATE INDEX `idx_users_inviter_id` ON `users`(`inviter_id`);
CREATE INDEX `idx_users_deleted_at` ON `users`(`deleted_at`);

CREATE TABLE `tokens` (
    `id` bigint AUTO_INCREMENT PRIMARY KEY,
    `user_id` bigint,
    `key` varchar(128),
    `status` bigint DEFAULT 1,
    `name` varchar(191),
    `created_time` bigint,
    `accessed_time` bigint,
    `expired_time` bigint DEFAULT -1,
    `remain_quota` bigint DEFAULT 0,
    `unlimited_quota` boolean,
    `model_limits_enabled` boolean,
    `model_limits` longtext,
    `allow_ips` varchar(191) DEFAULT '',
    `used_quota` bigint DEFAULT 0,
    `group` varchar(191) DEFAULT '',
    `cross_group_retry` boolean,
    `billing_type` bigint DEFAULT 0,
    `deleted_at` datetime(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX `idx_tokens_user_id` ON `tokens`(`user_id`);
CREATE UNIQUE INDEX `idx_tokens_key` ON `tokens`(`key`);
CREATE INDEX `idx_tokens_name` ON `tokens`(`name`);
CREATE INDEX `idx_tokens_deleted_at` ON `tokens`(`deleted_at`);

CREATE TABLE `channels` (
    `id` bigint AUTO_INCREMENT PRIMARY KEY,
    `type` bigint DEFAULT 0,
    `key` longtext NOT NULL,
    `open_ai_organization` longtext,
    `test_model` longtext,
    `status` bigint DEFAULT 1,
    `name` varchar(191),
    `weight` bigint DEFAULT 0,
    `created_time` bigint,
    `test_time` bigint,
    `response_time` bigint,
    `base_url` varchar(191) DEFAULT '',
    `other` longtext,
    `balance` double,
    `balance_updated_time` bigint,
    `models` longtext,
    `group` varchar(64) DEFAULT 'default',
    `used_quota` bigint DEFAULT 0,
    `model_mapping` longtext,
    `status_code_mapping` varchar(1024) DEFAULT '',
    `priority` bigint DEFAULT 0,
    `auto_ban` bigint DEFAULT 1,
    `need_reconcile` bigint DEFAULT 0,
    `other_info` longtext,
    `tag` varchar(191),
    `setting` longtext,
    `param_override` longtext,
    `header_override` longtext,
    `remark` varchar(255),
    `channel_info` json,
    `settings` longtext
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX `idx_channels_name` ON `channels`(`name`);
CREATE INDEX `idx_channels_tag` ON `channels`(`tag`);

CREATE TABLE `abilities` (
    `group` varchar(64),
    `model` varchar(255),
    `channel_id` bigint,
    `enabled` boolean,
    `priority` bigint DEFAULT 0,
    `weight` bigint DEFAULT 0,
    `tag` varchar(191),
    PRIMARY KEY (`group`, `model`, `channel_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX `idx_abilities_channel_id` ON `abilities`(`channel_id`);
CREATE INDEX `idx_abilities_priority` ON `abilities`(`priority`);
CREATE INDEX `idx_abilities_weight` ON `abilities`(`weight`);
CREATE INDEX `idx_abilities_tag` ON `abilities`(`tag`);

CREATE TABLE `redemptions` (
    `id` bigint AUTO_INCREMENT PRIMARY KEY,
    `user_id` bigint,
    `key` char(32),
    `status` bigint DEFAULT 1,
    `name` varchar(191),
    `quota` bigint DEFAULT 100,
    `created_time` bigint,
    `redeemed_time` bigint,
    `used_user_id` bigint,
    `deleted_at` datetime(3),
    `expired_time` bigint
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE UNIQUE INDEX `idx_redemptions_key` ON `redemptions`(`key`);
CREATE INDEX `idx_redemptions_name` ON `redemptions`(`name`);
CREATE INDEX `idx_redemptions_used_user_id` ON `redemptions`(`used_user_id`);
CREATE INDEX `idx_redemptions_deleted_at` ON `redemptions`(`deleted_at`);

CREATE TABLE `options` (
    `key` varchar(191),
    `value` longtext,
    PRIMARY KEY (`key`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
