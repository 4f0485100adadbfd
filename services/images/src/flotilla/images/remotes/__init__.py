"""The registry side of pulls and pushes."""

from flotilla.images.remotes.registry import Registries, Repository

__all__ = ["Registries", "Repository"]
