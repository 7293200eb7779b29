"""Write files so that a reader never sees half of one: temp file in the same folder, then rename."""

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once at import, before any worker thread
    # exists, since the mask is process-wide
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it vanishes."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:      # named for the file asked for, not the temporary one beside it
        # mkdir on a path through a file says "File exists" of the whole path: name the file
        # (os.path.isfile: pathlib's raises where a folder on the way cannot be read)
        blocking = next((p for p in path.parents if os.path.isfile(p)), None) \
            if e.errno in (errno.EEXIST, errno.ENOTDIR) else None
        why = f"{blocking} is a file, not a folder" if blocking else e.strerror
        raise OSError(e.errno, f"cannot write {path}: {why}") from e
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600); what we write is an ordinary output file
        os.chmod(tmp, 0o666 & ~_UMASK)
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise OSError(e.errno, f"cannot write {path}: {e.strerror}") from e
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path, data):
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
