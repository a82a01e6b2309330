"""The one exception every patch algorithm raises for a bad patch."""

from __future__ import annotations


class PatchError(ValueError):
    """A patch that cannot be applied or built.

    ``field`` locates the problem: a Kubernetes-style field path such as
    ``spec.containers[0].image`` for merge patches, or a JSON pointer such as
    ``/spec/replicas`` for JSON patches. It is ``None`` when the patch as a
    whole is at fault. The API server turns this into a 422 (or 400) status.
    """

    message: str
    field: str | None

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field

    def __reduce__(self) -> tuple[type[PatchError], tuple[str, str | None]]:
        # The default reduce would pass the formatted text as ``message``.
        return (type(self), (self.message, self.field))
