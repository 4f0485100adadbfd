"""The registry side of pulls and pushes."""

from flotilla.images.remotes.registries import Registries, Repository

__all__ = ["Registries", "Repository"]
