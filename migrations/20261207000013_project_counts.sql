-- How many projects each user has as buyer and as seller (issue 17), kept
-- in the transaction that creates or deletes a project, so a project list's
-- `total` is one row read, not a count of the user's whole history.
create table project_counts (
    user_id   text primary key references users (id),
    as_buyer  bigint not null default 0 check (as_buyer >= 0),
    as_seller bigint not null default 0 check (as_seller >= 0)
);

insert into project_counts (user_id, as_buyer, as_seller)
select u.id,
       (select count(*) from projects p where p.buyer_id = u.id),
       (select count(*) from projects p where p.seller_id = u.id)
from users u
where exists (select 1 from projects p where p.buyer_id = u.id or p.seller_id = u.id);
