"""The one exception family the command line turns into a one-line message and a non-zero exit."""


class HetschedError(Exception):
    """A problem with the user's input or environment, worded for one line of output."""


class GraphError(HetschedError):
    """An ONNX model that cannot be loaded, normalised or split."""


class ProfileError(HetschedError):
    """A profile that is malformed or does not belong to the model it is used with."""


class DarknetError(HetschedError):
    """A darknet cfg/weights pair the importer cannot turn into ONNX."""
