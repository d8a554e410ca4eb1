-- Indexes in the lists' own order, so a page reads about a page of index
-- entries however much history there is (issue 17).
-- The transaction history: each side of a party, and everything (admins).
create index escrow_transactions_user_recent on escrow_transactions (user_id, created_at, id);
create index escrow_transactions_counterparty_recent on escrow_transactions (counterparty_id, created_at, id);
create index escrow_transactions_recent on escrow_transactions (created_at, id);
-- The KYC review queue, oldest first in one status.
create index kyc_submissions_queue on kyc_submissions (status, created_at, id);
-- Their prefixes, which the new ones serve as well.
drop index escrow_transactions_user;
drop index escrow_transactions_counterparty;
drop index kyc_submissions_status;
