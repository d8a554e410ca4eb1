-- The platform's fee income is split over 16 accounts a currency, so that
-- holds of different projects do not queue on one row (every hold credits a
-- fee account, whose row stays locked until the hold commits). Shard 0 is
-- the account opened before (`platform_fees::NGN`), shard n is
-- `platform_fees:n:NGN`; a project's holds always credit the same shard
-- (`Account::fees` in src/store/ledger.rs). Fees are only credited, and the
-- platform's fees are the sum of the shards (`amani ledger check` prints it).
with recursive shards(n) as (select 1 union all select n + 1 from shards where n < 15)
insert into ledger_accounts (id, kind, owner_id, currency, balance, created_at)
select 'platform_fees:' || cast(shards.n as text) || ':' || fees.currency, 'platform_fees',
       cast(shards.n as text), fees.currency, 0, '2026-12-08T00:00:00.000000Z'
from shards cross join ledger_accounts fees
where fees.kind = 'platform_fees' and fees.owner_id = ''
on conflict do nothing;
