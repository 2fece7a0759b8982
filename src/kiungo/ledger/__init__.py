"""The message log: every exchange's record, written with group commit before the answer leaves."""
