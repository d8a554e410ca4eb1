-- The platform's own accounts exist from the start, for every currency the
-- service takes (a new currency's are created by their first use): a hold's
-- fee then only changes balances.
insert into ledger_accounts (id, kind, owner_id, currency, balance, created_at) values
    ('platform_fees::NGN', 'platform_fees', '', 'NGN', 0, '2026-12-07T00:00:00.000000Z'),
    ('platform_fees::USD', 'platform_fees', '', 'USD', 0, '2026-12-07T00:00:00.000000Z'),
    ('platform_fees::KES', 'platform_fees', '', 'KES', 0, '2026-12-07T00:00:00.000000Z'),
    ('platform_fees::GHS', 'platform_fees', '', 'GHS', 0, '2026-12-07T00:00:00.000000Z'),
    ('platform_fees::EUR', 'platform_fees', '', 'EUR', 0, '2026-12-07T00:00:00.000000Z'),
    ('platform_fees::GBP', 'platform_fees', '', 'GBP', 0, '2026-12-07T00:00:00.000000Z'),
    ('platform_fees::JPY', 'platform_fees', '', 'JPY', 0, '2026-12-07T00:00:00.000000Z'),
    ('external_gateway::NGN', 'external_gateway', '', 'NGN', 0, '2026-12-07T00:00:00.000000Z'),
    ('external_gateway::USD', 'external_gateway', '', 'USD', 0, '2026-12-07T00:00:00.000000Z'),
    ('external_gateway::KES', 'external_gateway', '', 'KES', 0, '2026-12-07T00:00:00.000000Z'),
    ('external_gateway::GHS', 'external_gateway', '', 'GHS', 0, '2026-12-07T00:00:00.000000Z'),
    ('external_gateway::EUR', 'external_gateway', '', 'EUR', 0, '2026-12-07T00:00:00.000000Z'),
    ('external_gateway::GBP', 'external_gateway', '', 'GBP', 0, '2026-12-07T00:00:00.000000Z'),
    ('external_gateway::JPY', 'external_gateway', '', 'JPY', 0, '2026-12-07T00:00:00.000000Z')
on conflict do nothing;
