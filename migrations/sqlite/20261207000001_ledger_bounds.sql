-- Money bounds in the schema, behind the ones the code checks (README,
-- Money): a balance holds at most 10^17 minor units and one transfer moves
-- at most 10^15. SQLite cannot add a CHECK constraint to an existing table,
-- so these triggers refuse the same rows (PostgreSQL's version of this
-- migration, migrations/postgres/, adds CHECK constraints). A balance that
-- is not an integer (SQLite turns an overflowing sum into a float) is
-- refused too.
create trigger ledger_accounts_balance_bound_insert before insert on ledger_accounts
when new.balance > 100000000000000000 or typeof(new.balance) <> 'integer'
begin
    select raise(abort, 'ledger_accounts_balance_bound: a balance is an integer of at most 10^17 minor units');
end;
create trigger ledger_accounts_balance_bound_update before update of balance on ledger_accounts
when new.balance > 100000000000000000 or typeof(new.balance) <> 'integer'
begin
    select raise(abort, 'ledger_accounts_balance_bound: a balance is an integer of at most 10^17 minor units');
end;
create trigger ledger_transfers_amount_bound before insert on ledger_transfers
when new.amount > 1000000000000000 or typeof(new.amount) <> 'integer'
begin
    select raise(abort, 'ledger_transfers_amount_bound: a transfer moves an integer of at most 10^15 minor units');
end;
