-- Money bounds in the schema, behind the ones the code checks (README,
-- Money): a balance holds at most 10^17 minor units and one transfer moves
-- at most 10^15. (SQLite cannot add a CHECK to an existing table: its
-- version of this migration, migrations/sqlite/, uses triggers.)
alter table ledger_accounts
    add constraint ledger_accounts_balance_bound check (balance <= 100000000000000000);
alter table ledger_transfers
    add constraint ledger_transfers_amount_bound check (amount <= 1000000000000000);
