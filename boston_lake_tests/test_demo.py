"""The demo's own pieces; the demo run whole is in test_cli.py and faults/test_killed_runs.py."""

from __future__ import annotations

import os
import signal

from dagster._utils.interrupts import capture_interrupts

from boston_lake.demo import _interrupts_heard


def test_a_ctrl_c_that_dagster_takes_during_a_run_and_forgets_is_still_heard() -> None:
    handler = signal.getsignal(signal.SIGINT)  # whatever the worker has (Spark's tests install their own)
    with _interrupts_heard() as interrupted:
        assert not interrupted()
        # As during a run in process: Dagster's handler notes the signal and forgets it once the run is over, so no
        # KeyboardInterrupt ever reaches the demo.
        with capture_interrupts():
            blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # as a terminal delivers it
            try:
                os.kill(os.getpid(), signal.SIGINT)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        assert interrupted()
        assert not interrupted()  # heard once
    assert signal.getsignal(signal.SIGINT) is handler
