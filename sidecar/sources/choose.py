"""The one source the settings name (--source), made from its settings."""

from ..config import Settings
from . import Source
from .docker import DockerSource
from .env import EnvSource
from .file import FileSource
from .swarm import SwarmSource


def choose_source(settings: Settings) -> Source:
    if settings.source == "file":
        assert settings.version_file is not None
        return FileSource(settings.version_file, settings.poll_interval)
    if settings.source == "docker":
        assert settings.docker_target is not None
        return DockerSource(
            settings.docker_target,
            project=settings.docker_project,
            label=settings.docker_label,
            host=settings.docker_host,
            fallback=settings.fallback_version,
            silence=settings.docker_timeout,
        )
    if settings.source == "swarm":
        assert settings.swarm_service is not None
        return SwarmSource(
            settings.swarm_service,
            label=settings.docker_label,
            host=settings.docker_host,
            fallback=settings.fallback_version,
            silence=settings.docker_timeout,
        )
    return EnvSource(settings.version_env)
