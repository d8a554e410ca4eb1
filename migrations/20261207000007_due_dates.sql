-- Due dates: when a project and each of its milestones should be done.
-- Informational for the project; a milestone still undelivered (pending,
-- funded or rejected) after its due date is overdue: listed with
-- `overdue=true` and announced once by a `milestone.overdue` event.
alter table projects add column due_date text;
alter table milestones add column due_date text;
-- When the milestone was first found overdue (its event written then, once).
alter table milestones add column overdue_at text;
