"""Plugins for the tests of executors that must survive them: one that kills its own worker
process, one that makes every checkpoint save fail as on a full disk.

Written into a test's folder and loaded with ``--plugin``; the marker file beside the killing
plugin remembers that "kill once" has happened, so the retry trains normally.
"""

from __future__ import annotations


def killer_plugin(once: str = "killonce", always: str | None = "killalways") -> str:
    """A plugin's source: activation ``once`` SIGKILLs its process the first time any process runs
    it (exactly one of several racing processes), ``always`` (when given) every time."""
    source = f'''
import os, signal
from pathlib import Path
from torch import nn
from ablate import register_activation

MARK = Path(__file__).with_name("killed-once")

class KillOnce(nn.ReLU):
    def forward(self, x):
        try:  # atomic: of several processes racing here, exactly one dies
            os.close(os.open(MARK, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return super().forward(x)
        os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)

register_activation("{once}")(KillOnce)
'''
    if always is not None:
        source += f'''
class KillAlways(nn.ReLU):
    def forward(self, x):
        os.kill(os.getpid(), signal.SIGKILL)

register_activation("{always}")(KillAlways)
'''
    return source


# A plugin's source: every checkpoint save fails as on a full disk (ENOSPC). Loaded in the test's
# own process (an in-process ``cli.invoke``), it replaces ``checkpoints.save`` there too: the test
# must undo it (monkeypatch.setattr of the original first).
NO_SPACE_FOR_CHECKPOINTS = """
import errno
from ablate.store import checkpoints

def save(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")

checkpoints.save = save
"""
