// The pages in nav order (app.js groups them by section and filters by role).
import dashboard from './dashboard.js';
import channels from './channels.js';
import keys from './keys.js';
import users from './users.js';
import orgs from './orgs.js';
import groups from './groups.js';
import logs from './logs.js';
import settings from './settings.js';
// helper U2: billing, vouchers, governance, self-service
import plans from './plans.js';
import subscriptions from './subscriptions.js';
import vouchers from './vouchers.js';
import accounts from './accounts.js';
import ledger from './ledger.js';
import prices from './prices.js';
import topups from './topups.js';
import policies from './policies.js';
import audit from './audit.js';
import ratelimits from './ratelimits.js';
import selfBalance from './self-balance.js';
import selfKeys from './self-keys.js';
import selfUsage from './self-usage.js';
import selfRedeem from './self-redeem.js';
import selfTopup from './self-topup.js';

export default [
    dashboard, channels, keys, users, orgs, groups, logs,
    // billing
    plans, subscriptions, vouchers, accounts, ledger, prices, topups,
    // governance
    policies, audit, ratelimits,
    // my account
    selfBalance, selfKeys, selfUsage, selfRedeem, selfTopup,
    settings,
];
