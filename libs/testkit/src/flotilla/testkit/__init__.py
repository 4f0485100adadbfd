"""Flotilla's test and benchmark kit.

- ``private_containerd()``: Debian's containerd with its own root, state and socket.
- ``local_registry()``: a plain-http distribution registry on a free 127.0.0.1 port, with
  basic (``htpasswd=``) or token (``token=``, from ``token_server()``) authentication if asked;
  ``faulty_registry()`` puts a proxy that corrupts, truncates, drops, redirects in front of one.
- ``build_images()`` / ``publish_images()``: offline test images (busybox, large,
  multiarch) with stable digests, pushed with skopeo; ``export_oci_tar()`` for imports.
- ``validate_layout()``: check an OCI image layout end to end.
- ``require()``: the external programs a test needs, or one ``MissingProgram`` line naming them.
"""

from flotilla.testkit._proc import CommandError, alive, free_port
from flotilla.testkit._proc import run as run_command
from flotilla.testkit.containerd import Containerd, private_containerd
from flotilla.testkit.faulty import FaultyRegistry, SeenRequest, faulty_registry
from flotilla.testkit.images import BuiltImage, build_busybox, build_large, build_multiarch
from flotilla.testkit.large import DEFAULT_LARGE_SIZE
from flotilla.testkit.oci import Descriptor, Platform, host_platform
from flotilla.testkit.programs import MissingProgram, require
from flotilla.testkit.publish import (
    ImageSet,
    PublishedImages,
    build_images,
    export_oci_tar,
    publish_images,
    push_image,
)
from flotilla.testkit.registry import LocalRegistry, TokenAuth, local_registry
from flotilla.testkit.token_server import TokenRequest, TokenServer, token_server
from flotilla.testkit.validate import LayoutError, validate_layout

__all__ = [
    "alive",
    "free_port",
    "DEFAULT_LARGE_SIZE",
    "BuiltImage",
    "CommandError",
    "Containerd",
    "Descriptor",
    "ImageSet",
    "LayoutError",
    "LocalRegistry",
    "MissingProgram",
    "Platform",
    "PublishedImages",
    "build_busybox",
    "build_images",
    "build_large",
    "build_multiarch",
    "export_oci_tar",
    "host_platform",
    "local_registry",
    "private_containerd",
    "publish_images",
    "push_image",
    "require",
    "run_command",
    "validate_layout",
    "TokenAuth",
    "TokenRequest",
    "TokenServer",
    "token_server",
    "FaultyRegistry",
    "SeenRequest",
    "faulty_registry",
]
