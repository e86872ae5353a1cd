-- The event log (`kamiyo_core_models::ledger`): one entry per stored security event, written
-- in the transaction that stores the event. `digest` is SHA-256 of the event's canonical
-- form, `chain` SHA-256 of the previous entry's chain with this entry's seq, logged_ms and
-- digest; `logged_ms` is the wall-clock time of the commit. Retention never prunes it: an
-- entry keeps its place in the chain after its event is gone. Events stored before this
-- migration have no entry; the chain starts at the first event stored after it.
CREATE TABLE event_log (
    seq BIGINT PRIMARY KEY NOT NULL,
    logged_ms BIGINT NOT NULL,
    digest TEXT NOT NULL,
    chain TEXT NOT NULL
);
