"""Faults the virtual MCU can inject, so every failure a host must survive has a test.

Each is a command-line option (see `python -m edgebench.lab.virtual_mcu --help`). Commands
are named by their first word (`name`, `profile`, `db`, `infer`, ...). One-shot faults
(resets) fire once per process, as a flaky board misbehaves once and then runs again.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field


@dataclass
class Faults:
    garbage_before: frozenset[str] = frozenset()
    garbage_bytes: int = 16
    truncate_line: frozenset[str] = frozenset()
    never_answer: frozenset[str] = frozenset()
    reset_after: int | None = None
    reset_during_infer: int | None = None
    report_model: str | None = None
    expect_baud: int | None = None
    _commands: int = field(default=0, repr=False)
    _infers: int = field(default=0, repr=False)

    def count_command(self) -> bool:
        """Count one dispatched command; True if the board resets instead of answering it."""
        self._commands += 1
        if self.reset_after is not None and self._commands == self.reset_after + 1:
            self.reset_after = None
            return True
        return False

    def count_infer(self) -> bool:
        """Count one `infer`; True if the board resets half way through its timed loop."""
        self._infers += 1
        if self.reset_during_infer is not None and self._infers == self.reset_during_infer:
            self.reset_during_infer = None
            return True
        return False


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fault injection (for host-side tests)")
    group.add_argument(
        "--garbage-before",
        action="append",
        default=[],
        metavar="CMD",
        help="write random line-noise bytes (0x80-0xff, no CR/LF) just before the reply "
        "to command CMD (repeatable)",
    )
    group.add_argument(
        "--garbage-bytes", type=int, default=16, metavar="N", help="noise length (16)"
    )
    group.add_argument(
        "--truncate-line",
        action="append",
        default=[],
        metavar="CMD",
        help="cut the last reply line of CMD in half and drop its CR/LF, so m-ready "
        "follows on the same line (repeatable)",
    )
    group.add_argument(
        "--never-answer",
        action="append",
        default=[],
        metavar="CMD",
        help="swallow CMD: no reply and no m-ready; later commands are answered (repeatable)",
    )
    group.add_argument(
        "--reset-after",
        type=int,
        metavar="K",
        help="after K answered commands, reset instead of answering the next one: print "
        "the boot banner again, lose the loaded data, restart the timer (once)",
    )
    group.add_argument(
        "--reset-during-infer",
        type=int,
        nargs="?",
        const=1,
        metavar="K",
        help="reset half way through the timed loop of the K-th infer (default 1st), "
        "after its first timestamp (once)",
    )
    group.add_argument(
        "--report-model",
        metavar="ID",
        help="report model id ID in profile%% while running the --model given",
    )
    group.add_argument(
        "--expect-baud",
        type=int,
        metavar="B",
        help="garble all output (random 0x80-0xff bytes) while the host's configured "
        "termios speed on the pty differs from B, as a real baud mismatch does",
    )


def faults_from_args(args: argparse.Namespace) -> Faults:
    return Faults(
        garbage_before=frozenset(args.garbage_before),
        garbage_bytes=args.garbage_bytes,
        truncate_line=frozenset(args.truncate_line),
        never_answer=frozenset(args.never_answer),
        reset_after=args.reset_after,
        reset_during_infer=args.reset_during_infer,
        report_model=args.report_model,
        expect_baud=args.expect_baud,
    )
