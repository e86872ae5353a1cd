-- Writer fences: a writer that must be the only one (one ingest per protocol across replicas)
-- takes a new epoch when it starts (`Store::advance_fence`); each of its commits checks and
-- counts itself against the fence in the commit's transaction (`Store::fenced`), so a writer
-- whose epoch has been superseded — a deposed leader's late batch — is refused and writes
-- nothing.
CREATE TABLE writer_fences (
    name TEXT NOT NULL PRIMARY KEY,
    epoch BIGINT NOT NULL,
    commits BIGINT NOT NULL DEFAULT 0,
    last_commit_ms BIGINT
);
