"""Process exit codes, the contract with scripts and cron (README, design notes §3)."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FATAL = 1
    BAD_INPUT = 2
    SOME_FAILED = 3
    DRIFT = 4
    NOT_FINISHED = 5
