-- Partial releases and refunds, and disputes over one milestone: what each
-- side has received, the dispute's statements and its response deadline, and
-- two statuses (`disputed`; `split`: settled with money to both sides).
alter table milestones drop constraint milestones_status_check;
alter table milestones add constraint milestones_status_check check (status in
    ('pending', 'funded', 'submitted', 'approved', 'released', 'rejected', 'refunded', 'disputed', 'split'));
alter table milestones add column released_amount bigint not null default 0;
alter table milestones add column refunded_amount bigint not null default 0;
-- Settled milestones went whole to one side (before this migration a
-- project-level split marked each held milestone released).
update milestones set released_amount = amount where status = 'released';
update milestones set refunded_amount = amount where status = 'refunded';
alter table milestones add constraint milestones_settled_within_amount
    check (released_amount >= 0 and refunded_amount >= 0 and released_amount + refunded_amount <= amount);
-- 'buyer' or 'seller': who opened the dispute.
alter table milestones add column disputed_by text;
alter table milestones add column dispute_reason text;
alter table milestones add column dispute_evidence text;
alter table milestones add column dispute_response text;
-- Until then the other party may answer; if they do not, the dispute is
-- settled for the party who opened it.
alter table milestones add column dispute_respond_by text;
