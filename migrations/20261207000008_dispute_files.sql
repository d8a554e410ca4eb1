-- Files a party attaches to a milestone's dispute: PNG, JPEG or PDF (by
-- content) up to 5 MiB, sealed at rest like KYC documents.
create table dispute_files (
    id           text primary key,
    milestone_id text not null references milestones (id),
    uploaded_by  text not null references users (id),
    content_type text not null,
    size_bytes   bigint not null check (size_bytes > 0 and size_bytes <= 5242880),
    sealed       text not null,
    created_at   text not null
);
create index dispute_files_milestone on dispute_files (milestone_id, created_at);
