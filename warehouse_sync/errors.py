"""The project's exceptions. Each message names the value at fault and the fix."""


class ConfigError(ValueError):
    """Invalid or missing configuration; retrying will not help."""


class PipelineError(RuntimeError):
    """A connector process failed.

    ``transient`` is true when the failure looks like a dropped connection or a
    time-out, which a retry of the run can get past.
    """

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient
