"""The one exception family the command line turns into a one-line message and a non-zero exit."""


class HetschedError(Exception):
    """A problem with the user's input or environment, worded for one line of output."""


class UsageError(HetschedError):
    """Options that do not go together, or one that is missing: exit 2, as argparse's own."""


class GraphError(HetschedError):
    """An ONNX model that cannot be loaded, normalised or split."""


class ProfileError(HetschedError):
    """A profile that is malformed or does not belong to the model it is used with."""


class DarknetError(HetschedError):
    """A darknet cfg/weights pair the importer cannot turn into ONNX."""


def first_line(e: BaseException) -> str:
    """An exception's message cut to its first line ('' when it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def describe(e: BaseException) -> str:
    """`Type: first line of the message`, for one-line reports of a cause."""
    text = first_line(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
