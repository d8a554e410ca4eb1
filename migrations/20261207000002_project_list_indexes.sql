-- A user's projects, newest first, read in order straight from an index
-- whatever the page: a client's list filters buyer_id, a freelancer's
-- seller_id, an admin's none; all order by (created_at desc, id desc). The
-- new indexes replace the (buyer_id, created_at) and (seller_id,
-- created_at) ones, whose lookups they also serve.
create index projects_buyer_recent on projects (buyer_id, created_at desc, id desc);
create index projects_seller_recent on projects (seller_id, created_at desc, id desc);
create index projects_recent on projects (created_at desc, id desc);
drop index projects_buyer;
drop index projects_seller;
