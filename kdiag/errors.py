"""Errors a person can cause. The CLI turns them into one paragraph and exit code 2."""


class KdiagError(Exception):
    """A problem with the user's input or environment (bad path, corrupt model, bad JSON).

    The message is shown as is, so it must say what was wrong and what to do.
    """


class TensorFlowMissing(KdiagError):
    def __init__(self, what: str = "this command") -> None:
        super().__init__(
            f"{what} runs the model and needs TensorFlow, which is not installed: "
            "install tensorflow, or pip install 'kdiag[tf]'."
        )
