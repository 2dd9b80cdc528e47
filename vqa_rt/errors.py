"""Typed errors. Every error a user can act on derives from :class:`VqaRtError`;
the CLI prints its message as one line on stderr and exits non-zero."""


class VqaRtError(Exception):
    """Base class of every error vqa-rt reports to users."""


class InputError(VqaRtError):
    """A video input is missing, malformed, or inconsistent with its pair."""


class ModelError(VqaRtError):
    """A model file or checkpoint is missing, corrupt, or of the wrong kind."""


class BackendUnavailableError(VqaRtError):
    """A requested backend (TensorRT, a CUDA provider) is not installed or has no device."""


class ExternalToolError(VqaRtError):
    """An external program vqa-rt drives (ffmpeg) failed or gave unusable output."""


class ClusterError(VqaRtError):
    """A Ray cluster cannot run the batch as asked (unreachable, too small, a node that cannot read its files)."""


class EvaluationError(VqaRtError):
    """Scores cannot be evaluated as asked (too few rows, a mapping that does not fit)."""


class EngineBuildError(VqaRtError):
    """A TensorRT engine cannot be built as asked (a graph the parser rejects, a bad profile, a failed build)."""


class ExportValidationError(VqaRtError):
    """The exported model disagrees with its PyTorch reference."""


class OutputNamesMismatch(ExportValidationError):
    """The exported graph's output names differ from the reference's."""


class OutputShapeMismatch(ExportValidationError):
    """An exported output has a different shape from the reference's."""


class OutputValuesMismatch(ExportValidationError):
    """An exported output differs from the reference's beyond tolerance."""


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop (SIGINT or SIGTERM): work stops as on Ctrl-C and what is done is kept."""

    def __init__(self, signal_name: str, exit_status: int):
        super().__init__(f"interrupted by {signal_name}")
        self.exit_status = exit_status
        # What the interrupted command leaves behind, for its one-line message (a command may say otherwise).
        self.kept = "results computed so far were kept in the output files, marked incomplete"
