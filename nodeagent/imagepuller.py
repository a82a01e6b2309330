"""Images for a pod's containers: the pull policy, pull Secrets and ImagePullBackOff."""

from __future__ import annotations

from corral.objects import Obj, meta, spec
from nodeagent.podstate import ContainerState, PodHost, field_path
from nodeagent.registryauth import auth_for
from nodeagent.runtime.base import ImagePullError, Role


class ImagePuller:
    """Makes a container's image present, as its imagePullPolicy asks, once per back-off."""

    def __init__(self, host: PodHost, uid: str) -> None:
        self.host = host
        self.uid = uid

    async def ensure(self, pod: Obj, container: Obj, role: Role, state: ContainerState) -> bool:
        """True when the image is there to create the container from."""
        image = container.get("image", "")
        name = container["name"]
        policy = container.get("imagePullPolicy") or "IfNotPresent"
        present = await self.host.runtime.image_present(image)
        if policy == "Never":
            if not present:
                state.waiting_reason = "ErrImageNeverPull"
                state.waiting_message = (
                    f'Container image "{image}" is not present with pull policy of Never'
                )
                await self.host.event(
                    pod,
                    "Warning",
                    "ErrImageNeverPull",
                    state.waiting_message,
                    field_path(role, name),
                )
                return False
            return True
        if present and policy == "IfNotPresent":
            return True
        if self._backing_off(state):
            state.waiting_reason = "ImagePullBackOff"
            state.waiting_message = f'Back-off pulling image "{image}"'
            return False
        return await self._pull(pod, image, name, role, state)

    def _backing_off(self, state: ContainerState) -> bool:
        """Whether the last pull of this container's image failed too recently to try again."""
        return (
            state.restart_at is not None
            and self.host.clock.monotonic() < state.restart_at
            and state.waiting_reason in ("ErrImagePull", "ImagePullBackOff")
        )

    async def _pull(
        self, pod: Obj, image: str, name: str, role: Role, state: ContainerState
    ) -> bool:
        path = field_path(role, name)
        key = f"pull/{self.uid}/{name}"
        # The back-off counts from when the pull began: a slow failing pull
        # has already used up part of its wait.
        now = self.host.clock.monotonic()
        await self.host.event(pod, "Normal", "Pulling", f'Pulling image "{image}"', path)
        try:
            await self.host.runtime.pull(image, auth_for(image, await self._pull_secrets(pod)))
        except ImagePullError as error:
            state.restart_at = now + self.host.pulls.next_delay(key, 0)
            state.waiting_reason, state.waiting_message = "ErrImagePull", error.message
            await self.host.event(pod, "Warning", "Failed", error.message, path)
            return False
        self.host.pulls.forget(key)
        state.restart_at = None
        await self.host.event(pod, "Normal", "Pulled", f'Successfully pulled image "{image}"', path)
        return True

    async def _pull_secrets(self, pod: Obj) -> list[Obj]:
        namespace = meta(pod).get("namespace", "default")
        secrets = []
        for reference in spec(pod).get("imagePullSecrets") or []:
            found = await self.host.get_secret(namespace, reference.get("name", ""))
            if found is not None:
                secrets.append(found)
        return secrets

    async def image_user(self, pod: Obj, container: Obj) -> str:
        """The image's user; only asked of the runtime when runAsNonRoot needs it."""
        security = container.get("securityContext") or {}
        pod_security = spec(pod).get("securityContext") or {}
        if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is not True:
            return ""
        if security.get("runAsUser", pod_security.get("runAsUser")) is not None:
            return ""
        return await self.host.runtime.image_user(container.get("image", ""))
