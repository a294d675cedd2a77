"""The one error type of the data layer."""


class DatasetError(ValueError):
    """A data file or dataset that cannot be used; the message names the file and the problem."""
