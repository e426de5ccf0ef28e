-- The last record of a Casper network's write journal (families/casper/journal.py) its rows include, written in
-- the same transaction as those rows: a journal opened after a crash applies exactly the records after it.
CREATE TABLE casper_journal (
    run_id       INTEGER NOT NULL,
    applied_seq  BIGINT NOT NULL
);
